"""An independent reference posterior for the posteriordb ``low_dim_gauss_mix`` benchmark.

The model (posteriordb ``low_dim_gauss_mix``, from Stan's stat_comp_benchmarks)::

    mu    ~ Normal(0, 2), ordered (mu[0] < mu[1])
    sigma ~ HalfNormal(2)
    theta ~ Beta(5, 5)                          weight of the lower-mean component
    y_n   ~ theta N(mu[0], sigma[0]) + (1 - theta) N(mu[1], sigma[1])

is written here directly in PyMC with ``pm.NormalMixture`` (not with bayesmix's graph builder,
whose ``CustomDist`` log-sum-exp is what the test checks) and sampled for a long time with
nutpie. The posterior means, standard deviations and Monte Carlo standard errors are written,
in bayesmix's names (``w[0] = theta``), to ``validation/results/reference_low_dim_gauss_mix.json``,
which ``tests/reliability/test_reference_posterior.py`` reads.

Usage::

    uv run python validation/reference_posterior.py [--draws 25000 --chains 4]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "results" / "reference_low_dim_gauss_mix.json"


def reference_model(y: np.ndarray):
    """The posteriordb model in plain PyMC.

    Parameters
    ----------
    y : ndarray of shape (N,)

    Returns
    -------
    pymc.Model
    """
    import pymc as pm
    import pytensor.tensor as pt

    with pm.Model() as model:
        mu = pm.Normal("mu", 0.0, 2.0, shape=2, transform=pm.distributions.transforms.ordered)
        sigma = pm.HalfNormal("sigma", 2.0, shape=2)
        theta = pm.Beta("theta", 5.0, 5.0)
        pm.NormalMixture("y", w=pt.stack([theta, 1.0 - theta]), mu=mu, sigma=sigma, observed=y)
    return model


def main(argv: list[str] | None = None) -> int:
    """Run the long reference chains and write the JSON (command line entry point)."""
    import arviz as az
    import nutpie

    from bayesmix.data import load_low_dim_gauss_mix

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=25_000)
    ap.add_argument("--tune", type=int, default=2_000)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--seed", type=int, default=20240101)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)

    y = load_low_dim_gauss_mix()["y"].to_numpy()
    model = reference_model(y)
    t0 = time.perf_counter()
    compiled = nutpie.compile_pymc_model(model, initial_points={"mu": np.array([-1.0, 1.0])})
    trace = nutpie.sample(
        compiled,
        draws=args.draws,
        tune=args.tune,
        chains=args.chains,
        cores=2,
        seed=args.seed,
        progress_bar=False,
    )
    post = trace["posterior"].to_dataset()
    theta = post["theta"]
    params = {
        "w[0]": theta,
        "w[1]": 1.0 - theta,
        "mu[0]": post["mu"].isel(mu_dim_0=0),
        "mu[1]": post["mu"].isel(mu_dim_0=1),
        "sigma[0]": post["sigma"].isel(sigma_dim_0=0),
        "sigma[1]": post["sigma"].isel(sigma_dim_0=1),
    }
    out: dict = {
        "data": "bayesmix.data.load_low_dim_gauss_mix() (posteriordb low_dim_gauss_mix, N=1000)",
        "model": "mu ~ N(0, 2) ordered; sigma ~ HalfNormal(2); w[0] ~ Beta(5, 5)",
        "implementation": "plain PyMC pm.NormalMixture, nutpie",
        "draws": args.draws,
        "tune": args.tune,
        "chains": args.chains,
        "seed": args.seed,
        "divergences": int(trace["sample_stats"]["diverging"].values.sum()),
        "params": {},
    }
    for name, da in params.items():
        x = da.transpose("chain", "draw").values
        ds = {"x": (("chain", "draw"), x)}
        import xarray as xr

        dset = xr.Dataset(ds)
        out["params"][name] = {
            "mean": float(x.mean()),
            "sd": float(x.std(ddof=1)),
            "mcse_mean": float(az.mcse(dset, method="mean")["x"]),
            "ess_bulk": float(az.ess(dset, method="bulk")["x"]),
            "rhat": float(az.rhat(dset)["x"]),
        }
    out["seconds"] = round(time.perf_counter() - t0, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
