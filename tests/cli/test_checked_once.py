"""The data of a command are validated once (issue 14, item 7), and that trust does not leak."""

from __future__ import annotations

import numpy as np
import pytest

from bayesmix._validation import DataError, check_X, checked_data
from bayesmix.families.gaussian import GaussianFamily

from .conftest import run_cli


def test_bayesmix_fit_checks_its_data_once(tmp_path, monkeypatch):
    calls = []
    original = GaussianFamily.check_data

    def counting(self, X, **kw):
        calls.append(type(X).__name__)
        return original(self, X, **kw)

    monkeypatch.setattr(GaussianFamily, "check_data", counting)
    code, _, stderr = run_cli(["fit", "--methods", "em,map", "--quiet", "--out", tmp_path / "o"])
    assert code == 0, stderr
    # the CLI's check of the loaded table; EM, MAP, the compiled model, the memberships, the
    # plots and the report reuse it (before: 8-9 checks per command)
    assert calls == ["DataFrame"]


def test_trust_is_only_for_those_objects_and_only_inside_the_block():
    bad = np.array([[0.0, 1.0], [np.nan, 2.0], [3.0, 4.0]])
    with checked_data(bad):
        assert check_X(bad) is bad  # trusted (the caller claims it checked it)
        with pytest.raises(DataError, match="NaN"):
            check_X(bad.copy())  # another object is checked
    with pytest.raises(DataError, match="NaN"):
        check_X(bad)  # outside the block it is checked again
    good = np.ones((4, 2))
    with checked_data(good):
        # a dtype conversion is not skipped
        assert check_X(good, dtype=np.float32).dtype == np.float32
