"""Behaviour of the estimator API: fit_predict, chunking, float32, warm start, restarts,
sampling, criteria, and KMeans against scikit-learn."""

import warnings

import numpy as np
import pytest
from em_helpers import three_blobs
from sklearn.cluster import KMeans as SkKMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import adjusted_rand_score
from sklearn.mixture import GaussianMixture

from bayesmix.em import GaussianMixtureEM, KMeans, kmeans_plusplus

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]


@pytest.fixture(scope="module")
def X():
    return three_blobs(np.random.default_rng(7), 3, n=900)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_fit_predict_equals_fit_then_predict(X, covariance_type):
    for max_iter in (1, 3, 100):
        kw = {"covariance_type": covariance_type, "max_iter": max_iter, "random_state": 3}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            labels = GaussianMixtureEM(3, **kw).fit_predict(X)
            fitted = GaussianMixtureEM(3, **kw).fit(X)
        np.testing.assert_array_equal(labels, fitted.predict(X))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_chunk_size_gives_the_same_fit(X, covariance_type):
    kw = {"covariance_type": covariance_type, "random_state": 0, "tol": 1e-8, "max_iter": 60}
    whole = GaussianMixtureEM(3, **kw).fit(X)
    chunked = GaussianMixtureEM(3, chunk_size=160, **kw).fit(X)
    assert chunked.n_iter_ == whole.n_iter_
    np.testing.assert_allclose(chunked.lower_bounds_, whole.lower_bounds_, rtol=1e-12)
    np.testing.assert_allclose(chunked.means_, whole.means_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(chunked.covariances_, whole.covariances_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(chunked.score_samples(X), whole.score_samples(X), rtol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_float32_close_to_float64(X, covariance_type):
    kw = {"covariance_type": covariance_type, "random_state": 0, "tol": 1e-6, "max_iter": 300}
    f64 = GaussianMixtureEM(3, **kw).fit(X)
    f32 = GaussianMixtureEM(3, dtype=np.float32, **kw).fit(X)
    assert f32.means_.dtype == np.float32 and f32.covariances_.dtype == np.float32
    assert f32.predict_proba(X).dtype == np.float32
    assert f32.lower_bound_ == pytest.approx(f64.lower_bound_, rel=1e-4)
    np.testing.assert_allclose(f32.means_, f64.means_, rtol=1e-3, atol=1e-3)


def test_loop_attributes_and_restarts(X):
    gm = GaussianMixtureEM(3, n_init=4, random_state=1, tol=1e-6, max_iter=500).fit(X)
    assert gm.converged_ and 1 <= gm.n_iter_ <= 500
    assert gm.lower_bounds_.shape == (gm.n_iter_,)
    assert gm.lower_bound_ == gm.lower_bounds_[-1]
    singles = [
        GaussianMixtureEM(3, random_state=s, tol=1e-6, max_iter=500).fit(X).lower_bound_
        for s in range(3)
    ]
    assert gm.lower_bound_ >= min(singles) - 1e-9


def test_warm_start_continues(X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ws = GaussianMixtureEM(3, warm_start=True, max_iter=2, random_state=0, tol=1e-12)
        ws.fit(X)
        ws.fit(X)
        ws.fit(X)
        cold = GaussianMixtureEM(3, max_iter=6, random_state=0, tol=1e-12).fit(X)
    np.testing.assert_allclose(ws.means_, cold.means_, rtol=1e-10)


def test_convergence_warning(X):
    with pytest.warns(ConvergenceWarning, match="max_iter"):
        GaussianMixtureEM(3, max_iter=1, random_state=0).fit(X)


def test_verbose_prints(X, capsys):
    GaussianMixtureEM(2, verbose=2, random_state=0).fit(X)
    out = capsys.readouterr().out
    assert "Initialization 0" in out and "Iteration 1" in out


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_sample_moments(covariance_type):
    X = three_blobs(np.random.default_rng(2), 2, n=900)
    gm = GaussianMixtureEM(3, covariance_type=covariance_type, random_state=0).fit(X)
    n = 30_000
    draws, labels = gm.sample(n)
    assert draws.shape == (n, 2) and labels.shape == (n,)
    # weights, means and covariances of the draws within 4.5 standard errors
    freq = np.bincount(labels, minlength=3) / n
    assert np.all(np.abs(freq - gm.weights_) < 4.5 * np.sqrt(gm.weights_ * (1 - gm.weights_) / n))
    cov = {
        "full": lambda c: c,
        "tied": lambda c: np.broadcast_to(c, (3, 2, 2)),
        "diag": lambda c: np.stack([np.diag(v) for v in c]),
        "spherical": lambda c: c[:, None, None] * np.eye(2),
    }[covariance_type](gm.covariances_)
    for k in range(3):
        xk = draws[labels == k]
        se = np.sqrt(np.diag(cov[k]) / len(xk))
        assert np.all(np.abs(xk.mean(0) - gm.means_[k]) < 4.5 * se), k
        r = xk - gm.means_[k]
        prod = r[:, :, None] * r[:, None, :]
        se_cov = prod.std(axis=0, ddof=1) / np.sqrt(len(xk))
        assert np.all(np.abs(prod.mean(0) - cov[k]) < 4.5 * se_cov), k


def test_icl_is_bic_plus_twice_the_entropy(X):
    gm = GaussianMixtureEM(3, random_state=0).fit(X)
    r = gm.predict_proba(X)
    entropy = -np.sum(r * np.log(np.clip(r, 1e-300, None)))
    assert gm.icl(X) == pytest.approx(gm.bic(X) + 2 * entropy, rel=1e-10)
    assert gm.icl(X) >= gm.bic(X)
    n_params = 3 * 3 * 4 / 2 + 3 * 3 + 2
    loglik = gm.score(X) * len(X)
    assert gm.bic(X) == pytest.approx(-2 * loglik + n_params * np.log(len(X)), rel=1e-12)
    assert gm.aic(X) == pytest.approx(-2 * loglik + 2 * n_params, rel=1e-12)


@pytest.mark.parametrize("init_params", ["k-means++", "kmeans", "random", "random_from_data"])
def test_init_params_find_the_blobs(X, init_params):
    truth = np.repeat([0, 1, 2], [400, 300, 200])
    gm = GaussianMixtureEM(3, init_params=init_params, n_init=3, random_state=0).fit(X)
    sk = GaussianMixture(3, init_params=init_params, n_init=3, random_state=0).fit(X)
    assert adjusted_rand_score(truth, gm.predict(X)) > 0.7  # the blobs overlap
    assert gm.lower_bound_ > sk.lower_bound_ - 5e-3


def test_kmeans_matches_sklearn_from_the_same_centres(X):
    centres = X[[0, 450, 850]]
    ours = KMeans(3, init=centres, tol=0.0, max_iter=300).fit(X)
    ref = SkKMeans(3, init=centres, n_init=1, tol=0.0, max_iter=300, algorithm="lloyd").fit(X)
    np.testing.assert_allclose(ours.cluster_centers_, ref.cluster_centers_, rtol=1e-10)
    np.testing.assert_array_equal(ours.labels_, ref.labels_)
    assert ours.inertia_ == pytest.approx(ref.inertia_, rel=1e-10)
    assert ours.score(X) == pytest.approx(ref.score(X), rel=1e-10)
    np.testing.assert_allclose(ours.transform(X), ref.transform(X), rtol=1e-8, atol=1e-10)
    np.testing.assert_array_equal(ours.predict(X), ours.labels_)


def test_kmeans_restarts_reach_sklearn_inertia(X):
    ours = KMeans(3, n_init=10, random_state=0).fit(X)
    ref = SkKMeans(3, n_init=10, random_state=0).fit(X)
    assert ours.inertia_ == pytest.approx(ref.inertia_, rel=1e-6)
    assert ours.fit_predict(X).shape == (len(X),)


def test_kmeans_plusplus_seeds_are_spread_out():
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0], [10, 0], [0, 10], [10, 10]], dtype=float)
    X = np.concatenate([c + rng.normal(scale=0.1, size=(50, 2)) for c in centres])
    seeds, idx = kmeans_plusplus(X, 4, random_state=1)
    np.testing.assert_array_equal(seeds, X[idx])
    assert len(set(idx // 50)) == 4  # one seed in each well-separated cluster


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_fit_makes_no_n_by_k_array(covariance_type):
    """Design guard: the fused E/M pass keeps temporaries to blocks of rows (tracemalloc)."""
    import tracemalloc

    rng = np.random.default_rng(0)
    n, k = 100_000, 10
    X = rng.normal(size=(n, 4))
    start = GaussianMixtureEM(k, covariance_type=covariance_type, max_iter=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start.fit(X[:2000])  # starting values (and warm imports) outside the measurement
    gm = GaussianMixtureEM(
        k,
        covariance_type=covariance_type,
        max_iter=3,
        chunk_size=2000,  # block temporaries of at most 2000 x K x D
        weights_init=start.weights_,
        means_init=start.means_,
        precisions_init=start.precisions_,
    )
    tracemalloc.start()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm.fit(X)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # one (N, K) float64 array would be 8 MB; the labels of fit_predict are N int64 (0.8 MB)
    assert peak < 0.3 * n * k * 8, peak / (n * k * 8)


# ------------------------------------------------------------------ one step at a time
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_one_public_step_is_the_first_iteration_of_fit(X, covariance_type):
    kw = {"covariance_type": covariance_type, "random_state": 4}
    step = GaussianMixtureEM(3, **kw).initialize(X)
    assert step.n_iter_ == 0 and not step.converged_ and step.lower_bounds_.shape == (0,)
    resp, loglik = step.e_step(X)
    assert resp.shape == (len(X), 3)
    np.testing.assert_allclose(resp.sum(axis=1), 1.0, rtol=1e-12)
    step.m_step(X, resp)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        one = GaussianMixtureEM(3, max_iter=1, **kw).fit(X)
    assert loglik / len(X) == pytest.approx(one.lower_bounds_[0], rel=1e-12)
    for name in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        np.testing.assert_allclose(getattr(step, name), getattr(one, name), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_public_steps_match_sklearn_from_the_same_start(X, covariance_type):
    rng = np.random.default_rng(0)
    d = X.shape[1]
    start = {
        "weights_init": np.array([0.3, 0.3, 0.4]),
        "means_init": X[rng.choice(len(X), 3, replace=False)],
        "precisions_init": {
            "full": np.repeat(np.eye(d)[None], 3, axis=0),
            "tied": np.eye(d),
            "diag": np.ones((3, d)),
            "spherical": np.ones(3),
        }[covariance_type],
    }
    ours = GaussianMixtureEM(3, covariance_type=covariance_type, **start).initialize(X)
    for _ in range(3):
        resp, loglik = ours.e_step(X)
        ours.m_step(X, resp)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref = GaussianMixture(3, covariance_type=covariance_type, max_iter=3, tol=0, **start)
        ref.fit(X)
    np.testing.assert_allclose(ours.weights_, ref.weights_, rtol=1e-9)
    np.testing.assert_allclose(ours.means_, ref.means_, rtol=1e-9)
    np.testing.assert_allclose(ours.covariances_, ref.covariances_, rtol=1e-9)
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), atol=1e-9)
    # both: the log-likelihood at the parameters entering the third E-step
    assert loglik / len(X) == pytest.approx(ref.lower_bound_, rel=1e-10)


def test_public_steps_bernoulli_and_map_equal_fit():
    from bayesmix.em import BernoulliMixtureEM

    rng = np.random.default_rng(1)
    p = np.array([[0.9, 0.8, 0.1, 0.2], [0.1, 0.2, 0.9, 0.7]])
    Xb = (rng.uniform(size=(300, 4)) < p[rng.integers(0, 2, 300)]).astype(float)
    prior = {"weights_alpha": 2.0, "beta_a": 2.0, "beta_b": 2.0}
    step = BernoulliMixtureEM(2, prior=prior, random_state=3).initialize(Xb)
    resp, loglik = step.e_step(Xb)
    step.m_step(Xb, resp)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        one = BernoulliMixtureEM(2, prior=prior, random_state=3, max_iter=1).fit(Xb)
    np.testing.assert_allclose(step.means_, one.means_, rtol=1e-12)
    np.testing.assert_allclose(step.weights_, one.weights_, rtol=1e-12)
    # MAP-EM's lower_bounds_ add the log prior per point to the log-likelihood per point
    start = BernoulliMixtureEM(2, prior=prior, random_state=3).initialize(Xb)
    assert loglik == pytest.approx(start.score_samples(Xb).sum(), rel=1e-12)
    log_prior = start._log_prior()
    assert log_prior != 0
    assert (loglik + log_prior) / len(Xb) == pytest.approx(one.lower_bounds_[0], rel=1e-12)


def test_warm_start_fit_continues_after_public_steps(X):
    kw = {"covariance_type": "diag", "random_state": 2, "tol": 1e-12}
    gm = GaussianMixtureEM(3, warm_start=True, max_iter=4, **kw).initialize(X)
    gm.m_step(X, gm.e_step(X)[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm.fit(X)
        cold = GaussianMixtureEM(3, max_iter=5, **kw).fit(X)
    np.testing.assert_allclose(gm.means_, cold.means_, rtol=1e-9)


def test_m_step_rejects_bad_responsibilities(X):
    from bayesmix._validation import DataError, ParameterError

    gm = GaussianMixtureEM(3, random_state=0).initialize(X)
    resp, _ = gm.e_step(X)
    with pytest.raises(DataError, match=r"wrong shape: expected \(900, 3\)"):
        gm.m_step(X, resp[:, :2])
    with pytest.raises(DataError, match="not a set of responsibilities.*not its logarithm"):
        gm.m_step(X, np.log(resp + 1e-300))
    with pytest.raises(DataError, match="summing to 1"):
        gm.m_step(X, 2 * resp)
    with pytest.raises(ParameterError, match="n_components"):
        GaussianMixtureEM(0).initialize(X)
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        GaussianMixtureEM(3).e_step(X)
