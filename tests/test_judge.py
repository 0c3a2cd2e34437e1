"""The judge fails what it must: noise, NaN, wrong shape, dtype, name or count (pack goldens)."""

from __future__ import annotations

import numpy as np
import pytest

from conformance.compare.judge import judge
from conformance.compare.stats import error_stats
from conformance.compare.tolerance import Tolerance, tolerance_for

TOLERANCE = tolerance_for("fp32", "mlp")


@pytest.fixture()
def expected(pack):
    model = pack.model("mlp")
    artifact = next(a for a in model.artifacts if a.exporter == "torch-script")
    return model.expected(artifact, 1)


def as_outputs(expected, transform=lambda i, g: g.astype(np.float32)):
    return [(e.name, transform(i, e.golden)) for i, e in enumerate(expected)]


def test_float32_rounding_of_the_golden_passes(expected):
    judgement = judge(as_outputs(expected), expected, TOLERANCE)
    assert judgement.passed and judgement.margin < 0.1


def test_relative_noise_of_1e_3_fails(expected):
    rng = np.random.default_rng(0)
    noisy = as_outputs(
        expected, lambda i, g: (g * (1 + 1e-3 * rng.standard_normal(g.shape))).astype(np.float32)
    )
    judgement = judge(noisy, expected, TOLERANCE)
    assert not judgement.passed and judgement.margin > 1


def test_nan_fails_and_is_named(expected):
    def with_nan(i, g):
        out = g.astype(np.float32)
        out.flat[3] = np.nan
        return out

    judgement = judge(as_outputs(expected, with_nan), expected, TOLERANCE)
    assert not judgement.passed
    assert any("NaN" in p for p in judgement.all_problems)
    assert judgement.margin == float("inf")


def test_structure_is_exact(expected):
    swapped = [
        (expected[0].name, expected[1].golden.astype(np.float32)),
        (expected[1].name, expected[0].golden.astype(np.float32)),
    ]
    assert not judge(swapped, expected, TOLERANCE).passed
    wrong_dtype = as_outputs(expected, lambda i, g: g.astype(np.float64))
    assert any("dtype" in p for p in judge(wrong_dtype, expected, TOLERANCE).all_problems)
    wrong_shape = as_outputs(expected, lambda i, g: g[:1].astype(np.float32))
    assert any("shape" in p for p in judge(wrong_shape, expected, TOLERANCE).all_problems)
    renamed = [("other", a) for _, a in as_outputs(expected)]
    assert any("name" in p for p in judge(renamed, expected, TOLERANCE).all_problems)
    assert any(
        "outputs" in p for p in judge(as_outputs(expected)[:1], expected, TOLERANCE).problems
    )


def test_error_statistics_and_minimum_passing_tolerance():
    golden = np.array([1.0, -2.0, 0.0, 4.0])
    actual = np.array([1.0, -2.001, 1e-6, 4.0])
    stats = error_stats(actual, golden, TOLERANCE)
    assert stats.max_abs == pytest.approx(1e-3)
    assert stats.max_rel == pytest.approx(5e-4)
    # By hand: ||actual - golden|| = sqrt(0.001^2 + (1e-6)^2), ||golden|| = sqrt(1 + 4 + 0 + 16).
    assert stats.rel_l2 == pytest.approx(2.18218e-4, rel=1e-5)
    assert stats.worst_index == (1,)
    assert stats.margin == pytest.approx(1e-3 / (1e-5 + 1e-4 * 2.0))
    minimum = Tolerance(stats.min_passing_atol, stats.min_passing_rtol)
    assert error_stats(actual, golden, minimum).margin == pytest.approx(1.0)
    assert stats.worst_elements[0]["index"] == [1] and stats.worst_elements[0]["actual"] == -2.001
    assert sum(stats.ratio_histogram) == golden.size
    assert stats.ratio_histogram[-2] == 1  # one element between 1x and 10x the tolerance
