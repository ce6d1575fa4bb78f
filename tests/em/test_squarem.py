"""SQUAREM-accelerated EM (``accelerate="squarem"``) against plain EM and a direct optimiser.

Properties checked for every family and covariance type: from the same start SQUAREM
reaches plain EM's optimum (objective to 1e-6), with no more EM map evaluations on
slowly converging data, and its ``lower_bounds_`` never decrease. The death-notice data
(Hasselblad 1969, the SQUAREM package's example) give the reference answer of a direct
numerical optimisation of the 3-parameter log-likelihood. ``accelerate=None`` is the plain
loop bit for bit; a vector that the family refuses, or an extrapolation that lowers the
objective, falls back to plain EM steps.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import optimize, stats
from scipy.special import expit, logsumexp
from sklearn.exceptions import ConvergenceWarning

from bayesmix._validation import ParameterError
from bayesmix.data import load_death_notices, load_old_faithful
from bayesmix.em import (
    BaseMixtureEM,
    BernoulliMixtureEM,
    CategoricalMixtureEM,
    GaussianMixtureEM,
    PoissonMixtureEM,
    StudentTMixtureEM,
)
from bayesmix.em._base import (
    _squarem_direction,
    covariance_from_vector,
    covariance_to_vector,
)

#: Start of the SQUAREM vignette (R: setRNG Wichmann-Hill seed 123, then
#: ``p0 <- c(runif(1), runif(2, 0, 6))``): weight of component 1, its rate, the other rate.
VIGNETTE_P0 = (0.44629445, 5.34339807, 0.8713513)


@pytest.fixture(scope="module")
def faithful() -> np.ndarray:
    return load_old_faithful()[["eruptions", "waiting"]].to_numpy(dtype=np.float64)


@pytest.fixture(scope="module")
def death_notices() -> tuple[np.ndarray, np.ndarray]:
    table = load_death_notices(expand=False)
    return table[["deaths"]].to_numpy(dtype=np.float64), table["days"].to_numpy(np.float64)


def _binary(rng: np.random.Generator, n: int = 400, d: int = 12) -> np.ndarray:
    """Two overlapping groups of binary rows (0.3 vs 0.6 for every feature)."""
    p = np.where(rng.integers(2, size=n)[:, None] == 0, 0.3, 0.6)
    return (rng.uniform(size=(n, d)) < p).astype(np.float64)


def _items(rng: np.random.Generator, n: int = 400, d: int = 5) -> np.ndarray:
    """Categorical answers (3 levels), the first item tied to half of the rows."""
    codes = rng.integers(3, size=(n, d))
    codes[: n // 2, 0] = 0
    return codes


def _counts(rng: np.random.Generator, n: int = 500, d: int = 3) -> np.ndarray:
    return rng.poisson(np.where(rng.integers(2, size=(n, 1)) == 0, 2.0, 3.5), size=(n, d))


def _fit(cls, X, accelerate, fit_kw=None, **kw):
    est = cls(accelerate=accelerate, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, **(fit_kw or {}))


def _assert_non_decreasing(bounds: np.ndarray) -> None:
    """Non-decreasing up to rounding (a plain EM step itself may lose the last digit)."""
    assert bounds.size > 0
    slack = 1e-12 * np.maximum(np.abs(bounds[1:]), 1.0)
    assert np.all(np.diff(bounds) >= -slack), np.diff(bounds).min()


def _compare(cls, X, fit_kw=None, fewer=True, **kw):
    """Plain EM and SQUAREM from the same start: same optimum, monotone, fewer evaluations."""
    kw = {"tol": 1e-10, "max_iter": 5000, "random_state": 0, **kw}
    plain = _fit(cls, X, None, fit_kw, **kw)
    fast = _fit(cls, X, "squarem", fit_kw, **kw)
    assert plain.converged_ and fast.converged_
    _assert_non_decreasing(plain.lower_bounds_)
    _assert_non_decreasing(fast.lower_bounds_)
    score_kw = {key: value for key, value in (fit_kw or {}).items() if key == "sample_weight"}
    assert fast.objective(X, **score_kw) == pytest.approx(plain.objective(X, **score_kw), abs=1e-6)
    assert fast.lower_bound_ == pytest.approx(plain.lower_bound_, abs=1e-6)
    assert len(fast.lower_bounds_) <= fast.n_iter_
    if fewer:
        assert fast.n_iter_ <= plain.n_iter_, (fast.n_iter_, plain.n_iter_)
    return plain, fast


# ----------------------------------------------------------------------------- every family
@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_gaussian_same_optimum_in_fewer_evaluations(faithful, covariance_type):
    _compare(GaussianMixtureEM, faithful, n_components=3, covariance_type=covariance_type)


def test_gaussian_float32(faithful):
    # float32 carries 7 digits: compare with the float64 optimum to that precision
    kw = {"n_components": 2, "tol": 1e-6, "max_iter": 1000, "random_state": 0}
    fast = _fit(GaussianMixtureEM, faithful, "squarem", dtype=np.float32, **kw)
    reference = _fit(GaussianMixtureEM, faithful, None, **{**kw, "tol": 1e-10})
    assert fast.means_.dtype == np.float32
    _assert_non_decreasing(fast.lower_bounds_)
    assert fast.objective(faithful) == pytest.approx(reference.objective(faithful), abs=1e-4)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_student_t_same_optimum_in_fewer_evaluations(faithful, covariance_type):
    # the degrees of freedom are extrapolated too (log scale, kept within DOF_BOUNDS)
    _compare(StudentTMixtureEM, faithful, n_components=2, covariance_type=covariance_type)


def test_student_t_fixed_dof(faithful):
    _, fast = _compare(StudentTMixtureEM, faithful, n_components=2, dof=4.0)
    np.testing.assert_array_equal(fast.dofs_, [4.0, 4.0])


@pytest.mark.parametrize("smoothing", [1e-3, 0.0])
def test_bernoulli_same_optimum_in_fewer_evaluations(smoothing):
    X = _binary(np.random.default_rng(1))
    _compare(BernoulliMixtureEM, X, n_components=3, smoothing=smoothing)


def test_bernoulli_probabilities_on_the_boundary_stay_there():
    # a column never 1 and one always 1: with smoothing=0 their probabilities are exactly 0
    # and 1 (logits -inf and +inf), which SQUAREM must keep while it extrapolates the rest
    X = _binary(np.random.default_rng(2), n=300, d=8)
    X[:, 0], X[:, 1] = 0.0, 1.0
    _, fast = _compare(BernoulliMixtureEM, X, n_components=2, smoothing=0.0)
    np.testing.assert_array_equal(fast.means_[:, 0], 0.0)
    np.testing.assert_array_equal(fast.means_[:, 1], 1.0)


@pytest.mark.parametrize("smoothing", [1e-3, 0.0])
def test_categorical_same_optimum_in_fewer_evaluations(smoothing):
    X = _items(np.random.default_rng(3))
    _compare(CategoricalMixtureEM, X, n_components=3, smoothing=smoothing, tol=1e-8)


def test_poisson_same_optimum_in_fewer_evaluations():
    _compare(PoissonMixtureEM, _counts(np.random.default_rng(4)), n_components=2)


# ----------------------------------------------------------------------------- what EM supports
def test_gaussian_map_prior(faithful):
    prior = {
        "weights_alpha": 2.0,
        "mu_scale": [5.0, 50.0],
        "mu_loc": [3.5, 70.0],
        "cov_prior_dof": 4.0,
        "cov_prior_scale": np.diag([0.5, 30.0]),
    }
    _compare(GaussianMixtureEM, faithful, n_components=3, prior=prior)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_gaussian_missing_values(faithful, covariance_type):
    X = faithful.copy()
    rng = np.random.default_rng(5)
    X[rng.choice(len(X), 40, replace=False), rng.integers(0, 2, 40)] = np.nan
    _compare(
        GaussianMixtureEM,
        X,
        n_components=3,
        covariance_type=covariance_type,
        missing="model",
        fewer=False,
    )


def test_gaussian_partial_labels_and_sample_weights(faithful):
    rng = np.random.default_rng(6)
    labels = np.full(len(faithful), -1)
    labels[:10] = (faithful[:10, 0] > 3).astype(int)
    weights = rng.integers(1, 4, size=len(faithful)).astype(float)
    fit_kw = {"labels": labels, "sample_weight": weights}
    _, fast = _compare(GaussianMixtureEM, faithful, fit_kw, n_components=2, fewer=False)
    np.testing.assert_array_equal(fast.predict(faithful[:10]), labels[:10])


def test_student_t_map_missing_and_labels(faithful):
    X = faithful.copy()
    rng = np.random.default_rng(7)
    X[rng.choice(len(X), 30, replace=False), 1] = np.nan
    labels = np.full(len(X), -1)
    labels[:6] = (faithful[:6, 0] > 3).astype(int)
    prior = {"weights_alpha": 2.0, "dof_shape": 2.0, "dof_rate": 0.1}
    _compare(
        StudentTMixtureEM,
        X,
        {"labels": labels},
        n_components=2,
        covariance_type="diag",
        prior=prior,
        missing="model",
        fewer=False,
    )


def test_bernoulli_and_poisson_missing_values():
    rng = np.random.default_rng(8)
    for cls, X in [(BernoulliMixtureEM, _binary(rng)), (PoissonMixtureEM, _counts(rng) * 1.0)]:
        hole = rng.uniform(size=X.shape) < 0.1
        hole[:, 0] = False  # no row without an observed value
        X[hole] = np.nan
        _compare(cls, X, n_components=2, missing="model", fewer=False)


def test_restarts_and_warm_start(faithful):
    est = _fit(GaussianMixtureEM, faithful, "squarem", n_components=2, n_init=3, random_state=0)
    assert est.converged_
    first = est.lower_bound_
    est.set_params(warm_start=True, tol=1e-12, max_iter=500)
    est.fit(faithful)
    _assert_non_decreasing(est.lower_bounds_)
    assert est.lower_bound_ >= first - 1e-12


# ----------------------------------------------------------------------------- death notices
def _death_notice_mle(X, days):
    """MLE of the 2-component Poisson mixture by BFGS on (logit w, log rate_1, log rate_2)."""
    x = X[:, 0]

    def minus_loglik(theta):
        w, rates = expit(theta[0]), np.exp(theta[1:])
        comp = np.stack([stats.poisson.logpmf(x, r) for r in rates], axis=1)
        comp += np.log([w, 1.0 - w])
        log_p = logsumexp(comp, axis=1)
        resp = np.exp(comp - log_p[:, None])
        grad = [
            days @ (resp[:, 0] - w),  # d/d logit(w)
            days @ (resp[:, 0] * (x - rates[0])),  # d/d log(rate_1)
            days @ (resp[:, 1] * (x - rates[1])),
        ]
        return -days @ log_p, -np.asarray(grad)

    start = np.array([0.0, np.log(3.0), np.log(1.0)])
    res = optimize.minimize(minus_loglik, start, jac=True, method="BFGS", options={"gtol": 1e-9})
    # BFGS stops with a gradient of about 1e-6; a root search on it gives the last digits
    root = optimize.root(lambda theta: minus_loglik(theta)[1], res.x, tol=1e-14)
    assert res.success and root.success, (res.message, root.message)
    return expit(root.x[0]), np.exp(root.x[1:]), -minus_loglik(root.x)[0]


def _from_vignette_start(accelerate, X, days, **kw):
    """PoissonMixtureEM run from the SQUAREM vignette's start (warm start from set values)."""
    est = PoissonMixtureEM(2, warm_start=True, accelerate=accelerate, **kw)
    est.initialize(X, sample_weight=days)
    w1, rate1, rate2 = VIGNETTE_P0
    est.weights_ = np.array([w1, 1.0 - w1])
    est.means_ = np.array([[rate1], [rate2]])
    return est.fit(X, sample_weight=days)


def test_death_notices_squarem_reaches_the_mle_in_far_fewer_iterations(death_notices):
    X, days = death_notices
    w, rates, loglik = _death_notice_mle(X, days)
    assert loglik == pytest.approx(-1989.946, abs=1e-3)  # the value quoted by the loader
    n = days.sum()
    plain = _from_vignette_start(None, X, days, tol=1e-14, max_iter=20_000)
    fast = _from_vignette_start("squarem", X, days, tol=1e-14, max_iter=20_000)
    assert plain.converged_ and fast.converged_
    assert plain.n_iter_ > 2000  # EM crawls: its rate of convergence is close to 1 here
    assert fast.n_iter_ < plain.n_iter_ / 10
    _assert_non_decreasing(plain.lower_bounds_)
    _assert_non_decreasing(fast.lower_bounds_)
    # same optimum; SQUAREM's parameters agree with the direct optimisation to 1e-6, plain
    # EM's only to about 1e-4 (the objective stops changing before the parameters do)
    for est in (plain, fast):
        assert est.objective(X, sample_weight=days) == pytest.approx(loglik / n, abs=1e-10)
    np.testing.assert_allclose(fast.weights_, [w, 1.0 - w], atol=1e-6)
    np.testing.assert_allclose(fast.means_[:, 0], rates, atol=1e-6)
    np.testing.assert_allclose(plain.means_[:, 0], rates, atol=1e-3)


# ----------------------------------------------------------------------------- the safeguard
def test_one_squarem_step_lands_on_the_fixed_point_of_a_linear_iteration():
    # theta_k = theta* + c^k u: r = (c - 1) u, v = (c - 1)^2 u, alpha = -1 / (1 - c) and
    # theta' = theta0 - 2 alpha r + alpha^2 v = theta*
    target, u, c = np.array([1.0, -2.0, 0.5]), np.array([0.3, 0.1, -0.2]), 0.9
    thetas = [target + c**k * u for k in range(3)]
    r, v, alpha = _squarem_direction(*thetas, step_max=100.0)
    assert alpha == pytest.approx(-1.0 / (1.0 - c))
    np.testing.assert_allclose(thetas[0] - 2 * alpha * r + alpha**2 * v, target, atol=1e-12)
    # the cap on |alpha|; an infinite coordinate that stays put does not move nor count
    assert _squarem_direction(*thetas, step_max=4.0)[2] == -4.0
    held = [np.append(t, -np.inf) for t in thetas]
    r, v, alpha = _squarem_direction(*held, step_max=100.0)
    assert r[-1] == 0.0 and v[-1] == 0.0
    assert alpha == pytest.approx(-1.0 / (1.0 - c))
    # any other non-finite coordinate, or no change at all: the plain EM step
    held[2][-1] = 0.0
    assert _squarem_direction(*held, step_max=100.0)[2] == -1.0
    assert _squarem_direction(*[target] * 3, step_max=100.0)[2] == -1.0


@pytest.mark.parametrize(
    ("shape", "matrices"), [((3, 4, 4), True), ((4, 4), True), ((3, 4), False), ((3,), False)]
)
def test_covariance_coordinates_round_trip_and_stay_positive_definite(shape, matrices):
    rng = np.random.default_rng(9)
    if matrices:
        a = rng.normal(size=shape)
        cov = a @ np.swapaxes(a, -1, -2) + 0.1 * np.eye(shape[-1])
    else:
        cov = rng.uniform(0.1, 3.0, size=shape)
    vec = covariance_to_vector(cov, matrices)
    np.testing.assert_allclose(covariance_from_vector(vec, shape, matrices), cov, rtol=1e-12)
    # any vector maps to a valid covariance, e.g. an extrapolated one far from cov
    wild = covariance_from_vector(vec + 3.0 * rng.normal(size=vec.shape), shape, matrices)
    if matrices:
        assert np.all(np.linalg.eigvalsh(wild) > 0)
    else:
        assert np.all(wild > 0)
    assert covariance_from_vector(vec + 1e4, shape, matrices) is None  # overflow


class _Refusing(PoissonMixtureEM):
    """Every extrapolated vector is refused: SQUAREM must fall back to plain EM steps."""

    def _vector_to_params(self, vec):
        return False


class _Misleading(PoissonMixtureEM):
    """Extrapolations land at deliberately bad rates: the safeguard must reject them."""

    def _vector_to_params(self, vec):
        return super()._vector_to_params(vec + np.r_[0.0, 0.0, 1.5, -1.5])


def test_refused_extrapolations_give_plain_em_exactly(death_notices):
    X, days = death_notices
    kw = {"tol": 1e-12, "max_iter": 3000, "random_state": 0}
    plain = _fit(PoissonMixtureEM, X, None, {"sample_weight": days}, n_components=2, **kw)
    fast = _fit(_Refusing, X, "squarem", {"sample_weight": days}, n_components=2, **kw)
    assert fast.n_iter_ == plain.n_iter_
    np.testing.assert_array_equal(fast.lower_bounds_, plain.lower_bounds_)
    np.testing.assert_array_equal(fast.means_, plain.means_)


def test_worse_extrapolations_are_rejected(death_notices):
    # every extrapolation is worse than theta1 here: all are rejected after backtracking to
    # alpha = -1, and the accepted steps are plain EM's, at the cost of the rejected ones
    X, days = death_notices
    kw = {"tol": 1e-10, "max_iter": 20_000, "random_state": 0, "n_components": 2}
    plain = _fit(PoissonMixtureEM, X, None, {"sample_weight": days}, **kw)
    fast = _fit(_Misleading, X, "squarem", {"sample_weight": days}, **kw)
    assert fast.converged_
    np.testing.assert_array_equal(fast.lower_bounds_, plain.lower_bounds_)
    assert fast.n_iter_ > plain.n_iter_


@pytest.mark.parametrize("max_iter", [1, 2, 3])
def test_first_cycle_is_plain_em(faithful, max_iter):
    # the step length starts capped at 1: the first cycle is three plain EM iterations
    kw = {"n_components": 3, "max_iter": max_iter, "random_state": 0}
    plain = _fit(GaussianMixtureEM, faithful, None, **kw)
    fast = _fit(GaussianMixtureEM, faithful, "squarem", **kw)
    assert fast.n_iter_ == plain.n_iter_ == max_iter
    np.testing.assert_array_equal(fast.lower_bounds_, plain.lower_bounds_)
    np.testing.assert_array_equal(fast.covariances_, plain.covariances_)


def test_max_iter_counts_map_evaluations(faithful):
    est = _fit(GaussianMixtureEM, faithful, "squarem", n_components=3, max_iter=20, tol=1e-300)
    assert est.n_iter_ == 20 and not est.converged_
    _assert_non_decreasing(est.lower_bounds_)


# ----------------------------------------------------------------------------- plain EM and API
@pytest.mark.parametrize("cls", [GaussianMixtureEM, PoissonMixtureEM])
def test_accelerate_none_is_the_plain_loop_bit_for_bit(faithful, cls):
    X = faithful if cls is GaussianMixtureEM else np.round(faithful)
    kw = {"n_components": 2, "tol": 1e-8, "max_iter": 1000, "random_state": 0}
    est = _fit(cls, X, None, **kw)
    # the loop written out: one EM iteration (_em_step) at a time from the same start
    ref = cls(**kw).initialize(X)
    checked = ref._validate_predict_data(X)
    workspace: dict = {}
    bounds = [ref._em_step(checked, workspace)]
    while abs(bounds[-1] - (bounds[-2] if len(bounds) > 1 else -np.inf)) >= kw["tol"]:
        bounds.append(ref._em_step(checked, workspace))
    np.testing.assert_array_equal(est.lower_bounds_, bounds)
    assert est.n_iter_ == len(bounds)
    np.testing.assert_array_equal(est.weights_, ref.weights_)
    np.testing.assert_array_equal(est.means_, ref.means_)


@pytest.mark.parametrize("value", ["SQUAREM", "fast", True, 1])
def test_invalid_accelerate_raises(faithful, value):
    with pytest.raises(ParameterError, match="accelerate") as info:
        GaussianMixtureEM(2, accelerate=value).fit(faithful)
    assert "'squarem'" in str(info.value) and "\n" not in str(info.value)


def test_family_without_the_hooks_refuses_squarem(faithful):
    class NoHooks(PoissonMixtureEM):
        _params_to_vector = BaseMixtureEM._params_to_vector

    with pytest.raises(ParameterError, match="not supported by NoHooks"):
        NoHooks(2, accelerate="squarem").fit(np.round(faithful))
    NoHooks(2).fit(np.round(faithful))  # plain EM still works


def test_accelerate_is_stored_unchanged():
    est = GaussianMixtureEM(accelerate="squarem")
    assert est.get_params()["accelerate"] == "squarem"
    for cls in (BernoulliMixtureEM, CategoricalMixtureEM, PoissonMixtureEM, StudentTMixtureEM):
        assert cls().get_params()["accelerate"] is None
