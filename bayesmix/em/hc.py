"""Model-based agglomerative hierarchical clustering, as R's mclust ``hc`` / ``hclass``.

This is the deterministic start of mclust's EM (``mclust.options("hcModelName") = "VVV"``,
``mclust.options("hcUse") = "SVD"``): agglomerate the observations pair by pair, each time
merging the two clusters whose merge costs least classification likelihood (Banfield &
Raftery 1993; Fraley 1998, "Algorithms for model-based Gaussian hierarchical clustering"),
then cut the tree at ``G`` clusters with :func:`hclass` to start EM for ``G`` components.
Written from the published criteria and mclust's documented behaviour (its Fortran routines
``hcvvv``, ``hceii``, ``hc1v``, ``hc1e`` were read, not translated); NumPy only.

Merge cost
----------
For a cluster ``k`` with ``n_k`` points, scatter matrix ``W_k`` (sum of outer products of the
centred points) and trace ``t_k = tr W_k``, each model has a cluster *term*; the cost of
merging ``i`` and ``j`` is ``term(i u j) - term(i) - term(j)`` (smaller is better; a term is
``-2`` times a profile classification log-likelihood up to constants):

* ``"VVV"`` (``hcVVV``): ``term = n log( det(W/n) + beta (t + alpha) / n )`` with
  ``det(W/n) = 0`` when ``n <= p`` (and for a pair of singletons); a singleton has
  ``term = log(alpha beta)``. mclust's defaults: ``beta = 1`` and
  ``alpha = tr(W_all) / (N p)`` (the mean per-coordinate ML variance of the data the
  clustering runs on), floored at machine epsilon. ``alpha`` keeps clusters with at most
  ``p`` points (singular ``W``) comparable with larger ones. mclust evaluates ``det`` from
  a triangular factor ``R`` (``R'R = W``) kept per cluster; when it stores a new cluster's
  factor for later use it writes the factor's first row into every stored row (stored row
  ``k`` = ``R[0, k:]``, ``k < min(n - 1, p)``; ``hcvvv`` after its label 200), so every later
  cost that involves that cluster (except right after its own merge, when the factor in hand
  is used) sees ``W_stored = R_stored' R_stored`` instead of ``W``. With ``mclust_quirks=True``
  (default) this is reproduced, and the costs agree with mclust's to ~1e-13 (Old Faithful,
  all 271 merges); without it the Old Faithful VVV/VARS partitions for ``G >= 5`` differ.
* ``"EII"`` / ``"E"`` (``hcEII`` / ``hcE``): Ward's criterion, the increase of the total
  within-cluster sum of squares ``n_i n_j / (n_i + n_j) ||m_i - m_j||^2``, updated by the
  Lance-Williams recurrence as mclust does.
* ``"V"`` (``hcV``, one-dimensional): ``term = n log((t + alpha) / n)``, a singleton
  ``log alpha``. mclust 6 computes ``alpha = min(var, eps)`` (``min`` where the VVV code has
  ``max``), which the Fortran then floors at ``eps``: in effect ``alpha = 2.22e-16``. That is
  reproduced here so the partitions match mclust's.

Merge order and ties follow mclust: clusters live in slots ``0..L-1`` (initially the groups in
order of first appearance); the best pair is the *last* minimum in the order (slot ``j``
ascending, then slot ``i < j`` ascending); the merged cluster stays in slot ``i`` and the
cluster in the last slot moves into slot ``j``. Exact ties arise with duplicated rows and in
rounded data (equal difference vectors, e.g. iris); the statistics are accumulated in
mclust's order so that such ties break as in mclust. After ``use="SVD"`` the transformed
data differ from R's in the last bits (different LAPACK builds), so ties there can break
differently: on iris the VVV/SVD merge order differs from step 12, the partitions for
``G = 1..9`` do not.

Data transformation (``use``, mclust's ``hcUse``)
------------------------------------------------
* ``"VARS"``: the data as given.
* ``"STD"``: centred and scaled to unit sample standard deviation (``ddof=1``); columns that
  become non-finite (constant columns) are dropped, as mclust does.
* ``"SVD"`` (mclust's default start): ``Z = X_std V diag(1 / sqrt(s))`` where ``X_std`` is the
  ``"STD"`` data and ``X_std = U diag(s) V'`` its thin SVD: scaled principal components
  (``Z'Z = diag(s)``).

Labels
------
:class:`HCTree` records merges as mclust's ``hcPairs``: a cluster is named by the smallest
0-based initial-group index it contains, and merge ``(i, j)`` with ``i < j`` means cluster
``j`` joins cluster ``i``. :func:`hclass` numbers the clusters of a cut ``0..G-1`` by order of
first appearance in the rows, exactly as mclust numbers them ``1..G`` (``partconv``), so
``hclass(tree, G) + 1`` equals mclust's ``hclass(hc(X), G)``.

Cost: ``O(N^2)`` memory (an ``N x N`` float64 cost matrix, 200 MB at ``N = 5000``; peak about
0.5 GB) and about ``O(N^2 p^3)`` time for VVV (N = 2000, p = 6: 1-3 s); pass an initial
``partition`` with fewer groups for large ``N``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["HCTree", "hc", "hclass"]

_MODELS = ("VVV", "EII", "V", "E")
_USES = ("SVD", "VARS", "STD")
_EPS = float(np.finfo(np.float64).eps)
_RTHALF = 0.7071067811865476  # sqrt(1/2), as mclust's constant


@dataclass(frozen=True)
class HCTree:
    """Result of :func:`hc`: a merge sequence in mclust's ``hcPairs`` convention.

    Attributes
    ----------
    merges : ndarray of int, shape (n_groups - 1, 2)
        Merge ``k`` joins cluster ``merges[k, 1]`` into cluster ``merges[k, 0]``
        (``merges[k, 0] < merges[k, 1]``); a cluster is named by the smallest 0-based
        initial-group index it contains (with singletons: the smallest row index).
    criterion : ndarray of float, shape (n_groups - 1,)
        The merge cost of each merge (model term of the union minus the terms of the two
        clusters; smaller is better).
    initial_partition : ndarray of int, shape (n_samples,)
        The groups the agglomeration starts from, numbered ``0..n_groups-1`` by first
        appearance.
    n_samples, n_features : int
        Shape of the data the clustering ran on (after the ``use`` transformation).
    model, use : str
        The model (``"VVV"``, ``"EII"``, ``"V"``, ``"E"``) and the data transformation.
    """

    merges: np.ndarray
    criterion: np.ndarray
    initial_partition: np.ndarray
    n_samples: int
    n_features: int
    model: str
    use: str

    @property
    def n_groups(self) -> int:
        """Number of initial groups (``n_samples`` when starting from singletons)."""
        return int(self.merges.shape[0]) + 1


# --------------------------------------------------------------------------------------
# input handling and data transformation
# --------------------------------------------------------------------------------------


def _check_X(X) -> np.ndarray:
    X = np.asarray(X)
    if X.dtype == object or not (
        np.issubdtype(X.dtype, np.number) or np.issubdtype(X.dtype, np.bool_)
    ):
        raise ValueError(f"X must be numeric, got dtype {X.dtype}")
    if np.iscomplexobj(X):
        raise ValueError("X must be real, got complex values")
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2:
        raise ValueError(f"X must be 1-D or 2-D (n_samples, n_features), got {X.ndim}-D")
    if X.shape[0] < 2:
        raise ValueError(f"X must have at least 2 rows (n_samples >= 2), got {X.shape[0]}")
    if X.shape[1] < 1:
        raise ValueError("X must have at least 1 column (n_features >= 1), got 0")
    if not np.all(np.isfinite(X)):
        raise ValueError("X must contain only finite values (no NaN or inf)")
    return X


def _r_scale(X: np.ndarray) -> np.ndarray:
    """R's ``scale(X)``: centre by column means, divide by the ``ddof=1`` standard deviation.

    Sums in extended precision as R's ``colMeans`` / ``sum`` do; constant columns come out
    non-finite and are dropped by the caller (mclust's ``dropCols``).
    """
    n = X.shape[0]
    mean = (np.sum(X.astype(np.longdouble), axis=0) / n).astype(np.float64)
    Xc = X - mean
    ss = np.sum(np.square(Xc).astype(np.longdouble), axis=0).astype(np.float64)
    sd = np.sqrt(ss / max(1, n - 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return Xc / sd


def _transform(X: np.ndarray, use: str) -> np.ndarray:
    if use == "VARS":
        return X.copy()
    Z = _r_scale(X)
    Z = Z[:, np.all(np.isfinite(Z), axis=0)]
    if Z.shape[1] == 0:
        raise ValueError(f"use={use!r} leaves no columns: every column of X is constant")
    if use == "STD":
        return Z
    _, s, vt = np.linalg.svd(Z, full_matrices=False)
    v = vt.T
    # Z @ v summed term by term in column order (reference BLAS dgemm), then * 1/sqrt(s)
    out = np.zeros((Z.shape[0], v.shape[1]))
    for col in range(Z.shape[1]):
        out += Z[:, col : col + 1] * v[col]
    with np.errstate(divide="ignore"):
        out *= 1.0 / np.sqrt(s)
    if not np.all(np.isfinite(out)):
        raise ValueError("use='SVD' failed: the standardised columns of X are collinear")
    return out


def _check_partition(partition, n: int) -> np.ndarray:
    """Initial groups numbered ``0..k-1`` by order of first appearance (mclust's partconv)."""
    if partition is None:
        return np.arange(n)
    part = np.asarray(partition)
    if part.ndim != 1 or part.shape[0] != n:
        raise ValueError(
            f"partition must assign a group to each of the {n} rows of X, got shape {part.shape}"
        )
    if part.dtype.kind == "f" and not np.all(np.isfinite(part)):
        raise ValueError("partition must not contain NaN or inf")
    _, first, inverse = np.unique(part, return_index=True, return_inverse=True)
    rank = np.empty(first.shape[0], dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(first.shape[0])
    groups = rank[inverse.reshape(-1)]
    if first.shape[0] < 2:
        raise ValueError("partition must have at least 2 groups to merge, got 1")
    return groups


def _seqdot(v: np.ndarray) -> np.ndarray:
    """Row-wise sum of squares, summed in column order (as reference BLAS ``ddot``)."""
    out = np.zeros(v.shape[:-1])
    for col in range(v.shape[-1]):
        out += v[..., col] * v[..., col]
    return out


def _last_min(values: np.ndarray) -> int:
    """Index of the last occurrence of the minimum (mclust scans with ``<=``)."""
    m = values.min()
    return int(np.flatnonzero(values == m)[-1])


# --------------------------------------------------------------------------------------
# cluster statistics and merge costs
# --------------------------------------------------------------------------------------


def _fortran_groups(Z: np.ndarray, groups: np.ndarray, k: int, model: str):
    """Scaled sums ``sqrt(n) mean`` and traces of initial groups, accumulated as mclust does.

    mclust first moves each group's first row to the front (a fixed swap pattern), then folds
    the other rows into their group one at a time in row order; repeating that order and
    its update formulas makes the statistics agree bit for bit, which matters for exact
    ties (rounded data).
    """
    n = groups.shape[0]
    ic = (groups + 1).tolist()
    perm = list(range(n))
    i, j = 1, 2
    while ic[j - 1] == j:
        if j == k:
            break
        i, j = j, j + 1
    else:
        kk = i
        for jj in range(j + 1, n + 1):
            icj = ic[jj - 1]
            if icj > kk:
                kk += 1
                perm[kk - 1], perm[jj - 1] = perm[jj - 1], perm[kk - 1]
                ic[jj - 1] = ic[kk - 1]
                ic[kk - 1] = icj
    heads = np.array(perm[:k])
    xs = Z[heads].copy()
    tr = np.zeros(k)
    cnt = np.ones(k)
    for pos in range(k, n):
        g = ic[pos] - 1
        x = Z[perm[pos]]
        ri = cnt[g]
        rij = ri + 1.0
        if model in ("EII", "E"):
            sj = np.sqrt(1.0 / rij)
            si = np.sqrt(ri) * sj
        elif model == "V" and ri == 1.0:
            si = sj = _RTHALF
            temp = _RTHALF * (x - xs[g])
            tr[g] = float(temp[0] * temp[0])
            xs[g] = _RTHALF * (x + xs[g])
            cnt[g] = rij
            continue
        else:
            qj = 1.0 / rij
            si = np.sqrt(ri * qj)
            sj = np.sqrt(qj)
        v = si * x - sj * xs[g]
        tr[g] += float(_seqdot(v[None, :])[0])
        xs[g] = si * xs[g] + sj * x
        cnt[g] = rij
    return xs, tr


class _Stats:
    """Per-slot cluster statistics: size, scaled sum ``sqrt(n) mean``, trace, scatter, term."""

    def __init__(self, Z: np.ndarray, groups: np.ndarray, k: int, model: str):
        with_scatter = model == "VVV"
        n_rows, p = Z.shape
        self.n = np.bincount(groups, minlength=k).astype(np.float64)
        sums = np.zeros((k, p))
        np.add.at(sums, groups, Z)
        means = sums / self.n[:, None]
        self.xs = sums / np.sqrt(self.n)[:, None]
        centred = Z - means[groups]
        if n_rows == k:  # singletons: the points themselves
            self.xs = Z[np.argsort(groups)].copy()
            self.tr = np.zeros(k)
        else:
            self.xs, self.tr = _fortran_groups(Z, groups, k, model)
        self.W = None
        if with_scatter:
            self.W = np.zeros((k, p, p))
            np.add.at(self.W, groups, centred[:, :, None] * centred[:, None, :])
        self.term = np.zeros(k)
        # VVV factor bookkeeping (see _VVV.merge): the slot whose factor is held as computed
        self.mem_slot = -1
        self.W_mem = None
        self.r0_mem = None
        self.r0 = None
        if with_scatter:
            w00 = self.W[:, 0, 0]
            safe = np.where(w00 > 0.0, np.sqrt(np.where(w00 > 0.0, w00, 1.0)), 1.0)
            self.r0 = np.where((w00 > 0.0)[:, None], self.W[:, 0, :] / safe[:, None], 0.0)

    def move(self, src: int, dst: int) -> None:
        for arr in (self.n, self.xs, self.tr, self.term, self.W, self.r0):
            if arr is not None:
                arr[dst] = arr[src]
        if self.mem_slot == src:
            self.mem_slot = dst


def _merge_weights(st: _Stats, a: int, bs: np.ndarray):
    """Sizes of slot ``a`` and slots ``bs``, their sums and the weights sqrt(n_i / n_ij)."""
    ni = st.n[a]
    nj = st.n[bs]
    nij = ni + nj
    qij = 1.0 / nij  # as mclust's Fortran, digit for digit (ties are broken by the costs)
    return ni, nj, nij, np.sqrt(ni * qij), np.sqrt(nj * qij)


class _VVV:
    """mclust's VVV merge cost (``hcVVV``), ``beta`` and ``alpha`` as described above."""

    def __init__(self, Z: np.ndarray, alpha: float = 1.0, beta: float = 1.0, quirks=True):
        n, p = Z.shape
        self.quirks = quirks
        centred = Z - Z.mean(axis=0)
        alpha = alpha * float(np.sum(centred * centred)) / (n * p)
        self.alpha = max(alpha, _EPS)
        self.beta = float(beta)
        self.p = p
        self.single = float(np.log(self.beta * self.alpha))  # term of a singleton

    def term(self, n, tr, W, skip_det=None) -> np.ndarray:
        n = np.asarray(n, dtype=np.float64)
        tr = np.asarray(tr, dtype=np.float64)
        c = self.beta * (tr + self.alpha) / n
        out = np.log(c)
        use_det = (n > self.p) & (tr != 0.0)
        if skip_det is not None:
            use_det &= ~skip_det
        if np.any(use_det):
            idx = np.flatnonzero(use_det)
            sign, logdet = np.linalg.slogdet(W[idx])
            detlog = logdet - self.p * np.log(n[idx])
            ok = sign > 0
            cc = c[idx]
            val = out[idx]
            low = ok & (detlog <= 0.0)
            high = ok & (detlog > 0.0)
            val[low] = np.log(np.exp(detlog[low]) + cc[low])
            val[high] = np.log(1.0 + np.exp(-detlog[high]) * cc[high]) + detlog[high]
            out[idx] = val
        zero = tr == 0.0
        if np.any(zero):
            out[zero] = np.log((self.alpha * self.beta) / n[zero])
        return n * out

    def init_terms(self, st: _Stats) -> None:
        st.term[:] = self.single
        big = st.n > 1
        if np.any(big):
            st.term[big] = self.term(st.n[big], st.tr[big], st.W[big])

    def pair(self, st: _Stats, a: int, bs: np.ndarray):
        """Costs of merging slot ``a`` with each slot in ``bs``, and the merged statistics."""
        ni, nj, nij, si, sj = _merge_weights(st, a, bs)
        v = si[:, None] * st.xs[bs] - sj[:, None] * st.xs[a]
        trc = (st.tr[a] + st.tr[bs]) + _seqdot(v)
        Wa = st.W_mem if a == st.mem_slot else st.W[a]
        Wc = Wa + st.W[bs] + v[:, :, None] * v[:, None, :]
        skip = (nj == 1) & (ni == 1)  # a pair of singletons: trace term only, as mclust
        termc = self.term(nij, trc, Wc, skip_det=skip)
        d = termc - (st.term[a] + st.term[bs])
        return d, trc, Wc, termc, v

    def merge(self, st: _Stats, i: int, j: int, dopt: float):
        """Statistics of the union of slots ``i < j``, updating the factor bookkeeping.

        mclust keeps each cluster's scatter as a triangular factor ``R`` (``R'R = W``); the
        factor of the cluster just formed is used as computed, but the copy stored for later
        (``hcvvv``, after label 200) repeats the factor's first row: stored row ``k`` holds
        ``r[0, k:]`` for ``k < min(n - 1, p)``. With ``quirks`` on, the stored scatter is that
        matrix's Gram, so later costs involving the cluster match mclust's.
        """
        a = i if i == st.mem_slot or j != st.mem_slot else j
        b = j if a == i else i
        d, trc, Wc, termc, v = self.pair(st, a, np.array([b]))
        W = Wc[0]
        if st.mem_slot not in (i, j):
            termc = np.array([dopt + (st.term[i] + st.term[j])])
            first = st.r0[j] if st.n[j] > 1 else (st.r0[i] if st.n[i] > 1 else v[0])
        else:
            first = st.r0_mem
        nij = st.n[i] + st.n[j]
        if W[0, 0] > 0.0:
            r0 = W[0] / np.sqrt(W[0, 0])
        else:  # Givens rotations leave the first stacked row in place
            r0 = np.array(first, dtype=np.float64)
        if self.quirks:
            rows = min(int(nij) - 1, self.p)
            idx = np.arange(self.p)
            mult = np.minimum(np.minimum.outer(idx, idx) + 1, rows)
            stored = np.outer(r0, r0) * mult
        else:
            stored = W
        return trc[0], termc[0], W, stored, r0

    def singleton_costs(self, Z: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Costs between singletons ``rows`` and all singletons (full rows of the matrix)."""
        trc = np.zeros((rows.shape[0], Z.shape[0]))
        for col in range(Z.shape[1]):
            diff = (Z[rows, col][:, None] - Z[None, :, col]) * _RTHALF
            trc += diff * diff
        trm = 2.0 * np.log(self.beta * (trc + self.alpha) / 2.0)
        return trm - (self.single + self.single)


class _V:
    """mclust's one-dimensional ``V`` merge cost (``hcV``)."""

    def __init__(self, Z: np.ndarray, quirks: bool = True):
        if quirks:  # mclust: alpha <- min(var, eps) in R, then max(alpha, eps) in Fortran
            self.alpha = _EPS
        else:  # the evident intent, as in hcVVV: the ML variance, floored at eps
            centred = Z[:, 0] - Z[:, 0].mean()
            self.alpha = max(float(centred @ centred) / Z.shape[0], _EPS)
        self.single = float(np.log(self.alpha))

    def term(self, n, tr):
        return n * np.log((tr + self.alpha) / n)

    def init_terms(self, st: _Stats) -> None:
        st.term[:] = self.single
        big = st.n > 1
        st.term[big] = self.term(st.n[big], st.tr[big])

    def pair(self, st: _Stats, a: int, bs: np.ndarray):
        _, _, nij, si, sj = _merge_weights(st, a, bs)
        temp = sj * st.xs[a, 0] - si * st.xs[bs, 0]
        trc = (st.tr[a] + st.tr[bs]) + temp * temp
        termc = self.term(nij, trc)
        d = termc - (st.term[a] + st.term[bs])
        return d, trc, None, termc

    def singleton_costs(self, Z: np.ndarray, rows: np.ndarray) -> np.ndarray:
        temp = _RTHALF * Z[rows, 0][:, None] - _RTHALF * Z[None, :, 0]
        trc = temp * temp
        return self.term(2.0, trc) - (self.single + self.single)


# --------------------------------------------------------------------------------------
# the agglomeration
# --------------------------------------------------------------------------------------


class _Engine:
    """Slot bookkeeping and the cost matrix with per-column minima (mclust's scan order)."""

    def __init__(self, D: np.ndarray):
        self.D = D
        k = D.shape[0]
        self.L = k
        self.colmin = np.full(k, np.inf)
        self.colarg = np.zeros(k, dtype=np.int64)
        self._recompute(np.arange(1, k))

    def _recompute(self, cols: np.ndarray) -> None:
        L = self.L
        for start in range(0, cols.shape[0], 256):
            c = cols[start : start + 256]
            block = self.D[c, :L].copy()
            block[np.arange(L)[None, :] >= c[:, None]] = np.inf
            rev = L - 1 - np.argmin(block[:, ::-1], axis=1)  # last minimum
            self.colarg[c] = rev
            self.colmin[c] = block[np.arange(c.shape[0]), rev]

    def best(self) -> tuple[int, int, float]:
        j = _last_min(self.colmin[1 : self.L]) + 1
        return int(self.colarg[j]), j, float(self.colmin[j])

    def apply(self, i: int, j: int, new_row: np.ndarray) -> None:
        """Merge slots ``i < j``; slot ``L-1`` moves into ``j``.

        ``new_row`` (length ``L-1``, in the new slot numbering) holds the costs of the merged
        cluster, which stays in slot ``i``.
        """
        D = self.D
        last = self.L - 1
        if j != last:
            D[j, :last] = D[last, :last]
            D[:last, j] = D[:last, last]
            D[j, j] = np.inf
        self.L = L = last
        D[i, :L] = new_row
        D[:L, i] = new_row
        D[i, i] = np.inf
        cols = np.arange(L)
        colmin = self.colmin[:L]
        colarg = self.colarg[:L]
        full = (colarg == i) | (colarg == j) | (cols == i) | (cols == j)
        full[0] = False
        for r in (i, j):
            if r >= L:
                continue
            cand = (cols > r) & ~full
            val = D[r, :L]
            better = cand & ((val < colmin) | ((val == colmin) & (r > colarg)))
            colmin[better] = val[better]
            colarg[better] = r
        self._recompute(np.flatnonzero(full))


def _initial_matrix(model, st: _Stats, Z: np.ndarray, k: int, singletons: bool) -> np.ndarray:
    D = np.empty((k, k))
    if singletons and isinstance(model, (_VVV, _V)):
        for start in range(0, k, 512):
            rows = np.arange(start, min(k, start + 512))
            D[rows] = model.singleton_costs(Z, rows)
    else:
        for a in range(k):
            D[a] = model.pair(st, a, np.arange(k))[0]
        D = np.minimum(D, D.T)  # exact symmetry (the two orders round alike up to ulps)
    np.fill_diagonal(D, np.inf)
    return D


def _ward_initial(st: _Stats, k: int) -> np.ndarray:
    D = np.empty((k, k))
    for start in range(0, k, 512):
        rows = np.arange(start, min(k, start + 512))
        ni = st.n[rows][:, None]
        nj = st.n[None, :]
        nij = ni + nj
        si = np.sqrt(ni / nij)
        sj = np.sqrt(nj / nij)
        acc = np.zeros((rows.shape[0], k))
        for col in range(st.xs.shape[1]):
            v = sj * st.xs[rows, col][:, None] - si * st.xs[None, :, col]
            acc += v * v
        D[rows] = acc
    D = np.minimum(D, D.T)
    np.fill_diagonal(D, np.inf)
    return D


def _agglomerate(Z: np.ndarray, groups: np.ndarray, model_name: str, quirks: bool = True):
    n_rows = Z.shape[0]
    k = int(groups.max()) + 1
    singletons = k == n_rows
    ward = model_name in ("EII", "E")
    model = None
    st = _Stats(Z, groups, k, model_name)
    if ward:
        D = _ward_initial(st, k)
    else:
        model = _VVV(Z, quirks=quirks) if model_name == "VVV" else _V(Z, quirks=quirks)
        model.init_terms(st)
        D = _initial_matrix(model, st, Z, k, singletons)
    eng = _Engine(D)
    label = np.arange(k)
    merges = np.empty((k - 1, 2), dtype=np.int64)
    crit = np.empty(k - 1)
    for step in range(k - 1):
        i, j, dopt = eng.best()
        a, b = label[i], label[j]
        merges[step] = (min(a, b), max(a, b))
        crit[step] = dopt
        last = eng.L - 1
        if last == 1:
            break
        if ward:
            # Lance-Williams, in mclust's order of operations
            keep = np.ones(last + 1, dtype=bool)
            keep[[i, j]] = False
            others = np.flatnonzero(keep)
            rj = st.n[others]
            si, sj = st.n[i], st.n[j]
            dij = (rj + si) * eng.D[others, i] + (rj + sj) * eng.D[others, j]
            dij = (dij - rj * dopt) / (rj + (si + sj))
        elif model_name == "VVV":
            trc, termc, W_mem, W_stored, r0 = model.merge(st, i, j, dopt)
        else:
            trc, termc = model.pair(st, i, np.array([j]))[1:4:2]
            trc, termc = trc[0], termc[0]
        ni, nj = st.n[i], st.n[j]
        nij = ni + nj
        xs_new = np.sqrt(ni / nij) * st.xs[i] + np.sqrt(nj / nij) * st.xs[j]
        label[i] = min(a, b)
        if j != last:
            st.move(last, j)
            label[j] = label[last]
        st.n[i] = nij
        st.xs[i] = xs_new
        if ward:
            new_row = np.empty(last)
            pos = np.where(others == last, j, others)
            new_row[pos] = dij
            new_row[i] = np.inf
        else:
            st.tr[i] = trc
            st.term[i] = termc
            if model_name == "VVV":
                st.W[i] = W_stored
                st.r0[i] = r0
                st.W_mem = W_mem
                st.r0_mem = r0
                st.mem_slot = i
            bs = np.flatnonzero(np.arange(last) != i)
            new_row = np.empty(last)
            new_row[bs] = model.pair(st, i, bs)[0]
            new_row[i] = np.inf
        eng.apply(i, j, new_row)
    return merges, crit


def hc(
    X, model: str = "VVV", use: str = "SVD", partition=None, *, mclust_quirks: bool = True
) -> HCTree:
    """Model-based agglomerative hierarchical clustering (mclust's ``hc``).

    Parameters
    ----------
    X : array-like, shape (n_samples, n_features) or (n_samples,)
        Finite real data, at least 2 rows.
    model : {"VVV", "EII", "V", "E"}
        The merge criterion (see the module docstring); ``"V"`` and ``"E"`` need
        one-dimensional data after the transformation.
    use : {"SVD", "VARS", "STD"}
        The transformation of ``X`` the clustering runs on. ``"SVD"`` is mclust's default EM
        start (``mclust.options("hcUse")``); note that R's ``hc()`` itself defaults to
        ``"VARS"``.
    partition : array-like of shape (n_samples,), optional
        Initial groups (any labels); ``None`` starts from singletons. Like R's ``hc()`` (whose
        ``dupPartition`` default is not passed on), duplicated rows start apart.
    mclust_quirks : bool, default True
        Reproduce two mclust 6 behaviours that depart from the published criteria (see the
        module docstring): the repeated-first-row copy of a VVV cluster's stored scatter
        factor, and ``alpha = eps`` in ``"V"``. ``False`` uses the textbook criteria (exact
        scatter matrices; ``"V"`` with ``alpha`` = the ML variance); the partitions then may
        differ from mclust's.

    Returns
    -------
    HCTree
    """
    if not isinstance(model, str) or model.upper() not in _MODELS:
        raise ValueError(f"model must be one of {', '.join(_MODELS)}; got {model!r}")
    if not isinstance(use, str) or use.upper() not in _USES:
        raise ValueError(f"use must be one of {', '.join(_USES)}; got {use!r}")
    model, use = model.upper(), use.upper()
    X = _check_X(X)
    groups = _check_partition(partition, X.shape[0])
    Z = _transform(X, use)
    if model in ("V", "E") and Z.shape[1] != 1:
        raise ValueError(f"model={model!r} needs one-dimensional X, got {Z.shape[1]} columns")
    merges, crit = _agglomerate(Z, groups, model, quirks=bool(mclust_quirks))
    for arr in (merges, crit, groups):
        arr.setflags(write=False)
    return HCTree(
        merges=merges,
        criterion=crit,
        initial_partition=groups,
        n_samples=int(Z.shape[0]),
        n_features=int(Z.shape[1]),
        model=model,
        use=use,
    )


def hclass(tree: HCTree, n_clusters: int | Sequence[int]) -> np.ndarray:
    """Cut an :class:`HCTree` into ``n_clusters`` clusters (mclust's ``hclass``).

    Parameters
    ----------
    tree : HCTree
        Output of :func:`hc`.
    n_clusters : int or sequence of int
        Number(s) of clusters ``G``, each in ``1..tree.n_groups``.

    Returns
    -------
    ndarray of int
        Shape (n_samples,) for one ``G``, (n_samples, len(n_clusters)) for a sequence (columns
        in the order given). Labels ``0..G-1`` by order of first appearance in the rows, which
        is mclust's numbering minus one.
    """
    if not isinstance(tree, HCTree):
        raise ValueError(f"tree must be an HCTree from hc(), got {type(tree).__name__}")
    scalar = np.ndim(n_clusters) == 0
    gs = np.atleast_1d(np.asarray(n_clusters))
    if gs.size == 0:
        raise ValueError("n_clusters must not be empty")
    if gs.dtype.kind not in "iu" and not (
        gs.dtype.kind == "f" and np.all(np.isfinite(gs)) and np.all(gs == np.round(gs))
    ):
        raise ValueError(f"n_clusters must be integers, got {n_clusters!r}")
    gs = gs.astype(np.int64)
    k = tree.n_groups
    bad = (gs < 1) | (gs > k)
    if np.any(bad):
        raise ValueError(f"n_clusters must be between 1 and {k}, got {int(gs[bad][0])}")
    # parent-pointer cut: apply the first k - G merges
    parent = np.arange(k)
    out = np.empty((tree.initial_partition.shape[0], gs.shape[0]), dtype=np.int64)
    order = np.argsort(-gs, kind="stable")  # largest G first: fewest merges
    done = 0
    for col in order:
        need = k - int(gs[col])
        for a, b in tree.merges[done:need]:
            parent[b] = a
        done = max(done, need)
        root = parent.copy()
        while True:  # path compression to the cluster names
            nxt = root[root]
            if np.array_equal(nxt, root):
                break
            root = nxt
        lab = root[tree.initial_partition]
        _, first, inverse = np.unique(lab, return_index=True, return_inverse=True)
        rank = np.empty(first.shape[0], dtype=np.int64)
        rank[np.argsort(first, kind="stable")] = np.arange(first.shape[0])
        out[:, col] = rank[inverse.reshape(-1)]
    return out[:, 0] if scalar else out
