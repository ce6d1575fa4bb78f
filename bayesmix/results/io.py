"""Saving and loading results: NetCDF-4 (h5netcdf) or Zarr, written atomically.

File layout: the DataTree as written by :meth:`xarray.DataTree.to_netcdf`, plus root attrs

``format``
    ``"bayesmix-result/1"``; :func:`load` refuses other major versions.
``bayesmix_version``
    The package version that made the result (kept when the tree has it, else the version
    that wrote the file).
``checksum``
    ``"sha256:<hex>"`` over the names, shapes and values of every data variable of every
    group (floats as float64, integers as int64, booleans as uint8, strings as UTF-8), so a
    file whose arrays were damaged is refused on load.

Attributes that netCDF cannot store (dicts, lists, tuples, None, booleans) are written as
strings ``"__json__:" + json.dumps(value)`` and decoded on load (tuples come back as lists).
Object arrays (nutpie's ``divergence_message`` holds None or str) are stored element-wise as
JSON strings, flagged by the variable attr ``_bayesmix_json_elements``, and decoded on load.

Compression: every numeric variable of a NetCDF file is stored with gzip (level
``COMPRESSION_LEVEL``) after HDF5's byte shuffle, which packs the similar high bytes of
neighbouring floats together; draws of a posterior shrink by a fifth to a half, integer and
boolean sample statistics by far more. Reading needs nothing special (HDF5 decompresses).
Zarr stores keep Zarr's own default compressor.

Atomic writes: the tree is written to a temporary file in the destination folder, flushed to
disk, given the usual permissions (``0o666`` less the umask, like ``open(path, "w")``; a
Zarr folder ``0o777`` less the umask), then moved over the destination with
:func:`os.replace` (:func:`bayesmix._files.atomic_path`). A crash or a kill at any moment
leaves either the previous file or the new one, never half a file (the temporary file may be
left behind, with a name starting with ``.`` and ending in ``.tmp``). Zarr stores are
folders: the new store is written next to the old one and the two are swapped by two renames.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from bayesmix._files import atomic_path, default_folder_mode
from bayesmix._validation import DataError, ParameterError

__all__ = ["save", "load", "FORMAT", "checksum"]

FORMAT = "bayesmix-result/1"
_FORMAT_NAME, _FORMAT_VERSION = FORMAT.split("/")
_JSON_PREFIX = "__json__:"
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_RESERVED = ("format", "bayesmix_version", "checksum")
COMPRESSION_LEVEL = 4  # gzip level: 4 is within a few per cent of 9 on draws, at half the time


def _version() -> str:
    import bayesmix

    return str(getattr(bayesmix, "__version__", "unknown"))


# --------------------------------------------------------------------------------------
# attrs
# --------------------------------------------------------------------------------------
def _needs_json(value: Any) -> bool:
    if value is None or isinstance(value, bool | np.bool_ | dict | list | tuple):
        return True
    if isinstance(value, str):
        return value.startswith(_JSON_PREFIX)  # escape strings that look encoded
    return False


def _encode_value(value: Any) -> Any:
    if isinstance(value, np.bool_):
        value = bool(value)
    if _needs_json(value):
        return _JSON_PREFIX + json.dumps(value, default=_json_default)
    return value


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"cannot store attribute value of type {type(obj).__name__}")


def _decode_value(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_JSON_PREFIX):
        return json.loads(value[len(_JSON_PREFIX) :])
    return value


def _map_attrs(ds: xr.Dataset, fn) -> xr.Dataset:
    ds = ds.copy()
    ds.attrs = {k: fn(v) for k, v in ds.attrs.items()}
    for name in list(ds.variables):
        ds[name].attrs = {k: fn(v) for k, v in ds[name].attrs.items()}
    return ds


_JSON_ELEMENTS = "_bayesmix_json_elements"


def _encode_objects(ds: xr.Dataset) -> xr.Dataset:
    """Object arrays (e.g. nutpie's ``divergence_message``: None or str) as JSON strings."""
    for name in list(ds.data_vars):
        da = ds[name]
        if da.dtype == object:
            text = [json.dumps(v, default=_json_default) for v in da.values.ravel().tolist()]
            enc = np.array(text, dtype=str).reshape(da.shape)
            ds[name] = da.copy(data=enc)
            ds[name].attrs[_JSON_ELEMENTS] = 1
    return ds


def _decode_objects(ds: xr.Dataset) -> xr.Dataset:
    for name in list(ds.data_vars):
        da = ds[name]
        if _JSON_ELEMENTS in da.attrs:
            flat = np.empty(da.size, dtype=object)
            flat[:] = [json.loads(str(v)) for v in da.values.ravel().tolist()]
            attrs = {k: v for k, v in da.attrs.items() if k != _JSON_ELEMENTS}
            ds[name] = xr.DataArray(flat.reshape(da.shape), dims=da.dims, attrs=attrs)
    return ds


def _map_tree(tree: xr.DataTree, fn, objects=None) -> xr.DataTree:
    groups = {}
    for node in tree.subtree:
        ds = _map_attrs(node.to_dataset(inherit=False), fn)
        groups[node.path] = objects(ds) if objects is not None else ds
    return xr.DataTree.from_dict(groups)


# --------------------------------------------------------------------------------------
# checksum
# --------------------------------------------------------------------------------------
def _canonical_bytes(values: np.ndarray) -> bytes:
    if values.dtype.kind == "b":
        return np.ascontiguousarray(values, dtype=np.uint8).tobytes()
    if values.dtype.kind in "iu":
        return np.ascontiguousarray(values, dtype="<i8").tobytes()
    if values.dtype.kind == "f":
        return np.ascontiguousarray(values, dtype="<f8").tobytes()
    if values.dtype.kind == "c":
        return np.ascontiguousarray(values, dtype="<c16").tobytes()
    if values.dtype.kind == "M":
        return np.ascontiguousarray(values.astype("datetime64[ns]").view("<i8")).tobytes()
    return json.dumps([str(v) for v in values.ravel().tolist()]).encode("utf-8")


def checksum(tree: xr.DataTree) -> str:
    """SHA-256 over every data variable of every group of ``tree``.

    Parameters
    ----------
    tree : xarray.DataTree

    Returns
    -------
    str
        ``"sha256:<64 hex digits>"``; independent of group and variable order and of the
        integer or float width.
    """
    h = hashlib.sha256()
    for node in sorted(tree.subtree, key=lambda n: n.path):
        ds = node.to_dataset()
        for name in sorted(map(str, ds.data_vars)):
            da = ds[name]
            h.update(f"{node.path}/{name}{tuple(da.dims)}{da.shape}".encode())
            h.update(_canonical_bytes(np.asarray(da.values)))
    return "sha256:" + h.hexdigest()


# --------------------------------------------------------------------------------------
# save / load
# --------------------------------------------------------------------------------------
def _is_zarr(path: Path) -> bool:
    return path.suffix == ".zarr"


def _compression(tree: xr.DataTree) -> dict[str, dict[str, dict[str, Any]]]:
    """Per group and variable: gzip with shuffle for every non-scalar numeric array."""
    encoding: dict[str, dict[str, dict[str, Any]]] = {}
    for node in tree.subtree:
        ds = node.to_dataset(inherit=False)
        enc = {
            str(name): {
                "compression": "gzip",
                "compression_opts": COMPRESSION_LEVEL,
                "shuffle": True,
            }
            for name, var in ds.variables.items()
            if var.ndim > 0 and var.dtype.kind in "biuf"
        }
        if enc:
            encoding[node.path] = enc
    return encoding


def _write_netcdf(tree: xr.DataTree, path: Path) -> None:
    """Write ``tree`` to ``path`` (the real writer; tests replace it to simulate crashes)."""
    tree.to_netcdf(path, engine="h5netcdf", encoding=_compression(tree))


def _write_zarr(tree: xr.DataTree, path: Path) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tree.to_zarr(path, mode="w")


def save(result: xr.DataTree, path: str | os.PathLike, *, overwrite: bool = True) -> Path:
    """Write a result tree to NetCDF-4 (or Zarr when ``path`` ends in ``.zarr``) atomically.

    Parameters
    ----------
    result : xarray.DataTree
        Any bayesmix result.
    path : str or path-like
        Destination file (``.nc``) or Zarr folder (``.zarr``).
    overwrite : bool
        Replace an existing file; when False an existing file raises ``FileExistsError``.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    DataError
        When ``result`` is not a DataTree.
    FileExistsError
        When the file exists and ``overwrite`` is False.
    """
    if not isinstance(result, xr.DataTree):
        raise DataError(
            f"save needs a result tree: expected an xarray.DataTree, got "
            f"{type(result).__name__}; pass the DataTree returned by bayesmix.inference"
        )
    if not isinstance(overwrite, bool):
        raise ParameterError(
            f"overwrite must be a bool: expected True or False, got {overwrite!r}"
        )
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"result file exists: expected a new path, got {str(path)!r}; pass overwrite=True "
            "or choose another name"
        )
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise DataError(
            f"cannot save: expected an existing folder, got {str(folder)!r}; create it first"
        )

    tree = _map_tree(result, _encode_value, _encode_objects)
    tree.attrs.setdefault("bayesmix_version", _version())  # provenance of the fit wins
    tree.attrs.update(format=FORMAT, checksum=checksum(result))

    if _is_zarr(path):
        tmp = Path(tempfile.mkdtemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp"))
        try:
            _write_zarr(tree, tmp)
            # mkdtemp makes the folder private (0o700); Zarr makes everything inside it with
            # the usual modes, so only the top folder needs them (0o777 less the umask)
            os.chmod(tmp, default_folder_mode())
            old = None
            if path.exists():
                old = folder / f".{path.name}.{os.getpid()}.old"
                os.replace(path, old)
            os.replace(tmp, path)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return path

    with atomic_path(path, fsync=True) as tmp:
        _write_netcdf(tree, tmp)
    return path


def _check_header(path: Path) -> None:
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head != _HDF5_SIGNATURE:
        kind = "a classic netCDF-3 file" if head[:3] == b"CDF" else "not an HDF5 file"
        raise DataError(
            f"not a bayesmix result file: expected NetCDF-4/HDF5 data, got {kind} at "
            f"{str(path)!r}; pass a file written by bayesmix.results.save"
        )


def load(path: str | os.PathLike) -> xr.DataTree:
    """Read a result written by :func:`save`, check its format and checksum.

    Parameters
    ----------
    path : str or path-like
        A ``.nc`` file or a ``.zarr`` folder.

    Returns
    -------
    xarray.DataTree
        The tree, fully loaded in memory (the file is closed), with its JSON-encoded attrs
        decoded and root attrs ``format``, ``bayesmix_version`` and ``checksum``.

    Raises
    ------
    DataError
        Missing file; not a NetCDF-4/HDF5 file; truncated or corrupt file; no bayesmix
        ``format`` attr; an incompatible format version; a checksum mismatch.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(
            f"result file not found: expected an existing file, got {str(path)!r}; check the path"
        )
    if _is_zarr(path):
        try:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tree = xr.open_datatree(path, engine="zarr").load()
        except Exception as err:
            raise DataError(
                f"cannot read Zarr store {str(path)!r}: expected a store written by "
                f"bayesmix.results.save, got error {type(err).__name__}: {err}; rewrite it"
            ) from err
    else:
        if path.is_dir():
            raise DataError(
                f"not a result file: expected a .nc file or a .zarr folder, got folder "
                f"{str(path)!r}; pass the file path"
            )
        _check_header(path)
        try:
            with xr.open_datatree(path, engine="h5netcdf") as opened:
                tree = opened.load()
        except Exception as err:
            raise DataError(
                f"cannot read {str(path)!r}: the file is truncated or corrupt "
                f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); "
                "restore it from a copy or fit again"
            ) from err

    fmt = tree.attrs.get("format")
    if not isinstance(fmt, str) or not fmt.startswith(_FORMAT_NAME + "/"):
        raise DataError(
            f"not a bayesmix result: expected root attr format={FORMAT!r}, got {fmt!r} in "
            f"{str(path)!r}; pass a file written by bayesmix.results.save"
        )
    version = fmt.split("/", 1)[1]
    if version != _FORMAT_VERSION:
        raise DataError(
            f"incompatible result format: expected {FORMAT!r}, got {fmt!r} in {str(path)!r}; "
            f"read it with the bayesmix version that wrote it "
            f"({tree.attrs.get('bayesmix_version', 'unknown')})"
        )
    tree = _map_tree(tree, _decode_value, _decode_objects)
    stored = tree.attrs.get("checksum")
    if stored is not None:
        actual = checksum(tree)
        if actual != stored:
            raise DataError(
                f"checksum mismatch in {str(path)!r}: expected {stored}, got {actual}; the "
                "file was altered or damaged, restore it from a copy or fit again"
            )
    return tree
