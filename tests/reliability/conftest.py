"""Fixtures and hypothesis profiles for the reliability tests (issue 8).

Hypothesis profiles: the same names and settings as ``tests/em/conftest.py`` ("ci": 100
examples, "long": 1000), registered here too so that this folder runs on its own. Without the
environment variable HYPOTHESIS_PROFILE the property tests here use "ci"; choose another with
e.g. ``HYPOTHESIS_PROFILE=long uv run pytest tests/reliability``. The number of examples each
property test ran is printed at the end of the run ("bayesmix reliability: hypothesis
examples").

NUTS fixtures are session-scoped, and each spec/data shape is compiled once per session (the
inference cache, :func:`bayesmix.inference.get_compiled`).
"""

from __future__ import annotations

import os
import sys
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

_COMMON = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}
settings.register_profile("ci", max_examples=100, **_COMMON)
settings.register_profile("long", max_examples=1000, **_COMMON)

EXAMPLES: Counter[str] = Counter()
NUMBERS: dict[str, str] = {}  # measured numbers worth reading, printed in the summary


def property_settings() -> settings:
    """The settings of the property tests: HYPOTHESIS_PROFILE if set, else "ci"."""
    return settings(settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE") or "ci"))


@pytest.fixture(scope="session")
def numbers() -> dict[str, str]:
    """Measured numbers to print at the end of the run (name -> formatted value)."""
    return NUMBERS


@pytest.fixture(scope="session")
def examples() -> Counter[str]:
    """Counter of hypothesis examples run per test (printed in the terminal summary)."""
    return EXAMPLES


def pytest_terminal_summary(terminalreporter):
    if EXAMPLES:
        profile = os.environ.get("HYPOTHESIS_PROFILE") or "ci"
        terminalreporter.write_sep(
            "-", f"bayesmix reliability: hypothesis examples (profile {profile})"
        )
        for name, n in sorted(EXAMPLES.items()):
            terminalreporter.write_line(f"{name}: {n}")
        terminalreporter.write_line(f"total: {sum(EXAMPLES.values())}")
    if NUMBERS:
        terminalreporter.write_sep("-", "bayesmix reliability: measured numbers")
        for name, value in NUMBERS.items():
            terminalreporter.write_line(f"{name}: {value}")


@pytest.fixture(scope="session")
def sbc_module():
    """``validation/sbc.py`` imported as a module (it is a script, not part of the package)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "validation" / "sbc.py"
    spec = importlib.util.spec_from_file_location("bayesmix_validation_sbc", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def rng() -> np.random.Generator:
    return np.random.default_rng(20260811)
