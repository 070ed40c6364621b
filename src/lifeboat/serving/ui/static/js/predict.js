// The Predict tab: one record from the form, or a CSV file of them.

import { $, ApiError, COLORS, POSITIVE, PLOT_CONFIG, api, el, fieldOf, percent } from "./common.js";

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

export function setUpPredict() {
  $("#predict-form").addEventListener("submit", submitPrediction);
  $("#predict-form").addEventListener("reset", (event) => clearErrors(event.currentTarget));
  $("#csv-form").addEventListener("submit", submitCsv);
}
