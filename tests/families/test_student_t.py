"""Student-t family (bayesmix.families.student_t) and StudentTMixtureEM (bayesmix.em.student_t)."""

import warnings
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import integrate, optimize, stats
from scipy.special import logsumexp, softmax
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.estimator_checks import parametrize_with_checks

from bayesmix._validation import DataError, ParameterError
from bayesmix.em import GaussianMixtureEM
from bayesmix.em.student_t import StudentTMixtureEM
from bayesmix.families import sample_draws
from bayesmix.families.student_t import StudentTFamily, lkj_chol_logp
from tests.em.em_helpers import hypothesis_settings
from tests.families.helpers import unconstrained_point

FAM = StudentTFamily()
W = np.array([0.35, 0.65])
MU = np.array([[-1.0, 0.5, 2.0], [2.0, -1.0, 0.0]])
COV = np.array(
    [
        [[1.0, 0.3, -0.2], [0.3, 0.8, 0.1], [-0.2, 0.1, 1.5]],
        [[0.5, -0.1, 0.0], [-0.1, 1.2, 0.4], [0.0, 0.4, 0.9]],
    ]
)
NU = np.array([3.5, 12.0])


def _sd(cov):
    return np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1))


def _simulate(n, d, seed, nu=(4.0, 6.0)):
    """A two-component t mixture: n rows, d features, well separated."""
    rng = np.random.default_rng(seed)
    means = np.zeros((2, d))
    means[1] = 4.0
    z = rng.integers(0, 2, n)
    u = rng.gamma(np.asarray(nu)[z] / 2, 2 / np.asarray(nu)[z])
    return means[z] + rng.standard_normal((n, d)) / np.sqrt(u)[:, None]


def _set_params(est, w, mu, cov, nu):
    est.weights_, est.means_, est.covariances_, est.dofs_ = (
        np.array(w, float),
        np.array(mu, float),
        np.array(cov, float),
        np.array(nu, float),
    )
    est.n_features_in_ = mu.shape[1]
    return est


# ---------------------------------------------------------------------------- log densities
def test_component_log_density_matches_scipy_for_a_stack_of_draws():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((7, 3)) * 2
    mu = np.stack([MU, MU + 0.5, MU[::-1]])  # three draws
    cov = np.stack([COV, COV * 2, COV[::-1]])
    nu = np.stack([NU, NU[::-1], NU + 1])
    w = np.tile(W, (3, 1))
    full = FAM.component_log_density(X, {"w": w, "mu": mu, "cov": cov, "nu": nu})
    sigma = _sd(cov)
    diag = FAM.component_log_density(X, {"w": w, "mu": mu, "sigma": sigma, "nu": nu})
    assert full.shape == diag.shape == (3, 7, 2)
    for s in range(3):
        for k in range(2):
            want = stats.multivariate_t.logpdf(X, mu[s, k], cov[s, k], df=nu[s, k])
            np.testing.assert_allclose(full[s, :, k], want, rtol=0, atol=1e-8)
            want = stats.multivariate_t.logpdf(X, mu[s, k], np.diag(sigma[s, k] ** 2), nu[s, k])
            np.testing.assert_allclose(diag[s, :, k], want, rtol=0, atol=1e-8)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_mixture_log_density_equals_explicit_latent_indicator_sum(covariance_type):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((9, 3)) * 3
    cov = COV if covariance_type == "full" else _sd(COV) ** 2
    est = _set_params(StudentTMixtureEM(2, covariance_type=covariance_type), W, MU, cov, NU)
    # p(x) = sum over the label z of p(z) p(x | z), one term per label written out
    scale = COV if covariance_type == "full" else [np.diag(c) for c in cov]
    joint = np.stack(
        [W[k] * stats.multivariate_t.pdf(X, MU[k], scale[k], df=NU[k]) for k in range(2)], axis=1
    )
    np.testing.assert_allclose(est.score_samples(X), np.log(joint.sum(1)), rtol=0, atol=1e-8)
    np.testing.assert_allclose(
        est.predict_proba(X), joint / joint.sum(1, keepdims=True), atol=1e-10
    )
    comp = FAM.component_log_density(
        X,
        {"w": W, "mu": MU, "sigma": _sd(COV), "nu": NU}
        if covariance_type == "diag"
        else {"w": W, "mu": MU, "cov": COV, "nu": NU},
    )
    np.testing.assert_allclose(
        logsumexp(np.log(W) + comp, axis=1), np.log(joint.sum(1)), atol=1e-8
    )


def test_diag_component_is_one_latent_scale_per_row():
    """A diag component is N(mu, Sigma / u) with one u ~ Gamma(nu/2, nu/2) per row, not a
    product of univariate t's."""
    x, mu, sd, nu = np.array([3.1, -5.2]), np.array([0.1, 0.3]), np.array([0.8, 1.7]), 3.2

    def integrand(u):
        normal = stats.norm.pdf(x, mu, sd / np.sqrt(u)).prod()
        return normal * stats.gamma.pdf(u, nu / 2, scale=2 / nu)

    want = np.log(integrate.quad(integrand, 0, np.inf, epsabs=0, epsrel=1e-12)[0])
    got = FAM.component_log_density(
        x[None], {"w": [1.0], "mu": mu[None], "sigma": sd[None], "nu": [nu]}
    )[0, 0]
    assert got == pytest.approx(want, rel=0, abs=1e-8)
    independent = stats.t.logpdf(x, nu, mu, sd).sum()
    assert abs(got - independent) > 0.05


def test_lkj_cholesky_density_is_the_beta_density_of_the_correlation_in_2d():
    # for D = 2, LKJ(eta) makes (r + 1) / 2 ~ Beta(eta, eta); L = [[1, 0], [r, sqrt(1-r^2)]]
    for r, eta in [(0.3, 2.0), (-0.8, 1.0), (0.55, 4.5)]:
        chol = np.array([[1.0, 0.0], [r, np.sqrt(1 - r * r)]])
        want = stats.beta.logpdf((r + 1) / 2, eta, eta) - np.log(2)
        assert lkj_chol_logp(chol, eta) == pytest.approx(want, abs=1e-12)


# ---------------------------------------------------------------------------- EM: the MLE
def _negloglik(theta, X, k, diag, fixed_nu):
    """Minus the log-likelihood in an unconstrained parametrisation.

    theta = [logits of the weights (K), mu (K*D), log-Cholesky of each scale (log diagonal,
    then the strictly lower entries; diag: log sds), log nu (K, unless fixed)].
    """
    n, d = X.shape
    pos = 0
    w = softmax(theta[:k])
    pos += k
    mu = theta[pos : pos + k * d].reshape(k, d)
    pos += k * d
    comp = np.empty((n, k))
    chols = []
    for _ in range(k):
        if diag:
            chol = np.diag(np.exp(theta[pos : pos + d]))
            pos += d
        else:
            chol = np.diag(np.exp(theta[pos : pos + d]))
            pos += d
            low = np.tril_indices(d, -1)
            chol[low] = theta[pos : pos + len(low[0])]
            pos += len(low[0])
        chols.append(chol)
    nu = fixed_nu if fixed_nu is not None else np.exp(theta[pos : pos + k])
    for j in range(k):
        comp[:, j] = stats.multivariate_t.logpdf(X, mu[j], chols[j] @ chols[j].T, df=nu[j])
    return -logsumexp(np.log(w) + comp, axis=1).sum()


def _theta(est, diag, fixed):
    parts = [np.log(est.weights_), est.means_.ravel()]
    d = est.means_.shape[1]
    for j in range(est.n_components):
        if diag:
            parts.append(0.5 * np.log(est.covariances_[j]))
        else:
            chol = np.linalg.cholesky(est.covariances_[j])
            parts += [np.log(np.diag(chol)), chol[np.tril_indices(d, -1)]]
    if not fixed:
        parts.append(np.log(est.dofs_))
    return np.concatenate(parts)


@pytest.mark.parametrize(
    ("d", "covariance_type", "dof"),
    [(1, "diag", None), (1, "diag", 5.0), (3, "full", None), (3, "full", [3.0, 8.0])],
)
def test_em_is_a_stationary_point_of_the_likelihood(d, covariance_type, dof):
    X = _simulate(200, d, seed=d)
    est = StudentTMixtureEM(
        2, covariance_type=covariance_type, dof=dof, tol=1e-13, max_iter=20_000, reg_covar=0
    )
    est.set_params(random_state=0).fit(X)
    diag, fixed = covariance_type == "diag", None if dof is None else est.dofs_
    theta = _theta(est, diag, fixed is not None)
    f0 = _negloglik(theta, X, 2, diag, fixed)
    assert -f0 == pytest.approx(est.score(X) * 200, rel=1e-12)
    res = optimize.minimize(_negloglik, theta, args=(X, 2, diag, fixed), method="BFGS")
    assert f0 - res.fun <= 1e-6 * abs(f0)
    # the check has teeth: from a few EM iterations, scipy does improve by more than that
    early = StudentTMixtureEM(2, covariance_type=covariance_type, dof=dof, max_iter=2, tol=1e-13)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        early.set_params(random_state=0, reg_covar=0).fit(X)
    theta = _theta(early, diag, fixed is not None)
    f_early = _negloglik(theta, X, 2, diag, fixed)
    res = optimize.minimize(_negloglik, theta, args=(X, 2, diag, fixed), method="BFGS")
    assert f_early - res.fun > 1e-6 * abs(f_early)


@hypothesis_settings()
@given(
    seed=st.integers(0, 2**31 - 1),
    k=st.integers(1, 3),
    d=st.integers(1, 2),
    covariance_type=st.sampled_from(["full", "diag"]),
    fixed=st.booleans(),
    map_em=st.booleans(),
    dof_step=st.sampled_from(["ecme", "ecm"]),
)
def test_em_never_decreases_its_objective(seed, k, d, covariance_type, fixed, map_em, dof_step):
    X = _simulate(40, d, seed, nu=(2.5, 8.0))
    prior = None
    if map_em:
        prior = {
            "weights_alpha": 1.5,
            "mu_loc": 0.0,
            "mu_scale": 3.0,
            "sigma_scale": 2.0,
            "lkj_eta": 2.0,
            "dof_shape": 2.0,
            "dof_rate": 0.1,
        }
    est = StudentTMixtureEM(
        k,
        covariance_type=covariance_type,
        dof=4.0 if fixed else None,
        dof_step=dof_step,
        tol=1e-300,
        max_iter=15,
        init_params="random",
        reg_covar=0,
        prior=prior,
        random_state=seed,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X)
    assert np.all(np.diff(est.lower_bounds_) >= -1e-10 * np.abs(est.lower_bounds_[1:]))


def test_ecme_and_ecm_reach_the_same_mle_and_ecme_is_faster():
    X = _simulate(200, 1, seed=1)
    fits = {}
    for step in ("ecm", "ecme"):
        est = StudentTMixtureEM(
            2, covariance_type="diag", dof_step=step, tol=1e-12, max_iter=20_000, reg_covar=0
        )
        fits[step] = est.set_params(random_state=0).fit(X)
    ecm, ecme = fits["ecm"], fits["ecme"]
    # the same maximum (ECM creeps along the flat nu direction: its nu stops ~1e-3 short)
    assert ecme.score(X) == pytest.approx(ecm.score(X), rel=1e-9)
    assert ecme.score(X) >= ecm.score(X) - 1e-12
    np.testing.assert_allclose(ecme.dofs_, ecm.dofs_, rtol=5e-3)
    np.testing.assert_allclose(ecme.means_, ecm.means_, atol=1e-4)
    assert ecme.n_iter_ < ecm.n_iter_ / 4  # measured: 315 vs 2742 iterations


def test_integer_weights_equal_repeated_rows():
    rng = np.random.default_rng(3)
    X = _simulate(30, 2, seed=3)
    weights = rng.integers(0, 4, size=30)
    for covariance_type, cov in [("full", COV[:, :2, :2]), ("diag", _sd(COV)[:, :2] ** 2)]:

        def fit(data, sample_weight=None, covariance_type=covariance_type, cov=cov):
            est = StudentTMixtureEM(
                2, covariance_type=covariance_type, warm_start=True, tol=1e-12, max_iter=30
            )
            _set_params(est, [0.4, 0.6], np.array([[0.0, 0.0], [4.0, 4.0]]), cov, [5.0, 5.0])
            est.converged_, est.lower_bound_ = False, -np.inf
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                return est.fit(data, sample_weight=sample_weight)

        a = fit(X, sample_weight=weights)
        b = fit(np.repeat(X, weights, axis=0))
        for name in ("weights_", "means_", "covariances_", "dofs_", "lower_bounds_"):
            np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=0, atol=1e-10)


# ---------------------------------------------------------------------------- outliers
def _with_outliers(n=4000, seed=0):
    """Two unit-sd clusters at (-2.5, 0) and (2.5, 0), plus 5 % gross outliers near (0, 15)."""
    rng = np.random.default_rng(seed)
    means = np.array([[-2.5, 0.0], [2.5, 0.0]])
    z = rng.integers(0, 2, n)
    X = means[z] + rng.standard_normal((n, 2))
    outliers = rng.uniform(-4.0, 4.0, (n // 20, 2)) + np.array([0.0, 15.0])
    return np.vstack([X, outliers]), means


def test_t_mixture_shrugs_off_gross_outliers_that_drag_a_gaussian_mixture():
    X, truth = _with_outliers()
    kwargs = {"covariance_type": "full", "random_state": 0, "tol": 1e-6, "max_iter": 500}
    t_fit = StudentTMixtureEM(2, **kwargs).fit(X)
    g_fit = GaussianMixtureEM(2, **kwargs).fit(X)

    def error(means):  # in units of the clusters' sd (1)
        return np.abs(means[np.argsort(means[:, 0])] - truth).max()

    assert error(t_fit.means_) < 0.1
    assert error(g_fit.means_) > 0.1


# ---------------------------------------------------------------------------- draws
def test_draws_follow_the_t_distribution():
    """(x - mu)^T Sigma^{-1} (x - mu) / D ~ F(D, nu) for draws of each component."""
    rng = np.random.default_rng(4)
    params = {"w": W[None], "mu": MU[None], "cov": COV[None], "nu": NU[None]}
    x, z = sample_draws(FAM, params, 6000, rng)
    est = _set_params(StudentTMixtureEM(2, random_state=5), W, MU, COV, NU)
    xe, ze = est.sample(6000)
    diag_params = {"w": W[None], "mu": MU[None], "sigma": _sd(COV)[None], "nu": NU[None]}
    xd, zd = sample_draws(FAM, diag_params, 6000, rng)
    for draws, labels, scale in [
        (x[0], z[0], COV),
        (xe, ze, COV),
        (xd[0], zd[0], np.stack([np.diag(c) for c in _sd(COV) ** 2])),
    ]:
        for k in range(2):
            diff = draws[labels == k] - MU[k]
            maha = np.einsum("nd,de,ne->n", diff, np.linalg.inv(scale[k]), diff)
            assert stats.kstest(maha / 3, stats.f(3, NU[k]).cdf).pvalue > 1e-3
    np.testing.assert_allclose(np.bincount(z[0]) / 6000, W, atol=0.02)


# ---------------------------------------------------------------------------- family pieces
def test_default_priors_are_scaled_to_the_data():
    X = _simulate(50, 2, seed=0) * [1.0, 10.0] + [0.0, 100.0]
    pri = FAM.resolve_priors(None, X, 2, "full")
    mean, sd = X.mean(0), X.std(0, ddof=1)
    np.testing.assert_allclose(pri["mu_loc"], mean)
    np.testing.assert_allclose(pri["mu_scale"], 2 * sd)
    np.testing.assert_allclose(pri["sigma_scale"], sd)
    assert (pri["lkj_eta"], pri["dof_shape"], pri["dof_rate"]) == (2.0, 2.0, 0.1)
    assert "lkj_eta" not in FAM.resolve_priors(None, X, 2, "diag")
    given = SimpleNamespace(mu_loc=1.0, mu_scale=None, sigma_scale=[1.0, 2.0], dof_shape=3.0)
    pri = FAM.resolve_priors(given, X, 2, "diag")
    np.testing.assert_allclose(pri["mu_loc"], [1.0, 1.0])
    np.testing.assert_allclose(pri["sigma_scale"], [1.0, 2.0])
    assert pri["dof_shape"] == 3.0


def test_n_parameters_counts_the_dofs_and_matches_bic():
    assert FAM.n_parameters(2, 3, "full") == 2 * 6 + 2 * 3 + 2 + 1
    assert FAM.n_parameters(3, 2, "diag") == 3 * 2 + 3 * 2 + 3 + 2
    X = _simulate(60, 2, seed=1)
    est = StudentTMixtureEM(2, random_state=0).fit(X)
    log_lik = est.score(X) * 60
    assert est.bic(X) == pytest.approx(-2 * log_lik + FAM.n_parameters(2, 2, "full") * np.log(60))
    fixed = StudentTMixtureEM(2, dof=4.0, random_state=0).fit(X)
    assert fixed.aic(X) == pytest.approx(-2 * fixed.score(X) * 60 + 2 * (2 * 3 + 4 + 1))


def test_parameter_errors():
    X = _simulate(20, 2, seed=0)
    cases = [
        ({"covariance_type": "spherical"}, "covariance_type"),
        ({"dof": -1.0}, "dof"),
        ({"dof": [1.0, 2.0, 3.0]}, "dof"),
        ({"prior": {"nu_shape": 1.0}}, "unknown prior key"),
        ({"prior": {"dof_shape": 2.0}}, "dof_shape and dof_rate"),
        ({"prior": {"sigma_scale": 0.0}}, "sigma_scale"),
        ({"prior": [1.0]}, "dict"),
    ]
    for kwargs, match in cases:
        with pytest.raises(ParameterError, match=match):
            StudentTMixtureEM(2, **kwargs).fit(X)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_collapsed_component_is_a_data_error(covariance_type):
    # three components on two repeated points and one other row: a scale becomes singular
    X = np.r_[np.zeros((5, 2)), np.full((5, 2), 3.0), [[1.0, 2.0]]]
    est = StudentTMixtureEM(3, covariance_type=covariance_type, reg_covar=0, random_state=0)
    with pytest.raises(DataError, match="not positive definite: expected .*; increase reg_covar"):
        est.fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.set_params(reg_covar=1e-6).fit(X)  # the regulariser keeps it positive
    assert np.all(np.isfinite(est.score_samples(X)))


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_em_point_and_em_kwargs_round_trip(covariance_type):
    X = _simulate(60, 2, seed=2)
    spec = SimpleNamespace(covariance=covariance_type, n_components=2, ordered=False)
    pri = FAM.resolve_priors(None, X, 2, covariance_type)
    pri["weights_alpha"] = np.ones(2)
    kwargs = FAM.em_kwargs(spec, pri, 2)
    assert kwargs["covariance_type"] == covariance_type
    est = StudentTMixtureEM(2, random_state=0, **kwargs).fit(X)
    point = FAM.em_point(est, 2)
    assert set(point) == {"w", *FAM.variables(covariance_type, 2)}
    np.testing.assert_array_equal(point["nu"], est.dofs_)
    comp = FAM.component_log_density(X, point)
    np.testing.assert_allclose(
        logsumexp(np.log(point["w"]) + comp, axis=1), est.score_samples(X), atol=1e-10
    )
    init = FAM.point_to_initvals(spec, point, 2)
    assert set(init) == set(FAM.free_var_names(spec, 2))
    if covariance_type == "full":
        corr = init["corr_chol"] @ np.swapaxes(init["corr_chol"], -1, -2)
        np.testing.assert_allclose(corr, point["corr"], atol=1e-12)
    default = FAM.default_point(spec, X)
    assert default["sigma"].shape == (2, 2) and np.all(default["nu"] > 0)


# ---------------------------------------------------------------------------- the graph
def _model(X, priors, alpha, covariance):
    import pymc as pm

    n, d = X.shape
    coords = {
        "component": np.arange(2),
        "feature": [f"x{j}" for j in range(d)],
        "feature_bis": [f"x{j}" for j in range(d)],
        "obs_id": np.arange(n),
    }
    spec = SimpleNamespace(n_components=2, covariance=covariance, ordered=False)
    with pm.Model(coords=coords) as model:
        x_data = pm.Data("x_data", X, dims=("obs_id", "feature"))
        data = {k: pm.Data(f"prior_{k}", np.asarray(v, float)) for k, v in priors.items()}
        w = pm.Dirichlet("w", a=pm.Data("prior_weights_alpha", alpha), dims="component")
        FAM.add_to_graph(spec, data, d, w, {"observed": x_data, "dims": ("obs_id", "feature")})
    return model


@pytest.fixture(scope="module", params=["full", "diag"])
def graph(request):
    X = _simulate(16, 2, seed=5)
    pri = FAM.resolve_priors(None, X, 2, request.param)
    alpha = np.array([1.5, 2.0])
    model = _model(X, pri, alpha, request.param)
    # compiled once per model (seconds each): both tests below evaluate it
    return request.param, X, pri, alpha, model, model.compile_logp(jacobian=False)


def _values(covariance, w, mu, cov, nu):
    sd = _sd(cov)
    out = {"w": w, "mu": mu, "sigma": sd, "nu": nu}
    if covariance == "full":
        out["corr_chol"] = np.linalg.cholesky(cov / (sd[:, :, None] * sd[:, None, :]))
    return out


def test_graph_logp_equals_numpy_mixture_and_scipy_priors(graph):
    covariance, X, pri, alpha, model, lp = graph
    cov = (
        COV[:, :2, :2]
        if covariance == "full"
        else np.stack([np.diag(_sd(COV)[k, :2] ** 2) for k in range(2)])
    )
    mu = MU[:, :2]
    point = unconstrained_point(model, _values(covariance, W, mu, cov, NU))
    want = sum(W[k] * stats.multivariate_t.pdf(X, mu[k], cov[k], df=NU[k]) for k in range(2))
    want = np.log(want).sum()
    want += stats.dirichlet.logpdf(W, alpha)
    want += stats.norm.logpdf(mu, pri["mu_loc"], pri["mu_scale"]).sum()
    want += stats.halfnorm.logpdf(_sd(cov), scale=pri["sigma_scale"]).sum()
    want += stats.gamma.logpdf(NU, pri["dof_shape"], scale=1 / pri["dof_rate"]).sum()
    if covariance == "full":  # LKJ in 2-D: (r + 1) / 2 ~ Beta(eta, eta), with the 1/2
        r = cov[:, 0, 1] / (_sd(cov)[:, 0] * _sd(cov)[:, 1])
        eta = float(pri["lkj_eta"])
        want += (stats.beta.logpdf((r + 1) / 2, eta, eta) - np.log(2)).sum()
    assert lp(point) == pytest.approx(want, rel=0, abs=1e-8)


def test_map_em_is_the_graph_posterior_mode(graph):
    covariance, X, pri, alpha, model, lp = graph
    prior = {"weights_alpha": alpha, **pri}
    est = StudentTMixtureEM(
        2, covariance_type=covariance, prior=prior, tol=1e-14, max_iter=5000, reg_covar=0
    )
    est.set_params(random_state=0).fit(X)
    cov = (
        est.covariances_
        if covariance == "full"
        else np.stack([np.diag(c) for c in est.covariances_])
    )
    point = unconstrained_point(
        model, _values(covariance, est.weights_, est.means_, cov, est.dofs_)
    )
    # EM's objective is the graph's log posterior (without Jacobian) per observation
    assert est.objective(X) * X.shape[0] == pytest.approx(lp(point), rel=0, abs=1e-8)
    names = list(point)
    shapes = [np.shape(point[n]) for n in names]
    sizes = [int(np.prod(s)) for s in shapes]

    def unflatten(v):
        parts = np.split(v, np.cumsum(sizes)[:-1])
        return {n: p.reshape(s) for n, p, s in zip(names, parts, shapes, strict=True)}

    x0 = np.concatenate([np.ravel(point[n]) for n in names])
    res = optimize.minimize(lambda v: -lp(unflatten(v)), x0, method="BFGS", options={"gtol": 1e-9})
    assert -res.fun - lp(point) < 1e-6 * abs(lp(point))
    np.testing.assert_allclose(res.x, x0, atol=1e-3)


def test_graph_random_draws_the_mixture(graph):
    from bayesmix.families.student_t import _random_diag, _random_full

    covariance = graph[0]
    cov = COV[:, :2, :2]
    rng = np.random.default_rng(6)
    if covariance == "full":
        x = _random_full(W, MU[:, :2], np.linalg.cholesky(cov), NU, rng=rng, size=(20_000,))
    else:
        x = _random_diag(W, MU[:, :2], _sd(cov), NU, rng=rng, size=(20_000,))
        cov = np.stack([np.diag(np.diag(c)) for c in cov])
    assert x.shape == (20_000, 2)
    # the mixture's distribution function at a few points, against SciPy's t cdf... through
    # the density: compare the sample mean with the mixture mean (nu > 1) to 5 standard errors
    mean = W @ MU[:, :2]
    var = sum(W[k] * (NU[k] / (NU[k] - 2) * np.diag(cov[k]) + MU[k, :2] ** 2) for k in range(2))
    se = np.sqrt((var - mean**2) / 20_000)
    assert np.all(np.abs(x.mean(0) - mean) < 5 * se)


# ---------------------------------------------------------------------------- scikit-learn
@parametrize_with_checks([StudentTMixtureEM(), StudentTMixtureEM(covariance_type="diag")])
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_spec_can_fix_the_degrees_of_freedom():
    """[priors] dof: nu is a constant (no free variable); the graph's log density is the one
    of the estimated-dof model at that nu minus the Gamma prior's log density; EM keeps it."""
    from scipy import stats

    from bayesmix._validation import SpecError
    from bayesmix.config import ModelSpec, spec_from_dict
    from bayesmix.graphs import build_model
    from bayesmix.inference import fit_em

    rng = np.random.default_rng(1)
    X = np.concatenate([rng.standard_t(3, size=(60, 1)) - 4, rng.standard_t(3, size=(60, 1)) + 4])
    table = {"model": {"family": "student_t", "components": 2, "covariance": "diag"}}
    fixed = spec_from_dict({**table, "priors": {"dof": 3.0}}).model
    m = build_model(fixed, X)
    assert [v.name for v in m.free_RVs] == ["w", "mu", "sigma"]
    free = build_model(ModelSpec("student_t", 2, "diag"), X)
    point = {"w_simplex__": np.array([0.3]), "mu": np.array([[-4.0], [4.5]])}
    point["sigma_log__"] = np.log([[0.9], [1.2]])
    lp_fixed = m.compile_logp(jacobian=False)(point)
    lp_free = free.compile_logp(jacobian=False)({**point, "nu_log__": np.log([3.0, 3.0])})
    gamma = 2 * stats.gamma(2.0, scale=1 / 0.1).logpdf(3.0)
    assert lp_free - lp_fixed == pytest.approx(gamma, rel=1e-10)
    em = fit_em(fixed, X, random_state=0, n_init=1)
    np.testing.assert_array_equal(em["em"]["nu"].values, [3.0, 3.0])
    with pytest.raises(SpecError, match=r"\[priors\] dof: expected a positive number"):
        spec_from_dict({**table, "priors": {"dof": [3.0, 4.0]}})
    with pytest.raises(SpecError, match=r"\[priors\] dof: expected a positive number"):
        spec_from_dict({**table, "priors": {"dof": -1}})
