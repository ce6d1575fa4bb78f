"""scikit-learn's estimator checks for GaussianMixtureEM, BernoulliMixtureEM and KMeans.

BernoulliMixtureEM accepts binary data only (it raises DataError otherwise, on purpose), but
most of scikit-learn's generic checks fit on continuous Gaussian data, and scikit-learn has no
input tag for "binary only". Those checks are declared as expected failures below, each with
its reason, and the properties they would test are re-tested on binary data in
test_em_bernoulli.py (pickling, idempotent fit, n_features_in_, sample-order and subset
invariance, dtypes, fit returning self).
"""

import pickle

import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from bayesmix.em import BernoulliMixtureEM, GaussianMixtureEM, KMeans

_NON_BINARY = "the check fits on continuous data; BernoulliMixtureEM rejects non-binary X"
BERNOULLI_EXPECTED_FAILURES = {
    "check_fit_score_takes_y": _NON_BINARY,
    "check_estimators_overwrite_params": _NON_BINARY,
    "check_dont_overwrite_parameters": _NON_BINARY,
    "check_estimators_fit_returns_self": _NON_BINARY,
    "check_readonly_memmap_input": _NON_BINARY,
    "check_n_features_in_after_fitting": _NON_BINARY,
    "check_positive_only_tag_during_fit": _NON_BINARY + " (negative values)",
    "check_estimators_dtypes": _NON_BINARY,
    "check_dtype_object": _NON_BINARY,
    "check_pipeline_consistency": _NON_BINARY,
    "check_estimators_nan_inf": _NON_BINARY + " before it can see the NaN/inf",
    "check_estimators_pickle": _NON_BINARY,
    "check_f_contiguous_array_estimator": _NON_BINARY,
    "check_methods_sample_order_invariance": _NON_BINARY,
    "check_methods_subset_invariance": _NON_BINARY,
    "check_fit2d_1feature": _NON_BINARY + " (so the error is not the 1-feature message)",
    "check_dict_unchanged": _NON_BINARY,
    "check_fit_idempotent": _NON_BINARY,
    "check_fit_check_is_fitted": _NON_BINARY,
    "check_n_features_in": _NON_BINARY,
    "check_fit2d_predict1d": _NON_BINARY,
}


def _expected_failed_checks(estimator):
    if isinstance(estimator, BernoulliMixtureEM):
        return BERNOULLI_EXPECTED_FAILURES
    return {}


@parametrize_with_checks(
    [GaussianMixtureEM(), KMeans(n_clusters=3), BernoulliMixtureEM()],
    expected_failed_checks=_expected_failed_checks,
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_bernoulli_generic_properties_on_binary_data():
    """What the skipped checks test, on binary data."""
    rng = np.random.default_rng(0)
    X = (rng.uniform(size=(60, 5)) < [0.1, 0.3, 0.5, 0.7, 0.9]).astype(np.int64)
    est = BernoulliMixtureEM(2, random_state=0)
    assert est.fit(X) is est
    assert est.n_features_in_ == 5
    proba = est.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(again.predict_proba(X), proba)
    refit = BernoulliMixtureEM(2, random_state=0).fit(X)
    np.testing.assert_array_equal(refit.means_, est.means_)  # idempotent, seeded
    for dtype in (np.float32, np.float64, np.int32, bool):
        other = BernoulliMixtureEM(2, random_state=0).fit(X.astype(dtype))
        np.testing.assert_allclose(other.means_, est.means_)
    order = rng.permutation(60)
    np.testing.assert_allclose(est.score_samples(X[order]), est.score_samples(X)[order])
    np.testing.assert_allclose(est.score_samples(X[:7]), est.score_samples(X)[:7])
    np.testing.assert_allclose(est.predict_proba(np.asfortranarray(X)), proba)
    with pytest.raises(ValueError, match="features"):
        est.predict(X[:, :3])
