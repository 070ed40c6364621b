// The Models tab: registered versions and the gate's decisions, a classification report of
// one version or two side by side, retraining, and the champion's history.

import { $, COLORS, api, chart, el, percent, showChampion, when } from "./common.js";

const METRIC_LABELS = {
  test_roc_auc: "ROC AUC", test_accuracy: "Accuracy", test_f1: "F1 score", test_precision: "Precision",
  test_recall: "Recall", test_brier: "Brier score", test_ece: "Calibration error (ECE)",
  test_baseline_roc_auc: "Baseline ROC AUC",
};
const HEADLINE_METRICS = ["test_roc_auc", "test_accuracy", "test_f1", "test_precision", "test_recall", "test_brier"];
const REPORT_METRICS = [...HEADLINE_METRICS, "test_ece", "test_baseline_roc_auc"];
const LOWER_IS_BETTER = new Set(["test_brier", "test_ece"]);
const VERSION_COLORS = [COLORS[2], COLORS[3]];  // the version picked, the one compared with it
const RETRAIN_POLL_MS = 1000;
const UNIT_AXIS = { range: [0, 1] };
const LEGEND_BELOW = { legend: { orientation: "h", y: -0.3 }, margin: { t: 10, b: 80, l: 50, r: 10 } };
const DIAGONAL = { x: [0, 1], y: [0, 1], mode: "lines", name: "chance / perfect",
  line: { dash: "dot", color: "#94a3b8" }, hoverinfo: "skip" };
const models = { versions: [], picked: null, compared: "", shown: 0, polling: false };
const reports = new Map();  // version → its report, asked once per load of the tab

export async function loadModels() {
  $("#models-error").textContent = "";
  reports.clear();
  try {
    const [page, history, retraining] = await Promise.all([api("models"), api("models/history"), api("retrain")]);
    models.versions = page.versions;
    showModels(page);
    showHistory(history.items);
    showRetrain(retraining);
    if (retraining.state === "running") followRetrain(retraining);
    await showReport();
  } catch (error) {
    $("#models-error").textContent = error.message;
  }
}

function reportOf(version) {
  if (!reports.has(version)) {
    reports.set(version, api(`models/${encodeURIComponent(version)}/report`).catch((error) => {
      reports.delete(version);
      throw error;
    }));
  }
  return reports.get(version);
}

const versionName = (v) => `v${v.version}${v.is_champion ? " ★" : ""}`;
const capitalized = (text) => text.charAt(0).toUpperCase() + text.slice(1);

/** "ROC AUC" for `test_roc_auc`; a metric without a label reads as its key in words. */
const metricLabel = (key) => METRIC_LABELS[key] || capitalized(key.replace(/^test_/, "").replaceAll("_", " "));
const metricHeading = (key, attributes = {}) => el("th", { title: key, ...attributes }, metricLabel(key));

/** "Gradient boosting" for `gradient_boosting`; "–" for a version registered without a search. */
const modelType = (type) => (type ? capitalized(type.replaceAll("_", " ")) : "–");

/** A parameter as the run logged it, a long fraction cut to three significant digits. */
function parameterValue(value) {
  const number = Number(value);
  if (value === undefined) return "–";
  if (value.trim() === "" || !Number.isFinite(number) || Number.isInteger(number)) return value;
  return String(Number(number.toPrecision(3)));
}

/** The headline metrics when the registry has them, else every metric it has. */
function metricColumns(versions) {
  const present = [...new Set(versions.flatMap((v) => Object.keys(v.metrics)))].sort();
  const headline = HEADLINE_METRICS.filter((name) => present.includes(name));
  return headline.length ? headline : present;
}

const formatMetric = (value) => (Number.isInteger(value) ? String(value) : value.toFixed(3));
const gateScore = (value) => value.toFixed(4);
const signed = (value) => `${value < 0 ? "" : "+"}${value.toFixed(4)}`;

/** The gate's comparison in one line: "roc_auc 0.8861 vs v1 0.8712, +0.0149 [+0.0042,
 * +0.0251] on 277 held-out + 60 labelled". */
function gateEvidence(p) {
  const [low, high] = p.interval;
  return `${p.metric} ${gateScore(p.challenger_score)} vs v${p.champion_version} ${gateScore(p.champion_score)}, ` +
    `${signed(p.delta)} [${signed(low)}, ${signed(high)}] on ${p.heldout_rows} held-out + ${p.recent_rows} labelled`;
}

/** Promoted or refused, with the evidence and, one click away, the full reason; a decision
 * that compared nothing (a first model, too few rows) is its reason alone. */
function gateDecision(p) {
  const verdict = el("span", { class: `pill ${p.promoted ? "up" : "down"}` }, p.promoted ? "promoted" : "refused");
  if (p.delta === undefined) return el("div", { class: "gate" }, verdict, " ", p.reason);
  return el("details", { class: "gate" }, el("summary", {}, verdict, " ", gateEvidence(p)),
    el("p", { class: "reason" }, p.reason));
}

/** The version's training run: linked to the MLflow UI when the server knows one, else its
 * id, which `mlflow ui` on the tracking store finds. */
function runReference(v, short = true) {
  if (!v.run_id) return null;
  const label = `run ${short ? v.run_id.slice(0, 8) : v.run_id}`;
  if (v.run_url) {
    return el("a", { class: "run-link", href: v.run_url, target: "_blank", rel: "noopener",
      title: `Its training run ${v.run_id} in the MLflow UI` }, `${label} ↗`);
  }
  return el("span", { class: "run-id", title: `MLflow run ${v.run_id}; set LIFEBOAT_MLFLOW_UI_URL ` +
    "to link it to the MLflow UI" }, label);
}

/** The model type, and the parameters its search chose beneath it. */
function modelCell(v) {
  const chosen = Object.entries(v.hyperparameters).sort(([a], [b]) => a.localeCompare(b))
    .map(([name, value]) => el("span", { class: "hyperparameter", title: `${name} = ${value}` },
      `${name} ${parameterValue(value)}`));
  return el("td", { class: "model" }, el("span", { class: "model-type", title: v.model_type || "" }, modelType(v.model_type)),
    chosen.length ? el("span", { class: "hyperparameters" }, ...chosen) : null);
}

/** One tbody per version: its row (its aliases beside its number, but the champion's, which
 * the status says; its feature view is in its report), and the gate's decision on it
 * beneath when there is one. */
function versionRows(v, metrics) {
  const columns = 4 + metrics.length;
  return el("tbody", { class: `version${v.is_champion ? " champion" : ""}`, "data-version": v.version,
    onclick: () => pickVersion(v.version) },
  el("tr", {},
    el("td", { class: "version-cell" }, `v${v.version} `, ...v.aliases.filter((alias) => alias !== "champion")
      .map((alias) => el("span", { class: "pill neutral" }, alias)), el("br"), runReference(v)),
    el("td", { class: "nowrap" }, v.is_champion ? el("strong", {}, "★ Champion")
      : el("button", { type: "button", class: "ghost", onclick: () => promote(v.version) }, `Promote v${v.version}`)),
    modelCell(v),
    el("td", {}, when(v.created_at)),
    el("td", { class: "num" }, v.threshold.toFixed(3)),
    ...metrics.map((m) => el("td", { class: "num" }, m in v.metrics ? formatMetric(v.metrics[m]) : "–"))),
  v.promotion ? el("tr", { class: "gate-row" }, el("td", { class: "meta" }, "gate"),
    el("td", { colspan: String(columns) }, gateDecision(v.promotion))) : null);
}

function showModels(page) {
  const metrics = metricColumns(page.versions);
  const head = el("thead", {}, el("tr", {},
    ...["Version", "Status", "Model", "Registered"].map((name) => el("th", { scope: "col" }, name)),
    el("th", { scope: "col", title: "decision_threshold" }, "Threshold"),
    ...metrics.map((m) => metricHeading(m, { scope: "col", class: "num" }))));
  $("#models-table").replaceChildren(head, ...page.versions.map((v) => versionRows(v, metrics)));
  $("#models-version").replaceChildren(...page.versions.map((v) => el("option", { value: v.version }, versionName(v))));
  $("#models-compare").replaceChildren(el("option", { value: "" }, "nothing"),
    ...page.versions.map((v) => el("option", { value: v.version }, versionName(v))));
  $("#models-status").textContent = `${page.versions.length} version${page.versions.length === 1 ? "" : "s"}` +
    (page.champion ? `; champion v${page.champion}` : "; no champion yet") +
    (page.serving && page.serving !== page.champion ? `; this server still scores with v${page.serving}` : "");
}

/** The version picked, while it exists; else the champion; else the newest. */
function selectedVersion() {
  const { versions, picked } = models;
  return versions.find((v) => v.version === picked) || versions.find((v) => v.is_champion) || versions[0];
}

/** The version to compare the selected one with; none when it is the selected one. */
function comparedVersion(selected) {
  return models.versions.find((v) => v.version === models.compared && v.version !== selected?.version) || null;
}

function pickVersion(version) {
  models.picked = version;
  showReport();
}

function compareWith(version) {
  models.compared = version;
  showReport();
}

/** The selected version's report, and the compared one's beside it. */
async function showReport() {
  const selected = selectedVersion();
  const compared = comparedVersion(selected);
  const shown = ++models.shown;
  for (const body of document.querySelectorAll("#models-table tbody.version")) {
    body.classList.toggle("selected", body.dataset.version === selected?.version);
    body.classList.toggle("compared", body.dataset.version === compared?.version);
  }
  $("#models-compare").value = compared ? compared.version : "";
  if (!selected) {
    for (const id of ["chart-pr", "chart-roc", "chart-calibration", "chart-importance"]) chart(id, []);
    return;
  }
  $("#models-version").value = selected.version;
  try {
    const found = await Promise.all([selected, compared].filter(Boolean).map((v) => reportOf(v.version)));
    if (shown !== models.shown) return;  // another was picked meanwhile
    const sides = found.map((report, i) => ({ v: report, name: `v${report.version}`, color: VERSION_COLORS[i] }));
    showMetrics(sides);
    showConfusions(sides);
    showCurves(sides);
    showImportance(sides);
    showParameters(sides);
  } catch (error) {
    $("#models-error").textContent = error.message;
  }
}

/** Each version's held-out metrics; with two, the second's difference from the first,
 * marked better or worse (a lower Brier score or calibration error is the better one). */
function showMetrics(sides) {
  const present = REPORT_METRICS.filter((m) => sides.some(({ v }) => m in v.metrics));
  const [first, second] = sides;
  const difference = (m) => {
    if (!(m in first.v.metrics && m in second.v.metrics)) return el("td", { class: "num" }, "–");
    const delta = second.v.metrics[m] - first.v.metrics[m];
    const better = LOWER_IS_BETTER.has(m) ? delta < 0 : delta > 0;
    const worse = LOWER_IS_BETTER.has(m) ? delta > 0 : delta < 0;
    return el("td", { class: `num difference${better ? " better" : worse ? " worse" : ""}` }, signed(delta));
  };
  $("#report-metrics").replaceChildren(
    el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Metric"),
      ...sides.map(({ name, color }) => el("th", { scope: "col", class: "num" }, el("span", { class: "swatch", style: `background:${color}` }), name)),
      second ? el("th", { scope: "col", class: "num" }, `${second.name} − ${first.name}`) : null)),
    el("tbody", {}, ...present.map((m) => el("tr", { "data-metric": m }, metricHeading(m, { scope: "row" }),
      ...sides.map(({ v }) => el("td", { class: "num" }, m in v.metrics ? v.metrics[m].toFixed(4) : "–")),
      second ? difference(m) : null))));
}

/** Rows: what the held-out rows were; columns: what each version answered at its threshold. */
function showConfusions(sides) {
  const [first, second] = sides;
  showConfusion($("#confusion"), first.v, first.v.curves?.threshold);
  $("#confusion-compare").hidden = !second;
  if (second) showConfusion($("#confusion-compare"), second.v, second.v.curves?.threshold);
  $("#confusion-note").replaceChildren(...sides.map(({ v }) => confusionNote(v, v.curves?.threshold, $("#confusion").dataset.positive))
    .flatMap((line, i) => (i ? [el("br"), line] : [line])));
}

function showConfusion(table, v, at) {
  if (!at) {
    table.replaceChildren(el("caption", {}, `v${v.version} has no confusion matrix`));
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
}

function confusionNote(v, at, positive) {
  if (!at) return `v${v.version} was trained before its curves and confusion matrix were logged.`;
  const rows = at.confusion.flat().reduce((sum, n) => sum + n, 0);
  return `v${v.version}: precision ${percent(at.precision)}, recall ${percent(at.recall)} of “${positive}”, ` +
    `on ${rows} held-out rows.`;
}

/** Precision-recall, ROC and calibration, the versions' curves overlaid; a version trained
 * before curves were logged is left out. */
function showCurves(sides) {
  const drawn = sides.filter(({ v }) => v.curves);
  const axes = (x, y) => ({ ...LEGEND_BELOW, xaxis: { ...UNIT_AXIS, title: { text: x } }, yaxis: { ...UNIT_AXIS, title: { text: y } } });
  chart("chart-pr", drawn.flatMap((side) => precisionRecallTraces(side, drawn.length > 1)), axes("recall", "precision"));
  chart("chart-roc", drawn.length ? [DIAGONAL, ...drawn.map(({ v, name, color }) => ({
    x: v.curves.roc.fpr, y: v.curves.roc.tpr, mode: "lines", name, line: { color } }))] : [],
  axes("false positive rate", "true positive rate"));
  chart("chart-calibration", drawn.length ? [DIAGONAL, ...drawn.map(({ v, name, color }) => ({
    x: v.curves.calibration.predicted, y: v.curves.calibration.observed, mode: "lines+markers", name,
    line: { color }, marker: { color } }))] : [],
  axes("predicted probability", "observed share"));
}

/** The curve, and the point its threshold picks on it. */
function precisionRecallTraces({ v, name, color }, named) {
  const { precision, recall } = v.curves.precision_recall;
  const at = v.curves.threshold;
  return [{ x: recall, y: precision, mode: "lines", name, line: { color } },
    { x: [at.recall], y: [at.precision], mode: "markers", name: `${named ? `${name} ` : ""}threshold ${at.value.toFixed(3)}`,
      marker: { size: 12, color: "#1d2a3a", symbol: named && color === VERSION_COLORS[1] ? "diamond" : "circle" },
      hovertemplate: "precision %{y:.3f}, recall %{x:.3f}<extra></extra>" }];
}

/** How much each input mattered, most important on top (in the first version's order), with
 * the spread over the shuffles; a version trained before it was logged is said to be so. */
function showImportance(sides) {
  const measured = sides.filter(({ v }) => v.feature_importance);
  const missing = sides.filter(({ v }) => !v.feature_importance)
    .map(({ name }) => `${name} was trained before feature importance was logged.`);
  const first = measured[0]?.v.feature_importance;
  $("#importance-note").textContent = [
    first ? `The drop in held-out ${first.metric === "roc_auc" ? "ROC AUC" : first.metric} when one input's values ` +
      `are shuffled among the ${first.rows} rows (${first.repeats} times; the bar's whisker is their spread).` : "",
    ...missing].filter(Boolean).join(" ");
  const order = first ? first.features.map((f) => f.name).reverse() : [];
  const traces = measured.map(({ v, name, color }) => {
    const byName = new Map(v.feature_importance.features.map((f) => [f.name, f]));
    return { type: "bar", orientation: "h", name, y: order, x: order.map((n) => byName.get(n)?.importance ?? null),
      error_x: { type: "data", array: order.map((n) => byName.get(n)?.spread ?? 0), color: "#5b6b7d", thickness: 1 },
      marker: { color }, hovertemplate: "%{y}: %{x:.4f}<extra>" + name + "</extra>" };
  });
  chart("chart-importance", traces, { height: Math.max(280, 40 + order.length * (measured.length > 1 ? 22 : 16)),
    barmode: "group", margin: { t: 10, b: 40, l: 170, r: 10 }, legend: { orientation: "h", y: -0.08 },
    xaxis: { title: { text: "drop when shuffled" }, zeroline: true }, yaxis: { automargin: true } });
}

/** What each version is and how it was trained; with two, the rows where they differ are
 * marked and counted. */
function showParameters(sides) {
  const facts = [
    ["Model type", ({ v }) => modelType(v.model_type)],
    ["Decision threshold", ({ v }) => v.threshold.toFixed(3)],
    ["Registered", ({ v }) => when(v.created_at)],
    ["Feature view", ({ v }) => v.feature_view || "–"],
    ["Training run", ({ v }) => runReference(v, false) || "–"],
  ];
  const named = (key) => [...new Set(sides.flatMap(({ v }) => Object.keys(v[key])))].sort()
    .map((name) => [name, ({ v }) => parameterValue(v[key][name])]);
  const groups = [["Version", facts], ["Hyperparameters its search chose", named("hyperparameters")],
    ["Training", named("training_parameters")]];
  const shownAs = (cell) => (typeof cell === "string" ? cell : cell.textContent);
  const row = ([name, value]) => {
    const cells = sides.map((side) => value(side));
    const differs = cells.length > 1 && shownAs(cells[0]) !== shownAs(cells[1]);
    return el("tr", { class: differs ? "differs" : "" }, el("th", { scope: "row" }, name),
      ...cells.map((cell) => el("td", { class: "parameter" }, cell)));
  };
  const bodies = groups.filter(([, rows]) => rows.length).map(([title, rows]) => el("tbody", {},
    el("tr", { class: "group" }, el("th", { scope: "rowgroup", colspan: String(sides.length + 1) }, title)),
    ...rows.map(row)));
  $("#report-parameters").replaceChildren(el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Parameter"),
    ...sides.map(({ name, color }) => el("th", { scope: "col" }, el("span", { class: "swatch", style: `background:${color}` }), name)))),
  ...bodies);
  const differing = $("#report-parameters").querySelectorAll("tr.differs").length;
  $("#parameters-note").textContent = sides.length > 1
    ? `${differing} of ${groups.reduce((sum, [, rows]) => sum + rows.length, 0)} differ (marked).` : "";
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
 * The server's answer (a 4xx in `answered` counts as one), or null after saying in `error`
 * why not. */
async function adminPost(path, refused, error, answered = []) {
  const key = $("#api-key").value.trim();
  error.textContent = "";
  if (!key) {
    error.textContent = `${refused}: enter the admin API key first.`;
    $("#api-key").focus();
    return null;
  }
  try {
    const answer = await api(path, { method: "POST" });
    await Promise.all([loadModels(), showChampion()]);
    return answer;
  } catch (failure) {
    if (answered.includes(failure.status)) return failure.body;
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

/** What the latest retrain did: still running, nothing to learn from, or the version it
 * registered and the gate's decision on it. */
function showRetrain(status) {
  const target = $("#retrain-status");
  target.replaceChildren();
  $("#retrain").disabled = status.state === "running";
  if (status.state === "idle") return;
  const pill = (text, kind) => el("span", { class: `pill ${kind}` }, text);
  if (status.state === "running") {
    target.append(pill("retraining", "running"), ` since ${when(status.started_at)}; the gate decides when it finishes.`);
  } else if (status.state === "failed") {
    target.append(pill("retrain failed", "failed"), ` ${status.error}`);
  } else if (status.version === null) {
    target.append(pill("nothing retrained", "neutral"), ` ${status.reason}`);
  } else {
    target.append(pill(`v${status.version} ${status.promoted ? "promoted" : "not promoted"}`, status.promoted ? "up" : "down"),
      ` ${status.reason || ""}`);
  }
  if (status.finished_at) target.append(` (${when(status.finished_at)})`);
}

/** Asks for the retrain's status until it finishes, then shows the versions it left. */
async function followRetrain(status) {
  if (models.polling) return;
  models.polling = true;
  try {
    while (status.state === "running") {
      await new Promise((resolve) => setTimeout(resolve, RETRAIN_POLL_MS));
      status = await api("retrain");
    }
    await Promise.all([loadModels(), showChampion()]);
  } catch (error) {
    $("#models-error").textContent = error.message;
  } finally {
    models.polling = false;
  }
}

async function retrain() {
  const started = await adminPost("retrain", "Not retrained", $("#models-error"), [409]);
  if (!started) return;
  showRetrain(started);
  await followRetrain(started);
}

export function setUpModels() {
  $("#models-version").addEventListener("change", (event) => pickVersion(event.target.value));
  $("#models-compare").addEventListener("change", (event) => compareWith(event.target.value));
  $("#retrain").addEventListener("click", retrain);
  $("#rollback").addEventListener("click", rollBack);
}
