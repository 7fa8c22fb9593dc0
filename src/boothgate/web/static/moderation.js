/* The content check on a slot card: its values for the slot's save, and the slot's own mask image. */
"use strict";

(function () {
  const B = window.Boothgate;

  /** The card's moderation fields as the API's `moderation` object. */
  function values(root) {
    const block = root.querySelector("[data-moderation-block]");
    if (!block) return undefined;
    const field = function (name) {
      return block.querySelector('[data-moderation="' + name + '"]');
    };
    const threshold = Number(field("threshold").value);
    return {
      before: field("before").checked,
      after: field("after").checked,
      threshold: Number.isFinite(threshold) && field("threshold").value !== "" ? threshold : field("threshold").value,
      on_hit: field("on_hit").value,
      provider_refusal: field("provider_refusal").value,
    };
  }

  function bind(block) {
    const url = block.dataset.maskUrl;
    const preview = block.querySelector(".mask-preview");
    const error = block.querySelector(".mask-error");
    const file = block.querySelector(".mask-file");
    const show = function () {
      preview.src = url + "?t=" + Date.now();
    };
    // The preview is what a caught photo of this slot answers; load it only when "More" is opened.
    const details = block.closest("details");
    if (details && !details.open) {
      details.addEventListener("toggle", function () {
        if (details.open && !preview.getAttribute("src")) show();
      });
    } else {
      show(); // no fold, or it is already open
    }
    block.querySelector(".mask-choose").addEventListener("click", function () {
      file.click();
    });
    file.addEventListener("change", async function () {
      if (!file.files.length) return;
      const form = new FormData();
      form.append("file", file.files[0]);
      error.textContent = B.t("moderation.mask_uploading");
      const answer = await B.request("PUT", url, form);
      file.value = "";
      if (answer.ok) error.textContent = ""; else B.showError(error, answer);
      if (answer.ok) show();
    });
    block.querySelector(".mask-remove").addEventListener("click", async function () {
      if (!window.confirm(B.t("moderation.mask_remove_confirm"))) return;
      const answer = await B.request("DELETE", url);
      if (answer.ok) error.textContent = ""; else B.showError(error, answer);
      if (answer.ok) show();
    });
  }

  window.BoothModeration = { values: values };
  document.querySelectorAll("[data-moderation-block], [data-mask-block]").forEach(bind);
})();
