"""bayesmix NUTS on the posteriordb low_dim_gauss_mix benchmark against an independent reference.

The reference (validation/reference_posterior.py, numbers in validation/README.md) is a long
nutpie run of the same model written directly with ``pm.NormalMixture``. Here bayesmix's own
graph (ordered means, ``CustomDist`` log-sum-exp) is sampled with several seeds; each seed's
posterior mean must agree with the reference within its Monte Carlo standard error, and the
spread of the means across seeds must be consistent with those MCSEs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

REFERENCE = (
    Path(__file__).resolve().parents[2]
    / "validation"
    / "results"
    / "reference_low_dim_gauss_mix.json"
)
SEEDS = (11, 12, 13, 14)


@pytest.fixture(scope="module")
def seed_runs():
    import arviz as az

    from bayesmix.config import ModelSpec, PriorSpec
    from bayesmix.data import load_low_dim_gauss_mix
    from bayesmix.inference import sample_nuts

    spec = ModelSpec(
        "gaussian",
        2,
        "diag",
        ordered=True,
        priors=PriorSpec(weights_alpha=5.0, mu_loc=0.0, mu_scale=2.0, sigma_scale=2.0),
    )
    X = load_low_dim_gauss_mix()
    out = {}
    for seed in SEEDS:
        tree = sample_nuts(spec, X, draws=500, tune=500, chains=2, random_seed=seed)
        post = tree["posterior"].to_dataset()
        params = {
            **{f"w[{k}]": post["w"].sel(component=k) for k in range(2)},
            **{f"mu[{k}]": post["mu"].sel(component=k, feature="y") for k in range(2)},
            **{f"sigma[{k}]": post["sigma"].sel(component=k, feature="y") for k in range(2)},
        }
        means, mcse = {}, {}
        for name, da in params.items():
            ds = da.drop_vars([c for c in da.coords if c not in ("chain", "draw")]).to_dataset(
                name="x"
            )
            means[name] = float(da.mean())
            mcse[name] = float(az.mcse(ds, method="mean")["x"])
        out[seed] = (means, mcse, int(tree["sample_stats"]["diverging"].values.sum()))
    return out


def _reference():
    return json.loads(REFERENCE.read_text())


def test_reference_file_is_a_converged_long_run():
    ref = _reference()
    assert ref["divergences"] == 0
    for name, p in ref["params"].items():
        assert p["rhat"] < 1.001, name
        assert p["ess_bulk"] > 20_000, name
        assert p["mcse_mean"] < 0.02 * p["sd"], name
    # the data were simulated from about w = (0.6, 0.4), mu = (-2.75, 2.75), sigma = 1
    assert ref["params"]["mu[0]"]["mean"] < -2 < 2 < ref["params"]["mu[1]"]["mean"]


@pytest.mark.slow
def test_posterior_means_agree_with_reference_within_mcse(seed_runs, numbers):
    ref = _reference()["params"]
    z = []
    for means, mcse, n_div in seed_runs.values():
        assert n_div == 0
        for name, r in ref.items():
            z.append((means[name] - r["mean"]) / np.hypot(mcse[name], r["mcse_mean"]))
    z = np.asarray(z)
    numbers["reference posterior: max |z| over 4 seeds x 6 parameters"] = f"{np.abs(z).max():.2f}"
    # 24 z-scores: |z| > 4.5 has probability ~ 1.6e-4 in total when the sampler is right
    assert np.max(np.abs(z)) < 4.5, np.round(z, 2)


@pytest.mark.slow
def test_spread_across_seeds_is_consistent_with_mcse(seed_runs, numbers):
    ref = _reference()["params"]
    chi2, dof = 0.0, 0
    ratios = {}
    for name in ref:
        if name == "w[1]":  # w[1] = 1 - w[0]: not an independent check
            continue
        m = np.array([seed_runs[s][0][name] for s in SEEDS])
        se = np.array([seed_runs[s][1][name] for s in SEEDS])
        chi2 += float(np.sum(((m - m.mean()) / se) ** 2))
        dof += len(SEEDS) - 1
        ratios[name] = float(m.std(ddof=1) / np.sqrt(np.mean(se**2)))
    # parameters are correlated, so this is approximate; two-sided at 0.1 %
    p = stats.chi2.sf(chi2, dof)
    numbers["reference posterior: seed spread chi2 / dof / p"] = f"{chi2:.1f} / {dof} / {p:.3f}"
    numbers["reference posterior: sd(seed means) / rms(MCSE)"] = ", ".join(
        f"{k} {v:.2f}" for k, v in ratios.items()
    )
    assert 1e-3 < p < 1 - 1e-3, (chi2, dof, ratios)
