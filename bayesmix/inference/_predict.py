"""Membership probabilities, predictive draws and new data from a fitted result."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from bayesmix import _math
from bayesmix._validation import ParameterError
from bayesmix.config import ModelSpec, RunSpec
from bayesmix.families import get_family, result_variables, sample_draws
from bayesmix.graphs import validate_data
from bayesmix.inference._compiled import get_compiled
from bayesmix.inference._tree import (
    DRAW_GROUPS,
    as_model_spec,
    check_int,
    estimate_group,
    feature_names_of,
    group_arrays,
    labels_of,
    missing_of,
    model_spec_of,
    new_tree,
    obs_id_coord,
    observed_X,
    point_from_group,
    resolve_seed,
    row_labels,
)

__all__ = [
    "IMPUTE_METHODS",
    "as_images",
    "generate",
    "impute",
    "membership",
    "sample_posterior_predictive",
    "sample_prior_predictive",
]

# draws x observations x components per block of membership: ~8 MB per temporary, whatever N
_MEMBERSHIP_BLOCK_ELEMENTS = 1_000_000
MAX_PREDICTIVE_ELEMENTS = 50_000_000
IMPUTE_METHODS = ("mean", "draws")


def _check_result(result: Any) -> xr.DataTree:
    if not isinstance(result, xr.DataTree):
        raise ParameterError(
            f"result must be an xarray.DataTree from bayesmix.inference, got "
            f"{type(result).__name__}; fit a model first"
        )
    return result


def membership(result: xr.DataTree, X: Any = None, *, group: str = "posterior") -> xr.Dataset:
    """Posterior membership probabilities ``p(z_n = k | x_n)``.

    For a group of draws, the responsibilities are computed for every draw (with
    :func:`bayesmix._math.log_responsibilities`) and then averaged: ``mean`` is the posterior
    membership probability, ``sd`` its posterior standard deviation across draws (large where
    clusters overlap and the parameters are uncertain). For a point group (``em``, ``map``)
    ``sd`` is 0.

    Parameters
    ----------
    result : xarray.DataTree
    X : array-like of shape (N, D), optional
        Points to classify; default: the observed data. NaN entries are missing values when
        the result was fitted with ``missing="model"`` (the observed data keep them): the
        membership of a row then comes from its observed coordinates.
    group : str
        ``"posterior"``, ``"advi"``, ``"em"`` or ``"map"``.

    Returns
    -------
    xarray.Dataset
        ``mean`` and ``sd`` with dims (obs_id, component). Partial labels of the fit are not
        imposed: a labelled row gets the model's ``p(z_n = k | x_n)`` too, as EM's
        ``predict``.
    """
    result = _check_result(result)
    spec = model_spec_of(result)
    d = len(feature_names_of(result))
    Xc = (
        observed_X(result)
        if X is None
        else validate_data(spec, X, n_features=d, fitting=False, missing=missing_of(result))
    )
    params = point_from_group(result, group)
    w = params["w"]
    if w.ndim == 1:
        mean = np.exp(_math.log_responsibilities(Xc, params, spec.family))
        sd = np.zeros_like(mean)
    else:
        n_draws = w.shape[0]
        s1 = np.zeros((Xc.shape[0], w.shape[-1]))
        s2 = np.zeros_like(s1)
        step = max(1, _MEMBERSHIP_BLOCK_ELEMENTS // (Xc.shape[0] * w.shape[-1]))
        for start in range(0, n_draws, step):
            blk = {k: v[start : start + step] for k, v in params.items()}
            r = np.exp(_math.log_responsibilities(Xc, blk, spec.family))
            s1 += r.sum(axis=0)
            s2 += (r**2).sum(axis=0)
        mean = s1 / n_draws
        sd = np.sqrt(np.maximum(s2 / n_draws - mean**2, 0.0))
    coords = {
        "obs_id": obs_id_coord(None if X is not None else result, Xc.shape[0]),
        "component": np.arange(w.shape[-1]),
    }
    return xr.Dataset(
        {"mean": (("obs_id", "component"), mean), "sd": (("obs_id", "component"), sd)},
        coords=coords,
        attrs={"group": group},
    )


def sample_posterior_predictive(
    result: xr.DataTree,
    *,
    group: str = "posterior",
    random_seed: int | None = None,
    num_draws: int | None = None,
    max_draws: int | None = None,
) -> xr.DataTree:
    """Add ``posterior_predictive`` with ``x`` (chain, draw, obs_id, feature).

    One replicate data set of the observed size per draw of ``group``, drawn in NumPy from the
    model's generative process (label from ``w``, then the component density), which is what
    ``pm.sample_posterior_predictive`` does, without compiling a sampling function.

    Parameters
    ----------
    result : xarray.DataTree
        Must hold ``group`` (draws) and ``observed_data``.
    group : str
        ``"posterior"`` or ``"advi"``.
    random_seed : int, optional
    num_draws : int, optional
        Draws per chain to use, evenly spaced. Default: all of them, unless the replicates
        would exceed ``MAX_PREDICTIVE_ELEMENTS`` (5e7) values; then as many as fit.
    max_draws : int, optional
        At most this many draws in all, spread over the chains (``max_draws // chains`` per
        chain, at least one, evenly spaced); combined with ``num_draws``, the smaller wins.
        :func:`bayesmix.inference.run` passes ``[fit] ppc_draws`` (default 100): enough for
        the posterior predictive plots, and the group no longer grows with the draws.

    Returns
    -------
    xarray.DataTree
        ``result`` with the new group (modified in place and returned). Gaussian replicates
        are float32 (float64 when the data's offset is too large for float32 to resolve a
        1e-4 of the spread), Bernoulli replicates int8.
    """
    result = _check_result(result)
    spec = model_spec_of(result)
    X = observed_X(result)
    names = feature_names_of(result)
    if group not in result.children or "chain" not in result[group].dims:
        raise ParameterError(
            f"group {group!r} must hold draws (chain, draw): got groups "
            f"{sorted(result.children)}; run sample_nuts or fit_advi first"
        )
    rng = np.random.default_rng(resolve_seed(random_seed))
    ds = result[group].to_dataset()
    nc, nd = ds.sizes["chain"], ds.sizes["draw"]
    if num_draws is None:
        num_draws = max(1, min(nd, MAX_PREDICTIVE_ELEMENTS // (nc * X.size)))
    num_draws = min(check_int(num_draws, "num_draws", 1), nd)
    if max_draws is not None:
        num_draws = min(num_draws, max(1, check_int(max_draws, "max_draws", 1) // nc))
    keep = np.unique(np.linspace(0, nd - 1, num_draws).round().astype(int))
    ds = ds.isel(draw=keep)
    nd = keep.size
    params = group_arrays(ds.stack(sample=("chain", "draw")), sample_dims=("sample",))
    fam = get_family(spec.family)
    x = np.empty((nc * nd, X.shape[0], X.shape[1]), fam.replicate_dtype(X))
    for start in range(0, nc * nd, 64):  # blocks of draws bound the temporaries
        blk = {k: v[start : start + 64] for k, v in params.items()}
        x[start : start + 64] = sample_draws(fam, blk, X.shape[0], rng)[0]
    x = x.reshape(nc, nd, X.shape[0], X.shape[1])
    pp = xr.Dataset(
        {"x": (("chain", "draw", "obs_id", "feature"), x)},
        coords={
            "chain": ds["chain"].values,
            "draw": ds["draw"].values,
            "obs_id": obs_id_coord(result, X.shape[0]),
            "feature": names,
        },
    )
    result["posterior_predictive"] = xr.DataTree(pp)
    return result


def sample_prior_predictive(
    result_or_spec: xr.DataTree | ModelSpec | RunSpec,
    X: Any = None,
    *,
    draws: int = 500,
    random_seed: int | None = None,
) -> xr.DataTree:
    """Add ``prior`` and ``prior_predictive`` (``x``) groups drawn with PyMC.

    Parameters
    ----------
    result_or_spec : xarray.DataTree, ModelSpec or RunSpec
        A result (its spec and observed data are used) or a spec (then ``X`` is needed: it
        sets the data-scaled priors and the shape of ``x``).
    X : array-like of shape (N, D), optional
    draws : int
    random_seed : int, optional

    Returns
    -------
    xarray.DataTree
        The result with the groups added, or a new tree for a spec.
    """
    import pymc as pm

    draws = check_int(draws, "draws", 1)
    seed = resolve_seed(random_seed)
    missing = "error"
    if isinstance(result_or_spec, xr.DataTree):
        tree = result_or_spec
        spec = model_spec_of(tree)
        names = feature_names_of(tree)
        missing = missing_of(tree)
        Xc = (
            observed_X(tree)
            if X is None
            else validate_data(spec, X, n_features=len(names), missing=missing)
        )
    else:
        spec = as_model_spec(result_or_spec)
        if X is None:
            raise ParameterError(
                "X is required with a spec: expected the data (N, D) that scale the priors; "
                "pass X=..."
            )
        Xc = validate_data(spec, X)
        names = None
        tree = None
    cm = get_compiled(spec, Xc, feature_names=names, missing=missing)
    names = cm.feature_names
    if tree is None:
        tree = new_tree(result_or_spec, Xc, names, seed, row_labels(X))
    # a forward-sampling graph, evaluated once: the Python linker avoids a Numba compile
    pr = pm.sample_prior_predictive(
        draws=draws, model=cm.model, random_seed=seed, compile_kwargs={"mode": "FAST_COMPILE"}
    )
    wanted = result_variables(spec.family, spec.covariance, Xc.shape[1])
    prior = pr["prior"].to_dataset()[[v for v in wanted if v in pr["prior"]]]
    ppx = pr["prior_predictive"].to_dataset()[["x"]]
    ppx["x"] = ppx["x"].astype(get_family(spec.family).observed_dtype, copy=False)
    prior = prior.assign_coords(feature=names)
    if "feature_bis" in prior.dims:
        prior = prior.assign_coords(feature_bis=names)
    tree["prior"] = xr.DataTree(prior)
    ppx = ppx.assign_coords(feature=names, obs_id=obs_id_coord(tree, Xc.shape[0]))
    tree["prior_predictive"] = xr.DataTree(ppx)
    return tree


def impute(
    result: xr.DataTree,
    X: Any = None,
    *,
    group: str | None = None,
    method: str | None = None,
    labels: Any = None,
    random_seed: int | None = None,
    max_draws: int | None = None,
    n_draws: int = 100,
) -> xr.DataArray:
    """The missing entries (NaN) of the data, filled in by the fitted mixture.

    Within component k a family fills the missing coordinates ``x_m`` of a row from its
    observed ones ``x_o`` (:meth:`~bayesmix.families.Family.conditional_fill`: the Gaussian's
    conditional normal, the component's own distribution for independent features), and the
    row's component is weighed by ``p(z = k | x_o, theta)`` (a labelled row's label):

    * ``method="mean"``: the conditional mean ``E[x_m | x_o] = sum_k p(z = k | x_o, theta)
      E[x_m | x_o, z = k]`` at a point estimate (``em``, ``map``); with a group of draws its
      average over the draws (the posterior predictive mean of ``x_m``).
    * ``method="draws"``: draws of the missing entries, for each parameter draw ``z ~ p(z |
      x_o, theta)`` then ``x_m ~ p(x_m | x_o, z, theta)``: posterior predictive draws for a
      group of draws (``posterior``, ``advi``: multiple imputation), ``n_draws`` draws at the
      point estimate for ``em`` / ``map``.

    Parameters
    ----------
    result : xarray.DataTree
        A fit (``missing="model"`` when its observed data hold NaN).
    X : array-like of shape (N, D), optional
        Data with NaN to fill (the family must model missing values); default: the result's
        observed data.
    group : str, optional
        ``"posterior"``, ``"advi"``, ``"map"`` or ``"em"``; default: the posterior, else the
        MAP, else the EM estimate.
    method : {"mean", "draws"}, optional
        Default: ``"draws"`` for a group of draws, ``"mean"`` for a point estimate.
    labels : array-like of shape (N,), optional
        Partial labels of the rows (-1 unknown); default: the fit's labels when ``X`` is
        None.
    random_seed : int, optional
    max_draws : int, optional
        ``"draws"`` of a group of draws: at most this many parameter draws in all, evenly
        spaced in each chain (as :func:`sample_posterior_predictive`); None: every draw.
    n_draws : int
        ``"draws"`` at a point estimate: the number of imputations.

    Returns
    -------
    xarray.DataArray
        ``method="mean"``: ``x`` (obs_id, feature), the data with every missing entry
        replaced (float64). ``method="draws"``: ``x`` (chain, draw, missing), one value per
        draw and missing entry (a point estimate's draws have chain 0), compact whatever the
        share of missing values; the ``missing`` dim has coords ``obs_id`` and ``feature``
        (the entry's row label and column name) and ``row`` / ``column`` (its positions), so
        ``X[da.row, da.column] = da.isel(chain=c, draw=s)`` completes the data of one draw.
        Attrs ``method``, ``group``.
    """
    result = _check_result(result)
    spec = model_spec_of(result)
    fam = get_family(spec.family)
    names = feature_names_of(result)
    group = estimate_group(result) if group is None else group
    draws_group = group in DRAW_GROUPS
    if method is None:
        method = "draws" if draws_group else "mean"
    if method not in IMPUTE_METHODS:
        raise ParameterError(
            f"method must be one of {', '.join(IMPUTE_METHODS)}: got {method!r}; pass "
            "method='mean' (conditional means) or method='draws' (predictive draws)"
        )
    if X is None:
        Xc = observed_X(result)
        obs_ids = obs_id_coord(result, Xc.shape[0])
        if labels is None:
            labels = labels_of(result, Xc.shape[0])
    else:
        Xc = validate_data(spec, X, n_features=len(names), fitting=False, missing="model")
        obs_ids = np.arange(Xc.shape[0]) if row_labels(X) is None else row_labels(X)
    from bayesmix.graphs import check_labels

    known = check_labels(labels, Xc.shape[0], spec.n_components)
    rng = np.random.default_rng(resolve_seed(random_seed))
    params, lead = _impute_params(result, group, draws_group, method, max_draws, n_draws)
    rows_all, cols_all = np.nonzero(np.isnan(Xc))
    todo = np.unique(rows_all)  # only the rows with a missing entry
    Xm = Xc[todo]
    lab = None if known is None else known[todo]
    s_total = params["w"].shape[0]
    step = max(1, _MEMBERSHIP_BLOCK_ELEMENTS // max(Xm.shape[0] * Xm.shape[1], 1))
    k = params["w"].shape[-1]
    if method == "mean":
        acc = np.zeros(Xm.shape)
        for start in range(0, s_total, step):
            blk = {name: v[start : start + step] for name, v in params.items()}
            resp = np.exp(_math.log_responsibilities(Xm, blk, fam, lab))  # (s, n, K)
            for j in range(k):
                z = np.full(resp.shape[:2], j)
                acc += np.einsum("sn,snd->nd", resp[..., j], fam.conditional_fill(blk, Xm, z))
        filled = np.array(Xc, dtype=float)
        filled[todo] = np.where(np.isnan(Xm), acc / s_total, Xm)
        return xr.DataArray(
            filled,
            dims=("obs_id", "feature"),
            coords={"obs_id": obs_ids, "feature": names},
            name="x",
            attrs={"method": method, "group": group},
        )
    where = np.searchsorted(todo, rows_all)  # position of each missing entry among todo
    out = np.empty((s_total, rows_all.size))
    for start in range(0, s_total, step):
        blk = {name: v[start : start + step] for name, v in params.items()}
        resp = np.exp(_math.log_responsibilities(Xm, blk, fam, lab))  # (s, n, K)
        cdf = np.cumsum(resp, axis=-1)
        u = rng.random(resp.shape[:2] + (1,))
        z = np.minimum((u > cdf).sum(axis=-1), k - 1)
        filled = fam.conditional_fill(blk, Xm, z, rng)
        out[start : start + step] = filled[:, where, cols_all]
    nc, nd = lead
    return xr.DataArray(
        out.reshape(nc, nd, rows_all.size),
        dims=("chain", "draw", "missing"),
        coords={
            "chain": np.arange(nc),
            "draw": np.arange(nd),
            "obs_id": ("missing", np.asarray(obs_ids)[rows_all]),
            "feature": ("missing", np.asarray(names)[cols_all]),
            "row": ("missing", rows_all),
            "column": ("missing", cols_all),
        },
        name="x",
        attrs={"method": method, "group": group},
    )


def _impute_params(result, group, draws_group, method, max_draws, n_draws):
    """Parameter arrays with a leading sample axis for :func:`impute`, and (chains, draws)."""
    if group not in result.children:
        raise ParameterError(
            f"result has no group {group!r}: expected one of {sorted(result.children)}; run the "
            "corresponding fit first"
        )
    if draws_group:
        ds = result[group].to_dataset()
        if "chain" not in ds.dims:
            raise ParameterError(
                f"group {group!r} must hold draws (chain, draw); run sample_nuts or fit_advi"
            )
        nc, nd = ds.sizes["chain"], ds.sizes["draw"]
        if method == "draws" and max_draws is not None:
            per_chain = max(1, check_int(max_draws, "max_draws", 1) // nc)
            keep = np.unique(np.linspace(0, nd - 1, min(per_chain, nd)).round().astype(int))
            ds = ds.isel(draw=keep)
            nd = keep.size
        params = group_arrays(ds.stack(sample=("chain", "draw")), sample_dims=("sample",))
        return params, (nc, nd)
    point = point_from_group(result, group)
    reps = check_int(n_draws, "n_draws", 1) if method == "draws" else 1
    params = {name: np.repeat(np.asarray(v)[None], reps, axis=0) for name, v in point.items()}
    return params, (1, reps)


def generate(
    result: xr.DataTree,
    n: int,
    *,
    group: str = "posterior",
    random_seed: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """New observations from the fitted model.

    With a group of draws each new point uses a randomly chosen draw (the posterior
    predictive distribution); with ``em``/``map`` the point estimate.

    Parameters
    ----------
    result : xarray.DataTree
    n : int
        Number of new observations.
    group : str
    random_seed : int, optional

    Returns
    -------
    X_new : ndarray of shape (n, D)
        Float (Gaussian) or int (Bernoulli; see :func:`as_images` for digits).
    z : ndarray of shape (n,)
        Component of each point.
    """
    result = _check_result(result)
    n = check_int(n, "n", 1)
    spec = model_spec_of(result)
    rng = np.random.default_rng(resolve_seed(random_seed))
    params = point_from_group(result, group)
    if params["w"].ndim == 1:
        params = {k: v[None] for k, v in params.items()}
    s = params["w"].shape[0]
    idx = rng.integers(s, size=n)
    picked = {k: v[idx] for k, v in params.items()}  # one draw per new point
    x, z = sample_draws(spec.family, picked, 1, rng)
    return x[:, 0, :], z[:, 0]


def as_images(X: np.ndarray, shape: tuple[int, int] = (8, 8)) -> np.ndarray:
    """Reshape rows of pixels (n, H*W) into images (n, H, W), e.g. 64 -> 8x8 digits.

    Parameters
    ----------
    X : ndarray of shape (n, H*W) or (H*W,)
    shape : tuple of int

    Returns
    -------
    ndarray of shape (n, H, W)
    """
    X = np.asarray(X)
    if X.ndim == 1:
        X = X[None]
    if X.shape[1] != shape[0] * shape[1]:
        raise ParameterError(
            f"cannot reshape {X.shape[1]} features into {shape}: expected "
            f"{shape[0] * shape[1]} features; pass shape=(h, w) with h*w = {X.shape[1]}"
        )
    return X.reshape(X.shape[0], *shape)
