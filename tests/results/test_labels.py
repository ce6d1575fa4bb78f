from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from bayesmix._validation import DataError, ParameterError
from bayesmix.results import label_switching_report, relabel

METHODS = ["stephens", "pivot"]


def _true_index(perms: np.ndarray, relabelled: xr.DataTree) -> np.ndarray:
    """True component now stored at each position: (chain, draw, K)."""
    r = relabelled["relabel"]["permutation"].transpose("chain", "draw", "component").values
    return np.take_along_axis(perms, r, axis=-1)


@pytest.mark.parametrize("method", METHODS)
def test_relabel_matches_em_labels(switched_tree, method):
    tree, perms = switched_tree
    out = relabel(tree, method=method, reference="em")
    em_perm = np.array([1, 2, 0])
    truth = _true_index(perms, out)
    assert (truth == em_perm).all()
    # the reference is untouched, the MAP (stored in true order) is moved onto the EM labels
    xr.testing.assert_identical(out["em"].to_dataset(), tree["em"].to_dataset())
    np.testing.assert_array_equal(out["relabel"]["map_permutation"].values, em_perm)
    np.testing.assert_allclose(out["map"]["mu"].values, out["em"]["mu"].values)
    np.testing.assert_allclose(out["map"]["cov"].values, out["em"]["cov"].values)
    # posterior means now sit next to the EM estimate
    post_mu = out["posterior"]["mu"].mean(("chain", "draw")).values
    np.testing.assert_allclose(post_mu, out["em"]["mu"].values, atol=0.05)


@pytest.mark.parametrize("method", METHODS)
def test_relabel_rhat_before_and_after(switched_tree, method):
    tree, _ = switched_tree
    out = relabel(tree, method=method, reference="map")
    attrs = out["relabel"].attrs
    assert attrs["method"] == method
    assert attrs["max_rhat_before"] > 1.1
    assert attrs["max_rhat_after"] < 1.01
    assert attrs["n_switched_draws"] == 400 + 200 + 100
    # independent check with arviz on the returned tree
    import arviz as az

    rhat = az.rhat(out["posterior"].to_dataset()[["w", "mu", "sigma", "cov"]])
    assert max(float(rhat[v].max()) for v in rhat.data_vars) < 1.01
    rhat0 = az.rhat(tree["posterior"].to_dataset()[["w", "mu"]])
    assert max(float(rhat0[v].max()) for v in rhat0.data_vars) > 1.1


def test_every_component_variable_permuted_consistently(switched_tree):
    tree, _ = switched_tree
    out = relabel(tree, method="pivot", reference="map")
    r = out["relabel"]["permutation"].transpose("chain", "draw", "component").values
    before = tree["posterior"].to_dataset()
    after = out["posterior"].to_dataset()
    for name in ("w", "mu", "sigma", "cov", "corr"):
        old = before[name].transpose("chain", "draw", "component", ...).values
        idx = r.reshape(r.shape + (1,) * (old.ndim - 3))
        expected = np.take_along_axis(old, idx, axis=2)
        got = after[name].transpose("chain", "draw", "component", ...).values
        np.testing.assert_array_equal(got, expected, err_msg=name)
        assert after[name].dims == before[name].dims
    # sigma and corr still describe cov, draw by draw
    cov = after["cov"].values
    sd = np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1))
    np.testing.assert_allclose(after["sigma"].values, sd)
    # the log-likelihood is invariant and left alone
    xr.testing.assert_identical(
        out["log_likelihood"].to_dataset(), tree["log_likelihood"].to_dataset()
    )
    # the input tree is not modified
    assert "relabel" not in tree.children


def test_clean_chains_are_left_alone(clean_tree):
    tree, _ = clean_tree
    for method in METHODS:
        out = relabel(tree, method=method, reference="map")
        assert out["relabel"].attrs["n_switched_draws"] == 0
        xr.testing.assert_identical(out["posterior"].to_dataset(), tree["posterior"].to_dataset())


def test_pivot_reference_and_relabelling_twice(switched_tree):
    tree, perms = switched_tree
    out = relabel(tree, method="stephens", reference="pivot")
    truth = _true_index(perms, out)
    # every draw carries the same labelling as every other draw
    assert (truth == truth[0, 0]).all()
    # the MAP was moved onto those labels; relabelling again onto it changes nothing and the
    # stored permutation still maps the raw draws
    np.testing.assert_array_equal(out["relabel"]["map_permutation"].values, truth[0, 0])
    again = relabel(out, method="pivot", reference="map")
    xr.testing.assert_identical(again["posterior"].to_dataset(), out["posterior"].to_dataset())
    assert (_true_index(perms, again) == truth[0, 0]).all()


def test_assignment_variable_z_is_relabelled(switched_tree):
    tree, perms = switched_tree
    post = tree["posterior"].to_dataset()
    x = tree["observed_data"]["x"].values
    true_z = (x[:, 0] > -2).astype(int) + (x[:, 0] > 2).astype(int)  # rough truth
    stored_z = np.argsort(perms, axis=-1)[..., true_z]  # label under each draw's order
    post["z"] = (("chain", "draw", "obs_id"), stored_z)
    tree2 = tree.copy()
    tree2["posterior"] = xr.DataTree(post)
    out = relabel(tree2, method="pivot", reference="map")
    np.testing.assert_array_equal(out["posterior"]["z"].values[0, 0], true_z)
    assert (out["posterior"]["z"].values == true_z).all()


def test_report(switched_tree):
    tree, _ = switched_tree
    out = relabel(tree, method="pivot", reference="map")
    rep = label_switching_report(out)
    np.testing.assert_allclose(rep["chains"]["fraction_permuted"], [0.0, 1.0, 0.5, 0.25])
    assert rep["n_switched_draws"] == 700
    params = rep["parameters"]
    assert {"r_hat_before", "r_hat_after", "ess_bulk_before", "ess_bulk_after"} <= set(params)
    assert rep["max_rhat_before"] > 1.1 > 1.01 > rep["max_rhat_after"]
    w_rows = params[params["parameter"] == "w"]
    assert len(w_rows) == 3
    assert (w_rows["ess_bulk_after"] > w_rows["ess_bulk_before"]).all()
    # a tree that was never relabelled gets a pivot relabelling first
    rep2 = label_switching_report(tree)
    assert rep2["method"] == "pivot"


def test_errors(switched_tree):
    tree, _ = switched_tree
    with pytest.raises(ParameterError, match="unknown relabel method"):
        relabel(tree, method="ecr")
    with pytest.raises(ParameterError, match="unknown relabel reference"):
        relabel(tree, reference="truth")
    no_em = tree.copy()
    del no_em["em"]
    with pytest.raises(ParameterError, match="needs a 'em' group"):
        relabel(no_em, reference="em")
    no_data = tree.copy()
    del no_data["observed_data"]
    with pytest.raises(DataError, match="observed_data"):
        relabel(no_data, method="stephens")
    with pytest.raises(DataError, match="posterior"):
        relabel(xr.DataTree(), reference="pivot")
    with pytest.raises(DataError, match="DataTree"):
        relabel({"posterior": 1})


def _small_tree(family: str, seed: int = 0):
    """Bernoulli (K=3, D=12) or 1-D Gaussian (K=2) posterior, chain 1 stored permuted."""
    from bayesmix import _math

    rng = np.random.default_rng(seed)
    shape = (2, 300)
    if family == "bernoulli":
        k = 3
        truth = {"w": np.array([0.4, 0.35, 0.25]), "p": rng.beta(0.5, 0.5, size=(k, 12))}
        x, _ = _math.sample_mixture(truth, 200, family="bernoulli", rng=rng)
        p = np.clip(truth["p"] + rng.normal(0, 0.03, size=shape + truth["p"].shape), 0.01, 0.99)
        params = {"p": p}
    else:
        k = 2
        truth = {"w": np.array([0.3, 0.7]), "mu": np.array([[-2.0], [3.0]])}
        truth["sigma"] = np.array([[1.0], [0.7]])
        x, _ = _math.sample_mixture(truth, 300, rng=rng)
        params = {
            "mu": truth["mu"] + rng.normal(0, 0.05, size=shape + (k, 1)),
            "sigma": truth["sigma"] * np.exp(rng.normal(0, 0.03, size=shape + (k, 1))),
        }
    params["w"] = rng.dirichlet(truth["w"] * 400, size=shape)
    perm = np.roll(np.arange(k), 1)
    for val in params.values():
        val[1] = val[1][:, perm]
    dims = ("chain", "draw", "component")
    post = xr.Dataset(
        {n: ((*dims, "feature") if v.ndim == 4 else dims, v) for n, v in params.items()},
        coords={"component": np.arange(k), "feature": [f"x{i}" for i in range(x.shape[1])]},
    )
    obs = xr.Dataset({"x": (("obs_id", "feature"), x)}, coords={"feature": post["feature"]})
    tree = xr.DataTree.from_dict({"posterior": post, "observed_data": obs})
    tree.attrs["family"] = family
    return tree, perm


@pytest.mark.parametrize("family", ["bernoulli", "gaussian"])
@pytest.mark.parametrize("method", METHODS)
def test_other_families(family, method):
    tree, perm = _small_tree(family)
    out = relabel(tree, method=method, reference="pivot")
    r = out["relabel"]["permutation"].values
    k = len(perm)
    # chain 1 is undone relative to chain 0, whichever labels chain 0 got
    stored_true = np.stack([np.arange(k), perm])  # true component at each stored position
    true_after = stored_true[:, None, :][np.arange(2)[:, None, None], 0, r]
    assert (true_after == true_after[0, 0]).all()
    assert out["relabel"].attrs["max_rhat_after"] < 1.01 < out["relabel"].attrs["max_rhat_before"]
