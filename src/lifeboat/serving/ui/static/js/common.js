// What every tab shares: where the API is, how to call it, how to build nodes and charts.
// The page names where that API is (data-api) and where the service's root is (data-root),
// both relative to the page, so it also works behind a proxy that mounts it under a prefix.

export const $ = (selector, root = document) => root.querySelector(selector);
export const POSITIVE = document.body.dataset.positiveLabel;
export const API = document.body.dataset.api;  // this dataset's routes: `${API}predict`, ...
export const ROOT = document.body.dataset.root;  // the service's own: `${ROOT}openapi.json`
export const COLORS = ["#1f7a5c", "#c0392b", "#2c6fbb", "#b7791f", "#6b46c1"];
/** Each class as the spec names it for people; the API's labels stay in answers and downloads. */
const CLASSES = JSON.parse(document.body.dataset.classes || "{}");  // the drift report page names none
export const classOf = (label) => CLASSES[label] || label;
export const classLabels = () => Object.keys(CLASSES);
export const PLOT_CONFIG = { displaylogo: false, responsive: true, displayModeBar: false };

export class ApiError extends Error {
  constructor(status, body) {
    super(describeError(status, body));
    this.status = status;
    this.body = body;
  }
}

/** fetch() of this dataset's `path`, with the page's API key if one is entered (a server
 * may need one to read, score and take feedback, not just for admin actions), that throws
 * ApiError with the server's own words when the answer is not 2xx. */
export async function api(path, options = {}) {
  const key = $("#api-key").value.trim();
  const headers = key ? { authorization: `Bearer ${key}`, ...options.headers } : options.headers;
  return request(`${API}${path}`, { ...options, headers });
}

export async function request(url, options = {}) {
  const response = await fetch(url, options);
  const type = response.headers.get("content-type") || "";
  const body = type.includes("json") ? await response.json() : await response.text();
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

export function describeError(status, body) {
  const detail = body && body.detail;
  if (Array.isArray(detail)) return detail.map((e) => `${fieldOf(e.loc) || "request"}: ${e.msg}`).join("; ");
  if (typeof detail === "string") return detail;
  return `the server answered ${status}`;
}

/** The field a 422 error is about: the last string in its loc that is not "body". */
export function fieldOf(loc) {
  return (loc || []).filter((part) => typeof part === "string" && part !== "body").pop();
}

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

export const percent = (p) => `${(p * 100).toFixed(1)}%`;
export const when = (iso) => (iso ? new Date(iso).toLocaleString() : "");

const CHART_LAYOUT = {
  height: 280, margin: { t: 10, b: 40, l: 50, r: 10 }, paper_bgcolor: "rgba(0,0,0,0)",
  plot_bgcolor: "rgba(0,0,0,0)", legend: { orientation: "h", y: -0.2 }, font: { size: 12 },
};

export function chart(id, traces, layout = {}) {
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

export async function showChampion() {
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

/** A list item per contribution, largest first as the server sends them: its value, a bar
 * as long as its effect against the largest, and the effect in percentage points. */
export function effectItems(contributions, nameOf = (feature) => feature) {
  const largest = Math.max(...contributions.map((c) => Math.abs(c.effect)), 1e-9);
  return contributions.map((c) => {
    const up = c.effect >= 0, points = Math.abs(c.effect * 100).toFixed(1);
    const shown = points === "0.0" ? ["none", "no effect"] : up ? ["up", `▲ +${points} pts`] : ["down", `▼ −${points} pts`];
    return el("li", { class: shown[0] },
      el("span", { class: "feature" }, `${nameOf(c.feature)} `, el("em", {}, String(c.value))),
      el("span", { class: "bar", "aria-hidden": "true" },
        el("span", { style: `width:${(Math.abs(c.effect) / largest) * 100}%` })),
      el("span", { class: "effect" }, shown[1]));
  });
}
