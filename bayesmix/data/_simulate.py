"""Simulators of mixture data with known truth.

Every ``make_*`` function returns ``(X, z, truth)``: the data ``X`` of shape
(n_samples, n_features), the true component labels ``z`` of shape (n_samples,), and a dict
of the true parameters under the variable names of ``docs/architecture.md`` (``w``, ``mu``,
``sigma``, ``cov``, ``p``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bayesmix._validation import (
    ParameterError,
    check_generator,
    check_n_components,
    check_positive,
    check_probability_simplex,
)

__all__ = [
    "remove_at_random",
    "make_bernoulli_mixture",
    "make_gaussian_mixture",
    "make_heights",
    "make_returns",
]


def _check_n_samples(n_samples: Any) -> int:
    return check_positive(n_samples, "n_samples", integer=True)


def _check_weights(weights: Any, n_components: int) -> np.ndarray:
    if weights is None:
        return np.full(n_components, 1.0 / n_components)
    w = check_probability_simplex(weights, "weights")
    if w.shape != (n_components,):
        raise ParameterError(
            f"weights has the wrong length: expected {n_components} (n_components), got "
            f"{w.shape[0]}; pass one weight per component or change n_components"
        )
    return w


def _check_array(value: Any, name: str, shape: tuple[int, ...], hint: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ParameterError(
            f"{name} is not numeric: expected an array of shape {shape}, got "
            f"{type(value).__name__}; pass numbers"
        ) from None
    if arr.shape != shape:
        raise ParameterError(
            f"{name} has the wrong shape: expected {shape}, got {arr.shape}; {hint}"
        )
    if not np.all(np.isfinite(arr)):
        raise ParameterError(
            f"{name} contains NaN or inf: expected finite numbers of shape {shape}; "
            "pass finite values"
        )
    return arr


def _draw_labels(rng: np.random.Generator, n_samples: int, w: np.ndarray) -> np.ndarray:
    return rng.choice(w.shape[0], size=n_samples, p=w).astype(np.int64)


def _draw_gaussian(
    rng: np.random.Generator, z: np.ndarray, mu: np.ndarray, chol: np.ndarray
) -> np.ndarray:
    """Draw x_n ~ N(mu[z_n], L[z_n] L[z_n]^T) for every n.

    Parameters
    ----------
    rng : numpy.random.Generator
    z : ndarray of shape (n_samples,)
    mu : ndarray of shape (n_components, n_features)
    chol : ndarray of shape (n_components, n_features, n_features)
        Lower Cholesky factors of the covariances.
    """
    eps = rng.standard_normal((z.shape[0], mu.shape[1]))
    return mu[z] + np.einsum("nij,nj->ni", chol[z], eps)


def _default_means(
    rng: np.random.Generator, n_components: int, n_features: int, separation: float
) -> np.ndarray:
    """Means with neighbours exactly ``separation`` apart (min pairwise distance)."""
    if n_components == 1:
        return np.zeros((1, n_features))
    if n_features == 1:
        centre = (n_components - 1) / 2.0
        return (separation * (np.arange(n_components) - centre)).reshape(-1, 1)
    # Regular polygon in a random 2-D plane: neighbouring vertices are a chord 2 r sin(pi / K)
    # apart, and that chord is the smallest pairwise distance.
    radius = separation / (2.0 * np.sin(np.pi / n_components))
    q, _ = np.linalg.qr(rng.standard_normal((n_features, 2)))
    angles = rng.uniform(0.0, 2.0 * np.pi) + 2.0 * np.pi * np.arange(n_components) / n_components
    circle = radius * np.column_stack([np.cos(angles), np.sin(angles)])
    return circle @ q.T


def _default_covariances(
    rng: np.random.Generator, n_components: int, n_features: int
) -> np.ndarray:
    """Random covariances: sds in [0.75, 1.25], correlations moderate (mostly |r| < 0.5)."""
    covs = np.empty((n_components, n_features, n_features))
    for k in range(n_components):
        a = rng.standard_normal((n_features, n_features))
        s = a @ a.T + n_features * np.eye(n_features)
        d = np.sqrt(np.diag(s))
        corr = s / np.outer(d, d)
        sd = rng.uniform(0.75, 1.25, size=n_features)
        covs[k] = corr * np.outer(sd, sd)
    return covs


def make_gaussian_mixture(
    n_samples: int = 500,
    n_components: int = 3,
    n_features: int = 2,
    *,
    weights: Any = None,
    means: Any = None,
    covariances: Any = None,
    separation: float = 5.0,
    random_state: int | np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Draw data from a Gaussian mixture with full covariances.

    Parameters
    ----------
    n_samples : int, default 500
        Number of points N.
    n_components : int, default 3
        Number of components K.
    n_features : int, default 2
        Dimension D.
    weights : array-like of shape (K,), optional
        Mixing weights (a probability vector). Default: equal weights 1/K.
    means : array-like of shape (K, D), optional
        Component means. Default: K points on a regular polygon (on a line when D = 1) in a
        random 2-D plane, centred at 0, with neighbouring means exactly ``separation`` apart
        (Euclidean distance). Since the default covariances have marginal standard
        deviations between 0.75 and 1.25, that is about ``separation`` standard deviations.
    covariances : array-like of shape (K, D, D), optional
        Symmetric positive definite covariance matrices. Default: random matrices with
        standard deviations uniform in [0.75, 1.25] and moderate correlations (the
        normalised ``A A^T + D I`` with standard normal ``A``).
    separation : float, default 5.0
        Distance between neighbouring default means; ignored when ``means`` is given.
    random_state : int, numpy.random.Generator or None
        Seed or generator (passed to :func:`numpy.random.default_rng`).

    Returns
    -------
    X : ndarray of shape (N, D)
        float64 data.
    z : ndarray of shape (N,)
        int64 component labels 0..K-1.
    truth : dict
        ``"w"`` (K,), ``"mu"`` (K, D), ``"cov"`` (K, D, D), ``"sigma"`` (K, D) = the square
        roots of the diagonals of ``cov``.

    Raises
    ------
    ParameterError
        For invalid sizes, weights that are not a probability vector, arrays of the wrong
        shape, or covariances that are not symmetric positive definite.
    """
    n_samples = _check_n_samples(n_samples)
    n_components = check_n_components(n_components)
    n_features = check_n_components(n_features, "n_features")
    separation = check_positive(separation, "separation")
    rng = check_generator(random_state)
    shape_hint = "or change n_components / n_features to match"

    w = _check_weights(weights, n_components)
    if means is None:
        mu = _default_means(rng, n_components, n_features, separation)
    else:
        mu = _check_array(
            means,
            "means",
            (n_components, n_features),
            f"pass one row of {n_features} numbers per component {shape_hint}",
        )
    if covariances is None:
        cov = _default_covariances(rng, n_components, n_features)
    else:
        cov = _check_array(
            covariances,
            "covariances",
            (n_components, n_features, n_features),
            f"pass one {n_features}x{n_features} matrix per component {shape_hint}",
        )
        for k in range(n_components):
            if not np.allclose(cov[k], cov[k].T, rtol=1e-10, atol=1e-12):
                raise ParameterError(
                    f"covariances[{k}] is not symmetric: expected cov == cov.T, got an "
                    "asymmetric matrix; pass (cov + cov.T) / 2"
                )
    try:
        chol = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        eig_min = [float(np.linalg.eigvalsh(c)[0]) for c in cov]
        k = int(np.argmin(eig_min))
        raise ParameterError(
            f"covariances[{k}] is not positive definite: expected eigenvalues > 0, got a "
            f"smallest eigenvalue of {eig_min[k]:.3g}; add a small multiple of the identity"
        ) from None

    z = _draw_labels(rng, n_samples, w)
    X = _draw_gaussian(rng, z, mu, chol)
    truth = {
        "w": w,
        "mu": mu,
        "cov": cov,
        "sigma": np.sqrt(np.diagonal(cov, axis1=1, axis2=2)).copy(),
    }
    return X, z, truth


def make_bernoulli_mixture(
    n_samples: int = 500,
    n_components: int = 3,
    n_features: int = 16,
    *,
    weights: Any = None,
    probs: Any = None,
    random_state: int | np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Draw binary data from a mixture of independent Bernoulli products.

    Parameters
    ----------
    n_samples : int, default 500
        Number of points N.
    n_components : int, default 3
        Number of components K.
    n_features : int, default 16
        Number of binary features D.
    weights : array-like of shape (K,), optional
        Mixing weights. Default: equal weights 1/K.
    probs : array-like of shape (K, D), optional
        Success probabilities in [0, 1]. Default: Beta(0.5, 0.5) draws clipped to
        [0.05, 0.95], so that components differ clearly.
    random_state : int, numpy.random.Generator or None
        Seed or generator (passed to :func:`numpy.random.default_rng`).

    Returns
    -------
    X : ndarray of shape (N, D)
        int8 values 0/1.
    z : ndarray of shape (N,)
        int64 component labels 0..K-1.
    truth : dict
        ``"w"`` (K,) and ``"p"`` (K, D).

    Raises
    ------
    ParameterError
        For invalid sizes, weights or probabilities.
    """
    n_samples = _check_n_samples(n_samples)
    n_components = check_n_components(n_components)
    n_features = check_n_components(n_features, "n_features")
    rng = check_generator(random_state)

    w = _check_weights(weights, n_components)
    if probs is None:
        p = np.clip(rng.beta(0.5, 0.5, size=(n_components, n_features)), 0.05, 0.95)
    else:
        p = _check_array(
            probs,
            "probs",
            (n_components, n_features),
            f"pass one row of {n_features} probabilities per component or change "
            "n_components / n_features to match",
        )
        if np.any((p < 0) | (p > 1)):
            k, j = np.argwhere((p < 0) | (p > 1))[0]
            raise ParameterError(
                f"probs[{k}, {j}] is out of range: expected a probability in [0, 1], got "
                f"{p[k, j]:g}; pass probabilities"
            )
    z = _draw_labels(rng, n_samples, w)
    X = (rng.random((n_samples, n_features)) < p[z]).astype(np.int8)
    return X, z, {"w": w, "p": p}


def _make_univariate(
    n_samples: Any,
    random_state: Any,
    w: list[float],
    mu: list[float],
    sigma: list[float],
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    n_samples = _check_n_samples(n_samples)
    rng = check_generator(random_state)
    truth = {
        "w": np.asarray(w, dtype=np.float64),
        "mu": np.asarray(mu, dtype=np.float64).reshape(-1, 1),
        "sigma": np.asarray(sigma, dtype=np.float64).reshape(-1, 1),
    }
    z = _draw_labels(rng, n_samples, truth["w"])
    X = truth["mu"][z] + truth["sigma"][z] * rng.standard_normal((n_samples, 1))
    return X, z, truth


def make_heights(
    n_samples: int = 1000, *, random_state: int | np.random.Generator | None = None
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Adult heights in cm: an even mix of women N(164, 7^2) and men N(177, 7.5^2).

    The numbers are approximate adult values, for teaching (not estimates for any
    population). The two means are 13 cm apart, less than two standard deviations, so the
    mixture density has a single mode: the histogram looks like one slightly flat,
    asymmetric bump, although it is a mixture of two groups.

    Parameters
    ----------
    n_samples : int, default 1000
        Number of people N.
    random_state : int, numpy.random.Generator or None
        Seed or generator (passed to :func:`numpy.random.default_rng`).

    Returns
    -------
    X : ndarray of shape (N, 1)
        Heights in cm, float64.
    z : ndarray of shape (N,)
        0 = female, 1 = male (int64).
    truth : dict
        ``"w"`` = [0.5, 0.5] (2,), ``"mu"`` = [[164], [177]] (2, 1),
        ``"sigma"`` = [[7], [7.5]] (2, 1).
    """
    return _make_univariate(n_samples, random_state, [0.5, 0.5], [164.0, 177.0], [7.0, 7.5])


def make_returns(
    n_samples: int = 1000, *, random_state: int | np.random.Generator | None = None
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Daily returns in percent from a calm and a crisis regime (illustrative numbers).

    Calm days N(0.05, 0.8^2) with weight 0.85, crisis days N(-0.1, 3.0^2) with weight 0.15:
    a scale mixture with one mode and heavy tails. The values are illustrative, not
    estimated from any market. Days are drawn independently (no volatility clustering).

    Parameters
    ----------
    n_samples : int, default 1000
        Number of days N.
    random_state : int, numpy.random.Generator or None
        Seed or generator (passed to :func:`numpy.random.default_rng`).

    Returns
    -------
    X : ndarray of shape (N, 1)
        Returns in percent, float64.
    z : ndarray of shape (N,)
        0 = calm, 1 = crisis (int64).
    truth : dict
        ``"w"`` = [0.85, 0.15] (2,), ``"mu"`` = [[0.05], [-0.1]] (2, 1),
        ``"sigma"`` = [[0.8], [3.0]] (2, 1).
    """
    return _make_univariate(n_samples, random_state, [0.85, 0.15], [0.05, -0.1], [0.8, 3.0])


def remove_at_random(X: Any, fraction: float, random_state: Any = None) -> np.ndarray:
    """A float copy of X with ``round(fraction * X.size)`` entries NaN, completely at random.

    Missing completely at random (for trying ``missing="model"``): the entries are taken in
    a random order, skipping any that would leave its row with no observed value, so no row
    is emptied (the fraction is then reached as long as it is below ``(D - 1) / D``).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    fraction : float
        Share of the entries to remove, in [0, 1).
    random_state : None, int or numpy Generator

    Returns
    -------
    ndarray of shape (n_samples, n_features), float64

    Examples
    --------
    >>> import numpy as np
    >>> from bayesmix.data import remove_at_random
    >>> X = remove_at_random(np.ones((4, 3)), 0.25, random_state=0)
    >>> int(np.isnan(X).sum()), bool(np.isnan(X).all(axis=1).any())
    (3, False)
    """
    out = np.array(X, dtype=np.float64)
    if out.ndim != 2:
        raise ParameterError(
            f"X has the wrong shape: expected (n_samples, n_features), got {out.shape}; pass "
            "a 2-D array"
        )
    fraction = float(fraction)
    if not 0.0 <= fraction < 1.0:
        raise ParameterError(
            f"fraction is invalid: expected a share in [0, 1), got {fraction}; pass e.g. 0.15"
        )
    rng = check_generator(random_state)
    n, d = out.shape
    order = rng.permutation(n * d)  # the entries in random order
    rows = order // d
    # the rank of each entry among its row's entries in that order: the first d - 1 of a row
    # may go (its last observed value stays)
    by_row = np.argsort(rows, kind="stable")
    rank = np.empty(n * d, dtype=np.int64)
    rank[by_row] = np.arange(n * d) - np.repeat(np.arange(n) * d, d)
    removable = order[rank < d - 1]
    gone = removable[: round(fraction * n * d)]
    out[gone // d, gone % d] = np.nan
    return out
