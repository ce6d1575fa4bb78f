"""Same seed -> identical results (EM, MAP, nutpie, pymc NUTS); different seeds -> different.

Cold versus warm compile cache: PyTensor compiles with Numba ``fastmath`` on by default, and a
function compiled fresh can round differently from one loaded from the disk cache.
``bayesmix.inference`` turns fastmath off for what it compiles itself (the nutpie model and the
MAP objective). The ``test_cold_and_warm_cache_*`` tests run the same script twice in
subprocesses that share a fresh ``base_compiledir`` and a fresh bayesmix graph cache
(``BAYESMIX_CACHE_DIR``): the first compiles from nothing, the second loads both caches.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from bayesmix.config import ModelSpec, PriorSpec
from bayesmix.em import BernoulliMixtureEM, GaussianMixtureEM, KMeans

SPEC_1D = ModelSpec(
    "gaussian",
    2,
    "diag",
    ordered=True,
    priors=PriorSpec(weights_alpha=4.0, mu_loc=0.0, mu_scale=2.0, sigma_scale=1.0),
)


def _data_1d(n: int = 60) -> np.ndarray:
    rng = np.random.default_rng(5)
    z = rng.random(n) < 0.4
    return np.where(z, rng.normal(-1.5, 0.6, n), rng.normal(1.5, 0.8, n))[:, None]


def _fitted_arrays(est) -> list[np.ndarray]:
    names = ("weights_", "means_", "covariances_", "lower_bounds_", "cluster_centers_")
    return [getattr(est, n) for n in names if hasattr(est, n)]


@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical", "tied"])
def test_gaussian_em_same_seed_bit_identical(covariance_type):
    X = np.random.default_rng(0).normal(size=(300, 3)) * [1.0, 3.0, 0.5]
    kw = dict(covariance_type=covariance_type, n_init=3, init_params="random", max_iter=50)
    a = GaussianMixtureEM(3, random_state=7, **kw).fit(X)
    b = GaussianMixtureEM(3, random_state=7, **kw).fit(X)
    c = GaussianMixtureEM(3, random_state=8, **kw).fit(X)
    for x, y in zip(_fitted_arrays(a), _fitted_arrays(b), strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.lower_bounds_[:3], c.lower_bounds_[:3]) or not np.array_equal(
        a.means_, c.means_
    )


def test_bernoulli_em_and_kmeans_same_seed_bit_identical():
    rng = np.random.default_rng(1)
    B = (rng.random((200, 8)) < rng.random(8)).astype(np.int64)
    a = BernoulliMixtureEM(3, n_init=3, random_state=3).fit(B)
    b = BernoulliMixtureEM(3, n_init=3, random_state=3).fit(B)
    for x, y in zip(_fitted_arrays(a), _fitted_arrays(b), strict=True):
        np.testing.assert_array_equal(x, y)
    X = rng.normal(size=(200, 2))
    k1 = KMeans(4, n_init=3, random_state=3).fit(X)
    k2 = KMeans(4, n_init=3, random_state=3).fit(X)
    k3 = KMeans(4, n_init=1, random_state=4).fit(X)
    np.testing.assert_array_equal(k1.cluster_centers_, k2.cluster_centers_)
    np.testing.assert_array_equal(k1.labels_, k2.labels_)
    assert not np.array_equal(k1.cluster_centers_, k3.cluster_centers_)


def test_fit_em_and_fit_map_same_seed_identical():
    from bayesmix.inference import fit_em, fit_map

    X = _data_1d()
    a = fit_em(SPEC_1D, X, random_state=3)
    b = fit_em(SPEC_1D, X, random_state=3)
    assert a["em"].to_dataset().identical(b["em"].to_dataset())
    ma = fit_map(SPEC_1D, X, random_seed=3, result=a)
    mb = fit_map(SPEC_1D, X, random_seed=3, result=b)
    assert ma["map"].to_dataset().identical(mb["map"].to_dataset())


@pytest.mark.slow
def test_nutpie_same_seed_identical_draws_different_seed_different():
    from bayesmix.inference import sample_nuts

    X = _data_1d()
    kw = dict(draws=100, tune=100, chains=2)
    a = sample_nuts(SPEC_1D, X, random_seed=21, **kw)["posterior"].to_dataset()
    b = sample_nuts(SPEC_1D, X, random_seed=21, **kw)["posterior"].to_dataset()
    c = sample_nuts(SPEC_1D, X, random_seed=22, **kw)["posterior"].to_dataset()
    assert a.equals(b)  # values and coords; attrs hold creation times
    for name in ("w", "mu", "sigma"):
        np.testing.assert_array_equal(a[name].values, b[name].values)
    assert not np.array_equal(a["mu"].values, c["mu"].values)
    # the two chains of one run differ too
    assert not np.array_equal(a["mu"].isel(chain=0).values, a["mu"].isel(chain=1).values)


@pytest.mark.slow
def test_pymc_sampler_same_seed_identical_draws_different_seed_different():
    from bayesmix.inference import sample_nuts

    X = _data_1d()
    kw = dict(draws=60, tune=60, chains=2, sampler="pymc")
    a = sample_nuts(SPEC_1D, X, random_seed=31, **kw)["posterior"].to_dataset()
    b = sample_nuts(SPEC_1D, X, random_seed=31, **kw)["posterior"].to_dataset()
    c = sample_nuts(SPEC_1D, X, random_seed=32, **kw)["posterior"].to_dataset()
    np.testing.assert_array_equal(a["mu"].values, b["mu"].values)
    np.testing.assert_array_equal(a["sigma"].values, b["sigma"].values)
    assert not np.array_equal(a["mu"].values, c["mu"].values)
    assert not np.array_equal(a["mu"].isel(chain=0).values, a["mu"].isel(chain=1).values)


_CHILD = textwrap.dedent(
    """
    import sys
    import numpy as np
    sys.path.insert(0, sys.argv[2])
    from test_reproducibility import SPEC_1D, _data_1d
    from bayesmix.inference import fit_map, sample_nuts
    X = _data_1d()
    out = {}
    for what in sys.argv[3].split(","):
        if what == "map":
            out[what] = fit_map(SPEC_1D, X, random_seed=5)["map"]["mu"].values
        else:
            r = sample_nuts(SPEC_1D, X, draws=40, tune=40, chains=2, random_seed=5, sampler=what)
            out[what] = r["posterior"]["mu"].values
    np.savez(sys.argv[1], **out)
    """
)


def _cold_then_warm(tmp_path, what: str):
    """Run the child twice on one fresh compile cache: (cold results, warm results)."""
    env = dict(
        os.environ,
        PYTENSOR_FLAGS=f"base_compiledir={tmp_path / 'cache'}",
        BAYESMIX_CACHE_DIR=str(tmp_path / "graphs"),  # the rewritten graphs, cold then warm
    )
    here = os.path.dirname(os.path.abspath(__file__))
    results = []
    for name in ("cold", "warm"):
        out = tmp_path / f"{name}.npz"
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, str(out), here, what],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        results.append(np.load(out))
    assert (tmp_path / "cache").is_dir()
    assert list((tmp_path / "graphs").glob("*.graph"))  # the warm child loaded these
    return results


@pytest.mark.slow
def test_cold_and_warm_cache_give_identical_draws_and_map(tmp_path):
    # one cold and one warm child: nutpie, the MAP objective and the pymc sampler
    cold, warm = _cold_then_warm(tmp_path, "nutpie,map,pymc")
    np.testing.assert_array_equal(cold["nutpie"], warm["nutpie"])
    np.testing.assert_array_equal(cold["map"], warm["map"])
    np.testing.assert_array_equal(cold["pymc"], warm["pymc"])
