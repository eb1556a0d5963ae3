"""``curvegan sweep``: run as a real subprocess against the real service (create --wait with
its live line and leaderboard, list, show, wait, cancel, delete, the exit codes), plus the
--vary parser and the failed-member exit code in-process."""

from __future__ import annotations

import argparse
import io
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from curvegan import Sweep
from curvegan._cli_commands import _parse_vary, _sweep_result
from curvegan.cli import build_parser
from curvegan.errors import UsageError
from tests.conftest import Server
from tests.curvegan.test_cli import (
    Run,
    assert_refused,
    ok,
    run_cli,
    run_many,
    run_on_a_terminal,
    show,
    table,
)

SWEEP_ID = re.compile(r"^sweep_[A-Za-z0-9]+$")
BOARD = ["MEMBER", "LR_G", "SEED", "STATE", "W1_A", "IN_BAND", "RESID", "D_SCORE", "JOB_ID"]


@pytest.fixture(scope="module")
def cli(shared_server: Server) -> Callable[..., Run]:
    def call(*args: str, **kw: object) -> Run:
        return run_cli(*args, url=shared_server.url, **kw)  # type: ignore[arg-type]

    return call


@pytest.fixture(scope="module")
def grid(cli: Callable[..., Run]) -> tuple[Run, str]:
    """The 4 x 2 grid of the issue, created and followed to its end."""
    r = ok(
        cli(
            "sweep",
            "create",
            "--vary",
            "seed=0..3",
            "--vary",
            "lr_g=1e-4,2e-4",
            "--set",
            "steps=200",
            "--name",
            "cli-grid",
            "--wait",
        )
    )
    return r, r.stdout.splitlines()[0]


def test_create_wait_prints_the_id_then_an_8_row_leaderboard(grid: tuple[Run, str]) -> None:
    r, sweep_id = grid
    assert SWEEP_ID.match(sweep_id), show(r)
    header, rows = table(r.stdout.split("\n", 1)[1])
    assert header == BOARD, show(r)
    assert len(rows) == 8, show(r)
    assert sorted(int(row[0]) for row in rows) == list(range(8))
    assert {(row[1], row[2]) for row in rows} == {
        (lr, str(seed)) for lr in ("0.0001", "0.0002") for seed in range(4)
    }
    assert {row[3] for row in rows} == {"succeeded"}
    w1 = [float(row[4]) for row in rows]
    assert w1 == sorted(w1), "best first by w1_a"
    for row in rows:
        [float(cell) for cell in row[4:8]]  # every metric is there
        assert row[8].startswith("job_")


def test_create_wait_shows_a_live_line_and_a_summary(grid: tuple[Run, str]) -> None:
    r, sweep_id = grid
    err = r.stderr.splitlines()
    assert err[0] == f"{sweep_id}: 8 members queued", show(r)
    live = [line for line in err if " done " in line]
    assert live and "8/8 done  0 running" in live[-1], show(r)
    assert all(re.search(r"\d+/8 done  \d+ running  best", line) for line in live), show(r)
    best = table(r.stdout.split("\n", 1)[1])[1][0]
    summary = err[-1]
    assert summary.startswith(f"{sweep_id} (cli-grid) succeeded: 8 members (8 succeeded)")
    assert f"best: member {best[0]} ({best[8]}) w1_a {best[4]}" in summary, show(r)
    assert "\r" not in r.stderr  # no in-place line when stderr is not a terminal


def test_show_list_wait_and_member_jobs_of_a_finished_sweep(
    shared_server: Server, grid: tuple[Run, str]
) -> None:
    created, sweep_id = grid
    calls = [
        ["sweep", "show", sweep_id],
        ["sweep", "show", sweep_id, "--json"],
        ["sweep", "list"],
        ["sweep", "list", "--json", "--limit", "1000"],
        ["sweep", "wait", sweep_id],
        ["jobs", "list", "--sweep", sweep_id, "--json"],
    ]
    shown, as_json, listed, listed_json, waited, jobs = (
        ok(r) for r, _ in run_many([(args, {"url": shared_server.url}) for args in calls])
    )
    leaderboard = created.stdout.split("\n", 1)[1]
    assert shown.stdout == leaderboard and waited.stdout == leaderboard
    assert "succeeded: 8 members" in shown.stderr and "succeeded: 8 members" in waited.stderr

    sweep = Sweep.model_validate_json(as_json.stdout)
    assert sweep.id == sweep_id and sweep.member_count == 8 and sweep.state == "succeeded"
    assert sweep.config == {"steps": 200} and sweep.vary == {
        "lr_g": [1e-4, 2e-4],
        "seed": [0, 1, 2, 3],
    }

    header, rows = table(listed.stdout)
    assert header == ["ID", "NAME", "STATE", "MEMBERS", "DONE", "FAILED", "BEST_BY", "CREATED"]
    row = next(row for row in rows if row[0] == sweep_id)
    assert row[1:7] == ["cli-grid", "succeeded", "8", "8/8", "0", "w1_a"], show(listed)
    assert re.fullmatch(r"\d+ of \d+\n", listed.stderr), show(listed)
    page = json.loads(listed_json.stdout)
    assert sweep_id in [s["id"] for s in page["items"]]

    members = json.loads(jobs.stdout)
    assert members["total"] == 8
    assert {j["sweep_id"] for j in members["items"]} == {sweep_id}


@pytest.fixture
def long_sweep(cli: Callable[..., Run], shared_server: Server) -> Iterator[str]:
    """A sweep of three members that would train for minutes; cancelled whatever happens."""
    r = ok(cli("sweep", "create", "--vary", "seed=0..2", "--set", "steps=1000000"))
    sweep_id = r.stdout.strip()
    try:
        yield sweep_id
    finally:
        with httpx.Client(base_url=shared_server.url, timeout=10) as http:
            http.post(f"/v1/sweeps/{sweep_id}/cancel")


def test_cancel_a_running_sweep_then_wait_and_delete(
    cli: Callable[..., Run], long_sweep: str
) -> None:
    sweep_id = long_sweep
    assert SWEEP_ID.match(sweep_id)
    refused = cli("sweep", "delete", sweep_id)
    assert refused.returncode == 1 and "cancel it first" in refused.stderr, show(refused)
    timed_out = cli("sweep", "wait", "--timeout", "1", sweep_id)
    assert timed_out.returncode == 1, show(timed_out)
    assert re.search(rf"sweep {sweep_id} still (queued|running) after 1.0s", timed_out.stderr)

    r = ok(cli("sweep", "cancel", sweep_id))
    assert r.stderr.startswith(f"{sweep_id}: cancel requested"), show(r)
    r = ok(cli("sweep", "wait", sweep_id))
    header, rows = table(r.stdout)
    assert header == ["MEMBER", "SEED", "STATE", "W1_A", "IN_BAND", "RESID", "D_SCORE", "JOB_ID"]
    assert len(rows) == 3 and {row[2] for row in rows} == {"cancelled"}, show(r)
    assert "cancelled: 3 members (3 cancelled)" in r.stderr, show(r)

    again = cli("sweep", "cancel", sweep_id)
    assert again.returncode == 1 and "already cancelled" in again.stderr, show(again)
    r = ok(cli("sweep", "delete", sweep_id))
    assert r.stderr.startswith(f"{sweep_id}: deleted"), show(r)
    gone = cli("sweep", "show", sweep_id)
    assert gone.returncode == 1 and f"no sweep with id '{sweep_id}'" in gone.stderr, show(gone)


def test_members_file_with_a_preset_and_best_by(cli: Callable[..., Run], tmp_path: Path) -> None:
    members = tmp_path / "members.json"
    members.write_text(json.dumps([{"seed": 1}, {"seed": 2, "hidden": 32}]))
    r = ok(
        cli(
            "sweep",
            "create",
            "--preset",
            "fast",
            "--set",
            "steps=200",
            "--members",
            str(members),
            "--best-by",
            "in_band",
            "--wait",
        )
    )
    sweep_id, rest = r.stdout.split("\n", 1)
    header, rows = table(rest)
    assert header == [
        "MEMBER",
        "HIDDEN",
        "SEED",
        "STATE",
        "W1_A",
        "IN_BAND",
        "RESID",
        "D_SCORE",
        "JOB_ID",
    ]
    assert sorted((row[0], row[1], row[2]) for row in rows) == [("0", "-", "1"), ("1", "32", "2")]
    bands = [float(row[5]) for row in rows]
    assert bands == sorted(bands, reverse=True), "best first by in_band"
    sweep = Sweep.model_validate_json(ok(cli("sweep", "show", "--json", sweep_id)).stdout)
    assert (sweep.preset, sweep.best_by, sweep.config) == ("fast", "in_band", {"steps": 200})
    ok(cli("sweep", "delete", sweep_id))


def test_live_line_is_redrawn_in_place_on_a_terminal(shared_server: Server) -> None:
    args = ["sweep", "create", "--vary", "seed=1,2", "--set", "steps=200", "--wait"]
    code, out, term = run_on_a_terminal(args, shared_server.url)
    assert code == 0, term
    sweep_id = out.splitlines()[0]
    assert "\r[" in term and "2/2 done" in term, repr(term)
    lines = term.replace("\r\n", "\n").split("\n")
    assert lines[0] == f"{sweep_id}: 2 members queued", repr(term)
    assert lines[-2].startswith(f"{sweep_id} succeeded: 2 members"), repr(term)
    assert "" not in lines[:-1], repr(term)


# ----------------------------------------------------------------------------- exit codes
USAGE = [  # (args after `sweep`, what stderr says): exit 2, nothing on stdout
    (["create", "--vary", "seed=3..1"], "--vary 'seed=3..1': the range 3..1 is empty"),
    (["create", "--vary", "seed=0..x"], "--vary 'seed=0..x': a range is two integers"),
    (["create", "--vary", "seed=0...3"], "--vary 'seed=0...3'"),
    (["create", "--vary", "seed=0..100000"], "over 10000 values"),
    (["create", "--vary", "seed"], "--vary 'seed': takes KEY=VALUES"),
    (["create", "--vary", "=1,2"], "--vary '=1,2': takes KEY=VALUES"),
    (["create", "--vary", "lr_g=1e-4,,2e-4"], "--vary 'lr_g=1e-4,,2e-4': an empty value"),
    (["create", "--vary", "seed="], "--vary 'seed=': an empty value"),
    (["create", "--vary", "seed=1", "--vary", "seed=2"], "seed is varied twice"),
    (["create", "--set", "steps=1"], "one of the arguments --vary --members is required"),
    (["create", "--vary", "seed=1", "--members", "m.json"], "not allowed with argument"),
    (["create", "--members", "/no/such/members.json"], "No such file"),
    (["create", "--vary", "seed=1", "--set", "bad"], "key=value"),
    (["create", "--vary", "bogus=1,2"], "vary.bogus: unknown field"),  # the server's 422
    (["create", "--vary", "seed=1", "--best-by", "bogus"], "best_by"),
    (["create", "--vary", "seed=1", "--preset", "bogus"], "preset"),
    (["list", "--limit", "0"], "limit"),
    (["show", "../x"], "sweep_id must be an id string"),
    ([], "required"),
    (["frobnicate"], "invalid choice"),
]
REFUSED = [  # the server said no: exit 1
    (["show", "sweep_nope"], "error: no sweep with id 'sweep_nope'"),
    (["wait", "sweep_nope"], "error: no sweep with id 'sweep_nope'"),
    (["cancel", "sweep_nope"], "error: no sweep with id"),
    (["delete", "sweep_nope"], "error: no sweep with id"),
]


def test_usage_errors_exit_2_and_refusals_exit_1(
    shared_server: Server, cli: Callable[..., Run], tmp_path: Path
) -> None:
    not_json, not_list = tmp_path / "not.json", tmp_path / "list.json"
    not_json.write_text("{seed: 1")
    not_list.write_text('[{"seed": 1}, 2]')
    cases = [(["sweep", *args], message, 2) for args, message in USAGE]
    cases += [
        (["sweep", "create", "--members", str(not_json)], f"--members {not_json}: not JSON", 2),
        (["sweep", "create", "--members", str(not_list)], "must be a JSON list of objects", 2),
    ]
    cases += [(["sweep", *args], message, 1) for args, message in REFUSED]
    before = json.loads(ok(cli("sweep", "list", "--json")).stdout)["total"]
    assert_refused(cases, shared_server.url)
    assert json.loads(ok(cli("sweep", "list", "--json")).stdout)["total"] == before


def test_every_sweep_command_and_option_has_help() -> None:
    def sub(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                return dict(action.choices)
        return {}

    sweep = sub(build_parser())["sweep"]
    actions = sub(sweep)
    assert set(actions) == {"create", "list", "show", "wait", "cancel", "delete"}
    for name, parser in {"sweep": sweep, **actions}.items():
        for action in parser._actions:
            assert action.help, (name, action.option_strings or action.dest)
    help_text = actions["create"].format_help()
    for option in ("--preset", "--set", "--vary", "--members", "--name", "--best-by", "--wait"):
        assert option in help_text
    assert "seed=0..15" in help_text and "lr_g=1e-4,2e-4" in help_text


# ----------------------------------------------------------------------------- in-process
def test_vary_specs_parse_like_set_values() -> None:
    assert _parse_vary(
        [
            "seed=0..3",
            "lr_g=1e-4,2e-4",
            "loss=minimax,non_saturating",
            "betas=[0.5,0.9],[0,0.99]",
            "ema_warmup=true,false",
            "steps=-1..1,7",
            'latent="uniform"',
        ]
    ) == {
        "seed": [0, 1, 2, 3],
        "lr_g": [1e-4, 2e-4],
        "loss": ["minimax", "non_saturating"],
        "betas": [[0.5, 0.9], [0, 0.99]],
        "ema_warmup": [True, False],
        "steps": [-1, 0, 1, 7],
        "latent": ["uniform"],
    }
    assert _parse_vary(["seed=5..5"]) == {"seed": [5]}
    with pytest.raises(UsageError, match=r"--vary 'seed=2\.\.1'"):
        _parse_vary(["seed=2..1"])


def _sweep_with_states(*states: str) -> Sweep:
    members = [
        {
            "job_id": f"job_{i}",
            "member_index": i,
            "values": {"seed": i},
            "state": state,
            "step": 10,
            "steps": 10,
            "progress": 1.0,
            "quality": {"w1_a": 0.1 * (i + 1), "in_band": 0.5, "resid": 0.2},
            "future_field": "kept",  # a newer server's field does not break the client
        }
        for i, state in enumerate(states)
    ]
    return Sweep.model_validate(
        {
            "id": "sweep_x",
            "name": None,
            "state": "failed" if "failed" in states else "succeeded",
            "created_at": "2026-01-01T00:00:00Z",
            "best_by": "w1_a",
            "preset": "tutorial",
            "config": {},
            "vary": {"seed": list(range(len(states)))},
            "member_count": len(states),
            "counts": {s: states.count(s) for s in ("succeeded", "failed")},
            "progress": 1.0,
            "members": members,
            "best": {"job_id": "job_0", "member_index": 0, "value": 0.1},
        }
    )


def test_a_failed_member_makes_the_result_exit_1_naming_it() -> None:
    out, err = io.StringIO(), io.StringIO()
    sweep = _sweep_with_states("succeeded", "failed", "succeeded")
    assert _sweep_result(sweep, False, out, err) == 1
    header, rows = table(out.getvalue())
    assert header[:3] == ["MEMBER", "SEED", "STATE"]
    assert [row[0] for row in rows] == ["0", "1", "2"] and rows[1][2] == "failed"
    assert "error: 1 of 3 members failed: member 1 (job_1)" in err.getvalue()

    out, err = io.StringIO(), io.StringIO()
    assert _sweep_result(_sweep_with_states("succeeded", "succeeded"), True, out, err) == 0
    assert Sweep.model_validate_json(out.getvalue()).member_count == 2
    assert err.getvalue() == ""
