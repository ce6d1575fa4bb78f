"""``plot_coclustering``: the posterior co-clustering matrix, ordered by a point partition."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from bayesmix._validation import DataError
from bayesmix.plotting._axes import _new_axes
from bayesmix.plotting._common import _observed

#: Observations up to which every row is labelled with its obs_id.
_MAX_TICK_LABELS = 40


def plot_coclustering(
    result_or_matrix: Any,
    partition: Any = None,
    ax=None,
    *,
    loss: str = "vi",
    max_draws: int | None = 1000,
    random_seed: int = 0,
) -> Figure:
    """Heatmap of ``P(z_i = z_j | y)``, observations grouped by the point partition.

    Rows and columns are the observations in the same order: cluster by cluster (clusters in
    label order; from :func:`bayesmix.results.point_partition` the largest first), and within
    a cluster by the value of the first feature (with a result), or by the mean similarity to
    the rest of the cluster, most typical first (with a matrix). Lines separate the clusters;
    a well-identified cluster is a dark square on the diagonal, observations the posterior
    cannot place show as pale rows, and an observation alone in its block is a cluster of one.

    Parameters
    ----------
    result_or_matrix : xarray.DataTree, xarray.DataArray or ndarray
        A result (its allocations are drawn with
        :func:`bayesmix.results.draw_allocations`), or a co-clustering matrix (N, N)
        (:func:`bayesmix.results.coclustering`).
    partition : array-like of shape (N,), optional
        Cluster labels; default: :func:`bayesmix.results.point_partition` with ``loss``. A
        point partition found already (the DataArray of ``point_partition``, or
        ``summarize_partition(result).labels``; its ``attrs["loss"]`` names it) saves the
        search.
    ax : matplotlib.axes.Axes, optional
    loss : {"vi", "binder"}
        Loss of the default point partition.
    max_draws : int, optional
        Posterior draws used with a result (evenly spaced; None: all).
    random_seed : int
        Seed of the allocations and of the partition search.

    Returns
    -------
    matplotlib.figure.Figure
        The image (``gid`` ``"coclustering"``) holds the ordered matrix.
    """
    from bayesmix.results.partition import (
        _check_labels,
        coclustering,
        draw_allocations,
        point_partition,
    )

    value = None
    feature = None
    if isinstance(result_or_matrix, xr.DataTree):
        z = draw_allocations(result_or_matrix, max_draws=max_draws, random_seed=random_seed)
        sim = coclustering(z)
        source: Any = z
        X, names = _observed(result_or_matrix)
        value, feature = X[:, 0], names[0]
    elif isinstance(result_or_matrix, xr.DataArray) and "obs_id_bis" in result_or_matrix.dims:
        sim = result_or_matrix.transpose("obs_id", "obs_id_bis")
        source = sim
    elif isinstance(result_or_matrix, np.ndarray) and result_or_matrix.ndim == 2:
        ids = np.arange(result_or_matrix.shape[0])
        sim = xr.DataArray(
            np.asarray(result_or_matrix, dtype=float),
            dims=("obs_id", "obs_id_bis"),
            coords={"obs_id": ids, "obs_id_bis": ids},
        )
        source = sim
    else:
        raise DataError(
            "plot_coclustering needs a result or a co-clustering matrix: expected an "
            f"xarray.DataTree or an (N, N) array, got {type(result_or_matrix).__name__}; pass "
            "a fitted result or bayesmix.results.coclustering(...)"
        )
    p = np.asarray(sim.values, dtype=float)
    n = p.shape[0]
    found = getattr(partition, "attrs", {}).get("loss")
    if partition is None:
        labels = point_partition(source, loss=loss, random_seed=random_seed).values
        what = f"{loss.upper() if loss == 'vi' else 'Binder'} point partition"
    elif found in ("vi", "binder"):
        # a point partition found already (point_partition, summarize_partition(...).labels)
        labels = _check_labels(partition, n)[0]
        what = f"{found.upper() if found == 'vi' else 'Binder'} point partition"
    else:
        labels = _check_labels(partition, n)[0]
        what = "given partition"
    order = coclustering_order(p, labels, value)
    fig, ax = _new_axes(ax, figsize=(7.2, 6.0))
    im = ax.imshow(
        p[np.ix_(order, order)],
        vmin=0.0,
        vmax=1.0,
        cmap="Blues",
        interpolation="nearest",
        gid="coclustering",
    )
    sizes = np.bincount(labels)
    for edge in np.cumsum(sizes[sizes > 0])[:-1]:
        ax.axhline(edge - 0.5, color="#D55E00", lw=0.9)
        ax.axvline(edge - 0.5, color="#D55E00", lw=0.9)
    fig.colorbar(im, ax=ax, label="P(z_i = z_j | data): probability of sharing a cluster")
    within = f"by {feature} within a cluster" if value is not None else "most typical first"
    ax.set_xlabel(f"observation, ordered by cluster ({within})")
    ax.set_ylabel("observation, ordered by cluster")
    if n <= _MAX_TICK_LABELS:
        ticks = np.arange(n)
        names = [str(v) for v in np.asarray(sim["obs_id"].values)[order]]
        ax.set_xticks(ticks, names, rotation=90, fontsize="x-small")
        ax.set_yticks(ticks, names, fontsize="x-small")
    m = int((sizes > 0).sum())
    ax.set_title(
        f"Posterior co-clustering (N = {n}); {m} cluster{'s' if m != 1 else ''} of the {what}"
    )
    return fig


def coclustering_order(p: np.ndarray, labels: np.ndarray, value: np.ndarray | None = None):
    """The order of the observations in :func:`plot_coclustering`.

    Parameters
    ----------
    p : ndarray of shape (N, N)
        Co-clustering matrix.
    labels : ndarray of shape (N,)
        Labels 0..m-1; clusters are shown in this order.
    value : ndarray of shape (N,), optional
        Sort key within a cluster (ascending); default: the mean similarity to the cluster,
        descending (ties: the observation order).

    Returns
    -------
    ndarray of shape (N,)
        Positions of the observations, in plotting order.
    """
    labels = np.asarray(labels)
    if value is None:
        same = labels[:, None] == labels[None, :]
        value = -(p * same).sum(axis=1) / same.sum(axis=1)
    return np.lexsort((np.arange(labels.size), np.asarray(value, dtype=float), labels))
