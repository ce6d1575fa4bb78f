"""Mixtures of multivariate Student-t distributions fitted by ECM (ML) or MAP-ECM.

Component log density: :func:`bayesmix.families.student_t.t_log_density` (full or diagonal
scale matrices ``Sigma_k``, degrees of freedom ``nu_k``).

The algorithm (McLachlan & Peel 2000, section 7.5; Liu & Rubin 1995) treats each observation
as Gaussian given a latent scale ``u_n ~ Gamma(nu_k / 2, rate nu_k / 2)``:
``x_n | u_n, z_n = k ~ N(mu_k, Sigma_k / u_n)``. The E-step at the current parameters gives,
with ``delta_nk = (x_n - mu_k)^T Sigma_k^{-1} (x_n - mu_k)``,

* the responsibilities ``r_nk``;
* ``u_nk = E[u_n | x_n, z_n = k] = (nu_k + D) / (nu_k + delta_nk)``;
* ``E[log u_n | x_n, z_n = k] = psi((nu_k + D) / 2) - log((nu_k + delta_nk) / 2)``.

CM-steps, each the maximiser of the expected complete-data log-likelihood (plus the log prior
for MAP-EM) over its block with the others held (ECM: the objective never decreases), with
``n_k = sum_n r_nk`` (sums of responsibilities only, so sample weights apply unchanged):

1. weights ``w_k = n_k / N`` (ML) or the Dirichlet posterior mode
   ``max(n_k + alpha_k - 1, 0)`` normalised (``prior["weights_alpha"]``);
2. locations ``mu_k = sum_n r_nk u_nk x_n / sum_n r_nk u_nk`` (ML); with
   ``mu_kd ~ Normal(mu_loc_d, mu_scale_d)`` (``prior["mu_scale"]``) given the current scale:
   ``(a_k P_k + S0^{-1}) mu_k = P_k sum_n r_nk u_nk x_n + S0^{-1} mu_loc`` with
   ``a_k = sum_n r_nk u_nk``, ``P_k = Sigma_k^{-1}``, ``S0 = diag(mu_scale^2)``;
3. scales, given the new locations, from ``S_k = sum_n r_nk u_nk (x_n - mu_k)(x_n - mu_k)^T``:
   ``Sigma_k = S_k / n_k`` (ML; divided by ``n_k``, not by ``sum r u``), plus ``reg_covar``
   on the diagonal. MAP with ``sigma_kd ~ HalfNormal(sigma_scale_d)`` on the scale standard
   deviations: diag in closed form, ``s^2 = 2 S / (n_k + sqrt(n_k^2 + 4 S / t^2))``; full
   (with ``sigma_scale`` and/or ``lkj_eta``: the correlation's Cholesky factor under PyMC's
   ``LKJCorr`` density) numerically: ``scipy.optimize.minimize`` (BFGS) per component over
   the log standard deviations and unit-row Cholesky factors of the correlation, started at
   the current value and kept only when it improves the objective;
4. degrees of freedom (unless fixed by ``dof``), with ``nu_k ~ Gamma(a, b)``
   (``prior["dof_shape"]``, ``prior["dof_rate"]``) for MAP-EM, searched on
   ``DOF_BOUNDS = (0.01, 1000)`` (nu -> infinity, Gaussian-like data, gives 1000):

   * ``dof_step="ecme"`` (default; Liu & Rubin 1994, 1995): each ``nu_k`` in turn maximises
     the observed-data log-likelihood ``sum_n w_n log p(x_n)`` (plus ``(a - 1) log nu - b
     nu``) with the other parameters at their new values: ``scipy.optimize.brentq`` on its
     derivative (or the bound where that keeps one sign), kept only when it improves on the
     current value;
   * ``dof_step="ecm"`` (McLachlan & Peel 2000, eq. 7.21): the root of
     ``n_k/2 [log(nu/2) + 1 - psi(nu/2)] + 1/2 sum_n r_nk (E[log u_nk] - u_nk)
     + (a - 1)/nu - b = 0`` (the maximiser of the expected complete-data log posterior: the
     left side decreases in nu) by ``scipy.optimize.brentq``, or the bound where it keeps one
     sign. Simpler, but slow near the optimum (the latent scales carry much of the
     information on nu).

The objective in ``lower_bounds_`` is the mean log-likelihood per sample (MAP-EM: plus the log
prior density divided by N, every normalising constant included, PyMC's
``model.logp(jacobian=False)`` of the Student-t family's graph with the same priors). It
never decreases with ``reg_covar=0`` (``reg_covar`` is added after the scale update).

The first parameters come from the initial responsibilities with ``u = 1`` (a Gaussian
M-step) and ``nu = 10`` (or the fixed ``dof``).

Missing values (``missing="model"``): a NaN entry is missing at random. A row's density is
the marginal of its observed coordinates o, a t with the same ``nu_k``, location ``mu_ko``,
scale ``Sigma_k,oo`` and dimension ``p_o`` (rows grouped by pattern of observed features).
The E-step uses ``delta_o`` (the Mahalanobis distance of the observed block) and ``p_o`` in
place of ``delta`` and D: ``u_nk = (nu_k + p_o) / (nu_k + delta_o)``, ``E[log u] =
psi((nu_k + p_o) / 2) - log((nu_k + delta_o) / 2)``. Given ``u`` the missing block is Gaussian,
``x_m | x_o, u ~ N(x^_m, C / u)`` with ``x^_m = mu_km + S_mo S_oo^{-1} (x_o - mu_ko)`` and
``C = S_mm - S_mo S_oo^{-1} S_om`` (McLachlan & Peel 2000, section 7.7; Liu & Rubin 1995), so
the CM-steps above take ``E[u x] = u_nk x^`` and ``E[u x x^T] = u_nk x^ x^^T + C`` (C in the
missing rows and columns, not divided by u); diag: ``x^_m = mu_km``, ``C = diag(S_mm)``. ECME
maximises the observed-data log-likelihood (the marginals) in each ``nu_k``; ECM's equation
takes the ``E[log u]`` and ``u`` above. The starting values use each missing entry's column
mean. Without NaN the computation is the one above, bit for bit.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import optimize
from scipy import stats as sps
from scipy.special import digamma, gammaln, logsumexp, softmax, xlogy

from bayesmix._validation import DataError, ParameterError, check_choice, check_positive, check_X
from bayesmix.em._base import (
    BaseMixtureEM,
    check_prior_dict,
    covariance_from_vector,
    covariance_to_vector,
    fill_column_means,
    log_nonnegative,
    weighted_sum,
)
from bayesmix.families.student_t import (
    DOF_BOUNDS,
    lkj_chol_logp,
    mahalanobis,
    observed_mahalanobis,
    observed_t_log_density,
    t_log_density_from_maha,
)

__all__ = ["StudentTMixtureEM"]

COVARIANCE_TYPES = ("full", "diag")
DOF_STEPS = ("ecme", "ecm")
PRIOR_KEYS = (
    "weights_alpha",
    "mu_loc",
    "mu_scale",
    "sigma_scale",
    "lkj_eta",
    "dof_shape",
    "dof_rate",
)
#: Degrees of freedom of every component at the start of EM (when not fixed).
DOF_INIT = 10.0


def _halfnormal_variance(n, s, t):
    """Maximiser s^2 of -n log s - S/(2 s^2) - s^2/(2 t^2) (stable form)."""
    return 2.0 * s / (n + np.sqrt(n * n + 4.0 * s / (t * t)))


def _vector(value: Any, key: str, length: int) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(length, float(arr))
    if arr.shape != (length,) or not np.all(np.isfinite(arr)):
        raise ParameterError(
            f"{key} is invalid: expected a finite scalar or shape ({length},), got "
            f"{np.asarray(value).tolist()}; pass {length} numbers"
        )
    return arr


def _positive_vector(value: Any, key: str, length: int) -> np.ndarray:
    arr = _vector(value, key, length)
    if np.any(arr <= 0):
        raise ParameterError(
            f"{key} must be positive: expected values > 0, got {arr.tolist()}; pass positive "
            "values"
        )
    return arr


def _corr_chol_from_params(v: np.ndarray, d: int) -> np.ndarray:
    """Lower Cholesky factor of a correlation matrix: row i is ``(v_i, 1) / ||(v_i, 1)||``."""
    chol = np.eye(d)
    pos = 0
    for i in range(1, d):
        row = np.append(v[pos : pos + i], 1.0)
        chol[i, : i + 1] = row / np.linalg.norm(row)
        pos += i
    return chol


def _params_from_corr_chol(chol: np.ndarray) -> np.ndarray:
    d = chol.shape[0]
    return np.concatenate([chol[i, :i] / chol[i, i] for i in range(1, d)] or [np.empty(0)])


def _scale_objective(theta, scatter, n, t, eta):
    """Minus the scale part of the expected log posterior of one component, and its gradient.

    ``theta`` = log standard deviations (D) then the off-diagonal parameters of the unit-row
    Cholesky factor of the correlation (:func:`_corr_chol_from_params`); the value is
    ``n/2 log|Sigma| + 1/2 tr(Sigma^{-1} S) - log HalfNormal(s | t) - log LKJ(L | eta)``
    divided by ``max(n, 1)``. Gradient through ``G = d/dSigma = (n P - P S P) / 2``.
    """
    d = scatter.shape[0]
    s = np.exp(theta[:d])
    corr_chol = _corr_chol_from_params(theta[d:], d)
    corr = corr_chol @ corr_chol.T
    sigma = np.outer(s, s) * corr
    try:
        prec = np.linalg.inv(sigma)
        sign, log_det = np.linalg.slogdet(sigma)
    except np.linalg.LinAlgError:
        return np.inf, np.zeros_like(theta)
    if sign <= 0:
        return np.inf, np.zeros_like(theta)
    value = 0.5 * n * log_det + 0.5 * np.sum(prec * scatter)
    g_sigma = 0.5 * (n * prec - prec @ scatter @ prec)
    m = np.outer(s, s) * g_sigma  # d value / d corr
    grad = np.empty_like(theta)
    grad[:d] = 2.0 * np.diagonal(m @ corr)
    if t is not None:
        value += np.sum(0.5 * (s / t) ** 2 + np.log(t) - 0.5 * np.log(2.0 / np.pi))
        grad[:d] += (s / t) ** 2
    g_chol = 2.0 * m @ corr_chol
    exponents = None if eta is None else 2.0 * eta - 2.0 + d - np.arange(1, d + 1)
    if eta is not None:
        value -= float(lkj_chol_logp(corr_chol, eta))
    pos = d
    for i in range(1, d):
        v = theta[pos : pos + i]
        row = np.append(v, 1.0)
        norm = np.linalg.norm(row)
        r = row / norm
        gi = g_chol[i, : i + 1]
        grad[pos : pos + i] = ((gi - r * (r @ gi)) / norm)[:i]
        if exponents is not None:  # -c_i log L_ii = c_i / 2 log(1 + |v|^2)
            grad[pos : pos + i] += exponents[i] * v / (1.0 + v @ v)
        pos += i
    scale = max(n, 1.0)
    return value / scale, grad / scale


def _conditional_moments(X, resp, means, cov, diag):
    """``E[x | x_o, z = k]`` of every row (K, N, D) and ``sum_n r_nk C_nk`` (K, D, D) or (K, D).

    ``X`` (N, D) with NaN; ``resp`` (N, K); ``means`` (K, D); ``cov`` the scale matrices
    (K, D, D), or their diagonals (K, D) when ``diag``. Per pattern of observed features o
    (missing m) and component: ``x^_m = mu_m + S_mo S_oo^{-1} (x_o - mu_o)`` and ``C = S_mm -
    S_mo S_oo^{-1} S_om`` in the missing rows and columns, zeros elsewhere (diag: ``mu_m`` and
    the diagonal of ``S_mm``). Rows without NaN keep their values.
    """
    k, d = means.shape
    observed = ~np.isnan(X)
    patterns, inverse = np.unique(observed, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    completed = np.repeat(X[None], k, axis=0)
    cond = np.zeros((k, d) if diag else (k, d, d))
    for p, pattern in enumerate(patterns):
        if pattern.all():
            continue
        rows = np.flatnonzero(inverse == p)
        o, m = np.flatnonzero(pattern), np.flatnonzero(~pattern)
        r = resp[rows].sum(axis=0)  # (K,): C does not depend on the row, only on its pattern
        if diag:
            completed[:, rows[:, None], m] = means[:, None, m]
            cond[:, m] += r[:, None] * cov[:, m]
            continue
        s_om = cov[:, o[:, None], m]
        gain_t = np.linalg.solve(cov[:, o[:, None], o], s_om)  # (K, p_o, p_m): S_oo^{-1} S_om
        z = X[np.ix_(rows, o)] - means[:, None, o]  # (K, n, p_o)
        completed[:, rows[:, None], m] = means[:, None, m] + z @ gain_t
        c = cov[:, m[:, None], m] - np.swapaxes(s_om, -1, -2) @ gain_t
        cond[:, m[:, None], m] += r[:, None, None] * (0.5 * (c + np.swapaxes(c, -1, -2)))
    return completed, cond


class StudentTMixtureEM(BaseMixtureEM):
    """Mixture of multivariate Student-t distributions fitted by ECM (or MAP-ECM).

    Parameters
    ----------
    n_components : int, default 1
    covariance_type : {"full", "diag"}, default "full"
        Structure of the scale matrices.
    dof : None, float or array-like of shape (n_components,), default None
        Degrees of freedom: None estimates one per component; a number (or K numbers) fixes
        them.
    dof_step : {"ecme", "ecm"}, default "ecme"
        How the degrees of freedom are updated (module docstring, step 4): "ecme" maximises
        the observed log-likelihood (plus log prior) in each ``nu_k``, "ecm" solves the
        expected complete-data equation. Both never decrease the objective; ECME needs far
        fewer iterations near the optimum.
    tol : float, default 1e-3
        Stop when the objective per sample changes by less than ``tol`` (> 0).
    reg_covar : float, default 1e-6
        Added to the diagonal of every scale matrix after its update (>= 0).
    max_iter : int, default 100
    n_init : int, default 1
    init_params : {"kmeans", "k-means++", "random", "random_from_data"}, default "kmeans"
        Initial responsibilities, as in :class:`bayesmix.em.GaussianMixtureEM`.
    random_state : None, int, numpy Generator or RandomState
    warm_start : bool, default False
    verbose : int, default 0
    prior : dict, optional
        MAP-EM (see the module docstring): ``weights_alpha`` (scalar or (K,)), ``mu_loc`` /
        ``mu_scale`` (scalars or (D,)), ``sigma_scale`` (scalar or (D,)), ``lkj_eta``
        (scalar, full), ``dof_shape`` and ``dof_rate`` (scalars). Absent keys: flat.
    missing : {"error", "model"}, default "error"
        "model": NaN entries are missing at random; a row's density is the t marginal of its
        observed coordinates (same ``nu``, location and scale block of the observed features,
        dimension the number observed), and the CM-steps use the expected statistics given
        them: ``u`` from the observed block, ``E[x_m | x_o]`` and the conditional scale
        ``C`` of the missing block (see the module docstring), with every covariance type,
        prior and ``dof_step``, in ``fit`` and in every method that takes X. "error": NaN is
        a DataError.
    accelerate : {None, "squarem"}, default None
        "squarem": SQUAREM-accelerated ECM (see :class:`bayesmix.em.BaseMixtureEM`),
        extrapolating in log weights, locations, log-Cholesky factors (full) or log variances
        (diag) of the scales and log degrees of freedom (kept within ``DOF_BOUNDS``).

    Attributes
    ----------
    weights_ : ndarray of shape (K,)
    means_ : ndarray of shape (K, D)
        Locations.
    covariances_ : ndarray of shape (K, D, D) (full) or (K, D) (diag)
        Scale matrices (diag: their diagonals), not covariances: the covariance of component
        k is ``dofs_[k] / (dofs_[k] - 2) * covariances_[k]`` when ``dofs_[k] > 2``.
    dofs_ : ndarray of shape (K,)
        Degrees of freedom.
    converged_, n_iter_, lower_bound_, lower_bounds_, n_features_in_
        As in :class:`bayesmix.em.GaussianMixtureEM`.
    """

    _init_choices = ("kmeans", "k-means++", "random", "random_from_data")
    _supports_missing = True

    def __init__(
        self,
        n_components: int = 1,
        *,
        covariance_type: str = "full",
        dof: Any = None,
        dof_step: str = "ecme",
        tol: float = 1e-3,
        reg_covar: float = 1e-6,
        max_iter: int = 100,
        n_init: int = 1,
        init_params: str = "kmeans",
        random_state: Any = None,
        warm_start: bool = False,
        verbose: int = 0,
        prior: dict | None = None,
        missing: str = "error",
        accelerate: str | None = None,
    ) -> None:
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.dof = dof
        self.dof_step = dof_step
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.prior = prior
        self.missing = missing
        self.accelerate = accelerate

    # ------------------------------------------------------------------ checks
    def _check_X(self, X, *, fitting):
        if fitting:
            return check_X(
                X,
                n_components=self.n_components,
                covariance_type=self.covariance_type if self.reg_covar == 0 else None,
                min_samples=2,
                allow_nan=self._allow_nan(),
            )
        return check_X(X, allow_nan=self._allow_nan())

    def _check_family_parameters(self, X):
        check_choice(self.covariance_type, "covariance_type", COVARIANCE_TYPES)
        check_positive(self.reg_covar, "reg_covar", strict=False)
        check_choice(self.dof_step, "dof_step", DOF_STEPS)
        k, d = self.n_components, X.shape[1]
        self._dof_fixed = None
        if self.dof is not None:
            self._dof_fixed = _positive_vector(self.dof, "dof", k)
        self._prior = self._resolve_prior(k, d)

    def _resolve_prior(self, k: int, d: int) -> dict:
        prior = check_prior_dict(self.prior, PRIOR_KEYS, "{'dof_shape': 2.0, 'dof_rate': 0.1}")
        if not prior:
            return {}
        get = prior.get
        out: dict[str, Any] = {}
        if get("weights_alpha") is not None:
            out["weights_alpha"] = _positive_vector(
                get("weights_alpha"), "prior['weights_alpha']", k
            )
        if get("mu_scale") is not None:
            out["mu_scale"] = _positive_vector(get("mu_scale"), "prior['mu_scale']", d)
            loc = get("mu_loc")
            out["mu_loc"] = np.zeros(d) if loc is None else _vector(loc, "prior['mu_loc']", d)
        if get("sigma_scale") is not None:
            out["sigma_scale"] = _positive_vector(get("sigma_scale"), "prior['sigma_scale']", d)
        if get("lkj_eta") is not None and self.covariance_type == "full" and d > 1:
            out["lkj_eta"] = float(_positive_vector(get("lkj_eta"), "prior['lkj_eta']", 1)[0])
        a, b = get("dof_shape"), get("dof_rate")
        if (a is None) != (b is None):
            raise ParameterError(
                "prior has only one of dof_shape and dof_rate: expected both (the Gamma prior "
                "of the degrees of freedom) or neither; add the other one"
            )
        if a is not None:
            out["dof_shape"] = float(_positive_vector(a, "prior['dof_shape']", 1)[0])
            out["dof_rate"] = float(_positive_vector(b, "prior['dof_rate']", 1)[0])
        return out

    # ------------------------------------------------------------------ densities
    @property
    def _diag(self) -> bool:
        return self.covariance_type == "diag"

    def _scale_factor(self) -> np.ndarray:
        """Standard deviations (K, D) (diag) or lower Cholesky factors (K, D, D) (full)."""
        cov = np.asarray(self.covariances_, dtype=np.float64)
        if self._diag:
            bad = ~(cov > 0).all(axis=1)
        else:
            try:
                return np.linalg.cholesky(cov)
            except np.linalg.LinAlgError:
                bad = np.array([np.any(np.linalg.eigvalsh(c) <= 0) for c in cov])
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"the scale matrix of component {k} is not positive definite: expected "
                "positive variances, got a singular scale (a component collapsed onto too few "
                f"distinct points); increase reg_covar (now {self.reg_covar:g}) or use fewer "
                "components"
            )
        return np.sqrt(cov)

    def _observed_mahalanobis(self, X):
        """Per row (X with NaN): ``delta_o`` (N, K), ``1/2 log|Sigma_k,oo|`` (N, K), ``p_o``."""
        scale = self._scale_factor()  # the positive-definiteness check
        if not self._diag:  # blocks of the scale matrices, not of their Cholesky factors
            scale = np.asarray(self.covariances_, dtype=np.float64)
        return observed_mahalanobis(X, self.means_, scale, self._diag)

    def _estimate_log_prob_block(self, X, out):
        if self._missing_now:  # the t marginal of each row's observed coordinates
            maha, half_log_det, p = self._observed_mahalanobis(X)
            out[:] = observed_t_log_density(maha, half_log_det, self.dofs_, p)
            return
        maha, half_log_det = mahalanobis(X, self.means_, self._scale_factor(), self._diag)
        out[:] = t_log_density_from_maha(maha, half_log_det, self.dofs_, X.shape[1])

    # ------------------------------------------------------------------ M-step
    def _initialize(self, X, resp):
        k = self.n_components
        self.dofs_ = (
            self._dof_fixed.copy() if self._dof_fixed is not None else np.full(k, DOF_INIT)
        )
        if self._missing_now:  # no parameters to condition on yet: each NaN at its column mean
            X = fill_column_means(X, self._sample_weight)
        self._update(X, resp, u=None, elog_u=None, initial=True)

    def _m_step(self, X, resp):
        completed = None
        if self._missing_now:  # u from the observed block; E[x_m | x_o] and C for the rest
            maha, _, d = self._observed_mahalanobis(X)
            d = d[:, None]  # p_o per row
            cov = np.asarray(self.covariances_, dtype=np.float64)
            completed = _conditional_moments(X, resp, self.means_, cov, self._diag)
        else:
            d = X.shape[1]
            maha, _ = mahalanobis(X, self.means_, self._scale_factor(), self._diag)  # (N, K)
        nu = self.dofs_
        u = (nu + d) / (nu + maha)
        elog_u = digamma(0.5 * (nu + d)) - np.log(0.5 * (nu + maha))
        self._update(X, resp, u=u, elog_u=elog_u, initial=False, completed=completed)

    def _update(self, X, resp, u, elog_u, initial, completed=None):
        """The CM-steps from responsibilities and u-weights (module docstring, steps 1-4).

        ``completed`` (missing values): ``E[x | x_o, z = k]`` (K, N, D) and ``sum_n r_nk
        C_nk`` from :func:`_conditional_moments`, in place of X in steps 2-3.
        """
        prior = self._prior
        k, d = resp.shape[1], X.shape[1]
        nk = resp.sum(axis=0) + 10 * np.finfo(np.float64).eps
        # 1. weights
        if "weights_alpha" in prior:
            w = np.maximum(nk + prior["weights_alpha"] - 1.0, 0.0)
        else:
            w = nk.copy()
        self.weights_ = w / w.sum()
        # 2. locations (given the current scales for MAP)
        ru = resp if u is None else resp * u
        a = ru.sum(axis=0) + 10 * np.finfo(np.float64).eps
        if completed is None:
            sx = ru.T @ X  # (K, D)
            rows = (X,) * k  # the data rows of each component
        else:  # E[u x] = u E[x | x_o, z = k]
            rows, cond = completed
            sx = np.einsum("nk,knd->kd", ru, rows)
        if "mu_scale" in prior and not initial:
            prior_prec = 1.0 / prior["mu_scale"] ** 2
            loc_term = prior["mu_loc"] * prior_prec
            cov = np.asarray(self.covariances_, dtype=np.float64)
            if self._diag:
                means = (sx / cov + loc_term) / (a[:, None] / cov + prior_prec)
            else:
                prec = np.linalg.inv(cov)
                lhs = a[:, None, None] * prec + np.diag(prior_prec)
                rhs = np.einsum("kde,ke->kd", prec, sx) + loc_term
                means = np.linalg.solve(lhs, rhs[:, :, None])[:, :, 0]
        else:
            means = sx / a[:, None]
        # 3. scales given the new locations
        if self._diag:
            scatter = np.stack([ru[:, j] @ (rows[j] - means[j]) ** 2 for j in range(k)])
            if completed is not None:  # E[u (x - mu)^2] = u (x^ - mu)^2 + C
                scatter += cond
            if "sigma_scale" in prior:
                cov = _halfnormal_variance(nk[:, None], scatter, prior["sigma_scale"])
            else:
                cov = scatter / nk[:, None]
            cov = cov + self.reg_covar
        else:
            scatter = np.empty((k, d, d))
            for j in range(k):
                diff = rows[j] - means[j]
                scatter[j] = (ru[:, j, None] * diff).T @ diff
            if completed is not None:  # E[u (x - mu)(x - mu)^T] = u (x^ - mu)(x^ - mu)^T + C
                scatter += cond
            if d == 1 and "sigma_scale" in prior:
                cov = _halfnormal_variance(nk[:, None, None], scatter, prior["sigma_scale"][0])
            elif ("sigma_scale" in prior or "lkj_eta" in prior) and not initial:
                cov = np.stack(
                    [
                        self._map_scale(scatter[j], nk[j], self.covariances_[j] - self._reg_eye(d))
                        for j in range(k)
                    ]
                )
            else:
                cov = scatter / nk[:, None, None]
            cov = cov + self._reg_eye(d)
        self.means_ = means
        self.covariances_ = cov
        # 4. degrees of freedom
        if u is not None and self._dof_fixed is None:
            if self.dof_step == "ecme":
                self._ecme_dofs(X)
            else:
                c = np.sum(resp * (elog_u - u), axis=0)  # (K,)
                self.dofs_ = np.array([self._solve_dof(nk[j], c[j]) for j in range(k)])

    def _ecme_dofs(self, X):
        """ECME: each nu_k maximises the observed log-likelihood (+ log prior) given the rest.

        One 1-D root search per component (``brentq`` on the derivative in nu over
        ``DOF_BOUNDS``, or the bound where the derivative keeps one sign) with the other
        parameters at their new values; a result that does not improve the objective over the
        current ``nu_k`` is dropped, so the objective never decreases. With partial labels a
        labelled row's term is its own component's (``log w_k + log f_k``): only the rows
        labelled ``j`` (and the unlabelled ones) depend on ``nu_j``.
        """
        if self._missing_now:  # the marginals of the observed blocks: p_o and log|S_oo| per row
            maha, half_log_det, d = self._observed_mahalanobis(X)
            density = observed_t_log_density
        else:
            d = X.shape[1]
            maha, half_log_det = mahalanobis(X, self.means_, self._scale_factor(), self._diag)
            density = t_log_density_from_maha
        log_w = np.log(np.maximum(self.weights_, np.finfo(float).tiny))
        dofs = np.array(self.dofs_, dtype=np.float64)
        comp = density(maha, half_log_det, dofs, d) + log_w
        weights = self._sample_weight
        shape = self._prior.get("dof_shape", 1.0)
        rate = self._prior.get("dof_rate", 0.0)
        lo, hi = DOF_BOUNDS
        labels = self._labels
        for j in range(self.n_components):
            rest = np.delete(comp, j, axis=1)
            rest = logsumexp(rest, axis=1) if rest.shape[1] else None
            m = maha[:, j]
            fixed = None
            if labels is not None:  # rows labelled j: their own term; other labels: constant
                other = (labels >= 0) & (labels != j)
                fixed = comp[np.flatnonzero(other), labels[other]]

            def column(nu, j=j):
                value = density(maha[:, j : j + 1], half_log_det[..., j : j + 1], [nu], d)
                return value[:, 0] + log_w[j]

            def objective(nu, rest=rest, column=column, j=j, fixed=fixed):
                col = column(nu)
                row = col if rest is None else np.logaddexp(col, rest)
                if labels is not None:
                    row = np.where(labels == j, col, row)
                    row[(labels >= 0) & (labels != j)] = fixed
                return weighted_sum(row, weights) + (shape - 1.0) * np.log(nu) - rate * nu

            def slope(nu, rest=rest, column=column, m=m, j=j):
                col = column(nu)
                resp = np.ones_like(col) if rest is None else np.exp(col - np.logaddexp(col, rest))
                if labels is not None:
                    resp = np.where(labels == j, 1.0, np.where(labels >= 0, 0.0, resp))
                dlog = (
                    0.5 * (digamma(0.5 * (nu + d)) - digamma(0.5 * nu))
                    - 0.5 * d / nu
                    - 0.5 * np.log1p(m / nu)
                    + 0.5 * (nu + d) * m / (nu * (nu + m))
                )
                return weighted_sum(resp * dlog, weights) + (shape - 1.0) / nu - rate

            f_lo, f_hi = slope(lo), slope(hi)
            if f_hi >= 0:
                nu = hi
            elif f_lo <= 0:
                nu = lo
            else:
                nu = optimize.brentq(slope, lo, hi, xtol=1e-12, rtol=4 * np.finfo(float).eps)
            if objective(nu) > objective(dofs[j]):
                dofs[j] = nu
                comp[:, j] = column(nu)
        self.dofs_ = dofs

    def _reg_eye(self, d):
        return self.reg_covar * np.eye(d)

    def _solve_dof(self, n: float, c: float) -> float:
        """Maximiser of the nu part of the expected log posterior (module docstring, step 4)."""
        shape = self._prior.get("dof_shape", 1.0)
        rate = self._prior.get("dof_rate", 0.0)

        def slope(nu):
            half = 0.5 * nu
            return (
                0.5 * n * (np.log(half) + 1.0 - digamma(half))
                + 0.5 * c
                + (shape - 1.0) / nu
                - rate
            )

        lo, hi = DOF_BOUNDS
        f_lo, f_hi = slope(lo), slope(hi)
        if f_hi >= 0:
            return hi
        if f_lo <= 0:
            return lo
        return optimize.brentq(slope, lo, hi, xtol=1e-12, rtol=4 * np.finfo(float).eps)

    def _map_scale(self, scatter, n, current):
        """Full scale matrix maximising the expected log posterior of one component."""
        d = scatter.shape[0]
        t = self._prior.get("sigma_scale")
        eta = self._prior.get("lkj_eta")
        sd = np.sqrt(np.diagonal(current))
        corr_chol = np.linalg.cholesky(current / np.outer(sd, sd))
        start = np.concatenate([np.log(sd), _params_from_corr_chol(corr_chol)])
        res = optimize.minimize(
            _scale_objective,
            start,
            args=(scatter, n, t, eta),
            jac=True,
            method="BFGS",
            options={"gtol": 1e-9},
        )
        best = res.x if np.isfinite(res.fun) else start
        if (
            _scale_objective(best, scatter, n, t, eta)[0]
            > _scale_objective(start, scatter, n, t, eta)[0]
        ):
            best = start  # never step down (ECM)
        s, corr_chol = np.exp(best[:d]), _corr_chol_from_params(best[d:], d)
        chol = s[:, None] * corr_chol
        return chol @ chol.T

    # ------------------------------------------------------------------ bookkeeping
    def _has_implicit_prior(self):
        return bool(getattr(self, "_prior", None))

    def _log_prior(self):
        prior = self._prior
        total = 0.0
        if "weights_alpha" in prior:
            a = prior["weights_alpha"]
            total += gammaln(a.sum()) - gammaln(a).sum() + xlogy(a - 1.0, self.weights_).sum()
        if "mu_scale" in prior:
            total += sps.norm.logpdf(self.means_, prior["mu_loc"], prior["mu_scale"]).sum()
        cov = np.asarray(self.covariances_, dtype=np.float64)
        sd = np.sqrt(cov) if self._diag else np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1))
        if "sigma_scale" in prior:
            total += sps.halfnorm.logpdf(sd, scale=prior["sigma_scale"]).sum()
        if "lkj_eta" in prior:
            corr = cov / (sd[:, :, None] * sd[:, None, :])
            total += float(np.sum(lkj_chol_logp(np.linalg.cholesky(corr), prior["lkj_eta"])))
        if "dof_shape" in prior:
            total += sps.gamma.logpdf(
                self.dofs_, prior["dof_shape"], scale=1.0 / prior["dof_rate"]
            ).sum()
        return float(total)

    def _get_parameters(self):
        return (self.weights_, self.means_, self.covariances_, self.dofs_)

    def _set_parameters(self, params):
        self.weights_, self.means_, self.covariances_, self.dofs_ = params

    def _params_to_vector(self):
        parts = [
            log_nonnegative(self.weights_),
            np.ravel(self.means_),
            covariance_to_vector(self.covariances_, matrices=not self._diag),
        ]
        if self._dof_fixed is None:
            parts.append(log_nonnegative(self.dofs_))
        return np.concatenate(parts)

    def _vector_to_params(self, vec):
        k, d = self.means_.shape
        shape = np.shape(self.covariances_)
        n_scale = k * d if self._diag else k * d * (d + 1) // 2
        log_w, means, scale, log_dof = np.split(vec, np.cumsum([k, k * d, n_scale]))
        weights = softmax(log_w)
        cov = covariance_from_vector(scale, shape, matrices=not self._diag)
        if cov is None or not (np.all(np.isfinite(weights)) and np.all(np.isfinite(means))):
            return False
        dofs = self.dofs_
        if self._dof_fixed is None:  # within the bounds the CM-step searches
            dofs = np.clip(np.exp(log_dof), *DOF_BOUNDS)
            if not np.all(np.isfinite(dofs)):
                return False
        self._set_parameters((weights, means.reshape(k, d), cov, dofs))
        return True

    def _n_parameters(self):
        k, d = self.means_.shape
        n_scale = k * d if self._diag else k * d * (d + 1) // 2
        n_dof = k if self.dof is None else 0
        return int(n_scale + k * d + n_dof + k - 1)

    def _sample_component(self, k, n, rng):
        d = self.means_.shape[1]
        scale = self._scale_factor()
        eps = rng.standard_normal((n, d))
        eps = eps * scale[k] if self._diag else eps @ scale[k].T
        nu = float(self.dofs_[k])
        u = rng.gamma(0.5 * nu, 2.0 / nu, size=n)
        return self.means_[k] + eps / np.sqrt(u)[:, None]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = self.missing == "model"
        return tags
