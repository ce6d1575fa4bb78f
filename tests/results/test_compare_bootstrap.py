"""EM's bootstrap uncertainty next to the posterior's: compare_estimates(bootstrap=...)."""

from __future__ import annotations

import numpy as np
import pytest

from bayesmix._validation import ParameterError
from bayesmix.config import ModelSpec
from bayesmix.data import load_old_faithful
from bayesmix.em import GaussianMixtureEM
from bayesmix.em.bootstrap import bootstrap_parameters
from bayesmix.inference import fit_em
from bayesmix.results import compare_estimates

X = load_old_faithful().to_numpy(dtype=float)


@pytest.fixture(scope="module")
def fitted():
    spec = ModelSpec("gaussian", 2, "full")
    result = fit_em(spec, X, prior=None, random_state=0)
    # the estimator's own component order is the reverse of the result's (sorted) one
    est = GaussianMixtureEM(2, covariance_type="full", tol=1e-8, max_iter=1000, random_state=0)
    est.fit(X)
    order = np.argsort(est.means_[:, 0])[::-1]
    est.weights_, est.means_ = est.weights_[order], est.means_[order]
    est.covariances_ = est.covariances_[order]
    est.precisions_cholesky_ = est.precisions_cholesky_[order]
    est.precisions_ = est.precisions_[order]
    boot = bootstrap_parameters(est, X, n_boot=60, random_state=1)
    return result, boot


def test_bootstrap_columns_are_the_bootstraps_own_numbers(fitted):
    result, boot = fitted
    table = compare_estimates(result, bootstrap=boot, ci_prob=0.9)
    assert list(table.columns[-3:]) == ["em_se", "em_lower", "em_upper"]
    assert "bootstrap" in table.attrs
    # matched by the means: the result's component 0 is the estimator's component 1
    mu_draws = boot.draws["mu"][:, ::-1]
    rows = table[table["parameter"] == "mu"]
    for _, row in rows.iterrows():
        k, j = int(row["component"]), list(result["em"]["mu"].feature.values).index(row["feature"])
        draws = mu_draws[:, k, j]
        assert row["em_se"] == pytest.approx(np.std(draws, ddof=1), rel=1e-12)
        lo, hi = np.quantile(draws, [0.05, 0.95])
        assert (row["em_lower"], row["em_upper"]) == pytest.approx((lo, hi), rel=1e-12)
        assert lo <= row["em"] <= hi
    w = table[table["parameter"] == "w"].set_index("component")
    assert w.loc[0, "em_se"] == pytest.approx(np.std(boot.draws["w"][:, 1], ddof=1))
    # the weight's SE is about sqrt(w (1 - w) / N) for well-separated components
    w0 = w.loc[0, "em"]
    assert w.loc[0, "em_se"] == pytest.approx(np.sqrt(w0 * (1 - w0) / len(X)), rel=0.35)
    # the lower triangle of cov, like the other columns
    cov = table[table["parameter"] == "cov"]
    assert cov["em_se"].notna().all() and len(cov) == 2 * 3


def test_without_bootstrap_the_table_is_unchanged(fitted):
    result, _ = fitted
    assert "em_se" not in compare_estimates(result).columns


def test_bad_bootstrap_is_clear(fitted):
    result, _ = fitted
    with pytest.raises(ParameterError, match="bootstrap_parameters"):
        compare_estimates(result, bootstrap={"mu": 1})
