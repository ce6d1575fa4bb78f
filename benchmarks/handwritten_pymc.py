"""The reference of ``benchmarks/time_to_result.py``: Old Faithful fitted by hand in plain PyMC.

What a PyMC user would write for the main job of ``bayesmix fit`` (and less than it does: no
EM, no relabelling, no LOO, no predictive draws, no plots, no report): a two-component
full-covariance Gaussian mixture with Dirichlet weights and the label summed out
(``pm.Mixture`` of ``pm.MvNormal``), ``pm.find_MAP``, then ``pm.sample`` with nutpie, 4 chains
x 1000 draws after 1000 tuning steps, then ``az.summary``. The priors are bayesmix's defaults
for these data (means around the data mean, LKJ(2) correlations, HalfNormal scales).

Prints one line per phase on stderr, ``[  elapsed s] phase``, timed from the start of the
process's Python code, and the summary table on stdout.
"""

from __future__ import annotations

import sys
import time

T0 = time.perf_counter()


def stage(text: str) -> None:
    print(f"handwritten: [{time.perf_counter() - T0:6.1f} s] {text}", file=sys.stderr, flush=True)


stage("importing PyMC")
import logging  # noqa: E402

import arviz as az  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pymc as pm  # noqa: E402

logging.getLogger("pymc").setLevel(logging.ERROR)


def main() -> None:
    path = sys.argv[1]
    X = pd.read_csv(path)[["eruptions", "waiting"]].to_numpy(float)
    n, d = X.shape
    k = 2
    center, scale = X.mean(axis=0), X.std(axis=0)
    stage("building the model")
    coords = {"component": range(k), "feature": ["eruptions", "waiting"], "obs_id": range(n)}
    with pm.Model(coords=coords) as model:
        w = pm.Dirichlet("w", np.ones(k), dims="component")
        mu = pm.Normal("mu", center, 2 * scale, dims=("component", "feature"))
        chols = [
            pm.LKJCholeskyCov(
                f"chol{j}", n=d, eta=2.0, sd_dist=pm.HalfNormal.dist(2 * scale, shape=d)
            )[0]
            for j in range(k)
        ]
        pm.Mixture(
            "x",
            w=w,
            comp_dists=[pm.MvNormal.dist(mu=mu[j], chol=chols[j]) for j in range(k)],
            observed=X,
            dims=("obs_id", "feature"),
        )
    # means apart, as any user must do for a mixture (the default start puts both at the centre)
    start = {"mu": np.stack([center - 0.5 * scale, center + 0.5 * scale])}
    stage("MAP (pm.find_MAP)")
    point = pm.find_MAP(start=start, model=model, progressbar=False)
    stage("NUTS (pm.sample, nutpie, 4 x 1000 after 1000 tuning steps)")
    idata = pm.sample(
        1000,
        tune=1000,
        chains=4,
        nuts_sampler="nutpie",
        initvals={"mu": point["mu"]},
        random_seed=0,
        progressbar=False,
        model=model,
    )
    stage("az.summary")
    print(az.summary(idata, var_names=["w", "mu"]))
    stage("done")


if __name__ == "__main__":
    main()
