// The Jobs tab: every run of every job, refreshed while it shows.

import { $, ROOT, api, el, request, when } from "./common.js";

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
export async function loadJobs() {
  clearTimeout(jobs.timer);
  if (!jobs.filterAsked) fillJobFilter();
  const load = ++jobs.loads;
  const filters = jobFilters();
  const params = new URLSearchParams({ limit: "50", include_idle: String(filters.idle) });
  if (filters.job) params.set("job", filters.job);
  if (filters.status) params.set("status", filters.status);
  let show;
  try {
    const page = await api(`jobs?${params}`);
    show = () => { showJobs(page.items, filters); $("#jobs-error").textContent = ""; };
  } catch (error) {
    show = () => { $("#jobs-error").textContent = `Could not load the job runs: ${error.message}`; };
  }
  if (load !== jobs.loads) return;  // a newer load (the filter changed) shows its own answer
  show();
  jobs.timer = setTimeout(() => { if (!$("#panel-jobs").hidden) loadJobs(); }, JOBS_REFRESH_MS);
}

function jobFilters() {
  return { job: $("#jobs-job").value, status: $("#jobs-status-filter").value, idle: $("#jobs-idle").checked };
}

/** What an empty list says, so an empty filter is not mistaken for nothing having run. */
function noRuns({ job, status, idle }) {
  if (!job && !status && idle) {
    return "No job runs yet: they appear here as the scheduler, the watcher, the command line or Airflow run jobs.";
  }
  const what = [status, job || "job"].filter(Boolean).join(" ");
  return `No ${what} runs${idle ? "" : " that did something"} yet.`;
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

function showJobs(runs, filters) {
  const head = el("thead", {}, el("tr", {}, ...["Job", "Trigger", "Started", "Duration", "Status",
    "Counts / error"].map((name) => el("th", { scope: "col" }, name))));
  const rows = runs.map((run) => el("tr", { class: run.status === "failed" ? "failed-row" : "", "data-run": run.id },
    el("td", { class: "nowrap" }, run.job),
    el("td", {}, el("span", { class: "pill neutral" }, run.trigger)),
    el("td", { class: "nowrap" }, when(run.started_at)),
    el("td", { class: "num" }, run.seconds === null
      ? `${duration(Math.max(0, Date.now() - new Date(run.started_at)) / 1000)} so far`
      : duration(run.seconds)),
    el("td", {}, el("span", { class: `pill ${STATUS_PILL[run.status]}` }, run.status)),
    runOutcome(run)));
  $("#jobs-table").replaceChildren(head, el("tbody", {}, ...(rows.length ? rows
    : [el("tr", {}, el("td", { colspan: "6", class: "empty" }, noRuns(filters)))])));
  const failed = runs.filter((run) => run.status === "failed").length;
  $("#jobs-status").textContent = `${runs.length} most recent run${runs.length === 1 ? "" : "s"}` +
    (failed ? `, ${failed} failed` : "") + (filters.idle ? "" : " (runs that did nothing hidden)") +
    ` · updated ${new Date().toLocaleTimeString()}`;
}

export function setUpJobs() {
  for (const filter of ["#jobs-job", "#jobs-status-filter", "#jobs-idle"]) {
    $(filter).addEventListener("change", loadJobs);
  }
}
