"""GaussianMixtureEM behaviour found unpinned by the second mutmut run on em/gaussian.py.

References: the error wording of docs (the failing covariance named, the float32 hint only
for float32 fits), and the per-feature moments of many draws against the parameters
(docs/mutation-testing.md).
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

from bayesmix._validation import DataError
from bayesmix.em import GaussianMixtureEM


def _collinear():
    """Two clusters on the line x2 = 2 x1: every covariance is exactly singular."""
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, 30), rng.normal(6, 1, 30)])
    return np.column_stack([x, 2 * x])


@pytest.mark.parametrize(
    ("covariance_type", "where"), [("tied", "the tied covariance"), ("full", "component 0")]
)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_singular_covariance_error_names_it_and_hints_float64_only_for_float32(
    covariance_type, where, dtype
):
    est = GaussianMixtureEM(
        2, covariance_type=covariance_type, reg_covar=0.0, random_state=0, dtype=dtype
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(DataError) as info:
            est.fit(_collinear())
    msg = str(info.value)
    assert msg.startswith(f"EM failed: {where} has an ill-defined covariance")
    assert "increase reg_covar" in msg
    hint = "; float64 data is also more accurate than float32"
    if dtype == np.float32:
        assert msg.endswith("or scale the data" + hint)
    else:
        assert msg.endswith("or scale the data")
    assert "None" not in msg and not re.search(r"XX", msg)


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_diag_and_spherical_draws_have_each_features_variance(covariance_type):
    """40,000 draws of a 3-D mixture: per component and feature, the mean and the variance
    within 4 standard errors of the parameters."""
    k, d, n = 2, 3, 40_000
    gm = GaussianMixtureEM(k, covariance_type=covariance_type)
    gm.weights_ = np.array([0.4, 0.6])
    gm.means_ = np.array([[-3.0, 0.0, 5.0], [4.0, -2.0, 1.0]])
    if covariance_type == "diag":
        var = np.array([[0.25, 4.0, 1.0], [9.0, 0.5, 2.0]])
        gm.covariances_ = var
    else:
        var = np.repeat(np.array([0.5, 3.0])[:, None], d, axis=1)
        gm.covariances_ = np.array([0.5, 3.0])
    gm.precisions_cholesky_ = 1.0 / np.sqrt(gm.covariances_)
    gm.converged_, gm.n_iter_, gm.n_features_in_ = True, 1, d
    gm.lower_bound_ = 0.0
    X, z = gm.sample(n)
    assert X.shape == (n, d)
    for j in range(k):
        xs = X[z == j]
        m = len(xs)
        se_mean = np.sqrt(var[j] / m)
        np.testing.assert_array_less(np.abs(xs.mean(axis=0) - gm.means_[j]), 4 * se_mean)
        se_var = var[j] * np.sqrt(2.0 / (m - 1))
        np.testing.assert_array_less(np.abs(xs.var(axis=0, ddof=1) - var[j]), 4 * se_var)


def _degenerate_warnings(est, X):
    from bayesmix.em import DegenerateComponentWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est.fit(X)
    return [str(w.message) for w in caught if issubclass(w.category, DegenerateComponentWarning)]


def test_negative_correlation_is_not_a_collapsed_component():
    """Only variances (the diagonal) are compared with reg_covar, not covariances."""
    rng = np.random.default_rng(1)
    a = rng.multivariate_normal([0, 0], [[1.0, -0.8], [-0.8, 1.0]], 200)
    b = rng.multivariate_normal([6, 6], [[1.0, -0.5], [-0.5, 1.0]], 200)
    est = GaussianMixtureEM(2, covariance_type="full", random_state=0)
    assert _degenerate_warnings(est, np.vstack([a, b])) == []
    assert (est.covariances_[:, 0, 1] < 0).all()  # the premise


def test_small_but_real_variance_far_from_zero_is_not_collapsed():
    """Values near 1e6 with sd 1e-4: the data's own variance 1e-8 is far above the rounding
    of that magnitude ((100 eps 1e6)^2 ~ 5e-16) and above 1e-3 reg_covar: no warning; the same
    magnitude with repeated points warns."""
    rng = np.random.default_rng(2)
    X = np.concatenate([1e6 + rng.normal(0, 1e-4, 100), -1e6 + rng.normal(0, 1e-4, 100)])
    est = GaussianMixtureEM(2, covariance_type="diag", random_state=0)
    assert _degenerate_warnings(est, X[:, None]) == []
    repeated = np.concatenate([np.full(100, 1e6), -1e6 + rng.normal(0, 1e-4, 100)])
    msgs = _degenerate_warnings(GaussianMixtureEM(2, random_state=0), repeated[:, None])
    assert len(msgs) == 1 and "collapsed onto repeated points" in msgs[0]


def test_collapsed_components_are_listed_with_their_weights():
    X = np.concatenate([np.full(40, -5.0), np.full(60, 5.0)])[:, None]
    msgs = _degenerate_warnings(GaussianMixtureEM(2, random_state=0), X)
    assert len(msgs) == 1
    assert msgs[0].startswith(
        "GaussianMixtureEM: component(s) [0, 1] collapsed onto repeated points (weights "
    )
    weights = msgs[0].split("(weights ")[1].split(")")[0]
    assert sorted(weights.split(", ")) == ["0.4", "0.6"]


def test_prior_messages_name_what_to_pass():
    X = np.random.default_rng(3).normal(size=(30, 2))
    from bayesmix._validation import ParameterError

    def message(prior):
        with pytest.raises(ParameterError) as info:
            GaussianMixtureEM(2, prior=prior).fit(X)
        return str(info.value)

    assert message({"weights_alpha": [1.0, 2.0, 3.0]}).endswith(
        "pass one finite value per component"
    )
    assert message({"mu_scale": [1.0, 2.0, 3.0]}).endswith("pass one finite value per feature")
    assert message([("weights_alpha", 2.0)]).endswith("pass e.g. prior={'weights_alpha': 2.0}")


@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical"])
def test_overflowing_covariance_names_the_component(covariance_type):
    """Component 1 (the huge spread) overflows; component 0 is fine."""
    X = np.array([[0.0], [1.0], [2.0], [0.5]] * 3 + [[1.3e155], [-1.3e155]] * 4)
    est = GaussianMixtureEM(
        2,
        covariance_type=covariance_type,
        weights_init=[0.5, 0.5],
        means_init=[[1.0], [0.0]],
        precisions_init=np.ones((2, 1, 1))
        if covariance_type == "full"
        else np.ones(2)
        if covariance_type == "spherical"
        else np.ones((2, 1)),
    )
    resp_far = np.abs(X[:, 0]) > 10
    assert resp_far.sum() == 8
    with np.errstate(all="ignore"), pytest.raises(DataError) as info:
        est.fit(X)
    assert str(info.value).startswith("EM failed: component ")
    assert "overflows: expected finite covariances" in str(info.value)


def test_means_and_precisions_without_weights_take_the_weights_from_the_start():
    """weights_init alone missing: the start still computes responsibilities for the weights."""
    rng = np.random.default_rng(4)
    X = np.concatenate([rng.normal(-3, 1, (70, 1)), rng.normal(3, 1, (30, 1))])
    est = GaussianMixtureEM(
        2,
        covariance_type="diag",
        means_init=[[-3.0], [3.0]],
        precisions_init=[[1.0], [1.0]],
        max_iter=0,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X)
    np.testing.assert_allclose(est.means_, [[-3.0], [3.0]])
    np.testing.assert_allclose(est.weights_.sum(), 1.0)
    np.testing.assert_allclose(np.sort(est.weights_), [0.3, 0.7], atol=0.02)
