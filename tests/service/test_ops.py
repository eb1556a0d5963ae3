"""Operations over real HTTP: health, readiness, Prometheus metrics, OpenAPI, auth, bad input."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
import pytest

from curvegan import Client
from tests.conftest import AppClient
from tests.helpers import assert_error

FINAL = {"succeeded", "failed", "cancelled"}


# ----------------------------------------------------------------------------- health


def test_healthz_and_readyz(mc: httpx.Client) -> None:
    for path in ("/healthz", "/readyz"):
        r = mc.get(path)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("application/json")


def _metric_types(text: str) -> dict[str, str]:
    return dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, flags=re.M))


def _counter_type(types: dict[str, str], base: str) -> str | None:
    """A counter's TYPE line names it with or without ``_total`` (client versions differ)."""
    return types.get(base) or types.get(base + "_total")


def _samples(text: str, name: str) -> list[tuple[str, float]]:
    """(labels, value) of every sample line of metric ``name``."""
    out = []
    for m in re.finditer(rf"^{re.escape(name)}(\{{.*\}})? (\S+)$", text, flags=re.M):
        out.append((m.group(1) or "", float(m.group(2))))
    return out


def test_prometheus_metrics(mc: httpx.Client, wait_state: Callable[..., dict]) -> None:
    job = mc.post("/v1/jobs", json={"config": {"seed": 3, "steps": 30, "log_every": 10}})
    assert job.status_code == 202, job.text
    done = wait_state(mc, job.json()["id"], FINAL, timeout=60)
    assert done["state"] == "succeeded", done
    mc.get("/v1/jobs/no-such-job")  # a 404 is counted too

    r = mc.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain"), r.headers
    text = r.text
    types = _metric_types(text)
    # The service's own series are all named curvegan_* (the standard collectors aside).
    own = [n for n in types if not n.startswith(("python_", "process_"))]
    assert own and all(n.startswith("curvegan_") for n in own), own

    # Jobs by state.
    assert types.get("curvegan_jobs") == "gauge", types
    jobs = dict(_samples(text, "curvegan_jobs"))
    assert jobs.get('{state="succeeded"}', 0) >= 1, jobs

    # Steps trained.
    assert _counter_type(types, "curvegan_steps_trained") == "counter", types
    steps = _samples(text, "curvegan_steps_trained_total")
    assert steps and steps[0][1] >= 30, steps

    # Request counts, by method, route template (not the raw path) and status.
    assert _counter_type(types, "curvegan_http_requests") == "counter", types
    reqs = _samples(text, "curvegan_http_requests_total")
    labels = " ".join(lbl for lbl, _ in reqs)
    assert 'method="POST"' in labels and 'route="/v1/jobs"' in labels, labels
    assert 'status="202"' in labels and 'status="404"' in labels, labels
    assert "no-such-job" not in text, "raw ids must not become label values"

    # Latency histogram.
    assert types.get("curvegan_http_request_duration_seconds") == "histogram", types
    assert _samples(text, "curvegan_http_request_duration_seconds_bucket")
    counts = _samples(text, "curvegan_http_request_duration_seconds_count")
    assert sum(v for _, v in counts) >= 3, counts


def test_docs_and_openapi(mc: httpx.Client) -> None:
    docs = mc.get("/docs")
    assert docs.status_code == 200
    assert docs.headers["content-type"].startswith("text/html")
    assert "<html" in docs.text.lower()

    spec = mc.get("/openapi.json")
    assert spec.status_code == 200, spec.text
    paths = spec.json()["paths"]
    expected = {
        "/v1/jobs": {"get", "post"},
        "/v1/jobs/{job_id}": {"get", "delete"},
        "/v1/jobs/{job_id}/metrics": {"get"},
        "/v1/jobs/{job_id}/events": {"get"},
        "/v1/jobs/{job_id}/cancel": {"post"},
        "/v1/jobs/{job_id}/checkpoints": {"post"},
        "/v1/jobs/{job_id}/samples": {"post"},
        "/v1/checkpoints": {"get", "post"},
        "/v1/checkpoints/{checkpoint_id}": {"get", "delete"},
        "/v1/checkpoints/{checkpoint_id}/file": {"get"},
        "/v1/checkpoints/{checkpoint_id}/samples": {"post"},
    }

    # Path parameter names are the service's own choice: compare with them normalized.
    def norm(p: str) -> str:
        return re.sub(r"\{[^}]+\}", "{}", p)

    got = {norm(p): {m.lower() for m in ops} for p, ops in paths.items()}
    for path, methods in expected.items():
        assert norm(path) in got, f"{path} missing from openapi: {sorted(paths)}"
        assert methods <= got[norm(path)], (path, got[norm(path)])


def test_unknown_route_and_method_are_json(mc: httpx.Client) -> None:
    assert_error(mc.get("/v1/nothing-here"), 404)
    r = mc.put("/v1/jobs")
    assert r.status_code == 405, r.text
    assert_error(r, 405)


# ----------------------------------------------------------------------------- auth


def test_api_key(make_app_client: Callable[..., AppClient]) -> None:
    c = make_app_client(
        api_key="s3cret", workers=False
    )  # the app's own check: in process, an empty store
    assert_error(c.get("/v1/jobs"), 401, "unauthorized")
    for header in (
        "Bearer wrong",
        "Bearer s3cret2",
        "Bearer",
        "s3cret",
        "bearer  s3cret x",
        "Basic czNjcmV0",
    ):
        r = c.get("/v1/jobs", headers={"Authorization": header})
        assert_error(r, 401, "unauthorized")
    # Every /v1 route, not just one: before any lookup (no 404 leaking existence).
    assert_error(c.get("/v1/checkpoints"), 401, "unauthorized")
    assert_error(c.get("/v1/jobs/some-id"), 401, "unauthorized")
    assert_error(c.post("/v1/jobs", json={"config": {"steps": -1}}), 401, "unauthorized")
    assert_error(
        c.post(
            "/v1/checkpoints",
            content=b"x",
            headers={"content-type": "application/octet-stream"},
        ),
        401,
        "unauthorized",
    )
    assert_error(c.post("/v1/checkpoints/x/samples", json={"n": 1}), 401, "unauthorized")

    auth = {"Authorization": "Bearer s3cret"}
    ok = c.get("/v1/jobs", headers=auth)
    assert ok.status_code == 200, ok.text
    assert ok.json() == {"items": [], "total": 0}
    assert c.get("/v1/checkpoints", headers=auth).status_code == 200
    assert_error(c.get("/v1/jobs/some-id", headers=auth), 404, "not_found")

    # Open without the key. This app runs no worker: /readyz says so (503), not 401.
    assert c.get("/healthz").status_code == 200
    ready = c.get("/readyz")
    assert ready.status_code == 503 and ready.json()["checks"]["store"] is True, ready.text


UTF8_KEY = "clé-🔑"


def test_a_utf8_key_is_compared_as_its_utf8_bytes(
    make_app_client: Callable[..., AppClient],
) -> None:
    """The server decodes a header as latin-1; the key is compared as the bytes that came in,
    so the key's UTF-8 bytes pass and any other spelling of it is refused."""
    c = make_app_client(api_key=UTF8_KEY, workers=False)
    ok = c.get("/v1/jobs", headers={"Authorization": b"Bearer " + UTF8_KEY.encode()})
    assert ok.status_code == 200, ok.text
    for token in (
        "clé-".encode("latin-1"),  # the same text in another encoding
        UTF8_KEY.encode()[:-1],
        UTF8_KEY.encode() + b"\x00",
        UTF8_KEY.encode("utf-16-le"),
    ):
        refused = c.get("/v1/jobs", headers={"Authorization": b"Bearer " + token})
        assert_error(refused, 401, "unauthorized")
    # The Python client sends the key it is given as UTF-8.
    with Client("http://test", api_key=UTF8_KEY, http=c) as client:
        assert client.list_jobs().total == 0


def test_no_api_key_means_open(mc: httpx.Client) -> None:
    assert mc.get("/v1/jobs").status_code == 200
    assert mc.get("/v1/jobs", headers={"Authorization": "Bearer anything"}).status_code == 200


# ----------------------------------------------------------------------------- bad job input

BAD_JOBS: dict[str, tuple[object, str, str | None]] = {
    # name: (JSON body, field the error must name, text the message must hold)
    "steps_negative": ({"config": {"steps": -1}}, "steps", "[1, 10000000]"),
    "steps_zero": ({"config": {"steps": 0}}, "steps", "[1, 10000000]"),
    "steps_too_many": ({"config": {"steps": 10_000_001}}, "steps", "[1, 10000000]"),
    "steps_fraction": ({"config": {"steps": 1.5}}, "steps", None),
    "steps_bool": ({"config": {"steps": True}}, "steps", None),
    "batch_size_zero": ({"config": {"batch_size": 0}}, "batch_size", "[1, 65536]"),
    "lr_g_string": ({"config": {"lr_g": "fast"}}, "lr_g", None),
    "lr_d_zero": ({"config": {"lr_d": 0}}, "lr_d", "(0, 1]"),
    "betas_one": ({"config": {"betas": [0.5]}}, "betas", None),
    "seed_negative": ({"config": {"seed": -1}}, "seed", None),
    "loss_bogus": ({"config": {"loss": "bogus"}}, "loss", "minimax"),
    "latent_bogus": ({"config": {"latent": "cauchy"}}, "latent", "normal"),
    "config_unknown_field": ({"config": {"stepz": 10}}, "stepz", None),
    "models_too_large": (
        {"config": {"hidden": 4_096, "g_layers": 2}},
        "config.hidden",
        "limited to 64 MiB",
    ),
    "activations_too_large": (
        {"preset": "recommended", "config": {"batch_size": 65_536, "d_hidden": 1_024}},
        "config.batch_size",
        "67,108,864",
    ),
    "config_not_object": ({"config": [1, 2]}, "config", None),
    "body_list": ([{"config": {"steps": 10}}], "body", None),
    "body_string": ("train please", "body", None),
    "name_not_string": ({"name": {"a": 1}}, "name", None),
    "unknown_top_level_field": ({"confg": {"steps": 10}}, "confg", None),
    "resume_from_unknown": ({"resume_from": "no-such-checkpoint"}, "resume_from", None),
}


def _names(err: dict, field: str) -> bool:
    f = err.get("field") or ""
    return (
        f == field
        or f.endswith("." + field)
        or f.startswith(field + ".")
        or bool(re.search(rf"(^|\W){re.escape(field)}(\W|$)", err["message"]))
    )


@pytest.mark.parametrize("case", sorted(BAD_JOBS))
def test_bad_job_is_422(mc: httpx.Client, case: str) -> None:
    body, field, text = BAD_JOBS[case]
    before = mc.get("/v1/jobs").json()["total"]
    r = mc.post("/v1/jobs", json=body)
    if case == "resume_from_unknown":
        # Either reading of the contract is fine: an unknown id (404) or a bad field (422).
        assert r.status_code in (404, 422), r.text
        err = assert_error(r, r.status_code)
    else:
        err = assert_error(r, 422, "validation_error")
    assert _names(err, field), f"{case}: error does not name {field!r}: {err}"
    if text is not None:
        assert text in err["message"], f"{case}: message lacks {text!r}: {err}"
    assert mc.get("/v1/jobs").json()["total"] == before, "a refused job was stored"


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        ('{"config": {"steps": 10}', "application/json"),
        ("not json at all", "application/json"),
        # A body sent as another type is 415 with a hint (test_api_docs.py).
        ("\xff\xfe garbage", "application/json"),
        ('{"config": {"lr_g": NaN}}', "application/json"),
        ('{"config": {"lr_g": Infinity}}', "application/json"),
    ],
)
def test_job_body_not_json_is_422(mc: httpx.Client, content: str, content_type: str) -> None:
    r = mc.post(
        "/v1/jobs", content=content.encode("latin-1"), headers={"content-type": content_type}
    )
    assert_error(r, 422)


def test_bad_query_parameters_are_422(mc: httpx.Client) -> None:
    for params, field in (
        ({"limit": "-1"}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"offset": "-5"}, "offset"),
        ({"state": "sleeping"}, "state"),
    ):
        err = assert_error(mc.get("/v1/jobs", params=params), 422, "validation_error")
        assert _names(err, field), (params, err)
