"""The two nutpie routes of CompiledMixture: Python callbacks ("pyfunc") and Numba callbacks.

Both must sample the same density: the pyfunc route calls the log density that MAP also uses
(with the Jacobian terms switched on), the Numba route nutpie's own compilation of the model.
"""

import numpy as np
import pytest

from bayesmix.graphs import point_to_initvals
from bayesmix.inference import get_compiled
from bayesmix.inference._compiled import _PYFUNC_MAX_WORK
from bayesmix.inference._tree import point_from_group

from .conftest import FULL2

FEATURES = ["eruptions", "waiting"]


@pytest.fixture(scope="module")
def cm(faithful_run, faithful):
    # the model the session's Old Faithful run compiled (same spec and shape)
    return get_compiled(FULL2, faithful[FEATURES])


def test_backend_choice_follows_the_work(cm):
    per_eval = cm.n_obs * 2 * 2**2  # N K D^2 for full covariances
    assert cm.nutpie_backend(4 * 2000 * 16) == "pyfunc"  # the main job: 3e8 < 1e10
    assert cm.nutpie_backend(int(2 * _PYFUNC_MAX_WORK / per_eval)) == "numba"
    with pytest.raises(ValueError, match="unknown nutpie backend"):
        cm.nutpie_model(backend="stan")


def test_jacobian_terms_are_the_difference_of_the_two_densities(cm):
    rng = np.random.default_rng(0)
    flat = rng.normal(0.0, 0.3, cm.n_dim)
    point = cm.unravel(flat)
    lp, g = cm.logp_grad(flat)
    lpj, gj = cm.logp_grad(flat, jacobian=True)
    # references: PyMC's own compiled densities at the same point
    ref = cm.model.compile_logp(jacobian=False, mode="FAST_COMPILE")(point)
    refj = cm.model.compile_logp(jacobian=True, mode="FAST_COMPILE")(point)
    np.testing.assert_allclose([lp, lpj], [ref, refj], rtol=1e-10)
    assert abs(lpj - lp) > 1e-3  # the transforms do contribute
    dref = cm.model.compile_dlogp(jacobian=True, mode="FAST_COMPILE")(point)
    np.testing.assert_allclose(gj, dref, rtol=1e-8, atol=1e-8)
    assert not np.allclose(g, gj)


def test_pyfunc_chains_do_not_share_state_between_threads(cm, faithful_run):
    """Four chains on two threads give the same draws as on one thread (same seeds)."""
    import nutpie

    m = point_to_initvals(FULL2, point_from_group(faithful_run, "map"), 2)
    x0 = cm.to_unconstrained(m)
    model = cm.nutpie_model(x0, backend="pyfunc")
    kw = dict(draws=60, tune=60, chains=4, seed=11, progress_bar=False)
    one = nutpie.sample(model, cores=1, **kw)
    two = nutpie.sample(model, cores=2, **kw)
    for name in ("w", "mu", "cov"):
        np.testing.assert_array_equal(one.posterior[name].values, two.posterior[name].values)
    assert one.posterior["mu"].dims == ("chain", "draw", "component", "feature")


def test_numba_and_pyfunc_routes_sample_the_same_density(cm):
    """nutpie's own compilation and ours agree on the log density and its gradient."""
    model = cm.nutpie_model(backend="numba")
    rng = np.random.default_rng(1)
    for _ in range(3):
        flat = rng.normal(0.0, 0.3, cm.n_dim)
        lpj, gj = cm.logp_grad(flat, jacobian=True)
        out = model.logp_func(flat)
        np.testing.assert_allclose(out[0], lpj, rtol=1e-10)
        np.testing.assert_allclose(out[1], gj, rtol=1e-8, atol=1e-8)
