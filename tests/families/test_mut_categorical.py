"""CategoricalMixtureEM cases found by the mutmut run on em/categorical.py (issue 13)."""

from __future__ import annotations

import warnings

import numpy as np

from bayesmix.em import CategoricalMixtureEM


def test_level_probabilities_sum_to_one_with_category_alpha_below_one():
    """With category_alpha < 1 a level with (almost) no counts is clipped to 0 and the rest
    of the row renormalised (it summed to 1.027 here before the fix)."""
    X = np.array([[0, 0], [0, 1], [1, 2], [1, 2], [0, 0], [1, 1], [0, 2], [1, 2]] * 5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = CategoricalMixtureEM(
            2, prior={"category_alpha": 0.5}, random_state=0, max_iter=50
        ).fit(X)
    for probs in est.category_probs_:
        assert (probs >= 0).all()
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=0, atol=1e-12)
