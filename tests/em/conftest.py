"""Fixtures and hypothesis profiles for the EM engine tests.

Hypothesis: without the environment variable HYPOTHESIS_PROFILE (as in CI, ``.ci/run``) the
property tests here use the profile "em-fast" (30 examples, no deadline; registered in
``em_helpers.hypothesis_settings``). Two more profiles are registered, "ci" (100 examples) and
"long" (1000); choose one with HYPOTHESIS_PROFILE (e.g. ``HYPOTHESIS_PROFILE=long uv run pytest
tests/em``). The default profile of hypothesis itself is left alone, so that other test folders
keep their settings. (``tests/reliability`` uses "ci" when HYPOTHESIS_PROFILE is unset.)
"""

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

_COMMON = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}
settings.register_profile("ci", max_examples=100, **_COMMON)
settings.register_profile("long", max_examples=1000, **_COMMON)
if os.environ.get("HYPOTHESIS_PROFILE"):
    settings.load_profile(os.environ["HYPOTHESIS_PROFILE"])


@pytest.fixture(scope="session")
def old_faithful() -> np.ndarray:
    """Old Faithful (272, 2): columns eruptions, waiting."""
    from bayesmix.data import load_old_faithful

    return load_old_faithful()[["eruptions", "waiting"]].to_numpy(dtype=np.float64)
