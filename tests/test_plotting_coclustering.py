"""The co-clustering heatmap: what it draws, in the order its docstring promises."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from bayesmix import plotting  # noqa: E402
from bayesmix._validation import DataError  # noqa: E402
from bayesmix.config import ModelSpec, RunSpec  # noqa: E402
from bayesmix.results import coclustering, draw_allocations, point_partition  # noqa: E402


def _image(fig):
    ims = [im for ax in fig.axes for im in ax.get_images() if im.get_gid() == "coclustering"]
    assert len(ims) == 1
    return np.asarray(ims[0].get_array())


def _tree(x, w, mu, sd):
    k = w.shape[-1]
    post = xr.Dataset(
        {
            "w": (("chain", "draw", "component"), w),
            "mu": (("chain", "draw", "component", "feature"), mu[..., None]),
            "sigma": (("chain", "draw", "component", "feature"), sd[..., None]),
        },
        coords={"component": np.arange(k), "feature": ["v"]},
    )
    obs = xr.Dataset(
        {"x": (("obs_id", "feature"), x[:, None])},
        coords={"obs_id": np.arange(x.size), "feature": ["v"]},
    )
    tree = xr.DataTree.from_dict({"posterior": post, "observed_data": obs})
    tree.attrs.update(
        spec=RunSpec(model=ModelSpec("gaussian", k, "diag")).to_json(),
        family="gaussian",
        covariance="diag",
        n_components=k,
    )
    return tree


@pytest.fixture(scope="module")
def shuffled_tree():
    """Three 1-D clusters (sizes 5, 9, 6) stored in a shuffled order; overlapping a little."""
    rng = np.random.default_rng(0)
    truth = np.repeat([0, 1, 2], [5, 9, 6])
    x = np.array([-4.0, 0.0, 4.0])[truth] + rng.normal(0, 0.9, truth.size)
    perm = rng.permutation(truth.size)
    s = (2, 60)
    w = rng.dirichlet([5, 9, 6], size=s)
    mu = np.array([-4.0, 0.0, 4.0]) + rng.normal(0, 0.2, s + (3,))
    sd = 0.9 * np.exp(rng.normal(0, 0.05, s + (3,)))
    return _tree(x[perm], w, mu, sd), truth[perm]


def test_result_heatmap_is_ordered_by_cluster_then_value(shuffled_tree):
    tree, _ = shuffled_tree
    fig = plotting.plot_coclustering(tree, random_seed=3)
    assert isinstance(fig, Figure)
    # the same allocations and partition as the figure's defaults
    z = draw_allocations(tree, max_draws=1000, random_seed=3)
    p = coclustering(z).values
    labels = point_partition(z, random_seed=3).values
    x = tree["observed_data"]["x"].values[:, 0]
    # independent order: clusters 0, 1, 2 (largest first), ascending x inside each
    assert labels.max() == 2  # three clusters
    order = np.concatenate(
        [np.flatnonzero(labels == k)[np.argsort(x[labels == k])] for k in range(3)]
    )
    np.testing.assert_array_equal(_image(fig), p[np.ix_(order, order)])
    # the clusters are blocks: sizes of the partition decrease, x increases inside each
    assert np.all(np.diff(np.bincount(labels)) <= 0)
    ax = fig.axes[0]
    assert ax.get_ylabel() == "observation, ordered by cluster"
    assert "ordered by cluster" in ax.get_xlabel()
    # a colour bar and the block lines (2 separators x 2 axes)
    assert len(fig.axes) == 2 and "probability" in fig.axes[1].get_ylabel()
    assert len(ax.lines) == 4
    # tick labels name the observations in the plotted order
    assert [t.get_text() for t in ax.get_yticklabels()] == [str(i) for i in order]


def test_matrix_heatmap_with_a_given_partition():
    # two blocks of three, stored interleaved; within a block the most typical row first
    p = np.array(
        [
            [1.0, 0.1, 0.9, 0.0, 0.5, 0.1],
            [0.1, 1.0, 0.0, 0.8, 0.1, 0.9],
            [0.9, 0.0, 1.0, 0.1, 0.7, 0.0],
            [0.0, 0.8, 0.1, 1.0, 0.0, 0.6],
            [0.5, 0.1, 0.7, 0.0, 1.0, 0.1],
            [0.1, 0.9, 0.0, 0.6, 0.1, 1.0],
        ]
    )
    labels = np.array([4, 7, 4, 7, 4, 7])  # clusters shown in label order: 4 then 7
    fig = plotting.plot_coclustering(p, partition=labels)
    # mean similarity within the cluster: obs 0: (1+.9+.5)/3, 2: (.9+1+.7)/3, 4: (.5+.7+1)/3
    # obs 1: (1+.8+.9)/3, 3: (.8+1+.6)/3, 5: (.9+.6+1)/3
    order = [2, 0, 4, 1, 5, 3]
    np.testing.assert_allclose(_image(fig), p[np.ix_(order, order)])
    assert "given partition" in fig.axes[0].get_title()


def test_plot_coclustering_refuses_other_input():
    with pytest.raises(DataError, match="co-clustering matrix"):
        plotting.plot_coclustering([1, 2, 3])
