"""The server's log says when each job starts and ends, with its figures: read from the log
of a real server (local mode, where the training happens in pool processes)."""

from __future__ import annotations

import re

from tests.helpers import Server, wait_for_state, wait_until


def line_for(server: Server, pattern: str, timeout: float = 10.0) -> str:
    """The log line matching ``pattern`` (the pool process may write it a moment after the
    API shows the state)."""
    found = wait_until(
        lambda: re.search(pattern, server.log(), re.MULTILINE),
        timeout,
        f"a line matching {pattern!r} in the server log",
        interval=0.1,
        logs=lambda: server.log()[-3000:],
    )
    return found.group(0)


def test_the_log_has_a_line_when_a_job_starts_succeeds_and_fails(live_server: Server) -> None:
    """On the session's shared server (its log has every test's jobs: each line is found by
    this test's job ids)."""
    server = live_server
    with server.client() as http:
        config = {"steps": 200, "log_every": 50, "seed": 1}
        ok = http.post("/v1/jobs", json={"config": config}).json()
        done = wait_for_state(http, ok["id"], {"succeeded"})

        # a job that must fail: it resumes from a checkpoint whose file is gone
        ck = done["latest_checkpoint"]
        files = [p for p in server.data_dir.rglob(f"*{ck}*") if p.is_file()]
        assert files, f"no file for {ck} under the data dir"
        for path in files:
            path.unlink()
        more = {**config, "steps": 300}
        bad = http.post("/v1/jobs", json={"config": more, "resume_from": ck}).json()
        failed = wait_for_state(http, bad["id"], {"failed"})

    job_id = ok["id"]
    assert "INFO curvegan.jobs: job " in line_for(server, rf"^.*job {job_id} started on .*$")
    line = line_for(server, rf"^.*job {job_id} succeeded at .*$")
    metrics, quality = done["metrics"], done["quality"]
    assert f"step 200, d_accuracy {metrics['d_accuracy']:.4g}" in line, line
    assert f"d_score {metrics['d_score']:.4g}, w1_a {quality['w1_a']:.4g}" in line, line

    line_for(server, rf"^.*job {bad['id']} started on .*$")
    line = line_for(server, rf"^.*job {bad['id']} failed at step \d+.*$")
    assert "WARNING" in line and line.endswith(failed["error"]), (line, failed["error"])
    assert "to resume from is missing" in line, line
