"""``bayesmix select SPEC --bayesian`` on the galaxy spec, reduced (issue 15, item 6).

Full numbers (K = 1..12, many draws) are in ``validation/marginal_likelihood.py``; here K = 1, 2
with few draws: the table has every Bayesian column, the probabilities are probabilities, the
file and the figure load, and each K compiles one model (the ordered model serves LOO and the
marginal likelihood) plus one for the sparse mixture.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from .conftest import run_cli

pytestmark = pytest.mark.slow

GALAXIES = Path(__file__).resolve().parents[2] / "models" / "galaxies.toml"


def test_select_bayesian_on_the_galaxy_spec(tmp_path):
    from scipy.special import softmax

    from bayesmix.inference import _compiled

    before = len(_compiled._CACHE)
    out = tmp_path / "sel"
    # the spec's prior on K, here 1 : 3, gives p(K | y); it does not change the models
    text = GALAXIES.read_text()
    assert 'k_prior = "uniform"' in text
    spec = tmp_path / "galaxies.toml"
    spec.write_text(text.replace('k_prior = "uniform"', "k_prior = [1.0, 3.0]"))
    argv = ["select", spec, "--k", "1..2", "--bayesian", "--draws", "150", "--tune", "150"]
    code, stdout, stderr = run_cli([*argv, "--chains", "2", "--quiet", "--out", out])
    assert code == 0, stderr
    # one compiled model per K (ordered: LOO and the bridge share it) + the sparse mixture,
    # unless an earlier test of this process compiled one of them already
    assert len(_compiled._CACHE) - before <= 3
    table = pd.read_csv(out / "k_selection.csv")
    for col in ("bic", "elpd_loo", "log_evidence", "log_evidence_se", "p_k", "p_k_se", "p_kplus"):
        assert table[col].notna().all(), col
    assert table["k"].tolist() == [1, 2]
    assert np.isclose(table["p_k"].sum(), 1.0)
    expected = softmax(table["log_evidence"] + np.log([0.25, 0.75]))
    np.testing.assert_allclose(table["p_k"], expected, rtol=1e-6)
    assert table["p_kplus"].between(0, 1).all() and table["p_kplus"].sum() <= 1 + 1e-12
    assert (table["log_evidence_se"] > 0).all()
    # the evidence of K = 1 is far below the likelihood's maximum (it pays for the prior)
    assert (table["log_evidence"] < table["log_likelihood"]).all()
    assert "p_k" in stdout and "recommended K:" in stdout
    assert (
        "under the prior on K [priors] k_prior = [1.0, 3.0], renormalised over K = 1, 2" in stdout
    )
    assert (out / "k_selection.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
