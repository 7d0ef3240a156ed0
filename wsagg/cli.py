"""The ``wsagg`` command line: ``aggregate``, ``fit``, ``predict``, ``analyze``, ``report``,
``methods`` and ``demo`` (every option, format and exit status: ``docs/cli.md``).

Inputs (by file extension; ``-`` reads a text table from standard input):

* ``.csv`` (``,``), ``.tsv`` (tab), and ``.txt`` or any other text file (separator sniffed from
  the content; ``--sep`` sets it, ``--no-header`` for a file without a header row): long
  format, one vote per row, with columns ``item, source, label`` (crowd-kit's
  ``task, worker, label`` also accepted; other names via ``--item-col/--source-col/
  --label-col``). A row whose label is ``-1`` or empty is an abstain (its item is kept);
  another negative or a fractional label is an error. With ``--wide``, a table whose rows are
  items and whose columns are sources (class ids, ``-1`` or an empty cell = abstain), the
  item ids in ``--item-col`` if given; an unnamed first column (the index pandas' default
  ``to_csv()`` writes) holding distinct values is taken as the item ids, said in one line.
* ``.parquet``: the same tables (needs pyarrow: ``pip install 'wsagg[io]'``).
* ``.npz``: a scipy sparse matrix saved with ``scipy.sparse.save_npz`` (stored value =
  label + 1), or a dense array ``L`` saved with ``numpy.savez``.
* ``.npy``: a dense ``(n, m)`` array, ``-1`` = abstain.

``--abstain-value V`` (dense, wide and long input) reads the value ``V`` as the abstain
instead of ``-1``; with ``V = 0`` the votes ``1..k`` are the classes (class indices
``0..k-1``, labelled ``1..k`` in the output), and votes ``-1/+1`` (FlyingSquid's binary
convention) are the classes ``-1`` and ``1`` (indices 0 and 1). The output always shows the
user's own class values; ``--classes a,b,...`` names (and orders) the classes.

Output (``-o``, by extension ``.csv``, ``.tsv``, ``.parquet`` or ``.npz``; ``-o -`` writes CSV
to standard output and the status lines to standard error): one row per input item, in input
order, with the item id, one probability column per class and the predicted class. It is
validated before anything is read or fitted, written atomically (a temporary file, created
with the umask's permissions, renamed into place; removed — with any directory made for it —
on an error, Ctrl-C or SIGTERM) and never over an input, whatever path reaches it (``./..``,
a symbolic or a hard link), ``--force`` or not; an existing output file is only replaced with
``--force``.

Every failure ends in one line ``wsagg: error: ...`` and exit status 2 (no traceback; set
``WSAGG_DEBUG=1`` for one), a missing optional dependency included (the line names the extra
to install); Ctrl-C ends with exit status 130 and SIGTERM with 143. Input files are checked
before they are read: a truncated or corrupt ``.npz``/``.npy``/Parquet file, or one declaring
arrays larger than the file or than the memory budget (``WSAGG_MEMORY_BUDGET``, default 80% of
the available memory), is refused.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import csv
import difflib
import importlib
import io
import os
import re
import signal
import sys
import tempfile
import warnings
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from wsagg._atomic import umask

__all__ = ["main"]

_EPILOG = """examples:
  wsagg demo                                    # majority vote on the embedded dataset
  wsagg aggregate votes.csv -o soft_labels.csv  # votes.csv has columns item,source,label
  wsagg aggregate L.npz --method dawid-skene -o soft.parquet --param max_iter=200
  wsagg aggregate votes.csv --method adversarial --known-labels gold.csv -o soft.csv
  wsagg aggregate L.npy --abstain-value 0 -o soft.csv   # FlyingSquid's 0 = abstain
  cat votes.tsv | wsagg aggregate - -o - > soft.csv      # stdin / stdout
  wsagg fit votes.csv --method dawid-skene -o model.wsagg
  wsagg predict model.wsagg new_votes.csv -o soft.csv
  wsagg analyze votes.csv --gold gold.csv       # per-source coverage/overlap/conflict/accuracy
  wsagg report votes.csv --gold gold.csv -o report.html
  wsagg aggregate --method mace --help          # the method's parameters
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

# output formats per command
_SOFT_SUFFIXES = (".csv", ".tsv", ".parquet", ".npz")
_MODEL_SUFFIXES = (".wsagg",)
_REPORT_SUFFIXES = (".html", ".htm")
# what the command is doing now, named in a missing-dependency message
_STEP = ["Running this command"]
_SEPARATORS = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|",
               "space": " ", "whitespace": r"\s+"}
_UNKNOWN_TOKENS = ("", "-1", "nan", "NaN", "None", "NA", "<NA>")


# ------------------------------------------------------------------ small helpers


def _plain(value: Any) -> Any:
    """A NumPy scalar as the plain Python value (messages show ``0``, not ``np.int64(0)``)."""
    return value.item() if isinstance(value, np.generic) else value


def _plain_str(value: Any) -> str:
    """The text of a user's id or label, a whole float written as an integer (``1.0`` ->
    ``1``: a CSV column with empty cells is read as float)."""
    value = _plain(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _missing_dependency(module: str, what: str) -> str:
    """One line: what needs the missing ``module`` and the extra that installs it."""
    from wsagg._optional import missing_message

    try:
        return missing_message(module, what)
    except KeyError:  # not one of wsagg's optional dependencies
        top = module.split(".")[0]
        return f"{what} needs {top}, which is not installed: pip install {top}."


def _require(module: str, what: str) -> None:
    """Import ``module`` now, so that a missing optional dependency is one line naming the
    extra to install, before any work is done."""
    try:
        importlib.import_module(module)
    except ImportError:
        raise CLIError(_missing_dependency(module, what)) from None


@contextlib.contextmanager
def _step(what: str) -> Any:
    """Name what the command does inside the block (for a missing-dependency message)."""
    _STEP.append(what)
    try:
        yield
    except BaseException as err:
        if not hasattr(err, "_wsagg_step"):  # the innermost step that failed
            with contextlib.suppress(AttributeError, TypeError):
                err._wsagg_step = what  # type: ignore[union-attr]
        raise
    finally:
        _STEP.pop()


def _stdout_used(args: argparse.Namespace) -> bool:
    return getattr(args, "output", None) == "-"


def _status(args: argparse.Namespace, message: str) -> None:
    """A status line: standard output, or standard error when the result goes there."""
    print(message, file=sys.stderr if _stdout_used(args) else sys.stdout)


def _note(message: str) -> None:
    print(f"wsagg: note: {message}", file=sys.stderr)


def _warn(message: str) -> None:
    print(f"wsagg: warning: {message}", file=sys.stderr)


def _show_list(values: Any, limit: int = 8) -> str:
    shown = [_plain(v) for v in list(values)[:limit]]
    more = f" ... ({len(values)} in all)" if len(values) > limit else ""
    return f"{shown}{more}"


# ------------------------------------------------------------------ output paths


def _existing_input(spec: str, what: str = "input", missing: str = "",
                    instead: str = "a label matrix file") -> Path:
    """The ``what`` file named ``spec``; a one-line error when it is missing (``missing``:
    how to make one) or a directory (pass ``instead``)."""
    path = Path(spec)
    if not path.exists():
        raise CLIError(f"{what} file {str(path)!r} does not exist{missing}")
    if path.is_dir():
        raise CLIError(f"{what} {str(path)!r} is a directory; pass {instead}")
    return path


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


def _check_output_path(out: Path, force: bool,
                       suffixes: tuple[str, ...] = _SOFT_SUFFIXES) -> None:
    """Refuse, before any work, an output path that cannot be written: a directory, below a
    file, in an unwritable directory, existing without ``force``, or an unsupported format."""
    if out.is_dir():
        raise CLIError(f"output {str(out)!r} is a directory; give a file path, e.g. "
                       f"{str(out / ('out' + suffixes[0]))!r}")
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
    if suffix not in suffixes:
        names = ", ".join(suffixes[:-1]) + (" or " if len(suffixes) > 1 else "") + suffixes[-1]
        raise CLIError(f"unsupported output format {suffix!r}; use {names}")
    if suffix == ".parquet":
        _require("pyarrow", "Writing .parquet")


def _check_output(args: argparse.Namespace, inputs: list[Path],
                  suffixes: tuple[str, ...] = _SOFT_SUFFIXES,
                  stdout_ok: bool = True) -> Path | None:
    """The validated output path (``None`` for ``-o -``), checked before reading/fitting."""
    if args.output == "-":
        if not stdout_ok:
            raise CLIError(f"-o -: this command writes a {suffixes[0]} file, which cannot go "
                           "to standard output; give a file path")
        return None
    out = Path(args.output)
    _check_not_input(out, inputs)
    _check_output_path(out, args.force, suffixes)
    return out


def _input_paths(*specs: str | None) -> list[Path]:
    return [Path(s) for s in specs if s is not None and s != "-"]


# ------------------------------------------------------------------ reading votes


def _separator(value: str | None) -> str | None:
    if value is None:
        return None
    if value == "":
        raise CLIError("--sep is empty; give the column separator, e.g. --sep ',' or --sep tab")
    return _SEPARATORS.get(value.lower(), value)


def _sniff_separator(sample: str, name: str) -> str:
    """The column separator of a text table, from its first lines (``csv.Sniffer``, then
    runs of whitespace)."""
    lines = [line for line in sample.splitlines()[:50] if line.strip()]
    if len(lines) > 1 and not sample.endswith("\n"):
        lines = lines[:-1]  # the last line of the sample may be cut
    if not lines:
        return ","
    try:
        return csv.Sniffer().sniff("\n".join(lines), delimiters=",\t;|").delimiter
    except csv.Error:
        pass
    widths = {len(line.split()) for line in lines}
    if len(widths) == 1 and widths.pop() > 1:
        return r"\s+"
    if all(len(line.split()) == 1 for line in lines):
        return ","  # one column
    raise CLIError(f"cannot tell the column separator of {name}; pass --sep (e.g. --sep ',' "
                   "or --sep tab)")


def _text_sample(path: Path, name: str) -> str:
    with open(path, "rb") as fh:
        raw = fh.read(65536)
    if b"\0" in raw:
        raise CLIError(
            f"{name} is not a text table (it holds binary data) and its extension "
            f"{path.suffix.lower()!r} names no binary format; use .csv, .tsv, .txt (text), "
            ".parquet, .npz or .npy"
        )
    return raw.decode("utf-8", errors="replace")


def _read_table(spec: str, args: argparse.Namespace, *, header: bool | None = None,
                as_text: bool = False) -> tuple[Any, str]:
    """A text or Parquet table (``-`` = standard input) as a DataFrame, and its name.

    ``header=None`` follows ``--no-header``; ``as_text`` reads every cell as a string."""
    import pandas as pd

    use_header = (not args.no_header) if header is None else header
    if spec == "-":
        name = "<stdin>"
        text = sys.stdin.read()
        source: Any = io.StringIO(text)
        sample, suffix = text[:65536], ""
    else:
        path = _existing_input(spec)
        name = repr(path.name)
        suffix = path.suffix.lower()
        source = path
        if suffix == ".parquet":
            _require("pyarrow", "Reading .parquet")
            _check_parquet(path)
            df = pd.read_parquet(path)
            return (df.astype(str) if as_text else df), name
        sample = "" if suffix in {".csv", ".tsv"} and args.sep is None else (
            _text_sample(path, name))
    sep = _separator(args.sep) or {".csv": ",", ".tsv": "\t"}.get(suffix) or (
        _sniff_separator(sample, name))
    options: dict[str, Any] = {"sep": sep, "header": 0 if use_header else None}
    if len(sep) > 1:
        options["engine"] = "python"
    if as_text:
        options.update(dtype=str, keep_default_na=False)
    try:
        df = pd.read_csv(source, **options)
    except pd.errors.EmptyDataError as err:
        raise CLIError(
            f"input file {name} is empty; it needs a header row and one vote per row"
        ) from err
    except pd.errors.ParserError as err:
        raise CLIError(f"cannot parse {name} as a table with separator {sep!r}: "
                       f"{_one_line(err)} (pass --sep to set the separator)") from None
    return df, name


def _read_input(spec: str, args: argparse.Namespace) -> tuple[str, Any, str]:
    """``(kind, data, name)``: kind ``"long"`` / ``"wide"`` (a DataFrame) or ``"matrix"``
    (a dense or scipy sparse array)."""
    import scipy.sparse as sp

    suffix = "" if spec == "-" else Path(spec).suffix.lower()
    if suffix not in {".npz", ".npy"}:
        with _step(f"Reading {suffix or 'text'} input"):
            df, name = _read_table(spec, args)
        if args.no_header:
            if args.wide:
                df.columns = [str(c) for c in range(df.shape[1])]
            elif df.shape[1] == 3:
                df.columns = ["item", "source", "label"]
            else:
                raise CLIError(f"--no-header: a long table has exactly 3 columns (item, "
                               f"source, label, in that order); {name} has {df.shape[1]}")
        if args.wide:
            if args.item_col:
                if args.item_col not in df.columns:
                    raise CLIError(f"--item-col {args.item_col!r} is not a column of {name}: "
                                   f"{_show_list(df.columns)}")
                df = df.set_index(args.item_col)
            return "wide", df, name
        rename = {}
        for opt, canonical in ((args.item_col, "item"), (args.source_col, "source"),
                               (args.label_col, "label")):
            if opt:
                if opt not in df.columns:
                    raise CLIError(f"column {opt!r} is not in {name}: {list(df.columns)}")
                rename[opt] = canonical
        return "long", df.rename(columns=rename), name
    path = _existing_input(spec)
    name = repr(path.name)
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
            return "matrix", _guarded_read(path, lambda: sp.load_npz(path)), name
        if "L" in keys:
            return "matrix", _guarded_read(path, lambda: _npz_member(path, "L")), name
        raise CLIError(
            f"{path.name} holds neither a scipy sparse matrix (scipy.sparse.save_npz) nor an "
            f"array named 'L' (numpy.savez(path, L=L)); keys: {sorted(keys)}"
        )
    _check_npy(path)
    return "matrix", _guarded_read(path, lambda: np.load(path, allow_pickle=False)), name


# ------------------------------------------------------------------ votes -> LabelMatrix


def _unnamed(column: Any) -> bool:
    text = str(column).strip()
    return text == "" or re.fullmatch(r"Unnamed: 0(_level_0)?", text) is not None


def _parse_classes(value: str | None) -> list[str] | None:
    if value is None:
        return None
    names = [c.strip() for c in value.split(",")]
    if any(not c for c in names):
        raise CLIError(f"--classes {value!r} has an empty name; give comma-separated class "
                       "names, e.g. --classes neg,pos")
    if len(set(names)) < len(names):
        dup = next(c for c in names if names.count(c) > 1)
        raise CLIError(f"--classes names the class {dup!r} twice")
    if len(names) < 2:
        raise CLIError(f"--classes {value!r} names {len(names)} class; aggregation needs at "
                       "least 2")
    return names


def _abstain_number(value: str, name: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise CLIError(f"--abstain-value {value!r}: a dense or wide table holds numbers; give "
                       f"the number that means abstain in {name}, e.g. --abstain-value 0"
                       ) from None
    return number


def _dense_votes(arr: Any, args: argparse.Namespace, name: str
                 ) -> tuple[np.ndarray, np.ndarray | None]:
    """Dense votes as an int64 array with ``-1`` = abstain, and the user's class values when
    ``--abstain-value`` maps them (``None``: the values are the class ids)."""
    arr = np.asarray(arr)
    if arr.dtype.kind == "b":
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iuf":
        return arr, None  # as_label_matrix names the problem
    missing = np.isnan(arr) if arr.dtype.kind == "f" else np.zeros(arr.shape, dtype=bool)
    if arr.dtype.kind == "f":
        votes = arr[~missing]
        bad = votes[~np.isfinite(votes) | (votes != np.round(votes))]
        if bad.size:
            raise CLIError(f"{name} holds the value {_plain(bad[0])}; votes are whole class "
                           "ids (-1 = abstain), or pass --abstain-value")
    value = args.abstain_value
    if value is None:
        out = np.where(missing, -1, arr).astype(np.int64) if arr.dtype.kind == "f" else arr
        _warn_zero_abstain(out, name)
        return out, None
    v = _abstain_number(value, name)
    abstain = missing | (arr == v)
    if not (arr == v).any():
        _warn(f"no vote in {name} equals --abstain-value {_plain_str(v)}")
    rest = np.unique(arr[~abstain])
    if rest.size and rest.min() == -1 and set(rest.tolist()) <= {-1, 1}:
        _note(f"{name}: with --abstain-value {_plain_str(v)} the votes -1/+1 are the binary "
              "classes -1 and 1 (FlyingSquid's convention; class indices 0 and 1)")
        out = np.where(abstain, -1, (arr + 1) // 2).astype(np.int64)
        return out, np.array([-1, 1])
    if v == 0 and rest.size and rest.min() >= 1:
        k = int(rest.max())
        _note(f"{name}: with --abstain-value 0 the votes 1..{k} are the classes 1..{k} "
              f"(class indices 0..{k - 1})")
        out = np.where(abstain, -1, arr - 1).astype(np.int64)
        return out, None if args.classes else np.arange(1, max(k, args.n_classes or 0) + 1)
    if rest.size and rest.min() < 0:
        raise CLIError(
            f"with --abstain-value {_plain_str(v)}, {name} holds the votes "
            f"{_show_list(rest)}; votes are class ids 0..k-1, 1..k (with --abstain-value 0) "
            "or -1/+1"
        )
    return np.where(abstain, -1, arr).astype(np.int64), None


def _warn_zero_abstain(votes: np.ndarray, name: str) -> None:
    """One line when ``0`` looks like the abstain: the most common value by a wide margin, and
    no ``-1`` (or only the values -1, 0, 1, FlyingSquid's convention)."""
    if votes.size < 10 or votes.dtype.kind not in "iu":
        return
    flat = votes.reshape(-1)
    lo, hi = int(flat.min()), int(flat.max())
    if lo < -1 or hi > 10_000:
        return
    counts = np.bincount(flat - lo)
    zero = counts[-lo] if lo <= 0 <= hi else 0
    others = np.delete(counts, -lo) if lo <= 0 <= hi else counts
    if zero < 0.5 * flat.size or zero < 2 * (others.max() if others.size else 0):
        return
    if lo == -1 and hi > 1:
        return  # -1 is the abstain here and 0 a common class
    hint = ("; with votes -1/+1 (FlyingSquid), -1 and 1 are then the classes" if lo == -1
            else "; then 1..k are the classes")
    _warn(f"{name}: the value 0 fills {zero / flat.size:.0%} of the cells"
          + ("" if lo == -1 else " and no cell is -1 (abstain)")
          + f"; 0 may be your abstain: pass --abstain-value 0{hint}")


def _refuse_id_column(votes: np.ndarray, columns: list[Any], name: str) -> None:
    """A wide column holding a different value on every item is ids, not votes."""
    n, m = votes.shape
    if n < 3:
        return
    for j in range(m):
        col = votes[:, j]
        if int(col.min()) < 0 or int(col.max()) - int(col.min()) + 1 < n:
            continue
        if np.unique(col).size < n:
            continue
        others = np.delete(votes, j, axis=1)
        used = np.unique(others[others >= 0]).size
        if n > used:
            raise CLIError(
                f"--wide: column {_plain_str(columns[j])!r} of {name} has a different value on "
                f"each of its {n} items ({_plain(col.min())}..{_plain(col.max())}), like an "
                f"id column, not a source's votes; pass --item-col "
                f"{_plain_str(columns[j])} if it holds the item ids"
            )


def _check_k_vs_n(lm: Any, args: argparse.Namespace, name: str) -> None:
    if args.n_classes is None and args.classes is None and lm.n_items >= 3 and (
            lm.n_classes == lm.n_items):
        raise CLIError(
            f"{name} reads as {lm.n_classes} classes for {lm.n_items} items: a column of ids "
            "read as votes? Pass --item-col COLUMN (with --wide) for the item ids; if there "
            f"really are {lm.n_classes} classes, pass --n-classes {lm.n_classes}"
        )


def _dense_to_lm(values: Any, names: list[Any] | None, args: argparse.Namespace, name: str,
                 n_classes: int | None, check_ids: bool) -> Any:
    from wsagg.labels import as_label_matrix

    votes, user_classes = _dense_votes(values, args, name)
    classes = _parse_classes(args.classes)
    k = n_classes
    if classes is not None:
        if k is not None and k != len(classes):
            raise CLIError(f"--classes names {len(classes)} classes but --n-classes is {k}")
        k = len(classes)
    elif user_classes is not None:
        k = user_classes.shape[0] if k is None else k
    if check_ids and names is not None and votes.dtype.kind in "iu" and votes.ndim == 2 and (
            k is None):
        _refuse_id_column(votes, names, name)
    lm = as_label_matrix(votes, n_classes=k, source_names=names)
    if classes is not None:
        lm = replace(lm, classes=np.asarray(classes))
    elif user_classes is not None:
        if user_classes.shape[0] < lm.n_classes:
            user_classes = np.arange(user_classes[0], user_classes[0] + lm.n_classes)
        lm = replace(lm, classes=user_classes[: lm.n_classes])
    if check_ids:
        _check_k_vs_n(lm, args, name)
    return lm


def _long_to_lm(df: Any, args: argparse.Namespace, name: str, model: Any = None) -> Any:
    import pandas as pd

    from wsagg.labels import as_label_matrix

    classes: Any = _parse_classes(args.classes)
    n_classes = args.n_classes
    rename_to = None
    if "label" in df.columns and (args.abstain_value is not None or classes is not None):
        df = df.copy()
        lab = df["label"]
        if args.abstain_value is not None:
            text = lab.map(_plain_str)
            df["label"] = lab = lab.where(text != args.abstain_value.strip(), np.nan)
        if classes is not None:
            present = lab.notna() & ~lab.map(_plain_str).isin(_UNKNOWN_TOKENS[:2])
            text = lab[present].map(_plain_str)
            unknown = sorted(set(text) - set(classes))
            if not unknown:
                df["label"] = text.reindex(df.index)  # abstains NaN
            elif pd.api.types.is_numeric_dtype(lab) and text.isin(
                    [str(i) for i in range(len(classes))]).all():
                n_classes, rename_to, classes = len(classes), classes, None
            else:
                raise CLIError(f"{name}: the label {unknown[0]!r} is not one of --classes "
                               f"{','.join(classes)} (nor a class index 0..{len(classes) - 1})")
    if model is not None:
        classes, n_classes = model.classes_, None
        if rename_to is not None:
            raise CLIError("--classes renames class indices at fit time only; the model "
                           f"names its classes {_show_list(model.classes_)}")
        _check_long_sources(df, model, name)
    lm = as_label_matrix(df, n_classes=n_classes, classes=classes,
                         source_names=None if model is None else model.source_names_,
                         duplicates=args.duplicates)
    if rename_to is not None:
        lm = replace(lm, classes=np.asarray(rename_to))
    return lm


def _check_long_sources(df: Any, model: Any, name: str) -> None:
    col = next((c for c in ("source", "worker") if c in df.columns), None)
    if col is None:
        return
    known = {_plain_str(s) for s in model.source_names_}
    new = sorted({_plain_str(s) for s in df[col].unique()} - known)
    if new:
        raise CLIError(
            f"{name} has votes by {len(new)} source(s) the model was not fitted on (e.g. "
            f"{new[0]!r}); its sources: {_show_list(model.source_names_)}. Drop those votes, "
            "or refit with wsagg fit"
        )


def _to_label_matrix(kind_data: tuple[str, Any, str], args: argparse.Namespace,
                     model: Any = None) -> Any:
    """The votes read by :func:`_read_input` as a LabelMatrix (``model``: map them onto a
    fitted model's sources and classes, refusing any mismatch)."""
    from wsagg.labels import as_label_matrix

    kind, data, name = kind_data
    if kind == "long":
        return _long_to_lm(data, args, name, model)
    k = args.n_classes if model is None else model.n_classes_
    if kind == "wide":
        if not args.item_col and data.shape[1] >= 2 and _unnamed(data.columns[0]):
            first = data.columns[0]
            ids = data[first]
            if ids.notna().all() and ids.is_unique:
                data = data.set_index(first)
                data.index.name = None
                _note(f"{name}: its first column has no header (the index pandas' to_csv() "
                      "writes): read as the item ids, not as a source (--item-col COLUMN picks "
                      "another column)")
            else:
                raise CLIError(
                    f"--wide: the first column of {name} has no header and repeats values, so "
                    "it is neither the item ids nor a named source; name it in the header row "
                    "(or write the table with to_csv(index=False))"
                )
        text = [str(c) for c in data.columns if data[c].dtype.kind not in "iufb"]
        if text:
            raise CLIError(
                f"--wide: column(s) {text} hold non-numeric values; a wide table holds class "
                f"ids (-1 = abstain). If {text[0]!r} holds item ids, pass --item-col "
                f"{text[0]}; for string labels use long format (item,source,label)"
            )
        names = list(data.columns)
        if model is not None:
            _check_matrix_sources(names, model, name)
        floats = any(data[c].dtype.kind == "f" for c in data.columns)
        values = data.to_numpy(dtype=np.float64) if floats else data.to_numpy()
        lm = _dense_to_lm(values, names, args, name, k, check_ids=model is None)
        lm = replace(lm, item_ids=np.asarray(data.index))
    elif hasattr(data, "tocoo"):  # scipy sparse
        if args.abstain_value is not None:
            raise CLIError(f"--abstain-value applies to dense votes; {name} is a scipy sparse "
                           "matrix, whose absent entries are the abstains (stored value = "
                           "label + 1)")
        classes = _parse_classes(args.classes)
        if classes is not None:
            k = len(classes)
        if model is not None:
            _check_matrix_sources(None, model, name, data.shape[1])
        lm = as_label_matrix(data, n_classes=k)
        if classes is not None:
            lm = replace(lm, classes=np.asarray(classes))
        if model is None:
            _check_k_vs_n(lm, args, name)
    else:
        if model is not None:
            shape = np.shape(data)
            _check_matrix_sources(None, model, name, shape[1] if len(shape) == 2 else None)
        lm = _dense_to_lm(data, None, args, name, k, check_ids=model is None)
    if model is not None:
        lm = _onto_model(lm, model, name)
    return lm


def _check_matrix_sources(names: list[Any] | None, model: Any, name: str,
                          m: int | None = None) -> None:
    """The sources of dense/wide votes are the model's, in the model's order."""
    fitted = [_plain_str(s) for s in model.source_names_]
    if names is None:
        if m is not None and m != len(fitted):
            raise CLIError(f"{name} has {m} sources (columns) but the model was fitted on "
                           f"{len(fitted)}: {_show_list(model.source_names_)}")
        if fitted != [str(j) for j in range(len(fitted))]:
            raise CLIError(
                f"{name} has no source names but the model's sources are named "
                f"{_show_list(model.source_names_)}; give a --wide table whose columns are "
                "those names (or long format), so that no column is matched by position"
            )
        return
    got = [_plain_str(s) for s in names]
    if got == fitted:
        return
    if sorted(got) == sorted(fitted):
        raise CLIError(f"{name} has the model's sources in another order; reorder its "
                       f"columns as at fit: {_show_list(model.source_names_)}")
    extra = [s for s in got if s not in fitted]
    lacking = [s for s in fitted if s not in got]
    raise CLIError(
        f"the sources of {name} differ from the model's: "
        + (f"not fitted on {extra[:5]}" if extra else "")
        + ("; " if extra and lacking else "")
        + (f"missing {lacking[:5]}" if lacking else "")
        + f" (the model's sources: {_show_list(model.source_names_)})"
    )


def _onto_model(lm: Any, model: Any, name: str) -> Any:
    """Dense/wide votes under the model's source names and classes (the classes are the
    model's class indices; user class values must be the model's)."""
    if lm.n_classes != model.n_classes_:
        raise CLIError(f"{name} reads as {lm.n_classes} classes but the model has "
                       f"{model.n_classes_}: {_show_list(model.classes_)}")
    default = np.array_equal(lm.classes, np.arange(lm.n_classes))
    if not default and [_plain_str(c) for c in lm.classes] != [
            _plain_str(c) for c in model.classes_]:
        raise CLIError(f"{name}'s classes {_show_list(lm.classes)} are not the model's "
                       f"{_show_list(model.classes_)}")
    return replace(lm, classes=model.classes_, source_names=model.source_names_)


def _load_votes(args: argparse.Namespace, model: Any = None) -> tuple[Any, str]:
    data = _read_input(args.input, args)
    with _step("Reading the votes"):
        return _to_label_matrix(data, args, model), data[2]


# ------------------------------------------------------------------ known labels / gold


def _read_item_labels(spec: str, lm: Any, opt: str, args: argparse.Namespace) -> Any:
    """A two-column table ``item, label`` (header or not) as known labels for ``lm``: a
    pandas Series of class labels indexed by item id (items without a label are absent)."""
    import pandas as pd

    if spec == "-" and args.input == "-":
        raise CLIError(f"{opt} -: standard input already holds the votes; give a file")
    suffix = "" if spec == "-" else Path(spec).suffix.lower()
    if suffix in {".npy", ".npz"}:
        raise CLIError(f"{opt} takes a table with two columns, item and label (.csv, .tsv, "
                       f".txt or .parquet); got {suffix!r}")
    table_args = argparse.Namespace(sep=None, no_header=False)
    with _step(f"Reading {opt}"):
        df, name = _read_table(spec, table_args, header=suffix == ".parquet", as_text=True)
    df = df.astype(str)
    first = [str(v).strip() for v in df.iloc[0]] if len(df) else []
    item_text = [_plain_str(i) for i in lm.item_ids]
    pos_of = {s: i for i, s in enumerate(item_text)}
    class_text = [_plain_str(c) for c in lm.classes]
    code_of = {s: c for c, s in enumerate(class_text)}
    if suffix == ".parquet":
        header = [str(c).strip() for c in df.columns]
    elif first and first[0] not in pos_of and (len(first) < 2 or (
            first[1] not in code_of and first[1] not in _UNKNOWN_TOKENS)):
        header, df = first, df.iloc[1:]
    else:
        header = None
    if df.shape[1] < 2:
        raise CLIError(f"{opt} {name} has {df.shape[1]} column; it needs two: item and label")
    lower = [h.lower() for h in header] if header else []
    i_col = next((lower.index(h) for h in ("item", "task", "id") if h in lower), 0)
    l_col = next((lower.index(h) for h in ("label", "gold", "y", "true_label", "class")
                  if h in lower), 1 if i_col != 1 else 0)
    if df.shape[1] > 2 and not (header and {"item", "task", "id"} & set(lower)):
        raise CLIError(f"{opt} {name} has {df.shape[1]} columns; give two (item, label) or a "
                       "header naming the item and label columns")
    items = df.iloc[:, i_col].str.strip()
    labels = df.iloc[:, l_col].str.strip()
    if items.duplicated().any():
        dup = items[items.duplicated()].iloc[0]
        raise CLIError(f"{opt} {name}: item {dup!r} appears more than once; give one label "
                       "per item")
    pos = items.map(pos_of)
    unmatched = pos.isna()
    if len(items) and unmatched.all():
        raise CLIError(
            f"{opt} {name}: none of its items (e.g. {items.iloc[0]!r}) is an item of the votes "
            f"(e.g. {item_text[0]!r}); the first column holds the item ids of the votes file"
        )
    if unmatched.any():
        _warn(f"{opt} {name}: {int(unmatched.sum())} of its {len(items)} items (e.g. "
              f"{items[unmatched].iloc[0]!r}) are not items of the votes and are ignored")
    keep = ~unmatched & ~labels.isin(_UNKNOWN_TOKENS)
    codes = labels[keep].map(code_of)
    if codes.isna().any():
        bad = codes.isna()
        raise CLIError(
            f"{opt} {name}: the label {labels[keep][bad].iloc[0]!r} (item "
            f"{items[keep][bad].iloc[0]!r}) is not one of the classes {class_text} of the "
            "votes; pass --classes with every class (or --n-classes K)"
        )
    index = pd.Index(lm.item_ids[pos[keep].to_numpy(dtype=np.int64)])
    return pd.Series(lm.classes[codes.to_numpy(dtype=np.int64)], index=index)


def _known_labels(args: argparse.Namespace, lm: Any) -> Any:
    spec = getattr(args, "known_labels", None)
    return None if spec is None else _read_item_labels(spec, lm, "--known-labels", args)


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


def _atomic_write_with(out: Path, force: bool, inputs: list[Path],
                       write: Any) -> None:
    """Run ``write(tmp)`` on a temporary file next to ``out`` (created with the umask's
    permissions), then rename it onto ``out``; on any error, Ctrl-C or SIGTERM remove it and
    every directory made for it."""
    _check_not_input(out, inputs)
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
        mode = 0o666 & ~umask()  # mkstemp's 0600 -> what open() would give
        try:
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
        write(tmp)
        os.chmod(tmp, mode)  # a writer that replaced the file keeps the same permissions
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


def _write_frame(frame: Any, tmp: str, suffix: str) -> None:
    if suffix in {".csv", ".tsv"}:
        frame.to_csv(tmp, index=False, sep="\t" if suffix == ".tsv" else ",")
    elif suffix == ".parquet":
        frame.to_parquet(tmp, index=False)
    else:
        arrays = {str(c): frame[c].to_numpy() for c in frame.columns}
        arrays = {k: (v.astype(str) if v.dtype == object else v) for k, v in arrays.items()}
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)


def _atomic_write(frame: Any, out: Path, force: bool, inputs: list[Path]) -> None:
    """Write a DataFrame atomically to ``out`` (.csv, .tsv, .parquet or .npz)."""
    _check_output_path(out, force)
    suffix = out.suffix.lower()
    _atomic_write_with(out, force, inputs, lambda tmp: _write_frame(frame, tmp, suffix))


def _emit_frame(frame: Any, out: Path | None, args: argparse.Namespace,
                inputs: list[Path]) -> None:
    """The result table to ``out``, or as CSV to standard output (``-o -``)."""
    if out is None:
        frame.to_csv(sys.stdout, index=False)
        sys.stdout.flush()
    else:
        _atomic_write(frame, out, args.force, inputs)


def _soft_label_frame(lm: Any, proba: np.ndarray, model: Any) -> Any:
    import pandas as pd

    frame = pd.DataFrame({"item": lm.item_ids})
    for c, cls in enumerate(model.classes_):
        frame[f"p_{_plain_str(cls)}"] = proba[:, c]
    frame["label"] = model.classes_[model._argmax(proba)]
    return frame


# ------------------------------------------------------------------ methods and parameters


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


def _check_param_names(method: str, params: dict[str, Any]) -> None:
    from wsagg._registry import method_parameters

    valid = sorted(method_parameters(method))
    for key in params:
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise CLIError(f"--param {key}: --method {method} has no parameter {key!r}{hint} "
                           f"Its parameters: {', '.join(valid)} (see wsagg methods {method})")


def _check_cli_method(method: str, params: dict[str, Any], known: bool = False) -> None:
    from wsagg._registry import AGGREGATORS

    spec = AGGREGATORS[method]
    if known:
        return
    if spec.needs_labels and not any(params.get(p) is not None for p in spec.label_free_params):
        alt = "".join(f", or pass --param {p}=..." for p in spec.label_free_params)
        raise CLIError(
            f"--method {method} needs known labels: pass --known-labels FILE (two columns: "
            f"item, label){alt} (e.g. --param accuracy_bounds=[0.6,0.9])"
        )


def _make_model(args: argparse.Namespace, lm: Any, known: Any) -> Any:
    from wsagg._registry import get_aggregator, method_parameters

    params = _parse_params(args.param)
    _check_param_names(args.method, params)
    if args.n_classes is not None and "n_classes" in method_parameters(args.method):
        params.setdefault("n_classes", lm.n_classes)
    _check_cli_method(args.method, params, known is not None and len(known) > 0)
    return get_aggregator(args.method, **params)


def _method_parameter_lines(method: str) -> list[str]:
    from wsagg._registry import method_parameters

    return [f"  --param {k}={_plain(v)!r}" for k, v in method_parameters(method).items()]


# ------------------------------------------------------------------ commands


def _describe(lm: Any) -> str:
    return (f"{lm.n_items} items x {lm.n_sources} sources ({lm.n_votes} votes, "
            f"{lm.n_classes} classes)")


def _fit_from_args(args: argparse.Namespace, predict: bool = False
                   ) -> tuple[Any, Any, Any, str, np.ndarray | None]:
    """Read the votes and known labels, fit ``--method``; with ``predict`` also return the
    fitted posteriors (``fit_predict_proba``: known labels clamped where the model does)."""
    lm, name = _load_votes(args)
    known = _known_labels(args, lm)
    _budget_check(
        float(lm.n_items) * lm.n_classes * _BYTES_PER_ITEM_CLASS + lm.n_votes * 24.0,
        f"aggregating {lm.n_items:,} items x {lm.n_classes:,} classes",
    )
    model = _make_model(args, lm, known)
    with _step(f"Fitting --method {args.method}"):
        if predict:
            return model, lm, known, name, model.fit_predict_proba(lm, known)
        model.fit(lm, known)
    return model, lm, known, name, None


def _known_note(known: Any) -> str:
    return "" if known is None else f", {len(known)} known labels"


def _cmd_aggregate(args: argparse.Namespace) -> int:
    inputs = _input_paths(args.input, args.known_labels)
    out = _check_output(args, inputs)  # before reading and fitting: fail fast
    model, lm, known, _, proba = _fit_from_args(args, predict=True)
    frame = _soft_label_frame(lm, proba, model)
    if frame.shape[0] != lm.n_items:  # pragma: no cover - invariant
        raise CLIError("internal error: row count changed")
    _emit_frame(frame, out, args, inputs)
    _status(args, f"wsagg: aggregated {_describe(lm)}{_known_note(known)} with {args.method} "
                  f"-> {out if out is not None else '<stdout>'}")
    if getattr(model, "explanation_", None):
        _status(args, f"wsagg: {args.method}: {model.explanation_}")
    return 0


def _cmd_fit(args: argparse.Namespace) -> int:
    inputs = _input_paths(args.input, args.known_labels)
    out = _check_output(args, inputs, _MODEL_SUFFIXES, stdout_ok=False)
    assert out is not None
    model, lm, known, _, _ = _fit_from_args(args)
    with _step("Saving the model"):
        _atomic_write_with(out, args.force, inputs,
                           lambda tmp: model.save(tmp, overwrite=True))
    _status(args, f"wsagg: fitted {args.method} on {_describe(lm)}{_known_note(known)} -> "
                  f"{out}")
    if getattr(model, "explanation_", None):
        _status(args, f"wsagg: {args.method}: {model.explanation_}")
    return 0


def _load_model(spec: str) -> Any:
    path = _existing_input(spec, "model", " (write one with wsagg fit)",
                           "the file wsagg fit wrote")
    with _step("Loading the model"):
        from wsagg.persistence import load

        return load(path)


def _cmd_predict(args: argparse.Namespace) -> int:
    inputs = _input_paths(args.model, args.input)
    out = _check_output(args, inputs)
    model = _load_model(args.model)
    lm, _ = _load_votes(args, model=model)
    with _step("Predicting"):
        proba = model.predict_proba(lm)
    frame = _soft_label_frame(lm, proba, model)
    _emit_frame(frame, out, args, inputs)
    _status(args, f"wsagg: predicted {_describe(lm)} with {type(model).__name__} from "
                  f"{args.model} -> {out if out is not None else '<stdout>'}")
    return 0


def _cmd_analyze(args: argparse.Namespace) -> int:
    import pandas as pd

    from wsagg.diagnostics import label_matrix_summary, source_summary

    inputs = _input_paths(args.input, args.gold)
    out = _check_output(args, inputs) if args.output else None
    lm, _ = _load_votes(args)
    gold = None if args.gold is None else _read_item_labels(args.gold, lm, "--gold", args)
    summary = label_matrix_summary(lm)
    _status(args,
            f"{summary['n_items']} items, {summary['n_sources']} sources, "
            f"{summary['n_classes']} classes, {summary['n_votes']} votes; "
            f"coverage {summary['coverage']:.3f}, overlap {summary['overlap']:.3f}, "
            f"conflict {summary['conflict']:.3f}"
            + ("" if gold is None else f"; gold labels for {len(gold)} items"))
    table = source_summary(lm, y=gold)
    if not _stdout_used(args):
        with pd.option_context("display.max_rows", 500, "display.width", 120):
            print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    if args.output:
        _emit_frame(table.reset_index(), out, args, inputs)
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    inputs = _input_paths(args.input, args.known_labels, args.gold)
    out = _check_output(args, inputs, _REPORT_SUFFIXES)
    _require("matplotlib", "wsagg report (its plots)")
    model, lm, known, name, _ = _fit_from_args(args)
    gold = None if args.gold is None else _read_item_labels(args.gold, lm, "--gold", args)
    with _step("Writing the report"):
        from wsagg.reporting import report

        html = report(model, lm, y=known, gold=gold, path=None,
                      title=f"wsagg report: {name.strip(chr(39))} ({args.method})")
    if out is None:
        sys.stdout.write(html)
        sys.stdout.flush()
    else:
        def write(tmp: str) -> None:
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(html)

        _atomic_write_with(out, args.force, inputs, write)
    _status(args, f"wsagg: report on {_describe(lm)}{_known_note(known)} with {args.method} "
                  f"-> {out if out is not None else '<stdout>'}")
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


def _add_input_options(p: argparse.ArgumentParser, what: str = "INPUT") -> None:
    p.add_argument("input", help="votes: .csv/.tsv/.txt (text, separator sniffed), .parquet, "
                                 ".npz, .npy, or - for a text table on standard input")
    p.add_argument("--n-classes", type=int, default=None, help="number of classes k")
    p.add_argument("--classes", default=None, metavar="A,B,...",
                   help="class names in class order (string labels: their order; class ids "
                        "0..k-1: their names); also the output's probability columns")
    p.add_argument("--item-col", default=None, help="item id column (default item or task)")
    p.add_argument("--source-col", default=None, help="source column (default source or worker)")
    p.add_argument("--label-col", default=None, help="label column (default label)")
    p.add_argument("--wide", action="store_true",
                   help="table is items x sources (class ids, -1 = abstain), not long format")
    p.add_argument("--abstain-value", default=None, metavar="V",
                   help="the value that means abstain instead of -1 (e.g. 0, FlyingSquid's: "
                        "then 1..k, or -1/+1, are the classes)")
    p.add_argument("--sep", default=None,
                   help="column separator of a text input (default: ',' for .csv, tab for "
                        ".tsv, sniffed otherwise); 'tab' and 'whitespace' are accepted")
    p.add_argument("--no-header", action="store_true",
                   help="the text input has no header row (long: columns item, source, label)")
    p.add_argument("--duplicates", default="count", choices=["count", "last", "first", "error"],
                   help="repeated votes by one source on one item (default: count every vote)")


def _add_method_options(p: argparse.ArgumentParser, methods: list[str], method_help: str,
                        known: bool = True) -> None:
    p.add_argument("--method", default="auto", choices=methods, help=method_help)
    p.add_argument("--param", action="append", metavar="KEY=VALUE",
                   help="aggregator parameter, e.g. --param max_iter=200 (repeatable); "
                        "wsagg <command> --method M --help lists M's")
    if known:
        p.add_argument("--known-labels", default=None, metavar="FILE",
                       help="known labels: a table with two columns, item and label "
                            "(.csv/.tsv/.txt/.parquet, header optional); an empty label or -1 "
                            "= unknown")


def _cmd_methods(args: argparse.Namespace) -> int:
    from wsagg._registry import AGGREGATORS

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
        if args.method is not None:
            print("    parameters (--param KEY=VALUE; the defaults shown):")
            for line in _method_parameter_lines(name):
                print(f"    {line}")
        else:
            from wsagg._registry import method_parameters

            params = ", ".join(f"{k}={_plain(v)!r}" for k, v in method_parameters(name).items())
            print(f"    --param: {params}")
    return 0


def _warning_line(message: Any, category: type, filename: str, lineno: int,
                  file: Any = None, line: Any = None) -> None:
    """Warnings on the command line: one line each, no source location."""
    print(f"wsagg: warning: {category.__name__}: {str(message).splitlines()[0]}",
          file=sys.stderr)


_METHOD_COMMANDS = ("aggregate", "fit", "report", "demo")


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
    commands = "{aggregate,fit,predict,analyze,report,methods,demo}"
    sub = parser.add_subparsers(dest="command", metavar=commands)
    methods = sorted(AGGREGATORS)
    method_help = "aggregator (default auto): " + "; ".join(
        f"{name} = {spec.summary}" for name, spec in sorted(AGGREGATORS.items())
    ) + ". Its parameters: wsagg methods M, or --method M --help."
    subparsers: dict[str, argparse.ArgumentParser] = {}

    p = sub.add_parser("aggregate", help="write soft labels for every item of INPUT")
    _add_input_options(p)
    p.add_argument("-o", "--output", required=True,
                   help="output file: .csv, .tsv, .parquet or .npz (- = CSV on standard output)")
    _add_method_options(p, methods, method_help)
    p.add_argument("--force", action="store_true", help="replace an existing output file")
    p.set_defaults(func=_cmd_aggregate)
    subparsers["aggregate"] = p

    p = sub.add_parser("fit", help="fit an aggregator on INPUT and save it (.wsagg)")
    _add_input_options(p)
    p.add_argument("-o", "--output", required=True, help="model file to write: .wsagg")
    _add_method_options(p, methods, method_help)
    p.add_argument("--force", action="store_true", help="replace an existing model file")
    p.set_defaults(func=_cmd_fit)
    subparsers["fit"] = p

    p = sub.add_parser("predict", help="soft labels for INPUT from a model saved by wsagg fit")
    p.add_argument("model", help="model file written by wsagg fit (.wsagg)")
    _add_input_options(p)
    p.add_argument("-o", "--output", required=True,
                   help="output file: .csv, .tsv, .parquet or .npz (- = CSV on standard output)")
    p.add_argument("--force", action="store_true", help="replace an existing output file")
    p.set_defaults(func=_cmd_predict)
    subparsers["predict"] = p

    p = sub.add_parser("analyze", help="print per-source diagnostics of INPUT")
    _add_input_options(p)
    p.add_argument("--gold", default=None, metavar="FILE",
                   help="gold labels (two columns, item and label): adds each source's "
                        "correct/incorrect votes and empirical accuracy")
    p.add_argument("-o", "--output", default=None,
                   help="also save the table (.csv/.tsv/.parquet/.npz; - = CSV on standard "
                        "output, the summary line on standard error)")
    p.add_argument("--force", action="store_true", help="replace an existing output file")
    p.set_defaults(func=_cmd_analyze)
    subparsers["analyze"] = p

    p = sub.add_parser("report", help="fit, then write a self-contained HTML report")
    _add_input_options(p)
    _add_method_options(p, methods, method_help)
    p.add_argument("--gold", default=None, metavar="FILE",
                   help="gold labels (two columns, item and label) to score against")
    p.add_argument("-o", "--output", required=True, help="the report: .html (- = stdout)")
    p.add_argument("--force", action="store_true", help="replace an existing report")
    p.set_defaults(func=_cmd_report)
    subparsers["report"] = p

    p = sub.add_parser("methods", help="list the aggregators and their parameters")
    p.add_argument("method", nargs="?", choices=methods, help="only this method, with its "
                                                               "parameters")
    p.set_defaults(func=_cmd_methods)
    subparsers["methods"] = p

    p = sub.add_parser("demo", help="aggregate the embedded dataset and score it against gold")
    p.add_argument("--method", default="auto", choices=methods, help=method_help)
    p.add_argument("--split", default="train", choices=["train", "valid", "test"])
    p.add_argument("--known-labels", default=None, choices=["none", "valid"],
                   help="fit with the valid split's gold as known labels (default: none; "
                        "valid for --method adversarial, which needs labeled items)")
    p.add_argument("--param", action="append", metavar="KEY=VALUE",
                   help="aggregator parameter (repeatable)")
    p.set_defaults(func=_cmd_demo)
    subparsers["demo"] = p
    parser.set_defaults(_subparsers=subparsers)
    return parser


def _method_help(argv: list[str], parser: argparse.ArgumentParser) -> bool:
    """``wsagg <command> --method M --help``: the command's help, then M's parameters."""
    from wsagg._registry import AGGREGATORS

    if not argv or argv[0] not in _METHOD_COMMANDS or not ({"-h", "--help"} & set(argv)):
        return False
    method = None
    for i, a in enumerate(argv):
        if a == "--method" and i + 1 < len(argv):
            method = argv[i + 1]
        elif a.startswith("--method="):
            method = a.partition("=")[2]
    if method not in AGGREGATORS:
        return False
    sub = parser.get_default("_subparsers")[argv[0]]
    sub.print_help()
    spec = AGGREGATORS[method]
    print(f"\n--method {method} ({spec.class_name}): {spec.summary}")
    print("its parameters (--param KEY=VALUE; the defaults shown):")
    for line in _method_parameter_lines(method):
        print(line)
    return True


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``wsagg`` console script."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = os.environ.get("WSAGG_DEBUG", "") not in ("", "0")
    try:
        if _method_help(argv, parser):
            return 0
    except ImportError as err:
        print(f"wsagg: error: {_import_error_line(err)}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
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
    except BrokenPipeError:  # e.g. ``wsagg aggregate - -o - | head``: the reader left
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except _Terminated:
        print("wsagg: terminated (SIGTERM); nothing was written", file=sys.stderr)
        return 143
    except MemoryError:
        if debug:
            raise
        print("wsagg: error: out of memory; the input is too large for this machine (see "
              "WSAGG_MEMORY_BUDGET)", file=sys.stderr)
    except ImportError as err:
        if debug:
            raise
        print(f"wsagg: error: {_import_error_line(err)}", file=sys.stderr)
    except (ValueError, TypeError, KeyError, OSError) as err:
        if debug:
            raise
        cause = err.__cause__
        if isinstance(cause, ImportError):  # e.g. the registry's "method is not available"
            with contextlib.suppress(AttributeError, TypeError):
                cause._wsagg_step = getattr(err, "_wsagg_step", None)  # type: ignore
            print(f"wsagg: error: {_import_error_line(cause)}", file=sys.stderr)
        else:
            print(f"wsagg: error: {_one_line(err)}", file=sys.stderr)
    except Exception as err:  # anything else is still one line, never a traceback
        if debug:
            raise
        print(f"wsagg: error: {type(err).__name__}: {_one_line(err)}", file=sys.stderr)
    finally:
        warnings.showwarning = old_showwarning
        _restore_sigterm(previous)
    return 2


def _import_error_line(err: ImportError) -> str:
    """A missing optional dependency as one line naming the extra to install."""
    text = _one_line(err)
    if "pip install" in text:  # the library already says what to install
        return text
    name = err.name or ""
    if not name:
        found = re.search(r"No module named '([^']+)'", text) or re.search(
            r"import of (\S+) halted", text)
        name = found.group(1) if found else ""
    step = getattr(err, "_wsagg_step", None) or _STEP[-1]
    if not name:
        return f"{step} failed to import a dependency: {text}"
    return _missing_dependency(name, step)


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
