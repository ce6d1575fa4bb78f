"""Marginal likelihoods log p(y | K) on the galaxy data, against independent estimates (issue 15).

Acceptance 1 (``--part check``): the galaxy velocities in 1000 km/s, mu_k ~ N(20, 15^2),
sigma_k^2 ~ InverseGamma(2, 10) (shape, scale), weights ~ Dirichlet(1, ..., 1); unequal
(``diag``) and equal (``tied``) variances. For K = 1..6 the bridge-sampling estimate of
:func:`bayesmix.results.evidence.log_evidence`; for K = 1 and 2 a brute-force estimate, the
log of the mean likelihood over 1e7 prior draws (NumPy, in chunks; standard error by the delta
method on the mean of the likelihood ratios); for K = 3 importance sampling with a defensive
multivariate-t proposal (``method="importance"``). Checks: |bridge - reference| < 3 combined
SEs, bridge SE <= 0.3 nats for K <= 6.

Acceptance 3 (``--part rg``): Richardson & Green's (1997) prior, mu_k ~ N(midrange, R^2),
sigma_k^2 ~ InverseGamma(2, beta), beta ~ Gamma(0.2, 10 / R^2) (shape, rate), Dirichlet(1),
K uniform: p(K | y) for K = 1..12 (normalised over 1..12) with standard errors, next to the
telescope package's vignette (Fruehwirth-Schnatter, Malsiner-Walli & Gruen; the same prior with
K uniform on 1..30) and Richardson & Green's reversible-jump estimate.

When the inverse-gamma prior is not in the PyMC graphs (``--prior half_normal``, or it fails to
build), part ``check`` runs with sigma_k ~ HalfNormal(5) instead, and says so in the CSV.

Usage::

    nice uv run python validation/marginal_likelihood.py --part check
    nice uv run python validation/marginal_likelihood.py --part rg

Writes ``validation/results/marginal_likelihood_check.csv`` and
``validation/results/marginal_likelihood_rg.csv`` and prints them.
"""

from __future__ import annotations

import argparse
import math
import platform
import subprocess
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from bayesmix.config import ModelSpec, PriorSpec
from bayesmix.results.evidence import importance_estimate, log_evidence, posterior_k

RESULTS = Path(__file__).parent / "results"

# telescope 0.2-0, vignette "Bayesian univariate Gaussian mixtures", galaxy data with
# Richardson & Green's prior, e0 = 1, K ~ U{1..30}: round(p_K[1:12], 2)
TELESCOPE = [0.00, 0.00, 0.05, 0.15, 0.21, 0.20, 0.16, 0.11, 0.06, 0.03, 0.02, 0.01]
# Richardson & Green (1997), galaxy data (reversible jump, K ~ U{1..30}), as quoted by the sBIC
# package's galaxies vignette (post.MCMC; Drton & Plummer 2017, JRSS B, Fig. 7)
RICHARDSON_GREEN = [0.000, 0.000, 0.061, 0.128, 0.182, 0.199, 0.160, 0.109, 0.071, 0.040,
                    0.023, 0.013]  # fmt: skip


def galaxies() -> np.ndarray:
    """The 82 velocities in 1000 km/s (Richardson & Green's version)."""
    from bayesmix.data import load_galaxies

    df = load_galaxies()
    x = np.asarray(df.iloc[:, 0], float)
    return x / 1000.0 if x.max() > 1000 else x


# ---------------------------------------------------------------------------------------------
# brute force: the mean likelihood over prior draws


def brute_force(y, k, n_draws, *, tied, prior, seed, chunk=50_000):
    """Log of the mean likelihood over ``n_draws`` prior draws, its SE and the weights' ESS."""
    rng = np.random.default_rng(seed)
    out = []
    for start in range(0, n_draws, chunk):
        m = min(chunk, n_draws - start)
        w = rng.dirichlet(np.ones(k), size=m)
        mu = rng.normal(20.0, 15.0, size=(m, k))
        n_sd = 1 if tied else k
        if prior == "inverse_gamma":
            sd = np.sqrt(10.0 / rng.gamma(2.0, 1.0, size=(m, n_sd)))  # sigma^2 ~ IG(2, 10)
        else:
            sd = np.abs(rng.normal(0.0, 5.0, size=(m, n_sd)))
        sd = np.broadcast_to(sd, (m, k))
        z = (y[None, :, None] - mu[:, None, :]) / sd[:, None, :]  # (m, n, k)
        comp = -0.5 * z * z - np.log(sd)[:, None, :] - 0.5 * math.log(2 * math.pi)
        a = np.log(w)[:, None, :] + comp
        amax = a.max(axis=-1)
        ll = amax + np.log(np.exp(a - amax[..., None]).sum(axis=-1))
        out.append(ll.sum(axis=1))
    return importance_estimate(np.concatenate(out))


# ---------------------------------------------------------------------------------------------


def check_spec(k, covariance, prior):
    """Acceptance 1's model with K components (``prior``: the variances' prior)."""
    if prior == "inverse_gamma":
        priors = PriorSpec(
            mu_loc=20.0,
            mu_scale=15.0,
            variance="inverse_gamma",
            variance_alpha=2.0,
            variance_beta=10.0,
            weights_alpha=1.0,
        )
    else:
        priors = PriorSpec(mu_loc=20.0, mu_scale=15.0, sigma_scale=5.0, weights_alpha=1.0)
    return ModelSpec(family="gaussian", n_components=k, covariance=covariance, priors=priors)


def rg_spec(k, y):
    """Richardson & Green's (1997) model with K components for the data ``y``."""
    r = float(y.max() - y.min())
    priors = PriorSpec(
        mu_loc=float(y.max() + y.min()) / 2.0,
        mu_scale=r,
        variance="inverse_gamma",
        variance_alpha=2.0,
        variance_beta_prior=(0.2, 10.0 / r**2),
        weights_alpha=1.0,
    )
    return ModelSpec(family="gaussian", n_components=k, covariance="diag", priors=priors)


def _graph_supports(spec, y) -> bool:
    from bayesmix.graphs import build_model

    try:
        build_model(spec, y[:, None])
    except Exception as exc:  # noqa: BLE001 - any failure means: not available yet
        print(f"the inverse-gamma prior does not build ({type(exc).__name__}: {exc})")
        return False
    return True


def _row(res, **extra):
    d = res.to_dict()
    d.update(extra)
    return d


def part_check(args, y) -> pd.DataFrame:
    """Acceptance 1: bridge sampling against brute force (K <= 2) and importance sampling."""
    prior = args.prior
    if prior == "inverse_gamma" and not _graph_supports(check_spec(2, "tied", prior), y):
        prior = "half_normal"
    rows = []
    nuts = {"draws": args.draws, "tune": args.tune, "chains": args.chains}
    for covariance in ("diag", "tied"):
        for k in range(1, args.k_max + 1):
            spec = check_spec(k, covariance, prior)
            res = log_evidence(spec, y[:, None], random_seed=100 + k, **nuts)
            ref = {"reference": "", "ref_log_evidence": np.nan, "ref_se": np.nan}
            if k <= 2:
                t0 = time.perf_counter()
                lz, se, ess = brute_force(
                    y, k, args.brute_draws, tied=covariance == "tied", prior=prior, seed=k
                )
                ref = {
                    "reference": f"brute force ({args.brute_draws:.0e} prior draws)",
                    "ref_log_evidence": lz,
                    "ref_se": se,
                    "ref_ess": ess,
                    "ref_seconds": time.perf_counter() - t0,
                }
            elif k == 3:
                other = log_evidence(
                    spec, y[:, None], random_seed=300 + k, method="importance", **nuts
                )
                ref = {
                    "reference": f"importance sampling, multivariate t ({other.n_proposal} draws)",
                    "ref_log_evidence": other.log_evidence,
                    "ref_se": other.se,
                    "ref_ess": other.ess_proposal,
                    "ref_seconds": other.seconds,
                }
            row = _row(res, covariance=covariance, prior=prior, **ref)
            if np.isfinite(row["ref_log_evidence"]):
                comb = math.hypot(res.se, row["ref_se"])
                row["z"] = (res.log_evidence - row["ref_log_evidence"]) / comb
                row["agrees"] = abs(row["z"]) < 3
            row["se_ok"] = res.se <= 0.3
            rows.append(row)
            print(pd.DataFrame([row]).to_string(index=False), flush=True)
    return pd.DataFrame(rows)


def part_rg(args, y) -> pd.DataFrame:
    """Acceptance 3: p(K | y), K = 1..k_max, under Richardson & Green's prior."""
    rows = []
    nuts = {"draws": args.draws, "tune": args.tune, "chains": args.chains}
    for k in range(1, args.k_max + 1):
        res = log_evidence(rg_spec(k, y), y[:, None], random_seed=200 + k, **nuts)
        rows.append(_row(res))
        print(pd.DataFrame([rows[-1]]).to_string(index=False), flush=True)
    table = pd.DataFrame(rows)
    post = posterior_k(table)
    table = table.merge(post.drop(columns=["log_evidence"]), left_on="n_components", right_on="k")
    n = len(table)
    table["p_k_telescope"] = TELESCOPE[:n]
    table["p_k_richardson_green"] = RICHARDSON_GREEN[:n]
    return table


def main() -> None:
    """Run one part and write its CSV."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("check", "rg"), required=True)
    ap.add_argument("--prior", choices=("inverse_gamma", "half_normal"), default="inverse_gamma")
    ap.add_argument("--k-max", type=int, default=None)
    ap.add_argument("--draws", type=int, default=4000)
    ap.add_argument("--tune", type=int, default=1000)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--brute-draws", type=int, default=10_000_000)
    args = ap.parse_args()
    if args.k_max is None:
        args.k_max = 6 if args.part == "check" else 12
    warnings.filterwarnings("ignore", category=UserWarning)
    y = galaxies()
    t0 = time.perf_counter()
    table = part_check(args, y) if args.part == "check" else part_rg(args, y)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    table["commit"] = commit
    table["machine"] = f"{platform.machine()} {platform.processor() or ''}".strip()
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"marginal_likelihood_{args.part}.csv"
    table.to_csv(path, index=False, float_format="%.6g")
    with pd.option_context("display.width", 200, "display.max_columns", 40):
        print(table)
    print(f"wrote {path} in {time.perf_counter() - t0:.0f} s at commit {commit}")


if __name__ == "__main__":
    main()
