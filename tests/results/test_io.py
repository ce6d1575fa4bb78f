from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from bayesmix._validation import DataError
from bayesmix.results import io as rio
from bayesmix.results.io import FORMAT, load, save

from .conftest import make_tree


@pytest.fixture(scope="module")
def tree():
    t, _ = make_tree(n_draw=60, n_obs=120)
    t = t.copy()
    t.attrs.update(extra={"a": [1, 2], "b": None}, none=None, flag=True, pair=[0.5, 2.0])
    em = t["em"].to_dataset()
    em.attrs.update(converged=True, warm_start=None)
    em["w"].attrs["note"] = {"unit": "probability"}
    t["em"] = xr.DataTree(em)
    stats = t["sample_stats"].to_dataset()
    msg = np.full(stats["diverging"].shape, None, dtype=object)
    msg[0, 3] = "Divergence at step 12: energy error 1e3"
    stats["divergence_message"] = (("chain", "draw"), msg)  # as nutpie stores it
    t["sample_stats"] = xr.DataTree(stats)
    return t


def _expected(tree: xr.DataTree, loaded: xr.DataTree) -> xr.DataTree:
    out = tree.copy()
    out.attrs["checksum"] = loaded.attrs["checksum"]
    return out


def test_netcdf_round_trip_is_exact(tree, tmp_path):
    path = save(tree, tmp_path / "fit.nc")
    back = load(path)
    assert back.identical(_expected(tree, back))
    assert back.attrs["format"] == FORMAT
    assert back.attrs["bayesmix_version"] == "0.1.0"
    assert back.attrs["checksum"].startswith("sha256:")
    assert back.attrs["extra"] == {"a": [1, 2], "b": None}
    assert back.attrs["none"] is None and back.attrs["flag"] is True
    assert back["em"].attrs["converged"] is True
    assert back["em"]["w"].attrs["note"] == {"unit": "probability"}
    assert back.attrs["spec"] == tree.attrs["spec"]
    assert int(back.attrs["seed"]) == 1
    assert back["sample_stats"]["diverging"].dtype == bool
    msg = back["sample_stats"]["divergence_message"].values
    assert msg.dtype == object and pd.isna(msg[0, 0]) and msg[0, 3].startswith("Divergence")
    np.testing.assert_array_equal(back["posterior"]["cov"].values, tree["posterior"]["cov"].values)
    assert list(back["posterior"]["feature"].values) == ["a", "b"]
    # no temporary files are left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fit.nc"]


def test_zarr_round_trip(tree, tmp_path):
    path = save(tree, tmp_path / "fit.zarr")
    save(tree, path)  # overwrite a folder
    back = load(path)
    expected = _expected(tree, back)
    for node in expected.subtree:  # Zarr may list the groups in another order
        assert back[node.path].to_dataset().identical(node.to_dataset()), node.path
    assert back.attrs["extra"] == {"a": [1, 2], "b": None}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fit.zarr"]


def test_overwrite_flag(tree, tmp_path):
    path = save(tree, tmp_path / "fit.nc")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save(tree, path, overwrite=False)
    with pytest.raises(DataError, match="DataTree"):
        save({"posterior": 1}, tmp_path / "x.nc")


def test_interrupted_save_keeps_previous_file(tree, tmp_path, monkeypatch):
    path = save(tree, tmp_path / "fit.nc")
    before = path.read_bytes()
    changed = tree.copy()
    changed.attrs["seed"] = 99

    def broken_writer(t, target):
        Path(target).write_bytes(before[: len(before) // 3])  # half-written
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(rio, "_write_netcdf", broken_writer)
    with pytest.raises(OSError, match="disk full"):
        save(changed, path)
    assert path.read_bytes() == before
    assert int(load(path).attrs["seed"]) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fit.nc"]

    def interrupted_writer(t, target):
        Path(target).write_bytes(b"\x89HDF\r\n\x1a\n partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(rio, "_write_netcdf", interrupted_writer)
    with pytest.raises(KeyboardInterrupt):
        save(changed, path)
    assert path.read_bytes() == before


CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    from conftest import make_tree
    from bayesmix.results import io as rio

    real = rio._write_netcdf

    def slow_writer(tree, target):
        real(tree, target)                      # a complete temporary file...
        size = Path(target).stat().st_size
        with open(target, "r+b") as fh:         # ...cut in the middle of its bytes
            fh.truncate(size // 2)
        print("WRITING", flush=True)
        time.sleep(60)                          # killed here, mid-write

    rio._write_netcdf = slow_writer
    tree, _ = make_tree(n_draw=60, n_obs=120, seed=7)
    rio.save(tree, {path!r})
    """
)


def test_save_killed_mid_write_keeps_previous_file(tree, tmp_path):
    path = save(tree, tmp_path / "fit.nc")
    before = path.read_bytes()
    script = CHILD.format(tests=str(Path(__file__).parent), path=str(path))
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        line = proc.stdout.readline()  # blocks until the child is mid-write
        assert line.strip() == b"WRITING", proc.stderr.read().decode()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert path.read_bytes() == before
    assert int(load(path).attrs["seed"]) == 1
    leftovers = [p for p in tmp_path.iterdir() if p.name != "fit.nc"]
    assert all(p.name.startswith(".fit.nc.") and p.suffix == ".tmp" for p in leftovers)
    # the half-written temporary file itself is refused as truncated
    for p in leftovers:
        with pytest.raises(DataError, match="truncated or corrupt"):
            load(p)


def test_missing_foreign_truncated_files(tree, tmp_path):
    with pytest.raises(DataError, match="not found"):
        load(tmp_path / "nope.nc")
    text = tmp_path / "notes.nc"
    text.write_text("eruptions,waiting\n3.6,79\n")
    with pytest.raises(DataError, match="not an HDF5 file"):
        load(text)
    good = save(tree, tmp_path / "fit.nc")
    data = good.read_bytes()
    for frac in (0.5, 0.9):
        cut = tmp_path / f"cut{frac}.nc"
        cut.write_bytes(data[: int(len(data) * frac)])
        with pytest.raises(DataError, match="truncated or corrupt"):
            load(cut)
    with pytest.raises(DataError, match="expected a .nc file"):
        load(tmp_path)


def test_foreign_netcdf_and_wrong_version(tree, tmp_path):
    plain = tmp_path / "plain.nc"
    xr.Dataset({"a": ("x", np.arange(3.0))}).to_netcdf(plain, engine="h5netcdf")
    with pytest.raises(DataError, match="not a bayesmix result"):
        load(plain)
    future = save(tree, tmp_path / "future.nc")
    with h5py.File(future, "r+") as fh:
        fh.attrs["format"] = "bayesmix-result/2"
    with pytest.raises(DataError, match="incompatible result format"):
        load(tmp_path / "future.nc")


def test_checksum_detects_altered_values(tree, tmp_path):
    path = save(tree, tmp_path / "fit.nc")
    with h5py.File(path, "r+") as fh:
        fh["posterior/mu"][0, 0, 0, 0] += 1.0
    with pytest.raises(DataError, match="checksum mismatch"):
        load(path)
    # the checksum ignores storage width and order
    assert rio.checksum(tree) == rio.checksum(load(save(tree, tmp_path / "again.nc")))


def test_minimal_tree(tmp_path):
    t = xr.DataTree.from_dict({"posterior": xr.Dataset({"w": ("component", [1.0])})})
    back = load(save(t, tmp_path / "tiny.nc"))
    assert back["posterior"]["w"].values.tolist() == [1.0]
    assert back.attrs["format"] == FORMAT


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_saved_files_get_the_default_permissions(tree, tmp_path, umask_022):
    # like open(path, "w") and os.mkdir: 0o666 / 0o777 less the umask, not mkstemp's 0o600
    nc = save(tree, tmp_path / "fit.nc")
    assert nc.stat().st_mode & 0o777 == 0o666 & ~0o022 == 0o644
    save(tree, nc)  # an overwrite too
    assert nc.stat().st_mode & 0o777 == 0o644
    zarr = save(tree, tmp_path / "fit.zarr")
    assert zarr.stat().st_mode & 0o777 == 0o777 & ~0o022 == 0o755
    inner = [p for p in zarr.rglob("*")]
    assert inner and all(
        p.stat().st_mode & 0o777 == (0o755 if p.is_dir() else 0o644) for p in inner
    )
    os.umask(0o077)
    private = save(tree, tmp_path / "private.nc")
    assert private.stat().st_mode & 0o777 == 0o600


def test_netcdf_arrays_are_compressed(tmp_path):
    # draws (float64) and sampler statistics (small integers, booleans) as NUTS leaves them
    rng = np.random.default_rng(0)
    draws = np.cumsum(rng.normal(0, 0.01, size=(4, 2000, 50)), axis=1)
    depth = rng.integers(2, 6, size=(4, 2000))
    diverging = rng.random((4, 2000)) < 0.01
    t = xr.DataTree.from_dict(
        {
            "posterior": xr.Dataset({"mu": (("chain", "draw", "k"), draws)}),
            "sample_stats": xr.Dataset(
                {
                    "depth": (("chain", "draw"), depth),
                    "diverging": (("chain", "draw"), diverging),
                }
            ),
        }
    )
    path = save(t, tmp_path / "fit.nc")
    plain = tmp_path / "plain.nc"
    t.to_netcdf(plain, engine="h5netcdf")  # the same tree without compression
    assert path.stat().st_size < 0.9 * plain.stat().st_size
    with h5py.File(path, "r") as fh:
        for name in ("posterior/mu", "sample_stats/depth", "sample_stats/diverging"):
            assert fh[name].compression == "gzip", name
            assert fh[name].compression_opts == rio.COMPRESSION_LEVEL
            assert fh[name].shuffle, name
        # integers and booleans shrink far more than random mantissas
        depth_ds = fh["sample_stats/depth"]
        assert depth_ds.id.get_storage_size() < 0.1 * depth.nbytes
    back = load(path)  # the checksum is verified on the decompressed values
    np.testing.assert_array_equal(back["posterior"]["mu"].values, draws)
    np.testing.assert_array_equal(back["sample_stats"]["depth"].values, depth)
    np.testing.assert_array_equal(back["sample_stats"]["diverging"].values, diverging)
