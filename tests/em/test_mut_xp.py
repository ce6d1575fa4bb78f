"""The array-namespace EM kernels (bayesmix.em._xp) on NumPy, without JAX.

test_em_jax.py checks them on JAX and NumPy together, but mutmut cannot run it: JAX
deadlocks in a forked child once the parent has started its threads (mutmut forks its
workers after the stats run). These tests cover the NumPy path alone, against SciPy
densities, direct sums and the NumPy engine (docs/mutation-testing.md).
"""

from __future__ import annotations

import numpy as np
import pytest
from em_helpers import fit_iterations, rough_start, three_blobs
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from bayesmix.em import _xp

K, D = 3, 2


def _params(kind: str, seed: int = 0):
    """Weights, means, covariances and the kernel's prec_chol for K = 3 in 2-D."""
    rng = np.random.default_rng(seed)
    w = np.array([0.5, 0.3, 0.2])
    mu = np.array([[-2.0, 0.5], [1.0, 1.5], [2.5, -1.0]]) + rng.normal(0, 0.1, (K, D))
    if kind == "full":
        cov = np.array(
            [[[1.0, 0.6], [0.6, 0.8]], [[0.5, -0.2], [-0.2, 1.2]], [[2.0, 0.0], [0.0, 0.3]]]
        )
        pc = np.stack([np.linalg.inv(np.linalg.cholesky(c)).T for c in cov])  # P = U U^T
        return w, mu, cov, pc
    var = np.array([[1.0, 0.8], [0.5, 1.2], [2.0, 0.3]])
    return w, mu, var, 1.0 / np.sqrt(var)


def _scipy_log_prob(X, w, mu, cov, kind):
    full = cov if kind == "full" else np.stack([np.diag(v) for v in cov])
    return np.column_stack(
        [np.log(w[k]) + multivariate_normal(mu[k], full[k]).logpdf(X) for k in range(K)]
    )


def test_namespace_and_kernel_kind():
    assert _xp.get_namespace(np.zeros(2)) is np
    assert _xp.get_namespace(np.zeros(2), [1.0], 3.0) is np
    assert not _xp._is_jax(np.zeros(2))
    assert {t: _xp.kernel_kind(t) for t in ("full", "tied", "diag", "spherical")} == {
        "full": "full",
        "tied": "full",
        "diag": "diag",
        "spherical": "diag",
    }


@pytest.mark.parametrize("kind", ["full", "diag"])
def test_prepare_and_log_prob_match_scipy(kind):
    rng = np.random.default_rng(1)
    X = rng.normal(0.0, 2.0, (40, D))
    w, mu, cov, pc = _params(kind)
    shift = np.array([0.7, -0.3])
    arrays = _xp.prepare(np, w, mu, pc, shift, kind)
    np.testing.assert_allclose(arrays["m"], mu - shift, rtol=0, atol=1e-15)
    got = _xp.log_prob(np, X - shift, arrays, kind)
    np.testing.assert_allclose(got, _scipy_log_prob(X, w, mu, cov, kind), rtol=1e-10)


@pytest.mark.parametrize("kind", ["full", "diag"])
@pytest.mark.parametrize("chunk_size", [None, 7, 40, 1000])
def test_statistics_equal_direct_sums(kind, chunk_size):
    """Log-likelihood and moments about each current mean, over chunks of rows."""
    rng = np.random.default_rng(2)
    X = rng.normal(0.0, 2.0, (40, D))
    w, mu, cov, pc = _params(kind)
    shift = X.mean(axis=0)
    arrays = _xp.prepare(np, w, mu, pc, shift, kind)
    total, nk, sx, second = _xp.statistics(np, X, shift, arrays, kind, chunk_size)
    lp = _scipy_log_prob(X, w, mu, cov, kind)
    lse = logsumexp(lp, axis=1)
    r = np.exp(lp - lse[:, None])
    z = X[:, None, :] - mu[None]  # (N, K, D)
    assert total == pytest.approx(lse.sum(), rel=1e-12)
    np.testing.assert_allclose(nk, r.sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(sx, np.einsum("nk,nkd->kd", r, z), rtol=1e-10, atol=1e-12)
    if kind == "full":
        want = np.einsum("nk,nkd,nke->kde", r, z, z)
    else:
        want = np.einsum("nk,nkd->kd", r, z * z)
    np.testing.assert_allclose(second, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", ["full", "diag"])
def test_m_step_is_the_weighted_ml_estimate(kind):
    rng = np.random.default_rng(3)
    X = rng.normal(0.0, 2.0, (50, D))
    w, mu, cov, pc = _params(kind)
    arrays = _xp.prepare(np, w, mu, pc, np.zeros(D), kind)
    _, nk, sx, second = _xp.statistics(np, X, np.zeros(D), arrays, kind)
    reg = 0.01
    weights, means, cov_new, pc_new = _xp.m_step(np, nk, sx, second, mu, len(X), kind, reg)
    r = np.exp(_scipy_log_prob(X, w, mu, cov, kind))
    r /= r.sum(axis=1, keepdims=True)
    n_k = r.sum(axis=0)
    np.testing.assert_allclose(weights, n_k / len(X), rtol=1e-12)
    want_mu = (r.T @ X) / n_k[:, None]
    np.testing.assert_allclose(means, want_mu, rtol=1e-10)
    for k in range(K):
        c = X - want_mu[k]
        scatter = (r[:, k, None] * c).T @ c / n_k[k]
        if kind == "full":
            want = scatter + reg * np.eye(D)
            np.testing.assert_allclose(cov_new[k], want, rtol=1e-10)
            # upper U with inv(cov) = U U^T
            assert np.allclose(np.tril(pc_new[k], -1), 0.0)
            np.testing.assert_allclose(pc_new[k] @ pc_new[k].T, np.linalg.inv(want), rtol=1e-10)
        else:
            want = np.diag(scatter) + reg
            np.testing.assert_allclose(cov_new[k], want, rtol=1e-10)
            np.testing.assert_allclose(pc_new[k], 1.0 / np.sqrt(want), rtol=1e-12)


def test_upper_precision_cholesky_of_a_stack():
    rng = np.random.default_rng(4)
    a = rng.normal(size=(4, 3, 3))
    cov = a @ np.swapaxes(a, -1, -2) + 0.5 * np.eye(3)
    u = _xp._upper_precision_chol(np, cov)
    assert np.allclose(np.tril(u, -1), 0.0)
    np.testing.assert_allclose(u @ np.swapaxes(u, -1, -2), np.linalg.inv(cov), rtol=1e-10)


@pytest.mark.parametrize("kind", ["full", "diag"])
@pytest.mark.parametrize("chunk_size", [None, 700])
def test_numpy_em_step_equals_the_engine(kind, chunk_size):
    """Eight whole iterations in the namespace kernels equal GaussianMixtureEM's."""
    data = three_blobs(np.random.default_rng(31), 3, n=1800)
    n_iter = 8
    init = rough_start(data, kind, np.random.default_rng(2))
    engine = fit_iterations(data, kind, init, n_iter)
    shift = data.mean(axis=0)
    w, m = init["weights_init"], init["means_init"]
    if kind == "full":
        pc = np.stack(
            [
                np.linalg.inv(np.linalg.cholesky(np.linalg.inv(p))).T
                for p in init["precisions_init"]
            ]
        )
    else:
        pc = np.sqrt(init["precisions_init"])
    bounds = []
    for _ in range(n_iter):
        out = _xp.em_step(
            np, data, shift, w, m, pc, kind=kind, reg_covar=1e-6, chunk_size=chunk_size
        )
        bounds.append(float(out[0]))
        w, m, cov, pc = out[1], out[2], out[3], out[4]
    np.testing.assert_allclose(bounds, engine.lower_bounds_, rtol=1e-8)
    np.testing.assert_allclose(w, engine.weights_, rtol=1e-8)
    np.testing.assert_allclose(m, engine.means_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(cov, engine.covariances_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(pc, engine.precisions_cholesky_, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("kind", ["full", "diag"])
def test_statistics_of_a_far_outlier_row_stay_finite(kind):
    """The log-sum-exp is shifted by each row's own maximum: a row 60 sd away from every
    component (log densities near -1800) next to ordinary rows keeps a finite likelihood."""
    rng = np.random.default_rng(7)
    X = np.vstack([rng.normal(0.0, 1.0, (10, D)), [[80.0, -70.0]]])
    w, mu, cov, pc = _params(kind)
    arrays = _xp.prepare(np, w, mu, pc, np.zeros(D), kind)
    total, nk, _, _ = _xp.statistics(np, X, np.zeros(D), arrays, kind)
    want = logsumexp(_scipy_log_prob(X, w, mu, cov, kind), axis=1)
    assert want[-1] < -1000  # the premise: exp underflows against the other rows' maximum
    assert total == pytest.approx(want.sum(), rel=1e-12)
    np.testing.assert_allclose(nk.sum(), len(X), rtol=1e-12)


def test_diag_m_step_keeps_a_small_scatter():
    """A tight component (variance 1e-4, n_k = 20: scatter 2e-3) keeps its own variance."""
    rng = np.random.default_rng(8)
    X = np.vstack([rng.normal(-1.0, 0.01, (20, D)), rng.normal(3.0, 1.0, (30, D))])
    resp = np.zeros((50, 2))
    resp[:20, 0] = resp[20:, 1] = 1.0
    nk = resp.sum(axis=0)
    means = np.zeros((2, D))
    sx = resp.T @ X
    second = resp.T @ (X * X)
    _, new_means, var, _ = _xp.m_step(np, nk, sx, second, means, 50, "diag", 0.0)
    for k, rows in enumerate((slice(0, 20), slice(20, 50))):
        np.testing.assert_allclose(new_means[k], X[rows].mean(axis=0), rtol=1e-10)
        np.testing.assert_allclose(var[k], X[rows].var(axis=0), rtol=1e-6)
    assert var[0].max() < 1e-3
