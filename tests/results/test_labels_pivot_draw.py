"""``reference="pivot"`` takes the labels of the draw of largest ``lp`` (or log-likelihood).

Mutation testing (docs/mutation-testing.md) found the choice of the pivot draw unpinned: the
relabelling fixtures never made that draw's labels differ from the others'. Here every draw
is in the true order except a few, and the pivot draw is one of the swapped ones, so the
relabelled posterior must take the swapped labels, and only for the right pivot.
"""

import numpy as np
import pytest
import xarray as xr

from bayesmix.results import relabel

N_CHAIN, N_DRAW = 2, 40


def _tree(swapped, *, lp=None, log_likelihood=None, extra_stats=False):
    """Two components at means 0 and 10 (true order), swapped at the (chain, draw) listed."""
    rng = np.random.default_rng(7)
    mu = np.empty((N_CHAIN, N_DRAW, 2, 1))
    mu[..., 0, 0] = rng.normal(0.0, 0.1, (N_CHAIN, N_DRAW))
    mu[..., 1, 0] = rng.normal(10.0, 0.1, (N_CHAIN, N_DRAW))
    w = np.empty((N_CHAIN, N_DRAW, 2))
    w[..., 0] = rng.uniform(0.25, 0.35, (N_CHAIN, N_DRAW))
    w[..., 1] = 1.0 - w[..., 0]
    sigma = np.stack(
        [rng.uniform(0.9, 1.1, (N_CHAIN, N_DRAW)), rng.uniform(1.9, 2.1, (N_CHAIN, N_DRAW))],
        axis=-1,
    )[..., None]
    for c, d in swapped:
        mu[c, d], w[c, d], sigma[c, d] = mu[c, d, ::-1], w[c, d, ::-1], sigma[c, d, ::-1]
    dims = ("chain", "draw", "component")
    coords = {"chain": np.arange(N_CHAIN), "draw": np.arange(N_DRAW), "component": [0, 1]}
    post = xr.Dataset(
        {
            "w": (dims, w),
            "mu": ((*dims, "feature"), mu),
            "sigma": ((*dims, "feature"), sigma),
        },
        coords={**coords, "feature": ["x0"]},
    )
    tree = xr.DataTree(children={"posterior": xr.DataTree(post)})
    tree.attrs["family"] = "gaussian"
    stats = {}
    if lp is not None:
        stats["lp"] = (("chain", "draw"), lp)
    if extra_stats:
        stats["tree_depth"] = (("chain", "draw"), np.ones((N_CHAIN, N_DRAW)))
    if stats:
        tree["sample_stats"] = xr.DataTree(xr.Dataset(stats))
    if log_likelihood is not None:
        tree["log_likelihood"] = xr.DataTree(xr.Dataset(log_likelihood))
    return tree


def _first_component_mean(out):
    return out["posterior"]["mu"].sel(component=0, feature="x0").values


SWAPPED = [(1, 17), (0, 3), (0, 30)]


def _scores(top, low=None):
    """Scores with the maximum at ``top`` and the minimum at ``low``."""
    s = np.linspace(-50.0, -40.0, N_CHAIN * N_DRAW).reshape(N_CHAIN, N_DRAW)[:, ::-1].copy()
    s[top] = 0.0
    if low is not None:
        s[low] = -1e6
    return s


def _assert_pivot_labels(out, pivot):
    perm = out["relabel"]["permutation"].transpose("chain", "draw", "component").values
    np.testing.assert_array_equal(perm[pivot], [0, 1])
    # every draw now has the pivot's (swapped) labels: component 0 near mean 10
    assert np.all(_first_component_mean(out) > 9.0)
    assert out["relabel"].attrs["n_switched_draws"] == N_CHAIN * N_DRAW - len(SWAPPED)


def test_pivot_is_the_draw_of_largest_lp():
    lp = _scores((1, 17), low=(0, 3))
    lp[0, 5] = np.nan  # ignored (nanargmax), not taken as the largest
    out = relabel(_tree(SWAPPED, lp=lp), method="pivot", reference="pivot")
    _assert_pivot_labels(out, (1, 17))


@pytest.mark.parametrize("extra_stats", [False, True])
@pytest.mark.parametrize("first_variable", [None, "y"])
def test_pivot_from_the_summed_log_likelihood_without_lp(extra_stats, first_variable):
    """No ``lp``: the draw whose ``x`` log-likelihood, summed over observations, is largest."""
    rng = np.random.default_rng(1)
    per_obs = rng.normal(-2.0, 0.01, (N_CHAIN, N_DRAW, 6))
    per_obs[1, 17] += 1.0  # the sum over the 6 observations is largest here...
    per_obs[0, 30, 0] += 3.0  # ...though one observation alone is largest here
    ll = {"x": (("chain", "draw", "obs_id"), per_obs)}
    if first_variable is not None:
        # another variable listed first, largest at an unswapped draw: "x" is the one used
        ll = {first_variable: (("chain", "draw", "obs_id"), -per_obs), **ll}
    tree = _tree(SWAPPED, log_likelihood=ll, extra_stats=extra_stats)
    out = relabel(tree, method="pivot", reference="pivot")
    _assert_pivot_labels(out, (1, 17))


def test_pivot_from_the_only_log_likelihood_variable_when_it_is_not_x():
    per_obs = np.full((N_CHAIN, N_DRAW, 3), -2.0)
    per_obs[1, 17] = -1.0
    ll = {"images": (("chain", "draw", "obs_id"), per_obs)}
    out = relabel(_tree(SWAPPED, log_likelihood=ll), method="pivot", reference="pivot")
    _assert_pivot_labels(out, (1, 17))


@pytest.mark.parametrize("scores", ["none", "all_infinite"])
def test_without_a_finite_score_the_pivot_is_the_first_draw(scores):
    swapped = [(0, 0), (1, 17)]
    lp = None if scores == "none" else np.full((N_CHAIN, N_DRAW), -np.inf)
    out = relabel(_tree(swapped, lp=lp), method="pivot", reference="pivot")
    perm = out["relabel"]["permutation"].transpose("chain", "draw", "component").values
    np.testing.assert_array_equal(perm[0, 0], [0, 1])
    assert np.all(_first_component_mean(out) > 9.0)
