"""``bayesmix fit / show / sample`` end to end, checked against independent references."""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from scipy.special import logsumexp
from scipy.stats import dirichlet, multivariate_normal, norm
from sklearn.mixture import GaussianMixture

from bayesmix import _math
from bayesmix.config import RunSpec, load_spec, resolve_priors, spec_from_dict
from bayesmix.data import load_table
from bayesmix.em import GaussianMixtureEM
from bayesmix.em.selection import MCLUST_MODELS
from bayesmix.families import get_family
from bayesmix.inference import em_prior
from bayesmix.inference._fit import em_estimator
from bayesmix.inference._tree import group_arrays
from bayesmix.results.io import load

from .conftest import MODELS, run_cli

FAITHFUL = load_table("builtin:old_faithful")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _point(result, group: str) -> dict[str, np.ndarray]:
    ds = result[group].to_dataset()
    out = {"w": ds["w"].transpose("component").values}
    if "p" in ds:
        out["p"] = ds["p"].transpose("component", "feature").values
        return out
    out["mu"] = ds["mu"].transpose("component", "feature").values
    if "cov" in ds:
        out["cov"] = ds["cov"].transpose("component", "feature", "feature_bis").values
    else:
        out["cov"] = np.stack(
            [np.diag(s**2) for s in ds["sigma"].transpose("component", "feature").values]
        )
    return out


def _loglik(params: dict[str, np.ndarray], X: np.ndarray) -> float:
    """Mean log-likelihood per observation of a mixture, computed with SciPy / NumPy."""
    if "p" in params:
        p = np.clip(params["p"], 1e-12, 1 - 1e-12)
        comp = X @ np.log(p).T + (1 - X) @ np.log1p(-p).T
    elif X.shape[1] == 1:
        comp = np.stack(
            [
                norm(m[0], np.sqrt(c[0, 0])).logpdf(X[:, 0])
                for m, c in zip(params["mu"], params["cov"], strict=True)
            ],
            axis=1,
        )
    else:
        comp = np.stack(
            [
                multivariate_normal(m, c).logpdf(X)
                for m, c in zip(params["mu"], params["cov"], strict=True)
            ],
            axis=1,
        )
    return float(logsumexp(comp + np.log(params["w"]), axis=1).mean())


def _check_pngs(folder: Path, names: list[str]) -> None:
    for name in names:
        path = folder / f"{name}.png"
        assert path.read_bytes()[:8] == PNG_MAGIC, name
        img = mpimg.imread(path)
        assert img.shape[0] > 100 and img.shape[1] > 100, name
        assert float(np.std(img[..., :3])) > 0.01, f"{name} is blank"


def _check_report(folder: Path) -> None:
    text = (folder / "report.html").read_text(encoding="utf-8")
    n_png = len(list(folder.glob("*.png")))
    assert text.count('<img src="data:image/png;base64,') == n_png
    assert "http://" not in text and "https://" not in text


# --------------------------------------------------------------------------------------------
# EM only (fast, no PyMC compile)


def test_em_run_outputs(em_run):
    names = sorted(p.name for p in em_run.iterdir())
    assert names == sorted(
        [
            "result.nc",
            "summary.csv",
            "membership.csv",
            "report.html",
            "clusters_2d.png",
            "membership_uncertainty.png",
            "em_history.png",
        ]
    )
    assert not any(p.name.startswith(".") for p in em_run.parent.iterdir())
    _check_pngs(em_run, ["clusters_2d", "membership_uncertainty", "em_history"])
    _check_report(em_run)


def test_em_run_matches_sklearn(em_run):
    """The CLI's EM is MAP-EM: checked against the same objective maximised independently.

    The reference starts from scikit-learn's maximum-likelihood fit and runs
    :class:`~bayesmix.em.GaussianMixtureEM` with the run's own priors (``em_prior`` of the
    stored spec, as ``fit_em`` does) to ``tol=1e-13``. Its objective is checked against a SciPy
    log posterior, and the CLI's answer must beat the ML point on that log posterior while
    staying below it on the likelihood (the means differ from ML by ~1.6e-4 relative, ten
    times the tolerance used on them here).
    """
    result = load(em_run / "result.nc")
    assert "posterior" not in result.children and "em" in result.children
    assert result["em"].attrs["method"] == "map"
    model = spec_from_dict(json.loads(result.attrs["spec"])).model
    X = FAITHFUL.to_numpy(float)
    n = X.shape[0]
    priors = resolve_priors(model, X)
    gm = GaussianMixture(
        2, covariance_type="full", n_init=5, random_state=0, tol=1e-12, max_iter=10_000
    ).fit(X)
    ref_est = GaussianMixtureEM(
        2,
        covariance_type="full",
        prior=em_prior(model, priors, 2),
        reg_covar=1e-6,
        tol=1e-13,
        max_iter=100_000,
        weights_init=gm.weights_,
        means_init=gm.means_,
        precisions_init=gm.precisions_,
    ).fit(X)
    assert ref_est.converged_

    def log_posterior(p):
        return (
            n * _loglik(p, X)
            + norm.logpdf(p["mu"], priors["mu_loc"], priors["mu_scale"]).sum()
            + dirichlet(priors["weights_alpha"]).logpdf(p["w"])
        )

    ref = {"w": ref_est.weights_, "mu": ref_est.means_, "cov": ref_est.covariances_}
    ml = {"w": gm.weights_, "mu": gm.means_, "cov": gm.covariances_}
    # the reference's objective is this log posterior (per observation, constants included)
    assert log_posterior(ref) / n == pytest.approx(ref_est.lower_bound_, abs=1e-10)
    ours = _point(result, "em")
    order = np.argsort(ours["mu"][:, 0])
    ours = {k: v[order] for k, v in ours.items()}
    ref_order = np.argsort(ref["mu"][:, 0])
    ref = {k: v[ref_order] for k, v in ref.items()}
    # the CLI stops at tol=1e-6 on the objective: parameters agree to ~1e-5 (covariances 1e-4)
    np.testing.assert_allclose(ours["w"], ref["w"], rtol=5e-5)
    np.testing.assert_allclose(ours["mu"], ref["mu"], rtol=2e-5)
    np.testing.assert_allclose(ours["cov"], ref["cov"], rtol=5e-4)
    assert log_posterior(ours) == pytest.approx(log_posterior(ref), abs=1e-5)
    # a MAP fit, not an ML one: higher posterior, lower likelihood than scikit-learn's ML point
    assert log_posterior(ours) > log_posterior(ml) + 1e-4
    assert _loglik(ours, X) < gm.score(X)
    assert _loglik(ours, X) == pytest.approx(gm.score(X), abs=1e-5)


def test_em_summary_csv_matches_result(em_run):
    table = pd.read_csv(em_run / "summary.csv")
    result = load(em_run / "result.nc")
    w = table[table["parameter"] == "w"].sort_values("component")
    np.testing.assert_allclose(w["em"], result["em"]["w"].values, rtol=1e-9)
    assert w["em"].sum() == pytest.approx(1.0)
    mu = table[table["parameter"] == "mu"]
    for _, row in mu.iterrows():
        expected = result["em"]["mu"].sel(component=row["component"], feature=row["feature"])
        assert row["em"] == pytest.approx(float(expected), rel=1e-9)
    # symmetric matrices listed once (lower triangle)
    assert len(table[table["parameter"] == "cov"]) == 2 * 3
    assert len(table[table["parameter"] == "corr"]) == 2 * 1


def test_show(em_run):
    code, stdout, stderr = run_cli(["show", em_run / "result.nc"])
    assert code == 0, stderr
    assert "gaussian mixture, K=2" in stdout
    assert "eruptions" in stdout and "waiting" in stdout
    assert "EM" in stdout and "converged" in stdout


def test_sample_csv(em_run, tmp_path):
    out = tmp_path / "new.csv"
    code, stdout, stderr = run_cli(
        ["sample", em_run / "result.nc", "-n", "400", "--seed", "1", "--out", out]
    )
    assert code == 0, stderr
    assert "400 rows" in stdout
    df = pd.read_csv(out)
    assert list(df.columns) == ["eruptions", "waiting", "component"]
    assert len(df) == 400 and set(df["component"]) <= {0, 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.csv"]  # no temporary left
    params = _point(load(em_run / "result.nc"), "em")
    for k in (0, 1):  # component frequencies and means agree with the fitted parameters
        sub = df[df["component"] == k]
        se = np.sqrt(params["w"][k] * (1 - params["w"][k]) / 400)
        assert abs(len(sub) / 400 - params["w"][k]) < 4 * se
        sd = np.sqrt(np.diag(params["cov"][k]))
        np.testing.assert_array_less(
            np.abs(sub[["eruptions", "waiting"]].mean().to_numpy() - params["mu"][k]),
            4 * sd / np.sqrt(len(sub)),
        )
    # same seed, same data; another seed, other data; stdout when no --out
    code, stdout, _ = run_cli(["sample", em_run / "result.nc", "-n", "400", "--seed", "1"])
    assert code == 0
    pd.testing.assert_frame_equal(pd.read_csv(io.StringIO(stdout)), df)
    code, stdout, _ = run_cli(["sample", em_run / "result.nc", "-n", "400", "--seed", "2"])
    assert not pd.read_csv(io.StringIO(stdout)).equals(df)


def test_force_replaces_only_when_complete(em_run, tmp_path):
    out = tmp_path / "runs" / "again"
    shutil.copytree(em_run, out)
    (out / "old_marker.txt").write_text("from the old run")
    code, stdout, stderr = run_cli(
        ["fit", "--methods", "em", "--seed", "5", "--force", "--quiet", "--out", out]
    )
    assert code == 0, stderr
    assert not (out / "old_marker.txt").exists()
    assert load(out / "result.nc").attrs["seed"] == 5
    assert sorted(p.name for p in out.parent.iterdir()) == ["again"]
    assert f"wrote {out}" in stdout


def test_default_spec_is_the_main_job():
    spec = load_spec(MODELS / "old_faithful_2d.toml")
    default = RunSpec()
    assert spec.model == default.model
    assert (spec.model.family, spec.model.n_components, spec.model.covariance) == (
        "gaussian",
        2,
        "full",
    )
    assert dataclasses.replace(spec.fit, seed=0) == default.fit
    assert default.fit.methods == ("em", "map", "nuts")
    assert (default.fit.chains, default.fit.draws) == (4, 1000)
    assert (
        list(default.data.load().columns)
        == list(spec.data.load().columns)
        == ["eruptions", "waiting"]
    )


# --------------------------------------------------------------------------------------------
# the main job with NUTS (few draws)


def test_main_job_outputs(main_run):
    out, stdout = main_run
    assert out.is_dir()
    expected = [
        "clusters_2d",
        "membership_uncertainty",
        "em_history",
        "trace",
        "rank",
        "coclustering",
        "ppc",
    ]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [
            "result.nc",
            "summary.csv",
            "membership.csv",
            "report.html",
            *(f"{n}.png" for n in expected),
        ]
    )
    _check_pngs(out, expected)
    _check_report(out)
    assert f"wrote {Path('runs') / 'old_faithful_2d'}" in stdout
    assert "r_hat" in stdout


def test_main_job_label_free_clusters(main_run):
    """membership.csv's `cluster` (the VI point partition) groups the rows as the components
    do on these well-separated data; the terminal and the report say how many clusters."""
    from sklearn.metrics import adjusted_rand_score

    out, stdout = main_run
    member = pd.read_csv(out / "membership.csv")
    assert adjusted_rand_score(member["component"], member["cluster"]) == 1.0
    sizes = np.bincount(member["cluster"])
    assert sizes.tolist() == sorted(sizes.tolist(), reverse=True)  # labels by size
    line = f"2 cluster(s) of {sizes[0]}, {sizes[1]} observations"
    assert line in stdout and "filled components K+" in stdout
    report = (out / "report.html").read_text()
    assert 'id="clusters"' in report and line in report


def test_main_job_result(main_run):
    out, _ = main_run
    result = load(out / "result.nc")
    assert {
        "posterior",
        "em",
        "map",
        "observed_data",
        "posterior_predictive",
    } <= set(result.children)
    assert "log_likelihood" not in result.children  # computed on demand (select.loo)
    assert "PSIS-LOO: " in (out / "report.html").read_text()
    post = result["posterior"]
    assert (post.sizes["chain"], post.sizes["draw"]) == (2, 100)
    table = pd.read_csv(out / "summary.csv")
    assert {"parameter", "component", "em", "map", "mean", "sd", "r_hat"} <= set(table.columns)
    # the posterior mean (labels aligned to EM) is close to the EM and MAP estimates
    w = table[table["parameter"] == "w"].sort_values("component")
    np.testing.assert_allclose(w["mean"], w["em"], atol=0.05)
    np.testing.assert_allclose(w["map"], w["em"], atol=0.01)
    mu = table[table["parameter"] == "mu"]
    np.testing.assert_allclose(mu["mean"], mu["em"], rtol=0.03)
    # and the MAP log-likelihood is close to scikit-learn's maximum
    X = FAITHFUL.to_numpy(float)
    gm = GaussianMixture(2, covariance_type="full", n_init=5, random_state=0).fit(X)
    assert _loglik(_point(result, "map"), X) == pytest.approx(gm.score(X), abs=0.01)


def test_main_job_sample_and_show(main_run, tmp_path):
    out, _ = main_run
    code, stdout, stderr = run_cli(["show", out / "result.nc"])
    assert code == 0, stderr
    assert "r_hat" in stdout and "groups:" in stdout
    code, _, stderr = run_cli(
        ["sample", out / "result.nc", "-n", "50", "--out", tmp_path / "s.csv"]
    )
    assert code == 0, stderr
    assert pd.read_csv(tmp_path / "s.csv").shape == (50, 3)


# --------------------------------------------------------------------------------------------
# every spec in models/ (few draws)

SPECS = sorted(MODELS.glob("*.toml"))
SPEC_PLOTS = {
    "gaussian1": ["density_1d", "membership_uncertainty", "em_history"],
    "gaussian2": ["clusters_2d", "membership_uncertainty", "em_history"],
    "bernoulli": ["component_images", "generated_images", "em_history"],
    "poisson": ["counts", "em_history"],
    "categorical": ["item_profiles", "em_history"],
    "student_t1": ["density_1d", "em_history"],
    "student_t2": ["clusters_2d", "em_history"],
}


# MAP of the 649-parameter digits model takes minutes (four L-BFGS starts): the spec's EM
# runs here, the Bernoulli MAP is tested on smaller data in tests/inference
SPEC_METHODS = {"digits": ("em",)}


def test_specs_found():
    assert {p.stem for p in SPECS} >= {
        "old_faithful_1d",
        "old_faithful_2d",
        "heights",
        "returns",
        "digits",
        "low_dim_gauss_mix",
    }


@pytest.mark.parametrize(
    "spec_path",
    [
        pytest.param(p, id=p.stem, marks=[] if p.stem == "old_faithful_2d" else [pytest.mark.slow])
        for p in SPECS
    ],
)
def test_spec_runs(spec_path, tmp_path):
    spec = load_spec(spec_path)
    out = tmp_path / spec.name
    methods = SPEC_METHODS.get(spec.name, spec.fit.methods)
    code, stdout, stderr = run_cli(
        [
            "fit",
            spec_path,
            "--draws",
            "50",
            "--tune",
            "50",
            "--chains",
            "2",
            "--methods",
            ",".join(methods),
            "--quiet",
            "--out",
            out,
        ]
    )
    assert code == 0, stderr
    result = load(out / "result.nc")
    assert set(methods) <= set(result.children) | {"nuts"}
    assert ("posterior" in result.children) == ("nuts" in methods)
    table = pd.read_csv(out / "summary.csv")
    assert len(table) > 0 and "parameter" in table.columns
    n_features = result["observed_data"].sizes["feature"]
    kind = spec.model.family
    if kind not in SPEC_PLOTS:
        kind += "1" if n_features == 1 else "2"
    _check_pngs(out, SPEC_PLOTS[kind])
    if "posterior" in result.children:
        _check_pngs(out, ["trace", "rank", "coclustering", "ppc"])
        # free hyper-parameters (e.g. the galaxy spec's variance_beta) are kept in the results
        from bayesmix.graphs import hyper_variables

        for name, dims in hyper_variables(spec.model, n_features).items():
            for group in ("posterior", "map"):
                if group in result.children:
                    da = result[group][name]
                    assert da.dims[da.ndim - len(dims) :] == dims
                    assert np.all(np.asarray(result[group][name]) > 0), (group, name)
    _check_report(out)

    # new data from the fit: the features plus the component
    code, _, stderr = run_cli(
        ["sample", out / "result.nc", "-n", "30", "--seed", "0", "--out", tmp_path / "new.csv"]
    )
    assert code == 0, stderr
    new = pd.read_csv(tmp_path / "new.csv")
    text = get_family(spec.model.family).text_features
    assert list(new.columns) == [*spec.data.load(text=text).columns, "component"]
    assert len(new) == 30 and new["component"].between(0, spec.model.n_components - 1).all()
    if kind == "bernoulli":
        assert set(np.unique(new.drop(columns="component").to_numpy())) <= {0, 1}

    X = np.asarray(result["observed_data"]["x"].values, dtype=float)
    if kind not in ("bernoulli", "gaussian1", "gaussian2"):
        # other families: EM's mixture beats the one-component fit of the same family
        em_w = result["em"]["w"].values
        assert em_w.sum() == pytest.approx(1.0)
        one_spec = dataclasses.replace(spec.model, n_components=1)
        one = em_estimator(one_spec, X.shape[1], None, random_state=0).fit(X).score(X)
        mixed = _math.mixture_log_density(X, group_arrays(result["em"]), spec.model.family)
        assert mixed.mean() > one
        return
    em = _point(result, "em")
    assert em["w"].sum() == pytest.approx(1.0)
    if kind == "bernoulli":
        # ten components explain the images much better than one product of Bernoullis
        p1 = np.clip(X.mean(axis=0, keepdims=True), 1e-12, 1 - 1e-12)
        one = _loglik({"w": np.ones(1), "p": p1}, X)
        assert _loglik(em, X) > one + 5.0
        assert np.all((em["p"] >= 0) & (em["p"] <= 1))
    else:
        # the EM solution is as good as scikit-learn's maximum likelihood (priors are weak)
        cov = "full" if spec.model.covariance == "full" else "diag"
        gm = GaussianMixture(
            spec.model.n_components, covariance_type=cov, n_init=5, random_state=0
        ).fit(X)
        assert _loglik(em, X) == pytest.approx(gm.score(X), abs=0.02)
        if spec.model.ordered:
            assert np.all(np.diff(em["mu"][:, 0]) > 0)


# --------------------------------------------------------------------------------------------
# bayesmix select


@pytest.mark.parametrize("ks", ["1..3", "3,1,2"])
def test_select(tmp_path, ks):
    out = tmp_path / "sel"
    code, stdout, stderr = run_cli(
        ["select", MODELS / "old_faithful_2d.toml", "--k", ks, "--quiet", "--out", out]
    )
    assert code == 0, stderr
    assert sorted(p.name for p in out.iterdir()) == ["k_selection.csv", "k_selection.png"]
    _check_pngs(out, ["k_selection"])
    table = pd.read_csv(out / "k_selection.csv")
    assert list(table["k"]) == [1, 2, 3]
    assert "recommended K: bic 2" in stdout
    # K = 1 is one Gaussian: its maximum log-likelihood has a closed form
    X = FAITHFUL.to_numpy(float)
    ll1 = multivariate_normal(X.mean(0), np.cov(X.T, ddof=0)).logpdf(X).sum()
    assert table.loc[table["k"] == 1, "log_likelihood"].item() == pytest.approx(ll1, rel=1e-6)
    bic = table.set_index("k")["bic"]
    assert bic.idxmin() == 2


def test_select_mclust_models(tmp_path):
    """--covariance all: mclust's 14 models from mclust's start, its table and its choice."""
    out = tmp_path / "sel"
    code, stdout, stderr = run_cli(
        ["select", MODELS / "old_faithful_2d.toml", "--k", "1..4", "--covariance", "all",
         "--quiet", "--out", out]
    )  # fmt: skip
    assert code == 0, stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == ["bic_table.csv", "icl_table.csv", "k_selection.csv", "k_selection.png"]
    _check_pngs(out, ["k_selection"])
    bic = pd.read_csv(out / "bic_table.csv").set_index("k")
    assert list(bic.columns) == list(MCLUST_MODELS) and list(bic.index) == [1, 2, 3, 4]
    # mclust's published choice (Fraley & Raftery): EEE with 3 components, BIC -2314.3
    assert bic.stack().idxmax() == (3, "EEE")
    assert bic.loc[3, "EEE"] == pytest.approx(-2314.316, abs=0.05)
    long = pd.read_csv(out / "k_selection.csv")
    row = long[(long["k"] == 3) & (long["covariance_type"] == "EEE")]
    assert bic.loc[3, "EEE"] == pytest.approx(-row["bic"].item())  # mclust's sign
    assert "top 3 by BIC: EEE,3" in stdout
    assert "chosen by BIC, fitted again: EEE, K=3" in stdout
    # --bayesian has only the graph's four models: a clear error in the CLI's words
    code, _, stderr = run_cli(
        ["select", MODELS / "old_faithful_2d.toml", "--k", "1..2", "--covariance", "VEV",
         "--bayesian", "--out", tmp_path / "b"]
    )  # fmt: skip
    assert code == 2 and "--covariance VEV with --bayesian" in stderr
    assert "Traceback" not in stderr
    code, _, stderr = run_cli(
        ["select", MODELS / "old_faithful_2d.toml", "--covariance", "VXV", "--out",
         tmp_path / "c"]
    )  # fmt: skip
    assert code == 2 and "--covariance: unknown value 'VXV'" in stderr


def test_bernoulli_csv_em(tmp_path):
    """A Bernoulli mixture from a CSV of 4x4 binary images: truth recovered, images drawn."""
    from bayesmix.data import make_bernoulli_mixture

    X, z, truth = make_bernoulli_mixture(600, 2, 16, random_state=np.random.default_rng(5))
    data = tmp_path / "bits.csv"
    pd.DataFrame(X.astype(int), columns=[f"b{j}" for j in range(16)]).to_csv(data, index=False)
    out = tmp_path / "bits"
    code, stdout, stderr = run_cli(
        [
            "fit",
            "--data",
            data,
            "--family",
            "bernoulli",
            "-k",
            "2",
            "--methods",
            "em",
            "--quiet",
            "--out",
            out,
        ]
    )
    assert code == 0, stderr
    assert "bernoulli mixture, K=2, methods=em" in stdout
    _check_pngs(out, ["component_images", "generated_images", "em_history"])
    _check_report(out)
    em = _point(load(out / "result.nc"), "em")
    # match labels by the closest probability vectors, then compare with the truth
    d = ((em["p"][:, None, :] - truth["p"][None]) ** 2).sum(-1)
    perm = np.argmin(d, axis=1)
    assert sorted(perm) == [0, 1]
    np.testing.assert_allclose(em["p"], truth["p"][perm], atol=0.12)
    np.testing.assert_allclose(em["w"], truth["w"][perm], atol=0.06)
