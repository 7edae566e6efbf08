// An audience's page: its size follows the audience as it is evaluated, without a reload.
(function () {
  "use strict";
  const size = document.getElementById("size");
  const format = new Intl.NumberFormat("en-US");
  async function refresh() {
    try {
      const response = await fetch("/api/audiences/" + encodeURIComponent(size.dataset.audience));
      if (!response.ok) return;
      const audience = await response.json();
      size.textContent = format.format(audience.size);
    } catch (error) {
      // the next tick tries again
    }
  }
  setInterval(refresh, 3000);
})();
