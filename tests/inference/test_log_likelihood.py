"""Results that do not grow with the draws (issue 12, item 17).

The pointwise log-likelihood is computed on demand (and is the same as the stored group),
PSIS-LOO a block of observations at a time gives ``az.loo``'s numbers, the posterior
predictive keeps ``[fit] ppc_draws`` replicates, and a saved and loaded result still serves
membership, LOO, the comparison table, new data and the PPC plot.
"""

import warnings

import arviz as az
import numpy as np
import pytest
import xarray as xr
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from bayesmix._validation import ParameterError, SpecError
from bayesmix.config import FitSpec, RunSpec, spec_from_dict
from bayesmix.families import get_family
from bayesmix.inference import (
    _fit,
    generate,
    log_likelihood,
    membership,
    sample_nuts,
    sample_posterior_predictive,
)
from bayesmix.results import compare_estimates, load, save
from bayesmix.results.select import loo

from .conftest import FULL2

FEATURES = ["eruptions", "waiting"]


@pytest.fixture(scope="module")
def stored(faithful):
    """A small NUTS fit that stores its log-likelihood (sample_nuts' default)."""
    return sample_nuts(FULL2, faithful[FEATURES], draws=150, tune=150, chains=2, random_seed=4)


def _az_loo(tree):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return az.loo(tree, pointwise=True)


def test_log_likelihood_on_demand_matches_scipy_and_the_stored_group(stored, faithful):
    assert "log_likelihood" in stored.children
    bare = stored.copy()
    del bare["log_likelihood"]
    ll = log_likelihood(bare)["x"]
    assert ll.dims == ("chain", "draw", "obs_id") and ll.shape == (2, 150, 272)
    assert "log_likelihood" not in bare.children  # store=False leaves the tree alone
    np.testing.assert_array_equal(ll.values, stored["log_likelihood"]["x"].values)
    np.testing.assert_array_equal(ll["obs_id"].values, np.arange(272))
    # brute force with SciPy at a few draws
    X = faithful[FEATURES].to_numpy()
    post = stored["posterior"].to_dataset()
    for c, d in [(0, 0), (1, 77)]:
        p = post.isel(chain=c, draw=d)
        comp = np.stack(
            [multivariate_normal(p["mu"].values[k], p["cov"].values[k]).logpdf(X) for k in (0, 1)],
            axis=1,
        )
        ref = logsumexp(np.log(p["w"].values) + comp, axis=1)
        np.testing.assert_allclose(ll.values[c, d], ref, atol=1e-8)
    # a subset of observations, and the stored group is returned when present
    part = log_likelihood(bare, obs=slice(100, 130))["x"]
    np.testing.assert_array_equal(part.values, ll.values[..., 100:130])
    np.testing.assert_array_equal(part["obs_id"].values, np.arange(100, 130))
    again = log_likelihood(stored, obs=[3, 5])["x"]
    np.testing.assert_array_equal(again.values, ll.values[..., [3, 5]])
    # store=True puts it into the tree
    log_likelihood(bare, store=True)
    assert bare["log_likelihood"].to_dataset().identical(stored["log_likelihood"].to_dataset())
    with pytest.raises(ParameterError, match="store=True"):
        log_likelihood(bare, store=True, obs=slice(0, 3))
    with pytest.raises(ParameterError, match="draws"):
        log_likelihood(bare, group="em")


def test_log_likelihood_blocks_of_draws_give_the_same_values(stored, monkeypatch):
    params = _fit._ll_params(stored["posterior"].to_dataset())
    X = stored["observed_data"]["x"].values
    whole = _fit._math.mixture_log_density(X, params, "gaussian")  # every draw at once
    monkeypatch.setattr(_fit, "_LL_BLOCK_ELEMENTS", 272 * 2 * 7)  # 7 draws per block
    blocked = _fit.pointwise_log_likelihood(params, X, "gaussian")
    assert blocked.shape == (2, 150, 272)
    np.testing.assert_array_equal(blocked, whole)


def test_loo_in_blocks_equals_az_loo_on_the_stored_group(stored):
    ref = _az_loo(stored)
    bare = stored.copy()
    del bare["log_likelihood"]
    for block in (None, 50, 1000):
        got = loo(bare, obs_block=block)
        assert got.elpd == pytest.approx(ref.elpd, rel=1e-12)
        assert got.se == pytest.approx(ref.se, rel=1e-12)
        assert got.p == pytest.approx(ref.p, rel=1e-9)
        assert got.good_k == ref.good_k and got.warning == ref.warning
        np.testing.assert_allclose(got.elpd_i.values, ref.elpd_i.values, rtol=1e-12)
        np.testing.assert_allclose(got.pareto_k.values, ref.pareto_k.values, rtol=1e-12)
        assert got.n_samples == 300 and got.n_data_points == 272
    with pytest.raises(ParameterError, match="obs_block"):
        loo(bare, obs_block=0)
    with pytest.raises(ParameterError, match="draws"):
        loo(bare, group="map")


def test_posterior_predictive_max_draws(faithful_run):
    tree = faithful_run.copy()
    sample_posterior_predictive(tree, random_seed=0, max_draws=11)  # 5 per chain
    pp = tree["posterior_predictive"]["x"]
    assert pp.shape == (2, 5, 272, 2)
    np.testing.assert_array_equal(pp["draw"].values, np.linspace(0, 299, 5).round())
    sample_posterior_predictive(tree, random_seed=0, max_draws=40, num_draws=3)
    assert tree["posterior_predictive"]["x"].shape == (2, 3, 272, 2)  # the smaller wins
    sample_posterior_predictive(tree, random_seed=0, max_draws=1)
    assert tree["posterior_predictive"]["x"].shape == (2, 1, 272, 2)  # one per chain at least
    with pytest.raises(ParameterError, match="max_draws"):
        sample_posterior_predictive(tree, max_draws=0)


def test_posterior_predictive_float32_unless_the_offset_needs_float64(faithful_run):
    assert faithful_run["posterior_predictive"]["x"].dtype == np.float32
    # data far from 0 relative to their spread: float32 could not resolve the spread
    far = np.column_stack([np.full(50, 1e6), np.zeros(50)]) + np.random.default_rng(0).normal(
        size=(50, 2)
    )
    assert get_family("gaussian").replicate_dtype(far) is np.float64
    assert get_family("gaussian").replicate_dtype(far - 1e6 * np.array([1, 0])) is np.float32
    assert get_family("bernoulli").replicate_dtype(np.ones((5, 2))) is np.int8


def test_fit_spec_new_settings():
    spec = spec_from_dict({"fit": {"ppc_draws": 0, "store_log_likelihood": True}})
    assert spec.fit.ppc_draws == 0 and spec.fit.store_log_likelihood is True
    assert FitSpec().ppc_draws == 100 and FitSpec().store_log_likelihood is False
    assert RunSpec.from_json(spec.to_json()) == spec
    with pytest.raises(SpecError) as err:
        spec_from_dict({"fit": {"ppc_draws": -1, "store_log_likelihood": "yes"}})
    text = " ".join(err.value.problems)
    assert "[fit] ppc_draws" in text and "[fit] store_log_likelihood" in text


def test_run_stores_what_fit_spec_asks(faithful):
    from bayesmix.inference import run

    spec = RunSpec(
        name="small",
        model=FULL2,
        fit=FitSpec(
            methods=("nuts",),
            draws=40,
            tune=60,
            chains=2,
            seed=2,
            ppc_draws=0,
            store_log_likelihood=True,
        ),
    )
    tree = run(spec, faithful[FEATURES])
    assert "posterior_predictive" not in tree.children
    assert tree["log_likelihood"]["x"].shape == (2, 40, 272)


def test_saved_result_keeps_what_users_need(faithful_run, tmp_path):
    """Save, load: membership, LOO, the table, new data and the PPC plot all still work."""
    import matplotlib

    matplotlib.use("Agg")
    from bayesmix import plotting

    path = save(faithful_run, tmp_path / "result.nc")
    back = load(path)  # the checksum is verified
    assert set(back.children) == set(faithful_run.children)
    assert "log_likelihood" not in back.children
    # LOO: the same numbers as before saving, and as az.loo with the stored group
    before, after = loo(faithful_run), loo(back)
    assert after.elpd == pytest.approx(before.elpd, rel=1e-12)
    np.testing.assert_allclose(after.pareto_k.values, before.pareto_k.values, rtol=1e-12)
    full = faithful_run.copy()
    log_likelihood(full, store=True)
    assert before.elpd == pytest.approx(_az_loo(full).elpd, rel=1e-12)
    # membership, comparison table, new data
    xr.testing.assert_allclose(membership(back), membership(faithful_run))
    table_back, table = compare_estimates(back), compare_estimates(faithful_run)
    np.testing.assert_allclose(
        table_back.select_dtypes("number").to_numpy(dtype=float),
        table.select_dtypes("number").to_numpy(dtype=float),
        equal_nan=True,
    )
    Xn, z = generate(back, 50, random_seed=0)
    Xo, zo = generate(faithful_run, 50, random_seed=0)
    np.testing.assert_array_equal(Xn, Xo)
    np.testing.assert_array_equal(z, zo)
    fig = plotting.plot_ppc(back)
    assert len([ln for ax in fig.axes for ln in ax.lines if ln.get_gid() == "ppc-draw"]) > 0
    matplotlib.pyplot.close(fig)


def test_membership_blocks_follow_the_data_size(faithful_run, monkeypatch):
    from bayesmix import _math
    from bayesmix.inference import _predict
    from bayesmix.inference._tree import point_from_group

    params = point_from_group(faithful_run, "posterior")
    params.pop("sigma")
    X = faithful_run["observed_data"]["x"].values
    r = np.exp(_math.log_responsibilities(X, params, "gaussian"))  # every draw at once
    ref_mean, ref_sd = r.mean(0), r.std(0)
    for elements in (272 * 2 * 3, 10**9):  # 3 draws per block; one block
        monkeypatch.setattr(_predict, "_MEMBERSHIP_BLOCK_ELEMENTS", elements)
        m = membership(faithful_run)
        np.testing.assert_allclose(m["mean"].values, ref_mean, rtol=1e-10, atol=1e-12)
        # sd from sums of r and r^2: cancellation leaves ~1e-8 absolute error near 0
        np.testing.assert_allclose(m["sd"].values, ref_sd, atol=1e-6)
