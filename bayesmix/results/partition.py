"""Label-free partition summaries: allocation draws, K+, co-clustering, point partition.

A mixture fitted with the label summed out has no allocations in its draws. For every draw
theta^(s), :func:`draw_allocations` draws ``z_n ~ p(z_n = k | x_n, theta^(s))`` (what Pyro's
``infer_discrete`` does for a model with ``z`` enumerated out). Everything else here is a
function of these allocation draws that does not change when the labels are permuted:

- :func:`n_filled` and :func:`kplus_posterior`: the number of occupied labels K+ per draw and
  its posterior ``p(K+ = k | y)`` (Malsiner-Walli, Fruehwirth-Schnatter & Gruen 2016);
- :func:`coclustering`: the posterior similarity matrix ``P_ij = P(z_i = z_j | y)``;
- :func:`point_partition`: the partition that minimises the posterior expected Binder loss or
  the variation of information (Wade & Ghahramani 2018; Dahl, Johnson & Mueller 2022), and
  :func:`expected_loss` of any given partition.

Functions that take ``result_or_allocations`` accept a result (``xarray.DataTree``; the
allocations are then drawn with ``group``, ``max_draws`` and ``random_seed``), the
``xarray.DataArray`` of :func:`draw_allocations`, or an integer array whose last axis is the
observation (one row per draw). Labels may be any integers: only equality matters.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from bayesmix._validation import DataError, ParameterError, check_choice

__all__ = [
    "LOSSES",
    "coclustering",
    "draw_allocations",
    "expected_loss",
    "kplus_posterior",
    "n_filled",
    "point_partition",
    "summarize_partition",
    "MAX_PARTITION_OBS",
]

#: The losses of :func:`point_partition` and :func:`expected_loss`.
LOSSES = ("vi", "binder")
#: Largest N for which the CLI and the report summarise the partition (P is N x N floats).
MAX_PARTITION_OBS = 2000
# draws x observations x components per block of responsibilities (~8 MB per temporary)
_BLOCK_ELEMENTS = 1_000_000
# observations x (draws x filled labels) per block of the one-hot matrix (float32, 16 MB)
_ONEHOT_ELEMENTS = 4_000_000


# ----------------------------------------------------------------------------------------
# allocation draws
# ----------------------------------------------------------------------------------------


def draw_allocations(
    result: xr.DataTree,
    *,
    group: str = "posterior",
    max_draws: int | None = None,
    random_seed: int | None = None,
) -> xr.DataArray:
    """Allocation draws ``z_n ~ p(z_n = k | x_n, theta)``, one partition per posterior draw.

    For each draw theta of ``group`` and each observation, the label is drawn from the
    membership probabilities of that draw (:func:`bayesmix._math.log_responsibilities`),
    so ``(theta, z)`` is a draw of the joint posterior of a model whose labels were summed
    out. The draws are processed in blocks: never more than about 1e6 draws x N x K values
    at once.

    Parameters
    ----------
    result : xarray.DataTree
        A result with ``group`` (draws) and ``observed_data``.
    group : str
        A group of draws: dims (chain, draw) (``"posterior"``, ``"advi"``, ``"prior"``) or a
        single ``sample`` dim.
    max_draws : int, optional
        At most this many draws in all, evenly spaced: ``max_draws // chains`` per chain (at
        least one). Default: every draw.
    random_seed : int, optional
        Seed of the labels; the same seed gives the same allocations.

    Returns
    -------
    xarray.DataArray
        Integer labels 0..K-1 named ``z``, dims (chain, draw, obs_id) (or (sample, obs_id)),
        attrs ``group``, ``n_components`` (K) and ``random_seed``.
    """
    from bayesmix import _math
    from bayesmix.inference._tree import (
        check_int,
        group_arrays,
        model_spec_of,
        obs_id_coord,
        observed_X,
        resolve_seed,
    )

    if not isinstance(result, xr.DataTree):
        raise ParameterError(
            f"result must be an xarray.DataTree from bayesmix.inference, got "
            f"{type(result).__name__}; fit a model with sample_nuts or run first"
        )
    if group not in result.children:
        raise ParameterError(
            f"result has no group {group!r}: expected one of {sorted(result.children)}; "
            "pass group=... or sample the posterior first"
        )
    ds = result[group].to_dataset()
    if "chain" in ds.dims and "draw" in ds.dims:
        sample_dims: tuple[str, ...] = ("chain", "draw")
    elif "sample" in ds.dims:
        sample_dims = ("sample",)
    else:
        raise ParameterError(
            f"group {group!r} holds a point estimate, not draws: expected dims (chain, draw) "
            f"or (sample,), got {tuple(ds.dims)}; pass group='posterior' (or 'advi')"
        )
    for dim in sample_dims:  # positions as coords, so thinned draws keep their numbers
        if dim not in ds.coords:
            ds = ds.assign_coords({dim: np.arange(ds.sizes[dim])})
    if max_draws is not None:
        max_draws = check_int(max_draws, "max_draws", 1)
        if sample_dims == ("chain", "draw"):
            nd = ds.sizes["draw"]
            per_chain = min(nd, max(1, max_draws // ds.sizes["chain"]))
            keep = np.unique(np.linspace(0, nd - 1, per_chain).round().astype(int))
            ds = ds.isel(draw=keep)
        else:
            ns = ds.sizes["sample"]
            keep = np.unique(np.linspace(0, ns - 1, min(ns, max_draws)).round().astype(int))
            ds = ds.isel(sample=keep)
    seed = resolve_seed(random_seed)
    rng = np.random.default_rng(seed)
    spec = model_spec_of(result)
    X = observed_X(result)
    flat = ds.stack(sample=sample_dims) if len(sample_dims) == 2 else ds
    params = group_arrays(flat, sample_dims=("sample",))
    n_draws, k = params["w"].shape
    n = X.shape[0]
    z = np.empty((n_draws, n), dtype=np.int32)
    step = max(1, _BLOCK_ELEMENTS // (n * k))
    for start in range(0, n_draws, step):
        blk = {name: v[start : start + step] for name, v in params.items()}
        resp = np.exp(_math.log_responsibilities(X, blk, spec.family))  # (b, N, K)
        cdf = np.cumsum(resp, axis=-1)
        u = rng.random(cdf.shape[:-1]) * cdf[..., -1]  # rows sum to 1 up to rounding
        z[start : start + step] = np.minimum((cdf < u[..., None]).sum(axis=-1), k - 1)
    shape = tuple(ds.sizes[d] for d in sample_dims)
    coords: dict[str, Any] = {d: ds[d].values for d in sample_dims}
    coords["obs_id"] = obs_id_coord(result, n)
    return xr.DataArray(
        z.reshape(*shape, n),
        dims=(*sample_dims, "obs_id"),
        coords=coords,
        name="z",
        attrs={"group": group, "n_components": int(k), "random_seed": seed},
    )


def _as_allocations(
    obj: Any, group: str, max_draws: int | None, random_seed: int | None
) -> xr.DataArray:
    """The allocation draws of a result, a DataArray or an integer array (last axis obs)."""
    if isinstance(obj, xr.DataTree):
        return draw_allocations(obj, group=group, max_draws=max_draws, random_seed=random_seed)
    if isinstance(obj, xr.DataArray):
        if "obs_id" not in obj.dims:
            raise DataError(
                f"allocations must have an obs_id dim: expected dims (..., obs_id), got "
                f"{obj.dims}; pass the output of draw_allocations"
            )
        da = obj.transpose(..., "obs_id")
    else:
        arr = np.asarray(obj)
        if arr.ndim == 0:
            raise DataError(
                "allocations must be an array of labels: expected shape (draws, N), got a "
                "scalar; pass one row of labels per draw"
            )
        if arr.ndim > 3:
            raise DataError(
                f"allocations have too many axes: expected (draws, N) or (chain, draw, N), "
                f"got shape {arr.shape}; reshape to one row of labels per draw"
            )
        dims = ("chain", "draw", "obs_id") if arr.ndim == 3 else ("sample", "obs_id")
        da = xr.DataArray(np.atleast_2d(arr), dims=dims)
    values = da.values
    if values.size == 0:
        raise DataError(
            f"allocations are empty: expected at least one draw of N >= 1 labels, got shape "
            f"{values.shape}; pass the output of draw_allocations"
        )
    if not np.issubdtype(values.dtype, np.integer):
        if not (np.issubdtype(values.dtype, np.floating) and np.all(values == np.round(values))):
            raise DataError(
                f"allocations must be integer labels: expected an integer array, got dtype "
                f"{values.dtype}; pass the output of draw_allocations"
            )
        da = da.copy(data=values.astype(np.int64))
    return da


def _flat_labels(da: xr.DataArray) -> np.ndarray:
    """(S, N) labels in 0..L-1, L = O(N) (the same integer is the same label across draws)."""
    values = da.values.reshape(-1, da.sizes["obs_id"])
    if values.min() >= 0 and values.max() < 4 * values.shape[1] + 64:
        return values.astype(np.int64)  # already small labels (unused ones cost nothing)
    _, inv = np.unique(values, return_inverse=True)
    return inv.reshape(values.shape).astype(np.int64)


def _occupied(z: np.ndarray) -> np.ndarray:
    """(S, L) True where label l is used in draw s."""
    s, _ = z.shape
    occ = np.zeros((s, int(z.max()) + 1), dtype=bool)
    occ[np.arange(s)[:, None], z] = True
    return occ


def _obs_coord(da: xr.DataArray) -> np.ndarray:
    if "obs_id" in da.coords:
        return da.coords["obs_id"].values
    return np.arange(da.sizes["obs_id"])


# ----------------------------------------------------------------------------------------
# K+: the number of filled components
# ----------------------------------------------------------------------------------------


def n_filled(
    result_or_allocations: Any,
    *,
    group: str = "posterior",
    max_draws: int | None = None,
    random_seed: int | None = None,
) -> xr.DataArray:
    """The number of occupied labels K+ of every allocation draw.

    Parameters
    ----------
    result_or_allocations : xarray.DataTree, xarray.DataArray or array of int
        A result (its allocations are drawn with :func:`draw_allocations` and the three
        keywords below) or allocation draws (..., obs_id).
    group, max_draws, random_seed
        As in :func:`draw_allocations` (used with a result only).

    Returns
    -------
    xarray.DataArray
        ``n_filled`` with the sample dims of the allocations (chain, draw) or (sample,).
    """
    da = _as_allocations(result_or_allocations, group, max_draws, random_seed)
    counts = _occupied(_flat_labels(da)).sum(axis=1)
    sample_dims = [d for d in da.dims if d != "obs_id"]
    coords = {d: da.coords[d].values for d in sample_dims if d in da.coords}
    return xr.DataArray(
        counts.reshape([da.sizes[d] for d in sample_dims]),
        dims=sample_dims,
        coords=coords,
        name="n_filled",
        attrs={k: v for k, v in da.attrs.items() if k in ("group", "n_components")},
    )


def kplus_posterior(
    result_or_allocations: Any,
    *,
    n_components: int | None = None,
    group: str = "posterior",
    max_draws: int | None = None,
    random_seed: int | None = None,
) -> pd.Series:
    """Posterior of the number of filled components, ``p(K+ = k | y)`` for k = 1..K.

    The share of allocation draws with k occupied labels.

    Parameters
    ----------
    result_or_allocations : xarray.DataTree, xarray.DataArray or array of int
        As in :func:`n_filled`.
    n_components : int, optional
        K, the largest k listed. Default: the allocations' ``n_components`` attr (the model's
        K), else the largest K+ seen.
    group, max_draws, random_seed
        As in :func:`draw_allocations` (used with a result only).

    Returns
    -------
    pandas.Series
        Named ``p_kplus``, index ``k_plus`` = 1..K, values summing to 1. ``attrs``:
        ``mode`` (the k of largest probability, the smallest such k on ties) and
        ``n_draws``. (``Series.attrs`` do not survive every pandas operation: read them
        first.)
    """
    da = _as_allocations(result_or_allocations, group, max_draws, random_seed)
    counts = _occupied(_flat_labels(da)).sum(axis=1)
    k_max = n_components if n_components is not None else da.attrs.get("n_components")
    k_max = int(max(counts.max(), k_max or 0))
    freq = np.bincount(counts, minlength=k_max + 1)[1:] / counts.size
    out = pd.Series(freq, index=pd.Index(np.arange(1, k_max + 1), name="k_plus"), name="p_kplus")
    out.attrs["mode"] = int(np.argmax(freq) + 1)
    out.attrs["n_draws"] = int(counts.size)
    return out


# ----------------------------------------------------------------------------------------
# co-clustering matrix
# ----------------------------------------------------------------------------------------


def _similarity(z: np.ndarray) -> np.ndarray:
    """P_ij = share of rows of z (S, N) with z_i = z_j, by blocks of a one-hot matrix.

    Each draw's occupied labels become columns of an (N, sum_s K+_s) one-hot matrix M
    (never N x N x S); P = M M^T / S, a block of draws at a time. The float32 sums of 0/1
    are exact integers, so P is exactly symmetric with ones on the diagonal.
    """
    s, n = z.shape
    occ = _occupied(z)
    rank = np.cumsum(occ, axis=1) - 1  # column of label l among the filled labels of draw s
    width = occ.sum(axis=1)
    offset = np.concatenate([[0], np.cumsum(width)])
    col = offset[:-1, None] + np.take_along_axis(rank, z, axis=1)  # (S, N)
    total = np.zeros((n, n))
    start = 0
    while start < s:
        stop = start + 1
        while stop < s and (offset[stop + 1] - offset[start]) * n <= _ONEHOT_ELEMENTS:
            stop += 1
        m = np.zeros((n, offset[stop] - offset[start]), dtype=np.float32)
        rows = np.broadcast_to(np.arange(n), (stop - start, n))
        m[rows, col[start:stop] - offset[start]] = 1.0
        total += m @ m.T
        start = stop
    return total / s


def coclustering(
    result_or_allocations: Any,
    *,
    group: str = "posterior",
    max_draws: int | None = None,
    random_seed: int | None = None,
) -> xr.DataArray:
    """The posterior co-clustering (similarity) matrix ``P_ij = P(z_i = z_j | y)``.

    The share of allocation draws that put observations i and j in the same component; it
    does not depend on the labels' names, so label switching leaves it unchanged.

    Parameters
    ----------
    result_or_allocations : xarray.DataTree, xarray.DataArray or array of int
        As in :func:`n_filled`.
    group, max_draws, random_seed
        As in :func:`draw_allocations` (used with a result only).

    Returns
    -------
    xarray.DataArray
        ``coclustering``, dims (obs_id, obs_id_bis), symmetric, ones on the diagonal;
        attrs ``n_draws``.
    """
    da = _as_allocations(result_or_allocations, group, max_draws, random_seed)
    z = _flat_labels(da)
    ids = _obs_coord(da)
    return xr.DataArray(
        _similarity(z),
        dims=("obs_id", "obs_id_bis"),
        coords={"obs_id": ids, "obs_id_bis": ids},
        name="coclustering",
        attrs={"n_draws": int(z.shape[0])},
    )


# ----------------------------------------------------------------------------------------
# expected losses and the point partition
# ----------------------------------------------------------------------------------------


def _as_similarity(obj: Any, group: str, max_draws: int | None, random_seed: int | None):
    """(P (N, N), obs_id labels, allocations (S, N) or None) of any input.

    A DataArray with dims (obs_id, obs_id_bis) or a float ndarray is the matrix itself; an
    integer array or other DataArray holds allocations; a DataTree is a result.
    """
    if isinstance(obj, xr.DataArray) and "obs_id_bis" in obj.dims:
        p = np.asarray(obj.transpose("obs_id", "obs_id_bis").values, dtype=float)
        return _check_similarity(p), _obs_coord(obj), None
    if isinstance(obj, np.ndarray) and np.issubdtype(obj.dtype, np.floating):
        return _check_similarity(obj.astype(float)), np.arange(obj.shape[0]), None
    da = _as_allocations(obj, group, max_draws, random_seed)
    z = _flat_labels(da)
    return _similarity(z), _obs_coord(da), z


def _check_similarity(p: np.ndarray) -> np.ndarray:
    if p.ndim != 2 or p.shape[0] != p.shape[1]:
        raise DataError(
            f"the co-clustering matrix must be square: expected (N, N), got {p.shape}; pass "
            "the output of coclustering"
        )
    if not np.all(np.isfinite(p)) or p.min() < 0 or p.max() > 1:
        raise DataError(
            "the co-clustering matrix must hold probabilities: expected values in [0, 1], got "
            f"values in [{np.nanmin(p):.3g}, {np.nanmax(p):.3g}]; pass the output of "
            "coclustering"
        )
    if not np.allclose(p, p.T, atol=1e-10) or not np.allclose(np.diag(p), 1.0):
        raise DataError(
            "the co-clustering matrix must be symmetric with ones on the diagonal: expected "
            "P[i, j] = P[j, i] and P[i, i] = 1; pass the output of coclustering"
        )
    return p


def _check_labels(labels: Any, n: int) -> np.ndarray:
    lab = np.asarray(labels.values if isinstance(labels, xr.DataArray) else labels)
    if lab.ndim == 1:
        lab = lab[None]
    if lab.ndim != 2 or lab.shape[1] != n:
        raise DataError(
            f"labels must give one cluster per observation: expected shape ({n},), got "
            f"{np.shape(labels)}; pass one label per observation of the matrix"
        )
    if not np.issubdtype(lab.dtype, np.integer) and not np.all(lab == np.round(lab)):
        raise DataError(
            f"labels must be integers: expected an integer array, got dtype {lab.dtype}; "
            "pass cluster numbers"
        )
    return np.unique(lab, return_inverse=True)[1].reshape(lab.shape)


def _losses(labels: np.ndarray, p: np.ndarray, loss: str, dtype: Any = np.float64) -> np.ndarray:
    """Expected losses (C,) of C partitions (C, N) with labels 0..m_c-1, by blocks of P A.

    Binder (equal costs): ``sum_{i<j} |1[c_i = c_j] - P_ij|``
    ``= T + sum_k [n_k (n_k - 1) / 2 - (S_k - n_k)]`` with ``T = sum_{i<j} P_ij`` and
    ``S_k = sum_{i, j in k} P_ij``. VI lower bound (Wade & Ghahramani 2018, eq. 10, as
    ``mcclust.ext::VI.lb``): ``(1/N) sum_n [log2 |C(n)| + log2 sum_m P_nm
    - 2 log2 sum_{m in C(n)} P_nm]``.
    """
    c, n = labels.shape
    widths = labels.max(axis=1) + 1
    offset = np.concatenate([[0], np.cumsum(widths)])
    cols = offset[:-1, None] + labels  # (C, N) column of each point's cluster
    out = np.empty(c)
    t = (p.sum() - np.trace(p)) / 2.0
    log_rows = np.log2(p.sum(axis=1))
    pc = p.astype(dtype, copy=False)
    start = 0
    while start < c:
        stop = start + 1
        while stop < c and (offset[stop + 1] - offset[start]) * n <= _ONEHOT_ELEMENTS:
            stop += 1
        a = np.zeros((n, offset[stop] - offset[start]), dtype=dtype)
        rows = np.broadcast_to(np.arange(n), (stop - start, n))
        a[rows, cols[start:stop] - offset[start]] = 1.0
        pa = (pc @ a).astype(float)  # (N, columns): sum of P over each cluster's members
        for j in range(start, stop):
            own = pa[np.arange(n), cols[j] - offset[start]]  # sum_{m in C(n)} P_nm
            sizes = np.bincount(labels[j], minlength=widths[j]).astype(float)
            if loss == "binder":
                s_k = np.bincount(labels[j], weights=own, minlength=widths[j])
                out[j] = t + np.sum(sizes * (sizes - 1) / 2 - (s_k - sizes))
            else:
                out[j] = np.mean(np.log2(sizes[labels[j]]) + log_rows - 2 * np.log2(own))
        start = stop
    return out


def expected_loss(
    labels: Any,
    result_or_matrix: Any,
    *,
    loss: str = "vi",
    group: str = "posterior",
    max_draws: int | None = None,
    random_seed: int | None = None,
) -> float:
    """The posterior expected loss of a partition (the quantity :func:`point_partition` minimises).

    - ``"binder"``: Binder's loss with equal costs, ``sum_{i<j} |1[c_i = c_j] - P_ij|`` (the
      expected number of pairs the partition gets wrong; not divided by anything);
    - ``"vi"``: the lower bound of the expected variation of information (base-2 logs) of
      Wade & Ghahramani (2018), ``(1/N) sum_n [log2 |C(n)| + log2 sum_m P_nm
      - 2 log2 sum_{m in C(n)} P_nm]``, where ``C(n)`` is the cluster of n; the criterion of
      ``mcclust.ext::minVI``.

    Parameters
    ----------
    labels : array-like of shape (N,)
        Cluster of each observation (any integers).
    result_or_matrix : xarray.DataTree, xarray.DataArray or ndarray
        The co-clustering matrix (N, N) (:func:`coclustering`), or anything
        :func:`coclustering` takes (a result, allocation draws).
    loss : {"vi", "binder"}
    group, max_draws, random_seed
        As in :func:`draw_allocations` (used with a result only).

    Returns
    -------
    float
    """
    check_choice(loss, "loss", LOSSES)
    p, _, _ = _as_similarity(result_or_matrix, group, max_draws, random_seed)
    return float(_losses(_check_labels(labels, p.shape[0]), p, loss)[0])


def _xlog2x(v: np.ndarray) -> np.ndarray:
    return v * np.log2(np.where(v > 0, v, 1.0))


class _Search:
    """Greedy moves of one observation at a time under Binder's loss or the VI lower bound.

    ``bt[k, n] = sum_{m in cluster k} P_nm`` (over allocated points) is kept up to date, so the
    change of the loss when one point joins each cluster costs O(N) for all clusters at once.
    Unallocated points have label -1 (sequential allocation starts with all of them).
    """

    def __init__(self, p: np.ndarray, loss: str, rng: np.random.Generator):
        self.p = p
        self.n = p.shape[0]
        self.loss = loss
        self.rng = rng
        self.diag = np.diag(p).copy()
        self.xlog2x = _xlog2x(np.arange(self.n + 2, dtype=float))  # n log2 n by cluster size

    def start(self, labels: np.ndarray) -> None:
        self.labels = labels.astype(np.int64).copy()
        cap = max(8, int(self.labels.max()) + 2)
        alloc = self.labels >= 0
        self.counts = np.bincount(self.labels[alloc], minlength=cap)
        a = np.zeros((cap, self.n))
        a[self.labels[alloc], np.flatnonzero(alloc)] = 1.0
        self.bt = a @ self.p  # (clusters, N): rows are contiguous, P is symmetric

    def _add(self, i: int, k: int) -> None:
        if k < 0:  # a new cluster: the first empty slot, growing the arrays when none is left
            empty = np.flatnonzero(self.counts == 0)
            if empty.size == 0:
                cap = self.counts.size
                self.counts = np.concatenate([self.counts, np.zeros(cap, dtype=np.int64)])
                self.bt = np.concatenate([self.bt, np.zeros((cap, self.n))])
                k = cap
            else:
                k = int(empty[0])
        self.bt[k] += self.p[i]
        self.counts[k] += 1
        self.labels[i] = k

    def _remove(self, i: int) -> int:
        a = int(self.labels[i])
        self.bt[a] -= self.p[i]
        self.counts[a] -= 1
        self.labels[i] = -1
        return a

    def _costs(self, i: int) -> tuple[np.ndarray, float]:
        """Loss changes when unallocated point i joins each cluster, or a new one.

        Returns the changes per cluster slot (inf for an empty slot) and for a new cluster.
        """
        if self.loss == "binder":
            # pairs (i, j), j in k, go from "apart" (cost P_ij) to "together" (1 - P_ij)
            cost = self.counts - 2.0 * self.bt[:, i]
            new = 0.0
        else:
            # N * VI_lb = sum_k [n_k log2 n_k - 2 sum_{n in k} log2 bt[k, n]] + constant
            alloc = np.flatnonzero(self.labels >= 0)
            lab = self.labels[alloc]
            bn = self.bt[lab, alloc]
            gain = np.bincount(lab, np.log1p(self.p[alloc, i] / bn), minlength=self.counts.size)
            own = np.log1p(self.bt[:, i] / self.diag[i]) + np.log(self.diag[i])
            size_term = self.xlog2x[self.counts + 1] - self.xlog2x[self.counts]
            cost = size_term - 2.0 * (gain + own) / np.log(2.0)
            new = -2.0 * float(np.log2(self.diag[i]))
        return np.where(self.counts > 0, cost, np.inf), new

    def _place(self, i: int, stay: int | None) -> bool:
        cost, new = self._costs(i)
        best = int(np.argmin(cost)) if cost.size else -1
        best_cost = cost[best] if best >= 0 else np.inf
        target, target_cost = (best, best_cost) if best_cost <= new else (-1, new)
        if stay is not None:
            stay_cost = cost[stay] if self.counts[stay] > 0 else new
            if target_cost >= stay_cost - 1e-9 * max(1.0, abs(stay_cost)):
                self._add(i, stay if self.counts[stay] > 0 else -1)
                return False
        self._add(i, target)
        return True

    def allocate(self, order: np.ndarray) -> None:
        """Sequential allocation: each point in ``order`` joins its best cluster so far."""
        self.start(np.full(self.n, -1))
        for i in order:
            self._place(int(i), None)

    def sweeten(self, max_sweeps: int = 100) -> None:
        """Move single points while the loss drops (each sweep in a random order)."""
        for _ in range(max_sweeps):
            moved = False
            for i in self.rng.permutation(self.n):
                a = self._remove(int(i))
                moved |= self._place(int(i), a)
            if not moved:
                break

    def result(self) -> np.ndarray:
        return _canonical(self.labels[None])[0]


def _canonical(labels: np.ndarray) -> np.ndarray:
    """(C, N) labels in 0..L-1 renamed 0, 1, ... by first appearance in each row."""
    c, n = labels.shape
    if c == 0:
        return labels.astype(np.int64)
    rows = np.broadcast_to(np.arange(c)[:, None], labels.shape)
    first = np.full((c, int(labels.max()) + 1), n)
    np.minimum.at(first, (rows, labels), np.broadcast_to(np.arange(n), labels.shape))
    rank = np.argsort(np.argsort(first, axis=1, kind="stable"), axis=1, kind="stable")
    return np.take_along_axis(rank, labels, axis=1)


def _unique_rows(a: np.ndarray) -> np.ndarray:
    """The distinct rows of ``a``, in order of first appearance (hashing, no sort)."""
    seen: dict[bytes, int] = {}
    for r, row in enumerate(np.ascontiguousarray(a, dtype=np.int64)):
        seen.setdefault(row.tobytes(), r)
    return a[list(seen.values())]


def _by_size(labels: np.ndarray) -> np.ndarray:
    """Labels renamed so that 0 is the largest cluster (ties: first appearance first)."""
    lab = _canonical(labels[None])[0]
    sizes = np.bincount(lab)
    order = np.lexsort((np.arange(sizes.size), -sizes))
    rank = np.empty(sizes.size, dtype=np.int64)
    rank[order] = np.arange(sizes.size)
    return rank[lab]


def _hclust_candidates(p: np.ndarray, k_max: int) -> np.ndarray:
    """Average-linkage clusterings of the distance 1 - P, cut into 1..k_max clusters."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    n = p.shape[0]
    if n < 2:
        return np.zeros((1, n), dtype=np.int64)
    dist = np.clip(1.0 - p, 0.0, None)
    np.fill_diagonal(dist, 0.0)
    tree = linkage(squareform(dist, checks=False), method="average")
    cuts = [fcluster(tree, t=k, criterion="maxclust") - 1 for k in range(1, k_max + 1)]
    return _canonical(np.asarray(cuts))


def point_partition(
    result_or_allocations: Any,
    *,
    loss: str = "vi",
    n_runs: int = 8,
    n_refine: int = 3,
    max_clusters: int | None = None,
    group: str = "posterior",
    max_draws: int | None = None,
    random_seed: int | None = None,
) -> xr.DataArray:
    """The partition that minimises the posterior expected loss (Binder or VI).

    The loss is that of :func:`expected_loss`. The search (after ``mcclust.ext::minVI`` and
    SALSO, Dahl, Johnson & Mueller 2022) scores three kinds of candidates and keeps the best:

    1. every distinct sampled partition (with allocation draws), and the average-linkage
       hierarchical clusterings of ``1 - P`` cut into 1..``max_clusters`` clusters
       (``scipy.cluster.hierarchy``);
    2. the ``n_refine`` best of these, improved by greedy local search: one observation at a
       time moves to the other cluster (or a new one) that lowers the loss most, sweeps in
       random orders until no move helps;
    3. ``n_runs`` SALSO-style runs: sequential allocation in a random order (each point joins
       the cluster that is best for the points allocated so far), then the same local search.

    Parameters
    ----------
    result_or_allocations : xarray.DataTree, xarray.DataArray or ndarray
        A result, allocation draws (integers, (..., obs_id)) or the co-clustering matrix
        (:func:`coclustering`, or a float (N, N) array).
    loss : {"vi", "binder"}
    n_runs : int
        Sequential-allocation runs (0: none).
    n_refine : int
        Best candidates of step 1 refined by local search.
    max_clusters : int, optional
        Largest cut of the hierarchical clustering; default: the largest K+ of the draws plus
        2 (20 with a matrix), at most N.
    group, max_draws, random_seed
        As in :func:`draw_allocations` (with a result); ``random_seed`` also seeds the
        random orders of the search.

    Returns
    -------
    xarray.DataArray
        ``partition``, dim obs_id, labels 0..m-1 **ordered by cluster size** (0 is the
        largest cluster; ties: the cluster whose first observation comes first). Attrs:
        ``loss``, ``expected_loss`` (its value at the partition), ``n_clusters``,
        ``n_draws`` (0 for a matrix), ``n_candidates`` (partitions scored).
    """
    check_choice(loss, "loss", LOSSES)
    for name, value, low in (("n_runs", n_runs, 0), ("n_refine", n_refine, 0)):
        _check_count(value, name, low)
    if max_clusters is not None:
        _check_count(max_clusters, "max_clusters", 1)
    p, ids, z = _as_similarity(result_or_allocations, group, max_draws, random_seed)
    n = p.shape[0]
    rng = np.random.default_rng(random_seed)
    if max_clusters is None:
        max_clusters = int(_occupied(z).sum(axis=1).max()) + 2 if z is not None else 20
    pool = [_hclust_candidates(p, min(n, max_clusters))]
    if z is not None:
        pool.append(_canonical(z))
    cands = _unique_rows(np.concatenate(pool))
    scores = _losses(cands, p, loss, np.float32)  # screening; the finals are scored in float64
    search = _Search(p, loss, rng)
    finals = [cands[np.argmin(scores)]]
    for j in np.argsort(scores, kind="stable")[:n_refine]:
        search.start(cands[j])
        search.sweeten()
        finals.append(search.result())
    for _ in range(n_runs):
        search.allocate(rng.permutation(n))
        search.sweeten()
        finals.append(search.result())
    finals = _unique_rows(np.asarray(finals))
    final_scores = _losses(finals, p, loss)
    best = _by_size(finals[int(np.argmin(final_scores))])
    return xr.DataArray(
        best,
        dims=("obs_id",),
        coords={"obs_id": ids},
        name="partition",
        attrs={
            "loss": loss,
            "expected_loss": float(final_scores.min()),
            "n_clusters": int(best.max()) + 1,
            "n_draws": 0 if z is None else int(z.shape[0]),
            "n_candidates": int(cands.shape[0] + finals.shape[0]),
        },
    )


def _check_count(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ParameterError(
            f"{name} must be an integer >= {minimum}: expected e.g. {name}={max(minimum, 1)}, "
            f"got {value!r}; pass a larger integer"
        )
    return int(value)


# ----------------------------------------------------------------------------------------
# one summary for the CLI and the report
# ----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PartitionSummary:
    """The label-free summary of a posterior: its point partition and p(K+ | y).

    ``labels`` (obs_id) is :func:`point_partition`'s answer, ``p_kplus`` is
    :func:`kplus_posterior`'s; ``str()`` gives readable lines.
    """

    labels: xr.DataArray
    p_kplus: pd.Series
    loss: str
    expected_loss: float
    n_draws: int

    def lines(self) -> list[str]:
        """Two or three readable lines (the CLI prints them, the report lists them)."""
        sizes = np.bincount(np.asarray(self.labels.values))
        shown = ", ".join(str(int(s)) for s in sizes[:12]) + (", ..." if sizes.size > 12 else "")
        p = self.p_kplus[self.p_kplus >= 0.005]
        dist = ", ".join(f"{int(k)}: {v:.2f}" for k, v in p.items())
        loss = "variation of information" if self.loss == "vi" else "Binder's loss"
        return [
            f"point partition ({loss}, label-free): {sizes.size} cluster(s) of {shown} "
            f"observations (expected loss {self.expected_loss:.3g})",
            f"posterior of the number of filled components K+ ({self.n_draws} draws): {dist}; "
            f"mode {self.p_kplus.attrs['mode']}",
        ]

    def __str__(self) -> str:
        return "\n".join(self.lines())


def summarize_partition(
    result: xr.DataTree,
    *,
    loss: str = "vi",
    max_draws: int | None = 1000,
    random_seed: int = 0,
) -> PartitionSummary | None:
    """Point partition and p(K+ | y) of a result's posterior, from one set of allocations.

    None when the result has no ``posterior`` group or more than
    :data:`MAX_PARTITION_OBS` observations (the co-clustering matrix is N x N).

    Parameters
    ----------
    result : xarray.DataTree
    loss : {"vi", "binder"}
    max_draws : int, optional
        Posterior draws used (evenly spaced; None: all).
    random_seed : int
        Seed of the allocations and of the search (the same seed gives the same answer).

    Returns
    -------
    PartitionSummary or None
    """
    if "posterior" not in result.children:
        return None
    n_obs = int(result["observed_data"]["x"].sizes["obs_id"])
    if n_obs > MAX_PARTITION_OBS:
        return None
    z = draw_allocations(result, max_draws=max_draws, random_seed=random_seed)
    labels = point_partition(z, loss=loss, random_seed=random_seed)
    return PartitionSummary(
        labels=labels,
        p_kplus=kplus_posterior(z),
        loss=loss,
        expected_loss=float(labels.attrs["expected_loss"]),
        n_draws=int(np.prod([z.sizes[d] for d in z.dims if d != "obs_id"])),
    )
