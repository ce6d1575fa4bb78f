"""``plot_trace`` and ``plot_rank``: MCMC diagnostics drawn by arviz-plots (shared code)."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from scipy.special import gammaln

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


#: Rank-test probabilities this close to 1, 1/2, 1/4 or 3/4 come from SciPy (see below).
_EXACT_TAIL = 1e-6
#: Cells of the hypergeometric table (draws x (draws per chain + 1)) computed at a time ...
_TABLE_BLOCK = 250_000
#: ... a table up to this size (1000 draws a chain) is kept for the figure's next variable ...
_TABLE_KEEP = 1_100_000
#: ... and beyond this size (5000 draws a chain) ArviZ's own test is used.
_TABLE_MAX = 5000 * 5001


def _hypergeom_tables(
    log_fact: np.ndarray, n_total: int, n_success: int, k: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The pmf and cdf of ``scipy.stats.hypergeom(n_total, n_success, k[r])`` at 0..n_success.

    Parameters
    ----------
    log_fact : ndarray of shape (n_total + 1,)
        ``log(i!)``.
    n_total, n_success : int
        Population size and successes in it.
    k : ndarray of shape (R,)
        Draws of each row.

    Returns
    -------
    pmf, cdf : ndarray of shape (R, n_success + 1)
        From log-factorials (relative error about 1e-11); the cdf sums the lower tail up to
        0.5 and is one minus the summed upper tail above it, so both tails keep their
        relative precision.
    """
    x = np.arange(n_success + 1)
    kk = np.asarray(k)[:, None]
    n_fail = n_total - n_success
    log_pmf = (
        (log_fact[n_success] - log_fact[x] - log_fact[n_success - x] + log_fact[n_fail])
        - log_fact[np.clip(kk - x, 0, n_total)]
        - log_fact[np.clip(n_fail - kk + x, 0, n_total)]
        - (log_fact[n_total] - log_fact[kk] - log_fact[n_total - kk])
    )
    log_pmf[(x < kk - n_fail) | (x > kk)] = -np.inf  # outside the support
    pmf = np.exp(log_pmf, out=log_pmf)
    above = np.zeros_like(pmf)  # P(X > x)
    np.cumsum(pmf[:, :0:-1], axis=1, out=above[:, -2::-1])
    cdf = np.cumsum(pmf, axis=1)
    upper = cdf > 0.5
    cdf[upper] = 1.0 - above[upper]
    return pmf, cdf


def _shapley_mean(values: np.ndarray) -> np.ndarray:
    """ArviZ's closed-form Shapley contributions to the mean, along the last axis."""
    n = values.shape[-1]
    if n == 1:
        return np.zeros_like(values)
    harmonic = np.sum(1.0 / np.arange(1, n + 1))
    others = (values.sum(axis=-1, keepdims=True) - values) / (n - 1)
    return values / n + ((harmonic - 1) / n) * (values - others)


@functools.cache
def _rank_array_class():
    """ArviZ's array statistics with a faster multi-chain uniformity test (``mtc_c``).

    ``arviz.plot_rank`` tests each scalar with ``hypergeom.pmf`` and ``.cdf`` from SciPy at
    every draw of every chain, about 10 us per value: 0.9 s of the 1.5 s the rank figure of
    a 4 x 1000 draw fit took. The test's numbers depend only on the draw counts, so one
    table (:func:`_hypergeom_tables`) serves every chain and variable. ArviZ computes
    ``1 - P`` from the cdf, so near 1 the rounding of SciPy's cdf decides the smallest
    p-values: those entries (upper tail below ``_EXACT_TAIL``) are taken from SciPy
    itself. Everything else is ArviZ's arithmetic, vectorised; the result equals ArviZ's to
    about 1e-9 (tested), so the figure is the same. It is handed to ArviZ through its own
    hook, ``rcParams["stats.module"]``.
    """
    from arviz_stats.base.array import BaseArray
    from scipy.stats import hypergeom

    class _RankArray(BaseArray):
        def __init__(self) -> None:
            super().__init__()
            self._kept: tuple[tuple[int, int], np.ndarray, np.ndarray] | None = None

        def _lookup(self, x: np.ndarray, n_total: int, n_success: int, k: np.ndarray):
            """The pmf and cdf (draws, columns) at the counts ``x`` (draws, columns)."""
            key = (n_total, n_success)
            if self._kept is not None and self._kept[0] == key:
                rows = np.arange(k.size)[:, None]
                return self._kept[1][rows, x], self._kept[2][rows, x]
            log_fact = gammaln(np.arange(n_total + 1) + 1.0)
            keep = k.size * (n_success + 1) <= _TABLE_KEEP
            step = max(1, _TABLE_BLOCK // (n_success + 1))
            pmf_x, cdf_x = np.empty(x.shape), np.empty(x.shape)
            tables = []
            for r0 in range(0, k.size, step):
                block = slice(r0, r0 + step)
                pmf, cdf = _hypergeom_tables(log_fact, n_total, n_success, k[block])
                pmf_x[block] = np.take_along_axis(pmf, x[block], axis=1)
                cdf_x[block] = np.take_along_axis(cdf, x[block], axis=1)
                if keep:
                    tables.append((pmf, cdf))
            if keep:
                self._kept = (key, *(np.concatenate(t) for t in zip(*tables, strict=True)))
            return pmf_x, cdf_x

        def mchain_uniformity_test(self, ary, chain_axis=-2, draw_axis=-1, **kwargs):
            ary = np.moveaxis(np.asarray(ary, dtype=float), (chain_axis, draw_axis), (-2, -1))
            n_chains, n_draws = ary.shape[-2:]
            if (
                kwargs
                or n_chains < 2
                or n_draws == 0
                or n_draws * (n_draws + 1) > _TABLE_MAX
                or not np.all(np.isfinite(ary))
            ):
                # ArviZ's own loop (and its errors) for anything else
                return super().mchain_uniformity_test(ary, -2, -1, **kwargs)
            batch = ary.shape[:-2]
            flat = ary.reshape(-1, n_chains, n_draws)
            z = np.arange(1, n_draws + 1) / (n_draws + 1)
            n_total = n_chains * n_draws
            k = np.floor(z * n_total).astype(int)
            ranks = np.sort(flat, axis=-1)
            # (draws, batch x chains): draws of each chain ranked at most z
            counts = np.stack(
                [np.searchsorted(row, z, side="right") for row in ranks.reshape(-1, n_draws)],
                axis=1,
            )
            pmf, cdf = self._lookup(counts, n_total, n_draws, k)
            mid = cdf - 0.5 * pmf
            # from SciPy, as ArviZ has them, where the rounding of SciPy's numbers decides:
            # the upper tail (ArviZ takes 1 - mid), mid-p values of about 1/2 (a Cauchy value
            # of about -1e16) and of about 1/4 or 3/4 (a Cauchy value of about 0, whose sign
            # decides which draws are marked; exactly 0 in small exact cases)
            centre = np.abs(mid - 0.5)
            exact = (
                (mid > 1.0 - _EXACT_TAIL)
                | (centre < _EXACT_TAIL)
                | (np.abs(centre - 0.25) < _EXACT_TAIL)
            )
            if exact.any():
                rows = np.nonzero(exact)[0]
                pmf[exact] = hypergeom.pmf(counts[exact], n_total, n_draws, k[rows])
                cdf[exact] = hypergeom.cdf(counts[exact], n_total, n_draws, k[rows])
            probs1 = cdf - 0.5 * pmf  # ArviZ's mid-p lower tail, then its arithmetic
            probs2 = 1.0 - probs1
            gamma = 2 * np.minimum(probs1, probs2)
            b_cauchy = np.tan((0.5 - gamma) * np.pi).reshape(n_draws, -1, n_chains)
            b_cauchy = b_cauchy.transpose(1, 0, 2)  # (batch, draws, chains)
            ps = 0.5 - np.arctan(b_cauchy.mean(axis=-1)) / np.pi
            w_cauchy = np.tan((0.5 - ps) * np.pi)
            p_value = 0.5 - np.arctan(w_cauchy.mean(axis=-1)) / np.pi
            return (
                p_value.reshape(batch),
                _shapley_mean(b_cauchy).reshape(*batch, n_draws, n_chains),
                _shapley_mean(w_cauchy).reshape(*batch, n_draws),
            )

    return _RankArray


def _rank_stats():
    """A fresh ArviZ statistics backend with :func:`_rank_array_class` (for one figure)."""
    from arviz_stats.base.dataarray import BaseDataArray

    return BaseDataArray(array_class=_rank_array_class()())


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
    # the rank test through a faster backend (_rank_array_class); the trace as ArviZ has it
    stats = {"stats.module": _rank_stats()} if fn_name == "plot_rank" else {}
    with warnings.catch_warnings(), az.rc_context(rc=stats):
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
