"""Helpers shared by the fitting functions: arguments, point datasets, the result tree."""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from bayesmix._validation import DataError, ParameterError
from bayesmix.config import ModelSpec, RunSpec, spec_from_dict
from bayesmix.families import get_family, result_variables

RESULT_FORMAT = "bayesmix-result/1"
POINT_GROUPS = ("em", "map")
DRAW_GROUPS = ("posterior", "advi", "prior")


class StartsDisagreeWarning(UserWarning):
    """MAP optimisation from several starts reached optima with different log posteriors."""


class DivergenceWarning(UserWarning):
    """NUTS reported divergent transitions: the draws may miss part of the posterior."""


def as_model_spec(spec: Any) -> ModelSpec:
    """Accept a ModelSpec or a RunSpec (its ``model``)."""
    if isinstance(spec, RunSpec):
        return spec.model
    if isinstance(spec, ModelSpec):
        return spec
    raise ParameterError(
        f"spec has the wrong type: expected a ModelSpec or RunSpec, got {type(spec).__name__}; "
        "build one with bayesmix.config.ModelSpec(...) or load_spec(path)"
    )


def check_int(value: Any, name: str, minimum: int) -> int:
    """An integer >= minimum, else ParameterError."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ParameterError(
            f"{name} must be an integer >= {minimum}: expected e.g. {name}={max(minimum, 1)}, "
            f"got {value!r}; pass a larger integer"
        )
    return int(value)


def resolve_seed(random_seed: Any) -> int:
    """An int seed (drawn from fresh entropy when None)."""
    if random_seed is None:
        return int(np.random.default_rng().integers(2**31 - 1))
    if isinstance(random_seed, bool) or not isinstance(random_seed, int | np.integer):
        raise ParameterError(
            f"random_seed must be an int or None: got {random_seed!r}; pass e.g. random_seed=0"
        )
    if random_seed < 0:
        raise ParameterError(f"random_seed must be >= 0, got {random_seed}; pass e.g. 0")
    return int(random_seed)


def point_dataset(
    point: Mapping[str, np.ndarray],
    spec: ModelSpec,
    feature_names: list[str],
    attrs: Mapping[str, Any] | None = None,
    coords: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """An xarray Dataset of one point estimate, with the names and dims of the contract.

    Parameters
    ----------
    point : mapping
        ``w`` (K,) and the family's variables
        (:func:`bayesmix.families.result_variables`); others are ignored.
    spec : ModelSpec
    feature_names : list of str
    attrs : mapping, optional
    coords : mapping, optional
        Extra coordinates of the family's dims (:meth:`bayesmix.families.Family.coords`).

    Returns
    -------
    xarray.Dataset
    """
    d = len(feature_names)
    all_coords: dict[str, Any] = {
        "component": np.arange(spec.n_components),
        "feature": list(feature_names),
    }
    data = {}
    for name, dims in result_variables(spec.family, spec.covariance, d).items():
        if name in point and point[name] is not None:
            data[name] = (dims, np.asarray(point[name], dtype=float))
            if "feature_bis" in dims:
                all_coords["feature_bis"] = list(feature_names)
    for name, value in (coords or {}).items():
        if any(name in dims for dims, _ in data.values()):
            all_coords[name] = value
    return xr.Dataset(data, coords=all_coords, attrs=dict(attrs or {}))


def group_arrays(
    ds: xr.Dataset | xr.DataTree, *, sample_dims: tuple[str, ...] = ("chain", "draw")
) -> dict[str, np.ndarray]:
    """The one reader of a group's parameters into float arrays, in result names.

    ``w`` and every other variable with a ``component`` dim, the sample dims first, in their
    order (a point estimate has none). Variables with sample dims but no ``component`` dim
    (e.g. ``lp``) are left out.
    """
    if isinstance(ds, xr.DataTree):
        ds = ds.to_dataset()
    out = {}
    for name, da in ds.data_vars.items():
        if "component" not in da.dims:
            continue
        lead = [dim for dim in sample_dims if dim in da.dims]
        out[str(name)] = np.asarray(da.transpose(*lead, "component", ...).values, dtype=float)
    return out


def point_from_group(result: xr.DataTree, group: str) -> dict[str, np.ndarray]:
    """Parameter arrays of a group, with draws flattened to a leading sample axis if any."""
    if group not in result.children:
        raise ParameterError(
            f"result has no group {group!r}: expected one of {sorted(result.children)}; run the "
            "corresponding fit first"
        )
    ds = result[group].to_dataset()
    if "chain" in ds.dims and "draw" in ds.dims:
        ds = ds.stack(sample=("chain", "draw"))
    return group_arrays(ds, sample_dims=("sample",))


def model_spec_of(result: xr.DataTree) -> ModelSpec:
    """The ModelSpec stored in a result's root attrs."""
    try:
        d = json.loads(result.attrs["spec"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ParameterError(
            "result has no bayesmix spec in its attrs: expected a DataTree made by "
            "bayesmix.inference; fit it with fit_em/fit_map/sample_nuts/run"
        ) from exc
    return spec_from_dict(d, name=d.get("name", "run")).model


def observed_X(result: xr.DataTree) -> np.ndarray:
    """The observed data (N, D) of a result."""
    if "observed_data" not in result.children:
        raise ParameterError(
            "result has no observed_data group: expected X to be passed; pass X explicitly"
        )
    return np.asarray(result["observed_data"]["x"].values, dtype=float)


def labels_of(result: Any, n: int) -> np.ndarray | None:
    """Partial labels stored in the observed data of ``result`` (None: none, or not n rows)."""
    if not isinstance(result, xr.DataTree) or "observed_data" not in result.children:
        return None
    obs = result["observed_data"]
    if "labels" not in obs.data_vars or obs["labels"].size != n:
        return None
    return np.asarray(obs["labels"].values, dtype=np.int64)


def missing_of(result: Any) -> str:
    """The ``missing`` setting of a result's fits (root attr; ``"error"`` when absent)."""
    if not isinstance(result, xr.DataTree):
        return "error"
    return str(result.attrs.get("missing", "error"))


def weights_of(result: Any, n: int) -> np.ndarray | None:
    """Frequency weights stored in the observed data of ``result`` (None: none, or not n rows)."""
    if not isinstance(result, xr.DataTree) or "observed_data" not in result.children:
        return None
    obs = result["observed_data"]
    if "sample_weight" not in obs.data_vars or obs["sample_weight"].size != n:
        return None
    return np.asarray(obs["sample_weight"].values, dtype=float)


def feature_names_of(result: xr.DataTree) -> list[str]:
    """Feature labels stored in the observed data (or any group with a feature coord)."""
    for g in ("observed_data", "em", "map", "posterior"):
        if g in result.children and "feature" in result[g].coords:
            return [str(f) for f in result[g].coords["feature"].values]
    raise ParameterError("result has no feature coordinate: expected a bayesmix result")


def row_labels(X: Any) -> np.ndarray | None:
    """The ``obs_id`` labels that ``X`` carries, or None (then positions 0..N-1 are used).

    A pandas DataFrame or Series whose index is not the default 0..N-1 (an id column of
    :func:`bayesmix.data.load_table`, or rows kept by ``dropna``) gives its index values:
    int64 for an integer index, else str. A repeated or multi-level index gives None.

    Parameters
    ----------
    X : array-like of shape (N, D), or a DataFrame/Series with N rows

    Returns
    -------
    ndarray of shape (N,) or None
    """
    index = getattr(X, "index", None)
    if not isinstance(index, pd.Index) or isinstance(index, pd.MultiIndex):
        return None
    if index.equals(pd.RangeIndex(len(index))) or not index.is_unique:
        return None
    if pd.api.types.is_integer_dtype(index.dtype):
        return index.to_numpy(dtype=np.int64)
    return np.asarray([str(v) for v in index], dtype=str)


def estimate_group(result: xr.DataTree) -> str:
    """The group whose parameters best stand for the fit: posterior, else map, else em.

    Raises
    ------
    DataError
        When the result has none of them.
    """
    for group in ("posterior", "map", "em"):
        if group in result.children:
            return group
    raise DataError(
        "result has no fitted parameters: expected a posterior, map or em group, got "
        f"{', '.join(sorted(result.children)) or 'none'}; fit it first"
    )


def obs_id_coord(result: xr.DataTree | None, n: int) -> np.ndarray:
    """The ``obs_id`` coordinate for the ``n`` observed rows of ``result``.

    The labels of ``observed_data`` when it has ``n`` rows (so every group of a result
    agrees), else positions 0..n-1 (no result, or new points that are not the observed ones).

    Parameters
    ----------
    result : xarray.DataTree or None
    n : int

    Returns
    -------
    ndarray of shape (n,)
    """
    if result is not None and "observed_data" in result.children:
        obs = result["observed_data"]
        if "obs_id" in obs.coords and obs.coords["obs_id"].size == n:
            return obs.coords["obs_id"].values
    return np.arange(n)


def new_tree(
    spec: ModelSpec | RunSpec,
    X: np.ndarray,
    feature_names: list[str],
    seed: int | None,
    obs_ids: np.ndarray | None = None,
    sample_weight: np.ndarray | None = None,
    raw: Any = None,
    labels: np.ndarray | None = None,
    missing: str = "error",
) -> xr.DataTree:
    """A result tree with root attrs and the ``observed_data`` group.

    ``raw`` is the data as given (e.g. a DataFrame of text levels): the family's
    ``data_attrs`` of it become the attrs of ``observed_data``.

    ``obs_ids`` (N,) labels the rows (see :func:`row_labels`); default 0..N-1. Frequency
    weights, when the fit used them, are stored as ``observed_data["sample_weight"]``
    (obs_id) and read back by :func:`weights_of`; partial labels as ``observed_data["labels"]``
    (obs_id, int, -1 = unknown; :func:`labels_of`). ``missing`` becomes the root attr
    ``missing`` (:func:`missing_of`); data with NaN (missing values) keep them, as float64
    whatever the family's ``observed_dtype``.
    """
    from bayesmix import __version__

    run = spec if isinstance(spec, RunSpec) else RunSpec(model=spec)
    m = run.model
    root = xr.DataTree(
        dataset=xr.Dataset(
            attrs={
                "bayesmix_version": __version__,
                "spec": run.to_json(),
                "seed": -1 if seed is None else int(seed),
                "family": m.family,
                "covariance": m.covariance if get_family(m.family).covariances else "none",
                "n_components": m.n_components,
                "missing": missing,
                "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                "format": RESULT_FORMAT,
            }
        )
    )
    has_nan = X.dtype.kind == "f" and bool(np.isnan(X).any())
    xdata = X if has_nan else X.astype(get_family(m.family).observed_dtype, copy=False)
    data = {"x": (("obs_id", "feature"), xdata)}
    if sample_weight is not None:
        data["sample_weight"] = (("obs_id",), np.asarray(sample_weight, dtype=float))
    if labels is not None:
        data["labels"] = (("obs_id",), np.asarray(labels, dtype=np.int64))
    fam = get_family(m.family)
    attrs = fam.data_attrs(X if raw is None else raw, list(feature_names))
    root["observed_data"] = xr.DataTree(
        xr.Dataset(
            data,
            coords={"obs_id": _obs_ids(obs_ids, X.shape[0]), "feature": list(feature_names)},
            attrs=attrs,
        )
    )
    return root


def _obs_ids(obs_ids: np.ndarray | None, n: int) -> np.ndarray:
    if obs_ids is None or len(obs_ids) != n:
        return np.arange(n)
    return np.asarray(obs_ids)


def ensure_tree(
    result: xr.DataTree | None,
    spec: ModelSpec,
    X: np.ndarray,
    feature_names: list[str],
    seed: int | None,
    obs_ids: np.ndarray | None = None,
    sample_weight: np.ndarray | None = None,
    raw: Any = None,
    labels: np.ndarray | None = None,
    missing: str = "error",
) -> xr.DataTree:
    """``result`` (checked to be a DataTree) or a fresh tree (rows labelled by ``obs_ids``)."""
    if result is None:
        return new_tree(spec, X, feature_names, seed, obs_ids, sample_weight, raw, labels, missing)
    if not isinstance(result, xr.DataTree):
        raise ParameterError(
            f"result must be an xarray.DataTree or None, got {type(result).__name__}; pass the "
            "tree returned by an earlier fit"
        )
    if missing == "model":  # a later fit of the same rows modelled missing values
        result.attrs["missing"] = missing
    if labels is not None and "observed_data" in result.children:
        obs = result["observed_data"].to_dataset()
        if "labels" not in obs.data_vars and obs.sizes.get("obs_id") == len(labels):
            obs["labels"] = (("obs_id",), np.asarray(labels, dtype=np.int64))
            result["observed_data"] = xr.DataTree(obs)
    return result
