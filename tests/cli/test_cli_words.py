"""Library advice in the words of the command line (bayesmix.cli.cli_words)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from bayesmix.cli import cli_words
from bayesmix.config import ModelSpec
from bayesmix.results import evidence


def test_the_evidence_warning_speaks_cli(monkeypatch):
    """select --bayesian relays log_evidence's warning about chains in different modes."""
    rng = np.random.default_rng(0)
    y = rng.normal(size=(20, 1))

    def split(cm, init, draws, tune, chains, seed, target_accept):
        theta = rng.normal(size=(chains, draws, cm.n_dim))
        theta[1] += 5.0
        return theta, evidence._rhat_max(theta), 0

    monkeypatch.setattr(evidence, "_nuts_draws", split)
    with pytest.warns(RuntimeWarning) as caught:
        try:
            evidence.log_evidence(ModelSpec("gaussian", 1, "diag"), y, draws=50, chains=2)
        except Exception:  # noqa: BLE001 - the made-up draws may break the estimator later
            pass
    text = cli_words(str(caught[0].message))
    assert text.startswith("log p(y | K): the chains disagree")
    assert "--chains 8" in text
    assert not re.search(r"\w+=\d|method=|log_evidence", text), text
