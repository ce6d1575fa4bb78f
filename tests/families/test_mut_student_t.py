"""StudentTMixtureEM helpers found unpinned by the mutmut run on em/student_t.py (issue 13)."""

from __future__ import annotations

import numpy as np
import pytest

from bayesmix.em import student_t


@pytest.mark.parametrize("d", [2, 3, 4, 5])
def test_unit_row_cholesky_parametrisation_row_by_row(d):
    """Row i of the correlation factor is (v_i, 1) / ||(v_i, 1)||, v_i the next i numbers.

    D >= 4 is needed to see the offset of each row's numbers (rows 1 and 2 start at 0 and 1
    whether the offset is accumulated or not).
    """
    rng = np.random.default_rng(d)
    v = rng.normal(size=d * (d - 1) // 2)
    chol = student_t._corr_chol_from_params(v, d)
    want = np.eye(d)
    start = 0
    for i in range(1, d):
        row = np.append(v[start : start + i], 1.0)
        want[i, : i + 1] = row / np.sqrt(row @ row)
        start += i
    np.testing.assert_allclose(chol, want, rtol=1e-14, atol=1e-15)
    corr = chol @ chol.T
    np.testing.assert_allclose(np.diag(corr), 1.0, rtol=1e-14)
    assert np.all(np.linalg.eigvalsh(corr) > 0)
    np.testing.assert_allclose(student_t._params_from_corr_chol(chol), v, rtol=1e-12)


def _scale_problem(d, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(d, 3 * d))
    scatter = a @ a.T  # (D, D) positive definite
    theta = np.concatenate([rng.normal(0, 0.3, d), rng.normal(0, 0.5, d * (d - 1) // 2)])
    return scatter, theta


@pytest.mark.parametrize("d", [2, 3, 4])
@pytest.mark.parametrize("t", [None, 0.7])
def test_scale_objective_value_against_scipy(d, t):
    """n/2 log|Sigma| + tr(Sigma^-1 S)/2 - log HalfNormal(s | t), divided by n."""
    from scipy import stats

    scatter, theta = _scale_problem(d)
    n = 12.0
    s = np.exp(theta[:d])
    chol = student_t._corr_chol_from_params(theta[d:], d)
    sigma = np.outer(s, s) * (chol @ chol.T)
    want = 0.5 * n * np.linalg.slogdet(sigma)[1] + 0.5 * np.trace(np.linalg.solve(sigma, scatter))
    if t is not None:
        want -= stats.halfnorm.logpdf(s, scale=t).sum()
    value, _ = student_t._scale_objective(theta, scatter, n, t, None)
    assert value == pytest.approx(want / n, rel=1e-12)


@pytest.mark.parametrize("d", [2, 3, 4])
@pytest.mark.parametrize(("t", "eta"), [(None, None), (0.7, None), (None, 2.5), (0.7, 0.8)])
def test_scale_objective_gradient_matches_finite_differences(d, t, eta):
    from scipy.optimize import approx_fprime

    scatter, theta = _scale_problem(d, seed=d)
    n = 9.0
    _, grad = student_t._scale_objective(theta, scatter, n, t, eta)
    numeric = approx_fprime(
        theta, lambda th: student_t._scale_objective(th, scatter, n, t, eta)[0], 1e-7
    )
    np.testing.assert_allclose(grad, numeric, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    "prior",
    [{}, {"dof_shape": 2.5, "dof_rate": 0.1}, {"dof_shape": 1.0, "dof_rate": 0.3}],
    ids=["ml", "gamma-2.5-0.1", "exponential-0.3"],
)
@pytest.mark.parametrize(("n", "c"), [(50.0, -53.0), (20.0, -20.4)])
def test_ecm_dof_step_maximises_the_expected_log_posterior(prior, n, c):
    """n [nu/2 log(nu/2) - log Gamma(nu/2)] + nu c / 2 + (a - 1) log nu - b nu, by SciPy."""
    from scipy import optimize
    from scipy.special import gammaln

    from bayesmix.em import StudentTMixtureEM

    a, b = prior.get("dof_shape", 1.0), prior.get("dof_rate", 0.0)

    def neg(log_nu):
        nu = np.exp(log_nu)
        half = 0.5 * nu
        return -(n * (half * np.log(half) - gammaln(half)) + half * c + (a - 1) * log_nu - b * nu)

    res = optimize.minimize_scalar(
        neg, bounds=(np.log(1e-2), np.log(1e3)), method="bounded", options={"xatol": 1e-10}
    )
    est = StudentTMixtureEM(2, dof_step="ecm")
    est._prior = dict(prior)
    assert est._solve_dof(n, c) == pytest.approx(np.exp(res.x), rel=1e-6)
