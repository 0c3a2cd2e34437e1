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
