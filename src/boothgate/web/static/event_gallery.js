/* The guest gallery of one event on the Events page (issue 30): its link (copy, open, slideshow), its PIN
   (set, change, remove — never shown back: the server keeps only a hash and says `has_pin`) and the
   event's photos with "hide from gallery" / "show". APIs: /api/galleries, POST /api/events/{id}/gallery,
   PUT /api/galleries/{id}, GET /api/jobs?event=, PUT /api/jobs/{id}/gallery_hidden. Text only, never HTML. */
"use strict";

(function () {
  const B = window.Boothgate;
  if (!B) return;
  const PIN = /^\d{4,8}$/;
  const PAGE = 48;
  let galleries = null; // event id -> gallery, from /api/galleries (loaded with the events)

  /** The failure of a gallery request in the UI's words (the server's details are English). */
  function problem(answer) {
    if (answer.status === 422) return B.t("events.gallery_pin_invalid");
    if (answer.status === 404) return B.t("events.gallery_missing");
    return answer.message || B.t("error.unknown");
  }

  /** Run `work` with `controls` disabled and the status saying so; a second click meanwhile does nothing. */
  async function busy(controls, note, work) {
    if (controls.some(function (c) {
      return c.disabled;
    })) return;
    controls.forEach(function (c) {
      c.disabled = true;
      c.setAttribute("aria-busy", "true");
    });
    note.classList.remove("is-error", "is-ok");
    note.textContent = B.t("events.saving");
    try {
      await work();
    } finally {
      controls.forEach(function (c) {
        c.disabled = false;
        c.removeAttribute("aria-busy");
      });
      if (note.textContent === B.t("events.saving")) note.textContent = "";
    }
  }

  function button(text, className) {
    const node = B.el("button", "btn btn-small " + (className || ""), text);
    node.type = "button";
    return node;
  }

  async function loadGalleries() {
    const answer = await B.request("GET", "/api/galleries");
    galleries = {};
    if (!answer.ok) return answer;
    answer.data.forEach(function (g) {
      if (g.event_id !== null && g.event_id !== undefined) galleries[g.event_id] = g;
    });
    return answer;
  }

  /** The event's gallery row, made now if no guest has opened the link yet. */
  async function ensure(event) {
    if (galleries && galleries[event.id]) return { ok: true, data: galleries[event.id] };
    const answer = await B.request("POST", "/api/events/" + event.id + "/gallery");
    if (answer.ok) galleries[event.id] = answer.data;
    return answer;
  }

  function render(event) {
    const box = B.el("section", "event-gallery-box");
    box.appendChild(B.el("h4", "event-gallery-title", B.t("events.gallery_title")));
    const url = (galleries && galleries[event.id] && galleries[event.id].url) || event.gallery_url;
    const link = B.el("p", "small event-gallery");
    link.appendChild(B.el("span", "muted", B.t("events.gallery") + ": "));
    link.appendChild(B.el("code", "mono event-gallery-url", url));
    box.appendChild(link);
    const note = B.el("p", "field-error event-gallery-note");
    note.setAttribute("aria-live", "polite");

    const links = B.el("div", "row event-gallery-actions");
    const copy = button(B.t("events.gallery_copy"), "event-gallery-copy");
    copy.addEventListener("click", async function () {
      const copied = await B.copyText(url, copy);
      B.flash(note, B.t(copied ? "events.gallery_copied" : "events.gallery_copy_failed"), copied, copied ? 3000 : 8000);
    });
    links.appendChild(copy);
    const open = B.el("a", "btn btn-small event-gallery-open", B.t("events.gallery_open"));
    open.href = url;
    open.target = "_blank";
    open.rel = "noopener";
    links.appendChild(open);
    const show = B.el("a", "btn btn-small", B.t("events.gallery_slideshow"));
    show.href = url + "/show";
    show.target = "_blank";
    show.rel = "noopener";
    links.appendChild(show);
    box.appendChild(links);

    if (event.state !== "deleted") box.appendChild(pinForm(event, note));
    box.appendChild(note);
    if (event.state !== "deleted") box.appendChild(photos(event));
    return box;
  }

  function pinForm(event, note) {
    const gallery = galleries && galleries[event.id];
    const hasPin = Boolean(gallery && gallery.has_pin);
    const form = B.el("form", "event-gallery-pin");
    form.noValidate = true;
    const state = B.el("p", "small event-gallery-pin-state " + (hasPin ? "" : "muted"),
      B.t(hasPin ? "events.gallery_pin_on" : "events.gallery_pin_off"));
    form.appendChild(state);
    const id = "gallery-pin-" + event.id;
    const label = B.el("label", "small", B.t("events.gallery_pin_label"));
    label.htmlFor = id;
    const input = document.createElement("input");
    input.id = id;
    input.name = "pin";
    input.type = "password"; // typed once, never shown back
    input.inputMode = "numeric";
    input.maxLength = 8;
    input.autocomplete = "new-password";
    input.className = "event-gallery-pin-input";
    const row = B.el("div", "row event-gallery-pin-row");
    const save = B.el("button", "btn btn-small event-gallery-pin-save", B.t(hasPin ? "events.gallery_pin_change" : "events.gallery_pin_set"));
    save.type = "submit";
    row.appendChild(input);
    row.appendChild(save);
    const clear = button(B.t("events.gallery_pin_clear"), "btn-quiet event-gallery-pin-clear");
    clear.hidden = !hasPin;
    row.appendChild(clear);
    form.appendChild(label);
    form.appendChild(row);

    async function setPin(pin) {
      const made = await ensure(event);
      if (!made.ok) return made;
      const answer = await B.request("PUT", "/api/galleries/" + made.data.id, { pin: pin });
      if (answer.ok) galleries[event.id] = answer.data;
      return answer;
    }

    function shown(gallery_) {
      const on = Boolean(gallery_.has_pin);
      state.textContent = B.t(on ? "events.gallery_pin_on" : "events.gallery_pin_off");
      state.classList.toggle("muted", !on);
      save.textContent = B.t(on ? "events.gallery_pin_change" : "events.gallery_pin_set");
      clear.hidden = !on;
    }

    form.addEventListener("submit", function (submit) {
      submit.preventDefault();
      const pin = input.value.trim();
      if (!PIN.test(pin)) {
        B.flash(note, B.t("events.gallery_pin_invalid"), false, 8000);
        input.focus();
        return;
      }
      busy([save, clear, input], note, async function () {
        const answer = await setPin(pin);
        input.value = ""; // the PIN is not kept on the page either
        if (!answer.ok) {
          B.flash(note, problem(answer), false, 8000);
          return;
        }
        shown(answer.data);
        B.flash(note, B.t("events.gallery_pin_saved"), true);
      });
    });
    clear.addEventListener("click", function () {
      if (!window.confirm(B.t("events.gallery_pin_clear_confirm", { name: event.name }))) return;
      busy([save, clear, input], note, async function () {
        const answer = await setPin(null);
        if (!answer.ok) {
          B.flash(note, problem(answer), false, 8000);
          return;
        }
        shown(answer.data);
        B.flash(note, B.t("events.gallery_pin_cleared"), true);
      });
    });
    return form;
  }

  // --- the event's photos, each with hide/show ---------------------------------------------------
  function photos(event) {
    const wrap = B.el("details", "event-photos");
    const summary = B.el("summary", "", B.t("events.photos"));
    wrap.appendChild(summary);
    const grid = B.el("ul", "event-photo-grid");
    const empty = B.el("p", "muted small event-photos-empty", B.t("events.photos_none"));
    empty.hidden = true;
    const more = button(B.t("events.photos_more"), "event-photos-more");
    more.hidden = true;
    const error = B.el("p", "field-error");
    error.setAttribute("aria-live", "polite");
    wrap.appendChild(grid);
    wrap.appendChild(empty);
    wrap.appendChild(more);
    wrap.appendChild(error);
    let last = null;
    let loaded = false;

    async function page() {
      const query = "/api/jobs?source=booth&limit=" + PAGE + "&event=" + event.id + (last ? "&before=" + encodeURIComponent(last) : "");
      more.disabled = true;
      const answer = await B.request("GET", query);
      more.disabled = false;
      if (!answer.ok) {
        error.textContent = answer.message;
        return;
      }
      error.textContent = "";
      answer.data.forEach(function (job) {
        if (job.result_thumbnail_url && !job.deleted_by_guest) grid.appendChild(photo(job));
      });
      last = answer.data.length ? answer.data[answer.data.length - 1].id : last;
      more.hidden = answer.data.length < PAGE;
      empty.hidden = grid.children.length > 0;
    }
    wrap.addEventListener("toggle", function () {
      if (wrap.open && !loaded) {
        loaded = true;
        page();
      }
    });
    more.addEventListener("click", page);
    return wrap;
  }

  function photo(job) {
    const item = B.el("li", "event-photo");
    item.dataset.jobId = job.id;
    const image = document.createElement("img");
    image.src = job.result_thumbnail_url;
    image.alt = B.t("events.photo_alt", { time: new Date(job.created_at).toLocaleString(document.documentElement.lang) });
    image.loading = "lazy";
    image.dataset.fallback = "—";
    item.appendChild(image);
    const mark = B.el("span", "badge badge-warn event-photo-hidden", B.t("events.photo_hidden"));
    const toggle = button("", "event-photo-toggle");
    const note = B.el("span", "field-error small");
    note.setAttribute("aria-live", "polite");
    let hidden = Boolean(job.gallery_hidden);

    function shown() {
      item.classList.toggle("is-hidden", hidden);
      mark.hidden = !hidden;
      toggle.textContent = B.t(hidden ? "events.photo_show" : "events.photo_hide");
    }
    toggle.addEventListener("click", function () {
      const hide = !hidden;
      if (hide && !window.confirm(B.t("events.photo_hide_confirm"))) return;
      busy([toggle], note, async function () {
        const answer = await B.request("PUT", "/api/jobs/" + encodeURIComponent(job.id) + "/gallery_hidden", { hidden: hide });
        if (!answer.ok) {
          B.flash(note, answer.status === 404 ? B.t("events.photo_missing") : answer.message, false, 8000);
          return;
        }
        hidden = Boolean(answer.data.gallery_hidden);
        shown();
      });
    });
    shown();
    item.appendChild(mark);
    item.appendChild(toggle);
    item.appendChild(note);
    return item;
  }

  B.eventGallery = { load: loadGalleries, render: render };
})();
