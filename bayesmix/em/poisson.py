"""Mixtures of independent Poisson counts, fitted by EM or MAP-EM.

Component log density: ``log p(x | rate_k) = sum_d x_d log rate_kd - rate_kd - log(x_d!)``
(the NumPy kernel of :mod:`bayesmix.families.poisson`), summed over the features before the
log-sum-exp over components.

M-step with ``n_k = sum_n r_nk`` and ``s_kd = sum_n r_nk x_nd`` (sums of responsibilities
only, so sample weights apply unchanged):

* weights: ``w_k = n_k / N`` (ML) or ``max(n_k + alpha_k - 1, 0)`` normalised
  (``prior["weights_alpha"]``, Dirichlet);
* rates: ``rate_kd = s_kd / n_k`` (ML), or with ``prior["rate_shape"] = a`` and
  ``prior["rate_rate"] = b`` the mode of the Gamma posterior ``(a - 1 + s_kd) / (b + n_k)``,
  floored at ``RATE_FLOOR`` (see :mod:`bayesmix.families.poisson`).

Missing values (``missing="model"``): a NaN entry is missing at random; a row's density is the
product over its observed features and ``rate_kd`` uses the rows where feature d is observed
(``n_k`` replaced by ``sum_n r_nk m_nd``, ``m`` the observed mask): EM with the complete data
(z, observed x), monotone in the observed-data objective.

The objective in ``lower_bounds_`` is the mean log-likelihood per sample (plus the log prior
density divided by N for MAP-EM: Dirichlet and Gamma densities with their normalising
constants, PyMC's ``logp(jacobian=False)``), so EM never decreases it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats as sps
from scipy.special import gammaln, softmax, xlogy

from bayesmix._validation import ParameterError, check_X
from bayesmix.em._base import BaseMixtureEM, check_prior_dict, log_nonnegative, row_blocks
from bayesmix.families.poisson import RATE_FLOOR, check_counts, poisson_log_density

__all__ = ["PoissonMixtureEM"]

PRIOR_KEYS = ("weights_alpha", "rate_shape", "rate_rate")


def _prior_vector(prior: dict, key: str, length: int) -> np.ndarray:
    value = np.asarray(prior[key], dtype=np.float64)
    if value.ndim == 0:
        value = np.full(length, float(value))
    if value.shape != (length,) or not np.all(np.isfinite(value)) or np.any(value <= 0):
        raise ParameterError(
            f"prior['{key}'] is invalid: expected a positive scalar or shape ({length},), got "
            f"{np.asarray(prior[key]).tolist()}; pass positive values"
        )
    return value


class PoissonMixtureEM(BaseMixtureEM):
    """Mixture of independent Poisson distributions (counts) fitted by EM.

    Parameters
    ----------
    n_components : int, default 1
    tol : float, default 1e-3
        Stop when the objective per sample changes by less than ``tol`` (> 0). EM is slow on
        overlapping Poisson components (the death-notice fit needs about 2,100 iterations
        at tol=1e-15 for 4 decimals): use a small ``tol`` and a large ``max_iter`` for
        precise answers.
    max_iter : int, default 100
    n_init : int, default 1
    init_params : {"kmeans", "k-means++", "random", "random_from_data"}, default "kmeans"
        Initial responsibilities, as in :class:`bayesmix.em.GaussianMixtureEM`.
    random_state : None, int, numpy Generator or RandomState
    warm_start : bool, default False
    verbose : int, default 0
    prior : dict, optional
        MAP-EM: ``weights_alpha`` (scalar or (K,)), ``rate_shape`` and ``rate_rate`` (scalars
        or (D,)) of the Gamma prior on every rate. Without ``rate_*`` keys the rates are ML.
    missing : {"error", "model"}, default "error"
        "model": NaN entries are missing at random (see the module docstring); "error": NaN
        is a DataError.
    accelerate : {None, "squarem"}, default None
        "squarem": SQUAREM-accelerated EM, extrapolating in log weights and log rates (see
        :class:`bayesmix.em.BaseMixtureEM`); far fewer iterations where plain EM is slow.

    Attributes
    ----------
    weights_ : ndarray of shape (K,)
    means_ : ndarray of shape (K, D)
        The Poisson rates (``rates_`` is the same array).
    converged_, n_iter_, lower_bound_, lower_bounds_, n_features_in_
        As in :class:`bayesmix.em.GaussianMixtureEM`.
    """

    _init_choices = ("kmeans", "k-means++", "random", "random_from_data")
    _supports_missing = True

    def __init__(
        self,
        n_components: int = 1,
        *,
        tol: float = 1e-3,
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
        self.tol = tol
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.prior = prior
        self.missing = missing
        self.accelerate = accelerate

    @property
    def rates_(self) -> np.ndarray:
        """Alias of ``means_``: the Poisson rates, shape (K, D)."""
        return self.means_

    def _check_X(self, X, *, fitting):
        allow_nan = self._allow_nan()
        if fitting:
            X = check_X(X, n_components=self.n_components, allow_nan=allow_nan)
        else:
            X = check_X(X, allow_nan=allow_nan)
        return check_counts(X)

    def _check_family_parameters(self, X):
        k, d = self.n_components, X.shape[1]
        prior = check_prior_dict(self.prior, PRIOR_KEYS, "{'rate_shape': 1.0, 'rate_rate': 0.5}")
        resolved = {}
        if prior.get("weights_alpha") is not None:
            resolved["weights_alpha"] = _prior_vector(prior, "weights_alpha", k)
        a, b = prior.get("rate_shape"), prior.get("rate_rate")
        if (a is None) != (b is None):
            raise ParameterError(
                "prior has only one of rate_shape and rate_rate: expected both (the Gamma "
                "prior of the rates) or neither; add the other one"
            )
        if a is not None:
            resolved["rate_shape"] = _prior_vector(prior, "rate_shape", d)
            resolved["rate_rate"] = _prior_vector(prior, "rate_rate", d)
        self._prior = resolved

    # ------------------------------------------------------------------ EM pieces
    def _estimate_log_prob_block(self, X, out):
        out[:] = poisson_log_density(X, self.means_)

    def _update(self, X, resp):
        k, d = resp.shape[1], X.shape[1]
        nk = np.zeros(k)
        sums = np.zeros((k, d))
        seen = np.zeros((k, d)) if self._missing_now else None
        for rows in row_blocks(X.shape[0], self._block_size(d)):
            r = resp[rows]
            nk += r.sum(axis=0)
            if seen is None:
                sums += r.T @ X[rows]
            else:  # counts over the rows where each feature is observed
                observed = ~np.isnan(X[rows])
                sums += r.T @ np.where(observed, X[rows], 0.0)
                seen += r.T @ observed.astype(np.float64)
        nk += 10 * np.finfo(np.float64).eps
        per_feature = nk[:, None] if seen is None else seen + 10 * np.finfo(np.float64).eps
        prior = self._prior
        if "weights_alpha" in prior:
            w = np.maximum(nk + prior["weights_alpha"] - 1.0, 0.0)
        else:
            w = nk
        self.weights_ = w / w.sum()
        if "rate_shape" in prior:
            rate = (sums + prior["rate_shape"] - 1.0) / (per_feature + prior["rate_rate"])
            rate = np.maximum(rate, RATE_FLOOR)
        else:
            rate = sums / per_feature
        self.means_ = rate

    def _initialize(self, X, resp):
        self._update(X, resp)

    def _m_step(self, X, resp):
        self._update(X, resp)

    def _has_implicit_prior(self):
        return bool(getattr(self, "_prior", None))

    def _log_prior(self):
        prior = self._prior
        total = 0.0
        if "weights_alpha" in prior:
            a = prior["weights_alpha"]
            total += gammaln(a.sum()) - gammaln(a).sum() + xlogy(a - 1.0, self.weights_).sum()
        if "rate_shape" in prior:
            total += sps.gamma.logpdf(
                self.means_, prior["rate_shape"], scale=1.0 / prior["rate_rate"]
            ).sum()
        return float(total)

    def _get_parameters(self):
        return (self.weights_, self.means_)

    def _set_parameters(self, params):
        self.weights_, self.means_ = params

    def _params_to_vector(self):
        return np.concatenate(
            [log_nonnegative(self.weights_), log_nonnegative(self.means_).ravel()]
        )

    def _vector_to_params(self, vec):
        k, d = self.means_.shape
        with np.errstate(over="ignore"):
            weights, rates = softmax(vec[:k]), np.exp(vec[k:]).reshape(k, d)
        if not (np.all(np.isfinite(weights)) and np.all(np.isfinite(rates))):
            return False
        self._set_parameters((weights, rates))
        return True

    def _n_parameters(self):
        k, d = self.means_.shape
        return int(k * d + k - 1)

    def _sample_component(self, k, n, rng):
        return rng.poisson(self.means_[k], size=(n, self.means_.shape[1])).astype(np.int64)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = self.missing == "model"
        # counts: scikit-learn's checks then give non-negative integer data, as for CategoricalNB
        tags.input_tags.positive_only = True
        tags.input_tags.categorical = True
        return tags
