"""``plot_density_1d``: one feature's histogram with the fitted mixture densities."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from bayesmix._validation import ParameterError
from bayesmix.plotting._axes import (
    _axis_limits,
    _beyond_handle,
    _hist_in_range,
    _mark_beyond_1d,
    _new_axes,
)
from bayesmix.plotting._common import (
    _EM_COLOR,
    _HIST_COLOR,
    _POSTERIOR_COLOR,
    _draw_params,
    _family,
    _feature_label,
    _method_label,
    _observed,
    _reference_params,
    _relabelled,
    _resolve_feature,
    _units,
    _weighted_component_densities,
    component_colors,
)


def plot_density_1d(
    result: xr.DataTree,
    *,
    feature: Any = None,
    n_draws: int = 100,
    bins: Any = "auto",
    band: tuple[float, float] = (0.05, 0.95),
    ax=None,
    seed: int = 0,
) -> Figure:
    """Histogram of one feature with the fitted mixture densities.

    Draws the observed data (density scale), the EM (else MAP) mixture density, the posterior
    mean density with a band of posterior densities (``band`` quantiles over ``n_draws``
    draws), and dashed component curves ``w_k N(x | mu_k, sigma_k)`` of the point estimate
    (else of the aligned posterior mean). For D > 1 the marginal of ``feature`` is shown.
    The axis spans the bulk of the data (every point unless some lie far out); far points
    are drawn as triangles at the edge and counted in the legend.

    Parameters
    ----------
    result : xarray.DataTree
        Gaussian result with ``observed_data`` (``x`` of shape (N, D)) and at least one of
        ``em``, ``map``, ``posterior``.
    feature : str or int, optional
        Feature to show (default: the first).
    n_draws : int
        Posterior draws used for the mean and the band.
    bins : int, sequence or str
        Passed to :meth:`matplotlib.axes.Axes.hist`.
    band : (float, float)
        Lower and upper quantiles of the band.
    ax : matplotlib.axes.Axes, optional
        Axes to draw into; a new figure is made when None.
    seed : int
        Seed for the choice of draws.

    Returns
    -------
    matplotlib.figure.Figure
    """
    family = _family(result)
    if "clusters" not in family.plots:
        raise ParameterError(
            "plot_density_1d draws component densities of one feature: expected a family "
            f"with 1-D marginals, got {family.name!r}; use plot_plan(result) for the plots "
            "that suit it"
        )
    X, features = _observed(result)
    j = _resolve_feature(features, feature, "plot_density_1d")
    x = X[:, j]
    fig, ax = _new_axes(ax)
    # the grid spans the bulk of the data padded by 10% (all of it when nothing is far out)
    lim = _axis_limits(x, pad=0.1)
    _hist_in_range(ax, x, lim, bins, color=_HIST_COLOR, edgecolor="white", label="data")
    grid = np.linspace(lim[0], lim[1], 400)

    ref_group, ref = _reference_params(result)
    comp_params, comp_source = None, None
    if ref is not None:
        dens = _weighted_component_densities(grid, family.marginal(ref, j), family)  # (G, K)
        ax.plot(
            grid,
            dens.sum(-1),
            color=_EM_COLOR,
            lw=2,
            label=f"{_method_label(result, ref_group)} mixture",
            gid="density-point",
        )
        comp_params, comp_source = dens, ref_group.upper()

    if "posterior" in result.children:
        draws = _draw_params(_relabelled(result, "pivot"), "posterior", n_draws, seed)
        dens = _weighted_component_densities(grid, family.marginal(draws, j), family)  # (S, G, K)
        mix = dens.sum(-1)
        lo, hi = np.quantile(mix, band, axis=0)
        ax.fill_between(
            grid,
            lo,
            hi,
            color=_POSTERIOR_COLOR,
            alpha=0.3,
            lw=0,
            label=f"posterior {100 * (band[1] - band[0]):.0f}% band",
        )
        ax.plot(
            grid,
            mix.mean(0),
            color=_POSTERIOR_COLOR,
            lw=2,
            label="posterior mean",
            gid="density-posterior",
        )
        if comp_params is None:
            comp_params, comp_source = dens.mean(0), "posterior mean"

    if comp_params is not None:
        colors = component_colors(comp_params.shape[-1])
        for k in range(comp_params.shape[-1]):
            ax.plot(
                grid,
                comp_params[:, k],
                ls="--",
                lw=1.5,
                color=colors[k],
                label=f"component {k} ({comp_source})",
                gid=f"component-{k}",
            )
    ax.set_xlim(lim)
    n_out = _mark_beyond_1d(ax, x, lim)
    ax.set_xlabel(_feature_label(result, features[j]))
    unit = _units(result).get(str(features[j]))
    ax.set_ylabel(f"density (per {unit})" if unit else "density")
    ax.set_title(f"Mixture density of {features[j]} (N = {len(x)})")
    ax.set_ylim(bottom=0)
    handles, _ = ax.get_legend_handles_labels()
    if n_out:
        handles.append(_beyond_handle(n_out))
    ax.legend(handles=handles, fontsize="small", frameon=False)
    return fig
