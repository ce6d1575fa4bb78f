"""The SBC machinery of validation/sbc.py: helpers against references, and a small real run."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats


def test_holm_matches_hand_computation(sbc_module):
    p = np.array([0.01, 0.04, 0.03, 0.5])
    # sorted: 0.01*4=0.04, 0.03*3=0.09, 0.04*2=0.08 -> monotone 0.09, 0.5*1=0.5
    expected = np.array([0.04, 0.09, 0.09, 0.5])
    np.testing.assert_allclose(sbc_module.holm(p), expected)
    assert np.all(sbc_module.holm(np.array([0.9, 0.8])) == 1.0)


def test_uniformity_matches_scipy_chisquare(sbc_module, rng):
    n_ranks = sbc_module.L + 1
    ranks = rng.integers(0, n_ranks, size=300)
    counts = np.bincount(ranks * sbc_module.BINS // n_ranks, minlength=sbc_module.BINS)
    assert counts.sum() == 300
    assert sbc_module.uniformity(ranks) == pytest.approx(stats.chisquare(counts).pvalue)
    # all ranks in one bin: the test must reject
    assert sbc_module.uniformity(np.zeros(300, dtype=int)) < 1e-10


def test_thinning_keeps_L_draws_spread_over_chains(sbc_module):
    draws = np.arange(2 * 300).reshape(2, 300).astype(float)
    t = sbc_module.thinned(draws)
    assert t.shape == (sbc_module.L,)
    assert t[0] == sbc_module.THIN - 1 and np.all(np.diff(t[:25]) == sbc_module.THIN)
    assert np.any(t >= 300)  # the second chain contributes


def test_ordered_prior_draws_are_sorted_and_exchangeable(sbc_module, rng):
    model = sbc_module.MODELS["gauss2d_diag"]
    thetas = [sbc_module.draw_prior(model, rng) for _ in range(2000)]
    mu0 = np.array([t["mu"][:, 0] for t in thetas])
    assert np.all(np.diff(mu0, axis=1) > 0)
    # sorting the components must not change the distribution of the sum of the means
    # (permutation-invariant), which is N(0, 2 * 2**2) for two components
    total = mu0.sum(axis=1)
    assert stats.kstest(total, stats.norm(0, np.sqrt(2) * 2).cdf).pvalue > 1e-3
    w = np.array([t["w"] for t in thetas])
    np.testing.assert_allclose(w.sum(axis=1), 1.0)


def test_bernoulli_statistics_are_permutation_invariant(sbc_module, rng):
    model = sbc_module.MODELS["bernoulli"]
    theta = sbc_module.draw_prior(model, rng)
    X = (rng.random((30, model.n_features)) < 0.5).astype(float)
    swapped = {k: v[::-1] for k, v in theta.items()}
    a = sbc_module.statistics(model, theta, X)
    b = sbc_module.statistics(model, swapped, X)
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["gauss1d", "bernoulli"])
def test_sbc_small_run(sbc_module, name):
    """Three real replications: no failures, ranks in 0..L, one row per statistic."""
    import pandas as pd

    model = sbc_module.MODELS[name]
    rows = []
    for rep in range(3):
        rows.extend(sbc_module.replicate(model, rep, model_index=7))
    df = pd.DataFrame(rows)
    assert (df["error"] == "").all(), df["error"].unique()
    assert df["rank"].between(0, sbc_module.L).all()
    n_stats = df.groupby("rep")["stat"].nunique()
    assert (n_stats == n_stats.iloc[0]).all() and "loglik" in set(df["stat"])
    assert np.isfinite(df["post_mean"]).all()
    summary = sbc_module.summarize(df)
    assert summary["p_holm"].between(0, 1).all()
    assert (summary["p_holm"] >= summary["p_chisq"] - 1e-15).all()
