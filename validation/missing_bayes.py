"""Missing values in the Bayesian fits: NUTS against EM, and calibration of imputations.

Two checks of ``missing="model"`` (NaN = missing at random, each row's likelihood the
density of its observed coordinates) in the PyMC graphs:

**agreement** -- NUTS and EM fit the same model: on the same data with entries removed
completely at random, every posterior mean lies within 2 posterior standard deviations of
the MAP-EM estimate (same priors where EM has them; with K = 2 and hundreds of rows the
posterior mode and mean differ by much less than a posterior sd). Cases:

* ``faithful_full``: Old Faithful (N = 272, both columns), 15 % of the entries removed,
  K = 2, full covariances (the default LKJ / half-normal prior; MAP-EM has the weight and
  mean priors and ML covariances);
* ``bernoulli``: 400 x 8 binary rows from a K = 3 Bernoulli mixture, 20 % removed;
* ``poisson``: 300 x 4 counts from a K = 2 Poisson mixture, 20 % removed.

NUTS: 2 chains x 1000 draws after 1000 tuning steps, started at the MAP-EM fit; the
components of each chain are matched to EM's by the permutation closest to EM's estimate
(K <= 3: all of them) before the means and sds are taken. ``z = (posterior mean - EM) /
posterior sd`` for every entry of ``w``, ``mu``, ``sigma``, ``corr`` (off-diagonal), ``p``,
``rate``.

**coverage** -- imputations are calibrated: 100 simulated data sets (2-D, K = 2 full
covariances drawn at random, N = 200), 20 % of the entries removed at random (never both
entries of a row); NUTS (2 chains x 300 draws, 300 tuning steps); for every removed entry the
central 90 % interval of its posterior predictive draws (``bayesmix.inference.impute``:
per draw ``z ~ p(z | x_o, theta)``, then ``x_m ~ p(x_m | x_o, z, theta)``), and whether it
holds the removed true value. Averaged over data sets generated from varied parameters, the
rate should be near 90 % (a data set's own rate varies: its entries share one posterior).
For comparison the same intervals from draws at the MAP-EM point (``impute(group="em",
method="draws")``), which leave the parameters' uncertainty out. ``max_rhat`` is over the
labelled ``w``, ``mu``, ``sigma``: chains in different labellings inflate it without
touching the imputations (they do not depend on the labels); ``max_rhat_imputed`` is over
the imputed values themselves.

Usage::

    uv run python validation/missing_bayes.py [--part agreement|coverage|all] [--datasets 20]

Writes ``validation/results/missing_bayes_agreement.csv`` (one row per parameter entry:
case, parameter, em, posterior mean, posterior sd, z) and
``validation/results/missing_bayes_coverage.csv`` (one row per data set: removed entries,
covered, rate, mean interval width, the same two for the MAP-EM point, divergences, max
R-hat of the parameters and of the imputations, seconds), and prints summaries. Run time on
2 cores: about 3 minutes with a warm PyTensor cache (``--datasets 20``: about 1.5).
"""

from __future__ import annotations

import argparse
import itertools
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from bayesmix import _math
from bayesmix.config import ModelSpec
from bayesmix.data import load_old_faithful
from bayesmix.inference import fit_em, impute, sample_nuts

RESULTS = Path(__file__).parent / "results"


def remove_entries(X: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """A float copy of X with each entry NaN with probability ``share`` (no row all NaN)."""
    X = np.array(X, dtype=float)
    gone = rng.random(X.shape) < share
    full = gone.all(axis=1)
    gone[full, rng.integers(0, X.shape[1], full.sum())] = False
    X[gone] = np.nan
    return X


# ---------------------------------------------------------------------------------------------
# agreement of NUTS and EM


def _cases():
    rng = np.random.default_rng(20261)
    faithful = remove_entries(load_old_faithful().to_numpy(float), 0.15, rng)
    p = np.array(
        [
            [0.9, 0.8, 0.2, 0.1, 0.7, 0.3, 0.9, 0.2],
            [0.1, 0.2, 0.8, 0.9, 0.6, 0.3, 0.2, 0.8],
            [0.5, 0.9, 0.9, 0.2, 0.1, 0.8, 0.4, 0.5],
        ]
    )
    xb, _ = _math.sample_mixture({"w": np.array([0.3, 0.3, 0.4]), "p": p}, 400, "bernoulli", rng)
    rate = np.array([[1.0, 6.0, 3.0, 0.5], [5.0, 1.5, 3.0, 4.0]])
    xp, _ = _math.sample_mixture({"w": np.array([0.4, 0.6]), "rate": rate}, 300, "poisson", rng)
    return [
        ("faithful_full", ModelSpec("gaussian", 2, "full"), faithful),
        ("bernoulli", ModelSpec("bernoulli", 3), remove_entries(xb, 0.2, rng)),
        ("poisson", ModelSpec("poisson", 2), remove_entries(xp, 0.2, rng)),
    ]


def _entries(group: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The compared parameters of a point (K, ...) or draws (S, K, ...), off-diagonal corr."""
    out = {}
    for name in ("w", "mu", "sigma", "corr", "p", "rate"):
        if name not in group:
            continue
        v = np.asarray(group[name], float)
        if name == "corr":
            d = v.shape[-1]
            i, j = np.triu_indices(d, 1)
            v = v[..., i, j]
        out[name] = v
    return out


def _aligned_draws(post, em_point: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Posterior draws (S, K, ...) with each chain's components matched to EM's."""
    names = [n for n in _entries(em_point)]
    k = em_point["w"].shape[0]
    chains = []
    for c in range(post.sizes["chain"]):
        draws = {n: post[n].isel(chain=c).values for n in names}
        means = {n: v.mean(axis=0) for n, v in _entries(draws).items()}
        ref = _entries(em_point)

        def cost(perm, means=means, ref=ref):
            return sum(
                np.sum((means[n][list(perm)] - ref[n]) ** 2 / (np.abs(ref[n]) + 1.0)) for n in ref
            )

        best = min(itertools.permutations(range(k)), key=cost)
        chains.append({n: v[:, list(best)] for n, v in draws.items()})
    return {n: np.concatenate([c[n] for c in chains]) for n in names}


def agreement(draws: int = 1000, tune: int = 1000) -> pd.DataFrame:
    """MAP-EM and NUTS of each case; one row per compared parameter entry."""
    rows = []
    for case, spec, X in _cases():
        t = time.perf_counter()
        tree = fit_em(spec, X, missing="model", random_state=0, tol=1e-10, max_iter=5000)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = sample_nuts(
                spec,
                X,
                missing="model",
                draws=draws,
                tune=tune,
                chains=2,
                random_seed=1,
                result=tree,
                log_likelihood=False,
            )
        em_point = {n: tree["em"][n].values for n in tree["em"].data_vars}
        post = _entries(_aligned_draws(tree["posterior"], em_point))
        em = _entries(em_point)
        n_div = int(tree["sample_stats"]["diverging"].sum())
        seconds = time.perf_counter() - t
        for name, ref in em.items():
            mean, sd = post[name].mean(axis=0), post[name].std(axis=0, ddof=1)
            for idx in np.ndindex(ref.shape):
                rows.append(
                    {
                        "case": case,
                        "parameter": f"{name}[{','.join(map(str, idx))}]",
                        "em": ref[idx],
                        "post_mean": mean[idx],
                        "post_sd": sd[idx],
                        "z": (mean[idx] - ref[idx]) / sd[idx],
                        "missing_share": float(np.isnan(X).mean()),
                        "divergences": n_div,
                        "seconds": round(seconds, 1),
                    }
                )
        print(f"{case}: {seconds:.0f} s, {n_div} divergences", flush=True)
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# coverage of imputed values


def simulate(seed: int, n: int = 200):
    """A 2-D K = 2 mixture with random means, scales and correlations; (X, truth)."""
    rng = np.random.default_rng(seed)
    mu = np.array([[0.0, 0.0], rng.uniform(-3.0, 3.0, 2) + [3.0, 1.0]])
    sd = rng.uniform(0.6, 1.6, (2, 2))
    rho = rng.uniform(-0.8, 0.8, 2)
    corr = np.stack([[[1.0, r], [r, 1.0]] for r in rho])
    cov = sd[:, :, None] * corr * sd[:, None, :]
    w = np.array([0.4, 0.6])
    X, _ = _math.sample_mixture({"w": w, "mu": mu, "cov": cov}, n, "gaussian", rng)
    return X, rng


def coverage(n_datasets: int = 20, draws: int = 300, tune: int = 300) -> pd.DataFrame:
    """NUTS and imputation draws of each simulated data set; one row per data set."""
    spec = ModelSpec("gaussian", 2, "full")
    rows = []
    for seed in range(n_datasets):
        t = time.perf_counter()
        X, rng = simulate(seed)
        Xm = remove_entries(X, 0.2, rng)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = sample_nuts(
                spec,
                Xm,
                missing="model",
                draws=draws,
                tune=tune,
                chains=2,
                random_seed=seed,
                log_likelihood=False,
            )
        imp = impute(tree, random_seed=seed)  # (chain, draw, missing)
        values = imp.values.reshape(-1, imp.sizes["missing"])
        lo, hi = np.quantile(values, [0.05, 0.95], axis=0)
        truth = X[imp["row"].values, imp["column"].values]
        covered = (lo <= truth) & (truth <= hi)
        # for comparison: draws at the MAP-EM point (parameter uncertainty left out)
        em = fit_em(spec, Xm, missing="model", random_state=seed)
        plug = impute(em, group="em", method="draws", n_draws=2 * draws, random_seed=seed)
        plo, phi = np.quantile(plug.values.reshape(-1, plug.sizes["missing"]), [0.05, 0.95], 0)
        plug_covered = (plo <= truth) & (truth <= phi)
        post = tree["posterior"]
        rhat = _max_rhat(post)
        rhat_imp = _max_rhat_imputed(imp)
        rows.append(
            {
                "dataset": seed,
                "n_missing": int(covered.size),
                "covered": int(covered.sum()),
                "rate": float(covered.mean()),
                "mean_width": float((hi - lo).mean()),
                "rate_em_plugin": float(plug_covered.mean()),
                "mean_width_em_plugin": float((phi - plo).mean()),
                "divergences": int(tree["sample_stats"]["diverging"].sum()),
                "max_rhat": rhat,
                "max_rhat_imputed": rhat_imp,
                "seconds": round(time.perf_counter() - t, 1),
            }
        )
        print(
            f"data set {seed}: {covered.sum()}/{covered.size} covered "
            f"({covered.mean():.1%}), R-hat {rhat:.3f}, {rows[-1]['seconds']} s",
            flush=True,
        )
    return pd.DataFrame(rows)


def _max_rhat(post) -> float:
    import arviz as az

    r = az.rhat(post.to_dataset()[["w", "mu", "sigma"]])
    return float(max(np.nanmax(r[v].values) for v in r.data_vars))


def _max_rhat_imputed(imp) -> float:
    """R-hat of the imputed values (label-free: the chains' labellings do not matter)."""
    import arviz as az

    r = az.rhat(imp.drop_vars(["obs_id", "feature", "row", "column"]).to_dataset(name="x"))
    return float(np.nanmax(r["x"].values))


def main() -> None:
    """Run the parts asked for, write the CSVs and print the summaries."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("agreement", "coverage", "all"), default="all")
    parser.add_argument("--datasets", type=int, default=100)
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    start = time.perf_counter()
    if args.part in ("agreement", "all"):
        table = agreement()
        table.to_csv(RESULTS / "missing_bayes_agreement.csv", index=False, float_format="%.6g")
        summary = table.groupby("case")["z"].agg(
            max_abs_z=lambda z: np.abs(z).max(),
            within_2sd=lambda z: (np.abs(z) <= 2).mean(),
            n="size",
        )
        print(summary.to_string())
    if args.part in ("coverage", "all"):
        table = coverage(args.datasets)
        table.to_csv(RESULTS / "missing_bayes_coverage.csv", index=False, float_format="%.6g")
        total, hit = table["n_missing"].sum(), table["covered"].sum()
        rate = hit / total
        # entries of one data set share a posterior: the SE from the per-data-set rates
        se = table["rate"].std(ddof=1) / np.sqrt(len(table))
        plug = (table["rate_em_plugin"] * table["n_missing"]).sum() / total
        print(
            f"coverage of the 90 % intervals: {hit}/{total} = {rate:.3f} (data-set rates "
            f"{table['rate'].min():.3f}-{table['rate'].max():.3f}, mean "
            f"{table['rate'].mean():.3f} +- {se:.3f}); draws at the MAP-EM point: {plug:.3f}"
        )
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
