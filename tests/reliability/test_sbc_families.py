"""SBC of the Poisson and categorical mixtures (``validation/sbc_families.py``; issue 14).

The helpers against references (the prior draws against the model's own prior predictive,
permutation invariance of the statistics, the categorical rejection step), then a small real
SBC run per family: 20 replications with short chains, ranks tested for uniformity with a
loose threshold (the full run with 300 replications is in ``validation/``).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

SMALL_REPS = 20
SMALL_DRAWS, SMALL_TUNE, SMALL_THIN = 100, 150, 10  # 2 chains x 100, every 10th -> L = 19
SMALL_L = 19
SMALL_BINS = 5  # 20 rank values in 5 bins: 4 expected per bin with 20 replications


@pytest.fixture(scope="module")
def sbcf():
    """``validation/sbc_families.py`` imported as a module (it is a script)."""
    path = Path(__file__).resolve().parents[2] / "validation" / "sbc_families.py"
    name = "bayesmix_validation_sbc_families"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def rng() -> np.random.Generator:
    return np.random.default_rng(20261204)


@pytest.mark.parametrize("name", ["poisson", "categorical"])
def test_prior_draws_match_the_models_prior(sbcf, rng, name):
    """SBC's hand-written prior draws have the distribution of the PyMC model's prior.

    Compared with :func:`bayesmix.inference.sample_prior_predictive` of the same spec (two
    sample Kolmogorov-Smirnov tests, one per scalar parameter of component 0).
    """
    from bayesmix.inference import sample_prior_predictive

    model = sbcf.MODELS[name]
    theta, X, _ = sbcf.simulate(model, rng)
    tree = sample_prior_predictive(model.spec, X, draws=1000, random_seed=3)
    prior = tree["prior"]
    ours = [sbcf.draw_prior(model, rng) for _ in range(1000)]
    for var in theta:
        pkg = prior[var].values.reshape((-1, *np.shape(theta[var])))
        mine = np.array([t[var] for t in ours])
        assert pkg.shape[1:] == mine.shape[1:], var
        a, b = pkg[:, 0].reshape(len(pkg), -1), mine[:, 0].reshape(len(mine), -1)
        for j in range(a.shape[1]):
            p = stats.ks_2samp(a[:, j], b[:, j]).pvalue
            assert p > 1e-3, (var, j, p)


@pytest.mark.parametrize("name", ["poisson", "categorical"])
def test_statistics_are_permutation_invariant(sbcf, rng, name):
    model = sbcf.MODELS[name]
    theta, X, _ = sbcf.simulate(model, rng)
    swapped = {k: v[::-1] for k, v in theta.items()}
    a = sbcf.statistics(model, theta, X)
    b = sbcf.statistics(model, swapped, X)
    assert a.keys() == b.keys() and "loglik" in a
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-12)
    # stacks of draws give the statistics of each draw
    stacked = {k: np.stack([v, v[::-1]]) for k, v in theta.items()}
    c = sbcf.statistics(model, stacked, X)
    for key in a:
        np.testing.assert_allclose(c[key], [a[key], a[key]], rtol=1e-12)
    # loglik is the SciPy log-likelihood of the data
    from scipy.special import logsumexp

    if name == "poisson":
        comp = stats.poisson.logpmf(X[:, None, :], theta["rate"][None]).sum(-1)
    else:
        p = theta["probs"][:, np.arange(X.shape[1]), X]  # (K, N, D)
        comp = np.log(p).sum(-1).T
    ref = logsumexp(comp + np.log(theta["w"]), axis=1).sum()
    assert a["loglik"] == pytest.approx(ref, rel=1e-10)


def test_categorical_data_show_every_level(sbcf, rng):
    model = sbcf.MODELS["categorical"]
    for _ in range(20):
        _, X, redraws = sbcf.simulate(model, rng)
        assert X.shape == (model.n_obs, model.n_features) and redraws >= 0
        np.testing.assert_array_equal(X.max(axis=0), model.n_levels - 1)
        assert X.min() >= 0


def test_thinning_spreads_over_chains(sbcf):
    draws = np.arange(2 * 100).reshape(2, 100).astype(float)
    t = sbcf.thinned(draws, SMALL_THIN, SMALL_L)
    assert t.shape == (SMALL_L,)
    assert t[0] == SMALL_THIN - 1 and np.all(np.diff(t[:10]) == SMALL_THIN)
    assert np.any(t >= 100)
    with pytest.raises(ValueError, match="too few draws"):
        sbcf.thinned(draws, SMALL_THIN, 21)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["poisson", "categorical"])
def test_small_sbc_ranks_are_uniform(sbcf, name, numbers):
    """20 replications: no failures, ranks in 0..L, no statistic rejects uniformity.

    A loose threshold (Holm-corrected chi-square p > 0.001 for every statistic): it catches a
    grossly wrong posterior (Poisson data drawn with rates 30 % above theta: ``loglik`` p about
    1e-15), not subtle miscalibration; the full run in ``validation/`` does that. A wrong
    prior hides behind 80 observations here; ``test_prior_draws_match_the_models_prior``
    catches that one.
    """
    import pandas as pd

    model = sbcf.MODELS[name]
    idx = list(sbcf.MODELS).index(name)
    rows = []
    for rep in range(SMALL_REPS):
        rows.extend(
            sbcf.replicate(
                model,
                rep,
                draws=SMALL_DRAWS,
                tune=SMALL_TUNE,
                thin=SMALL_THIN,
                n_keep=SMALL_L,
                model_index=100 + idx,
            )
        )
    df = pd.DataFrame(rows)
    assert (df["error"] == "").all(), df["error"].unique()
    assert df["rank"].between(0, SMALL_L).all()
    n_stats = df.groupby("rep")["stat"].nunique()
    assert (n_stats == n_stats.iloc[0]).all()
    pv = {}
    for stat, g in df.groupby("stat"):
        pv[stat] = sbcf.sbc.uniformity(g["rank"].to_numpy(), SMALL_L + 1, SMALL_BINS)
    holm = dict(zip(pv, sbcf.sbc.holm(np.array(list(pv.values()))), strict=True))
    worst = min(holm, key=holm.get)
    numbers[f"small SBC {name}: smallest Holm p ({worst})"] = f"{holm[worst]:.3f}"
    numbers[f"small SBC {name}: divergences"] = str(
        int(df.groupby("rep")["divergences"].first().sum())
    )
    assert holm[worst] > 1e-3, (worst, holm[worst])
