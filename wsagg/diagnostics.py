"""Diagnostics for the sources (labeling functions), computed on the sparse votes.

For source ``j`` over ``n`` items (the quantities of Snorkel's ``LFAnalysis``, Ratner et al.
2017, computed here in time linear in the number of votes):

* **polarity**: the set of classes ``j`` ever votes;
* **coverage**: fraction of items on which ``j`` votes;
* **overlap**: fraction of items on which ``j`` votes *and* another source votes;
* **conflict**: fraction of items on which ``j`` votes and another source votes a *different*
  class;
* with gold ``y`` (``-1`` = unknown): **correct**, **incorrect** (counted over ``j``'s votes on
  gold items) and **empirical accuracy** = correct / (correct + incorrect), NaN when the
  source never votes on a gold item.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from wsagg.labels import LabelMatrix, as_label_matrix, check_known_labels, flat_index

__all__ = ["abstains_are_informative", "label_matrix_summary", "source_summary"]


def _per_item_source(lm: LabelMatrix) -> tuple[np.ndarray, np.ndarray]:
    """Unique (item, source) pairs as flat keys and their first-vote indices."""
    key = flat_index(lm.item, lm.n_sources, lm.source)
    uniq, first = np.unique(key, return_index=True)
    return uniq, first


def source_summary(L: Any, y: Any = None, n_classes: int | None = None) -> pd.DataFrame:
    """Per-source diagnostics table, indexed by source name.

    Columns: ``polarity``, ``n_votes``, ``coverage``, ``overlap``, ``conflict`` and, when
    ``y`` is given, ``correct``, ``incorrect``, ``emp_accuracy``.
    """
    lm = as_label_matrix(L, n_classes=n_classes)
    n, m, k = lm.n_items, lm.n_sources, lm.n_classes
    counts = lm.class_counts()  # (n, k) votes per item and class, all sources
    total = counts.sum(axis=1)

    # votes of each (item, source) pair per class, to exclude the source's own votes
    pair_key = flat_index(lm.item, m, lm.source)
    uniq_pairs, pair_index = np.unique(pair_key, return_inverse=True)
    own = np.bincount(
        pair_index * k + lm.label, minlength=uniq_pairs.shape[0] * k
    ).reshape(-1, k)
    pair_item = uniq_pairs // m
    pair_source = uniq_pairs % m
    own_total = own.sum(axis=1)
    others_total = total[pair_item] - own_total
    others_counts = counts[pair_item] - own  # (pairs, k)
    # conflict: another source voted a class this source did not vote on this item
    own_voted = own > 0
    conflict_pair = (others_counts * ~own_voted).sum(axis=1) > 0

    coverage = np.bincount(pair_source, minlength=m) / n
    overlap = np.bincount(pair_source, weights=(others_total > 0), minlength=m) / n
    conflict = np.bincount(pair_source, weights=conflict_pair, minlength=m) / n
    n_votes = np.bincount(lm.source, minlength=m)
    voted = np.zeros((m, k), dtype=bool)
    voted[lm.source, lm.label] = True
    polarity = [lm.classes[np.flatnonzero(voted[j])].tolist() for j in range(m)]
    table = pd.DataFrame(
        {
            "polarity": polarity,
            "n_votes": n_votes,
            "coverage": coverage,
            "overlap": overlap,
            "conflict": conflict,
        },
        index=pd.Index(lm.source_names, name="source"),
    )
    if y is not None:
        y_idx = check_known_labels(y, lm)
        gold = y_idx[lm.item]
        on_gold = gold >= 0
        correct = np.bincount(lm.source[on_gold & (lm.label == gold)], minlength=m)
        incorrect = np.bincount(lm.source[on_gold & (lm.label != gold)], minlength=m)
        denom = correct + incorrect
        with np.errstate(invalid="ignore", divide="ignore"):
            emp = np.where(denom > 0, correct / np.maximum(denom, 1), np.nan)
        table["correct"] = correct
        table["incorrect"] = incorrect
        table["emp_accuracy"] = emp
    return table


def label_matrix_summary(L: Any, n_classes: int | None = None) -> dict[str, Any]:
    """Whole-matrix summary: sizes, vote density and coverage/overlap/conflict of items."""
    lm = as_label_matrix(L, n_classes=n_classes)
    counts = lm.class_counts()
    votes = counts.sum(axis=1)
    n_sources_voting = np.bincount(
        _per_item_source(lm)[0] // lm.n_sources, minlength=lm.n_items
    )
    return {
        "n_items": lm.n_items,
        "n_sources": lm.n_sources,
        "n_classes": lm.n_classes,
        "n_votes": lm.n_votes,
        "abstain_rate": 1.0 - _per_item_source(lm)[0].shape[0] / (lm.n_items * lm.n_sources),
        "votes_per_item": float(votes.mean()),
        "coverage": float(np.mean(votes > 0)),
        "overlap": float(np.mean(n_sources_voting > 1)),
        "conflict": float(np.mean((counts > 0).sum(axis=1) > 1)),
        "repeated_votes": bool(lm.has_repeats()),
    }


def abstains_are_informative(counts: np.ndarray, n_votes: int, n_items: int) -> bool:
    """Whether the sources look like labeling functions, whose abstains carry information:
    at least half of the sources with 5 or more votes are *unipolar* (99% of their votes on
    one class) and some (item, source) pair is an abstain.

    ``counts`` is the ``(m, k)`` table of votes per source and class. Used by
    ``DawidSkene(abstain="auto")`` and by ``AutoAggregator``'s gold-free criterion."""
    tot = counts.sum(axis=1)
    active = tot >= 5
    if not active.any() or n_votes >= n_items * counts.shape[0]:
        return False
    unipolar = counts[active].max(axis=1) >= 0.99 * tot[active]
    return bool(unipolar.mean() >= 0.5)
