// Draws every <canvas data-chart="ID"> from the JSON in <script type="application/json" id="ID">.
// Colours come from the stylesheet's design tokens (--state-<name>), so charts and badges agree.
(function () {
  "use strict";
  if (typeof window.Chart === "undefined") {
    return;
  }
  var styles = getComputedStyle(document.documentElement);
  function token(name, fallback) {
    var value = styles.getPropertyValue(name).trim();
    return value || fallback;
  }
  var text = token("--color-text-muted", "#4b5563");
  var grid = token("--color-border-subtle", "#e5e7eb");

  Chart.defaults.font.family = token("--font-sans", "system-ui, sans-serif");
  Chart.defaults.font.size = 12;
  Chart.defaults.color = text;

  document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
    var source = document.getElementById(canvas.getAttribute("data-chart"));
    if (!source) {
      return;
    }
    var data = JSON.parse(source.textContent);
    var datasets = data.series.map(function (series) {
      return {
        label: series.label,
        data: series.values,
        backgroundColor: token(series.color || "--state-" + series.key, "#64748b"),
        borderColor: token("--color-surface", "#ffffff"),
        borderWidth: 1,
        borderRadius: 2,
        maxBarThickness: 48,
      };
    });
    var valueAxis = {
      stacked: true,
      beginAtZero: true,
      grid: { color: grid },
      ticks: { precision: 0 },
      title: { display: true, text: data.axis },
    };
    var categoryAxis = {
      stacked: true,
      grid: { display: false },
      ticks: { autoSkip: true, maxRotation: 0 },
    };
    new Chart(canvas, {
      type: "bar",
      data: { labels: data.labels, datasets: datasets },
      options: {
        indexAxis: data.horizontal ? "y" : "x",
        responsive: true,
        maintainAspectRatio: false,
        animation: false, // a console, not a show: numbers appear at once, also on resize
        interaction: { mode: "index", intersect: false },
        plugins: {
          legend: {
            display: datasets.length > 1,
            position: "bottom",
            labels: { boxWidth: 12, boxHeight: 12, padding: 14 },
          },
          tooltip: { mode: "index" },
        },
        scales: data.horizontal
          ? { x: valueAxis, y: categoryAxis }
          : { x: categoryAxis, y: valueAxis },
      },
    });
  });
})();
