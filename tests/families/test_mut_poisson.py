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
