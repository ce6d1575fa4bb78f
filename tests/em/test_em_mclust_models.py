"""GaussianMixtureEM with R mclust's 14 covariance models.

* mclust's published numbers (Old Faithful, acidity, galaxies, iris) from ``bic_table``;
* EM never decreases its objective, for every model (and on random data: hypothesis);
* ``covariances_`` have the model's structure to 1e-10;
* at EM's answer, a direct numerical maximisation of the log-likelihood in the model's own
  parameterisation finds nothing higher (a stationary point of the constrained likelihood);
* the four scikit-learn names and their mclust names are the same fits, bit for bit;
* the R cross-check of whole BIC tables (optional: skipped without ``Rscript``) is in
  ``test_em_mclust_tables.py``; the full check is ``validation/mclust_bic_tables.py``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import optimize
from scipy.linalg import expm

from bayesmix._validation import ParameterError
from bayesmix.data import load_acidity, load_galaxies, load_iris, load_old_faithful
from bayesmix.em import GaussianMixtureEM
from bayesmix.em.covariance_models import check_structure, get_model
from bayesmix.em.selection import MCLUST_MODELS, bic_table

FAITHFUL = load_old_faithful().to_numpy(dtype=float)


def _fit(X, k, model, **kw):
    options = {"random_state": 0, "tol": 1e-10, "max_iter": 3000, "reg_covar": 0.0}
    options.update(kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return GaussianMixtureEM(k, covariance_type=model, **options).fit(X)


# ------------------------------------------------------------------ published numbers
@pytest.fixture(scope="module")
def faithful_table():
    return bic_table(FAITHFUL)


def test_old_faithful_as_published(faithful_table):
    """Fraley & Raftery / mclust: EEE,3 by BIC (-2314.316), VVE,2 by ICL (-2320.763)."""
    tab = faithful_table
    assert tab.best("bic") == ("EEE", 3)
    assert tab.bic.loc[3, "EEE"] >= -2314.316 - 1e-3
    assert tab.bic.loc[3, "EEE"] == pytest.approx(-2314.316, abs=0.05)
    assert tab.log_likelihood.loc[3, "EEE"] >= -1126.326 - 1e-3
    assert tab.bic.loc[3, "EEE"] == pytest.approx(-2314.316, abs=0.001)  # mclust's fit
    assert tab.best("icl") == ("VVE", 2)
    # VVE's inner iteration goes further than mclust's: a higher likelihood, a higher ICL
    assert tab.icl.loc[2, "VVE"] >= -2320.763 - 0.01
    assert tab.icl.loc[2, "VVE"] == pytest.approx(-2320.763, abs=0.5)
    assert [(m, k) for m, k, _ in tab.top(3)][0] == ("EEE", 3)
    text = str(tab)
    assert "EEE,3" in text and "-2314.3" in text


def test_acidity_galaxies_iris_as_published():
    acidity = bic_table(load_acidity().to_numpy(dtype=float))
    assert acidity.best() == ("E", 2)
    assert acidity.bic.loc[2, "E"] == pytest.approx(-392.0723, abs=0.01)
    galaxies = bic_table(load_galaxies("1000 km/s").to_numpy(dtype=float))
    assert galaxies.best() == ("V", 4)
    assert galaxies.bic.loc[4, "V"] == pytest.approx(-447.0579, abs=0.01)
    iris = bic_table(load_iris().to_numpy(dtype=float), ks=[1, 2, 3], covariance_types=None)
    assert iris.best() == ("VEV", 2)
    assert iris.bic.loc[2, "VEV"] == pytest.approx(-561.7285, abs=0.01)


def test_bic_table_columns_and_errors():
    tab = bic_table(FAITHFUL, ks=[1, 2], covariance_types=["EII", "full"])
    assert list(tab.bic.columns) == ["EII", "full"] and list(tab.bic.index) == [1, 2]
    # K = 1: every model with the same constraint on one component gives one likelihood
    assert tab.log_likelihood.loc[1, "full"] > tab.log_likelihood.loc[1, "EII"]
    est = tab.estimator("full", 2)
    assert est.bic(FAITHFUL, convention="mclust") == pytest.approx(tab.bic.loc[2, "full"])
    with pytest.raises(ParameterError, match="covariance_type"):
        bic_table(FAITHFUL, covariance_types=["XYZ"])
    with pytest.raises(ParameterError, match="ks"):
        bic_table(FAITHFUL, ks=[0])
    assert list(bic_table(FAITHFUL[:, :1], ks=[1]).bic.columns) == ["E", "V"]
    assert len(MCLUST_MODELS) == 14


# ------------------------------------------------------------------ EM for every model
@pytest.mark.parametrize("model", MCLUST_MODELS)
def test_every_model_is_monotone_and_structured(model):
    est = _fit(FAITHFUL, 3, model, init_params="k-means++", n_init=1)
    bounds = np.asarray(est.lower_bounds_)
    assert np.all(np.diff(bounds) >= -1e-12 * np.abs(bounds[1:]))
    cov = est.covariances_
    assert check_structure(model, cov, tol=1e-10) == []
    # the count of free parameters is mclust's
    assert est._n_parameters() == get_model(model).n_parameters(3, 2) + 3 * 2 + 2
    # the mclust BIC is minus scikit-learn's
    assert est.bic(FAITHFUL, convention="mclust") == -est.bic(FAITHFUL)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    model=st.sampled_from(MCLUST_MODELS),
    k=st.integers(1, 3),
    d=st.integers(2, 3),
)
def test_objective_never_decreases_on_random_data(seed, model, k, d):
    rng = np.random.default_rng(seed)
    n = 40
    X = rng.normal(size=(n, d)) * rng.uniform(0.5, 3.0, d) + 4.0 * rng.integers(0, k, n)[:, None]
    est = _fit(X, k, model, random_state=seed, max_iter=200, reg_covar=1e-6)
    bounds = np.asarray(est.lower_bounds_)
    assert np.all(np.diff(bounds) >= -1e-10 * np.maximum(1.0, np.abs(bounds[1:])))
    assert check_structure(model, est.covariances_, tol=1e-8) == []


# ------------------------------------------------------------------ direct maximisation
def _orth(a, d):
    skew = np.zeros((d, d))
    skew[np.triu_indices(d, 1)] = a
    return expm(skew - skew.T)


def _as_full(model, cov, k, d):
    kernel = get_model(model).kernel
    cov = np.asarray(cov, dtype=float)
    if kernel == "full":
        return cov
    if kernel == "tied":
        return np.broadcast_to(cov, (k, d, d))
    if kernel == "diag":
        return np.stack([np.diag(v) for v in cov])
    return cov[:, None, None] * np.eye(d)


@pytest.mark.parametrize("model", MCLUST_MODELS)
def test_em_answer_is_a_maximum_of_the_constrained_likelihood(model):
    """From EM's answer, BFGS over weights, means and the model's own parameters gains < 1e-6.

    ``Sigma_k = lambda_k (O_k R_k) diag(a_k) (O_k R_k)^T`` about EM's volumes, shapes and
    orientations ``O_k``, with one volume / shape / rotation ``R`` shared where the model
    says E, none where it says I.
    """
    rng = np.random.default_rng(1)
    X = np.concatenate(
        [rng.normal([0, 0], [1.0, 0.5], (40, 2)), rng.normal([3, 2], [0.6, 1.2], (40, 2))]
    )
    X[:40] = X[:40] @ np.array([[1.0, 0.4], [0.0, 1.0]])
    k, d = 2, 2
    est = _fit(X, k, model, n_init=3)
    m = get_model(model)
    full = _as_full(model, est.covariances_, k, d)
    if m.orientation == "V":
        orient = np.stack([np.linalg.eigh(c)[1] for c in full])
    elif m.orientation == "E":
        orient = np.broadcast_to(np.linalg.eigh(full[0])[1], (k, d, d))
    else:
        orient = np.broadcast_to(np.eye(d), (k, d, d))
    vals = np.einsum("kij,kil,klj->kj", orient, full, orient)  # diag(O^T Sigma O)
    log_vol = np.log(vals).mean(axis=1)
    log_shape = np.log(vals) - log_vol[:, None]
    n_vol = 1 if m.volume == "E" else k
    n_shape = 0 if m.shape == "I" else (d - 1) * (1 if m.shape == "E" else k)
    n_rot = 0 if m.orientation == "I" else d * (d - 1) // 2 * (1 if m.orientation == "E" else k)

    def covariances(t):
        dv = np.broadcast_to(t[:n_vol], (k,))
        ds = t[n_vol : n_vol + n_shape].reshape(-1, d - 1) if n_shape else np.zeros((1, d - 1))
        ds = np.broadcast_to(np.concatenate([ds, -ds.sum(axis=1, keepdims=True)], 1), (k, d))
        rot = t[n_vol + n_shape :].reshape(-1, d * (d - 1) // 2) if n_rot else np.zeros((1, 1))
        rots = [np.eye(d) if not n_rot else _orth(r, d) for r in rot]
        out = np.empty((k, d, d))
        for j in range(k):
            o = orient[j] @ rots[j % len(rots)]
            a = np.exp(log_vol[j] + dv[j] + log_shape[j] + ds[j])
            out[j] = o @ np.diag(a) @ o.T
        return out

    def nll(theta):
        logits = np.concatenate([[0.0], theta[:1]])
        w = np.exp(logits - logits.max())
        w /= w.sum()
        mu = theta[1 : 1 + k * d].reshape(k, d)
        cov = covariances(theta[1 + k * d :])
        logp = np.empty((len(X), k))
        for j in range(k):
            c = np.linalg.cholesky(cov[j])
            z = np.linalg.solve(c, (X - mu[j]).T)
            logp[:, j] = (
                np.log(w[j])
                - 0.5 * (z**2).sum(0)
                - np.log(np.diag(c)).sum()
                - 0.5 * d * np.log(2 * np.pi)
            )
        top = logp.max(axis=1)
        return -(top + np.log(np.exp(logp - top[:, None]).sum(axis=1))).sum()

    w0 = np.log(est.weights_[1] / est.weights_[0])
    theta0 = np.concatenate([[w0], est.means_.ravel(), np.zeros(n_vol + n_shape + n_rot)])
    f0 = nll(theta0)
    assert f0 == pytest.approx(-est.score(X) * len(X), rel=1e-9)  # the parameterisation is EM's
    res = optimize.minimize(nll, theta0, method="BFGS", options={"gtol": 1e-9})
    assert res.fun >= f0 - 1e-6, (model, f0 - res.fun)
    # and the free coordinates are the model's count (mclust's nVarParams)
    assert n_vol + n_shape + n_rot == m.n_parameters(k, d)


# ------------------------------------------------------------------ names
@pytest.mark.parametrize(
    ("alias", "name"), [("full", "VVV"), ("tied", "EEE"), ("diag", "VVI"), ("spherical", "VII")]
)
def test_scikit_learn_names_are_the_mclust_models(alias, name):
    a = _fit(FAITHFUL, 3, alias, reg_covar=1e-6, tol=1e-3, max_iter=100)
    b = _fit(FAITHFUL, 3, name, reg_covar=1e-6, tol=1e-3, max_iter=100)
    np.testing.assert_array_equal(a.covariances_, b.covariances_)
    np.testing.assert_array_equal(a.means_, b.means_)
    assert a._n_parameters() == b._n_parameters()


def test_unsupported_combinations_are_clear():
    with pytest.raises(ParameterError, match="covariance_type"):
        GaussianMixtureEM(2, covariance_type="VVX").fit(FAITHFUL)
    with pytest.raises(ParameterError, match="covariance_type"):
        GaussianMixtureEM(2, covariance_type="E").fit(FAITHFUL)  # E/V: one feature
    with pytest.raises(ParameterError, match="prior"):
        GaussianMixtureEM(2, covariance_type="VEV", prior={"weights_alpha": 2.0}).fit(FAITHFUL)
    with pytest.raises(ParameterError, match="accelerate"):
        GaussianMixtureEM(2, covariance_type="EVE", accelerate="squarem").fit(FAITHFUL)
    # E and V on one feature
    x = FAITHFUL[:, :1]
    e = _fit(x, 2, "E")
    assert np.ptp(e.covariances_) == 0.0 and e._n_parameters() == 4


def test_hc_start_is_deterministic_and_later_starts_differ():
    a = _fit(FAITHFUL, 3, "VEV", init_params="hc", random_state=0)
    b = _fit(FAITHFUL, 3, "VEV", init_params="hc", random_state=7)
    np.testing.assert_array_equal(a.means_, b.means_)  # one start: hc, no randomness
    c = _fit(FAITHFUL, 3, "VEV", init_params="hc", n_init=4, random_state=0)
    assert c.score(FAITHFUL) >= a.score(FAITHFUL) - 1e-12  # restarts can only help
