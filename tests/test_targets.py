"""Every built-in target keeps the adapter contract: names, availability, description, a real
model's outputs under their graph names and within float32 error, clean errors on bad input.

Unavailable targets (no GPU, package missing) skip with their own reason.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conformance.pack import layout
from conformance.spec import PACK_DIR
from conformance.targets import (
    BUILTIN_TARGETS,
    TargetError,
    TargetInfo,
    get_target,
    parse_target_name,
    target_class,
)

TARGETS = sorted(BUILTIN_TARGETS)
MODEL = PACK_DIR / "mlp" / "torch-script"  # two outputs, dynamic batch; test set 1 is batch 4
RTOL, ATOL = 1e-4, 1e-5


def declared_options(name: str) -> tuple[str, ...]:
    """The options a built-in target accepts, read from its adapter's declarations."""
    return tuple(option.name for option in target_class(parse_target_name(name)).OPTIONS)


# Derived, never copied: a copy of this table once drifted from openvino.py.
KNOWN_OPTIONS = {name: declared_options(name) for name in BUILTIN_TARGETS}


def available(name: str):
    target = get_target(name)
    reason = target.unavailable_reason()
    assert reason is None or (isinstance(reason, str) and reason.strip())
    if reason:
        pytest.skip(reason)
    return target


def test_known_options_table_names_only_registered_targets():
    assert set(KNOWN_OPTIONS) <= set(BUILTIN_TARGETS)


@pytest.mark.parametrize("name", TARGETS)
def test_target_is_constructed_and_says_whether_it_is_available(name):
    target = get_target(name)
    assert target.name == name
    reason = target.unavailable_reason()
    assert reason is None or (isinstance(reason, str) and reason.strip())


@pytest.mark.parametrize("name", TARGETS)
def test_unknown_option_is_refused_naming_the_known_ones(name):
    with pytest.raises(TargetError) as raised:
        get_target(f"{name}:bogus=1")
    message = str(raised.value)
    assert "bogus" in message
    assert "known:" in message or "no options" in message, message
    known = KNOWN_OPTIONS.get(name)
    if known:
        assert all(option in message for option in known), message
    elif known == ():
        assert "no options" in message, message


@pytest.mark.parametrize("name", TARGETS)
def test_describe_fills_runtime_version_device(name):
    target = available(name)
    info = target.describe()
    assert isinstance(info, TargetInfo)
    assert info.name == name
    assert info.runtime and info.version and info.device
    assert isinstance(info.options, dict)


@pytest.mark.parametrize("name", TARGETS)
def test_runs_the_mlp_within_float32_error(name):
    target = available(name)
    data = layout.data_set_dir(MODEL, 1)
    inputs = dict(layout.read_data_set(data, "input"))
    expected = layout.read_data_set(data, "output")
    session = target.load(MODEL / layout.MODEL_ONNX)
    try:
        outputs = session.run(inputs)
        again = session.run(inputs)  # a second call must not disturb the first's arrays
    finally:
        session.close()
    assert [n for n, _ in outputs] == [n for n, _ in expected]
    for (name_, actual), (_, want), (_, second) in zip(outputs, expected, again):
        assert str(actual.dtype) == str(want.dtype), name_
        assert actual.shape == want.shape, name_
        np.testing.assert_allclose(actual, want, rtol=RTOL, atol=ATOL, err_msg=name_)
        np.testing.assert_array_equal(actual, second, err_msg=name_)


@pytest.mark.parametrize("name", TARGETS)
def test_a_missing_input_is_a_target_error(name):
    target = available(name)
    session = target.load(MODEL / layout.MODEL_ONNX)
    try:
        with pytest.raises(TargetError):
            session.run({})
    finally:
        session.close()


@pytest.mark.parametrize("name", TARGETS)
def test_garbage_file_is_a_target_error(name, tmp_path: Path):
    target = available(name)
    garbage = tmp_path / layout.MODEL_ONNX
    garbage.write_bytes(b"this is not an ONNX model\x00\x01\x02" * 8)
    with pytest.raises(TargetError):
        target.load(garbage)


def test_tract_ties_per_input_batch_symbols_only_where_they_differ():
    import onnx

    from conformance.targets.tract import tied_batch_facts

    def facts(artifact: str) -> dict[str, str]:
        path = PACK_DIR / artifact / layout.MODEL_ONNX
        return tied_batch_facts(onnx.load(str(path), load_external_data=False).graph)

    # tf2onnx: item_ids [unk__23, 8], dense_features [unk__24, 13] -> one symbol
    assert facts("embedding_mlp/tf2onnx") == {"item_ids": "B,8,i64", "dense_features": "B,13,f32"}
    assert facts("embedding_mlp/torch-script") == {}  # both already "batch"
    assert facts("transformer_encoder/tf2onnx") == {}  # one input: its seq symbol is left alone
