"""``plot_ppc``: the posterior predictive check, per feature."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from bayesmix._validation import ParameterError
from bayesmix.plotting._axes import (
    _BULK_QUANTILES,
    _axis_limits,
    _beyond_handle,
    _bulk_range,
    _grid_axes,
    _hist_in_range,
    _kde_in_range,
    _kde_rows_in_range,
    _mark_beyond_1d,
    _new_axes,
)
from bayesmix.plotting._common import (
    _EM_COLOR,
    _HIST_COLOR,
    _POSTERIOR_COLOR,
    _family,
    _feature_label,
    _how_to_choose,
    _observed,
    _require_group,
    _resolve_features,
)


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
        for s, density in enumerate(_kde_rows_in_range(rep[:, :, p], lim, grid)):
            ax.plot(
                grid,
                density,
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
