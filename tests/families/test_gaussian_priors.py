"""Priors from the literature and equal covariances in the Gaussian graphs (issue 15, item 5).

References: SciPy's ``invgamma``, ``gamma``, ``invwishart`` and ``multivariate_normal``; the
Jacobian of PyMC's log-Cholesky transform by central differences of an independent NumPy
implementation; ``fit_map`` against ``scipy.optimize.minimize`` of the log posterior written in
NumPy/SciPy and against MAP-EM's conjugate update. Prior densities are evaluated with
``FAST_COMPILE`` functions (no Numba); two models are compiled for MAP (1-D unequal and
equal variances; the tied 2-D inverse-Wishart's mode is checked with ``FAST_COMPILE``), and
NUTS reuses the 1-D equal-variance one.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize, stats
from scipy.special import logsumexp

from bayesmix.config import ModelSpec, PriorSpec, resolve_priors
from bayesmix.data import load_galaxies
from bayesmix.graphs import build_model, free_var_names

MODE = "FAST_COMPILE"


def _data(d, n=40, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) * np.linspace(0.5, 3.0, d) + np.arange(d)


def _random_point(model, seed, scale=0.5):
    rng = np.random.default_rng(seed)
    ip = model.initial_point(0)
    return {k: v + rng.normal(0.0, scale, np.shape(v)) for k, v in ip.items()}


def _values(model, point, names):
    fn = model.compile_fn(
        model.replace_rvs_by_values([model[n] for n in names]),
        inputs=model.value_vars,
        on_unused_input="ignore",
        mode=MODE,
    )
    return dict(zip(names, fn(point), strict=True))


def _logp(model, point, names, jacobian=False):
    free = [model[n] for n in names]
    fn = model.compile_fn(
        model.logp(vars=free, jacobian=jacobian),
        inputs=model.value_vars,
        on_unused_input="ignore",
        mode=MODE,
    )
    return float(fn(point))


def _spd_from_free(theta, d):
    """Independent NumPy log-Cholesky map: row-major lower triangle, log on the diagonal."""
    L = np.zeros((d, d))
    L[np.tril_indices(d)] = theta
    L[np.diag_indices(d)] = np.exp(np.diag(L))
    return L @ L.T


def _log_jacobian_spd(theta, d):
    """log |d vech(Sigma) / d theta| by central differences."""
    idx = np.tril_indices(d)
    h = 1e-6
    jac = np.empty((theta.size, theta.size))
    for i in range(theta.size):
        up, dn = theta.copy(), theta.copy()
        up[i] += h
        dn[i] -= h
        jac[:, i] = (_spd_from_free(up, d)[idx] - _spd_from_free(dn, d)[idx]) / (2 * h)
    return float(np.linalg.slogdet(jac)[1])


# ---------------------------------------------------------------------------------------------
# prior densities against SciPy


@pytest.mark.parametrize("covariance", ["diag", "spherical", "tied"])
def test_inverse_gamma_prior_matches_scipy(covariance):
    d = 1 if covariance == "tied" else 2
    X = _data(d)
    beta = 1.3 if covariance == "spherical" else tuple(np.linspace(0.7, 1.9, d))
    pri = PriorSpec(
        weights_alpha=2.0,
        mu_loc=0.5,
        mu_scale=3.0,
        variance="inverse_gamma",
        variance_alpha=2.5,
        variance_beta=beta,
    )
    spec = ModelSpec("gaussian", 3, covariance, priors=pri)
    m = build_model(spec, X)
    var_name = {"diag": "sigma_sq", "spherical": "sigma_sq_spherical", "tied": "sigma_sq_tied"}
    names = ["w", "mu", var_name[covariance]]
    assert free_var_names(spec, d) == names
    assert [rv.name for rv in m.free_RVs] == names
    for seed in range(3):
        point = _random_point(m, seed)
        v = _values(m, point, [*names, "sigma"])
        var = v[var_name[covariance]]
        ref = (
            stats.dirichlet([2.0] * 3).logpdf(v["w"])
            + stats.norm.logpdf(v["mu"], 0.5, 3.0).sum()
            + stats.invgamma.logpdf(var, 2.5, scale=np.asarray(beta)).sum()
        )
        np.testing.assert_allclose(_logp(m, point, names), ref, rtol=1e-9)
        # with the log transform's Jacobian: + log(variance) per variance
        jac_ref = ref + np.log(var).sum() + _logp(m, point, ["w"], True) - _logp(m, point, ["w"])
        np.testing.assert_allclose(_logp(m, point, names, True), jac_ref, rtol=1e-9)
        sigma = v["sigma"]
        assert sigma.shape == (3, d)
        if covariance == "spherical":
            np.testing.assert_allclose(sigma, np.repeat(np.sqrt(var)[:, None], d, axis=1))
        elif covariance == "tied":
            np.testing.assert_allclose(sigma, np.broadcast_to(np.sqrt(var), (3, d)))
        else:
            np.testing.assert_allclose(sigma, np.sqrt(var))


def test_richardson_green_hierarchical_prior_matches_scipy():
    X = _data(2)
    pri = PriorSpec(
        mu_loc=(0.0, 1.0),
        mu_scale=(4.0, 5.0),
        variance="inverse_gamma",
        variance_alpha=2.0,
        variance_beta_prior=(0.2, 0.7),
    )
    spec = ModelSpec("gaussian", 2, "diag", priors=pri)
    m = build_model(spec, X)
    names = ["w", "mu", "variance_beta", "sigma_sq"]
    assert [rv.name for rv in m.free_RVs] == names == free_var_names(spec, 2)
    for seed in range(3):
        point = _random_point(m, seed)
        v = _values(m, point, names)
        assert v["variance_beta"].shape == (2,)
        ref = (
            stats.dirichlet([1.0, 1.0]).logpdf(v["w"])
            + stats.norm.logpdf(v["mu"], [0.0, 1.0], [4.0, 5.0]).sum()
            + stats.gamma.logpdf(v["variance_beta"], 0.2, scale=1 / 0.7).sum()  # rate 0.7
            + stats.invgamma.logpdf(v["sigma_sq"], 2.0, scale=v["variance_beta"]).sum()
        )
        np.testing.assert_allclose(_logp(m, point, names), ref, rtol=1e-9)


@pytest.mark.parametrize(("covariance", "d"), [("full", 2), ("tied", 3)])
def test_inverse_wishart_prior_matches_scipy_with_the_transform_jacobian(covariance, d):
    X = _data(d)
    alpha, beta = 1.7, np.linspace(0.6, 1.4, d)
    pri = PriorSpec(variance="inverse_wishart", variance_alpha=alpha, variance_beta=tuple(beta))
    spec = ModelSpec("gaussian", 2, covariance, priors=pri)
    m = build_model(spec, X)
    name = "cov_iw" if covariance == "full" else "cov_tied"
    assert [rv.name for rv in m.free_RVs] == ["w", "mu", name] == free_var_names(spec, d)
    nu, psi = 2 * alpha + d - 1, 2 * np.diag(beta)
    value_name = m.rvs_to_values[m[name]].name
    for seed in range(3):
        point = _random_point(m, seed, scale=0.3)
        v = _values(m, point, [name, "cov", "sigma", "corr"])
        mats = v[name].reshape(-1, d, d)
        ref = sum(stats.invwishart.logpdf(s, df=nu, scale=psi) for s in mats)
        np.testing.assert_allclose(_logp(m, point, [name]), ref, rtol=1e-8)
        thetas = np.asarray(point[value_name]).reshape(-1, d * (d + 1) // 2)
        for theta, s in zip(thetas, mats, strict=True):
            np.testing.assert_allclose(_spd_from_free(theta, d), s, rtol=1e-10)
        jac = sum(_log_jacobian_spd(theta, d) for theta in thetas)
        np.testing.assert_allclose(_logp(m, point, [name], True), ref + jac, rtol=1e-6)
        # the result variables: the matrices (repeated when tied), their scales and correlations
        np.testing.assert_allclose(v["cov"], np.broadcast_to(mats, (2, d, d)))
        sd = np.sqrt(np.diagonal(v["cov"], axis1=-2, axis2=-1))
        np.testing.assert_allclose(v["sigma"], sd)
        np.testing.assert_allclose(v["corr"] * sd[:, :, None] * sd[:, None, :], v["cov"])


def test_inverse_wishart_diagonal_is_the_inverse_gamma_and_graph_draws_match_scipy():
    from bayesmix.families.gaussian import _iw_random

    alpha, beta, d = 3.0, np.array([0.5, 2.0, 1.2]), 3
    nu, psi = 2 * alpha + d - 1, 2 * np.diag(beta)
    rng = np.random.default_rng(1)
    ref = stats.invwishart.rvs(df=nu, scale=psi, size=20000, random_state=rng)
    ours = _iw_random(np.asarray(nu), beta, rng=np.random.default_rng(2), size=(20000,))
    for j in range(d):
        ig = stats.invgamma(alpha, scale=beta[j])
        assert stats.kstest(ref[:, j, j], ig.cdf).pvalue > 1e-3
        assert stats.kstest(ours[:, j, j], ig.cdf).pvalue > 1e-3
    mean = psi / (nu - d - 1)
    np.testing.assert_allclose(ours.mean(axis=0), mean, atol=0.06 * mean.max())
    np.testing.assert_allclose(ref.mean(axis=0), mean, atol=0.06 * mean.max())
    assert stats.kstest(ours[:, 0, 1], ref[:, 0, 1]).pvalue > 1e-3


@pytest.mark.parametrize("alpha", [2.0, 3.5])
def test_default_variance_beta_gives_the_half_normal_median_of_sigma(alpha):
    X = _data(2)
    sd = X.std(axis=0, ddof=1)
    pri = PriorSpec(variance="inverse_gamma", variance_alpha=alpha)
    out = resolve_priors(ModelSpec("gaussian", 2, "diag", priors=pri), X)
    median_var = stats.invgamma(alpha, scale=out["variance_beta"]).median()
    np.testing.assert_allclose(np.sqrt(median_var), stats.halfnorm(scale=sd).median())
    sph = resolve_priors(ModelSpec("gaussian", 2, "spherical", priors=pri), X)
    rms = np.sqrt(np.mean(sd**2))
    np.testing.assert_allclose(
        np.sqrt(stats.invgamma(alpha, scale=sph["variance_beta"]).median()),
        stats.halfnorm(scale=rms).median(),
    )
    assert "sigma_scale" not in out


def test_variance_prior_that_does_not_fit_the_covariance_is_refused():
    from bayesmix._validation import SpecError

    X = _data(2)
    pri = PriorSpec(variance="inverse_gamma")
    with pytest.raises(SpecError, match=r"\[priors\] variance: .*use variance = \"inverse_wis"):
        resolve_priors(ModelSpec("gaussian", 2, "full", priors=pri), X)
    bad = PriorSpec(variance="inverse_gamma", variance_beta=(1.0, 2.0))
    with pytest.raises(SpecError, match=r"\[priors\] variance_beta: expected one number"):
        resolve_priors(ModelSpec("gaussian", 2, "spherical", priors=bad), X)
    # 1-D: inverse-gamma with full or tied is fine, and the inverse-Wishart is the same prior
    x1 = _data(1)
    for cov in ("full", "tied"):
        for kind in ("inverse_gamma", "inverse_wishart"):
            spec = ModelSpec("gaussian", 2, cov, priors=PriorSpec(variance=kind))
            assert resolve_priors(spec, x1)["variance_alpha"] == 2.0


# ---------------------------------------------------------------------------------------------
# equal covariances: the likelihood


def test_tied_log_likelihood_is_the_mixture_with_one_shared_covariance():
    X = _data(2, n=30, seed=3)
    spec = ModelSpec("gaussian", 3, "tied", priors=PriorSpec(weights_alpha=1.0))
    m = build_model(spec, X)
    assert [rv.name for rv in m.free_RVs] == ["w", "mu", "sigma_tied", "corr_chol"]
    assert m["corr_chol"].type.ndim == 2  # one correlation matrix for all components
    rows = m.compile_fn(m.logp(vars=[m["x"]], sum=False)[0], mode=MODE)
    for seed in range(3):
        point = _random_point(m, seed)
        v = _values(m, point, ["w", "mu", "cov", "sigma"])
        shared = v["cov"][0]
        np.testing.assert_allclose(v["cov"], np.broadcast_to(shared, (3, 2, 2)))
        np.testing.assert_allclose(v["sigma"][1], np.sqrt(np.diag(shared)))
        comp = np.stack(
            [stats.multivariate_normal(v["mu"][k], shared).logpdf(X) for k in range(3)], axis=1
        )
        ref = logsumexp(np.log(v["w"]) + comp, axis=1)
        np.testing.assert_allclose(rows(point), ref, rtol=1e-9)


# ---------------------------------------------------------------------------------------------
# MAP: against scipy.optimize and MAP-EM


def _galaxies():
    return load_galaxies("1000 km/s")["velocity"].to_numpy()[:, None]


ISSUE_PRIOR = {"mu_loc": 20.0, "mu_scale": 15.0, "variance_alpha": 2.0, "variance_beta": 10.0}


def _numpy_log_posterior(x, w, mu, var):
    """The 1-D model with w ~ Dir(1), mu ~ N(20, 15), sigma^2 ~ IG(2, 10), written in SciPy."""
    comp = stats.norm.logpdf(x[:, None], mu, np.sqrt(var))
    return (
        stats.dirichlet(np.ones(len(w))).logpdf(w)
        + stats.norm.logpdf(mu, 20.0, 15.0).sum()
        + stats.invgamma.logpdf(var, 2.0, scale=10.0).sum()
        + logsumexp(np.log(w) + comp, axis=1).sum()
    )


def _scipy_map(x, k, tied, start):
    def unpack(theta):
        z = np.concatenate([[0.0], theta[: k - 1]])
        w = np.exp(z - logsumexp(z))
        mu = theta[k - 1 : 2 * k - 1]
        var = np.exp(theta[2 * k - 1 :])
        return w, mu, np.broadcast_to(var, (k,))

    def objective(theta):
        w, mu, var = unpack(theta)
        if tied:  # one variance: its prior density once
            lp = _numpy_log_posterior(x, w, mu, var)
            lp -= stats.invgamma.logpdf(var[1:], 2.0, scale=10.0).sum()
            return -lp
        return -_numpy_log_posterior(x, w, mu, var)

    w0, mu0, var0 = start
    theta0 = np.concatenate([np.log(w0[1:] / w0[0]), mu0, np.log(var0[:1] if tied else var0)])
    res = optimize.minimize(objective, theta0, method="BFGS", options={"gtol": 1e-8})
    return unpack(res.x), -res.fun


@pytest.mark.parametrize("covariance", ["diag", "tied"])
def test_fit_map_of_the_inverse_gamma_model_is_the_scipy_optimum_and_map_em(covariance):
    from bayesmix.inference import fit_em, fit_map

    x = _galaxies()
    pri = PriorSpec(weights_alpha=1.0, variance="inverse_gamma", **ISSUE_PRIOR)
    spec = ModelSpec("gaussian", 2, covariance, priors=pri)
    em = fit_em(spec, x, random_state=0, tol=1e-12, max_iter=50000, reg_covar=0.0)["em"]
    assert em.attrs["method"] == "map"
    mp = fit_map(spec, x, random_seed=0)["map"]
    w, mu, sig = (mp[v].values for v in ("w", "mu", "sigma"))
    (w_ref, mu_ref, var_ref), lp_ref = _scipy_map(
        x[:, 0], 2, covariance == "tied", (w, mu[:, 0], sig[:, 0] ** 2)
    )
    order = np.argsort(mu_ref)
    np.testing.assert_allclose(mu[:, 0], mu_ref[order], rtol=1e-4)
    np.testing.assert_allclose(w, w_ref[order], rtol=1e-4)
    np.testing.assert_allclose(sig[:, 0] ** 2, var_ref[order], rtol=1e-3)
    # MAP-EM with its conjugate (inverse-Wishart, D = 1) update reaches the same mode
    np.testing.assert_allclose(em["mu"].values, mu, rtol=1e-4)
    np.testing.assert_allclose(em["sigma"].values, sig, rtol=1e-3)
    if covariance == "tied":
        np.testing.assert_allclose(sig[0], sig[1])
    # the scipy optimum is not worse than the graph's mode (it is the same point)
    own = _numpy_log_posterior(x[:, 0], w, mu[:, 0], sig[:, 0] ** 2)
    if covariance == "tied":
        own -= stats.invgamma.logpdf(sig[1:, 0] ** 2, 2.0, scale=10.0).sum()
    assert own == pytest.approx(lp_ref, abs=1e-5)


def test_tied_nuts_smoke_keeps_one_shared_variance():
    from bayesmix.inference import sample_nuts

    x = _galaxies()
    pri = PriorSpec(weights_alpha=1.0, variance="inverse_gamma", **ISSUE_PRIOR)
    spec = ModelSpec("gaussian", 2, "tied", priors=pri)  # compiled for the MAP test above
    r = sample_nuts(spec, x, draws=40, tune=40, chains=1, random_seed=1, progressbar=False)
    sig = r["posterior"]["sigma"].values  # (chain, draw, component, feature)
    assert np.all(np.isfinite(sig))
    np.testing.assert_allclose(sig[:, :, 0], sig[:, :, 1])


def test_map_em_of_tied_inverse_wishart_is_the_graphs_mode():
    """MAP-EM's tied inverse-Wishart answer is a mode of the graph's log posterior.

    The graph's log posterior (no Jacobian: the mode of the density in the model's own
    parameters) is compiled with ``FAST_COMPILE``; at MAP-EM's answer its gradient on the
    unconstrained vector vanishes and L-BFGS-B started there cannot raise it.
    """
    from bayesmix.graphs import point_to_initvals
    from bayesmix.inference import fit_em, get_compiled
    from bayesmix.inference._tree import point_from_group

    rng = np.random.default_rng(5)
    cov = np.array([[1.0, 0.6], [0.6, 2.0]])
    X = np.concatenate(
        [rng.multivariate_normal(m, cov, size=40) for m in ([-3.0, 0.0], [3.0, 1.0])]
    )
    pri = PriorSpec(variance="inverse_wishart", variance_alpha=2.0, variance_beta=(0.5, 0.8))
    spec = ModelSpec("gaussian", 2, "tied", priors=pri)
    # converged tightly, and without the ridge that EM adds to covariances by default
    em = fit_em(spec, X, random_state=0, tol=1e-12, reg_covar=0.0)
    np.testing.assert_allclose(em["em"]["cov"].values[0], em["em"]["cov"].values[1])
    cm = get_compiled(spec, X)  # the model and its flat vector; nothing compiled with Numba
    x0 = cm.to_unconstrained(point_to_initvals(spec, point_from_group(em, "em"), 2))
    logp = cm.model.compile_logp(jacobian=False, mode=MODE)
    dlogp = cm.model.compile_dlogp(jacobian=False, mode=MODE)
    grad = dlogp(cm.unravel(x0))
    assert np.max(np.abs(grad)) < 1e-6
    res = optimize.minimize(
        lambda x: -logp(cm.unravel(x)),
        x0,
        jac=lambda x: -dlogp(cm.unravel(x)),
        method="L-BFGS-B",
        options={"ftol": 1e-14, "gtol": 1e-10},
    )
    assert -res.fun - logp(cm.unravel(x0)) < 1e-8 * abs(res.fun)
    np.testing.assert_allclose(res.x, x0, atol=1e-4)
    assert cm.n_compiles == 1  # only the Python-linker map to the unconstrained vector


# ---------------------------------------------------------------------------------------------
# the hierarchical scale: its start and its place in results


@pytest.mark.parametrize(
    ("covariance", "kind"), [("diag", "inverse_gamma"), ("full", "inverse_wishart")]
)
def test_variance_beta_starts_at_its_conditional_posterior_mean(covariance, kind):
    """The start of variance_beta given the variances: E[beta | Sigma], by quadrature."""
    from scipy.integrate import quad

    from bayesmix.families import get_family

    fam = get_family("gaussian")
    g, h, alpha, d = 0.2, 0.5, 2.0, 2
    pri = PriorSpec(variance=kind, variance_alpha=alpha, variance_beta_prior=(g, h))
    spec = ModelSpec("gaussian", 2, covariance, priors=pri)
    covs = np.array([[[1.0, 0.3], [0.3, 2.0]], [[0.5, -0.1], [-0.1, 0.8]]])
    if covariance == "diag":
        covs = covs * np.eye(d)
    init = fam.point_to_initvals(spec, {"mu": np.zeros((2, d)), "cov": covs}, d)
    assert fam.hyper_variables(spec, d) == {"variance_beta": ("feature",)}
    for j in range(d):
        others = init["variance_beta"].copy()

        def log_post(b, j=j, others=others):
            beta = others.copy()
            beta[j] = b
            lp = stats.gamma.logpdf(b, g, scale=1 / h)
            if kind == "inverse_gamma":
                return lp + stats.invgamma.logpdf(covs[:, j, j], alpha, scale=b).sum()
            psi = 2 * np.diag(beta)
            return lp + sum(
                stats.invwishart.logpdf(c, df=2 * alpha + d - 1, scale=psi) for c in covs
            )

        peak = log_post(others[j])
        norm_ = quad(lambda b, p=peak: np.exp(log_post(b) - p), 0, np.inf, limit=200)[0]
        mean = quad(lambda b, p=peak: b * np.exp(log_post(b) - p), 0, np.inf, limit=200)[0] / norm_
        assert init["variance_beta"][j] == pytest.approx(mean, rel=1e-6)
    # a point that carries variance_beta (a fit's) starts there
    again = fam.point_to_initvals(
        spec, {"mu": np.zeros((2, d)), "cov": covs, "variance_beta": np.array([3.0, 4.0])}, d
    )
    np.testing.assert_array_equal(again["variance_beta"], [3.0, 4.0])
    assert fam.hyper_variables(ModelSpec("gaussian", 2, covariance), d) == {}
