"""Mixture densities in NumPy, for point estimates and for stacks of posterior draws.

Every function takes a dict of parameter arrays named as in ``docs/architecture.md``:

``w`` ``(..., K)`` (the mixture weights) and the family's own variables (each family's
``variables()``; e.g. Gaussian ``mu`` and ``sigma`` or ``cov``, Bernoulli ``p``).

The leading ``...`` dims are optional (e.g. ``(chain, draw)``) and must agree between the
arrays of one call. Results keep those leading dims and append ``(N, K)`` or ``(N,)``.
Work is done in blocks of draws so that no temporary exceeds a few tens of MB.

This module is pure NumPy: the component densities and draws come from the family
(:mod:`bayesmix.families`); the weights, the log-sum-exp and the labels are done here once, for
the inference code, the results code and the plots.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from bayesmix.families import Family, draw_labels, get_family

__all__ = [
    "component_log_density",
    "log_responsibilities",
    "logsumexp_last",
    "mixture_log_density",
    "sample_mixture",
]


def component_log_density(
    X: np.ndarray,
    params: Mapping[str, np.ndarray],
    family: str | Family = "gaussian",
) -> np.ndarray:
    """Log density of every observation under every component.

    Parameters
    ----------
    X : ndarray of shape (N, D)
        Observations.
    params : mapping
        ``w`` (used for its leading shape) and the family's variables.
    family : str or Family
        The component family (a name of :data:`bayesmix.families.FAMILIES`).

    Returns
    -------
    ndarray of shape (..., N, K)
        ``log f_k(x_n)`` with the leading dims of the parameters.
    """
    X = np.asarray(X, dtype=float)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got ndim={X.ndim}")
    return get_family(family).component_log_density(X, params)


def logsumexp_last(a: np.ndarray) -> np.ndarray:
    """``log(sum(exp(a), axis=-1))``, stable; -inf rows give -inf (no warnings).

    Several times faster than ``scipy.special.logsumexp`` on large stacks of draws.

    Parameters
    ----------
    a : ndarray of shape (..., K)

    Returns
    -------
    ndarray of shape (...)
    """
    m = np.max(a, axis=-1, keepdims=True)
    m[~np.isfinite(m)] = 0.0
    with np.errstate(divide="ignore", over="ignore"):
        out = np.log(np.sum(np.exp(a - m), axis=-1))
    out += m[..., 0]
    return out


def _log_weights(params: Mapping[str, np.ndarray]) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log(np.asarray(params["w"], dtype=float))


def _fix_labels(joint: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
    """``joint`` (..., N, K) with every entry but ``labels[n]`` of a labelled row at -inf."""
    if labels is None:
        return joint
    known = np.flatnonzero(np.asarray(labels) >= 0)
    if known.size:
        keep = joint[..., known, labels[known]].copy()
        joint[..., known, :] = -np.inf
        joint[..., known, labels[known]] = keep
    return joint


def log_responsibilities(
    X: np.ndarray,
    params: Mapping[str, np.ndarray],
    family: str | Family = "gaussian",
    labels: np.ndarray | None = None,
) -> np.ndarray:
    """Log posterior membership ``log p(z_n = k | x_n, theta)``.

    Parameters
    ----------
    X : ndarray of shape (N, D)
        NaN entries are missing values for families that model them (each row's observed
        coordinates).
    params : mapping
        As in :func:`component_log_density`, with ``w`` of shape ``(..., K)``.
    family : str or Family
    labels : ndarray of shape (N,), optional
        Partial labels (-1 = unknown): a labelled row's membership is its label.

    Returns
    -------
    ndarray of shape (..., N, K)
        Rows sum to one after ``exp``.
    """
    joint = component_log_density(X, params, family) + _log_weights(params)[..., None, :]
    joint = _fix_labels(joint, labels)
    joint -= logsumexp_last(joint)[..., None]
    return joint


def mixture_log_density(
    X: np.ndarray,
    params: Mapping[str, np.ndarray],
    family: str | Family = "gaussian",
    labels: np.ndarray | None = None,
) -> np.ndarray:
    """Pointwise mixture log density ``log sum_k w_k f_k(x_n)``.

    Parameters
    ----------
    X : ndarray of shape (N, D)
        NaN entries are missing values for families that model them: ``log p(x_n,obs)``.
    params : mapping
        As in :func:`component_log_density`.
    family : str or Family
    labels : ndarray of shape (N,), optional
        Partial labels (-1 = unknown): a labelled row's ``log w_k + log f_k(x_n)`` (the
        graphs' likelihood term of a labelled row).

    Returns
    -------
    ndarray of shape (..., N)
    """
    joint = component_log_density(X, params, family) + _log_weights(params)[..., None, :]
    return logsumexp_last(_fix_labels(joint, labels))


def sample_mixture(
    params: Mapping[str, np.ndarray],
    n_samples: int,
    family: str | Family = "gaussian",
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw new observations from one mixture (parameters without leading dims).

    Parameters
    ----------
    params : mapping
        ``w`` (K,) and the family's variables without leading dims.
    n_samples : int
        Number of draws.
    family : str or Family
    rng : numpy.random.Generator, optional

    Returns
    -------
    X : ndarray of shape (n_samples, D)
        Float for continuous families; integers of the family's replicate dtype (int8 for
        Bernoulli) for discrete ones.
    z : ndarray of shape (n_samples,)
        The component of each draw.
    """
    rng = np.random.default_rng(rng)
    fam = get_family(family)
    stacked = {name: np.asarray(v)[None] for name, v in params.items()}
    stacked["w"] = np.asarray(params["w"], dtype=float)[None]
    z = draw_labels(stacked["w"], n_samples, rng)
    x = fam.draw(stacked, z, rng)[0]
    if np.issubdtype(x.dtype, np.integer):
        x = x.astype(fam.replicate_dtype(x))
    return x, z[0]
