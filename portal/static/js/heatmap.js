// Draws every <canvas data-heatmap="ID"> from the JSON in <script type="application/json"
// id="ID">: one row per GPU, one column per hour, coloured by mean utilization. Pointer and
// arrow keys read a cell out (tooltip, canvas title and a live region below the map).
// Colours come from the stylesheet's tokens (--heat-0 … --heat-100, --heat-none).
(function () {
  "use strict";
  var styles = getComputedStyle(document.documentElement);
  function token(name, fallback) {
    return styles.getPropertyValue(name).trim() || fallback;
  }
  function rgb(hex) {
    var n = parseInt(hex.replace("#", ""), 16);
    return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
  }
  var stops = ["--heat-0", "--heat-25", "--heat-50", "--heat-75", "--heat-100"].map(function (
    name,
    i
  ) {
    return rgb(token(name, ["#eef3f9", "#b9d0ea", "#6f9fd3", "#2f6db3", "#0f3e73"][i]));
  });
  var none = token("--heat-none", "#e4e8ee");
  var ink = token("--color-text-muted", "#4d5b6d");
  var font = token("--font-sans", "system-ui, sans-serif");

  function colour(value) {
    if (value === null || value === undefined) {
      return none;
    }
    var at = (Math.max(0, Math.min(100, value)) / 100) * (stops.length - 1);
    var i = Math.min(Math.floor(at), stops.length - 2);
    var f = at - i;
    var c = stops[i].map(function (v, k) {
      return Math.round(v + (stops[i + 1][k] - v) * f);
    });
    return "rgb(" + c.join(",") + ")";
  }

  var LABEL = 200; // px for the row labels
  var ROW = 18;
  var AXIS = 22;

  function setup(canvas) {
    var source = document.getElementById(canvas.getAttribute("data-heatmap"));
    if (!source) {
      return;
    }
    var data = JSON.parse(source.textContent);
    var tip = document.getElementById(canvas.id + "-tip");
    var readout = document.getElementById(canvas.id + "-readout");
    var hours = data.hours.length;
    var layout = { cell: 1 };
    var focus = { row: 0, col: hours - 1 };

    function draw() {
      var width = canvas.parentElement.clientWidth;
      var height = AXIS + data.rows.length * ROW;
      var ratio = window.devicePixelRatio || 1;
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
      canvas.style.width = width + "px";
      canvas.style.height = height + "px";
      var ctx = canvas.getContext("2d");
      ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
      ctx.clearRect(0, 0, width, height);
      layout.cell = Math.max(1, (width - LABEL) / hours);
      ctx.font = "12px " + font;
      ctx.fillStyle = ink;
      ctx.textBaseline = "middle";
      data.rows.forEach(function (row, r) {
        var y = AXIS + r * ROW;
        var label = row.label;
        while (label.length > 4 && ctx.measureText(label).width > LABEL - 10) {
          label = label.slice(0, -2);
        }
        ctx.fillStyle = ink;
        ctx.fillText(label === row.label ? label : label + "…", 0, y + ROW / 2);
        row.values.forEach(function (value, c) {
          ctx.fillStyle = colour(value);
          ctx.fillRect(LABEL + c * layout.cell, y + 1, Math.ceil(layout.cell), ROW - 2);
        });
      });
      // Midnights: a tick and the date on the axis, a faint line through the rows.
      ctx.fillStyle = ink;
      ctx.textBaseline = "alphabetic";
      data.days.forEach(function (c) {
        var x = LABEL + c * layout.cell;
        ctx.fillText(data.hours[c].slice(0, 6), x + 2, AXIS - 8);
        ctx.fillRect(x, AXIS - 6, 1, height - AXIS + 6);
      });
    }

    function cellAt(x, y) {
      var col = Math.floor((x - LABEL) / layout.cell);
      var row = Math.floor((y - AXIS) / ROW);
      if (col < 0 || col >= hours || row < 0 || row >= data.rows.length) {
        return null;
      }
      return { row: row, col: col };
    }

    function describe(cell) {
      var row = data.rows[cell.row];
      var value = row.values[cell.col];
      var util = value === null ? "no samples" : value + "% busy";
      return row.label + " (" + row.gpu + ") · " + data.hours[cell.col] + " UTC · " + util;
    }

    function show(cell, x, y) {
      var text = describe(cell);
      canvas.title = text;
      if (readout) {
        readout.textContent = text;
      }
      if (tip) {
        tip.textContent = text;
        tip.hidden = false;
        tip.style.left = Math.min(x + 12, canvas.clientWidth - tip.offsetWidth) + "px";
        tip.style.top = y + 14 + "px";
      }
    }

    canvas.addEventListener("mousemove", function (event) {
      var box = canvas.getBoundingClientRect();
      var x = event.clientX - box.left;
      var y = event.clientY - box.top;
      var cell = cellAt(x, y);
      if (cell) {
        show(cell, x, y);
      } else if (tip) {
        tip.hidden = true;
      }
    });
    canvas.addEventListener("mouseleave", function () {
      if (tip) {
        tip.hidden = true;
      }
    });
    canvas.addEventListener("keydown", function (event) {
      var moves = { ArrowLeft: [0, -1], ArrowRight: [0, 1], ArrowUp: [-1, 0], ArrowDown: [1, 0] };
      var move = moves[event.key];
      if (!move || !data.rows.length) {
        return;
      }
      event.preventDefault();
      focus.row = Math.max(0, Math.min(data.rows.length - 1, focus.row + move[0]));
      focus.col = Math.max(0, Math.min(hours - 1, focus.col + move[1]));
      show(focus, LABEL + focus.col * layout.cell, AXIS + focus.row * ROW);
    });

    var pending = null;
    window.addEventListener("resize", function () {
      window.clearTimeout(pending);
      pending = window.setTimeout(draw, 100);
    });
    draw();
    canvas.setAttribute("data-drawn", String(data.rows.length));
  }

  document.querySelectorAll("canvas[data-heatmap]").forEach(setup);
})();
