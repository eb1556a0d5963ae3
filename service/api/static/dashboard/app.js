// Hash routing: #/jobs, #/jobs/<id>, #/sweeps, #/sweeps/<id>, #/checkpoints,
// #/checkpoints/<id>. Each view is mount(root, signal, ...params) -> optional cleanup; the
// signal aborts its requests and streams when another view replaces it.

import { changeKey } from "./api.js";
import { jobsView } from "./jobs.js";
import { jobView } from "./job.js";
import { sweepsView, sweepView } from "./sweeps.js";
import { checkpointsView, checkpointView } from "./checkpoints.js";

const ROUTES = [
  [/^#\/jobs\/([^/]+)$/, "job", jobView],
  [/^#\/jobs$/, "jobs", jobsView],
  [/^#\/sweeps\/([^/]+)$/, "sweep", sweepView],
  [/^#\/sweeps$/, "sweeps", sweepsView],
  [/^#\/checkpoints\/([^/]+)$/, "checkpoint", checkpointView],
  [/^#\/checkpoints$/, "checkpoints", checkpointsView],
];

let current = null; // { controller, cleanup }

function route() {
  const hash = location.hash || "#/jobs";
  const match = ROUTES.find(([re]) => re.test(hash));
  if (!match) {
    location.replace("#/jobs");
    return;
  }
  const [re, name, view] = match;
  if (current) {
    current.controller.abort();
    current.cleanup?.();
  }
  const root = document.getElementById("view");
  root.replaceChildren();
  root.dataset.view = name;
  for (const a of document.querySelectorAll("nav a")) {
    a.classList.toggle("active", hash.startsWith(a.getAttribute("href")));
  }
  const controller = new AbortController();
  const params = hash.match(re).slice(1).map(decodeURIComponent);
  current = { controller, cleanup: view(root, controller.signal, ...params) };
}

window.addEventListener("hashchange", route);
document.getElementById("key-button").addEventListener("click", changeKey);
// Tests and the benchmark reach the live views through window.dashboard (see job.js).
window.dashboard = window.dashboard || {};
route();
