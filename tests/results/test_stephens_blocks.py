"""Stephens' relabelling in blocks of draws: the same answer as with every draw held at once.

Above ``labels._STEPHENS_VALUES`` membership values (draws x N x K) the probabilities are
recomputed a block of draws at a time in every pass, so a 5,000 x 6, 4 x 1000-draw result no
longer needs a (4000, 5000, 4) array (2 GB with its copies; issue 12 item 17).
"""

from __future__ import annotations

import numpy as np
import pytest

from bayesmix.results import labels, relabel

from .test_relabel_switching import _overlapping_tree


@pytest.mark.parametrize("k", [3, 4])
def test_blocks_give_the_same_permutations_and_costs(k, monkeypatch):
    tree, _, _, _ = _overlapping_tree(k, seed=3)
    whole = relabel(tree, method="stephens", reference="em")
    n, m = tree["observed_data"]["x"].shape[0], 4 * 300
    # 7 draws per block: many blocks, the last one short; too many values to keep them
    monkeypatch.setattr(labels, "_BLOCK_VALUES", 7 * n * k)
    monkeypatch.setattr(labels, "_STEPHENS_VALUES", 7 * n * k + 1)
    assert m * n * k > labels._STEPHENS_VALUES
    calls = []
    real = labels._math.log_responsibilities

    def counting(x, params, family):
        calls.append(params["w"].shape[0])
        return real(x, params, family)

    monkeypatch.setattr(labels._math, "log_responsibilities", counting)
    blocked = relabel(tree, method="stephens", reference="em")
    assert max(calls) <= 7 and sum(calls) >= 2 * m  # recomputed in blocks, in every pass
    np.testing.assert_array_equal(
        blocked["relabel"]["permutation"].values, whole["relabel"]["permutation"].values
    )
    np.testing.assert_allclose(
        blocked["relabel"]["kl_cost"].values, whole["relabel"]["kl_cost"].values, rtol=1e-10
    )
    assert blocked["relabel"].attrs["n_iter"] == whole["relabel"].attrs["n_iter"]
