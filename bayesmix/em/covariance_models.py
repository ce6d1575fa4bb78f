"""R mclust's fourteen Gaussian covariance models as NumPy M-steps.

Each component covariance is decomposed as ``Sigma_k = lambda_k D_k A_k D_k^T`` (Banfield &
Raftery 1993; Celeux & Govaert 1995): the volume ``lambda_k = |Sigma_k|^(1/D)``, the shape
``A_k`` (diagonal, determinant 1, entries in decreasing order for the ellipsoidal models) and
the orientation ``D_k`` (orthogonal). A model's name gives, in this order, whether volume,
shape and orientation are Equal across components, Variable, or the Identity (``I``: shape
for spherical models, orientation for the axis-aligned ones):

=====  ==========  ==============================================  ==========  =========
name   kernel      M-step                                          iterative   alias
=====  ==========  ==============================================  ==========  =========
EII    spherical   ``lambda = sum_k tr W_k / (N D)``               no
VII    spherical   ``lambda_k = tr W_k / (n_k D)``                 no          spherical
EEI    diag        ``diag(W) / N``                                 no
VEI    diag        alternate ``A | lambda_k`` and ``lambda_k | A`` yes
EVI    diag        closed form (geometric means of ``diag W_k``)   no
VVI    diag        ``diag(W_k) / n_k``                             no          diag
EEE    tied        ``W / N``                                       no          tied
VEE    full        alternate ``C | lambda_k`` and ``lambda_k | C`` yes
EVE    full        MM for ``D`` (Browne & McNicholas 2014), EVI    yes
VVE    full        MM for ``D`` (Browne & McNicholas 2014), VVI    yes
EEV    full        eigenvectors of ``W_k``, EEI on the eigenvalues no
VEV    full        eigenvectors of ``W_k``, VEI on the eigenvalues yes
EVV    full        ``W_k / |W_k|^(1/D) * sum_j |W_j|^(1/D) / N``   no
VVV    full        ``W_k / n_k``                                   no          full
E, V   spherical   EII, VII for one feature
=====  ==========  ==============================================  ==========  =========

``W_k = sum_n r_nk (x_n - mu_k)(x_n - mu_k)^T`` is the scatter about the new means,
``n_k = sum_n r_nk``, ``N = sum_k n_k`` and ``W = sum_k W_k``. Each M-step maximises the
expected complete-data log-likelihood in the covariances,

    Q = sum_k [ -n_k/2 log|Sigma_k| - 1/2 tr(Sigma_k^{-1} W_k) ],

over the model's set. ``kernel`` is the layout both of the covariances (scikit-learn's
``covariance_type`` layouts: full (K, D, D), tied (D, D), diag (K, D), spherical (K,)) and of
the scatter ``m_step`` receives: full ``W_k`` (K, D, D), tied ``W`` (D, D), diag and
spherical ``diag(W_k)`` (K, D). Regularisation ``reg`` (scikit-learn's ``reg_covar``) replaces
``W_k`` by ``W_k + reg n_k I``; every model's structure is kept, and VVV, EEE, VVI, VII give
scikit-learn's covariances exactly (``W_k / n_k + reg I`` etc.).

The iterative M-steps (VEI, VEE, EVE, VVE, VEV) are block-coordinate ascents on Q; every
inner iteration is a conditional maximisation (or, for the common orientation, a
majorise-minimise step), so Q never decreases and EM with them stays monotone (an ECM/GEM
algorithm) however many inner iterations run. They start from ``previous`` (the current
covariances, same layout as the output) when given, else from a closed-form start, and stop
when Q changes by at most ``tol * (1 + |Q|)`` or after ``max_iter`` iterations:

* VEI (and VEV on the eigenvalues ``omega_k`` of ``W_k``, with ``D_k`` their eigenvectors,
  which is optimal for every shape with decreasing entries): ``A = sum_k B_k / lambda_k``
  normalised to determinant 1, then ``lambda_k = tr(A^{-1} B_k) / (D n_k)``
  (``B_k = diag(W_k)``, resp. ``omega_k``). Start: ``lambda_k = 1`` (A is then EEI's shape).
* VEE: ``C = sum_k W_k / lambda_k`` normalised to determinant 1, then
  ``lambda_k = tr(C^{-1} W_k) / (D n_k)`` (Celeux & Govaert 1995; mclust). Start:
  ``lambda_k = 1`` (C is then EEE's shape).
* EVE, VVE: given the common orientation ``D`` the model is EVI resp. VVI on
  ``B_k = diag(D^T W_k D)`` (closed form); given the diagonals ``S_k = lambda_k A_k``, ``D``
  minimises ``f(D) = sum_k tr(W_k D S_k^{-1} D^T)``, decreased by the two MM steps of Browne &
  McNicholas (2014): majorising ``f`` at ``D0`` by a function linear in ``D`` gives
  ``D = -P R^T`` from the SVD ``F = P B R^T`` of ``F = sum_k (W_k - w_k I) D0 S_k^{-1}``
  (``w_k`` the largest eigenvalue of ``W_k``), then of ``F = sum_k W_k D0 (S_k^{-1} - a_k I)``
  (``a_k`` the largest entry of ``S_k^{-1}``). Start: ``D`` the eigenvectors of
  ``sum_k W_k / n_k``.

With ``previous``, the volumes (VEI, VEE, VEV: ``|Sigma_k|^(1/D)``) or the common orientation
(EVE, VVE: eigenvectors of a generic combination of the ``Sigma_k``, which diagonalise all of
them when they share one) are read from it, so that the first iteration already gives a Q at
least that of ``previous`` when ``previous`` has the model's structure.

Degenerate statistics (``n_k`` near 0, singular scatter with ``reg = 0``) give finite values
where a formula allows it and otherwise zeros, infinities or NaN for the caller's Cholesky
factorisation to reject; nothing here raises for them.
"""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass

import numpy as np

__all__ = [
    "ALIASES",
    "MODELS",
    "CovarianceModel",
    "check_structure",
    "get_model",
]

_KERNEL_SHAPES = {"full": 3, "tied": 2, "diag": 2, "spherical": 2}


@dataclass(frozen=True)
class CovarianceModel:
    """One of mclust's covariance models: its decomposition and its M-step.

    Attributes
    ----------
    name : str
        mclust's name, e.g. ``"VEV"``.
    kernel : str
        ``"full"``, ``"tied"``, ``"diag"`` or ``"spherical"``: the layout of the covariances
        (scikit-learn's) and of the scatter :meth:`m_step` receives.
    title : str
        A description, e.g. ``"ellipsoidal, varying volume, equal shape, varying orientation"``.
    volume, shape, orientation : str
        ``"E"`` (equal), ``"V"`` (varying) or ``"I"`` (identity: spherical shape, axis-aligned
        orientation).
    iterative : bool
        Whether the M-step runs an inner iteration.
    """

    name: str
    kernel: str
    title: str
    volume: str
    shape: str
    orientation: str
    iterative: bool

    def m_step(
        self,
        scatter,
        nk,
        reg: float = 0.0,
        previous=None,
        *,
        tol: float = 1e-8,
        max_iter: int = 100,
    ) -> np.ndarray:
        """The covariances maximising Q for the scatter ``scatter`` and counts ``nk``.

        Parameters
        ----------
        scatter : ndarray
            ``W_k`` (K, D, D) for kernel full, ``sum_k W_k`` (D, D) for tied, the diagonals
            ``diag(W_k)`` (K, D) for diag and spherical; about the new means.
        nk : ndarray (K,)
            ``sum_n r_nk``.
        reg : float
            ``reg_covar``: ``W_k + reg n_k I`` is used as the scatter.
        previous : ndarray or None
            Current covariances (the output's layout) to warm-start the inner iterations of
            VEI, VEE, EVE, VVE and VEV; ignored by the other models.
        tol, max_iter :
            Inner iterations stop when Q changes by at most ``tol * (1 + |Q|)`` or after
            ``max_iter`` iterations.

        Returns
        -------
        ndarray
            The covariances in the layout of ``kernel`` (the dtype of ``scatter`` if it is
            float32, else float64).
        """
        return _run(self, scatter, nk, reg, previous, tol, max_iter)[0]

    def n_parameters(self, n_components: int, n_features: int) -> int:
        """Number of free covariance parameters (mclust's ``nVarParams``)."""
        g, d = int(n_components), int(n_features)
        vol = {"E": 1, "V": g}[self.volume]
        if self.shape == "I":
            shp = 0
        else:
            shp = {"E": 1, "V": g}[self.shape] * (d - 1)
        orient = {"I": 0, "E": 1, "V": g}[self.orientation] * (d * (d - 1) // 2)
        return int(vol + shp + orient)


# ---------------------------------------------------------------------------------- helpers
def _gmean(a, axis=-1):
    """Geometric mean along ``axis`` (0 if an entry is 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.exp(np.mean(np.log(a), axis=axis))


def _converged(q, q_old, tol):
    return abs(q - q_old) <= tol * (1.0 + abs(q))


def _safe_ratio(b, lam):
    """``b / lam[:, None]``, with 0 for components whose volume is 0 or not finite."""
    ok = np.isfinite(lam) & (lam > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = b / np.where(ok, lam, 1.0)[:, None]
    return np.where(ok[:, None], r, 0.0)


def _q_diag(b, s, nk):
    """Q for diagonal covariances ``s`` (K, D) and scatter diagonals ``b`` (K, D)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = nk * np.log(s).sum(axis=1) + (b / s).sum(axis=1)
    return -0.5 * float(np.sum(np.where(nk > 0, terms, 0.0)))


def _volumes(cov_full):
    """``|Sigma_k|^(1/D)`` of (K, D, D) covariances (NaN where not positive definite)."""
    sign, logdet = np.linalg.slogdet(cov_full)
    d = cov_full.shape[-1]
    with np.errstate(over="ignore"):
        return np.where(sign > 0, np.exp(logdet / d), np.nan)


def _eigh_desc(w):
    """Eigenvalues (decreasing) and eigenvectors of symmetric (K, D, D) matrices."""
    vals, vecs = np.linalg.eigh(w)
    return vals[:, ::-1], vecs[:, :, ::-1]


def _compose(vecs, s):
    """``V_k diag(s_k) V_k^T`` for (K, D, D) or (D, D) ``vecs`` and (K, D) ``s``, symmetric."""
    if vecs.ndim == 2:
        vecs = vecs[None]
    out = np.einsum("kij,kj,klj->kil", vecs, s, vecs, optimize=True)
    return 0.5 * (out + np.swapaxes(out, -1, -2))


# ---------------------------------------------------------------------------------- diagonal
def _vei(b, nk, lam, tol, max_iter):
    """VEI on scatter diagonals ``b`` (K, D): volumes (K,), shape (D,), iterations."""
    d = b.shape[1]
    q_old = -np.inf
    it = 0
    shape = np.ones(d)
    pos = nk > 0
    for it in range(1, max(int(max_iter), 1) + 1):  # noqa: B007 (returned)
        shape = _safe_ratio(b, lam).sum(axis=0)
        shape = shape / _gmean(shape)
        with np.errstate(divide="ignore", invalid="ignore"):
            lam = (b / shape).sum(axis=1) / (d * nk)
            q = -0.5 * d * float(np.sum(np.where(pos, nk * (np.log(lam) + 1.0), 0.0)))
        if not np.isfinite(q) or _converged(q, q_old, tol):
            break
        q_old = q
    return lam, shape, it


def _evi(b, nk):
    """EVI on scatter diagonals ``b`` (K, D): the diagonal covariances (K, D)."""
    g = _gmean(b, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return b / g[:, None] * (g.sum() / nk.sum())


def _diag_sigma(kind, b, nk, tol, max_iter, lam0=None):
    """The diagonal model ``kind`` (EEI, VEI, EVI, VVI) on diagonals ``b``: (K, D), iters."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if kind == "EEI":
            return np.broadcast_to(b.sum(axis=0) / nk.sum(), b.shape).copy(), 0
        if kind == "VVI":
            return b / nk[:, None], 0
        if kind == "EVI":
            return _evi(b, nk), 0
    lam = np.ones(b.shape[0]) if lam0 is None else lam0
    lam, shape, it = _vei(b, nk, lam, tol, max_iter)
    return lam[:, None] * shape[None, :], it


# ---------------------------------------------------------------------------------- full
def _vee(w, nk, lam, tol, max_iter):
    """VEE on full scatters ``w`` (K, D, D): covariances (K, D, D), iterations."""
    d = w.shape[-1]
    pos = nk > 0
    ok = np.isfinite(lam) & (lam > 0)
    q_old = -np.inf
    it = 0
    c = np.eye(d)
    for it in range(1, max(int(max_iter), 1) + 1):  # noqa: B007 (returned)
        wts = np.where(ok, 1.0 / np.where(ok, lam, 1.0), 0.0)
        c = np.einsum("k,kij->ij", wts, w)
        c = 0.5 * (c + c.T)
        sign, logdet = np.linalg.slogdet(c)
        if not sign > 0:
            break
        c = c / np.exp(logdet / d)
        try:
            cinv = np.linalg.inv(c)
        except np.linalg.LinAlgError:
            break
        with np.errstate(divide="ignore", invalid="ignore"):
            lam = np.einsum("ij,kij->k", cinv, w) / (d * nk)
            q = -0.5 * d * float(np.sum(np.where(pos, nk * (np.log(lam) + 1.0), 0.0)))
        ok = np.isfinite(lam) & (lam > 0)
        if not np.isfinite(q) or _converged(q, q_old, tol):
            break
        q_old = q
    return lam[:, None, None] * c[None], it


def _procrustes_min(f):
    """The orthogonal ``D`` minimising ``tr(D^T F)``: ``-P R^T`` for ``F = P B R^T``."""
    p, _, rt = np.linalg.svd(f)
    return -(p @ rt)


@functools.lru_cache(maxsize=64)
def _rounds(p):
    """Round-robin schedule: ``p - 1`` (``p`` odd: ``p``) rounds of disjoint pairs (I, J)."""
    n = p + (p % 2)
    players = list(range(n))
    out = []
    for _ in range(n - 1):
        pairs = [(players[i], players[n - 1 - i]) for i in range(n // 2)]
        pairs = [(min(a, b), max(a, b)) for a, b in pairs if a < p and b < p]
        out.append(
            (
                np.array([a for a, _ in pairs], dtype=np.intp),
                np.array([b for _, b in pairs], dtype=np.intp),
            )
        )
        players = [players[0], players[-1], *players[1:-1]]
    return tuple(out)


def _rotate(m, orient, i, j, c, s):
    """Rotate the planes (i, j) by angles with cosines c and sines s, in place.

    Columns ``d_i <- c d_i + s d_j``, ``d_j <- c d_j - s d_i`` of ``orient`` (D, D), and the
    matching rows and columns of ``m = D^T W_k D`` (K, D, D).
    """
    mi, mj = m[:, :, i], m[:, :, j]
    m[:, :, i], m[:, :, j] = c * mi + s * mj, c * mj - s * mi
    mi, mj = m[:, i, :], m[:, j, :]
    cc, ss = c[:, None], s[:, None]
    m[:, i, :], m[:, j, :] = cc * mi + ss * mj, cc * mj - ss * mi
    di, dj = orient[:, i], orient[:, j]
    orient[:, i], orient[:, j] = c * di + s * dj, c * dj - s * di


def _jacobi_sweep(kind, m, orient, s, nk, pos):
    """One sweep of plane rotations of the common orientation, each optimal given ``s``.

    For disjoint planes (i, j) at once (a round-robin schedule), the rotation angle minimises
    ``sum_k tr(S_k^{-1} D^T W_k D)``, which is ``const + alpha cos 2t + beta sin 2t`` in the
    angle t; after each round the diagonals ``s`` are the model's closed form again (a
    Flury-Gautschi-type cyclic scheme). ``m`` (= D^T W_k D), ``orient`` (D) and ``s`` are
    updated in place; Q never decreases.
    """
    for i, j in _rounds(m.shape[-1]):
        with np.errstate(divide="ignore", invalid="ignore"):
            u = np.where(pos[:, None], 1.0 / s[:, i], 0.0)
            v = np.where(pos[:, None], 1.0 / s[:, j], 0.0)
        du = u - v
        alpha = 0.5 * np.einsum("km,km->m", du, m[:, i, i] - m[:, j, j])
        beta = np.einsum("km,km->m", du, m[:, i, j])
        if not (np.all(np.isfinite(alpha)) and np.all(np.isfinite(beta))):
            return False
        flat = (alpha == 0) & (beta == 0)
        t = np.where(flat, 0.0, 0.5 * np.arctan2(-beta, -alpha))
        _rotate(m, orient, i, j, np.cos(t), np.sin(t))
        s[...] = _diag_sigma(kind, np.einsum("kii->ki", m), nk, 0.0, 1)[0]
    return True


_ORIENTATION_STEPS = ("mm", "jacobi")  # the steps of one inner iteration of EVE and VVE


def _common_orientation(kind, w, nk, orient, tol, max_iter, steps=None):
    """EVE (``kind`` EVI) / VVE (VVI): covariances and inner iterations.

    Each inner iteration: the two MM steps of Browne & McNicholas (2014) for the orientation
    given the diagonals, the diagonals given the orientation (closed form), then one sweep of
    plane rotations (:func:`_jacobi_sweep`). Every step never decreases Q.
    """
    steps = _ORIENTATION_STEPS if steps is None else steps
    pos = nk > 0
    wmax = np.linalg.eigvalsh(w)[:, -1]
    orient = np.array(orient, dtype=np.float64)

    def project(orient):
        wd = w @ orient
        m = np.swapaxes(wd, -1, -2) @ orient  # D^T W_k D
        m = 0.5 * (m + np.swapaxes(m, -1, -2))
        s = _diag_sigma(kind, np.einsum("kii->ki", m), nk, 0.0, 1)[0]
        return wd, m, s

    wd, m, s = project(orient)
    q_old = _q_diag(np.einsum("kii->ki", m), s, nk)
    it = 0
    for it in range(1, max(int(max_iter), 1) + 1):  # noqa: B007 (returned)
        if "mm" in steps:
            with np.errstate(divide="ignore", invalid="ignore"):
                sinv = np.where(pos[:, None], 1.0 / s, 0.0)
            if not np.all(np.isfinite(sinv)):
                break
            # MM 1: each column's d^T W_k d majorised with the largest eigenvalue of W_k
            f = (wd * sinv[:, None, :]).sum(axis=0) - orient * (wmax @ sinv)[None, :]
            orient = _procrustes_min(f)
            wd = w @ orient
            # MM 2: v^T S_k^{-1} v (v = D^T u) majorised with the largest entry of S_k^{-1}
            f = (wd * (sinv - sinv.max(axis=1, keepdims=True))[:, None, :]).sum(axis=0)
            orient = _procrustes_min(f)
            wd, m, s = project(orient)
        if "jacobi" in steps:
            if not _jacobi_sweep(kind, m, orient, s, nk, pos):
                break
            wd = w @ orient
        q = _q_diag(np.einsum("kii->ki", m), s, nk)
        if not np.isfinite(q) or _converged(q, q_old, tol):
            break
        q_old = q
    return _compose(orient, s), it


def _generic_eigvecs(prev):
    """Eigenvectors of a generic combination of the (K, D, D) ``prev``."""
    k = prev.shape[0]
    c = 0.5 + np.mod((np.arange(k) + 1) * 0.6180339887498949, 1.0)
    m = np.einsum("k,kij->ij", c, prev)
    return np.linalg.eigh(0.5 * (m + m.T))[1]


# ---------------------------------------------------------------------------------- driver
def _as_float(a):
    a = np.asarray(a)
    return a.astype(np.float64, copy=False)


def _run(model, scatter, nk, reg, previous, tol, max_iter):
    """(covariances, inner iterations) of ``model``'s M-step; see ``CovarianceModel.m_step``."""
    raw = np.asarray(scatter)
    out_dtype = np.float32 if raw.dtype == np.float32 else np.float64
    w = _as_float(raw)
    nk = _as_float(nk).reshape(-1)
    k = nk.shape[0]
    kernel = model.kernel
    expect = (w.shape[-1], w.shape[-1]) if kernel == "tied" else (k,)
    ok_shape = w.ndim == _KERNEL_SHAPES[kernel] and w.shape[: len(expect)] == expect
    if kernel == "full":
        ok_shape = ok_shape and w.shape[1] == w.shape[2]
    if not ok_shape:
        layout = {
            "full": "(K, D, D)",
            "tied": "(D, D)",
            "diag": "(K, D)",
            "spherical": "(K, D)",
        }[kernel]
        raise ValueError(
            f"scatter for covariance model {model.name} (kernel {kernel!r}) must have shape "
            f"{layout} with K = len(nk) = {k}; got {w.shape}"
        )
    d = w.shape[-1]
    reg = float(reg)
    prev = None if previous is None else _as_float(previous)
    name = model.name
    it = 0
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if kernel in ("diag", "spherical"):
            b = w + reg * nk[:, None] if reg else w
            if name in ("EII", "E"):
                cov = np.full(k, b.sum() / (d * nk.sum()))
            elif name in ("VII", "V"):  # as scikit-learn: mean(diag(W_k) / n_k + reg)
                cov = (w / nk[:, None] + reg).mean(axis=1)
            elif name == "VVI":
                cov = w / nk[:, None] + reg
            else:
                lam0 = None
                if name == "VEI" and prev is not None and prev.shape == (k, d):
                    lam0 = _gmean(prev, axis=1)
                cov, it = _diag_sigma(name, b, nk, tol, max_iter, lam0)
        elif kernel == "tied":  # EEE
            cov = w / nk.sum()
            if reg:
                cov = cov + reg * np.eye(d)
        else:
            eye = np.eye(d)
            wr = w + (reg * nk)[:, None, None] * eye if reg else w
            prev_ok = prev is not None and prev.shape == (k, d, d)
            if name == "VVV":
                cov = w / nk[:, None, None]
                if reg:
                    cov = cov + reg * eye
            elif name == "EVV":
                vol = _volumes(wr)
                vol = np.where(np.isnan(vol), 0.0, vol)
                cov = wr / vol[:, None, None] * (vol.sum() / nk.sum())
            elif name in ("EEV", "VEV"):
                omega, vecs = _eigh_desc(0.5 * (wr + np.swapaxes(wr, -1, -2)))
                lam0 = _volumes(prev) if (name == "VEV" and prev_ok) else None
                kind = "EEI" if name == "EEV" else "VEI"
                s, it = _diag_sigma(kind, omega, nk, tol, max_iter, lam0)
                cov = _compose(vecs, s)
            elif name == "VEE":
                lam0 = _volumes(prev) if prev_ok else np.ones(k)
                cov, it = _vee(wr, nk, lam0, tol, max_iter)
            else:  # EVE, VVE
                if prev_ok and np.all(np.isfinite(prev)):
                    orient = _generic_eigvecs(prev)
                else:
                    pooled = np.einsum("kij,k->ij", wr, 1.0 / np.where(nk > 0, nk, np.inf))
                    orient = np.linalg.eigh(0.5 * (pooled + pooled.T))[1]
                kind = "EVI" if name == "EVE" else "VVI"
                cov, it = _common_orientation(kind, wr, nk, orient, tol, max_iter)
    return np.asarray(cov, dtype=out_dtype), it


# ---------------------------------------------------------------------------------- table
def _title(vol, shp, ori):
    word = {"E": "equal", "V": "varying"}
    if shp == "I":
        return f"spherical, {word[vol]} volume"
    if ori == "I":
        return f"diagonal, {word[vol]} volume, {word[shp]} shape"
    return f"ellipsoidal, {word[vol]} volume, {word[shp]} shape, {word[ori]} orientation"


def _make(name):
    vol, shp, ori = name
    if shp == "I":
        kernel = "spherical"
    elif ori == "I":
        kernel = "diag"
    elif name == "EEE":
        kernel = "tied"
    else:
        kernel = "full"
    return CovarianceModel(
        name=name,
        kernel=kernel,
        title=_title(vol, shp, ori),
        volume=vol,
        shape=shp,
        orientation=ori,
        iterative=name in ("VEI", "VEE", "EVE", "VVE", "VEV"),
    )


_NAMES = (
    "EII",
    "VII",
    "EEI",
    "VEI",
    "EVI",
    "VVI",
    "EEE",
    "VEE",
    "EVE",
    "VVE",
    "EEV",
    "VEV",
    "EVV",
    "VVV",
)
MODELS: dict[str, CovarianceModel] = {n: _make(n) for n in _NAMES}
MODELS["E"] = CovarianceModel("E", "spherical", "univariate, equal variance", "E", "I", "I", False)
MODELS["V"] = CovarianceModel(
    "V", "spherical", "univariate, varying variance", "V", "I", "I", False
)
ALIASES: dict[str, str] = {"spherical": "VII", "diag": "VVI", "tied": "EEE", "full": "VVV"}


def get_model(name: str, n_features: int | None = None) -> CovarianceModel:
    """The covariance model called ``name`` (an mclust name or a scikit-learn alias).

    Every multivariate name is accepted for any number of features (with one feature the
    formulas reduce: the E... names give E's covariances, the V.. and .V. names V's up to the
    shape and orientation, which are 1); the univariate names "E" and "V" need
    ``n_features == 1`` (or ``n_features`` None).

    Raises
    ------
    ValueError
        For an unknown name, or "E"/"V" with more than one feature.
    """
    if not isinstance(name, str) or (name not in MODELS and name not in ALIASES):
        names = (*ALIASES, *_NAMES, "E", "V")
        accepted = ", ".join(repr(n) for n in names)
        close = difflib.get_close_matches(str(name), names, n=1)
        hint = f"did you mean {close[0]!r}?" if close else "pass one of them"
        raise ValueError(
            f"covariance_type {name!r} is not a known covariance model: expected one of "
            f"{accepted}; {hint}"
        )
    model = MODELS[ALIASES.get(name, name)]
    if model.name in ("E", "V") and n_features is not None and int(n_features) != 1:
        raise ValueError(
            f"covariance_type {name!r} is a univariate model but the data have {n_features} "
            f"features; use {'EII' if name == 'E' else 'VII'!r} (its multivariate form) or "
            "another multivariate model"
        )
    return model


# ---------------------------------------------------------------------------------- checks
def _to_full(cov, kernel):
    cov = np.asarray(cov, dtype=np.float64)
    if cov.ndim == 3:
        return cov
    if cov.ndim == 2 and kernel == "tied":
        return cov[None]
    if cov.ndim == 2:
        return np.einsum("kd,de->kde", cov, np.eye(cov.shape[1]))
    if cov.ndim == 1:
        return cov[:, None, None] * np.ones((1, 1, 1))
    raise ValueError(f"covariances must have 1, 2 or 3 dimensions; got shape {cov.shape}")


def _all_close(rows, tol):
    """Whether the rows of ``rows`` (K, ...) are equal to relative tolerance ``tol``."""
    rows = rows.reshape(rows.shape[0], -1)
    scale = max(float(np.max(np.abs(rows))), np.finfo(float).tiny)
    return bool(np.max(np.abs(rows - rows[:1])) <= tol * scale)


def check_structure(model_name: str, covariances, tol: float = 1e-10) -> list[str]:
    """The constraints of ``model_name`` that ``covariances`` violate (empty if none).

    ``covariances`` may be in any layout: (K, D, D) full, (K, D) diagonals (or (D, D) tied
    when the model's kernel is tied), (K,) spherical variances. The checks, each to relative
    tolerance ``tol``: positive definite; equal volumes ``|Sigma_k|^(1/D)``; spherical (shape
    I); axis-aligned (orientation I); equal shapes (the normalised eigenvalues, matched along
    the axes for orientation I and along the common orientation for orientation E); a common
    orientation (the matrices commute pairwise).
    """
    model = get_model(model_name)
    sig = _to_full(covariances, model.kernel)
    sig = 0.5 * (sig + np.swapaxes(sig, -1, -2))
    k, d = sig.shape[0], sig.shape[-1]
    msgs: list[str] = []
    try:
        evals = np.linalg.eigvalsh(sig)
    except np.linalg.LinAlgError:
        return [f"{model.name}: covariances are not finite"]
    if not np.all(np.isfinite(sig)) or np.any(evals[:, 0] <= 0):
        return [f"{model.name}: covariances are not positive definite"]
    vol = np.exp(np.log(evals).mean(axis=1))
    if model.volume == "E" and not _all_close(vol, tol):
        msgs.append(f"{model.name}: volumes differ ({np.array2string(vol, precision=4)})")
    off = sig - np.einsum("kii,ij->kij", sig, np.eye(d))
    axis_aligned = bool(np.max(np.abs(off)) <= tol * np.max(np.abs(sig)))
    if model.orientation == "I" and not axis_aligned:
        msgs.append(f"{model.name}: covariances are not diagonal (orientation must be I)")
    normed = sig / vol[:, None, None]
    if model.shape == "I":
        if not np.all(evals[:, -1] - evals[:, 0] <= tol * evals[:, -1]):
            msgs.append(f"{model.name}: covariances are not spherical (shape must be I)")
    common = True
    if model.orientation == "E" and k > 1:
        scale = np.max(np.abs(normed))
        comm = np.einsum("aij,bjl->abil", normed, normed)
        comm = comm - np.swapaxes(comm, 0, 1)
        common = bool(np.max(np.abs(comm)) <= tol * scale**2)
        if not common:
            msgs.append(f"{model.name}: orientations differ (the covariances do not commute)")
    if model.shape == "E":
        shapes = evals[:, ::-1] / vol[:, None]
        same = _all_close(shapes, tol)
        if same and model.orientation == "I":
            same = _all_close(np.einsum("kii->ki", normed), tol)
        elif same and model.orientation == "E" and common:
            same = _all_close(normed, tol)
        if not same:
            msgs.append(f"{model.name}: shapes differ")
    return msgs
