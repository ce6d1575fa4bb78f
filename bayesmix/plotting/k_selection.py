"""``plot_k_selection``: information criteria against the number of components."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from bayesmix._validation import DataError, ParameterError
from bayesmix.plotting._axes import _grid_axes
from bayesmix.plotting._common import component_colors

_CRITERIA = {  # column -> (label, lower is better)
    "bic": ("BIC", True),
    "aic": ("AIC", True),
    "icl": ("ICL", True),
    "elpd_loo": ("ELPD (LOO)", False),
    "p_k": ("p(K | y)", False),
    "p_kplus": ("p(K+ | y), sparse mixture", False),
}
#: Probabilities over K: drawn as bars (one group per K, one bar per covariance type).
_BARS = ("p_k", "p_kplus")


def plot_k_selection(table: Any, *, criteria: Sequence[str] | None = None, axes=None) -> Figure:
    """Information criteria against the number of components, per covariance type.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per fit with columns ``k`` and criteria among ``bic``, ``aic``, ``icl``,
        ``elpd_loo`` (optional ``elpd_loo_se``/``se`` for error bars), ``p_k`` (optional
        ``p_k_se``) and ``p_kplus`` (drawn as bars: probabilities over K), and optionally
        ``covariance_type``. Lower is better except for ``elpd_loo`` and the probabilities.
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
    many = len(types) > 6
    fig, axs = _grid_axes(len(criteria), 2, (5.2, 3.8), axes)
    recommended = None
    for ci, crit in enumerate(criteria):
        ax = axs[ci]
        label, lower_better = _CRITERIA.get(crit, (crit, True))
        for ti, ctype in enumerate(types):
            sub = df[df["covariance_type"] == ctype].sort_values("k")
            if crit in _BARS:
                width = 0.8 / len(types)
                err = sub.get(f"{crit}_se")
                ax.bar(
                    sub["k"] + (ti - (len(types) - 1) / 2) * width,
                    sub[crit],
                    width=width,
                    yerr=None if err is None else err.to_numpy(float),
                    color=colors[ti],
                    alpha=0.8,
                    capsize=3,
                    label=str(ctype),
                    gid=f"bars-{crit}",
                )
                continue
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
        ax.set_ylabel(
            "probability"
            if crit in _BARS
            else f"{label} ({'lower' if lower_better else 'higher'} is better)"
        )
        ax.set_title(label)
        ax.xaxis.set_major_locator(mpl.ticker.MaxNLocator(integer=True))
        if many:  # mclust's 14 models: one legend beside the panels, the axis on the best fits
            star = [
                (h, t)
                for h, t in zip(*ax.get_legend_handles_labels(), strict=True)
                if t.startswith("recommended")
            ]
            ax.legend(*zip(*star, strict=True), fontsize="small", loc="best")
            if crit not in _BARS:
                _zoom_on_best(ax, df[crit].to_numpy(float), lower_better)
        else:
            ax.legend(fontsize="small", title="covariance", title_fontsize="small")
    if many:
        lines = [
            (h, t)
            for h, t in zip(*axs[0].get_legend_handles_labels(), strict=True)
            if not t.startswith("recommended")
        ]
        fig.legend(
            *zip(*lines, strict=True),
            title="covariance",
            loc="outside right center",
            fontsize="small",
            title_fontsize="small",
        )
    label, row = recommended
    fig.suptitle(
        f"Choice of K: {label} recommends K = {row['k']} (covariance {row['covariance_type']})"
    )
    return fig


def _zoom_on_best(ax, values: np.ndarray, lower_better: bool) -> None:
    """Limit the value axis to the better half of the fits (the others leave the panel)."""
    vals = values[np.isfinite(values)]
    if vals.size < 4:
        return
    best = vals.min() if lower_better else vals.max()
    cut = np.percentile(vals, 40 if lower_better else 60)
    span = max(abs(cut - best), 1e-9)
    if lower_better:
        ax.set_ylim(best - 0.08 * span, best + span)
    else:
        ax.set_ylim(best - span, best + 0.08 * span)
    ax.text(
        0.01,
        0.99,
        "axis on the better fits",
        transform=ax.transAxes,
        va="top",
        fontsize="x-small",
        color="0.4",
    )


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
