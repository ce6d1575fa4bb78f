"""Many features (D = 24): the full/tied residual route with BLAS ?trmm/?syrk, one component
at a time, and the per-component predictions, against scikit-learn, SciPy and NumPy."""

import warnings

import numpy as np
import pytest
from em_helpers import fit_iterations, sklearn_start
from scipy import stats
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits

from bayesmix.em import GaussianMixtureEM
from bayesmix.em import _gaussian_kernels as G

D, K, N_ITER = 24, 4, 8
COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]


@pytest.fixture(scope="module", autouse=True)
def _one_blas_thread():
    """Many small BLAS calls: with 2 threads on a busy machine each may stall for ~10 ms."""
    with threadpool_limits(1, user_api="blas"):
        yield


@pytest.fixture(scope="module")
def X():
    """Four overlapping clusters in 24 dimensions (N = 1003, not a multiple of any block)."""
    rng = np.random.default_rng(24)
    centres = rng.normal(scale=3.0 / np.sqrt(D), size=(K, D))
    mix = rng.normal(size=(K, D, D)) / np.sqrt(D) + np.eye(D)
    labels = rng.integers(K, size=1003)
    return centres[labels] + np.einsum("nd,nde->ne", rng.normal(size=(1003, D)), mix[labels])


def _fit(X, covariance_type, **kw):
    return fit_iterations(X, covariance_type, sklearn_start(X, covariance_type, K), N_ITER, **kw)


def test_the_residual_route_is_the_one_tested():
    assert not G._use_products(K, D)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_same_trajectory_as_sklearn(X, covariance_type):
    ours = _fit(X, covariance_type)
    init = sklearn_start(X, covariance_type, K)
    reference = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for i in range(1, N_ITER + 1):
            sk = GaussianMixture(
                K, covariance_type=covariance_type, tol=0.0, max_iter=i, reg_covar=1e-6, **init
            ).fit(X)
            reference.append(sk.lower_bound_)
    np.testing.assert_allclose(ours.lower_bounds_, reference, rtol=1e-8, atol=0)
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        np.testing.assert_allclose(getattr(ours, name), getattr(sk, name), rtol=1e-6, atol=1e-8)
    np.testing.assert_array_equal(ours.predict(X), sk.predict(X))
    np.testing.assert_allclose(ours.score_samples(X), sk.score_samples(X), rtol=1e-10)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_chunks_float32_and_fit_predict(X, covariance_type):
    whole = _fit(X, covariance_type)
    for chunk in (97, 1003):
        chunked = _fit(X, covariance_type, chunk_size=chunk)
        np.testing.assert_allclose(chunked.lower_bounds_, whole.lower_bounds_, rtol=1e-12)
        np.testing.assert_allclose(chunked.covariances_, whole.covariances_, rtol=1e-9)
    single = _fit(X.astype(np.float32), covariance_type, dtype=np.float32)
    assert single.means_.dtype == np.float32
    np.testing.assert_allclose(single.lower_bounds_, whole.lower_bounds_, rtol=1e-4)
    np.testing.assert_allclose(single.means_, whole.means_, rtol=1e-3, atol=1e-3)
    est = GaussianMixtureEM(
        K, covariance_type=covariance_type, max_iter=3, **sklearn_start(X, covariance_type, K)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        labels = est.fit_predict(X)
    np.testing.assert_array_equal(labels, est.predict(X))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_predictions_against_scipy(X, covariance_type):
    est = _fit(X, covariance_type)
    if covariance_type == "full":
        covs = est.covariances_
    elif covariance_type == "tied":
        covs = np.broadcast_to(est.covariances_, (K, D, D))
    else:
        var = np.broadcast_to(np.reshape(est.covariances_, (K, -1)), (K, D))
        covs = np.stack([np.diag(v) for v in var])
    logp = np.column_stack(
        [stats.multivariate_normal(est.means_[j], covs[j]).logpdf(X) for j in range(K)]
    )
    logp += np.log(est.weights_)
    np.testing.assert_array_equal(est.predict(X), logp.argmax(axis=1))
    got = np.empty((len(X), K))
    G._log_prob_block(X, est._estep, got, {})
    np.testing.assert_allclose(got + np.log(est.weights_), logp, rtol=1e-11)


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
def test_whitened_moments_equal_direct_sums(X, covariance_type):
    """The ?syrk layout: lower triangles of [S, sum r z; ., n] about each mean."""
    rng = np.random.default_rng(3)
    est = _fit(X, covariance_type)
    resp = rng.dirichlet(np.ones(K), size=len(X))
    for dtype, rtol in ((np.float64, 1e-11), (np.float32, 2e-5)):
        Xd, means = X.astype(dtype), est.means_.astype(dtype)
        st = G._statistics(covariance_type, Xd, resp.astype(dtype), means, 100, {})
        z = X[:, None, :] - est.means_.astype(dtype).astype(np.float64)[None]  # (N, K, D)
        np.testing.assert_allclose(st.nk, resp.sum(axis=0), rtol=rtol)
        np.testing.assert_allclose(
            st.sx, np.einsum("nk,nkd->kd", resp, z), rtol=rtol, atol=rtol * 10
        )
        second = np.einsum("nk,nkd,nke->kde", resp, z, z)
        if covariance_type == "tied":
            second = second.sum(axis=0)
        np.testing.assert_allclose(st.second, second, rtol=rtol, atol=rtol * 10)
        assert st.second.dtype == dtype
        np.testing.assert_array_equal(st.second, np.swapaxes(st.second, -1, -2))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_centring_is_the_numpy_subtraction_bit_for_bit(dtype):
    rng = np.random.default_rng(5)
    xt = (1e9 + rng.normal(scale=1e-2, size=(D, 77))).astype(dtype)
    mu = (1e9 + rng.normal(scale=1e-2, size=D)).astype(dtype)
    out = np.empty_like(xt)
    G._centre_rows(xt, mu, out, np.ones(77, dtype=dtype))
    np.testing.assert_array_equal(out, xt - mu[:, None])


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_offset_by_1e9_changes_nothing_but_the_means(X, covariance_type):
    far = X * 1e-2 + 1e9  # spread 1e-2 at 1e9: the residuals must not cancel
    near = far - 1e9  # the same (rounded) data about 0; exact subtraction
    init = sklearn_start(near, covariance_type, K)
    fits = []
    for data, offset in ((near, 0.0), (far, 1e9)):
        kw = dict(init, means_init=init["means_init"] + offset)
        est = GaussianMixtureEM(K, covariance_type=covariance_type, max_iter=N_ITER, **kw)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            fits.append(est.fit(data))
    a, b = fits
    np.testing.assert_allclose(b.means_ - 1e9, a.means_, atol=1e-7)
    # the means at 1e9 are rounded to 1.2e-7, 1e-5 of the spread: covariances agree to ~1e-6
    # (an expanded quadratic form would lose all digits: (1e9 / 1e-2)^2 eps >> 1)
    np.testing.assert_allclose(b.covariances_, a.covariances_, rtol=1e-4, atol=1e-10)
    np.testing.assert_array_equal(b.predict(far), a.predict(near))


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
@pytest.mark.parametrize("d", [24, 40])  # feature-major and row-major predictions
def test_diagonal_log_densities_against_scipy(covariance_type, d):
    rng = np.random.default_rng(d)
    X = rng.normal(size=(301, d)) * rng.uniform(0.5, 2.0, size=d) + 1e3
    est = GaussianMixtureEM(3, covariance_type=covariance_type, max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X)
    var = np.broadcast_to(np.reshape(est.covariances_, (3, -1)), (3, d))
    logp = np.column_stack(
        [stats.norm(est.means_[j], np.sqrt(var[j])).logpdf(X).sum(axis=1) for j in range(3)]
    )
    for dtype in (np.float64, np.float32):
        prep = G._OPS[covariance_type].prepare(
            est.means_.astype(dtype), est.precisions_cholesky_.astype(dtype)
        )
        got = np.empty((len(X), 3), dtype=dtype)
        G._log_prob_block(X.astype(dtype), prep, got, {})
        rtol = 1e-12 if dtype == np.float64 else 1e-4
        np.testing.assert_allclose(got, logp, rtol=rtol)
    np.testing.assert_array_equal(est.predict(X), (logp + np.log(est.weights_)).argmax(axis=1))


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
@pytest.mark.parametrize("d", [24, 40])  # transposed and row-major features
def test_diagonal_fused_statistics_equal_direct_sums(covariance_type, d):
    rng = np.random.default_rng(100 + d)
    X = rng.normal(size=(301, d)) * rng.uniform(0.5, 2.0, size=d) + 10.0
    est = GaussianMixtureEM(3, covariance_type=covariance_type, max_iter=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X)
    assert est._estep["fast"] is not None
    var = np.broadcast_to(np.reshape(est.covariances_, (3, -1)), (3, d))
    logp = np.column_stack(
        [stats.norm(est.means_[j], np.sqrt(var[j])).logpdf(X).sum(axis=1) for j in range(3)]
    )
    logp += np.log(est.weights_)
    resp = np.exp(logp - logp.max(axis=1, keepdims=True))
    resp /= resp.sum(axis=1, keepdims=True)
    log_w = np.log(est.weights_)
    for route in ("fast", "residuals"):
        estep = dict(est._estep)
        if route == "residuals":
            estep["fast"] = None
        for block, workspace in ((301, None), (64, {})):
            total, g = G.fused_statistics(X, estep, log_w, covariance_type, 3, block, workspace)
            st = G.fused_unpack(covariance_type, g, d, 3, estep)
            xc = X[:, None, :] - st.ref[None]
            expected_total = np.log(np.exp(logp - logp.max(axis=1, keepdims=True)).sum(axis=1))
            assert total == pytest.approx((expected_total + logp.max(axis=1)).sum(), rel=1e-12)
            np.testing.assert_allclose(st.nk, resp.sum(axis=0), rtol=1e-11)
            np.testing.assert_allclose(
                st.sx, np.einsum("nk,nkd->kd", resp, xc), rtol=1e-9, atol=1e-9
            )
            np.testing.assert_allclose(
                st.second, np.einsum("nk,nkd->kd", resp, xc * xc), rtol=1e-10
            )


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_float32_with_many_features(covariance_type):
    rng = np.random.default_rng(40)
    X = rng.normal(size=(500, 40)) + np.repeat(rng.normal(scale=2.0, size=(2, 40)), 250, axis=0)
    fits = []
    for dtype in (np.float64, np.float32):
        est = GaussianMixtureEM(
            2, covariance_type=covariance_type, max_iter=6, tol=1e-300, random_state=0, dtype=dtype
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            fits.append(est.fit(X))
    assert fits[1].means_.dtype == np.float32
    # float64 stops once the objective repeats exactly; compare the common iterations
    m = min(len(fits[0].lower_bounds_), len(fits[1].lower_bounds_))
    np.testing.assert_allclose(fits[1].lower_bounds_[:m], fits[0].lower_bounds_[:m], rtol=1e-5)
    assert fits[1].lower_bound_ == pytest.approx(fits[0].lower_bound_, rel=1e-5)
    np.testing.assert_allclose(fits[1].means_, fits[0].means_, atol=1e-3)
    np.testing.assert_array_equal(fits[1].predict(X), fits[0].predict(X))


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
@pytest.mark.parametrize("d", [24, 40])
def test_fast_route_labels_and_their_limit(covariance_type, d):
    rng = np.random.default_rng(200 + d)
    X = rng.normal(size=(400, d)) + np.repeat(rng.normal(scale=0.5, size=(2, d)), 200, axis=0)
    X += 1e3
    est = GaussianMixtureEM(2, covariance_type=covariance_type, max_iter=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X)
    fast = est._estep["fast"]
    assert fast is not None
    prec_max = est._estep["prec"][:, 0, :].max(axis=0)
    residual = G._log_prob_t(X, est._estep, {}).copy()
    got = G._fast_log_prob_t(X, fast, prec_max, {})
    assert got is not None
    np.testing.assert_allclose(got, residual, rtol=1e-10)
    expected = (residual + np.log(est.weights_)[:, None]).argmax(axis=0)
    np.testing.assert_array_equal(est.predict(X), expected)
    # a row 100 sd from the data mean: the block goes by the residual route
    far = np.concatenate([X[:50], X[50:51] + 100.0 * np.sqrt(np.max(1.0 / prec_max))])
    assert G._fast_log_prob_t(far, fast, prec_max, {}) is None
    residual = G._log_prob_t(far, est._estep, {}) + np.log(est.weights_)[:, None]
    np.testing.assert_array_equal(est.predict(far), residual.argmax(axis=0))
