"""The EM loop shared by every mixture family.

:class:`BaseMixtureEM` owns everything that does not depend on the component family:
parameter checks, ``n_init`` restarts, the tolerance test, ``warm_start``, the
``ConvergenceWarning``, keeping the best run, prediction, scoring, sampling and the
information criteria. A family (Gaussian, Bernoulli) supplies small functions:

=======================================  ====================================================
``_estimate_log_prob_block(X, out)``     component log densities ``log p(x_n | theta_k)``
                                         written into ``out`` of shape (n, K)
``_initialize(X, resp)``                 parameters from initial responsibilities (N, K)
``_m_step(X, resp)``                     parameters from responsibilities (N, K)
``_log_prior()``                         log prior density of the parameters (0 for ML)
``_n_parameters()``                      number of free parameters (BIC, AIC, ICL)
``_sample_component(k, n, rng)``         ``n`` draws from component ``k``
``_get_parameters`` / ``_set_parameters``  snapshot and restore the fitted parameters
=======================================  ====================================================

Unlike scikit-learn, ``_m_step`` receives the responsibilities themselves, not their
logarithms: the E-step normalises an (N, K) buffer in place (log-sum-exp per block of rows),
so no second (N, K) array is needed. A family may instead override ``_em_step`` with a fused
single pass over blocks of rows (GaussianMixtureEM does: no (N, K) array at all).

The public :meth:`~BaseMixtureEM.initialize`, :meth:`~BaseMixtureEM.e_step` and
:meth:`~BaseMixtureEM.m_step` run EM one step at a time (for teaching and inspection); they
call the same hooks as ``fit``.

The E-step works on blocks of rows so that no temporary larger than a few MB is made; the
block length is ``chunk_size`` when the family has that setting, else chosen from (K, D).

Sample weights (``fit(X, sample_weight=w)``). A weight is a frequency: integer weights give
the fit of the data set with each row repeated ``w_n`` times (rows of weight 0 do not count);
non-integer weights are accepted. The hook signatures do not change: the base multiplies the
responsibilities by the weights (``resp * w[:, None]``) before it calls
``_initialize(X, resp)`` and ``_m_step(X, resp)``, so a family's M-step handles weights
without a change as long as it counts observations as sums of responsibilities
(``resp.sum()``, never ``X.shape[0]``). The objective is
``sum_n w_n log p(x_n) / sum_n w_n`` (plus ``log p(theta) / sum_n w_n`` for MAP-EM), and
``n_samples`` of :class:`DegenerateComponentWarning` is ``sum_n w_n``. During ``fit`` and
``initialize`` the checked weights are ``self._sample_weight`` (None when not given): a
family that overrides ``_em_step`` must use them itself and declare it with the class
attribute ``_em_step_handles_sample_weight = True`` (otherwise ``fit`` with weights raises
ParameterError rather than ignoring them).

Acceleration (``accelerate="squarem"``). EM moves towards the optimum in small steps where the
components overlap: each step only shrinks the distance by a constant factor. SQUAREM
(Varadhan & Roland 2008, the SqS3 step length) watches two EM steps and extrapolates along
the direction they take; :meth:`BaseMixtureEM._squarem_iterations` explains the scheme. It
treats the EM step as a black box, so it needs from a family only two more hooks, which
translate the parameters to and from one flat vector of unconstrained coordinates (log
weights, logits, log rates, log-Cholesky factors, ...), so that an extrapolated vector maps
back to valid parameters:

=======================================  ====================================================
``_params_to_vector()``                  the current parameters as a flat float64 vector
``_vector_to_params(vec)``               set the parameters from such a vector; False when
                                         it gives no valid parameters (nothing is set then)
=======================================  ====================================================
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import warnings
from abc import abstractmethod
from collections.abc import Callable, Iterator
from time import perf_counter
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted, validate_data

from bayesmix._validation import (
    DataError,
    ParameterError,
    check_choice,
    check_generator,
    check_labels,
    check_n_components,
    check_positive,
    check_X,
)
from bayesmix.em._arrays import (
    _BLOCK_ELEMENTS,
    check_sample_weight,
    fill_column_means,
    reject_complex,
    row_blocks,
    weighted_sum,
)

__all__ = [
    "BaseMixtureEM",
    "CollapsedComponentWarning",
    "DegenerateComponentWarning",
    "check_prior_dict",
    "check_sample_weight",
    "covariance_from_vector",
    "covariance_to_vector",
    "log_nonnegative",
    "normalize_log_prob_inplace",
    "notify_start",
    "on_each_start",
    "reject_complex",
    "row_blocks",
]

# A component whose expected number of points n w_k is below this is reported as empty.
_EMPTY_COUNT = 1e-3

#: The iterations of each ``accelerate`` setting (methods of BaseMixtureEM).
_ACCELERATORS = {None: "_em_iterations", "squarem": "_squarem_iterations"}
#: SQUAREM's bound on the step length |alpha| starts at 1 (plain EM) and is multiplied by this
#: factor each time a step reaches it (the R package SQUAREM's ``step.max0 = 1, mstep = 4``).
_SQUAREM_STEP_GROWTH = 4.0

#: Called as ``callback(done, total)`` after each EM start of any ``fit`` in this context.
_START_CALLBACK: contextvars.ContextVar[Callable[[int, int], None] | None] = (
    contextvars.ContextVar("bayesmix_em_start_callback", default=None)
)


@contextlib.contextmanager
def on_each_start(callback: Callable[[int, int], None]) -> Iterator[None]:
    """Call ``callback(done, total)`` after each start of an EM fit in the block.

    Also after each start of a MAP optimisation (:func:`bayesmix.inference.fit_map`, through
    :func:`notify_start`). For progress bars: the results are unchanged.

    Examples
    --------
    >>> from bayesmix.em import GaussianMixtureEM, on_each_start
    >>> with on_each_start(lambda done, total: print(f"start {done}/{total}")):
    ...     GaussianMixtureEM(2, n_init=2, random_state=0).fit([[0.0], [0.1], [5.0], [5.2]])
    start 1/2
    start 2/2
    GaussianMixtureEM(n_components=2, n_init=2, random_state=0)
    """
    token = _START_CALLBACK.set(callback)
    try:
        yield
    finally:
        _START_CALLBACK.reset(token)


def notify_start(done: int, total: int) -> None:
    """Tell the callback of :func:`on_each_start`, if any: ``done`` of ``total`` starts ran."""
    callback = _START_CALLBACK.get()
    if callback is not None:
        callback(done, total)


def check_prior_dict(prior: Any, keys: tuple[str, ...], example: str) -> dict:
    """``prior`` as a dict (``{}`` for None); ParameterError for another type or unknown keys."""
    if prior is None:
        return {}
    if not isinstance(prior, dict):
        raise ParameterError(
            f"prior has the wrong type: expected a dict or None, got {type(prior).__name__}; "
            f"pass e.g. prior={example}"
        )
    unknown = sorted(set(prior) - set(keys))
    if unknown:
        raise ParameterError(
            f"unknown prior key(s) {unknown}: expected keys among {list(keys)}; remove or "
            "rename them"
        )
    return prior


class DegenerateComponentWarning(UserWarning):
    """A fitted component is degenerate: empty, or collapsed onto repeated points.

    The fit is kept (every parameter is finite), but such a component describes no data or
    only the regularisation; the message says which component and what to do.
    """


class CollapsedComponentWarning(DegenerateComponentWarning):
    """A component collapsed onto repeated points or a lower-dimensional set of points.

    Its variance in some direction is ``reg_covar`` alone: the likelihood is unbounded there,
    so the fit's log-likelihood (and BIC) measures the regularisation, not the data.
    """


def fix_labelled_rows(block: np.ndarray, labels: np.ndarray) -> None:
    """Keep only the known component's entry of labelled rows (label >= 0) of ``block``.

    ``block`` holds ``log w_k + log p(x_n | theta_k)`` (n, K); every other entry of a
    labelled row becomes -inf, so that the normalisation gives it responsibility 1 for its
    component and ``log w_k + log p(x_n | theta_k)`` as its term of the objective.
    """
    known = np.flatnonzero(labels >= 0)
    if known.size:
        keep = block[known, labels[known]].copy()
        block[known] = -np.inf
        block[known, labels[known]] = keep


def _start_from_labels(resp: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Initial responsibilities made to agree with partial labels (label >= 0).

    The starting clusters are numbered arbitrarily: they are first permuted to match the
    labelled rows best (the assignment that maximises the responsibility the labelled rows
    give to their own component), then every labelled row is put in its component.
    Without the matching, a start whose cluster 0 is the labels' component 1 leads EM to
    a local optimum that contradicts the labels.
    """
    from scipy.optimize import linear_sum_assignment

    known = np.flatnonzero(labels >= 0)
    agreement = np.zeros((resp.shape[1], resp.shape[1]))  # [start cluster, label]
    np.add.at(agreement.T, labels[known], resp[known])
    start, label = linear_sum_assignment(agreement, maximize=True)
    order = np.empty(resp.shape[1], dtype=np.intp)
    order[label] = start
    resp = resp[:, order]  # column k is the start cluster matched to label k
    resp[known] = 0.0
    resp[known, labels[known]] = 1.0
    return resp


def log_nonnegative(values: Any) -> np.ndarray:
    """``log(values)`` in float64 with -inf (no warning) for zeros, e.g. an empty weight."""
    with np.errstate(divide="ignore"):
        return np.log(np.asarray(values, dtype=np.float64))


def covariance_to_vector(cov: Any, matrices: bool) -> np.ndarray:
    """Covariances as a flat vector of unconstrained coordinates (for SQUAREM).

    Parameters
    ----------
    cov : array-like of shape (..., D, D) when ``matrices``, else (...)
        Symmetric positive definite matrices (``matrices=True``) or variances.
    matrices : bool

    Returns
    -------
    ndarray of shape (n,)
        Variances: their logarithms. Matrices: per matrix the lower triangle (row by row) of
        its Cholesky factor ``L`` (``cov = L L^T``) with the logarithm of the diagonal, so
        that every vector maps back to a positive definite matrix. All NaN when a matrix
        has no Cholesky factor (SQUAREM then takes the plain EM step).
    """
    cov = np.asarray(cov, dtype=np.float64)
    if not matrices:
        return log_nonnegative(cov).ravel()
    rows, cols = np.tril_indices(cov.shape[-1])
    try:
        chol = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        return np.full(cov.size // cov.shape[-1] ** 2 * rows.size, np.nan)
    packed = chol[..., rows, cols]
    on_diagonal = rows == cols
    packed[..., on_diagonal] = log_nonnegative(packed[..., on_diagonal])
    return packed.ravel()


def covariance_from_vector(
    vec: np.ndarray, shape: tuple[int, ...], matrices: bool
) -> np.ndarray | None:
    """Inverse of :func:`covariance_to_vector`: covariances of ``shape``, or None if invalid.

    Parameters
    ----------
    vec : ndarray of shape (n,)
    shape : tuple
        Shape of the covariances, (..., D, D) for matrices.
    matrices : bool

    Returns
    -------
    ndarray of ``shape`` or None
        None when a value overflows or a variance (a diagonal entry of ``L``) underflows to 0.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        if not matrices:
            cov = np.exp(vec).reshape(shape)
            scales = cov
        else:
            rows, cols = np.tril_indices(shape[-1])
            packed = np.array(vec, dtype=np.float64).reshape(*shape[:-2], rows.size)
            on_diagonal = rows == cols
            packed[..., on_diagonal] = np.exp(packed[..., on_diagonal])
            chol = np.zeros(shape)
            chol[..., rows, cols] = packed
            cov = chol @ np.swapaxes(chol, -1, -2)
            scales = packed[..., on_diagonal]
    if not (np.all(np.isfinite(cov)) and np.all(scales > 0)):
        return None
    return cov


def _squarem_direction(
    theta0: np.ndarray, theta1: np.ndarray, theta2: np.ndarray, step_max: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """SQUAREM's ``r``, ``v`` and the SqS3 step length ``alpha`` in [-step_max, -1].

    ``r = theta1 - theta0``, ``v = theta2 - 2 theta1 + theta0`` and ``alpha = -||r|| / ||v||``
    (see :meth:`BaseMixtureEM._squarem_iterations`). Coordinates equal in all three vectors
    (also infinite ones) get ``r = v = 0`` and so stay put; any other non-finite coordinate,
    ``v = 0`` or an alpha within 1 % of -1 give ``alpha = -1`` (the plain EM step).
    """
    held = (theta0 == theta1) & (theta1 == theta2)
    with np.errstate(invalid="ignore", over="ignore"):
        r = np.where(held, 0.0, theta1 - theta0)
        v = np.where(held, 0.0, theta2 - 2.0 * theta1 + theta0)
        norm_r, norm_v = float(np.linalg.norm(r)), float(np.linalg.norm(v))
    if not (np.isfinite(norm_r) and np.isfinite(norm_v) and norm_v > 0):
        return r, v, -1.0
    alpha = max(-step_max, min(-1.0, -norm_r / norm_v))
    return r, v, (-1.0 if alpha > -1.01 else alpha)


def normalize_log_prob_inplace(weighted_log_prob: np.ndarray) -> np.ndarray:
    """Turn weighted log probabilities into responsibilities in place (row log-sum-exp).

    Parameters
    ----------
    weighted_log_prob : ndarray of shape (n, K)
        ``log w_k + log p(x_n | theta_k)``; overwritten with the responsibilities
        ``r_nk = exp(a_nk - logsumexp_k a_nk)``.

    Returns
    -------
    log_norm : ndarray of shape (n,)
        ``log p(x_n) = logsumexp_k a_nk``.
    """
    a = weighted_log_prob
    # row max and row sum by column loops / a matrix-vector product: NumPy's reductions along
    # a short last axis are many times slower
    m = a[:, 0].copy()
    for k in range(1, a.shape[1]):
        np.maximum(m, a[:, k], out=m)
    finite = np.isfinite(m)
    if not finite.all():  # rows impossible under every component: keep -inf, avoid nan
        m[~finite] = 0.0
    a -= m[:, None]
    np.exp(a, out=a)
    s = a @ np.ones(a.shape[1], dtype=a.dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
        a /= s[:, None]
        log_norm = np.log(s)
    log_norm += m
    if not finite.all():
        a[~finite] = 1.0 / a.shape[1]
    return log_norm


def _criterion_sign(convention: str) -> float:
    """+1 for scikit-learn's lower-is-better criteria, -1 for mclust's higher-is-better."""
    if convention == "sklearn":
        return 1.0
    if convention == "mclust":
        return -1.0
    raise ParameterError(
        f"convention is invalid: expected 'sklearn' (lower is better) or 'mclust' (higher is "
        f"better), got {convention!r}; pass one of them"
    )


class BaseMixtureEM(DensityMixin, BaseEstimator):
    """Base class of the EM mixture estimators (not used directly).

    The objective tracked per iteration is the mean log-likelihood per sample
    ``(1/N) sum_n log p(x_n | theta)`` for maximum likelihood, or the mean log posterior per
    sample ``(1/N) [sum_n log p(x_n | theta) + log p(theta)]`` for MAP-EM (``prior`` given),
    evaluated at the parameters that enter the E-step of that iteration (as scikit-learn
    does). Iteration stops when it changes by less than ``tol``.

    With ``accelerate="squarem"`` (a constructor parameter of every family; None, the
    default, is plain EM) the iterations are SQUAREM's (:meth:`_squarem_iterations`):
    ``n_iter_`` counts EM iterations (evaluations of the EM map) as for plain EM, and
    ``lower_bounds_`` holds the objective at the parameters entering each accepted one
    (never decreasing; rejected extrapolations are counted in ``n_iter_`` but not recorded).
    """

    _init_choices: tuple[str, ...] = ("k-means++", "kmeans", "random", "random_from_data")
    #: Set to True by a family whose hooks handle NaN entries (``missing="model"``).
    _supports_missing: bool = False
    #: Whether the data of the current call hold NaN that are modelled as missing values.
    _missing_now: bool = False
    #: Partial labels of the rows being fitted (N,), -1 = unknown; None otherwise.
    _labels: np.ndarray | None = None
    #: Set to True by a family whose ``_em_step`` override applies ``self._sample_weight``.
    _em_step_handles_sample_weight: bool = False
    #: The checked sample weights (N,) during ``fit``/``initialize``; None otherwise.
    _sample_weight: np.ndarray | None = None

    # ------------------------------------------------------------------ hooks for families
    @abstractmethod
    def _check_family_parameters(self, X: np.ndarray) -> None:
        """Check the family-specific settings against the data (raise ParameterError)."""

    @abstractmethod
    def _estimate_log_prob_block(self, X: np.ndarray, out: np.ndarray) -> None:
        """Write component log densities of the rows of X (n, D) into out (n, K)."""

    @abstractmethod
    def _initialize(self, X: np.ndarray, resp: np.ndarray | None) -> None:
        """Set initial parameters from responsibilities resp (N, K) (or from *_init)."""

    @abstractmethod
    def _m_step(self, X: np.ndarray, resp: np.ndarray) -> None:
        """Update the parameters from responsibilities resp (N, K)."""

    @abstractmethod
    def _get_parameters(self) -> tuple:
        """Snapshot of the fitted parameters."""

    @abstractmethod
    def _set_parameters(self, params: tuple) -> None:
        """Restore a snapshot and derive the dependent attributes."""

    @abstractmethod
    def _n_parameters(self) -> int:
        """Number of free parameters of the model."""

    @abstractmethod
    def _sample_component(self, k: int, n: int, rng: np.random.Generator) -> np.ndarray:
        """Draw n samples of shape (n, D) from component k."""

    def _log_prior(self) -> float:
        """Log prior density of the current parameters (0 for maximum likelihood)."""
        return 0.0

    def _params_to_vector(self) -> np.ndarray:
        """The current parameters as a flat float64 vector of unconstrained coordinates.

        Used by ``accelerate="squarem"``, which extrapolates in these coordinates: choose them
        so that (almost) every vector maps back to valid parameters (log weights, logits,
        log rates, log-Cholesky factors). Entries may be -inf or +inf for parameters on the
        boundary (a weight or probability of exactly 0); they stay where they are as long as
        EM keeps them there.
        """
        raise NotImplementedError

    def _vector_to_params(self, vec: np.ndarray) -> bool:
        """Set the parameters from a vector of :meth:`_params_to_vector`'s layout.

        Returns False, with the parameters left as they were, when the vector gives no
        valid parameters (NaN, overflow, a covariance that is not positive definite).
        """
        raise NotImplementedError

    def _check_X(self, X: Any, *, fitting: bool) -> np.ndarray:
        """Family-specific check_X call (dtype, binary, covariance type)."""
        return check_X(X, dtype=np.float64, allow_nan=self._allow_nan())

    def _allow_nan(self) -> bool:
        """Whether NaN entries are missing values (``missing="model"``), after checking it."""
        missing = getattr(self, "missing", "error")
        check_choice(missing, "missing", ("error", "model"))
        if missing == "model" and not self._supports_missing:
            raise ParameterError(
                f"missing='model' is not supported by {type(self).__name__} yet: expected "
                "missing='error'; drop or impute the rows with missing values first"
            )
        return missing == "model"

    def _note_missing(self, X: np.ndarray) -> np.ndarray:
        """Set ``_missing_now`` for the checked data X (NaN only pass with missing='model')."""
        self._missing_now = bool(self._allow_nan() and X.dtype.kind == "f" and np.isnan(X).any())
        return X

    def _needs_initial_resp(self) -> bool:
        """Whether the initialisation needs responsibilities (False if all *_init given)."""
        return True

    def _block_size(self, n_features: int) -> int:
        chunk = getattr(self, "chunk_size", None)
        if chunk is not None:
            return int(chunk)
        return max(64, _BLOCK_ELEMENTS // max(1, self.n_components * n_features))

    # ------------------------------------------------------------------ checks
    def _check_parameters(self, X: np.ndarray) -> None:
        check_n_components(self.n_components)
        check_positive(self.tol, "tol")
        check_positive(self.max_iter, "max_iter", strict=False, integer=True)
        check_positive(self.n_init, "n_init", integer=True)
        check_positive(self.verbose, "verbose", strict=False, integer=True)
        check_choice(self.init_params, "init_params", self._init_choices)
        accelerate = check_choice(getattr(self, "accelerate", None), "accelerate", _ACCELERATORS)
        own_vector = type(self)._params_to_vector is not BaseMixtureEM._params_to_vector
        if accelerate is not None and not own_vector:
            raise ParameterError(
                f"accelerate={accelerate!r} is not supported by {type(self).__name__}: "
                "expected an estimator with the _params_to_vector/_vector_to_params hooks, got "
                "one without; use accelerate=None"
            )
        if getattr(self, "chunk_size", None) is not None:
            check_positive(self.chunk_size, "chunk_size", integer=True)
        self._check_family_parameters(X)

    def _validate_fit_data(self, X: Any) -> np.ndarray:
        X = validate_data(self, X, reset=True, skip_check_array=True)
        reject_complex(X)
        check_n_components(self.n_components)  # check_X needs it (too few distinct points)
        return self._note_missing(self._check_X(X, fitting=True))

    def _check_labels(self, given: Any, n_samples: int) -> np.ndarray | None:
        """Partial ``labels`` as an int array (N,), -1 for unknown; None for none given."""
        labels = check_labels(given, n_samples, check_n_components(self.n_components))
        return None if labels is None else labels.astype(np.intp)

    def _check_sample_weight(self, sample_weight: Any, X: Any) -> np.ndarray | None:
        """Checked weights of the rows of X (None when not given); see the module docstring."""
        w = check_sample_weight(sample_weight, X.shape[0])
        if w is None:
            return None
        own_step = type(self)._em_step is not BaseMixtureEM._em_step
        if own_step and not self._em_step_handles_sample_weight:
            raise ParameterError(
                f"sample_weight is not supported by {type(self).__name__}: expected an "
                "estimator whose EM step applies the weights, got one that would ignore them; "
                "repeat the rows instead (numpy.repeat(X, weights, axis=0))"
            )
        n_positive = int(np.count_nonzero(w))
        if n_positive < self.n_components:
            raise DataError(
                f"too few rows with a positive sample_weight: expected at least n_components="
                f"{self.n_components}, got {n_positive}; use fewer components or give more "
                "rows a positive weight"
            )
        return w

    def _validate_predict_data(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        reject_complex(X)
        checked = self._check_X(X, fitting=False)  # 1-D input: the "Reshape your data" error
        validate_data(self, X, reset=False, skip_check_array=True)  # n_features, feature names
        return self._note_missing(checked)

    # ------------------------------------------------------------------ E-step
    def _estimate_log_prob(self, X: np.ndarray) -> np.ndarray:
        """Component log densities ``log p(x_n | theta_k)``, shape (N, K)."""
        out = np.empty((X.shape[0], self.n_components), dtype=X.dtype)
        for rows in row_blocks(X.shape[0], self._block_size(X.shape[1])):
            self._estimate_log_prob_block(X[rows], out[rows])
        return out

    def _estimate_log_weights(self) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.log(self.weights_)

    def _estimate_weighted_log_prob(self, X: np.ndarray) -> np.ndarray:
        """``log w_k + log p(x_n | theta_k)``, shape (N, K)."""
        out = self._estimate_log_prob(X)
        out += self._estimate_log_weights()
        return out

    def _e_step(self, X: np.ndarray, out: np.ndarray | None = None):
        """E-step over blocks of rows.

        Parameters
        ----------
        X : ndarray of shape (N, D)
        out : ndarray of shape (N, K), optional
            Preallocated buffer that receives the responsibilities.

        Returns
        -------
        log_norm : ndarray of shape (N,)
            ``log p(x_n)`` under the current parameters.
        resp : ndarray of shape (N, K)
            Responsibilities (``out`` when given).
        """
        n = X.shape[0]
        if out is None:
            out = np.empty((n, self.n_components), dtype=X.dtype)
        log_norm = np.empty(n, dtype=X.dtype)
        log_w = self._estimate_log_weights().astype(X.dtype, copy=False)
        labels = self._labels
        for rows in row_blocks(n, self._block_size(X.shape[1])):
            block = out[rows]
            self._estimate_log_prob_block(X[rows], block)
            block += log_w
            if labels is not None:
                fix_labelled_rows(block, labels[rows])
            log_norm[rows] = normalize_log_prob_inplace(block)
        return log_norm, out

    # ------------------------------------------------------------------ initialisation
    def _initial_resp(
        self, X: np.ndarray, rng: np.random.Generator, method: str | None = None
    ) -> np.ndarray:
        """Initial responsibilities (N, K) for ``method`` (default ``init_params``)."""
        from bayesmix.em.kmeans import KMeans, kmeans_plusplus

        method = self.init_params if method is None else method

        n, k = X.shape[0], self.n_components
        w = self._sample_weight
        if self._missing_now:  # the starts only: each missing value at its column's mean
            X = fill_column_means(X, w)
        resp = np.zeros((n, k), dtype=X.dtype)
        if method == "kmeans":
            kmeans = KMeans(n_clusters=k, n_init=1, random_state=rng)
            labels = kmeans.fit(X, sample_weight=w).labels_
            resp[np.arange(n), labels] = 1.0
        elif method == "random":
            resp[:] = rng.uniform(size=(n, k))
            resp /= resp.sum(axis=1, keepdims=True)
        else:  # "k-means++" or "random_from_data": k seed rows, then nearest-seed assignment
            if method == "random_from_data":
                p = None if w is None else w / w.sum()  # rows of weight 0 are never seeds
                seeds = X[rng.choice(n, size=k, replace=False, p=p)]
            else:
                seeds, _ = kmeans_plusplus(X, k, random_state=rng, sample_weight=w)
            # Every row goes to its nearest seed (one k-means assignment step). scikit-learn
            # instead gives responsibility to the seed rows alone, so its first covariances
            # are reg_covar * I and the first log-likelihood is absurdly low (-1e7 per row).
            # Distances from the differences themselves, in blocks of rows (the expansion
            # ||s||^2 - 2 x.s loses every digit for data far from 0, e.g. at 1e9 +- 1e-2).
            block = max(1, _BLOCK_ELEMENTS // (k * X.shape[1]))
            for rows in row_blocks(n, block):
                diff = X[rows, None, :] - seeds[None]
                sq_dist = np.einsum("bkd,bkd->bk", diff, diff)
                resp[np.arange(rows.start, rows.stop), sq_dist.argmin(axis=1)] = 1.0
        return resp

    def _initialize_parameters(self, X: np.ndarray, rng: np.random.Generator) -> None:
        if self._needs_initial_resp():
            resp = self._initial_resp(X, rng)
            if self._labels is not None:
                resp = _start_from_labels(resp, self._labels)
            if self._sample_weight is not None:
                resp *= self._sample_weight[:, None].astype(resp.dtype, copy=False)
            self._initialize(X, resp)
        else:
            self._initialize(X, None)

    def _n_observations(self, n_rows: int) -> float:
        """Number of observations of the data being fitted: ``sum_n w_n`` with weights."""
        w = self._sample_weight
        return n_rows if w is None else float(w.sum())

    # ------------------------------------------------------------------ the loop
    def _objective(self, log_norm: np.ndarray, sample_weight: np.ndarray | None = None) -> float:
        n = len(log_norm) if sample_weight is None else float(sample_weight.sum())
        return self._objective_from_sum(weighted_sum(log_norm, sample_weight), n)

    def _objective_from_sum(self, total_log_norm: float, n: float) -> float:
        """Objective per sample: ``(sum_n w_n log p(x_n) + log p(theta)) / n``.

        ``n = sum_n w_n`` (N without weights); the log prior only for MAP-EM.
        """
        value = total_log_norm / n
        if getattr(self, "prior", None) is not None or self._has_implicit_prior():
            value += float(self._log_prior()) / n
        return value

    def _em_step(self, X: np.ndarray, workspace: dict) -> float:
        """One iteration: E-step at the current parameters, then M-step.

        Returns the objective at the parameters that entered the iteration. Families may
        override this with a fused single pass over the data (see GaussianMixtureEM).
        """
        buffer = workspace.get("resp")
        if buffer is None:
            buffer = workspace["resp"] = np.empty((X.shape[0], self.n_components), X.dtype)
        log_norm, resp = self._e_step(X, out=buffer)
        w = self._sample_weight
        objective = self._objective(log_norm, w)
        if w is not None:
            resp *= w[:, None].astype(resp.dtype, copy=False)
        self._m_step(X, resp)
        return objective

    def _has_implicit_prior(self) -> bool:
        return False

    def fit(
        self, X: Any, y: Any = None, sample_weight: Any = None, *, labels: Any = None
    ) -> BaseMixtureEM:
        """Estimate the parameters with EM (best of ``n_init`` runs).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            NaN entries are missing values when ``missing="model"``.
        y : Ignored
            As for every scikit-learn clusterer (a ``Pipeline`` passes its target here);
            partial labels go in ``labels``.
        sample_weight : array-like of shape (n_samples,), optional
            Frequency weights (>= 0, not all 0): integer weights give the fit of the rows
            repeated that many times; rows of weight 0 do not count. None: every row 1.
        labels : array-like of shape (n_samples,), optional
            Partial labels (semi-supervised EM): the component 0..K-1 of a row whose
            component is known, -1 where it is unknown. A labelled row keeps its
            responsibility fixed at its component and adds ``log w_k + log p(x_n |
            theta_k)`` to the objective instead of ``log p(x_n)``; labelled rows also start
            in their component. None (or all -1): unsupervised.

        Returns
        -------
        self
        """
        self.fit_predict(X, y, sample_weight=sample_weight, labels=labels)
        return self

    def fit_predict(
        self, X: Any, y: Any = None, sample_weight: Any = None, *, labels: Any = None
    ) -> np.ndarray:
        """Fit and return the most probable component of each row (== fit(X).predict(X)).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : Ignored
        sample_weight : array-like of shape (n_samples,), optional
            Frequency weights, as in :meth:`fit`.
        labels : array-like of shape (n_samples,), optional
            Partial labels (-1 = unknown), as in :meth:`fit`.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            The model's most probable component of every row, labelled rows included.
        """
        X = self._validate_fit_data(X)
        labels = self._check_labels(labels, X.shape[0])
        weights = self._check_sample_weight(sample_weight, X)
        self._check_parameters(X)
        self._sample_weight = weights
        self._labels = labels
        try:
            return self._fit_loop(X)
        finally:
            self._sample_weight = None
            self._labels = None

    def _fit_loop(self, X: np.ndarray) -> np.ndarray:
        """The restarts and iterations of ``fit_predict`` (``self._sample_weight`` set)."""
        self._fit_prepare(X)

        do_init = not (self.warm_start and hasattr(self, "converged_"))
        n_init = self.n_init if do_init else 1
        rng = check_generator(self.random_state)
        workspace: dict = {}

        best_objective = -np.inf
        best_params = None
        best_n_iter = 0
        best_bounds: list[float] = []
        best_converged = False
        for init in range(n_init):
            if self.verbose:
                print(f"Initialization {init}")
                start = perf_counter()
            if do_init:
                self._init_run = init  # which start this is (a family may start run 0 apart)
                self._initialize_parameters(X, rng)
            objective = -np.inf if do_init else self.lower_bound_
            iterate = getattr(self, _ACCELERATORS[getattr(self, "accelerate", None)])
            n_iter, bounds, converged, objective = iterate(X, workspace, objective)
            if self.verbose:
                print(
                    f"Initialization {init} converged: {converged}\t"
                    f"time {perf_counter() - start:.3f}s\t objective {objective:.10g}"
                )
            notify_start(init + 1, n_init)
            if best_params is None or objective > best_objective:
                best_objective = objective
                best_params = self._get_parameters()
                best_n_iter = n_iter
                best_bounds = bounds
                best_converged = converged

        self.converged_ = best_converged
        if not self.converged_ and self.max_iter > 0:
            warnings.warn(
                "Best performing initialization did not converge: expected a change of the "
                f"objective below tol={self.tol} within max_iter={self.max_iter} iterations; "
                "increase max_iter or tol, try other initial values, or check for degenerate "
                "data",
                ConvergenceWarning,
                stacklevel=3,
            )
        self._set_parameters(best_params)
        self._warn_degenerate(self._n_observations(X.shape[0]))
        self.n_iter_ = best_n_iter
        self.lower_bound_ = best_objective
        self.lower_bounds_ = np.asarray(best_bounds, dtype=np.float64)

        # final E-step so that fit_predict(X) == fit(X).predict(X)
        workspace.clear()  # release the scratch buffers of the loop first
        self._labels = None
        return self._predict_labels(X)

    def _has_converged(self, change: float, objective: float) -> bool:
        """The stopping rule: the objective changed by less than ``tol``."""
        return abs(change) < self.tol

    def _em_iterations(
        self, X: np.ndarray, workspace: dict, objective: float
    ) -> tuple[int, list[float], bool, float]:
        """Plain EM from the current parameters until the objective changes by < ``tol``.

        ``objective`` is the value before the first iteration (-inf for a fresh start).
        Returns the number of iterations, the objective at the parameters entering each,
        whether ``tol`` was reached and the last objective; the parameters are left at the
        output of the last iteration.
        """
        bounds: list[float] = []
        converged = False
        n_iter = 0
        for n_iter in range(1, self.max_iter + 1):
            previous = objective
            objective = self._em_step(X, workspace)
            bounds.append(objective)
            change = objective - previous
            if self.verbose >= 2:
                print(f"  Iteration {n_iter}\t change {change:.6g}\t objective {objective:.10g}")
            if self._has_converged(change, objective):
                converged = True
                break
        return n_iter, bounds, converged, objective

    def _squarem_iterations(
        self, X: np.ndarray, workspace: dict, objective: float
    ) -> tuple[int, list[float], bool, float]:
        """EM accelerated by SQUAREM (Varadhan & Roland 2008, step length SqS3), monotone.

        Write ``F`` for one EM iteration (E-step, then M-step) as a map of the parameter
        vector theta (in the coordinates of :meth:`_params_to_vector`); EM iterates
        ``theta <- F(theta)`` to a fixed point. Near it, EM shrinks the distance to the
        optimum by about the same factor at every step, slowly when the components overlap.
        One SQUAREM cycle looks at two EM steps and jumps further along their direction:

        1. ``theta1 = F(theta0)``, ``theta2 = F(theta1)``;
        2. ``r = theta1 - theta0`` (the first step) and ``v = theta2 - 2 theta1 + theta0``
           (how the second step differs from the first: the "curvature" of the path);
        3. step length ``alpha = -||r|| / ||v||``, at most -1 (SqS3);
        4. ``theta' = theta0 - 2 alpha r + alpha^2 v``. For alpha = -1 this is exactly
           ``theta2``; a larger |alpha| extrapolates further. (If EM approached the optimum
           along a line, ``theta_k = theta* + c^k u``, then ``theta'`` hits ``theta*`` for the
           right alpha: the scheme is the "squared" form of a one-step extrapolation.);
        5. a stabilising EM step ``theta_new = F(theta')`` starts the next cycle.

        The safeguard keeps the objective from ever decreasing. ``F(theta')`` returns the
        objective at ``theta'`` for free (the E-step computes it), and the extrapolation is
        accepted when that value is at least the objective at ``theta1``. Then
        ``obj(theta_new) >= obj(theta') >= obj(theta1) >= obj(theta0)`` because an EM step
        never decreases the objective. (Testing ``obj(theta_new)`` against ``obj(theta2)``
        would cost an extra E-step at ``theta_new`` and one at ``theta2`` in every cycle.
        Testing ``obj(theta')`` against ``obj(theta0)`` would let ``lower_bounds_`` go down
        between ``theta1`` and ``theta'``; the R package SQUAREM does that, and by default
        even allows ``theta'`` to be worse than ``theta0`` by 1 in log-likelihood.) When
        ``theta'``
        is invalid (:meth:`_vector_to_params` refuses it, or the E- or M-step fails on it) or
        worse, alpha is moved halfway to -1 (``alpha <- (alpha - 1) / 2``, SQUAREM's
        backtracking) and ``theta'`` is tried again. Once alpha is within 1 % of -1 it is set
        to -1, and ``theta' = theta2`` is taken exactly (not through the vector), so the
        cycle is two plain EM steps and one more: monotone as EM itself.

        As in the R package SQUAREM, ``|alpha|`` is also capped: the cap starts at 1 (the
        first cycle is plain EM) and grows four-fold each time a step reaches it, so the
        first extrapolations are cautious and the cap stops mattering after a few cycles.

        Coordinates equal in ``theta0``, ``theta1`` and ``theta2`` (e.g. a probability that
        sits at 0, whose logit is -inf) are kept; when any other coordinate is not finite
        the cycle falls back to the plain EM step (alpha = -1).

        Bookkeeping, so that the numbers compare with plain EM: ``n_iter`` counts evaluations
        of ``F`` (rejected extrapolations included); the objective at the parameters
        entering every accepted evaluation is recorded (``theta0``, ``theta1``, ``theta'``;
        non-decreasing). Convergence is tested as plain EM tests it, ``tol`` on the change
        of the objective over one EM step: after ``theta0`` (one step from the previous
        ``theta'``) and ``theta1``, not after an extrapolation (a jump that gains little is
        no sign of convergence). The parameters are left at the output of the last accepted
        evaluation.
        """
        bounds: list[float] = []
        n_iter = 0
        step_max = 1.0  # the cap on |alpha| (SQUAREM's step.max)

        def em_map() -> float:
            """One evaluation of F at the current parameters (objective at them)."""
            nonlocal n_iter
            n_iter += 1
            return self._em_step(X, workspace)

        def record(value: float, alpha: float = -1.0) -> bool:
            """Keep an accepted objective; True when an EM step changed it by < tol."""
            nonlocal objective
            change = value - objective
            objective = value
            bounds.append(value)
            jump = alpha != -1.0  # an extrapolation, not one EM step from the previous record
            if self.verbose >= 2:
                note = f"\t (SQUAREM step {alpha:.3g})" if jump else ""
                print(f"  Iteration {n_iter}\t change {change:.6g}\t objective {value:.10g}{note}")
            return not jump and self._has_converged(change, value)

        while n_iter < self.max_iter:
            theta0 = self._params_to_vector()
            if record(em_map()):
                return n_iter, bounds, True, objective
            if n_iter >= self.max_iter:
                break
            theta1 = self._params_to_vector()
            objective1 = em_map()
            if record(objective1):
                return n_iter, bounds, True, objective
            theta2_params = self._get_parameters()
            r, v, alpha = _squarem_direction(theta0, theta1, self._params_to_vector(), step_max)
            while n_iter < self.max_iter:
                if alpha == -1.0:  # theta' = theta2 exactly: plain EM
                    self._set_parameters(theta2_params)
                    value = em_map()
                    break
                value = self._try_extrapolation(theta0, r, v, alpha, em_map)
                if value >= objective1:  # False for NaN
                    break
                alpha = (alpha - 1.0) / 2.0
                if alpha > -1.01:
                    alpha = -1.0
            else:  # max_iter reached while backtracking: back to the last accepted output
                self._set_parameters(theta2_params)
                break
            if alpha == -step_max:
                step_max *= _SQUAREM_STEP_GROWTH
            if record(value, alpha):
                return n_iter, bounds, True, objective
        return n_iter, bounds, False, objective

    def _try_extrapolation(
        self,
        theta0: np.ndarray,
        r: np.ndarray,
        v: np.ndarray,
        alpha: float,
        em_map: Callable[[], float],
    ) -> float:
        """Set the parameters to ``theta' = theta0 - 2 alpha r + alpha^2 v`` and run ``em_map``.

        Returns the objective at ``theta'``, or NaN (without evaluating ``em_map`` when the
        vector is refused) for a vector that gives invalid parameters or an E- or M-step
        that fails on them. Floating-point warnings are silenced: a wild extrapolation is
        expected to overflow now and then, and is then rejected.
        """
        with np.errstate(all="ignore"):
            if not self._vector_to_params(theta0 - 2.0 * alpha * r + alpha**2 * v):
                return np.nan
            try:
                return em_map()
            except (ValueError, np.linalg.LinAlgError):  # DataError is a ValueError too
                return np.nan

    def _warn_degenerate(self, n_samples: float, stacklevel: int = 5) -> None:
        """Hook run after a fit: warn (DegenerateComponentWarning) about degenerate components.

        ``n_samples`` is the number of observations, ``sum_n w_n`` with sample weights.
        """
        w = np.asarray(self.weights_, dtype=np.float64)
        empty = np.flatnonzero(w * n_samples < _EMPTY_COUNT)
        if empty.size:
            warnings.warn(
                f"{type(self).__name__}: component(s) {empty.tolist()} are empty (weights "
                f"{', '.join(f'{v:.2g}' for v in w[empty])}, less than {_EMPTY_COUNT} of a "
                "data point): expected every component to explain some data, got none; use "
                "fewer components or other initial values (init_params, means_init, n_init)",
                DegenerateComponentWarning,
                stacklevel=stacklevel,
            )

    def _fit_prepare(self, X: np.ndarray) -> None:
        """Hook run once per fit before the restarts (e.g. a data shift for accuracy)."""

    # ------------------------------------------------------------------ one step at a time
    def initialize(self, X: Any, y: Any = None, sample_weight: Any = None) -> BaseMixtureEM:
        """Set the starting parameters that :meth:`fit` would start its first run from.

        The data and settings are checked as in :meth:`fit`, then the parameters are set
        from ``init_params`` (seeded by ``random_state``) or the ``*_init`` arguments, with
        no EM iteration. Together with :meth:`e_step` and :meth:`m_step` this runs EM one
        step at a time: ``initialize(X)`` then ``m_step(X, e_step(X)[0])`` gives the
        parameters of ``fit(X)`` with ``max_iter=1`` and ``n_init=1`` (same
        ``random_state``), up to rounding. A later ``fit`` with ``warm_start=True``
        continues from the current parameters.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : Ignored
        sample_weight : array-like of shape (n_samples,), optional
            Frequency weights, as in :meth:`fit`.

        Returns
        -------
        self
            With the fitted attributes (``weights_``, ``means_``, ...) at the starting
            values, ``n_iter_ = 0``, ``converged_ = False``, ``lower_bound_ = -inf`` and an
            empty ``lower_bounds_``.
        """
        X = self._validate_fit_data(X)
        weights = self._check_sample_weight(sample_weight, X)
        self._check_parameters(X)
        self._sample_weight = weights
        try:
            self._fit_prepare(X)
            self._initialize_parameters(X, check_generator(self.random_state))
        finally:
            self._sample_weight = None
        self._set_parameters(self._get_parameters())  # derived attributes (precisions_)
        self.n_iter_ = 0
        self.converged_ = False
        self.lower_bound_ = -np.inf
        self.lower_bounds_ = np.empty(0, dtype=np.float64)
        return self

    def e_step(self, X: Any) -> tuple[np.ndarray, float]:
        """One E-step at the current parameters: responsibilities and log-likelihood.

        ``r_nk = w_k p(x_n | theta_k) / sum_j w_j p(x_n | theta_j)`` (Bayes' rule). Call
        :meth:`initialize` or :meth:`fit` first.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        resp : ndarray of shape (n_samples, n_components)
            Responsibilities; every row sums to 1 (equal to :meth:`predict_proba`).
        log_likelihood : float
            ``sum_n log p(x_n | theta)`` at the parameters that entered the step (the sum
            of :meth:`score_samples`; :meth:`objective` adds the log prior of MAP-EM and
            divides by N).
        """
        X = self._validate_predict_data(X)
        log_norm, resp = self._e_step(X)
        return resp, float(np.sum(log_norm, dtype=np.float64))

    def m_step(self, X: Any, resp: Any, sample_weight: Any = None) -> BaseMixtureEM:
        """One M-step: new parameters from responsibilities (weighted ML or MAP estimates).

        Updates ``weights_``, ``means_`` and the family's other fitted parameters
        (``covariances_``, ``precisions_``, ``precisions_cholesky_`` for Gaussian mixtures)
        with the formulas of the EM loop, priors included for MAP-EM. ``n_iter_``,
        ``converged_`` and ``lower_bounds_`` are left as they are.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        resp : array-like of shape (n_samples, n_components)
            Responsibilities, e.g. from :meth:`e_step` (or hard 0/1 labels): finite,
            non-negative, every row summing to 1.
        sample_weight : array-like of shape (n_samples,), optional
            Frequency weights, as in :meth:`fit` (the M-step uses ``resp * w[:, None]``).

        Returns
        -------
        self
        """
        X = self._validate_predict_data(X)
        resp = np.asarray(resp, dtype=X.dtype)
        expected = (X.shape[0], self.n_components)
        if resp.shape != expected:
            raise DataError(
                f"resp has the wrong shape: expected {expected} (n_samples, n_components), "
                f"got {resp.shape}; pass the responsibilities returned by e_step(X)"
            )
        tol = max(1e-6, 1e3 * float(np.finfo(X.dtype).eps))
        bad = ~np.isfinite(resp).all(axis=1) | (resp < 0).any(axis=1)
        bad |= np.abs(resp.sum(axis=1, dtype=np.float64) - 1.0) > tol
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(
                "resp is not a set of responsibilities: expected finite, non-negative rows "
                f"summing to 1, got {bad.sum()} bad rows (first: row {row}, "
                f"{resp[row].tolist()}); pass e_step(X)[0], not its logarithm"
            )
        weights = self._check_sample_weight(sample_weight, X)
        resp = np.array(resp, order="C")  # a copy: families may write into it
        if weights is not None:
            resp *= weights[:, None].astype(resp.dtype, copy=False)
        self._sample_weight = weights
        try:
            self._m_step(X, resp)
        finally:
            self._sample_weight = None
        self._set_parameters(self._get_parameters())  # derived attributes (precisions_)
        return self

    # ------------------------------------------------------------------ prediction
    def _predict_labels(self, X: np.ndarray) -> np.ndarray:
        labels = np.empty(X.shape[0], dtype=np.intp)
        log_w = self._estimate_log_weights().astype(X.dtype, copy=False)
        for rows in row_blocks(X.shape[0], self._block_size(X.shape[1])):
            block = np.empty((rows.stop - rows.start, self.n_components), dtype=X.dtype)
            self._estimate_log_prob_block(X[rows], block)
            block += log_w
            labels[rows] = block.argmax(axis=1)
        return labels

    def predict(self, X: Any) -> np.ndarray:
        """Most probable component of each row.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        labels : ndarray of shape (n_samples,)
        """
        X = self._validate_predict_data(X)
        return self._predict_labels(X)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Responsibilities ``p(z_n = k | x_n)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        resp : ndarray of shape (n_samples, n_components)
        """
        X = self._validate_predict_data(X)
        return self._e_step(X)[1]

    def score_samples(self, X: Any) -> np.ndarray:
        """Log density of the mixture at each row, ``log p(x_n)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        log_prob : ndarray of shape (n_samples,)
        """
        X = self._validate_predict_data(X)
        return self._e_step(X)[0]

    def _score_parts(self, X: Any, sample_weight: Any):
        """Checked X, weights (or None), log p(x_n) (N,) and responsibilities (N, K)."""
        X = self._validate_predict_data(X)
        weights = check_sample_weight(sample_weight, X.shape[0])
        log_norm, resp = self._e_step(X)
        return X, weights, log_norm, resp

    def score(self, X: Any, y: Any = None, sample_weight: Any = None) -> float:
        """Mean log-likelihood per sample, ``sum_n w_n log p(x_n) / sum_n w_n``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : Ignored
        sample_weight : array-like of shape (n_samples,), optional
            Frequency weights (a weighted mean, as scikit-learn's scores take them).

        Returns
        -------
        float
        """
        if sample_weight is None:
            return float(np.mean(self.score_samples(X)))
        X, weights, log_norm, _ = self._score_parts(X, sample_weight)
        return weighted_sum(log_norm, weights) / float(weights.sum())

    def objective(self, X: Any, sample_weight: Any = None) -> float:
        """The EM objective at the current parameters, per sample.

        ``(log p(X | theta) + log p(theta)) / N`` for MAP-EM (all normalising constants of
        the prior densities included, i.e. PyMC's ``model.logp(jacobian=False) / N`` for the
        same priors), ``score(X)`` for maximum likelihood. ``lower_bounds_`` holds this
        quantity at the parameters entering each iteration.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        sample_weight : array-like of shape (n_samples,), optional
            Frequency weights: ``(sum_n w_n log p(x_n) + log p(theta)) / sum_n w_n``.

        Returns
        -------
        float
        """
        X, weights, log_norm, _ = self._score_parts(X, sample_weight)
        return self._objective(log_norm, weights)

    def sample(self, n_samples: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Draw from the fitted mixture (seeded by ``random_state``).

        Parameters
        ----------
        n_samples : int, default 1

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
        labels : ndarray of shape (n_samples,)
            The component of each draw (draws are grouped by component).
        """
        check_is_fitted(self)
        n_samples = check_positive(n_samples, "n_samples", integer=True)
        rng = check_generator(self.random_state)
        counts = rng.multinomial(n_samples, np.asarray(self.weights_, dtype=np.float64))
        X = np.concatenate(
            [self._sample_component(k, int(c), rng) for k, c in enumerate(counts)], axis=0
        )
        labels = np.repeat(np.arange(self.n_components), counts)
        return X, labels

    # ------------------------------------------------------------------ criteria
    def _criterion_parts(self, X: Any, sample_weight: Any):
        """``log L = sum_n w_n log p(x_n)``, ``n = sum_n w_n``, resp (N, K), weights or None."""
        X, weights, log_norm, resp = self._score_parts(X, sample_weight)
        n = X.shape[0] if weights is None else float(weights.sum())
        return weighted_sum(log_norm, weights), n, resp, weights

    def bic(self, X: Any, sample_weight: Any = None, *, convention: str = "sklearn") -> float:
        """Bayesian information criterion.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        sample_weight : array-like of shape (n_samples,), optional
            Frequency weights: ``log L = sum_n w_n log p(x_n)`` and ``N = sum_n w_n`` (the
            values of the data set with repeated rows).
        convention : {"sklearn", "mclust"}, default "sklearn"
            "sklearn": ``-2 log L + p log N`` (lower is better, as scikit-learn's);
            "mclust": ``2 log L - p log N`` (higher is better, the numbers R's mclust prints).

        Returns
        -------
        float
        """
        sign = _criterion_sign(convention)
        log_lik, n, _, _ = self._criterion_parts(X, sample_weight)
        return sign * (-2.0 * log_lik + self._n_parameters() * math.log(n))

    def aic(self, X: Any, sample_weight: Any = None) -> float:
        """Akaike information criterion ``-2 log L + 2 p`` (lower is better).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        sample_weight : array-like of shape (n_samples,), optional
            Frequency weights: ``log L = sum_n w_n log p(x_n)``.

        Returns
        -------
        float
        """
        log_lik, _, _, _ = self._criterion_parts(X, sample_weight)
        return -2.0 * log_lik + 2.0 * self._n_parameters()

    def icl(self, X: Any, sample_weight: Any = None, *, convention: str = "sklearn") -> float:
        """Integrated completed likelihood criterion (Biernacki, Celeux & Govaert 2000).

        It penalises overlapping components more than BIC does.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        sample_weight : array-like of shape (n_samples,), optional
            Frequency weights: BIC as in :meth:`bic`, each row's term times ``w_n``.
        convention : {"sklearn", "mclust"}, default "sklearn"
            "sklearn": ``BIC + 2 E`` in BIC's lower-is-better convention, with the
            classification entropy ``E = -sum_n sum_k r_nk log r_nk >= 0``. "mclust": R
            mclust's ``icl``, ``2 log L - p log N + 2 sum_n log max_k r_nk`` (higher is
            better; the hard classification's term instead of the entropy).

        Returns
        -------
        float
        """
        sign = _criterion_sign(convention)
        log_lik, n, resp, weights = self._criterion_parts(X, sample_weight)
        bic = -2.0 * log_lik + self._n_parameters() * math.log(n)
        if convention == "mclust":
            with np.errstate(divide="ignore"):
                per_row = -np.log(resp.max(axis=1))
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                per_row = -np.sum(np.where(resp > 0, resp * np.log(resp), 0.0), axis=1)
        return sign * (bic + 2.0 * weighted_sum(per_row, weights))
