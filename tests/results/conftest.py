"""Hand-built result trees that follow docs/architecture.md exactly.

The fake posterior draws scatter around known parameters; some chains and draws carry
deliberately permuted labels so that label switching is known in advance.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from bayesmix import _math

TRUE_W = np.array([0.5, 0.3, 0.2])
TRUE_MU = np.array([[-4.0, 0.0], [0.0, 4.0], [4.0, -1.0]])
TRUE_SD = np.array([[0.8, 0.6], [0.5, 0.9], [0.7, 0.7]])
TRUE_RHO = np.array([0.3, -0.4, 0.0])
FEATURES = ["a", "b"]


def true_cov() -> np.ndarray:
    cov = np.empty((3, 2, 2))
    for k in range(3):
        s = TRUE_SD[k]
        r = TRUE_RHO[k]
        cov[k] = [[s[0] ** 2, r * s[0] * s[1]], [r * s[0] * s[1], s[1] ** 2]]
    return cov


def make_data(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    params = {"w": TRUE_W, "mu": TRUE_MU, "cov": true_cov()}
    return _math.sample_mixture(params, n, rng=rng)


def _point_dataset(w, mu, cov) -> xr.Dataset:
    sd = np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1))
    corr = cov / (sd[..., :, None] * sd[..., None, :])
    k = w.shape[-1]
    return xr.Dataset(
        {
            "w": ("component", w),
            "mu": (("component", "feature"), mu),
            "sigma": (("component", "feature"), sd),
            "cov": (("component", "feature", "feature_bis"), cov),
            "corr": (("component", "feature", "feature_bis"), corr),
        },
        coords={"component": np.arange(k), "feature": FEATURES, "feature_bis": FEATURES},
    )


def make_tree(
    *,
    n_chain: int = 4,
    n_draw: int = 400,
    chain_perms: dict[int, tuple[int, ...]] | None = None,
    switch_at: dict[int, tuple[int, tuple[int, ...]]] | None = None,
    em_perm: tuple[int, ...] = (0, 1, 2),
    with_map: bool = True,
    seed: int = 1,
    n_obs: int = 300,
) -> tuple[xr.DataTree, np.ndarray]:
    """A fake full-covariance K=3 result on 2-D data.

    ``chain_perms[c] = perm``: chain ``c`` is stored with its components permuted (new j is
    true component perm[j]). ``switch_at[c] = (t, perm)``: from draw ``t`` on chain ``c``
    switches to ``perm``. Returns the tree and the true permutation of each draw
    (chain, draw, K) (the index of the true component stored at position j).
    """
    rng = np.random.default_rng(seed)
    x, _ = make_data(n_obs, seed=0)
    k, d = TRUE_MU.shape
    shape = (n_chain, n_draw)
    # draws around the truth with a posterior-like spread
    w = rng.dirichlet(TRUE_W * 300, size=shape)
    mu = TRUE_MU + rng.normal(0, 0.08, size=shape + (k, d))
    sd = TRUE_SD * np.exp(rng.normal(0, 0.05, size=shape + (k, d)))
    rho = np.clip(TRUE_RHO + rng.normal(0, 0.05, size=shape + (k,)), -0.95, 0.95)
    cov = np.empty(shape + (k, d, d))
    cov[..., 0, 0] = sd[..., 0] ** 2
    cov[..., 1, 1] = sd[..., 1] ** 2
    cov[..., 0, 1] = cov[..., 1, 0] = rho * sd[..., 0] * sd[..., 1]
    perms = np.tile(np.arange(k), shape + (1,))
    for c, p in (chain_perms or {}).items():
        perms[c, :] = p
    for c, (t, p) in (switch_at or {}).items():
        perms[c, t:] = p
    idx = perms
    w = np.take_along_axis(w, idx, axis=-1)
    mu = np.take_along_axis(mu, idx[..., None], axis=-2)
    sd = np.take_along_axis(sd, idx[..., None], axis=-2)
    cov = np.take_along_axis(cov, idx[..., None, None], axis=-3)
    corr = cov / (sd[..., :, None] * sd[..., None, :])
    dims = ("chain", "draw", "component")
    coords = {
        "chain": np.arange(n_chain),
        "draw": np.arange(n_draw),
        "component": np.arange(k),
        "feature": FEATURES,
        "feature_bis": FEATURES,
        "obs_id": np.arange(len(x)),
    }
    posterior = xr.Dataset(
        {
            "w": (dims, w),
            "mu": ((*dims, "feature"), mu),
            "sigma": ((*dims, "feature"), sd),
            "cov": ((*dims, "feature", "feature_bis"), cov),
            "corr": ((*dims, "feature", "feature_bis"), corr),
        },
        coords={c: coords[c] for c in ("chain", "draw", "component", "feature", "feature_bis")},
    )
    params = {"w": w, "mu": mu, "cov": cov}
    loglik = _math.mixture_log_density(x, params)  # (chain, draw, N)
    log_lik = xr.Dataset(
        {"x": (("chain", "draw", "obs_id"), loglik)},
        coords={c: coords[c] for c in ("chain", "draw", "obs_id")},
    )
    stats = xr.Dataset(
        {
            "diverging": (("chain", "draw"), np.zeros(shape, dtype=bool)),
            "lp": (("chain", "draw"), loglik.sum(-1)),
        },
        coords={c: coords[c] for c in ("chain", "draw")},
    )
    observed = xr.Dataset(
        {"x": (("obs_id", "feature"), x)},
        coords={"obs_id": coords["obs_id"], "feature": FEATURES},
    )
    ep = np.asarray(em_perm)
    em = _point_dataset(TRUE_W[ep], TRUE_MU[ep], true_cov()[ep])
    em["lower_bounds"] = ("iteration", np.linspace(-900.0, -800.0, 12))
    em.attrs.update(method="ml", n_iter=12, converged=True, lower_bound=-800.0, n_init=3)
    groups = {
        "posterior": posterior,
        "sample_stats": stats,
        "log_likelihood": log_lik,
        "observed_data": observed,
        "em": em,
    }
    if with_map:
        mp = _point_dataset(TRUE_W, TRUE_MU, true_cov())  # MAP in the true order
        mp.attrs.update(logp=-812.5, n_starts=4, starts_agree=True)
        groups["map"] = mp
    tree = xr.DataTree.from_dict(groups)
    spec = {"family": "gaussian", "n_components": k, "covariance": "full", "ordered": False}
    tree.attrs.update(
        bayesmix_version="0.1.0",
        spec=json.dumps(spec),
        seed=seed,
        family="gaussian",
        covariance="full",
        n_components=k,
        created="2026-11-27T08:00:00+00:00",
        format="bayesmix-result/1",
    )
    return tree, perms


@pytest.fixture(scope="session")
def switched_tree():
    """Chain 1 stored permuted, chain 2 switches mid-way, EM labels permuted too."""
    return make_tree(
        chain_perms={1: (2, 0, 1)},
        switch_at={2: (200, (1, 0, 2)), 3: (300, (0, 2, 1))},
        em_perm=(1, 2, 0),
    )


@pytest.fixture(scope="session")
def clean_tree():
    """No label switching, EM in the true order."""
    return make_tree()
