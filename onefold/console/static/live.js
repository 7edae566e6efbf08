// Overview: refresh the numbers and charts every 5 seconds without reloading the page.
(function () {
  const format = new Intl.NumberFormat("en-US");
  const lag = { identity: [], audiences: [] };  // the last 60 samples (5 minutes)

  function drawLag() {
    const width = 640, height = 160, top = 10, bottom = 20, left = 44;
    const all = lag.identity.concat(lag.audiences);
    const peak = Math.max(10, ...all);
    const x = (i) => left + (i * (width - left - 8)) / 59;
    const y = (v) => top + (height - top - bottom) * (1 - v / peak);
    const line = (values, colour) => `<polyline fill="none" stroke="${colour}" stroke-width="2" points="${
      values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ")}"/>`;
    document.getElementById("lag-chart").innerHTML =
      `<svg class="chart" viewBox="0 0 ${width} ${height}" role="img" aria-label="Processing lag">` +
      `<line x1="${left}" x2="${width - 8}" y1="${y(0)}" y2="${y(0)}" class="grid"/>` +
      `<line x1="${left}" x2="${width - 8}" y1="${y(peak)}" y2="${y(peak)}" class="grid"/>` +
      `<text x="${left - 6}" y="${y(peak) + 4}" class="axis" text-anchor="end">${format.format(peak)}</text>` +
      `<text x="${left - 6}" y="${y(0) + 4}" class="axis" text-anchor="end">0</text>` +
      line(lag.identity, "#4f46e5") + line(lag.audiences, "#0891b2") + "</svg>" +
      '<div class="legend"><span><i style="background:#4f46e5"></i>identity lag (events)</span>' +
      '<span><i style="background:#0891b2"></i>audience lag (events)</span></div>';
  }
  async function refresh() {
    try {
      const response = await fetch("/console/overview.json", { headers: { Accept: "application/json" } });
      if (response.status === 401 || response.redirected) { window.location.reload(); return; }
      const data = await response.json();
      lag.identity = lag.identity.concat([data.numbers.processor_lag]).slice(-60);
      lag.audiences = lag.audiences.concat([data.numbers.audience_lag]).slice(-60);
      if (lag.identity.length > 1) drawLag();
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
