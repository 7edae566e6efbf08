// Overview: refresh the numbers and charts every 5 seconds without reloading the page.
(function () {
  const format = new Intl.NumberFormat("en-US");
  async function refresh() {
    try {
      const response = await fetch("/console/overview.json", { headers: { Accept: "application/json" } });
      if (response.status === 401 || response.redirected) { window.location.reload(); return; }
      const data = await response.json();
      for (const [key, value] of Object.entries(data.numbers)) {
        const element = document.querySelector(`[data-live="${key}"]`);
        if (element) element.textContent = format.format(value);
      }
      for (const [key, svg] of Object.entries(data.charts)) {
        const element = document.querySelector(`[data-chart="${key}"]`);
        if (element) element.innerHTML = svg;
      }
      document.getElementById("updated").textContent = "Last updated " + new Date().toLocaleTimeString() + ".";
    } catch (error) {
      document.getElementById("updated").textContent = "Could not refresh: " + error;
    }
  }
  setInterval(refresh, 5000);
})();
