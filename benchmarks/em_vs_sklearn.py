"""Speed and memory of bayesmix.em.GaussianMixtureEM against sklearn.mixture.GaussianMixture.

Both start from the same initial parameters (weights_init, means_init, precisions_init) and run
a fixed number of EM iterations (sklearn tol=0; ours tol=1e-300, i.e. stop only on an exactly
zero change). Runs of the two alternate in one process; the time per iteration is the median
over repeats of (fit time) / (iterations). Peak memory is measured in separate runs with
tracemalloc (NumPy reports its allocations to it), excluding the data array itself.

Usage::

    uv run python benchmarks/em_vs_sklearn.py --quick
    uv run python benchmarks/em_vs_sklearn.py --cell 100000,10,10,full
    uv run python benchmarks/em_vs_sklearn.py            # the full grid (slow, N up to 1e6)
    uv run python benchmarks/em_vs_sklearn.py --big 10000000   # peak memory of our fit only

Threading policy: BLAS is limited to ONE thread for both sides by default (threadpoolctl,
``--threads 1``), i.e. we compare single-core implementations. On the 2-core development
machine, shared with other jobs, OpenBLAS splitting small products over 2 threads stalls
for ~15 ms now and then and makes the as-is timings erratic for both sides. ``--threads 0``
leaves the thread pools as they are (then both sides use the same pools). The BLAS library,
its kernel (``architecture`` from threadpoolctl, which OPENBLAS_CORETYPE may force) and the
thread counts are printed.

``--big N`` runs only our estimator on N rows (D=10, K=10, full, 3 iterations) and reports
the tracemalloc peak (allocations made by the fit, data excluded) and the process's maximum
resident set size (data included); the data are generated in pieces so that generation
itself does not raise the peak.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import os
import platform
import resource
import time
import tracemalloc
import warnings

import numpy as np
import sklearn
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

from bayesmix.em import GaussianMixtureEM

FULL_GRID = {
    "n": [10_000, 100_000, 1_000_000],
    "d": [2, 10, 50],
    "k": [3, 10],
    "cov": ["full", "diag"],
}
QUICK_GRID = {"n": [10_000], "d": [2, 10], "k": [3, 10], "cov": ["full", "diag"]}


def make_problem(n, d, k, covariance_type, seed=0):
    """Data from a random K-component mixture and shared initial parameters."""
    rng = np.random.default_rng(seed)
    # overlapping components, so that EM is still moving after the fixed number of iterations
    # (centre distances of about 4 standard deviations in any dimension)
    centres = rng.normal(scale=3.0 / np.sqrt(d), size=(k, d))
    X = np.empty((n, d))
    piece = 1 << 18
    for start in range(0, n, piece):  # in pieces: no N x D temporaries besides X
        rows = X[start : start + piece]
        rng.standard_normal(out=rows)
        rows += centres[rng.integers(k, size=len(rows))]
    means = X[rng.choice(n, size=k, replace=False)]
    mean = X.mean(axis=0)
    var = sum(((X[i : i + piece] - mean) ** 2).sum(axis=0) for i in range(0, n, piece)) / n
    if covariance_type == "full":
        prec = np.repeat(np.diag(1.0 / var)[None], k, axis=0)
    else:
        prec = np.repeat((1.0 / var)[None], k, axis=0)
    init = {"weights_init": np.full(k, 1.0 / k), "means_init": means, "precisions_init": prec}
    return X, init


def build(kind, k, covariance_type, n_iter, init):
    common = {"covariance_type": covariance_type, "max_iter": n_iter, "reg_covar": 1e-6, **init}
    if kind == "ours":
        return GaussianMixtureEM(k, tol=1e-300, **common)
    return GaussianMixture(k, tol=0.0, **common)


def timed_fit(model, X):
    gc.collect()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        model.fit(X)
        elapsed = time.perf_counter() - start
    return elapsed / model.n_iter_, model


def peak_memory(model, X):
    gc.collect()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        tracemalloc.start()
        model.fit(X)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak


def big_memory(n, d=10, k=10, n_iter=3):
    """Our fit on N rows: tracemalloc peak (data excluded) and the process's max RSS."""
    X, init = make_problem(n, d, k, "full")
    model = build("ours", k, "full", n_iter, init)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    start = time.perf_counter()
    peak = peak_memory(model, X)
    elapsed = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(
        f"N={n} D={d} K={k} full, {n_iter} iterations: data {X.nbytes / 2**30:.2f} GiB, "
        f"fit allocations peak {peak / 2**20:.1f} MiB, process max RSS {rss_before:.2f} GiB "
        f"before the fit (data made) and {rss:.2f} GiB after, "
        f"{1e3 * elapsed / n_iter:.0f} ms/iteration (with tracemalloc on)"
    )


def run_cell(n, d, k, covariance_type, n_iter, repeats, memory=True):
    X, init = make_problem(n, d, k, covariance_type)
    times = {"ours": [], "sklearn": []}
    models = {}
    for _ in range(repeats):
        for kind in ("ours", "sklearn"):  # alternate
            t, models[kind] = timed_fit(build(kind, k, covariance_type, n_iter, init), X)
            times[kind].append(t)
    t_ours, t_sk = np.median(times["ours"]), np.median(times["sklearn"])
    lb_ours, lb_sk = models["ours"].lower_bound_, models["sklearn"].lower_bound_
    row = {
        "n": n,
        "d": d,
        "k": k,
        "cov": covariance_type,
        "ms_ours": 1e3 * t_ours,
        "ms_sklearn": 1e3 * t_sk,
        "time_ratio": t_ours / t_sk,
        "loglik_rel_diff": abs(lb_ours - lb_sk) / abs(lb_sk),
        "iters": f"{models['ours'].n_iter_}/{models['sklearn'].n_iter_}",
    }
    if memory:
        m_ours = peak_memory(build("ours", k, covariance_type, 2, init), X)
        m_sk = peak_memory(build("sklearn", k, covariance_type, 2, init), X)
        row.update(mb_ours=m_ours / 2**20, mb_sklearn=m_sk / 2**20, mem_ratio=m_ours / m_sk)
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small grid (N=1e4)")
    parser.add_argument(
        "--cell", action="append", default=[], help="one cell N,D,K,COV (repeatable)"
    )
    parser.add_argument("--n-iter", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="BLAS threads for both sides (threadpoolctl); 0: leave the pools as they are",
    )
    parser.add_argument("--big", type=float, default=None, help="peak memory of our fit at N")
    parser.add_argument(
        "--n", type=float, action="append", default=[], help="full grid restricted to these N"
    )
    args = parser.parse_args(argv)
    from threadpoolctl import threadpool_info, threadpool_limits

    if args.threads:
        threadpool_limits(args.threads)

    cells = []
    if args.quick:
        g = QUICK_GRID
        cells += list(itertools.product(g["n"], g["d"], g["k"], g["cov"]))
    for text in args.cell:
        n, d, k, cov = text.split(",")
        cells.append((int(float(n)), int(d), int(k), cov))
    if not cells:
        g = FULL_GRID
        sizes = [int(n) for n in args.n] or g["n"]
        cells = list(itertools.product(sizes, g["d"], g["k"], g["cov"]))

    env = {
        v: os.environ.get(v)
        for v in (
            "OPENBLAS_CORETYPE",
            "OPENBLAS_L2_SIZE",
            "OPENBLAS_NUM_THREADS",
            "OMP_NUM_THREADS",
        )
    }
    pools = [
        f"{p['internal_api']} {p.get('version')} kernel={p.get('architecture')} "
        f"threads={p['num_threads']}"
        for p in threadpool_info()
        if p["user_api"] == "blas"
    ]
    print(
        f"environment: {env}; BLAS: {pools}; thread limit: {args.threads or 'as-is'}; "
        f"{os.cpu_count()} CPUs; {platform.processor() or platform.machine()}; "
        f"numpy {np.__version__}, scikit-learn {sklearn.__version__}"
    )
    if args.big:
        big_memory(int(args.big))
        return
    header = (
        f"{'N':>8} {'D':>3} {'K':>3} {'cov':>5} | {'ms/it ours':>10} {'ms/it skl':>10} "
        f"{'time ratio':>10} | {'MB ours':>8} {'MB skl':>8} {'mem ratio':>9} | loglik rel diff"
        " | iterations"
    )
    print(header)
    print("-" * len(header))
    for n, d, k, cov in cells:
        r = run_cell(n, d, k, cov, args.n_iter, args.repeats, memory=not args.no_memory)
        mem = (
            f"{r['mb_ours']:8.1f} {r['mb_sklearn']:8.1f} {r['mem_ratio']:9.2f}"
            if "mem_ratio" in r
            else f"{'-':>8} {'-':>8} {'-':>9}"
        )
        print(
            f"{n:>8} {d:>3} {k:>3} {cov:>5} | {r['ms_ours']:10.2f} {r['ms_sklearn']:10.2f} "
            f"{r['time_ratio']:10.2f} | {mem} | {r['loglik_rel_diff']:15.1e} | {r['iters']}",
            flush=True,
        )


if __name__ == "__main__":
    main()
