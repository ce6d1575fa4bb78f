"""Mixtures of independent categorical items (latent class analysis), fitted by EM or MAP-EM.

Every feature ``d`` is an item with ``L_d`` levels. The data may be integer codes
``0 .. L_d - 1``, pandas categoricals or strings; the levels found in ``fit`` are kept in
``categories_`` (as scikit-learn's ``OrdinalEncoder`` does) and a level not among them at
predict time is a DataError. Component log density: ``sum_d log probs[k, d, x_d]``.

M-step with ``n_k = sum_n r_nk`` and ``c_kdl = sum_n r_nk [x_nd = l]``:

* weights: ``w_k = n_k / N`` (ML) or ``max(n_k + alpha_k - 1, 0)`` normalised
  (``prior["weights_alpha"]``, Dirichlet);
* probabilities: ``probs_kdl = (c_kdl + a_dl - 1) / (n_k + sum_l a_dl - L_d)``, the mode
  under a ``Dirichlet(a_d)`` prior. With ``prior["category_alpha"]`` given, that is used;
  otherwise ``a = 1 + smoothing``, i.e. ``smoothing`` pseudo-counts added to every level:
  ``(c_kdl + smoothing) / (n_k + L_d smoothing)`` (default 1e-3, as for
  :class:`~bayesmix.em.BernoulliMixtureEM`: no level gets probability 0). ``smoothing=0``
  is plain ML.

Missing answers (``missing="model"``): a row's density is the product over the items it
answered, and ``probs_kdl = (c_kdl + a_dl - 1) / (sum_n r_nk m_nd + sum_l a_dl - L_d)`` with
``m_nd`` = 1 where item d of row n is observed (EM with the complete data (z, observed
answers): the observed-data objective never decreases).

On binary data this is :class:`~bayesmix.em.BernoulliMixtureEM` exactly (same initial
responsibilities for the same ``random_state``; same ``smoothing``; a Bernoulli prior
``beta_a``, ``beta_b`` is ``category_alpha = [[beta_b, beta_a]] * D``).

The objective in ``lower_bounds_`` is the mean log-likelihood per sample plus, whenever a
prior or a positive smoothing is in use, the log prior density divided by N (Dirichlet
densities with their normalising constants), so EM never decreases it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import gammaln, softmax, xlogy

from bayesmix._validation import ParameterError, check_positive, check_X
from bayesmix.em._base import BaseMixtureEM, check_prior_dict, log_nonnegative, row_blocks
from bayesmix.families.categorical import encode_items, pad_probs

__all__ = ["CategoricalMixtureEM"]

PRIOR_KEYS = ("weights_alpha", "category_alpha")


class CategoricalMixtureEM(BaseMixtureEM):
    """Latent class model: a mixture of independent categorical items fitted by EM.

    Parameters
    ----------
    n_components : int, default 1
    tol : float, default 1e-3
        Stop when the objective per sample changes by less than ``tol`` (> 0).
    max_iter : int, default 100
    n_init : int, default 1
    init_params : {"random", "random_from_data", "k-means++", "kmeans"}, default "random"
        Initial responsibilities (the k-means variants work on the integer codes).
    random_state : None, int, numpy Generator or RandomState
    warm_start : bool, default False
    verbose : int, default 0
    prior : dict, optional
        ``weights_alpha`` (scalar or (K,)); ``category_alpha``: a scalar (every level of every
        item), a list of D arrays (L_d,), or an array (D, L_max) padded with zeros (the layout
        of :meth:`bayesmix.families.categorical.CategoricalFamily.resolve_priors`).
    smoothing : float, default 1e-3
        Pseudo-count added to every level when ``prior`` gives no ``category_alpha``.
    missing : {"error", "model"}, default "error"
        "model": a missing answer (NaN, None, an empty cell) is missing at random and left
        out of its row's density; the level probabilities of an item are estimated from the
        rows that answered it. "error": a missing answer is a DataError.
    accelerate : {None, "squarem"}, default None
        "squarem": SQUAREM-accelerated EM, extrapolating in log weights and log level
        probabilities (see :class:`bayesmix.em.BaseMixtureEM`).

    Attributes
    ----------
    weights_ : ndarray of shape (K,)
    category_probs_ : list of D ndarrays of shape (K, L_d)
        Level probabilities of each item in each component.
    probs_ : ndarray of shape (K, D, L_max)
        The same, padded with zeros (the result variable ``probs``).
    means_ : ndarray of shape (K, sum_d L_d)
        The same, concatenated: the means of the one-hot encoded items.
    categories_ : list of D ndarrays
        The levels of each item (codes ``0 .. L_d - 1`` stand for them).
    n_levels_ : ndarray of shape (D,)
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
        self.missing = missing
        self.accelerate = accelerate

    # ------------------------------------------------------------------ data
    def _check_X(self, X, *, fitting):
        allow_nan = self._allow_nan()
        if fitting:
            keep = self.warm_start and hasattr(self, "categories_")
            codes, levels = encode_items(
                X, self.categories_ if keep else None, allow_nan=allow_nan
            )
            self.categories_ = levels
            self.n_levels_ = np.array([len(c) for c in levels])
            self._offsets = np.concatenate([[0], np.cumsum(self.n_levels_)[:-1]]).astype(np.intp)
            return check_X(
                codes, n_components=self.n_components, min_samples=2, allow_nan=allow_nan
            )
        codes, _ = encode_items(X, self.categories_, allow_nan=allow_nan)
        if allow_nan:
            check_X(codes, allow_nan=True)  # a row with every answer missing
        return codes

    @property
    def probs_(self) -> np.ndarray:
        """Level probabilities padded with zeros, shape (K, D, L_max)."""
        return pad_probs(self.category_probs_)

    def _check_family_parameters(self, X):
        check_positive(self.smoothing, "smoothing", strict=False)
        k = self.n_components
        n_levels = self.n_levels_
        prior = check_prior_dict(self.prior, PRIOR_KEYS, "{'category_alpha': 2.0}")
        resolved = {}
        if prior.get("weights_alpha") is not None:
            a = np.asarray(prior["weights_alpha"], dtype=np.float64)
            a = np.full(k, float(a)) if a.ndim == 0 else a
            if a.shape != (k,) or not np.all(np.isfinite(a)) or np.any(a <= 0):
                raise ParameterError(
                    f"prior['weights_alpha'] is invalid: expected a positive scalar or shape "
                    f"({k},), got {np.asarray(prior['weights_alpha']).tolist()}; pass positive "
                    "values"
                )
            resolved["weights_alpha"] = a
        alpha = prior.get("category_alpha")
        if alpha is not None:
            resolved["category_alpha"] = self._item_alphas(alpha, n_levels)
        elif self.smoothing > 0:
            resolved["category_alpha"] = [np.full(n, 1.0 + self.smoothing) for n in n_levels]
        self._prior = resolved

    @staticmethod
    def _item_alphas(alpha, n_levels):
        def bad(got):
            return ParameterError(
                "prior['category_alpha'] is invalid: expected a positive scalar, a list of one "
                f"positive array per item with lengths {n_levels.tolist()}, or a (D, L_max) "
                f"array (zeros beyond each item's levels), got {got}; pass positive values"
            )

        if np.ndim(alpha) == 0:
            out = [np.full(n, float(alpha)) for n in n_levels]
        elif isinstance(alpha, (list, tuple)) and len(alpha) == len(n_levels):
            out = [
                np.broadcast_to(np.asarray(a, float), (n,)).copy()
                for a, n in zip(alpha, n_levels, strict=True)
            ]
        else:
            arr = np.asarray(alpha, dtype=np.float64)
            if arr.ndim != 2 or arr.shape[0] != len(n_levels) or arr.shape[1] < n_levels.max():
                raise bad(np.shape(alpha))
            out = [arr[d, :n].copy() for d, n in enumerate(n_levels)]
        for a in out:
            if not np.all(np.isfinite(a)) or np.any(a <= 0):
                raise bad([np.asarray(a).tolist() for a in out])
        return out

    def _has_implicit_prior(self):
        return bool(getattr(self, "_prior", None))

    # ------------------------------------------------------------------ EM pieces
    def _estimate_log_prob_block(self, X, out):
        if self._missing_now:  # a missing answer reads the last row of the table: zeros
            blank = self._log_table.shape[0] - 1
            index = np.where(np.isnan(X), blank, np.nan_to_num(X) + self._offsets)
            index = index.astype(np.intp)
        else:
            index = X.astype(np.intp) + self._offsets  # (n, D) rows of the stacked table
        out[:] = self._log_table[index].sum(axis=1)

    def _prepare(self):
        table = np.concatenate([p.T for p in self.category_probs_], axis=0)  # (sum L, K)
        with np.errstate(divide="ignore"):
            # a last row of zeros: log 1 for a missing answer (missing="model")
            self._log_table = np.vstack([np.log(table), np.zeros((1, table.shape[1]))])

    def _update(self, X, resp):
        k, n_total = resp.shape[1], int(self.n_levels_.sum())
        nk = np.zeros(k)
        counts = np.zeros((k, n_total))
        seen = np.zeros((k, X.shape[1])) if self._missing_now else None
        for rows in row_blocks(X.shape[0], self._block_size(X.shape[1])):
            r = resp[rows]
            # with missing answers, one more column (theirs), left out of the counts
            onehot = np.zeros((r.shape[0], n_total + (seen is not None)))
            block = X[rows]
            if seen is None:
                index = block.astype(np.intp) + self._offsets
            else:
                observed = ~np.isnan(block)
                index = np.where(observed, np.nan_to_num(block) + self._offsets, n_total)
                index = index.astype(np.intp)
                seen += r.T @ observed.astype(np.float64)
            onehot[np.arange(r.shape[0])[:, None], index] = 1.0
            nk += r.sum(axis=0)
            counts += r.T @ (onehot if seen is None else onehot[:, :n_total])
        nk = nk + 10 * np.finfo(np.float64).eps
        prior = self._prior
        if "weights_alpha" in prior:
            w = np.maximum(nk + prior["weights_alpha"] - 1.0, 0.0)
        else:
            w = nk
        self.weights_ = w / w.sum()
        probs = []
        for d, start in enumerate(self._offsets):
            c = counts[:, start : start + self.n_levels_[d]]
            # the rows that answered item d (all rows without missing answers)
            n_d = nk if seen is None else seen[:, d] + 10 * np.finfo(np.float64).eps
            if "category_alpha" in prior:
                # the Dirichlet mode: (c + a - 1) normalised; with a < 1 a level with (almost)
                # no counts sits on the boundary (clipped at 0, the rest renormalised, as the
                # weights are), a row with nothing left is uniform
                a = prior["category_alpha"][d]
                p = (c + a - 1.0) / (n_d[:, None] + a.sum() - len(a))
                if np.any(p < 0):
                    p = np.maximum(c + a - 1.0, 0.0)
                    total = p.sum(axis=1, keepdims=True)
                    p = np.where(total > 0, p / np.where(total > 0, total, 1.0), 1.0 / len(a))
            else:
                p = c / n_d[:, None]
            probs.append(np.clip(p, 0.0, 1.0))
        self.category_probs_ = probs
        self.means_ = np.concatenate(probs, axis=1)
        self._prepare()

    def _initialize(self, X, resp):
        self._update(X, resp)

    def _m_step(self, X, resp):
        self._update(X, resp)

    def _log_prior(self):
        prior = self._prior
        total = 0.0
        if "weights_alpha" in prior:
            a = prior["weights_alpha"]
            total += gammaln(a.sum()) - gammaln(a).sum() + xlogy(a - 1.0, self.weights_).sum()
        if "category_alpha" in prior:
            for a, p in zip(prior["category_alpha"], self.category_probs_, strict=True):
                norm = gammaln(a.sum()) - gammaln(a).sum()
                total += p.shape[0] * norm + xlogy(a - 1.0, p).sum()
        return float(total)

    def _get_parameters(self):
        return (self.weights_, [p.copy() for p in self.category_probs_])

    def _set_parameters(self, params):
        self.weights_, probs = params
        self.category_probs_ = list(probs)
        self.means_ = np.concatenate(self.category_probs_, axis=1)
        self._prepare()

    def _params_to_vector(self):
        # log probabilities (the map back normalises each item's row: only ratios matter)
        parts = [self.weights_] + [p.ravel() for p in self.category_probs_]
        return log_nonnegative(np.concatenate(parts))

    def _vector_to_params(self, vec):
        k = len(self.weights_)
        ends = k + np.cumsum([k * n for n in self.n_levels_])
        log_w, *items = np.split(vec, np.concatenate([[k], ends[:-1]]))
        weights = softmax(log_w)
        probs = [softmax(x.reshape(k, -1), axis=1) for x in items]
        if not all(np.all(np.isfinite(a)) for a in [weights, *probs]):
            return False
        self._set_parameters((weights, probs))
        return True

    def _n_parameters(self):
        k = len(self.weights_)
        return int(k * int((self.n_levels_ - 1).sum()) + k - 1)

    def _sample_component(self, k, n, rng):
        cols = [rng.choice(len(p[k]), size=n, p=p[k] / p[k].sum()) for p in self.category_probs_]
        return np.stack(cols, axis=1).astype(np.int64) if cols else np.zeros((n, 0), np.int64)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = self.missing == "model"
        tags.input_tags.positive_only = True
        tags.input_tags.categorical = True
        tags.input_tags.string = True
        return tags
