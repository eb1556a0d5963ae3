// The hand-drawn figures: the tutorial's plot (curves between x² and 2x²+1) and the histogram
// of fitted a against U(1,2). SVG rather than canvas so tests can read what was drawn: each
// curve keeps its values in data-values, each bar its count in data-count. A value that is not
// a finite number (null from JSON) is never drawn: a curve's line breaks there.

export const X15 = Array.from({ length: 15 }, (_, i) => -1 + (2 * i) / 14);
const W = 480, H = 340, M = { l: 40, r: 12, t: 30, b: 28 };
const fmt = (v) => (Number.isFinite(v) ? v.toFixed(2) : "–");
// Text written into the markup: names and server messages must stay text, never markup.
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function scale([d0, d1], [r0, r1]) {
  return (v) => r0 + ((v - d0) / (d1 - d0)) * (r1 - r0);
}

// A path through the finite points only: after a gap the line starts again (M), so no point is
// drawn at a made-up place.
function polyline(xs, ys, sx, sy) {
  let d = "", pen = "M";
  xs.forEach((x, i) => {
    if (!Number.isFinite(x) || !Number.isFinite(ys[i])) {
      pen = "M";
      return;
    }
    d += `${pen}${sx(x).toFixed(1)},${sy(ys[i]).toFixed(1)}`;
    pen = "L";
  });
  return d;
}

function axes(sx, sy, xTicks, yTicks, xLabel = "", yLabel = "", xTick = (t) => t) {
  const [x0, x1] = [M.l, W - M.r], [y0, y1] = [H - M.b, M.t];
  let s = `<rect class="frame" x="${x0}" y="${y1}" width="${x1 - x0}" height="${y0 - y1}"/>`;
  for (const t of xTicks) s += `<text class="tick" x="${sx(t)}" y="${y0 + 14}" text-anchor="middle">${xTick(t)}</text>`;
  for (const t of yTicks) s += `<text class="tick" x="${x0 - 5}" y="${sy(t) + 4}" text-anchor="end">${t}</text>`;
  if (xLabel) s += `<text class="label" x="${x1}" y="${H - 2}" text-anchor="end">${esc(xLabel)}</text>`;
  if (yLabel) s += `<text class="label" x="4" y="${M.t - 10}">${esc(yLabel)}</text>`;
  return s;
}

// The tutorial's figure. curves: lists of 15 y values on X15 (or on `x`). dAccuracy and
// dScore are written on it as the tutorial does; either may be absent.
export function drawFigure(svg, { curves = [], x = X15, dAccuracy, dScore, caption = "" }) {
  curves = (curves || []).filter(Array.isArray);
  // The tutorial's view (-0.5 to 3.5) grown to hold every curve, within limits: a curve far
  // off is still seen leaving the frame, and one wild curve cannot squash the others flat.
  const all = curves.flat().filter(Number.isFinite);
  const yLo = Math.max(-4, Math.min(-0.5, Math.floor(Math.min(...all, 0) * 2) / 2));
  const yHi = Math.min(8, Math.max(3.5, Math.ceil(Math.max(...all, 0) * 2) / 2));
  const sx = scale([-1, 1], [M.l, W - M.r]);
  const sy = scale([yLo, yHi], [H - M.b, M.t]);
  const fine = Array.from({ length: 41 }, (_, i) => -1 + i / 20);
  const clip = `${svg.id || "fig"}-clip`;
  const yTicks = [];
  for (let t = Math.ceil(yLo); t <= yHi; t += yHi - yLo > 6 ? 2 : 1) yTicks.push(t);
  let s = `<defs><clipPath id="${clip}"><rect x="${M.l}" y="${M.t}" width="${W - M.l - M.r}" height="${H - M.t - M.b}"/></clipPath></defs>`;
  s += axes(sx, sy, [-1, -0.5, 0, 0.5, 1], yTicks);
  s += `<g clip-path="url(#${clip})">`;
  // Many curves are drawn fainter, so that where they crowd shows the density.
  s += `<g class="curves${curves.length > 16 ? " many" : ""}">`;
  for (const ys of curves) {
    const values = ys.map((v) => (Number.isFinite(v) ? v.toFixed(4) : "NaN")).join(",");
    s += `<path class="curve" data-values="${values}" d="${polyline(x, ys, sx, sy)}"/>`;
  }
  s += "</g>";
  // The bounds over the curves: with a hundred curves drawn they would vanish beneath.
  s += `<path class="bound upper" d="${polyline(fine, fine.map((v) => 2 * v * v + 1), sx, sy)}"/>`;
  s += `<path class="bound lower" d="${polyline(fine, fine.map((v) => v * v), sx, sy)}"/>`;
  s += "</g>";
  s += `<text class="legend upper" x="${M.l + 6}" y="${M.t + 14}">upper bound 2x²+1</text>`;
  s += `<text class="legend lower" x="${M.l + 6}" y="${M.t + 28}">lower bound x²</text>`;
  s += `<text class="legend curve" x="${M.l + 6}" y="${M.t + 42}">generated (${curves.length})</text>`;
  s += `<text class="metric" data-metric="d_accuracy" x="${W - M.r - 6}" y="${H - M.b - 24}" text-anchor="end">D accuracy=${fmt(dAccuracy)} (0.5 for D to converge)</text>`;
  s += `<text class="metric" data-metric="d_score" x="${W - M.r - 6}" y="${H - M.b - 8}" text-anchor="end">D score=${fmt(dScore)} (-1.38 for G to converge)</text>`;
  if (caption) s += `<text class="caption" x="${M.l}" y="${M.t - 10}">${esc(caption)}</text>`;
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.innerHTML = s;
  svg.dataset.curves = curves.length;
  svg.dataset.skipped = curves.flat().length - all.length; // values left undrawn
  delete svg.dataset.error;
}

// An empty frame that says why there is nothing to draw (a refused sample, say), in lines
// short enough for the frame; data-error holds the message whole.
export function drawMessage(svg, message) {
  const lines = [];
  for (const word of String(message).split(/\s+/)) {
    const last = lines.length - 1;
    if (last >= 0 && lines[last].length + word.length < 70) lines[last] += ` ${word}`;
    else lines.push(word);
  }
  let s = `<rect class="frame" x="${M.l}" y="${M.t}" width="${W - M.l - M.r}" height="${H - M.t - M.b}"/>`;
  s += `<text class="message" x="${W / 2}" y="${H / 2 - 8 * lines.length}" text-anchor="middle">`;
  s += lines.map((line, i) => `<tspan x="${W / 2}" dy="${i ? 16 : 0}">${esc(line)}</tspan>`).join("");
  s += "</text>";
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.innerHTML = s;
  for (const key of Object.keys(svg.dataset)) delete svg.dataset[key]; // what was drawn before
  svg.dataset.error = message;
}

// The least-squares a of y = a·x² + (a−1): a = Σ(y+1)(x²+1) / Σ(x²+1)². NaN for a curve with
// a value that is not finite (null would count as 0): the histogram leaves it out.
export function fitA(ys, x = X15) {
  let num = 0, den = 0;
  for (let i = 0; i < ys.length; i++) {
    if (!Number.isFinite(ys[i])) return NaN;
    const u = x[i] * x[i] + 1;
    num += (ys[i] + 1) * u;
    den += u * u;
  }
  return num / den;
}

// Density histogram of `values` in bins of 0.1, with U(1,2)'s density (1 on [1,2]) drawn
// over it as the reference the real curves follow.
export function drawHistogram(svg, values) {
  const width = 0.1;
  const finite = values.filter(Number.isFinite);
  // At least [0.5, 2.5] so the reference is always in view; outliers go to the edge bins.
  const lo = Math.max(-2, Math.min(0.5, Math.floor(Math.min(...finite) / width) * width));
  const hi = Math.min(5, Math.max(2.5, Math.ceil(Math.max(...finite) / width) * width));
  const bins = Math.round((hi - lo) / width);
  const counts = new Array(bins).fill(0);
  for (const v of finite) counts[Math.min(bins - 1, Math.max(0, Math.floor((v - lo) / width)))]++;
  const density = counts.map((c) => c / (finite.length * width || 1));
  const top = Math.max(1.5, ...density) * 1.1;
  const sx = scale([lo, hi], [M.l, W - M.r]);
  const sy = scale([0, top], [H - M.b, M.t]);
  const yTicks = [0, 0.5, 1, 1.5, 2, 3, 4, 6, 8].filter((t) => t <= top);
  const xTicks = [];
  for (let t = Math.ceil(lo * 2) / 2; t <= hi + 1e-9; t += 0.5) xTicks.push(+t.toFixed(1));
  let s = axes(sx, sy, xTicks, yTicks, "fitted a", "density");
  counts.forEach((c, i) => {
    const x0 = lo + i * width;
    const y = sy(density[i]);
    s += `<rect class="bar" data-count="${c}" data-lo="${x0.toFixed(2)}" x="${sx(x0).toFixed(1)}" y="${y.toFixed(1)}" width="${(sx(x0 + width) - sx(x0) - 1).toFixed(1)}" height="${(sy(0) - y).toFixed(1)}"/>`;
  });
  const ref = [[lo, 0], [1, 0], [1, 1], [2, 1], [2, 0], [hi, 0]];
  s += `<path class="uniform" d="${ref.map(([a, d], i) => `${i ? "L" : "M"}${sx(a).toFixed(1)},${sy(d).toFixed(1)}`).join("")}"/>`;
  s += `<text class="legend uniform" x="${W - M.r - 6}" y="${M.t + 14}" text-anchor="end">U(1,2) density</text>`;
  const mean = finite.reduce((a, b) => a + b, 0) / (finite.length || 1);
  s += `<text class="legend" x="${W - M.r - 6}" y="${M.t + 28}" text-anchor="end">n=${finite.length}, mean a=${mean.toFixed(3)}</text>`;
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.innerHTML = s;
  svg.dataset.n = finite.length;
  svg.dataset.mean = mean.toFixed(4);
  delete svg.dataset.error;
}

// A scatter of members: x = varied value, y = metric; the best member ringed.
export function drawScatter(svg, points, { xLabel, yLabel, categorical, xTick }) {
  const xs = points.map((p) => p.x), ys = points.map((p) => p.y).filter(Number.isFinite);
  let [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  if (x0 === x1) [x0, x1] = [x0 - 1, x1 + 1];
  const pad = (x1 - x0) * 0.08;
  let [y0, y1] = ys.length ? [Math.min(...ys), Math.max(...ys)] : [0, 1];
  if (y0 === y1) [y0, y1] = [y0 - 0.5, y1 + 0.5];
  const yp = (y1 - y0) * 0.1;
  const sx = scale([x0 - pad, x1 + pad], [M.l, W - M.r]);
  const sy = scale([y0 - yp, y1 + yp], [H - M.b, M.t]);
  const xTicks = categorical ? [] : [...new Set(xs)].slice(0, 12);
  // Two significant digits fit the left margin (a label like 0.0868 was cut to .0868).
  const yTicks = [y0, (y0 + y1) / 2, y1].map((v) => +v.toPrecision(2));
  let s = axes(sx, sy, xTicks, yTicks, xLabel, yLabel, xTick);
  for (const p of points) {
    if (!Number.isFinite(p.y)) continue;
    s += `<circle class="member${p.best ? " best" : ""}" data-member-index="${p.index}" cx="${sx(p.x).toFixed(1)}" cy="${sy(p.y).toFixed(1)}" r="${p.best ? 7 : 5}"><title>${esc(p.label)}: ${p.y.toPrecision(4)}</title></circle>`;
    if (categorical) s += `<text class="tick" x="${sx(p.x)}" y="${H - M.b + 14}" text-anchor="middle">#${p.index}</text>`;
  }
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.innerHTML = s;
  svg.dataset.points = points.filter((p) => Number.isFinite(p.y)).length;
}
