/* Issue 28: a slot card's ordered references (add, remove, reorder with previews) and a reference made
   from a prompt (priced first, kept only on confirmation). Talks to /api/slots/{tab}/{n}/references. */
(function () {
  "use strict";
  const B = window.Boothgate;

  function render(block, slot) {
    const list = block.querySelector(".refs-list");
    list.textContent = "";
    slot.references.forEach(function (ref, i) {
      const item = B.el("li", "refs-item");
      item.dataset.index = String(ref.index);
      const img = B.el("img");
      img.src = ref.thumbnail_url;
      img.alt = B.t("refs.image", { n: ref.index + 2 });
      img.width = 72;
      img.height = 72;
      item.append(img, B.el("span", "refs-name", B.t("refs.image", { n: ref.index + 2 })));
      [["refs-up", "↑", i === 0], ["refs-down", "↓", i === slot.references.length - 1], ["refs-remove", "×", false]]
        .forEach(function (spec) {
          const button = B.el("button", "btn btn-small btn-quiet " + spec[0], spec[1]);
          button.type = "button";
          button.disabled = spec[2];
          button.setAttribute("aria-label", B.t(spec[0].replace("refs-", "refs.")));
          item.append(button);
        });
      list.append(item);
    });
    block.querySelector(".refs-add").disabled = slot.references.length >= Number(block.dataset.max);
  }

  /** The list changed: re-draw it and tell the card, whose preview above shows the first reference. */
  function changed(block, slot) {
    render(block, slot);
    block.dispatchEvent(new CustomEvent("boothgate:references", { detail: slot, bubbles: true }));
  }

  async function act(block, method, path, body) {
    const error = block.querySelector(".refs-error");
    const answer = await B.request(method, block.dataset.api + path, body);
    if (answer.ok && answer.data && answer.data.references) {
      changed(block, answer.data);
      error.textContent = "";
    } else if (!answer.ok) {
      B.showError(error, answer);
    }
    return answer;
  }

  function order(block, from, to) {
    const indexes = Array.from(block.querySelectorAll(".refs-item")).map(function (li) {
      return Number(li.dataset.index);
    });
    const moved = indexes.splice(from, 1)[0];
    indexes.splice(to, 0, moved);
    return indexes;
  }

  document.addEventListener("click", async function (event) {
    const target = event.target;
    const block = target.closest && target.closest("[data-references]");
    if (!block || !(target instanceof HTMLButtonElement)) return;
    const item = target.closest(".refs-item");
    const at = item ? Array.from(block.querySelectorAll(".refs-item")).indexOf(item) : -1;
    if (target.classList.contains("refs-add")) {
      block.querySelector(".refs-file").click();
    } else if (target.classList.contains("refs-remove")) {
      await act(block, "DELETE", "/references/" + item.dataset.index);
    } else if (target.classList.contains("refs-up")) {
      await act(block, "PUT", "/references/order", { order: order(block, at, at - 1) });
    } else if (target.classList.contains("refs-down")) {
      await act(block, "PUT", "/references/order", { order: order(block, at, at + 1) });
    } else if (target.classList.contains("refs-generate")) {
      const cost = block.querySelector(".refs-cost");
      const prompt = block.querySelector(".refs-prompt").value.trim();
      const price = await B.request("GET", block.dataset.api + "/references/generate");
      if (!price.ok) {
        B.showError(cost, price);
        return;
      }
      const usd = price.data.cost_usd;
      const question = B.t("refs.confirm_cost", { cost: usd == null ? "?" : "$" + Number(usd).toFixed(3), via: price.data.via });
      if (!window.confirm(question)) return;
      target.disabled = true;
      cost.textContent = B.t("refs.generating");
      const made = await B.request("POST", block.dataset.api + "/references/generate", { prompt: prompt });
      target.disabled = false;
      if (!made.ok) {
        B.showError(cost, made);
        return;
      }
      cost.textContent = B.t("refs.cost", { cost: made.data.cost_usd == null ? "?" : "$" + Number(made.data.cost_usd).toFixed(3) });
      const draft = block.querySelector(".refs-draft");
      draft.src = made.data.preview_url;
      draft.hidden = false;
      const keep = block.querySelector(".refs-keep");
      keep.dataset.url = made.data.preview_url;
      keep.hidden = false;
    } else if (target.classList.contains("refs-keep")) {
      const answer = await B.request("POST", target.dataset.url);
      if (answer.ok) {
        changed(block, answer.data);
        target.hidden = true;
        block.querySelector(".refs-draft").hidden = true;
      } else {
        B.showError(block.querySelector(".refs-error"), answer);
      }
    }
  });

  // The card's own reference above was uploaded or removed: the list follows (slots.js).
  document.addEventListener("boothgate:slot", function (event) {
    const block = event.target;
    if (block instanceof HTMLElement && block.matches("[data-references]") && event.detail.references) {
      render(block, event.detail);
    }
  });

  document.addEventListener("change", async function (event) {
    const input = event.target;
    if (!(input instanceof HTMLInputElement) || !input.classList.contains("refs-file") || !input.files.length) return;
    const block = input.closest("[data-references]");
    const form = new FormData();
    form.append("file", input.files[0], input.files[0].name || "reference");
    input.value = "";
    await act(block, "POST", "/references", form);
  });
})();
