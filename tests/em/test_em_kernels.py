"""The fused single-pass kernels of GaussianMixtureEM against SciPy / direct NumPy."""

import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp, softmax

from bayesmix.em import gaussian as G


def _random_spd(rng, k, d):
    a = rng.normal(size=(k, d, d))
    return a @ np.swapaxes(a, -1, -2) / d + 0.5 * np.eye(d)


def test_normalize_rows_matches_scipy_and_keeps_impossible_points():
    rng = np.random.default_rng(0)
    a = rng.normal(scale=30.0, size=(4, 50))
    a[:, 7] = -np.inf  # impossible under every component
    expected_norm = logsumexp(a, axis=0)
    with np.errstate(invalid="ignore"):
        expected_resp = softmax(a, axis=0)
    expected_resp[:, 7] = 0.25
    out = a.copy()
    log_norm = G._normalize_rows_inplace(out)
    np.testing.assert_allclose(log_norm, expected_norm, rtol=1e-13)
    np.testing.assert_allclose(out, expected_resp, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("d,k", [(1, 3), (3, 10), (4, 2)])
def test_quadratic_form_weights_give_gaussian_log_densities(d, k):
    rng = np.random.default_rng(d + k)
    X = rng.normal(scale=2.0, size=(40, d)) + 5.0
    shift = X.mean(axis=0)
    means = rng.normal(size=(k, d)) + 5.0
    cov = _random_spd(rng, k, d)
    prep = G._prepare_full(means, G._prec_chol_full(cov), shift)
    features = G._features_products(X, shift)  # (Q, n)
    got = features.T @ prep["quad"]
    expected = np.column_stack(
        [stats.multivariate_normal(means[j], cov[j]).logpdf(X).reshape(-1) for j in range(k)]
    )
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    chol = np.empty_like(got)
    G._log_prob_cholesky(X, prep, chol)
    np.testing.assert_allclose(chol, expected, rtol=1e-10)


def test_batched_precision_cholesky_matches_per_component():
    rng = np.random.default_rng(5)
    cov = _random_spd(rng, 6, 5)
    batched = G._prec_chol_full(cov)
    single = np.stack([G._upper_precision_chol(c, j) for j, c in enumerate(cov)])
    np.testing.assert_allclose(batched, single, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(batched @ np.swapaxes(batched, -1, -2), np.linalg.inv(cov))
    assert np.all(np.tril(batched, -1) == 0)
    bad = cov.copy()
    bad[3] = 0.0
    with pytest.raises(G.DataError, match="component 3"):
        G._prec_chol_full(bad)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
@pytest.mark.parametrize("d,k", [(2, 10), (6, 2)])  # shared product features / Cholesky path
def test_fused_statistics_equal_direct_sums(covariance_type, d, k):
    rng = np.random.default_rng(11)
    n = 301
    X = rng.normal(size=(n, d))
    model = G.GaussianMixtureEM(k, covariance_type=covariance_type, max_iter=1, random_state=0)
    with pytest.warns(Warning):
        model.fit(X)
    log_w = np.log(model.weights_)
    # direct: (N, K) responsibilities from SciPy densities, then the sums
    if covariance_type in ("full", "tied"):
        cov = np.broadcast_to(model.covariances_, (k, d, d))
    else:
        var = np.broadcast_to(np.reshape(model.covariances_, (k, -1)), (k, d))
        cov = np.stack([np.diag(v) for v in var])
    logp = np.column_stack(
        [stats.multivariate_normal(model.means_[j], cov[j]).logpdf(X) for j in range(k)]
    )
    logp += log_w
    resp = softmax(logp, axis=1)
    xc = X - model._shift
    for block, workspace in ((n, None), (64, {})):
        total, g = G.fused_statistics(X, model._estep, log_w, covariance_type, k, block, workspace)
        st = G.fused_unpack(covariance_type, g, d, k)
        assert total == pytest.approx(logsumexp(logp, axis=1).sum(), rel=1e-12)
        np.testing.assert_allclose(st.nk, resp.sum(axis=0), rtol=1e-11)
        np.testing.assert_allclose(st.sx, resp.T @ xc, rtol=1e-10, atol=1e-11)
        second = np.einsum("nk,nd,ne->kde", resp, xc, xc)
        if covariance_type == "tied":
            second = second.sum(axis=0)
        elif covariance_type in ("diag", "spherical"):
            second = np.einsum("kdd->kd", second)
        np.testing.assert_allclose(st.second, second, rtol=1e-10, atol=1e-11)
