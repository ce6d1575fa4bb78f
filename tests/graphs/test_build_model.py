"""The PyMC graphs: names/dims and the marginal likelihood against independent references.

Functions are compiled with mode="FAST_COMPILE" (Python linker) so that these tests do not
spend minutes in Numba.
"""

import itertools

import numpy as np
import pymc as pm
import pytest
from scipy.special import logsumexp
from scipy.stats import bernoulli, multivariate_normal, norm

from bayesmix._validation import DataError, ParameterError
from bayesmix.config import ModelSpec, PriorSpec
from bayesmix.graphs import build_model, default_initvals, point_to_initvals
from tests.graphs.helpers import MODE, random_point, result_values

RESULT_VARS = ("w", "mu", "sigma", "cov", "corr", "p")


def _data(family, n, d, seed=0):
    rng = np.random.default_rng(seed)
    if family == "bernoulli":
        return (rng.random((n, d)) < 0.4).astype(np.int64)
    return rng.normal(size=(n, d)) * [1.0, 3.0, 0.5][:d] + [0.0, 10.0, -2.0][:d]


CASES = [
    pytest.param(ModelSpec("gaussian", 3, "full"), "gaussian", 2, id="full"),
    pytest.param(ModelSpec("gaussian", 3, "full"), "gaussian", 3, id="full-3d"),
    pytest.param(ModelSpec("gaussian", 3, "diag"), "gaussian", 2, id="diag"),
    pytest.param(ModelSpec("gaussian", 2, "spherical"), "gaussian", 3, id="spherical"),
    pytest.param(ModelSpec("gaussian", 3, "full", ordered=True), "gaussian", 1, id="1d-ordered"),
    pytest.param(ModelSpec("gaussian", 2, "diag", ordered=True), "gaussian", 2, id="2d-ordered"),
    pytest.param(ModelSpec("bernoulli", 3), "bernoulli", 5, id="bernoulli"),
]


def _scipy_component_logpdf(x, v, k, family, full):
    """log f_k(x) for one observation x (D,) with SciPy."""
    if family == "bernoulli":
        return bernoulli.logpmf(x, v["p"][k]).sum()
    if full:
        return multivariate_normal(v["mu"][k], v["cov"][k]).logpdf(x)
    return norm.logpdf(x, v["mu"][k], v["sigma"][k]).sum()


@pytest.mark.parametrize(("spec", "family", "d"), CASES)
def test_observed_logp_matches_scipy_and_latent_enumeration(spec, family, d):
    X = _data(family, 30, d)
    model = build_model(spec, X)
    point = random_point(model, 1)
    v = result_values(model, point, RESULT_VARS)
    full = "cov" in v
    k = spec.n_components
    # pointwise: PyMC vs SciPy
    rows = model.compile_fn(model.logp(vars=[model["x"]], sum=False)[0], mode=MODE)(point)
    comp = np.array(
        [[_scipy_component_logpdf(x, v, j, family, full) for j in range(k)] for x in X]
    )
    ref = logsumexp(np.log(v["w"]) + comp, axis=1)
    assert rows.shape == (30,)
    np.testing.assert_allclose(rows, ref, rtol=0, atol=1e-8)
    # total on 4 points: enumerate every joint label vector z in {0..K-1}^4 (no log-sum-exp
    # over components anywhere), products of per-feature densities
    Xs = X[:4]
    ms = build_model(spec, Xs, priors=None)
    ps = {kk: point[kk] for kk in point}
    vs = result_values(ms, ps, RESULT_VARS)
    total = ms.compile_fn(ms.observedlogp, mode=MODE)(ps)

    def dens(x, j):
        if family == "bernoulli":
            return np.prod(vs["p"][j] ** x * (1 - vs["p"][j]) ** (1 - x))
        if full:
            return multivariate_normal(vs["mu"][j], vs["cov"][j]).pdf(x)
        return np.prod(norm.pdf(x, vs["mu"][j], vs["sigma"][j]))

    lik = sum(
        np.prod([vs["w"][z[n]] * dens(Xs[n], z[n]) for n in range(4)])
        for z in itertools.product(range(k), repeat=4)
    )
    np.testing.assert_allclose(total, np.log(lik), rtol=1e-10, atol=1e-8)


def test_batched_univariate_mixture_is_a_different_model():
    # the pitfall the CustomDist avoids: one label per element instead of per row
    X = _data("bernoulli", 30, 5)
    spec = ModelSpec("bernoulli", 3)
    model = build_model(spec, X)
    point = random_point(model, 2)
    v = result_values(model, point, RESULT_VARS)
    ours = model.compile_fn(model.observedlogp, mode=MODE)(point)
    per_element = logsumexp(
        np.log(v["w"])[None, None, :] + bernoulli.logpmf(X[:, :, None], v["p"].T[None, :, :]),
        axis=2,
    ).sum()
    assert abs(ours - per_element) > 0.1


@pytest.mark.parametrize(("spec", "family", "d"), CASES)
def test_names_dims_and_coords(spec, family, d):
    import pandas as pd

    X = pd.DataFrame(_data(family, 12, d), columns=[f"c{j}" for j in range(d)])
    m = build_model(spec, X)
    dims = m.named_vars_to_dims
    assert dims["x"] == ("obs_id", "feature")
    assert dims["w"] == ("component",)
    assert list(m.coords["feature"]) == list(X.columns)
    assert list(m.coords["feature_bis"]) == list(X.columns)
    assert list(m.coords["obs_id"]) == list(range(12))
    assert list(m.coords["component"]) == list(range(spec.n_components))
    if family == "bernoulli":
        assert dims["p"] == ("component", "feature")
        assert "mu" not in m.named_vars
    else:
        assert dims["mu"] == ("component", "feature")
        assert dims["sigma"] == ("component", "feature")
        if spec.covariance == "full" and d > 1:
            assert dims["cov"] == ("component", "feature", "feature_bis")
            assert dims["corr"] == ("component", "feature", "feature_bis")
            assert m["cov"] in m.deterministics and m["corr"] in m.deterministics
        else:
            assert "cov" not in m.named_vars
    if spec.covariance == "spherical":
        assert m["sigma"] in m.deterministics
    assert "x_data" in m.named_vars  # pm.Data container


def test_spherical_sigma_repeated_and_ordered_means():
    X = _data("gaussian", 20, 3)
    m = build_model(ModelSpec("gaussian", 3, "spherical", ordered=True), X)
    point = m.initial_point(0)
    point.update(
        {
            k: v
            for k, v in random_point(m, 3).items()
            if not k.startswith("mu_first")  # keep a valid ordered start
        }
    )
    init = default_initvals(ModelSpec("gaussian", 3, "spherical", ordered=True), X)
    assert np.all(np.diff(init["mu_first"]) > 0)
    v = result_values(m, random_point(m, 4), RESULT_VARS)
    assert np.all(v["sigma"] == v["sigma"][:, :1])


def test_ordered_transform_keeps_first_feature_sorted():
    X = _data("gaussian", 20, 2)
    spec = ModelSpec("gaussian", 4, "diag", ordered=True)
    m = build_model(spec, X)
    for seed in range(5):
        v = result_values(m, random_point(m, seed), RESULT_VARS)
        assert np.all(np.diff(v["mu"][:, 0]) > 0)


def test_point_to_initvals_round_trip_full():
    X = _data("gaussian", 20, 2)
    spec = ModelSpec("gaussian", 2, "full")
    m = build_model(spec, X)
    v = result_values(m, random_point(m, 5), RESULT_VARS)
    init = point_to_initvals(spec, v, 2)
    assert set(init) == {rv.name for rv in m.free_RVs}
    np.testing.assert_allclose(init["corr_chol"] @ np.swapaxes(init["corr_chol"], 1, 2), v["corr"])


@pytest.mark.parametrize("d", [2, 4])
def test_formulations_agree_full(d):
    # custom (whitened residuals from one matrix product) against the two plain PyMC
    # formulations and SciPy, at a random point, on data far from the origin
    X = _data("gaussian", 25, min(d, 3))
    if d == 4:
        X = np.column_stack([X, X[:, 0] * 0.3 + np.random.default_rng(1).normal(size=25)])
    spec = ModelSpec("gaussian", 3, "full")
    models = {f: build_model(spec, X, formulation=f) for f in ("custom", "mixture", "batched")}
    point = random_point(models["custom"], 6)
    rows = {
        f: m.compile_fn(m.logp(vars=[m["x"]], sum=False)[0], mode=MODE)(point)
        for f, m in models.items()
    }
    v = result_values(models["custom"], point, RESULT_VARS)
    ref = logsumexp(
        np.log(v["w"])
        + np.stack([multivariate_normal(v["mu"][j], v["cov"][j]).logpdf(X) for j in range(3)], 1),
        axis=1,
    )
    for f, r in rows.items():
        np.testing.assert_allclose(r, ref, rtol=0, atol=1e-8, err_msg=f)
    # the gradients agree too (same value variables in every formulation)
    grads = {}
    for f, m in models.items():
        grads[f] = m.compile_dlogp(mode=MODE)(point)
    np.testing.assert_allclose(grads["custom"], grads["mixture"], rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(grads["custom"], grads["batched"], rtol=1e-8, atol=1e-8)
    with pytest.raises(ParameterError, match="formulation"):
        build_model(ModelSpec("gaussian", 2, "diag"), X, formulation="mixture")
    with pytest.raises(ParameterError, match="custom"):
        build_model(spec, X, formulation="fast")


def test_minibatch_likelihood_is_unbiased_and_scaled():
    # E over random batches of the minibatch log-likelihood = the full-data log-likelihood
    X = _data("gaussian", 200, 2)
    spec = ModelSpec("gaussian", 2, "full")
    full = build_model(spec, X)
    mb = build_model(spec, X, minibatch=20)
    assert mb.named_vars_to_dims.get("x") is None
    point = random_point(full, 8)
    total = full.compile_fn(full.observedlogp, mode=MODE)(point)
    rows = full.compile_fn(full.logp(vars=[full["x"]], sum=False)[0], mode=MODE)(point)
    f_mb = mb.compile_fn(mb.observedlogp, mode=MODE)
    draws = np.array([f_mb(point) for _ in range(300)])
    # each draw is (N / B) * a sum of B rows drawn from the N rows
    se = np.sqrt(200.0 / 20 * 200 * rows.var() / 300)
    assert abs(draws.mean() - total) < 4 * se
    assert draws.std() > 0  # batches really change between evaluations
    for bad in (0, 201, 2.5, True):
        with pytest.raises(ParameterError, match="minibatch"):
            build_model(spec, X, minibatch=bad)


def test_priors_match_scipy():
    X = _data("gaussian", 20, 2)
    spec = ModelSpec("gaussian", 2, "diag", priors=PriorSpec(weights_alpha=3.0))
    m = build_model(spec, X)
    point = random_point(m, 7)
    v = result_values(m, point, RESULT_VARS)
    from scipy.stats import dirichlet, halfnorm

    sd = X.std(0, ddof=1)
    ref = (
        dirichlet([3.0, 3.0]).logpdf(v["w"])
        + norm.logpdf(v["mu"], X.mean(0), 2 * sd).sum()
        + halfnorm.logpdf(v["sigma"], scale=sd).sum()
    )
    free = [m[n] for n in ("w", "mu", "sigma")]
    got = m.compile_fn(m.logp(vars=free, jacobian=False), mode=MODE)(point)
    np.testing.assert_allclose(got, ref, atol=1e-8)


def test_custom_dist_random_draws_have_the_right_shape_and_support():
    Xb = _data("bernoulli", 15, 4)
    m = build_model(ModelSpec("bernoulli", 2), Xb)
    draws = pm.draw(m["x"], draws=3, random_seed=1, mode=MODE)
    assert draws.shape == (3, 15, 4)
    assert set(np.unique(draws)) <= {0, 1}
    Xg = _data("gaussian", 15, 2)
    mg = build_model(ModelSpec("gaussian", 2, "full"), Xg, formulation="custom")
    assert pm.draw(mg["x"], random_seed=1, mode=MODE).shape == (15, 2)


@pytest.mark.parametrize(
    ("spec", "X", "err", "match"),
    [
        (ModelSpec(), np.array([[0.0, np.nan], [1.0, 2.0], [3, 4]]), DataError, "NaN"),
        (ModelSpec(n_components=5), np.arange(8.0).reshape(4, 2), DataError, "n_components"),
        (ModelSpec("bernoulli", 2), np.array([[0, 2], [1, 0], [1, 1]]), DataError, "binary"),
    ],
)
def test_bad_data(spec, X, err, match):
    with pytest.raises(err, match=match):
        build_model(spec, X)


def test_feature_names_length_checked():
    with pytest.raises(ParameterError, match="feature_names"):
        build_model(ModelSpec(), _data("gaussian", 10, 2), feature_names=["a"])
