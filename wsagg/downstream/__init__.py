"""Downstream training on soft labels (torch is imported here, never by ``import wsagg``).

* :class:`SoftLabelClassifier` — scikit-learn compatible linear model / small MLP trained on
  probability targets with soft cross-entropy, logit-adjusted loss, balanced softmax or
  class-weighted cross-entropy; optimisers GD, SGD (momentum), Adam, sign descent and
  normalised GD; per-sample confidence weights; early stopping; ``device`` for CUDA.
* :class:`WeakSupervisionPipeline` — label matrix → aggregator → prior correction →
  classifier, with an evaluation report per class-frequency bucket.
* :mod:`wsagg.downstream._losses` — the losses as torch functions;
  :class:`SignDescent`, :class:`NormalizedGD` — the two optimisers torch lacks.

See ``docs/downstream.md``.
"""

from wsagg.downstream._classifier import LOSSES, SoftLabelClassifier
from wsagg.downstream._losses import (
    balanced_softmax_loss,
    logit_adjusted_loss,
    soft_cross_entropy,
    weighted_cross_entropy,
)
from wsagg.downstream._optim import NormalizedGD, SignDescent, make_optimizer
from wsagg.downstream._pipeline import WeakSupervisionPipeline, confidence_weights

__all__ = [
    "LOSSES",
    "NormalizedGD",
    "SignDescent",
    "SoftLabelClassifier",
    "WeakSupervisionPipeline",
    "balanced_softmax_loss",
    "confidence_weights",
    "logit_adjusted_loss",
    "make_optimizer",
    "soft_cross_entropy",
    "weighted_cross_entropy",
]
