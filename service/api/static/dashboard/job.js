// #/jobs/<id>: one job, live. The history is read once (GET .../metrics, 10 000 rows a page),
// then the event stream follows from the last loaded step − 1, so the latest row comes
// again with its `curves`: the tutorial's figure is redrawn from the curves each metrics
// frame carries, with no request per frame. Drawing is batched per animation frame.

import { followEvents, getJson, postJson } from "./api.js";
import { History } from "./history.js";
import { jobActions } from "./jobs.js";
import { drawFigure } from "./svg.js";
import {
  FINAL, attempt, bytes, drawOrExplain, h, notify, num, progressBar, stateBadge, svgEl, when,
} from "./ui.js";

const PAGE = 10_000; // the most rows GET .../metrics returns per page here

export function jobView(root, signal, id) {
  const title = h("h1", { id: "job-title" }, id);
  const status = h("div", { class: "job-status" });
  const actions = h("div", { id: "job-actions" });
  const figure = svgEl("job-figure", "figure");
  const history = h("div", { id: "job-history", class: "history" });
  const quality = h("dl", { id: "job-quality", class: "facts" });
  const checkpoints = h("ul", { id: "job-checkpoints", class: "plain" });
  root.append(
    h("div", { class: "toolbar" }, h("a", { href: "#/jobs" }, "← Jobs"), title, status, actions),
    h("section", { class: "split" },
      h("div", { class: "figure-box" }, figure, quality),
      history),
    h("section", {}, h("h2", {}, "Checkpoints"), checkpoints));
  drawFigure(figure, { caption: "waiting for the first logged step" });

  const charts = new History(history);
  let job = null;
  let latest = null; // the latest metrics row seen
  let curvesRow = null; // the latest row that carried curves, not drawn yet
  let curvesSeen = false;
  let deleted = false;
  let frame = null;

  function renderStatus() {
    // The newer of the job (state frames) and the latest row (metrics frames; rows from
    // GET .../metrics carry no progress).
    const step = Math.max(job.step, latest?.step ?? 0);
    status.replaceChildren(
      stateBadge(job.state, "job-state"),
      progressBar(Math.max(job.progress, latest?.progress ?? 0), "job-progress"),
      h("span", { id: "job-step", class: "sub", dataset: { step } }, `step ${step} / ${job.steps}`));
    const m = latest || job.metrics || {}, q = latest || job.quality || {};
    quality.replaceChildren(
      ...[["D accuracy", m.d_accuracy], ["D score", m.d_score], ["D loss", m.d_loss],
        ["G loss", m.g_loss], ["in band", q.in_band], ["W1(a)", q.w1_a]]
        .flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, num(v))]));
  }

  function setJob(next) {
    const changed = !job || job.state !== next.state || job.latest_checkpoint !== next.latest_checkpoint;
    job = next;
    root.dataset.state = job.state;
    title.textContent = job.name ? `${job.name} (${job.id})` : job.id;
    if (changed) {
      actions.replaceChildren(jobActions(job, { signal, onChange: refreshJob }));
      loadCheckpoints();
    }
    schedule();
  }

  function schedule() {
    if (frame === null) frame = requestAnimationFrame(render);
  }

  function render() {
    frame = null;
    if (job) renderStatus();
    if (curvesRow) {
      const row = curvesRow;
      curvesRow = null;
      drawFigure(figure, {
        curves: row.curves, dAccuracy: row.d_accuracy, dScore: row.d_score,
        caption: `step ${row.step}: ${row.curves.length} curves of the fixed evaluation batch`,
      });
      figure.dataset.step = row.step;
    }
  }

  // Rows from the history, the stream, or the benchmark's synthetic feed.
  function ingest(rows) {
    if (!rows.length) return;
    charts.append(rows);
    latest = rows[rows.length - 1];
    for (let i = rows.length - 1; i >= 0; i--) {
      if (rows[i].curves?.length) {
        curvesRow = rows[i];
        curvesSeen = true;
        break;
      }
    }
    schedule();
  }

  async function refreshJob() {
    setJob(await getJson(`/v1/jobs/${id}`, { signal }));
  }

  async function loadCheckpoints() {
    await attempt(async () => {
      const page = await getJson(`/v1/checkpoints?job_id=${encodeURIComponent(id)}&limit=20`, { signal });
      checkpoints.replaceChildren(...page.items.map((ck) => h("li", { dataset: { checkpointId: ck.id } },
        h("a", { href: `#/checkpoints/${ck.id}` }, ck.id),
        ` step ${ck.step}, ${bytes(ck.size_bytes)}, ${when(ck.created_at)}`)));
      if (!page.items.length) checkpoints.append(h("li", { class: "sub" }, "none yet"));
    });
  }

  // A final job whose stream brought no curves (rows logged before curves were recorded):
  // draw 8 curves from its latest checkpoint instead.
  async function sampleFallback() {
    if (curvesSeen || !job?.latest_checkpoint) return;
    const s = await postJson(`/v1/jobs/${id}/samples`, { n: 8, seed: 0 }, { signal });
    const m = job.metrics || {};
    drawFigure(figure, {
      curves: s.curves, x: s.x, dAccuracy: m.d_accuracy, dScore: m.d_score,
      caption: `checkpoint ${job.latest_checkpoint}: 8 curves (seed 0)`,
    });
    figure.dataset.source = "samples";
  }

  attempt(async () => {
    setJob(await getJson(`/v1/jobs/${id}`, { signal }));
    for (let since = 0; ;) {
      const page = await getJson(`/v1/jobs/${id}/metrics?since_step=${since}&limit=${PAGE}`, { signal });
      ingest(page.items);
      if (page.items.length < PAGE) break;
      since = page.items[page.items.length - 1].step;
    }
    root.dataset.stream = "live";
    await followEvents(`/v1/jobs/${id}/events`, {
      signal,
      query: { since_step: Math.max(0, charts.lastStep - 1) },
      done: () => deleted || FINAL.has(job.state),
      onEvent(name, data) {
        if (name === "state") setJob(data);
        else if (name === "metrics") {
          root.dataset.frames = Number(root.dataset.frames || 0) + 1; // frames the stream brought
          // The row's state is not applied here: the state frame that follows a change
          // does that, with the actions that go with it.
          ingest([data]);
        } else if (name === "deleted") {
          deleted = true; // not reconnected: it would only be a 404
          notify(`job ${id} was deleted`, "error");
        }
      },
    });
    root.dataset.stream = "ended";
    if (!signal.aborted) await drawOrExplain([figure], sampleFallback);
  });

  // The benchmark and tests drive the page's own update path through this.
  window.dashboard.job = { ingest, history: charts, get job() { return job; } };
  return () => {
    if (frame !== null) cancelAnimationFrame(frame);
    charts.destroy();
    delete window.dashboard.job;
  };
}
