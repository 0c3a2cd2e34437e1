"""Whether a rebuilt pack's float64 goldens reproduce the committed ones.

Float64 results are not bit-identical across CPUs (vector widths and BLAS kernels change the
order of additions): the committed pack, built on a CPU with AVX512_BF16, and a rebuild on an
AMD EPYC without AVX-512 differ by 6.3e-16 on an element of magnitude 6e-4 (relative 1.05e-12
on that element, 1.6e-16 of the output's largest value). A rule relative to each element fails
there; a rule relative to each output's scale does not, and still catches any real change:
a golden moved by 1e-9 relative is a million times over it.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

# Per output: max |rebuilt - committed| <= GOLDEN_SCALE_RTOL * max |committed|.
GOLDEN_SCALE_RTOL = 1e-12


def golden_difference(rebuilt: np.ndarray, committed: np.ndarray) -> float:
    """max |rebuilt - committed| / max |committed| (inf when shapes differ or a value is not
    finite; 0 for two all-zero arrays)."""
    rebuilt, committed = np.asarray(rebuilt), np.asarray(committed)
    if rebuilt.shape != committed.shape:
        return float("inf")
    if rebuilt.size == 0:
        return 0.0
    a, b = rebuilt.astype(np.float64), committed.astype(np.float64)
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return 0.0 if np.array_equal(a, b, equal_nan=True) else float("inf")
    error = float(np.max(np.abs(a - b)))
    scale = float(np.max(np.abs(b)))
    if scale == 0.0:
        return 0.0 if error == 0.0 else float("inf")
    return error / scale


def golden_mismatches(
    rebuilt: Mapping[str, np.ndarray],
    committed: Mapping[str, np.ndarray],
    rtol: float = GOLDEN_SCALE_RTOL,
) -> list[str]:
    """One line per key that is missing, extra, or beyond the scale-aware bound; [] if all hold."""
    problems = [f"{key}: missing from the rebuild" for key in sorted(committed.keys() - rebuilt)]
    problems += [f"{key}: not in the committed pack" for key in sorted(rebuilt.keys() - committed)]
    for key in sorted(committed.keys() & rebuilt.keys()):
        difference = golden_difference(rebuilt[key], committed[key])
        if not difference <= rtol:
            problems.append(
                f"{key}: max |rebuilt - committed| / max |committed| = {difference:.3g} > {rtol:g}"
            )
    return problems
