"""Bad inputs reaching the EM estimators: clear errors of the documented classes."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from bayesmix._validation import DataError, ParameterError
from bayesmix.em import BernoulliMixtureEM, GaussianMixtureEM, KMeans

rng = np.random.default_rng(0)
X = rng.normal(size=(40, 3))
XB = (rng.uniform(size=(40, 3)) < 0.5).astype(int)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"n_components": 0}, "n_components must be at least 1"),
        ({"n_components": 2.0}, "n_components must be an integer"),
        ({"tol": 0.0}, "tol is out of range"),
        ({"tol": -1e-3}, "tol is out of range"),
        ({"max_iter": -1}, "max_iter is out of range"),
        ({"n_init": 0}, "n_init is out of range"),
        ({"reg_covar": -1.0}, "reg_covar is out of range"),
        ({"init_params": "kmeans+"}, "unknown init_params"),
        ({"weights_init": [0.5, 0.6]}, "weights_init is invalid"),
        ({"means_init": np.zeros((3, 3))}, "means_init is invalid"),
        ({"precisions_init": np.ones((2, 3))}, "precisions_init has the wrong shape"),
        ({"dtype": np.int32}, "dtype is not supported"),
        ({"chunk_size": 0}, "chunk_size is out of range"),
    ],
)
def test_gaussian_bad_parameters(params, match):
    kwargs = {"n_components": 2, **params}
    with pytest.raises(ParameterError, match=match):
        GaussianMixtureEM(**kwargs).fit(X)


def test_unknown_covariance_type_lists_choices():
    with pytest.raises(ParameterError) as info:
        GaussianMixtureEM(2, covariance_type="fll").fit(X)
    message = str(info.value)
    for name in ("'full'", "'tied'", "'diag'", "'spherical'"):
        assert name in message
    assert "did you mean 'full'" in message


@pytest.mark.parametrize("estimator", [GaussianMixtureEM(2), KMeans(2)])
def test_bad_data(estimator):
    with pytest.raises(DataError, match="Reshape your data"):
        estimator.fit(X[:, 0])
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(DataError, match="NaN"):
        estimator.fit(bad)
    bad[3, 1] = np.inf
    with pytest.raises(DataError, match="inf"):
        estimator.fit(bad)
    with pytest.raises(DataError, match="distinct"):
        estimator.fit(np.ones((10, 3)))
    with pytest.raises(DataError, match="Complex data not supported"):
        estimator.fit(X + 1j)


@pytest.mark.parametrize(
    "estimator", [GaussianMixtureEM(2), KMeans(2), BernoulliMixtureEM(2)], ids=type
)
def test_predict_before_fit_and_wrong_features(estimator):
    estimator = clone(estimator)  # a fresh one each run (the parameters are built at import)
    data = XB if isinstance(estimator, BernoulliMixtureEM) else X
    with pytest.raises(NotFittedError):
        estimator.predict(data)
    estimator.fit(data)
    with pytest.raises(ValueError, match="features"):
        estimator.predict(data[:, :2])
    with pytest.raises(DataError, match="Reshape your data"):
        estimator.predict(data[:, 0])


def test_gaussian_methods_need_fit():
    gm = GaussianMixtureEM(2)
    for method in (gm.predict_proba, gm.score_samples, gm.score, gm.bic, gm.aic, gm.icl):
        with pytest.raises(NotFittedError):
            method(X)
    with pytest.raises(NotFittedError):
        gm.sample(3)


def test_bernoulli_rejects_non_binary():
    with pytest.raises(DataError, match="binary"):
        BernoulliMixtureEM(2, binarize=None).fit(X)
    with pytest.raises(ParameterError, match="beta_a"):
        BernoulliMixtureEM(2, prior={"beta_a": -1.0}).fit(XB)
    with pytest.raises(ParameterError, match="smoothing"):
        BernoulliMixtureEM(2, smoothing=-0.1).fit(XB)


def test_full_covariance_constant_column_is_caught():
    Xc = X.copy()
    Xc[:, 1] = 2.0
    # diag tolerates it (reg_covar keeps the variance positive); full would be singular
    GaussianMixtureEM(2, covariance_type="diag").fit(Xc)
    GaussianMixtureEM(2, covariance_type="full").fit(Xc)  # as in sklearn, reg_covar > 0 helps
    with pytest.raises(DataError, match="constant column"):
        GaussianMixtureEM(2, covariance_type="full", reg_covar=0.0).fit(Xc)
    # a collapsed component without regularisation: the error says what to do
    Xd = np.concatenate([X[:5], np.repeat(X[5:6] + 10.0, 6, axis=0)])
    with pytest.raises(DataError, match="increase reg_covar"):
        GaussianMixtureEM(
            2, reg_covar=0.0, means_init=[X[:5].mean(0), X[5] + 10.0], random_state=0
        ).fit(Xd)


def test_kmeans_bad_parameters():
    with pytest.raises(ParameterError, match="n_clusters"):
        KMeans(0).fit(X)
    with pytest.raises(ParameterError, match="unknown init"):
        KMeans(2, init="kmeans++").fit(X)
    with pytest.raises(ParameterError, match="init has the wrong shape"):
        KMeans(2, init=np.zeros((3, 3))).fit(X)
