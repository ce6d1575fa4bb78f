"""Poisson family (bayesmix.families.poisson) and PoissonMixtureEM (bayesmix.em.poisson)."""

import itertools
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import optimize, stats
from scipy.special import logsumexp
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.estimator_checks import parametrize_with_checks

from bayesmix._validation import DataError, ParameterError
from bayesmix.data import load_death_notices
from bayesmix.em.poisson import PoissonMixtureEM
from bayesmix.families.poisson import PoissonFamily
from tests.em.em_helpers import hypothesis_settings
from tests.families.helpers import hand_model, unconstrained_point

FAM = PoissonFamily()
W = np.array([0.3, 0.7])
RATE = np.array([[0.5, 4.0, 2.0], [3.0, 0.2, 7.5]])


def _se(w, rate, n):
    """Five standard errors of the mean of n draws from the mixture (per feature)."""
    mean = w @ rate
    return 5 * np.sqrt((w @ (rate + rate**2) - mean**2) / n)


def _counts(n=40, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.integers(0, 2, size=n)
    return rng.poisson(RATE[z]).astype(float)


# ---------------------------------------------------------------------------- log density
def test_component_log_density_matches_scipy_for_a_stack_of_draws():
    X = _counts()
    rng = np.random.default_rng(1)
    rate = rng.gamma(2.0, 1.5, size=(4, 3, 2, 3))  # (chain, draw, K, D)
    w = rng.dirichlet([1, 1], size=(4, 3))
    got = FAM.component_log_density(X, {"w": w, "rate": rate})
    assert got.shape == (4, 3, X.shape[0], 2)
    want = stats.poisson.logpmf(X[None, None, :, None, :], rate[:, :, None, :, :]).sum(-1)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-8)


def test_mixture_log_density_equals_explicit_latent_indicator_sum():
    """log p(x) = log sum_z P(z) prod_d Poisson(x_d | rate_zd), by enumerating z."""
    X = _counts(25)
    est = PoissonMixtureEM(2)
    est.weights_, est.means_ = W, RATE
    est.n_features_in_ = 3
    est.converged_ = True
    explicit = np.zeros(X.shape[0])
    for z in range(2):
        joint = W[z] * np.prod([stats.poisson.pmf(X[:, d], RATE[z, d]) for d in range(3)], axis=0)
        explicit += joint
    np.testing.assert_allclose(est.score_samples(X), np.log(explicit), rtol=0, atol=1e-8)
    comp = FAM.component_log_density(X, {"w": W, "rate": RATE})
    np.testing.assert_allclose(
        logsumexp(np.log(W) + comp, axis=1), np.log(explicit), rtol=0, atol=1e-8
    )


def test_n_parameters_formula_and_bic():
    X = _counts(60)
    est = PoissonMixtureEM(2, random_state=0).fit(X)
    for k, d in itertools.product([1, 2, 5], [1, 3]):
        assert FAM.n_parameters(k, d, None) == k * d + (k - 1)
    log_lik = est.score_samples(X).sum()
    assert est.bic(X) == pytest.approx(-2 * log_lik + (2 * 3 + 1) * np.log(60), rel=1e-12)


# ---------------------------------------------------------------------------- data
@pytest.mark.parametrize(
    ("bad", "match"),
    [(-1.0, "Negative values"), (1.5, "non-negative integers"), (np.nan, "NaN")],
)
def test_bad_counts_are_data_errors(bad, match):
    X = _counts(10)
    X[3, 1] = bad
    with pytest.raises(DataError, match=match):
        FAM.check_data(X, n_components=2)
    with pytest.raises(DataError, match=match):
        PoissonMixtureEM(2).fit(X)


def test_prior_dict_errors():
    X = _counts(20)
    with pytest.raises(ParameterError, match="unknown prior key"):
        PoissonMixtureEM(2, prior={"beta_a": 1.0}).fit(X)
    with pytest.raises(ParameterError, match="only one of"):
        PoissonMixtureEM(2, prior={"rate_shape": 1.0}).fit(X)


def test_default_priors_are_scaled_to_the_data():
    X = _counts(50)
    pri = FAM.resolve_priors(None, X, 2, None)
    np.testing.assert_allclose(pri["rate_shape"], 1.0)
    np.testing.assert_allclose(pri["rate_shape"] / pri["rate_rate"], X.mean(axis=0))


# ---------------------------------------------------------------------------- the published fit
def _death_fit(X, sample_weight=None):
    est = PoissonMixtureEM(2, tol=1e-15, max_iter=10_000, random_state=0)
    est.fit(X, sample_weight=sample_weight)
    order = np.argsort(est.means_[:, 0])
    return est, est.weights_[order], est.means_[order, 0]


def test_death_notices_mle_hasselblad():
    """Hasselblad (1969): weight 0.3599 on rate 1.2561, 0.6401 on 2.6634, log L -1989.946."""
    X = load_death_notices()
    assert X.shape == (1096, 1)
    est, w, rate = _death_fit(X)
    np.testing.assert_allclose(w, [0.3599, 0.6401], atol=5e-5)
    np.testing.assert_allclose(rate, [1.2561, 2.6634], atol=5e-5)
    assert est.score_samples(X).sum() == pytest.approx(-1989.946, abs=5e-4)

    table = load_death_notices(expand=False)
    assert table["days"].sum() == 1096
    est_w, w_w, rate_w = _death_fit(table[["deaths"]], sample_weight=table["days"])
    np.testing.assert_allclose(w_w, [0.3599, 0.6401], atol=5e-5)
    np.testing.assert_allclose(rate_w, [1.2561, 2.6634], atol=5e-5)
    log_lik = est_w.score(table[["deaths"]], sample_weight=table["days"]) * 1096
    assert log_lik == pytest.approx(-1989.946, abs=5e-4)


def test_integer_weights_equal_repeated_rows():
    rng = np.random.default_rng(3)
    X = _counts(30, seed=3)
    weights = rng.integers(0, 4, size=30)
    start = {"weights_": np.array([0.4, 0.6]), "means_": np.array([[1.0, 2.0, 1.0], [3, 1, 5]])}

    def fit(data, sample_weight=None):
        est = PoissonMixtureEM(2, warm_start=True, tol=1e-12, max_iter=40)
        for name, value in start.items():
            setattr(est, name, value.astype(float))
        est.converged_, est.lower_bound_ = False, -np.inf
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return est.fit(data, sample_weight=sample_weight)

    a = fit(X, sample_weight=weights)
    b = fit(np.repeat(X, weights, axis=0))
    np.testing.assert_allclose(a.weights_, b.weights_, rtol=0, atol=1e-10)
    np.testing.assert_allclose(a.means_, b.means_, rtol=0, atol=1e-10)
    np.testing.assert_allclose(a.lower_bounds_, b.lower_bounds_, rtol=0, atol=1e-10)


# ---------------------------------------------------------------------------- EM properties
@hypothesis_settings()
@given(
    seed=st.integers(0, 2**31 - 1),
    k=st.integers(1, 3),
    map_em=st.booleans(),
)
def test_em_never_decreases_its_objective(seed, k, map_em):
    rng = np.random.default_rng(seed)
    X = rng.poisson(rng.gamma(2.0, 2.0, size=(30, 2)))
    if len(np.unique(X, axis=0)) < k:
        return
    prior = {"weights_alpha": 1.5, "rate_shape": 0.7, "rate_rate": 0.3} if map_em else None
    est = PoissonMixtureEM(k, tol=1e-300, max_iter=25, init_params="random", prior=prior)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.set_params(random_state=seed).fit(X)
    assert np.all(np.diff(est.lower_bounds_) >= -1e-10 * np.abs(est.lower_bounds_[1:]))


def test_sample_moments():
    est = PoissonMixtureEM(2)
    est.weights_, est.means_, est.n_features_in_ = W, RATE, 3
    est.random_state = 0
    X, labels = est.sample(40_000)
    assert X.dtype == np.int64
    mean = W @ RATE
    var = W @ (RATE + RATE**2) - mean**2
    assert np.all(np.abs(X.mean(0) - mean) < _se(W, RATE, 40_000))
    np.testing.assert_allclose(X.var(0), var, rtol=0.05)
    np.testing.assert_allclose(np.bincount(labels) / 40_000, W, atol=0.01)


def test_family_draw_moments():
    rng = np.random.default_rng(0)
    params = {"w": np.tile(W, (2, 1)), "rate": np.stack([RATE, RATE[::-1]])}
    from bayesmix.families import sample_draws

    x, z = sample_draws(FAM, params, 30_000, rng)
    assert x.shape == (2, 30_000, 3)
    assert np.all(np.abs(x[0].mean(0) - W @ RATE) < _se(W, RATE, 30_000))
    assert np.all(np.abs(x[1].mean(0) - W @ RATE[::-1]) < _se(W, RATE[::-1], 30_000))


# ---------------------------------------------------------------------------- the graph
@pytest.fixture(scope="module")
def graph():
    X = _counts(12)
    pri = FAM.resolve_priors(None, X, 2, None)
    alpha = np.array([1.5, 2.0])
    return X, pri, alpha, hand_model(FAM, X, pri, alpha)


def test_graph_logp_equals_numpy_mixture_and_scipy_priors(graph):
    X, pri, alpha, model = graph
    lp = model.compile_logp(jacobian=False)
    point = unconstrained_point(model, {"w": W, "rate": RATE})
    comp = FAM.component_log_density(X, {"w": W, "rate": RATE})
    want = logsumexp(np.log(W) + comp, axis=1).sum()
    want += stats.dirichlet.logpdf(W, alpha)
    want += stats.gamma.logpdf(RATE, pri["rate_shape"], scale=1 / pri["rate_rate"]).sum()
    assert lp(point) == pytest.approx(want, rel=0, abs=1e-8)


def test_map_em_is_the_graph_posterior_mode(graph):
    X, pri, alpha, model = graph
    prior = {"weights_alpha": alpha, **pri}
    est = PoissonMixtureEM(2, prior=prior, tol=1e-14, max_iter=20_000, random_state=0).fit(X)
    lp = model.compile_logp(jacobian=False)
    point = unconstrained_point(model, {"w": est.weights_, "rate": est.means_})
    # EM's objective is the graph's log posterior (without Jacobian) per observation
    assert est.objective(X) * X.shape[0] == pytest.approx(lp(point), rel=0, abs=1e-8)
    # and no direction improves it: scipy from EM's answer gains nothing
    names = list(point)
    shapes = [np.shape(point[n]) for n in names]
    sizes = [int(np.prod(s)) for s in shapes]

    def unflatten(v):
        parts = np.split(v, np.cumsum(sizes)[:-1])
        return {n: p.reshape(s) for n, p, s in zip(names, parts, shapes, strict=True)}

    x0 = np.concatenate([np.ravel(point[n]) for n in names])
    res = optimize.minimize(lambda v: -lp(unflatten(v)), x0, method="BFGS", options={"gtol": 1e-9})
    assert -res.fun - lp(point) < 1e-6 * abs(lp(point))
    np.testing.assert_allclose(res.x, x0, atol=1e-3)


def test_graph_random_moments(graph):
    from bayesmix.families.poisson import _graph_random

    x = _graph_random(W, RATE, rng=np.random.default_rng(2), size=(30_000,))
    assert x.shape == (30_000, 3)
    assert np.all(np.abs(x.mean(0) - W @ RATE) < _se(W, RATE, 30_000))


def test_em_point_and_em_kwargs_round_trip():
    X = _counts(40)
    pri = FAM.resolve_priors(None, X, 2, None)
    pri["weights_alpha"] = np.array([1.0, 1.0])
    kwargs = FAM.em_kwargs(None, pri, 3)
    est = PoissonMixtureEM(2, random_state=0, **kwargs).fit(X)
    point = FAM.em_point(est, 3)
    np.testing.assert_array_equal(point["rate"], est.means_)
    np.testing.assert_array_equal(point["w"], est.weights_)


# ---------------------------------------------------------------------------- scikit-learn
@parametrize_with_checks(
    [PoissonMixtureEM()],
    expected_failed_checks=lambda est: {
        "check_sample_weight_equivalence_on_dense_data": (
            "the check fits on continuous data without the estimator's input tags; "
            "test_integer_weights_equal_repeated_rows tests the property on counts"
        )
    },
)
def test_sklearn_compatible(estimator, check):
    check(estimator)
