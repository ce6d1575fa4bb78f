"""Bootstrap inference of EM fits (``bayesmix.em.bootstrap``), as R mclust offers it.

``bootstrap_lrt`` = ``mclustBootstrapLRT``: the p-value formula, the observed statistic,
the sequential rule, reproducibility (also across worker processes). ``bootstrap_parameters``
= ``MclustBootstrap``: bootstrap SEs against the analytic SEs of a Gaussian mean
(sigma / sqrt(N)) and of a mixing weight (sqrt(w (1 - w) / N), well separated groups), the
weighted likelihood bootstrap's weights, label alignment. The coverage of the intervals is
checked by ``validation/bootstrap_coverage.py``.
"""

import numpy as np
import pandas as pd
import pytest

from bayesmix._validation import ParameterError
from bayesmix.em import GaussianMixtureEM
from bayesmix.em.bootstrap import (
    BootstrapLRT,
    BootstrapParameters,
    _alignment,
    bootstrap_lrt,
    bootstrap_parameters,
)

TYPES = ("full", "tied", "diag", "spherical")


def _two_groups(n=150, seed=0, weight=0.5, gap=8.0):
    rng = np.random.default_rng(seed)
    n0 = int(round(weight * n))
    return np.vstack([rng.normal(0.0, 1.0, (n0, 2)), rng.normal(gap, 1.0, (n - n0, 2))])


@pytest.fixture(scope="module")
def separated_lrt():
    X = _two_groups()
    return X, bootstrap_lrt(X, "full", max_components=3, n_boot=49, n_init=2, random_state=5)


# ------------------------------------------------------------------------------------ LRT
def test_lrt_separated_groups_p_values(separated_lrt):
    _, res = separated_lrt
    assert isinstance(res, BootstrapLRT)
    assert list(res.table["test"]) == ["1 vs 2", "2 vs 3"]
    assert res.boot.shape == (49, 2)
    # 1 vs 2: no bootstrap statistic reaches the observed one -> the smallest p-value
    assert res.p_values[0] == pytest.approx(1 / 50)
    assert res.observed[0] > 100
    # 2 vs 3 under its null: the observed statistic is typical of the bootstrap ones
    assert res.p_values[1] > 0.1
    assert np.all(np.isfinite(res.boot))


def test_lrt_p_value_formula(separated_lrt):
    _, res = separated_lrt
    for j in range(res.boot.shape[1]):
        expected = (1 + np.sum(res.boot[:, j] >= res.observed[j])) / (res.n_boot + 1)
        assert res.p_values[j] == expected
        assert res.table["p_value"].iloc[j] == expected


def test_lrt_statistic_is_twice_the_log_likelihood_difference(separated_lrt):
    X, res = separated_lrt
    n = X.shape[0]
    ll = {k: n * res.estimators[k].score(X) for k in (1, 2, 3)}
    assert res.observed[0] == pytest.approx(2 * (ll[2] - ll[1]), abs=1e-9)
    assert res.observed[1] == pytest.approx(2 * (ll[3] - ll[2]), abs=1e-9)
    # separately fitted estimators reach the same optima
    sep = {
        k: n
        * GaussianMixtureEM(k, covariance_type="full", n_init=4, tol=1e-8, max_iter=2000)
        .set_params(random_state=11)
        .fit(X)
        .score(X)
        for k in (1, 2)
    }
    assert res.observed[0] == pytest.approx(2 * (sep[2] - sep[1]), abs=1e-3)


def test_lrt_reproducible_and_seed_dependent():
    X = _two_groups(n=80, seed=1)
    a = bootstrap_lrt(X, "diag", max_components=2, n_boot=6, n_init=1, random_state=3)
    b = bootstrap_lrt(X, "diag", max_components=2, n_boot=6, n_init=1, random_state=3)
    c = bootstrap_lrt(X, "diag", max_components=2, n_boot=6, n_init=1, random_state=4)
    np.testing.assert_array_equal(a.boot, b.boot)
    pd.testing.assert_frame_equal(a.table, b.table)
    assert not np.array_equal(a.boot, c.boot)


def test_lrt_same_result_with_worker_processes():
    X = _two_groups(n=60, seed=2)
    kw = dict(max_components=2, n_boot=4, n_init=1, random_state=9)
    one = bootstrap_lrt(X, "spherical", n_jobs=1, **kw)
    two = bootstrap_lrt(X, "spherical", n_jobs=2, **kw)
    np.testing.assert_array_equal(one.boot, two.boot)


def test_lrt_sequential_rule():
    X = np.random.default_rng(3).normal(size=(60, 2))  # one group: 1 vs 2 not significant
    # mclust: with maxG given every test runs
    full = bootstrap_lrt(X, "tied", max_components=3, n_boot=9, n_init=1, random_state=0)
    assert len(full.table) == 2 and not full.sequential
    assert full.p_values[0] > 0.05
    # sequential: stop after the first p-value > level
    seq = bootstrap_lrt(
        X, "tied", max_components=3, n_boot=9, n_init=1, random_state=0, sequential=True
    )
    assert list(seq.table["test"]) == ["1 vs 2"]
    assert seq.boot.shape == (9, 1)
    # without max_components (mclust's maxG = NULL) the rule is on by default
    auto = bootstrap_lrt(X, "tied", n_boot=9, n_init=1, random_state=0)
    assert auto.sequential and list(auto.table["test"]) == ["1 vs 2"]
    assert sorted(auto.estimators) == [1, 2]


@pytest.mark.parametrize("start", ["fitted", "fresh", "both"])
def test_lrt_starts(start):
    X = _two_groups(n=60, seed=4)
    res = bootstrap_lrt(
        X, "full", max_components=3, n_boot=5, n_init=1, start=start, random_state=1
    )
    assert res.start == start
    assert np.all(np.isfinite(res.boot))


def test_lrt_both_starts_keep_the_better_refit():
    X = _two_groups(n=60, seed=4)
    kw = dict(max_components=3, n_boot=8, n_init=1, random_state=1)
    fitted = bootstrap_lrt(X, "full", start="fitted", **kw).boot[:, 1]
    both = bootstrap_lrt(X, "full", start="both", **kw).boot[:, 1]
    # same data sets (the draw comes first in each replicate's stream); the K = 2 null refit
    # has one optimum here, so the better K = 3 refit can only raise the statistic
    assert np.all(both >= fitted - 1e-6)
    assert np.any(both > fitted + 0.1)


@pytest.mark.parametrize("covariance_type", TYPES)
def test_lrt_every_covariance_type(covariance_type):
    X = _two_groups(n=60, seed=5)
    res = bootstrap_lrt(X, covariance_type, max_components=2, n_boot=3, n_init=1, random_state=0)
    assert res.covariance_type == covariance_type
    assert res.p_values[0] == pytest.approx(0.25)


def test_lrt_str_like_mclust(separated_lrt):
    text = str(separated_lrt[1])
    assert "Bootstrap sequential LRT for the number of mixture components" in text
    assert "Replications = 49" in text
    assert "1 vs 2" in text and "2 vs 3" in text


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_boot": 0}, "n_boot is out of range"),
        ({"n_boot": 2.5}, "n_boot has the wrong type"),
        ({"max_components": 1}, "max_components must be >= 2"),
        ({"start": "hc"}, "start must be one of"),
        ({"level": 1.5}, "level must lie in"),
        ({"n_jobs": 0}, "n_jobs is out of range"),
        ({"estimator_kwargs": {"n_init": 3}}, "estimator_kwargs must not set n_init"),
    ],
)
def test_lrt_argument_errors(kwargs, match):
    X = _two_groups(n=40)
    args = {"max_components": 2, "n_boot": 3} | kwargs
    with pytest.raises(ParameterError, match=match) as err:
        bootstrap_lrt(X, "full", **args)
    assert isinstance(err.value, ValueError)
    assert "\n" not in str(err.value)


# ------------------------------------------------------------------------------------ parameters
@pytest.mark.parametrize("kind", ["nonparametric", "parametric", "wlb"])
def test_parameters_one_component_se_of_mean(kind):
    rng = np.random.default_rng(10)
    n, sd = 400, np.array([2.0, 0.5])
    X = rng.normal(0.0, 1.0, (n, 2)) * sd
    est = GaussianMixtureEM(1, covariance_type="diag", tol=1e-8).fit(X)
    res = bootstrap_parameters(est, X, n_boot=300, kind=kind, random_state=2)
    se = res.summary().query("parameter == 'mu'")["se"].to_numpy()
    expected = np.sqrt(est.covariances_[0]) / np.sqrt(n)
    np.testing.assert_allclose(se, expected, rtol=0.2)
    assert res.weights.shape == (300, 1) and np.all(res.weights == 1.0)


@pytest.mark.parametrize("kind", ["nonparametric", "parametric", "wlb"])
def test_parameters_weight_se_well_separated(kind):
    n, w = 400, 0.3
    X = _two_groups(n=n, seed=11, weight=w, gap=12.0)
    est = GaussianMixtureEM(2, covariance_type="full", n_init=3, random_state=0).fit(X)
    res = bootstrap_parameters(est, X, n_boot=300, kind=kind, random_state=3)
    table = res.summary()
    se_w = table.query("parameter == 'w'")["se"].to_numpy()
    w_hat = est.weights_
    np.testing.assert_allclose(se_w, np.sqrt(w_hat * (1 - w_hat) / n), rtol=0.2)
    # the 95 % interval holds the estimate, and is about +-1.96 SE wide
    row = table.query("parameter == 'w'").iloc[0]
    assert row["lower"] < row["estimate"] < row["upper"]
    assert (row["upper"] - row["lower"]) / (2 * row["se"]) == pytest.approx(1.96, rel=0.2)


def test_parameters_wlb_uses_sample_weight(monkeypatch):
    X = _two_groups(n=50, seed=12)
    est = GaussianMixtureEM(2, covariance_type="tied", random_state=0).fit(X)
    seen = []
    original = GaussianMixtureEM.fit

    def spy(self, X, y=None, sample_weight=None, **kw):
        seen.append(None if sample_weight is None else np.array(sample_weight))
        return original(self, X, y, sample_weight=sample_weight, **kw)

    monkeypatch.setattr(GaussianMixtureEM, "fit", spy)
    bootstrap_parameters(est, X, n_boot=4, kind="wlb", random_state=0)
    assert len(seen) == 4
    for w in seen:
        assert w is not None and w.shape == (50,)
        assert np.all(w > 0) and w.sum() == pytest.approx(50)
    assert not np.allclose(seen[0], seen[1])
    seen.clear()
    bootstrap_parameters(est, X, n_boot=2, kind="nonparametric", random_state=0)
    assert seen == [None, None]


def test_parameters_keep_component_order():
    rng = np.random.default_rng(13)
    centres = np.array([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]])
    X = np.vstack([rng.normal(c, 1.0, (80, 2)) for c in centres])
    est = GaussianMixtureEM(3, covariance_type="full", n_init=3, random_state=1).fit(X)
    res = bootstrap_parameters(est, X, n_boot=40, kind="nonparametric", random_state=0)
    # every draw's component k is near the fitted component k
    dist = np.linalg.norm(res.means - est.means_[None], axis=-1)
    assert dist.max() < 1.0
    assert res.n_relabelled == 0


def test_alignment_undoes_a_permutation():
    rng = np.random.default_rng(14)
    X = np.vstack([rng.normal(c, 1.0, (60, 2)) for c in ([0, 0], [6, 0], [0, 6])])
    est = GaussianMixtureEM(3, covariance_type="spherical", random_state=0).fit(X)
    perm = np.array([2, 0, 1])
    shuffled = est.means_[perm] + 0.1
    back = _alignment(est, shuffled)
    np.testing.assert_allclose(shuffled[back], est.means_ + 0.1)


@pytest.mark.parametrize("covariance_type", TYPES)
def test_parameters_every_covariance_type(covariance_type):
    X = _two_groups(n=80, seed=15)
    est = GaussianMixtureEM(2, covariance_type=covariance_type, random_state=0).fit(X)
    res = bootstrap_parameters(est, X, n_boot=5, kind="parametric", random_state=0)
    assert isinstance(res, BootstrapParameters)
    assert res.draws["w"].shape == (5, 2)
    assert res.draws["mu"].shape == (5, 2, 2)
    assert res.draws["sigma"].shape == (5, 2, 2)
    assert res.covariances.shape == (5, 2, 2, 2)
    has_cov = covariance_type in ("full", "tied")
    assert ("cov" in res.draws) == has_cov
    table = res.summary(level=0.9)
    assert set(table["parameter"]) == {"w", "mu", "sigma"} | ({"cov"} if has_cov else set())
    assert ("feature_bis" in table.columns) == has_cov
    assert table.attrs["level"] == 0.9
    if covariance_type == "tied":  # one covariance matrix shared by both components
        np.testing.assert_array_equal(res.covariances[:, 0], res.covariances[:, 1])
    ds = res.to_dataset()
    assert ds["mu"].dims == ("bootstrap", "component", "feature")
    assert ds["w_hat"].dims == ("component",)


def test_parameters_reproducible_and_mclust_kind_names():
    X = _two_groups(n=60, seed=16)
    est = GaussianMixtureEM(2, covariance_type="full", random_state=0).fit(X)
    a = bootstrap_parameters(est, X, n_boot=5, kind="bs", random_state=8)
    b = bootstrap_parameters(est, X, n_boot=5, kind="nonparametric", random_state=8)
    np.testing.assert_array_equal(a.means, b.means)
    assert a.kind == "nonparametric"
    assert bootstrap_parameters(est, X, n_boot=2, kind="wlbs", random_state=0).kind == "wlb"
    assert bootstrap_parameters(est, X, n_boot=2, kind="pb", random_state=0).kind == "parametric"


def test_parameters_argument_errors():
    X = _two_groups(n=40)
    with pytest.raises(ParameterError, match="estimator is not fitted"):
        bootstrap_parameters(GaussianMixtureEM(2), X, n_boot=3)
    est = GaussianMixtureEM(2, random_state=0).fit(X)
    with pytest.raises(ParameterError, match="n_boot is out of range"):
        bootstrap_parameters(est, X, n_boot=0)
    with pytest.raises(ParameterError, match="kind must be"):
        bootstrap_parameters(est, X, n_boot=3, kind="jackknife")
    with pytest.raises(ParameterError, match="features"):
        bootstrap_parameters(est, X[:, :1], n_boot=3)
    with pytest.raises(ParameterError, match="fitted GaussianMixtureEM"):
        bootstrap_parameters(object(), X, n_boot=3)


def test_parameters_refits_converge_despite_a_loose_estimator_tol():
    # overlapping groups: EM from the fitted solution moves slowly, so a refit that stopped at
    # the estimator's tol=1e-3 would stay near it and shrink the bootstrap spread
    rng = np.random.default_rng(17)
    X = np.vstack([rng.normal([0, 0], 1, (180, 2)), rng.normal([2.5, 1], 1, (120, 2))])
    est = GaussianMixtureEM(2, covariance_type="full", n_init=5, random_state=0).fit(X)
    assert est.tol == 1e-3
    kw = dict(n_boot=40, kind="nonparametric", random_state=1)
    default = bootstrap_parameters(est, X, **kw).summary()["se"].to_numpy()
    tight = (
        bootstrap_parameters(est, X, estimator_kwargs={"tol": 1e-11, "max_iter": 20000}, **kw)
        .summary()["se"]
        .to_numpy()
    )
    loose = (
        bootstrap_parameters(est, X, estimator_kwargs={"tol": 1e-3, "max_iter": 100}, **kw)
        .summary()["se"]
        .to_numpy()
    )
    np.testing.assert_allclose(default, tight, rtol=0.02)
    assert np.median(loose / tight) < 0.7
