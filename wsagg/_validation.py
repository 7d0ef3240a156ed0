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

__all__ = ["user_stacklevel", "warn"]

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
