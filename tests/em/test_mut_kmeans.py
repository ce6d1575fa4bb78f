"""KMeans and k-means++ behaviour that the mutmut run on bayesmix/em/kmeans.py found untested.

References: a plain Lloyd loop written here from the definition (distances from the
differences, the documented stopping rule), SciPy's cdist, the probabilities of D^2 sampling,
and the estimator's own single-restart runs on the same random stream (issue 13).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from bayesmix._validation import DataError, ParameterError
from bayesmix.em import KMeans, kmeans_plusplus


def _blobs(seed=0, n=60):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0, 5.0], [4.0, 1.0, 5.0], [1.0, 5.0, 4.0]])
    X = np.concatenate([c + rng.normal(size=(n, 3)) for c in centres])
    # features with different means and scales: the tolerance uses mean(var(X, axis=0))
    return X * np.array([1.0, 7.0, 0.3]) + np.array([0.0, 100.0, -40.0])


def _lloyd_reference(X, centres, max_iter, tol):
    """Lloyd's algorithm from its definition; returns centres, labels, inertia, n_iter."""
    tol_abs = tol * np.mean(np.var(X, axis=0))
    n_iter = 0
    for n_iter in range(1, max_iter + 1):  # noqa: B007
        labels = cdist(X, centres, "sqeuclidean").argmin(axis=1)
        new = np.stack([X[labels == k].mean(axis=0) for k in range(len(centres))])
        shift = ((new - centres) ** 2).sum()
        centres = new
        if shift <= tol_abs:
            break
    d = cdist(X, centres, "sqeuclidean")
    return centres, d.argmin(axis=1), d.min(axis=1).sum(), n_iter


@pytest.mark.parametrize("sign", [1.0, -1.0])
@pytest.mark.parametrize("tol", [0.0, 1e-4, 0.05])
@pytest.mark.parametrize("max_iter", [1, 2, 300])
def test_lloyd_iterations_and_stopping_rule_match_the_definition(tol, max_iter, sign):
    X = sign * _blobs()  # centres moving both ways: the shift is a sum of squares
    init = X[[0, 1, 2]]  # three points of one blob: several iterations to converge
    ours = KMeans(3, init=init, max_iter=max_iter, tol=tol).fit(X)
    centres, labels, inertia, n_iter = _lloyd_reference(X, init, max_iter, tol)
    assert ours.n_iter_ == n_iter
    np.testing.assert_allclose(ours.cluster_centers_, centres, rtol=1e-10, atol=1e-10)
    np.testing.assert_array_equal(ours.labels_, labels)
    assert ours.inertia_ == pytest.approx(inertia, rel=1e-10)


def test_one_iteration_is_not_converged_yet():
    """The reference above needs > 2 iterations here, so max_iter=1 and 2 differ."""
    X = _blobs()
    init = X[[0, 1, 2]]
    one = KMeans(3, init=init, max_iter=1).fit(X)
    two = KMeans(3, init=init, max_iter=2).fit(X)
    assert one.n_iter_ == 1 and two.n_iter_ == 2
    assert not np.allclose(one.cluster_centers_, two.cluster_centers_)


def test_empty_clusters_move_to_the_farthest_points():
    """Two centres far from the data get no point; they take the two points farthest from
    their own centres (the farthest goes to the lower-numbered empty cluster), which leave
    their old clusters."""
    X = _blobs(1, n=20)
    init = np.array([X[:20].mean(0), [1e4, 0.0, 0.0], X[20:].mean(0), [0.0, 2e4, 0.0]])
    ours = KMeans(4, init=init, max_iter=1).fit(X)
    d = cdist(X, init, "sqeuclidean")
    labels = d.argmin(axis=1)
    assert set(labels) == {0, 2}
    far = np.argsort(d.min(axis=1))[::-1][:2]
    labels[far[0]], labels[far[1]] = 1, 3
    expected = np.stack([X[labels == k].mean(axis=0) for k in range(4)])
    np.testing.assert_allclose(ours.cluster_centers_, expected, rtol=1e-12)
    np.testing.assert_allclose(ours.cluster_centers_[[1, 3]], X[far], rtol=1e-12)


def test_the_last_cluster_empty():
    X = _blobs(2, n=20)
    init = np.array([X[:20].mean(0), X[20:].mean(0), [0.0, 0.0, 1e5]])
    ours = KMeans(3, init=init, max_iter=1).fit(X)
    d = cdist(X, init, "sqeuclidean")
    labels = d.argmin(axis=1)
    far = int(np.argmax(d.min(axis=1)))
    labels[far] = 2
    expected = np.stack([X[labels == k].mean(axis=0) for k in range(3)])
    np.testing.assert_allclose(ours.cluster_centers_, expected, rtol=1e-12)


def test_transform_is_cdist_and_never_nan_at_a_centre():
    """Squared distances by the expansion are clipped at 0 (a point at a centre)."""
    rng = np.random.default_rng(3)
    X = rng.normal(loc=1e3, size=(200, 4))
    km = KMeans(50, init=X[:50], max_iter=1).fit(X)
    c = km.cluster_centers_
    # the expansion ||c||^2 - 2 c.c + ||c||^2 rounds below 0 for some centres
    expansion = (c * c).sum(1) - 2 * np.einsum("ij,ij->i", c, c) + (c * c).sum(1)
    assert (expansion < 0).any()
    at_centres = km.transform(c)
    assert np.isfinite(at_centres).all()
    np.testing.assert_allclose(at_centres, cdist(c, c), atol=1e-4)
    np.testing.assert_allclose(km.transform(X), cdist(X, c), rtol=1e-6, atol=1e-4)


def test_string_inits_are_the_seedings_on_the_same_stream():
    X = _blobs(4)
    pp = KMeans(3, init="k-means++", random_state=np.random.default_rng(5)).fit(X)
    seeds, _ = kmeans_plusplus(X, 3, np.random.default_rng(5))
    ref = KMeans(3, init=seeds).fit(X)
    np.testing.assert_array_equal(pp.cluster_centers_, ref.cluster_centers_)
    rnd = KMeans(3, init="random", random_state=np.random.default_rng(6)).fit(X)
    rows = np.random.default_rng(6).choice(len(X), size=3, replace=False)
    ref = KMeans(3, init=X[rows]).fit(X)
    np.testing.assert_array_equal(rnd.cluster_centers_, ref.cluster_centers_)


@pytest.mark.parametrize("d", [1, 2])
@pytest.mark.parametrize("init", ["k-means++", "random"])
def test_n_init_keeps_the_first_best_of_the_restarts(init, d):
    """n_init restarts on one stream = n_init single fits drawing from that stream in turn;
    the lowest inertia is kept, and among equal inertias (the same partition, other label
    order; exact ties in 1-D, where every distance is one product) the first."""
    rng = np.random.default_rng(0)
    centres = ([0, 0], [3, 0], [0, 3], [3, 3]) if d == 2 else ([0], [9], [18], [27])
    X = np.concatenate([rng.normal(size=(40, d)) + c for c in centres])
    stream = np.random.default_rng(11)
    singles = [KMeans(4, init=init, random_state=stream).fit(X) for _ in range(8)]
    best = KMeans(4, init=init, n_init=8, random_state=np.random.default_rng(11)).fit(X)
    inertias = np.array([s.inertia_ for s in singles])
    first_best = singles[int(np.argmin(inertias))]
    assert best.inertia_ == inertias.min()
    np.testing.assert_array_equal(best.labels_, first_best.labels_)
    np.testing.assert_array_equal(best.cluster_centers_, first_best.cluster_centers_)
    # the runs differ, so keeping any other restart would be seen
    assert len(set(np.round(inertias, 6))) > 1 or len({tuple(s.labels_) for s in singles}) > 1


def test_random_state_makes_fits_reproducible():
    X = _blobs(7)
    for init in ("k-means++", "random"):
        a = KMeans(6, init=init, random_state=3).fit(X)
        b = KMeans(6, init=init, random_state=3).fit(X)
        np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
        others = {KMeans(6, init=init, random_state=s).fit(X).inertia_ for s in range(4, 12)}
        assert len(others) > 1  # the seed matters on this data


def test_integer_data_fits_as_floats():
    X = np.round(_blobs(8) * 10).astype(np.int64)
    a = KMeans(3, init=X[:3].astype(float)).fit(X)
    b = KMeans(3, init=X[:3].astype(float)).fit(X.astype(float))
    assert a.cluster_centers_.dtype == np.float64
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    np.testing.assert_allclose(a.transform(X), cdist(X, a.cluster_centers_), rtol=1e-10)


def test_feature_names_out_and_defaults():
    km = KMeans(3, random_state=0).fit(_blobs())
    assert list(km.get_feature_names_out()) == ["kmeans0", "kmeans1", "kmeans2"]
    params = KMeans().get_params()
    assert (params["n_clusters"], params["n_init"], params["max_iter"]) == (8, 1, 300)
    assert (params["init"], params["tol"], params["random_state"]) == ("k-means++", 1e-4, None)


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"n_init": 0}, "n_init"),
        ({"n_init": 1.5}, "n_init"),
        ({"max_iter": 0}, "max_iter"),
        ({"max_iter": 2.5}, "max_iter"),
        ({"tol": -1.0}, "tol"),
        ({"n_clusters": 0}, "n_clusters"),
    ],
)
def test_bad_parameters_name_the_parameter(params, name):
    with pytest.raises(ParameterError, match=rf"(^|[^A-Za-z_]){name}([^A-Za-z_]|$)"):
        KMeans(**{"n_clusters": 2, **params}).fit(_blobs())


def test_zero_tol_is_allowed_and_complex_new_data_is_refused():
    X = _blobs()
    km = KMeans(3, tol=0.0, random_state=0).fit(X)
    with pytest.raises(DataError, match="Complex"):
        km.predict(X + 1j)


# ------------------------------------------------------------------------------ k-means++


def test_kmeans_plusplus_checks_n_clusters():
    X = _blobs()[:5]
    with pytest.raises(ParameterError, match=r"(^|[^A-Za-z_])n_clusters([^A-Za-z_]|$)"):
        kmeans_plusplus(X, 0)
    with pytest.raises(ParameterError, match="larger than the data"):
        kmeans_plusplus(X, 6)
    seeds, idx = kmeans_plusplus(X, 5, random_state=0)  # as many clusters as rows
    assert sorted(idx) == list(range(5))
    np.testing.assert_array_equal(seeds, X[idx])


def test_kmeans_plusplus_default_trials_and_scale_invariance():
    X = _blobs(9)
    for k in (2, 3, 8, 20):
        default = kmeans_plusplus(X, k, np.random.default_rng(k))[1]
        explicit = kmeans_plusplus(
            X, k, np.random.default_rng(k), n_local_trials=2 + int(np.log(k))
        )[1]
        np.testing.assert_array_equal(default, explicit)
        # scaling by a power of two changes no rounding: the same draws pick the same rows,
        # also when the total squared distance is below 1
        small = kmeans_plusplus(X * 2.0**-12, k, np.random.default_rng(k))[1]
        np.testing.assert_array_equal(default, small)


def test_kmeans_plusplus_second_seed_follows_d2_sampling():
    """With one trial, P(second = j | first = i) = d(i, j)^2 / sum_l d(i, l)^2."""
    X = np.array([[0.0], [1.0], [3.0], [10.0]])
    n_rep = 4000
    counts = np.zeros((4, 4))
    rng = np.random.default_rng(12)
    for _ in range(n_rep):
        idx = kmeans_plusplus(X, 2, rng, n_local_trials=1)[1]
        counts[idx[0], idx[1]] += 1
    d2 = (X - X.T) ** 2
    expected = 0.25 * d2 / d2.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(counts / n_rep, expected, atol=0.02)


def test_kmeans_plusplus_keeps_the_best_of_its_trials():
    """Many trials: the greedy choice is the candidate of lowest potential, close to the
    middle of the other blob (a single D^2 draw would land anywhere in it)."""
    rng = np.random.default_rng(13)
    X = np.concatenate([rng.uniform(0, 1, 200), rng.uniform(100, 101, 200)])[:, None]
    for seed in range(10):
        seeds, idx = kmeans_plusplus(X, 2, np.random.default_rng(seed), n_local_trials=200)
        other = seeds[1, 0]
        middle = 0.5 if other < 50 else 100.5
        assert abs(other - middle) < 0.05


def test_kmeans_plusplus_on_repeated_points_draws_rows_uniformly():
    """Once every point coincides with a chosen centre, the next ones are uniform rows."""
    X = np.ones((6, 2))
    chosen = np.zeros(6)
    for seed in range(300):
        seeds, idx = kmeans_plusplus(X, 3, np.random.default_rng(seed))
        assert idx.shape == (3,) and seeds.shape == (3, 2)
        np.testing.assert_array_equal(seeds, X[idx])
        chosen[idx[1:]] += 1
    np.testing.assert_allclose(chosen / chosen.sum(), np.full(6, 1 / 6), atol=0.04)
