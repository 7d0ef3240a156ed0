"""Shared checks and the one way wsagg warns (layer L0: imports nothing else of wsagg).

:func:`warn` points every warning at the user's line, whatever the call path (``fit``,
``fit_predict_proba``, a pipeline, the CLI): its ``stacklevel`` is the first frame outside
the wsagg package, found by walking the stack, instead of a hard-coded depth.

Parameter validation is scikit-learn's: each estimator declares ``_parameter_constraints``
(``sklearn.utils._param_validation``) and :meth:`wsagg.base.BaseAggregator.fit` calls
``_validate_params()``, so every estimator's messages have the same form.
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import Any

import numpy as np

__all__ = ["resolve_class_balance", "user_stacklevel", "warn"]

_PKG_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def user_stacklevel() -> int:
    """The ``stacklevel`` that makes a :func:`warnings.warn` issued by the caller of this
    function name the first frame outside wsagg."""
    frame = sys._getframe(1)  # the function that will call warnings.warn: stacklevel 1
    level = 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PKG_DIR):
        frame = frame.f_back
        level += 1
    return level


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn(message, category)`` attributed to the user's line."""
    warnings.warn(message, category, stacklevel=user_stacklevel())


def resolve_class_balance(class_balance: Any, k: int, known: np.ndarray | None) -> Any:
    """The fixed class prior named by a ``class_balance`` parameter, or ``None`` when it is
    ``"learned"``: ``"auto"`` is the class frequencies of the known labels (add-one when a
    class has none) or uniform without them, ``"uniform"`` uniform, else ``k`` positive
    probabilities summing to 1 (renormalised)."""
    cb = class_balance
    if isinstance(cb, str):
        if cb == "learned":
            return None
        if cb == "auto" and known is not None and (known >= 0).any():
            counts = np.bincount(known[known >= 0], minlength=k).astype(np.float64)
            if (counts == 0).any():
                counts += 1.0
            return counts / counts.sum()
        return np.full(k, 1.0 / k)
    p = np.asarray(cb, dtype=np.float64)
    if p.shape != (k,) or not np.all(np.isfinite(p)) or (p <= 0).any() or not np.isclose(
        p.sum(), 1.0
    ):
        raise ValueError(
            f"class_balance must be 'auto', 'uniform', 'learned' or {k} positive "
            f"probabilities summing to 1; got {cb!r}."
        )
    return p / p.sum()
