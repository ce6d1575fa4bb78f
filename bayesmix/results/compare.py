"""Side-by-side table of EM, MAP and posterior estimates of a mixture."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from bayesmix._validation import DataError, ParameterError
from bayesmix.results.labels import _group, _require_posterior, component_vars

__all__ = ["compare_estimates", "filled_columns", "EstimatesTable", "COLUMNS", "ADVI_COLUMNS"]

COLUMNS = (
    "parameter",
    "component",
    "feature",
    "em",
    "map",
    "mean",
    "sd",
    "lower",
    "upper",
    "r_hat",
    "ess_bulk",
    "ess_tail",
    "em_z",
)
#: Entry dims in the order of the table's columns; other dims of a variable (e.g. ``level``)
#: follow them.
_ENTRY_DIMS = ("component", "feature", "feature_bis")
_MATRIX_VARS = ("cov", "corr")


class EstimatesTable(pd.DataFrame):
    """A DataFrame that displays its floats with 4 significant digits.

    Only the display is rounded; the values keep full precision.
    """

    _metadata: list[str] = []

    @property
    def _constructor(self):
        return EstimatesTable

    def __repr__(self) -> str:
        return self.to_string(float_format=lambda v: f"{v:.4g}", na_rep="-")

    def _repr_html_(self) -> str:
        return self.to_html(float_format=lambda v: f"{v:.4g}", na_rep="-")


def _entries(da: xr.DataArray, sample_dims: tuple[str, ...]) -> tuple[list[str], np.ndarray]:
    """Entry dims of ``da`` (in canonical order) and the boolean mask of entries to keep."""
    rest = [d for d in _ENTRY_DIMS if d in da.dims]
    rest += [d for d in da.dims if d not in rest and d not in sample_dims]
    shape = tuple(da.sizes[d] for d in rest)
    keep = np.ones(shape, dtype=bool)
    if da.name in _MATRIX_VARS and {"feature", "feature_bis"} <= set(rest):
        i = rest.index("feature")
        j = rest.index("feature_bis")
        fi = np.arange(shape[i]).reshape([-1 if a == i else 1 for a in range(len(shape))])
        fj = np.arange(shape[j]).reshape([-1 if a == j else 1 for a in range(len(shape))])
        # lower triangle; the diagonal of a correlation matrix is the constant 1
        tri = fi > fj if da.name == "corr" else fi >= fj
        keep = np.broadcast_to(tri, shape).copy()
    if any(d not in _ENTRY_DIMS for d in rest):
        # a padded extra dim (e.g. the levels an item lacks): entries exactly 0 in every draw
        values = da.transpose(*[d for d in sample_dims if d in da.dims], *rest).values
        lead = values.ndim - len(rest)
        padding = np.all(values == 0, axis=tuple(range(lead))) if lead else values == 0
        if padding.any() and not padding.all():
            keep &= ~padding
    return rest, keep


ADVI_COLUMNS = ("advi_mean", "advi_sd", "advi_lower", "advi_upper")


def _draws(da: xr.DataArray, rest: list[str], keep: np.ndarray) -> np.ndarray:
    """Draws of ``da`` (chain, draw, *rest) as a (chain * draw, kept entries) array."""
    draws = da.transpose("chain", "draw", *rest).values
    return draws.reshape(draws.shape[0] * draws.shape[1], -1)[:, keep.ravel()]


def _draw_group(result: xr.DataTree, name: str) -> xr.Dataset | None:
    """Group ``name`` when it holds draws with a ``w`` (chain, draw, component), else None."""
    ds = _group(result, name)
    if ds is None or "w" not in ds or not {"chain", "draw", "component"} <= set(ds["w"].dims):
        return None
    return ds


BOOTSTRAP_COLUMNS = ("em_se", "em_lower", "em_upper")


def _bootstrap_draws(bootstrap: Any, points: dict) -> dict[str, np.ndarray]:
    """The bootstrap's draws with its components in the order of the result's EM estimate.

    ``bootstrap``: :func:`bayesmix.em.bootstrap.bootstrap_parameters`'s result (``estimate``
    and ``draws`` dicts of result-named arrays). Its components are matched to the ``em``
    group's by their means (the estimator's order need not be the result's).
    """
    from scipy.optimize import linear_sum_assignment

    estimate, draws = getattr(bootstrap, "estimate", None), getattr(bootstrap, "draws", None)
    if not isinstance(estimate, dict) or not isinstance(draws, dict) or "mu" not in estimate:
        raise ParameterError(
            "bootstrap is invalid: expected the result of bayesmix.em.bootstrap_parameters, "
            f"got {type(bootstrap).__name__}; pass bootstrap_parameters(estimator, X)"
        )
    em = points.get("em")
    if em is None or "mu" not in em:
        raise DataError(
            "compare_estimates(bootstrap=...) needs the EM estimate: expected an 'em' group "
            "with 'mu', got none; fit EM first (bayesmix.inference.fit_em)"
        )
    em_mu = np.asarray(em["mu"].transpose("component", "feature").values, float)
    boot_mu = np.asarray(estimate["mu"], float)
    if boot_mu.shape != em_mu.shape:
        raise ParameterError(
            f"bootstrap does not fit this result: expected means of shape {em_mu.shape} (the "
            f"'em' group), got {boot_mu.shape}; bootstrap the same model's EM fit"
        )
    cost = ((em_mu[:, None, :] - boot_mu[None, :, :]) ** 2).sum(axis=2)
    _, order = linear_sum_assignment(cost)  # result component k <- bootstrap order[k]
    scale = np.abs(em_mu).max() + np.ptp(em_mu) + 1e-300
    if np.abs(boot_mu[order] - em_mu).max() > 0.05 * scale:
        warnings.warn(
            "compare_estimates: the bootstrap's estimates differ from the result's EM estimate "
            "by more than 5% of the means' range: expected a bootstrap of the same fit; its "
            "standard errors describe another fit",
            UserWarning,
            stacklevel=3,
        )
    return {name: np.asarray(values, float)[:, order] for name, values in draws.items()}


def compare_estimates(
    result: xr.DataTree, *, ci_prob: float = 0.94, bootstrap: Any = None
) -> pd.DataFrame:
    """EM, MAP, posterior (and ADVI) summaries of every scalar parameter, one row each.

    Parameters
    ----------
    result : xarray.DataTree
        A result with a ``posterior`` group (dims ``(chain, draw, ...)``), optionally ``em``,
        ``map`` and ``advi`` groups. Without a posterior the table lists the ``em``, ``map``
        (and ADVI) estimates and leaves the posterior columns empty (NaN). Relabel first
        (:func:`bayesmix.results.relabel`) when the chains switched labels.
    ci_prob : float
        Probability mass of the central (equal-tailed) credible interval.
    bootstrap : BootstrapParameters, optional
        Bootstrap draws of the EM estimate (:func:`bayesmix.em.bootstrap_parameters`, as R
        mclust's ``MclustBootstrap``): adds ``em_se`` (their sd) and ``em_lower`` /
        ``em_upper`` (their ``ci_prob`` percentile interval), EM's uncertainty next to the
        posterior's ``sd``, ``lower``, ``upper``. Components are matched to the ``em``
        group's by their means.

    Returns
    -------
    EstimatesTable (a pandas.DataFrame)
        Columns ``parameter, component, feature, [feature_bis,] em, map, mean, sd, lower,
        upper, r_hat, ess_bulk, ess_tail, em_z, em_quantile``, then, only when the result
        has an ``advi`` group, ``advi_mean, advi_sd, advi_lower, advi_upper``: the same
        summaries of the ADVI draws, which come from a (mean-field) approximation of the
        posterior, not from the posterior itself (no R-hat or ESS; ADVI tends to understate
        the sd). ``feature_bis`` is present only when the draws hold ``cov`` or ``corr``; only
        their lower triangle is listed (with the diagonal for ``cov``; without it for
        ``corr``, whose diagonal is 1). ``sd`` uses ``ddof=1``; ``lower``/``upper`` are the
        ``(1 -/+ ci_prob) / 2`` quantiles (NumPy's linear interpolation); ``em_z = (em -
        mean) / sd``; ``em_quantile`` is the fraction of draws below the EM value.
        ``em``/``map`` are NaN when the group (or the variable) is absent. ``r_hat``,
        ``ess_bulk`` and ``ess_tail`` come from :func:`arviz.rhat` and :func:`arviz.ess`
        (NaN with a single chain for R-hat). ``table.attrs`` holds ``ci_prob`` and, with ADVI,
        ``advi`` (a sentence saying what the ADVI columns are).
    """
    import arviz as az

    if not (isinstance(ci_prob, float | int) and 0 < ci_prob < 1):
        raise ParameterError(
            f"ci_prob must lie in (0, 1): expected e.g. 0.94, got {ci_prob!r}; "
            "pass the probability mass of the interval"
        )
    points = {g: _group(result, g) for g in ("em", "map")}
    advi = _draw_group(result, "advi") if isinstance(result, xr.DataTree) else None
    if isinstance(result, xr.DataTree) and "posterior" not in result.children:
        # EM / MAP / ADVI only: the same table, with the posterior columns left empty
        template = next((d for d in (advi, points["map"], points["em"]) if d is not None), None)
        if template is None:
            raise DataError(
                "compare_estimates needs estimates: expected a 'posterior', 'advi', 'map' or "
                f"'em' group, got {sorted(result.children)}; fit the model with "
                "bayesmix.inference"
            )
        post = None
    else:
        post = _require_posterior(result, "compare_estimates")
        template = post
    sample_dims = ("chain", "draw") if template is post or template is advi else ()
    names = component_vars(template)
    names += [v for v in template.data_vars if v not in names]
    names = [
        v
        for v in names
        if set(sample_dims) <= set(template[v].dims)
        and np.issubdtype(template[v].dtype, np.floating)
        and (sample_dims or "component" in template[v].dims)
    ]
    boot = _bootstrap_draws(bootstrap, points) if bootstrap is not None else None
    stats = {}
    if post is not None:
        with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            stats["r_hat"] = az.rhat(post[names])
            stats["ess_bulk"] = az.ess(post[names], method="bulk")
            stats["ess_tail"] = az.ess(post[names], method="tail")
    lo_q, hi_q = (1 - ci_prob) / 2, (1 + ci_prob) / 2

    frames = []
    for name in names:
        da = template[name]
        rest, keep = _entries(da, sample_dims)
        idx = np.nonzero(keep) if np.ndim(keep) else ()  # a scalar (e0, dp_alpha): one entry
        n_entries = len(idx[0]) if idx else 1
        frame = {"parameter": name}
        for dim, pos in zip(rest, idx, strict=True):
            frame[dim] = da[dim].values[pos]
        for key, ds in points.items():
            if ds is not None and name in ds and set(ds[name].dims) == set(rest):
                frame[key] = np.asarray(ds[name].transpose(*rest).values, float)[keep]
            else:
                frame[key] = np.full(n_entries, np.nan)
        if post is not None:
            draws = _draws(da, rest, keep)
            frame["mean"] = draws.mean(axis=0)
            frame["sd"] = draws.std(axis=0, ddof=1)
            frame["lower"], frame["upper"] = np.quantile(draws, [lo_q, hi_q], axis=0)
            for key, stat in stats.items():
                frame[key] = np.asarray(stat[name].transpose(*rest).values, float)[keep]
            with np.errstate(invalid="ignore", divide="ignore"):
                frame["em_z"] = (frame["em"] - frame["mean"]) / frame["sd"]
                below = (draws < frame["em"][None, :]).mean(axis=0)
            frame["em_quantile"] = np.where(np.isnan(frame["em"]), np.nan, below)
        else:
            for key in COLUMNS[5:] + ("em_quantile",):
                frame[key] = np.full(n_entries, np.nan)
        if boot is not None:
            values = boot.get(name)
            if values is not None and values.shape[1:] == tuple(da.sizes[d] for d in rest):
                flat = values[(slice(None), *np.nonzero(keep))] if np.ndim(keep) else values
                with warnings.catch_warnings(), np.errstate(invalid="ignore"):
                    warnings.simplefilter("ignore", RuntimeWarning)
                    frame["em_se"] = np.nanstd(flat, axis=0, ddof=1)
                    frame["em_lower"], frame["em_upper"] = np.nanquantile(
                        flat, [lo_q, hi_q], axis=0
                    )
            else:
                for key in BOOTSTRAP_COLUMNS:
                    frame[key] = np.full(n_entries, np.nan)
        if advi is not None:
            if name in advi and set(advi[name].dims) == {"chain", "draw", *rest}:
                draws = _draws(advi[name], rest, keep)
                frame["advi_mean"] = draws.mean(axis=0)
                frame["advi_sd"] = draws.std(axis=0, ddof=1)
                frame["advi_lower"], frame["advi_upper"] = np.quantile(draws, [lo_q, hi_q], axis=0)
            else:
                for key in ADVI_COLUMNS:
                    frame[key] = np.full(n_entries, np.nan)
        frames.append(pd.DataFrame(frame))

    table = pd.concat(frames, ignore_index=True)
    table = _name_levels(table, result)
    for col in ("component", "feature"):
        if col not in table:
            table[col] = None
    if "component" in table:
        table["component"] = table["component"].astype("Int64")
    cols = list(COLUMNS[:3])
    if "feature_bis" in table:
        cols.append("feature_bis")
    known = set(COLUMNS) | set(ADVI_COLUMNS) | set(BOOTSTRAP_COLUMNS)
    known |= {"feature_bis", "em_quantile"}
    cols += [c for c in table.columns if c not in known]  # other entry dims, e.g. level
    cols += list(COLUMNS[3:]) + ["em_quantile"]
    if boot is not None:
        cols += list(BOOTSTRAP_COLUMNS)
    if advi is not None:
        cols += list(ADVI_COLUMNS)
    table = EstimatesTable(table[cols])
    table.attrs["ci_prob"] = ci_prob
    if boot is not None:
        table.attrs["bootstrap"] = (
            f"em_se, em_lower, em_upper: the sd and {ci_prob:g} percentile interval of "
            f"{bootstrap.n_boot} {bootstrap.kind} bootstrap refits of the EM estimate"
        )
    if advi is not None:
        table.attrs["advi"] = (
            "advi_* columns: draws from the mean-field ADVI approximation of the posterior, "
            "not posterior draws (no R-hat or ESS; the sd is often too small)"
        )
    return table


def _name_levels(table: pd.DataFrame, result: Any) -> pd.DataFrame:
    """Level codes -> level names, from ``observed_data.attrs["levels"]`` (categorical data)."""
    if "level" not in table or not isinstance(result, xr.DataTree):
        return table
    if "observed_data" not in result.children:
        return table
    import json

    try:
        names = json.loads(result["observed_data"].attrs.get("levels", "{}"))
    except (TypeError, ValueError):
        return table
    if not names:
        return table

    def label(row) -> Any:
        if pd.isna(row["level"]):
            return None
        levels = names.get(str(row.get("feature")), [])
        code = int(row["level"])
        return levels[code] if code < len(levels) else str(code)

    table = table.copy()
    table["level"] = table.apply(label, axis=1)
    return table


def filled_columns(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` without the columns that hold no value (all missing, or all empty text).

    An EM-only comparison has no posterior columns, a 1-D one no ``feature_bis``: the CLI and
    the report show only what is there. ``attrs`` are kept.
    """
    keep = [
        c
        for c in table.columns
        if table[c].notna().any() and not (table[c].astype(str) == "").all()
    ]
    out = table.loc[:, keep]
    out.attrs = dict(getattr(table, "attrs", {}) or {})
    return out
