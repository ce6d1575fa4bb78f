"""Sample weights in the EM estimators: a weight is a frequency.

The reference for integer weights is the data set with every row repeated ``w_n`` times
(``numpy.repeat``): the same fit to 1e-10 from the same start, on the fused kernels (fast and
residual routes, one block and several) and on the base loop's generic E-/M-step; rows of
weight 0 are rows left out. Non-integer weights are checked against the weighted likelihood
computed with SciPy and against the weighted M-step's fixed-point equations.
"""

import warnings

import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp
from sklearn.cluster import KMeans as SkKMeans

from bayesmix._validation import DataError, ParameterError
from bayesmix.em import (
    BaseMixtureEM,
    BernoulliMixtureEM,
    DegenerateComponentWarning,
    GaussianMixtureEM,
    KMeans,
    kmeans_plusplus,
)
from bayesmix.em._base import check_sample_weight

ATOL = 1e-10
TYPES = ("full", "tied", "diag", "spherical")


def _data(far=False, seed=0):
    """Two clusters in 2-D (30 rows each); ``far``: 200 sd apart (the residual route)."""
    rng = np.random.default_rng(seed)
    gap = 200.0 if far else 4.0
    X = np.concatenate([rng.normal(0.0, 1.0, (30, 2)), rng.normal(gap, 1.0, (30, 2)) * [1, 0.5]])
    w = rng.integers(0, 4, len(X))  # zeros included
    return X, w


def _start(ctype, far=False):
    gap = 200.0 if far else 4.0
    precisions = {
        "full": np.stack([np.eye(2), 2.0 * np.eye(2)]),
        "tied": np.eye(2),
        "diag": np.array([[1.0, 1.0], [2.0, 0.5]]),
        "spherical": np.array([1.0, 2.0]),
    }[ctype]
    return {
        "weights_init": [0.4, 0.6],
        "means_init": [[0.5, -0.5], [gap - 0.5, 0.5 * gap + 0.5]],
        "precisions_init": precisions,
    }


def _map_prior(ctype):
    prior = {"weights_alpha": 2.0, "mu_loc": [1.0, 1.0], "mu_scale": [300.0, 300.0]}
    if ctype in ("full", "tied"):
        prior.update(cov_prior_dof=4.0, cov_prior_scale=np.eye(2))
    elif ctype == "diag":
        prior["sigma_scale"] = [3.0, 2.0]
    else:
        prior["sigma_scale"] = 3.0
    return prior


def _assert_same_fit(a, b, tol=ATOL):
    """Same weights, means, covariances, iterations and objective path (to tol, relative or
    absolute: whichever is larger)."""
    np.testing.assert_allclose(a.weights_, b.weights_, rtol=tol, atol=tol)
    np.testing.assert_allclose(a.means_, b.means_, rtol=tol, atol=tol)
    if hasattr(a, "covariances_"):
        np.testing.assert_allclose(a.covariances_, b.covariances_, rtol=tol, atol=tol)
    assert a.n_iter_ == b.n_iter_
    np.testing.assert_allclose(a.lower_bounds_, b.lower_bounds_, rtol=tol, atol=tol)
    np.testing.assert_allclose(a.lower_bound_, b.lower_bound_, rtol=tol, atol=tol)


class _GenericLoopGaussian(GaussianMixtureEM):
    """GaussianMixtureEM on the base class's generic E-step / M-step (not the fused pass)."""

    _em_step = BaseMixtureEM._em_step


# ----------------------------------------------------------------- integer weights == repeats
@pytest.mark.parametrize("ctype", TYPES)
@pytest.mark.parametrize("map_", [False, True], ids=["ml", "map"])
@pytest.mark.parametrize(
    "route", ["fast", "residual", "blocks", "generic"], ids=lambda r: f"route={r}"
)
def test_gaussian_integer_weights_equal_repeated_rows(ctype, map_, route):
    far = route == "residual"
    X, w = _data(far=far)
    Xr = np.repeat(X, w, axis=0)
    cls = _GenericLoopGaussian if route == "generic" else GaussianMixtureEM
    kw = dict(
        covariance_type=ctype,
        tol=1e-10,
        max_iter=30,
        prior=_map_prior(ctype) if map_ else None,
        chunk_size=7 if route in ("blocks", "generic") else None,
        **_start(ctype, far),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning at max_iter is not the point
        weighted = cls(2, **kw).fit(X, sample_weight=w)
        repeated = cls(2, **kw).fit(Xr)
    if route in ("fast", "residual") and not (ctype in ("full", "tied") and route == "fast"):
        # the test covers the route it names (full/tied K=2, D=2 use products on the fast one)
        assert (weighted._estep["fast"] is None) == (route == "residual")
    assert weighted.n_iter_ >= 3
    _assert_same_fit(weighted, repeated)


@pytest.mark.parametrize("init_params", ["k-means++", "kmeans"])
def test_gaussian_seeded_inits_with_integer_weights_equal_repeated_rows(init_params):
    """Weighted k-means++ draws (and weighted KMeans) on integer weights pick the same rows."""
    X, w = _data(seed=3)
    Xr = np.repeat(X, w, axis=0)
    kw = dict(covariance_type="full", tol=1e-10, init_params=init_params, random_state=5)
    _assert_same_fit(
        GaussianMixtureEM(2, **kw).fit(X, sample_weight=w), GaussianMixtureEM(2, **kw).fit(Xr)
    )


@pytest.mark.parametrize("init_params", ["random", "random_from_data"])
def test_gaussian_random_inits_run_with_weights(init_params):
    X, w = _data(seed=4)
    gm = GaussianMixtureEM(2, init_params=init_params, random_state=0, tol=1e-8, max_iter=300)
    gm.fit(X, sample_weight=w + 0.5)
    assert gm.converged_ and np.all(np.isfinite(gm.means_))


@pytest.mark.parametrize("map_", [False, True], ids=["ml", "map"])
@pytest.mark.parametrize("init_params", ["k-means++", "kmeans"])
def test_bernoulli_integer_weights_equal_repeated_rows(map_, init_params):
    rng = np.random.default_rng(1)
    X = (rng.uniform(size=(50, 6)) < np.repeat([[0.2] * 6, [0.8] * 6], 25, axis=0)).astype(float)
    w = rng.integers(0, 4, len(X))
    Xr = np.repeat(X, w, axis=0)
    prior = {"weights_alpha": 2.0, "beta_a": 2.0, "beta_b": 3.0} if map_ else None
    kw = dict(tol=1e-10, init_params=init_params, random_state=2, prior=prior)
    a = BernoulliMixtureEM(2, **kw).fit(X, sample_weight=w)
    b = BernoulliMixtureEM(2, **kw).fit(Xr)
    assert a.n_iter_ >= 3
    _assert_same_fit(a, b)


def test_kmeans_integer_weights_equal_repeated_rows_and_sklearn():
    X, w = _data(seed=5)
    Xr = np.repeat(X, w, axis=0)
    a = KMeans(3, random_state=0, n_init=2).fit(X, sample_weight=w)
    b = KMeans(3, random_state=0, n_init=2).fit(Xr)
    np.testing.assert_allclose(a.cluster_centers_, b.cluster_centers_, rtol=1e-12)
    np.testing.assert_allclose(a.inertia_, b.inertia_, rtol=1e-12)
    np.testing.assert_allclose(a.score(X, sample_weight=w), b.score(Xr), rtol=1e-12)
    # weighted Lloyd from given centres = scikit-learn's weighted KMeans from the same centres
    init = X[[0, 31, 45]]
    ours = KMeans(3, init=init, tol=0.0, max_iter=100).fit(X, sample_weight=w + 0.25)
    ref = SkKMeans(3, init=init, n_init=1, tol=0.0, max_iter=100, algorithm="lloyd")
    ref.fit(X, sample_weight=w + 0.25)
    np.testing.assert_allclose(ours.cluster_centers_, ref.cluster_centers_, rtol=1e-10)
    np.testing.assert_allclose(ours.inertia_, ref.inertia_, rtol=1e-10)


def test_kmeans_plusplus_never_seeds_on_zero_weight_rows():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 2))
    w = np.zeros(200)
    keep = rng.choice(200, size=6, replace=False)
    w[keep] = rng.uniform(0.5, 2.0, size=6)  # non-integer: the uniform draw
    for seed in range(5):
        _, idx = kmeans_plusplus(X, 4, seed, sample_weight=w)
        assert set(idx) <= set(keep) and len(set(idx)) == 4


# ----------------------------------------------------------------- zero and scaled weights
def test_zero_weight_rows_do_not_change_the_fit():
    X, w = _data(seed=6)
    w = np.where(w == 0, 1, w)
    X0 = np.concatenate([X, [[1e3, -1e3], [50.0, 50.0]]])  # outliers of weight 0
    w0 = np.concatenate([w, [0, 0]])
    for ctype in TYPES:  # the default k-means++ start: zero-weight rows are never drawn
        kw = dict(covariance_type=ctype, random_state=1, tol=1e-10, max_iter=1000)
        a = GaussianMixtureEM(2, **kw).fit(X0, sample_weight=w0)
        b = GaussianMixtureEM(2, **kw).fit(X, sample_weight=w)
        _assert_same_fit(a, b)
    Xb = (X > 1.0).astype(float)
    Xb0 = np.concatenate([Xb, [[1.0, 1.0], [1.0, 0.0]]])
    kw = dict(init_params="k-means++", random_state=0, tol=1e-7, max_iter=1000)
    _assert_same_fit(
        BernoulliMixtureEM(2, **kw).fit(Xb0, sample_weight=w0),
        BernoulliMixtureEM(2, **kw).fit(Xb, sample_weight=w),
    )


@pytest.mark.parametrize("ctype", TYPES)
def test_weights_scaled_by_a_constant_give_the_same_ml_fit(ctype):
    X, w = _data(seed=7)
    kw = dict(covariance_type=ctype, tol=1e-10, **_start(ctype))
    a = GaussianMixtureEM(2, **kw).fit(X, sample_weight=w)
    b = GaussianMixtureEM(2, **kw).fit(X, sample_weight=3.7 * w)
    _assert_same_fit(a, b)


# ----------------------------------------------------------------- non-integer weights
@pytest.mark.parametrize("ctype", ["full", "diag"])
def test_non_integer_weights_weighted_likelihood_and_fixed_point(ctype):
    """The objective is sum w log p / sum w (SciPy densities), and EM's answer is a fixed
    point of the weighted ML equations: w_k = sum_n w_n r_nk / sum w, mu_k the weighted mean."""
    X, _ = _data(seed=8)
    w = np.random.default_rng(8).uniform(0.1, 3.0, len(X))
    gm = GaussianMixtureEM(2, covariance_type=ctype, tol=1e-14, max_iter=2000, reg_covar=0.0)
    gm.set_params(**_start(ctype)).fit(X, sample_weight=w)
    cov = gm.covariances_ if ctype == "full" else [np.diag(c) for c in gm.covariances_]
    log_joint = np.stack(
        [
            np.log(gm.weights_[k]) + stats.multivariate_normal(gm.means_[k], cov[k]).logpdf(X)
            for k in range(2)
        ],
        axis=1,
    )
    log_p = logsumexp(log_joint, axis=1)
    np.testing.assert_allclose(gm.score(X, sample_weight=w), w @ log_p / w.sum(), rtol=1e-12)
    np.testing.assert_allclose(gm.objective(X, sample_weight=w), w @ log_p / w.sum(), rtol=1e-12)
    r = np.exp(log_joint - log_p[:, None]) * w[:, None]
    nk = r.sum(axis=0)
    np.testing.assert_allclose(gm.weights_, nk / w.sum(), atol=1e-9)
    np.testing.assert_allclose(gm.means_, (r.T @ X) / nk[:, None], atol=1e-8)
    # one more weighted M-step (public API) leaves the fit where it is
    before = gm.means_.copy()
    gm.m_step(X, gm.predict_proba(X), sample_weight=w)
    np.testing.assert_allclose(gm.means_, before, atol=1e-8)


# ----------------------------------------------------------------- scores and criteria
def test_scores_and_criteria_with_weights_equal_repeated_rows():
    X, w = _data(seed=9)
    Xr = np.repeat(X, w, axis=0)
    gm = GaussianMixtureEM(2, random_state=0).fit(X, sample_weight=w)
    for name in ("score", "bic", "aic", "icl", "objective"):
        weighted = getattr(gm, name)(X, sample_weight=w)
        np.testing.assert_allclose(weighted, getattr(gm, name)(Xr), rtol=1e-12, err_msg=name)
    n, p = w.sum(), gm._n_parameters()
    log_lik = w @ gm.score_samples(X)
    np.testing.assert_allclose(gm.bic(X, sample_weight=w), -2 * log_lik + p * np.log(n))
    bm = BernoulliMixtureEM(2, random_state=0).fit((X > 1.0), sample_weight=w)
    np.testing.assert_allclose(bm.bic(X > 1.0, sample_weight=w), bm.bic(Xr > 1.0), rtol=1e-12)
    np.testing.assert_allclose(bm.score(X > 1.0, sample_weight=w), bm.score(Xr > 1.0))


def test_initialize_and_m_step_with_weights_equal_repeated_rows():
    X, w = _data(seed=10)
    Xr = np.repeat(X, w, axis=0)
    a = GaussianMixtureEM(2, random_state=3).initialize(X, sample_weight=w)
    b = GaussianMixtureEM(2, random_state=3).initialize(Xr)
    np.testing.assert_allclose(a.means_, b.means_, atol=ATOL)
    np.testing.assert_allclose(a.covariances_, b.covariances_, atol=ATOL)
    resp = a.predict_proba(X)
    a.m_step(X, resp, sample_weight=w)
    b.m_step(Xr, np.repeat(resp, w, axis=0))
    np.testing.assert_allclose(a.weights_, b.weights_, atol=ATOL)
    np.testing.assert_allclose(a.covariances_, b.covariances_, atol=ATOL)


def test_degenerate_warning_counts_the_weight_sum():
    """n_samples of the empty-component test is sum w: 60 rows of weight 1e-5 are 6e-4 points,
    so components of weight ~0.5 hold less than 1e-3 of a data point."""
    X, _ = _data(seed=11)
    kw = dict(covariance_type="diag", **_start("diag"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", DegenerateComponentWarning)
        GaussianMixtureEM(2, **kw).fit(X)  # unweighted: both components hold 30 rows
    with pytest.warns(DegenerateComponentWarning, match=r"component\(s\) \[0, 1\] are empty"):
        GaussianMixtureEM(2, **kw).fit(X, sample_weight=np.full(len(X), 1e-5))


# ----------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("weights", "match"),
    [
        (np.ones(5), r"sample_weight has the wrong shape: expected \(60,\)"),
        (np.ones((60, 1)), "wrong shape"),
        (np.r_[-1.0, np.ones(59)], "negative value"),
        (np.r_[np.nan, np.ones(59)], "NaN or infinite"),
        (np.r_[np.inf, np.ones(59)], "NaN or infinite"),
        (np.zeros(60), "all zero"),
        (np.r_[1.0, np.zeros(59)], "too few rows with a positive sample_weight"),
        (["a"] * 60, "not numeric"),
    ],
)
def test_bad_weights_are_refused_with_one_line_errors(weights, match):
    X, _ = _data()
    for est in (GaussianMixtureEM(2), BernoulliMixtureEM(2)):
        with pytest.raises(DataError, match=match) as info:
            est.fit(X, sample_weight=weights)
        assert "\n" not in str(info.value) and "; " in str(info.value)
    with pytest.raises(DataError, match="sample_weight"):
        GaussianMixtureEM(2, random_state=0).fit(X).score(X, sample_weight=weights[:3])


def test_check_sample_weight_returns_float64_or_none():
    assert check_sample_weight(None, 3) is None
    np.testing.assert_array_equal(check_sample_weight(2, 3), [2.0, 2.0, 2.0])
    out = check_sample_weight([1, 0, 2], 3)
    assert out.dtype == np.float64


def test_families_whose_em_step_ignores_weights_refuse_them():
    class OwnStep(BernoulliMixtureEM):
        def _em_step(self, X, workspace):
            return super()._em_step(X, workspace)

    X = np.random.default_rng(0).integers(0, 2, (20, 3))
    OwnStep(2, random_state=0).fit(X)
    with pytest.raises(ParameterError, match="sample_weight is not supported by OwnStep"):
        OwnStep(2, random_state=0).fit(X, sample_weight=np.ones(20))


def test_jax_input_refuses_weights():
    jnp = pytest.importorskip("jax.numpy")
    X, w = _data()
    gm = GaussianMixtureEM(2, **_start("full"))
    with pytest.raises(ParameterError, match="sample_weight is not supported with JAX arrays"):
        gm.fit(jnp.asarray(X), sample_weight=w)


def test_dask_input_refuses_weights():
    da = pytest.importorskip("dask.array")
    X, w = _data()
    gm = GaussianMixtureEM(2, **_start("full"))
    with pytest.raises(ParameterError, match="sample_weight is not supported with dask arrays"):
        gm.fit(da.from_array(X, chunks=20), sample_weight=w)
