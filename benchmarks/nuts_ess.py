"""NUTS efficiency of the bayesmix full-covariance mixture against plain PyMC formulations.

For each case the same model (same priors: Dirichlet weights, Normal means, HalfNormal
standard deviations, LKJ correlations, all scaled to the data) is built in three ways by
:func:`bayesmix.graphs.build_model`:

``custom``   bayesmix's ``CustomDist``: all components' whitened residuals from one matrix
             product, then a log-sum-exp (what bayesmix uses);
``mixture``  ``pm.Mixture`` over a list of K ``pm.MvNormal.dist`` components;
``batched``  ``pm.Mixture`` over one batched ``pm.MvNormal.dist``.

and sampled from the same MAP-EM start with nutpie's Numba callbacks (``nutpie``:
``nutpie.compile_pymc_model``, chains run without the GIL), with nutpie calling bayesmix's
compiled log density from Python (``nutpie-pyfunc``: no extra compilation, chains take turns
on the GIL; what ``sample_nuts`` uses for small runs, see
``CompiledMixture.nutpie_backend``), and with PyMC's own NUTS. Reported per
(case, formulation, sampler):

* ``grad_ms``: median seconds per log-density+gradient evaluation (Numba, fastmath off, the
  function NUTS differentiates, timed in blocks of calls; run with one BLAS thread);
* ``compile_s``: wall time of compiling the sampler's model (nutpie: ``compile_pymc_model``;
  nutpie-pyfunc: wrapping the already compiled log density, plus the expand function;
  pymc: everything in ``pm.sample`` before the first draw);
* ``sample_s``: sampling wall time (tuning included), the median over ``--repeats`` runs
  with the same seed (the same draws);
* ``min_ess_bulk``: the smallest bulk ESS over ``w``, ``mu``, ``sigma`` and the
  off-diagonal ``corr`` entries, after :func:`bayesmix.results.relabel` (pivot method,
  EM reference);
* ``ess_per_s`` = min_ess_bulk / sample_s; ``divergences``.

Usage::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 uv run python benchmarks/nuts_ess.py --quick
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 uv run python benchmarks/nuts_ess.py \\
        --cases sim10 --samplers nutpie --chains 4 --draws 1000 --tune 1000

``--grad-only`` skips sampling. Results are printed as a Markdown table and, with
``--json PATH``, written as JSON lines.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
import warnings

import numpy as np
import xarray as xr

from bayesmix.config import ModelSpec
from bayesmix.data import load_old_faithful, make_gaussian_mixture
from bayesmix.graphs import point_to_initvals
from bayesmix.inference import fit_em, get_compiled
from bayesmix.inference._tree import point_from_group
from bayesmix.results import relabel

FORMULATIONS = ("custom", "mixture", "batched")
SAMPLERS = ("nutpie", "nutpie-pyfunc", "pymc")


def load_case(name: str) -> tuple[np.ndarray, ModelSpec]:
    """Data and spec of a case: ``faithful``, ``sim5``, ``sim10``, ``wide6`` or ``heavy1d``.

    ``wide6``: 5,000 x 6, K = 4 (issue 17's wide CSV); ``heavy1d``: 1,000 draws of two
    Student-t (3 degrees of freedom) groups fitted by a 1-D K = 2 Gaussian mixture.
    """
    if name == "faithful":
        return load_old_faithful().to_numpy(float), ModelSpec("gaussian", 2, "full")
    if name == "wide6":
        X, _, _ = make_gaussian_mixture(5_000, 4, 6, separation=4.0, random_state=7)
        return X, ModelSpec("gaussian", 4, "full")
    if name == "heavy1d":
        rng = np.random.default_rng(7)
        x = np.r_[rng.standard_t(3, 600) - 3.0, 0.7 * rng.standard_t(3, 400) + 3.0]
        return x[:, None], ModelSpec("gaussian", 2, "full")
    d, k = {"sim5": (5, 3), "sim10": (10, 5)}[name]
    X, _, _ = make_gaussian_mixture(10_000, k, d, separation=5.0, random_state=0)
    return X, ModelSpec("gaussian", k, "full")


def grad_time(cm, x0: np.ndarray, repeats: int = 7, min_block: float = 0.2) -> float:
    """Median seconds per logp+gradient call over ``repeats`` blocks of calls."""
    cm.logp_grad(x0, jacobian=True)
    n = 1
    while True:
        t = time.perf_counter()
        for _ in range(n):
            cm.logp_grad(x0, jacobian=True)
        if time.perf_counter() - t > min_block / 4:
            break
        n *= 2
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(n):
            cm.logp_grad(x0, jacobian=True)
        out.append((time.perf_counter() - t) / n)
    return float(np.median(out))


def min_bulk_ess(tree: xr.DataTree) -> float:
    """Smallest bulk ESS over w, mu, sigma and the off-diagonal corr, after relabelling."""
    import arviz as az

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        aligned = relabel(tree, method="pivot", reference="em")
    post = aligned["posterior"].to_dataset()
    ds = post[["w", "mu", "sigma"]]
    if "corr" in post:
        d = post.sizes["feature"]
        i, j = np.tril_indices(d, -1)
        c = post["corr"].values[..., i, j]  # (chain, draw, component, pair)
        ds = ds.assign(corr_offdiag=(("chain", "draw", "component", "pair"), c))
    ess = az.ess(ds, method="bulk")
    return float(min(np.nanmin(ess[v].values) for v in ess.data_vars))


def posterior_tree(em_tree: xr.DataTree, post: xr.Dataset, names: list[str]) -> xr.DataTree:
    keep = [v for v in ("w", "mu", "sigma", "cov", "corr") if v in post]
    ds = post[keep].assign_coords(feature=names, feature_bis=names)
    tree = em_tree.copy()
    tree["posterior"] = xr.DataTree(ds)
    return tree


def run_one(case, formulation, samplers, args, X, spec, em_tree):
    import pymc as pm

    names = [f"x{j}" for j in range(X.shape[1])]
    cm = get_compiled(spec, X, formulation=formulation)
    init = point_to_initvals(spec, point_from_group(em_tree, "em"), X.shape[1])
    x0 = cm.to_unconstrained(init)
    t = time.perf_counter()
    cm.logp_grad(x0)
    rows = []
    base = {
        "case": case,
        "N": X.shape[0],
        "D": X.shape[1],
        "K": spec.n_components,
        "formulation": formulation,
        "grad_compile_s": time.perf_counter() - t,
        "grad_ms": 1e3 * grad_time(cm, x0),
        # the nutpie route sample_nuts would take for this run
        "default_route": cm.nutpie_backend(args.chains * (args.draws + args.tune) * 16),
    }
    print(json.dumps(base), flush=True)
    for sampler in samplers:
        row = dict(base, sampler=sampler)
        if sampler.startswith("nutpie"):
            import nutpie

            backend = "pyfunc" if sampler == "nutpie-pyfunc" else "numba"
            t = time.perf_counter()
            compiled = cm.nutpie_model(x0, jitter=0.1, backend=backend)
            row["compile_s"] = time.perf_counter() - t
            times = []
            for _ in range(args.repeats):  # same seed: the same draws, only the time varies
                t = time.perf_counter()
                trace = nutpie.sample(
                    compiled,
                    draws=args.draws,
                    tune=args.tune,
                    chains=args.chains,
                    cores=args.cores,
                    seed=args.seed,
                    progress_bar=False,
                    target_accept=0.9,
                )
                times.append(time.perf_counter() - t)
            row["sample_s"] = float(np.median(times))
        else:
            logging.getLogger("pymc").setLevel(logging.ERROR)
            times, totals = [], []
            for _ in range(args.repeats):
                t = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    trace = pm.sample(
                        draws=args.draws,
                        tune=args.tune,
                        chains=args.chains,
                        cores=args.cores,
                        random_seed=args.seed,
                        initvals=init,
                        init="adapt_diag",
                        nuts_sampler="pymc",
                        target_accept=0.9,
                        progressbar=False,
                        model=cm.model,
                        compute_convergence_checks=False,
                    )
                totals.append(time.perf_counter() - t)
                times.append(float(trace["posterior"].attrs["sampling_time"]))
            row["sample_s"] = float(np.median(times))
            row["compile_s"] = totals[0] - times[0]
        post = trace["posterior"].to_dataset()
        stats = trace["sample_stats"].to_dataset()
        row["divergences"] = int(stats["diverging"].sum())
        row["min_ess_bulk"] = min_bulk_ess(posterior_tree(em_tree, post, names))
        row["ess_per_s"] = row["min_ess_bulk"] / row["sample_s"]
        row["draws"] = f"{args.chains}x{args.draws} (tune {args.tune}, {args.cores} cores)"
        row["repeats"] = args.repeats
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows or [base]


def markdown(rows: list[dict]) -> str:
    head = (
        "| case | formulation | sampler | grad ms | compile s | sample s | min bulk ESS "
        "| ESS/s | divergences |\n|---|---|---|---|---|---|---|---|---|"
    )
    out = [head]
    for r in rows:
        out.append(
            f"| {r['case']} (N={r['N']}, D={r['D']}, K={r['K']}) | {r['formulation']} | "
            f"{r.get('sampler', '-')} | {r['grad_ms']:.3f} | {r.get('compile_s', 0):.1f} | "
            f"{r.get('sample_s', float('nan')):.1f} | {r.get('min_ess_bulk', float('nan')):.0f} "
            f"| {r.get('ess_per_s', float('nan')):.1f} | {r.get('divergences', '-')} |"
        )
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", nargs="+", default=["faithful", "sim5", "sim10"])
    ap.add_argument("--formulations", nargs="+", default=list(FORMULATIONS))
    ap.add_argument("--samplers", nargs="+", default=list(SAMPLERS))
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=1, help="sampling runs; median time")
    ap.add_argument("--quick", action="store_true", help="2 chains x 300 draws, tune 300")
    ap.add_argument("--grad-only", action="store_true", help="gradient timings only")
    ap.add_argument("--json", help="append result rows to this JSON-lines file")
    args = ap.parse_args()
    if args.quick:
        args.chains, args.draws, args.tune = 2, 300, 300
    samplers = [] if args.grad_only else args.samplers

    import nutpie
    import pymc as pm

    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load {os.getloadavg()[0]:.1f}; pymc {pm.__version__}, nutpie {nutpie.__version__}; "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}",
        flush=True,
    )
    rows = []
    for case in args.cases:
        X, spec = load_case(case)
        em_tree = fit_em(spec, X, random_state=0)
        for formulation in args.formulations:
            for row in run_one(case, formulation, samplers, args, X, spec, em_tree):
                rows.append(row)
                if args.json:
                    with open(args.json, "a") as fh:
                        fh.write(json.dumps(row) + "\n")
    print(markdown(rows))


if __name__ == "__main__":
    main()
