"""Property: EM never decreases its objective (log-likelihood, or log posterior for MAP-EM)."""

import warnings

import numpy as np
from em_helpers import hypothesis_settings
from hypothesis import assume, given
from hypothesis import strategies as st
from sklearn.exceptions import ConvergenceWarning

from bayesmix._validation import DataError
from bayesmix.em import BernoulliMixtureEM, GaussianMixtureEM

PROPERTY_SETTINGS = hypothesis_settings()
COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]


def _priors(covariance_type, d):
    if covariance_type in ("diag", "spherical"):
        return {"weights_alpha": 2.0, "mu_loc": 0.0, "mu_scale": 5.0, "sigma_scale": 2.0}
    return {
        "weights_alpha": 1.5,
        "mu_scale": np.full(d, 5.0),
        "cov_prior_dof": d + 2.0,
        "cov_prior_scale": 0.5 * np.eye(d),
    }


def _assert_monotone(bounds):
    bounds = np.asarray(bounds)
    steps = np.diff(bounds)
    slack = 1e-10 * np.maximum(np.abs(bounds[1:]), 1.0)
    assert np.all(steps >= -slack), (steps.min(), bounds)


@PROPERTY_SETTINGS
@given(
    seed=st.integers(0, 2**31 - 1),
    n_components=st.integers(1, 4),
    d=st.integers(1, 3),
    covariance_type=st.sampled_from(COVARIANCE_TYPES),
    init_params=st.sampled_from(["k-means++", "random", "random_from_data", "kmeans"]),
    use_prior=st.booleans(),
    spread=st.floats(0.5, 6.0),
)
def test_gaussian_objective_never_decreases(
    seed, n_components, d, covariance_type, init_params, use_prior, spread
):
    rng = np.random.default_rng(seed)
    n = 40 * n_components
    centres = rng.normal(scale=spread, size=(n_components, d))
    z = rng.integers(n_components, size=n)
    X = centres[z] + rng.normal(scale=rng.uniform(0.3, 1.5, size=(n_components, d))[z])
    prior = _priors(covariance_type, d) if use_prior else None
    gm = GaussianMixtureEM(
        n_components,
        covariance_type=covariance_type,
        init_params=init_params,
        tol=1e-9,
        max_iter=60,
        # reg_covar > 0 even for MAP-EM: without it a component can collapse onto one point,
        # where the variance is a rounding residue (~1e-16) and the objective is meaningless
        reg_covar=1e-6,
        prior=prior,
        random_state=seed,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        try:
            gm.fit(X)
        except DataError:  # a component collapsed onto a point: singular covariance
            assume(False)
    _assert_monotone(gm.lower_bounds_)


@PROPERTY_SETTINGS
@given(
    seed=st.integers(0, 2**31 - 1),
    n_components=st.integers(1, 4),
    d=st.integers(1, 12),
    use_prior=st.booleans(),
    smoothing=st.sampled_from([0.0, 1e-3, 0.5]),
)
def test_bernoulli_objective_never_decreases(seed, n_components, d, use_prior, smoothing):
    rng = np.random.default_rng(seed)
    n = 30 * n_components + 10
    probs = rng.uniform(size=(n_components, d))
    z = rng.integers(n_components, size=n)
    X = (rng.uniform(size=(n, d)) < probs[z]).astype(np.int8)
    assume(len(np.unique(X, axis=0)) >= n_components)
    prior = {"weights_alpha": 1.5, "beta_a": 2.0, "beta_b": 1.5} if use_prior else None
    bm = BernoulliMixtureEM(
        n_components, tol=1e-9, max_iter=60, prior=prior, smoothing=smoothing, random_state=seed
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        bm.fit(X)
    _assert_monotone(bm.lower_bounds_)
