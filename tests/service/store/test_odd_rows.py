"""Checkpoint and job rows whose stored metrics are odd (written by an older version, or edited
by hand) are read as records with those metrics absent, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import json

import pytest

from service.domain import LOSS_FIELDS, QUALITY_FIELDS
from service.store import Store
from tests.service.store.conftest import execute

LOSS = {"d_loss": 1.2, "g_loss": -0.6, "d_accuracy": 0.5, "d_score": -1.2}
QUALITY = {"in_band": 0.9, "resid": 0.1, "w1_a": 0.2}
# name: (metrics, quality) as the JSON text stored; every one valid JSON, which both
# databases accept in a JSON column.
ODD = {
    "partial": ('{"d_loss": 1.0}', '{"in_band": 0.5, "w1_a": 0.1}'),
    "not_objects": ('"text"', "[1, 2]"),
    "wrong_types": (json.dumps({**LOSS, "g_loss": "low"}), json.dumps({**QUALITY, "w1_a": True})),
    "extra_names": (json.dumps({**LOSS, "fid": 3.0}), json.dumps({**QUALITY, "a_std": 0.1})),
    "beyond_floats": (
        json.dumps(LOSS).replace("1.2", "1" + "0" * 400, 1),
        json.dumps(QUALITY).replace("0.9", "1e400"),
    ),
    "null_values": (
        json.dumps(dict.fromkeys(LOSS_FIELDS)),
        json.dumps(dict.fromkeys(QUALITY_FIELDS)),
    ),
}


def insert(store: Store, ck_id: str, seq: int, metrics: str, quality: str) -> None:
    quoted = [text.replace("'", "''") for text in (metrics, quality)]
    execute(
        store.url,
        "INSERT INTO checkpoints (id, seq, job_id, step, config, metrics, quality, created_at,"
        f" size_bytes, sha256, source) VALUES ('{ck_id}', {seq}, NULL, 7, '{{\"seed\": 1}}',"
        f" '{quoted[0]}', '{quoted[1]}', 1.0, 1, '{'0' * 64}', 'upload')",
    )


@pytest.mark.parametrize("case", sorted(ODD))
def test_odd_metrics_are_read_as_absent(store: Store, case: str) -> None:
    insert(store, "ck_sound", 1, json.dumps(LOSS), json.dumps(QUALITY))
    insert(store, "ck_odd", 2, *ODD[case])
    page = store.list_checkpoints(None, 10, 0)
    assert [r.id for r in page.items] == ["ck_odd", "ck_sound"] and page.total == 2
    odd, sound = page.items
    assert odd.metrics is None and odd.quality is None
    assert odd.step == 7 and odd.config == {"seed": 1}
    assert sound.metrics == LOSS and sound.quality == QUALITY
    assert store.get_checkpoint("ck_odd") == odd


@pytest.mark.parametrize("case", ["partial", "not_objects", "beyond_floats"])
def test_odd_job_metrics_are_read_as_absent(store: Store, case: str) -> None:
    for seq, (job_id, (metrics, quality)) in enumerate(
        {"j_sound": (json.dumps(LOSS), json.dumps(QUALITY)), "j_odd": ODD[case]}.items(), 1
    ):
        quoted = [text.replace("'", "''") for text in (metrics, quality)]
        execute(
            store.url,
            "INSERT INTO jobs (id, seq, state, config, steps, step, metrics, quality, created_at,"
            f" cancel_requested) VALUES ('{job_id}', {seq}, 'succeeded', '{{\"seed\": 1}}', 10,"
            f" 10, '{quoted[0]}', '{quoted[1]}', 1.0, FALSE)",
        )
    page = store.list_jobs(None, 10, 0)
    assert [j.id for j in page.items] == ["j_odd", "j_sound"]
    odd, sound = page.items
    assert odd.metrics is None and odd.quality is None and odd.step == 10
    assert sound.metrics == LOSS and sound.quality == QUALITY
    assert store.get_job("j_odd") == odd
