"""Loaders for the bundled data sets and for user CSV tables."""

from __future__ import annotations

import difflib
import os
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from bayesmix._validation import DataError, ParameterError

__all__ = [
    "BUILTIN_TABLES",
    "load_digits",
    "load_low_dim_gauss_mix",
    "load_old_faithful",
    "load_table",
]

#: Names accepted by :func:`load_table` after the ``"builtin:"`` prefix.
BUILTIN_TABLES: tuple[str, ...] = ("old_faithful", "low_dim_gauss_mix", "digits")

_BUILTIN_PREFIX = "builtin:"


def _read_bundled_csv(filename: str) -> pd.DataFrame:
    """Read a CSV file shipped inside ``bayesmix/data`` (works from an installed wheel)."""
    with resources.files(__package__).joinpath(filename).open("rb") as fh:
        return pd.read_csv(fh)


def load_old_faithful() -> pd.DataFrame:
    """Old Faithful geyser eruptions (272 rows, R's ``faithful`` data set).

    Returns
    -------
    pandas.DataFrame of shape (272, 2)
        Columns ``eruptions`` (eruption duration, minutes) and ``waiting`` (waiting time to the
        next eruption, minutes), both float64, in R's row order. Column means are 3.487783 and
        70.897059. See ``bayesmix/data/README.md`` for the provenance.
    """
    return _read_bundled_csv("old_faithful.csv").astype(np.float64)


def load_low_dim_gauss_mix() -> pd.DataFrame:
    """The posteriordb ``low_dim_gauss_mix`` data: 1,000 draws from a 1-D two-component mixture.

    Returns
    -------
    pandas.DataFrame of shape (1000, 1)
        One float64 column ``y``. See ``bayesmix/data/README.md`` for the provenance.
    """
    return _read_bundled_csv("low_dim_gauss_mix.csv").astype(np.float64)


def load_digits(
    binary: bool = True, threshold: int = 8, *, return_images: bool = False
) -> tuple[np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The 8x8 handwritten digits bundled with scikit-learn (no network needed).

    Parameters
    ----------
    binary : bool, default True
        If True, binarise the grey levels: a pixel is 1 when its grey level is
        ``>= threshold``, else 0.
    threshold : int, default 8
        Grey level (1 to 16) at which a pixel counts as "on". Checked even when
        ``binary=False``.
    return_images : bool, default False
        Also return the pixels as images of shape (n_samples, 8, 8).

    Returns
    -------
    X : ndarray of shape (1797, 64)
        int8 values 0/1 when ``binary``, else float64 grey levels 0 to 16. Pixels are in
        row-major order (pixel ``8 * row + col``).
    y : ndarray of shape (1797,)
        int64 digit labels 0 to 9.
    images : ndarray of shape (1797, 8, 8)
        Only with ``return_images=True``: ``X`` reshaped to images (same dtype).

    Raises
    ------
    ParameterError
        If ``threshold`` is not an integer in 1..16.
    """
    if (
        isinstance(threshold, (bool, np.bool_))
        or not isinstance(threshold, (int, np.integer))
        or not 1 <= threshold <= 16
    ):
        raise ParameterError(
            f"threshold is out of range: expected an int grey level from 1 to 16, got "
            f"{threshold!r}; pass e.g. threshold=8"
        )
    from sklearn.datasets import load_digits as _sk_load_digits

    bunch = _sk_load_digits()
    grey = np.asarray(bunch.data, dtype=np.float64)
    X = (grey >= threshold).astype(np.int8) if binary else grey
    y = np.asarray(bunch.target, dtype=np.int64)
    if return_images:
        return X, y, X.reshape(-1, 8, 8)
    return X, y


def _load_builtin(name: str) -> pd.DataFrame:
    if name == "old_faithful":
        return load_old_faithful()
    if name == "low_dim_gauss_mix":
        return load_low_dim_gauss_mix()
    if name == "digits":
        X, _ = load_digits(binary=True)
        return pd.DataFrame(X, columns=[f"px{j}" for j in range(X.shape[1])])
    listed = ", ".join(f"'{_BUILTIN_PREFIX}{n}'" for n in BUILTIN_TABLES)
    close = difflib.get_close_matches(name, BUILTIN_TABLES, n=1)
    hint = f"did you mean '{_BUILTIN_PREFIX}{close[0]}'?" if close else f"use one of {listed}"
    raise DataError(
        f"unknown built-in data set '{_BUILTIN_PREFIX}{name}': expected one of {listed}; {hint}"
    )


def _resolve_path(source: str | os.PathLike[str], base_dir: str | os.PathLike[str] | None) -> Path:
    path = Path(source).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir).expanduser() / path
    return path


def _read_csv_file(path: Path, max_rows: int) -> pd.DataFrame:
    shown = str(path)
    if not path.exists():
        raise DataError(
            f"data file not found: expected an existing CSV file, got '{shown}'; check the path "
            "(relative paths are resolved against base_dir, or the working directory if none)"
        )
    if path.is_dir():
        raise DataError(
            f"data path is a directory: expected a CSV file, got the directory '{shown}'; "
            "point to a .csv file inside it"
        )
    try:
        # nrows=max_rows + 1 keeps memory bounded and still tells us when there are too many.
        df = pd.read_csv(path, nrows=max_rows + 1)
    except pd.errors.EmptyDataError:
        raise DataError(
            f"data file is empty: expected a header line and at least one row, got an empty "
            f"file '{shown}'; check that the file was written completely"
        ) from None
    except pd.errors.ParserError as exc:
        detail = " ".join(str(exc).split())
        raise DataError(
            f"data file '{shown}' is not a valid CSV table: {detail}; check the delimiter "
            "(a comma is expected) and that every row has as many fields as the header"
        ) from None
    except UnicodeDecodeError:
        raise DataError(
            f"data file '{shown}' is not UTF-8 text: expected a UTF-8 CSV file; re-save it as "
            "UTF-8 CSV"
        ) from None
    if len(df) > max_rows:
        raise DataError(
            f"data file '{shown}' has too many rows: expected at most max_rows={max_rows}, got "
            f"more; subsample the file or raise max_rows"
        )
    if len(df) == 0:
        raise DataError(
            f"data file '{shown}' has no data rows: expected at least one row below the header "
            f"(columns {', '.join(repr(c) for c in df.columns)}); add data rows"
        )
    return df


def _select_columns(df: pd.DataFrame, columns: list[str], where: str) -> pd.DataFrame:
    available = [str(c) for c in df.columns]
    seen: set[str] = set()
    for col in columns:
        if col in seen:
            raise DataError(
                f"column '{col}' is requested twice for {where}: expected distinct names; "
                "list each column once"
            )
        seen.add(col)
        if col not in available:
            listed = ", ".join(repr(c) for c in available)
            close = difflib.get_close_matches(col, available, n=1)
            hint = f"did you mean '{close[0]}'?" if close else "use one of the available columns"
            raise DataError(f"unknown column '{col}' in {where}: expected one of {listed}; {hint}")
    df = df.copy()
    df.columns = available
    return df[list(columns)]


def _check_numeric(df: pd.DataFrame, where: str) -> None:
    for col in df.columns:
        series = df[col]
        if pd.api.types.is_bool_dtype(series.dtype) or pd.api.types.is_numeric_dtype(series.dtype):
            continue
        coerced = pd.to_numeric(series, errors="coerce")
        bad = coerced.isna() & series.notna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"column '{col}' in {where} is not numeric: expected numbers, got "
                f"{series.iloc[i]!r} in row {i} (line {i + 2} of the file); fix or remove "
                "that value, or leave the column out with columns=[...]"
            )
        df[col] = coerced  # e.g. an all-empty object column: handled by the NaN check


def _check_no_missing(df: pd.DataFrame, where: str) -> None:
    missing = df.isna().any(axis=1).to_numpy()
    if missing.any():
        n_bad = int(missing.sum())
        i = int(np.flatnonzero(missing)[0])
        bad_cols = [str(c) for c in df.columns[df.iloc[i].isna().to_numpy()]]
        raise DataError(
            f"{where} has {n_bad} row{'s' if n_bad != 1 else ''} with missing values (NaN): "
            f"expected complete rows, got the first in row {i} (line {i + 2} of the file, "
            f"column {', '.join(repr(c) for c in bad_cols)}); drop them first, e.g. "
            "df.dropna(), or impute them"
        )


def load_table(
    source: str | os.PathLike[str],
    columns: str | list[str] | None = None,
    *,
    base_dir: str | os.PathLike[str] | None = None,
    max_rows: int = 10_000_000,
) -> pd.DataFrame:
    """Load a numeric data table: a bundled data set or a CSV file.

    Parameters
    ----------
    source : str or path-like
        ``"builtin:old_faithful"``, ``"builtin:low_dim_gauss_mix"``, ``"builtin:digits"``
        (64 binary pixel columns ``"px0"`` .. ``"px63"``, grey level >= 8 -> 1), or the path
        of a comma-separated file with a header line. Files are read with
        :func:`pandas.read_csv` only (no eval, no pickle).
    columns : str or list of str, optional
        Columns to keep, in this order. Default: all columns.
    base_dir : str or path-like, optional
        Directory against which a relative path is resolved (e.g. the folder of a spec
        file). Default: the working directory.
    max_rows : int, default 10_000_000
        Largest number of data rows accepted.

    Returns
    -------
    pandas.DataFrame of shape (n_samples, n_columns)
        Numeric columns only, with no missing values.

    Raises
    ------
    DataError
        If the file is missing, a directory, empty or header-only, not parseable, longer
        than ``max_rows``; if a requested column does not exist (the message lists the
        available ones and suggests the closest); if a column is not numeric (names the
        first bad row); or if rows contain missing values.
    ParameterError
        If ``max_rows`` is not a positive integer.
    """
    if (
        isinstance(max_rows, (bool, np.bool_))
        or not isinstance(max_rows, (int, np.integer))
        or max_rows < 1
    ):
        raise ParameterError(
            f"max_rows is invalid: expected an int >= 1, got {max_rows!r}; pass e.g. "
            "max_rows=1_000_000"
        )
    if isinstance(columns, str):
        columns = [columns]
    elif columns is not None:
        columns = [str(c) for c in columns]
        if not columns:
            raise DataError(
                "columns is empty: expected at least one column name, got []; pass None to "
                "keep every column"
            )

    if isinstance(source, str) and source.startswith(_BUILTIN_PREFIX):
        name = source[len(_BUILTIN_PREFIX) :]
        df = _load_builtin(name)
        where = f"'{source}'"
        if len(df) > max_rows:
            raise DataError(
                f"{where} has too many rows: expected at most max_rows={max_rows}, got "
                f"{len(df)}; raise max_rows"
            )
    else:
        path = _resolve_path(source, base_dir)
        df = _read_csv_file(path, max_rows)
        where = f"'{path}'"

    if columns is not None:
        df = _select_columns(df, columns, where)
    _check_numeric(df, where)
    _check_no_missing(df, where)
    return df.reset_index(drop=True)
