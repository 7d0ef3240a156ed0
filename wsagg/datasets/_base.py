"""The :class:`Dataset` result type shared by every loader, and the builders the loaders use.

Conventions (the same for every loader):

* ``L`` is a :class:`~wsagg.labels.LabelMatrix` whose classes are the *indices*
  ``0..k-1`` (``L.classes == arange(k)``), so that an aggregator fitted on ``L`` predicts
  class indices directly comparable with ``y``. The source's own class values (``1/2``,
  ``"porn"/"notporn"``, ``-1/+1``, ...) are kept, in index order, in ``Dataset.classes``;
  readable names in ``Dataset.class_names``.
* ``y`` holds the gold class index of each item, ``-1`` where no gold exists; it is aligned
  with ``L``'s items (``L.item_ids`` are the source's item ids).
* ``source_names`` are the labeling functions' / workers' names (also ``L.source_names``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from wsagg.labels import DuplicatePolicy, LabelMatrix, as_label_matrix, flat_index

__all__ = ["Dataset"]


@dataclass(frozen=True, eq=False)
class Dataset:
    """A loaded label-aggregation dataset: votes, gold and names.

    Attributes
    ----------
    L : LabelMatrix
        The votes (``n`` items x ``m`` sources, class indices ``0..k-1``).
    y : ndarray of int64, shape (n,)
        Gold class index per item, ``-1`` where unknown.
    class_names : list of str, length k
        Readable class names in class-index order.
    source_names : list of str, length m
        Names of the sources (labeling functions or workers), in column order.
    name, split : str
        Dataset name and split (``"all"`` when the source has no splits).
    classes : ndarray, shape (k,)
        The source's raw class values in class-index order (e.g. ``[1, 2]`` for MeTaL's
        encoding, ``[-1, 1]`` for FlyingSquid's); ``class_names`` are their readable form.
    texts : list of str or None
        Raw item texts where the format has them (WRENCH ``data.text``, spouse sentences).
    metadata : dict
        Anything else the format carries (labeling-function descriptions, the WRENCH
        ``labeled_ids`` mask, the file paths read, the duplicate policy used, ...).
    """

    L: LabelMatrix
    y: np.ndarray
    class_names: list[str]
    source_names: list[str]
    name: str
    split: str = "all"
    classes: np.ndarray | None = None
    texts: list[str] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        y = np.asarray(self.y)
        if y.shape != (self.L.n_items,):
            raise ValueError(
                f"Dataset {self.name!r}: y has shape {y.shape} but L has {self.L.n_items} items."
            )
        if len(self.class_names) != self.L.n_classes:
            raise ValueError(
                f"Dataset {self.name!r}: {len(self.class_names)} class names for "
                f"{self.L.n_classes} classes."
            )
        if len(self.source_names) != self.L.n_sources:
            raise ValueError(
                f"Dataset {self.name!r}: {len(self.source_names)} source names for "
                f"{self.L.n_sources} sources."
            )
        if self.texts is not None and len(self.texts) != self.L.n_items:
            raise ValueError(
                f"Dataset {self.name!r}: {len(self.texts)} texts for {self.L.n_items} items."
            )
        if self.classes is None:
            object.__setattr__(self, "classes", np.asarray(self.class_names, dtype=object))

    # ------------------------------------------------------------------ shape
    @property
    def n_items(self) -> int:
        return self.L.n_items

    @property
    def n_sources(self) -> int:
        return self.L.n_sources

    @property
    def n_classes(self) -> int:
        return self.L.n_classes

    @property
    def n_votes(self) -> int:
        return self.L.n_votes

    @property
    def has_gold(self) -> np.ndarray:
        """Boolean mask of the items with a gold label."""
        return self.y >= 0

    @property
    def item_ids(self) -> np.ndarray:
        return self.L.item_ids

    # ------------------------------------------------------------ conversions
    def dense(self) -> np.ndarray:
        """Dense ``(n, m)`` int matrix, ``-1`` = abstain (an error if votes repeat)."""
        return self.L.to_dense()

    def sparse(self) -> sp.csr_matrix:
        """Sparse ``(n, m)`` CSR matrix with stored value ``label + 1`` (absent = abstain)."""
        return self.L.to_sparse()

    def long(self) -> pd.DataFrame:
        """Long format ``item, source, label`` (item ids, source names, class indices)."""
        return pd.DataFrame(
            {
                "item": self.L.item_ids[self.L.item],
                "source": np.asarray(self.source_names, dtype=object)[self.L.source],
                "label": self.L.label.astype(np.int64),  # (stored in the small dtype)
            }
        )

    def gold_series(self) -> pd.Series:
        """Gold labels as a Series indexed by item id, class names as values (NaN unknown)."""
        names = np.asarray(self.class_names, dtype=object)
        vals = np.where(self.y >= 0, names[np.maximum(self.y, 0)], None)
        return pd.Series(vals, index=pd.Index(self.L.item_ids, name="item"), name="gold")

    # ---------------------------------------------------------------- summary
    def majority_vote_accuracy(self) -> float:
        """Majority-vote accuracy on the gold items with at least one vote, ties scored as
        the expected accuracy under a uniformly random tie-break (MANIFEST's "MV acc").

        ``nan`` when no gold item has a vote. Every vote counts, repeated votes included
        (the vote counts themselves: the data model, no aggregator).
        """
        mask = self.has_gold & self.L.covered()
        if not mask.any():
            return float("nan")
        counts = self.L.class_counts()[mask]
        top = counts >= counts.max(axis=1, keepdims=True) - 1e-12
        gold = self.y[mask]
        hit = top[np.arange(gold.shape[0]), gold]
        return float(np.mean(hit / top.sum(axis=1)))

    def summary(self) -> dict[str, Any]:
        """Counts in the MANIFEST's terms: items, sources, K, votes, abstain %, gold, MV acc."""
        gold = self.has_gold
        counts = np.bincount(self.y[gold], minlength=self.n_classes)
        n, m = self.n_items, self.n_sources
        _, pair_counts = np.unique(flat_index(self.L.item, m, self.L.source), return_counts=True)
        n_dup_pairs = int(np.sum(pair_counts > 1))
        return {
            "dataset": self.name,
            "split": self.split,
            "items": n,
            "sources": m,
            "K": self.n_classes,
            "votes": self.n_votes,
            "abstain_pct": 100.0 * (1.0 - self.n_votes / (n * m)) if n * m else float("nan"),
            "gold": int(gold.sum()),
            "gold_classes": dict(zip(self.class_names, counts.tolist(), strict=True)),
            "dup_pairs": n_dup_pairs,
            "mv_acc": self.majority_vote_accuracy(),
        }

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, split={self.split!r}, items={self.n_items}, "
            f"sources={self.n_sources}, classes={self.class_names}, votes={self.n_votes}, "
            f"gold={int(self.has_gold.sum())})"
        )


# ----------------------------------------------------------------------------------------
# builders shared by the loaders
# ----------------------------------------------------------------------------------------


def check_file(path: str | Path, what: str) -> Path:
    """Return ``Path(path)`` or raise a clear FileNotFoundError."""
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"{what} not found: {p}. Check the path (or WSAGG_DATA_HOME).")
    return p


def _names(values: Sequence[Hashable] | np.ndarray) -> list[str]:
    out = []
    for v in values:
        if isinstance(v, float | np.floating) and float(v).is_integer():
            v = int(v)
        elif isinstance(v, np.generic):
            v = v.item()
        out.append(str(v))
    return out


def sorted_classes(values: np.ndarray) -> np.ndarray:
    """Sorted distinct raw class values: numeric order if all numeric, else string order."""
    vals = pd.unique(pd.Series(values).dropna())
    num = pd.to_numeric(pd.Series(vals), errors="coerce")
    if len(vals) and num.notna().all():
        num = num.to_numpy()
        if np.all(num == np.round(num)):
            return np.unique(num.astype(np.int64))
        return np.unique(num)
    return np.asarray(sorted(vals, key=str), dtype=object)


def normalize_class_values(values: np.ndarray) -> np.ndarray:
    """Numeric strings -> numbers (so that ``"1"`` and ``1`` are the same class)."""
    s = pd.Series(values)
    num = pd.to_numeric(s, errors="coerce")
    if (num.notna() | s.isna()).all():
        arr = num.to_numpy()
        finite = arr[~np.isnan(arr)]
        if np.all(finite == np.round(finite)):
            out = np.full(arr.shape[0], None, dtype=object)
            ok = ~np.isnan(arr)
            out[ok] = arr[ok].astype(np.int64)
            return out
        return arr.astype(object)
    return s.to_numpy(dtype=object)


def encode_gold(
    values: np.ndarray, classes: np.ndarray, what: str, unknown: Sequence[Any] = ()
) -> np.ndarray:
    """Map raw gold values onto class indices (``-1`` for missing / ``unknown`` values)."""
    values = np.asarray(values, dtype=object)
    missing = pd.isna(values)
    for u in unknown:
        missing |= values == u
    out = np.full(values.shape[0], -1, dtype=np.int64)
    idx = pd.Index(classes).get_indexer(values[~missing])
    if (idx < 0).any():
        bad = values[~missing][idx < 0][0]
        raise ValueError(
            f"{what}: gold value {bad!r} is not one of the classes "
            f"{np.asarray(classes).tolist()}. Fix the file, or pass classes=[...] listing "
            "every class."
        )
    out[~missing] = idx
    return out


def dataset_from_triples(
    items: np.ndarray,
    sources: np.ndarray,
    labels: np.ndarray,
    *,
    gold_items: np.ndarray | None = None,
    gold_labels: np.ndarray | None = None,
    classes: Sequence[Hashable] | np.ndarray | None = None,
    class_names: Sequence[str] | None = None,
    duplicates: DuplicatePolicy = "count",
    name: str,
    split: str = "all",
    metadata: dict[str, Any] | None = None,
    what: str = "triples",
) -> Dataset:
    """Build a :class:`Dataset` from raw (item, source, label) triples and an optional gold
    table; items = union of labelled and gold items (gold-only items get no vote)."""
    labels = normalize_class_values(np.asarray(labels, dtype=object))
    if gold_labels is not None:
        gold_labels = normalize_class_values(np.asarray(gold_labels, dtype=object))
    if classes is None:
        pool = labels if gold_labels is None else np.concatenate([labels, gold_labels])
        classes = sorted_classes(pool)
    cls = np.asarray(list(classes))
    if cls.shape[0] < 2:
        raise ValueError(
            f"{what}: only {cls.shape[0]} distinct class value(s) {cls.tolist()} found; pass "
            "classes=[...] listing every class (at least 2)."
        )
    idx = pd.Index(cls)
    codes = idx.get_indexer(labels)
    present = ~pd.isna(labels)
    if (codes[present] < 0).any():
        bad = labels[present][codes[present] < 0][0]
        raise ValueError(
            f"{what}: label {bad!r} is not one of the classes {cls.tolist()}. Pass classes=[...] "
            "including it, or fix the file."
        )
    codes = np.where(present, codes, np.nan)
    lm = as_label_matrix(
        (np.asarray(items), np.asarray(sources), codes),
        classes=np.arange(cls.shape[0]),
        duplicates=duplicates,
    )
    y = np.full(lm.n_items, -1, dtype=np.int64)
    if gold_items is not None:
        gold_items = np.asarray(gold_items)
        if pd.Series(gold_items).duplicated().any():
            dup = pd.Series(gold_items)[pd.Series(gold_items).duplicated()].iloc[0]
            raise ValueError(f"{what}: the gold table lists item {dup!r} more than once.")
        gold_codes = encode_gold(gold_labels, cls, what)
        pos = pd.Index(lm.item_ids).get_indexer(gold_items)
        new = pos < 0
        if new.all() and gold_items.shape[0] > 0:
            raise ValueError(
                f"{what}: none of the {gold_items.shape[0]} gold items (e.g. {gold_items[0]!r}) "
                f"is among the answered items (e.g. {lm.item_ids[0]!r}). Check the truth "
                "file's item column (truth_item_col=) and that ids are written the same way."
            )
        if new.any():  # gold-only items: appended, with no votes
            extra = gold_items[new]
            lm = dataclasses.replace(
                lm,
                n_items=lm.n_items + int(new.sum()),
                item_ids=np.concatenate([np.asarray(lm.item_ids, dtype=object), extra]),
                _cache={},
            )
            pos[new] = np.arange(y.shape[0], y.shape[0] + int(new.sum()))
            y = np.concatenate([y, np.full(int(new.sum()), -1, dtype=np.int64)])
        y[pos] = gold_codes
    source_names = _names(lm.source_names)
    lm = dataclasses.replace(lm, source_names=np.asarray(source_names, dtype=object), _cache={})
    meta = {"duplicates": duplicates, **(metadata or {})}
    return Dataset(
        L=lm,
        y=y,
        class_names=list(class_names) if class_names is not None else _names(cls),
        source_names=source_names,
        name=name,
        split=split,
        classes=cls,
        metadata=meta,
    )


def dataset_from_dense(
    L_raw: np.ndarray,
    y_raw: np.ndarray | None,
    *,
    abstain_value: Any = -1,
    class_values: Sequence[Any] | np.ndarray | None = None,
    class_names: Sequence[str] | None = None,
    source_names: Sequence[str] | None = None,
    y_unknown_value: Any = None,
    name: str,
    split: str = "all",
    texts: list[str] | None = None,
    item_ids: np.ndarray | None = None,
    metadata: dict[str, Any] | None = None,
    what: str = "label matrix",
) -> Dataset:
    """Build a :class:`Dataset` from a dense matrix in any encoding.

    ``abstain_value`` is the raw value meaning *abstain*; ``class_values`` lists the raw
    class values in class-index order (inferred when ``None``: ``0..max`` if the raw classes
    are non-negative integers with abstain ``-1``, else the sorted distinct values).
    """
    L_arr = _numeric_matrix(L_raw, what, abstain_value)
    if L_arr.ndim != 2:
        raise ValueError(
            f"{what}: expected a 2-D (items, sources) matrix, got shape {L_arr.shape}. "
            "For one source use L.reshape(-1, 1)."
        )
    n, m = L_arr.shape
    if n == 0 or m == 0:
        raise ValueError(f"{what}: the label matrix has shape {L_arr.shape} (no items or sources).")
    y_arr = None
    if y_raw is not None:
        y_arr = _numeric_matrix(y_raw, f"{what} (gold)", None).reshape(-1)
        if y_arr.shape[0] != n:
            raise ValueError(
                f"{what}: gold has {y_arr.shape[0]} entries but the label matrix has {n} rows."
            )
    vote_mask = L_arr != abstain_value
    if y_arr is None:
        y_known = np.zeros(0, dtype=bool)
    else:  # gold is unknown where it equals y_unknown_value (if given) or is NaN
        y_known = ~np.isnan(y_arr) if y_arr.dtype.kind == "f" else np.ones(n, dtype=bool)
        if y_unknown_value is not None:
            y_known &= y_arr != y_unknown_value
    if class_values is None:
        pool = L_arr[vote_mask]
        if y_arr is not None:
            pool = np.concatenate([pool, y_arr[y_known]])
        pool = np.unique(pool)
        if abstain_value == -1 and pool.size and pool.min() >= 0:
            cv = np.arange(int(pool.max()) + 1)
        else:
            cv = pool
    else:
        cv = np.asarray(list(class_values))
    if cv.shape[0] < 2:
        raise ValueError(
            f"{what}: only {cv.shape[0]} class value(s) {cv.tolist()} found; pass "
            "class_values=[...] listing every class (at least 2)."
        )
    if np.any(cv == abstain_value):
        raise ValueError(
            f"{what}: abstain_value={abstain_value!r} is also listed as a class value "
            f"{cv.tolist()}."
        )
    order = np.argsort(cv, kind="stable")
    sorted_cv = cv[order]

    def _encode(values: np.ndarray, label: str) -> np.ndarray:
        pos = np.searchsorted(sorted_cv, values)
        pos = np.minimum(pos, sorted_cv.shape[0] - 1)
        ok = sorted_cv[pos] == values
        if not ok.all():
            bad = values[~ok][0]
            bad = bad.item() if isinstance(bad, np.generic) else bad
            raise ValueError(
                f"{what}: {label} value {bad!r} is neither abstain ({abstain_value!r}) nor one "
                f"of the class values {cv.tolist()}. Set abstain_value= / class_values= to "
                "match the file's encoding (e.g. MeTaL: abstain_value=0, class_values=[1, 2])."
            )
        return order[pos].astype(np.int64)

    rows, cols = np.nonzero(vote_mask)
    labels = _encode(L_arr[rows, cols], "vote")
    k = cv.shape[0]
    names = list(source_names) if source_names is not None else [f"lf{j}" for j in range(m)]
    lm = LabelMatrix(
        item=rows.astype(np.int64),
        source=cols.astype(np.int64),
        label=labels,
        n_items=n,
        n_sources=m,
        n_classes=k,
        item_ids=np.arange(n) if item_ids is None else np.asarray(item_ids),
        source_names=np.asarray(names, dtype=object),
        classes=np.arange(k),
    )
    y = np.full(n, -1, dtype=np.int64)
    if y_arr is not None:
        y[y_known] = _encode(y_arr[y_known], "gold")
    return Dataset(
        L=lm,
        y=y,
        class_names=list(class_names) if class_names is not None else _names(cv),
        source_names=names,
        name=name,
        split=split,
        classes=cv,
        texts=texts,
        metadata=dict(metadata or {}),
    )


def _numeric_matrix(arr: Any, what: str, abstain_value: Any) -> np.ndarray:
    """Signed int64 (or float64) copy of a numeric array; rejects fractions and NaN.

    Unsigned arrays (MATLAB files store ``uint8``) are cast to int64 first, so that
    arithmetic and comparisons with ``-1`` behave; a uint array holding its dtype's maximum
    (``255`` for uint8) with ``abstain_value=-1`` is read as a wrapped ``-1``.
    """
    a = np.asarray(arr)
    if a.dtype == bool:
        return a.astype(np.int64)
    if a.dtype.kind == "u":
        top = np.iinfo(a.dtype).max
        out = a.astype(np.int64)
        if abstain_value == -1:
            out[a == top] = -1
        return out
    if a.dtype.kind == "i":
        return a.astype(np.int64)
    if a.dtype.kind == "f":
        finite = a[np.isfinite(a)]
        if np.any(finite != np.round(finite)):
            bad = finite[finite != np.round(finite)][0]
            raise ValueError(
                f"{what}: non-integer value {float(bad)!r}; class ids must be whole numbers."
            )
        if abstain_value is not None and np.isnan(a).any():
            raise ValueError(
                f"{what}: contains NaN; encode abstains as {abstain_value!r} in the file."
            )
        if np.isnan(a).any():
            return a.astype(np.float64)
        return a.astype(np.int64)
    raise TypeError(f"{what}: dtype {a.dtype} is not numeric; expected integer class ids.")
