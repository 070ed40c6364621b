// The Predict tab: one record from the form, one entity by its id, or a CSV file of them.

import { $, ApiError, COLORS, POSITIVE, PLOT_CONFIG, api, chart, classLabels, classOf, effectItems, el, fieldOf, percent } from "./common.js";

const ROWS_PER_PAGE = 50;
const ISSUES_SHOWN = 50;
const count = (n) => n.toLocaleString("en-US");

/** A field as the form names it; the entity key as the By id form does. */
const labelOf = (name) => {
  const label = name === $("#panel-predict").dataset.key ? $('label[for="entity-id"]') : $(`label[for="f-${name}"]`);
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

/** One id, scored on the features the online store holds for it, explained as a record is. */
async function submitEntity(event) {
  event.preventDefault();
  const form = event.currentTarget, error = $("#entity-error");
  const id = $("#entity-id").value.trim();
  error.textContent = "";
  if (!id) { error.textContent = "Enter an id first."; return; }
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const body = JSON.stringify({ entity_ids: [id], source: "webapp", explain: true });
    const answer = await api("predict", {
      method: "POST", headers: { "content-type": "application/json" }, body,
    });
    if (answer.predictions.length) showPrediction(answer.predictions[0], answer.model);
    else error.textContent = `${id}: ${answer.errors[0].error}`;
  } catch (failure) {
    error.textContent = failure.message;
  } finally {
    button.disabled = false;
  }
}

function showPrediction(prediction, model) {
  $("#predict-empty").hidden = true;
  $("#predict-output").hidden = false;
  const positive = prediction.label === POSITIVE;
  const verdict = $("#verdict");
  verdict.className = `verdict ${positive ? "up" : "down"}`;
  verdict.textContent = `${classOf(prediction.label)} · ${percent(prediction.probability)} chance of “${classOf(POSITIVE)}”`;
  drawGauge(prediction.probability);
  showContributions(prediction.contributions);
  const scored = prediction.entity_id ? ` · scored by id ${prediction.entity_id}` : "";
  $("#predict-meta").textContent = `Model ${model.name} v${model.version} · prediction ${prediction.id}${scored}`;
}

function drawGauge(probability) {
  const gauge = $("#gauge");
  gauge.setAttribute("aria-label", `Probability of ${classOf(POSITIVE)}: ${percent(probability)}`);
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
  list.append(...effectItems(contributions, labelOf));
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

/** Where a 422 is about, as a person finds it in the file: `row 2, age`, or the file. */
function placeOf(loc) {
  const parts = (loc || []).filter((part) => part !== "body");
  return parts.length > 1 ? parts.slice(1).join(", ") : fieldOf(loc) || "request";
}

function describeUploadError(failure) {
  const detail = failure instanceof ApiError && Array.isArray(failure.body.detail) ? failure.body.detail : null;
  return detail ? detail.map((e) => `${placeOf(e.loc)}: ${e.msg}`).join("; ") : failure.message;
}

/** One request with Accept: text/csv: the page shows exactly the file offered for download,
 * a page of its rows at a time, with a summary of all of them. */
async function submitCsv(event) {
  event.preventDefault();
  const file = $("#csv-file").files[0];
  const error = $("#csv-error"), result = $("#csv-result"), link = $("#csv-download");
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
    showScoredFile(file.name, scoredFile(header, rows));
    if (link.href) URL.revokeObjectURL(link.href);
    link.href = URL.createObjectURL(new Blob([text], { type: "text/csv" }));
    link.download = `${file.name.replace(/\.[^.]*$/, "")}.predictions.csv`;
    link.hidden = false;
  } catch (failure) {
    result.hidden = link.hidden = true;
    error.textContent = describeUploadError(failure);
  } finally {
    button.disabled = false;
  }
}

/** The answer's rows, with each row's problems read from its `issues` cell. */
function scoredFile(header, rows) {
  const at = (name) => header.indexOf(name);
  const columns = { row: at("row"), issues: at("issues"), label: at("label"), probability: at("probability") };
  const hidden = new Set([...Object.values(columns), at("prediction_id"), at("prediction")]);
  const inputs = header.map((_, column) => column).filter((column) => !hidden.has(column));
  const problems = [];
  for (const row of rows) {
    const cell = row[columns.issues];
    if (!cell) continue;
    for (const part of cell.split("; ")) {
      const [column, issue] = part.includes(": ") ? part.split(": ") : [null, part];
      problems.push({ row: row[columns.row], column, issue, value: column ? row[at(column)] : "" });
    }
  }
  const byRow = new Map();
  for (const problem of problems) byRow.set(problem.row, [...(byRow.get(problem.row) || []), problem]);
  return { header, rows, columns, inputs, problems, byRow, page: 0 };
}

function showScoredFile(name, scored) {
  const { rows, columns, problems } = scored;
  const unscored = rows.filter((row) => row[columns.label] === "").length;
  const scoredRows = rows.length - unscored;
  const withIssues = new Set(problems.filter((p) => p.column).map((p) => p.row)).size;
  $("#csv-summary").textContent = [
    `${count(scoredRows)} row${scoredRows === 1 ? "" : "s"} scored from ${name}`,
    withIssues ? `${count(withIssues)} with a value not used` : null,
    unscored ? `${count(unscored)} line${unscored === 1 ? "" : "s"} not scored` : null,
  ].filter(Boolean).join(" · ") + ".";
  $("#csv-result").hidden = false;  // first: the histogram takes the width it is shown at
  showClassCounts(rows, columns, scoredRows);
  showProblems(problems);
  showHistogram(rows, columns);
  showPage(scored);
}

function showClassCounts(rows, columns, scoredRows) {
  const counts = new Map(classLabels().map((label) => [label, 0]));
  for (const row of rows) {
    const label = row[columns.label];
    if (label) counts.set(label, (counts.get(label) || 0) + 1);
  }
  $("#csv-classes").replaceChildren(...[...counts].map(([label, n]) => el("li", {},
    el("span", { class: `pill ${label === POSITIVE ? "up" : "down"}` }, classOf(label)),
    el("strong", {}, count(n)),
    el("span", { class: "meta" }, scoredRows ? `(${percent(n / scoredRows)})` : ""))));
}

function showHistogram(rows, columns) {
  const probabilities = rows.filter((row) => row[columns.label] !== "")
    .map((row) => Number(row[columns.probability]) * 100);
  chart("csv-histogram", probabilities.length ? [{
    type: "histogram", x: probabilities, xbins: { start: 0, end: 100, size: 5 },
    marker: { color: COLORS[2] }, hovertemplate: "%{x}%: %{y} rows<extra></extra>",
  }] : [], {
    height: 200, margin: { t: 10, b: 40, l: 45, r: 10 }, bargap: 0.05,
    xaxis: { range: [0, 100], ticksuffix: "%", title: { text: "probability" } },
    yaxis: { title: { text: "rows" } },
  });
}

const ISSUE_WORDS = {
  wrong_type: "not a number", out_of_range: "outside the allowed range",
  not_allowed: "not an allowed value", missing_required: "required, but missing",
  too_long: "too long", unknown_entity: "no stored features for this id",
  malformed_row: "the line does not split into the header's columns",
};

/** An issue in words, with the rule from the form's own field where it has one. */
function reasonFor(problem) {
  const input = problem.column && $(`#f-${problem.column}`);
  if (input && problem.issue === "wrong_type") return input.step === "1" ? "not a whole number" : "not a number";
  if (input && problem.issue === "out_of_range" && (input.min || input.max)) {
    const [low, high] = [input.min, input.max].map((bound) => (bound ? Number(bound) : null));
    return low !== null && high !== null ? `outside ${low} to ${high}` : low !== null ? `below ${low}` : `above ${high}`;
  }
  if (input && problem.issue === "not_allowed" && input.tagName === "SELECT") {
    return `not one of ${[...input.options].filter((o) => o.value).map((o) => o.value).join(", ")}`;
  }
  return ISSUE_WORDS[problem.issue] || problem.issue;
}

function showProblems(problems) {
  $("#csv-problems").hidden = problems.length === 0;
  const head = el("thead", {}, el("tr", {}, ...["Row", "Column", "Value", "Reason"]
    .map((name) => el("th", { scope: "col" }, name))));
  const body = el("tbody", {}, ...problems.slice(0, ISSUES_SHOWN).map((problem) => el("tr", {},
    el("td", { class: "num" }, problem.row),
    el("td", {}, problem.column ? labelOf(problem.column) : "(whole line)"),
    el("td", { class: "value" }, problem.value ? `“${problem.value}”` : ""),
    el("td", {}, reasonFor(problem)))));
  $("#csv-issues").replaceChildren(head, body);
  const more = problems.length - ISSUES_SHOWN;
  $("#csv-issues-more").textContent = more > 0
    ? `and ${count(more)} more: every one is in the download's issues column.` : "";
}

/** One page of rows: the verdict first, then the row as uploaded; ids and raw classes stay
 * in the download. */
function showPage(scored) {
  const { header, rows, columns, inputs, byRow } = scored;
  const pages = Math.max(1, Math.ceil(rows.length / ROWS_PER_PAGE));
  scored.page = Math.min(Math.max(scored.page, 0), pages - 1);
  const first = scored.page * ROWS_PER_PAGE;
  const shown = rows.slice(first, first + ROWS_PER_PAGE);
  const head = el("thead", {}, el("tr", {},
    ...["Row", "Prediction", "Probability", ...inputs.map((column) => labelOf(header[column])), "Issues"]
      .map((name) => el("th", { scope: "col" }, name))));
  const body = el("tbody", {}, ...shown.map((row) => {
    const label = row[columns.label];
    return el("tr", label ? {} : { class: "unscored" },
      el("td", { class: "num" }, row[columns.row]),
      el("td", {}, label ? el("span", { class: `pill ${label === POSITIVE ? "up" : "down"}` }, classOf(label)) : "not scored"),
      el("td", { class: "num" }, label ? percent(Number(row[columns.probability])) : ""),
      ...inputs.map((column) => el("td", {}, row[column] ?? "")),
      el("td", { class: "issues" }, (byRow.get(row[columns.row]) || [])
        .map((p) => (p.column ? `${labelOf(p.column)}: ${reasonFor(p)}` : reasonFor(p))).join("; ")));
  }));
  $("#csv-table").replaceChildren(head, body);
  $("#csv-page").textContent = `Rows ${count(first + 1)}–${count(first + shown.length)} of ${count(rows.length)}`;
  $("#csv-previous").disabled = scored.page === 0;
  $("#csv-next").disabled = scored.page === pages - 1;
  const turn = (step) => () => { scored.page += step; showPage(scored); };
  $("#csv-previous").onclick = turn(-1);
  $("#csv-next").onclick = turn(1);
}

export function setUpPredict() {
  $("#predict-form").addEventListener("submit", submitPrediction);
  $("#predict-form").addEventListener("reset", (event) => clearErrors(event.currentTarget));
  $("#entity-form").addEventListener("submit", submitEntity);
  $("#csv-form").addEventListener("submit", submitCsv);
}
