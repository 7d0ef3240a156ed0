"""Labeling functions and preprocessors: named callables with abstain = -1."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import SimpleNamespace
from typing import Any

from wsagg.exceptions import LabelingFunctionError

__all__ = [
    "ABSTAIN",
    "LabelingFunction",
    "LabelingFunctionError",
    "Preprocessor",
    "Record",
    "labeling_function",
    "preprocessor",
]

ABSTAIN = -1




class Record(SimpleNamespace):
    """One data point as seen by a row-wise labeling function: the row's columns as
    attributes (``x.text``) and items (``x["text"]``); preprocessors may add fields."""

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    def __setitem__(self, key: str, value: Any) -> None:
        setattr(self, key, value)


class Preprocessor:
    """A shared preprocessing step, run once per record and applier for all labeling
    functions that declare it in ``pre``.

    Row-wise (``vectorized=False``): ``f(record) -> record`` (it may add fields to the
    record it receives, which is a private copy, and return it). Vectorised:
    ``f(frame) -> frame`` on a whole pandas DataFrame (return a frame with the same index,
    e.g. ``frame.assign(...)``).
    """

    def __init__(self, name: str, f: Callable, *, vectorized: bool = False) -> None:
        if not callable(f):
            raise TypeError(f"Preprocessor {name!r}: f must be callable; got {type(f).__name__}.")
        self.name = str(name)
        self.f = f
        self.vectorized = bool(vectorized)

    def __call__(self, x: Any) -> Any:
        return self.f(x)

    def __repr__(self) -> str:
        return f"Preprocessor({self.name!r}, vectorized={self.vectorized})"


class LabelingFunction:
    """A named voting rule: returns a class id ``0..k-1`` or ``-1`` (abstain).

    Parameters
    ----------
    name : str
        The source name in the label matrix; unique within an applier.
    f : callable
        Row-wise: ``f(record, **resources) -> int``. Vectorised: ``f(frame, **resources)
        -> array of length len(frame)`` (much faster on pandas: no Python call per record).
    pre : sequence of Preprocessor
        Preprocessors applied (in order) before ``f``; shared preprocessors run once per
        record even when several functions use them. A vectorised function may only use
        vectorised preprocessors.
    resources : mapping, optional
        Extra keyword arguments passed to ``f`` (lexicons, models, ...).
    vectorized : bool, default=False
    """

    def __init__(
        self,
        name: str,
        f: Callable,
        *,
        pre: Sequence[Preprocessor] = (),
        resources: Mapping[str, Any] | None = None,
        vectorized: bool = False,
    ) -> None:
        if not callable(f):
            raise TypeError(
                f"LabelingFunction {name!r}: f must be callable; got {type(f).__name__}."
            )
        pre = tuple(pre)
        for p in pre:
            if not isinstance(p, Preprocessor):
                raise TypeError(
                    f"LabelingFunction {name!r}: pre must hold Preprocessor objects (use the "
                    f"@preprocessor decorator); got {type(p).__name__}."
                )
        if vectorized and any(not p.vectorized for p in pre):
            raise ValueError(
                f"LabelingFunction {name!r} is vectorized but uses a row-wise preprocessor; "
                "declare the preprocessor with vectorized=True or make the function row-wise."
            )
        self.name = str(name)
        self.f = f
        self.pre = pre
        self.resources = dict(resources or {})
        self.vectorized = bool(vectorized)

    def __call__(self, x: Any) -> Any:
        """Apply to one record (row-wise) or one frame (vectorised), preprocessors included."""
        for p in self.pre:
            x = p(x)
        return self.f(x, **self.resources)

    def __repr__(self) -> str:
        return (
            f"LabelingFunction({self.name!r}, vectorized={self.vectorized}, "
            f"pre={[p.name for p in self.pre]})"
        )


def labeling_function(
    f: Callable | None = None,
    *,
    name: str | None = None,
    pre: Sequence[Preprocessor] = (),
    resources: Mapping[str, Any] | None = None,
    vectorized: bool = False,
) -> Any:
    """Decorator making a :class:`LabelingFunction` (name defaults to the function's name).

    Use as ``@labeling_function`` or ``@labeling_function(vectorized=True, pre=[...])``.
    """

    def wrap(func: Callable) -> LabelingFunction:
        return LabelingFunction(
            name or func.__name__, func, pre=pre, resources=resources, vectorized=vectorized
        )

    return wrap(f) if f is not None else wrap


def preprocessor(
    f: Callable | None = None, *, name: str | None = None, vectorized: bool = False
) -> Any:
    """Decorator making a :class:`Preprocessor`; ``@preprocessor`` or
    ``@preprocessor(vectorized=True)``."""

    def wrap(func: Callable) -> Preprocessor:
        return Preprocessor(name or func.__name__, func, vectorized=vectorized)

    return wrap(f) if f is not None else wrap
