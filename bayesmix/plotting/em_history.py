"""``plot_em_history``: the EM objective per iteration and its increase."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from bayesmix._validation import DataError, ParameterError
from bayesmix.plotting._axes import _grid_axes
from bayesmix.plotting._common import _OKABE_ITO, _require_group


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
