"""Gaussian mixtures fitted by EM (maximum likelihood) or MAP-EM (``prior`` given).

Parameters follow scikit-learn's conventions for each ``covariance_type``:

=============  ====================  =====================  ==============================
type           ``covariances_``      ``precisions_``        ``precisions_cholesky_``
=============  ====================  =====================  ==============================
full           (K, D, D)             (K, D, D)              (K, D, D), upper, P = U U^T
tied           (D, D)                (D, D)                 (D, D), upper
diag           (K, D)                (K, D)                 (K, D) = 1/sqrt(var)
spherical      (K,)                  (K,)                   (K,)
=============  ====================  =====================  ==============================

Speed, memory and accuracy. One EM iteration is a single pass over blocks of ``chunk_size``
rows (E-step and M-step fused, :func:`fused_statistics`), with scratch buffers reused across
blocks and iterations. No (N, K) or (N, K, D) array is made during ``fit``. Each pass takes
one of two routes, chosen from the current parameters:

* residual route (always sound): per block, the residuals ``z_k = x - mu_k`` about every
  component's current mean. The E-step uses them whitened, ``U_k^T z_k`` (full/tied, never an
  expanded quadratic form) or squared (diag/spherical); the M-step accumulates ``n_k``,
  ``sum r z_k`` and ``S_k = sum r z_k z_k^T`` about the current means ``mu_k`` and gives the
  new mean ``mu_k + sum r z_k / n_k`` and the scatter ``S_k - n_k d_k d_k^T`` with the small
  change ``d_k`` of the mean (no cancellation: clusters 1e8 apart or data at 1e9 with noise
  1e-2 keep the digits of their spread). Full/tied work one component at a time on (D, b)
  arrays that stay in cache, with the BLAS routines for triangular and symmetric products
  (half the flops of general ones): ``?trmm`` whitens, ``?syrk`` on ``[sqrt(r) z_k;
  sqrt(r)]`` gives ``S_k``, ``sum r z_k`` and ``n_k`` in one call; blocks of about
  2**16 / (D + 1) rows. Diag/spherical residual passes use (K, D, b) arrays.
* fast route (when it loses at most a fifth of the digits): one feature matrix per block
  about the data mean ``c`` serves both steps, ``F_b = [1, x - c, (x - c)^2]``
  (diag/spherical) or ``[1, x - c, upper triangle of (x - c)(x - c)^T]`` (full/tied with
  ``K D >= 0.4 Q``, ``Q = 1 + D + D (D + 1) / 2``): ``F_b^T W`` evaluates every component's
  quadratic form and ``F_b r_b`` every sufficient statistic (about c). Its loss of digits is
  about ``eps * max_k ||U_k^T (mu_k - c)||^2`` (the squared Mahalanobis distance of a mean
  from c), so it is used only while that distance is at most ``eps^(-1/5)`` (1.3e3 in float64,
  24 in float32); see ``_prepare_fast``.

``score_samples``/``predict_proba`` use the residual route, one component at a time, and so
does ``predict``, except that diag/spherical labels come from the fast route where the fit
used it and the rows lie within its limit from c (the digits of the fit's own E-steps). A
covariance that overflows (data whose squared spread exceeds the floating-point range) raises
a DataError; after a fit, empty components and components collapsed onto repeated points
(covariance = ``reg_covar``) give a :class:`bayesmix.em.DegenerateComponentWarning`.

Other array types. ``fit`` also accepts a Dask array (statistics per row-chunk with
``map_blocks``, one ``compute`` per iteration; out of core or on a ``dask.distributed``
cluster; initial parameters must be given) and a JAX array (jitted statistics on the array's
device, see ``bayesmix.em._xp``); the M-step runs in NumPy on the small statistics. Neither
library is imported unless such an array is given.

Missing values (``missing="model"``, NumPy input): a NaN entry is missing at random. A row's
density is the Gaussian marginal of its observed coordinates o, ``N(x_o | mu_ko,
Sigma_k,oo)``; rows are grouped by their pattern of observed features (one Cholesky factor of
``Sigma_oo`` per pattern and component; rows without NaN use the kernels above). Each
iteration is an E-step, then the exact EM M-step for missing data (Ghahramani & Jordan 1994;
McLachlan & Krishnan 2008, ch. 2): at the current parameters, ``E[x_m | x_o, z = k] = mu_km +
S_mo S_oo^{-1} (x_o - mu_ko)`` and ``C = S_mm - S_mo S_oo^{-1} S_om`` give the statistics
``n_k``, ``sum r x^`` and ``sum r (x^ x^^T + C)`` (C in the missing rows and columns), and
the formulas below (every covariance type, ML or MAP) turn them into new parameters, so the
observed-data objective never decreases. The starting values use each missing entry's column
mean. Without NaN the computation is the one above, bit for bit.

MAP-EM (``prior`` dict; every key optional, absent or None means flat):

``weights_alpha`` (scalar or (K,)) : ``w ~ Dirichlet(alpha)``.
    Update ``w_k = max(n_k + alpha_k - 1, 0) / sum_j max(n_j + alpha_j - 1, 0)``
    (use ``alpha >= 1``: with ``alpha_k < 1`` the density is unbounded at ``w_k = 0``).
``mu_loc`` (D,), ``mu_scale`` (D,) : ``mu_kd ~ Normal(mu_loc_d, mu_scale_d)`` independently
    (the prior is active when ``mu_scale`` is given; ``mu_loc`` defaults to 0).
    Update given the current covariance: diag/spherical
    ``mu_kd = (sx_kd / var_kd + loc_d / s_d^2) / (n_k / var_kd + 1 / s_d^2)`` with
    ``sx_k = sum_n r_nk x_n``; full/tied
    ``mu_k = (n_k P_k + S0^{-1})^{-1} (P_k sx_k + S0^{-1} loc)`` with ``S0 = diag(s^2)``.
``sigma_scale`` (D,) (diag; spherical: a scalar or equal values; full/tied only for 1-D data):
    ``sigma_kd ~ HalfNormal(sigma_scale_d)`` on the standard deviation. Given the means, with
    ``n = n_k``, ``S = sum_n r_nk (x_nd - mu_kd)^2`` and ``t = sigma_scale_d``, the maximiser
    of ``-n log s - S / (2 s^2) - s^2 / (2 t^2)`` is
    ``s^2 = (t^2/2) (-n + sqrt(n^2 + 4 S / t^2)) = 2 S / (n + sqrt(n^2 + 4 S / t^2))``
    (spherical: ``n -> n D``, S summed over d).
``cov_prior_dof`` (nu > D - 1), ``cov_prior_scale`` (D, D) or scalar (times identity)
    (full/tied): ``Sigma_k ~ InverseWishart(nu, Psi)``. Update given the means:
    ``Sigma_k = (Psi + S_k) / (n_k + nu + D + 1)``
    (tied: ``(Psi + sum_k S_k) / (N + nu + D + 1)``).

Each M-step updates weights, then means given the current covariances, then covariances given
the new means; each is a conditional maximisation of the log posterior (ECM), so the log
posterior never decreases (exactly when ``reg_covar=0``; ``reg_covar`` is added to the
variances after the update). ``lower_bounds_`` then holds the mean log posterior per sample,
``(log p(X | theta) + log p(theta)) / N``, with every normalising constant of the prior
densities included (what PyMC's ``model.logp(jacobian=False)`` gives, divided by N).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import scipy.linalg
from scipy import stats as sps
from scipy.special import gammaln, softmax, xlogy

from bayesmix._validation import (
    DataError,
    ParameterError,
    check_choice,
    check_n_components,
    check_positive,
    check_X,
)
from bayesmix.em._base import (
    _BLOCK_ELEMENTS,
    _EMPTY_COUNT,
    BaseMixtureEM,
    DegenerateComponentWarning,
    check_prior_dict,
    covariance_from_vector,
    covariance_to_vector,
    fill_column_means,
    log_nonnegative,
    row_blocks,
    weighted_sum,
)

__all__ = ["GaussianMixtureEM"]

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
PRIOR_KEYS = (
    "weights_alpha",
    "mu_loc",
    "mu_scale",
    "sigma_scale",
    "cov_prior_dof",
    "cov_prior_scale",
)
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
class GaussianMixtureEM(BaseMixtureEM):
    """Gaussian mixture fitted by EM (or MAP-EM with ``prior``).

    Parameters
    ----------
    n_components : int, default 1
    covariance_type : {"full", "tied", "diag", "spherical"}, default "full"
    tol : float, default 1e-3
        Stop when the objective (mean log-likelihood, or mean log posterior, per sample)
        changes by less than ``tol`` (must be > 0).
    reg_covar : float, default 1e-6
        Added to the diagonal of every covariance after each update (0 allowed).
    max_iter : int, default 100
    n_init : int, default 1
        Number of initialisations; the run with the highest final objective is kept.
    init_params : {"k-means++", "kmeans", "random", "random_from_data"}, default "k-means++"
        How the first responsibilities are made: "kmeans" runs :class:`bayesmix.em.KMeans`;
        "k-means++" (:func:`bayesmix.em.kmeans_plusplus`) and "random_from_data" pick K
        seed rows and assign every row to its nearest seed (scikit-learn gives only the seed
        rows a responsibility); "random" draws uniform responsibilities.
    weights_init : array-like of shape (K,), optional
    means_init : array-like of shape (K, D), optional
    precisions_init : array-like, optional
        Shape as ``precisions_`` for the covariance type.
    random_state : None, int, numpy Generator or RandomState
    warm_start : bool, default False
        Start from the previous solution on repeated ``fit`` calls (``n_init`` ignored).
    verbose : int, default 0
    prior : dict, optional
        MAP-EM priors (see the module docstring): ``weights_alpha``, ``mu_loc``, ``mu_scale``,
        ``sigma_scale``, ``cov_prior_dof``, ``cov_prior_scale``. None: maximum likelihood.
    dtype : numpy dtype, default numpy.float64
        ``numpy.float32`` halves memory and time at lower precision (the data are converted
        to it).
    chunk_size : int, optional
        Rows per block in the E- and M-steps (bounds the temporaries; the results are the
        same up to rounding). Default: about 2**18 elements of the widest per-block
        temporary: the fast route's features (e.g. 3971 rows for D = 10, full), the (K, D, b)
        diag/spherical residuals; full/tied residuals and predictions, one component at a
        time: about 2**16 / (D + 1) rows. On JAX arrays: rows per chunk of the jitted
        statistics (default about 2**26 / (K D)).
    missing : {"error", "model"}, default "error"
        "model": NaN entries are missing at random; a row's density is that of its observed
        coordinates and the M-step is exact EM for missing data (see the module docstring),
        in ``fit`` and in every method that takes X (NumPy input only). "error": NaN is a
        DataError.
    accelerate : {None, "squarem"}, default None
        "squarem": SQUAREM-accelerated EM (see :class:`bayesmix.em.BaseMixtureEM`), which
        extrapolates in log weights, means and log-Cholesky factors (full, tied) or log
        variances (diag, spherical); far fewer iterations where plain EM is slow
        (overlapping components). None: plain EM.

    Attributes
    ----------
    weights_ : ndarray of shape (K,)
    means_ : ndarray of shape (K, D)
    covariances_, precisions_, precisions_cholesky_ : ndarray
        Shapes as in scikit-learn (see the module docstring).
    converged_ : bool
    n_iter_ : int
        Number of EM iterations of the best run (with ``accelerate="squarem"``: evaluations
        of the EM map, rejected extrapolations included).
    lower_bound_ : float
        Objective of the best run at its last iteration.
    lower_bounds_ : ndarray of shape (n_iter_,)
        Objective at each iteration of the best run (with ``accelerate="squarem"``: at each
        accepted one, so possibly fewer than ``n_iter_``).
    n_features_in_ : int
    """

    # the fused _em_step applies self._sample_weight (fused_statistics' sample_weight)
    _em_step_handles_sample_weight = True
    _supports_missing = True

    def __init__(
        self,
        n_components: int = 1,
        *,
        covariance_type: str = "full",
        tol: float = 1e-3,
        reg_covar: float = 1e-6,
        max_iter: int = 100,
        n_init: int = 1,
        init_params: str = "k-means++",
        weights_init: Any = None,
        means_init: Any = None,
        precisions_init: Any = None,
        random_state: Any = None,
        warm_start: bool = False,
        verbose: int = 0,
        prior: dict | None = None,
        dtype: Any = np.float64,
        chunk_size: int | None = None,
        missing: str = "error",
        accelerate: str | None = None,
    ) -> None:
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.prior = prior
        self.dtype = dtype
        self.chunk_size = chunk_size
        self.missing = missing
        self.accelerate = accelerate

    # ------------------------------------------------------------------ checks
    def _check_X(self, X, *, fitting):
        dtype = np.dtype(self.dtype) if self.dtype is not None else np.float64
        if dtype not in (np.float32, np.float64):
            raise ParameterError(
                f"dtype is not supported: expected numpy.float64 or numpy.float32, got "
                f"{self.dtype!r}; pass one of them"
            )
        if fitting:
            return check_X(
                X,
                n_components=self.n_components,
                # constant columns make full/tied covariances singular unless reg_covar > 0
                covariance_type=self.covariance_type if self.reg_covar == 0 else None,
                dtype=dtype,
                min_samples=2,
                allow_nan=self._allow_nan(),
            )
        return check_X(X, dtype=dtype, allow_nan=self._allow_nan())

    def _check_family_parameters(self, X):
        check_choice(self.covariance_type, "covariance_type", COVARIANCE_TYPES)
        check_positive(self.reg_covar, "reg_covar", strict=False)
        k, d = self.n_components, X.shape[1]
        if self.weights_init is not None:
            w = np.asarray(self.weights_init, dtype=np.float64)
            if w.shape != (k,) or np.any(w < 0) or not np.isclose(w.sum(), 1.0, atol=1e-6):
                raise ParameterError(
                    f"weights_init is invalid: expected {k} non-negative weights summing to 1, "
                    f"got shape {w.shape} and sum {w.sum():.6g}; pass a probability vector"
                )
        if self.means_init is not None:
            m = np.asarray(self.means_init, dtype=np.float64)
            if m.shape != (k, d) or not np.all(np.isfinite(m)):
                raise ParameterError(
                    f"means_init is invalid: expected finite values of shape {(k, d)}, got "
                    f"shape {m.shape}; pass one mean per component"
                )
        if self.precisions_init is not None:
            p = np.asarray(self.precisions_init, dtype=np.float64)
            expected = {"full": (k, d, d), "tied": (d, d), "diag": (k, d), "spherical": (k,)}[
                self.covariance_type
            ]
            if p.shape != expected:
                raise ParameterError(
                    f"precisions_init has the wrong shape for covariance_type="
                    f"'{self.covariance_type}': expected {expected}, got {p.shape}; pass "
                    "precisions shaped like precisions_"
                )
            if self.covariance_type in ("full", "tied"):
                mats = p.reshape(-1, d, d)
                if not np.allclose(mats, np.swapaxes(mats, -1, -2)) or np.any(
                    np.linalg.eigvalsh(mats) <= 0
                ):
                    raise ParameterError(
                        "precisions_init is invalid: expected symmetric positive definite "
                        "matrices, got a matrix that is not; pass valid precisions"
                    )
            elif np.any(~(p > 0)):
                raise ParameterError(
                    "precisions_init is invalid: expected positive values, got a value <= 0; "
                    "pass positive precisions"
                )
        self._prior = self._resolve_prior(d)

    def _resolve_prior(self, d: int) -> dict | None:
        """Validate ``prior`` and return it with arrays of the right shapes (or None)."""
        if self.prior is None:
            return None
        check_prior_dict(self.prior, PRIOR_KEYS, "{'weights_alpha': 2.0}")
        k, ctype = self.n_components, self.covariance_type
        out: dict[str, Any] = {}

        def vector(key, length, positive):
            value = np.asarray(self.prior[key], dtype=np.float64)
            if value.ndim == 0:
                value = np.full(length, float(value))
            if value.shape != (length,) or not np.all(np.isfinite(value)):
                raise ParameterError(
                    f"prior['{key}'] has the wrong shape: expected a scalar or shape "
                    f"({length},), got shape {value.shape}; pass one finite value per "
                    f"{'component' if key == 'weights_alpha' else 'feature'}"
                )
            if positive and np.any(value <= 0):
                raise ParameterError(
                    f"prior['{key}'] must be positive: expected values > 0, got "
                    f"{value.tolist()}; pass positive values"
                )
            return value

        get = self.prior.get
        if get("weights_alpha") is not None:
            out["weights_alpha"] = vector("weights_alpha", k, True)
        if get("mu_scale") is not None:
            out["mu_scale"] = vector("mu_scale", d, True)
            out["mu_loc"] = (
                vector("mu_loc", d, False) if get("mu_loc") is not None else np.zeros(d)
            )
        if get("sigma_scale") is not None:
            if ctype in ("full", "tied") and d > 1:
                raise ParameterError(
                    f"prior['sigma_scale'] is not supported with covariance_type='{ctype}' "
                    f"and {d} features: expected diag/spherical covariances or 1-D data; with "
                    "full/tied use 'weights_alpha', 'mu_loc', 'mu_scale', 'cov_prior_dof' and "
                    "'cov_prior_scale'"
                )
            t = vector("sigma_scale", d, True)
            if ctype == "spherical" and not np.allclose(t, t[0]):
                raise ParameterError(
                    "prior['sigma_scale'] must be one value with covariance_type='spherical': "
                    f"expected a scalar, got {t.tolist()}; pass a single scale"
                )
            out["sigma_scale"] = t
        dof, scale = get("cov_prior_dof"), get("cov_prior_scale")
        if dof is not None or scale is not None:
            if ctype not in ("full", "tied"):
                raise ParameterError(
                    f"prior['cov_prior_dof'/'cov_prior_scale'] needs covariance_type 'full' or "
                    f"'tied': got '{ctype}'; use 'sigma_scale' for diag/spherical"
                )
            if "sigma_scale" in out:
                raise ParameterError(
                    "prior has both 'sigma_scale' and an inverse-Wishart prior: expected one "
                    "prior on the covariance, got two; drop one of them"
                )
            if dof is None or scale is None:
                raise ParameterError(
                    "inverse-Wishart prior is incomplete: expected both 'cov_prior_dof' and "
                    "'cov_prior_scale', got only one; pass both"
                )
            dof = float(dof)
            if not dof > d - 1:
                raise ParameterError(
                    f"prior['cov_prior_dof'] is too small: expected a value > n_features - 1 = "
                    f"{d - 1}, got {dof}; pass a larger value"
                )
            psi = np.asarray(scale, dtype=np.float64)
            if psi.ndim == 0:
                psi = float(psi) * np.eye(d)
            if (
                psi.shape != (d, d)
                or not np.allclose(psi, psi.T)
                or np.any(np.linalg.eigvalsh(psi) <= 0)
            ):
                raise ParameterError(
                    f"prior['cov_prior_scale'] is invalid: expected a positive scalar or a "
                    f"symmetric positive definite ({d}, {d}) matrix, got shape {psi.shape}; "
                    "pass e.g. numpy.eye(n_features)"
                )
            out["cov_prior_dof"], out["cov_prior_scale"] = dof, psi
        return out

    # ------------------------------------------------------------------ parameters
    def _needs_initial_resp(self):
        return self.weights_init is None or self.means_init is None or self.precisions_init is None

    # ------------------------------------------------------------------ Dask and JAX input
    def _validate_fit_data(self, X):
        if _is_dask(X) or _is_jax(X):
            self._missing_now = False
            if self._allow_nan():
                kind = "dask" if _is_dask(X) else "JAX"
                raise ParameterError(
                    f"missing='model' is not supported with {kind} arrays: expected a NumPy "
                    f"array X for missing values, got a {kind} array; fit numpy.asarray(X), or "
                    "use missing='error' with complete data"
                )
            if _is_dask(X):
                from bayesmix.em._dask import validate_dask as validate
            else:
                from bayesmix.em._xp import validate_jax as validate
            check_n_components(self.n_components)
            X, self._input_mean = validate(self, X)
            self.n_features_in_ = X.shape[1]
            if hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
            return X
        self._input_mean = None
        return super()._validate_fit_data(X)

    def _check_sample_weight(self, sample_weight, X):
        if sample_weight is not None and (_is_dask(X) or _is_jax(X)):
            kind = "dask" if _is_dask(X) else "JAX"
            raise ParameterError(
                f"sample_weight is not supported with {kind} arrays: expected a NumPy array X "
                f"with sample_weight, got a {kind} array; repeat the rows instead or fit a "
                "NumPy array"
            )
        return super()._check_sample_weight(sample_weight, X)

    def _initialize_parameters(self, X, rng):
        if _is_dask(X):
            from bayesmix.em._dask import check_dask_init

            check_dask_init(self)
        elif _is_jax(X) and self._needs_initial_resp():
            # the initialisation (k-means++ / k-means) runs in NumPy on a host copy
            X = np.asarray(X)
        super()._initialize_parameters(X, rng)

    def _predict_labels(self, X):
        if _is_dask(X):
            from bayesmix.em._dask import dask_predict_labels

            return dask_predict_labels(self, X)
        if _is_jax(X):
            from bayesmix.em._xp import jax_predict_labels

            return jax_predict_labels(self, X)
        if self._missing_now:  # rows with NaN: the densities of their observed coordinates
            return super()._predict_labels(X)
        # as BaseMixtureEM._predict_labels, with scratch buffers reused across blocks; diag/
        # spherical labels by the fast route where the fit used it and every row of the block
        # is within its limit (see _fast_log_prob_t), else by the residual route
        labels = np.empty(X.shape[0], dtype=np.intp)
        log_w = self._estimate_log_weights().astype(X.dtype, copy=False)[:, None]
        workspace: dict = {}
        d = X.shape[1]
        fast = self._estep.get("fast")
        if fast is not None and not fast["products"]:
            prec_max = self._estep["prec"][:, 0, :].max(axis=0)
            # features (1 + 2 D, b) and log densities (K, b): about 2**18 elements
            block = max(64, _BLOCK_ELEMENTS // max(1 + 2 * d, 2 * self.n_components))
            if self.chunk_size is not None:
                block = int(self.chunk_size)
        else:
            fast, block = None, self._predict_block_size(d)
        for rows in row_blocks(X.shape[0], block):
            logp = None if fast is None else _fast_log_prob_t(X[rows], fast, prec_max, workspace)
            if logp is None:
                logp = _log_prob_t(X[rows], self._estep, workspace)
            logp += log_w
            labels[rows] = logp.argmax(axis=0)
        return labels

    def _fit_prepare(self, X):
        mean = getattr(self, "_input_mean", None)
        w = self._sample_weight
        if mean is not None:
            self._shift = mean.astype(X.dtype)
        elif self._missing_now:  # the (weighted) means of the observed values
            self._shift = np.average(fill_column_means(X, w), axis=0, weights=w).astype(X.dtype)
        elif w is None:
            self._shift = X.mean(axis=0)
        else:  # the weighted mean: the mean of the data set with repeated rows
            self._shift = np.average(X, axis=0, weights=w).astype(X.dtype)
        if hasattr(self, "precisions_cholesky_"):  # warm start: E-step arrays in X's dtype
            self._prepare()

    def _initialize(self, X, resp):
        if self._missing_now:  # no parameters to condition on yet: each NaN at its column mean
            X = fill_column_means(X, self._sample_weight)
        dtype = X.dtype
        ops = _OPS[self.covariance_type]
        if resp is not None:
            st = _statistics_two_pass(
                self.covariance_type, X, resp, self._shift, self._block_size(X.shape[1])
            )
            st.nk += 10 * np.finfo(dtype).eps
            delta = st.sx / st.nk[:, None]
            weights = st.nk / self._n_observations(X.shape[0])
            cov = self._ml_covariance(ops.scatter(st, delta), st.nk)
            means = st.ref + delta
        if self.weights_init is not None:
            weights = np.asarray(self.weights_init, dtype=dtype)
        if self.means_init is not None:
            means = np.asarray(self.means_init, dtype=dtype)
        self.weights_ = np.asarray(weights, dtype=dtype)
        self.means_ = np.asarray(means, dtype=dtype)
        if self.precisions_init is None:
            self.covariances_ = np.asarray(cov, dtype=dtype)
            _check_finite_covariances(self.covariances_, self.covariance_type)
            self.precisions_cholesky_ = ops.prec_chol(self.covariances_)
        else:
            prec = np.asarray(self.precisions_init, dtype=dtype)
            if self.covariance_type in ("full", "tied"):
                self.precisions_cholesky_ = _prec_chol_from_precisions_matrix(prec)
                self.covariances_ = _covariances_from_pc_matrix(self.precisions_cholesky_)
            else:
                self.precisions_cholesky_ = np.sqrt(prec)
                self.covariances_ = 1.0 / prec
        self._prepare()

    def _ml_covariance(self, scatter, nk):
        reg = self.reg_covar
        ctype = self.covariance_type
        if ctype == "full":
            cov = scatter / nk[:, None, None]
            cov += reg * np.eye(cov.shape[-1], dtype=cov.dtype)
        elif ctype == "tied":
            cov = scatter / nk.sum() + reg * np.eye(scatter.shape[-1], dtype=scatter.dtype)
        elif ctype == "diag":
            cov = scatter / nk[:, None] + reg
        else:
            cov = (scatter / nk[:, None] + reg).mean(axis=1)
        return cov

    def _em_step(self, X, workspace):
        """One EM iteration in a single pass over blocks of rows (E-step and M-step fused).

        For each block: component log densities, in-place normalisation to responsibilities,
        and the block's contribution ``F_b r_b`` to every sufficient statistic; then the
        M-step from the statistics. No (N, K) array is made. With NaN entries or partial
        labels: the E-step, then :meth:`_m_step` (``BaseMixtureEM._em_step``).
        """
        if self._missing_now or self._labels is not None:
            return super()._em_step(X, workspace)
        n, d = X.shape
        if _is_jax(X):  # statistics on the array's device, M-step here
            from bayesmix.em._xp import jax_em_statistics

            total, st = jax_em_statistics(self, X)
        else:
            if _is_dask(X):  # one compute per iteration over the row-chunks
                from bayesmix.em._dask import dask_em_statistics

                total, g = dask_em_statistics(self, X)
            else:
                total, g = fused_statistics(
                    X,
                    self._estep,
                    self._estimate_log_weights().astype(X.dtype, copy=False),
                    self.covariance_type,
                    self.n_components,
                    self._pass_block_size(d),
                    workspace.setdefault("scratch", {}),
                    self._sample_weight,
                )
            st = fused_unpack(self.covariance_type, g, d, self.n_components, self._estep)
        objective = self._objective_from_sum(total, self._n_observations(n))
        self._update_parameters(st, np.dtype(X.dtype))
        return objective

    def _m_step(self, X, resp):
        """M-step from responsibilities resp (N, K); see the module docstring."""
        if self._missing_now:  # exact EM for NaN entries, at the current parameters
            k, d = self.means_.shape
            cov = _covariance_stack(self.covariances_, self.covariance_type, k, d)
            st = _missing_statistics(
                self.covariance_type, X, resp, self.means_, cov, self._block_size(d)
            )
            self._update_parameters(st, X.dtype)
            return
        st = _statistics_two_pass(
            self.covariance_type, X, resp, self._shift, self._block_size(X.shape[1])
        )
        self._update_parameters(st, X.dtype)

    def _update_parameters(self, st, dtype):
        """M-step (ML or MAP/ECM) from sufficient statistics; formulas in the module docstring."""
        ops = _OPS[self.covariance_type]
        st.nk += 10 * np.finfo(dtype).eps
        prior = self._prior or {}

        # weights
        if "weights_alpha" in prior:
            w = np.maximum(st.nk + prior["weights_alpha"] - 1.0, 0.0)
        else:
            w = st.nk.copy()
        self.weights_ = (w / w.sum()).astype(dtype)

        # means (as the change from the reference points st.ref) given the current covariances
        if "mu_scale" in prior:
            delta = self._map_means(st, prior)
        else:
            delta = st.sx / st.nk[:, None]

        # covariances given the new means
        scatter = ops.scatter(st, delta)
        if {"sigma_scale", "cov_prior_dof"} & prior.keys():
            cov = self._map_covariance(scatter, st.nk, prior)
        else:
            cov = self._ml_covariance(scatter, st.nk)
        self.means_ = (st.ref + delta).astype(dtype)
        self.covariances_ = np.asarray(cov, dtype=dtype)
        _check_finite_covariances(self.covariances_, self.covariance_type)
        self.precisions_cholesky_ = ops.prec_chol(self.covariances_)
        self._prepare()

    def _map_means(self, st, prior):
        """Conditional maximiser of the log posterior in the means, covariances fixed.

        Returns the means as changes from the reference points ``st.ref`` (K, D).
        """
        loc = prior["mu_loc"] - st.ref
        prior_prec = 1.0 / prior["mu_scale"] ** 2  # (D,)
        ctype = self.covariance_type
        k, d = st.sx.shape
        if ctype in ("diag", "spherical"):
            var = np.broadcast_to(np.reshape(self.covariances_, (k, -1)), (k, d))
            prec = 1.0 / var
            return (st.sx * prec + loc * prior_prec) / (st.nk[:, None] * prec + prior_prec)
        prec = _precisions_full(np.asarray(self.precisions_cholesky_, dtype=np.float64))
        if ctype == "tied":
            prec = np.broadcast_to(prec, (k, d, d))
        a = st.nk[:, None, None] * prec + np.diag(prior_prec)
        b = np.einsum("kde,ke->kd", prec, st.sx) + loc * prior_prec
        return np.linalg.solve(a, b[:, :, None])[:, :, 0]

    def _map_covariance(self, scatter, nk, prior):
        """Conditional maximiser of the log posterior in the covariances, means fixed."""
        reg, ctype = self.reg_covar, self.covariance_type
        if "cov_prior_dof" in prior:
            dof, psi = prior["cov_prior_dof"], prior["cov_prior_scale"]
            d = psi.shape[0]
            if ctype == "full":
                cov = (psi + scatter) / (nk + dof + d + 1.0)[:, None, None]
            else:
                cov = (psi + scatter) / (nk.sum() + dof + d + 1.0)
            return cov + reg * np.eye(d)
        t = prior["sigma_scale"]
        if ctype == "diag":
            return _halfnormal_variance(nk[:, None], scatter, t) + reg
        if ctype == "spherical":
            d = scatter.shape[1]
            return _halfnormal_variance(nk * d, scatter.sum(axis=1), t[0]) + reg
        if ctype == "full":  # 1-D data
            return _halfnormal_variance(nk[:, None, None], scatter, t[0]) + reg
        return _halfnormal_variance(nk.sum(), scatter, t[0]) + reg  # tied, 1-D

    def _prepare(self):
        """Cache the stacked factors used by the E-step (after every parameter change)."""
        self._estep = _OPS[self.covariance_type].prepare(self.means_, self.precisions_cholesky_)
        shift = getattr(self, "_shift", None)
        if shift is not None:
            shift = shift.astype(self.means_.dtype)
        self._estep["fast"] = _prepare_fast(
            self.covariance_type, self.means_, self.precisions_cholesky_, shift
        )

    def _block_size(self, n_features):
        if self.chunk_size is not None:
            return int(self.chunk_size)
        if self.covariance_type in ("full", "tied"):
            # one component at a time on (D + 1, b) arrays: about 2**16 elements
            return max(64, (_BLOCK_ELEMENTS >> 2) // (n_features + 1))
        # the (K, D, b) residuals are the widest per-block arrays
        return max(64, _BLOCK_ELEMENTS // (self.n_components * n_features))

    def _pass_block_size(self, n_features):
        """Rows per block of one fused pass: the fast route's (Q, b) features ~2**18 elements."""
        if self.chunk_size is None and self._estep.get("fast") is not None:
            d = n_features
            q = (
                1 + 2 * d
                if self.covariance_type in ("diag", "spherical")
                else 1 + d + d * (d + 1) // 2
            )
            # and the (K, b) log densities
            return max(64, _BLOCK_ELEMENTS // max(q, 2 * self.n_components))
        return self._block_size(n_features)

    def _predict_block_size(self, n_features):
        """Rows per block of predictions: one component at a time on (b, D) arrays."""
        if self.chunk_size is not None:
            return int(self.chunk_size)
        return max(64, (_BLOCK_ELEMENTS >> 2) // (n_features + 1))

    def _estimate_log_prob_block(self, X, out):
        if not self._missing_now:
            _log_prob_block(X, self._estep, out)
            return
        rows, observed = _missing_rows(X)
        if rows.size < X.shape[0]:  # the rows without NaN: the kernels of complete data
            complete = np.ones(X.shape[0], dtype=bool)
            complete[rows] = False
            part = np.empty((X.shape[0] - rows.size, out.shape[1]), dtype=out.dtype)
            _log_prob_block(X[complete], self._estep, part)
            out[complete] = part
        if rows.size:
            k, d = self.means_.shape
            cov = _covariance_stack(self.covariances_, self.covariance_type, k, d)
            out[rows] = _missing_log_prob(
                self.covariance_type, X[rows], observed, self.means_, cov
            )

    def _warn_degenerate(self, n_samples):
        """Warn about empty components and components collapsed onto repeated points."""
        super()._warn_degenerate(n_samples, stacklevel=6)
        if self.covariance_type == "tied" or not self.reg_covar > 0 or self._prior:
            return
        k, d = self.means_.shape
        w = np.asarray(self.weights_, dtype=np.float64)
        cov = np.asarray(self.covariances_, dtype=np.float64)
        var = np.diagonal(cov, axis1=1, axis2=2) if cov.ndim == 3 else cov.reshape(k, -1)
        # the variance that the data gave, without the regularisation: zero up to the
        # rounding of the data's own magnitude (repeated points) or a negligible part of
        # reg_covar
        own = var - self.reg_covar
        eps = float(np.finfo(self.means_.dtype).eps)
        magnitude = np.abs(np.asarray(self.means_, dtype=np.float64)).max(axis=1)
        tiny = np.maximum(1e-3 * self.reg_covar, (100.0 * eps * magnitude) ** 2)
        collapsed = np.flatnonzero(
            (own <= tiny[:, None]).any(axis=1) & (w * n_samples >= _EMPTY_COUNT)
        )
        if collapsed.size:
            warnings.warn(
                f"GaussianMixtureEM: component(s) {collapsed.tolist()} collapsed onto repeated "
                f"points (weights {', '.join(f'{v:.2g}' for v in w[collapsed])}): expected a "
                f"covariance estimated from the data, got reg_covar={self.reg_covar:g} alone "
                "(the likelihood is unbounded there); remove duplicated rows, use fewer "
                "components, or set reg_covar to a variance you consider negligible",
                DegenerateComponentWarning,
                stacklevel=5,
            )

    def _get_parameters(self):
        return (self.weights_, self.means_, self.covariances_, self.precisions_cholesky_)

    def _set_parameters(self, params):
        self.weights_, self.means_, self.covariances_, self.precisions_cholesky_ = params
        pc = self.precisions_cholesky_
        if self.covariance_type in ("full", "tied"):
            self.precisions_ = _precisions_full(pc)
        else:
            self.precisions_ = pc**2
        self._prepare()

    def _params_to_vector(self):
        matrices = self.covariance_type in ("full", "tied")
        return np.concatenate(
            [
                log_nonnegative(self.weights_),
                np.ravel(self.means_).astype(np.float64),
                covariance_to_vector(self.covariances_, matrices),
            ]
        )

    def _vector_to_params(self, vec):
        k, d = self.means_.shape
        dtype = self.means_.dtype
        matrices = self.covariance_type in ("full", "tied")
        weights, means = softmax(vec[:k]), vec[k : k + k * d].reshape(k, d)
        cov = covariance_from_vector(vec[k + k * d :], np.shape(self.covariances_), matrices)
        if cov is None or not (np.all(np.isfinite(weights)) and np.all(np.isfinite(means))):
            return False
        cov = cov.astype(dtype)
        try:
            prec_chol = _OPS[self.covariance_type].prec_chol(cov)
        except DataError:  # positive definite in exact arithmetic, not in floating point
            return False
        self._set_parameters((weights.astype(dtype), means.astype(dtype), cov, prec_chol))
        return True

    def _n_parameters(self):
        k, d = self.means_.shape
        cov = {
            "full": k * d * (d + 1) / 2.0,
            "tied": d * (d + 1) / 2.0,
            "diag": k * d,
            "spherical": k,
        }[self.covariance_type]
        return int(cov + k * d + k - 1)

    def _sample_component(self, k, n, rng):
        d = self.means_.shape[1]
        z = rng.standard_normal((n, d))
        cov = self.covariances_
        ctype = self.covariance_type
        if ctype == "full":
            return self.means_[k] + z @ np.linalg.cholesky(cov[k]).T
        if ctype == "tied":
            return self.means_[k] + z @ np.linalg.cholesky(cov).T
        scale = np.sqrt(np.broadcast_to(np.reshape(cov, (self.n_components, -1))[k], (d,)))
        return self.means_[k] + z * scale

    # ------------------------------------------------------------------ MAP objective
    def _log_prior(self):
        """Log prior density of the current parameters, all constants included."""
        prior = self._prior
        if not prior:
            return 0.0
        total = 0.0
        if "weights_alpha" in prior:
            a = prior["weights_alpha"]
            w = np.asarray(self.weights_, dtype=np.float64)
            total += gammaln(a.sum()) - gammaln(a).sum() + xlogy(a - 1.0, w).sum()
        if "mu_scale" in prior:
            total += sps.norm.logpdf(
                np.asarray(self.means_, dtype=np.float64), prior["mu_loc"], prior["mu_scale"]
            ).sum()
        cov = np.asarray(self.covariances_, dtype=np.float64)
        if "sigma_scale" in prior:
            t = prior["sigma_scale"]
            ctype = self.covariance_type
            if ctype == "diag":
                sigma, scale = np.sqrt(cov), t
            elif ctype == "spherical":
                sigma, scale = np.sqrt(cov), t[0]
            elif ctype == "full":
                sigma, scale = np.sqrt(cov[:, 0, 0]), t[0]
            else:
                sigma, scale = np.sqrt(cov[0, 0]), t[0]
            total += sps.halfnorm.logpdf(sigma, scale=scale).sum()
        if "cov_prior_dof" in prior:
            mats = cov if self.covariance_type == "full" else cov[None]
            total += sum(
                sps.invwishart.logpdf(c, df=prior["cov_prior_dof"], scale=prior["cov_prior_scale"])
                for c in mats
            )
        return float(total)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = self.missing == "model"
        return tags
