"""Run every method of a :class:`~bayesmix.config.RunSpec` into one DataTree."""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import xarray as xr

from bayesmix._validation import ParameterError, checked_data
from bayesmix.config import METHODS, RunSpec
from bayesmix.em import check_sample_weight
from bayesmix.families import get_family
from bayesmix.graphs import check_labels, feature_labels, validate_data
from bayesmix.inference._fit import fit_advi, fit_em, fit_map, sample_nuts
from bayesmix.inference._predict import sample_posterior_predictive
from bayesmix.inference._tree import new_tree, resolve_seed, row_labels

__all__ = ["run"]

_STAGE_NAMES = {"em": "EM", "map": "MAP", "nuts": "NUTS", "advi": "ADVI"}


def _recorded(category: type[Warning]) -> bool:
    """Whether a warning of this category is kept in the result's ``warnings`` attr.

    Every warning class of bayesmix is, except the three that ``results.diagnose`` finds
    again from the result itself (divergences in ``sample_stats``, ``starts_agree`` of the
    map group, ``converged`` of the em group): keeping those would report them twice.
    """
    from bayesmix.inference._tree import DivergenceWarning, StartsDisagreeWarning

    if issubclass(category, DivergenceWarning | StartsDisagreeWarning):
        return False
    return category.__module__.startswith("bayesmix")


def _warning_line(stage: str, message: Warning | str) -> str:
    text = " ".join(str(message).split())
    text = re.sub(r"^\w+MixtureEM: ", "", text)  # the estimator's name: the stage says it
    return f"{stage}: {text}"


def run(
    run_spec: RunSpec,
    X: Any = None,
    *,
    progressbar: bool | None = None,
    on_stage: Callable[[str], None] | None = None,
    sample_weight: Any = None,
    missing: str | None = None,
    labels: Any = None,
) -> xr.DataTree:
    """Fit ``run_spec.fit.methods`` in the order em -> map -> nuts -> advi into one tree.

    All methods share one compiled model. MAP starts from the EM solution and NUTS from the
    MAP solution when those ran. After NUTS (or else ADVI) a posterior predictive group of
    ``[fit] ppc_draws`` replicates is added. The pointwise ``log_likelihood`` group is stored
    only with ``[fit] store_log_likelihood``; :func:`bayesmix.inference.log_likelihood`
    computes it on demand.

    Parameters
    ----------
    run_spec : RunSpec
    X : array-like of shape (N, D), optional
        Default: ``run_spec.data.load()``.
    sample_weight : array-like of shape (N,), optional
        Frequency weights of the rows, passed to every fit and stored in ``observed_data``.
        Default: ``X.attrs["sample_weight"]`` (the ``[data] weights`` column), else none.
    progressbar : bool, optional
        Passed to :func:`sample_nuts`.
    on_stage : callable, optional
        Called with a one-line description (``"EM: 5 starts"``, ``"NUTS: 4 chains x 1000
        draws"``, ...) as each stage starts; the CLI prints these as progress lines.
    missing : {"error", "model"}, optional
        ``"model"``: NaN entries of X are missing at random, summed out of every fit's
        likelihood (every family); the result keeps them as NaN
        in ``observed_data`` and records root attr ``missing``. ``"error"``: NaN is a
        DataError. Default: ``"model"`` when the spec's ``[data] missing`` says so, else
        ``"error"``.
    labels : array-like of shape (N,), optional
        Partial labels (0..K-1 known, -1 unknown), passed to every fit and stored as
        ``observed_data["labels"]``; EM and MAP components are then not sorted (the labels
        name them). Default: ``X.attrs["labels"]`` (the ``[data] labels`` column), else none.

    Returns
    -------
    xarray.DataTree
        Root attrs ``bayesmix_version``, ``spec`` (the RunSpec JSON), ``seed``, ``family``,
        ``covariance``, ``n_components``, ``created``, ``format``, and ``warnings``: a list of
        one-line texts, ``"<stage>: <message>"``, one for each warning bayesmix (or EM's
        convergence check) raised during the run. The warnings are also raised as usual.
    """
    if not isinstance(run_spec, RunSpec):
        raise ParameterError(
            f"run_spec must be a RunSpec, got {type(run_spec).__name__}; use "
            "bayesmix.config.load_spec(path)"
        )
    if X is None:
        X = run_spec.data.load(text=get_family(run_spec.model.family).text_features)
    fit = run_spec.fit
    for mth in fit.methods:
        if mth not in METHODS:
            raise ParameterError(
                f"unknown method {mth!r}: expected one of {', '.join(METHODS)}; fix [fit] methods"
            )
    model = run_spec.model
    if missing is None:
        missing = "model" if run_spec.data.missing_values == "model" else "error"
    if labels is None:
        labels = getattr(X, "attrs", {}).get("labels")
    Xc = validate_data(model, X, missing=missing)
    if sample_weight is None:
        sample_weight = getattr(X, "attrs", {}).get("sample_weight")
    weights = check_sample_weight(sample_weight, Xc.shape[0])
    known = check_labels(labels, Xc.shape[0], model.n_components)
    rows = {"missing": missing, "labels": known}
    names = feature_labels(X, None, Xc.shape[1])
    seed = resolve_seed(fit.seed)
    tree = new_tree(run_spec, Xc, names, seed, row_labels(X), weights, X, known, missing)
    recorded: list[str] = []

    @contextlib.contextmanager
    def stage(name: str, detail: str = "") -> Iterator[None]:
        if on_stage is not None:
            on_stage(f"{name}: {detail}" if detail else name)
        try:
            # every fit gets the array validated above: no second check of the data
            with checked_data(X, Xc), warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                yield
        finally:  # also when the stage fails: its warnings may say why
            for w in caught:  # keep a line in the result, then raise it as usual
                if _recorded(w.category):
                    recorded.append(_warning_line(name, w.message))
                warnings.warn_explicit(
                    w.message, w.category, w.filename, w.lineno, source=w.source
                )

    if "em" in fit.methods:
        with stage("EM", f"K={model.n_components}, several starts"):
            tree = fit_em(model, Xc, random_state=seed, feature_names=names, result=tree, **rows)
    if "map" in fit.methods:
        with stage("MAP", "optimising the PyMC model (compiles it on first use)"):
            tree = fit_map(model, Xc, random_seed=seed, feature_names=names, result=tree, **rows)
    if "nuts" in fit.methods:
        init = "map" if "map" in tree.children else "em"
        detail = f"{fit.chains} chains x {fit.draws} draws after {fit.tune} tuning steps"
        with stage("NUTS", f"{detail} ({fit.sampler})"):
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
                log_likelihood=fit.store_log_likelihood,
                **rows,
            )
    if "advi" in fit.methods:
        with stage("ADVI", f"variational approximation, {fit.draws} draws"):
            tree = fit_advi(
                model,
                Xc,
                random_seed=seed,
                draws=fit.draws,
                feature_names=names,
                result=tree,
                **rows,
            )
    pp_group = (
        "posterior"
        if "posterior" in tree.children
        else ("advi" if "advi" in tree.children else None)
    )
    if pp_group is not None and fit.ppc_draws > 0:
        with stage("posterior predictive", f"new data sets from the {pp_group} draws"):
            sample_posterior_predictive(
                tree, group=pp_group, random_seed=seed, max_draws=fit.ppc_draws
            )
    tree.attrs["warnings"] = recorded
    return tree
