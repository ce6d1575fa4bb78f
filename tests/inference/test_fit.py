"""Contracts of the fitting functions, reuse of compiled models, bad inputs."""

import importlib.util
import json
import sys
import warnings

import numpy as np
import pytest
import xarray as xr
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from bayesmix._validation import DataError, ParameterError, SpecError
from bayesmix.config import ModelSpec, PriorSpec, spec_from_dict
from bayesmix.inference import (
    StartsDisagreeWarning,
    as_images,
    fit_em,
    fit_map,
    generate,
    get_compiled,
    log_likelihood,
    membership,
    sample_nuts,
    sample_posterior_predictive,
    sample_prior_predictive,
)

from .conftest import FULL2, ONE_D

FEATURES = ["eruptions", "waiting"]


def test_root_attrs_and_observed_data(faithful_run, faithful):
    a = faithful_run.attrs
    assert a["format"] == "bayesmix-result/1"
    assert a["family"] == "gaussian" and a["covariance"] == "full" and a["n_components"] == 2
    assert a["seed"] == 1 and a["bayesmix_version"]
    assert json.loads(a["spec"])["model"]["components"] == 2
    obs = faithful_run["observed_data"]["x"]
    assert obs.dims == ("obs_id", "feature")
    assert list(obs["feature"].values) == FEATURES
    np.testing.assert_array_equal(obs.values, faithful[FEATURES].to_numpy())
    assert {
        "em",
        "map",
        "posterior",
        "sample_stats",
        "posterior_predictive",
    } <= set(faithful_run.children)
    # run() leaves the (chain, draw, obs_id) log-likelihood out unless asked ([fit])
    assert "log_likelihood" not in faithful_run.children


def test_em_group(faithful_run):
    em = faithful_run["em"]
    assert em.attrs["method"] == "map" and em.attrs["converged"]
    assert em.attrs["n_init"] == 5 and em.attrs["n_iter"] >= 1
    assert em["w"].dims == ("component",)
    assert em["mu"].dims == ("component", "feature")
    assert em["cov"].dims == ("component", "feature", "feature_bis")
    assert em["lower_bounds"].dims == ("iteration",)
    assert np.isclose(em["lower_bounds"].values[-1], em.attrs["lower_bound"])
    cov = em["cov"].values
    np.testing.assert_allclose(em["sigma"].values ** 2, np.diagonal(cov, axis1=1, axis2=2))
    # sorted by eruption length; the classic two clusters
    np.testing.assert_allclose(em["mu"].values, [[2.04, 54.5], [4.29, 80.0]], atol=0.1)


def test_map_group(faithful_run):
    mp = faithful_run["map"]
    assert set(mp.attrs) >= {"logp", "n_starts", "starts_agree"}
    assert mp.attrs["starts_agree"] and mp.attrs["n_starts"] == 4
    np.testing.assert_allclose(mp["mu"].values, faithful_run["em"]["mu"].values, rtol=2e-3)


def test_posterior_groups_and_log_likelihood(faithful_run, faithful):
    post = faithful_run["posterior"]
    assert dict(post.sizes) == {
        "chain": 2,
        "draw": 300,
        "component": 2,
        "feature": 2,
        "feature_bis": 2,
    }
    assert set(post.data_vars) == {"w", "mu", "sigma", "cov", "corr"}
    assert post["mu"].dims == ("chain", "draw", "component", "feature")
    assert faithful_run["sample_stats"]["diverging"].dims == ("chain", "draw")
    ll = log_likelihood(faithful_run)["x"]  # computed on demand
    assert ll.dims == ("chain", "draw", "obs_id")
    assert "log_likelihood" not in faithful_run.children
    X = faithful[FEATURES].to_numpy()
    for c, d in [(0, 0), (1, 123), (1, 299)]:
        p = post.to_dataset().isel(chain=c, draw=d)
        comp = np.stack(
            [
                multivariate_normal(p["mu"].values[k], p["cov"].values[k]).logpdf(X)
                for k in range(2)
            ],
            axis=1,
        )
        ref = logsumexp(np.log(p["w"].values) + comp, axis=1)
        np.testing.assert_allclose(ll.values[c, d], ref, atol=1e-8)


def test_compiled_model_reused_for_same_shape_data(faithful_run, faithful):
    X = faithful[FEATURES].to_numpy()
    cm = get_compiled(FULL2, faithful)
    n = cm.n_compiles
    rng = np.random.default_rng(0)
    X2 = X + rng.normal(0, 0.05, X.shape) * X.std(0)
    cm2 = get_compiled(FULL2, X2, feature_names=FEATURES)
    assert cm2 is cm
    r = sample_nuts(FULL2, X2, draws=50, tune=100, chains=1, random_seed=3)
    assert cm.n_compiles == n  # nothing was compiled again
    np.testing.assert_array_equal(r["observed_data"]["x"].values, X2)
    # the swapped data are what the sampler saw: its log_likelihood is computed on X2
    assert not np.allclose(
        r["log_likelihood"]["x"].values[0, 0], log_likelihood(faithful_run)["x"].values[0, 0]
    )


def test_same_seed_same_draws(faithful):
    a = sample_nuts(FULL2, faithful, draws=50, tune=50, chains=2, random_seed=11)
    b = sample_nuts(FULL2, faithful, draws=50, tune=50, chains=2, random_seed=11)
    c = sample_nuts(FULL2, faithful, draws=50, tune=50, chains=2, random_seed=12)
    assert a["posterior"].to_dataset().equals(b["posterior"].to_dataset())
    assert not a["posterior"].to_dataset().equals(c["posterior"].to_dataset())


def test_membership_point_and_draws(faithful_run):
    for group in ("em", "map"):
        m = membership(faithful_run, group=group)
        assert m["mean"].dims == ("obs_id", "component")
        np.testing.assert_allclose(m["mean"].values.sum(1), 1.0)
        assert np.all(m["sd"].values == 0)
    m = membership(faithful_run)
    np.testing.assert_allclose(m["mean"].values.sum(1), 1.0)
    assert m["sd"].values.max() > 0
    # new points: the clusters' centres are classified with certainty
    new = np.array([[2.0, 54.0], [4.3, 80.0]])
    mn = membership(faithful_run, new)["mean"].values
    assert mn[0, 0] > 0.99 and mn[1, 1] > 0.99
    with pytest.raises(DataError, match="features"):
        membership(faithful_run, np.ones((3, 3)))


def test_generate_and_posterior_predictive(faithful_run):
    Xn, z = generate(faithful_run, 4000, random_seed=0)
    assert Xn.shape == (4000, 2) and z.shape == (4000,)
    # each new point comes from a random posterior draw s, so given z = k it follows the
    # draws' components weighted by w_k(s): mean E[mu_k], covariance E[cov_k] + Cov[mu_k]
    post = faithful_run["posterior"].to_dataset().stack(s=("chain", "draw"))
    w = post["w"].transpose("s", "component").values
    mu = post["mu"].transpose("s", "component", "feature").values
    cov = post["cov"].transpose("s", "component", "feature", "feature_bis").values
    for k in range(2):
        p = w[:, k] / w[:, k].sum()
        m = p @ mu[:, k]
        dev = mu[:, k] - m
        c = np.einsum("s,sij->ij", p, cov[:, k]) + np.einsum("s,si,sj->ij", p, dev, dev)
        xk = Xn[z == k] - m
        assert np.all(np.abs(xk.mean(0)) < 4.5 * np.sqrt(np.diag(c) / len(xk))), k
        prod = xk[:, :, None] * xk[:, None, :]
        se = prod.std(axis=0, ddof=1) / np.sqrt(len(xk))
        assert np.all(np.abs(prod.mean(0) - c) < 4.5 * se), (k, prod.mean(0), c)
    freq = np.bincount(z, minlength=2) / len(z)
    wm = w.mean(0)
    assert np.all(np.abs(freq - wm) < 4.5 * np.sqrt(wm * (1 - wm) / len(z)))
    Xe, _ = generate(faithful_run, 10, group="em", random_seed=0)
    assert Xe.shape == (10, 2)
    a, _ = generate(faithful_run, 20, random_seed=5)
    b, _ = generate(faithful_run, 20, random_seed=5)
    np.testing.assert_array_equal(a, b)
    pp = faithful_run["posterior_predictive"]["x"]
    assert pp.dims == ("chain", "draw", "obs_id", "feature")
    # [fit] ppc_draws = 100 in all: 50 evenly spaced draws of each of the 2 chains
    assert pp.shape == (2, 50, 272, 2)
    np.testing.assert_array_equal(pp["draw"].values, np.linspace(0, 299, 50).round())
    assert pp.dtype == np.float32


def test_prior_predictive(faithful_run):
    tree = faithful_run.copy()
    tree = sample_prior_predictive(tree, draws=100, random_seed=0)
    assert tree["prior_predictive"]["x"].dims == ("chain", "draw", "obs_id", "feature")
    assert tree["prior"]["mu"].dims == ("chain", "draw", "component", "feature")
    # data-scaled priors: prior means of mu near the data mean, spread ~ 2 sd
    mu = tree["prior"]["mu"].values.reshape(-1, 2)
    X = tree["observed_data"]["x"].values
    assert np.all(np.abs(mu.mean(0) - X.mean(0)) < 0.6 * 2 * X.std(0))


def test_bernoulli_point_fits_generate_ints(bernoulli_data):
    X, z, truth = bernoulli_data
    spec = ModelSpec("bernoulli", 2, priors=PriorSpec(beta_a=2.0, beta_b=2.0))
    r = fit_em(spec, X, random_state=0)
    Xn, zn = generate(r, 30, group="em", random_seed=1)
    assert Xn.dtype.kind == "i" and set(np.unique(Xn)) <= {0, 1}
    assert as_images(np.zeros((2, 64))).shape == (2, 8, 8)
    with pytest.raises(ParameterError, match="reshape"):
        as_images(np.zeros((2, 10)))


def test_map_warns_when_starts_disagree(faithful):
    x = faithful[["waiting"]]
    em = fit_em(ONE_D, x, random_state=0)["em"]
    good = {k: em[k].values for k in ("w", "mu", "sigma")}
    # two identical components: a saddle from which the optimiser cannot split them
    same = {
        "w": np.array([0.5, 0.5]),
        "mu": np.full((2, 1), x.to_numpy().mean()),
        "sigma": np.full((2, 1), x.to_numpy().std()),
    }
    with pytest.warns(StartsDisagreeWarning, match="different optima"):
        r = fit_map(ONE_D, x, starts=[same, good], random_seed=0)
    assert not r["map"].attrs["starts_agree"]
    np.testing.assert_allclose(r["map"]["mu"].values, good["mu"], rtol=1e-3)


def test_fit_map_no_future_warnings_and_reports_each_start(faithful):
    from bayesmix.em import on_each_start

    seen = []
    with warnings.catch_warnings(), on_each_start(lambda done, total: seen.append((done, total))):
        warnings.simplefilter("error", FutureWarning)
        fit_map(ONE_D, faithful[["waiting"]], n_starts=2, random_seed=0)
    # the CLI's bar over the starts: MAP-EM's start point (5 starts), then MAP's 2
    assert seen[-2:] == [(1, 2), (2, 2)]
    assert seen[:-2] == [(i, 5) for i in range(1, 6)]


# ------------------------------------------------------------------------------ bad inputs

X_OK = np.random.default_rng(0).normal(size=(40, 2))


@pytest.mark.parametrize(
    ("call", "err", "match"),
    [
        (lambda: fit_em(FULL2, np.where(X_OK > 2, np.nan, X_OK)), DataError, "NaN"),
        (lambda: fit_map(FULL2, np.where(X_OK > 2, np.inf, X_OK)), DataError, "inf"),
        (lambda: sample_nuts(FULL2, X_OK[:1]), DataError, "n_components|n_samples"),
        (lambda: fit_em(ModelSpec("bernoulli", 2), X_OK), DataError, "binar"),
        (lambda: sample_nuts(FULL2, X_OK, sampler="stan"), ParameterError, "nutpie"),
        (lambda: sample_nuts(FULL2, X_OK, init="kmeans"), ParameterError, "em"),
        (lambda: sample_nuts(FULL2, X_OK, draws=0), ParameterError, "draws"),
        (lambda: sample_nuts(FULL2, X_OK, chains=0), ParameterError, "chains"),
        (lambda: sample_nuts(FULL2, X_OK, tune=-1), ParameterError, "tune"),
        (lambda: fit_em(FULL2, X_OK, prior="flat"), ParameterError, "prior"),
        (lambda: fit_em("full", X_OK), ParameterError, "ModelSpec"),
        (lambda: membership("not a tree"), ParameterError, "DataTree"),
        (
            lambda: fit_em(ModelSpec(priors=PriorSpec(mu_loc=(1.0, 2.0, 3.0))), X_OK),
            SpecError,
            "one per feature",
        ),
    ],
)
def test_bad_inputs(call, err, match):
    with pytest.raises(err, match=match):
        call()


def test_unknown_method_in_spec_lists_choices():
    with pytest.raises(SpecError, match="em, map, nuts, advi"):
        spec_from_dict({"fit": {"methods": ["em", "gibbs"]}})


@pytest.mark.parametrize(
    ("sampler", "missing"),
    [
        ("numpyro", ("numpyro",)),
        ("numpyro", ("jax", "numpyro", "blackjax")),
        ("blackjax", ("blackjax",)),
        ("blackjax", ("jax", "numpyro", "blackjax")),
    ],
)
def test_jax_sampler_without_jax_says_what_to_install(sampler, missing, monkeypatch):
    """Runs whether or not jax is installed: the missing packages are simulated.

    ``sys.modules[name] = None`` is how Python marks a module as not importable: ``import``
    raises ImportError and ``importlib.util.find_spec`` returns None for it. Without jax,
    numpyro and blackjax (which need it) are missing too.
    """
    for name in missing:
        monkeypatch.setitem(sys.modules, name, None)
        assert importlib.util.find_spec(name) is None
    needs = {"numpyro": ("jax", "numpyro"), "blackjax": ("jax", "blackjax")}[sampler]
    absent = [name for name in needs if name in missing]
    with pytest.raises(ParameterError) as info:
        sample_nuts(FULL2, X_OK, sampler=sampler)
    message = str(info.value)
    assert f"sampler={sampler!r} needs {' and '.join(needs)}" in message
    assert f"{', '.join(absent)} is not installed: pip install bayesmix[jax]" in message
    assert "sampler='nutpie'" in message


@pytest.mark.skipif(importlib.util.find_spec("blackjax") is None, reason="needs bayesmix[jax]")
@pytest.mark.parametrize("sampler", ["numpyro", "blackjax"])
def test_jax_samplers_agree_with_nutpie(sampler, faithful):
    """PyMC's JAX samplers (GPU-capable) on CPU JAX: same posterior as nutpie, 1-D K=2."""
    x = faithful[["waiting"]]
    spec = ModelSpec("gaussian", 2, "diag", ordered=True)
    ref = sample_nuts(spec, x, draws=300, tune=300, chains=2, random_seed=5)
    r = sample_nuts(spec, x, draws=300, tune=300, chains=2, random_seed=5, sampler=sampler)
    post, ref_post = r["posterior"], ref["posterior"]
    assert post.attrs["sampler"] == sampler
    assert post["mu"].dims == ("chain", "draw", "component", "feature")
    assert r["log_likelihood"]["x"].shape == (2, 300, 272)
    for name in ("w", "mu", "sigma"):
        a, b = post[name].values, ref_post[name].values
        sd = b.std(axis=(0, 1))
        # two Monte Carlo means: within 5 posterior sd / sqrt(100) of each other
        assert np.all(np.abs(a.mean(axis=(0, 1)) - b.mean(axis=(0, 1))) < 0.5 * sd), name


def test_posterior_predictive_needs_draws(faithful):
    r = fit_em(ONE_D, faithful[["waiting"]], random_state=0)
    with pytest.raises(ParameterError, match="sample_nuts"):
        sample_posterior_predictive(r)
    assert isinstance(r, xr.DataTree)


@pytest.mark.slow
def test_spherical_ordered_map_and_nuts(faithful):
    spec = ModelSpec("gaussian", 2, "spherical", ordered=True)
    r = fit_map(spec, faithful, random_seed=0)
    r = sample_nuts(spec, faithful, draws=200, tune=200, chains=2, random_seed=0, result=r)
    post = r["posterior"]
    assert np.all(post["mu"].isel(feature=0).diff("component") > 0)  # ordered in every draw
    s = post["sigma"].values
    np.testing.assert_array_equal(s[..., 0], s[..., 1])  # one sd per component
    em = fit_em(spec, faithful, random_state=0)["em"]
    np.testing.assert_allclose(r["map"]["mu"].values, em["mu"].values, rtol=1e-4)


@pytest.mark.slow
def test_pymc_sampler_1d_ordered(faithful):
    spec = ModelSpec("gaussian", 3, "full", ordered=True)
    x = faithful[["waiting"]]
    r = sample_nuts(spec, x, draws=200, tune=200, chains=2, random_seed=0, sampler="pymc")
    assert r["posterior"]["mu"].dims == ("chain", "draw", "component", "feature")
    assert np.all(r["posterior"]["mu"].isel(feature=0).diff("component") > 0)
    assert r["log_likelihood"]["x"].shape == (2, 200, 272)


def test_posterior_predictive_thinning(faithful_run):
    tree = faithful_run.copy()
    sample_posterior_predictive(tree, random_seed=0, num_draws=7)
    assert tree["posterior_predictive"]["x"].shape == (2, 7, 272, 2)


def test_run_loads_builtin_data_and_runs_em_only():
    from bayesmix.config import DataSpec, FitSpec, RunSpec
    from bayesmix.inference import run

    spec = RunSpec(
        name="w",
        data=DataSpec("builtin:old_faithful", ("waiting",)),
        model=ONE_D,
        fit=FitSpec(methods=("em",), seed=3),
    )
    r = run(spec)
    assert set(r.children) == {"observed_data", "em"}
    assert r.attrs["seed"] == 3
    assert RunSpec.from_json(r.attrs["spec"]) == spec
    assert list(r["em"]["feature"].values) == ["waiting"]
