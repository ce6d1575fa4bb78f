"""GaussianMixtureEM on Dask arrays with Dask's synchronous scheduler (no threads, no cluster).

test_em_dask.py runs the same engine on a local distributed cluster; mutmut cannot run it (a
distributed cluster hangs in a forked child once the parent has run one). These tests use
``dask.config.set(scheduler="synchronous")`` so that they also run under mutmut, and check the
Dask route against the NumPy engine and its input errors in full (docs/mutation-testing.md).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from em_helpers import fit_iterations, rough_start, three_blobs
from sklearn.exceptions import ConvergenceWarning

from bayesmix._validation import DataError, ParameterError
from bayesmix.em import GaussianMixtureEM

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")

N_ITER = 6


@pytest.fixture(autouse=True)
def synchronous():
    with dask.config.set(scheduler="synchronous"):
        yield


@pytest.fixture(scope="module")
def data():
    return three_blobs(np.random.default_rng(21), 3, n=1800)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_dask_fit_equals_numpy_fit(data, covariance_type):
    init = rough_start(data, covariance_type, np.random.default_rng(3))
    ref = fit_iterations(data, covariance_type, init, N_ITER)
    X = da.from_array(data, chunks=((700, 600, 500), (2, 1)))
    ours = fit_iterations(X, covariance_type, init, N_ITER)
    assert ours.n_iter_ == N_ITER
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_", "lower_bounds_"):
        np.testing.assert_allclose(getattr(ours, name), getattr(ref, name), rtol=1e-10, atol=1e-10)
    assert abs(ours.lower_bounds_[-1] - ours.lower_bounds_[0]) > 1e-2


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_dask_predict_is_lazy_and_equals_numpy(data, dtype):
    init = rough_start(data, "full", np.random.default_rng(4))
    ref = fit_iterations(data, "full", init, N_ITER, dtype=dtype)
    model = GaussianMixtureEM(3, tol=1e-300, max_iter=N_ITER, dtype=dtype, **init)
    X = da.from_array(data.astype(np.float32), chunks=(500, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        labels = model.fit_predict(X)
    assert isinstance(labels, da.Array)
    assert model.means_.dtype == dtype
    # the lazy labels are those of the parameters fitted then, even if the model changes
    model.means_ = model.means_[::-1].copy()
    got = labels.compute()
    assert got.shape == (len(data),)
    agree = (got == ref.predict(data.astype(np.float32))).mean()
    assert agree == 1.0 if dtype == np.float64 else agree > 0.99


def test_dask_input_errors_in_full(data):
    init = rough_start(data, "full", np.random.default_rng(6))
    with pytest.raises(ParameterError) as info:
        GaussianMixtureEM(3).fit(da.from_array(data, chunks=(500, 3)))
    assert str(info.value).startswith(
        "Dask input needs initial parameters: expected weights_init, means_init and "
        "precisions_init, got at least one None;"
    )
    bad = data.copy()
    bad[5, 1] = np.inf
    with pytest.raises(DataError) as info:
        GaussianMixtureEM(3, **init).fit(da.from_array(bad, chunks=(500, 3)))
    assert str(info.value).startswith("X contains NaN or infinity: expected finite values")
    with pytest.raises(DataError) as info:
        GaussianMixtureEM(3, **init).fit(da.from_array(data[:, 0], chunks=500))
    assert str(info.value).startswith(
        "X has the wrong number of dimensions: expected a 2-D Dask array (n_samples, "
        "n_features), got 1-D;"
    )
    with pytest.raises(DataError) as info:
        GaussianMixtureEM(3, **init).fit(da.from_array(data[:2], chunks=(2, 3)))
    assert str(info.value).startswith("too few samples: expected at least 3 rows, got 2;")
    with pytest.raises(DataError) as info:
        GaussianMixtureEM(3, **init).fit(da.from_array(data.astype(str), chunks=(500, 3)))
    assert str(info.value).startswith("X is not numeric: expected a real-valued Dask array")
    unknown = da.from_array(data, chunks=(500, 3))
    unknown = unknown[unknown[:, 0] > -100]  # unknown row-chunk sizes
    with pytest.raises(DataError) as info:
        GaussianMixtureEM(3, **init).fit(unknown)
    assert str(info.value).startswith("X has unknown chunk sizes:")


def _message(est, X):
    with pytest.raises((DataError, ParameterError)) as info:
        est.fit(X)
    return str(info.value)


def test_dask_input_messages_say_what_to_do(data):
    """The whole message, the advice included."""
    init = rough_start(data, "full", np.random.default_rng(6))
    msg = _message(GaussianMixtureEM(3), da.from_array(data, chunks=(500, 3)))
    assert msg.endswith(
        "compute them on a sample (e.g. fit a GaussianMixtureEM to X[:10_000].compute()) and "
        "pass them"
    )
    bad = data.copy()
    bad[5, 1] = np.nan
    msg = _message(GaussianMixtureEM(3, **init), da.from_array(bad, chunks=(500, 3)))
    assert msg.endswith("got non-finite entries; drop or impute them")
    msg = _message(GaussianMixtureEM(3, **init), da.from_array(data[:2], chunks=(2, 3)))
    assert msg.endswith("got 2; pass more data or use fewer components")
    msg = _message(GaussianMixtureEM(3, **init), da.from_array(data.astype(str), chunks=(500, 3)))
    assert msg.endswith("got dtype <U32; convert it with X.astype(float)")
    unknown = da.from_array(data, chunks=(500, 3))
    unknown = unknown[unknown[:, 0] > -100]
    msg = _message(GaussianMixtureEM(3, **init), unknown)
    assert msg.endswith("got NaN sizes; call X.compute_chunk_sizes() first")
    one = rough_start(data, "diag", np.random.default_rng(7), k=1)
    msg = _message(
        GaussianMixtureEM(1, covariance_type="diag", **one), da.from_array(data[:1], chunks=1)
    )
    assert msg.startswith("too few samples: expected at least 2 rows, got 1;")


def test_dask_fit_on_exactly_the_minimum_number_of_rows(data):
    """max(2, K) rows are enough (two rows for K = 1 and K = 2; three for K = 3)."""
    for k in (1, 2, 3):
        n = max(2, k)
        init = rough_start(data[:n], "diag", np.random.default_rng(8), k=k)
        est = GaussianMixtureEM(k, covariance_type="diag", reg_covar=1e-3, max_iter=2, **init)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(da.from_array(data[:n], chunks=(n, 3)))
        assert est.n_iter_ >= 1 and np.isfinite(est.lower_bound_)
