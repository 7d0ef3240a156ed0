"""Dawid-Skene EM beyond one process: map-reduce over row partitions, on Dask or streamed.

The EM iteration of :class:`wsagg.DawidSkene` only touches the votes through two sums over
items (see :mod:`wsagg.dawid_skene`): with ``X_p`` the design matrix of the items of row
partition ``p`` (the one-hot vote matrix, plus presence columns under ``abstain="model"``
with repeated votes), ``T`` the log-parameter table and ``b`` its constant row,

.. math::

    q^{(p)} = \\mathrm{softmax}_c\\big(X_p T + b\\big), \\qquad
    S = \\sum_p X_p^\\top q^{(p)}, \\qquad
    \\textstyle s = \\sum_p \\sum_{i \\in p} q^{(p)}_i, \\qquad
    \\ell = \\sum_p \\sum_{i \\in p} \\mathrm{logsumexp}_c\\big(X_p T + b\\big)_i .

So one iteration is a *map* (each partition runs its E-step and returns its sufficient
statistics: soft confusion counts ``X_p^T q`` of shape ``(m k [+ m], k)``, soft class counts
``(k,)`` and its log-likelihood) and a *reduce* (the driver sums them and runs the M-step of
:mod:`wsagg.dawid_skene` on ``O(m k^2)`` numbers). What crosses the network per iteration
does not grow with ``n``; the posteriors never leave the workers unless asked for, and
:func:`write_posteriors` writes them per partition to Parquet.

Two engines run the same map:

``"dask"``
    one task per partition on the current Dask scheduler, or on the ``client`` /
    scheduler address given (``distributed.LocalCluster`` or any cluster). Partition design
    matrices are persisted in worker memory after the first pass (``cache=True``), so later
    iterations only ship the parameter table.
``"stream"``
    out-of-core on one machine: partitions are loaded, used and dropped one at a time
    every iteration, so peak memory is one partition plus ``O(m k^2)``, whatever ``n`` is.

Both give the single-machine fit on the same data to rounding error (the sums are the same
numbers added in another order): posteriors, confusion matrices, class prior, objective
history and iteration count. Tested to ``1e-8`` in ``tests/test_distributed.py``.

Inputs (:class:`VotePartitions`): a Dask array of dense votes ``(n, m)`` (``-1`` = abstain,
row chunks are the partitions), a Dask DataFrame (wide: one column per source; or long:
``item, source, label`` indexed by item with known divisions), a list of ``.npz`` /
``.parquet`` partition files (see :func:`save_partition`), or a
:class:`~wsagg.labels.LabelMatrix` cut into item chunks. Items must not straddle
partitions.

Reference: A. P. Dawid and A. M. Skene (1979), JRSS C 28(1):20-28; the map-reduce form of
EM's sufficient statistics is that of C. Chu et al. (2006), "Map-Reduce for Machine
Learning on Multicore", NeurIPS.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from wsagg.labels import LabelMatrix, as_label_matrix

__all__ = [
    "PartitionError",
    "VotePartitions",
    "fit",
    "predict_proba",
    "save_partition",
    "write_posteriors",
]

_ENGINES = ("dask", "stream")


class PartitionError(RuntimeError):
    """A partition of the votes could not be read or processed (raised on the driver)."""


# ----------------------------------------------------------------------------------------
# one partition: raw data -> LabelMatrix with local item indices
# ----------------------------------------------------------------------------------------


@dataclass
class _Chunk:
    """The votes of one partition, items indexed locally ``0..n_p-1``."""

    lm: LabelMatrix
    known: np.ndarray | None  # (n_p,) class index, -1 unknown


@dataclass
class _Meta:
    n_sources: int
    n_classes: int
    source_names: np.ndarray
    classes: np.ndarray


def _dense_to_lm(block: np.ndarray, meta: _Meta, item_ids: Any) -> LabelMatrix:
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


def _long_to_lm(df: pd.DataFrame, meta: _Meta) -> LabelMatrix:
    if len(df) == 0:
        return _empty_lm(meta)
    lm = as_label_matrix(df, classes=meta.classes, source_names=meta.source_names)
    return lm


def _empty_lm(meta: _Meta) -> LabelMatrix:
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


# Raw partitions are tuples (kind, payload...) produced by the loaders below; _to_chunk
# turns them into a _Chunk once the global metadata is known.


def _load_file(path: str, y_column: str | None) -> tuple:
    p = str(path)
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


def _raw_summary(raw: tuple) -> tuple[int, Any, Any]:
    """(max label or -1, set of long-format sources or None, set of long labels or None)."""
    kind = raw[0]
    if kind == "dense":
        block = np.asarray(raw[1])
        mx = int(block.max()) if block.size else -1
        y = raw[3]
        if y is not None and np.asarray(y).size:
            mx = max(mx, int(np.nanmax(np.asarray(y, dtype=float))))
        return mx, None, None
    if kind == "triples":
        lab = np.asarray(raw[3])
        return (int(lab.max()) if lab.size else -1), None, None
    df = raw[1]
    src = df["source" if "source" in df.columns else "worker"]
    lab = df["label"].dropna()
    return -1, set(pd.unique(src)), set(pd.unique(lab))


def _to_chunk(raw: tuple, meta: _Meta) -> _Chunk:
    kind = raw[0]
    if kind == "dense":
        _, block, ids, y = raw
        lm = _dense_to_lm(block, meta, ids)
        return _Chunk(lm, _check_known(y, lm.n_items, meta.n_classes))
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
        return _Chunk(lm, _check_known(y, n, meta.n_classes))
    return _Chunk(_long_to_lm(raw[1], meta), None)


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
        import dask
        import dask.array as da

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
        import dask

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
        import dask

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
        loaders = [dask.delayed(_load_file, pure=True)(p, y_column) for p in paths]
        return cls(
            loaders, n_sources=n_sources, n_classes=n_classes, source_names=source_names,
            classes=classes, description=paths, **kwargs,
        )

    @classmethod
    def from_label_matrix(
        cls, L: Any, y: Any = None, *, n_partitions: int = 4, **kwargs: Any
    ) -> VotePartitions:
        """Cut an in-memory label matrix into ``n_partitions`` item ranges (for testing the
        partitioned paths, or to stream an EM over an in-memory matrix chunk by chunk)."""
        import dask

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
    if path.endswith(".npz"):
        with np.load(path, allow_pickle=False) as f:
            if "n_sources" in f.files:
                return int(f["n_sources"])
            if "L" in f.files:
                return int(f["L"].shape[1])
        raise ValueError(f"{path} does not record n_sources; pass n_sources=m.")
    import pyarrow.parquet as pq

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
# the runner: map a function over partitions, on Dask or streamed
# ----------------------------------------------------------------------------------------


def _guard(func: Callable, desc: str) -> Callable:
    """Wrap a partition task so a failure names its partition (and survives pickling)."""

    def task(*args: Any) -> Any:
        try:
            return func(*args)
        except PartitionError:
            raise
        except Exception as err:
            raise PartitionError(f"{desc}: {type(err).__name__}: {err}") from err

    return task


class _Runner:
    def __init__(self, parts: VotePartitions) -> None:
        self.parts = parts
        self.client = None
        self._own_client = False
        if parts.engine == "dask" and parts.client is not None:
            if isinstance(parts.client, str):
                from distributed import Client

                self.client = Client(parts.client)
                self._own_client = True
            else:
                self.client = parts.client
        self.items: list = list(parts.loaders)  # what the tasks receive (delayed or cached)

    def close(self) -> None:
        self.items = []
        if self._own_client and self.client is not None:
            self.client.close()

    def _compute(self, tasks: list) -> list:
        import dask

        if self.client is not None:
            return self.client.gather(self.client.compute(tasks))
        return list(dask.compute(*tasks))

    def map(self, func: Callable, *args: Any) -> list:
        """``[func(part, *args) for part in partitions]`` on the chosen engine."""
        import dask

        desc = self.parts.description
        if self.parts.engine == "stream":
            return [
                _guard(_load_then, desc[i])(func, item, *args) for i, item in enumerate(self.items)
            ]
        tasks = [
            dask.delayed(_guard(func, desc[i]), pure=False)(item, *args)
            for i, item in enumerate(self.items)
        ]
        return self._compute(tasks)

    def transform(self, func: Callable, *args: Any) -> None:
        """Replace each partition by ``func(part, *args)``: kept in (worker) memory when
        caching, else composed lazily and recomputed by every later :meth:`map`."""
        import dask

        desc = self.parts.description
        if self.parts.engine == "stream" and self.parts.cache:
            self.items = self.map(func, *args)
            return
        new = [
            dask.delayed(_guard(func, desc[i]), pure=False)(item, *args)
            for i, item in enumerate(self.items)
        ]
        if self.parts.cache:
            if self.client is not None:
                new = self.client.persist(new)
            else:
                new = list(dask.persist(*new))
        self.items = new


def _load_then(func: Callable, item: Any, *args: Any) -> Any:
    """Stream engine: compute one partition here (synchronously), apply ``func``, drop it."""
    value = item.compute(scheduler="sync") if _is_delayed(item) else item
    return func(value, *args)


def _is_delayed(x: Any) -> bool:
    return hasattr(x, "dask") and hasattr(x, "compute")


# ----------------------------------------------------------------------------------------
# partition tasks (module-level: picklable for distributed workers)
# ----------------------------------------------------------------------------------------


def _summary_task(raw: tuple) -> tuple[int, Any, Any]:
    return _raw_summary(raw)


def _chunk_task(raw: Any, meta: _Meta) -> _Chunk:
    return raw if isinstance(raw, _Chunk) else _to_chunk(raw, meta)


@dataclass
class _PartDesign:
    X: sp.csr_matrix
    known: np.ndarray | None
    n: int


def _init_task(chunk: _Chunk) -> dict:
    """Pass 0 of a partition: counts, repeated votes, and the statistics of the soft
    majority vote (of ``[V | P]``: the driver keeps the ``P`` rows only if it needs them)."""
    from wsagg.dawid_skene import _design, _initial_posterior, _vote_counts

    lm = chunk.lm
    q0 = _initial_posterior(lm, chunk.known) if lm.n_items else np.zeros((0, lm.n_classes))
    counts = lm.class_counts()
    tot = counts.sum(axis=1, keepdims=True)
    cov = tot[:, 0] > 0
    return {
        "n_items": lm.n_items,
        "source_class": _vote_counts(lm),
        "repeats": bool(lm.n_votes) and lm.has_repeats(),
        "stats": np.asarray(_design(lm, "model", separate=True).X.T @ q0),
        "q_sum": q0.sum(axis=0),
        "mv_sum": (counts[cov] / tot[cov]).sum(axis=0),
        "n_covered": int(cov.sum()),
        "n_known": 0 if chunk.known is None else int((chunk.known >= 0).sum()),
    }


def _design_task(chunk: Any, meta: _Meta, separate: bool) -> _PartDesign:
    if isinstance(chunk, _PartDesign):
        return chunk
    if not isinstance(chunk, _Chunk):
        chunk = _to_chunk(chunk, meta)
    from wsagg.dawid_skene import _design

    known = chunk.known if chunk.known is not None and (chunk.known >= 0).any() else None
    X = _design(chunk.lm, "model", separate=separate).X
    return _PartDesign(X, known, chunk.lm.n_items)


def _estep_task(part: Any, meta: _Meta, separate: bool, table: np.ndarray, offset: np.ndarray):
    from wsagg._ds_backend import NumpyBackend

    d = _design_task(part, meta, separate)
    if d.n == 0:
        return 0.0, np.zeros((d.X.shape[1], table.shape[1])), np.zeros(table.shape[1])
    return NumpyBackend(d.X, d.known).e_step(table, offset)


def _proba_task(part: Any, meta: _Meta, estimator: Any) -> tuple[np.ndarray, np.ndarray]:
    chunk = _chunk_task(part, meta)
    lm = chunk.lm
    if lm.n_items == 0:
        return lm.item_ids, np.zeros((0, meta.n_classes))
    return lm.item_ids, estimator.predict_proba(lm)


def _write_task(part: Any, meta: _Meta, estimator: Any, path: str, columns: list) -> int:
    ids, proba = _proba_task(part, meta, estimator)
    frame = pd.DataFrame(proba, columns=columns)
    frame.insert(0, "item", ids)
    frame.to_parquet(path, index=False)
    return int(proba.shape[0])


# ----------------------------------------------------------------------------------------
# public entry points
# ----------------------------------------------------------------------------------------

_SUPPORTED = ("DawidSkene", "AdversarialLogLoss")


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
    import dask.array as da
    import dask.dataframe as dd

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


def _resolve_meta(parts: VotePartitions, runner: _Runner, n_classes: int | None) -> _Meta:
    k = parts.n_classes if parts.n_classes is not None else n_classes
    names = parts.source_names
    classes = parts.classes
    m = parts.n_sources
    need_pass = k is None or ((m is None or m < 0) and names is None)
    if need_pass:
        summaries = runner.map(_summary_task)
        max_label = max(s[0] for s in summaries)
        long_sources = [s[1] for s in summaries if s[1] is not None]
        long_labels = [s[2] for s in summaries if s[2] is not None]
        if long_sources and names is None:
            names = np.asarray(sorted(set().union(*long_sources), key=str), dtype=object)
            m = len(names)
        if long_labels and classes is None:
            labs = sorted(set().union(*long_labels))
            arr = np.asarray(labs)
            if arr.dtype.kind in "iuf" and np.all(arr == np.round(arr)) and arr.min() >= 0:
                classes = np.arange(int(arr.max()) + 1)
            else:
                classes = arr
        if k is None:
            k = len(classes) if classes is not None else max_label + 1
    if classes is None:
        classes = np.arange(k)
    if k is not None and len(classes) != k:
        raise ValueError(f"classes has {len(classes)} entries but n_classes={k}.")
    if k < 2:
        raise ValueError(
            f"Only {k} class could be inferred from the votes; label aggregation needs at "
            "least 2. Pass n_classes=k explicitly."
        )
    if names is None:
        names = np.arange(m)
    return _Meta(int(m if m is not None and m >= 0 else len(names)), int(k), np.asarray(names),
                 np.asarray(classes))


def fit(estimator: Any, L: Any, y: Any = None, **kwargs: Any) -> Any:
    """Fit ``estimator`` on partitioned votes by map-reduce.

    ``L`` is a :class:`VotePartitions`, a Dask array / Dask DataFrame of votes, or a list of
    partition files. A :class:`~wsagg.DawidSkene` runs EM with the E-step's sums done by the
    partitions; the result equals ``estimator.fit`` on the same votes in memory (up to the
    order of floating-point sums); ``n_init`` must be 1 (restarts draw per-item noise). An
    :class:`~wsagg.AdversarialLogLoss` reduces the partitions to one table of distinct vote
    patterns and solves the dual on the driver (:mod:`wsagg._distributed_adversarial`;
    ``kwargs``: ``L_labeled``, ``y_labeled``); its result is the in-memory one. Returns the
    fitted estimator.
    """
    from wsagg.adversarial import AdversarialLogLoss
    from wsagg.dawid_skene import DawidSkene

    if isinstance(estimator, AdversarialLogLoss):
        from wsagg._distributed_adversarial import fit_partitioned

        return fit_partitioned(estimator, L, y, **kwargs)
    if kwargs:
        raise TypeError(
            f"{type(estimator).__name__}.fit on partitioned votes takes no keyword arguments; "
            f"got {sorted(kwargs)}."
        )
    if not isinstance(estimator, DawidSkene):
        raise TypeError(
            f"{type(estimator).__name__} cannot be fitted on partitioned (Dask / file) votes; "
            f"the estimators that can are: {', '.join(_SUPPORTED)}. Collect the votes into "
            "a LabelMatrix (e.g. with wsagg.lf.DaskLFApplier.apply) to fit others."
        )
    if estimator.n_init != 1:
        raise ValueError(
            f"Distributed Dawid-Skene supports n_init=1 only (got n_init={estimator.n_init}); "
            "its restarts draw per-item noise on the driver."
        )
    parts, _ = as_partitions(L, y, getattr(estimator, "n_classes", None))
    runner = _Runner(parts)
    try:
        return _fit_em(estimator, parts, runner)
    finally:
        runner.close()


def _fit_em(est: Any, parts: VotePartitions, runner: _Runner) -> Any:
    """``DawidSkene._fit_core`` with the sums over items done by the partitions: the checks,
    the EM loop and the fitted attributes are the estimator's own methods."""
    from wsagg.dawid_skene import _Design

    meta = _resolve_meta(parts, runner, est.n_classes)
    m, k = meta.n_sources, meta.n_classes
    if est.n_classes is not None and est.n_classes != k:
        raise ValueError(f"The votes have {k} classes but n_classes={est.n_classes}.")
    hp = est._hyper(k)
    runner.transform(_chunk_task, meta)
    inits = runner.map(_init_task)

    def total(key: str) -> Any:
        return np.sum([r[key] for r in inits], axis=0)

    n = int(total("n_items"))
    counts = total("source_class")
    est._start_fit(hp, counts, n, meta.source_names)
    est.classes_ = meta.classes
    est.n_classes_ = k
    est.n_sources_ = m
    est.source_names_ = meta.source_names
    n_known = int(total("n_known"))
    if hp["auto_diagonal"] and n_known > 0:
        warnings.warn(
            "diagonal_smoothing='auto' chooses d by cross-validation on the known labels "
            "only for in-memory fits; this partitioned fit uses the unsupervised default "
            f"d={hp['diagonal_smoothing']:g}. Pass diagonal_smoothing=<float> (e.g. the "
            "diagonal_smoothing_ of an in-memory fit on a sample) to choose it.",
            UserWarning,
            stacklevel=3,
        )
    separate = est.abstain_ == "model" and any(r["repeats"] for r in inits)
    design = _Design(None, m, k, separate)  # type: ignore[arg-type]  # X lives on workers
    stats0 = total("stats")
    if not separate:
        stats0 = stats0[: m * k]  # drop the presence rows
    runner.transform(_design_task, meta, separate)

    def e_step(table: np.ndarray, offset: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        res = runner.map(_estep_task, meta, separate, table, offset)
        return (
            float(sum(r[0] for r in res)),
            np.sum([r[1] for r in res], axis=0),
            np.sum([r[2] for r in res], axis=0),
        )

    fitted = est._run_em(
        e_step, stats0, total("q_sum"), design, hp, n, name="DawidSkene/distributed"
    )
    est._set_fitted(*fitted, n_items=n)
    n_cov = int(total("n_covered"))
    if n_known == 0 and hp["class_prior"] is None and n_cov:
        # (the posteriors stay on the workers: the check uses the prior only)
        est._check_prior_collapse(total("mv_sum") / n_cov)
    est.partition_info_ = {
        "n_partitions": parts.n_partitions,
        "n_items": n,
        "n_votes": int(counts.sum()),
        "engine": parts.engine,
    }
    return est


def _meta_of(estimator: Any) -> _Meta:
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(estimator, "classes_")
    return _Meta(
        int(estimator.n_sources_), int(estimator.n_classes_),
        np.asarray(estimator.source_names_), np.asarray(estimator.classes_),
    )


def predict_proba(estimator: Any, L: Any) -> Any:
    """Posteriors of partitioned votes with a fitted aggregator (any wsagg aggregator).

    A Dask array of votes gives a Dask array ``(n, k)`` (``map_blocks``, lazy); a
    :class:`VotePartitions`, Dask DataFrame or list of files gives a list of
    ``(item_ids, proba)`` per partition, computed now — for data larger than memory use
    :func:`write_posteriors` instead.
    """
    import dask.array as da

    meta = _meta_of(estimator)
    if isinstance(L, da.Array):
        if L.ndim != 2 or L.shape[1] != meta.n_sources:
            raise ValueError(
                f"The Dask array has shape {L.shape} but the estimator was fitted with "
                f"{meta.n_sources} sources; pass (n, {meta.n_sources}) votes."
            )
        if len(L.chunks[1]) > 1:
            L = L.rechunk({1: -1})
        return L.map_blocks(
            _block_proba, estimator, meta, dtype=np.float64,
            chunks=(L.chunks[0], (meta.n_classes,)),
        )
    parts, _ = as_partitions(L, None, meta.n_classes)
    _check_parts_meta(parts, meta)
    runner = _Runner(parts)
    try:
        return runner.map(_proba_task, meta, estimator)
    finally:
        runner.close()


def _block_proba(block: np.ndarray, estimator: Any, meta: _Meta) -> np.ndarray:
    if block.shape[0] == 0:
        return np.zeros((0, meta.n_classes))
    return estimator.predict_proba(_dense_to_lm(block, meta, None))


def _check_parts_meta(parts: VotePartitions, meta: _Meta) -> None:
    if parts.n_sources is not None and parts.n_sources >= 0 and parts.n_sources != meta.n_sources:
        raise ValueError(
            f"The partitions have {parts.n_sources} sources but the estimator was fitted "
            f"with {meta.n_sources}."
        )


def write_posteriors(estimator: Any, L: Any, path: str | os.PathLike) -> list[Path]:
    """Write the posteriors of each partition to ``path/part-XXXXX.parquet`` where the
    partition is processed (worker or stream); nothing but row counts reaches the driver.

    Each file has a column ``item`` (the item ids) and one column ``proba_<class>`` per
    class. Returns the file paths, in partition order.
    """
    meta = _meta_of(estimator)
    parts, _ = as_partitions(L, None, meta.n_classes)
    _check_parts_meta(parts, meta)
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    files = [str(out / f"part-{i:05d}.parquet") for i in range(parts.n_partitions)]
    columns = [f"proba_{c}" for c in meta.classes]
    runner = _Runner(parts)
    try:
        # one task per partition; each gets its own file name
        desc = parts.description
        if parts.engine == "stream":
            for i, item in enumerate(runner.items):
                _guard(_load_then, desc[i])(_write_task, item, meta, estimator, files[i], columns)
        else:
            import dask

            tasks = [
                dask.delayed(_guard(_write_task, desc[i]), pure=False)(
                    item, meta, estimator, files[i], columns
                )
                for i, item in enumerate(runner.items)
            ]
            runner._compute(tasks)
    finally:
        runner.close()
    return [Path(f) for f in files]
