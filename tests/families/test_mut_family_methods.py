"""The family classes' methods (point estimates, starting points, relabelling features,
marginals, draws, counts, default priors): what the second mutmut sample of issue 13 found
unpinned in bayesmix/families/*.py, each against a formula written out or scikit-learn.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from bayesmix.families import get_family


def _spec(k, covariance=None, ordered=False):
    return SimpleNamespace(n_components=k, covariance=covariance, priors=None, ordered=ordered)


# ------------------------------------------------------------------ Bernoulli


def test_bernoulli_em_point_and_label_features():
    est = SimpleNamespace(
        weights_=np.array([0.25, 0.75]), means_=np.array([[0.0, 0.3], [1.0, 0.9]])
    )
    fam = get_family("bernoulli")
    point = fam.em_point(est, 2)
    assert sorted(point) == ["p", "w"]
    np.testing.assert_array_equal(point["w"], est.weights_)
    np.testing.assert_array_equal(point["p"], est.means_)
    p = np.clip(est.means_, 1e-9, 1 - 1e-9)
    np.testing.assert_allclose(fam.label_features(point), np.log(p / (1 - p)), rtol=1e-12)


# ------------------------------------------------------------------ Categorical


def _categorical_data():
    # item 0 has levels 0..3, item 1 levels 0..2; sorted by item 0 the chunks are rows
    # {0, 1, 2} and {3, 4, 5} for K = 2
    return np.array([[0, 2], [1, 0], [0, 1], [3, 1], [2, 1], [3, 0]], dtype=float)


def test_categorical_default_point_is_smoothed_chunk_frequencies():
    X = _categorical_data()
    got = get_family("categorical").default_point(_spec(2), X)["probs"]
    order = np.argsort(X[:, 0], kind="stable")
    chunks = np.array_split(order, 2)
    want = np.zeros((2, 2, 4))
    for k, rows in enumerate(chunks):
        for d, n_l in enumerate((4, 3)):
            counts = np.array([np.sum(X[rows, d] == v) for v in range(n_l)]) + 0.5
            want[k, d, :n_l] = counts / counts.sum()
    np.testing.assert_allclose(got, want, rtol=1e-14)


def test_categorical_label_features_order_key_and_default_prior():
    fam = get_family("categorical")
    probs = np.array(
        [[[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]], [[0.1, 0.0, 0.9], [1.0, 0.0, 0.0]]]
    )  # (K=2, D=2, L=3)
    np.testing.assert_allclose(
        fam.label_features({"probs": probs}),
        np.log(np.clip(probs, 1e-9, 1.0)).reshape(2, 6),
        rtol=1e-14,
    )
    # the expected code of item 0 in each component
    np.testing.assert_allclose(fam.order_key({"probs": probs}), [0.5, 1.8], rtol=1e-14)
    X = _categorical_data()
    alpha = fam.resolve_priors(SimpleNamespace(category_alpha=None), X, 2, None)
    want = np.array([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 0.0]])  # flat; 0 pads item 1
    np.testing.assert_array_equal(alpha["category_alpha"], want)


def test_categorical_graph_has_an_observed_x_that_can_be_drawn():
    import pymc as pm

    from tests.families.helpers import hand_model

    X = _categorical_data()
    fam = get_family("categorical")
    alpha = fam.resolve_priors(SimpleNamespace(category_alpha=None), X, 2, None)
    model = hand_model(fam, X, alpha, np.ones(2), {"level": np.arange(4)})
    assert model["x"] in model.observed_RVs
    draws = pm.draw(model["x"], draws=2, random_seed=1, mode="FAST_COMPILE")
    assert draws.shape == (2, *X.shape)
    assert (draws[..., 0] <= 3).all() and (draws[..., 1] <= 2).all()


# ------------------------------------------------------------------ Gaussian


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("cov", ["full", "tied", "diag", "spherical"])
@pytest.mark.parametrize(("k", "d"), [(1, 1), (3, 2), (2, 4)])
def test_gaussian_n_parameters_is_scikit_learns(cov, k, d):
    from sklearn.mixture import GaussianMixture

    rng = np.random.default_rng(0)
    gm = GaussianMixture(n_components=k, covariance_type=cov, max_iter=1)
    gm.fit(rng.normal(size=(4 * k + d + 2, d)))
    assert get_family("gaussian").n_parameters(k, d, cov) == gm._n_parameters()


# ------------------------------------------------------------------ Poisson


def test_poisson_point_features_marginal_and_draws():
    fam = get_family("poisson")
    X = np.array([[0, 5], [0, 4], [0, 6], [2, 9]], dtype=float)
    got = fam.default_point(_spec(2), X)["rate"]
    np.testing.assert_array_equal(got, [[0.05, 4.5], [1.0, 7.5]])  # chunk means, floor 0.05
    rate = np.array([[0.0, 2.0], [3.0, 1e-12]])
    np.testing.assert_allclose(
        fam.label_features({"rate": rate}), np.log(np.maximum(rate, 1e-10)), rtol=1e-14
    )
    w = np.array([0.4, 0.6])
    for j in (0, 1):
        m = fam.marginal({"w": w, "rate": rate}, j)
        assert sorted(m) == ["rate", "w"]
        np.testing.assert_array_equal(m["w"], w)
        np.testing.assert_array_equal(m["rate"], rate[:, j : j + 1])
    z = np.array([[0, 1, 1], [1, 0, 0]])
    x = fam.draw(
        {"w": np.tile(w, (2, 1)), "rate": np.tile(rate + 1, (2, 1, 1))},
        z,
        np.random.default_rng(0),
    )
    assert x.shape == (2, 3, 2)
    assert x.dtype == np.int64


# ------------------------------------------------------------------ Student-t


def test_student_t_default_point_of_two_rows_and_marginal():
    fam = get_family("student_t")
    X = np.array([[0.0, 1.0], [4.0, 7.0]])
    point = fam.default_point(_spec(2, "diag"), X)
    np.testing.assert_array_equal(point["mu"], X)  # one row per chunk
    np.testing.assert_allclose(point["sigma"], np.tile(X.std(axis=0) / 2, (2, 1)), rtol=1e-14)
    np.testing.assert_array_equal(point["nu"], [10.0, 10.0])
    params = {
        "w": np.array([0.5, 0.5]),
        "mu": X,
        "sigma": np.array([[1.0, 2.0], [3.0, 4.0]]),
        "nu": np.array([3.0, 9.0]),
    }
    m = fam.marginal(params, 1)
    assert sorted(m) == ["mu", "nu", "sigma", "w"]
    np.testing.assert_array_equal(m["mu"], [[1.0], [7.0]])
    np.testing.assert_array_equal(m["sigma"], [[2.0], [4.0]])
    np.testing.assert_array_equal(m["nu"], [3.0, 9.0])


def test_student_t_ordered_initvals_are_nudged_to_strictly_increasing():
    """``first[j] = max(first[j], first[j-1] + 1e-6 (1 + |first[j-1]|))`` in turn."""
    fam = get_family("student_t")
    mu = np.array([[2.0, 0.0], [2.0, 1.0], [-1.0, 2.0], [5.0, 3.0]])
    point = {"mu": mu, "sigma": np.ones((4, 2)), "nu": np.full(4, 5.0)}
    got = fam.point_to_initvals(_spec(4, "diag", ordered=True), point, 2)
    want = mu[:, 0].copy()
    for j in range(1, 4):
        want[j] = max(want[j], want[j - 1] + 1e-6 * (1 + abs(want[j - 1])))
    np.testing.assert_array_equal(got["mu_first"], want)
    assert np.all(np.diff(got["mu_first"]) > 0)
    np.testing.assert_array_equal(got["mu_rest"], mu[:, 1:])
