"""Bootstrap intervals of EM fits: coverage, and mclust's bootstrap LRT on Old Faithful.

Part ``coverage``. A known mixture (K = 3, D = 2, N = 300, weights 0.5 / 0.3 / 0.2, means
(0, 0), (4, 0), (0, 4), full covariances with correlations 0.3, 0, -0.4). For each of R
simulated data sets: ``GaussianMixtureEM(3, "full", n_init=5)`` fitted, its components matched
to the true ones (Hungarian matching of the means; labelling only, the intervals do not use
the truth), then ``bootstrap_parameters`` with ``kind = "nonparametric"``, ``"parametric"``
and ``"wlb"`` (B draws each) and the 95 % percentile interval of every weight and mean
coordinate. Coverage = fraction of data sets whose interval holds the true value (nominal
0.95; the Monte Carlo SE of one coverage is about sqrt(0.95 * 0.05 / R)). Also the mean
bootstrap SE against the sd of the estimates across the data sets (the true sampling sd).

Part ``faithful``. Old Faithful (272 x 2), ``covariance_type="tied"`` (= mclust's EEE):
``bootstrap_lrt`` with ``max_components=4`` (mclust's ``maxG = 3``) and n_boot = 999 on two
worker processes, timed: with mclust's refit start (``start="fitted"``) and EM tolerance
(``MCLUST_TOL``: mclust stops at a relative change of 1e-5 of the log-likelihood, about 4e-5
per row here), with mclust's start and the module's defaults, and with the defaults
(``start="both"``); next to ``validation/mclust_reference/faithful_bootstrap_lrt.json``
(``set.seed(1); mclustBootstrapLRT(faithful, "EEE", maxG = 3)``, mclust 6.0.0) where that file
exists, and the log-likelihoods next to ``faithful_loglik.csv``. Then ``bootstrap_parameters``
of the 3-component EEE fit (999 draws per kind; the defaults and mclust's tolerance) next to
``faithful_bootstrap_se.json`` (``MclustBootstrap``, types bs / wlbs / pb). With mclust's
tolerance the numbers match mclust's up to Monte Carlo error; the defaults converge further
and give larger bootstrap statistics and SEs, which part ``coverage`` finds calibrated.

Usage::

    uv run python validation/bootstrap_coverage.py            # both parts, about 12 minutes
    uv run python validation/bootstrap_coverage.py --quick    # a small run, under a minute
    uv run python validation/bootstrap_coverage.py --part coverage --reps 300 --boot 199

Writes ``validation/results/bootstrap_coverage.csv`` (one row per kind and parameter:
coverage, mean SE, sd of the estimates), ``bootstrap_faithful_lrt.csv`` and
``bootstrap_faithful_se.csv`` (not with ``--quick``, unless ``--out`` is given), and prints a
report.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from bayesmix.data import load_old_faithful
from bayesmix.em import GaussianMixtureEM
from bayesmix.em.bootstrap import bootstrap_lrt, bootstrap_parameters

HERE = Path(__file__).parent
RESULTS = HERE / "results"
REFERENCE = HERE / "mclust_reference"
KINDS = ("nonparametric", "parametric", "wlb")
MCLUST_KIND = {"nonparametric": "bs", "parametric": "pb", "wlb": "wlbs"}

TRUE_W = np.array([0.5, 0.3, 0.2])
TRUE_MU = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]])
_CORR = (0.3, 0.0, -0.4)
_SD = ((1.0, 1.0), (0.8, 1.2), (1.0, 0.7))
TRUE_COV = np.array(
    [
        [[s0 * s0, r * s0 * s1], [r * s0 * s1, s1 * s1]]
        for (s0, s1), r in zip(_SD, _CORR, strict=True)
    ]
)
N = 300
# bootstrap_lrt runs on Old Faithful: (start, label, estimator_kwargs). mclust's EM stops when
# the log-likelihood changes by less than 1e-5 relative (about 4e-5 per row here); bayesmix's
# default for the bootstrap is 1e-6 per row with SQUAREM.
MCLUST_TOL = {"tol": 4e-5, "max_iter": 1000, "accelerate": None}
RUNS = (
    ("fitted", "mclust tol", MCLUST_TOL),
    ("fitted", "default", None),
    ("both", "default", None),
)


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE
        )
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def simulate(rng: np.random.Generator) -> np.ndarray:
    """N rows from the true mixture (component counts multinomial)."""
    counts = rng.multinomial(N, TRUE_W)
    return np.vstack(
        [rng.multivariate_normal(TRUE_MU[k], TRUE_COV[k], size=c) for k, c in enumerate(counts)]
    )


def one_repetition(rep: int, n_boot: int, seed: int) -> list[dict]:
    """Intervals of every weight and mean coordinate for one simulated data set."""
    rng = np.random.default_rng([seed, rep])
    X = simulate(rng)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = GaussianMixtureEM(
            3, covariance_type="full", n_init=5, tol=1e-8, max_iter=2000, random_state=rng
        ).fit(X)
    # fitted component perm[k] is true component k (labels only)
    cost = ((TRUE_MU[:, None, :] - est.means_[None]) ** 2).sum(-1)
    perm = linear_sum_assignment(cost)[1]
    rows = []
    for kind in KINDS:
        t0 = time.perf_counter()
        res = bootstrap_parameters(est, X, n_boot=n_boot, kind=kind, random_state=rng)
        seconds = time.perf_counter() - t0
        for name, truth in (("w", TRUE_W), ("mu", TRUE_MU)):
            draws = res.draws[name][:, perm]
            estimate = res.estimate[name][perm]
            lower, upper = np.quantile(draws, [0.025, 0.975], axis=0)
            se = draws.std(axis=0, ddof=1)
            for idx in np.ndindex(truth.shape):
                rows.append(
                    {
                        "rep": rep,
                        "kind": kind,
                        "parameter": name,
                        "component": idx[0],
                        "feature": idx[1] if len(idx) > 1 else -1,
                        "true": truth[idx],
                        "estimate": estimate[idx],
                        "se": se[idx],
                        "lower": lower[idx],
                        "upper": upper[idx],
                        "covered": bool(lower[idx] <= truth[idx] <= upper[idx]),
                        "n_failed": res.n_failed,
                        "n_relabelled": res.n_relabelled,
                        "seconds": seconds,
                    }
                )
    return rows


def part_coverage(reps: int, n_boot: int, n_jobs: int, seed: int) -> pd.DataFrame:
    """Coverage over ``reps`` data sets (repetitions spread over ``n_jobs`` processes)."""
    t0 = time.perf_counter()
    if n_jobs == 1:
        parts = [one_repetition(r, n_boot, seed) for r in range(reps)]
    else:
        with ProcessPoolExecutor(n_jobs, mp_context=get_context("spawn")) as pool:
            parts = list(pool.map(one_repetition, range(reps), [n_boot] * reps, [seed] * reps))
    wall = time.perf_counter() - t0
    df = pd.DataFrame([row for part in parts for row in part])
    keys = ["kind", "parameter", "component", "feature"]
    summary = (
        df.groupby(keys, sort=False)
        .agg(
            true=("true", "first"),
            coverage=("covered", "mean"),
            mean_se=("se", "mean"),
            sd_estimate=("estimate", lambda v: float(np.std(v, ddof=1))),
            mean_width=("upper", "mean"),
            n_failed=("n_failed", "sum"),
            n_relabelled=("n_relabelled", "sum"),
        )
        .reset_index()
    )
    summary["mean_width"] = (
        df.assign(width=df["upper"] - df["lower"]).groupby(keys, sort=False)["width"].mean().values
    )
    summary["reps"] = reps
    summary["n_boot"] = n_boot
    summary["wall_s"] = round(wall, 1)
    print(f"\nCoverage of 95 % percentile intervals, R = {reps} data sets, B = {n_boot} draws")
    print(f"(N = {N}, K = 3, D = 2; wall {wall:.0f} s on {n_jobs} processes)")
    pooled = df.groupby(["kind", "parameter"])["covered"].mean().unstack()
    print(pooled.round(3).to_string())
    mcse = np.sqrt(0.95 * 0.05 / reps)
    print(f"(Monte Carlo SE of one entry's coverage: {mcse:.3f})")
    show = summary[["kind", "parameter", "component", "feature", "true", "coverage"]].copy()
    show["se/sd"] = summary["mean_se"] / summary["sd_estimate"]
    print(show.round(3).to_string(index=False))
    return summary


def _faithful() -> np.ndarray:
    return load_old_faithful()[["eruptions", "waiting"]].to_numpy(dtype=np.float64)


def part_faithful_lrt(n_boot: int, n_jobs: int, seed: int) -> pd.DataFrame:
    """``bootstrap_lrt`` on Old Faithful (tied) with both starts, next to mclust's."""
    X = _faithful()
    ref = None
    path = REFERENCE / "faithful_bootstrap_lrt.json"
    if path.exists():
        ref = json.loads(path.read_text())
    loglik_ref = None
    if (REFERENCE / "faithful_loglik.csv").exists():
        loglik_ref = pd.read_csv(REFERENCE / "faithful_loglik.csv").set_index("G")["EEE"]
    print(f"\nOld Faithful, tied (mclust EEE), max_components = 4, n_boot = {n_boot}")
    if shutil.which("Rscript"):
        print(f"(Rscript is on this machine; the mclust numbers are read from {path.name})")
    frames = []
    for start, setting, kwargs in RUNS:
        t0 = time.perf_counter()
        res = bootstrap_lrt(
            X,
            "tied",
            max_components=4,
            n_boot=n_boot,
            start=start,
            random_state=seed,
            n_jobs=n_jobs,
            estimator_kwargs=kwargs,
        )
        wall = time.perf_counter() - t0
        print(f"\nstart = {start!r}, {setting}: {wall:.0f} s on {n_jobs} processes")
        print(res)
        table = res.table.copy()
        table["start"] = start
        table["setting"] = setting
        table["wall_s"] = round(wall, 1)
        table["n_jobs"] = n_jobs
        table["loglik_null"] = [res.log_likelihoods[k] for k in table["n_components"]]
        table["loglik_alt"] = [res.log_likelihoods[k + 1] for k in table["n_components"]]
        if loglik_ref is not None:
            table["mclust_loglik_null"] = loglik_ref.loc[table["n_components"]].to_numpy()
            table["mclust_loglik_alt"] = loglik_ref.loc[table["n_components"] + 1].to_numpy()
        if ref is not None:
            table["mclust_lrts"] = ref["obs"][: len(table)]
            table["mclust_p_value"] = ref["p_value"][: len(table)]
            table["mclust_boot_mean"] = ref["boot_mean"][: len(table)]
            table["mclust_boot_q95"] = ref["boot_q95"][: len(table)]
        frames.append(table)
    out = pd.concat(frames, ignore_index=True)
    cols = ["start", "setting", "test", "lrts", "p_value", "boot_mean", "boot_q95"]
    cols += [c for c in out.columns if c.startswith("mclust_")]
    print("\nnext to mclust 6.0.0:")
    print(out[cols].round(4).to_string(index=False))
    return out


def part_faithful_se(n_boot: int, n_jobs: int, seed: int) -> pd.DataFrame:
    """``bootstrap_parameters`` of the 3-component tied fit, next to ``MclustBootstrap``."""
    X = _faithful()
    est = GaussianMixtureEM(
        3, covariance_type="tied", n_init=10, tol=1e-8, max_iter=5000, random_state=seed
    ).fit(X)
    path = REFERENCE / "faithful_bootstrap_se.json"
    ref = json.loads(path.read_text()) if path.exists() else None
    perm = np.arange(3)  # mclust's component k is our perm[k]
    if ref is not None:
        mean_ref = np.asarray(ref["fit"]["mean"])
        cost = ((mean_ref[:, None, :] - est.means_[None]) ** 2 / X.var(axis=0)).sum(-1)
        perm = linear_sum_assignment(cost)[1]
    rows = []
    print(
        f"\nOld Faithful, tied, K = 3: bootstrap SEs (n_boot = {n_boot}) next to MclustBootstrap"
    )
    runs = [(kind, "default", None) for kind in KINDS]
    runs += [(kind, "mclust tol", {"tol": MCLUST_TOL["tol"]}) for kind in KINDS]
    for kind, setting, kwargs in runs:
        t0 = time.perf_counter()
        res = bootstrap_parameters(
            est,
            X,
            n_boot=n_boot,
            kind=kind,
            random_state=seed,
            n_jobs=n_jobs,
            estimator_kwargs=kwargs,
        )
        wall = time.perf_counter() - t0
        for name, mname in (("w", "pro"), ("mu", "mean")):
            draws = res.draws[name][:, perm]
            se = draws.std(axis=0, ddof=1)
            lo, hi = np.quantile(draws, [0.025, 0.975], axis=0)
            for idx in np.ndindex(se.shape):
                row = {
                    "kind": kind,
                    "setting": setting,
                    "parameter": name,
                    "component": idx[0],
                    "feature": idx[1] if len(idx) > 1 else -1,
                    "estimate": res.estimate[name][perm][idx],
                    "se": se[idx],
                    "lower": lo[idx],
                    "upper": hi[idx],
                    "wall_s": round(wall, 1),
                }
                if ref is not None:
                    block = ref[MCLUST_KIND[kind]]
                    row["mclust_estimate"] = np.asarray(ref["fit"][mname])[idx]
                    row["mclust_se"] = np.asarray(block["se"][mname])[idx]
                    row["mclust_lower"] = np.asarray(block["ci_lower"][mname])[idx]
                    row["mclust_upper"] = np.asarray(block["ci_upper"][mname])[idx]
                rows.append(row)
    out = pd.DataFrame(rows)
    if ref is not None:
        out["se_ratio"] = out["se"] / out["mclust_se"]
    print(
        out.drop(columns=["lower", "upper", "mclust_lower", "mclust_upper"], errors="ignore")
        .round(4)
        .to_string(index=False)
    )
    if ref is not None:
        print("\nmedian SE / mclust's SE:")
        print(out.groupby(["setting", "kind"])["se_ratio"].median().round(3).to_string())
    return out


def main() -> None:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("all", "coverage", "faithful"), default="all")
    parser.add_argument("--quick", action="store_true", help="a small run (not written)")
    parser.add_argument("--reps", type=int, default=300)
    parser.add_argument("--boot", type=int, default=199, help="draws per interval (coverage)")
    parser.add_argument("--lrt-boot", type=int, default=999)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--out", type=Path, default=None, help="results folder")
    args = parser.parse_args()
    if args.quick:
        args.reps, args.boot, args.lrt_boot = 8, 49, 49
    out = args.out or (None if args.quick else RESULTS)
    commit = _commit()
    if args.part in ("all", "coverage"):
        table = part_coverage(args.reps, args.boot, args.n_jobs, args.seed)
        table["commit"] = commit
        if out is not None:
            table.round(6).to_csv(out / "bootstrap_coverage.csv", index=False)
    if args.part in ("all", "faithful"):
        lrt = part_faithful_lrt(args.lrt_boot, args.n_jobs, args.seed)
        se = part_faithful_se(args.lrt_boot, args.n_jobs, args.seed)
        lrt["commit"] = se["commit"] = commit
        if out is not None:
            lrt.round(6).to_csv(out / "bootstrap_faithful_lrt.csv", index=False)
            se.round(6).to_csv(out / "bootstrap_faithful_se.csv", index=False)


if __name__ == "__main__":
    main()
