"""Array helpers shared by the EM loop, K-means and the Gaussian kernels (NumPy only).

Blocks of rows, frequency weights, weighted sums, filled-in missing values, complex input.
They live apart from :mod:`bayesmix.em._base` so that K-means and the kernels need not import
the EM loop (which imports K-means for its starts).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bayesmix._validation import DataError

# Elements of the largest (rows, K, D) temporary made per block of rows (about 2 MB in float64).
_BLOCK_ELEMENTS = 1 << 18


def reject_complex(X: Any) -> None:
    """Raise DataError for complex input, with scikit-learn's "Complex data not supported"."""
    dtype = getattr(X, "dtype", None)
    if not isinstance(dtype, np.dtype):
        try:
            dtype = np.asarray(X).dtype
        except (TypeError, ValueError):  # ragged or odd input: check_X reports it
            return
    if dtype.kind == "c":
        raise DataError(
            "Complex data not supported: expected real numbers, got complex values; pass the "
            "real part or the modulus"
        )


def check_sample_weight(sample_weight: Any, n_samples: int) -> np.ndarray | None:
    """Check per-row frequency weights and return them as float64, or None when not given.

    Parameters
    ----------
    sample_weight : None, scalar or array-like of shape (n_samples,)
        Frequency weights: finite, non-negative, not all zero (rows of weight 0 do not
        count). A scalar gives every row that weight.
    n_samples : int

    Returns
    -------
    ndarray of shape (n_samples,) or None

    Raises
    ------
    DataError
        For a wrong length or shape, non-numeric, NaN/inf or negative values, or all zeros.
    """
    if sample_weight is None:
        return None
    try:
        w = np.asarray(sample_weight, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(
            "sample_weight is not numeric: expected non-negative numbers, got "
            f"{type(sample_weight).__name__} with non-numeric values; pass an array of floats"
        ) from None
    if w.ndim == 0:
        w = np.full(n_samples, float(w))
    if w.shape != (n_samples,):
        raise DataError(
            f"sample_weight has the wrong shape: expected ({n_samples},) (one weight per row "
            f"of X), got {w.shape}; pass one weight per row"
        )
    finite = np.isfinite(w)
    if not finite.all():
        first = int(np.flatnonzero(~finite)[0])
        raise DataError(
            f"sample_weight contains {int((~finite).sum())} NaN or infinite value(s) (first: "
            f"row {first}, {w[first]}): expected finite weights; drop those rows or fix their "
            "weights"
        )
    negative = w < 0
    if negative.any():
        first = int(np.flatnonzero(negative)[0])
        raise DataError(
            f"sample_weight contains {int(negative.sum())} negative value(s) (first: row "
            f"{first}, {w[first]:g}): expected weights >= 0; use 0 to leave a row out"
        )
    if not w.sum() > 0:
        raise DataError(
            "sample_weight is all zero: expected at least one positive weight, got none; give "
            "the rows to fit a positive weight"
        )
    return w


def fill_column_means(X: np.ndarray, sample_weight: np.ndarray | None = None) -> np.ndarray:
    """A copy of X with every NaN replaced by its column's (weighted) mean of observed values."""
    observed = ~np.isnan(X)
    w = np.ones(X.shape[0]) if sample_weight is None else sample_weight
    wo = observed * w[:, None]
    means = (np.where(observed, X, 0.0) * wo).sum(axis=0) / np.maximum(wo.sum(axis=0), 1e-300)
    return np.where(observed, X, means.astype(X.dtype))


def weighted_sum(values: np.ndarray, sample_weight: np.ndarray | None) -> float:
    """``sum_n w_n v_n`` in float64 (plain sum without weights); a row of weight 0 adds 0.

    A value of -inf with weight 0 (a row impossible under the model that does not count)
    adds 0, not nan.
    """
    if sample_weight is None:
        return float(np.sum(values, dtype=np.float64))
    total = float(np.dot(sample_weight, values.astype(np.float64, copy=False)))
    if np.isnan(total):
        keep = sample_weight > 0
        total = float(np.dot(sample_weight[keep], values[keep].astype(np.float64, copy=False)))
    return total


def row_blocks(n_rows: int, block: int):
    """Yield slices that cover ``range(n_rows)`` in pieces of at most ``block`` rows."""
    block = max(1, int(block))
    for start in range(0, n_rows, block):
        yield slice(start, min(start + block, n_rows))
