"""Label matrices: the one data model every aggregator consumes.

A *label matrix* records the votes of ``m`` sources (labeling functions, crowd workers,
heuristics, prompts) on ``n`` items, with classes ``0..k-1`` and ``-1`` meaning *abstain*
(Snorkel's convention). Users bring it in three shapes, all converted once, at the door, by
:func:`as_label_matrix` into the canonical :class:`LabelMatrix`:

* **dense** ``(n, m)`` integer array, ``-1`` = abstain; a *wide* pandas DataFrame (no
  ``item``/``task``, ``source``/``worker`` or ``label`` column) is one too, its index giving
  the item ids and its columns the source names;
* **scipy sparse** ``(n, m)`` matrix whose *stored value is label + 1*, so that an absent
  entry is an abstain (the convention of Snorkel's LF analysis). A stored ``0`` is also an
  abstain;
* **long format**: a pandas DataFrame with ``item, source, label`` columns (crowd-kit's
  ``task, worker, label`` are accepted too) or a tuple of three arrays. Ids may be any
  hashable values; they are mapped to indices and kept (``item_ids`` in order of first
  appearance, so rows out follow the input; ``source_names`` and ``classes`` sorted).
  A row whose label is ``-1``, missing (NaN/None) or empty (``""``) is an abstain: it
  registers the item and the source but records no vote. Any other negative number and any
  fractional number in a label column is an error (class ids are ``0..k-1``).

When neither ``n_classes`` nor ``classes`` is given, ``k`` is inferred as the largest class
id + 1 — but only when at most two ids below it are unused (``k <= d + 2`` for ``d``
distinct ids): a stray ``3000`` in a 3-class matrix, or a
``-1`` cast to ``uint8`` (255), is refused with the values seen instead of silently making
thousands of empty classes. Known labels ``y`` never add a class that no source votes for
(except the second class of a binary problem whose sources all vote one class).

Internally a label matrix is a list of votes ``(item, source, label)`` — its memory and every
computation on it are linear in the number of votes, whatever ``n`` and ``m`` are. The votes
are kept in small integer types (``int32`` items and sources, the smallest type that holds
``k`` for the labels: 9 bytes per vote up to 127 classes; see :class:`LabelMatrix`), so flat
keys such as ``item * m + source`` are computed with :func:`flat_index` (in ``int64``). Repeated
votes by one source on one item are handled by the ``duplicates`` policy:

``"count"`` (default)
    every vote is an observation (the Dawid & Skene 1979 model, where a clinician may
    examine a patient several times). Majority vote counts each vote.
``"last"`` / ``"first"``
    keep one vote per (item, source): the last / first one in input order.
``"error"``
    raise a :class:`ValueError` listing an offending pair.

Items on which every source abstains are kept (they get the class prior): rows in equal
rows out.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

__all__ = [
    "DENSE_THREADED_CELLS",
    "LabelMatrix",
    "as_label_matrix",
    "bincount_chunked",
    "check_inferred_k",
    "check_known_labels",
    "check_memory",
    "flat_index",
    "frame_item_index",
    "index_dtype",
    "is_wide_frame",
    "label_dtype",
    "map_runs",
    "memory_budget",
    "split_runs",
]

DuplicatePolicy = Literal["count", "last", "first", "error"]
_DUPLICATE_POLICIES = ("count", "last", "first", "error")
_ITEM_COLS = ("item", "task")
_SOURCE_COLS = ("source", "worker")
_LABEL_COLS = ("label",)


_INT32_MAX = int(np.iinfo(np.int32).max)
_BLOCK = 1 << 18  # votes per block of the blockwise passes: temporaries stay in cache
_GROUPED_BLOCK = 1 << 22  # votes per block of LabelMatrix.grouped_by_item
_DENSE_BLOCK = 1 << 16  # cells per block of rows of a dense matrix


def index_dtype(n: int) -> np.dtype:
    """The dtype of an index array over ``n`` things (a LabelMatrix's ``item`` and
    ``source``): ``int32`` when ``n < 2**31``, else ``int64``."""
    return np.dtype(np.int32 if n <= _INT32_MAX else np.int64)


def label_dtype(k: int) -> np.dtype:
    """The dtype of a LabelMatrix's ``label`` for ``k`` classes: the smallest signed integer
    type that holds ``k`` (``int8`` up to 127 classes, then ``int16``, ``int32``), so that
    ``label + 1`` (the sparse convention) fits too."""
    for t in (np.int8, np.int16, np.int32):
        if k <= np.iinfo(t).max:
            return np.dtype(t)
    return np.dtype(np.int64)


_BINCOUNT_CHUNK = 1 << 22  # elements per chunk of bincount_chunked


def bincount_chunked(idx: np.ndarray, weights: np.ndarray | None = None,
                     minlength: int = 0) -> np.ndarray:
    """``np.bincount`` of a (possibly int32) index array, chunk by chunk: ``np.bincount``
    first converts its input to ``intp``, an 8-byte copy of all of it (800 MB for 1e8
    votes); here the copy is of one chunk at a time."""
    if idx.size <= _BINCOUNT_CHUNK:
        return np.bincount(idx, weights=weights, minlength=minlength)
    out = None
    for a in range(0, idx.size, _BINCOUNT_CHUNK):
        w = None if weights is None else weights[a : a + _BINCOUNT_CHUNK]
        part = np.bincount(idx[a : a + _BINCOUNT_CHUNK], weights=w, minlength=minlength)
        if out is None:
            out = part.astype(np.float64 if weights is not None else np.int64)
        else:
            if part.size > out.size:
                part[: out.size] += out
                out = part.astype(out.dtype)
            else:
                out[: part.size] += part
    assert out is not None
    return out


def flat_index(major: np.ndarray, width: int, minor: np.ndarray) -> np.ndarray:
    """``major * width + minor`` computed in ``int64``: the flat key of a pair of indices
    (``(item, source)``, ``(source, label)``, ...).

    A LabelMatrix keeps its indices in small integer types (:func:`index_dtype`,
    :func:`label_dtype`), in which such a product overflows silently once ``n * m`` (or
    ``n * k``, ``m * k``) reaches ``2**31``; every flat key goes through this function."""
    out = np.multiply(major, width, dtype=np.int64)
    out += minor
    return out


def _checked_cast(values: Any, dtype: np.dtype, bound: int, what: str) -> np.ndarray:
    """``values`` as ``dtype`` (no copy when it already is), refusing values outside
    ``0..bound-1`` when the cast narrows the type (which would wrap them silently)."""
    arr = np.asarray(values)
    if arr.dtype == dtype:
        return arr
    if arr.dtype.kind not in "iu" and not (arr.dtype.kind == "f" and arr.size == 0):
        raise TypeError(
            f"LabelMatrix.{what} must hold integer indices; got dtype {arr.dtype}."
        )
    if arr.size and not np.can_cast(arr.dtype, dtype):
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi >= bound:
            raise ValueError(
                f"LabelMatrix.{what} holds {lo if lo < 0 else hi}, outside 0..{bound - 1}; "
                "indices must lie in 0..n-1 (use as_label_matrix to convert votes)."
            )
    return arr.astype(dtype)


@dataclass(frozen=True, eq=False)
class LabelMatrix:
    """Canonical label matrix: votes as three aligned integer arrays.

    Attributes
    ----------
    item, source, label : ndarray, shape (n_votes,)
        The votes: source ``source[v]`` gave class index ``label[v]`` to item ``item[v]``.
        Abstains are simply absent. Stored in small integer types, whatever the dtype
        they were given in: ``item`` and ``source`` as ``int32`` (``int64`` for ``n`` or
        ``m`` of ``2**31`` or more, :func:`index_dtype`), ``label`` as the smallest
        signed type that holds ``k`` (``int8`` up to 127 classes, :func:`label_dtype`).
        Arithmetic on them stays in that type: compute flat keys such as
        ``item * m + source`` with :func:`flat_index` (in ``int64``).
    n_items, n_sources, n_classes : int
        ``n``, ``m`` and ``k``.
    item_ids : ndarray, shape (n_items,)
        The user's item ids (``arange(n)`` for dense or sparse input).
    source_names : ndarray, shape (n_sources,)
        The user's source ids (``arange(m)`` unless given).
    classes : ndarray, shape (n_classes,)
        The user's class labels, in class-index order (``arange(k)`` for integer input).

    Notes
    -----
    A LabelMatrix also behaves like the dense ``(n, m)`` array a Snorkel applier returns
    (class indices, ``-1`` = abstain) while staying sparse inside: ``shape``, ``ndim``,
    ``len(lm)``, ``np.asarray(lm)`` / :meth:`toarray`, ``lm == other`` and ``lm != other``
    (elementwise, a dense boolean array; ``other`` an array, a scalar or a LabelMatrix), and
    row indexing ``lm[rows]`` (a slice, a boolean mask or an integer array) giving a
    LabelMatrix of those items with their ids; ``lm[i]`` is item ``i``'s votes as a 1-D
    array. Being elementwise, ``==`` is not identity: ``lm is other`` is.
    """

    item: np.ndarray
    source: np.ndarray
    label: np.ndarray
    n_items: int
    n_sources: int
    n_classes: int
    item_ids: np.ndarray
    source_names: np.ndarray
    classes: np.ndarray
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        # the index arrays in their small dtypes (a no-op when they already are)
        for name, dtype, bound in (
            ("item", index_dtype(self.n_items), self.n_items),
            ("source", index_dtype(self.n_sources), self.n_sources),
            ("label", label_dtype(self.n_classes), self.n_classes),
        ):
            object.__setattr__(
                self, name, _checked_cast(getattr(self, name), dtype, bound, name)
            )

    @property
    def n_votes(self) -> int:
        """Number of (non-abstain) votes, repeated votes included."""
        return int(self.item.shape[0])

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_items, n_sources)``, the shape of the dense view."""
        return (self.n_items, self.n_sources)

    # -- the array a Snorkel user expects (dense view: class index, -1 = abstain) ------------
    ndim = 2
    dtype = np.dtype(np.int64)
    __hash__ = object.__hash__  # identity, as before ``__eq__`` became elementwise

    def __len__(self) -> int:
        return self.n_items

    def __repr__(self) -> str:
        return (
            f"LabelMatrix(n_items={self.n_items:,}, n_sources={self.n_sources:,}, "
            f"n_classes={self.n_classes:,}, n_votes={self.n_votes:,})"
        )

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        """The dense ``(n, m)`` view (class indices, ``-1`` = abstain), for ``np.asarray``.

        Always a new array (the votes are stored sparsely), so ``copy=False`` is refused as
        NumPy 2's protocol asks; repeated votes by one source on one item are refused as by
        :meth:`to_dense`."""
        if copy is False:
            raise ValueError(
                "A LabelMatrix stores its votes sparsely, so a dense array is always a copy; "
                "use np.asarray(lm) or lm.toarray() instead of copy=False."
            )
        out = self.to_dense()
        return out if dtype is None else out.astype(dtype, copy=False)

    def toarray(self) -> np.ndarray:
        """Dense ``(n, m)`` int64 array, ``-1`` = abstain (same as :meth:`to_dense`)."""
        return self.to_dense()

    def __eq__(self, other: Any) -> Any:  # elementwise, like an array
        if isinstance(other, LabelMatrix):
            other = other.to_dense()
        return np.equal(self.to_dense(), other)

    def __ne__(self, other: Any) -> Any:
        if isinstance(other, LabelMatrix):
            other = other.to_dense()
        return np.not_equal(self.to_dense(), other)

    def __getitem__(self, key: Any) -> Any:
        """Rows (items), as on an array: a slice, a boolean mask or an integer array gives a
        :class:`LabelMatrix` of those items (sparse, ids kept); an integer gives that item's
        votes as a dense 1-D array. ``lm[rows, ...]`` and ``lm[rows, :]`` are the same."""
        if isinstance(key, tuple):
            if len(key) == 2 and (key[1] is Ellipsis or (
                isinstance(key[1], slice) and key[1] == slice(None)
            )):
                key = key[0]
            elif len(key) == 1:
                key = key[0]
            else:
                raise IndexError(
                    "A LabelMatrix is indexed by rows (items) only; for the votes of some "
                    "sources use lm.toarray()[rows, cols]."
                )
        if isinstance(key, int | np.integer) and not isinstance(key, bool | np.bool_):
            i = int(key)
            if not -self.n_items <= i < self.n_items:
                raise IndexError(f"Item index {i} is out of range for {self.n_items} items.")
            return self.take_items(np.array([i % self.n_items])).to_dense()[0]
        rows = np.arange(self.n_items)
        try:
            index = rows[key]
        except IndexError as err:
            raise IndexError(f"Invalid item index for {self.n_items} items: {err}") from None
        if index.ndim != 1:
            raise IndexError(
                "A LabelMatrix is indexed by a slice, a boolean mask or a 1-D integer array "
                f"of items; got an index of shape {np.shape(key)}."
            )
        if index.shape[0] > 1 and np.unique(index).shape[0] < index.shape[0]:
            return self._take_repeated(index)
        return self.take_items(index)

    def _take_repeated(self, index: np.ndarray) -> LabelMatrix:
        """Rows ``index`` where some item occurs more than once (its votes repeated)."""
        order = np.argsort(self.item, kind="stable")
        counts = np.bincount(self.item, minlength=self.n_items)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        lens = counts[index]
        total = int(lens.sum())
        first = np.repeat(np.cumsum(lens) - lens, lens)
        votes = order[np.repeat(starts[index], lens) + np.arange(total) - first]
        item = np.repeat(np.arange(index.shape[0], dtype=index_dtype(index.shape[0])), lens)
        return self._rows_of(index, item, votes)

    def vote_counts(self) -> np.ndarray:
        """``(m, k)`` int64: how many votes each source cast for each class (repeats
        counted), the column sums of :meth:`one_hot`. One chunked pass over the votes,
        then cached: the fit-time source checks and the aggregators' initial counts share
        it."""
        if "vote_counts" not in self._cache:
            m, k = self.n_sources, self.n_classes
            out = np.zeros(m * k, dtype=np.int64)
            for a in range(0, self.n_votes, _BLOCK):
                key = flat_index(self.source[a : a + _BLOCK], k, self.label[a : a + _BLOCK])
                out += np.bincount(key, minlength=m * k)
            out = out.reshape(m, k)
            out.setflags(write=False)  # (shared: a caller must copy before changing it)
            self._cache["vote_counts"] = out
        return self._cache["vote_counts"]

    def one_hot(self) -> sp.csr_matrix:
        """Sparse one-hot vote matrix ``V`` of shape ``(n, m * k)``.

        ``V[i, j * k + l]`` is the number of times source ``j`` voted class ``l`` on item
        ``i`` (0/1 unless votes repeat). This is the matrix that turns an EM iteration into
        two sparse products.
        """
        if "one_hot" not in self._cache:
            cols = flat_index(self.source, self.n_classes, self.label)
            shape = (self.n_items, self.n_sources * self.n_classes)
            data = np.ones(self.n_votes, dtype=np.float64)
            item = self.item
            if self.n_votes > 0 and bool(np.all(item[1:] >= item[:-1])):
                # votes grouped by item (the usual order of loaded data): the CSR arrays
                # directly, no COO conversion; sort/sum within rows only when needed
                indptr = np.zeros(self.n_items + 1, dtype=np.int64)
                np.cumsum(np.bincount(item, minlength=self.n_items), out=indptr[1:])
                V = sp.csr_matrix((data, cols, indptr), shape=shape)
                if bool(np.all((cols[1:] > cols[:-1]) | (item[1:] != item[:-1]))):
                    V.has_canonical_format = True
                else:
                    V.sum_duplicates()
            else:
                V = sp.csr_matrix((data, (self.item, cols)), shape=shape)
                V.sum_duplicates()
            self._cache["one_hot"] = V
        return self._cache["one_hot"]

    def class_counts(self, weights: np.ndarray | None = None) -> np.ndarray:
        """Votes per item and class, shape ``(n, k)``, optionally weighted per source."""
        w = np.ones(self.n_votes) if weights is None else np.asarray(weights, float)[self.source]
        flat = np.bincount(
            flat_index(self.item, self.n_classes, self.label),
            weights=w,
            minlength=self.n_items * self.n_classes,
        )
        return flat.reshape(self.n_items, self.n_classes).astype(np.float64, copy=False)

    def votes_per_item(self) -> np.ndarray:
        """Number of votes on each item, shape ``(n,)``."""
        return np.bincount(self.item, minlength=self.n_items)

    def covered(self) -> np.ndarray:
        """Boolean mask of items with at least one vote."""
        return self.votes_per_item() > 0

    def grouped_by_item(self) -> bool:
        """Whether the votes are in nondecreasing item order (dense and CSR input always
        are; checked block by block once for other inputs, then cached)."""
        if "grouped_by_item" not in self._cache:
            it, ok = self.item, True
            for a in range(0, max(it.shape[0] - 1, 0), _GROUPED_BLOCK):
                b = min(a + _GROUPED_BLOCK, it.shape[0] - 1)
                if bool(np.any(it[a + 1 : b + 1] < it[a:b])):
                    ok = False
                    break
            self._cache["grouped_by_item"] = ok
        return self._cache["grouped_by_item"]

    def has_repeats(self) -> bool:
        """Whether some source voted more than once on some item."""
        if "has_repeats" not in self._cache:
            key = np.sort(flat_index(self.item, self.n_sources, self.source))
            self._cache["has_repeats"] = bool((key[1:] == key[:-1]).any())
        return self._cache["has_repeats"]

    def to_dense(self) -> np.ndarray:
        """Dense ``(n, m)`` int array with ``-1`` = abstain.

        Raises if a source voted more than once on an item (a dense matrix cannot hold that).
        """
        if self.has_repeats():
            raise ValueError(
                "This label matrix has repeated votes by one source on one item, which a dense "
                "(n, m) matrix cannot represent. Use to_long() or one_hot() instead, or load "
                "with duplicates='last'."
            )
        out = np.full((self.n_items, self.n_sources), -1, dtype=np.int64)
        out[self.item, self.source] = self.label
        return out

    def to_sparse(self) -> sp.csr_matrix:
        """Sparse ``(n, m)`` CSR matrix with stored value ``label + 1`` (absent = abstain)."""
        if self.has_repeats():
            raise ValueError(
                "This label matrix has repeated votes by one source on one item, which a "
                "sparse (n, m) matrix with value label + 1 cannot represent. Use to_long()."
            )
        return sp.csr_matrix(
            (self.label.astype(np.int64) + 1, (self.item, self.source)),
            shape=(self.n_items, self.n_sources),
            dtype=np.int64,
        )

    def to_long(self) -> pd.DataFrame:
        """Long-format DataFrame with columns ``item, source, label`` in the user's ids."""
        return pd.DataFrame(
            {
                "item": self.item_ids[self.item],
                "source": self.source_names[self.source],
                "label": self.classes[self.label],
            }
        )

    def take_items(self, index: np.ndarray) -> LabelMatrix:
        """Sub-matrix of the given item indices (or boolean mask), in that order."""
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        position = np.full(self.n_items, -1, dtype=index_dtype(index.shape[0]))
        position[index] = np.arange(index.shape[0])
        if np.count_nonzero(position >= 0) != index.shape[0]:  # O(n); np.unique is slow
            raise ValueError("take_items needs distinct item indices.")
        keep = position[self.item] >= 0
        return self._rows_of(index, position[self.item[keep]], keep)

    def _rows_of(self, index: np.ndarray, item: np.ndarray, votes: np.ndarray) -> LabelMatrix:
        """The matrix of the items ``index`` (new item ``item`` of each kept vote ``votes``,
        a mask or positions), with the same sources and classes."""
        return replace(self, item=item, source=self.source[votes], label=self.label[votes],
                       n_items=int(index.shape[0]), item_ids=self.item_ids[index], _cache={})


# ----------------------------------------------------------------------------------------
# conversion at the door
# ----------------------------------------------------------------------------------------


def as_label_matrix(
    L: Any,
    n_classes: int | None = None,
    *,
    classes: Sequence[Hashable] | np.ndarray | None = None,
    source_names: Sequence[Hashable] | np.ndarray | None = None,
    n_sources: int | None = None,
    duplicates: DuplicatePolicy = "count",
    y: Any = None,
    n_jobs: int = 1,
) -> LabelMatrix:
    """Convert any supported input into a :class:`LabelMatrix`, validating it.

    Parameters
    ----------
    L : array-like (n, m), scipy sparse (n, m), pandas DataFrame, tuple of three arrays,
        or LabelMatrix
        The votes; see the module docstring for the conventions.
    n_classes : int, optional
        ``k``. Inferred as ``max(label) + 1`` when not given (refused when that is far beyond
        the distinct labels seen; see the module docstring).
    classes : sequence, optional
        For long format: the class labels in index order. Labels outside it are an error.
        Inferred (sorted unique labels) when not given.
    source_names : sequence, optional
        For long format: the sources in index order (from a fitted estimator). Unknown
        sources are an error. For dense/sparse input: names for the columns.
    n_sources : int, optional
        Expected ``m`` (from a fitted estimator); a mismatch is an error.
    duplicates : {"count", "last", "first", "error"}
        Policy for repeated votes by one source on one item (see module docstring).
    y : array-like, optional
        Known labels: when ``n_classes`` is not given, a known class that no source votes
        for is refused (pass ``n_classes``) instead of silently adding a class.
    n_jobs : int, default=1
        Threads for converting a large dense matrix (at least ``DENSE_THREADED_CELLS``,
        ``2**22``, cells); the result does not depend on it.
    """
    if duplicates not in _DUPLICATE_POLICIES:
        raise ValueError(
            f"duplicates must be one of {_DUPLICATE_POLICIES}; got {duplicates!r}."
        )
    if isinstance(L, LabelMatrix):
        lm = L
        if n_classes is not None and n_classes != lm.n_classes:
            raise ValueError(
                f"The label matrix has {lm.n_classes} classes but n_classes={n_classes} was "
                "given; build it with the same n_classes."
            )
    elif isinstance(L, pd.DataFrame) and is_wide_frame(L):
        lm = _from_wide(L, n_classes, y, classes, source_names)
    elif isinstance(L, pd.DataFrame) or (
        isinstance(L, tuple) and len(L) == 3 and not sp.issparse(L)
    ):
        lm = _from_long(L, n_classes, classes, source_names, duplicates)
    elif sp.issparse(L):
        lm = _from_sparse(L, n_classes, y, duplicates, source_names)
    else:
        lm = _from_dense(L, n_classes, y, source_names, n_jobs)
    if n_sources is not None and lm.n_sources != n_sources:
        raise ValueError(
            f"The label matrix has {lm.n_sources} sources (columns) but the estimator was "
            f"fitted with {n_sources}. Pass the same sources, in the same order, as at fit."
        )
    if n_classes is None and lm.n_classes < 2 and classes is None:
        raise ValueError(
            f"Only {lm.n_classes} class could be inferred from the votes; label aggregation "
            "needs at least 2. Pass n_classes=k explicitly (--n-classes K on the command "
            "line)."
        )
    return lm


def memory_budget() -> int:
    """Bytes wsagg lets one step allocate: ``$WSAGG_MEMORY_BUDGET`` (a number of bytes, or
    with a ``K``/``M``/``G``/``T`` suffix) when set, else 80% of the memory available now
    (``MemAvailable`` on Linux), or half of the physical memory where that is unknown."""
    env = os.environ.get("WSAGG_MEMORY_BUDGET", "").strip()
    if env:
        units = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
        scale = units.get(env[-1].upper(), 1)
        number = env[:-1] if env[-1].upper() in units else env
        try:
            return int(float(number) * scale)
        except ValueError:
            raise ValueError(
                f"WSAGG_MEMORY_BUDGET={env!r} is not a size; use bytes or e.g. 8G."
            ) from None
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 * 4 // 5
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")) // 2
    except (AttributeError, ValueError, OSError):  # pragma: no cover - non-POSIX
        return 8 * 2**30


def check_memory(n_bytes: float, what: str) -> None:
    """Refuse, before allocating, a step that would need more than :func:`memory_budget`."""
    budget = memory_budget()
    if n_bytes > budget:
        raise ValueError(
            f"{what} would need about {_gib(n_bytes)}, more than the memory budget "
            f"{_gib(budget)}; check the sizes (a stray label or a wrong n_classes?) or raise "
            "the budget with WSAGG_MEMORY_BUDGET=<bytes, e.g. 64G>."
        )


def _gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:.3g} GiB" if n_bytes >= 2**30 else f"{n_bytes / 2**20:.3g} MiB"


def _check_n_classes(n_classes: Any) -> int:
    if isinstance(n_classes, bool) or not isinstance(n_classes, int | np.integer):
        raise TypeError(f"n_classes must be an integer >= 2; got {n_classes!r}.")
    if n_classes < 2:
        raise ValueError(
            f"n_classes must be at least 2 (got {n_classes}); with one class there is "
            "nothing to aggregate."
        )
    check_memory(64.0 * int(n_classes), f"n_classes={int(n_classes):,} (per-class arrays)")
    return int(n_classes)


def _as_int_labels(values: np.ndarray, what: str) -> np.ndarray:
    """Integer view of label values, rejecting NaN, fractions and non-numbers."""
    values = np.asarray(values)
    if values.dtype == bool:
        raise TypeError(
            f"{what} is boolean; use integer class ids 0..k-1 with -1 for abstain "
            "(e.g. L.astype(int))."
        )
    if values.dtype.kind in "iu":
        return values.astype(np.int64, copy=False)
    if values.dtype.kind == "c":
        raise ValueError(
            f"Complex data not supported: {what} has dtype {values.dtype}; class ids are "
            "integers 0..k-1 with -1 for abstain."
        )
    if values.dtype.kind == "f":
        if np.isnan(values).any():
            raise ValueError(
                f"{what} contains NaN. Encode abstains as -1 (dense) or leave them out "
                "(sparse / long format)."
            )
        if not np.all(np.isfinite(values)):
            raise ValueError(f"{what} contains infinite values; class ids must be integers.")
        if np.any(values != np.round(values)):
            bad = values[values != np.round(values)][0]
            raise ValueError(
                f"{what} contains non-integer value {float(bad)!r}; class ids must be whole "
                "numbers 0..k-1 with -1 for abstain."
            )
        return values.astype(np.int64)
    raise TypeError(
        f"{what} has dtype {values.dtype}; expected integer class ids 0..k-1 with -1 for "
        "abstain. For string labels use long format (a DataFrame with item, source, label)."
    )


def _resolve_k(
    labels: np.ndarray,
    n_classes: int | None,
    y: Any,
    *,
    what: str = "The label matrix",
    dtype: Any = None,
) -> int:
    """``k`` for integer class ids ``labels`` (the votes, abstains removed): ``n_classes``
    when given (every label checked against it), else the largest id + 1, refused when it
    is far beyond the distinct ids seen or when ``y`` holds a class that no source votes."""
    max_label = int(labels.max()) if labels.size else -1
    if n_classes is not None:
        k = _check_n_classes(n_classes)
        if max_label >= k:
            raise ValueError(
                f"Label {max_label} is outside 0..{k - 1} for n_classes={k}. Class ids must "
                "be 0..k-1 (abstain = -1); raise n_classes or re-encode the labels."
            )
        return k
    k = max(max_label + 1, 1)
    check_inferred_k(labels, k, what=what, dtype=dtype)
    if y is not None:
        y_arr = np.asarray(y)
        if y_arr.size and y_arr.dtype.kind in "iuf" and np.isfinite(y_arr).all():
            y_max = int(np.max(y_arr))
            if y_max == 1 and k == 1:  # votes for one class only: y shows the binary other
                k = 2
            elif y_max >= k:
                raise ValueError(
                    f"y contains class {y_max} but no source votes for a class above "
                    f"{k - 1}; pass n_classes={y_max + 1} (--n-classes {y_max + 1}) if class "
                    f"{y_max} is real, or fix y."
                )
    return k


def check_inferred_k(
    labels: np.ndarray, k: int, *, what: str = "The label matrix", dtype: Any = None
) -> None:
    """Refuse ``k = max id + 1`` inferred from integer class ids ``labels`` (``>= 0``) when it
    is beyond the ``d`` distinct ids that occur by more than two unused ids (``k > d + 2``):
    a stray label would otherwise create empty classes (and allocate for them).

    The distinct ids are counted without allocating from ``k`` when ``k`` exceeds what the
    number of labels could justify."""
    if k <= 3:
        return
    labels = np.asarray(labels)
    n = int(labels.size)
    if k > 2 * n + 2:  # d <= n, so this k is refused whatever the ids are
        distinct = np.unique(labels)
    else:
        seen = np.zeros(k, dtype=np.int64)
        flat = labels.reshape(-1)
        for a in range(0, n, _BLOCK):  # (bincount copies its input to int64: by blocks)
            seen += np.bincount(flat[a : a + _BLOCK], minlength=k)
            if np.count_nonzero(seen) > k - 3:  # (k <= d + 2 already: nothing to refuse)
                return
        distinct = np.flatnonzero(seen)
    d = int(distinct.size)
    if k <= d + 2:
        return
    ids = [str(int(v)) for v in distinct]
    shown = ", ".join(ids if d <= 8 else [*ids[:6], "...", ids[-1]])
    hint = ""
    dt = None if dtype is None else np.dtype(dtype)
    if dt is not None and dt.kind == "u" and d and int(distinct[-1]) == np.iinfo(dt).max:
        hint = f" ({int(distinct[-1])} is -1 cast to {dt}: keep the votes in a signed dtype)"
    raise ValueError(
        f"{what} has class ids up to {k - 1} but only {d} distinct ones ({shown}){hint}, so "
        f"inferring k = {k} classes would create {k - d} empty classes. Pass n_classes=k "
        "(--n-classes K on the command line) if there really are that many classes, or fix "
        "the stray labels."
    )


def _names(names: Any, m: int, what: str) -> np.ndarray:
    if names is None:
        return np.arange(m)
    arr = np.asarray(list(names), dtype=object)
    if arr.shape[0] != m:
        raise ValueError(f"Got {arr.shape[0]} {what} for {m} columns.")
    return arr


def is_wide_frame(df: pd.DataFrame) -> bool:
    """Whether a DataFrame is read as a *wide* label matrix (rows = items, one column per
    source): it has none of the long-format column names (``item``/``task``,
    ``source``/``worker``, ``label``)."""
    return not any(c in df.columns for c in (*_ITEM_COLS, *_SOURCE_COLS, *_LABEL_COLS))


def frame_item_index(df: pd.DataFrame) -> pd.Index:
    """The item ids of a DataFrame label matrix, in the order :func:`as_label_matrix` gives
    its rows, as a :class:`pandas.Index` named like the items: the index of a wide frame, or
    the item column (``item``/``task``, first appearance order) of a long one."""
    if is_wide_frame(df):
        return df.index
    col = _pick_column(df, _ITEM_COLS, "item")
    return pd.Index(pd.unique(df[col].to_numpy()), name=col)


def _from_wide(
    df: pd.DataFrame, n_classes: int | None, y: Any, classes: Any, source_names: Any
) -> LabelMatrix:
    """A wide DataFrame: the index holds the item ids, each column one source's class ids
    (``-1`` = abstain)."""
    text = [str(c) for c in df.columns if df[c].dtype.kind not in "iufb"]
    if text:
        raise ValueError(
            f"The DataFrame has no item/source/label columns, so it is read as a wide label "
            f"matrix (one column per source), but column(s) {text[:5]} hold non-numeric "
            "values. For long format name the columns item, source, label (or task, worker, "
            "label); for a wide one keep only class-id columns (-1 = abstain) and put the item "
            "ids in the index (df.set_index(col))."
        )
    if classes is not None:  # predicting with an estimator fitted on named classes
        cls = np.asarray(list(classes))
        if cls.dtype.kind not in "iu" or not np.array_equal(cls, np.arange(cls.shape[0])):
            raise ValueError(
                f"The estimator was fitted on the class labels {np.asarray(cls).tolist()[:5]}, but "
                "a wide DataFrame holds class ids 0..k-1; pass the votes in long format (item, "
                "source, label) as at fit."
            )
        n_classes = int(cls.shape[0])
    if source_names is not None and not _positional_names(source_names):
        names = list(source_names)
        missing = [c for c in names if c not in df.columns]
        extra = [c for c in df.columns if c not in names]
        if missing or extra:
            raise ValueError(
                f"The wide DataFrame's columns differ from the sources seen at fit: missing "
                f"{missing[:5]}, unknown {extra[:5]}. Pass one column per fitted source "
                "(estimator.source_names_)."
            )
        df = df[names]
    values = df.to_numpy()
    if n_classes is None and df.shape[0] > 10:
        for c in df.columns:
            col = df[c].to_numpy()
            if col.dtype.kind in "iu" and np.unique(col).shape[0] == df.shape[0]:
                raise ValueError(
                    f"Column {str(c)!r} of the wide DataFrame holds a different value on "
                    f"each of its {df.shape[0]} rows, like an item id rather than a source's "
                    f"votes; move it to the index (df.set_index({str(c)!r})), or pass "
                    "n_classes=k if it really holds class ids."
                )
    lm = _from_dense(values, n_classes, y, list(df.columns))
    return replace(lm, item_ids=df.index.to_numpy(), _cache={})


def _positional_names(names: Any) -> bool:
    """Source names ``0..m-1`` (those of a dense or sparse matrix: matched by position)."""
    arr = np.asarray(list(names))
    return arr.dtype.kind in "iu" and np.array_equal(arr, np.arange(arr.shape[0]))


def _empty_message(shape: tuple[int, ...]) -> str:
    """An empty label matrix, in scikit-learn's words (``0 sample(s)`` / ``0 feature(s)``)."""
    what = "sample(s)" if shape[0] == 0 else "feature(s)"
    return (
        f"The label matrix has 0 {what} (shape={tuple(int(d) for d in shape)}) while a "
        "minimum of 1 is required: it needs at least one item and one source."
    )


def _from_dense(L: Any, n_classes: int | None, y: Any, names: Any, n_jobs: int = 1
                ) -> LabelMatrix:
    if isinstance(L, list | tuple) and len(L) == 0:
        raise ValueError("The label matrix is empty: it needs at least one item and one source.")
    arr = np.asarray(L)
    if arr.dtype == object:
        raise TypeError(
            "The label matrix has dtype object (mixed or ragged rows?). Pass a rectangular "
            "integer array, or long format for string labels."
        )
    if arr.ndim != 2:
        raise ValueError(
            f"A dense label matrix must be 2-D (n_items, n_sources); got {arr.ndim}-D with "
            f"shape {arr.shape}. Reshape your data: L.reshape(-1, 1) for one source, "
            "L.reshape(1, -1) for one item."
        )
    n, m = arr.shape
    if n == 0 or m == 0:
        raise ValueError(_empty_message(arr.shape))
    # integer input is read in its own dtype (no int64 copy of the matrix)
    vals = arr if arr.dtype.kind in "iu" else _as_int_labels(arr, "The label matrix")
    item, source, label = _dense_votes(vals, n_jobs)
    k = _resolve_k(label, n_classes, y, dtype=arr.dtype)
    lm = LabelMatrix(
        item=item,
        source=source,
        label=label,
        n_items=n,
        n_sources=m,
        n_classes=k,
        item_ids=np.arange(n),
        source_names=_names(names, m, "source names"),
        classes=np.arange(k),
    )
    lm._cache["grouped_by_item"] = True  # row-major (see _dense_votes)
    lm._cache["has_repeats"] = False
    lm._cache["sources_ascending"] = True  # (within each item, strictly: one vote per cell)
    return lm


def _dense_votes(vals: np.ndarray, n_jobs: int = 1
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The votes (cells ``>= 0``) of a dense integer ``(n, m)`` matrix, row-major (grouped
    by item, sources ascending), in the LabelMatrix dtypes: two passes over blocks of rows
    (check and count, then fill), no temporary of the size of the matrix and none of
    ``int64`` per vote (about as fast as one ``np.flatnonzero`` of the whole matrix).

    ``n_jobs > 1`` (a large matrix only): each pass cuts the blocks into ``n_jobs``
    contiguous runs, one per thread (numpy releases the GIL in these operations); the
    result is the same."""
    n, m = vals.shape
    rows = max(1, _DENSE_BLOCK // m)
    starts = list(range(0, n, rows))
    runs = split_runs(len(starts), n_jobs if n * m >= DENSE_THREADED_CELLS else 1)

    def check(run: range) -> list[tuple[int, int, int]]:
        out = []
        for b in run:
            blk = vals[starts[b] : starts[b] + rows]
            out.append((int(blk.min()), int(blk.max()), int(np.count_nonzero(blk >= 0))))
        return out

    per_block = [t for part in map_runs(check, runs) for t in part]
    lo = min(-1, *(t[0] for t in per_block)) if per_block else -1
    hi = max(-1, *(t[1] for t in per_block)) if per_block else -1
    if lo < -1:
        raise ValueError(
            f"The label matrix contains {lo}; the only negative value allowed is -1 "
            "(abstain). Classes are 0..k-1."
        )
    counts = np.array([t[2] for t in per_block], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    n_votes = int(offsets[-1])
    item = np.empty(n_votes, dtype=index_dtype(n))
    source = np.empty(n_votes, dtype=index_dtype(m))
    label = np.empty(n_votes, dtype=label_dtype(hi + 1))

    def fill(run: range) -> None:
        for b in run:
            r, pos, end = starts[b], int(offsets[b]), int(offsets[b + 1])
            blk = np.ascontiguousarray(vals[r : r + rows]).reshape(-1)
            index = np.flatnonzero(blk >= 0)
            row = index // m  # (a division by a scalar: libdivide; np.divmod is 2x slower)
            item[pos:end] = row
            item[pos:end] += r
            row *= m
            np.subtract(index, row, out=source[pos:end], casting="unsafe")
            label[pos:end] = blk[index]

    map_runs(fill, runs)
    return item, source, label


#: cells of a dense matrix from which :func:`as_label_matrix` converts it on ``n_jobs`` threads
DENSE_THREADED_CELLS = 1 << 22


def split_runs(n_blocks: int, n_jobs: int) -> list[range]:
    """Blocks ``0..n_blocks-1`` cut into at most ``n_jobs`` contiguous runs (for
    :func:`map_runs`)."""
    parts = max(1, min(int(n_jobs), n_blocks))
    cuts = np.linspace(0, n_blocks, parts + 1).round().astype(int)
    return [range(int(a), int(b)) for a, b in itertools.pairwise(cuts.tolist())]


def map_runs(fn: Any, runs: list[range]) -> list:
    """``[fn(run) for run in runs]``, one thread per run when there are several."""
    if len(runs) <= 1:
        return [fn(r) for r in runs]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(len(runs), thread_name_prefix="wsagg-convert") as pool:
        return list(pool.map(fn, runs))


def _from_sparse(
    L: Any, n_classes: int | None, y: Any, duplicates: str, names: Any
) -> LabelMatrix:
    if L.ndim != 2:
        raise ValueError(f"A sparse label matrix must be 2-D; got shape {L.shape}.")
    n, m = L.shape
    if n == 0 or m == 0:
        raise ValueError(_empty_message(L.shape))
    coo = sp.coo_matrix(L)  # keeps duplicate entries as given
    data = _as_int_labels(coo.data, "The sparse label matrix")
    if (data < 0).any():
        raise ValueError(
            "The sparse label matrix stores a negative value. Sparse matrices store label + 1 "
            "(1..k) with abstains left out; did you store -1 for abstain? Use "
            "scipy.sparse.csr_matrix(L + 1) on the dense matrix."
        )
    keep = data > 0  # an explicitly stored 0 is an abstain
    rows = coo.row[keep].astype(index_dtype(n))
    cols = coo.col[keep].astype(index_dtype(m))
    labels = data[keep] - 1
    labels = labels.astype(label_dtype(int(labels.max()) + 1 if labels.size else 2))
    rows, cols, labels = _apply_duplicates(rows, cols, labels, m, duplicates)
    k = _resolve_k(labels, n_classes, y, what="The sparse label matrix")
    return LabelMatrix(
        item=rows,
        source=cols,
        label=labels,
        n_items=n,
        n_sources=m,
        n_classes=k,
        item_ids=np.arange(n),
        source_names=_names(names, m, "source names"),
        classes=np.arange(k),
    )


def _apply_duplicates(
    rows: np.ndarray, cols: np.ndarray, labels: np.ndarray, m: int, policy: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if policy == "count" or rows.size == 0:
        return rows, cols, labels
    key = flat_index(rows, m, cols)
    order = np.argsort(key, kind="stable")  # equal keys keep input order
    sorted_key = key[order]
    repeated = sorted_key[1:] == sorted_key[:-1]
    if policy == "error":
        if repeated.any():
            n_pairs = int(np.count_nonzero(repeated & ~np.r_[False, repeated[:-1]]))
            first = int(sorted_key[1:][repeated][0])
            raise ValueError(
                f"{n_pairs} (item, source) pairs have repeated votes, e.g. item "
                f"index {first // m}, source index {first % m}. Choose duplicates='count' "
                "(every vote is an observation), 'last' or 'first'."
            )
        return rows, cols, labels
    if policy == "last":
        keep = np.r_[~repeated, True]  # last of each run of equal keys
    else:  # first
        keep = np.r_[True, ~repeated]  # first of each run
    idx = np.sort(order[keep])
    return rows[idx], cols[idx], labels[idx]


def _pick_column(df: pd.DataFrame, candidates: tuple[str, ...], what: str) -> str:
    for c in candidates:
        if c in df.columns:
            return c
    raise ValueError(
        f"Long-format input needs a {what} column named one of {list(candidates)}; "
        f"got columns {list(df.columns)}. Rename the columns (e.g. df.rename(columns=...))."
    )


def _factorize(values: np.ndarray, sort: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``pd.factorize(values, sort=sort)``: codes in order of first appearance, or of the
    sorted ids with ``sort=True`` (ids that cannot be ordered keep first appearance), with
    fast paths for integer ids that avoid hashing: sorted ids (one pass), and ids in a range
    not much larger than their count (a first-index table)."""
    v = np.asarray(values)
    n = v.shape[0]
    if v.dtype.kind not in "iu" or n == 0:
        if sort:
            try:
                return pd.factorize(values, sort=True)
            except TypeError:  # mixed types cannot be ordered
                pass
        return pd.factorize(values, sort=False)
    if n == 1 or bool(np.all(v[1:] >= v[:-1])):  # nondecreasing: first appearance = sorted
        new = np.empty(n, dtype=bool)
        new[0] = True
        np.not_equal(v[1:], v[:-1], out=new[1:])
        return np.cumsum(new) - 1, v[new]
    lo, hi = int(v.min()), int(v.max())
    if hi - lo > 2 * n + 1024:
        return pd.factorize(values, sort=sort)
    off = (v - lo).astype(np.int64, copy=False)
    present = np.flatnonzero(np.bincount(off, minlength=hi - lo + 1))
    if sort:
        code = np.empty(hi - lo + 1, dtype=np.int64)
        code[present] = np.arange(present.shape[0])
        return code[off], (present + lo).astype(v.dtype)
    first = np.full(hi - lo + 1, n, dtype=np.int64)
    head = min(n, 1 << 16)  # few distinct ids (sources) all show up early: no full pass
    np.minimum.at(first, off[:head], np.arange(head))
    if (first[present] == n).any():
        np.minimum.at(first, off, np.arange(n))
    order = present[np.argsort(first[present], kind="stable")]
    code = np.empty(hi - lo + 1, dtype=np.int64)
    code[order] = np.arange(order.shape[0])
    return code[off], (order + lo).astype(v.dtype)


def _int_label_codes(
    labels: np.ndarray, n_classes: int | None, classes: Any
) -> tuple[np.ndarray, np.ndarray] | None:
    """Label codes and classes when the labels are integer class ids ``0..k-1`` (the common
    case, resolved without hashing), else ``None`` (the general path decides and explains)."""
    if labels.dtype.kind not in "iu" or labels.shape[0] == 0:
        return None
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0:
        return None
    if classes is None:
        if n_classes is None:
            check_inferred_k(labels, hi + 1, what="The long-format label column",
                             dtype=labels.dtype)
            return labels.astype(np.int64, copy=False), np.arange(hi + 1)
        k = _check_n_classes(n_classes)
        if hi >= k:
            return None
        return labels.astype(np.int64, copy=False), np.arange(k)
    cls = np.asarray(list(classes))
    if (
        cls.dtype.kind not in "iu"
        or not np.array_equal(cls, np.arange(cls.shape[0]))
        or hi >= cls.shape[0]
        or (n_classes is not None and _check_n_classes(n_classes) != cls.shape[0])
    ):
        return None
    return labels.astype(np.int64, copy=False), cls


def _from_long(
    L: Any,
    n_classes: int | None,
    classes: Any,
    source_names: Any,
    duplicates: str,
) -> LabelMatrix:
    if isinstance(L, pd.DataFrame):
        item_col = _pick_column(L, _ITEM_COLS, "item")
        source_col = _pick_column(L, _SOURCE_COLS, "source")
        label_col = _pick_column(L, _LABEL_COLS, "label")
        items = L[item_col].to_numpy()
        sources = L[source_col].to_numpy()
        labels = L[label_col].to_numpy()
    else:
        items, sources, labels = (np.asarray(a) for a in L)
        if not (items.ndim == sources.ndim == labels.ndim == 1):
            raise ValueError("Long-format arrays (item, source, label) must each be 1-D.")
        if not (items.shape[0] == sources.shape[0] == labels.shape[0]):
            raise ValueError(
                f"Long-format arrays have different lengths: item {items.shape[0]}, "
                f"source {sources.shape[0]}, label {labels.shape[0]}."
            )
    if items.shape[0] == 0:
        raise ValueError("The long-format input has no rows: it needs at least one vote.")
    if pd.isna(items).any() or pd.isna(sources).any():
        raise ValueError("Long-format input has missing item or source ids; drop those rows.")
    item_codes, item_ids = _factorize(items)
    if source_names is None:
        source_codes, source_uniques = _factorize(sources, sort=True)
        names = np.asarray(source_uniques, dtype=object)
    else:
        names = np.asarray(list(source_names), dtype=object)
        source_codes = pd.Index(names).get_indexer(sources)
        if (source_codes < 0).any():
            bad = sources[source_codes < 0][0]
            raise ValueError(
                f"Source {_show(bad)} was not seen at fit time. Known sources: the estimator's "
                "source_names_; drop the new source's rows or refit."
            )
    labels, present = _long_votes(labels)
    rows = np.asarray(item_codes, dtype=index_dtype(item_ids.shape[0]))
    cols = np.asarray(source_codes, dtype=index_dtype(names.shape[0]))
    if present is not None:  # rows with abstains (-1, NaN, empty) register items, no votes
        rows, cols = rows[present], cols[present]
    fast = _int_label_codes(labels, n_classes, classes)
    if fast is not None:  # integer class ids 0..k-1: no hashing (same result as below)
        label_codes, cls = fast
    else:
        label_codes, cls = _generic_label_codes(labels, n_classes, classes)
    rows, cols, labs = _apply_duplicates(
        rows, cols, label_codes.astype(label_dtype(cls.shape[0])), names.shape[0], duplicates
    )
    return LabelMatrix(
        item=rows,
        source=cols,
        label=labs,
        n_items=int(item_ids.shape[0]),
        n_sources=int(names.shape[0]),
        n_classes=int(cls.shape[0]),
        item_ids=np.asarray(item_ids),
        source_names=names,
        classes=cls,
    )


_ABSTAIN_TOKENS = ("", "-1", -1)


def _long_votes(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """The votes of a long-format label column: ``-1``, NaN/None and ``""`` are abstains
    (returned mask of the other rows, ``None`` when every row votes); any other negative or
    fractional number is refused. Whole floats become int64 (a CSV with empty labels)."""
    labels = np.asarray(labels)
    kind = labels.dtype.kind
    if kind in "iu":
        if kind == "i" and labels.size and int(labels.min()) < 0:
            _refuse_long_number(labels[labels < -1], "negative")
            present = labels != -1
            return labels[present], present
        return labels, None
    if kind == "f":
        absent = np.isnan(labels) | (labels == -1)
        votes = labels[~absent] if absent.any() else labels
        if not np.all(np.isfinite(votes)):
            _refuse_long_number(votes[~np.isfinite(votes)], "infinite")
        _refuse_long_number(votes[votes < 0], "negative")
        _refuse_long_number(votes[votes != np.round(votes)], "fractional")
        votes = votes.astype(np.int64)
        return (votes, ~absent) if absent.any() else (votes, None)
    if kind == "b":
        return labels, None
    absent = np.asarray(pd.isna(labels), dtype=bool)
    if kind in "OUS":
        rest = np.flatnonzero(~absent)
        token = pd.Series(labels[rest], dtype=object).isin(_ABSTAIN_TOKENS).to_numpy()
        absent[rest[token]] = True
    if not absent.any():
        return labels, None
    return labels[~absent], ~absent


def _refuse_long_number(bad: np.ndarray, what: str) -> None:
    if bad.size:
        value = bad[0].item() if hasattr(bad[0], "item") else bad[0]
        raise ValueError(
            f"The long-format label column holds the {what} label {value!r}; labels are "
            "class ids 0..k-1 (or class names), and -1, NaN or an empty cell mean abstain. "
            "Fix or drop those rows."
        )


def _generic_label_codes(
    labels: np.ndarray, n_classes: int | None, classes: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Class indices of the votes ``labels`` (abstains removed, any hashable type) and the
    classes."""
    lab_values = labels
    if classes is None:
        if lab_values.size == 0:
            raise ValueError(
                "The long-format input has no votes (every label is missing or -1)."
            )
        try:
            cls = np.asarray(sorted(pd.unique(lab_values)))
        except TypeError as err:
            raise TypeError(
                "Class labels of mixed types cannot be ordered; pass classes=[...] explicitly."
            ) from err
        if cls.dtype == object:  # numbers among object labels: same rules as a number column
            nums = np.asarray(
                [v for v in cls if isinstance(v, int | float | np.number)
                 and not isinstance(v, bool | np.bool_)], dtype=float,
            )
            _refuse_long_number(nums[nums < 0], "negative")
            _refuse_long_number(nums[nums != np.round(nums)], "fractional")
            if nums.size == cls.size and nums.size:
                cls = nums.astype(np.int64)
        if cls.dtype.kind == "f" and np.all(cls == np.round(cls)):
            cls = cls.astype(np.int64)  # integer ids read as float (a CSV with empty labels)
        if n_classes is not None:
            k = _check_n_classes(n_classes)
            if cls.shape[0] > k:
                raise ValueError(
                    f"Long-format input has {cls.shape[0]} distinct labels {cls.tolist()} but "
                    f"n_classes={k}. Raise n_classes or pass classes=[...]."
                )
            if cls.dtype.kind in "iu" and cls.min() >= 0 and cls.max() < k:
                cls = np.arange(k)  # integer class ids: keep them as indices
            elif cls.shape[0] < k:
                raise ValueError(
                    f"n_classes={k} but only {cls.shape[0]} labels occur and they are not "
                    f"integer ids 0..{k - 1}; pass classes=[...] with all {k} labels."
                )
        elif cls.dtype.kind in "iu" and cls.min() >= 0:
            check_inferred_k(cls, int(cls.max()) + 1, what="The long-format label column")
            cls = np.arange(int(cls.max()) + 1)
    else:
        cls = np.asarray(list(classes))
        if n_classes is not None and _check_n_classes(n_classes) != cls.shape[0]:
            raise ValueError(f"classes has {cls.shape[0]} entries but n_classes={n_classes}.")
    label_codes = pd.Index(cls).get_indexer(lab_values)
    if (label_codes < 0).any():
        bad = lab_values[label_codes < 0][0]
        raise ValueError(
            f"Unknown class label {_show(bad)} in long-format input; known classes are "
            f"{cls.tolist()}. Fix the label or pass classes=[...] including it."
        )
    return label_codes, cls


def check_known_labels(y: Any, lm: LabelMatrix, notes: list | None = None) -> np.ndarray:
    """Validate known labels ``y`` (class index, ``-1`` = unknown) against a label matrix.

    ``y`` may be an array of length ``n`` aligned with the label matrix's items (class
    indices, ``-1`` unknown), or a pandas Series indexed by item id holding the user's class
    labels (NaN = unknown). Returns an int64 array of class indices with ``-1`` = unknown.

    A Series is aligned by item id (by position only with the default index ``0..n-1``).
    Its index being the positions shifted (e.g. ``1..n``) while not every id is an item is
    an error naming both readings; when only some of its known labels match an item, a
    message with the counts is appended to ``notes`` (the caller warns with it).
    """
    if isinstance(y, pd.Series) and not (
        # positional only for the default index 0..len-1 (pandas 3 turns {1: .., 2: ..}
        # into RangeIndex(1, 3), which holds item ids)
        isinstance(y.index, pd.RangeIndex) and y.index.start == 0 and y.index.step == 1
    ):
        if y.index.has_duplicates:
            dup = y.index[y.index.duplicated()][0]
            raise ValueError(
                f"y is indexed by item id but item {_show(dup)} appears more than once; give one "
                "known label per item."
            )
        items = pd.Index(lm.item_ids)
        known_ids = y.index[y.notna().to_numpy()]
        matched = known_ids.isin(items)
        n_match, n_known = int(matched.sum()), int(known_ids.shape[0])
        if n_known and not n_match:
            raise ValueError(
                f"None of y's item ids (e.g. {_show(known_ids[0])}) is an item of the label "
                f"matrix (e.g. {_show(items[0])}); index y by the same item ids (and dtype) as "
                "the votes, or pass y.to_numpy() to align by position."
            )
        shift = _shifted_positions(y.index, lm.n_items)
        if shift is not None and not y.index.isin(items).all():
            ids = (f"{_show(items[0])}..{_show(items[-1])}" if len(items) > 1
                   else _show(items[0]))
            raise ValueError(
                f"y's index runs {y.index.min()}..{y.index.max()}, the item positions "
                f"0..{lm.n_items - 1} shifted by {shift}, but the items' ids are {ids}: read "
                f"by item id, y labels {n_match} of its {n_known} known items (the rest match "
                f"no item); read by position, it labels all {n_known}. Pass y.to_numpy() to "
                "align by position, or index y by the items' ids."
            )
        if n_match < n_known and notes is not None:
            bad = known_ids[~matched][0]
            notes.append(
                f"y is aligned with the items by its index: {n_match} of its {n_known} known "
                f"labels match an item id and are used, {n_known - n_match} match none (e.g. "
                f"{_show(bad)}) and are ignored. Index y by the items' ids (as_label_matrix(L)"
                ".item_ids) or pass an array in item order."
            )
        return _class_codes(y.reindex(items), lm)
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"y must be 1-D (one label per item); got shape {arr.shape}.")
    if arr.shape[0] != lm.n_items:
        raise ValueError(
            f"y has {arr.shape[0]} entries but the label matrix has {lm.n_items} items; give "
            "one entry per item with -1 where the label is unknown."
        )
    if arr.dtype.kind not in "iuf" and lm.classes.dtype.kind not in "iuf":
        return _class_codes(pd.Series(arr), lm)
    vals = _as_int_labels(arr, "y")
    if (vals < -1).any() or (vals >= lm.n_classes).any():
        bad = vals[(vals < -1) | (vals >= lm.n_classes)][0]
        more = (
            f" (if class {int(bad)} is real, pass n_classes={int(bad) + 1})"
            if bad >= lm.n_classes else ""
        )
        raise ValueError(
            f"y contains {int(bad)}; known labels must be class ids 0..{lm.n_classes - 1} "
            f"with -1 for unknown{more}."
        )
    return vals


def _show(v: Any) -> str:
    """``repr`` of a user's id, NumPy scalars shown as plain Python values."""
    return repr(v.item() if isinstance(v, np.generic) else v)


def _shifted_positions(index: pd.Index, n: int) -> int | None:
    """``o`` when ``index`` is the positions ``0..n-1`` shifted by ``o != 0`` (e.g. a
    1-based index), else ``None``."""
    if len(index) != n or n == 0 or index.dtype.kind not in "iu":
        return None
    lo = int(index.min())
    if lo == 0 or int(index.max()) - lo != n - 1 or index.has_duplicates:
        return None
    return lo


def _class_codes(s: pd.Series, lm: LabelMatrix) -> np.ndarray:
    """Class indices of user labels aligned with the items (missing = unknown = -1)."""
    known = s.notna().to_numpy()
    codes = np.full(lm.n_items, -1, dtype=np.int64)
    values = s[known].to_numpy()
    idx = pd.Index(lm.classes).get_indexer(values)
    if (idx < 0).any():
        raise ValueError(
            f"Known label {_show(values[idx < 0][0])} is not one of the classes "
            f"{lm.classes.tolist()}."
        )
    codes[known] = idx
    return codes
