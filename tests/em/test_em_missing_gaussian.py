"""Gaussian mixture EM with values missing at random (``missing="model"``).

References: the log density of each row's observed coordinates against
``scipy.stats.multivariate_normal`` on the observed block; EM's answer against a direct
optimisation of the observed-data log-likelihood (SciPy's L-BFGS-B, started from EM's answer,
on an unconstrained parametrisation), which must not improve it; complete data give the same
bits as ``missing="error"``; integer sample weights give the fit of repeated rows.
"""

import warnings

import numpy as np
import pytest
from scipy import optimize, stats
from scipy.special import logsumexp, softmax

from bayesmix._validation import DataError, ParameterError
from bayesmix.data import remove_at_random
from bayesmix.em import GaussianMixtureEM
from bayesmix.families import get_family

TYPES = ("full", "tied", "diag", "spherical")


def _simulated_4d(n=300, seed=1):
    """Three clusters in 4-D with full covariances."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0, 0.0, 0.0], [4.0, 1.0, -2.0, 3.0], [-3.0, 4.0, 2.0, -1.0]])
    rows = []
    for j, c in enumerate(centres):
        a = rng.normal(size=(4, 4))
        cov = a @ a.T / 4.0 + 0.3 * np.eye(4)
        rows.append(rng.multivariate_normal(c, cov, n // 3 + j))
    return np.concatenate(rows)


def _full_covariances(em):
    """The fitted covariances as (K, D, D) matrices, whatever the covariance type."""
    k, d = em.means_.shape
    cov = np.asarray(em.covariances_)
    if em.covariance_type == "full":
        return cov
    if em.covariance_type == "tied":
        return np.broadcast_to(cov, (k, d, d))
    var = np.broadcast_to(cov.reshape(k, -1), (k, d))
    return np.stack([np.diag(v) for v in var])


def _observed_loglik(X, weights, means, covs):
    """``sum_n log sum_k w_k N(x_no | mu_ko, Sigma_k,oo)`` by scipy.stats, per pattern."""
    observed = ~np.isnan(X)
    total = 0.0
    for pattern in np.unique(observed, axis=0):
        rows = (observed == pattern).all(axis=1)
        xo = X[rows][:, pattern]
        comp = [
            np.log(weights[k])
            + np.reshape(
                stats.multivariate_normal(
                    means[k][pattern], covs[k][np.ix_(pattern, pattern)]
                ).logpdf(xo),
                -1,
            )
            for k in range(len(weights))
        ]
        total += logsumexp(np.stack(comp, axis=1), axis=1).sum()
    return total


def _pack(weights, means, covs, ctype):
    """Unconstrained vector: log weights (softmax), means, Cholesky factors (log diagonal)."""
    parts = [np.log(weights), means.ravel()]
    if ctype == "full":
        tril = np.tril_indices(means.shape[1])
        for c in covs:
            low = np.linalg.cholesky(c)
            low[np.diag_indices_from(low)] = np.log(np.diag(low))
            parts.append(low[tril])
    else:  # diag: log standard deviations
        parts.append(0.5 * np.log(np.diagonal(covs, axis1=1, axis2=2)).ravel())
    return np.concatenate(parts)


def _unpack(theta, k, d, ctype):
    weights = softmax(theta[:k])
    means = theta[k : k + k * d].reshape(k, d)
    rest = theta[k + k * d :]
    if ctype == "full":
        tril = np.tril_indices(d)
        m = len(tril[0])
        covs = []
        for j in range(k):
            low = np.zeros((d, d))
            low[tril] = rest[j * m : (j + 1) * m]
            low[np.diag_indices(d)] = np.exp(np.diag(low))
            covs.append(low @ low.T)
        return weights, means, np.stack(covs)
    sd = np.exp(rest.reshape(k, d))
    return weights, means, np.stack([np.diag(s * s) for s in sd])


def _scipy_improvement(X, em):
    """EM's observed-data log-likelihood, SciPy's best from EM's answer, relative gain."""
    k, d = em.means_.shape
    ctype = em.covariance_type
    start = _pack(em.weights_, em.means_, _full_covariances(em), ctype)

    def negative(theta):
        return -_observed_loglik(X, *_unpack(theta, k, d, ctype))

    em_value = -negative(start)
    res = optimize.minimize(negative, start, method="L-BFGS-B")
    best = max(-res.fun, em_value)
    return em_value, best, (best - em_value) / abs(em_value)


# ------------------------------------------------------------------------------ densities
@pytest.mark.parametrize("ctype", TYPES)
def test_observed_log_density_matches_scipy(ctype):
    X = remove_at_random(_simulated_4d(90), 0.3, random_state=2)
    X[0] = [1.0, 2.0, 3.0, 4.0]  # a complete row among the incomplete ones
    em = GaussianMixtureEM(3, covariance_type=ctype, missing="model", max_iter=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        em.fit(X)
    covs = _full_covariances(em)
    got = em._estimate_log_prob(em._validate_predict_data(X))
    for n, x in enumerate(X):
        o = ~np.isnan(x)
        for k in range(3):
            ref = stats.multivariate_normal(em.means_[k][o], covs[k][np.ix_(o, o)]).logpdf(x[o])
            np.testing.assert_allclose(got[n, k], ref, rtol=1e-12, atol=1e-12)
    ref_total = _observed_loglik(X, em.weights_, em.means_, covs)
    np.testing.assert_allclose(em.score_samples(X).sum(), ref_total, rtol=1e-12)


@pytest.mark.parametrize("full", [True, False])
def test_family_component_log_density_observed_coordinates(full):
    rng = np.random.default_rng(3)
    k, d, s = 2, 3, 4
    X = remove_at_random(rng.normal(size=(12, d)), 0.35, random_state=4)
    mu = rng.normal(size=(s, k, d))
    if full:
        a = rng.normal(size=(s, k, d, d))
        cov = a @ np.swapaxes(a, -1, -2) + np.eye(d)
        params = {"w": np.full((s, k), 0.5), "mu": mu, "cov": cov}
    else:
        sigma = rng.uniform(0.5, 2.0, (s, k, d))
        cov = np.stack([[np.diag(v * v) for v in draw] for draw in sigma])
        params = {"w": np.full((s, k), 0.5), "mu": mu, "sigma": sigma}
    got = get_family("gaussian").component_log_density(X, params)
    assert got.shape == (s, 12, k)
    for i in range(s):
        for n, x in enumerate(X):
            o = ~np.isnan(x)
            for j in range(k):
                ref = stats.multivariate_normal(mu[i, j][o], cov[i, j][np.ix_(o, o)]).logpdf(x[o])
                np.testing.assert_allclose(got[i, n, j], ref, rtol=1e-12)


# ------------------------------------------------------------------------------ stationarity
def _old_faithful_15(old_faithful):
    return remove_at_random(old_faithful, 0.15, random_state=0), 2


def _simulated_30(_):
    return remove_at_random(_simulated_4d(), 0.30, random_state=5), 3


@pytest.mark.parametrize("ctype", ["full", "diag"])
@pytest.mark.parametrize("case", [_old_faithful_15, _simulated_30], ids=["faithful15", "sim4d30"])
def test_em_is_stationary_against_direct_optimisation(case, ctype, old_faithful):
    X, k = case(old_faithful)
    em = GaussianMixtureEM(
        k,
        covariance_type=ctype,
        missing="model",
        reg_covar=0.0,
        tol=1e-10,
        max_iter=10_000,
        random_state=0,
    ).fit(X)
    em_value, best, gain = _scipy_improvement(X, em)
    assert gain <= 1e-6, f"SciPy improved EM's log-likelihood by {gain:.3g} (relative)"
    np.testing.assert_allclose(em_value, em.lower_bound_ * len(X), rtol=1e-9)
    assert em.converged_
    bounds = em.lower_bounds_
    assert np.all(np.diff(bounds) >= -1e-12 * np.abs(bounds[1:])), "EM objective decreased"


# ------------------------------------------------------------------------------ no NaN
@pytest.mark.parametrize("ctype", TYPES)
def test_complete_data_same_bits_as_missing_error(ctype, old_faithful):
    kwargs = {"covariance_type": ctype, "random_state": 0, "tol": 1e-8, "max_iter": 50}
    a = GaussianMixtureEM(2, **kwargs).fit(old_faithful)
    b = GaussianMixtureEM(2, missing="model", **kwargs).fit(old_faithful)
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_", "lower_bounds_"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert np.array_equal(a.predict(old_faithful), b.predict(old_faithful))
    assert np.array_equal(a.score_samples(old_faithful), b.score_samples(old_faithful))


# ------------------------------------------------------------------------------ weights
@pytest.mark.parametrize("ctype", TYPES)
def test_sample_weights_equal_repeated_rows_with_nan(ctype):
    X = remove_at_random(_simulated_4d(60), 0.25, random_state=6)
    w = np.random.default_rng(7).integers(0, 4, len(X))
    w[:3] = 1  # rows of weight 0 are left out; keep enough rows
    em = GaussianMixtureEM(3, covariance_type=ctype, missing="model", random_state=0)
    em.initialize(X)  # one start for both fits
    start = {
        "weights_init": em.weights_,
        "means_init": em.means_,
        "precisions_init": em.precisions_,
    }
    kwargs = {"covariance_type": ctype, "missing": "model", "tol": 1e-12, "max_iter": 30}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = GaussianMixtureEM(3, **kwargs, **start).fit(X, sample_weight=w)
        b = GaussianMixtureEM(3, **kwargs, **start).fit(np.repeat(X, w, axis=0))
    for name in ("weights_", "means_", "covariances_", "lower_bounds_"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-8, atol=1e-8)


# ------------------------------------------------------------------------------ the rest
def test_map_prior_and_labels_keep_the_objective_monotone():
    X = remove_at_random(_simulated_4d(), 0.3, random_state=8)
    prior = {"weights_alpha": 2.0, "mu_scale": 10.0, "cov_prior_dof": 6.0, "cov_prior_scale": 1.0}
    y = np.full(len(X), -1)
    y[:5] = 0
    for labels in (None, y):
        em = GaussianMixtureEM(
            3, missing="model", prior=prior, tol=1e-9, max_iter=500, random_state=0
        ).fit(X, labels=labels)
        bounds = em.lower_bounds_
        assert em.converged_
        assert np.all(np.diff(bounds) >= -1e-12 * np.abs(bounds[1:]))


def test_labels_on_complete_data_take_the_generic_step():
    # every row labelled: one M-step gives the class means (the fused pass would ignore labels)
    X = _simulated_4d()
    y = np.repeat([0, 1, 2], [100, 101, 102])
    em = GaussianMixtureEM(3, reg_covar=0.0, random_state=0).fit(X, labels=y)
    for j in range(3):
        np.testing.assert_allclose(em.means_[j], X[y == j].mean(axis=0), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("ctype", TYPES)
def test_float32_close_to_float64_with_nan(ctype):
    X = remove_at_random(_simulated_4d(), 0.3, random_state=11)
    kwargs = {"covariance_type": ctype, "missing": "model", "random_state": 0, "tol": 1e-6}
    a = GaussianMixtureEM(3, **kwargs).fit(X)
    X32 = X.astype(np.float32)
    b = GaussianMixtureEM(3, dtype=np.float32, **kwargs).fit(X32)
    assert b.means_.dtype == np.float32 and b.score_samples(X32).dtype == np.float32
    np.testing.assert_allclose(b.means_, a.means_, rtol=1e-3, atol=1e-3)


def test_fit_predict_equals_fit_then_predict_with_nan():
    X = remove_at_random(_simulated_4d(), 0.3, random_state=9)
    kwargs = {"covariance_type": "tied", "missing": "model", "random_state": 0}
    labels = GaussianMixtureEM(3, **kwargs).fit_predict(X)
    em = GaussianMixtureEM(3, **kwargs).fit(X)
    assert np.array_equal(labels, em.predict(X))
    np.testing.assert_allclose(em.predict_proba(X).sum(axis=1), 1.0)


def test_nan_needs_missing_model():
    X = remove_at_random(_simulated_4d(), 0.1, random_state=10)
    with pytest.raises(DataError, match="missing='model'"):
        GaussianMixtureEM(2).fit(X)
    with pytest.raises(ParameterError, match="missing"):
        GaussianMixtureEM(2, missing="drop").fit(X)


def test_dask_input_refuses_missing_model():
    da = pytest.importorskip("dask.array")
    X = da.from_array(_simulated_4d(), chunks=(100, 4))
    with pytest.raises(ParameterError, match="missing='model' is not supported with dask"):
        GaussianMixtureEM(2, missing="model").fit(X)
