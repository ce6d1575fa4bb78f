"""``BayesianMixtureClassifier``: one Bayesian mixture per class, NUTS draws, Bayes' rule per draw.

The Bayesian counterpart of :class:`bayesmix.em.MixtureClassifier`. Each class ``c`` gets
the posterior of its mixture ``p(x | theta_c)`` (the project's PyMC model of the family,
sampled by :func:`bayesmix.inference.sample_nuts` with nutpie). For a new row and each
posterior draw ``s`` (the classes' draws paired by index: the class posteriors are
independent, so the pairs are draws from their product),

    P_s(c | x) = P(c) p(x | theta_cs) / sum_c' P(c') p(x | theta_c's),

and :meth:`~BayesianMixtureClassifier.predict_proba` is the mean of ``P_s(c | x)`` over the
draws; :meth:`~BayesianMixtureClassifier.predict_proba_sd` and
:meth:`~BayesianMixtureClassifier.predict_proba_interval` say how much it varies with the
parameters. ``P(c)`` is fixed (the class frequencies or ``class_prior``), as in the EM
classifier. The densities come from the family's NumPy ``component_log_density`` over the
draws, a block of draws at a time.

Compile cost: PyTensor compiles one model per (spec, data shape) and process
(:func:`bayesmix.inference.get_compiled`). Every class's rows are padded to the largest
class's number of rows with rows of frequency weight 0 (they add nothing to the likelihood,
``docs/architecture.md``, sample weights), so all classes with the same number of components
share one compiled model: ten digits with K = 2 compile once, not ten times.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import logsumexp
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from bayesmix._validation import DataError, ParameterError
from bayesmix.config import ModelSpec, PriorSpec
from bayesmix.em import check_sample_weight
from bayesmix.em.classifier import resolve_class_prior
from bayesmix.families import get_family
from bayesmix.inference._fit import sample_nuts
from bayesmix.inference._tree import check_int, group_arrays

__all__ = ["BayesianMixtureClassifier"]

# draws x rows x components x features per block of the predictive densities (~16 MB)
_BLOCK_ELEMENTS = 2_000_000


class BayesianMixtureClassifier(ClassifierMixin, BaseEstimator):
    """A generative classifier: one Bayesian mixture per class, and Bayes' rule per draw.

    Parameters
    ----------
    family : str
        Component family (a name of :data:`bayesmix.families.FAMILIES`).
    n_components : int or array-like of int
        Components per class: one number for every class, or one per class in the order of
        ``classes_`` (e.g. the ``n_components_`` that BIC chose for
        :class:`bayesmix.em.MixtureClassifier`).
    covariance : str
        Covariance structure of families that have one (``ModelSpec.covariance``).
    priors : bayesmix.config.PriorSpec or None
        The priors of every class model (None: the defaults, e.g. Beta(1, 1) on each
        Bernoulli ``p`` and a flat Dirichlet on the weights).
    class_prior : array-like of shape (n_classes,) or None
        Prior class probabilities in the order of ``classes_``; None: class frequencies.
    draws, tune, chains : int
        NUTS draws and tuning steps per chain, chains per class.
    target_accept : float
    random_state : int or None
        Seeds every class's sampler (each its own seed).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    class_prior_ : ndarray of shape (n_classes,)
    n_components_ : ndarray of int, shape (n_classes,)
    draws_ : list of dict
        Per class, the posterior draws in result names, a leading sample axis of
        ``chains * draws`` (``w`` (S, K), ``p`` (S, K, D), ...).
    results_ : list of xarray.DataTree
        Per class, the tree of :func:`~bayesmix.inference.sample_nuts` (``posterior``,
        ``sample_stats``; its data hold the padding rows with weight 0).
    n_divergent_ : ndarray of int, shape (n_classes,)
        Divergent NUTS transitions per class.
    n_features_in_ : int
    """

    def __init__(
        self,
        family: str = "gaussian",
        n_components: Any = 1,
        *,
        covariance: str = "full",
        priors: PriorSpec | None = None,
        class_prior: Any = None,
        draws: int = 500,
        tune: int = 500,
        chains: int = 2,
        target_accept: float = 0.9,
        random_state: int | None = None,
    ) -> None:
        self.family = family
        self.n_components = n_components
        self.covariance = covariance
        self.priors = priors
        self.class_prior = class_prior
        self.draws = draws
        self.tune = tune
        self.chains = chains
        self.target_accept = target_accept
        self.random_state = random_state

    # -- fitting -----------------------------------------------------------------------------

    def _components(self, n_classes: int) -> np.ndarray:
        k = np.atleast_1d(np.asarray(self.n_components))
        if k.shape == (1,):
            k = np.repeat(k, n_classes)
        ok = k.shape == (n_classes,) and k.dtype.kind in "iu" and np.all(k >= 1)
        if not ok:
            raise ParameterError(
                f"n_components must be a positive int or {n_classes} positive ints (one per "
                f"class of classes_ = {self.classes_.tolist()}): got {self.n_components!r}; "
                "e.g. 2 or MixtureClassifier(..., n_components='bic').fit(X, y).n_components_"
            )
        return k.astype(int)

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> BayesianMixtureClassifier:
        """Sample the posterior of one mixture per class.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
            Class labels.
        sample_weight : array-like of shape (n_samples,), optional
            Frequency weights (a row with weight 2 counts twice).

        Returns
        -------
        self
        """
        fam = get_family(self.family)  # ParameterError for an unknown family
        if self.priors is not None and not isinstance(self.priors, PriorSpec):
            raise ParameterError(
                f"priors must be a bayesmix.config.PriorSpec or None: got "
                f"{type(self.priors).__name__}; pass e.g. PriorSpec(beta_a=2.0, beta_b=2.0)"
            )
        draws = check_int(self.draws, "draws", 1)
        tune = check_int(self.tune, "tune", 0)
        chains = check_int(self.chains, "chains", 1)
        X, y = validate_data(self, X, y, dtype=np.float64, ensure_min_samples=2)
        check_classification_targets(y)
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        n_classes = len(self.classes_)
        if n_classes < 2:
            raise ParameterError(
                f"BayesianMixtureClassifier needs at least 2 classes in y: got one class "
                f"({self.classes_[0].item()!r}); give rows of two or more classes"
            )
        ks = self._components(n_classes)
        weights = check_sample_weight(sample_weight, X.shape[0])
        if weights is None:
            weights = np.ones(X.shape[0])
        mass = np.bincount(y_idx, weights=weights, minlength=n_classes)
        counts = np.bincount(y_idx, weights=(weights > 0).astype(float), minlength=n_classes)
        for c in np.flatnonzero(counts < ks):
            raise DataError(
                f"class {self.classes_[c].item()!r} has {int(counts[c])} row(s) with positive "
                f"weight, fewer than its n_components={ks[c]}: expected at least {ks[c]}; "
                "lower n_components for that class or give it more rows"
            )
        self.class_prior_ = resolve_class_prior(self.class_prior, mass, self.classes_)
        rng = check_random_state(self.random_state)
        seeds = rng.randint(np.iinfo(np.int32).max, size=n_classes)
        n_max = int(np.bincount(y_idx).max())
        priors = self.priors if self.priors is not None else PriorSpec()
        self.draws_, self.results_, divergent = [], [], []
        for c in range(n_classes):
            rows = np.flatnonzero(y_idx == c)
            # pad to n_max rows of weight 0: one compiled model for every class of the same K
            pad = np.full(n_max - rows.size, rows[0])
            Xc = X[np.concatenate([rows, pad])]
            wc = np.concatenate([weights[rows], np.zeros(pad.size)])
            spec = ModelSpec(self.family, int(ks[c]), self.covariance, priors=priors)
            tree = sample_nuts(
                spec,
                Xc,
                draws=draws,
                tune=tune,
                chains=chains,
                random_seed=int(seeds[c]),
                target_accept=self.target_accept,
                progressbar=False,
                log_likelihood=False,
                sample_weight=wc,
            )
            params = group_arrays(tree["posterior"])
            self.draws_.append({k: v.reshape(-1, *v.shape[2:]) for k, v in params.items()})
            self.results_.append(tree)
            divergent.append(int(np.asarray(tree["sample_stats"]["diverging"]).sum()))
        self.n_components_ = ks
        self.n_divergent_ = np.asarray(divergent, dtype=int)
        self._family = fam
        return self

    # -- prediction --------------------------------------------------------------------------

    def _class_log_density(self, X: np.ndarray, params: dict) -> np.ndarray:
        """``log p(x_n | theta_s)`` of one class's mixture per draw and row, (S, N)."""
        n_draws = params["w"].shape[0]
        n, d = X.shape
        k = params["w"].shape[-1]
        step = max(1, _BLOCK_ELEMENTS // max(n * k * d, 1))
        out = np.empty((n_draws, n))
        with np.errstate(divide="ignore"):
            log_w = np.log(params["w"])
        for start in range(0, n_draws, step):
            block = {name: v[start : start + step] for name, v in params.items()}
            comp = self._family.component_log_density(X, block)  # (s, N, K)
            out[start : start + step] = logsumexp(comp + log_w[start : start + step, None], -1)
        return out

    def predict_proba_draws(self, X: Any) -> np.ndarray:
        """``P_s(c | x)`` for every posterior draw, row and class.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            NaN entries are left out of a row's densities when the family models missing
            values (``Family.supports_missing``).

        Returns
        -------
        ndarray of shape (n_draws, n_samples, n_classes)
            ``n_draws = chains * draws``; columns in the order of ``classes_``.
        """
        check_is_fitted(self, "draws_")
        finite = "allow-nan" if self._family.supports_missing else True
        X = validate_data(self, X, dtype=np.float64, reset=False, ensure_all_finite=finite)
        with np.errstate(divide="ignore"):
            log_prior = np.log(self.class_prior_)
        jll = np.stack([self._class_log_density(X, p) for p in self.draws_], axis=-1)
        jll += log_prior
        return np.exp(jll - logsumexp(jll, axis=-1, keepdims=True))

    def predict_proba(self, X: Any) -> np.ndarray:
        """Posterior mean of ``P(c | x, theta)``, shape (n_samples, n_classes)."""
        return self.predict_proba_draws(X).mean(axis=0)

    def predict_proba_sd(self, X: Any) -> np.ndarray:
        """Posterior sd of ``P(c | x, theta)``, shape (n_samples, n_classes)."""
        return self.predict_proba_draws(X).std(axis=0)

    def predict_proba_interval(self, X: Any, prob: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
        """Central posterior interval of ``P(c | x, theta)`` per row and class.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        prob : float
            Probability mass of the interval, in (0, 1).

        Returns
        -------
        lower, upper : ndarray of shape (n_samples, n_classes)
            The ``(1 - prob) / 2`` and ``(1 + prob) / 2`` quantiles over the draws.
        """
        if not isinstance(prob, float | int) or isinstance(prob, bool) or not 0 < prob < 1:
            raise ParameterError(f"prob must be a number in (0, 1): got {prob!r}; e.g. 0.9")
        draws = self.predict_proba_draws(X)
        lower, upper = np.quantile(draws, [(1 - prob) / 2, (1 + prob) / 2], axis=0)
        return lower, upper

    def predict(self, X: Any) -> np.ndarray:
        """The class of highest posterior mean probability for each row."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]
