"""EM with values missing at random (Bernoulli, Poisson) and with partial labels (every family).

Missing values: the fitted parameters are a stationary point of the observed-data
log-likelihood, computed here independently (SciPy densities over each row's observed
features) and optimised by SciPy from EM's answer; without NaN, ``missing="model"`` is
bit-identical to ``missing="error"``. Partial labels: labelled rows keep their component,
the objective (unlabelled rows' log p(x_n) plus labelled rows' log w_k f_k(x_n)) never
decreases (hypothesis), and a few labels lower the error on the unlabelled rows.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from em_helpers import hypothesis_settings
from hypothesis import given
from hypothesis import strategies as st
from scipy import optimize, stats
from scipy.special import expit, logsumexp, softmax
from sklearn.exceptions import ConvergenceWarning
from sklearn.naive_bayes import BernoulliNB

from bayesmix._validation import DataError, ParameterError
from bayesmix.em import (
    BernoulliMixtureEM,
    CategoricalMixtureEM,
    GaussianMixtureEM,
    PoissonMixtureEM,
)

RNG_SEED = 20261204


def _remove(X, fraction, rng):
    """X with ``fraction`` of its entries set to NaN at random, no row left empty."""
    Xm = np.array(X, dtype=float)
    hole = rng.uniform(size=X.shape) < fraction
    empty = hole.all(axis=1)
    hole[empty, rng.integers(0, X.shape[1], size=int(empty.sum()))] = False
    Xm[hole] = np.nan
    return Xm


def _bernoulli_data(rng, n=300, d=6):
    z = rng.integers(0, 2, size=n)
    p = np.array([np.linspace(0.15, 0.4, d), np.linspace(0.85, 0.55, d)])
    return (rng.uniform(size=(n, d)) < p[z]).astype(float), z


def _poisson_data(rng, n=300, d=3):
    z = rng.integers(0, 2, size=n)
    rate = np.array([[1.5, 3.0, 0.7], [7.0, 4.0, 6.0]])[:, :d]
    return rng.poisson(rate[z]).astype(float), z


def _observed_loglik_bernoulli(w, p, X):
    """sum_n log sum_k w_k prod_{d observed} Bernoulli(x_nd | p_kd), with scipy.stats."""
    observed = ~np.isnan(X)
    comp = np.zeros((X.shape[0], len(w)))
    for k in range(len(w)):
        terms = stats.bernoulli.logpmf(np.where(observed, X, 0), p[k])
        comp[:, k] = np.where(observed, terms, 0.0).sum(axis=1)
    return float(logsumexp(comp + np.log(w), axis=1).sum())


def _observed_loglik_poisson(w, rate, X):
    observed = ~np.isnan(X)
    comp = np.zeros((X.shape[0], len(w)))
    for k in range(len(w)):
        terms = stats.poisson.logpmf(np.where(observed, X, 0), rate[k])
        comp[:, k] = np.where(observed, terms, 0.0).sum(axis=1)
    return float(logsumexp(comp + np.log(w), axis=1).sum())


def _scipy_improvement(loglik, theta0):
    """Relative improvement of -loglik that L-BFGS-B finds from EM's answer theta0."""
    start = -loglik(theta0)
    res = optimize.minimize(
        lambda t: -loglik(t), theta0, method="L-BFGS-B", options={"ftol": 1e-15, "gtol": 1e-10}
    )
    return (start - min(res.fun, start)) / abs(start)


@pytest.fixture(scope="module")
def bernoulli_missing():
    rng = np.random.default_rng(RNG_SEED)
    X, _ = _bernoulli_data(rng)
    return X, _remove(X, 0.25, rng)


@pytest.fixture(scope="module")
def poisson_missing():
    rng = np.random.default_rng(RNG_SEED + 1)
    X, _ = _poisson_data(rng)
    return X, _remove(X, 0.25, rng)


# ---------------------------------------------------------------------------------- missing
def test_bernoulli_missing_is_stationary_point_of_observed_likelihood(bernoulli_missing):
    _, Xm = bernoulli_missing
    em = BernoulliMixtureEM(
        2, smoothing=0, missing="model", tol=1e-13, max_iter=20000, random_state=0
    ).fit(Xm)
    assert em.converged_
    k, d = em.means_.shape
    # EM's log-likelihood is the independent computation
    loglik = _observed_loglik_bernoulli(em.weights_, em.means_, Xm)
    assert np.isclose(em.score(Xm) * len(Xm), loglik, rtol=1e-12)
    assert np.all(np.diff(em.lower_bounds_) >= -1e-12)

    def from_theta(t):
        return _observed_loglik_bernoulli(
            softmax(np.r_[0.0, t[: k - 1]]), expit(t[k - 1 :]).reshape(k, d), Xm
        )

    theta0 = np.r_[
        np.log(em.weights_[1:] / em.weights_[0]), np.log(em.means_ / (1 - em.means_)).ravel()
    ]
    assert _scipy_improvement(from_theta, theta0) < 1e-6


def test_poisson_missing_is_stationary_point_of_observed_likelihood(poisson_missing):
    _, Xm = poisson_missing
    em = PoissonMixtureEM(2, missing="model", tol=1e-13, max_iter=20000, random_state=0).fit(Xm)
    assert em.converged_
    k, d = em.means_.shape
    assert np.isclose(
        em.score(Xm) * len(Xm), _observed_loglik_poisson(em.weights_, em.means_, Xm), rtol=1e-12
    )

    def from_theta(t):
        return _observed_loglik_poisson(
            softmax(np.r_[0.0, t[: k - 1]]), np.exp(t[k - 1 :]).reshape(k, d), Xm
        )

    theta0 = np.r_[np.log(em.weights_[1:] / em.weights_[0]), np.log(em.means_).ravel()]
    assert _scipy_improvement(from_theta, theta0) < 1e-6


def test_complete_data_estimate_would_not_be_stationary(poisson_missing):
    """The check above can fail: the rates of the complete rows only are not stationary."""
    _, Xm = poisson_missing
    complete = ~np.isnan(Xm).any(axis=1)
    em = PoissonMixtureEM(2, tol=1e-13, max_iter=20000, random_state=0).fit(Xm[complete])
    k, d = em.means_.shape

    def from_theta(t):
        return _observed_loglik_poisson(
            softmax(np.r_[0.0, t[: k - 1]]), np.exp(t[k - 1 :]).reshape(k, d), Xm
        )

    theta0 = np.r_[np.log(em.weights_[1:] / em.weights_[0]), np.log(em.means_).ravel()]
    assert _scipy_improvement(from_theta, theta0) > 1e-4


def test_categorical_missing_answers_stationary_and_unchanged_without_nan():
    """Latent class model with missing answers (text items, None for a missing answer)."""
    rng = np.random.default_rng(RNG_SEED + 3)
    n = 400
    z = rng.integers(0, 2, n)
    tables = [
        np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]]),
        np.array([[0.8, 0.2], [0.3, 0.7]]),
        np.array([[0.5, 0.3, 0.1, 0.1], [0.1, 0.1, 0.3, 0.5]]),
    ]
    df = pd.DataFrame(
        {
            f"q{d}": np.array(["abcd"[rng.choice(p.shape[1], p=p[k])] for k in z], dtype=object)
            for d, p in enumerate(tables)
        }
    )
    kw = dict(random_state=0, tol=1e-8, max_iter=500)
    a = CategoricalMixtureEM(2, **kw).fit(df)
    b = CategoricalMixtureEM(2, **kw, missing="model").fit(df)
    assert np.array_equal(a.means_, b.means_) and np.array_equal(a.lower_bounds_, b.lower_bounds_)
    dfm = df.mask(rng.uniform(size=df.shape) < 0.25)
    dfm.loc[dfm.isna().all(axis=1), "q0"] = "a"
    em = CategoricalMixtureEM(
        2, smoothing=0, missing="model", tol=1e-13, max_iter=5000, random_state=0
    )
    em.fit(dfm)
    assert em.converged_ and np.all(np.diff(em.lower_bounds_) >= -1e-12)
    codes = np.column_stack(
        [
            dfm[c].map({level: i for i, level in enumerate(em.categories_[j])}).to_numpy(float)
            for j, c in enumerate(dfm)
        ]
    )

    def loglik(w, probs):
        comp = np.zeros((n, 2)) + np.log(w)
        for d in range(codes.shape[1]):
            seen = ~np.isnan(codes[:, d])
            c = np.nan_to_num(codes[:, d]).astype(int)
            comp += np.where(seen[:, None], np.log(probs[d][:, c]).T, 0.0)
        return float(logsumexp(comp, axis=1).sum())

    assert np.isclose(loglik(em.weights_, em.category_probs_), em.score(dfm) * n, rtol=1e-12)

    def from_theta(t):
        w, i, probs = softmax(np.r_[0.0, t[:1]]), 1, []
        for p in em.category_probs_:
            m = 2 * (p.shape[1] - 1)
            probs.append(softmax(np.c_[np.zeros(2), t[i : i + m].reshape(2, -1)], axis=1))
            i += m
        return loglik(w, probs)

    theta0 = np.r_[
        np.log(em.weights_[1] / em.weights_[0]),
        np.concatenate([np.log(p[:, 1:] / p[:, :1]).ravel() for p in em.category_probs_]),
    ]
    assert _scipy_improvement(from_theta, theta0) < 1e-6
    # a row with every answer missing is refused at predict time too
    with pytest.raises(DataError, match="every value missing"):
        em.predict(pd.DataFrame({"q0": [None], "q1": [None], "q2": [None]}))


@pytest.mark.parametrize(
    "make",
    [
        lambda m: BernoulliMixtureEM(2, random_state=3, tol=1e-8, max_iter=500, missing=m),
        lambda m: PoissonMixtureEM(2, random_state=3, tol=1e-8, max_iter=500, missing=m),
    ],
    ids=["bernoulli", "poisson"],
)
def test_no_missing_values_bit_identical(make, bernoulli_missing, poisson_missing):
    X = bernoulli_missing[0] if "Bernoulli" in type(make("error")).__name__ else poisson_missing[0]
    a, b = make("error").fit(X), make("model").fit(X)
    assert np.array_equal(a.means_, b.means_) and np.array_equal(a.weights_, b.weights_)
    assert np.array_equal(a.lower_bounds_, b.lower_bounds_)
    assert np.array_equal(a.predict_proba(X), b.predict_proba(X))


def test_bernoulli_one_component_is_naive_bayes_on_observed_columns(bernoulli_missing):
    """K = 1 per class: the class posterior of a row with NaN = BernoulliNB on its observed
    columns only (the missing features are summed out)."""
    X, Xm = bernoulli_missing
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    s = 0.5
    models = [BernoulliMixtureEM(1, smoothing=s, missing="model").fit(X[y == c]) for c in (0, 1)]
    prior = np.log(np.bincount(y) / len(y))
    for row in range(10):
        seen = ~np.isnan(Xm[row])
        nb = BernoulliNB(alpha=s).fit(X[:, seen], y)
        ours = np.array([m.score_samples(Xm[row : row + 1])[0] for m in models]) + prior
        ours = np.exp(ours - logsumexp(ours))
        np.testing.assert_allclose(ours, nb.predict_proba(X[row : row + 1, seen])[0], rtol=1e-10)


def test_missing_sample_weights_equal_repeated_rows(poisson_missing):
    _, Xm = poisson_missing
    w = np.random.default_rng(0).integers(0, 4, size=len(Xm))
    kw = dict(missing="model", tol=1e-12, max_iter=3000)
    # both start from one M-step on the same hard assignment
    resp = np.zeros((len(Xm), 2))
    resp[np.arange(len(Xm)), (np.nansum(Xm, axis=1) > 9).astype(int)] = 1
    rep = np.repeat(np.arange(len(Xm)), w)
    a = PoissonMixtureEM(2, **kw).initialize(Xm, sample_weight=w).m_step(Xm, resp, sample_weight=w)
    b = PoissonMixtureEM(2, **kw).initialize(Xm[rep]).m_step(Xm[rep], resp[rep])
    np.testing.assert_allclose(a.means_, b.means_, rtol=1e-12)
    a.set_params(warm_start=True).fit(Xm, sample_weight=w)
    b.set_params(warm_start=True).fit(Xm[rep])
    np.testing.assert_allclose(a.means_, b.means_, rtol=1e-8)


def test_missing_errors():
    X = np.array([[1.0, 0.0], [np.nan, 1.0], [0.0, 1.0], [1.0, 1.0]])
    with pytest.raises(DataError, match="missing='model'"):
        BernoulliMixtureEM(2).fit(X)
    with pytest.raises(DataError, match="every value missing.*row 1"):
        BernoulliMixtureEM(1, missing="model").fit(
            np.array([[1.0, 0.0], [np.nan, np.nan], [0.0, 1.0]])
        )
    with pytest.raises(DataError, match=r"column\(s\) with every value missing \(1\)"):
        PoissonMixtureEM(1, missing="model").fit(np.array([[1.0, np.nan], [2.0, np.nan]]))
    with pytest.raises(DataError, match="infinite"):
        PoissonMixtureEM(1, missing="model").fit(np.array([[1.0, np.inf], [2.0, 1.0]]))
    with pytest.raises(ParameterError, match="missing"):
        PoissonMixtureEM(1, missing="drop").fit([[1.0], [2.0]])
    # predict with NaN on a model fitted with missing="error": the same clear error
    est = PoissonMixtureEM(1).fit([[1.0], [2.0]])
    with pytest.raises(DataError, match="missing='model'"):
        est.predict([[np.nan]])


# ---------------------------------------------------------------------------------- labels
def _overlapping_gaussians(rng, n=600):
    z = rng.integers(0, 2, size=n)
    means = np.array([[0.0, 0.0], [1.6, 0.8]])
    cov = np.array([[[1.0, 0.6], [0.6, 1.0]], [[1.0, -0.5], [-0.5, 1.0]]])
    X = np.array([rng.multivariate_normal(means[k], cov[k]) for k in z])
    return X, z


def test_labelled_rows_keep_their_component_and_objective_is_the_labelled_one():
    rng = np.random.default_rng(RNG_SEED + 2)
    X, z = _poisson_data(rng)
    labels = np.full(len(X), -1)
    labels[:30] = z[:30]
    em = PoissonMixtureEM(2, random_state=0, tol=1e-10, max_iter=2000).fit(X, labels=labels)
    # the objective = unlabelled rows' log p(x) + labelled rows' log w_k p(x | k), per row
    comp = np.column_stack(
        [
            stats.poisson.logpmf(X, em.means_[k]).sum(axis=1) + np.log(em.weights_[k])
            for k in (0, 1)
        ]
    )
    known = labels >= 0
    total = logsumexp(comp[~known], axis=1).sum() + comp[known, labels[known]].sum()
    np.testing.assert_allclose(em.lower_bound_, total / len(X), rtol=1e-9)
    # components follow the labels: component k has the rates of true group k
    assert em.means_[1].sum() > em.means_[0].sum() + 5
    # all -1 is the unsupervised fit
    a = PoissonMixtureEM(2, random_state=0).fit(X)
    b = PoissonMixtureEM(2, random_state=0).fit(X, labels=np.full(len(X), -1))
    assert np.array_equal(a.means_, b.means_)


def test_five_percent_labels_lower_the_error_on_unlabelled_rows():
    """Acceptance 3 (small version; validation/partial_labels.py runs the study)."""
    errors_unsup, errors_semi = [], []
    for seed in range(5):
        rng = np.random.default_rng(seed)
        X, z = _overlapping_gaussians(rng)
        labels = np.full(len(X), -1)
        known = rng.choice(len(X), size=len(X) // 20, replace=False)
        labels[known] = z[known]
        unknown = labels < 0
        unsup = GaussianMixtureEM(2, n_init=5, random_state=seed).fit(X)
        pred = unsup.predict(X)
        # the unsupervised labels are arbitrary: its best matching with the truth
        err_u = min(np.mean(pred[unknown] != z[unknown]), np.mean(pred[unknown] == z[unknown]))
        semi = GaussianMixtureEM(2, n_init=5, random_state=seed).fit(X, labels=labels)
        err_s = np.mean(semi.predict(X)[unknown] != z[unknown])
        errors_unsup.append(err_u)
        errors_semi.append(err_s)
    assert np.mean(errors_semi) < np.mean(errors_unsup)


@hypothesis_settings()
@given(
    seed=st.integers(0, 2**31 - 1),
    n_labelled=st.integers(0, 60),
    family=st.sampled_from(["gaussian", "poisson", "bernoulli"]),
    missing=st.booleans(),
)
def test_labelled_objective_never_decreases(seed, n_labelled, family, missing):
    rng = np.random.default_rng(seed)
    if family == "gaussian":
        X, z = _overlapping_gaussians(rng, n=120)
        est = GaussianMixtureEM(
            2, covariance_type="full", random_state=seed, max_iter=60, tol=1e-12
        )
        missing = False
    elif family == "poisson":
        X, z = _poisson_data(rng, n=120)
        est = PoissonMixtureEM(2, random_state=seed, max_iter=60, tol=1e-12)
    else:
        X, z = _bernoulli_data(rng, n=120)
        est = BernoulliMixtureEM(2, random_state=seed, max_iter=60, tol=1e-12)
    if missing:
        X = _remove(X, 0.2, rng)
        est.set_params(missing="model")
    labels = np.full(len(X), -1)
    idx = rng.choice(len(X), size=n_labelled, replace=False)
    labels[idx] = z[idx]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, labels=labels)
    bounds = est.lower_bounds_
    assert np.all(np.diff(bounds) >= -1e-9 * np.maximum(1.0, np.abs(bounds[1:])))


def test_label_errors():
    X = np.arange(12.0).reshape(6, 2)
    est = GaussianMixtureEM(2)
    with pytest.raises(
        DataError, match=r"labels holds 1 value\(s\) outside 0..1 and -1 \(first: row 2, 2\)"
    ):
        est.fit(X, labels=[0, 1, 2, -1, -1, -1])
    with pytest.raises(DataError, match=r"labels has the wrong shape: expected \(6,\)"):
        est.fit(X, labels=[0, 1])
    with pytest.raises(DataError, match="outside"):
        est.fit(X, labels=[0, 1, 0.5, -1, -1, -1])
    with pytest.raises(DataError, match="not numeric"):
        est.fit(X, labels=["a"] * 6)
    # y stays ignored, as for every scikit-learn clusterer
    a = GaussianMixtureEM(2, random_state=0).fit(X, y=np.arange(6) * 10)
    b = GaussianMixtureEM(2, random_state=0).fit(X)
    assert np.array_equal(a.means_, b.means_)
