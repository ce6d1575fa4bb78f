"""EM, MAP, NUTS and ADVI fits of one mixture model, each adding a group to one DataTree."""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import sys
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from bayesmix import _math
from bayesmix._validation import ParameterError, check_choice
from bayesmix.config import ModelSpec, RunSpec
from bayesmix.em import check_sample_weight, notify_start
from bayesmix.families import get_family, result_variables
from bayesmix.graphs import (
    check_labels,
    default_initvals,
    feature_labels,
    point_to_initvals,
    validate_data,
)
from bayesmix.graphs._mixture import hyper_variables
from bayesmix.inference._compiled import CompiledMixture, _no_fastmath, get_compiled
from bayesmix.inference._tree import (
    DivergenceWarning,
    StartsDisagreeWarning,
    as_model_spec,
    check_int,
    ensure_tree,
    group_arrays,
    labels_of,
    model_spec_of,
    obs_id_coord,
    observed_X,
    point_dataset,
    point_from_group,
    resolve_seed,
    row_labels,
    weights_of,
)

__all__ = [
    "TruncationWarning",
    "check_truncation",
    "fit_advi",
    "fit_em",
    "fit_map",
    "log_likelihood",
    "sample_nuts",
]

SAMPLERS = ("nutpie", "pymc", "numpyro", "blackjax")
# the JAX samplers and the modules each needs
_JAX_SAMPLERS = {"numpyro": ("jax", "numpyro"), "blackjax": ("jax", "blackjax")}
INITS = ("em", "map", "default")
PRIOR_MODES = ("spec", None)


def _prepare(
    spec: Any,
    X: Any,
    feature_names: Sequence[str] | None = None,
    sample_weight: Any = None,
    result: Any = None,
    missing: str = "error",
    labels: Any = None,
):
    """(ModelSpec, validated X, feature labels, checked weights or None, labels or None).

    Without ``sample_weight`` (``labels``) the weights (partial labels) stored in ``result``
    (from an earlier fit of the same rows) are used. ``missing="model"``: NaN entries of X
    are missing values.
    """
    m = as_model_spec(spec)
    Xc = validate_data(m, X, missing=missing)
    n = Xc.shape[0]
    if sample_weight is None:
        sample_weight = weights_of(result, n)
    weights = check_sample_weight(sample_weight, n)
    known = check_labels(labels_of(result, n) if labels is None else labels, n, m.n_components)
    return m, Xc, feature_labels(X, feature_names, Xc.shape[1]), weights, known


@contextlib.contextmanager
def _quiet_pymc():
    logger = logging.getLogger("pymc")
    old = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(old)


def _sort_components(
    point: dict[str, np.ndarray], spec: ModelSpec, labels: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Components in the family's order (``order_key``; e.g. Gaussian: the first feature's mean).

    Deterministic labels for EM and MAP; families without an order keep the fit's labels, and
    so do fits with partial ``labels`` (they name the components).
    """
    key = get_family(spec.family).order_key(point)
    if key is None or labels is not None:
        return point
    order = np.argsort(key, kind="stable")
    return {k: (v[order] if k != "lower_bounds" else v) for k, v in point.items()}


class TruncationWarning(UserWarning):
    """A Dirichlet-process mixture's last stick keeps too much mass: truncated too early."""


#: Largest posterior mean weight of the last stick of a truncated DP that passes the check.
TRUNCATION_MASS_MAX = 0.01


def check_truncation(draws: xr.Dataset, spec: ModelSpec) -> float | None:
    """Warn when the truncation of a Dirichlet-process mixture is too small.

    The last of the K weights of a truncated stick-breaking prior takes the rest of the
    stick, everything the untruncated process would spread over components K, K+1, ...
    When its posterior mean exceeds :data:`TRUNCATION_MASS_MAX` (1 %), the truncation
    changes the model: a :class:`TruncationWarning` says to raise the number of components.
    Called by :func:`sample_nuts` and :func:`fit_advi` (every route to DP draws), so
    :func:`bayesmix.inference.run` records it in the result's ``warnings``.

    Parameters
    ----------
    draws : xarray.Dataset
        ``w`` with dims (chain, draw, component) in the graph's stick order (posterior or
        ADVI draws; not the sorted EM/MAP points).
    spec : ModelSpec

    Returns
    -------
    float or None
        The posterior mean weight of the last stick; None for other weights priors.
    """
    if spec.priors.weights != "dp" or "w" not in draws:
        return None
    k = int(draws.sizes["component"])
    last = float(draws["w"].isel(component=-1).mean())
    if last > TRUNCATION_MASS_MAX:
        warnings.warn(
            f"the last stick of the Dirichlet process truncated at {k} components keeps "
            f"{last:.1%} of the mass (posterior mean): expected at most "
            f"{TRUNCATION_MASS_MAX:.0%}; raise [model] components (n_components), e.g. to "
            f"{2 * k}",
            TruncationWarning,
            stacklevel=3,
        )
    return last


# ---------------------------------------------------------------------------------------------
# EM


def _em_weights_prior(spec: ModelSpec, priors: Mapping[str, np.ndarray] | None):
    """The resolved priors EM uses: a flat Dirichlet on the weights of sparse and DP specs.

    A sparse prior (e0 < 1) has no mode: its density grows without bound as an empty weight
    goes to 0 (MAP-EM's objective was +inf, it never converged, and warned); a DP has no
    Dirichlet at all. EM takes the weights' ML update and the spec's priors for the rest.
    NUTS started there sampled better than from the emptied MAP-EM start (1-D K=3, K_max=10,
    N=300: p(K+=3) 0.90 vs 0.86, ESS of K+ 749 vs 439, the chains on the same labels).
    """
    if priors is None or spec.priors.weights not in ("sparse", "dp"):
        return priors
    return {**priors, "weights_alpha": np.ones(spec.n_components)}


def em_prior(spec: ModelSpec, priors: Mapping[str, np.ndarray], n_features: int) -> dict:
    """The MAP-EM ``prior`` dict of :mod:`bayesmix.em` for the spec's resolved priors.

    The family decides (:meth:`~bayesmix.families.Family.em_kwargs`). Gaussian full
    covariance with D > 1 gets only the weight and mean priors: the EM engine has no
    LKJ/HalfNormal covariance prior, so its MAP then differs from the PyMC model's mode.
    """
    priors = _em_weights_prior(spec, priors)
    kwargs = get_family(spec.family).em_kwargs(spec, priors, n_features)
    return dict(kwargs.get("prior") or {})


def em_estimator(
    spec: ModelSpec,
    n_features: int,
    priors: Mapping[str, np.ndarray] | None,
    **options: Any,
):
    """The family's EM estimator for a spec (``priors`` None: maximum likelihood).

    ``options`` are estimator settings (``n_init``, ``random_state``, ``tol``, ``max_iter``,
    ``reg_covar``, ``init_params``, ...); those the estimator does not have are dropped.
    """
    import bayesmix.em

    fam = get_family(spec.family)
    cls = getattr(bayesmix.em, fam.em_class)
    priors = _em_weights_prior(spec, priors)
    kwargs = fam.em_kwargs(spec, priors, n_features)
    accepted = cls().get_params()
    kwargs.update({k: v for k, v in options.items() if k in accepted})
    return cls(spec.n_components, **kwargs)


def em_point(
    est, spec: ModelSpec, n_features: int, labels: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Result-named parameters of a fitted EM estimator.

    Components in the family's order, unless partial ``labels`` name them.
    """
    return _sort_components(get_family(spec.family).em_point(est, n_features), spec, labels)


def fit_em(
    spec: ModelSpec | RunSpec,
    X: Any,
    *,
    prior: str | None = "spec",
    n_init: int = 5,
    random_state: int | None = None,
    tol: float = 1e-6,
    max_iter: int = 1000,
    reg_covar: float = 1e-6,
    feature_names: Sequence[str] | None = None,
    result: xr.DataTree | None = None,
    sample_weight: Any = None,
    missing: str = "error",
    labels: Any = None,
) -> xr.DataTree:
    """Fit the mixture by EM (``prior=None``) or MAP-EM (``prior="spec"``).

    Parameters
    ----------
    spec : ModelSpec or RunSpec
    X : array-like of shape (N, D)
    prior : {"spec", None}
        ``"spec"``: MAP-EM with the spec's (data-scaled) priors, see :func:`em_prior`;
        for sparse and DP weights priors the weights get a flat Dirichlet (their ML update:
        a sparse Dirichlet with e0 < 1 has no mode, a DP no Dirichlet). None: maximum
        likelihood.
    n_init : int
        EM restarts; the best is kept.
    random_state : int, optional
    tol, max_iter, reg_covar : float, int, float
        Passed to the EM estimator (``reg_covar`` only for Gaussians).
    feature_names : sequence of str, optional
    result : xarray.DataTree, optional
        Add the group to this tree instead of a new one.
    sample_weight : array-like of shape (N,), optional
        Frequency weights of the rows (integer weights = repeated rows); default: those
        stored in ``result``, else none.
    missing : {"error", "model"}
        ``"model"``: NaN entries of X are missing at random, summed out of each row's
        likelihood (the density of its observed coordinates; every family). ``"error"``:
        NaN is a DataError.
    labels : array-like of shape (N,), optional
        Partial labels: a row's component 0..K-1 where known, -1 where not; a labelled row
        contributes ``log w_k + log f_k(x_n)``. Default: the labels stored in ``result``.
        Passed to the estimator (``missing=``, ``fit(X, labels=)``).

    Returns
    -------
    xarray.DataTree
        With group ``em``: ``w``, ``mu``, ``sigma``, (``cov``, ``corr``), or ``p`` without
        chain/draw dims, ``lower_bounds`` (iteration); attrs ``method`` ("ml"/"map"),
        ``n_iter``, ``converged``, ``lower_bound``, ``n_init``.
    """
    m, Xc, names, weights, known = _prepare(
        spec, X, feature_names, sample_weight, result, missing, labels
    )
    check_choice(prior, "prior", PRIOR_MODES)
    n_init = check_int(n_init, "n_init", 1)
    seed = resolve_seed(random_state)
    d = Xc.shape[1]
    from bayesmix.config import resolve_priors

    est = em_estimator(
        m,
        d,
        resolve_priors(m, Xc, weights) if prior == "spec" else None,
        n_init=n_init,
        random_state=seed,
        tol=tol,
        max_iter=max_iter,
        reg_covar=reg_covar,
        missing=missing,
    )
    est.fit(Xc, sample_weight=weights, labels=known)
    point = em_point(est, m, d, known)
    ds = point_dataset(
        point,
        m,
        names,
        attrs={
            "method": "map" if prior == "spec" else "ml",
            "n_iter": int(est.n_iter_),
            "converged": bool(est.converged_),
            "lower_bound": float(est.lower_bound_),
            "n_init": n_init,
        },
        coords=get_family(m.family).coords(Xc, names),
    )
    ds["lower_bounds"] = ("iteration", np.asarray(est.lower_bounds_, float))
    tree = ensure_tree(result, spec, Xc, names, seed, row_labels(X), weights, X, known, missing)
    tree["em"] = xr.DataTree(ds)
    return tree


# ---------------------------------------------------------------------------------------------
# MAP


def _optimize(cm: CompiledMixture, x0: np.ndarray, maxiter: int) -> tuple[np.ndarray, float]:
    from scipy.optimize import minimize

    # the best finite point visited: where the log posterior is unbounded (a sparse prior,
    # e0 < 1: it grows as empty weights go to 0) L-BFGS-B can end on a non-finite point
    best = [x0, -np.inf]

    def negative(x):
        lp, g = cm.logp_grad(x)
        if not np.isfinite(lp) or not np.all(np.isfinite(g)):
            return np.inf, np.zeros_like(x)
        if lp > best[1]:
            best[0], best[1] = np.array(x, copy=True), lp
        return -lp, -g

    res = minimize(
        negative,
        x0,
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": maxiter, "maxfun": 4 * maxiter, "ftol": 1e-15, "gtol": 1e-9},
    )
    if np.isfinite(res.fun) and -float(res.fun) >= best[1]:
        return res.x, -float(res.fun)
    return best[0], float(best[1])


def _start_point(result, spec, cm, Xc, group, seed):
    if result is not None and group in result.children:
        return {k: v for k, v in point_from_group(result, group).items()}
    if group == "em":
        tree = fit_em(
            spec,
            Xc,
            prior="spec",
            random_state=seed,
            feature_names=cm.feature_names,
            sample_weight=cm.sample_weight,
            missing=cm.missing,
            labels=cm.labels,
        )
        return point_from_group(tree, "em")
    return None


def fit_map(
    spec: ModelSpec | RunSpec,
    X: Any,
    *,
    starts: Sequence[Mapping[str, Any]] | None = None,
    n_starts: int = 4,
    random_seed: int | None = None,
    result: xr.DataTree | None = None,
    jitter: float = 0.5,
    maxiter: int = 5000,
    tol: float = 1e-3,
    feature_names: Sequence[str] | None = None,
    sample_weight: Any = None,
    missing: str = "error",
    labels: Any = None,
) -> xr.DataTree:
    """Maximum a posteriori estimate from several starts (L-BFGS-B on the compiled model).

    The objective is ``model.logp(jacobian=False)``, exactly what ``pm.find_MAP`` maximises
    (we compile it once per model instead of once per call). Without the Jacobian of the
    transforms this is the mode of the posterior *density of the constrained parameters*
    (w, mu, sigma, p), which is also what MAP-EM converges to: EM's M-step maximises
    ``E_z[log p(x, z | theta)] + log p(theta)`` in the constrained parameters, so its fixed
    points are the stationary points of the same log posterior. That is why :func:`fit_em`
    with ``prior="spec"`` and this function agree to optimiser precision (diag, spherical,
    1-D and Bernoulli; for full covariance the EM engine lacks the LKJ/HalfNormal prior).

    Parameters
    ----------
    spec : ModelSpec or RunSpec
    X : array-like of shape (N, D)
    starts : sequence of mapping, optional
        Starting points in result names (``w``, ``mu``, ``sigma`` or ``cov``, ``p``).
        Default: the MAP-EM solution (taken from ``result["em"]`` when present) and
        ``n_starts - 1`` copies jittered by U(-jitter, jitter) in the unconstrained space.
    n_starts : int
        Number of starts when ``starts`` is None.
    random_seed : int, optional
        Seed of the jitter.
    result : xarray.DataTree, optional
        Add the group to this tree.
    jitter : float
    maxiter : int
        L-BFGS-B iterations per start.
    tol : float
        Starts "agree" when their optimal log posteriors are within ``tol`` of the best;
        otherwise a :class:`StartsDisagreeWarning` is issued.
    feature_names : sequence of str, optional
    missing : {"error", "model"}
        ``"model"``: NaN entries of X are missing at random, summed out of each row's
        likelihood (the density of its observed coordinates; every family). ``"error"``:
        NaN is a DataError.
    labels : array-like of shape (N,), optional
        Partial labels: a row's component 0..K-1 where known, -1 where not; a labelled row
        contributes ``log w_k + log f_k(x_n)``. Default: the labels stored in ``result``.
        The same model as MAP-EM's (:func:`fit_em` with the same ``missing`` and ``labels``).

    Returns
    -------
    xarray.DataTree
        With group ``map`` (attrs ``logp``, ``n_starts``, ``starts_agree``, ``logps``).
    """
    m, Xc, names, weights, known = _prepare(
        spec, X, feature_names, sample_weight, result, missing, labels
    )
    n_starts = check_int(n_starts, "n_starts", 1)
    seed = resolve_seed(random_seed)
    cm = get_compiled(
        m, Xc, feature_names=names, sample_weight=weights, missing=missing, labels=known
    )
    d = Xc.shape[1]
    rng = np.random.default_rng(seed)
    if starts is None:
        base = _start_point(result, m, cm, Xc, "em", seed)
        x_base = cm.to_unconstrained(point_to_initvals(m, base, d))
        flats = [x_base] + [
            x_base + rng.uniform(-jitter, jitter, x_base.shape) for _ in range(n_starts - 1)
        ]
    else:
        flats = [cm.to_unconstrained(point_to_initvals(m, s, d)) for s in starts]
    best, best_lp, logps = None, -np.inf, []
    for i, x0 in enumerate(flats):
        x, lp = _optimize(cm, x0, maxiter)
        notify_start(i + 1, len(flats))
        logps.append(lp)
        if lp > best_lp:
            best, best_lp = x, lp
    if best is None:
        raise ParameterError(
            "MAP optimisation failed from every start: expected a finite log posterior, got "
            "-inf; check the data scale or pass starts=[...]"
        )
    agree = bool(np.all(np.abs(np.asarray(logps) - best_lp) <= tol))
    if not agree:
        warnings.warn(
            f"MAP starts reached different optima: log posteriors {np.round(logps, 4).tolist()}"
            f" (tolerance {tol}); keeping the best ({best_lp:.4f}). The posterior is multimodal"
            " or the optimiser stopped early; inspect result['map'] and consider more starts",
            StartsDisagreeWarning,
            stacklevel=2,
        )
    raw = cm.point(best)
    hyper = {name: raw.pop(name) for name in hyper_variables(m, len(names))}
    point = _sort_components(raw, m, known)
    ds = point_dataset(
        point,
        m,
        names,
        attrs={
            "logp": best_lp,
            "n_starts": len(flats),
            "starts_agree": agree,
            "logps": np.asarray(logps),
        },
        coords=get_family(m.family).coords(Xc, names),
    )
    for name, dims in hyper_variables(m, len(names)).items():  # no component dim
        ds[name] = (dims, np.asarray(hyper[name], float))
    tree = ensure_tree(result, spec, Xc, names, seed, row_labels(X), weights, X, known, missing)
    tree["map"] = xr.DataTree(ds)
    return tree


# ---------------------------------------------------------------------------------------------
# NUTS


def _posterior_dataset(ds: xr.Dataset, names: list[str], spec: ModelSpec) -> xr.Dataset:
    """The result variables of a sampler's draws (free transformed variables dropped)."""
    wanted = [
        *result_variables(spec.family, spec.covariance, len(names)),
        *hyper_variables(spec, len(names)),
    ]
    keep = [v for v in wanted if v in ds]
    out = ds[keep]
    coords = {"feature": names}
    if "feature_bis" in out.dims:
        coords["feature_bis"] = names
    return out.assign_coords(coords)


_LL_BLOCK_ELEMENTS = 2_000_000  # (draws x observations x components x features) per block: ~16 MB


def _ll_params(post: xr.Dataset) -> dict[str, np.ndarray]:
    """The parameter arrays of a group of draws, (chain, draw, ...), for the mixture density."""
    return group_arrays(post)


def pointwise_log_likelihood(
    params: Mapping[str, np.ndarray],
    X: np.ndarray,
    family: str,
    labels: np.ndarray | None = None,
) -> np.ndarray:
    """``log p(x_n | theta_s)`` for every draw and observation, a block of draws at a time.

    Parameters
    ----------
    params : mapping
        ``w`` (..., K) and the component parameters with the same leading (draw) dims.
    X : ndarray of shape (N, D)
        NaN = missing: ``log p(x_n,obs | theta_s)``, the graphs' likelihood term.
    family : str
        A name of :data:`bayesmix.families.FAMILIES`.
    labels : ndarray of shape (N,), optional
        Partial labels: a labelled row's term is ``log w_k + log f_k(x_n)``, as in the graph.

    Returns
    -------
    ndarray of shape (..., N)
        The only array of that size: the (draws, N, K) temporaries of
        :func:`bayesmix._math.mixture_log_density` exist for one block of draws at a time.
    """
    lead = params["w"].shape[:-1]
    n, k = X.shape[0], params["w"].shape[-1]
    flat = {name: np.reshape(v, (-1, *v.shape[len(lead) :])) for name, v in params.items()}
    n_draws = flat["w"].shape[0]
    out = np.empty((n_draws, n))
    # the Gaussian densities' temporaries are (draws, N, K, D): count D too
    step = max(1, _LL_BLOCK_ELEMENTS // max(n * k * X.shape[1], 1))
    for start in range(0, n_draws, step):
        blk = {name: v[start : start + step] for name, v in flat.items()}
        out[start : start + step] = _math.mixture_log_density(X, blk, family, labels)
    return out.reshape(lead + (n,))


def _log_likelihood(
    post: xr.Dataset, X: np.ndarray, family: str, labels: np.ndarray | None = None
) -> xr.Dataset:
    ll = pointwise_log_likelihood(_ll_params(post), X, family, labels)
    return xr.Dataset(
        {"x": (("chain", "draw", "obs_id"), ll)},
        coords={
            "chain": post["chain"].values,
            "draw": post["draw"].values,
            "obs_id": np.arange(X.shape[0]),
        },
    )


def log_likelihood(
    result: xr.DataTree,
    *,
    group: str = "posterior",
    store: bool = False,
    obs: Any = None,
) -> xr.Dataset:
    """Pointwise log-likelihood ``x`` (chain, draw, obs_id) of the observed data, for LOO.

    Results of :func:`bayesmix.inference.run` (and the CLI) do not store this (chain x draw x
    N) array; it is computed here from the draws of ``group`` and ``observed_data``, a block
    of draws at a time, so memory stays at the size of the answer. A stored
    ``log_likelihood`` group (``sample_nuts`` by default, ``[fit] store_log_likelihood``) is
    returned as it is when ``group`` is ``"posterior"``. Label switching or relabelling does
    not change it (the mixture density is the same under any order of the components; with
    partial labels, whose rows' terms are ``log w_k + log f_k(x_n)``, the labels name the
    components). With missing values (NaN in ``observed_data``) each term is the density of
    the row's observed coordinates, ``log p(x_n,obs)``.

    Parameters
    ----------
    result : xarray.DataTree
        With ``group`` (draws), ``observed_data`` and the spec in its attrs.
    group : str
        ``"posterior"`` or ``"advi"``.
    store : bool
        Also put it into ``result`` as the ``log_likelihood`` group (then ``az.loo(result)``
        works directly; the group is what the file then grows by).
    obs : slice or array of int, optional
        Only these observations (positions along ``obs_id``), e.g. a block at a time for
        PSIS-LOO (:func:`bayesmix.results.select.loo`); not with ``store``.

    Returns
    -------
    xarray.Dataset
        ``x`` (chain, draw, obs_id), float64.
    """
    if not isinstance(result, xr.DataTree):
        raise ParameterError(
            f"result must be an xarray.DataTree from bayesmix.inference, got "
            f"{type(result).__name__}; fit a model first"
        )
    if not isinstance(store, bool):
        raise ParameterError(f"store must be a bool: expected True or False, got {store!r}")
    if store and obs is not None:
        raise ParameterError(
            "store=True stores every observation: expected obs=None, got a selection; "
            "call log_likelihood(result, store=True) without obs"
        )
    if group == "posterior" and "log_likelihood" in result.children:
        stored = result["log_likelihood"].to_dataset()
        if "x" in stored:
            return stored if obs is None else stored.isel(obs_id=obs)
    if group not in result.children or "chain" not in result[group].dims:
        raise ParameterError(
            f"log_likelihood needs draws: expected a group {group!r} with (chain, draw), got "
            f"groups {sorted(result.children)}; run sample_nuts or fit_advi first"
        )
    X = observed_X(result)
    ids = np.arange(X.shape[0]) if obs is None else np.arange(X.shape[0])[obs]
    known = labels_of(result, X.shape[0])
    ds = _log_likelihood(
        result[group].to_dataset(),
        X[ids],
        model_spec_of(result).family,
        None if known is None else known[ids],
    )
    ds = ds.assign_coords(obs_id=obs_id_coord(result, X.shape[0])[ids])
    if store:
        result["log_likelihood"] = xr.DataTree(ds)
    return ds


def _init_point(init, result, m, cm, Xc, weights=None, missing="error", labels=None):
    if init == "default":
        return default_initvals(m, Xc)
    rows = {"sample_weight": weights, "missing": missing, "labels": labels}
    if result is not None and init in result.children:
        pt_ = point_from_group(result, init)
    elif init == "em":
        pt_ = point_from_group(fit_em(m, Xc, prior="spec", random_state=0, **rows), "em")
    else:
        pt_ = point_from_group(fit_map(m, Xc, random_seed=0, result=result, **rows), "map")
    return point_to_initvals(m, pt_, Xc.shape[1])


def warn_divergences(n_div: int, n_draws: int, stacklevel: int = 2) -> None:
    """The :class:`DivergenceWarning` of a NUTS run with ``n_div`` divergent transitions.

    ``stacklevel`` as the caller would pass it to ``warnings.warn``.
    """
    if n_div:
        warnings.warn(
            f"{n_div} of {n_draws} NUTS transitions diverged: the draws may miss part "
            "of the posterior (often a component squeezed onto a few repeated points); raise "
            "target_accept, use fewer components, or look at bayesmix.results.diagnose",
            DivergenceWarning,
            stacklevel=stacklevel + 1,
        )


def sample_nuts(
    spec: ModelSpec | RunSpec,
    X: Any,
    *,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    random_seed: int | None = None,
    sampler: str = "nutpie",
    init: str = "em",
    progressbar: bool | None = None,
    result: xr.DataTree | None = None,
    target_accept: float = 0.9,
    jitter: float = 0.1,
    feature_names: Sequence[str] | None = None,
    log_likelihood: bool = True,
    sample_weight: Any = None,
    missing: str = "error",
    labels: Any = None,
) -> xr.DataTree:
    """Sample the posterior with NUTS, chains started near the EM (or MAP) solution.

    With nutpie each chain starts at the ``init`` point plus U(-jitter, jitter) noise in the
    unconstrained space (seeded per chain); with ``sampler="pymc"`` every chain starts at the
    point itself (``init="adapt_diag"``); numpyro and blackjax (PyMC's JAX samplers, which
    run on a GPU when JAX has one) use PyMC's default start logic. Runs
    ``cores=min(chains, 2)`` chains in parallel, except nutpie calling the log density from
    Python (one thread: those chains take turns on the GIL anyway). With nutpie the model is
    compiled once per process (:func:`bayesmix.inference.get_compiled`) with Numba fastmath
    off, so the same ``random_seed`` gives identical draws, in one process or across
    processes. Small runs call the compiled log density (shared with MAP, its rewritten graph
    kept on disk between processes) from Python; long runs on costly models use nutpie's own
    Numba callbacks, which take 15-30 s to compile in each process but run the chains without
    the GIL (:meth:`~bayesmix.inference.CompiledMixture.nutpie_backend`).

    Parameters
    ----------
    spec : ModelSpec or RunSpec
    X : array-like of shape (N, D)
    draws, tune, chains : int
        Draws per chain (>= 1), tuning steps (>= 0), chains (>= 1).
    random_seed : int, optional
    sampler : {"nutpie", "pymc", "numpyro", "blackjax"}
        ``"numpyro"`` and ``"blackjax"`` need ``pip install bayesmix[jax]``.
    init : {"em", "map", "default"}
        Starting point: MAP-EM (``result["em"]`` when present), MAP, or a data-quantile guess.
    progressbar : bool, optional
        Default: only when stderr is a terminal.
    result : xarray.DataTree, optional
        Add the groups to this tree.
    target_accept : float
    jitter : float
    feature_names : sequence of str, optional
    log_likelihood : bool, default True
        Store the pointwise ``log_likelihood`` group (chain x draw x N float64: 160 MB for
        4 x 1000 draws of 5000 points). :func:`bayesmix.inference.run` passes False unless
        ``[fit] store_log_likelihood``; :func:`bayesmix.inference.log_likelihood` computes
        it on demand.
    sample_weight : array-like of shape (N,), optional
    missing : {"error", "model"}
        ``"model"``: NaN entries of X are missing at random, summed out of each row's
        likelihood (the density of its observed coordinates; every family). ``"error"``:
        NaN is a DataError.
    labels : array-like of shape (N,), optional
        Partial labels: a row's component 0..K-1 where known, -1 where not; a labelled row
        contributes ``log w_k + log f_k(x_n)``. Default: the labels stored in ``result``.

    Returns
    -------
    xarray.DataTree
        With ``posterior``, ``sample_stats``, ``observed_data`` and, with
        ``log_likelihood=True``, ``log_likelihood`` (x: chain, draw, obs_id).
    """
    m, Xc, names, weights, known = _prepare(
        spec, X, feature_names, sample_weight, result, missing, labels
    )
    if not isinstance(log_likelihood, bool):
        raise ParameterError(
            f"log_likelihood must be a bool: expected True or False, got {log_likelihood!r}"
        )
    draws = check_int(draws, "draws", 1)
    tune = check_int(tune, "tune", 0)
    chains = check_int(chains, "chains", 1)
    check_choice(sampler, "sampler", SAMPLERS)
    check_choice(init, "init", INITS)
    if not 0 < target_accept < 1:
        raise ParameterError(f"target_accept must be in (0, 1): got {target_accept}; use e.g. 0.9")
    absent = [m for m in _JAX_SAMPLERS.get(sampler, ()) if importlib.util.find_spec(m) is None]
    if absent:
        raise ParameterError(
            f"sampler={sampler!r} needs {' and '.join(_JAX_SAMPLERS[sampler])}, and "
            f"{', '.join(absent)} is not installed: pip install bayesmix[jax], or use "
            "sampler='nutpie'"
        )
    seed = resolve_seed(random_seed)
    if progressbar is None:
        progressbar = bool(getattr(sys.stderr, "isatty", lambda: False)())
    cm = get_compiled(
        m, Xc, feature_names=names, sample_weight=weights, missing=missing, labels=known
    )
    initvals = _init_point(init, result, m, cm, Xc, weights, missing, known)
    cores = min(chains, 2)
    if sampler == "nutpie":
        import nutpie

        # each iteration costs a tree of leapfrog steps: 2^3 to 2^5 gradients on these models
        backend = cm.nutpie_backend(chains * (draws + tune) * 16)
        compiled = cm.nutpie_model(cm.to_unconstrained(initvals), jitter=jitter, backend=backend)
        trace = nutpie.sample(
            compiled,
            draws=draws,
            tune=tune,
            chains=chains,
            cores=cm.nutpie_cores(backend, chains),
            seed=seed,
            progress_bar=progressbar,
            target_accept=target_accept,
        )
        post = trace["posterior"].to_dataset()
        stats = trace["sample_stats"].to_dataset()
    else:
        import pymc as pm

        extra = {}
        if sampler == "pymc":
            # every chain starts at the init point itself (PyMC's default jitter is U(-1, 1)
            # in the unconstrained space, too far from the EM/MAP solution)
            extra["init"] = "adapt_diag"
        else:
            import jax

            # one device per chain (pmap) when there are enough, else all chains vectorised
            # on one device (a single GPU or CPU): pmap over too few devices fails in blackjax
            parallel = jax.local_device_count() >= chains
            extra["nuts_sampler_kwargs"] = {
                "chain_method": "parallel" if parallel else "vectorized"
            }
        # fastmath off, as for everything else we compile: cold and warm caches then agree
        with _quiet_pymc(), _no_fastmath(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*We recommend running at least.*")
            trace = pm.sample(
                draws=draws,
                tune=tune,
                chains=chains,
                cores=cores,
                random_seed=seed,
                initvals=initvals,
                nuts_sampler=sampler,
                **extra,
                progressbar=progressbar,
                target_accept=target_accept,
                model=cm.model,
                compute_convergence_checks=False,
            )
        post = trace["posterior"].to_dataset()
        stats = trace["sample_stats"].to_dataset()
    post = _posterior_dataset(post, names, m)
    tree = ensure_tree(result, spec, Xc, names, seed, row_labels(X), weights, X, known, missing)
    tree["posterior"] = xr.DataTree(post.assign_attrs(sampler=sampler, seed=seed))
    tree["sample_stats"] = xr.DataTree(stats)
    check_truncation(post, m)
    n_div = int(np.asarray(stats["diverging"]).sum()) if "diverging" in stats else 0
    warn_divergences(n_div, chains * draws, stacklevel=2)
    if log_likelihood:
        ll = _log_likelihood(post, Xc, m.family, known)
        ll = ll.assign_coords(obs_id=obs_id_coord(tree, Xc.shape[0]))
        tree["log_likelihood"] = xr.DataTree(ll)
    return tree


# ---------------------------------------------------------------------------------------------
# ADVI


def fit_advi(
    spec: ModelSpec | RunSpec,
    X: Any,
    *,
    n: int = 20000,
    minibatch: int | None = None,
    random_seed: int | None = None,
    draws: int = 1000,
    learning_rate: float = 0.01,
    result: xr.DataTree | None = None,
    feature_names: Sequence[str] | None = None,
    sample_weight: Any = None,
    missing: str = "error",
    labels: Any = None,
) -> xr.DataTree:
    """Mean-field ADVI started at the MAP-EM solution, optimised with Adam.

    PyMC's default optimiser (adagrad_window) got stuck far from the optimum on mixtures, so
    ``pm.adam(learning_rate=...)`` is used. With ``minibatch`` each step sees a random batch
    of rows (``pm.Minibatch``) whose log-likelihood is scaled by N / batch (``total_size``):
    the path for N too large for NUTS. The EM start still uses all rows.

    Parameters
    ----------
    spec : ModelSpec or RunSpec
    X : array-like of shape (N, D)
    n : int
        Optimisation steps.
    minibatch : int, optional
        Rows per step (1 <= minibatch <= N); None uses the full data at every step.
    random_seed : int, optional
    draws : int
        Draws from the fitted approximation.
    learning_rate : float
    result : xarray.DataTree, optional
    feature_names : sequence of str, optional
    sample_weight : array-like of shape (N,), optional
    missing : {"error", "model"}
        ``"model"``: NaN entries of X are missing at random, summed out of each row's
        likelihood (the density of its observed coordinates; every family). ``"error"``:
        NaN is a DataError.
    labels : array-like of shape (N,), optional
        Partial labels: a row's component 0..K-1 where known, -1 where not; a labelled row
        contributes ``log w_k + log f_k(x_n)``. Default: the labels stored in ``result``.
        Not with ``minibatch``.

    Returns
    -------
    xarray.DataTree
        With group ``advi`` (chain, draw, ...) like ``posterior``; attrs ``final_loss``
        (the last -ELBO estimate, for minibatch ADVI a noisy one on the full-data scale),
        ``n``, ``seed``, ``minibatch`` (0 for the full data).
    """
    import pymc as pm

    from bayesmix.graphs import build_model

    m, Xc, names, weights, known = _prepare(
        spec, X, feature_names, sample_weight, result, missing, labels
    )
    n = check_int(n, "n", 1)
    draws = check_int(draws, "draws", 1)
    seed = resolve_seed(random_seed)
    rows = {"sample_weight": weights, "missing": missing, "labels": known}
    if minibatch is None:
        model = get_compiled(m, Xc, feature_names=names, **rows).model
    else:
        # a model of its own (pm.fit compiles its own functions; nothing to share)
        model = build_model(m, Xc, feature_names=names, minibatch=minibatch, **rows)
    initvals = _init_point("em", result, m, None, Xc, weights, missing, known)
    with _quiet_pymc():
        approx = pm.fit(
            n=n,
            method="advi",
            model=model,
            random_seed=seed,
            progressbar=False,
            start=initvals,
            obj_optimizer=pm.adam(learning_rate=learning_rate),
        )
        adt = approx.sample(draws, random_seed=seed)
    post = _posterior_dataset(adt["posterior"].to_dataset(), names, m)
    post.attrs = {
        "final_loss": float(approx.hist[-1]),
        "n": n,
        "seed": seed,
        "minibatch": 0 if minibatch is None else int(minibatch),
    }
    tree = ensure_tree(result, spec, Xc, names, seed, row_labels(X), weights, X, known, missing)
    tree["advi"] = xr.DataTree(post)
    check_truncation(post, m)
    return tree
