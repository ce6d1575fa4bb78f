"""PyMC graphs of finite mixtures with the component label summed out, for every family.

The observed variable ``x`` is a ``CustomDist`` whose log density is

    log p(x_n) = logsumexp_k [ log w_k + log f(x_n | theta_k) ]

with the family's component density ``f`` (for independent features, the sum over features
sits *inside* the log-sum-exp: one label per observation, shared by all its features; a
``pm.Mixture`` over batched univariate components would give every feature its own label, a
different model). Because ``x`` is an observed random variable and not a ``Potential``,
``pm.compute_log_likelihood`` returns the pointwise ``log p(x_n)`` for LOO.

This module builds what every family shares (coords, the data, the Dirichlet weights, the
prior numbers as ``pm.Data``); the family (:mod:`bayesmix.families`) adds its parameters and
the observed ``x`` (:meth:`~bayesmix.families.Family.add_to_graph`). The data live in
``pm.Data("x_data")`` and the data-scaled prior numbers in ``pm.Data`` too (``prior_<name>``),
so a compiled model can be refitted on new data of the same shape with ``pm.set_data`` (or
nutpie's ``with_data``) without recompiling. Missing values (``missing="model"``) and
partial labels are data too (:class:`bayesmix.families._base.ObservedRows`): each row's
density runs over its observed coordinates, a labelled row's is ``log w_k + log f_k(x_n)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bayesmix._validation import (
    DataError,
    ParameterError,
    already_checked,
    check_choice,
    check_labels,
)
from bayesmix.config import ModelSpec, resolve_priors
from bayesmix.em import check_sample_weight
from bayesmix.families import get_family
from bayesmix.families._base import ObservedRows

__all__ = [
    "FORMULATIONS",
    "MISSING",
    "build_model",
    "check_labels",
    "check_missing",
    "default_initvals",
    "feature_labels",
    "free_var_names",
    "point_to_initvals",
    "validate_data",
    "hyper_variables",
    "weights_prior_variables",
]

FORMULATIONS = ("custom", "mixture", "batched")
#: ``missing=``: NaN is an error, or a value missing at random summed out of the likelihood.
MISSING = ("error", "model")


def effective_covariance(spec: ModelSpec, n_features: int) -> str | None:
    """Covariance structure actually built (the family's): None when it has none."""
    return get_family(spec.family).effective_covariance(spec.covariance, n_features)


def check_missing(spec: ModelSpec, missing: str) -> bool:
    """Whether NaN entries are missing values (``missing="model"``) for this spec's family.

    Raises ParameterError for an unknown choice, and for ``"model"`` with a family that
    cannot sum missing values out (:attr:`bayesmix.families.Family.supports_missing`).
    """
    check_choice(missing, "missing", MISSING)
    if missing == "model" and not get_family(spec.family).supports_missing:
        raise ParameterError(
            f"missing='model' is not available for family={spec.family!r}: expected "
            "missing='error'; drop or impute the rows with missing values first"
        )
    return missing == "model"


def validate_data(
    spec: ModelSpec,
    X: Any,
    *,
    n_features: int | None = None,
    fitting: bool = True,
    missing: str = "error",
) -> np.ndarray:
    """Check ``X`` against a model spec and return a float array (N, D).

    Parameters
    ----------
    spec : ModelSpec
    X : array-like of shape (N, D) or (N,)
        1-D input is read as one feature.
    n_features : int, optional
        Required number of features (e.g. the D of a fitted result).
    fitting : bool
        True: the data will be fitted, so they need at least ``n_components`` distinct rows
        and (full covariance) no constant column. False: new points to evaluate.
    missing : {"error", "model"}
        ``"model"``: NaN entries are missing values (not with every value of a row or a
        column missing; families with ``supports_missing`` only); ``"error"``: NaN is a
        DataError that names this option.

    Returns
    -------
    ndarray of shape (N, D)
        NaN where missing (``missing="model"``).

    Raises
    ------
    DataError
        NaN/inf, too few points for ``spec.n_components``, data outside the family's support
        (e.g. non-binary data for a Bernoulli mixture), a constant column with full
        covariance, or the wrong number of features.
    ParameterError
        ``missing="model"`` for a family without missing-value support.
    """
    allow_nan = check_missing(spec, missing)
    Xc = already_checked(X)  # validated once for the whole command
    if Xc is None:
        Xc = get_family(spec.family).check_data(
            X,
            n_components=spec.n_components if fitting else None,
            covariance=spec.covariance,
            fitting=fitting,
            **({"allow_nan": True} if allow_nan else {}),
        )
    elif not allow_nan and Xc.dtype.kind == "f" and np.isnan(Xc).any():
        # checked for a fit with missing values, now used without them
        raise DataError(
            f"X contains {int(np.isnan(Xc).sum())} missing value(s) (NaN): expected finite "
            "numbers; pass missing='model' to model NaN as missing at random, or drop them"
        )
    if n_features is not None and Xc.shape[1] != n_features:
        raise DataError(
            f"X has {Xc.shape[1]} features but the model was fitted with {n_features}: "
            f"expected X of shape (n_samples, {n_features}); pass data with the same columns"
        )
    return Xc


def feature_labels(X: Any, feature_names: Sequence[str] | None, n_features: int) -> list[str]:
    """Feature coordinate labels: ``feature_names``, DataFrame columns, else ``x0, x1, ...``."""
    if feature_names is not None:
        names = [str(f) for f in feature_names]
    elif hasattr(X, "columns"):
        names = [str(c) for c in X.columns]
    else:
        names = [f"x{j}" for j in range(n_features)]
    if len(names) != n_features:
        raise ParameterError(
            f"feature_names has {len(names)} entries: expected {n_features} (one per column of "
            "X); pass one name per feature"
        )
    return names


# ---------------------------------------------------------------------------------------------
# the builder


def weights_prior_variables(spec: ModelSpec) -> dict[str, tuple[str, ...]]:
    """The free scalars of the weights prior, {name: dims}: in the graph and in results.

    ``e0`` () for a sparse mixture with a Gamma hyperprior on its Dirichlet concentration
    (``weights_alpha_prior``), ``dp_alpha`` () for a Dirichlet-process mixture; none for a
    Dirichlet with fixed concentration. They have no ``component`` dim, so relabelling
    leaves them alone.
    """
    pr = spec.priors
    if pr.weights == "sparse" and pr.weights_alpha_prior is not None:
        return {"e0": ()}
    if pr.weights == "dp":
        return {"dp_alpha": ()}
    return {}


def hyper_variables(spec: ModelSpec, n_features: int) -> dict[str, tuple[str, ...]]:
    """Free hyper-parameters kept in results, {name: dims}: none has a ``component`` dim.

    The weights prior's (:func:`weights_prior_variables`: ``e0``, ``dp_alpha``) and the
    family's (:meth:`bayesmix.families.Family.hyper_variables`, e.g. the Gaussian
    ``variance_beta`` of Richardson & Green's prior).
    """
    return {
        **weights_prior_variables(spec),
        **get_family(spec.family).hyper_variables(spec, n_features),
    }


#: The free variables behind the weights of a sparse mixture (see :func:`_add_weights`).
SPARSE_WEIGHT_VARS = ("w_gamma", "w_exp")


def free_var_names(spec: ModelSpec, n_features: int) -> list[str]:
    """Names of the free random variables of :func:`build_model` (in model order)."""
    weights = list(SPARSE_WEIGHT_VARS) if spec.priors.weights == "sparse" else ["w"]
    return [
        *weights_prior_variables(spec),
        *weights,
        *get_family(spec.family).free_var_names(spec, n_features),
    ]


def _add_weights(spec: ModelSpec, prior_data: Mapping[str, Any], k: int):
    """The weights ``w`` (component) of the spec's weights prior, and its hyper-parameter.

    * ``"dirichlet"``: ``w ~ Dirichlet(weights_alpha)``.
    * ``"sparse"``: ``w ~ Dirichlet(e0)`` with ``e0 = weights_alpha``, or with
      ``weights_alpha_prior = (a, b)`` ``e0 ~ Gamma(a, b)`` (shape, rate). Written as
      normalised gammas, each gamma as a boosted one (Marsaglia & Tsang 2000): ``w_gamma[k] ~
      Gamma(e0 + 1, 1)``, ``w_exp[k] ~ Exponential(1)``, ``g_k = w_gamma[k] exp(-w_exp[k] /
      e0)`` (so ``g_k ~ Gamma(e0, 1)``: ``exp(-w_exp)`` is a uniform variable) and
      ``w = g / sum(g)`` (a Deterministic), which is exactly Dirichlet(e0). With e0 = 0.01 the
      Dirichlet's own simplex coordinates put each empty weight's log on a scale of
      ``1 / e0 = 100``; NUTS then diverged in over half its transitions on the galaxy data
      (1,161-1,331 of 2,000, Richardson & Green's variances with a fixed scale); these
      coordinates have scale 1 and gave 74-121.
    * ``"dp"``: ``dp_alpha ~ Gamma(dp_alpha_prior)`` and ``w`` the stick-breaking weights of
      a Dirichlet process truncated at K: ``v_k ~ Beta(1, dp_alpha)`` for k < K,
      ``w_k = v_k prod_{l<k} (1 - v_l)`` and the last weight the rest of the stick,
      ``w_K = prod_{l<K} (1 - v_l)`` (``pm.StickBreakingWeights(dp_alpha, K - 1)``, whose
      K - 1 sticks give K weights; default simplex transform).
    """
    import pymc as pm

    names = weights_prior_variables(spec)
    if spec.priors.weights == "sparse":
        import pytensor.tensor as pt

        if "e0" in names:
            ab = prior_data["weights_alpha_prior"]
            e0 = pm.Gamma("e0", alpha=ab[0], beta=ab[1])
        else:
            e0 = prior_data["weights_alpha"]
        gam = pm.Gamma(SPARSE_WEIGHT_VARS[0], alpha=e0 + 1.0, beta=1.0, dims="component")
        expo = pm.Exponential(SPARSE_WEIGHT_VARS[1], 1.0, dims="component")
        log_g = pt.log(gam) - expo / e0
        return pm.Deterministic("w", pt.special.softmax(log_g), dims="component")
    if "dp_alpha" in names:
        ab = prior_data["dp_alpha_prior"]
        alpha = pm.Gamma("dp_alpha", alpha=ab[0], beta=ab[1])
        return pm.StickBreakingWeights("w", alpha=alpha, K=k - 1, dims="component")
    return pm.Dirichlet("w", a=prior_data["weights_alpha"], dims="component")


def build_model(
    spec: ModelSpec,
    X: Any,
    *,
    feature_names: Sequence[str] | None = None,
    priors: Mapping[str, Any] | None = None,
    formulation: str = "custom",
    minibatch: int | None = None,
    sample_weight: Any = None,
    missing: str = "error",
    labels: Any = None,
):
    """Build the PyMC model of a finite mixture with the labels summed out.

    Variables (see ``docs/architecture.md``): ``w`` (component) and the family's variables
    (:meth:`bayesmix.families.Family.variables`): Gaussian ``mu`` and ``sigma`` (component,
    feature), full covariance adds the Deterministics ``corr`` and ``cov`` (component,
    feature, feature_bis) built from ``sigma`` and an LKJ Cholesky factor ``corr_chol``;
    spherical has a free ``sigma_spherical`` (component) and ``sigma`` is its Deterministic
    repetition across features; Bernoulli ``p`` (component, feature). With ``spec.ordered``
    (families that allow it) the locations of the first feature are a free ``mu_first`` with
    the ordered transform (and ``mu_rest`` the others) and ``mu`` is a Deterministic; pass
    increasing initial values (:func:`default_initvals`). The observed ``x`` has dims
    (obs_id, feature).

    Parameters
    ----------
    spec : ModelSpec
    X : array-like of shape (N, D) or (N,)
        Data (a DataFrame gives the feature labels).
    feature_names : sequence of str, optional
        Labels of the ``feature`` coordinate.
    priors : mapping, optional
        Prior numbers as returned by :func:`bayesmix.config.resolve_priors` (computed from
        ``X`` when omitted).
    formulation : {"custom", "mixture", "batched"}
        ``"custom"`` (the fastest, see ``benchmarks/README.md``): a ``CustomDist`` with a
        hand-written log-sum-exp for every family. The plain PyMC formulations, kept for
        comparison (Gaussian full covariance with D > 1 only): ``"mixture"``, ``pm.Mixture``
        over a list of ``pm.MvNormal.dist``; ``"batched"``, ``pm.Mixture`` over one batched
        ``pm.MvNormal.dist``.
    minibatch : int, optional
        Batch size for minibatch ADVI: ``x`` observes ``pm.Minibatch(x_data, batch_size)``
        (rows drawn at random on every evaluation) with ``total_size=N``, so its
        log-likelihood is an unbiased estimate of the full one; ``x`` then has no dims.
        Such a model is for ``pm.fit`` only (not for NUTS or MAP).
    sample_weight : array-like of shape (N,), optional
        Frequency weights of the rows: the log-likelihood is ``sum_n w_n log p(x_n)``, so
        integer weights give the model of the repeated rows. Stored as ``pm.Data``
        ``sample_weight`` (obs_id) and added as the ``Potential`` ``x_weights`` =
        ``sum_n (w_n - 1) log p(x_n)`` next to the observed ``x`` (whose pointwise
        log-likelihood stays unweighted). Not with ``minibatch``.
    missing : {"error", "model"}
        ``"model"``: NaN entries of X are missing at random and summed out: each row's
        likelihood is the density of its observed coordinates (the model of EM's
        ``missing="model"``), so ``x``'s pointwise log density is ``log p(x_n,obs)``. PyMC
        never sees a NaN (it would add ``x_unobserved`` variables): ``x_data`` holds 0.0
        there and the family's density reads the ``pm.Data`` ``x_observed`` (N, D) 0/1 mask
        (Gaussian full/tied also ``x_patterns`` (P, D) and ``x_pattern`` (N,), the distinct
        masks and each row's; :class:`bayesmix.families._base.ObservedRows`). Data without
        NaN build the complete-data graph whatever this says. Families with
        ``supports_missing`` (every family); not with ``minibatch``.
    labels : array-like of shape (N,), optional
        Partial labels, 0..K-1 where a row's component is known, -1 where not (``pm.Data``
        ``x_labels``): a labelled row contributes ``log w_k + log f_k(x_n)`` instead of the
        log-sum-exp over components (EM's ``fit(X, labels=)``). Families with
        ``graph_labels``; not with ``minibatch``.

    Returns
    -------
    pymc.Model
    """
    import pymc as pm

    check_choice(formulation, "formulation", FORMULATIONS)
    fam = get_family(spec.family)
    Xc = validate_data(spec, X, missing=missing)
    n, d = Xc.shape
    k = spec.n_components
    known = check_labels(labels, n, k)
    if known is not None and not fam.graph_labels:
        raise ParameterError(
            f"labels are not available in the graph of family={spec.family!r}: expected "
            "labels=None; fit it by EM (fit_em(..., labels=...)) or without labels"
        )
    rows = ObservedRows(Xc, known)
    if not rows.plain and (minibatch is not None or formulation != "custom"):
        raise ParameterError(
            "missing values and labels need the full data and formulation='custom': expected "
            f"minibatch=None and formulation='custom', got minibatch={minibatch!r}, "
            f"formulation={formulation!r}; drop minibatch / formulation"
        )
    cov = fam.effective_covariance(spec.covariance, d)
    if formulation not in fam.formulations(spec.covariance, d):
        raise ParameterError(
            f"formulation={formulation!r} is implemented for Gaussian full covariance with D > 1, "
            f"got family={spec.family!r}, covariance={cov!r}; use formulation='custom'"
        )
    if spec.priors.weights == "dp" and k < 2:
        raise ParameterError(
            f"a Dirichlet-process mixture is truncated at n_components: expected at least 2, "
            f"got {k}; raise [model] components (e.g. 10)"
        )
    if spec.ordered and not fam.orderable:
        raise ParameterError(
            f"ordered=True is not available for family={spec.family!r}: expected "
            "ordered=False; turn ordering off"
        )
    if minibatch is not None and (
        isinstance(minibatch, bool)
        or not isinstance(minibatch, (int, np.integer))
        or not 1 <= minibatch <= n
    ):
        raise ParameterError(
            f"minibatch must be an integer batch size in [1, {n}] (the number of rows), got "
            f"{minibatch!r}; pass e.g. minibatch={min(n, 500)} or None for the full data"
        )
    weights = check_sample_weight(sample_weight, n)
    if weights is not None and minibatch is not None:
        raise ParameterError(
            "sample_weight and minibatch cannot be combined: expected one of them, got both; "
            "fit the weighted data without minibatch"
        )
    names = feature_labels(X, feature_names, d)
    pri = dict(resolve_priors(spec, Xc, weights) if priors is None else priors)
    coords = {
        "component": np.arange(k),
        "feature": names,
        "feature_bis": names,
        "obs_id": np.arange(n),
        **fam.coords(Xc, names),
    }
    with pm.Model(coords=coords) as model:
        x_data = rows.tensor("x_data")  # NaN (missing values) replaced by 0.0
        if minibatch is None:
            obs: dict[str, Any] = {"observed": x_data, "dims": ("obs_id", "feature")}
        else:  # a random batch of rows per evaluation, its log-likelihood scaled by N / batch
            obs = {"observed": pm.Minibatch(x_data, batch_size=int(minibatch)), "total_size": n}
        prior_data = {
            name: pm.Data(f"prior_{name}", np.asarray(value, float)) for name, value in pri.items()
        }
        w = _add_weights(spec, prior_data, k)
        if rows.plain:  # the complete-data graph, as for every family
            fam.add_to_graph(spec, prior_data, d, w, obs, formulation=formulation)
        else:
            fam.add_to_graph(spec, prior_data, d, w, obs, formulation=formulation, rows=rows)
        if weights is not None:
            import pytensor.tensor as pt

            sw = pm.Data("sample_weight", weights, dims="obs_id")
            pm.Potential("x_weights", pt.sum((sw - 1.0) * pm.logp(model["x"], x_data)))
    return model


# ---------------------------------------------------------------------------------------------
# starting points


def point_to_initvals(spec: ModelSpec, point: Mapping[str, Any], n_features: int) -> dict:
    """Initial values of the free variables from a point estimate in result names.

    Parameters
    ----------
    spec : ModelSpec
    point : mapping
        ``w`` (K,) and the family's variables, e.g. Gaussian ``mu`` (K, D) and ``sigma``
        (K, D) or ``cov`` (K, D, D); Bernoulli ``p`` (K, D).
    n_features : int

    Returns
    -------
    dict
        Keyed by the free variable names of :func:`build_model` (constrained values).
    """
    w = np.clip(np.asarray(point["w"], float), 1e-6, None)
    out: dict[str, np.ndarray] = {}
    for name in weights_prior_variables(spec):
        out[name] = np.asarray(
            point[name] if point.get(name) is not None else _hyper_start(spec, name), float
        )
    w = w / w.sum()
    if spec.priors.weights == "sparse":
        out.update(_sparse_weight_start(spec, w, out.get("e0")))
    else:
        out["w"] = w
    out.update(get_family(spec.family).point_to_initvals(spec, point, n_features))
    return out


def _sparse_weight_start(spec: ModelSpec, w: np.ndarray, e0: Any) -> dict[str, np.ndarray]:
    """``w_gamma`` = 1 and ``w_exp`` > 0 with ``softmax(log w_gamma - w_exp / e0) = w``."""
    e0 = np.asarray(spec.priors.weights_alpha if e0 is None else e0, float)
    # log g_k = log w_k + c with c = -log(max w) - 0.1, so that every w_exp is >= 0.1 e0
    shift = np.log(w.max()) + 0.1 - np.log(w)
    return {
        SPARSE_WEIGHT_VARS[0]: np.ones_like(w),
        SPARSE_WEIGHT_VARS[1]: np.broadcast_to(e0 * shift, w.shape).copy(),
    }


def _hyper_start(spec: ModelSpec, name: str) -> float:
    """Start of a weights-prior scalar that a point estimate lacks: its prior mean."""
    pr = spec.priors
    shape, rate = pr.weights_alpha_prior if name == "e0" else pr.dp_alpha_prior
    return float(shape) / float(rate)


def default_initvals(spec: ModelSpec, X: np.ndarray) -> dict:
    """A valid start without a fit: equal weights and the family's data-based guess.

    Parameters
    ----------
    spec : ModelSpec
    X : ndarray of shape (N, D)

    Returns
    -------
    dict
        As :func:`point_to_initvals`.
    """
    X = np.asarray(X, float)
    k = spec.n_components
    point: dict[str, Any] = {"w": np.full(k, 1.0 / k)}
    point.update(get_family(spec.family).default_point(spec, X))
    return point_to_initvals(spec, point, X.shape[1])
