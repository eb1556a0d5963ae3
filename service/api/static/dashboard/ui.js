// Small DOM helpers shared by the views.

import { ApiError, isAbort } from "./api.js";
import { drawMessage } from "./svg.js";

// h("button", {id: "x", onclick: f}, "text", child...): an element; attributes starting with
// "on" are listeners, "dataset" an object of data-* attributes, false/null are left out. No
// "style": the page's CSP refuses style attributes (set el.style.* instead).
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(name, value === true ? "" : value);
  }
  el.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

export function svgEl(id, cls) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.id = id;
  svg.setAttribute("class", cls);
  return svg;
}

export const num = (v, digits = 3) =>
  v === null || v === undefined || !Number.isFinite(v) ? "–" : (+v).toFixed(digits);

export const FINAL = new Set(["succeeded", "failed", "cancelled"]);

export function stateBadge(state, id) {
  return h("span", { class: `state ${state}`, id, dataset: { state } }, state);
}

export function progressBar(progress, id) {
  const pct = Math.round((progress || 0) * 100);
  const bar = h("span", { class: "bar" });
  // Through the CSSOM: the page's CSP refuses style="..." attributes.
  bar.style.width = `${pct}%`;
  return h(
    "span",
    { class: "progress", id, dataset: { progress: (progress || 0).toFixed(4) } },
    bar,
    h("span", { class: "pct" }, `${pct}%`),
  );
}

let noticeTimer = null;
export function notify(message, kind = "info") {
  const el = document.getElementById("notice");
  el.textContent = message;
  el.className = kind;
  el.dataset.kind = kind;
  el.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { el.hidden = true; }, kind === "error" ? 10_000 : 4_000);
}

// Runs an async action and shows its failure in the notice bar; an aborted request (the view
// was left) is not a failure. Returns the action's result, or undefined when it failed.
export async function attempt(action) {
  try {
    return await action();
  } catch (e) {
    if (!isAbort(e)) notify(e.message || String(e), "error");
    return undefined;
  }
}

// Runs an action that samples and draws into the `figures`. When the server refuses the
// sample (a 422 non_finite_output: the generator's curves are not finite; a 409: no
// checkpoint yet), the figures say why instead of keeping an old or blank drawing.
export async function drawOrExplain(figures, action) {
  try {
    return await action();
  } catch (e) {
    if (isAbort(e)) return undefined;
    if (e instanceof ApiError) figures.forEach((svg) => drawMessage(svg, e.message));
    notify(e.message || String(e), "error");
    return undefined;
  }
}

export function bytes(n) {
  return n < 1024 ? `${n} B` : n < 1 << 20 ? `${(n / 1024).toFixed(1)} KB` : `${(n / (1 << 20)).toFixed(1)} MB`;
}

export const when = (iso) => (iso ? new Date(iso).toLocaleString() : "–");
