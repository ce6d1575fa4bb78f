"""Student-t mixture EM with values missing at random (``missing="model"``).

References: the log density of each row's observed coordinates against
``scipy.stats.multivariate_t`` on the observed block (the marginal of a multivariate t is a t
with the same degrees of freedom); EM's answer against a direct optimisation of the
observed-data log-likelihood (SciPy's L-BFGS-B, started from EM's answer, on an unconstrained
parametrisation), which must not improve it; complete data give the same bits as
``missing="error"``; integer sample weights give the fit of repeated rows.
"""

import copy
import warnings

import numpy as np
import pytest
from scipy import optimize, stats
from scipy.special import logsumexp, softmax

from bayesmix._validation import DataError
from bayesmix.data import remove_at_random
from bayesmix.em import StudentTMixtureEM
from bayesmix.families import get_family

TYPES = ("full", "diag")


def _simulated_3d(n=240, seed=1):
    """Two multivariate t clusters in 3-D (nu = 4 and 8), full scale matrices."""
    rng = np.random.default_rng(seed)
    mu = np.array([[0.0, 0.0, 0.0], [3.5, 2.0, -1.5]])
    cov = np.array(
        [
            [[1.0, 0.5, 0.2], [0.5, 1.5, -0.4], [0.2, -0.4, 0.8]],
            [[0.7, -0.3, 0.1], [-0.3, 1.0, 0.4], [0.1, 0.4, 1.2]],
        ]
    )
    nu = np.array([4.0, 8.0])
    z = np.arange(n) % 2
    u = rng.gamma(nu[z] / 2, 2 / nu[z])
    eps = np.einsum("nij,nj->ni", np.linalg.cholesky(cov[z]), rng.normal(size=(n, 3)))
    return mu[z] + eps / np.sqrt(u)[:, None]


def _scale_matrices(em):
    """The fitted scale matrices as (K, D, D), full or diag."""
    cov = np.asarray(em.covariances_)
    return cov if em.covariance_type == "full" else np.stack([np.diag(v) for v in cov])


def _observed_loglik(X, weights, means, scales, dofs):
    """``sum_n log sum_k w_k t(x_no | mu_ko, Sigma_k,oo, nu_k)`` by scipy.stats, per pattern."""
    observed = ~np.isnan(X)
    total = 0.0
    for pattern in np.unique(observed, axis=0):
        rows = (observed == pattern).all(axis=1)
        xo = X[rows][:, pattern]
        comp = [
            np.log(weights[k])
            + np.reshape(
                stats.multivariate_t(
                    means[k][pattern], scales[k][np.ix_(pattern, pattern)], df=dofs[k]
                ).logpdf(xo),
                -1,
            )
            for k in range(len(weights))
        ]
        total += logsumexp(np.stack(comp, axis=1), axis=1).sum()
    return total


def _pack(em):
    """Log weights (softmax), means, Cholesky factors with log diagonal (diag: log sds), log nu."""
    parts = [np.log(em.weights_), em.means_.ravel()]
    for c in _scale_matrices(em):
        low = np.linalg.cholesky(c)
        if em.covariance_type == "full":
            low[np.diag_indices_from(low)] = np.log(np.diag(low))
            parts.append(low[np.tril_indices_from(low)])
        else:
            parts.append(np.log(np.diag(low)))
    if em.dof is None:
        parts.append(np.log(em.dofs_))
    return np.concatenate(parts)


def _unpack(theta, k, d, ctype, dof):
    weights = softmax(theta[:k])
    means = theta[k : k + k * d].reshape(k, d)
    rest = theta[k + k * d :]
    tril = np.tril_indices(d)
    m = len(tril[0]) if ctype == "full" else d
    scales = []
    for j in range(k):
        block = rest[j * m : (j + 1) * m]
        if ctype == "full":
            low = np.zeros((d, d))
            low[tril] = block
            low[np.diag_indices(d)] = np.exp(np.diag(low))
            scales.append(low @ low.T)
        else:
            scales.append(np.diag(np.exp(2.0 * block)))
    dofs = np.exp(rest[k * m :]) if dof is None else np.full(k, dof)
    return weights, means, np.stack(scales), dofs


def _scipy_improvement(X, em):
    """EM's observed-data log-likelihood, SciPy's best from EM's answer, relative gain."""
    k, d = em.means_.shape
    start = _pack(em)

    def negative(theta):
        return -_observed_loglik(X, *_unpack(theta, k, d, em.covariance_type, em.dof))

    em_value = -negative(start)
    res = optimize.minimize(negative, start, method="L-BFGS-B")
    best = max(-res.fun, em_value)
    return em_value, best, (best - em_value) / abs(em_value)


def _monotone(bounds):
    return np.all(np.diff(bounds) >= -1e-12 * np.abs(bounds[1:]))


@pytest.fixture(scope="module")
def data_20():
    return remove_at_random(_simulated_3d(), 0.20, random_state=3)


# ------------------------------------------------------------------------------ densities
@pytest.mark.parametrize("ctype", TYPES)
def test_observed_log_density_matches_scipy(ctype):
    X = remove_at_random(_simulated_3d(60), 0.3, random_state=2)
    X[0] = [1.0, 2.0, 3.0]  # a complete row among the incomplete ones
    em = StudentTMixtureEM(2, covariance_type=ctype, missing="model", max_iter=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        em.fit(X)
    scales = _scale_matrices(em)
    got = em._estimate_log_prob(em._validate_predict_data(X))
    for n, x in enumerate(X):
        o = ~np.isnan(x)
        for k in range(2):
            ref = stats.multivariate_t(
                em.means_[k][o], scales[k][np.ix_(o, o)], df=em.dofs_[k]
            ).logpdf(x[o])
            np.testing.assert_allclose(got[n, k], ref, rtol=1e-12, atol=1e-12)
    ref_total = _observed_loglik(X, em.weights_, em.means_, scales, em.dofs_)
    np.testing.assert_allclose(em.score_samples(X).sum(), ref_total, rtol=1e-12)


@pytest.mark.parametrize("full", [True, False])
def test_family_component_log_density_observed_coordinates(full):
    rng = np.random.default_rng(3)
    k, d, s = 2, 3, 4
    X = remove_at_random(rng.normal(size=(12, d)), 0.35, random_state=4)
    mu = rng.normal(size=(s, k, d))
    nu = rng.uniform(1.5, 20.0, (s, k))
    if full:
        a = rng.normal(size=(s, k, d, d))
        cov = a @ np.swapaxes(a, -1, -2) + np.eye(d)
        params = {"w": np.full((s, k), 0.5), "mu": mu, "cov": cov, "nu": nu}
    else:
        sigma = rng.uniform(0.5, 2.0, (s, k, d))
        cov = np.stack([[np.diag(v * v) for v in draw] for draw in sigma])
        params = {"w": np.full((s, k), 0.5), "mu": mu, "sigma": sigma, "nu": nu}
    family = get_family("student_t")
    got = family.component_log_density(X, params)
    assert got.shape == (s, 12, k)
    for i in range(s):
        for n, x in enumerate(X):
            o = ~np.isnan(x)
            for j in range(k):
                ref = stats.multivariate_t(
                    mu[i, j][o], cov[i, j][np.ix_(o, o)], df=nu[i, j]
                ).logpdf(x[o])
                np.testing.assert_allclose(got[i, n, j], ref, rtol=1e-12)
    # complete rows: the same numbers as the density of the full vector
    complete = ~np.isnan(X).any(axis=1)
    np.testing.assert_allclose(
        got[:, complete], family.component_log_density(X[complete], params), rtol=1e-13
    )


# ------------------------------------------------------------------------------ stationarity
@pytest.mark.parametrize("dof", [None, 5.0], ids=["dof_estimated", "dof_fixed"])
@pytest.mark.parametrize("ctype", TYPES)
def test_em_is_stationary_against_direct_optimisation(ctype, dof, data_20):
    X = data_20
    em = StudentTMixtureEM(
        2,
        covariance_type=ctype,
        dof=dof,
        missing="model",
        reg_covar=0.0,
        tol=1e-10,
        max_iter=5000,
        random_state=0,
    ).fit(X)
    em_value, best, gain = _scipy_improvement(X, em)
    assert gain <= 1e-6, f"SciPy improved EM's log-likelihood by {gain:.3g} (relative)"
    np.testing.assert_allclose(em_value, em.lower_bound_ * len(X), rtol=1e-9)
    assert em.converged_
    assert _monotone(em.lower_bounds_), "EM objective decreased"


def test_ecm_dof_step_is_monotone_and_heads_for_the_ecme_answer(data_20):
    kwargs = {"missing": "model", "reg_covar": 0.0, "random_state": 0, "tol": 1e-10}
    ecme = StudentTMixtureEM(2, max_iter=5000, **kwargs).fit(data_20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ECM is slow near the optimum
        ecm = StudentTMixtureEM(2, dof_step="ecm", max_iter=300, **kwargs).fit(data_20)
    assert _monotone(ecm.lower_bounds_)
    assert ecm.lower_bound_ <= ecme.lower_bound_ + 1e-12
    np.testing.assert_allclose(ecm.lower_bound_, ecme.lower_bound_, rtol=1e-5)


# ------------------------------------------------------------------------------ no NaN
@pytest.mark.parametrize("dof_step", ["ecme", "ecm"])
@pytest.mark.parametrize("ctype", TYPES)
def test_complete_data_same_bits_as_missing_error(ctype, dof_step):
    X = _simulated_3d(150)
    kwargs = {"covariance_type": ctype, "dof_step": dof_step, "random_state": 0, "max_iter": 30}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = StudentTMixtureEM(2, **kwargs).fit(X)
        b = StudentTMixtureEM(2, missing="model", **kwargs).fit(X)
    for name in ("weights_", "means_", "covariances_", "dofs_", "lower_bounds_"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert np.array_equal(a.predict(X), b.predict(X))
    assert np.array_equal(a.score_samples(X), b.score_samples(X))


# ------------------------------------------------------------------------------ the rest
@pytest.mark.parametrize("ctype", TYPES)
def test_map_prior_and_labels_keep_the_objective_monotone(ctype, data_20):
    prior = {
        "weights_alpha": 2.0,
        "mu_scale": 10.0,
        "sigma_scale": 3.0,
        "lkj_eta": 2.0,
        "dof_shape": 2.0,
        "dof_rate": 0.1,
    }
    y = np.full(len(data_20), -1)
    y[:6:2] = 0
    for labels in (None, y):
        em = StudentTMixtureEM(
            2,
            covariance_type=ctype,
            missing="model",
            prior=prior,
            reg_covar=0.0,
            tol=1e-9,
            max_iter=500,
            random_state=0,
        ).fit(data_20, labels=labels)
        assert em.converged_
        assert _monotone(em.lower_bounds_)


@pytest.mark.parametrize("ctype", TYPES)
def test_sample_weights_equal_repeated_rows_with_nan(ctype):
    X = remove_at_random(_simulated_3d(60), 0.25, random_state=6)
    w = np.random.default_rng(7).integers(0, 4, len(X))
    w[:3] = 1
    kwargs = {"covariance_type": ctype, "missing": "model", "random_state": 0, "max_iter": 20}
    rep = np.repeat(np.arange(len(X)), w)
    resp = np.zeros((len(X), 2))
    resp[np.arange(len(X)), np.arange(len(X)) % 2] = 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = StudentTMixtureEM(2, **kwargs).initialize(X, sample_weight=w)
        b = copy.deepcopy(a)  # one start for both fits
        a.m_step(X, resp, sample_weight=w)
        b.m_step(X[rep], resp[rep])
        np.testing.assert_allclose(a.means_, b.means_, rtol=1e-10)
        a.set_params(warm_start=True, tol=1e-12).fit(X, sample_weight=w)
        b.set_params(warm_start=True, tol=1e-12).fit(X[rep])
    for name in ("weights_", "means_", "covariances_", "dofs_", "lower_bounds_"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-7, atol=1e-9)


def test_fit_predict_equals_fit_then_predict_with_nan(data_20):
    kwargs = {"missing": "model", "random_state": 0}
    labels = StudentTMixtureEM(2, **kwargs).fit_predict(data_20)
    em = StudentTMixtureEM(2, **kwargs).fit(data_20)
    assert np.array_equal(labels, em.predict(data_20))
    np.testing.assert_allclose(em.predict_proba(data_20).sum(axis=1), 1.0)
    assert em.__sklearn_tags__().input_tags.allow_nan


def test_nan_needs_missing_model(data_20):
    with pytest.raises(DataError, match="missing='model'"):
        StudentTMixtureEM(2).fit(data_20)
    em = StudentTMixtureEM(2, random_state=0).fit(np.nan_to_num(data_20))
    with pytest.raises(DataError, match="missing='model'"):
        em.predict(data_20)
