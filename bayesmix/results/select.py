"""Choosing the number of components.

EM's information criteria, PSIS-LOO, marginal likelihoods and a sparse mixture's filled
components.
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import pandas as pd

from bayesmix._validation import DataError, ParameterError, check_choice

__all__ = ["select_k", "recommend", "loo", "criterion_table", "refit_em", "CRITERIA"]

CRITERIA = ("bic", "aic", "icl", "loo", "p_k", "p_kplus")
_LOWER_IS_BETTER = ("bic", "aic", "icl")
_HIGHER_IS_BETTER = ("p_k", "p_kplus")


def _em_estimator(X, family, cov, k, n_init, seed, missing="error", init_params=None):
    """The (unfitted) EM estimator that select_k fits for one row."""
    from bayesmix.config import ModelSpec
    from bayesmix.families import get_family
    from bayesmix.inference._fit import em_estimator

    fam = get_family(family)
    spec = ModelSpec(family=family, n_components=k, covariance=cov or "full")
    options = {
        "n_init": n_init,
        "random_state": seed,
        "tol": 1e-6,
        "max_iter": 1000,
        "missing": missing,
    }
    if init_params is not None:
        options["init_params"] = init_params
    elif fam.select_init is not None:
        options["init_params"] = fam.select_init
    return em_estimator(spec, X.shape[1], None, **options)


def _em_row(
    X, family, cov, k, n_init, seed, weights=None, missing="error", init_params=None
) -> dict[str, Any]:
    from bayesmix.em import CollapsedComponentWarning

    est = _em_estimator(X, family, cov, k, n_init, seed, missing, init_params)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("ignore", category=UserWarning)
            warnings.simplefilter("always", category=CollapsedComponentWarning)  # (first)
            est.fit(X, sample_weight=weights)
        collapsed = [
            w.message for w in caught if issubclass(w.category, CollapsedComponentWarning)
        ]
        if collapsed:  # an unbounded likelihood, not an estimate: no criteria (mclust's NA)
            raise DataError(str(collapsed[0]))
    except DataError as err:  # e.g. a singular covariance: no numbers (mclust's NA)
        warnings.warn(f"the EM fit failed, its criteria are left empty: {err}", stacklevel=2)
        nan = float("nan")
        return {
            "n_parameters": nan,
            "log_likelihood": nan,
            "bic": nan,
            "aic": nan,
            "icl": nan,
            "converged": False,
        }
    n_obs = np.asarray(X).shape[0] if weights is None else float(np.sum(weights))
    return {
        "n_parameters": int(est._n_parameters()),
        "log_likelihood": float(est.score(X, sample_weight=weights) * n_obs),
        "bic": float(est.bic(X, sample_weight=weights)),
        "aic": float(est.aic(X, sample_weight=weights)),
        "icl": float(est.icl(X, sample_weight=weights)),
        "converged": bool(est.converged_),
    }


_LOO_BLOCK_VALUES = 1_000_000  # draws x observations of log-likelihood per block (8 MB)


def loo(result: Any, *, group: str = "posterior", obs_block: int | None = None):
    """PSIS-LOO of a result, a block of observations at a time: ``az.loo`` without the group.

    Gives the numbers of ``az.loo(result, pointwise=True)`` on a result that stores the
    pointwise ``log_likelihood`` (same relative efficiency from the draws, same Pareto
    smoothing per observation, same sums), but never holds more than one block of the
    (draws x N) log-likelihood: each block comes from
    :func:`bayesmix.inference.log_likelihood` (the stored group when there is one). Results
    of ``bayesmix fit`` do not store it, so ``az.loo(result)`` alone fails on them.

    Parameters
    ----------
    result : xarray.DataTree
        With ``group`` (draws), ``observed_data`` and the spec attrs.
    group : str
        ``"posterior"`` or ``"advi"``.
    obs_block : int, optional
        Observations per block; default: as many as fit in 1e6 log-likelihood values.

    Returns
    -------
    arviz_stats.utils.ELPDDataLOO
        ``elpd``, ``se``, ``p``, ``warning``, ``good_k``, ``elpd_i`` and ``pareto_k``
        (obs_id); ``log_weights`` is None (it would be draws x N again).
    """
    import xarray as xr
    from arviz_stats.utils import ELPDDataLOO

    from bayesmix.inference import log_likelihood

    if not isinstance(result, xr.DataTree):
        raise ParameterError(
            f"loo needs a result: expected an xarray.DataTree, got {type(result).__name__}; "
            "pass the tree from bayesmix.inference or bayesmix.results.load"
        )
    if group not in result.children or "chain" not in result[group].dims:
        raise ParameterError(
            f"loo needs draws: expected a group {group!r} with (chain, draw), got groups "
            f"{sorted(result.children)}; run NUTS (or ADVI) first"
        )
    if "observed_data" not in result.children:
        raise ParameterError(
            "loo needs the observed data: expected an observed_data group, got groups "
            f"{sorted(result.children)}; use a result made by bayesmix.inference"
        )
    sizes = result[group].sizes
    n_samples = sizes["chain"] * sizes["draw"]
    n_obs = result["observed_data"].sizes["obs_id"]
    if obs_block is None:
        obs_block = max(1, _LOO_BLOCK_VALUES // n_samples)
    elif isinstance(obs_block, bool) or not isinstance(obs_block, int) or obs_block < 1:
        raise ParameterError(
            f"obs_block must be a positive integer: expected e.g. 500, got {obs_block!r}"
        )
    # relative efficiency exactly as arviz's loo computes it: mean ESS of every posterior
    # value over the number of draws (1 for a single chain)
    if sizes["chain"] == 1:
        reff = 1.0
    else:
        ess = result[group].azstats.ess(method="mean")
        reff = np.hstack([ess[v].values.ravel() for v in ess.data_vars]).mean() / n_samples
    sample_dims = ["chain", "draw"]
    elpd_parts, k_parts, p_parts = [], [], []
    for start in range(0, n_obs, obs_block):
        ll = log_likelihood(result, group=group, obs=slice(start, start + obs_block))["x"]
        elpd_i, k_i, p_i = ll.azstats.loo(sample_dims=sample_dims, r_eff=reff)
        elpd_parts.append(elpd_i)
        k_parts.append(k_i)
        p_parts.append(p_i)
    elpd_i = xr.concat(elpd_parts, dim="obs_id")
    pareto_k = xr.concat(k_parts, dim="obs_id")
    p_loo_i = xr.concat(p_parts, dim="obs_id")
    elpd, se, p_loo, _ = elpd_i.azstats.loo_summary(p_loo_i)
    good_k = min(1 - 1 / np.log10(n_samples), 0.7) if n_samples > 1 else 0.7
    return ELPDDataLOO(
        elpd=elpd,
        se=se,
        p=p_loo,
        n_samples=n_samples,
        n_data_points=n_obs,
        scale="log",
        warning=bool(np.any(pareto_k.values > good_k)),
        good_k=good_k,
        elpd_i=elpd_i,
        pareto_k=pareto_k,
        approx_posterior=False,
        log_weights=None,
    )


def _nuts_tree(X, model_spec, draws, tune, chains, seed, missing="error") -> Any:
    """The NUTS result of ``model_spec`` for PSIS-LOO (without the pointwise log-likelihood)."""
    from bayesmix.inference import sample_nuts

    return sample_nuts(
        model_spec,
        X,
        missing=missing,
        draws=draws,
        tune=tune,
        chains=chains,
        random_seed=seed,
        progressbar=False,
        log_likelihood=False,  # loo computes it a block of observations at a time
    )


def _shared_nuts(
    X, model_spec, draws, tune, chains, seed, missing="error"
) -> tuple[Any, Callable[[], dict[str, Any]]]:
    """One NUTS run of the evidence's model for both PSIS-LOO and ``log p(y | K)``.

    The run is the one :func:`bayesmix.results.log_evidence` makes (same compiled model, start
    and seed), kept with nutpie's ``posterior``, which is what
    :func:`bayesmix.inference.sample_nuts` stores for the same seed.

    Returns
    -------
    tree : xarray.DataTree
        ``observed_data`` and ``posterior``, as ``sample_nuts`` makes them, for :func:`loo`.
    bridge : callable
        Returns the ``log_evidence`` and ``log_evidence_se`` columns, estimated from the
        run's unconstrained draws exactly as ``log_evidence`` does.
    """
    import time

    import xarray as xr

    from bayesmix.inference._fit import _posterior_dataset, warn_divergences
    from bayesmix.inference._tree import new_tree, row_labels
    from bayesmix.results import evidence

    t0 = time.perf_counter()
    run = evidence._prepare_run(
        model_spec,
        X,
        draws=draws,
        tune=tune,
        chains=chains,
        random_seed=seed,
        method="bridge",
        n_proposal=None,
        target_accept=0.9,  # sample_nuts's and log_evidence's default
        missing=missing,
    )
    trace = evidence._nuts_trace(*run.nuts)
    theta, rhat_max, n_div = evidence._unconstrained(trace)
    sampling = time.perf_counter() - t0
    names = run.cm.feature_names
    tree = new_tree(model_spec, run.cm.X, names, run.seed, row_labels(X), raw=X, missing=missing)
    post = _posterior_dataset(trace["posterior"].to_dataset(), names, model_spec)
    tree["posterior"] = xr.DataTree(post.assign_attrs(sampler="nutpie", seed=run.seed))
    warn_divergences(n_div, chains * draws, stacklevel=3)  # as sample_nuts, the other route

    def bridge() -> dict[str, Any]:
        # seconds: the sampling and the estimate, not the LOO in between
        ev = evidence._estimate(run, theta, rhat_max, n_div, time.perf_counter() - sampling)
        return {"log_evidence": ev.log_evidence, "log_evidence_se": ev.se}

    return tree, bridge


def _loo_row(tree, model_spec) -> tuple[dict[str, Any], np.ndarray]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = loo(tree)
    pareto_k = np.asarray(result.pareto_k).ravel()
    n_bad = int((~(pareto_k <= 0.7)).sum())
    if n_bad:
        warnings.warn(
            f"K={model_spec.n_components} ({model_spec.covariance}): {n_bad} "
            f"{'observation has' if n_bad == 1 else 'observations have'} "
            "Pareto k > 0.7 in PSIS-LOO, so its elpd is unreliable; check those points or "
            "use K-fold cross-validation",
            UserWarning,
            stacklevel=3,
        )
    row = {
        "elpd_loo": float(result.elpd),
        "se": float(result.se),
        "p_loo": float(result.p),
        "n_high_pareto_k": n_bad,
    }
    return row, np.asarray(result.elpd_i).ravel()


def _best_loo(sub: pd.DataFrame, pointwise: dict[int, np.ndarray]) -> pd.DataFrame:
    """Add ``elpd_diff`` / ``dse`` to the best row and mark the parsimonious choice."""
    sub = sub.copy()
    ok = sub["elpd_loo"].notna()
    if not ok.any():
        sub["elpd_diff"] = np.nan
        sub["dse"] = np.nan
        return sub
    best = sub.loc[ok, "elpd_loo"].idxmax()
    ref = pointwise[best]
    diff, dse = [], []
    for idx in sub.index:
        if idx in pointwise:
            d = ref - pointwise[idx]
            diff.append(float(d.sum()))
            dse.append(float(np.sqrt(len(d) * np.var(d))))
        else:
            diff.append(np.nan)
            dse.append(np.nan)
    sub["elpd_diff"] = diff
    sub["dse"] = dse
    return sub


def _recommendations(table: pd.DataFrame, criteria: list[str]) -> tuple[dict, dict, dict]:
    best_k: dict[str, int] = {}
    best_cov: dict[str, Any] = {}
    by_cov: dict[Any, dict[str, int]] = {}
    for crit in criteria:
        col = "elpd_loo" if crit == "loo" else crit
        valid = table[table[col].notna()]
        if valid.empty:
            continue
        if crit == "loo":
            # parsimony: the smallest K within one standard error of the best elpd
            close = valid[valid["elpd_diff"] <= valid["dse"].fillna(0.0)]
            row = close.sort_values(["k", "elpd_loo"], ascending=[True, False]).iloc[0]
        elif crit in _HIGHER_IS_BETTER:
            row = valid.loc[valid[col].idxmax()]
        else:
            row = valid.loc[valid[col].idxmin()]
        best_k[crit] = int(row["k"])
        best_cov[crit] = row["covariance_type"]
        for cov, sub in valid.groupby("covariance_type", dropna=False, sort=False):
            if crit == "loo":
                close = sub[sub["elpd_diff_within"] <= sub["dse_within"].fillna(0.0)]
                k = int(close["k"].min())
            elif crit in _HIGHER_IS_BETTER:
                k = int(sub.loc[sub[col].idxmax(), "k"])
            else:
                k = int(sub.loc[sub[col].idxmin(), "k"])
            by_cov.setdefault(cov, {})[crit] = k
    return best_k, best_cov, by_cov


def _evidence_model(model_spec: Any) -> Any:
    """The model ``log_evidence`` samples for ``model_spec``, or None where it does not apply.

    :func:`bayesmix.results.evidence.evidence_spec` decides (an orderable family, Dirichlet
    weights with one concentration).
    """
    from bayesmix.results.evidence import evidence_spec

    try:
        return evidence_spec(model_spec)
    except ParameterError:
        return None


def _add_posterior_k(table: pd.DataFrame, prior_k: Any, seed: int | None) -> None:
    """p(K | y) and its standard error within each covariance type (in place)."""
    from bayesmix.results.evidence import posterior_k

    table["p_k"] = np.nan
    table["p_k_se"] = np.nan
    for _, sub in table.groupby("covariance_type", dropna=False, sort=False):
        ok = sub[sub["log_evidence"].notna()]
        if ok.empty:
            continue
        pk = posterior_k(ok, prior_k, random_seed=0 if seed is None else int(seed))
        by_k = pk.set_index("k")
        table.loc[ok.index, "p_k"] = ok["k"].map(by_k["p_k"]).to_numpy()
        table.loc[ok.index, "p_k_se"] = ok["k"].map(by_k["p_k_se"]).to_numpy()


def _kplus_column(
    X, family, cov, spec, k_max, draws, tune, chains, rng, missing="error"
) -> pd.Series:
    """p(K+ = k | y) from one sparse mixture with K_max components (index k)."""
    from bayesmix.config import ModelSpec
    from bayesmix.inference import sample_nuts
    from bayesmix.results.partition import kplus_posterior

    base = spec if spec is not None else ModelSpec(family=family)
    priors = dataclasses.replace(
        base.priors, weights="sparse", weights_alpha=None, weights_alpha_prior=None
    )
    sparse = dataclasses.replace(
        base,
        family=family,
        n_components=k_max,
        covariance=cov or base.covariance,
        ordered=False,
        priors=priors,
    )
    seed = int(rng.integers(2**31 - 1))
    tree = sample_nuts(
        sparse,
        X,
        missing=missing,
        draws=draws,
        tune=tune,
        chains=chains,
        random_seed=seed,
        progressbar=False,
        log_likelihood=False,
    )
    return kplus_posterior(tree, n_components=k_max, random_seed=seed)


@contextlib.contextmanager
def _warnings_of(label: str) -> Iterator[None]:
    """Raise the warnings of the block again, prefixed with ``label`` (e.g. ``"K=3"``)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        text = str(w.message)
        if not text.startswith(f"{label}"):
            text = f"{label}: {text}"
        warnings.warn_explicit(text, w.category, w.filename, w.lineno)


def select_k(
    X: Any,
    ks: Iterable[int] = range(1, 7),
    *,
    family: str = "gaussian",
    covariance_types: Iterable[str] = ("full",),
    bayesian: bool = False,
    spec: Any = None,
    draws: int = 500,
    tune: int = 500,
    chains: int = 2,
    n_init: int = 5,
    random_state: int | None = None,
    on_stage: Callable[[str], None] | None = None,
    sample_weight: Any = None,
    prior_k: Any = None,
    bayesian_criteria: Iterable[str] = ("loo", "evidence", "kplus"),
    missing: str = "error",
    init_params: str | None = None,
) -> pd.DataFrame:
    """Compare numbers of components by EM's criteria and, the Bayesian way, by LOO and p(K|y).

    EM: BIC, AIC, ICL. Bayesian: PSIS-LOO, the marginal likelihood p(y | K) and a sparse
    mixture's filled components.

    Warnings raised while fitting one K (EM convergence, divergences, high Pareto k) are
    raised again with ``"K=<k>: "`` in front, so it is clear which fit they belong to.

    Parameters
    ----------
    X : array-like of shape (N, D)
        The data (a DataFrame is fine).
    ks : iterable of int
        Numbers of components to try.
    family : str
        A name of :data:`bayesmix.families.FAMILIES`.
    covariance_types : iterable of str
        Covariance structures of the family (Gaussian: ``full``, ``tied``, ``diag``,
        ``spherical``). Ignored for families without one.
    bayesian : bool
        Also, for each K: sample the model with NUTS (:func:`bayesmix.inference.sample_nuts`)
        and compute PSIS-LOO; for families with ordered locations (Gaussian, Student-t) and
        Dirichlet weights, estimate ``log p(y | K)`` by bridge sampling
        (:func:`bayesmix.results.log_evidence`'s estimate, from the draws of the same NUTS
        run as LOO: that run samples the evidence's model,
        :func:`bayesmix.results.evidence.evidence_spec`, compiled once per K) and p(K | y)
        under ``prior_k`` (:func:`bayesmix.results.posterior_k`); and once, a sparse mixture
        with K_max = max(ks) (``[priors] weights = "sparse"``) whose posterior of the number
        of filled components K+ gives ``p_kplus``. Slow: one NUTS run per K and one more.
    spec : ModelSpec, optional
        Template for the Bayesian models (priors, ``ordered``); ``n_components``, ``family``
        and ``covariance`` are replaced per row.
    draws, tune, chains : int
        NUTS settings for ``bayesian=True``.
    n_init : int
        EM restarts per fit (the best is kept).
    random_state : int, optional
        Seed of every fit.
    on_stage : callable, optional
        Called with a one-line description as each K starts (progress lines).
    sample_weight : array-like of shape (N,), optional
        Frequency weights of the rows for the EM fits (integer weights = repeated rows; N in
        BIC is their sum). Not with ``bayesian=True``.
    prior_k : mapping K -> float, sequence of float or None
        Prior probabilities of K for ``p_k`` (renormalised over ``ks``); None: the spec's
        ``k_prior`` (``[priors] k_prior``; uniform by default, and without a spec).
    bayesian_criteria : iterable of {"loo", "evidence", "kplus"}
        With ``bayesian=True``, which Bayesian columns to compute (NUTS for LOO always runs:
        the evidence shares its draws): all three by default.
    missing : {"error", "model"}
        ``"model"``: NaN entries are missing at random and summed out by every fit (EM
        criteria of the observed values, LOO, evidence and K+); the family must support it.
    init_params : str, optional
        The EM estimator's start (default: the family's ``select_init``, Gaussian "kmeans").
        "hc" is R mclust's start (the model-based hierarchical clustering, then k-means
        restarts for ``n_init > 1``), what ``bayesmix select --covariance all`` uses.

    Returns
    -------
    pandas.DataFrame
        One row per (covariance_type, k): ``family, covariance_type, k, n_parameters,
        log_likelihood, bic, aic, icl, converged`` and, when ``bayesian``, ``elpd_loo, se,
        p_loo, n_high_pareto_k, elpd_diff, dse`` (difference to the best elpd of the same
        covariance type and its standard error), and where they apply ``log_evidence``,
        ``log_evidence_se``, ``p_k``, ``p_k_se`` (p(K | y) within the covariance type) and
        ``p_kplus`` (p(K+ = k | y) of the sparse fit). ``attrs["recommended"]`` =
        ``{criterion: k}`` over all rows (lowest BIC/AIC/ICL; for LOO the smallest K whose
        elpd is within one ``dse`` of the best; the largest ``p_k`` and ``p_kplus``),
        ``attrs["recommended_covariance"]`` = ``{criterion: type}``,
        ``attrs["recommended_by_covariance"]`` = ``{type: {criterion: k}}``,
        ``attrs["em_fit"]``: the EM settings and each row's seed (:func:`refit_em`).
    """
    from bayesmix.families import get_family

    fam = get_family(family)  # ParameterError for an unknown name
    wanted = set(bayesian_criteria)
    if not wanted <= {"loo", "evidence", "kplus"}:
        raise ParameterError(
            f"bayesian_criteria: expected a subset of ('loo', 'evidence', 'kplus'), got "
            f"{sorted(wanted)}; pick from those"
        )
    ks = [int(k) for k in ks]
    if not ks or min(ks) < 1:
        raise ParameterError(
            f"ks must be numbers of components >= 1: expected e.g. range(1, 7), got {ks}; "
            "pass positive integers"
        )
    covs: list[Any] = list(covariance_types) if fam.covariances else [None]
    allowed = fam.covariances if bayesian else (fam.em_covariances or fam.covariances)
    bad = [c for c in covs if c is not None and c not in allowed]
    if bad or not covs:
        raise ParameterError(
            f"unknown covariance types: expected a non-empty subset of {allowed}, got "
            f"{list(covariance_types)}; pick from the list"
        )
    check_choice(missing, "missing", ("error", "model"))
    if missing == "model" and not fam.supports_missing:
        raise ParameterError(
            f"missing='model' is not supported for the {fam.name} family yet: expected "
            "missing='error'; drop or impute the incomplete rows first"
        )
    nan_ok = {"allow_nan": True} if missing == "model" else {}
    # the family's support (codes for text)
    X = fam.check_data(X, n_components=max(ks), **nan_ok)
    from bayesmix.em import check_sample_weight

    weights = check_sample_weight(sample_weight, X.shape[0])
    if weights is not None and bayesian:
        raise ParameterError(
            "sample_weight with bayesian=True: expected one of them, got both; PSIS-LOO of "
            "weighted rows is not implemented, compare the weighted fits by BIC/AIC/ICL"
        )

    rng = np.random.default_rng(random_state)
    rows = []
    pointwise: dict[int, np.ndarray] = {}
    em_seeds: dict[tuple[Any, int], int] = {}
    for cov in covs:
        for k in ks:
            seed = int(rng.integers(2**31 - 1))
            em_seeds[(cov, k)] = seed
            row = {"family": family, "covariance_type": cov, "k": k}
            label = f"K={k}" + (f" ({cov})" if cov is not None and len(covs) > 1 else "")
            if on_stage is not None:
                on_stage(f"{label}: EM" + (" then NUTS and PSIS-LOO" if bayesian else ""))
            with _warnings_of(label):
                row.update(_em_row(X, family, cov, k, n_init, seed, weights, missing, init_params))
                if bayesian:
                    from bayesmix.config import ModelSpec

                    base = spec if spec is not None else ModelSpec(family=family)
                    model_spec = dataclasses.replace(
                        base, family=family, n_components=k, covariance=cov or base.covariance
                    )
                    ev_model = _evidence_model(model_spec) if "evidence" in wanted else None
                    nuts = (draws, tune, chains, seed, missing)
                    if ev_model is not None:  # one NUTS run per K for LOO and the evidence
                        model_spec = ev_model
                        tree, bridge = _shared_nuts(X, model_spec, *nuts)
                    else:
                        tree, bridge = _nuts_tree(X, model_spec, *nuts), None
                    loo_row, elpd_i = _loo_row(tree, model_spec)
                    row.update(loo_row)
                    pointwise[len(rows)] = elpd_i
                    if bridge is not None:
                        if on_stage is not None:
                            on_stage(f"{label}: log p(y | K) by bridge sampling")
                        row.update(bridge())
            rows.append(row)
    table = pd.DataFrame(rows)
    criteria = ["bic", "aic", "icl"]
    if bayesian and "log_evidence" in table:
        if prior_k is None and spec is not None:
            prior_k = spec.priors.k_prior_weights(sorted(set(table["k"].astype(int))))
        _add_posterior_k(table, prior_k, random_state)
        criteria.append("p_k")
    if bayesian and "kplus" in wanted and get_family(family).orderable:
        for cov in covs:
            if on_stage is not None:
                shown = f" ({cov})" if cov is not None and len(covs) > 1 else ""
                on_stage(f"sparse mixture, K_max={max(ks)}{shown}: NUTS for p(K+ | y)")
            with _warnings_of(f"sparse K_max={max(ks)}"):
                p_kplus = _kplus_column(
                    X, family, cov, spec, max(ks), draws, tune, chains, rng, missing
                )
            rows_cov = table["covariance_type"].eq(cov) if cov is not None else slice(None)
            table.loc[rows_cov, "p_kplus"] = table.loc[rows_cov, "k"].map(p_kplus)
        criteria.append("p_kplus")
    if bayesian:
        criteria.append("loo")
        parts = []
        for _, sub in table.groupby("covariance_type", dropna=False, sort=False):
            parts.append(_best_loo(sub, pointwise))
        within = pd.concat(parts).loc[table.index]
        table["elpd_diff_within"] = within["elpd_diff"]
        table["dse_within"] = within["dse"]
        overall = _best_loo(table, pointwise)
        table["elpd_diff"] = overall["elpd_diff"]
        table["dse"] = overall["dse"]
    best_k, best_cov, by_cov = _recommendations(table, criteria)
    if bayesian:
        table["elpd_diff"] = table.pop("elpd_diff_within")
        table["dse"] = table.pop("dse_within")
    table.attrs["recommended"] = best_k
    table.attrs["recommended_covariance"] = best_cov
    table.attrs["recommended_by_covariance"] = by_cov
    table.attrs["em_fit"] = {
        "family": family,
        "n_init": n_init,
        "missing": missing,
        "init_params": init_params,
        "seeds": em_seeds,
    }
    return table


def refit_em(table: pd.DataFrame, X: Any, criterion: str = "bic", sample_weight: Any = None):
    """The EM fit of a :func:`select_k` table's choice by ``criterion``, fitted again.

    The same estimator, settings and seed as the table's row, so the same numbers.

    Parameters
    ----------
    table : pandas.DataFrame
        Returned by :func:`select_k`.
    X : array-like
        The data given to :func:`select_k`.
    criterion : {"bic", "aic", "icl"}
    sample_weight : array-like, optional
        As given to :func:`select_k`.

    Returns
    -------
    estimator
        A fitted estimator of :mod:`bayesmix.em` (e.g. ``GaussianMixtureEM``).
    """
    if criterion not in _LOWER_IS_BETTER:
        raise ParameterError(
            f"criterion is invalid: expected one of {_LOWER_IS_BETTER}, got {criterion!r}; "
            "pick one"
        )
    fit = table.attrs.get("em_fit")
    if not fit:
        raise ParameterError(
            "table has no EM settings: expected the table returned by select_k, got another "
            "DataFrame; pass select_k's table"
        )
    from bayesmix.families import get_family

    k = int(table.attrs["recommended"][criterion])
    cov = table.attrs["recommended_covariance"][criterion]
    cov = None if isinstance(cov, float) and np.isnan(cov) else cov
    X = get_family(fit["family"]).check_data(
        X, n_components=k, **({"allow_nan": True} if fit["missing"] == "model" else {})
    )
    est = _em_estimator(
        X,
        fit["family"],
        cov,
        k,
        fit["n_init"],
        fit["seeds"][(cov, k)],
        fit["missing"],
        fit["init_params"],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        return est.fit(X, sample_weight=sample_weight)


def recommend(
    table: pd.DataFrame, criterion: str = "bic", covariance_type: str | None = None
) -> int:
    """The number of components that ``criterion`` prefers in a :func:`select_k` table.

    Parameters
    ----------
    table : pandas.DataFrame
        Returned by :func:`select_k`.
    criterion : {"bic", "aic", "icl", "loo"}
    covariance_type : str, optional
        Restrict to one covariance type; default: the best over all rows.

    Returns
    -------
    int
    """
    if criterion not in CRITERIA:
        raise ParameterError(
            f"unknown criterion: expected one of {CRITERIA}, got {criterion!r}; pick one"
        )
    if covariance_type is None:
        source = table.attrs.get("recommended", {})
    else:
        source = table.attrs.get("recommended_by_covariance", {}).get(covariance_type)
        if source is None:
            raise ParameterError(
                f"unknown covariance type: expected one of "
                f"{list(table.attrs.get('recommended_by_covariance', {}))}, got "
                f"{covariance_type!r}; pick one that select_k ran"
            )
    if criterion not in source:
        raise ParameterError(
            f"criterion {criterion!r} is not in this table: expected one of {list(source)}, "
            f"got {criterion!r}; run select_k with bayesian=True for LOO"
        )
    return int(source[criterion])


def criterion_table(
    table: pd.DataFrame, criterion: str = "bic", convention: str = "mclust"
) -> pd.DataFrame:
    """A :func:`select_k` criterion as R's ``mclustBIC`` prints it: rows K, a column per model.

    Parameters
    ----------
    table : pandas.DataFrame
        Returned by :func:`select_k` (one row per covariance type and K).
    criterion : {"bic", "aic", "icl"}
    convention : {"mclust", "sklearn"}, default "mclust"
        "mclust": the sign of R's mclust (``2 log L - p log N``, higher is better);
        "sklearn": the table's own (lower is better).

    Returns
    -------
    pandas.DataFrame
        Index ``k``; columns the covariance types in the order they were fitted; NaN where a
        fit failed.
    """
    if criterion not in _LOWER_IS_BETTER:
        raise ParameterError(
            f"criterion is invalid: expected one of {_LOWER_IS_BETTER}, got {criterion!r}; "
            "pick one"
        )
    if convention not in ("mclust", "sklearn"):
        raise ParameterError(
            f"convention is invalid: expected 'mclust' or 'sklearn', got {convention!r}; "
            "pass one of them"
        )
    covs = list(dict.fromkeys(table["covariance_type"]))
    wide = table.pivot(index="k", columns="covariance_type", values=criterion)[covs]
    wide.columns.name = None
    return -wide if convention == "mclust" else wide
