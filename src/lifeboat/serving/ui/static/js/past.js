// The Past predictions tab: the prediction log, filtered and paged.

import { $, POSITIVE, api, el, percent, when } from "./common.js";

const past = { offset: 0 };

function summarize(input) {
  return Object.entries(input).filter(([, value]) => value !== null && value !== "")
    .map(([key, value]) => `${key} ${value}`).join(" · ");
}

export async function loadPast() {
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

export function setUpPast() {
  const form = $("#past-filters");
  form.addEventListener("submit", (event) => { event.preventDefault(); past.offset = 0; loadPast(); });
  $("#past-prev").addEventListener("click", () => {
    past.offset = Math.max(0, past.offset - Number(form.limit.value)); loadPast();
  });
  $("#past-next").addEventListener("click", () => { past.offset += Number(form.limit.value); loadPast(); });
}
