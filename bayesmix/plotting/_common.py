"""Shared by every figure: colours, feature labels, readers of a result, hints, save_figure."""

from __future__ import annotations

import contextvars
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from bayesmix import _math
from bayesmix._files import atomic_path
from bayesmix._validation import DataError, ParameterError
from bayesmix.families import Family, get_family, guess_family

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


def _filled_note(result: xr.DataTree) -> str:
    """A title note for the filled components of a sparse/DP mixture ("" for other results)."""
    if "filled" not in result.children:
        return ""
    a = result["filled"].attrs
    k = int(a["k_plus"])
    return (
        f"the K+ = {k} filled components of the draws with K+ = {k} "
        f"({100 * float(a['share_mode']):.0f}% of draws, "
        f"{100 * float(a['share_permutation']):.0f}% of them identified)"
    )


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


def _point_or_posterior_mean(result: xr.DataTree) -> tuple[str, dict[str, np.ndarray]]:
    group, ref = _reference_params(result)
    if ref is not None:
        return str(group).upper(), ref
    _require_group(result, "posterior", "the figure")
    draws = _draw_params(result, "posterior", 200, 0)
    return "posterior mean", {k: v.mean(axis=0) for k, v in draws.items()}


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
