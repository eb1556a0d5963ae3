"""The HTTP edge's one error table: every domain error's code has its status."""

from __future__ import annotations

import json
import re
from pathlib import Path

from service.api.errors import STATUS, domain_response
from service.domain import errors

ROOT = Path(__file__).resolve().parents[2]


def _all_domain_errors() -> list[type[errors.DomainError]]:
    found, todo = [], [errors.DomainError]
    while todo:
        kind = todo.pop()
        found.append(kind)
        todo.extend(kind.__subclasses__())
    return found


def test_every_domain_code_has_a_status() -> None:
    codes = {kind.code for kind in _all_domain_errors()}
    assert codes <= set(STATUS), codes - set(STATUS)
    assert STATUS["not_found"] == 404 and STATUS["too_many_streams"] == 429
    assert STATUS["insufficient_storage"] == 507 and STATUS["validation_error"] == 422


def test_a_domain_error_is_answered_with_its_status_field_and_headers() -> None:
    response = domain_response(errors.Invalid("config.lr_g", "must be in (0, 1], got 2"))
    assert response.status_code == 422
    assert json.loads(response.body) == {
        "error": "validation_error",
        "message": "config.lr_g: must be in (0, 1], got 2",
        "field": "config.lr_g",
    }
    busy = domain_response(errors.TooManyJobs("the queue is full"))
    assert busy.status_code == 429 and busy.headers["Retry-After"] == "5"
    denied = domain_response(errors.Unauthorized("missing key"))
    assert denied.status_code == 401 and denied.headers["WWW-Authenticate"] == "Bearer"


def test_the_contract_notes_list_every_code_with_its_status() -> None:
    """docs/service-contract-notes.md lists the error codes for clients: none may be missing,
    nor stated with another status."""
    notes = " ".join((ROOT / "docs" / "service-contract-notes.md").read_text().split())
    for code, status in STATUS.items():
        assert f"`{code}`" in notes, f"{code} is not in the contract notes"
        stated = re.search(rf"`{code}`[^`]*?(\d{{3}})", notes)
        assert stated and int(stated.group(1)) == status, (code, status)
