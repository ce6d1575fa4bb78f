"""Component families: one module per family, one registry.

Each family is a :class:`~bayesmix.families._base.Family` subclass in its own module; the
registry below maps the spec's ``family`` string to the module and class. Everything else in
the package asks the family (``get_family(name)``) and never branches on its name; see the
recipe for adding one: ``docs/architecture.md``.

This package imports NumPy and :mod:`bayesmix._validation` only (PyMC/PyTensor inside the
graph methods), and sits at the bottom of the package: ``config``, ``em`` and everything above
may import it.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from functools import cache
from typing import Any

import numpy as np

from bayesmix._validation import ParameterError
from bayesmix.families._base import Family

__all__ = [
    "FAMILIES",
    "Family",
    "draw_labels",
    "get_family",
    "graph_draw",
    "guess_family",
    "result_variables",
    "sample_draws",
]

#: The registry: spec name -> "module:Class". Adding a family = one module + one line here.
_REGISTRY: dict[str, str] = {
    "gaussian": "bayesmix.families.gaussian:GaussianFamily",
    "bernoulli": "bayesmix.families.bernoulli:BernoulliFamily",
    "poisson": "bayesmix.families.poisson:PoissonFamily",
    "categorical": "bayesmix.families.categorical:CategoricalFamily",
    "student_t": "bayesmix.families.student_t:StudentTFamily",
}

FAMILIES: tuple[str, ...] = tuple(_REGISTRY)


@cache
def _load(name: str) -> Family:
    module, cls = _REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), cls)()


def get_family(family: str | Family) -> Family:
    """The family object of a spec name (a Family is returned as it is).

    Raises
    ------
    ParameterError
        For a name that is not registered.
    """
    if isinstance(family, Family):
        return family
    if family not in _REGISTRY:
        raise ParameterError(
            f"unknown family: expected one of {', '.join(FAMILIES)}, got {family!r}; pick one"
        )
    return _load(family)


def guess_family(names: Any) -> str:
    """The registered family whose variables best cover ``names`` (results without attrs)."""
    names = set(names)

    def score(f: str) -> tuple[int, int]:
        wanted = set(get_family(f).variables(None, 2))
        return (len(wanted & names) - len(wanted - names), -len(wanted))

    return max(FAMILIES, key=score)


def result_variables(
    family: str | Family, covariance: str | None, n_features: int
) -> dict[str, tuple[str, ...]]:
    """The result contract: every variable of a fit and its dims (without chain/draw).

    ``w`` (component) first, then the family's variables in its order. Every group of a
    result (em, map, posterior, advi, prior) holds these names; code that reads or writes
    parameters takes the list from here.
    """
    out: dict[str, tuple[str, ...]] = {"w": ("component",)}
    out.update(get_family(family).variables(covariance, n_features))
    return out


def draw_labels(w: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Component labels: ``w`` (S, K) weights -> (S, n) ints drawn from each row."""
    w = np.asarray(w, dtype=float)
    k = w.shape[-1]
    cdf = np.cumsum(w / w.sum(-1, keepdims=True), axis=-1)
    return np.minimum((rng.random((w.shape[0], n, 1)) > cdf[:, None, :]).sum(-1), k - 1)


def sample_draws(
    family: str | Family, params: Mapping[str, np.ndarray], n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """The one mixture sampler: ``n`` observations per parameter draw.

    ``params`` in result names with a leading sample axis S (``w`` (S, K), ...).
    Returns ``x`` (S, n, D) and the labels ``z`` (S, n).
    """
    z = draw_labels(params["w"], n, rng)
    return get_family(family).draw(params, z, rng), z


def graph_draw(
    family: Family,
    params: Mapping[str, Any],
    core: Mapping[str, int],
    rng: np.random.Generator | None,
    size: Any,
) -> np.ndarray:
    """``random`` of a ``CustomDist``: one observation per batch element.

    ``params`` as handed in by PyMC (possibly with batch axes), ``core`` the number of core
    dims of each (``w``: 1, ``mu``: 2, ...); ``size`` the batch shape (None: from the params).
    """
    arrays = {name: np.asarray(v) for name, v in params.items()}
    if size is not None and len(tuple(size)) > 0:
        batch = tuple(size)
    else:
        batch = np.broadcast_shapes(*(a.shape[: a.ndim - core[n]] for n, a in arrays.items()))
    flat = {}
    for name, a in arrays.items():
        tail = a.shape[a.ndim - core[name] :]
        flat[name] = np.broadcast_to(a, batch + tail).reshape((-1, *tail))
    rng = np.random.default_rng(rng)
    x, _ = sample_draws(family, flat, 1, rng)  # (S, 1, D)
    return x[:, 0].reshape(batch + x.shape[2:])
