"""Figures for a researcher's own data: many features, far outliers, and the plot plan."""

import os
from itertools import permutations
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import arviz as az  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from sklearn.mixture import GaussianMixture  # noqa: E402
from test_plotting import _gm_point, _legend_texts, _tree  # noqa: E402

from bayesmix import plotting  # noqa: E402
from bayesmix._validation import ParameterError  # noqa: E402

FEATURES_6 = ["height", "weight", "age", "income", "score", "distance"]


def _fit_tree(X, features, k, covariance="diag", seed=0, **kw):
    gm = GaussianMixture(k, covariance_type=covariance, random_state=seed).fit(X)
    rng = np.random.default_rng(seed)
    return _tree(X, features, _gm_point(gm, covariance), "gaussian", covariance, rng, **kw)


@pytest.fixture(scope="module")
def result_6d():
    """K = 4 clusters in 6-D; only 'income' and 'distance' separate them (the rest is noise)."""
    rng = np.random.default_rng(10)
    n = 400
    z = rng.choice(4, size=n)
    X = rng.normal(size=(n, 6))
    X[:, 3] += np.array([-6.0, -6.0, 6.0, 6.0])[z]
    X[:, 5] += np.array([-6.0, 6.0, -6.0, 6.0])[z]
    return _fit_tree(X, FEATURES_6, 4)


def _panels(fig):
    return [a for a in fig.axes if a.get_visible()]


def _beyond(ax):
    return [c for c in ax.collections if c.get_gid() == "beyond-axes"]


# --------------------------------------------------------------------------------------------
# trace and rank plots with many parameters
# --------------------------------------------------------------------------------------------


def test_rank_of_6d_fit_fits_arviz_limit_and_says_what_it_shows(result_6d):
    # w (4) + mu and sigma of 6 features (48) = 52 panels: over ArviZ's limit of 40
    fig = plotting.plot_rank(result_6d)
    panels = _panels(fig)
    assert 4 < len(panels) <= az.rcParams["plot.max_subplots"]
    assert len(panels) == 4 * (1 + 2 * plotting.MAX_DIAGNOSTIC_FEATURES)
    title = fig.get_suptitle()
    assert "height, weight, age (3 of 6)" in title and "features=[...]" in title


def test_trace_of_chosen_features_and_variables(result_6d):
    fig = plotting.plot_trace(result_6d, var_names=["mu"], features=["score", "income"])
    ylabels = {a.get_ylabel() for a in _panels(fig)} - {""}
    assert ylabels == {"mu[score]", "mu[income]"}
    assert "score, income (2 of 6)" in fig.get_suptitle()
    # every feature asked for fits here (12 panels): none is dropped
    fig = plotting.plot_trace(result_6d, var_names=["mu"], features=FEATURES_6)
    assert {a.get_ylabel() for a in _panels(fig)} - {""} == {f"mu[{f}]" for f in FEATURES_6}
    assert "\n" not in fig.get_suptitle()  # nothing left out, no note
    with pytest.raises(ParameterError, match="unknown feature"):
        plotting.plot_rank(result_6d, features=["nope"])


def test_rank_never_exceeds_the_subplot_limit(result_6d):
    with az.rc_context({"plot.max_subplots": 10}):
        # 4 features asked: 4 (w) + 4 x 4 (mu) + ... -> one feature of mu only still needs 8
        fig = plotting.plot_rank(result_6d, features=["age", "score", "income", "height"])
        assert len(_panels(fig)) <= 10
        assert "mu/sigma of feature age (1 of 6)" in fig.get_suptitle()
        assert "the first 2 of 3 variables" in fig.get_suptitle()
        # more components than panels: the first ones are shown, and the title says so
        with az.rc_context({"plot.max_subplots": 3}):
            fig = plotting.plot_rank(result_6d, var_names=["w"])
            assert len(_panels(fig)) == 3
            assert "components 0-2 of 4" in fig.get_suptitle()


# --------------------------------------------------------------------------------------------
# clusters: the best-separated pair, chosen pairs, scatter matrices
# --------------------------------------------------------------------------------------------


def test_clusters_default_pair_is_the_separating_one(result_6d):
    fig = plotting.plot_clusters_2d(result_6d, n_ellipses=2)
    ax = fig.axes[0]
    X = result_6d["observed_data"]["x"].values
    np.testing.assert_allclose(ax.collections[0].get_offsets(), X[:, [3, 5]])
    assert ax.get_xlabel() == "income" and ax.get_ylabel() == "distance"
    assert "income and distance" in ax.get_title() and "overlap least" in ax.get_title()


def test_separating_pair_agrees_with_sklearn_accuracy():
    # reference: the pair on which a 2-feature GaussianMixture recovers the labels best
    rng = np.random.default_rng(3)
    n = 600
    z = rng.choice(3, size=n)
    # features 1, 2 and 3 each separate some components; (1, 3) and (1, 2) come close
    centres = np.array([[0, 0, 0, 0, 0], [0, 3.0, 0, 1.5, 0], [0, 0, 2.5, 3.0, 0]])
    X = centres[z] + rng.normal(size=(n, 5))
    gm = GaussianMixture(3, covariance_type="full", random_state=0).fit(X)
    params = {"w": gm.weights_, "mu": gm.means_, "cov": gm.covariances_}
    i, j = plotting.clusters_2d._separating_pair(params, 5)
    scores = {}
    for a in range(5):
        for b in range(a + 1, 5):
            sub = GaussianMixture(3, random_state=0, n_init=3).fit(X[:, [a, b]])
            pred = sub.predict(X[:, [a, b]])
            # best label matching by brute force over the 6 permutations

            scores[(a, b)] = max(np.mean(np.array(p)[pred] == z) for p in permutations(range(3)))
    assert (i, j) == max(scores, key=scores.get) == (1, 3)


def test_clusters_scatter_matrix_of_three_features(result_6d):
    X = result_6d["observed_data"]["x"].values
    fig = plotting.plot_clusters_2d(
        result_6d, features=["age", "income", "distance"], n_ellipses=1
    )
    axs = np.array(fig.axes).reshape(3, 3)
    for r, row_f in enumerate([2, 3, 5]):
        for c, col_f in enumerate([2, 3, 5]):
            ax = axs[r, c]
            if c > r:
                assert not ax.axison and not ax.collections  # upper triangle left empty
            elif c == r:
                assert ax.patches and ax.get_title() == FEATURES_6[col_f]  # histogram
            else:
                np.testing.assert_allclose(ax.collections[0].get_offsets(), X[:, [col_f, row_f]])
                assert len([p for p in ax.patches if p.get_gid() == "point-ellipse"]) == 8
    assert "scatter matrix of age, income, distance" in fig.get_suptitle()
    with pytest.raises(ParameterError, match="2 to 4 features"):
        plotting.plot_clusters_2d(result_6d, features=FEATURES_6[:5])
    with pytest.raises(ParameterError, match="no ax"):
        plotting.plot_clusters_2d(result_6d, features=FEATURES_6[:3], ax=fig.axes[0])
    with pytest.raises(ParameterError, match="repeated feature"):
        plotting.plot_clusters_2d(result_6d, features=["age", "age"])


def test_membership_uncertainty_of_6d_fit(result_6d):
    fig = plotting.plot_membership_uncertainty(result_6d)
    ax = fig.axes[0]
    lines = [ln for ln in ax.lines if str(ln.get_gid()).startswith("membership-")]
    assert len(lines) == 4
    assert sum(len(ln.get_ydata()) for ln in lines) == 400


# --------------------------------------------------------------------------------------------
# posterior predictive check of chosen features
# --------------------------------------------------------------------------------------------


def test_ppc_of_chosen_features(result_6d):
    fig = plotting.plot_ppc(result_6d, n_draws=3, features=["distance", "age"])
    panels = _panels(fig)
    assert [a.get_xlabel() for a in panels] == ["distance", "age"]
    assert "distance, age (2 of 6)" in fig.get_suptitle()
    fig = plotting.plot_ppc(result_6d, n_draws=3, max_features=4)
    assert [a.get_xlabel() for a in _panels(fig)] == FEATURES_6[:4]
    fig = plotting.plot_ppc(result_6d, n_draws=3)
    assert len(_panels(fig)) == 6 and "\n" not in fig.get_suptitle()


# --------------------------------------------------------------------------------------------
# robust axes: a point at 1e4 must not squash clusters near 0..10
# --------------------------------------------------------------------------------------------


def _outlier_data(dim, outlier=True, seed=0):
    rng = np.random.default_rng(seed)
    n = 300
    z = rng.choice(2, size=n)
    X = np.where(z[:, None] == 0, 2.0, 8.0) + 0.8 * rng.normal(size=(n, dim))
    if outlier:
        X[0, 0] = 1e4
    return X


def _check_limits(lim, X, outlier):
    lo, hi = lim
    if outlier:
        bulk = np.delete(X, 0)
        span = bulk.max() - bulk.min()
        assert bulk.min() - span < lo <= bulk.min() and bulk.max() <= hi < bulk.max() + span
    else:
        assert lo <= X.min() and hi >= X.max()


@pytest.fixture(scope="module")
def outlier_trees():
    trees = {}
    for dim in (1, 2):
        for out in (True, False):
            X = _outlier_data(dim, out)
            # the point estimate: EM on the data without the outlier (the plot is what we test)
            gm = GaussianMixture(2, covariance_type="full", random_state=0).fit(X[1:])
            point = _gm_point(gm, "full")
            if dim == 1:
                point = {
                    "w": point["w"],
                    "mu": point["mu"],
                    "sigma": np.sqrt(point["cov"][..., 0]),
                }
            feats = ["u", "v"][:dim]
            trees[dim, out] = _tree(
                X, feats, point, "gaussian", "full", np.random.default_rng(1), with_map=False
            )
    return trees


@pytest.mark.parametrize("outlier", [True, False])
def test_density_axis_follows_the_bulk(outlier_trees, outlier):
    res = outlier_trees[1, outlier]
    X = res["observed_data"]["x"].values[:, 0]
    ax = plotting.plot_density_1d(res).axes[0]
    _check_limits(ax.get_xlim(), X, outlier)
    assert len(_beyond(ax)) == int(outlier)
    legend = " ".join(_legend_texts(ax))
    assert ("1 point beyond the axes" in legend) == outlier
    if outlier:  # the marker sits at the right edge
        x_edge = _beyond(ax)[0].get_offsets()[0, 0]
        assert ax.get_xlim()[0] < x_edge <= ax.get_xlim()[1]
        # the histogram keeps its density scale: bars hold the 299 of 300 points shown
        area = sum(p.get_width() * p.get_height() for p in ax.patches)
        assert area == pytest.approx(299 / 300, rel=1e-9)


@pytest.mark.parametrize("outlier", [True, False])
def test_clusters_axes_follow_the_bulk(outlier_trees, outlier):
    res = outlier_trees[2, outlier]
    X = res["observed_data"]["x"].values
    ax = plotting.plot_clusters_2d(res, n_ellipses=3).axes[0]
    _check_limits(ax.get_xlim(), X[:, 0], outlier)
    _check_limits(ax.get_ylim(), X[:, 1], False)
    marks = _beyond(ax)
    assert len(marks) == int(outlier)
    if outlier:
        assert marks[0].get_offsets()[0, 1] == pytest.approx(X[0, 1])  # y kept, x at the edge
        assert any("1 point beyond the axes" in t for t in _legend_texts(ax))


@pytest.mark.parametrize("outlier", [True, False])
def test_membership_and_ppc_axes_follow_the_bulk(outlier_trees, outlier):
    res = outlier_trees[1, outlier]
    X = res["observed_data"]["x"].values[:, 0]
    ax = plotting.plot_membership_uncertainty(res).axes[0]
    _check_limits(ax.get_xlim(), X, outlier)
    assert len(_beyond(ax)) == int(outlier)
    ax = plotting.plot_ppc(res, n_draws=5).axes[0]
    _check_limits(ax.get_xlim(), X, outlier)
    assert len(_beyond(ax)) == int(outlier)
    observed = next(ln for ln in ax.lines if ln.get_gid() == "ppc-observed")
    grid, dens = observed.get_data()
    # the observed KDE is not flattened by the far point: its peak is that of the bulk
    from scipy.stats import gaussian_kde

    bulk = X[1:] if outlier else X
    peak = gaussian_kde(bulk)(grid).max() * len(bulk) / len(X)
    assert dens.max() == pytest.approx(peak, rel=1e-9)


# --------------------------------------------------------------------------------------------
# the plot plan and writing every plot
# --------------------------------------------------------------------------------------------


def test_plot_plan_names(result_6d, outlier_trees):
    from test_plotting import _tree as tree_of

    names = [n for n, _ in plotting.plot_plan(result_6d)]
    assert names == [
        "clusters_2d",
        "membership_uncertainty",
        "em_history",
        "trace",
        "rank",
        "coclustering",
        "ppc",
    ]
    one = [n for n, _ in plotting.plot_plan(outlier_trees[1, True])]
    assert one[0] == "density_1d"
    # one chain: no rank plot (it compares chains; ArviZ refuses it), the trace stays
    single = result_6d.copy()
    single["posterior"] = result_6d["posterior"].to_dataset().isel(chain=[0])
    names_1 = [n for n, _ in plotting.plot_plan(single)]
    assert "trace" in names_1 and "rank" not in names_1
    # one chosen feature of wide data: its density instead of a pair
    assert plotting.plot_plan(result_6d, features=["age"])[0][0] == "density_1d"
    with pytest.raises(ParameterError, match="unknown feature"):
        plotting.plot_plan(result_6d, features=["age", "nope"])
    rng = np.random.default_rng(0)
    p = np.full((2, 16), 0.2)
    X = (rng.random((40, 16)) < 0.3).astype(float)
    bern = tree_of(
        X,
        [f"x{i}" for i in range(16)],
        {"w": np.array([0.5, 0.5]), "p": p},
        "bernoulli",
        None,
        rng,
        predictive=False,
    )
    assert [n for n, _ in plotting.plot_plan(bern)] == [
        "component_images",
        "generated_images",
        "em_history",
        "trace",
        "rank",
        "coclustering",
    ]


def test_write_plots_reports_failures_and_keeps_going(result_6d, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("no\nluck  here")

    monkeypatch.setattr(plotting.plan, "plot_rank", broken)
    old = os.umask(0o022)
    try:
        written, failed = plotting.write_plots(result_6d, tmp_path / "plots")
    finally:
        os.umask(old)
    assert list(written) == [
        "clusters_2d",
        "membership_uncertainty",
        "em_history",
        "trace",
        "coclustering",
        "ppc",
    ]
    assert failed == {"rank": "ValueError: no luck here"}
    for name, path in written.items():
        assert path == tmp_path / "plots" / f"{name}.png"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert path.stat().st_mode & 0o777 == 0o644  # not mkstemp's 0o600
    assert sorted(os.listdir(tmp_path / "plots")) == sorted(f"{n}.png" for n in written)
    with pytest.raises(ValueError, match="luck"):
        plotting.write_plots(result_6d, tmp_path / "again", raise_errors=True)


def test_save_figure_gives_the_usual_permissions(result_6d, tmp_path):
    fig = plotting.plot_membership_uncertainty(result_6d)
    for umask, mode in ((0o022, 0o644), (0o077, 0o600), (0o002, 0o664)):
        old = os.umask(umask)
        try:
            path = plotting.save_figure(fig, tmp_path / f"m{umask:o}.png")
        finally:
            os.umask(old)
        assert path.stat().st_mode & 0o777 == mode


def test_figures_say_how_to_choose_in_the_callers_words(result_6d, tmp_path, monkeypatch):
    """A CLI user is told '--features', a Python user 'features=[...]' (issue 12 item 10)."""
    import bayesmix.plotting as plotting

    titles: dict[str, str] = {}
    real = plotting.save_figure

    def keep_titles(fig, path, **kw):
        texts = [fig._suptitle.get_text()] if fig._suptitle is not None else []
        texts += [ax.get_title() for ax in fig.axes]
        titles[Path(path).stem] = " ".join(texts)
        return real(fig, path, **kw)

    monkeypatch.setattr(plotting.plan, "save_figure", keep_titles)
    for hints, expected, absent in (
        ("cli", "--features", "features=["),
        ("python", "features=[", "--features"),
    ):
        titles.clear()
        written, failed = plotting.write_plots(result_6d, tmp_path / hints, hints=hints)
        assert not failed and set(titles) == set(written), (failed, sorted(titles))
        said = " ".join(titles[n] for n in ("clusters_2d", "ppc", "rank"))
        assert expected in said and absent not in said, said
    with pytest.raises(ParameterError, match="hints must be"):
        plotting.write_plots(result_6d, tmp_path / "x", hints="r")
