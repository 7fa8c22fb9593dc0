/* The slot cards of a provider tab: edit and save, reference image, upload link, Try it. */
"use strict";

(function () {
  const B = window.Boothgate;
  const container = document.getElementById("cards");
  if (!B || !container) return;
  const needsReference = (container.dataset.needsReference || "").split(",").filter(Boolean);
  const promptOptional = container.dataset.promptOptional === "true";
  const fallbackChoices = document.getElementById("fallback-choices");
  const cards = [];

  function SlotCard(root) {
    this.root = root;
    this.api = "/api/slots/" + root.dataset.provider + "/" + root.dataset.number;
    this.saving = false;
    this.timer = null;
    this.fillFallbacks();
    this.bind();
    this.saved = this.values();
    this.refresh();
  }

  SlotCard.prototype.q = function (selector) {
    return this.root.querySelector(selector);
  };

  SlotCard.prototype.hasReference = function () {
    return this.root.dataset.hasReference === "true";
  };

  /** The card's form as the API's SlotUpdate. */
  SlotCard.prototype.values = function () {
    return {
      enabled: this.q("[name=enabled]").checked,
      name: this.q("[name=name]").value,
      kind: this.q("[name=kind]").value,
      prompt: this.q("[name=prompt]").value,
      output_format: this.q("[name=output_format]").value,
      on_failure: this.q("[name=on_failure]").value,
      fallback: this.q("[name=fallback]").value,
      result_shape: this.q("[name=result_shape]").value, // booth-links
      result_size: this.q("[name=result_size]").value.trim(), // booth-links
      share: this.shareValues(), // issue 30: the QR on the print
      late_result_seconds: this.numberOr("[name=late_result_seconds]", 0),
      options: this.optionValues(),
      moderation: window.BoothModeration ? window.BoothModeration.values(this.root) : undefined,
    };
  };

  /** The card's `share` field (the guest page's QR on the print), or undefined on a card without it. */
  SlotCard.prototype.shareValues = function () {
    const qr = this.q("[name=share_qr]");
    if (!qr) return undefined;
    return {
      qr: qr.checked,
      corner: this.q("[name=share_corner]").value,
      size: this.numberOr("[name=share_size]", 0.12),
      label: this.q("[name=share_label]").value.trim(),
    };
  };

  /** A number input's value, or `fallback` when it is empty or not a number. */
  SlotCard.prototype.numberOr = function (selector, fallback) {
    const input = this.q(selector);
    const value = input ? parseFloat(input.value) : NaN;
    return Number.isFinite(value) ? value : fallback;
  };

  /** The sub-form part an input sits in (another tab's options), or null for the slot's own options. */
  SlotCard.prototype.partOf = function (input) {
    return input.closest(".subform-part");
  };

  /** The chosen part of each sub-form (e.g. the renderer's options for the chosen renderer). */
  SlotCard.prototype.chosenPart = function (subform) {
    const chooser = this.root.querySelector('[data-option="' + subform.dataset.depends + '"]');
    return chooser ? chooser.value : "";
  };

  /** The fallback list: every slot of every tab but this one (from the page's single template). */
  SlotCard.prototype.fillFallbacks = function () {
    const select = this.q("[name=fallback]");
    if (!fallbackChoices || !select) return;
    const own = this.root.dataset.provider + "/" + this.root.dataset.number;
    const current = select.dataset.current || "";
    const none = select.options[0];
    select.replaceChildren(none);
    fallbackChoices.content.querySelectorAll("option").forEach(function (option) {
      if (option.value === own) return;
      const copy = option.cloneNode(true);
      copy.selected = option.value === current;
      select.append(copy);
    });
    if (current && select.value !== current) {
      select.append(new Option(current, current, true, true)); // a stored value the list no longer has
    }
  };

  SlotCard.prototype.optionValues = function () {
    const card = this;
    const out = {};
    this.root.querySelectorAll(".subform").forEach(function (subform) {
      out[subform.dataset.subform] = {};
    });
    this.root.querySelectorAll("[data-option]").forEach(function (input) {
      let target = out;
      const part = card.partOf(input);
      if (part) {
        const subform = part.closest(".subform");
        if (part.dataset.when !== card.chosenPart(subform)) return; // only the chosen tab's options are sent
        target = out[subform.dataset.subform];
      }
      writeOption(target, input);
    });
    return out;
  };

  function writeOption(out, input) {
    const name = input.dataset.option;
    const type = input.dataset.type;
    if (input.type === "checkbox") {
      out[name] = input.checked;
      return;
    }
    const raw = input.value.trim();
    if (raw === "") {
      if (input.dataset.nullable === "true") out[name] = null;
      return; // left out: the option's default applies
    }
    if (type === "integer" || type === "number") {
      const number = Number(raw);
      out[name] = Number.isFinite(number) ? number : raw;
    } else if (type === "boolean") {
      out[name] = raw === "true";
    } else if (type === "json") {
      try {
        out[name] = JSON.parse(raw);
      } catch (err) {
        out[name] = raw;
      }
    } else {
      out[name] = raw;
    }
  }

  /** Show only the options that apply to the slot's kind, and only the chosen sub-form part. */
  SlotCard.prototype.showApplicable = function (kind) {
    const card = this;
    this.root.querySelectorAll("[data-kinds]").forEach(function (field) {
      field.hidden = !field.dataset.kinds.split(",").includes(kind);
    });
    this.root.querySelectorAll(".subform").forEach(function (subform) {
      const chosen = card.chosenPart(subform);
      subform.querySelectorAll(".subform-part").forEach(function (part) {
        part.hidden = part.dataset.when !== chosen;
      });
    });
  };

  SlotCard.prototype.isDirty = function () {
    return JSON.stringify(this.values()) !== JSON.stringify(this.saved);
  };

  /** What stops this slot from working (the same rules as the server's). */
  SlotCard.prototype.problems = function (values) {
    const list = [];
    if (needsReference.includes(values.kind) && !this.hasReference()) {
      list.push(B.t("problem.reference_required." + values.kind));
    }
    if (values.kind === "prompt" && !values.prompt.trim() && !promptOptional) {
      list.push(B.t("problem.prompt_required"));
    }
    return list;
  };

  SlotCard.prototype.refresh = function () {
    const values = this.values();
    const dirty = this.isDirty();
    const problems = this.problems(values);
    const blocking = values.enabled && problems.length > 0;
    this.root.classList.toggle("is-dirty", dirty);
    this.root.classList.toggle("is-off", !values.enabled);
    this.q(".save").disabled = !dirty || this.saving || blocking;
    if (!this.saving) {
      this.setState(dirty ? B.t("card.unsaved") : B.t("card.saved"), dirty ? "dirty" : "");
    }
    // An untouched switched-off slot is just unused: no warnings until the operator works on it.
    const line = this.q(".card-problems");
    const visible = values.enabled || dirty ? problems : [];
    line.textContent = visible.join(" ") + (blocking && dirty ? " " + B.t("problem.blocks_saving") : "");
    line.classList.toggle("is-error", blocking);
    const placeholder = "card.prompt_placeholder." + values.kind;
    const tabPlaceholder = placeholder + "." + this.root.dataset.provider; // e.g. the offline tab's own
    this.q("[name=prompt]").placeholder = B.t(B.has(tabPlaceholder) ? tabPlaceholder : placeholder);
    this.showApplicable(values.kind);
  };

  SlotCard.prototype.setState = function (text, kind) {
    const state = this.q(".save-state");
    state.textContent = text;
    state.dataset.state = kind || "";
  };

  SlotCard.prototype.clearErrors = function () {
    this.root.querySelectorAll(".field-error").forEach(function (node) {
      if (!node.classList.contains("ref-error")) node.textContent = "";
    });
    this.root.querySelectorAll(".is-invalid").forEach(function (node) {
      node.classList.remove("is-invalid");
    });
  };

  /** Browser-side checks of number fields (min/max/step) before anything is sent. */
  SlotCard.prototype.checkInputs = function () {
    let good = true;
    this.root.querySelectorAll("[data-option]").forEach(function (input) {
      if (input.checkValidity()) return;
      good = false;
      const field = input.closest(".field");
      field.classList.add("is-invalid");
      field.querySelector(".field-error").textContent = input.validationMessage;
    });
    if (!good) this.q("details.more").open = true;
    return good;
  };

  SlotCard.prototype.showFieldErrors = function (detail) {
    const card = this;
    const loose = [];
    (Array.isArray(detail) ? detail : []).forEach(function (item) {
      const loc = (item.loc || []).filter(function (part) {
        return part !== "body";
      });
      const field = card.root.querySelector('[data-field="' + loc.join(".") + '"]');
      if (field && field.querySelector(".field-error")) {
        field.classList.add("is-invalid");
        field.querySelector(".field-error").textContent = item.msg; // the slot's own check (e.g. the loop's chain)
        if (loc[0] === "options" || loc[0] === "result_size") card.q("details.more").open = true;
      } else {
        loose.push(loc.join(".") + ": " + item.msg); // the server's words: behind the card's "details"
      }
    });
    return loose.join("; ");
  };

  /** Save the card; resolves to true when the server has the values. */
  SlotCard.prototype.save = async function () {
    this.clearErrors();
    if (!this.checkInputs()) {
      this.setState(B.t("card.fix_errors"), "error");
      return false;
    }
    const values = this.values();
    this.saving = true;
    this.setState(B.t("card.saving"), "busy");
    this.refresh();
    const answer = await B.request("PUT", this.api, values);
    this.saving = false;
    if (answer.ok) {
      this.saved = values;
      this.root.dataset.hasReference = answer.data.has_reference ? "true" : "false";
      this.q(".try-fallback").hidden = !answer.data.fallback;
      this.refresh();
      this.setState(B.t("card.saved_now"), "ok");
      return true;
    }
    let words = "";
    let detail = answer.detail;
    if (answer.status === 422 && answer.data) {
      detail = this.showFieldErrors(answer.data.detail);
      words = B.t("card.fix_errors");
    }
    this.refresh();
    this.setState("", "error");
    B.showError(this.q(".save-state"), { message: answer.message, detail: detail }, words);
    return false;
  };

  // --- reference image --------------------------------------------------------------------
  SlotCard.prototype.showReference = function (url) {
    const img = this.q(".ref-preview");
    if (url) {
      img.src = url;
      img.hidden = false;
    } else {
      img.removeAttribute("src");
      img.hidden = true;
    }
    this.q(".dropzone-empty").hidden = Boolean(url);
    this.q(".dropzone").classList.toggle("has-image", Boolean(url));
    this.q(".ref-remove").disabled = !url;
    this.root.dataset.hasReference = url ? "true" : "false";
    this.refresh();
  };

  /** The first reference is also the first of the ordered list below (references.js): keep both in step. */
  SlotCard.prototype.announceReferences = function (slot) {
    const block = this.q("[data-references]");
    if (block && slot) block.dispatchEvent(new CustomEvent("boothgate:slot", { detail: slot, bubbles: true }));
  };

  SlotCard.prototype.uploadReference = async function (file) {
    if (!file) return;
    const error = this.q(".ref-error");
    const zone = this.q(".dropzone");
    error.textContent = "";
    zone.classList.add("is-busy");
    const form = new FormData();
    form.append("file", file, file.name || "reference");
    const answer = await B.request("PUT", this.api + "/reference", form);
    zone.classList.remove("is-busy");
    if (answer.ok) {
      this.showReference(answer.data.reference_thumbnail_url);
      this.announceReferences(answer.data);
      B.flash(error, B.t("card.reference_saved"), true);
    } else {
      error.classList.remove("is-ok");
      B.showError(error, answer);
    }
  };

  SlotCard.prototype.removeReference = async function () {
    const error = this.q(".ref-error");
    const answer = await B.request("DELETE", this.api + "/reference");
    if (answer.ok) {
      this.showReference(null);
      this.announceReferences(answer.data);
      B.flash(error, B.t("card.reference_removed"), true);
      this.q(".ref-choose").focus();
    } else {
      B.showError(error, answer);
    }
  };

  // --- Try it -----------------------------------------------------------------------------
  SlotCard.prototype.runTry = async function (file, fallbackOnly) {
    if (!file) return;
    const section = this.q(".try");
    const progress = this.q(".try-progress");
    const summary = this.q(".try-summary");
    const result = this.q(".try-result");
    const button = this.q(".try-open");
    if (this.isDirty() && !(await this.save())) {
      section.hidden = false;
      summary.textContent = B.t("try.save_first");
      summary.className = "try-summary is-error";
      return;
    }
    section.hidden = false;
    progress.hidden = false;
    summary.textContent = "";
    summary.className = "try-summary";
    result.removeAttribute("src");
    this.q(".try-result-link").removeAttribute("href");
    const original = this.q(".try-original");
    if (original.src) URL.revokeObjectURL(original.src);
    original.src = URL.createObjectURL(file);
    button.disabled = true;
    this.root.classList.add("is-trying");
    const started = performance.now();
    const elapsed = this.q(".try-elapsed");
    const tick = function () {
      elapsed.textContent = B.seconds((performance.now() - started) / 1000);
    };
    tick();
    this.timer = setInterval(tick, 200);
    const form = new FormData();
    form.append("file", file, file.name || "photo.jpg");
    if (B.tryValues) B.tryValues(this.root, form); // booth-links: the operator's values for {placeholders}
    const answer = await B.request("POST", this.api + "/try" + (fallbackOnly ? "?fallback_only=true" : ""), form);
    clearInterval(this.timer);
    progress.hidden = true;
    button.disabled = false;
    this.root.classList.remove("is-trying");
    this.showTryAnswer(answer, (performance.now() - started) / 1000);
  };

  SlotCard.prototype.showTryAnswer = function (answer, waited) {
    const summary = this.q(".try-summary");
    if (!answer.ok) {
      B.showError(summary, answer);
      summary.className = "try-summary is-error";
      return;
    }
    const data = answer.data || {};
    const job = data.job || {};
    const took = job.total_seconds !== undefined && job.total_seconds !== null ? job.total_seconds : waited;
    summary.replaceChildren();
    if (data.status === 200 && job.result_url) {
      this.q(".try-result").src = job.result_url;
      this.q(".try-result-link").href = job.result_url;
      summary.append(B.t("try.done", { seconds: B.seconds(took) }));
      if (job.fallback_reason && job.served_by) {
        summary.append(" " + B.t("try.served_by", { slot: job.served_by }) + " " + B.fallbackReason(job.fallback_reason));
      }
      const note = B.deepseekNote(job);
      if (note) summary.append(note);
      summary.className = "try-summary is-ok";
      return;
    }
    summary.append(B.el("strong", null, B.t("try.failed", { seconds: B.seconds(took) })));
    summary.append(B.reason(data.error || job.error, job.message || data.message, "try-reason"));
    const note = B.deepseekNote(job);
    if (note) summary.append(note);
    summary.className = "try-summary is-error";
  };

  // --- wiring -----------------------------------------------------------------------------
  SlotCard.prototype.bind = function () {
    const card = this;
    const root = this.root;
    const refresh = function () {
      card.refresh();
    };
    root.addEventListener("input", function (event) {
      if (event.target.matches(".ref-file, .try-file, .upload-url")) return;
      const field = event.target.closest(".field");
      if (field && field.classList.contains("is-invalid")) {
        field.classList.remove("is-invalid");
        const error = field.querySelector(".field-error");
        if (error) error.textContent = "";
      }
      refresh();
    });
    root.addEventListener("change", function (event) {
      if (!event.target.matches(".ref-file, .try-file")) refresh();
    });
    root.addEventListener("keydown", function (event) {
      if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "s") {
        event.preventDefault();
        if (!card.q(".save").disabled) card.save();
      }
    });
    this.q(".save").addEventListener("click", function () {
      card.save();
    });

    const refFile = this.q(".ref-file");
    this.q(".ref-choose").addEventListener("click", function () {
      refFile.click();
    });
    refFile.addEventListener("change", function () {
      card.uploadReference(refFile.files[0]);
      refFile.value = "";
    });
    this.q(".ref-remove").addEventListener("click", function () {
      card.removeReference();
    });
    // The ordered list changed the first reference (added to an empty slot, removed, moved, made from a prompt):
    // the preview above follows at once, not on the next reload (issue 28).
    this.root.addEventListener("boothgate:references", function (event) {
      card.showReference(event.detail.reference_thumbnail_url || null);
    });
    const zone = this.q(".dropzone");
    zone.addEventListener("click", function () {
      refFile.click();
    });
    zone.addEventListener("dragover", function (event) {
      event.preventDefault();
      zone.classList.add("is-over");
    });
    zone.addEventListener("dragleave", function () {
      zone.classList.remove("is-over");
    });
    zone.addEventListener("drop", function (event) {
      event.preventDefault();
      zone.classList.remove("is-over");
      const files = event.dataTransfer && event.dataTransfer.files;
      if (files && files.length) card.uploadReference(files[0]);
    });

    const copyButton = this.q(".copy-url");
    copyButton.addEventListener("click", async function () {
      const url = card.q(".upload-url");
      const copied = await B.copyText(url.textContent.trim(), copyButton);
      copyButton.classList.toggle("is-done", copied);
      setTimeout(function () {
        copyButton.classList.remove("is-done");
      }, 2000);
      if (!copied) window.getSelection().selectAllChildren(url);
      B.flash(card.q(".copy-status"), copied ? B.t("card.copied") : B.t("card.copy_failed"), copied);
    });

    const tryFile = this.q(".try-file");
    let fallbackOnly = false;
    this.q(".try-open").addEventListener("click", function () {
      fallbackOnly = false;
      tryFile.click();
    });
    this.q(".try-fallback").addEventListener("click", function () {
      fallbackOnly = true;
      tryFile.click();
    });
    tryFile.addEventListener("change", function () {
      card.runTry(tryFile.files[0], fallbackOnly);
      tryFile.value = "";
    });
  };

  container.querySelectorAll("[data-slot]").forEach(function (root) {
    cards.push(new SlotCard(root));
  });

  /** Model fields suggest the models the provider's service offers now, when it has such a list
      (GET /api/providers/{name}/models). Without one the field stays a plain text box. */
  document.querySelectorAll("datalist[data-models-for]").forEach(async function (list) {
    const answer = await B.request("GET", "/api/providers/" + encodeURIComponent(list.dataset.modelsFor) + "/models");
    if (!answer.ok || !answer.data) return;
    const data = answer.data;
    const models = Array.isArray(data) ? data : (data.models || []);
    models.forEach(function (model) {
      const option = document.createElement("option");
      option.value = typeof model === "string" ? model : model.id;
      if (typeof model === "object" && model.label && model.label !== model.id) option.label = model.label;
      list.append(option);
    });
    list.dataset.loaded = String(models.length);
  });

  window.addEventListener("beforeunload", function (event) {
    if (cards.some(function (card) { return card.isDirty(); })) {
      event.preventDefault();
      event.returnValue = "";
    }
  });
  // Files dropped outside a drop zone must not replace the page.
  window.addEventListener("dragover", function (event) {
    event.preventDefault();
  });
  window.addEventListener("drop", function (event) {
    event.preventDefault();
  });
})();
