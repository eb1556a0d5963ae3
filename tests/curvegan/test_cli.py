"""The ``curvegan`` command line, run as a real subprocess (``python -m curvegan``, and the
installed console script) against the real service on a free port: what it prints on stdout
and stderr, the files it writes, and its exit codes (0 ok, 1 job failed or request refused,
2 usage error, 3 server unreachable)."""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import io
import json
import os
import pty
import re
import struct
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.conftest import ROOT, Server, free_port, started_server

CLI = [sys.executable, "-m", "curvegan"]
CONSOLE_SCRIPT = Path(sys.executable).parent / "curvegan"
JOB_ID = re.compile(r"^job_[A-Za-z0-9]+$")
CK_ID = re.compile(r"^ck_[A-Za-z0-9]+$")
LONG = ["--steps", "10000000", "--set", "log_every=100"]  # never runs to its end

Run = subprocess.CompletedProcess[str]


def run_cli(
    *args: str,
    url: str,
    env: dict[str, str] | None = None,
    timeout: float = 60.0,
    cmd: Sequence[str] = CLI,
) -> Run:
    """Runs the command line; CURVEGAN_URL is ``url`` and no API key comes from this shell."""
    full_env = {k: v for k, v in os.environ.items() if k != "CURVEGAN_API_KEY"}
    full_env.update({"CURVEGAN_URL": url, **(env or {})})
    return subprocess.run(
        [*cmd, *args],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_many(
    calls: Sequence[tuple[Sequence[str], dict[str, object]]], timeout: float = 60.0
) -> list[tuple[Run, float]]:
    """Runs independent commands at once (each ``(args, {"url", "env", "cmd"})``); returns
    each result, in order, with its seconds to finish. One still running after ``timeout``
    seconds is killed (exit -9)."""
    t0 = time.monotonic()
    procs = []
    for args, kw in calls:
        env = {k: v for k, v in os.environ.items() if k != "CURVEGAN_API_KEY"}
        env["CURVEGAN_URL"] = str(kw["url"])
        env.update(kw.get("env", {}))  # type: ignore[arg-type]
        procs.append(
            subprocess.Popen(
                [*kw.get("cmd", CLI), *args],  # type: ignore[misc]
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    results = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=max(0.1, t0 + timeout - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        elapsed = time.monotonic() - t0
        results.append((subprocess.CompletedProcess(proc.args, proc.returncode, out, err), elapsed))
    return results


def show(r: Run) -> str:
    return f"exit {r.returncode}\n--- stdout\n{r.stdout}\n--- stderr\n{r.stderr}"


def ok(r: Run) -> Run:
    assert r.returncode == 0, show(r)
    assert "Traceback" not in r.stderr, show(r)
    return r


def assert_refused(cases: Sequence[tuple[Sequence[str], str, int]], url: str) -> None:
    """Runs each ``(args, message, code)`` at once: each must exit ``code`` with ``message`` on
    stderr, nothing on stdout and no traceback."""
    results = [r for r, _ in run_many([(args, {"url": url}) for args, _, _ in cases])]
    failures = [
        f"{' '.join(args)}: wanted exit {code} and {message!r}\n{show(r)}"
        for (args, message, code), r in zip(cases, results, strict=True)
        if r.returncode != code
        or message not in r.stderr
        or r.stdout != ""
        or "Traceback" in r.stderr
    ]
    assert not failures, "\n\n".join(failures)


def table(text: str) -> tuple[list[str], list[list[str]]]:
    """A table the CLI printed: its header cells and each row's cells."""
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[0].split(), [line.split() for line in lines[1:]]


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def cli_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One real service for the module (the per-test ``server`` fixture costs a start each)."""
    with started_server(tmp_path_factory, "curvegan-cli") as server:
        yield server


@pytest.fixture(scope="module")
def cli(cli_server: Server) -> Callable[..., Run]:
    """``cli("jobs", "list")`` runs the command against the module's server."""

    def call(*args: str, **kw: object) -> Run:
        return run_cli(*args, url=cli_server.url, **kw)  # type: ignore[arg-type]

    return call


@dataclasses.dataclass(frozen=True)
class Trained:
    run: Run  # the `train --wait` command
    job_id: str
    checkpoint: str
    job: dict


@pytest.fixture(scope="module")
def trained(cli: Callable[..., Run]) -> Trained:
    r = ok(cli("train", "--steps", "300", "--set", "log_every=50", "--seed", "7", "--wait"))
    job_id = r.stdout.splitlines()[0]
    job = json.loads(ok(cli("jobs", "show", job_id)).stdout)
    return Trained(run=r, job_id=job_id, checkpoint=job["latest_checkpoint"], job=job)


@pytest.fixture(scope="module")
def sample1(cli: Callable[..., Run], trained: Trained) -> Run:
    """``sample CK -n 3 --seed 1`` as JSON: what the other formats must hold."""
    return ok(cli("sample", trained.checkpoint, "-n", "3", "--seed", "1"))


# ----------------------------------------------------------------------------- train / jobs
def test_train_wait_prints_the_id_then_progress_and_the_final_state(trained: Trained) -> None:
    r = trained.run
    assert JOB_ID.match(trained.job_id), show(r)
    assert r.stdout == f"{trained.job_id}\n", "stdout is the job id alone (scriptable)"
    err = r.stderr.splitlines()
    progress = [line for line in err if "step" in line and "%" in line]
    # not a terminal: a line every 10% of the way; 300 steps logged every 50 -> steps 50..300
    assert [re.search(r"step (\d+)", line)[1] for line in progress] == [  # type: ignore[index]
        "50",
        "100",
        "150",
        "200",
        "250",
        "300",
    ], show(r)
    assert "100.0%" in progress[-1] and "d_loss" in progress[-1] and "w1_a" in progress[-1]
    assert f"{trained.job_id}: succeeded" in err, show(r)
    summary = err[-1]
    assert summary.startswith(f"{trained.job_id} succeeded at step 300"), show(r)
    assert CK_ID.match(trained.checkpoint) and trained.checkpoint in summary, show(r)
    assert "\r" not in r.stderr  # no in-place bar when stderr is not a terminal


def test_train_with_a_preset_runs_its_recipe_with_overrides(cli: Callable[..., Run]) -> None:
    r = ok(cli("train", "--preset", "recommended", "--steps", "200", "--seed", "3", "--wait"))
    job = json.loads(ok(cli("jobs", "show", r.stdout.splitlines()[0])).stdout)
    assert job["state"] == "succeeded", job
    cfg = job["config"]
    assert (cfg["steps"], cfg["seed"]) == (200, 3)  # the flags win over the preset
    assert (cfg["latent"], cfg["g_layers"], cfg["d_layers"], cfg["d_hidden"]) == (
        "uniform",
        2,
        2,
        96,
    )


def test_jobs_list_shows_the_job_in_a_table_and_as_json(
    cli: Callable[..., Run], trained: Trained
) -> None:
    r = ok(cli("jobs", "list"))
    header, rows = table(r.stdout)
    assert header == ["ID", "NAME", "STATE", "STEP", "D_SCORE", "W1_A", "IN_BAND", "CREATED"]
    row = next(row for row in rows if row[0] == trained.job_id)
    assert row[2:4] == ["succeeded", "300/300"], show(r)
    assert re.fullmatch(r"\d+ of \d+\n", r.stderr), show(r)

    r = ok(cli("jobs", "list", "--json"))
    page = json.loads(r.stdout)
    assert page["total"] >= 1
    job = next(j for j in page["items"] if j["id"] == trained.job_id)
    assert (job["state"], job["step"], job["steps"]) == ("succeeded", 300, 300)

    page = json.loads(ok(cli("jobs", "list", "--state", "succeeded", "--json")).stdout)
    assert trained.job_id in [j["id"] for j in page["items"]]
    assert {j["state"] for j in page["items"]} == {"succeeded"}


def test_jobs_show_prints_the_job_as_json(cli: Callable[..., Run], trained: Trained) -> None:
    job = json.loads(ok(cli("jobs", "show", trained.job_id)).stdout)
    assert job["id"] == trained.job_id
    assert (job["state"], job["step"], job["steps"], job["progress"]) == (
        "succeeded",
        300,
        300,
        1.0,
    )
    assert job["config"]["steps"] == 300 and job["config"]["log_every"] == 50
    assert job["config"]["seed"] == 7
    assert job["latest_checkpoint"] == trained.checkpoint
    assert job["error"] is None


def test_jobs_metrics_prints_one_row_per_logged_step(
    cli: Callable[..., Run], trained: Trained
) -> None:
    header, rows = table(ok(cli("jobs", "metrics", trained.job_id)).stdout)
    assert header == [
        "STEP",
        "D_LOSS",
        "G_LOSS",
        "D_ACCURACY",
        "D_SCORE",
        "IN_BAND",
        "RESID",
        "W1_A",
    ]
    assert [row[0] for row in rows] == ["50", "100", "150", "200", "250", "300"]
    assert all(len(row) == len(header) for row in rows)
    for row in rows:
        [float(cell) for cell in row]  # every cell is a number


def test_checkpoints_list_for_a_job(cli: Callable[..., Run], trained: Trained) -> None:
    r = ok(cli("checkpoints", "list", "--job", trained.job_id))
    header, rows = table(r.stdout)
    assert header == ["ID", "JOB_ID", "STEP", "SOURCE", "W1_A", "SIZE", "CREATED"]
    assert [row[:4] for row in rows] == [[trained.checkpoint, trained.job_id, "300", "training"]]
    assert r.stderr == "1 of 1\n"

    page = json.loads(ok(cli("checkpoints", "list", "--job", trained.job_id, "--json")).stdout)
    assert page["total"] == 1 and page["items"][0]["id"] == trained.checkpoint


def test_checkpoint_download_then_upload_prints_a_new_id(
    cli: Callable[..., Run], trained: Trained, tmp_path: Path
) -> None:
    target = tmp_path / "model.safetensors"
    r = ok(cli("checkpoints", "download", trained.checkpoint, "-o", str(target)))
    assert r.stdout == f"{target}\n"
    info = json.loads(ok(cli("checkpoints", "show", trained.checkpoint)).stdout)
    assert target.stat().st_size == info["size_bytes"]
    assert hashlib.sha256(target.read_bytes()).hexdigest() == info["sha256"]

    r = ok(cli("checkpoints", "upload", str(target)))
    new_id = r.stdout.strip()
    assert CK_ID.match(new_id) and new_id != trained.checkpoint, show(r)
    uploaded = json.loads(ok(cli("checkpoints", "show", new_id)).stdout)
    assert (uploaded["source"], uploaded["step"], uploaded["job_id"]) == ("upload", 300, None)
    assert uploaded["sha256"] == info["sha256"]

    r = ok(cli("checkpoints", "delete", new_id))
    assert r.stderr == f"{new_id}: deleted\n"
    r = cli("checkpoints", "show", new_id)
    assert r.returncode == 1 and "error:" in r.stderr, show(r)


# ----------------------------------------------------------------------------- sample
def test_sample_json_has_n_curves_and_is_reproducible(
    cli: Callable[..., Run], trained: Trained, sample1: Run
) -> None:
    first = sample1
    out = json.loads(first.stdout)
    assert out["checkpoint_id"] == trained.checkpoint and out["seed"] == 1
    assert len(out["x"]) == 15 and out["x"][0] == -1.0 and out["x"][-1] == 1.0
    assert len(out["curves"]) == 3 and all(len(c) == 15 for c in out["curves"])
    assert first.stderr == "seed 1\n"
    again = ok(cli("sample", trained.checkpoint, "-n", "3", "--seed", "1"))
    assert again.stdout == first.stdout
    other = json.loads(ok(cli("sample", trained.checkpoint, "-n", "3", "--seed", "2")).stdout)
    assert other["curves"] != out["curves"]


def test_sample_csv_has_a_header_and_a_row_per_curve(
    cli: Callable[..., Run], trained: Trained, sample1: Run
) -> None:
    r = ok(cli("sample", trained.checkpoint, "-n", "3", "--seed", "1", "--format", "csv"))
    rows = list(csv.reader(io.StringIO(r.stdout)))
    js = json.loads(sample1.stdout)
    # The header is the x grid, exactly: a column per x, a row per curve.
    assert [float(v) for v in rows[0]] == js["x"]
    assert len(rows) == 4 and all(len(row) == 15 for row in rows[1:])
    assert [[float(v) for v in row] for row in rows[1:]] == js["curves"]


def test_sample_x_grid_is_the_servers_exactly(
    cli_server: Server, trained: Trained, sample1: Run
) -> None:
    """The CLI gets .npy and computes x itself; the server's JSON carries its x: one grid,
    bit for bit (x[7] was -4.47e-08 in the JSON and 0.0 in the client)."""
    r = httpx.post(
        f"{cli_server.url}/v1/checkpoints/{trained.checkpoint}/samples",
        json={"n": 1, "seed": 1},
        headers={"Accept": "application/json"},
    )
    assert r.status_code == 200, r.text
    served = r.json()["x"]
    assert json.loads(sample1.stdout)["x"] == served
    assert served[7] == 0.0 and served == [-v for v in reversed(served)]


def test_plot_writes_the_figure_its_suffix_names(
    cli: Callable[..., Run], trained: Trained, tmp_path: Path
) -> None:
    png = tmp_path / "ck.png"
    r = ok(cli("plot", trained.checkpoint, "-o", str(png), "-n", "4", "--width", "400"))
    assert r.stdout == f"{png}\n"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", png.read_bytes()[16:24]) == (400, 480)  # IHDR width, height
    svg = tmp_path / "job.svg"
    ok(cli("plot", trained.job_id, "-o", str(svg), "--seed", "3"))
    root = ET.fromstring(svg.read_bytes())
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    ids = {g.get("id") for g in root.iter("{http://www.w3.org/2000/svg}g")}
    assert {"curve-0", "curve-1", "curve-2", "bound-low", "bound-high"} <= ids
    assert "curve-3" not in ids
    bad = cli("plot", trained.checkpoint, "-o", str(tmp_path / "fig.gif"))
    assert bad.returncode == 2 and ".png or .svg" in bad.stderr, show(bad)
    assert not (tmp_path / "fig.gif").exists()
    missing = cli("plot", "ck_nosuch", "-o", str(tmp_path / "none.png"))
    assert missing.returncode == 1 and not (tmp_path / "none.png").exists(), show(missing)


def test_sample_npy_writes_a_float32_array(
    cli: Callable[..., Run], trained: Trained, sample1: Run, tmp_path: Path
) -> None:
    target = tmp_path / "f.npy"
    r = ok(
        cli(
            "sample",
            trained.checkpoint,
            "-n",
            "3",
            "--seed",
            "1",
            "--format",
            "npy",
            "-o",
            str(target),
        )
    )
    assert r.stdout == f"{target}\n"
    curves = np.load(target, allow_pickle=False)
    assert curves.shape == (3, 15) and curves.dtype == np.float32
    js = json.loads(sample1.stdout)
    np.testing.assert_array_equal(curves, np.asarray(js["curves"], dtype=np.float32))


def test_sample_from_a_job_uses_its_latest_checkpoint(
    cli: Callable[..., Run], trained: Trained
) -> None:
    out = json.loads(ok(cli("sample", "--job", trained.job_id, "-n", "2", "--seed", "5")).stdout)
    assert len(out["curves"]) == 2 and all(len(c) == 15 for c in out["curves"])
    direct = json.loads(ok(cli("sample", trained.checkpoint, "-n", "2", "--seed", "5")).stdout)
    assert out["curves"] == direct["curves"]
    unseeded = ok(cli("sample", "--job", trained.job_id, "-n", "2"))
    assert len(json.loads(unseeded.stdout)["curves"]) == 2
    assert re.fullmatch(r"seed \d+\n", unseeded.stderr), show(unseeded)  # the seed it drew


def test_sample_from_a_job_names_the_checkpoint_it_used(
    cli: Callable[..., Run], trained: Trained
) -> None:
    out = json.loads(ok(cli("sample", "--job", trained.job_id, "-n", "1", "--seed", "1")).stdout)
    assert out["checkpoint_id"] == trained.checkpoint


def test_sample_npy_writes_exactly_the_file_it_names(
    cli: Callable[..., Run], trained: Trained, tmp_path: Path
) -> None:
    target = tmp_path / "curves.bin"
    r = ok(cli("sample", trained.checkpoint, "-n", "2", "--format", "npy", "-o", str(target)))
    assert r.stdout == f"{target}\n"
    assert target.is_file(), sorted(p.name for p in tmp_path.iterdir())


def test_unwritable_output_is_a_clean_usage_error(
    cli: Callable[..., Run], trained: Trained, tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-dir" / "out.csv"
    r = cli("sample", trained.checkpoint, "-n", "2", "--format", "csv", "-o", str(missing))
    assert r.returncode == 2 and "Traceback" not in r.stderr, show(r)
    assert r.stderr.startswith("error:"), show(r)


# ----------------------------------------------------------------------------- cancel / fail
def test_cancel_then_wait_ends_cancelled_and_delete_removes_it(
    cli: Callable[..., Run], cli_server: Server
) -> None:
    job_id = ok(cli("train", *LONG)).stdout.strip()
    assert JOB_ID.match(job_id)
    try:
        with cli_server.client() as http:  # poll cheaply until it trains
            deadline = time.monotonic() + 30
            while http.get(f"/v1/jobs/{job_id}").json()["state"] != "running":
                assert time.monotonic() < deadline, "job never started"
                time.sleep(0.1)
        r = cli("jobs", "delete", job_id)
        assert r.returncode == 1 and r.stderr.startswith("error:"), show(r)  # still running

        r = ok(cli("jobs", "cancel", job_id))
        assert r.stderr.startswith(f"{job_id}: cancel requested"), show(r)
        r = ok(cli("jobs", "wait", job_id, timeout=30))
        job = json.loads(r.stdout)
        assert (job["id"], job["state"]) == (job_id, "cancelled")
        assert r.stderr.splitlines()[-1] == f"{job_id}: cancelled", show(r)
        page = json.loads(ok(cli("checkpoints", "list", "--job", job_id, "--json")).stdout)
        assert page["total"] >= 1  # cancelling keeps a final checkpoint

        r = cli("jobs", "cancel", job_id)  # already over: the server refuses
        assert r.returncode == 1 and "error:" in r.stderr, show(r)
    finally:
        with cli_server.client() as http:  # whatever happened, it stops training
            http.post(f"/v1/jobs/{job_id}/cancel")

    r = ok(cli("jobs", "delete", job_id))
    assert r.stderr == f"{job_id}: deleted\n"
    r = cli("jobs", "show", job_id)
    assert r.returncode == 1 and "no job" in r.stderr, show(r)


def test_a_diverging_job_makes_train_wait_exit_1(cli: Callable[..., Run], tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from gan_engine import TrainConfig, Trainer

    trainer = Trainer(TrainConfig(seed=1, steps=20, log_every=10))
    trainer.run()
    ckpt = trainer.checkpoint()
    # D's weights: a G this huge is refused at upload (its curves are not finite).
    blown = {k: v * 1e30 if k.startswith("d.") else v for k, v in ckpt.tensors.items()}
    path = tmp_path / "blown.safetensors"
    path.write_bytes(dataclasses.replace(ckpt, tensors=blown).to_bytes())
    bad = ok(cli("checkpoints", "upload", str(path))).stdout.strip()
    assert CK_ID.match(bad)

    r = cli("train", "--resume-from", bad, "--steps", "100", "--set", "log_every=10", "--wait")
    assert r.returncode == 1, show(r)
    job_id = r.stdout.splitlines()[0]
    assert JOB_ID.match(job_id), show(r)
    assert f"{job_id}: failed" in r.stderr.splitlines(), show(r)
    assert f"{job_id} failed at step" in r.stderr, show(r)
    assert "error: training diverged at step" in r.stderr, show(r)
    assert "Traceback" not in r.stderr

    r = cli("jobs", "wait", job_id)  # waiting on a failed job fails too
    assert r.returncode == 1, show(r)
    assert json.loads(r.stdout)["state"] == "failed"


# ----------------------------------------------------------------------------- exit codes
NO_JOB, NO_CK, NO_SWEEP = (
    f"error: no {kind} with id 'nope'\n" for kind in ("job", "checkpoint", "sweep")
)
REFUSED = [  # (args, what stderr says): the server said no -> exit 1
    (["jobs", "show", "nope"], NO_JOB),
    (["jobs", "metrics", "nope"], NO_JOB),
    (["jobs", "cancel", "nope"], NO_JOB),
    (["sample", "--job", "nope", "-n", "1"], NO_JOB),
    # a filter naming an unknown job or sweep is "not found" too, not an empty list
    (["checkpoints", "list", "--job", "nope"], NO_JOB),
    (["jobs", "list", "--sweep", "nope"], NO_SWEEP),
    (["checkpoints", "show", "nope"], NO_CK),
    (["checkpoints", "download", "nope"], NO_CK),
    (["sample", "nope", "-n", "1"], NO_CK),
    (["sweep", "show", "nope"], NO_SWEEP),
    # a file the server read and refused: a refused request, not a usage error
    (["checkpoints", "upload", "pyproject.toml"], "error: not a usable checkpoint: "),
]
USAGE = [  # (args, what stderr says): a usage error -> exit 2, nothing on stdout
    (["train", "--steps", "-5"], "steps"),  # refused by the server (422)
    (["sample"], "CHECKPOINT"),
    (["sample", "ck_x", "--job", "job_x", "-n", "1"], "one of them"),
    (["sample", "ck_x", "-n", "0"], "n must be >= 1"),
    (["sample", "ck_x", "-n", "1", "--format", "npy"], "-o"),
    (["sample", "ck_x", "--format", "xml"], "invalid choice"),
    (["bogus"], "invalid choice"),
    (["jobs"], "required"),
    (["jobs", "frobnicate"], "invalid choice"),
    (["jobs", "list", "--limit", "0"], "limit"),
    (["train", "--set", "bad"], "key=value"),
    (["train", "--preset", "bogus"], "preset: must be one of tutorial, recommended"),
    (["train", "--steps", "many"], "invalid int value"),
    (["checkpoints", "upload", "/no/such/file.safetensors"], "no checkpoint file"),
]


def test_refused_requests_exit_1_and_usage_errors_exit_2(
    cli_server: Server, trained: Trained
) -> None:
    # independent commands: run all at once to keep the test short
    cases = [(args, message, 1) for args, message in REFUSED]
    cases += [(args, message, 2) for args, message in USAGE]
    assert_refused(cases, cli_server.url)
    # nothing was created by the refused `train --steps -5`
    page = json.loads(ok(run_cli("jobs", "list", "--json", url=cli_server.url)).stdout)
    assert all(job["config"]["steps"] > 0 for job in page["items"])


def test_a_server_url_without_scheme_or_with_v1_is_a_usage_error_with_the_fix(
    cli_server: Server,
) -> None:
    # a real server listens there: without the check these were "unreachable" (3) and a
    # bare 404 (1)
    host_port = cli_server.url.split("://", 1)[1]
    calls = [
        (["--url", host_port, "jobs", "list"], {"url": cli_server.url}),
        (["jobs", "list"], {"url": f"{cli_server.url}/v1/"}),
    ]
    bare, v1 = (r for r, _ in run_many(calls))
    for r, fix in ((bare, f"http://{host_port}"), (v1, cli_server.url)):
        assert r.returncode == 2 and r.stdout == "", show(r)
        assert f"give {fix!r}" in r.stderr or f"give the server's root, {fix!r}" in r.stderr, show(
            r
        )
        assert "unreachable" not in r.stderr and "Traceback" not in r.stderr, show(r)


def test_an_unreachable_server_exits_3_after_retrying() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    t0 = time.monotonic()
    r = run_cli("jobs", "list", url=url)
    elapsed = time.monotonic() - t0
    assert r.returncode == 3, show(r)
    assert "server unreachable" in r.stderr and url in r.stderr, show(r)
    assert "Traceback" not in r.stderr
    assert 1.0 < elapsed < 20.0, f"retried for {elapsed:.1f}s"


def test_api_key_from_the_flag_or_the_environment(make_server: Callable[..., Server]) -> None:
    server = make_server(api_key="k")
    url = server.url
    none, wrong, flag, env, flag_wins, url_flag = (
        r
        for r, _ in run_many(
            [
                (["jobs", "list"], {"url": url}),
                (["--api-key", "wrong", "jobs", "list"], {"url": url}),
                (["--api-key", "k", "jobs", "list"], {"url": url}),
                (["jobs", "list"], {"url": url, "env": {"CURVEGAN_API_KEY": "k"}}),
                # the flag wins over the environment
                (
                    ["--api-key", "k", "jobs", "list"],
                    {"url": url, "env": {"CURVEGAN_API_KEY": "x"}},
                ),
                # and --url over CURVEGAN_URL
                (["--url", url, "--api-key", "k", "jobs", "list"], {"url": "http://127.0.0.1:1"}),
            ]
        )
    )
    for r in (none, wrong):
        assert r.returncode == 1 and "API key" in r.stderr and r.stdout == "", show(r)
    for r in (flag, env, flag_wins, url_flag):
        ok(r)
        assert table(r.stdout) == (
            ["ID", "NAME", "STATE", "STEP", "D_SCORE", "W1_A", "IN_BAND", "CREATED"],
            [],
        ), show(r)
        assert r.stderr == "0 of 0\n", show(r)


# ----------------------------------------------------------------------------- help
HELP_PATHS = [
    [],
    ["serve"],
    ["worker"],
    ["train"],
    ["jobs"],
    *[["jobs", a] for a in ("list", "show", "cancel", "delete", "wait", "metrics")],
    ["checkpoints"],
    *[["checkpoints", a] for a in ("list", "show", "download", "upload", "delete")],
    ["sample"],
    ["sweep"],
    *[["sweep", a] for a in ("create", "list", "show", "wait", "cancel", "delete")],
]


def test_help_works_for_every_command_and_action() -> None:
    # no server is needed (the URL is a closed port): all at once, to keep the test short
    calls = [([*path, "--help"], {"url": "http://127.0.0.1:1"}) for path in HELP_PATHS]
    results = [r for r, _ in run_many(calls)]
    for path, r in zip(HELP_PATHS, results, strict=True):
        assert r.returncode == 0, (path, show(r))
        assert r.stdout.startswith(" ".join(["usage: curvegan", *path])), (path, show(r))
        assert r.stderr == "", (path, show(r))
    top = results[0].stdout
    for word in ("serve", "worker", "train", "jobs", "checkpoints", "sample", "--url", "--api-key"):
        assert word in top
    assert "sweep" in top
    assert "Exit codes: 0 ok, 1 job failed or request refused, 2 usage error" in top


def test_every_option_has_help_and_the_top_help_shows_the_default_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from curvegan.cli import build_parser
    from curvegan.client import DEFAULT_URL

    monkeypatch.delenv("CURVEGAN_URL", raising=False)
    parser = build_parser()
    missing = []

    def walk(p: argparse.ArgumentParser, path: list[str]) -> None:
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    walk(child, [*path, name])
            elif not action.help:
                missing.append(" ".join([*path, *(action.option_strings or [action.dest])]))

    walk(parser, ["curvegan"])
    assert not missing, f"options without help text: {missing}"
    assert DEFAULT_URL in " ".join(parser.format_help().split())


def test_the_console_script_runs_the_same_command(cli_server: Server, trained: Trained) -> None:
    assert CONSOLE_SCRIPT.is_file(), CONSOLE_SCRIPT
    script = {"url": cli_server.url, "cmd": [str(CONSOLE_SCRIPT)]}
    (found, _), (missing, _) = run_many(
        [(["jobs", "show", trained.job_id], script), (["jobs", "show", "nope"], script)]
    )
    assert json.loads(ok(found).stdout)["id"] == trained.job_id
    assert missing.returncode == 1, show(missing)  # the script passes main()'s exit code on


# ----------------------------------------------------------------------------- worker
@pytest.fixture
def no_curvegan_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker reads its settings from CURVEGAN_*: none leaks in from this shell."""
    for name in list(os.environ):
        if name.startswith("CURVEGAN_"):
            monkeypatch.delenv(name)


def test_worker_help_shows_its_options() -> None:
    r = ok(run_cli("worker", "--help", url="http://127.0.0.1:1"))
    for option in ("--node-name", "--concurrency", "--loglevel", "CURVEGAN_BROKER_URL"):
        assert option in r.stdout, show(r)


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        # Cluster mode not configured at all: the broker URL is what the worker lacks.
        ([], {}, "CURVEGAN_BROKER_URL"),
        ([], {"CURVEGAN_EXECUTOR": "celery", "CURVEGAN_BROKER_URL": ""}, "CURVEGAN_BROKER_URL"),
        (
            [],
            {"CURVEGAN_BROKER_URL": "memory://", "CURVEGAN_LEASE_SECONDS": "0"},
            "CURVEGAN_LEASE_SECONDS",
        ),
        (["--concurrency", "0"], {"CURVEGAN_BROKER_URL": "memory://"}, "--concurrency"),
    ],
)
@pytest.mark.usefixtures("no_curvegan_env")
def test_worker_without_a_usable_configuration_is_a_usage_error(
    args: list[str], env: dict[str, str], message: str
) -> None:
    r = run_cli("worker", *args, url="http://127.0.0.1:1", env=env, timeout=30)
    assert r.returncode == 2, show(r)
    assert message in r.stderr and "Traceback" not in r.stderr, show(r)
    # The settings are checked before Celery starts: it never printed its banner.
    assert "[config]" not in r.stdout, show(r)


@pytest.mark.usefixtures("no_curvegan_env")
def test_worker_starts_a_celery_node_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    from service.store import Store

    # The in-process memory transport: no broker server is needed to start and stop a node.
    db = f"sqlite:///{tmp_path / 'curvegan.db'}"
    store = Store(db)
    store.migrate()
    store.dispose()
    env = {
        **os.environ,
        "CURVEGAN_BROKER_URL": "memory://",
        "CURVEGAN_DATABASE_URL": db,
        "CURVEGAN_DATA_DIR": str(tmp_path),
        "CURVEGAN_QUEUE": "curvegan-test",
    }
    log = tmp_path / "worker.log"
    with log.open("w") as sink:
        proc = subprocess.Popen(
            [*CLI, "worker", "--node-name", "n1@testhost", "--concurrency", "1"],
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            deadline = time.monotonic() + 60
            while "n1@testhost ready." not in log.read_text():
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
            proc.terminate()  # what docker stop sends: Celery's warm shutdown
            code = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    text = log.read_text()
    assert code == 0, text
    assert "Traceback" not in text, text
    # The options reached Celery: its banner names the node, the pool size and the queue.
    assert "concurrency: 1 (prefork)" in text, text
    assert ".> curvegan-test " in text, text
    assert "curvegan.run_job" in text, text


# ----------------------------------------------------------------------------- terminal
def run_on_a_terminal(args: Sequence[str], url: str, timeout: float = 60.0) -> tuple[int, str, str]:
    """Runs the command with stderr on a pseudo-terminal; (exit code, stdout, terminal text)."""
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "CURVEGAN_API_KEY"}
    env["CURVEGAN_URL"] = url
    try:
        proc = subprocess.run(
            [*CLI, *args],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=slave,
            timeout=timeout,
            check=False,
        )
    finally:
        os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the terminal's other end is closed and drained
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    return proc.returncode, proc.stdout.decode(), b"".join(chunks).decode()


def test_terminal_progress_bar_has_no_stray_blank_lines(cli_server: Server) -> None:
    code, out, term = run_on_a_terminal(
        ["train", "--steps", "100", "--set", "log_every=50", "--wait"], cli_server.url
    )
    assert code == 0, term
    job_id = out.strip()
    assert "\r[" in term and "100.0%" in term  # the bar is redrawn in place
    lines = term.replace("\r\n", "\n").split("\n")
    # The job's first state line: queued or already running (a 100-step job may even be
    # claimed, trained and done between two of the stream's polls).
    assert lines[0] in {f"{job_id}: queued", f"{job_id}: running"}, repr(term)
    assert "" not in lines[:-1], repr(term)


# ----------------------------------------------------------------------------- timeouts
@pytest.fixture(scope="module")
def busy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str, str]]:
    """A server with one worker slot: a LONG job trains in it and a second job waits queued."""
    data_dir = tmp_path_factory.mktemp("curvegan-cli-busy") / "data"
    data_dir.mkdir()
    server = Server(data_dir=data_dir, env={"CURVEGAN_MAX_CONCURRENT_JOBS": "1"})
    server.start()
    ids: list[str] = []
    try:
        with server.client() as http:
            for config in ({"steps": 10_000_000, "log_every": 100}, {"steps": 100}):
                r = http.post("/v1/jobs", json={"config": config})
                assert r.is_success, r.text
                ids.append(r.json()["id"])
            running, queued = ids
            deadline = time.monotonic() + 30
            while http.get(f"/v1/jobs/{running}").json()["state"] != "running":
                assert time.monotonic() < deadline, "job never started"
                time.sleep(0.1)
            assert http.get(f"/v1/jobs/{queued}").json()["state"] == "queued"
        yield server, running, queued
    finally:
        with server.client() as http:
            for job_id in ids:
                http.post(f"/v1/jobs/{job_id}/cancel")
        server.stop()


@pytest.fixture(scope="module")
def waits(busy: tuple[Server, str, str]) -> dict[str, tuple[Run, float]]:
    """Three `wait`s with a 1 s timeout, run at once; any still waiting after 5 s is killed
    (exit -9). Each result comes with its seconds to return."""
    server, running, queued = busy
    calls = {
        "running": ["jobs", "wait", "--timeout", "1", running],
        "global": ["--timeout", "1", "jobs", "wait", running],
        "queued": ["jobs", "wait", "--timeout", "1", queued],
    }
    results = run_many([(args, {"url": server.url}) for args in calls.values()], timeout=5)
    return dict(zip(calls, results, strict=True))  # type: ignore[arg-type]


def test_wait_timeout_gives_up_on_a_running_job_with_exit_1(
    waits: dict[str, tuple[Run, float]], busy: tuple[Server, str, str]
) -> None:
    r, elapsed = waits["running"]
    assert r.returncode == 1, show(r)
    assert elapsed < 5.0
    assert f"job {busy[1]} still running after" in r.stderr, show(r)
    assert "Traceback" not in r.stderr


def test_wait_timeout_message_names_the_timeout_asked_for(
    waits: dict[str, tuple[Run, float]],
) -> None:
    r, _ = waits["running"]
    assert r.returncode == 1 and "still running after 1.0s" in r.stderr, show(r)


def test_global_timeout_applies_to_jobs_wait(waits: dict[str, tuple[Run, float]]) -> None:
    r, _ = waits["global"]
    assert r.returncode == 1 and "still running" in r.stderr, show(r)


def test_wait_timeout_gives_up_on_a_queued_job(
    waits: dict[str, tuple[Run, float]], busy: tuple[Server, str, str]
) -> None:
    r, _ = waits["queued"]
    assert r.returncode == 1 and f"job {busy[2]} still queued" in r.stderr, show(r)
