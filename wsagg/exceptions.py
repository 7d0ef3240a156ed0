"""Every warning and error class of wsagg, in one place.

Non-convergence of an iterative fit is always :class:`sklearn.exceptions.ConvergenceWarning`
(re-exported here), so ``warnings.filterwarnings("ignore", category=ConvergenceWarning)``
covers every aggregator.

This module imports nothing else of wsagg (layer L0).
"""

from __future__ import annotations

from sklearn.exceptions import ConvergenceWarning, NotFittedError

__all__ = [
    "ConvergenceWarning",
    "DoubleCorrectionWarning",
    "LabelingFunctionError",
    "NotFittedError",
    "PartitionError",
    "PriorCollapseWarning",
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
