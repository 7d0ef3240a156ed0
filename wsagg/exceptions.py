"""Every warning and error class of wsagg, in one place.

Non-convergence of an iterative fit is always :class:`sklearn.exceptions.ConvergenceWarning`
(re-exported here), so ``warnings.filterwarnings("ignore", category=ConvergenceWarning)``
covers every aggregator.

This module imports nothing else of wsagg (layer L0).
"""

from __future__ import annotations

from sklearn.exceptions import ConvergenceWarning, NotFittedError

__all__ = [
    "AlignmentWarning",
    "ConvergenceWarning",
    "DependentSourcesWarning",
    "DoubleCorrectionWarning",
    "LabelingFunctionError",
    "ModelFileError",
    "NotFittedError",
    "PartitionError",
    "PriorCollapseWarning",
    "SparseSourcesWarning",
    "UninformativeFitWarning",
    "WsaggWarning",
]


class WsaggWarning(UserWarning):
    """Base class of wsagg's own warnings about the data or the fit."""


class PriorCollapseWarning(WsaggWarning):
    """EM pushed a class's prior far below its share of the votes (a degenerate fixed point)."""


class DoubleCorrectionWarning(WsaggWarning):
    """A class-prior correction is applied to scores that were already corrected."""


class PartitionError(RuntimeError):
    """A partition of the votes could not be read or processed (raised on the driver)."""


class LabelingFunctionError(RuntimeError):
    """A labeling function raised or returned a value that is not a class or an abstain."""


class ModelFileError(ValueError):
    """A model file cannot be loaded: not a wsagg model file, a newer format version, a
    failed checksum, or a class or value that wsagg refuses to load (see
    ``docs/persistence.md``)."""


class AlignmentWarning(WsaggWarning):
    """Known labels given as a pandas Series were aligned by item id and some of them match
    no item (they are ignored)."""


class DependentSourcesWarning(WsaggWarning):
    """Some sources are copies of each other or agree far more than independent sources
    would: an aggregator that assumes independence counts them as separate evidence, so its
    posteriors are overconfident (see docs/labels.md, "Dependent and sparse sources")."""


class SparseSourcesWarning(WsaggWarning):
    """Most sources have too few votes to estimate the aggregator's per-source parameters
    (see docs/labels.md, "Dependent and sparse sources")."""


class UninformativeFitWarning(WsaggWarning):
    """The fit learned nothing from the votes (e.g. every weight is zero), so the
    predictions are the class prior for every item."""
