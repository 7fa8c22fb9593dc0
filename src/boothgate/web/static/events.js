/* The Events page: create, edit, end and delete events; their budget, clean-up date, statistics,
   export (with progress) and presets. Everything comes from /api/events; text only, never HTML. */
"use strict";

(function () {
  const B = window.Boothgate;
  const root = document.getElementById("events");
  if (!B || !root) return;
  const tabs = JSON.parse(root.dataset.labels || "[]"); // [[name, label], ...] in the tabs' order
  const slotNames = JSON.parse(root.dataset.slotNames || "{}");
  const perTab = Number(root.dataset.slotsPerTab || 20);
  const currency = B.currencySign(root.dataset.currency || "usd");
  const form = document.getElementById("event-form");
  const list = document.getElementById("events-list");
  const status = document.getElementById("event-form-status");
  const picker = document.getElementById("event-slot-picker");
  const cancel = document.getElementById("event-cancel");
  const title = document.getElementById("event-form-title");
  let events = [];
  const tabLabel = Object.fromEntries(tabs);
  // "Без интернета 2 — Beach" for "local/2": the tab in the page's language, the slot's name when it has one
  function slotText(key) {
    const [tab, number] = key.split("/");
    const text = (tabLabel[tab] || tab) + " " + number;
    return slotNames[key] ? text + " — " + slotNames[key] : text;
  }
  const exportTimers = {};

  function $(id) {
    return document.getElementById(id);
  }

  function when(iso) {
    if (!iso) return "";
    return new Date(iso).toLocaleString(document.documentElement.lang, {
      dateStyle: "medium",
      timeStyle: "short",
    });
  }

  /** An ISO instant as the value of a datetime-local input (the browser's local time). */
  function localInput(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    const pad = function (n) {
      return String(n).padStart(2, "0");
    };
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + "T" + pad(d.getHours()) + ":" + pad(d.getMinutes());
  }

  function fromInput(value) {
    return value ? new Date(value).toISOString() : null;
  }

  function number(value) {
    return value === "" ? null : Number(value);
  }

  // --- the slot picker: one group per tab, 20 numbered boxes each ------------------------------
  function buildPicker() {
    tabs.forEach(function (pair) {
      const tab = pair[0];
      const label_ = pair[1];
      const group = B.el("details", "slot-group");
      group.dataset.tab = tab;
      const summary = B.el("summary", "", label_);
      const count = B.el("span", "muted small slot-count");
      summary.appendChild(count);
      group.appendChild(summary);
      const boxes = B.el("div", "slot-boxes");
      for (let n = 1; n <= perTab; n += 1) {
        const key = tab + "/" + n;
        const label = B.el("label", "slot-box");
        const input = document.createElement("input");
        input.type = "checkbox";
        input.name = "slot";
        input.value = key;
        input.addEventListener("change", countPicked);
        label.appendChild(input);
        label.appendChild(B.el("span", "", String(n)));
        if (slotNames[key]) label.title = slotNames[key];
        label.setAttribute("aria-label", label_ + " " + n + (slotNames[key] ? " — " + slotNames[key] : ""));
        boxes.appendChild(label);
      }
      group.appendChild(boxes);
      picker.appendChild(group);
    });
  }

  function countPicked() {
    picker.querySelectorAll(".slot-group").forEach(function (group) {
      const picked = group.querySelectorAll("input:checked").length;
      group.querySelector(".slot-count").textContent = picked ? " · " + picked : "";
    });
  }

  function picked() {
    return Array.from(picker.querySelectorAll("input:checked")).map(function (i) {
      return i.value;
    });
  }

  function setPicked(keys) {
    picker.querySelectorAll("input").forEach(function (input) {
      input.checked = keys.indexOf(input.value) !== -1;
    });
    picker.querySelectorAll(".slot-group").forEach(function (group) {
      if (group.querySelector("input:checked")) group.open = true;
    });
    countPicked();
  }

  // --- the form ---------------------------------------------------------------------------------
  function resetForm() {
    form.reset();
    form.elements.id.value = "";
    form.elements.starts_at.value = localInput(new Date().toISOString());
    setPicked([]);
    cancel.hidden = true;
    title.textContent = title.dataset.new;
  }

  function editEvent(event) {
    form.elements.id.value = String(event.id);
    form.elements.name.value = event.name;
    form.elements.starts_at.value = localInput(event.starts_at);
    form.elements.ends_at.value = localInput(event.ends_at);
    form.elements.max_paid_calls.value = event.budget.max_paid_calls === null ? "" : event.budget.max_paid_calls;
    form.elements.max_cost.value = event.budget.max_cost === null ? "" : event.budget.max_cost;
    form.elements.retention_days.value = event.retention_is_default ? "" : event.retention_days;
    setPicked(event.slots);
    cancel.hidden = false;
    title.textContent = title.dataset.edit;
    form.scrollIntoView({ behavior: "smooth", block: "start" });
    form.elements.name.focus();
  }

  function problemText(answer) {
    const detail = answer.data && answer.data.detail;
    if (Array.isArray(detail) && detail.length) return detail.map(function (d) {
      return d.msg;
    }).join(" ");
    return answer.message;
  }

  form.addEventListener("submit", async function (submit) {
    submit.preventDefault();
    const id = form.elements.id.value;
    const body = {
      name: form.elements.name.value.trim(),
      starts_at: fromInput(form.elements.starts_at.value) || new Date().toISOString(),
      ends_at: fromInput(form.elements.ends_at.value),
      slots: picked(),
      budget: { max_paid_calls: number(form.elements.max_paid_calls.value), max_cost: number(form.elements.max_cost.value) },
      retention_days: number(form.elements.retention_days.value),
    };
    const answer = await B.request(id ? "PUT" : "POST", id ? "/api/events/" + id : "/api/events", body);
    if (!answer.ok) {
      B.flash(status, problemText(answer), false, 8000);
      return;
    }
    B.flash(status, B.t("events.saved"), true);
    resetForm();
    await load();
  });
  cancel.addEventListener("click", resetForm);

  // --- the list ---------------------------------------------------------------------------------
  function budgetLines(event) {
    const b = event.budget;
    const lines = [];
    if (b.max_paid_calls !== null) lines.push(B.t("events.used_calls", { used: b.paid_calls + b.in_flight, max: b.max_paid_calls }));
    else lines.push(B.t("events.used_calls_free", { used: b.paid_calls }));
    if (b.max_cost !== null) lines.push(B.t("events.used_cost", { used: B.amount(b.cost), max: B.amount(b.max_cost), currency: currency }));
    else lines.push(B.t("events.used_cost_free", { used: B.amount(b.cost), currency: currency }));
    return lines;
  }

  function warningText(event) {
    const b = event.budget;
    if (b.spent) return B.t("events.budget_spent", { name: event.name });
    if (b.warning) return B.t("events.budget_warning", { name: event.name, share: Math.round(b.used_share * 100) });
    return "";
  }

  function button(text, className, onClick) {
    const node = B.el("button", "btn btn-small " + (className || ""), text);
    node.type = "button";
    node.addEventListener("click", onClick);
    return node;
  }

  function renderEvent(event) {
    const item = B.el("li", "card event-card is-" + event.state);
    item.dataset.eventId = String(event.id);
    const head = B.el("div", "event-head");
    head.appendChild(B.el("h3", "event-name", event.name));
    head.appendChild(B.el("span", "badge " + (event.state === "running" ? "badge-ok" : ""), B.t("events.state." + event.state)));
    item.appendChild(head);
    const window_ = when(event.starts_at) + " — " + (event.ends_at ? when(event.ends_at) : B.t("events.no_end"));
    item.appendChild(B.el("p", "muted small", window_));
    item.appendChild(B.el("p", "event-slots", event.slots.length ? event.slots.map(slotText).join(", ") : B.t("events.no_slots")));
    // The scope a client API key names to use this event's slots (docs/client-api.md)
    item.appendChild(B.el("p", "muted small event-scope", B.t("events.api_scope", { scope: "event:" + event.id })));
    const budget = B.el("p", "event-budget small", budgetLines(event).join(" · "));
    item.appendChild(budget);
    const warning = warningText(event);
    if (warning) item.appendChild(B.el("p", "provider-problem event-warning", warning));
    let clean = "";
    if (event.cleaned_at) clean = B.t("events.cleaned", { date: when(event.cleaned_at) });
    else if (event.clean_up_at) clean = B.t("events.clean_up_at", { date: when(event.clean_up_at) });
    else clean = B.t("events.clean_up_after_end", { days: event.retention_days });
    item.appendChild(B.el("p", "muted small event-clean", clean));
    if (B.eventGallery) {
      item.appendChild(B.eventGallery.render(event)); // link, PIN, photos with hide/show: event_gallery.js
    } else {
      const gallery = B.el("p", "small event-gallery");
      gallery.appendChild(B.el("span", "muted", B.t("events.gallery") + ": "));
      gallery.appendChild(B.el("code", "mono", event.gallery_url));
      item.appendChild(gallery);
    }

    const actions = B.el("div", "row event-actions");
    const statsBox = B.el("div", "event-stats");
    statsBox.hidden = true;
    actions.appendChild(button(B.t("events.stats"), "event-stats-open", function () {
      showStats(event, statsBox);
    }));
    const exportLink = B.el("a", "btn btn-small event-export", B.t("events.export"));
    exportLink.href = "/api/events/" + event.id + "/export.zip";
    exportLink.setAttribute("download", "");
    const progress = B.el("span", "muted small event-export-progress");
    progress.setAttribute("aria-live", "polite");
    exportLink.addEventListener("click", function () {
      watchExport(event.id, progress);
    });
    actions.appendChild(exportLink);
    const presetLink = B.el("a", "btn btn-small", B.t("events.preset_export"));
    presetLink.href = "/api/events/" + event.id + "/preset";
    presetLink.setAttribute("download", "");
    actions.appendChild(presetLink);
    const note = B.el("span", "field-error event-note");
    note.setAttribute("aria-live", "polite");
    if (event.state !== "deleted") {
      const file = document.createElement("input");
      file.type = "file";
      file.accept = "application/json,.json";
      file.className = "offscreen";
      file.id = "preset-file-" + event.id;
      const importLabel = B.el("label", "btn btn-small", B.t("events.preset_import"));
      importLabel.htmlFor = file.id;
      file.addEventListener("change", function () {
        if (file.files && file.files[0]) importPreset(event, file, importLabel, note);
      });
      actions.appendChild(file);
      actions.appendChild(importLabel);
      actions.appendChild(button(B.t("events.edit"), "event-edit", function () {
        editEvent(event);
      }));
      if (event.state === "running" || event.state === "upcoming") {
        actions.appendChild(button(B.t("events.end"), "event-end", async function () {
          if (!window.confirm(B.t("events.end_confirm", { name: event.name, days: event.retention_days }))) return;
          const answer = await B.request("POST", "/api/events/" + event.id + "/end");
          if (!answer.ok) B.flash(note, answer.message, false);
          await load();
        }));
      }
      actions.appendChild(button(B.t("events.delete"), "btn-quiet event-delete", async function () {
        if (!window.confirm(B.t("events.delete_confirm", { name: event.name }))) return;
        const answer = await B.request("DELETE", "/api/events/" + event.id);
        if (!answer.ok) B.flash(note, answer.message, false);
        await load();
      }));
    }
    item.appendChild(actions);
    item.appendChild(progress);
    item.appendChild(note);
    item.appendChild(statsBox);
    return item;
  }

  /** A preset into the event: a dry run first says which slot goes where and what it overwrites; the
      import runs only once the operator agrees (operator/preset_mapping.py decides the places). */
  async function importPreset(event, file, label, note) {
    const url = "/api/events/" + event.id + "/preset";
    const upload = function () {
      const data = new FormData();
      data.append("file", file.files[0]);
      return data;
    };
    label.classList.add("is-busy");
    label.setAttribute("aria-disabled", "true");
    note.textContent = B.t("events.preset_checking");
    try {
      const preview = await B.request("POST", url + "?dry_run=true", upload());
      if (!preview.ok) {
        B.flash(note, problemText(preview), false, 12000);
        return;
      }
      const names = {};
      preview.data.overwrites.forEach(function (o) {
        names[o.slot] = o.name;
      });
      const lines = preview.data.mapping.map(function (m) {
        const line = names[m.to] ? "events.preset_line_named" : "events.preset_line";
        return B.t(line, { from: m.from, to: m.to, name: names[m.to] || "" });
      });
      if (!window.confirm(B.t("events.preset_confirm", { name: event.name, slots: lines.join("\n") }))) {
        note.textContent = "";
        return;
      }
      note.textContent = B.t("events.preset_importing");
      const answer = await B.request("POST", url, upload());
      if (!answer.ok) {
        B.flash(note, problemText(answer), false, 12000);
        return;
      }
      const done = answer.data.mapping.map(function (m) {
        return m.from === m.to ? m.to : m.from + " → " + m.to;
      });
      await load(); // the cards are drawn anew: the word goes into the event's new card
      const fresh = list.querySelector('.event-card[data-event-id="' + event.id + '"] .event-note');
      B.flash(fresh || note, B.t("events.preset_imported", { slots: done.join(", ") }), true, 8000);
    } finally {
      file.value = "";
      label.classList.remove("is-busy");
      label.removeAttribute("aria-disabled");
    }
  }

  function watchExport(id, element) {
    clearInterval(exportTimers[id]);
    let seen = false;
    exportTimers[id] = setInterval(async function () {
      const answer = await B.request("GET", "/api/events/" + id + "/export/progress");
      const running = answer.ok && answer.data.exports.length ? answer.data.exports[0] : null;
      if (running) {
        seen = true;
        element.textContent = B.t("events.export_progress", { done: running.files_done, total: running.files_total });
      } else if (seen || !answer.ok) {
        clearInterval(exportTimers[id]);
        element.textContent = "";
      }
    }, 700);
    setTimeout(function () {
      if (!seen) clearInterval(exportTimers[id]);
    }, 10000);
  }

  async function showStats(event, box) {
    if (!box.hidden) {
      box.hidden = true;
      return;
    }
    const answer = await B.request("GET", "/api/events/" + event.id + "/stats");
    box.textContent = "";
    if (!answer.ok) {
      box.appendChild(B.el("p", "field-error", answer.message));
      box.hidden = false;
      return;
    }
    box.appendChild(B.eventStats(answer.data, event.name));
    box.hidden = false;
  }

  function renderWarnings() {
    const area = $("events-warnings");
    area.textContent = "";
    events.forEach(function (event) {
      const text = event.state === "running" ? warningText(event) : "";
      if (text) area.appendChild(B.el("p", "provider-problem", text));
    });
  }

  async function load() {
    const [answer] = await Promise.all([B.request("GET", "/api/events"), B.eventGallery ? B.eventGallery.load() : null]);
    if (!answer.ok) {
      $("events-error").textContent = answer.message;
      return;
    }
    $("events-error").textContent = "";
    events = answer.data;
    const open = Array.from(list.querySelectorAll(".event-card")).filter(function (card) {
      return !card.querySelector(".event-stats").hidden;
    }).map(function (card) {
      return card.dataset.eventId;
    });
    list.textContent = "";
    events.forEach(function (event) {
      const card = renderEvent(event);
      list.appendChild(card);
      if (open.indexOf(String(event.id)) !== -1) showStats(event, card.querySelector(".event-stats"));
    });
    $("events-empty").hidden = events.length > 0;
    renderWarnings();
  }

  buildPicker();
  resetForm();
  load();
})();
