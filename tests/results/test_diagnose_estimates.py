"""``diagnose(result, estimates=compare_estimates(result))``: the table is not computed twice."""

from __future__ import annotations

import pandas as pd
import pytest

from bayesmix._validation import ParameterError
from bayesmix.results import compare_estimates, diagnose


@pytest.mark.parametrize("name", ["clean_tree", "switched_tree"])
def test_given_estimates_give_the_same_diagnostics(name, request, monkeypatch):
    tree, _ = request.getfixturevalue(name)
    expected = diagnose(tree)
    table = compare_estimates(tree)

    import bayesmix.results.diagnostics as diagnostics

    def computed_again(*args, **kwargs):
        raise AssertionError("compare_estimates ran again")

    monkeypatch.setattr(diagnostics, "compare_estimates", computed_again)
    got = diagnose(tree, estimates=table)
    assert str(got) == str(expected)
    assert got.warnings == expected.warnings
    pd.testing.assert_frame_equal(got.table, expected.table)
    assert (got.max_rhat, got.min_ess_bulk, got.min_ess_tail) == (
        expected.max_rhat,
        expected.min_ess_bulk,
        expected.min_ess_tail,
    )


def test_estimates_without_the_diagnostic_columns_are_refused(clean_tree):
    tree, _ = clean_tree
    table = compare_estimates(tree).drop(columns=["ess_tail"])
    with pytest.raises(ParameterError, match="expected the table of compare_estimates"):
        diagnose(tree, estimates=table)
