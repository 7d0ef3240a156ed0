"""The embedded demo dataset: WRENCH YouTube spam label matrices (no texts).

``wsagg/datasets/data/youtube_wrench.npz`` holds, for each split ``train`` / ``valid`` /
``test``: ``L_<split>`` (int8, items x 10 LFs, ``-1`` = abstain), ``y_<split>`` (int8 gold,
0 = HAM, 1 = SPAM) and ``ids_<split>`` (the WRENCH item ids, strings), plus ``lf_names``,
``class_names`` and ``labeled_train`` (WRENCH's ``labeled_ids`` subset of train). Source and
licenses: ``wsagg/datasets/data/SOURCE.md``. It was written by :func:`write_demo_npz` from
the shared ``wrench_youtube`` folder.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

from wsagg.datasets._base import Dataset, dataset_from_dense

__all__ = ["DEMO_SPLITS", "load_demo"]

DEMO_FILE = "youtube_wrench.npz"
DEMO_SPLITS = ("train", "valid", "test")


def load_demo(split: str = "train") -> Dataset:
    """The embedded WRENCH YouTube spam dataset (10 Snorkel LFs, 2 classes HAM / SPAM).

    Splits: ``train`` (1686 items, including WRENCH's 100 ``labeled_ids``), ``valid``
    (120), ``test`` (250). Gold for every item. No texts (see the shared
    ``wrench_youtube`` folder for them).
    """
    if split not in DEMO_SPLITS:
        raise ValueError(f"Unknown split {split!r} for the demo dataset; use one of {DEMO_SPLITS}.")
    ref = resources.files("wsagg.datasets").joinpath("data", DEMO_FILE)
    with resources.as_file(ref) as path, np.load(path, allow_pickle=False) as z:
        L = z[f"L_{split}"]
        y = z[f"y_{split}"]
        ids = z[f"ids_{split}"]
        lf_names = [str(s) for s in z["lf_names"]]
        class_names = [str(s) for s in z["class_names"]]
        meta = {"source": "wsagg/datasets/data/SOURCE.md"}
        if split == "train":
            meta["labeled"] = z["labeled_train"].astype(bool)
    return dataset_from_dense(
        L,
        y,
        abstain_value=-1,
        class_values=np.arange(len(class_names)),
        class_names=class_names,
        source_names=lf_names,
        y_unknown_value=-1,
        name="youtube (embedded demo)",
        split=split,
        item_ids=ids.astype(object),  # WRENCH ids, as strings
        metadata=meta,
        what="embedded demo dataset",
    )


def write_demo_npz(wrench_youtube_dir: str | Path, out: str | Path) -> None:
    """Rebuild the demo archive from a WRENCH ``youtube`` directory (maintainers only)."""
    from wsagg.datasets._loaders import load_wrench

    arrays: dict[str, np.ndarray] = {}
    for split in DEMO_SPLITS:
        ds = load_wrench(wrench_youtube_dir, split, texts=False)
        arrays[f"L_{split}"] = ds.dense().astype(np.int8)
        arrays[f"y_{split}"] = ds.y.astype(np.int8)
        arrays[f"ids_{split}"] = np.asarray(ds.item_ids, dtype=str)
        if split == "train":
            arrays["labeled_train"] = ds.metadata["labeled"].astype(np.int8)
            arrays["lf_names"] = np.asarray(ds.source_names, dtype=str)
            arrays["class_names"] = np.asarray(ds.class_names, dtype=str)
    np.savez_compressed(out, **arrays)
