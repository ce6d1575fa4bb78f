"""Loaders for the bundled data sets and for user CSV tables."""

from __future__ import annotations

import codecs
import csv
import difflib
import os
import re
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayesmix._validation import DataError, ParameterError
from bayesmix.config import BUILTIN_DATA, MISSING_CHOICES

__all__ = [
    "BUILTIN_TABLES",
    "SEPARATOR_NAMES",
    "load_acidity",
    "load_digits",
    "load_galaxies",
    "load_iris",
    "load_low_dim_gauss_mix",
    "load_death_notices",
    "load_old_faithful",
    "load_table",
]

#: Names accepted by :func:`load_table` after the ``"builtin:"`` prefix (the spec's list).
BUILTIN_TABLES: tuple[str, ...] = BUILTIN_DATA

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


def load_death_notices(expand: bool = True) -> pd.DataFrame:
    """Death notices of women aged 80+ in The Times per day, 1910-1912 (1,096 days).

    Hasselblad (1969, JASA 64, 1459-1471); Titterington, Smith & Makov (1985). The classic
    two-component Poisson mixture: the MLE is weight 0.3599 on rate 1.2561 and 0.6401 on
    rate 2.6634, log-likelihood -1989.946 (``log y!`` included).

    Parameters
    ----------
    expand : bool, default True
        True: one row per day, column ``deaths`` (int64, 1,096 rows, in increasing order).
        False: the frequency table, columns ``deaths`` (0-9) and ``days`` (the number of days
        with that many notices; fit it with ``sample_weight=df["days"]``).

    Returns
    -------
    pandas.DataFrame
    """
    table = _read_bundled_csv("death_notices.csv").astype(np.int64)
    if not expand:
        return table
    deaths = np.repeat(table["deaths"].to_numpy(), table["days"].to_numpy())
    return pd.DataFrame({"deaths": deaths})


GALAXY_UNITS = ("km/s", "1000 km/s")


def load_galaxies(unit: str = "km/s") -> pd.DataFrame:
    """Radial velocities of 82 galaxies of the Corona Borealis region (the galaxy data).

    Postman, Huchra & Geller (1986), as analysed by Roeder (1990, JASA 85, 617-624) and
    Richardson & Green (1997, JRSS B 59, 731-792): the classic test of "how many
    components?". Two versions circulate; this is Roeder's and Richardson & Green's, whose
    observation 78 (row 77 counting from 0, in increasing order) is 26960 km/s. R's
    ``MASS::galaxies`` has 26690 there (a transposition of digits). Analyses usually work in
    units of 1000 km/s (``unit="1000 km/s"``; ``builtin:galaxies_1000kms`` in a spec).

    Parameters
    ----------
    unit : {"km/s", "1000 km/s"}
        Unit of the velocities.

    Returns
    -------
    pandas.DataFrame of shape (82, 1)
        One float64 column ``velocity``, in increasing order (the file's order).

    Raises
    ------
    ParameterError
        If ``unit`` is not one of the two units.
    """
    if unit not in GALAXY_UNITS:
        raise ParameterError(
            f"unit is not a unit of the galaxy data: expected one of {', '.join(GALAXY_UNITS)}, "
            f"got {unit!r}; pass unit='1000 km/s' for the usual scale"
        )
    kms = _read_bundled_csv("galaxies.csv")["velocity_kms"].to_numpy(dtype=np.float64)
    return pd.DataFrame({"velocity": kms / 1000.0 if unit == "1000 km/s" else kms})


def load_acidity() -> pd.DataFrame:
    """Log acidity index of 155 lakes in north-central Wisconsin (R mclust's ``acidity``).

    Crawford et al. (1992), Crawford (1994); used by Richardson & Green (1997) and in
    mclust's examples (its BIC picks E with two components, BIC -392.0723).

    Returns
    -------
    pandas.DataFrame of shape (155, 1)
        One float64 column ``acidity``.
    """
    return _read_bundled_csv("acidity.csv").astype({"acidity": np.float64})


def load_iris(with_species: bool = False) -> pd.DataFrame:
    """Anderson's iris measurements (R's ``iris``, the same numbers as scikit-learn's).

    Parameters
    ----------
    with_species : bool, default False
        Also the column ``species`` (setosa, versicolor, virginica).

    Returns
    -------
    pandas.DataFrame of shape (150, 4) or (150, 5)
        ``sepal_length``, ``sepal_width``, ``petal_length``, ``petal_width`` in cm.
    """
    df = _read_bundled_csv("iris.csv")
    return df if with_species else df.drop(columns="species")


def _load_builtin(name: str) -> pd.DataFrame:
    if name == "galaxies":
        return load_galaxies("km/s")
    if name == "galaxies_1000kms":
        return load_galaxies("1000 km/s")
    if name == "old_faithful":
        return load_old_faithful()
    if name == "acidity":
        return load_acidity()
    if name == "iris":
        return load_iris()
    if name == "death_notices":
        return load_death_notices(expand=True)
    if name == "death_notices_table":
        return load_death_notices(expand=False)
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


# ---------------------------------------------------------------------------------------------
# CSV dialect: separator and decimal mark

#: Separator names accepted by :func:`load_table` (``sep=``) besides a single character.
SEPARATOR_NAMES: dict[str, str] = {
    "comma": ",",
    "semicolon": ";",
    "tab": "\t",
    "pipe": "|",
    "whitespace": r"\s+",
}
_WHITESPACE = r"\s+"
_SEP_WORDS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe", _WHITESPACE: "whitespace"}
_SNIFF_BYTES = 65_536
# tried in this order; on equal scores the earlier one wins
_SNIFF_SEPS = (",", ";", "\t", "|")
_DECIMAL_COMMA = re.compile(r"[+-]?\d+,\d+(?:[eE][+-]?\d+)?")
_DECIMAL_POINT = re.compile(r"[+-]?(?:\d+\.\d*|\.\d+)(?:[eE][+-]?\d+)?")


def _sep_word(sep: str) -> str:
    return _SEP_WORDS.get(sep, repr(sep))


def _check_sep(sep: Any) -> str | None:
    """The separator to hand to pandas (names resolved), or None: detect it."""
    if sep is None:
        return None
    if isinstance(sep, str) and sep in SEPARATOR_NAMES:
        return SEPARATOR_NAMES[sep]
    if isinstance(sep, str) and len(sep) == 1 and sep not in "\"'\r\n" and not sep.isalnum():
        return _WHITESPACE if sep == " " else sep
    raise ParameterError(
        f"sep is invalid: expected one punctuation or blank character such as ';' or '\\t', or "
        f"one of {', '.join(SEPARATOR_NAMES)}; got {sep!r}; pass e.g. sep=';' (or None to "
        "detect it)"
    )


def _check_decimal(decimal: Any, sep: str | None) -> str | None:
    if decimal is None:
        return None
    if decimal not in (".", ","):
        raise ParameterError(
            f"decimal is invalid: expected '.' or ',', got {decimal!r}; pass e.g. decimal=',' "
            "(or None to detect it)"
        )
    if decimal == sep:
        raise ParameterError(
            f"decimal and sep are both {decimal!r}: expected different characters; pass e.g. "
            "sep=';' with decimal=','"
        )
    return decimal


def _sample_lines(path: Path) -> list[str]:
    """The non-blank lines of the first ~64 KB of a UTF-8 file ([] if it cannot be read)."""
    try:
        with path.open("rb") as fh:
            raw = fh.read(_SNIFF_BYTES + 1)
    except OSError:
        return []
    truncated = len(raw) > _SNIFF_BYTES
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    try:
        # final=False: a multi-byte character cut by the sample's end is not an error
        sample = decoder.decode(raw[:_SNIFF_BYTES], final=not truncated)
    except UnicodeDecodeError:
        return []  # pandas then reports the encoding
    lines = [ln for ln in sample.splitlines() if ln.strip()]
    return lines[:-1] if truncated else lines  # the last line of a cut sample may be partial


def _field_counts(lines: list[str], sep: str) -> list[int]:
    if sep == _WHITESPACE:
        return [len(ln.split()) for ln in lines]
    try:
        # csv.reader honours quotes, so "a;b" inside a quoted field does not split
        return [len(rec) for rec in csv.reader(lines, delimiter=sep) if rec]
    except csv.Error:
        return []


def _detect_sep(lines: list[str]) -> str | None:
    """The separator that splits the header into several fields and the rows into as many.

    Each candidate is scored by the share of sample rows with as many fields as the header,
    then by the number of fields; at least half the rows must agree (so one ragged row is
    still reported by pandas against the right separator). Whitespace is tried only when no
    punctuation separator fits. None when no separator fits (e.g. a one-column file).
    """
    best, best_score = None, (0.5, 0)
    for sep in (*_SNIFF_SEPS, _WHITESPACE):
        if sep == _WHITESPACE and best_score[1] > 0:
            break
        counts = _field_counts(lines, sep)
        if len(counts) < 2 or counts[0] < 2:
            continue
        header, rows = counts[0], counts[1:]
        score = (sum(c == header for c in rows) / len(rows), header)
        if score >= (0.5, 0) and score > best_score:
            best, best_score = sep, score
    return best


def _detect_decimal(lines: list[str], sep: str) -> str:
    """``","`` when the sample's data fields look like ``3,572`` more often than ``3.572``."""
    if sep == ",":
        return "."
    n_comma = n_point = 0
    for ln in lines[1:]:
        for f in ln.split() if sep == _WHITESPACE else ln.split(sep):
            f = f.strip().strip('"')
            if _DECIMAL_COMMA.fullmatch(f):
                n_comma += 1
            elif _DECIMAL_POINT.fullmatch(f):
                n_point += 1
    return "," if n_comma > n_point else "."


def _dialect_note(sep: str, decimal: str, sep_detected: bool, dec_detected: bool) -> str | None:
    parts = []
    if sep_detected and sep != ",":
        parts.append(f"{_sep_word(sep)}-separated")
    if dec_detected and decimal == ",":
        parts.append("with decimal commas")
    if not parts:
        return None
    return "read " + ("as " if sep_detected and sep != "," else "") + " ".join(parts)


def _read_csv_file(
    path: Path, max_rows: int, sep: str | None, decimal: str | None
) -> tuple[pd.DataFrame, str, list[str]]:
    """(table, separator used, notes)."""
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
    lines = _sample_lines(path) if sep is None or decimal is None else []
    notes = []
    sep_used = sep if sep is not None else _detect_sep(lines)
    if sep_used is None:  # one column: any separator but a comma if it has decimal commas
        if decimal is None and _detect_decimal(lines, ";") == ",":
            notes.append("read as one column with decimal commas")
            decimal = ","
        sep_used = ";" if decimal == "," else ","
        decimal = decimal or "."
    else:
        dec_used = decimal if decimal is not None else _detect_decimal(lines, sep_used)
        note = _dialect_note(sep_used, dec_used, sep is None, decimal is None)
        if note:
            notes.append(note)
        if dec_used == sep_used:
            raise ParameterError(
                f"decimal={dec_used!r} does not fit data file '{shown}', which is "
                f"{_sep_word(sep_used)}-separated: expected decimal='.'; pass sep=... if the "
                "file uses another separator"
            )
        decimal = dec_used
    try:
        # nrows=max_rows + 1 keeps memory bounded and still tells us when there are too many.
        df = pd.read_csv(path, sep=sep_used, decimal=decimal, nrows=max_rows + 1)
    except pd.errors.EmptyDataError:
        raise DataError(
            f"data file is empty: expected a header line and at least one row, got an empty "
            f"file '{shown}'; check that the file was written completely"
        ) from None
    except pd.errors.ParserError as exc:
        detail = " ".join(str(exc).split())
        raise DataError(
            f"data file '{shown}' is not a valid CSV table: {detail} (read as "
            f"{_sep_word(sep_used)}-separated); check the delimiter (pass sep=... to set it) and "
            "that every row has as many fields as the header"
        ) from None
    except UnicodeDecodeError:
        raise DataError(
            f"data file '{shown}' is not UTF-8 text: expected a UTF-8 CSV file; re-save it as "
            "UTF-8 CSV"
        ) from None
    if len(df.columns) == 1:
        header = str(df.columns[0])
        seen = [c for c in (";", "\t", "|") if c in header and c != sep_used]
        if seen:
            raise DataError(
                f"data file '{shown}' was read as one column {header!r}: expected columns "
                f"separated by {_sep_word(sep_used)}s, got a header that holds "
                f"{_sep_word(seen[0])}s; pass sep={seen[0]!r} (and decimal=',' if the numbers "
                "use decimal commas)"
            )
    if not df.index.equals(pd.RangeIndex(len(df))):
        # pandas makes the extra leading fields of rows longer than the header an index
        n_head = len(df.columns)
        raise DataError(
            f"data file '{shown}' has rows with more fields than the header: expected "
            f"{n_head} {_sep_word(sep_used)}-separated fields per row as in the header line, got "
            f"{n_head + df.index.nlevels}; name every column in the header (e.g. an id column) "
            "or remove separators at the ends of the rows"
        )
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
    return df, sep_used, notes


# ---------------------------------------------------------------------------------------------
# columns: selection, ids, text


def _quoted(names) -> str:
    return ", ".join(f"'{n}'" for n in names)


def _unknown_column(col: str, available: list[str], where: str, what: str = "column") -> DataError:
    close = difflib.get_close_matches(col, available, n=1)
    hint = f"did you mean '{close[0]}'?" if close else "use one of the available columns"
    return DataError(
        f"unknown {what} '{col}' in {where}: expected one of "
        f"{', '.join(repr(c) for c in available)}; {hint}"
    )


def _select_columns(df: pd.DataFrame, columns: list[str], where: str) -> pd.DataFrame:
    available = list(df.columns)
    seen: set[str] = set()
    for col in columns:
        if col in seen:
            raise DataError(
                f"column '{col}' is requested twice for {where}: expected distinct names; "
                "list each column once"
            )
        seen.add(col)
        if col not in available:
            raise _unknown_column(col, available, where)
    return df[list(columns)]


def _line(i: int) -> str:
    return f"row {i} (line {i + 2} of the file)"


def _set_id_column(df: pd.DataFrame, id_column: str, where: str) -> pd.DataFrame:
    """``df`` indexed by the column ``id_column`` (which leaves the features)."""
    ids = df[id_column]
    missing = ids.isna().to_numpy()
    if missing.any():
        i = int(np.flatnonzero(missing)[0])
        raise DataError(
            f"id column '{id_column}' in {where} has a missing value: expected an id on every "
            f"row, got none in {_line(i)}; fill it in, or pass dropna=True after choosing "
            "another id_column"
        )
    dup = ids.duplicated(keep=False).to_numpy()
    if dup.any():
        rows = np.flatnonzero(ids.to_numpy() == ids.to_numpy()[np.flatnonzero(dup)[0]])
        value = ids.iloc[rows[0]]
        value = value.item() if isinstance(value, np.generic) else value
        raise DataError(
            f"id column '{id_column}' in {where} has repeated values: expected one row per id, "
            f"got {value!r} in rows {rows[0]} and {rows[1]} (lines {rows[0] + 2} "
            f"and {rows[1] + 2} of the file); pick a column with unique values, or leave "
            "id_column out"
        )
    return df.set_index(id_column)


_ID_NAMES = {"", "id", "idx", "index", "row", "rowid", "row id", "rownum", "row number", "obs"}


def _named_like_id(name: str) -> bool:
    low = name.strip().lower()
    return (
        low in _ID_NAMES
        or low.startswith("unnamed: 0")  # pandas' name for a header-less first column
        or low in ("...1", "x.1")
        or re.search(r"(^|[_\s.\-])(id|idx)$", low) is not None
        or re.search(r"[a-z](Id|ID)$", name.strip()) is not None
    )


def _integer_values(s: pd.Series) -> np.ndarray | None:
    """The values as int64 when the column holds whole numbers only (no gaps), else None."""
    if pd.api.types.is_bool_dtype(s.dtype) or s.isna().any():
        return None
    if pd.api.types.is_integer_dtype(s.dtype):
        return s.to_numpy(dtype=np.int64)
    if pd.api.types.is_float_dtype(s.dtype):
        v = s.to_numpy(dtype=float)
        if np.all(np.isfinite(v)) and np.all(v == np.round(v)):
            return v.astype(np.int64)
    return None


def _auto_id(df: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    """Keep row-id columns out of the features.

    A column named like an id becomes the index (or is left out when its values repeat); a
    column of row numbers 0..N-1 or 1..N under another name stays a feature, with a note.
    """
    drop: list[str] = []
    index_col = None
    n = len(df)
    for col in df.columns:
        s = df[col]
        ints = _integer_values(s)
        numeric = pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(
            s.dtype
        )
        if _named_like_id(col) and (ints is not None or not numeric):
            if index_col is None and not s.isna().any() and s.is_unique:
                index_col = col
                notes.append(
                    f"used column '{col}' as row ids, not as a feature (named like an id)"
                )
            else:
                drop.append(col)
                notes.append(
                    f"left out column '{col}' (named like an id; its values repeat or are "
                    "missing, so they are not row ids); list it in columns=[...] to fit it"
                )
        elif ints is not None and np.unique(ints).size == n and n > 1:
            lo, hi = int(ints.min()), int(ints.max())
            if (lo, hi) in ((0, n - 1), (1, n)):
                notes.append(
                    f"column '{col}' holds the row numbers {lo}..{hi} and is fitted as a "
                    f"feature; if it is a row id, pass id_column='{col}'"
                )
    if drop:
        df = df.drop(columns=drop)
    return df if index_col is None else df.set_index(index_col)


def _check_numeric(
    df: pd.DataFrame, where: str, sep: str, *, text_ok: bool
) -> tuple[pd.DataFrame, list[str]]:
    """(numeric table, names of the text columns left out).

    With ``text_ok`` a column of mostly non-numbers is left out as text; a column with a few
    non-numbers among numbers is an error naming the first.
    """
    text: list[str] = []
    original = df
    for col in df.columns:
        series = df[col]
        if pd.api.types.is_bool_dtype(series.dtype) or pd.api.types.is_numeric_dtype(series.dtype):
            continue
        coerced = pd.to_numeric(series, errors="coerce")
        bad = (coerced.isna() & series.notna()).to_numpy()
        if not bad.any():
            if df is original:
                df = df.copy()  # only when a column changes: the caller's frame stays as it is
            df[col] = coerced  # e.g. an all-empty object column: handled by the NaN check
            continue
        i = int(np.flatnonzero(bad)[0])
        values = series[bad].astype(str).str.strip()
        if values.str.fullmatch(_DECIMAL_COMMA.pattern).mean() > 0.5:
            fix = (
                "re-save the file with decimal points (or with ';' between fields)"
                if sep == ","
                else "pass decimal=','"
            )
            raise DataError(
                f"column '{col}' in {where} holds numbers with decimal commas: expected decimal "
                f"points, got {series.iloc[i]!r} in {_line(i)}; {fix}"
            )
        if text_ok and 2 * int(bad.sum()) > int(series.notna().sum()):
            text.append(col)
            continue
        raise DataError(
            f"column '{col}' in {where} is not numeric: expected numbers, got "
            f"{series.iloc[i]!r} in {_line(i)}; fix or remove that value, or leave the column "
            "out with columns=[...]"
        )
    return df.drop(columns=text), text


def _handle_missing(df: pd.DataFrame, where: str, how: str, notes: list[str]) -> pd.DataFrame:
    missing = df.isna().any(axis=1).to_numpy()
    if not missing.any():
        return df
    n_bad = int(missing.sum())
    bad_cols = [str(c) for c in df.columns if df[c].isna().any()]
    if how == "model":
        empty = df.isna().all(axis=1).to_numpy()
        if empty.any():
            i = int(np.flatnonzero(empty)[0])
            raise DataError(
                f"{where} has {int(empty.sum())} row(s) with every value missing: expected at "
                f"least one observed value per row, got none in row {i} (line {i + 2} of the "
                "file); delete those rows"
            )
        gone = [str(c) for c in df.columns if df[c].isna().all()]
        if gone:
            raise DataError(
                f"{where} has column(s) {_quoted(gone)} with every value missing: expected some "
                "observed values in each column; leave them out with columns=[...]"
            )
        n_values = int(df.isna().to_numpy().sum())
        share = 100.0 * n_values / df.size
        noun = "column" if len(bad_cols) == 1 else "columns"
        notes.append(
            f"kept {n_bad} of {len(df)} rows with missing values ({n_values} values, "
            f"{share:.1f}% of the table; {noun} {_quoted(bad_cols)}): modelled as missing at "
            "random"
        )
        return df
    if how == "drop":
        if missing.all():
            raise DataError(
                f"{where} has missing values in every row: expected some complete rows, got "
                f"{n_bad} incomplete ones (columns {_quoted(bad_cols)}); pick columns=[...] "
                "with fewer gaps"
            )
        noun = "column" if len(bad_cols) == 1 else "columns"
        notes.append(
            f"dropped {n_bad} of {len(df)} rows with missing values ({noun} {_quoted(bad_cols)})"
        )
        return df.loc[~missing]
    i = int(np.flatnonzero(missing)[0])
    row_cols = [str(c) for c in df.columns[df.iloc[i].isna().to_numpy()]]
    raise DataError(
        f"{where} has {n_bad} row{'s' if n_bad != 1 else ''} with missing values (NaN): "
        f"expected complete rows, got the first in row {i} (line {i + 2} of the file, "
        f"column {', '.join(repr(c) for c in row_cols)}); drop them with dropna=True, or "
        "model them as missing at random with missing='model'"
    )


def _take_labels(df: pd.DataFrame, column: str, where: str, notes: list[str]):
    """Take the partial-labels column out of ``df``: (df, labels Series of int codes, -1 unknown).

    Integer labels are used as they are (-1 and empty cells: unknown); text labels are
    numbered in sorted order (0, 1, ...), the numbering stated in a note.
    """
    if column not in df.columns:
        raise _unknown_column(column, list(df.columns), where, "labels column")
    raw = df[column]
    df = df.drop(columns=[column])
    known = raw.notna().to_numpy().copy()
    values = pd.to_numeric(raw, errors="coerce")
    numeric = values.notna().to_numpy() == known
    if numeric.all():
        codes = values.fillna(-1).to_numpy(dtype=float)
        bad = (codes != np.round(codes)) | (codes < -1)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"labels column '{column}' in {where} holds {raw.iloc[i]} in row {i} (line "
                f"{i + 2} of the file): expected component numbers 0, 1, ..., -1 or an empty "
                "cell for unknown; fix that value"
            )
        codes = codes.astype(np.intp)
        n_known = int((codes >= 0).sum())
        mapping = ""
    else:
        text = raw.astype("string").str.strip()
        known &= (text != "").fillna(False).to_numpy()
        levels = sorted(set(text[known]))
        lookup = {level: j for j, level in enumerate(levels)}
        codes = np.array([lookup[t] if k else -1 for t, k in zip(text, known, strict=True)])
        n_known = int(known.sum())
        mapping = "; " + ", ".join(f"{level!r} -> component {j}" for level, j in lookup.items())
    if n_known == 0:
        raise DataError(
            f"labels column '{column}' in {where} has no label: expected a component for at "
            "least one row; fill in some labels or leave the labels option out"
        )
    notes.append(
        f"used column '{column}' as partial labels: {n_known} of {len(df)} rows labelled{mapping}"
    )
    return df, pd.Series(codes, index=df.index, name=column)


def load_table(
    source: str | os.PathLike[str],
    columns: str | list[str] | None = None,
    *,
    base_dir: str | os.PathLike[str] | None = None,
    max_rows: int = 10_000_000,
    id_column: str | None = None,
    dropna: bool = False,
    text: bool = False,
    sep: str | None = None,
    decimal: str | None = None,
    missing: str | None = None,
    labels: str | None = None,
) -> pd.DataFrame:
    r"""Load a numeric data table: a bundled data set or a CSV file.

    Every decision the loader takes on its own (the separator and decimal mark it detected,
    columns left out as text or ids, rows dropped) is recorded as a plain-language line in
    ``df.attrs["notes"]`` (a list of str, empty when there is nothing to say).

    Parameters
    ----------
    source : str or path-like
        ``"builtin:old_faithful"``, ``"builtin:low_dim_gauss_mix"``, ``"builtin:digits"``
        (64 binary pixel columns ``"px0"`` .. ``"px63"``, grey level >= 8 -> 1), or the path
        of a delimited text file (UTF-8, an optional byte-order mark) with a header line.
        Files are read with :func:`pandas.read_csv` only (no eval, no pickle).
    columns : str or list of str, optional
        Columns to keep, in this order; each must be numeric. Default: every numeric column;
        a column whose values are mostly not numbers (names, groups, dates) is left out with
        a note, and so is a column named like an id (``id``, ``patient_id``, pandas'
        ``Unnamed: 0``), which becomes the index when its values are unique.
    base_dir : str or path-like, optional
        Directory against which a relative path is resolved (e.g. the folder of a spec
        file). Default: the working directory.
    max_rows : int, default 10_000_000
        Largest number of data rows accepted.
    text : bool, default False
        Keep text columns as features (their values as strings), for categorical (latent
        class) mixtures; numeric columns stay numeric. Without it, text columns are left out
        (no ``columns``) or refused (named in ``columns``).
    id_column : str, optional
        A column of unique row labels (numbers or text): it becomes the index of the result
        (and so the ``obs_id`` of a fit) and is not a feature.
    dropna : bool, default False
        Drop the rows with a missing value in the kept columns (the index keeps the original
        row numbers or ids) instead of raising: ``missing="drop"``.
    missing : {"error", "drop", "model"}, optional
        Rows with missing values (empty cells, NA): "error" (default) raises, "drop" drops
        them (as ``dropna=True``), "model" keeps them with NaN in the missing cells, for a fit
        with ``missing="model"`` (missing at random); a row or a column with every value
        missing is still an error.
    labels : str, optional
        A column of partial labels (not a feature): a component number (0, 1, ...) or a
        group name per row, empty (or -1) where unknown. Text labels are numbered in sorted
        order. Returned in ``df.attrs["labels"]`` (int array, -1 = unknown).
    sep : str, optional
        Field separator: one character (``","``, ``";"``, ``"\t"``, ``"|"``, ``" "`` for any
        run of blanks) or one of ``"comma"``, ``"semicolon"``, ``"tab"``, ``"pipe"``,
        ``"whitespace"``. Default: detected from the first 64 KB (the separator that splits
        the header and the rows into the same number of fields; a comma when none does).
    decimal : {".", ","}, optional
        Decimal mark. Default: a comma when the file is not comma-separated and its numbers
        look like ``3,57``, else a point.

    Returns
    -------
    pandas.DataFrame of shape (n_samples, n_columns)
        Numeric columns only, with no missing values; ``attrs["notes"]`` lists what the loader
        decided. The index is 0..N-1 unless ``id_column`` (or an id-named column) or
        ``dropna`` changed it.

    Raises
    ------
    DataError
        If the file is missing, a directory, empty or header-only, not parseable, longer
        than ``max_rows``, or read as one column whose header holds another separator; if a
        requested column (or ``id_column``) does not exist (the message lists the available
        ones and suggests the closest); if a requested column is not numeric, or a column has
        a few non-numbers among numbers (names the first bad row); if no numeric column is
        left; if the ids repeat or are missing; or if rows contain missing values (without
        ``dropna``).
    ParameterError
        If ``max_rows``, ``sep``, ``decimal``, ``id_column`` or ``dropna`` is invalid.
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
    if not isinstance(dropna, (bool, np.bool_)):
        raise ParameterError(f"dropna is invalid: expected True or False, got {dropna!r}")
    if missing is None:
        missing = "drop" if dropna else "error"
    elif missing not in MISSING_CHOICES:
        raise ParameterError(
            f"missing is invalid: expected one of {', '.join(MISSING_CHOICES)}, got "
            f"{missing!r}; pass e.g. missing='model'"
        )
    elif dropna and missing != "drop":
        raise ParameterError(
            f"dropna=True and missing={missing!r} disagree: expected one of them; pass "
            "missing='drop' alone"
        )
    if labels is not None and (not isinstance(labels, str) or not labels):
        raise ParameterError(
            f"labels is invalid: expected a column name, got {labels!r}; pass e.g. labels='group'"
        )
    if id_column is not None and (not isinstance(id_column, str) or not id_column):
        raise ParameterError(
            f"id_column is invalid: expected a column name, got {id_column!r}; pass e.g. "
            "id_column='id'"
        )
    sep = _check_sep(sep)
    decimal = _check_decimal(decimal, sep)
    if isinstance(columns, str):
        columns = [columns]
    elif columns is not None:
        columns = [str(c) for c in columns]
        if not columns:
            raise DataError(
                "columns is empty: expected at least one column name, got []; pass None to "
                "keep every column"
            )
    if columns is not None and id_column is not None and id_column in columns:
        raise DataError(
            f"column '{id_column}' is both the id_column and in columns: expected the ids "
            "apart from the features; remove it from columns"
        )

    notes: list[str] = []
    sep_used = ","
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
        df, sep_used, notes = _read_csv_file(path, max_rows, sep, decimal)
        where = f"'{path}'"
    df.columns = [str(c) for c in df.columns]

    if id_column is not None:
        if id_column not in df.columns:
            raise _unknown_column(id_column, list(df.columns), where, "id_column")
        df = _set_id_column(df, id_column, where)
        notes.append(f"used column '{id_column}' as row ids, not as a feature")
    label_codes = None
    if labels is not None:
        if columns is not None and labels in columns:
            raise DataError(
                f"column '{labels}' is both the labels column and in columns: expected the "
                "labels apart from the features; remove it from columns"
            )
        df, label_codes = _take_labels(df, labels, where, notes)
    if text:
        if columns is not None:
            df = _select_columns(df, columns, where)
        elif id_column is None:
            df = _auto_id(df, notes)
    elif columns is not None:
        df, _ = _check_numeric(_select_columns(df, columns, where), where, sep_used, text_ok=False)
    else:
        if id_column is None:
            df = _auto_id(df, notes)
        raw = df
        df, text = _check_numeric(df, where, sep_used, text_ok=True)
        if text:
            note = f"left out non-numeric column(s) {_quoted(text)}"
            labels = [c for c in text if raw[c].notna().all() and raw[c].is_unique]
            if labels and len(raw) > 1 and raw.index.equals(pd.RangeIndex(len(raw))):
                c = labels[0]
                note += f"; '{c}' has unique values: pass id_column='{c}' to use them as row ids"
            notes.append(note)
        if len(df.columns) == 0:
            raise DataError(
                f"{where} has no numeric column: expected at least one column of numbers, got "
                f"only non-numeric or id columns; check the separator (sep=...) and the "
                "decimal mark (decimal=...)"
            )
    if label_codes is not None:  # same rows; the index may have become an id column
        label_codes = pd.Series(label_codes.to_numpy(), index=df.index)
    df = _handle_missing(df, where, missing, notes)
    df.attrs["notes"] = notes
    if label_codes is not None:
        df.attrs["labels"] = label_codes.loc[df.index].to_numpy()
    return df
