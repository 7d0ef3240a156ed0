"""Fitting beyond one process: votes in row partitions, a map / tree-reduce engine.

* :mod:`.partitions` — :class:`VotePartitions` (Dask arrays and DataFrames, partition files,
  in-memory chunks), :func:`save_partition`, the per-partition :class:`Chunk`;
* :mod:`.engine` — :class:`Runner` (``map``, ``map_reduce``, ``transform``) on Dask or
  streamed, and the generic :func:`predict_proba` / :func:`write_posteriors`.

This layer knows no model: an aggregator that fits on partitions implements
``_fit_partitioned`` in its own package on this API (e.g.
``wsagg/aggregation/dawid_skene/partitioned.py``), and ``estimator.fit(partitioned_votes)``
calls it.
"""

from __future__ import annotations

from typing import Any

from wsagg.distributed.engine import (
    Runner,
    add_statistics,
    chunk_task,
    meta_of,
    predict_proba,
    sum_statistics,
    write_posteriors,
)
from wsagg.distributed.partitions import (
    Chunk,
    PartitionMeta,
    VotePartitions,
    as_partitions,
    dense_to_label_matrix,
    save_partition,
    to_chunk,
)
from wsagg.exceptions import PartitionError

__all__ = [
    "Chunk",
    "PartitionError",
    "PartitionMeta",
    "Runner",
    "VotePartitions",
    "add_statistics",
    "as_partitions",
    "chunk_task",
    "dense_to_label_matrix",
    "fit",
    "meta_of",
    "predict_proba",
    "save_partition",
    "sum_statistics",
    "to_chunk",
    "write_posteriors",
]


def fit(estimator: Any, L: Any, y: Any = None, **kwargs: Any) -> Any:
    """``estimator.fit(L, y, **kwargs)`` on partitioned votes ``L`` (kept for the calls
    written before partitioned input went through ``fit`` itself)."""
    return estimator.fit(L, y, **kwargs)
