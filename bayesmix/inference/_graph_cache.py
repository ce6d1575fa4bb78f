"""Compiled PyTensor functions whose rewritten graphs are kept on disk between processes.

PyTensor caches the machine code of a compiled function (Numba's cache, under
``~/.pytensor``), but not the work before it: building the log density and its gradient,
then rewriting the graph (about 2,000 nodes down to 200 for Old Faithful), costs seconds in
every new process. :func:`compile_graph` keeps the rewritten graph instead: the first process
compiles as usual and writes the graph to this user's cache folder; later processes with the
same key load it and only link it (Numba then finds its machine code in PyTensor's cache). The
loaded graph is the same graph, so the function computes the same numbers bit for bit.

* **Data are inputs, not part of the file.** The shared variables of the graph (``pm.Data``
  containers, dim lengths) become explicit inputs, read from the model at each call
  (:meth:`CompiledGraph.data`): no data of the user is written to the cache, and new data of
  the same shape reuse the graph.
* **The key** is what fixes the graph: the caller's description of the model (spec, shapes,
  dtype, the family's graph key), the role of the function, the versions of Python, NumPy,
  PyTensor, PyMC and Numba, the PyTensor settings that change compilation, and a hash of
  bayesmix's own source files. The whole key is stored in the file and compared on load; the
  input types are checked against the model's. Any mismatch or error: compile afresh and
  overwrite.
* **Only files this user wrote are loaded.** The folder is private (mode 0700); each file
  carries an HMAC-SHA256 of its content under a random secret created in that folder on first
  use (mode 0600) and is unpickled only when the HMAC matches. A folder or secret that others
  can write disables the cache.
* **Nothing is half-written**: a file is written to a temporary name and renamed into place.

The folder is ``$BAYESMIX_CACHE_DIR`` when set (empty, ``0`` or ``off``: no disk cache), else
``$XDG_CACHE_HOME/bayesmix/graphs`` or ``~/.cache/bayesmix/graphs``. Deleting it is always safe.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import pickle
import stat
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["CompiledGraph", "cache_dir", "compile_graph"]

ENV_VAR = "BAYESMIX_CACHE_DIR"
_MAGIC = b"bayesmix-graph-v1\n"
_DIGEST = hashlib.sha256().digest_size


def cache_dir() -> Path | None:
    """The folder of the graph cache, or None when it is turned off (``BAYESMIX_CACHE_DIR``)."""
    env = os.environ.get(ENV_VAR)
    if env is not None:
        return None if env.strip().lower() in ("", "0", "off", "none", "false") else Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "bayesmix" / "graphs"


class CompiledGraph:
    """A compiled function whose shared variables are inputs, fed from the model at each call.

    Parameters
    ----------
    fn : pytensor.compile.function.types.Function
        Takes the caller's inputs, then the values of ``data_names``.
    data_names : sequence of str
    shared : mapping of str to SharedVariable
        The model's shared variables by name (their current values are passed).
    loaded : bool
        Whether the graph came from the disk cache.
    """

    def __init__(self, fn, data_names: Sequence[str], shared: Mapping[str, Any], loaded: bool):
        self.fn = fn
        self.data_names = tuple(data_names)
        self._shared = [shared[n] for n in self.data_names]
        self.loaded = loaded

    def data(self) -> tuple:
        """The current values of the shared variables, in input order."""
        return tuple(v.get_value(borrow=True) for v in self._shared)

    def __call__(self, *args):
        return self.fn(*args, *self.data())

    def raw(self) -> Callable:
        """A callable of the caller's inputs with today's data bound.

        The Numba function itself, without PyTensor's input checks: safe to call from
        several threads.
        """
        values = self.data()
        jit = getattr(self.fn.vm, "jit_fn", None)
        if jit is None:  # pragma: no cover - a non-Numba PyTensor mode
            fn = self.fn
            return lambda *args: fn(*args, *values)
        return lambda *args: jit(*(np.asarray(a, dtype=float) for a in args), *values)


def compile_graph(
    key: tuple,
    build: Callable[[], tuple[list, list]],
    shared: Mapping[str, Any],
    compile_fn: Callable[[list, list], Any],
    link_context: Callable[[], Any],
) -> CompiledGraph:
    """A compiled function of ``build()``'s graph, loaded from the disk cache when it can be.

    Parameters
    ----------
    key : tuple
        Everything that fixes the graph apart from the versions and settings added here; its
        ``repr`` must be deterministic.
    build : callable
        Returns ``(inputs, outputs)``: the graph, with the model's shared variables in it.
    shared : mapping of str to SharedVariable
        Every shared variable the graph may read, by its (unique) name.
    compile_fn : callable
        ``compile_fn(inputs, outputs)`` compiles a fresh function (e.g.
        ``pymc.pytensorf.compile``).
    link_context : callable
        A context manager factory under which compiling and linking happen (the same for a
        fresh and a loaded graph: it fixes the flags that change the machine code).

    Returns
    -------
    CompiledGraph
    """
    full_key = repr((key, _environment()))
    folder = cache_dir()
    path = None
    if folder is not None:
        path = folder / (hashlib.sha256(full_key.encode()).hexdigest()[:40] + ".graph")
        loaded = _load(path, full_key, shared, link_context)
        if loaded is not None:
            return loaded

    from pytensor.graph.replace import graph_replace
    from pytensor.graph.traversal import ancestors

    inputs, outputs = build()
    by_id = {id(v): name for name, v in shared.items()}
    used = [v for v in ancestors(outputs) if id(v) in by_id]
    names = [by_id[id(v)] for v in used]
    replacements = {v: v.type(name=n) for v, n in zip(used, names, strict=True)}
    outputs = graph_replace(outputs, replacements, strict=False)
    with link_context():
        fn = compile_fn([*inputs, *replacements.values()], outputs)
    if path is not None:
        _store(path, full_key, fn, names)
    return CompiledGraph(fn, names, shared, loaded=False)


# ---------------------------------------------------------------------------------------------


@functools.cache
def _environment() -> tuple:
    """Versions, PyTensor settings and bayesmix's source: a change in any of them is a miss."""
    import numba
    import pymc
    import pytensor
    from pytensor import config

    settings = tuple(
        (name, str(getattr(config, name, None)))
        for name in (
            "floatX",
            "mode",
            "linker",
            "optimizer",
            "optimizer_excluding",
            "optimizer_including",
            "optimizer_requiring",
            "cast_policy",
        )
    )
    return (
        sys.version,
        np.__version__,
        pytensor.__version__,
        pymc.__version__,
        numba.__version__,
        settings,
        _source_hash(),
    )


@functools.cache
def _source_hash() -> str:
    """SHA-256 of every ``.py`` file of the bayesmix package (paths and contents)."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.py")):
        h.update(str(p.relative_to(root)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def _private_folder(folder: Path) -> bool:
    """Create ``folder`` (mode 0700) if needed; True when it is ours and only ours."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = folder.stat()
    except OSError:
        return False
    return _owned_and_private(st) and stat.S_ISDIR(st.st_mode)


def _owned_and_private(st: os.stat_result) -> bool:
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        return False
    return not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _secret(folder: Path) -> bytes | None:
    """The user's random HMAC key in ``folder`` (created on first use), or None if unsafe."""
    if not _private_folder(folder):
        return None
    path = folder / "secret.key"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    except OSError:
        return None
    else:
        with os.fdopen(fd, "wb") as fh:
            fh.write(os.urandom(32))
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as fh:
            st = os.fstat(fh.fileno())
            key = fh.read()
    except OSError:
        return None
    if not _owned_and_private(st) or st.st_mode & stat.S_IRWXO or len(key) != 32:
        return None
    return key


def _load(
    path: Path, full_key: str, shared: Mapping[str, Any], link_context
) -> CompiledGraph | None:
    secret = _secret(path.parent)
    if secret is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as fh:
            if not _owned_and_private(os.fstat(fh.fileno())):
                return None
            blob = fh.read()
    except OSError:
        return None
    head = len(_MAGIC)
    if blob[:head] != _MAGIC or len(blob) < head + _DIGEST:
        return None
    tag, payload = blob[head : head + _DIGEST], blob[head + _DIGEST :]
    if not hmac.compare_digest(tag, hmac.new(secret, payload, hashlib.sha256).digest()):
        return None  # not written by this user's bayesmix: never unpickled
    try:
        stored_key, inputs, outputs, names = pickle.loads(payload)
        if stored_key != full_key or any(n not in shared for n in names):
            return None
        n_own = len(inputs) - len(names)
        for var, name in zip(inputs[n_own:], names, strict=True):
            if var.type != shared[name].type:
                return None
        fn = _link(inputs, outputs, link_context)
    except Exception:  # noqa: BLE001 - a stale or broken file: compile afresh
        return None
    return CompiledGraph(fn, names, shared, loaded=True)


def _link(inputs, outputs, link_context):
    """A Function of an already rewritten graph (no rewriting, only the linker)."""
    from pytensor.compile.io import In
    from pytensor.compile.maker import FunctionMaker
    from pytensor.compile.mode import get_mode
    from pytensor.graph.fg import FunctionGraph

    fgraph = FunctionGraph(inputs, outputs, clone=False)
    with link_context():
        maker = FunctionMaker(
            [In(v) for v in inputs],
            list(outputs),
            mode=get_mode(None),
            fgraph=fgraph,
            no_fgraph_prep=True,
            accept_inplace=True,  # the rewritten graph has its in-place ops already
            on_unused_input="ignore",
        )
        return maker.create()


def _store(path: Path, full_key: str, fn, names: list[str]) -> None:
    """Write the rewritten graph of ``fn`` (atomically); any failure only skips the cache."""
    secret = _secret(path.parent)
    if secret is None:
        return
    fgraph = fn.maker.fgraph
    try:
        _drop_gradient_caches(fgraph)
        payload = pickle.dumps(
            (full_key, list(fgraph.inputs), list(fgraph.outputs), list(names)),
            protocol=pickle.HIGHEST_PROTOCOL,
        )
    except Exception:  # noqa: BLE001 - an op that does not pickle: no disk cache for it
        return
    tag = hmac.new(secret, payload, hashlib.sha256).digest()
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".graph")
        with os.fdopen(fd, "wb") as fh:
            fh.write(_MAGIC + tag + payload)
        os.replace(tmp, path)
        tmp = None
    except OSError:
        pass
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def _drop_gradient_caches(fgraph, seen: set | None = None) -> None:
    """Empty the gradient caches of inner-graph ops (closures, not picklable, not needed)."""
    from pytensor.compile.builders import OpFromGraph

    seen = set() if seen is None else seen
    for node in fgraph.apply_nodes:
        op = node.op
        if id(op) in seen:
            continue
        seen.add(id(op))
        if isinstance(op, OpFromGraph):
            op._lop_op_cache = {}
        inner = getattr(op, "fgraph", None)
        if inner is not None and hasattr(inner, "apply_nodes"):
            _drop_gradient_caches(inner, seen)
