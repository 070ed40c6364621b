// The Lifeboat UI: five tabs over one dataset's JSON API. Plain JS, no build step, no framework.
// The page names where that API is (data-api) and where the service's root is (data-root),
// both relative to the page, so it also works behind a proxy that mounts it under a prefix.
"use strict";

const $ = (selector, root = document) => root.querySelector(selector);
const POSITIVE = document.body.dataset.positiveLabel;
const API = document.body.dataset.api;  // this dataset's routes: `${API}predict`, ...
const ROOT = document.body.dataset.root;  // the service's own: `${ROOT}openapi.json`
const COLORS = ["#1f7a5c", "#c0392b", "#2c6fbb", "#b7791f", "#6b46c1"];
const PLOT_CONFIG = { displaylogo: false, responsive: true, displayModeBar: false };
const HEADLINE_METRICS = ["test_roc_auc", "test_accuracy", "test_f1", "test_precision", "test_recall", "test_brier"];

class ApiError extends Error {
  constructor(status, body) {
    super(describeError(status, body));
    this.status = status;
    this.body = body;
  }
}

/** fetch() of this dataset's `path`, with the page's API key if one is entered (a server
 * may need one to read, score and take feedback, not just for admin actions), that throws
 * ApiError with the server's own words when the answer is not 2xx. */
async function api(path, options = {}) {
  const key = $("#api-key").value.trim();
  const headers = key ? { authorization: `Bearer ${key}`, ...options.headers } : options.headers;
  return request(`${API}${path}`, { ...options, headers });
}

/** The key is kept for this browser tab's session, so a reload or another dataset's page
 * does not ask again; entering it reloads what a missing key left empty. */
function setUpKey() {
  const field = $("#api-key");
  field.value = sessionStorage.getItem("lifeboat-api-key") || "";
  field.addEventListener("change", () => {
    sessionStorage.setItem("lifeboat-api-key", field.value.trim());
    showChampion();
    const selected = $("[role=tab][aria-selected=true]");
    if (selected && loaders[selected.dataset.tab]) loaders[selected.dataset.tab]();
  });
}

async function request(url, options = {}) {
  const response = await fetch(url, options);
  const type = response.headers.get("content-type") || "";
  const body = type.includes("json") ? await response.json() : await response.text();
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

function describeError(status, body) {
  const detail = body && body.detail;
  if (Array.isArray(detail)) return detail.map((e) => `${fieldOf(e.loc) || "request"}: ${e.msg}`).join("; ");
  if (typeof detail === "string") return detail;
  return `the server answered ${status}`;
}

/** The field a 422 error is about: the last string in its loc that is not "body". */
function fieldOf(loc) {
  return (loc || []).filter((part) => typeof part === "string" && part !== "body").pop();
}

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

const percent = (p) => `${(p * 100).toFixed(1)}%`;
const when = (iso) => (iso ? new Date(iso).toLocaleString() : "");

// ---------------------------------------------------------------- tabs

const loaders = {};

function activate(name, focus = false) {
  for (const tab of document.querySelectorAll("[role=tab]")) {
    const selected = tab.dataset.tab === name;
    tab.setAttribute("aria-selected", String(selected));
    tab.tabIndex = selected ? 0 : -1;
    $(`#${tab.getAttribute("aria-controls")}`).hidden = !selected;
    if (selected && focus) tab.focus();
  }
  history.replaceState(null, "", `#${name}`);
  if (loaders[name]) loaders[name]();
}

function setUpTabs() {
  const tabs = [...document.querySelectorAll("[role=tab]")];
  tabs.forEach((tab, index) => {
    tab.addEventListener("click", () => activate(tab.dataset.tab));
    tab.addEventListener("keydown", (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (step) activate(tabs[(index + step + tabs.length) % tabs.length].dataset.tab, true);
    });
  });
  const wanted = location.hash.slice(1);
  activate(tabs.some((tab) => tab.dataset.tab === wanted) ? wanted : "predict");
}

async function showChampion() {
  const target = $("#champion");
  try {
    const model = await api("model");
    const auc = model.metrics.test_roc_auc;
    target.textContent = `Champion: ${model.name} v${model.version}` +
      (auc === undefined ? "" : ` · ROC AUC ${auc.toFixed(3)}`);
    target.classList.remove("warn");
  } catch (error) {
    target.textContent = error.status === 401 ? "Enter the API key to see the model"
      : "No model is serving yet";
    target.classList.add("warn");
  }
}

// ---------------------------------------------------------------- predict: one record

const labelOf = (name) => {
  const label = $(`label[for="f-${name}"]`);
  return label ? label.firstChild.textContent.trim() : name;
};

/** The form as the API wants it: numbers as numbers, empty optional fields left out. */
function readRecord(form) {
  const record = {};
  for (const input of form.querySelectorAll("[data-type]")) {
    const raw = input.value.trim();
    if (raw === "") continue;
    record[input.name] = input.dataset.type === "string" ? raw : Number(raw);
  }
  return record;
}

function clearErrors(form) {
  for (const node of form.querySelectorAll(".error")) node.textContent = "";
  for (const node of form.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
}

function showFieldError(form, name, message) {
  const input = form.querySelector(`[name="${name}"]`);
  if (!input) return false;
  input.setAttribute("aria-invalid", "true");
  $(`#e-${name}`).textContent = message;
  return true;
}

/** The browser's own checks first (required, bounds, whole numbers), shown like the server's. */
function checkLocally(form) {
  let firstBad = null;
  for (const input of form.querySelectorAll("[data-type]")) {
    if (input.checkValidity()) continue;
    showFieldError(form, input.name, input.validationMessage);
    firstBad = firstBad || input;
  }
  if (firstBad) firstBad.focus();
  return firstBad === null;
}

async function submitPrediction(event) {
  event.preventDefault();
  const form = event.currentTarget;
  clearErrors(form);
  if (!checkLocally(form)) return;
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const body = JSON.stringify({ ...readRecord(form), source: "webapp", explain: true });
    const answer = await api("predict", {
      method: "POST", headers: { "content-type": "application/json" }, body,
    });
    showPrediction(answer.predictions[0], answer.model);
  } catch (error) {
    showPredictError(form, error);
  } finally {
    button.disabled = false;
  }
}

function showPredictError(form, error) {
  const detail = error instanceof ApiError && Array.isArray(error.body.detail) ? error.body.detail : [];
  const unplaced = detail.filter((e) => !showFieldError(form, fieldOf(e.loc), e.msg));
  if (detail.length === 0 || unplaced.length > 0) {
    $("#predict-error").textContent = unplaced.length ? unplaced.map((e) => e.msg).join("; ") : error.message;
  }
}

function showPrediction(prediction, model) {
  $("#predict-empty").hidden = true;
  $("#predict-output").hidden = false;
  const positive = prediction.label === POSITIVE;
  const verdict = $("#verdict");
  verdict.className = `verdict ${positive ? "up" : "down"}`;
  verdict.textContent = `${prediction.label} · ${percent(prediction.probability)} chance of “${POSITIVE}”`;
  drawGauge(prediction.probability);
  showContributions(prediction.contributions);
  $("#predict-meta").textContent = `Model ${model.name} v${model.version} · prediction ${prediction.id}`;
}

function drawGauge(probability) {
  const gauge = $("#gauge");
  gauge.setAttribute("aria-label", `Probability of ${POSITIVE}: ${percent(probability)}`);
  Plotly.react(gauge, [{
    type: "indicator", mode: "gauge+number", value: probability * 100,
    number: { suffix: "%", valueformat: ".1f" },
    gauge: {
      axis: { range: [0, 100], ticksuffix: "%" },
      bar: { color: probability >= 0.5 ? COLORS[0] : COLORS[1], thickness: 0.3 },
      steps: [{ range: [0, 50], color: "#fbeaea" }, { range: [50, 100], color: "#e7f4ee" }],
      threshold: { line: { color: "#1d2a3a", width: 3 }, thickness: 0.8, value: 50 },
    },
  }], { height: 230, margin: { t: 25, b: 20, l: 45, r: 45 }, paper_bgcolor: "rgba(0,0,0,0)" }, PLOT_CONFIG);
}

/** Shown only when the server sent them: no explanation is better than an invented one. */
function showContributions(contributions) {
  const list = $("#contributions");
  list.replaceChildren();
  $("#explanation").hidden = !contributions;
  if (!contributions) return;
  const largest = Math.max(...contributions.map((c) => Math.abs(c.effect)), 1e-9);
  for (const c of contributions) {
    const up = c.effect >= 0, points = Math.abs(c.effect * 100).toFixed(1);
    const shown = points === "0.0" ? ["none", "no effect"] : up ? ["up", `▲ +${points} pts`] : ["down", `▼ −${points} pts`];
    list.append(el("li", { class: shown[0] },
      el("span", { class: "feature" }, `${labelOf(c.feature)} `, el("em", {}, String(c.value))),
      el("span", { class: "bar", "aria-hidden": "true" },
        el("span", { style: `width:${(Math.abs(c.effect) / largest) * 100}%` })),
      el("span", { class: "effect" }, shown[1])));
  }
}

// ---------------------------------------------------------------- predict: a CSV file

/** RFC 4180 CSV (quoted fields, doubled quotes, CRLF) into rows of strings. */
function parseCsv(text) {
  const rows = [];
  let row = [], field = "", quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') { field += '"'; i++; }
      else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ",") { row.push(field); field = ""; }
    else if (ch === "\n" || ch === "\r") {
      if (ch === "\r" && text[i + 1] === "\n") i++;
      row.push(field); rows.push(row); row = []; field = "";
    } else field += ch;
  }
  if (field !== "" || row.length) { row.push(field); rows.push(row); }
  return rows;
}

/** One request with Accept: text/csv: the table shows exactly the file offered for download. */
async function submitCsv(event) {
  event.preventDefault();
  const file = $("#csv-file").files[0];
  const error = $("#csv-error"), table = $("#csv-table"), link = $("#csv-download");
  error.textContent = "";
  if (!file) { error.textContent = "Choose a CSV file first."; return; }
  const button = event.currentTarget.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const data = new FormData();
    data.append("file", file);
    const text = await api("predict/csv?source=webapp", {
      method: "POST", body: data, headers: { accept: "text/csv" },
    });
    const [header, ...rows] = parseCsv(text);
    showCsvTable(table, header, rows);
    $("#csv-summary").textContent = `${rows.length} row${rows.length === 1 ? "" : "s"} scored from ${file.name}.`;
    if (link.href) URL.revokeObjectURL(link.href);
    link.href = URL.createObjectURL(new Blob([text], { type: "text/csv" }));
    link.download = `${file.name.replace(/\.[^.]*$/, "")}.predictions.csv`;
    link.hidden = false;
  } catch (failure) {
    table.hidden = link.hidden = true;
    $("#csv-summary").textContent = "";
    error.textContent = failure.message;
  } finally {
    button.disabled = false;
  }
}

/** The verdict first, then the row as uploaded; ids and raw classes stay in the download. */
function showCsvTable(table, header, rows) {
  const at = (name) => header.indexOf(name);
  const hidden = new Set([at("prediction_id"), at("prediction"), at("label"), at("probability")]);
  const inputs = header.map((name, column) => column).filter((column) => !hidden.has(column));
  const head = el("thead", {}, el("tr", {},
    ...["#", "Prediction", "Probability", ...inputs.map((column) => header[column])]
      .map((name) => el("th", { scope: "col" }, name))));
  const body = el("tbody", {}, ...rows.map((row, index) => el("tr", {},
    el("td", { class: "num" }, String(index + 1)),
    el("td", {}, el("span", { class: `pill ${row[at("label")] === POSITIVE ? "up" : "down"}` }, row[at("label")])),
    el("td", { class: "num" }, percent(Number(row[at("probability")]))),
    ...inputs.map((column) => el("td", {}, row[column])))));
  table.replaceChildren(head, body);
  table.hidden = false;
}

// ---------------------------------------------------------------- past predictions

const past = { offset: 0 };

function summarize(input) {
  return Object.entries(input).filter(([, value]) => value !== null && value !== "")
    .map(([key, value]) => `${key} ${value}`).join(" · ");
}

async function loadPast() {
  const form = $("#past-filters");
  const params = new URLSearchParams({ limit: form.limit.value, offset: String(past.offset) });
  if (form.source.value) params.set("source", form.source.value);
  for (const name of ["since", "until"]) {
    if (form[name].value) params.set(name, new Date(form[name].value).toISOString());
  }
  $("#past-error").textContent = "";
  try {
    showPastPage(await api(`past-predictions?${params}`));
  } catch (error) {
    $("#past-error").textContent = error.message;
  }
}

function showPastPage(page) {
  const head = el("thead", {}, el("tr", {}, ...["Time", "Source", "Input", "Prediction", "Probability",
    "Model", "Latency"].map((name) => el("th", { scope: "col" }, name))));
  const rows = page.items.map((item) => el("tr", {},
    el("td", { class: "nowrap" }, when(item.created_at)),
    el("td", {}, el("span", { class: "pill neutral" }, item.source)),
    el("td", { class: "input", title: JSON.stringify(item.input) }, summarize(item.input)),
    el("td", {}, el("span", { class: `pill ${item.label === POSITIVE ? "up" : "down"}` }, item.label)),
    el("td", { class: "num" }, percent(item.probability)),
    el("td", { class: "nowrap", title: item.model_name }, `v${item.model_version}`),
    el("td", { class: "num" }, `${item.latency_ms.toFixed(1)} ms`)));
  const body = el("tbody", {}, ...(rows.length ? rows
    : [el("tr", {}, el("td", { colspan: "7", class: "empty" }, "No predictions match these filters."))]));
  $("#past-table").replaceChildren(head, body);
  const last = Math.min(page.offset + page.items.length, page.total);
  $("#past-status").textContent = page.total
    ? `${page.offset + 1}–${last} of ${page.total}` : "0 predictions";
  $("#past-prev").disabled = page.offset === 0;
  $("#past-next").disabled = last >= page.total;
}

function setUpPast() {
  const form = $("#past-filters");
  form.addEventListener("submit", (event) => { event.preventDefault(); past.offset = 0; loadPast(); });
  $("#past-prev").addEventListener("click", () => {
    past.offset = Math.max(0, past.offset - Number(form.limit.value)); loadPast();
  });
  $("#past-next").addEventListener("click", () => { past.offset += Number(form.limit.value); loadPast(); });
}

// ---------------------------------------------------------------- monitoring

const CHART_LAYOUT = {
  height: 280, margin: { t: 10, b: 40, l: 50, r: 10 }, paper_bgcolor: "rgba(0,0,0,0)",
  plot_bgcolor: "rgba(0,0,0,0)", legend: { orientation: "h", y: -0.2 }, font: { size: 12 },
};

function chart(id, traces, layout = {}) {
  const target = $(`#${id}`);
  if (!traces.length) {
    Plotly.purge(target);
    target.replaceChildren(el("p", { class: "empty" }, "No data yet."));
    return;
  }
  // Only the message goes: Plotly.react redraws into the plot it finds, so emptying the
  // target would leave a redraw of unchanged traces blank.
  target.querySelector(":scope > .empty")?.remove();
  Plotly.react(target, traces, { ...CHART_LAYOUT, ...layout }, PLOT_CONFIG);
}

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

async function loadMonitoring() {
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

// ---------------------------------------------------------------- models

const MAX_CURVES = 5;  // the newest versions: more lines than this are hard to tell apart
const UNIT_AXIS = { range: [0, 1] };
const LEGEND_BELOW = { legend: { orientation: "h", y: -0.3 }, margin: { t: 10, b: 80, l: 50, r: 10 } };
const models = { versions: [], picked: null };
const curvesFetched = new Map();  // version → its curves, asked once: they never change

async function loadModels() {
  $("#models-error").textContent = "";
  try {
    const [page, history] = await Promise.all([api("models"), api("models/history")]);
    models.versions = page.versions;
    showModels(page);
    showHistory(history.items);
    await Promise.all([showCurves(page.versions.slice(0, MAX_CURVES)), showSelected()]);
  } catch (error) {
    $("#models-error").textContent = error.message;
  }
}

function curvesOf(version) {
  if (!curvesFetched.has(version)) {
    curvesFetched.set(version, api(`models/${encodeURIComponent(version)}/curves`).catch((error) => {
      curvesFetched.delete(version);
      throw error;
    }));
  }
  return curvesFetched.get(version);
}

const versionName = (v) => `v${v.version}${v.is_champion ? " ★" : ""}`;

/** ROC and calibration per version; a version trained before curves were logged is left out. */
async function showCurves(versions) {
  const found = await Promise.all(versions.map((v) =>
    curvesOf(v.version).then((c) => [v, c]).catch(() => null)));
  const curves = found.filter(Boolean);
  const diagonal = { x: [0, 1], y: [0, 1], mode: "lines", name: "chance / perfect",
    line: { dash: "dot", color: "#94a3b8" }, hoverinfo: "skip" };
  chart("chart-roc", curves.length ? [diagonal, ...curves.map(([v, c]) => ({
    x: c.roc.fpr, y: c.roc.tpr, mode: "lines", name: versionName(v) }))] : [],
  { ...LEGEND_BELOW, xaxis: { ...UNIT_AXIS, title: { text: "false positive rate" } }, yaxis: { ...UNIT_AXIS, title: { text: "true positive rate" } } });
  chart("chart-calibration", curves.length ? [diagonal, ...curves.map(([v, c]) => ({
    x: c.calibration.predicted, y: c.calibration.observed, mode: "lines+markers", name: versionName(v) }))] : [],
  { ...LEGEND_BELOW, xaxis: { ...UNIT_AXIS, title: { text: "predicted probability" } }, yaxis: { ...UNIT_AXIS, title: { text: "observed share" } } });
}

/** The headline metrics when the registry has them, else every metric it has. */
function metricColumns(versions) {
  const present = [...new Set(versions.flatMap((v) => Object.keys(v.metrics)))].sort();
  const headline = HEADLINE_METRICS.filter((name) => present.includes(name));
  return headline.length ? headline : present;
}

const formatMetric = (value) => (Number.isInteger(value) ? String(value) : value.toFixed(3));
const gateScore = (value) => value.toFixed(4);
const gateGain = (value) => `${value < 0 ? "" : "+"}${value.toFixed(4)}`;

/** The gate's comparison in one line: "roc_auc 0.8861 vs v1 0.8712, +0.0149 [+0.0042,
 * +0.0251] on 277 held-out + 60 labelled". */
function gateEvidence(p) {
  const [low, high] = p.interval;
  return `${p.metric} ${gateScore(p.challenger_score)} vs v${p.champion_version} ${gateScore(p.champion_score)}, ` +
    `${gateGain(p.delta)} [${gateGain(low)}, ${gateGain(high)}] on ${p.heldout_rows} held-out + ${p.recent_rows} labelled`;
}

/** Promoted or refused, with the evidence and, one click away, the full reason; a decision
 * that compared nothing (a first model, too few rows) is its reason alone. */
function gateDecision(p) {
  const verdict = el("span", { class: `pill ${p.promoted ? "up" : "down"}` }, p.promoted ? "promoted" : "refused");
  if (p.delta === undefined) return el("div", { class: "gate" }, verdict, " ", p.reason);
  return el("details", { class: "gate" }, el("summary", {}, verdict, " ", gateEvidence(p)),
    el("p", { class: "reason" }, p.reason));
}

/** "name@version", broken after the "@" when the column is narrow. */
function featureView(label) {
  if (!label) return ["–"];
  const at = label.indexOf("@") + 1;
  return [label.slice(0, at), el("wbr"), label.slice(at)];
}

/** The version's training run in the MLflow UI, in a tab of its own; nothing without a UI. */
function runLink(v) {
  if (!v.run_url) return null;
  return el("a", { class: "run-link", href: v.run_url, target: "_blank", rel: "noopener",
    title: "Its training run in the MLflow UI" }, "run ↗");
}

/** One tbody per version: its row (its aliases beside its number, but the champion's, which
 * the status says), and the gate's decision on it beneath when there is one. */
function versionRows(v, metrics) {
  const columns = 4 + metrics.length;
  return el("tbody", { class: `version${v.is_champion ? " champion" : ""}`, "data-version": v.version,
    onclick: () => pickVersion(v.version) },
  el("tr", {},
    el("td", {}, `v${v.version} `, ...v.aliases.filter((alias) => alias !== "champion")
      .map((alias) => el("span", { class: "pill neutral" }, alias)), runLink(v)),
    el("td", { class: "nowrap" }, v.is_champion ? el("strong", {}, "★ Champion")
      : el("button", { type: "button", class: "ghost", onclick: () => promote(v.version) }, `Promote v${v.version}`)),
    el("td", {}, when(v.created_at)),
    el("td", { class: "num" }, v.threshold.toFixed(3)),
    ...metrics.map((m) => el("td", { class: "num" }, m in v.metrics ? formatMetric(v.metrics[m]) : "–")),
    el("td", {}, ...featureView(v.feature_view))),
  v.promotion ? el("tr", { class: "gate-row" }, el("td", { class: "meta" }, "gate"),
    el("td", { colspan: String(columns) }, gateDecision(v.promotion))) : null);
}

function showModels(page) {
  const metrics = metricColumns(page.versions);
  const head = el("thead", {}, el("tr", {},
    ...["Version", "Status", "Registered", "threshold", ...metrics.map((m) => m.replace(/^test_/, "")), "Feature view"]
      .map((name) => el("th", { scope: "col" }, name))));
  $("#models-table").replaceChildren(head, ...page.versions.map((v) => versionRows(v, metrics)));
  $("#models-version").replaceChildren(...page.versions.map((v) => el("option", { value: v.version }, versionName(v))));
  $("#models-status").textContent = `${page.versions.length} version${page.versions.length === 1 ? "" : "s"}` +
    (page.champion ? `; champion v${page.champion}` : "; no champion yet") +
    (page.serving && page.serving !== page.champion ? `; this server still scores with v${page.serving}` : "");
}

/** The version picked, while it exists; else the champion; else the newest. */
function selectedVersion() {
  const { versions, picked } = models;
  return versions.find((v) => v.version === picked) || versions.find((v) => v.is_champion) || versions[0];
}

function pickVersion(version) {
  models.picked = version;
  showSelected();
}

/** The selected version's confusion matrix and precision-recall curve at its threshold. */
async function showSelected() {
  const selected = selectedVersion();
  for (const body of document.querySelectorAll("#models-table tbody.version")) {
    body.classList.toggle("selected", body.dataset.version === selected?.version);
  }
  if (!selected) { chart("chart-pr", []); return; }
  $("#models-version").value = selected.version;
  const curves = await curvesOf(selected.version).catch(() => null);
  if (selected !== selectedVersion()) return;  // another was picked meanwhile
  showConfusion(selected, curves && curves.threshold);
  chart("chart-pr", precisionRecallTraces(selected, curves),
    { ...LEGEND_BELOW, xaxis: { ...UNIT_AXIS, title: { text: "recall" } }, yaxis: { ...UNIT_AXIS, title: { text: "precision" } } });
}

/** Rows: what the held-out rows were; columns: what the version answered at its threshold. */
function showConfusion(v, at) {
  const table = $("#confusion");
  const note = $("#confusion-note");
  if (!at) {
    table.replaceChildren();
    note.textContent = `v${v.version} was trained before its confusion matrix was logged.`;
    return;
  }
  const { negative, positive } = table.dataset;
  const [[tn, fp], [fn, tp]] = at.confusion;
  const count = (n, right) => el("td", { class: `num ${right ? "right" : "wrong"}` }, String(n));
  table.replaceChildren(
    el("caption", {}, `v${v.version} at threshold ${at.value.toFixed(3)}`),
    el("thead", {}, el("tr", {}, el("td", {}),
      ...[negative, positive].map((label) => el("th", { scope: "col" }, `predicted ${label}`)))),
    el("tbody", {},
      el("tr", {}, el("th", { scope: "row" }, `actually ${negative}`), count(tn, true), count(fp, false)),
      el("tr", {}, el("th", { scope: "row" }, `actually ${positive}`), count(fn, false), count(tp, true))));
  note.textContent = `Precision ${percent(at.precision)}, recall ${percent(at.recall)} of “${positive}”, ` +
    `on ${tn + fp + fn + tp} held-out rows.`;
}

function precisionRecallTraces(v, curves) {
  if (!curves || !curves.precision_recall) return [];
  const { precision, recall } = curves.precision_recall;
  const line = { x: recall, y: precision, mode: "lines", name: versionName(v), line: { color: COLORS[2] } };
  const at = curves.threshold;
  return at ? [line, { x: [at.recall], y: [at.precision], mode: "markers", name: `threshold ${at.value.toFixed(3)}`,
    marker: { size: 12, color: "#1d2a3a" }, hovertemplate: "precision %{y:.3f}, recall %{x:.3f}<extra></extra>" }] : [line];
}

function showHistory(changes) {
  const head = el("thead", {}, el("tr", {},
    ...["Changed", "From → to", "By", "Why"].map((name) => el("th", { scope: "col" }, name))));
  const rows = changes.map((c) => el("tr", {},
    el("td", { class: "nowrap" }, when(c.changed_at)),
    el("td", { class: "nowrap" }, `${c.from_version ? `v${c.from_version}` : "none"} → v${c.to_version}`),
    el("td", {}, el("span", { class: "pill neutral" }, c.changed_by)),
    el("td", {}, c.reason)));
  $("#history-table").replaceChildren(head, el("tbody", {}, ...(rows.length ? rows
    : [el("tr", {}, el("td", { colspan: "4", class: "empty" }, "No change of champion recorded yet."))])));
}

/** An admin's POST with the key from the form, then the tab and the header's champion again.
 * The changed version, or null after saying in `error` why not. */
async function adminPost(path, refused, error) {
  const key = $("#api-key").value.trim();
  error.textContent = "";
  if (!key) {
    error.textContent = `${refused}: enter the admin API key first.`;
    $("#api-key").focus();
    return null;
  }
  try {
    const version = await api(path, { method: "POST" });
    await Promise.all([loadModels(), showChampion()]);
    return version;
  } catch (failure) {
    const why = { 401: "wrong API key", 403: "admin actions are disabled on this server (no LIFEBOAT_ADMIN_KEYS)" }[failure.status];
    error.textContent = `${refused}: ${why || failure.message}.`;
    return null;
  }
}

async function promote(version) {
  if (await adminPost(`models/${encodeURIComponent(version)}/promote`, "Not promoted", $("#models-error"))) {
    $("#models-status").textContent += ` · v${version} promoted.`;
  }
}

async function rollBack() {
  $("#history-status").textContent = "";
  const restored = await adminPost("models/rollback", "Not rolled back", $("#rollback-error"));
  if (restored) $("#history-status").textContent = `Rolled back to v${restored.version}.`;
}

function setUpModels() {
  $("#models-version").addEventListener("change", (event) => pickVersion(event.target.value));
  $("#rollback").addEventListener("click", rollBack);
}

// ---------------------------------------------------------------- jobs

const JOBS_REFRESH_MS = 5000;
const jobs = { timer: null, loads: 0, filterAsked: false };

/** The job names the filter offers, as /jobs declares them in the OpenAPI schema, so the
 * list follows the server's jobs. Without it, the filter is off; the runs still show. */
function fillJobFilter() {
  const select = $("#jobs-job");
  jobs.filterAsked = true;
  request(`${ROOT}openapi.json`).then((spec) => {
    const parameter = spec.paths["/jobs"].get.parameters.find((p) => p.name === "job");
    const names = (parameter.schema.anyOf || [parameter.schema]).flatMap((s) => s.enum || []);
    select.append(...names.map((name) => el("option", { value: name }, name)));
  }).catch((error) => {
    select.disabled = true;
    select.title = `The list of jobs is unavailable: ${error.message}`;
  });
}

/** Loads the runs, then again every few seconds, but only while the Jobs tab is showing. */
async function loadJobs() {
  clearTimeout(jobs.timer);
  if (!jobs.filterAsked) fillJobFilter();
  const load = ++jobs.loads;
  const job = $("#jobs-job").value;
  const params = new URLSearchParams({ limit: "50" });
  if (job) params.set("job", job);
  let show;
  try {
    const page = await api(`jobs?${params}`);
    show = () => { showJobs(page.items, job); $("#jobs-error").textContent = ""; };
  } catch (error) {
    show = () => { $("#jobs-error").textContent = `Could not load the job runs: ${error.message}`; };
  }
  if (load !== jobs.loads) return;  // a newer load (the filter changed) shows its own answer
  show();
  jobs.timer = setTimeout(() => { if (!$("#panel-jobs").hidden) loadJobs(); }, JOBS_REFRESH_MS);
}

function duration(seconds) {
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${Math.floor(seconds % 60)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

const STATUS_PILL = { succeeded: "up", failed: "failed", running: "running" };

/** What a run did: its counts as "name value" pairs, or, for a failed run, its error. */
function runOutcome(run) {
  if (run.status === "failed") return el("td", { class: "run-error" }, run.error || "no error recorded");
  return el("td", {}, el("div", { class: "counts" }, ...Object.entries(run.counts).map(([name, value]) =>
    el("span", { class: "count" }, `${name} `, el("strong", {}, String(value))))));
}

function showJobs(runs, job) {
  const head = el("thead", {}, el("tr", {}, ...["Job", "Trigger", "Started", "Duration", "Status",
    "Counts / error"].map((name) => el("th", { scope: "col" }, name))));
  const rows = runs.map((run) => el("tr", { class: run.status === "failed" ? "failed-row" : "" },
    el("td", { class: "nowrap" }, run.job),
    el("td", {}, el("span", { class: "pill neutral" }, run.trigger)),
    el("td", { class: "nowrap" }, when(run.started_at)),
    el("td", { class: "num" }, run.seconds === null
      ? `${duration(Math.max(0, Date.now() - new Date(run.started_at)) / 1000)} so far`
      : duration(run.seconds)),
    el("td", {}, el("span", { class: `pill ${STATUS_PILL[run.status]}` }, run.status)),
    runOutcome(run)));
  const none = job ? `No runs of ${job} yet.`
    : "No job runs yet: they appear here as the scheduler, the watcher, the command line or Airflow run jobs.";
  $("#jobs-table").replaceChildren(head, el("tbody", {}, ...(rows.length ? rows
    : [el("tr", {}, el("td", { colspan: "6", class: "empty" }, none))])));
  const failed = runs.filter((run) => run.status === "failed").length;
  $("#jobs-status").textContent = `${runs.length} most recent run${runs.length === 1 ? "" : "s"}` +
    (failed ? `, ${failed} failed` : "") + ` · updated ${new Date().toLocaleTimeString()}`;
}

// ---------------------------------------------------------------- start

loaders.past = loadPast;
loaders.monitoring = loadMonitoring;
loaders.models = loadModels;
loaders.jobs = loadJobs;

$("#predict-form").addEventListener("submit", submitPrediction);
$("#predict-form").addEventListener("reset", (event) => clearErrors(event.currentTarget));
$("#csv-form").addEventListener("submit", submitCsv);
$("#jobs-job").addEventListener("change", loadJobs);
$("#dataset")?.addEventListener("change", (event) => location.assign(event.target.value));
setUpKey();
setUpPast();
setUpModels();
setUpTabs();
showChampion();
