"""Tests of bayesmix._validation: error classes, check_X and the scalar checks."""

import pickle
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import scipy.sparse

from bayesmix._validation import (
    BayesmixError,
    DataError,
    ParameterError,
    SpecError,
    ValidationError,
    check_choice,
    check_generator,
    check_n_components,
    check_positive,
    check_probability_simplex,
    check_random_state,
    check_X,
)

COV_TYPES = ["full", "diag", "tied", "spherical"]


# --------------------------------------------------------------------------------------------
# Error classes
# --------------------------------------------------------------------------------------------
def test_error_hierarchy():
    assert issubclass(ValidationError, BayesmixError)
    assert issubclass(ValidationError, ValueError)
    for cls in (DataError, ParameterError, SpecError):
        assert issubclass(cls, ValidationError)
        assert issubclass(cls, ValueError)
    assert not issubclass(BayesmixError, ValueError)


def test_spec_error_lists_every_problem_on_one_line():
    problems = ["n_components must be >= 1: got 0", "unknown family 'gausian'", "tol <= 0"]
    err = SpecError(problems, name="gmm.toml")
    assert err.problems == problems
    text = str(err)
    assert "\n" not in text
    assert text == "spec gmm.toml has 3 problems: " + "; ".join(problems)
    with pytest.raises(SpecError, match=r"^spec gmm\.toml has 3 problems: n_components"):
        raise err


def test_spec_error_single_problem_and_no_name():
    err = SpecError("bad prior")
    assert err.problems == ["bad prior"]
    assert str(err) == "spec has 1 problem: bad prior"
    assert str(SpecError(["a"], name="spec")) == "spec has 1 problem: a"


def test_spec_error_pickles():
    err = SpecError(["a", "b"], name="x")
    back = pickle.loads(pickle.dumps(err))
    assert back.problems == ["a", "b"]
    assert str(back) == str(err)


def test_import_is_light():
    code = (
        "import sys, bayesmix._validation; "
        "bad = [m for m in ('pymc', 'pytensor', 'arviz', 'sklearn', 'matplotlib') "
        "if m in sys.modules]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------------------------
# check_X: accepted input
# --------------------------------------------------------------------------------------------
def test_check_X_accepts_list_array_dataframe():
    ref = np.array([[1.0, 2.0], [3.0, 4.5], [5.0, 6.0]])
    for X in (ref.tolist(), ref, pd.DataFrame(ref, columns=["a", "b"]), ref.astype(object)):
        out = check_X(X)
        assert out.dtype == np.float64
        assert out.flags.c_contiguous
        np.testing.assert_array_equal(out, ref)


def test_check_X_fortran_and_float32():
    X = np.asfortranarray(np.arange(12.0).reshape(4, 3))
    out = check_X(X, dtype=np.float32)
    assert out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, X)
    assert check_X(np.arange(6).reshape(3, 2), dtype=None).dtype.kind == "i"


def test_check_X_numeric_strings_and_bool_columns():
    out = check_X(np.array([["1.5", "2"], ["3", "4"]]))
    np.testing.assert_array_equal(out, [[1.5, 2.0], [3.0, 4.0]])
    df = pd.DataFrame({"a": [1, 2], "b": [True, False], "c": pd.array([1, 2], dtype="Int64")})
    np.testing.assert_array_equal(check_X(df), [[1, 1, 1], [2, 0, 2]])


def test_check_X_ensure_2d_false_reshapes_1d():
    out = check_X([1.0, 2.0, 3.0], ensure_2d=False)
    assert out.shape == (3, 1)


# --------------------------------------------------------------------------------------------
# check_X: errors
# --------------------------------------------------------------------------------------------
def test_check_X_sparse_is_type_error():
    X = scipy.sparse.csr_matrix(np.eye(3))
    with pytest.raises(TypeError, match=r"sparse input is not supported.*X\.toarray\(\)"):
        check_X(X)
    with pytest.raises(TypeError, match="sparse"):
        check_X(scipy.sparse.csr_array(np.eye(3)))


def test_check_X_dataframe_non_numeric_columns_named():
    df = pd.DataFrame({"a": [1.0, 2.0], "name": ["x", "y"], "when": pd.to_datetime(["2020"] * 2)})
    with pytest.raises(DataError, match=r"non-numeric column\(s\) 'name', 'when'") as info:
        check_X(df)
    assert "'a'" not in str(info.value)


def test_check_X_string_values_located():
    X = np.array([["1", "2"], ["3", "4"], ["5", "abc"]], dtype=object)
    with pytest.raises(
        DataError, match=r"X contains non-numeric values \(first at row 2, column 1: 'abc'\)"
    ):
        check_X(X)


def test_check_X_non_number_objects_are_type_error():
    X = np.ones((3, 2)).astype(object)
    X[0, 0] = {"foo": "bar"}
    # scikit-learn's check_dtype_object expects a TypeError with this wording.
    with pytest.raises(TypeError, match="argument must be .* string.* number"):
        check_X(X)


def test_check_X_complex_rejected():
    with pytest.raises(DataError, match="complex"):
        check_X(np.ones((2, 2), dtype=complex))


def test_check_X_1d_uses_sklearn_wording():
    with pytest.raises(DataError, match=r"Expected 2D array, got 1D array instead") as info:
        check_X([1.0, 2.0, 3.0])
    assert "Reshape your data either using array.reshape(-1, 1)" in str(info.value)
    assert "array.reshape(1, -1) if it contains a single sample." in str(info.value)


@pytest.mark.parametrize("shape, ndim", [((2, 2, 2), 3), ((), 0)])
def test_check_X_wrong_ndim(shape, ndim):
    with pytest.raises(
        DataError, match=rf"expected a 2-D array \(n_samples, n_features\), got ndim={ndim}"
    ):
        check_X(np.zeros(shape))


def test_check_X_empty():
    with pytest.raises(DataError, match=r"0 sample\(s\)"):
        check_X(np.empty((0, 3)))
    # The regex of scikit-learn's check_estimators_empty_data, verbatim.
    sklearn_regex = r"0 feature\(s\) \(shape=\(\d*, 0\)\) while a minimum of \d* is required."
    with pytest.raises(DataError, match=sklearn_regex):
        check_X(np.empty((12, 0)))


def test_check_X_non_finite_counted_and_located():
    X = np.ones((10, 2))
    X[5, 0] = np.nan
    X[7, 1] = np.inf
    X[7, 0] = -np.inf
    with pytest.raises(DataError, match=r"X contains 3 non-finite values") as info:
        check_X(X)
    text = str(info.value)
    assert "NaN" in text and "inf" in text
    assert "the first is in row 5" in text
    assert "drop or impute" in text


def test_check_X_nan_in_dataframe_nullable():
    df = pd.DataFrame({"a": pd.array([1, None, 3], dtype="Int64"), "b": [1.0, 2.0, 3.0]})
    with pytest.raises(DataError, match=r"1 non-finite value .*row 1"):
        check_X(df)


def test_check_X_too_few_samples_for_components():
    with pytest.raises(DataError, match=r"n_samples=1 and n_components=2"):
        check_X(np.ones((1, 2)), n_components=2)
    with pytest.raises(DataError, match="n_samples=1"):
        check_X(np.ones((1, 2)), min_samples=2)


def test_check_X_too_few_distinct_points():
    X = np.repeat(np.arange(4.0).reshape(4, 1), 3, axis=0)  # 12 rows, 4 distinct
    with pytest.raises(
        DataError,
        match=r"X has 4 distinct points but n_components=5: .*use fewer components or more data",
    ):
        check_X(X, n_components=5)
    assert check_X(X, n_components=4).shape == (12, 1)


def test_check_X_distinct_count_beyond_prefix():
    # The first 2000 rows are identical: the distinct count must look past the prefix.
    X = np.zeros((3000, 2))
    X[2500:] = np.arange(1000).reshape(-1, 1)[:500]
    assert check_X(X, n_components=3).shape == (3000, 2)
    with pytest.raises(DataError, match="1 distinct point but n_components=2"):
        check_X(np.zeros((5000, 2)), n_components=2)


@pytest.mark.parametrize("cov", ["full", "tied"])
def test_check_X_constant_column_full_tied(cov):
    df = pd.DataFrame({"a": [1.0, 2.0, 3.0], "flat": [5.0, 5.0, 5.0]})
    with pytest.raises(DataError, match=r"constant column \(column 'flat'\)") as info:
        check_X(df, covariance_type=cov)
    text = str(info.value)
    assert "covariance_type='diag'" in text and "reg_covar" in text and "drop" in text
    with pytest.raises(DataError, match=r"2 constant columns \(column 0, column 2\)"):
        check_X(np.array([[1.0, 1.0, 4.0], [1.0, 2.0, 4.0]]), covariance_type=cov)


@pytest.mark.parametrize("cov", ["diag", "spherical", None])
def test_check_X_constant_column_tolerated(cov):
    X = np.array([[1.0, 5.0], [2.0, 5.0], [3.0, 5.0]])
    np.testing.assert_array_equal(check_X(X, covariance_type=cov), X)


def test_check_X_single_sample_constant_ok():
    assert check_X(np.ones((1, 3)), covariance_type="full").shape == (1, 3)


def test_check_X_binary():
    X = np.array([[0, 1, 1], [1, 0, 3]])
    with pytest.raises(
        DataError,
        match=r"Bernoulli mixtures need binary data \(0/1\): found value 3 at row 1, column 2",
    ) as info:
        check_X(X, binary=True)
    assert "(X >= threshold).astype(int)" in str(info.value)
    with pytest.raises(DataError, match="found value 0.5 at row 0, column 0"):
        check_X([[0.5, 1.0]], binary=True)
    out = check_X([[0, 1], [True, False]], binary=True)
    np.testing.assert_array_equal(out, [[0, 1], [1, 0]])


# --------------------------------------------------------------------------------------------
# Scalar checks
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 3, np.int64(7)])
def test_check_n_components_ok(n):
    out = check_n_components(n)
    assert out == int(n) and type(out) is int


@pytest.mark.parametrize(
    "n, match",
    [
        (0, r"n_components must be at least 1: expected an int >= 1, got 0"),
        (-2, "got -2"),
        (2.5, r"n_components must be an integer: expected an int >= 1, got 2\.5 \(float\)"),
        (2.0, r"got 2 \(float\)"),
        (True, r"got True \(bool\)"),
        ("3", r"got '3' \(str\)"),
        (None, r"got None \(NoneType\)"),
    ],
)
def test_check_n_components_errors(n, match):
    with pytest.raises(ParameterError, match=match):
        check_n_components(n)


def test_check_n_components_custom_name():
    with pytest.raises(ParameterError, match="n_clusters must be at least 1"):
        check_n_components(0, "n_clusters")


def test_check_positive():
    assert check_positive(1e-3, "tol") == 1e-3
    assert check_positive(0, "verbose", strict=False, integer=True) == 0
    assert type(check_positive(np.int32(5), "max_iter", integer=True)) is int
    with pytest.raises(ParameterError, match=r"tol is out of range: expected a number > 0, got 0"):
        check_positive(0.0, "tol")
    with pytest.raises(ParameterError, match=r"expected a number >= 0, got -1"):
        check_positive(-1, "reg_covar", strict=False)
    with pytest.raises(ParameterError, match=r"max_iter has the wrong type: expected an int > 0"):
        check_positive(2.5, "max_iter", integer=True)
    with pytest.raises(ParameterError, match="wrong type"):
        check_positive(True, "tol")
    with pytest.raises(ParameterError, match="wrong type"):
        check_positive("1", "tol")
    with pytest.raises(ParameterError, match="tol is not finite"):
        check_positive(np.nan, "tol")
    with pytest.raises(ParameterError, match="tol is not finite"):
        check_positive(np.inf, "tol")


def test_check_choice():
    assert check_choice("diag", "covariance_type", COV_TYPES) == "diag"
    with pytest.raises(
        ParameterError,
        match=(
            r"^unknown covariance_type 'fll': expected one of 'full', 'diag', 'tied', "
            r"'spherical'; did you mean 'full'\?$"
        ),
    ):
        check_choice("fll", "covariance_type", COV_TYPES)
    with pytest.raises(ParameterError, match=r"did you mean 'full'\?"):
        check_choice("Full", "covariance_type", COV_TYPES)
    with pytest.raises(ParameterError, match=r"'xyz': expected one of .*; pass one of 'full'"):
        check_choice("xyz", "covariance_type", COV_TYPES)
    with pytest.raises(ParameterError, match=r"unknown method \['nuts'\].*type list"):
        check_choice(["nuts"], "method", ["nuts", "advi"])


def test_check_probability_simplex():
    np.testing.assert_allclose(check_probability_simplex([0.2, 0.3, 0.5], "w"), [0.2, 0.3, 0.5])
    assert check_probability_simplex([0.5, 0.5 + 1e-9], "w").sum() == pytest.approx(1.0, abs=1e-15)
    with pytest.raises(
        ParameterError, match=r"w does not sum to 1: expected a sum of 1, got 0\.9"
    ):
        check_probability_simplex([0.4, 0.5], "w")
    with pytest.raises(ParameterError, match=r"negative entry: .*got -0\.1 at index 1"):
        check_probability_simplex([1.1, -0.1], "w")
    with pytest.raises(
        ParameterError, match=r"expected a non-empty 1-D array, got shape \(2, 1\)"
    ):
        check_probability_simplex([[0.5], [0.5]], "w")
    with pytest.raises(ParameterError, match="got shape"):
        check_probability_simplex([], "w")
    with pytest.raises(ParameterError, match="NaN or inf"):
        check_probability_simplex([np.nan, 1.0], "w")
    with pytest.raises(ParameterError, match="not numeric"):
        check_probability_simplex(["a", "b"], "w")


def test_check_random_state_matches_sklearn():
    rs = check_random_state(3)
    assert isinstance(rs, np.random.RandomState)
    assert rs.randint(1000) == np.random.RandomState(3).randint(1000)
    same = np.random.RandomState(1)
    assert check_random_state(same) is same
    with pytest.raises(ParameterError, match="random_state is invalid"):
        check_random_state("seed")


def test_check_generator():
    g = np.random.default_rng(0)
    assert check_generator(g) is g
    assert check_generator(5).random() == np.random.default_rng(5).random()
    assert isinstance(check_generator(None), np.random.Generator)
    assert isinstance(check_generator(np.random.RandomState(0)), np.random.Generator)
    with pytest.raises(ParameterError, match="random_state is negative"):
        check_generator(-1)
    with pytest.raises(ParameterError, match=r"got 1\.5 \(float\)"):
        check_generator(1.5)
    with pytest.raises(ParameterError, match="random_state is invalid"):
        check_generator(True)


def test_check_X_checks_its_own_arguments():
    X = np.ones((3, 2))
    with pytest.raises(
        ParameterError, match=r"unknown covariance_type 'fll'.*did you mean 'full'"
    ):
        check_X(X, covariance_type="fll")
    with pytest.raises(ParameterError, match="n_components must be at least 1"):
        check_X(X, n_components=0)


def test_check_X_float32_overflow():
    with pytest.raises(DataError, match=r"too large for float32: .*use dtype=np\.float64"):
        check_X(np.array([[1e39, 1.0], [2.0, 3.0]]), dtype=np.float32)


# --------------------------------------------------------------------------------------------
# Reference: scikit-learn's own estimator checks, on a minimal estimator that uses check_X
# --------------------------------------------------------------------------------------------
def _sklearn_checks():
    from sklearn.utils import estimator_checks as ec

    return [
        ec.check_estimators_empty_data_messages,
        ec.check_estimators_nan_inf,
        ec.check_fit2d_1sample,
        ec.check_fit2d_1feature,
        ec.check_fit1d,
        ec.check_fit2d_predict1d,
        ec.check_dtype_object,
        ec.check_estimator_sparse_tag,
    ]


@pytest.mark.parametrize("check", _sklearn_checks(), ids=lambda c: c.__name__)
def test_check_X_satisfies_sklearn_input_checks(check):
    from sklearn.base import BaseEstimator, DensityMixin

    class _Minimal(DensityMixin, BaseEstimator):
        def __init__(self, n_components=2):
            self.n_components = n_components

        def fit(self, X, y=None):
            X = check_X(X, n_components=self.n_components)
            self.n_features_in_ = X.shape[1]
            self.mean_ = X.mean(axis=0)
            return self

        def score_samples(self, X):
            X = check_X(X)
            return -((X - self.mean_) ** 2).sum(axis=1)

    check("_Minimal", _Minimal())
