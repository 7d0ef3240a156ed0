"""The distributed engine: map a function over vote partitions, tree-reduce the results.

The engine knows no model. An aggregator that can be fitted on partitioned votes writes its
``_fit_partitioned`` on this API (see ``wsagg/aggregation/dawid_skene/partitioned.py``):

.. code-block:: python

    with Runner(parts) as runner:
        meta = runner.resolve_meta(n_classes)          # one metadata pass if needed
        runner.transform(to_chunk, meta)               # load + check each partition once
        stats = runner.map_reduce(my_statistics, params)   # map, then tree-reduce (sum)

Every EM-like algorithm whose E-step statistics are sums over items fits this shape (Chu et
al. 2006, "Map-Reduce for Machine Learning on Multicore", NeurIPS): each partition returns
its sufficient statistics, the driver adds them and updates the ``O(m k^2)`` parameters, and
what crosses the network per iteration does not grow with ``n``.

Two engines run the same map:

``"dask"``
    one task per partition on the current Dask scheduler, or on the ``client`` /
    scheduler address given (``distributed.LocalCluster`` or any cluster). With
    ``cache=True`` transformed partitions are persisted in worker memory.
``"stream"``
    out-of-core on one machine: partitions are loaded, used and dropped one at a time, so
    peak memory is one partition plus the statistics, whatever ``n`` is.

Prediction (:func:`predict_proba`, :func:`write_posteriors`) is generic: each partition
calls the fitted estimator's own ``predict_proba``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from wsagg._optional import import_optional
from wsagg.distributed.partitions import (
    Chunk,
    PartitionMeta,
    VotePartitions,
    _raw_summary,
    as_partitions,
    dense_to_label_matrix,
    to_chunk,
)
from wsagg.exceptions import PartitionError
from wsagg.labels import check_inferred_k

__all__ = [
    "Runner",
    "add_statistics",
    "chunk_task",
    "meta_of",
    "predict_proba",
    "sum_statistics",
    "write_posteriors",
]


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


def add_statistics(a: Any, b: Any) -> Any:
    """Sum two sufficient-statistics values of the same structure: numbers and arrays are
    added, tuples/lists element-wise, dicts key-wise, ``None`` is the neutral element."""
    if a is None:
        return b
    if b is None:
        return a
    if isinstance(a, dict):
        return {key: add_statistics(a[key], b[key]) for key in a}
    if isinstance(a, tuple | list):
        return type(a)(add_statistics(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, bool):
        return a or b
    return a + b


def sum_statistics(values: list) -> Any:
    """The default reduce of :meth:`Runner.map_reduce`: :func:`add_statistics` folded over
    a list, in order."""
    out = None
    for v in values:
        out = add_statistics(out, v)
    return out


class Runner:
    """Runs functions over the partitions of a :class:`VotePartitions` (a context manager:
    the client it opened, if any, is closed on exit).

    Tasks are module-level functions ``func(partition, *args)`` (picklable for distributed
    workers); a failing task raises :class:`~wsagg.exceptions.PartitionError` naming the
    partition.
    """

    def __init__(self, parts: VotePartitions) -> None:
        self.parts = parts
        self.client = None
        self._own_client = False
        if parts.engine == "dask" and parts.client is not None:
            if isinstance(parts.client, str):
                Client = import_optional("distributed", "A dask client address").Client

                self.client = Client(parts.client)
                self._own_client = True
            else:
                self.client = parts.client
        parts.refresh()  # partition files: fingerprinted now, loader tasks keyed by it
        self.items: list = list(parts.loaders)  # what the tasks receive (delayed or cached)

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self.items = []
        if self._own_client and self.client is not None:
            self.client.close()

    def _compute(self, tasks: list) -> list:
        dask = import_optional("dask", "Partitioned fitting (wsagg.distributed)")

        client = self.client if self.client is not None else _default_client()
        try:
            if client is not None:
                return _gather_watched(client, client.compute(tasks))
            return list(dask.compute(*tasks))
        except PartitionError:
            raise
        except Exception as err:
            lost = _lost_tasks(err)
            if lost is None:
                raise
            raise PartitionError(lost) from err

    def _tasks(self, func: Callable, *args: Any) -> list:
        dask = import_optional("dask", "Partitioned fitting (wsagg.distributed)")

        desc = self.parts.description
        return [
            dask.delayed(_guard(func, desc[i]), pure=False)(item, *args)
            for i, item in enumerate(self.items)
        ]

    def map(self, func: Callable, *args: Any) -> list:
        """``[func(part, *args) for part in partitions]`` on the chosen engine."""
        desc = self.parts.description
        if self.parts.engine == "stream":
            return [
                _guard(_load_then, desc[i])(func, item, *args) for i, item in enumerate(self.items)
            ]
        return self._compute(self._tasks(func, *args))

    def map_reduce(
        self, func: Callable, *args: Any, reduce: Callable[[list], Any] = sum_statistics,
        fan_in: int = 8,
    ) -> Any:
        """``reduce`` of ``[func(part, *args) for part in partitions]``, as a tree.

        ``reduce(list_of_values) -> value`` must be associative (the default adds
        statistics, :func:`sum_statistics`). On Dask it runs as a tree of ``fan_in``-ary
        reduce tasks on the workers (no one worker receives every result); streamed, the
        results are reduced ``fan_in`` at a time as they come (at most ``fan_in`` results in
        memory). ``None`` when there are no partitions."""
        dask = import_optional("dask", "Partitioned fitting (wsagg.distributed)")

        if not self.items:
            return None
        if self.parts.engine == "stream":
            desc = self.parts.description
            buffer: list = []
            for i, item in enumerate(self.items):
                buffer.append(_guard(_load_then, desc[i])(func, item, *args))
                if len(buffer) >= fan_in:
                    buffer = [reduce(buffer)]
            return buffer[0] if len(buffer) == 1 else reduce(buffer)
        level = self._tasks(func, *args)
        guarded = _guard(reduce, "reducing partition results")
        while len(level) > 1:
            level = [
                dask.delayed(guarded, pure=False)(level[i : i + fan_in])
                for i in range(0, len(level), fan_in)
            ]
        return self._compute(level)[0]

    def transform(self, func: Callable, *args: Any) -> None:
        """Replace each partition by ``func(part, *args)``: kept in (worker) memory when
        caching, else composed lazily and recomputed by every later :meth:`map`."""
        dask = import_optional("dask", "Partitioned fitting (wsagg.distributed)")

        if self.parts.engine == "stream" and self.parts.cache:
            self.items = self.map(func, *args)
            return
        new = self._tasks(func, *args)
        if self.parts.cache:
            if self.client is not None:
                new = self.client.persist(new)
            else:
                new = list(dask.persist(*new))
        self.items = new

    def resolve_meta(self, n_classes: int | None) -> PartitionMeta:
        """The global metadata: what the partitions declare, completed by one pass over
        them when the class count or the long-format source names are unknown."""
        parts = self.parts
        k = parts.n_classes if parts.n_classes is not None else n_classes
        names = parts.source_names
        classes = parts.classes
        m = parts.n_sources
        need_pass = k is None or ((m is None or m < 0) and names is None)
        if need_pass:
            summaries = self.map(_raw_summary)
            seen = np.unique(np.concatenate([np.asarray(s[0]).ravel() for s in summaries]))
            max_label = int(seen.max()) if seen.size else -1
            long_sources = [s[1] for s in summaries if s[1] is not None]
            long_labels = [s[2] for s in summaries if s[2] is not None]
            if long_sources and names is None:
                names = np.asarray(sorted(set().union(*long_sources), key=str), dtype=object)
                m = len(names)
            if long_labels and classes is None:
                labs = sorted(set().union(*long_labels))
                arr = np.asarray(labs)
                if (arr.size and arr.dtype.kind in "iuf" and np.all(arr == np.round(arr))
                        and arr.min() >= 0):
                    if k is None:
                        check_inferred_k(arr.astype(np.int64), int(arr.max()) + 1,
                                         what="The partitions' long-format labels")
                    classes = np.arange(max(int(arr.max()) + 1, k or 0))
                else:
                    classes = arr
            if k is None:
                if classes is not None:
                    k = len(classes)
                else:
                    k = max_label + 1
                    check_inferred_k(seen.astype(np.int64), k, what="The partitions' votes")
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
        return PartitionMeta(
            int(m if m is not None and m >= 0 else len(names)), int(k), np.asarray(names),
            np.asarray(classes),
        )


#: seconds a fit waits for a cluster that has no worker left before it gives up
NO_WORKER_TIMEOUT = 30.0


def _default_client() -> Any:
    """The active ``distributed.Client`` (dask's default scheduler), if there is one."""
    import sys

    if "distributed" not in sys.modules:
        return None
    from distributed import default_client

    try:
        return default_client()
    except ValueError:
        return None


def _gather_watched(client: Any, futures: list) -> list:
    """``client.gather(futures)``, but a cluster left without workers (a
    ``client.restart()`` without nannies, every worker killed) is an error after
    :data:`NO_WORKER_TIMEOUT` seconds instead of a hang."""
    from distributed import wait

    alone_since = None
    while True:
        try:
            wait(futures, timeout=1.0)
            break
        except TimeoutError:
            pass
        if any(f.status in ("error", "cancelled") for f in futures):
            break  # gather raises it
        if client.scheduler_info().get("workers"):
            alone_since = None
            continue
        now = time.monotonic()
        alone_since = now if alone_since is None else alone_since
        if now - alone_since > NO_WORKER_TIMEOUT:
            client.cancel(futures)
            raise PartitionError(
                f"the Dask cluster has had no worker for {NO_WORKER_TIMEOUT:.0f} s during "
                "this fit (restarted without nannies, or every worker died); nothing was "
                "fitted: rerun the fit once workers are back."
            )
    return client.gather(futures)


def _lost_tasks(err: BaseException) -> str | None:
    """A one-line explanation when a Dask error means the cluster lost the fit's tasks (a
    ``client.restart()``, a killed worker), else ``None``."""
    import concurrent.futures

    name = type(err).__name__
    if isinstance(err, concurrent.futures.CancelledError) or name in (
        "FutureCancelledError", "CancelledError", "KilledWorker", "CommClosedError",
    ):
        reason = str(err).strip().splitlines()[0] if str(err).strip() else name
        return (
            "the Dask cluster lost this fit's tasks before they finished ("
            f"{name}: {reason}); this happens when the client is restarted "
            "(client.restart()) or workers die mid-fit. Nothing was fitted: rerun the fit "
            "once the cluster is up."
        )
    return None


def _load_then(func: Callable, item: Any, *args: Any) -> Any:
    """Stream engine: compute one partition here (synchronously), apply ``func``, drop it."""
    value = item.compute(scheduler="sync") if _is_delayed(item) else item
    return func(value, *args)


def _is_delayed(x: Any) -> bool:
    return hasattr(x, "dask") and hasattr(x, "compute")


def chunk_task(raw: Any, meta: PartitionMeta) -> Chunk:
    """A raw partition as a checked :class:`Chunk` (idempotent)."""
    return raw if isinstance(raw, Chunk) else to_chunk(raw, meta)


# ----------------------------------------------------------------------------------------
# generic prediction: each partition calls the estimator's own predict_proba
# ----------------------------------------------------------------------------------------


def _proba_task(part: Any, meta: PartitionMeta, estimator: Any) -> tuple[np.ndarray, np.ndarray]:
    chunk = chunk_task(part, meta)
    lm = chunk.lm
    if lm.n_items == 0:
        return lm.item_ids, np.zeros((0, meta.n_classes))
    return lm.item_ids, estimator.predict_proba(lm)


def _write_task(part: Any, meta: PartitionMeta, estimator: Any, path: str, columns: list) -> int:
    ids, proba = _proba_task(part, meta, estimator)
    frame = pd.DataFrame(proba, columns=columns)
    frame.insert(0, "item", ids)
    import_optional("pyarrow", "Writing Parquet posteriors")
    frame.to_parquet(path, index=False)
    return int(proba.shape[0])


def meta_of(estimator: Any) -> PartitionMeta:
    """The partition metadata a fitted estimator expects."""
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(estimator, "classes_")
    return PartitionMeta(
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
    da = import_optional("dask.array", "Partitioned fitting (wsagg.distributed)")

    meta = meta_of(estimator)
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
    with Runner(parts) as runner:
        return runner.map(_proba_task, meta, estimator)


def _block_proba(block: np.ndarray, estimator: Any, meta: PartitionMeta) -> np.ndarray:
    if block.shape[0] == 0:
        return np.zeros((0, meta.n_classes))
    return estimator.predict_proba(dense_to_label_matrix(block, meta, None))


def _check_parts_meta(parts: VotePartitions, meta: PartitionMeta) -> None:
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
    meta = meta_of(estimator)
    parts, _ = as_partitions(L, None, meta.n_classes)
    _check_parts_meta(parts, meta)
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    files = [str(out / f"part-{i:05d}.parquet") for i in range(parts.n_partitions)]
    columns = [f"proba_{c}" for c in meta.classes]
    with Runner(parts) as runner:
        # one task per partition; each gets its own file name
        desc = parts.description
        if parts.engine == "stream":
            for i, item in enumerate(runner.items):
                _guard(_load_then, desc[i])(_write_task, item, meta, estimator, files[i], columns)
        else:
            dask = import_optional("dask", "Partitioned fitting (wsagg.distributed)")

            tasks = [
                dask.delayed(_guard(_write_task, desc[i]), pure=False)(
                    item, meta, estimator, files[i], columns
                )
                for i, item in enumerate(runner.items)
            ]
            runner._compute(tasks)
    return [Path(f) for f in files]
