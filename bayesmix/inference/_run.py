"""Run every method of a :class:`~bayesmix.config.RunSpec` into one DataTree."""

from __future__ import annotations

from typing import Any

import xarray as xr

from bayesmix._validation import ParameterError
from bayesmix.config import METHODS, RunSpec
from bayesmix.graphs import feature_labels, validate_data
from bayesmix.inference._fit import fit_advi, fit_em, fit_map, sample_nuts
from bayesmix.inference._predict import sample_posterior_predictive
from bayesmix.inference._tree import new_tree, resolve_seed

__all__ = ["run"]


def run(run_spec: RunSpec, X: Any = None, *, progressbar: bool | None = None) -> xr.DataTree:
    """Fit ``run_spec.fit.methods`` in the order em -> map -> nuts -> advi into one tree.

    All methods share one compiled model. MAP starts from the EM solution and NUTS from the
    MAP solution when those ran. After NUTS (or else ADVI) a posterior predictive group is
    added; NUTS also adds the pointwise ``log_likelihood``.

    Parameters
    ----------
    run_spec : RunSpec
    X : array-like of shape (N, D), optional
        Default: ``run_spec.data.load()``.
    progressbar : bool, optional
        Passed to :func:`sample_nuts`.

    Returns
    -------
    xarray.DataTree
        Root attrs ``bayesmix_version``, ``spec`` (the RunSpec JSON), ``seed``, ``family``,
        ``covariance``, ``n_components``, ``created``, ``format``.
    """
    if not isinstance(run_spec, RunSpec):
        raise ParameterError(
            f"run_spec must be a RunSpec, got {type(run_spec).__name__}; use "
            "bayesmix.config.load_spec(path)"
        )
    if X is None:
        X = run_spec.data.load()
    fit = run_spec.fit
    for mth in fit.methods:
        if mth not in METHODS:
            raise ParameterError(
                f"unknown method {mth!r}: expected one of {', '.join(METHODS)}; fix [fit] methods"
            )
    model = run_spec.model
    Xc = validate_data(model, X)
    names = feature_labels(X, None, Xc.shape[1])
    seed = resolve_seed(fit.seed)
    tree = new_tree(run_spec, Xc, names, seed)
    if "em" in fit.methods:
        tree = fit_em(model, Xc, random_state=seed, feature_names=names, result=tree)
    if "map" in fit.methods:
        tree = fit_map(model, Xc, random_seed=seed, feature_names=names, result=tree)
    if "nuts" in fit.methods:
        init = "map" if "map" in tree.children else "em"
        tree = sample_nuts(
            model,
            Xc,
            draws=fit.draws,
            tune=fit.tune,
            chains=fit.chains,
            random_seed=seed,
            sampler=fit.sampler,
            target_accept=fit.target_accept,
            init=init,
            progressbar=progressbar,
            feature_names=names,
            result=tree,
        )
    if "advi" in fit.methods:
        tree = fit_advi(
            model, Xc, random_seed=seed, draws=fit.draws, feature_names=names, result=tree
        )
    pp_group = (
        "posterior"
        if "posterior" in tree.children
        else ("advi" if "advi" in tree.children else None)
    )
    if pp_group is not None:
        sample_posterior_predictive(tree, group=pp_group, random_seed=seed)
    return tree
