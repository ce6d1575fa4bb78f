"""The Gaussian EM kernels: precisions, the fused E-step/statistics pass, missing values.

Everything here works on arrays in the four layouts of scikit-learn's covariance types
(full, tied, diag, spherical; a covariance model's ``kernel``): Cholesky factors of
precisions, the cached E-step arrays, the residual and fast routes of one pass over blocks
of rows (:func:`fused_statistics`), the sufficient statistics and scatter matrices, and the
densities and exact EM statistics of rows with missing entries. The estimator that uses
them, and what the routes are and when each is taken: :mod:`bayesmix.em.gaussian`. NumPy,
SciPy and BLAS only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import scipy.linalg

from bayesmix._validation import DataError
from bayesmix.em._arrays import _BLOCK_ELEMENTS, row_blocks, weighted_sum

_LOG_2PI = float(np.log(2.0 * np.pi))


# ============================================================================ precisions
def _fail_cholesky(k: int | None, dtype) -> DataError:
    where = "the tied covariance" if k is None else f"component {k}"
    hint = "; float64 data is also more accurate than float32" if dtype == np.float32 else ""
    return DataError(
        f"EM failed: {where} has an ill-defined covariance (singleton or collapsed points): "
        f"expected a positive definite matrix, got a singular one; increase reg_covar, use "
        f"fewer components, or scale the data{hint}"
    )


def _upper_precision_chol(cov: np.ndarray, k: int | None) -> np.ndarray:
    """U (upper) with ``inv(cov) = U U^T``, from the lower Cholesky factor of ``cov``."""
    try:
        chol = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        raise _fail_cholesky(k, cov.dtype) from None
    if not np.all(np.diag(chol) > 0):
        raise _fail_cholesky(k, cov.dtype)
    # inverse of the triangular factor by LAPACK ?trtri (scipy's solve_triangular has a large
    # per-call overhead for these small matrices)
    (trtri,) = scipy.linalg.get_lapack_funcs(("trtri",), (chol,))
    inv_chol, info = trtri(chol, lower=1)
    if info != 0:
        raise _fail_cholesky(k, cov.dtype)
    return np.triu(inv_chol.T)


def _prec_chol_full(cov):
    """Upper precision factors of a stack (K, D, D): one batched Cholesky and solve."""
    try:
        chol = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        chol = None
    if chol is not None and np.all(np.diagonal(chol, axis1=-2, axis2=-1) > 0):
        eye = np.broadcast_to(np.eye(cov.shape[-1], dtype=cov.dtype), cov.shape)
        try:
            inv_chol = np.linalg.solve(chol, eye)  # lower triangular: L^{-1}
            return np.triu(np.swapaxes(inv_chol, -1, -2))
        except np.linalg.LinAlgError:  # a factor too ill-conditioned for LU
            pass
    # one component at a time: inverts what can be inverted, names the failing component
    return np.stack([_upper_precision_chol(c, k) for k, c in enumerate(cov)])


def _prec_chol_tied(cov):
    return _upper_precision_chol(cov, None)


def _prec_chol_vector(cov):
    bad = ~(np.reshape(cov, (len(cov), -1)) > 0).all(axis=1)
    if bad.any():
        raise _fail_cholesky(int(np.flatnonzero(bad)[0]), cov.dtype)
    return 1.0 / np.sqrt(cov)


def _flip(a: np.ndarray) -> np.ndarray:
    return a[..., ::-1, ::-1]


def _prec_chol_from_precisions_matrix(prec: np.ndarray) -> np.ndarray:
    # upper U with P = U U^T: reverse rows/cols, take the lower Cholesky factor, reverse back
    return _flip(np.linalg.cholesky(_flip(prec)))


def _precisions_full(pc):
    return pc @ np.swapaxes(pc, -1, -2)


def _covariances_from_pc_matrix(pc):
    # P = U U^T  ->  Sigma = U^{-T} U^{-1}
    inv_u = np.linalg.inv(pc)
    cov = np.swapaxes(inv_u, -1, -2) @ inv_u
    return 0.5 * (cov + np.swapaxes(cov, -1, -2))


def _log_det_pc_full(pc):
    return np.log(np.diagonal(pc, axis1=-2, axis2=-1)).sum(axis=-1)


# ============================================================================ blocks of rows
# Every kernel works on the residuals ``z_k = x - mu_k`` of a block of rows about each
# component's current mean, feature-major (D, b): the E-step uses them whitened
# (``U_k^T z_k``, full/tied, never an expanded quadratic form) or squared (diag/spherical), and
# the M-step accumulates every component's moments about its own current mean. Nothing
# cancels: with clusters 1e8 apart or data at 1e9 with noise 1e-2 the statistics keep the
# digits of the spread, not of the offset.
#
# Full/tied run one component at a time on (D, b) arrays that stay in the core's cache, with
# BLAS routines that use the triangular and symmetric structure (half the flops of the
# general products): ``?trmm`` for the whitening ``U_k^T z_k`` and ``?syrk`` for the second
# moments, on ``[sqrt(r) z_k; sqrt(r)]`` so that one call also gives ``sum r z_k`` and
# ``n_k``. The diag/spherical residual route uses (K, D, b) arrays for all components at
# once; predictions go one component at a time for every type.
def _prepare_full(means, pc, shift=None):
    """E-step arrays for full covariances: means (K, D), ``U_k^T`` (K, D, D), constants (K,)."""
    d = means.shape[1]
    means = np.ascontiguousarray(means)
    return {
        "means": means,
        "ut": np.ascontiguousarray(np.swapaxes(pc, -1, -2)),
        "const": _log_det_pc_full(pc) - 0.5 * d * _LOG_2PI,
        "neg_half": np.full((1, d), -0.5, dtype=means.dtype),
        "whiten": True,
    }


def _prepare_tied(means, pc, shift=None):
    k = means.shape[0]
    return _prepare_full(means, np.broadcast_to(pc, (k, *pc.shape)), shift)


def _prepare_diag(means, pc, shift=None):
    """E-step arrays for diag/spherical: means (K, D), precisions (K, 1, D), constants (K,)."""
    k, d = means.shape
    pc = np.broadcast_to(np.reshape(pc, (k, -1)), (k, d))
    prec = pc * pc
    return {
        "means": np.ascontiguousarray(means),
        "prec": np.ascontiguousarray(prec[:, None, :]),
        "neg_half_prec": np.ascontiguousarray(-0.5 * prec),
        "const": np.log(pc).sum(axis=1) - 0.5 * d * _LOG_2PI,
        "whiten": False,
    }


def _scratch(workspace, name, shape, dtype):
    """A C-contiguous array of ``shape`` backed by a buffer reused across blocks and calls.

    Fresh multi-MB arrays are mapped from the OS page by page on first touch; reusing one
    buffer per role avoids those page faults in every block of every iteration.
    """
    size = math.prod(shape)
    if workspace is None:
        return np.empty(shape, dtype=dtype)
    buf = workspace.get(name)
    if buf is None or buf.size < size or buf.dtype != dtype:
        buf = workspace[name] = np.empty(size, dtype=dtype)
    return buf[:size].reshape(shape)


# From this many features on, diag/spherical predictions and fast-route blocks are kept
# row-major (b, D): no transposition of the data, and every elementwise pass runs over whole
# contiguous arrays (measured: faster from D ~ 30 on, slower for D = 2 or 10).
_ROW_MAJOR_FEATURES = 32


@lru_cache(maxsize=4)
def _tri_blas(dtype):
    """BLAS ``?trmm``, ``?syrk``, ``?ger`` and ``?gemm`` (SciPy's) for arrays of ``dtype``."""
    return scipy.linalg.get_blas_funcs(("trmm", "syrk", "ger", "gemm"), dtype=np.dtype(dtype))


def _centre_rows(xt, mu, out, ones):
    """``out = xt - mu[:, None]`` for xt (D, b), bit for bit the NumPy subtraction.

    A copy and a BLAS rank-1 update ``out -= mu 1^T`` (each element ``x - 1 * mu``, one
    rounding): about 1.6 times as fast as NumPy's subtraction of a broadcast column.
    """
    ger = _tri_blas(xt.dtype)[2]
    np.copyto(out, xt)
    a = out.T
    res = ger(-1.0, ones, mu, a=a, overwrite_a=1)
    if res is not a:  # BLAS worked on a copy (never with the arrays made here)
        a[...] = res


def _feature_major(X, workspace=None):
    """The rows of X (b, D) as a C-contiguous (D, b) array (a scratch buffer)."""
    b, d = X.shape
    xt = _scratch(workspace, "xt", (d, b), X.dtype)
    xt[...] = X.T
    return xt


def _residuals(X, means, workspace=None):
    """``z[k, :, n] = x_n - mu_k``, shape (K, D, b) (rows of length b)."""
    xt = _feature_major(X, workspace)
    z = _scratch(workspace, "z", (means.shape[0], *xt.shape), X.dtype)
    np.subtract(xt[None], means[:, :, None], out=z)
    return z


def _whitened_log_prob(xt, prep, logp, y):
    """Full/tied log densities ``logp[k] = c_k - 0.5 ||U_k^T (x - mu_k)||^2`` of a block.

    ``xt`` (D, b) the rows feature-major, ``logp`` (K, b) the output, ``y`` (D, b) C-contiguous
    scratch. One component at a time: residuals, then ``U_k^T z`` in place by ``?trmm``.
    """
    trmm = _tri_blas(xt.dtype)[0]
    means, ut, neg_half = prep["means"], prep["ut"], prep["neg_half"]
    ones = np.ones(xt.shape[1], dtype=xt.dtype)
    y_f = y.T  # Fortran (b, D) view: y^T <- y^T U_k is y <- U_k^T y
    for j in range(means.shape[0]):
        _centre_rows(xt, means[j], y, ones)
        res = trmm(1.0, ut[j].T, y_f, side=1, lower=0, trans_a=0, diag=0, overwrite_b=1)
        if res is not y_f:  # BLAS worked on a copy (never with the arrays made here)
            y_f[...] = res
        np.multiply(y, y, out=y)
        np.matmul(neg_half, y, out=logp[j : j + 1])
    logp += prep["const"][:, None]
    return logp


def _whitened_moments(xt, means, resp_t, y, acc):
    """Add a block's full/tied moments about ``means`` (K, D) to ``acc`` (K, D + 1, D + 1).

    ``xt`` (D, b) the rows feature-major, ``resp_t`` (K, b) responsibilities, ``y``
    (D + 1, b) C-contiguous scratch (the residuals are made again: keeping them from the
    E-step costs as much in cache misses as it saves).
    ``?syrk`` on ``a = [sqrt(r) z_k; sqrt(r)]`` adds ``sum_n a a^T`` to the lower triangle of
    ``acc[k]`` (C order): ``S_k`` in the first D rows and columns, ``sum r z_k`` in row D,
    ``n_k`` at (D, D); the upper triangle is not touched.
    """
    syrk = _tri_blas(xt.dtype)[1]
    d, b = xt.shape
    a, root = y[:d], y[d]
    ones = np.ones(b, dtype=xt.dtype)
    y_f = y.T  # Fortran (b, D + 1): C = y_f^T y_f
    for j in range(means.shape[0]):
        np.sqrt(resp_t[j], out=root)
        _centre_rows(xt, means[j], a, ones)
        np.multiply(a, root, out=a)
        c = acc[j].T  # Fortran view of acc[j]: its upper triangle is acc[j]'s lower one
        res = syrk(1.0, y_f, beta=1.0, c=c, trans=1, lower=0, overwrite_c=1)
        if res is not c:  # BLAS worked on a copy (never with the arrays made here)
            c[...] = res


def _whitened_block(X, prep, workspace=None):
    """Full/tied log densities (K, b) of the rows of X (b, D), and the rows feature-major."""
    xt = _feature_major(X, workspace)
    logp = _scratch(workspace, "logp", (prep["means"].shape[0], X.shape[0]), X.dtype)
    y = _scratch(workspace, "y", xt.shape, X.dtype)
    return _whitened_log_prob(xt, prep, logp, y), xt


def _block_log_prob(X, prep, workspace=None):
    """Component log densities of a block of rows, shape (K, b); also what the M-step needs.

    Returns ``(logp, z, q)``. Full/tied: ``z`` the rows feature-major (D, b), ``q`` None.
    Diag/spherical: ``z`` (K, D, b) the residuals about the means and ``q`` (K, D, b) their
    squares.
    """
    if prep["whiten"]:
        logp, xt = _whitened_block(X, prep, workspace)
        return logp, xt, None
    k = prep["means"].shape[0]
    logp = _scratch(workspace, "logp", (k, X.shape[0]), X.dtype)
    z = _residuals(X, prep["means"], workspace)
    q = _scratch(workspace, "q", z.shape, X.dtype)
    np.multiply(z, z, out=q)  # squared residuals, kept for the M-step
    np.matmul(prep["prec"], q, out=logp[:, None, :])
    logp *= -0.5
    logp += prep["const"][:, None]
    return logp, z, q


def _log_prob_t(X, prep, workspace=None):
    """Component log densities of the rows of X (b, D), shape (K, b) (a scratch buffer).

    One component at a time on (D, b) arrays (predict/score: less memory than the fused pass).
    """
    if prep["whiten"]:
        return _whitened_block(X, prep, workspace)[0]
    k = prep["means"].shape[0]
    b = X.shape[0]
    logp = _scratch(workspace, "logp", (k, b), X.dtype)
    if X.shape[1] < _ROW_MAJOR_FEATURES:  # feature-major: long rows for NumPy and BLAS
        xt = _feature_major(X, workspace)
        y = _scratch(workspace, "y", xt.shape, X.dtype)
        ones = np.ones(b, dtype=X.dtype)
        for j in range(k):
            _centre_rows(xt, prep["means"][j], y, ones)
            np.multiply(y, y, out=y)
            np.matmul(prep["neg_half_prec"][j : j + 1], y, out=logp[j : j + 1])
        logp += prep["const"][:, None]
        return logp
    # many features: row-major (b, D), no transposition; every pass runs over whole
    # contiguous arrays. z = x - mu_k bit for bit as in _centre_rows (copy, rank-1 update).
    z = _scratch(workspace, "y", X.shape, X.dtype)
    ones = np.ones(b, dtype=X.dtype)
    ger = _tri_blas(X.dtype)[2]
    z_f = z.T  # Fortran (D, b)
    for j in range(k):
        np.copyto(z, X)
        res = ger(-1.0, prep["means"][j], ones, a=z_f, overwrite_a=1)
        if res is not z_f:  # BLAS worked on a copy (never with the arrays made here)
            z_f[...] = res
        np.multiply(z, z, out=z)
        np.matmul(z, prep["neg_half_prec"][j], out=logp[j])
    logp += prep["const"][:, None]
    return logp


def _log_prob_block(X, prep, out, workspace=None):
    """Component log densities of the rows of X (b, D) into out (b, K)."""
    out[...] = _log_prob_t(X, prep, workspace).T


@dataclass
class _Stats:
    """Sufficient statistics about reference points ``ref`` (K, D) (the means of the pass).

    ``sx = sum_n r_nk (x_n - ref_k)``; ``second`` the second moments about ``ref_k``: full
    (K, D, D), tied (D, D) (summed over k), diag/spherical (K, D) (the diagonal).
    """

    nk: np.ndarray  # (K,)
    sx: np.ndarray  # (K, D)
    second: np.ndarray
    ref: np.ndarray | None = None  # (K, D)


def _moments_block(z, q, resp_t, out):
    """Add a block's diag/spherical ``n_k``, ``sum r z`` and ``sum r z^2`` to ``out``.

    ``z`` (K, D, b) residuals, ``q`` their squares, ``resp_t`` (K, b) responsibilities.
    Layout of ``out``: ``[n (K), sx (K D), second (K D)]``.
    """
    k, d, b = z.shape
    out[:k] += resp_t.sum(axis=1)
    sx = np.matmul(z, resp_t[:, :, None])  # (K, D, 1)
    out[k : k + k * d] += sx.reshape(-1)
    second = np.matmul(q, resp_t[:, :, None])  # (K, D, 1)
    out[k + k * d :] += second.reshape(-1)


def _stats_size(k, d, whiten):
    """Length of the flat statistics vector: full/tied (K, D + 1, D + 1), else K + 2 K D."""
    return k * (d + 1) * (d + 1) if whiten else k + 2 * k * d


def _unpack(covariance_type, g, d, k):
    """``_Stats`` (``ref`` not set) from the flat statistics vector of one pass."""
    g = np.asarray(g)
    if covariance_type in ("full", "tied"):
        acc = g.reshape(k, d + 1, d + 1)  # lower triangles (see _whitened_moments)
        nk = acc[:, d, d].copy()
        sx = acc[:, d, :d].copy()
        s = acc[:, :d, :d]
        second = np.tril(s) + np.swapaxes(np.tril(s, -1), -1, -2)
        if covariance_type == "tied":
            second = second.sum(axis=0)
    else:
        nk = g[:k].copy()
        sx = g[k : k + k * d].reshape(k, d).copy()
        second = g[k + k * d :].reshape(k, d).copy()
    return _Stats(nk, sx, second)


# scatter sum_n r_nk (x_n - mu_k)(x_n - mu_k)^T about new means, from the statistics about
# ref; ``delta = mu - ref`` (K, D) is small (the change of the means in one iteration), so the
# corrections below are small next to ``second``
def _scatter_full(st, delta):
    cross = st.sx[:, :, None] * delta[:, None, :]
    return (
        st.second
        - cross
        - cross.transpose(0, 2, 1)
        + st.nk[:, None, None] * (delta[:, :, None] * delta[:, None, :])
    )


def _scatter_tied(st, delta):
    cross = st.sx.T @ delta
    return st.second - cross - cross.T + (st.nk[:, None] * delta).T @ delta


def _scatter_diag(st, delta):
    return np.maximum(st.second - 2.0 * delta * st.sx + st.nk[:, None] * delta * delta, 0.0)


@dataclass(frozen=True)
class _CovarianceOps:
    """Everything that depends on the covariance type, in one place."""

    scatter: Any  # (_Stats, means - ref) -> scatter matrices
    prec_chol: Any  # covariances -> precisions_cholesky_
    prepare: Any  # (means, precisions_cholesky) -> cached E-step arrays
    whiten: bool  # full/tied (whitened residuals) or diag/spherical (squared residuals)


_OPS = {
    "full": _CovarianceOps(_scatter_full, _prec_chol_full, _prepare_full, True),
    "tied": _CovarianceOps(_scatter_tied, _prec_chol_tied, _prepare_tied, True),
    "diag": _CovarianceOps(_scatter_diag, _prec_chol_vector, _prepare_diag, False),
    "spherical": _CovarianceOps(_scatter_diag, _prec_chol_vector, _prepare_diag, False),
}


def _statistics(covariance_type, X, resp, ref, block, workspace=None):
    """Sufficient statistics about ``ref`` (K, D) from responsibilities resp (N, K)."""
    k, d = ref.shape
    whiten = _OPS[covariance_type].whiten
    g = np.zeros(_stats_size(k, d, whiten), dtype=X.dtype)
    for rows in row_blocks(X.shape[0], block):
        resp_t = np.ascontiguousarray(resp[rows].T)
        if whiten:
            xt = _feature_major(X[rows], workspace)
            y = _scratch(workspace, "y", (d + 1, xt.shape[1]), X.dtype)
            _whitened_moments(xt, ref, resp_t, y, g.reshape(k, d + 1, d + 1))
        else:
            z = _residuals(X[rows], ref, workspace)
            q = _scratch(workspace, "q", z.shape, X.dtype)
            np.multiply(z, z, out=q)
            _moments_block(z, q, resp_t, g)
    st = _unpack(covariance_type, g, d, k)
    st.ref = ref
    return st


def _statistics_two_pass(covariance_type, X, resp, shift, block):
    """Statistics about the weighted means themselves (two passes: means, then moments)."""
    k = resp.shape[1]
    nk = resp.sum(axis=0) + 10 * np.finfo(X.dtype).eps
    sx = np.zeros((k, X.shape[1]), dtype=X.dtype)
    for rows in row_blocks(X.shape[0], block):
        sx += resp[rows].T @ (X[rows] - shift)
    ref = (shift + sx / nk[:, None]).astype(X.dtype)
    return _statistics(covariance_type, X, resp, ref, block)


def _halfnormal_variance(n, s, t):
    """Maximiser s^2 of -n log s - S/(2 s^2) - s^2/(2 t^2) (stable form)."""
    return 2.0 * s / (n + np.sqrt(n * n + 4.0 * s / (t * t)))


def _normalize_rows_inplace(a):
    """Column-wise log-sum-exp of a (K, b) array, in place (cf. normalize_log_prob_inplace).

    ``a[k, n] = log w_k + log p(x_n | theta_k)`` becomes the responsibility ``r_nk``;
    returns ``log p(x_n)`` of shape (b,). Every operation runs along rows of length b.
    """
    m = a.max(axis=0)
    finite = np.isfinite(m)
    if not finite.all():  # rows impossible under every component: keep -inf, avoid nan
        m[~finite] = 0.0
    a -= m
    np.exp(a, out=a)
    s = a.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        a /= s
        log_norm = np.log(s)
    log_norm += m
    if not finite.all():
        a[:, ~finite] = 1.0 / a.shape[0]
    return log_norm


# ============================================================================ fast route
# When every component mean lies within a few whitened units of the data mean ``c``, the
# expanded forms below lose at most a fifth of the digits, and one feature matrix per block
# serves both steps (one BLAS product each):
#
# * diag/spherical: ``F_b = [1, x - c, (x - c)^2]``; ``F_b^T W`` gives the log densities of
#   all components and ``F_b r_b`` every sufficient statistic (about c);
# * full/tied with ``K D >= 0.4 Q``, ``Q = 1 + D + D (D + 1) / 2``:
#   ``F_b = [1, x - c, upper triangle of (x - c)(x - c)^T]``, likewise.
#
# The loss of digits is about ``eps * max_k ||U_k^T (mu_k - c)||^2`` (the Mahalanobis distance
# of a mean from c under its own covariance): both the quadratic form near ``mu_k`` and the
# scatter ``E[(x - c)(x - c)^T] - (mu_k - c)(mu_k - c)^T`` cancel terms of that size.
def _fast_threshold(dtype):
    """Largest squared whitened distance of a mean from c for the fast route (eps^(-1/5))."""
    return float(np.finfo(dtype).eps) ** -0.2  # float64: 1.3e3 (3 digits); float32: 24


def _use_products(k, d):
    """Whether full/tied product features beat the residual route (measured: K D >= 0.4 Q)."""
    return 5 * k * d >= 2 * (1 + d + d * (d + 1) // 2)


def _prepare_fast(covariance_type, means, pc, shift):
    """Weights of the fast route, or None when it would lose digits (or is not cheaper)."""
    if shift is None:
        return None
    k, d = means.shape
    m = means - shift
    if covariance_type in ("full", "tied"):
        if not _use_products(k, d):
            return None
        pcs = np.broadcast_to(pc, (k, d, d))
        white = np.einsum("kd,kde->ke", m, pcs)
        const = _log_det_pc_full(pcs) - 0.5 * d * _LOG_2PI
        w, products = None, True
    else:
        pcv = np.broadcast_to(np.reshape(pc, (k, -1)), (k, d))
        white = m * pcv
        products = False
    dist2 = np.max(np.sum(white * white, axis=1))
    if not dist2 <= _fast_threshold(means.dtype):
        return None
    if products:
        w = _quadratic_weights(m, pcs, const)
    else:
        prec = pcv * pcv
        w = np.empty((1 + 2 * d, k), dtype=means.dtype)
        w[0] = -0.5 * np.sum(m * m * prec, axis=1) + np.log(pcv).sum(axis=1)
        w[0] -= 0.5 * d * _LOG_2PI
        w[1 : 1 + d] = (m * prec).T
        w[1 + d :] = -0.5 * prec.T
    return {"w": np.ascontiguousarray(w), "shift": shift, "products": products}


def _quadratic_weights(m, pcs, const):
    """W of shape (Q, K) with ``F^T W = log N(x | mu_k, Sigma_k)`` for the product features.

    ``F = [1, x - c, upper triangle of (x - c)(x - c)^T]`` (see ``_features_products``):
    ``-0.5 (y - m)^T P (y - m) = -0.5 m^T P m + y^T P m - 0.5 sum_i P_ii y_i^2
    - sum_{i<j} P_ij y_i y_j`` with ``y = x - c``.
    """
    k, d = m.shape
    prec = pcs @ np.swapaxes(pcs, -1, -2)  # (K, D, D)
    pm = np.einsum("kde,ke->kd", prec, m)
    upper = _triu_indices(d)
    coef = -prec[:, upper[0], upper[1]]
    coef[:, upper[0] == upper[1]] *= 0.5
    w = np.empty((1 + d + len(upper[0]), k), dtype=m.dtype)
    w[0] = const - 0.5 * np.einsum("kd,kd->k", m, pm)
    w[1 : 1 + d] = pm.T
    w[1 + d :] = coef.T
    return w


@lru_cache(maxsize=64)
def _triu_indices(d):
    return np.triu_indices(d)


def _features_squares(X, shift, workspace=None):
    """``[1, x - c, (x - c)^2]`` as rows: shape (1 + 2D, b) (feature-major)."""
    b, d = X.shape
    f = _scratch(workspace, "features", (1 + 2 * d, b), X.dtype)
    f[0] = 1.0
    xc = f[1 : 1 + d]
    np.subtract(X.T, shift[:, None], out=xc)
    np.multiply(xc, xc, out=f[1 + d :])
    return f


def _features_products(X, shift, workspace=None):
    """``[1, x - c, upper triangle of (x - c)(x - c)^T]`` as rows: (1 + D + D(D+1)/2, b)."""
    b, d = X.shape
    f = _scratch(workspace, "features", (1 + d + d * (d + 1) // 2, b), X.dtype)
    f[0] = 1.0
    xc = f[1 : 1 + d]
    np.subtract(X.T, shift[:, None], out=xc)
    start = 1 + d
    for i in range(d):  # row-major upper triangle, contiguous writes
        np.multiply(xc[i], xc[i:], out=f[start : start + d - i])
        start += d - i
    return f


def _unpack_fast(covariance_type, g, d, k, shift):
    """``_Stats`` about ``c`` (ref = c for every component) from the fast route's (Q, K)."""
    g = np.asarray(g)
    nk = g[0].copy()
    sx = np.ascontiguousarray(g[1 : 1 + d].T)
    if covariance_type in ("full", "tied"):
        upper = _triu_indices(d)
        second = np.empty((k, d, d), dtype=g.dtype)
        second[:, upper[0], upper[1]] = g[1 + d :].T
        second[:, upper[1], upper[0]] = g[1 + d :].T
        if covariance_type == "tied":
            second = second.sum(axis=0)
    else:
        second = np.ascontiguousarray(g[1 + d :].T)
    return _Stats(nk, sx, second, np.broadcast_to(shift, (k, d)).copy())


def _gemm_into(a_f, b_f, c_f, trans_a, trans_b):
    """``c_f += op(a_f) op(b_f)`` in place by BLAS ``?gemm`` on Fortran-ordered views."""
    gemm = _tri_blas(c_f.dtype)[3]
    res = gemm(1.0, a_f, b_f, beta=1.0, c=c_f, trans_a=trans_a, trans_b=trans_b, overwrite_c=1)
    if res is not c_f:  # BLAS worked on a copy (never with the arrays made here)
        c_f[...] = res


def _fast_pass_squares_rows(X, fast, log_w, n_components, block, workspace, sample_weight=None):
    """The diag/spherical fast route with many features, row-major.

    The features ``[1, x - c, (x - c)^2]`` stay two (b, D) arrays, ``xc = x - c`` (a copy and
    a rank-1 update, bit for bit the subtraction) and its square; each product goes by
    ``?gemm`` straight into its place: the log densities (K, b) and the rows of the
    statistics ``g`` (Q, K), the same layout as :func:`_fast_pass`.
    """
    n, d = X.shape
    k = n_components
    ger = _tri_blas(X.dtype)[2]
    shift, w = fast["shift"], fast["w"]
    w0 = (w[0] + log_w)[:, None]
    w1_f, w2_f = w[1 : 1 + d].T, w[1 + d :].T  # Fortran (K, D) views
    g = np.zeros((1 + 2 * d, k), dtype=X.dtype)
    sx_f, s2_f = g[1 : 1 + d].T, g[1 + d :].T  # Fortran (K, D) views of rows of g
    total = 0.0
    for rows in row_blocks(n, block):
        b = rows.stop - rows.start
        xc = _scratch(workspace, "xc", (b, d), X.dtype)
        sq = _scratch(workspace, "xc2", (b, d), X.dtype)
        np.copyto(xc, X[rows])
        xc_f = xc.T  # Fortran (D, b)
        res = ger(-1.0, shift, np.ones(b, dtype=X.dtype), a=xc_f, overwrite_a=1)
        if res is not xc_f:  # BLAS worked on a copy (never with the arrays made here)
            xc_f[...] = res
        np.multiply(xc, xc, out=sq)
        resp_t = _scratch(workspace, "resp", (k, b), X.dtype)
        resp_t[...] = w0
        lp_f = resp_t.T  # Fortran (b, K)
        _gemm_into(xc_f, w1_f, lp_f, 1, 1)
        _gemm_into(sq.T, w2_f, lp_f, 1, 1)
        total += _weigh_block(resp_t, sample_weight, rows)
        g[0] += resp_t.sum(axis=1)
        _gemm_into(lp_f, xc_f, sx_f, 1, 1)
        _gemm_into(lp_f, sq.T, s2_f, 1, 1)
    return total, g


def _fast_log_prob_t(X, fast, prec_max, workspace=None):
    """Diag/spherical log densities (K, b) of the rows of X by the fast route, or None.

    None when a row lies farther from c than the fast route's limit (``_fast_threshold``)
    in the whitened units of the narrowest variance of each feature, ``prec_max`` (D,): then
    the expansion could lose more than a fifth of the digits and the caller uses the residual
    route. Within the limit the error of every log density is at most ~4 eps^(4/5) (1e-12 in
    float64), as in the fit itself.
    """
    b, d = X.shape
    shift, w = fast["shift"], fast["w"]
    if d >= _ROW_MAJOR_FEATURES:
        xc = _scratch(workspace, "xc", (b, d), X.dtype)
        sq = _scratch(workspace, "xc2", (b, d), X.dtype)
        np.copyto(xc, X)
        xc_f = xc.T  # Fortran (D, b)
        res = _tri_blas(X.dtype)[2](-1.0, shift, np.ones(b, dtype=X.dtype), a=xc_f, overwrite_a=1)
        if res is not xc_f:  # BLAS worked on a copy (never with the arrays made here)
            xc_f[...] = res
        np.multiply(xc, xc, out=sq)
        if not np.max(sq @ prec_max) <= _fast_threshold(X.dtype):
            return None
        logp = _scratch(workspace, "logp", (w.shape[1], b), X.dtype)
        logp[...] = w[0][:, None]
        lp_f = logp.T  # Fortran (b, K)
        _gemm_into(xc_f, w[1 : 1 + d].T, lp_f, 1, 1)
        _gemm_into(sq.T, w[1 + d :].T, lp_f, 1, 1)
        return logp
    features = _features_squares(X, shift, workspace)
    if not np.max(prec_max @ features[1 + d :]) <= _fast_threshold(X.dtype):
        return None
    logp = _scratch(workspace, "logp", (w.shape[1], b), X.dtype)
    return np.matmul(w.T, features, out=logp)


def _weigh_block(resp_t, sample_weight, rows):
    """Responsibilities of a block in place, times its rows' weights; ``sum_n w_n log p(x_n)``.

    ``resp_t`` (K, b) holds ``log w_k + log p(x_n | theta_k)``; without weights this is
    :func:`_normalize_rows_inplace` and the plain sum.
    """
    log_norm = _normalize_rows_inplace(resp_t)
    if sample_weight is None:
        return float(np.sum(log_norm, dtype=np.float64))
    w = sample_weight[rows]
    resp_t *= w.astype(resp_t.dtype, copy=False)
    return weighted_sum(log_norm, w)


def _fast_pass(X, fast, log_w, n_components, block, workspace, sample_weight=None):
    if not fast["products"] and X.shape[1] >= _ROW_MAJOR_FEATURES:
        return _fast_pass_squares_rows(
            X, fast, log_w, n_components, block, workspace, sample_weight
        )
    total = 0.0
    g = None
    shift, w = fast["shift"], fast["w"]
    for rows in row_blocks(X.shape[0], block):
        xb = X[rows]
        if fast["products"]:
            features = _features_products(xb, shift, workspace)
        else:
            features = _features_squares(xb, shift, workspace)
        resp_t = _scratch(workspace, "resp", (n_components, xb.shape[0]), X.dtype)
        np.matmul(w.T, features, out=resp_t)
        resp_t += log_w[:, None]
        total += _weigh_block(resp_t, sample_weight, rows)
        part = features @ resp_t.T
        if g is None:
            g = part
        else:
            g += part
    return total, g


def fused_statistics(
    X, estep, log_w, covariance_type, n_components, block, workspace=None, sample_weight=None
):
    """One pass over blocks of rows: E-step and the M-step's sufficient statistics.

    For each block: the residuals about every component's current mean, component log
    densities from them, in-place normalisation to responsibilities and the block's share of
    every sufficient statistic (about the current means). No (N, K) array is made. Also the
    per-block function of the Dask path (one call per Dask chunk).

    Parameters
    ----------
    X : ndarray of shape (N, D)
    estep : dict
        Cached E-step arrays (``GaussianMixtureEM._estep``), ``estep["means"]`` (K, D) the
        reference points of the statistics.
    log_w : ndarray of shape (K,)
    covariance_type : str
    n_components : int
    block : int
        Rows per block.
    workspace : dict, optional
        Scratch buffers reused across blocks and calls (see ``_scratch``).
    sample_weight : ndarray of shape (N,), optional
        Frequency weights: each block's responsibilities are multiplied by its rows' weights
        before the statistics are accumulated (no extra work without weights).

    Returns
    -------
    total : float
        ``sum_n w_n log p(x_n)``.
    g : ndarray of shape (K (D + 1) (D + 1),) (full/tied) or (K + 2 K D,) (diag/spherical)
        Summed statistics, in the layout that :func:`fused_unpack` reads.
    """
    if estep.get("fast") is not None:
        return _fast_pass(X, estep["fast"], log_w, n_components, block, workspace, sample_weight)
    n, d = X.shape
    k = n_components
    whiten = _OPS[covariance_type].whiten
    total = 0.0
    g = np.zeros(_stats_size(k, d, whiten), dtype=X.dtype)
    for rows in row_blocks(n, block):
        resp_t, z, q = _block_log_prob(X[rows], estep, workspace)
        resp_t += log_w[:, None]
        total += _weigh_block(resp_t, sample_weight, rows)
        if whiten:  # z: the rows feature-major (D, b)
            y = _scratch(workspace, "y", (d + 1, z.shape[1]), X.dtype)
            _whitened_moments(z, estep["means"], resp_t, y, g.reshape(k, d + 1, d + 1))
        else:
            _moments_block(z, q, resp_t, g)
    return total, g


def fused_unpack(covariance_type, g, d, k, estep):
    """``_Stats`` from the summed output ``g`` of :func:`fused_statistics` (D features, K).

    ``estep`` are the E-step arrays that the pass used: the statistics are about its means,
    or about the data mean c on the fast route (``ref`` says which).
    """
    fast = estep.get("fast")
    if fast is not None:
        return _unpack_fast(covariance_type, g, d, k, fast["shift"])
    st = _unpack(covariance_type, g, d, k)
    st.ref = estep["means"]
    return st


def _check_finite_covariances(cov, covariance_type):
    """Raise DataError when a covariance overflowed float64 (data of a huge spread)."""
    if np.all(np.isfinite(cov)):
        return
    if covariance_type == "tied":
        where = "the tied covariance"
    else:
        bad = ~np.isfinite(np.reshape(cov, (len(cov), -1))).all(axis=1)
        where = f"component {int(np.flatnonzero(bad)[0])}"
    raise DataError(
        f"EM failed: {where} overflows: expected finite covariances, got inf or nan (the "
        "squared spread of the data exceeds the floating-point range); rescale the data, e.g. "
        "divide each column by its standard deviation"
    )


def _is_dask(X) -> bool:
    """Whether X is a Dask array (without importing dask)."""
    return type(X).__module__.startswith("dask.") and hasattr(X, "chunks")


def _is_jax(X) -> bool:
    """Whether X is a JAX array (without importing jax)."""
    return type(X).__module__.startswith(("jax", "jaxlib")) and hasattr(X, "devices")


# ============================================================================ missing values
# With missing="model" a NaN entry is missing at random. Rows with no NaN go through the
# kernels above. The others are sorted by their pattern of observed features o. Per pattern
# and component, Sigma_oo is padded to D x D with the identity on the missing features (no
# cross terms), ``S~ = Sigma_oo (+) I``: one batched Cholesky factor L of every pattern and
# component gives ``||L^{-1} z~||^2 = z_o^T Sigma_oo^{-1} z_o`` and ``log|S~| = log|Sigma_oo|``
# for the residuals ``z~`` with 0 at NaN, and ``S~^{-1}`` the M-step's regressions
# ``Sigma_mo Sigma_oo^{-1}``. Arrays keep the D feature positions: one matrix product per
# pattern, no gathers of columns.
def _missing_rows(X):
    """Indices of the rows of X (b, D) with a NaN, and the observed-value mask of those rows."""
    # a NaN makes the row's sum NaN: one product finds the candidates, an exact check follows
    candidates = np.flatnonzero(np.isnan(X @ np.ones(X.shape[1], dtype=X.dtype)))
    observed = ~np.isnan(X[candidates])
    some = ~observed.all(axis=1)
    return candidates[some], observed[some]


def _pattern_order(observed):
    """Rows (n, D) sorted by pattern of observed features.

    Returns ``order`` (n,), ``bounds`` (P + 1,) (the rows of pattern p are
    ``order[bounds[p]:bounds[p + 1]]``) and the patterns (P, D).
    """
    d = observed.shape[1]
    if d < 63:  # the pattern as the bits of one integer: a sort of integers, not of rows
        keys = observed @ (np.int64(1) << np.arange(d, dtype=np.int64))
    else:
        keys = np.unique(np.packbits(observed, axis=1), axis=0, return_inverse=True)[1]
        keys = keys.reshape(-1)
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    bounds = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1], True])
    return order, bounds, observed[order[bounds[:-1]]]


def _sorted_residuals(X, observed, means):
    """``_pattern_order`` of the rows and their residuals about the means, 0 at NaN.

    The residuals are feature-major, (K, D, n) (long rows for NumPy and BLAS).
    """
    order, bounds, patterns = _pattern_order(observed)
    obs_t = observed[order].T
    z = X[order].T - means[:, :, None]
    return order, bounds, patterns, np.where(obs_t, z, 0.0)


def _pattern_chunks(n_patterns, k, d):
    """Ranges of patterns whose (P, K, D, D) factors hold about ``_BLOCK_ELEMENTS`` values."""
    step = max(1, _BLOCK_ELEMENTS // (k * d * d))
    for start in range(0, n_patterns, step):
        yield start, min(start + step, n_patterns)


def _pattern_factors(cov, patterns):
    """Cholesky factors of ``S~ = Sigma_oo (+) I`` per pattern (P) and covariance (K or 1).

    Returns the lower factors and their inverses (P, K', D, D) and the mask of observed
    pairs of features (P, 1, D, D).
    """
    both = patterns[:, None, :, None] & patterns[:, None, None, :]
    chol = np.linalg.cholesky(np.where(both, cov, np.eye(cov.shape[-1], dtype=cov.dtype)))
    return chol, np.linalg.inv(chol), both


def _pattern_regressions(cov, patterns):
    """``G`` and the padded conditional covariances (P, K', D, D) of each pattern.

    ``G z~`` is ``E[x | x_o, z = k] - mu_k`` of a row (its residual z~ with 0 at NaN):
    ``G = I`` on the observed features, ``Sigma_mo Sigma_oo^{-1}`` in the missing rows. The
    conditional covariance ``Sigma_mm - Sigma_mo Sigma_oo^{-1} Sigma_om`` sits in the missing
    rows and columns, zeros elsewhere.
    """
    _, inv_chol, both = _pattern_factors(cov, patterns)
    d = cov.shape[-1]
    h = np.where(both, np.swapaxes(inv_chol, -1, -2) @ inv_chol, 0.0)  # Sigma_oo^{-1}, padded
    sh = cov @ h  # missing rows, observed columns: Sigma_mo Sigma_oo^{-1}; zero columns at m
    missing = ~patterns[:, None, :, None]  # (P, 1, D, 1)
    eye_o = np.eye(d, dtype=cov.dtype) * patterns[:, None, None, :]
    gain = np.where(missing, sh, eye_o)
    cond = np.where(missing & np.swapaxes(missing, -1, -2), cov - sh @ cov, 0.0)
    return gain, 0.5 * (cond + np.swapaxes(cond, -1, -2))


def _covariance_stack(cov, covariance_type, k, d):
    """Covariances as (K, D, D) (full), (1, D, D) (tied) or variances (K, D) (diag/sph.)."""
    if covariance_type == "full":
        return cov
    if covariance_type == "tied":
        return cov[None]
    return np.broadcast_to(np.reshape(cov, (k, -1)), (k, d))


def _missing_log_prob(covariance_type, X, observed, means, cov):
    """Log densities (n, K) of the observed coordinates of rows with NaN.

    ``log N(x_o | mu_ko, Sigma_k,oo)`` for each row of X (n, D) (``observed`` its mask) and
    component; ``cov`` as :func:`_covariance_stack` returns it.
    """
    if covariance_type in ("diag", "spherical"):  # the sum over the observed features
        z = np.where(observed[:, None, :], X[:, None, :] - means, 0.0)  # (n, K, D)
        out = np.einsum("nkd,nkd->nk", z, z / cov)
        out += observed.astype(X.dtype) @ (np.log(cov) + _LOG_2PI).T
        out *= -0.5
        return out
    order, bounds, patterns, z = _sorted_residuals(X, observed, means)
    y = np.empty_like(z)
    log_det = np.empty((cov.shape[0], z.shape[2]), dtype=X.dtype)  # rows in sorted order
    for start, stop in _pattern_chunks(len(patterns), cov.shape[0], X.shape[1]):
        chol, inv_chol, _ = _pattern_factors(cov, patterns[start:stop])
        half_log_det = np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(axis=-1)
        for p in range(start, stop):
            rows = slice(bounds[p], bounds[p + 1])
            y[:, :, rows] = inv_chol[p - start] @ z[:, :, rows]  # L^{-1} z~
            log_det[:, rows] = half_log_det[p - start][:, None]
    np.multiply(y, y, out=y)
    logp = y.sum(axis=1)  # (K, n)
    logp += observed[order].sum(axis=1) * _LOG_2PI
    logp *= -0.5
    logp -= log_det
    out = np.empty((X.shape[0], means.shape[0]), dtype=X.dtype)
    out[order] = logp.T
    return out


def _missing_statistics(covariance_type, X, resp, means, cov, block):
    """Expected sufficient statistics of exact EM with NaN entries, about ``means`` (K, D).

    E-step of the missing coordinates m of a row, at the current parameters (``means``,
    ``cov`` as from :func:`_covariance_stack`): ``E[x_m | x_o, z = k] = mu_km +
    S_mo S_oo^{-1} (x_o - mu_ko)`` and ``Cov[x_m | x_o, z = k] = C = S_mm - S_mo S_oo^{-1}
    S_om`` (Ghahramani & Jordan 1994). With the residuals ``e = E[x | x_o, k] - mu_k`` the
    statistics are ``n_k``, ``sum r e`` and ``sum r (e e^T + C padded with zeros)``, which
    the M-step formulas of complete data turn into the maximiser of the expected
    complete-data log-likelihood (the observed-data objective never decreases). Rows with
    no NaN use :func:`_statistics`.
    """
    k, d = means.shape
    incomplete, observed = _missing_rows(X)
    complete = np.ones(X.shape[0], dtype=bool)
    complete[incomplete] = False
    st = _statistics(covariance_type, X[complete], resp[complete], means, block)
    st.nk += resp[incomplete].sum(axis=0)
    whiten = _OPS[covariance_type].whiten
    sx = np.zeros((k, d), dtype=X.dtype)
    second = np.zeros((k, d, d) if whiten else (k, d), dtype=X.dtype)
    for part in row_blocks(incomplete.size, block):
        rows, obs = incomplete[part], observed[part]
        if not whiten:  # diagonal: x_m independent of x_o, E[x_m] = mu_m, C = diag(var_m)
            r = resp[rows]
            e = np.where(obs[:, None, :], X[rows][:, None, :] - means, 0.0)  # (b, K, D)
            sx += np.einsum("nk,nkd->kd", r, e)
            second += np.einsum("nk,nkd->kd", r, e * e)
            second += (r.T @ (~obs).astype(X.dtype)) * cov
            continue
        order, bounds, patterns, z = _sorted_residuals(X[rows], obs, means)
        r = np.ascontiguousarray(resp[rows[order]].T)  # (K, b)
        r_pattern = np.add.reduceat(r, bounds[:-1], axis=1)  # (K, P)
        e = np.empty_like(z)  # (K, D, b)
        for start, stop in _pattern_chunks(len(patterns), cov.shape[0], d):
            gain, cond = _pattern_regressions(cov, patterns[start:stop])
            for p in range(start, stop):
                sl = slice(bounds[p], bounds[p + 1])
                e[:, :, sl] = gain[p - start] @ z[:, :, sl]
            cond = np.broadcast_to(cond, (stop - start, k, d, d))
            second += np.einsum("kp,pkde->kde", r_pattern[:, start:stop], cond)
        sx += (e @ r[:, :, None])[:, :, 0]
        second += (e * r[:, None, :]) @ np.swapaxes(e, -1, -2)
    if whiten:
        second = 0.5 * (second + np.swapaxes(second, -1, -2))
        if covariance_type == "tied":
            second = second.sum(axis=0)
    st.sx += sx
    st.second += second
    return st


# ============================================================================ estimator
