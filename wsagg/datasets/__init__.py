"""Datasets: loaders for the formats users have, a synthetic Dawid-Skene generator, the
registry of the shared real datasets, and the small embedded demo dataset.

Every loader returns a :class:`Dataset`: ``L`` (a :class:`~wsagg.labels.LabelMatrix` with
class indices ``0..k-1``), ``y`` (gold class index per item, ``-1`` = unknown),
``class_names``, ``source_names``, ``name``, ``split`` (and ``texts`` / ``metadata`` where the
format has them). See ``docs/datasets.md``.
"""

from wsagg.datasets._base import Dataset
from wsagg.datasets._demo import load_demo
from wsagg.datasets._loaders import (
    load_crowd_triples,
    load_cubam_yaml,
    load_label_matrix_csv,
    load_label_matrix_mat,
    load_label_matrix_npy,
    load_label_matrix_npz,
    load_wrench,
)
from wsagg.datasets._shared import (
    get_data_home,
    list_shared,
    load_dawid_skene_1979,
    load_shared,
    load_youtube_spam_uci,
    shared_info,
    summarize_shared,
)
from wsagg.datasets._synthetic import SyntheticDawidSkene, make_dawid_skene

__all__ = [
    "Dataset",
    "SyntheticDawidSkene",
    "get_data_home",
    "list_shared",
    "load_crowd_triples",
    "load_cubam_yaml",
    "load_dawid_skene_1979",
    "load_demo",
    "load_label_matrix_csv",
    "load_label_matrix_mat",
    "load_label_matrix_npy",
    "load_label_matrix_npz",
    "load_shared",
    "load_wrench",
    "load_youtube_spam_uci",
    "make_dawid_skene",
    "shared_info",
    "summarize_shared",
]
