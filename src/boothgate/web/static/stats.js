/* The statistics panel (top-right button on every page): upload password, counts per provider and
   per slot, the latest jobs. Fetched from the JSON API when opened, refreshed while it stays open. */
"use strict";

(function () {
  const B = window.Boothgate;
  const panel = document.getElementById("stats-panel");
  const openButton = document.getElementById("stats-open");
  if (!B || !panel || !openButton) return;
  const backdrop = document.getElementById("stats-backdrop");
  const $ = function (id) {
    return document.getElementById(id);
  };
  const REFRESH_MS = 5000;
  const tabLabels = {};
  document.querySelectorAll(".tabs [data-tab]").forEach(function (link) {
    tabLabels[link.dataset.tab] = link.textContent.trim();
  });
  let timer = null;
  let password = "";
  let shown = false;
  let loading = false;

  function label(provider) {
    return tabLabels[provider] || provider;
  }

  // While the panel is open the page behind it is inert: Tab stays inside the panel.
  function setBackgroundInert(inert) {
    document.querySelectorAll("body > header, body > main, body > .skip-link").forEach(function (node) {
      node.inert = inert;
    });
  }

  function open() {
    setBackgroundInert(true);
    panel.hidden = false;
    backdrop.hidden = false;
    openButton.setAttribute("aria-expanded", "true");
    document.body.classList.add("has-drawer");
    panel.focus();
    loadEvents().then(load);
    timer = setInterval(load, REFRESH_MS);
  }

  function close() {
    setBackgroundInert(false);
    panel.hidden = true;
    backdrop.hidden = true;
    openButton.setAttribute("aria-expanded", "false");
    document.body.classList.remove("has-drawer");
    clearInterval(timer);
    hideConfirm();
    openButton.focus();
  }

  // --- the event selector: the whole server, or one event's statistics (issue 23) ----------------
  const eventSelect = $("stats-event");
  const eventNames = {};

  async function loadEvents() {
    const answer = await B.request("GET", "/api/events");
    if (!answer.ok) return;
    const chosen = eventSelect.value;
    eventSelect.querySelectorAll("option[value]:not([value=''])").forEach(function (option) {
      option.remove();
    });
    // Running events first (as the Events page shows them), then the others, newest first.
    const order = { running: 0, upcoming: 1, ended: 2 };
    answer.data.slice().sort(function (a, b) {
      return (order[a.state] ?? 3) - (order[b.state] ?? 3) || b.id - a.id;
    }).forEach(function (event) {
      eventNames[event.id] = event.name;
      const option = B.el("option", null, event.name + (event.state === "running" ? " · " + B.t("stats.event_running") : ""));
      option.value = String(event.id);
      eventSelect.append(option);
    });
    eventSelect.value = eventNames[chosen] !== undefined ? chosen : "";
  }

  function renderEvent(answer) {
    const box = $("stats-event-summary");
    box.replaceChildren();
    const chosen = eventSelect.value;
    panel.querySelectorAll(".stats-server").forEach(function (section) {
      section.hidden = Boolean(chosen);
    });
    box.hidden = !chosen;
    if (!chosen || !answer) return;
    if (!answer.ok) {
      box.append(B.withDetails(answer.message, answer.detail));
      box.lastChild.classList.add("field-error");
      return;
    }
    box.append(B.eventStats(answer.data, eventNames[chosen] || chosen));
  }

  let again = false; // asked again while a load was under way (a new event chosen): load once more after it

  async function load() {
    if (loading) {
      again = true;
      return;
    }
    loading = true;
    again = false;
    // Guests' photos only, unless the operator asks to see their own Try it and rehearsal runs too (issue 22)
    const everything = $("stats-jobs-all") && $("stats-jobs-all").checked;
    const event = eventSelect.value;
    const jobsUrl = "/api/jobs?limit=20" + (everything ? "" : "&source=booth") + (event ? "&event=" + event : "");
    const requests = [B.request("GET", "/api/stats"), B.request("GET", jobsUrl)];
    if (event) requests.push(B.request("GET", "/api/events/" + event + "/stats"));
    const answers = await Promise.all(requests);
    loading = false;
    const stats = answers[0];
    const jobs = answers[1];
    renderEvent(answers[2]);
    if (stats.ok) $("stats-error").textContent = "";
    else B.showError($("stats-error"), stats);
    if (stats.ok) {
      renderPassword(stats.data);
      renderProviderErrors(stats.data.provider_errors || {});
      renderStorageWarnings(stats.data.storage || {});
      renderProviders(stats.data.providers || {});
      renderSlots(stats.data.slots || []);
      renderClients(stats.data.clients || {});
      renderKeys(stats.data.keys || []);
      renderOperatorSpend(stats.data.operator_spend || {});
      $("stats-title").dataset.loaded = "true";
      panel.querySelector(".stats-updated").textContent = B.t("stats.updated", {
        time: new Date().toLocaleTimeString(document.documentElement.lang),
      });
    }
    if (jobs.ok) renderJobs(jobs.data || []);
    if (again) load();
  }
  if ($("stats-jobs-all")) $("stats-jobs-all").addEventListener("change", load);
  eventSelect.addEventListener("change", load);

  // --- upload password ----------------------------------------------------------------------
  function renderPassword(data) {
    password = data.upload_password || "";
    showPassword();
    $("pw-rotate").disabled = Boolean(data.upload_password_from_env);
    $("pw-env").hidden = !data.upload_password_from_env;
  }

  function showPassword() {
    const code = $("upload-password");
    code.textContent = shown ? password : code.dataset.masked;
    code.classList.toggle("is-masked", !shown);
    const button = $("pw-show");
    button.textContent = shown ? button.dataset.hide : button.dataset.show;
    button.setAttribute("aria-pressed", shown ? "true" : "false");
  }

  function hideConfirm() {
    $("pw-confirm").hidden = true;
  }

  async function rotate() {
    const answer = await B.request("POST", "/api/upload-password/rotate");
    hideConfirm();
    if (answer.ok) {
      password = answer.data.upload_password;
      shown = true;
      showPassword();
      B.flash($("pw-status"), B.t("stats.rotated"), true, 6000);
    } else {
      B.flash($("pw-status"), answer, false);
    }
    $("pw-rotate").focus();
  }

  // --- tables -------------------------------------------------------------------------------
  function cell(tag, text, className) {
    return B.el(tag, className, text);
  }

  function headRow(titles, textColumns) {
    const thead = B.el("thead");
    const row = B.el("tr");
    titles.forEach(function (title, index) {
      const th = cell("th", title, index >= textColumns ? "num" : "");
      th.scope = "col";
      row.append(th);
    });
    thead.append(row);
    return thead;
  }

  /** A cost (the server counts in USD) in the operator's currency: ₽ at the configured rate, or $. */
  function money(usd) {
    const value = Number(usd || 0);
    if (panel.dataset.currency === "rub") {
      const rub = value * Number(panel.dataset.rate || 0);
      return rub.toLocaleString(document.documentElement.lang, { maximumFractionDigits: rub < 100 ? 2 : 0 }) + " ₽";
    }
    return "$" + value.toFixed(2);
  }

  // Column classes: on a phone the rarer columns fold away so the cost stays in view (issue 22).
  const FIGURE_COLUMNS = ["col-ok", "col-failed", "col-timed-out", "col-rejected", "col-moderated", "col-avg",
                          "col-p95", "col-cost"];

  function figures(bucket) {
    return [bucket.succeeded, bucket.failed, bucket.timed_out, bucket.rejected || 0, bucket.moderated || 0,
            B.seconds(bucket.avg_seconds), B.seconds(bucket.p95_seconds), money(bucket.cost_usd)];
  }

  function renderProviders(providers) {
    const table = $("stats-providers");
    table.replaceChildren(
      headRow([B.t("stats.provider"), B.t("stats.period"), B.t("stats.succeeded"), B.t("stats.failed"),
               B.t("stats.timed_out"), B.t("stats.rejected"), B.t("stats.moderated"), B.t("stats.avg"), B.t("stats.p95"),
               B.t("stats.cost")], 2)
    );
    table.querySelectorAll("thead th").forEach(function (th, index) {
      if (th.textContent === B.t("stats.p95")) th.title = B.t("stats.p95_help");
      if (index >= 2) th.classList.add(FIGURE_COLUMNS[index - 2]);
    });
    // Tabs without a single guest photo yet would only fill the table with zeros.
    const used = Object.keys(providers).filter(function (name) {
      return providers[name].all_time.received > 0;
    });
    $("stats-providers-empty").hidden = used.length > 0;
    table.hidden = used.length === 0;
    used.forEach(function (name) {
      const body = B.el("tbody");
      body.dataset.provider = name;
      ["today", "all_time"].forEach(function (period, index) {
        const row = B.el("tr");
        row.dataset.period = period;
        if (index === 0) {
          const th = cell("th", label(name));
          th.scope = "rowgroup";
          th.rowSpan = 2;
          row.append(th);
        }
        const when = cell("td", null, "muted stats-period");
        when.append(B.el("span", "long-label", B.t("stats." + period)), B.el("span", "short-label", B.t("stats." + period + "_short")));
        row.append(when);
        figures(providers[name][period]).forEach(function (value, i) {
          row.append(cell("td", value, "num " + FIGURE_COLUMNS[i] + (i === 1 && Number(value) > 0 ? " is-bad" : "")));
        });
        body.append(row);
      });
      table.append(body);
    });
  }

  /** The operator's own paid calls (references made from a prompt): costs beside the booth's, never photos. */
  function renderOperatorSpend(spend) {
    const box = $("stats-operator-spend");
    const parts = Object.keys(spend).map(function (name) {
      const all = spend[name].all_time;
      return B.t("stats.operator_spend_item", { provider: label(name), count: all.count, cost: money(all.cost_usd) });
    });
    box.hidden = parts.length === 0;
    box.textContent = parts.length ? B.t("stats.operator_spend") + " " + parts.join("; ") + "." : "";
  }

  /** Calls and failures per API key (masked names), kept across restarts (issue 28). */
  function renderKeys(keys) {
    const table = $("stats-keys");
    table.replaceChildren(headRow([B.t("stats.provider"), B.t("stats.key"), B.t("stats.calls"), B.t("stats.failed")], 2));
    $("stats-keys-section").hidden = keys.length === 0;
    const body = B.el("tbody");
    keys.forEach(function (key) {
      const row = B.el("tr");
      row.dataset.key = key.key;
      row.append(cell("th", label(key.provider)));
      const name = cell("td", null, "mono");
      name.append(document.createTextNode(key.key));
      if (key.flagged) name.append(B.el("span", "badge badge-failed", B.t("stats.key_flagged")));
      else if (!key.in_use) name.append(B.el("span", "muted small", " " + B.t("stats.key_removed")));
      if (key.flagged) name.title = key.flagged;
      row.append(name, cell("td", String(key.calls), "num"),
                 cell("td", String(key.failures), "num" + (key.failures > 0 ? " is-bad" : "")));
      body.append(row);
    });
    table.append(body);
  }

  /** Photos received (the overview's "today" counts the same), then how many were answered and not. */
  function triple(bucket) {
    const bad = bucket.failed + bucket.timed_out + (bucket.rejected || 0) + (bucket.moderated || 0);
    return B.t("stats.slot_counts", { received: bucket.received, ok: bucket.succeeded, bad: bad });
  }

  function renderSlots(slots) {
    const table = $("stats-slots");
    $("stats-slots-empty").hidden = slots.length > 0;
    table.hidden = slots.length === 0;
    table.replaceChildren(
      headRow([B.t("stats.slot"), B.t("stats.today"), B.t("stats.all_time"), B.t("stats.avg"), B.t("stats.p95"),
               B.t("stats.fallback")], 1)
    );
    const slotHeads = table.querySelectorAll("thead th");
    slotHeads[3].classList.add("col-avg");
    slotHeads[4].classList.add("col-p95");
    const body = B.el("tbody");
    slots.forEach(function (slot) {
      const row = B.el("tr");
      row.dataset.slot = slot.provider + "/" + slot.number;
      const th = cell("th", slot.name || label(slot.provider) + " · " + slot.number);
      if (slot.name) th.append(B.el("span", "muted small stats-slot-where", " " + label(slot.provider) + " " + slot.number));
      th.scope = "row";
      row.append(th, cell("td", triple(slot.today), "num"), cell("td", triple(slot.all_time), "num"),
                 cell("td", B.seconds(slot.all_time.avg_seconds), "num col-avg"),
                 cell("td", B.seconds(slot.all_time.p95_seconds), "num col-p95"),
                 cell("td", slot.today.served_by_fallback + " / " + slot.all_time.served_by_fallback +
                      (slot.all_time.delivered_late ? " · " + B.t("stats.delivered_late", { count: slot.all_time.delivered_late }) : ""),
                      "num fallback-count"));
      body.append(row);
    });
    table.append(body);
  }

  /** The client API's jobs under their key's name (issue 26): received / answered / not, and the cost. */
  function renderClients(clients) {
    const table = $("stats-clients");
    const names = Object.keys(clients);
    $("stats-clients-empty").hidden = names.length > 0;
    table.hidden = names.length === 0;
    table.replaceChildren(
      headRow([B.t("stats.client"), B.t("stats.today"), B.t("stats.all_time"), B.t("stats.p95"), B.t("stats.cost")], 1)
    );
    table.querySelectorAll("thead th")[3].classList.add("col-p95");
    const body = B.el("tbody");
    names.forEach(function (name) {
      const periods = clients[name];
      const row = B.el("tr");
      row.dataset.client = name;
      const th = cell("th", name);
      th.scope = "row";
      row.append(th, cell("td", triple(periods.today), "num"), cell("td", triple(periods.all_time), "num"),
                 cell("td", B.seconds(periods.all_time.p95_seconds), "num col-p95"),
                 cell("td", money(periods.all_time.cost_usd), "num col-cost"));
      body.append(row);
    });
    table.append(body);
  }

  function renderProviderErrors(errors) {
    const box = $("stats-provider-errors");
    box.replaceChildren();
    Object.keys(errors).forEach(function (name) {
      box.append(B.el("p", "provider-problem", label(name) + ": " + errors[name]));
    });
  }

  // Trash budget, job journal, unrecorded strangers (issue 14): one line per warning, after provider errors.
  function megabytes(n) {
    return ((n || 0) / 1048576).toFixed(1) + " MB";
  }

  function renderStorageWarnings(storage) {
    const box = $("stats-provider-errors");
    const trash = storage.trash || {};
    const values = {
      count: String(trash.removed_entries || 0),
      used: megabytes(trash.bytes),
      budget: megabytes(trash.max_bytes),
      pending: String((storage.journal || {}).pending || 0),
      unrecorded: String(storage.unauthenticated_unrecorded || 0),
    };
    (storage.warnings || []).forEach(function (code) {
      box.append(B.el("p", "provider-problem storage-warning", B.t("stats.warning." + code, values)));
    });
  }

  // --- latest jobs --------------------------------------------------------------------------
  function thumb(url, alt) {
    if (!url) return B.el("span", "thumb thumb-empty", "—");
    const img = B.el("img", "thumb");
    img.loading = "lazy";
    img.decoding = "async";
    img.alt = alt;
    img.src = url;
    // A photo removed by retention (or never stored) shows a quiet dash, not a broken-image icon.
    img.addEventListener("error", function () {
      img.replaceWith(B.el("span", "thumb thumb-empty", "—"));
    });
    return img;
  }

  /** Images the content check caught stay blurred until the operator clicks them. */
  function holdBack(item) {
    item.querySelectorAll("img.thumb").forEach(function (img) {
      img.classList.add("is-held");
      img.title = B.t("stats.held_reveal");
      img.tabIndex = 0;
      const reveal = function () {
        img.classList.remove("is-held");
        img.removeAttribute("title");
      };
      img.addEventListener("click", reveal);
      img.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") reveal();
      });
    });
  }

  function renderJobs(jobs) {
    const list = $("stats-jobs");
    $("stats-jobs-empty").hidden = jobs.length > 0;
    list.replaceChildren();
    jobs.forEach(function (job) {
      const item = B.el("li", "job job-" + job.status);
      item.dataset.job = job.id;
      item.append(thumb(job.photo_thumbnail_url, B.t("stats.photo")), thumb(job.result_thumbnail_url, B.t("stats.result")));
      if (job.status === "moderated") holdBack(item);
      const text = B.el("div", "job-text");
      const head = B.el("div", "job-head");
      head.append(B.el("strong", null, label(job.provider) + " · " + (job.slot || "?")));
      head.append(B.el("span", "badge badge-" + job.status, B.t("status." + job.status)));
      if (job.source === "try") head.append(B.el("span", "badge", B.t("stats.source_try")));
      if (job.source === "rehearsal") head.append(B.el("span", "badge badge-rehearsal", B.t("stats.source_rehearsal")));
      text.append(head);
      const when = job.created_at ? new Date(job.created_at).toLocaleString(document.documentElement.lang) : "";
      text.append(B.el("div", "muted small", when + " · " + B.seconds(job.total_seconds)));
      if (job.fallback_reason && job.served_by) {
        const served = B.el("div", "job-fallback small", B.t("stats.served_by", { slot: job.served_by }) + " · ");
        served.append(B.fallbackReason(job.fallback_reason));
        text.append(served);
      }
      if (job.late && job.late.status) {
        text.append(B.el("div", "job-late small late-" + job.late.status, B.t("late." + job.late.status)));
      }
      if (job.share_url) {
        const link = B.el("a", "job-share small", B.t("stats.guest_page"));
        link.href = job.share_url;
        link.target = "_blank";
        link.rel = "noopener noreferrer";
        text.append(link);
      }
      if (job.status !== "succeeded" && (job.error || job.message)) {
        // The reason in the UI's language; the server's own (English) words only on hover.
        text.append(B.reason(job.error, job.message));
      }
      // booth-links: the prompt as filled for this photo, and placeholders that had no value
      if (job.prompt) text.append(B.el("div", "muted small job-prompt", B.t("links.job_prompt") + " " + job.prompt));
      const missing = (job.provider_notes || {}).placeholders_missing;
      if (missing && missing.length) {
        text.append(B.el("div", "muted small", B.t("links.job_missing") + " " + missing.join(", ")));
      }
      const note = B.deepseekNote(job);
      if (note) text.append(note);
      item.append(text);
      list.append(item);
    });
  }

  // --- wiring -------------------------------------------------------------------------------
  openButton.addEventListener("click", function () {
    if (panel.hidden) open();
    else close();
  });
  $("stats-close").addEventListener("click", close);
  backdrop.addEventListener("click", close);
  $("stats-refresh").addEventListener("click", load);
  panel.addEventListener("keydown", function (event) {
    if (event.key === "Escape") close();
  });
  $("pw-show").addEventListener("click", function () {
    shown = !shown;
    showPassword();
  });
  $("pw-copy").addEventListener("click", async function () {
    const copied = await B.copyText(password, $("pw-copy"));
    B.flash($("pw-status"), copied ? B.t("stats.copied") : B.t("card.copy_failed"), copied);
  });
  $("pw-rotate").addEventListener("click", function () {
    $("pw-confirm").hidden = false;
    $("pw-rotate-no").focus();
  });
  $("pw-rotate-no").addEventListener("click", function () {
    hideConfirm();
    $("pw-rotate").focus();
  });
  $("pw-rotate-yes").addEventListener("click", rotate);
})();
