"""Out-of-core / distributed EM: ``GaussianMixtureEM.fit`` on a Dask array.

EM's sufficient statistics are sums over rows, so each iteration maps the NumPy single-pass
kernel (:func:`bayesmix.em._gaussian_kernels.fused_statistics`) over the row-chunks of the
Dask array (``map_blocks``: one small vector of statistics per chunk), sums the vectors (a Dask
reduction) and runs one ``compute`` per iteration; the M-step then runs in NumPy on the
(K, D, D) statistics. The data are never gathered in one place, so the array may be larger
than memory or spread over a cluster (``dask.distributed``). Only imported when a Dask array
is given (optional extra ``bayesmix[dask]``).
"""

from __future__ import annotations

import numpy as np

from bayesmix._validation import DataError, ParameterError

__all__ = ["dask_em_statistics", "dask_predict_labels", "validate_dask"]


def validate_dask(est, X):
    """Check a Dask data matrix, one column chunk, cast to ``est.dtype``; one ``compute``.

    Returns
    -------
    X : dask array of shape (N, D)
        With a single chunk along the columns.
    mean : ndarray of shape (D,)
        Column means (the shift used by the engine).
    """
    import dask
    import dask.array as da

    if X.ndim != 2:
        raise DataError(
            f"X has the wrong number of dimensions: expected a 2-D Dask array (n_samples, "
            f"n_features), got {X.ndim}-D; reshape it, e.g. X.reshape(-1, 1)"
        )
    if any(np.isnan(c) for c in X.shape):
        raise DataError(
            "X has unknown chunk sizes: expected a Dask array with known shape, got NaN sizes; "
            "call X.compute_chunk_sizes() first"
        )
    n = X.shape[0]
    if n < max(2, int(est.n_components)):
        raise DataError(
            f"too few samples: expected at least {max(2, int(est.n_components))} rows, got {n}; "
            "pass more data or use fewer components"
        )
    if X.dtype.kind not in "fiub":
        raise DataError(
            f"X is not numeric: expected a real-valued Dask array, got dtype {X.dtype}; convert "
            "it with X.astype(float)"
        )
    X = X.astype(np.dtype(est.dtype or np.float64)).rechunk({1: -1})
    mean, finite = dask.compute(X.mean(axis=0), da.isfinite(X).all())
    if not finite:
        raise DataError(
            "X contains NaN or infinity: expected finite values, got non-finite entries; drop or "
            "impute them"
        )
    return X, np.asarray(mean)


def check_dask_init(est) -> None:
    """Dask input needs explicit initial parameters (no k-means++ over a Dask array)."""
    if est._needs_initial_resp():
        raise ParameterError(
            "Dask input needs initial parameters: expected weights_init, means_init and "
            "precisions_init, got at least one None; compute them on a sample (e.g. fit a "
            "GaussianMixtureEM to X[:10_000].compute()) and pass them"
        )


def dask_em_statistics(est, X):
    """Sum over the row-chunks of the fused E-step/statistics kernel; one ``compute``.

    Returns
    -------
    total : float
        ``sum_n log p(x_n)``.
    g : ndarray
        Summed statistics in the layout of the NumPy engine.
    """
    from bayesmix.em._gaussian_kernels import fused_statistics

    k = est.n_components
    estep = est._estep
    log_w = est._estimate_log_weights().astype(X.dtype, copy=False)
    ctype = est._kernel
    block = est._block_size(X.shape[1])

    def chunk(xb):
        total, g = fused_statistics(xb, estep, log_w, ctype, k, block)
        out = np.empty((1, g.size + 1), dtype=np.float64)
        out[0, 0] = total
        out[0, 1:] = g.ravel()
        return out

    # the size of one chunk's vector: run the kernel on two rows of zeros
    _, probe = fused_statistics(np.zeros((2, X.shape[1]), X.dtype), estep, log_w, ctype, k, block)
    width = probe.size + 1
    parts = X.map_blocks(
        chunk, chunks=((1,) * X.numblocks[0], (width,)), dtype=np.float64, meta=np.empty((0, 0))
    )
    summed = parts.sum(axis=0).compute()
    return float(summed[0]), summed[1:].reshape(probe.shape).astype(X.dtype, copy=False)


def dask_predict_labels(est, X):
    """Most probable component of each row, as a lazy Dask array of shape (N,)."""
    import copy

    from bayesmix.em._base import BaseMixtureEM

    snapshot = copy.copy(est)  # parameters as fitted now, even if est is refitted later

    def labels(xb):
        return BaseMixtureEM._predict_labels(snapshot, xb)

    return X.map_blocks(labels, drop_axis=1, dtype=np.intp, meta=np.empty((0,), np.intp))
