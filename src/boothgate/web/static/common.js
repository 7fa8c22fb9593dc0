/* Shared helpers for the admin pages: strings, JSON requests, copying, small DOM helpers.
   No inline script anywhere (the CSP forbids it): pages pass data through data-* attributes and
   the string catalogue through a JSON block. */
"use strict";

(function () {
  const catalogueBlock = document.getElementById("i18n");
  const strings = catalogueBlock ? JSON.parse(catalogueBlock.textContent || "{}") : {};

  /** The catalogue string for `key` with {placeholders} filled in. */
  function t(key, params) {
    let text = Object.prototype.hasOwnProperty.call(strings, key) ? strings[key] : key;
    if (params) {
      for (const [name, value] of Object.entries(params)) text = text.split("{" + name + "}").join(String(value));
    }
    return text;
  }

  function has(key) {
    return Object.prototype.hasOwnProperty.call(strings, key);
  }

  /** A failure in plain words: the catalogue's wording for a known code, else the server's message. */
  function explain(code, message) {
    // A job's code speaks about the booth's post (its upload password), not about this page's sign-in.
    if (code && has("job_error." + code)) return t("job_error." + code);
    if (code && has("error." + code)) return t("error." + code);
    return message || t("error.unknown");
  }

  /** A job's failure as a node: the catalogue's words in the UI's language, and the server's own
      detail (often English) behind a "details" toggle, never glued after them. */
  function reason(code, message, className, prefix) {
    const box = el("div", className || "job-error");
    const words = explain(code, message);
    box.append(el("span", "reason-text", (prefix ? prefix + ": " : "") + words));
    if (message && message !== words) {
      const more = el("details", "reason-details");
      more.append(el("summary", null, t("common.details")), el("span", "muted small", message));
      box.append(more);
    }
    return box;
  }

  /** A failed admin-API answer in the page's language: the catalogue's wording for the answer's error
      code or its status, never the server's own (English) detail, which `detailOf` keeps for a toggle. */
  function describeHttp(status, data) {
    const code = data && typeof data.error === "string" ? data.error : "";
    if (code && (has("job_error." + code) || has("error." + code))) return explain(code);
    if (status === 400) return t("error.bad_request");
    if (status === 401) return t("error.unauthorized");
    if (status === 403) return t("error.forbidden");
    if (status === 404) return t("error.not_found");
    if (status === 409) return t("error.conflict");
    if (status === 413) return t("error.too_large");
    if (status === 415) return t("error.unsupported_image");
    if (status === 422) return t("error.invalid");
    if (status === 429) return t("error.throttled");
    if (status === 502 || status === 503) return t("error.unavailable");
    if (status === 504) return t("error.timeout");
    if (status >= 500) return t("error.server");
    return t("error.http", { status: status });
  }

  /** The server's own words about a failure (a string detail, a validation list, a message), or "". */
  function detailOf(data) {
    if (!data) return "";
    const detail = data.detail;
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail)) {
      return detail.map(function (item) {
        const where = (item.loc || []).filter(function (part) { return part !== "body"; }).join(".");
        return (where ? where + ": " : "") + (item.msg || "");
      }).join("; ");
    }
    if (data.errors && typeof data.errors === "object") {
      return Object.keys(data.errors).map(function (name) { return name + ": " + data.errors[name]; }).join("; ");
    }
    return typeof data.message === "string" ? data.message : "";
  }

  /** Words and, when the server said something else, its detail behind a "details" toggle. */
  function withDetails(words, detail) {
    const box = el("span", "error-words");
    box.append(el("span", "reason-text", words));
    if (detail && detail !== words) {
      const more = el("details", "reason-details");
      more.append(el("summary", null, t("common.details")), el("span", "muted small", detail));
      box.append(more);
    }
    return box;
  }

  /** Show a failed answer in `element`: the catalogue's words, the server's detail behind a toggle. */
  function showError(element, answer, words) {
    if (!element) return;
    element.replaceChildren(withDetails(words || answer.message, answer.detail));
  }

  /** fetch() for the JSON API: never throws; returns {ok, status, data, message}. */
  async function request(method, url, body) {
    const init = { method: method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (body instanceof FormData) {
      init.body = body;
    } else if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers["Content-Type"] = "application/json";
    }
    let response;
    try {
      response = await fetch(url, init);
    } catch (err) {
      return { ok: false, status: 0, data: null, message: t("error.network") };
    }
    let data = null;
    if ((response.headers.get("content-type") || "").includes("json")) {
      try {
        data = await response.json();
      } catch (err) {
        data = null;
      }
    }
    return {
      ok: response.ok,
      status: response.status,
      data: data,
      message: response.ok ? "" : describeHttp(response.status, data),
      detail: response.ok ? "" : detailOf(data),
    };
  }

  /** Copy text to the clipboard. Plain http on a venue's network is not a "secure context", where
      the async clipboard does not exist, so fall back to a selected textarea and execCommand. */
  async function copyText(text, returnFocusTo) {
    if (navigator.clipboard && window.isSecureContext) {
      try {
        await navigator.clipboard.writeText(text);
        return true;
      } catch (err) {
        /* fall through to the old way */
      }
    }
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "offscreen";
    document.body.appendChild(area);
    area.select();
    let copied = false;
    try {
      copied = document.execCommand("copy");
    } catch (err) {
      copied = false;
    }
    area.remove();
    if (returnFocusTo) returnFocusTo.focus();
    return copied;
  }

  const flashTimers = new WeakMap();

  /** Show a short confirmation in a status element (its space is reserved: no layout jump). */
  function flash(element, text, good, keepMs) {
    if (!element) return;
    clearTimeout(flashTimers.get(element));
    element.classList.toggle("is-ok", good !== false);
    element.classList.toggle("is-error", good === false);
    if (text && typeof text === "object" && "ok" in text) {
      showError(element, text); // a failed answer stays (its details may be opened): no timer
      return;
    }
    element.textContent = text;
    element.classList.toggle("is-ok", good !== false);
    element.classList.toggle("is-error", good === false);
    flashTimers.set(
      element,
      setTimeout(function () {
        element.textContent = "";
      }, keepMs || 3000)
    );
  }

  /** document.createElement with a class and text (text, never HTML: data cannot inject markup). */
  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function seconds(value) {
    if (value === null || value === undefined) return "—";
    const number = Number(value);
    return t("unit.seconds", { value: number.toFixed(number < 1 ? 2 : 1) });
  }

  /** What DeepSeek wrote for a job (or why it was skipped), for Try it and the jobs list; else null. */
  function deepseekNote(job) {
    const notes = (job && job.provider_notes && job.provider_notes.deepseek) || null;
    if (!notes) return null;
    const box = el("div", "deepseek-note");
    if (notes.instruction) {
      box.append(el("strong", null, t("deepseek.instruction")), el("p", "deepseek-instruction", notes.instruction));
    } else {
      box.append(el("span", "muted", t("deepseek.fallback", { reason: notes.reason || notes.code || "?" })));
    }
    return box;
  }

  // A thumbnail whose file is gone (retention, a job that kept no photo) shows a quiet dash instead of a
  // broken-image icon: pages mark such images with data-fallback (no inline handlers under the CSP).
  document.addEventListener(
    "error",
    function (event) {
      const target = event.target;
      if (target && target.tagName === "IMG" && target.dataset.fallback !== undefined) {
        target.replaceWith(el("span", "muted thumb-missing", target.dataset.fallback || "—"));
      }
    },
    true
  );
  // On a phone the tab row scrolls sideways: bring the active tab into view rather than cutting it off.
  const activeTab = document.querySelector(".topbar .tabs .tab.is-active");
  if (activeTab) {
    const row = activeTab.parentElement;
    const left = activeTab.offsetLeft - row.offsetLeft;
    if (left + activeTab.offsetWidth > row.scrollLeft + row.clientWidth) {
      row.scrollLeft = left - (row.clientWidth - activeTab.offsetWidth) / 2;
    }
  }

  /** Why a fallback served a job, in words: its own wording, else the primary's error explained. */
  function fallbackReason(code) {
    if (has("fallback." + code)) return t("fallback." + code);
    return explain(code, code);
  }

  window.Boothgate = { t: t, has: has, explain: explain, request: request, copyText: copyText,
                       flash: flash, el: el, seconds: seconds, deepseekNote: deepseekNote };
  window.Boothgate.fallbackReason = fallbackReason;
  window.Boothgate.reason = reason;
  window.Boothgate.showError = showError;
  window.Boothgate.withDetails = withDetails;

  /** An amount already in the statistics currency (an event's budget): "1,9" and "₽" on a Russian page. */
  window.Boothgate.amount = function (value) {
    return Number(value || 0).toLocaleString(document.documentElement.lang, { maximumFractionDigits: 2 });
  };
  window.Boothgate.currencySign = function (code) {
    const upper = String(code || "").toUpperCase();
    return upper === "RUB" ? "₽" : upper === "USD" ? "$" : upper;
  };

  /** A cost (the server counts in USD) in the statistics currency: ₽ at the configured rate, or $. */
  window.Boothgate.money = function (usd) {
    const panel = document.getElementById("stats-panel");
    const value = Number(usd || 0);
    if (panel && panel.dataset.currency === "rub") {
      const rub = value * Number(panel.dataset.rate || 0);
      return rub.toLocaleString(document.documentElement.lang, { maximumFractionDigits: rub < 100 ? 2 : 0 }) + " ₽";
    }
    return "$" + value.toFixed(value < 1 ? 4 : 2);
  };
})();
