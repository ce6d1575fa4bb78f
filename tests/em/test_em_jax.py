"""The array-namespace EM kernels on JAX (CPU, float64) against the NumPy engine."""

import numpy as np
import pytest
from em_helpers import fit_iterations, rough_start, three_blobs

from bayesmix.em import GaussianMixtureEM, _xp

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]
N_ITER = 8


@pytest.fixture(scope="module", autouse=True)
def x64():
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", previous)


@pytest.fixture(scope="module")
def data():
    return three_blobs(np.random.default_rng(31), 3, n=1800)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_estimator_on_jax_array_equals_numpy(data, covariance_type):
    init = rough_start(data, covariance_type, np.random.default_rng(1))
    ref = fit_iterations(data, covariance_type, init, N_ITER)
    ours = fit_iterations(jnp.asarray(data), covariance_type, init, N_ITER, chunk_size=500)
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_", "lower_bounds_"):
        np.testing.assert_allclose(getattr(ours, name), getattr(ref, name), rtol=1e-8, atol=1e-10)
    assert abs(ours.lower_bounds_[-1] - ours.lower_bounds_[0]) > 1e-2
    labels = ours.predict(data)
    np.testing.assert_array_equal(labels, ref.predict(data))
    np.testing.assert_array_equal(_xp.jax_predict_labels(ours, jnp.asarray(data)), labels)


def test_estimator_on_jax_array_with_kmeanspp_init(data):
    # initialisation on a host copy: the same random_state gives the same start and fit
    ref = GaussianMixtureEM(3, random_state=5, tol=1e-6).fit(data)
    ours = GaussianMixtureEM(3, random_state=5, tol=1e-6).fit(jnp.asarray(data))
    assert ours.n_iter_ == ref.n_iter_
    np.testing.assert_allclose(ours.means_, ref.means_, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("kind", ["full", "diag"])
@pytest.mark.parametrize("chunk_size", [None, 700])
def test_jitted_em_step_numpy_and_jax_equal_the_engine(data, kind, chunk_size):
    """The whole iteration (E-step, statistics, ML M-step) in the namespace kernels."""
    init = rough_start(data, kind, np.random.default_rng(2))
    engine = fit_iterations(data, kind, init, N_ITER)
    shift = data.mean(axis=0)
    w, m = init["weights_init"], init["means_init"]
    pc = np.sqrt(init["precisions_init"]) if kind == "diag" else None
    if kind == "full":
        pc = np.stack(
            [
                np.triu(np.linalg.inv(np.linalg.cholesky(np.linalg.inv(p))).T)
                for p in init["precisions_init"]
            ]
        )
    step = jax.jit(
        lambda X, s, w, m, pc: _xp.em_step(
            jnp, X, s, w, m, pc, kind=kind, reg_covar=1e-6, chunk_size=chunk_size
        )
    )
    params = {"numpy": (w, m, pc), "jax": tuple(jnp.asarray(a) for a in (w, m, pc))}
    bounds = {"numpy": [], "jax": []}
    for _ in range(N_ITER):
        out = _xp.em_step(
            np, data, shift, *params["numpy"], kind=kind, reg_covar=1e-6, chunk_size=chunk_size
        )
        bounds["numpy"].append(float(out[0]))
        params["numpy"] = (out[1], out[2], out[4])
        out = step(jnp.asarray(data), jnp.asarray(shift), *params["jax"])
        bounds["jax"].append(float(out[0]))
        params["jax"] = (out[1], out[2], out[4])
        cov_jax = np.asarray(out[3])
    for name in ("numpy", "jax"):
        np.testing.assert_allclose(bounds[name], engine.lower_bounds_, rtol=1e-8)
        np.testing.assert_allclose(np.asarray(params[name][0]), engine.weights_, rtol=1e-8)
        np.testing.assert_allclose(
            np.asarray(params[name][1]), engine.means_, rtol=1e-8, atol=1e-10
        )
        np.testing.assert_allclose(
            np.asarray(params[name][2]), engine.precisions_cholesky_, rtol=1e-8, atol=1e-10
        )
    np.testing.assert_allclose(cov_jax, engine.covariances_, rtol=1e-8, atol=1e-10)


def test_get_namespace():
    assert _xp.get_namespace(np.zeros(2)) is np
    assert _xp.get_namespace(np.zeros(2), jnp.zeros(2)) is jnp
