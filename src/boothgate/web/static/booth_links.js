/* Slot cards, booth-links part: the link with the password, prompt placeholders (listed on the card and
   filled in for Try it), result shape, overlay. Kept apart from slots.js; it hooks in through
   `Boothgate.tryValues`, which slots.js calls when it builds the Try it request. */
"use strict";

(function () {
  const B = window.Boothgate;
  const container = document.getElementById("cards");
  if (!B || !container) return;

  // The same rule as run/placeholders.py: {name} or {name|default}, {{name}} too.
  const PATTERN = /\{\{\s*([A-Za-z0-9_.\-]{1,64})\s*(?:\|([^{}]*))?\}\}|\{\s*([A-Za-z0-9_.\-]{1,64})\s*(?:\|([^{}]*))?\}/g;

  function placeholders(prompt) {
    const seen = new Map();
    let match;
    PATTERN.lastIndex = 0;
    while ((match = PATTERN.exec(prompt || "")) !== null) {
      const name = match[1] !== undefined ? match[1] : match[3];
      const fallback = match[1] !== undefined ? match[2] : match[4];
      if (!seen.has(name.toLowerCase())) seen.set(name.toLowerCase(), { name: name, fallback: fallback });
    }
    return Array.from(seen.values());
  }

  function Links(root) {
    this.root = root;
    this.api = "/api/slots/" + root.dataset.provider + "/" + root.dataset.number;
    this.typed = {}; // values typed for Try it, kept while the prompt changes
    this.bind();
    this.showPlaceholders();
    this.showSize();
  }

  Links.prototype.q = function (selector) {
    return this.root.querySelector(selector);
  };

  /** The card's hint line and the Try it inputs follow the prompt as it is typed. */
  Links.prototype.showPlaceholders = function () {
    const found = placeholders(this.q("[name=prompt]").value);
    const line = this.q(".placeholders-found");
    if (line) {
      line.replaceChildren();
      if (found.length) {
        line.append(line.dataset.label + " ");
        found.forEach(function (item, index) {
          if (index) line.append(", ");
          line.append(B.el("code", null, "{" + item.name + "}"));
        });
      } else {
        line.append(line.dataset.none);
      }
    }
    const box = this.q(".try-values");
    if (!box) return;
    const list = box.querySelector(".try-values-list");
    const links = this;
    list.querySelectorAll("input").forEach(function (input) {
      links.typed[input.dataset.placeholder] = input.value;
    });
    list.replaceChildren();
    found.forEach(function (item) {
      const id = "try-" + links.root.dataset.provider + "-" + links.root.dataset.number + "-" + item.name;
      const field = B.el("div", "field field-compact");
      const label = B.el("label", null, "{" + item.name + "}");
      label.htmlFor = id;
      const input = B.el("input");
      input.type = "text";
      input.id = id;
      input.maxLength = 200;
      input.dataset.placeholder = item.name;
      input.value = links.typed[item.name] || "";
      input.placeholder = item.fallback !== undefined ? item.fallback : B.t("links.value_empty");
      field.append(label, input);
      list.append(field);
    });
    box.hidden = found.length === 0;
  };

  Links.prototype.values = function () {
    const out = {};
    this.root.querySelectorAll(".try-values-list input").forEach(function (input) {
      if (input.value.trim()) out[input.dataset.placeholder] = input.value;
    });
    return out;
  };

  Links.prototype.showSize = function () {
    const field = this.q('[data-field="result_size"]');
    if (field) field.hidden = this.q("[name=result_shape]").value !== "fixed";
  };

  // --- overlay ------------------------------------------------------------------------------
  Links.prototype.showOverlay = function (url) {
    const img = this.q(".overlay-img");
    if (url) {
      img.src = url;
      img.hidden = false;
    } else {
      img.removeAttribute("src");
      img.hidden = true;
    }
    this.q(".overlay-empty").hidden = Boolean(url);
    this.q(".overlay-remove").disabled = !url;
  };

  Links.prototype.uploadOverlay = async function (file) {
    if (!file) return;
    const error = this.q(".overlay-error");
    error.textContent = "";
    const form = new FormData();
    form.append("file", file, file.name || "overlay.png");
    const answer = await B.request("PUT", this.api + "/overlay", form);
    if (answer.ok) {
      this.showOverlay(answer.data.overlay_url);
      B.flash(error, B.t("links.overlay_saved"), true);
    } else {
      error.classList.remove("is-ok");
      B.showError(error, answer);
    }
  };

  Links.prototype.removeOverlay = async function () {
    const error = this.q(".overlay-error");
    if (!window.confirm(B.t("links.overlay_remove_confirm"))) return;
    const answer = await B.request("DELETE", this.api + "/overlay");
    if (answer.ok) {
      this.showOverlay(null);
      B.flash(error, B.t("links.overlay_removed"), true);
      this.q(".overlay-choose").focus();
    } else {
      B.showError(error, answer);
    }
  };

  // --- wiring -------------------------------------------------------------------------------
  Links.prototype.bind = function () {
    const links = this;
    this.q("[name=prompt]").addEventListener("input", function () {
      links.showPlaceholders();
    });
    this.q("[name=result_shape]").addEventListener("change", function () {
      links.showSize();
    });
    const copy = this.q(".copy-url-pw");
    if (copy) {
      copy.addEventListener("click", async function () {
        const code = links.q(".upload-url-pw");
        const copied = await B.copyText(code.dataset.link, copy);
        B.flash(links.q(".copy-status"), copied ? B.t("card.copied") : B.t("card.copy_failed"), copied);
      });
    }
    const file = this.q(".overlay-file");
    if (file) {
      this.q(".overlay-choose").addEventListener("click", function () {
        file.click();
      });
      file.addEventListener("change", function () {
        links.uploadOverlay(file.files[0]);
        file.value = "";
      });
      this.q(".overlay-remove").addEventListener("click", function () {
        links.removeOverlay();
      });
    }
  };

  const byRoot = new Map();
  container.querySelectorAll("[data-slot]").forEach(function (root) {
    byRoot.set(root, new Links(root));
  });

  /** Called by slots.js while it builds the Try it form: the typed values become form fields. */
  B.tryValues = function (root, form) {
    const links = byRoot.get(root);
    if (!links) return;
    const values = links.values();
    Object.keys(values).forEach(function (name) {
      form.append(name, values[name]);
    });
  };
})();
