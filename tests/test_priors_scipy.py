"""The priors of the PyMC graphs against SciPy log densities, for every covariance structure:
full (LKJ on the correlations and HalfNormal on the scales), spherical (one HalfNormal scale
per component), 1-D, and Bernoulli (Beta).

Only the diagonal prior was checked before; an LKJ shape halved in the graph went unnoticed.
The LKJ density is written out here from Lewandowski, Kurowicka & Joe (2009): on correlation
matrices ``p(C) = det(C)^(eta - 1) / c_D(eta)``; for D = 2 it is SciPy's Beta(eta, eta) on
``(r + 1) / 2``. PyMC's variable is the Cholesky factor L of C, whose density carries the
Jacobian of L -> C, computed here by finite differences.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import betaln
from scipy.stats import beta, dirichlet, halfnorm, norm

from bayesmix.config import ModelSpec, PriorSpec
from bayesmix.graphs import build_model

MODE = "FAST_COMPILE"


def _data(d, n=40, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) * np.linspace(0.5, 3.0, d) + np.arange(d)


def _random_point(model, seed):
    rng = np.random.default_rng(seed)
    ip = model.initial_point(0)
    return {k: v + rng.normal(0.0, 0.5, np.shape(v)) for k, v in ip.items()}


def _values(model, point, names):
    fn = model.compile_fn(model.replace_rvs_by_values([model[n] for n in names]), mode=MODE)
    return dict(zip(names, fn(point), strict=True))


def _prior_logp(model, point, names):
    free = [model[n] for n in names]
    return model.compile_fn(model.logp(vars=free, jacobian=False), mode=MODE)(point)


def _lkj_log_norm(eta: float, d: int) -> float:
    """log c_D(eta), LKJ (2009) eq. 16."""
    total = 0.0
    for k in range(1, d):
        b = eta + (d - k - 1) / 2.0
        total += (2 * eta - 2 + d - k) * (d - k) * np.log(2.0) + (d - k) * betaln(b, b)
    return total


def _lkj_logpdf_corr(c: np.ndarray, eta: float) -> float:
    d = c.shape[0]
    return (eta - 1) * np.linalg.slogdet(c)[1] - _lkj_log_norm(eta, d)


def _chol_from_free(v: np.ndarray, d: int) -> np.ndarray:
    """Unit-row lower Cholesky factor from its strictly-lower entries (row by row)."""
    L = np.zeros((d, d))
    L[np.tril_indices(d, -1)] = v
    L[np.diag_indices(d)] = np.sqrt(1.0 - (L**2).sum(axis=1))
    return L


def _log_jacobian(L: np.ndarray) -> float:
    """log |d C_lower / d L_lower| for C = L L^T, by central differences."""
    d = L.shape[0]
    idx = np.tril_indices(d, -1)
    v0 = L[idx]
    h = 1e-6
    jac = np.empty((v0.size, v0.size))
    for i in range(v0.size):
        up, dn = v0.copy(), v0.copy()
        up[i] += h
        dn[i] -= h
        cu = _chol_from_free(up, d) @ _chol_from_free(up, d).T
        cd = _chol_from_free(dn, d) @ _chol_from_free(dn, d).T
        jac[:, i] = (cu[idx] - cd[idx]) / (2 * h)
    return float(np.linalg.slogdet(jac)[1])


def test_lkj_density_is_scipy_beta_for_two_features():
    # the reference itself: for D = 2, r = 2u - 1 with u ~ Beta(eta, eta)
    for eta in (0.6, 1.0, 2.0, 4.5):
        for r in (-0.8, 0.1, 0.55):
            c = np.array([[1.0, r], [r, 1.0]])
            ref = beta(eta, eta).logpdf((r + 1) / 2) - np.log(2.0)
            assert _lkj_logpdf_corr(c, eta) == pytest.approx(ref, rel=1e-10)


@pytest.mark.parametrize("eta", [0.7, 2.0, 3.5])
@pytest.mark.parametrize("d", [2, 3])
def test_full_prior_matches_scipy(d, eta):
    X = _data(d)
    pri = PriorSpec(
        weights_alpha=(1.5, 2.0, 3.0),
        mu_loc=tuple(np.linspace(-1, 1, d)),
        mu_scale=tuple(np.linspace(2, 4, d)),
        sigma_scale=tuple(np.linspace(0.5, 1.5, d)),
        lkj_eta=eta,
    )
    spec = ModelSpec("gaussian", 3, "full", priors=pri)
    m = build_model(spec, X)
    names = ["w", "mu", "sigma", "corr_chol"]
    for seed in range(3):
        point = _random_point(m, seed)
        v = _values(m, point, names + ["corr", "cov"])
        ref = dirichlet([1.5, 2.0, 3.0]).logpdf(v["w"])
        ref += norm.logpdf(v["mu"], np.linspace(-1, 1, d), np.linspace(2, 4, d)).sum()
        ref += halfnorm.logpdf(v["sigma"], scale=np.linspace(0.5, 1.5, d)).sum()
        for L in v["corr_chol"]:
            ref += _lkj_logpdf_corr(L @ L.T, eta) + _log_jacobian(L)
        np.testing.assert_allclose(_prior_logp(m, point, names), ref, rtol=1e-7)
        # sigma and corr describe cov
        sd = np.sqrt(np.diagonal(v["cov"], axis1=-2, axis2=-1))
        np.testing.assert_allclose(sd, v["sigma"], rtol=1e-10)
        np.testing.assert_allclose(v["cov"], v["corr"] * sd[:, :, None] * sd[:, None, :])


def test_spherical_prior_matches_scipy_with_explicit_and_data_scaled_scale():
    X = _data(3)
    for sigma_scale, expected in ((1.7, 1.7), (None, np.sqrt(np.mean(X.std(0, ddof=1) ** 2)))):
        spec = ModelSpec(
            "gaussian",
            2,
            "spherical",
            priors=PriorSpec(weights_alpha=2.0, sigma_scale=sigma_scale),
        )
        m = build_model(spec, X)
        names = ["w", "mu", "sigma_spherical"]
        point = _random_point(m, 4)
        v = _values(m, point, names + ["sigma"])
        ref = (
            dirichlet([2.0, 2.0]).logpdf(v["w"])
            + norm.logpdf(v["mu"], X.mean(0), 2 * X.std(0, ddof=1)).sum()
            + halfnorm.logpdf(v["sigma_spherical"], scale=expected).sum()
        )
        np.testing.assert_allclose(_prior_logp(m, point, names), ref, rtol=1e-9)
        np.testing.assert_array_equal(v["sigma"], np.repeat(v["sigma_spherical"][:, None], 3, 1))


def test_one_dimensional_prior_matches_scipy():
    X = _data(1)
    spec = ModelSpec("gaussian", 3, "full", priors=PriorSpec(sigma_scale=0.8, mu_scale=5.0))
    m = build_model(spec, X)
    assert "corr_chol" not in m.named_vars  # 1-D data: no correlations
    names = ["w", "mu", "sigma"]
    point = _random_point(m, 5)
    v = _values(m, point, names)
    ref = (
        dirichlet([1.0, 1.0, 1.0]).logpdf(v["w"])
        + norm.logpdf(v["mu"], X.mean(0), 5.0).sum()
        + halfnorm.logpdf(v["sigma"], scale=0.8).sum()
    )
    np.testing.assert_allclose(_prior_logp(m, point, names), ref, rtol=1e-9)


@pytest.mark.parametrize(("a", "b"), [(1.0, 1.0), (0.5, 0.5), (2.0, 5.0)])
def test_bernoulli_beta_prior_matches_scipy(a, b):
    rng = np.random.default_rng(6)
    X = (rng.random((30, 4)) < 0.4).astype(np.int64)
    spec = ModelSpec("bernoulli", 3, priors=PriorSpec(weights_alpha=1.2, beta_a=a, beta_b=b))
    m = build_model(spec, X)
    names = ["w", "p"]
    point = _random_point(m, 7)
    v = _values(m, point, names)
    ref = dirichlet([1.2] * 3).logpdf(v["w"]) + beta(a, b).logpdf(v["p"]).sum()
    np.testing.assert_allclose(_prior_logp(m, point, names), ref, rtol=1e-9)


def test_em_map_priors_match_scipy():
    # the EM engine's log prior (MAP-EM objective) for Bernoulli Beta and diag HalfNormal
    from bayesmix.em import BernoulliMixtureEM, GaussianMixtureEM

    rng = np.random.default_rng(8)
    Xb = (rng.random((60, 4)) < 0.4).astype(np.int64)
    prior = {"weights_alpha": np.array([2.0, 3.0]), "beta_a": 2.0, "beta_b": 3.0}
    bm = BernoulliMixtureEM(2, prior=prior, random_state=0).fit(Xb)
    ref = dirichlet([2.0, 3.0]).logpdf(bm.weights_) + beta(2.0, 3.0).logpdf(bm.means_).sum()
    assert bm._log_prior() == pytest.approx(ref, rel=1e-10)
    Xg = _data(2, n=60)
    gp = {
        "weights_alpha": np.array([2.0, 2.0]),
        "mu_loc": np.zeros(2),
        "mu_scale": np.array([3.0, 4.0]),
        "sigma_scale": np.array([1.0, 2.0]),
    }
    gm = GaussianMixtureEM(2, covariance_type="diag", prior=gp, random_state=0).fit(Xg)
    ref = (
        dirichlet([2.0, 2.0]).logpdf(gm.weights_)
        + norm.logpdf(gm.means_, 0.0, [3.0, 4.0]).sum()
        + halfnorm.logpdf(np.sqrt(gm.covariances_), scale=[1.0, 2.0]).sum()
    )
    assert gm._log_prior() == pytest.approx(ref, rel=1e-10)
