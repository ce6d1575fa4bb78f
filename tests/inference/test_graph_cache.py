"""Rewritten graphs kept on disk between processes (bayesmix.inference._graph_cache).

A graph loaded from the cache must compute the same numbers bit for bit as a fresh compile;
only files written by this user's bayesmix (HMAC under a private secret) are ever unpickled;
a stale key, a tampered file or an unsafe folder means a fresh compile, never an error; and no
data of the user goes into a file.
"""

import os
import stat

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from bayesmix.inference import _graph_cache as gc
from bayesmix.inference._compiled import CompiledMixture, get_compiled

from .conftest import FULL2

FEATURES = ["eruptions", "waiting"]
SECRET_VALUE = 123.456789012345


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "graphs"
    monkeypatch.setenv(gc.ENV_VAR, str(folder))
    return folder


def _tiny(scale: float = 2.0):
    """(key parts, build, shared): a small graph reading a shared data vector."""
    data = pytensor.shared(np.full(50, SECRET_VALUE), name="x_data")
    n = pytensor.shared(np.int64(50), name="n")

    def build():
        theta = pt.vector("theta")
        out = [pt.sum((data - theta[0]) ** 2) / n * scale, pt.exp(theta) * data.mean()]
        return [theta], out

    return {"x_data": data, "n": n}, build


def _compile(key, shared, build):
    return gc.compile_graph(key, build, shared, lambda i, o: pytensor.function(i, o), _nullcontext)


def _nullcontext():
    import contextlib

    return contextlib.nullcontext()


def _values(fn, theta):
    return [np.asarray(v) for v in fn(theta)]


def test_a_second_compile_loads_the_graph_and_computes_the_same_numbers(cache):
    shared, build = _tiny()
    theta = np.array([0.3, -1.2])
    first = _compile(("tiny", 1), shared, build)
    assert not first.loaded
    files = list(cache.glob("*.graph"))
    assert len(files) == 1
    second = _compile(("tiny", 1), shared, build)
    assert second.loaded
    for a, b in zip(_values(first, theta), _values(second, theta), strict=True):
        np.testing.assert_array_equal(a, b)
    # new data of the same shape flow into a loaded graph (data are inputs, not constants)
    shared["x_data"].set_value(np.linspace(0.0, 1.0, 50))
    np.testing.assert_array_equal(_values(first, theta)[0], _values(second, theta)[0])
    assert _values(second, theta)[0] != pytest.approx(
        _values(_compile(("tiny", 2), *_tiny()), theta)[0]
    )
    # the raw Numba callable agrees with the Function
    np.testing.assert_array_equal(second.raw()(theta)[0], _values(second, theta)[0])
    # private folder and files; no data of the user inside
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    assert np.float64(SECRET_VALUE).tobytes() not in files[0].read_bytes()


def test_another_key_is_a_miss(cache):
    shared, build = _tiny()
    _compile(("tiny", 1), shared, build)
    assert not _compile(("tiny", 2), shared, build).loaded
    assert len(list(cache.glob("*.graph"))) == 2


def test_a_tampered_file_is_never_unpickled_and_is_replaced(cache, monkeypatch):
    shared, build = _tiny()
    theta = np.array([0.3, -1.2])
    ref = _values(_compile(("tiny", 1), shared, build), theta)
    (path,) = cache.glob("*.graph")
    blob = bytearray(path.read_bytes())
    blob[-20] ^= 0xFF
    path.write_bytes(bytes(blob))
    import pickle

    def refuse(*_a, **_k):
        raise AssertionError("a file that fails its HMAC was unpickled")

    monkeypatch.setattr(pickle, "loads", refuse)
    again = _compile(("tiny", 1), shared, build)
    monkeypatch.undo()
    assert not again.loaded
    for a, b in zip(ref, _values(again, theta), strict=True):
        np.testing.assert_array_equal(a, b)
    os.environ[gc.ENV_VAR] = str(cache)
    assert _compile(("tiny", 1), shared, build).loaded  # rewritten, valid again


def test_a_file_under_another_secret_is_refused(cache):
    shared, build = _tiny()
    _compile(("tiny", 1), shared, build)
    (cache / "secret.key").write_bytes(os.urandom(32))  # as if another user had written it
    assert not _compile(("tiny", 1), shared, build).loaded


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX permissions")
def test_a_folder_others_can_write_turns_the_cache_off(cache):
    shared, build = _tiny()
    cache.mkdir(mode=0o700)
    cache.chmod(0o777)
    fn = _compile(("tiny", 1), shared, build)
    assert not fn.loaded
    assert not list(cache.glob("*.graph")) and not (cache / "secret.key").exists()


def test_the_cache_can_be_turned_off(tmp_path, monkeypatch):
    monkeypatch.setenv(gc.ENV_VAR, "off")
    assert gc.cache_dir() is None
    shared, build = _tiny()
    assert not _compile(("tiny", 1), shared, build).loaded
    assert not _compile(("tiny", 1), shared, build).loaded
    monkeypatch.delenv(gc.ENV_VAR)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert gc.cache_dir() == tmp_path / "bayesmix" / "graphs"


def test_a_model_loaded_from_disk_gives_the_same_density_bit_for_bit(
    faithful_run, faithful, cache
):
    cm = get_compiled(FULL2, faithful[FEATURES])  # the session's model
    flat = np.random.default_rng(3).normal(0.0, 0.3, cm.n_dim)
    fresh = CompiledMixture(cm.spec, cm.X, FEATURES, cache_key=cm.cache_key)
    loaded = CompiledMixture(cm.spec, cm.X, FEATURES, cache_key=cm.cache_key)
    assert not fresh._logp_outputs().loaded
    assert loaded._logp_outputs().loaded
    assert not fresh._expand().loaded and loaded._expand().loaded
    for jacobian in (False, True):
        ref = cm.logp_grad(flat, jacobian=jacobian)
        for other in (fresh, loaded):
            lp, g = other.logp_grad(flat, jacobian=jacobian)
            assert lp == ref[0]
            np.testing.assert_array_equal(g, ref[1])
    for name, value in cm.point(flat).items():
        np.testing.assert_array_equal(loaded.point(flat)[name], value)
    # the loaded graph reads the model's current data
    for model in (fresh, loaded):
        model.set_data(cm.X * 1.01)
    assert loaded.logp_grad(flat)[0] == fresh.logp_grad(flat)[0] != cm.logp_grad(flat)[0]
