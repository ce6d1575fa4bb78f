"""``plot_trace`` and ``plot_rank``: MCMC diagnostics drawn by arviz-plots (shared code)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from bayesmix._validation import ParameterError
from bayesmix.plotting._common import (
    _family,
    _filled_note,
    _how_to_choose,
    _relabelled,
    _require_group,
    _resolve_features,
    component_colors,
)

#: Trace and rank plots show ``mu``/``sigma``/``p`` of at most this many features by default.
MAX_DIAGNOSTIC_FEATURES = 3


def _default_var_names(result: xr.DataTree) -> list[str]:
    post = result["posterior"]
    return [v for v in _family(result).trace_variables if v in post.data_vars]


def _pc_figure(pc) -> Figure:
    return pc.viz["figure"].item()


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
    filled = _filled_note(result)
    if filled:
        title += ": " + filled
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
