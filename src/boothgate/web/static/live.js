/* The live event view: refreshes itself every few seconds from /api/live. The answer-time chart is an
   SVG drawn here (no chart library, no CDN). */
"use strict";

(function () {
  const B = window.Boothgate;
  const root = document.getElementById("live");
  if (!B || !root) return;
  const SVG = "http://www.w3.org/2000/svg";
  const labels = JSON.parse(root.dataset.labels || "{}");
  const every = Number(root.dataset.refreshSeconds || 3) * 1000;
  const hoursSelect = document.getElementById("live-hours");
  const eventSelect = document.getElementById("live-event");
  let timer = null;
  let shownIds = "";

  function label(provider) {
    return labels[provider] || provider;
  }

  function $(id) {
    return document.getElementById(id);
  }

  function svg(tag, attributes, text) {
    const node = document.createElementNS(SVG, tag);
    Object.keys(attributes || {}).forEach(function (name) {
      node.setAttribute(name, String(attributes[name]));
    });
    if (text !== undefined) node.textContent = String(text);
    return node;
  }

  /** A tidy top for the y axis: 1, 2, 5 × 10^n at or above the largest value. */
  function niceMax(value) {
    if (!(value > 0)) return 10;
    const power = Math.pow(10, Math.floor(Math.log10(value)));
    const steps = [1, 2, 5, 10];
    for (let i = 0; i < steps.length; i += 1) {
      if (steps[i] * power >= value) return steps[i] * power;
    }
    return 10 * power;
  }

  function timeText(date) {
    return date.toLocaleTimeString(document.documentElement.lang, { hour: "2-digit", minute: "2-digit" });
  }

  function drawChart(data) {
    const box = $("live-chart");
    const series = (data.series || []).filter(function (s) {
      return s.points.length > 0;
    });
    $("live-chart-empty").hidden = series.length > 0;
    // Drawn at the box's own width (text keeps its size; no stretching), redrawn on resize.
    const width = Math.max(320, Math.round(box.clientWidth || 760));
    const height = width < 500 ? 180 : 220;
    const left = 44;
    const right = 12;
    const top = 12;
    const bottom = 28;
    const start = new Date(data.since).getTime();
    const end = new Date(data.generated_at).getTime();
    let top_value = 0;
    series.forEach(function (s) {
      s.points.forEach(function (p) {
        top_value = Math.max(top_value, p.avg_seconds);
      });
    });
    const yMax = niceMax(top_value);
    const x = function (ms) {
      return left + ((ms - start) / Math.max(1, end - start)) * (width - left - right);
    };
    const y = function (seconds) {
      return top + (1 - seconds / yMax) * (height - top - bottom);
    };
    const chart = svg("svg", {
      viewBox: "0 0 " + width + " " + height,
      class: "chart",
      role: "img",
      "aria-label": B.t("live.chart_title"),
    });
    // grid and y labels: 0, half, top
    [0, yMax / 2, yMax].forEach(function (value) {
      chart.append(svg("line", { x1: left, x2: width - right, y1: y(value), y2: y(value), class: "grid" }));
      const shown = value.toLocaleString(document.documentElement.lang, { maximumFractionDigits: 2 });
      chart.append(svg("text", { x: left - 6, y: y(value) + 4, class: "axis-label", "text-anchor": "end" },
                       B.t("unit.seconds", { value: shown })));
    });
    // x labels: every hour (or every 15 min for short windows)
    const span = end - start;
    let stepMs = span <= 2 * 3600 * 1000 ? 15 * 60 * 1000 : 3600 * 1000;
    if (span / stepMs > width / 70) stepMs *= Math.ceil(span / stepMs / (width / 70)); // labels must not collide
    for (let ms = Math.ceil(start / stepMs) * stepMs; ms <= end; ms += stepMs) {
      chart.append(svg("line", { x1: x(ms), x2: x(ms), y1: height - bottom, y2: height - bottom + 4, class: "tick" }));
      chart.append(svg("text", { x: x(ms), y: height - 8, class: "axis-label", "text-anchor": "middle" }, timeText(new Date(ms))));
    }
    chart.append(svg("line", { x1: left, x2: width - right, y1: height - bottom, y2: height - bottom, class: "axis" }));
    const legend = B.el("ul", "chart-legend");
    series.forEach(function (s, index) {
      const group = svg("g", { class: "series series-" + (index % 6), "data-provider": s.provider });
      const coords = s.points.map(function (p) {
        return x(new Date(p.at).getTime()).toFixed(1) + "," + y(p.avg_seconds).toFixed(1);
      });
      if (coords.length > 1) group.append(svg("polyline", { points: coords.join(" "), class: "line" }));
      s.points.forEach(function (p, i) {
        const xy = coords[i].split(",");
        const dot = svg("circle", { cx: xy[0], cy: xy[1], r: 3.5, class: "point" });
        dot.append(svg("title", {}, label(s.provider) + " · " + timeText(new Date(p.at)) + " · " +
          B.seconds(p.avg_seconds) + " · " + B.t("live.photos", { count: p.count })));
        group.append(dot);
      });
      chart.append(group);
      const item = B.el("li", "series-" + (index % 6));
      item.append(B.el("span", "swatch"), document.createTextNode(label(s.provider)));
      legend.append(item);
    });
    box.replaceChildren(chart, legend);
  }

  function thumb(url, alt) {
    if (!url) return B.el("span", "wall-img wall-img-empty", "—");
    const img = B.el("img", "wall-img");
    img.alt = alt;
    img.decoding = "async";
    img.src = url;
    img.addEventListener("error", function () {
      img.replaceWith(B.el("span", "wall-img wall-img-empty", "—"));
    });
    return img;
  }

  function renderWall(jobs) {
    const wall = $("live-wall");
    $("live-empty").hidden = jobs.length > 0;
    const ids = jobs.map(function (job) {
      return job.id + job.status;
    }).join(",");
    if (ids === shownIds) return; // nothing new: keep the images as they are (no flicker)
    shownIds = ids;
    wall.replaceChildren();
    jobs.forEach(function (job) {
      const item = B.el("li", "wall-item job-" + job.status);
      item.dataset.job = job.id;
      const pair = B.el("div", "wall-pair");
      pair.append(thumb(job.photo_thumbnail_url, B.t("stats.photo")), thumb(job.result_thumbnail_url, B.t("stats.result")));
      item.append(pair);
      const caption = B.el("div", "wall-caption");
      caption.append(B.el("strong", null, label(job.provider) + " · " + (job.slot || "?")));
      caption.append(B.el("span", "muted", B.seconds(job.total_seconds)));
      const when = job.created_at ? timeText(new Date(job.created_at)) : "";
      caption.append(B.el("span", "muted", when));
      item.append(caption);
      if (job.status !== "succeeded") {
        item.append(B.reason(job.error, job.message, "wall-reason", B.t("status." + job.status)));
      }
      if (job.fallback_reason) {
        item.append(B.el("div", "wall-fallback", B.t("live.served_by", { slot: job.served_by || "?" })));
      }
      if (job.late && job.late.status) {
        item.append(B.el("div", "wall-late late-" + job.late.status, B.t("late." + job.late.status)));
      }
      wall.append(item);
    });
  }

  function renderCounts(counts) {
    $("count-received").textContent = counts.received;
    $("count-succeeded").textContent = counts.succeeded;
    $("count-failed").textContent = counts.failed + counts.timed_out + counts.rejected;
    $("count-failed").title = B.t("live.failed_detail", {
      failed: counts.failed, timed_out: counts.timed_out, rejected: counts.rejected,
    });
    $("count-fallbacks").textContent = counts.fallbacks;
  }

  let lastData = null;

  /** Events: the filter's choices, and a warning for each event whose budget is 80 % used or spent. */
  function renderEvents(events) {
    const chosen = eventSelect.value;
    const options = [["", B.t("live.all_events")]].concat(events.map(function (e) {
      return [String(e.id), e.name];
    }));
    if (chosen && !options.some(function (o) { return o[0] === chosen; })) options.push([chosen, "#" + chosen]);
    const wanted = options.map(function (o) { return o.join("\u0000"); }).join("\u0001");
    if (eventSelect.dataset.options !== wanted) {
      eventSelect.textContent = "";
      options.forEach(function (o) {
        const option = B.el("option", "", o[1]);
        option.value = o[0];
        eventSelect.appendChild(option);
      });
      eventSelect.value = chosen;
      eventSelect.dataset.options = wanted;
    }
    eventSelect.parentElement.hidden = events.length === 0 && !chosen;
    const area = $("live-warnings");
    area.textContent = "";
    events.forEach(function (e) {
      if (e.state !== "running" || !e.budget.warning) return;
      const text = e.budget.spent
        ? B.t("events.budget_spent", { name: e.name })
        : B.t("events.budget_warning", { name: e.name, share: Math.round(e.budget.used_share * 100) });
      area.appendChild(B.el("p", "provider-problem", text));
    });
  }

  async function load() {
    clearTimeout(timer);
    const event = eventSelect.value ? "&event=" + encodeURIComponent(eventSelect.value) : "";
    const answer = await B.request("GET", "/api/live?hours=" + encodeURIComponent(hoursSelect.value) + event);
    if (answer.ok && answer.data) {
      $("live-error").textContent = "";
      renderEvents(answer.data.events || []);
      renderCounts(answer.data.counts);
      lastData = answer.data;
      drawChart(answer.data);
      renderWall(answer.data.latest || []);
      $("live-updated").textContent = B.t("stats.updated", { time: new Date().toLocaleTimeString(document.documentElement.lang) });
      root.dataset.loadedAt = String(Date.now());
    } else {
      B.showError($("live-error"), answer);
    }
    timer = setTimeout(load, document.hidden ? every * 5 : every);
  }

  hoursSelect.addEventListener("change", load);
  eventSelect.addEventListener("change", load);
  let resizeTimer = null;
  window.addEventListener("resize", function () {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(function () {
      if (lastData) drawChart(lastData);
    }, 150);
  });
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) load();
  });
  load();
})();
