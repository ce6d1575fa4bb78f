"""Axes of every figure: new axes, grids, limits on the bulk of the data, far points at edges."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from bayesmix._validation import ParameterError

#: The bulk of the data lies between these quantiles ...
_BULK_QUANTILES = (0.005, 0.995)
#: ... and a point further than this many bulk ranges beyond them is drawn at the axis edge.
#: Half a range keeps every point of Gaussian-like data (a point 5 sd out is still inside)
#: and any cluster holding more than 0.5% of the points.
_FENCE = 0.5
_BEYOND_GID = "beyond-axes"


def _bulk_range(values: np.ndarray) -> tuple[float, float, float, float]:
    """(lowest, highest) finite value inside the fence, and the fence (low, high)."""
    v = np.asarray(values, dtype=float).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return 0.0, 1.0, -np.inf, np.inf
    q_lo, q_hi = np.quantile(v, _BULK_QUANTILES)
    span = q_hi - q_lo
    if span <= 0:  # most values tied: no bulk to speak of, keep every point
        return float(v.min()), float(v.max()), -np.inf, np.inf
    f_lo, f_hi = q_lo - _FENCE * span, q_hi + _FENCE * span
    inside = v[(v >= f_lo) & (v <= f_hi)]
    return float(inside.min()), float(inside.max()), float(f_lo), float(f_hi)


def _axis_limits(
    values: np.ndarray, *, pad: float = 0.05, include: tuple[float, float] | None = None
) -> tuple[float, float]:
    """Axis limits that hold the bulk of ``values`` (every value when none is far out).

    ``include`` (low, high) widens the limits (e.g. to show whole ellipses), but never past
    the fence, so a component stretched over an outlier cannot squash the picture.
    """
    lo, hi, f_lo, f_hi = _bulk_range(values)
    if include is not None:
        lo = min(lo, max(include[0], f_lo))
        hi = max(hi, min(include[1], f_hi))
    span = hi - lo
    if span <= 0:
        span = abs(hi) or 1.0
    return lo - pad * span, hi + pad * span


def _beyond_handle(n: int) -> Line2D:
    return Line2D(
        [],
        [],
        marker=">",
        ls="none",
        mfc="white",
        mec="black",
        mew=1.2,
        ms=7,
        label=f"{n} point{'s' if n != 1 else ''} beyond the axes (drawn at the edge)",
    )


def _mark_beyond_1d(ax, x: np.ndarray, xlim: tuple[float, float], y: float = 0.03) -> int:
    """Draw the values of ``x`` outside ``xlim`` as edge markers (at axes height ``y``)."""
    x = np.asarray(x, dtype=float)
    n = 0
    for side, marker, inset in ((x < xlim[0], "<", 0.01), (x > xlim[1], ">", 0.99)):
        if side.any():
            edge = xlim[0] + inset * (xlim[1] - xlim[0])
            ax.scatter(
                np.full(side.sum(), edge),
                np.full(side.sum(), y),
                marker=marker,
                s=45,
                c="white",
                edgecolors="black",
                linewidths=1.2,
                transform=ax.get_xaxis_transform(),
                zorder=6,
                clip_on=False,
                gid=_BEYOND_GID,
            )
            n += int(side.sum())
    return n


def _mark_beyond_2d(ax, xy: np.ndarray, xlim, ylim, colors: np.ndarray | None = None) -> int:
    """Draw points of ``xy`` (M, 2) outside the limits at the nearest edge, as triangles."""
    xy = np.asarray(xy, dtype=float)
    out = (xy[:, 0] < xlim[0]) | (xy[:, 0] > xlim[1]) | (xy[:, 1] < ylim[0]) | (xy[:, 1] > ylim[1])
    if not out.any():
        return 0
    inset_x = 0.012 * (xlim[1] - xlim[0])
    inset_y = 0.012 * (ylim[1] - ylim[0])
    px = np.clip(xy[out, 0], xlim[0] + inset_x, xlim[1] - inset_x)
    py = np.clip(xy[out, 1], ylim[0] + inset_y, ylim[1] - inset_y)
    # the triangle points the way the point lies: sideways when x is out, else up or down
    dirs = np.where(
        xy[out, 0] > xlim[1],
        ">",
        np.where(xy[out, 0] < xlim[0], "<", np.where(xy[out, 1] > ylim[1], "^", "v")),
    )
    fill = np.broadcast_to(np.array([1.0, 1.0, 1.0]), (out.sum(), 3))
    if colors is not None:
        fill = np.asarray(colors)[out]
    for marker in "<>^v":
        sel = dirs == marker
        if sel.any():
            ax.scatter(
                px[sel],
                py[sel],
                marker=marker,
                s=60,
                c=fill[sel],
                edgecolors="black",
                linewidths=1.2,
                zorder=6,
                clip_on=False,
                gid=_BEYOND_GID,
            )
    return int(out.sum())


def _hist_in_range(ax, x: np.ndarray, lim: tuple[float, float], bins: Any = "auto", **kw):
    """Density histogram of the values inside ``lim``, scaled by all N values.

    Without far values this is ``ax.hist(x, bins, density=True)``; with them, the bars keep
    the height they would have on the full axis (their area is the share of points shown).
    """
    x = np.asarray(x, dtype=float)
    x = x[~np.isnan(x)]  # missing values (missing="model"): the observed values' histogram
    inside = x[(x >= lim[0]) & (x <= lim[1])]
    if inside.size == 0:
        return
    edges = np.histogram_bin_edges(inside, bins=bins)
    widths = np.diff(edges)
    counts, _ = np.histogram(inside, bins=edges)
    ax.hist(edges[:-1], bins=edges, weights=counts / (x.size * widths), **kw)


def _kde_in_range(values: np.ndarray, lim: tuple[float, float], grid: np.ndarray) -> np.ndarray:
    """KDE of the values inside ``lim``, scaled by their share of all values.

    Without far values this is the plain KDE; a far value would otherwise widen the
    bandwidth (Scott's rule uses the standard deviation) and flatten the curve.

    Parameters
    ----------
    values : ndarray of shape (N,)
    lim : (float, float)
    grid : ndarray of shape (G,)

    Returns
    -------
    ndarray of shape (G,)
    """
    return _kde_rows_in_range(np.asarray(values, dtype=float)[None, :], lim, grid)[0]


#: Kernel evaluations (grid points x values) held in memory at a time.
_KDE_BLOCK = 1_000_000


def _kde_rows_in_range(
    values: np.ndarray, lim: tuple[float, float], grid: np.ndarray
) -> np.ndarray:
    """:func:`_kde_in_range` of every row of ``values``.

    The numbers of :class:`scipy.stats.gaussian_kde` (Gaussian kernel, Scott's bandwidth
    ``sd * n ** -0.2``, ``ddof=1``) to rounding, computed in NumPy: ``gaussian_kde`` makes a
    triangular solve through BLAS per call, and with threaded BLAS on a busy machine that
    made the 50 replicated curves of the PPC figure its slowest part.

    Parameters
    ----------
    values : ndarray of shape (S, N)
        One data set per row (NaN counts as outside ``lim``).
    lim : (float, float)
    grid : ndarray of shape (G,)

    Returns
    -------
    ndarray of shape (S, G)
        Row s: the KDE of the values of row s inside ``lim`` times their share of the N
        values; zeros where fewer than 2 distinct values are inside.
    """
    values = np.asarray(values, dtype=float)
    grid = np.asarray(grid, dtype=float)
    n_values = values.shape[1]
    out = np.zeros((values.shape[0], grid.size))
    cols = max(1, _KDE_BLOCK // max(grid.size, 1))
    for s, row in enumerate(values):
        inside = row[(row >= lim[0]) & (row <= lim[1])]
        if inside.size < 2 or np.ptp(inside) == 0:
            continue
        h = inside.std(ddof=1) * inside.size**-0.2
        total = np.zeros(grid.size)
        for c0 in range(0, inside.size, cols):
            z = np.subtract.outer(grid, inside[c0 : c0 + cols])
            z *= 1.0 / h
            np.square(z, out=z)
            z *= -0.5
            np.exp(z, out=z)
            total += z.sum(axis=1)
        # the KDE divides by the values inside; their share of all values multiplies by it
        out[s] = total / (h * np.sqrt(2 * np.pi) * n_values)
    return out


def _new_axes(ax=None, **subplot_kw) -> tuple[Figure, Any]:
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=subplot_kw.pop("figsize", (7.5, 4.8)), layout="constrained")
    return fig, fig.add_subplot(**subplot_kw)


def _grid_axes(n_panels: int, ncols: int, panel_size=(4.2, 3.2), axes=None):
    if axes is not None:
        axes = np.ravel(axes)
        if len(axes) < n_panels:
            raise ParameterError(
                f"too few axes: expected at least {n_panels}, got {len(axes)}; pass more axes"
            )
        return axes[0].figure, axes
    ncols = max(1, min(ncols, n_panels))
    nrows = int(np.ceil(n_panels / ncols))
    fig = Figure(figsize=(panel_size[0] * ncols, panel_size[1] * nrows), layout="constrained")
    axs = np.ravel(fig.subplots(nrows, ncols, squeeze=False))
    for a in axs[n_panels:]:
        a.set_visible(False)
    return fig, axs
