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
    """Settings for the property tests: the HYPOTHESIS_PROFILE profile, else 30 examples."""
    import os

    from hypothesis import HealthCheck, settings

    name = os.environ.get("HYPOTHESIS_PROFILE")
    if name:
        return settings(settings.get_profile(name))
    return settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
