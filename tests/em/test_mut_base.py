"""The EM loop, step-by-step API, predictions, sampling and ICL of the estimators' base class
(mutmut survivors of bayesmix/em/_base.py; issue 13).

References: the initialisations written out from their definitions on the same random
stream (KMeans labels, nearest seed by brute force), argmax of predict_proba, the
classification entropy with scipy.special.entr, the documented attribute values.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.special import entr
from sklearn.exceptions import ConvergenceWarning

from bayesmix._validation import DataError, ParameterError
from bayesmix.em import BernoulliMixtureEM, GaussianMixtureEM, KMeans


def _blobs(n=60, d=2, seed=0, sep=6.0):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(size=(n, d)), rng.normal(size=(n, d)) + sep])


def _class_means(X, labels, k):
    return np.stack([X[labels == j].mean(axis=0) for j in range(k)])


def test_kmeans_init_is_the_kmeans_partition_on_the_same_stream():
    X = _blobs(sep=2.0)
    gm = GaussianMixtureEM(3, init_params="kmeans", random_state=np.random.default_rng(4))
    gm.initialize(X)
    labels = KMeans(3, n_init=1, random_state=np.random.default_rng(4)).fit(X).labels_
    np.testing.assert_allclose(gm.means_, _class_means(X, labels, 3), rtol=1e-9)
    np.testing.assert_allclose(gm.weights_, np.bincount(labels) / len(X), rtol=1e-9)


@pytest.mark.parametrize("init_params", ["random_from_data", "k-means++"])
def test_seed_inits_assign_every_row_to_its_nearest_seed(init_params):
    """700 rows of 200 features: several row blocks of the assignment."""
    from bayesmix.em import kmeans_plusplus

    rng = np.random.default_rng(5)
    X = rng.normal(size=(700, 200))
    X[:350] += 1.0
    gm = GaussianMixtureEM(
        4, covariance_type="diag", init_params=init_params, random_state=np.random.default_rng(6)
    )
    gm.initialize(X)
    stream = np.random.default_rng(6)
    if init_params == "random_from_data":
        seeds = X[stream.choice(len(X), size=4, replace=False)]
    else:
        seeds = kmeans_plusplus(X, 4, random_state=stream)[0]
    labels = ((X[:, None, :] - seeds[None]) ** 2).sum(-1).argmin(axis=1)
    assert len(set(labels)) == 4
    np.testing.assert_allclose(gm.means_, _class_means(X, labels, 4), rtol=1e-9, atol=1e-12)


def test_initialize_sets_the_documented_loop_attributes():
    gm = GaussianMixtureEM(2, random_state=0).initialize(_blobs())
    assert gm.converged_ is False
    assert gm.n_iter_ == 0
    assert gm.lower_bound_ == -np.inf
    assert gm.lower_bounds_.shape == (0,) and gm.lower_bounds_.dtype == np.float64


def test_max_iter_zero_keeps_the_initial_parameters_without_a_warning():
    X = _blobs()
    start = GaussianMixtureEM(2, random_state=1).initialize(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gm = GaussianMixtureEM(2, max_iter=0, random_state=1).fit(X)
    assert gm.n_iter_ == 0 and gm.converged_ is False and gm.lower_bound_ == -np.inf
    np.testing.assert_array_equal(gm.means_, start.means_)


def test_a_converged_fit_warns_nothing_and_a_warm_start_continues_from_it():
    X = _blobs()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gm = GaussianMixtureEM(2, tol=1e-3, random_state=0, warm_start=True, n_init=3).fit(X)
    assert gm.converged_
    # warm start: one run (n_init ignored) from the fitted parameters, whose first change is
    # measured from the previous lower bound: converged again after one iteration
    gm.fit(X)
    assert gm.converged_ and gm.n_iter_ == 1


def test_warm_start_runs_once_from_the_current_parameters():
    import copy

    X = _blobs(sep=2.5)
    a = GaussianMixtureEM(2, max_iter=2, tol=1e-12, random_state=0, warm_start=True, n_init=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a.fit(X)
        b = copy.deepcopy(a).set_params(n_init=1)
        a.fit(X)  # 2 more iterations, not 3 restarts of 2 chained iterations
        b.fit(X)
    assert a.n_iter_ == 2 and len(a.lower_bounds_) == 2
    np.testing.assert_array_equal(a.means_, b.means_)


def test_convergence_warning_text_and_caller():
    X = _blobs(sep=2.5)
    with pytest.warns(ConvergenceWarning) as record:
        GaussianMixtureEM(2, max_iter=1, random_state=0).fit_predict(X)
    (w,) = [r for r in record if issubclass(r.category, ConvergenceWarning)]
    assert str(w.message).startswith("Best performing initialization did not converge")
    assert "increase max_iter or tol" in str(w.message)
    assert str(w.message).endswith("degenerate data")
    assert w.filename == __file__


def test_verbose_prints_each_initialisation(capsys):
    GaussianMixtureEM(2, n_init=2, verbose=1, random_state=0).fit(_blobs())
    out = capsys.readouterr().out
    assert "Initialization 0\n" in out and "Initialization 1\n" in out


def test_m_step_accepts_hard_labels_and_names_the_first_bad_row():
    X = _blobs()
    labels = (X[:, 0] > 3).astype(int)
    resp = np.eye(2)[labels]
    gm = GaussianMixtureEM(2, random_state=0).initialize(X).m_step(X, resp)
    np.testing.assert_allclose(gm.means_, _class_means(X, labels, 2), rtol=1e-9)
    for bad in ([np.nan, 1.0], [1.5, -0.5], [0.2, 0.2]):
        r = resp.astype(float).copy()
        r[3] = bad
        with pytest.raises(DataError, match=r"^resp is not a set of responsibilities") as err:
            gm.m_step(X, r)
        assert "got 1 bad rows (first: row 3," in str(err.value)


def test_bernoulli_predict_is_the_argmax_of_predict_proba():
    rng = np.random.default_rng(7)
    p = np.array([[0.9, 0.8, 0.1], [0.2, 0.3, 0.7]])
    z = rng.random(300) < 0.8  # unequal weights
    X = (rng.random((300, 3)) < p[z.astype(int)]).astype(int)
    bm = BernoulliMixtureEM(2, random_state=0).fit(X)
    labels = bm.predict(X)
    assert labels.dtype.kind == "i"
    np.testing.assert_array_equal(labels, bm.predict_proba(X).argmax(axis=1))


def test_sample_default_size_seed_and_checks():
    gm = GaussianMixtureEM(2, random_state=3).fit(_blobs())
    x, z = gm.sample()
    assert x.shape == (1, 2) and z.shape == (1,)
    again = GaussianMixtureEM(2, random_state=3).fit(_blobs())
    np.testing.assert_array_equal(gm.sample(50)[0], again.sample(50)[0])
    for bad in (0, 1.5):
        with pytest.raises(ParameterError, match=r"(^|[^A-Za-z_])n_samples([^A-Za-z_]|$)"):
            gm.sample(bad)


def test_icl_is_bic_plus_twice_the_entropy_with_exact_zero_responsibilities():
    X = _blobs(sep=60.0)  # far apart: many responsibilities are exactly 0
    gm = GaussianMixtureEM(2, random_state=0).fit(X)
    resp = gm.predict_proba(X)
    assert (resp == 0).any()
    entropy = entr(resp).sum()
    assert gm.icl(X) == pytest.approx(gm.bic(X) + 2 * entropy, rel=1e-12, abs=1e-9)
