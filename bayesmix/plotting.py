"""Figures from bayesmix results (one ``xarray.DataTree`` per fit).

Every public function takes a result laid out as in ``docs/architecture.md`` (groups
``posterior``, ``em``, ``map``, ``observed_data``, ``posterior_predictive``, ...) and returns a
:class:`matplotlib.figure.Figure`. None of them calls ``plt.show``; they work headless (Agg).
Component ``k`` has the same colour in every figure (:func:`component_colors`).

Densities and memberships come from :mod:`bayesmix._math`, so the mixture mathematics is
written once. Posterior draws are aligned to a reference labelling (EM, else MAP) before
they are averaged or coloured, so that label switching does not blur the pictures.
"""

from __future__ import annotations

import contextvars
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Ellipse, Patch
from scipy.stats import gaussian_kde

from bayesmix import _math
from bayesmix._files import atomic_path
from bayesmix._validation import DataError, ParameterError
from bayesmix.families import Family, get_family, guess_family

__all__ = [
    "FEATURE_UNITS",
    "MAX_DIAGNOSTIC_FEATURES",
    "MAX_MATRIX_FEATURES",
    "component_colors",
    "plot_clusters_2d",
    "plot_component_images",
    "plot_count_histogram",
    "plot_density_1d",
    "plot_em_history",
    "plot_generated_images",
    "plot_item_profiles",
    "plot_k_selection",
    "plot_membership_uncertainty",
    "plot_plan",
    "plot_ppc",
    "plot_rank",
    "plot_trace",
    "save_figure",
    "write_plots",
]

# Okabe & Ito (2008): distinguishable with the common colour-vision deficiencies. The yellow
# is last because it is hard to see on white.
_OKABE_ITO = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#D55E00",  # vermillion
    "#56B4E9",  # sky blue
    "#CC79A7",  # reddish purple
    "#000000",  # black
    "#F0E442",  # yellow
)
_EM_COLOR = "#000000"
_POSTERIOR_COLOR = "#CC79A7"
_HIST_COLOR = "#BBBBBB"

#: Units of known features (Old Faithful); extend it, or set ``attrs["units"]`` (a mapping
#: feature -> unit) on ``observed_data``.
FEATURE_UNITS: dict[str, str] = {"eruptions": "min", "waiting": "min"}
_FEATURE_DESCRIPTIONS = {
    "eruptions": "eruption duration",
    "waiting": "waiting time to next eruption",
}
_DEFAULT_DPI = 110


# --------------------------------------------------------------------------------------------
# helpers: colours, data and parameters out of a result
# --------------------------------------------------------------------------------------------


def component_colors(n_components: int) -> list[str]:
    """Colours of components ``0 .. n_components - 1``, the same in every figure.

    Parameters
    ----------
    n_components : int
        Number of components K.

    Returns
    -------
    list of str
        K hex colours: Okabe-Ito for K <= 8; beyond that ``tab10`` (K <= 10) or ``tab20``,
        which are not colour-blind safe (no palette of that size is).
    """
    if n_components <= len(_OKABE_ITO):
        return list(_OKABE_ITO[:n_components])
    cmap = mpl.colormaps["tab10" if n_components <= 10 else "tab20"]
    return [mpl.colors.to_hex(cmap(i % 20)) for i in range(n_components)]


def _units(result: xr.DataTree | None) -> dict[str, str]:
    units = dict(FEATURE_UNITS)
    if result is not None and "observed_data" in result.children:
        extra = result["observed_data"].attrs.get("units")
        if isinstance(extra, dict):
            units.update(extra)
    return units


def _feature_label(result: xr.DataTree | None, feature: Any) -> str:
    """Axis label of one feature, with its unit when known."""
    units = _units(result)
    name = str(feature)
    desc = _FEATURE_DESCRIPTIONS.get(name)
    text = f"{name}: {desc}" if desc else name
    unit = units.get(name)
    return f"{text} ({unit})" if unit else text


def _require_group(result: xr.DataTree, group: str, what: str) -> xr.Dataset:
    if not isinstance(result, xr.DataTree):
        raise ParameterError(
            f"{what} needs a result: expected an xarray.DataTree, got {type(result).__name__}; "
            "pass the DataTree returned by fit_em / fit_map / sample_nuts"
        )
    if group not in result.children:
        raise DataError(
            f"{what} needs the '{group}' group: expected it in the result, got groups "
            f"{sorted(result.children)}; fit or sample so that the group is added"
        )
    return result[group].to_dataset()


def _family(result: xr.DataTree) -> Family:
    name = result.attrs.get("family")
    if not name:
        for group in ("em", "map", "posterior"):
            if group in result.children:
                name = guess_family(result[group].data_vars)
                break
        else:
            name = "gaussian"
    return get_family(str(name))


def _covariance(result: xr.DataTree) -> str | None:
    cov = result.attrs.get("covariance")
    return None if cov in (None, "") else str(cov)


def _observed(result: xr.DataTree) -> tuple[np.ndarray, list]:
    """Observed data ``(N, D)`` and the feature labels."""
    ds = _require_group(result, "observed_data", "this plot")
    x = ds["x"]
    if "feature" not in x.dims:
        x = x.expand_dims(feature=["x0"], axis=-1)
    x = x.transpose("obs_id", "feature")
    return np.asarray(x.values, dtype=float), list(x["feature"].values)


def _point_params(result: xr.DataTree, group: str) -> dict[str, np.ndarray]:
    """Parameters of a point-estimate group (``em`` or ``map``) as arrays without draw dims."""
    from bayesmix.inference._tree import group_arrays

    return group_arrays(result[group])


def _draw_params(
    result: xr.DataTree, group: str = "posterior", n_draws: int | None = None, seed: int = 0
) -> dict[str, np.ndarray]:
    """Parameters of a draws group as arrays with one leading ``sample`` dim.

    ``n_draws`` draws are taken at random without replacement (all when None or when fewer).
    """
    from bayesmix.inference._tree import group_arrays

    stacked = result[group].to_dataset().stack(sample=("chain", "draw"))
    n_total = stacked.sizes["sample"]
    if n_draws is not None and n_draws < n_total:
        idx = np.sort(np.random.default_rng(seed).choice(n_total, size=n_draws, replace=False))
        stacked = stacked.isel(sample=idx)
    return group_arrays(stacked, sample_dims=("sample",))


def _reference_params(result: xr.DataTree) -> tuple[str | None, dict[str, np.ndarray] | None]:
    for group in ("em", "map"):
        if group in result.children:
            return group, _point_params(result, group)
    return None, None


def _weighted_component_densities(
    grid: np.ndarray, params: dict[str, np.ndarray], family: Family
) -> np.ndarray:
    """``w_k f(x | theta_k)`` on a 1-D grid for the marginal parameters: shape (..., G, K)."""
    logc = _math.component_log_density(grid[:, None], params, family)
    with np.errstate(divide="ignore"):
        logw = np.log(params["w"])[..., None, :]
    return np.exp(logc + logw)


def _new_axes(ax=None, **subplot_kw) -> tuple[Figure, Any]:
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=subplot_kw.pop("figsize", (7.5, 4.8)), layout="constrained")
    return fig, fig.add_subplot(**subplot_kw)


def _resolve_feature(features: list, feature: Any, what: str) -> int:
    if feature is None:
        return 0
    if isinstance(feature, int | np.integer) and feature not in features:
        if not 0 <= feature < len(features):
            raise ParameterError(
                f"{what}: expected a feature index in [0, {len(features)}), got {feature}; "
                f"choose one of {features}"
            )
        return int(feature)
    matches = [i for i, f in enumerate(features) if f == feature or str(f) == str(feature)]
    if not matches:
        raise ParameterError(
            f"unknown feature in {what}: expected one of {features}, got {feature!r}; "
            "pass a feature name or index"
        )
    return matches[0]


def _method_label(result: xr.DataTree, group: str) -> str:
    if group == "em":
        method = str(result["em"].attrs.get("method", "ml")).upper()
        return f"EM ({method})"
    return group.upper()


def _resolve_features(features: list, chosen: Sequence[Any], what: str) -> list[int]:
    """Indices of the features named (or indexed) in ``chosen``, without repeats."""
    if isinstance(chosen, str) or not isinstance(chosen, Sequence | np.ndarray):
        chosen = [chosen]
    idx = [_resolve_feature(features, f, what) for f in chosen]
    if len(set(idx)) != len(idx):
        raise ParameterError(
            f"repeated feature in {what}: expected distinct features, got "
            f"{[str(features[i]) for i in idx]}; name each feature once"
        )
    return idx


# --------------------------------------------------------------------------------------------
# robust axes: limits follow the bulk of the data, far outliers are drawn at the edge
# --------------------------------------------------------------------------------------------

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
    inside = x[(x >= lim[0]) & (x <= lim[1])]
    if inside.size == 0:
        return
    edges = np.histogram_bin_edges(inside, bins=bins)
    widths = np.diff(edges)
    counts, _ = np.histogram(inside, bins=edges)
    ax.hist(edges[:-1], bins=edges, weights=counts / (x.size * widths), **kw)


# --------------------------------------------------------------------------------------------
# densities and clusters
# --------------------------------------------------------------------------------------------


def _point_or_posterior_mean(result: xr.DataTree) -> tuple[str, dict[str, np.ndarray]]:
    group, ref = _reference_params(result)
    if ref is not None:
        return str(group).upper(), ref
    _require_group(result, "posterior", "the figure")
    draws = _draw_params(result, "posterior", 200, 0)
    return "posterior mean", {k: v.mean(axis=0) for k, v in draws.items()}


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
        ax.set_ylabel("share of observations")
        if p == 0:
            ax.legend(fontsize="small", frameon=False)
    title = "Counts and the fitted probability mass"
    if len(shown) < X.shape[1]:
        title += f" (first {len(shown)} of {X.shape[1]} features)"
    fig.suptitle(title)
    return fig


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
    k = probs.shape[0]
    colors = component_colors(k)
    shown = list(range(min(X.shape[1], max_items)))
    fig, axs = _grid_axes(len(shown), 4, (3.6, 2.8), axes)
    width = 0.8 / k
    for p, j in enumerate(shown):
        ax = axs[p]
        n_levels = int(np.max(X[:, j])) + 1
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


def _cov2(params: dict[str, np.ndarray], i: int, j: int) -> np.ndarray:
    """2 x 2 covariance of features (i, j): shape (..., K, 2, 2)."""
    if "cov" in params:
        idx = np.array([i, j])
        return params["cov"][..., idx[:, None], idx[None, :]]
    sd = params["sigma"][..., [i, j]]
    return sd[..., :, None] * np.eye(2) * sd[..., None, :]


def _ellipse(mean: np.ndarray, cov: np.ndarray, n_sd: float, **kw) -> Ellipse:
    vals, vecs = np.linalg.eigh(cov)
    vals = np.clip(vals, 0.0, None)
    angle = np.degrees(np.arctan2(vecs[1, 1], vecs[0, 1]))
    return Ellipse(
        mean, 2 * n_sd * np.sqrt(vals[1]), 2 * n_sd * np.sqrt(vals[0]), angle=angle, **kw
    )


def _membership_draws(
    result: xr.DataTree, n_draws: int | None, seed: int
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Point-estimate memberships (N, K) and aligned posterior memberships (S, N, K)."""
    X, _ = _observed(result)
    family = _family(result)
    _, ref = _reference_params(result)
    point = None
    if ref is not None:
        point = np.exp(_math.log_responsibilities(X, ref, family))
    draws = None
    if "posterior" in result.children:
        params = _draw_params(_relabelled(result, "pivot"), "posterior", n_draws, seed)
        s = params["w"].shape[0]
        step = max(1, 1_000_000 // max(1, X.shape[0] * params["w"].shape[-1]))
        draws = np.concatenate(  # a block of draws at a time: the temporaries are (S, N, K, D)
            [
                np.exp(
                    _math.log_responsibilities(
                        X, {k: v[a : a + step] for k, v in params.items()}, family
                    )
                )
                for a in range(0, s, step)
            ]
        )
    return point, draws


#: plot_clusters_2d draws a scatter matrix of at most this many features.
MAX_MATRIX_FEATURES = 4


def _fitted_params(
    result: xr.DataTree, n_draws: int, seed: int
) -> tuple[str | None, dict[str, np.ndarray] | None]:
    """The EM (else MAP) estimate, else the mean of aligned posterior draws: (source, params)."""
    group, ref = _reference_params(result)
    if ref is not None:
        return _method_label(result, group), ref
    if "posterior" in result.children:
        draws = _draw_params(_relabelled(result, "pivot"), "posterior", n_draws, seed)
        return "posterior mean", {n: v.mean(0) for n, v in draws.items()}
    return None, None


def _separating_pair(params: dict[str, np.ndarray], n_features: int) -> tuple[int, int]:
    """The pair of features whose 2-D marginals of the components overlap least.

    Overlap of a pair: ``sum_{k<l} w_k w_l BC_kl``, with ``BC`` the Bhattacharyya coefficient
    ``exp(-D_B)`` of the two components' 2-D Gaussian marginals (1 for identical components,
    near 0 for separated ones). Ties (e.g. K = 1) go to the first pair.
    """
    w = params["w"]
    k = w.shape[0]
    best, best_score = (0, 1), np.inf
    iu = np.triu_indices(k, 1)
    for i in range(n_features):
        for j in range(i + 1, n_features):
            mu = params["mu"][:, [i, j]]  # (K, 2)
            cov = _cov2(params, i, j)  # (K, 2, 2)
            avg = 0.5 * (cov[:, None] + cov[None, :])  # (K, K, 2, 2)
            diff = mu[:, None] - mu[None, :]  # (K, K, 2)
            sol = np.linalg.solve(avg, diff[..., None])[..., 0]
            maha = np.einsum("abi,abi->ab", diff, sol)
            with np.errstate(divide="ignore", invalid="ignore"):
                logdet = np.linalg.slogdet(cov)[1]
                d_b = 0.125 * maha + 0.5 * (
                    np.linalg.slogdet(avg)[1] - 0.5 * (logdet[:, None] + logdet[None, :])
                )
            score = float(np.sum((w[:, None] * w[None, :] * np.exp(-d_b))[iu]))
            if score < best_score - 1e-12:
                best, best_score = (i, j), score
    return best


def plot_clusters_2d(
    result: xr.DataTree,
    *,
    features: Sequence[Any] | None = None,
    n_ellipses: int = 50,
    n_draws: int = 200,
    ax=None,
    seed: int = 0,
) -> Figure:
    """Scatter of two features coloured by membership, with covariance ellipses.

    Each point's colour mixes the component colours by its membership probabilities (a point
    shared 50/50 between two components gets the mid colour). Membership is the posterior mean
    over ``n_draws`` aligned draws when a posterior exists, else the point estimate; it uses
    every feature, not just the ones shown. Solid ellipses are the EM (else MAP) 1- and 2-sd
    contours; thin transparent ellipses are the 2-sd contours of ``n_ellipses`` posterior
    draws; crosses mark the MAP means when present.

    Axis limits follow the bulk of the data: points far out (beyond the 0.5%..99.5% quantiles
    by more than half their range) are drawn as triangles at the edge and counted in the legend.

    Parameters
    ----------
    result : xarray.DataTree
        Gaussian result with at least two features.
    features : sequence of str or int, optional
        Two features: one panel (x, y). Three or four: a scatter matrix (pairs below the
        diagonal, each feature's histogram and component densities on it). Default: the two
        features of 2-D data; for D > 2 the pair whose components overlap least (smallest
        weighted Bhattacharyya coefficient of the 2-D marginals of the EM, else MAP, else
        posterior-mean components), named in the title.
    n_ellipses : int
        Posterior draws shown as ellipses (each draws K ellipses per panel).
    n_draws : int
        Posterior draws used for the membership colours.
    ax : matplotlib.axes.Axes, optional
        Axes for a single pair (not for a scatter matrix).
    seed : int

    Returns
    -------
    matplotlib.figure.Figure
        Ellipse patches carry ``gid`` "point-ellipse" or "posterior-ellipse"; edge markers of
        far points carry ``gid`` "beyond-axes".
    """
    family = _family(result)
    if "clusters" not in family.plots:
        raise ParameterError(
            "plot_clusters_2d draws component ellipses: expected a family with locations and "
            f"scales, got {family.name!r}; use plot_plan(result) for the plots that suit it"
        )
    X, names = _observed(result)
    n_features = X.shape[1]
    if n_features < 2:
        raise DataError(
            f"plot_clusters_2d needs two features: expected D >= 2, got D = {n_features}; "
            "use plot_density_1d for 1-D data"
        )
    chosen_note = ""
    if features is None:
        idx = [0, 1]
        if n_features > 2:
            source, params = _fitted_params(result, n_draws, seed)
            if params is not None:
                idx = list(_separating_pair(params, n_features))
                chosen_note = (
                    f"{names[idx[0]]} and {names[idx[1]]}: of the {n_features} features, the "
                    f"pair whose {source} components overlap least\n"
                    f"(choose others with {_how_to_choose('features')})"
                )
            else:
                chosen_note = (
                    f"the first 2 of {n_features} features (choose others with "
                    f"{_how_to_choose('features')})"
                )
    else:
        features = list(features) if not isinstance(features, str) else [features]
        if not 2 <= len(features) <= MAX_MATRIX_FEATURES:
            raise ParameterError(
                f"plot_clusters_2d shows 2 to {MAX_MATRIX_FEATURES} features: expected that "
                f"many, got {len(features)}; pass features=(name_x, name_y) or up to "
                f"{MAX_MATRIX_FEATURES} names for a scatter matrix"
            )
        idx = _resolve_features(names, features, "plot_clusters_2d")
    if len(idx) > 2 and ax is not None:
        raise ParameterError(
            f"plot_clusters_2d draws a scatter matrix for {len(idx)} features: expected no ax, "
            "got one; pass two features to draw into an axes"
        )

    ref_group, ref = _reference_params(result)
    point_r, draw_r = _membership_draws(result, n_draws, seed)
    member = draw_r.mean(0) if draw_r is not None else point_r
    k = member.shape[1]
    colors = component_colors(k)
    rgb = np.array([mpl.colors.to_rgb(c) for c in colors])
    point_rgb = np.clip(member @ rgb, 0, 1)
    draws = None
    if "posterior" in result.children and n_ellipses > 0:
        draws = _draw_params(_relabelled(result, "pivot"), "posterior", n_ellipses, seed + 1)
    mp = _point_params(result, "map") if "map" in result.children else None
    limits = {}
    for f in idx:
        include = None
        if ref is not None:  # whole 2-sd ellipses of the point estimate, within the fence
            sd = np.sqrt(_cov2(ref, f, f)[:, 0, 0])
            include = (
                float(np.min(ref["mu"][:, f] - 2 * sd)),
                float(np.max(ref["mu"][:, f] + 2 * sd)),
            )
        limits[f] = _axis_limits(X[:, f], include=include)

    def pair_panel(ax, i: int, j: int) -> int:
        ax.scatter(X[:, i], X[:, j], c=point_rgb, s=18, edgecolors="none", alpha=0.85, zorder=2)
        if ref is not None:
            covs = _cov2(ref, i, j)
            for c in range(k):
                for n_sd, ls in ((1, "-"), (2, "--")):
                    ax.add_patch(
                        _ellipse(
                            ref["mu"][c, [i, j]],
                            covs[c],
                            n_sd,
                            fill=False,
                            ec=colors[c],
                            lw=2,
                            ls=ls,
                            zorder=4,
                            gid="point-ellipse",
                        )
                    )
        if draws is not None:
            covs = _cov2(draws, i, j)
            for s in range(draws["mu"].shape[0]):
                for c in range(k):
                    ax.add_patch(
                        _ellipse(
                            draws["mu"][s, c, [i, j]],
                            covs[s, c],
                            2,
                            fill=False,
                            ec=colors[c],
                            lw=0.6,
                            alpha=0.15,
                            zorder=3,
                            gid="posterior-ellipse",
                        )
                    )
        if mp is not None:
            ax.scatter(
                mp["mu"][:, i],
                mp["mu"][:, j],
                marker="X",
                s=110,
                c=colors,
                ec="white",
                lw=1.2,
                zorder=5,
                gid="map-means",
            )
        ax.set_xlim(limits[i])
        ax.set_ylim(limits[j])
        return _mark_beyond_2d(ax, X[:, [i, j]], limits[i], limits[j], point_rgb)

    def legend_handles(n_out: int) -> list:
        handles = [Patch(color=colors[c], label=f"component {c}") for c in range(k)]
        if ref is not None:
            label = _method_label(result, ref_group)
            handles += [
                Line2D([], [], color="0.2", lw=2, label=f"{label} 1 sd"),
                Line2D([], [], color="0.2", lw=2, ls="--", label=f"{label} 2 sd"),
            ]
        if draws is not None:
            handles.append(
                Line2D(
                    [],
                    [],
                    color="0.2",
                    lw=0.8,
                    alpha=0.5,
                    label=f"posterior draws, 2 sd (n = {draws['mu'].shape[0]})",
                )
            )
        if mp is not None:
            handles.append(
                Line2D(
                    [],
                    [],
                    marker="X",
                    ls="none",
                    color="0.2",
                    mec="white",
                    ms=10,
                    label="MAP mean",
                )
            )
        if n_out:
            handles.append(_beyond_handle(n_out))
        return handles

    source = "posterior mean" if draw_r is not None else _method_label(result, ref_group)
    colour_note = f"point colour = component colours mixed by {source} membership"
    if len(idx) == 2:
        i, j = idx
        fig, ax = _new_axes(ax, figsize=(7.5, 6.0))
        n_out = pair_panel(ax, i, j)
        ax.set_xlabel(_feature_label(result, names[i]))
        ax.set_ylabel(_feature_label(result, names[j]))
        title = f"Clusters: {names[i]} vs {names[j]} (K = {k})\n{colour_note}"
        if chosen_note:
            title += f"\n{chosen_note}"
        ax.set_title(title, fontsize="medium" if chosen_note else None)
        ax.legend(handles=legend_handles(n_out), fontsize="small", loc="best", framealpha=0.85)
        return fig

    # scatter matrix: pairs below the diagonal, each feature's marginal on it
    m = len(idx)
    fig = Figure(figsize=(2.8 * m + 2.2, 2.8 * m + 0.6), layout="constrained")
    axs = fig.subplots(m, m, squeeze=False)
    for r, j in enumerate(idx):
        for c_, i in enumerate(idx):
            a = axs[r, c_]
            if c_ > r:
                a.axis("off")  # kept (not hidden) so that the legend can sit in one of them
                continue
            if c_ == r:
                lim = limits[i]
                _hist_in_range(a, X[:, i], lim, color=_HIST_COLOR, edgecolor="white")
                if ref is not None:
                    grid = np.linspace(lim[0], lim[1], 300)
                    dens = _weighted_component_densities(grid, family.marginal(ref, i), family)
                    for c in range(k):
                        a.plot(grid, dens[:, c], color=colors[c], lw=1.3, ls="--")
                    a.plot(grid, dens.sum(-1), color=_EM_COLOR, lw=1.5)
                a.set_xlim(lim)
                a.set_ylim(bottom=0)
                a.set_yticks([])
                a.set_title(str(names[i]), fontsize="small")
                _mark_beyond_1d(a, X[:, i], lim)
            else:
                pair_panel(a, i, j)
            if r == m - 1:
                a.set_xlabel(_feature_label(result, names[i]), fontsize="small")
            if c_ == 0 and r > 0:
                a.set_ylabel(_feature_label(result, names[j]), fontsize="small")
    lo = np.array([limits[f][0] for f in idx])
    hi = np.array([limits[f][1] for f in idx])
    n_out = int(np.any((X[:, idx] < lo) | (X[:, idx] > hi), axis=1).sum())
    handles = legend_handles(n_out)
    if ref is not None:
        handles.append(
            Line2D(
                [],
                [],
                color=_EM_COLOR,
                lw=1.5,
                label=f"{_method_label(result, ref_group)} marginal density (diagonal)",
            )
        )
    axs[0, m - 1].legend(handles=handles, loc="upper right", fontsize="small", frameon=False)
    title = (
        f"Clusters: scatter matrix of {', '.join(str(names[f]) for f in idx)} (K = {k})\n"
        f"{colour_note}"
    )
    fig.suptitle(title, fontsize="medium")
    return fig


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
    ax.set_title(f"Membership uncertainty (N = {n}); line: {what}{band}")
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


# --------------------------------------------------------------------------------------------
# MCMC diagnostics (arviz-plots) and predictive checks
# --------------------------------------------------------------------------------------------


def _default_var_names(result: xr.DataTree) -> list[str]:
    post = result["posterior"]
    return [v for v in _family(result).trace_variables if v in post.data_vars]


def _relabelled(result: xr.DataTree, method: str = "stephens") -> xr.DataTree:
    """The result with posterior labels aligned to the EM / MAP labels.

    A tree that :func:`bayesmix.results.relabel` has already aligned (it has a ``relabel``
    group) is returned as it is.
    """
    if "posterior" not in result.children or "relabel" in result.children:
        return result
    if result["posterior"].sizes.get("component", 1) < 2:
        return result
    from bayesmix.results import relabel

    ref = next((g for g in ("em", "map") if g in result.children), "pivot")
    return relabel(result, method=method, reference=ref)


def _pc_figure(pc) -> Figure:
    return pc.viz["figure"].item()


#: Trace and rank plots show ``mu``/``sigma``/``p`` of at most this many features by default.
MAX_DIAGNOSTIC_FEATURES = 3


def _diagnostic_blocks(
    post: xr.Dataset, var_names: Sequence[str], feats: Sequence[Any]
) -> dict[str, xr.DataArray]:
    """One variable per chosen feature (``mu[waiting]``), so each gets its own row or panels.

    Features on very different scales share no axis this way; a feature dim of length one is
    dropped; matrices (``cov``, ``corr``) give their lower-triangle entries among ``feats``.
    """
    out = {}
    for name in var_names:
        da = post[name]
        if "feature" not in da.dims:
            out[name] = da
        elif "feature_bis" in da.dims:
            for a, fa in enumerate(feats):
                for fb in feats[: a + 1]:
                    if name == "corr" and fa == fb:
                        continue  # the diagonal of a correlation matrix is 1
                    out[f"{name}[{fa}, {fb}]"] = da.sel(feature=fa, feature_bis=fb, drop=True)
        elif da.sizes["feature"] == 1:
            out[name] = da.isel(feature=0, drop=True)
        else:
            for f in feats:
                out[f"{name}[{f}]"] = da.sel(feature=f, drop=True)
    return out


def _n_panels(blocks: dict[str, xr.DataArray], fn_name: str) -> int:
    """Panels arviz-plots makes: rank, one per scalar; compact trace, two per variable."""
    if fn_name == "plot_trace_dist":
        return 2 * len(blocks)
    sample = ("chain", "draw")
    return sum(
        int(np.prod([n for d, n in da.sizes.items() if d not in sample])) for da in blocks.values()
    )


def _choose_blocks(
    post: xr.Dataset,
    var_names: list[str],
    features: Sequence[Any] | None,
    fn_name: str,
    budget: int,
) -> tuple[dict[str, xr.DataArray], str]:
    """The variables to draw within ``budget`` panels, and a note on what was left out."""
    all_feats = list(post["feature"].values) if "feature" in post.dims else []
    per_feature = [v for v in var_names if "feature" in post[v].dims]
    wide = bool(per_feature) and len(all_feats) > 1
    if features is not None and wide:
        feats = [all_feats[i] for i in _resolve_features(all_feats, features, fn_name)]
    else:
        feats = all_feats[:MAX_DIAGNOSTIC_FEATURES] if wide else all_feats
    notes = []
    k = post.sizes.get("component", 1)
    if fn_name == "plot_rank" and k > budget:
        post = post.isel(component=slice(0, budget))
        notes.append(f"components 0-{budget - 1} of {k}")
    n_feats = len(feats)
    blocks = _diagnostic_blocks(post, var_names, feats)
    while wide and n_feats > 1 and _n_panels(blocks, fn_name) > budget:
        n_feats -= 1
        blocks = _diagnostic_blocks(post, var_names, feats[:n_feats])
    if _n_panels(blocks, fn_name) > budget:  # still too many: drop whole variables from the end
        kept: dict[str, xr.DataArray] = {}
        for name, da in blocks.items():
            if _n_panels({**kept, name: da}, fn_name) > budget:
                break
            kept[name] = da
        notes.append(f"the first {len(kept)} of {len(blocks)} variables")
        blocks = kept
    if wide and n_feats < len(all_feats):
        shown = ", ".join(str(f) for f in feats[:n_feats])
        notes.insert(
            0,
            f"{'/'.join(per_feature)} of feature{'s' if n_feats > 1 else ''} {shown} "
            f"({n_feats} of {len(all_feats)})",
        )
    note = ""
    if notes:
        note = (
            f"showing {'; '.join(notes)}; choose with {_how_to_choose('var_names')}"
            f" (at most {budget} panels)"
        )
    return blocks, note


def _arviz_diagnostic(
    result, var_names, features, relabel, fn_name: str, title: str, **kw
) -> Figure:
    import arviz as az  # heavy import, only when asked

    _require_group(result, "posterior", fn_name)
    if relabel:
        result = _relabelled(result)
    var_names = list(var_names) if var_names is not None else _default_var_names(result)
    missing = [v for v in var_names if v not in result["posterior"].data_vars]
    if missing or not var_names:
        raise ParameterError(
            f"unknown variables in {fn_name}: expected some of "
            f"{sorted(result['posterior'].data_vars)}, got {missing or 'none'}; fix var_names"
        )
    budget = int(az.rcParams["plot.max_subplots"])
    blocks, note = _choose_blocks(
        result["posterior"].to_dataset(), var_names, features, fn_name, budget
    )
    post = xr.Dataset(blocks)
    # arviz-plots needs index coordinates on the sample dims to tell chains apart
    post = post.assign_coords(
        {d: np.arange(post.sizes[d]) for d in ("chain", "draw") if d not in post.coords}
    )
    groups = {"posterior": post}
    if "sample_stats" in result.children:
        groups["sample_stats"] = result["sample_stats"].to_dataset()
    tree = xr.DataTree.from_dict(groups)
    if fn_name == "plot_trace_dist" and "component" in post.dims:
        # colour by component (the same colours as the other figures), chains by line style
        kw = {
            "aes": {"color": ["component"], "linestyle": ["chain"]},
            "color": component_colors(max(post.sizes["component"], 3)),
            **kw,
        }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        pc = getattr(az, fn_name)(tree, var_names=list(post.data_vars), backend="matplotlib", **kw)
    fig = _pc_figure(pc)
    n_chains = post.sizes["chain"]
    if "color" in kw.get("aes", {}):
        handles = [
            Line2D([], [], color=c, lw=2, label=f"component {i}")
            for i, c in enumerate(component_colors(post.sizes["component"]))
        ]
        styles = ["-", "--", ":", "-."]
        handles += [
            Line2D([], [], color="0.3", ls=styles[c], label=f"chain {c}")
            for c in range(min(n_chains, len(styles)))
        ]
    else:
        handles = _chain_handles(pc, "ecdf_lines")
    title += " (labels aligned)" if relabel else ""
    if note:
        title += "\n" + note
    _arrange_arviz_figure(
        fig,
        title,
        handles,
        hspace=1.0 if fn_name == "plot_rank" else None,
        stretch=1.3 if fn_name == "plot_rank" else 1.0,
    )
    return fig


def _chain_handles(pc, visual: str) -> list[Line2D]:
    """Legend entries ``chain c`` with the colours arviz-plots gave the chains."""
    try:
        lines = pc.viz[visual].to_dataset()
    except KeyError:
        return []
    da = next(iter(lines.data_vars.values()), None)
    if da is None or "chain" not in da.dims:
        return []
    da = da.isel({d: 0 for d in da.dims if d != "chain"})
    return [
        Line2D([], [], color=ln.get_color(), lw=2, label=f"chain {c}")
        for c, ln in zip(da["chain"].values, da.values, strict=True)
    ]


def _arrange_arviz_figure(fig: Figure, title: str, handles, hspace=None, stretch=1.0) -> None:
    """Room for a title on top and a legend column on the right; panel sizes are kept.

    ``stretch`` > 1 makes the panel area taller (room between rows for titles and labels).
    """
    width, height = fig.get_size_inches()
    sp = fig.subplotpars
    ncols = 1 if len(handles) <= 8 else 2
    extra_w = 1.6 * ncols if handles else 0.0
    # fixed room for the title (per line), whatever arviz-plots left there
    top_in = 0.45 + 0.25 * (title.count("\n") + 1)
    bottom_in, panels_in = sp.bottom * height, (sp.top - sp.bottom) * height * stretch
    new_w, new_h = width + extra_w, bottom_in + panels_in + top_in
    left, right = sp.left * width / new_w, sp.right * width / new_w
    top = 1.0 - top_in / new_h
    fig.set_size_inches(new_w, new_h)
    fig.subplots_adjust(
        left=left,
        right=right,
        top=top,
        bottom=bottom_in / new_h,
        hspace=hspace if hspace is not None else sp.hspace,
    )
    fig.suptitle(title, x=(left + right) / 2, y=1.0 - 0.08 / new_h, va="top")
    if handles:
        fig.legend(
            handles=handles,
            loc="upper left",
            bbox_to_anchor=(right + 0.01, top),
            fontsize="small",
            frameon=False,
            ncols=ncols,
        )


def plot_trace(
    result: xr.DataTree,
    var_names: Sequence[str] | None = None,
    *,
    features: Sequence[Any] | None = None,
    relabel: bool = False,
) -> Figure:
    """Trace and marginal density of posterior draws (``arviz.plot_trace_dist``).

    One row per variable and feature (``mu[waiting]``), components in their colours. With many
    features only some are shown (the title says which and how to choose others), so the
    figure stays readable and within ArviZ's ``plot.max_subplots``.

    Parameters
    ----------
    result : xarray.DataTree
        Result with a ``posterior`` group.
    var_names : sequence of str, optional
        Variables to show (default: ``w``, ``mu``, ``sigma``; ``w`` for Bernoulli).
    features : sequence of str or int, optional
        Features whose ``mu``/``sigma``/``p`` (and ``cov``/``corr`` entries) are shown.
        Default: the first :data:`MAX_DIAGNOSTIC_FEATURES`. Fewer are shown when they would
        need more than ``arviz.rcParams["plot.max_subplots"]`` panels.
    relabel : bool
        Align component labels across draws first (``bayesmix.results.relabel``, else an
        internal alignment to the EM/MAP labels).

    Returns
    -------
    matplotlib.figure.Figure
    """
    return _arviz_diagnostic(
        result, var_names, features, relabel, "plot_trace_dist", "Trace plots"
    )


def plot_rank(
    result: xr.DataTree,
    var_names: Sequence[str] | None = None,
    *,
    features: Sequence[Any] | None = None,
    relabel: bool = False,
) -> Figure:
    """Rank (fractional ECDF) plots of posterior draws per chain (``arviz.plot_rank``).

    One panel per scalar (component and feature); as in :func:`plot_trace`, with many
    features or components only some are shown, within ArviZ's ``plot.max_subplots``.

    Parameters
    ----------
    result : xarray.DataTree
        Result with a ``posterior`` group (two or more chains to be informative).
    var_names : sequence of str, optional
        As in :func:`plot_trace`.
    features : sequence of str or int, optional
        As in :func:`plot_trace`.
    relabel : bool
        As in :func:`plot_trace`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    return _arviz_diagnostic(result, var_names, features, relabel, "plot_rank", "Rank plots")


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


def plot_ppc(
    result: xr.DataTree,
    *,
    n_draws: int = 50,
    max_features: int = 6,
    features: Sequence[Any] | None = None,
    axes=None,
    seed: int = 0,
) -> Figure:
    """Posterior predictive check, per feature.

    Gaussian: for each feature, the observed histogram and KDE against the KDEs of ``n_draws``
    replicated data sets from ``posterior_predictive``. The axis follows the bulk of the
    observed data; far values are marked at the edge, and the curves are the KDEs of the
    values on the axis scaled by their share, so one far point cannot flatten them.
    Bernoulli: per feature (pixel), the observed frequency of ones against the 5-95% range of
    replicated frequencies.

    Parameters
    ----------
    result : xarray.DataTree
        Result with ``observed_data`` and ``posterior_predictive`` (variable ``x``).
    n_draws : int
        Replicated data sets drawn.
    max_features : int
        Gaussian: at most this many features get a panel (the first ones, or the first of
        ``features``); the title says when some are left out.
    features : sequence of str or int, optional
        Gaussian: the features to show (default: all, up to ``max_features``).
    axes : array of matplotlib.axes.Axes, optional
    seed : int

    Returns
    -------
    matplotlib.figure.Figure
    """
    X, names = _observed(result)
    pp = _require_group(result, "posterior_predictive", "plot_ppc")["x"]
    if "feature" not in pp.dims:
        pp = pp.expand_dims(feature=names, axis=-1)
    stacked = pp.stack(sample=("chain", "draw")).transpose("sample", "obs_id", "feature")
    rng = np.random.default_rng(seed)
    n_total = stacked.sizes["sample"]
    idx = np.sort(rng.choice(n_total, size=min(n_draws, n_total), replace=False))

    if _family(result).ppc_style == "frequency":
        rep = np.asarray(stacked.isel(sample=idx).values, dtype=float)  # (S, N, D)
        fig, ax = _new_axes(axes[0] if axes is not None else None, figsize=(10, 4))
        freq = rep.mean(1)  # (S, D)
        lo, hi = np.quantile(freq, [0.05, 0.95], axis=0)
        pos = np.arange(X.shape[1])
        ax.vlines(pos, lo, hi, color=_POSTERIOR_COLOR, lw=3, alpha=0.6, label="replicated, 5-95%")
        ax.plot(pos, X.mean(0), "o", ms=3, color=_EM_COLOR, label="observed")
        ax.set_xlabel("feature (pixel index)")
        ax.set_ylabel("frequency of ones")
        ax.set_title(f"Posterior predictive check: per-feature frequency ({len(idx)} replicates)")
        ax.legend(fontsize="small")
        return fig

    if max_features < 1:
        raise ParameterError(
            f"plot_ppc max_features: expected an integer >= 1, got {max_features!r}; "
            "pass how many feature panels to draw"
        )
    if _family(result).ppc_style == "counts":
        return _ppc_counts(result, X, names, stacked, idx, max_features, features, axes)
    cols = (
        list(range(X.shape[1]))
        if features is None
        else _resolve_features(names, features, "plot_ppc")
    )
    shown = cols[:max_features]
    # only the replicated values of the features shown (a wide data set has many)
    rep = np.asarray(
        stacked.isel(sample=idx, feature=shown).values, dtype=float
    )  # (S, N, len(shown))
    fig, axs = _grid_axes(len(shown), 3, (4.8, 3.6), axes)
    for p, j in enumerate(shown):
        ax = axs[p]
        x = X[:, j]
        _, _, f_lo, f_hi = _bulk_range(x)
        # widen to the replicates' bulk, but never past the observed data's fence
        r_lo, r_hi = np.quantile(rep[:, :, p], _BULK_QUANTILES)
        lim = _axis_limits(x, pad=0.03, include=(max(r_lo, f_lo), min(r_hi, f_hi)))
        grid = np.linspace(lim[0], lim[1], 300)
        _hist_in_range(
            ax,
            x,
            lim,
            color=_HIST_COLOR,
            edgecolor="white",
            label="observed (histogram)",
        )
        for s in range(rep.shape[0]):
            ax.plot(
                grid,
                _kde_in_range(rep[s, :, p], lim, grid),
                color=_POSTERIOR_COLOR,
                lw=0.6,
                alpha=0.25,
                label="replicated (KDE)" if s == 0 else None,
                gid="ppc-draw",
            )
        ax.plot(
            grid,
            _kde_in_range(x, lim, grid),
            color=_EM_COLOR,
            lw=2,
            label="observed (KDE)",
            gid="ppc-observed",
        )
        ax.set_xlim(lim)
        n_out = _mark_beyond_1d(ax, x, lim)
        ax.set_xlabel(_feature_label(result, names[j]))
        ax.set_ylabel("density")
        ax.set_ylim(bottom=0)
        handles, _ = ax.get_legend_handles_labels()
        if n_out:
            handles.append(_beyond_handle(n_out))
        if p == 0 or n_out:
            ax.legend(handles=handles if p == 0 else handles[-1:], fontsize="small", frameon=False)
    title = f"Posterior predictive check ({len(idx)} replicated data sets)"
    if len(shown) < X.shape[1]:
        title += (
            f"\nfeatures {', '.join(str(names[j]) for j in shown)} ({len(shown)} of "
            f"{X.shape[1]}); choose others with {_how_to_choose('features')}"
        )
    fig.suptitle(title)
    return fig


def _ppc_counts(result, X, names, stacked, idx, max_features, features, axes) -> Figure:
    """Per feature: the observed frequency of each value against the replicates' 5-95%."""
    cols = (
        list(range(X.shape[1]))
        if features is None
        else _resolve_features(names, features, "plot_ppc")
    )
    shown = cols[:max_features]
    rep = np.asarray(stacked.isel(sample=idx, feature=shown).values, dtype=float)
    fig, axs = _grid_axes(len(shown), 3, (4.8, 3.6), axes)
    for p, j in enumerate(shown):
        ax = axs[p]
        x = X[:, j]
        top = int(max(np.quantile(x, 0.995), 1))
        values = np.arange(top + 1)
        obs = np.array([(x == v).mean() for v in values])
        reps = (rep[:, :, p][:, :, None] == values).mean(axis=1)  # (S, V)
        lo, hi = np.quantile(reps, [0.05, 0.95], axis=0)
        ax.vlines(values, lo, hi, color=_POSTERIOR_COLOR, lw=4, alpha=0.6, gid="ppc-draw")
        ax.plot(values, obs, "o", ms=4, color=_EM_COLOR, gid="ppc-observed")
        ax.set_xlabel(_feature_label(result, names[j]))
        ax.set_ylabel("share of observations")
        ax.set_ylim(bottom=0)
        if p == 0:
            ax.legend(
                handles=[
                    Line2D(
                        [], [], color=_POSTERIOR_COLOR, lw=4, alpha=0.6, label="replicated, 5-95%"
                    ),
                    Line2D([], [], color=_EM_COLOR, marker="o", ls="", label="observed"),
                ],
                fontsize="small",
                frameon=False,
            )
    fig.suptitle(
        f"Posterior predictive check\nshare of each value ({len(idx)} replicated data sets)"
    )
    return fig


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


# --------------------------------------------------------------------------------------------
# EM history and model selection
# --------------------------------------------------------------------------------------------


def plot_em_history(result_or_estimator: Any, *, axes=None) -> Figure:
    """EM objective per iteration, and its increase per iteration on a log scale.

    Parameters
    ----------
    result_or_estimator : xarray.DataTree or fitted estimator
        A result with an ``em`` group holding ``lower_bounds`` (iteration), or an estimator with
        ``lower_bounds_`` (array of shape (n_iter,)).
    axes : pair of matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    obj = result_or_estimator
    method = "ml"
    converged = None
    if isinstance(obj, xr.DataTree):
        em = _require_group(obj, "em", "plot_em_history")
        if "lower_bounds" not in em.data_vars:
            raise DataError(
                "plot_em_history needs the EM history: expected variable 'lower_bounds' in the "
                f"'em' group, got {sorted(em.data_vars)}; refit with fit_em"
            )
        lb = np.asarray(em["lower_bounds"].values, dtype=float)
        method = str(em.attrs.get("method", "ml"))
        converged = em.attrs.get("converged")
    elif hasattr(obj, "lower_bounds_"):
        lb = np.asarray(obj.lower_bounds_, dtype=float)
        converged = getattr(obj, "converged_", None)
    else:
        raise ParameterError(
            "plot_em_history: expected a DataTree with an 'em' group or a fitted EM estimator, "
            f"got {type(obj).__name__}; fit first"
        )
    lb = lb[np.isfinite(lb)]
    if lb.size == 0:
        raise DataError(
            "plot_em_history: expected at least one finite objective value, got none; "
            "check the fit"
        )
    fig, axs = _grid_axes(2, 2, (5.0, 3.8), axes)
    it = np.arange(1, lb.size + 1)
    what = "log posterior" if method == "map" else "log-likelihood"
    axs[0].plot(it, lb, "o-", color=_OKABE_ITO[0], ms=3, lw=1.5)
    n_off = _n_off_scale(lb)
    if n_off:
        # a first value far below the rest (e.g. a start far from the data) would flatten
        # the curve: keep the axis on the rest and say where the first values are
        rest = lb[n_off:]
        pad = 0.08 * (rest.max() - rest.min()) or 0.05 * abs(rest.max()) or 1.0
        axs[0].set_ylim(rest.min() - pad, rest.max() + pad)
        off = ", ".join(f"{v:.3g}" for v in lb[:n_off])
        axs[0].annotate(
            f"iteration{'s' if n_off > 1 else ''} 1{f'-{n_off}' if n_off > 1 else ''} "
            f"off scale: {off}",
            xy=(0.98, 0.04),
            xycoords="axes fraction",
            ha="right",
            fontsize="small",
            color=_OKABE_ITO[3],
        )
    axs[0].set_xlabel("iteration")
    axs[0].set_ylabel(f"EM objective ({what} lower bound)")
    axs[0].set_title("Objective per iteration")
    if lb.size > 1:
        inc = np.diff(lb)
        pos = inc > 0
        axs[1].semilogy(
            it[1:][pos], inc[pos], "o-", color=_OKABE_ITO[0], ms=3, lw=1.2, label="increase"
        )
        if (~pos).any():
            axs[1].semilogy(
                it[1:][~pos],
                np.abs(inc[~pos]) + 1e-300,
                "v",
                color=_OKABE_ITO[3],
                ms=6,
                ls="none",
                label="decrease (should not happen)",
            )
        axs[1].legend(fontsize="small")
    axs[1].set_xlabel("iteration")
    axs[1].set_ylabel("change of objective (log scale)")
    axs[1].set_title("Convergence")
    status = {True: "converged", False: "NOT converged"}.get(
        None if converged is None else bool(converged), ""
    )
    fig.suptitle(f"EM history: {lb.size} iterations, final {lb[-1]:.6g} {status}".strip())
    return fig


def _n_off_scale(lb: np.ndarray, max_points: int = 3) -> int:
    """Number of leading objective values whose jump to the next dwarfs all later progress."""
    n = 0
    while n < min(max_points, lb.size - 2):
        jump = lb[n + 1] - lb[n]
        later = lb[n + 1 :].max() - lb[n + 1 :].min()
        if jump > 20 * max(later, 1e-12):
            n += 1
        else:
            break
    return n


_CRITERIA = {  # column -> (label, lower is better)
    "bic": ("BIC", True),
    "aic": ("AIC", True),
    "icl": ("ICL", True),
    "elpd_loo": ("ELPD (LOO)", False),
}


def plot_k_selection(table: Any, *, criteria: Sequence[str] | None = None, axes=None) -> Figure:
    """Information criteria against the number of components, per covariance type.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per fit with columns ``k`` and criteria among ``bic``, ``aic``, ``icl``,
        ``elpd_loo`` (optional ``elpd_loo_se``/``se`` for error bars) and optionally
        ``covariance_type``. Lower is better except for ``elpd_loo``.
    criteria : sequence of str, optional
        Columns to show (default: those present).
    axes : array of matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
        Each panel stars the recommended row: ``table.attrs["recommended"]`` (and
        ``"recommended_covariance"``) as set by ``bayesmix.results.select_k`` when present
        (for LOO the smallest K within one standard error of the best), else the best value.
        The figure title gives the K recommended by the first criterion shown.
    """
    df = pd.DataFrame(table).copy()
    if "k" not in df.columns:
        raise DataError(
            f"plot_k_selection: expected a column 'k', got {list(df.columns)}; "
            "pass the table from bayesmix.results.select_k"
        )
    if criteria is None:
        criteria = [c for c in _CRITERIA if c in df.columns and df[c].notna().any()]
    unknown = [c for c in criteria if c not in df.columns]
    if unknown or not criteria:
        raise ParameterError(
            f"plot_k_selection: expected criteria among {list(_CRITERIA)} present in the table, "
            f"got {unknown or 'none'}; columns are {list(df.columns)}"
        )
    attrs = getattr(table, "attrs", None) or {}
    rec_k = dict(attrs.get("recommended") or {})
    rec_cov = dict(attrs.get("recommended_covariance") or {})
    fill = str(df["family"].iloc[0]) if "family" in df.columns and len(df) else "-"
    if "covariance_type" not in df.columns:
        df["covariance_type"] = fill
    df["covariance_type"] = [fill if pd.isna(c) else str(c) for c in df["covariance_type"]]
    types = list(dict.fromkeys(df["covariance_type"]))
    colors = component_colors(max(len(types), 1))
    markers = "osD^vP*X"
    fig, axs = _grid_axes(len(criteria), 2, (5.2, 3.8), axes)
    recommended = None
    for ci, crit in enumerate(criteria):
        ax = axs[ci]
        label, lower_better = _CRITERIA.get(crit, (crit, True))
        for ti, ctype in enumerate(types):
            sub = df[df["covariance_type"] == ctype].sort_values("k")
            se_col = next(
                (c for c in (f"{crit}_se", "se") if crit == "elpd_loo" and c in sub), None
            )
            yerr = sub[se_col].to_numpy(float) if se_col else None
            ax.errorbar(
                sub["k"],
                sub[crit],
                yerr=yerr,
                color=colors[ti],
                marker=markers[ti % len(markers)],
                ms=5,
                lw=1.5,
                capsize=3,
                label=str(ctype),
            )
        row = _recommended_row(df, crit, lower_better, rec_k, rec_cov, fill)
        ax.plot(
            row["k"],
            row[crit],
            marker="*",
            ms=18,
            color="none",
            mec="black",
            mew=1.5,
            ls="none",
            label=f"recommended: K = {row['k']} ({row['covariance_type']})",
            gid="recommended",
            clip_on=False,
            zorder=5,
        )
        ax.margins(x=0.07, y=0.08)
        if recommended is None:
            recommended = (label, row)
        ax.set_xlabel("number of components K")
        ax.set_ylabel(f"{label} ({'lower' if lower_better else 'higher'} is better)")
        ax.set_title(label)
        ax.xaxis.set_major_locator(mpl.ticker.MaxNLocator(integer=True))
        ax.legend(fontsize="small", title="covariance", title_fontsize="small")
    label, row = recommended
    fig.suptitle(
        f"Choice of K: {label} recommends K = {row['k']} (covariance {row['covariance_type']})"
    )
    return fig


def _recommended_row(df, crit: str, lower_better: bool, rec_k: dict, rec_cov: dict, fill: str):
    """The row to star for one criterion.

    ``table.attrs["recommended"]`` (from ``select_k``) when it names this criterion, else the
    best value (lowest, or highest for ELPD).
    """
    key = "loo" if crit == "elpd_loo" else crit
    if key in rec_k:
        hit = df[(df["k"] == rec_k[key]) & df[crit].notna()]
        if key in rec_cov:
            cov = fill if rec_cov[key] is None or pd.isna(rec_cov[key]) else str(rec_cov[key])
            hit = hit[hit["covariance_type"] == cov]
        if len(hit):
            return hit.iloc[0]
    vals = df[crit].to_numpy(float)
    return df.iloc[int(np.nanargmin(vals) if lower_better else np.nanargmax(vals))]


# --------------------------------------------------------------------------------------------
# Bernoulli images
# --------------------------------------------------------------------------------------------


def _image_grid(n: int, ncols: int | None = None):
    ncols = ncols or int(np.ceil(np.sqrt(n)))
    nrows = int(np.ceil(n / ncols))
    return nrows, ncols


def plot_component_images(
    result: xr.DataTree,
    *,
    group: str = "em",
    shape: tuple[int, int] = (8, 8),
    n_draws: int = 200,
    seed: int = 0,
) -> Figure:
    """Component means of a Bernoulli mixture as images, with their weights in the titles.

    Parameters
    ----------
    result : xarray.DataTree
        Bernoulli result (``p`` of shape (K, D) with D = prod(shape)).
    group : {"em", "map", "posterior"}
        Which estimate: a point estimate, or the posterior mean of ``n_draws`` draws aligned to
        the EM (else MAP) labels.
    shape : (int, int)
        Image shape (rows, columns).
    n_draws : int
        Posterior draws averaged when ``group="posterior"``.
    seed : int

    Returns
    -------
    matplotlib.figure.Figure
    """
    if group not in ("em", "map", "posterior"):
        raise ParameterError(
            f"unknown group in plot_component_images: expected 'em', 'map' or 'posterior', "
            f"got {group!r}; pick one of those"
        )
    _require_group(result, group, "plot_component_images")
    if group == "posterior":
        draws = _draw_params(_relabelled(result, "pivot"), "posterior", n_draws, seed)
        p, w = draws["p"].mean(0), draws["w"].mean(0)
        what = f"posterior mean of {draws['p'].shape[0]} draws"
    else:
        params = _point_params(result, group)
        if "p" not in params:
            raise DataError(
                f"plot_component_images needs Bernoulli parameters: expected 'p' in the "
                f"'{group}' group, got {sorted(params)}; use a Bernoulli result"
            )
        p, w = params["p"], params["w"]
        what = _method_label(result, group) if group == "em" else "MAP"
    k, d = p.shape
    if int(np.prod(shape)) != d:
        raise ParameterError(
            f"image shape does not fit the features: expected prod(shape) = {d}, got "
            f"{shape}; pass shape=(rows, cols) with rows * cols = {d}"
        )
    order = np.argsort(-w, kind="stable")
    nrows, ncols = _image_grid(k, min(k, 5))
    fig = Figure(figsize=(1.9 * ncols + 0.8, 2.1 * nrows + 0.5), layout="constrained")
    axs = np.ravel(fig.subplots(nrows, ncols, squeeze=False))
    im = None
    for a, c in zip(axs, order, strict=False):
        im = a.imshow(p[c].reshape(shape), cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
        a.set_title(f"k = {c}, w = {w[c]:.3f}", fontsize="medium")
        a.set_xticks([])
        a.set_yticks([])
    for a in axs[k:]:
        a.set_visible(False)
    fig.colorbar(im, ax=axs[:k].tolist(), shrink=0.8, label="P(pixel = 1)")
    fig.suptitle(f"Component means, {what}; ordered by weight w")
    return fig


def plot_generated_images(
    images: Any,
    *,
    shape: tuple[int, int] = (8, 8),
    n: int = 25,
    labels: Sequence[Any] | None = None,
    title: str = "Generated images",
) -> Figure:
    """A grid of (binary) images, for example draws from a fitted Bernoulli mixture.

    Parameters
    ----------
    images : array of shape (M, D) or (M, rows, cols), or tuple (X, z)
        Images; a tuple ``(X, z)`` as returned by ``generate`` uses ``z`` as labels.
    shape : (int, int)
        Image shape when ``images`` is flat.
    n : int
        Number of images shown (the first ``n``).
    labels : sequence, optional
        One label per image, shown as the panel title (for example the component).
    title : str
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if isinstance(images, tuple) and len(images) == 2:
        images, z = images
        labels = z if labels is None else labels
    arr = np.asarray(images, dtype=float)
    if arr.ndim == 2:
        if arr.shape[1] != int(np.prod(shape)):
            raise ParameterError(
                f"image shape does not fit the features: expected prod(shape) = {arr.shape[1]},"
                f" got {shape}; pass shape=(rows, cols)"
            )
        arr = arr.reshape((arr.shape[0], *shape))
    if arr.ndim != 3 or arr.shape[0] == 0:
        raise DataError(
            f"plot_generated_images: expected images of shape (M, D) or (M, rows, cols) with "
            f"M >= 1, got shape {np.shape(images)}; pass an array of images"
        )
    m = min(n, arr.shape[0])
    nrows, ncols = _image_grid(m)
    fig = Figure(figsize=(1.35 * ncols + 0.3, 1.45 * nrows + 0.5), layout="constrained")
    axs = np.ravel(fig.subplots(nrows, ncols, squeeze=False))
    for i, a in enumerate(axs):
        if i >= m:
            a.set_visible(False)
            continue
        a.imshow(arr[i], cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
        a.set_xticks([])
        a.set_yticks([])
        if labels is not None:
            a.set_title(f"k = {labels[i]}", fontsize="small")
    fig.suptitle(f"{title} ({m} of {arr.shape[0]})")
    return fig


# --------------------------------------------------------------------------------------------
# saving
# --------------------------------------------------------------------------------------------


def save_figure(fig: Figure, path: str | os.PathLike, *, dpi: int = _DEFAULT_DPI) -> Path:
    """Write ``fig`` as a PNG atomically (temporary file in the same folder, then rename).

    The file gets the usual permissions (``0o666`` less the umask), see
    :func:`bayesmix._files.atomic_path`.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    path : str or path-like
        Target file; parent folders are created.
    dpi : int
        Resolution.

    Returns
    -------
    pathlib.Path
        The written path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return path


# --------------------------------------------------------------------------------------------
# the plots of one result, as the command line writes them
# --------------------------------------------------------------------------------------------


def _view_images(result, X, features, groups):
    """Square binary images (digits: 8x8): the components and generated images."""
    d = X.shape[1]
    side = int(round(d**0.5))
    if side * side != d or d < 4:
        return []
    from bayesmix.inference import generate
    from bayesmix.inference._tree import estimate_group

    shape = (side, side)
    grp = "em" if "em" in groups else estimate_group(result)
    return [
        ("component_images", lambda: plot_component_images(result, group=grp, shape=shape)),
        (
            "generated_images",
            lambda: plot_generated_images(
                generate(result, 25, group=estimate_group(result), random_seed=0), shape=shape
            ),
        ),
    ]


def _view_clusters(result, X, features, groups):
    """One feature's density, or the components in a pair (or a scatter matrix) of features."""
    if X.shape[1] == 1 or (features is not None and len(features) == 1):
        first = None if features is None else features[0]
        return [("density_1d", lambda: plot_density_1d(result, feature=first))]
    pair = None if features is None else features[:MAX_MATRIX_FEATURES]
    return [("clusters_2d", lambda: plot_clusters_2d(result, features=pair))]


def _view_counts(result, X, features, groups):
    return [("counts", lambda: plot_count_histogram(result))]


def _view_item_profiles(result, X, features, groups):
    return [("item_profiles", lambda: plot_item_profiles(result))]


def _view_membership(result, X, features, groups):
    return [("membership_uncertainty", lambda: plot_membership_uncertainty(result))]


#: The data views a family can ask for in ``Family.plots``: name -> (result, X, features,
#: groups) -> list of (figure name, callable).
_DATA_VIEWS: dict[str, Callable[..., list[tuple[str, Callable[[], Figure]]]]] = {
    "images": _view_images,
    "clusters": _view_clusters,
    "membership_uncertainty": _view_membership,
    "counts": _view_counts,
    "item_profiles": _view_item_profiles,
}


def plot_plan(
    result: xr.DataTree, *, features: Sequence[Any] | None = None
) -> list[tuple[str, Callable[[], Figure]]]:
    """The plots that apply to a result: (file stem, function returning the Figure).

    The family and covariance come from the result's root attrs (see :func:`write_plots`).
    Bernoulli with square images (D = side**2 >= 4): ``component_images``,
    ``generated_images``. Gaussian: ``density_1d`` (D = 1, or one feature chosen) or
    ``clusters_2d`` (a pair, or a scatter matrix of up to :data:`MAX_MATRIX_FEATURES` chosen
    features), then ``membership_uncertainty``. Then ``em_history`` (with an ``em`` group),
    ``trace`` and ``rank`` (with a ``posterior``), ``ppc`` (with a ``posterior_predictive``).
    Nothing is drawn until a function is called.

    Parameters
    ----------
    result : xarray.DataTree
    features : sequence of str or int, optional
        Features the figures concentrate on (clusters, trace, rank, PPC); checked here, so an
        unknown name fails at once. Default: each figure's own choice.

    Returns
    -------
    list of (str, callable)

    Raises
    ------
    ParameterError
        For an unknown or repeated feature.
    """
    X, names = _observed(result)
    if features is not None:
        idx = _resolve_features(names, features, "plot_plan")
        if not idx:
            raise ParameterError(
                "plot_plan features: expected at least one feature, got none; pass names "
                f"among {names} or leave features out"
            )
        features = [names[i] for i in idx]
    groups = set(result.children)
    family = _family(result)
    plan: list[tuple[str, Callable[[], Figure]]] = []
    for view in family.plots:
        builder = _DATA_VIEWS.get(view)
        if builder is not None:
            plan.extend(builder(result, X, features, groups))
    if "em" in groups:
        plan.append(("em_history", lambda: plot_em_history(result)))
    if "posterior" in groups:
        # Bernoulli: K x D probabilities are too many to draw; the weights tell the story
        plan.append(("trace", lambda: plot_trace(result, features=features)))
        if result["posterior"].sizes.get("chain", 1) > 1:  # rank plots compare chains
            plan.append(("rank", lambda: plot_rank(result, features=features)))
    if "posterior_predictive" in groups:
        plan.append(("ppc", lambda: plot_ppc(result, features=features)))
    return plan


#: Whose words the figures use to say how to choose what they show: ``"python"`` (keyword
#: arguments) or ``"cli"`` (the ``bayesmix`` command's ``--features``); set by write_plots.
_HINT_STYLE: contextvars.ContextVar[str] = contextvars.ContextVar(
    "bayesmix_plot_hints", default="python"
)


def _how_to_choose(what: str) -> str:
    """``features=[...]`` (or with ``var_names``) for Python users, ``--features`` in the CLI."""
    if _HINT_STYLE.get() == "cli":
        return "--features"
    return "var_names=[...] and features=[...]" if what == "var_names" else "features=[...]"


def write_plots(
    result: xr.DataTree,
    folder: str | os.PathLike,
    *,
    features: Sequence[Any] | None = None,
    raise_errors: bool = False,
    hints: str = "python",
) -> tuple[dict[str, Path], dict[str, str]]:
    """Write every plot of :func:`plot_plan` as ``folder/<name>.png``.

    A plot that fails does not stop the others: it is returned with a one-line reason (for
    the report), unless ``raise_errors``.

    Parameters
    ----------
    result : xarray.DataTree
    folder : path-like
        Created when missing.
    features : sequence of str or int, optional
        As in :func:`plot_plan`.
    raise_errors : bool
        Raise the first plot error instead of recording it (for debugging).
    hints : {"python", "cli"}
        Whose words a figure uses to say how to choose what it shows: keyword arguments
        (``features=[...]``) or the command line's ``--features``.

    Returns
    -------
    written : dict of str to pathlib.Path
        Plot name -> PNG file, in the order of the plan.
    failed : dict of str to str
        Plot name -> ``"<ExceptionType>: <message on one line>"``.
    """
    if hints not in ("python", "cli"):
        raise ParameterError(f"hints must be 'python' or 'cli', got {hints!r}; pass one of them")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    failed: dict[str, str] = {}
    token = _HINT_STYLE.set(hints)
    try:
        return _write_each(result, folder, features, raise_errors, written, failed)
    finally:
        _HINT_STYLE.reset(token)


def _write_each(result, folder: Path, features, raise_errors: bool, written, failed):
    import matplotlib.pyplot as plt  # arviz-plots draws through pyplot: its figures need closing

    for name, make in plot_plan(result, features=features):
        path = folder / f"{name}.png"
        fig = None
        try:
            fig = make()
            save_figure(fig, path)
        except Exception as exc:  # one bad plot must not throw away the others
            if raise_errors:
                raise
            failed[name] = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
        else:
            written[name] = path
        finally:
            if fig is not None:
                plt.close(fig)
    return written, failed
