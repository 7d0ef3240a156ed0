"""Safe model persistence: one ``.wsagg`` file per fitted estimator, never pickle.

A model file is a zip archive of two members:

``metadata.json``
    the format name and version, the wsagg version that wrote it, the estimator (registry
    name and import path), its ``get_params()``, its classes and source names, the SHA-256
    of ``arrays.npz`` and a typed description of every saved attribute (the fitted ``*_``
    attributes and the private state ``predict_proba`` uses);
``arrays.npz``
    every numpy array of the parameters and the attributes, read back with
    ``np.load(..., allow_pickle=False)``.

Loading never runs code named by the file: the estimator must be a registered aggregator
(``wsagg._registry.AGGREGATORS``) or :class:`wsagg.downstream.SoftLabelClassifier`, nested
state objects must be one of the few dataclasses listed in ``_STATE_CLASSES``, and every
other value is rebuilt from JSON and plain arrays. A file that is not such an archive, has
a format version newer than this wsagg reads, fails its checksum or describes anything else
raises :class:`wsagg.exceptions.ModelFileError`. See ``docs/persistence.md``.

The SHA-256 guards against corruption and accidental edits, not against a forger (who can
recompute it): the safety of loading an untrusted file comes from never unpickling and never
importing anything outside the allow-lists above.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import io
import json
import math
import os
import re
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from wsagg._atomic import write_atomic
from wsagg.exceptions import ModelFileError

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "load", "save"]

#: the ``format`` field of every model file's metadata
FORMAT_NAME = "wsagg-model"
#: the newest format version this wsagg writes and reads (see docs/persistence.md)
FORMAT_VERSION = 1

_METADATA = "metadata.json"
_ARRAYS = "arrays.npz"
_CLASSIFIER = "wsagg.downstream:SoftLabelClassifier"
# dataclasses of arrays that aggregators keep as private predict-time state; a file may only
# name these (anything else is refused at save and at load)
_STATE_CLASSES = frozenset({
    "wsagg.aggregation.dawid_skene.em:Params",
    "wsagg.aggregation.adversarial.constraints:DualProblem",
    "wsagg.aggregation.mace:_Weights",
})
_ARRAY_KINDS = "biufcUSmM"  # numpy dtype kinds stored as they are (no object, no void)
_TORCH_STATE = ("module_", "_dtype", "_device")  # SoftLabelClassifier: rebuilt on load
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SUPPORTED = (
    "None, bool, int, float, str, list, tuple, dict with str keys, numpy arrays / scalars / "
    "dtypes, scipy sparse matrices, pandas DataFrames, fitted wsagg estimators"
)


# ----------------------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------------------
def save(model: Any, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Save a fitted estimator to one file (a zip of ``metadata.json`` and ``arrays.npz``).

    Parameters
    ----------
    model : fitted aggregator (any registered one) or SoftLabelClassifier
        The estimator to save; its parameters and every fitted attribute are stored.
    path : str or os.PathLike
        The file to write (``.wsagg`` is the suggested suffix; any suffix is accepted). Its
        directory must exist.
    overwrite : bool
        Replace an existing file. Without it an existing ``path`` is a ``FileExistsError``.

    Returns
    -------
    pathlib.Path
        ``path``. The file is written atomically (a temporary file in the same directory,
        renamed into place) with the permissions the umask gives a new file.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        ``model`` is not fitted.
    TypeError
        ``model`` is not a wsagg estimator, or a parameter or attribute has a type the
        format does not store (the message names it).
    FileExistsError
        ``path`` exists and ``overwrite`` is false.
    """
    path = Path(path)
    meta, arrays = _snapshot(model)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    payload = buf.getvalue()
    meta["arrays_sha256"] = hashlib.sha256(payload).hexdigest()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(_METADATA, json.dumps(meta, indent=1, allow_nan=False))
        zf.writestr(_ARRAYS, payload)
    write_atomic(path, out.getvalue(), overwrite=overwrite)
    return path


def load(path: str | os.PathLike) -> Any:
    """Load an estimator saved by :func:`save` (or ``model.save``).

    Parameters
    ----------
    path : str or os.PathLike
        A model file.

    Returns
    -------
    estimator
        A fitted estimator of the saved class, with the saved parameters and attributes:
        its ``predict_proba`` gives the same numbers as the saved model's.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    wsagg.exceptions.ModelFileError
        The file is not a wsagg model file, is of a newer format version, fails its
        checksum, or names a class or value that wsagg does not load.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No model file {str(path)!r}.")
    if path.is_dir():
        raise ModelFileError(f"{str(path)!r} is a directory, not a wsagg model file.")
    where = f"{str(path)!r}"
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            missing = [n for n in (_METADATA, _ARRAYS) if n not in names]
            if missing:
                raise ModelFileError(
                    f"{where} is not a wsagg model file: the archive has no {missing[0]}."
                )
            raw_meta = zf.read(_METADATA)
            payload = zf.read(_ARRAYS)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as err:
        raise ModelFileError(
            f"{where} is not a wsagg model file (not a zip archive: {err})."
        ) from None
    try:
        meta = json.loads(raw_meta.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelFileError(f"{where}: metadata.json is not valid JSON ({err}).") from None
    if not isinstance(meta, dict):
        raise ModelFileError(f"{where}: metadata.json is not a JSON object.")
    _check_format(meta, where)
    digest = hashlib.sha256(payload).hexdigest()
    if meta.get("arrays_sha256") != digest:
        raise ModelFileError(
            f"{where}: arrays.npz fails its SHA-256 check (the file is corrupt or was "
            "modified after saving)."
        )
    arrays = _read_npz(payload, where)
    decoder = _Decoder(arrays, where)
    est = decoder.estimator(meta.get("estimator"), "the model")
    unused = sorted(set(arrays) - decoder.used)
    if unused:
        raise ModelFileError(
            f"{where}: arrays.npz holds arrays that metadata.json does not describe "
            f"({unused[:3]}); the file was modified."
        )
    return est


# ----------------------------------------------------------------------------------------
# identity of an estimator class
# ----------------------------------------------------------------------------------------
def _allowed_classes() -> dict[str, str | None]:
    """Import path -> registry name of every class a model file may name."""
    from wsagg._registry import AGGREGATORS

    allowed: dict[str, str | None] = {spec.path: name for name, spec in AGGREGATORS.items()}
    allowed[_CLASSIFIER] = None
    return allowed


def _resolve(path: str) -> type:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def _identify(model: Any) -> tuple[str, str | None]:
    """``(import path, registry name)`` of ``model``'s class; a ``TypeError`` for a class
    that is not registered (a user subclass, a foreign estimator)."""
    cls = type(model)
    for path, name in _allowed_classes().items():
        if path.partition(":")[2] == cls.__name__ and _resolve(path) is cls:
            return path, name
    raise TypeError(
        f"Only registered wsagg aggregators and SoftLabelClassifier can be saved; got "
        f"{cls.__module__}.{cls.__qualname__}."
    )


def _check_fitted(model: Any) -> None:
    from sklearn.utils.validation import check_is_fitted

    if not hasattr(model, "get_params"):
        raise TypeError(
            f"Only wsagg estimators can be saved; got {type(model).__module__}."
            f"{type(model).__qualname__}."
        )
    check_is_fitted(model)


# ----------------------------------------------------------------------------------------
# saving: objects -> (JSON description, arrays)
# ----------------------------------------------------------------------------------------
class _Encoder:
    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def array(self, arr: np.ndarray, scalar: bool = False) -> dict[str, Any]:
        key = f"a{len(self.arrays)}"
        self.arrays[key] = arr
        node: dict[str, Any] = {"type": "ndarray", "key": key, "dtype": arr.dtype.str,
                                "shape": list(arr.shape)}
        if scalar:
            node["scalar"] = True
        return node

    def encode(self, value: Any, where: str) -> dict[str, Any]:
        """The typed JSON description of ``value`` (its arrays go to ``self.arrays``)."""
        import scipy.sparse as sp

        if value is None:
            return {"type": "none"}
        if isinstance(value, bool):
            return {"type": "bool", "value": value}
        if type(value) is int:
            return {"type": "int", "value": value}
        if type(value) is float:
            return {"type": "float", "value": value if math.isfinite(value) else repr(value)}
        if type(value) is str:
            return {"type": "str", "value": value}
        if isinstance(value, np.ndarray):
            return self._ndarray(value, where)
        if isinstance(value, np.generic):
            if value.dtype.kind not in _ARRAY_KINDS:
                self._unsupported(value, where)
            return self.array(np.asarray(value), scalar=True)
        if isinstance(value, np.dtype):
            return {"type": "numpy-dtype", "dtype": value.str}
        if isinstance(value, type) and issubclass(value, np.generic):
            if np.dtype(value).kind not in _ARRAY_KINDS:
                self._unsupported(value, where)
            return {"type": "numpy-type", "name": np.dtype(value).name}
        if type(value) in (list, tuple):
            return {
                "type": type(value).__name__,
                "items": [self.encode(v, f"{where}[{i}]") for i, v in enumerate(value)],
            }
        if type(value) is dict:
            bad = [k for k in value if type(k) is not str]
            if bad:
                raise TypeError(
                    f"Cannot save {where}: it is a dict with a key {bad[0]!r} of type "
                    f"{type(bad[0]).__name__}; the model format stores dicts with str keys."
                )
            return {
                "type": "dict",
                "items": {k: self.encode(v, f"{where}[{k!r}]") for k, v in value.items()},
            }
        if sp.issparse(value):
            return self._sparse(value, where)
        if _is_dataframe(value):
            return self._dataframe(value, where)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return self._dataclass(value, where)
        if hasattr(value, "get_params") and hasattr(value, "fit"):
            return self.estimator(value, where)
        self._unsupported(value, where)
        raise AssertionError  # pragma: no cover - _unsupported raises

    def _unsupported(self, value: Any, where: str) -> None:
        t = type(value) if not isinstance(value, type) else value
        raise TypeError(
            f"Cannot save {where}: its type {t.__module__}.{t.__qualname__} is not one the "
            f"model format stores ({_SUPPORTED})."
        )

    def _ndarray(self, arr: np.ndarray, where: str) -> dict[str, Any]:
        if arr.dtype.kind in _ARRAY_KINDS:
            return self.array(np.ascontiguousarray(arr))
        if arr.dtype != object:
            self._unsupported(arr, f"{where} (dtype {arr.dtype})")
        flat = arr.ravel(order="C").tolist()
        if all(type(v) is str and not v.endswith("\x00") for v in flat):
            # strings: a unicode array, given back its object dtype on load
            node = self.array(np.array(flat, dtype=str).reshape(arr.shape))
            node["object"] = True
            return node
        return {  # mixed values (ids, dicts of parameters): one JSON list
            "type": "object-array",
            "shape": list(arr.shape),
            "items": [self.encode(v, f"{where}[{i}]") for i, v in enumerate(flat)],
        }

    def _sparse(self, mat: Any, where: str) -> dict[str, Any]:
        import scipy.sparse as sp

        fmt = mat.format
        if fmt not in ("csr", "csc", "coo"):
            mat = mat.tocsr()
            fmt = "csr"
        node: dict[str, Any] = {
            "type": "sparse", "format": fmt, "shape": list(mat.shape),
            "container": "array" if isinstance(mat, sp.sparray) else "matrix",
            "data": self._ndarray(mat.data, f"{where}.data"),
        }
        if fmt == "coo":
            node["row"] = self._ndarray(np.asarray(mat.row), f"{where}.row")
            node["col"] = self._ndarray(np.asarray(mat.col), f"{where}.col")
        else:
            node["indices"] = self._ndarray(mat.indices, f"{where}.indices")
            node["indptr"] = self._ndarray(mat.indptr, f"{where}.indptr")
        return node

    def _dataframe(self, df: Any, where: str) -> dict[str, Any]:
        import pandas as pd

        if not df.columns.is_unique:
            raise TypeError(f"Cannot save {where}: a DataFrame with duplicate column names.")
        index = df.index
        if isinstance(index, pd.RangeIndex):
            inode: dict[str, Any] = {"type": "range-index", "start": int(index.start),
                                     "stop": int(index.stop), "step": int(index.step)}
        elif isinstance(index, pd.MultiIndex):
            raise TypeError(f"Cannot save {where}: a DataFrame with a MultiIndex.")
        else:
            inode = {"type": "index", "dtype": str(index.dtype),
                     "values": self._ndarray(index.to_numpy(), f"{where}.index")}
        inode["name"] = self.encode(index.name, f"{where}.index.name")
        columns = []
        for name in df.columns:
            col = df[name]
            columns.append({
                "name": self.encode(name, f"{where}.columns"),
                "dtype": str(col.dtype),
                "values": self._ndarray(col.to_numpy(), f"{where}[{name!r}]"),
            })
        return {"type": "dataframe", "index": inode, "columns": columns}

    def _dataclass(self, obj: Any, where: str) -> dict[str, Any]:
        cls = type(obj)
        path = f"{cls.__module__}:{cls.__qualname__}"
        if path not in _STATE_CLASSES:
            self._unsupported(obj, where)
        fields = dataclasses.fields(obj)
        if any(not f.init for f in fields):  # pragma: no cover - no such state class yet
            raise TypeError(f"Cannot save {where}: {path} has fields outside __init__.")
        return {
            "type": "dataclass", "class": path,
            "fields": {f.name: self.encode(getattr(obj, f.name), f"{where}.{f.name}")
                       for f in fields},
        }

    def estimator(self, model: Any, where: str) -> dict[str, Any]:
        _check_fitted(model)
        path, name = _identify(model)
        params = model.get_params(deep=False)
        state = {a: v for a, v in vars(model).items() if a not in params}
        node: dict[str, Any] = {"type": "estimator", "class": path, "name": name}
        if path == _CLASSIFIER:
            if not isinstance(params["model"], str):
                raise TypeError(
                    "Cannot save a SoftLabelClassifier whose model is a callable: only "
                    "model='linear' or 'mlp' can be rebuilt on load."
                )
            # the torch module, its dtype and device are rebuilt from the parameters
            state = {a: v for a, v in state.items() if a not in _TORCH_STATE}
        node["params"] = {}
        for p, v in params.items():
            try:
                node["params"][p] = self.encode(v, f"parameter {p!r} of {where}")
            except TypeError as err:
                raise TypeError(
                    f"{err} Set a storable value before saving, e.g. "
                    f"model.set_params({p}=None) (or an int seed for random_state)."
                ) from None
        node["attributes"] = {a: self.encode(v, f"attribute {a!r} of {where}")
                              for a, v in state.items()}
        if path == _CLASSIFIER:  # the module's weights, as arrays
            node["attributes"]["module_"] = {"type": "torch-state", "weights": {
                name: self.array(t.detach().to("cpu").numpy().copy())
                for name, t in model.module_.state_dict().items()
            }}
        return node


def _snapshot(model: Any) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    import wsagg

    _check_fitted(model)
    enc = _Encoder()
    node = enc.estimator(model, "the model")
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "wsagg_version": wsagg.__version__,
        "estimator": node,
        "classes": _plain(getattr(model, "classes_", None)),
        "source_names": _plain(getattr(model, "source_names_", None)),
    }
    return meta, enc.arrays


def _plain(ids: Any) -> Any:
    """A JSON-able copy of ``classes_`` / ``source_names_`` for readers of the metadata."""
    if ids is None:
        return None
    out = []
    for v in np.asarray(ids, dtype=object).ravel().tolist():
        if isinstance(v, np.generic):
            v = v.item()
        out.append(v if isinstance(v, str | int | float | bool) or v is None else str(v))
    return out


# ----------------------------------------------------------------------------------------
# loading: (JSON description, arrays) -> objects
# ----------------------------------------------------------------------------------------
def _check_format(meta: dict[str, Any], where: str) -> None:
    fmt = meta.get("format")
    if fmt != FORMAT_NAME:
        raise ModelFileError(
            f"{where} is not a wsagg model file (format {fmt!r}, expected {FORMAT_NAME!r})."
        )
    version = meta.get("format_version")
    if type(version) is not int or version < 1:
        raise ModelFileError(f"{where}: invalid format_version {version!r}.")
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{where} has model format version {version}, newer than version "
            f"{FORMAT_VERSION} that wsagg {_version()} reads; upgrade wsagg to load it."
        )


def _version() -> str:
    import wsagg

    return wsagg.__version__


def _read_npz(payload: bytes, where: str) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}
    try:
        with np.load(io.BytesIO(payload), allow_pickle=False) as z:
            for key in z.files:
                arrays[key] = z[key]
    except ValueError as err:  # an object (pickled) array, refused by allow_pickle=False
        raise ModelFileError(
            f"{where}: arrays.npz holds an array that needs pickle, which wsagg never "
            f"loads ({err})."
        ) from None
    except (OSError, EOFError, zipfile.BadZipFile) as err:
        raise ModelFileError(f"{where}: arrays.npz is not a readable .npz ({err}).") from None
    return arrays


class _Decoder:
    def __init__(self, arrays: dict[str, np.ndarray], where: str) -> None:
        self.arrays = arrays
        self.where = where
        self.used: set[str] = set()

    def fail(self, what: str) -> ModelFileError:
        return ModelFileError(f"{self.where}: {what}; the file is damaged or was modified.")

    def node(self, node: Any, what: str) -> dict[str, Any]:
        if not isinstance(node, dict) or not isinstance(node.get("type"), str):
            raise self.fail(f"{what} has no valid description")
        return node

    def decode(self, node: Any, what: str) -> Any:
        node = self.node(node, what)
        t = node["type"]
        try:
            if t == "none":
                return None
            if t in ("bool", "int", "str"):
                value = node["value"]
                if type(value) is not {"bool": bool, "int": int, "str": str}[t]:
                    raise self.fail(f"{what} is not a {t}")
                return value
            if t == "float":
                value = node["value"]
                if value in ("nan", "inf", "-inf"):
                    return float(value)
                if type(value) not in (int, float):
                    raise self.fail(f"{what} is not a float")
                return float(value)
            if t in ("list", "tuple"):
                items = [self.decode(v, f"{what}[{i}]") for i, v in enumerate(node["items"])]
                return items if t == "list" else tuple(items)
            if t == "dict":
                if not isinstance(node["items"], dict):
                    raise self.fail(f"{what} is not a dict")
                return {k: self.decode(v, f"{what}[{k!r}]") for k, v in node["items"].items()}
            if t == "ndarray":
                return self.ndarray(node, what)
            if t == "object-array":
                items = [self.decode(v, f"{what}[{i}]") for i, v in enumerate(node["items"])]
                shape = tuple(int(s) for s in node["shape"])
                arr = np.empty(len(items), dtype=object)
                arr[:] = items
                return arr.reshape(shape)
            if t == "numpy-dtype":
                return _safe_dtype(node["dtype"])
            if t == "numpy-type":
                return _safe_dtype(node["name"]).type
            if t == "sparse":
                return self.sparse(node, what)
            if t == "dataframe":
                return self.dataframe(node, what)
            if t == "dataclass":
                return self.dataclass(node, what)
            if t == "estimator":
                return self.estimator(node, what)
        except (KeyError, TypeError, ValueError) as err:
            if isinstance(err, ModelFileError):
                raise
            raise self.fail(f"{what} cannot be rebuilt ({type(err).__name__}: {err})") from None
        raise self.fail(f"{what} has the unknown type {t!r}")

    def ndarray(self, node: dict[str, Any], what: str) -> Any:
        key = node["key"]
        if key not in self.arrays or key in self.used:
            raise self.fail(f"{what} refers to a missing array {key!r}")
        self.used.add(key)
        arr = self.arrays[key]
        if arr.dtype.str != node["dtype"] or list(arr.shape) != list(node["shape"]):
            raise self.fail(
                f"{what} is described as {node['dtype']} {tuple(node['shape'])} but the "
                f"array is {arr.dtype.str} {arr.shape}"
            )
        if node.get("object"):
            return arr.astype(object)
        if node.get("scalar"):
            return arr[()]
        return arr

    def sparse(self, node: dict[str, Any], what: str) -> Any:
        import scipy.sparse as sp

        fmt, shape = node["format"], tuple(int(s) for s in node["shape"])
        kinds = {"csr": (sp.csr_matrix, sp.csr_array), "csc": (sp.csc_matrix, sp.csc_array),
                 "coo": (sp.coo_matrix, sp.coo_array)}
        if fmt not in kinds or node["container"] not in ("matrix", "array"):
            raise self.fail(f"{what} is an unknown sparse format {fmt!r}")
        cls = kinds[fmt][node["container"] == "array"]
        data = self.decode(node["data"], f"{what}.data")
        if fmt == "coo":
            row = self.decode(node["row"], f"{what}.row")
            col = self.decode(node["col"], f"{what}.col")
            return cls((data, (row, col)), shape=shape)
        indices = self.decode(node["indices"], f"{what}.indices")
        indptr = self.decode(node["indptr"], f"{what}.indptr")
        return cls((data, indices, indptr), shape=shape)

    def dataframe(self, node: dict[str, Any], what: str) -> Any:
        import pandas as pd
        from pandas.api.types import pandas_dtype

        inode = node["index"]
        if inode["type"] == "range-index":
            index = pd.RangeIndex(int(inode["start"]), int(inode["stop"]), int(inode["step"]))
        elif inode["type"] == "index":
            values = self.decode(inode["values"], f"{what}.index")
            index = pd.Index(values, dtype=pandas_dtype(inode["dtype"]))
        else:
            raise self.fail(f"{what} has an unknown index type")
        index.name = self.decode(inode["name"], f"{what}.index.name")
        data = {}
        for col in node["columns"]:
            name = self.decode(col["name"], f"{what}.columns")
            values = self.decode(col["values"], f"{what}[{name!r}]")
            data[name] = pd.Series(values, index=index, dtype=pandas_dtype(col["dtype"]))
        return pd.DataFrame(data, index=index)

    def dataclass(self, node: dict[str, Any], what: str) -> Any:
        path = node["class"]
        if path not in _STATE_CLASSES:
            raise ModelFileError(
                f"{self.where}: {what} names the class {path!r}, which wsagg does not load "
                "from a model file."
            )
        cls = _resolve(path)
        names = {f.name for f in dataclasses.fields(cls) if f.init}
        fields = node["fields"]
        if not isinstance(fields, dict) or set(fields) - names:
            raise self.fail(f"{what} has fields {sorted(fields)} that {path} does not have")
        return cls(**{k: self.decode(v, f"{what}.{k}") for k, v in fields.items()})

    def estimator(self, node: Any, what: str) -> Any:
        node = self.node(node, what)
        if node["type"] != "estimator":
            raise self.fail(f"{what} is not an estimator")
        path = node.get("class")
        allowed = _allowed_classes()
        if not isinstance(path, str) or path not in allowed:
            raise ModelFileError(
                f"{self.where}: {what} names the class {path!r}, which is not a registered "
                "wsagg aggregator or SoftLabelClassifier; wsagg refuses to load it."
            )
        if node.get("name") != allowed[path]:
            raise self.fail(f"{what} has registry name {node.get('name')!r} for {path}")
        try:
            cls = _resolve(path)
        except ImportError as err:
            raise ModelFileError(
                f"{self.where}: {what} is a {path.partition(':')[2]}, which needs a missing "
                f"dependency ({err})."
            ) from None
        params_node, attrs_node = node.get("params"), node.get("attributes")
        if not isinstance(params_node, dict) or not isinstance(attrs_node, dict):
            raise self.fail(f"{what} has no parameters or attributes")
        params = {p: self.decode(v, f"parameter {p!r}") for p, v in params_node.items()}
        try:
            est = cls(**params)
            _validate_params(est)
        except Exception as err:  # a tampered parameter: sklearn's or our own message
            msg = " ".join(str(err).split())
            raise ModelFileError(
                f"{self.where}: the saved parameters of {cls.__name__} are invalid ({msg})."
            ) from None
        for a, v in attrs_node.items():
            if not _NAME.match(a) or a.startswith("__") or a in params:
                raise self.fail(f"{what} has an invalid attribute name {a!r}")
            if path == _CLASSIFIER and a == "module_":
                continue
            setattr(est, a, self.decode(v, f"attribute {a!r}"))
        if path == _CLASSIFIER:
            self._rebuild_module(est, attrs_node.get("module_"), what)
        return est

    def _rebuild_module(self, est: Any, node: Any, what: str) -> None:
        """SoftLabelClassifier: rebuild ``module_`` from the parameters and load the saved
        weights into it; ``_dtype`` and ``_device`` as ``fit`` sets them."""
        import torch

        from wsagg._torch import resolve_device

        node = self.node(node, f"{what}.module_")
        if node["type"] != "torch-state" or not isinstance(node.get("weights"), dict):
            raise self.fail(f"{what} has no module weights")
        weights = {k: torch.from_numpy(np.array(self.ndarray(v, f"weight {k!r}")))
                   for k, v in node["weights"].items()}
        try:
            est._dtype = torch.float64 if est.dtype == "float64" else torch.float32
            try:
                est._device = resolve_device(est.device)
            except ValueError as err:  # e.g. saved on a GPU, loaded where there is none
                msg = " ".join(str(err).split())
                raise ModelFileError(
                    f"{self.where}: the classifier was saved with device={est.device!r}, "
                    f"which this machine cannot use ({msg})."
                ) from None
            k = int(np.asarray(est.classes_).shape[0])
            module = est._build_module(int(est.n_features_in_), k, torch.Generator())
            module.load_state_dict(weights, strict=True)
        except (AttributeError, RuntimeError, TypeError) as err:
            msg = " ".join(str(err).split())[:300]
            raise self.fail(
                f"{what}'s module weights do not fit its architecture ({msg})"
            ) from None
        est.module_ = module.to(est._device).eval()


def _validate_params(est: Any) -> None:
    if getattr(est, "_parameter_constraints", None) is not None:
        est._validate_params()
    elif hasattr(est, "_check_params"):
        est._check_params()


def _safe_dtype(spec: Any) -> np.dtype:
    if not isinstance(spec, str):
        raise TypeError(f"dtype {spec!r} is not a string")
    dt = np.dtype(spec)
    if dt.kind not in _ARRAY_KINDS:
        raise ValueError(f"dtype {spec!r} is not stored by the model format")
    return dt


def _is_dataframe(value: Any) -> bool:
    pd = sys.modules.get("pandas")
    return pd is not None and isinstance(value, pd.DataFrame)
