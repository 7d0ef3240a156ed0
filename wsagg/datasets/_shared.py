"""Registry of the real datasets in the shared data directory (``../shared/data``).

``load_shared(name, split)`` knows each folder's format and encoding (see the folder's
``MANIFEST.md``); ``list_shared()`` lists the names. The data directory is ``data_home`` if
given, else ``$WSAGG_DATA_HOME``, else ``<repository>/../shared/data``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from wsagg.datasets._base import Dataset, check_file, dataset_from_triples
from wsagg.datasets._loaders import (
    load_crowd_triples,
    load_cubam_yaml,
    load_label_matrix_csv,
    load_label_matrix_mat,
    load_label_matrix_npy,
    load_label_matrix_npz,
    load_wrench,
)

__all__ = [
    "get_data_home",
    "list_shared",
    "load_dawid_skene_1979",
    "load_shared",
    "load_youtube_spam_uci",
    "shared_info",
    "summarize_shared",
]


def get_data_home(data_home: str | Path | None = None) -> Path:
    """The shared data directory: the argument, ``$WSAGG_DATA_HOME``, or
    ``<repository>/../shared/data``; a clear error if it does not exist."""
    if data_home is not None:
        path = Path(data_home).expanduser()
    elif os.environ.get("WSAGG_DATA_HOME"):
        path = Path(os.environ["WSAGG_DATA_HOME"]).expanduser()
    else:
        path = Path(__file__).resolve().parents[3] / "shared" / "data"
    if not path.is_dir():
        raise FileNotFoundError(
            f"Shared data directory {path} not found. Pass data_home=... or set the "
            "WSAGG_DATA_HOME environment variable to the folder holding MANIFEST.md."
        )
    return path


@dataclass(frozen=True)
class _Entry:
    name: str
    splits: tuple[str, ...]
    fmt: str
    license: str
    load: Callable[..., Dataset]


# ------------------------------------------------------------------------------- WRENCH
def _wrench(sub: str) -> Callable[..., Dataset]:
    def load(home: Path, split: str, name: str) -> Dataset:
        return load_wrench(home / sub, split, name=name)

    return load


def _wrench_alt(home: Path, split: str, name: str) -> Dataset:
    # this copy has no label.json / readme: they are the parent's (same LFs, same classes)
    return load_wrench(
        home / "wrench_youtube" / "alt_nhbess_tutorial",
        split,
        label_file=home / "wrench_youtube" / "label.json",
        readme_file=home / "wrench_youtube" / "readme.txt",
        name=name,
    )


# ---------------------------------------------------------------------- dense matrices
def _spouse(home: Path, split: str, name: str) -> Dataset:
    return load_label_matrix_csv(
        home / "spouse_snorkel_test" / "test_spouse_snorkel.csv",
        source_cols=r"LF\d+",
        label_col="label",
        text_col="sentence",
        class_values=[0, 1],
        class_names=["0 (not spouse)", "1 (spouse)"],
        name=name,
        split=split,
    )


def _metal(home: Path, split: str, name: str) -> Dataset:
    # MeTaL encoding: 0 = abstain, classes 1/2 -> indices 0/1
    return load_label_matrix_npz(
        home / "metal_cdr" / "cdr_metal.npz",
        L_key=f"L_{split}",
        y_key=f"Y_{split}",
        abstain_value=0,
        class_values=[1, 2],
        name=name,
        split=split,
    )


def _tennis(home: Path, split: str, name: str) -> Dataset:
    # FlyingSquid encoding: 0 = abstain, classes -1 / +1 -> indices 0 / 1; train has no gold
    d = home / "flyingsquid_tennis_video"
    key = {"train": "train", "valid": "dev"}[split]
    return load_label_matrix_npy(
        d / f"L_{key}_video.npy",
        d / "Y_dev_video.npy" if split == "valid" else None,
        abstain_value=0,
        class_values=[-1, 1],
        class_names=["non-rally(-1)", "rally(+1)"],
        name=name,
        split=split,
    )


_BF_KEYS = {
    "train": ("train_pred", "train_labels"),
    "valid": ("val_pred", "validation_labels"),
    "test": ("test_pred", "test_labels"),
}


def _bf(stem: str, k: int) -> Callable[..., Dataset]:
    def load(home: Path, split: str, name: str) -> Dataset:
        L_key, y_key = _BF_KEYS[split]
        return load_label_matrix_mat(
            home / "bf_uai2024" / f"{stem}.mat",
            L_key,
            y_key,
            abstain_value=-1,
            class_values=np.arange(k),
            name=name,
            split=split,
        )

    return load


# ------------------------------------------------------------------------------- crowd
def _snow(task: str) -> Callable[..., Dataset]:
    def load(home: Path, split: str, name: str, duplicates: str = "count") -> Dataset:
        return load_crowd_triples(
            home / f"snow2008_{task}" / f"{task}.standardized.tsv",
            item_col="orig_id",
            worker_col="!amt_worker_ids",
            label_col="response",
            gold_col="gold",
            duplicates=duplicates,
            name=name,
            split=split,
        )

    return load


def _truth_pair(sub: str, answers: str, truth: str) -> Callable[..., Dataset]:
    def load(home: Path, split: str, name: str, duplicates: str = "count") -> Dataset:
        return load_crowd_triples(
            home / sub / answers, home / sub / truth, duplicates=duplicates, name=name, split=split
        )

    return load


def _bluebirds(home: Path, split: str, name: str, duplicates: str = "count") -> Dataset:
    d = home / "welinder_bluebirds"
    return load_cubam_yaml(d / "labels.yaml", d / "gt.yaml", duplicates=duplicates, name=name)


# The toy's truth as stated in its README.txt ("The correct (but unknown) label for url1,
# url3, and url5 is notporn; for url2 and url4 is porn."). The repo's evaluation.txt disagrees
# on url3/url4 and looks wrong (the two high-quality workers agree with the README).
_GAL_README_TRUTH = {
    "url1": "notporn",
    "url2": "porn",
    "url3": "notporn",
    "url4": "porn",
    "url5": "notporn",
}


def _gal(
    home: Path, split: str, name: str, duplicates: str = "count", truth: str = "readme"
) -> Dataset:
    d = home / "gal_adultcontent"
    votes = pd.read_csv(
        check_file(d / "labels.txt", "GAL labels.txt"), sep="\t", header=None, dtype=str
    )
    if truth == "readme":
        gi, gl = np.asarray(list(_GAL_README_TRUTH)), np.asarray(list(_GAL_README_TRUTH.values()))
    elif truth in ("gold", "evaluation"):
        g = pd.read_csv(check_file(d / f"{truth}.txt", f"GAL {truth}.txt"), sep="\t",
                        header=None, dtype=str)
        gi, gl = g[0].to_numpy(), g[1].to_numpy()
    else:
        raise ValueError(f"truth must be 'readme', 'gold' or 'evaluation'; got {truth!r}.")
    return dataset_from_triples(
        votes[1].to_numpy(),
        votes[0].to_numpy(),
        votes[2].to_numpy(),
        gold_items=gi,
        gold_labels=gl,
        duplicates=duplicates,  # type: ignore[arg-type]
        name=name,
        split=split,
        metadata={"truth": truth},
        what=str(d / "labels.txt"),
    )


def load_dawid_skene_1979(
    path: str | Path,
    *,
    repeats: str = "sources",
    name: str = "dawid_skene_1979",
) -> Dataset:
    """Table 1 of Dawid & Skene (1979): 45 patients, 5 observers, ratings 1-4, no gold.

    Observer 1 examined every patient three times. Two representations:

    ``repeats="sources"`` (default; the MANIFEST's 7 sources)
        each of observer 1's examinations is its own source ``obs1_r0, obs1_r1, obs1_r2``,
        plus ``obs2..obs5``: a dense ``45 x 7`` matrix any aggregator accepts. It treats
        the three examinations as independent sources with separate confusion matrices.
    ``repeats="count"``
        5 sources ``obs1..obs5``; observer 1 has three votes per patient, all counted (the
        paper's model: one confusion matrix per observer, estimated from every rating).
        Use this to reproduce the paper's estimates with an EM that counts repeated votes.

    ``y`` is all ``-1``: there is no gold.
    """
    path = check_file(path, "Dawid-Skene table CSV")
    df = pd.read_csv(path, dtype=str)
    need = {"patient", "observer", "repeat", "rating"}
    if not need <= set(df.columns):
        raise ValueError(f"{path}: needs columns {sorted(need)}; got {list(df.columns)}.")
    if repeats == "sources":
        n_rep = df.groupby("observer")["repeat"].transform("nunique")
        src = np.where(
            n_rep > 1, "obs" + df["observer"] + "_r" + df["repeat"], "obs" + df["observer"]
        )
        dup = "error"
    elif repeats == "count":
        src = ("obs" + df["observer"]).to_numpy()
        dup = "count"
    else:
        raise ValueError(f"repeats must be 'sources' or 'count'; got {repeats!r}.")
    ds = dataset_from_triples(
        df["patient"].to_numpy(),
        np.asarray(src, dtype=object),
        df["rating"].to_numpy(),
        classes=[1, 2, 3, 4],
        duplicates=dup,  # type: ignore[arg-type]
        name=name,
        metadata={"repeats": repeats},
        what=str(path),
    )
    return ds


def _dawid_skene(
    home: Path, split: str, name: str, repeats: str = "sources"
) -> Dataset:
    return load_dawid_skene_1979(
        home / "dawid_skene_1979" / "dawid_skene_1979_table1.csv", repeats=repeats, name=name
    )


def load_youtube_spam_uci(data_home: str | Path | None = None) -> pd.DataFrame:
    """The raw UCI YouTube Spam Collection texts (no label matrix: for writing LFs).

    Returns a DataFrame with columns ``COMMENT_ID, AUTHOR, DATE, CONTENT, CLASS`` (1 = spam)
    and ``video`` (the file's stem), 1956 rows.
    """
    d = get_data_home(data_home) / "youtube_spam_uci"
    files = sorted(d.glob("Youtube0*.csv"))
    if not files:
        raise FileNotFoundError(f"No Youtube0*.csv files in {d}.")
    frames = [pd.read_csv(f).assign(video=f.stem) for f in files]
    return pd.concat(frames, ignore_index=True)


_WRENCH_LIC = "WRENCH Apache-2.0; data: original terms (see MANIFEST)"
_REGISTRY: dict[str, _Entry] = {
    e.name: e
    for e in [
        _Entry("wrench_youtube", ("train", "valid", "test"), "WRENCH JSON",
               "UCI YouTube Spam CC BY 4.0; " + _WRENCH_LIC, _wrench("wrench_youtube")),
        _Entry("wrench_youtube/alt_nhbess_tutorial", ("train", "valid", "test"), "WRENCH JSON",
               "none stated; " + _WRENCH_LIC, _wrench_alt),
        _Entry("wrench_sms", ("train", "valid", "test"), "WRENCH JSON",
               "UCI SMS Spam CC BY 4.0; " + _WRENCH_LIC, _wrench("wrench_sms")),
        _Entry("wrench_trec", ("train", "valid", "test"), "WRENCH JSON", _WRENCH_LIC,
               _wrench("wrench_trec")),
        _Entry("spouse_snorkel_test", ("all",), "wide CSV (LF1..LF9, -1 abstain)",
               "none stated (Snorkel tutorials Apache-2.0)", _spouse),
        _Entry("metal_cdr", ("train", "dev"), "npz (0 = abstain, classes 1/2)",
               "Apache-2.0 (MeTaL); CDR data original terms", _metal),
        _Entry("flyingsquid_tennis_video", ("train", "valid"), "npy (0 = abstain, classes -1/+1)",
               "Apache-2.0", _tennis),
        _Entry("snow2008_rte", ("all",), "TSV triples + gold column", "repo MIT", _snow("rte")),
        _Entry("snow2008_temp", ("all",), "TSV triples + gold column", "repo MIT",
               _snow("temp")),
        _Entry("snow2008_wsd", ("all",), "TSV triples + gold column", "repo MIT", _snow("wsd")),
        _Entry("welinder_bluebirds", ("all",), "CUBAM YAML", "Clear-BSD (Caltech)", _bluebirds),
        _Entry("zhou2012_web", ("all",), "CSV triples + truth CSV", "repo MIT",
               _truth_pair("zhou2012_web", "label.csv", "truth.csv")),
        _Entry("zheng_dog", ("all",), "CSV triples + truth CSV", "none stated",
               _truth_pair("zheng_dog", "answer.csv", "truth.csv")),
        _Entry("zheng_face", ("all",), "CSV triples + truth CSV", "none stated",
               _truth_pair("zheng_face", "answer.csv", "truth.csv")),
        _Entry("zheng_product", ("all",), "CSV triples + truth CSV", "none stated",
               _truth_pair("zheng_product", "answer.csv", "truth.csv")),
        _Entry("gal_adultcontent_toy", ("all",), "TSV triples (truth from README)",
               "Apache-2.0", _gal),
        _Entry("dawid_skene_1979", ("all",), "CSV patient, observer, repeat, rating; no gold",
               "none (data from the 1979 paper)", _dawid_skene),
        *[
            _Entry(f"bf_uai2024/{stem}", ("train", "valid", "test"), ".mat (-1 = abstain)",
                   "Apache-2.0", _bf(stem, k))
            for stem, k in (("breast_cancer", 2), ("cardio", 2), ("domain", 5), ("sms", 2),
                            ("youtube", 2))
        ],
    ]
}


def list_shared() -> list[str]:
    """Names accepted by :func:`load_shared` (the label-matrix datasets of the MANIFEST)."""
    return list(_REGISTRY)


def shared_info(name: str) -> dict[str, Any]:
    """Splits, format and license of a shared dataset."""
    e = _entry(name)
    return {"name": e.name, "splits": list(e.splits), "format": e.fmt, "license": e.license}


def _entry(name: str) -> _Entry:
    if name not in _REGISTRY:
        raise ValueError(f"Unknown shared dataset {name!r}. Known: {list(_REGISTRY)}.")
    return _REGISTRY[name]


def load_shared(
    name: str, split: str | None = None, data_home: str | Path | None = None, **kwargs: Any
) -> Dataset:
    """Load a real dataset of the shared data directory by name.

    Parameters
    ----------
    name : str
        One of :func:`list_shared` (e.g. ``"wrench_youtube"``, ``"metal_cdr"``,
        ``"zheng_dog"``, ``"bf_uai2024/sms"``).
    split : str, optional
        One of the dataset's splits (``shared_info(name)["splits"]``); default the first
        (``"train"``, or ``"all"`` for sets without splits).
    data_home : path, optional
        The shared data directory (default ``$WSAGG_DATA_HOME`` or ``../shared/data``).
    **kwargs
        Passed to the dataset's loader: ``duplicates=`` for the crowd sets (default
        ``"count"``), ``repeats="sources"|"count"`` for ``dawid_skene_1979``,
        ``truth="readme"|"gold"|"evaluation"`` for ``gal_adultcontent_toy``.
    """
    entry = _entry(name)
    if split is None:
        split = entry.splits[0]
    if split not in entry.splits:
        raise ValueError(
            f"Unknown split {split!r} for {name!r}; its splits are {list(entry.splits)}."
        )
    home = get_data_home(data_home)
    try:
        return entry.load(home, split, name, **kwargs)
    except TypeError as err:
        if "unexpected keyword" in str(err):
            raise TypeError(
                f"load_shared({name!r}) does not accept {sorted(kwargs)}: {err}"
            ) from err
        raise


def summarize_shared(
    data_home: str | Path | None = None, names: list[str] | None = None
) -> pd.DataFrame:
    """One row per (dataset, split): counts, abstain %, gold and majority-vote accuracy."""
    rows = []
    for name in names or list_shared():
        for split in _entry(name).splits:
            s = load_shared(name, split, data_home=data_home).summary()
            s["gold_classes"] = ", ".join(f"{k}:{v}" for k, v in s["gold_classes"].items())
            rows.append(s)
    return pd.DataFrame(rows)
