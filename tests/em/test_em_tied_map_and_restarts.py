"""Two EM formulas that were caught only sometimes (issue 13):

* the tied MAP-EM covariance update ``(Psi + sum_k S_k) / (N + nu + D + 1)`` (an
  off-by-one denominator was caught by the hypothesis tests in 2 of 5 runs): one M-step
  against the formula written out in NumPy, every time;
* ``n_init`` keeps the best restart: the kept objective is the largest of the restarts'
  objectives, which ``verbose=1`` prints one by one.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp
from sklearn.exceptions import ConvergenceWarning

from bayesmix.em import BernoulliMixtureEM, GaussianMixtureEM

X_TINY = np.array([[-1.2, 0.3], [-0.8, 0.1], [-1.0, -0.2], [2.1, 1.9], [1.7, 2.4], [2.4, 2.2]])
W0 = np.array([0.4, 0.6])
MU0 = np.array([[-0.5, 0.0], [1.5, 1.5]])
ALPHA = np.array([2.0, 3.0])
LOC, SCALE = np.array([0.0, 1.0]), np.array([2.0, 3.0])


@pytest.mark.parametrize("with_mean_prior", [True, False])
def test_tied_map_m_step_matches_formulas(with_mean_prior):
    cov0 = np.array([[0.7, 0.2], [0.2, 0.9]])
    psi, dof = np.array([[0.4, 0.05], [0.05, 0.3]]), 4.0
    prior = {"weights_alpha": ALPHA, "cov_prior_dof": dof, "cov_prior_scale": psi}
    if with_mean_prior:
        prior.update(mu_loc=LOC, mu_scale=SCALE)
    gm = GaussianMixtureEM(
        2,
        covariance_type="tied",
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
    n_obs, d = X_TINY.shape
    log_joint = np.stack(
        [np.log(W0[k]) + stats.multivariate_normal(MU0[k], cov0).logpdf(X_TINY) for k in range(2)],
        axis=1,
    )
    resp = np.exp(log_joint - logsumexp(log_joint, axis=1, keepdims=True))
    n = resp.sum(axis=0)
    prec0 = np.linalg.inv(cov0)
    if with_mean_prior:
        s0inv = np.diag(1 / SCALE**2)
        mu = np.stack(
            [
                np.linalg.solve(n[k] * prec0 + s0inv, prec0 @ (resp[:, k] @ X_TINY) + s0inv @ LOC)
                for k in range(2)
            ]
        )
    else:
        mu = (resp.T @ X_TINY) / n[:, None]
    scatter = sum((resp[:, k, None] * (X_TINY - mu[k])).T @ (X_TINY - mu[k]) for k in range(2))
    # one inverse-Wishart prior on the one shared matrix: the mode of its conditional
    # posterior is (Psi + S) / (N + nu + D + 1), N = 6, D = 2
    cov = (psi + scatter) / (n_obs + dof + d + 1)
    np.testing.assert_allclose(gm.weights_, (n + ALPHA - 1) / (n + ALPHA - 1).sum(), rtol=1e-12)
    np.testing.assert_allclose(gm.means_, mu, rtol=1e-10)
    np.testing.assert_allclose(gm.covariances_, cov, rtol=1e-10)
    log_prior = stats.dirichlet.logpdf(W0, ALPHA) + stats.invwishart.logpdf(
        cov0, df=dof, scale=psi
    )
    if with_mean_prior:
        log_prior += stats.norm.logpdf(MU0, LOC, SCALE).sum()
    expected = (logsumexp(log_joint, axis=1).sum() + log_prior) / n_obs
    assert gm.lower_bounds_[0] == pytest.approx(expected, rel=1e-12)


def test_tied_map_fixed_point_is_the_formula():
    # at convergence the tied covariance is (Psi + S) / (N + nu + D + 1) at the final
    # responsibilities and means (a many-point check of the same formula)
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(size=(80, 3)), rng.normal(size=(70, 3)) + [4.0, 0.0, 2.0]])
    psi, dof = 0.5 * np.eye(3), 5.0
    prior = {"cov_prior_dof": dof, "cov_prior_scale": psi}
    gm = GaussianMixtureEM(
        2, covariance_type="tied", prior=prior, reg_covar=0.0, tol=1e-13, max_iter=5000
    )
    gm.fit(X)
    resp = gm.predict_proba(X)
    scatter = sum((resp[:, k, None] * (X - gm.means_[k])).T @ (X - gm.means_[k]) for k in range(2))
    np.testing.assert_allclose(
        gm.covariances_, (psi + scatter) / (len(X) + dof + 3 + 1), rtol=1e-6, atol=1e-6
    )


_OBJECTIVE = re.compile(r"Initialization \d+ converged: \S+\s+time \S+\s+objective (\S+)")


def _restart_objectives(out: str) -> np.ndarray:
    return np.array([float(v) for v in _OBJECTIVE.findall(out)])


@pytest.mark.parametrize("family", ["gaussian", "bernoulli"])
def test_n_init_keeps_the_best_restart(family, capsys):
    rng = np.random.default_rng(3)
    if family == "gaussian":
        centres = rng.normal(0, 3, size=(8, 2))
        X = centres[rng.integers(8, size=400)] + rng.normal(0, 0.8, size=(400, 2))
        est = GaussianMixtureEM(6, n_init=8, random_state=5, verbose=1, max_iter=300)
    else:
        p = rng.random((6, 10))
        X = (rng.random((300, 10)) < p[rng.integers(6, size=300)]).astype(np.int64)
        est = BernoulliMixtureEM(5, n_init=8, random_state=5, verbose=1, max_iter=300)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X)
    objectives = _restart_objectives(capsys.readouterr().out)
    assert len(objectives) == 8
    assert objectives.max() - objectives.min() > 1e-3  # the restarts reach different optima
    assert est.lower_bound_ == pytest.approx(objectives.max(), rel=1e-9)
    # the kept parameters are those of the best restart (its objective is that of the
    # parameters before the last M-step: close to, not equal to, the final score)
    assert abs(est.score(X) - objectives.max()) < 0.5 * (objectives.max() - objectives.min())
