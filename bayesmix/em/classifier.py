"""``MixtureClassifier``: one mixture per class, classified by Bayes' rule.

The generative classifier of the lecture behind bayesmix (one Bernoulli mixture per digit),
for every family: ``p(x | c)`` is a mixture fitted by EM to the rows of class ``c``,
``P(c)`` the class frequencies (or given), and

    P(c | x) = P(c) p(x | c) / sum_c' P(c') p(x | c').

With one full-covariance Gaussian component per class this is quadratic discriminant
analysis (with maximum-likelihood covariances); with ``n_components="bic"`` the number of
components of each class is chosen by BIC over 1..``max_components``, as mclust's
``MclustDA`` does.

BIC and columns constant within a class. A column that takes one value in every row of a
class (the border pixels of a digit: 17 to 28 of the 64 pixels of each binarised digit) has
the same estimate in every component of that class, whatever K (to within the smoothing
of a Bernoulli mixture), and the fit is the one of the model in which the components share
that column's parameters. BIC is therefore computed for that model (the column's
parameters counted once, as in the variable-selection models of Raftery & Dean 2006, not
once per component): its log-likelihood is the fit's, its parameter count
``n_parameters(K, D_varying) + n_parameters(1, D_constant)`` (``Family.n_parameters``).
Counting them K times charged every extra component of a digit about 100 BIC units (20
pixels times log 125) for pixels that say nothing about the components. On the digits
(``validation/classifier_digits.py``) it gives 2 to 7 of the 10 digits one more component
and raises the held-out accuracy from 0.922 to 0.939 (``smoothing=1e-3``) and from 0.933 to
0.937 (``smoothing=0.5``, chosen by cross-validation). A column is constant when its observed
values (rows of positive weight) are all equal, as given to ``fit`` (before a family's own
transformation, e.g. Bernoulli's ``binarize``).

Missing values (``missing="model"``, passed to every class mixture): a NaN entry is missing
at random; ``p(x | c)`` is the class mixture's density of the row's observed entries, so
:meth:`MixtureClassifier.predict_proba` of a partly hidden row uses what is visible, and
:meth:`MixtureClassifier.impute` fills the hidden entries with their conditional
expectation ``E[x_m | x_o] = sum_c sum_k P(c, k | x_o) E[x_m | x_o, z = k, c]``.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from scipy.special import logsumexp
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from bayesmix._validation import DataError, ParameterError

__all__ = ["MixtureClassifier"]


def _estimator_class(family: str):
    """The EM estimator of a family (``Family.em_class``; ParameterError for an unknown name)."""
    import bayesmix.em as em
    from bayesmix.families import get_family

    return getattr(em, get_family(family).em_class)


def resolve_class_prior(class_prior: Any, mass: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """The class probabilities: ``class_prior`` normalised, or the class masses' shares.

    ``mass`` (n_classes,): rows (or weight sums) per class, in the order of ``classes``.
    Shared by :class:`MixtureClassifier` and ``bayesmix.inference.BayesianMixtureClassifier``.
    """
    if class_prior is None:
        return mass / mass.sum()
    prior = np.asarray(class_prior, dtype=float).ravel()
    if prior.shape != mass.shape or np.any(~np.isfinite(prior)) or np.any(prior < 0):
        raise ParameterError(
            f"class_prior must hold {mass.size} non-negative numbers (one per class of "
            f"classes_ = {list(classes)}): got {class_prior!r}; or pass None"
        )
    if prior.sum() <= 0:
        raise ParameterError("class_prior sums to 0: give at least one positive number")
    return prior / prior.sum()


class MixtureClassifier(ClassifierMixin, BaseEstimator):
    """A generative classifier: one mixture of any family per class, and Bayes' rule.

    Parameters
    ----------
    family : str
        Component family of every class mixture (a name of :data:`bayesmix.families.FAMILIES`).
    n_components : int or "bic"
        Components per class; ``"bic"``: chosen per class by BIC over
        ``1..max_components`` (at most the class's number of rows).
    covariance_type : str
        Passed to families with covariances (Gaussian, Student-t); ignored by the others.
    reg_covar : float
        Added to covariance diagonals (families with covariances; ignored by the others).
    max_components : int
        Largest K tried by ``n_components="bic"``.
    class_prior : array-like of shape (n_classes,) or None
        Prior class probabilities in the order of ``classes_`` (normalised here); None: the
        class frequencies of the training data (with ``sample_weight``, weighted).
    n_init, max_iter, tol : int, int, float
        EM settings of each class mixture.
    mixture_params : dict or None
        Further parameters of the family's EM estimator (e.g. ``{"smoothing": 0.01}`` for
        Bernoulli, ``{"prior": {...}}`` for MAP-EM).
    missing : {"error", "model"}
        Passed to every class mixture. ``"model"``: NaN entries are missing at random, in
        ``fit`` and in every method that takes X (a row's class densities are those of its
        observed entries; :meth:`impute` fills the NaN). ``"error"``: NaN is refused.
    random_state : int, numpy Generator or None
        Seeds every class mixture (each its own stream).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    class_prior_ : ndarray of shape (n_classes,)
    estimators_ : list of fitted EM estimators, one per class
    n_components_ : ndarray of int, shape (n_classes,)
    bic_ : ndarray of shape (n_classes, max_components) or None
        ``n_components="bic"``: each class's BIC per K (NaN where K was not tried), with the
        columns constant within the class counted once (module docstring); equal to the
        estimator's own ``bic`` when no column is constant.
    n_iter_ : ndarray of int, shape (n_classes,)
        EM iterations of each class's chosen mixture.
    n_features_in_ : int
    """

    def __init__(
        self,
        family: str = "gaussian",
        n_components: int | str = 1,
        *,
        covariance_type: str = "full",
        reg_covar: float = 1e-6,
        max_components: int = 5,
        class_prior: Any = None,
        n_init: int = 1,
        max_iter: int = 100,
        tol: float = 1e-3,
        mixture_params: dict | None = None,
        missing: str = "error",
        random_state: Any = None,
    ) -> None:
        self.family = family
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.reg_covar = reg_covar
        self.max_components = max_components
        self.class_prior = class_prior
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.mixture_params = mixture_params
        self.missing = missing
        self.random_state = random_state

    # -- building the class mixtures -------------------------------------------------------

    def _make(self, k: int, seed: int):
        cls = _estimator_class(self.family)
        accepted = set(cls().get_params())
        params: dict[str, Any] = {
            "n_components": k,
            "n_init": self.n_init,
            "max_iter": self.max_iter,
            "tol": self.tol,
            "random_state": seed,
        }
        for name in ("covariance_type", "reg_covar", "missing"):
            if name in accepted:
                params[name] = getattr(self, name)
        extra = dict(self.mixture_params or {})
        unknown = sorted(set(extra) - accepted)
        if unknown:
            raise ParameterError(
                f"mixture_params: {unknown} are not parameters of {cls.__name__}: expected "
                f"some of {sorted(accepted - set(params))}; remove them"
            )
        params.update(extra)
        return cls(**params)

    def _check_n_components(self) -> None:
        k = self.n_components
        if isinstance(k, str):
            if k != "bic":
                raise ParameterError(
                    f"n_components must be a positive int or 'bic': got {k!r}; e.g. 2 or 'bic'"
                )
            if not isinstance(self.max_components, int | np.integer) or self.max_components < 1:
                raise ParameterError(
                    f"max_components must be a positive int: got {self.max_components!r}"
                )
        elif not isinstance(k, int | np.integer) or isinstance(k, bool) or k < 1:
            raise ParameterError(
                f"n_components must be a positive int or 'bic': got {k!r}; e.g. 2 or 'bic'"
            )

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> MixtureClassifier:
        """Fit one mixture per class.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
            Class labels (any hashable values).
        sample_weight : array-like of shape (n_samples,), optional
            Frequency weights (a row with weight 2 counts twice), passed to each class
            mixture and used in the class frequencies.

        Returns
        -------
        self
        """
        self._check_n_components()
        X, y = validate_data(
            self, X, y, dtype=None, ensure_min_samples=2, ensure_all_finite=self._finite()
        )
        check_classification_targets(y)
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        n_classes = len(self.classes_)
        if n_classes < 2:
            raise ParameterError(
                f"MixtureClassifier needs at least 2 classes in y: got one class "
                f"({self.classes_[0].item()!r}); give rows of two or more classes"
            )
        if sample_weight is not None:
            from bayesmix.em._base import check_sample_weight

            sample_weight = check_sample_weight(sample_weight, X.shape[0])
        counts = np.bincount(y_idx, minlength=n_classes).astype(float)
        if sample_weight is not None:
            mass = np.bincount(y_idx, weights=sample_weight, minlength=n_classes)
        else:
            mass = counts
        if np.any(mass <= 0):
            empty = self.classes_[mass <= 0].tolist()
            raise ParameterError(
                f"classes {empty} have a total sample_weight of 0: expected a positive weight "
                "for every class in y; drop their rows or give them weight"
            )
        self.class_prior_ = resolve_class_prior(self.class_prior, mass, self.classes_)
        rng = check_random_state(self.random_state)
        seeds = rng.randint(np.iinfo(np.int32).max, size=n_classes)
        fixed = None if self.n_components == "bic" else int(self.n_components)
        k_max = int(self.max_components) if fixed is None else fixed
        self.estimators_, ks = [], []
        self.bic_ = None if fixed is not None else np.full((n_classes, k_max), np.nan)
        short = np.flatnonzero(counts < fixed) if fixed is not None else []
        if len(short):  # checked before any class is fitted
            c = short[0]
            raise DataError(
                f"class {self.classes_[c].item()!r} has {int(counts[c])} row(s), fewer than "
                f"n_components={fixed}: expected at least {fixed} rows per class; lower "
                "n_components, use 'bic', or give the class more rows"
            )
        for c in range(n_classes):
            rows = y_idx == c
            Xc = X[rows]
            wc = None if sample_weight is None else sample_weight[rows]
            if fixed is not None:
                est = self._make(fixed, int(seeds[c])).fit(Xc, sample_weight=wc)
            else:
                est, est_warnings = None, []
                for k in range(1, min(k_max, int(counts[c])) + 1):
                    # the warnings of the candidates not chosen (e.g. degenerate components
                    # of a too-large K) are no concern of the fit: only the chosen one's
                    with warnings.catch_warnings(record=True) as caught:
                        warnings.simplefilter("always")
                        cand = self._make(k, int(seeds[c])).fit(Xc, sample_weight=wc)
                    self.bic_[c, k - 1] = self._class_bic(cand, Xc, wc)
                    if est is None or self.bic_[c, k - 1] < self.bic_[c, est.n_components - 1]:
                        est, est_warnings = cand, caught
                for w in est_warnings:
                    warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            self.estimators_.append(est)
            ks.append(est.n_components)
        self.n_components_ = np.asarray(ks, dtype=int)
        self.n_iter_ = np.asarray([est.n_iter_ for est in self.estimators_], dtype=int)
        return self

    def _finite(self) -> bool | str:
        """scikit-learn's ``ensure_all_finite``: NaN passes only with ``missing="model"``."""
        if self.missing not in ("error", "model"):
            raise ParameterError(
                f"missing must be 'error' or 'model': got {self.missing!r}; pass "
                "missing='model' to treat NaN entries as missing values"
            )
        return "allow-nan" if self.missing == "model" else True

    def _class_bic(self, est, Xc: np.ndarray, wc: np.ndarray | None) -> float:
        """BIC of a class mixture with the columns constant in the class counted once.

        ``-2 log L + (n_parameters(K, D_varying) + n_parameters(1, D_constant)) log n``
        (module docstring); the estimator's own ``bic`` when no column is constant.
        """
        bic = float(est.bic(Xc, sample_weight=wc))
        rows = slice(None) if wc is None else wc > 0
        values = np.asarray(Xc[rows], dtype=np.float64)
        with warnings.catch_warnings():  # a column with no observed value: "All-NaN slice"
            warnings.simplefilter("ignore", RuntimeWarning)
            low, high = np.nanmin(values, axis=0), np.nanmax(values, axis=0)
        constant = ~(low < high)  # one value, or no observed value (NaN)
        n_const = int(constant.sum())
        if n_const == 0:
            return bic
        from bayesmix.families import get_family

        fam = get_family(self.family)
        k, d = int(est.n_components), values.shape[1]
        cov = getattr(est, "covariance_type", None)
        full = fam.n_parameters(k, d, cov)
        varying = k - 1 if n_const == d else fam.n_parameters(k, d - n_const, cov)
        shared = varying + fam.n_parameters(1, n_const, cov)
        n = values.shape[0] if wc is None else float(wc.sum())
        return bic - (full - shared) * float(np.log(n))

    # -- prediction --------------------------------------------------------------------------

    def _joint_log_likelihood(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "estimators_")
        X = validate_data(self, X, dtype=None, reset=False, ensure_all_finite=self._finite())
        with np.errstate(divide="ignore"):
            log_prior = np.log(self.class_prior_)
        return log_prior + np.stack([est.score_samples(X) for est in self.estimators_], axis=1)

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """``log P(c | x)`` per row and class (columns in the order of ``classes_``)."""
        jll = self._joint_log_likelihood(X)
        return jll - logsumexp(jll, axis=1, keepdims=True)

    def predict_proba(self, X: Any) -> np.ndarray:
        """``P(c | x)`` per row and class (columns in the order of ``classes_``)."""
        return np.exp(self.predict_log_proba(X))

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each row."""
        jll = self._joint_log_likelihood(X)
        return self.classes_[np.argmax(jll, axis=1)]

    def score_samples(self, X: Any) -> np.ndarray:
        """``log p(x) = log sum_c P(c) p(x | c)`` per row."""
        return logsumexp(self._joint_log_likelihood(X), axis=1)

    def impute(self, X: Any, y: Any = None) -> np.ndarray:
        """X with every NaN replaced by its conditional expectation given the observed entries.

        ``E[x_m | x_o] = sum_c sum_k P(c, k | x_o) E[x_m | x_o, z = k, c]``, where
        ``P(c, k | x_o) = P(c | x_o) P(k | x_o, c)`` comes from the class mixtures' densities
        of the observed entries and ``E[x_m | x_o, z = k, c]`` from the family
        (``Family.conditional_fill``: the component's mean for families with independent
        features, e.g. ``p_km`` for Bernoulli; ``mu_m + S_mo S_oo^-1 (x_o - mu_o)`` for a
        full-covariance Gaussian). Needs ``missing="model"``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            NaN marks a missing entry; the observed entries are returned unchanged.
        y : label, array-like of shape (n_samples,) or None
            The known class of every row (one label: all rows): only that class's mixture
            completes the row. None: the classes are weighed by ``P(c | x_o)``.

        Returns
        -------
        ndarray of shape (n_samples, n_features)
            float64, with no NaN.
        """
        check_is_fitted(self, "estimators_")
        if self.missing != "model":
            raise ParameterError(
                f"impute needs missing values modelled: expected missing='model', got "
                f"missing={self.missing!r}; refit with MixtureClassifier(..., missing='model')"
            )
        from bayesmix.families import get_family

        X = validate_data(self, X, dtype=np.float64, reset=False, ensure_all_finite="allow-nan")
        n, d = X.shape
        if y is None:
            class_proba = self.predict_proba(X)
        else:
            idx = self._class_index(y, n)
            class_proba = np.zeros((n, len(self.classes_)))
            class_proba[np.arange(n), idx] = 1.0
        fam = get_family(self.family)
        out = np.zeros((n, d))
        for c, est in enumerate(self.estimators_):
            rows = np.flatnonzero(class_proba[:, c] > 0)
            if rows.size == 0:
                continue
            Xc = X[rows]
            resp = est.predict_proba(Xc)  # P(k | x_o, c), (n_c, K)
            k = est.n_components
            # every component as one "draw" of conditional_fill: z[s, n] = s
            params = {
                name: np.broadcast_to(value, (k, *np.shape(value)))
                for name, value in fam.em_point(est, d).items()
            }
            z = np.broadcast_to(np.arange(k)[:, None], (k, rows.size))
            fills = fam.conditional_fill(params, Xc, z)  # E[x | x_o, z = k, c], (K, n_c, D)
            out[rows] += class_proba[rows, c, None] * np.einsum("nk,knd->nd", resp, fills)
        return np.where(np.isnan(X), out, X)

    def _class_index(self, y: Any, n_rows: int) -> np.ndarray:
        """Positions in ``classes_`` of one label (every row) or of one label per row."""
        labels = np.atleast_1d(np.asarray(y, dtype=self.classes_.dtype))
        if np.ndim(y) == 0:
            labels = np.repeat(labels, n_rows)
        if labels.shape != (n_rows,):
            raise DataError(
                f"y has the wrong shape: expected one label or ({n_rows},) (one per row of X), "
                f"got {labels.shape}; pass one class label per row"
            )
        pos = np.clip(np.searchsorted(self.classes_, labels), 0, len(self.classes_) - 1)
        bad = self.classes_[pos] != labels
        if np.any(bad):
            raise ParameterError(
                f"unknown class {labels[bad][0].item()!r}: expected one of "
                f"{self.classes_.tolist()}; pass labels seen in fit"
            )
        return pos

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = self.missing == "model"
        return tags

    # -- generation --------------------------------------------------------------------------

    def sample(self, n_samples: int = 1, y: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """New rows from the class mixtures.

        Parameters
        ----------
        n_samples : int
            Rows to draw (when ``y`` is None or one label).
        y : label, array-like of labels or None
            None: classes drawn from ``class_prior_``; one label: ``n_samples`` rows of that
            class; an array: one row of each given class (``n_samples`` is then ignored).

        Returns
        -------
        X : ndarray of shape (n, n_features)
        y : ndarray of shape (n,)
            The class of each row.
        """
        check_is_fitted(self, "estimators_")
        rng = check_random_state(self.random_state)
        if y is None:
            if not isinstance(n_samples, int | np.integer) or n_samples < 1:
                raise ParameterError(f"n_samples must be a positive int: got {n_samples!r}")
            idx = rng.choice(len(self.classes_), size=int(n_samples), p=self.class_prior_)
        else:
            n_rows = int(n_samples) if np.ndim(y) == 0 else int(np.size(y))
            idx = self._class_index(y, n_rows)
        out = None
        for c in np.unique(idx):
            rows = np.flatnonzero(idx == c)
            est = self.estimators_[c]
            saved = est.random_state
            est.random_state = int(rng.randint(np.iinfo(np.int32).max))
            try:
                Xc, _ = est.sample(len(rows))  # grouped by component: shuffled below
            finally:
                est.random_state = saved
            Xc = Xc[rng.permutation(len(rows))]
            if out is None:
                out = np.empty((len(idx), Xc.shape[1]), dtype=Xc.dtype)
            out[rows] = Xc
        return out, self.classes_[idx]
