"""The fused single-pass kernels of GaussianMixtureEM against SciPy / direct NumPy."""

import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp, softmax

from bayesmix.em import GaussianMixtureEM
from bayesmix.em import _gaussian_kernels as G


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


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
@pytest.mark.parametrize("d,k", [(1, 3), (3, 10), (4, 2)])
def test_log_densities_of_both_routes_match_scipy(covariance_type, d, k):
    rng = np.random.default_rng(d + k)
    X = rng.normal(scale=2.0, size=(40, d)) + 5.0
    shift = X.mean(axis=0)
    means = rng.normal(size=(k, d)) * 0.1 + shift
    if covariance_type == "full":
        cov = _random_spd(rng, k, d)
        pc = G._prec_chol_full(cov)
    else:
        var = rng.uniform(0.5, 2.0, size=(k, d))
        cov = np.stack([np.diag(v) for v in var])
        pc = 1.0 / np.sqrt(var)
    expected = np.column_stack(
        [stats.multivariate_normal(means[j], cov[j]).logpdf(X).reshape(-1) for j in range(k)]
    )
    prep = G._OPS[covariance_type].prepare(means, pc)
    got = np.empty_like(expected)
    G._log_prob_block(X, prep, got)  # residual route (predict, score, sound fits)
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    fused, _, _ = G._block_log_prob(X, prep)
    np.testing.assert_allclose(fused.T, expected, rtol=1e-10)
    fast = G._prepare_fast(covariance_type, means, pc, shift)
    if covariance_type == "full" and not G._use_products(k, d):
        assert fast is None
        return
    features = (
        G._features_products(X, shift) if fast["products"] else G._features_squares(X, shift)
    )
    np.testing.assert_allclose(features.T @ fast["w"], expected, rtol=1e-10)


def test_fast_route_only_where_it_keeps_the_digits():
    d, k = 2, 10
    means = np.zeros((k, d))
    pc = np.broadcast_to(np.eye(d), (k, d, d))
    shift = np.zeros(d)
    assert G._prepare_fast("full", means, pc, shift) is not None
    far = means.copy()
    far[3] = 1e3  # a mean 1e3 standard deviations from c: the expansion loses 6 digits
    assert G._prepare_fast("full", far, pc, shift) is None
    assert G._prepare_fast("diag", far, np.ones((k, d)), shift) is None
    # a collapsed component (sd 1e-3) one unit from c: 1e6 squared whitened units
    near = means.copy()
    near[0] = 1.0
    assert G._prepare_fast("diag", near, np.ones((k, d)), shift) is not None
    pcv = np.ones((k, d))
    pcv[0] = 1e3
    assert G._prepare_fast("diag", near, pcv, shift) is None


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


@pytest.mark.parametrize("route", ["fast", "residuals"])
@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
@pytest.mark.parametrize("d,k", [(2, 10), (6, 2)])  # product features / residual route
def test_fused_statistics_equal_direct_sums(covariance_type, d, k, route):
    rng = np.random.default_rng(11)
    n = 301
    X = rng.normal(size=(n, d))
    model = GaussianMixtureEM(k, covariance_type=covariance_type, max_iter=1, random_state=0)
    with pytest.warns(Warning):
        model.fit(X)
    estep = dict(model._estep)
    if route == "residuals":
        estep["fast"] = None
    elif estep["fast"] is None:
        assert covariance_type in ("full", "tied") and not G._use_products(k, d)
        pytest.skip("full/tied with few components: the residual route only")
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
    for block, workspace in ((n, None), (64, {})):
        total, g = G.fused_statistics(X, estep, log_w, covariance_type, k, block, workspace)
        st = G.fused_unpack(covariance_type, g, d, k, estep)
        # about the current means (residual route) or the data mean (fast route)
        ref = model.means_ if route == "residuals" else np.broadcast_to(model._shift, (k, d))
        np.testing.assert_allclose(st.ref, ref, rtol=0, atol=0)
        xc = X[:, None, :] - ref[None]  # (N, K, D)
        assert total == pytest.approx(logsumexp(logp, axis=1).sum(), rel=1e-12)
        np.testing.assert_allclose(st.nk, resp.sum(axis=0), rtol=1e-11)
        np.testing.assert_allclose(
            st.sx, np.einsum("nk,nkd->kd", resp, xc), rtol=1e-10, atol=1e-11
        )
        second = np.einsum("nk,nkd,nke->kde", resp, xc, xc)
        if covariance_type == "tied":
            second = second.sum(axis=0)
        elif covariance_type in ("diag", "spherical"):
            second = np.einsum("kdd->kd", second)
        np.testing.assert_allclose(st.second, second, rtol=1e-10, atol=1e-11)
