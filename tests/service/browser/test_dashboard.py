"""The dashboard at / in a real browser against a real server (no API key): start a job from
the form and watch it train, a 422 shown by its field, cancel and save-checkpoint, sampling a
checkpoint, download and upload, a sweep's members, a refused sample and values that are not
finite, streams cut or dropped. The fixtures fail a test on any console error it did not
declare, on any request that leaves localhost, and on any CSP violation (so every page here
is shown to work under its Content-Security-Policy)."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from tests.helpers import Server, tiny_checkpoint_bytes, wait_for_state
from tests.service.browser.harness import failed_fetch

# Fast jobs: the `fast` preset lands in the band within ~1 000 steps and runs ~1 000
# steps/s here; log_every 20 gives the page a row every ~20 ms to draw.
LIVE_JOB = {"steps": 2000, "log_every": 20}
SLACK = 0.3  # how far outside [x², 2x²+1] a drawn point may lie


def curves_drawn(page: Any, svg: str) -> list[list[float]]:
    """The y values of every curve the SVG figure ``svg`` holds (its paths' data-values)."""
    values = page.eval_on_selector_all(
        f"{svg} path.curve", "paths => paths.map(p => p.dataset.values)"
    )
    return [[float(v) for v in s.split(",")] for s in values]


def in_band_share(curves: list[list[float]]) -> float:
    xs = [-1 + 2 * i / 14 for i in range(15)]
    points = [
        x * x - SLACK <= y <= 2 * x * x + 1 + SLACK
        for ys in curves
        for x, y in zip(xs, ys, strict=True)
    ]
    return sum(points) / len(points)


def canvas_ink(page: Any, selector: str) -> int:
    """Pixels of the chart's canvas that are not transparent: 0 for a blank chart."""
    return page.eval_on_selector(
        f"{selector} canvas",
        """c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                  let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; }""",
    )


def points(page: Any, chart: str = "#chart-d") -> int:
    return int(page.get_attribute(chart, "data-points") or 0)


def finished_job(client: httpx.Client, **config: Any) -> dict[str, Any]:
    r = client.post("/v1/jobs", json={"preset": "fast", "config": {"log_every": 20, **config}})
    assert r.status_code == 202, r.text
    return wait_for_state(client, r.json()["id"], {"succeeded"}, timeout=60)


def test_start_job_from_form_and_watch_it_train(
    open_page: Any, browser_server: Server, screenshot: Any
) -> None:
    page = open_page(browser_server.url)
    page.wait_for_selector("#view[data-view=jobs][data-loaded=true]")
    page.wait_for_selector("#f-preset option[value=fast]", state="attached")

    # The server's own 422 lands next to the field it names.
    open_page.guard(page).expect_console_error(failed_fetch(422, "/v1/jobs"))
    page.fill("#f-steps", "0")
    page.click("#job-submit")
    error = page.locator('.field-error[data-error-for="config.steps"]')
    error.wait_for()
    assert "config.steps" in error.inner_text() and "must be in" in error.inner_text()
    assert page.get_attribute("#f-steps", "class") == "invalid"

    page.select_option("#f-preset", "fast")
    page.fill("#f-name", "browser-live")
    page.fill("#f-steps", str(LIVE_JOB["steps"]))
    page.fill("#f-log_every", str(LIVE_JOB["log_every"]))
    page.click("#job-submit")
    page.wait_for_url("**/#/jobs/job_*")
    job_id = page.url.rsplit("/", 1)[-1]

    # Watch it train: the history and the figure grow while the job runs.
    page.wait_for_function("() => Number(document.querySelector('#chart-d')?.dataset.points) > 0")
    seen_points, seen_steps = (
        [points(page)],
        [int(page.get_attribute("#job-figure", "data-step") or 0)],
    )
    deadline = time.monotonic() + 60
    while page.get_attribute("#view", "data-state") != "succeeded":
        assert time.monotonic() < deadline, "job did not finish on the page"
        page.wait_for_timeout(150)
        seen_points.append(points(page))
        seen_steps.append(int(page.get_attribute("#job-figure", "data-step") or 0))
    page.wait_for_selector("#view[data-stream=ended]", state="attached")
    page.wait_for_function(
        "() => document.querySelector('#job-figure').dataset.step == "
        f"{LIVE_JOB['steps']} && document.querySelector('#chart-d').dataset.points == "
        f"{LIVE_JOB['steps'] // LIVE_JOB['log_every']}"
    )
    assert len(set(seen_points)) >= 3, f"history did not grow step by step: {seen_points}"
    assert len(set(seen_steps)) >= 3, f"figure was not redrawn as steps arrived: {seen_steps}"
    assert seen_points == sorted(seen_points)

    curves = curves_drawn(page, "#job-figure")
    assert 1 <= len(curves) <= 8 and all(len(c) == 15 for c in curves)
    assert in_band_share(curves) >= 0.9, curves
    assert page.locator("#job-figure path.bound").count() == 2
    assert "D accuracy=" in page.text_content("#job-figure [data-metric=d_accuracy]") or ""
    for chart in ("#chart-d", "#chart-loss", "#chart-quality"):
        assert points(page, chart) == LIVE_JOB["steps"] // LIVE_JOB["log_every"]
        assert canvas_ink(page, chart) > 500, f"{chart} drew nothing"
    assert page.get_attribute("#job-progress", "data-progress") == "1.0000"
    screenshot(page, "dashboard-job")

    # The server-side figure of the same job, as a browser shows it (the README's picture).
    page.goto(f"{browser_server.url}/v1/jobs/{job_id}/figure.png?n=5&seed=0&width=640&height=480")
    size = page.evaluate("[document.images[0].naturalWidth, document.images[0].naturalHeight]")
    assert size == [640, 480], size
    screenshot(page, "figure", "img")

    # The list shows it with its quality, and the state filter keeps it or drops it.
    page.goto(f"{browser_server.url}/#/jobs")
    row = page.locator(f"#jobs-table tr[data-job-id={job_id}]")
    row.wait_for()
    assert row.get_attribute("data-state") == "succeeded"
    page.select_option("#job-filter", "running")
    row.wait_for(state="detached")
    page.select_option("#job-filter", "succeeded")
    row.wait_for()


def test_cancel_and_save_checkpoint_from_the_job_page(
    open_page: Any, browser_server: Server
) -> None:
    with browser_server.client() as client:
        r = client.post("/v1/jobs", json={"config": {"steps": 1_000_000, "log_every": 50}})
        job_id = r.json()["id"]
        wait_for_state(client, job_id, {"running"})
        page = open_page(f"{browser_server.url}/#/jobs/{job_id}")
        page.wait_for_selector("#view[data-state=running]")
        page.click("#job-actions button[data-action=checkpoint]")
        page.wait_for_selector("#notice:has-text('saved checkpoint')")
        page.wait_for_selector("#job-checkpoints li[data-checkpoint-id]")
        page.click("#job-actions button[data-action=cancel]")
        page.wait_for_selector("#view[data-state=cancelled]", timeout=30_000)
        assert client.get(f"/v1/jobs/{job_id}").json()["state"] == "cancelled"
        # Final now: cancel is off, delete is on, and deleting goes back to the list.
        assert page.is_disabled("#job-actions button[data-action=cancel]")
        page.once("dialog", lambda d: d.accept())
        page.click("#job-actions button[data-action=delete]")
        page.wait_for_url("**/#/jobs")
        assert client.get(f"/v1/jobs/{job_id}").status_code == 404


def test_checkpoint_sample_download_and_upload(
    open_page: Any, browser_server: Server, screenshot: Any, tmp_path: Any
) -> None:
    with browser_server.client() as client:
        job = finished_job(client, steps=1000)
        ck_id = job["latest_checkpoint"]
        original = client.get(f"/v1/checkpoints/{ck_id}/file").content

        page = open_page(f"{browser_server.url}/#/checkpoints")
        row = page.locator(f"#checkpoints-table tr[data-checkpoint-id={ck_id}]")
        row.wait_for()

        # Download: fetched with the page's headers, saved from a Blob.
        with page.expect_download() as download:
            row.locator("button[data-action=download]").click()
        saved = tmp_path / "ck.safetensors"
        download.value.save_as(saved)
        assert download.value.suggested_filename == f"{ck_id}.safetensors"
        assert saved.read_bytes() == original

        # Upload the same file back: a new checkpoint, listed as an upload.
        page.set_input_files("#ck-upload-file", str(saved))
        page.click("#ck-upload")
        page.wait_for_selector("#ck-upload-status[data-checkpoint-id]")
        uploaded = page.get_attribute("#ck-upload-status", "data-checkpoint-id")
        assert client.get(f"/v1/checkpoints/{uploaded}").json()["source"] == "upload"
        uploaded_row = page.locator(f"#checkpoints-table tr[data-checkpoint-id={uploaded}]")
        uploaded_row.wait_for()

        # Delete the upload again (after the confirm dialog).
        page.once("dialog", lambda d: d.accept())
        uploaded_row.locator("button[data-action=delete]").click()
        uploaded_row.wait_for(state="detached")
        assert client.get(f"/v1/checkpoints/{uploaded}").status_code == 404

        # Sample: N curves over the bounds and the histogram of their fitted a.
        row.locator("a.sample").click()
        page.wait_for_selector("#view[data-drawn='200']")
        curves = curves_drawn(page, "#ck-figure")
        assert len(curves) == 200
        assert in_band_share(curves) >= 0.9
        counts = page.eval_on_selector_all(
            "#ck-hist rect.bar", "bars => bars.map(b => Number(b.dataset.count))"
        )
        assert sum(counts) == 200 and max(counts) > 0
        assert page.locator("#ck-hist path.uniform").count() == 1
        assert 1.2 < float(page.get_attribute("#ck-hist", "data-mean") or 0) < 1.8
        page.fill("#s-n", "50")
        page.fill("#s-seed", "3")
        page.click("#s-draw")
        page.wait_for_selector("#view[data-drawn='50']")
        assert page.get_attribute("#ck-hist", "data-n") == "50"
        screenshot(page, "dashboard-checkpoint")


def test_sweep_page_compares_members(open_page: Any, browser_server: Server) -> None:
    with browser_server.client() as client:
        body = {
            "name": "browser-sweep",
            "preset": "fast",
            "config": {"steps": 300, "log_every": 20},
            "vary": {"lr_g": [0.001, 0.0025]},
        }
        r = client.post("/v1/sweeps", json=body)
        assert r.status_code == 202, r.text
        sweep_id = r.json()["id"]
        page = open_page(f"{browser_server.url}/#/sweeps")
        page.locator(f"#sweeps-table tr[data-sweep-id={sweep_id}] a").click()
        page.wait_for_selector("#view[data-state=succeeded]", timeout=30_000)
        assert page.locator("#sweep-members tbody tr").count() == 2
        assert page.locator("#sweep-chart circle.member").count() == 2
        assert page.locator("#sweep-chart circle.member.best").count() == 1
        assert page.locator("#sweep-members tr[data-best=true]").count() == 1
        page.wait_for_selector("#sweep-best-figure[data-curves='8']")
        best = client.get(f"/v1/sweeps/{sweep_id}").json()["best"]
        assert page.get_attribute("#sweep-best-figure", "data-job-id") == best["job_id"]


def test_stream_reconnects_after_a_drop_with_last_event_id(
    open_page: Any, browser_server: Server
) -> None:
    """The page's first history page and first stream are replayed from a finished job's rows
    as if it were still running, and that stream ends early (a dropped connection): the page
    connects again with Last-Event-ID and gets the rest from the server, each row once."""
    with browser_server.client() as client:
        job = finished_job(client, steps=400)
        rows = client.get(f"/v1/jobs/{job['id']}/metrics").json()["items"]
    assert len(rows) == 20
    running = {**job, "state": "running", "finished_at": None}
    page = open_page(browser_server.url)
    page.route(
        "**/v1/jobs/*/metrics?*",
        lambda route: route.fulfill(json={"items": rows[:5]}),
    )
    seen: list[dict[str, str]] = []

    def events(route: Any) -> None:
        seen.append(route.request.headers)
        if len(seen) > 1:
            route.continue_()
            return
        frames = [f"event: state\ndata: {json.dumps(running)}\n\n"]
        frames += [
            f"id: {r['step']}\nevent: metrics\ndata: {json.dumps({**r, 'state': 'running'})}\n\n"
            for r in rows[4:10]
        ]
        route.fulfill(status=200, content_type="text/event-stream", body="".join(frames))

    page.route("**/v1/jobs/*/events?*", events)
    page.goto(f"{browser_server.url}/#/jobs/{job['id']}")
    page.wait_for_selector("#view[data-stream=ended]", state="attached")
    assert len(seen) == 2
    assert "last-event-id" not in seen[0]
    assert seen[1]["last-event-id"] == str(rows[9]["step"])
    assert points(page) == 20
    assert page.get_attribute("#view", "data-state") == "succeeded"
    page.wait_for_function("() => document.querySelector('#job-figure').dataset.step == 400")


def test_final_job_without_curves_draws_from_its_checkpoint(
    open_page: Any, browser_server: Server
) -> None:
    """Rows logged before metrics carried curves: the stream (replayed without them) gives the
    figure nothing, so the page samples 8 curves from the job's latest checkpoint."""
    with browser_server.client() as client:
        job = finished_job(client, steps=300)
        rows = client.get(f"/v1/jobs/{job['id']}/metrics").json()["items"]
    frames = f"event: state\ndata: {json.dumps(job)}\n\n"
    frames += "".join(
        f"id: {r['step']}\nevent: metrics\ndata: {json.dumps({**r, 'state': 'succeeded'})}\n\n"
        for r in rows[-1:]
    )
    frames += f"event: state\ndata: {json.dumps(job)}\n\n"
    page = open_page(browser_server.url)
    page.route(
        "**/v1/jobs/*/events?*",
        lambda route: route.fulfill(content_type="text/event-stream", body=frames),
    )
    page.goto(f"{browser_server.url}/#/jobs/{job['id']}")
    page.wait_for_selector("#job-figure[data-source=samples][data-curves='8']", state="attached")
    assert len(curves_drawn(page, "#job-figure")) == 8
    assert points(page) == len(rows)


def test_history_pages_of_ten_thousand_rows(open_page: Any, browser_server: Server) -> None:
    """A 10 500-row history comes in two pages (limit 10 000, then since_step = the last step),
    both drawn, and the stream opens at the last step - 1 (its row comes again, for its
    curves). The rows are made up, served through page.route."""
    with browser_server.client() as client:
        job = finished_job(client, steps=100)
    job = {**job, "step": 10_500, "steps": 10_500}
    asked: list[str] = []

    def row(step: int) -> dict[str, Any]:
        return {"step": step, "d_loss": 1.38, "g_loss": 0.69, "d_accuracy": 0.5,
                "d_score": -1.38, "in_band": 0.98, "resid": 0.01, "w1_a": 0.01}  # fmt: skip

    def metrics(route: Any) -> None:
        since = int(route.request.url.split("since_step=")[1].split("&")[0])
        asked.append(route.request.url.split("?")[1])
        last = min(since + 10_000, 10_500)
        route.fulfill(json={"items": [row(s) for s in range(since + 1, last + 1)]})

    def events(route: Any) -> None:
        asked.append(route.request.url.split("?")[1])
        curves = [[(1.5 + k / 10) * (x * x + 1) - 1 for x in (-1 + i / 7 for i in range(15))]
                  for k in range(4)]  # fmt: skip
        last = {**row(10_500), "state": "succeeded", "progress": 1.0, "curves": curves}
        route.fulfill(
            content_type="text/event-stream",
            body=f"event: state\ndata: {json.dumps(job)}\n\n"
            f"id: 10500\nevent: metrics\ndata: {json.dumps(last)}\n\n",
        )

    page = open_page(browser_server.url)
    page.route("**/v1/jobs/*/metrics?*", metrics)
    page.route("**/v1/jobs/*/events?*", events)
    started = time.monotonic()
    page.goto(f"{browser_server.url}/#/jobs/{job['id']}")
    page.wait_for_selector("#view[data-stream=ended]", state="attached")
    page.wait_for_function("() => document.querySelector('#chart-d').dataset.points == 10500")
    elapsed = time.monotonic() - started
    assert asked == [
        "since_step=0&limit=10000",
        "since_step=10000&limit=10000",
        "since_step=10499",
    ]
    assert page.get_attribute("#job-figure", "data-step") == "10500"
    assert in_band_share(curves_drawn(page, "#job-figure")) == 1.0
    assert canvas_ink(page, "#chart-quality") > 500
    assert elapsed < 10, f"10 500 rows took {elapsed:.1f} s to draw"


def uploaded_checkpoint(client: httpx.Client) -> str:
    """A checkpoint of a short run trained in this process, uploaded: no job queued."""
    r = client.post(
        "/v1/checkpoints",
        content=tiny_checkpoint_bytes(),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_a_refused_sample_is_written_on_the_figures(open_page: Any, browser_server: Server) -> None:
    """Sampling a generator whose curves are not finite answers 422 non_finite_output: the
    checkpoint page writes the server's message on both figures, and throws nothing. The 422
    is the error contract's (service/api/errors.py), served through page.route."""
    with browser_server.client() as client:
        ck_id = uploaded_checkpoint(client)
    message = "the generator's curves are not finite (inf at 3 of 15 points): sample refused"
    refusal = {"error": "non_finite_output", "message": message, "field": None}
    page = open_page(browser_server.url)
    guard = open_page.guard(page)
    guard.expect_console_error(failed_fetch(422, f"/v1/checkpoints/{ck_id}/samples"))
    page.route("**/v1/checkpoints/*/samples", lambda route: route.fulfill(status=422, json=refusal))
    page.goto(f"{browser_server.url}/#/checkpoints/{ck_id}")
    page.wait_for_selector("#ck-hist[data-error]", state="attached")
    for figure in ("#ck-figure", "#ck-hist"):
        assert page.get_attribute(figure, "data-error") == message
        lines = page.locator(f"{figure} text.message tspan").all_text_contents()
        assert " ".join(lines) == message and len(lines) == 2, lines  # wrapped to fit
        assert page.locator(f"{figure} path.curve, {figure} rect.bar").count() == 0
    assert page.get_attribute("#view", "data-drawn") is None
    assert page.get_attribute("#notice", "data-kind") == "error"
    assert page.text_content("#notice") == message


def test_values_that_are_not_finite_are_never_drawn(open_page: Any, browser_server: Server) -> None:
    """A sample whose curves hold nulls (JSON's NaN and infinities), as an older server could
    answer: each curve's line breaks around them, the histogram counts only curves whose fit
    is finite, and nothing throws. The nulls are put into a real sample through page.route."""
    with browser_server.client() as client:
        ck_id = uploaded_checkpoint(client)
    holes = {(0, 0), (0, 7), (3, 14), (5, 2), (5, 3)}  # (curve, point)
    page = open_page(browser_server.url)

    def with_nulls(route: Any) -> None:
        sample = route.fetch().json()
        for i, j in holes:
            sample["curves"][i][j] = None
        route.fulfill(json=sample)

    page.route("**/v1/checkpoints/*/samples", with_nulls)
    page.goto(f"{browser_server.url}/#/checkpoints/{ck_id}")
    page.wait_for_selector("#view[data-drawn='200']", state="attached")
    assert page.get_attribute("#ck-figure", "data-skipped") == str(len(holes))
    assert page.get_attribute("#ck-figure", "data-error") is None
    paths = page.eval_on_selector_all(
        "#ck-figure path.curve", "ps => ps.map(p => p.getAttribute('d'))"
    )
    assert len(paths) == 200
    assert not [d for d in paths if "NaN" in d or "Infinity" in d]
    # A gap starts the line again: curve 0 loses its first point, and 7 splits it in two.
    assert paths[0].count("M") == 2 and paths[3].count("M") == 1 and paths[5].count("M") == 2
    assert page.get_attribute("#ck-hist", "data-n") == str(200 - 3)  # curves 0, 3, 5: no fit


def test_a_dropped_stream_reconnects_with_last_event_id(
    open_page: Any, browser_server: Server
) -> None:
    """A server drops a reader that fell behind with a final `dropped` frame. The page takes it
    as a cut stream even while the connection stays open: it reconnects with Last-Event-ID and
    gets the rest from the server, each row once. The first stream (rows 5 to 10 of a finished
    job replayed as running, then `dropped`, then nothing, never closed) is made in the page by
    wrapping fetch, since a route can only answer a whole body."""
    with browser_server.client() as client:
        job = finished_job(client, steps=400)
        rows = client.get(f"/v1/jobs/{job['id']}/metrics").json()["items"]
    assert len(rows) == 20
    running = {**job, "state": "running", "finished_at": None}
    frames = f"event: state\ndata: {json.dumps(running)}\n\n"
    frames += "".join(
        f"id: {r['step']}\nevent: metrics\ndata: {json.dumps({**r, 'state': 'running'})}\n\n"
        for r in rows[4:10]
    )
    dropped = {"reason": "the reader fell behind", "last_event_id": rows[9]["step"]}
    frames += f"event: dropped\ndata: {json.dumps(dropped)}\n\n"
    page = open_page(browser_server.url)
    page.route("**/v1/jobs/*/metrics?*", lambda route: route.fulfill(json={"items": rows[:5]}))
    page.evaluate(
        """frames => {
            const real = window.fetch;
            window.eventCalls = [];
            window.fetch = (input, init) => {
                if (!String(input).includes('/events?')) return real(input, init);
                window.eventCalls.push(new Headers(init?.headers).get('Last-Event-ID'));
                if (window.eventCalls.length > 1) return real(input, init);
                const body = new ReadableStream({
                    start(c) { c.enqueue(new TextEncoder().encode(frames)); },  // never closed
                });
                return Promise.resolve(new Response(body, {
                    headers: { 'Content-Type': 'text/event-stream' } }));
            };
        }""",
        frames,
    )
    page.goto(f"{browser_server.url}/#/jobs/{job['id']}")  # same document: fetch stays wrapped
    page.wait_for_selector("#view[data-stream=ended]", state="attached")
    assert page.evaluate("window.eventCalls") == [None, str(rows[9]["step"])]
    assert points(page) == 20
    assert page.get_attribute("#view", "data-state") == "succeeded"
    page.wait_for_function("() => document.querySelector('#job-figure').dataset.step == 400")
