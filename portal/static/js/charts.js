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
    var stacked = data.stacked !== false;
    var datasets = data.series.map(function (series) {
      var colour = token(series.color || "--state-" + series.key, "#64748b");
      var drawn = {
        label: series.label,
        data: series.values,
        backgroundColor: colour,
        borderColor: token("--color-surface", "#ffffff"),
        borderWidth: 1,
        borderRadius: 2,
        maxBarThickness: 48,
      };
      if (series.type === "line") {
        // A line over the bars (or alone): e.g. money per day, utilization per hour.
        drawn = {
          type: "line",
          label: series.label,
          data: series.values,
          borderColor: colour,
          backgroundColor: colour,
          borderWidth: 2,
          pointRadius: series.values.length > 60 ? 0 : 2,
          tension: 0.2,
          spanGaps: true,
          order: -1,
        };
      }
      if (series.axis === "y2") {
        drawn.yAxisID = "y2";
      }
      return drawn;
    });
    var valueAxis = {
      stacked: stacked,
      beginAtZero: true,
      grid: { color: grid },
      ticks: { precision: data.precision || 0 },
      title: { display: true, text: data.axis },
    };
    var categoryAxis = {
      stacked: stacked,
      grid: { display: false },
      ticks: { autoSkip: true, maxRotation: 0 },
    };
    var scales = data.horizontal
      ? { x: valueAxis, y: categoryAxis }
      : { x: categoryAxis, y: valueAxis };
    if (data.axis2) {
      // A second value axis on the right, for series in another unit (series.axis "y2").
      scales.y2 = {
        position: "right",
        beginAtZero: true,
        grid: { drawOnChartArea: false },
        ticks: { precision: data.precision2 || 0 },
        title: { display: true, text: data.axis2 },
      };
    }
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
        scales: scales,
      },
    });
  });
})();
