/* Issue 11 on the settings page: a "Check connection" button per provider (a cheap live call, with
   progress and the answer in plain words). The model fields offer the live list through <datalist>,
   rendered by the server, so typing another model id stays possible. */
"use strict";

(function () {
  const B = window.Boothgate;
  if (!B) return;

  function bindCheck(box) {
    const button = box.querySelector(".check-run");
    const spinner = box.querySelector(".check-spinner");
    const result = box.querySelector(".check-result");
    button.addEventListener("click", async function () {
      button.disabled = true;
      spinner.hidden = false;
      result.className = "check-result";
      result.textContent = B.t("check.running");
      const answer = await B.request("POST", "/api/providers/" + box.dataset.check + "/check");
      spinner.hidden = true;
      button.disabled = false;
      if (!answer.ok || !answer.data) {
        B.showError(result, answer, answer.message || B.t("error.unknown"));
        result.classList.add("is-error");
        return;
      }
      const verdict = answer.data;
      result.textContent =
        (verdict.ok ? B.t("check.ok") : B.t("check.failed")) + " · " + B.seconds(verdict.seconds) + " — " + verdict.message;
      result.classList.add(verdict.ok ? "is-ok" : "is-error");
    });
  }

  document.querySelectorAll("[data-check]").forEach(bindCheck);
})();
