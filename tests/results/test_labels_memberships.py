"""The membership probabilities Stephens' relabelling works on, against SciPy.

Mutation testing (docs/mutation-testing.md) found that no test pinned which parameters the
relabelling's memberships use: with full covariances they must come from ``cov`` (the
correlations), not from the derived ``sigma``; and a 1-D ``observed_data`` must be read as
one feature.
"""

import arviz as az
import numpy as np
import pytest
import xarray as xr
from scipy.stats import multivariate_normal

from bayesmix.results import labels, relabel

N_CHAIN, N_DRAW, K, D = 2, 5, 2, 2


def _full_cov_posterior():
    rng = np.random.default_rng(11)
    shape = (N_CHAIN, N_DRAW, K)
    w = rng.dirichlet([3.0, 3.0], size=shape[:2])
    mu = rng.normal(0.0, 1.0, (*shape, D)) + np.array([[-1.0, 0.0], [1.0, 0.5]])
    sd = rng.uniform(0.5, 1.5, (*shape, D))
    rho = np.where(np.arange(K) == 0, 0.9, -0.8)[None, None, :] + rng.uniform(-0.05, 0.05, shape)
    cov = np.empty((*shape, D, D))
    cov[..., 0, 0], cov[..., 1, 1] = sd[..., 0] ** 2, sd[..., 1] ** 2
    cov[..., 0, 1] = cov[..., 1, 0] = rho * sd[..., 0] * sd[..., 1]
    dims = ("chain", "draw", "component")
    return xr.Dataset(
        {
            "w": (dims, w),
            "mu": ((*dims, "feature"), mu),
            "sigma": ((*dims, "feature"), sd),
            "cov": ((*dims, "feature", "feature_bis"), cov),
        },
        coords={"feature": ["a", "b"], "feature_bis": ["a", "b"]},
    )


def _scipy_memberships(post, x):
    """P[m, n, k] = w_k N(x_n | mu_k, cov_k) / sum_j (...), one draw at a time."""
    w = post["w"].values.reshape(-1, K)
    mu = post["mu"].values.reshape(-1, K, D)
    cov = post["cov"].values.reshape(-1, K, D, D)
    out = np.empty((w.shape[0], x.shape[0], K))
    for m in range(w.shape[0]):
        dens = np.stack(
            [w[m, k] * multivariate_normal(mu[m, k], cov[m, k]).pdf(x) for k in range(K)], axis=1
        )
        out[m] = dens / dens.sum(axis=1, keepdims=True)
    return out


@pytest.mark.parametrize("path", ["cached", "recomputed in blocks"])
def test_full_covariance_memberships_use_the_covariances(path, monkeypatch):
    post = _full_cov_posterior()
    # points along the two components' correlation axes: the diagonal approximation
    # (sigma only) gives them clearly different memberships
    x = np.array([[-2.0, -1.0], [0.0, 0.0], [1.5, 2.0], [2.0, -1.0], [-1.0, 1.5], [0.5, 0.4]])
    if path != "cached":
        monkeypatch.setattr(labels, "_STEPHENS_VALUES", 0)
        monkeypatch.setattr(labels, "_BLOCK_VALUES", 3 * x.shape[0] * K)  # 3 draws a block
    lead = ("chain", "draw")
    params = {
        key: val.reshape((N_CHAIN * N_DRAW,) + val.shape[2:])
        for key, val in labels._params(post, lead).items()
    }
    assert {"w", "mu", "cov"} <= set(params)  # sigma may ride along: cov wins
    blocks = labels._membership_blocks(x, params, "gaussian", N_CHAIN * N_DRAW, K)
    seen = []
    prob = np.empty((N_CHAIN * N_DRAW, x.shape[0], K))
    for sl, p in blocks():
        prob[sl] = p
        seen.extend(range(N_CHAIN * N_DRAW)[sl])
    assert seen == list(range(N_CHAIN * N_DRAW))
    expected = _scipy_memberships(post, x)
    np.testing.assert_allclose(prob, expected, rtol=1e-9, atol=1e-12)
    # the check has teeth: ignoring the correlations moves some memberships by > 0.1
    diag = post.copy()
    diag["cov"] = diag["cov"] * np.eye(D)
    assert np.abs(_scipy_memberships(diag, x) - expected).max() > 0.1


def _tree_with_observed(x_obs):
    rng = np.random.default_rng(5)
    mu = np.empty((2, 30, 2, 1))
    mu[..., 0, 0] = rng.normal(0.0, 0.3, (2, 30))
    mu[..., 1, 0] = rng.normal(3.0, 0.3, (2, 30))
    swap = rng.uniform(size=(2, 30)) < 0.4
    mu[swap] = mu[swap][:, ::-1]
    w = np.full((2, 30, 2), 0.5)
    sigma = np.ones((2, 30, 2, 1))
    dims = ("chain", "draw", "component")
    post = xr.Dataset(
        {"w": (dims, w), "mu": ((*dims, "feature"), mu), "sigma": ((*dims, "feature"), sigma)},
        coords={"feature": ["x0"]},
    )
    tree = xr.DataTree(children={"posterior": xr.DataTree(post)})
    tree.attrs["family"] = "gaussian"
    tree["observed_data"] = xr.DataTree(xr.Dataset({"x": x_obs}))
    return tree, swap


def test_stephens_reads_a_one_dimensional_observed_x_as_one_feature():
    values = np.concatenate([np.linspace(-1, 1, 20), np.linspace(2, 4, 20)])
    one_d, swap = _tree_with_observed(xr.DataArray(values, dims=("obs_id",)))
    two_d, _ = _tree_with_observed(xr.DataArray(values[:, None], dims=("obs_id", "feature")))
    a = relabel(one_d, method="stephens", reference="pivot")
    b = relabel(two_d, method="stephens", reference="pivot")
    perm_a = a["relabel"]["permutation"].values
    np.testing.assert_array_equal(perm_a, b["relabel"]["permutation"].values)
    np.testing.assert_allclose(a["relabel"]["kl_cost"].values, b["relabel"]["kl_cost"].values)
    # and the switched draws are exactly the ones swapped in the fixture (up to one global
    # relabelling)
    switched = perm_a[..., 0] == 1
    assert (switched == swap).all() or (switched == ~swap).all()


@pytest.mark.parametrize("n_chain", [1, 2])
def test_relabel_reports_arviz_rhat_and_bulk_ess_before_and_after(n_chain):
    """max R-hat and min bulk ESS over the component variables, as ArviZ computes them.

    With one chain ArviZ's R-hat is NaN everywhere: reported as NaN, the ESS still finite.
    """
    values = np.concatenate([np.linspace(-1, 1, 20), np.linspace(2, 4, 20)])
    tree, _ = _tree_with_observed(xr.DataArray(values, dims=("obs_id",)))
    post = tree["posterior"].to_dataset().isel(chain=slice(0, n_chain))
    tree["posterior"] = xr.DataTree(post)
    out = relabel(tree, method="pivot", reference="pivot")
    attrs = out["relabel"].attrs

    def arviz_numbers(ds):
        sub = ds[["w", "mu", "sigma"]]
        rhat = np.concatenate([az.rhat(sub)[v].values.ravel() for v in sub.data_vars])
        ess = np.concatenate([az.ess(sub, method="bulk")[v].values.ravel() for v in sub.data_vars])
        return rhat, ess

    for when, ds in (("before", post), ("after", out["posterior"].to_dataset())):
        rhat, ess = arviz_numbers(ds)
        if n_chain == 1:
            assert np.isnan(rhat).all() and np.isnan(attrs[f"max_rhat_{when}"])
        else:
            assert attrs[f"max_rhat_{when}"] == pytest.approx(np.nanmax(rhat), rel=1e-12)
        assert np.isfinite(attrs[f"min_ess_bulk_{when}"])
        assert attrs[f"min_ess_bulk_{when}"] == pytest.approx(np.nanmin(ess), rel=1e-12)


def test_point_estimates_are_matched_in_posterior_standard_deviations():
    """An EM point is put on the posterior component nearest in units of each feature's sd.

    Feature 0 varies by ~100 across draws, feature 1 by ~0.01: the EM component at (150, 0.0)
    is the posterior component at (0, 0) (1.5 sd away on feature 0, same feature 1), not the
    one at (100, 1) (100 sd away on feature 1), although it is nearer to the latter in raw units.
    """
    rng = np.random.default_rng(9)
    mu = np.empty((2, 40, 2, 2))
    mu[..., 0, :] = rng.normal([0.0, 0.0], [100.0, 0.01], (2, 40, 2))
    mu[..., 1, :] = rng.normal([100.0, 1.0], [100.0, 0.01], (2, 40, 2))
    dims = ("chain", "draw", "component")
    post = xr.Dataset(
        {
            "w": (dims, np.full((2, 40, 2), 0.5)),
            "mu": ((*dims, "feature"), mu),
            "sigma": ((*dims, "feature"), np.ones((2, 40, 2, 2))),
        },
        coords={"feature": ["a", "b"]},
    )
    em = xr.Dataset(
        {
            "w": ("component", [0.5, 0.5]),
            "mu": (("component", "feature"), [[-50.0, 1.0], [150.0, 0.0]]),
            "sigma": (("component", "feature"), np.ones((2, 2))),
        },
        coords={"feature": ["a", "b"]},
    )
    tree = xr.DataTree(children={"posterior": xr.DataTree(post), "em": xr.DataTree(em)})
    tree.attrs["family"] = "gaussian"
    out = relabel(tree, method="pivot", reference="pivot")
    np.testing.assert_array_equal(out["relabel"]["em_permutation"].values, [1, 0])
    np.testing.assert_allclose(out["em"]["mu"].values, [[150.0, 0.0], [-50.0, 1.0]])
