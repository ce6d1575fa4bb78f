"""BayesianMixtureClassifier: one NUTS-sampled mixture per class, Bayes' rule per draw.

References: the class-prior-only Brier score (a classifier that ignores x), the EM classifier
(with one Bernoulli component per class and Laplace smoothing its p are the Beta(1, 1)
posterior means, so on easy data the two give nearly the same probabilities), a brute-force
Bayes' rule over the stored draws, and the compiled-model cache (classes with the same K
share one model).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logsumexp

from bayesmix._validation import DataError, ParameterError
from bayesmix.em import MixtureClassifier
from bayesmix.inference import BayesianMixtureClassifier, _compiled

pytestmark = pytest.mark.slow  # real NUTS runs (2 chains x 200 draws per class)

P_TRUE = np.array(
    [
        [0.9, 0.8, 0.2, 0.1, 0.7, 0.3, 0.5, 0.2],
        [0.2, 0.3, 0.9, 0.8, 0.4, 0.6, 0.1, 0.7],
        [0.5, 0.1, 0.3, 0.7, 0.9, 0.8, 0.6, 0.2],
    ]
)


def _classes(seed, n=(70, 90, 50)):
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1, 2], n)
    X = (rng.uniform(size=(y.size, P_TRUE.shape[1])) < P_TRUE[y]).astype(float)
    return X, y


@pytest.fixture(scope="module")
def fitted():
    # the models this fit compiled (the cache is not cleared: other tests share it)
    before = set(_compiled._CACHE)
    X, y = _classes(0)
    clf = BayesianMixtureClassifier("bernoulli", 1, draws=200, tune=200, random_state=0)
    clf.fit(X, y)
    return clf, X, y, len(set(_compiled._CACHE) - before)


def _brier(proba, y):
    return float(np.mean(np.sum((proba - np.eye(proba.shape[1])[y]) ** 2, axis=1)))


def test_classes_of_the_same_k_share_one_compiled_model(fitted):
    clf, *_, n_models = fitted
    assert n_models == 1  # three classes of 70, 90 and 50 rows: one model, padded rows
    assert clf.draws_[0]["p"].shape == (400, 1, 8)
    np.testing.assert_array_equal(clf.n_components_, [1, 1, 1])


def test_probabilities_beat_the_class_prior_and_agree_with_em(fitted):
    clf, X, y, _ = fitted
    X_new, y_new = _classes(1, n=(200, 200, 200))
    proba = clf.predict_proba(X_new)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    prior_only = _brier(np.tile(clf.class_prior_, (len(y_new), 1)), y_new)
    assert _brier(proba, y_new) < 0.6 * prior_only, (_brier(proba, y_new), prior_only)
    # EM with Laplace smoothing: p at the Beta(1, 1) posterior means
    em = MixtureClassifier("bernoulli", 1, mixture_params={"smoothing": 1.0}).fit(X, y)
    diff = np.abs(proba - em.predict_proba(X_new))
    assert diff.mean() < 0.006 and diff.max() < 0.06, (diff.mean(), diff.max())
    assert np.mean(clf.predict(X_new) == em.predict(X_new)) > 0.97


def test_per_draw_probabilities_are_bayes_rule_on_each_draw(fitted):
    clf, X, y, _ = fitted
    X_new = X[:7]
    draws = clf.predict_proba_draws(X_new)
    assert draws.shape == (400, 7, 3)
    for s in (0, 123, 399):  # brute force: explicit products over the pixels
        jll = np.log(clf.class_prior_).copy() + np.zeros((7, 3))
        for c in range(3):
            p = clf.draws_[c]["p"][s, 0]
            jll[:, c] += np.sum(np.where(X_new == 1, np.log(p), np.log1p(-p)), axis=1)
        np.testing.assert_allclose(draws[s], np.exp(jll - logsumexp(jll, 1, keepdims=True)))
    mean, sd = clf.predict_proba(X_new), clf.predict_proba_sd(X_new)
    lower, upper = clf.predict_proba_interval(X_new, prob=0.9)
    np.testing.assert_allclose(mean, draws.mean(axis=0))
    np.testing.assert_allclose(sd, draws.std(axis=0))
    assert np.all(lower <= mean + 1e-12) and np.all(mean <= upper + 1e-12)
    assert np.all(sd > 0)  # the parameters are uncertain: so is P(c | x)
    # a hidden half: the densities of the observed pixels
    holes = X_new.copy()
    holes[:, 4:] = np.nan
    half = clf.predict_proba_draws(holes)
    p0 = clf.draws_[0]["p"][5, 0, :4]
    p1 = clf.draws_[1]["p"][5, 0, :4]
    ratio = np.prod(np.where(X_new[0, :4] == 1, p0 / p1, (1 - p0) / (1 - p1)))
    expect = ratio * clf.class_prior_[0] / clf.class_prior_[1]
    assert half[5, 0, 0] / half[5, 0, 1] == pytest.approx(expect, rel=1e-10)


def test_bad_arguments_say_what_to_do():
    X, y = _classes(2, n=(30, 30, 3))
    with pytest.raises(DataError, match="class 2 has 3 row"):
        BayesianMixtureClassifier("bernoulli", [1, 1, 4]).fit(X, y)
    with pytest.raises(ParameterError, match="3 positive ints"):
        BayesianMixtureClassifier("bernoulli", [1, 2]).fit(X, y)
    with pytest.raises(ParameterError, match="unknown family"):
        BayesianMixtureClassifier("gamma").fit(X, y)
    with pytest.raises(ParameterError, match="at least 2 classes"):
        BayesianMixtureClassifier("bernoulli").fit(X, np.zeros(len(y)))
    with pytest.raises(ParameterError, match="draws must be an integer"):
        BayesianMixtureClassifier("bernoulli", draws=0).fit(X, y)


def test_interval_probability_is_checked(fitted):
    clf, X, *_ = fitted
    with pytest.raises(ParameterError, match=r"prob must be a number in \(0, 1\)"):
        clf.predict_proba_interval(X[:2], prob=1.5)
