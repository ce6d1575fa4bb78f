"""Label-free partition summaries: allocation draws, K+, co-clustering, Binder / VI partitions.

References: SciPy densities (allocation frequencies), brute-force counts and double loops
(K+, co-clustering, losses), the entropy formula of the variation of information, and the
exhaustive search over all set partitions of N <= 8 points (Bell(8) = 4140). NumPy only: no
PyMC model is compiled here.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import xarray as xr
from scipy.stats import norm

from bayesmix._validation import DataError, ParameterError
from bayesmix.config import ModelSpec, RunSpec
from bayesmix.results import (
    coclustering,
    draw_allocations,
    expected_loss,
    kplus_posterior,
    n_filled,
    point_partition,
)
from bayesmix.results import partition as part

# --------------------------------------------------------------------------------------------
# a hand-built 1-D Gaussian result (docs/architecture.md): draws of w, mu, sigma
# --------------------------------------------------------------------------------------------


def _tree(x, w, mu, sd, *, sample_dim=False) -> xr.DataTree:
    """A result whose posterior holds the given draws: w, mu, sd of shape (chain, draw, K)."""
    k = w.shape[-1]
    lead = ("sample",) if sample_dim else ("chain", "draw")
    if sample_dim:
        w, mu, sd = (a.reshape(-1, k) for a in (w, mu, sd))
    post = xr.Dataset(
        {
            "w": ((*lead, "component"), w),
            "mu": ((*lead, "component", "feature"), mu[..., None]),
            "sigma": ((*lead, "component", "feature"), sd[..., None]),
        },
        coords={"component": np.arange(k), "feature": ["x"]},
    )
    obs = xr.Dataset(
        {"x": (("obs_id", "feature"), np.asarray(x, float)[:, None])},
        coords={"obs_id": np.arange(len(x)), "feature": ["x"]},
    )
    em = xr.Dataset(
        {
            "w": ("component", w.reshape(-1, k)[0]),
            "mu": (("component", "feature"), mu.reshape(-1, k)[0][:, None]),
            "sigma": (("component", "feature"), sd.reshape(-1, k)[0][:, None]),
        },
        coords={"component": np.arange(k), "feature": ["x"]},
    )
    tree = xr.DataTree.from_dict({"posterior": post, "observed_data": obs, "em": em})
    tree.attrs.update(
        spec=RunSpec(model=ModelSpec("gaussian", k, "diag")).to_json(),
        family="gaussian",
        covariance="diag",
        n_components=k,
        format="bayesmix-result/1",
    )
    return tree


def _fixed_draws(params, n_chain, n_draw):
    return [
        np.broadcast_to(np.asarray(p, float), (n_chain, n_draw, len(p))).copy() for p in params
    ]


def _resp(x, w, mu, sd):
    """p(z = k | x) from SciPy's normal density."""
    joint = w * norm.pdf(np.asarray(x)[:, None], mu, sd)
    return joint / joint.sum(axis=1, keepdims=True)


X_OVERLAP = np.linspace(-3.0, 5.0, 12)
PARAMS_A = ([0.5, 0.3, 0.2], [-1.0, 1.0, 3.0], [1.0, 0.8, 1.2])
PARAMS_B = ([0.2, 0.5, 0.3], [-0.5, 2.0, 2.5], [1.3, 0.7, 1.0])


@pytest.fixture(scope="module")
def two_point_tree():
    """Chain 0 holds draws at PARAMS_A, chain 1 at PARAMS_B (1500 draws each)."""
    a = _fixed_draws(PARAMS_A, 1, 1500)
    b = _fixed_draws(PARAMS_B, 1, 1500)
    w, mu, sd = (np.concatenate([pa, pb]) for pa, pb in zip(a, b, strict=True))
    return _tree(X_OVERLAP, w, mu, sd)


# --------------------------------------------------------------------------------------------
# allocation draws
# --------------------------------------------------------------------------------------------


def test_allocation_frequencies_match_scipy_responsibilities(two_point_tree):
    z = draw_allocations(two_point_tree, random_seed=3)
    assert z.dims == ("chain", "draw", "obs_id")
    assert np.issubdtype(z.dtype, np.integer)
    s = z.sizes["draw"]
    for chain, params in ((0, PARAMS_A), (1, PARAMS_B)):
        r = _resp(X_OVERLAP, *(np.asarray(p) for p in params))  # (N, K)
        zc = z.isel(chain=chain).values
        freq = np.stack([(zc == k).mean(axis=0) for k in range(3)], axis=1)
        se = np.sqrt(r * (1 - r) / s)
        assert np.all(np.abs(freq - r) <= 4.5 * se + 1e-12), np.abs(freq - r).max()
    # pooled over both chains: the average of the two draws' responsibilities
    r_mean = 0.5 * (
        _resp(X_OVERLAP, *map(np.asarray, PARAMS_A)) + _resp(X_OVERLAP, *map(np.asarray, PARAMS_B))
    )
    freq_all = np.stack([(z.values == k).mean(axis=(0, 1)) for k in range(3)], axis=1)
    assert np.abs(freq_all - r_mean).max() < 0.03


def test_allocations_are_reproducible_and_blocks_do_not_change_them(two_point_tree, monkeypatch):
    a = draw_allocations(two_point_tree, random_seed=11, max_draws=200)
    b = draw_allocations(two_point_tree, random_seed=11, max_draws=200)
    c = draw_allocations(two_point_tree, random_seed=12, max_draws=200)
    np.testing.assert_array_equal(a.values, b.values)
    assert (a.values != c.values).any()
    monkeypatch.setattr(part, "_BLOCK_ELEMENTS", 40)  # one draw per block
    d = draw_allocations(two_point_tree, random_seed=11, max_draws=200)
    np.testing.assert_array_equal(a.values, d.values)
    assert a.attrs["n_components"] == 3 and a.attrs["group"] == "posterior"


def test_max_draws_thins_evenly_per_chain(two_point_tree):
    z = draw_allocations(two_point_tree, random_seed=0, max_draws=10)
    assert z.sizes == {"chain": 2, "draw": 5, "obs_id": 12}
    np.testing.assert_array_equal(z["draw"].values, np.linspace(0, 1499, 5).round())


def test_a_sample_dim_group_gives_sample_obs_id():
    w, mu, sd = _fixed_draws(PARAMS_A, 2, 20)
    tree = _tree(X_OVERLAP, w, mu, sd, sample_dim=True)
    z = draw_allocations(tree, random_seed=0)
    assert z.dims == ("sample", "obs_id") and z.sizes["sample"] == 40
    assert draw_allocations(tree, random_seed=0, max_draws=7).sizes["sample"] == 7


def test_allocation_errors(two_point_tree):
    with pytest.raises(ParameterError, match="point estimate, not draws"):
        draw_allocations(two_point_tree, group="em")
    with pytest.raises(ParameterError, match="no group 'advi'"):
        draw_allocations(two_point_tree, group="advi")
    with pytest.raises(ParameterError, match="xarray.DataTree"):
        draw_allocations(np.zeros((3, 4)))
    with pytest.raises(ParameterError, match="max_draws"):
        draw_allocations(two_point_tree, max_draws=0)


# --------------------------------------------------------------------------------------------
# K+
# --------------------------------------------------------------------------------------------


def test_n_filled_and_kplus_against_a_direct_count():
    rng = np.random.default_rng(0)
    z = rng.integers(0, 6, size=(4, 50, 9))
    z[0, :10] = 2  # a run of draws with one filled label
    direct = np.array([[len(set(row)) for row in chain] for chain in z])
    da = xr.DataArray(z, dims=("chain", "draw", "obs_id"), attrs={"n_components": 8})
    got = n_filled(da)
    assert got.dims == ("chain", "draw")
    np.testing.assert_array_equal(got.values, direct)
    np.testing.assert_array_equal(n_filled(z.reshape(-1, 9)).values, direct.ravel())
    p = kplus_posterior(da)
    assert list(p.index) == list(range(1, 9))  # k = 1..K from the attrs
    assert p.sum() == pytest.approx(1.0)
    for k in range(1, 9):
        assert p[k] == pytest.approx(np.mean(direct == k))
    assert p.attrs["mode"] == int(np.bincount(direct.ravel()).argmax())
    assert p.attrs["n_draws"] == 200
    assert list(kplus_posterior(z.reshape(-1, 9), n_components=10).index) == list(range(1, 11))


def test_kplus_from_a_result_counts_its_allocations(two_point_tree):
    z = draw_allocations(two_point_tree, random_seed=5, max_draws=300)
    p = kplus_posterior(two_point_tree, random_seed=5, max_draws=300)
    direct = np.array([len(set(r)) for r in z.values.reshape(-1, 12)])
    np.testing.assert_allclose(p.values, [np.mean(direct == k) for k in (1, 2, 3)])


# --------------------------------------------------------------------------------------------
# co-clustering
# --------------------------------------------------------------------------------------------


def _brute_similarity(z):
    s, n = z.shape
    p = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            p[i, j] = np.mean([z[t, i] == z[t, j] for t in range(s)])
    return p


@pytest.mark.parametrize("block", [10**9, 7])
def test_coclustering_equals_a_double_loop(block, monkeypatch):
    monkeypatch.setattr(part, "_ONEHOT_ELEMENTS", block)  # 7: one draw per block
    rng = np.random.default_rng(1)
    z = rng.integers(0, 4, size=(37, 11)) * 5 - 3  # any integers are labels
    p = coclustering(z)
    assert p.dims == ("obs_id", "obs_id_bis") and p.attrs["n_draws"] == 37
    np.testing.assert_allclose(p.values, _brute_similarity(z), atol=1e-12)
    np.testing.assert_array_equal(p.values, p.values.T)
    np.testing.assert_array_equal(np.diag(p.values), 1.0)


def test_coclustering_of_a_result_keeps_obs_ids(two_point_tree):
    p = coclustering(two_point_tree, random_seed=0, max_draws=100)
    z = draw_allocations(two_point_tree, random_seed=0, max_draws=100)
    np.testing.assert_allclose(p.values, _brute_similarity(z.values.reshape(-1, 12)))
    np.testing.assert_array_equal(p["obs_id_bis"].values, np.arange(12))


# --------------------------------------------------------------------------------------------
# losses: hand formulas, exact VI, exhaustive search over set partitions
# --------------------------------------------------------------------------------------------


def _binder(labels, p):
    n = len(labels)
    return sum(
        abs(float(labels[i] == labels[j]) - p[i, j]) for i in range(n) for j in range(i + 1, n)
    )


def _vi_lb(labels, p):
    labels = np.asarray(labels)
    n = len(labels)
    out = 0.0
    for i in range(n):
        same = labels == labels[i]
        out += np.log2(same.sum()) + np.log2(p[i].sum()) - 2 * np.log2(p[i, same].sum())
    return out / n


def _entropy(labels):
    q = np.bincount(labels) / len(labels)
    q = q[q > 0]
    return -np.sum(q * np.log2(q))


def _vi(a, b):
    joint = np.unique(np.stack([a, b], 1), axis=0, return_inverse=True)[1].ravel()
    return 2 * _entropy(joint) - _entropy(a) - _entropy(b)


def test_losses_against_hand_formulas():
    p = np.array([[1.0, 0.8, 0.1], [0.8, 1.0, 0.3], [0.1, 0.3, 1.0]])
    # Binder: pairs (0,1) together: 1 - .8; (0,2) apart: .1; (1,2) apart: .3
    assert expected_loss([0, 0, 1], p, loss="binder") == pytest.approx(0.2 + 0.1 + 0.3)
    assert expected_loss([0, 1, 2], p, loss="binder") == pytest.approx(0.8 + 0.1 + 0.3)
    vi = (
        (np.log2(2) + np.log2(1.9) - 2 * np.log2(1.8))
        + (np.log2(2) + np.log2(2.1) - 2 * np.log2(1.8))
        + (np.log2(1) + np.log2(1.4) - 2 * np.log2(1.0))
    ) / 3
    assert expected_loss([5, 5, 9], p, loss="vi") == pytest.approx(vi)
    rng = np.random.default_rng(2)
    z = rng.integers(0, 3, size=(20, 7))
    pz = coclustering(z)
    for lab in ([0, 0, 1, 1, 2, 2, 2], [0] * 7, list(range(7))):
        assert expected_loss(lab, pz, loss="binder") == pytest.approx(_binder(lab, pz.values))
        assert expected_loss(lab, z, loss="vi") == pytest.approx(_vi_lb(lab, pz.values))


def test_vi_bound_is_the_exact_vi_when_the_posterior_is_one_partition():
    truth = np.array([0, 0, 1, 1, 1, 2, 2, 0, 3])
    z = np.tile(truth, (5, 1))
    for lab in ([0, 0, 0, 1, 1, 1, 2, 2, 2], [0] * 9, list(range(9)), truth):
        lab = np.asarray(lab)
        assert expected_loss(lab, z, loss="vi") == pytest.approx(_vi(lab, truth), abs=1e-12)
        assert expected_loss(lab, z, loss="binder") == pytest.approx(
            sum(
                (lab[i] == lab[j]) != (truth[i] == truth[j])
                for i in range(9)
                for j in range(i + 1, 9)
            )
        )


def _set_partitions(n):
    """All set partitions of n points as restricted growth strings."""
    out = []

    def grow(prefix, m):
        if len(prefix) == n:
            out.append(prefix)
            return
        for k in range(m + 1):
            grow(prefix + [k], max(m, k + 1))

    grow([0], 1)
    return np.asarray(out)


def test_set_partitions_enumerator_counts_bell_numbers():
    assert [len(_set_partitions(n)) for n in range(1, 9)] == [1, 2, 5, 15, 52, 203, 877, 4140]


def _random_posterior(rng, n, s):
    """Allocation draws that scatter around a random partition (some structure, some noise)."""
    base = rng.integers(0, rng.integers(2, 5), size=n)
    z = np.tile(base, (s, 1))
    flip = rng.random((s, n)) < rng.uniform(0.1, 0.5)
    z[flip] = rng.integers(0, 5, size=flip.sum())
    return z


@pytest.mark.parametrize("loss", ["binder", "vi"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_search_finds_the_global_minimum_over_all_partitions(loss, seed):
    rng = np.random.default_rng(seed)
    n = 8 if seed == 0 else 7
    z = _random_posterior(rng, n, 25)
    p = coclustering(z).values
    all_parts = _set_partitions(n)
    ref = _binder if loss == "binder" else _vi_lb
    values = np.array([ref(lab, p) for lab in all_parts])
    best = point_partition(z, loss=loss, random_seed=seed)
    assert best.attrs["expected_loss"] == pytest.approx(values.min(), abs=1e-9)
    assert ref(best.values, p) == pytest.approx(values.min(), abs=1e-9)
    # the vectorised loss agrees with the double loop on every partition
    np.testing.assert_allclose(part._losses(all_parts, p, loss), values, atol=1e-9)
    # from the matrix alone (no draws as candidates) the search still finds it
    again = point_partition(p, loss=loss, random_seed=seed)
    assert again.attrs["expected_loss"] == pytest.approx(values.min(), abs=1e-9)


def _same_partition(a, b):
    a, b = np.asarray(a), np.asarray(b)
    pairs = {(int(x), int(y)) for x, y in zip(a, b, strict=True)}
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


@pytest.mark.parametrize("loss", ["vi", "binder"])
def test_well_separated_data_give_the_true_partition(loss):
    rng = np.random.default_rng(4)
    truth = np.repeat([0, 1, 2], [14, 9, 7])
    x = np.array([-10.0, 0.0, 10.0])[truth] + rng.normal(0, 1, truth.size)
    # posterior draws around the truth, with K = 5 (two nearly empty components)
    s = (2, 100)
    w = rng.dirichlet([14, 9, 7, 0.3, 0.3], size=s)
    mu = np.array([-10.0, 0.0, 10.0, 30.0, -30.0]) + rng.normal(0, 0.3, s + (5,))
    sd = np.exp(rng.normal(0, 0.1, s + (5,)))
    tree = _tree(x, w, mu, sd)
    best = point_partition(tree, loss=loss, random_seed=1)
    assert _same_partition(best.values, truth)
    assert best.attrs["n_clusters"] == 3
    # labels by cluster size: 0 is the largest
    np.testing.assert_array_equal(best.values, truth)
    assert kplus_posterior(tree, random_seed=1).attrs["mode"] == 3


def test_point_partition_labels_are_ordered_by_cluster_size():
    z = np.tile([3, 1, 1, 0, 0, 0, 2, 2, 2, 2], (4, 1))
    best = point_partition(z, random_seed=0)
    np.testing.assert_array_equal(best.values, [3, 2, 2, 1, 1, 1, 0, 0, 0, 0])
    assert best.attrs["expected_loss"] == pytest.approx(0.0, abs=1e-12)
    assert best.attrs["loss"] == "vi" and best.attrs["n_draws"] == 4


def test_partition_errors():
    p = np.eye(3)
    with pytest.raises(ParameterError, match="unknown loss 'bindr'"):
        point_partition(p, loss="bindr")
    with pytest.raises(ParameterError, match="n_runs"):
        point_partition(p, n_runs=-1)
    with pytest.raises(DataError, match="symmetric"):
        expected_loss([0, 0, 1], np.array([[1, 0.5, 0], [0.2, 1, 0], [0, 0, 1.0]]))
    with pytest.raises(DataError, match="probabilities"):
        expected_loss([0, 0, 1], np.full((3, 3), 1.5))
    with pytest.raises(DataError, match="one cluster per observation"):
        expected_loss([0, 1], p)
    with pytest.raises(DataError, match="integer labels"):
        n_filled(xr.DataArray(np.full((2, 3), 0.5), dims=("sample", "obs_id")))
    with pytest.raises(DataError, match="obs_id"):
        coclustering(xr.DataArray(np.zeros((2, 3), int), dims=("a", "b")))


def test_set_partitions_enumerator_matches_itertools():
    # the enumerator used above against a brute force over all labellings of 4 points
    parts = {tuple(p) for p in _set_partitions(4)}
    brute = set()
    for labels in itertools.product(range(4), repeat=4):
        canon = {}
        brute.add(tuple(canon.setdefault(v, len(canon)) for v in labels))
    assert parts == brute


def _moves(labels):
    """Every partition one move away: observation i to another cluster or a new one."""
    m = labels.max() + 1
    for i in range(labels.size):
        for k in range(m + 1):
            if k != labels[i]:
                moved = labels.copy()
                moved[i] = k
                yield i, k, moved


@pytest.mark.parametrize("loss", ["binder", "vi"])
def test_search_move_costs_are_loss_differences(loss):
    # the O(N) cost of each move in the search equals the change of the full loss
    rng = np.random.default_rng(7)
    z = rng.integers(0, 3, size=(15, 9))
    p = coclustering(z).values
    labels = np.array([0, 0, 1, 1, 1, 2, 0, 2, 1])
    scale = 1.0 if loss == "binder" else 9.0  # the search works with N * VI_lb
    search = part._Search(p, loss, rng)
    for i in range(9):
        search.start(labels)
        a = search._remove(i)
        cost, new = search._costs(i)
        for k in range(4):
            moved = labels.copy()
            moved[i] = k
            got = new if k == 3 else cost[k]
            base = labels.copy()
            base[i] = 3  # i alone: the "new cluster" move
            want = scale * (part._losses(moved[None], p, loss) - part._losses(base[None], p, loss))
            assert got - new == pytest.approx(want[0], abs=1e-9), (i, k, a)


@pytest.mark.parametrize("loss", ["binder", "vi"])
def test_point_partition_is_a_local_optimum(loss):
    rng = np.random.default_rng(8)
    z = rng.integers(0, 4, size=(12, 14))
    p = coclustering(z).values
    best = point_partition(p, loss=loss, random_seed=0)
    value = best.attrs["expected_loss"]
    neighbours = np.array([moved for _, _, moved in _moves(best.values)])
    assert part._losses(neighbours, p, loss).min() >= value - 1e-9


def test_summarize_partition_is_point_partition_and_kplus_of_one_set_of_allocations(
    monkeypatch,
):
    rng = np.random.default_rng(4)
    truth = np.repeat([0, 1, 2], [14, 9, 7])
    x = np.array([-10.0, 0.0, 10.0])[truth] + rng.normal(0, 1, truth.size)
    s = (2, 100)
    w = rng.dirichlet([14, 9, 7, 0.3, 0.3], size=s)
    mu = np.array([-10.0, 0.0, 10.0, 30.0, -30.0]) + rng.normal(0, 0.3, s + (5,))
    sd = np.exp(rng.normal(0, 0.1, s + (5,)))
    tree = _tree(x, w, mu, sd)
    summary = part.summarize_partition(tree, max_draws=None, random_seed=3)
    z = draw_allocations(tree, random_seed=3)
    np.testing.assert_array_equal(summary.labels.values, point_partition(z, random_seed=3).values)
    np.testing.assert_array_equal(summary.p_kplus.values, kplus_posterior(z).values)
    assert summary.n_draws == 200
    lines = summary.lines()
    assert lines[0].startswith("point partition (variation of information, label-free): 3 ")
    assert "of 14, 9, 7 observations" in lines[0]
    assert lines[1].endswith(f"mode {summary.p_kplus.attrs['mode']}")
    # no posterior, or more observations than the N x N matrix allows: no summary
    no_post = xr.DataTree.from_dict({"observed_data": tree["observed_data"].to_dataset()})
    no_post.attrs = dict(tree.attrs)
    assert part.summarize_partition(no_post) is None
    monkeypatch.setattr(part, "MAX_PARTITION_OBS", truth.size - 1)
    assert part.summarize_partition(tree) is None
