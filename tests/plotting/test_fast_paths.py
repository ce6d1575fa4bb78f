"""The faster routes of the figures give ArviZ's and SciPy's numbers.

``plot_ppc`` computes its KDEs in NumPy (``_kde_rows_in_range``) instead of calling
``scipy.stats.gaussian_kde`` once per curve, and ``plot_rank`` runs ArviZ's multi-chain
uniformity test through a table of the hypergeometric distribution
(``mcmc._rank_array_class``, handed to ArviZ through ``rcParams["stats.module"]``). Both must
give the numbers of the originals, and the rank test the same marked draws.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import gaussian_kde, rankdata

from bayesmix import plotting
from bayesmix.plotting._axes import _kde_in_range, _kde_rows_in_range
from bayesmix.plotting.mcmc import _rank_array_class

# --------------------------------------------------------------------------------------------
# the PPC's KDEs
# --------------------------------------------------------------------------------------------


def _scipy_kde_in_range(values, lim, grid):
    """The former ``_kde_in_range``: SciPy's KDE of the values inside, times their share."""
    values = np.asarray(values, dtype=float)
    inside = values[(values >= lim[0]) & (values <= lim[1])]
    if inside.size < 2 or np.ptp(inside) == 0:
        return np.zeros_like(grid)
    return gaussian_kde(inside)(grid) * (inside.size / values.size)


def test_kde_rows_equal_scipy_gaussian_kde():
    rng = np.random.default_rng(0)
    values = rng.normal(1.0, 3.0, size=(12, 150))
    values[1, :] = 2.0  # constant: no curve
    values[2, :149] = 50.0  # fewer than 2 values inside
    values[3, 7] = np.nan  # a missing value counts as outside
    values[4, :5] = 40.0  # far values: the curve keeps the bulk's bandwidth
    lim = (-8.0, 9.0)
    grid = np.linspace(*lim, 300)
    got = _kde_rows_in_range(values, lim, grid)
    expected = np.array([_scipy_kde_in_range(v, lim, grid) for v in values])
    assert got.shape == (12, 300)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)
    assert not got[1].any() and not got[2].any()
    np.testing.assert_allclose(_kde_in_range(values[0], lim, grid), expected[0], rtol=1e-12)


def test_kde_rows_in_blocks(monkeypatch):
    import bayesmix.plotting._axes as axes_module

    rng = np.random.default_rng(1)
    values = rng.normal(size=(3, 500))
    grid = np.linspace(-4, 4, 50)
    whole = _kde_rows_in_range(values, (-4, 4), grid)
    monkeypatch.setattr(axes_module, "_KDE_BLOCK", 1000)  # 20 values a block
    np.testing.assert_allclose(_kde_rows_in_range(values, (-4, 4), grid), whole, rtol=1e-13)


# --------------------------------------------------------------------------------------------
# the rank plot's multi-chain uniformity test
# --------------------------------------------------------------------------------------------


def _fractional_ranks(x):
    """Ranks over every chain and draw (the last two axes), scaled to (0, 1]."""
    flat = x.reshape(*x.shape[:-2], -1)
    return rankdata(flat, axis=-1).reshape(x.shape) / flat.shape[-1]


def _rank_cases():
    rng = np.random.default_rng(42)
    stuck = rng.normal(size=(2, 4, 400))
    stuck[:, 3] += 5.0  # one chain elsewhere
    return {
        "mixing": rng.normal(size=(2, 4, 1000)),
        "one chain shifted": rng.normal(size=(2, 4, 500)) + [[0.0], [0.0], [0.0], [0.3]],
        "one chain stuck": stuck,
        "random walks": np.cumsum(rng.normal(size=(2, 4, 300)), axis=-1),
        "ties": np.round(rng.normal(size=(3, 4, 200))),
        "two chains": rng.normal(size=(3, 2, 50)),
        "three chains": rng.normal(size=(2, 3, 37)) + [[0.0], [0.0], [0.8]],
        "no batch": rng.normal(size=(4, 300)),
        "constant": np.ones((1, 4, 200)),
    }


@pytest.mark.parametrize("case", list(_rank_cases()))
def test_rank_test_equals_arviz(case):
    from arviz_stats.base.array import array_stats

    ranks = _fractional_ranks(_rank_cases()[case])
    expected = array_stats.mchain_uniformity_test(ranks)
    got = _rank_array_class()().mchain_uniformity_test(ranks)
    p_want, p_have = np.asarray(expected[0]), np.asarray(got[0])
    assert p_have.shape == p_want.shape
    np.testing.assert_allclose(p_have, p_want, rtol=1e-8, atol=1e-12)
    for want, have in zip(expected[1:], got[1:], strict=True):
        want, have = np.asarray(want), np.asarray(have)
        assert have.shape == want.shape
        # Shapley values pass through 0: relative to the largest value of the draw or chain
        scale = np.max(np.abs(want), axis=-1, keepdims=True)
        assert np.all(np.abs(have - want) <= 1e-7 * scale)
    for alpha in (0.01, 0.05, 0.1):  # the draws plot_rank marks
        marked = [
            (np.asarray(s[1]) > 0)
            & (np.asarray(s[2])[..., None] > 0)
            & (np.asarray(s[0])[..., None, None] < alpha)
            for s in (expected, got)
        ]
        np.testing.assert_array_equal(marked[1], marked[0])


def test_rank_test_reuses_its_table_and_falls_back_to_arviz():
    from arviz_stats.base.array import array_stats

    rng = np.random.default_rng(5)
    backend = _rank_array_class()()
    first = _fractional_ranks(rng.normal(size=(2, 4, 100)))
    second = _fractional_ranks(rng.normal(size=(4, 100)) + [[0.0], [0.0], [0.0], [0.5]])
    backend.mchain_uniformity_test(first)
    assert backend._kept is not None and backend._kept[0] == (400, 100)
    got = backend.mchain_uniformity_test(second)  # from the kept table
    expected = array_stats.mchain_uniformity_test(second)
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-9)
    with pytest.raises(ValueError, match="at least 2 chains"):  # ArviZ's own check
        backend.mchain_uniformity_test(rng.uniform(size=(1, 50)))


def test_plot_rank_restores_the_arviz_settings():
    import arviz as az
    import xarray as xr

    rng = np.random.default_rng(6)
    post = xr.Dataset(
        {"w": (("chain", "draw", "component"), rng.dirichlet([5, 5], size=(4, 200)))},
        coords={"component": [0, 1]},
    )
    tree = xr.DataTree.from_dict({"posterior": post})
    tree.attrs = {"family": "gaussian"}
    before = az.rcParams["stats.module"]
    fig = plotting.plot_rank(tree, var_names=["w"])
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 2
    assert az.rcParams["stats.module"] == before
