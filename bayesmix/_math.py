"""Mixture densities in NumPy, for point estimates and for stacks of posterior draws.

Every function takes a dict of parameter arrays named as in ``docs/architecture.md``:

=========  ======================  ==========================================
name       shape                   meaning
=========  ======================  ==========================================
``w``      ``(..., K)``            mixture weights (a simplex)
``mu``     ``(..., K, D)``         component means (Gaussian)
``sigma``  ``(..., K, D)``         per-feature standard deviations (diag, spherical, 1-D)
``cov``    ``(..., K, D, D)``      full covariances (used instead of ``sigma`` when present)
``p``      ``(..., K, D)``         success probabilities (Bernoulli)
=========  ======================  ==========================================

The leading ``...`` dims are optional (e.g. ``(chain, draw)``) and must agree between the
arrays of one call. Results keep those leading dims and append ``(N, K)`` or ``(N,)``.
Work is done in blocks of draws so that no temporary exceeds a few tens of MB.

This module is pure NumPy and SciPy: the EM engine, the inference code, the results code and
the plots all use it, so the mixture mathematics is written once.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = [
    "FAMILIES",
    "component_log_density",
    "log_responsibilities",
    "logsumexp_last",
    "mixture_log_density",
    "sample_mixture",
]

FAMILIES = ("gaussian", "bernoulli")
_LOG_2PI = np.log(2.0 * np.pi)
_BLOCK_ELEMENTS = 4_000_000  # elements of the largest temporary per block of draws


def _leading_shape(params: Mapping[str, np.ndarray]) -> tuple[int, ...]:
    w = np.asarray(params["w"])
    return w.shape[:-1]


def _flat(a: np.ndarray, lead: tuple[int, ...], tail: int) -> np.ndarray:
    """Broadcast ``a`` to the leading shape and flatten it to ``(S, *tail_dims)``."""
    a = np.asarray(a, dtype=float)
    tail_shape = a.shape[a.ndim - tail :]
    return np.broadcast_to(a, lead + tail_shape).reshape((-1, *tail_shape))


def _gaussian_sigma_block(X, mu, sigma):
    # X (N, D); mu, sigma (S, K, D) -> (S, N, K). Differences are formed explicitly (not by
    # expanding the square) so that data with a large offset keep their precision.
    z = (X[None, None, :, :] - mu[:, :, None, :]) / sigma[:, :, None, :]  # (S, K, N, D)
    quad = np.einsum("sknd,sknd->snk", z, z)
    log_det = np.sum(np.log(sigma), axis=-1)  # (S, K)
    d = X.shape[1]
    return -0.5 * (d * _LOG_2PI + quad) - log_det[:, None, :]


def _gaussian_full_block(X, mu, cov):
    # X (N, D); mu (S, K, D); cov (S, K, D, D) -> (S, N, K)
    chol = np.linalg.cholesky(cov)  # raises LinAlgError when not positive definite
    prec_chol = np.linalg.inv(chol)  # (S, K, D, D): lower triangular L^{-1}
    # y_n = L^{-1} (x_n - mu) = L^{-1} x_n - L^{-1} mu
    y = (X[None, None, :, :] - mu[:, :, None, :]) @ np.swapaxes(prec_chol, -1, -2)  # (S,K,N,D)
    quad = np.einsum("sknd,sknd->snk", y, y)
    log_det = np.sum(np.log(np.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)  # (S, K)
    d = X.shape[1]
    return -0.5 * (d * _LOG_2PI + quad) - log_det[:, None, :]


_LOG_TINY = np.log(np.finfo(float).tiny)  # about -708: stands in for log(0)


def _bernoulli_block(X, p):
    # X (N, D) in {0, 1}; p (S, K, D) -> (S, N, K): the sum over features comes first.
    # log(0) is floored at log(tiny) so that a pixel with p = 0 (or 1) costs about -708 when
    # it is on (off) and exactly 0 otherwise, instead of 0 * -inf = NaN in the products.
    with np.errstate(divide="ignore"):
        log_p = np.maximum(np.log(p), _LOG_TINY)
        log_q = np.maximum(np.log1p(-p), _LOG_TINY)
    return X @ np.swapaxes(log_p, -1, -2) + (1.0 - X) @ np.swapaxes(log_q, -1, -2)


def component_log_density(
    X: np.ndarray,
    params: Mapping[str, np.ndarray],
    family: str = "gaussian",
    covariance: str | None = None,
) -> np.ndarray:
    """Log density of every observation under every component.

    Parameters
    ----------
    X : ndarray of shape (N, D)
        Observations.
    params : mapping
        Parameter arrays (see the module docstring). Gaussian: ``mu`` and either ``cov``
        (full) or ``sigma`` (diagonal / spherical / 1-D). Bernoulli: ``p``. ``w`` is
        used only for its leading shape.
    family : {"gaussian", "bernoulli"}
        The component family.
    covariance : str, optional
        Accepted for symmetry with the specs; the parametrisation is read from the keys
        (``cov`` present means full covariance matrices, otherwise ``sigma``).

    Returns
    -------
    ndarray of shape (..., N, K)
        ``log f_k(x_n)`` with the leading dims of the parameters.
    """
    X = np.asarray(X, dtype=float)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got ndim={X.ndim}")
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}: expected one of {FAMILIES}")
    lead = _leading_shape(params)
    n, d = X.shape
    k = np.asarray(params["w"]).shape[-1]

    if family == "bernoulli":
        arrays = (_flat(params["p"], lead, 2),)
        block_fn = _bernoulli_block
        per_draw = n * k * 2
    elif params.get("cov") is not None:
        arrays = (_flat(params["mu"], lead, 2), _flat(params["cov"], lead, 3))
        block_fn = _gaussian_full_block
        per_draw = n * k * d
    else:
        arrays = (_flat(params["mu"], lead, 2), _flat(params["sigma"], lead, 2))
        block_fn = _gaussian_sigma_block
        per_draw = n * k * d

    n_draws = arrays[0].shape[0]
    out = np.empty((n_draws, n, k))
    step = max(1, _BLOCK_ELEMENTS // max(per_draw, 1))
    for start in range(0, n_draws, step):
        stop = min(start + step, n_draws)
        out[start:stop] = block_fn(X, *(a[start:stop] for a in arrays))
    return out.reshape(lead + (n, k))


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


def log_responsibilities(
    X: np.ndarray,
    params: Mapping[str, np.ndarray],
    family: str = "gaussian",
    covariance: str | None = None,
) -> np.ndarray:
    """Log posterior membership ``log p(z_n = k | x_n, theta)``.

    Parameters
    ----------
    X : ndarray of shape (N, D)
    params : mapping
        As in :func:`component_log_density`, with ``w`` of shape ``(..., K)``.
    family : {"gaussian", "bernoulli"}

    Returns
    -------
    ndarray of shape (..., N, K)
        Rows sum to one after ``exp``.
    """
    joint = component_log_density(X, params, family) + _log_weights(params)[..., None, :]
    joint -= logsumexp_last(joint)[..., None]
    return joint


def mixture_log_density(
    X: np.ndarray,
    params: Mapping[str, np.ndarray],
    family: str = "gaussian",
    covariance: str | None = None,
) -> np.ndarray:
    """Pointwise mixture log density ``log sum_k w_k f_k(x_n)``.

    Parameters
    ----------
    X : ndarray of shape (N, D)
    params : mapping
        As in :func:`component_log_density`.
    family : {"gaussian", "bernoulli"}

    Returns
    -------
    ndarray of shape (..., N)
    """
    joint = component_log_density(X, params, family) + _log_weights(params)[..., None, :]
    return logsumexp_last(joint)


def sample_mixture(
    params: Mapping[str, np.ndarray],
    n_samples: int,
    family: str = "gaussian",
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw new observations from one mixture (parameters without leading dims).

    Parameters
    ----------
    params : mapping
        ``w`` (K,), and ``mu`` (K, D) with ``cov`` (K, D, D) or ``sigma`` (K, D), or ``p`` (K, D).
    n_samples : int
        Number of draws.
    family : {"gaussian", "bernoulli"}
    rng : numpy.random.Generator, optional

    Returns
    -------
    X : ndarray of shape (n_samples, D)
        Float for Gaussian, int8 (0/1) for Bernoulli.
    z : ndarray of shape (n_samples,)
        The component of each draw.
    """
    rng = np.random.default_rng(rng)
    w = np.asarray(params["w"], dtype=float)
    w = w / w.sum()
    z = rng.choice(w.shape[0], size=n_samples, p=w)
    if family == "bernoulli":
        p = np.asarray(params["p"], dtype=float)
        return (rng.random((n_samples, p.shape[1])) < p[z]).astype(np.int8), z
    mu = np.asarray(params["mu"], dtype=float)
    eps = rng.standard_normal((n_samples, mu.shape[1]))
    if params.get("cov") is not None:
        chol = np.linalg.cholesky(np.asarray(params["cov"], dtype=float))
        return mu[z] + np.einsum("nij,nj->ni", chol[z], eps), z
    sigma = np.asarray(params["sigma"], dtype=float)
    return mu[z] + sigma[z] * eps, z
