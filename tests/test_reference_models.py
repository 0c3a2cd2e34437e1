"""Every model family fulfils the contract, and its torch and Keras twins are the same function."""

from __future__ import annotations

import numpy as np
import pytest

from conformance.pack.build import parameter_count
from reference_models import FAMILIES, REQUIRED_NAMES, load_family
from reference_models.interface import BATCH, SEQ
from tests.conftest import needs_frameworks

MAX_PARAMETERS = 150_000


@pytest.mark.parametrize("name", FAMILIES)
def test_family_exports_the_contract(name):
    family = load_family(name)
    for required in REQUIRED_NAMES:
        assert hasattr(family, required), f"{name} lacks {required}"
    spec = family.SPEC
    assert spec.name == name
    assert spec.inputs and spec.outputs and spec.tags
    for tensor in (*spec.inputs, *spec.outputs):
        assert tensor.shape[0] == BATCH, f"{tensor.name}: batch must be the first, dynamic dim"
        assert len(tensor.layout) == len(tensor.shape)
        assert (SEQ in tensor.shape) <= spec.is_sequence


@pytest.mark.parametrize("name", FAMILIES)
def test_parameters_are_small_random_and_seeded(name):
    if name == "digits":
        pytest.importorskip("sklearn")  # its parameters are trained on load_digits
    family = load_family(name)
    params = family.make_params(7)
    assert parameter_count(params) <= MAX_PARAMETERS
    for key, value in params.items():
        assert value.dtype == np.float64, key
        # A zero (or constant) tensor vanishes from exported graphs or leaves its op untested.
        assert np.count_nonzero(value) == value.size, f"{name}.{key} has zeros"
        assert value.size == 1 or np.unique(value).size > 1, f"{name}.{key} is constant"
    again = family.make_params(7)
    assert all(np.array_equal(params[k], again[k]) for k in params)
    other = family.make_params(8)
    assert any(not np.array_equal(params[k], other[k]) for k in params)


@pytest.mark.parametrize("name", FAMILIES)
def test_inputs_are_seeded_and_never_zero(name):
    if name == "digits":
        pytest.importorskip("sklearn")  # its inputs are load_digits images
    family = load_family(name)
    seq_len = family.SPEC.seq_lens[0] if family.SPEC.is_sequence else None
    inputs = family.make_inputs(4, seq_len, 3)
    assert set(inputs) == {t.name for t in family.SPEC.inputs}
    for tensor in family.SPEC.inputs:
        array = inputs[tensor.name]
        assert array.shape[0] == 4
        assert np.count_nonzero(array) > 0.9 * array.size, f"{tensor.name} is mostly zeros"
        assert np.array_equal(array, family.make_inputs(4, seq_len, 3)[tensor.name])


@needs_frameworks
@pytest.mark.parametrize("name", FAMILIES)
def test_twin_check(name):
    from reference_models.twin import TWIN_MAX_REL_L2, twin_check

    results = twin_check(load_family(name))
    assert results
    for result in results:
        assert result.rel_l2 <= TWIN_MAX_REL_L2, result


@needs_frameworks
def test_twin_check_catches_a_different_function():
    """The twin check can fail: perturb one Keras weight and it must notice."""
    from reference_models.twin import TWIN_MAX_REL_L2, rel_l2, run_keras, run_torch

    family = load_family("mlp")
    params = family.make_params(0)
    inputs = family.make_inputs(4, None, 1)
    golden = run_torch(family.build_torch(params), inputs, family.SPEC)
    altered = dict(params, **{"fc2.bias": params["fc2.bias"] + 1e-6})
    mirrored = run_keras(family.build_keras(altered, "float64"), inputs, family.SPEC)
    assert rel_l2(mirrored["logits"], golden["logits"]) > TWIN_MAX_REL_L2


def test_goldens_vary_with_the_input(pack):
    """Outputs must spread across samples, or an upstream error hides in a flat output."""
    for model in pack.models:
        big = next(d for d in model.data_sets if d.batch > 1)
        for output in model.record["outputs"]:
            golden = model.golden[f"set{big.index}.output.{output['name']}"]
            spread = golden.std(axis=0).mean()
            assert spread > 0.01 * (np.abs(golden).mean() + 1e-12), (
                model.name,
                output["name"],
                spread,
            )


# -- issue 14: stress data sets, padding traps -----------------------------------------------

LONG_SEQUENCE_FAMILIES = ("lstm", "gru", "transformer_encoder", "decoder_block")
NEW_FAMILIES = (
    "decoder_block",
    "conv_decoder",
    "mobile_se_block",
    "detection_head",
    "padding_traps",
)


def test_the_new_families_are_registered_and_small():
    for name in NEW_FAMILIES:
        assert name in FAMILIES
        # A few thousand parameters (the decoder's 16k are its 1,000 x 16 tied embedding):
        # every artifact costs compile time on IREE in every default run.
        assert parameter_count(load_family(name).make_params(0)) <= 20_000, name


@pytest.mark.parametrize("name", FAMILIES)
def test_stress_sets_are_named_once_and_drawn_from_their_own_seed(name):
    """Adding a stress set changes no ordinary data set (its seed is its own)."""
    import dataclasses

    from conformance.pack.build import data_set_plan, draw_inputs

    family = load_family(name)
    names = [s.name for s in family.SPEC.stress]
    assert len(set(names)) == len(names)
    assert all(n.replace("_", "").isalnum() for n in names)
    plan = data_set_plan(family.SPEC, [1, 4])
    plain = data_set_plan(dataclasses.replace(family.SPEC, stress=()), [1, 4])
    assert plan[: len(plain)] == plain
    assert [e.get("stress") for e in plan[len(plain) :]] == names
    if names:
        with_stress = draw_inputs(family, plan, 5)
        without = draw_inputs(_without_stress(family), plain, 5)
        for drawn, ordinary in zip(with_stress, without):
            assert all(np.array_equal(drawn[k], ordinary[k]) for k in ordinary)


def _without_stress(family):
    import dataclasses
    import types

    copy = types.ModuleType(family.__name__)
    copy.__dict__.update(family.__dict__)
    copy.SPEC = dataclasses.replace(family.SPEC, stress=())
    return copy


def _stress_set(model, name):
    return next(d for d in model.data_sets if d.stress == name)


def _ordinary_big(model):
    return next(d for d in model.data_sets if d.batch > 1 and d.stress is None)


def test_stress_sets_reach_the_ranges_they_name(pack):
    """Each stress set really drives its model where kernels break; the ordinary sets do not."""

    def golden(model, data_set, kind, name):
        return model.golden[f"set{data_set.index}.{kind}.{name}"]

    for name in ("mlp", "cnn"):
        model = pack.model(name)
        stress = _stress_set(model, "logits_above_88")
        assert golden(model, stress, "output", "logits").max() > 88, name
        assert golden(model, _ordinary_big(model), "output", "logits").max() < 88, name

    detection = pack.model("detection_head")
    stress = _stress_set(detection, "large_exp_and_logits")
    assert golden(detection, stress, "output", "top_logits").max() > 88
    # w = 2 * exp(dw): a box wider than 2 * e^10 cells needs an exp argument above 10.
    assert golden(detection, stress, "output", "boxes")[..., 2:].max() > 2 * np.exp(10)

    decoder = pack.model("conv_decoder")
    stress = _stress_set(decoder, "near_zero_variance")
    latent = golden(decoder, stress, "input", "latent")
    per_group = latent.reshape(latent.shape[0], 4, -1).var(axis=-1)
    assert per_group.max() < 1e-7 and per_group.min() > 0
    ordinary = golden(decoder, _ordinary_big(decoder), "input", "latent")
    assert ordinary.reshape(ordinary.shape[0], 4, -1).var(axis=-1).min() > 0.1

    for name in ("lstm", "gru"):
        model = pack.model(name)
        stress = golden(model, _stress_set(model, "saturated_gates"), "input", "sequence")
        plain = golden(model, _ordinary_big(model), "input", "sequence")
        assert np.abs(stress).max() > 8 * np.abs(plain).max(), name

    for name in LONG_SEQUENCE_FAMILIES:
        assert _stress_set(pack.model(name), "long_sequence").seq_len >= 128, name


def test_transformer_stress_puts_attention_logits_above_88(pack):
    """The first layer's attention logits, recomputed in numpy from the pack's own seed."""
    family = load_family("transformer_encoder")
    model = pack.model("transformer_encoder")
    params = family.make_params(model.record["seed"])
    weight = params["layers.0.self_attn.in_proj_weight"]
    bias = params["layers.0.self_attn.in_proj_bias"]

    def largest_logit(data_set):
        x = model.golden[f"set{data_set.index}.input.embeddings"]
        qkv = x @ weight.T + bias
        q, k = (qkv[..., i * 64 : (i + 1) * 64].reshape(*x.shape[:2], 4, 16) for i in (0, 1))
        return float(np.abs(np.einsum("bqhd,bkhd->bhqk", q, k) / 4.0).max())

    assert largest_logit(_stress_set(model, "attention_logits_above_88")) > 88
    assert largest_logit(_ordinary_big(model)) < 88


def _pack_feeds(model, artifact):
    return dict(artifact.inputs(0))


def test_padding_trap_artifacts_carry_asymmetric_pads(pack):
    """Every exporter's padding_traps artifact keeps its traps: asymmetric Conv/MaxPool pads,
    SAME_* auto_pad, or an asymmetric Pad (evaluated when the graph computes its pads)."""
    from conformance.pack.coverage import asymmetric_padding

    model = pack.model("padding_traps")
    exported = [a for a in model.artifacts if a.precision == "fp32"]  # not the fp16/int8 ones
    assert {a.exporter for a in exported} == {"torch-dynamo", "torch-script", "tf2onnx"}
    for artifact in exported:
        found = asymmetric_padding(artifact.path, _pack_feeds(model, artifact))
        # The strided "same" conv, the "same" max pool and the explicit Pad: three traps.
        assert len(found) >= 3, (artifact.exporter, found)


def test_the_padding_detector_finds_nothing_in_symmetric_models(pack):
    """The detector can fail: resnet_block pads symmetrically on every exporter."""
    from conformance.pack.coverage import asymmetric_padding

    model = pack.model("resnet_block")
    for artifact in model.artifacts:
        assert asymmetric_padding(artifact.path, _pack_feeds(model, artifact)) == []


@needs_frameworks
@pytest.mark.parametrize("exporter", ["torch-dynamo", "torch-script", "tf2onnx"])
def test_padding_traps_survive_a_fresh_export(tmp_path, exporter):
    from conformance.export import EXPORTERS
    from conformance.pack.coverage import asymmetric_padding

    family = load_family("padding_traps")
    path = tmp_path / "model.onnx"
    EXPORTERS[exporter](family, family.make_params(0), path, {})
    inputs = family.make_inputs(1, None, 0)["features_in"].astype(np.float32)
    if exporter == "tf2onnx":
        inputs = inputs.transpose(0, 2, 3, 1)
    import onnx

    name = onnx.load(str(path)).graph.input[0].name
    assert len(asymmetric_padding(path, {name: np.ascontiguousarray(inputs)})) >= 3


def test_conv_decoder_carries_both_depth_to_space_modes(pack):
    """torch's pixel_shuffle is ONNX DepthToSpace mode CRD, TensorFlow's depth_to_space DCR:
    the pack has both, so a runtime that ignores ``mode`` fails one of them."""
    import onnx

    modes = {}
    for artifact in pack.model("conv_decoder").artifacts:
        if artifact.precision != "fp32":
            continue  # derived from torch-script: the same node
        nodes = [n for n in onnx.load(str(artifact.path)).graph.node if n.op_type == "DepthToSpace"]
        assert len(nodes) == 1, artifact.exporter
        attributes = {a.name: onnx.helper.get_attribute_value(a) for a in nodes[0].attribute}
        modes[artifact.exporter] = attributes.get("mode", b"DCR")  # DCR is the ONNX default
    assert modes == {"torch-dynamo": b"CRD", "torch-script": b"CRD", "tf2onnx": b"DCR"}


# -- issue 13: digits, trained at pack-build time on real data ---------------------------------

# Two trainings in one process run the same float64 operations in the same order: their weights
# agree to this bound (in practice they are identical; across CPUs BLAS kernels may move the
# last bits, which the 2^-20 weight grid absorbs).
TRAINING_REPRODUCIBLE_ATOL = 1e-12


def test_digits_training_is_deterministic_learns_and_splits_stratified():
    pytest.importorskip("sklearn")
    from reference_models import digits

    first = dict(digits._trained.__wrapped__(5))  # bypass the cache: train twice
    second = dict(digits._trained.__wrapped__(5))
    assert first.keys() == second.keys()
    for key in first:
        assert np.max(np.abs(first[key] - second[key])) <= TRAINING_REPRODUCIBLE_ATOL, key
        grid = first[key] / digits.WEIGHT_GRID
        assert np.array_equal(grid, np.round(grid)), key
    other = dict(digits._trained.__wrapped__(6))
    assert any(not np.array_equal(first[k], other[k]) for k in first)
    train, held_out = digits.split()
    assert not set(train) & set(held_out) and train.size + held_out.size == 1797
    _, labels = digits._dataset()
    for label in range(10):  # stratified: each class held out at 30%, to the sample
        members = np.count_nonzero(labels == label)
        assert np.count_nonzero(labels[held_out] == label) == round(0.3 * members)
    pixels, _ = digits._dataset()
    _, logits = digits.forward(first, pixels[held_out])
    assert digits.accuracy(logits, labels[held_out]) > 0.9
    task = digits.make_task(0)
    assert not set(task.calibration_indices) & set(task.held_out_indices)
    assert set(task.calibration_indices) <= set(train)
