"""Sparse finite and DP mixtures on simulated data with known K: the mode of K+ against it.

Issue 15, acceptance 2.

Settings: 1-D K = 3 and 2-D K = 4 (diagonal covariances), N = 300 and 1000, seeds 0..9; for
each, a sparse mixture (K_max = 10, the spec's default e0 = 0.01) and a DP mixture (truncated
at 10; ``dp_g120``: alpha ~ Gamma(1, 20), matched to a sparse mixture with e0 ~ Gamma(1, 200);
``dp_g24``: Escobar & West's Gamma(2, 4); ``dp``: the spec default Gamma(1, 1)), NUTS 2 chains
x 500 draws after 500 tuning steps, started at the MAP-EM solution. K+ is counted on
allocation draws (one per posterior draw, ``bayesmix.results.partition``); its mode is
compared with the truth.

Run (about an hour on 2 cores; each row is appended as soon as it is done, so a run can be
resumed with ``--resume``)::

    nice uv run python validation/sparse_dp_known_k.py [--part 1d|2d|all] [--seeds 10]
        [--n 300 1000] [--priors sparse dp_g120 dp_g24 dp] [--out FILE] [--resume]

Writes ``validation/results/sparse_dp_known_k.csv`` (one row per fit) and prints the table
of seeds whose mode of K+ equals the truth.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from bayesmix import _math
from bayesmix.config import ModelSpec, PriorSpec
from bayesmix.inference import sample_nuts
from bayesmix.results.partition import kplus_posterior

OUT = Path(__file__).parent / "results" / "sparse_dp_known_k.csv"
K_MAX = 10
SETTINGS = {
    "1d": {
        "w": np.array([0.3, 0.4, 0.3]),
        "mu": np.array([[-4.0], [0.0], [4.0]]),
        "sigma": np.array([[1.0], [1.0], [1.0]]),
    },
    "2d": {
        "w": np.array([0.25, 0.25, 0.25, 0.25]),
        "mu": np.array([[-3.0, -3.0], [-3.0, 3.0], [3.0, -3.0], [3.0, 3.0]]),
        "sigma": np.array([[1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [1.0, 1.0]]),
    },
}
PRIORS = {
    "sparse": PriorSpec(weights="sparse"),
    "dp": PriorSpec(weights="dp"),
    # Escobar & West's (1995) prior on the DP concentration for the galaxy data: mean 0.5
    "dp_g24": PriorSpec(weights="dp", dp_alpha_prior=(2.0, 4.0)),
    # matched to a sparse finite mixture with e0 ~ Gamma(1, 200) (Malsiner-Walli et al. 2016):
    # Dirichlet(e0, ..., e0) on K components tends to a DP with alpha = K e0, so
    # alpha ~ Gamma(1, 200 / K) = Gamma(1, 20) for K = 10 (Fruehwirth-Schnatter &
    # Malsiner-Walli 2019, "From here to infinity")
    "dp_g120": PriorSpec(weights="dp", dp_alpha_prior=(1.0, 20.0)),
}


def one_fit(setting: str, n: int, seed: int, prior: str) -> dict:
    """Simulate one data set, fit it by NUTS and summarise the posterior of K+ (one row)."""
    truth = SETTINGS[setting]
    X, _ = _math.sample_mixture(truth, n, "gaussian", np.random.default_rng(seed))
    spec = ModelSpec("gaussian", K_MAX, "diag", priors=PRIORS[prior])
    t = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tree = sample_nuts(
            spec, X, draws=500, tune=500, chains=2, random_seed=seed, log_likelihood=False
        )
    seconds = time.perf_counter() - t
    pk = kplus_posterior(tree, random_seed=seed)
    k_true = len(truth["w"])
    post = tree["posterior"]
    hyper = "e0" if "e0" in post else ("dp_alpha" if "dp_alpha" in post else None)
    return {
        "setting": setting,
        "n": n,
        "seed": seed,
        "prior": prior,
        "k_true": k_true,
        "kplus_mode": int(pk.attrs["mode"]),
        "p_true": float(pk.get(k_true, 0.0)),
        "p_mode": float(pk.max()),
        "mean_kplus": float((pk.index.to_numpy() * pk.to_numpy()).sum()),
        "hyper_mean": float(post[hyper].mean()) if hyper else np.nan,
        "last_weight": float(post["w"].isel(component=-1).mean()),
        "divergences": int(tree["sample_stats"]["diverging"].sum()),
        "warnings": "; ".join(sorted({w.category.__name__ for w in caught})),
        "seconds": round(seconds, 1),
        "commit": _commit(),
    }


def rows_done(out: Path, resume: bool, key: tuple[str, ...]) -> set:
    """Keys of the rows already in ``out`` (``resume``), else remove ``out``; make its folder."""
    done = set()
    if resume and out.exists():
        old = pd.read_csv(out, dtype={"commit": str})
        done = set(zip(*(old[c] for c in key), strict=True))
    elif out.exists():
        out.unlink()
    out.parent.mkdir(parents=True, exist_ok=True)
    return done


def _commit() -> str:
    import subprocess

    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> None:
    """Run the settings (appending rows to the CSV) and print the summary table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("1d", "2d", "all"), default="all")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--n", type=int, nargs="*", default=[300, 1000])
    ap.add_argument("--priors", nargs="*", choices=list(PRIORS), default=["sparse", "dp_g120"])
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    parts = ("1d", "2d") if args.part == "all" else (args.part,)
    done = rows_done(args.out, args.resume, ("setting", "n", "seed", "prior"))
    for setting in parts:
        for n in args.n:
            for seed in range(args.seeds):
                for prior in args.priors:
                    if (setting, n, seed, prior) in done:
                        continue
                    row = one_fit(setting, n, seed, prior)
                    print(row, flush=True)
                    pd.DataFrame([row]).to_csv(
                        args.out, mode="a", header=not args.out.exists(), index=False
                    )
    res = pd.read_csv(args.out)
    res["correct"] = res["kplus_mode"] == res["k_true"]
    table = res.groupby(["setting", "n", "prior"]).agg(
        seeds=("seed", "size"),
        mode_correct=("correct", "sum"),
        mean_p_true=("p_true", "mean"),
        divergences=("divergences", "sum"),
        seconds=("seconds", "mean"),
    )
    print(table.to_string())


if __name__ == "__main__":
    main()
