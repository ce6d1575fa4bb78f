"""Axes of every figure: new axes, grids, limits on the bulk of the data, far points at edges."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from scipy.stats import gaussian_kde

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
    """
    values = np.asarray(values, dtype=float)
    inside = values[(values >= lim[0]) & (values <= lim[1])]
    if inside.size < 2 or np.ptp(inside) == 0:
        return np.zeros_like(grid)
    return gaussian_kde(inside)(grid) * (inside.size / values.size)


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
