"""MixtureClassifier: Bayes' rule over one mixture per class.

References: scikit-learn's QuadraticDiscriminantAnalysis (one full-covariance Gaussian per
class, maximum-likelihood covariances as EM's) and BernoulliNB (one Bernoulli component per
class, the same pseudo-counts); iris 10-fold cross-validation against mclust's EDDA
(0.0267); BIC choices against the estimators' own ``bic``; scikit-learn's estimator checks.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.discriminant_analysis import QuadraticDiscriminantAnalysis
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.naive_bayes import BernoulliNB
from sklearn.utils.estimator_checks import parametrize_with_checks

from bayesmix._validation import DataError, ParameterError
from bayesmix.em import BernoulliMixtureEM, GaussianMixtureEM, MixtureClassifier


def _three_classes(seed=0, n=(60, 80, 40)):
    rng = np.random.default_rng(seed)
    means = np.array([[0.0, 0.0], [2.0, 1.0], [-1.0, 2.5]])
    covs = [
        np.array([[1.0, 0.3], [0.3, 0.5]]),
        np.eye(2) * 0.7,
        np.array([[0.4, -0.2], [-0.2, 1.2]]),
    ]
    X = np.vstack(
        [rng.multivariate_normal(m, c, size=k) for m, c, k in zip(means, covs, n, strict=True)]
    )
    y = np.repeat(np.array(["a", "b", "c"]), n)
    return X, y


def test_one_gaussian_per_class_is_qda():
    X, y = _three_classes()
    clf = MixtureClassifier(n_components=1, reg_covar=0.0, random_state=0).fit(X, y)
    qda = QuadraticDiscriminantAnalysis(reg_param=0.0, store_covariance=True).fit(X, y)
    # both estimate each class's covariance by maximum likelihood (divided by n_c)
    for est, cov in zip(clf.estimators_, qda.covariance_, strict=True):
        np.testing.assert_allclose(est.covariances_[0], cov, rtol=1e-10)
    X_new = np.random.default_rng(1).normal(0.5, 1.5, size=(200, 2))
    np.testing.assert_array_equal(clf.classes_, qda.classes_)
    np.testing.assert_allclose(clf.class_prior_, qda.priors_, rtol=1e-12)
    np.testing.assert_allclose(clf.predict_proba(X_new), qda.predict_proba(X_new), atol=1e-8)
    np.testing.assert_array_equal(clf.predict(X_new), qda.predict(X_new))
    # with other class priors they differ: the check can fail
    flat = QuadraticDiscriminantAnalysis(priors=[1 / 3] * 3).fit(X, y)
    assert np.abs(clf.predict_proba(X_new) - flat.predict_proba(X_new)).max() > 1e-3


def test_one_bernoulli_per_class_is_bernoulli_naive_bayes():
    rng = np.random.default_rng(2)
    p = rng.uniform(0.05, 0.95, size=(3, 12))
    y = rng.integers(0, 3, 300)
    X = (rng.uniform(size=(300, 12)) < p[y]).astype(int)
    clf = MixtureClassifier("bernoulli", 1, mixture_params={"smoothing": 0.7}, random_state=0)
    clf.fit(X, y)
    nb = BernoulliNB(alpha=0.7).fit(X, y)
    np.testing.assert_allclose(clf.predict_proba(X), nb.predict_proba(X), atol=1e-10)


def test_iris_ten_fold_error_matches_mclust_edda():
    X, y = load_iris(return_X_y=True)
    clf = MixtureClassifier(n_components=1, random_state=0)
    acc = cross_val_score(clf, X, y, cv=StratifiedKFold(10, shuffle=True, random_state=0))
    assert 1.0 - acc.mean() <= 0.03, acc


def test_bic_chooses_per_class_as_the_estimators_bic_says():
    rng = np.random.default_rng(3)
    two = np.vstack([rng.normal(-3, 0.5, (60, 2)), rng.normal(3, 0.5, (60, 2))])
    one = rng.normal(0, 1, (80, 2)) + [0, 8]
    X, y = np.vstack([two, one]), np.repeat([0, 1], [120, 80])
    clf = MixtureClassifier(n_components="bic", max_components=4, random_state=0).fit(X, y)
    np.testing.assert_array_equal(clf.n_components_, [2, 1])
    assert clf.bic_.shape == (2, 4)
    np.testing.assert_array_equal(np.nanargmin(clf.bic_, axis=1) + 1, clf.n_components_)
    seeds = np.random.RandomState(0).randint(np.iinfo(np.int32).max, size=2)
    for c, rows in enumerate((y == 0, y == 1)):
        for k in range(1, 5):
            ref = GaussianMixtureEM(k, random_state=int(seeds[c])).fit(X[rows])
            assert clf.bic_[c, k - 1] == pytest.approx(ref.bic(X[rows]), rel=1e-10)


def test_bic_keeps_only_the_chosen_mixtures_warnings():
    X, y = _three_classes(n=(30, 30, 30))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        MixtureClassifier(n_components="bic", max_components=6, random_state=0).fit(X, y)
        with warnings.catch_warnings(record=True) as direct:
            warnings.simplefilter("always")
            GaussianMixtureEM(6, random_state=0).fit(X[y == "a"])
    assert len(caught) - len(direct) <= 3  # at most the chosen mixtures' own warnings


def test_sample_draws_the_requested_classes():
    X, y = _three_classes()
    clf = MixtureClassifier(random_state=0).fit(X, y)
    Xs, ys = clf.sample(4000)
    assert Xs.shape == (4000, 2)
    freq = np.array([np.mean(ys == c) for c in clf.classes_])
    np.testing.assert_allclose(freq, clf.class_prior_, atol=0.03)
    # each class's rows follow its Gaussian (mean within 4 standard errors)
    for c, est in zip(clf.classes_, clf.estimators_, strict=True):
        rows = Xs[ys == c]
        se = rows.std(axis=0) / np.sqrt(len(rows))
        assert np.all(np.abs(rows.mean(axis=0) - est.means_[0]) < 4 * se)
    Xb, yb = clf.sample(7, y="b")
    assert Xb.shape == (7, 2) and set(yb) == {"b"}
    Xm, ym = clf.sample(y=["c", "a", "c"])
    np.testing.assert_array_equal(ym, ["c", "a", "c"])
    again, _ = MixtureClassifier(random_state=0).fit(X, y).sample(4000)
    np.testing.assert_array_equal(again, Xs)
    with pytest.raises(ParameterError, match="unknown class 'z'"):
        clf.sample(2, y="z")


def test_a_class_with_fewer_rows_than_components_is_a_data_error_naming_it():
    X, y = _three_classes(n=(40, 40, 30))
    with pytest.raises(DataError, match=r"class 'c' has 30 row\(s\), fewer than n_comp"):
        MixtureClassifier(n_components=31).fit(X, y)


@pytest.mark.parametrize(
    ("kwargs", "y_change", "match"),
    [
        ({"n_components": 0}, None, "positive int or 'bic'"),
        ({"missing": "drop"}, None, "missing must be 'error' or 'model'"),
        ({"n_components": "aic"}, None, "positive int or 'bic'"),
        ({"family": "gamma"}, None, "unknown family: expected one of"),
        ({"class_prior": [0.5, 0.5]}, None, "3 non-negative numbers"),
        ({"mixture_params": {"smoothing": 1.0}}, None, r"\['smoothing'\] are not parameters"),
        ({}, "one", "at least 2 classes"),
    ],
)
def test_bad_arguments_say_what_to_do(kwargs, y_change, match):
    X, y = _three_classes(n=(40, 40, 30))
    if y_change == "one":
        y = np.zeros(len(y), dtype=int)
    with pytest.raises(ParameterError, match=match):
        MixtureClassifier(**kwargs).fit(X, y)


def test_given_class_prior_moves_the_decision():
    X, y = _three_classes()
    flat = MixtureClassifier(random_state=0).fit(X, y)
    skewed = MixtureClassifier(class_prior=[8, 1, 1], random_state=0).fit(X, y)
    np.testing.assert_allclose(skewed.class_prior_, [0.8, 0.1, 0.1])
    lp = np.log(skewed.class_prior_) - np.log(flat.class_prior_)
    expect = flat.predict_log_proba(X) + lp
    expect -= np.log(np.exp(expect).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(skewed.predict_log_proba(X), expect, atol=1e-10)


@parametrize_with_checks(
    [
        MixtureClassifier(random_state=0),
        MixtureClassifier("bernoulli", 1, random_state=0),
        MixtureClassifier("bernoulli", 1, missing="model", random_state=0),
    ]
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_bernoulli_class_mixtures_are_the_estimators_fits():
    rng = np.random.default_rng(4)
    X = (rng.uniform(size=(120, 6)) < 0.4).astype(int)
    y = np.repeat([0, 1], 60)
    clf = MixtureClassifier("bernoulli", 2, random_state=0).fit(X, y)
    seeds = np.random.RandomState(0).randint(np.iinfo(np.int32).max, size=2)
    for c in (0, 1):
        ref = BernoulliMixtureEM(2, random_state=int(seeds[c])).fit(X[y == c])
        np.testing.assert_allclose(clf.estimators_[c].means_, ref.means_)


# -- BIC with columns constant within a class ------------------------------------------------


def _binary_classes(seed=5, n=80, d=10, n_const=4):
    """Two classes of binary rows, each a 2-component mixture; the last columns always off."""
    rng = np.random.default_rng(seed)
    blocks, labels = [], []
    for c in range(2):
        p = rng.uniform(0.1, 0.9, size=(2, d))
        p[:, d - n_const :] = 0.0
        z = rng.integers(0, 2, n)
        blocks.append((rng.uniform(size=(n, d)) < p[z]).astype(float))
        labels.append(np.full(n, c))
    return np.vstack(blocks), np.concatenate(labels)


def test_bic_counts_the_columns_constant_in_a_class_once():
    # reference: the model whose components share the constant columns, fitted in two parts
    # (a mixture of the varying columns, one component for the constant ones); with maximum
    # likelihood the constant columns add nothing to log L, so its BIC is the varying part's
    # plus n_const log n
    X, y = _binary_classes()
    clf = MixtureClassifier(
        "bernoulli", "bic", max_components=3, mixture_params={"smoothing": 0.0}, random_state=0
    ).fit(X, y)
    seeds = np.random.RandomState(0).randint(np.iinfo(np.int32).max, size=2)
    varying = slice(0, 6)
    for c in range(2):
        Xc = X[y == c]
        for k in range(1, 4):
            ref = BernoulliMixtureEM(k, smoothing=0.0, random_state=int(seeds[c]))
            ref.fit(Xc[:, varying])
            expect = ref.bic(Xc[:, varying]) + 4 * np.log(len(Xc))
            assert clf.bic_[c, k - 1] == pytest.approx(expect, rel=1e-10)
            # the plain count charges K parameters for each constant column: it can fail
            full = BernoulliMixtureEM(k, smoothing=0.0, random_state=int(seeds[c])).fit(Xc)
            assert full.bic(Xc) - clf.bic_[c, k - 1] == pytest.approx(
                4 * (k - 1) * np.log(len(Xc)), rel=1e-10
            )


# -- missing values ----------------------------------------------------------------------------


def _digits_split(n_test=200):
    from sklearn.model_selection import train_test_split

    from bayesmix.data import load_digits

    X, y = load_digits()
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
    return X_tr.astype(float), X_te[:n_test].astype(float), y_tr, y_te[:n_test]


def test_predict_proba_with_a_hidden_half_is_naive_bayes_on_the_visible_columns():
    X_tr, X_te, y_tr, _ = _digits_split(60)
    clf = MixtureClassifier(
        "bernoulli", 1, mixture_params={"smoothing": 1.0}, missing="model", random_state=0
    ).fit(X_tr, y_tr)
    upper = np.arange(32)
    hidden = X_te.copy()
    hidden[:, 32:] = np.nan
    nb = BernoulliNB(alpha=1.0).fit(X_tr[:, upper], y_tr)
    np.testing.assert_allclose(
        clf.predict_proba(hidden), nb.predict_proba(X_te[:, upper]), atol=1e-10
    )
    # rows with masks of their own: one naive Bayes per row, fitted on its observed columns
    rng = np.random.default_rng(0)
    masks = rng.uniform(size=X_te.shape) < 0.5
    proba = clf.predict_proba(np.where(masks, np.nan, X_te))
    for i in range(12):
        seen = ~masks[i]
        ref = BernoulliNB(alpha=1.0).fit(X_tr[:, seen], y_tr)
        np.testing.assert_allclose(
            proba[i], ref.predict_proba(X_te[i : i + 1, seen])[0], atol=1e-10
        )
    # without missing="model" NaN is refused
    with pytest.raises(ValueError, match="NaN"):
        MixtureClassifier("bernoulli", 1).fit(X_tr, y_tr).predict_proba(hidden)


def _brute_force_impute(clf, X, y=None):
    """sum_c sum_k P(c, k | x_o) p_ckm by explicit products over the observed pixels."""
    out = X.copy()
    for i, row in enumerate(X):
        seen = ~np.isnan(row)
        joint, fill = [], []
        for c, est in enumerate(clf.estimators_):
            if y is not None and clf.classes_[c] != y[i]:
                continue
            for k in range(est.n_components):
                p = est.means_[k]
                lik = np.prod(np.where(row[seen] == 1, p[seen], 1 - p[seen]))
                joint.append(clf.class_prior_[c] * est.weights_[k] * lik)
                fill.append(p)
        post = np.array(joint) / np.sum(joint)
        out[i, ~seen] = (post @ np.array(fill))[~seen]
    return out


def test_impute_is_the_conditional_expectation_of_the_hidden_pixels():
    X_tr, X_te, y_tr, y_te = _digits_split(25)
    clf = MixtureClassifier(
        "bernoulli", 2, mixture_params={"smoothing": 0.5}, missing="model", random_state=0
    ).fit(X_tr, y_tr)
    holes = X_te.copy()
    holes[:, 32:] = np.nan
    holes[3, :5] = np.nan
    done = clf.impute(holes)
    assert not np.isnan(done).any()
    np.testing.assert_array_equal(done[~np.isnan(holes)], holes[~np.isnan(holes)])
    np.testing.assert_allclose(done, _brute_force_impute(clf, holes), atol=1e-10)
    known = clf.impute(holes, y=y_te)
    np.testing.assert_allclose(known, _brute_force_impute(clf, holes, y_te), atol=1e-10)
    assert np.abs(known - done).max() > 1e-3  # the label changes the answer: the check can fail
    # a row with nothing hidden is returned as it is; one label completes every row
    np.testing.assert_array_equal(clf.impute(X_te[:2]), X_te[:2])
    assert clf.impute(holes[:4], y=3).shape == (4, 64)
    with pytest.raises(ParameterError, match="unknown class 11"):
        clf.impute(holes[:2], y=11)
    with pytest.raises(ParameterError, match="expected missing='model'"):
        MixtureClassifier("bernoulli", 1).fit(X_tr, y_tr).impute(holes)


def test_impute_gaussian_is_the_conditional_normal_mean():
    X, y = _three_classes()
    clf = MixtureClassifier(n_components=1, missing="model", random_state=0).fit(X, y)
    holes = np.array([[0.5, np.nan], [np.nan, 1.0], [2.0, np.nan]])
    labels = np.array(["a", "b", "c"])
    done = clf.impute(holes, y=labels)
    for i, c in enumerate(labels):
        est = clf.estimators_[list(clf.classes_).index(c)]
        mu, S = est.means_[0], est.covariances_[0]
        o, m = (0, 1) if np.isnan(holes[i, 1]) else (1, 0)
        expect = mu[m] + S[m, o] / S[o, o] * (holes[i, o] - mu[o])
        assert done[i, m] == pytest.approx(expect, rel=1e-10)
    # unknown class: the conditional means weighed by P(c | x_o)
    proba = clf.predict_proba(holes)
    mix = clf.impute(holes)
    per_class = np.stack([clf.impute(holes, y=np.full(3, c)) for c in clf.classes_], axis=1)
    np.testing.assert_allclose(mix, np.einsum("nc,ncd->nd", proba, per_class), rtol=1e-10)


def test_completing_hidden_lower_halves_beats_the_class_mean_and_one_component():
    # Brier score of the completed pixels (their expectations against the true 0/1 pixels)
    X_tr, X_te, y_tr, y_te = _digits_split(150)
    holes = X_te.copy()
    holes[:, 32:] = np.nan

    def brier(filled):
        return np.mean((filled[:, 32:] - X_te[:, 32:]) ** 2)

    kw = {"mixture_params": {"smoothing": 0.5}, "missing": "model", "n_init": 3}
    mixture = MixtureClassifier("bernoulli", 3, random_state=0, **kw).fit(X_tr, y_tr)
    single = MixtureClassifier("bernoulli", 1, random_state=0, **kw).fit(X_tr, y_tr)
    class_mean = np.stack([X_tr[y_tr == c].mean(axis=0) for c in range(10)])[y_te]
    # the digit known: the style read from the upper half beats its class's mean image
    assert brier(mixture.impute(holes, y_te)) < brier(class_mean) - 0.003
    # the digit unknown: the mixtures beat one component per digit (naive Bayes)
    assert brier(mixture.impute(holes)) < brier(single.impute(holes)) - 0.003
