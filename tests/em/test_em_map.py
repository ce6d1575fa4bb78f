"""MAP-EM: one M-step against the formulas written out in NumPy, objective against SciPy
densities, and the converged point against a generic optimiser of the same log posterior."""

import warnings

import numpy as np
import pytest
from scipy import optimize, stats
from scipy.special import logsumexp
from sklearn.exceptions import ConvergenceWarning

from bayesmix._validation import ParameterError
from bayesmix.em import BernoulliMixtureEM, GaussianMixtureEM

X_TINY = np.array([[-1.2, 0.3], [-0.8, 0.1], [-1.0, -0.2], [2.1, 1.9], [1.7, 2.4], [2.4, 2.2]])
W0 = np.array([0.4, 0.6])
MU0 = np.array([[-0.5, 0.0], [1.5, 1.5]])
VAR0 = np.array([[0.5, 0.8], [1.2, 0.6]])  # diag variances
ALPHA = np.array([2.0, 3.0])
LOC, SCALE, T = np.array([0.0, 1.0]), np.array([2.0, 3.0]), np.array([1.5, 0.7])
PRIOR = {"weights_alpha": ALPHA, "mu_loc": LOC, "mu_scale": SCALE, "sigma_scale": T}


def _diag_log_joint(X, w, mu, var):
    """(N, K) log w_k + log N(x_n | mu_k, diag var_k), from scipy.stats."""
    return np.stack(
        [
            np.log(w[k]) + stats.norm.logpdf(X, mu[k], np.sqrt(var[k])).sum(axis=1)
            for k in range(len(w))
        ],
        axis=1,
    )


def _diag_log_prior(w, mu, var):
    return (
        stats.dirichlet.logpdf(w, ALPHA)
        + stats.norm.logpdf(mu, LOC, SCALE).sum()
        + stats.halfnorm.logpdf(np.sqrt(var), scale=T).sum()
    )


def _one_step(prior, covariance_type="diag", var0=VAR0):
    gm = GaussianMixtureEM(
        2,
        covariance_type=covariance_type,
        weights_init=W0,
        means_init=MU0,
        precisions_init=1.0 / var0,
        reg_covar=0.0,
        max_iter=1,
        tol=1e-12,
        prior=prior,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return gm.fit(X_TINY)


def test_diag_map_m_step_matches_formulas():
    gm = _one_step(PRIOR)
    # E-step
    log_joint = _diag_log_joint(X_TINY, W0, MU0, VAR0)
    resp = np.exp(log_joint - logsumexp(log_joint, axis=1, keepdims=True))
    n = resp.sum(axis=0)
    # weights: w_k ∝ n_k + alpha_k - 1
    w = (n + ALPHA - 1) / (n + ALPHA - 1).sum()
    # means given the current variances: precision-weighted average of data and prior mean
    sx = resp.T @ X_TINY
    mu = (sx / VAR0 + LOC / SCALE**2) / (n[:, None] / VAR0 + 1 / SCALE**2)
    # variances given the new means: s^2 = (t^2/2)(-n + sqrt(n^2 + 4 S / t^2))
    S = np.stack([(resp[:, k, None] * (X_TINY - mu[k]) ** 2).sum(0) for k in range(2)])
    var = (T**2 / 2) * (-n[:, None] + np.sqrt(n[:, None] ** 2 + 4 * S / T**2))
    np.testing.assert_allclose(gm.weights_, w, rtol=1e-12)
    np.testing.assert_allclose(gm.means_, mu, rtol=1e-12)
    np.testing.assert_allclose(gm.covariances_, var, rtol=1e-10)
    # the tracked objective is the mean log posterior at the starting parameters
    expected = (logsumexp(log_joint, axis=1).sum() + _diag_log_prior(W0, MU0, VAR0)) / 6
    assert gm.lower_bounds_[0] == pytest.approx(expected, rel=1e-12)


def test_spherical_map_m_step_matches_formulas():
    var0 = np.array([0.6, 0.9])
    prior = {"weights_alpha": ALPHA, "mu_loc": LOC, "mu_scale": SCALE, "sigma_scale": 1.1}
    gm = _one_step(prior, "spherical", var0)
    log_joint = _diag_log_joint(X_TINY, W0, MU0, np.repeat(var0[:, None], 2, 1))
    resp = np.exp(log_joint - logsumexp(log_joint, axis=1, keepdims=True))
    n = resp.sum(axis=0)
    sx = resp.T @ X_TINY
    mu = (sx / var0[:, None] + LOC / SCALE**2) / (n[:, None] / var0[:, None] + 1 / SCALE**2)
    S = np.array([(resp[:, k, None] * (X_TINY - mu[k]) ** 2).sum() for k in range(2)])
    nd, t = 2 * n, 1.1
    var = (t**2 / 2) * (-nd + np.sqrt(nd**2 + 4 * S / t**2))
    np.testing.assert_allclose(gm.means_, mu, rtol=1e-12)
    np.testing.assert_allclose(gm.covariances_, var, rtol=1e-10)


def test_full_map_m_step_matches_formulas():
    cov0 = np.array([[[0.5, 0.1], [0.1, 0.8]], [[1.2, -0.3], [-0.3, 0.6]]])
    psi, dof = np.array([[0.4, 0.05], [0.05, 0.3]]), 4.0
    prior = {
        "weights_alpha": ALPHA,
        "mu_loc": LOC,
        "mu_scale": SCALE,
        "cov_prior_dof": dof,
        "cov_prior_scale": psi,
    }
    gm = GaussianMixtureEM(
        2,
        weights_init=W0,
        means_init=MU0,
        precisions_init=np.linalg.inv(cov0),
        reg_covar=0.0,
        max_iter=1,
        tol=1e-12,
        prior=prior,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm.fit(X_TINY)
    log_joint = np.stack(
        [
            np.log(W0[k]) + stats.multivariate_normal(MU0[k], cov0[k]).logpdf(X_TINY)
            for k in range(2)
        ],
        axis=1,
    )
    resp = np.exp(log_joint - logsumexp(log_joint, axis=1, keepdims=True))
    n = resp.sum(axis=0)
    prec0 = np.linalg.inv(cov0)
    s0inv = np.diag(1 / SCALE**2)
    mu = np.stack(
        [
            np.linalg.solve(
                n[k] * prec0[k] + s0inv, prec0[k] @ (resp[:, k] @ X_TINY) + s0inv @ LOC
            )
            for k in range(2)
        ]
    )
    cov = np.stack(
        [
            (psi + (resp[:, k, None] * (X_TINY - mu[k])).T @ (X_TINY - mu[k]))
            / (n[k] + dof + 2 + 1)
            for k in range(2)
        ]
    )
    np.testing.assert_allclose(gm.weights_, (n + ALPHA - 1) / (n + ALPHA - 1).sum(), rtol=1e-12)
    np.testing.assert_allclose(gm.means_, mu, rtol=1e-10)
    np.testing.assert_allclose(gm.covariances_, cov, rtol=1e-10)
    log_prior = (
        stats.dirichlet.logpdf(W0, ALPHA)
        + stats.norm.logpdf(MU0, LOC, SCALE).sum()
        + sum(stats.invwishart.logpdf(c, df=dof, scale=psi) for c in cov0)
    )
    expected = (logsumexp(log_joint, axis=1).sum() + log_prior) / 6
    assert gm.lower_bounds_[0] == pytest.approx(expected, rel=1e-12)


def test_diag_map_is_a_stationary_point_of_the_log_posterior():
    """At convergence no generic optimiser improves the same log posterior (no Jacobian)."""
    rng = np.random.default_rng(5)
    X = np.concatenate([rng.normal(-1, 0.6, (40, 2)), rng.normal(1.5, 0.9, (60, 2))])
    gm = GaussianMixtureEM(
        2,
        covariance_type="diag",
        reg_covar=0.0,
        tol=1e-14,
        max_iter=5000,
        prior=PRIOR,
        random_state=0,
    ).fit(X)

    def neg_log_post(theta):
        w = np.exp(theta[:2] - logsumexp(theta[:2]))
        mu = theta[2:6].reshape(2, 2)
        var = np.exp(2 * theta[6:]).reshape(2, 2)
        return -(
            logsumexp(_diag_log_joint(X, w, mu, var), axis=1).sum() + _diag_log_prior(w, mu, var)
        )

    theta0 = np.concatenate(
        [np.log(gm.weights_), gm.means_.ravel(), 0.5 * np.log(gm.covariances_.ravel())]
    )
    res = optimize.minimize(neg_log_post, theta0, method="BFGS", options={"gtol": 1e-10})
    assert neg_log_post(theta0) - res.fun < 1e-8
    np.testing.assert_allclose(res.x[2:6], theta0[2:6], atol=1e-4)
    assert gm.lower_bound_ == pytest.approx(-neg_log_post(theta0) / len(X), rel=1e-10)
    assert gm.objective(X) == pytest.approx(-neg_log_post(theta0) / len(X), rel=1e-12)


def test_bernoulli_map_m_step_matches_formulas():
    X = np.array([[1, 0, 1], [1, 1, 1], [0, 0, 1], [0, 1, 0], [1, 0, 0]])
    prior = {"weights_alpha": 2.0, "beta_a": 2.0, "beta_b": 3.0}
    bm = BernoulliMixtureEM(2, max_iter=1, tol=1e-12, prior=prior, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        bm.fit(X)
    # redo the same run by hand: random initial responsibilities, M-step, E-step, M-step
    resp = np.random.default_rng(0).uniform(size=(5, 2))
    resp /= resp.sum(1, keepdims=True)

    def m_step(resp):
        n = resp.sum(0)
        w = (n + 1) / (n + 1).sum()
        p = (resp.T @ X + 1) / (n[:, None] + 3)
        return w, p

    w, p = m_step(resp)
    log_joint = np.log(w) + X @ np.log(p).T + (1 - X) @ np.log1p(-p).T
    resp = np.exp(log_joint - logsumexp(log_joint, axis=1, keepdims=True))
    w1, p1 = m_step(resp)
    np.testing.assert_allclose(bm.weights_, w1, rtol=1e-12)
    np.testing.assert_allclose(bm.means_, p1, rtol=1e-12)
    log_prior = stats.dirichlet.logpdf(w, [2, 2]) + stats.beta.logpdf(p, 2, 3).sum()
    assert bm.lower_bounds_[0] == pytest.approx(
        (logsumexp(log_joint, axis=1).sum() + log_prior) / 5, rel=1e-12
    )


def test_sigma_scale_rejected_for_full_covariance():
    X = np.random.default_rng(0).normal(size=(30, 2))
    with pytest.raises(ParameterError, match="weights_alpha.*cov_prior_scale"):
        GaussianMixtureEM(2, prior={"sigma_scale": [1.0, 1.0]}).fit(X)
    with pytest.raises(ParameterError, match="unknown prior key"):
        GaussianMixtureEM(2, prior={"sigma": 1.0}).fit(X)


def test_one_dimensional_full_accepts_sigma_scale():
    """For 1-D data, full == diag, and sigma_scale gives the same MAP for both."""
    rng = np.random.default_rng(1)
    X = np.concatenate([rng.normal(-2, 1, 50), rng.normal(2, 0.5, 50)])[:, None]
    prior = {"weights_alpha": 2.0, "mu_scale": 3.0, "sigma_scale": 1.0}
    kw = {"reg_covar": 0.0, "tol": 1e-12, "max_iter": 2000, "prior": prior, "random_state": 0}
    full = GaussianMixtureEM(2, covariance_type="full", **kw).fit(X)
    diag = GaussianMixtureEM(2, covariance_type="diag", **kw).fit(X)
    np.testing.assert_allclose(full.means_, diag.means_, rtol=1e-8)
    np.testing.assert_allclose(full.covariances_.ravel(), diag.covariances_.ravel(), rtol=1e-8)
    assert full.lower_bound_ == pytest.approx(diag.lower_bound_, rel=1e-12)
