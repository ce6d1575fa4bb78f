"""CategoricalMixtureEM cases found by the mutmut run on em/categorical.py (issue 13)."""

from __future__ import annotations

import warnings

import numpy as np

from bayesmix.em import CategoricalMixtureEM


def test_level_probabilities_sum_to_one_with_category_alpha_below_one():
    """With category_alpha < 1 a level with (almost) no counts is clipped to 0 and the rest
    of the row renormalised (it summed to 1.027 here before the fix)."""
    X = np.array([[0, 0], [0, 1], [1, 2], [1, 2], [0, 0], [1, 1], [0, 2], [1, 2]] * 5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = CategoricalMixtureEM(
            2, prior={"category_alpha": 0.5}, random_state=0, max_iter=50
        ).fit(X)
    for probs in est.category_probs_:
        assert (probs >= 0).all()
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=0, atol=1e-12)


def test_m_step_sums_the_statistics_over_every_row_block():
    """Level counts and n_k summed over all rows: 10 000 rows are three row blocks."""
    # default block: 2**18 // (K * D) = 4096 rows
    rng = np.random.default_rng(3)
    k, d, n, levels = 4, 16, 10_000, 3
    X = rng.integers(0, levels, size=(n, d))
    resp = rng.dirichlet(np.ones(k), size=n)
    est = CategoricalMixtureEM(k, smoothing=0.0, random_state=0).initialize(X)
    assert est._block_size(d) < n // 2
    est.m_step(X, resp)
    nk = resp.sum(axis=0)
    np.testing.assert_allclose(est.weights_, nk / n, rtol=1e-12)
    for j in range(d):
        onehot = (X[:, j, None] == np.arange(levels)).astype(float)  # (N, L)
        want = resp.T @ onehot / nk[:, None]
        np.testing.assert_allclose(est.category_probs_[j], want, rtol=1e-10)


def test_means_are_the_level_probabilities_side_by_side():
    """means_ (K, sum_d L_d): the one-hot means, after a fit and after one M-step."""
    rng = np.random.default_rng(5)
    X = np.column_stack(
        [rng.integers(0, 2, 200), rng.integers(0, 4, 200), rng.integers(0, 3, 200)]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = CategoricalMixtureEM(2, random_state=0, max_iter=20, n_init=2).fit(X)
    assert est.means_.shape == (2, 2 + 4 + 3)
    np.testing.assert_array_equal(est.means_, np.concatenate(est.category_probs_, axis=1))
    # one M-step without smoothing: the responsibility-weighted one-hot means
    est.smoothing = 0.0
    est.initialize(X)
    resp = np.random.default_rng(6).dirichlet([1.0, 1.0], size=len(X))
    est.m_step(X, resp)
    onehot = np.concatenate([X[:, [j]] == np.arange(m) for j, m in enumerate((2, 4, 3))], 1)
    assert est.means_.shape == (2, 9)
    np.testing.assert_allclose(est.means_, resp.T @ onehot / resp.sum(axis=0)[:, None], rtol=1e-12)
