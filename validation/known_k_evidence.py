"""The argmax of p(K | y) on simulated data with known K (issue 15, acceptance 2, second half).

The data sets of ``sparse_dp_known_k.py`` (1-D K = 3 and 2-D K = 4, diagonal covariances,
N = 300 and 1000, seeds 0..9, the same simulation): for K = 1 .. K_true + 2 the marginal
likelihood log p(y | K) of a finite mixture (``ModelSpec("gaussian", K, "diag")``, Dirichlet(1)
weights; ``--prior half_normal``: the default priors, sigma ~ HalfNormal(s_d);
``--prior inverse_gamma``: sigma^2 ~ InverseGamma(2, 0.763 s_d^2), the default
``variance = "inverse_gamma"``) by bridge sampling
(:func:`bayesmix.results.evidence.log_evidence`, NUTS 2 chains x ``--draws`` after ``--tune``),
then p(K | y) under a uniform prior on those K (:func:`bayesmix.results.evidence.posterior_k`)
and its argmax, compared with the truth. One row per (data set, K) in the CSV; the summary
counts the seeds whose argmax is the truth and the smallest margin
log p(y | K_true) - max_{K != K_true} log p(y | K) in combined standard errors.

Run (each row is appended when done; ``--resume`` skips the rows already there)::

    nice uv run python validation/known_k_evidence.py [--part 1d|2d|all] [--seeds 10]
        [--n 300 1000] [--prior half_normal|inverse_gamma] [--draws 1000] [--tune 500]
        [--out FILE] [--resume]
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))

from sparse_dp_known_k import SETTINGS, _commit, rows_done  # noqa: E402

from bayesmix import _math  # noqa: E402
from bayesmix.config import ModelSpec, PriorSpec  # noqa: E402
from bayesmix.results.evidence import log_evidence, posterior_k  # noqa: E402

OUT = Path(__file__).parent / "results" / "known_k_evidence.csv"


def data(setting: str, n: int, seed: int) -> np.ndarray:
    """The data set of ``sparse_dp_known_k.one_fit`` for these arguments."""
    X, _ = _math.sample_mixture(SETTINGS[setting], n, "gaussian", np.random.default_rng(seed))
    return X


def summary(res: pd.DataFrame) -> pd.DataFrame:
    """Per data set: argmax of p(K | y) (uniform prior), p of the truth, the margin in SEs."""
    rows = []
    if "prior" not in res:
        res = res.assign(prior="half_normal")
    for (prior, setting, n, seed), g in res.groupby(["prior", "setting", "n", "seed"]):
        k_true = int(g["k_true"].iloc[0])
        if not set(range(1, k_true + 3)) <= set(g["k"]):
            continue
        pk = posterior_k(g[["k", "log_evidence", "se"]])
        best = int(pk.loc[pk["p_k"].idxmax(), "k"])
        t = g.set_index("k")
        others = t.drop(index=k_true)
        j = others["log_evidence"].idxmax()
        margin = t.loc[k_true, "log_evidence"] - others.loc[j, "log_evidence"]
        se = np.hypot(t.loc[k_true, "se"], others.loc[j, "se"])
        rows.append(
            {
                "prior": prior,
                "setting": setting,
                "n": n,
                "seed": seed,
                "k_true": k_true,
                "argmax": best,
                "p_true": float(pk.set_index("k").loc[k_true, "p_k"]),
                "runner_up": int(j),
                "margin": float(margin),
                "margin_se": float(se),
                "max_se": float(g["se"].max()),
                "max_rhat": float(g["rhat_max"].max()),
            }
        )
    return pd.DataFrame(rows)


def main() -> None:
    """Run the settings (appending rows to the CSV) and print the summary."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("1d", "2d", "all"), default="all")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--n", type=int, nargs="*", default=[300, 1000])
    ap.add_argument("--prior", choices=("half_normal", "inverse_gamma"), default="half_normal")
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=500)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    parts = ("1d", "2d") if args.part == "all" else (args.part,)
    done = rows_done(args.out, args.resume, ("setting", "n", "seed", "k"))
    for setting in parts:
        k_true = len(SETTINGS[setting]["w"])
        for n in args.n:
            for seed in range(args.seeds):
                X = data(setting, n, seed)
                for k in range(1, k_true + 3):
                    if (setting, n, seed, k) in done:
                        continue
                    spec = ModelSpec("gaussian", k, "diag", priors=PriorSpec(variance=args.prior))
                    with warnings.catch_warnings(record=True) as caught:
                        warnings.simplefilter("always")
                        r = log_evidence(
                            spec,
                            X,
                            draws=args.draws,
                            tune=args.tune,
                            chains=2,
                            random_seed=1000 * seed + k,
                        )
                    row = {
                        "setting": setting,
                        "n": n,
                        "seed": seed,
                        "k_true": k_true,
                        "k": k,
                        "prior": args.prior,
                    }
                    row.update(r.to_dict())
                    row["warnings"] = "; ".join(sorted({w.category.__name__ for w in caught}))
                    row["commit"] = _commit()
                    print(
                        {c: row[c] for c in ("setting", "n", "seed", "k")},
                        round(r.log_evidence, 3),
                        round(r.se, 3),
                        round(r.seconds, 1),
                        flush=True,
                    )
                    pd.DataFrame([row]).to_csv(
                        args.out, mode="a", header=not args.out.exists(), index=False
                    )
    s = summary(pd.read_csv(args.out))
    print(s.to_string(index=False))
    if len(s):
        s["correct"] = s["argmax"] == s["k_true"]
        print(
            s.groupby(["prior", "setting", "n"])
            .agg(
                seeds=("seed", "size"),
                argmax_correct=("correct", "sum"),
                min_margin=("margin", "min"),
                max_se=("max_se", "max"),
            )
            .to_string()
        )


if __name__ == "__main__":
    main()
