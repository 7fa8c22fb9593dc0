/* Offline background slots (issue 24): the key's sliders and the placement redraw a preview of the guest on
   the slot's background while they move — the card's unsaved values, rendered by the server's real offline
   path on a small copy. The previous preview stays until the next one has arrived. */
"use strict";

(function () {
  const B = window.Boothgate;
  const DEBOUNCE_MS = 300;
  document.querySelectorAll("[data-slot]").forEach(function (root) {
    const box = root.querySelector(".bg-preview");
    if (!B || !box) return;
    const image = box.querySelector(".bg-preview-img");
    const figure = box.querySelector(".bg-preview-figure");
    const busy = box.querySelector(".bg-preview-busy");
    const error = box.querySelector(".bg-preview-error");
    const source = box.querySelector(".bg-preview-source");
    const file = box.querySelector(".bg-preview-file");
    const sampleButton = box.querySelector(".bg-preview-sample");
    const kind = root.querySelector("[name=kind]");
    let photo = null; // the operator's own sample photo, or null for the packaged one
    let timer = null;
    let running = null; // the AbortController of the request in flight
    let shownUrl = null;
    let asked = 0; // a counter: only the newest answer is shown

    function options() {
      const out = {};
      box.querySelectorAll("[data-option]").forEach(function (input) {
        out[input.dataset.option] = input.dataset.type === "number" ? Number(input.value) : input.value;
      });
      return out;
    }

    function showValues() {
      box.querySelectorAll(".slider-row").forEach(function (row) {
        const input = row.querySelector("input[type=range]");
        row.querySelector("output").textContent = Number(input.value).toFixed(2);
      });
    }

    function setBusy(on) {
      busy.hidden = !on;
      figure.setAttribute("aria-busy", on ? "true" : "false");
      figure.classList.toggle("is-busy", on);
    }

    async function render() {
      if (box.hidden || (kind && kind.value !== "background")) return;
      if (running) running.abort();
      const controller = new AbortController();
      running = controller;
      const mine = ++asked;
      const own = photo !== null;
      const form = new FormData();
      form.append("options", JSON.stringify(options()));
      if (photo) form.append("photo", photo);
      setBusy(true);
      let answer;
      try {
        const response = await fetch(box.dataset.previewUrl, {
          method: "POST", body: form, credentials: "same-origin", signal: controller.signal,
        });
        if (response.ok) {
          answer = { ok: true, blob: await response.blob() };
        } else {
          let data = null;
          try { data = await response.json(); } catch (err) { data = null; }
          answer = { ok: false, status: response.status, data: data };
        }
      } catch (err) {
        if (controller.signal.aborted) return; // a newer move asked for another preview
        answer = { ok: false, status: 0, data: null };
      }
      if (mine !== asked) return;
      running = null;
      if (!answer.ok) {
        setBusy(false);
        const data = answer.data || {};
        const detail = typeof data.detail === "string" ? data.detail : "";
        const reason = answer.status === 0 ? B.t("error.network")
          : answer.status === 413 && !data.error ? B.t("error.too_large")
          : B.explain(data.error, detail || B.t("error.unknown"));
        error.replaceChildren(B.withDetails(B.t("bgpreview.failed", { reason: reason }), detail));
        return;
      }
      const url = URL.createObjectURL(answer.blob);
      const next = new Image();
      next.onload = function () {
        if (mine !== asked) { URL.revokeObjectURL(url); return; }
        image.src = url;
        image.hidden = false;
        if (shownUrl) URL.revokeObjectURL(shownUrl);
        shownUrl = url;
        image.dataset.rendered = String(mine);
        source.textContent = B.t(own ? "bgpreview.own" : "bgpreview.sample"); // what the shown preview is of
        error.textContent = "";
        setBusy(false);
      };
      next.onerror = function () {
        URL.revokeObjectURL(url);
        if (mine === asked) setBusy(false);
      };
      next.src = url;
    }

    function soon() {
      showValues();
      clearTimeout(timer);
      timer = setTimeout(render, DEBOUNCE_MS);
    }

    box.addEventListener("input", function (event) {
      if (event.target.matches("[data-option]")) soon();
    });
    box.addEventListener("change", function (event) {
      if (event.target.matches("[data-option]")) soon();
    });
    if (kind) kind.addEventListener("change", function () { setTimeout(render, 0); });
    box.querySelector(".bg-preview-own").addEventListener("click", function () { file.click(); });
    file.addEventListener("change", function () {
      if (!file.files || !file.files[0]) return;
      photo = file.files[0];
      file.value = "";
      sampleButton.hidden = false;
      render();
    });
    sampleButton.addEventListener("click", function () {
      photo = null;
      sampleButton.hidden = true;
      render();
    });
    // a new background (uploaded, built-in, removed): the preview follows
    root.addEventListener("boothgate:references", function () { soon(); });
    root.addEventListener("boothgate:slot", function () { soon(); });
    showValues();
    render();
  });
})();
