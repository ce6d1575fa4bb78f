import json
import re
import sys

import numpy as np
import pytest

from bayesmix._validation import SpecError
from bayesmix.config import (
    DataSpec,
    FitSpec,
    ModelSpec,
    PriorSpec,
    RunSpec,
    load_spec,
    resolve_priors,
    spec_from_dict,
)

GOOD = """
name = "faithful"

[data]
path = "builtin:old_faithful"
columns = ["eruptions", "waiting"]

[model]
family = "gaussian"
components = 3
covariance = "diag"
ordered = true

[priors]
weights_alpha = 2.0
mu_scale = [1.0, 20.0]
lkj_eta = 1.5

[fit]
methods = ["nuts", "em"]
draws = 200
tune = 100
chains = 2
seed = 7
sampler = "pymc"
"""


def test_load_good_spec(tmp_path):
    p = tmp_path / "a.toml"
    p.write_text(GOOD)
    s = load_spec(p)
    assert s.name == "faithful"
    assert s.data == DataSpec("builtin:old_faithful", ("eruptions", "waiting"))
    assert s.model == ModelSpec(
        "gaussian",
        3,
        "diag",
        True,
        PriorSpec(weights_alpha=2.0, mu_scale=(1.0, 20.0), lkj_eta=1.5),
    )
    # methods are put in the canonical order em -> map -> nuts -> advi
    assert s.fit == FitSpec(("em", "nuts"), 200, 100, 2, 7, "pymc")


def test_defaults_and_name_from_stem(tmp_path):
    p = tmp_path / "my_run.toml"
    p.write_text("")
    s = load_spec(p)
    assert s == RunSpec(name="my_run")
    assert s.model.priors == PriorSpec()


def test_round_trip_dict_and_json(tmp_path):
    p = tmp_path / "a.toml"
    p.write_text(GOOD)
    s = load_spec(p)
    assert spec_from_dict(s.to_dict()) == s
    assert RunSpec.from_json(s.to_json()) == s
    assert json.loads(s.to_json())["model"]["components"] == 3
    assert hash(s)  # frozen and hashable: usable as a cache key


def test_data_options_round_trip_and_reach_the_loader(tmp_path):
    (tmp_path / "d.csv").write_text("pid;x;y;name\nP1;1,5;2;a\nP2;2,5;;b\nP3;3,5;4;c\n")
    (tmp_path / "a.toml").write_text(
        '[data]\npath = "d.csv"\nid = "pid"\ndropna = true\nsep = ";"\ndecimal = ","\n'
    )
    s = load_spec(tmp_path / "a.toml")
    assert s.data == DataSpec(
        str((tmp_path / "d.csv").resolve()), None, id="pid", dropna=True, sep=";", decimal=","
    )
    assert spec_from_dict(s.to_dict()) == s
    assert RunSpec.from_json(s.to_json()) == s
    df = s.data.load()
    assert df.index.tolist() == ["P1", "P3"]
    np.testing.assert_array_equal(df.to_numpy(), [[1.5, 2.0], [3.5, 4.0]])
    assert df.attrs["notes"][-1] == "dropped 1 of 3 rows with missing values (column 'y')"
    # defaults are left out of the table, so older specs and results read the same
    assert DataSpec("d.csv").to_dict() == {"path": "d.csv"}
    assert spec_from_dict({"data": {"path": "d.csv", "sep": "tab"}}).data.sep == "tab"


def test_data_option_problems_reported_at_once():
    with pytest.raises(SpecError) as info:
        spec_from_dict(
            {
                "data": {
                    "path": "d.csv",
                    "columns": ["a", "pid"],
                    "id": "pid",
                    "dropna": "yes",
                    "sep": "ab",
                    "decimal": ";",
                },
                "model": {"components": 0},
            }
        )
    text = " | ".join(info.value.problems)
    assert len(info.value.problems) == 5, text
    for key in ("id", "dropna", "sep", "decimal"):
        assert f"[data] {key}:" in text
    with pytest.raises(SpecError, match=r"\[data\] decimal: expected a mark other than"):
        spec_from_dict({"data": {"sep": "comma", "decimal": ","}})
    with pytest.raises(SpecError, match=r"\[data\] id: expected a column name, got 3"):
        spec_from_dict({"data": {"id": 3}})


def test_every_problem_reported_at_once(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text(
        """
[dta]
x = 1
[model]
family = "gausian"
components = 0
covarance = "full"
ordered = "yes"
[priors]
mu_scale = -1
weights_alpha = "a"
[fit]
methods = ["em", "hmc"]
draws = 0
chains = 1.5
sampler = "stan"
target_accept = 1.2
"""
    )
    with pytest.raises(SpecError) as info:
        load_spec(p)
    probs = info.value.problems
    text = " | ".join(probs)
    assert len(probs) >= 11, text
    assert "unknown section [dta]; did you mean 'data'?" in text
    assert "'covarance' in [model]; did you mean 'covariance'?" in text
    assert "'gausian'" in text and "'gaussian'" in text
    assert "[model] components" in text
    assert "[model] ordered" in text
    assert "[priors] mu_scale" in text
    assert "[priors] weights_alpha" in text
    assert "'hmc'" in text and "advi" in text
    assert "[fit] draws" in text
    assert "[fit] chains" in text
    assert "'stan'" in text and "nutpie" in text
    assert "[fit] target_accept" in text
    assert "\n" not in str(info.value)
    assert isinstance(info.value, ValueError)


def test_missing_spec_file(tmp_path):
    with pytest.raises(SpecError, match="not found"):
        load_spec(tmp_path / "nope.toml")


def test_invalid_toml(tmp_path):
    p = tmp_path / "x.toml"
    p.write_text("[model\nfamily=")
    with pytest.raises(SpecError, match="not valid TOML"):
        load_spec(p)


def test_relative_data_path_resolved_against_spec_folder(tmp_path):
    sub = tmp_path / "specs"
    sub.mkdir()
    (sub / "d.csv").write_text("a,b\n1,2\n")
    (sub / "ok.toml").write_text('[data]\npath = "d.csv"\n')
    s = load_spec(sub / "ok.toml")
    assert s.data.path == str((sub / "d.csv").resolve())
    (sub / "bad.toml").write_text('[data]\npath = "missing.csv"\n')
    with pytest.raises(SpecError, match="missing.csv"):
        load_spec(sub / "bad.toml")


def test_unknown_builtin():
    with pytest.raises(SpecError, match="old_faithful"):
        spec_from_dict({"data": {"path": "builtin:old_faithfull"}})


def test_ordered_bernoulli_is_a_problem():
    with pytest.raises(SpecError, match="ordered"):
        spec_from_dict({"model": {"family": "bernoulli", "ordered": True}})


def test_weights_alpha_length_must_match_components():
    with pytest.raises(SpecError, match="weights_alpha"):
        spec_from_dict({"model": {"components": 3}, "priors": {"weights_alpha": [1, 2]}})


def test_resolve_priors_data_scaled():
    rng = np.random.default_rng(0)
    X = rng.normal([1.0, -5.0], [2.0, 0.5], size=(400, 2))
    mean, sd = X.mean(0), X.std(0, ddof=1)
    p = resolve_priors(ModelSpec("gaussian", 3, "full"), X)
    np.testing.assert_allclose(p["weights_alpha"], np.ones(3))
    np.testing.assert_allclose(p["mu_loc"], mean)
    np.testing.assert_allclose(p["mu_scale"], 2 * sd)
    np.testing.assert_allclose(p["sigma_scale"], sd)
    assert float(p["lkj_eta"]) == 2.0
    sph = resolve_priors(ModelSpec("gaussian", 2, "spherical"), X)
    assert sph["sigma_scale"].shape == ()
    np.testing.assert_allclose(sph["sigma_scale"], np.sqrt(np.mean(sd**2)))
    assert "lkj_eta" not in resolve_priors(ModelSpec("gaussian", 2, "diag"), X)


def test_resolve_priors_user_values_and_wrong_length():
    X = np.arange(20.0).reshape(10, 2)
    spec = ModelSpec(priors=PriorSpec(mu_loc=0.0, mu_scale=(1.0, 3.0), weights_alpha=(1, 2)))
    p = resolve_priors(spec, X)
    np.testing.assert_allclose(p["mu_loc"], [0.0, 0.0])
    np.testing.assert_allclose(p["mu_scale"], [1.0, 3.0])
    np.testing.assert_allclose(p["weights_alpha"], [1.0, 2.0])
    bad = ModelSpec(priors=PriorSpec(mu_scale=(1.0, 2.0, 3.0)))
    with pytest.raises(SpecError, match="one per feature"):
        resolve_priors(bad, X)


def test_resolve_priors_bernoulli():
    X = np.array([[0, 1], [1, 1], [0, 0]])
    p = resolve_priors(ModelSpec("bernoulli", 2, priors=PriorSpec(beta_a=2, beta_b=3)), X)
    assert set(p) == {"weights_alpha", "beta_a", "beta_b"}
    assert float(p["beta_b"]) == 3.0


def test_config_does_not_import_pymc():
    import subprocess

    code = "import bayesmix.config, sys; print('pymc' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr


def test_unknown_choice_lists_the_choices_once():
    """Issue 12 item 13: the choices were listed twice ('...; valid values: ...')."""
    with pytest.raises(SpecError) as info:
        spec_from_dict({"model": {"family": "gamma"}})
    msg = str(info.value)
    assert msg.count("bernoulli") == 1 and "valid values" not in msg
    with pytest.raises(SpecError, match=r"did you mean 'gaussian'\?"):
        spec_from_dict({"model": {"family": "gausian"}})


def test_weights_priors_parse_default_and_resolve():
    X = np.random.default_rng(0).normal(size=(30, 1))
    sparse = spec_from_dict({"priors": {"weights": "sparse"}}).model
    assert sparse.n_components == 10  # K_max default of sparse and DP mixtures
    assert np.array_equal(resolve_priors(sparse, X)["weights_alpha"], np.full(10, 0.01))
    hyper = spec_from_dict(
        {
            "model": {"components": 4},
            "priors": {"weights": "sparse", "weights_alpha_prior": [10, 40]},
        }
    ).model
    assert np.array_equal(resolve_priors(hyper, X)["weights_alpha_prior"], [10.0, 40.0])
    dp = spec_from_dict({"model": {"components": 6}, "priors": {"weights": "dp"}}).model
    pri = resolve_priors(dp, X)
    assert dp.n_components == 6 and np.array_equal(pri["dp_alpha_prior"], [1.0, 1.0])
    assert "dp_alpha_prior" not in resolve_priors(spec_from_dict({}).model, X)
    plain = spec_from_dict({}).model
    assert plain.n_components == 2
    assert np.array_equal(resolve_priors(plain, X)["weights_alpha"], [1.0, 1.0])
    # the DP's prior survives a JSON round trip; the Dirichlet's spec does not carry it
    run = spec_from_dict({"priors": {"weights": "dp", "dp_alpha_prior": [2, 4]}})
    assert RunSpec.from_json(run.to_json()).model.priors.dp_alpha_prior == (2.0, 4.0)
    assert "dp_alpha_prior" not in spec_from_dict({}).model.priors.to_dict()


@pytest.mark.parametrize(
    ("priors", "words"),
    [
        ({"weights": "dp", "weights_alpha": 1.0}, "weights_alpha: not used"),
        ({"weights_alpha_prior": [1, 2]}, 'only used with weights = "sparse"'),
        ({"dp_alpha_prior": [1, 2]}, 'only used with weights = "dp"'),
        (
            {"weights": "sparse", "weights_alpha": 0.1, "weights_alpha_prior": [1, 2]},
            "got both",
        ),
        ({"weights": "sparse", "weights_alpha_prior": [1]}, "two positive numbers"),
        ({"weights": "dp", "dp_alpha_prior": [1, -2]}, "two positive numbers"),
        ({"weights": "sprse"}, "did you mean 'sparse'"),
    ],
)
def test_weights_prior_problems_say_what_to_do(priors, words):
    with pytest.raises(SpecError, match=r"\[priors\] .*" + re.escape(words)):
        spec_from_dict({"priors": priors})


# --------------------------------------------------------------------------------------------
# the variance priors (inverse-gamma, inverse-Wishart, Richardson & Green) and tied


def test_variance_priors_parse_and_round_trip():
    run = spec_from_dict(
        {
            "model": {"covariance": "diag"},
            "priors": {
                "variance": "inverse_gamma",
                "variance_alpha": 3,
                "variance_beta_prior": [0.2, 0.5],
            },
        }
    )
    pri = run.model.priors
    assert (pri.variance, pri.variance_alpha, pri.variance_beta) == ("inverse_gamma", 3.0, None)
    assert pri.variance_beta_prior == (0.2, 0.5)
    assert RunSpec.from_json(run.to_json()) == run
    tied = spec_from_dict(
        {
            "model": {"covariance": "tied"},
            "priors": {"variance": "inverse_wishart", "variance_beta": [1.0, 2.0]},
        }
    )
    assert tied.model.covariance == "tied"
    assert tied.model.priors.variance_beta == (1.0, 2.0)
    assert RunSpec.from_json(tied.to_json()) == tied
    # the default prior keeps the spec's JSON as it was
    plain = spec_from_dict({}).model.priors.to_dict()
    assert not {"variance", "variance_alpha"} & plain.keys()
    assert spec_from_dict({}).model.priors.variance == "half_normal"


def test_models_galaxies_spec_is_richardson_green():
    from pathlib import Path

    spec = load_spec(Path(__file__).parents[1] / "models" / "galaxies.toml")
    pri = spec.model.priors
    assert spec.data.path == "builtin:galaxies_1000kms"
    assert (pri.variance, pri.variance_alpha) == ("inverse_gamma", 2.0)
    lo, hi = 9.172, 34.279  # the data's range (tests/test_data.py checks it)
    assert pri.mu_loc == pytest.approx((lo + hi) / 2)
    assert pri.mu_scale == pytest.approx(hi - lo)
    assert pri.variance_beta_prior == pytest.approx((0.2, 10 / (hi - lo) ** 2), rel=1e-4)


@pytest.mark.parametrize(
    ("tables", "words"),
    [
        ({"priors": {"variance": "inverse_gama"}}, "variance: unknown value"),
        ({"priors": {"variance_beta": 1.0}}, 'variance_beta: only used with variance = "inv'),
        ({"priors": {"variance_alpha": 3.0}}, "variance_alpha: only used with"),
        (
            {"priors": {"variance": "inverse_gamma", "sigma_scale": 1.0}},
            'sigma_scale: only used with variance = "half_normal"',
        ),
        (
            {
                "priors": {
                    "variance": "inverse_gamma",
                    "variance_beta": 1.0,
                    "variance_beta_prior": [1, 1],
                }
            },
            "variance_beta and variance_beta_prior: expected one of them",
        ),
        (
            {"priors": {"variance": "inverse_gamma", "variance_beta": [1, -1]}},
            "variance_beta: expected a positive number",
        ),
        (
            {"priors": {"variance": "inverse_gamma", "variance_beta_prior": [0.2]}},
            "variance_beta_prior: expected two positive numbers",
        ),
        (
            {"priors": {"variance": "inverse_gamma", "variance_alpha": 0}},
            "variance_alpha: expected a positive number",
        ),
        (
            {"model": {"covariance": "diag"}, "priors": {"variance": "inverse_wishart"}},
            'use variance = "inverse_gamma"',
        ),
        (
            {"model": {"family": "student_t"}, "priors": {"variance": "inverse_gamma"}},
            "variance: not used by family 'student_t'",
        ),
    ],
)
def test_variance_prior_problems_say_what_to_do(tables, words):
    with pytest.raises(SpecError, match=r"\[priors\] .*" + re.escape(words)):
        spec_from_dict(tables)


def test_tied_only_for_families_that_have_it():
    assert spec_from_dict({"model": {"covariance": "tied"}}).model.covariance == "tied"
    with pytest.raises(SpecError, match=r"\[model\] covariance: expected one of .* 'student_t'"):
        spec_from_dict({"model": {"family": "student_t", "covariance": "tied"}})


# --------------------------------------------------------------------------------------------
# the prior on K (select --bayesian)


def test_k_prior_parses_round_trips_and_gives_weights():
    from math import factorial

    plain = spec_from_dict({}).model.priors
    assert plain.k_prior == "uniform" and "k_prior" not in plain.to_dict()
    assert plain.k_prior_weights([1, 2, 5]) == {1: 1.0, 2: 1.0, 5: 1.0}
    run = spec_from_dict({"priors": {"k_prior": "poisson", "k_prior_mean": 2.5}})
    pri = run.model.priors
    assert (pri.k_prior, pri.k_prior_mean) == ("poisson", 2.5)
    assert RunSpec.from_json(run.to_json()) == run
    w = pri.k_prior_weights(range(1, 9))
    p = np.array([w[k] for k in range(1, 9)])
    ref = np.array([2.5**k / factorial(k) for k in range(1, 9)])
    np.testing.assert_allclose(p / p.sum(), ref / ref.sum(), rtol=1e-12)
    # large K: no overflow (weights relative to the largest term)
    big = pri.k_prior_weights([1, 200])
    assert np.isfinite(list(big.values())).all() and big[1] > big[200] > 0
    listed = spec_from_dict({"priors": {"k_prior": [1, 2, 3]}})
    assert listed.model.priors.k_prior == (1.0, 2.0, 3.0)
    assert RunSpec.from_json(listed.to_json()) == listed
    assert listed.model.priors.k_prior_weights([2, 3]) == {2: 2.0, 3: 3.0}
    from bayesmix._validation import ParameterError

    with pytest.raises(ParameterError, match=r"K = 1\.\.3, not for K = \[4\]; give"):
        listed.model.priors.k_prior_weights([2, 4])
    with pytest.raises(ParameterError, match="k_prior: expected one of uniform, poisson"):
        PriorSpec(k_prior="flat")
    # the prior on K is not part of a model with one K: same compiled model
    from bayesmix.inference import get_compiled

    X = np.random.default_rng(0).normal(size=(20, 1))
    m1 = ModelSpec("gaussian", 2, "diag")
    m2 = ModelSpec("gaussian", 2, "diag", priors=PriorSpec(k_prior="poisson"))
    assert get_compiled(m1, X) is get_compiled(m2, X)


@pytest.mark.parametrize(
    ("priors", "words"),
    [
        ({"k_prior": "unifrom"}, "did you mean 'uniform'"),
        ({"k_prior": [1, 0]}, "k_prior: expected a positive number or a list"),
        ({"k_prior": []}, "k_prior: expected a positive number or a list"),
        ({"k_prior_mean": 2.0}, 'only used with k_prior = "poisson"'),
        ({"k_prior": "poisson", "k_prior_mean": -1}, "k_prior_mean: expected a positive"),
    ],
)
def test_k_prior_problems_say_what_to_do(priors, words):
    with pytest.raises(SpecError, match=r"\[priors\] .*" + re.escape(words)):
        spec_from_dict({"priors": priors})


@pytest.mark.parametrize(("key", "hint"), [("id_column", "id"), ("separator", "sep")])
def test_a_data_key_named_after_its_cli_flag_points_to_the_spec_key(tmp_path, key, hint):
    (tmp_path / "d.csv").write_text("a,b\n1,2\n3,4\n")
    p = tmp_path / "s.toml"
    p.write_text(f'[data]\npath = "d.csv"\n{key} = "a"\n')
    with pytest.raises(
        SpecError, match=rf"unknown key '{key}' in \[data\]; did you mean '{hint}'\?"
    ):
        load_spec(p)
