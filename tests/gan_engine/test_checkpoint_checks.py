"""checkpoint_checks, called directly on small in-memory headers, metadata and tensors: every
refusal's message and field, and the values just inside and just outside each limit."""

from __future__ import annotations

import json
import math
import struct
from typing import Any

import pytest
import torch

from gan_engine import checkpoint_checks as checks
from gan_engine.checkpoint_checks import (
    FORMAT,
    FORMAT_VERSION,
    MAX_HEADER_BYTES,
    MAX_MESSAGE_CHARS,
    METADATA_LIMITS,
    METRIC_RANGES,
    CheckpointError,
    check_metadata,
    check_metrics,
    check_tensors,
    parse_config,
    parse_header,
    parse_metrics,
    parse_step,
    strict_json,
)
from gan_engine.config import ConfigError, TrainConfig


def refusal(call: Any, *args: Any) -> CheckpointError:
    with pytest.raises(CheckpointError) as info:
        call(*args)
    assert isinstance(info.value, ValueError)
    return info.value


# ------------------------------------------------------------------------------- constants
def test_the_format_and_its_limits() -> None:
    assert (FORMAT, FORMAT_VERSION) == ("curvegan.checkpoint", 1)
    assert MAX_HEADER_BYTES == 262_144
    assert MAX_MESSAGE_CHARS == 500
    assert list(METADATA_LIMITS.items()) == [
        ("format", 64),
        ("format_version", 16),
        ("config", 16_384),
        ("step", 32),
        ("metrics", 4_096),
    ]
    inf = math.inf
    assert list(METRIC_RANGES.items()) == [
        ("d_loss", (0.0, inf)),
        ("g_loss", (-inf, inf)),
        ("d_accuracy", (0.0, 1.0)),
        ("d_score", (-inf, 0.0)),
        ("in_band", (0.0, 1.0)),
        ("resid", (0.0, inf)),
        ("w1_a", (0.0, inf)),
        ("a_std", (0.0, inf)),
    ]


def test_an_error_names_its_part_and_cuts_long_messages() -> None:
    assert CheckpointError("bad").field == "body"
    err = CheckpointError("x" * 500, "header")
    assert (str(err), err.field) == ("x" * 500, "header")
    cut = str(CheckpointError("y" * 499 + "z!"))
    assert cut == "y" * 497 + "..." and len(cut) == MAX_MESSAGE_CHARS


# ------------------------------------------------------------------------------ strict_json
def test_strict_json_reads_json() -> None:
    assert strict_json('{"a": [1, {"b": null}]}', "it", "f") == {"a": [1, {"b": None}]}
    assert strict_json(b"[1.5]", "it", "f") == [1.5]


def test_strict_json_refuses_duplicate_keys_naming_five() -> None:
    err = refusal(strict_json, '{"b": 1, "a": 2, "b": 3, "c": 4}', "the header", "header")
    assert (str(err), err.field) == ("the header has duplicate keys: b", "header")
    err = refusal(strict_json, '{"x": {"k": 1, "k": 2}}', "it", "f")
    assert str(err) == "it has duplicate keys: k"
    text = "{" + ", ".join(f'"{k}": 1, "{k}": 2' for k in "gfedcba") + "}"
    assert str(refusal(strict_json, text, "it", "f")) == "it has duplicate keys: a, b, c, d, e"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[" * 100_000, "it is nested too deeply"),
        (b"\xff", "it is not JSON ('utf-8' codec can't decode byte 0xff in position 0: "),
        ('{"a": 1', "it is not JSON (Expecting ',' delimiter: line 1 column 8 (char 7))"),
        ("1" * 5_000, "it is not JSON (Exceeds the limit (4300 digits)"),
        ("", "it is not JSON (Expecting value: line 1 column 1 (char 0))"),
    ],
)
def test_strict_json_refuses_what_is_not_json(text: str | bytes, message: str) -> None:
    err = refusal(strict_json, text, "it", "the.field")
    assert str(err).startswith(message) and err.field == "the.field"


# ----------------------------------------------------------------------------- parse_header
def safetensors(header: bytes | str, tail: bytes = b"", length: int | None = None) -> bytes:
    raw = header.encode() if isinstance(header, str) else header
    return struct.pack("<Q", len(raw) if length is None else length) + raw + tail


def test_parse_header_returns_the_metadata() -> None:
    header = json.dumps({"__metadata__": {"format": FORMAT}, "t": {"dtype": "F32"}})
    assert parse_header(safetensors(header, b"\0" * 16)) == {"format": FORMAT}
    # A header may fill the file exactly, and be exactly MAX_HEADER_BYTES long.
    long = '{"__metadata__": {}}'.ljust(MAX_HEADER_BYTES)
    assert parse_header(safetensors(long)) == {}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not a safetensors file: shorter than its 8-byte header length"),
        (b"\x02\0\0\0\0\0\0", "not a safetensors file: shorter than its 8-byte header length"),
        (
            safetensors("{}", length=3),
            "not a safetensors file: header length exceeds the file (truncated?)",
        ),
        (
            safetensors("", length=0),
            "not a safetensors file: header length 0 is outside [2, 262144] bytes",
        ),
        (safetensors("{"), "not a safetensors file: header length 1 is outside [2, 262144] bytes"),
        (
            safetensors("{}".ljust(MAX_HEADER_BYTES + 1)),
            "not a safetensors file: header length 262145 is outside [2, 262144] bytes",
        ),
        (safetensors("[]"), "not a safetensors file: header is not a JSON object"),
        (safetensors('{"a": 1, "a": 1}'), "not a safetensors file: header has duplicate keys: a"),
        (safetensors("{]"), "not a safetensors file: header is not JSON (Expecting"),
    ],
)
def test_parse_header_refuses_what_is_not_safetensors(data: bytes, message: str) -> None:
    err = refusal(parse_header, data)
    assert str(err).startswith(message) and err.field == "header"


@pytest.mark.parametrize("meta", ["{}", '{"__metadata__": null}', '{"__metadata__": ["a"]}'])
def test_parse_header_refuses_a_header_without_metadata(meta: str) -> None:
    err = refusal(parse_header, safetensors(meta))
    assert (str(err), err.field) == ("not a curvegan checkpoint: no metadata", "metadata")


def test_parse_header_reads_only_the_header_bytes() -> None:
    # The length counts from byte 8; what follows the header (the tensors) is not JSON.
    assert parse_header(safetensors('{"__metadata__": {"a": "b"}}', b"}garbage")) == {"a": "b"}


# --------------------------------------------------------------------------- check_metadata
def metadata(**changes: Any) -> dict[str, Any]:
    meta = {
        "format": FORMAT,
        "format_version": "1",
        "config": "{}",
        "step": "0",
        "metrics": "",
    }
    meta.update(changes)
    return {k: v for k, v in meta.items() if v is not None}


def test_check_metadata_accepts_ours_with_every_value_at_its_limit() -> None:
    check_metadata(metadata())
    check_metadata(metadata(metrics=None, step=None, config=None))
    for key in ("config", "step", "metrics"):
        check_metadata(metadata(**{key: "x" * METADATA_LIMITS[key]}))


@pytest.mark.parametrize("key", ["config", "step", "metrics", "format_version"])
def test_check_metadata_refuses_values_over_their_limit(key: str) -> None:
    limit = METADATA_LIMITS[key]
    err = refusal(check_metadata, metadata(**{key: "x" * (limit + 1)}))
    assert (str(err), err.field) == (
        f"checkpoint metadata {key} is {limit + 1} characters; at most {limit}",
        f"metadata.{key}",
    )


def test_check_metadata_refuses_values_that_are_not_strings() -> None:
    meta = {**metadata(), **{k: 1 for k in "gfedcba"}, "step": 3}
    err = refusal(check_metadata, meta)
    assert (str(err), err.field) == (
        "checkpoint metadata values must be strings: a, b, c, d, e",
        "metadata.a",
    )
    err = refusal(check_metadata, metadata(format=None, step=None))
    assert str(err) == "not a curvegan checkpoint (format 'None')"


@pytest.mark.parametrize(
    ("fmt", "shown"),
    [("other", "'other'"), ("", "''"), ("f" * 100, repr("f" * 64)), (None, "'None'")],
)
def test_check_metadata_refuses_other_formats(fmt: str | None, shown: str) -> None:
    err = refusal(check_metadata, metadata(format=fmt))
    assert (str(err), err.field) == (
        f"not a curvegan checkpoint (format {shown})",
        "metadata.format",
    )


def test_check_metadata_refuses_unknown_keys() -> None:
    err = refusal(check_metadata, metadata(zz="1", aa="2"))
    assert (str(err), err.field) == (
        "checkpoint metadata has unknown keys: aa, zz; "
        "allowed: format, format_version, config, step, metrics",
        "metadata",
    )
    many = {("k" * 70) + c: "" for c in "gfedcba"}
    err = refusal(check_metadata, metadata(**many))
    assert str(err).startswith(f"checkpoint metadata has unknown keys: {'k' * 64}, {'k' * 64}, ")
    assert str(err).count("k" * 64) == 5 and "k" * 65 not in str(err)


@pytest.mark.parametrize("version", ["2", "0", "01", " 1", "", None, "1" * 16])
def test_check_metadata_refuses_other_format_versions(version: str | None) -> None:
    err = refusal(check_metadata, metadata(format_version=version))
    assert (str(err), err.field) == (
        f"unsupported checkpoint format_version {version!r}; this version reads 1",
        "metadata.format_version",
    )


# ----------------------------------------------------------------------------- parse_config
CONFIG = TrainConfig(seed=5, steps=20)


def test_parse_config_reads_a_config_with_a_seed() -> None:
    assert parse_config(json.dumps(CONFIG.to_dict())) == CONFIG
    assert parse_config('{"seed": 0}') == TrainConfig(seed=0)
    assert parse_config('{"preset": "fast", "seed": 1}') == TrainConfig.from_preset("fast", seed=1)


@pytest.mark.parametrize(
    ("text", "message", "field"),
    [
        ("{}", "checkpoint config has no seed", "metadata.config.seed"),
        ('{"seed": null}', "checkpoint config has no seed", "metadata.config.seed"),
        (
            '{"seed": 1, "lr_g": 0}',
            "checkpoint config is invalid: lr_g: must be in (0, 1], got 0",
            "metadata.config.lr_g",
        ),
        (
            '{"seed": 1, "epochs": 3}',
            "checkpoint config is invalid: epochs: unknown field; allowed: preset, ",
            "metadata.config.epochs",
        ),
        (
            "[1]",
            "checkpoint config is invalid: config: must be an object, got list",
            "metadata.config.config",
        ),
        ('{"seed": 1, "seed": 2}', "checkpoint config has duplicate keys: seed", "metadata.config"),
        ("", "checkpoint config is not JSON (Expecting value", "metadata.config"),
    ],
)
def test_parse_config_refuses_invalid_configs(text: str, message: str, field: str) -> None:
    err = refusal(parse_config, text)
    assert str(err).startswith(message) and err.field == field


@pytest.mark.parametrize("error", [TypeError, AttributeError])
def test_parse_config_turns_a_crash_on_odd_data_into_a_refusal(
    monkeypatch: pytest.MonkeyPatch, error: type[Exception]
) -> None:
    # Whatever odd data makes TrainConfig fail outright is still a refusal, not a crash.
    def broken(data: object) -> TrainConfig:
        raise error("odd")

    monkeypatch.setattr(checks.TrainConfig, "from_dict", broken)
    err = refusal(parse_config, '{"seed": 1}')
    assert (str(err), err.field) == (
        "checkpoint config is invalid: must be a JSON object",
        "metadata.config",
    )
    assert not isinstance(err.__cause__, ConfigError) and err.__suppress_context__


# ------------------------------------------------------------------------------- parse_step
@pytest.mark.parametrize(("text", "step"), [("0", 0), ("1", 1), ("19", 19), ("20", 20)])
def test_parse_step_reads_steps_up_to_the_configs(text: str, step: int) -> None:
    assert parse_step(text, CONFIG) == step


@pytest.mark.parametrize("text", ["", " 7", "7 ", "+7", "07", "00", "-0", "7_0", "1e3", "٣", "7.0"])
def test_parse_step_takes_plain_decimal_digits_only(text: str) -> None:
    err = refusal(parse_step, text, CONFIG)
    assert (str(err), err.field) == (
        f"checkpoint step {text!r} is not an integer (decimal digits)",
        "metadata.step",
    )
    long = "x" * 40
    assert repr("x" * 32) in str(refusal(parse_step, long, CONFIG))


@pytest.mark.parametrize("step", [-1, 21, -20, 10**30])
def test_parse_step_refuses_steps_outside_the_run(step: int) -> None:
    err = refusal(parse_step, str(step), CONFIG)
    assert (str(err), err.field) == (
        f"checkpoint step must be in [0, 20] (the config's steps), got {step}",
        "metadata.step",
    )


# ------------------------------------------------------------------------ metrics
METRICS = {
    "d_loss": 1.3,
    "g_loss": -0.7,
    "d_accuracy": 0.5,
    "d_score": -0.69,
    "in_band": 0.97,
    "resid": 0.02,
    "w1_a": 0.01,
    "a_std": 0.2,
}


def test_check_metrics_gives_every_metric_as_a_float() -> None:
    got = check_metrics({**METRICS, "d_loss": 2, "in_band": 1})
    assert got == {**METRICS, "d_loss": 2.0, "in_band": 1.0}
    assert list(got) == list(METRIC_RANGES)
    assert all(type(v) is float for v in got.values())


@pytest.mark.parametrize("name", list(METRIC_RANGES))
def test_each_metric_takes_its_whole_range_and_nothing_past_it(name: str) -> None:
    lo, hi = METRIC_RANGES[name]
    for value in (lo, hi):
        if math.isfinite(value):
            assert check_metrics({**METRICS, name: value})[name] == value
    past = [math.nan, math.inf, -math.inf, 10**400]
    past += [v for v in (lo - 1e-9, hi + 1e-9) if math.isfinite(v)]
    for value in past:
        err = refusal(check_metrics, {**METRICS, name: value})
        assert (str(err), err.field) == (
            f"checkpoint metric {name} must be a finite number in [{lo:g}, {hi:g}], "
            f"got {str(value)[:32]}",
            f"metadata.metrics.{name}",
        )


@pytest.mark.parametrize("value", [True, False, "1.0", None, [1.0], {"v": 1}])
def test_metrics_must_be_numbers(value: object) -> None:
    err = refusal(check_metrics, {**METRICS, "resid": value})
    assert (str(err), err.field) == (
        f"checkpoint metrics must map names to numbers: resid is {value!r:.64}",
        "metadata.metrics.resid",
    )
    long = "v" * 100
    assert str(refusal(check_metrics, {**METRICS, "w1_a": long})).endswith(repr(long)[:64])


def test_check_metrics_refuses_unknown_names() -> None:
    err = refusal(check_metrics, {**METRICS, "zeta": 1.0, "alpha": 1.0})
    assert (str(err), err.field) == (
        "checkpoint metrics has unknown names: alpha, zeta; known: d_loss, g_loss, "
        "d_accuracy, d_score, in_band, resid, w1_a, a_std",
        "metadata.metrics.alpha",
    )
    many = {("m" * 70) + c: 1.0 for c in "gfedcba"}
    err = refusal(check_metrics, many)
    assert str(err).count("m" * 64) == 5 and "m" * 65 not in str(err)
    assert err.field == "metadata.metrics." + "m" * 64


def test_check_metrics_refuses_a_partial_set() -> None:
    partial = {k: v for k, v in METRICS.items() if k not in ("g_loss", "w1_a")}
    err = refusal(check_metrics, partial)
    assert (str(err), err.field) == (
        "checkpoint metrics are partial, lacking g_loss, w1_a: give all of them or none",
        "metadata.metrics.g_loss",
    )
    err = refusal(check_metrics, {})
    assert err.field == "metadata.metrics.d_loss"


def test_parse_metrics() -> None:
    assert parse_metrics("") is None
    assert parse_metrics("{}") is None
    assert parse_metrics(json.dumps(METRICS)) == METRICS
    for text in ("[]", "1", '"x"', "null"):
        err = refusal(parse_metrics, text)
        assert (str(err), err.field) == (
            "checkpoint metrics must map names to numbers",
            "metadata.metrics",
        )
    err = refusal(parse_metrics, '{"d_loss": 1, "d_loss": 2}')
    assert (str(err), err.field) == (
        "checkpoint metrics field has duplicate keys: d_loss",
        "metadata.metrics",
    )
    assert refusal(parse_metrics, '{"d_loss": 1}').field == "metadata.metrics.g_loss"


# ---------------------------------------------------------------------------- check_tensors
F32, U8 = torch.float32, torch.uint8
LAYOUT: dict[str, tuple[tuple[int, ...], torch.dtype]] = {
    "g.w": ((2, 3), F32),
    "opt_g.0.step": ((), F32),
    "opt_g.0.exp_avg": ((2, 3), F32),
    "opt_g.0.exp_avg_sq": ((2, 3), F32),
    "rng.train": ((5056,), U8),
}


def tensors(step: float = 4.0, **changes: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """Tensors of LAYOUT, valid at step 4 (weights and first moments may be negative)."""
    out = {
        "g.w": torch.tensor([[-1.0, 0.0, 2.0], [3.0, -4.0, 5.0]]),
        "opt_g.0.step": torch.tensor(step),
        "opt_g.0.exp_avg": torch.full((2, 3), -0.5),
        "opt_g.0.exp_avg_sq": torch.tensor([[0.0, 1.0, 2.0], [0.0, 0.5, 1e-30]]),
        "rng.train": torch.Generator().manual_seed(3).get_state(),
    }
    # Keyword names spell dots as "__"; None leaves the tensor out.
    for key, value in changes.items():
        name = key.replace("__", ".")
        if value is None:
            del out[name]
        else:
            out[name] = value
    return out


def test_check_tensors_accepts_exactly_the_layout() -> None:
    check_tensors(tensors(), LAYOUT, 4)
    check_tensors(tensors(step=0.0, opt_g__0__exp_avg_sq=torch.zeros(2, 3)), LAYOUT, 0)


def test_check_tensors_refuses_missing_tensors_naming_five() -> None:
    err = refusal(check_tensors, tensors(g__w=None, rng__train=None), LAYOUT, 4)
    assert (str(err), err.field) == (
        "checkpoint lacks tensors the config needs: g.w, rng.train",
        "tensors.g.w",
    )
    big = {f"t{i}": ((1,), F32) for i in range(7)}
    err = refusal(check_tensors, {}, {**LAYOUT, **big}, 4)
    assert str(err) == (
        "checkpoint lacks tensors the config needs: g.w, opt_g.0.exp_avg, "
        "opt_g.0.exp_avg_sq, opt_g.0.step, rng.train"
    )
    # Missing ones are named before extra ones.
    err = refusal(check_tensors, {**tensors(g__w=None), "x": torch.zeros(1)}, LAYOUT, 4)
    assert err.field == "tensors.g.w"


def test_check_tensors_refuses_extra_tensors_naming_five() -> None:
    err = refusal(
        check_tensors, {**tensors(), "z.b": torch.zeros(1), "z.a": torch.zeros(1)}, LAYOUT, 4
    )
    assert (str(err), err.field) == (
        "checkpoint has tensors the config does not: z.a, z.b",
        "tensors.z.a",
    )
    extra = {("e" * 70) + c: torch.zeros(1) for c in "gfedcba"}
    err = refusal(check_tensors, {**tensors(), **extra}, LAYOUT, 4)
    assert str(err).count("e" * 64) == 5 and "e" * 65 not in str(err)
    assert err.field == "tensors." + "e" * 64


@pytest.mark.parametrize(
    ("name", "bad", "message"),
    [
        (
            "g.w",
            torch.zeros(3, 2),
            "tensor g.w is torch.float32 [3, 2]; the config needs torch.float32 [2, 3]",
        ),
        (
            "g.w",
            torch.zeros(2, 3, dtype=torch.float64),
            "tensor g.w is torch.float64 [2, 3]; the config needs torch.float32 [2, 3]",
        ),
        (
            "opt_g.0.step",
            torch.tensor([4.0]),
            "tensor opt_g.0.step is torch.float32 [1]; the config needs torch.float32 []",
        ),
        (
            "rng.train",
            torch.zeros(5056, dtype=torch.int8),
            "tensor rng.train is torch.int8 [5056]; the config needs torch.uint8 [5056]",
        ),
    ],
)
def test_check_tensors_refuses_wrong_shapes_and_dtypes(
    name: str, bad: torch.Tensor, message: str
) -> None:
    err = refusal(check_tensors, {**tensors(), name: bad}, LAYOUT, 4)
    assert (str(err), err.field) == (message, f"tensors.{name}")


@pytest.mark.parametrize("name", ["g.w", "opt_g.0.exp_avg", "opt_g.0.exp_avg_sq"])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_check_tensors_refuses_values_that_are_not_finite(name: str, value: float) -> None:
    t = tensors()[name].clone()
    t[1, 2] = value
    err = refusal(check_tensors, {**tensors(), name: t}, LAYOUT, 4)
    assert (str(err), err.field) == (
        f"tensor {name} holds NaN or infinite values",
        f"tensors.{name}",
    )


def test_check_tensors_refuses_a_negative_second_moment() -> None:
    t = torch.zeros(2, 3)
    t[0, 1] = -1e-30
    err = refusal(check_tensors, tensors(opt_g__0__exp_avg_sq=t), LAYOUT, 4)
    assert (str(err), err.field) == (
        "tensor opt_g.0.exp_avg_sq holds negative values",
        "tensors.opt_g.0.exp_avg_sq",
    )


@pytest.mark.parametrize(("adam_step", "step"), [(3.0, 4), (5.0, 4), (0.0, 4), (4.0, 0), (4.5, 4)])
def test_check_tensors_refuses_an_adam_step_that_is_not_the_checkpoints(
    adam_step: float, step: int
) -> None:
    err = refusal(check_tensors, tensors(step=adam_step), LAYOUT, step)
    assert (str(err), err.field) == (
        f"tensor opt_g.0.step is {adam_step:g}; it must equal the checkpoint's step {step}",
        "tensors.opt_g.0.step",
    )


def test_check_tensors_refuses_a_random_state_that_is_not_one() -> None:
    err = refusal(check_tensors, tensors(rng__train=torch.zeros(5056, dtype=U8)), LAYOUT, 4)
    assert (str(err), err.field) == (
        "tensor rng.train is not a random generator state (Invalid mt19937 state)",
        "tensors.rng.train",
    )
