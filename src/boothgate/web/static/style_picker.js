/* Offline style slots (issue 22): a row of previews (the sample photo in each style, rendered by the
   server) is the one control of the slot's `style` option (a hidden input the card sends) and saves the card. */
"use strict";

(function () {
  const B = window.Boothgate;
  document.querySelectorAll("[data-slot]").forEach(function (root) {
    const picker = root.querySelector(".style-picker");
    const select = picker && picker.querySelector('[data-option="style"]');
    if (!B || !picker || !select) return;
    const choices = Array.from(picker.querySelectorAll("[data-style-choice]"));

    function show(style) {
      choices.forEach(function (button) {
        const chosen = button.dataset.styleChoice === style;
        button.classList.toggle("is-chosen", chosen);
        button.setAttribute("aria-pressed", chosen ? "true" : "false");
      });
    }

    choices.forEach(function (button) {
      button.addEventListener("click", function () {
        select.value = button.dataset.styleChoice;
        select.dispatchEvent(new Event("change", { bubbles: true }));
        show(select.value);
        const save = root.querySelector(".save");
        if (save && !save.disabled) save.click();
      });
    });
    select.addEventListener("change", function () {
      show(select.value);
    });
  });
})();
