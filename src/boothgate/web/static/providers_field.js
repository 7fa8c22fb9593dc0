// Issue 28: the settings page's "forget" buttons for fields a provider's model refused.
(function () {
  "use strict";
  document.addEventListener("click", async function (event) {
    const button = event.target.closest ? event.target.closest(".field-forget") : null;
    if (!button) return;
    button.disabled = true;
    const query = new URLSearchParams({ model: button.dataset.model, field: button.dataset.field });
    const url = "/api/providers/" + encodeURIComponent(button.dataset.provider) + "/refused?" + query.toString();
    const answer = await window.Boothgate.request("DELETE", url);
    if (answer.ok) {
      const item = button.closest("li");
      if (item) item.remove();
    } else {
      button.disabled = false;
      window.Boothgate.flash(button, answer, false);
    }
  });
})();
