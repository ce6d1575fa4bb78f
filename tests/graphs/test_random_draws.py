"""Random draws of the graphs, of the predictive samplers and of ``generate``, checked by
their moments: weights, means and covariances of many draws against the parameters, at a few
standard errors (the standard errors are estimated from the draws themselves).

The other tests of the graphs check only the shapes of random draws; a transposed Cholesky
factor in ``_random_full`` (draws with covariance ``L^T L`` instead of ``L L^T``) passed them.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytest
import xarray as xr

from bayesmix.config import ModelSpec, PriorSpec
from bayesmix.graphs import build_model

MODE = "FAST_COMPILE"
Z_MAX = 4.5  # standard errors; every check below uses a fixed seed

W = np.array([0.5, 0.3, 0.2])
# components 20+ standard deviations apart: a draw's component is its nearest mean
MU = np.array([[-20.0, 0.0], [0.0, 20.0], [20.0, -5.0]])
SD = np.array([[1.0, 2.0], [0.5, 1.5], [2.0, 0.7]])
RHO = np.array([0.9, -0.6, 0.3])  # strong correlations: L L^T and L^T L differ a lot


def _cov(sd=SD, rho=RHO):
    k = len(rho)
    corr = np.repeat(np.eye(2)[None], k, axis=0)
    corr[:, 0, 1] = corr[:, 1, 0] = rho
    return sd[:, :, None] * corr * sd[:, None, :], corr


def _z_mean(x, mean):
    """z-scores of the sample mean of x (n, D) against ``mean`` (D,)."""
    se = x.std(axis=0, ddof=1) / np.sqrt(len(x))
    return (x.mean(axis=0) - mean) / se


def _z_cov(x, mean, cov):
    """z-scores of the second moments about the known ``mean`` against ``cov`` (D, D)."""
    r = x - mean
    prod = r[:, :, None] * r[:, None, :]  # (n, D, D)
    se = prod.std(axis=0, ddof=1) / np.sqrt(len(x))
    return (prod.mean(axis=0) - cov) / se


def _z_weights(z, w):
    counts = np.bincount(z, minlength=len(w)) / len(z)
    return (counts - w) / np.sqrt(w * (1 - w) / len(z))


def assert_gaussian_mixture_draws(x, w, mu, cov):
    """Draws x (n, D) of a well-separated mixture: weights, means, covariances per component."""
    z = np.argmin(((x[:, None, :] - mu[None]) ** 2).sum(-1), axis=1)
    assert np.abs(_z_weights(z, w)).max() < Z_MAX
    for k in range(len(w)):
        xk = x[z == k]
        assert np.abs(_z_mean(xk, mu[k])).max() < Z_MAX, (k, xk.mean(0), mu[k])
        zc = _z_cov(xk, mu[k], cov[k])
        assert np.abs(zc).max() < Z_MAX, (k, np.cov(xk.T), cov[k])


def assert_whitened(x, w, mu, cov):
    """Draws x (S, n, D), each row s from the mixture with parameters number s.

    ``E[x | s] = m_s`` and ``Cov[x | s] = C_s`` (the mixture's mean and covariance), so
    ``L_s^{-1} (x - m_s)`` has mean 0 and covariance I over all draws.
    """
    m = np.einsum("sk,skd->sd", w, mu)
    dev = mu - m[:, None, :]
    c = cov + dev[..., :, None] * dev[..., None, :]
    c = np.einsum("sk,skde->sde", w, c)
    chol = np.linalg.cholesky(c)
    white = np.linalg.solve(chol[:, None], (x - m[:, None, :])[..., None])[..., 0]
    flat = white.reshape(-1, x.shape[-1])
    d = x.shape[-1]
    assert np.abs(_z_mean(flat, np.zeros(d))).max() < Z_MAX
    assert np.abs(_z_cov(flat, np.zeros(d), np.eye(d))).max() < Z_MAX


def _draw_fixed(model, values, draws, seed):
    fixed = pm.do(model, values)
    return pm.draw(fixed["x"], draws=draws, random_seed=seed, mode=MODE)


def _dummy_data(family, n, d, seed=0):
    rng = np.random.default_rng(seed)
    if family == "bernoulli":
        return (rng.random((n, d)) < 0.5).astype(np.int64)
    return rng.normal(size=(n, d))


# ---------------------------------------------------------------------------------------------
# the graph's random (CustomDist random=...): _random_full, _random_diag, _random_bernoulli


def test_graph_random_full_has_the_parameters_moments():
    cov, corr = _cov()
    model = build_model(ModelSpec("gaussian", 3, "full"), _dummy_data("gaussian", 200, 2))
    values = {"w": W, "mu": MU, "sigma": SD, "corr_chol": np.linalg.cholesky(corr)}
    x = _draw_fixed(model, values, 100, 1).reshape(-1, 2)  # 20 000 draws
    assert_gaussian_mixture_draws(x, W, MU, cov)


def test_graph_random_diag_and_spherical_have_the_parameters_moments():
    model = build_model(ModelSpec("gaussian", 3, "diag"), _dummy_data("gaussian", 200, 2))
    x = _draw_fixed(model, {"w": W, "mu": MU, "sigma": SD}, 100, 2).reshape(-1, 2)
    assert_gaussian_mixture_draws(x, W, MU, np.stack([np.diag(s**2) for s in SD]))
    sph = build_model(ModelSpec("gaussian", 3, "spherical"), _dummy_data("gaussian", 200, 2))
    s = np.array([1.0, 0.5, 2.0])
    x = _draw_fixed(sph, {"w": W, "mu": MU, "sigma_spherical": s}, 100, 3).reshape(-1, 2)
    assert_gaussian_mixture_draws(x, W, MU, s[:, None, None] ** 2 * np.eye(2))


def test_graph_random_bernoulli_has_the_mixture_moments():
    # mixture mean sum_k w_k p_k and cross moments sum_k w_k p_k p_k^T (off the diagonal)
    p = np.array([[0.9, 0.1, 0.8, 0.3], [0.2, 0.7, 0.5, 0.9], [0.5, 0.5, 0.05, 0.6]])
    model = build_model(ModelSpec("bernoulli", 3), _dummy_data("bernoulli", 200, 4))
    x = _draw_fixed(model, {"w": W, "p": p}, 100, 4).reshape(-1, 4).astype(float)
    m = W @ p
    second = np.einsum("k,ki,kj->ij", W, p, p)
    second[np.diag_indices(4)] = m  # x^2 = x
    assert np.abs(_z_mean(x, m)).max() < Z_MAX
    prod = x[:, :, None] * x[:, None, :]
    se = prod.std(axis=0, ddof=1) / np.sqrt(len(x))
    assert np.abs((prod.mean(0) - second) / se).max() < Z_MAX


def test_graph_random_full_batched_parameters():
    # CustomDist hands parameters in with batch axes: one parameter set per batch element
    from bayesmix.families.gaussian import _random_full

    rng = np.random.default_rng(5)
    cov, _ = _cov()
    s = 4000
    scale = rng.uniform(0.5, 2.0, size=s)
    covs = cov[None] * scale[:, None, None, None] ** 2
    mus = MU[None] + rng.normal(0, 1, size=(s, 3, 2))
    ws = np.broadcast_to(W, (s, 3))
    x = _random_full(ws, mus, np.linalg.cholesky(covs), rng=rng, size=(s,))
    assert x.shape == (s, 2)
    assert_whitened(x[:, None, :], ws, mus, covs)


# ---------------------------------------------------------------------------------------------
# inference: prior predictive (PyMC, through the graph), posterior predictive and generate


def test_prior_predictive_draws_have_each_prior_draws_moments():
    from bayesmix.inference import sample_prior_predictive

    rng = np.random.default_rng(6)
    X = rng.normal(size=(60, 2)) @ np.array([[1.0, 0.8], [0.0, 0.6]])
    spec = ModelSpec("gaussian", 2, "full", priors=PriorSpec(lkj_eta=1.0))
    tree = sample_prior_predictive(spec, X, draws=400, random_seed=7)
    prior = tree["prior"].to_dataset()
    ds = prior.stack(sample=("chain", "draw"))
    w = ds["w"].transpose("sample", "component").values
    mu = ds["mu"].transpose("sample", "component", "feature").values
    cov = ds["cov"].transpose("sample", "component", "feature", "feature_bis").values
    x = (
        tree["prior_predictive"]["x"]
        .to_dataset()
        .stack(sample=("chain", "draw"))["x"]
        .transpose("sample", "obs_id", "feature")
        .values
    )
    assert x.shape == (400, 60, 2)
    assert_whitened(x, w, mu, cov)


def _fake_result(family, params, n_obs, n_chain=2, n_draw=300, seed=8):
    """A result tree holding posterior draws scattered around ``params`` and an ``em`` group."""
    from bayesmix.inference._tree import new_tree

    rng = np.random.default_rng(seed)
    k, d = params["mu" if family == "gaussian" else "p"].shape
    spec = ModelSpec(family, k, "full") if family == "gaussian" else ModelSpec(family, k)
    X = _dummy_data(family, n_obs, d).astype(float)
    names = [f"x{j}" for j in range(d)]
    tree = new_tree(spec, X, names, seed)
    shape = (n_chain, n_draw)
    dims = ("chain", "draw", "component")
    fd = (*dims, "feature")
    post = {"w": (dims, rng.dirichlet(params["w"] * 200, size=shape))}
    point = {"w": ("component", params["w"])}
    if family == "gaussian":
        mu = params["mu"] + rng.normal(0, 0.3, size=shape + (k, d))
        sc = np.exp(rng.normal(0, 0.2, size=shape + (k,)))
        cov = params["cov"] * sc[..., None, None] ** 2
        sd = np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1))
        post.update(mu=(fd, mu), sigma=(fd, sd), cov=((*fd, "feature_bis"), cov))
        psd = np.sqrt(np.diagonal(params["cov"], axis1=-2, axis2=-1))
        point.update(
            mu=(("component", "feature"), params["mu"]),
            sigma=(("component", "feature"), psd),
            cov=(("component", "feature", "feature_bis"), params["cov"]),
        )
    else:
        p = np.clip(params["p"] + rng.normal(0, 0.05, size=shape + (k, d)), 0.01, 0.99)
        post["p"] = (fd, p)
        point["p"] = (("component", "feature"), params["p"])
    coords = {"component": np.arange(k), "feature": names, "feature_bis": names}
    post_ds = xr.Dataset(post, coords=coords)
    post_ds = post_ds.drop_vars([c for c in post_ds.coords if c not in post_ds.dims])
    tree["posterior"] = xr.DataTree(post_ds)
    em = xr.Dataset(point, coords=coords)
    tree["em"] = xr.DataTree(em.drop_vars([c for c in em.coords if c not in em.dims]))
    return tree


def _post_arrays(tree, names, chain_draw=None):
    ds = tree["posterior"].to_dataset()
    if chain_draw is not None:
        ds = ds.sel(chain=chain_draw[0], draw=chain_draw[1])
    ds = ds.stack(sample=("chain", "draw"))
    out = {}
    for n in names:
        da = ds[n]
        out[n] = da.transpose("sample", *[d for d in da.dims if d != "sample"]).values
    return out


def test_posterior_predictive_draws_have_each_posterior_draws_moments():
    from bayesmix.inference import sample_posterior_predictive

    cov, _ = _cov()
    tree = _fake_result("gaussian", {"w": W, "mu": MU, "cov": cov}, n_obs=50)
    out = sample_posterior_predictive(tree, random_seed=9)
    pp = out["posterior_predictive"]["x"].to_dataset()
    pp = pp.stack(sample=("chain", "draw"))["x"].transpose("sample", "obs_id", "feature")
    par = _post_arrays(tree, ("w", "mu", "cov"))
    assert pp.shape == (600, 50, 2)
    assert_whitened(pp.values.astype(float), par["w"], par["mu"], par["cov"])


def test_generate_from_point_estimate_has_its_moments():
    from bayesmix.inference import generate

    cov, _ = _cov()
    tree = _fake_result("gaussian", {"w": W, "mu": MU, "cov": cov}, n_obs=20)
    x, z = generate(tree, 20_000, group="em", random_seed=10)
    assert np.abs(_z_weights(z, W)).max() < Z_MAX
    # z is the component each point came from: it must agree with the nearest mean
    near = np.argmin(((x[:, None, :] - MU[None]) ** 2).sum(-1), axis=1)
    assert (near == z).mean() > 0.999
    assert_gaussian_mixture_draws(x, W, MU, cov)


def test_generate_from_posterior_draws_is_the_predictive_mixture():
    from bayesmix.inference import generate

    cov, _ = _cov()
    tree = _fake_result("gaussian", {"w": W, "mu": MU, "cov": cov}, n_obs=20)
    x, z = generate(tree, 20_000, group="posterior", random_seed=11)
    par = _post_arrays(tree, ("w", "mu", "cov"))
    # the posterior predictive is the average of the draws' mixtures: its mean and covariance
    w, mu, c = par["w"], par["mu"], par["cov"]
    m_s = np.einsum("sk,skd->sd", w, mu)
    mean = m_s.mean(0)
    second = np.einsum("sk,skde->de", w, c + mu[..., :, None] * mu[..., None, :]) / len(w)
    total_cov = second - np.outer(mean, mean)
    assert np.abs(_z_mean(x, mean)).max() < Z_MAX
    assert np.abs(_z_cov(x, mean, total_cov)).max() < Z_MAX
    assert np.abs(_z_weights(z, w.mean(0))).max() < Z_MAX


def test_generate_bernoulli_from_point_estimate_has_its_moments():
    from bayesmix.inference import generate

    p = np.array([[0.9, 0.1, 0.8], [0.2, 0.7, 0.5], [0.5, 0.5, 0.05]])
    tree = _fake_result("bernoulli", {"w": W, "p": p}, n_obs=20)
    x, z = generate(tree, 30_000, group="em", random_seed=12)
    assert np.abs(_z_weights(z, W)).max() < Z_MAX
    for k in range(3):
        assert np.abs(_z_mean(x[z == k].astype(float), p[k])).max() < Z_MAX


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_em_sample_has_the_fitted_moments(covariance_type):
    from bayesmix.em import GaussianMixtureEM

    cov, _ = _cov()
    rng = np.random.default_rng(13)
    z0 = rng.choice(3, size=600, p=W)
    X = MU[z0] + np.einsum("nij,nj->ni", np.linalg.cholesky(cov)[z0], rng.normal(size=(600, 2)))
    gm = GaussianMixtureEM(3, covariance_type=covariance_type, random_state=0).fit(X)
    x, z = gm.sample(30_000)
    full = {
        "full": lambda c: c,
        "tied": lambda c: np.broadcast_to(c, (3, 2, 2)),
        "diag": lambda c: np.stack([np.diag(v) for v in c]),
        "spherical": lambda c: c[:, None, None] * np.eye(2),
    }[covariance_type](gm.covariances_)
    assert np.abs(_z_weights(z, gm.weights_)).max() < Z_MAX
    for k in range(3):
        xk = x[z == k]
        assert np.abs(_z_mean(xk, gm.means_[k])).max() < Z_MAX
        assert np.abs(_z_cov(xk, gm.means_[k], full[k])).max() < Z_MAX
