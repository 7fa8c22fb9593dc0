/* One event's statistics as a block (GET /api/events/{id}/stats): the Events page's "Statistics" button
   and the statistics panel's event selector show the same thing. */
"use strict";

(function () {
  const B = window.Boothgate;
  if (!B) return;

  function cell(row, text, header) {
    row.append(B.el(header ? "th" : "td", "", text));
  }

  /** The block for the statistics `s` of the event called `name`. */
  B.eventStats = function (s, name) {
    const box = B.el("div", "event-stats-block");
    box.append(B.el("h4", "event-stats-title", B.t("events.stats_title", { name: name })));
    const counts = B.el("dl", "event-counts");
    [
      ["events.received", s.received],
      ["events.succeeded", s.succeeded],
      ["events.failed", s.failed],
      ["events.fallbacks", s.served_by_fallback],
      ["events.paid_calls", s.paid_calls],
      ["events.cost", B.amount(s.cost) + " " + B.currencySign(s.currency)],
      ["events.p50", s.p50_seconds === null ? "–" : B.seconds(s.p50_seconds)],
      ["events.p95", s.p95_seconds === null ? "–" : B.seconds(s.p95_seconds)],
      ["events.moderated", s.moderation.moderated],
    ].forEach(function (pair) {
      const group = B.el("div", "event-count");
      group.appendChild(B.el("dt", "muted small", B.t(pair[0])));
      group.appendChild(B.el("dd", "count-small", pair[1]));
      counts.appendChild(group);
    });
    box.append(counts);
    const reasons = Object.keys(s.failed_by_reason);
    if (reasons.length) {
      box.append(B.el("h5", "", B.t("events.failed_by_reason")));
      box.append(B.el("p", "small mono", reasons.map(function (r) {
        return r + ": " + s.failed_by_reason[r];
      }).join(" · ")));
    }
    if (s.photos_per_hour.length) {
      box.append(B.el("h5", "", B.t("events.per_hour")));
      const top = Math.max.apply(null, s.photos_per_hour.map(function (h) {
        return h.count;
      }));
      const bars = B.el("ol", "event-hours");
      s.photos_per_hour.forEach(function (h) {
        const bar = B.el("li", "event-hour");
        bar.appendChild(B.el("span", "small muted", new Date(h.hour).toLocaleTimeString(document.documentElement.lang, { hour: "2-digit", minute: "2-digit" })));
        const fill = B.el("span", "event-hour-bar");
        fill.style.width = Math.max(4, Math.round((h.count / top) * 100)) + "%";
        bar.appendChild(fill);
        bar.appendChild(B.el("span", "small", h.count));
        bars.appendChild(bar);
      });
      box.append(bars);
    }
    if (s.by_slot.length) {
      box.append(B.el("h5", "", B.t("events.by_slot")));
      const wrap = B.el("div", "table-wrap");
      const table = B.el("table", "stats-table event-slot-table");
      const head = B.el("tr");
      ["events.slot", "events.received", "events.succeeded", "events.fallbacks", "events.p95"].forEach(function (k) {
        cell(head, B.t(k), true);
      });
      table.appendChild(head);
      s.by_slot.forEach(function (slot) {
        const row = B.el("tr");
        cell(row, slot.slot);
        cell(row, slot.received);
        cell(row, slot.succeeded);
        cell(row, slot.served_by_fallback);
        cell(row, slot.p95_seconds === null ? "–" : B.seconds(slot.p95_seconds));
        table.appendChild(row);
      });
      wrap.appendChild(table);
      box.append(wrap);
    }
    return box;
  };
})();
