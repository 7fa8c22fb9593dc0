/* Issue 11: the Rehearse dialog of a provider tab. Shows what it will run and cost, asks before the paid
   calls, then follows the run slot by slot: thumbnail, seconds, cost, or the failure in plain words, and a
   warning when a slot used more than 60 % of the deadline. */
"use strict";

(function () {
  const B = window.Boothgate;
  const dialog = document.getElementById("rehearse-dialog");
  if (!B || !dialog) return;
  const q = function (selector) {
    return dialog.querySelector(selector);
  };
  const planLine = q(".rehearse-plan");
  const goButton = q(".rehearse-go");
  const results = q(".rehearse-results");
  const progress = q(".rehearse-progress");
  const progressText = q(".rehearse-progress-text");
  const fileInput = q(".rehearse-file");
  const preview = q(".rehearse-photo-preview");
  const photoName = q(".rehearse-photo-name");
  let tab = null;
  let plan = null;
  let photo = null;
  let running = false;
  let previewUrl = null;

  function scope() {
    const chosen = dialog.querySelector("input[name=scope]:checked");
    return chosen && chosen.value === "all" ? null : tab;
  }

  function money(value) {
    if (value === null || value === undefined) return B.t("rehearse.cost_unknown");
    return Number(value) === 0 ? B.t("rehearse.free") : B.money(value);
  }

  /** What the run will spend, in words: free slots are called free, money in the statistics currency. */
  function planText(data) {
    if (!data.paid_calls) return B.t("rehearse.plan_free", { count: data.calls });
    let text = B.t("rehearse.plan_paid", { count: data.paid_calls, cost: B.money(data.estimated_cost_usd) });
    if (data.free_calls) text += " " + B.t("rehearse.plan_also_free", { count: data.free_calls });
    if (data.unknown_costs) text += " " + B.t("rehearse.plan_unknown", { count: data.unknown_costs });
    return text;
  }

  async function loadPlan() {
    plan = null;
    goButton.disabled = true;
    planLine.textContent = B.t("rehearse.planning");
    const chosen = scope();
    const answer = await B.request("GET", "/api/rehearsals/plan" + (chosen ? "?tab=" + encodeURIComponent(chosen) : ""));
    if (!answer.ok) {
      B.showError(planLine, answer);
      return;
    }
    plan = answer.data;
    if (!plan.calls) {
      planLine.textContent = B.t("rehearse.plan_empty");
      return;
    }
    planLine.textContent = planText(plan);
    goButton.disabled = running;
  }

  function slotItem(slot) {
    const item = B.el("li", "rehearse-slot is-" + slot.status);
    const frame = B.el("div", "rehearse-thumb");
    if (slot.status === "succeeded" && slot.job_id) {
      const link = B.el("a");
      link.href = "/api/jobs/" + slot.job_id + "/result";
      link.target = "_blank";
      link.rel = "noopener";
      link.title = B.t("rehearse.open_job");
      const img = B.el("img");
      img.alt = slot.slot;
      img.loading = "lazy";
      img.src = "/api/jobs/" + slot.job_id + "/result/thumbnail";
      link.append(img);
      frame.append(link);
    }
    const text = B.el("div", "rehearse-text");
    const head = B.el("div", "rehearse-head");
    // By the slot's name, as the operator knows it; the tab and number in small print
    const title = B.el("strong", "rehearse-name", slot.name || B.t("rehearse.slot_unnamed", { number: slot.number }));
    head.append(title, B.el("span", "muted small", (B.has("tab." + slot.provider) ? B.t("tab." + slot.provider) : slot.provider) + " " + slot.number));
    const badge = slot.status === "succeeded" || slot.status === "failed" ? B.t("status." + slot.status)
      : slot.status === "running" ? B.t("rehearse.in_progress") : B.t("rehearse.waiting");
    head.append(B.el("span", "badge badge-" + slot.status, badge));
    text.append(head);
    if (slot.status === "succeeded") {
      text.append(B.el("div", "muted small", B.seconds(slot.seconds) + " · " + money(slot.cost_usd)));
    } else if (slot.status === "failed") {
      text.append(B.reason(slot.error, slot.message));
      text.append(B.el("div", "muted small", B.seconds(slot.seconds)));
    }
    if (slot.warning) text.append(B.el("div", "rehearse-warning", slot.warning));
    item.append(frame, text);
    return item;
  }

  function show(run) {
    results.replaceChildren.apply(results, run.slots.map(slotItem));
    const done = run.finished;
    if (run.done) {
      progress.hidden = true;
      planLine.textContent = B.t("rehearse.done", { ok: done - run.failed, failed: run.failed });
    } else {
      progressText.textContent = B.t("rehearse.running", { done: done, total: run.slots.length });
    }
  }

  async function follow(runId) {
    for (;;) {
      const answer = await B.request("GET", "/api/rehearsals/" + runId);
      if (!answer.ok) {
        B.showError(planLine, answer);
        break;
      }
      show(answer.data);
      if (answer.data.done) break;
      await new Promise(function (resolve) {
        setTimeout(resolve, 1000);
      });
    }
    running = false;
    goButton.disabled = false;
  }

  const confirmBox = q(".rehearse-confirm");

  /** Paid calls are confirmed in this dialog (not the browser's native box); a free run just starts. */
  function ask() {
    if (!plan || !plan.calls || running) return;
    if (!plan.paid_calls) {
      go();
      return;
    }
    q(".rehearse-confirm-text").textContent = B.t("rehearse.confirm_paid", {
      count: plan.paid_calls, cost: B.money(plan.estimated_cost_usd),
    });
    confirmBox.hidden = false;
    goButton.hidden = true;
    q(".rehearse-confirm-yes").focus();
  }

  function unask() {
    confirmBox.hidden = true;
    goButton.hidden = false;
  }

  async function go() {
    unask();
    if (!plan || !plan.calls || running) return;
    running = true;
    goButton.disabled = true;
    const form = new FormData();
    const chosen = scope();
    if (chosen) form.append("tab", chosen);
    if (photo) form.append("photo", photo, photo.name);
    progress.hidden = false;
    progressText.textContent = B.t("rehearse.running", { done: 0, total: plan.calls });
    const answer = await B.request("POST", "/api/rehearsals", form);
    if (!answer.ok) {
      progress.hidden = true;
      if (answer.status === 409) planLine.textContent = B.t("rehearse.plan_empty");
      else B.showError(planLine, answer);
      running = false;
      goButton.disabled = false;
      return;
    }
    show(answer.data);
    follow(answer.data.id);
  }

  document.querySelectorAll(".rehearse-open").forEach(function (button) {
    button.addEventListener("click", function () {
      tab = button.dataset.tab;
      q(".rehearse-scope-tab").textContent = B.t("rehearse.scope_tab", { tab: button.dataset.tabLabel || tab });
      if (!running) results.replaceChildren();
      unask();
      dialog.showModal();
      loadPlan();
    });
  });
  dialog.querySelectorAll("input[name=scope]").forEach(function (radio) {
    radio.addEventListener("change", loadPlan);
  });
  q(".rehearse-choose").addEventListener("click", function () {
    fileInput.click();
  });
  fileInput.addEventListener("change", function () {
    const file = fileInput.files && fileInput.files[0];
    if (!file) return;
    photo = file;
    if (previewUrl) URL.revokeObjectURL(previewUrl);
    previewUrl = URL.createObjectURL(file);
    preview.src = previewUrl;
    photoName.textContent = file.name;
  });
  goButton.addEventListener("click", ask);
  q(".rehearse-confirm-yes").addEventListener("click", go);
  q(".rehearse-confirm-no").addEventListener("click", function () {
    unask();
    goButton.focus();
  });
  q(".rehearse-close").addEventListener("click", function () {
    dialog.close();
  });
})();
