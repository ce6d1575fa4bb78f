"""diagnose and compare_estimates on the cases of issue 12: warnings recorded during a run,
degenerate EM components, ordered models (no label switching), ADVI results, one chain."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from bayesmix.config import ModelSpec
from bayesmix.results import compare_estimates, diagnose, load, save
from bayesmix.results.compare import ADVI_COLUMNS, COLUMNS

# --------------------------------------------------------------------------------------
# warnings recorded during the run (root attr "warnings")
RUN_WARNINGS = [
    "EM: Best performing initialization did not converge: expected a change of the objective "
    "below tol=0.001 within max_iter=5 iterations; increase max_iter",
    "MAP: starts reached different optima",
]


def _with_warnings(tree: xr.DataTree, value) -> xr.DataTree:
    tree = tree.copy()
    tree.attrs["warnings"] = value
    return tree


@pytest.mark.parametrize("encode", ["list", "json", "array"])
def test_run_warnings_are_reported(clean_tree, encode):
    value = {
        "list": RUN_WARNINGS,
        "json": json.dumps(RUN_WARNINGS),
        "array": np.array(RUN_WARNINGS),
    }[encode]
    diag = diagnose(_with_warnings(clean_tree[0], value))
    assert not diag.ok
    for line in RUN_WARNINGS:
        assert f"warning during the run: {line}" in diag.warnings
    text = str(diag)
    assert "No problems found" not in text and "Problems found" in text


def test_run_warnings_survive_save_and_load(clean_tree, tmp_path):
    tree = _with_warnings(clean_tree[0], RUN_WARNINGS)
    back = load(save(tree, tmp_path / "fit.nc"))
    diag = diagnose(back)
    assert [w for w in diag.warnings if w.startswith("warning during the run")] == [
        f"warning during the run: {line}" for line in RUN_WARNINGS
    ]


def test_run_warnings_without_a_posterior(clean_tree):
    tree = clean_tree[0]
    point = xr.DataTree.from_dict({g: tree[g].to_dataset() for g in ("em", "observed_data")})
    point.attrs["warnings"] = RUN_WARNINGS[:1]
    diag = diagnose(point)
    assert diag.warnings == [f"warning during the run: {RUN_WARNINGS[0]}"]
    assert "No problems found" not in str(diag)
    point.attrs["warnings"] = []
    assert diagnose(point).ok


# --------------------------------------------------------------------------------------
# degenerate EM components, on real EM fits
SPEC = ModelSpec(family="gaussian", n_components=2)


def _fit_em(X):
    from bayesmix.inference import fit_em

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit_em(SPEC, X, random_state=0)


def test_em_component_on_one_outlier_is_reported():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(70.0, 10.0, (399, 1)), [[1e4]]])
    tree = _fit_em(X)
    em = tree["em"]
    k = int(np.argmin(em["w"].values))
    assert em["w"].values[k] * 400 < 2 and em["mu"].values[k, 0] == pytest.approx(1e4)
    diag = diagnose(tree)
    found = [w for w in diag.warnings if w.startswith(f"EM component {k} is degenerate")]
    assert len(found) == 1, diag.warnings
    msg = found[0]
    assert "holds about 1 of 400 observations (w = 0.0025)" in msg
    assert "has sigma 0.001 for x0" in msg and "at mu = 1e+04" in msg
    assert "use fewer components or remove those rows" in msg
    assert not any("EM component" in w for w in diag.warnings if w is not msg)


def test_em_on_two_rows_with_two_components_is_reported():
    tree = _fit_em(np.array([[1.0], [2.0]]))
    diag = diagnose(tree)
    found = [w for w in diag.warnings if "is degenerate" in w]
    assert len(found) == 2  # each component holds one of the two rows
    assert all("holds about 1 of 2 observations (w = 0.5)" in w for w in found)
    assert "No problems found" not in str(diag)


def test_healthy_em_fit_has_no_degenerate_component():
    rng = np.random.default_rng(1)
    X = np.concatenate([rng.normal(0, 1, (150, 2)), rng.normal(6, 1, (100, 2))])
    diag = diagnose(_fit_em(X))
    assert diag.ok, diag.warnings


def test_degenerate_map_component_from_cov(clean_tree):
    tree = clean_tree[0].copy()
    mp = tree["map"].to_dataset()
    cov = mp["cov"].values.copy()
    cov[1] = np.diag([1e-9, 0.5])  # sd 3e-5 for feature a, against a data sd of about 3
    mp["cov"] = (mp["cov"].dims, cov)
    mp = mp.drop_vars("sigma")
    tree["map"] = xr.DataTree(mp)
    diag = diagnose(tree)
    found = [w for w in diag.warnings if w.startswith("MAP component 1 is degenerate")]
    assert len(found) == 1 and "has sigma 3.2e-05 for a" in found[0]
    assert not any(w.startswith("EM component") for w in diag.warnings)


# --------------------------------------------------------------------------------------
# ordered models: no label switching, but poorly identified components
def _one_d_tree(draws: dict, x: np.ndarray, *, ordered: bool, em: dict | None = None):
    n_chain, n_draw, k = draws["w"].shape
    dims = ("chain", "draw", "component")
    post = xr.Dataset(
        {
            "w": (dims, draws["w"]),
            "mu": ((*dims, "feature"), draws["mu"][..., None]),
            "sigma": ((*dims, "feature"), draws["sigma"][..., None]),
        },
        coords={
            "chain": np.arange(n_chain),
            "draw": np.arange(n_draw),
            "component": np.arange(k),
            "feature": ["waiting"],
        },
    )
    groups = {
        "posterior": post,
        "observed_data": xr.Dataset(
            {"x": (("obs_id", "feature"), x[:, None])},
            coords={"obs_id": np.arange(len(x)), "feature": ["waiting"]},
        ),
    }
    if em is not None:
        groups["em"] = xr.Dataset(
            {
                "w": ("component", em["w"]),
                "mu": (("component", "feature"), em["mu"][:, None]),
                "sigma": (("component", "feature"), em["sigma"][:, None]),
            },
            coords={"component": np.arange(k), "feature": ["waiting"]},
            attrs={
                "method": "ml",
                "n_iter": 10,
                "converged": True,
                "lower_bound": -4.0,
                "n_init": 5,
            },
        )
    tree = xr.DataTree.from_dict(groups)
    spec = {
        "model": {"family": "gaussian", "components": k, "covariance": "full", "ordered": ordered}
    }
    tree.attrs["spec"] = json.dumps(spec)
    return tree


def _geyser(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(54.0, 6.0, 97), rng.normal(80.0, 6.0, 175)])


def _redundant_third_component(seed: int = 0, shape=(4, 500)):
    """K = 3 draws of two-group data: the third component wanders, mu sorted per draw."""
    rng = np.random.default_rng(seed)
    extra_w = rng.beta(0.3, 8.0, shape)
    w = np.stack([0.36 * (1 - extra_w), 0.64 * (1 - extra_w), extra_w], axis=-1)
    mu = np.stack(
        [rng.normal(54.5, 0.7, shape), rng.normal(80.0, 0.5, shape), rng.uniform(45, 95, shape)],
        axis=-1,
    )
    sigma = np.stack(
        [rng.normal(6.0, 0.4, shape), rng.normal(5.9, 0.3, shape), rng.uniform(1, 15, shape)],
        axis=-1,
    )
    order = np.argsort(mu, axis=-1)  # the ordered transform: mu increasing in every draw
    return {
        k: np.take_along_axis(v, order, axis=-1)
        for k, v in {"w": w, "mu": mu, "sigma": sigma}.items()
    }


def test_ordered_model_reports_poorly_identified_components_not_switching():
    draws = _redundant_third_component()
    assert np.all(np.diff(draws["mu"], axis=-1) > 0)
    em = {
        "w": np.array([0.36, 0.62, 0.02]),
        "mu": np.array([54.5, 80.0, 90.0]),
        "sigma": np.array([6.0, 5.9, 2.0]),
    }
    x = _geyser()
    ordered = diagnose(_one_d_tree(draws, x, ordered=True, em=em))
    text = "\n".join(ordered.warnings)
    assert "label switching detected" not in text and "relabel first" not in text
    assert "relabel, or run longer chains" not in text
    weak = [w for w in ordered.warnings if "poorly identified" in w]
    assert len(weak) == 1, ordered.warnings
    assert "ordered by mu, so this is not label switching" in weak[0]
    assert "use fewer components" in weak[0]
    assert "w < 0.033 in" in weak[0] and "posterior sd of mu" in weak[0]
    # the same draws from an unordered model: that is label switching
    unordered = diagnose(_one_d_tree(draws, x, ordered=False, em=em))
    assert any("label switching detected" in w for w in unordered.warnings)
    assert ordered.n_switched_draws == unordered.n_switched_draws > 0


def test_ordered_model_with_two_clear_components_is_fine():
    rng = np.random.default_rng(2)
    shape = (4, 500)
    draws = {
        "w": np.stack([p := rng.beta(97, 175, shape), 1 - p], axis=-1),
        "mu": np.stack([rng.normal(54.5, 0.7, shape), rng.normal(80.0, 0.5, shape)], -1),
        "sigma": np.stack([rng.normal(6.0, 0.4, shape), rng.normal(5.9, 0.3, shape)], -1),
    }
    diag = diagnose(_one_d_tree(draws, _geyser(), ordered=True))
    assert diag.ok, diag.warnings
    assert diag.n_switched_draws == 0


def test_switch_count_uses_each_chains_usual_labels(clean_tree):
    """A chain whose first draw is odd does not make every other draw a 'switch'."""
    tree = clean_tree[0].copy()
    post = tree["posterior"].to_dataset()
    perm = np.array([1, 0, 2])
    for name in ("w", "mu", "sigma", "cov", "corr"):
        vals = post[name].values.copy()
        vals[2, 0] = vals[2, 0][perm]  # chain 2, draw 0 only: components 0 and 1 swapped
        post[name] = (post[name].dims, vals)
    tree["posterior"] = xr.DataTree(post)
    diag = diagnose(tree)
    assert diag.n_switched_draws == 1
    msg = [w for w in diag.warnings if "label switching" in w]
    assert msg and "1 of 1600 draws switch labels within chains" in msg[0]
    assert "use other labels than chain 0" not in msg[0]


# --------------------------------------------------------------------------------------
# one chain
def test_one_chain_says_rhat_needs_two_chains(clean_tree):
    tree = clean_tree[0]
    one = xr.DataTree.from_dict(
        {
            g: tree[g].to_dataset().isel(chain=[0])
            if "chain" in tree[g].dims
            else tree[g].to_dataset()
            for g in tree.children
        }
    )
    one.attrs.update(tree.attrs)
    diag = diagnose(one)
    assert diag.n_chains == 1 and np.isnan(diag.max_rhat)
    text = str(diag)
    assert "R-hat not computed (it needs 2 or more chains, got 1)" in text
    assert "nan" not in text.lower()
    assert not any("R-hat" in w for w in diag.warnings)
    ess_ok = (diag.table["ess_bulk"] >= 400) & (diag.table["ess_tail"] >= 400)
    assert (diag.table["ok"] == ess_ok).all()  # a NaN R-hat fails no row
    assert "largest R-hat 1.00" in str(diagnose(tree)) or "largest R-hat 0.99" in str(
        diagnose(tree)
    )


# --------------------------------------------------------------------------------------
# ADVI
def _advi_from_posterior(tree: xr.DataTree, scale: float = 0.5, seed: int = 0) -> xr.Dataset:
    """Fake ADVI draws: one chain, the posterior's means with a smaller spread."""
    rng = np.random.default_rng(seed)
    post = tree["posterior"].to_dataset()
    out = {}
    for name in ("w", "mu", "sigma"):
        da = post[name]
        mean = da.mean(("chain", "draw"))
        sd = da.std(("chain", "draw"))
        noise = rng.normal(size=(1, 300) + mean.shape)
        out[name] = (da.dims, mean.values + scale * sd.values * noise)
    ds = xr.Dataset(out, coords={c: post[c] for c in ("component", "feature")})
    ds = ds.assign_coords(chain=[0], draw=np.arange(300))
    ds.attrs = {"final_loss": 812.25, "n": 20000, "seed": 0, "minibatch": 0}
    return ds


def test_compare_has_advi_columns(clean_tree):
    tree = clean_tree[0].copy()
    advi = _advi_from_posterior(tree)
    tree["advi"] = xr.DataTree(advi)
    table = compare_estimates(tree, ci_prob=0.9)
    assert list(table.columns[-4:]) == list(ADVI_COLUMNS)
    assert "approximation" in table.attrs["advi"]
    row = table[(table["parameter"] == "mu") & (table["component"] == 1)]
    row = row[row["feature"] == "b"].iloc[0]
    flat = advi["mu"].sel(component=1, feature="b").values.ravel()
    assert row["advi_mean"] == pytest.approx(flat.mean())
    assert row["advi_sd"] == pytest.approx(flat.std(ddof=1))
    assert row["advi_lower"] == pytest.approx(np.quantile(flat, 0.05))
    assert row["advi_upper"] == pytest.approx(np.quantile(flat, 0.95))
    # variables that ADVI lacks (cov, corr) get NaN
    assert table.loc[table["parameter"] == "cov", list(ADVI_COLUMNS)].isna().all().all()
    # without ADVI the columns are absent
    assert not set(ADVI_COLUMNS) & set(compare_estimates(clean_tree[0]).columns)


def test_advi_without_posterior_is_shown_and_diagnosed(clean_tree):
    tree = clean_tree[0]
    advi = _advi_from_posterior(tree)
    only = xr.DataTree.from_dict(
        {
            "em": tree["em"].to_dataset(),
            "observed_data": tree["observed_data"].to_dataset(),
            "advi": advi,
        }
    )
    table = compare_estimates(only)
    assert table[list(ADVI_COLUMNS)].notna().all().all()
    assert table[list(COLUMNS[5:])].isna().all().all()  # no posterior columns
    np.testing.assert_array_equal(
        table["em"],
        compare_estimates(tree)["em"].to_numpy()[
            compare_estimates(tree)["parameter"].isin(["w", "mu", "sigma"]).to_numpy()
        ],
    )
    diag = diagnose(only)
    text = str(diag)
    assert "No posterior draws (NUTS not run)" not in text
    assert "ADVI (mean-field approximation, 20000 steps): 300 draws" in text
    assert "final loss (-ELBO) 812.25" in text and "no R-hat or ESS" in text
    assert diag.ok
    # ADVI alone (no EM) works too
    alone = xr.DataTree.from_dict({"advi": advi})
    assert len(compare_estimates(alone)) == len(table)
    assert "ADVI" in str(diagnose(alone))


def test_advi_problems(clean_tree):
    advi = _advi_from_posterior(clean_tree[0])
    advi.attrs["final_loss"] = float("nan")
    mu = advi["mu"].values.copy()
    mu[0, 3, 0, 0] = np.inf
    advi["mu"] = (advi["mu"].dims, mu)
    steps = np.arange(1000.0)
    advi["loss"] = ("iteration", 900.0 + 50000.0 / (steps + 10))  # still falling
    diag = diagnose(xr.DataTree.from_dict({"advi": advi}))
    text = "\n".join(diag.warnings)
    assert "ADVI ended with a loss of nan" in text
    assert "ADVI draws of mu are not all finite" in text
    assert "the ADVI loss was still falling" in text
    flat = advi.copy()
    flat["loss"] = ("iteration", 900.0 + np.random.default_rng(0).normal(0, 1, 1000))
    flat.attrs["final_loss"] = 900.0
    flat["mu"] = (advi["mu"].dims, np.where(np.isfinite(mu), mu, 0.0))
    assert diagnose(xr.DataTree.from_dict({"advi": flat})).ok


@pytest.mark.slow
def test_real_nuts_run_of_an_ordered_model_with_too_many_components():
    """Old Faithful waiting times, K = 3 with ordered means (two groups in the data)."""
    import dataclasses

    from bayesmix.config import load_spec
    from bayesmix.inference import fit_em, sample_nuts

    run = load_spec(Path(__file__).resolve().parents[2] / "models" / "old_faithful_1d.toml")
    assert run.model.ordered
    spec = dataclasses.replace(run.model, n_components=3)
    X = run.data.load()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tree = fit_em(spec, X, random_state=0)
        tree = sample_nuts(
            spec, X, draws=300, tune=300, chains=4, random_seed=0, result=tree, progressbar=False
        )
    mu = tree["posterior"]["mu"].transpose(..., "component").values
    assert np.all(np.diff(mu, axis=-1) > 0)  # ordered in every draw
    diag = diagnose(tree)
    text = "\n".join(diag.warnings)
    assert "label switching detected" not in text and "relabel first" not in text
    assert "poorly identified" in text and "use fewer components" in text


def test_high_rhat_alone_marks_no_component_as_poorly_identified(clean_tree):
    """Short chains of a good model: R-hat a bit high, nothing to say about K."""
    from bayesmix.results import relabel

    tree = relabel(clean_tree[0], method="pivot", reference="em")
    post = tree["posterior"].to_dataset()
    mu = post["mu"].values.copy()
    mu[0, :, 1, 0] += 0.05  # chain 0 sits a little off for mu[1, a]
    post["mu"] = (post["mu"].dims, mu)
    tree["posterior"] = xr.DataTree(post)
    diag = diagnose(tree)
    rhat = [w for w in diag.warnings if w.startswith("R-hat")]
    assert diag.max_rhat > 1.01 and len(rhat) == 1
    assert rhat[0].endswith("the chains disagree; run longer chains")  # relabelled already
    assert not any("poorly identified" in w for w in diag.warnings)


def test_pareto_k_check_without_a_stored_log_likelihood(clean_tree):
    """Issue 12 item 17: results of 'bayesmix fit' keep no log_likelihood group; diagnose
    still runs PSIS-LOO (computed a block at a time) and counts the same high Pareto k."""
    from bayesmix.results import diagnose

    tree = clean_tree[0]
    with_group = diagnose(tree)
    assert with_group.n_high_pareto_k is not None
    without = tree.copy()
    del without["log_likelihood"]
    # a spec in the layout results carry (the fixture's is a flat dict)
    without.attrs["spec"] = json.dumps(
        {"model": {"family": "gaussian", "components": 3, "covariance": "full"}}
    )
    assert "log_likelihood" not in without.children
    got = diagnose(without)
    assert got.n_high_pareto_k == with_group.n_high_pareto_k
    assert "PSIS-LOO" in str(got) and "could not be computed" not in str(got)


def test_a_small_filled_component_is_not_called_superfluous():
    """A sparse fit's filled component of a few outliers: its tiny weight is no sign (it is
    filled by construction); the description counts its observations instead."""
    import pandas as pd

    from bayesmix.results.diagnostics import _weak_components

    rng = np.random.default_rng(0)
    n_draws, n_obs = 400, 1000
    w = np.tile([0.6, 0.395, 0.005], (n_draws, 1))
    mu = np.stack(
        [rng.normal(-3, 0.05, n_draws), rng.normal(3, 0.05, n_draws), rng.normal(30, 20, n_draws)],
        axis=1,
    )[:, :, None]
    post = xr.Dataset(
        {
            "w": (("chain", "draw", "component"), w[None]),
            "mu": (("chain", "draw", "component", "feature"), mu[None]),
        }
    )
    table = pd.DataFrame({"component": [0, 1, 2], "r_hat": [1.0, 1.0, 1.0]})
    sd = np.array([4.0])
    finite = _weak_components(post, table, sd)
    assert len(finite) == 1 and "w < 0.033 in 100% of draws" in finite[0]
    filled = _weak_components(post, table, sd, n_obs)
    assert len(filled) == 1 and filled[0].startswith("component 2:")
    assert "w <" not in filled[0] and "about 5 observations" in filled[0]


def test_degenerate_em_components_of_a_sparse_mixture_are_a_note():
    """A sparse/DP mixture overfits K on purpose: its EM start's degenerate components are
    no problem of the fit (the finite mixture's test above keeps the warning)."""
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(70.0, 10.0, (399, 1)), [[1e4]]])
    tree = _fit_em(X)
    spec = json.loads(tree.attrs["spec"])
    spec.setdefault("priors", {})["weights"] = "sparse"
    sparse = tree.copy()
    sparse.attrs = {**tree.attrs, "spec": json.dumps(spec)}
    diag = diagnose(sparse)
    assert not any(w.startswith("EM component") for w in diag.warnings), diag.warnings
    assert any("EM has 1 degenerate component(s)" in n for n in diag.notes), diag.notes
    assert any(w.startswith("EM component") for w in diagnose(tree).warnings)
