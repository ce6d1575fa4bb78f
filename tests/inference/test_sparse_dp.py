"""Sparse finite (overfitted) and truncated Dirichlet-process mixtures in the PyMC graphs.

References: the graph's prior densities against SciPy (Gamma, Dirichlet, and the
stick-breaking density written out from Beta(1, alpha) sticks and the Jacobian of
v -> w); the number of filled components and the identified means against the simulation's
truth. One compiled model per variant (module-scoped fits), small data, 2 chains.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pymc as pm
import pytest
from scipy.stats import beta, gamma

from bayesmix import _math
from bayesmix.config import ModelSpec, PriorSpec
from bayesmix.graphs import build_model, free_var_names

MODE = "FAST_COMPILE"
K_MAX = 8
TRUTH = {
    "w": np.array([0.3, 0.4, 0.3]),
    "mu": np.array([[-5.0], [0.0], [5.0]]),
    "sigma": np.array([[0.8], [1.0], [0.8]]),
}
SPARSE = ModelSpec("gaussian", K_MAX, "diag", priors=PriorSpec(weights="sparse"))  # e0 = 0.01
HYPER = ModelSpec(
    "gaussian", K_MAX, "diag", priors=PriorSpec(weights="sparse", weights_alpha_prior=(10.0, 80.0))
)
DP = ModelSpec("gaussian", K_MAX, "diag", priors=PriorSpec(weights="dp"))
DP_SHORT = ModelSpec("gaussian", 2, "diag", priors=PriorSpec(weights="dp"))


@pytest.fixture(scope="module")
def data():
    X, _ = _math.sample_mixture(TRUTH, 150, "gaussian", np.random.default_rng(5))
    return X


def _random_point(model, seed):
    rng = np.random.default_rng(seed)
    ip = model.initial_point(0)
    return {k: v + rng.normal(0.0, 0.7, np.shape(v)) for k, v in ip.items()}


def _values_and_logp(model, names, points):
    """Constrained values and the log prior density (no Jacobian) of ``names`` at points."""
    free = [model[n] for n in names]
    fn = model.compile_fn(
        [*model.replace_rvs_by_values(free), model.logp(vars=free, jacobian=False)],
        inputs=model.value_vars,
        on_unused_input="ignore",
        mode=MODE,
    )
    return [fn(p) for p in points]


def _stick_breaking_logpdf(w: np.ndarray, alpha: float) -> float:
    """Density of K truncated stick-breaking weights (the last takes the rest), by hand.

    v_k = w_k / (1 - sum_{j<k} w_j) ~ Beta(1, alpha) for k < K; the density of
    (w_1..w_{K-1}) is prod_k Beta(v_k) |dv/dw| with |dv/dw| = prod_{k<K} 1 / (1 - sum_{j<k} w_j).
    """
    rest = 1.0 - np.concatenate([[0.0], np.cumsum(w)[:-1]])  # stick left before piece k
    v = w[:-1] / rest[:-1]
    return float(beta.logpdf(v, 1.0, alpha).sum() - np.log(rest[:-1]).sum())


def test_sparse_hyperprior_graph_density_matches_scipy(data):
    """e0 ~ Gamma, w_gamma ~ Gamma(e0 + 1, 1), w_exp ~ Exponential(1), w = normalised
    w_gamma * exp(-w_exp / e0): densities against SciPy, w against the formula."""
    from scipy.stats import expon

    m = build_model(HYPER, data)
    assert free_var_names(HYPER, 1)[:3] == ["e0", "w_gamma", "w_exp"]
    assert set(free_var_names(HYPER, 1)) == {v.name for v in m.free_RVs}
    pts = [_random_point(m, s) for s in range(3)]
    names = ["e0", "w_gamma", "w_exp"]
    w_fn = m.compile_fn(
        m.replace_rvs_by_values([m["w"]])[0],
        inputs=m.value_vars,
        on_unused_input="ignore",
        mode=MODE,
    )
    for pt_, (e0, h, t, lp) in zip(pts, _values_and_logp(m, names, pts), strict=True):
        ref = (
            gamma.logpdf(e0, 10.0, scale=1 / 80.0)
            + gamma.logpdf(h, e0 + 1.0).sum()
            + expon.logpdf(t).sum()
        )
        np.testing.assert_allclose(lp, ref, rtol=1e-9)
        g = h * np.exp(-t / e0)
        np.testing.assert_allclose(w_fn(pt_), g / g.sum(), rtol=1e-9)


@pytest.mark.parametrize("e0", [0.01, 0.1, 0.5])
def test_sparse_weights_are_dirichlet_a_priori(data, e0):
    """The weights' prior is exactly Dirichlet(e0): each w_k is Beta(e0, (K - 1) e0), checked
    at tail probabilities with 40,000 prior draws (binomial standard errors)."""
    spec = ModelSpec(
        "gaussian", K_MAX, "diag", priors=PriorSpec(weights="sparse", weights_alpha=e0)
    )
    draws = pm.draw(build_model(spec, data)["w"], draws=40_000, random_seed=1)
    np.testing.assert_allclose(draws.sum(axis=1), 1.0)
    ref = beta(e0, (K_MAX - 1) * e0)
    for q in (1e-6, 0.01, 0.5, 0.9):
        p = ref.sf(q)
        got = (draws[:, :2] > q).mean(axis=0)  # two components, each a Beta
        assert np.all(np.abs(got - p) < 5 * np.sqrt(p * (1 - p) / len(draws)) + 1e-4), (q, got, p)


def test_sparse_start_reproduces_the_weights(data):
    """A point's weights (zeros included) become w_gamma, w_exp whose w is those weights."""
    from bayesmix.graphs import point_to_initvals
    from bayesmix.inference import get_compiled

    for spec in (SPARSE, HYPER):
        cm = get_compiled(spec, data)
        w = np.array([0.5, 0.3, 0.2, 0.0, 0.0, 0.0][:K_MAX] + [0.0] * max(0, K_MAX - 6))
        point = {"w": w, "mu": np.linspace(-3, 3, K_MAX)[:, None], "sigma": np.ones((K_MAX, 1))}
        iv = point_to_initvals(spec, point, 1)
        assert np.all(iv["w_exp"] > 0) and np.all(iv["w_gamma"] == 1.0)
        back = cm.point(cm.to_unconstrained(iv))["w"]
        expected = np.clip(w, 1e-6, None)
        np.testing.assert_allclose(back, expected / expected.sum(), rtol=1e-6)


def test_dp_graph_density_matches_stick_breaking_by_hand(data):
    spec = ModelSpec("gaussian", 5, "diag", priors=PriorSpec(weights="dp", dp_alpha_prior=(2, 3)))
    m = build_model(spec, data)
    assert free_var_names(spec, 1)[:2] == ["dp_alpha", "w"]
    pts = [_random_point(m, s) for s in range(3)]
    for alpha, w, lp in _values_and_logp(m, ["dp_alpha", "w"], pts):
        assert w.shape == (5,) and w.sum() == pytest.approx(1.0)
        ref = gamma.logpdf(alpha, 2.0, scale=1 / 3.0) + _stick_breaking_logpdf(w, float(alpha))
        np.testing.assert_allclose(lp, ref, rtol=1e-9)


def test_stick_breaking_reference_is_a_density():
    # the reference itself: Monte Carlo draws of the sticks have the density's mean weights
    rng = np.random.default_rng(0)
    alpha, k = 1.5, 4
    v = rng.beta(1.0, alpha, size=(200_000, k - 1))
    rest = np.cumprod(np.c_[np.ones(len(v)), 1 - v], axis=1)
    w = np.c_[v * rest[:, :-1], rest[:, -1]]
    mean = [(1 / (1 + alpha)) * (alpha / (1 + alpha)) ** j for j in range(k - 1)]
    np.testing.assert_allclose(w.mean(0), [*mean, (alpha / (1 + alpha)) ** (k - 1)], atol=3e-3)
    # and the hand-written density integrates the Beta(1, alpha) of one stick (K = 2)
    x = 0.3
    assert _stick_breaking_logpdf(np.array([x, 1 - x]), alpha) == pytest.approx(
        beta.logpdf(x, 1, alpha)
    )


def test_dp_needs_two_components(data):
    from bayesmix._validation import ParameterError

    spec = ModelSpec("gaussian", 1, "diag", priors=PriorSpec(weights="dp"))
    with pytest.raises(ParameterError, match=r"raise \[model\] components"):
        build_model(spec, data)


def test_sparse_and_dp_get_their_own_compiled_models(data):
    from bayesmix.inference import get_compiled

    cms = [get_compiled(s, data) for s in (HYPER, DP, SPARSE)]
    assert len({id(c) for c in cms}) == 3
    assert [sorted(v.name for v in c.model.free_RVs)[:2] for c in cms] == [
        ["e0", "mu"],
        ["dp_alpha", "mu"],
        ["mu", "sigma"],
    ]


# ---------------------------------------------------------------------------------------------
# fits (one compiled model per variant)


def _nuts(spec, X, **kw):
    from bayesmix.inference import sample_nuts

    opts = {"draws": 300, "tune": 300, "chains": 2, "random_seed": 3, "log_likelihood": False}
    return sample_nuts(spec, X, **(opts | kw))


@pytest.fixture(scope="module")
def sparse_fit(data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _nuts(SPARSE, data)


@pytest.fixture(scope="module")
def dp_fit(data):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tree = _nuts(DP, data)
    tree.attrs["caught"] = [w.category.__name__ for w in caught]
    return tree


def _check_identified(filled):
    info = filled["filled"].attrs
    assert filled.attrs["n_components"] == 3 and info["k_plus"] == 3
    assert info["share_permutation"] > 0.9
    post = filled["posterior"]
    assert post.sizes["component"] == 3
    mu = post["mu"].isel(feature=0)
    z = (mu.mean(("chain", "draw")).values - TRUTH["mu"][:, 0]) / mu.std(("chain", "draw")).values
    assert np.all(np.abs(z) < 4), z
    np.testing.assert_allclose(post["w"].sum("component"), 1.0)
    # the table of a finite mixture takes it
    from bayesmix.results import compare_estimates

    table = compare_estimates(filled)
    assert set(table["component"].dropna().astype(int)) == {0, 1, 2}


def test_sparse_kplus_mode_is_the_truth_and_filled_means_match(sparse_fit):
    from bayesmix.results import filled_components, kplus_posterior

    pk = kplus_posterior(sparse_fit, random_seed=0)
    assert pk.attrs["mode"] == 3 and pk[3] > 0.7
    filled = filled_components(sparse_fit, random_seed=0)
    assert filled["filled"].attrs["kplus_mode"] == 3
    _check_identified(filled)


def test_dp_kplus_never_below_the_truth_and_filled_means_match(dp_fit):
    # a DP mixture puts mass on extra small clusters (Miller & Harrison 2013): here p(K+) was
    # spread over 3-6 with the mode at 3 or 4 depending on the seed; it never drops below 3
    from bayesmix.results import filled_components, kplus_posterior

    pk = kplus_posterior(dp_fit, random_seed=0)
    assert pk.loc[:2].sum() == 0 and pk[3] > 0.15
    assert dp_fit["posterior"]["dp_alpha"].dims == ("chain", "draw")
    _check_identified(filled_components(dp_fit, k_plus=3, random_seed=0))


def test_dp_fit_with_room_does_not_warn_but_a_short_truncation_does(data, dp_fit):
    from bayesmix.inference._fit import TruncationWarning, check_truncation

    assert "TruncationWarning" not in dp_fit.attrs["caught"]
    assert check_truncation(dp_fit["posterior"].to_dataset(), DP) < 0.01
    with pytest.warns(TruncationWarning, match=r"raise \[model\] components"):
        short = _nuts(DP_SHORT, data, draws=150, tune=150)
    assert short["posterior"]["w"].isel(component=-1).mean() > 0.01


def test_relabelling_leaves_the_concentration_alone(dp_fit):
    from bayesmix.results import relabel
    from bayesmix.results.labels import component_vars

    post = dp_fit["posterior"].to_dataset()
    assert "dp_alpha" not in component_vars(post)
    out = relabel(dp_fit, method="pivot", reference="pivot")
    assert out["relabel"].attrs["n_switched_draws"] >= 0
    np.testing.assert_array_equal(out["posterior"]["dp_alpha"].values, post["dp_alpha"].values)
    # ... while the weights are permuted draw by draw when the permutation is not the identity
    perm = out["relabel"]["permutation"].transpose("chain", "draw", "component").values
    w0 = post["w"].transpose("chain", "draw", "component").values
    np.testing.assert_allclose(
        out["posterior"]["w"].transpose("chain", "draw", "component").values,
        np.take_along_axis(w0, perm, axis=-1),
    )


def test_hyperprior_map_and_nuts_run_and_keep_e0(data):
    from bayesmix.inference import fit_map, sample_nuts

    tree = fit_map(HYPER, data, n_starts=1, random_seed=0)
    e0 = float(tree["map"]["e0"])
    assert 0 < e0 < 1 and tree["map"]["w"].sizes["component"] == K_MAX
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tree = sample_nuts(
            HYPER, data, draws=50, tune=50, chains=1, random_seed=0, result=tree, init="map"
        )
    assert tree["posterior"]["e0"].dims == ("chain", "draw")
    assert np.all(tree["posterior"]["e0"].values > 0)


def test_advi_of_a_short_dp_warns_too(data):
    from bayesmix.inference import fit_advi
    from bayesmix.inference._fit import TruncationWarning

    with pytest.warns(TruncationWarning):
        tree = fit_advi(DP_SHORT, data, n=300, draws=100, random_seed=0)
    assert tree["advi"]["dp_alpha"].dims == ("chain", "draw")


@pytest.mark.parametrize("spec", [SPARSE, DP], ids=["sparse", "dp"])
def test_em_of_sparse_and_dp_is_map_em_with_flat_weights(data, spec):
    # e0 < 1 has no mode (MAP-EM's objective was +inf and never converged): EM takes the flat
    # Dirichlet for the weights, i.e. the same fit as an explicit weights_alpha = 1 spec
    from bayesmix.inference import fit_em

    flat = ModelSpec("gaussian", K_MAX, "diag", priors=PriorSpec(weights_alpha=1.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # neither ConvergenceWarning nor an infinite objective
        ours = fit_em(spec, data, random_state=0, n_init=2)["em"]
    ref = fit_em(flat, data, random_state=0, n_init=2)["em"]
    assert ours.attrs["converged"] and np.isfinite(ours.attrs["lower_bound"])
    for name in ("w", "mu", "sigma"):
        np.testing.assert_allclose(ours[name].values, ref[name].values, rtol=1e-10)


def test_diagnose_checks_the_filled_components_of_a_sparse_fit(sparse_fit):
    """The empty components are prior draws that mix slowly by design: diagnose judges R-hat,
    ESS and identification on the filled ones, says so, and does not ask for fewer
    components; a finite fit's diagnostics have no such note."""
    from bayesmix.results import diagnose

    diag = diagnose(sparse_fit)
    note = [n for n in diag.notes if n.startswith("sparse mixture with K = ")]
    assert len(note) == 1 and "mode at 3" in note[0]
    assert not any("poorly identified" in m for m in diag.warnings)
    assert diag.table["component"].nunique() == 3  # the checks' table: the filled components
    assert diag.filled is not None and diag.filled["posterior"].sizes["component"] == 3
    finite = sparse_fit.copy()
    spec = json.loads(finite.attrs["spec"])
    spec["priors"]["weights"] = "dirichlet"
    finite.attrs = {**finite.attrs, "spec": json.dumps(spec)}
    assert not any("filled components" in n for n in diagnose(finite).notes)


def test_estimates_table_and_diagnostics_of_a_dp_fit_list_its_concentration(dp_fit):
    """compare_estimates has one row for the scalar dp_alpha (it crashed on 0-d variables)."""
    from bayesmix.results import compare_estimates, diagnose

    table = compare_estimates(dp_fit)
    row = table[table["parameter"] == "dp_alpha"]
    assert len(row) == 1
    draws = dp_fit["posterior"]["dp_alpha"].values
    assert row["mean"].iloc[0] == pytest.approx(draws.mean())
    # the filled components are checked, or the diagnostics say why they cannot be (this
    # short DP run spreads K+ over 3-5 with a small spurious cluster)
    diag = diagnose(dp_fit)
    assert any(n.startswith("Dirichlet-process mixture with K = ") for n in diag.notes) or any(
        m.startswith("the filled components could not be identified") for m in diag.warnings
    )
    # the concentration is checked with the filled components (R-hat and ESS of all draws)
    checked = diag.table[diag.table["parameter"] == "dp_alpha"]
    assert len(checked) == 1
    assert checked["ess_bulk"].iloc[0] == pytest.approx(row["ess_bulk"].iloc[0])


def test_plots_of_a_sparse_fit_show_its_filled_components(sparse_fit):
    """Trace, rank and membership figures draw the K+ filled components (the empty ones are
    prior draws that would fill the panels), say so in the title; a finite fit's do not."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bayesmix.plotting import plot_plan
    from bayesmix.results.sparse import component_result, has_empty_components

    assert has_empty_components(sparse_fit)
    filled = component_result(sparse_fit, max_draws=2000)
    assert filled["posterior"].sizes["component"] == 3
    plan = dict(plot_plan(sparse_fit))
    for name in ("trace", "rank", "membership_uncertainty"):
        fig = plan[name]()
        text = " ".join(
            [fig._suptitle.get_text() if fig._suptitle else ""]
            + [ax.get_title() for ax in fig.axes]
            + [t.get_text() for t in fig.texts]
        )
        assert "the K+ = 3 filled components" in text, name
        if name == "rank":  # one panel per variable and component, titled "w\n<k>"
            w_panels = {ax.get_title() for ax in fig.axes if ax.get_title().startswith("w\n")}
            assert w_panels == {f"w\n{j}" for j in range(3)}, w_panels
        else:
            labels = {t.get_text() for ax in fig.axes + fig.legends for t in _legend_texts(ax)}
            assert {f"component {j}" for j in range(3)} <= labels, name
            assert "component 3" not in labels, name
        plt.close(fig)
    finite = sparse_fit.copy()
    spec = json.loads(finite.attrs["spec"])
    spec["priors"]["weights"] = "dirichlet"
    finite.attrs = {**finite.attrs, "spec": json.dumps(spec)}
    assert not has_empty_components(finite) and component_result(finite) is finite
    fig = dict(plot_plan(finite))["membership_uncertainty"]()
    assert "filled" not in fig.axes[0].get_title()
    plt.close(fig)


def _legend_texts(obj):
    legend = obj if hasattr(obj, "get_texts") else obj.get_legend()
    return [] if legend is None else legend.get_texts()


def _as_two_features(tree):
    """The 1-D sparse fit as a 2-D one: the feature twice (the second shifted by 10)."""
    import xarray as xr

    out = tree.copy()
    obs = tree["observed_data"].to_dataset()
    name = [v for v in obs.data_vars][0]
    x = obs[name]
    fdim = [d for d in x.dims if d != "obs_id"][0]
    two = xr.concat([x, x + 10.0], dim=fdim).assign_coords({fdim: ["a", "b"]})
    out["observed_data"] = xr.DataTree(obs.drop_vars(name).drop_dims(fdim).assign({name: two}))
    post = tree["posterior"].to_dataset()
    new = {}
    for v, arr in post.data_vars.items():
        if "feature" in arr.dims:
            shift = 10.0 if v == "mu" else 0.0
            arr = xr.concat([arr, arr + shift], dim="feature")
        new[v] = arr
    out["posterior"] = xr.DataTree(
        xr.Dataset(new, attrs=post.attrs).assign_coords(feature=["a", "b"])
    )
    return out


def test_clusters_2d_of_a_sparse_fit_draws_only_its_filled_components(sparse_fit):
    """The empty components are prior draws: their ellipses would cover the panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bayesmix.plotting import plot_plan

    tree = _as_two_features(sparse_fit)
    fig = dict(plot_plan(tree))["clusters_2d"]()
    ax = fig.axes[0]
    post_ellipses = [p for p in ax.patches if p.get_gid() == "posterior-ellipse"]
    assert len(post_ellipses) == 50 * 3  # 50 draws x the K+ = 3 filled components, not 8
    assert "K+ = 3 filled" in ax.get_title()
    assert "the K+ = 3 filled components" in ax.get_title()
    plt.close(fig)


def test_allocation_matching_recovers_planted_relabellings():
    from bayesmix.results.sparse import _identify_by_allocation

    rng = np.random.default_rng(0)
    k, n, m = 4, 60, 40
    truth = rng.integers(0, k, n)
    perms = np.stack([rng.permutation(k) for _ in range(m)])  # draw i calls group g perms[i, g]
    zf = perms[np.arange(m)[:, None], truth[None, :]]
    flip = rng.random((m, n)) < 0.1  # 10 % of the allocations moved at random
    zf = np.where(flip, rng.integers(0, k, (m, n)), zf)
    labels = _identify_by_allocation(zf, k)
    # component j of draw i holds true group g = inverse(perms[i])[j] and gets pivot group
    # labels[i, j]: the map g -> pivot group must be one and the same permutation in all draws
    holds = np.argsort(perms, axis=1)
    maps = np.empty((m, k), dtype=int)
    maps[np.arange(m)[:, None], holds] = labels
    assert sorted(maps[0]) == list(range(k))
    np.testing.assert_array_equal(maps, np.broadcast_to(maps[0], maps.shape))


def test_filled_components_fall_back_to_allocations_when_kmeans_fails(sparse_fit, monkeypatch):
    """A component whose parameters vary widely (a few outliers) broke k-means' classes; the
    allocations still identify every draw."""
    from bayesmix.results import filled_components
    from bayesmix.results import sparse as sparse_mod

    def no_permutation(feats, k, seed):
        return np.zeros(feats.shape[:2], dtype=int), np.zeros(feats.shape[0], dtype=bool)

    monkeypatch.setattr(sparse_mod, "_identify", no_permutation)
    filled = filled_components(sparse_fit, random_seed=0)
    info = filled["filled"].attrs
    assert info["method"].startswith("allocations matched to a pivot partition")
    assert "identified 0% of the draws" in info["method"]
    assert info["share_permutation"] == 1.0
    _check_identified(filled)
    mu = filled["posterior"]["mu"].mean(("chain", "draw")).values[:, 0]
    assert np.all(np.diff(mu) > 0)  # numbered by the first feature, as k-means numbers them


def test_plots_reuse_the_filled_components_that_diagnose_found(sparse_fit, monkeypatch):
    """The CLI identifies the filled components once (diagnose) and the plots take them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bayesmix.plotting import plot_plan
    from bayesmix.results import diagnose
    from bayesmix.results import sparse as sparse_mod

    filled = diagnose(sparse_fit).filled

    def not_again(*args, **kwargs):
        raise AssertionError("the filled components were identified a second time")

    monkeypatch.setattr(sparse_mod, "component_result", not_again)
    fig = dict(plot_plan(sparse_fit, components=filled))["trace"]()
    assert "the K+ = 3 filled components" in (fig._suptitle.get_text() if fig._suptitle else "")
    plt.close(fig)
    with pytest.raises(AssertionError, match="second time"):
        dict(plot_plan(sparse_fit))["trace"]()
