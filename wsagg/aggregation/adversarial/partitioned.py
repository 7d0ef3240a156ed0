"""The adversarial log-loss aggregator on partitioned votes (Dask or streamed).

The dual of :class:`wsagg.AdversarialLogLoss` (see :mod:`wsagg.aggregation.adversarial`),

.. math::

    V = \\min_\\theta \\frac1N\\Big[\\sum_u c_u \\log\\sum_l e^{\\theta^\\top\\phi(x_u, l)}
        - \\theta^\\top s + e^\\top|\\theta|\\Big],

depends on the target items only through the histogram ``{(x_u, c_u)}`` of their distinct
one-hot vote patterns (and the per-(source, class) vote counts that scale the accuracy
boxes), and on the labeled items only through integer counts (votes per (source, class)
split by true class, true-class counts). All of these are sums over items, so the fit is one
map-reduce:

* **map** (one task per row partition): the partition's labeled statistics and its pattern
  table ``(V_p, c_p)``, grouped with the same exact integer encoding as the in-memory fit
  (:func:`.constraints.group_patterns`);
* **reduce**: tables are merged by stacking their rows and grouping again (sorting on the
  exact codes; counts added with ``np.bincount``), in the engine's tree of reduce tasks
  (:meth:`wsagg.distributed.Runner.map_reduce`); a merged table has
  one row per distinct pattern, so its size is bounded by the number of distinct patterns
  ``U``, never by ``n``;
* **solve**: the driver solves the ``U``-pattern dual with the estimator's own solver
  (:meth:`AdversarialLogLoss._fit_patterns`).

The final grouping sorts the same codes (same base: the largest vote count) as the in-memory
grouping and every count is an integer (exact in float64), so the dual problem handed to the
solver is *identical* to the in-memory one, and so are the weights, the game value and the
probabilities. Prediction maps the fitted weights over the partitions
(:func:`wsagg.distributed.predict_proba`, :func:`wsagg.distributed.write_posteriors`).

What stays on the driver is ``O(U m)``: cheap when sources are few or votes repeat (``U`` is
at most ``(k+1)^m``), but ``U`` approaches ``n`` when many sources vote independently (e.g.
``m = 20`` noisy sources), and the driver then holds the whole distinct-pattern set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from wsagg._optional import import_optional
from wsagg.aggregation.adversarial.constraints import (
    check_labeled_set,
    group_patterns,
    labeled_statistics,
)
from wsagg.base import _is_partitioned
from wsagg.distributed import PartitionMeta, Runner, VotePartitions, as_partitions, chunk_task
from wsagg.labels import as_label_matrix

__all__ = ["fit_partitioned"]

# fan-in of the merge tree (Dask) / merge batch (stream): each pattern row is re-sorted
# O(log_fan_in P) times
_FAN_IN = 8

@dataclass
class _PatternTable:
    """Sufficient statistics of a set of items (one partition, or merged partitions)."""

    V: sp.csr_matrix  # (U, m*k) distinct one-hot vote patterns of the target items
    counts: np.ndarray  # (U,) their multiplicities (integers as float64)
    votes: np.ndarray  # (m*k,) target vote counts per (source, class)
    lab: dict | None  # labeled_statistics of the known items (None: none)
    n_known: int  # items with a known label
    n_items: int  # all items

    @property
    def n_rows(self) -> int:
        return int(self.V.shape[0])


def _add_lab(a: dict | None, b: dict | None) -> dict | None:
    if a is None:
        return b
    if b is None:
        return a
    return {key: a[key] + b[key] for key in a}


def _table_task(raw: Any, meta: PartitionMeta, polytope: str) -> _PatternTable:
    """Map step: a partition's pattern table and labeled statistics."""
    chunk = chunk_task(raw, meta)
    lm = chunk.lm
    target, lab, n_known = lm, None, 0
    if chunk.known is not None:
        is_known = chunk.known >= 0
        n_known = int(is_known.sum())
        if n_known:
            lab = labeled_statistics(
                lm.take_items(np.flatnonzero(is_known)), chunk.known[is_known]
            )
            if polytope == "unlabeled":
                target = lm.take_items(np.flatnonzero(~is_known))
    V = target.one_hot()
    Vu, counts, _ = group_patterns(V)
    votes = np.asarray(V.sum(axis=0)).ravel()
    return _PatternTable(Vu, counts, votes, lab, n_known, int(lm.n_items))


def _merge_tables(tables: list[_PatternTable]) -> _PatternTable:
    """Reduce step: one table whose rows are the distinct patterns of all the tables."""
    if len(tables) == 1:
        return tables[0]
    V = sp.vstack([t.V for t in tables], format="csr")
    c = np.concatenate([t.counts for t in tables])
    if V.shape[0]:
        V, _, inverse = group_patterns(V)
        c = np.bincount(inverse, weights=c, minlength=V.shape[0])
    lab = None
    for t in tables:
        lab = _add_lab(lab, t.lab)
    return _PatternTable(
        V,
        c,
        np.sum([t.votes for t in tables], axis=0),
        lab,
        sum(t.n_known for t in tables),
        sum(t.n_items for t in tables),
    )


def _labeled_task(raw: Any, meta: PartitionMeta) -> tuple[dict | None, int, int]:
    """A partition of a partitioned labeled set: ``(statistics, n_items, n_unknown)``."""
    chunk = chunk_task(raw, meta)
    lm = chunk.lm
    if chunk.known is None:
        return None, int(lm.n_items), int(lm.n_items)
    is_known = chunk.known >= 0
    n_unknown = int(lm.n_items - is_known.sum())
    if not is_known.any():
        return None, int(lm.n_items), n_unknown
    stats = labeled_statistics(lm.take_items(np.flatnonzero(is_known)), chunk.known[is_known])
    return stats, int(lm.n_items), n_unknown


# ----------------------------------------------------------------------------------------


def _needs_info_error() -> ValueError:
    return ValueError(
        "AdversarialLogLoss needs constraint information: pass y with the classes of some "
        "labeled items (-1 elsewhere), a labeled set via fit(L, L_labeled=..., "
        "y_labeled=...), or accuracy_bounds=[lo, hi] (and optionally class_freq_bounds) for "
        "fit(L)."
    )


def _widen_meta(meta: PartitionMeta, k: int) -> PartitionMeta:
    """The metadata with ``k`` classes when the labeled set shows more classes than the
    partitions' votes (integer classes only)."""
    if k <= meta.n_classes:
        return meta
    if not np.array_equal(meta.classes, np.arange(meta.n_classes)):
        raise ValueError(
            f"The labeled set has {k} classes but the partitioned votes have "
            f"{meta.n_classes} ({list(meta.classes)}); pass n_classes=k."
        )
    return PartitionMeta(meta.n_sources, k, meta.source_names, np.arange(k))


def fit_partitioned(
    est: Any, L: Any, y: Any = None, *, L_labeled: Any = None, y_labeled: Any = None
) -> Any:
    """Fit an :class:`~wsagg.AdversarialLogLoss` on partitioned votes ``L``.

    The same three ways to give the constraint information as the in-memory ``fit``:

    * ``y`` aligned with the partitions (a NumPy or Dask array for a Dask array of votes,
      a column name for a Dask DataFrame or Parquet files, ``y`` arrays inside ``.npz``
      partition files, or known labels inside a :class:`VotePartitions`);
    * ``L_labeled``, ``y_labeled``: a labeled set, in memory (the common case: a few hundred
      labeled items next to a large unlabeled partitioned set) or itself partitioned (a Dask
      array of votes and a Dask / NumPy array of labels, every label known);
    * ``accuracy_bounds`` (and ``class_freq_bounds``) given as parameters.

    The result equals the in-memory fit on the same votes (the dual problem is the same).
    ``group_patterns=False`` is not supported (grouping is what makes the reduction small).
    """
    est._check_params()
    if not est.group_patterns:
        raise ValueError(
            "group_patterns=False is not supported on partitioned votes: the partitioned fit "
            "reduces every partition to its distinct vote patterns. Use group_patterns=True "
            "(exact, same result) or fit in memory."
        )
    labeled_given = L_labeled is not None or y_labeled is not None
    if labeled_given:
        if L_labeled is None or y_labeled is None:
            raise ValueError("Pass both L_labeled and y_labeled (or neither).")
        if y is not None:
            raise ValueError(
                "Give the labels either as y (aligned with L) or as L_labeled/y_labeled, "
                "not both."
            )
    da = import_optional("dask.array", "Partitioned fitting (wsagg.distributed)")
    dd = import_optional("dask.dataframe", "Partitioned fitting (wsagg.distributed)")

    if (
        not labeled_given
        and y is None
        and est.accuracy_bounds is None
        and isinstance(L, da.Array | dd.DataFrame)
    ):
        raise _needs_info_error()  # before any computation

    lab_partitioned = labeled_given and _is_partitioned(L_labeled)
    k_lab = None
    if labeled_given and not lab_partitioned and est.n_classes is None:
        k_lab = as_label_matrix(L_labeled, y=np.asarray(y_labeled)).n_classes

    parts, _ = as_partitions(L, y, est.n_classes)
    if parts.n_partitions == 0:
        raise ValueError("The partitioned votes have no partitions.")
    with Runner(parts) as runner:
        meta = runner.resolve_meta(est.n_classes)
        if k_lab is not None:
            meta = _widen_meta(meta, k_lab)
        m, k = meta.n_sources, meta.n_classes
        if est.n_classes is not None and est.n_classes != k:
            raise ValueError(f"The votes have {k} classes but n_classes={est.n_classes}.")
        polytope = "all" if labeled_given else est.polytope
        # map: one pattern table per partition; reduce: merge tables (a tree on Dask)
        table = runner.map_reduce(
            _table_task, meta, polytope, reduce=_merge_tables, fan_in=_FAN_IN
        )
    if table.n_items == 0:
        raise ValueError("The partitioned votes hold no items.")

    if labeled_given:
        if table.n_known:
            raise ValueError(
                "Give the labels either as y (aligned with L) or as L_labeled/y_labeled, "
                f"not both: the partitions of L carry {table.n_known} known labels."
            )
        lab = (
            _labeled_partitioned(L_labeled, y_labeled, meta)
            if lab_partitioned
            else _labeled_in_memory(L_labeled, y_labeled, meta)
        )
    elif table.n_known == 0:
        if est.accuracy_bounds is None:
            raise _needs_info_error()
        lab = None
    else:
        if est.accuracy_bounds is not None or est.class_freq_bounds is not None:
            raise ValueError(
                "Give either labels y (bounds from Wilson intervals) or accuracy_bounds / "
                "class_freq_bounds, not both."
            )
        if est.polytope == "unlabeled" and table.n_rows == 0:
            raise ValueError(
                "Every item is labeled, so polytope='unlabeled' leaves no item for the "
                "adversary; use polytope='all' (e.g. for the g* oracle with confidence=0)."
            )
        lab = table.lab

    est.classes_ = meta.classes
    est.n_classes_ = k
    est.n_sources_ = m
    est.source_names_ = meta.source_names
    est._fit_patterns(table.V, table.counts, table.votes, lab, m, k)
    est.partition_info_ = {
        "n_partitions": parts.n_partitions,
        "n_items": table.n_items,
        "n_target_items": int(table.counts.sum()),
        "n_known": table.n_known,
        "n_patterns": table.n_rows,
        "engine": parts.engine,
    }
    return est


def _labeled_in_memory(L_labeled: Any, y_labeled: Any, meta: PartitionMeta) -> dict:
    lm_lab, y_lab = check_labeled_set(
        L_labeled, y_labeled, meta.n_classes, meta.n_sources, classes=meta.classes
    )
    return labeled_statistics(lm_lab, y_lab)


def _labeled_partitioned(L_labeled: Any, y_labeled: Any, meta: PartitionMeta) -> dict:
    if isinstance(L_labeled, VotePartitions):
        raise ValueError(
            "A partitioned labeled set must be a Dask array / DataFrame or partition files "
            "with y_labeled aligned to it (a VotePartitions carries its labels inside)."
        )
    parts, _ = as_partitions(L_labeled, y_labeled, meta.n_classes)
    if parts.n_sources is not None and parts.n_sources >= 0 and parts.n_sources != (
        meta.n_sources
    ):
        raise ValueError(
            f"L_labeled has {parts.n_sources} sources but L has {meta.n_sources}; the "
            "labeled set must be voted on by the same sources, in the same order."
        )
    with Runner(parts) as runner:
        res = runner.map(_labeled_task, meta)
    lab = None
    for stats, _, _ in res:
        lab = _add_lab(lab, stats)
    n_unknown = sum(r[2] for r in res)
    if lab is None or n_unknown:
        raise ValueError("y_labeled must hold a class for every labeled item (no -1).")
    return lab
