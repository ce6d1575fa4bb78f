"""Bernoulli EM pieces against their formulas, where mutation testing found them unpinned.

Each test kills a mutant of ``bayesmix/em/bernoulli.py`` that survived the first mutmut run
(docs/mutation-testing.md): statistics summed over several row blocks, an impossible row
through a probability of exactly 1, and MAP weights with a Dirichlet alpha below 1.
"""

import numpy as np
import pytest

from bayesmix.em import BernoulliMixtureEM


def _brute_force_log_density(X, weights, p):
    """log sum_k w_k prod_d p_kd^x_d (1 - p_kd)^(1 - x_d), products taken directly."""
    dens = np.stack([np.prod(np.where(X == 1, pk, 1.0 - pk), axis=1) for pk in p], axis=1)
    with np.errstate(divide="ignore"):
        return np.log(dens @ weights)


def test_m_step_sums_the_statistics_over_every_row_block():
    # default block: 2**18 // (K * D) = 4096 rows, so 10 000 rows are three blocks
    rng = np.random.default_rng(3)
    k, d, n = 4, 16, 10_000
    X = (rng.uniform(size=(n, d)) < rng.uniform(0.1, 0.9, size=d)).astype(np.float64)
    resp = rng.dirichlet(np.ones(k), size=n)
    est = BernoulliMixtureEM(k, smoothing=0.0, random_state=0).initialize(X)
    assert est._block_size(d) < n // 2
    est.m_step(X, resp)
    nk = resp.sum(axis=0)
    np.testing.assert_allclose(est.weights_, nk / n, rtol=1e-12)
    np.testing.assert_allclose(est.means_, (resp.T @ X) / nk[:, None], rtol=1e-10)
    # and a whole fit equals one over the same rows in a single block (chunk_size = N)
    one_block = BernoulliMixtureEM(k, smoothing=0.0, random_state=0, max_iter=5)
    one_block.chunk_size = n
    blocks = BernoulliMixtureEM(k, smoothing=0.0, random_state=0, max_iter=5)
    np.testing.assert_allclose(blocks.fit(X).means_, one_block.fit(X).means_, rtol=1e-10)


def test_map_weights_with_alpha_below_one_are_clipped_at_zero():
    """w_k proportional to max(n_k + alpha_k - 1, 0), p_kd the Beta(a, b) mode."""
    rng = np.random.default_rng(4)
    n, d = 50, 5
    X = (rng.uniform(size=(n, d)) < 0.4).astype(np.float64)
    # n_k = 0.2 (n_k + alpha - 1 < 0: weight exactly 0) and 1.2 (between 0 and 1: 0.7)
    resp = np.empty((n, 4))
    resp[:, 2], resp[:, 3] = 0.2 / n, 1.2 / n
    u = rng.uniform(size=n)
    rest = 1.0 - resp[:, 2] - resp[:, 3]
    resp[:, 0], resp[:, 1] = u * rest, (1 - u) * rest
    alpha = np.full(4, 0.5)
    a, b = np.full(d, 2.0), np.full(d, 3.0)
    prior = {"weights_alpha": alpha, "beta_a": a, "beta_b": b}
    est = BernoulliMixtureEM(4, prior=prior, random_state=0).initialize(X)
    est.m_step(X, resp)
    nk = resp.sum(axis=0)
    raw = np.maximum(nk + alpha - 1.0, 0.0)
    assert raw[2] == 0.0 and raw[3] == pytest.approx(0.7)
    np.testing.assert_allclose(est.weights_, raw / raw.sum(), rtol=1e-12, atol=1e-15)
    assert est.weights_[2] == 0.0
    expected_p = (resp.T @ X + a - 1.0) / (nk[:, None] + a + b - 2.0)
    np.testing.assert_allclose(est.means_, expected_p, rtol=1e-10)


def test_a_zero_where_p_is_one_makes_the_row_impossible():
    X = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 1], [0, 1, 1]], dtype=np.float64)
    est = BernoulliMixtureEM(2, smoothing=0.0, random_state=0).initialize(X)
    weights = np.array([0.6, 0.4])
    p = np.array([[1.0, 0.5, 0.0], [0.0, 0.5, 1.0]])
    est._set_parameters((weights, p))
    rows = np.array(
        [
            [0, 0, 0],  # x_0 = 0 where p_00 = 1, x_2 = 0 where p_12 = 1: impossible under both
            [0, 1, 1],  # component 0: x_0 = 0 where p = 1 and x_2 = 1 where p = 0 (two hits)
            [1, 0, 0],  # component 1: x_0 = 1 where p = 0
            [1, 1, 0],
        ],
        dtype=np.float64,
    )
    expected = _brute_force_log_density(rows, weights, p)
    assert expected[0] == -np.inf and np.isfinite(expected[1:]).all()
    np.testing.assert_array_equal(est.score_samples(rows)[0], -np.inf)
    np.testing.assert_allclose(est.score_samples(rows)[1:], expected[1:], rtol=1e-12)
    np.testing.assert_allclose(
        est.predict_proba(rows), [[0.5, 0.5], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0]], atol=0
    )
