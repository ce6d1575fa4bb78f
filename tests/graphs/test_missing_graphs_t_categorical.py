"""Missing values and partial labels in the Student-t and categorical graphs.

A row with NaN entries contributes the density of its observed coordinates (Student-t: the
multivariate t marginal of the observed block, same nu, dimension p_o; categorical: a missing
answer adds nothing), a labelled row ``log w_k + log f_k(x_n)``. Graph functions are compiled
with mode="FAST_COMPILE" (Python linker), one model per case; MAP-EM is checked against the
graph at EM's point (objective and a vanishing gradient), one real ``fit_map`` per family.
"""

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.special import logsumexp

from bayesmix import _math
from bayesmix._validation import DataError
from bayesmix.config import ModelSpec, PriorSpec
from bayesmix.families import get_family
from bayesmix.graphs import build_model, point_to_initvals
from bayesmix.inference import fit_em, fit_map, get_compiled, impute
from tests.families.helpers import unconstrained_point
from tests.graphs.helpers import MODE, random_point, result_values

RESULT_VARS = ("w", "mu", "sigma", "cov", "nu", "probs")
EM_TIGHT = {"tol": 1e-12, "max_iter": 5000, "random_state": 0}
CAT = ModelSpec("categorical", 2, priors=PriorSpec(category_alpha=2.0))


def _t_data(n, seed=0, share=0.25):
    """3-D data from two t components, about ``share`` of the entries NaN (no empty row)."""
    rng = np.random.default_rng(seed)
    z = rng.integers(0, 2, n)
    loc = np.array([[0.0, 0.0, 0.0], [4.0, 3.0, -2.0]])
    mix = np.array([[1.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.0, 0.0, 1.0]])
    X = loc[z] + rng.standard_t(5, size=(n, 3)) @ mix
    X[rng.random(X.shape) < share] = np.nan
    X[np.isnan(X).all(axis=1), 0] = 1.0
    return X


def _cat_data(n, seed=0, share=0.25):
    """Codes of three items with 3, 4 and 2 levels from two classes, ``share`` NaN."""
    rng = np.random.default_rng(seed)
    z = rng.integers(0, 2, n)
    modes = np.array([[0, 3, 1], [2, 0, 0]])
    X = modes[z].astype(float)
    flip = rng.random(X.shape) < 0.35
    X[flip] = rng.integers(0, 4, flip.sum())
    X[:, 0] = np.minimum(X[:, 0], 2)
    X[:, 2] = np.minimum(X[:, 2], 1)
    X[:4] = [[2, 3, 1], [0, 0, 0], [1, 1, 0], [0, 2, 1]]  # every level seen, whatever the NaN
    X[4:][rng.random((n - 4, 3)) < share] = np.nan
    X[np.isnan(X).all(axis=1), 0] = 1.0
    return X


def _by_hand(X, v):
    """log f_k(x_n,obs) (N, K): SciPy's multivariate t of the observed block, or by hand."""
    k = v["w"].shape[0]
    out = np.empty((X.shape[0], k))
    for i, x in enumerate(X):
        o = ~np.isnan(x)
        for j in range(k):
            if "probs" in v:  # a missing answer adds nothing
                out[i, j] = sum(np.log(v["probs"][j, d, int(x[d])]) for d in np.flatnonzero(o))
                continue
            scale = v["cov"][j] if "cov" in v else np.diag(v["sigma"][j] ** 2)
            t = stats.multivariate_t(v["mu"][j][o], scale[np.ix_(o, o)], df=v["nu"][j])
            out[i, j] = t.logpdf(x[o])
    return out


CASES = [  # (spec, share of NaN, labelled)
    pytest.param(ModelSpec("student_t", 2, "full"), 0.25, True, id="t-full-missing-labels"),
    pytest.param(ModelSpec("student_t", 2, "full"), 0.25, False, id="t-full-missing"),
    pytest.param(ModelSpec("student_t", 2, "diag"), 0.25, True, id="t-diag-missing-labels"),
    pytest.param(ModelSpec("student_t", 2, "diag"), 0.25, False, id="t-diag-missing"),
    pytest.param(ModelSpec("student_t", 2, "full"), 0.0, True, id="t-full-labels"),
    pytest.param(ModelSpec("student_t", 2, "diag"), 0.0, True, id="t-diag-labels"),
    pytest.param(CAT, 0.25, True, id="cat-missing-labels"),
    pytest.param(CAT, 0.25, False, id="cat-missing"),
    pytest.param(CAT, 0.0, True, id="cat-labels"),
]


@pytest.mark.parametrize(("spec", "share", "labelled"), CASES)
def test_graph_logp_is_the_observed_marginal_and_labels_pick_their_component(
    spec, share, labelled
):
    n = 24
    X = (_cat_data if spec.family == "categorical" else _t_data)(n, seed=1, share=share)
    if share:
        assert len(np.unique(~np.isnan(X), axis=0)) >= 3  # complete rows and 2+ patterns
    labels = None
    if labelled:
        labels = np.full(n, -1)
        labels[::3] = np.arange(8) % 2  # every third row labelled, both components used
    model = build_model(spec, X, missing="model", labels=labels)
    # PyMC never saw a NaN: no imputed variables, finite data; the mask only with NaN
    assert not any("unobserved" in name for name in model.named_vars)
    assert np.isfinite(model["x_data"].get_value()).all()
    assert ("x_observed" in model.named_vars) == bool(share)
    point = random_point(model, 2)
    v = result_values(model, point, RESULT_VARS)
    joint = np.log(v["w"]) + _by_hand(X, v)
    expected = logsumexp(joint, axis=1)
    if labelled:
        known = labels >= 0
        expected[known] = joint[known, labels[known]]
        assert np.all(expected[known] < logsumexp(joint, axis=1)[known])  # a real difference
    rows = model.compile_fn(model.logp(vars=[model["x"]], sum=False)[0], mode=MODE)(point)
    np.testing.assert_allclose(rows, expected, rtol=0, atol=1e-9)
    # the NumPy densities (membership, LOO, imputation) agree
    np.testing.assert_allclose(
        _math.mixture_log_density(X, v, spec.family, labels), expected, rtol=0, atol=1e-9
    )
    assert np.all(np.isfinite(model.compile_dlogp(mode=MODE)(point)))


@pytest.mark.parametrize(
    "spec",
    [ModelSpec("student_t", 2, "full"), ModelSpec("student_t", 2, "diag"), CAT],
    ids=["t-full", "t-diag", "cat"],
)
def test_complete_unlabelled_data_build_the_graph_of_today(spec):
    X = (_cat_data if spec.family == "categorical" else _t_data)(20, share=0.0)
    plain = build_model(spec, X)
    opted = build_model(spec, X, missing="model", labels=np.full(20, -1))
    assert list(opted.named_vars) == list(plain.named_vars)  # no mask, no labels
    point = random_point(plain, 4)
    a = plain.compile_fn(plain.logp(), mode=MODE)(point)
    b = opted.compile_fn(opted.logp(), mode=MODE)(point)
    assert a == b
    # one compiled model (the cache builds it; nothing is compiled here)
    assert get_compiled(spec, X) is get_compiled(spec, X, missing="model", labels=np.full(20, -1))


# ------------------------------------------------------------------ MAP-EM = the graph's mode
@pytest.fixture(scope="module")
def t_data():
    return _t_data(120, seed=3, share=0.2)


@pytest.fixture(scope="module")
def cat_data():
    return _cat_data(150, seed=3, share=0.2)


def _graph_at_em(spec, X, tree, labels=None):
    """EM's objective x N and the graph's log posterior (no Jacobian) and gradient there."""
    model = build_model(spec, X, missing="model", labels=labels)
    point = {name: tree["em"][name].values for name in tree["em"].data_vars}
    init = point_to_initvals(spec, point, X.shape[1])
    up = unconstrained_point(model, init)
    lp = model.compile_logp(jacobian=False, mode=MODE)(up)
    grad = model.compile_dlogp(jacobian=False, mode=MODE)(up)
    return tree["em"].attrs["lower_bound"] * X.shape[0], lp, grad


@pytest.mark.parametrize(
    ("covariance", "labelled"),
    [
        pytest.param("full", False, id="full"),
        pytest.param("diag", False, id="diag"),
        pytest.param("diag", True, id="diag-labels"),
    ],
)
def test_student_t_map_em_is_the_graph_mode_with_missing_values(t_data, covariance, labelled):
    spec = ModelSpec("student_t", 2, covariance)
    labels = None
    if labelled:
        labels = np.full(len(t_data), -1)
        labels[:6] = [0, 0, 0, 1, 1, 1]
    tree = fit_em(spec, t_data, missing="model", labels=labels, **EM_TIGHT)
    objective, lp, grad = _graph_at_em(spec, t_data, tree, labels)
    assert objective == pytest.approx(lp, rel=0, abs=1e-6)
    assert np.max(np.abs(grad)) < 1e-3  # EM's point is a stationary point of MAP's objective
    if covariance == "full":  # impute(method="mean") = sum_k r_k E[x_m | x_o, k], by SciPy
        em = tree["em"]
        w, mu, cov, nu = (em[name].values for name in ("w", "mu", "cov", "nu"))
        got = impute(tree, group="em").values
        for i, x in enumerate(t_data):
            m, o = np.isnan(x), ~np.isnan(x)
            if not m.any():
                continue
            log_r = [
                np.log(w[k])
                + stats.multivariate_t(mu[k][o], cov[k][np.ix_(o, o)], df=nu[k]).logpdf(x[o])
                for k in range(2)
            ]
            r = np.exp(np.asarray(log_r) - logsumexp(log_r))
            loc = [
                mu[k][m]
                + cov[k][np.ix_(m, o)] @ np.linalg.solve(cov[k][np.ix_(o, o)], x[o] - mu[k][o])
                for k in range(2)
            ]
            np.testing.assert_allclose(got[i, m], r @ np.asarray(loc), rtol=1e-10)


@pytest.fixture(scope="module")
def cat_em(cat_data):
    labels = np.full(len(cat_data), -1)
    labels[:2] = [1, 0]
    return labels, fit_em(CAT, cat_data, missing="model", labels=labels, **EM_TIGHT)


def test_categorical_map_em_is_the_graph_mode_and_impute(cat_data, cat_em):
    labels, tree = cat_em
    objective, lp, grad = _graph_at_em(CAT, cat_data, tree, labels)
    assert objective == pytest.approx(lp, rel=0, abs=1e-6)
    assert np.max(np.abs(grad)) < 1e-4
    # impute(method="mean"): sum_k r_k E[code | z = k] (the expected code, a number)
    got = impute(tree, group="em")
    point = {name: tree["em"][name].values for name in ("w", "probs")}
    resp = np.exp(_math.log_responsibilities(cat_data, point, "categorical", labels))
    expected_code = point["probs"] @ np.arange(point["probs"].shape[-1])  # (K, D)
    rows, cols = np.nonzero(np.isnan(cat_data))
    np.testing.assert_allclose(
        got.values[rows, cols], np.sum(resp[rows] * expected_code[:, cols].T, axis=1), atol=1e-12
    )


@pytest.mark.slow
def test_categorical_fit_map_with_missing_values_and_labels_is_map_em(cat_data, cat_em):
    _, tree = cat_em
    tree = fit_map(CAT, cat_data, missing="model", random_seed=0, result=tree)  # labels: stored
    for name in ("w", "probs"):
        np.testing.assert_allclose(
            tree["map"][name].values, tree["em"][name].values, rtol=1e-4, atol=1e-6
        )


@pytest.mark.slow
def test_student_t_fit_map_with_missing_values_is_map_em(t_data):
    spec = ModelSpec("student_t", 2, "diag")
    tree = fit_em(spec, t_data, missing="model", **EM_TIGHT)
    tree = fit_map(spec, t_data, missing="model", random_seed=0, result=tree)
    for name in ("w", "mu", "sigma", "nu"):
        np.testing.assert_allclose(
            tree["map"][name].values, tree["em"][name].values, rtol=1e-4, atol=1e-6
        )


# ------------------------------------------------------------------ conditional_fill
NU = np.array([6.0, 9.0])
MU = np.array([[0.0, 1.0, -1.0], [3.0, 2.0, 0.5]])
A = np.array([[1.0, 0.6, -0.3], [0.0, 0.8, 0.4], [0.0, 0.0, 0.7]])
COV = np.stack([A @ A.T, np.diag([0.5, 2.0, 1.0]) + 0.3])
X_FILL = np.array([[0.4, np.nan, np.nan], [np.nan, 2.5, -0.2], [1.0, np.nan, 0.3]])


def _conditional_t(x, k, cov):
    """(location, scale matrix, dof) of x_m | x_o in component k, by hand."""
    m, o = np.isnan(x), ~np.isnan(x)
    s_oo, s_mo = cov[k][np.ix_(o, o)], cov[k][np.ix_(m, o)]
    resid = x[o] - MU[k][o]
    loc = MU[k][m] + s_mo @ np.linalg.solve(s_oo, resid)
    delta = resid @ np.linalg.solve(s_oo, resid)
    dof = NU[k] + o.sum()
    scale = (NU[k] + delta) / dof * (cov[k][np.ix_(m, m)] - s_mo @ np.linalg.solve(s_oo, s_mo.T))
    return loc, scale, dof


@pytest.mark.parametrize("full", [True, False], ids=["full", "diag"])
def test_student_t_conditional_fill_mean_and_draws(full):
    fam = get_family("student_t")
    cov = COV if full else np.stack([np.diag(np.diag(c)) for c in COV])
    params = {"w": np.array([0.4, 0.6]), "mu": MU, "sigma": np.sqrt(np.diagonal(cov, 0, 1, 2))}
    params["nu"] = NU
    if full:
        params["cov"] = cov
    z = np.array([[0, 1, 1]])
    one = {name: value[None] for name, value in params.items()}
    mean = fam.conditional_fill(one, X_FILL, z)[0]
    observed = ~np.isnan(X_FILL)
    np.testing.assert_array_equal(mean[observed], X_FILL[observed])
    s = 40_000
    many = {name: np.broadcast_to(value, (s, *value.shape)) for name, value in params.items()}
    draws = fam.conditional_fill(
        many, X_FILL, np.broadcast_to(z, (s, 3)), np.random.default_rng(0)
    )
    for i, x in enumerate(X_FILL):
        loc, scale, dof = _conditional_t(x, z[0, i], cov)
        np.testing.assert_allclose(mean[i][np.isnan(x)], loc, rtol=1e-12)
        got = draws[:, i][:, np.isnan(x)]
        var = dof / (dof - 2.0) * np.diag(scale)
        assert np.all(np.abs(got.mean(axis=0) - loc) < 4.5 * np.sqrt(var / s))
        np.testing.assert_allclose(got.var(axis=0), var, rtol=0.1)
        assert (draws[:, i][:, ~np.isnan(x)] == x[~np.isnan(x)]).all()  # observed: unchanged
    if not full:  # diagonal: the location is mu_m, but the spread depends on delta_o
        np.testing.assert_allclose(mean[np.isnan(X_FILL)], MU[z[0]][np.isnan(X_FILL)])


def test_categorical_conditional_fill_mean_and_draws():
    fam = get_family("categorical")
    probs = np.array(
        [
            [[0.2, 0.5, 0.3, 0.0], [0.1, 0.2, 0.3, 0.4], [0.7, 0.3, 0.0, 0.0]],
            [[0.6, 0.1, 0.3, 0.0], [0.4, 0.3, 0.2, 0.1], [0.1, 0.9, 0.0, 0.0]],
        ]
    )
    X = np.array([[np.nan, 2.0, np.nan], [1.0, np.nan, 0.0]])
    z = np.array([[1, 0]])
    mean = fam.conditional_fill({"w": np.array([[0.5, 0.5]]), "probs": probs[None]}, X, z)[0]
    codes = np.arange(4)
    np.testing.assert_allclose(mean[0], [probs[1, 0] @ codes, 2.0, probs[1, 2] @ codes])
    np.testing.assert_allclose(mean[1], [1.0, probs[0, 1] @ codes, 0.0])
    s = 20_000
    params = {"w": np.full((s, 2), 0.5), "probs": np.broadcast_to(probs, (s, 2, 3, 4))}
    draws = fam.conditional_fill(params, X, np.broadcast_to(z, (s, 2)), np.random.default_rng(1))
    for (i, d), k in [((0, 0), 1), ((0, 2), 1), ((1, 1), 0)]:
        freq = np.bincount(draws[:, i, d].astype(int), minlength=4) / s
        np.testing.assert_allclose(freq, probs[k, d], atol=4.5 * np.sqrt(0.25 / s))
    assert (draws[:, 0, 1] == 2.0).all() and (draws[:, 1, 0] == 1.0).all()


def test_categorical_check_data_takes_missing_answers():
    fam = get_family("categorical")
    df = pd.DataFrame({"a": ["x", None, "y", "x"], "b": [0.0, 1.0, np.nan, 1.0]})
    codes = fam.check_data(df, n_components=2, allow_nan=True)
    np.testing.assert_array_equal(np.isnan(codes), [[0, 0], [1, 0], [0, 1], [0, 0]])
    assert fam.graph_key(codes) == (2, 2) and list(fam.coords(codes, ["a", "b"])["level"]) == [
        0,
        1,
    ]
    assert json.loads(fam.data_attrs(df, ["a", "b"])["levels"]) == {
        "a": ["x", "y"],
        "b": ["0", "1"],
    }
    with pytest.raises(DataError, match="missing"):
        fam.check_data(df, n_components=2)
    with pytest.raises(DataError, match="every value missing"):
        fam.check_data(df.assign(b=[0.0, np.nan, np.nan, 1.0]), fitting=False, allow_nan=True)
