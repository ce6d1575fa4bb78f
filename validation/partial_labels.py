"""Partial labels lower the misclassification rate of the unlabelled rows (issue 16, acceptance 3).

Simulated overlapping data: 2-D Gaussian mixtures with K = 3 components whose ellipses
overlap (means (0, 0), (2, 1), (0.5, 2.2); correlated, unequal covariances; weights
0.5 / 0.3 / 0.2), N = 600, and Poisson mixtures (3 counts, K = 2, rates (2, 3, 1) and
(5, 4, 2.5)), N = 600. For each of 20 seeds, 5 % of the rows (chosen at random) keep their
true component as a label:

* unsupervised: ``GaussianMixtureEM(3, n_init=10)`` / ``PoissonMixtureEM(2, n_init=10)`` on
  all rows, its components matched to the truth by the permutation with the fewest errors
  (the most favourable reading of an unsupervised fit);
* semi-supervised: the same estimator with ``fit(X, labels=labels)``, no matching needed
  (components follow the labels).

The misclassification rate is over the unlabelled rows (95 % of the data) in both cases; the
Bayes rate (the true parameters' classifier) is the floor. Writes
``results/partial_labels.csv`` (one row per family and seed) and prints the means.

Run::

    uv run python validation/partial_labels.py [--seeds 20]
"""

from __future__ import annotations

import argparse
import itertools
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from bayesmix.em import GaussianMixtureEM, PoissonMixtureEM

OUT = Path(__file__).parent / "results" / "partial_labels.csv"
LABELLED = 0.05

GAUSS = {
    "weights": np.array([0.5, 0.3, 0.2]),
    "means": np.array([[0.0, 0.0], [2.0, 1.0], [0.5, 2.2]]),
    "covs": np.array(
        [[[1.0, 0.5], [0.5, 1.0]], [[0.8, -0.3], [-0.3, 0.6]], [[0.5, 0.0], [0.0, 1.2]]]
    ),
}
POISSON = {"weights": np.array([0.6, 0.4]), "rates": np.array([[2.0, 3.0, 1.0], [5.0, 4.0, 2.5]])}


def simulate(family: str, n: int, rng: np.random.Generator):
    """(X, true components, the Bayes rule's components) of one simulated data set."""
    if family == "gaussian":
        z = rng.choice(3, size=n, p=GAUSS["weights"])
        X = np.array([rng.multivariate_normal(GAUSS["means"][k], GAUSS["covs"][k]) for k in z])
        logp = np.column_stack(
            [
                np.log(GAUSS["weights"][k])
                + stats.multivariate_normal(GAUSS["means"][k], GAUSS["covs"][k]).logpdf(X)
                for k in range(3)
            ]
        )
    else:
        z = rng.choice(2, size=n, p=POISSON["weights"])
        X = rng.poisson(POISSON["rates"][z]).astype(float)
        logp = np.column_stack(
            [
                np.log(POISSON["weights"][k]) + stats.poisson.logpmf(X, POISSON["rates"][k]).sum(1)
                for k in range(2)
            ]
        )
    return X, z, logp.argmax(axis=1)


def best_matching_error(pred: np.ndarray, z: np.ndarray, k: int) -> float:
    """Misclassification rate of ``pred`` under its best relabelling (unsupervised fits)."""
    return min(np.mean(np.asarray(perm)[pred] != z) for perm in itertools.permutations(range(k)))


def one(family: str, seed: int, n: int = 600) -> dict:
    """One row of the table: both fits of one simulated data set."""
    rng = np.random.default_rng(seed)
    X, z, bayes = simulate(family, n, rng)
    k = 3 if family == "gaussian" else 2
    labels = np.full(n, -1)
    known = rng.choice(n, size=int(round(LABELLED * n)), replace=False)
    labels[known] = z[known]
    unknown = labels < 0
    make = {
        "gaussian": lambda: GaussianMixtureEM(
            k, n_init=10, random_state=seed, tol=1e-6, max_iter=500
        ),
        "poisson": lambda: PoissonMixtureEM(
            k, n_init=10, random_state=seed, tol=1e-8, max_iter=500
        ),
    }[family]
    unsup = make().fit(X).predict(X)
    semi = make().fit(X, labels=labels).predict(X)
    return {
        "family": family,
        "seed": seed,
        "n": n,
        "n_labelled": int(known.size),
        "error_unsupervised": best_matching_error(unsup[unknown], z[unknown], k),
        "error_semi_supervised": float(np.mean(semi[unknown] != z[unknown])),
        "error_bayes_rule": float(np.mean(bayes[unknown] != z[unknown])),
    }


def main() -> None:
    """Run every family and seed, write the CSV and print the means."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    args = parser.parse_args()
    rows = [one(f, s) for f in ("gaussian", "poisson") for s in range(args.seeds)]
    df = pd.DataFrame(rows)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    df["commit"] = commit
    OUT.parent.mkdir(exist_ok=True)
    df.to_csv(OUT, index=False)
    summary = df.groupby("family")[
        ["error_unsupervised", "error_semi_supervised", "error_bayes_rule"]
    ].mean()
    wins = (
        df.assign(better=df.error_semi_supervised < df.error_unsupervised)
        .groupby("family")["better"]
        .sum()
    )
    print(summary.round(4).to_string())
    print("seeds where the labels lower the error:", wins.to_dict(), "of", args.seeds)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
