// A job's metric history as columns (step, d_accuracy, ...) and the uPlot charts that draw
// them. Charts are made once per page; new rows are appended to the columns and drawn at
// most once per animation frame with setData, so a 10 000-point history stays smooth.

const SERIES = {
  d_accuracy: { label: "D accuracy", stroke: "#1f77b4" },
  d_score: { label: "D score", stroke: "#ff7f0e" },
  d_loss: { label: "D loss", stroke: "#d62728" },
  g_loss: { label: "G loss", stroke: "#2ca02c" },
  w1_a: { label: "W1(a)", stroke: "#9467bd" },
  in_band: { label: "in band", stroke: "#17becf" },
};
export const CHARTS = [
  { id: "chart-d", title: "D accuracy and D score", keys: ["d_accuracy", "d_score"] },
  { id: "chart-loss", title: "Losses", keys: ["d_loss", "g_loss"] },
  { id: "chart-quality", title: "Quality: W1 of fitted a to U(1,2), share in band", keys: ["w1_a", "in_band"] },
];

export class History {
  constructor(container) {
    this.columns = { step: [] };
    for (const key of Object.keys(SERIES)) this.columns[key] = [];
    this.charts = [];
    this.frame = null;
    this.frames = 0; // frames that redrew: exposed for tests and the benchmark
    for (const spec of CHARTS) {
      const box = document.createElement("div");
      box.className = "chart";
      box.id = spec.id;
      box.dataset.points = "0";
      container.append(box);
      this.charts.push({ box, spec, plot: this.#make(box, spec) });
    }
    this.resize = () => this.charts.forEach((c) => c.plot.setSize(this.#size(c.box)));
    window.addEventListener("resize", this.resize);
  }

  get lastStep() {
    const steps = this.columns.step;
    return steps.length ? steps[steps.length - 1] : -1;
  }

  #size(box) {
    return { width: Math.max(240, box.clientWidth || 420), height: 170 };
  }

  #make(box, spec) {
    const opts = {
      title: spec.title,
      ...this.#size(box),
      scales: { x: { time: false } },
      cursor: { sync: { key: "curvegan-history" } },
      legend: { live: true },
      series: [{ label: "step" }, ...spec.keys.map((k) => ({ ...SERIES[k], width: 1.5 }))],
      axes: [{}, { size: 48 }],
    };
    return new window.uPlot(opts, this.#data(spec), box);
  }

  #data(spec) {
    return [this.columns.step, ...spec.keys.map((k) => this.columns[k])];
  }

  // Rows must be in step order; a row at or before the last step is skipped (a stream
  // reopened at since_step = last - 1 sends the last row again, for its curves).
  append(rows) {
    let added = 0;
    for (const row of rows) {
      if (row.step <= this.lastStep) continue;
      this.columns.step.push(row.step);
      for (const key of Object.keys(SERIES)) this.columns[key].push(row[key] ?? null);
      added++;
    }
    if (added) this.schedule();
    return added;
  }

  schedule() {
    if (this.frame === null) this.frame = requestAnimationFrame(() => this.draw());
  }

  draw() {
    this.frame = null;
    this.frames++;
    for (const { box, spec, plot } of this.charts) {
      plot.setData(this.#data(spec));
      box.dataset.points = this.columns.step.length;
    }
  }

  destroy() {
    if (this.frame !== null) cancelAnimationFrame(this.frame);
    window.removeEventListener("resize", this.resize);
    this.charts.forEach((c) => c.plot.destroy());
  }
}
