"""Mixtures of independent Bernoulli vectors (binary data), fitted by EM or MAP-EM.

Component log density: ``log p(x | p_k) = sum_d x_d log p_kd + (1 - x_d) log(1 - p_kd)``,
summed over the features before the log-sum-exp over components, computed for a block of
rows with one matrix product: ``X @ (log p - log(1-p)).T + sum_d log(1 - p_kd)``.

M-step with ``n_k = sum_n r_nk`` and ``c_kd = sum_n r_nk x_nd``:

* weights: ``w_k = n_k / N`` (ML) or ``max(n_k + alpha_k - 1, 0)`` normalised
  (``prior["weights_alpha"]``, Dirichlet);
* probabilities: ``p_kd = (c_kd + a - 1) / (n_k + a + b - 2)``, the mode under a
  ``Beta(a, b)`` prior on every ``p_kd``. With ``prior["beta_a"]``/``prior["beta_b"]`` given,
  those are used; otherwise ``a = b = 1 + smoothing``, i.e. ``smoothing`` pseudo-counts added
  to both outcomes: ``p_kd = (c_kd + smoothing) / (n_k + 2 smoothing)``. The default
  ``smoothing=1e-3`` keeps every p strictly inside (0, 1), so a pixel never seen "on" in a
  component does not give a log-likelihood of -inf for new data. ``smoothing=0`` is plain ML.

Missing values (``missing="model"``): a NaN entry is missing at random. A row's log density
is the sum over its observed features, ``(X0 @ logit.T) + M @ log(1 - p).T`` with ``X0`` the
data with 0 for NaN and ``M`` the 0/1 mask of observed entries, and the M-step counts each
feature over the rows where it is observed: ``p_kd = (sum_n r_nk x_nd m_nd + a - 1) /
(sum_n r_nk m_nd + a + b - 2)``. That is EM with the complete data (z, observed x), so the
observed-data objective never decreases. Without NaN the computation is the one above.

Data: with ``binarize`` (default 0.0, as ``sklearn.naive_bayes.BernoulliNB``) every value
above the threshold counts as 1 and every other value as 0, in ``fit`` and in every method
that takes X; binary 0/1 data are unchanged by the default. ``binarize=None`` takes the data as
they are and requires them to be binary (DataError otherwise).

The objective in ``lower_bounds_`` is the mean log-likelihood per sample plus, whenever a
prior or a positive smoothing is in use, the log prior density divided by N (Dirichlet and
Beta densities with their normalising constants), so EM never decreases it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats as sps
from scipy.special import expit, gammaln, softmax, xlogy

from bayesmix._validation import ParameterError, check_positive, check_X
from bayesmix.em._base import BaseMixtureEM, check_prior_dict, log_nonnegative, row_blocks

__all__ = ["BernoulliMixtureEM"]

PRIOR_KEYS = ("weights_alpha", "beta_a", "beta_b")


class BernoulliMixtureEM(BaseMixtureEM):
    """Mixture of multivariate Bernoulli distributions fitted by EM.

    Parameters
    ----------
    n_components : int, default 1
    tol : float, default 1e-3
        Stop when the objective per sample changes by less than ``tol`` (> 0).
    max_iter : int, default 100
    n_init : int, default 1
    init_params : {"random", "random_from_data", "k-means++", "kmeans"}, default "random"
        Initial responsibilities, as in :class:`bayesmix.em.GaussianMixtureEM`.
    random_state : None, int, numpy Generator or RandomState
    warm_start : bool, default False
    verbose : int, default 0
    prior : dict, optional
        ``weights_alpha`` (scalar or (K,)), ``beta_a``, ``beta_b`` (scalars or (D,)).
    smoothing : float, default 1e-3
        Pseudo-count added to both outcomes when ``prior`` gives no Beta parameters (see
        the module docstring). 0 gives maximum likelihood.
    binarize : float or None, default 0.0
        Threshold, as in ``sklearn.naive_bayes.BernoulliNB``: values ``> binarize`` become 1,
        the others 0 (0/1 data are unchanged). None: the data must already be binary (0/1 or
        booleans), else DataError.
    missing : {"error", "model"}, default "error"
        "model": NaN entries are missing at random and left out of each row's density (see
        the module docstring), in ``fit`` and in every method that takes X. "error": NaN is
        a DataError.
    accelerate : {None, "squarem"}, default None
        "squarem": SQUAREM-accelerated EM, extrapolating in log weights and logits of the
        probabilities (see :class:`bayesmix.em.BaseMixtureEM`).

    Attributes
    ----------
    weights_ : ndarray of shape (K,)
    means_ : ndarray of shape (K, D)
        Success probabilities ``p_kd`` (``probs_`` is the same array).
    converged_, n_iter_, lower_bound_, lower_bounds_, n_features_in_
        As in :class:`bayesmix.em.GaussianMixtureEM`.
    """

    _init_choices = ("random", "random_from_data", "k-means++", "kmeans")
    _supports_missing = True

    def __init__(
        self,
        n_components: int = 1,
        *,
        tol: float = 1e-3,
        max_iter: int = 100,
        n_init: int = 1,
        init_params: str = "random",
        random_state: Any = None,
        warm_start: bool = False,
        verbose: int = 0,
        prior: dict | None = None,
        smoothing: float = 1e-3,
        binarize: float | None = 0.0,
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
        self.smoothing = smoothing
        self.binarize = binarize
        self.missing = missing
        self.accelerate = accelerate

    @property
    def probs_(self) -> np.ndarray:
        """Alias of ``means_``: success probabilities, shape (K, D)."""
        return self.means_

    def _check_X(self, X, *, fitting):
        threshold = self._threshold()
        allow_nan = self._allow_nan()
        if threshold is not None:
            # finite numbers first (the project's messages), then the 0/1 data they mean
            X = check_X(X, min_samples=2 if fitting else 1, allow_nan=allow_nan)
            binary = (X > threshold).astype(np.float64)
            X = np.where(np.isnan(X), np.nan, binary) if allow_nan else binary
        if fitting:
            return check_X(
                X, n_components=self.n_components, binary=True, min_samples=2, allow_nan=allow_nan
            )
        return check_X(X, binary=True, allow_nan=allow_nan)

    def _threshold(self) -> float | None:
        if self.binarize is None:
            return None
        if isinstance(self.binarize, bool) or not isinstance(
            self.binarize, (int, float, np.integer, np.floating)
        ):
            raise ParameterError(
                f"binarize has the wrong type: expected a number or None, got "
                f"{type(self.binarize).__name__}; pass e.g. binarize=0.5 or None"
            )
        if not np.isfinite(self.binarize):
            raise ParameterError(
                f"binarize is not finite: expected a finite threshold or None, got "
                f"{self.binarize}; pass e.g. binarize=0.5 or None"
            )
        return float(self.binarize)

    def _check_family_parameters(self, X):
        check_positive(self.smoothing, "smoothing", strict=False)
        k, d = self.n_components, X.shape[1]
        prior = check_prior_dict(self.prior, PRIOR_KEYS, "{'beta_a': 2.0, 'beta_b': 2.0}")

        def vector(key, length):
            value = np.asarray(prior[key], dtype=np.float64)
            if value.ndim == 0:
                value = np.full(length, float(value))
            if value.shape != (length,) or not np.all(np.isfinite(value)) or np.any(value <= 0):
                raise ParameterError(
                    f"prior['{key}'] is invalid: expected a positive scalar or shape ({length},),"
                    f" got {np.asarray(prior[key]).tolist()}; pass positive values"
                )
            return value

        resolved = {}
        if prior.get("weights_alpha") is not None:
            resolved["weights_alpha"] = vector("weights_alpha", k)
        a, b = prior.get("beta_a"), prior.get("beta_b")
        if a is not None or b is not None:
            resolved["beta_a"] = vector("beta_a", d) if a is not None else np.ones(d)
            resolved["beta_b"] = vector("beta_b", d) if b is not None else np.ones(d)
        elif self.smoothing > 0:
            resolved["beta_a"] = resolved["beta_b"] = np.full(d, 1.0 + self.smoothing)
        self._prior = resolved

    def _has_implicit_prior(self):
        return bool(getattr(self, "_prior", None))

    # ------------------------------------------------------------------ EM pieces
    def _estimate_log_prob_block(self, X, out):
        prep = self._estep
        if self._missing_now:
            observed = ~np.isnan(X)
            X = np.where(observed, X, 0.0)
            ones = observed.astype(X.dtype)
            np.matmul(X, prep["logit_t"], out=out)
            out += ones @ prep["log_q_t"]
        else:
            ones = 1.0
            np.matmul(X, prep["logit_t"], out=out)
            out += prep["log_q_sum"]
        if prep["impossible_t"] is not None:
            # x_d = 1 where p_kd = 0, or x_d = 0 where p_kd = 1: probability exactly 0
            hits = X @ prep["impossible_t"][0] + (ones - X) @ prep["impossible_t"][1]
            out[hits > 0] = -np.inf

    def _prepare(self):
        """Cache log p - log(1-p) and sum_d log(1-p) for the one-product E-step."""
        p = np.asarray(self.means_, dtype=np.float64)
        zero, one = p <= 0, p >= 1
        inside = ~(zero | one)
        q = np.where(inside, p, 0.5)
        log_p, log_q = np.log(q), np.log1p(-q)
        # a p of exactly 0 or 1 contributes log 1 = 0 for the possible value (0 * log 0 = 0);
        # the impossible value is marked separately (no inf * 0 = nan in the product)
        log_p = np.where(inside, log_p, 0.0)
        log_q = np.where(inside, log_q, 0.0)
        impossible = None
        if not inside.all():
            impossible = (
                np.ascontiguousarray(zero.T.astype(np.float64)),
                np.ascontiguousarray(one.T.astype(np.float64)),
            )
        self._estep = {
            "logit_t": np.ascontiguousarray((log_p - log_q).T),
            "log_q_sum": log_q.sum(axis=1),
            "log_q_t": np.ascontiguousarray(log_q.T),
            "impossible_t": impossible,
        }

    def _stats(self, X, resp):
        """``n_k``, ``c_kd = sum_n r_nk x_nd`` and the per-feature counts of observed entries.

        The last is ``n_k`` broadcast to (K, D) without missing values, else
        ``sum_n r_nk m_nd`` (``m`` the observed mask).
        """
        k, d = resp.shape[1], X.shape[1]
        eps = 10 * np.finfo(np.float64).eps
        nk = np.zeros(k)
        counts = np.zeros((k, d))
        seen = np.zeros((k, d)) if self._missing_now else None
        for rows in row_blocks(X.shape[0], self._block_size(d)):
            r = resp[rows]
            nk += r.sum(axis=0)
            if seen is None:
                counts += r.T @ X[rows]
            else:
                observed = ~np.isnan(X[rows])
                counts += r.T @ np.where(observed, X[rows], 0.0)
                seen += r.T @ observed.astype(np.float64)
        nk += eps
        return nk, counts, (nk[:, None] if seen is None else seen + eps)

    def _update(self, X, resp, use_prior):
        nk, counts, seen = self._stats(X, resp)
        prior = self._prior if use_prior else {}
        if "weights_alpha" in prior:
            w = np.maximum(nk + prior["weights_alpha"] - 1.0, 0.0)
        else:
            w = nk
        self.weights_ = w / w.sum()
        if "beta_a" in prior:
            a, b = prior["beta_a"], prior["beta_b"]
            p = (counts + a - 1.0) / (seen + a + b - 2.0)
        else:
            p = counts / seen
        self.means_ = np.clip(p, 0.0, 1.0)
        self._prepare()

    def _initialize(self, X, resp):
        self._update(X, resp, use_prior=True)

    def _m_step(self, X, resp):
        self._update(X, resp, use_prior=True)

    def _log_prior(self):
        prior = self._prior
        total = 0.0
        if "weights_alpha" in prior:
            a = prior["weights_alpha"]
            total += gammaln(a.sum()) - gammaln(a).sum() + xlogy(a - 1.0, self.weights_).sum()
        if "beta_a" in prior:
            total += sps.beta.logpdf(self.means_, prior["beta_a"], prior["beta_b"]).sum()
        return float(total)

    def _get_parameters(self):
        return (self.weights_, self.means_)

    def _set_parameters(self, params):
        self.weights_, self.means_ = params
        self._prepare()

    def _params_to_vector(self):
        # logits; a probability of exactly 0 or 1 (smoothing=0) gives -inf or +inf
        logits = log_nonnegative(self.means_) - log_nonnegative(1.0 - self.means_)
        return np.concatenate([log_nonnegative(self.weights_), logits.ravel()])

    def _vector_to_params(self, vec):
        k, d = self.means_.shape
        weights, probs = softmax(vec[:k]), expit(vec[k:]).reshape(k, d)
        if not (np.all(np.isfinite(weights)) and np.all(np.isfinite(probs))):
            return False
        self._set_parameters((weights, probs))
        return True

    def _n_parameters(self):
        k, d = self.means_.shape
        return int(k * d + k - 1)

    def _sample_component(self, k, n, rng):
        return (rng.uniform(size=(n, self.means_.shape[1])) < self.means_[k]).astype(np.int64)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = self.missing == "model"
        return tags
