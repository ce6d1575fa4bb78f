"""Categorical family (latent classes) and CategoricalMixtureEM."""

import itertools
import warnings
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import optimize, stats
from scipy.special import log_softmax, logsumexp
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import adjusted_rand_score
from sklearn.utils.estimator_checks import parametrize_with_checks

from bayesmix._validation import DataError, ParameterError
from bayesmix.em.bernoulli import BernoulliMixtureEM
from bayesmix.em.categorical import CategoricalMixtureEM
from bayesmix.families import sample_draws
from bayesmix.families.categorical import CategoricalFamily, pad_probs
from tests.em.em_helpers import hypothesis_settings
from tests.families.helpers import hand_model, unconstrained_point

FAM = CategoricalFamily()
W = np.array([0.3, 0.7])
# items with 3, 2 and 4 levels
PROBS = [
    np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]]),
    np.array([[0.9, 0.1], [0.25, 0.75]]),
    np.array([[0.1, 0.2, 0.3, 0.4], [0.4, 0.4, 0.1, 0.1]]),
]
PADDED = pad_probs(PROBS)  # (2, 3, 4)


def _simulate(n, w, probs, rng):
    z = rng.choice(len(w), size=n, p=w)
    cols = [np.array([rng.choice(p.shape[1], p=p[k]) for k in z]) for p in probs]
    return np.stack(cols, axis=1).astype(float), z


def _fitted(w, probs):
    est = CategoricalMixtureEM(len(w))
    est.weights_ = np.asarray(w)
    est.category_probs_ = [np.asarray(p) for p in probs]
    est.n_levels_ = np.array([p.shape[1] for p in probs])
    est.categories_ = [np.arange(n) for n in est.n_levels_]
    est._offsets = np.concatenate([[0], np.cumsum(est.n_levels_)[:-1]]).astype(np.intp)
    est.means_ = np.concatenate(probs, axis=1)
    est.n_features_in_ = len(probs)
    est.converged_ = True
    est._prepare()
    return est


@pytest.fixture(scope="module")
def data():
    X, _ = _simulate(30, W, PROBS, np.random.default_rng(0))
    return X


# ---------------------------------------------------------------------------- log density
def test_component_log_density_matches_scipy_for_a_stack_of_draws(data):
    rng = np.random.default_rng(1)
    probs = [rng.dirichlet(np.ones(p.shape[1]), size=(2, 3, 2)) for p in PROBS]  # (2, 3, K, L)
    padded = pad_probs(probs)
    w = rng.dirichlet([1, 1], size=(2, 3))
    got = FAM.component_log_density(data, {"w": w, "probs": padded})
    assert got.shape == (2, 3, 30, 2)
    want = np.zeros_like(got)
    for d, p in enumerate(probs):
        onehot = np.eye(p.shape[-1])[data[:, d].astype(int)]  # (N, L)
        want += stats.multinomial.logpmf(onehot[None, None, :, None, :], 1, p[:, :, None])
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-8)


def test_mixture_log_density_equals_explicit_latent_indicator_sum(data):
    explicit = np.zeros(len(data))
    for z in range(2):
        joint = W[z] * np.prod([PROBS[d][z, data[:, d].astype(int)] for d in range(3)], axis=0)
        explicit += joint
    est = _fitted(W, PROBS)
    np.testing.assert_allclose(est.score_samples(data), np.log(explicit), rtol=0, atol=1e-8)
    comp = FAM.component_log_density(data, {"w": W, "probs": PADDED})
    np.testing.assert_allclose(
        logsumexp(np.log(W) + comp, axis=1), np.log(explicit), rtol=0, atol=1e-8
    )


def test_n_parameters_formula(data):
    for k, levels in itertools.product([1, 2, 4], [(2,), (3, 2, 4), (5, 5)]):
        assert FAM.n_parameters(k, len(levels), None, n_levels=levels) == (
            k * sum(n - 1 for n in levels) + k - 1
        )
    with pytest.raises(ParameterError, match="n_levels"):
        FAM.n_parameters(2, 3, None)
    est = CategoricalMixtureEM(2, random_state=0).fit(data)
    log_lik = est.score_samples(data).sum()
    p = 2 * (2 + 1 + 3) + 1
    assert est.bic(data) == pytest.approx(-2 * log_lik + p * np.log(30), rel=1e-12)


# ---------------------------------------------------------------------------- Bernoulli
@pytest.mark.parametrize(
    ("bern_kwargs", "cat_kwargs"),
    [
        ({}, {}),
        ({"smoothing": 0.0}, {"smoothing": 0.0}),
        (
            {"prior": {"weights_alpha": 2.0, "beta_a": 2.0, "beta_b": 3.0}},
            {"prior": {"weights_alpha": 2.0, "category_alpha": [[3.0, 2.0]] * 6}},
        ),
    ],
)
def test_binary_data_give_bernoulli_numbers(bern_kwargs, cat_kwargs):
    rng = np.random.default_rng(5)
    p = rng.uniform(0.1, 0.9, size=(3, 6))
    X = (rng.random((150, 6)) < p[rng.integers(0, 3, 150)]).astype(np.int64)
    common = {"random_state": 0, "tol": 1e-10, "max_iter": 60}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        b = BernoulliMixtureEM(3, **common, **bern_kwargs).fit(X)
        c = CategoricalMixtureEM(3, **common, **cat_kwargs).fit(X)
    np.testing.assert_allclose(c.probs_[:, :, 1], b.means_, rtol=0, atol=1e-10)
    np.testing.assert_allclose(c.weights_, b.weights_, rtol=0, atol=1e-10)
    np.testing.assert_allclose(c.lower_bounds_, b.lower_bounds_, rtol=0, atol=1e-10)
    np.testing.assert_allclose(c.score_samples(X), b.score_samples(X), rtol=0, atol=1e-10)
    assert c.bic(X) == pytest.approx(b.bic(X), rel=0, abs=1e-8)


# ---------------------------------------------------------------------------- acceptance
def test_recovers_simulated_latent_classes():
    rng = np.random.default_rng(11)
    w = np.array([0.5, 0.3, 0.2])
    levels = [2, 3, 4, 3, 2, 5, 3, 4]
    probs = [rng.dirichlet(np.full(n, 0.5), size=3) for n in levels]
    X, z = _simulate(2000, w, probs, rng)
    est = CategoricalMixtureEM(3, n_init=3, tol=1e-6, max_iter=500, random_state=0).fit(X)
    assert adjusted_rand_score(z, est.predict(X)) > 0.9


def test_em_answer_is_a_stationary_point_of_the_likelihood():
    """scipy.optimize (softmax logits) from EM's answer cannot improve it by 1e-6 relative."""
    rng = np.random.default_rng(2)
    X, _ = _simulate(300, W, PROBS, rng)
    est = CategoricalMixtureEM(2, smoothing=0.0, tol=1e-13, max_iter=5000, random_state=0)
    est.fit(X)
    codes = X.astype(int)
    sizes = [2] + [2 * n for n in est.n_levels_]

    def log_lik(theta):
        parts = np.split(theta, np.cumsum(sizes)[:-1])
        comp = log_softmax(parts[0])[None, :].repeat(len(X), 0)
        for d, part in enumerate(parts[1:]):
            log_p = log_softmax(part.reshape(2, -1), axis=1)  # (K, L_d)
            comp = comp + log_p[:, codes[:, d]].T
        return logsumexp(comp, axis=1).sum()

    theta0 = np.concatenate(
        [np.log(est.weights_)] + [np.log(p).ravel() for p in est.category_probs_]
    )
    ll0 = log_lik(theta0)
    assert ll0 == pytest.approx(est.score_samples(X).sum(), rel=1e-12)
    res = optimize.minimize(lambda t: -log_lik(t), theta0, method="BFGS", options={"gtol": 1e-8})
    assert -res.fun - ll0 < 1e-6 * abs(ll0)


# ---------------------------------------------------------------------------- EM properties
@hypothesis_settings()
@given(seed=st.integers(0, 2**31 - 1), k=st.integers(1, 3), map_em=st.booleans())
def test_em_never_decreases_its_objective(seed, k, map_em):
    rng = np.random.default_rng(seed)
    X = np.stack([rng.integers(0, n, size=25) for n in (2, 3, 4)], axis=1)
    if len(np.unique(X, axis=0)) < k:
        return
    prior = {"weights_alpha": 1.5, "category_alpha": 1.3} if map_em else None
    est = CategoricalMixtureEM(k, tol=1e-300, max_iter=25, prior=prior, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X)
    assert np.all(np.diff(est.lower_bounds_) >= -1e-10 * np.abs(est.lower_bounds_[1:]))


def test_integer_weights_equal_repeated_rows(data):
    weights = np.random.default_rng(4).integers(0, 4, size=len(data))
    start = (np.array([0.4, 0.6]), [p[::-1].copy() for p in PROBS])

    def fit(X, sample_weight=None):
        est = CategoricalMixtureEM(2, warm_start=True, tol=1e-12, max_iter=40)
        est._check_X(data, fitting=True)  # the levels of the full data
        est._set_parameters(start)
        est.converged_, est.lower_bound_ = False, -np.inf
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return est.fit(X, sample_weight=sample_weight)

    a = fit(data, weights)
    b = fit(np.repeat(data, weights, axis=0))
    np.testing.assert_allclose(a.weights_, b.weights_, rtol=0, atol=1e-10)
    np.testing.assert_allclose(a.means_, b.means_, rtol=0, atol=1e-10)
    np.testing.assert_allclose(a.lower_bounds_, b.lower_bounds_, rtol=0, atol=1e-10)


def _level_freq_ok(x, w, probs, n):
    for d, p in enumerate(probs):
        freq = np.bincount(x[:, d], minlength=p.shape[1]) / n
        want = w @ p
        assert np.all(np.abs(freq - want) < 5 * np.sqrt(want * (1 - want) / n))


def test_sample_and_family_draw_level_frequencies():
    est = _fitted(W, PROBS)
    est.random_state = 0
    X, labels = est.sample(20_000)
    assert X.dtype == np.int64
    _level_freq_ok(X, W, PROBS, 20_000)
    x, _ = sample_draws(
        FAM, {"w": W[None], "probs": PADDED[None]}, 20_000, np.random.default_rng(3)
    )
    assert x.shape == (1, 20_000, 3)
    _level_freq_ok(x[0], W, PROBS, 20_000)


# ---------------------------------------------------------------------------- encoding
def test_strings_and_pandas_categoricals_and_unseen_levels():
    rng = np.random.default_rng(7)
    codes, _ = _simulate(60, W, PROBS, rng)
    names = np.array(["low", "mid", "high"], dtype=object)
    df = pd.DataFrame(
        {
            "a": names[codes[:, 0].astype(int)],
            "b": pd.Categorical(np.where(codes[:, 1] == 1, "yes", "no"), ["no", "yes", "maybe"]),
            "c": codes[:, 2].astype(int),
        }
    )
    est = CategoricalMixtureEM(2, random_state=0).fit(df)
    assert [list(c) for c in est.categories_] == [
        ["high", "low", "mid"],
        ["no", "yes", "maybe"],
        list(range(int(codes[:, 2].max()) + 1)),
    ]
    assert est.category_probs_[1].shape == (2, 3)  # the unobserved category is a level
    np.testing.assert_array_equal(est.predict(df), est.predict(df.copy()))
    with pytest.raises(DataError, match="unseen level"):
        est.predict(df.assign(a="huge"))
    with pytest.raises(DataError, match="unseen level"):
        CategoricalMixtureEM(2, random_state=0).fit(codes).predict(codes + [0, 0, 9])
    with pytest.raises(DataError, match="integer codes"):
        CategoricalMixtureEM(2).fit(codes + 0.5)
    with pytest.raises(DataError, match="missing"):
        CategoricalMixtureEM(2).fit(df.assign(a=df["a"].where(df.index != 3)))


# ---------------------------------------------------------------------------- the graph
@pytest.fixture(scope="module")
def graph(data):
    pri = FAM.resolve_priors(SimpleNamespace(category_alpha=2.0), data, 2, None)
    assert pri["category_alpha"].shape == (3, 4)
    alpha = np.array([1.5, 2.0])
    model = hand_model(FAM, data, pri, alpha, extra_coords=FAM.coords(data, ["x0", "x1", "x2"]))
    return pri, alpha, model


def test_graph_logp_equals_numpy_mixture_and_scipy_priors(data, graph):
    pri, alpha, model = graph
    assert [v.name for v in model.free_RVs] == ["w", *FAM.free_var_names(None, 3)]
    lp = model.compile_logp(jacobian=False)
    values = {"w": W, **{f"probs_{d}": p for d, p in enumerate(PROBS)}}
    comp = FAM.component_log_density(data, {"w": W, "probs": PADDED})
    want = logsumexp(np.log(W) + comp, axis=1).sum() + stats.dirichlet.logpdf(W, alpha)
    for p in PROBS:
        want += sum(stats.dirichlet.logpdf(row, np.full(len(row), 2.0)) for row in p)
    assert lp(unconstrained_point(model, values)) == pytest.approx(want, rel=0, abs=1e-8)
    (probs_of_values,) = model.replace_rvs_by_values([model["probs"]])
    probs = model.compile_fn(probs_of_values, inputs=model.value_vars, on_unused_input="ignore")
    np.testing.assert_allclose(probs(unconstrained_point(model, values)), PADDED, atol=1e-12)


def test_map_em_objective_is_the_graph_log_posterior(data, graph):
    pri, alpha, model = graph
    prior = {"weights_alpha": alpha, **pri}
    est = CategoricalMixtureEM(2, prior=prior, tol=1e-12, max_iter=5000, random_state=0).fit(data)
    point = FAM.em_point(est, 3)
    init = FAM.point_to_initvals(None, point, 3)
    for d, p in enumerate(est.category_probs_):
        np.testing.assert_allclose(init[f"probs_{d}"], p, atol=1e-12)
    lp = model.compile_logp(jacobian=False)
    values = {"w": est.weights_, **init}
    assert est.objective(data) * len(data) == pytest.approx(
        lp(unconstrained_point(model, values)), rel=0, abs=1e-8
    )
    # the gradient of the log posterior in the unconstrained space vanishes at EM's mode
    dlp = model.compile_dlogp(jacobian=False)
    grad = dlp(unconstrained_point(model, values))
    assert np.max(np.abs(grad)) < 1e-4


def test_graph_random_level_frequencies(graph):
    from bayesmix.families.categorical import _graph_random

    x = _graph_random(W, PADDED, rng=np.random.default_rng(9), size=(20_000,))
    assert x.shape == (20_000, 3)
    _level_freq_ok(x, W, PROBS, 20_000)


# ---------------------------------------------------------------------------- scikit-learn
@parametrize_with_checks(
    [CategoricalMixtureEM()],
    expected_failed_checks=lambda est: {
        "check_sample_weight_equivalence_on_dense_data": (
            "the check fits on continuous data without the estimator's input tags; "
            "test_integer_weights_equal_repeated_rows tests the property on codes"
        )
    },
)
def test_sklearn_compatible(estimator, check):
    check(estimator)
