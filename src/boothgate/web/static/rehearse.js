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
    return value === null || value === undefined ? B.t("rehearse.cost_unknown") : B.t("rehearse.cost", { cost: Number(value).toFixed(4) });
  }

  async function loadPlan() {
    plan = null;
    goButton.disabled = true;
    planLine.textContent = B.t("rehearse.planning");
    const chosen = scope();
    const answer = await B.request("GET", "/api/rehearsals/plan" + (chosen ? "?tab=" + encodeURIComponent(chosen) : ""));
    if (!answer.ok) {
      planLine.textContent = answer.message;
      return;
    }
    plan = answer.data;
    if (!plan.paid_calls) {
      planLine.textContent = B.t("rehearse.plan_empty");
      return;
    }
    let text = B.t("rehearse.plan", { count: plan.paid_calls, cost: plan.estimated_cost_usd.toFixed(4) });
    if (plan.unknown_costs) text += " " + B.t("rehearse.plan_unknown", { count: plan.unknown_costs });
    planLine.textContent = text;
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
    head.append(B.el("strong", null, slot.slot + (slot.name ? " · " + slot.name : "")));
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
        planLine.textContent = answer.message;
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

  async function go() {
    if (!plan || !plan.paid_calls || running) return;
    const question = B.t("rehearse.confirm", { count: plan.paid_calls, cost: plan.estimated_cost_usd.toFixed(4) });
    if (!window.confirm(question)) return;
    running = true;
    goButton.disabled = true;
    const form = new FormData();
    const chosen = scope();
    if (chosen) form.append("tab", chosen);
    if (photo) form.append("photo", photo, photo.name);
    progress.hidden = false;
    progressText.textContent = B.t("rehearse.running", { done: 0, total: plan.paid_calls });
    const answer = await B.request("POST", "/api/rehearsals", form);
    if (!answer.ok) {
      progress.hidden = true;
      planLine.textContent = (answer.data && answer.data.message) || answer.message;
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
  goButton.addEventListener("click", go);
  q(".rehearse-close").addEventListener("click", function () {
    dialog.close();
  });
})();
