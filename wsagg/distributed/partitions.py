"""Votes in row partitions: the data side of the distributed engine (knows no model).

A :class:`VotePartitions` is a list of lazy loaders (``dask.delayed``), one per item
(row) partition, plus the global metadata (sources, classes). Inputs: a Dask array of dense
votes ``(n, m)`` (``-1`` = abstain, row chunks are the partitions), a Dask DataFrame (wide:
one column per source; or long: ``item, source, label`` indexed by item with known
divisions), a list of ``.npz`` / ``.parquet`` partition files (see :func:`save_partition`),
or a :class:`~wsagg.labels.LabelMatrix` cut into item chunks. Items must not straddle
partitions.

A loaded partition is a :class:`Chunk`: its votes as a :class:`~wsagg.labels.LabelMatrix`
with local item indices ``0..n_p-1`` and its known labels. :class:`PartitionMeta` holds
what every partition must agree on (``n_sources``, ``n_classes``, names).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from wsagg._optional import import_optional
from wsagg.exceptions import PartitionError
from wsagg.labels import LabelMatrix, _long_votes, as_label_matrix

__all__ = [
    "Chunk",
    "PartitionMeta",
    "VotePartitions",
    "as_partitions",
    "dense_to_label_matrix",
    "save_partition",
    "to_chunk",
]

_ENGINES = ("dask", "stream")



@dataclass
class Chunk:
    """The votes of one partition, items indexed locally ``0..n_p-1``."""

    lm: LabelMatrix
    known: np.ndarray | None  # (n_p,) class index, -1 unknown


@dataclass
class PartitionMeta:
    n_sources: int
    n_classes: int
    source_names: np.ndarray
    classes: np.ndarray


def dense_to_label_matrix(block: np.ndarray, meta: PartitionMeta, item_ids: Any) -> LabelMatrix:
    """A dense ``(n_p, m)`` block (``-1`` = abstain) as a LabelMatrix; empty blocks allowed."""
    block = np.asarray(block)
    if block.ndim != 2 or block.shape[1] != meta.n_sources:
        raise ValueError(
            f"expected a 2-D block with {meta.n_sources} columns (sources); got shape "
            f"{block.shape}."
        )
    if block.dtype.kind == "f":
        if np.isnan(block).any() or np.any(block != np.round(block)):
            raise ValueError(
                "votes contain NaN or non-integer values; encode abstains as -1 and classes "
                "as 0..k-1."
            )
    elif block.dtype.kind not in "iu":
        raise TypeError(
            f"votes have dtype {block.dtype}; expected integer class ids 0..k-1 with -1 for "
            "abstain."
        )
    vals = block.astype(np.int64, copy=False)
    bad = (vals < -1) | (vals >= meta.n_classes)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise ValueError(
            f"vote {int(vals[r, c])} at local row {int(r)}, source {int(c)} is outside "
            f"-1..{meta.n_classes - 1} (n_classes={meta.n_classes}; -1 = abstain)."
        )
    rows, cols = np.nonzero(vals >= 0)
    n = vals.shape[0]
    return LabelMatrix(
        item=rows.astype(np.int64),
        source=cols.astype(np.int64),
        label=vals[rows, cols],
        n_items=n,
        n_sources=meta.n_sources,
        n_classes=meta.n_classes,
        item_ids=np.arange(n) if item_ids is None else np.asarray(item_ids),
        source_names=meta.source_names,
        classes=meta.classes,
    )


def _long_to_lm(df: pd.DataFrame, meta: PartitionMeta) -> LabelMatrix:
    if len(df) == 0:
        return _empty_lm(meta)
    lm = as_label_matrix(df, classes=meta.classes, source_names=meta.source_names)
    return lm


def _empty_lm(meta: PartitionMeta) -> LabelMatrix:
    z = np.zeros(0, dtype=np.int64)
    return LabelMatrix(
        item=z, source=z, label=z, n_items=0, n_sources=meta.n_sources,
        n_classes=meta.n_classes, item_ids=z, source_names=meta.source_names,
        classes=meta.classes,
    )


def _check_known(y: Any, n: int, k: int) -> np.ndarray | None:
    if y is None:
        return None
    y = np.asarray(y)
    if y.shape != (n,):
        raise ValueError(f"known labels y have shape {y.shape} for a partition of {n} items.")
    if y.dtype.kind == "f":
        y = np.where(np.isnan(y), -1, y)
    y = y.astype(np.int64)
    if ((y < -1) | (y >= k)).any():
        raise ValueError(f"known labels y must be class ids 0..{k - 1} with -1 for unknown.")
    return y


# Raw partitions are tuples (kind, payload...) produced by the loaders below; to_chunk
# turns them into a Chunk once the global metadata is known.


def fingerprint(path: str) -> tuple[int, int, int]:
    """``(size, mtime_ns, inode)`` of a partition file: it changes when the file is
    rewritten or replaced (the loader tasks are keyed by it, and a file whose fingerprint
    changed during a fit is refused)."""
    st = os.stat(path)
    return (int(st.st_size), int(st.st_mtime_ns), int(st.st_ino))


def _load_file(path: str, y_column: str | None, expected: Any = None) -> tuple:
    """One partition file as a raw partition; any failure is a :class:`PartitionError`
    naming the file. ``expected``: the fingerprint taken when the fit started."""
    p = str(path)
    try:
        now = fingerprint(p)
    except OSError as err:
        raise PartitionError(
            f"partition file {p} cannot be read: {err.strerror or err}; it was there when the "
            "fit started"
        ) from err
    if expected is not None and tuple(expected) != now:
        raise PartitionError(
            f"partition file {p} changed during the fit (size, modification time or inode "
            "differ from when the fit started); refusing to mix two versions of the votes: "
            "rerun the fit once the file is final."
        )
    try:
        return _read_file(p, y_column)
    except (PartitionError, ImportError):  # ImportError: a missing extra, not a bad file
        raise
    except Exception as err:
        msg = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise PartitionError(
            f"partition file {p} cannot be read ({type(err).__name__}"
            + (f": {msg}" if msg else "") + "); is it truncated or corrupt?"
        ) from err


def _read_file(p: str, y_column: str | None) -> tuple:
    if p.endswith(".npz"):
        with np.load(p, allow_pickle=False) as f:
            keys = set(f.files)
            y = f["y"] if "y" in keys else None
            ids = f["item_ids"] if "item_ids" in keys else None
            if "L" in keys:
                return ("dense", f["L"], ids, y)
            if {"item", "source", "label"} <= keys:
                n = int(f["n_items"]) if "n_items" in keys else None
                return ("triples", f["item"], f["source"], f["label"], n, ids, y)
        raise ValueError(
            f"{p}: an npz partition needs an array 'L' (dense votes) or arrays 'item', "
            "'source', 'label' (see wsagg.distributed.save_partition)."
        )
    if p.endswith(".parquet") or p.endswith(".pq"):
        import_optional(
            "pyarrow", "Reading Parquet partition files", alternative="or use .npz files"
        )
        return _frame_raw(pd.read_parquet(p), y_column)
    raise ValueError(f"{p}: partition files must end in .npz or .parquet.")


def _frame_raw(df: pd.DataFrame, y_column: str | None) -> tuple:
    cols = set(map(str, df.columns))
    if {"source", "label"} <= cols or {"worker", "label"} <= cols:
        if "item" not in cols and "task" not in cols:
            df = df.reset_index()
            if "item" not in df.columns and "task" not in df.columns:
                df = df.rename(columns={df.columns[0]: "item"})
        if y_column is not None:
            raise ValueError(
                "known labels (y) are not supported with long-format partitions; use wide "
                "(one column per source) or npz partitions."
            )
        return ("long", df)
    y = None
    if y_column is not None:
        if y_column not in df.columns:
            raise ValueError(f"the known-label column {y_column!r} is not in the partition.")
        y = df[y_column].to_numpy()
        df = df.drop(columns=[y_column])
    return ("dense", df.to_numpy(), df.index.to_numpy(), y)


def _raw_summary(raw: tuple) -> tuple[Any, Any, Any]:
    """(distinct non-negative vote / known labels as an array, set of long-format sources or
    None, set of long labels or None)."""
    kind = raw[0]
    if kind == "dense":
        block = np.asarray(raw[1])
        votes = block[block >= 0] if block.size else block.reshape(-1)
        seen = [np.unique(votes)]
        y = raw[3]
        if y is not None and np.asarray(y).size:
            yv = np.asarray(y, dtype=float)
            yv = yv[np.isfinite(yv) & (yv >= 0)]
            seen.append(np.unique(yv))
        return np.unique(np.concatenate(seen)), None, None
    if kind == "triples":
        return np.unique(np.asarray(raw[3])), None, None
    df = raw[1]
    src = df["source" if "source" in df.columns else "worker"]
    lab, _ = _long_votes(df["label"].to_numpy())
    return np.zeros(0), set(pd.unique(src)), set(pd.unique(lab))


def to_chunk(raw: tuple, meta: PartitionMeta) -> Chunk:
    kind = raw[0]
    if kind == "dense":
        _, block, ids, y = raw
        lm = dense_to_label_matrix(block, meta, ids)
        return Chunk(lm, _check_known(y, lm.n_items, meta.n_classes))
    if kind == "triples":
        _, item, source, label, n, ids, y = raw
        item = np.asarray(item, dtype=np.int64)
        source = np.asarray(source, dtype=np.int64)
        label = np.asarray(label, dtype=np.int64)
        n = int(item.max()) + 1 if n is None and item.size else (n or 0)
        if item.size and (item.min() < 0 or item.max() >= n):
            raise ValueError(f"item indices must lie in 0..n_items-1 = 0..{n - 1}.")
        if source.size and (source.min() < 0 or source.max() >= meta.n_sources):
            raise ValueError(f"source indices must lie in 0..{meta.n_sources - 1}.")
        if label.size and (label.min() < 0 or label.max() >= meta.n_classes):
            raise ValueError(
                f"labels must lie in 0..{meta.n_classes - 1} (abstains are left out)."
            )
        lm = LabelMatrix(
            item=item, source=source, label=label, n_items=n, n_sources=meta.n_sources,
            n_classes=meta.n_classes, item_ids=np.arange(n) if ids is None else np.asarray(ids),
            source_names=meta.source_names, classes=meta.classes,
        )
        return Chunk(lm, _check_known(y, n, meta.n_classes))
    return Chunk(_long_to_lm(raw[1], meta), None)


# ----------------------------------------------------------------------------------------
# the partitioned data set
# ----------------------------------------------------------------------------------------



class VotePartitions:
    """Votes split into item (row) partitions, each loaded lazily where it is processed.

    Build one with a ``from_*`` constructor; pass it to :func:`fit` (or to
    ``DawidSkene().fit``), :func:`predict_proba` or :func:`write_posteriors`.

    Parameters
    ----------
    loaders : list of dask.delayed objects
        Each computes one raw partition (internal format).
    n_sources : int
        ``m``.
    n_classes, source_names, classes :
        Global metadata; what is not given is found by one metadata pass over the
        partitions at fit time.
    engine : {"dask", "stream"}, default="dask"
        ``"dask"``: partitions are processed in parallel by the Dask scheduler (``client``);
        ``"stream"``: one at a time in this process, bounded memory.
    client : distributed.Client, str or None
        A Dask client or a scheduler address (``"tcp://host:8786"``); ``None`` uses the
        default scheduler (the active ``distributed.Client`` if there is one).
    cache : bool or None
        Keep each partition's design matrix in (worker) memory between EM iterations.
        Default: ``True`` for ``"dask"``, ``False`` for ``"stream"`` (re-read every
        iteration: memory bounded by one partition).
    """

    __wsagg_partitions__ = True

    def __init__(
        self,
        loaders: list,
        *,
        n_sources: int | None,
        n_classes: int | None = None,
        source_names: Any = None,
        classes: Any = None,
        engine: str = "dask",
        client: Any = None,
        cache: bool | None = None,
        description: Sequence[str] | None = None,
    ) -> None:
        if engine not in _ENGINES:
            raise ValueError(f"engine must be one of {_ENGINES}; got {engine!r}.")
        self.loaders = list(loaders)
        self.n_sources = n_sources
        self.n_classes = n_classes
        self.source_names = None if source_names is None else np.asarray(source_names)
        self.classes = None if classes is None else np.asarray(classes)
        self.engine = engine
        self.client = client
        self.cache = (engine == "dask") if cache is None else bool(cache)
        self.description = (
            list(description)
            if description is not None
            else [f"partition {i}" for i in range(len(self.loaders))]
        )
        self._files: tuple[list[str], str | None] | None = None

    @property
    def n_partitions(self) -> int:
        return len(self.loaders)

    def __repr__(self) -> str:
        return (
            f"VotePartitions(n_partitions={self.n_partitions}, n_sources={self.n_sources}, "
            f"n_classes={self.n_classes}, engine={self.engine!r})"
        )

    # -- constructors ------------------------------------------------------------------
    @classmethod
    def from_dask_array(
        cls, X: Any, y: Any = None, *, n_classes: int | None = None, **kwargs: Any
    ) -> VotePartitions:
        """Dense votes ``(n, m)`` (``-1`` = abstain) as a Dask array; row chunks = partitions.

        ``y`` (optional known labels, ``-1`` unknown) is a NumPy or Dask array of length
        ``n``; it is cut like ``X``.
        """
        dask = import_optional("dask", "Partitioned fitting (wsagg.distributed)")
        da = import_optional("dask.array", "Partitioned fitting (wsagg.distributed)")

        if X.ndim != 2:
            raise ValueError(f"the Dask array of votes must be 2-D (n, m); got {X.ndim}-D.")
        if len(X.chunks[1]) > 1:
            X = X.rechunk({1: -1})  # a partition holds every source of its items
        blocks = X.to_delayed().ravel().tolist()
        offsets = np.concatenate([[0], np.cumsum(X.chunks[0])])
        if y is not None:
            y = da.asarray(y)
            if y.shape != (X.shape[0],):
                raise ValueError(
                    f"y has shape {y.shape} but the votes have {X.shape[0]} rows; give one "
                    "known label per item, -1 where unknown."
                )
            ys = y.rechunk((X.chunks[0],)).to_delayed().ravel().tolist()
        else:
            ys = [None] * len(blocks)
        loaders = [
            dask.delayed(_dense_raw)(b, int(offsets[i]), yi)
            for i, (b, yi) in enumerate(zip(blocks, ys, strict=True))
        ]
        desc = [f"rows {offsets[i]}..{offsets[i + 1] - 1}" for i in range(len(blocks))]
        return cls(
            loaders, n_sources=int(X.shape[1]), n_classes=n_classes, description=desc,
            **kwargs,
        )

    @classmethod
    def from_dask_dataframe(
        cls,
        df: Any,
        y: str | None = None,
        *,
        n_classes: int | None = None,
        source_names: Any = None,
        classes: Any = None,
        **kwargs: Any,
    ) -> VotePartitions:
        """A Dask DataFrame of votes; its partitions are the partitions.

        *Wide* (one column per source, one row per item, index = item ids, ``-1`` =
        abstain; ``y`` may name a column of known labels), or *long* (columns ``item,
        source, label`` or crowd-kit's ``task, worker, label``). Long format needs every
        item's votes in one partition: index the frame by item with known divisions
        (``df.set_index("item")``).
        """
        dask = import_optional("dask", "Partitioned fitting (wsagg.distributed)")

        cols = [str(c) for c in df.columns]
        long = "label" in cols and ("source" in cols or "worker" in cols)
        if long:
            item_col = next((c for c in ("item", "task") if c in cols), None)
            index_is_item = df.index.name in ("item", "task")
            if not (index_is_item and df.known_divisions):
                raise ValueError(
                    "A long-format Dask DataFrame must hold all votes of an item in one "
                    "partition: index it by item with known divisions, e.g. "
                    "df = df.set_index('item'), before fitting"
                    + (f" (it has an {item_col!r} column but not that index)." if item_col
                       else ".")
                )
            n_sources = None if source_names is None else len(source_names)
        else:
            n_sources = len(cols) - (1 if y is not None else 0)
            if source_names is None:
                source_names = [c for c in df.columns if c != y]
        loaders = [dask.delayed(_frame_raw)(p, y) for p in df.to_delayed()]
        return cls(
            loaders, n_sources=n_sources, n_classes=n_classes, source_names=source_names,
            classes=classes, **kwargs,
        )

    @classmethod
    def from_files(
        cls,
        paths: Sequence[str | os.PathLike],
        *,
        y_column: str | None = None,
        n_sources: int | None = None,
        n_classes: int | None = None,
        source_names: Any = None,
        classes: Any = None,
        **kwargs: Any,
    ) -> VotePartitions:
        """One partition per file: ``.npz`` (see :func:`save_partition`) or ``.parquet``
        (wide: one column per source, index = item ids; or long: ``item, source, label``).

        ``n_sources`` is read from the files when not given (npz: ``n_sources`` array,
        wide Parquet: the column count).
        """
        paths = [str(p) for p in paths]
        if not paths:
            raise ValueError("from_files needs at least one partition file.")
        for p in paths:
            if not os.path.exists(p):
                raise FileNotFoundError(f"partition file {p} does not exist.")
        if n_sources is None and source_names is not None:
            n_sources = len(source_names)
        if n_sources is None:
            n_sources = _peek_n_sources(paths[0], y_column)
        parts = cls(
            [], n_sources=n_sources, n_classes=n_classes, source_names=source_names,
            classes=classes, description=paths, **kwargs,
        )
        parts._files = (paths, y_column)
        parts.refresh()
        return parts

    def refresh(self) -> None:
        """Fingerprint the partition files now (size, modification time, inode) and key
        their loader tasks by it: a file repaired after a failed fit is read afresh (never a
        cached failure), and a file that changes during the fit is refused. Called when a
        fit starts; a no-op for partitions that are not files."""
        if self._files is None:
            return
        dask = import_optional("dask", "Partitioned fitting (wsagg.distributed)")

        paths, y_column = self._files
        loaders = []
        for p in paths:
            try:
                fp = fingerprint(p)
            except OSError as err:
                raise FileNotFoundError(f"partition file {p} does not exist.") from err
            loaders.append(dask.delayed(_load_file, pure=True)(p, y_column, fp))
        self.loaders = loaders

    @classmethod
    def from_label_matrix(
        cls, L: Any, y: Any = None, *, n_partitions: int = 4, **kwargs: Any
    ) -> VotePartitions:
        """Cut an in-memory label matrix into ``n_partitions`` item ranges (for testing the
        partitioned paths, or to stream an EM over an in-memory matrix chunk by chunk)."""
        dask = import_optional("dask", "Partitioned fitting (wsagg.distributed)")

        lm = as_label_matrix(L, y=y)
        bounds = np.linspace(0, lm.n_items, n_partitions + 1).round().astype(np.int64)
        order = np.argsort(lm.item, kind="stable")
        item_sorted = lm.item[order]
        cuts = np.searchsorted(item_sorted, bounds)
        yv = None if y is None else np.asarray(y)
        loaders = []
        for p in range(n_partitions):
            sel = order[cuts[p] : cuts[p + 1]]
            lo, hi = int(bounds[p]), int(bounds[p + 1])
            raw = (
                "triples", lm.item[sel] - lo, lm.source[sel], lm.label[sel], hi - lo,
                lm.item_ids[lo:hi], None if yv is None else yv[lo:hi],
            )
            loaders.append(dask.delayed(raw, traverse=False))
        return cls(
            loaders, n_sources=lm.n_sources, n_classes=lm.n_classes,
            source_names=lm.source_names, classes=lm.classes, **kwargs,
        )


def _dense_raw(block: np.ndarray, offset: int, y: Any) -> tuple:
    return ("dense", block, np.arange(offset, offset + block.shape[0]), y)


def _peek_n_sources(path: str, y_column: str | None) -> int:
    try:
        return _peek(path, y_column)
    except (ValueError, PartitionError, ImportError):  # ImportError: a missing extra
        raise
    except Exception as err:
        raise PartitionError(
            f"partition file {path} cannot be read ({type(err).__name__}: {err}); is it "
            "truncated or corrupt?"
        ) from err


def _peek(path: str, y_column: str | None) -> int:
    if path.endswith(".npz"):
        with np.load(path, allow_pickle=False) as f:
            if "n_sources" in f.files:
                return int(f["n_sources"])
            if "L" in f.files:
                return int(f["L"].shape[1])
        raise ValueError(f"{path} does not record n_sources; pass n_sources=m.")
    pq = import_optional(
        "pyarrow.parquet", "Reading Parquet partition files", alternative="or use .npz files"
    )

    names = [n for n in pq.read_schema(path).names if not n.startswith("__index")]
    if {"label"} <= set(names) and ({"source"} <= set(names) or {"worker"} <= set(names)):
        return -1  # long format: sources found in the metadata pass
    return len([n for n in names if n != y_column])


def save_partition(
    path: str | os.PathLike, L: Any, y: Any = None, *, item_ids: Any = None
) -> Path:
    """Write one partition of votes as a compact ``.npz`` (items, sources, labels as the
    smallest integer types that hold them; ``n_items``, ``n_sources``, ``n_classes``;
    optional known labels ``y`` and ``item_ids``). A dense ``(n_p, m)`` NumPy array
    (``-1`` = abstain, zero rows allowed) is stored as such (``L``, int8 when it fits)."""
    path = Path(path)
    extra = {}
    if y is not None:
        extra["y"] = np.asarray(y, dtype=np.int64)
    if item_ids is not None:
        extra["item_ids"] = np.asarray(item_ids)
    if isinstance(L, np.ndarray) and L.ndim == 2 and L.dtype.kind in "iu":
        hi = int(L.max()) if L.size else 0
        np.savez(path, L=L.astype(_small_int(hi)), n_sources=np.int64(L.shape[1]), **extra)
        return path
    lm = as_label_matrix(L)
    arrays = {
        "item": lm.item.astype(_small_int(lm.n_items)),
        "source": lm.source.astype(_small_int(lm.n_sources)),
        "label": lm.label.astype(_small_int(lm.n_classes)),
        "n_items": np.int64(lm.n_items),
        "n_sources": np.int64(lm.n_sources),
        "n_classes": np.int64(lm.n_classes),
    }
    np.savez(path, **arrays, **extra)
    return path


def _small_int(n: int) -> type:
    for t in (np.int8, np.int16, np.int32):
        if n <= np.iinfo(t).max:
            return t
    return np.int64


# ----------------------------------------------------------------------------------------
# any partitioned input -> VotePartitions
# ----------------------------------------------------------------------------------------


def as_partitions(L: Any, y: Any = None, n_classes: int | None = None) -> tuple[Any, Any]:
    """Wrap a Dask array / Dask DataFrame / list of files as :class:`VotePartitions`.

    Returns ``(partitions, y)`` where ``y`` is whatever still has to be passed on (a
    column name for wide frames is consumed here).
    """
    if isinstance(L, VotePartitions):
        if y is not None:
            raise ValueError(
                "Pass known labels when building the VotePartitions (y=... on from_* or in "
                "the partition files), not to fit()."
            )
        return L, None
    if isinstance(L, list | tuple) and L and all(isinstance(p, str | os.PathLike) for p in L):
        return VotePartitions.from_files(L, n_classes=n_classes, y_column=y), None
    da = import_optional("dask.array", "Partitioned fitting (wsagg.distributed)")
    dd = import_optional("dask.dataframe", "Partitioned fitting (wsagg.distributed)")

    if isinstance(L, da.Array):
        return VotePartitions.from_dask_array(L, y, n_classes=n_classes), None
    if isinstance(L, dd.DataFrame):
        if y is not None and not isinstance(y, str):
            raise ValueError(
                "For a Dask DataFrame, pass known labels as the name of one of its columns "
                "(y='column')."
            )
        return VotePartitions.from_dask_dataframe(L, y, n_classes=n_classes), None
    raise TypeError(
        f"Cannot partition votes of type {type(L).__name__}; pass a Dask array, a Dask "
        "DataFrame, a list of .npz/.parquet files or a wsagg.distributed.VotePartitions."
    )
