"""Figures reuse what the caller computed already (the point partition of the result)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.mixture import GaussianMixture

from bayesmix import plotting
from bayesmix.results import point_partition, summarize_partition


@pytest.fixture(scope="module")
def result_2d():
    from test_plotting import _gm_point, _tree

    rng = np.random.default_rng(2)
    means = np.array([[2.0, 55.0], [4.3, 80.0]])
    covs = np.array([[[0.07, 0.4], [0.4, 35.0]], [[0.17, 0.9], [0.9, 36.0]]])
    z = rng.choice(2, size=120, p=[0.4, 0.6])
    X = np.stack([rng.multivariate_normal(means[k], covs[k]) for k in z])
    gm = GaussianMixture(2, covariance_type="full", random_state=0).fit(X)
    point = _gm_point(gm, "full")
    return _tree(X, ["eruptions", "waiting"], point, "gaussian", "full", rng)


def _image_and_title(fig):
    ax = fig.axes[0]
    image = next(im for im in ax.get_images() if im.get_gid() == "coclustering")
    return np.asarray(image.get_array()), ax.get_title()


def test_coclustering_with_the_point_partition_found_already(result_2d):
    expected = _image_and_title(plotting.plot_coclustering(result_2d))
    found = summarize_partition(result_2d, random_seed=0).labels
    got = _image_and_title(plotting.plot_coclustering(result_2d, partition=found))
    np.testing.assert_array_equal(got[0], expected[0])
    assert got[1] == expected[1]
    assert "VI point partition" in got[1]
    # bare labels are a given partition, as before
    labels = np.asarray(found.values)
    assert (
        "given partition"
        in _image_and_title(plotting.plot_coclustering(result_2d, partition=labels))[1]
    )


def test_write_plots_passes_the_partition_on(result_2d, tmp_path, monkeypatch):
    found = point_partition(result_2d, random_seed=0)
    import bayesmix.results.partition as partition

    def searched_again(*args, **kwargs):
        raise AssertionError("the point partition was searched again")

    monkeypatch.setattr(partition, "point_partition", searched_again)
    written, failed = plotting.write_plots(result_2d, tmp_path, partition=found, raise_errors=True)
    assert "coclustering" in written and not failed
