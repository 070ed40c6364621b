// The Monitoring tab: predictions, ingestion quality, drift and accuracy over time.

import { $, COLORS, POSITIVE, api, chart, percent } from "./common.js";

function overTimeTraces(points) {
  const labels = [...new Set(points.map((p) => p.label))].sort();
  return labels.map((label) => {
    const mine = points.filter((p) => p.label === label);
    return { type: "bar", name: label, x: mine.map((p) => p.bucket), y: mine.map((p) => p.count),
      marker: { color: label === POSITIVE ? COLORS[0] : COLORS[1] } };
  });
}

function qualityTraces(runs) {
  const x = runs.map((r) => r.finished_at);
  const customdata = runs.map((r) => `${r.file}: ${percent(r.invalid_share)} invalid`);
  const hovertemplate = "%{y} rows<br>%{customdata}";
  return runs.length ? [
    { type: "bar", name: "loaded", x, y: runs.map((r) => r.rows_loaded), customdata, hovertemplate, marker: { color: COLORS[0] } },
    { type: "bar", name: "rejected", x, y: runs.map((r) => r.rows_rejected), customdata, hovertemplate, marker: { color: COLORS[1] } },
  ] : [];
}

function driftTraces(checks) {
  if (!checks.length) return [];
  const x = checks.map((c) => c.created_at);
  const features = [...new Set(checks.flatMap((c) => Object.keys(c.p_values)))].sort();
  const lines = features.map((feature, i) => ({
    type: "scatter", mode: "lines+markers", name: feature, x,
    y: checks.map((c) => Math.max(c.p_values[feature] ?? NaN, 1e-12)),
    marker: { color: COLORS[i % COLORS.length] },
  }));
  return [...lines, { type: "scatter", mode: "lines", name: "drift threshold", x,
    y: checks.map((c) => c.threshold), line: { dash: "dash", color: "#888" } }];
}

function accuracyTraces(points, checks, retrains) {
  const versions = [...new Set(points.map((p) => p.model_version))];
  const lines = versions.map((version, i) => {
    const mine = points.filter((p) => p.model_version === version);
    return { type: "scatter", mode: "lines+markers", name: `v${version}`,
      x: mine.map((p) => p.bucket), y: mine.map((p) => p.accuracy),
      customdata: mine.map((p) => p.samples), hovertemplate: "%{y:.0%} of %{customdata}",
      marker: { color: COLORS[i % COLORS.length] } };
  });
  const estimated = checks.filter((c) => c.estimated_accuracy !== null);
  if (estimated.length) {
    lines.push({ type: "scatter", mode: "lines+markers", name: "estimated", x: estimated.map((c) => c.created_at),
      y: estimated.map((c) => c.estimated_accuracy), customdata: estimated.map((c) => c.model_version),
      hovertemplate: "%{y:.1%} expected of v%{customdata}", line: { dash: "dot", color: "#888" }, marker: { color: "#888" } });
  }
  if (!lines.length && !retrains.length) return [];
  return [...lines, { type: "scatter", mode: "markers", name: "retrains",
    x: retrains.map((r) => r.started_at), y: retrains.map(() => 1),
    text: retrains.map((r) => `${r.reason}: ${r.status}${r.challenger_version ? ` (v${r.challenger_version})` : ""}`),
    hovertemplate: "%{text}", marker: { symbol: retrains.map((r) => r.status === "promoted" ? "diamond" : "diamond-open"), size: 11, color: "#555" } }];
}

/** The serving version's figures now: live accuracy and ROC AUC on its latest outcomes, the
 * latest check's estimate, and the held-out accuracy they compare with. */
function showLiveNow(live, checks) {
  const latest = checks.at(-1);
  const shown = (value, format) => (value === null || value === undefined ? "–" : format(value));
  $("#live-accuracy").textContent = shown(live?.accuracy, percent);
  $("#live-roc-auc").textContent = shown(live?.roc_auc, (auc) => auc.toFixed(3));
  $("#estimated-accuracy").textContent = shown(latest?.estimated_accuracy, percent);
  $("#heldout-accuracy").textContent = shown(live?.heldout_accuracy, percent);
  const basis = live ? [`v${live.model_version}, on its ${live.samples} latest labelled predictions`] : [];
  if (latest && latest.estimated_accuracy !== null) {
    basis.push(`estimate from the check of ${new Date(latest.created_at).toLocaleString()} (v${latest.model_version})`);
  }
  $("#live-basis").textContent = basis.join("; ");
}

export async function loadMonitoring() {
  const notice = $("#monitoring-empty");
  let summary;
  try {
    summary = await api("monitoring/summary");
  } catch (error) {
    notice.textContent = error.status === 404
      ? "No monitoring data: this server does not publish a monitoring summary."
      : `No monitoring data: ${error.message}`;
    notice.hidden = false;
    $("#monitoring-charts").hidden = true;
    return;
  }
  notice.hidden = true;
  $("#monitoring-charts").hidden = false;
  const issues = Object.entries(summary.issue_counts || {}).sort((a, b) => a[1] - b[1]);
  chart("chart-over-time", overTimeTraces(summary.predictions_over_time || []),
    { barmode: "stack", yaxis: { title: { text: "predictions" } } });
  chart("chart-probabilities", (summary.probabilities || []).length ? [{
    type: "histogram", x: summary.probabilities, xbins: { start: 0, end: 1, size: 0.05 },
    marker: { color: COLORS[2] }, name: "predictions",
  }] : [], { xaxis: { range: [0, 1], tickformat: ".0%" }, yaxis: { title: { text: "predictions" } }, bargap: 0.05 });
  chart("chart-quality", qualityTraces(summary.quality || []), { barmode: "stack", yaxis: { title: { text: "rows" } } });
  chart("chart-issues", issues.length ? [{
    type: "bar", orientation: "h", y: issues.map(([name]) => name), x: issues.map(([, n]) => n),
    marker: { color: COLORS[3] },
  }] : [], { margin: { t: 10, b: 40, l: 140, r: 10 }, xaxis: { title: { text: "rows" } } });
  chart("chart-drift", driftTraces(summary.drift || []),
    { yaxis: { type: "log", exponentformat: "e", title: { text: "p-value" } } });
  showLiveNow(summary.live, summary.drift || []);
  chart("chart-accuracy", accuracyTraces(summary.live_accuracy || [], summary.drift || [], summary.retrains || []),
    { yaxis: { range: [0, 1.05], tickformat: ".0%", title: { text: "accuracy" } } });
}
