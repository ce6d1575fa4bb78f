"""Shared pieces of the family tests: a tiny PyMC model built by hand as build_model will."""

from types import SimpleNamespace

import numpy as np


def hand_model(family, X, priors, weights_alpha, extra_coords=None):
    """``pm.Model`` with the coords, ``pm.Data`` priors, Dirichlet ``w`` and ``add_to_graph``."""
    import pymc as pm

    n, d = X.shape
    k = len(weights_alpha)
    coords = {
        "component": np.arange(k),
        "feature": [f"x{j}" for j in range(d)],
        "feature_bis": [f"x{j}" for j in range(d)],
        "obs_id": np.arange(n),
        **(extra_coords or {}),
    }
    spec = SimpleNamespace(n_components=k, covariance=None, priors=None, ordered=False)
    with pm.Model(coords=coords) as model:
        x_data = pm.Data("x_data", X, dims=("obs_id", "feature"))
        prior_data = {
            name: pm.Data(f"prior_{name}", np.asarray(value, float))
            for name, value in priors.items()
        }
        prior_data["weights_alpha"] = pm.Data("prior_weights_alpha", np.asarray(weights_alpha))
        w = pm.Dirichlet("w", a=prior_data["weights_alpha"], dims="component")
        family.add_to_graph(
            spec, prior_data, d, w, {"observed": x_data, "dims": ("obs_id", "feature")}
        )
    return model


def unconstrained_point(model, values):
    """The model's value variables (transformed where a transform applies) for ``values``."""
    point = {}
    for rv in model.free_RVs:
        value_var = model.rvs_to_values[rv]
        transform = model.rvs_to_transforms.get(rv)
        v = np.asarray(values[rv.name], float)
        point[value_var.name] = v if transform is None else transform.forward(v).eval()
    return point
