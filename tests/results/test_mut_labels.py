"""Relabelling cases that mutation testing found unpinned (docs/mutation-testing.md).

Each test is written against a reference computed here (the permutation planted in the
fixture, ArviZ's diagnostics, NumPy indexing) and goes through :func:`relabel`.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from bayesmix import _math
from bayesmix._validation import DataError, ParameterError
from bayesmix.results import relabel

DIMS = ("chain", "draw", "component")


def _far_apart_tree(seed: int = 0, n_chain: int = 2, n_draw: int = 30):
    """1-D Gaussian K = 3 at means 0, 100, 200 (sd 1): memberships are exactly 0 or 1.

    exp(-(100 / 1)^2 / 2) underflows to 0.0 in float64, so Stephens' Q has exact zeros.
    Chain 1 switches to (2, 0, 1) from draw 10 on. Returns the tree and the true component
    stored at each position (chain, draw, K).
    """
    rng = np.random.default_rng(seed)
    k = 3
    w = np.array([0.5, 0.3, 0.2])
    mu = np.array([[0.0], [100.0], [200.0]])
    sig = np.ones((k, 1))
    x, _ = _math.sample_mixture({"w": w, "mu": mu, "sigma": sig}, 60, rng=rng)
    shape = (n_chain, n_draw)
    W = rng.dirichlet(w * 200, size=shape)
    MU = mu + rng.normal(0, 0.1, size=shape + (k, 1))
    SG = sig * np.exp(rng.normal(0, 0.05, size=shape + (k, 1)))
    perms = np.tile(np.arange(k), shape + (1,))
    perms[1, 10:] = (2, 0, 1)
    W = np.take_along_axis(W, perms, -1)
    MU = np.take_along_axis(MU, perms[..., None], -2)
    SG = np.take_along_axis(SG, perms[..., None], -2)
    post = xr.Dataset(
        {"w": (DIMS, W), "mu": ((*DIMS, "feature"), MU), "sigma": ((*DIMS, "feature"), SG)},
        coords={"feature": ["x0"]},
    )
    obs = xr.Dataset({"x": (("obs_id", "feature"), x)}, coords={"feature": ["x0"]})
    tree = xr.DataTree.from_dict({"posterior": post, "observed_data": obs})
    tree.attrs["family"] = "gaussian"
    return tree, perms


def test_stephens_handles_memberships_that_are_exactly_zero():
    """Q[n, j] = 0 exactly (the 1e-300 floor of log Q keeps 0 * log 0 out of the costs)."""
    tree, perms = _far_apart_tree()
    x = tree["observed_data"]["x"].values
    post = tree["posterior"].to_dataset()
    params = {
        "w": post["w"].values.reshape(-1, 3),
        "mu": post["mu"].values.reshape(-1, 3, 1),
        "sigma": post["sigma"].values.reshape(-1, 3, 1),
    }
    prob = np.exp(_math.log_responsibilities(x, params, "gaussian"))
    assert (prob == 0.0).any()  # the premise: exact zeros in every draw
    out = relabel(tree, method="stephens", reference="pivot")
    perm = out["relabel"]["permutation"].transpose(*DIMS).values
    true_at = np.take_along_axis(perms, perm, axis=-1)
    # every draw ends in the same labelling: the switch of chain 1 is undone
    assert (true_at == true_at[0, 0]).all()
    assert out["relabel"].attrs["n_switched_draws"] == 20 or (
        out["relabel"].attrs["n_switched_draws"] == 2 * 30 - 20
    )
    kl = out["relabel"]["kl_cost"].values
    assert np.isfinite(kl).all()


def _tree_with_extra_variables(extra: dict, n_draw: int = 20):
    """A K = 2 posterior with two switched draws and extra variables placed first."""
    rng = np.random.default_rng(3)
    shape = (2, n_draw)
    mu = np.empty(shape + (2, 1))
    mu[..., 0, 0] = rng.normal(0.0, 0.1, shape)
    mu[..., 1, 0] = rng.normal(5.0, 0.1, shape)
    w = np.empty(shape + (2,))
    w[..., 0] = rng.uniform(0.3, 0.4, shape)
    w[..., 1] = 1 - w[..., 0]
    sig = np.ones(shape + (2, 1))
    for c, d in ((0, 1), (1, n_draw - 1)):
        mu[c, d], w[c, d] = mu[c, d, ::-1], w[c, d, ::-1]
    variables = dict(extra)
    variables.update(w=(DIMS, w), mu=((*DIMS, "feature"), mu), sigma=((*DIMS, "feature"), sig))
    post = xr.Dataset(variables, coords={"feature": ["x0"]})
    tree = xr.DataTree.from_dict({"posterior": post})
    tree.attrs["family"] = "gaussian"
    return tree, post


def _expected_permuted(post: xr.Dataset, perm: np.ndarray, name: str) -> np.ndarray:
    old = post[name].transpose(*DIMS, ...).values
    idx = perm.reshape(perm.shape + (1,) * (old.ndim - 3))
    return np.take_along_axis(old, idx, axis=2)


def test_variables_without_draws_before_the_components_are_skipped_not_the_end():
    """A variable without (chain, draw) stored first leaves the later ones still permuted."""
    tree, post = _tree_with_extra_variables({"prior_scale": ("feature", [2.5])})
    assert list(post.data_vars)[0] == "prior_scale"
    out = relabel(tree, method="pivot", reference="pivot")
    perm = out["relabel"]["permutation"].transpose(*DIMS).values
    assert out["relabel"].attrs["n_switched_draws"] == 2
    for name in ("w", "mu", "sigma"):
        got = out["posterior"][name].transpose(*DIMS, ...).values
        np.testing.assert_array_equal(got, _expected_permuted(post, perm, name), err_msg=name)
    # the switched draws are in the same order as the others now
    mu = out["posterior"]["mu"].values[..., 0]
    assert (np.diff(mu, axis=-1) > 0).all() or (np.diff(mu, axis=-1) < 0).all()
    xr.testing.assert_identical(out["posterior"]["prior_scale"], post["prior_scale"])


@pytest.mark.parametrize(
    "extra",
    [
        {"tree_depth": (("chain", "draw"), np.full((2, 20), 5, dtype=np.int64))},
        {"z": (("chain", "draw", "obs_id"), np.full((2, 20, 4), 0.0))},
    ],
    ids=["integer-not-z", "float-z"],
)
def test_only_an_integer_z_is_relabelled_as_labels(extra):
    """Other integer variables, and a z that is not integer, are left as they are."""
    tree, post = _tree_with_extra_variables(extra)
    out = relabel(tree, method="pivot", reference="pivot")
    (name,) = extra
    xr.testing.assert_identical(out["posterior"][name], post[name])
    assert out["relabel"].attrs["n_switched_draws"] == 2


def test_all_nan_bulk_ess_is_reported_as_nan():
    """Three draws a chain are too few for ArviZ's bulk ESS (NaN everywhere): reported as NaN."""
    import arviz as az

    tree, post = _tree_with_extra_variables({}, n_draw=3)
    ess = az.ess(post[["w", "mu", "sigma"]], method="bulk")
    assert all(np.isnan(ess[v].values).all() for v in ess.data_vars)  # the premise
    out = relabel(tree, method="pivot", reference="pivot")
    attrs = out["relabel"].attrs
    assert attrs["n_switched_draws"] == 2
    for when in ("before", "after"):
        value = attrs[f"min_ess_bulk_{when}"]
        assert isinstance(value, float) and np.isnan(value)


def _six_component_tree(weights_alpha: np.ndarray):
    """K = len(weights_alpha) (6 unless said) 1-D components 10 apart (sd 0.1), sigma 1.

    Every draw of chain 1 and the second half of chain 0 are stored with a random
    permutation. Returns the tree and the true component stored at each position.
    """
    k = len(weights_alpha)
    rng = np.random.default_rng(4)
    shape = (2, 25)
    mu = np.arange(k) * 10.0 + rng.normal(0, 0.1, shape + (k,))
    w = rng.dirichlet(weights_alpha, size=shape)
    perms = np.tile(np.arange(k), shape + (1,))
    for c, d in np.ndindex(*shape):
        if c == 1 or d >= 12:
            perms[c, d] = rng.permutation(k)
    mu = np.take_along_axis(mu, perms, -1)
    w = np.take_along_axis(w, perms, -1)
    post = xr.Dataset(
        {
            "w": (DIMS, w),
            "mu": ((*DIMS, "feature"), mu[..., None]),
            "sigma": ((*DIMS, "feature"), np.ones(shape + (k, 1))),
        },
        coords={"feature": ["x0"]},
    )
    tree = xr.DataTree.from_dict({"posterior": post})
    tree.attrs["family"] = "gaussian"
    return tree, perms


def _check_planted_permutations_undone(tree, perms):
    k = perms.shape[-1]
    out = relabel(tree, method="pivot", reference="pivot")
    perm = out["relabel"]["permutation"].transpose(*DIMS).values
    true_at = np.take_along_axis(perms, perm, axis=-1)
    # the pivot draw (0, 0) is in the true order, so every draw must end in it
    wrong = ~np.all(true_at == np.arange(k), axis=-1)
    assert wrong.sum() == 0, f"{wrong.sum()} of {wrong.size} draws mislabelled"
    mu_after = out["posterior"]["mu"].values[..., 0]
    assert (np.diff(mu_after, axis=-1) > 0).all()
    planted = np.any(perms != np.arange(k), axis=-1).sum()
    assert out["relabel"].attrs["n_switched_draws"] == planted


def test_more_components_than_the_brute_force_limit_use_the_assignment_solver():
    """K = 6 > 5: permutations come from scipy's linear_sum_assignment, not from K! totals."""
    from bayesmix.results import labels

    assert 6 > labels._BRUTE_FORCE_MAX_K
    tree, perms = _six_component_tree(np.arange(1, 7) * 100.0)  # distinct weights
    _check_planted_permutations_undone(tree, perms)


@pytest.mark.parametrize("k", [6, 8, 12])
def test_pivot_with_equal_weights_undoes_the_planted_permutations(k):
    """Equal weights: the noise of log w must not outweigh means 100 sd apart.

    With the pooled spread as the first scale (sd of mu ~17 over every component) the
    iteration settled on wrong labels for 38 of these 50 draws at K = 6 and 12 of 50 at K = 8.
    """
    tree, perms = _six_component_tree(np.full(k, 200.0))
    _check_planted_permutations_undone(tree, perms)


def _pivot_by_definition(theta: np.ndarray, ref: np.ndarray):
    """The pivot algorithm of the module docstring, written out with K! brute force.

    Start from the label-free spread of each coordinate (the root mean over j of the variance
    across draws of the j-th smallest value, plus 1e-6 of the pooled spread), give every draw
    the permutation minimising ``sum_j sum_p ((theta[perm[j], p] - ref[j, p]) / s[j, p])^2``,
    re-estimate ``s`` from the aligned draws and repeat until the permutations stop changing.
    """
    import itertools

    m, k, p = theta.shape
    pooled = theta.reshape(m * k, p).std(axis=0)
    floor = 1e-6 * (pooled + 1e-12)
    ordered = np.sort(theta, axis=1)
    start = np.sqrt(np.mean([ordered[:, j].var(axis=0) for j in range(k)], axis=0))
    scale = np.broadcast_to(start + floor, (k, p))
    all_perms = [np.array(q) for q in itertools.permutations(range(k))]
    perm = None
    for n_iter in range(1, 51):
        cost = np.array(
            [[(((theta[i, q] - ref) / scale) ** 2).sum() for q in all_perms] for i in range(m)]
        )
        new = np.array([all_perms[j] for j in cost.argmin(axis=1)])
        aligned = np.take_along_axis(theta, new[..., None], axis=1)
        scale = aligned.std(axis=0) + floor
        if perm is not None and np.array_equal(new, perm):
            return new, n_iter
        perm = new
    return perm, 50


def test_pivot_iterates_until_the_permutations_stop_changing():
    """Permutations and iteration count of method='pivot' against the written-out algorithm.

    The overlapping K = 3 fixture (switching within and across chains) needs more than two
    passes, so a loop that stops early or never sees convergence gives another n_iter.
    """
    from .test_relabel_switching import _overlapping_tree

    tree, _, _, _ = _overlapping_tree(3, seed=0)
    post = tree["posterior"].to_dataset()
    k = post.sizes["component"]
    w = post["w"].transpose(*DIMS).values.reshape(-1, k)
    mu = post["mu"].transpose(*DIMS, "feature").values.reshape(-1, k)
    sg = post["sigma"].transpose(*DIMS, "feature").values.reshape(-1, k)
    theta = np.stack([np.log(w), mu, np.log(sg)], axis=-1)  # (M, K, 3)
    em = tree["em"].to_dataset()
    ref = np.stack(
        [np.log(em["w"].values), em["mu"].values[:, 0], np.log(em["sigma"].values[:, 0])],
        axis=-1,
    )
    want_perm, want_iter = _pivot_by_definition(theta, ref)
    assert want_iter >= 3  # the premise: more than one re-estimation of the spread
    out = relabel(tree, method="pivot", reference="em")
    got = out["relabel"]["permutation"].transpose(*DIMS).values.reshape(-1, k)
    np.testing.assert_array_equal(got, want_perm)
    assert out["relabel"].attrs["n_iter"] == want_iter


def test_error_messages_name_the_function_and_what_to_do(switched_tree):
    tree, _ = switched_tree
    with pytest.raises(ParameterError) as info:
        relabel(tree, method="ecr")
    assert str(info.value) == (
        "unknown relabel method: expected one of ('stephens', 'pivot'), got 'ecr'; "
        "use 'stephens' (needs observed_data) or 'pivot'"
    )
    with pytest.raises(DataError) as info:
        relabel({"posterior": 1})
    assert str(info.value) == (
        "relabel needs a result tree: expected an xarray.DataTree, got dict; pass the "
        "DataTree returned by bayesmix.inference"
    )
    with pytest.raises(DataError) as info:
        relabel(xr.DataTree(), reference="pivot")
    assert str(info.value).startswith("relabel needs posterior draws: expected a 'posterior'")
