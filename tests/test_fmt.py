"""fmt.stats: the same bits as NumPy's mean, std, min, max and norm, NaN and infinities included."""

from __future__ import annotations

import numpy as np
import pytest

from cgviz.core.fmt import stats


def _numpy(a: np.ndarray) -> dict:
    with np.errstate(all="ignore"):
        return {"mean": float(np.mean(a)), "std": float(np.std(a)), "min": float(np.min(a)),
                "max": float(np.max(a)), "norm": float(np.linalg.norm(a.ravel()))}


def _same(x: float, y: float) -> bool:
    return x == y or (x != x and y != y)


@pytest.mark.parametrize("seed", range(4))
def test_stats_are_numpys_bit_for_bit(seed):
    rng = np.random.default_rng(seed)
    for i in range(500):
        shape = tuple(int(s) for s in rng.integers(1, 9, size=rng.integers(1, 4)))
        a = rng.standard_normal(shape) * 10.0 ** rng.integers(-8, 8) + rng.standard_normal() * 10.0 ** rng.integers(-3, 5)
        if i % 7 == 0:
            a.ravel()[0] = (np.nan, np.inf, -np.inf)[i % 3]
        if a.size < 2:
            continue
        got, want = stats(a), _numpy(a)
        assert all(_same(got[k], want[k]) for k in want), (a, got, want)


def test_a_constant_tensor_has_zero_std_and_small_cases_are_exact():
    assert stats(np.full(5, 3.0)) == {"mean": 3.0, "std": 0.0, "min": 3.0, "max": 3.0, "norm": pytest.approx(3 * 5 ** 0.5)}
    assert stats(np.array([2.0])) == {"mean": 2.0, "std": 0.0, "min": 2.0, "max": 2.0, "norm": 2.0}
    assert stats(np.zeros(0))["norm"] == 0.0 and stats(None) is None
