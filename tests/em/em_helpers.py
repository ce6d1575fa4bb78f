"""Shared data makers for the EM tests (imported by the test modules)."""

import numpy as np


def three_blobs(rng: np.random.Generator, d: int, n: int = 450) -> np.ndarray:
    """Three overlapping Gaussian clusters of sizes 4:3:2 in d dimensions."""
    sizes = np.array([4, 3, 2]) * n // 9
    return np.concatenate(
        [
            rng.normal(0.0, 1.0, size=(sizes[0], d)),
            rng.normal(3.0, 0.5, size=(sizes[1], d)),
            rng.normal(-2.0, 1.5, size=(sizes[2], d)),
        ]
    )


def hypothesis_settings():
    """Settings for the property tests: the HYPOTHESIS_PROFILE profile, else "em-fast".

    CI (``.ci/run``) sets no HYPOTHESIS_PROFILE, so it runs the EM property tests with the
    "em-fast" profile registered here: 30 examples, no deadline. The formulas those tests
    sample (M-steps, objectives) also have deterministic tests that fail every time
    (``test_em_map.py``, ``test_em_tied_map_and_restarts.py``).
    """
    import os

    from hypothesis import HealthCheck, settings

    settings.register_profile(
        "em-fast", max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )
    return settings(settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE") or "em-fast"))


def rough_start(X: np.ndarray, covariance_type: str, rng: np.random.Generator, k: int = 3) -> dict:
    """Deliberately rough starting values: K random rows as means, the data variance as scale.

    Returns the ``weights_init``, ``means_init`` and ``precisions_init`` keyword arguments
    of :class:`bayesmix.em.GaussianMixtureEM`, shaped for ``covariance_type``.
    """
    means = X[rng.choice(len(X), size=k, replace=False)]
    var = X.var(axis=0)
    prec = {
        "full": np.repeat(np.diag(1.0 / var)[None], k, axis=0),
        "tied": np.diag(1.0 / var),
        "diag": np.repeat((1.0 / var)[None], k, axis=0),
        "spherical": np.full(k, 1.0 / var.mean()),
    }[covariance_type]
    return {"weights_init": np.full(k, 1.0 / k), "means_init": means, "precisions_init": prec}


def sklearn_start(X: np.ndarray, covariance_type: str, k: int = 3) -> dict:
    """Starting values from one scikit-learn EM iteration (both sides get the same ones).

    Returns the ``weights_init``, ``means_init`` and ``precisions_init`` keyword arguments
    shared by :class:`bayesmix.em.GaussianMixtureEM` and ``sklearn.mixture.GaussianMixture``.
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref = GaussianMixture(k, covariance_type=covariance_type, max_iter=1, random_state=0)
        ref.fit(X)
    return {
        "weights_init": ref.weights_,
        "means_init": ref.means_,
        "precisions_init": ref.precisions_,
    }


def fit_iterations(X, covariance_type: str, start: dict, n_iter: int, **kw):
    """``GaussianMixtureEM`` run for exactly ``n_iter`` iterations from ``start``.

    ``tol=1e-300`` so that EM never stops early; the ConvergenceWarning this gives is
    silenced. K is the length of ``start["weights_init"]``; ``kw`` go to the estimator.
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    from bayesmix.em import GaussianMixtureEM

    est = GaussianMixtureEM(
        len(start["weights_init"]),
        covariance_type=covariance_type,
        tol=1e-300,
        max_iter=n_iter,
        **start,
        **kw,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X)
