"""Property-based tests of the public API with hypothesis (profiles: see conftest.py).

* Arbitrary finite data, shapes, K, covariance types and seeds: the EM estimators and
  ``bayesmix.inference.fit_em`` either fit (finite parameters, responsibilities summing to 1)
  or raise a BayesmixError; sklearn's ConvergenceWarning is allowed.
* Non-finite or malformed input: a DataError, never another exception.
* EM invariances from a fixed start (weights, means and precisions given, a fixed number of
  iterations): permuting the rows does not change the fit; relabelling the components of the
  start permutes the result; an affine change of the data ``x -> A x + b`` (``reg_covar=0``)
  transforms the estimates (means ``A m + b``, covariances ``A C A^T``, weights unchanged).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.exceptions import ConvergenceWarning

from bayesmix._validation import BayesmixError, DataError
from bayesmix.em import BernoulliMixtureEM, GaussianMixtureEM, KMeans

from .conftest import property_settings

COVS = ("full", "diag", "spherical", "tied")
# finite floats, with values of every magnitude that squares without overflow
MODERATE = st.floats(-1e150, 1e150, allow_nan=False, allow_infinity=False, width=64)
ANY_FINITE = st.floats(allow_nan=False, allow_infinity=False, width=64)


@st.composite
def data_and_k(draw, elements=MODERATE):
    n = draw(st.integers(1, 40))
    d = draw(st.integers(1, 4))
    X = draw(hnp.arrays(np.float64, (n, d), elements=elements))
    k = draw(st.integers(1, 5))
    return X, k


def _check_fit(est, X, covariances=True):
    assert np.all(np.isfinite(est.weights_)) and np.all(est.weights_ >= 0)
    np.testing.assert_allclose(est.weights_.sum(), 1.0, rtol=1e-9)
    assert np.all(np.isfinite(est.means_))
    if covariances and hasattr(est, "covariances_"):
        assert np.all(np.isfinite(est.covariances_))
    proba = est.predict_proba(X)
    assert np.all(np.isfinite(proba))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-9)


def _fit_or_documented_error(make, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        try:
            return make().fit(X)
        except BayesmixError as exc:
            msg = str(exc)
            assert msg and "\n" not in msg and ";" in msg, msg
            return None


@property_settings()
@given(data=data_and_k(), cov=st.sampled_from(COVS), seed=st.integers(0, 2**32 - 1))
def test_gaussian_em_arbitrary_finite_data(examples, data, cov, seed):
    examples["gaussian_em_arbitrary_finite_data"] += 1
    X, k = data
    est = _fit_or_documented_error(
        lambda: GaussianMixtureEM(k, covariance_type=cov, random_state=seed, max_iter=30), X
    )
    if est is not None:
        examples["gaussian_em_arbitrary_finite_data (fitted, not an error)"] += 1
        _check_fit(est, X)


@property_settings()
@given(data=data_and_k(ANY_FINITE), cov=st.sampled_from(COVS), seed=st.integers(0, 2**32 - 1))
def test_gaussian_em_extreme_finite_data(examples, data, cov, seed):
    """Values up to 1.8e308 (their squares overflow): a fit or a documented error.

    The covariances are not checked here: diag/spherical ones may come close to the float64
    limit; full/tied ones that overflow raise a DataError (see
    ``test_overflowing_covariance_is_an_error``, found by this test in the "long" profile).
    """
    examples["gaussian_em_extreme_finite_data"] += 1
    X, k = data
    with np.errstate(all="ignore"):
        est = _fit_or_documented_error(
            lambda: GaussianMixtureEM(k, covariance_type=cov, random_state=seed, max_iter=30), X
        )
        if est is not None:
            _check_fit(est, X, covariances=False)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_overflowing_covariance_is_an_error(covariance_type):
    # found by hypothesis ("long"): full/tied once gave an inf covariance here. Every type now
    # gives the exact ML variance (8/81) * 1.3e154^2 = 1.67e307, which is finite; the squares
    # of the data overflow, so it must come from residuals about the mean
    X = np.array([[0.0]] + [[1.3e154]] * 8)
    with np.errstate(all="ignore"):
        est = GaussianMixtureEM(1, covariance_type=covariance_type, random_state=0).fit(X)
    expected = (1.3e154 * np.sqrt(8.0) / 9.0) ** 2
    cov = np.asarray(est.covariances_, dtype=float).ravel()
    assert np.all(np.isfinite(cov)), cov
    np.testing.assert_allclose(cov, expected, rtol=1e-6)
    np.testing.assert_allclose(est.means_.ravel(), 1.3e154 * 8 / 9, rtol=1e-12)
    # and a variance that does overflow float64 is refused with a DataError, not inf
    with np.errstate(all="ignore"), pytest.raises(DataError, match="overflows"):
        GaussianMixtureEM(1, covariance_type=covariance_type, random_state=0).fit(
            np.array([[-1.5e308]] + [[1.5e308]] * 8)
        )


@property_settings()
@given(
    n=st.integers(1, 40),
    d=st.integers(1, 6),
    k=st.integers(1, 5),
    seed=st.integers(0, 2**32 - 1),
    data_seed=st.integers(0, 2**32 - 1),
    prior=st.booleans(),
)
def test_bernoulli_em_arbitrary_binary_data(examples, n, d, k, seed, data_seed, prior):
    examples["bernoulli_em_arbitrary_binary_data"] += 1
    r = np.random.default_rng(data_seed)
    X = (r.random((n, d)) < r.random(d)).astype(np.int64)
    pri = {"weights_alpha": 2.0, "beta_a": 2.0, "beta_b": 2.0} if prior else None
    est = _fit_or_documented_error(
        lambda: BernoulliMixtureEM(k, random_state=seed, max_iter=30, prior=pri), X
    )
    if est is not None:
        _check_fit(est, X)
        assert np.all((est.means_ > 0) & (est.means_ < 1))


@property_settings()
@given(data=data_and_k(), seed=st.integers(0, 2**32 - 1))
def test_kmeans_arbitrary_finite_data(examples, data, seed):
    examples["kmeans_arbitrary_finite_data"] += 1
    X, k = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        try:
            km = KMeans(k, random_state=seed, n_init=1).fit(X)
        except BayesmixError:
            return
    assert np.all(np.isfinite(km.cluster_centers_))
    assert km.labels_.shape == (X.shape[0],) and set(km.labels_) <= set(range(k))


@property_settings()
@given(
    data=data_and_k(st.floats(-1e6, 1e6, allow_nan=False, width=64)),
    family=st.sampled_from(["gaussian", "bernoulli"]),
    cov=st.sampled_from(["full", "diag", "spherical"]),
    seed=st.integers(0, 2**31 - 1),
    prior=st.sampled_from(["spec", None]),
)
def test_fit_em_result_has_no_nan(examples, data, family, cov, seed, prior):
    from bayesmix.config import ModelSpec
    from bayesmix.inference import fit_em

    examples["inference_fit_em"] += 1
    X, k = data
    if family == "bernoulli":
        X = (X > np.median(X)).astype(np.int64)
    spec = ModelSpec(family, k, cov)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        try:
            tree = fit_em(spec, X, prior=prior, random_state=seed, n_init=2, max_iter=50)
        except BayesmixError:
            return
    for name, da in tree["em"].to_dataset().data_vars.items():
        assert np.all(np.isfinite(da.values)), name


BAD_VALUES = st.sampled_from([np.nan, np.inf, -np.inf])


@property_settings()
@given(data=data_and_k(), bad=BAD_VALUES, where=st.integers(0, 10**6), cov=st.sampled_from(COVS))
def test_non_finite_input_is_a_data_error(examples, data, bad, where, cov):
    examples["non_finite_input"] += 1
    X, k = data
    X = X.copy()
    X.flat[where % X.size] = bad
    for est in (GaussianMixtureEM(k, covariance_type=cov), KMeans(k)):
        with pytest.raises(DataError):
            est.fit(X)


@pytest.mark.parametrize(
    "bad",
    [
        [[1.0, 2.0], [3.0]],
        [["a", "b"], ["c", "d"]],
        np.zeros((0, 2)),
        np.zeros((5, 0)),
        np.zeros((2, 2, 2)),
        np.array([[1 + 1j, 2], [3, 4]]),
        None,
    ],
    ids=["ragged", "strings", "no_rows", "no_columns", "3d", "complex", "none"],
)
def test_malformed_input_is_a_data_error(bad):
    for est in (GaussianMixtureEM(1), BernoulliMixtureEM(1), KMeans(1)):
        with pytest.raises(BayesmixError):
            est.fit(bad)


# --------------------------------------------------------------------------------------------
# invariances from a fixed start


@st.composite
def well_posed(draw):
    """Data from a K-component mixture and a start near it, for invariance checks."""
    k = draw(st.integers(1, 3))
    d = draw(st.integers(1, 3))
    cov = draw(st.sampled_from(COVS))
    seed = draw(st.integers(0, 2**32 - 1))
    r = np.random.default_rng(seed)
    n = 30 * k * d + 20
    centres = r.normal(0, 4, size=(k, d))
    z = r.integers(0, k, n)
    X = centres[z] + r.normal(size=(n, d)) * r.uniform(0.5, 2, size=d)
    w0 = r.dirichlet(np.full(k, 5.0))
    m0 = centres + r.normal(0, 0.5, size=(k, d))
    s0 = r.uniform(0.5, 2.0, size=(k, d))
    prec = {
        "full": np.stack([np.diag(1 / s**2) for s in s0]),
        "tied": np.diag(1 / s0[0] ** 2),
        "diag": 1 / s0**2,
        "spherical": 1 / s0[:, 0] ** 2,
    }[cov]
    return X, cov, w0, m0, prec, r


# summation order changes rounding; 15 EM steps amplify it (seen: 1.2e-8 relative on a
# covariance in the "long" profile), so compare to 1e-6, far below any real difference
RTOL = 1e-6


def _fixed_start_fit(X, cov, w0, m0, prec, reg_covar=1e-6):
    est = GaussianMixtureEM(
        len(w0),
        covariance_type=cov,
        weights_init=w0,
        means_init=m0,
        precisions_init=prec,
        max_iter=15,
        tol=1e-300,  # a fixed number of iterations, so both fits do the same steps
        reg_covar=reg_covar,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X)


@property_settings()
@given(case=well_posed())
def test_em_row_permutation_invariance(examples, case):
    examples["em_row_permutation"] += 1
    X, cov, w0, m0, prec, r = case
    a = _fixed_start_fit(X, cov, w0, m0, prec)
    b = _fixed_start_fit(X[r.permutation(len(X))], cov, w0, m0, prec)
    np.testing.assert_allclose(b.weights_, a.weights_, rtol=RTOL, atol=1e-12)
    np.testing.assert_allclose(b.means_, a.means_, rtol=RTOL, atol=1e-9)
    np.testing.assert_allclose(b.covariances_, a.covariances_, rtol=RTOL, atol=1e-9)
    _same_prefix(b.lower_bounds_, a.lower_bounds_)


def _same_prefix(x, y, shift=0.0, rtol=1e-10, atol=0.0):
    """Objectives per iteration agree (at convergence a fit may stop earlier on an exact tie)."""
    m = min(len(x), len(y))
    np.testing.assert_allclose(x[:m], y[:m] + shift, rtol=rtol, atol=atol)


@property_settings()
@given(case=well_posed())
def test_em_relabelling_the_start_permutes_the_result(examples, case):
    examples["em_relabel"] += 1
    X, cov, w0, m0, prec, r = case
    perm = r.permutation(len(w0))
    a = _fixed_start_fit(X, cov, w0, m0, prec)
    prec_p = prec if cov == "tied" else prec[perm]
    b = _fixed_start_fit(X, cov, w0[perm], m0[perm], prec_p)
    np.testing.assert_allclose(b.weights_, a.weights_[perm], rtol=RTOL, atol=1e-12)
    np.testing.assert_allclose(b.means_, a.means_[perm], rtol=RTOL, atol=1e-9)
    cov_a = a.covariances_ if cov == "tied" else a.covariances_[perm]
    np.testing.assert_allclose(b.covariances_, cov_a, rtol=RTOL, atol=1e-9)
    _same_prefix(b.lower_bounds_, a.lower_bounds_)


@property_settings()
@given(case=well_posed(), log_scale=st.floats(-3, 3), shift=st.floats(-1e3, 1e3))
def test_em_affine_equivariance(examples, case, log_scale, shift):
    examples["em_affine"] += 1
    X, cov, w0, m0, prec, r = case
    d = X.shape[1]
    if cov in ("full", "tied"):
        A = r.normal(size=(d, d)) + 2 * np.eye(d)
        assume(np.linalg.cond(A) < 50)
    elif cov == "diag":
        A = np.diag(np.exp(r.uniform(-3, 3, size=d)))
    else:
        A = np.eye(d)
    A = A * np.exp(log_scale)
    b = shift + r.normal(size=d)
    Ainv = np.linalg.inv(A)
    if cov in ("full", "tied"):
        prec_t = Ainv.T @ prec @ Ainv  # (K, D, D) or (D, D)
    elif cov == "diag":
        prec_t = prec / np.diag(A) ** 2
    else:
        prec_t = prec / A[0, 0] ** 2
    try:
        a = _fixed_start_fit(X, cov, w0, m0, prec, reg_covar=0.0)
        t = _fixed_start_fit(X @ A.T + b, cov, w0, m0 @ A.T + b, prec_t, reg_covar=0.0)
    except DataError:  # a collapsed component without regularisation: a documented error
        return
    examples["em_affine (compared, not a DataError)"] += 1
    np.testing.assert_allclose(t.weights_, a.weights_, rtol=1e-6, atol=1e-9)
    scale = np.abs(X @ A.T + b).max()
    np.testing.assert_allclose(t.means_, a.means_ @ A.T + b, rtol=1e-6, atol=1e-8 * scale)
    if cov in ("full", "tied"):
        expected = A @ a.covariances_ @ A.T
    elif cov == "diag":
        expected = a.covariances_ * np.diag(A) ** 2
    else:
        expected = a.covariances_ * A[0, 0] ** 2
    np.testing.assert_allclose(t.covariances_, expected, rtol=1e-5)
    # the objective per sample shifts by -log|det A|
    _same_prefix(
        t.lower_bounds_, a.lower_bounds_, -np.log(abs(np.linalg.det(A))), rtol=1e-7, atol=1e-7
    )
