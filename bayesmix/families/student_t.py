"""Student-t components: multivariate t with full or diagonal scale matrices.

Result variables: ``mu`` and ``sigma`` (component, feature), the location and the scale
standard deviations (square roots of the diagonal of the scale matrix ``Sigma_k``, which is
not the covariance: that is ``nu / (nu - 2) Sigma_k`` for ``nu > 2``); full scale matrices add
``cov`` (the scale matrix ``Sigma_k``) and ``corr`` (component, feature, feature_bis); ``nu``
(component) the degrees of freedom. 1-D data are built as ``diag``.

Component density (McLachlan & Peel 2000, eq. 7.1), with ``delta = (x - mu)^T Sigma^{-1}
(x - mu)`` the squared Mahalanobis distance and D the number of features::

    log t(x | mu, Sigma, nu) = lgamma((nu + D) / 2) - lgamma(nu / 2) - D/2 log(nu pi)
                               - 1/2 log|Sigma| - (nu + D)/2 log(1 + delta / nu)

A ``diag`` component is a multivariate t with a diagonal scale matrix (one latent scale ``u``
per observation shared by the features), not a product of independent univariate t's. As a
scale mixture: ``x = mu + L eps / sqrt(u)`` with ``L L^T = Sigma``, ``eps ~ N(0, I)`` and
``u ~ Gamma(nu / 2, rate nu / 2)``; :meth:`StudentTFamily.draw` samples it that way.

NaN entries (missing at random) in the NumPy densities: a row's density is the marginal of
its observed coordinates o, a t with the same ``nu``, location ``mu_o``, scale ``Sigma_oo``
and dimension ``p_o`` (:func:`observed_mahalanobis`, :func:`observed_t_log_density`).

Priors (``k`` a component, ``d`` a feature; ``s_d`` and ``m_d`` the sample standard deviation
and mean of feature ``d``, with frequency weights)::

    mu[k, d]     ~ Normal(mu_loc[d], mu_scale[d])       default mu_loc = m_d, mu_scale = 2 s_d
    sigma[k, d]  ~ HalfNormal(sigma_scale[d])           default s_d
    corr[k]      ~ LKJ(lkj_eta)                         full, D > 1 (default 2)
    nu[k]        ~ Gamma(dof_shape, dof_rate)           default 2 and 0.1 (Juarez & Steel 2010)

the Gaussian family's fields and data scaling, plus ``dof_shape`` / ``dof_rate`` (scalars, >
0). ``nu`` is not offset: the Gamma(2, 0.1) prior has mean 20 and mode 10 and puts 0.5 % of
its mass below ``nu = 1`` (Cauchy-like tails and heavier: a valid density, no moments).

The graph's observed ``x`` is a ``CustomDist`` with the labels summed out, the t log density
written in PyTensor with whitened residuals from the Cholesky factor of each scale matrix (as
the Gaussian family's full kernel). With missing values (``missing="model"``) each row's t is
the marginal of its observed block (the mask enters ``delta_o``, ``log|Sigma_oo|`` and
``p_o``; full: one inverse per missingness pattern and component, as the Gaussian); partial
labels end in :func:`~bayesmix.families._base.mixture_logp_graph`.
:meth:`StudentTFamily.conditional_fill` fills missing entries from the conditional t.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any, override

import numpy as np
from scipy.special import gammaln

from bayesmix._validation import DataError, SpecError, check_X
from bayesmix.families._base import (
    BLOCK_ELEMENTS,
    Family,
    chunk_means,
    data_moments,
    fill_conditional_blocks,
    fill_missing,
    mixture_logp_graph,
    normal_locations,
    observed_block_quadratic,
    per_feature,
    stack_draws,
    take_components,
)

__all__ = [
    "DOF_BOUNDS",
    "StudentTFamily",
    "lkj_chol_logp",
    "t_log_density",
    "t_log_density_from_maha",
]

#: Range of the degrees of freedom that EM searches (the root of the nu equation is clipped).
DOF_BOUNDS = (1e-2, 1e3)
_LOG_PI = float(np.log(np.pi))


# ---------------------------------------------------------------------------------------------
# NumPy densities


def t_log_density_from_maha(
    maha: np.ndarray, half_log_det: np.ndarray, nu: np.ndarray, d: int
) -> np.ndarray:
    """Multivariate t log density from squared Mahalanobis distances.

    ``maha`` (..., N, K), ``half_log_det`` (..., K) (``1/2 log|Sigma_k|``), ``nu`` (..., K);
    returns (..., N, K).
    """
    nu = np.asarray(nu, dtype=float)[..., None, :]
    const = gammaln(0.5 * (nu + d)) - gammaln(0.5 * nu) - 0.5 * d * (np.log(nu) + _LOG_PI)
    return const - np.asarray(half_log_det)[..., None, :] - 0.5 * (nu + d) * np.log1p(maha / nu)


def mahalanobis(X: np.ndarray, mu: np.ndarray, scale: np.ndarray, diag: bool):
    """Squared Mahalanobis distances (..., N, K) and ``1/2 log|Sigma_k|`` (..., K).

    ``mu`` (..., K, D); ``scale``: the standard deviations (..., K, D) when ``diag``, else the
    lower Cholesky factors (..., K, D, D) of the scale matrices. Differences are formed
    explicitly so that data far from 0 keep their precision.
    """
    diff = X[..., None, :, :] - mu[..., :, None, :]  # (..., K, N, D)
    if diag:
        y = diff / scale[..., :, None, :]
        half_log_det = np.sum(np.log(scale), axis=-1)
    else:
        inv = np.linalg.inv(scale)  # (..., K, D, D) lower triangular L^{-1}
        y = diff @ np.swapaxes(inv, -1, -2)
        half_log_det = np.sum(np.log(np.diagonal(scale, axis1=-2, axis2=-1)), axis=-1)
    maha = np.swapaxes(np.einsum("...knd,...knd->...kn", y, y), -1, -2)
    return maha, half_log_det


def t_log_density(
    X: np.ndarray, mu: np.ndarray, scale: np.ndarray, nu: np.ndarray, diag: bool
) -> np.ndarray:
    """``log t(x_n | mu_k, Sigma_k, nu_k)`` of shape (..., N, K).

    ``X`` (N, D); ``mu`` (..., K, D); ``scale`` as in :func:`mahalanobis`; ``nu`` (..., K).
    """
    X = np.asarray(X, dtype=float)
    maha, half_log_det = mahalanobis(X, np.asarray(mu, float), np.asarray(scale, float), diag)
    return t_log_density_from_maha(maha, half_log_det, nu, X.shape[1])


def observed_mahalanobis(X: np.ndarray, mu: np.ndarray, scale: np.ndarray, diag: bool):
    """:func:`mahalanobis` of each row's observed coordinates o (NaN = missing).

    The marginal of a multivariate t over o is a t with the same ``nu``, location ``mu_o``,
    scale ``Sigma_oo`` and dimension ``p_o`` (McLachlan & Peel 2000, section 7.2). Rows are
    grouped by their pattern of observed features (one Cholesky factor of ``Sigma_oo`` per
    pattern and component).

    ``X`` (N, D); ``mu`` (..., K, D); ``scale``: the standard deviations (..., K, D) when
    ``diag``, else the scale matrices (..., K, D, D) themselves (a block of a Cholesky factor
    is not the factor of the block). Returns the squared distances ``delta_o`` (..., N, K),
    ``1/2 log|Sigma_k,oo|`` of each row (..., N, K) and ``p_o`` (N,); a row with nothing
    observed has 0, 0, 0 (density 1).
    """
    observed = ~np.isnan(X)
    patterns, inverse = np.unique(observed, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    shape = mu.shape[:-2] + (X.shape[0], mu.shape[-2])
    maha = np.zeros(shape)
    half_log_det = np.zeros(shape)
    for p, pattern in enumerate(patterns):
        rows, o = np.flatnonzero(inverse == p), np.flatnonzero(pattern)
        if not o.size:
            continue
        sub = scale[..., o] if diag else np.linalg.cholesky(scale[..., o[:, None], o])
        m, h = mahalanobis(X[np.ix_(rows, o)], mu[..., o], sub, diag)
        maha[..., rows, :] = m
        half_log_det[..., rows, :] = h[..., None, :]
    return maha, half_log_det, observed.sum(axis=1).astype(np.float64)


def observed_t_log_density(
    maha: np.ndarray, half_log_det: np.ndarray, nu: np.ndarray, p: np.ndarray
) -> np.ndarray:
    """:func:`t_log_density_from_maha` with a dimension ``p_o`` and log-determinant per row.

    ``maha`` and ``half_log_det`` (..., N, K) and ``p`` (N,) as from
    :func:`observed_mahalanobis`; ``nu`` (..., K). Returns (..., N, K).
    """
    nu = np.asarray(nu, dtype=float)[..., None, :]
    p = np.asarray(p, dtype=float)[:, None]
    const = gammaln(0.5 * (nu + p)) - gammaln(0.5 * nu) - 0.5 * p * (np.log(nu) + _LOG_PI)
    return const - half_log_det - 0.5 * (nu + p) * np.log1p(maha / nu)


def lkj_chol_logp(chol: np.ndarray, eta: float) -> np.ndarray:
    """PyMC's ``LKJCorr`` log density of Cholesky factors of correlation matrices.

    ``chol`` (..., D, D) lower triangular with unit rows; returns (...). The density of the
    factor (the Cholesky-to-correlation Jacobian included, as ``pm.LKJCorr`` evaluates it):
    ``log C(eta, D) + sum_i (2 eta - 2 + D - i) log L_ii`` for ``i = 1..D``.
    """
    chol = np.asarray(chol, dtype=float)
    d = chol.shape[-1]
    k = np.arange(1, d)
    log_c = (d - 1) * gammaln(eta + 0.5 * (d - 1)) - np.sum(
        0.5 * k * _LOG_PI + gammaln(eta + 0.5 * (d - 1 - k))
    )
    exponents = 2.0 * eta - 2.0 + d - np.arange(1, d + 1)
    log_diag = np.log(np.diagonal(chol, axis1=-2, axis2=-1))
    return log_c + np.sum(exponents * log_diag, axis=-1)


# ---------------------------------------------------------------------------------------------
# PyTensor log densities (batch-safe: CustomDist hands parameters in with size-1 batch axes)


def _t_terms(sq, half_logdet, nu, d):
    import pytensor.tensor as pt

    const = pt.gammaln(0.5 * (nu + d)) - pt.gammaln(0.5 * nu) - 0.5 * d * (pt.log(nu) + _LOG_PI)
    return const - half_logdet - 0.5 * (nu + d) * pt.log1p(sq / nu)  # (N, K)


def _logp_diag(value, w, mu, sigma, nu):
    import pymc as pm
    import pytensor.tensor as pt

    k, d = mu.shape[-2], mu.shape[-1]
    w = w.reshape((k,))
    mu = mu.reshape((k, d))
    sigma = sigma.reshape((k, d))
    nu = nu.reshape((k,))
    sq = pt.sum(pt.sqr((value[:, None, :] - mu) / sigma), axis=-1)  # (N, K)
    comp = _t_terms(sq, pt.sum(pt.log(sigma), axis=-1), nu, pt.cast(d, "float64"))
    return pm.math.logsumexp(pt.log(w) + comp, axis=-1)


def _logp_full(value, w, mu, chol, nu):
    """Whitened residuals of every component from one (N, D) @ (D, K*D) product."""
    import pymc as pm
    import pytensor.tensor as pt

    k, d = mu.shape[-2], mu.shape[-1]
    w = w.reshape((k,))
    mu = mu.reshape((k, d))
    chol = chol.reshape((k, d, d))
    nu = nu.reshape((k,))
    comp = _full_components(value, mu, chol, nu, k, d)
    return pm.math.logsumexp(pt.log(w) + comp, axis=-1)


def _full_components(value, mu, chol, nu, k, d):
    """The (N, K) component log densities of :func:`_logp_full` (mu (K, D), chol (K, D, D))."""
    import pytensor.tensor as pt

    eye = pt.broadcast_to(pt.eye(d), (k, d, d))
    inv = pt.linalg.solve_triangular(chol, eye, lower=True)  # (K, D, D): L_k^{-1}
    proj = inv.transpose(2, 0, 1).reshape((d, k * d))
    shift = pt.sum(inv * mu[:, None, :], axis=-1).reshape((k * d,))
    resid = pt.dot(value, proj) - shift  # (N, K*D)
    sq = pt.sum(pt.sqr(resid).reshape((value.shape[0], k, d)), axis=-1)  # (N, K)
    half_logdet = pt.sum(pt.log(pt.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)
    return _t_terms(sq, half_logdet, nu, pt.cast(d, "float64"))


def _logp_diag_rows(value, w, mu, sigma, nu, mask=None, labels=None):
    """:func:`_logp_diag` with missing entries (``mask`` (N, D), 1 where observed) and labels.

    A diagonal scale matrix does not make the coordinates of a t independent (one latent
    scale per row), so the mask enters the Mahalanobis distance, the log-determinant and
    the dimension of each row's t (``delta_o``, ``1/2 log|Sigma_oo|``, ``p_o``), not a sum
    of per-feature terms; ``value`` holds a finite placeholder where missing.
    """
    import pytensor.tensor as pt

    k, d = mu.shape[-2], mu.shape[-1]
    w, mu, sigma = w.reshape((k,)), mu.reshape((k, d)), sigma.reshape((k, d))
    nu = nu.reshape((k,))
    zsq = pt.sqr((value[:, None, :] - mu) / sigma)  # (N, K, D)
    if mask is None:  # complete data with labels
        sq, half_logdet = pt.sum(zsq, axis=-1), pt.sum(pt.log(sigma), axis=-1)
        p_o = pt.cast(d, "float64")
    else:
        sq = pt.sum(zsq * mask[:, None, :], axis=-1)  # delta_o (N, K)
        half_logdet = pt.dot(mask, pt.log(sigma).T)  # 1/2 log|Sigma_k,oo| (N, K)
        p_o = pt.sum(mask, axis=-1)[:, None]  # (N, 1)
    return mixture_logp_graph(w, _t_terms(sq, half_logdet, nu, p_o), labels)


def _logp_full_labels(value, w, mu, chol, nu, labels=None):
    """:func:`_logp_full` of complete data with partial labels (the same products)."""
    k, d = mu.shape[-2], mu.shape[-1]
    w, mu, chol = w.reshape((k,)), mu.reshape((k, d)), chol.reshape((k, d, d))
    nu = nu.reshape((k,))
    return mixture_logp_graph(w, _full_components(value, mu, chol, nu, k, d), labels)


def _logp_full_missing(value, w, mu, cov, nu, mask=None, patterns=None, labels=None):
    """Full scale matrices with missing entries (and labels): each row's observed block.

    As the Gaussian family's ``_logp_full_missing``: for a missingness pattern ``m`` (1 where
    observed) and component k, ``Sigma'_pk = M Sigma_k M + I - M`` (``M = diag(m)``) is
    ``Sigma_k,oo`` on the observed block and the identity on the missing one, so with the
    residual ``m * (x - mu_k)`` (0 on the missing block) its quadratic form is ``delta_o``
    and its log-determinant ``log|Sigma_k,oo|``; the row's t has dimension ``p_o = |m|``.
    One inverse and log-determinant per (pattern, component), gathered per row
    (``patterns``: the (P, D) distinct masks and each row's (N,) pattern, ``pm.Data``).
    ``cov`` (K, D, D) is the scale matrix itself (a block of a Cholesky factor is not the
    factor of the block).
    """
    k, d = mu.shape[-2], mu.shape[-1]
    w, mu, cov = w.reshape((k,)), mu.reshape((k, d)), cov.reshape((k, d, d))
    nu = nu.reshape((k,))
    quad, half_logdet, p_o = observed_block_quadratic(value, mask, mu, cov, patterns)
    comp = _t_terms(quad, half_logdet, nu, p_o[:, None])
    return mixture_logp_graph(w, comp, labels)


def _random_diag(w, mu, sigma, nu, rng=None, size=None):
    from bayesmix.families import graph_draw

    params = {"w": w, "mu": mu, "sigma": sigma, "nu": nu}
    core = {"w": 1, "mu": 2, "sigma": 2, "nu": 1}
    return graph_draw(StudentTFamily(), params, core, rng, size)


def _random_full(w, mu, chol, nu, rng=None, size=None):
    from bayesmix.families import graph_draw

    params = {"w": w, "mu": mu, "chol": chol, "nu": nu}
    core = {"w": 1, "mu": 2, "chol": 3, "nu": 1}
    return graph_draw(StudentTFamily(), params, core, rng, size)


def _random_full_cov(w, mu, cov, nu, rng=None, size=None):
    from bayesmix.families import graph_draw

    params = {"w": w, "mu": mu, "cov": cov, "nu": nu}
    core = {"w": 1, "mu": 2, "cov": 3, "nu": 1}
    return graph_draw(StudentTFamily(), params, core, rng, size)


def _positive_scalar(value, where: str) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    if arr.ndim != 0 or not np.isfinite(arr) or arr <= 0:
        raise SpecError(
            f"[priors] {where}: expected one positive number, got {np.asarray(value).tolist()}; "
            "give a number > 0",
            name="spec",
        )
    return arr


def _dof_fixed(spec: Any) -> bool:
    priors = getattr(spec, "priors", None)
    return getattr(priors, "dof", None) is not None


def _fixed_dof(dof: Any, k: int) -> np.ndarray:
    """``[priors] dof`` (one positive number for every component) as (K,)."""
    value = np.asarray(dof, dtype=float)
    if value.ndim != 0 or not np.isfinite(value) or value <= 0:
        raise SpecError(
            f"[priors] dof: expected one positive number (the degrees of freedom of every "
            f"component), got {np.asarray(dof).tolist()}; fix the spec"
        )
    return np.full(k, float(value))


class StudentTFamily(Family):
    """Multivariate Student-t components (full or diagonal scale matrices)."""

    name = "student_t"
    title = "Student-t"
    em_class = "StudentTMixtureEM"
    covariances = ("full", "diag")
    select_init = "kmeans"
    orderable = True
    prior_fields = (
        "mu_loc",
        "mu_scale",
        "sigma_scale",
        "lkj_eta",
        "dof_shape",
        "dof_rate",
        "dof",
    )
    # ``cov`` is the scale matrix (the covariance is nu / (nu - 2) times it): not an sd contour
    ellipse_unit = "scale x{n}"
    plots = ("clusters", "membership_uncertainty")
    trace_variables = ("w", "mu", "sigma", "nu")
    supports_missing = True
    graph_labels = True

    @override
    def effective_covariance(self, covariance, n_features):
        return "diag" if n_features == 1 else covariance

    @override
    def variables(self, covariance, n_features):
        out = {"mu": ("component", "feature"), "sigma": ("component", "feature")}
        if self.effective_covariance(covariance, n_features) == "full":
            out["cov"] = ("component", "feature", "feature_bis")
            out["corr"] = ("component", "feature", "feature_bis")
        out["nu"] = ("component",)
        return out

    @override
    def check_data(
        self, X, *, n_components=None, covariance=None, fitting=True, name="X", allow_nan=False
    ):
        return check_X(
            X,
            name=name,
            n_components=n_components if fitting else None,
            covariance_type="full" if (covariance == "full" and fitting) else None,
            ensure_2d=False,
            allow_nan=allow_nan,
        )

    @override
    def resolve_priors(self, priors, X, n_components, covariance, sample_weight=None):
        X = np.asarray(X, dtype=float)
        mean, sd, _ = data_moments(X, sample_weight)
        out = {
            "mu_loc": per_feature(getattr(priors, "mu_loc", None), mean, "mu_loc"),
            "mu_scale": per_feature(getattr(priors, "mu_scale", None), 2.0 * sd, "mu_scale"),
            "sigma_scale": per_feature(getattr(priors, "sigma_scale", None), sd, "sigma_scale"),
        }
        if self.effective_covariance(covariance, X.shape[1]) == "full":
            out["lkj_eta"] = _positive_scalar(getattr(priors, "lkj_eta", 2.0), "lkj_eta")
        dof = getattr(priors, "dof", None)
        if dof is not None:  # fixed degrees of freedom: constants of the graph, not a prior
            out["dof"] = _fixed_dof(dof, n_components)
        else:
            out["dof_shape"] = _positive_scalar(getattr(priors, "dof_shape", 2.0), "dof_shape")
            out["dof_rate"] = _positive_scalar(getattr(priors, "dof_rate", 0.1), "dof_rate")
        return out

    # ------------------------------------------------------------------ NumPy
    @override
    def component_log_density(self, X, params: Mapping[str, Any]) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        if X.ndim != 2:
            raise DataError(
                f"X has the wrong shape: expected 2-D (n_samples, n_features), got ndim="
                f"{X.ndim}; reshape it"
            )
        lead = np.asarray(params["w"]).shape[:-1]
        n, d = X.shape
        k = np.asarray(params["w"]).shape[-1]
        full = params.get("cov") is not None
        missing = bool(np.isnan(X).any())  # NaN = missing: the t marginal of the observed block
        if full:
            mu, cov, nu = stack_draws(
                params, ("mu", "cov", "nu"), lead, {"mu": 2, "cov": 3, "nu": 1}
            )
            scale = cov if missing else np.linalg.cholesky(cov)
        else:
            core = {"mu": 2, "sigma": 2, "nu": 1}
            mu, scale, nu = stack_draws(params, ("mu", "sigma", "nu"), lead, core)
        n_draws = mu.shape[0]
        out = np.empty((n_draws, n, k))
        step = max(1, BLOCK_ELEMENTS // max(n * k * d, 1))
        for start in range(0, n_draws, step):
            s = slice(start, min(start + step, n_draws))
            if missing:
                maha, half_log_det, p = observed_mahalanobis(X, mu[s], scale[s], not full)
                out[s] = observed_t_log_density(maha, half_log_det, nu[s], p)
            else:
                out[s] = t_log_density(X, mu[s], scale[s], nu[s], diag=not full)
        return out.reshape(lead + (n, k))

    @override
    def draw(self, params, z, rng):
        rows = np.arange(z.shape[0])[:, None]
        mu = np.asarray(params["mu"], float)[rows, z]  # (S, n, D)
        nu = np.asarray(params["nu"], float)[rows, z]  # (S, n)
        eps = rng.standard_normal(mu.shape)
        u = rng.gamma(0.5 * nu, 2.0 / nu)  # Gamma(nu/2, rate nu/2)
        if params.get("chol") is not None:
            eps = np.einsum("snij,snj->sni", np.asarray(params["chol"], float)[rows, z], eps)
        elif params.get("cov") is not None:
            chol = np.linalg.cholesky(np.asarray(params["cov"], float))
            eps = np.einsum("snij,snj->sni", chol[rows, z], eps)
        else:
            eps = np.asarray(params["sigma"], float)[rows, z] * eps
        return mu + eps / np.sqrt(u)[..., None]

    @override
    def conditional_fill(self, params, X, z, rng=None):
        """The missing block's conditional t given the observed block o and the component.

        Given ``z = k`` the missing coordinates m of a row are a t (Ding 2016, "On the
        conditional distribution of the multivariate t distribution") with ``nu_k + p_o``
        degrees of freedom, location ``mu_km + S_mo S_oo^-1 (x_o - mu_ko)`` and scale
        ``(nu_k + delta_o) / (nu_k + p_o) (S_mm - S_mo S_oo^-1 S_om)`` (``S`` = ``cov[k]``, the
        scale matrix; ``delta_o`` the squared Mahalanobis distance of ``x_o``; ``p_o`` its
        number of coordinates). ``rng`` None: the location, which is ``E[x_m | x_o, z]`` (a
        t with ``nu_k + p_o > 1`` degrees of freedom has a mean); with ``rng``: ``x_m = loc +
        sqrt(scale) eps / sqrt(u)``, ``u ~ Gamma((nu_k + p_o)/2, rate (nu_k + p_o)/2)``.
        Diagonal scales: location ``mu_km``, but the spread of a draw still grows with
        ``delta_o`` (one latent scale per row: the coordinates are not independent).
        """
        X = np.asarray(X, dtype=float)
        mu = take_components(params["mu"], z)  # (S, n, D)
        observed = ~np.isnan(X)
        if params.get("cov") is None:  # diagonal scales: S_mo = 0
            if rng is None:
                return fill_missing(X, mu)
            sigma = take_components(params["sigma"], z)  # (S, n, D)
            nu = take_components(params["nu"], z)  # (S, n)
            zsq = np.where(observed, (np.where(observed, X, 0.0) - mu) / sigma, 0.0) ** 2
            dof = nu + observed.sum(axis=1)
            u = rng.gamma(0.5 * dof, 2.0 / dof)
            spread = np.sqrt((nu + zsq.sum(axis=-1)) / dof / u)[..., None] * sigma
            return fill_missing(X, mu + spread * rng.standard_normal(mu.shape))
        cov = np.asarray(params["cov"], float)  # (S, K, D, D)
        nu_k = np.asarray(params["nu"], float)  # (S, K)

        def scale(k, o, resid, s_oo):
            """sqrt((nu + delta_o) / (nu + p_o) / u), u ~ Gamma(dof / 2, 2 / dof) per row."""
            white = np.linalg.solve(s_oo, np.swapaxes(resid, -1, -2))  # (S, |o|, n_p)
            delta = np.einsum("sno,son->sn", resid, white)  # (S, n_p)
            nu = nu_k[:, k, None]
            dof = nu + o.size
            u = rng.gamma(0.5 * dof, 2.0 / dof, size=delta.shape)
            return np.sqrt((nu + delta) / dof / u)

        mu_k = np.asarray(params["mu"], float)
        return fill_conditional_blocks(X, z, mu_k, cov, rng, scale if rng is not None else None)

    @override
    def n_parameters(self, n_components, n_features, covariance):
        k, d = n_components, n_features
        cov = self.effective_covariance(covariance, d)
        n_scale = k * d * (d + 1) // 2 if cov == "full" else k * d
        return int(n_scale + k * d + k + k - 1)  # scales, locations, dofs, weights

    @override
    def label_features(self, params):
        mu = np.asarray(params["mu"], float)
        log_s = np.log(np.clip(np.asarray(params["sigma"], float), 1e-12, None))
        return np.concatenate([mu, log_s], axis=-1)

    @override
    def marginal(self, params, j):
        # the marginal of one feature of a multivariate t is a univariate t with the same nu
        return {
            "w": np.asarray(params["w"], float),
            "mu": np.asarray(params["mu"], float)[..., j : j + 1],
            "sigma": np.asarray(params["sigma"], float)[..., j : j + 1],
            "nu": np.asarray(params["nu"], float),
        }

    @override
    def order_key(self, point):
        return np.asarray(point["mu"], float)[:, 0]

    # ------------------------------------------------------------------ EM
    @override
    def em_kwargs(self, spec, priors, n_features):
        cov = self.effective_covariance(spec.covariance, n_features)
        out: dict[str, Any] = {"covariance_type": cov}
        if _dof_fixed(spec):
            out["dof"] = _fixed_dof(spec.priors.dof, spec.n_components)
        if priors is not None:
            keys = ["weights_alpha", "mu_loc", "mu_scale", "sigma_scale", "dof_shape", "dof_rate"]
            if cov == "full":
                keys.append("lkj_eta")
            out["prior"] = {key: priors[key] for key in keys if key in priors}
        return out

    @override
    def em_point(self, estimator, n_features):
        k = estimator.n_components
        out = {
            "w": np.asarray(estimator.weights_, float),
            "mu": np.asarray(estimator.means_, float).reshape(k, n_features),
        }
        c = np.asarray(estimator.covariances_, float)
        if estimator.covariance_type == "full" and n_features > 1:
            sd = np.sqrt(np.diagonal(c, axis1=-2, axis2=-1))
            out["sigma"] = sd
            out["cov"] = np.array(c)
            out["corr"] = c / (sd[:, :, None] * sd[:, None, :])
        elif estimator.covariance_type == "full":
            out["sigma"] = np.sqrt(c).reshape(k, 1)
        else:
            out["sigma"] = np.sqrt(c).reshape(k, n_features)
        out["nu"] = np.asarray(estimator.dofs_, float)
        return out

    # ------------------------------------------------------------------ graph
    @override
    def add_to_graph(self, spec, priors, n_features, w, observed, formulation="custom", rows=None):
        import pymc as pm

        d, k = n_features, spec.n_components
        cov = self.effective_covariance(spec.covariance, d)
        mu = normal_locations(spec, priors, d)
        sigma = pm.HalfNormal("sigma", sigma=priors["sigma_scale"], dims=("component", "feature"))
        if "dof" in priors:  # fixed degrees of freedom
            nu = pm.Deterministic("nu", priors["dof"], dims="component")
        else:
            nu = pm.Gamma(
                "nu", alpha=priors["dof_shape"], beta=priors["dof_rate"], dims="component"
            )
        if cov != "full":
            logp = _logp_diag
            if rows is not None:  # missing entries and labels: data of the density
                logp = partial(_logp_diag_rows, mask=rows.mask(), labels=rows.labels())
            pm.CustomDist(
                "x",
                w,
                mu,
                sigma,
                nu,
                logp=logp,
                random=_random_diag,
                signature="(k),(k,d),(k,d),(k)->(d)",
                **observed,
            )
            return
        corr_chol = pm.LKJCorr("corr_chol", n=d, eta=priors["lkj_eta"], size=k)  # (K, D, D)
        chol = sigma[:, :, None] * corr_chol
        pm.Deterministic(
            "corr", corr_chol @ corr_chol.mT, dims=("component", "feature", "feature_bis")
        )
        scale_matrix = pm.Deterministic(
            "cov", chol @ chol.mT, dims=("component", "feature", "feature_bis")
        )
        logp, random, scale = _logp_full, _random_full, chol
        if rows is not None and rows.missing:  # each row's observed block, by pattern
            logp = partial(
                _logp_full_missing,
                mask=rows.mask(),
                patterns=rows.patterns(),
                labels=rows.labels(),
            )
            random, scale = _random_full_cov, scale_matrix
        elif rows is not None:  # complete data with labels
            logp = partial(_logp_full_labels, labels=rows.labels())
        pm.CustomDist(
            "x",
            w,
            mu,
            scale,
            nu,
            logp=logp,
            random=random,
            signature="(k),(k,d),(k,d,d),(k)->(d)",
            **observed,
        )

    @override
    def free_var_names(self, spec, n_features):
        cov = self.effective_covariance(spec.covariance, n_features)
        if getattr(spec, "ordered", False):
            names = ["mu_first"] + (["mu_rest"] if n_features > 1 else [])
        else:
            names = ["mu"]
        names += ["sigma"] if _dof_fixed(spec) else ["sigma", "nu"]
        if cov == "full":
            names += ["corr_chol"]
        return names

    @override
    def point_to_initvals(self, spec, point, n_features):
        cov = self.effective_covariance(spec.covariance, n_features)
        k = spec.n_components
        out: dict[str, np.ndarray] = {}
        mu = np.asarray(point["mu"], float).reshape(k, n_features)
        if getattr(spec, "ordered", False):
            first = mu[:, 0].copy()
            for j in range(1, k):  # the ordered transform needs strictly increasing values
                first[j] = max(first[j], first[j - 1] + 1e-6 * (1 + abs(first[j - 1])))
            out["mu_first"] = first
            if n_features > 1:
                out["mu_rest"] = mu[:, 1:]
        else:
            out["mu"] = mu
        if point.get("cov") is not None:
            c = np.asarray(point["cov"], float)
            sd = np.sqrt(np.diagonal(c, axis1=-2, axis2=-1))
        else:
            c = None
            sd = np.asarray(point["sigma"], float).reshape(k, n_features)
        out["sigma"] = sd
        if not _dof_fixed(spec):
            nu = point.get("nu")
            out["nu"] = np.full(k, 10.0) if nu is None else np.asarray(nu, float).reshape(k)
        if cov == "full":
            if c is not None:
                out["corr_chol"] = np.linalg.cholesky(c / (sd[:, :, None] * sd[:, None, :]))
            else:
                out["corr_chol"] = np.broadcast_to(
                    np.eye(n_features), (k, n_features, n_features)
                ).copy()
        return out

    @override
    def default_point(self, spec, X):
        n, d = X.shape
        k = spec.n_components
        mu = chunk_means(X, k)  # NaN (missing) entries left out
        missing = bool(np.isnan(X).any())
        sd = (np.nanstd(X, axis=0) if missing else X.std(axis=0)) if n > 1 else np.ones(d)
        sigma = np.broadcast_to(np.where(sd > 0, sd, 1.0) / k, (k, d))
        return {"mu": mu, "sigma": sigma, "nu": np.full(k, 10.0)}
