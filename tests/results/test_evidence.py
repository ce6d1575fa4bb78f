"""log p(y | K) by bridge sampling against independent answers; p(K | y) and Bayes factors.

References: K = 1 by one-dimensional quadrature (the mean integrated out in closed form,
y | sigma ~ N(m 1, sigma^2 I + s^2 1 1^T), then scipy.integrate.quad over sigma); K = 2 by
brute force, the mean likelihood over 1e6 prior draws of the exchangeable model (NumPy +
SciPy, nothing of bayesmix), for both estimators: the symmetric bridge (the exchangeable
model, the default) and the ordered bridge, which also checks log Z = log Z_ordered + log K!.
The relabelling maps of the symmetric bridge: the model's log density is the same at every
relabelled point (1-D unequal and equal variances, full 2-D covariances), the maps are
volume preserving and form a group, and the symmetrised proposal integrates to one.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special, stats

from bayesmix._validation import ParameterError
from bayesmix.config import ModelSpec, PriorSpec
from bayesmix.results.evidence import (
    EvidenceResult,
    _check_relabelling,
    _symmetric_logpdf,
    bridge_estimate,
    evidence_spec,
    importance_estimate,
    log_evidence,
    posterior_k,
    relabelling_maps,
    resolve_method,
)

MU_LOC, MU_SCALE, SIGMA_SCALE = 0.5, 2.0, 1.5
PRIORS = PriorSpec(mu_loc=MU_LOC, mu_scale=MU_SCALE, sigma_scale=SIGMA_SCALE)
NUTS = {"draws": 1000, "tune": 500, "chains": 4}


def _data() -> np.ndarray:
    rng = np.random.default_rng(7)
    z = rng.integers(0, 2, 20)
    return (np.where(z == 0, -1.5, 1.5) + 0.6 * rng.standard_normal(20))[:, None]


def _spec(k: int) -> ModelSpec:
    return ModelSpec(family="gaussian", n_components=k, covariance="diag", priors=PRIORS)


def _quadrature_k1(y: np.ndarray) -> float:
    n = y.size
    ones = np.ones((n, n))

    def log_f(sigma):
        cov = sigma**2 * np.eye(n) + MU_SCALE**2 * ones
        return stats.multivariate_normal(np.full(n, MU_LOC), cov).logpdf(y) + stats.halfnorm(
            scale=SIGMA_SCALE
        ).logpdf(sigma)

    grid = np.linspace(0.05, 6.0, 400)
    shift = max(log_f(s) for s in grid)
    val, _ = integrate.quad(
        lambda s: math.exp(log_f(s) - shift), 1e-3, 20.0, points=[0.5, 1.0, 2.0], limit=200
    )
    return shift + math.log(val)


def _brute_force_k2(y: np.ndarray, n_draws: int = 1_000_000, seed: int = 3):
    rng = np.random.default_rng(seed)
    log_w = []
    for _ in range(n_draws // 100_000):
        m = 100_000
        w = rng.dirichlet(np.ones(2), size=m)
        mu = rng.normal(MU_LOC, MU_SCALE, size=(m, 2))
        sd = np.abs(rng.normal(0.0, SIGMA_SCALE, size=(m, 2)))
        z = (y[None, :, None] - mu[:, None, :]) / sd[:, None, :]  # (m, n, 2)
        comp = -0.5 * z * z - np.log(sd)[:, None, :] - 0.5 * math.log(2.0 * math.pi)
        log_w.append(special.logsumexp(np.log(w)[:, None, :] + comp, axis=-1).sum(axis=1))
    return importance_estimate(np.concatenate(log_w))[:2]


@pytest.fixture(scope="module")
def y():
    return _data()


@pytest.fixture(scope="module")
def k2_runs(y):
    return [log_evidence(_spec(2), y, random_seed=s, **NUTS) for s in (11, 12, 13)]


def test_k1_agrees_with_quadrature(y):
    ref = _quadrature_k1(y[:, 0])
    est = log_evidence(_spec(1), y, random_seed=5, **NUTS)
    assert isinstance(est, EvidenceResult)
    assert est.log_k_factorial == 0.0
    assert 0 < est.se < 0.05
    assert abs(est.log_evidence - ref) < 3 * est.se, (est, ref)


@pytest.fixture(scope="module")
def brute_k2(y):
    return _brute_force_k2(y[:, 0])


def test_k2_agrees_with_brute_force_of_the_exchangeable_model(y, k2_runs, brute_k2):
    ref, ref_se = brute_k2
    est = k2_runs[0]
    assert est.method == "bridge_symmetric" and est.log_k_factorial == 0.0
    combined = math.hypot(est.se, ref_se)
    assert abs(est.log_evidence - ref) < 3 * combined, (est, ref, ref_se)
    # an estimator that missed one of the two labellings would be off by log 2 = 0.69
    assert combined < math.log(2) / 3
    assert est.rhat_max < 1.05  # on the relabelled draws
    assert est.iterations >= 2


def test_ordered_bridge_agrees_with_brute_force(y, brute_k2):
    ref, ref_se = brute_k2
    est = log_evidence(_spec(2), y, random_seed=17, method="bridge_ordered", **NUTS)
    assert est.method == "bridge_ordered"
    assert est.log_k_factorial == pytest.approx(math.log(2))
    combined = math.hypot(est.se, ref_se)
    assert abs(est.log_evidence - ref) < 3 * combined, (est, ref, ref_se)
    # without log K! it would be off by log 2 = 0.69, far more than the bound
    assert combined < math.log(2) / 3


def test_reported_se_matches_the_spread_of_independent_runs(k2_runs):
    vals = np.array([r.log_evidence for r in k2_runs])
    ses = np.array([r.se for r in k2_runs])
    assert np.all(ses < 0.1)
    # three runs: their differences are N(0, 2 se^2) if the SE is honest
    diffs = np.abs(vals[:, None] - vals[None, :])
    assert diffs.max() < 4 * math.sqrt(2) * ses.max(), (vals, ses)


def test_importance_sampling_agrees_with_the_bridge(y, k2_runs):
    est = log_evidence(_spec(2), y, random_seed=21, method="importance", **NUTS)
    bridge = k2_runs[0]
    assert est.method == "importance" and est.ess_proposal > 100
    assert abs(est.log_evidence - bridge.log_evidence) < 3 * math.hypot(est.se, bridge.se)


def test_each_k_compiles_once(y, k2_runs):
    from bayesmix.inference import get_compiled

    spec = evidence_spec(_spec(2))
    assert spec.ordered is False and evidence_spec(_spec(8)).ordered is True
    cm = get_compiled(spec, y)
    before = cm.n_compiles
    log_evidence(_spec(2), y, random_seed=1, draws=100, tune=100, chains=2)
    assert cm.n_compiles == before


def test_bridge_estimator_on_a_known_normalising_constant():
    # target q = 7 * N(0, I_3) (log Z = log 7), proposal a shifted, wider normal
    rng = np.random.default_rng(0)
    d, n = 3, 4000
    post = rng.standard_normal((n, d))
    prop = 0.2 + 1.3 * rng.standard_normal((n, d))

    def log_q(x):
        return math.log(7.0) + stats.multivariate_normal(np.zeros(d)).logpdf(x)

    def log_g(x):
        return stats.multivariate_normal(np.full(d, 0.2), 1.69 * np.eye(d)).logpdf(x)

    log_z, se, iters, ess = bridge_estimate(
        log_q(post) - log_g(post), log_q(prop) - log_g(prop), chains=4
    )
    assert abs(log_z - math.log(7.0)) < 3 * se
    assert 0 < se < 0.05 and iters > 1 and ess > 1000


def test_posterior_k_against_direct_computation():
    lz = np.array([-230.0, -226.5, -225.0, -225.8])
    se = np.array([0.01, 0.05, 0.1, 0.2])
    table = pd.DataFrame({"k": [1, 2, 3, 4], "log_evidence": lz, "log_evidence_se": se})
    prior = {1: 0.4, 2: 0.3, 3: 0.2, 4: 0.1}
    out = posterior_k(table, prior_k=prior, n_sim=200_000)
    p = np.array([0.4, 0.3, 0.2, 0.1]) * np.exp(lz - lz.max())
    p /= p.sum()
    np.testing.assert_allclose(out["p_k"], p, rtol=1e-12)
    np.testing.assert_allclose(out["prior_k"], [0.4, 0.3, 0.2, 0.1])
    np.testing.assert_allclose(out["log_bf_prev"].iloc[1:], np.diff(lz))
    np.testing.assert_allclose(out["log_bf_prev_se"].iloc[1:], np.hypot(se[1:], se[:-1]))
    # the delta-method SE against brute-force simulation of the normal errors
    rng = np.random.default_rng(1)
    sims = special.softmax(
        np.log([0.4, 0.3, 0.2, 0.1]) + lz + se * rng.standard_normal((200_000, 4)), axis=1
    )
    np.testing.assert_allclose(out["p_k_se"], sims.std(axis=0), rtol=0.05)
    assert np.all(out["p_k_lower"] <= out["p_k"]) and np.all(out["p_k"] <= out["p_k_upper"])


def test_posterior_k_takes_results_and_a_uniform_prior():
    res = [
        EvidenceResult(k, lz, 0.05, "bridge", 10, 10, 3, 10.0, np.nan, 1.0, 0, 0.0, 1.0)
        for k, lz in ((2, -10.0), (1, -12.0))
    ]
    out = posterior_k(res)
    assert out["k"].tolist() == [1, 2]
    np.testing.assert_allclose(out["p_k"], [1 / (1 + math.e**2), 1 / (1 + math.e**-2)])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"prior_k": [0.5, 0.5, 0.5]}, "prior_k has 3 entries"),
        ({"prior_k": {1: 0.5}}, r"no probability for K=\[2\]"),
        ({"prior_k": [1.0, 0.0]}, "positive"),
    ],
)
def test_posterior_k_refuses_bad_priors(kwargs, match):
    table = pd.DataFrame({"k": [1, 2], "log_evidence": [-3.0, -2.0], "se": [0.1, 0.1]})
    with pytest.raises(ParameterError, match=match):
        posterior_k(table, **kwargs)


def test_posterior_k_refuses_bad_tables():
    with pytest.raises(ParameterError, match="k must be unique"):
        posterior_k(pd.DataFrame({"k": [1, 1], "log_evidence": [0.0, 1.0], "se": [0.1, 0.1]}))
    with pytest.raises(ParameterError, match="lacks columns"):
        posterior_k(pd.DataFrame({"k": [1, 2], "log_evidence": [0.0, 1.0]}))
    with pytest.raises(ParameterError, match="sequence of EvidenceResult"):
        posterior_k([1.0, 2.0])


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        (ModelSpec(family="bernoulli", n_components=2), "can be ordered"),
        (
            ModelSpec(n_components=2, priors=PriorSpec(weights_alpha=(1.0, 2.0))),
            "exchangeable",
        ),
    ],
)
def test_log_evidence_refuses_models_it_cannot_order(spec, match, y):
    with pytest.raises(ParameterError, match=match):
        log_evidence(spec, y)


def test_log_evidence_refuses_an_unknown_method(y):
    with pytest.raises(ParameterError, match="method must be one of"):
        log_evidence(_spec(2), y, method="smc")


# ---------------------------------------------------------------------------------------------
# the relabelling maps of the symmetric bridge


def _random_points(cm, n, seed):
    rng = np.random.default_rng(seed)
    start = cm.ravel(cm.model.initial_point(0))
    return start + rng.normal(0.0, 0.7, size=(n, start.size))


@pytest.fixture(scope="module")
def relabel_models(y):
    from bayesmix.inference import get_compiled

    x2 = np.random.default_rng(4).normal(size=(15, 2))
    ig = PriorSpec(variance="inverse_gamma", variance_alpha=2.0, variance_beta=1.0)
    specs = [
        (ModelSpec("gaussian", 3, "diag", priors=ig), y),
        (ModelSpec("gaussian", 3, "tied", priors=ig), y),
        (ModelSpec("gaussian", 3, "full"), x2),
    ]
    return [get_compiled(spec, x) for spec, x in specs]


def test_relabelling_keeps_the_log_density(relabel_models):
    from bayesmix.results.evidence import _log_density

    for cm in relabel_models:
        maps = relabelling_maps(cm)
        k = cm.spec.n_components
        assert maps.shape == (math.factorial(k), cm.n_dim, cm.n_dim)
        np.testing.assert_array_equal(maps[0], np.eye(cm.n_dim))
        pts = _random_points(cm, 4, 1)
        base = _log_density(cm, pts)
        for a in maps[1:]:
            moved = pts @ a.T
            assert not np.allclose(moved, pts)  # something moved
            np.testing.assert_allclose(_log_density(cm, moved), base, rtol=1e-9, atol=1e-9)
        _check_relabelling(cm, maps, pts)  # does not raise


def test_relabelling_maps_form_a_volume_preserving_group(relabel_models):
    cm = relabel_models[0]
    maps = relabelling_maps(cm)
    np.testing.assert_allclose(np.abs(np.linalg.det(maps)), 1.0, atol=1e-12)
    flat = maps.reshape(len(maps), -1)
    for a in maps:
        for b in maps:
            prod = (a @ b).ravel()
            assert np.min(np.abs(flat - prod).max(axis=1)) < 1e-12


def test_a_map_that_moves_only_the_means_is_refused(relabel_models):
    cm = relabel_models[0]
    maps = relabelling_maps(cm)
    broken = maps.copy()
    mu = slice(cm.n_dim - 2 * 3, cm.n_dim - 3)  # free variables: w (2), mu (3), sigma_sq (3)
    broken[:, mu.stop :, mu.stop :] = np.eye(3)  # the variances keep their labels
    with pytest.raises(ParameterError, match="not exchangeable"):
        _check_relabelling(cm, broken, _random_points(cm, 3, 2))


def test_symmetrised_proposal_is_a_density(relabel_models):
    # E_{N(m, S)}[g_sym / N] = 1 when g_sym integrates to one
    from bayesmix.results.evidence import _mvn_logpdf

    cm = relabel_models[0]
    maps = relabelling_maps(cm)
    rng = np.random.default_rng(5)
    d = cm.n_dim
    mean = rng.normal(size=d)
    a = rng.normal(size=(d, d))
    chol = np.linalg.cholesky(a @ a.T / d + 0.5 * np.eye(d))
    x = mean + rng.standard_normal((20000, d)) @ chol.T
    ratio = np.exp(_symmetric_logpdf(x, maps, mean, chol) - _mvn_logpdf(x, mean, chol))
    se = ratio.std() / math.sqrt(ratio.size)
    assert abs(ratio.mean() - 1.0) < 4 * se + 1e-3, (ratio.mean(), se)
    # the identity term alone contributes 1 / K!; the sum is more than that
    assert ratio.mean() > 1.5 / len(maps)


def test_resolve_method():
    assert resolve_method("bridge", 7) == "bridge_symmetric"
    assert resolve_method("bridge", 8) == "bridge_ordered"
    assert resolve_method("importance", 3) == "importance"
    with pytest.raises(ParameterError, match="K <= 7"):
        resolve_method("bridge_symmetric", 8)


def test_chains_in_different_modes_are_warned_about(y, monkeypatch):
    """Chains that found different modes bias the bridge by their proportions: say so."""
    from bayesmix.results import evidence as ev

    real = ev._nuts_draws

    def split_chains(cm, init, draws, tune, chains, seed, target_accept):
        theta, _, n_div = real(cm, init, draws, tune, chains, seed, target_accept)
        theta = theta.copy()
        theta[1] += 3.0 * theta[0].std(axis=0)  # chain 1 elsewhere
        return theta, ev._rhat_max(theta), n_div

    monkeypatch.setattr(ev, "_nuts_draws", split_chains)
    with pytest.warns(RuntimeWarning, match=r"chains disagree \(R-hat .* after relabelling"):
        log_evidence(_spec(1), y, random_seed=5, draws=200, tune=200, chains=2)
