"""Figures: every plot renders headless, and what it draws matches independent references."""

import os
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import matplotlib.image as mpimg  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from scipy.stats import norm  # noqa: E402
from sklearn.mixture import GaussianMixture  # noqa: E402

from bayesmix import plotting  # noqa: E402
from bayesmix._math import sample_mixture  # noqa: E402
from bayesmix._validation import DataError, ParameterError  # noqa: E402

# --------------------------------------------------------------------------------------------
# hand-built results that follow docs/architecture.md (EM point estimate + fake draws)
# --------------------------------------------------------------------------------------------

N_CHAINS, N_DRAWS = 2, 60


def _params_ds(params, features, lead=()):
    k = params["w"].shape[-1]
    dims = {
        "w": ("component",),
        "mu": ("component", "feature"),
        "sigma": ("component", "feature"),
        "p": ("component", "feature"),
        "cov": ("component", "feature", "feature_bis"),
    }
    coords = {"component": np.arange(k), "feature": features, "feature_bis": features}
    data = {n: (lead + dims[n], v) for n, v in params.items()}
    if lead:
        coords.update({"chain": np.arange(N_CHAINS), "draw": np.arange(N_DRAWS)})
    ds = xr.Dataset(data, coords=coords)
    if "cov" not in params:
        ds = ds.drop_vars("feature_bis")
    return ds


def _fake_draws(point, rng, swap_chain=True):
    """(chain, draw, ...) draws scattered around ``point``; chain 1 has its labels reversed."""
    shape = (N_CHAINS, N_DRAWS)
    draws = {}
    w = rng.dirichlet(200 * point["w"], size=shape)
    draws["w"] = w
    for name in ("mu", "p"):
        if name in point:
            scale = 0.03 if name == "p" else 0.015 * np.abs(point[name]) + 0.01
            v = point[name] + scale * rng.normal(size=shape + point[name].shape)
            draws[name] = np.clip(v, 0.01, 0.99) if name == "p" else v
    if "sigma" in point:
        draws["sigma"] = point["sigma"] * np.exp(
            0.05 * rng.normal(size=shape + point["sigma"].shape)
        )
    if "cov" in point:
        f = np.exp(0.05 * rng.normal(size=shape + point["cov"].shape[:1]))
        draws["cov"] = point["cov"] * f[..., None, None]
        draws["sigma"] = np.sqrt(np.diagonal(draws["cov"], axis1=-2, axis2=-1))
    if swap_chain:
        for v in draws.values():
            v[1] = v[1][:, ::-1].copy()
    return draws


def _tree(
    X,
    features,
    point,
    family,
    covariance,
    rng,
    *,
    posterior=True,
    with_map=True,
    predictive=True,
    lower_bounds=None,
):
    groups = {
        "observed_data": xr.Dataset(
            {"x": (("obs_id", "feature"), X)},
            coords={"obs_id": np.arange(len(X)), "feature": features},
        )
    }
    em = _params_ds(point, features)
    lb = lower_bounds if lower_bounds is not None else -np.exp(-np.arange(12) / 2.0) - 1.0
    em["lower_bounds"] = ("iteration", lb)
    em.attrs = {
        "method": "ml",
        "n_iter": len(lb),
        "converged": True,
        "lower_bound": lb[-1],
        "n_init": 1,
    }
    groups["em"] = em
    if with_map:
        mp = {n: v.copy() for n, v in point.items()}
        key = "mu" if "mu" in mp else "p"
        mp[key] = mp[key] + 0.01
        groups["map"] = _params_ds(mp, features)
    if posterior:
        draws = _fake_draws(point, rng)
        groups["posterior"] = _params_ds(draws, features, lead=("chain", "draw"))
        if predictive:
            rep = np.empty((N_CHAINS, N_DRAWS) + X.shape)
            for c in range(N_CHAINS):
                for d in range(N_DRAWS):
                    one = {n: v[c, d] for n, v in draws.items()}
                    if "cov" in one:
                        one.pop("sigma")
                    rep[c, d] = sample_mixture(one, len(X), family, rng=rng)[0]
            groups["posterior_predictive"] = xr.Dataset(
                {"x": (("chain", "draw", "obs_id", "feature"), rep)},
                coords={"obs_id": np.arange(len(X)), "feature": features},
            )
    tree = xr.DataTree.from_dict(groups)
    from bayesmix.config import ModelSpec, RunSpec

    spec = ModelSpec(family, len(point["w"]), covariance or "full")
    tree.attrs = {
        "family": family,
        "covariance": covariance,
        "n_components": len(point["w"]),
        "format": "bayesmix-result/1",
        "spec": RunSpec(name="fake", model=spec).to_json(),
    }
    return tree


def _gm_point(gm, covariance):
    point = {"w": gm.weights_.copy(), "mu": gm.means_.copy()}
    if covariance == "full":
        point["cov"] = gm.covariances_.copy()
    else:
        point["sigma"] = np.sqrt(gm.covariances_)
    return point


@pytest.fixture(scope="module")
def data_1d():
    rng = np.random.default_rng(0)
    z = rng.choice(2, size=240, p=[0.35, 0.65])
    x = np.where(z == 0, rng.normal(54, 6, 240), rng.normal(80, 6, 240))
    gm = GaussianMixture(2, covariance_type="diag", random_state=0).fit(x[:, None])
    return x[:, None], gm


@pytest.fixture(scope="module")
def result_1d(data_1d):
    X, gm = data_1d
    return _tree(
        X, ["waiting"], _gm_point(gm, "diag"), "gaussian", "diag", np.random.default_rng(1)
    )


@pytest.fixture(scope="module")
def data_2d():
    rng = np.random.default_rng(2)
    means = np.array([[2.0, 55.0], [4.3, 80.0]])
    covs = np.array([[[0.07, 0.4], [0.4, 35.0]], [[0.17, 0.9], [0.9, 36.0]]])
    z = rng.choice(2, size=200, p=[0.4, 0.6])
    X = np.stack([rng.multivariate_normal(means[k], covs[k]) for k in z])
    gm = GaussianMixture(2, covariance_type="full", random_state=0).fit(X)
    return X, gm


@pytest.fixture(scope="module")
def result_2d(data_2d):
    X, gm = data_2d
    return _tree(
        X,
        ["eruptions", "waiting"],
        _gm_point(gm, "full"),
        "gaussian",
        "full",
        np.random.default_rng(3),
    )


@pytest.fixture(scope="module")
def result_bern():
    rng = np.random.default_rng(4)
    K, D = 3, 64
    proto = np.full((K, 8, 8), 0.05)
    proto[0, 1:7, 2] = proto[0, 1:7, 5] = 0.95  # two bars
    proto[1, 2, 1:7] = proto[1, 5, 1:7] = 0.95
    proto[2, 1:7, 1:7] = 0.5
    p = proto.reshape(K, D)
    w = np.array([0.5, 0.3, 0.2])
    X, _ = sample_mixture({"w": w, "p": p}, 150, "bernoulli", rng=rng)
    feats = [f"x{i}" for i in range(D)]
    return _tree(X.astype(float), feats, {"w": w, "p": p}, "bernoulli", None, rng)


def _check_png(fig, path):
    plotting.save_figure(fig, path)
    assert path.exists() and path.stat().st_size > 5_000
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    assert img[..., :3].std() > 0.01


def _legend_texts(ax):
    leg = ax.get_legend()
    assert leg is not None
    return [t.get_text() for t in leg.get_texts()]


# --------------------------------------------------------------------------------------------
# every figure renders to a non-blank PNG
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "density",
        "clusters",
        "membership",
        "membership_2d",
        "trace",
        "rank",
        "ppc",
        "ppc_2d",
        "em_history",
        "k_selection",
        "component_images",
        "component_images_post",
        "generated",
        "ppc_bern",
    ],
)
def test_every_figure_renders(name, tmp_path, result_1d, result_2d, result_bern):
    table = pd.DataFrame(
        {
            "covariance_type": ["full"] * 3 + ["diag"] * 3,
            "k": [1, 2, 3] * 2,
            "bic": [5.0, 3.0, 4.0, 6.0, 4.5, 4.2],
            "aic": [4, 2.5, 2.4, 5, 4, 3.9],
        }
    )
    make = {
        "density": lambda: plotting.plot_density_1d(result_1d),
        "clusters": lambda: plotting.plot_clusters_2d(result_2d, n_ellipses=10),
        "membership": lambda: plotting.plot_membership_uncertainty(result_1d),
        "membership_2d": lambda: plotting.plot_membership_uncertainty(result_2d),
        "trace": lambda: plotting.plot_trace(result_1d),
        "rank": lambda: plotting.plot_rank(result_1d, relabel=True),
        "ppc": lambda: plotting.plot_ppc(result_1d, n_draws=10),
        "ppc_2d": lambda: plotting.plot_ppc(result_2d, n_draws=10),
        "em_history": lambda: plotting.plot_em_history(result_1d),
        "k_selection": lambda: plotting.plot_k_selection(table),
        "component_images": lambda: plotting.plot_component_images(result_bern),
        "component_images_post": lambda: plotting.plot_component_images(
            result_bern, group="posterior"
        ),
        "generated": lambda: plotting.plot_generated_images(
            sample_mixture({"w": [0.5, 0.5], "p": np.full((2, 64), 0.3)}, 30, "bernoulli")
        ),
        "ppc_bern": lambda: plotting.plot_ppc(result_bern, n_draws=10),
    }
    fig = make[name]()
    assert isinstance(fig, Figure)
    _check_png(fig, tmp_path / f"{name}.png")


def test_plots_draw_into_given_axes(result_1d, result_2d):
    fig = Figure()
    ax1, ax2 = fig.subplots(1, 2)
    assert plotting.plot_density_1d(result_1d, ax=ax1) is fig
    assert plotting.plot_clusters_2d(result_2d, ax=ax2, n_ellipses=2) is fig
    assert ax1.lines and ax2.patches


# --------------------------------------------------------------------------------------------
# 1-D density
# --------------------------------------------------------------------------------------------


def _line(ax, gid):
    lines = [ln for ln in ax.lines if ln.get_gid() == gid]
    assert len(lines) == 1, gid
    return lines[0]


def test_density_curves_match_scipy_and_integrate_to_one(result_1d, data_1d):
    X, gm = data_1d
    fig = plotting.plot_density_1d(result_1d)
    ax = fig.axes[0]
    grid, dens = _line(ax, "density-point").get_data()
    ref = sum(
        gm.weights_[k] * norm(gm.means_[k, 0], np.sqrt(gm.covariances_[k, 0])).pdf(grid)
        for k in range(2)
    )
    np.testing.assert_allclose(dens, ref, rtol=1e-10)
    # the data range padded by 10% holds almost all of the mixture's mass
    assert np.trapezoid(dens, grid) == pytest.approx(1.0, abs=0.01)
    # the dashed component curves add up to the mixture
    comps = [_line(ax, f"component-{k}").get_ydata() for k in range(2)]
    np.testing.assert_allclose(comps[0] + comps[1], dens, rtol=1e-10)
    assert all(ln.get_linestyle() == "--" for ln in ax.lines if "component" in ln.get_gid())
    # posterior mean density: the fake draws sit close to EM, so it is close too
    post = _line(ax, "density-posterior").get_ydata()
    assert np.trapezoid(post, grid) == pytest.approx(1.0, abs=0.01)
    assert np.abs(post - dens).max() < 0.1 * dens.max()
    assert len(ax.collections) == 1  # the band
    texts = _legend_texts(ax)
    assert "data" in texts and "EM (ML) mixture" in texts and "posterior mean" in texts
    assert any("90% band" in t for t in texts)
    assert ax.get_xlabel() == "waiting: waiting time to next eruption (min)"
    assert ax.get_ylabel() and ax.get_title()


def test_density_posterior_mean_is_mean_over_draws(result_1d):
    # independent check of the posterior mean curve: all draws, computed with SciPy
    fig = plotting.plot_density_1d(result_1d, n_draws=N_CHAINS * N_DRAWS)
    grid, post = _line(fig.axes[0], "density-posterior").get_data()
    ds = result_1d["posterior"].to_dataset()
    w = ds["w"].values.reshape(-1, 2)
    mu = ds["mu"].values.reshape(-1, 2)
    sd = ds["sigma"].values.reshape(-1, 2)
    ref = np.mean(
        [
            sum(w[s, k] * norm(mu[s, k], sd[s, k]).pdf(grid) for k in range(2))
            for s in range(len(w))
        ],
        axis=0,
    )
    np.testing.assert_allclose(post, ref, rtol=1e-10)


def test_density_from_posterior_only(result_1d):
    tree = xr.DataTree.from_dict(
        {g: result_1d[g].to_dataset() for g in ("observed_data", "posterior")}
    )
    ax = plotting.plot_density_1d(tree).axes[0]
    assert not [ln for ln in ax.lines if ln.get_gid() == "density-point"]
    post = _line(ax, "density-posterior").get_ydata()
    comps = [_line(ax, f"component-{k}") for k in range(2)]
    # aligned component means add up to the posterior mean density
    np.testing.assert_allclose(comps[0].get_ydata() + comps[1].get_ydata(), post, rtol=1e-10)
    assert comps[0].get_label() == "component 0 (posterior mean)"
    # and each sits on its own mode despite the switched chain
    grid = comps[0].get_xdata()
    em_mu = result_1d["em"]["mu"].values[:, 0]
    for k in range(2):
        assert abs(grid[np.argmax(comps[k].get_ydata())] - em_mu[k]) < 3.0


def test_density_of_one_feature_of_2d_full_result(result_2d, data_2d):
    X, gm = data_2d
    fig = plotting.plot_density_1d(result_2d, feature="eruptions")
    grid, dens = _line(fig.axes[0], "density-point").get_data()
    ref = sum(
        gm.weights_[k] * norm(gm.means_[k, 0], np.sqrt(gm.covariances_[k, 0, 0])).pdf(grid)
        for k in range(2)
    )
    np.testing.assert_allclose(dens, ref, rtol=1e-10)
    assert "(min)" in fig.axes[0].get_xlabel()


def test_density_errors(result_1d, result_bern):
    with pytest.raises(ParameterError, match="unknown feature"):
        plotting.plot_density_1d(result_1d, feature="nope")
    with pytest.raises(ParameterError, match="got 'bernoulli'; use plot_plan"):
        plotting.plot_density_1d(result_bern)
    with pytest.raises(DataError, match="observed_data"):
        plotting.plot_density_1d(xr.DataTree.from_dict({"em": result_1d["em"].to_dataset()}))


# --------------------------------------------------------------------------------------------
# 2-D clusters
# --------------------------------------------------------------------------------------------


def _ellipses(ax, gid):
    return [p for p in ax.patches if p.get_gid() == gid]


def test_clusters_ellipses_counts_and_geometry(result_2d, data_2d):
    X, gm = data_2d
    fig = plotting.plot_clusters_2d(result_2d, n_ellipses=7)
    ax = fig.axes[0]
    point = _ellipses(ax, "point-ellipse")
    assert len(point) == 2 * 2  # 1 and 2 sd per component
    assert len(_ellipses(ax, "posterior-ellipse")) == 7 * 2
    for k in range(2):
        vals = np.linalg.eigvalsh(gm.covariances_[k])
        one_sd = [
            e for e in point if np.allclose(e.center, gm.means_[k]) and e.get_linestyle() == "-"
        ]
        assert len(one_sd) == 1
        e = one_sd[0]
        np.testing.assert_allclose(sorted([e.width, e.height]), 2 * np.sqrt(vals), rtol=1e-8)
    # the MAP means are marked
    assert [c for c in ax.collections if c.get_gid() == "map-means"]
    texts = _legend_texts(ax)
    assert {"component 0", "component 1", "EM (ML) 1 sd", "EM (ML) 2 sd", "MAP mean"} <= set(texts)
    assert ax.get_xlabel().endswith("(min)") and ax.get_ylabel().endswith("(min)")


def test_clusters_posterior_ellipses_aligned_to_em_colours(result_2d, data_2d):
    # chain 1 of the fake posterior has its labels reversed: after alignment, every posterior
    # ellipse of component k's colour must sit near the EM mean of component k
    X, gm = data_2d
    ax = plotting.plot_clusters_2d(result_2d, n_ellipses=40).axes[0]
    colors = [matplotlib.colors.to_rgb(c) for c in plotting.component_colors(2)]
    for e in _ellipses(ax, "posterior-ellipse"):
        k = colors.index(tuple(e.get_edgecolor()[:3]))
        d = np.abs(np.asarray(e.center) - gm.means_).sum(axis=1)
        assert d.argmin() == k


def test_cluster_colours_follow_sklearn_membership(data_2d, result_2d):
    X, gm = data_2d
    em_only = xr.DataTree.from_dict(
        {g: result_2d[g].to_dataset() for g in ("observed_data", "em")}
    )
    em_only.attrs = dict(result_2d.attrs)
    ax = plotting.plot_clusters_2d(em_only).axes[0]
    rgb = np.array([matplotlib.colors.to_rgb(c) for c in plotting.component_colors(2)])
    expected = gm.predict_proba(X) @ rgb
    face = ax.collections[0].get_facecolors()[:, :3]
    np.testing.assert_allclose(face, expected, atol=1e-6)
    assert not _ellipses(ax, "posterior-ellipse")


def test_clusters_pick_a_pair_of_three_diag_features():
    rng = np.random.default_rng(5)
    means = np.array([[0.0, 5.0, -3.0], [4.0, 0.0, 3.0], [-4.0, -5.0, 0.0]])
    z = rng.choice(3, size=300)
    X = means[z] + rng.normal(size=(300, 3)) * [1.0, 0.5, 2.0]
    gm = GaussianMixture(3, covariance_type="diag", random_state=0).fit(X)
    res = _tree(
        X, ["x0", "x1", "x2"], _gm_point(gm, "diag"), "gaussian", "diag", rng, predictive=False
    )
    ax = plotting.plot_clusters_2d(res, features=("x2", "x0"), n_ellipses=3).axes[0]
    assert ax.get_xlabel() == "x2" and ax.get_ylabel() == "x0"
    np.testing.assert_allclose(ax.collections[0].get_offsets(), X[:, [2, 0]])
    point = _ellipses(ax, "point-ellipse")
    assert len(point) == 6 and len(_ellipses(ax, "posterior-ellipse")) == 9
    sd = np.sqrt(gm.covariances_[:, [2, 0]])
    for k in range(3):
        e = next(
            e
            for e in point
            if np.allclose(e.center, gm.means_[k, [2, 0]]) and e.get_linestyle() == "-"
        )
        np.testing.assert_allclose(sorted([e.width, e.height]), sorted(2 * sd[k]), rtol=1e-8)
    with pytest.raises(ParameterError, match="unknown feature"):
        plotting.plot_clusters_2d(res, features=("x2", "x9"))


def test_clusters_needs_two_features(result_1d):
    with pytest.raises(DataError, match="two features"):
        plotting.plot_clusters_2d(result_1d)


# --------------------------------------------------------------------------------------------
# membership uncertainty
# --------------------------------------------------------------------------------------------


def test_membership_point_lines_equal_sklearn(data_1d, result_1d):
    X, gm = data_1d
    em_only = xr.DataTree.from_dict(
        {g: result_1d[g].to_dataset() for g in ("observed_data", "em")}
    )
    ax = plotting.plot_membership_uncertainty(em_only).axes[0]
    order = np.argsort(X[:, 0], kind="stable")
    ref = gm.predict_proba(X)[order]
    for k in range(2):
        line = _line(ax, f"membership-{k}")
        np.testing.assert_allclose(line.get_xdata(), X[order, 0])
        np.testing.assert_allclose(line.get_ydata(), ref[:, k], atol=1e-10)
    assert ax.get_xlabel().endswith("(min)")
    assert not ax.collections  # no band without a posterior


def test_membership_2d_blocks_equal_sklearn(data_2d, result_2d):
    X, gm = data_2d
    em_only = xr.DataTree.from_dict(
        {g: result_2d[g].to_dataset() for g in ("observed_data", "em")}
    )
    ax = plotting.plot_membership_uncertainty(em_only).axes[0]
    proba = gm.predict_proba(X)
    best = proba.argmax(1)
    for k in range(2):
        line = _line(ax, f"membership-{k}")
        ref = np.sort(proba[best == k, k])[::-1]
        np.testing.assert_allclose(line.get_ydata(), ref, atol=1e-10)
        assert line.get_label() == f"component {k} (n = {(best == k).sum()})"


def test_membership_bands_with_posterior(result_2d):
    ax = plotting.plot_membership_uncertainty(result_2d).axes[0]
    lines = [_line(ax, f"membership-{k}") for k in range(2)]
    assert len(ax.collections) == 2  # one band per component
    y = np.concatenate([ln.get_ydata() for ln in lines])
    assert y.size == result_2d["observed_data"].sizes["obs_id"]
    assert np.all(y >= 0.5 - 1e-12)  # the most likely of two components
    # aligned draws: most observations are confidently assigned, not blurred to 0.5
    assert np.mean(y > 0.9) > 0.8
    assert "posterior interval" in ax.get_title()
    assert {"component 0", "component 1"} <= {t.split(" (")[0] for t in _legend_texts(ax)}


# --------------------------------------------------------------------------------------------
# arviz-plots diagnostics
# --------------------------------------------------------------------------------------------


def test_trace_and_rank_figures(result_1d):
    fig = plotting.plot_trace(result_1d)
    # compact trace: one row per variable (w, mu, sigma), density + trace columns
    assert len([a for a in fig.axes if a.get_visible()]) == 6
    assert "Trace" in fig.get_suptitle()
    fig = plotting.plot_rank(result_1d, var_names=["mu"], relabel=True)
    assert len(fig.axes) >= 2 and "aligned" in fig.get_suptitle()
    with pytest.raises(ParameterError, match="unknown variables"):
        plotting.plot_trace(result_1d, var_names=["nope"])


def test_trace_colours_components_and_splits_features(result_2d):
    fig = plotting.plot_trace(result_2d, var_names=["w", "mu"])
    axes = [a for a in fig.axes if a.get_visible()]
    assert len(axes) == 2 * 3  # rows: w, mu[eruptions], mu[waiting]; columns: dist, trace
    ylabels = {a.get_ylabel() for a in axes}
    assert {"w", "mu[eruptions]", "mu[waiting]"} <= ylabels
    colors = {matplotlib.colors.to_hex(ln.get_color()) for a in axes for ln in a.lines}
    assert {c.lower() for c in plotting.component_colors(2)} <= colors


def test_rank_separates_chains_even_without_coords(result_1d):
    post = result_1d["posterior"].to_dataset().drop_vars(["chain", "draw"])
    tree = xr.DataTree.from_dict({"posterior": post})
    fig = plotting.plot_rank(tree, var_names=["mu"])
    panels = [a for a in fig.axes if a.get_visible()]
    assert len(panels) == 2  # one per component
    for ax in panels:
        assert len([ln for ln in ax.lines if len(ln.get_xdata()) > 10]) == N_CHAINS
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["chain 0", "chain 1"]


def test_relabelled_aligns_switched_chain_to_em(result_1d):
    out = plotting._common._relabelled(result_1d)
    mu = out["posterior"]["mu"].values[..., 0]  # (chain, draw, component)
    em_mu = result_1d["em"]["mu"].values[:, 0]
    # every draw's component k is closest to EM component k
    for k in range(2):
        assert np.all(np.abs(mu[..., k, None] - em_mu).argmin(axis=-1) == k)
    # the input is untouched: chain 1 is still switched there
    raw = result_1d["posterior"]["mu"].values[1, :, :, 0]
    assert np.all(np.abs(raw[:, 0, None] - em_mu).argmin(axis=-1) == 1)
    # an aligned tree is not aligned again
    assert plotting._common._relabelled(out) is out


# --------------------------------------------------------------------------------------------
# predictive checks, EM history, K selection
# --------------------------------------------------------------------------------------------


def test_ppc_lines_per_panel(result_2d):
    fig = plotting.plot_ppc(result_2d, n_draws=12)
    axes = [a for a in fig.axes if a.get_visible()]
    assert len(axes) == 2
    for ax in axes:
        assert len([ln for ln in ax.lines if ln.get_gid() == "ppc-draw"]) == 12
        assert ax.get_xlabel().endswith("(min)")
    assert "replicated (KDE)" in _legend_texts(axes[0])


def test_ppc_bernoulli_frequencies(result_bern):
    ax = plotting.plot_ppc(result_bern).axes[0]
    obs = result_bern["observed_data"]["x"].values.mean(axis=0)
    np.testing.assert_allclose(ax.lines[0].get_ydata(), obs)


def test_ppc_needs_predictive_group(result_1d):
    tree = xr.DataTree.from_dict({g: result_1d[g].to_dataset() for g in ("observed_data", "em")})
    with pytest.raises(DataError, match="posterior_predictive"):
        plotting.plot_ppc(tree)


def test_em_history_from_tree_and_estimator(result_1d, data_1d):
    fig = plotting.plot_em_history(result_1d)
    lb = result_1d["em"]["lower_bounds"].values
    np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata(), lb)
    np.testing.assert_allclose(fig.axes[1].lines[0].get_ydata(), np.diff(lb))
    assert "converged" in fig.get_suptitle()
    X, _ = data_1d
    gm = GaussianMixture(2, random_state=0, tol=1e-8).fit(X)
    fig = plotting.plot_em_history(gm)
    np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata(), gm.lower_bounds_)
    # a decrease is shown separately
    fig = plotting.plot_em_history(SimpleNamespace(lower_bounds_=[1.0, 2.0, 1.5, 2.5]))
    assert len(fig.axes[1].lines) == 2
    with pytest.raises(ParameterError, match="estimator"):
        plotting.plot_em_history(object())


def test_em_history_keeps_axis_on_the_converging_part():
    lb = np.r_[-1.9e7, -3.9 + 0.05 * (1 - np.exp(-np.arange(10)))]
    ax = plotting.plot_em_history(SimpleNamespace(lower_bounds_=lb)).axes[0]
    lo, hi = ax.get_ylim()
    assert lo > -4.0 and hi < -3.8  # the first value is off scale ...
    assert any("off scale: -1.9e+07" in t.get_text() for t in ax.texts)  # ... and says so
    # a normal curve keeps every point in view
    ax = plotting.plot_em_history(SimpleNamespace(lower_bounds_=-np.exp(-np.arange(8)))).axes[0]
    assert ax.get_ylim()[0] < -1.0 and not ax.texts


def test_k_selection_with_select_k_table(data_2d):
    from bayesmix.results import select_k

    X, _ = data_2d
    table = select_k(X, ks=[1, 2, 3], covariance_types=("full", "diag"), random_state=0)
    fig = plotting.plot_k_selection(table)
    axes = [a for a in fig.axes if a.get_visible()]
    assert [a.get_title() for a in axes] == ["BIC", "AIC", "ICL"]
    star = _line(axes[0], "recommended")
    assert star.get_xdata()[0] == table.attrs["recommended"]["bic"]
    # a recommendation in attrs wins over the raw optimum (select_k's parsimony rule for LOO)
    table["elpd_loo"] = -table["bic"] / 2
    table.attrs["recommended"] = {**table.attrs["recommended"], "loo": 1}
    table.attrs["recommended_covariance"] = {
        **table.attrs["recommended_covariance"],
        "loo": "diag",
    }
    fig = plotting.plot_k_selection(table, criteria=["elpd_loo"])
    star = _line(fig.axes[0], "recommended")
    expected = table[(table["k"] == 1) & (table["covariance_type"] == "diag")]["elpd_loo"]
    assert star.get_xdata()[0] == 1 and star.get_ydata()[0] == expected.iloc[0]


def test_k_selection_marks_best_bic(data_2d):
    X, _ = data_2d
    rows = []
    for ctype in ("full", "diag"):
        for k in (1, 2, 3, 4):
            gm = GaussianMixture(k, covariance_type=ctype, random_state=0, n_init=2).fit(X)
            rows.append({"covariance_type": ctype, "k": k, "bic": gm.bic(X), "aic": gm.aic(X)})
    table = pd.DataFrame(rows)
    table["elpd_loo"] = -table["bic"] / 2
    table["elpd_loo_se"] = 5.0
    fig = plotting.plot_k_selection(table)
    axes = [a for a in fig.axes if a.get_visible()]
    assert [a.get_title() for a in axes] == ["BIC", "AIC", "ELPD (LOO)"]
    best = table.loc[table["bic"].idxmin()]
    star = _line(axes[0], "recommended")
    assert star.get_xdata()[0] == best["k"] and star.get_ydata()[0] == best["bic"]
    assert f"K = {best['k']}" in fig.get_suptitle()
    # higher is better for ELPD: the star sits on the maximum
    assert _line(axes[2], "recommended").get_ydata()[0] == table["elpd_loo"].max()
    assert {"full", "diag"} <= set(_legend_texts(axes[0]))
    with pytest.raises(DataError, match="'k'"):
        plotting.plot_k_selection(pd.DataFrame({"bic": [1.0]}))


# --------------------------------------------------------------------------------------------
# Bernoulli images and saving
# --------------------------------------------------------------------------------------------


def test_component_images_show_p_ordered_by_weight(result_bern):
    fig = plotting.plot_component_images(result_bern)
    axes = [a for a in fig.axes if a.images]
    assert len(axes) == 3
    p = result_bern["em"]["p"].values
    w = result_bern["em"]["w"].values
    for ax, k in zip(axes, np.argsort(-w), strict=True):
        np.testing.assert_allclose(ax.images[0].get_array(), p[k].reshape(8, 8))
        assert ax.get_title() == f"k = {k}, w = {w[k]:.3f}"
    # posterior mean of aligned draws is close to the truth despite the switched chain
    fig = plotting.plot_component_images(result_bern, group="posterior")
    axes = [a for a in fig.axes if a.images]
    for ax, k in zip(axes, np.argsort(-w), strict=True):
        assert np.abs(ax.images[0].get_array() - p[k].reshape(8, 8)).max() < 0.1
    with pytest.raises(ParameterError, match="prod"):
        plotting.plot_component_images(result_bern, shape=(4, 4))
    with pytest.raises(ParameterError, match="group"):
        plotting.plot_component_images(result_bern, group="advi")


def test_generated_images_grid():
    X, z = sample_mixture(
        {"w": [0.5, 0.5], "p": np.full((2, 64), 0.3)},
        40,
        "bernoulli",
        rng=np.random.default_rng(0),
    )
    fig = plotting.plot_generated_images((X, z), n=10)
    shown = [a for a in fig.axes if a.get_visible()]
    assert len(shown) == 10
    assert [a.get_title() for a in shown] == [f"k = {k}" for k in z[:10]]
    np.testing.assert_array_equal(shown[3].images[0].get_array(), X[3].reshape(8, 8))
    with pytest.raises(ParameterError, match="prod"):
        plotting.plot_generated_images(X, shape=(3, 3))


def test_save_figure_is_atomic_and_overwrites(tmp_path, result_1d):
    fig = plotting.plot_density_1d(result_1d)
    target = tmp_path / "sub" / "dens.png"
    target.parent.mkdir()
    target.write_bytes(b"old")
    assert plotting.save_figure(fig, target) == target
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert os.listdir(target.parent) == ["dens.png"]  # no temporary file left behind

    class Broken(Figure):
        def savefig(self, *args, **kwargs):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        plotting.save_figure(Broken(), target)
    assert target.read_bytes()[:4] == b"\x89PNG"  # the old file survives a failed write
    assert os.listdir(target.parent) == ["dens.png"]


def test_component_colors_are_stable():
    assert plotting.component_colors(3) == plotting.component_colors(5)[:3]
    assert len(set(plotting.component_colors(8))) == 8
    assert len(plotting.component_colors(12)) == 12


# --------------------------------------------------------------------------------------------
# real fits: bayesmix.inference on the bundled data
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def faithful():
    from bayesmix.data import load_old_faithful

    return load_old_faithful()


def test_real_em_fit_1d_density_and_history(faithful, tmp_path):
    from bayesmix.config import ModelSpec
    from bayesmix.inference import fit_em

    res = fit_em(
        ModelSpec(n_components=2, covariance="diag"), faithful[["waiting"]], random_state=0
    )
    fig = plotting.plot_density_1d(res)
    grid, dens = _line(fig.axes[0], "density-point").get_data()
    em = res["em"]
    ref = sum(
        float(em["w"][k]) * norm(float(em["mu"][k, 0]), float(em["sigma"][k, 0])).pdf(grid)
        for k in range(2)
    )
    np.testing.assert_allclose(dens, ref, rtol=1e-10)
    assert np.trapezoid(dens, grid) == pytest.approx(1.0, abs=0.01)
    assert fig.axes[0].get_xlabel().endswith("(min)")
    _check_png(fig, tmp_path / "em_density.png")
    fig = plotting.plot_em_history(res)
    np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata(), em["lower_bounds"].values)
    _check_png(fig, tmp_path / "em_history.png")
    fig = plotting.plot_membership_uncertainty(res)
    _check_png(fig, tmp_path / "em_membership.png")


def test_real_bernoulli_em_images(tmp_path):
    from bayesmix.config import ModelSpec
    from bayesmix.data import load_digits
    from bayesmix.inference import fit_em, generate

    X, _ = load_digits()
    res = fit_em(ModelSpec(family="bernoulli", n_components=6), X[:300], random_state=0)
    fig = plotting.plot_component_images(res)
    w = res["em"]["w"].values
    k0 = int(np.argmax(w))
    first = next(a for a in fig.axes if a.images)
    np.testing.assert_allclose(
        first.images[0].get_array(), res["em"]["p"].values[k0].reshape(8, 8)
    )
    _check_png(fig, tmp_path / "components.png")
    fig = plotting.plot_generated_images(generate(res, 16, group="em", random_seed=0), n=16)
    assert len([a for a in fig.axes if a.get_visible()]) == 16
    _check_png(fig, tmp_path / "generated.png")


@pytest.fixture(scope="module")
def nuts_2d(faithful):
    from bayesmix.config import ModelSpec
    from bayesmix.inference import fit_em, sample_nuts, sample_posterior_predictive

    spec = ModelSpec(n_components=2, covariance="full")
    res = fit_em(spec, faithful, random_state=0)
    res = sample_nuts(
        spec, faithful, draws=200, tune=200, chains=2, random_seed=0, result=res, progressbar=False
    )
    return sample_posterior_predictive(res, random_seed=0)


@pytest.mark.slow
def test_real_nuts_fit_every_figure(nuts_2d, tmp_path):
    from bayesmix.inference import membership

    res = nuts_2d
    figs = {
        "clusters": plotting.plot_clusters_2d(res, n_ellipses=20),
        "density": plotting.plot_density_1d(res, feature="waiting"),
        "membership": plotting.plot_membership_uncertainty(res, n_draws=10_000),
        "trace": plotting.plot_trace(res),
        "rank": plotting.plot_rank(res, var_names=["mu"], relabel=True),
        "ppc": plotting.plot_ppc(res, n_draws=20),
        "em_history": plotting.plot_em_history(res),
    }
    for name, fig in figs.items():
        _check_png(fig, tmp_path / f"{name}.png")
    ax = figs["clusters"].axes[0]
    assert len(_ellipses(ax, "point-ellipse")) == 4
    assert len(_ellipses(ax, "posterior-ellipse")) == 40
    # the membership lines agree with bayesmix.inference.membership (another implementation)
    mean = membership(res)["mean"].transpose("obs_id", "component").values
    best = mean.argmax(1)
    ax = figs["membership"].axes[0]
    for k in range(2):
        ref = np.sort(mean[best == k, k])[::-1]
        np.testing.assert_allclose(_line(ax, f"membership-{k}").get_ydata(), ref, atol=1e-8)


def test_student_t_ellipses_are_named_scale_contours_not_sd():
    from bayesmix.config import ModelSpec
    from bayesmix.inference import fit_em

    rng = np.random.default_rng(4)
    X = np.concatenate([rng.standard_t(4, size=(60, 2)), rng.standard_t(4, size=(60, 2)) + 6])
    res = fit_em(ModelSpec(family="student_t", n_components=2, covariance="full"), X, n_init=1)
    ax = plotting.plot_clusters_2d(res).axes[0]
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "EM (MAP) scale x1" in texts or "EM (ML) scale x1" in texts
    assert not any(t.endswith(" sd") for t in texts)
    # the solid ellipse is the scale matrix's Mahalanobis-1 contour: its axes are the
    # square roots of the scale matrix's eigenvalues
    cov = res["em"]["cov"].values[0]
    ell = _ellipses(ax, "point-ellipse")[0]
    np.testing.assert_allclose(
        sorted([ell.width / 2, ell.height / 2]), np.sqrt(np.linalg.eigvalsh(cov)), rtol=1e-6
    )


def test_k_selection_draws_probabilities_over_k_as_bars():
    table = pd.DataFrame(
        {
            "covariance_type": ["full"] * 3 + ["diag"] * 3,
            "k": [1, 2, 3] * 2,
            "bic": [10.0, 8.0, 9.0, 11.0, 9.5, 9.0],
            "p_k": [0.1, 0.7, 0.2, 0.0, 0.3, 0.7],
            "p_k_se": [0.01] * 6,
            "p_kplus": [0.0, 0.9, 0.1, 0.05, 0.15, 0.8],
        }
    )
    table.attrs["recommended"] = {"bic": 2, "p_k": 2, "p_kplus": 2}
    table.attrs["recommended_covariance"] = {"bic": "full", "p_k": "full", "p_kplus": "full"}
    fig = plotting.plot_k_selection(table)
    by_title = {ax.get_title(): ax for ax in fig.axes}
    for crit, title in (("p_k", "p(K | y)"), ("p_kplus", "p(K+ | y), sparse mixture")):
        ax = by_title[title]
        bars = [p for p in ax.patches if p.get_gid() == f"bars-{crit}"]
        assert len(bars) == 6  # one per (covariance type, K)
        heights = sorted(round(b.get_height(), 6) for b in bars)
        assert heights == sorted(table[crit].round(6).tolist())
        # the two covariance types stand side by side around each K
        centres = sorted(b.get_x() + b.get_width() / 2 for b in bars)
        assert centres[0] < 1 < centres[1]
        assert ax.get_ylabel() == "probability"
