"""Weighted-vote numerics shared by the agreement-weighted aggregators (Wawa,
ZeroBasedSkill, IWMV). Layer L0: imports only the data model.
"""

from __future__ import annotations

import numpy as np

from wsagg.labels import LabelMatrix

__all__ = ["hard_labels"]

_REL_TIE = 1e-12  # scores within this fraction of the item's total |weight| are tied


def hard_labels(
    lm: LabelMatrix, weights: np.ndarray, ties: str, known: np.ndarray | None
) -> np.ndarray:
    """``(n, k)`` label distribution :math:`h_i` of the weighted vote with per-source
    ``weights``: one-hot at the winner (``"first"``: lowest index among the maxima) or
    uniform over the maxima (``"split"``); rows of known items one-hot at the known class;
    rows without votes zero."""
    n, k = lm.n_items, lm.n_classes
    scores = lm.class_counts(weights)
    h = np.zeros((n, k))
    voted = lm.votes_per_item() > 0
    if ties == "first":
        h[np.flatnonzero(voted), np.argmax(scores[voted], axis=1)] = 1.0
    else:
        scale = lm.class_counts(np.abs(weights)).sum(axis=1, keepdims=True)
        is_max = scores >= scores.max(axis=1, keepdims=True) - _REL_TIE * scale
        is_max &= voted[:, None]
        h = is_max / np.maximum(is_max.sum(axis=1, keepdims=True), 1)
    if known is not None:
        idx = np.flatnonzero(known >= 0)
        h[idx] = 0.0
        h[idx, known[idx]] = 1.0
    return h
