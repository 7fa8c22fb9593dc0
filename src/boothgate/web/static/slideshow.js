// The gallery's slideshow for a TV: auto-advancing, new photos first as they arrive.
(function () {
  "use strict";
  const body = document.body;
  const feed = body.dataset.feed;
  const base = body.dataset.base;
  const SHOW_MS = 7000;
  const POLL_MS = 10000;
  let order = [];        // job ids, newest first
  let fresh = [];        // arrived since the last look: shown next
  let index = 0;

  function stage() {
    let img = document.getElementById("slide");
    if (!img) {
      const empty = document.getElementById("slide-empty");
      if (empty) empty.remove();
      img = document.createElement("img");
      img.id = "slide";
      img.className = "slideshow-photo";
      img.alt = "";
      document.getElementById("main").appendChild(img);
    }
    return img;
  }

  function show(id) {
    const img = stage();
    const next = new Image();
    next.onload = function () {
      img.classList.add("is-fading");
      setTimeout(function () { img.src = next.src; img.classList.remove("is-fading"); }, 300);
    };
    next.src = base + "/i/" + encodeURIComponent(id) + "?size=1920";
  }

  async function poll() {
    try {
      const response = await fetch(feed, { cache: "no-store", credentials: "same-origin" });
      if (!response.ok) return;
      const data = await response.json();
      const ids = data.photos.map(function (p) { return p.id; });
      const known = new Set(order);
      ids.forEach(function (id) { if (!known.has(id) && order.length) fresh.push(id); });
      order = ids;
    } catch (err) { /* the venue's network: try again at the next poll */ }
  }

  function advance() {
    if (fresh.length) { show(fresh.shift()); return; }
    if (!order.length) return;
    index = (index + 1) % order.length;
    show(order[index]);
  }

  poll();
  setInterval(poll, POLL_MS);
  setInterval(advance, SHOW_MS);
})();
