"""``python -m gan_engine`` as a subprocess: train (presets, --set, resume) and sample, with
the exit codes and messages a shell user sees."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gan_engine import Population, TrainConfig, load_checkpoint

ROOT = Path(__file__).resolve().parents[2]


def engine(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gan_engine", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def checkpoints(out: Path) -> list[Path]:
    return sorted(out.glob("run-*/step-*.safetensors"))


@pytest.fixture(scope="module")
def trained(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("engine-cli")
    r = engine("train", "--steps", "200", "--seed", "3", "--log-every", "100", "--out", out)
    return r, out


def test_train_prints_progress_and_writes_a_checkpoint(
    trained: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    r, out = trained
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("training 200 steps, seed 3"), r.stdout
    assert [line.split()[1] for line in lines if line.startswith("step")] == ["100/200", "200/200"]
    assert "d_score" in lines[1] and "w1_a" in lines[1] and "steps/s" in lines[1]
    (path,) = checkpoints(out)
    assert path.name == "step-00000200.safetensors" and f"latest checkpoint {path}" in lines[-1]
    ckpt = load_checkpoint(path)
    assert (ckpt.step, ckpt.config.seed, ckpt.config.steps) == (200, 3, 200)


def test_train_runs_the_engine_jobs_run_and_writes_its_checkpoint(
    trained: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    # A population of one, as a job trains: the same weights, Adam state, stream and metrics.
    (path,) = checkpoints(trained[1])
    pop = Population([TrainConfig(steps=200, seed=3, log_every=100)])
    pop.run()
    expected, got = pop.member_checkpoint(0), load_checkpoint(path)
    assert set(got.tensors) == set(expected.tensors) and got.metrics == expected.metrics
    for name, value in expected.tensors.items():
        assert torch.equal(got.tensors[name], value), name


def test_preset_and_set_choose_the_recipe_and_flags_win(tmp_path: Path) -> None:
    r = engine(
        "train", "--preset", "recommended", "--set", "batch_size=32", "--set", "steps=999",
        "--steps", "100", "--seed", "1", "--set", "loss=minimax", "--out", tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    cfg = load_checkpoint(checkpoints(tmp_path)[-1]).config
    assert (cfg.g_layers, cfg.d_hidden, cfg.latent) == (2, 96, "uniform")  # the preset's
    assert (cfg.batch_size, cfg.loss) == (32, "minimax")  # --set over the preset
    assert cfg.steps == 100  # --steps over --set


def test_resume_continues_and_refuses_recipe_changes(
    trained: tuple[subprocess.CompletedProcess[str], Path], tmp_path: Path
) -> None:
    start = checkpoints(trained[1])[-1]
    r = engine("train", "--resume", start, "--steps", "300", "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    ckpt = load_checkpoint(checkpoints(tmp_path)[-1])
    assert (ckpt.step, ckpt.config.seed) == (300, 3)
    for extra in (["--set", "hidden=7"], ["--preset", "recommended"]):
        r = engine("train", "--resume", start, "--steps", "400", *extra, "--out", tmp_path)
        assert r.returncode == 2 and "cannot change when resuming" in r.stderr, r.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "hidden=4096", "--set", "g_layers=2"], "hidden: the models would have"),
        (["--set", "lr_g=2"], "lr_g: must be in (0, 1], got 2"),
        (["--set", "stepz=5"], "stepz"),
        (["--set", "bad"], "takes key=value, got 'bad'"),
        (["--preset", "fastest"], "invalid choice: 'fastest'"),
    ],
)
def test_bad_train_arguments_exit_2_with_the_field(
    args: list[str], message: str, tmp_path: Path
) -> None:
    r = engine("train", "--steps", "10", *args, "--out", tmp_path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert message in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert checkpoints(tmp_path) == []


def test_sample_formats_agree_and_a_seed_repeats(
    trained: tuple[subprocess.CompletedProcess[str], Path], tmp_path: Path
) -> None:
    ckpt = checkpoints(trained[1])[-1]
    r = engine("sample", ckpt, "-n", "4", "--seed", "9")
    assert r.returncode == 0, r.stderr
    as_json = json.loads(r.stdout)
    assert as_json["seed"] == 9 and len(as_json["x"]) == 15
    curves = np.asarray(as_json["curves"], dtype=np.float32)
    assert curves.shape == (4, 15)
    assert engine("sample", ckpt, "-n", "4", "--seed", "9").stdout == r.stdout

    csv_text = engine("sample", ckpt, "-n", "4", "--seed", "9", "--format", "csv").stdout
    header, *rows = csv_text.splitlines()
    assert header == ",".join(f"y{i}" for i in range(15))
    np.testing.assert_array_equal(
        np.loadtxt(io.StringIO("\n".join(rows)), delimiter=",", dtype=np.float32), curves
    )

    target = tmp_path / "curves.bin"  # written exactly where asked, no .npy appended
    r = engine("sample", ckpt, "-n", "4", "--seed", "9", "--format", "npy", "-o", target)
    assert r.returncode == 0 and r.stdout == "", r.stderr
    np.testing.assert_array_equal(np.load(target, allow_pickle=False), curves)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-n", "0"], "-n must be at least 1"),
        (["--format", "npy"], "needs -o FILE"),
        (["-o", "/nonexistent-dir/x.json"], "cannot write /nonexistent-dir/x.json"),
    ],
)
def test_bad_sample_arguments_exit_2(
    trained: tuple[subprocess.CompletedProcess[str], Path], args: list[str], message: str
) -> None:
    r = engine("sample", checkpoints(trained[1])[-1], *args)
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_sample_refuses_a_file_that_is_not_a_checkpoint(tmp_path: Path) -> None:
    bogus = tmp_path / "x.safetensors"
    bogus.write_bytes(b"\x80\x04not a checkpoint")
    r = engine("sample", bogus, "-n", "1")
    assert r.returncode == 2 and r.stderr.startswith("error: ") and r.stdout == "", r.stderr
    r = engine("sample", tmp_path / "missing.safetensors", "-n", "1")
    assert r.returncode == 2 and "missing.safetensors" in r.stderr, r.stderr
