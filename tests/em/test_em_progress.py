"""``bayesmix.em.on_each_start``: a progress hook over EM's starts that changes no result."""

from __future__ import annotations

import numpy as np
import pytest

from bayesmix.em import BernoulliMixtureEM, GaussianMixtureEM, on_each_start


@pytest.mark.parametrize("make", [GaussianMixtureEM, BernoulliMixtureEM])
def test_callback_sees_every_start_and_changes_nothing(make):
    rng = np.random.default_rng(0)
    if make is BernoulliMixtureEM:
        X = (rng.random((200, 6)) < np.r_[np.full(3, 0.8), np.full(3, 0.2)]).astype(float)
    else:
        X = np.r_[rng.normal(0, 1, (100, 2)), rng.normal(5, 1, (100, 2))]
    plain = make(n_components=2, n_init=4, random_state=3).fit(X)
    seen: list[tuple[int, int]] = []
    with on_each_start(lambda done, total: seen.append((done, total))):
        hooked = make(n_components=2, n_init=4, random_state=3).fit(X)
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    np.testing.assert_array_equal(plain.weights_, hooked.weights_)
    assert plain.lower_bound_ == hooked.lower_bound_
    # outside the block the hook is gone
    make(n_components=2, n_init=2, random_state=3).fit(X)
    assert len(seen) == 4
