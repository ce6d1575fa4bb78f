"""GaussianMixtureEM against sklearn.mixture.GaussianMixture from the same initial parameters."""

import warnings

import numpy as np
import pytest
from em_helpers import sklearn_start, three_blobs
from scipy import stats
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

from bayesmix.em import GaussianMixtureEM

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]
N_ITER = 12


@pytest.mark.parametrize("d", [1, 5])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_same_trajectory_as_sklearn(covariance_type, d):
    rng = np.random.default_rng(10 + d)
    X = three_blobs(rng, d)
    init = sklearn_start(X, covariance_type)
    ours = GaussianMixtureEM(
        3, covariance_type=covariance_type, tol=1e-300, max_iter=N_ITER, reg_covar=1e-6, **init
    )
    with pytest.warns(ConvergenceWarning):
        ours.fit(X)
    assert ours.lower_bounds_.shape == (N_ITER,)

    # sklearn's lower_bound_ after i iterations is the log-likelihood at iteration i
    reference = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for i in range(1, N_ITER + 1):
            sk = GaussianMixture(
                3, covariance_type=covariance_type, tol=0.0, max_iter=i, reg_covar=1e-6, **init
            ).fit(X)
            reference.append(sk.lower_bound_)
    reference = np.asarray(reference)
    np.testing.assert_allclose(ours.lower_bounds_, reference, rtol=1e-8, atol=0)
    assert ours.lower_bound_ == pytest.approx(sk.lower_bound_, rel=1e-8)

    for name in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        np.testing.assert_allclose(getattr(ours, name), getattr(sk, name), rtol=1e-6, atol=1e-8)
    np.testing.assert_array_equal(ours.predict(X), sk.predict(X))
    np.testing.assert_allclose(ours.predict_proba(X), sk.predict_proba(X), atol=1e-8)
    np.testing.assert_allclose(ours.score_samples(X), sk.score_samples(X), rtol=1e-9)
    assert ours.bic(X) == pytest.approx(sk.bic(X), rel=1e-9)
    assert ours.aic(X) == pytest.approx(sk.aic(X), rel=1e-9)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_score_samples_against_scipy(covariance_type):
    """log p(x) from our E-step equals a direct SciPy mixture density."""
    rng = np.random.default_rng(3)
    X = three_blobs(rng, 3, n=180)
    gm = GaussianMixtureEM(3, covariance_type=covariance_type, random_state=0).fit(X)
    k, d = gm.means_.shape
    if covariance_type == "full":
        covs = gm.covariances_
    elif covariance_type == "tied":
        covs = np.broadcast_to(gm.covariances_, (k, d, d))
    elif covariance_type == "diag":
        covs = np.stack([np.diag(v) for v in gm.covariances_])
    else:
        covs = np.stack([v * np.eye(d) for v in gm.covariances_])
    dens = sum(
        gm.weights_[j] * stats.multivariate_normal(gm.means_[j], covs[j]).pdf(X) for j in range(k)
    )
    np.testing.assert_allclose(gm.score_samples(X), np.log(dens), rtol=1e-10)
    # explicit latent-indicator computation of the responsibilities
    joint = np.stack(
        [
            gm.weights_[j] * stats.multivariate_normal(gm.means_[j], covs[j]).pdf(X)
            for j in range(k)
        ],
        axis=1,
    )
    np.testing.assert_allclose(
        gm.predict_proba(X), joint / joint.sum(1, keepdims=True), atol=1e-10
    )
