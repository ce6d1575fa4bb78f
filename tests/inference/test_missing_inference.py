"""Missing values and partial labels through the inference API; imputation.

Each model (family x missing values x labels) is compiled once per session: the fits of one
data set share one module-scoped tree, and ``get_compiled`` swaps new data of the same shape
into the compiled model.
"""

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from bayesmix import _math
from bayesmix._validation import DataError
from bayesmix.config import FitSpec, ModelSpec, PriorSpec, RunSpec
from bayesmix.inference import (
    fit_advi,
    fit_em,
    fit_map,
    get_compiled,
    impute,
    log_likelihood,
    membership,
    run,
    sample_nuts,
    sample_posterior_predictive,
)

BERN = ModelSpec("bernoulli", 2, priors=PriorSpec(beta_a=2.0, beta_b=2.0))
POIS = ModelSpec("poisson", 2)
DIAG = ModelSpec("gaussian", 2, "diag")
# inverse-Wishart: the covariance prior MAP-EM has too, so both find the same mode
FULL_IW = ModelSpec("gaussian", 2, "full", priors=PriorSpec(variance="inverse_wishart"))
EM_TIGHT = {"tol": 1e-12, "max_iter": 5000, "random_state": 0}


def _remove(X, share, seed):
    """A float copy of X with about ``share`` of its entries NaN (never a whole row)."""
    rng = np.random.default_rng(seed)
    X = np.array(X, dtype=float)
    gone = rng.random(X.shape) < share
    gone[gone.all(axis=1), 0] = False
    X[gone] = np.nan
    return X


@pytest.fixture(scope="module")
def bern_fit(bernoulli_data):
    """MAP-EM, MAP and NUTS (2 x 150) of 200 x 6 binary data with 20 % of entries missing."""
    X, _, _ = bernoulli_data
    Xm = _remove(X, 0.2, 1)
    tree = fit_em(BERN, Xm, missing="model", **EM_TIGHT)
    tree = fit_map(BERN, Xm, missing="model", random_seed=0, result=tree)
    tree = sample_nuts(
        BERN, Xm, missing="model", draws=150, tune=150, chains=2, random_seed=2, result=tree
    )
    return Xm, tree


@pytest.fixture(scope="module")
def faithful_missing(faithful):
    X = _remove(faithful.to_numpy(), 0.15, 3)
    assert len(np.unique(~np.isnan(X), axis=0)) == 3  # complete rows and two patterns
    return X


@pytest.fixture(scope="module")
def full_em(faithful_missing):
    return fit_em(FULL_IW, faithful_missing, missing="model", **EM_TIGHT)


def _close(a, b, group_a="em", group_b="map", rtol=1e-4):
    for name in a[group_a].data_vars:
        if name in b[group_b].data_vars and "component" in a[group_a][name].dims:
            np.testing.assert_allclose(
                a[group_a][name].values, b[group_b][name].values, rtol=rtol, atol=1e-6
            )


def test_map_with_missing_values_is_map_em_bernoulli(bern_fit):
    _, tree = bern_fit
    _close(tree, tree)
    assert tree.attrs["missing"] == "model"
    obs = tree["observed_data"]["x"]
    assert obs.dtype == np.float64 and int(np.isnan(obs.values).sum()) > 200


def test_map_with_missing_values_is_map_em_gaussian(faithful_missing, full_em):
    tree = fit_map(FULL_IW, faithful_missing, missing="model", random_seed=0, result=full_em)
    _close(tree, tree)
    # the observed-data marginals moved the estimate: not the fit of the complete rows
    complete = faithful_missing[~np.isnan(faithful_missing).any(axis=1)]
    other = fit_em(FULL_IW, complete, **EM_TIGHT)
    assert np.abs(other["em"]["mu"].values - tree["map"]["mu"].values).max() > 1e-3
    # (diag: its graph density with missing values against SciPy in test_missing_graphs.py;
    # a second compiled MAP here cost a minute of a cold run)


def test_map_with_missing_values_and_labels_is_map_em_poisson():
    rng = np.random.default_rng(4)
    z = rng.integers(0, 2, 150)
    X = rng.poisson(np.array([[2.0, 8.0, 1.0], [6.0, 2.0, 4.0]])[z]).astype(float)
    Xm = _remove(X, 0.2, 5)
    labels = np.full(150, -1)
    labels[:20] = 1 - z[:20]  # names the components against the order EM would sort them in
    tree = fit_em(POIS, Xm, missing="model", labels=labels, **EM_TIGHT)
    tree = fit_map(POIS, Xm, missing="model", random_seed=0, result=tree)  # labels: stored
    _close(tree, tree)
    np.testing.assert_array_equal(tree["observed_data"]["labels"].values, labels)
    # labelled component 1 is the true component 0 (rates 2, 8, 1): the labels name it
    np.testing.assert_allclose(tree["map"]["rate"].values[1], [2.0, 8.0, 1.0], rtol=0.3)


def test_the_nan_error_names_the_option(bernoulli_data):
    X, _, _ = bernoulli_data
    with pytest.raises(DataError, match="missing='model'"):
        fit_map(BERN, _remove(X, 0.1, 6))


def test_complete_data_share_the_compiled_model_of_today(bernoulli_data):
    X, _, _ = bernoulli_data
    a = get_compiled(BERN, X)
    b = get_compiled(BERN, X, missing="model", labels=np.full(len(X), -1))
    assert a is b and "x_observed" not in a.model.named_vars


def test_loo_membership_and_predictive_with_missing_values(bern_fit):
    Xm, tree = bern_fit
    ll = log_likelihood(tree)["x"].values  # stored by sample_nuts
    post = tree["posterior"]
    params = {"w": post["w"].values, "p": post["p"].values}
    np.testing.assert_allclose(ll, _math.mixture_log_density(Xm, params, "bernoulli"))
    # observed-data log p(x_n,obs): a row with fewer observed entries has a higher density
    n_obs = (~np.isnan(Xm)).sum(axis=1)
    mean_ll = ll.mean(axis=(0, 1))
    assert mean_ll[n_obs == 3].mean() > mean_ll[n_obs == 6].mean()
    recomputed = log_likelihood(tree, group="posterior", obs=slice(0, 10))
    assert recomputed["x"].shape == (2, 150, 10)
    m = membership(tree)["mean"].values
    assert m.shape == (200, 2) and np.allclose(m.sum(axis=1), 1.0)
    sample_posterior_predictive(tree, random_seed=0, max_draws=20)
    pp = tree["posterior_predictive"]["x"].values
    assert pp.shape == (2, 10, 200, 6) and set(np.unique(pp)) <= {0, 1}


def _conditional_mean_by_hand(X, point):
    """E[x_m | x_o] with SciPy, row by row, at a Gaussian point estimate (full covariances)."""
    out = np.array(X, dtype=float)
    w, mu, cov = point["w"], point["mu"], point["cov"]
    for i, x in enumerate(X):
        m = np.isnan(x)
        if not m.any():
            continue
        o = ~m
        logr = [
            np.log(w[k]) + multivariate_normal(mu[k][o], cov[k][np.ix_(o, o)]).logpdf(x[o])
            for k in range(len(w))
        ]
        r = np.exp(np.asarray(logr) - logsumexp(logr))
        cond = [
            mu[k][m]
            + cov[k][np.ix_(m, o)] @ np.linalg.solve(cov[k][np.ix_(o, o)], x[o] - mu[k][o])
            for k in range(len(w))
        ]
        out[i, m] = np.sum(r[:, None] * np.asarray(cond), axis=0)
    return out


def test_impute_conditional_mean_matches_the_formula(faithful_missing, full_em):
    got = impute(full_em, group="em")  # a point estimate: method "mean"
    assert got.dims == ("obs_id", "feature") and got.attrs["method"] == "mean"
    point = {v: full_em["em"][v].values for v in ("w", "mu", "cov")}
    ref = _conditional_mean_by_hand(faithful_missing, point)
    np.testing.assert_allclose(got.values, ref, rtol=1e-10)
    observed = ~np.isnan(faithful_missing)
    np.testing.assert_array_equal(got.values[observed], faithful_missing[observed])
    # with correlated features the conditional mean is far from the column mean
    column_mean = np.nanmean(faithful_missing, axis=0)[np.nonzero(~observed)[1]]
    assert np.abs(ref[~observed] - column_mean).max() > 1


def test_impute_draws_moments(faithful_missing, full_em):
    draws = impute(full_em, group="em", method="draws", n_draws=4000, random_seed=0)
    assert draws.dims == ("chain", "draw", "missing") and draws.sizes["chain"] == 1
    X = faithful_missing
    rows, cols = np.nonzero(np.isnan(X))
    np.testing.assert_array_equal(draws["row"].values, rows)
    np.testing.assert_array_equal(draws["column"].values, cols)
    # mixture of conditional normals: mean and variance by hand
    w, mu, cov = (full_em["em"][v].values for v in ("w", "mu", "cov"))
    mean = np.empty(rows.size)
    var = np.empty(rows.size)
    for e, (i, j) in enumerate(zip(rows, cols, strict=True)):
        o = ~np.isnan(X[i])
        logr = [
            np.log(w[k]) + multivariate_normal(mu[k][o], cov[k][np.ix_(o, o)]).logpdf(X[i][o])
            for k in range(2)
        ]
        r = np.exp(np.asarray(logr) - logsumexp(logr))
        gain = [np.linalg.solve(cov[k][np.ix_(o, o)], cov[k][o, j]) for k in range(2)]
        m_k = np.array([mu[k][j] + gain[k] @ (X[i][o] - mu[k][o]) for k in range(2)])
        v_k = np.array([cov[k][j, j] - cov[k][o, j] @ gain[k] for k in range(2)])
        mean[e] = r @ m_k
        var[e] = r @ (v_k + m_k**2) - mean[e] ** 2
    d = draws.values[0]
    z = (d.mean(axis=0) - mean) / np.sqrt(var / d.shape[0])
    assert np.abs(z).max() < 4.5
    np.testing.assert_allclose(d.var(axis=0), var, rtol=0.12)


def test_impute_posterior_draws(bern_fit):
    Xm, tree = bern_fit
    draws = impute(tree, random_seed=1)  # posterior: predictive draws of the missing entries
    n_missing = int(np.isnan(Xm).sum())
    assert draws.shape == (2, 150, n_missing) and draws.attrs["group"] == "posterior"
    assert set(np.unique(draws.values)) <= {0.0, 1.0}
    # their average is the posterior predictive mean of method="mean"
    mean = impute(tree, method="mean").values[draws["row"].values, draws["column"].values]
    assert np.abs(draws.values.mean(axis=(0, 1)) - mean).max() < 4.5 * np.sqrt(0.25 / 300)
    thin = impute(tree, max_draws=20, random_seed=1)
    assert thin.shape == (2, 10, n_missing)


def test_run_and_advi_with_missing_values_and_labels(bern_fit, bernoulli_data):
    Xm, _ = bern_fit
    _, z, _ = bernoulli_data
    labels = np.where(np.arange(200) < 40, z, -1)
    spec = RunSpec(name="m", model=BERN, fit=FitSpec(methods=("em", "map"), seed=3))
    tree = run(spec, Xm, missing="model", labels=labels)
    _close(tree, tree, rtol=2e-3)  # run's EM stops at tol=1e-6
    assert tree.attrs["missing"] == "model"
    np.testing.assert_array_equal(tree["observed_data"]["labels"].values, labels)
    # labelled rows sit in their own component: the estimate agrees with the labels
    assert (
        membership(tree, group="map")["mean"].values[:40].argmax(axis=1) == z[:40]
    ).mean() > 0.9
    tree = fit_advi(BERN, Xm, missing="model", n=300, draws=50, random_seed=0, result=tree)
    assert tree["advi"]["p"].shape == (1, 50, 2, 6)
