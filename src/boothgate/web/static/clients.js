/* The client API page: keys (created, rotated, revoked; a key is shown once) and webhooks (created, tested,
   deleted; their deliveries with every attempt). Everything through the admin JSON API. */
"use strict";

(function () {
  const B = window.Boothgate;
  const root = document.getElementById("clients");
  if (!B || !root) return;
  const t = B.t;
  const el = B.el;
  const $ = function (id) { return document.getElementById(id); };

  function when(text) {
    if (!text) return "—";
    return new Date(text).toLocaleString(document.documentElement.lang, { dateStyle: "short", timeStyle: "short" });
  }

  function showOnce(box, valueId, value) {
    $(valueId).textContent = value;
    box.hidden = false;
  }

  function fact(label, value) {
    const row = el("div", "client-fact");
    row.append(el("span", "muted small", label), el("span", null, value));
    return row;
  }

  // --- keys -------------------------------------------------------------------------------
  async function loadKeys() {
    const answer = await B.request("GET", "/api/keys");
    const list = $("key-list");
    list.replaceChildren();
    if (!answer.ok) { B.showError($("key-error"), answer); return; }
    $("key-empty").hidden = answer.data.length > 0;
    answer.data.forEach(function (key) { list.append(keyItem(key)); });
  }

  function keyItem(key) {
    const item = el("li", "client-item" + (key.revoked_at ? " is-revoked" : ""));
    const head = el("div", "client-head");
    head.append(el("strong", null, key.name), el("code", "mono", key.prefix + "…"));
    if (key.revoked_at) head.append(el("span", "badge", t("clients.revoked")));
    item.append(head);
    item.append(fact(t("clients.key_scopes"), key.scopes.length ? key.scopes.join(", ") : t("clients.all_slots")));
    item.append(fact(t("clients.limits"), t("clients.limits_value", { rate: key.rate_per_minute, photos: key.photos_per_day })));
    item.append(fact(t("clients.created"), when(key.created_at)));
    item.append(fact(t("clients.last_used"), when(key.last_used_at)));
    item.append(fact(t("clients.today"), String(key.used_today)));
    if (key.previous_prefix) {
      item.append(fact(t("clients.grace"), t("clients.grace_value", { prefix: key.previous_prefix, until: when(key.previous_valid_until) })));
    }
    if (!key.revoked_at) {
      const actions = el("div", "row client-actions");
      const grace = el("select", "client-grace");
      grace.setAttribute("aria-label", t("clients.grace_choice"));
      [[0, "clients.grace_none"], [3600, "clients.grace_hour"], [86400, "clients.grace_day"], [604800, "clients.grace_week"]]
        .forEach(function (choice) {
          const option = el("option", null, t(choice[1]));
          option.value = String(choice[0]);
          if (choice[0] === 3600) option.selected = true;
          grace.append(option);
        });
      const rotate = el("button", "btn btn-small", t("clients.rotate"));
      rotate.type = "button";
      rotate.addEventListener("click", async function () {
        const answer = await B.request("POST", "/api/keys/" + key.id + "/rotate", { grace_seconds: Number(grace.value) });
        if (!answer.ok) { B.showError($("key-error"), answer); return; }
        showOnce($("key-shown"), "key-value", answer.data.key);
        loadKeys();
      });
      const revoke = el("button", "btn btn-small btn-danger", t("clients.revoke"));
      revoke.type = "button";
      revoke.addEventListener("click", async function () {
        if (!window.confirm(t("clients.revoke_confirm", { name: key.name }))) return;
        const answer = await B.request("DELETE", "/api/keys/" + key.id);
        if (!answer.ok) { B.showError($("key-error"), answer); return; }
        loadKeys();
      });
      actions.append(grace, rotate, revoke);
      item.append(actions);
    }
    return item;
  }

  $("key-form").addEventListener("submit", async function (event) {
    event.preventDefault();
    $("key-error").textContent = "";
    const scopes = $("key-scopes").value.split(/[\s,]+/).filter(Boolean);
    const answer = await B.request("POST", "/api/keys", {
      name: $("key-name").value.trim(),
      scopes: scopes,
      rate_per_minute: Number($("key-rate").value),
      photos_per_day: Number($("key-photos").value),
    });
    if (!answer.ok) {
      B.showError($("key-error"), answer);
      return;
    }
    showOnce($("key-shown"), "key-value", answer.data.key);
    $("key-form").reset();
    loadKeys();
  });

  // --- webhooks ---------------------------------------------------------------------------
  async function loadHooks() {
    const answer = await B.request("GET", "/api/webhooks");
    const list = $("hook-list");
    list.replaceChildren();
    if (!answer.ok) { B.showError($("hook-error"), answer); return; }
    $("hook-empty").hidden = answer.data.endpoints.length > 0;
    answer.data.endpoints.forEach(function (hook) { list.append(hookItem(hook)); });
  }

  function hookItem(hook) {
    const item = el("li", "client-item");
    const head = el("div", "client-head");
    head.append(el("strong", "mono client-url", hook.url));
    item.append(head, fact(t("clients.hook_events"), hook.events.join(", ")), fact(t("clients.created"), when(hook.created_at)));
    const deliveries = el("ol", "deliveries");
    const actions = el("div", "row client-actions");
    const test = el("button", "btn btn-small", t("clients.send_test"));
    test.type = "button";
    const status = el("span", "muted small");
    status.setAttribute("aria-live", "polite");
    test.addEventListener("click", async function () {
      const answer = await B.request("POST", "/api/webhooks/" + hook.id + "/test");
      B.flash(status, answer.ok ? t("clients.test_queued") : answer, answer.ok);
      setTimeout(function () { loadDeliveries(hook, deliveries); }, 1500);
    });
    const show = el("button", "btn btn-small btn-quiet", t("clients.deliveries"));
    show.type = "button";
    show.addEventListener("click", function () { loadDeliveries(hook, deliveries); });
    const remove = el("button", "btn btn-small btn-danger", t("clients.delete"));
    remove.type = "button";
    remove.addEventListener("click", async function () {
      if (!window.confirm(t("clients.delete_confirm", { url: hook.url }))) return;
      await B.request("DELETE", "/api/webhooks/" + hook.id);
      loadHooks();
    });
    actions.append(test, show, remove, status);
    item.append(actions, deliveries);
    return item;
  }

  async function loadDeliveries(hook, box) {
    const answer = await B.request("GET", "/api/webhooks/" + hook.id + "/deliveries");
    box.replaceChildren();
    if (!answer.ok) return;
    if (!answer.data.length) { box.append(el("li", "muted small", t("clients.no_deliveries"))); return; }
    answer.data.slice(0, 20).forEach(function (delivery) {
      const line = el("li", "delivery is-" + delivery.status);
      line.append(el("span", "mono", delivery.event), el("span", "badge", t("clients.delivery." + delivery.status)));
      const attempts = delivery.attempts.map(function (a) {
        return (a.status === null ? (a.error || "—") : "HTTP " + a.status) + " · " + when(a.at);
      });
      line.append(el("span", "muted small", attempts.join("; ") || t("clients.not_tried")));
      box.append(line);
    });
  }

  $("hook-form").addEventListener("submit", async function (event) {
    event.preventDefault();
    $("hook-error").textContent = "";
    const events = Array.from(document.querySelectorAll("#hook-form input[name=events]:checked")).map(function (box) { return box.value; });
    const answer = await B.request("POST", "/api/webhooks", { url: $("hook-url").value.trim(), events: events });
    if (!answer.ok) {
      B.showError($("hook-error"), answer);
      return;
    }
    showOnce($("hook-shown"), "hook-value", answer.data.secret);
    $("hook-form").reset();
    loadHooks();
  });

  [["key-copy", "key-value"], ["hook-copy", "hook-value"]].forEach(function (pair) {
    $(pair[0]).addEventListener("click", function () { B.copyText($(pair[1]).textContent, $(pair[0])); });
  });

  loadKeys();
  loadHooks();
})();
