"""``plot_item_profiles``: each item's level probabilities per latent class."""

from __future__ import annotations

import json

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from bayesmix.plotting._axes import _grid_axes
from bayesmix.plotting._common import _observed, _point_or_posterior_mean, component_colors


def plot_item_profiles(result: xr.DataTree, *, max_items: int = 12, axes=None) -> Figure:
    """Latent classes: each item's level probabilities per class (grouped bars).

    Reads ``probs`` (component, feature, level) of the EM (or MAP) estimate, else the posterior
    mean; levels an item does not have (zero padding) are left out.

    Parameters
    ----------
    result : xarray.DataTree
    max_items : int
        At most this many panels (the first items).
    axes : array of matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    X, names = _observed(result)
    label, ref = _point_or_posterior_mean(result)
    probs = ref["probs"]  # (K, D, L)
    # the level names of text answers (observed_data attrs "levels": feature -> names)
    level_names = json.loads(result["observed_data"].attrs.get("levels", "{}"))
    k = probs.shape[0]
    colors = component_colors(k)
    shown = list(range(min(X.shape[1], max_items)))
    fig, axs = _grid_axes(len(shown), 4, (3.6, 2.8), axes)
    width = 0.8 / k
    for p, j in enumerate(shown):
        ax = axs[p]
        n_levels = int(np.nanmax(X[:, j])) + 1  # NaN: a missing answer (missing="model")
        levels = np.arange(n_levels)
        for c in range(k):
            ax.bar(
                levels - 0.4 + width * (c + 0.5),
                probs[c, j, :n_levels],
                width=width,
                color=colors[c],
                label=f"class {c} (w={ref['w'][c]:.2f})",
            )
        ax.set_xticks(levels)
        names_j = level_names.get(str(names[j]), [])
        if len(names_j) >= n_levels:
            ax.set_xticklabels(names_j[:n_levels], rotation=30 if n_levels > 3 else 0)
        ax.set_ylim(0, 1)
        ax.set_title(str(names[j]), fontsize="medium")
        if p == 0:
            ax.set_ylabel("probability")
            ax.legend(fontsize="x-small", frameon=False)
    title = f"Item profiles of the latent classes ({label})"
    if len(shown) < X.shape[1]:
        title += f": first {len(shown)} of {X.shape[1]} items"
    fig.suptitle(title)
    return fig
