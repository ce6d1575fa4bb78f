"""SQUAREM-accelerated EM (``accelerate="squarem"``) against plain EM, side by side.

For each problem both runs start from the same parameters and stop on the same ``tol`` (the
change of the objective per observation over one EM step). Printed per run: EM iterations
(evaluations of the EM map, rejected SQUAREM extrapolations included), accepted ones (the
length of ``lower_bounds_``), wall time of ``fit`` (median over ``--repeats``, the two methods
alternating) and the objective at the final parameters.

Problems:

1. ``death``: Hasselblad's (1969) death notices, K=2 Poisson, ``sample_weight`` = days, from
   the start of the R package SQUAREM's vignette (``setRNG`` Wichmann-Hill seed 123,
   ``p0 <- c(runif(1), runif(2, 0, 6))`` = (0.44629445, 5.34339807, 0.8713513): weight of
   component 1, its rate, the other rate), ``tol=1e-14``. The vignette stops when the
   parameter vector moves by less than 1e-8 (Euclidean norm) and reports 2,909 EM and 72
   SQUAREM evaluations. Our criterion is on the objective, whose changes reach rounding
   (about 4e-16 here) before the parameters settle; the script also replays plain EM with
   the vignette's criterion (public ``e_step``/``m_step``) and gives the largest parameter
   error against a direct optimisation of the 3-parameter log-likelihood (scipy BFGS).
2. ``faithful``: Old Faithful (272 x 2), K=2 Gaussian, full covariances, k-means++ start
   (``random_state=0``), ``tol=1e-10``.
3. ``sim10d``: ``make_gaussian_mixture(5000, 10, 10, separation=2.5, random_state=0)``
   (neighbouring means 2.5 standard deviations apart), K=10 full, k-means++ start
   (``random_state=0``), ``tol=1e-8``.

BLAS is limited to one thread (threadpoolctl; ``--threads 0`` leaves the pools as they are):
the development machine is a shared 2-core VM where two BLAS threads make timings erratic.

Usage::

    uv run python benchmarks/em_squarem.py
    uv run python benchmarks/em_squarem.py --repeats 3 --only death
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time
import warnings

import numpy as np
from scipy import optimize
from scipy.special import expit, logsumexp
from scipy.stats import poisson
from sklearn.exceptions import ConvergenceWarning

from bayesmix.data import load_death_notices, load_old_faithful, make_gaussian_mixture
from bayesmix.em import GaussianMixtureEM, PoissonMixtureEM

VIGNETTE_P0 = (0.44629445, 5.34339807, 0.8713513)
METHODS = (None, "squarem")


def death_notices():
    table = load_death_notices(expand=False)
    return table[["deaths"]].to_numpy(np.float64), table["days"].to_numpy(np.float64)


def set_vignette_start(est, X, days):
    """Checked data and settings, then the vignette's start in place of init_params'."""
    est.initialize(X, sample_weight=days)
    w1, rate1, rate2 = VIGNETTE_P0
    est.weights_ = np.array([w1, 1.0 - w1])
    est.means_ = np.array([[rate1], [rate2]])
    return est


def death_fit(accelerate):
    X, days = death_notices()
    est = PoissonMixtureEM(2, tol=1e-14, max_iter=100_000, warm_start=True, accelerate=accelerate)
    set_vignette_start(est, X, days)
    return est.fit(X, sample_weight=days), X, days


def death_mle():
    """(weight 1, rate 1, rate 2) maximising the log-likelihood, by BFGS on logit/log scale."""
    X, days = death_notices()
    x = X[:, 0]

    def minus_loglik(theta):
        w, rates = expit(theta[0]), np.exp(theta[1:])
        comp = np.stack([poisson.logpmf(x, r) for r in rates], axis=1) + np.log([w, 1 - w])
        log_p = logsumexp(comp, axis=1)
        resp = np.exp(comp - log_p[:, None])
        grad = [days @ (resp[:, 0] - w)] + [days @ (resp[:, k] * (x - rates[k])) for k in (0, 1)]
        return -days @ log_p, -np.array(grad)

    res = optimize.minimize(
        minus_loglik, [0.5, 1.0, 0.0], jac=True, method="BFGS", options={"gtol": 1e-9}
    )
    # BFGS stops with a gradient of about 1e-6; a root search on it gives the last digits
    theta = optimize.root(lambda t: minus_loglik(t)[1], res.x, tol=1e-14).x
    return np.array([expit(theta[0]), *np.exp(theta[1:])])


def vignette_criterion_iterations(max_iter=100_000):
    """Plain EM steps from the vignette's start until ||p_new - p|| < 1e-8, as R's fpiter."""
    X, days = death_notices()
    est = set_vignette_start(PoissonMixtureEM(2), X, days)
    p = np.array([est.weights_[0], *est.means_[:, 0]])
    for n_iter in range(1, max_iter + 1):
        est.m_step(X, est.e_step(X)[0], sample_weight=days)
        p_new = np.array([est.weights_[0], *est.means_[:, 0]])
        if np.linalg.norm(p_new - p) < 1e-8:
            return n_iter
        p = p_new
    return None


def faithful_fit(accelerate):
    X = load_old_faithful()[["eruptions", "waiting"]].to_numpy(np.float64)
    est = GaussianMixtureEM(2, tol=1e-10, max_iter=10_000, random_state=0, accelerate=accelerate)
    return est.fit(X), X, None


def sim10d_fit(accelerate):
    X, _, _ = make_gaussian_mixture(5000, 10, 10, separation=2.5, random_state=0)
    est = GaussianMixtureEM(10, tol=1e-8, max_iter=10_000, random_state=0, accelerate=accelerate)
    return est.fit(X), X, None


PROBLEMS = {"death": death_fit, "faithful": faithful_fit, "sim10d": sim10d_fit}


def run(name, repeats):
    fit = PROBLEMS[name]
    times = {m: [] for m in METHODS}
    last = {}
    for _ in range(repeats):
        for method in METHODS:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                start = time.perf_counter()
                est, X, w = fit(method)
                times[method].append(time.perf_counter() - start)
            last[method] = (est, X, w)
    rows = []
    for method in METHODS:
        est, X, w = last[method]
        row = {
            "problem": name,
            "method": method or "plain EM",
            "iterations": est.n_iter_,
            "accepted": len(est.lower_bounds_),
            "converged": est.converged_,
            "ms": 1e3 * float(np.median(times[method])),
            "objective": est.objective(X, sample_weight=w),
            "param_error": None,
        }
        if name == "death":
            fitted = np.array([est.weights_[0], *est.means_[:, 0]])
            row["param_error"] = float(np.abs(fitted - death_mle()).max())
        rows.append(row)
    return rows


def machine():
    from threadpoolctl import threadpool_info

    blas = ", ".join(
        f"{p.get('internal_api')} {p.get('version')} ({p.get('num_threads')} thread(s))"
        for p in threadpool_info()
        if p.get("user_api") == "blas"
    )
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return (
        f"{datetime.date.today().isoformat()}; {platform.platform()}; {os.cpu_count()} CPUs "
        f"({platform.processor() or platform.machine()}); Python {platform.python_version()}, "
        f"numpy {np.__version__}; BLAS: {blas}; load average {load}"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", choices=sorted(PROBLEMS), action="append")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads; 0: as they are")
    args = parser.parse_args()
    if args.threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
    print(machine())
    rows = [row for name in args.only or PROBLEMS for row in run(name, args.repeats)]
    print(
        "\n| problem | method | EM iterations | accepted | converged | ms (median) "
        "| final objective | max param. error |"
    )
    print("|---|---|---:|---:|---|---:|---:|---:|")
    for r in rows:
        error = "" if r["param_error"] is None else f"{r['param_error']:.1e}"
        print(
            f"| {r['problem']} | {r['method']} | {r['iterations']} | {r['accepted']} | "
            f"{r['converged']} | {r['ms']:.1f} | {r['objective']:.12f} | {error} |"
        )
    if args.only is None or "death" in args.only:
        n_iter = vignette_criterion_iterations()
        print(
            f"\nPlain EM replayed with the vignette's criterion (||p_new - p|| < 1e-8): "
            f"{n_iter} iterations (vignette: 2,909)."
        )


if __name__ == "__main__":
    main()
