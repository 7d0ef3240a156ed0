"""An & Dasgupta's (UAI 2024) data sets as the dense arrays their protocol uses.

A thin adapter over :func:`wsagg.datasets.load_shared` (``"bf_uai2024/<name>"``), which
reads the ``.mat`` files (and casts the ``uint8`` arrays of ``breast_cancer`` and ``cardio``
to a signed type before anything compares them with ``-1``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["BF_DATASETS", "load_bf_mat"]

BF_DATASETS = ("breast_cancer", "cardio", "domain", "youtube", "sms")


def load_bf_mat(data_home: str | Path, name: str) -> dict[str, np.ndarray]:
    """``{"train_L", "train_y", "val_L", "val_y", "test_L", "test_y", "n_classes"}``."""
    from wsagg.datasets import load_shared

    out: dict[str, np.ndarray] = {}
    k = 0
    for key, split in (("train", "train"), ("val", "valid"), ("test", "test")):
        data = load_shared(f"bf_uai2024/{name}", split=split, data_home=data_home)
        out[f"{key}_L"] = data.dense().astype(np.int64)
        out[f"{key}_y"] = np.asarray(data.y, dtype=np.int64)
        k = max(k, data.n_classes)
    out["n_classes"] = k
    return out
