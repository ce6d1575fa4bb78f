"""Shared helpers of the graph tests: a random point of a model and its result variables."""

from __future__ import annotations

import numpy as np

#: PyTensor mode of the small functions the graph tests compile (fast to build).
MODE = "FAST_COMPILE"


def random_point(model, seed: int) -> dict:
    """The model's initial point moved by N(0, 0.4) noise (value-variable space).

    The default start of an ordered vector is [0, -inf, ...]: non-finite entries are
    replaced by -1 first.
    """
    rng = np.random.default_rng(seed)
    ip = model.initial_point(0)
    return {
        k: np.where(np.isfinite(v), v, -1.0) + rng.normal(0.0, 0.4, np.shape(v))
        for k, v in ip.items()
    }


def result_values(model, point: dict, names) -> dict:
    """The values at ``point`` of the variables ``names`` that the model has."""
    names = [n for n in names if n in model.named_vars]
    fn = model.compile_fn(model.replace_rvs_by_values([model[n] for n in names]), mode=MODE)
    return dict(zip(names, fn(point), strict=True))
