"""The shared NumPy mixture densities against SciPy and explicit loops."""

import numpy as np
import pytest
from scipy.stats import bernoulli, multivariate_normal, norm

from bayesmix._math import (
    component_log_density,
    log_responsibilities,
    mixture_log_density,
    sample_mixture,
)


@pytest.fixture
def rng():
    return np.random.default_rng(42)


def _random_cov(rng, k, d):
    a = rng.normal(size=(k, d, d))
    return a @ np.swapaxes(a, -1, -2) + d * np.eye(d)


def test_full_gaussian_matches_scipy_per_draw(rng):
    S, K, N, D = 3, 4, 50, 3
    X = rng.normal(size=(N, D)) * 2
    params = {
        "w": rng.dirichlet(np.ones(K), size=S),
        "mu": rng.normal(size=(S, K, D)),
        "cov": np.stack([_random_cov(rng, K, D) for _ in range(S)]),
    }
    got = component_log_density(X, params, "gaussian")
    assert got.shape == (S, N, K)
    for s in range(S):
        for k in range(K):
            ref = multivariate_normal(params["mu"][s, k], params["cov"][s, k]).logpdf(X)
            np.testing.assert_allclose(got[s, :, k], ref, rtol=1e-10, atol=1e-10)
    # mixture density: explicit sum over the latent indicator z
    mix = mixture_log_density(X, params, "gaussian")
    for s in range(S):
        dens = sum(
            params["w"][s, k] * multivariate_normal(params["mu"][s, k], params["cov"][s, k]).pdf(X)
            for k in range(K)
        )
        np.testing.assert_allclose(mix[s], np.log(dens), rtol=1e-10)


def test_diag_gaussian_matches_scipy_with_two_leading_dims(rng):
    C, S, K, N, D = 2, 3, 2, 20, 2
    X = rng.normal(size=(N, D)) + 1e6  # a large offset must not lose precision
    params = {
        "w": rng.dirichlet(np.ones(K), size=(C, S)),
        "mu": 1e6 + rng.normal(size=(C, S, K, D)),
        "sigma": rng.uniform(0.5, 2, size=(C, S, K, D)),
    }
    got = component_log_density(X, params, "gaussian")
    assert got.shape == (C, S, N, K)
    ref = norm(params["mu"][1, 2, 1], params["sigma"][1, 2, 1]).logpdf(X).sum(axis=1)
    np.testing.assert_allclose(got[1, 2, :, 1], ref, rtol=1e-10)


def test_bernoulli_sums_features_before_mixing(rng):
    K, N, D = 3, 30, 16
    X = (rng.random((N, D)) < 0.4).astype(np.int8)
    params = {"w": rng.dirichlet(np.ones(K)), "p": rng.uniform(0.05, 0.95, size=(K, D))}
    got = component_log_density(X, params, "bernoulli")
    ref = np.stack([bernoulli(params["p"][k]).logpmf(X).sum(axis=1) for k in range(K)], axis=1)
    np.testing.assert_allclose(got, ref, rtol=1e-12)
    mix = mixture_log_density(X, params, "bernoulli")
    np.testing.assert_allclose(mix, np.log(np.exp(ref) @ params["w"]), rtol=1e-10)


def test_responsibilities_are_bayes_rule(rng):
    X = np.array([[-5.0], [0.0], [5.0]])
    params = {"w": np.array([0.5, 0.5]), "mu": np.array([[-5.0], [5.0]]), "sigma": np.ones((2, 1))}
    r = np.exp(log_responsibilities(X, params))
    np.testing.assert_allclose(r.sum(axis=1), 1.0)
    np.testing.assert_allclose(r[1], [0.5, 0.5])
    assert r[0, 0] > 0.999 and r[2, 1] > 0.999


def test_blocking_gives_the_same_answer(rng, monkeypatch):
    import bayesmix.families.gaussian as m

    S, K, N, D = 7, 2, 40, 2
    X = rng.normal(size=(N, D))
    params = {
        "w": rng.dirichlet(np.ones(K), size=S),
        "mu": rng.normal(size=(S, K, D)),
        "cov": np.stack([_random_cov(rng, K, D) for _ in range(S)]),
    }
    whole = component_log_density(X, params)
    monkeypatch.setattr(m, "BLOCK_ELEMENTS", 1)
    np.testing.assert_array_equal(component_log_density(X, params), whole)


def test_sample_mixture_reproduces_moments(rng):
    cov = _random_cov(rng, 2, 2)
    params = {"w": np.array([0.3, 0.7]), "mu": np.array([[-4.0, 0.0], [4.0, 1.0]]), "cov": cov}
    X, z = sample_mixture(params, 20000, rng=np.random.default_rng(1))
    assert abs((z == 0).mean() - 0.3) < 0.02
    np.testing.assert_allclose(X[z == 1].mean(axis=0), [4.0, 1.0], atol=0.1)
    np.testing.assert_allclose(np.cov(X[z == 1].T), cov[1], atol=0.15)
    X2, z2 = sample_mixture(params, 20000, rng=np.random.default_rng(1))
    np.testing.assert_array_equal(X, X2)
    Xb, _ = sample_mixture({"w": [1.0], "p": [[0.0, 1.0]]}, 5, "bernoulli")
    assert Xb.dtype == np.int8 and (Xb == [0, 1]).all()


def test_bernoulli_probabilities_of_exactly_zero_and_one_give_no_nan():
    # maximum-likelihood EM on digits gives p = 0 for pixels that are never on
    X = np.array([[0, 1], [1, 1], [0, 0]], dtype=np.int8)
    params = {"w": np.array([0.5, 0.5]), "p": np.array([[0.0, 1.0], [0.5, 0.5]])}
    logp = component_log_density(X, params, "bernoulli")
    assert np.isfinite(logp).all()
    np.testing.assert_allclose(logp[0, 0], 0.0)  # (0, 1) is certain under component 0
    assert logp[1, 0] < -700 and logp[2, 0] < -700  # impossible rows: about log(tiny)
    np.testing.assert_allclose(logp[:, 1], 2 * np.log(0.5))
    r = np.exp(log_responsibilities(X, params, "bernoulli"))
    np.testing.assert_allclose(r.sum(axis=1), 1.0)
    np.testing.assert_allclose(r[1], [0.0, 1.0], atol=1e-300)
