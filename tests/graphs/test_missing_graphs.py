"""Missing values and partial labels in the PyMC graphs, against SciPy.

A row with NaN entries contributes the density of its observed coordinates (the missing
ones summed out), a labelled row ``log w_k + log f_k(x_n)``. Functions are compiled with
mode="FAST_COMPILE" (Python linker): no Numba compilation here.
"""

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import bernoulli, multivariate_normal, norm, poisson

from bayesmix import _math
from bayesmix._validation import DataError, ParameterError
from bayesmix.config import ModelSpec
from bayesmix.graphs import build_model, check_labels, default_initvals
from tests.graphs.helpers import MODE, random_point, result_values

RESULT_VARS = ("w", "mu", "sigma", "cov", "p", "rate")


def _data(family, n, d, seed=0, share=0.25):
    """Data with about ``share`` of the entries NaN (no row or column all NaN)."""
    rng = np.random.default_rng(seed)
    if family == "bernoulli":
        X = (rng.random((n, d)) < 0.4).astype(float)
    elif family == "poisson":
        X = rng.poisson(3.0, size=(n, d)).astype(float)
    else:
        X = rng.normal(size=(n, d)) * [1.0, 3.0, 0.5][:d] + [0.0, 10.0, -2.0][:d]
    X[rng.random((n, d)) < share] = np.nan
    empty = np.isnan(X).all(axis=1)
    X[empty, 0] = 1.0
    return X


def _pointwise(model, point):
    return model.compile_fn(model.logp(vars=[model["x"]], sum=False)[0], mode=MODE)(point)


def _scipy_components(X, v, family):
    """log f_k(x_n,obs) (N, K) of the observed coordinates, one SciPy call per entry."""
    k = v["w"].shape[0]
    out = np.empty((X.shape[0], k))
    for i, x in enumerate(X):
        o = ~np.isnan(x)
        for j in range(k):
            if family == "bernoulli":
                out[i, j] = bernoulli.logpmf(x[o], v["p"][j][o]).sum()
            elif family == "poisson":
                out[i, j] = poisson.logpmf(x[o], v["rate"][j][o]).sum()
            elif "cov" in v:
                sub = v["cov"][j][np.ix_(o, o)]
                out[i, j] = multivariate_normal(v["mu"][j][o], sub).logpdf(x[o])
            else:
                out[i, j] = norm.logpdf(x[o], v["mu"][j][o], v["sigma"][j][o]).sum()
    return out


CASES = [
    pytest.param(ModelSpec("gaussian", 3, "full"), "gaussian", 3, id="full-3d"),
    pytest.param(ModelSpec("gaussian", 2, "tied"), "gaussian", 3, id="tied-3d"),
    pytest.param(ModelSpec("gaussian", 3, "diag"), "gaussian", 2, id="diag"),
    pytest.param(ModelSpec("gaussian", 2, "spherical"), "gaussian", 3, id="spherical"),
    pytest.param(ModelSpec("bernoulli", 3), "bernoulli", 5, id="bernoulli"),
    pytest.param(ModelSpec("poisson", 2), "poisson", 3, id="poisson"),
]


@pytest.mark.parametrize(("spec", "family", "d"), CASES)
def test_graph_logp_with_missing_values_is_the_observed_marginal(spec, family, d):
    X = _data(family, 30, d)
    patterns = np.unique(~np.isnan(X), axis=0)
    assert len(patterns) >= 3  # complete rows and at least two patterns of missing entries
    model = build_model(spec, X, missing="model")
    # PyMC never saw a NaN: no x_unobserved / imputed variables, the data hold no NaN
    assert not any("unobserved" in name for name in model.named_vars)
    assert {rv.name for rv in model.free_RVs} == {
        rv.name for rv in build_model(spec, np.nan_to_num(X, nan=1.0)).free_RVs
    }
    assert np.isfinite(model["x_data"].get_value()).all()
    point = random_point(model, 1)
    v = result_values(model, point, RESULT_VARS)
    comp = _scipy_components(X, v, family)
    ref = logsumexp(np.log(v["w"]) + comp, axis=1)
    np.testing.assert_allclose(_pointwise(model, point), ref, rtol=0, atol=1e-9)
    # the NumPy densities (membership, LOO, imputation) are the same marginals
    np.testing.assert_allclose(_math.component_log_density(X, v, family), comp, atol=1e-9)
    np.testing.assert_allclose(_math.mixture_log_density(X, v, family), ref, atol=1e-9)
    # the gradient that NUTS and MAP use is finite
    dlogp = model.compile_dlogp(mode=MODE)(point)
    assert np.all(np.isfinite(dlogp))


@pytest.mark.parametrize(
    ("spec", "family", "d", "share"),
    [
        (ModelSpec("gaussian", 3, "full"), "gaussian", 3, 0.0),  # labels, complete data
        (ModelSpec("gaussian", 3, "full"), "gaussian", 3, 0.25),
        (ModelSpec("gaussian", 3, "diag"), "gaussian", 2, 0.25),
        (ModelSpec("bernoulli", 3), "bernoulli", 5, 0.25),
        (ModelSpec("poisson", 2), "poisson", 3, 0.0),
    ],
    ids=["full-complete", "full-missing", "diag-missing", "bernoulli-missing", "poisson"],
)
def test_labelled_rows_contribute_their_own_component(spec, family, d, share):
    X = _data(family, 24, d, seed=2, share=share)
    k = spec.n_components
    labels = np.full(24, -1)
    labels[::3] = np.arange(8) % k  # every third row labelled, every component used
    model = build_model(spec, X, missing="model", labels=labels)
    assert model["x_labels"].get_value().tolist() == labels.tolist()
    point = random_point(model, 3)
    v = result_values(model, point, RESULT_VARS)
    joint = np.log(v["w"]) + _scipy_components(X, v, family)
    known = labels >= 0
    expected = logsumexp(joint, axis=1)
    expected[known] = joint[known, labels[known]]  # by hand: log w_k + log f_k(x_n)
    rows = _pointwise(model, point)
    np.testing.assert_allclose(rows, expected, rtol=0, atol=1e-9)
    assert np.all(rows[known] < logsumexp(joint, axis=1)[known])  # a real difference
    np.testing.assert_allclose(
        _math.mixture_log_density(X, v, family, labels), expected, rtol=0, atol=1e-9
    )
    assert np.all(np.isfinite(model.compile_dlogp(mode=MODE)(point)))


@pytest.mark.parametrize(("spec", "family", "d"), CASES)
def test_complete_unlabelled_data_build_the_graph_of_today(spec, family, d):
    X = _data(family, 20, d, share=0.0)
    plain = build_model(spec, X)
    opted = build_model(spec, X, missing="model", labels=np.full(20, -1))
    assert list(opted.named_vars) == list(plain.named_vars)  # no mask, no labels
    for name in ("x_observed", "x_labels", "x_patterns", "x_pattern"):
        assert name not in opted.named_vars
    point = random_point(plain, 4)
    a = plain.compile_fn(plain.logp(), mode=MODE)(point)
    b = opted.compile_fn(opted.logp(), mode=MODE)(point)
    assert a == b


def test_new_missing_entries_and_labels_are_data_of_one_graph():
    # a model built with missing values takes other masks/patterns/labels by pm.set_data
    import pymc as pm

    spec = ModelSpec("gaussian", 2, "full")
    X1, X2 = _data("gaussian", 30, 3, seed=5), _data("gaussian", 30, 3, seed=6)
    lab1 = np.r_[0, 1, np.full(28, -1)]
    lab2 = np.r_[np.full(28, -1), 1, 0]
    model = build_model(spec, X1, missing="model", labels=lab1)
    point = random_point(model, 7)
    fn = model.compile_fn(model.logp(vars=[model["x"]], sum=False)[0], mode=MODE)
    from bayesmix.families._base import ObservedRows

    with model:
        pm.set_data(ObservedRows(X2, lab2).values)
    fresh = build_model(spec, X2, missing="model", labels=lab2)
    np.testing.assert_allclose(fn(point), _pointwise(fresh, point), rtol=0, atol=1e-10)


def test_missing_and_labels_errors():
    X = _data("gaussian", 20, 2)
    spec = ModelSpec("gaussian", 2, "diag")
    with pytest.raises(DataError, match="missing='model'"):
        build_model(spec, X)  # the NaN error names the option
    with pytest.raises(ParameterError, match="missing"):
        build_model(spec, X, missing="impute")
    with pytest.raises(ParameterError, match="minibatch"):
        build_model(spec, X, missing="model", minibatch=5)
    bad = X.copy()
    bad[3] = np.nan
    with pytest.raises(DataError, match="every value missing"):
        build_model(spec, bad, missing="model")
    with pytest.raises(DataError, match="outside 0..1"):
        check_labels(np.r_[2, np.full(19, -1)], 20, 2)
    with pytest.raises(DataError, match="wrong shape"):
        check_labels(np.zeros(5), 20, 2)
    assert check_labels(np.full(20, -1), 20, 2) is None


def test_default_start_with_missing_values_is_finite():
    X = _data("gaussian", 40, 3, share=0.3)
    init = default_initvals(ModelSpec("gaussian", 2, "full"), X)
    assert all(np.all(np.isfinite(v)) for v in init.values())
