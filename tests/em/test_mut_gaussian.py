"""GaussianMixtureEM behaviour that the mutmut run on bayesmix/em/gaussian.py found untested.

References: the conditional maximiser of the log posterior found by scipy.optimize, SciPy's
half-normal and normal densities (issue 13).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize, stats

from bayesmix.em import GaussianMixtureEM

T = 0.8  # half-normal scale of sigma
REG = 0.3  # large enough that adding or subtracting it is seen


def _data_1d(seed=0):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(-2.0, 0.5, 40), rng.normal(1.5, 1.2, 60)])[:, None]


def _resp(X, seed=1):
    rng = np.random.default_rng(seed)
    r = np.column_stack([1 / (1 + np.exp(2 * X[:, 0])), rng.uniform(0.2, 0.8, len(X))])
    return r / r.sum(axis=1, keepdims=True)


def _halfnormal_map_variance(n, scatter, t):
    """argmax over s of -n log s - S / (2 s^2) - s^2 / (2 t^2), by scipy.optimize."""

    def neg(log_s):
        s = np.exp(log_s)
        return n * log_s + scatter / (2 * s * s) + s * s / (2 * t * t)

    res = optimize.minimize_scalar(
        neg, bounds=(-10, 5), method="bounded", options={"xatol": 1e-10}
    )
    return np.exp(2 * res.x)


@pytest.mark.parametrize("covariance_type", ["diag", "spherical", "full", "tied"])
def test_halfnormal_map_m_step_and_objective_in_one_dimension(covariance_type):
    X = _data_1d()
    resp = _resp(X)
    gm = GaussianMixtureEM(
        2, covariance_type=covariance_type, reg_covar=REG, prior={"sigma_scale": T}
    )
    gm.initialize(X)
    gm.m_step(X, resp)
    nk = resp.sum(axis=0)
    means = (resp * X).sum(axis=0) / nk
    np.testing.assert_allclose(gm.means_[:, 0], means, rtol=1e-10)
    scatter = (resp * (X - means) ** 2).sum(axis=0)
    if covariance_type == "tied":
        expected = _halfnormal_map_variance(nk.sum(), scatter.sum(), T) + REG
        got = float(np.squeeze(gm.covariances_))
    else:
        expected = np.array(
            [_halfnormal_map_variance(n, s, T) for n, s in zip(nk, scatter, strict=True)]
        )
        expected += REG
        got = np.reshape(gm.covariances_, -1)
    np.testing.assert_allclose(got, expected, rtol=1e-6)

    # objective = (sum_n log p(x_n) + log prior) / N, the prior a half-normal on each sigma
    var = np.reshape(gm.covariances_, -1)
    sigma = np.sqrt(var)
    w = gm.weights_
    comp = stats.norm.logpdf(X, gm.means_[:, 0], np.broadcast_to(sigma, (2,)))
    loglik = np.logaddexp(np.log(w[0]) + comp[:, 0], np.log(w[1]) + comp[:, 1]).sum()
    log_prior = stats.halfnorm.logpdf(sigma, scale=T).sum()
    assert gm.objective(X) == pytest.approx((loglik + log_prior) / len(X), rel=1e-10)
