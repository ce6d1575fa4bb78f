"""Simulation-based calibration (Talts et al. 2018) of the bayesmix NUTS posteriors.

For each model below and each replication ``i``:

1. draw parameters ``theta ~ prior`` (fixed, proper priors given explicitly in the spec, so
   nothing is scaled to the simulated data);
2. draw ``N`` observations ``y ~ p(y | theta)``;
3. sample the posterior with :func:`bayesmix.inference.sample_nuts` (nutpie, 2 chains,
   ``tune`` + ``draws`` per chain, started near the MAP-EM fit);
4. thin the draws to ``L = 49`` (every 12th draw of 2 x 300; see ``THIN``) and record, for each
   statistic ``f``, the rank ``#{l : f(theta_l) < f(theta)}`` in ``0 .. L``.

If the sampler is correct, every rank is uniform on ``0 .. L``. The ranks are binned into
``BINS`` equal bins and tested with a chi-square test per statistic; the p-values of one model
are corrected for multiple testing with Holm's method.

Labels. The 1-D and 2-D Gaussian models use the spec's ``ordered=True`` option (the means of
the first feature are increasing): the parameters are identified, and since the unordered
prior is exchangeable across components, drawing iid components and sorting them by
``mu[:, 0]`` is an exact draw from the ordered model's prior. The Bernoulli model has no
ordered option; its statistics are permutation-invariant functions of the parameters: the
components are sorted by ``p[:, 0]`` in the truth and in every draw (``w_s``, ``p_s``). Any
permutation-invariant statistic has the same posterior under every labelling, so its ranks
are uniform whatever label switching the chains do. No draws are relabelled towards the true
parameters (that would use the truth and bias the ranks). Every model also ranks ``loglik``,
the log-likelihood of the simulated data (a data-dependent test quantity, Modrak et al. 2023).

Usage::

    uv run python validation/sbc.py                  # 200 replications per model, 2 processes
    uv run python validation/sbc.py --reps 20 --models gauss1d

Writes ``validation/results/sbc_ranks.csv``, ``sbc_summary.csv`` and one rank-histogram PNG
per model (``sbc_<model>.png``), and prints the table.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import multiprocessing as mp
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bayesmix.config import ModelSpec, PriorSpec

RESULTS = Path(__file__).resolve().parent / "results"
DRAWS, TUNE, CHAINS = 300, 300, 2
THIN = 12  # 2 chains x 300 draws, every 12th -> 50 draws, the first L of them are kept
L = 49  # ranks lie in 0 .. L: 50 values, so BINS divides them evenly
BINS = 10


@dataclass(frozen=True)
class SBCModel:
    """One SBC configuration: a spec with fixed priors and the data size."""

    name: str
    spec: ModelSpec
    n_obs: int
    n_features: int


# the two Gaussian configurations share the model and differ in the data's dimension
_ORDERED_GAUSS = ModelSpec(
    "gaussian",
    2,
    "diag",
    ordered=True,
    priors=PriorSpec(weights_alpha=4.0, mu_loc=0.0, mu_scale=2.0, sigma_scale=1.0),
)

MODELS: dict[str, SBCModel] = {
    "gauss1d": SBCModel(
        "gauss1d",
        _ORDERED_GAUSS,
        n_obs=60,
        n_features=1,
    ),
    "gauss2d_diag": SBCModel(
        "gauss2d_diag",
        _ORDERED_GAUSS,
        n_obs=80,
        n_features=2,
    ),
    "bernoulli": SBCModel(
        "bernoulli",
        ModelSpec("bernoulli", 2, priors=PriorSpec(weights_alpha=4.0, beta_a=1.0, beta_b=1.0)),
        n_obs=100,
        n_features=5,
    ),
}


# ---------------------------------------------------------------------------------------------
# prior draws and statistics


def draw_prior(model: SBCModel, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One parameter draw from the model's prior (components sorted as the model labels them).

    Parameters
    ----------
    model : SBCModel
    rng : numpy.random.Generator

    Returns
    -------
    dict
        ``w`` (K,), and ``mu``, ``sigma`` (K, D) or ``p`` (K, D).
    """
    spec, d = model.spec, model.n_features
    k = spec.n_components
    pr = spec.priors
    w = rng.dirichlet(np.full(k, float(pr.weights_alpha)))
    if spec.family == "bernoulli":
        return {"w": w, "p": rng.beta(pr.beta_a, pr.beta_b, size=(k, d))}
    mu = rng.normal(pr.mu_loc, pr.mu_scale, size=(k, d))
    sigma = np.abs(rng.normal(0.0, pr.sigma_scale, size=(k, d)))
    theta = {"w": w, "mu": mu, "sigma": sigma}
    if spec.ordered:
        order = np.argsort(mu[:, 0])
        theta = {key: v[order] for key, v in theta.items()}
    return theta


def statistics(model: SBCModel, theta: dict[str, np.ndarray], X: np.ndarray) -> dict:
    """The ranked statistics for parameters with any leading (draw) dims.

    Parameters
    ----------
    model : SBCModel
    theta : dict
        ``w`` (..., K), ``mu``/``sigma``/``p`` (..., K, D).
    X : ndarray of shape (N, D)
        The simulated data (for ``loglik``).

    Returns
    -------
    dict of str to ndarray of shape (...)
    """
    from bayesmix import _math

    out: dict[str, np.ndarray] = {}
    fam = model.spec.family
    if fam == "bernoulli":
        order = np.argsort(theta["p"][..., 0], axis=-1)  # (..., K)
        w = np.take_along_axis(theta["w"], order, axis=-1)
        p = np.take_along_axis(theta["p"], order[..., None], axis=-2)
        for k in range(w.shape[-1] - 1):
            out[f"w_s[{k}]"] = w[..., k]
        for k in range(p.shape[-2]):
            for j in range(p.shape[-1]):
                out[f"p_s[{k},{j}]"] = p[..., k, j]
    else:
        k_ = theta["w"].shape[-1]
        for k in range(k_ - 1):
            out[f"w[{k}]"] = theta["w"][..., k]
        for name in ("mu", "sigma"):
            for k in range(k_):
                for j in range(theta[name].shape[-1]):
                    out[f"{name}[{k},{j}]"] = theta[name][..., k, j]
    ll = _math.mixture_log_density(X, theta, fam)  # (..., N)
    out["loglik"] = ll.sum(axis=-1)
    return out


def thinned(draws: np.ndarray) -> np.ndarray:
    """Every THIN-th draw of each chain, chains concatenated, the first L kept.

    Parameters
    ----------
    draws : ndarray of shape (chain, draw, ...)

    Returns
    -------
    ndarray of shape (L, ...)
    """
    t = draws[:, THIN - 1 :: THIN]
    flat = t.reshape((-1, *draws.shape[2:]))
    if flat.shape[0] < L:
        raise ValueError(f"too few draws to thin: expected >= {L}, got {flat.shape[0]}")
    return flat[:L]


# ---------------------------------------------------------------------------------------------
# one replication


def replicate(
    model: SBCModel,
    rep: int,
    *,
    draws: int = DRAWS,
    tune: int = TUNE,
    chains: int = CHAINS,
    model_index: int = 0,
) -> list[dict]:
    """Run one SBC replication and return one row per statistic.

    Parameters
    ----------
    model : SBCModel
    rep : int
        Replication number (seeds the prior draw, the data and the sampler).
    draws, tune, chains : int
    model_index : int
        Seeds differ between models.

    Returns
    -------
    list of dict
        Keys ``model``, ``rep``, ``stat``, ``rank``, ``L``, ``true``, ``post_mean``,
        ``divergences``, ``ess_bulk``, ``seconds``, ``error``.
    """
    from bayesmix import _math
    from bayesmix.inference import sample_nuts

    rng = np.random.default_rng([20181, model_index, rep])
    theta = draw_prior(model, rng)
    X, _ = _math.sample_mixture(theta, model.n_obs, model.spec.family, rng)
    if model.spec.family == "bernoulli":
        X = X.astype(np.int64)
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
                random_seed=100_000 * model_index + rep,
                progressbar=False,
            )
    except Exception as exc:  # recorded, not hidden: SBC must not drop replications silently
        return [
            {
                "model": model.name,
                "rep": rep,
                "stat": "",
                "rank": -1,
                "L": L,
                "error": f"{type(exc).__name__}: {exc}"[:300],
            }
        ]
    seconds = time.perf_counter() - t0
    post = tree["posterior"]
    names = ("w", "p") if model.spec.family == "bernoulli" else ("w", "mu", "sigma")
    draws_theta = {n: post[n].transpose("chain", "draw", ...).values for n in names}
    n_div = int(tree["sample_stats"]["diverging"].values.sum())
    true_stats = statistics(model, theta, X)
    draw_stats = statistics(model, draws_theta, X)  # each (chain, draw)
    rows = []
    for name, true_value in true_stats.items():
        all_draws = draw_stats[name]
        sample = thinned(all_draws)
        rows.append(
            {
                "model": model.name,
                "rep": rep,
                "stat": name,
                "rank": int(np.sum(sample < true_value)),
                "L": L,
                "true": float(true_value),
                "post_mean": float(all_draws.mean()),
                "divergences": n_div,
                "ess_bulk": float(_ess_bulk(all_draws)),
                "seconds": seconds,
                "error": "",
            }
        )
    return rows


def _ess_bulk(x: np.ndarray) -> float:
    """Bulk ESS of (chain, draw) draws with arviz-stats (rank-normalised)."""
    from arviz_stats.base import array_stats

    return float(array_stats.ess(x, chain_axis=0, draw_axis=1, method="bulk"))


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
# tests and plots


def uniformity(ranks: np.ndarray, n_ranks: int = L + 1, bins: int = BINS) -> float:
    """Chi-square p-value of ranks against the discrete uniform on ``0 .. n_ranks - 1``.

    Parameters
    ----------
    ranks : ndarray of shape (n_reps,)
    n_ranks : int
        Number of possible rank values (a multiple of ``bins``).
    bins : int

    Returns
    -------
    float
    """
    from scipy import stats

    counts = np.bincount(np.asarray(ranks) * bins // n_ranks, minlength=bins)
    return float(stats.chisquare(counts).pvalue)


def holm(pvalues: np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values (step-down, monotone, capped at 1).

    Parameters
    ----------
    pvalues : ndarray of shape (m,)

    Returns
    -------
    ndarray of shape (m,)
    """
    p = np.asarray(pvalues, dtype=float)
    m = p.size
    order = np.argsort(p)
    adj = np.empty(m)
    running = 0.0
    for i, j in enumerate(order):
        running = max(running, (m - i) * p[j])
        adj[j] = min(1.0, running)
    return adj


def summarize(df):
    """Per-model, per-statistic chi-square p-values with Holm's correction (DataFrame)."""
    import pandas as pd

    ok = df[df["error"].fillna("") == ""]
    rows = []
    for model, g in ok.groupby("model", sort=False):
        stats_ = list(dict.fromkeys(g["stat"]))
        pv = np.array([uniformity(g.loc[g["stat"] == s, "rank"].to_numpy()) for s in stats_])
        adj = holm(pv)
        for s, p_raw, p_adj in zip(stats_, pv, adj, strict=True):
            rows.append(
                {
                    "model": model,
                    "stat": s,
                    "n_reps": int((g["stat"] == s).sum()),
                    "p_chisq": p_raw,
                    "p_holm": p_adj,
                }
            )
    return pd.DataFrame(rows)


def compact_ranks(df):
    """One row per (model, rep): the ranks of every statistic, divergences, min ESS, errors.

    Parameters
    ----------
    df : pandas.DataFrame
        The rows of :func:`replicate` (one per statistic).

    Returns
    -------
    pandas.DataFrame
        Columns ``model``, ``rep``, ``divergences``, ``min_ess_bulk``, ``seconds``,
        ``error`` and ``rank:<stat>`` for each statistic (empty where a model lacks it).
    """
    df = df.assign(error=df["error"].fillna(""))
    meta = df.groupby(["model", "rep"], sort=False).agg(
        divergences=("divergences", "first"),
        min_ess_bulk=("ess_bulk", "min"),
        seconds=("seconds", "first"),
        error=("error", "first"),
    )
    ranks = df[df["stat"].fillna("") != ""].pivot(
        index=["model", "rep"], columns="stat", values="rank"
    )
    ranks.columns = [f"rank:{c}" for c in ranks.columns]
    out = meta.join(ranks).reset_index()
    out["min_ess_bulk"] = out["min_ess_bulk"].round(1)
    out["seconds"] = out["seconds"].round(2)
    return out


def long_ranks(wide):
    """Inverse of :func:`compact_ranks` for the columns that :func:`summarize` needs."""
    cols = [c for c in wide.columns if c.startswith("rank:")]
    err = wide["error"].astype(object)
    wide = wide.assign(error=err.where(err.notna(), ""))
    long = wide.melt(
        id_vars=["model", "rep", "error"], value_vars=cols, var_name="stat", value_name="rank"
    ).dropna(subset=["rank"])
    long["stat"] = long["stat"].str.removeprefix("rank:")
    long["rank"] = long["rank"].astype(int)
    return long.sort_values(["model", "rep"], kind="stable").reset_index(drop=True)


def plot_ranks(df, model: str, path: Path) -> None:
    """Rank histograms of one model with the 99 % band of a uniform histogram (small PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy import stats

    g = df[(df["model"] == model) & (df["error"].fillna("") == "")]
    names = list(dict.fromkeys(g["stat"]))
    ncol = 4
    nrow = int(np.ceil(len(names) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(2.2 * ncol, 1.6 * nrow), squeeze=False)
    n_reps = g["rep"].nunique()
    lo, hi = stats.binom.ppf([0.005, 0.995], n_reps, 1 / BINS)
    for ax, name in zip(axes.flat, names, strict=False):
        r = g.loc[g["stat"] == name, "rank"].to_numpy()
        ax.hist(r, bins=np.linspace(0, L + 1, BINS + 1), color="C0", edgecolor="white")
        ax.axhspan(lo, hi, color="0.5", alpha=0.3, zorder=3)
        ax.axhline(n_reps / BINS, color="k", lw=0.6, zorder=4)
        ax.set_title(name, fontsize=7)
        ax.tick_params(labelsize=6)
    for ax in axes.flat[len(names) :]:
        ax.axis("off")
    fig.suptitle(f"SBC ranks, {model}: {n_reps} replications, L={L}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=60)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Run SBC for the chosen models (command line entry point)."""
    import pandas as pd

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--chunk", type=int, default=10)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument(
        "--replot",
        action="store_true",
        help="only recompute the summary and plots from the saved sbc_ranks.csv",
    )
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.replot:
        df = long_ranks(pd.read_csv(args.out / "sbc_ranks.csv"))
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
    compact_ranks(df).to_csv(args.out / "sbc_ranks.csv", index=False)
    report(df, args.out, args.models)
    good = df[df["error"].fillna("") == ""]
    per_rep = good.groupby(["model", "rep"]).agg(
        divergences=("divergences", "first"),
        seconds=("seconds", "first"),
        min_ess=("ess_bulk", "min"),
    )
    print(per_rep.groupby("model").agg(["mean", "min", "max"]).to_string())
    n_failed = df.loc[df["error"].fillna("") != "", ["model", "rep"]].drop_duplicates().shape[0]
    print(f"failed replications: {n_failed}; wall time {time.perf_counter() - t0:.0f} s")
    return 0


def report(df, out: Path, models) -> None:
    """Write sbc_summary.csv and the rank histograms, print the table."""
    summary = summarize(df)
    summary.to_csv(out / "sbc_summary.csv", index=False)
    for name in models:
        plot_ranks(df, name, out / f"sbc_{name}.png")
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    raise SystemExit(main())
