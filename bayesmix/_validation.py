"""Input checks and the error classes shared by every part of bayesmix.

Every error that bayesmix raises on purpose derives from :class:`BayesmixError`; bad inputs
raise a subclass of :class:`ValidationError`, which is also a :class:`ValueError`, so that code
written for scikit-learn (``except ValueError``) keeps working.

Messages follow one pattern, on one line::

    "<what is wrong>: expected ..., got ...; <what to do>"

This module imports only NumPy, pandas and SciPy (``scipy.sparse``) so that importing it stays
cheap; scikit-learn is imported lazily inside :func:`check_random_state`.
"""

from __future__ import annotations

import contextlib
import contextvars
import difflib
import numbers
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse

__all__ = [
    "BayesmixError",
    "DataError",
    "ParameterError",
    "SpecError",
    "ValidationError",
    "check_X",
    "check_choice",
    "check_generator",
    "check_labels",
    "check_n_components",
    "check_positive",
    "check_probability_simplex",
    "check_random_state",
    "already_checked",
    "checked_data",
]

#: (data as given, validated array) pairs trusted for the whole of a command (checked_data).
_CHECKED: contextvars.ContextVar[tuple[tuple[Any, np.ndarray], ...]] = contextvars.ContextVar(
    "bayesmix_checked_data", default=()
)


@contextlib.contextmanager
def checked_data(source: Any, checked: np.ndarray | None = None) -> Iterator[None]:
    """Within the block, the data are not checked again (once per command).

    :func:`check_X` and :func:`bayesmix.graphs.validate_data` return ``checked`` for
    ``source`` or ``checked``. A command (``inference.run``, the CLI) validates its data once
    and then hands the same object to every fit, each of which would otherwise check it again
    (NaN/inf, distinct rows, the family's support). Only these very objects are trusted, only
    inside the block. ``checked`` defaults to ``source`` (an array validated already).
    """
    checked = source if checked is None else checked
    token = _CHECKED.set(_CHECKED.get() + ((source, checked),))
    try:
        yield
    finally:
        _CHECKED.reset(token)


def already_checked(X: Any, dtype: Any = None) -> np.ndarray | None:
    """The validated array of ``X`` inside a :func:`checked_data` block, else None."""
    for source, checked in _CHECKED.get():
        if X is source or X is checked:
            if dtype is None or checked.dtype == np.dtype(dtype):
                return checked
    return None


# --------------------------------------------------------------------------------------------
# Error classes
# --------------------------------------------------------------------------------------------
class BayesmixError(Exception):
    """Root of every exception that bayesmix raises on purpose."""


class ValidationError(BayesmixError, ValueError):
    """Any bad input (data, argument or spec); also a :class:`ValueError`."""


class DataError(ValidationError):
    """Bad data: NaN/inf, wrong shape, non-numeric, too few points, constant column, ..."""


class ParameterError(ValidationError):
    """Bad argument value: ``n_components < 1``, ``tol <= 0``, unknown choice, ..."""


class SpecError(ValidationError):
    """A bad model/fit specification, reporting every problem at once.

    Parameters
    ----------
    problems : str or sequence of str
        One message per problem found (each in the usual "what is wrong: expected ...,
        got ...; what to do" form).
    name : str, optional
        Name of the spec (a file name or the spec's ``name`` field), used in the summary.

    Attributes
    ----------
    problems : list of str
        The individual problems, in the order they were found.
    name : str or None
        The spec name given.

    Notes
    -----
    ``str(error)`` is a single line: ``"spec <name> has N problems: p1; p2; ..."``.
    """

    def __init__(self, problems: str | Sequence[str], name: str | None = None) -> None:
        if isinstance(problems, str):
            problems = [problems]
        self.problems: list[str] = [str(p) for p in problems]
        self.name = name
        n = len(self.problems)
        label = f"spec {name}" if name and name != "spec" else "spec"
        noun = "problem" if n == 1 else "problems"
        message = f"{label} has {n} {noun}: " + "; ".join(self.problems)
        super().__init__(message)

    def __reduce__(self):  # keep pickling (e.g. across processes) working
        return (type(self), (self.problems, self.name))


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------
def _fmt_value(value: Any) -> str:
    """Short, readable text for a value in an error message."""
    if (
        isinstance(value, (float, np.floating))
        and np.isfinite(value)
        and float(value).is_integer()
    ):
        return str(int(value))
    if isinstance(value, (np.generic,)):
        value = value.item()
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _type_name(value: Any) -> str:
    return type(value).__name__


def _column_label(columns: Sequence[Any] | None, j: int) -> str:
    if columns is None:
        return str(j)
    return repr(columns[j])


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------
def _first_bad_object(values: np.ndarray) -> tuple[tuple[int, ...], Any]:
    """Locate the first element of an object/str array that ``float()`` rejects."""
    for idx, item in np.ndenumerate(values):
        try:
            float(item)
        except (TypeError, ValueError):
            return idx, item
    return (), None  # pragma: no cover - only called when conversion failed


def _position(idx: tuple[int, ...]) -> str:
    if len(idx) == 2:
        return f"row {idx[0]}, column {idx[1]}"
    if len(idx) == 1:
        return f"position {idx[0]}"
    return f"index {idx}"


def _to_numeric(X: Any, name: str, dtype: Any) -> tuple[np.ndarray, list[Any] | None]:
    """Convert ndarray / list / DataFrame input to a numeric ndarray (no shape checks)."""
    columns = None
    if isinstance(X, pd.DataFrame):
        columns = list(X.columns)
        bad = [
            c
            for c in X.columns
            if not (
                pd.api.types.is_numeric_dtype(X[c].dtype) or pd.api.types.is_bool_dtype(X[c].dtype)
            )
        ]
        if bad:
            shown = ", ".join(repr(c) for c in bad[:10]) + (" ..." if len(bad) > 10 else "")
            raise DataError(
                f"{name} has non-numeric column(s) {shown}: expected numbers in every column, "
                f"got dtype(s) {', '.join(sorted({str(X[c].dtype) for c in bad}))}; "
                "drop them or encode them as numbers before fitting"
            )
        target = np.float64 if dtype is None else dtype
        return X.to_numpy(dtype=target, na_value=np.nan), columns
    if isinstance(X, pd.Series):
        target = np.float64 if dtype is None else dtype
        if not (pd.api.types.is_numeric_dtype(X.dtype) or pd.api.types.is_bool_dtype(X.dtype)):
            raise DataError(
                f"{name} is a non-numeric Series (dtype {X.dtype}): expected numbers; "
                "convert it to numbers before fitting"
            )
        return X.to_numpy(dtype=target, na_value=np.nan), None

    try:
        arr = np.asarray(X)
    except ValueError as exc:  # ragged nested lists: rows of different lengths
        raise DataError(
            f"{name} has rows of different lengths ({exc}): expected a rectangular table "
            "(n_samples, n_features); give every row the same number of values"
        ) from exc
    if arr.dtype.kind == "c":
        raise DataError(
            f"{name} is complex: expected real numbers, got dtype {arr.dtype}; "
            "pass the real part or the modulus"
        )
    if arr.dtype.kind not in "biuf":  # object, str, bytes, datetime, ...
        try:
            arr = arr.astype(np.float64 if dtype is None else dtype)
        except (TypeError, ValueError):
            idx, item = _first_bad_object(arr)
            if isinstance(item, (str, bytes, np.str_, np.bytes_)):
                raise DataError(
                    f"{name} contains non-numeric values (first at {_position(idx)}: "
                    f"{_fmt_value(item)}): expected numbers only; convert or drop those entries "
                    "before fitting"
                ) from None
            # Not a string: report a TypeError, as NumPy and scikit-learn do.
            raise TypeError(
                f"{name} contains a value that is not a number (first at {_position(idx)}: "
                f"{_fmt_value(item)}): float() argument must be a string or a real number, "
                f"not '{_type_name(item)}'; pass numeric data"
            ) from None
    return arr, columns


def check_X(
    X: Any,
    *,
    name: str = "X",
    n_components: int | None = None,
    covariance_type: str | None = None,
    binary: bool = False,
    dtype: Any = np.float64,
    min_samples: int = 1,
    ensure_2d: bool = True,
    allow_nan: bool = False,
) -> np.ndarray:
    """Validate a data matrix and return it as a C-contiguous array.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        NumPy array, nested list or pandas DataFrame (numeric or boolean columns). With
        ``ensure_2d=False`` a 1-D array of shape (n_samples,) is also accepted and returned as a
        single column of shape (n_samples, 1).
    name : str, default "X"
        Name used in error messages.
    n_components : int, optional
        When given, require at least ``n_components`` samples and at least ``n_components``
        distinct rows.
    covariance_type : {"full", "tied", "diag", "spherical"}, optional
        With "full" or "tied", a column of constant values (zero variance) is an error, because
        the maximum-likelihood covariance is singular. "diag" and "spherical" tolerate constant
        columns: the regulariser ``reg_covar`` added to every variance keeps them positive.
    binary : bool, default False
        Require every value to be 0 or 1 (Bernoulli mixtures).
    dtype : numpy dtype or None, default numpy.float64
        Output dtype (e.g. ``np.float32``). ``None`` keeps a numeric input dtype (object or
        string input becomes float64).
    min_samples : int, default 1
        Smallest number of rows accepted.
    ensure_2d : bool, default True
        If True, 1-D input is rejected with scikit-learn's "Reshape your data" message. If
        False, 1-D input is read as one feature and reshaped to (n_samples, 1).
    allow_nan : bool, default False
        Accept NaN as a missing value (``missing="model"``); infinities are still an error,
        and so are a row with every value missing and, when fitting (``n_components``
        given), a column with every value missing. The binary and constant-column checks
        look at the observed values only.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
        C-contiguous array of ``dtype``. It may be the input object itself when no conversion
        was needed: copy it before modifying it in place.

    Raises
    ------
    TypeError
        For scipy.sparse input, or for object entries that are neither numbers nor strings.
    DataError
        For non-numeric values, wrong dimensions, empty data, NaN/inf, too few (distinct)
        samples, constant columns with full/tied covariance, or non-binary values with
        ``binary=True``.
    """
    known = already_checked(X, dtype)
    if known is not None:
        return known
    if n_components is not None:
        n_components = check_n_components(n_components)
    if covariance_type is not None:
        check_choice(covariance_type, "covariance_type", ("full", "diag", "tied", "spherical"))
    if scipy.sparse.issparse(X):
        raise TypeError(
            f"sparse input is not supported: expected a dense array for {name}, got "
            f"{_type_name(X)}; convert with X.toarray()"
        )
    arr, columns = _to_numeric(X, name, dtype)

    # ---- dimensions
    if arr.ndim == 1:
        if ensure_2d:
            raise DataError(
                f"Expected 2D array, got 1D array instead: {name}.shape={arr.shape}; "
                "Reshape your data either using array.reshape(-1, 1) if your data has a single "
                "feature or array.reshape(1, -1) if it contains a single sample."
            )
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2:
        raise DataError(
            f"{name} has the wrong number of dimensions: expected a 2-D array "
            f"(n_samples, n_features), got ndim={arr.ndim} (shape {arr.shape}); reshape it to "
            "(n_samples, n_features)"
        )
    n_samples, n_features = arr.shape
    if n_samples == 0:
        raise DataError(
            f"{name} has 0 sample(s) (shape={arr.shape}) while a minimum of {max(min_samples, 1)} "
            "is required: expected at least one row; pass non-empty data"
        )
    if n_features == 0:
        raise DataError(
            f"{name} has 0 feature(s) (shape={arr.shape}) while a minimum of 1 is required: "
            "expected at least one column; pass non-empty data"
        )

    # ---- finiteness
    observed = None
    if arr.dtype.kind == "f":
        finite = np.isfinite(arr)
        if not finite.all():
            if allow_nan:
                # an empty column only matters to a fit (n_components given)
                observed = _check_missing(
                    arr, finite, name, columns, columns_too=n_components is not None
                )
            else:
                bad_rows = np.flatnonzero(~finite.all(axis=1))
                n_bad = int(arr.size - np.count_nonzero(finite))
                raise DataError(
                    f"{name} contains {n_bad} non-finite value{'s' if n_bad != 1 else ''} "
                    f"(NaN or inf) in {bad_rows.size} row{'s' if bad_rows.size != 1 else ''}; "
                    f"the first is in row {bad_rows[0]}: expected finite numbers; drop or "
                    "impute them before fitting, or pass missing='model' to model NaN as "
                    "missing at random"
                )

    # ---- number of samples
    if n_samples < min_samples:
        raise DataError(
            f"{name} has {n_samples} sample(s) (n_samples={n_samples}) while a minimum of "
            f"{min_samples} is required; pass more data"
        )
    if n_components is not None:
        if n_samples < n_components:
            raise DataError(
                f"{name} has fewer samples than components: expected n_samples >= "
                f"n_components, got n_samples={n_samples} and n_components={n_components}; "
                "use fewer components or more data"
            )
        n_distinct = _count_distinct_rows(arr, n_components)
        if n_distinct < n_components:
            raise DataError(
                f"{name} has {n_distinct} distinct point{'s' if n_distinct != 1 else ''} but "
                f"n_components={n_components}: "
                f"expected at least {n_components} distinct rows; use fewer components or "
                "more data"
            )

    # ---- binary data
    if binary:
        is_binary = (arr == 0) | (arr == 1)
        if observed is not None:
            is_binary |= ~observed
        if not is_binary.all():
            i, j = np.argwhere(~is_binary)[0]
            raise DataError(
                f"Bernoulli mixtures need binary data (0/1): found value "
                f"{_fmt_value(arr[i, j])} at row {i}, column {_column_label(columns, j)} of "
                f"{name}; binarise first, e.g. (X >= threshold).astype(int)"
            )

    # ---- constant columns with full / tied covariance
    if covariance_type in ("full", "tied") and n_samples > 1:
        if observed is None:
            constant = np.flatnonzero(np.all(arr == arr[0], axis=0))
        else:
            constant = np.flatnonzero(np.nanmin(arr, axis=0) == np.nanmax(arr, axis=0))
        if constant.size:
            labels = ", ".join(f"column {_column_label(columns, j)}" for j in constant[:10])
            if constant.size > 10:
                labels += ", ..."
            raise DataError(
                f"{name} has {constant.size} constant column{'s' if constant.size > 1 else ''} "
                f"({labels}): covariance_type="
                f"'{covariance_type}' expects every column to vary, got zero variance; use "
                "covariance_type='diag' or 'spherical', a larger reg_covar, or drop the "
                "column(s)"
            )

    out_dtype = arr.dtype if dtype is None else dtype
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.ascontiguousarray(arr, dtype=out_dtype)
    if out.dtype.kind == "f" and out.dtype.itemsize < arr.dtype.itemsize:
        if not (np.isfinite(out) | np.isnan(arr)).all():  # NaN: a missing value
            raise DataError(
                f"{name} has values too large for {out.dtype}: expected magnitudes below "
                f"{np.finfo(out.dtype).max:.3g}, got up to {np.abs(arr).max():.3g}; use "
                "dtype=np.float64 or rescale the data"
            )
    return out


def _check_missing(
    arr: np.ndarray, finite: np.ndarray, name: str, columns, columns_too: bool = True
) -> np.ndarray:
    """Observed-value mask of ``arr`` (NaN allowed); DataError for inf, empty rows or columns."""
    infinite = np.isinf(arr)
    if infinite.any():
        i, j = np.argwhere(infinite)[0]
        raise DataError(
            f"{name} contains {int(infinite.sum())} infinite value(s) (first: row {i}, column "
            f"{_column_label(columns, j)}): expected finite numbers or NaN for a missing value; "
            "replace them with NaN or drop those rows"
        )
    empty_rows = np.flatnonzero(~finite.any(axis=1))
    if empty_rows.size:
        raise DataError(
            f"{name} has {empty_rows.size} row(s) with every value missing (first: row "
            f"{empty_rows[0]}): expected at least one observed value per row; drop those rows"
        )
    empty_cols = np.flatnonzero(~finite.any(axis=0)) if columns_too else []
    if len(empty_cols):
        labels = ", ".join(_column_label(columns, j) for j in empty_cols[:10])
        raise DataError(
            f"{name} has {len(empty_cols)} column(s) with every value missing ({labels}): "
            "expected at least one observed value per column; drop those columns"
        )
    return finite


def check_labels(labels: Any, n_samples: int, n_components: int) -> np.ndarray | None:
    """Partial labels as an int array (N,), -1 = unknown; None when none is known.

    One label per row, each a component 0..n_components-1 or -1; all -1 is the same as None.
    The one check of partial labels: the EM estimators' ``fit(X, labels=)``, the graphs and
    the inference functions.

    Raises
    ------
    DataError
        Wrong shape, non-numeric or non-integer values, or labels outside -1..K-1.
    """
    if labels is None:
        return None
    try:
        arr = np.asarray(labels, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(
            "labels is not numeric: expected component labels 0..n_components-1 or -1 for an "
            f"unknown row, got {type(labels).__name__} with non-numeric values; pass integers"
        ) from None
    if arr.shape != (n_samples,):
        raise DataError(
            f"labels has the wrong shape: expected ({n_samples},) (one label per row of X, -1 "
            f"when unknown), got {arr.shape}; pass one label per row"
        )
    bad = ~np.isfinite(arr) | (arr != np.round(arr)) | (arr < -1) | (arr >= n_components)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"labels holds {int(bad.sum())} value(s) outside 0..{n_components - 1} and -1 "
            f"(first: row {first}, {arr[first]:g}): expected a component label "
            "0..n_components-1, or -1 for a row whose component is unknown; recode the labels"
        )
    out = arr.astype(np.int64)
    return None if (out < 0).all() else out


def _count_distinct_rows(X: np.ndarray, at_least: int) -> int:
    """Number of distinct rows of X, or any number >= ``at_least`` if there are that many.

    Looks at a growing prefix first (2 * at_least rows, then 8 times more each round), so that
    data with many distinct rows cost a sort of a few rows, not of thousands.
    """
    n = X.shape[0]
    m = min(n, max(16, 2 * at_least))
    while True:
        count = np.unique(X[:m], axis=0).shape[0]
        if count >= at_least or m == n:
            return int(count)
        m = min(n, 8 * m)


# --------------------------------------------------------------------------------------------
# Scalar arguments
# --------------------------------------------------------------------------------------------
def check_n_components(n: Any, name: str = "n_components") -> int:
    """Check a number of components (an integer >= 1).

    Parameters
    ----------
    n : int
        Value to check. Booleans and floats (even 2.0) are rejected.
    name : str, default "n_components"
        Argument name for the error message.

    Returns
    -------
    int
        ``n`` as a Python int.

    Raises
    ------
    ParameterError
        If ``n`` is not an integer or is smaller than 1.
    """
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, numbers.Integral):
        raise ParameterError(
            f"{name} must be an integer: expected an int >= 1, got {_fmt_value(n)} "
            f"({_type_name(n)}); pass e.g. {name}=2"
        )
    if n < 1:
        raise ParameterError(
            f"{name} must be at least 1: expected an int >= 1, got {int(n)}; pass e.g. {name}=2"
        )
    return int(n)


def check_positive(
    value: Any, name: str, *, strict: bool = True, integer: bool = False
) -> int | float:
    """Check that a scalar is a finite positive (or non-negative) number.

    Parameters
    ----------
    value : int or float
        Value to check. Booleans are rejected.
    name : str
        Argument name for the error message.
    strict : bool, default True
        Require ``value > 0``; if False, ``value >= 0``.
    integer : bool, default False
        Require an integer (``numbers.Integral``).

    Returns
    -------
    int or float
        ``value`` as a Python int (``integer=True``) or float.

    Raises
    ------
    ParameterError
        If the value has the wrong type, is not finite, or is out of range.
    """
    bound = "> 0" if strict else ">= 0"
    kind = "an int" if integer else "a number"
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, numbers.Integral if integer else numbers.Real
    ):
        raise ParameterError(
            f"{name} has the wrong type: expected {kind} {bound}, got {_fmt_value(value)} "
            f"({_type_name(value)}); pass {kind}"
        )
    if not integer and not np.isfinite(value):
        raise ParameterError(
            f"{name} is not finite: expected {kind} {bound}, got {value!r}; pass a finite value"
        )
    if (strict and value <= 0) or (not strict and value < 0):
        raise ParameterError(
            f"{name} is out of range: expected {kind} {bound}, got {_fmt_value(value)}; "
            f"pass a value {bound}"
        )
    return int(value) if integer else float(value)


def check_choice(value: Any, name: str, choices: Iterable[Any]) -> Any:
    """Check that ``value`` is one of ``choices``.

    Parameters
    ----------
    value : object
        Value to check (usually a string).
    name : str
        Argument name for the error message, e.g. ``"covariance_type"``.
    choices : iterable
        The valid values, in the order they are listed in the message.

    Returns
    -------
    object
        ``value`` unchanged.

    Raises
    ------
    ParameterError
        ``"unknown covariance_type 'fll': expected one of 'full', 'diag', 'tied',
        'spherical'; did you mean 'full'?"`` (the suggestion only when a choice is close).
    """
    choices = list(choices)
    try:
        if value in choices:
            return value
    except TypeError:  # unhashable/incomparable values are never a valid choice
        pass
    listed = ", ".join(repr(c) for c in choices)
    message = f"unknown {name} {value!r}: expected one of {listed}"
    if isinstance(value, str):
        str_choices = [c for c in choices if isinstance(c, str)]
        close = difflib.get_close_matches(value, str_choices, n=1, cutoff=0.6)
        if not close:  # also try case-insensitively ("Full" -> "full")
            lowered = {c.lower(): c for c in str_choices}
            close = [lowered[c] for c in difflib.get_close_matches(value.lower(), list(lowered))]
        if close:
            message += f"; did you mean {close[0]!r}?"
        else:
            message += f"; pass one of {listed}"
    else:
        message += f" (got type {_type_name(value)}); pass one of {listed}"
    raise ParameterError(message)


def check_probability_simplex(w: Any, name: str = "weights", *, atol: float = 1e-6) -> np.ndarray:
    """Check a vector of probabilities (non-negative, summing to 1).

    Parameters
    ----------
    w : array-like of shape (n_components,)
        Candidate probability vector.
    name : str, default "weights"
        Argument name for the error message.
    atol : float, default 1e-6
        Allowed absolute deviation of the sum from 1.

    Returns
    -------
    ndarray of shape (n_components,)
        ``w`` as float64, renormalised to sum exactly to 1.

    Raises
    ------
    ParameterError
        If ``w`` is not 1-D, is empty, is not numeric or finite, has negative entries, or does
        not sum to 1 within ``atol``.
    """
    try:
        arr = np.asarray(w, dtype=np.float64)
    except (TypeError, ValueError):
        raise ParameterError(
            f"{name} is not numeric: expected a 1-D array of probabilities, got {_fmt_value(w)}; "
            "pass numbers that sum to 1"
        ) from None
    if arr.ndim != 1 or arr.size == 0:
        raise ParameterError(
            f"{name} has the wrong shape: expected a non-empty 1-D array, got shape {arr.shape}; "
            "pass one probability per component"
        )
    if not np.all(np.isfinite(arr)):
        raise ParameterError(
            f"{name} contains NaN or inf: expected finite probabilities, got {arr.tolist()}; "
            "pass numbers that sum to 1"
        )
    if np.any(arr < 0):
        j = int(np.flatnonzero(arr < 0)[0])
        raise ParameterError(
            f"{name} has a negative entry: expected values >= 0, got {_fmt_value(arr[j])} at "
            f"index {j}; pass non-negative probabilities"
        )
    total = float(arr.sum())
    if abs(total - 1.0) > atol:
        raise ParameterError(
            f"{name} does not sum to 1: expected a sum of 1, got {total:.6g}; "
            f"normalise it, e.g. {name} / {name}.sum()"
        )
    return arr / total


# --------------------------------------------------------------------------------------------
# Random numbers
# --------------------------------------------------------------------------------------------
def check_random_state(seed: Any) -> np.random.RandomState:
    """Turn ``seed`` into a :class:`numpy.random.RandomState` (scikit-learn semantics).

    Parameters
    ----------
    seed : None, int or numpy.random.RandomState
        As in :func:`sklearn.utils.check_random_state`.

    Returns
    -------
    numpy.random.RandomState
    """
    from sklearn.utils import check_random_state as _sk_check_random_state

    try:
        return _sk_check_random_state(seed)
    except ValueError as exc:
        raise ParameterError(
            f"random_state is invalid: expected None, an int or a numpy RandomState, got "
            f"{_fmt_value(seed)} ({_type_name(seed)}); pass an int seed"
        ) from exc


def check_generator(random_state: Any) -> np.random.Generator:
    """Turn ``random_state`` into a :class:`numpy.random.Generator`.

    Parameters
    ----------
    random_state : None, int, numpy.random.Generator, numpy.random.SeedSequence or \
numpy.random.RandomState
        ``None`` gives fresh OS entropy; an int (>= 0) a reproducible stream; a Generator is
        returned unchanged (so draws continue its stream); a legacy RandomState seeds a new
        Generator from one of its draws.

    Returns
    -------
    numpy.random.Generator

    Raises
    ------
    ParameterError
        For any other value (including booleans, floats and negative ints).
    """
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(0, 2**31 - 1))
    if random_state is None or isinstance(
        random_state, (np.random.SeedSequence, np.random.BitGenerator)
    ):
        return np.random.default_rng(random_state)
    if isinstance(random_state, numbers.Integral) and not isinstance(
        random_state, (bool, np.bool_)
    ):
        if random_state < 0:
            raise ParameterError(
                f"random_state is negative: expected an int >= 0, got {int(random_state)}; "
                "pass a non-negative seed"
            )
        return np.random.default_rng(int(random_state))
    raise ParameterError(
        f"random_state is invalid: expected None, an int >= 0 or a numpy.random.Generator, got "
        f"{_fmt_value(random_state)} ({_type_name(random_state)}); pass an int seed"
    )
