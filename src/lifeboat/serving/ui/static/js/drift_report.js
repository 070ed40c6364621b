// A drift report's page: each test's row opens a plot of the training and window
// distributions it compared, drawn from the shares the report stored. The most drifted
// feature's plot is open from the start.

import { $, COLORS, PLOT_CONFIG, el } from "./common.js";

const shares = JSON.parse($("#distributions").textContent);
const FAMILIES = { features: "features", outputs: "prediction" };  // table id: stored family
const LAYOUT = {
  height: 260, margin: { t: 10, b: 40, l: 50, r: 10 }, paper_bgcolor: "rgba(0,0,0,0)",
  plot_bgcolor: "rgba(0,0,0,0)", legend: { orientation: "h", y: -0.25 }, font: { size: 12 },
  yaxis: { title: { text: "share" }, tickformat: ".0%" },
};

function traces(distribution) {
  const numeric = distribution.kind === "numeric";
  return ["training", "window"].map((name, i) => ({
    type: "bar", name, x: distribution.x, y: distribution[name], marker: { color: COLORS[i === 0 ? 2 : 1] },
    hovertemplate: `${name}: %{y:.1%}<extra>%{x}</extra>`,
    ...(numeric ? { width: distribution.width, opacity: 0.55 } : {}),
  }));
}

function draw(target, distribution) {
  if (!distribution) {
    target.replaceChildren(el("p", { class: "empty" },
      "This report was stored before reports kept their distributions: no plot."));
    return;
  }
  const numeric = distribution.kind === "numeric";
  Plotly.newPlot(target, traces(distribution), {
    ...LAYOUT, barmode: numeric ? "overlay" : "group", xaxis: { type: numeric ? "linear" : "category" },
  }, PLOT_CONFIG);
}

function toggle(body, family) {
  const button = $("button", body);
  const drill = $(".drill", body);
  const open = drill.hidden;
  drill.hidden = !open;
  button.setAttribute("aria-expanded", String(open));
  const plot = $(".drill-plot", drill);
  if (open && !plot.dataset.drawn) {
    plot.dataset.drawn = "yes";
    draw(plot, shares?.[family]?.[body.dataset.feature]);
  }
}

function setUp() {
  for (const [table, family] of Object.entries(FAMILIES)) {
    for (const body of document.querySelectorAll(`#${table} tbody.test`)) {
      $("button", body).addEventListener("click", () => toggle(body, family));
    }
  }
  const first = $("#features tbody.test");
  if (first) toggle(first, "features");
}

// plotly.js is a deferred classic script: it has run before the page's load event.
if (document.readyState === "complete") setUp();
else window.addEventListener("load", setUp);
