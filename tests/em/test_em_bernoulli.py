"""BernoulliMixtureEM on binarised digits, and its log density against a direct computation."""

import numpy as np
import pytest
from scipy.special import logsumexp
from sklearn.preprocessing import binarize as sk_binarize

from bayesmix._validation import DataError, ParameterError
from bayesmix.data import load_digits
from bayesmix.em import BernoulliMixtureEM


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(binary=True, threshold=8)
    return X.astype(np.float64), y


def test_log_density_against_explicit_sum(digits):
    X = digits[0][:200]
    bm = BernoulliMixtureEM(4, random_state=0, max_iter=200).fit(X)
    p = bm.means_
    log_joint = np.log(bm.weights_) + X @ np.log(p).T + (1 - X) @ np.log1p(-p).T
    np.testing.assert_allclose(bm.score_samples(X), logsumexp(log_joint, axis=1), rtol=1e-12)
    np.testing.assert_allclose(
        bm.predict_proba(X), np.exp(log_joint - logsumexp(log_joint, 1, keepdims=True)), atol=1e-12
    )
    assert np.all((p > 0) & (p < 1))  # smoothing keeps p inside (0, 1)
    assert bm.probs_ is bm.means_


def test_components_look_like_digits(digits):
    X, y = digits
    bm = BernoulliMixtureEM(10, n_init=3, random_state=0, max_iter=200, tol=1e-6).fit(X)
    labels = bm.predict(X)
    correlations = []
    for k in range(10):
        members = y[labels == k]
        if members.size == 0:
            continue
        majority = np.bincount(members, minlength=10).argmax()
        class_mean = X[y == majority].mean(axis=0)
        correlations.append(np.corrcoef(bm.means_[k], class_mean)[0, 1])
    correlations = np.asarray(correlations)
    assert len(correlations) >= 9
    assert np.all(correlations > 0.5), correlations
    assert np.median(correlations) > 0.8, correlations


def test_generative_classifier(digits):
    """One mixture (K=3) per class; classify by the largest log p(x | class) + log p(class)."""
    X, y = digits
    order = np.random.default_rng(0).permutation(len(y))
    train, test = order[:1300], order[1300:]
    scores = np.empty((len(test), 10))
    for c in range(10):
        Xc = X[train][y[train] == c]
        model = BernoulliMixtureEM(3, n_init=2, random_state=c, max_iter=200).fit(Xc)
        scores[:, c] = model.score_samples(X[test]) + np.log(len(Xc) / len(train))
    accuracy = np.mean(scores.argmax(axis=1) == y[test])
    print(f"binarised digits, 3 Bernoulli components per class: test accuracy {accuracy:.3f}")
    assert accuracy > 0.8


def test_sample_draws_binary_images(digits):
    X = digits[0]
    bm = BernoulliMixtureEM(10, random_state=0, max_iter=50).fit(X)
    images, labels = bm.sample(500)
    assert images.shape == (500, 64) and labels.shape == (500,)
    assert np.issubdtype(images.dtype, np.integer) and set(np.unique(images)) <= {0, 1}
    assert np.issubdtype(labels.dtype, np.integer)
    # per-component pixel frequencies of the draws match the fitted probabilities
    k = np.bincount(labels).argmax()
    freq = images[labels == k].mean(axis=0)
    se = np.sqrt(bm.means_[k] * (1 - bm.means_[k]) / np.sum(labels == k))
    assert np.all(np.abs(freq - bm.means_[k]) < 5 * se + 1e-9)


def test_smoothing_zero_is_maximum_likelihood():
    """smoothing=0 gives p = sum_n r x / n_k exactly, and p of exactly 0 or 1 is handled."""
    X = np.array([[1, 1, 0], [1, 1, 0], [1, 0, 0], [0, 0, 1], [0, 0, 1]])
    bm = BernoulliMixtureEM(2, smoothing=0.0, random_state=0, tol=1e-10, max_iter=500).fit(X)
    resp = bm.predict_proba(X)
    expected = (resp.T @ X) / resp.sum(axis=0)[:, None]
    np.testing.assert_allclose(bm.means_, expected, atol=1e-6)
    assert np.isfinite(bm.score_samples(X)).all()
    # a row impossible under every component gets log density -inf and uniform
    # responsibilities. EM only approaches p = 0 (1e-64 here), so set the exact ML estimate it
    # converges to: component 0 = rows 0-2, component 1 = rows 3-4
    exact = np.array([[1.0, 2.0 / 3.0, 0.0], [0.0, 0.0, 1.0]])
    order = np.argsort(bm.means_[:, 2])
    np.testing.assert_allclose(bm.means_[order], exact, atol=1e-6)
    bm._set_parameters((np.array([0.6, 0.4]), exact))
    impossible = np.array([[1, 0, 1]])  # x_0 = 1 where p = 0 in component 1, x_2 likewise in 0
    assert bm.score_samples(impossible)[0] == -np.inf
    np.testing.assert_allclose(bm.predict_proba(impossible), [[0.5, 0.5]])
    possible = np.array([[1, 0, 0], [0, 0, 1]])
    assert np.isfinite(bm.score_samples(possible)).all()


def test_binarize_thresholds_as_sklearn_binarize():
    """binarize=t fits and scores exactly what sklearn.preprocessing.binarize(X, threshold=t)
    gives with binarize=None (BernoulliNB's rule: values > t are 1)."""
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(0, 1, (40, 5)), rng.normal(2, 1, (40, 5))])
    for t in (0.0, 1.5):
        a = BernoulliMixtureEM(2, binarize=t, random_state=0, tol=1e-8).fit(X)
        Xb = sk_binarize(X, threshold=t)
        b = BernoulliMixtureEM(2, binarize=None, random_state=0, tol=1e-8).fit(Xb)
        np.testing.assert_array_equal(a.means_, b.means_)
        np.testing.assert_array_equal(a.lower_bounds_, b.lower_bounds_)
        np.testing.assert_array_equal(a.score_samples(X), b.score_samples(Xb))
        np.testing.assert_array_equal(a.predict(X), b.predict(Xb))


def test_default_binarize_leaves_binary_data_unchanged(digits):
    """The default (0.0) gives the numbers of binarize=None (the former behaviour) on 0/1 data."""
    X = digits[0][:300]
    a = BernoulliMixtureEM(3, random_state=1, n_init=2).fit(X)
    b = BernoulliMixtureEM(3, random_state=1, n_init=2, binarize=None).fit(X)
    np.testing.assert_array_equal(a.means_, b.means_)
    np.testing.assert_array_equal(a.weights_, b.weights_)
    np.testing.assert_array_equal(a.lower_bounds_, b.lower_bounds_)
    np.testing.assert_array_equal(a.predict_proba(X.astype(bool)), b.predict_proba(X))


def test_binarize_none_requires_binary_data_and_bad_thresholds_are_refused():
    X = np.random.default_rng(0).normal(size=(20, 3))
    with pytest.raises(DataError, match="binary"):
        BernoulliMixtureEM(2, binarize=None).fit(X)
    with pytest.raises(DataError, match="non-finite"):
        BernoulliMixtureEM(2).fit(np.where(X > 1, np.nan, X))
    for bad in ("0.5", np.nan, True):
        with pytest.raises(ParameterError, match="binarize"):
            BernoulliMixtureEM(2, binarize=bad).fit(X)
