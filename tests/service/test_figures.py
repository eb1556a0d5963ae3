"""Figures: GET /v1/checkpoints/{id}/figure.{png,svg} and /v1/jobs/{id}/figure.{png,svg}.

The drawing itself is checked in-process (service.core.figures.render): a valid PNG of the size
asked for, a valid SVG whose curve lines lie between the two bound lines at every x. The
routes run on a real server: a checkpoint whose generator draws one of the artist's curves
comes back drawn inside the bounds; a job's figure carries its latest D accuracy and score.
"""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import torch
from PIL import Image

from gan_engine import Checkpoint, x_grid
from service.core.figures import HIGH_ID, LOW_ID, FigureText, curve_id, render
from tests.conftest import InProcessApp, in_process_app
from tests.helpers import tiny_checkpoint, wait_for_state, wait_until

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
OCTET = {"content-type": "application/octet-stream"}
FINAL = {"succeeded", "failed", "cancelled"}
MAX_PIXELS = 1_000_000
# A figure's n has its own bound (64): a server that samples at most 2 curves draws 4.


@pytest.fixture(scope="module")
def module_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessApp]:
    """The app in this process (figures are drawn in its figure pool's worker process; no
    stream is read), with one worker, at most 2 samples a request and 1 MP a figure."""
    data_dir = tmp_path_factory.mktemp("figures-app") / "data"
    with in_process_app(
        data_dir, max_concurrent_jobs=1, max_samples=2, max_figure_pixels=MAX_PIXELS
    ) as app:
        yield app


X = x_grid(15).numpy()


def artist(a: float) -> np.ndarray:
    return (a * X * X + (a - 1)).astype(np.float32)


def svg_lines(svg: bytes) -> dict[str, list[tuple[float, float]]]:
    """Each element with an id that holds a line path: its points, in SVG coordinates."""
    root = ET.fromstring(svg)  # raises on anything but well-formed XML
    lines: dict[str, list[tuple[float, float]]] = {}
    for g in root.iter("{http://www.w3.org/2000/svg}g"):
        gid = g.get("id", "")
        if not (gid.startswith("curve-") or gid.startswith("bound-")):
            continue
        assert gid not in lines, f"id {gid} twice"
        path = g.find("{http://www.w3.org/2000/svg}path")
        assert path is not None, gid
        nums = [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", path.get("d", ""))]
        lines[gid] = list(zip(nums[::2], nums[1::2], strict=True))
    return lines


def outside_bounds(svg: bytes, n: int) -> list[str]:
    """Which of the n curves leave the band between the bound lines (at any point)."""
    lines = svg_lines(svg)
    low, high = lines[LOW_ID], lines[HIGH_ID]
    assert len(low) == len(high) == len(X)
    out = []
    for i in range(n):
        curve = lines[curve_id(i)]
        assert len(curve) == len(X), curve
        for (cx, cy), (lx, ly), (hx, hy) in zip(curve, low, high, strict=True):
            assert cx == lx == hx  # the same x grid for every line
            # SVG's y grows downwards: between means between, whichever is on top.
            if not min(ly, hy) < cy < max(ly, hy):
                out.append(curve_id(i))
                break
    return out


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_SIGNATURE
    image = Image.open(io.BytesIO(data))
    image.load()  # decodes every pixel: a truncated or corrupt image raises here
    assert image.format == "PNG"
    return image.size


# ----------------------------------------------------------------------------- in-process
def test_png_is_a_valid_image_of_the_size_asked_for() -> None:
    curves = np.stack([artist(1.2), artist(1.7)])
    for size in [(640, 480), (333, 257), (1200, 300)]:
        data = render(X, curves, FigureText("t", 0.5, -1.38), "png", *size)
        assert png_size(data) == size


def test_svg_draws_each_curve_between_the_bounds() -> None:
    curves = np.stack([artist(a) for a in (1.05, 1.5, 1.95)])
    svg = render(X, curves, FigureText("t", 0.51, -1.39), "svg")
    assert outside_bounds(svg, 3) == []
    text = "".join(ET.fromstring(svg).itertext())
    assert "D accuracy = 0.51" in text and "D score = -1.39" in text


def test_svg_shows_a_curve_that_leaves_the_bounds() -> None:
    """The check above can fail: a curve above 2x^2+1, and one below x^2, are caught."""
    curves = np.stack([artist(1.5), artist(2.3), artist(0.8)])
    svg = render(X, curves, FigureText("t"), "svg")
    assert outside_bounds(svg, 3) == [curve_id(1), curve_id(2)]


# ----------------------------------------------------------------------------- real server
@pytest.fixture(scope="module")
def artist_ck(module_server: InProcessApp) -> str:
    """A checkpoint whose generator draws y = 1.5 x^2 + 0.5, one of the artist's curves,
    whatever the latent: its output layer is that constant."""
    ck = tiny_checkpoint(seed=1, steps=1, log_every=1)
    tensors = dict(ck.tensors)
    tensors["g.out.weight"] = torch.zeros_like(tensors["g.out.weight"])
    tensors["g.out.bias"] = torch.from_numpy(artist(1.5))
    data = Checkpoint(ck.config, ck.step, tensors, ck.metrics).to_bytes()
    with module_server.client() as c:
        r = c.post("/v1/checkpoints", content=data, headers=OCTET)
        assert r.status_code == 201, r.text
        return r.json()["id"]


def test_checkpoint_figures_over_http(mc: httpx.Client, artist_ck: str) -> None:
    r = mc.get(f"/v1/checkpoints/{artist_ck}/figure.png", params={"width": 500, "height": 300})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    assert png_size(r.content) == (500, 300)

    r = mc.get(f"/v1/checkpoints/{artist_ck}/figure.svg", params={"n": 4, "seed": 2})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("image/svg+xml")
    assert r.headers["x-curvegan-seed"] == "2"
    assert sorted(k for k in svg_lines(r.content) if k.startswith("curve-")) == [
        curve_id(i) for i in range(4)
    ]
    assert outside_bounds(r.content, 4) == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("n=0", "n"),
        ("n=65", "n"),
        ("seed=-1", "seed"),
        ("width=10", "width"),
        ("height=4001", "height"),
        ("width=1001&height=1000", "width"),  # over the pixel cap
    ],
)
def test_figure_bounds_are_422_naming_the_field(
    mc: httpx.Client, artist_ck: str, query: str, field: str
) -> None:
    r = mc.get(f"/v1/checkpoints/{artist_ck}/figure.png?{query}")
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["field"] == field and body["message"], body


def test_the_pixel_cap_is_named_and_a_figure_within_it_is_drawn(
    mc: httpx.Client, artist_ck: str
) -> None:
    r = mc.get(f"/v1/checkpoints/{artist_ck}/figure.png?width=2000&height=501")
    assert r.status_code == 422, r.text
    assert "CURVEGAN_MAX_FIGURE_PIXELS" in r.json()["message"] and "1000000" in r.text
    r = mc.get(f"/v1/checkpoints/{artist_ck}/figure.png?width=4000&height=250")
    assert r.status_code == 200, r.text
    assert Image.open(io.BytesIO(r.content)).size == (4000, 250)


def test_unknown_figure_format_and_checkpoint_are_errors(mc: httpx.Client, artist_ck: str) -> None:
    r = mc.get(f"/v1/checkpoints/{artist_ck}/figure.gif")
    assert r.status_code in (404, 422), r.text
    assert set(r.json()) == {"error", "message", "field"}
    r = mc.get("/v1/checkpoints/ck_nosuch/figure.png")
    assert r.status_code == 404 and r.json()["error"] == "not_found", r.text


def test_job_figure_needs_a_checkpoint_then_shows_d_metrics(mc: httpx.Client) -> None:
    long_cfg = {"seed": 5, "steps": 10_000_000, "log_every": 20, "checkpoint_every": 0}
    first = mc.post("/v1/jobs", json={"config": long_cfg})
    second = mc.post("/v1/jobs", json={"config": {"seed": 6, "steps": 50}})
    assert first.status_code == second.status_code == 202, (first.text, second.text)
    first_id, second_id = first.json()["id"], second.json()["id"]
    wait_for_state(mc, first_id, {"running"}, timeout=30)
    # The one worker is busy: the second job is queued, without a checkpoint.
    r = mc.get(f"/v1/jobs/{second_id}/figure.png")
    assert r.status_code == 409, r.text
    assert r.json()["error"] == "conflict" and "no checkpoint" in r.json()["message"]
    assert mc.get("/v1/jobs/job_nosuch/figure.svg").status_code == 404

    assert mc.post(f"/v1/jobs/{second_id}/cancel").status_code == 202
    wait_until(
        lambda: mc.get(f"/v1/jobs/{first_id}").json()["metrics"],  # its first logged step
        60,
        "the running job's first metrics",
        interval=0.1,
    )
    assert mc.post(f"/v1/jobs/{first_id}/cancel").status_code == 202
    job = wait_for_state(mc, first_id, FINAL, timeout=30)
    assert job["latest_checkpoint"] and job["metrics"], job
    r = mc.get(f"/v1/jobs/{first_id}/figure.svg", params={"n": 2, "seed": 1})
    assert r.status_code == 200, r.text
    assert r.headers["x-curvegan-checkpoint"] == job["latest_checkpoint"]
    text = "".join(ET.fromstring(r.content).itertext())
    assert f"D accuracy = {job['metrics']['d_accuracy']:.2f}" in text, text
    assert f"D score = {job['metrics']['d_score']:.2f}" in text, text
