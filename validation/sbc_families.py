"""Simulation-based calibration (Talts et al. 2018) of the Poisson and categorical mixtures.

The same procedure as ``validation/sbc.py`` (whose helpers this script imports: thinning
constants, the chi-square uniformity test, Holm's correction, the rank tables and the rank
histograms), for the families of issue 14. For each model and replication ``i``:

1. draw parameters ``theta ~ prior`` (fixed, proper priors given explicitly in the spec, so
   nothing is scaled to the simulated data);
2. draw ``N`` observations ``y ~ p(y | theta)`` with the package's mixture sampler
   (:func:`bayesmix._math.sample_mixture`);
3. sample the posterior with :func:`bayesmix.inference.sample_nuts` (nutpie, 2 chains,
   ``tune`` + ``draws`` per chain, started near the MAP-EM fit);
4. thin the draws to ``L`` (49 by default: every 12th draw of 2 x 300) and record, for each
   statistic ``f``, the rank ``#{l : f(theta_l) < f(theta)}`` in ``0 .. L``.

Labels. Neither family has an ``ordered`` option, so every statistic is a
permutation-invariant function of the parameters: the components are sorted by a key in the
truth and in every draw (Poisson: ``rate[:, 0]``; categorical: ``probs[:, 0, 0]``) and the
sorted weights and parameters are ranked (``w_s``, ``rate_s``, ``probs_s``), together with
``loglik``, the log-likelihood of the simulated data. Their posterior is the same under every
labelling, so the ranks are uniform whatever the chains do with the labels.

Categorical levels. The package reads each item's number of levels from the data (the largest
code + 1), so a data set in which an item never shows its top level is a different model
(fewer levels). Such data sets are rejected and redrawn together with ``theta`` (the number
of redraws is recorded). Rejecting on an event of the data alone leaves the posterior
``p(theta | y)`` of every kept data set unchanged, so the ranks stay uniform.

Usage::

    uv run python validation/sbc_families.py                 # 300 replications per model
    uv run python validation/sbc_families.py --reps 20 --models poisson

Writes ``validation/results/sbc_families_ranks.csv``, ``sbc_families_summary.csv`` and one
rank-histogram PNG per model (``sbc_families_<model>.png``), and prints the table.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import importlib.util
import multiprocessing as mp
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bayesmix.config import ModelSpec, PriorSpec

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def _load_sbc():
    """``validation/sbc.py`` (a script, not a package module): its helpers are reused."""
    name = "bayesmix_validation_sbc"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, HERE / "sbc.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


sbc = _load_sbc()
DRAWS, TUNE, CHAINS, THIN, L, BINS = sbc.DRAWS, sbc.TUNE, sbc.CHAINS, sbc.THIN, sbc.L, sbc.BINS


@dataclass(frozen=True)
class SBCModel:
    """One SBC configuration: a spec with fixed priors, the data size and item levels."""

    name: str
    spec: ModelSpec
    n_obs: int
    n_features: int
    n_levels: int = 0  # categorical: levels of every item


MODELS: dict[str, SBCModel] = {
    "poisson": SBCModel(
        "poisson",
        ModelSpec(
            "poisson",
            2,
            priors=PriorSpec(weights_alpha=4.0, rate_shape=2.0, rate_rate=0.5),
        ),
        n_obs=80,
        n_features=2,
    ),
    "categorical": SBCModel(
        "categorical",
        ModelSpec("categorical", 2, priors=PriorSpec(weights_alpha=4.0, category_alpha=1.0)),
        n_obs=100,
        n_features=4,
        n_levels=3,
    ),
}


# ---------------------------------------------------------------------------------------------
# prior draws, data and statistics


def draw_prior(model: SBCModel, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One parameter draw from the model's (fixed) prior, in result names.

    Returns
    -------
    dict
        ``w`` (K,) and ``rate`` (K, D) (Poisson) or ``probs`` (K, D, L) (categorical).
    """
    spec, d = model.spec, model.n_features
    k, pr = spec.n_components, spec.priors
    w = rng.dirichlet(np.full(k, float(pr.weights_alpha)))
    if spec.family == "poisson":
        # numpy's gamma takes shape and scale = 1 / rate
        return {"w": w, "rate": rng.gamma(pr.rate_shape, 1.0 / pr.rate_rate, size=(k, d))}
    alpha = np.full(model.n_levels, float(pr.category_alpha))
    return {"w": w, "probs": rng.dirichlet(alpha, size=(k, d))}


def simulate(
    model: SBCModel, rng: np.random.Generator, max_tries: int = 1000
) -> tuple[dict[str, np.ndarray], np.ndarray, int]:
    """``theta`` from the prior and ``N`` observations from the mixture.

    Categorical data sets are redrawn (with theta) until every item shows its top level.

    Returns
    -------
    theta : dict
    X : ndarray of shape (N, D), int64
    redraws : int
        Number of rejected (theta, X) pairs.
    """
    from bayesmix import _math

    for tries in range(max_tries):
        theta = draw_prior(model, rng)
        X, _ = _math.sample_mixture(theta, model.n_obs, model.spec.family, rng)
        X = np.asarray(X, dtype=np.int64)
        if model.n_levels == 0 or np.all(X.max(axis=0) == model.n_levels - 1):
            return theta, X, tries
    raise RuntimeError(f"no data set with every level in {max_tries} tries")


def _sort_key(model: SBCModel, theta: dict[str, np.ndarray]) -> np.ndarray:
    """(..., K) key that orders the components (the same in the truth and the draws)."""
    if model.spec.family == "poisson":
        return theta["rate"][..., 0]
    return theta["probs"][..., 0, 0]


def statistics(model: SBCModel, theta: dict[str, np.ndarray], X: np.ndarray) -> dict:
    """Permutation-invariant statistics for parameters with any leading (draw) dims.

    Parameters
    ----------
    model : SBCModel
    theta : dict
        ``w`` (..., K) and ``rate`` (..., K, D) or ``probs`` (..., K, D, L).
    X : ndarray of shape (N, D)
        The simulated data (for ``loglik``).

    Returns
    -------
    dict of str to ndarray of shape (...)
    """
    from bayesmix import _math

    order = np.argsort(_sort_key(model, theta), axis=-1)  # (..., K)
    w = np.take_along_axis(theta["w"], order, axis=-1)
    out: dict[str, np.ndarray] = {}
    for k in range(w.shape[-1] - 1):
        out[f"w_s[{k}]"] = w[..., k]
    if model.spec.family == "poisson":
        rate = np.take_along_axis(theta["rate"], order[..., None], axis=-2)
        for k in range(rate.shape[-2]):
            for j in range(rate.shape[-1]):
                out[f"rate_s[{k},{j}]"] = rate[..., k, j]
    else:
        probs = np.take_along_axis(theta["probs"], order[..., None, None], axis=-3)
        # the last level of each item is 1 minus the others: not ranked separately
        for k in range(probs.shape[-3]):
            for j in range(probs.shape[-2]):
                for lev in range(model.n_levels - 1):
                    out[f"probs_s[{k},{j},{lev}]"] = probs[..., k, j, lev]
    out["loglik"] = _math.mixture_log_density(X, theta, model.spec.family).sum(axis=-1)
    return out


def thinned(draws: np.ndarray, thin: int = THIN, n_keep: int = L) -> np.ndarray:
    """Every ``thin``-th draw of each chain, chains concatenated, the first ``n_keep`` kept.

    Parameters
    ----------
    draws : ndarray of shape (chain, draw, ...)

    Returns
    -------
    ndarray of shape (n_keep, ...)
    """
    t = draws[:, thin - 1 :: thin]
    flat = t.reshape((-1, *draws.shape[2:]))
    if flat.shape[0] < n_keep:
        raise ValueError(f"too few draws to thin: expected >= {n_keep}, got {flat.shape[0]}")
    return flat[:n_keep]


# ---------------------------------------------------------------------------------------------
# one replication


def replicate(
    model: SBCModel,
    rep: int,
    *,
    draws: int = DRAWS,
    tune: int = TUNE,
    chains: int = CHAINS,
    thin: int = THIN,
    n_keep: int = L,
    model_index: int = 0,
) -> list[dict]:
    """Run one SBC replication and return one row per statistic.

    Parameters
    ----------
    model : SBCModel
    rep : int
        Replication number (seeds the prior draw, the data and the sampler).
    draws, tune, chains : int
    thin, n_keep : int
        Thinning of the draws: ranks lie in ``0 .. n_keep``.
    model_index : int
        Seeds differ between models.

    Returns
    -------
    list of dict
        Keys ``model``, ``rep``, ``stat``, ``rank``, ``L``, ``true``, ``post_mean``,
        ``divergences``, ``ess_bulk``, ``seconds``, ``redraws``, ``error``.
    """
    from bayesmix.families import result_variables
    from bayesmix.inference import sample_nuts

    rng = np.random.default_rng([20181, 14, model_index, rep])
    theta, X, redraws = simulate(model, rng)
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = sample_nuts(
                model.spec,
                X,
                draws=draws,
                tune=tune,
                chains=chains,
                random_seed=100_000 * (model_index + 10) + rep,
                progressbar=False,
                log_likelihood=False,
            )
    except Exception as exc:  # recorded, not hidden: SBC must not drop replications silently
        return [
            {
                "model": model.name,
                "rep": rep,
                "stat": "",
                "rank": -1,
                "L": n_keep,
                "redraws": redraws,
                "error": f"{type(exc).__name__}: {exc}"[:300],
            }
        ]
    seconds = time.perf_counter() - t0
    post = tree["posterior"]
    names = list(result_variables(model.spec.family, None, model.n_features))
    draws_theta = {n: post[n].transpose("chain", "draw", ...).values for n in names}
    n_div = int(tree["sample_stats"]["diverging"].values.sum())
    true_stats = statistics(model, theta, X)
    draw_stats = statistics(model, draws_theta, X)  # each (chain, draw)
    rows = []
    for name, true_value in true_stats.items():
        all_draws = draw_stats[name]
        sample = thinned(all_draws, thin, n_keep)
        rows.append(
            {
                "model": model.name,
                "rep": rep,
                "stat": name,
                "rank": int(np.sum(sample < true_value)),
                "L": n_keep,
                "true": float(true_value),
                "post_mean": float(all_draws.mean()),
                "divergences": n_div,
                "ess_bulk": float(sbc._ess_bulk(all_draws)),
                "seconds": seconds,
                "redraws": redraws,
                "error": "",
            }
        )
    return rows


def _run_chunk(name: str, reps: list[int], model_index: int) -> list[dict]:
    rows: list[dict] = []
    for rep in reps:
        rows.extend(replicate(MODELS[name], rep, model_index=model_index))
    return rows


def _worker_init() -> None:
    import logging

    logging.getLogger("pymc").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")


# ---------------------------------------------------------------------------------------------
# command line


def report(df, out: Path, models) -> None:
    """Write sbc_families_summary.csv and the rank histograms, print the table."""
    summary = sbc.summarize(df)
    summary.to_csv(out / "sbc_families_summary.csv", index=False)
    for name in models:
        sbc.plot_ranks(df, name, out / f"sbc_families_{name}.png")
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


def main(argv: list[str] | None = None) -> int:
    """Run SBC for the chosen models (command line entry point)."""
    import pandas as pd

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=300)
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--chunk", type=int, default=10)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument(
        "--replot",
        action="store_true",
        help="only recompute the summary and plots from the saved sbc_families_ranks.csv",
    )
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.replot:
        df = sbc.long_ranks(pd.read_csv(args.out / "sbc_families_ranks.csv"))
        report(df, args.out, sorted(set(df["model"])))
        return 0

    t0 = time.perf_counter()
    rows: list[dict] = []
    ctx = mp.get_context("spawn")
    with cf.ProcessPoolExecutor(args.workers, mp_context=ctx, initializer=_worker_init) as ex:
        futs = []
        for name in args.models:
            idx = list(MODELS).index(name)
            for start in range(0, args.reps, args.chunk):
                reps = list(range(start, min(start + args.chunk, args.reps)))
                futs.append(ex.submit(_run_chunk, name, reps, idx))
        for n_done, fut in enumerate(cf.as_completed(futs), 1):
            rows.extend(fut.result())
            print(f"{n_done}/{len(futs)} chunks, {time.perf_counter() - t0:.0f} s", flush=True)
    df = pd.DataFrame(rows).sort_values(["model", "rep", "stat"], kind="stable")
    wide = sbc.compact_ranks(df)
    redraws = df.groupby(["model", "rep"], sort=False)["redraws"].first().to_numpy()
    wide.insert(wide.columns.get_loc("error"), "redraws", redraws)
    wide.to_csv(args.out / "sbc_families_ranks.csv", index=False)
    report(df, args.out, args.models)
    good = df[df["error"].fillna("") == ""]
    per_rep = good.groupby(["model", "rep"]).agg(
        divergences=("divergences", "first"),
        seconds=("seconds", "first"),
        min_ess=("ess_bulk", "min"),
        redraws=("redraws", "first"),
    )
    print(per_rep.groupby("model").agg(["mean", "median", "min", "max"]).to_string())
    n_failed = df.loc[df["error"].fillna("") != "", ["model", "rep"]].drop_duplicates().shape[0]
    print(f"failed replications: {n_failed}; wall time {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
