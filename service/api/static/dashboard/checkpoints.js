// #/checkpoints: list, upload, download, delete; #/checkpoints/<id>: N sampled curves over
// the bounds and the histogram of each curve's fitted a against U(1,2).

import { getJson, postJson, request } from "./api.js";
import { drawFigure, drawHistogram, fitA } from "./svg.js";
import { attempt, bytes, drawOrExplain, h, notify, num, svgEl, when } from "./ui.js";

// The file comes through fetch() (so the Authorization header goes with it) and is saved
// from an object URL: a plain link would carry no key.
async function download(id, signal) {
  const blob = await (await request("GET", `/v1/checkpoints/${id}/file`, { signal })).blob();
  const url = URL.createObjectURL(blob);
  const a = h("a", { href: url, download: `${id}.safetensors`, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

function row(ck, refresh, signal) {
  const q = ck.quality || {};
  return h("tr", { dataset: { checkpointId: ck.id } },
    h("td", {}, h("a", { href: `#/checkpoints/${ck.id}` }, ck.id)),
    h("td", {}, ck.job_id ? h("a", { href: `#/jobs/${ck.job_id}` }, ck.job_id) : ck.source),
    h("td", { class: "num" }, ck.step),
    h("td", { class: "num" }, num(q.in_band)),
    h("td", { class: "num" }, num(q.w1_a)),
    h("td", { class: "num" }, bytes(ck.size_bytes)),
    h("td", {}, when(ck.created_at)),
    h("td", { class: "actions" },
      h("a", { class: "button sample", href: `#/checkpoints/${ck.id}` }, "Sample"),
      h("button", { type: "button", class: "download", dataset: { action: "download" },
        onclick: () => attempt(() => download(ck.id, signal)) }, "Download"),
      h("button", { type: "button", class: "delete", dataset: { action: "delete" },
        onclick: () => attempt(async () => {
          if (!confirm(`Delete checkpoint ${ck.id}?`)) return;
          await request("DELETE", `/v1/checkpoints/${ck.id}`, { signal });
          notify(`deleted ${ck.id}`);
          await refresh();
        }) }, "Delete")));
}

export function checkpointsView(root, signal) {
  const tbody = h("tbody");
  const file = h("input", { id: "ck-upload-file", type: "file", accept: ".safetensors" });
  const status = h("span", { id: "ck-upload-status", class: "sub" });
  const upload = h("button", { id: "ck-upload", type: "button" }, "Upload");
  root.append(
    h("div", { class: "toolbar" }, h("h1", {}, "Checkpoints"),
      h("span", { class: "upload" }, file, upload, status)),
    h("table", { id: "checkpoints-table" },
      h("thead", {}, h("tr", {}, ...["checkpoint", "job", "step", "in band", "W1(a)", "size", "saved", ""]
        .map((t) => h("th", {}, t)))),
      tbody));

  async function refresh() {
    const page = await getJson("/v1/checkpoints?limit=200", { signal });
    tbody.replaceChildren(...page.items.map((ck) => row(ck, refresh, signal)));
    if (!page.items.length) tbody.append(h("tr", {}, h("td", { colspan: 8, class: "empty" }, "No checkpoints.")));
    root.dataset.loaded = "true";
  }
  upload.addEventListener("click", () => attempt(async () => {
    const chosen = file.files[0];
    if (!chosen) return notify("choose a .safetensors file first", "error");
    // The raw file is the body (routers/checkpoints.py reads application/octet-stream).
    const response = await request("POST", "/v1/checkpoints", {
      body: chosen, headers: { "Content-Type": "application/octet-stream" }, signal });
    const ck = await response.json();
    status.textContent = `uploaded ${ck.id}`;
    status.dataset.checkpointId = ck.id;
    file.value = "";
    await refresh();
  }));
  attempt(refresh);
}

export function checkpointView(root, signal, id) {
  const n = h("input", { id: "s-n", type: "number", min: 1, value: 200 });
  const seed = h("input", { id: "s-seed", type: "number", min: 0, value: 0 });
  const figure = svgEl("ck-figure", "figure");
  const hist = svgEl("ck-hist", "figure");
  const facts = h("dl", { id: "ck-facts", class: "facts" });
  const form = h("form", { id: "sample-form", class: "inline" },
    h("label", {}, "N ", n), h("label", {}, "seed ", seed),
    h("button", { id: "s-draw", type: "submit" }, "Draw"),
    h("button", { id: "ck-download", type: "button", onclick: () => attempt(() => download(id, signal)) }, "Download"));
  root.append(
    h("div", { class: "toolbar" }, h("a", { href: "#/checkpoints" }, "← Checkpoints"), h("h1", {}, id), form),
    h("section", { class: "split" }, h("div", { class: "figure-box" }, figure, facts), h("div", { class: "figure-box" }, hist)));

  let ck = null;
  async function draw() {
    delete root.dataset.drawn;
    const body = { n: Number(n.value), seed: Number(seed.value) };
    const s = await postJson(`/v1/checkpoints/${id}/samples`, body, { signal });
    const m = ck?.metrics || {};
    drawFigure(figure, { curves: s.curves, x: s.x, dAccuracy: m.d_accuracy, dScore: m.d_score,
      caption: `${s.curves.length} curves, seed ${s.seed}` });
    drawHistogram(hist, s.curves.map((ys) => fitA(ys, s.x)));
    root.dataset.drawn = String(s.curves.length);
  }
  // A refused sample (its curves not finite, say) is written on both figures.
  const drawn = () => drawOrExplain([figure, hist], draw);
  form.addEventListener("submit", (e) => { e.preventDefault(); drawn(); });
  attempt(async () => {
    ck = await getJson(`/v1/checkpoints/${id}`, { signal });
    const q = ck.quality || {};
    facts.replaceChildren(...[["job", ck.job_id || ck.source], ["step", ck.step],
      ["in band", num(q.in_band)], ["W1(a)", num(q.w1_a)], ["size", bytes(ck.size_bytes)],
      ["sha256", ck.sha256.slice(0, 16) + "…"]].flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, String(v))]));
    await drawn();
  });
}
