"""``plot_membership_uncertainty``: each observation's membership probability and interval."""

from __future__ import annotations

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from bayesmix._validation import DataError
from bayesmix.plotting._axes import _axis_limits, _beyond_handle, _mark_beyond_1d, _new_axes
from bayesmix.plotting._common import (
    _feature_label,
    _filled_note,
    _membership_draws,
    _observed,
    component_colors,
)


def plot_membership_uncertainty(
    result: xr.DataTree,
    *,
    n_draws: int = 200,
    interval: tuple[float, float] = (0.05, 0.95),
    ax=None,
    seed: int = 0,
) -> Figure:
    """Membership probability of every observation, with its posterior interval.

    D = 1: against the observed value, one line per component shows
    ``P(z_n = k | x_n)``; where the lines cross, clusters overlap. The axis follows the bulk of
    the data; far values are marked at the edge. D > 1: observations are
    grouped by their most likely component (most certain first) and the line shows the
    probability of that component, falling towards ``1/K`` where clusters overlap. Lines are
    posterior means over ``n_draws`` aligned draws (the EM/MAP estimate when no posterior
    exists); bands are ``interval`` quantiles over the draws.

    Parameters
    ----------
    result : xarray.DataTree
        Result with ``observed_data`` and ``posterior`` and/or ``em``/``map``.
    n_draws : int
        Posterior draws used.
    interval : (float, float)
        Quantiles of the band.
    ax : matplotlib.axes.Axes, optional
    seed : int

    Returns
    -------
    matplotlib.figure.Figure
    """
    X, names = _observed(result)
    point_r, draw_r = _membership_draws(result, n_draws, seed)
    if point_r is None and draw_r is None:
        raise DataError(
            "plot_membership_uncertainty needs parameters: expected a 'posterior', 'em' or "
            f"'map' group, got {sorted(result.children)}; fit the model first"
        )
    mean = draw_r.mean(0) if draw_r is not None else point_r
    n, k = mean.shape
    colors = component_colors(k)
    fig, ax = _new_axes(ax, figsize=(9.5, 4.5))
    if X.shape[1] == 1:
        # every component's curve along the data axis: crossings show where clusters overlap
        order = np.argsort(X[:, 0], kind="stable")
        xs = X[order, 0]
        for c in range(k):
            if draw_r is not None:
                lo, hi = np.quantile(draw_r[:, order, c], interval, axis=0)
                ax.fill_between(xs, lo, hi, color=colors[c], alpha=0.25, lw=0)
            ax.plot(
                xs,
                mean[order, c],
                color=colors[c],
                lw=1.3,
                marker="o",
                ms=2.5,
                label=f"component {c}",
                gid=f"membership-{c}",
            )
        ax.plot(xs, np.full(n, -0.01), "|", color="0.3", ms=6, label="observations")
        xlim = _axis_limits(xs, pad=0.03)
        ax.set_xlim(xlim)
        n_out = _mark_beyond_1d(ax, xs, xlim, y=0.06)
        ax.set_xlabel(_feature_label(result, names[0]))
        ax.set_ylabel("membership probability P(z = k | x)")
    else:
        # one block per most likely component, most certain first: the probability of the
        # assigned component drops towards 1/K where clusters overlap
        best = mean.argmax(1)
        start = 0
        for c in range(k):
            idx = np.flatnonzero(best == c)
            if idx.size == 0:
                continue
            idx = idx[np.argsort(-mean[idx, c], kind="stable")]
            pos = np.arange(start, start + idx.size)
            if draw_r is not None:
                lo, hi = np.quantile(draw_r[:, idx, c], interval, axis=0)
                ax.fill_between(pos, lo, hi, color=colors[c], alpha=0.3, lw=0, step="mid")
            ax.plot(
                pos,
                mean[idx, c],
                color=colors[c],
                lw=1.5,
                drawstyle="steps-mid",
                label=f"component {c} (n = {idx.size})",
                gid=f"membership-{c}",
            )
            if start > 0:
                ax.axvline(start - 0.5, color="0.6", lw=0.6, ls=":")
            start += idx.size
        ax.axhline(1.0 / k, color="0.4", lw=0.8, ls="--", label=f"1 / K = {1.0 / k:.2g}")
        ax.set_xlabel("observations grouped by most likely component, most certain first")
        ax.set_ylabel("P(z = most likely component | x)")
        ax.set_xlim(-0.5, n - 0.5)
    ax.set_ylim(-0.03, 1.03)
    what = "posterior mean" if draw_r is not None else "point estimate"
    band = (
        f"; band: {100 * (interval[1] - interval[0]):.0f}% posterior interval"
        if draw_r is not None
        else ""
    )
    filled = _filled_note(result)
    ax.set_title(
        f"Membership uncertainty (N = {n}); line: {what}{band}" + (f"\n{filled}" if filled else "")
    )
    handles, _ = ax.get_legend_handles_labels()
    if X.shape[1] == 1 and n_out:
        handles.append(_beyond_handle(n_out))
    if k > 3:
        ax.legend(
            handles=handles,
            fontsize="small",
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            frameon=False,
        )
    else:
        loc = "center left" if X.shape[1] == 1 else "lower left"
        ax.legend(handles=handles, fontsize="small", loc=loc, framealpha=0.85)
    return fig
