// KPI charts: every <canvas data-kpi-chart="ID"> is drawn with Chart.js from the JSON in
// <script type="application/json" id="ID"> (data, not code, so the CSP allows it).
//
// "kind": "trend" - a line per series ("series": [{"label", "values"}], null = gap) over "labels",
//   with a dashed amber line at "warning" and a dashed red one at "threshold" when they are numbers.
//   "unit": "percent" (value * 100, one decimal, "%"), "hours" (one decimal, "h") or "count" (integer);
//   "unit_suffix" replaces the default suffix ("ч"; "" for none). "labels_text": {"warning", "threshold"}
//   names the two lines in legend and tooltip. "better" ("lower" | "higher") is accepted, not drawn.
// "kind": "sales" - bars for "orders" and "units" (left axis), a line for "revenue" (right axis),
//   named by "labels_text": {"orders", "units", "revenue"}.
//
// Numbers follow <html lang>. Canvases are wrapped by the page in a div of fixed height.
// When a chart is drawn its canvas gets data-rendered="1".
(function () {
  "use strict";

  const COLORS = {
    primary: "#0d6efd",
    secondary: "#6c757d",
    amber: "#ffc107",
    red: "#dc3545",
    green: "#198754",
  };
  const SERIES_COLORS = [COLORS.primary, COLORS.secondary, "#6610f2", "#20c997", "#fd7e14"];
  const DEFAULT_SUFFIX = { percent: "%", hours: "h", count: "" };

  function pageLocale() {
    const lang = (document.documentElement.lang || "").trim();
    if (!lang) return undefined;
    try {
      Intl.NumberFormat.supportedLocalesOf([lang]);
      return lang;
    } catch (e) {
      return undefined; // not a valid language tag: the browser's own locale
    }
  }

  function toNumber(value) {
    if (value === null || value === undefined || value === "") return null;
    const n = Number(value);
    return Number.isFinite(n) ? n : null;
  }

  function numbers(list) {
    return Array.isArray(list) ? list.map(toNumber) : [];
  }

  function rgba(hex, alpha) {
    const n = parseInt(hex.slice(1), 16);
    return "rgba(" + ((n >> 16) & 255) + ", " + ((n >> 8) & 255) + ", " + (n & 255) + ", " + alpha + ")";
  }

  function unitFormatter(config, locale) {
    const unit = Object.prototype.hasOwnProperty.call(DEFAULT_SUFFIX, config.unit) ? config.unit : "count";
    const suffixText = typeof config.unit_suffix === "string" ? config.unit_suffix : DEFAULT_SUFFIX[unit];
    const suffix = suffixText.trim() ? " " + suffixText.trim() : "";
    const oneDecimal = { minimumFractionDigits: 1, maximumFractionDigits: 1 };
    const integer = { maximumFractionDigits: 0 };
    return function (value) {
      const n = toNumber(value);
      if (n === null) return "—";
      if (unit === "percent") return (n * 100).toLocaleString(locale, oneDecimal) + suffix;
      if (unit === "hours") return n.toLocaleString(locale, oneDecimal) + suffix;
      return Math.round(n).toLocaleString(locale, integer) + suffix;
    };
  }

  function tooltipLabel(format) {
    return function (item) {
      const name = item.dataset.label ? item.dataset.label + ": " : "";
      return name + format(item.parsed.y);
    };
  }

  function baseOptions() {
    return {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      interaction: { mode: "index", intersect: false },
      plugins: { legend: { position: "bottom" } },
    };
  }

  function referenceLine(label, value, count, color) {
    const data = [];
    for (let i = 0; i < count; i += 1) data.push(value);
    return {
      label: label,
      data: data,
      borderColor: color,
      backgroundColor: color,
      borderWidth: 2,
      borderDash: [6, 4],
      pointRadius: 0,
      pointHoverRadius: 0,
      pointHitRadius: 0,
      fill: false,
      spanGaps: true,
    };
  }

  function trendChart(config, locale) {
    const labels = Array.isArray(config.labels) ? config.labels : [];
    const names = config.labels_text || {};
    const format = unitFormatter(config, locale);
    const datasets = (Array.isArray(config.series) ? config.series : []).map(function (series, i) {
      const color = SERIES_COLORS[i % SERIES_COLORS.length];
      return {
        label: series.label || "",
        data: numbers(series.values),
        borderColor: color,
        backgroundColor: rgba(color, 0.15),
        borderWidth: 2,
        pointRadius: 2, // an isolated value between two gaps still shows
        pointHoverRadius: 4,
        tension: 0,
        fill: false,
        spanGaps: false,
      };
    });
    const warning = toNumber(config.warning);
    const threshold = toNumber(config.threshold);
    if (warning !== null) datasets.push(referenceLine(names.warning || "Warning", warning, labels.length, COLORS.amber));
    if (threshold !== null) datasets.push(referenceLine(names.threshold || "Threshold", threshold, labels.length, COLORS.red));

    const options = baseOptions();
    options.spanGaps = false;
    const ticks = { callback: format };
    if (config.unit !== "percent" && config.unit !== "hours") ticks.precision = 0; // counts: whole-number ticks
    // grace: a little room above the highest value or line, so a line at the top stays visible
    options.scales = { y: { beginAtZero: true, min: 0, grace: "5%", ticks: ticks } };
    options.plugins.legend.labels = { usePointStyle: true, pointStyle: "line", pointStyleWidth: 28 }; // dashed lines look dashed
    options.plugins.tooltip = { callbacks: { label: tooltipLabel(format) } };
    return { type: "line", data: { labels: labels, datasets: datasets }, options: options };
  }

  function salesChart(config, locale) {
    const labels = Array.isArray(config.labels) ? config.labels : [];
    const names = config.labels_text || {};
    const count = function (value) {
      const n = toNumber(value);
      return n === null ? "—" : Math.round(n).toLocaleString(locale, { maximumFractionDigits: 0 });
    };
    const money = function (value) {
      const n = toNumber(value);
      return n === null ? "—" : n.toLocaleString(locale, { maximumFractionDigits: 2 });
    };
    const datasets = [
      {
        type: "bar",
        label: names.orders || "Orders",
        data: numbers(config.orders),
        yAxisID: "y",
        backgroundColor: rgba(COLORS.primary, 0.8),
        borderColor: COLORS.primary,
        order: 2,
      },
      {
        type: "bar",
        label: names.units || "Units",
        data: numbers(config.units),
        yAxisID: "y",
        backgroundColor: rgba(COLORS.secondary, 0.6),
        borderColor: COLORS.secondary,
        order: 3,
      },
      {
        type: "line",
        label: names.revenue || "Revenue",
        data: numbers(config.revenue),
        yAxisID: "y1",
        borderColor: COLORS.green,
        backgroundColor: COLORS.green,
        borderWidth: 2,
        pointRadius: 2,
        tension: 0,
        fill: false,
        spanGaps: false,
        order: 1, // drawn over the bars
      },
    ];
    const options = baseOptions();
    options.scales = {
      y: { position: "left", beginAtZero: true, ticks: { precision: 0, callback: count } },
      y1: { position: "right", beginAtZero: true, grid: { drawOnChartArea: false }, ticks: { callback: money } },
    };
    // "order" draws the line over the bars; legend and tooltip keep the order of the JSON
    const byIndex = function (a, b) { return a.datasetIndex - b.datasetIndex; };
    options.plugins.legend.labels = { sort: byIndex };
    options.plugins.tooltip = {
      itemSort: byIndex,
      callbacks: {
        label: function (item) {
          const format = item.dataset.yAxisID === "y1" ? money : count;
          return (item.dataset.label ? item.dataset.label + ": " : "") + format(item.parsed.y);
        },
      },
    };
    return { type: "bar", data: { labels: labels, datasets: datasets }, options: options };
  }

  const KINDS = { trend: trendChart, sales: salesChart };

  function readConfig(id) {
    const node = id ? document.getElementById(id) : null;
    if (!node || node.tagName !== "SCRIPT" || node.type !== "application/json") return null;
    try {
      return JSON.parse(node.textContent);
    } catch (e) {
      if (window.console) console.warn("kpi-charts: bad JSON in #" + id, e);
      return null;
    }
  }

  function renderAll(root) {
    const Chart = window.Chart;
    if (!Chart) return;
    const locale = pageLocale();
    (root || document).querySelectorAll("canvas[data-kpi-chart]").forEach(function (canvas) {
      if (canvas.dataset.rendered === "1" || (Chart.getChart && Chart.getChart(canvas))) return;
      const config = readConfig(canvas.dataset.kpiChart);
      if (!config) return;
      const build = KINDS[config.kind];
      if (!build) {
        if (window.console) console.warn("kpi-charts: unknown kind in #" + canvas.dataset.kpiChart, config.kind);
        return;
      }
      new Chart(canvas, build(config, locale));
      canvas.dataset.rendered = "1";
    });
  }

  window.PortalKpiCharts = { renderAll: renderAll };
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { renderAll(); });
  } else {
    renderAll();
  }
})();
