// The Lifeboat UI: five tabs over one dataset's JSON API. Plain JS modules, no build step,
// no framework: each tab is a module, this one switches between them.

import { $, showChampion } from "./common.js";
import { loadJobs, setUpJobs } from "./jobs.js";
import { loadModels, setUpModels } from "./models.js";
import { loadMonitoring } from "./monitoring.js";
import { loadPast, setUpPast } from "./past.js";
import { setUpPredict } from "./predict.js";

const loaders = { past: loadPast, monitoring: loadMonitoring, models: loadModels, jobs: loadJobs };

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

/** The tab the URL names: #past, or #past/<id> for one of its items. */
const tabOfHash = () => location.hash.slice(1).split("/")[0];

function activate(name, focus = false) {
  for (const tab of document.querySelectorAll("[role=tab]")) {
    const selected = tab.dataset.tab === name;
    tab.setAttribute("aria-selected", String(selected));
    tab.tabIndex = selected ? 0 : -1;
    $(`#${tab.getAttribute("aria-controls")}`).hidden = !selected;
    if (selected && focus) tab.focus();
  }
  if (tabOfHash() !== name) history.replaceState(null, "", `#${name}`);  // keeps #past/<id>
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
  const wanted = tabOfHash();
  activate(tabs.some((tab) => tab.dataset.tab === wanted) ? wanted : "predict");
}


setUpKey();
setUpPredict();
setUpPast();
setUpModels();
setUpJobs();
// Another dataset's page opens on the tab this one shows.
$("#dataset")?.addEventListener("change", (event) => location.assign(event.target.value + location.hash));
setUpTabs();
showChampion();
