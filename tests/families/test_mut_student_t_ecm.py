"""StudentTMixtureEM's ECM/ECME steps: what the mutmut sample of issue 13 found unpinned."""

from __future__ import annotations

import numpy as np
import pytest

from bayesmix._validation import DataError
from bayesmix.em import StudentTMixtureEM


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(3)
    X = np.concatenate([rng.standard_t(5, size=(60, 2)), rng.standard_t(5, size=(60, 2)) + 6])
    out = {}
    for cov in ("diag", "full"):
        est = StudentTMixtureEM(
            n_components=3, covariance_type=cov, max_iter=300, random_state=0, reg_covar=1e-4
        )
        est.fit(X)
        out[cov] = (est, X)
    return out


@pytest.mark.parametrize("cov", ["diag", "full"])
@pytest.mark.parametrize("bad", [1, 2])
def test_singular_scale_error_names_the_first_bad_component(fitted, cov, bad):
    """The message names the component whose scale is not positive definite, and reg_covar."""
    ref, X = fitted[cov]
    est = StudentTMixtureEM(n_components=3, covariance_type=cov, reg_covar=1e-4)
    est.weights_, est.means_, est.dofs_ = ref.weights_, ref.means_, ref.dofs_
    c = np.array(ref.covariances_, dtype=float)
    if cov == "diag":
        c[bad, 1] = 0.0
    else:
        c[bad] = np.array([[1.0, 2.0], [2.0, 1.0]])  # eigenvalues 3 and -1
    est.covariances_ = c
    est.n_features_in_ = X.shape[1]
    est.converged_, est.n_iter_, est.lower_bound_ = True, 1, 0.0
    want = (
        f"the scale matrix of component {bad} is not positive definite: expected positive "
        "variances, got a singular scale (a component collapsed onto too few distinct points); "
        "increase reg_covar (now 0.0001) or use fewer components"
    )
    with pytest.raises(DataError) as info:
        est.score_samples(X)
    assert str(info.value) == want
