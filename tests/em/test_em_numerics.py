"""Numerical soundness of the Gaussian EM engine: far-apart clusters, huge offsets, overflow,
the fast (expanded) route against the residual route, and degenerate-component warnings."""

import warnings

import numpy as np
import pytest
from em_helpers import fit_iterations, rough_start, three_blobs
from sklearn.exceptions import ConvergenceWarning

from bayesmix._validation import DataError
from bayesmix.em import DegenerateComponentWarning, GaussianMixtureEM
from bayesmix.em import _gaussian_kernels as G

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_fast_route_and_residual_route_give_the_same_fit(monkeypatch, covariance_type):
    X = three_blobs(np.random.default_rng(3), 4, n=900)
    start = rough_start(X, covariance_type, np.random.default_rng(0))
    fast = fit_iterations(X, covariance_type, start, 8)
    if covariance_type in ("diag", "spherical") or G._use_products(3, 4):
        assert fast._estep["fast"] is not None  # ordinary data take the fast route
    monkeypatch.setattr(G, "_fast_threshold", lambda dtype: -1.0)
    sound = fit_iterations(X, covariance_type, start, 8)
    assert sound._estep["fast"] is None
    for name in ("weights_", "means_", "covariances_", "lower_bounds_"):
        np.testing.assert_allclose(
            getattr(sound, name), getattr(fast, name), rtol=1e-10, atol=1e-12
        )


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_translation_by_1e8_changes_nothing_but_the_means(covariance_type):
    # clusters of sd ~1 at 1e8: the fit of X + 1e8 is the fit of X moved by 1e8, to the
    # rounding of the data (eps * 1e8 ~ 1e-8 on values of order 1)
    X = three_blobs(np.random.default_rng(4), 2, n=450)
    start = rough_start(X, covariance_type, np.random.default_rng(0))
    ref = fit_iterations(X, covariance_type, start, 8)
    moved = dict(start, means_init=start["means_init"] + 1e8)
    est = fit_iterations(X + 1e8, covariance_type, moved, 8)
    np.testing.assert_allclose(est.weights_, ref.weights_, atol=1e-6)
    np.testing.assert_allclose(est.means_ - 1e8, ref.means_, atol=1e-6)
    np.testing.assert_allclose(est.covariances_, ref.covariances_, rtol=1e-5, atol=1e-6)


def test_clusters_1e8_apart_have_their_own_variances():
    rng = np.random.default_rng(5)
    X = np.concatenate([rng.normal(size=(80, 2)), 1e8 + rng.normal(size=(80, 2))])
    for covariance_type in COVARIANCE_TYPES:
        est = GaussianMixtureEM(2, covariance_type=covariance_type, random_state=0).fit(X)
        order = np.argsort(est.means_[:, 0])
        for j, part in enumerate((X[:80], X[80:])):
            np.testing.assert_allclose(est.means_[order[j]], part.mean(axis=0), atol=1e-7)
            if covariance_type == "full":
                expected = np.cov(part.T, bias=True) + 1e-6 * np.eye(2)
                np.testing.assert_allclose(est.covariances_[order[j]], expected, rtol=1e-6)
            elif covariance_type == "diag":
                expected = part.var(axis=0) + 1e-6
                np.testing.assert_allclose(est.covariances_[order[j]], expected, rtol=1e-6)


def test_overflowing_covariance_raises_a_data_error():
    X = np.array([[0.0]] + [[1.3e155]] * 8)  # the variance, 1.7e309, exceeds 1.8e308
    for covariance_type in ("full", "tied"):
        est = GaussianMixtureEM(1, covariance_type=covariance_type, random_state=0)
        with np.errstate(all="ignore"), pytest.raises(DataError, match="overflows.*rescale"):
            est.fit(X)


def test_variance_near_the_top_of_the_range_is_exact():
    # variance 1.7e307 (the largest squared residual, 1.3e308, is close to the limit): the
    # second moments and their symmetrisation must not overflow on the way
    X = np.array([[0.0]] + [[1.3e154]] * 8)
    expected = np.var(X / 1e150) * 1e300
    for covariance_type in ("full", "tied"):
        est = GaussianMixtureEM(1, covariance_type=covariance_type, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(X)
        assert float(np.ravel(est.covariances_)[0]) == pytest.approx(expected, rel=1e-12)
        assert float(est.means_[0, 0]) == pytest.approx(1.3e154 * 8 / 9, rel=1e-14)


def test_empty_component_warns_with_what_to_do():
    X = np.random.default_rng(6).normal(size=(100, 2))
    est = GaussianMixtureEM(2, means_init=[[0.0, 0.0], [1e6, 1e6]], random_state=0)
    with pytest.warns(DegenerateComponentWarning, match=r"component\(s\) \[1\] are empty.*fewer"):
        est.fit(X)
    assert issubclass(DegenerateComponentWarning, UserWarning)


@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical"])
def test_collapsed_component_warns_and_ordinary_fits_do_not(covariance_type):
    rng = np.random.default_rng(7)
    X = np.concatenate([rng.normal(size=(50, 2)), np.tile([[3.0, 3.0]], (200, 1))])
    est = GaussianMixtureEM(2, covariance_type=covariance_type, random_state=0)
    with pytest.warns(DegenerateComponentWarning, match="collapsed onto repeated points"):
        est.fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DegenerateComponentWarning)
        GaussianMixtureEM(3, covariance_type=covariance_type, random_state=0).fit(
            three_blobs(rng, 2)
        )


def test_batched_precision_falls_back_when_lu_fails(monkeypatch):
    # found by the long hypothesis profile: data at 1e19 gave a Cholesky factor that LU
    # (np.linalg.solve) called singular; the per-component path must take over, never a
    # bare LinAlgError
    from bayesmix.em import _gaussian_kernels as gaussian

    cov = np.stack([np.eye(2) * 4.0, np.array([[2.0, 0.5], [0.5, 1.0]])])
    expected = gaussian._prec_chol_full(cov)

    def singular(*args, **kwargs):
        raise np.linalg.LinAlgError("Singular matrix")

    monkeypatch.setattr(gaussian.np.linalg, "solve", singular)
    got = gaussian._prec_chol_full(cov)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    for k in range(2):  # U U^T is the precision matrix
        np.testing.assert_allclose(got[k] @ got[k].T, np.linalg.inv(cov[k]), rtol=1e-12)
