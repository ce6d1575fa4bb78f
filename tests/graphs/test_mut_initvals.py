"""Starting points of the graphs (point_to_initvals, default_initvals) against their
definitions, written out here by brute force (mutmut survivors of bayesmix/graphs/_mixture.py;
issue 13). NumPy only: no graph is compiled.
"""

from __future__ import annotations

import numpy as np
import pytest

from bayesmix.config import ModelSpec
from bayesmix.graphs import default_initvals, free_var_names, point_to_initvals


def _chunks(n, k):
    """Row counts of k nearly equal consecutive chunks (the first n % k one row longer)."""
    return [n // k + (1 if j < n % k else 0) for j in range(k)]


def _quantile_means(X, k):
    order = sorted(range(len(X)), key=lambda i: (X[i, 0], i))
    out, start = [], 0
    for size in _chunks(len(X), k):
        rows = order[start : start + size]
        out.append(X[rows].mean(axis=0) if rows else X.mean(axis=0))
        start += size
    return np.array(out)


def _data(n=23, d=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) * np.array([1.0, 4.0, 0.2])[:d] + np.array([5, -3, 0])[:d]


@pytest.mark.parametrize("k", [2, 3, 5])
def test_default_initvals_diag_are_quantile_means_and_sd_over_k(k):
    X = _data()
    init = default_initvals(ModelSpec("gaussian", k, "diag"), X)
    np.testing.assert_allclose(init["w"], np.full(k, 1 / k))
    np.testing.assert_allclose(init["mu"], _quantile_means(X, k), rtol=1e-12)
    np.testing.assert_allclose(init["sigma"], np.tile(X.std(axis=0) / k, (k, 1)), rtol=1e-12)
    assert set(init) == {"w", "mu", "sigma"}


def test_default_initvals_spherical_full_and_constant_features():
    X = _data(17)
    X[:, 2] = 4.0  # a constant feature: its scale guess is 1 / K
    k = 3
    sd = np.where(X.std(axis=0) > 0, X.std(axis=0), 1.0) / k
    sph = default_initvals(ModelSpec("gaussian", k, "spherical"), X)
    np.testing.assert_allclose(sph["sigma_spherical"], np.full(k, np.sqrt(np.mean(sd**2))))
    full = default_initvals(ModelSpec("gaussian", k, "full"), X)
    np.testing.assert_allclose(full["sigma"], np.tile(sd, (k, 1)), rtol=1e-12)
    np.testing.assert_array_equal(full["corr_chol"], np.tile(np.eye(3), (k, 1, 1)))
    np.testing.assert_allclose(full["mu"], _quantile_means(X, k), rtol=1e-12)


def test_default_initvals_more_components_than_rows_and_one_row():
    X = _data(2, 2)
    init = default_initvals(ModelSpec("gaussian", 3, "diag"), X)
    # the third chunk is empty: its mean is the data mean
    np.testing.assert_allclose(init["mu"], _quantile_means(X, 3), rtol=1e-12)
    np.testing.assert_allclose(init["sigma"], np.tile(X.std(axis=0) / 3, (3, 1)), rtol=1e-12)
    one = default_initvals(ModelSpec("gaussian", 2, "diag"), X[:1])
    np.testing.assert_allclose(one["sigma"], np.full((2, 2), 0.5))  # no spread: 1 / K


def test_default_initvals_bernoulli_are_clipped_chunk_frequencies():
    rng = np.random.default_rng(1)
    X = (rng.random((40, 4)) < [0.02, 0.5, 0.98, 0.3]).astype(float)
    X[:, 0] = np.r_[np.zeros(30), np.ones(10)]  # feature 0 orders the rows
    init = default_initvals(ModelSpec("bernoulli", 4), X)
    np.testing.assert_allclose(init["p"], np.clip(_quantile_means(X, 4), 0.05, 0.95))
    assert init["p"].min() == 0.05 and init["p"].max() == 0.95


def test_point_to_initvals_weights_and_probabilities_are_clipped():
    spec = ModelSpec("bernoulli", 3)
    point = {"w": np.array([0.0, 2.0, 2.0]), "p": np.array([[0.0, 1.0], [0.5, 1e-9], [0.2, 0.7]])}
    init = point_to_initvals(spec, point, 2)
    w = np.array([1e-6, 2.0, 2.0])
    np.testing.assert_allclose(init["w"], w / w.sum(), rtol=1e-12)
    np.testing.assert_allclose(init["p"], np.clip(point["p"], 1e-6, 1 - 1e-6), rtol=1e-12)


def test_point_to_initvals_ordered_first_feature_is_made_strictly_increasing():
    spec = ModelSpec("gaussian", 4, "diag", ordered=True)
    mu = np.array([[-1.0, 7.0], [-1.0, 8.0], [-3.0, 9.0], [200.0, 1.0]])
    point = {"w": np.full(4, 0.25), "mu": mu, "sigma": np.ones((4, 2))}
    init = point_to_initvals(spec, point, 2)
    first = [-1.0]
    for j in range(1, 4):
        first.append(max(mu[j, 0], first[-1] + 1e-6 * (1 + abs(first[-1]))))
    np.testing.assert_array_equal(init["mu_first"], first)
    np.testing.assert_array_equal(init["mu_rest"], mu[:, 1:])
    assert "mu" not in init
    one_d = point_to_initvals(
        ModelSpec("gaussian", 4, "diag", ordered=True),
        {"w": np.full(4, 0.25), "mu": mu[:, :1], "sigma": np.ones((4, 1))},
        1,
    )
    assert set(one_d) == {"w", "mu_first", "sigma"}


def test_point_to_initvals_from_covariances():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(2, 3, 3))
    cov = a @ np.swapaxes(a, 1, 2) + np.eye(3)
    mu = rng.normal(size=(2, 3))
    point = {"w": np.array([0.4, 0.6]), "mu": mu, "cov": cov}
    sd = np.sqrt(np.diagonal(cov, axis1=1, axis2=2))
    full = point_to_initvals(ModelSpec("gaussian", 2, "full"), point, 3)
    np.testing.assert_allclose(full["sigma"], sd, rtol=1e-12)
    corr = cov / (sd[:, :, None] * sd[:, None, :])
    np.testing.assert_allclose(full["corr_chol"], np.linalg.cholesky(corr), rtol=1e-12)
    np.testing.assert_allclose(full["mu"], mu)
    diag = point_to_initvals(ModelSpec("gaussian", 2, "diag"), point, 3)
    np.testing.assert_allclose(diag["sigma"], sd, rtol=1e-12)
    assert "corr_chol" not in diag
    sph = point_to_initvals(ModelSpec("gaussian", 2, "spherical"), point, 3)
    np.testing.assert_allclose(sph["sigma_spherical"], np.sqrt((sd**2).mean(axis=1)), rtol=1e-12)
    # a full model started from a diagonal point: identity correlations
    diag_point = {"w": point["w"], "mu": mu, "sigma": sd}
    full2 = point_to_initvals(ModelSpec("gaussian", 2, "full"), diag_point, 3)
    np.testing.assert_array_equal(full2["corr_chol"], np.tile(np.eye(3), (2, 1, 1)))
    np.testing.assert_allclose(full2["sigma"], sd)
    # "cov": None means no covariance given
    none_cov = point_to_initvals(ModelSpec("gaussian", 2, "full"), {**diag_point, "cov": None}, 3)
    np.testing.assert_array_equal(none_cov["corr_chol"], full2["corr_chol"])


def test_default_initvals_ties_in_the_first_feature_keep_the_row_order():
    """Rows are sorted by feature 0 stably: tied rows stay in data order."""
    rng = np.random.default_rng(3)
    X = np.column_stack([rng.integers(0, 2, 600), rng.normal(size=(600, 2))]).astype(float)
    init = default_initvals(ModelSpec("gaussian", 5, "diag"), X)
    np.testing.assert_allclose(init["mu"], _quantile_means(X, 5), rtol=1e-12)


@pytest.mark.parametrize("covariance", ["full", "diag", "spherical"])
def test_point_to_initvals_one_feature_gives_the_graphs_free_variables(covariance):
    spec = ModelSpec("gaussian", 2, covariance)
    point = {
        "w": np.array([0.3, 0.7]),
        "mu": np.array([[-1.0], [2.0]]),
        "cov": np.array([[[0.5]], [[2.0]]]),
    }
    init = point_to_initvals(spec, point, 1)
    assert set(init) == set(free_var_names(spec, 1))
