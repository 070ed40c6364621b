// The Past predictions tab: the prediction log, filtered and paged, with each prediction's
// true outcome; a row opens its detail (also reachable as #past/<id>), where its outcome can
// be entered; the filtered rows download as CSV.

import { $, API, POSITIVE, api, classOf, effectItems, el, percent, when } from "./common.js";

const past = { offset: 0, shown: null };
const panel = () => $("#panel-past");
const labelOf = (outcome) => classOf(panel().getAttribute(`data-label-${outcome}`));

function summarize(input) {
  return Object.entries(input).filter(([, value]) => value !== null && value !== "")
    .map(([key, value]) => `${key} ${value}`).join(" · ");
}

/** The filters as query parameters: the page and the export use the same. */
function filterParams() {
  const form = $("#past-filters");
  const params = new URLSearchParams();
  if (form.source.value) params.set("source", form.source.value);
  for (const name of ["since", "until"]) {
    if (form[name].value) params.set(name, new Date(form[name].value).toISOString());
  }
  return params;
}

export async function loadPast() {
  const form = $("#past-filters");
  const filters = filterParams();
  const params = new URLSearchParams({ ...Object.fromEntries(filters), limit: form.limit.value,
    offset: String(past.offset) });
  $("#past-export").href = `${API}past-predictions.csv${filters.size ? `?${filters}` : ""}`;
  $("#past-error").textContent = "";
  showDetailOfHash();
  try {
    showPastPage(await api(`past-predictions?${params}`));
  } catch (error) {
    $("#past-error").textContent = error.message;
  }
}

/** The true outcome once known: its label, marked right or wrong against the prediction. */
function outcomeCell(item) {
  if (item.actual === null) return el("td", { class: "outcome unknown" }, "not known yet");
  const right = item.actual === item.prediction;
  const origin = item.outcome_source === "derived" ? "derived from later events" : "given as feedback";
  return el("td", { class: "outcome", title: origin },
    el("span", { class: `pill ${right ? "up" : "down"}` }, `${right ? "✓" : "✗"} ${labelOf(item.actual)}`),
    el("span", { class: "meta" }, item.outcome_source === "derived" ? "derived" : "feedback"));
}

function showPastPage(page) {
  const head = el("thead", {}, el("tr", {}, ...["Time", "Source", "Input", "Prediction", "Probability",
    "True outcome", "Model", "Latency"].map((name) => el("th", { scope: "col" }, name))));
  const rows = page.items.map((item) => el("tr", {
    class: `clickable${item.id === past.shown ? " selected" : ""}`, tabindex: "0", "data-id": item.id,
    onclick: () => openDetail(item.id),
    onkeydown: (event) => { if (event.key === "Enter") openDetail(item.id); },
  },
    el("td", { class: "nowrap" }, when(item.created_at)),
    el("td", {}, el("span", { class: "pill neutral" }, item.source)),
    el("td", { class: "input", title: JSON.stringify(item.input) }, summarize(item.input)),
    el("td", {}, el("span", { class: `pill ${item.label === POSITIVE ? "up" : "down"}` }, classOf(item.label))),
    el("td", { class: "num" }, percent(item.probability)),
    outcomeCell(item),
    el("td", { class: "nowrap", title: item.model_name }, `v${item.model_version}`),
    el("td", { class: "num" }, `${item.latency_ms.toFixed(2)} ms`)));
  const body = el("tbody", {}, ...(rows.length ? rows
    : [el("tr", {}, el("td", { colspan: "8", class: "empty" }, "No predictions match these filters."))]));
  $("#past-table").replaceChildren(head, body);
  const last = Math.min(page.offset + page.items.length, page.total);
  $("#past-status").textContent = page.total
    ? `${page.offset + 1}–${last} of ${page.total}` : "0 predictions";
  $("#past-prev").disabled = page.offset === 0;
  $("#past-next").disabled = last >= page.total;
}

// ---------------------------------------------------------------- one prediction in detail

function openDetail(id) {
  location.hash = `past/${encodeURIComponent(id)}`;  // the hashchange listener shows it
}

function closeDetail() {
  history.pushState(null, "", "#past");
  showDetailOfHash();
}

/** Shows the prediction the URL names (#past/<id>), or hides the detail when it names none. */
function showDetailOfHash() {
  const match = location.hash.match(/^#past\/(.+)$/);
  const id = match ? decodeURIComponent(match[1]) : null;
  for (const row of document.querySelectorAll("#past-table tr[data-id]")) {
    row.classList.toggle("selected", row.dataset.id === id);
  }
  $("#past-detail").hidden = id === null;
  if (id !== null && id !== past.shown) showDetail(id);
  past.shown = id;
}

async function showDetail(id) {
  $("#past-detail-error").textContent = "";
  $("#past-feedback-status").textContent = "";
  for (const part of ["#past-facts", "#past-input", "#past-features", "#past-contributions"]) {
    $(part).replaceChildren();
  }
  $("#past-explained").textContent = "";
  try {
    showPrediction(await api(`past-predictions/${encodeURIComponent(id)}`));
    $("#past-detail").scrollIntoView({ block: "start" });
  } catch (error) {
    $("#past-detail-error").textContent = error.message;
  }
}

function showPrediction(item) {
  $("#past-detail-title").textContent = `Prediction ${item.id}`;
  const facts = [
    ["Time", when(item.created_at)], ["Source", item.source], ["Entity", item.entity_id ?? "—"],
    ["Prediction", `${classOf(item.label)} (${percent(item.probability)})`],
    ["True outcome", item.actual === null ? "not known yet"
      : `${labelOf(item.actual)} (${item.outcome_source === "derived" ? "derived from later events" : "feedback"})`],
    ["Model", `${item.model_name} v${item.model_version}`], ["Latency", `${item.latency_ms.toFixed(2)} ms`],
  ];
  $("#past-facts").replaceChildren(...facts.flatMap(([name, value]) => [el("dt", {}, name), el("dd", {}, value)]));
  $("#past-feedback").dataset.id = item.id;
  $("#past-actual").value = String(item.actual ?? item.prediction);
  $("#past-input").replaceChildren(...pairRows(item.input));
  $("#past-features").replaceChildren(...(item.features ? pairRows(item.features)
    : [el("tr", {}, el("td", { class: "empty" }, "Not logged: predicted before the log kept vectors."))]));
  $("#past-explained").textContent = item.explanation
    ? `Computed now by ${item.explained_by.name} v${item.explained_by.version} (explanations are not logged)` +
      ` from ${item.explained_from === "input" ? "the fields given" : "the logged feature vector"}` +
      (item.explained_by.version === item.model_version ? "." : `; v${item.model_version} made the prediction.`)
    : `No explanation: ${item.explanation_note}.`;
  $("#past-contributions").replaceChildren(...effectItems(item.explanation || []));
}

function pairRows(values) {
  return Object.entries(values).map(([name, value]) => el("tr", {},
    el("th", { scope: "row" }, name), el("td", {}, value === null ? "—" : String(value))));
}

async function saveOutcome(event) {
  event.preventDefault();
  const form = event.target, status = $("#past-feedback-status");
  status.textContent = "Saving…";
  try {
    const saved = await api("feedback", {
      method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ id: form.dataset.id, actual: Number(form.actual.value) }),
    });
    loadPast();
    await showDetail(saved.id);
    status.textContent = `Saved: ${labelOf(saved.actual)}, the prediction was ${saved.correct ? "right" : "wrong"}.`;
  } catch (error) {
    status.textContent = "";
    $("#past-detail-error").textContent = error.message;
  }
}

/** With an API key entered, the export is fetched with it (a link cannot send it) and saved. */
async function exportWithKey(event) {
  if (!$("#api-key").value.trim()) return;
  event.preventDefault();
  const link = event.currentTarget;
  try {
    const response = await fetch(link.href, { headers: { authorization: `Bearer ${$("#api-key").value.trim()}` } });
    if (!response.ok) throw new Error(`the export failed: the server answered ${response.status}`);
    const url = URL.createObjectURL(await response.blob());
    el("a", { href: url, download: "predictions.csv" }).click();
    setTimeout(() => URL.revokeObjectURL(url), 0);
  } catch (error) {
    $("#past-error").textContent = error.message;
  }
}

export function setUpPast() {
  const form = $("#past-filters");
  form.addEventListener("submit", (event) => { event.preventDefault(); past.offset = 0; loadPast(); });
  $("#past-prev").addEventListener("click", () => {
    past.offset = Math.max(0, past.offset - Number(form.limit.value)); loadPast();
  });
  $("#past-next").addEventListener("click", () => { past.offset += Number(form.limit.value); loadPast(); });
  $("#past-feedback").addEventListener("submit", saveOutcome);
  $("#past-detail-close").addEventListener("click", closeDetail);
  $("#past-export").addEventListener("click", exportWithKey);
  addEventListener("hashchange", () => { if (!panel().hidden) showDetailOfHash(); });
}
