"""EM with values missing at random (``missing="model"``) reaches a stationary point.

For each case: a data set with a fraction of its entries set to NaN at random (seed fixed,
no row with every value missing), an EM fit with a tight tolerance, then SciPy's L-BFGS-B
started FROM EM's answer on an unconstrained parametrisation of the observed-data
log-likelihood, which is computed independently with ``scipy.stats`` on the observed
coordinates of each row. At a stationary point SciPy cannot improve it: the relative
improvement ``(best - EM) / |EM|`` should be at the level of the tolerances (< 1e-6).

Cases (``CASES``): Old Faithful with 15 % removed (K = 2) and a simulated 4-D mixture with
30 % removed (K = 3), each with full and diagonal covariances; a Bernoulli mixture (8 items,
K = 3, 25 % removed), a Poisson mixture (3 counts, K = 2, 20 % removed) and a simulated 3-D
Student-t mixture (K = 2, 20 % removed; full and diagonal scales, degrees of freedom estimated
by ECME or fixed, against ``scipy.stats.multivariate_t``). To add a case (another
family), append a :class:`Case` with its data, its estimator, the map from the fitted
estimator to the unconstrained vector (``pack``) and the SciPy log-likelihood of that vector
(``loglik``); the test version is ``tests/em/test_em_missing_gaussian.py``.

Usage::

    uv run python validation/missing_em.py

Prints one line per case and writes ``validation/results/missing_em.csv``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, stats
from scipy.special import logsumexp, softmax

from bayesmix.data import load_old_faithful, remove_at_random
from bayesmix.em import (
    BernoulliMixtureEM,
    GaussianMixtureEM,
    PoissonMixtureEM,
    StudentTMixtureEM,
)

RESULTS = Path(__file__).parent / "results"
EM_SETTINGS = {"tol": 1e-10, "max_iter": 20_000, "random_state": 0}


@dataclass(frozen=True)
class Case:
    """One validation case: data with NaN, an estimator, and SciPy's view of its answer."""

    name: str
    family: str
    data: Callable[[], np.ndarray]  # X (N, D) with NaN entries
    estimator: Callable[[], Any]  # an unfitted estimator with missing="model"
    pack: Callable[[Any], np.ndarray]  # fitted estimator -> unconstrained vector
    loglik: Callable[[np.ndarray, np.ndarray], float]  # (vector, X) -> log-likelihood


# ---------------------------------------------------------------------------- Gaussian
def simulated_4d(n: int = 600, seed: int = 1) -> np.ndarray:
    """Three clusters in 4-D with random full covariances."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0, 0.0, 0.0], [4.0, 1.0, -2.0, 3.0], [-3.0, 4.0, 2.0, -1.0]])
    rows = []
    for c in centres:
        a = rng.normal(size=(4, 4))
        rows.append(rng.multivariate_normal(c, a @ a.T / 4.0 + 0.3 * np.eye(4), n // 3))
    return np.concatenate(rows)


def _gaussian_covariances(em) -> np.ndarray:
    """(K, D, D) covariance matrices of a full or diag fit."""
    cov = np.asarray(em.covariances_)
    return cov if em.covariance_type == "full" else np.stack([np.diag(v) for v in cov])


def gaussian_pack(em) -> np.ndarray:
    """Log weights (softmax), means, Cholesky factors with log diagonal (diag: log sds)."""
    parts = [np.log(em.weights_), np.ravel(em.means_)]
    for c in _gaussian_covariances(em):
        low = np.linalg.cholesky(c)
        if em.covariance_type == "full":
            low[np.diag_indices_from(low)] = np.log(np.diag(low))
            parts.append(low[np.tril_indices_from(low)])
        else:
            parts.append(np.log(np.diag(low)))
    return np.concatenate(parts)


def gaussian_loglik(k: int, d: int, covariance_type: str) -> Callable:
    """The observed-data log-likelihood of :func:`gaussian_pack`'s vector, by scipy.stats."""
    tril = np.tril_indices(d)

    def loglik(theta: np.ndarray, X: np.ndarray) -> float:
        weights = softmax(theta[:k])
        means = theta[k : k + k * d].reshape(k, d)
        rest = theta[k + k * d :]
        covs = []
        for j in range(k):
            if covariance_type == "full":
                m = len(tril[0])
                low = np.zeros((d, d))
                low[tril] = rest[j * m : (j + 1) * m]
                low[np.diag_indices(d)] = np.exp(np.diag(low))
                covs.append(low @ low.T)
            else:
                covs.append(np.diag(np.exp(2.0 * rest[j * d : (j + 1) * d])))
        observed = ~np.isnan(X)
        total = 0.0
        for pattern in np.unique(observed, axis=0):
            rows = (observed == pattern).all(axis=1)
            xo = X[rows][:, pattern]
            comp = [
                np.log(weights[j])
                + np.reshape(
                    stats.multivariate_normal(
                        means[j][pattern], covs[j][np.ix_(pattern, pattern)]
                    ).logpdf(xo),
                    -1,
                )
                for j in range(k)
            ]
            total += float(logsumexp(np.stack(comp, axis=1), axis=1).sum())
        return total

    return loglik


def gaussian_case(name: str, data: Callable, k: int, d: int, covariance_type: str) -> Case:
    """A Gaussian mixture case: ML fit (``reg_covar=0``) of K components to ``data()``."""

    def estimator():
        return GaussianMixtureEM(
            k, covariance_type=covariance_type, missing="model", reg_covar=0.0, **EM_SETTINGS
        )

    return Case(
        name, "gaussian", data, estimator, gaussian_pack, gaussian_loglik(k, d, covariance_type)
    )


def old_faithful_15() -> np.ndarray:
    """Old Faithful (272, 2) with 15 % of its entries NaN."""
    X = load_old_faithful()[["eruptions", "waiting"]].to_numpy(dtype=np.float64)
    return remove_at_random(X, 0.15, random_state=0)


def simulated_4d_30() -> np.ndarray:
    """The simulated 4-D data (600, 4) with 30 % of its entries NaN."""
    return remove_at_random(simulated_4d(), 0.30, random_state=5)


# ---------------------------------------------------------------------------- independent items
def _independent_loglik(k: int, d: int, logpmf: Callable, unpack: Callable) -> Callable:
    """sum_n log sum_k w_k prod_{d observed} f(x_nd | theta_kd), by scipy.stats' ``logpmf``."""

    def loglik(theta: np.ndarray, X: np.ndarray) -> float:
        weights, params = softmax(theta[:k]), unpack(theta[k:])
        observed = ~np.isnan(X)
        x0 = np.where(observed, X, 0.0)
        comp = np.stack(
            [np.where(observed, logpmf(x0, params[j]), 0.0).sum(axis=1) for j in range(k)], axis=1
        )
        return float(logsumexp(comp + np.log(weights), axis=1).sum())

    return loglik


def bernoulli_data() -> np.ndarray:
    """600 rows of 8 binary items from 3 latent classes, 25 % of the entries NaN."""
    rng = np.random.default_rng(11)
    p = np.array([np.linspace(0.1, 0.5, 8), np.linspace(0.9, 0.4, 8), np.tile([0.2, 0.8], 4)])
    z = rng.integers(0, 3, 600)
    return remove_at_random(
        (rng.uniform(size=(600, 8)) < p[z]).astype(float), 0.25, random_state=2
    )


def poisson_data() -> np.ndarray:
    """500 rows of 3 counts from 2 components, 20 % of the entries NaN."""
    rng = np.random.default_rng(12)
    rate = np.array([[1.5, 3.0, 0.7], [7.0, 4.0, 6.0]])
    z = rng.integers(0, 2, 500)
    return remove_at_random(rng.poisson(rate[z]).astype(float), 0.20, random_state=3)


def _bernoulli_case() -> Case:
    from scipy.special import expit

    k, d = 3, 8

    def estimator():
        return BernoulliMixtureEM(k, smoothing=0.0, missing="model", **EM_SETTINGS)

    def pack(em):
        p = np.clip(em.means_, 1e-12, 1 - 1e-12)
        return np.r_[np.log(em.weights_), np.log(p / (1 - p)).ravel()]

    loglik = _independent_loglik(k, d, stats.bernoulli.logpmf, lambda t: expit(t).reshape(k, d))
    return Case("bernoulli_k3_25pct", "bernoulli", bernoulli_data, estimator, pack, loglik)


def _poisson_case() -> Case:
    k, d = 2, 3

    def estimator():
        return PoissonMixtureEM(k, missing="model", **EM_SETTINGS)

    def pack(em):
        return np.r_[np.log(em.weights_), np.log(em.means_).ravel()]

    loglik = _independent_loglik(k, d, stats.poisson.logpmf, lambda t: np.exp(t).reshape(k, d))
    return Case("poisson_k2_20pct", "poisson", poisson_data, estimator, pack, loglik)


# ---------------------------------------------------------------------------- Student-t
def student_t_data() -> np.ndarray:
    """600 rows of a 3-D mixture of two multivariate t (nu = 4 and 8), 20 % of entries NaN."""
    rng = np.random.default_rng(13)
    mu = np.array([[0.0, 0.0, 0.0], [3.5, 2.0, -1.5]])
    scale = np.array(
        [
            [[1.0, 0.5, 0.2], [0.5, 1.5, -0.4], [0.2, -0.4, 0.8]],
            [[0.7, -0.3, 0.1], [-0.3, 1.0, 0.4], [0.1, 0.4, 1.2]],
        ]
    )
    nu = np.array([4.0, 8.0])
    z = rng.integers(0, 2, 600)
    u = rng.gamma(nu[z] / 2, 2 / nu[z])
    eps = np.einsum("nij,nj->ni", np.linalg.cholesky(scale[z]), rng.normal(size=(600, 3)))
    return remove_at_random(mu[z] + eps / np.sqrt(u)[:, None], 0.20, random_state=4)


def student_t_case(name: str, covariance_type: str, dof: float | None) -> Case:
    """An ML fit (``reg_covar=0``, ECME) of K = 2 to :func:`student_t_data`.

    The vector: log weights (softmax), locations, Cholesky factors of the scale matrices with
    log diagonal (diag: log sds), then log nu when estimated; its log-likelihood sums
    ``scipy.stats.multivariate_t`` over each row's observed block.
    """
    k, d = 2, 3
    tril = np.tril_indices(d)
    m = len(tril[0]) if covariance_type == "full" else d

    def estimator():
        return StudentTMixtureEM(
            k,
            covariance_type=covariance_type,
            dof=dof,
            missing="model",
            reg_covar=0.0,
            **EM_SETTINGS,
        )

    def pack(em) -> np.ndarray:
        theta = gaussian_pack(em)  # the scale matrices in the covariances' layout
        return theta if dof is not None else np.r_[theta, np.log(em.dofs_)]

    def loglik(theta: np.ndarray, X: np.ndarray) -> float:
        weights = softmax(theta[:k])
        means = theta[k : k + k * d].reshape(k, d)
        rest = theta[k + k * d :]
        scales = []
        for j in range(k):
            block = rest[j * m : (j + 1) * m]
            if covariance_type == "full":
                low = np.zeros((d, d))
                low[tril] = block
                low[np.diag_indices(d)] = np.exp(np.diag(low))
                scales.append(low @ low.T)
            else:
                scales.append(np.diag(np.exp(2.0 * block)))
        nus = np.exp(rest[k * m :]) if dof is None else np.full(k, dof)
        observed = ~np.isnan(X)
        total = 0.0
        for pattern in np.unique(observed, axis=0):
            rows = (observed == pattern).all(axis=1)
            xo = X[rows][:, pattern]
            comp = [
                np.log(weights[j])
                + np.reshape(
                    stats.multivariate_t(
                        means[j][pattern], scales[j][np.ix_(pattern, pattern)], df=nus[j]
                    ).logpdf(xo),
                    -1,
                )
                for j in range(k)
            ]
            total += float(logsumexp(np.stack(comp, axis=1), axis=1).sum())
        return total

    return Case(name, "student_t", student_t_data, estimator, pack, loglik)


CASES: list[Case] = [
    gaussian_case("old_faithful_15pct_full", old_faithful_15, 2, 2, "full"),
    gaussian_case("old_faithful_15pct_diag", old_faithful_15, 2, 2, "diag"),
    gaussian_case("sim4d_k3_30pct_full", simulated_4d_30, 3, 4, "full"),
    gaussian_case("sim4d_k3_30pct_diag", simulated_4d_30, 3, 4, "diag"),
    _bernoulli_case(),
    _poisson_case(),
    student_t_case("student_t_k2_20pct_full", "full", None),
    student_t_case("student_t_k2_20pct_diag", "diag", None),
    student_t_case("student_t_k2_20pct_full_dof5", "full", 5.0),
    student_t_case("student_t_k2_20pct_diag_dof5", "diag", 5.0),
]


# ---------------------------------------------------------------------------- run
def run_case(case: Case) -> dict:
    """Fit EM, then let SciPy try to improve its log-likelihood; one row of the table."""
    X = case.data()
    start = time.perf_counter()
    est = case.estimator().fit(X)
    em_seconds = time.perf_counter() - start
    theta = case.pack(est)
    em_value = case.loglik(theta, X)
    start = time.perf_counter()
    res = optimize.minimize(lambda t: -case.loglik(t, X), theta, method="L-BFGS-B")
    scipy_seconds = time.perf_counter() - start
    best = max(-float(res.fun), em_value)
    return {
        "case": case.name,
        "family": case.family,
        "n": X.shape[0],
        "d": X.shape[1],
        "k": est.n_components,
        "missing_fraction": float(np.isnan(X).mean()),
        "em_loglik": em_value,
        "em_loglik_own": float(est.lower_bound_ * X.shape[0]),
        "scipy_loglik": best,
        "relative_improvement": (best - em_value) / abs(em_value),
        "em_iterations": int(est.n_iter_),
        "em_converged": bool(est.converged_),
        "em_seconds": em_seconds,
        "scipy_seconds": scipy_seconds,
    }


def main() -> pd.DataFrame:
    """Run every case, print a line each and write the CSV."""
    rows = []
    for case in CASES:
        row = run_case(case)
        rows.append(row)
        print(
            f"{row['case']:28s} EM {row['em_loglik']:.8f}  SciPy {row['scipy_loglik']:.8f}  "
            f"relative improvement {row['relative_improvement']:.2e}  "
            f"{row['em_iterations']} iterations  {row['em_seconds']:.3f} s"
        )
    table = pd.DataFrame(rows)
    RESULTS.mkdir(exist_ok=True)
    table.to_csv(RESULTS / "missing_em.csv", index=False)
    return table


if __name__ == "__main__":
    main()
