"""Dashboard figures, against a real server and headless Chromium (Playwright; not a test).

Run: .venv/bin/python benchmarks/dashboard.py [--repeats N] [--history N]

1. `/` in a fresh browser context (empty cache), --repeats times, medians: first paint and
   first contentful paint (performance paint entries), DOMContentLoaded, load, and the jobs
   table filled from GET /v1/jobs.
2. A job page holding a --history-row history (10 000 by default), fed through the page's own
   update path (window.dashboard.job.ingest, what the event stream calls): the frame that
   draws the whole history at once, then one row per frame and bursts of 20 rows per frame,
   each row carrying 4 curves as the live frames do. Per frame: the interval between
   animation frames and the script time spent in the frame before the measuring callback
   (the redraw of three uPlot charts and the SVG figure).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile

import httpx
from _server import start_server
from playwright.sync_api import sync_playwright

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]

# Runs in the page: synthetic rows (curves inside the band) through the job view's ingest.
FEED_JS = """
async ({ history, single, bursts, burst }) => {
  const job = window.dashboard.job;
  const xs = Array.from({ length: 15 }, (_, i) => -1 + i / 7);
  let step = job.history.lastStep + 1;
  const row = () => {
    step += 1;
    const a = 1 + (step % 97) / 97;
    return { step, d_loss: 1.38 + 0.05 * Math.sin(step / 50), g_loss: 0.7 + 0.05 * Math.cos(step / 40),
      d_accuracy: 0.5 + 0.02 * Math.sin(step / 30), d_score: -1.38, in_band: 0.98, resid: 0.01,
      w1_a: 0.01, state: "running", progress: 0.5,
      curves: [0, 1, 2, 3].map((k) => xs.map((x) => (a + k * 0.1) * x * x + a + k * 0.1 - 1)) };
  };
  const frame = () => new Promise((r) => requestAnimationFrame((t) => r([t, performance.now()])));
  const stats = (xs) => { const s = [...xs].sort((a, b) => a - b);
    return { median: s[Math.floor(s.length / 2)], p95: s[Math.floor(s.length * 0.95)], max: s[s.length - 1] }; };

  // The whole history in one ingest, as the first page of GET .../metrics is.
  const rows = Array.from({ length: history }, row);
  let [t0] = await frame();
  const before = performance.now();
  job.ingest(rows);
  let [, end] = await frame();
  const bulk = end - before;

  async function run(frames, perFrame) {
    const intervals = [], work = [];
    let [last] = await frame();
    for (let i = 0; i < frames; i++) {
      job.ingest(Array.from({ length: perFrame }, row));
      const [start, now] = await frame();
      intervals.push(start - last);
      work.push(now - start);
      last = start;
    }
    return { interval: stats(intervals), work: stats(work) };
  }
  const one = await run(single, 1);
  const many = await run(bursts, burst);
  return { bulk, one, many, points: Number(document.querySelector("#chart-d").dataset.points),
    curves: Number(document.querySelector("#job-figure").dataset.curves) };
}
"""


def chromium() -> str:
    path = os.environ.get("CURVEGAN_TEST_CHROMIUM") or shutil.which("chromium")
    if not path:
        raise SystemExit("no chromium: apt-get install chromium (or set CURVEGAN_TEST_CHROMIUM)")
    return path


def first_paint(browser, url: str, repeats: int, warm: bool) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Medians over ``repeats`` loads, each in a new context (empty cache); ``warm`` loads the
    page once before the measured load, so its files come from the cache (304s)."""
    figures: dict[str, list[float]] = {}
    for _ in range(repeats):
        context = browser.new_context(viewport={"width": 1280, "height": 860})
        page = context.new_page()
        for _ in range(2 if warm else 1):
            page.goto(f"{url}/")
            page.wait_for_selector("#view[data-loaded=true]")
        marks = page.evaluate(
            """() => { const nav = performance.getEntriesByType('navigation')[0];
                const paint = Object.fromEntries(performance.getEntriesByType('paint')
                  .map((e) => [e.name, e.startTime]));
                return { 'first-paint': paint['first-paint'],
                  'first-contentful-paint': paint['first-contentful-paint'],
                  DOMContentLoaded: nav.domContentLoadedEventEnd, load: nav.loadEventEnd,
                  'jobs table filled': performance.now() }; }"""
        )
        for name, value in marks.items():
            figures.setdefault(name, []).append(value)
        context.close()
    return {name: statistics.median(values) for name, values in figures.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--history", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data_dir:
        proc, url = start_server(data_dir)
        try:
            job = httpx.post(
                f"{url}/v1/jobs", json={"preset": "fast", "config": {"steps": 200}}
            ).json()
            with sync_playwright() as pw:
                browser = pw.chromium.launch(
                    executable_path=chromium(), headless=True, args=CHROMIUM_ARGS
                )
                cold = first_paint(browser, url, args.repeats, warm=False)
                warm = first_paint(browser, url, args.repeats, warm=True)
                print(f"1. /, median of {args.repeats} (ms from navigation):   cold    warm")
                for name, ms in cold.items():
                    print(f"   {name:24s}                {ms:7.1f} {warm[name]:7.1f}")

                page = browser.new_page(viewport={"width": 1280, "height": 860})
                page.goto(f"{url}/#/jobs/{job['id']}")
                page.wait_for_selector("#view[data-stream=ended]", state="attached")
                result = page.evaluate(
                    FEED_JS, {"history": args.history, "single": 300, "bursts": 100, "burst": 20}
                )
                browser.close()
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    print(
        f"2. job page, {args.history} synthetic rows through window.dashboard.job.ingest "
        f"(charts now hold {result['points']} points, figure {result['curves']} curves):"
    )
    print(f"   whole history in one ingest, until the next frame: {result['bulk']:.1f} ms")
    for label, key in (("1 row per frame", "one"), ("20 rows per frame", "many")):
        interval, work = result[key]["interval"], result[key]["work"]
        print(
            f"   {label:18s} frame interval median {interval['median']:5.1f} ms, "
            f"p95 {interval['p95']:5.1f}, max {interval['max']:5.1f}; "
            f"redraw work median {work['median']:4.1f} ms, p95 {work['p95']:4.1f}, "
            f"max {work['max']:4.1f}"
        )


if __name__ == "__main__":
    main()
