// The Models tab: registered versions, the gate's decisions, curves and champion history.

import { $, COLORS, api, chart, el, percent, showChampion, when } from "./common.js";

const HEADLINE_METRICS = ["test_roc_auc", "test_accuracy", "test_f1", "test_precision", "test_recall", "test_brier"];
const MAX_CURVES = 5;  // the newest versions: more lines than this are hard to tell apart
const UNIT_AXIS = { range: [0, 1] };
const LEGEND_BELOW = { legend: { orientation: "h", y: -0.3 }, margin: { t: 10, b: 80, l: 50, r: 10 } };
const models = { versions: [], picked: null };
const curvesFetched = new Map();  // version → its curves, asked once: they never change

export async function loadModels() {
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

export function setUpModels() {
  $("#models-version").addEventListener("change", (event) => pickVersion(event.target.value));
  $("#rollback").addEventListener("click", rollBack);
}
