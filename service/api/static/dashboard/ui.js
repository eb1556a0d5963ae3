// Small DOM helpers shared by the views.

import { isAbort } from "./api.js";

// h("button", {id: "x", onclick: f}, "text", child...): an element; attributes starting with
// "on" are listeners, "dataset" an object of data-* attributes, false/null are left out.
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
  return h(
    "span",
    { class: "progress", id, dataset: { progress: (progress || 0).toFixed(4) } },
    h("span", { class: "bar", style: `width:${pct}%` }),
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

export function bytes(n) {
  return n < 1024 ? `${n} B` : n < 1 << 20 ? `${(n / 1024).toFixed(1)} KB` : `${(n / (1 << 20)).toFixed(1)} MB`;
}

export const when = (iso) => (iso ? new Date(iso).toLocaleString() : "–");
