from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.mixture import GaussianMixture

from bayesmix._validation import ParameterError
from bayesmix.data import load_old_faithful, make_gaussian_mixture
from bayesmix.results import recommend, select_k


@pytest.fixture(scope="module")
def three_clusters():
    X, _, _ = make_gaussian_mixture(300, 3, 2, separation=8.0, random_state=11)
    return X


@pytest.fixture(scope="module")
def faithful():
    return load_old_faithful().to_numpy()


def test_bic_picks_three_well_separated_clusters(three_clusters):
    table = select_k(three_clusters, range(1, 6), random_state=0)
    assert list(table["k"]) == [1, 2, 3, 4, 5]
    assert table.attrs["recommended"]["bic"] == 3
    assert recommend(table, "bic") == 3
    assert recommend(table, "icl") == 3
    assert table["converged"].all()
    # BIC = -2 log L + p log N and AIC = -2 log L + 2 p, with p = K-1 + K D + K D(D+1)/2
    n = len(three_clusters)
    p = np.array([k - 1 + 2 * k + 3 * k for k in range(1, 6)])
    np.testing.assert_array_equal(table["n_parameters"], p)
    np.testing.assert_allclose(table["bic"], -2 * table["log_likelihood"] + p * np.log(n))
    np.testing.assert_allclose(table["aic"], -2 * table["log_likelihood"] + 2 * p)
    assert (table["icl"] >= table["bic"] - 1e-6).all()  # ICL adds an entropy penalty


@pytest.mark.slow
def test_faithful_bic_per_covariance_type_matches_sklearn(faithful):
    covs = ("full", "tied", "diag", "spherical")
    ks = range(1, 5)
    table = select_k(faithful, ks, covariance_types=covs, n_init=5, random_state=0)
    by_cov = table.attrs["recommended_by_covariance"]
    for cov in covs:
        sub = table[table["covariance_type"] == cov].set_index("k")
        for k in ks:
            # scikit-learn's own fit: ours is at least as good (best of restarts)
            sk = GaussianMixture(
                k, covariance_type=cov, n_init=2, tol=1e-6, max_iter=1000, random_state=0
            ).fit(faithful)
            assert sub.loc[k, "bic"] <= sk.bic(faithful) + 0.5, (cov, k)
            if k <= 2:  # a single clear optimum: both find it
                assert sub.loc[k, "bic"] == pytest.approx(sk.bic(faithful), abs=0.05)
            # scikit-learn's BIC evaluated at the parameters that bayesmix.em found
            est = _our_fit(faithful, cov, k)
            assert est.bic(faithful) == pytest.approx(_sklearn_bic_at(est, faithful), abs=1e-6)
        assert by_cov[cov]["bic"] == int(sub["bic"].idxmin())
        assert recommend(table, "bic", covariance_type=cov) == by_cov[cov]["bic"]
    # the two-cluster structure: full and tied covariances prefer 2 components
    assert by_cov["full"]["bic"] == 2
    print("Old Faithful, K preferred by BIC:", {cov: by_cov[cov]["bic"] for cov in covs})
    best = table.loc[table["bic"].idxmin()]
    assert table.attrs["recommended"]["bic"] == best["k"]
    assert table.attrs["recommended_covariance"]["bic"] == best["covariance_type"]


def _sklearn_bic_at(est, X):
    from sklearn.mixture._gaussian_mixture import _compute_precision_cholesky

    gm = GaussianMixture(est.n_components, covariance_type=est.covariance_type)
    gm.weights_ = est.weights_
    gm.means_ = est.means_
    gm.covariances_ = est.covariances_
    gm.precisions_cholesky_ = _compute_precision_cholesky(est.covariances_, est.covariance_type)
    return gm.bic(X)


def _our_fit(X, cov, k):
    from bayesmix.em import GaussianMixtureEM

    return GaussianMixtureEM(
        k,
        covariance_type=cov,
        n_init=3,
        init_params="kmeans",
        tol=1e-6,
        max_iter=1000,
        random_state=5,
    ).fit(X)


def test_select_k_errors(three_clusters):
    with pytest.raises(ParameterError, match="covariance"):
        select_k(three_clusters, [2], covariance_types=("banana",))
    with pytest.raises(ParameterError, match="tied"):  # Student-t scales: full or diag
        select_k(three_clusters, [2], family="student_t", covariance_types=("tied",))
    with pytest.raises(ParameterError, match="ks"):
        select_k(three_clusters, [0, 1])
    table = select_k(three_clusters, [2, 3], random_state=0)
    with pytest.raises(ParameterError, match="bayesian=True"):
        recommend(table, "loo")
    with pytest.raises(ParameterError, match="criterion"):
        recommend(table, "waic")


def test_bernoulli_select():
    from bayesmix.data import make_bernoulli_mixture

    X, _, _ = make_bernoulli_mixture(400, 2, 20, random_state=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = select_k(X, [1, 2, 3, 4], family="bernoulli", random_state=0)
    assert table["covariance_type"].isna().all()
    assert recommend(table, "bic") == 2


@pytest.mark.slow
def test_loo_picks_three_well_separated_clusters(three_clusters):
    table = select_k(
        three_clusters,
        [2, 3, 4],
        bayesian=True,
        draws=300,
        tune=300,
        chains=2,
        random_state=1,
        bayesian_criteria=("loo",),  # the evidence and K+ columns: test_select_bayesian.py
    )
    print(table[["k", "bic", "elpd_loo", "se", "p_loo", "n_high_pareto_k", "elpd_diff", "dse"]])
    assert recommend(table, "loo") == 3
    assert recommend(table, "bic") == 3
    by_k = table.set_index("k")
    assert by_k.loc[3, "elpd_diff"] == 0.0  # K=3 has the best elpd
    assert by_k.loc[2, "elpd_diff"] > 4 * by_k.loc[2, "dse"]  # K=2 is clearly worse
    assert (by_k["n_high_pareto_k"] == 0).all()


@pytest.fixture(scope="module")
def shared_run():
    """A Bayesian select_k on 60 points, K = 1, 2, every NUTS run recorded.

    Each run reports 3 divergences (made up after sampling) to check that the warning is
    raised once per K.
    """
    import nutpie

    from bayesmix.results import evidence

    X, _, _ = make_gaussian_mixture(60, 2, 2, separation=6.0, random_state=3)
    samples, runs = [], []
    real_sample, real_trace, real_unc = (
        nutpie.sample,
        evidence._nuts_trace,
        evidence._unconstrained,
    )

    def counting_sample(*args, **kwargs):
        samples.append(kwargs)
        return real_sample(*args, **kwargs)

    def recording_trace(*args):
        runs.append(args)  # (cm, init, draws, tune, chains, seed, target_accept)
        return real_trace(*args)

    def diverging(trace):
        theta, rhat_max, _ = real_unc(trace)
        return theta, rhat_max, 3

    with pytest.MonkeyPatch.context() as mp, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mp.setattr(nutpie, "sample", counting_sample)
        mp.setattr(evidence, "_nuts_trace", recording_trace)
        mp.setattr(evidence, "_unconstrained", diverging)
        table = select_k(
            X,
            (1, 2),
            bayesian=True,
            draws=100,
            tune=100,
            chains=2,
            random_state=4,
            bayesian_criteria=("loo", "evidence"),
        )
    return X, table, samples, runs, caught


def test_bayesian_select_samples_each_k_once(shared_run):
    """PSIS-LOO and log p(y | K) come from one NUTS run per K, not one each."""
    from bayesmix.inference import DivergenceWarning

    _, table, samples, runs, caught = shared_run
    assert len(samples) == 2, samples  # nutpie.sample: once per K
    assert [r[0].spec.n_components for r in runs] == [1, 2]
    assert table[["elpd_loo", "log_evidence", "p_k"]].notna().all().all()
    diverged = [str(w.message) for w in caught if issubclass(w.category, DivergenceWarning)]
    assert diverged == [
        f"K={k}: 3 of 200 NUTS transitions diverged: the draws may miss part of the posterior "
        "(often a component squeezed onto a few repeated points); raise target_accept, use "
        "fewer components, or look at bayesmix.results.diagnose"
        for k in (1, 2)
    ]


def test_bayesian_select_gives_what_loo_and_log_evidence_give_alone(shared_run):
    """The shared run is the one sample_nuts and log_evidence make alone with its seed."""
    from bayesmix.inference import sample_nuts
    from bayesmix.results import loo
    from bayesmix.results.evidence import log_evidence

    X, table, _, runs, _ = shared_run
    by_k = table.set_index("k")
    for cm, _, draws, tune, chains, seed, _ in runs:
        k = cm.spec.n_components
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            alone = log_evidence(
                cm.spec, X, draws=draws, tune=tune, chains=chains, random_seed=seed
            )
        assert by_k.loc[k, "log_evidence"] == alone.log_evidence
        assert by_k.loc[k, "log_evidence_se"] == alone.se
    # and PSIS-LOO of sample_nuts's result with that seed (K = 2)
    cm, _, draws, tune, chains, seed, _ = runs[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tree = sample_nuts(
            cm.spec,
            X,
            draws=draws,
            tune=tune,
            chains=chains,
            random_seed=seed,
            progressbar=False,
            log_likelihood=False,
        )
    assert by_k.loc[2, "elpd_loo"] == float(loo(tree).elpd)
