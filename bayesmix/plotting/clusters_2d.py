"""``plot_clusters_2d``: two features (or a scatter matrix) by membership, with ellipses."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib as mpl
import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Ellipse, Patch

from bayesmix._validation import DataError, ParameterError
from bayesmix.plotting._axes import (
    _axis_limits,
    _beyond_handle,
    _hist_in_range,
    _mark_beyond_1d,
    _mark_beyond_2d,
    _new_axes,
)
from bayesmix.plotting._common import (
    _EM_COLOR,
    _HIST_COLOR,
    _draw_params,
    _family,
    _feature_label,
    _filled_note,
    _how_to_choose,
    _membership_draws,
    _method_label,
    _observed,
    _point_params,
    _reference_params,
    _relabelled,
    _resolve_features,
    _weighted_component_densities,
    component_colors,
)

#: plot_clusters_2d draws a scatter matrix of at most this many features.
MAX_MATRIX_FEATURES = 4


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
    draws; crosses mark the MAP means when present. For a Student-t mixture the ellipses are
    those of the scale matrices (Mahalanobis distance 1 and 2; ``Family.ellipse_unit`` names
    them in the legend).

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

    def legend_handles(n_out: int, n_missing: int = 0) -> list:
        handles = [Patch(color=colors[c], label=f"component {c}") for c in range(k)]
        if ref is not None:
            label = _method_label(result, ref_group)
            unit = family.ellipse_unit
            handles += [
                Line2D([], [], color="0.2", lw=2, label=f"{label} {unit.format(n=1)}"),
                Line2D([], [], color="0.2", lw=2, ls="--", label=f"{label} {unit.format(n=2)}"),
            ]
        if draws is not None:
            handles.append(
                Line2D(
                    [],
                    [],
                    color="0.2",
                    lw=0.8,
                    alpha=0.5,
                    label=(
                        f"posterior draws, {family.ellipse_unit.format(n=2)} "
                        f"(n = {draws['mu'].shape[0]})"
                    ),
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
        if n_missing:  # missing values (missing="model"): such a row has no point here
            rows = "row" if n_missing == 1 else "rows"
            label = f"{n_missing} {rows} with a missing value not drawn"
            handles.append(Line2D([], [], ls="none", label=label))
        return handles

    source = "posterior mean" if draw_r is not None else _method_label(result, ref_group)
    colour_note = f"point colour = component colours mixed by {source} membership"
    filled = _filled_note(result)
    k_label = f"K+ = {k} filled" if filled else f"K = {k}"
    if filled:
        colour_note += f"\n{filled}"
    if len(idx) == 2:
        i, j = idx
        fig, ax = _new_axes(ax, figsize=(7.5, 6.0))
        n_out = pair_panel(ax, i, j)
        ax.set_xlabel(_feature_label(result, names[i]))
        ax.set_ylabel(_feature_label(result, names[j]))
        title = f"Clusters: {names[i]} vs {names[j]} ({k_label})\n{colour_note}"
        if chosen_note:
            title += f"\n{chosen_note}"
        ax.set_title(title, fontsize="medium" if chosen_note or filled else None)
        n_missing = int(np.isnan(X[:, [i, j]]).any(axis=1).sum())
        ax.legend(
            handles=legend_handles(n_out, n_missing),
            fontsize="small",
            loc="best",
            framealpha=0.85,
        )
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
    handles = legend_handles(n_out, int(np.isnan(X[:, list(idx)]).any(axis=1).sum()))
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
        f"Clusters: scatter matrix of {', '.join(str(names[f]) for f in idx)} ({k_label})\n"
        f"{colour_note}"
    )
    fig.suptitle(title, fontsize="medium")
    return fig
