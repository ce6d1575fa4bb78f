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

import os
import tempfile
import warnings
from collections.abc import Sequence
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
from bayesmix._validation import DataError, ParameterError

__all__ = [
    "FEATURE_UNITS",
    "component_colors",
    "plot_clusters_2d",
    "plot_component_images",
    "plot_density_1d",
    "plot_em_history",
    "plot_generated_images",
    "plot_k_selection",
    "plot_membership_uncertainty",
    "plot_ppc",
    "plot_rank",
    "plot_trace",
    "save_figure",
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


def _family(result: xr.DataTree) -> str:
    family = result.attrs.get("family")
    if family:
        return str(family)
    for group in ("em", "map", "posterior"):
        if group in result.children and "p" in result[group].data_vars:
            return "bernoulli"
    return "gaussian"


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


_PARAM_DIMS = {
    "w": ("component",),
    "mu": ("component", "feature"),
    "sigma": ("component", "feature"),
    "p": ("component", "feature"),
    "cov": ("component", "feature", "feature_bis"),
}


def _point_params(result: xr.DataTree, group: str) -> dict[str, np.ndarray]:
    """Parameters of a point-estimate group (``em`` or ``map``) as arrays without draw dims."""
    ds = result[group].to_dataset()
    out = {}
    for name, dims in _PARAM_DIMS.items():
        if name in ds.data_vars:
            out[name] = np.asarray(ds[name].transpose(*dims).values, dtype=float)
    return out


def _draw_params(
    result: xr.DataTree, group: str = "posterior", n_draws: int | None = None, seed: int = 0
) -> dict[str, np.ndarray]:
    """Parameters of a draws group as arrays with one leading ``sample`` dim.

    ``n_draws`` draws are taken at random without replacement (all when None or when fewer).
    """
    ds = result[group].to_dataset()
    names = [n for n in _PARAM_DIMS if n in ds.data_vars]
    stacked = ds[names].stack(sample=("chain", "draw"))
    n_total = stacked.sizes["sample"]
    if n_draws is not None and n_draws < n_total:
        idx = np.sort(np.random.default_rng(seed).choice(n_total, size=n_draws, replace=False))
        stacked = stacked.isel(sample=idx)
    return {
        n: np.asarray(stacked[n].transpose("sample", *_PARAM_DIMS[n]).values, dtype=float)
        for n in names
    }


def _reference_params(result: xr.DataTree) -> tuple[str | None, dict[str, np.ndarray] | None]:
    for group in ("em", "map"):
        if group in result.children:
            return group, _point_params(result, group)
    return None, None


def _marginal_params(params: dict[str, np.ndarray], j: int) -> dict[str, np.ndarray]:
    """Gaussian parameters of the marginal of feature ``j``: ``w``, ``mu`` and ``sigma``."""
    if "cov" in params:
        sd = np.sqrt(params["cov"][..., j, j])
    else:
        sd = params["sigma"][..., j]
    return {"w": params["w"], "mu": params["mu"][..., j : j + 1], "sigma": sd[..., None]}


def _weighted_component_densities(grid: np.ndarray, params: dict[str, np.ndarray]) -> np.ndarray:
    """``w_k N(x | mu_k, sigma_k)`` on a 1-D grid: shape (..., G, K)."""
    logc = _math.component_log_density(grid[:, None], params, "gaussian")
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


# --------------------------------------------------------------------------------------------
# densities and clusters
# --------------------------------------------------------------------------------------------


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
    if _family(result) != "gaussian":
        raise ParameterError(
            f"plot_density_1d draws Gaussian densities: expected family 'gaussian', got "
            f"{_family(result)!r}; use plot_component_images for Bernoulli results"
        )
    X, features = _observed(result)
    j = _resolve_feature(features, feature, "plot_density_1d")
    x = X[:, j]
    fig, ax = _new_axes(ax)
    ax.hist(x, bins=bins, density=True, color=_HIST_COLOR, edgecolor="white", label="data")
    pad = 0.1 * (x.max() - x.min() + 1e-12)
    grid = np.linspace(x.min() - pad, x.max() + pad, 400)

    ref_group, ref = _reference_params(result)
    comp_params, comp_source = None, None
    if ref is not None:
        dens = _weighted_component_densities(grid, _marginal_params(ref, j))  # (G, K)
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
        dens = _weighted_component_densities(grid, _marginal_params(draws, j))  # (S, G, K)
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
    ax.set_xlabel(_feature_label(result, features[j]))
    unit = _units(result).get(str(features[j]))
    ax.set_ylabel(f"density (per {unit})" if unit else "density")
    ax.set_title(f"Mixture density of {features[j]} (N = {len(x)})")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize="small", frameon=False)
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
        draws = np.exp(_math.log_responsibilities(X, params, family))
    return point, draws


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
    over ``n_draws`` aligned draws when a posterior exists, else the point estimate. Solid
    ellipses are the EM (else MAP) 1- and 2-sd contours; thin transparent ellipses are the 2-sd
    contours of ``n_ellipses`` posterior draws; crosses mark the MAP means when present.

    Parameters
    ----------
    result : xarray.DataTree
        Gaussian result with at least two features.
    features : pair of str or int, optional
        Features on the x and y axes (default: the first two).
    n_ellipses : int
        Posterior draws shown as ellipses (each draws K ellipses).
    n_draws : int
        Posterior draws used for the membership colours.
    ax : matplotlib.axes.Axes, optional
    seed : int

    Returns
    -------
    matplotlib.figure.Figure
        Ellipse patches carry ``gid`` "point-ellipse" or "posterior-ellipse".
    """
    if _family(result) != "gaussian":
        raise ParameterError(
            f"plot_clusters_2d draws Gaussian ellipses: expected family 'gaussian', got "
            f"{_family(result)!r}; use plot_component_images for Bernoulli results"
        )
    X, names = _observed(result)
    if X.shape[1] < 2:
        raise DataError(
            f"plot_clusters_2d needs two features: expected D >= 2, got D = {X.shape[1]}; "
            "use plot_density_1d for 1-D data"
        )
    if features is None:
        features = (0, 1)
    if len(features) != 2:
        raise ParameterError(
            f"plot_clusters_2d shows a pair of features: expected 2, got {len(features)}; "
            "pass features=(name_x, name_y)"
        )
    i = _resolve_feature(names, features[0], "plot_clusters_2d")
    j = _resolve_feature(names, features[1], "plot_clusters_2d")

    ref_group, ref = _reference_params(result)
    point_r, draw_r = _membership_draws(result, n_draws, seed)
    member = draw_r.mean(0) if draw_r is not None else point_r
    k = member.shape[1]
    colors = component_colors(k)
    rgb = np.array([mpl.colors.to_rgb(c) for c in colors])
    fig, ax = _new_axes(ax, figsize=(7.5, 6.0))
    ax.scatter(
        X[:, i],
        X[:, j],
        c=np.clip(member @ rgb, 0, 1),
        s=18,
        edgecolors="none",
        alpha=0.85,
        zorder=2,
    )

    handles = [Patch(color=colors[c], label=f"component {c}") for c in range(k)]
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
        label = _method_label(result, ref_group)
        handles += [
            Line2D([], [], color="0.2", lw=2, label=f"{label} 1 sd"),
            Line2D([], [], color="0.2", lw=2, ls="--", label=f"{label} 2 sd"),
        ]
    if "posterior" in result.children and n_ellipses > 0:
        draws = _draw_params(_relabelled(result, "pivot"), "posterior", n_ellipses, seed + 1)
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
    if "map" in result.children:
        mp = _point_params(result, "map")
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
        handles.append(
            Line2D(
                [], [], marker="X", ls="none", color="0.2", mec="white", ms=10, label="MAP mean"
            )
        )
    ax.set_xlabel(_feature_label(result, names[i]))
    ax.set_ylabel(_feature_label(result, names[j]))
    source = "posterior mean" if draw_r is not None else _method_label(result, ref_group)
    ax.set_title(
        f"Clusters: {names[i]} vs {names[j]} (K = {k})\n"
        f"point colour = component colours mixed by {source} membership"
    )
    ax.legend(handles=handles, fontsize="small", loc="best", framealpha=0.85)
    ax.autoscale_view()
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
    ``P(z_n = k | x_n)``; where the lines cross, clusters overlap. D > 1: observations are
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
    if k > 3:
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    else:
        loc = "center left" if X.shape[1] == 1 else "lower left"
        ax.legend(fontsize="small", loc=loc, framealpha=0.85)
    return fig


# --------------------------------------------------------------------------------------------
# MCMC diagnostics (arviz-plots) and predictive checks
# --------------------------------------------------------------------------------------------


def _default_var_names(result: xr.DataTree) -> list[str]:
    post = result["posterior"]
    if _family(result) == "bernoulli":
        wanted = ["w"]
    else:
        wanted = ["w", "mu", "sigma"]
    return [v for v in wanted if v in post.data_vars]


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


def _arviz_diagnostic(result, var_names, relabel, fn_name: str, title: str, **kw) -> Figure:
    import arviz as az  # heavy import, only when asked

    _require_group(result, "posterior", fn_name)
    if relabel:
        result = _relabelled(result)
    var_names = list(var_names) if var_names is not None else _default_var_names(result)
    missing = [v for v in var_names if v not in result["posterior"].data_vars]
    if missing:
        raise ParameterError(
            f"unknown variables in {fn_name}: expected some of "
            f"{sorted(result['posterior'].data_vars)}, got {missing}; fix var_names"
        )
    post = _split_features(result["posterior"].to_dataset(), var_names)
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
    _arrange_arviz_figure(
        fig,
        title + (" (labels aligned)" if relabel else ""),
        handles,
        hspace=0.9 if fn_name == "plot_rank" else None,
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


def _arrange_arviz_figure(fig: Figure, title: str, handles, hspace=None) -> None:
    """Room for a title on top and a legend column on the right; panel sizes are kept."""
    width, height = fig.get_size_inches()
    sp = fig.subplotpars
    ncols = 1 if len(handles) <= 8 else 2
    extra_w = 1.6 * ncols if handles else 0.0
    top_in = 0.7  # fixed room for the title, whatever arviz-plots left there
    bottom_in, panels_in = sp.bottom * height, (sp.top - sp.bottom) * height
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


def _split_features(post: xr.Dataset, var_names: Sequence[str]) -> xr.Dataset:
    """Posterior variables with one variable per feature (``mu[waiting]``), for one row each.

    Features on very different scales share no axis this way; a feature dim of length one is
    dropped.
    """
    out = {}
    for name in var_names:
        da = post[name]
        if "feature" in da.dims and da.sizes["feature"] > 1:
            for f in da["feature"].values:
                out[f"{name}[{f}]"] = da.sel(feature=f, drop=True)
        elif "feature" in da.dims:
            out[name] = da.isel(feature=0, drop=True)
        else:
            out[name] = da
    return xr.Dataset(out)


def plot_trace(
    result: xr.DataTree, var_names: Sequence[str] | None = None, *, relabel: bool = False
) -> Figure:
    """Trace and marginal density of posterior draws (``arviz.plot_trace_dist``).

    Parameters
    ----------
    result : xarray.DataTree
        Result with a ``posterior`` group.
    var_names : sequence of str, optional
        Variables to show (default: ``w``, ``mu``, ``sigma``; ``w`` for Bernoulli).
    relabel : bool
        Align component labels across draws first (``bayesmix.results.relabel``, else an
        internal alignment to the EM/MAP labels).

    Returns
    -------
    matplotlib.figure.Figure
    """
    return _arviz_diagnostic(result, var_names, relabel, "plot_trace_dist", "Trace plots")


def plot_rank(
    result: xr.DataTree, var_names: Sequence[str] | None = None, *, relabel: bool = False
) -> Figure:
    """Rank (fractional ECDF) plots of posterior draws per chain (``arviz.plot_rank``).

    Parameters
    ----------
    result : xarray.DataTree
        Result with a ``posterior`` group (two or more chains to be informative).
    var_names : sequence of str, optional
        As in :func:`plot_trace`.
    relabel : bool
        As in :func:`plot_trace`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    return _arviz_diagnostic(result, var_names, relabel, "plot_rank", "Rank plots")


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
    axes=None,
    seed: int = 0,
) -> Figure:
    """Posterior predictive check, per feature.

    Gaussian: for each feature, the observed histogram and KDE against the KDEs of ``n_draws``
    replicated data sets from ``posterior_predictive``. Bernoulli: per feature (pixel), the
    observed frequency of ones against the 5-95% range of replicated frequencies.

    Parameters
    ----------
    result : xarray.DataTree
        Result with ``observed_data`` and ``posterior_predictive`` (variable ``x``).
    n_draws : int
        Replicated data sets drawn.
    max_features : int
        Gaussian: at most this many features (the first ones) get a panel.
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
    rep = np.asarray(stacked.isel(sample=idx).values, dtype=float)  # (S, N, D)

    if _family(result) == "bernoulli":
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

    d = min(X.shape[1], max_features)
    fig, axs = _grid_axes(d, 3, (4.8, 3.6), axes)
    for j in range(d):
        ax = axs[j]
        x = X[:, j]
        lo_x = min(x.min(), np.quantile(rep[:, :, j], 0.005))
        hi_x = max(x.max(), np.quantile(rep[:, :, j], 0.995))
        grid = np.linspace(lo_x, hi_x, 300)
        ax.hist(
            x,
            bins="auto",
            density=True,
            color=_HIST_COLOR,
            edgecolor="white",
            label="observed (histogram)",
        )
        for s in range(rep.shape[0]):
            ax.plot(
                grid,
                gaussian_kde(rep[s, :, j])(grid),
                color=_POSTERIOR_COLOR,
                lw=0.6,
                alpha=0.25,
                label="replicated (KDE)" if s == 0 else None,
                gid="ppc-draw",
            )
        ax.plot(grid, gaussian_kde(x)(grid), color=_EM_COLOR, lw=2, label="observed (KDE)")
        ax.set_xlabel(_feature_label(result, names[j]))
        ax.set_ylabel("density")
        ax.set_ylim(bottom=0)
        if j == 0:
            ax.legend(fontsize="small", frameon=False)
    fig.suptitle(f"Posterior predictive check ({len(idx)} replicated data sets)")
    return fig


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
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fig.savefig(fh, format="png", dpi=dpi)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
