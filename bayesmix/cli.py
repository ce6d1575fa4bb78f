"""The ``bayesmix`` command: fit a spec, choose K, draw new data, show a saved result.

::

    bayesmix fit [SPEC] [--data FILE --columns A B -k K --methods em,map,nuts ...] [--out DIR]
    bayesmix select SPEC --k 1..6 [--out DIR]
    bayesmix sample RESULT.nc -n 500 [--out FILE.csv] [--seed S]
    bayesmix show RESULT.nc

Errors that come from the user's input (any :class:`~bayesmix._validation.BayesmixError`, a
missing file, an output that cannot be written, a bad command line) end the command with exit
status 2 and one line on stderr, ``bayesmix: error: <what is wrong>; <what to do>``; ``--debug``
shows the traceback instead. Anything else is a bug: exit status 1 and one line suggesting
``--debug``.

Output is never half-written: ``fit`` and ``select`` build their folder in a temporary sibling
and rename it into place at the end; ``sample`` writes its CSV to a temporary file first.

PyMC is imported inside the command functions only, so ``bayesmix --help`` stays fast.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from bayesmix import __version__
from bayesmix._files import default_folder_mode
from bayesmix._validation import (
    BayesmixError,
    DataError,
    ParameterError,
    SpecError,
    checked_data,
)
from bayesmix.config import (
    COVARIANCES,
    FAMILIES,
    METHODS,
    MISSING_CHOICES,
    SAMPLERS,
    RunSpec,
    load_spec,
)
from bayesmix.families import get_family

__all__ = ["build_parser", "main", "parse_k_range"]

PROG = "bayesmix"


class _UsageError(Exception):
    """A bad command line (argparse's error, reported on one line with exit status 2)."""


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are raised (one line), not printed with the usage block."""

    def error(self, message: str):  # type: ignore[override]
        raise _UsageError(f"{message}; see '{self.prog} --help'")


# ---------------------------------------------------------------------------------------------
# argument parsing


def _csv_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _flatten(values: Sequence[str] | None) -> list[str] | None:
    if values is None:
        return None
    out: list[str] = []
    for v in values:
        out.extend(_csv_list(v))
    return out


def parse_k_range(text: str) -> list[int]:
    """Parse ``"1..6"``, ``"1-6"``, ``"1,2,3"`` or ``"4"`` into a sorted list of distinct K.

    Parameters
    ----------
    text : str

    Returns
    -------
    list of int
        Each ``>= 1``.

    Raises
    ------
    ParameterError
        For anything else (the message shows the accepted forms).
    """
    hint = "use a range like 1..6 or a list like 1,2,3 of integers >= 1"
    s = str(text).strip()
    is_range = ".." in s or (s.count("-") == 1 and not s.startswith("-"))
    try:
        if is_range:
            lo_s, hi_s = s.split("..", 1) if ".." in s else s.split("-")
            lo, hi = int(lo_s), int(hi_s)
            ks = list(range(lo, hi + 1))
        else:
            ks = [int(t) for t in _csv_list(s)]
    except ValueError:
        raise ParameterError(f"--k {s!r}: expected integers, got something else; {hint}") from None
    if is_range and lo > hi:
        raise ParameterError(
            f"--k {s!r}: expected a range whose start is <= its end, got {lo} > {hi}; {hint}"
        )
    if not ks:
        raise ParameterError(f"--k {s!r}: expected at least one value of K, got none; {hint}")
    bad = [k for k in ks if k < 1]
    if bad:
        raise ParameterError(f"--k {s!r}: expected every K >= 1, got {bad[0]}; {hint}")
    return sorted(set(ks))


def _common_parent() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("output and errors")
    g.add_argument("--quiet", "-q", action="store_true", help="no progress bars or log lines")
    g.add_argument(
        "--debug", action="store_true", help="show the full traceback of an error (re-raise it)"
    )
    return p


def _spec_parent(select: bool = False) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("the data (command line wins over the spec's [data])")
    g.add_argument("--data", metavar="FILE", help="CSV file, or builtin:old_faithful etc.")
    g.add_argument(
        "--columns", nargs="+", metavar="COL", help="columns to use (space or comma separated)"
    )
    g.add_argument(
        "--id-column", metavar="COL", help="column that names the rows (kept in membership.csv)"
    )
    g.add_argument(
        "--weights",
        metavar="COL",
        help="column of frequency weights: each row counts that many times (not a feature)",
    )
    g.add_argument(
        "--missing",
        choices=MISSING_CHOICES,
        help="rows with missing values: error (default), drop them, or model them as missing "
        "at random (every fit sums the missing values out)",
    )
    g.add_argument(
        "--dropna", action="store_true", help="drop rows with missing values (= --missing drop)"
    )
    g.add_argument(
        "--labels",
        metavar="COL",
        help="column of partial labels: a component number or group name where known, empty "
        "where not (not a feature)",
    )
    g.add_argument("--sep", metavar="CHAR", help="field separator (default: detected)")
    g.add_argument("--decimal", metavar="CHAR", help="decimal mark (default: detected)")
    g = p.add_argument_group("the model and the fit (command line wins over the spec)")
    if not select:
        g.add_argument("-k", "--components", type=int, metavar="K", help="number of components")
    g.add_argument("--family", choices=FAMILIES, help="component family")
    if select:
        g.add_argument(
            "--covariance",
            nargs="+",
            metavar="COV",
            help=f"any of {', '.join(COVARIANCES)} (several: compare them)",
        )
    else:
        g.add_argument("--covariance", choices=COVARIANCES, help="covariance structure")
    g.add_argument(
        "--methods", nargs="+", metavar="M", help=f"any of {', '.join(METHODS)} (e.g. em,map)"
    )
    g.add_argument("--draws", type=int, help="NUTS draws per chain")
    g.add_argument("--tune", type=int, help="NUTS tuning steps per chain")
    g.add_argument("--chains", type=int, help="number of chains")
    g.add_argument("--seed", type=int, help="seed of every random step")
    g.add_argument("--sampler", choices=SAMPLERS, help="NUTS implementation")
    g.add_argument("--name", help="name of the run (default: the spec's name or the data file's)")
    return p


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``bayesmix`` command (subcommands fit, select, sample, show)."""
    common = _common_parent()
    specp = _spec_parent()
    selp = _spec_parent(select=True)
    parser = _Parser(
        prog=PROG,
        description="Bayesian mixture models: EM, MAP and NUTS side by side.",
        epilog="Run 'bayesmix <command> --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="command", parser_class=_Parser)

    fit = sub.add_parser(
        "fit",
        parents=[specp, common],
        help="fit a spec and write result.nc, summary.csv, plots and report.html",
        description="Fit a model spec (models/*.toml) with the methods it lists. Without SPEC, "
        "the bundled Old Faithful job (both columns, K=2, full covariance, em+map+nuts).",
    )
    fit.add_argument("spec", nargs="?", metavar="SPEC", help="a .toml spec (default: built-in)")
    fit.add_argument("--out", metavar="DIR", help="output folder (default runs/<spec name>)")
    fit.add_argument("--force", action="store_true", help="replace an existing output folder")
    fit.add_argument(
        "--features",
        nargs="+",
        metavar="COL",
        help="features to draw in the cluster and predictive plots (default: chosen for you)",
    )
    fit.set_defaults(func=_cmd_fit)

    sel = sub.add_parser(
        "select",
        parents=[selp, common],
        help="compare numbers of components K",
        description="Fit the spec's model for several K and print the selection table.",
    )
    sel.add_argument("spec", nargs="?", metavar="SPEC", help="a .toml spec (default: built-in)")
    sel.add_argument(
        "--k",
        dest="ks",
        default="1..6",
        metavar="KS",
        help="the numbers of components to compare, e.g. 1..6 or 1,2,3 (default 1..6)",
    )
    # fit's -k/--components is refused with a message rather than taken for the range
    sel.add_argument("-k", "--components", dest="components", help=argparse.SUPPRESS)
    sel.add_argument(
        "--bayesian",
        "--loo",
        dest="bayesian",
        action="store_true",
        help="also, for each K, NUTS with PSIS-LOO and the marginal likelihood p(y | K) "
        "(bridge sampling) with p(K | y), and one sparse mixture's p(K+ | y) (slow)",
    )
    sel.add_argument("--out", metavar="DIR", help="output folder (default runs/<name>-select)")
    sel.add_argument("--force", action="store_true", help="replace an existing output folder")
    sel.set_defaults(func=_cmd_select)

    smp = sub.add_parser(
        "sample",
        parents=[common],
        help="draw new data from a fitted model",
        description="Draw new observations (with their component) from a saved result.",
    )
    smp.add_argument("result", metavar="RESULT.nc", help="a result.nc written by 'bayesmix fit'")
    smp.add_argument("-n", type=int, required=True, help="number of observations to draw")
    smp.add_argument("--out", metavar="FILE.csv", help="CSV file to write (default: stdout)")
    smp.add_argument("--seed", type=int, default=None, help="random seed")
    smp.set_defaults(func=_cmd_sample)

    show = sub.add_parser(
        "show",
        parents=[common],
        help="print the estimates and diagnostics of a saved result",
        description="Print the comparison table and diagnostics of a saved result.",
    )
    show.add_argument("result", metavar="RESULT.nc")
    show.set_defaults(func=_cmd_show)
    return parser


# ---------------------------------------------------------------------------------------------
# helpers


def _say(args: argparse.Namespace, *lines: str) -> None:
    for line in lines:
        print(line)


def _show_progress(args: argparse.Namespace) -> bool:
    return (not args.quiet) and sys.stderr.isatty()


# Advice the library writes for Python users, in the words of this command line.
_CLI_WORDS: tuple[tuple[str, str], ...] = (
    (r"leave the column out with columns=\[\.\.\.\]", "choose the columns with --columns"),
    (r"columns=\[\.\.\.\]", "--columns"),
    (r"\bdropna=True\b", "--dropna"),
    (r"\bmissing='(\w+)'", r"--missing \1"),
    (r"\blabels='group'", "--labels group"),
    (r"\bid_column=", "--id-column "),
    (r"\bsample_weight\b", "the weights column (--weights)"),
    (r"\bsep=", "--sep "),
    (r"\bdecimal=", "--decimal "),
    (r"call bayesmix\.results\.relabel first", "'bayesmix fit' relabels unordered models itself"),
    (r"(look at )?bayesmix\.results\.diagnose", "read the diagnostics below"),
    (r"bayesmix\.results\.save", "'bayesmix fit'"),
    (r"\bselect_k\b", "'bayesmix select'"),
    (
        r"expected n_samples >= n_components, got n_samples=(\d+) and n_components=(\d+)",
        r"expected at least as many rows as components, got \1 rows and -k \2",
    ),
    (r"but n_components=(\d+):", r"but -k \1:"),
    (
        r"use covariance_type='diag' or 'spherical', a larger reg_covar, or drop the column\(s\)",
        "use --covariance diag or spherical, or leave the column(s) out with --columns",
    ),
    (r"covariance_type='(\w+)'", r"--covariance \1"),
    (r"covariance_type '(\w+)'", r"--covariance \1"),
    (r"use '(EII|VII)' \(its multivariate form\)", r"use --covariance \1 (its multivariate form)"),
    (r"binarise first, e\.g\. \(X >= threshold\)\.astype\(int\)", "binarise the columns first"),
    (r"\braise max_rows\b", "subsample the file"),
    (r"\btarget_accept\b", "[fit] target_accept in a spec"),
    (
        r"run more chains \(e\.g\. chains=8\) and compare with method='importance'",
        "run more chains (--chains 8)",
    ),
    (r"log_evidence \(K = \d+\): ", "log p(y | K): "),
    (r"inspect result\['map'\]", "compare the map and em columns"),
    (r"pass starts=\[\.\.\.\]", "try another --seed"),
)


def cli_words(text: str) -> str:
    """Rewrite Python-API advice in a library message into this command line's flags."""
    import re

    lines = []
    for line in str(text).splitlines() or [""]:
        out = " ".join(line.split())
        for pattern, repl in _CLI_WORDS:
            out = re.sub(pattern, repl, out)
        lines.append(out)
    return "\n".join(lines)


class _Log:
    """One line per stage on stderr, stamped with the time since the command started."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.t0 = time.perf_counter()

    def __call__(self, text: str) -> None:
        if self.enabled:
            elapsed = time.perf_counter() - self.t0
            print(f"{PROG}: [{elapsed:6.1f} s] {text}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _warnings_as_lines(prefix: str = "") -> Iterator[None]:
    """Show warnings as ``bayesmix: warning: ...`` lines (no file path, no source line)."""
    seen: set[str] = set()

    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ARG001
        text = cli_words(message)
        if text in seen:
            return
        seen.add(text)
        print(f"{PROG}: warning: {prefix}{text}", file=sys.stderr, flush=True)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


@contextlib.contextmanager
def _start_bar(enabled: bool) -> Iterator[None]:
    """On a terminal, a bar over EM's and MAP's starts (``bayesmix: starts [####      ] 2/5``).

    It goes under the stage line that says which ("EM: K=2, several starts", "MAP: ...").
    """
    if not enabled:
        yield
        return
    from bayesmix.em import on_each_start

    def draw(done: int, total: int) -> None:
        filled = round(20 * done / total)
        end = "\n" if done == total else ""
        bar = "#" * filled + " " * (20 - filled)
        print(f"\r{PROG}: starts [{bar}] {done}/{total}", end=end, file=sys.stderr, flush=True)

    with on_each_start(draw):
        yield


def _release_memory() -> None:
    """Hand freed heap memory back to the OS between stages (glibc keeps it otherwise).

    Sampling, relabelling and LOO free hundreds of MB of temporaries; without this the
    process keeps them resident and each later stage adds its own on top.
    """
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


def _run_name(args: argparse.Namespace, spec_name: str) -> str:
    """The run's name: --name, else a name the spec file sets, else the data file's stem."""
    if getattr(args, "name", None):
        return str(args.name)
    if args.spec:
        import tomllib

        try:
            with open(args.spec, "rb") as fh:
                if "name" in tomllib.load(fh):
                    return spec_name
        except (OSError, tomllib.TOMLDecodeError):
            return spec_name
    if args.data is not None:
        stem = args.data.removeprefix("builtin:") if args.data.startswith("builtin:") else ""
        stem = stem or Path(args.data).stem
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem).strip("._")
        return safe or "run"
    return spec_name


def _resolve_spec(args: argparse.Namespace) -> RunSpec:
    """The spec file (or the default job) with the command-line overrides applied."""
    from bayesmix.config import spec_from_dict

    if args.spec:
        spec = load_spec(args.spec)
    else:
        spec = RunSpec()
    d = spec.to_dict()
    if args.data is not None:
        path = args.data
        if not path.startswith("builtin:"):
            path = str(Path(path).expanduser().resolve())
        d["data"] = {"path": path}  # a new table: its own columns, ids and dialect
    columns = _flatten(args.columns)
    if columns is not None:
        d["data"]["columns"] = columns
    if args.id_column is not None:
        d["data"]["id"] = args.id_column
    if getattr(args, "weights", None) is not None:
        d["data"]["weights"] = args.weights
    if args.dropna:
        if args.missing not in (None, "drop"):
            raise ParameterError(
                f"--dropna and --missing {args.missing} disagree: expected one of them; use "
                "--missing drop alone"
            )
        d["data"].pop("missing", None)
        d["data"]["dropna"] = True
    if args.missing is not None:
        d["data"].pop("dropna", None)
        d["data"]["missing"] = args.missing
    if getattr(args, "labels", None) is not None:
        d["data"]["labels"] = args.labels
    for key in ("sep", "decimal"):
        value = getattr(args, key)
        if value is not None:
            d["data"][key] = "\t" if value in ("\\t", "tab", "TAB") else value
    if getattr(args, "components", None) is not None:
        d["model"]["components"] = args.components
    if args.family is not None:
        d["model"]["family"] = args.family
        if not get_family(args.family).orderable:
            d["model"]["ordered"] = False
    if isinstance(args.covariance, str):
        d["model"]["covariance"] = args.covariance
    methods = _flatten(args.methods)
    if methods is not None:
        bad = [m for m in methods if m not in METHODS]
        if bad:
            raise ParameterError(
                f"--methods: unknown value {bad[0]!r}, expected any of {', '.join(METHODS)}; "
                "e.g. --methods em,map,nuts"
            )
        d["fit"]["methods"] = methods
    for key in ("draws", "tune", "chains", "seed", "sampler"):
        value = getattr(args, key)
        if value is not None:
            d["fit"][key] = value
    return spec_from_dict(d, name=_run_name(args, spec.name))


def _load_data(spec: RunSpec, log: Callable[[str], None] | None = None):
    """Load and pre-check the data of a spec -> DataFrame (fails before any output exists)."""
    family = get_family(spec.model.family)
    model_missing = spec.data.missing_values == "model"
    if model_missing and not family.supports_missing:
        raise ParameterError(
            f"--missing model is not supported for the {family.name} family yet: expected "
            "--missing drop or error; drop or impute the incomplete rows first"
        )
    df = spec.data.load(text=family.text_features)
    k = spec.model.n_components
    check_kwargs = {"allow_nan": True} if model_missing else {}
    df.attrs["checked"] = family.check_data(
        df,
        n_components=k,
        covariance=spec.model.covariance,
        name=f"data {Path(spec.data.path).name}",
        **check_kwargs,
    )
    labels = df.attrs.get("labels")
    if labels is not None and labels.max() >= k:
        raise ParameterError(
            f"the labels column '{spec.data.labels}' names components up to {labels.max()}: "
            f"expected labels 0..{k - 1} for -k {k}; use -k {labels.max() + 1} or more, or "
            "recode the labels"
        )
    from bayesmix.em import check_sample_weight

    check_sample_weight(df.attrs.get("sample_weight"), len(df))
    if log is not None:
        cols = ", ".join(str(c) for c in df.columns[:8]) + (", ..." if df.shape[1] > 8 else "")
        log(f"loaded {Path(spec.data.path).name}: {df.shape[0]} rows x {df.shape[1]} ({cols})")
        for note in _notes(df):
            log(note)
    return df


def _check_features(args: argparse.Namespace, X) -> None:
    """--features must name columns of the data (checked before anything is fitted)."""
    features = _flatten(getattr(args, "features", None))
    if not features:
        return
    columns = [str(c) for c in X.columns]
    bad = [f for f in features if f not in columns]
    if bad:
        import difflib

        close = difflib.get_close_matches(bad[0], columns, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"use some of {', '.join(columns)}"
        raise ParameterError(f"--features: {bad[0]!r} is not a column of the data; {hint}")


def _notes(df) -> list[str]:
    """What the loader decided about the table (dropped rows, columns left out, dialect)."""
    notes = getattr(df, "attrs", {}).get("notes", [])
    return [cli_words(n) for n in notes]


def _check_out_dir(out: Path, force: bool) -> None:
    for parent in Path(out).absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise ParameterError(
                    f"output {str(out)!r} cannot be created: expected {str(parent)!r} to be a "
                    "folder, got a file; choose another --out"
                )
            break
    if out.exists() or out.is_symlink():
        if not out.is_dir():
            raise ParameterError(
                f"output {str(out)!r} exists and is not a folder: expected a folder path; "
                "choose another --out"
            )
        if not force:
            raise ParameterError(
                f"output folder {str(out)!r} already exists: expected a new folder; "
                "use --force to replace it or --out to choose another"
            )


@contextlib.contextmanager
def _staged_dir(out: Path, force: bool) -> Iterator[Path]:
    """Yield a temporary sibling of ``out``; rename it to ``out`` only if the block succeeds.

    An existing ``out`` (allowed by ``force``) is replaced only after the new folder is
    complete; on any error the temporary folder is removed and ``out`` is untouched.
    """
    out = Path(out)
    _check_out_dir(out, force)
    parent = out.parent if str(out.parent) else Path(".")
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=parent))
    os.chmod(tmp, default_folder_mode())  # mkdtemp makes it private (0o700)
    try:
        yield tmp
        _check_out_dir(out, force)
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=parent))
            os.rename(out, old / out.name)
            try:
                os.rename(tmp, out)
            except OSError:
                os.rename(old / out.name, out)  # put the previous output back
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def _quiet_libraries(quiet_logs: bool, quiet_warnings: bool = False) -> Iterator[None]:
    """Silence PyMC's log lines (and warnings, if asked) for the block; restore afterwards."""
    loggers = [logging.getLogger(n) for n in ("pymc", "pytensor", "nutpie", "arviz")]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        if quiet_warnings:
            warnings.simplefilter("ignore")
        if quiet_logs:
            for lg in loggers:
                lg.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for lg, lv in zip(loggers, levels, strict=True):
                lg.setLevel(lv)


def _format_table(table, digits: int = 4, decimals: int | None = None) -> str:
    """The table as text: columns with no value left out, ``digits`` significant digits.

    With ``decimals``, numbers of magnitude >= 1 (log-likelihoods, criteria) are printed with
    that many decimals instead, every digit before the point kept, so rows can be compared.
    """
    import numpy as np
    import pandas as pd

    from bayesmix.results.compare import filled_columns

    table = filled_columns(table)

    def fmt(v: float) -> str:
        if not np.isfinite(v):
            return str(v)
        if decimals is not None and 1 <= abs(v) < 1e15:
            return f"{v:.{decimals}f}"
        return f"{v:.{digits}g}"

    with pd.option_context(
        "display.width", 160, "display.max_columns", 40, "display.float_format", fmt
    ):
        if len(table) > 60:
            return (
                table.head(50).to_string(index=False, na_rep="")
                + f"\n... ({len(table) - 50} more rows in the CSV file)"
            )
        return table.to_string(index=False, na_rep="")


def _n_features(result) -> int:
    try:
        return int(result["observed_data"]["x"].sizes["feature"])
    except (KeyError, AttributeError):
        return 0


def _summaries(result):
    """(comparison table, diagnostics) of a result, with or without a posterior."""
    import bayesmix.results as results

    _forget_lazy_jax()
    table = results.compare_estimates(result)
    return table, results.diagnose(result, estimates=table)  # R-hat and ESS computed once


def _forget_lazy_jax() -> None:
    """Drop the placeholder ``jax`` module that importing ArviZ leaves in ``sys.modules``.

    ``arviz_base.io_numpyro`` registers ``jax`` as a lazy module; SciPy's array-API checks
    (``logsumexp`` in ArviZ's LOO) then find it there and import all of JAX (0.4-0.5 s) for
    NumPy arrays. The command never converts NumPyro results, and a real ``import jax``
    (the numpyro/blackjax samplers) still works once the placeholder is gone.
    """
    import importlib.util

    lazy = getattr(importlib.util, "_LazyModule", None)
    module = sys.modules.get("jax")
    if lazy is not None and isinstance(module, lazy):
        del sys.modules["jax"]


def _maybe_relabel(result, spec: RunSpec, log: Callable[[str], None] | None = None):
    """Align component labels of an unordered posterior to the EM (or MAP) labels."""
    import bayesmix.results as results

    if "posterior" not in result.children or spec.model.ordered:
        return result
    if spec.model.n_components < 2:
        return result
    ref = "em" if "em" in result.children else ("map" if "map" in result.children else "pivot")
    if log is not None:
        log(f"relabelling the posterior draws to the {ref} labels (Stephens)")
    return results.relabel(result, reference=ref)


def _write_plots(
    result, folder: Path, args: argparse.Namespace, components=None, partition=None
) -> tuple[dict[str, Path], dict[str, str]]:
    """Write every applicable plot as PNG -> (written, failed: name -> one-line reason).

    ``components``: a sparse/DP fit's filled components found by ``diagnose`` already;
    ``partition``: the point partition written to membership.csv (the co-clustering plot
    orders its matrix by it).
    """
    import matplotlib

    matplotlib.use("Agg")
    from bayesmix import plotting

    features = _flatten(getattr(args, "features", None))
    written, failed = plotting.write_plots(
        result,
        folder,
        features=features,
        raise_errors=args.debug,
        hints="cli",
        components=components,
        partition=partition,
    )
    for name, reason in failed.items():
        print(
            f"{PROG}: warning: plot {name} could not be drawn ({cli_words(reason)}); "
            "the report names it and the other files are written",
            file=sys.stderr,
        )
    return written, failed


# ---------------------------------------------------------------------------------------------
# commands


def _membership_frame(result, X, spec: RunSpec):
    """One row per observation: its id, the most likely component and each probability."""
    import numpy as np
    import pandas as pd

    from bayesmix.inference import membership

    group = next(g for g in ("posterior", "advi", "map", "em") if g in result.children)
    m = membership(result, group=group)
    mean = np.asarray(m["mean"].transpose("obs_id", "component").values)
    sd = np.asarray(m["sd"].transpose("obs_id", "component").values)
    index = getattr(X, "index", None)
    id_name = getattr(index, "name", None) or spec.data.id or "row"
    if str(id_name).startswith("Unnamed:"):  # the index pandas wrote without a name
        id_name = "row"
    same = index is not None and len(index) == len(mean)
    ids = np.asarray(index) if same else np.arange(len(mean))
    df = pd.DataFrame({id_name: ids, "component": mean.argmax(axis=1)})
    for k in range(mean.shape[1]):
        df[f"p{k}"] = mean[:, k]
    if group in ("posterior", "advi"):
        for k in range(mean.shape[1]):
            df[f"p{k}_sd"] = sd[:, k]
    if "labels" in result["observed_data"]:  # partial labels: the given one, empty if none
        given = np.asarray(result["observed_data"]["labels"].values)
        df.insert(2, "label", pd.array(np.where(given >= 0, given, -1), dtype="Int64"))
        df.loc[given < 0, "label"] = pd.NA
    df.attrs["group"] = group
    return df


def _imputed_frame(result, X, id_name: str, seed: int):
    """One row per missing entry (``--missing model``): its id, column and filled-in value.

    With posterior draws: the posterior predictive mean, sd and 90 % interval of the entry
    (multiple imputation); with a point estimate only: the conditional mean E[x_m | x_o].
    None when the data have no missing value.
    """
    import numpy as np
    import pandas as pd

    from bayesmix.inference import impute

    x = np.asarray(result["observed_data"]["x"].values, dtype=float)
    if not np.isnan(x).any():
        return None
    index = getattr(X, "index", None)
    ids = np.asarray(index) if index is not None and len(index) == len(x) else np.arange(len(x))
    features = [str(f) for f in result["observed_data"]["feature"].values]
    rows, cols = np.nonzero(np.isnan(x))
    frame = pd.DataFrame({id_name: ids[rows], "column": [features[c] for c in cols]})
    draws_group = next((g for g in ("posterior", "advi") if g in result.children), None)
    nominal = get_family(result.attrs.get("family", "gaussian")).nominal
    if draws_group is None and not nominal:
        filled = np.asarray(impute(result, method="mean").values)
        frame["imputed"] = filled[rows, cols]
        return frame
    da = impute(
        result, group=draws_group, method="draws", random_seed=seed, max_draws=1000, n_draws=1000
    )
    values = np.asarray(da.values).reshape(-1, da.sizes["missing"])
    order = np.lexsort((np.asarray(da["column"].values), np.asarray(da["row"].values)))
    values = values[:, order]  # the entries in row-major order, as np.nonzero gives them
    if nominal:  # a level: the most probable one over the draws, and its probability
        codes = values.astype(np.int64)
        counts = np.stack([(codes == c).sum(axis=0) for c in range(int(codes.max()) + 1)])
        frame["imputed"] = counts.argmax(axis=0)
        frame["probability"] = counts.max(axis=0) / codes.shape[0]
        levels = _levels_by_column(result)  # codes -> the data's level names, if any
        frame["imputed"] = [
            levels[col][code] if code < len(levels.get(col, ())) else code
            for col, code in zip(frame["column"], frame["imputed"], strict=True)
        ]
        return frame
    frame["imputed"] = values.mean(axis=0)
    frame["sd"] = values.std(axis=0, ddof=1)
    frame["lower_5"] = np.quantile(values, 0.05, axis=0)
    frame["upper_95"] = np.quantile(values, 0.95, axis=0)
    return frame


def _write_csv(df, path: Path, **kw) -> None:
    from bayesmix._files import atomic_path

    with atomic_path(path) as tmp:
        df.to_csv(tmp, **kw)


def _cmd_fit(args: argparse.Namespace) -> int:
    import bayesmix.results as results

    log = _Log(not args.quiet)
    spec = _resolve_spec(args)
    out = Path(args.out) if args.out else Path("runs") / spec.name
    _check_out_dir(out, args.force)
    X = _load_data(spec, log)
    _check_features(args, X)

    log("importing PyMC")
    from bayesmix import inference  # imports PyMC, which resets its logger: before quieting
    from bayesmix.report import write_report

    progress = _show_progress(args)
    with (
        _warnings_as_lines(),
        _quiet_libraries(not progress, args.quiet),
        _staged_dir(out, args.force) as tmp,
        checked_data(X, X.attrs.pop("checked")),  # the data are checked once per command
    ):
        with _start_bar(progress):
            result = inference.run(spec, X, progressbar=progress, on_stage=log)
        result = _maybe_relabel(result, spec, log)
        _release_memory()
        log("saving result.nc")
        results.save(result, tmp / "result.nc")
        log("summaries and diagnostics")
        table, diagnostics = _summaries(result)
        _write_csv(table, tmp / "summary.csv", index=False)
        member = _membership_frame(result, X, spec)
        clusters = results.summarize_partition(result, random_seed=spec.fit.seed or 0)
        if clusters is not None:  # the label-free point partition, next to the components
            member["cluster"] = clusters.labels.values
        _write_csv(member, tmp / "membership.csv", index=False)
        imputed = _imputed_frame(result, X, member.columns[0], spec.fit.seed or 0)
        if imputed is not None:
            log("imputed.csv: the missing values filled in")
            _write_csv(imputed, tmp / "imputed.csv", index=False)
        _release_memory()
        log("plots")
        figures, failed = _write_plots(
            result,
            tmp,
            args,
            components=diagnostics.filled,
            partition=None if clusters is None else clusters.labels,
        )
        log("report.html")
        write_report(
            result,
            tmp / "report.html",
            table=table,
            diagnostics=cli_words(diagnostics),
            figures=figures,
            title=f"bayesmix: {spec.name}",
            failed_plots=failed,
            notes=_notes(X),
            clusters=() if clusters is None else clusters.lines(),
        )
        names = [
            "result.nc",
            "summary.csv",
            "membership.csv",
            *(["imputed.csv"] if imputed is not None else []),
            *(p.name for p in figures.values()),
            "report.html",
        ]

    cov = get_family(spec.model.family).covariance_label(spec.model.covariance, 2)
    _say(
        args,
        f"{spec.name}: {spec.model.family} mixture, K={spec.model.n_components}, {cov}"
        f"methods={'+'.join(spec.fit.methods)}",
        "",
        _format_table(table),
        "",
        cli_words(diagnostics),
        *(["", *clusters.lines()] if clusters is not None else []),
        "",
        f"wrote {out}/: {', '.join(names)}",
    )
    log("done")
    return 0


def _select_covariances(args: argparse.Namespace, spec: RunSpec) -> tuple[str, ...]:
    """The --covariance values, checked ('all' is expanded once the data are loaded)."""
    fam = get_family(spec.model.family)
    covs = _flatten(args.covariance) if args.covariance else [spec.model.covariance]
    if not fam.covariances and not args.covariance:  # no covariance: the setting is unused
        return (spec.model.covariance,)
    em_only = [c for c in (fam.em_covariances or ()) if c not in fam.covariances]
    allowed = [*fam.covariances, *([] if args.bayesian else [*em_only, "all"])]
    bad = [c for c in covs if c not in allowed]
    if bad and args.bayesian and (bad[0] in em_only or bad[0] == "all"):
        raise ParameterError(
            f"--covariance {bad[0]} with --bayesian: the Bayesian fits have "
            f"{', '.join(fam.covariances)}; the other models are EM only, so drop --bayesian "
            "to compare them by BIC/ICL, or pick one of those"
        )
    if bad:
        extra = (
            " (EM: also all, or R mclust's models EII, VII, ..., VVV; E and V for one feature)"
            if em_only
            else ""
        )
        raise ParameterError(
            f"--covariance: unknown value {bad[0]!r}, expected any of "
            f"{', '.join(fam.covariances)}{extra}; e.g. --covariance full diag"
        )
    return tuple(dict.fromkeys(covs))


def _expand_all(covs: tuple[str, ...], family: str, n_features: int) -> tuple[str, ...]:
    """--covariance all: every EM covariance model of the family for these data."""
    if "all" not in covs:
        return covs
    every = get_family(family).all_em_covariances(n_features)
    out: list[str] = []
    for c in covs:
        out.extend(every if c == "all" else [c])
    return tuple(dict.fromkeys(out))


def _cmd_select(args: argparse.Namespace) -> int:
    import bayesmix.results as results

    if args.components is not None:
        raise ParameterError(
            f"-k/--components {args.components}: 'bayesmix select' compares several K, given "
            "by --k; use e.g. --k 1..6 (or --k 3 for one K); -k is for 'bayesmix fit'"
        )
    log = _Log(not args.quiet)
    ks = parse_k_range(args.ks)
    spec = _resolve_spec(args)
    covs = _select_covariances(args, spec)
    if args.bayesian:  # the prior on K must cover every K compared: say so before fitting
        try:
            spec.model.priors.k_prior_weights(ks)
        except ParameterError as err:
            raise ParameterError(
                f"--k {args.ks} with the spec's [priors] k_prior: {err}"
            ) from None
    out = Path(args.out) if args.out else Path("runs") / f"{spec.name}-select"
    _check_out_dir(out, args.force)
    graph_cov = covs[0] if covs[0] in get_family(spec.model.family).covariances else None
    spec = dataclasses.replace(
        spec,
        model=dataclasses.replace(
            spec.model, n_components=max(ks), covariance=graph_cov or spec.model.covariance
        ),
    )
    X = _load_data(spec, log)  # checks that the data allow the largest K
    fam = get_family(spec.model.family)
    mclust_style = bool(fam.covariances) and any(
        c == "all" or c not in fam.covariances for c in covs
    )
    covs = _expand_all(covs, spec.model.family, X.shape[1])

    import matplotlib

    matplotlib.use("Agg")
    from bayesmix import plotting

    progress = _show_progress(args)
    what = "EM criteria" + (
        " and the Bayesian ones (NUTS, PSIS-LOO and log p(y | K) for each K, then a sparse "
        "mixture)"
        if args.bayesian
        else ""
    )
    shown = f" ({', '.join(covs)})" if get_family(spec.model.family).covariances else ""
    log(f"fitting K = {', '.join(map(str, ks))}{shown}: {what}")
    with (
        _warnings_as_lines(),
        _quiet_libraries(not progress, args.quiet),
        _staged_dir(out, args.force) as tmp,
    ):
        _forget_lazy_jax()
        table = results.select_k(
            X,
            ks,
            family=spec.model.family,
            covariance_types=covs,
            bayesian=args.bayesian,
            spec=spec.model,
            draws=spec.fit.draws,
            tune=spec.fit.tune,
            chains=spec.fit.chains,
            random_state=spec.fit.seed,
            on_stage=log,
            sample_weight=X.attrs.get("sample_weight") if hasattr(X, "attrs") else None,
            missing="model" if spec.data.missing_values == "model" else "error",
            # comparing covariance models as mclust does: from mclust's start
            init_params="hc" if mclust_style else None,
        )
        _write_csv(table, tmp / "k_selection.csv", index=False)
        written = ["k_selection.csv", "k_selection.png"]
        grid = mclust_style or len(covs) > 4  # many models: mclust's table, not a long list
        if grid:  # R mclust's layout: rows K, a column per model, higher is better
            wide = {c: results.criterion_table(table, c) for c in ("bic", "icl")}
            for c, frame in wide.items():
                _write_csv(frame.reset_index(), tmp / f"{c}_table.csv", index=False)
                written.append(f"{c}_table.csv")
        log("plot")
        fig = plotting.plot_k_selection(table)
        plotting.save_figure(fig, tmp / "k_selection.png")
        chosen = _refit_line(results, table, X)

    recommended = table.attrs.get("recommended")
    pri = spec.model.priors
    prior_line = (
        [
            "p_k: p(K | y) under the prior on K "
            + (
                f"[priors] k_prior = {pri.k_prior!r}"
                + (f" (mean {pri.k_prior_mean:g})" if pri.k_prior == "poisson" else "")
                if isinstance(pri.k_prior, str)
                else f"[priors] k_prior = {list(pri.k_prior)}"
            )
            + f", renormalised over K = {', '.join(map(str, ks))}"
        ]
        if "p_k" in table
        else []
    )
    shown_table = (
        [
            "BIC (R mclust's sign: 2 log L - p log N, higher is better; ICL in icl_table.csv):",
            _format_table(wide["bic"].reset_index(), decimals=2),
            "",
            *(
                f"top 3 by {c.upper()}: "
                + "   ".join(f"{m},{k} ({v:.2f})" for (k, m), v in _top(frame, 3))
                for c, frame in wide.items()
            ),
        ]
        if grid
        else [_format_table(table, decimals=2)]
    )
    _say(
        args,
        f"{spec.name}: K selection over {', '.join(map(str, ks))}",
        "",
        *shown_table,
        "",
        *prior_line,
        "recommended K: "
        + (
            ", ".join(
                f"{c} {k}" + (f" ({table.attrs['recommended_covariance'][c]})" if grid else "")
                for c, k in recommended.items()
            )
            if isinstance(recommended, dict)
            else str(recommended)
        ),
        *chosen,
        f"wrote {out}/: {', '.join(written)}",
    )
    log("done")
    return 0


def _top(frame, n: int):
    """The n largest cells of a table (rows K, columns models) as ((k, model), value)."""
    return list(frame.stack().dropna().sort_values(ascending=False, kind="stable").head(n).items())


def _refit_line(results, table, X) -> list[str]:
    """One line on the EM fit chosen by BIC, fitted again with the table's settings."""
    import numpy as np

    if "bic" not in table or not table["bic"].notna().any():
        return []
    weights = X.attrs.get("sample_weight") if hasattr(X, "attrs") else None
    est = results.refit_em(table, X, "bic", weights)
    fit = table.attrs["em_fit"]
    data = get_family(fit["family"]).check_data(
        X, **({"allow_nan": True} if fit["missing"] == "model" else {})
    )
    sizes = np.bincount(est.predict(data), minlength=est.n_components)
    cov = table.attrs["recommended_covariance"]["bic"]
    row = table[(table["k"] == est.n_components) & (table["covariance_type"].eq(cov))]
    what = f"{cov}, " if isinstance(cov, str) else ""
    ll = float(row["log_likelihood"].iloc[0]) if len(row) else float("nan")
    return [
        f"chosen by BIC, fitted again: {what}K={est.n_components}, log-likelihood {ll:.3f}, "
        f"{est._n_parameters()} parameters, cluster sizes {', '.join(map(str, sizes))}"
    ]


def _load_result(path_text: str):
    import bayesmix.results as results

    path = Path(path_text)
    if not path.is_file():
        raise FileNotFoundError(2, "result file not found", str(path))
    return results.load(path)


def _cmd_sample(args: argparse.Namespace) -> int:
    if args.n < 1:
        raise ParameterError(
            f"-n: expected a number of observations >= 1, got {args.n}; pass e.g. -n 500"
        )
    if args.out:
        out = Path(args.out)
        if out.is_dir():
            raise ParameterError(
                f"--out {str(out)!r} is a folder: expected a .csv file name; "
                "pass e.g. --out new_data.csv"
            )
        parent = out.parent if str(out.parent) else Path(".")
        if not parent.is_dir():
            raise FileNotFoundError(2, "output folder does not exist", str(parent))
    result = _load_result(args.result)
    from bayesmix import inference
    from bayesmix.inference._tree import estimate_group

    with _quiet_libraries(not _show_progress(args), args.quiet):
        df = _samples_frame(
            result,
            inference.generate(
                result, args.n, group=estimate_group(result), random_seed=args.seed
            ),
        )
    if not args.out:
        df.to_csv(sys.stdout, index=False)
        return 0
    _write_csv(df, out, index=False)
    print(f"wrote {len(df)} rows to {out}")
    return 0


def _samples_frame(result, generated):
    """Normalise what :func:`bayesmix.inference.generate` returns to a DataFrame."""
    import numpy as np
    import pandas as pd

    if isinstance(generated, pd.DataFrame):
        df = generated
    else:
        if isinstance(generated, tuple):
            X, z = generated[0], generated[1]
        else:  # an xarray Dataset / dict with "x" and "component" (or "z")
            X = generated["x"]
            z = generated["component"] if "component" in generated else generated["z"]
        X = np.asarray(X)
        if X.ndim == 1:
            X = X[:, None]
        try:
            names = [str(f) for f in result["observed_data"]["x"].coords["feature"].values]
        except (KeyError, AttributeError):
            names = [f"x{j}" for j in range(X.shape[1])]
        if len(names) != X.shape[1]:
            names = [f"x{j}" for j in range(X.shape[1])]
        df = pd.DataFrame(X, columns=names)
        df["component"] = np.asarray(z).astype(int)
        df = _level_names(result, df)
    if "component" not in df.columns:
        raise DataError(
            "generated data has no 'component' column: expected features plus 'component'; "
            "this is a bug, please report it"
        )
    return df


def _levels_by_column(result) -> dict:
    """{column: [level names]} of a categorical result (``observed_data.attrs["levels"]``)."""
    import json

    try:
        return json.loads(result["observed_data"].attrs.get("levels", "{}"))
    except (KeyError, TypeError, ValueError):
        return {}


def _level_names(result, df):
    """Level codes -> the data's level names (``observed_data.attrs["levels"]``), if any."""
    import json

    try:
        levels = json.loads(result["observed_data"].attrs.get("levels", "{}"))
    except (KeyError, TypeError, ValueError):
        return df
    for col, names in levels.items():
        if col in df.columns:
            codes = df[col].to_numpy().astype(int)
            df[col] = [names[c] if 0 <= c < len(names) else str(c) for c in codes]
    return df


def _cmd_show(args: argparse.Namespace) -> int:
    result = _load_result(args.result)
    table, diagnostics = _summaries(result)
    attrs = result.attrs
    family = attrs.get("family", "?")
    try:
        cov = get_family(family).covariance_label(attrs.get("covariance"), 2)
    except ParameterError:  # a result of a family this version does not know
        cov = ""
    head = (
        f"{args.result}: {family} mixture, K={attrs.get('n_components', '?')}, {cov}"
        f"groups: {', '.join(sorted(result.children))}"
    )
    _say(args, head, "", _format_table(table), "", cli_words(diagnostics))
    return 0


# ---------------------------------------------------------------------------------------------
# entry point


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _os_message(exc: OSError) -> str:
    what = exc.strerror or type(exc).__name__
    name = f" {str(exc.filename)!r}" if exc.filename is not None else ""
    if isinstance(exc, FileNotFoundError):
        return f"{what}:{name}; check the path"
    return f"cannot use{name}: {what}; check the path and its permissions or choose another --out"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``bayesmix`` command.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments without the program name (default ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status: 0 on success, 2 for a usage or input error (one line on stderr), 1 for an
        unexpected error.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    # Cache the bytecode of what this command imports (PyMC, ArviZ, ...) as Python does by
    # default, even where PYTHONDONTWRITEBYTECODE is set: else every run compiles ~1700
    # modules from source (about 4 s). uv's compile-bytecode setting would do it at install
    # time but, with uv 0.5.5 and later, also on every 'uv run' (astral-sh/uv#12202).
    sys.dont_write_bytecode = False
    parser = build_parser()
    try:
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help / --version
            return int(exc.code or 0)
        if args.command is None:
            parser.print_help(sys.stderr)
            return 2
        return int(args.func(args) or 0)
    except _UsageError as exc:
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"{PROG}: interrupted; no output was written", file=sys.stderr)
        return 130
    except (BayesmixError, OSError) as exc:
        if debug:
            raise
        msg = _os_message(exc) if isinstance(exc, OSError) else cli_words(exc)
        if isinstance(exc, SpecError) and ";" not in (exc.problems or [""])[-1]:
            msg += "; fix the spec file or the command-line option (see 'bayesmix fit --help')"
        print(f"{PROG}: error: {_one_line(msg)}", file=sys.stderr)
        return 2
    except Exception as exc:
        if debug:
            raise
        print(
            f"{PROG}: internal error: {type(exc).__name__}: {_one_line(exc)[:300]}; "
            "rerun with --debug to see the traceback and report it",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
