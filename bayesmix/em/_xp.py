"""EM kernels written against an array namespace, so that they run on NumPy or JAX arrays.

``array_api_compat`` is not a dependency; :func:`get_namespace` is a two-way dispatch:
``jax.numpy`` for JAX arrays, ``numpy`` otherwise. Only the operations that both namespaces
share are used (``@``, ``reshape``, ``exp``/``log``, ``max``/``sum``, ``linalg.cholesky`` and
``linalg.solve``), and nothing is written in place. JAX is imported only when a JAX array is
given.

Two kinds of kernel (``kind``): ``"full"`` (stacked precision Cholesky factors; tied uses it
with a repeated factor) and ``"diag"`` (per-feature precisions; spherical uses it with a
repeated precision). Everything works on rows shifted by ``c`` (the data mean); the sufficient
statistics are moments about each component's current mean, as in the NumPy engine.

* :func:`statistics` - one E-step and the M-step's sufficient statistics
  ``(sum_n log p(x_n), n_k, sum_n r_nk (x_n - c), second moments about c)``, over chunks of
  rows (peak memory bounded by the chunk, not by N).
* :func:`m_step` - maximum-likelihood M-step (full/diag) from the statistics.
* :func:`em_step` - both: one whole EM iteration, jit-able end to end (used by
  ``benchmarks/em_gpu.py``).

``GaussianMixtureEM.fit`` on a JAX array runs :func:`statistics` (jitted) on the array's
device and the M-step (maximum likelihood or MAP) on the host in NumPy on the (K, D, D)
statistics.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np

__all__ = ["em_step", "get_namespace", "log_prob", "m_step", "prepare", "statistics"]

_LOG_2PI = math.log(2.0 * math.pi)


def _is_jax(X: Any) -> bool:
    return type(X).__module__.startswith(("jax", "jaxlib")) and hasattr(X, "devices")


def get_namespace(*arrays: Any):
    """``jax.numpy`` if any argument is a JAX array, else ``numpy``."""
    if any(_is_jax(a) for a in arrays):
        import jax.numpy as jnp

        return jnp
    return np


def kernel_kind(covariance_type: str) -> str:
    """``"full"`` for full/tied covariances, ``"diag"`` for diag/spherical."""
    return "full" if covariance_type in ("full", "tied") else "diag"


def prepare(xp, weights, means, prec_chol, shift, kind: str) -> dict:
    """E-step arrays from the parameters (shapes as ``GaussianMixtureEM`` attributes).

    Parameters
    ----------
    xp : module
        ``numpy`` or ``jax.numpy``.
    weights : array of shape (K,)
    means : array of shape (K, D)
    prec_chol : array of shape (K, D, D) (upper factors, P = U U^T) for ``kind="full"``,
        (K, D) (``1 / sqrt(var)``) for ``kind="diag"``
    shift : array of shape (D,)
    kind : {"full", "diag"}

    Returns
    -------
    dict
        full: ``a`` (D, K D) stacked factors, ``b`` (K D,) offsets, ``const`` (K,);
        diag: ``prec`` (K, D), ``const`` (K,). ``const``
        includes ``log w_k``; ``m`` (K, D) the means about ``shift``.
    """
    k, d = means.shape
    m = means - shift
    log_w = xp.log(weights)
    if kind == "full":
        a = xp.reshape(xp.transpose(prec_chol, (1, 0, 2)), (d, k * d))
        b = -xp.reshape(xp.sum(m[:, :, None] * prec_chol, axis=1), (k * d,))
        log_det = xp.sum(xp.log(xp.diagonal(prec_chol, axis1=-2, axis2=-1)), axis=-1)
        return {"a": a, "b": b, "const": log_w + log_det - 0.5 * d * _LOG_2PI, "m": m}
    prec = prec_chol * prec_chol
    const = xp.sum(xp.log(prec_chol), axis=1) - 0.5 * d * _LOG_2PI + log_w
    return {"const": const, "m": m, "prec": prec}


def log_prob(xp, xc, arrays: dict, kind: str):
    """Weighted component log densities ``log w_k + log N(x_n | mu_k, Sigma_k)``, (n, K).

    ``xc`` (n, D) are rows already shifted by ``c``.
    """
    n, d = xc.shape
    if kind == "full":
        y = xc @ arrays["a"] + arrays["b"]  # (n, K D): U_k^T (x_n - mu_k), one product
        k = y.shape[1] // d
        sq = xp.sum(xp.reshape(y * y, (n, k, d)), axis=2)
        return arrays["const"] - 0.5 * sq
    # squared residuals about each mean (the expanded quadratic would lose digits)
    z = xc[:, None, :] - arrays["m"][None]  # (n, K, D)
    return arrays["const"] - 0.5 * xp.sum(z * z * arrays["prec"][None], axis=2)


def _chunk_statistics(xp, xc, arrays, kind):
    a = log_prob(xp, xc, arrays, kind)
    top = xp.max(a, axis=1, keepdims=True)
    s = xp.sum(xp.exp(a - top), axis=1, keepdims=True)
    lse = top + xp.log(s)
    resp = xp.exp(a - lse)  # (n, K)
    # moments about each component's current mean (no cancellation for far-apart clusters)
    z = xc[:, None, :] - arrays["m"][None]  # (n, K, D)
    nk = xp.sum(resp, axis=0)
    weighted = resp[:, :, None] * z
    sx = xp.sum(weighted, axis=0)  # (K, D)
    if kind == "full":
        second = xp.einsum("nkd,nke->kde", weighted, z)
    else:
        second = xp.sum(weighted * z, axis=0)  # (K, D)
    return xp.sum(lse), nk, sx, second


def statistics(xp, X, shift, arrays: dict, kind: str, chunk_size: int | None = None):
    """E-step and sufficient statistics about ``shift``, summed over chunks of rows.

    Parameters
    ----------
    xp : module
    X : array of shape (N, D)
    shift : array of shape (D,)
    arrays : dict
        From :func:`prepare`.
    kind : {"full", "diag"}
    chunk_size : int, optional
        Rows per chunk (a Python loop: under ``jax.jit`` the chunks are unrolled). None: one
        chunk.

    Returns
    -------
    total : scalar
        ``sum_n log p(x_n)``.
    nk : array of shape (K,)
    sx : array of shape (K, D)
        ``sum_n r_nk (x_n - mu_k)`` about the current means ``mu_k`` (``arrays["m"] + c``).
    second : array of shape (K, D, D) (full) or (K, D) (diag)
        ``sum_n r_nk (x_n - mu_k)(x_n - mu_k)^T`` (diag: the squares only).
    """
    n = X.shape[0]
    step = n if not chunk_size else int(chunk_size)
    out = None
    for start in range(0, n, step):
        part = _chunk_statistics(xp, X[start : start + step] - shift, arrays, kind)
        out = part if out is None else tuple(o + p for o, p in zip(out, part, strict=True))
    return out


def _upper_precision_chol(xp, cov):
    """Upper U with ``inv(cov) = U U^T`` for a stack of matrices (K, D, D)."""
    chol = xp.linalg.cholesky(cov)
    d = cov.shape[-1]
    eye = xp.broadcast_to(xp.eye(d, dtype=cov.dtype), cov.shape)
    inv_chol = xp.linalg.solve(chol, eye)  # lower triangular
    return xp.triu(xp.swapaxes(inv_chol, -1, -2))


def m_step(xp, nk, sx, second, means, n: int, kind: str, reg_covar: float):
    """Maximum-likelihood M-step from the statistics of :func:`statistics`.

    ``means`` (K, D) are the means at which the statistics were taken (the reference points).

    Returns
    -------
    weights (K,), means (K, D), covariances (K, D, D) or (K, D), precisions_cholesky_
        Shapes as for ``covariance_type`` "full" (``kind="full"``) or "diag".
    """
    nk = nk + 10 * xp.finfo(sx.dtype).eps
    weights = nk / n
    m = sx / nk[:, None]  # change of the means
    if kind == "full":
        cross = sx[:, :, None] * m[:, None, :]
        scatter = (
            second
            - cross
            - xp.swapaxes(cross, -1, -2)
            + nk[:, None, None] * (m[:, :, None] * m[:, None, :])
        )
        d = m.shape[1]
        cov = scatter / nk[:, None, None] + reg_covar * xp.eye(d, dtype=sx.dtype)
        pc = _upper_precision_chol(xp, cov)
    else:
        scatter = xp.maximum(second - 2.0 * m * sx + nk[:, None] * m * m, 0.0)
        cov = scatter / nk[:, None] + reg_covar
        pc = 1.0 / xp.sqrt(cov)
    return weights, means + m, cov, pc


def em_step(xp, X, shift, weights, means, prec_chol, *, kind, reg_covar, chunk_size=None):
    """One maximum-likelihood EM iteration (full or diag), jit-able with ``jax.jit``.

    Parameters
    ----------
    xp : module
    X : array of shape (N, D)
    shift : array of shape (D,)
        Usually the data mean.
    weights, means, prec_chol : arrays
        Current parameters (shapes as in :func:`prepare`).
    kind : {"full", "diag"}
    reg_covar : float
    chunk_size : int, optional

    Returns
    -------
    mean_log_likelihood : scalar
        At the parameters that entered the iteration.
    weights, means, covariances, prec_chol : arrays
        Updated parameters.
    """
    arrays = prepare(xp, weights, means, prec_chol, shift, kind)
    total, nk, sx, second = statistics(xp, X, shift, arrays, kind, chunk_size)
    new = m_step(xp, nk, sx, second, means, X.shape[0], kind, reg_covar)
    return (total / X.shape[0], *new)


# ============================================================================ estimator glue
@lru_cache(maxsize=32)
def _jitted_statistics(kind: str, chunk_size: int | None):
    import jax
    import jax.numpy as jnp

    def run(X, shift, weights, means, prec_chol):
        arrays = prepare(jnp, weights, means, prec_chol, shift, kind)
        return statistics(jnp, X, shift, arrays, kind, chunk_size)

    return jax.jit(run)


@lru_cache(maxsize=32)
def _jitted_labels(kind: str, chunk_size: int | None):
    import jax
    import jax.numpy as jnp

    def run(X, shift, weights, means, prec_chol):
        arrays = prepare(jnp, weights, means, prec_chol, shift, kind)
        n = X.shape[0]
        step = n if not chunk_size else int(chunk_size)
        return jnp.concatenate(
            [
                jnp.argmax(log_prob(jnp, X[i : i + step] - shift, arrays, kind), axis=1)
                for i in range(0, n, step)
            ]
        )

    return jax.jit(run)


def _estimator_parameters(est):
    """weights, means, prec_chol of a GaussianMixtureEM in the kernel shapes (NumPy)."""
    k, d = est.means_.shape
    pc = np.asarray(est.precisions_cholesky_)
    if est._kernel == "tied":
        pc = np.broadcast_to(pc, (k, d, d))
    elif est._kernel == "spherical":
        pc = np.broadcast_to(pc[:, None], (k, d))
    return est.weights_, est.means_, pc


def _device_args(X, est):
    import jax.numpy as jnp

    weights, means, pc = _estimator_parameters(est)
    dtype = X.dtype
    return (
        jnp.asarray(est._shift, dtype=dtype),
        jnp.asarray(weights, dtype=dtype),
        jnp.asarray(means, dtype=dtype),
        jnp.asarray(pc, dtype=dtype),
    )


def jax_em_statistics(est, X):
    """E-step statistics of a GaussianMixtureEM on a JAX array, as a NumPy ``_Stats``."""
    from bayesmix.em._gaussian_kernels import _Stats

    kind = kernel_kind(est._kernel)
    fn = _jitted_statistics(kind, _jax_chunk(est, X))
    total, nk, sx, second = fn(X, *_device_args(X, est))
    nk, sx, second = (np.asarray(a, dtype=X.dtype) for a in (nk, sx, second))
    if est._kernel == "tied":
        second = second.sum(axis=0)
    return float(total), _Stats(nk.copy(), sx.copy(), second.copy(), np.asarray(est.means_))


def jax_predict_labels(est, X):
    """Most probable component of each row of a JAX array (computed on its device)."""
    fn = _jitted_labels(kernel_kind(est._kernel), _jax_chunk(est, X))
    return np.asarray(fn(X, *_device_args(X, est))).astype(np.intp)


def _jax_chunk(est, X) -> int | None:
    if est.chunk_size is not None:
        return int(est.chunk_size)
    # default: chunks of about 2**26 elements of the (rows, K D) temporary
    k, d = est.n_components, X.shape[1]
    rows = max(1024, (1 << 26) // max(1, k * d))
    return None if rows >= X.shape[0] else rows


def validate_jax(est, X):
    """Check a JAX data matrix (on its device) and cast it to ``est.dtype``.

    Returns the array and its column means as NumPy.
    """
    import jax.numpy as jnp

    from bayesmix._validation import DataError

    if X.ndim != 2:
        raise DataError(
            f"X has the wrong number of dimensions: expected a 2-D array (n_samples, "
            f"n_features), got {X.ndim}-D; reshape it, e.g. X.reshape(-1, 1)"
        )
    n = X.shape[0]
    if n < max(2, int(est.n_components)):
        raise DataError(
            f"too few samples: expected at least {max(2, int(est.n_components))} rows, got {n}; "
            "pass more data or use fewer components"
        )
    X = X.astype(np.dtype(est.dtype or np.float64))
    if not bool(jnp.isfinite(X).all()):
        raise DataError(
            "X contains NaN or infinity: expected finite values, got non-finite entries; drop or "
            "impute them"
        )
    return X, np.asarray(X.mean(axis=0))
