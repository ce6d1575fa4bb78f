"""``generate`` and ``membership`` on EM results: scales, dtypes, argument checks.

Mutation testing (docs/mutation-testing.md) found these unpinned: the diagonal scale used
as a multiplier of the noise, Bernoulli draws as integers, ``n`` checked with its own name
and 1 allowed, new points of the wrong width refused with the feature counts, and a single
new point (fewer rows than components) classified.
"""

import numpy as np
import pytest
from scipy.stats import norm

from bayesmix._validation import DataError, ParameterError
from bayesmix.config import ModelSpec
from bayesmix.inference import fit_em, generate, membership


@pytest.fixture(scope="module")
def diag_result():
    rng = np.random.default_rng(0)
    X = np.concatenate(
        [rng.normal([0, 0], [1, 3], (200, 2)), rng.normal([8, 20], [2, 0.5], (200, 2))]
    )
    return fit_em(ModelSpec("gaussian", 2, "diag"), X, prior=None, random_state=0)


def test_generate_diag_has_each_components_mean_and_scale(diag_result):
    em = diag_result["em"]
    mu = em["mu"].transpose("component", "feature").values
    sigma = em["sigma"].transpose("component", "feature").values
    x, z = generate(diag_result, 6000, group="em", random_seed=1)
    for k in range(2):
        xs = x[z == k]
        n = xs.shape[0]
        assert n > 1000
        assert np.all(np.abs(xs.mean(axis=0) - mu[k]) < 5 * sigma[k] / np.sqrt(n))
        # sample sd within ~5 standard errors (sd / sqrt(2n)) of sigma
        assert np.all(np.abs(xs.std(axis=0, ddof=1) / sigma[k] - 1) < 5 / np.sqrt(2 * n))


def test_generate_bernoulli_gives_integers():
    rng = np.random.default_rng(1)
    X = (rng.uniform(size=(300, 4)) < np.where(rng.uniform(size=(300, 1)) < 0.5, 0.2, 0.8)).astype(
        float
    )
    r = fit_em(ModelSpec("bernoulli", 2), X, random_state=0)
    x, z = generate(r, 50, group="em", random_seed=0)
    assert np.issubdtype(x.dtype, np.integer) and x.shape == (50, 4)
    assert set(np.unique(x)) <= {0, 1}


def test_generate_n_is_checked_by_name_and_one_is_allowed(diag_result):
    x, z = generate(diag_result, 1, group="em", random_seed=0)
    assert x.shape == (1, 2) and z.shape == (1,)
    with pytest.raises(ParameterError, match=r"^n must be an integer >= 1: expected e\.g\. n=1"):
        generate(diag_result, 0, group="em")


def test_membership_of_new_points_checks_their_width(diag_result):
    with pytest.raises(DataError, match="X has 3 features but the model was fitted with 2"):
        membership(diag_result, np.zeros((5, 3)), group="em")


def test_membership_of_one_new_point_is_bayes_rule(diag_result):
    em = diag_result["em"]
    w = em["w"].values
    mu = em["mu"].transpose("component", "feature").values
    sigma = em["sigma"].transpose("component", "feature").values
    point = np.array([[4.0, 10.0]])  # one row, fewer than the two components
    dens = w * np.array([norm(mu[k], sigma[k]).pdf(point[0]).prod() for k in range(2)])
    out = membership(diag_result, point, group="em")
    np.testing.assert_allclose(out["mean"].values[0], dens / dens.sum(), rtol=1e-9)
    np.testing.assert_array_equal(out["sd"].values, 0.0)


def test_bernoulli_membership_is_bayes_rule_with_named_dims():
    rng = np.random.default_rng(2)
    X = (rng.uniform(size=(300, 4)) < np.where(rng.uniform(size=(300, 1)) < 0.5, 0.2, 0.8)).astype(
        float
    )
    r = fit_em(ModelSpec("bernoulli", 2), X, random_state=0)
    w = r["em"]["w"].values
    p = r["em"]["p"].transpose("component", "feature").values
    new = np.array([[1, 1, 0, 1], [0, 0, 0, 1], [1, 0, 1, 0]], dtype=float)
    lik = np.stack([np.prod(np.where(new == 1, pk, 1 - pk), axis=1) for pk in p], axis=1) * w
    out = membership(r, new, group="em")
    assert out["mean"].dims == ("obs_id", "component") and out["sd"].dims == out["mean"].dims
    np.testing.assert_array_equal(out["component"].values, [0, 1])
    assert out.sizes["obs_id"] == 3 and out.attrs == {"group": "em"}
    np.testing.assert_allclose(out["mean"].values, lik / lik.sum(1, keepdims=True), rtol=1e-9)
