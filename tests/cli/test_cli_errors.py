"""Bad invocations of ``bayesmix``: exit status 2, one helpful line, no traceback, no output."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import bayesmix
from bayesmix._validation import DataError, SpecError
from bayesmix.cli import main, parse_k_range

from .conftest import error_lines, run_cli

PYTHON_WORDS = (
    r"df\.\w+\(|\w+=\[|\bselect_k\b|\bn_components\b|covariance_type=|\bdropna=|"
    r"\bid_column=|\.astype\(|bayesmix\.results\."
)
GOOD_ROWS = "a,b\n1,2\n3,4\n5,6\n7,9\n2,2\n4,1\n"


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """A folder of bad (and a few good) inputs."""
    d = tmp_path / "inputs"
    d.mkdir()
    (d / "empty.csv").write_text("")
    (d / "header.csv").write_text("a,b\n")
    (d / "text.csv").write_text("a,b\n1,2\n2,y\n3,4\n4,6\n")  # one bad value in a number column
    (d / "nan.csv").write_text("a,b\n1,2\n,3\n4,5\n6,7\n")
    (d / "good.csv").write_text(GOOD_ROWS)
    (d / "constant.csv").write_text("a,b\n1,2\n3,2\n5,2\n7,2\n")
    (d / "tiny.csv").write_text("a\n1\n2\n")
    (d / "blocker").write_text("a regular file, not a folder\n")
    (d / "typo.toml").write_text("[model]\ncomponets = 2\n")
    (d / "wrongtype.toml").write_text('[fit]\ndraws = "many"\n')
    (d / "invalid.toml").write_text("[model\ncomponents = 2\n")
    (d / "kprior.toml").write_text('[data]\npath = "good.csv"\n[priors]\nk_prior = [1, 2]\n')
    (d / "garbage.nc").write_text("this is not netCDF\n")
    xr.Dataset({"v": ("i", np.arange(3.0))}).to_netcdf(d / "foreign.nc", engine="h5netcdf")
    return d


# (id, argv with {d} = inputs folder and {out} = the output path, phrase expected on stderr)
BAD = [
    ("missing_spec", ["fit", "{d}/nope.toml", "--out", "{out}"], r"nope\.toml' not found"),
    (
        "missing_data",
        ["fit", "--data", "{d}/missing.csv", "--out", "{out}"],
        r"(?=.*not found)(?=.*missing\.csv)",
    ),
    ("empty_csv", ["fit", "--data", "{d}/empty.csv", "--out", "{out}"], r"is empty"),
    ("header_only_csv", ["fit", "--data", "{d}/header.csv", "--out", "{out}"], r"no data rows"),
    (
        "non_numeric",
        ["fit", "--data", "{d}/text.csv", "--out", "{out}"],
        r"column 'b' .* is not numeric",
    ),
    (
        "unknown_column",
        ["fit", "--data", "{d}/good.csv", "--columns", "a", "zzz", "--out", "{out}"],
        r"unknown column 'zzz'",
    ),
    ("nan_rows", ["fit", "--data", "{d}/nan.csv", "--out", "{out}"], r"missing values"),
    (
        "k_too_large",
        ["fit", "--data", "{d}/tiny.csv", "-k", "5", "--out", "{out}"],
        r"fewer samples than components",
    ),
    (
        "unknown_key",
        ["fit", "{d}/typo.toml", "--out", "{out}"],
        r"unknown key 'componets'.*did you mean 'components'",
    ),
    (
        "wrong_type",
        ["fit", "{d}/wrongtype.toml", "--out", "{out}"],
        r"draws: expected an integer >= 1, got 'many'",
    ),
    ("invalid_toml", ["fit", "{d}/invalid.toml", "--out", "{out}"], r"not valid TOML"),
    (
        "negative_draws",
        ["fit", "--draws", "-5", "--out", "{out}"],
        r"draws: expected an integer >= 1, got -5",
    ),
    (
        "chains_zero",
        ["fit", "--chains", "0", "--out", "{out}"],
        r"chains: expected an integer >= 1, got 0",
    ),
    (
        "unknown_method",
        ["fit", "--methods", "em,gibbs", "--out", "{out}"],
        r"--methods: unknown value 'gibbs'.*em, map, nuts",
    ),
    (
        "unknown_family",
        ["fit", "--family", "gamma", "--out", "{out}"],
        r"--family: invalid choice: 'gamma' \(choose from 'gaussian', 'bernoulli', 'poisson',",
    ),
    (
        "unknown_covariance",
        ["fit", "--covariance", "banana", "--out", "{out}"],
        r"--covariance: invalid choice: 'banana'",
    ),
    (
        "non_binary_bernoulli",
        ["fit", "--data", "{d}/good.csv", "--family", "bernoulli", "--out", "{out}"],
        r"binary",
    ),
    (
        "out_under_a_file",
        ["fit", "--methods", "em", "--out", "{d}/blocker/sub"],
        r"blocker' to be a folder, got a file",
    ),
    (
        "existing_out",
        ["fit", "--methods", "em", "--out", "{out}"],
        r"already exists.*--force.*--out",
    ),
    (
        "constant_column",
        ["fit", "--data", "{d}/constant.csv", "--out", "{out}"],
        r"constant column.*--covariance diag or spherical.*--columns",
    ),
    (
        "select_components",
        ["select", "-k", "3", "--out", "{out}"],
        r"'bayesmix select' compares several K, given by --k",
    ),
    (
        "unknown_feature",
        ["fit", "--features", "eruptionz", "--out", "{out}"],
        r"--features: 'eruptionz' is not a column.*did you mean 'eruptions'",
    ),
    ("select_k_reversed", ["select", "--k", "5..2", "--out", "{out}"], r"start is <= its end"),
    ("select_k_zero", ["select", "--k", "0..3", "--out", "{out}"], r"every K >= 1"),
    ("select_k_text", ["select", "--k", "a,b", "--out", "{out}"], r"expected integers"),
    ("sample_missing_nc", ["sample", "{d}/missing.nc", "-n", "5", "--out", "{out}"], r"not found"),
    (
        "sample_foreign_nc",
        ["sample", "{d}/foreign.nc", "-n", "5", "--out", "{out}"],
        r"not a bayesmix result",
    ),
    (
        "sample_garbage_nc",
        ["sample", "{d}/garbage.nc", "-n", "5", "--out", "{out}"],
        r"not a bayesmix result|cannot read",
    ),
    (
        "sample_n_zero",
        ["sample", "{d}/foreign.nc", "-n", "0", "--out", "{out}"],
        r"-n: expected a number of observations >= 1",
    ),
    ("show_missing_nc", ["show", "{d}/missing.nc"], r"not found"),
    ("unknown_command", ["frobnicate"], r"invalid choice: 'frobnicate'"),
    ("bad_int_option", ["fit", "--draws", "x", "--out", "{out}"], r"invalid int value: 'x'"),
    ("sample_without_n", ["sample", "{d}/foreign.nc"], r"required: -n"),
    (
        "k_prior_short_of_k",  # checked before any fit
        ["select", "{d}/kprior.toml", "--k", "1..3", "--bayesian", "--out", "{out}"],
        r"--k 1\.\.3 with the spec's \[priors\] k_prior: .*not for K = \[3\]",
    ),
]


@pytest.mark.parametrize(("argv", "phrase"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_invocation(files, tmp_path, argv, phrase):
    out = tmp_path / "out"
    if "existing_out" in phrase or "already exists" in phrase:
        out.mkdir()
        (out / "keep.txt").write_text("old run")
    before = sorted(p.name for p in tmp_path.iterdir())
    args = [a.format(d=files, out=out) for a in argv]

    code, stdout, stderr = run_cli(args)

    assert code == 2, (stdout, stderr)
    assert "Traceback" not in stderr
    lines = error_lines(stderr)
    assert len(lines) == 1, stderr
    assert lines[0].startswith("bayesmix: error: "), stderr
    assert re.search(phrase, lines[0]), lines[0]
    assert ";" in lines[0]  # "<what is wrong>; <what to do>"
    # advice in the command line's words, not the Python API's (issue 12, item 10)
    assert not re.search(PYTHON_WORDS, lines[0]), lines[0]
    # nothing written: no output, no half-written sibling, blocker still a file
    after = sorted(p.name for p in tmp_path.iterdir())
    assert after == before
    if out.exists():
        assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    assert (files / "blocker").is_file()
    assert sorted(p.name for p in files.iterdir()) == sorted(
        [
            "empty.csv",
            "header.csv",
            "text.csv",
            "nan.csv",
            "good.csv",
            "constant.csv",
            "tiny.csv",
            "blocker",
            "typo.toml",
            "wrongtype.toml",
            "invalid.toml",
            "kprior.toml",
            "garbage.nc",
            "foreign.nc",
        ]
    )


def test_at_least_15_bad_invocations():
    assert len(BAD) >= 15


def test_debug_reraises(files, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default output folder must not depend on the caller's cwd
    with pytest.raises(SpecError, match="chains"):
        main(["fit", "--chains", "0", "--debug"])
    with pytest.raises(DataError, match="not numeric"):
        main(["fit", "--data", str(files / "text.csv"), "--debug"])


# --------------------------------------------------------------------------------------------
# failures during the fit: the staging folder is removed, the old output is kept


class _FakeInference:
    """Stands in for bayesmix.inference; ``run`` raises the given exception."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc
        self.calls = 0

    def run(self, spec, X, progressbar=None, on_stage=None):
        self.calls += 1
        self.exc_spec = spec
        raise self.exc


def _install(monkeypatch, fake) -> None:
    """Make ``from bayesmix import inference`` return ``fake`` for one test.

    The attribute is patched first: reading it imports the real module (bayesmix loads its
    sub-modules lazily), so the undo restores the real one and not the fake.
    """
    monkeypatch.setattr(bayesmix, "inference", fake, raising=False)
    monkeypatch.setitem(sys.modules, "bayesmix.inference", fake)


@pytest.mark.parametrize(
    ("exc", "code", "phrase"),
    [
        (
            RuntimeError("boom inside the sampler"),
            1,
            r"internal error: RuntimeError: boom.*--debug",
        ),
        (DataError("bad thing: expected x, got y; fix it"), 2, r"error: bad thing"),
        (KeyboardInterrupt(), 130, r"interrupted"),
    ],
    ids=["unexpected", "bayesmix_error", "interrupt"],
)
def test_failure_during_fit_leaves_nothing(monkeypatch, tmp_path, exc, code, phrase):
    fake = _FakeInference(exc)
    _install(monkeypatch, fake)
    out = tmp_path / "runs" / "x"
    # once into a new folder, once with --force over an existing one
    for extra in ([], ["--force"]):
        c, stdout, stderr = run_cli(["fit", "--seed", "3", "--out", out, *extra])
        assert c == code
        assert "Traceback" not in stderr
        assert len(error_lines(stderr)) == 1, stderr
        assert re.search(phrase, stderr), stderr
        assert sorted(p.name for p in out.parent.iterdir()) == (["x"] if extra else [])
        if not extra:
            out.mkdir()
            (out / "keep.txt").write_text("old")
        else:
            assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    assert fake.calls == 2
    assert fake.exc_spec.fit.seed == 3  # the override reached the spec


# --------------------------------------------------------------------------------------------
# parsing and help


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1..6", [1, 2, 3, 4, 5, 6]),
        ("2-4", [2, 3, 4]),
        ("1,2,3", [1, 2, 3]),
        ("3", [3]),
        ("3, 1,3", [1, 3]),
        (" 2..2 ", [2]),
    ],
)
def test_parse_k_range(text, expected):
    assert parse_k_range(text) == expected


@pytest.mark.parametrize("command", [[], ["fit"], ["select"], ["sample"], ["show"]])
def test_help(command):
    code, stdout, stderr = run_cli([*command, "--help"])
    assert code == 0
    assert stdout.startswith("usage: bayesmix")
    assert stderr == ""


def test_version():
    code, stdout, _ = run_cli(["--version"])
    assert code == 0
    assert stdout.strip() == f"bayesmix {bayesmix.__version__}"


def test_no_command_prints_help_and_fails():
    code, stdout, stderr = run_cli([])
    assert code == 2
    assert "usage: bayesmix" in stderr


def test_import_is_lazy():
    """``import bayesmix.cli`` must not import PyMC, PyTensor or matplotlib."""
    code = (
        "import sys, bayesmix.cli; "
        "print(sorted(m for m in ('pymc', 'pytensor', 'arviz', 'matplotlib') if m in sys.modules))"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "[]"


def test_overrides_reach_the_spec(files, monkeypatch):
    """Command-line options override the spec file; --data drops the spec's columns."""
    fake = _FakeInference(DataError("stop: expected nothing, got a test; ignore"))
    _install(monkeypatch, fake)
    spec = Path(__file__).resolve().parents[2] / "models" / "old_faithful_1d.toml"
    code, _, _ = run_cli(
        [
            "fit",
            spec,
            "--data",
            files / "good.csv",
            "-k",
            "3",
            "--covariance",
            "spherical",
            "--methods",
            "em",
            "map",
            "--draws",
            "7",
            "--tune",
            "8",
            "--chains",
            "1",
            "--seed",
            "9",
            "--sampler",
            "pymc",
            "--out",
            files.parent / "o",
        ]
    )
    assert code == 2
    s = fake.exc_spec
    assert s.name == "good"  # the data's name, not the spec file's (that spec sets no name)
    assert s.data.path == str((files / "good.csv").resolve()) and s.data.columns is None
    assert (s.model.n_components, s.model.covariance, s.model.ordered) == (3, "spherical", True)
    assert s.fit.methods == ("em", "map")
    assert (s.fit.draws, s.fit.tune, s.fit.chains, s.fit.seed, s.fit.sampler) == (
        7,
        8,
        1,
        9,
        "pymc",
    )
    assert pd.read_csv(files / "good.csv").shape == (6, 2)
