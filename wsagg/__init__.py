"""wsagg: weak-supervision label aggregation.

``import wsagg`` is light: numpy, scipy, scikit-learn and pandas only. Aggregators that need
torch or cvxpy import them when used.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

__version__ = "0.1.0"

from wsagg._registry import AGGREGATORS as _AGGREGATORS

# progress messages (``verbose=``) are records of loggers under "wsagg"; silent by default
logging.getLogger(__name__).addHandler(logging.NullHandler())

# public name -> module that defines it (imported lazily, on first access); every registered
# aggregator is exported under its class name
_LAZY = {
    "LabelMatrix": "wsagg.labels",
    "as_label_matrix": "wsagg.labels",
    "BaseAggregator": "wsagg.base",
    "calibrated": "wsagg.calibration",
    "source_summary": "wsagg.diagnostics",
    "evaluate": "wsagg.metrics",
    "report": "wsagg.reporting",
    "get_aggregator": "wsagg._registry",
    "load": "wsagg.persistence",
    "save": "wsagg.persistence",
    "ConvergenceWarning": "wsagg.exceptions",
    "PriorCollapseWarning": "wsagg.exceptions",
    **{spec.class_name: spec.module for spec in _AGGREGATORS.values()},
}
_SUBMODULES = {
    "aggregation", "base", "calibration", "cli", "datasets", "diagnostics", "distributed",
    "downstream",
    "exceptions", "labels", "lf", "metrics", "persistence", "prior",
    "reporting",
}

__all__ = sorted([*_LAZY, *_SUBMODULES, "__version__"])


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        module = importlib.import_module(f"wsagg.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'wsagg' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
