// #/sweeps: the sweeps (polled while open); #/sweeps/<id>: its members compared, live from
// GET /v1/sweeps/<id>/events, whose every `sweep` frame is the whole Sweep.

import { followEvents, getJson, postJson } from "./api.js";
import { drawFigure, drawScatter } from "./svg.js";
import { FINAL, attempt, drawOrExplain, h, num, progressBar, stateBadge, svgEl, when } from "./ui.js";

const METRICS = ["w1_a", "in_band", "resid", "d_accuracy", "d_score", "d_loss", "g_loss"];
const metricOf = (member, key) => member.quality?.[key] ?? member.metrics?.[key] ?? NaN;

export function sweepsView(root, signal) {
  const tbody = h("tbody");
  root.append(h("div", { class: "toolbar" }, h("h1", {}, "Sweeps")),
    h("table", { id: "sweeps-table" },
      h("thead", {}, h("tr", {}, ...["sweep", "state", "progress", "members", "varied", "best by", "created"]
        .map((t) => h("th", {}, t)))),
      tbody));
  async function refresh() {
    const page = await getJson("/v1/sweeps?limit=100", { signal });
    tbody.replaceChildren(...page.items.map((s) => h("tr", { dataset: { sweepId: s.id, state: s.state } },
      h("td", {}, h("a", { href: `#/sweeps/${s.id}` }, s.name || s.id)),
      h("td", {}, stateBadge(s.state)),
      h("td", {}, progressBar(s.progress)),
      h("td", { class: "num" }, s.member_count),
      h("td", {}, s.vary ? Object.keys(s.vary).join(", ") : "members"),
      h("td", {}, s.best_by),
      h("td", {}, when(s.created_at)))));
    if (!page.items.length) tbody.append(h("tr", {}, h("td", { colspan: 7, class: "empty" }, "No sweeps.")));
    root.dataset.loaded = "true";
  }
  let busy = false;
  const tick = async () => {
    if (busy) return;
    busy = true;
    await attempt(refresh);
    busy = false;
  };
  tick();
  const timer = setInterval(tick, 2000);
  return () => clearInterval(timer);
}

// Where each member sits on the x axis: the varied value when one numeric field varies (on a
// log scale when it spans a decade or more, as learning rates do), else its index.
function xAxis(members) {
  const fields = [...new Set(members.flatMap((m) => Object.keys(m.values)))];
  const values = members.map((m) => m.values[fields[0]]);
  if (fields.length === 1 && values.every((v) => typeof v === "number")) {
    const log = values.every((v) => v > 0) && Math.max(...values) / Math.min(...values) >= 10;
    // On a log axis the ticks still name the values themselves (3e-4, not -3.52).
    return { label: log ? `${fields[0]} (log scale)` : fields[0], categorical: false,
      x: (m) => (log ? Math.log10(m.values[fields[0]]) : m.values[fields[0]]),
      tick: (t) => +(log ? 10 ** t : t).toPrecision(3) };
  }
  return { label: "member", categorical: true, x: (m) => m.member_index };
}

export function sweepView(root, signal, id) {
  const title = h("h1", { id: "sweep-title" }, id);
  const status = h("div", { class: "job-status" });
  const metric = h("select", { id: "sweep-metric" }, ...METRICS.map((m) => h("option", { value: m }, m)));
  const chart = svgEl("sweep-chart", "figure");
  const best = svgEl("sweep-best-figure", "figure");
  const bestNote = h("p", { id: "sweep-best", class: "sub" }, "no best member yet");
  const tbody = h("tbody");
  root.append(
    h("div", { class: "toolbar" }, h("a", { href: "#/sweeps" }, "← Sweeps"), title, status),
    h("section", { class: "split" },
      h("div", { class: "figure-box" }, h("label", {}, "compare by ", metric), chart),
      h("div", { class: "figure-box" }, best, bestNote)),
    h("table", { id: "sweep-members" },
      h("thead", {}, h("tr", {}, ...["#", "job", "values", "state", "progress", "D accuracy", "D score", "in band", "W1(a)"]
        .map((t) => h("th", {}, t)))),
      tbody));

  let sweep = null;
  let deleted = false;
  let drawnCheckpoint = null;
  let sampling = false;

  function render() {
    root.dataset.state = sweep.state;
    title.textContent = sweep.name ? `${sweep.name} (${sweep.id})` : sweep.id;
    status.replaceChildren(stateBadge(sweep.state, "sweep-state"), progressBar(sweep.progress, "sweep-progress"),
      h("span", { class: "sub" }, `best by ${sweep.best_by}`));
    const bestIndex = sweep.best?.member_index;
    tbody.replaceChildren(...sweep.members.map((m) => h("tr", {
      class: m.member_index === bestIndex ? "best" : "",
      dataset: { memberIndex: m.member_index, jobId: m.job_id, state: m.state, best: m.member_index === bestIndex },
    },
      h("td", {}, m.member_index),
      h("td", {}, h("a", { href: `#/jobs/${m.job_id}` }, m.job_id)),
      h("td", {}, h("code", {}, JSON.stringify(m.values))),
      h("td", {}, stateBadge(m.state)),
      h("td", {}, progressBar(m.progress)),
      h("td", { class: "num" }, num(m.metrics?.d_accuracy)),
      h("td", { class: "num" }, num(m.metrics?.d_score)),
      h("td", { class: "num" }, num(m.quality?.in_band)),
      h("td", { class: "num" }, num(m.quality?.w1_a)))));
    const axis = xAxis(sweep.members);
    drawScatter(chart, sweep.members.map((m) => ({
      index: m.member_index, x: axis.x(m), y: metricOf(m, metric.value),
      best: m.member_index === bestIndex, label: JSON.stringify(m.values),
    })), { xLabel: axis.label, yLabel: metric.value, categorical: axis.categorical,
      xTick: axis.tick });
    drawBest();
  }

  // The best member's curves over the bounds, sampled again only when it has a newer
  // checkpoint (read from its job first: sampling before one exists would be a 409).
  async function drawBest() {
    if (!sweep.best || sampling) return;
    sampling = true;
    await drawOrExplain([best], async () => {
      const job = await getJson(`/v1/jobs/${sweep.best.job_id}`, { signal });
      if (!job.latest_checkpoint || job.latest_checkpoint === drawnCheckpoint) return;
      const s = await postJson(`/v1/jobs/${job.id}/samples`, { n: 8, seed: 0 }, { signal });
      drawnCheckpoint = job.latest_checkpoint;
      drawFigure(best, { curves: s.curves, x: s.x, dAccuracy: job.metrics?.d_accuracy, dScore: job.metrics?.d_score,
        caption: `best: member #${sweep.best.member_index}, step ${job.step}` });
      best.dataset.jobId = job.id;
      bestNote.textContent = `best member #${sweep.best.member_index} (${sweep.best_by} = ${num(sweep.best.value, 4)}): ${JSON.stringify(sweep.members[sweep.best.member_index]?.values ?? {})}`;
    });
    sampling = false;
  }

  metric.addEventListener("change", () => sweep && render());
  drawFigure(best, { caption: "the best member's curves, once it has a checkpoint" });
  attempt(async () => {
    sweep = await getJson(`/v1/sweeps/${id}`, { signal });
    metric.value = METRICS.includes(sweep.best_by) ? sweep.best_by : "w1_a";
    render();
    await followEvents(`/v1/sweeps/${id}/events`, {
      signal,
      done: () => deleted || FINAL.has(sweep.state),
      onEvent(name, data) {
        if (name === "sweep") { sweep = data; render(); }
        if (name === "deleted") deleted = true;
      },
    });
    root.dataset.stream = "ended";
  });
}
