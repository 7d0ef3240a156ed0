"""The ``wsagg`` command line: ``demo``, ``aggregate`` and ``analyze``.

Inputs (by file extension):

* ``.csv`` / ``.tsv`` / ``.parquet``: long format, one vote per row, with columns
  ``item, source, label`` (crowd-kit's ``task, worker, label`` also accepted; other names via
  ``--item-col/--source-col/--label-col``). A row whose label is ``-1`` or empty is an
  abstain (its item is kept); another negative or a fractional label is an error. With
  ``--wide``, a table whose rows are items and whose columns are sources (class ids, ``-1`` =
  abstain), the item ids in ``--item-col`` if given.
* ``.npz``: a scipy sparse matrix saved with ``scipy.sparse.save_npz`` (stored value =
  label + 1), or a dense array ``L`` saved with ``numpy.savez``.
* ``.npy``: a dense ``(n, m)`` array, ``-1`` = abstain.

Output (``-o``, by extension ``.csv``, ``.parquet`` or ``.npz``): one row per input item, in
input order, with the item id, one probability column per class and the predicted class. It
is written atomically (a temporary file, created with the umask's permissions, renamed into
place; removed — with any directory made for it — on an error, Ctrl-C or SIGTERM) and never
over an input, whatever path reaches it (``./..``, a symbolic or a hard link), ``--force`` or
not; an existing output file is only replaced with ``--force``.

Every failure ends in one line ``wsagg: error: ...`` and exit status 2 (no traceback; set
``WSAGG_DEBUG=1`` for one); Ctrl-C ends with exit status 130 and SIGTERM with 143. Input
files are checked before they are read: a truncated or corrupt ``.npz``/``.npy``/Parquet
file, or one declaring arrays larger than the file or than the memory budget
(``WSAGG_MEMORY_BUDGET``, default 80% of the available memory), is refused.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import os
import signal
import sys
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["main"]

_EPILOG = """examples:
  wsagg demo                                    # majority vote on the embedded dataset
  wsagg aggregate votes.csv -o soft_labels.csv  # votes.csv has columns item,source,label
  wsagg aggregate L.npz --method dawid-skene -o soft.parquet --param max_iter=200
  wsagg analyze votes.csv                       # per-source coverage/overlap/conflict
"""


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


class _Terminated(BaseException):
    """SIGTERM, raised in the main thread so that ``finally`` blocks clean up."""


# bytes of memory per dense cell / stored sparse entry / output item (per class) that a run
# needs at most: int64 copies and the vote arrays; posteriors, counts and the output frame
_BYTES_PER_CELL = 40
_BYTES_PER_ENTRY = 64
_BYTES_PER_ITEM_CLASS = 48
# an .npz declaring more than this, at more than this compression ratio, is refused
_BOMB_MIN_BYTES = 2**30
_BOMB_RATIO = 200
_READ_ERRORS = (zipfile.BadZipFile, EOFError, ValueError, OSError)


def _check_not_input(out: Path, inputs: list[Path]) -> None:
    """Refuse an output path that reaches an input file, by any path (``./..``, a symbolic
    link, a hard link)."""
    for src in inputs:
        same = out.resolve() == src.resolve()
        if not same and out.exists() and src.exists():
            with contextlib.suppress(OSError):
                same = os.path.samefile(src, out)
        if same:
            raise CLIError(
                f"the output path {str(out)!r} is the input file {str(src)!r}; refusing to "
                "overwrite the input (with or without --force): choose another output path"
            )


def _check_output_path(out: Path, force: bool) -> None:
    if out.is_dir():
        raise CLIError(f"output {str(out)!r} is a directory; give a file path, e.g. "
                       f"{str(out / 'soft_labels.csv')!r}")
    parent = next((p for p in (out.parent, *out.parent.parents) if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise CLIError(f"cannot create output {str(out)!r}: {str(parent)!r} is a file, "
                       "not a directory")
    if parent is not None and not os.access(parent, os.W_OK | os.X_OK):
        raise CLIError(f"cannot write output {str(out)!r}: directory {str(parent)!r} is not "
                       "writable; choose another output path")
    if out.exists() and not force:
        raise CLIError(f"output {str(out)!r} exists; choose another path or pass --force")
    suffix = out.suffix.lower()
    if suffix not in {".csv", ".parquet", ".npz"}:
        raise CLIError(f"unsupported output format {suffix!r}; use .csv, .parquet or .npz")


def _budget_check(n_bytes: float, what: str) -> None:
    from wsagg.labels import check_memory

    try:
        check_memory(n_bytes, what)
    except ValueError as err:
        raise CLIError(str(err)) from None


def _npy_header(fh: Any, what: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype declared by a ``.npy`` header (nothing else is read)."""
    from numpy.lib import format as npf

    try:
        version = npf.read_magic(fh)
        if version == (1, 0):
            shape, _, dtype = npf.read_array_header_1_0(fh)
        else:
            shape, _, dtype = npf.read_array_header_2_0(fh)
    except (ValueError, EOFError, OSError) as err:
        raise CLIError(f"{what} is not a valid .npy array (truncated or corrupt?): "
                       f"{str(err).splitlines()[0] if str(err) else type(err).__name__}"
                       ) from None
    if dtype.hasobject:
        raise CLIError(f"{what} holds Python objects, which wsagg does not load; save the "
                       "votes as an integer array")
    return tuple(int(d) for d in shape), dtype


def _nbytes(shape: tuple[int, ...], dtype: np.dtype) -> int:
    n = 1
    for d in shape:
        n *= d
    return n * dtype.itemsize


def _check_npy(path: Path) -> None:
    """A ``.npy`` file declares no more data than it holds, nor more than the budget."""
    with open(path, "rb") as fh:
        shape, dtype = _npy_header(fh, repr(path.name))
        offset = fh.tell()
    size = path.stat().st_size
    need = _nbytes(shape, dtype)
    if offset + need > size:
        raise CLIError(
            f"{path.name!r} is truncated or corrupt: its header declares a {shape} {dtype} "
            f"array ({need:,} bytes) but the file holds {size - offset:,} bytes of data"
        )
    _budget_check(_cells(shape) * _BYTES_PER_CELL, f"loading {path.name!r} ({shape} votes)")


def _cells(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _check_npz(path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """The members' declared shapes of a ``.npz``, checked against what the archive holds
    (its directory's sizes) and against the memory budget, before anything is loaded."""
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        raise CLIError(f"{path.name!r} is not a valid .npz archive (truncated or corrupt?): "
                       f"{err}") from None
    shapes: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
    with zf:
        total = 0
        packed = 0
        for info in zf.infolist():
            if not info.filename.endswith(".npy"):
                continue
            name = info.filename[:-4]
            try:
                with zf.open(info) as fh:
                    shape, dtype = _npy_header(fh, f"{path.name!r} member {name!r}")
                    header = fh.tell()
            except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
                raise CLIError(f"{path.name!r} is corrupt: {err}") from None
            need = _nbytes(shape, dtype)
            if header + need > info.file_size:
                raise CLIError(
                    f"{path.name!r} is truncated or corrupt: member {name!r} declares a "
                    f"{shape} {dtype} array ({need:,} bytes) but holds "
                    f"{max(info.file_size - header, 0):,} bytes"
                )
            shapes[name] = (shape, dtype)
            total += need
            packed += info.compress_size
    if total > _BOMB_MIN_BYTES and total > _BOMB_RATIO * max(packed, 1):
        raise CLIError(
            f"{path.name!r} declares {total / 2**30:.3g} GiB of arrays packed into "
            f"{packed / 2**20:.3g} MiB (ratio {total / max(packed, 1):,.0f}:1): refusing a "
            "likely decompression bomb; save genuine mostly-abstain votes sparse "
            "(scipy.sparse.save_npz) or as .npy"
        )
    cells = 0
    if "L" in shapes:
        cells = _cells(shapes["L"][0]) * _BYTES_PER_CELL
    entries = max((_cells(s) for k, (s, _) in shapes.items() if k in {"data", "row", "col"}),
                  default=0) * _BYTES_PER_ENTRY
    _budget_check(max(total * 2, cells, entries), f"loading {path.name!r}")
    return shapes


def _read_input(path: Path, args: argparse.Namespace) -> Any:
    import pandas as pd
    import scipy.sparse as sp

    if not path.exists():
        raise CLIError(f"input file {str(path)!r} does not exist")
    if path.is_dir():
        raise CLIError(f"input {str(path)!r} is a directory; pass a label matrix file")
    suffix = path.suffix.lower()
    if suffix in {".csv", ".tsv", ".parquet"}:
        if suffix == ".parquet":
            _check_parquet(path)
            df = pd.read_parquet(path)
        else:
            try:
                df = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
            except pd.errors.EmptyDataError as err:
                raise CLIError(
                    f"input file {path.name!r} is empty; it needs a header row and one vote "
                    "per row"
                ) from err
        if args.wide:
            if args.item_col:
                if args.item_col not in df.columns:
                    raise CLIError(f"--item-col {args.item_col!r} is not a column of {path.name}")
                df = df.set_index(args.item_col)
            return ("wide", df)
        rename = {}
        for opt, canonical in ((args.item_col, "item"), (args.source_col, "source"),
                               (args.label_col, "label")):
            if opt:
                if opt not in df.columns:
                    raise CLIError(f"column {opt!r} is not in {path.name}: {list(df.columns)}")
                rename[opt] = canonical
        return ("long", df.rename(columns=rename))
    if suffix == ".npz":
        shapes = _check_npz(path)
        keys = set(shapes)
        if {"indptr", "indices", "data", "shape"} <= keys or {"row", "col", "data"} <= keys:
            declared = _declared_sparse_shape(path)
            if declared is not None:
                _budget_check(
                    declared[0] * 2 * _BYTES_PER_ITEM_CLASS,
                    f"aggregating {path.name!r} ({declared[0]:,} items x {declared[1]:,} "
                    "sources declared)",
                )
            return ("matrix", _guarded_read(path, lambda: sp.load_npz(path)))
        if "L" in keys:
            return ("matrix", _guarded_read(path, lambda: _npz_member(path, "L")))
        raise CLIError(
            f"{path.name} holds neither a scipy sparse matrix (scipy.sparse.save_npz) nor an "
            f"array named 'L' (numpy.savez(path, L=L)); keys: {sorted(keys)}"
        )
    if suffix == ".npy":
        _check_npy(path)
        return ("matrix", _guarded_read(path, lambda: np.load(path, allow_pickle=False)))
    raise CLIError(
        f"unsupported input format {suffix!r}; use .csv, .tsv, .parquet, .npz or .npy"
    )


def _npz_member(path: Path, name: str) -> np.ndarray:
    with np.load(path, allow_pickle=False) as z:
        return z[name]


def _guarded_read(path: Path, read: Any) -> Any:
    """``read()``, a corrupt archive (bad CRC, truncated stream) as one line."""
    import zlib

    try:
        return read()
    except (*_READ_ERRORS, zlib.error) as err:
        raise CLIError(f"{path.name!r} is corrupt or truncated: {_one_line(err)}") from None


def _declared_sparse_shape(path: Path) -> tuple[int, int] | None:
    with np.load(path, allow_pickle=False) as z:
        if "shape" not in z.files:
            return None
        shape = np.asarray(z["shape"]).ravel()
    if shape.shape != (2,) or shape.dtype.kind not in "iu" or (shape < 0).any():
        raise CLIError(f"{path.name!r} declares the sparse shape {shape.tolist()}; expected "
                       "two non-negative integers (n_items, n_sources)")
    return int(shape[0]), int(shape[1])


def _check_parquet(path: Path) -> None:
    """A Parquet file's footer is readable and its declared size fits the budget."""
    import pyarrow.parquet as pq

    try:
        meta = pq.read_metadata(path)
    except Exception as err:  # pyarrow raises ArrowInvalid / OSError for a corrupt file
        raise CLIError(f"{path.name!r} is not a valid Parquet file (truncated or corrupt?): "
                       f"{str(err).splitlines()[0] if str(err) else type(err).__name__}"
                       ) from None
    size = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    _budget_check(4.0 * size + meta.num_rows * _BYTES_PER_ITEM_CLASS,
                  f"loading {path.name!r} ({meta.num_rows:,} rows)")


def _to_label_matrix(kind_data: tuple[str, Any], args: argparse.Namespace) -> Any:
    from wsagg.labels import as_label_matrix

    kind, data = kind_data
    if kind == "wide":
        text = [str(c) for c in data.columns if data[c].dtype.kind not in "iufb"]
        if text:
            raise CLIError(
                f"--wide: column(s) {text} hold non-numeric values; a wide table holds class "
                f"ids (-1 = abstain). If {text[0]!r} holds item ids, pass --item-col "
                f"{text[0]}; for string labels use long format (item,source,label)"
            )
        lm = as_label_matrix(
            data.to_numpy(), n_classes=args.n_classes, source_names=list(data.columns)
        )
        from dataclasses import replace

        return replace(lm, item_ids=np.asarray(data.index))
    return as_label_matrix(data, n_classes=args.n_classes, duplicates=args.duplicates)


def _parse_params(items: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CLIError(f"--param takes KEY=VALUE; got {item!r}")
        try:
            params[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            params[key] = value
    return params


def _check_cli_method(method: str, params: dict[str, Any]) -> None:
    from wsagg._registry import AGGREGATORS

    spec = AGGREGATORS[method]
    if spec.needs_labels and not any(params.get(p) is not None for p in spec.label_free_params):
        alt = "".join(f", or pass --param {p}=..." for p in spec.label_free_params)
        raise CLIError(
            f"--method {method} needs known labels, which the command line does not take"
            f"{alt} (e.g. --param accuracy_bounds=[0.6,0.9]), or use the Python API: "
            f"{spec.class_name}().fit(L, y)"
        )


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def _signals_blocked() -> Any:
    """Hold SIGINT/SIGTERM for a few statements (creating or renaming the temporary file),
    so that the cleanup always knows whether there is a file to remove."""
    sigs = {signal.SIGINT, signal.SIGTERM}
    try:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _atomic_write(frame: Any, out: Path, force: bool, inputs: list[Path]) -> None:
    _check_not_input(out, inputs)
    _check_output_path(out, force)
    suffix = out.suffix.lower()
    missing = [p for p in (out.parent, *out.parent.parents) if not p.exists()]
    created: list[Path] = []
    tmp: str | None = None
    try:
        for d in reversed(missing):  # outermost first; removed again if the write fails
            try:
                d.mkdir()
            except OSError as err:
                raise CLIError(f"cannot create the output directory {str(d)!r}: "
                               f"{err.strerror or _one_line(err)}") from None
            created.append(d)
        with _signals_blocked():
            try:
                fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.",
                                           suffix=".tmp")
            except OSError as err:
                raise CLIError(f"cannot write output {str(out)!r}: "
                               f"{err.strerror or _one_line(err)}") from None
        try:
            os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 -> what open() would give
        finally:
            os.close(fd)
        if suffix == ".csv":
            frame.to_csv(tmp, index=False)
        elif suffix == ".parquet":
            frame.to_parquet(tmp, index=False)
        else:
            arrays = {str(c): frame[c].to_numpy() for c in frame.columns}
            arrays = {
                k: (v.astype(str) if v.dtype == object else v) for k, v in arrays.items()
            }
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, **arrays)
        with _signals_blocked():
            os.replace(tmp, out)
            tmp = None
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        for d in reversed(created):
            with contextlib.suppress(OSError):
                d.rmdir()
        raise


def _soft_label_frame(lm: Any, proba: np.ndarray, model: Any) -> Any:
    import pandas as pd

    frame = pd.DataFrame({"item": lm.item_ids})
    for c, cls in enumerate(model.classes_):
        frame[f"p_{cls}"] = proba[:, c]
    frame["label"] = model.classes_[model._argmax(proba)]
    return frame


def _cmd_aggregate(args: argparse.Namespace) -> int:
    from wsagg._registry import get_aggregator

    src = Path(args.input)
    out = Path(args.output)
    _check_not_input(out, [src])
    _check_output_path(out, args.force)  # before the fit: fail fast
    lm = _to_label_matrix(_read_input(src, args), args)
    _budget_check(
        float(lm.n_items) * lm.n_classes * _BYTES_PER_ITEM_CLASS + lm.n_votes * 24.0,
        f"aggregating {lm.n_items:,} items x {lm.n_classes:,} classes",
    )
    params = _parse_params(args.param)
    if args.n_classes is not None:
        params.setdefault("n_classes", lm.n_classes)
    _check_cli_method(args.method, params)
    model = get_aggregator(args.method, **params)
    proba = model.fit_predict_proba(lm)
    frame = _soft_label_frame(lm, proba, model)
    if frame.shape[0] != lm.n_items:  # pragma: no cover - invariant
        raise CLIError("internal error: row count changed")
    _atomic_write(frame, out, args.force, [src])
    print(
        f"wsagg: aggregated {lm.n_items} items x {lm.n_sources} sources "
        f"({lm.n_votes} votes, {lm.n_classes} classes) with {args.method} -> {out}"
    )
    if getattr(model, "explanation_", None):
        print(f"wsagg: {args.method}: {model.explanation_}")
    return 0


def _cmd_analyze(args: argparse.Namespace) -> int:
    import pandas as pd

    from wsagg.diagnostics import label_matrix_summary, source_summary

    src = Path(args.input)
    if args.output:
        _check_not_input(Path(args.output), [src])
        _check_output_path(Path(args.output), args.force)
    lm = _to_label_matrix(_read_input(src, args), args)
    summary = label_matrix_summary(lm)
    print(
        f"{summary['n_items']} items, {summary['n_sources']} sources, "
        f"{summary['n_classes']} classes, {summary['n_votes']} votes; "
        f"coverage {summary['coverage']:.3f}, overlap {summary['overlap']:.3f}, "
        f"conflict {summary['conflict']:.3f}"
    )
    table = source_summary(lm)
    with pd.option_context("display.max_rows", 500, "display.width", 120):
        print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    if args.output:
        out = Path(args.output)
        _atomic_write(table.reset_index(), out, args.force, [src])
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from wsagg._registry import get_aggregator
    from wsagg.datasets import load_demo
    from wsagg.metrics import evaluate

    data = load_demo(split=args.split)
    params = _parse_params(args.param)
    known = args.known_labels
    if known is None:  # the adversarial game needs labeled items: default to the valid split
        has_bounds = params.get("accuracy_bounds") is not None
        known = "valid" if args.method == "adversarial" and not has_bounds else "none"
    if known == "valid" and args.split == "valid":
        raise CLIError("--known-labels valid needs another --split to score (train or test)")
    model = get_aggregator(args.method, **params)
    if known == "valid":
        # stack the scored split (labels unknown) and the valid split (gold known), fit on
        # both, score the first block only: the known labels never touch the scored items
        from wsagg.labels import as_label_matrix

        labeled = load_demo(split="valid")
        stacked = as_label_matrix(np.vstack([data.dense(), labeled.dense()]),
                                  n_classes=data.n_classes)
        y_known = np.concatenate([np.full(data.L.n_items, -1), labeled.y])
        proba = model.fit_predict_proba(stacked, y_known)[: data.L.n_items]
    else:
        _check_cli_method(args.method, params)
        proba = model.fit_predict_proba(data.L)
    report = evaluate(data.y, proba, covered=data.L)
    from wsagg.metrics import accuracy

    covered_gold = np.where(data.L.covered(), data.y, -1)
    expected = accuracy(covered_gold, proba, ties="expected")
    print(
        f"wsagg demo: {data.name} ({args.split}): {data.L.n_items} items, "
        f"{data.L.n_sources} labeling functions, classes {list(data.class_names)}"
        + (" (the valid split's gold given as known labels)" if known == "valid" else "")
    )
    print(
        f"{args.method}: accuracy {report['accuracy']:.4f} against gold on {report['n_gold']} "
        f"items ({report['n_uncovered']} uncovered items scored with the class prior); "
        f"on covered items {report['accuracy_covered']:.4f}; "
        f"balanced accuracy {report['balanced_accuracy']:.4f}, "
        f"log loss {report['log_loss']:.4f}"
    )
    print(
        f"(ties broken to the lowest class index; scoring each tie by the accuracy a random "
        f"tie-break would get instead, as the data MANIFEST does: {expected:.4f} on covered "
        "items)"
    )
    if getattr(model, "explanation_", None):
        print(f"{args.method}: {model.explanation_}")
    return 0


def _add_input_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="label matrix file: .csv/.tsv/.parquet (long), .npz, .npy")
    p.add_argument("--n-classes", type=int, default=None, help="number of classes k")
    p.add_argument("--item-col", default=None, help="item id column (default item or task)")
    p.add_argument("--source-col", default=None, help="source column (default source or worker)")
    p.add_argument("--label-col", default=None, help="label column (default label)")
    p.add_argument("--wide", action="store_true",
                   help="table is items x sources (class ids, -1 = abstain), not long format")
    p.add_argument("--duplicates", default="count", choices=["count", "last", "first", "error"],
                   help="repeated votes by one source on one item (default: count every vote)")


def _cmd_methods(args: argparse.Namespace) -> int:
    from wsagg._registry import AGGREGATORS, method_parameters

    for name, spec in sorted(AGGREGATORS.items()):
        if args.method is not None and name != args.method:
            continue
        caps = [c for c, on in (("needs labels", spec.needs_labels),
                                ("semi-supervised", spec.semi_supervised),
                                ("partitioned", spec.partitioned),
                                ("binary only", spec.binary_only)) if on]
        print(f"{name}  ({spec.class_name}; {', '.join(caps) or 'unsupervised'}; "
              f"devices: {', '.join(spec.devices)})")
        print(f"    {spec.summary}")
        params = ", ".join(f"{k}={v!r}" for k, v in method_parameters(name).items())
        print(f"    --param: {params}")
    return 0


def _warning_line(message: Any, category: type, filename: str, lineno: int,
                  file: Any = None, line: Any = None) -> None:
    """Warnings on the command line: one line each, no source location."""
    print(f"wsagg: warning: {category.__name__}: {str(message).splitlines()[0]}",
          file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    from wsagg import __version__
    from wsagg._registry import AGGREGATORS

    parser = argparse.ArgumentParser(
        prog="wsagg",
        description="Aggregate noisy votes (labeling functions, crowd workers) into soft labels.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"wsagg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{demo,aggregate,analyze,methods}")
    methods = sorted(AGGREGATORS)
    method_help = "aggregator (default auto): " + "; ".join(
        f"{name} = {spec.summary}" for name, spec in sorted(AGGREGATORS.items())
    ) + ". Its parameters: wsagg methods."

    p = sub.add_parser("demo", help="aggregate the embedded dataset and score it against gold")
    p.add_argument("--method", default="auto", choices=methods)
    p.add_argument("--split", default="train", choices=["train", "valid", "test"])
    p.add_argument("--known-labels", default=None, choices=["none", "valid"],
                   help="fit with the valid split's gold as known labels (default: none; "
                        "valid for --method adversarial, which needs labeled items)")
    p.add_argument("--param", action="append", metavar="KEY=VALUE",
                   help="aggregator parameter (repeatable)")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("aggregate", help="write soft labels for every item of INPUT")
    _add_input_options(p)
    p.add_argument("-o", "--output", required=True, help="output file: .csv, .parquet or .npz")
    p.add_argument("--method", default="auto", choices=methods, help=method_help)
    p.add_argument("--param", action="append", metavar="KEY=VALUE",
                   help="aggregator parameter, e.g. --param max_iter=200 (repeatable)")
    p.add_argument("--force", action="store_true", help="replace an existing output file")
    p.set_defaults(func=_cmd_aggregate)

    p = sub.add_parser("methods", help="list the aggregators and their parameters")
    p.add_argument("method", nargs="?", choices=methods, help="only this method")
    p.set_defaults(func=_cmd_methods)

    p = sub.add_parser("analyze", help="print per-source diagnostics of INPUT")
    _add_input_options(p)
    p.add_argument("-o", "--output", default=None, help="also save the table (.csv/.parquet)")
    p.add_argument("--force", action="store_true", help="replace an existing output file")
    p.set_defaults(func=_cmd_analyze)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``wsagg`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    debug = os.environ.get("WSAGG_DEBUG", "") not in ("", "0")
    previous = _install_sigterm()
    old_showwarning = warnings.showwarning
    warnings.showwarning = _warning_line
    try:
        return int(args.func(args))
    except CLIError as err:
        print(f"wsagg: error: {_one_line(err)}", file=sys.stderr)
    except KeyboardInterrupt:
        print("wsagg: interrupted; nothing was written", file=sys.stderr)
        return 130
    except _Terminated:
        print("wsagg: terminated (SIGTERM); nothing was written", file=sys.stderr)
        return 143
    except MemoryError:
        if debug:
            raise
        print("wsagg: error: out of memory; the input is too large for this machine (see "
              "WSAGG_MEMORY_BUDGET)", file=sys.stderr)
    except (ValueError, TypeError, KeyError, OSError) as err:
        if debug:
            raise
        print(f"wsagg: error: {_one_line(err)}", file=sys.stderr)
    except Exception as err:  # anything else is still one line, never a traceback
        if debug:
            raise
        print(f"wsagg: error: {type(err).__name__}: {_one_line(err)}", file=sys.stderr)
    finally:
        warnings.showwarning = old_showwarning
        _restore_sigterm(previous)
    return 2


def _one_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _raise_terminated(signum: int, frame: Any) -> None:
    raise _Terminated()


def _install_sigterm() -> Any:
    try:
        return signal.signal(signal.SIGTERM, _raise_terminated)
    except (ValueError, OSError):  # not the main thread: leave the handler alone
        return None


def _restore_sigterm(previous: Any) -> None:
    if previous is not None:
        with contextlib.suppress(ValueError, OSError):
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
