"""The families layer's NumPy densities and random draws: what the mutmut sample of issue 13
found unpinned (bayesmix/families/*.py), each against SciPy or a formula written out.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from bayesmix.families import bernoulli, categorical, gaussian, get_family, poisson

S, K, D, N = 2, 3, 2, 7  # all different, so that a sum over the wrong axis changes the shape


def _params(seed=0):
    rng = np.random.default_rng(seed)
    w = rng.dirichlet(np.ones(K), size=S)
    mu = rng.normal(0, 2, size=(S, K, D))
    sigma = rng.uniform(0.5, 2.0, size=(S, K, D))
    a = rng.normal(size=(S, K, D, D + 2))
    cov = a @ np.swapaxes(a, -1, -2) / (D + 2) + 0.1 * np.eye(D)
    X = rng.normal(0, 2, size=(N, D))
    return w, mu, sigma, cov, X


def test_gaussian_diag_component_log_density_matches_scipy():
    w, mu, sigma, _, X = _params()
    got = get_family("gaussian").component_log_density(X, {"w": w, "mu": mu, "sigma": sigma})
    want = np.empty((S, N, K))
    for s in range(S):
        for k in range(K):
            want[s, :, k] = stats.norm.logpdf(X, mu[s, k], sigma[s, k]).sum(axis=1)
    assert got.shape == (S, N, K)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_gaussian_full_component_log_density_matches_scipy():
    w, mu, _, cov, X = _params(1)
    got = get_family("gaussian").component_log_density(X, {"w": w, "mu": mu, "cov": cov})
    want = np.empty((S, N, K))
    for s in range(S):
        for k in range(K):
            want[s, :, k] = stats.multivariate_normal.logpdf(X, mu[s, k], cov[s, k])
    assert got.shape == (S, N, K)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_bernoulli_component_log_density_matches_scipy():
    rng = np.random.default_rng(2)
    d = 4
    p = rng.uniform(0.05, 0.95, size=(S, K, d))
    w = rng.dirichlet(np.ones(K), size=S)
    X = rng.integers(0, 2, size=(N, d)).astype(float)
    got = get_family("bernoulli").component_log_density(X, {"w": w, "p": p})
    want = np.empty((S, N, K))
    for s in range(S):
        for k in range(K):
            want[s, :, k] = stats.bernoulli.logpmf(X, p[s, k]).sum(axis=1)
    assert got.shape == (S, N, K)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_bernoulli_component_log_density_floors_log_zero():
    """p = 0 (1) costs log(tiny) ~ -708 for a 1 (0) and exactly 0 for a 0 (1): no NaN."""
    log_tiny = np.log(np.finfo(float).tiny)
    p = np.array([[[0.0, 1.0, 0.5], [1.0, 0.0, 0.25]]])  # (1, 2, 3)
    w = np.array([[0.5, 0.5]])
    X = np.array([[0, 1, 1], [1, 0, 0], [0, 0, 1]], dtype=float)
    got = get_family("bernoulli").component_log_density(X, {"w": w, "p": p})
    with np.errstate(divide="ignore"):
        log_p = np.maximum(np.log(p[0]), log_tiny)
        log_q = np.maximum(np.log1p(-p[0]), log_tiny)
    want = X @ log_p.T + (1.0 - X) @ log_q.T
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got[0], want, rtol=1e-14)
    assert got[0, 0, 0] == pytest.approx(np.log(0.5))  # p = 0 and p = 1 both match
    assert got[0, 1, 0] == pytest.approx(2 * log_tiny + np.log(0.5))


_RANDOM = {
    "bernoulli": (bernoulli._graph_random, lambda rng: rng.uniform(0.1, 0.9, size=(K, D))),
    "poisson": (poisson._graph_random, lambda rng: rng.uniform(0.5, 5.0, size=(K, D))),
    "categorical": (
        categorical._graph_random,
        lambda rng: rng.dirichlet(np.ones(3), size=(K, D)),
    ),
}


@pytest.mark.parametrize("family", sorted(_RANDOM))
def test_graph_random_draws_come_from_the_generator_passed(family):
    """The CustomDist ``random`` uses PyMC's generator: the same seed gives the same draws."""
    fn, make = _RANDOM[family]
    rng = np.random.default_rng(4)
    w = rng.dirichlet(np.ones(K))
    theta = make(rng)
    first = fn(w, theta, rng=np.random.default_rng(11), size=(50,))
    again = fn(w, theta, rng=np.random.default_rng(11), size=(50,))
    other = fn(w, theta, rng=np.random.default_rng(12), size=(50,))
    assert first.shape == (50, D)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_iw_random_without_size_has_the_inverse_wishart_mean():
    """InverseWishart(nu, 2 diag(beta)) draws, batch shape from the parameters (size None)."""
    nu, beta = 9.0, np.array([0.5, 1.5])
    n = 20_000
    draws = gaussian._iw_random(np.full(n, nu), beta, rng=np.random.default_rng(5))
    assert draws.shape == (n, 2, 2)
    ref = stats.invwishart(df=nu, scale=2.0 * np.diag(beta))
    want_mean = ref.mean()  # Psi / (nu - D - 1)
    want_sd = np.sqrt(ref.var())
    np.testing.assert_allclose(draws.mean(axis=0), want_mean, atol=5 * np.max(want_sd) / n**0.5)
    np.testing.assert_allclose(draws.std(axis=0), want_sd, rtol=0.1)


def test_student_t_full_graph_log_likelihood_matches_scipy_multivariate_t():
    """The full-scale Student-t ``CustomDist`` log density (K = 3, D = 2) against SciPy."""
    import pytensor
    import pytensor.tensor as pt
    from scipy.special import logsumexp

    from bayesmix.families import student_t

    rng = np.random.default_rng(6)
    k, d = 3, 2
    X = rng.normal(0, 2, size=(9, d))
    w = np.array([0.2, 0.3, 0.5])
    mu = rng.normal(0, 1, size=(k, d))
    sigma = rng.uniform(0.5, 2.0, size=(k, d))
    nu = np.array([2.5, 7.0, 30.0])
    rho = np.array([-0.6, 0.2, 0.8])
    corr_chol = np.zeros((k, d, d))
    corr_chol[:, 0, 0] = 1.0
    corr_chol[:, 1, 0] = rho
    corr_chol[:, 1, 1] = np.sqrt(1 - rho**2)
    chol = sigma[:, :, None] * corr_chol
    args = [pt.as_tensor(a) for a in (X, w, mu, chol, nu)]
    fn = pytensor.function([], student_t._logp_full(*args), mode="FAST_COMPILE")
    comp = np.empty((X.shape[0], k))
    for j in range(k):
        comp[:, j] = stats.multivariate_t(mu[j], chol[j] @ chol[j].T, df=nu[j]).logpdf(X)
    np.testing.assert_allclose(fn(), logsumexp(np.log(w) + comp, axis=1), rtol=1e-10)


def test_data_moments_unweighted_and_with_integer_weights_are_the_repeated_rows():
    """Mean, sd (ddof 1) and N; integer weights give the moments of the repeated rows."""
    from bayesmix.families._base import data_moments

    rng = np.random.default_rng(7)
    X = rng.normal(3, 2, size=(6, 3))
    mean, sd, n = data_moments(X)
    np.testing.assert_allclose(mean, X.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(sd, X.std(axis=0, ddof=1), rtol=1e-14)
    assert n == 6.0
    weights = np.array([1, 3, 2, 1, 4, 1])
    mean, sd, n = data_moments(X, weights)
    rows = np.repeat(X, weights, axis=0)
    np.testing.assert_allclose(mean, rows.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(sd, rows.std(axis=0, ddof=1), rtol=1e-14)
    assert n == 12.0
    # two rows (total weight 2): still the sample sd, not the fallback of one row
    mean, sd, n = data_moments(X[:2], np.ones(2))
    np.testing.assert_allclose(sd, X[:2].std(axis=0, ddof=1), rtol=1e-14)


def test_data_moments_sd_of_a_constant_column_or_a_single_row_is_one():
    from bayesmix.families._base import data_moments

    X = np.array([[1.0, 5.0], [2.0, 5.0], [4.0, 5.0]])
    for weights in (None, np.array([1.0, 2.0, 1.0])):
        _, sd, _ = data_moments(X, weights)
        assert sd.dtype == np.float64
        assert sd[1] == 1.0
        assert sd[0] > 0 and sd[0] != 1.0
    _, sd, n = data_moments(X[:1])
    np.testing.assert_array_equal(sd, [1.0, 1.0])
    assert n == 1.0
    # frequency weights that total one row: the fallback as for one row (no division by 0)
    _, sd, n = data_moments(X, np.array([0.25, 0.5, 0.25]))
    np.testing.assert_array_equal(sd, [1.0, 1.0])
    assert n == 1.0


def test_per_feature_broadcasts_a_number_and_keeps_a_list():
    from bayesmix.families._base import per_feature

    default = np.array([1, 2, 3])  # integers: the result is float either way
    out = per_feature(None, default, "mu_scale")
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, [1.0, 2.0, 3.0])
    out = per_feature(2.5, default, "mu_scale")
    np.testing.assert_array_equal(out, [2.5, 2.5, 2.5])
    out = per_feature([4, 5, 6], default, "mu_scale")
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, [4.0, 5.0, 6.0])


def test_graph_random_without_size_takes_the_batch_from_the_parameters():
    """``size=None``: one draw per batch element of the parameters (w (B, K), p (B, K, D))."""
    patterns = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]])  # (K, D): p of 0 or 1
    labels = np.array([2, 0, 1, 2])  # the component of each batch element
    w = np.eye(K)[labels]  # (4, K) one-hot
    p = np.broadcast_to(patterns, (4, K, D))
    x = bernoulli._graph_random(w, p, rng=np.random.default_rng(0), size=None)
    np.testing.assert_array_equal(x, patterns[labels])
    x = bernoulli._graph_random(np.eye(K)[1], patterns, rng=np.random.default_rng(0), size=None)
    np.testing.assert_array_equal(x, patterns[1])  # no batch axis: one observation (D,)
