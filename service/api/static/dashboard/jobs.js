// #/jobs: the job list (polled while open), a state filter, and the form that starts a job.

import { ApiError, getJson, postJson, request } from "./api.js";
import { FINAL, attempt, h, notify, num, progressBar, stateBadge } from "./ui.js";

const STATES = ["queued", "running", "succeeded", "failed", "cancelled"];
// The form's config fields: [name, label, input attributes]. Empty means the preset's value.
const FIELDS = [
  ["steps", "steps", { type: "number", min: 1, step: 1 }],
  ["lr_g", "lr G", { type: "number", step: "any" }],
  ["lr_d", "lr D", { type: "number", step: "any" }],
  ["batch_size", "batch size", { type: "number", step: 1 }],
  ["seed", "seed", { type: "number", min: 0, step: 1 }],
  ["log_every", "log every", { type: "number", min: 1, step: 1 }],
];
const POLL_MS = 1500;

// The presets the server knows, from its OpenAPI document (open without the key).
let presets = null;
async function loadPresets(signal) {
  if (!presets) {
    const doc = await (await fetch("/openapi.json", { signal })).json();
    const preset = doc.components.schemas.JobCreate.properties.preset;
    presets = (preset.anyOf || [preset]).find((s) => s.enum)?.enum || ["tutorial"];
  }
  return presets;
}

// Cancel, save-checkpoint and delete, enabled as the job's state allows; shared with job.js.
// `compact`: the list's row, where "Save checkpoint" would wrap the buttons onto three lines.
export function jobActions(job, { onChange, signal, compact = false } = {}) {
  const final = FINAL.has(job.state);
  const act = (label, cls, enabled, run) =>
    h("button", {
      class: cls, type: "button", disabled: !enabled, dataset: { action: cls, jobId: job.id },
      title: cls === "checkpoint" ? "save a checkpoint now" : undefined,
      onclick: (e) => { e.stopPropagation(); attempt(run).then(() => onChange && attempt(onChange)); },
    }, label);
  return h("span", { class: "actions" },
    act("Cancel", "cancel", !final, async () => {
      await request("POST", `/v1/jobs/${job.id}/cancel`, { signal });
      notify(`cancelling ${job.id}`);
    }),
    act(compact ? "Save" : "Save checkpoint", "checkpoint", job.state === "running", async () => {
      const ck = await postJson(`/v1/jobs/${job.id}/checkpoints`, undefined, { signal });
      notify(`saved checkpoint ${ck.id} at step ${ck.step}`);
    }),
    act("Delete", "delete", final, async () => {
      if (!confirm(`Delete job ${job.id} and its metric history?`)) return;
      await request("DELETE", `/v1/jobs/${job.id}`, { signal });
      notify(`deleted ${job.id}`);
      if (location.hash.startsWith(`#/jobs/${job.id}`)) location.hash = "#/jobs";
    }),
  );
}

function jobRow(job, refresh, signal) {
  const m = job.metrics || {}, q = job.quality || {};
  return h("tr", { dataset: { jobId: job.id, state: job.state } },
    h("td", {}, h("a", { href: `#/jobs/${job.id}` }, job.name || job.id),
      job.name ? h("div", { class: "sub" }, job.id) : null),
    h("td", {}, stateBadge(job.state)),
    h("td", {}, progressBar(job.progress), h("div", { class: "sub" }, `${job.step} / ${job.steps}`)),
    h("td", { class: "num" }, num(m.d_accuracy)),
    h("td", { class: "num" }, num(m.d_score)),
    h("td", { class: "num" }, num(q.in_band)),
    h("td", { class: "num" }, num(q.w1_a)),
    h("td", {}, jobActions(job, { onChange: refresh, signal, compact: true })),
  );
}

function jobForm(signal) {
  const preset = h("select", { id: "f-preset", name: "preset" });
  loadPresets(signal).then((names) => preset.replaceChildren(...names.map((n) => h("option", { value: n }, n))))
    .catch(() => {});
  const field = (name, label, input) => h("label", { class: "field" },
    h("span", {}, label), input,
    h("span", { class: "field-error", dataset: { errorFor: name } }));
  const inputs = Object.fromEntries(FIELDS.map(([name, , attrs]) =>
    [name, h("input", { id: `f-${name}`, name, placeholder: "preset", ...attrs })]));
  const nameInput = h("input", { id: "f-name", name: "name", placeholder: "optional" });
  const general = h("div", { class: "field-error", id: "job-form-error", dataset: { errorFor: "" } });
  const form = h("form", { id: "job-form", novalidate: true },
    h("h2", {}, "Start a job"),
    field("preset", "preset", preset),
    field("name", "name", nameInput),
    ...FIELDS.map(([name, label]) => field(`config.${name}`, label, inputs[name])),
    h("button", { id: "job-submit", type: "submit" }, "Start"),
    general,
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    for (const el of form.querySelectorAll(".field-error")) el.textContent = "";
    form.querySelectorAll(".invalid").forEach((el) => el.classList.remove("invalid"));
    const config = {};
    for (const [name] of FIELDS) {
      const raw = inputs[name].value.trim();
      // Sent as typed (a number when it reads as one): the server's 422 names what is wrong.
      if (raw !== "") config[name] = raw !== "" && !Number.isNaN(Number(raw)) ? Number(raw) : raw;
    }
    const body = { preset: preset.value || undefined, config };
    if (nameInput.value.trim()) body.name = nameInput.value.trim();
    try {
      const job = await postJson("/v1/jobs", body, { signal });
      location.hash = `#/jobs/${job.id}`;
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      const slot = form.querySelector(`.field-error[data-error-for="${CSS.escape(err.field || "")}"]`) || general;
      slot.textContent = err.message;
      if (slot !== general) slot.previousElementSibling?.classList.add("invalid");
    }
  });
  return form;
}

export function jobsView(root, signal) {
  const filter = h("select", { id: "job-filter" },
    h("option", { value: "" }, "all states"), ...STATES.map((s) => h("option", { value: s }, s)));
  const tbody = h("tbody");
  const total = h("span", { id: "jobs-total", class: "sub" });
  root.append(
    h("section", { class: "split" },
      h("div", { class: "grow" },
        h("div", { class: "toolbar" }, h("h1", {}, "Jobs"), h("label", {}, "state ", filter), total),
        h("table", { id: "jobs-table" },
          h("thead", {}, h("tr", {}, ...["job", "state", "progress", "D accuracy", "D score", "in band", "W1(a)", ""]
            .map((t) => h("th", {}, t)))),
          tbody)),
      jobForm(signal)));

  // Rows are rebuilt only when their job changed, so a button is not swapped under the pointer.
  let rows = new Map(); // job id -> { json, tr }
  let busy = false;
  async function refresh() {
    if (busy || signal.aborted) return;
    busy = true;
    await attempt(async () => {
      const q = filter.value ? `&state=${filter.value}` : "";
      const page = await getJson(`/v1/jobs?limit=100${q}`, { signal });
      const next = new Map();
      for (const job of page.items) {
        const json = JSON.stringify(job);
        const old = rows.get(job.id);
        next.set(job.id, old?.json === json ? old : { json, tr: jobRow(job, refresh, signal) });
      }
      rows = next;
      const trs = [...next.values()].map((r) => r.tr);
      if (trs.length !== tbody.children.length || trs.some((tr, i) => tbody.children[i] !== tr)) {
        tbody.replaceChildren(...trs);
      }
      if (!page.items.length) tbody.append(h("tr", {}, h("td", { colspan: 8, class: "empty" }, "No jobs.")));
      total.textContent = `${page.total} job${page.total === 1 ? "" : "s"}`;
      root.dataset.loaded = "true";
    });
    busy = false;
  }
  filter.addEventListener("change", refresh);
  refresh();
  const timer = setInterval(refresh, POLL_MS);
  return () => clearInterval(timer);
}
