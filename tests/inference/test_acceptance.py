"""Acceptance checks of the Bayesian fits against EM, known truth and the data."""

import time

import arviz as az
import numpy as np
import pytest
from scipy.stats import binom

from bayesmix import _math
from bayesmix.config import resolve_priors
from bayesmix.em import BernoulliMixtureEM, GaussianMixtureEM
from bayesmix.inference import em_prior, fit_advi, fit_em, fit_map, membership, sample_nuts

from .conftest import BERN, DIAG2, FULL2, ONE_D, TIMINGS

FEATURES = ["eruptions", "waiting"]


# ------------------------------------------------------------------ 1. MAP-EM == find_MAP-style


def _map_em_gaussian(spec, X, start):
    prior = em_prior(spec, resolve_priors(spec, X), X.shape[1])
    est = GaussianMixtureEM(
        spec.n_components,
        covariance_type="diag",
        reg_covar=0.0,
        tol=1e-14,
        max_iter=20000,
        weights_init=start["w"],
        means_init=start["mu"],
        precisions_init=1.0 / start["sigma"] ** 2,
        prior=prior,
    ).fit(X)
    assert est.converged_
    return {"w": est.weights_, "mu": est.means_, "sigma": np.sqrt(est.covariances_)}


@pytest.mark.parametrize("case", ["1d", "diag"])
def test_map_em_and_fit_map_same_mode_gaussian(faithful, case):
    if case == "1d":
        spec, X = ONE_D, faithful[["waiting"]].to_numpy()
        start = {"w": np.array([0.5, 0.5]), "mu": np.array([[50.0], [85.0]])}
        start["sigma"] = np.array([[8.0], [8.0]])
    else:
        spec, X = DIAG2, faithful[FEATURES].to_numpy()
        start = {"w": np.array([0.5, 0.5]), "mu": np.array([[2.5, 55.0], [4.0, 82.0]])}
        start["sigma"] = np.array([[0.5, 8.0], [0.5, 8.0]])
    em = _map_em_gaussian(spec, X, start)
    # a second start away from the first (weights, every mean and scale moved): both must
    # reach the MAP-EM mode, so fit_map's starts_agree is a real check (one start always agrees)
    moved = {
        "w": np.array([0.4, 0.6]),
        "mu": start["mu"] * np.array([[0.95], [1.04]]),
        "sigma": start["sigma"] * np.array([[1.3], [0.8]]),
    }
    r = fit_map(spec, X, starts=[start, moved], random_seed=0)
    for name in ("w", "mu", "sigma"):
        diff = np.abs(r["map"][name].values - em[name]).max()
        assert diff < 1e-4, (name, diff)
    logps = r["map"].attrs["logps"]
    assert r["map"].attrs["n_starts"] == 2 and len(logps) == 2
    assert np.all(np.isfinite(logps)) and abs(logps[0] - logps[1]) < 1e-6, logps
    assert r["map"].attrs["starts_agree"]


def test_map_em_and_fit_map_same_mode_bernoulli(bernoulli_data):
    X = bernoulli_data[0]
    prior = em_prior(BERN, resolve_priors(BERN, X), X.shape[1])
    est = BernoulliMixtureEM(
        2, tol=1e-14, max_iter=20000, prior=prior, random_state=0, n_init=3
    ).fit(X)
    assert est.converged_
    start = {"w": est.weights_, "p": est.means_}
    # fit_map starts from the MAP-EM mode perturbed, so it has to find the mode itself
    rng = np.random.default_rng(0)
    moved = {
        "w": np.array([0.5, 0.5]),
        "p": np.clip(start["p"] + rng.normal(0, 0.1, (2, 6)), 0.05, 0.95),
    }
    r = fit_map(BERN, X, starts=[moved], random_seed=0)
    np.testing.assert_array_less(np.abs(r["map"]["w"].values - est.weights_), 1e-4)
    np.testing.assert_array_less(np.abs(r["map"]["p"].values - est.means_), 1e-4)


# ------------------------------------------------------------------ 2. Old Faithful NUTS


@pytest.mark.slow
def test_old_faithful_nuts_converges(faithful_run, faithful):
    # faithful_run compiled the model; time only the sampling here
    t = time.perf_counter()
    r = sample_nuts(
        FULL2, faithful, draws=1000, tune=1000, chains=4, random_seed=5, result=faithful_run.copy()
    )
    wall = time.perf_counter() - t
    post = r["posterior"].to_dataset()
    off = post["corr"].isel(feature=0, feature_bis=1)
    checked = post[["w", "mu", "sigma"]].assign(corr01=off)
    rhat = az.rhat(checked)
    ess = az.ess(checked, method="bulk")
    rhat_max = max(float(rhat[v].max()) for v in rhat.data_vars)
    ess_min = min(float(ess[v].min()) for v in ess.data_vars)
    TIMINGS["Old Faithful NUTS 4x(1000+1000) wall, s"] = wall
    TIMINGS["Old Faithful min bulk ESS per second of wall time"] = ess_min / wall
    print(f"R-hat max {rhat_max:.4f}, bulk ESS min {ess_min:.0f}, ESS/s {ess_min / wall:.0f}")
    assert rhat_max < 1.01
    assert ess_min > 400
    assert int(r["sample_stats"]["diverging"].sum()) == 0
    em = r["em"].to_dataset()
    for v in ("w", "mu", "sigma"):
        z = np.abs(post[v].mean(("chain", "draw")) - em[v]) / post[v].std(("chain", "draw"))
        assert float(z.max()) < 2.0, (v, z.values)


# ------------------------------------------------------------------ 3. coverage


def _interval_hits(post, truth, names):
    hits = []
    for n in names:
        da = post[n]
        lo = da.quantile(0.05, ("chain", "draw")).values
        hi = da.quantile(0.95, ("chain", "draw")).values
        t = truth[n]
        hits.append(((lo <= t) & (t <= hi)).ravel())
    return np.concatenate(hits)


COVERAGE = {
    "1d": (
        ONE_D,
        {
            "w": np.array([0.4, 0.6]),
            "mu": np.array([[-2.0], [2.0]]),
            "sigma": np.array([[1.0], [0.8]]),
        },
        272,
    ),
    "full": (
        FULL2,
        {
            "w": np.array([0.4, 0.6]),
            "mu": np.array([[-3.0, 0.0], [3.0, 1.0]]),
            "cov": np.array([[[1.0, 0.5], [0.5, 1.0]], [[0.64, -0.2], [-0.2, 1.0]]]),
        },
        272,
    ),
    "bernoulli": (
        BERN,
        {
            "w": np.array([0.4, 0.6]),
            "p": np.array([[0.9, 0.8, 0.1, 0.2, 0.7, 0.3], [0.1, 0.3, 0.8, 0.9, 0.4, 0.6]]),
        },
        200,
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(COVERAGE))
def test_credible_interval_coverage(case):
    spec, truth, n = COVERAGE[case]
    truth = dict(truth)
    if "cov" in truth:
        truth["sigma"] = np.sqrt(np.diagonal(truth["cov"], axis1=1, axis2=2))
    names = ["w", "p"] if spec.family == "bernoulli" else ["w", "mu", "sigma"]
    reps = 20
    rng = np.random.default_rng(100)
    hits = []
    t = time.perf_counter()
    for i in range(reps):
        X, _ = _math.sample_mixture(truth, n, spec.family, rng)
        r = sample_nuts(spec, X, draws=400, tune=400, chains=2, random_seed=i)
        post = r["posterior"].to_dataset()
        if spec.family == "bernoulli":  # align labels with the truth (K=2: keep or swap)
            pm_ = post["p"].mean(("chain", "draw")).values
            if np.abs(pm_ - truth["p"]).sum() > np.abs(pm_[::-1] - truth["p"]).sum():
                post = post.isel(component=[1, 0]).assign_coords(component=[0, 1])
        hits.append(_interval_hits(post, truth, names))
    TIMINGS[f"coverage {case}: {reps} replications, s"] = time.perf_counter() - t
    hits = np.concatenate(hits)
    k, m = int(hits.sum()), hits.size
    rate = k / m
    print(f"{case}: 90% intervals cover the truth {k}/{m} = {rate:.3f}")
    # two-sided binomial test at level 0.002 (intervals of one replication are dependent, so
    # this is only approximately calibrated; seeds are fixed)
    assert binom.cdf(k, m, 0.9) > 1e-3 and binom.sf(k - 1, m, 0.9) > 1e-3, rate


# ------------------------------------------------------------------ 4. membership


def test_membership_matches_em_when_separated_and_is_uncertain_in_overlap(faithful_run):
    truth = {
        "w": np.array([0.4, 0.6]),
        "mu": np.array([[-4.0, 0.0], [4.0, 1.0]]),
        "cov": np.array([[[1.0, 0.3], [0.3, 1.0]], [[1.0, -0.2], [-0.2, 1.0]]]),
    }
    X, _ = _math.sample_mixture(truth, 272, "gaussian", np.random.default_rng(7))
    r = fit_em(FULL2, X, random_state=0)
    r = sample_nuts(FULL2, X, draws=300, tune=300, chains=2, random_seed=2, result=r)
    nuts = membership(r)
    em = membership(r, group="em")
    assert float(np.abs(nuts["mean"] - em["mean"]).mean()) < 0.02
    # between the clusters (where their densities overlap) membership is uncertain: more
    # posterior spread than at the cluster centres
    line = np.linspace(truth["mu"][0], truth["mu"][1], 41)
    em_line = membership(r, line, group="em")["mean"].values.max(1)
    sd_line = membership(r, line)["sd"].values.max(1)
    amb, clear = em_line < 0.9, em_line > 0.999
    assert amb.sum() >= 1 and clear.sum() >= 10
    assert sd_line[amb].min() > 5 * sd_line[clear].max()
    # and on Old Faithful the few ambiguous observations have the largest spread
    em_of = membership(faithful_run, group="em")["mean"].values.max(1)
    sd_of = membership(faithful_run)["sd"].values.max(1)
    assert sd_of[em_of < 0.9].mean() > 3 * sd_of[em_of > 0.99].mean()


# ------------------------------------------------------------------ 5. predictive checks


def test_posterior_predictive_reproduces_bimodality(faithful_run):
    obs = faithful_run["observed_data"]["x"].sel(feature="eruptions").values
    pp = faithful_run["posterior_predictive"]["x"].sel(feature="eruptions").values
    pp = pp.reshape(-1, pp.shape[-1])
    for stat in (
        lambda x: np.mean(x < 3.0, axis=-1),
        lambda x: np.mean((x > 2.5) & (x < 3.5), axis=-1),
    ):
        rep = stat(pp)
        lo, hi = np.quantile(rep, [0.03, 0.97])
        assert lo <= stat(obs) <= hi, (stat(obs), lo, hi)
    # the replicated data are bimodal too: few points in the valley between the modes
    assert np.mean((pp > 2.8) & (pp < 3.4)) < 0.5 * np.mean(pp < 2.5)


# ------------------------------------------------------------------ ADVI


@pytest.mark.slow
def test_advi_near_nuts(faithful_run, faithful):
    r = fit_advi(FULL2, faithful, n=5000, draws=500, random_seed=0, result=faithful_run.copy())
    adv = r["advi"]["mu"].mean(("chain", "draw")).values
    nuts = r["posterior"]["mu"].mean(("chain", "draw")).values
    sd = r["posterior"]["mu"].std(("chain", "draw")).values
    assert np.all(np.abs(adv - nuts) < 3 * sd)
