"""Gross outliers: a Student-t mixture keeps its means, a Gaussian mixture does not (issue 14).

Data: two clusters of unit standard deviation at (-2.5, 0) and (2.5, 0) (N = 4000, labels
drawn with equal probability), plus a fraction of gross outliers drawn uniformly in the square
(-4, 4) x (11, 19), far above both clusters. Both mixtures are fitted by EM with K = 2 and full
matrices (``StudentTMixtureEM``, degrees of freedom estimated, and ``GaussianMixtureEM``), from
the same k-means start. The error of a fit is the largest absolute difference between its
component means (sorted by the first coordinate) and the true means, in units of the clusters'
standard deviation (1).

The acceptance test of issue 14 (5 % outliers: the t-mixture within 0.1 sd, the Gaussian
mixture beyond) is ``tests/families/test_student_t.py``; this script shows it on a plot and
repeats it over outlier fractions 0 to 10 % and 5 seeds.

Usage::

    uv run python validation/student_t_outliers.py

Writes ``validation/results/student_t_outliers.png`` (both fits on the 5 % data set, true means
marked, 2-sd ellipses of the scale matrices / covariances) and
``validation/results/student_t_outliers.csv`` (fraction, seed, errors, fitted dofs), and prints
the table.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from bayesmix.em import GaussianMixtureEM
from bayesmix.em.student_t import StudentTMixtureEM

RESULTS = Path(__file__).parent / "results"
TRUE_MEANS = np.array([[-2.5, 0.0], [2.5, 0.0]])
N = 4000
FRACTIONS = (0.0, 0.01, 0.02, 0.05, 0.10)
SEEDS = range(5)


def simulate(fraction: float, seed: int, n: int = N) -> tuple[np.ndarray, np.ndarray]:
    """Clusters (n rows) plus ``round(fraction * n)`` outliers; returns X and the outlier mask."""
    rng = np.random.default_rng(seed)
    z = rng.integers(0, 2, n)
    X = TRUE_MEANS[z] + rng.standard_normal((n, 2))
    m = int(round(fraction * n))
    outliers = rng.uniform(-4.0, 4.0, (m, 2)) + np.array([0.0, 15.0])
    return np.vstack([X, outliers]), np.r_[np.zeros(n, bool), np.ones(m, bool)]


def fit_both(X: np.ndarray):
    """The t and Gaussian EM fits (K = 2, full matrices, seeded k-means start)."""
    kwargs = {"covariance_type": "full", "random_state": 0, "tol": 1e-6, "max_iter": 500}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t_fit = StudentTMixtureEM(2, **kwargs).fit(X)
        g_fit = GaussianMixtureEM(2, **kwargs).fit(X)
    return t_fit, g_fit


def mean_error(means: np.ndarray) -> float:
    """Largest |fitted - true| over the sorted components' coordinates (cluster sd units)."""
    return float(np.abs(means[np.argsort(means[:, 0])] - TRUE_MEANS).max())


def _ellipse(ax, mean, cov, color, style):
    vals, vecs = np.linalg.eigh(cov)
    angle = np.linspace(0, 2 * np.pi, 200)
    circle = np.stack([np.cos(angle), np.sin(angle)])
    pts = mean[:, None] + vecs @ (2.0 * np.sqrt(vals)[:, None] * circle)
    ax.plot(pts[0], pts[1], color=color, ls=style, lw=1.5)


def plot(X, outlier, t_fit, g_fit, path: Path) -> None:
    """Both fits side by side on the same data, true means marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8.5, 6.5), sharex=True, sharey=True)
    fits = [
        (g_fit, "Gaussian mixture (EM)", g_fit.covariances_, "tab:red"),
        (t_fit, "Student-t mixture (ECM)", t_fit.covariances_, "tab:blue"),
    ]
    for ax, (fit, title, covs, color) in zip(axes, fits, strict=True):
        ax.scatter(*X[~outlier].T, s=3, color="0.6", alpha=0.4, label="clusters")
        ax.scatter(*X[outlier].T, s=6, color="k", alpha=0.7, label="5 % gross outliers")
        for k in range(2):
            _ellipse(ax, fit.means_[k], covs[k], color, "-")
        ax.scatter(
            *fit.means_.T,
            marker="o",
            s=70,
            color=color,
            edgecolor="k",
            zorder=5,
            label="fitted means",
        )
        ax.scatter(
            *TRUE_MEANS.T, marker="x", s=90, color="k", lw=2.5, zorder=6, label="true means"
        )
        extra = ""
        if hasattr(fit, "dofs_"):
            extra = "\nnu = " + ", ".join(f"{v:.3g}" for v in fit.dofs_)
        ax.set_title(f"{title}\nmax |mean error| = {mean_error(fit.means_):.3f} sd{extra}")
        ax.set_xlabel("x1")
        ax.set_aspect("equal")
    axes[0].set_ylabel("x2")
    axes[0].legend(loc="center right", fontsize=7)
    fig.suptitle("2-sd ellipses: covariances (Gaussian), scale matrices (t)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> pd.DataFrame:
    """Run the sweep, write the figure and the CSV, print the table."""
    RESULTS.mkdir(exist_ok=True)
    rows = []
    start = time.perf_counter()
    for fraction in FRACTIONS:
        for seed in SEEDS:
            X, outlier = simulate(fraction, seed)
            t_fit, g_fit = fit_both(X)
            rows.append(
                {
                    "outlier_fraction": fraction,
                    "seed": seed,
                    "n_rows": X.shape[0],
                    "t_mean_error_sd": mean_error(t_fit.means_),
                    "gaussian_mean_error_sd": mean_error(g_fit.means_),
                    "t_dof_min": float(t_fit.dofs_.min()),
                    "t_dof_max": float(t_fit.dofs_.max()),
                    "gaussian_max_sd": float(
                        np.sqrt(np.diagonal(g_fit.covariances_, axis1=1, axis2=2)).max()
                    ),
                }
            )
            if fraction == 0.05 and seed == 0:
                plot(X, outlier, t_fit, g_fit, RESULTS / "student_t_outliers.png")
    table = pd.DataFrame(rows)
    table.to_csv(RESULTS / "student_t_outliers.csv", index=False, float_format="%.6g")
    summary = table.groupby("outlier_fraction")[["t_mean_error_sd", "gaussian_mean_error_sd"]]
    print(summary.agg(["mean", "max"]).round(4).to_string())
    print(f"{len(table)} data sets, {time.perf_counter() - start:.1f} s")
    return table


if __name__ == "__main__":
    main()
