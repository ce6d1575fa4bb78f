"""Numbers of free parameters and the criteria built on them (BIC, AIC, ICL), against the
formulas written out here (and scikit-learn's count for the Gaussian covariance types).

A Bernoulli count off by one changed every BIC/AIC/ICL and no test noticed.
"""

from __future__ import annotations

import math
import warnings
from contextlib import contextmanager

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from sklearn.mixture import GaussianMixture

from bayesmix.em import BernoulliMixtureEM, GaussianMixtureEM


@contextmanager
def _quiet():
    """Silence the convergence warnings of the short fits below."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _formula(covariance_type: str, k: int, d: int) -> int:
    weights, means = k - 1, k * d
    cov = {
        "full": k * d * (d + 1) // 2,
        "tied": d * (d + 1) // 2,
        "diag": k * d,
        "spherical": k,
    }[covariance_type]
    return weights + means + cov


def _gauss_data(d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(size=(60, d)), rng.normal(size=(60, d)) + 5.0])


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
@pytest.mark.parametrize(("k", "d"), [(1, 1), (2, 3), (4, 2), (3, 5)])
def test_gaussian_parameter_count(covariance_type, k, d):
    X = _gauss_data(d)
    gm = GaussianMixtureEM(k, covariance_type=covariance_type, random_state=0, max_iter=5)
    with _quiet():
        gm.fit(X)
    expected = _formula(covariance_type, k, d)
    assert gm._n_parameters() == expected
    sk = GaussianMixture(k, covariance_type=covariance_type, random_state=0, max_iter=5)
    with _quiet():
        sk.fit(X)
    assert sk._n_parameters() == expected


@pytest.mark.parametrize(("k", "d"), [(1, 1), (2, 6), (4, 3)])
def test_bernoulli_parameter_count(k, d):
    rng = np.random.default_rng(1)
    X = (rng.random((80, d)) < 0.4).astype(np.int64)
    bm = BernoulliMixtureEM(k, random_state=0, max_iter=5)
    with _quiet():
        bm.fit(X)
    # K - 1 free weights and one probability per component and feature
    assert bm._n_parameters() == (k - 1) + k * d


def _gauss_loglik(gm, X):
    cov = {
        "full": lambda c: c,
        "tied": lambda c: np.broadcast_to(c, (gm.n_components,) + c.shape),
        "diag": lambda c: np.stack([np.diag(v) for v in c]),
        "spherical": lambda c: c[:, None, None] * np.eye(X.shape[1]),
    }[gm.covariance_type](gm.covariances_)
    comp = np.stack(
        [
            np.log(gm.weights_[j]) + multivariate_normal(gm.means_[j], cov[j]).logpdf(X)
            for j in range(gm.n_components)
        ],
        axis=1,
    )
    return comp


def _criteria(comp, n_params):
    """BIC, AIC and ICL from the (N, K) log joint, in the lower-is-better convention."""
    n = comp.shape[0]
    log_norm = logsumexp(comp, axis=1)
    ll = log_norm.sum()
    resp = np.exp(comp - log_norm[:, None])
    entropy = -np.sum(resp * np.log(np.clip(resp, 1e-300, None)))
    bic = -2 * ll + n_params * math.log(n)
    return bic, -2 * ll + 2 * n_params, bic + 2 * entropy


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_gaussian_criteria_match_the_formulas(covariance_type):
    X = _gauss_data(3)
    gm = GaussianMixtureEM(3, covariance_type=covariance_type, random_state=0).fit(X)
    bic, aic, icl = _criteria(_gauss_loglik(gm, X), _formula(covariance_type, 3, 3))
    assert gm.bic(X) == pytest.approx(bic, rel=1e-9)
    assert gm.aic(X) == pytest.approx(aic, rel=1e-9)
    assert gm.icl(X) == pytest.approx(icl, rel=1e-9)


def test_bernoulli_criteria_match_the_formulas():
    rng = np.random.default_rng(2)
    p = np.array([[0.9, 0.1, 0.8, 0.2, 0.7], [0.1, 0.8, 0.3, 0.9, 0.2]])
    z = rng.integers(2, size=150)
    X = (rng.random((150, 5)) < p[z]).astype(np.int64)
    bm = BernoulliMixtureEM(2, random_state=0).fit(X)
    q = np.clip(bm.means_, 1e-300, 1)
    q1 = np.clip(1 - bm.means_, 1e-300, 1)
    comp = np.log(bm.weights_) + X @ np.log(q).T + (1 - X) @ np.log(q1).T
    bic, aic, icl = _criteria(comp, 2 - 1 + 2 * 5)
    assert bm.bic(X) == pytest.approx(bic, rel=1e-9)
    assert bm.aic(X) == pytest.approx(aic, rel=1e-9)
    assert bm.icl(X) == pytest.approx(icl, rel=1e-9)


def test_select_table_reports_the_formula_counts():
    from bayesmix.results import select_k

    X = _gauss_data(2)
    table = select_k(X, ks=[1, 2], covariance_types=("full", "diag"), n_init=1, random_state=0)
    for _, row in table.iterrows():
        assert row["n_parameters"] == _formula(row["covariance_type"], row["k"], 2)
    rng = np.random.default_rng(3)
    Xb = (rng.random((100, 4)) < 0.4).astype(np.int64)
    tb = select_k(Xb, ks=[2, 3], family="bernoulli", n_init=1, random_state=0)
    for _, row in tb.iterrows():
        assert row["n_parameters"] == (row["k"] - 1) + row["k"] * 4
