"""The filled components of sparse finite and Dirichlet-process mixtures, identified.

A sparse (overfitted) mixture or a truncated DP has K components in the graph, most of them
empty: what the data say is in the *filled* ones. Following Fruehwirth-Schnatter's
identification (Malsiner-Walli, Fruehwirth-Schnatter & Gruen 2016, section 4):

1. draw the allocations z given each posterior draw and count the filled components K+
   (:func:`bayesmix.results.partition.draw_allocations`, :func:`~.partition.n_filled`);
2. keep the draws whose K+ equals the posterior mode of K+, and in them only the filled
   components (their weights renormalised to sum to one);
3. cluster the filled components' parameters of all kept draws (the family's
   ``label_features``: Gaussian means and log scales, each in units of its within-cluster
   spread, re-estimated over three rounds) by k-means into K+ groups; a draw whose K+
   components fall into K+ different groups is relabelled by that classification, the
   others (not a permutation) are dropped, and their share reported. When k-means
   identifies fewer than half of the draws (a component with few observations, e.g.
   outliers, whose parameters vary widely), each draw's filled components are matched
   instead to the groups of a pivot partition by the allocations they share (the ECR
   algorithm of Papastamoulis & Iliopoulos 2010), which relabels every draw.

The result is a DataTree of K+ components that the tables and plots of a finite mixture
accept (:func:`bayesmix.results.compare_estimates`, :func:`bayesmix.results.relabel`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import xarray as xr

from bayesmix._validation import ParameterError
from bayesmix.results.labels import _require_posterior, component_vars

__all__ = ["filled_components", "has_empty_components", "component_result", "weights_prior_of"]

#: below this share of kept draws identified by k-means, the allocations are matched instead
MIN_KMEANS_SHARE = 0.5
#: draws (thinned) that ``diagnose`` and the figures identify the filled components from;
#: one number, so that the figures can reuse what ``diagnose`` found
CHECK_MAX_DRAWS = 2000


def weights_prior_of(result: xr.DataTree) -> str:
    """The weights prior (``[priors] weights``) of a result's stored spec.

    ``"dirichlet"`` when the result has no spec or its spec does not say.
    """
    import json

    try:
        priors = json.loads(result.attrs["spec"]).get("priors", {})
        return str(priors.get("weights", "dirichlet"))
    except (KeyError, TypeError, ValueError, AttributeError):
        return "dirichlet"


def has_empty_components(result: xr.DataTree) -> bool:
    """Whether a result's model is a sparse or Dirichlet-process mixture (weights prior).

    Such a model has K components by construction, most of them empty; its per-component
    summaries and figures belong to the filled ones (:func:`filled_components`). False for a
    finite mixture and for a result without a stored spec.
    """
    return weights_prior_of(result) in ("sparse", "dp")


def component_result(result: xr.DataTree, **kwargs: Any) -> xr.DataTree:
    """The result whose components per-component figures show.

    For a sparse or DP mixture with posterior draws, its filled components
    (:func:`filled_components`, keyword arguments passed on); otherwise, or when the filled
    components cannot be identified, ``result`` itself.
    """
    if "posterior" not in result.children or not has_empty_components(result):
        return result
    try:
        return filled_components(result, **kwargs)
    except ParameterError:
        return result


def _identify(feats: np.ndarray, k: int, seed: int | None) -> tuple[np.ndarray, np.ndarray]:
    """k-means of (M, k, P) component features into k groups; (labels (M, k), ok (M,))."""
    from bayesmix.em import KMeans

    m, _, p = feats.shape
    raw = feats.reshape(m * k, p)
    raw = raw - raw.mean(axis=0)
    scale = raw.std(axis=0)
    # Columns in units of their within-cluster (posterior) spread, re-estimated from the last
    # classification: a parameter the components share (e.g. similar scales) then weighs
    # little against one that separates them. With plain standardisation the noise in the
    # log scales of three 1-D clusters broke 31 % of the classifications.
    for _ in range(3):
        x = raw / np.where(scale > 0, scale, 1.0)
        km = KMeans(n_clusters=k, n_init=5, random_state=seed).fit(x)
        within = np.sqrt(
            sum(
                ((raw[km.labels_ == j] - raw[km.labels_ == j].mean(0)) ** 2).sum(0)
                for j in range(k)
            )
            / max(len(raw) - k, 1)
        )
        if np.allclose(within, scale):
            break
        scale = within
    # clusters numbered by their first feature (Gaussian: the first mean), so labels are stable
    rank = np.argsort(np.argsort(km.cluster_centers_[:, 0], kind="stable"), kind="stable")
    labels = rank[km.labels_].reshape(m, k)
    ok = np.all(np.sort(labels, axis=1) == np.arange(k), axis=1)
    return labels, ok


def _identify_by_allocation(zf: np.ndarray, k: int, passes: int = 3) -> np.ndarray:
    """Labels (M, k) that match each draw's allocations to a pivot partition.

    ``zf`` (M, N): each kept draw's allocations, as indices 0..k-1 of its filled components.
    The pivot starts as the first draw's allocations; each draw's components are matched to
    the pivot's groups by the assignment that maximises the observations they share
    (Hungarian algorithm on the k x k contingency table), and the pivot becomes the
    observations' majority group under the matched labels; ``passes`` rounds
    (Papastamoulis & Iliopoulos' 2010 ECR algorithm, iterative version). Every draw gets a
    permutation.
    """
    from scipy.optimize import linear_sum_assignment

    m, n = zf.shape
    pivot = zf[0]
    labels = np.empty((m, k), dtype=int)
    for _ in range(passes):
        for i in range(m):
            table = np.bincount(zf[i] * k + pivot, minlength=k * k).reshape(k, k)
            rows, cols = linear_sum_assignment(-table)
            labels[i, rows] = cols
        matched = np.take_along_axis(labels, zf, axis=1)  # (M, N) pivot groups
        counts = np.stack([(matched == j).sum(axis=0) for j in range(k)])  # (k, N)
        new = np.argmax(counts, axis=0)
        if np.array_equal(new, pivot):
            break
        pivot = new
    return labels


def filled_components(
    result: xr.DataTree,
    *,
    group: str = "posterior",
    k_plus: int | None = None,
    max_draws: int | None = None,
    random_seed: int | None = 0,
) -> xr.DataTree:
    """The draws with K+ = its posterior mode, restricted to the filled components, relabelled.

    Parameters
    ----------
    result : xarray.DataTree
        A Bayesian fit (``posterior`` or ``advi`` draws; sparse, DP or finite mixture) with
        ``observed_data``.
    group : {"posterior", "advi"}
    k_plus : int, optional
        Keep the draws with this many filled components instead of the mode of K+ (e.g. a
        DP mixture whose K+ posterior is spread over neighbouring values).
    max_draws : int, optional
        Use at most this many draws (evenly thinned) to draw the allocations.
    random_seed : int, optional
        Seed of the allocation draws and of k-means.

    Returns
    -------
    xarray.DataTree
        Root attrs of ``result`` with ``n_components`` = K+ (and the stored spec's
        ``[model] components`` = K+, its weights prior a Dirichlet over the filled
        components); ``observed_data``; ``posterior`` (chain, draw, component = 0..K+-1):
        every variable with a ``component`` dim of the kept draws, the filled components
        only, relabelled, ``w`` renormalised (the scalars of the weights prior, ``e0`` /
        ``dp_alpha``, stay in ``result``: they are not parameters of the K+ components).
        Chains keep the same number of draws (the smallest number kept in a chain that kept
        any), so R-hat and ESS apply. Group ``filled`` (attrs): ``kplus_mode``, ``k_plus``
        (the K+ kept),
        ``share_mode`` (draws with K+ = mode), ``share_permutation`` (of those, the share
        whose classification is a permutation), ``n_kept`` (draws in ``posterior``),
        ``method``; variable ``p_kplus`` (k_plus = 1..K): the posterior of K+
        (:func:`bayesmix.results.partition.kplus_posterior`).

    Raises
    ------
    ParameterError
        Without draws in ``group``, or for a ``k_plus`` that no draw has.
    """
    from bayesmix.families import get_family
    from bayesmix.inference._tree import model_spec_of
    from bayesmix.results.partition import draw_allocations, kplus_posterior, n_filled

    post = _require_posterior(result, "filled_components") if group == "posterior" else None
    if post is None:
        if group not in result.children:
            raise ParameterError(
                f"result has no group {group!r}: expected draws in 'posterior' or 'advi'; "
                "run sample_nuts or fit_advi first"
            )
        post = result[group].to_dataset()
    z = draw_allocations(result, group=group, max_draws=max_draws, random_seed=random_seed)
    kp = np.asarray(n_filled(z))  # (chain, draw)
    post = post.sel(chain=z["chain"].values, draw=z["draw"].values)
    p_kplus = kplus_posterior(z)
    mode = int(p_kplus.attrs["mode"])
    if k_plus is not None:
        if not np.any(kp == k_plus):
            raise ParameterError(
                f"k_plus={k_plus!r} has no draws: expected one of "
                f"{sorted(set(kp.ravel().tolist()))} (the K+ seen); pass one of them or None"
            )
        mode = int(k_plus)
    zz = np.asarray(z.transpose("chain", "draw", "obs_id").values)
    n_chain, n_draw = kp.shape
    spec = model_spec_of(result)
    fam = get_family(spec.family)
    comp_names = component_vars(post)
    arrays = {
        n: np.asarray(post[n].transpose("chain", "draw", "component", ...).values, float)
        for n in comp_names
    }
    sel = np.argwhere(kp == mode)  # (M, 2) chain, draw
    # the filled labels of each kept draw, in increasing order
    filled = np.stack(
        [np.flatnonzero(np.bincount(zz[c, d], minlength=post.sizes["component"])) for c, d in sel]
    )
    params = {n: a[sel[:, 0], sel[:, 1]] for n, a in arrays.items()}  # (M, K, ...)
    picked = {
        n: np.take_along_axis(a, filled.reshape(filled.shape + (1,) * (a.ndim - 2)), axis=1)
        for n, a in params.items()
    }
    feats = fam.label_features({n: v for n, v in picked.items() if n != "w"})
    method = (
        "k-means of the filled components' parameters "
        "(Fruehwirth-Schnatter; Malsiner-Walli et al. 2016)"
    )
    if mode > 1:
        labels, ok = _identify(np.asarray(feats, float), mode, random_seed)
        share_kmeans = float(ok.mean())
        if share_kmeans < MIN_KMEANS_SHARE:
            # e.g. a component holding a few outliers, whose parameters vary so much that
            # k-means splits it: match the allocations instead
            zf = np.stack(
                [np.searchsorted(f, zz[c, d]) for f, (c, d) in zip(filled, sel, strict=True)]
            )
            labels = _identify_by_allocation(zf, mode)
            first = np.asarray(feats, float)[..., 0]
            centre = [float(np.mean(first[labels == j])) for j in range(mode)]
            rank = np.argsort(np.argsort(centre, kind="stable"), kind="stable")
            labels = rank[labels]  # groups numbered by their first feature, as k-means'
            ok = np.ones(len(sel), dtype=bool)
            method = (
                "allocations matched to a pivot partition (ECR; Papastamoulis & Iliopoulos "
                f"2010): k-means of the parameters identified {100 * share_kmeans:.0f}% of "
                "the draws"
            )
    else:
        labels, ok = np.zeros((len(sel), 1), dtype=int), np.ones(len(sel), dtype=bool)
    order = np.argsort(labels, axis=1)  # new label j <- the filled component classified j
    relabelled = {
        n: np.take_along_axis(v, order.reshape(order.shape + (1,) * (v.ndim - 2)), axis=1)
        for n, v in picked.items()
    }
    if "w" in relabelled:
        relabelled["w"] = relabelled["w"] / relabelled["w"].sum(axis=1, keepdims=True)
    # per chain the kept draws, cut to a common length
    chains_kept = [np.flatnonzero(ok & (sel[:, 0] == c)) for c in range(n_chain)]
    chains_kept = [ix for ix in chains_kept if len(ix)]
    length = min(len(ix) for ix in chains_kept)
    take = np.stack([ix[:length] for ix in chains_kept])  # (chains, length)
    data = {}
    for n, v in relabelled.items():
        other = [d for d in post[n].dims if d not in ("chain", "draw", "component")]
        data[n] = (("chain", "draw", "component", *other), v[take])
    coords = {
        k: post.coords[k].values
        for k in post.coords
        if k not in ("chain", "draw", "component") and k in post.dims
    }
    coords.update(
        chain=np.arange(len(chains_kept)), draw=np.arange(length), component=np.arange(mode)
    )
    new_post = xr.Dataset(data, coords=coords, attrs=dict(post.attrs))

    out = xr.DataTree(dataset=xr.Dataset(attrs=dict(result.attrs)))
    out.attrs["n_components"] = mode
    out.attrs["spec"] = _spec_with_k(result.attrs.get("spec"), mode)
    if "observed_data" in result.children:
        out["observed_data"] = xr.DataTree(result["observed_data"].to_dataset())
    out["posterior"] = xr.DataTree(new_post)
    n_mode = int(len(sel))
    out["filled"] = xr.DataTree(
        xr.Dataset(
            {"p_kplus": (("k_plus",), p_kplus.to_numpy())},
            coords={"k_plus": p_kplus.index.to_numpy()},
            attrs={
                "kplus_mode": int(p_kplus.attrs["mode"]),
                "k_plus": mode,
                "share_mode": n_mode / kp.size,
                "share_permutation": float(ok.mean()),
                "n_kept": int(take.size),
                "method": method,
            },
        )
    )
    return out


def _spec_with_k(spec_json: Any, k: int) -> Any:
    """The stored spec with ``k`` components and a Dirichlet(1) weights prior."""
    if not isinstance(spec_json, str):
        return spec_json
    from bayesmix.config import PriorSpec, RunSpec

    run = RunSpec.from_json(spec_json)
    pr = dataclasses.replace(
        run.model.priors,
        weights="dirichlet",
        weights_alpha=None,
        weights_alpha_prior=None,
        dp_alpha_prior=PriorSpec().dp_alpha_prior,
    )
    model = dataclasses.replace(run.model, n_components=k, priors=pr)
    return dataclasses.replace(run, model=model).to_json()
