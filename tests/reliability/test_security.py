"""Untrusted spec files, CSV tables and result files: no code execution, limits, clear errors.

* The package source is scanned (AST, so docstrings do not count) for the usual ways to run
  code from data: pickle/marshal/shelve/dill/joblib, eval/exec/compile/__import__, yaml.load,
  allow_pickle=True, pandas.read_pickle, os.system and shell=True. One reviewed exception:
  the graph cache (``bayesmix/inference/_graph_cache.py``) pickles PyTensor graphs that this
  user's bayesmix wrote; the scan checks that its only ``pickle.loads`` sits after an HMAC
  check that returns early (and tests/inference/test_graph_cache.py that a tampered file is
  never unpickled).
* Result files that would run code if unpickled (a pickle renamed .nc, a Zarr store with the
  Pickle object codec) are refused with DataError and run nothing.
* CSV tables: read with pandas.read_csv only; a row limit (max_rows), non-numeric cells
  (spreadsheet formulas included), non-UTF-8 bytes, folders and unknown built-ins give
  DataError; relative paths resolve against the documented folder (the spec's folder or
  base_dir), never the working directory.
* Spec files: every problem at once in a SpecError; relative data paths against the spec's
  folder.
"""

from __future__ import annotations

import ast
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

import bayesmix
from bayesmix._validation import DataError, SpecError
from bayesmix.config import load_spec, spec_from_dict
from bayesmix.data import load_table

PACKAGE = Path(bayesmix.__file__).resolve().parent
BANNED_MODULES = {"pickle", "cPickle", "_pickle", "marshal", "shelve", "dill", "joblib", "yaml"}
BANNED_CALLS = {"eval", "exec", "compile", "__import__"}


def _sources():
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 20  # the scan really sees the package
    return files


def _problems(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out = []
    for node in ast.walk(tree):
        where = f"{path.relative_to(PACKAGE.parent)}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in BANNED_MODULES:
                    out.append(f"{where} import {alias.name}")
        elif isinstance(node, ast.ImportFrom):
            if (node.module or "").split(".")[0] in BANNED_MODULES:
                out.append(f"{where} from {node.module} import ...")
        elif isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name) and f.id in BANNED_CALLS:
                out.append(f"{where} call {f.id}()")
            if isinstance(f, ast.Attribute):
                if f.attr in ("read_pickle", "system", "popen", "load_module"):
                    out.append(f"{where} call .{f.attr}()")
                if f.attr == "load" and isinstance(f.value, ast.Name) and f.value.id == "yaml":
                    out.append(f"{where} call yaml.load()")
            for kw in node.keywords:
                if kw.arg in ("allow_pickle", "shell") and not (
                    isinstance(kw.value, ast.Constant) and kw.value.value is False
                ):
                    out.append(f"{where} {kw.arg}=...")
    return out


def test_scanner_finds_what_it_looks_for(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import pickle\nfrom yaml import load\nx = eval('1')\nimport numpy as np\n"
        "np.load('f', allow_pickle=True)\nimport subprocess\n"
        "subprocess.run('ls', shell=True)\n"
        "'''eval(docstrings are fine)'''\n"
    )
    global PACKAGE
    saved, PACKAGE = PACKAGE, tmp_path
    try:
        found = _problems(bad)
    finally:
        PACKAGE = saved
    assert len(found) == 5, found


# Reviewed exceptions: file -> the findings allowed there (without line numbers).
ALLOWED = {"bayesmix/inference/_graph_cache.py": {"import pickle"}}


def _without_line(problem: str) -> tuple[str, str]:
    where, what = problem.split(" ", 1)
    return where.rsplit(":", 1)[0], what


def test_package_source_has_no_code_execution_from_data():
    problems = [p for f in _sources() for p in _problems(f)]
    unexpected = [
        p for p in problems if _without_line(p)[1] not in ALLOWED.get(_without_line(p)[0], ())
    ]
    assert unexpected == []
    # every exception is still needed (a stale allow-list would hide a new use)
    assert {_without_line(p) for p in problems} == {
        (f, what) for f, whats in ALLOWED.items() for what in whats
    }


def test_graph_cache_unpickles_only_after_the_hmac_check():
    path = PACKAGE / "inference" / "_graph_cache.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))

    def is_call(node, owner, attr):
        return (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == attr
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == owner
        )

    loads = [n for n in ast.walk(tree) if is_call(n, "pickle", "loads")]
    assert len(loads) == 1
    # other pickle uses are dumps only (writing, never reading)
    uses = {
        n.attr
        for n in ast.walk(tree)
        if isinstance(n, ast.Attribute)
        and isinstance(n.value, ast.Name)
        and n.value.id == "pickle"
    }
    assert uses <= {"loads", "dumps", "HIGHEST_PROTOCOL"}, uses
    (func,) = [
        f
        for f in ast.walk(tree)
        if isinstance(f, ast.FunctionDef) and any(n is loads[0] for n in ast.walk(f))
    ]
    # an `if not hmac.compare_digest(...): return None` comes first in the same function
    guards = [
        s
        for s in func.body
        if isinstance(s, ast.If)
        and isinstance(s.test, ast.UnaryOp)
        and isinstance(s.test.op, ast.Not)
        and is_call(s.test.operand, "hmac", "compare_digest")
        and isinstance(s.body[0], ast.Return)
    ]
    assert guards and guards[0].lineno < loads[0].lineno


# --------------------------------------------------------------------------------------------
# result files


class _Payload:
    """Unpickling this creates a marker file: proof that code ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_pickle_disguised_as_result_file_is_refused(tmp_path):
    from bayesmix.results import load

    marker = tmp_path / "MARKER"
    fake = tmp_path / "result.nc"
    fake.write_bytes(pickle.dumps(_Payload(str(marker))))
    with pytest.raises(DataError, match="not a bayesmix result file"):
        load(fake)
    assert not marker.exists()


def test_zarr_store_with_pickle_codec_is_refused_without_running_it(tmp_path):
    from bayesmix.results import load

    marker = tmp_path / "MARKER"
    store = tmp_path / "result.zarr"
    (store / "x").mkdir(parents=True)
    (store / ".zgroup").write_text(json.dumps({"zarr_format": 2}))
    (store / ".zattrs").write_text(json.dumps({"format": "bayesmix-result/1"}))
    (store / "x" / ".zarray").write_text(
        json.dumps(
            {
                "zarr_format": 2,
                "shape": [1],
                "chunks": [1],
                "dtype": "|O",
                "compressor": None,
                "fill_value": None,
                "order": "C",
                "filters": [{"id": "pickle", "protocol": 5}],
            }
        )
    )
    (store / "x" / ".zattrs").write_text(json.dumps({"_ARRAY_DIMENSIONS": ["d"]}))
    (store / "x" / "0").write_bytes(pickle.dumps(np.array([_Payload(str(marker))], dtype=object)))
    with pytest.raises(DataError):
        load(store)
    assert not marker.exists()


# --------------------------------------------------------------------------------------------
# CSV tables


def _one_line(exc: BaseException) -> str:
    msg = str(exc)
    assert msg and "\n" not in msg
    return msg


def test_csv_row_limit(tmp_path):
    f = tmp_path / "big.csv"
    f.write_text("a,b\n" + "1,2\n" * 101)
    assert len(load_table(f, max_rows=101)) == 101
    with pytest.raises(DataError, match="too many rows") as err:
        load_table(f, max_rows=100)
    _one_line(err.value)


@pytest.mark.parametrize(
    "cell", ["=cmd|' /C calc'!A0", "@SUM(1+1)", "__import__('os')", "1; rm -rf /", "1e5000x"]
)
def test_csv_hostile_cells_are_not_numbers(tmp_path, cell):
    f = tmp_path / "evil.csv"
    f.write_text(f'x,y\n1.0,2.0\n"{cell}",3.0\n')
    with pytest.raises(DataError, match="not numeric.*row 1") as err:
        load_table(f)
    _one_line(err.value)


def test_csv_binary_garbage_folder_and_empty(tmp_path):
    garbage = tmp_path / "garbage.csv"
    garbage.write_bytes(b"x,y\n\xff\xfe\x00\x81,\x92\n")
    with pytest.raises(DataError):
        load_table(garbage)
    with pytest.raises(DataError, match="directory"):
        load_table(tmp_path)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match="empty"):
        load_table(empty)
    header_only = tmp_path / "header.csv"
    header_only.write_text("x,y\n")
    with pytest.raises(DataError, match="no data rows"):
        load_table(header_only)


@pytest.mark.parametrize("name", ["builtin:../../etc/passwd", "builtin:os.system", "builtin:"])
def test_unknown_builtin_names_are_refused(name):
    with pytest.raises(DataError, match="unknown built-in"):
        load_table(name)


def test_relative_csv_path_resolves_against_base_dir_not_cwd(tmp_path, monkeypatch):
    base, cwd = tmp_path / "specs", tmp_path / "elsewhere"
    base.mkdir()
    cwd.mkdir()
    (base / "data.csv").write_text("x\n1.0\n2.0\n")
    (cwd / "data.csv").write_text("x\n100.0\n200.0\n300.0\n")
    monkeypatch.chdir(cwd)
    assert load_table("data.csv", base_dir=base)["x"].tolist() == [1.0, 2.0]
    assert load_table("data.csv")["x"].tolist() == [100.0, 200.0, 300.0]  # documented: cwd


# --------------------------------------------------------------------------------------------
# spec files


def test_spec_relative_data_path_is_the_spec_folder(tmp_path, monkeypatch):
    specs, cwd = tmp_path / "specs", tmp_path / "cwd"
    specs.mkdir()
    cwd.mkdir()
    (specs / "data.csv").write_text("x\n1.0\n2.0\n3.0\n")
    (cwd / "data.csv").write_text("x\n9.0\n")
    (specs / "run.toml").write_text('[data]\npath = "data.csv"\n[model]\ncomponents = 2\n')
    monkeypatch.chdir(cwd)
    spec = load_spec(specs / "run.toml")
    assert Path(spec.data.path) == (specs / "data.csv").resolve()
    assert spec.data.load()["x"].tolist() == [1.0, 2.0, 3.0]
    # a missing relative file is a SpecError naming the resolved path
    (specs / "bad.toml").write_text('[data]\npath = "nope.csv"\n')
    with pytest.raises(SpecError, match="not found"):
        load_spec(specs / "bad.toml")


def test_hostile_spec_values_are_reported_all_at_once(tmp_path):
    text = (
        '__class__ = "x"\n'
        "[model]\n"
        "family = \"__import__('os')\"\n"
        "components = -1\n"
        'covariance = {"a" = 1}\n'
        "[priors]\n"
        "mu_scale = [1e400, -1]\n"
        "weights_alpha = nan\n"
        "[fit]\n"
        'methods = ["eval"]\n'
        "draws = 1.5\n"
    )
    f = tmp_path / "hostile.toml"
    f.write_text(text)
    with pytest.raises(SpecError) as err:
        load_spec(f)
    problems = err.value.problems
    assert len(problems) >= 7, problems
    joined = " ".join(problems)
    for key in ("__class__", "family", "components", "covariance", "mu_scale", "methods"):
        assert key in joined, key


def test_invalid_toml_and_non_table_specs(tmp_path):
    f = tmp_path / "broken.toml"
    f.write_text("[model\ncomponents = 2\n")
    with pytest.raises(SpecError, match="not valid TOML"):
        load_spec(f)
    with pytest.raises(SpecError):
        spec_from_dict(["not", "a", "table"])


def test_oversized_spec_file_is_refused(tmp_path):
    f = tmp_path / "huge.toml"
    f.write_text('name = "x"\n' + "".join(f"# {'x' * 1000}\n" for _ in range(20_000)))
    assert os.path.getsize(f) > 10_000_000
    with pytest.raises(SpecError, match="too large|size"):
        load_spec(f)
