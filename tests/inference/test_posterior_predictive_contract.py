"""``sample_posterior_predictive``: every draw's replicate, dtypes, seeds, draw budget, coords.

Mutation testing (docs/mutation-testing.md) found these unpinned: replicates at the
boundaries of the blocks of 64 draws, the full covariance used per draw, the float32/int8
replicate dtypes, the seed, the draw budget and its messages, the coordinates.
"""

import numpy as np
import pytest
import xarray as xr

from bayesmix._validation import ParameterError
from bayesmix.config import ModelSpec
from bayesmix.families import get_family
from bayesmix.inference import _predict, sample_posterior_predictive
from bayesmix.inference._tree import new_tree

N_OBS = 2000


def _tree(family="gaussian", *, n_chain=2, n_draw=35, n_obs=N_OBS, X=None, seed=3):
    """One component per draw, its parameters far apart from draw to draw (K = 1)."""
    rng = np.random.default_rng(seed)
    d = 2
    if X is None:
        X = rng.normal(size=(n_obs, d)) if family == "gaussian" else rng.integers(0, 2, (n_obs, d))
    X = np.asarray(X, dtype=float)
    names = ["a", "b"]
    spec = ModelSpec(family, 1, "full") if family == "gaussian" else ModelSpec(family, 1)
    tree = new_tree(spec, X, names, seed)
    shape = (n_chain, n_draw, 1)
    dims = ("chain", "draw", "component")
    fd = (*dims, "feature")
    post = {"w": (dims, np.ones(shape))}
    if family == "gaussian":
        mu = 10.0 * np.arange(n_chain * n_draw).reshape(n_chain, n_draw, 1, 1) + np.zeros(d)
        sd = rng.uniform(0.5, 2.0, (*shape, d))
        rho = rng.uniform(0.6, 0.95, shape) * rng.choice([-1.0, 1.0], shape)
        cov = np.empty((*shape, d, d))
        cov[..., 0, 0], cov[..., 1, 1] = sd[..., 0] ** 2, sd[..., 1] ** 2
        cov[..., 0, 1] = cov[..., 1, 0] = rho * sd[..., 0] * sd[..., 1]
        post.update(mu=(fd, mu), sigma=(fd, sd), cov=((*fd, "feature_bis"), cov))
    else:
        post["p"] = (fd, rng.uniform(0.05, 0.95, (*shape, d)))
    coords = {
        "chain": [3, 7][:n_chain] if n_chain <= 2 else np.arange(n_chain),
        "draw": np.arange(n_draw),
        "component": [0],
        "feature": names,
        "feature_bis": names,
    }
    ds = xr.Dataset(post, coords=coords)
    tree["posterior"] = xr.DataTree(ds.drop_vars([c for c in ds.coords if c not in ds.dims]))
    return tree


def _per_draw(tree, out):
    post = tree["posterior"].to_dataset().stack(sample=("chain", "draw"))
    x = out["posterior_predictive"]["x"].stack(sample=("chain", "draw"))
    x = x.transpose("sample", "obs_id", "feature").values.astype(float)
    return post, x


def test_every_draw_gets_a_replicate_from_its_own_mean_and_full_covariance():
    # 70 draws: blocks of 64 draws end inside; the first and the 65th draw are checked too
    tree = _tree("gaussian")
    out = sample_posterior_predictive(tree, random_seed=1)
    post, x = _per_draw(tree, out)
    mu = post["mu"].transpose("sample", "component", "feature").values[:, 0]
    cov = post["cov"].transpose("sample", "component", "feature", "feature_bis").values[:, 0]
    assert x.shape == (70, N_OBS, 2)
    sd = np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1))
    z = (x.mean(axis=1) - mu) / (sd / np.sqrt(N_OBS))
    assert np.abs(z).max() < 5.0, np.abs(z).max()
    rho = cov[:, 0, 1] / (sd[:, 0] * sd[:, 1])
    r = np.array([np.corrcoef(xs.T)[0, 1] for xs in x])
    # SE of a sample correlation: (1 - rho^2) / sqrt(N) <= 0.015 here
    assert np.abs(r - rho).max() < 0.06, np.abs(r - rho).max()
    var_ratio = x.var(axis=1, ddof=1) / sd**2
    assert np.abs(var_ratio - 1.0).max() < 0.2


def test_bernoulli_replicates_are_int8_with_each_draws_probabilities():
    tree = _tree("bernoulli")
    out = sample_posterior_predictive(tree, random_seed=2)
    assert out["posterior_predictive"]["x"].dtype == np.int8
    post, x = _per_draw(tree, out)
    p = post["p"].transpose("sample", "component", "feature").values[:, 0]
    se = np.sqrt(p * (1 - p) / N_OBS)
    assert set(np.unique(x)) <= {0.0, 1.0}
    assert np.abs((x.mean(axis=1) - p) / se).max() < 5.0


@pytest.mark.parametrize(
    ("data", "dtype"),
    [
        ("standard", np.float32),
        ("wide spread", np.float32),  # max|x| * eps far below 1e-4 of a spread of 1000
        ("one feature", np.float32),
        ("two rows", np.float32),
        ("one row", np.float64),  # no spread to judge by
        ("large offset", np.float64),  # 1e6 + N(0, 1): float32 would resolve only 0.06
        ("a constant zero column", np.float64),
    ],
)
def test_gaussian_replicate_dtype(data, dtype):
    rng = np.random.default_rng(0)
    X = {
        "standard": rng.normal(size=(50, 2)),
        "wide spread": rng.normal(0.0, 1000.0, size=(50, 2)),
        "one feature": rng.normal(size=(50, 1)),
        "two rows": np.array([[0.0, 1.0], [1.0, 0.0]]),
        "one row": np.array([[0.5, 1.5]]),
        "large offset": 1e6 + rng.normal(size=(50, 2)),
        "a constant zero column": np.zeros((50, 2)),
    }[data]
    assert get_family("gaussian").replicate_dtype(X) is dtype


def test_same_seed_same_replicates_other_seed_others():
    a = sample_posterior_predictive(_tree(n_obs=20), random_seed=5)["posterior_predictive"]
    b = sample_posterior_predictive(_tree(n_obs=20), random_seed=5)["posterior_predictive"]
    c = sample_posterior_predictive(_tree(n_obs=20), random_seed=6)["posterior_predictive"]
    np.testing.assert_array_equal(a["x"].values, b["x"].values)
    assert not np.array_equal(a["x"].values, c["x"].values)


def test_coordinates_are_the_posteriors_and_the_features():
    tree = _tree(n_obs=20)
    pp = sample_posterior_predictive(tree, random_seed=0)["posterior_predictive"]["x"]
    assert pp.dims == ("chain", "draw", "obs_id", "feature")
    np.testing.assert_array_equal(pp["chain"].values, [3, 7])
    np.testing.assert_array_equal(pp["draw"].values, np.arange(35))
    assert list(pp["feature"].values) == ["a", "b"]
    assert pp.sizes["obs_id"] == 20


@pytest.mark.parametrize(
    ("budget_draws", "expected"),
    [(0.5, 1), (1, 1), (2.5, 2), (100, 35)],
)
def test_draw_budget_keeps_as_many_draws_per_chain_as_fit(budget_draws, expected, monkeypatch):
    tree = _tree(n_obs=20)
    n_values = 2 * 20 * 2  # chains x the observed data's values
    monkeypatch.setattr(_predict, "MAX_PREDICTIVE_ELEMENTS", int(budget_draws * n_values))
    pp = sample_posterior_predictive(tree, random_seed=0)["posterior_predictive"]
    assert pp.sizes["draw"] == expected
    assert pp.sizes["chain"] == 2


def test_num_draws_and_max_draws():
    pp = sample_posterior_predictive(_tree(n_obs=20), random_seed=0, num_draws=1)
    assert pp["posterior_predictive"].sizes["draw"] == 1
    pp = sample_posterior_predictive(_tree(n_obs=20), random_seed=0, max_draws=8)
    assert pp["posterior_predictive"].sizes["draw"] == 4
    with pytest.raises(ParameterError, match="num_draws"):
        sample_posterior_predictive(_tree(n_obs=20), num_draws=0)
    with pytest.raises(ParameterError, match="max_draws"):
        sample_posterior_predictive(_tree(n_obs=20), max_draws=0)


def test_a_point_group_is_refused_with_the_groups_listed():
    tree = _tree(n_obs=20)
    tree["em"] = xr.DataTree(xr.Dataset({"w": ("component", [1.0])}))
    with pytest.raises(ParameterError, match=r"group 'em' must hold draws.*'em', 'observed_data'"):
        sample_posterior_predictive(tree, group="em")
    with pytest.raises(ParameterError, match="group 'advi' must hold draws"):
        sample_posterior_predictive(tree, group="advi")
