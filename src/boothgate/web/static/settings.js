/* The settings page: send only what changed, show errors beside each field, reload to show the
   new effective values (secrets come back masked). */
"use strict";

(function () {
  const B = window.Boothgate;
  const form = document.getElementById("settings-form");
  if (!B || !form) return;
  const saveButton = document.getElementById("settings-save");
  const state = document.getElementById("settings-state");
  const rows = Array.from(form.querySelectorAll("[data-setting]"));

  function control(row) {
    return row.querySelector("input, select, textarea");
  }

  rows.forEach(function (row) {
    const input = control(row);
    row.dataset.initial = input.value;
  });

  function changed(row) {
    const input = control(row);
    if (input.disabled) return false;
    if (row.dataset.input === "secret") return input.value !== "";
    return input.value !== row.dataset.initial;
  }

  function value(row) {
    const input = control(row);
    const kind = row.dataset.input;
    if ((kind === "integer" || kind === "number") && input.value.trim() !== "") {
      const number = Number(input.value);
      return Number.isFinite(number) ? number : input.value;
    }
    if ((kind === "integer" || kind === "number") && input.value.trim() === "") return null;
    if (kind === "boolean") return input.value === "true";
    return input.value;
  }

  function refresh() {
    let dirty = 0;
    rows.forEach(function (row) {
      const isChanged = changed(row);
      row.classList.toggle("is-changed", isChanged);
      if (isChanged) dirty += 1;
    });
    saveButton.disabled = dirty === 0;
    state.textContent = dirty ? B.t("settings.unsaved", { count: dirty }) : "";
    state.dataset.state = dirty ? "dirty" : "";
  }

  function clearErrors() {
    rows.forEach(function (row) {
      row.classList.remove("is-invalid");
      row.querySelector(".field-error").textContent = "";
    });
  }

  function showErrors(errors, status) {
    let first = null;
    Object.keys(errors || {}).forEach(function (name) {
      const row = form.querySelector('[data-setting="' + name + '"]');
      if (!row) return;
      row.classList.add("is-invalid");
      // the catalogue's words; the server's own (English) reason behind the "details" toggle
      const words = status === 409 ? B.t("settings.field_locked") : B.t("settings.field_invalid");
      row.querySelector(".field-error").replaceChildren(B.withDetails(words, errors[name]));
      first = first || control(row);
    });
    if (first) first.focus();
  }

  async function send(changes) {
    clearErrors();
    saveButton.disabled = true;
    state.textContent = B.t("card.saving");
    state.dataset.state = "busy";
    const answer = await B.request("PUT", "/api/settings", changes);
    if (answer.ok) {
      state.textContent = B.t("card.saved_now");
      state.dataset.state = "ok";
      // A new default language shows at once: `?lang=` also updates this browser's choice.
      const language = changes.language;
      window.location.assign(language ? "/settings?lang=" + language : "/settings");
      return;
    }
    if (answer.data && answer.data.errors) showErrors(answer.data.errors, answer.status);
    const words = answer.status === 422 ? B.t("settings.invalid") : answer.status === 409 ? B.t("settings.locked") : "";
    B.showError(state, answer, words);
    state.dataset.state = "error";
    saveButton.disabled = false;
  }

  form.addEventListener("input", refresh);
  form.addEventListener("change", refresh);
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    const changes = {};
    rows.forEach(function (row) {
      if (changed(row)) changes[row.dataset.setting] = value(row);
    });
    if (Object.keys(changes).length) send(changes);
  });
  form.querySelectorAll(".setting-reset").forEach(function (button) {
    button.addEventListener("click", function () {
      const row = button.closest("[data-setting]");
      const changes = {};
      changes[row.dataset.setting] = null;
      send(changes);
    });
  });
  window.addEventListener("beforeunload", function (event) {
    if (rows.some(changed) && state.dataset.state !== "ok") {
      event.preventDefault();
      event.returnValue = "";
    }
  });
  // Tabs shown in the top bar and the statistics (issue 22): saved at once, the bar follows on reload.
  const tabState = document.getElementById("tab-bar-state");
  const tabBoxes = Array.from(document.querySelectorAll(".tab-visible"));
  tabBoxes.forEach(function (box) {
    box.addEventListener("change", async function () {
      const hidden = tabBoxes.filter(function (b) { return !b.checked; }).map(function (b) { return b.dataset.tab; });
      const answer = await B.request("PUT", "/api/tabs/hidden", { hidden: hidden });
      const status = box.closest(".settings-group-head").querySelector(".tab-shown");
      if (answer.ok) {
        document.querySelectorAll(".topbar .tab[data-tab]").forEach(function (link) {
          link.hidden = answer.data.hidden.indexOf(link.dataset.tab) >= 0;
        });
        B.flash(tabState, B.t("settings.tabs_saved"), true);
        status.dataset.saved = "1";
      } else {
        box.checked = !box.checked;
        B.flash(tabState, answer, false);
      }
    });
  });
  refresh();
})();
