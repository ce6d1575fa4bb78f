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
    assert set(BUILTIN_TABLES) == {"old_faithful", "low_dim_gauss_mix", "digits"}


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
        r"in row 1 \(line 3 of the file, column 'b'\); drop them first",
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
