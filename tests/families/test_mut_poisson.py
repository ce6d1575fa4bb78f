"""PoissonMixtureEM M-step found unpinned by the mutmut run on em/poisson.py (issue 13).

Reference: the M-step formulas of the module docstring written out with NumPy over all rows
at once (n_k = sum_n r_nk, s_kd = sum_n r_nk x_nd).
"""

from __future__ import annotations

import numpy as np
import pytest

from bayesmix.em import PoissonMixtureEM


@pytest.mark.parametrize("map_em", [False, True], ids=["ml", "map"])
def test_m_step_sums_the_statistics_over_every_row_block(map_em):
    # default block: 2**18 // (K * D) = 4096 rows, so 10 000 rows are three blocks
    rng = np.random.default_rng(3)
    k, d, n = 4, 16, 10_000
    X = rng.poisson(rng.uniform(0.5, 8.0, size=d), size=(n, d)).astype(np.float64)
    resp = rng.dirichlet(np.ones(k), size=n)
    prior = {"weights_alpha": 2.0, "rate_shape": 1.5, "rate_rate": 0.25} if map_em else None
    est = PoissonMixtureEM(k, random_state=0, prior=prior).initialize(X)
    assert est._block_size(d) < n // 2
    est.m_step(X, resp)
    nk = resp.sum(axis=0)
    sums = resp.T @ X
    if map_em:
        w = nk + 2.0 - 1.0
        rate = (sums + 1.5 - 1.0) / (nk[:, None] + 0.25)
    else:
        w = nk
        rate = sums / nk[:, None]
    np.testing.assert_allclose(est.weights_, w / w.sum(), rtol=1e-12)
    np.testing.assert_allclose(est.means_, rate, rtol=1e-10)


def test_map_weights_with_alpha_below_one_are_clipped_at_zero():
    """w_k proportional to max(n_k + alpha_k - 1, 0): n_k = 0.2 gives exactly 0."""
    rng = np.random.default_rng(4)
    n = 50
    X = rng.poisson(3.0, size=(n, 2)).astype(np.float64)
    resp = np.zeros((n, 3))
    resp[0] = [0.2, 0.8, 0.0]  # n_0 = 0.2
    resp[1] = [0.0, 0.7, 0.3]  # n_2 = 0.3: w_2 = 0.8
    resp[2:, 1] = 1.0
    alpha = np.array([0.5, 0.5, 1.5])
    est = PoissonMixtureEM(3, random_state=0, prior={"weights_alpha": alpha}).initialize(X)
    est.m_step(X, resp)
    nk = resp.sum(axis=0)
    w = np.maximum(nk + alpha - 1.0, 0.0)
    assert w[0] == 0.0 and 0.0 < w[2] < 1.0  # the premise: one clipped, one in (0, 1)
    np.testing.assert_allclose(est.weights_, w / w.sum(), rtol=1e-12)
