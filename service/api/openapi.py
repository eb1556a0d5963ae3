"""The OpenAPI document as this server answers: the limits its settings set, the API key
when one is required, and the error bodies it really sends, so generated clients and
contract fuzzers agree with it."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from gan_engine.config import MAX_SEED

from ..settings import Settings
from .limits import UNSAFE_METHODS

_ERROR = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


# A tag's prefix in operation ids, where the tag itself is long.
_ID_PREFIX = {"operations": "ops"}


def operation_id(route: APIRoute) -> str:
    """A short, stable id for generated clients (``jobs-create``, ``checkpoints-file``), not
    FastAPI's ``checkpoint_file_v1_checkpoints_checkpoint_id_file_get``: the route's tag, then
    the words of its function's name less the tag's noun (create_job -> jobs-create)."""
    tag = str(route.tags[0]) if route.tags else "api"
    noun = tag.removesuffix("s")
    words = [w for w in route.name.split("_") if w not in (noun, tag)] or [route.name]
    return "-".join([_ID_PREFIX.get(tag, tag), *words])


def _non_null(schema: dict[str, Any]) -> dict[str, Any]:
    return next(s for s in schema.get("anyOf", [schema]) if s.get("type") != "null")


def _integer_bounds(node: Any) -> None:
    """FastAPI's OpenAPI model writes every bound as a float: 1.0 for 1, and 2**63 for
    MAX_SEED (2**63 - 1), one past what the server accepts. Integers' bounds become exact."""
    if isinstance(node, dict):
        if node.get("type") == "integer":
            for key in ("minimum", "maximum"):
                if isinstance(node.get(key), float):
                    node[key] = min(int(node[key]), MAX_SEED)
        for value in node.values():
            _integer_bounds(value)
    elif isinstance(node, list):
        for value in node:
            _integer_bounds(value)


def _runtime_limits(doc: dict[str, Any], settings: Settings) -> None:
    schemas = doc["components"]["schemas"]
    sample = schemas["SampleRequest"]["properties"]
    _non_null(sample["n"])["maximum"] = settings.max_samples
    _non_null(sample["z"])["maxItems"] = settings.max_samples
    members = schemas["SweepCreate"]["properties"]["members"]
    _non_null(members)["maxItems"] = settings.max_sweep_members


def _optional_parameters(doc: dict[str, Any]) -> None:
    """An optional header or query parameter is absent or a string: FastAPI writes ``str |
    None`` as "string or null", and a header cannot be null (a client would send "null")."""
    for item in doc["paths"].values():
        for operation in item.values():
            for param in operation.get("parameters", []):
                schema = param["schema"]
                branches = schema.get("anyOf", [])
                if not param.get("required") and {"type": "null"} in branches:
                    rest = [b for b in branches if b != {"type": "null"}]
                    del schema["anyOf"]
                    schema.update(rest[0] if len(rest) == 1 else {"anyOf": rest})


def _responses(doc: dict[str, Any], settings: Settings) -> None:
    """Every operation lists the errors it can answer, each as an Error body: FastAPI's
    default 422 schema (HTTPValidationError) is not what errors.py sends."""
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            responses = operation.setdefault("responses", {})
            if operation.get("parameters") or operation.get("requestBody"):
                responses["422"] = {"description": "Validation Error", **_ERROR}
            body_types = sorted(operation.get("requestBody", {}).get("content", {}))
            if body_types:
                responses["408"] = {"description": "Body too slow to arrive", **_ERROR}
                responses["413"] = {"description": "Body over the size limit", **_ERROR}
                responses["415"] = {"description": f"Body not sent as {body_types[0]}", **_ERROR}
            elif method.upper() in UNSAFE_METHODS:
                responses["415"] = {"description": "A body sent where none is read", **_ERROR}
            if path.startswith("/v1") and method.upper() in UNSAFE_METHODS:
                responses["403"] = {"description": "A write from another site's page", **_ERROR}
            if path.startswith("/v1") and settings.api_key:
                responses["401"] = {"description": "Missing or wrong API key", **_ERROR}
                operation["security"] = [{"bearer": []}]
    for unused in ("HTTPValidationError", "ValidationError"):
        doc["components"]["schemas"].pop(unused, None)
    if settings.api_key:
        doc["components"]["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer", "description": "CURVEGAN_API_KEY"}
        }


def honest_openapi(app: FastAPI, settings: Settings) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                routes=app.routes,
            )
            _integer_bounds(doc)
            _runtime_limits(doc, settings)
            _optional_parameters(doc)
            _responses(doc, settings)
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
