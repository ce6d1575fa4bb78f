"""Session-scoped fits shared by the inference tests: each model is compiled once."""

import time

import numpy as np
import pytest

from bayesmix import _math
from bayesmix.config import FitSpec, ModelSpec, PriorSpec, RunSpec
from bayesmix.data import load_old_faithful

FULL2 = ModelSpec("gaussian", 2, "full")
ONE_D = ModelSpec("gaussian", 2, "diag")
DIAG2 = ModelSpec("gaussian", 2, "diag")
BERN = ModelSpec("bernoulli", 2, priors=PriorSpec(beta_a=2.0, beta_b=2.0))

TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="session")
def faithful():
    return load_old_faithful()


@pytest.fixture(scope="session")
def faithful_run(faithful):
    """em -> map -> nuts (2 chains x 300) on Old Faithful, both columns, K=2 full."""
    from bayesmix.inference import run

    spec = RunSpec(
        name="faithful",
        model=FULL2,
        fit=FitSpec(methods=("em", "map", "nuts"), draws=300, tune=300, chains=2, seed=1),
    )
    t = time.perf_counter()
    tree = run(spec, faithful)
    TIMINGS["faithful run (compile + em + map + nuts 2x300), s"] = time.perf_counter() - t
    return tree


@pytest.fixture(scope="session")
def bernoulli_data():
    """(200, 6) binary data from a well-separated 2-component Bernoulli mixture."""
    truth = {
        "w": np.array([0.4, 0.6]),
        "p": np.array([[0.9, 0.8, 0.1, 0.2, 0.7, 0.3], [0.1, 0.3, 0.8, 0.9, 0.4, 0.6]]),
    }
    X, z = _math.sample_mixture(truth, 200, "bernoulli", np.random.default_rng(3))
    return X.astype(np.int64), z, truth


def pytest_terminal_summary(terminalreporter):
    if TIMINGS:
        terminalreporter.write_sep("-", "bayesmix inference timings")
        for k, v in TIMINGS.items():
            terminalreporter.write_line(f"{k}: {v:.1f}")
