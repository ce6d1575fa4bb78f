"""Label alignment of mixture posteriors (the label-switching problem).

The likelihood of a mixture is invariant under any permutation of its components, so a
sampler may visit the ``K!`` symmetric modes: within a chain (a *switch*) or between chains
(each chain settles on a different labelling). Posterior summaries per component are then
meaningless. :func:`relabel` finds, for every draw, the permutation of the component axis
that makes component ``j`` mean the same thing in every chain, every draw and in the ``em``
and ``map`` point estimates.

Algorithms
----------
``method="pivot"`` (ECR-like pivotal reordering on parameters)
    Every draw's components are described by a vector ``theta_k`` (``log w``, ``mu``,
    ``log sigma``, ``logit p``). For draw ``m`` the permutation minimises
    ``sum_j sum_p ((theta_m[perm[j], p] - ref[j, p]) / s[j, p])^2`` with
    :func:`scipy.optimize.linear_sum_assignment`, where ``ref`` is the pivot (the reference
    estimate) and ``s`` the posterior spread of each aligned coordinate. The spread starts as
    one that needs no labels (the root mean over ``j`` of the variance across draws of the
    ``j``-th smallest value of the coordinate) and is re-estimated from the aligned draws until
    the permutations stop changing.
``method="stephens"`` (Stephens 2000, KL algorithm on classification probabilities)
    ``P[m, n, k]``, the posterior membership probabilities of observation ``n`` under draw
    ``m``, are computed with :func:`bayesmix._math.log_responsibilities` from
    ``observed_data``. Starting from the pivot solution, iterate: ``Q = mean_m P_m[:, perm_m]``
    then for each draw choose the permutation minimising ``KL(P_m[:, perm_m] || Q)``, which is
    a linear assignment with costs ``-sum_n P[m, n, k] log Q[n, j]``. The KL objective never
    increases, so the loop stops after a few iterations.

In both cases the whole labelling is finally matched to the reference (``em``, ``map`` or the
pivot draw, the draw of largest ``lp``) by one more assignment on the aligned posterior
means, and the point estimates that are not the reference are permuted to match the aligned
posterior.

Conventions
-----------
``permutation[chain, draw, j]`` is the *original* component index that becomes component
``j``: ``new[..., j] = old[..., permutation[j]]``. Every posterior variable with a
``component`` dim is permuted (``w``, ``mu``, ``sigma``, ``cov``, ``corr``, ``p``, ...), an
integer assignment variable ``z`` is relabelled, and ``log_likelihood`` is left unchanged (it
is invariant).
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd
import xarray as xr
from scipy.optimize import linear_sum_assignment

from bayesmix import _math
from bayesmix._validation import DataError, ParameterError
from bayesmix.families import get_family, guess_family

__all__ = ["relabel", "label_switching_report", "component_vars"]
METHODS = ("stephens", "pivot")
REFERENCES = ("em", "map", "pivot")
_SAMPLE_DIMS = ("chain", "draw")
_BRUTE_FORCE_MAX_K = 5
_MAX_ITER = 50
# Membership probabilities (draws x N x K values) kept whole by Stephens' method up to this
# (80 MB); above it they are recomputed a block of draws at a time in every pass.
_STEPHENS_VALUES = 10_000_000
# Values per block when they are computed (8 MB; the densities' temporaries are D times more).
_BLOCK_VALUES = 1_000_000


# --------------------------------------------------------------------------------------
# small helpers shared by the results modules
# --------------------------------------------------------------------------------------
def _group(result: xr.DataTree, name: str) -> xr.Dataset | None:
    """Return group ``name`` of ``result`` as a Dataset, or None when it is absent."""
    if name in result.children:
        return result[name].to_dataset()
    return None


def _require_posterior(result: xr.DataTree, what: str) -> xr.Dataset:
    if not isinstance(result, xr.DataTree):
        raise DataError(
            f"{what} needs a result tree: expected an xarray.DataTree, got "
            f"{type(result).__name__}; pass the DataTree returned by bayesmix.inference"
        )
    post = _group(result, "posterior")
    if post is None:
        raise DataError(
            f"{what} needs posterior draws: expected a 'posterior' group, got groups "
            f"{sorted(result.children)}; run bayesmix.inference.sample_nuts first"
        )
    missing = [d for d in _SAMPLE_DIMS if d not in post.dims]
    if missing or "w" not in post or "component" not in post["w"].dims:
        raise DataError(
            f"{what}: expected a posterior with dims (chain, draw, component) and a variable "
            f"'w', got dims {dict(post.sizes)} and variables {sorted(post.data_vars)}; "
            "see docs/architecture.md for the layout"
        )
    return post


def _component_names(ds: xr.Dataset) -> list[str]:
    """Variables of ``ds`` with a ``component`` dim, the known ones first."""
    names = component_vars(ds)
    names += [v for v in ds.data_vars if v not in names and "component" in ds[v].dims]
    return names


def _max_diag(ds: xr.Dataset, names: list[str]) -> tuple[float, float]:
    """Largest R-hat and smallest bulk ESS over the scalar entries of ``names``."""
    import arviz as az

    sub = ds[names]
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        rhat = az.rhat(sub)
        ess = az.ess(sub, method="bulk")
    r = [np.asarray(rhat[v].values, float).ravel() for v in names]
    e = [np.asarray(ess[v].values, float).ravel() for v in names]
    r_all, e_all = np.concatenate(r), np.concatenate(e)
    max_r = float(np.nanmax(r_all)) if np.isfinite(r_all).any() else float("nan")
    min_e = float(np.nanmin(e_all)) if np.isfinite(e_all).any() else float("nan")
    return max_r, min_e


def _stacked(da: xr.DataArray, lead: tuple[str, ...]) -> np.ndarray:
    """Values of ``da`` with dims ordered ``lead + (component, feature, feature_bis)``."""
    order = [d for d in lead if d in da.dims]
    order += [d for d in ("component", "feature", "feature_bis") if d in da.dims]
    order += [d for d in da.dims if d not in order]
    return np.asarray(da.transpose(*order).values, dtype=float)


def component_vars(ds: xr.Dataset) -> list[str]:
    """The variables of a group that have a ``component`` dim, in the group's order."""
    return [str(v) for v in ds.data_vars if "component" in ds[v].dims]


def _family(result: xr.DataTree, ds: xr.Dataset):
    name = result.attrs.get("family") or guess_family(ds.data_vars)
    return get_family(str(name))


def _features(ds: xr.Dataset, lead: tuple[str, ...], family) -> np.ndarray:
    """Per-component description ``theta`` of shape ``lead + (K, P)`` used by the pivot.

    ``log w`` and the family's :meth:`~bayesmix.families.Family.label_features`.
    """
    params = _params(ds, lead)
    log_w = np.log(np.clip(params.pop("w"), 1e-12, None))[..., None]
    return np.concatenate([log_w, family.label_features(params)], axis=-1)


def _params(ds: xr.Dataset, lead: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Parameter dict for :mod:`bayesmix._math` with leading dims ``lead``."""
    return {name: _stacked(ds[name], lead) for name in component_vars(ds)}


# --------------------------------------------------------------------------------------
# assignment
# --------------------------------------------------------------------------------------
def _assign(cost: np.ndarray) -> np.ndarray:
    """Best permutation per draw.

    Parameters
    ----------
    cost : ndarray of shape (M, K, K)
        ``cost[m, k, j]``: cost of giving original component ``k`` the new label ``j``.

    Returns
    -------
    ndarray of shape (M, K)
        ``perm[m, j]``: the original component that becomes component ``j``.
    """
    m, k, _ = cost.shape
    if k <= _BRUTE_FORCE_MAX_K:
        all_perms = np.array(list(itertools.permutations(range(k))))  # (K!, K): p[j] = k
        totals = cost[:, all_perms, np.arange(k)].sum(axis=-1)  # (M, K!)
        return all_perms[np.argmin(totals, axis=1)]
    perm = np.empty((m, k), dtype=int)
    for i in range(m):
        rows, cols = linear_sum_assignment(cost[i])
        perm[i, cols] = rows
    return perm


def _apply(arr: np.ndarray, perm: np.ndarray) -> np.ndarray:
    """``arr`` (M, K, ...) with its axis 1 permuted per draw by ``perm`` (M, K)."""
    idx = perm.reshape(perm.shape + (1,) * (arr.ndim - 2))
    return np.take_along_axis(arr, idx, axis=1)


def _sq_distance(theta: np.ndarray, ref: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``cost[m, k, j] = sum_p ((theta[m, k, p] - ref[j, p]) / scale[j, p])^2``, (M, K, K).

    Expanded into matrix products so that no (M, K, K, P) temporary is formed.
    """
    inv2 = 1.0 / scale**2  # (K, P)
    cost = (theta**2) @ inv2.T  # (M, K, K)
    cost -= 2.0 * theta @ (ref * inv2).T
    cost += np.sum(ref**2 * inv2, axis=1)[None, None, :]
    return np.maximum(cost, 0.0)


def _pivot_perms(theta: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, int]:
    """Pivotal reordering of draws ``theta`` (M, K, P) onto the pivot ``ref`` (K, P)."""
    m, k, p = theta.shape
    pooled = theta.reshape(m * k, p).std(axis=0)
    floor = 1e-6 * (pooled + 1e-12)
    # The first spread must not depend on the labels: the spread across draws of each order
    # statistic (the j-th smallest value of a coordinate in a draw), averaged over j. Where
    # components are apart in a coordinate it is their within-component spread; the pooled
    # spread would add the between-component spread, so that well-separated means weigh
    # little next to the noise of coordinates in which the components coincide (equal weights).
    ordered = np.sort(theta, axis=1)
    spread = np.sqrt(ordered.var(axis=0).mean(axis=0))
    scale = np.broadcast_to(spread + floor, (k, p))
    perm = np.tile(np.arange(k), (m, 1))
    n_iter = 0
    for n_iter in range(1, _MAX_ITER + 1):
        new = _assign(_sq_distance(theta, ref, scale))
        aligned = _apply(theta, new)
        scale = aligned.std(axis=0) + floor
        if n_iter > 1 and np.array_equal(new, perm):
            perm = new
            break
        perm = new
    return perm, n_iter


def _stephens_perms(
    blocks: Callable[[], Iterator[tuple[slice, np.ndarray]]], perm: np.ndarray, n: int
) -> tuple[np.ndarray, int, list[float]]:
    """Stephens' KL relabelling of the membership probabilities P (M, N, K).

    ``blocks()`` yields ``(draws, P[draws])`` over all M draws, a block at a time, so P is
    never held whole for large results. Each iteration is one pass: the cost of every draw's
    labellings against the current ``log Q`` gives the new permutations, and the next ``Q``
    (``Q[n, j] = mean_m P[m, n, perm[m, j]]``) is summed with them in the same pass.
    """
    m, k = perm.shape

    def q_sum(prob: np.ndarray, pm: np.ndarray) -> np.ndarray:
        # sum over the block's draws of P[m, :, pm[m, j]], one distinct permutation at a time
        uniq, which = np.unique(pm, axis=0, return_inverse=True)
        out = np.zeros((prob.shape[1], k))
        for u, row in enumerate(uniq):
            out += prob[which.ravel() == u].sum(axis=0)[:, row]
        return out

    q = np.zeros((n, k))
    for sl, prob in blocks():
        q += q_sum(prob, perm[sl])
    history = []
    n_iter = 0
    for _ in range(_MAX_ITER):
        n_iter += 1
        log_q = np.log(np.clip(q / m, 1e-300, None))
        new = np.empty_like(perm)
        q = np.zeros((n, k))
        total = 0.0
        for sl, prob in blocks():
            cost = -(np.swapaxes(prob, 1, 2) @ log_q)  # (B, K, K)
            new[sl] = _assign(cost)
            rows = np.arange(cost.shape[0])[:, None]
            total += float(cost[rows, new[sl], np.arange(k)[None, :]].sum())
            q += q_sum(prob, new[sl])
        history.append(total)
        if np.array_equal(new, perm):
            break
        perm = new
    return perm, n_iter, history


def _membership_blocks(
    x: np.ndarray, params: dict[str, np.ndarray], family: str, m: int, k: int
) -> Callable[[], Iterator[tuple[slice, np.ndarray]]]:
    """``blocks()`` for :func:`_stephens_perms`: membership probabilities of the draws.

    Computed ``_BLOCK_VALUES`` (draw x observation x component) values at a time (the
    density's temporaries are D times larger); up to ``_STEPHENS_VALUES`` values in all they
    are kept after the first pass, beyond that recomputed in every pass (memory stays bounded).
    """
    n = x.shape[0]
    per_block = max(1, _BLOCK_VALUES // max(1, n * k))
    slices = [slice(a, min(m, a + per_block)) for a in range(0, m, per_block)]

    def compute(sl: slice) -> np.ndarray:
        log_p = _math.log_responsibilities(x, {key: v[sl] for key, v in params.items()}, family)
        return np.exp(log_p, out=log_p)

    if m * n * k <= _STEPHENS_VALUES:
        everything = np.concatenate([compute(sl) for sl in slices])

        def cached() -> Iterator[tuple[slice, np.ndarray]]:
            yield slice(0, m), everything

        return cached

    def recomputed() -> Iterator[tuple[slice, np.ndarray]]:
        for sl in slices:
            yield sl, compute(sl)

    return recomputed


def _match(est: np.ndarray, target: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Permutation of ``est`` (K, P) matching ``target`` (K, P): ``est[perm]`` ~ ``target``."""
    z = (est[:, None, :] - target[None, :, :]) / scale[None, :, :]
    return _assign(np.einsum("kjp,kjp->kj", z, z)[None])[0]


# --------------------------------------------------------------------------------------
# permuting datasets
# --------------------------------------------------------------------------------------
def _permute_draws(ds: xr.Dataset, perm: np.ndarray) -> xr.Dataset:
    """Permute the component axis of every variable of ``ds`` per (chain, draw).

    ``perm`` has shape (chain, draw, K) in the order of ``ds``'s chain and draw coords.
    """
    n_chain, n_draw, k = perm.shape
    flat = perm.reshape(n_chain * n_draw, k)
    out = ds.copy()
    for name in ds.data_vars:
        da = ds[name]
        if not set(_SAMPLE_DIMS) <= set(da.dims):
            continue
        if "component" in da.dims:
            rest = [d for d in da.dims if d not in (*_SAMPLE_DIMS, "component")]
            order = [*_SAMPLE_DIMS, "component", *rest]
            vals = da.transpose(*order).values
            vals = _apply(vals.reshape((n_chain * n_draw,) + vals.shape[2:]), flat)
            new = xr.DataArray(vals.reshape(da.transpose(*order).shape), dims=order)
            out[name] = da.copy(data=new.transpose(*da.dims).values)
        elif name == "z" and np.issubdtype(da.dtype, np.integer):
            inv = np.argsort(perm, axis=-1)  # inv[c, d, old] = new
            vals = da.transpose(*_SAMPLE_DIMS, ...).values
            c_idx = np.arange(n_chain)[:, None, None]
            d_idx = np.arange(n_draw)[None, :, None]
            new = inv[c_idx, d_idx, vals.reshape(n_chain, n_draw, -1)].reshape(vals.shape)
            back = xr.DataArray(new, dims=da.transpose(*_SAMPLE_DIMS, ...).dims)
            out[name] = da.copy(data=back.transpose(*da.dims).values.astype(da.dtype))
    return out


def _permute_point(ds: xr.Dataset, perm: np.ndarray) -> xr.Dataset:
    """Permute the component axis of a point estimate (no chain/draw)."""
    out = ds.copy()
    for name in ds.data_vars:
        da = ds[name]
        if "component" in da.dims:
            moved = da.isel(component=perm)
            out[name] = da.copy(data=moved.transpose(*da.dims).values)
    return out


# --------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------
def _pivot_draw(result: xr.DataTree, post: xr.Dataset) -> tuple[int, int]:
    """Index (chain, draw) of the draw with the largest ``lp`` (or log-likelihood)."""
    stats = _group(result, "sample_stats")
    score = None
    if stats is not None and "lp" in stats:
        score = stats["lp"].transpose(*_SAMPLE_DIMS).values
    else:
        ll = _group(result, "log_likelihood")
        if ll is not None and ll.data_vars:
            name = "x" if "x" in ll else next(iter(ll.data_vars))
            da = ll[name]
            score = da.sum([d for d in da.dims if d not in _SAMPLE_DIMS])
            score = score.transpose(*_SAMPLE_DIMS).values
    if score is None or not np.isfinite(score).any():
        return 0, 0
    c, d = np.unravel_index(np.nanargmax(score), score.shape)
    return int(c), int(d)


def _observed(result: xr.DataTree) -> np.ndarray | None:
    obs = _group(result, "observed_data")
    if obs is None or "x" not in obs:
        return None
    x = obs["x"]
    if x.ndim == 1:
        return np.asarray(x.values, dtype=float)[:, None]
    other = [d for d in x.dims if d != "obs_id"]
    return np.asarray(x.transpose("obs_id", *other).values, dtype=float)


def relabel(
    result: xr.DataTree,
    *,
    method: str = "stephens",
    reference: str = "em",
) -> xr.DataTree:
    """Undo label switching: permute components per draw so that labels agree everywhere.

    Parameters
    ----------
    result : xarray.DataTree
        A result with a ``posterior`` group (dims ``(chain, draw, component, ...)``); an
        ``em`` and/or ``map`` group when used as reference; ``observed_data`` for
        ``method="stephens"``.
    method : {"stephens", "pivot"}
        The relabelling algorithm (see the module docstring).
    reference : {"em", "map", "pivot"}
        Whose labels the aligned posterior takes: the EM estimate, the MAP estimate, or the
        pivot draw (the draw of largest ``lp``).

    Returns
    -------
    xarray.DataTree
        A new tree. ``posterior`` (and the point estimates that are not the reference)
        permuted; a new group ``relabel`` with variable ``permutation`` (chain, draw,
        component), ``em_permutation`` / ``map_permutation`` (component) when those groups
        exist, and attrs ``method``, ``reference``, ``n_switched_draws``, ``n_iter``,
        ``max_rhat_before``, ``max_rhat_after``, ``min_ess_bulk_before``,
        ``min_ess_bulk_after``. ``log_likelihood`` is unchanged.

    Raises
    ------
    ParameterError
        For an unknown ``method`` or ``reference``, or a reference group that is absent.
    DataError
        When the tree has no usable posterior, or ``method="stephens"`` finds no
        ``observed_data``.
    """
    if method not in METHODS:
        raise ParameterError(
            f"unknown relabel method: expected one of {METHODS}, got {method!r}; "
            "use 'stephens' (needs observed_data) or 'pivot'"
        )
    if reference not in REFERENCES:
        raise ParameterError(
            f"unknown relabel reference: expected one of {REFERENCES}, got {reference!r}; "
            "use 'em', 'map' or 'pivot'"
        )
    post = _require_posterior(result, "relabel")
    if reference in ("em", "map") and reference not in result.children:
        raise ParameterError(
            f"reference={reference!r} needs a {reference!r} group: expected it in the tree, "
            f"got groups {sorted(result.children)}; fit it first or pass reference='pivot'"
        )
    names = _component_names(post)
    n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]
    k = post.sizes["component"]
    lead = _SAMPLE_DIMS
    family = _family(result, post)
    theta = _features(post, lead, family).reshape(n_chain * n_draw, k, -1)

    if reference == "pivot":
        c, d = _pivot_draw(result, post)
        ref = theta[c * n_draw + d]
    else:
        ref = _features(_group(result, reference), (), family)
    perm, n_iter = _pivot_perms(theta, ref)

    history: list[float] = []
    if method == "stephens":
        x = _observed(result)
        if x is None:
            raise DataError(
                "method='stephens' needs the data: expected an 'observed_data' group with "
                f"variable 'x', got groups {sorted(result.children)}; add it or use "
                "method='pivot'"
            )
        params = {
            key: val.reshape((n_chain * n_draw,) + val.shape[2:])
            for key, val in _params(post, lead).items()
        }
        blocks = _membership_blocks(x, params, family, n_chain * n_draw, k)
        perm, n_iter, history = _stephens_perms(blocks, perm, x.shape[0])
        # one global permutation so that the labels are those of the reference
        aligned = _apply(theta, perm)
        scale = aligned.std(axis=0) + 1e-6 * (theta.reshape(-1, theta.shape[-1]).std(0) + 1e-12)
        glob = _match(aligned.mean(axis=0), ref, np.broadcast_to(scale.mean(axis=0), scale.shape))
        perm = perm[:, glob]

    aligned = _apply(theta, perm)
    scale = aligned.std(axis=0) + 1e-6 * (theta.reshape(-1, theta.shape[-1]).std(0) + 1e-12)
    post_mean = aligned.mean(axis=0)

    # compose with an earlier relabelling so that `permutation` always maps to the raw draws
    perm3 = perm.reshape(n_chain, n_draw, k)
    new_post = _permute_draws(post, perm3)
    previous = _group(result, "relabel")
    total = perm3
    if previous is not None and "permutation" in previous:
        old = previous["permutation"].transpose(*_SAMPLE_DIMS, "component").values
        total = np.take_along_axis(old, perm3, axis=-1)

    out = result.copy()
    out["posterior"] = xr.DataTree(new_post)
    rel = xr.Dataset(
        {"permutation": ((*_SAMPLE_DIMS, "component"), total.astype(np.int64))},
        coords={
            "chain": post["chain"].values,
            "draw": post["draw"].values,
            "component": post["component"].values,
        },
    )
    for group in ("em", "map"):
        ds = _group(result, group)
        if ds is None:
            continue
        if group == reference:
            gperm = np.arange(k)
        else:
            gperm = _match(_features(ds, (), family), post_mean, scale)
            out[group] = xr.DataTree(_permute_point(ds, gperm))
        rel[f"{group}_permutation"] = ("component", gperm.astype(np.int64))

    identity = np.arange(k)
    switched = np.any(total != identity, axis=-1)
    r_before, e_before = _max_diag(post, names)
    r_after, e_after = _max_diag(new_post, names)
    rel.attrs.update(
        method=method,
        reference=reference,
        n_switched_draws=int(switched.sum()),
        n_draws=int(switched.size),
        n_iter=int(n_iter),
        max_rhat_before=r_before,
        max_rhat_after=r_after,
        min_ess_bulk_before=e_before,
        min_ess_bulk_after=e_after,
    )
    if history:
        rel["kl_cost"] = ("iteration", np.asarray(history))
    out["relabel"] = xr.DataTree(rel)
    return out


def _unpermuted(result: xr.DataTree) -> xr.Dataset:
    """The raw posterior, reconstructed from a relabelled tree."""
    post = result["posterior"].to_dataset()
    perm = result["relabel"]["permutation"].transpose(*_SAMPLE_DIMS, "component").values
    return _permute_draws(post, np.argsort(perm, axis=-1))


def _param_table(ds: xr.Dataset, names: list[str]) -> pd.DataFrame:
    """R-hat, bulk and tail ESS of every scalar entry of ``names`` in ``ds``."""
    import arviz as az

    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        stats = {
            "r_hat": az.rhat(ds[names]),
            "ess_bulk": az.ess(ds[names], method="bulk"),
            "ess_tail": az.ess(ds[names], method="tail"),
        }
    rows = []
    for name in names:
        frames = {
            key: val[name].to_series() if val[name].ndim else pd.Series([val[name].item()])
            for key, val in stats.items()
        }
        df = pd.DataFrame(frames).reset_index()
        df.insert(0, "parameter", name)
        rows.append(df)
    table = pd.concat(rows, ignore_index=True)
    keep = [c for c in ("parameter", "component", "feature", "feature_bis") if c in table]
    return table[keep + ["r_hat", "ess_bulk", "ess_tail"]]


def label_switching_report(result: xr.DataTree) -> dict:
    """How much label switching there was, and the diagnostics before and after relabelling.

    Parameters
    ----------
    result : xarray.DataTree
        A tree returned by :func:`relabel`. A tree without a ``relabel`` group is relabelled
        first with ``method="pivot"`` and the best available reference.

    Returns
    -------
    dict
        ``"method"``, ``"reference"``, ``"n_switched_draws"``; ``"chains"``: DataFrame with
        one row per chain (``chain``, ``n_permuted``, ``fraction_permuted``); ``"parameters"``:
        DataFrame with one row per scalar parameter and columns ``r_hat_before``,
        ``r_hat_after``, ``ess_bulk_before``, ``ess_bulk_after``, ``ess_tail_before``,
        ``ess_tail_after``; ``"max_rhat_before"``, ``"max_rhat_after"``.
    """
    _require_posterior(result, "label_switching_report")
    if "relabel" not in result.children:
        reference = next((g for g in ("em", "map") if g in result.children), "pivot")
        result = relabel(result, method="pivot", reference=reference)
    rel = result["relabel"]
    perm = rel["permutation"].transpose(*_SAMPLE_DIMS, "component").values
    k = perm.shape[-1]
    switched = np.any(perm != np.arange(k), axis=-1)  # (chain, draw)
    chains = pd.DataFrame(
        {
            "chain": rel["chain"].values,
            "n_permuted": switched.sum(axis=1),
            "fraction_permuted": switched.mean(axis=1),
        }
    )
    after = result["posterior"].to_dataset()
    before = _unpermuted(result)
    names = _component_names(after)
    t_before = _param_table(before, names)
    t_after = _param_table(after, names)
    keys = [c for c in ("parameter", "component", "feature", "feature_bis") if c in t_before]
    params = t_before.merge(t_after, on=keys, suffixes=("_before", "_after"))
    params = params[
        keys + [f"{s}_{w}" for s in ("r_hat", "ess_bulk", "ess_tail") for w in ("before", "after")]
    ]
    return {
        "method": rel.attrs.get("method"),
        "reference": rel.attrs.get("reference"),
        "n_switched_draws": int(switched.sum()),
        "chains": chains,
        "parameters": params,
        "max_rhat_before": float(np.nanmax(params["r_hat_before"])),
        "max_rhat_after": float(np.nanmax(params["r_hat_after"])),
    }
