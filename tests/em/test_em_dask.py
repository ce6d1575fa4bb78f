"""GaussianMixtureEM on a Dask array (local distributed cluster) against the NumPy engine."""

import subprocess
import sys
import warnings

import numpy as np
import pytest
from em_helpers import fit_iterations, rough_start, three_blobs
from sklearn.exceptions import ConvergenceWarning

from bayesmix._validation import DataError, ParameterError
from bayesmix.em import GaussianMixtureEM

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]
N_ITER = 8


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    )
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


@pytest.fixture(scope="module")
def data():
    return three_blobs(np.random.default_rng(21), 4, n=2700)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_dask_fit_equals_numpy_fit(client, data, covariance_type):
    init = rough_start(data, covariance_type, np.random.default_rng(3))
    ref = fit_iterations(data, covariance_type, init, N_ITER)
    # uneven row-chunks, several columns chunks (rechunked to one by the engine)
    X = da.from_array(data, chunks=((1000, 900, 500, 300), (2, 2)))
    ours = fit_iterations(X, covariance_type, init, N_ITER)
    assert ours.n_iter_ == ref.n_iter_ == N_ITER
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_", "lower_bounds_"):
        np.testing.assert_allclose(getattr(ours, name), getattr(ref, name), rtol=1e-10, atol=1e-10)
    assert ours.lower_bound_ == pytest.approx(ref.lower_bound_, rel=1e-12)
    assert ours.n_features_in_ == data.shape[1]
    # the iteration really moved (the comparison is not between two initial states)
    assert abs(ours.lower_bounds_[-1] - ours.lower_bounds_[0]) > 1e-2


def test_dask_map_em_and_fit_predict(client, data):
    prior = {"weights_alpha": 2.0, "mu_scale": np.full(4, 5.0), "sigma_scale": np.ones(4)}
    init = rough_start(data, "diag", np.random.default_rng(4))
    ref = fit_iterations(data, "diag", init, N_ITER, prior=prior)
    X = da.from_array(data, chunks=(512, 4))
    model = GaussianMixtureEM(
        3, covariance_type="diag", tol=1e-300, max_iter=N_ITER, prior=prior, **init
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        labels = model.fit_predict(X)
    assert isinstance(labels, da.Array)  # lazy: nothing of size N is gathered
    np.testing.assert_array_equal(labels.compute(), ref.predict(data))
    np.testing.assert_allclose(model.lower_bounds_, ref.lower_bounds_, rtol=1e-10)
    np.testing.assert_allclose(model.means_, ref.means_, rtol=1e-10, atol=1e-10)


def test_dask_float32_close_to_numpy_float32(client, data):
    init = rough_start(data, "full", np.random.default_rng(5))
    ref = fit_iterations(data, "full", init, N_ITER, dtype=np.float32)
    ours = fit_iterations(
        da.from_array(data, chunks=(700, 4)), "full", init, N_ITER, dtype=np.float32
    )
    assert ours.means_.dtype == np.float32
    np.testing.assert_allclose(ours.means_, ref.means_, rtol=1e-4, atol=1e-4)


def test_dask_input_errors(client, data):
    with pytest.raises(ParameterError, match="Dask input needs initial parameters"):
        GaussianMixtureEM(3).fit(da.from_array(data, chunks=(500, 4)))
    bad = data.copy()
    bad[5, 1] = np.nan
    init = rough_start(data, "full", np.random.default_rng(6))
    with pytest.raises(DataError, match="NaN or infinity"):
        GaussianMixtureEM(3, **init).fit(da.from_array(bad, chunks=(500, 4)))
    with pytest.raises(DataError, match="2-D"):
        GaussianMixtureEM(3, **init).fit(da.from_array(data[:, 0], chunks=500))


def test_importing_the_engine_imports_neither_dask_nor_jax():
    code = (
        "import sys, numpy as np; from bayesmix.em import GaussianMixtureEM; "
        "GaussianMixtureEM(2, max_iter=3).fit(np.random.default_rng(0).normal(size=(50, 2))); "
        "bad = [m for m in ('dask', 'jax', 'pymc', 'arviz') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
