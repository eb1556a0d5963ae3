"""A job's footprint through the API, the app in this process with its real worker pool: with
log_every=1 and checkpoint_every=1, a low CURVEGAN_MAX_METRIC_ROWS and
CURVEGAN_KEEP_CHECKPOINTS, the job ends within both, its metrics read whole by paging on
since_step (first and last steps, true step numbers), its checkpoint listing the newest and the
best, each with its file."""

from __future__ import annotations

from collections.abc import Callable

from tests.conftest import AppClient
from tests.helpers import poll
from tests.service.faults import check_files_match_records

CAP, KEEP = 20, 2


def test_a_long_job_ends_within_its_row_cap_and_checkpoint_retention(
    make_app_client: Callable[..., AppClient],
) -> None:
    c = make_app_client(max_metric_rows=CAP, keep_checkpoints=KEEP)
    config = {"steps": 150, "log_every": 1, "checkpoint_every": 1, "batch_size": 16}
    made = c.post("/v1/jobs", json={"config": config})
    assert made.status_code == 202, made.text
    job_id = made.json()["id"]
    done = poll(
        lambda: c.get(f"/v1/jobs/{job_id}").json(),
        lambda j: j["state"] in {"succeeded", "failed", "cancelled"},
        120,
        "the job finished",
    )
    assert done["state"] == "succeeded" and done["step"] == 150, done

    whole = c.get(f"/v1/jobs/{job_id}/metrics").json()["items"]
    steps = [row["step"] for row in whole]
    assert len(steps) <= CAP and steps[0] == 1 and steps[-1] == 150, steps
    assert steps == sorted(set(steps)) and all(1 <= s <= 150 for s in steps)
    paged: list[int] = []
    while page := c.get(
        f"/v1/jobs/{job_id}/metrics",
        params={"since_step": paged[-1] if paged else 0, "limit": 3},
    ).json()["items"]:
        paged += [row["step"] for row in page]
    assert paged == steps

    listed = c.get("/v1/checkpoints", params={"job_id": job_id}).json()["items"]
    assert 1 <= len(listed) <= KEEP + 1, [ck["step"] for ck in listed]
    assert done["latest_checkpoint"] == listed[0]["id"] and listed[0]["step"] == 150
    check_files_match_records(c, c.data_dir / "files")
