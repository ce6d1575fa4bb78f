"""Minibatch ADVI: the scaled minibatch likelihood and agreement with NUTS on moderate N."""

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from bayesmix._validation import ParameterError
from bayesmix.config import ModelSpec
from bayesmix.data import make_gaussian_mixture
from bayesmix.inference import fit_advi, fit_em, sample_nuts
from bayesmix.results import relabel

SPEC = ModelSpec("gaussian", 2, "full")


@pytest.fixture(scope="module")
def sim_data():
    """(2000, 2) draws of a well-separated 2-component full-covariance mixture."""
    X, _, truth = make_gaussian_mixture(
        2000, 2, 2, weights=[0.35, 0.65], separation=6.0, random_state=11
    )
    return X, truth


@pytest.mark.parametrize("bad", [0, 2001, 2.5, True])
def test_minibatch_size_checked(sim_data, bad):
    X, _ = sim_data
    with pytest.raises(ParameterError, match="minibatch"):
        fit_advi(SPEC, X, minibatch=bad, n=10)


def _align(ref_mu: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """Permutation of the components of ``mu`` (K, D) that best matches ``ref_mu``."""
    cost = ((ref_mu[:, None, :] - mu[None, :, :]) ** 2).sum(-1)
    _, perm = linear_sum_assignment(cost)
    return perm


@pytest.mark.slow
def test_minibatch_advi_means_near_nuts(sim_data):
    X, truth = sim_data
    tree = fit_em(SPEC, X, random_state=0)
    nuts = sample_nuts(SPEC, X, draws=400, tune=400, chains=2, random_seed=3, result=tree)
    nuts = relabel(nuts, method="pivot", reference="em")
    post = nuts["posterior"]
    adv = fit_advi(SPEC, X, minibatch=200, n=8000, draws=1000, random_seed=4, result=tree)
    adv = adv["advi"]
    assert adv.attrs["minibatch"] == 200
    perm = _align(
        post["mu"].mean(("chain", "draw")).values, adv["mu"].mean(("chain", "draw")).values
    )
    for name in ("w", "mu", "sigma", "corr"):
        ref_mean = post[name].mean(("chain", "draw")).values
        ref_sd = post[name].std(("chain", "draw")).values
        got = adv[name].mean(("chain", "draw")).values[perm]
        if name == "corr":  # the constant diagonal has sd 0: compare the off-diagonal only
            ref_mean, ref_sd, got = ref_mean[:, 1, 0], ref_sd[:, 1, 0], got[:, 1, 0]
        z = np.abs(got - ref_mean) / ref_sd
        print(name, np.round(z, 2).ravel())
        assert np.all(z < 4.0), (name, got, ref_mean, ref_sd)
    # and both are near the truth (sanity of the simulated case)
    truth_perm = _align(post["mu"].mean(("chain", "draw")).values, truth["mu"])
    np.testing.assert_allclose(
        post["mu"].mean(("chain", "draw")).values, truth["mu"][truth_perm], atol=0.15
    )
