"""K-means (Lloyd's algorithm) and k-means++ seeding, in NumPy.

Lloyd's algorithm is hard EM for a Gaussian mixture whose components share one fixed
spherical covariance ``sigma^2 I`` and equal weights, in the limit ``sigma -> 0``: the
responsibilities become one-hot (E-step: assign each point to its nearest centre), and the
M-step for the means is the average of the assigned points. The objective that decreases
monotonically is the inertia ``sum_n ||x_n - c_{z_n}||^2``, the negative complete-data
log-likelihood up to the factor ``1/(2 sigma^2)`` and a constant.

:func:`kmeans_plusplus` is also the seeding of :class:`bayesmix.em.GaussianMixtureEM` with
``init_params="k-means++"``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    ClusterMixin,
    TransformerMixin,
)
from sklearn.utils.validation import check_is_fitted, validate_data

from bayesmix._validation import (
    DataError,
    ParameterError,
    check_choice,
    check_generator,
    check_n_components,
    check_positive,
    check_X,
)
from bayesmix.em._arrays import check_sample_weight, reject_complex, row_blocks

__all__ = ["KMeans", "kmeans_plusplus"]

_BLOCK_ELEMENTS = 1 << 18


def _squared_distances(X: np.ndarray, centers: np.ndarray, x_sq: np.ndarray | None = None):
    """Squared Euclidean distances, shape (n, k), via ||x||^2 - 2 x.c + ||c||^2 (clipped >= 0)."""
    if x_sq is None:
        x_sq = np.einsum("ij,ij->i", X, X)
    d = X @ centers.T
    d *= -2.0
    d += x_sq[:, None]
    d += np.einsum("ij,ij->i", centers, centers)
    np.maximum(d, 0.0, out=d)
    return d


def _weighted_rows(cumulative: np.ndarray, rng: np.random.Generator, size=None):
    """Rows drawn with probability proportional to their weight (``cumulative`` = cumsum(w)).

    A row of weight 0 has an empty interval and is never drawn. Integer weights draw an
    index of the data set with repeated rows, as the unweighted seeding does on that data
    set (``rng.integers(sum w)``), and return its row: the same draws, so integer weights
    and repeated rows give the same seeds.
    """
    n, total = len(cumulative), cumulative[-1]
    if total < 2.0**53 and np.all(np.diff(cumulative, prepend=0.0) % 1.0 == 0.0):
        target = rng.integers(int(total), size=size)
    else:
        target = rng.uniform(size=size) * total
    return np.minimum(np.searchsorted(cumulative, target, side="right"), n - 1)


def kmeans_plusplus(
    X: np.ndarray,
    n_clusters: int,
    random_state: Any = None,
    *,
    n_local_trials: int | None = None,
    sample_weight: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy k-means++ seeding (Arthur & Vassilvitskii 2007).

    The first centre is a uniformly drawn row; each next centre is the best (lowest total
    squared distance) of ``n_local_trials`` candidates drawn with probability proportional to
    the squared distance to the nearest centre chosen so far. With ``sample_weight`` (as
    scikit-learn's ``kmeans_plusplus``) the first row is drawn with probability proportional
    to its weight, candidates proportional to weight times squared distance, and the totals
    are weighted sums: rows of weight 0 are never drawn and do not count.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    n_clusters : int
    random_state : None, int, numpy Generator or RandomState
    n_local_trials : int, optional
        Candidates per step; default ``2 + int(log(n_clusters))``.
    sample_weight : ndarray of shape (n_samples,), optional
        Frequency weights (checked: non-negative, finite, not all 0).

    Returns
    -------
    centers : ndarray of shape (n_clusters, n_features)
    indices : ndarray of shape (n_clusters,)
        Row of X chosen for each centre.
    """
    X = np.asarray(X)
    rng = check_generator(random_state)
    n, d = X.shape
    n_clusters = check_n_components(n_clusters, "n_clusters")
    if n_clusters > n:
        raise ParameterError(
            f"n_clusters is larger than the data: expected at most n_samples={n}, got "
            f"{n_clusters}; use fewer clusters"
        )
    if n_local_trials is None:
        n_local_trials = 2 + int(np.log(n_clusters))
    w = check_sample_weight(sample_weight, n)
    if w is not None and np.count_nonzero(w) < n_clusters:
        raise ParameterError(
            f"n_clusters is larger than the rows of positive weight: expected at most "
            f"{np.count_nonzero(w)}, got {n_clusters}; use fewer clusters"
        )
    x_sq = np.einsum("ij,ij->i", X, X)
    indices = np.empty(n_clusters, dtype=np.intp)
    if w is None:
        indices[0] = rng.integers(n)
    else:
        cum_w = np.cumsum(w)
        indices[0] = _weighted_rows(cum_w, rng)
    closest = _squared_distances(X, X[indices[:1]], x_sq)[:, 0]
    potential = closest.sum() if w is None else closest @ w
    for c in range(1, n_clusters):
        if potential > 0:
            cumulative = np.cumsum(closest if w is None else closest * w)
            targets = rng.uniform(size=n_local_trials) * cumulative[-1]
            candidates = np.minimum(np.searchsorted(cumulative, targets), n - 1)
        elif w is None:  # every point coincides with a chosen centre
            candidates = rng.integers(n, size=n_local_trials)
        else:
            candidates = _weighted_rows(cum_w, rng, n_local_trials)
        dist = _squared_distances(X[candidates], X, x_sq[candidates])  # (trials, n)
        np.minimum(dist, closest, out=dist)
        potentials = dist.sum(axis=1) if w is None else dist @ w
        best = int(np.argmin(potentials))
        closest, potential = dist[best], potentials[best]
        indices[c] = candidates[best]
    return X[indices].copy(), indices


class KMeans(ClassNamePrefixFeaturesOutMixin, TransformerMixin, ClusterMixin, BaseEstimator):
    """K-means clustering by Lloyd's algorithm (hard EM; see the module docstring).

    Parameters
    ----------
    n_clusters : int, default 8
    init : {"k-means++", "random"} or ndarray of shape (n_clusters, n_features)
        Seeding: :func:`kmeans_plusplus`, ``n_clusters`` distinct random rows, or given centres.
    n_init : int, default 1
        Number of seedings; the run with the lowest inertia is kept.
    max_iter : int, default 300
    tol : float, default 1e-4
        Stop when the summed squared shift of the centres is at most
        ``tol * mean(var(X, axis=0))`` (scikit-learn's convention).
    random_state : None, int, numpy Generator or RandomState

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (n_clusters, n_features)
    labels_ : ndarray of shape (n_samples,)
    inertia_ : float
        Sum of squared distances of the points to their centre.
    n_iter_ : int
    n_features_in_ : int
    """

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        init: Any = "k-means++",
        n_init: int = 1,
        max_iter: int = 300,
        tol: float = 1e-4,
        random_state: Any = None,
    ) -> None:
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state

    def _check_params(self, X):
        check_positive(self.n_init, "n_init", integer=True)
        check_positive(self.max_iter, "max_iter", integer=True)
        check_positive(self.tol, "tol", strict=False)
        if isinstance(self.init, str):
            check_choice(self.init, "init", ("k-means++", "random"))
        else:
            init = np.asarray(self.init, dtype=X.dtype)
            if init.shape != (self.n_clusters, X.shape[1]):
                raise ParameterError(
                    f"init has the wrong shape: expected {(self.n_clusters, X.shape[1])}, got "
                    f"{init.shape}; pass one centre per cluster"
                )

    def _block(self, d):
        return max(64, _BLOCK_ELEMENTS // max(1, self.n_clusters * d))

    def _assign(self, X, centers, x_sq):
        n = X.shape[0]
        labels = np.empty(n, dtype=np.intp)
        dmin = np.empty(n, dtype=X.dtype)
        for rows in row_blocks(n, self._block(X.shape[1])):
            dist = _squared_distances(X[rows], centers, x_sq[rows])
            labels[rows] = dist.argmin(axis=1)
            dmin[rows] = dist[np.arange(dist.shape[0]), labels[rows]]
        return labels, dmin

    def _update_centers(self, X, labels, dmin, w=None):
        k, d = self.n_clusters, X.shape[1]
        if w is None:
            counts = np.bincount(labels, minlength=k)
            sums = np.stack(
                [np.bincount(labels, weights=X[:, j], minlength=k) for j in range(d)], 1
            )
            far_first = np.argsort(dmin)[::-1]
        else:  # weighted counts and sums; rows of weight 0 are never moved to a cluster
            counts = np.bincount(labels, weights=w, minlength=k)
            sums = np.stack(
                [np.bincount(labels, weights=X[:, j] * w, minlength=k) for j in range(d)], 1
            )
            far_first = np.argsort(np.where(w > 0, dmin, -1.0))[::-1]
        empty = np.flatnonzero(counts == 0)
        if empty.size:  # relocate empty clusters to the points farthest from their centres
            far = far_first[: empty.size]
            for c, i in zip(empty, far, strict=True):
                old = labels[i]
                wi = 1 if w is None else w[i]
                sums[old] -= X[i] * wi
                counts[old] -= wi
                sums[c], counts[c] = X[i] * wi, wi
                labels[i] = c
        return (sums / counts[:, None]).astype(X.dtype)

    def _lloyd(self, X, centers, x_sq, tol_abs, w=None):
        n_iter = 0
        for n_iter in range(1, self.max_iter + 1):  # noqa: B007
            labels, dmin = self._assign(X, centers, x_sq)
            new = self._update_centers(X, labels, dmin, w)
            shift = float(((new - centers) ** 2).sum())
            centers = new
            if shift <= tol_abs:
                break
        labels, dmin = self._assign(X, centers, x_sq)
        inertia = float(dmin.sum()) if w is None else float(dmin @ w)
        return centers, labels, inertia, n_iter

    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> KMeans:
        """Cluster X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : Ignored
        sample_weight : array-like of shape (n_samples,), optional
            Frequency weights (>= 0, not all 0), as in scikit-learn's ``KMeans``: weighted
            seeding, weighted centre updates, weighted inertia and tolerance (integer
            weights act as repeated rows).

        Returns
        -------
        self
        """
        X = validate_data(self, X, reset=True, skip_check_array=True)
        reject_complex(X)
        n_clusters = check_n_components(self.n_clusters, "n_clusters")
        X = check_X(X, n_components=n_clusters, dtype=np.float64)
        w = check_sample_weight(sample_weight, X.shape[0])
        if w is not None and np.count_nonzero(w) < n_clusters:
            raise DataError(
                f"too few rows with a positive sample_weight: expected at least n_clusters="
                f"{n_clusters}, got {np.count_nonzero(w)}; use fewer clusters or give more rows "
                "a positive weight"
            )
        self._check_params(X)
        rng = check_generator(self.random_state)
        x_sq = np.einsum("ij,ij->i", X, X)
        if w is None:
            tol_abs = self.tol * float(np.mean(np.var(X, axis=0)))
        else:
            mean = np.average(X, axis=0, weights=w)
            tol_abs = self.tol * float(np.mean(np.average((X - mean) ** 2, axis=0, weights=w)))
        best = None
        n_init = self.n_init if isinstance(self.init, str) else 1
        for _ in range(n_init):
            if isinstance(self.init, str) and self.init == "k-means++":
                centers, _ = kmeans_plusplus(X, n_clusters, rng, sample_weight=w)
            elif isinstance(self.init, str):
                p = None if w is None else w / w.sum()
                centers = X[rng.choice(X.shape[0], size=n_clusters, replace=False, p=p)].copy()
            else:
                centers = np.array(self.init, dtype=X.dtype)
            result = self._lloyd(X, centers, x_sq, tol_abs, w)
            if best is None or result[2] < best[2]:
                best = result
        self.cluster_centers_, self.labels_, self.inertia_, self.n_iter_ = best
        self._n_features_out = n_clusters
        return self

    def _validate_new(self, X):
        check_is_fitted(self)
        reject_complex(X)
        checked = check_X(X, dtype=np.float64)
        validate_data(self, X, reset=False, skip_check_array=True)
        return checked

    def predict(self, X: Any) -> np.ndarray:
        """Index of the nearest centre of each row.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        labels : ndarray of shape (n_samples,)
        """
        X = self._validate_new(X)
        return self._assign(X, self.cluster_centers_, np.einsum("ij,ij->i", X, X))[0]

    def fit_predict(self, X: Any, y: Any = None, sample_weight: Any = None) -> np.ndarray:
        """Fit and return ``labels_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : Ignored
        sample_weight : array-like of shape (n_samples,), optional
            Frequency weights, as in :meth:`fit`.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
        """
        return self.fit(X, sample_weight=sample_weight).labels_

    def transform(self, X: Any) -> np.ndarray:
        """Euclidean distance of each row to each centre.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        distances : ndarray of shape (n_samples, n_clusters)
        """
        X = self._validate_new(X)
        return np.sqrt(_squared_distances(X, self.cluster_centers_))

    def score(self, X: Any, y: Any = None, sample_weight: Any = None) -> float:
        """Negative inertia of X under the fitted centres (higher is better).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : Ignored
        sample_weight : array-like of shape (n_samples,), optional
            Frequency weights: the weighted sum of squared distances.

        Returns
        -------
        float
        """
        X = self._validate_new(X)
        w = check_sample_weight(sample_weight, X.shape[0])
        dmin = _squared_distances(X, self.cluster_centers_).min(axis=1)
        return -float(dmin.sum() if w is None else dmin @ w)
