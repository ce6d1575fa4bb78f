"""Tests of bayesmix.data: bundled data, load_table, and the simulators against their truth."""

import subprocess
import sys
from importlib import resources
from itertools import combinations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bayesmix._validation import DataError, ParameterError
from bayesmix.data import (
    BUILTIN_TABLES,
    load_digits,
    load_low_dim_gauss_mix,
    load_old_faithful,
    load_table,
    make_bernoulli_mixture,
    make_gaussian_mixture,
    make_heights,
    make_returns,
)

N_LARGE = 200_000
Z_TOL = 4.5  # tolerance in standard errors for "empirical close to truth"


# --------------------------------------------------------------------------------------------
# Bundled data
# --------------------------------------------------------------------------------------------
def test_import_does_not_load_pymc_or_sklearn():
    code = (
        "import sys, bayesmix.data; "
        "print([m for m in ('pymc', 'arviz', 'sklearn') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_csv_files_ship_inside_the_package():
    names = {p.name for p in resources.files("bayesmix.data").iterdir()}
    assert {"old_faithful.csv", "low_dim_gauss_mix.csv", "README.md"} <= names


def test_old_faithful():
    df = load_old_faithful()
    assert df.shape == (272, 2)
    assert list(df.columns) == ["eruptions", "waiting"]
    assert (df.dtypes == np.float64).all()
    assert df["eruptions"].mean() == pytest.approx(3.487783, abs=1e-6)
    assert df["waiting"].mean() == pytest.approx(70.897059, abs=1e-6)
    # R's row order: the first rows of `faithful`.
    np.testing.assert_array_equal(df.iloc[:3].to_numpy(), [[3.6, 79], [1.8, 54], [3.333, 74]])
    # A fresh copy each call: modifying one must not affect the next.
    df.iloc[0, 0] = -1.0
    assert load_old_faithful().iloc[0, 0] == 3.6


def test_low_dim_gauss_mix():
    df = load_low_dim_gauss_mix()
    assert df.shape == (1000, 1)
    assert list(df.columns) == ["y"]
    y = df["y"].to_numpy()
    assert np.isfinite(y).all()
    # Well separated and two-sided: both signs well represented.
    assert 0.2 < np.mean(y < 0) < 0.8


@pytest.fixture(scope="module")
def digits_grey():
    X, y = load_digits(binary=False)
    return X, y


def test_digits_binary(digits_grey):
    grey, y_grey = digits_grey
    X, y = load_digits()
    assert X.shape == (1797, 64) and X.dtype == np.int8
    assert set(np.unique(X)) == {0, 1}
    np.testing.assert_array_equal(X, (grey >= 8).astype(np.int8))
    assert y.shape == (1797,) and y.dtype == np.int64
    np.testing.assert_array_equal(y, y_grey)
    np.testing.assert_array_equal(np.unique(y), np.arange(10))
    assert np.bincount(y).min() >= 170  # about 180 images per digit


def test_digits_grey_levels(digits_grey):
    grey, _ = digits_grey
    assert grey.shape == (1797, 64) and grey.dtype == np.float64
    assert grey.min() == 0 and grey.max() == 16
    np.testing.assert_array_equal(grey, np.round(grey))


def test_digits_threshold_effect(digits_grey):
    grey, _ = digits_grey
    fractions = []
    for t in (1, 4, 8, 12, 16):
        X, _ = load_digits(threshold=t)
        np.testing.assert_array_equal(X, grey >= t)
        fractions.append(X.mean())
    assert all(a > b for a, b in zip(fractions, fractions[1:], strict=False))
    np.testing.assert_array_equal(load_digits(threshold=1)[0], grey > 0)


def test_digits_images():
    X, y, images = load_digits(return_images=True)
    assert images.shape == (1797, 8, 8)
    np.testing.assert_array_equal(images[5], X[5].reshape(8, 8))
    _, _, grey_images = load_digits(binary=False, return_images=True)
    assert grey_images.dtype == np.float64


@pytest.mark.parametrize("threshold", [0, 17, 2.5, True, "8"])
def test_digits_bad_threshold(threshold):
    with pytest.raises(ParameterError, match=r"threshold is out of range: .*from 1 to 16"):
        load_digits(threshold=threshold)


# --------------------------------------------------------------------------------------------
# load_table
# --------------------------------------------------------------------------------------------
def test_load_table_builtins():
    pd.testing.assert_frame_equal(load_table("builtin:old_faithful"), load_old_faithful())
    pd.testing.assert_frame_equal(
        load_table("builtin:low_dim_gauss_mix"), load_low_dim_gauss_mix()
    )
    digits = load_table("builtin:digits")
    assert digits.shape == (1797, 64)
    assert list(digits.columns) == [f"px{j}" for j in range(64)]
    np.testing.assert_array_equal(digits.to_numpy(), load_digits()[0])
    assert set(BUILTIN_TABLES) == {
        "old_faithful",
        "low_dim_gauss_mix",
        "digits",
        "death_notices",
        "death_notices_table",
        "galaxies",
        "galaxies_1000kms",
        "acidity",
        "iris",
    }
    # mclust's acidity (155 lakes) and R's iris (= scikit-learn's, bit for bit)
    from sklearn.datasets import load_iris as sklearn_iris

    acidity = load_table("builtin:acidity")
    assert acidity.shape == (155, 1) and list(acidity.columns) == ["acidity"]
    assert acidity["acidity"].min() == pytest.approx(2.928524)
    iris = load_table("builtin:iris")
    np.testing.assert_array_equal(iris.to_numpy(), sklearn_iris().data)


def test_load_table_columns_subset_and_order():
    df = load_table("builtin:old_faithful", ["waiting", "eruptions"])
    assert list(df.columns) == ["waiting", "eruptions"]
    assert list(load_table("builtin:old_faithful", "waiting").columns) == ["waiting"]


def test_load_table_unknown_builtin():
    with pytest.raises(
        DataError,
        match=r"unknown built-in data set 'builtin:old_faithfull'.*"
        r"did you mean 'builtin:old_faithful'\?",
    ):
        load_table("builtin:old_faithfull")


def test_load_table_csv_relative_to_base_dir(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.csv").write_text("a,b,label\n1,2.5,x\n3,4.5,y\n")
    df = load_table("sub/d.csv", ["a", "b"], base_dir=tmp_path)
    np.testing.assert_array_equal(df.to_numpy(), [[1, 2.5], [3, 4.5]])
    df_abs = load_table(tmp_path / "sub" / "d.csv", columns=["b"])
    np.testing.assert_array_equal(df_abs["b"], [2.5, 4.5])


def test_load_table_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"data file not found: .*nope\.csv'; check the path"):
        load_table("nope.csv", base_dir=tmp_path)


def test_load_table_directory(tmp_path):
    with pytest.raises(DataError, match=r"data path is a directory: .*point to a \.csv file"):
        load_table(tmp_path)


def test_load_table_empty_file(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match=r"data file is empty: expected a header line"):
        load_table(tmp_path / "empty.csv")


def test_load_table_header_only(tmp_path):
    (tmp_path / "h.csv").write_text("a,b\n")
    with pytest.raises(DataError, match=r"has no data rows: .*columns 'a', 'b'.*add data rows"):
        load_table(tmp_path / "h.csv")


def test_load_table_unknown_column(tmp_path):
    (tmp_path / "d.csv").write_text("height,weight\n1,2\n")
    with pytest.raises(
        DataError,
        match=r"unknown column 'heigth' in .*expected one of 'height', 'weight'; "
        r"did you mean 'height'\?",
    ):
        load_table(tmp_path / "d.csv", ["heigth"])
    with pytest.raises(DataError, match=r"unknown column 'zzz'.*use one of the available columns"):
        load_table(tmp_path / "d.csv", ["zzz"])
    with pytest.raises(DataError, match=r"column 'height' is requested twice"):
        load_table(tmp_path / "d.csv", ["height", "height"])
    with pytest.raises(DataError, match=r"columns is empty"):
        load_table(tmp_path / "d.csv", [])


def test_load_table_non_numeric_column(tmp_path):
    (tmp_path / "d.csv").write_text("a,b\n1,2\n3,4\n5,oops\n7,8\n")
    with pytest.raises(
        DataError,
        match=r"column 'b' in .* is not numeric: expected numbers, got 'oops' in row 2 "
        r"\(line 4 of the file\)",
    ):
        load_table(tmp_path / "d.csv")
    # Leaving the bad column out works.
    assert load_table(tmp_path / "d.csv", ["a"])["a"].tolist() == [1, 3, 5, 7]


def test_load_table_missing_values(tmp_path):
    (tmp_path / "d.csv").write_text("a,b\n1,2\n3,\n5,6\n,\n")
    with pytest.raises(
        DataError,
        match=r"has 2 rows with missing values \(NaN\): expected complete rows, got the first "
        r"in row 1 \(line 3 of the file, column 'b'\); drop them with dropna=True, or model them",
    ):
        load_table(tmp_path / "d.csv")


def test_load_table_missing_values_in_selected_column_only(tmp_path):
    (tmp_path / "d.csv").write_text("a,b\n1,2\n3,\n5,6\n")
    np.testing.assert_array_equal(load_table(tmp_path / "d.csv", ["a"])["a"], [1, 3, 5])


def test_load_table_too_many_rows(tmp_path):
    (tmp_path / "d.csv").write_text("a\n" + "".join(f"{i}\n" for i in range(11)))
    with pytest.raises(DataError, match=r"too many rows: expected at most max_rows=10"):
        load_table(tmp_path / "d.csv", max_rows=10)
    assert load_table(tmp_path / "d.csv", max_rows=11).shape == (11, 1)
    with pytest.raises(DataError, match=r"too many rows: expected at most max_rows=100, got 272"):
        load_table("builtin:old_faithful", max_rows=100)
    with pytest.raises(ParameterError, match="max_rows is invalid"):
        load_table(tmp_path / "d.csv", max_rows=0)


def test_load_table_ragged_csv(tmp_path):
    (tmp_path / "d.csv").write_text("a,b\n1,2\n3,4,5\n")
    with pytest.raises(DataError, match=r"is not a valid CSV table: .*check the delimiter"):
        load_table(tmp_path / "d.csv")


def test_load_table_missing_values_hint_names_dropna(tmp_path):
    (tmp_path / "d.csv").write_text("a,b\n1,2\n3,\n")
    with pytest.raises(
        DataError,
        match=r"drop them with dropna=True, or model them as missing at random with "
        r"missing=.model.",
    ):
        load_table(tmp_path / "d.csv")


def test_load_table_missing_model_keeps_rows_and_says_so(tmp_path):
    (tmp_path / "d.csv").write_text("a,b\n1,2\n3,\n,5\n7,8\n")
    df = load_table(tmp_path / "d.csv", missing="model")
    assert df.shape == (4, 2) and int(df.isna().to_numpy().sum()) == 2
    assert any(
        "kept 2 of 4 rows with missing values (2 values, 25.0%" in n for n in df.attrs["notes"]
    )
    assert load_table(tmp_path / "d.csv", missing="drop").shape == (2, 2)
    with pytest.raises(ParameterError, match="dropna=True and missing='model' disagree"):
        load_table(tmp_path / "d.csv", missing="model", dropna=True)
    with pytest.raises(ParameterError, match="missing is invalid"):
        load_table(tmp_path / "d.csv", missing="impute")
    (tmp_path / "e.csv").write_text("a,b\n1,2\n,\n5,6\n")
    with pytest.raises(DataError, match=r"1 row\(s\) with every value missing: .*row 1 \(line 3"):
        load_table(tmp_path / "e.csv", missing="model")
    (tmp_path / "f.csv").write_text("a,b\n1,\n2,\n")
    with pytest.raises(DataError, match=r"column\(s\) 'b' with every value missing"):
        load_table(tmp_path / "f.csv", columns=["a", "b"], missing="model")


def test_load_table_labels_column(tmp_path):
    (tmp_path / "d.csv").write_text("a,b,grp\n1,2,x\n3,4,\n5,6,y\n7,8,x\n")
    df = load_table(tmp_path / "d.csv", labels="grp")
    assert list(df.columns) == ["a", "b"]
    assert df.attrs["labels"].tolist() == [0, -1, 1, 0]
    assert (
        "used column 'grp' as partial labels: 3 of 4 rows labelled; 'x' -> component 0, "
        "'y' -> component 1" in df.attrs["notes"]
    )
    (tmp_path / "n.csv").write_text("a,b,k\n1,2,1\n3,4,-1\n5,6,\n7,8,0\n")
    assert load_table(tmp_path / "n.csv", labels="k").attrs["labels"].tolist() == [1, -1, -1, 0]
    # rows dropped for missing values take their labels with them
    (tmp_path / "m.csv").write_text("a,b,k\n1,2,1\n3,,0\n5,6,0\n")
    df = load_table(tmp_path / "m.csv", labels="k", dropna=True)
    assert df.attrs["labels"].tolist() == [1, 0]
    (tmp_path / "bad.csv").write_text("a,b,k\n1,2,1.5\n3,4,0\n")
    with pytest.raises(DataError, match="holds 1.5 in row 0"):
        load_table(tmp_path / "bad.csv", labels="k")
    (tmp_path / "none.csv").write_text("a,b,k\n1,2,\n3,4,\n")
    with pytest.raises(DataError, match="has no label"):
        load_table(tmp_path / "none.csv", labels="k")


# --------------------------------------------------------------------------------------------
# load_table: CSV dialects (separator, decimal mark, BOM)
# --------------------------------------------------------------------------------------------
def _values(n=40, d=2, seed=0):
    """Numbers with 3 decimals (exact once rounded) and both signs."""
    rng = np.random.default_rng(seed)
    return np.round(rng.normal(0, 50, size=(n, d)), 3)


def _write(path, header, rows, sep, decimal=".", bom=False):
    lines = [sep.join(header)]
    for row in rows:
        lines.append(sep.join(f"{v:.3f}".replace(".", decimal) for v in row))
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + ("\n".join(lines) + "\n").encode())
    return path


def test_plain_comma_csv_has_no_notes_and_a_range_index(tmp_path):
    X = _values()
    df = load_table(_write(tmp_path / "d.csv", ["a", "b"], X, ","))
    np.testing.assert_array_equal(df.to_numpy(), X)
    assert df.attrs["notes"] == []
    assert df.index.equals(pd.RangeIndex(len(X)))


def test_semicolon_with_decimal_commas(tmp_path):
    X = _values()
    f = _write(tmp_path / "d.csv", ["a", "b"], X, ";", decimal=",")
    df = load_table(f)
    assert list(df.columns) == ["a", "b"]
    np.testing.assert_array_equal(df.to_numpy(), X)
    assert df.attrs["notes"] == ["read as semicolon-separated with decimal commas"]


def test_issue_example_semicolon_decimal_comma(tmp_path):
    (tmp_path / "d.csv").write_text("a;b\n3,572;7,333\n-1,5;2\n")
    df = load_table(tmp_path / "d.csv")
    np.testing.assert_array_equal(df.to_numpy(), [[3.572, 7.333], [-1.5, 2.0]])


@pytest.mark.parametrize(
    ("sep", "word"), [("\t", "tab"), ("|", "pipe"), (";", "semicolon"), ("  ", "whitespace")]
)
def test_other_separators_with_decimal_points(tmp_path, sep, word):
    X = _values(seed=1)
    df = load_table(_write(tmp_path / "d.csv", ["x", "y"], X, sep))
    assert list(df.columns) == ["x", "y"]
    np.testing.assert_array_equal(df.to_numpy(), X)
    assert df.attrs["notes"] == [f"read as {word}-separated"]


def test_tab_separated_with_decimal_commas_and_text(tmp_path):
    (tmp_path / "d.tsv").write_text("name\tx\ty\nSmith, J\t1,5\t2\nDoe, A\t-0,25\t3\n")
    df = load_table(tmp_path / "d.tsv")
    np.testing.assert_array_equal(df.to_numpy(), [[1.5, 2.0], [-0.25, 3.0]])
    assert df.attrs["notes"][0] == "read as tab-separated with decimal commas"
    assert df.attrs["notes"][1].startswith("left out non-numeric column(s) 'name'")


def test_comma_csv_with_quoted_separators_inside_fields(tmp_path):
    (tmp_path / "d.csv").write_text('a,label,b\n1.5,"x;y|z",2\n2.5,"p;q",3\n3.5,"a\tb;c",4\n')
    df = load_table(tmp_path / "d.csv")
    np.testing.assert_array_equal(df.to_numpy(), [[1.5, 2], [2.5, 3], [3.5, 4]])
    assert list(df.columns) == ["a", "b"]
    assert df.attrs["notes"][0].startswith("left out non-numeric column(s) 'label'")
    assert not any(n.startswith("read as") for n in df.attrs["notes"])


def test_one_column_files(tmp_path):
    (tmp_path / "d.csv").write_text("body mass\n1.5\n2.5\n-3\n")
    df = load_table(tmp_path / "d.csv")
    assert list(df.columns) == ["body mass"]
    np.testing.assert_array_equal(df["body mass"], [1.5, 2.5, -3.0])
    assert df.attrs["notes"] == []
    (tmp_path / "c.csv").write_text("y\n1,5\n-2,25\n3\n")  # decimal commas, one column
    df = load_table(tmp_path / "c.csv")
    np.testing.assert_array_equal(df["y"], [1.5, -2.25, 3.0])
    assert df.attrs["notes"] == ["read as one column with decimal commas"]


@pytest.mark.parametrize(("sep", "decimal"), [(",", "."), (";", ",")])
def test_byte_order_mark(tmp_path, sep, decimal):
    X = _values(n=5)
    df = load_table(_write(tmp_path / "d.csv", ["a", "b"], X, sep, decimal, bom=True))
    assert list(df.columns) == ["a", "b"]
    np.testing.assert_array_equal(df.to_numpy(), X)


def test_file_longer_than_the_sniffed_sample(tmp_path):
    X = _values(n=8000, d=3, seed=2)  # ~200 KB: the sample ends inside a line
    f = _write(tmp_path / "d.csv", ["a", "b", "c"], X, ";", decimal=",")
    assert f.stat().st_size > 2 * 65_536
    df = load_table(f)
    np.testing.assert_array_equal(df.to_numpy(), X)


def test_explicit_sep_and_decimal(tmp_path):
    X = _values()
    f = _write(tmp_path / "d.csv", ["a", "b"], X, ";", decimal=",")
    for sep in (";", "semicolon"):
        df = load_table(f, sep=sep, decimal=",")
        np.testing.assert_array_equal(df.to_numpy(), X)
        assert df.attrs["notes"] == []
    df = load_table(f, sep=";")
    np.testing.assert_array_equal(df.to_numpy(), X)
    assert df.attrs["notes"] == ["read with decimal commas"]
    with pytest.raises(DataError, match=r"holds numbers with decimal commas: .*pass decimal=','"):
        load_table(f, sep=";", decimal=".")
    with pytest.raises(DataError, match=r"read as one column 'a;b'.*pass sep=';'"):
        load_table(f, sep=",")


def test_one_column_header_holding_a_separator_is_an_error(tmp_path):
    # ragged rows defeat the detection; the table must not be read as one column 'a;b'
    (tmp_path / "d.csv").write_text("a;b\n1;2;3\n4;5;6\n7;8;9\n")
    with pytest.raises(DataError, match=r"read as one column 'a;b': .*semicolons; pass sep=';'"):
        load_table(tmp_path / "d.csv")
    (tmp_path / "t.csv").write_text("a\tb\n1\n2\n")
    with pytest.raises(DataError, match=r"read as one column 'a\\tb'.*pass sep='\\t'"):
        load_table(tmp_path / "t.csv", sep=",")


def test_rows_longer_than_the_header_are_an_error(tmp_path):
    (tmp_path / "d.csv").write_text("a,b\n1,2,\n3,4,\n")  # trailing commas
    with pytest.raises(DataError, match=r"more fields than the header: expected 2 .* got 3"):
        load_table(tmp_path / "d.csv")


def test_decimal_commas_in_a_comma_separated_file(tmp_path):
    (tmp_path / "d.csv").write_text('x,y\n"1,5",2\n"2,5",3\n')
    with pytest.raises(DataError, match=r"column 'x' .* decimal commas: .*got '1,5' in row 0"):
        load_table(tmp_path / "d.csv")


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"sep": "ab"}, "sep is invalid"),
        ({"sep": "x"}, "sep is invalid"),
        ({"sep": 1}, "sep is invalid"),
        ({"decimal": ";"}, "decimal is invalid"),
        ({"sep": ",", "decimal": ","}, "decimal and sep are both"),
        ({"decimal": ","}, "does not fit data file"),
        ({"dropna": "yes"}, "dropna is invalid"),
        ({"id_column": 3}, "id_column is invalid"),
    ],
)
def test_dialect_and_option_errors(tmp_path, kw, match):
    (tmp_path / "d.csv").write_text("a,b\n1,2\n3,4\n")
    with pytest.raises(ParameterError, match=match):
        load_table(tmp_path / "d.csv", **kw)


# --------------------------------------------------------------------------------------------
# load_table: text and id columns, missing values, notes
# --------------------------------------------------------------------------------------------
def test_text_columns_are_left_out_with_a_note(tmp_path):
    (tmp_path / "d.csv").write_text(
        "name,age,group,bmi\nann,30,A,22.5\nbob,41,B,30.1\ncy,52,A,25\n"
    )
    df = load_table(tmp_path / "d.csv")
    ref = pd.read_csv(tmp_path / "d.csv")[["age", "bmi"]]
    pd.testing.assert_frame_equal(df, ref, check_like=False)
    assert df.attrs["notes"] == [
        "left out non-numeric column(s) 'name', 'group'; 'name' has unique values: pass "
        "id_column='name' to use them as row ids"
    ]
    # asked for explicitly, a text column is still an error
    with pytest.raises(DataError, match=r"column 'group' .* is not numeric: .*got 'A' in row 0"):
        load_table(tmp_path / "d.csv", ["age", "group"])


def test_mostly_numeric_column_with_a_bad_value_is_still_an_error(tmp_path):
    (tmp_path / "d.csv").write_text("a,b\n1,2\n3,n/a?\n5,6\n")
    with pytest.raises(DataError, match=r"column 'b' .* not numeric: .*'n/a\?' in row 1"):
        load_table(tmp_path / "d.csv")


def test_only_text_columns_is_an_error(tmp_path):
    (tmp_path / "d.csv").write_text("a,b\nx,y\nz,w\n")
    with pytest.raises(DataError, match=r"has no numeric column: .*check the separator"):
        load_table(tmp_path / "d.csv")


def test_id_column(tmp_path):
    (tmp_path / "d.csv").write_text("x,pid,y\n1.5,P7,2\n2.5,P3,3\n3.5,P9,4\n")
    df = load_table(tmp_path / "d.csv", id_column="pid")
    assert list(df.columns) == ["x", "y"]
    assert df.index.tolist() == ["P7", "P3", "P9"]
    np.testing.assert_array_equal(df.to_numpy(), [[1.5, 2], [2.5, 3], [3.5, 4]])
    assert df.attrs["notes"] == ["used column 'pid' as row ids, not as a feature"]
    df = load_table(tmp_path / "d.csv", ["y"], id_column="pid")
    assert list(df.columns) == ["y"] and df.index.tolist() == ["P7", "P3", "P9"]
    with pytest.raises(DataError, match=r"unknown id_column 'pdi' .*did you mean 'pid'\?"):
        load_table(tmp_path / "d.csv", id_column="pdi")
    with pytest.raises(DataError, match=r"'pid' is both the id_column and in columns"):
        load_table(tmp_path / "d.csv", ["x", "pid"], id_column="pid")


def test_id_column_must_be_unique_and_complete(tmp_path):
    (tmp_path / "d.csv").write_text("id,x\n4,1\n5,2\n4,3\n")
    with pytest.raises(
        DataError, match=r"id column 'id' .* repeated values: .*got 4 in rows 0 and 2"
    ):
        load_table(tmp_path / "d.csv", id_column="id")
    (tmp_path / "m.csv").write_text("id,x\na,1\n,2\n")
    with pytest.raises(DataError, match=r"id column 'id' .* missing value: .*row 1"):
        load_table(tmp_path / "m.csv", id_column="id")


def test_pandas_index_column_is_not_a_feature(tmp_path):
    X = _values(n=6)
    ref = pd.DataFrame(X, columns=["a", "b"], index=[10, 11, 12, 13, 14, 15])
    ref.to_csv(tmp_path / "d.csv")  # writes the index as a first column with an empty name
    df = load_table(tmp_path / "d.csv")
    assert list(df.columns) == ["a", "b"]
    np.testing.assert_array_equal(df.to_numpy(), X)
    assert df.index.tolist() == ref.index.tolist()
    assert df.attrs["notes"] == [
        "used column 'Unnamed: 0' as row ids, not as a feature (named like an id)"
    ]


@pytest.mark.parametrize("name", ["id", "ID", "patient_id", "subjectId", "row"])
def test_id_named_columns_are_not_features(tmp_path, name):
    (tmp_path / "d.csv").write_text(f"{name},x\n7,1.5\n3,2.5\n9,3.5\n")
    df = load_table(tmp_path / "d.csv")
    assert list(df.columns) == ["x"]
    assert df.index.tolist() == [7, 3, 9]
    # repeated values: not row ids, but still not a feature
    (tmp_path / "r.csv").write_text(f"{name},x\n1,1.5\n1,2.5\n2,3.5\n")
    df = load_table(tmp_path / "r.csv")
    assert list(df.columns) == ["x"]
    assert df.index.equals(pd.RangeIndex(3))
    assert df.attrs["notes"][0].startswith(f"left out column '{name}' (named like an id")
    # listed explicitly, it is a feature
    assert list(load_table(tmp_path / "r.csv", [name, "x"]).columns) == [name, "x"]


def test_row_number_column_under_another_name_gets_a_note(tmp_path):
    (tmp_path / "d.csv").write_text("n,x\n1,1.5\n2,2.5\n3,3.5\n")
    df = load_table(tmp_path / "d.csv")
    assert list(df.columns) == ["n", "x"]
    assert df.attrs["notes"] == [
        "column 'n' holds the row numbers 1..3 and is fitted as a feature; if it is a row id, "
        "pass id_column='n'"
    ]
    # not a note for an ordinary integer feature
    (tmp_path / "e.csv").write_text("n,x\n1,1.5\n5,2.5\n3,3.5\n")
    assert load_table(tmp_path / "e.csv").attrs["notes"] == []


def test_dropna(tmp_path):
    rng = np.random.default_rng(3)
    ref = pd.DataFrame(rng.normal(size=(50, 3)).round(3), columns=["age", "bmi", "w"])
    ref.loc[[3, 10, 11], "age"] = np.nan
    ref.loc[[10, 20], "bmi"] = np.nan
    ref["name"] = [f"p{i}" for i in range(50)]
    ref.to_csv(tmp_path / "d.csv", index=False)
    df = load_table(tmp_path / "d.csv", dropna=True)
    expected = ref[["age", "bmi", "w"]].dropna()
    pd.testing.assert_frame_equal(df, expected)  # values and the original row numbers
    assert df.index.tolist() == [i for i in range(50) if i not in (3, 10, 11, 20)]
    assert "dropped 4 of 50 rows with missing values (columns 'age', 'bmi')" in df.attrs["notes"]
    # only the selected columns count
    df = load_table(tmp_path / "d.csv", ["bmi", "w"], dropna=True)
    assert df.attrs["notes"] == ["dropped 2 of 50 rows with missing values (column 'bmi')"]
    # nothing to drop: no note, the default index
    df = load_table(tmp_path / "d.csv", ["w"], dropna=True)
    assert df.attrs["notes"] == [] and df.index.equals(pd.RangeIndex(50))


def test_dropna_keeps_ids_and_refuses_an_empty_table(tmp_path):
    (tmp_path / "d.csv").write_text("pid,x,y\nP1,1.5,2\nP2,2.5,\nP3,3,4\n")
    df = load_table(tmp_path / "d.csv", id_column="pid", dropna=True)
    assert df.index.tolist() == ["P1", "P3"]
    assert df.attrs["notes"] == [
        "used column 'pid' as row ids, not as a feature",
        "dropped 1 of 3 rows with missing values (column 'y')",
    ]
    (tmp_path / "e.csv").write_text("x,y\n1,\n,2\n")
    with pytest.raises(DataError, match=r"missing values in every row"):
        load_table(tmp_path / "e.csv", dropna=True)


# --------------------------------------------------------------------------------------------
# Simulators: reproducibility and argument checks
# --------------------------------------------------------------------------------------------
SIMULATORS = [make_gaussian_mixture, make_bernoulli_mixture, make_heights, make_returns]


@pytest.mark.parametrize("make", SIMULATORS)
def test_simulators_reproducible(make):
    X1, z1, t1 = make(200, random_state=42)
    X2, z2, t2 = make(200, random_state=42)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(z1, z2)
    assert t1.keys() == t2.keys()
    for key in t1:
        np.testing.assert_array_equal(t1[key], t2[key])
    X3, _, _ = make(200, random_state=43)
    assert not np.array_equal(X1, X3)
    # A Generator is used as is: two calls continue its stream.
    rng = np.random.default_rng(42)
    Xa, _, _ = make(200, random_state=rng)
    Xb, _, _ = make(200, random_state=rng)
    np.testing.assert_array_equal(Xa, X1)
    assert not np.array_equal(Xa, Xb)
    assert X1.ndim == 2 and X1.shape[0] == 200
    assert z1.shape == (200,) and z1.dtype == np.int64


@pytest.mark.parametrize("make", SIMULATORS)
@pytest.mark.parametrize("n", [0, -5, 2.5])
def test_simulators_bad_n_samples(make, n):
    with pytest.raises(ParameterError, match="n_samples"):
        make(n, random_state=0)


def test_gaussian_argument_errors():
    with pytest.raises(ParameterError, match=r"weights does not sum to 1"):
        make_gaussian_mixture(10, 2, weights=[0.5, 0.6])
    with pytest.raises(ParameterError, match=r"weights has the wrong length: expected 3"):
        make_gaussian_mixture(10, 3, weights=[0.5, 0.5])
    with pytest.raises(ParameterError, match=r"means has the wrong shape: expected \(3, 2\), got"):
        make_gaussian_mixture(10, 3, 2, means=np.zeros((2, 2)))
    with pytest.raises(
        ParameterError, match=r"covariances has the wrong shape: expected \(2, 2, 2\)"
    ):
        make_gaussian_mixture(10, 2, 2, covariances=np.eye(2))
    bad = np.stack([np.eye(2), np.array([[1.0, 2.0], [2.0, 1.0]])])
    with pytest.raises(ParameterError, match=r"covariances\[1\] is not positive definite: .*-1"):
        make_gaussian_mixture(10, 2, 2, covariances=bad)
    asym = np.stack([np.eye(2), np.array([[1.0, 0.5], [0.0, 1.0]])])
    with pytest.raises(ParameterError, match=r"covariances\[1\] is not symmetric"):
        make_gaussian_mixture(10, 2, 2, covariances=asym)
    with pytest.raises(ParameterError, match="means contains NaN or inf"):
        make_gaussian_mixture(10, 1, 1, means=[[np.nan]])
    with pytest.raises(ParameterError, match="n_components must be at least 1"):
        make_gaussian_mixture(10, 0)
    with pytest.raises(ParameterError, match="separation is out of range"):
        make_gaussian_mixture(10, separation=0.0)
    with pytest.raises(ParameterError, match="random_state is invalid"):
        make_gaussian_mixture(10, random_state="x")


def test_bernoulli_argument_errors():
    with pytest.raises(ParameterError, match=r"probs\[0, 1\] is out of range: .*got 1\.5"):
        make_bernoulli_mixture(10, 1, 2, probs=[[0.5, 1.5]])
    with pytest.raises(ParameterError, match=r"probs has the wrong shape: expected \(2, 3\)"):
        make_bernoulli_mixture(10, 2, 3, probs=np.full((3, 2), 0.5))
    with pytest.raises(ParameterError, match=r"weights has a negative entry"):
        make_bernoulli_mixture(10, 2, weights=[1.5, -0.5])


# --------------------------------------------------------------------------------------------
# Simulators: empirical values against the truth
# --------------------------------------------------------------------------------------------
def assert_weights_close(z, w):
    n = z.shape[0]
    emp = np.bincount(z, minlength=w.shape[0]) / n
    se = np.sqrt(w * (1 - w) / n)
    assert np.all(np.abs(emp - w) <= Z_TOL * se + 1e-12), (emp, w)


def test_gaussian_default_means_are_separated():
    for k, d, sep in [(3, 2, 5.0), (4, 3, 2.0), (5, 1, 3.0), (2, 4, 7.0)]:
        _, _, truth = make_gaussian_mixture(5, k, d, separation=sep, random_state=1)
        mu = truth["mu"]
        dists = [np.linalg.norm(mu[i] - mu[j]) for i, j in combinations(range(k), 2)]
        assert min(dists) == pytest.approx(sep, rel=1e-12)
        np.testing.assert_allclose(mu.mean(axis=0), 0.0, atol=1e-12)
    _, _, truth = make_gaussian_mixture(5, 1, 3, random_state=0)
    np.testing.assert_array_equal(truth["mu"], np.zeros((1, 3)))


def test_gaussian_default_covariances():
    _, _, truth = make_gaussian_mixture(5, 6, 4, random_state=3)
    cov, sigma = truth["cov"], truth["sigma"]
    assert cov.shape == (6, 4, 4) and sigma.shape == (6, 4)
    np.testing.assert_allclose(cov, np.swapaxes(cov, 1, 2))
    assert np.all(np.linalg.eigvalsh(cov) > 0)
    np.testing.assert_allclose(sigma, np.sqrt(np.diagonal(cov, axis1=1, axis2=2)))
    assert np.all((sigma >= 0.75) & (sigma <= 1.25))
    corr = cov / (sigma[:, :, None] * sigma[:, None, :])
    off = corr[:, ~np.eye(4, dtype=bool)]
    assert np.all(np.abs(off) < 0.8) and np.abs(off).max() > 0.05  # correlated, not extreme
    np.testing.assert_allclose(truth["w"], np.full(6, 1 / 6))


def test_gaussian_empirical_matches_truth():
    X, z, truth = make_gaussian_mixture(N_LARGE, 3, 2, weights=[0.2, 0.3, 0.5], random_state=11)
    assert X.shape == (N_LARGE, 2) and X.dtype == np.float64
    assert_weights_close(z, truth["w"])
    for k in range(3):
        Xk = X[z == k]
        n_k = Xk.shape[0]
        cov = truth["cov"][k]
        se_mean = np.sqrt(np.diag(cov) / n_k)
        assert np.all(np.abs(Xk.mean(axis=0) - truth["mu"][k]) <= Z_TOL * se_mean)
        # SE of a sample covariance entry (normal data): sqrt((s_ii s_jj + s_ij^2) / n).
        se_cov = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / n_k)
        emp_cov = np.cov(Xk, rowvar=False)
        assert np.all(np.abs(emp_cov - cov) <= Z_TOL * se_cov), (emp_cov, cov)
        # Independent reference: a normality test of the Mahalanobis-whitened residuals.
        white = np.linalg.solve(np.linalg.cholesky(cov), (Xk - truth["mu"][k]).T).T
        assert stats.kstest(white[:5000, 0], "norm").pvalue > 1e-4


def test_gaussian_given_parameters_are_used():
    means = [[-10.0], [10.0]]
    covs = [[[1.0]], [[4.0]]]
    X, z, truth = make_gaussian_mixture(
        N_LARGE, 2, 1, weights=[0.25, 0.75], means=means, covariances=covs, random_state=5
    )
    np.testing.assert_array_equal(truth["mu"], means)
    np.testing.assert_array_equal(truth["sigma"], [[1.0], [2.0]])
    assert_weights_close(z, np.array([0.25, 0.75]))
    # Components are 20 sd apart: the labels are recoverable from the sign.
    np.testing.assert_array_equal(z, (X[:, 0] > 0).astype(int))
    assert X[z == 1, 0].std() == pytest.approx(2.0, rel=Z_TOL * np.sqrt(0.5 / (0.75 * N_LARGE)))


def test_bernoulli_empirical_matches_truth():
    X, z, truth = make_bernoulli_mixture(N_LARGE, 3, 16, weights=[0.5, 0.3, 0.2], random_state=2)
    assert X.shape == (N_LARGE, 16) and X.dtype == np.int8
    assert set(np.unique(X)) == {0, 1}
    p = truth["p"]
    assert p.shape == (3, 16)
    assert np.all((p >= 0.05) & (p <= 0.95))
    assert_weights_close(z, truth["w"])
    for k in range(3):
        Xk = X[z == k]
        se = np.sqrt(p[k] * (1 - p[k]) / Xk.shape[0])
        assert np.all(np.abs(Xk.mean(axis=0) - p[k]) <= Z_TOL * se)
        # Independence within a component: pixel correlations are near 0.
        c = np.corrcoef(Xk[:, :4], rowvar=False)[np.triu_indices(4, 1)]
        assert np.all(np.abs(c) < Z_TOL / np.sqrt(Xk.shape[0]))


def test_bernoulli_given_probs():
    probs = np.array([[0.0, 1.0, 0.5], [1.0, 0.0, 0.5]])
    X, z, truth = make_bernoulli_mixture(1000, 2, 3, probs=probs, random_state=0)
    np.testing.assert_array_equal(truth["p"], probs)
    np.testing.assert_array_equal(X[:, 0], z)  # p = 0 / 1 columns are deterministic
    np.testing.assert_array_equal(X[:, 1], 1 - z)


def _mixture_moments(w, mu, sigma):
    """Mean, variance, skewness and excess kurtosis of a 1-D normal mixture (SciPy moments)."""
    raw = [
        sum(wk * stats.norm(m, s).moment(order) for wk, m, s in zip(w, mu, sigma, strict=True))
        for order in (1, 2, 3, 4)
    ]
    m1, m2, m3, m4 = raw
    var = m2 - m1**2
    c3 = m3 - 3 * m1 * m2 + 2 * m1**3
    c4 = m4 - 4 * m1 * m3 + 6 * m1**2 * m2 - 3 * m1**4
    return m1, var, c3 / var**1.5, c4 / var**2 - 3


def _n_modes(density):
    inner = density[1:-1]
    return int(np.sum((inner > density[:-2]) & (inner > density[2:])))


def test_heights_truth_and_unimodal():
    X, z, truth = make_heights(N_LARGE, random_state=7)
    assert X.shape == (N_LARGE, 1)
    np.testing.assert_array_equal(truth["w"], [0.5, 0.5])
    np.testing.assert_array_equal(truth["mu"], [[164.0], [177.0]])
    np.testing.assert_array_equal(truth["sigma"], [[7.0], [7.5]])
    assert_weights_close(z, truth["w"])
    for k, name_mean in enumerate([164.0, 177.0]):
        xk = X[z == k, 0]
        assert abs(xk.mean() - name_mean) <= Z_TOL * truth["sigma"][k, 0] / np.sqrt(xk.size)
    # The true density has exactly one mode ...
    grid = np.linspace(120, 220, 2001)
    dens = sum(
        w * stats.norm(m, s).pdf(grid)
        for w, m, s in zip(truth["w"], truth["mu"][:, 0], truth["sigma"][:, 0], strict=True)
    )
    assert _n_modes(dens) == 1
    # ... and so does a histogram of the sample. The top of the density is nearly flat, so
    # narrow bins (2 cm) or a Scott-bandwidth KDE show noise bumps for some seeds; 4 cm bins
    # gave one mode for each of 40 seeds tried.
    counts, _ = np.histogram(X[:, 0], bins=np.arange(138, 206, 4))
    assert _n_modes(counts.astype(float)) == 1
    # But it is not one normal: platykurtic (excess kurtosis about -0.4) and a little skewed.
    _, var, skew, kurt = _mixture_moments(truth["w"], truth["mu"][:, 0], truth["sigma"][:, 0])
    assert kurt < -0.3
    x = X[:, 0]
    assert x.var() == pytest.approx(var, rel=0.02)
    assert stats.skew(x) == pytest.approx(skew, abs=Z_TOL * np.sqrt(6 / N_LARGE))
    assert stats.kurtosis(x) == pytest.approx(kurt, abs=Z_TOL * np.sqrt(24 / N_LARGE))
    assert abs(stats.kurtosis(x)) > 10 * np.sqrt(24 / N_LARGE)  # clearly not 0 (one normal)


def test_returns_truth_and_heavy_tails():
    X, z, truth = make_returns(N_LARGE, random_state=9)
    assert X.shape == (N_LARGE, 1)
    np.testing.assert_array_equal(truth["w"], [0.85, 0.15])
    np.testing.assert_array_equal(truth["mu"], [[0.05], [-0.1]])
    np.testing.assert_array_equal(truth["sigma"], [[0.8], [3.0]])
    assert_weights_close(z, truth["w"])
    for k in range(2):
        xk = X[z == k, 0]
        s = truth["sigma"][k, 0]
        assert abs(xk.mean() - truth["mu"][k, 0]) <= Z_TOL * s / np.sqrt(xk.size)
        assert xk.std() == pytest.approx(s, abs=Z_TOL * s / np.sqrt(2 * xk.size))
    mean, var, _, kurt = _mixture_moments(truth["w"], truth["mu"][:, 0], truth["sigma"][:, 0])
    assert kurt > 5  # heavy tails: excess kurtosis about 7.4
    x = X[:, 0]
    assert x.mean() == pytest.approx(mean, abs=Z_TOL * np.sqrt(var / N_LARGE))
    assert stats.kurtosis(x) == pytest.approx(kurt, rel=0.1)


# --------------------------------------------------------------------------------------------
# the galaxy data (Roeder 1990; Richardson & Green 1997)
# --------------------------------------------------------------------------------------------
def _shared_galaxies_csv():
    with resources.files("bayesmix.data").joinpath("galaxies.csv").open("rb") as fh:
        return pd.read_csv(fh)["velocity_kms"].to_numpy(dtype=float)


def test_galaxies_are_the_richardson_green_version():
    from bayesmix.data import load_galaxies

    df = load_galaxies()
    raw = _shared_galaxies_csv()
    assert df.shape == (82, 1) and list(df.columns) == ["velocity"]
    assert df["velocity"].dtype == np.float64
    assert df["velocity"].iloc[77] == 26960.0  # observation 78; MASS::galaxies has 26690
    assert 26690.0 not in df["velocity"].to_numpy()
    assert df["velocity"].mean() == pytest.approx(raw.mean(), rel=1e-12)
    assert df["velocity"].std() == pytest.approx(raw.std(ddof=1), rel=1e-12)
    assert (df["velocity"].min(), df["velocity"].max()) == (9172.0, 34279.0)
    assert np.all(np.diff(df["velocity"].to_numpy()) >= 0)
    # units of 1000 km/s, and the built-ins of a spec
    scaled = load_galaxies(unit="1000 km/s")
    np.testing.assert_allclose(scaled["velocity"], raw / 1000.0)
    pd.testing.assert_frame_equal(load_table("builtin:galaxies"), df)
    pd.testing.assert_frame_equal(load_table("builtin:galaxies_1000kms"), scaled)


def test_galaxies_bad_unit_says_what_to_do():
    from bayesmix.data import load_galaxies

    with pytest.raises(ParameterError, match=r"expected one of km/s, 1000 km/s.*unit="):
        load_galaxies(unit="m/s")


def test_remove_at_random_exact_count_and_no_empty_row():
    from bayesmix.data import remove_at_random

    X = np.arange(60.0).reshape(20, 3)
    out = remove_at_random(X, 0.4, random_state=1)
    assert int(np.isnan(out).sum()) == round(0.4 * X.size)
    assert not np.isnan(out).all(axis=1).any()
    kept = ~np.isnan(out)
    np.testing.assert_array_equal(out[kept], X[kept])  # the rest untouched
    assert np.array_equal(np.isnan(out), np.isnan(remove_at_random(X, 0.4, random_state=1)))
    # beyond (D - 1) / D every row keeps one value and the count stops there
    assert int(np.isnan(remove_at_random(X, 0.9, random_state=2)).sum()) == 40
    with pytest.raises(ParameterError, match="fraction is invalid"):
        remove_at_random(X, 1.0)
