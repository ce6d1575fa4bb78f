"""PyMC graphs of finite mixtures with the component label summed out.

The observed variable ``x`` is a ``CustomDist`` whose log density is

    log p(x_n) = logsumexp_k [ log w_k + sum_d log f(x_nd | theta_kd) ]      (diag, spherical,
                                                                               Bernoulli)
    log p(x_n) = logsumexp_k [ log w_k + log MvNormal(x_n | mu_k, L_k L_k^T) ] (full)

The sum over features sits *inside* the log-sum-exp: one label per observation, shared by all
its features. (A ``pm.Mixture`` over batched univariate components would give every feature
its own label, a different model.) Because ``x`` is an observed random variable and not a
``Potential``, ``pm.compute_log_likelihood`` returns the pointwise ``log p(x_n)`` for LOO.

Cost per log-density+gradient evaluation (``benchmarks/nuts_ess.py``): the Bernoulli sum over
features is one (N, D) @ (D, K) product; for full covariances the K inverse Cholesky factors
are computed once per evaluation and all whitened residuals come from one (N, D) @ (D, K*D)
product. That beat ``pm.Mixture`` over a list of ``pm.MvNormal.dist`` (3.4x per gradient at
D=10, K=5, N=1e4) and over one batched ``pm.MvNormal.dist`` (about 8x); both plain
formulations stay available (``formulation=``) for comparison.

The data live in ``pm.Data("x_data")`` and the data-scaled prior numbers in ``pm.Data`` too
(``prior_<name>``), so a compiled model can be refitted on new data of the same shape with
``pm.set_data`` (or nutpie's ``with_data``) without recompiling.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bayesmix._validation import ParameterError, check_choice, check_X
from bayesmix.config import ModelSpec, resolve_priors

__all__ = [
    "FORMULATIONS",
    "build_model",
    "default_initvals",
    "feature_labels",
    "free_var_names",
    "point_to_initvals",
    "validate_data",
]

FORMULATIONS = ("custom", "mixture", "batched")
_LOG_2PI = float(np.log(2.0 * np.pi))


def effective_covariance(spec: ModelSpec, n_features: int) -> str | None:
    """Covariance structure actually built: ``None`` for Bernoulli, ``"diag"`` for 1-D data."""
    if spec.family == "bernoulli":
        return None
    if n_features == 1:
        return "diag"
    return spec.covariance


def validate_data(
    spec: ModelSpec, X: Any, *, n_features: int | None = None, fitting: bool = True
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

    Returns
    -------
    ndarray of shape (N, D)

    Raises
    ------
    DataError
        NaN/inf, too few points for ``spec.n_components``, non-binary data for a Bernoulli
        mixture, a constant column with full covariance, or the wrong number of features.
    """
    cov = spec.covariance if spec.family == "gaussian" else None
    Xc = check_X(
        X,
        n_components=spec.n_components if fitting else None,
        covariance_type=cov if (cov == "full" and fitting) else None,
        binary=spec.family == "bernoulli",
        ensure_2d=False,
    )
    if n_features is not None and Xc.shape[1] != n_features:
        from bayesmix._validation import DataError

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
# log densities (written batch-safe: CustomDist hands parameters in with a leading batch axis)


def _logp_diag(value, w, mu, sigma):
    import pymc as pm
    import pytensor.tensor as pt

    v = value[..., None, :]  # (N, 1, D)
    zsq = pt.sqr((v - mu) / sigma)  # (N, K, D)
    comp = pt.sum(-0.5 * zsq - pt.log(sigma) - 0.5 * _LOG_2PI, axis=-1)  # (N, K)
    return pm.math.logsumexp(pt.log(w) + comp, axis=-1)


def _core(param, core_shape):
    """Drop the size-1 batch axes that ``CustomDist`` puts in front of a parameter."""
    return param.reshape(core_shape)


def _logp_full(value, w, mu, chol):
    """Whitened residuals of every component from ONE (N, D) @ (D, K*D) matrix product.

    With ``A_k = L_k^{-1}`` (K small triangular solves against the identity),
    ``(x - mu_k)^T Sigma_k^{-1} (x - mu_k) = ||A_k x - A_k mu_k||^2`` and
    ``log|Sigma_k| = 2 sum_d log L_k[d, d]``. The ``A_k^T`` side by side form a (D, K*D)
    matrix, so all whitened residuals come from one product, and so does the gradient.
    The parameters have no batch dimension in :func:`build_model`; the size-1 batch axes
    that ``CustomDist`` adds are dropped.
    """
    import pymc as pm
    import pytensor.tensor as pt

    k, d = mu.shape[-2], mu.shape[-1]
    w = _core(w, (k,))
    mu = _core(mu, (k, d))
    chol = _core(chol, (k, d, d))
    eye = pt.broadcast_to(pt.eye(d), (k, d, d))
    inv = pt.linalg.solve_triangular(chol, eye, lower=True)  # (K, D, D): A_k = L_k^{-1}
    proj = inv.transpose(2, 0, 1).reshape((d, k * d))  # proj[j, k*D + i] = A_k[i, j]
    shift = pt.sum(inv * mu[:, None, :], axis=-1).reshape((k * d,))  # A_k mu_k, flattened
    resid = pt.dot(value, proj) - shift  # (N, K*D)
    sq = pt.sum(pt.sqr(resid).reshape((value.shape[0], k, d)), axis=-1)  # (N, K)
    logdet = pt.sum(pt.log(pt.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)  # (K,) half
    comp = -0.5 * sq - logdet - 0.5 * d * _LOG_2PI
    return pm.math.logsumexp(pt.log(w) + comp, axis=-1)


def _logp_bernoulli(value, w, p):
    """The sum over features sits inside the log-sum-exp: one label per row.

    ``sum_d [x log p + (1 - x) log(1 - p)] = x @ logit(p)^T + sum_d log(1 - p)``: one
    (N, D) @ (D, K) product (and its transpose in the gradient), then a log-sum-exp over K.
    """
    import pymc as pm
    import pytensor.tensor as pt

    k, d = p.shape[-2], p.shape[-1]
    w = _core(w, (k,))
    p = _core(p, (k, d))
    log1m = pt.log1p(-p)  # (K, D)
    comp = pt.dot(value, (pt.log(p) - log1m).T) + pt.sum(log1m, axis=-1)  # (N, K)
    return pm.math.logsumexp(pt.log(w) + comp, axis=-1)


def _pick(rng, w, size):
    """Component labels for a batch of draws; ``w`` broadcast to ``size + (K,)``."""
    w = np.broadcast_to(w, tuple(size) + w.shape[-1:])
    cdf = np.cumsum(w / w.sum(-1, keepdims=True), axis=-1)
    u = rng.random(tuple(size) + (1,))
    return np.minimum((u > cdf).sum(-1), w.shape[-1] - 1)


def _take(a, z, core_ndim):
    """``a[..., z, ...]`` per batch element: a (size, K, *core), z (size,) -> (size, *core)."""
    idx = z.reshape(z.shape + (1,) * (core_ndim + 1))
    return np.take_along_axis(a, idx, axis=z.ndim)[(slice(None),) * z.ndim + (0,)]


def _batch(size, *arrays_core):
    if size is not None and len(tuple(size)) > 0:
        return tuple(size)
    return np.broadcast_shapes(*(a.shape[: a.ndim - c] for a, c in arrays_core))


def _random_diag(w, mu, sigma, rng=None, size=None):
    size = _batch(size, (w, 1), (mu, 2), (sigma, 2))
    k, d = mu.shape[-2:]
    z = _pick(rng, w, size)
    m = _take(np.broadcast_to(mu, size + (k, d)), z, 1)
    s = _take(np.broadcast_to(sigma, size + (k, d)), z, 1)
    return m + s * rng.standard_normal(size + (d,))


def _random_full(w, mu, chol, rng=None, size=None):
    size = _batch(size, (w, 1), (mu, 2), (chol, 3))
    k, d = mu.shape[-2:]
    z = _pick(rng, w, size)
    m = _take(np.broadcast_to(mu, size + (k, d)), z, 1)
    c = _take(np.broadcast_to(chol, size + (k, d, d)), z, 2)
    return m + np.einsum("...ij,...j->...i", c, rng.standard_normal(size + (d,)))


def _random_bernoulli(w, p, rng=None, size=None):
    size = _batch(size, (w, 1), (p, 2))
    k, d = p.shape[-2:]
    z = _pick(rng, w, size)
    q = _take(np.broadcast_to(p, size + (k, d)), z, 1)
    return (rng.random(size + (d,)) < q).astype(np.int64)


# ---------------------------------------------------------------------------------------------
# the builder


def free_var_names(spec: ModelSpec, n_features: int) -> list[str]:
    """Names of the free random variables of :func:`build_model` (in model order)."""
    cov = effective_covariance(spec, n_features)
    names = ["w"]
    if spec.family == "bernoulli":
        return names + ["p"]
    if spec.ordered:
        names += ["mu_first"] + (["mu_rest"] if n_features > 1 else [])
    else:
        names += ["mu"]
    names += ["sigma_spherical"] if cov == "spherical" else ["sigma"]
    if cov == "full":
        names += ["corr_chol"]
    return names


def build_model(
    spec: ModelSpec,
    X: Any,
    *,
    feature_names: Sequence[str] | None = None,
    priors: Mapping[str, Any] | None = None,
    formulation: str = "custom",
    minibatch: int | None = None,
):
    """Build the PyMC model of a finite mixture with the labels summed out.

    Variables (see ``docs/architecture.md``): ``w`` (component); Gaussian ``mu`` and
    ``sigma`` (component, feature), full covariance adds the Deterministics ``corr`` and
    ``cov`` (component, feature, feature_bis) built from ``sigma`` and an LKJ Cholesky factor
    ``corr_chol`` (``sigma`` ~ HalfNormal on each standard deviation, ``corr`` ~ LKJ(eta));
    spherical has a free ``sigma_spherical`` (component) and ``sigma`` is its Deterministic
    repetition across features; Bernoulli ``p`` (component, feature). With
    ``spec.ordered`` the means of the first feature are a free ``mu_first`` with the ordered
    transform (and ``mu_rest`` the others) and ``mu`` is a Deterministic; pass increasing
    initial values (:func:`default_initvals`). The observed ``x`` has dims (obs_id, feature).

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
        hand-written log-sum-exp for every family; for full covariances all components'
        whitened residuals come from one matrix product. The plain PyMC formulations, kept
        for comparison (Gaussian full covariance with D > 1 only): ``"mixture"``,
        ``pm.Mixture`` over a list of ``pm.MvNormal.dist``; ``"batched"``, ``pm.Mixture``
        over one batched ``pm.MvNormal.dist``.

    minibatch : int, optional
        Batch size for minibatch ADVI: ``x`` observes ``pm.Minibatch(x_data, batch_size)``
        (rows drawn at random on every evaluation) with ``total_size=N``, so its
        log-likelihood is an unbiased estimate of the full one; ``x`` then has no dims.
        Such a model is for ``pm.fit`` only (not for NUTS or MAP).

    Returns
    -------
    pymc.Model
    """
    import pymc as pm
    import pytensor.tensor as pt

    check_choice(formulation, "formulation", FORMULATIONS)
    Xc = validate_data(spec, X)
    n, d = Xc.shape
    k = spec.n_components
    cov = effective_covariance(spec, d)
    if formulation != "custom" and cov != "full":
        raise ParameterError(
            f"formulation={formulation!r} is implemented for Gaussian full covariance with D > 1, "
            f"got family={spec.family!r}, covariance={cov!r}; use formulation='custom'"
        )
    if spec.ordered and spec.family != "gaussian":
        raise ParameterError(
            "ordered=True needs family='gaussian': expected ordered=False for "
            f"family={spec.family!r}; turn ordering off"
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
    labels = feature_labels(X, feature_names, d)
    pri = dict(resolve_priors(spec, Xc) if priors is None else priors)
    coords = {
        "component": np.arange(k),
        "feature": labels,
        "feature_bis": labels,
        "obs_id": np.arange(n),
    }
    with pm.Model(coords=coords) as model:
        x_data = pm.Data("x_data", Xc, dims=("obs_id", "feature"))
        if minibatch is None:
            obs: dict[str, Any] = {"observed": x_data, "dims": ("obs_id", "feature")}
        else:  # a random batch of rows per evaluation, its log-likelihood scaled by N / batch
            obs = {"observed": pm.Minibatch(x_data, batch_size=int(minibatch)), "total_size": n}
        alpha = pm.Data("prior_weights_alpha", np.asarray(pri["weights_alpha"], float))
        w = pm.Dirichlet("w", a=alpha, dims="component")
        if spec.family == "bernoulli":
            a = pm.Data("prior_beta_a", np.asarray(pri["beta_a"], float))
            b = pm.Data("prior_beta_b", np.asarray(pri["beta_b"], float))
            p = pm.Beta("p", alpha=a, beta=b, dims=("component", "feature"))
            pm.CustomDist(
                "x",
                w,
                p,
                logp=_logp_bernoulli,
                random=_random_bernoulli,
                signature="(k),(k,d)->(d)",
                **obs,
            )
            return model

        mu_loc = pm.Data("prior_mu_loc", np.asarray(pri["mu_loc"], float))
        mu_scale = pm.Data("prior_mu_scale", np.asarray(pri["mu_scale"], float))
        sigma_scale = pm.Data("prior_sigma_scale", np.asarray(pri["sigma_scale"], float))
        if spec.ordered:
            first = pm.Normal(
                "mu_first",
                mu=mu_loc[0],
                sigma=mu_scale[0],
                dims="component",
                transform=pm.distributions.transforms.ordered,
            )
            if d > 1:
                rest = pm.Normal(
                    "mu_rest",
                    mu=mu_loc[1:],
                    sigma=mu_scale[1:],
                    shape=(k, d - 1),
                )
                mu_val = pt.concatenate([first[:, None], rest], axis=1)
            else:
                mu_val = first[:, None]
            mu = pm.Deterministic("mu", mu_val, dims=("component", "feature"))
        else:
            mu = pm.Normal("mu", mu=mu_loc, sigma=mu_scale, dims=("component", "feature"))

        if cov == "spherical":
            s = pm.HalfNormal("sigma_spherical", sigma=sigma_scale, dims="component")
            sigma = pm.Deterministic(
                "sigma", pt.repeat(s[:, None], d, axis=1), dims=("component", "feature")
            )
        else:
            sigma = pm.HalfNormal("sigma", sigma=sigma_scale, dims=("component", "feature"))

        if cov == "full":
            eta = pm.Data("prior_lkj_eta", np.asarray(pri["lkj_eta"], float))
            corr_chol = pm.LKJCorr("corr_chol", n=d, eta=eta, size=k)  # (K, D, D), lower
            chol = sigma[:, :, None] * corr_chol  # Cholesky factor of each covariance
            pm.Deterministic(
                "corr", corr_chol @ corr_chol.mT, dims=("component", "feature", "feature_bis")
            )
            pm.Deterministic("cov", chol @ chol.mT, dims=("component", "feature", "feature_bis"))
            if formulation in ("mixture", "batched"):
                comps = (
                    [pm.MvNormal.dist(mu=mu[j], chol=chol[j]) for j in range(k)]
                    if formulation == "mixture"
                    else pm.MvNormal.dist(mu=mu, chol=chol)  # mixture axis: last batch axis
                )
                pm.Mixture("x", w=w, comp_dists=comps, **obs)
            else:
                pm.CustomDist(
                    "x",
                    w,
                    mu,
                    chol,
                    logp=_logp_full,
                    random=_random_full,
                    signature="(k),(k,d),(k,d,d)->(d)",
                    **obs,
                )
        else:
            pm.CustomDist(
                "x",
                w,
                mu,
                sigma,
                logp=_logp_diag,
                random=_random_diag,
                signature="(k),(k,d),(k,d)->(d)",
                **obs,
            )
    return model


# ---------------------------------------------------------------------------------------------
# starting points


def point_to_initvals(spec: ModelSpec, point: Mapping[str, Any], n_features: int) -> dict:
    """Initial values of the free variables from a point estimate in result names.

    Parameters
    ----------
    spec : ModelSpec
    point : mapping
        ``w`` (K,), Gaussian ``mu`` (K, D) and ``sigma`` (K, D) or ``cov`` (K, D, D);
        Bernoulli ``p`` (K, D).
    n_features : int

    Returns
    -------
    dict
        Keyed by the free variable names of :func:`build_model` (constrained values).
    """
    cov = effective_covariance(spec, n_features)
    k = spec.n_components
    w = np.clip(np.asarray(point["w"], float), 1e-6, None)
    out: dict[str, np.ndarray] = {"w": w / w.sum()}
    if spec.family == "bernoulli":
        out["p"] = np.clip(np.asarray(point["p"], float), 1e-6, 1 - 1e-6)
        return out
    mu = np.asarray(point["mu"], float).reshape(k, n_features)
    if spec.ordered:
        first = mu[:, 0].copy()
        # the ordered transform needs strictly increasing values
        for j in range(1, k):
            first[j] = max(first[j], first[j - 1] + 1e-6 * (1 + abs(first[j - 1])))
        out["mu_first"] = first
        if n_features > 1:
            out["mu_rest"] = mu[:, 1:]
    else:
        out["mu"] = mu
    if "cov" in point and point["cov"] is not None and cov == "full":
        c = np.asarray(point["cov"], float)
        sd = np.sqrt(np.diagonal(c, axis1=-2, axis2=-1))
        corr = c / (sd[:, :, None] * sd[:, None, :])
        out["sigma"] = sd
        out["corr_chol"] = np.linalg.cholesky(corr)
        return out
    if "cov" in point and point["cov"] is not None:
        sd = np.sqrt(np.diagonal(np.asarray(point["cov"], float), axis1=-2, axis2=-1))
    else:
        sd = np.asarray(point["sigma"], float).reshape(k, n_features)
    if cov == "spherical":
        out["sigma_spherical"] = np.sqrt(np.mean(sd**2, axis=1))
    else:
        out["sigma"] = sd
    if cov == "full":
        out["corr_chol"] = np.broadcast_to(np.eye(n_features), (k, n_features, n_features)).copy()
    return out


def default_initvals(spec: ModelSpec, X: np.ndarray) -> dict:
    """A valid start without a fit: means spread along the data quantiles of feature 0.

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
    n, d = X.shape
    k = spec.n_components
    order = np.argsort(X[:, 0], kind="stable")
    chunks = np.array_split(order, k)
    mu = np.stack([X[c].mean(axis=0) if len(c) else X.mean(axis=0) for c in chunks])
    point: dict[str, Any] = {"w": np.full(k, 1.0 / k)}
    if spec.family == "bernoulli":
        point["p"] = np.clip(mu, 0.05, 0.95)
    else:
        sd = X.std(axis=0) if n > 1 else np.ones(d)
        point["mu"] = mu
        point["sigma"] = np.broadcast_to(np.where(sd > 0, sd, 1.0) / k, (k, d))
    return point_to_initvals(spec, point, d)
