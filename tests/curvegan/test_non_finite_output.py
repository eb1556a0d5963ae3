"""The client raises NonFiniteOutputError when the server refuses curves that are not finite
(422 non_finite_output): apart from ValidationError, since the checkpoint may be at fault and
not the arguments. Against the app in process (httpx.ASGITransport)."""

from __future__ import annotations

import dataclasses

import pytest

from curvegan import ApiError, Client, NonFiniteOutputError, ValidationError
from curvegan.errors import error_for
from tests.conftest import AppClient


def test_the_code_picks_the_exception_over_the_status() -> None:
    body = {"error": "non_finite_output", "message": "2 of 3 curves are not finite", "field": "z"}
    err = error_for(422, body)
    assert type(err) is NonFiniteOutputError and isinstance(err, ApiError)
    assert not isinstance(err, ValidationError)
    assert (err.status, err.code, err.message, err.field) == (422, *body.values())
    other = error_for(422, {"error": "validation_error", "message": "n: too big", "field": "n"})
    assert type(other) is ValidationError
    assert type(error_for(422, {"error": ["non_finite_output"]})) is ValidationError


def test_sampling_curves_past_float32_raises_non_finite_output_error(
    app_client: AppClient,
) -> None:
    pytest.importorskip("torch")
    from tests.helpers import tiny_checkpoint

    ck = tiny_checkpoint()
    # Its output layer x 1e34: finite curves on the probe batch, past float32 for z of 1e6.
    tensors = {k: v * 1e34 if k.startswith("g.out.") else v for k, v in ck.tensors.items()}
    api = Client(http=app_client)
    uploaded = api.upload_checkpoint(dataclasses.replace(ck, tensors=tensors).to_bytes())
    assert len(api.sample(uploaded.id, 2, seed=1).curves) == 2
    with pytest.raises(NonFiniteOutputError) as caught:
        api.sample(uploaded.id, z=[[1e6] * 5])
    err = caught.value
    assert (err.status, err.code, err.field) == (422, "non_finite_output", "z")
    assert "1 of 1 curves" in err.message and "not finite" in err.message

    # A stored file whose generator fails the probe: its figure is refused the same way.
    blown = {k: v * 1e30 if k.startswith("g.") else v for k, v in ck.tensors.items()}
    other = api.upload_checkpoint(ck.to_bytes())
    path = app_client.data_dir / "files" / f"{other.id}.safetensors"
    path.write_bytes(dataclasses.replace(ck, tensors=blown).to_bytes())
    with pytest.raises(NonFiniteOutputError, match="cannot be sampled"):
        api.checkpoint_figure(other.id, "svg", n=2, seed=1)
