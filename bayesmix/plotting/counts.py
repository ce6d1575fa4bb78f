"""``plot_count_histogram``: counts against the fitted probability mass."""

from __future__ import annotations

import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from bayesmix.plotting._axes import _grid_axes
from bayesmix.plotting._common import (
    _EM_COLOR,
    _HIST_COLOR,
    _family,
    _feature_label,
    _observed,
    _point_or_posterior_mean,
    _weighted_component_densities,
    component_colors,
)


def plot_count_histogram(result: xr.DataTree, *, max_features: int = 6, axes=None) -> Figure:
    """Counts: the observed frequency of each value and the fitted probability mass.

    One panel per feature: bars for the share of observations at each count, the weighted
    component pmfs ``w_k f(x | theta_k)`` (dashed, one colour per component) and their sum
    (black), from the EM (or MAP) estimate, else the posterior mean of the parameters.

    Parameters
    ----------
    result : xarray.DataTree
    max_features : int
        At most this many panels (the first features).
    axes : array of matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    family = _family(result)
    X, names = _observed(result)
    label, ref = _point_or_posterior_mean(result)
    k = ref["w"].shape[-1]
    colors = component_colors(k)
    shown = list(range(min(X.shape[1], max_features)))
    fig, axs = _grid_axes(len(shown), 3, (4.8, 3.6), axes)
    for p, j in enumerate(shown):
        ax = axs[p]
        x = X[:, j]
        x = x[~np.isnan(x)]  # missing values (missing="model"): the observed counts only
        top = int(max(np.max(x), 1))
        values = np.arange(top + 1)
        share = np.bincount(x.astype(np.int64), minlength=top + 1) / len(x)
        ax.bar(values, share, color=_HIST_COLOR, width=0.85, label="observed")
        pmf = _weighted_component_densities(values.astype(float), family.marginal(ref, j), family)
        for c in range(k):
            ax.plot(
                values,
                pmf[:, c],
                ls="--",
                marker=".",
                color=colors[c],
                lw=1.2,
                label=f"component {c} (w={ref['w'][c]:.2f})",
            )
        ax.plot(
            values,
            pmf.sum(-1),
            color=_EM_COLOR,
            marker="o",
            ms=3,
            lw=1.5,
            label=f"mixture ({label})",
        )
        ax.set_xlabel(_feature_label(result, names[j]))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # counts: whole numbers
        ax.set_ylabel("share of observations")
        if p == 0:
            ax.legend(fontsize="small", frameon=False)
    title = "Counts and the fitted probability mass"
    if len(shown) < X.shape[1]:
        title += f" (first {len(shown)} of {X.shape[1]} features)"
    fig.suptitle(title)
    return fig
