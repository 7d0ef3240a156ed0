"""Labeling functions: declare voting rules over records and apply them at scale.

A labeling function returns a class id ``0..k-1`` or ``-1`` (abstain). Appliers run a list
of them over a pandas DataFrame (:class:`PandasLFApplier`) or a Dask DataFrame
(:class:`DaskLFApplier`) and produce the sparse :class:`wsagg.labels.LabelMatrix` directly
(the votes only — never a dense ``n x m`` matrix). See ``docs/labeling_functions.md``.

The design follows Snorkel's labeling functions (Ratner et al. 2017, "Snorkel: Rapid
Training Data Creation with Weak Supervision", VLDB), with vectorised functions, failure
counting and a partition-parallel Dask applier whose output feeds
:mod:`wsagg.distributed` without collecting the votes.
"""

from wsagg.lf._apply import DaskLFApplier, PandasLFApplier
from wsagg.lf._core import (
    ABSTAIN,
    LabelingFunction,
    LabelingFunctionError,
    Preprocessor,
    Record,
    labeling_function,
    preprocessor,
)

__all__ = [
    "ABSTAIN",
    "DaskLFApplier",
    "LabelingFunction",
    "LabelingFunctionError",
    "PandasLFApplier",
    "Preprocessor",
    "Record",
    "labeling_function",
    "preprocessor",
]
