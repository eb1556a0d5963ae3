"""Contract fuzzing: schemathesis reads the live server's OpenAPI document (a real server on a
real port, with an API key, the key sent) and drives every operation with generated requests,
valid and invalid, under every check it has: no 500, only documented statuses, content types
and headers, bodies that match their schemas, invalid data refused, valid data accepted, auth
enforced, 405s that list the right methods.

Bounded for CI to CURVEGAN_FUZZ_EXAMPLES examples per operation and phase (default 20: about
2 300 requests in 35-45 s on 2 cores) with a fixed seed, so a run repeats exactly. A longer run, e.g.
before a release, with a new seed each time:

    CURVEGAN_FUZZ_EXAMPLES=500 CURVEGAN_FUZZ_SEED=random \\
        .venv/bin/python -m pytest -q -s tests/service/test_contract_fuzz.py

The server runs with no room in its queue (CURVEGAN_MAX_QUEUED_JOBS=0): every valid job or
sweep is validated in full and then answered 429, so nothing trains while the fuzzer runs (a
generated config may ask for ten million steps of a 8 192-wide model). A real checkpoint is
uploaded first, and the operations that read one are pointed at it, so sampling is fuzzed
past the 404 of an unknown id.

(schemathesis's own pytest plugin, `schema.parametrize()`, does not run under pytest 9: it
reads a private attribute pytest removed. Its engine, which the `st` command runs, does.)
"""

from __future__ import annotations

import os
from typing import Any

import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import events, from_schema
from schemathesis.openapi.checks import RejectedPositiveData
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.helpers import Server, tiny_checkpoint_bytes

EXAMPLES = int(os.environ.get("CURVEGAN_FUZZ_EXAMPLES", "20"))
SEED = os.environ.get("CURVEGAN_FUZZ_SEED", "20261127")
KEY = "fuzz-key"
SERVER_ENV = {
    "CURVEGAN_API_KEY": KEY,
    "CURVEGAN_MAX_QUEUED_JOBS": "0",
    "CURVEGAN_MAX_CONCURRENT_JOBS": "1",
    # Small limits keep generated requests and answers small (the schema states them).
    "CURVEGAN_MAX_SAMPLES": "50",
    "CURVEGAN_MAX_SWEEP_MEMBERS": "4",
    "CURVEGAN_MAX_BODY_BYTES": "1000000",
    "CURVEGAN_LOG_LEVEL": "warning",
}

# Refusals of schema-valid data for rules JSON Schema cannot state, each said in the field's
# description and answered 422 naming the field: limits that join several fields, and what
# depends on the checkpoint sampled.
CROSS_FIELD_RULES = (
    "checkpoints are limited to",  # the models' size: hidden x layers x widths
    "a 256 MiB activation",  # 2 x batch_size x the widest layer
    "(CURVEGAN_MAX_SWEEP_MEMBERS)",  # a grid's size is the product of its lists' lengths
    "must hold 5 numbers",  # a z row is as wide as the checkpoint's n_ideas
    "must equal the number of z rows",  # n beside z
)


@schemathesis.check
def positive_data_acceptance_but_cross_field_rules(
    ctx: Any, response: Any, case: schemathesis.Case
) -> bool | None:
    """schemathesis's positive_data_acceptance (disabled below: this runs it), except for a
    422 that names one of the rules above, or an uploaded file that is not a checkpoint (the
    schema can say "binary", not "a safetensors file of this engine's models")."""
    try:
        return positive_data_acceptance(ctx, response, case)
    except RejectedPositiveData:
        if response.status_code == 422:
            body = response.json()
            if case.operation.path == "/v1/checkpoints" and body["error"] == "invalid_checkpoint":
                return None
            if body["field"] and any(rule in body["message"] for rule in CROSS_FIELD_RULES):
                return None
        raise


def _config(checkpoint_id: str) -> SchemathesisConfig:
    reads_checkpoint = [
        "/v1/checkpoints/{checkpoint_id}",
        "/v1/checkpoints/{checkpoint_id}/file",
        "/v1/checkpoints/{checkpoint_id}/samples",
    ]
    return SchemathesisConfig.from_dict(
        {
            "headers": {"Authorization": f"Bearer {KEY}"},
            "workers": 1,
            **({} if SEED == "random" else {"seed": int(SEED)}),
            "generation": {"max-examples": EXAMPLES, "database": "none"},
            # No .schemathesis/ state in the working tree: each run starts from its seed.
            "cache": {"enabled": False},
            # Replaced by positive_data_acceptance_but_cross_field_rules, which runs it.
            "checks": {"positive_data_acceptance": {"enabled": False}},
            "operations": [
                {
                    "include-path": path,
                    "include-method": "GET" if not path.endswith("samples") else "POST",
                    "parameters": {"checkpoint_id": checkpoint_id},
                }
                for path in reads_checkpoint
            ],
        }
    )


def _upload_checkpoint(server: Server) -> str:
    with server.client(headers={"authorization": f"Bearer {KEY}"}) as c:
        r = c.post(
            "/v1/checkpoints",
            content=tiny_checkpoint_bytes(seed=1, steps=20, log_every=10),
            headers={"content-type": "application/octet-stream"},
        )
        assert r.status_code == 201, r.text
        return r.json()["id"]


def test_every_operation_keeps_its_contract(module_server: Server) -> None:
    checkpoint_id = _upload_checkpoint(module_server)
    schema = schemathesis.openapi.from_url(
        f"{module_server.url}/openapi.json", config=_config(checkpoint_id)
    )
    operations = {op.ok().label for op in schema.get_all_operations()}
    tested: set[str] = set()
    failures: list[str] = []
    cases = 0
    checks_run: set[str] = set()
    for event in from_schema(schema).execute():
        if isinstance(event, (events.NonFatalError, events.FatalError)):
            failures.append(f"{type(event).__name__}: {event}")
        if not isinstance(event, events.ScenarioFinished):
            continue
        recorder = event.recorder
        tested.add(recorder.label)
        cases += len(recorder.cases)
        for case_id, nodes in recorder.checks.items():
            for node in nodes:
                checks_run.add(node.name)
                if node.failure_info is None:
                    continue
                interaction = recorder.interactions.get(case_id)
                answer = ""
                if interaction is not None and interaction.response is not None:
                    response = interaction.response
                    answer = f" -> {response.status_code} {response.content[:300]!r}"
                failure = node.failure_info.failure
                failures.append(
                    f"{recorder.label} [{node.name}] {failure.title}: {failure.message[:300]}"
                    f"\n    {node.failure_info.code_sample}{answer}"
                )
    print(f"contract fuzz: {cases} cases, {len(tested)} operations, checks {sorted(checks_run)}")
    assert tested >= operations, f"untested: {sorted(operations - tested)}"
    assert "positive_data_acceptance_but_cross_field_rules" in checks_run
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(failures[:30])
