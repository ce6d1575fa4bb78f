"""StudentTMixtureEM helpers found unpinned by the mutmut run on em/student_t.py (issue 13)."""

from __future__ import annotations

import numpy as np
import pytest

from bayesmix.em import student_t


@pytest.mark.parametrize("d", [2, 3, 4, 5])
def test_unit_row_cholesky_parametrisation_row_by_row(d):
    """Row i of the correlation factor is (v_i, 1) / ||(v_i, 1)||, v_i the next i numbers.

    D >= 4 is needed to see the offset of each row's numbers (rows 1 and 2 start at 0 and 1
    whether the offset is accumulated or not).
    """
    rng = np.random.default_rng(d)
    v = rng.normal(size=d * (d - 1) // 2)
    chol = student_t._corr_chol_from_params(v, d)
    want = np.eye(d)
    start = 0
    for i in range(1, d):
        row = np.append(v[start : start + i], 1.0)
        want[i, : i + 1] = row / np.sqrt(row @ row)
        start += i
    np.testing.assert_allclose(chol, want, rtol=1e-14, atol=1e-15)
    corr = chol @ chol.T
    np.testing.assert_allclose(np.diag(corr), 1.0, rtol=1e-14)
    assert np.all(np.linalg.eigvalsh(corr) > 0)
    np.testing.assert_allclose(student_t._params_from_corr_chol(chol), v, rtol=1e-12)
