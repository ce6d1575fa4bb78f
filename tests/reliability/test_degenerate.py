"""Degenerate fits: collapse, empty components, K too large, extreme separation and scales.

The contract (issue 8): EM and the Bayesian models either handle the case (with a warning that
says what happened) or raise a clear error (a BayesmixError); no NaN ever reaches a result.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from bayesmix._validation import BayesmixError, DataError
from bayesmix.config import ModelSpec
from bayesmix.em import BernoulliMixtureEM, DegenerateComponentWarning, GaussianMixtureEM, KMeans

COVS = ["full", "diag", "spherical", "tied"]


def _assert_finite_fit(est):
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        if hasattr(est, name):
            assert np.all(np.isfinite(getattr(est, name))), name
    np.testing.assert_allclose(est.weights_.sum(), 1.0)
    assert np.all(est.weights_ >= 0)


def _duplicated(rng):
    """50 standard normal points and one point repeated 200 times."""
    return np.concatenate([rng.normal(size=(50, 2)), np.tile([[3.0, 3.0]], (200, 1))])


# --------------------------------------------------------------------------------------------
# EM


@pytest.mark.parametrize("covariance_type", COVS)
def test_em_collapse_on_duplicated_point_is_regularised(rng, covariance_type):
    X = _duplicated(rng)
    est = GaussianMixtureEM(2, covariance_type=covariance_type, random_state=0).fit(X)
    _assert_finite_fit(est)
    if covariance_type != "tied":
        k = int(np.argmax(est.weights_))
        np.testing.assert_allclose(est.weights_[k], 0.8, atol=1e-6)
        np.testing.assert_allclose(est.means_[k], [3.0, 3.0], atol=1e-9)
        # the collapsed covariance is exactly the regularisation
        var = np.atleast_1d(est.covariances_[k])
        var = np.diag(var) if var.ndim == 2 else var
        np.testing.assert_allclose(var, 1e-6, rtol=1e-6)
    assert np.all(np.isfinite(est.score_samples(X)))


@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical"])
def test_em_collapse_without_regularisation_raises_clear_error(rng, covariance_type):
    X = _duplicated(rng)
    est = GaussianMixtureEM(2, covariance_type=covariance_type, reg_covar=0.0, random_state=0)
    with pytest.raises(DataError, match="ill-defined covariance.*reg_covar"):
        est.fit(X)


def test_em_component_with_one_point(rng):
    X = np.concatenate([rng.normal(size=(50, 2)), [[100.0, 100.0]]])
    est = GaussianMixtureEM(2, random_state=0).fit(X)
    _assert_finite_fit(est)
    k = int(np.argmax(est.means_[:, 0]))
    np.testing.assert_allclose(est.weights_[k], 1 / 51)
    np.testing.assert_allclose(est.means_[k], [100.0, 100.0])
    np.testing.assert_allclose(np.diag(est.covariances_[k]), 1e-6, rtol=1e-3)
    assert est.predict([[100.0, 100.0]])[0] == k


@pytest.mark.parametrize("covariance_type", COVS)
def test_em_empty_component_stays_finite(rng, covariance_type):
    X = rng.normal(size=(100, 2))
    est = GaussianMixtureEM(
        2, covariance_type=covariance_type, means_init=[[0.0, 0.0], [1e6, 1e6]], random_state=0
    ).fit(X)
    _assert_finite_fit(est)
    assert est.weights_.min() < 1e-10  # the far component received no points
    assert np.all(np.isfinite(est.score_samples(X)))
    assert np.all(np.isfinite(est.predict_proba(X)))
    assert np.isfinite(est.bic(X))


def test_em_empty_component_warns(rng):
    X = rng.normal(size=(100, 2))
    est = GaussianMixtureEM(2, means_init=[[0.0, 0.0], [1e6, 1e6]], random_state=0)
    with pytest.warns(DegenerateComponentWarning, match=r"component\(s\) \[1\] are empty"):
        est.fit(X)


def test_em_collapse_warns(rng):
    with pytest.warns(DegenerateComponentWarning, match="collapsed onto repeated points"):
        GaussianMixtureEM(2, covariance_type="diag", random_state=0).fit(_duplicated(rng))


@pytest.mark.parametrize("covariance_type", COVS)
def test_em_more_components_than_clusters(rng, covariance_type):
    X = rng.normal(size=(200, 2))  # one cluster
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = GaussianMixtureEM(6, covariance_type=covariance_type, random_state=0).fit(X)
    _assert_finite_fit(est)
    # the mixture still describes one standard normal: its mean and covariance match
    mean = est.weights_ @ est.means_
    np.testing.assert_allclose(mean, X.mean(axis=0), atol=1e-6)


def test_more_components_than_distinct_points_is_a_clear_error():
    X = np.tile([[1.0, 2.0], [3.0, 4.0]], (20, 1))
    for est in (GaussianMixtureEM(3), KMeans(3), BernoulliMixtureEM(3)):
        data = (X > 2).astype(int) if isinstance(est, BernoulliMixtureEM) else X
        with pytest.raises(DataError, match="distinct"):
            est.fit(data)


def _separated(rng):
    """Two unit-variance clusters of 50 points, at 0 and at 1e8."""
    return np.concatenate([rng.normal(size=(50, 1)), 1e8 + rng.normal(size=(50, 1))])


@pytest.mark.parametrize("covariance_type", COVS)
def test_em_extremely_separated_clusters(rng, covariance_type):
    X = _separated(rng)
    est = GaussianMixtureEM(2, covariance_type=covariance_type, random_state=0).fit(X)
    _assert_finite_fit(est)
    order = np.argsort(est.means_[:, 0])
    np.testing.assert_allclose(est.weights_, 0.5)
    # to within the rounding of the data's own scale (eps * 1e8 ~ 2e-8)
    np.testing.assert_allclose(
        est.means_[order, 0], [X[:50].mean(), X[50:].mean()], rtol=1e-12, atol=1e-6
    )
    assert np.all(est.predict(X[:50]) == order[0]) and np.all(est.predict(X[50:]) == order[1])


@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical"])
def test_em_extremely_separated_clusters_variances(rng, covariance_type):
    X = _separated(rng)
    est = GaussianMixtureEM(2, covariance_type=covariance_type, random_state=0).fit(X)
    order = np.argsort(est.means_[:, 0])
    var = np.asarray(est.covariances_).reshape(2, -1)[order, 0]
    np.testing.assert_allclose(var, [X[:50].var() + 1e-6, X[50:].var() + 1e-6], rtol=1e-4)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_em_huge_offset_small_noise(rng, covariance_type):
    # two clusters 1 apart, sd 1e-2, sitting at 1e9: the relative spread is 1e-11
    z = np.repeat([0, 1], 60)
    X = 1e9 + z[:, None] + rng.normal(0, 1e-2, size=(120, 2))
    est = GaussianMixtureEM(2, covariance_type=covariance_type, random_state=0).fit(X)
    _assert_finite_fit(est)
    order = np.argsort(est.means_[:, 0])
    for k in range(2):
        np.testing.assert_allclose(est.means_[order[k]], X[z == k].mean(axis=0), rtol=0, atol=1e-6)
        var = est.covariances_[order[k]]
        var = np.diag(var) if var.ndim == 2 else var
        np.testing.assert_allclose(var, X[z == k].var(axis=0) + 1e-6, rtol=1e-3)
    assert (est.predict(X) == est.predict(X)[0]).sum() == 60


def test_em_huge_scale(rng):
    # the fit of data in units of 1e9 is the fit of the same data in units of 1 (EM is affine
    # equivariant when reg_covar is scaled too; the k-means++ start is scale invariant)
    z = np.repeat([0, 1], 60)
    small = (z * 10.0 + rng.normal(size=120))[:, None]
    est = GaussianMixtureEM(2, covariance_type="diag", random_state=0).fit(small * 1e9)
    ref = GaussianMixtureEM(2, covariance_type="diag", reg_covar=1e-24, random_state=0)
    ref.fit(small)
    _assert_finite_fit(est)
    np.testing.assert_allclose(est.weights_, ref.weights_, rtol=1e-8)
    np.testing.assert_allclose(est.means_, ref.means_ * 1e9, rtol=1e-8)
    np.testing.assert_allclose(est.covariances_, ref.covariances_ * 1e18, rtol=1e-8)


def test_bernoulli_em_constant_columns_and_extreme_probabilities(rng):
    B = (rng.random((100, 5)) < 0.5).astype(int)
    B[:, 0] = 0
    B[:, 1] = 1
    est = BernoulliMixtureEM(2, random_state=0).fit(B)
    assert np.all(np.isfinite(est.means_)) and np.all(np.isfinite(est.weights_))
    assert np.all(np.isfinite(est.score_samples(B)))
    # the smoothing keeps the probabilities strictly inside (0, 1)
    assert np.all((est.means_ > 0) & (est.means_ < 1))


# --------------------------------------------------------------------------------------------
# Bayesian models: one compiled model (1-D, K=2, diag, data-scaled priors, N=60) for all cases

SPEC = ModelSpec("gaussian", 2, "diag")


def _cases():
    rng = np.random.default_rng(11)
    return {
        "duplicated": np.concatenate([rng.normal(size=10), np.full(50, 2.0)]),
        "one_point": np.concatenate([rng.normal(size=59), [1e3]]),
        "one_cluster": rng.normal(size=60),
        "separated": np.concatenate([rng.normal(size=30), 1e6 + rng.normal(size=30)]),
        "offset_1e9": 1e9 + np.repeat([0.0, 1.0], 30) + rng.normal(0, 1e-2, 60),
    }


@pytest.fixture(scope="module")
def bayes_fits():
    from bayesmix.inference import fit_em, fit_map, sample_nuts

    out = {}
    for name, x in _cases().items():
        X = x[:, None]
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            try:
                tree = fit_em(SPEC, X, random_state=0)
                tree = fit_map(SPEC, X, random_seed=0, result=tree)
                tree = sample_nuts(
                    SPEC, X, draws=100, tune=150, chains=2, random_seed=0, result=tree
                )
                err = None
            except BayesmixError as exc:  # a clear, documented error is acceptable
                tree, err = None, exc
        out[name] = (X, tree, err, [str(w.message) for w in rec])
    return out


@pytest.mark.slow
@pytest.mark.parametrize("case", list(_cases()))
def test_bayesian_fits_have_no_nan(bayes_fits, case, numbers):
    X, tree, err, warned = bayes_fits[case]
    div = "" if tree is None else int(tree["sample_stats"]["diverging"].values.sum())
    outcome = f"error: {err}" if tree is None else f"fitted, {div} divergences"
    numbers[f"degenerate NUTS {case}"] = f"{outcome}; warnings: {sorted({w[:80] for w in warned})}"
    if tree is None:
        assert str(err) and "\n" not in str(err)
        return
    for group in ("em", "map", "posterior"):
        ds = tree[group].to_dataset()
        for name, da in ds.data_vars.items():
            assert np.all(np.isfinite(da.values)), (case, group, name)
    assert np.all(np.isfinite(tree["log_likelihood"]["x"].values)), case
    w = tree["posterior"]["w"].values
    np.testing.assert_allclose(w.sum(axis=-1), 1.0)


@pytest.mark.slow
def test_bayesian_fits_locate_well_defined_clusters(bayes_fits):
    # the separated and offset cases have two clear clusters: EM, MAP and the posterior mean
    # put a component on each (to a small fraction of the within-cluster spread)
    for case, spread in (("separated", 1.0), ("offset_1e9", 1e-2)):
        X, tree, err, _ = bayes_fits[case]
        assert err is None, err
        x = X[:, 0]
        truth = np.sort([x[:30].mean(), x[30:].mean()])
        for group in ("em", "map"):
            mu = np.sort(tree[group]["mu"].values[:, 0])
            np.testing.assert_allclose(mu, truth, rtol=0, atol=0.5 * spread, err_msg=group)
        post = np.sort(tree["posterior"]["mu"].mean(("chain", "draw")).values[:, 0])
        np.testing.assert_allclose(post, truth, rtol=0, atol=0.5 * spread)


@pytest.mark.slow
def test_bayesian_fit_with_many_divergences_warns(bayes_fits):
    X, tree, err, warned = bayes_fits["duplicated"]
    assert err is None
    assert int(tree["sample_stats"]["diverging"].values.sum()) > 10
    assert any("diverg" in w.lower() for w in warned), warned
