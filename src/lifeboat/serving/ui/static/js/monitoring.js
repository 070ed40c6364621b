// The Monitoring tab: predictions, ingestion quality, drift and accuracy over time.

import { $, COLORS, POSITIVE, api, chart, percent, when } from "./common.js";

function overTimeTraces(points, seconds) {
  const labels = [...new Set(points.map((p) => p.label))].sort();
  return labels.map((label) => {
    const mine = points.filter((p) => p.label === label);
    return { type: "bar", name: label, x: mine.map((p) => p.bucket), y: mine.map((p) => p.count),
      width: seconds * 900, offset: seconds * 50,  // ms: 90% of the bucket, from its start
      marker: { color: label === POSITIVE ? COLORS[0] : COLORS[1] } };
  });
}

const UNITS = [60, 300, 900, 3600, 21600, 86400, 604800];  // seconds: tick steps, bucket sizes
const TIME_FORMATS = [[3600, "%H:%M"], [86400, "%b %-d, %H:%M"], [Infinity, "%b %-d, %Y"]];
const MOST_TICKS = 8;

/** A date axis ticked on whole units of `seconds`, at most MOST_TICKS ticks, a unit of
 * room either side: left to itself, plotly zooms in on a single moment down to fractions
 * of a second. */
function timeAxis(times, seconds) {
  if (!times.length) return {};
  const unit = seconds * 1000;
  const start = Math.floor(Math.min(...times) / unit) * unit;
  const end = (Math.floor(Math.max(...times) / unit) + 1) * unit;
  const step = Math.max(1, Math.ceil((end - start) / unit / MOST_TICKS));
  const iso = (ms) => new Date(ms).toISOString();
  const tickformat = TIME_FORMATS.find(([below]) => seconds < below)[1];
  return { type: "date", tick0: iso(start), dtick: step * unit, tickformat,
    range: [iso(start - unit), iso(end + unit)] };
}

/** The axis of a chart of buckets: ticks on bucket starts, each bar filling its bucket. */
const bucketAxis = (points, seconds) =>
  ({ ...timeAxis(points.map((p) => Date.parse(p.bucket)), seconds), hoverformat: "%b %-d, %H:%M" });

/** The axis of a chart of moments (checks, retrains), in whole units that fit their span. */
function momentAxis(moments) {
  const times = moments.map((moment) => Date.parse(moment));
  const span = (Math.max(...times) - Math.min(...times)) / 1000;
  const unit = UNITS.find((seconds) => span / seconds <= MOST_TICKS) ?? UNITS.at(-1);
  return { ...timeAxis(times, unit), hoverformat: "%b %-d, %H:%M:%S" };
}

const BUCKET_NAMES = { "1min": "minute", "5min": "5 minutes", "15min": "15 minutes", "1h": "hour",
  "6h": "6 hours", "1D": "day", "7D": "week" };

/** One bar per ingestion, in order, named by its file: runs finish seconds apart, or days. */
function qualityTraces(runs) {
  const x = runs.map((r) => `${r.file} #${r.run_id}`);
  const customdata = runs.map((r) => `${when(r.finished_at)}: ${percent(r.invalid_share)} invalid`);
  const hovertemplate = "%{y} rows<br>%{customdata}";
  return runs.length ? [
    { type: "bar", name: "loaded", x, y: runs.map((r) => r.rows_loaded), customdata, hovertemplate, marker: { color: COLORS[0] } },
    { type: "bar", name: "rejected", x, y: runs.map((r) => r.rows_rejected), customdata, hovertemplate, marker: { color: COLORS[1] } },
  ] : [];
}

function probabilityTraces(bins) {
  if (!bins.some((b) => b.count)) return [];
  return [{ type: "bar", name: "predictions", x: bins.map((b) => (b.start + b.end) / 2),
    y: bins.map((b) => b.count), width: bins.map((b) => b.end - b.start),
    customdata: bins.map((b) => `${percent(b.start)} to ${percent(b.end)}`),
    hovertemplate: "%{y} predictions at %{customdata}<extra></extra>", marker: { color: COLORS[2] } }];
}

/** The link to the latest drift report, shown once a check has stored one. */
function showReportLink(checks) {
  $("#latest-report").hidden = !checks.length;
  $("#no-report").hidden = Boolean(checks.length);
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
  // Markers too, as dashes: one check draws no line.
  return [...lines, { type: "scatter", mode: "lines+markers", name: "drift threshold", x,
    y: checks.map((c) => c.threshold), line: { dash: "dash", color: "#888" },
    marker: { symbol: "line-ew-open", size: 18, color: "#888" },
    hovertemplate: "p < %{y:.2g}<extra>drift threshold</extra>" }];
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
  const overTime = summary.predictions_over_time || [];
  const all = `All ${summary.predictions.toLocaleString()} predictions`;
  $("#over-time-basis").textContent = overTime.length ? `${all}, per ${BUCKET_NAMES[summary.bucket]} (UTC).` : "";
  $("#probabilities-basis").textContent = summary.predictions ? `${all}, in bins of 5%.` : "";
  chart("chart-over-time", overTimeTraces(overTime, summary.bucket_seconds),
    { barmode: "stack", xaxis: bucketAxis(overTime, summary.bucket_seconds), yaxis: { title: { text: "predictions" } } });
  chart("chart-probabilities", probabilityTraces(summary.probabilities || []),
    { xaxis: { range: [0, 1], tickformat: ".0%" }, yaxis: { title: { text: "predictions" } }, bargap: 0.05 });
  chart("chart-quality", qualityTraces(summary.quality || []),
    { barmode: "stack", xaxis: { type: "category" }, yaxis: { title: { text: "rows" } } });
  chart("chart-issues", issues.length ? [{
    type: "bar", orientation: "h", y: issues.map(([name]) => name), x: issues.map(([, n]) => n),
    marker: { color: COLORS[3] },
  }] : [], { margin: { t: 10, b: 40, l: 140, r: 10 }, xaxis: { title: { text: "rows" } } });
  const checks = summary.drift || [];
  showReportLink(checks);
  chart("chart-drift", driftTraces(checks), { xaxis: momentAxis(checks.map((c) => c.created_at)),
    yaxis: { type: "log", exponentformat: "e", title: { text: "p-value" } } });
  showLiveNow(summary.live, checks);
  const accuracy = accuracyTraces(summary.live_accuracy || [], checks, summary.retrains || []);
  chart("chart-accuracy", accuracy, { xaxis: momentAxis(accuracy.flatMap((trace) => trace.x)),
    yaxis: { range: [0, 1.05], tickformat: ".0%", title: { text: "accuracy" } } });
}
