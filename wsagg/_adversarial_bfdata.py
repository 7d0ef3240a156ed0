"""Loader of An & Dasgupta's (UAI 2024) ``.mat`` data sets, as shared in
``<data home>/bf_uai2024/`` (train / validation / test votes and labels).

Encoding (see the notes in ``shared/notes``): ``*_pred`` is an ``(n, p)`` vote matrix with
``-1`` = abstain; ``*_labels`` are ``(1, n)`` row vectors; in ``breast_cancer`` and
``cardio`` the arrays are ``uint8`` and are cast to a signed type here before anything
compares them with ``-1``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["BF_DATASETS", "load_bf_mat"]

BF_DATASETS = ("breast_cancer", "cardio", "domain", "youtube", "sms")


def load_bf_mat(data_home: str | Path, name: str) -> dict[str, np.ndarray]:
    """``{"train_L", "train_y", "val_L", "val_y", "test_L", "test_y", "n_classes"}``."""
    from scipy.io import loadmat

    path = Path(data_home) / "bf_uai2024" / f"{name}.mat"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; set WSAGG_DATA_HOME to the shared data folder.")
    raw = loadmat(path)
    out: dict[str, np.ndarray] = {}
    for split, lab in (("train", "train_labels"), ("val", "validation_labels"),
                       ("test", "test_labels")):
        L = np.asarray(raw[f"{split}_pred"])
        if L.dtype.kind == "u":
            L = L.astype(np.int64)  # uint8 cannot hold -1: cast before any comparison
        out[f"{split}_L"] = L.astype(np.int64)
        out[f"{split}_y"] = np.asarray(raw[lab]).astype(np.int64).ravel()
    k = 1 + max(int(out[f"{s}_y"].max()) for s in ("train", "val", "test"))
    k = max(k, 1 + max(int(out[f"{s}_L"].max()) for s in ("train", "val", "test")))
    out["n_classes"] = k
    return out
