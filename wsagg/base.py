"""The common aggregator interface (scikit-learn estimator contract).

Every aggregator in wsagg is a :class:`sklearn.base.BaseEstimator` with

* ``fit(L, y=None) -> self``: ``L`` is any label matrix accepted by
  :func:`wsagg.labels.as_label_matrix`; ``y`` optionally holds known true labels (class ids,
  ``-1`` = unknown; or a pandas Series indexed by item id for long-format input);
* ``predict_proba(L)``: inductive — works on new rows after ``fit``, never changes the fitted
  state; returns an ``(n, k)`` array whose rows are distributions, one per input item, in
  the label matrix's item order (``as_label_matrix(L).item_ids``);
* ``predict(L)``: the class of highest probability, as a value of ``classes_``.
  **Tie policy** (``tie_break``): ``"first"`` (default) picks the lowest class index among
  the classes whose probability is within ``1e-12`` of the maximum — deterministic, like
  :func:`numpy.argmax`; ``"random"`` picks uniformly among them with a generator seeded from
  ``random_state`` (the same call gives the same answer). Items on which every source
  abstains get the class prior, so ties are common there under a uniform prior;
* ``fit_predict_proba(L, y=None)`` and ``fit_predict(L, y=None)``.

Fitted attributes end with an underscore: ``classes_``, ``n_classes_``, ``n_sources_``,
``source_names_``, ``class_prior_`` (and ``n_features_in_``, scikit-learn's name for
``n_sources_``). Randomness comes only from ``random_state``.

**Results shaped like the input.** A pandas DataFrame in (long format ``item, source,
label`` / crowd-kit's ``task, worker, label``, or a wide frame with one column per source)
gives pandas out: ``predict`` / ``fit_predict`` a Series named ``"label"`` indexed by item id
(the index named like the item column, or the wide frame's index), ``predict_proba`` /
``fit_predict_proba`` a DataFrame with one column per class (columns ``classes_``) and the
same index. Arrays, sparse matrices and :class:`~wsagg.labels.LabelMatrix` in give NumPy
arrays out.

**Scoring** (``score(L, y)``): the accuracy of ``predict(L)`` on the items whose label in
``y`` is known (``-1`` or NaN = unknown, ignored), ``y`` given as at ``fit``; so
``sklearn.model_selection.cross_val_score(DawidSkene(), L, y)`` and ``GridSearchCV`` work
without ``scoring=`` (each fold fits on its training rows' known labels and scores on the
held-out rows' known labels).

**scikit-learn tags** (``__sklearn_tags__``): the input is a label matrix of class ids
(``categorical``; dense, sparse or a DataFrame), ``y`` is optional (``-1`` = unknown).
"""

from __future__ import annotations

import functools
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from wsagg._source_checks import check_sources, emit_findings, source_findings
from wsagg._validation import warn
from wsagg.exceptions import AlignmentWarning
from wsagg.labels import (
    LabelMatrix,
    as_label_matrix,
    check_known_labels,
    check_memory,
    frame_item_index,
    is_wide_frame,
)

__all__ = ["BaseAggregator", "break_ties"]

_TIE_TOL = 1e-12
_PREDICT_CHUNK = 1 << 16  # rows per block when predicting a large dense / sparse matrix


def break_ties(
    proba: np.ndarray, tie_break: str = "first", random_state: Any = None
) -> np.ndarray:
    """Class index of highest probability per row, under a tie policy.

    The maxima are the classes within ``1e-12`` of the row's maximum (so two solvers that
    agree to rounding error predict the same classes). ``"first"``: the lowest index among
    them; ``"random"``: uniform among them, with a generator from ``random_state``.
    """
    if tie_break not in ("first", "random"):
        raise ValueError(f"tie_break must be 'first' or 'random'; got {tie_break!r}.")
    proba = np.asarray(proba)
    if proba.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    is_max = proba >= proba.max(axis=1, keepdims=True) - _TIE_TOL
    if tie_break == "first":  # the lowest index within the tolerance of the maximum
        return np.argmax(is_max, axis=1)
    rng = check_random_state(random_state)
    noise = rng.random_sample(proba.shape)
    return np.argmax(np.where(is_max, noise, -1.0), axis=1)


_PANDAS_METHODS = {
    "predict": "labels", "fit_predict": "labels",
    "predict_proba": "proba", "fit_predict_proba": "proba",
}
# .active: a pandas-out call runs on this thread; .frame: its input; .ids: the item ids of
# that input's conversion (noted by _validate_fit / _validate_predict, so not recomputed)
_PANDAS_CALL = threading.local()

# one thread for background source checks, started when first asked (and again in a forked
# child, which inherits the pool but not its thread)
_CHECK_POOL: Any = None
_CHECK_POOL_PID = -1
_CHECK_POOL_LOCK = threading.Lock()


def _check_pool() -> Any:
    global _CHECK_POOL, _CHECK_POOL_PID
    with _CHECK_POOL_LOCK:
        if _CHECK_POOL is None or _CHECK_POOL_PID != os.getpid():
            from concurrent.futures import ThreadPoolExecutor

            _CHECK_POOL = ThreadPoolExecutor(1, thread_name_prefix="wsagg-source-checks")
            _CHECK_POOL_PID = os.getpid()
        return _CHECK_POOL


def _pandas_output(kind: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a ``method(self, L, ...)`` returning an ``(n,)`` / ``(n, k)`` array so that a
    pandas DataFrame ``L`` gives a Series / DataFrame indexed by item id. Only the outermost
    call converts: inside it (a method calling another, an aggregator fitting others) every
    call returns arrays, as the code expects."""

    def decorate(method: Callable[..., Any]) -> Callable[..., Any]:
        if getattr(method, "__wsagg_pandas__", False):
            return method

        @functools.wraps(method)
        def wrapper(self: Any, L: Any, *args: Any, **kwargs: Any) -> Any:
            import pandas as pd

            if getattr(_PANDAS_CALL, "active", False) or not isinstance(L, pd.DataFrame):
                return method(self, L, *args, **kwargs)
            _PANDAS_CALL.active, _PANDAS_CALL.frame, _PANDAS_CALL.ids = True, L, None
            try:
                out = method(self, L, *args, **kwargs)
                ids = _PANDAS_CALL.ids
            finally:
                _PANDAS_CALL.active, _PANDAS_CALL.frame, _PANDAS_CALL.ids = False, None, None
            return _as_pandas(self, np.asarray(out), L, kind, ids)

        wrapper.__wsagg_pandas__ = True  # type: ignore[attr-defined]
        return wrapper

    return decorate


def _note_items(L: Any, lm: LabelMatrix) -> None:
    """Keep the item ids of the outermost pandas-out call's own input once converted."""
    if getattr(_PANDAS_CALL, "frame", None) is L:
        _PANDAS_CALL.ids = lm.item_ids


def _as_pandas(est: Any, out: np.ndarray, df: Any, kind: str, ids: Any = None) -> Any:
    """``out`` (one row per item of ``df``) as a Series / DataFrame indexed by item id
    (``ids``: those of ``df``'s conversion, when noted)."""
    import pandas as pd

    if ids is not None and not is_wide_frame(df):
        index = pd.Index(ids, name=frame_item_index(df.iloc[:0]).name)
    else:
        index = frame_item_index(df)
    if out.shape[0] != len(index):  # pragma: no cover - the conversion keeps every item
        raise RuntimeError(
            f"{type(est).__name__} returned {out.shape[0]} rows for {len(index)} items."
        )
    if kind == "labels":
        return pd.Series(out, index=index, name="label")
    return pd.DataFrame(out, index=index, columns=pd.Index(est.classes_))


class BaseAggregator(BaseEstimator):
    """Base class of every wsagg aggregator; subclasses implement ``_fit`` and
    ``_predict_proba`` on a validated :class:`~wsagg.labels.LabelMatrix`.

    A subclass that overrides ``predict``, ``predict_proba``, ``fit_predict`` or
    ``fit_predict_proba`` keeps the pandas-out behaviour (see the module docstring): the
    override is wrapped when the class is created."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        for name, kind in _PANDAS_METHODS.items():
            if name in cls.__dict__:
                setattr(cls, name, _pandas_output(kind)(cls.__dict__[name]))
        super().__init_subclass__(**kwargs)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = True
        tags.input_tags.categorical = True  # class ids 0..k-1, -1 = abstain
        tags.input_tags.sparse = True  # stored value = label + 1
        tags.input_tags.allow_nan = False
        tags.target_tags.required = False  # y optional: known labels, -1 = unknown
        return tags

    @property
    def n_features_in_(self) -> int:
        """Number of sources (columns) seen at fit: scikit-learn's name for ``n_sources_``."""
        if "n_sources_" not in vars(self):
            raise AttributeError(
                f"{type(self).__name__} is not fitted yet: n_features_in_ is set by fit."
            )
        return int(self.n_sources_)

    def score(self, L: Any, y: Any, sample_weight: Any = None) -> float:
        """Accuracy of :meth:`predict` on the known labels of ``y``.

        Parameters
        ----------
        L : label matrix
            The votes on the items to score (any input :meth:`predict` takes).
        y : array-like (n,) or pandas Series
            Known labels as at :meth:`fit`: class ids with ``-1`` = unknown, or a Series
            indexed by item id holding class labels (NaN = unknown). Unknown items are
            ignored.
        sample_weight : array-like (n,), optional
            Weights of the items (those of unknown items are ignored).

        Returns
        -------
        float
            The (weighted) share of the known items whose predicted class is their label.
        """
        if _is_partitioned(L):
            raise TypeError(
                f"{type(self).__name__}.score takes an in-memory label matrix; collect the "
                "scored items' votes into one (e.g. a LabelMatrix)."
            )
        if y is None:
            raise ValueError("score needs y, the known labels (-1 = unknown) of L's items.")
        lm = self._validate_predict(L)
        notes: list[str] = []
        y_idx = check_known_labels(y, lm, notes)
        for note in notes:
            warn(note, AlignmentWarning)
        known = y_idx >= 0
        if not known.any():
            raise ValueError(
                "y has no known label (every entry is -1 / missing), so there is nothing to "
                "score; give the true class of at least one item."
            )
        pred = self._argmax(self._predict_proba(lm))
        w = np.ones(lm.n_items) if sample_weight is None else np.asarray(sample_weight, float)
        if w.shape != (lm.n_items,) or not np.all(np.isfinite(w)) or (w < 0).any():
            raise ValueError(
                f"sample_weight must be {lm.n_items} finite non-negative numbers (one per "
                f"item); got shape {w.shape}."
            )
        total = float(w[known].sum())
        if total <= 0:
            raise ValueError("sample_weight is 0 on every known item; nothing to score.")
        return float(w[known] @ (pred[known] == y_idx[known])) / total

    # -- input handling --------------------------------------------------------------
    def _validate_fit(self, L: Any, y: Any = None) -> tuple[LabelMatrix, np.ndarray | None]:
        if getattr(self, "_parameter_constraints", None) is not None:
            self._validate_params()  # scikit-learn's messages, from _parameter_constraints
        n_classes = getattr(self, "n_classes", None)
        y_hint = None if y is None or not hasattr(y, "__len__") else y
        lm = as_label_matrix(L, n_classes=n_classes, y=_numeric_or_none(y_hint),
                             n_jobs=self._fit_threads(L))
        notes: list[str] = []
        y_idx = None if y is None else check_known_labels(y, lm, notes)
        for note in notes:
            warn(note, AlignmentWarning)
        if getattr(self, "tie_break", "first") not in ("first", "random"):
            raise ValueError(
                f"tie_break must be 'first' or 'random'; got {self.tie_break!r}."
            )
        n, m, k = lm.n_items, lm.n_sources, lm.n_classes
        check_memory(
            8.0 * (4 * n * k + 2 * m * k * k),
            f"Fitting {type(self).__name__} on {n:,} items x {k:,} classes ({m:,} sources)",
        )
        if not getattr(self, "_skip_source_checks", False):  # (auto checks once, not per fit)
            if self._source_checks_in_background(lm):
                # on another thread while the fit runs; _finish_source_checks warns
                self._pending_source_checks = _check_pool().submit(source_findings, lm, self)
            else:
                check_sources(lm, self)
        self.classes_ = lm.classes
        self.n_classes_ = lm.n_classes
        self.n_sources_ = lm.n_sources
        self.source_names_ = lm.source_names
        _note_items(L, lm)
        return lm, y_idx

    def _fit_threads(self, L: Any) -> int:
        """Threads :meth:`_validate_fit` may use to convert ``L`` (the raw input): 1 here;
        an aggregator with an ``n_jobs`` of its own may allow more."""
        return 1

    def _source_checks_in_background(self, lm: LabelMatrix) -> bool:
        """Whether :meth:`_validate_fit` runs the source checks on a background thread
        (the fit then calls :meth:`_finish_source_checks`). ``False`` here; an aggregator
        whose fit leaves a core free while it converts the votes may say ``True``."""
        return False

    def _finish_source_checks(self) -> None:
        """Wait for background source checks, if any, and warn with their findings (in
        the caller's thread, so warning filters and ``pytest.warns`` see them)."""
        pending = self.__dict__.pop("_pending_source_checks", None)
        if pending is not None:
            emit_findings(pending.result())

    def _validate_predict(self, L: Any) -> LabelMatrix:
        check_is_fitted(self, "classes_")
        if isinstance(L, LabelMatrix):
            lm = L
            if lm.n_classes != self.n_classes_:
                raise ValueError(
                    f"The label matrix has {lm.n_classes} classes but the estimator was "
                    f"fitted with {self.n_classes_}."
                )
            for what, got, fitted in (("sources", lm.source_names, self.source_names_),
                                      ("classes", lm.classes, self.classes_)):
                if (
                    got is not None and fitted is not None and len(got) == len(fitted)
                    and not _is_default_ids(got) and not np.array_equal(got, fitted)
                ):
                    raise ValueError(
                        f"The label matrix's {what} {np.asarray(got).tolist()[:5]} differ from "
                        f"those seen at fit {np.asarray(fitted).tolist()[:5]}; pass the votes "
                        "themselves (e.g. the DataFrame), which are mapped onto the fitted "
                        "sources and classes."
                    )
        elif _is_long(L):
            lm = as_label_matrix(
                L, classes=self.classes_, source_names=self.source_names_
            )
        else:
            lm = as_label_matrix(L, n_classes=self.n_classes_)
        if lm.n_sources != self.n_sources_:
            raise ValueError(_sources_mismatch(self, lm.n_sources))
        _note_items(L, lm)
        return lm

    # -- public API ------------------------------------------------------------------
    def fit(self, L: Any, y: Any = None) -> BaseAggregator:
        """Fit the aggregator on label matrix ``L`` (with optional known labels ``y``).

        ``L`` may also be partitioned votes (a Dask collection, a list of partition files,
        a :class:`wsagg.distributed.VotePartitions`): the aggregator's own
        ``_fit_partitioned`` then runs (map-reduce), where it has one."""
        self._reset_fitted()
        if _is_partitioned(L):  # Dask collection / partition files: map-reduce fit
            self._fit_partitioned(L, y)
            return self
        lm, y_idx = self._validate_fit(L, y)
        try:
            self._fit(lm, y_idx)
        finally:
            self._finish_source_checks()
        return self

    @_pandas_output("proba")
    def predict_proba(self, L: Any) -> np.ndarray:
        """Posterior class probabilities ``(n, k)`` for the items of ``L``."""
        if _is_partitioned(L):  # e.g. a Dask array gives a Dask array (map_blocks)
            return self._predict_partitioned(L)
        blocks = _row_blocks(L, _PREDICT_CHUNK)
        if blocks is not None:  # many rows: convert and predict a block at a time
            return self._predict_blocks(*blocks)
        lm = self._validate_predict(L)
        return self._predict_proba(lm)

    def _predict_blocks(self, X: Any, n: int) -> np.ndarray:
        """``predict_proba`` of a dense array or CSR matrix of ``n`` rows, ``_PREDICT_CHUNK``
        rows at a time: memory is the ``(n, k)`` result plus one block's votes."""
        check_is_fitted(self, "classes_")
        if X.shape[1] != self.n_sources_:
            raise ValueError(_sources_mismatch(self, X.shape[1]))
        k = int(self.n_classes_)
        check_memory(8.0 * n * k, f"The ({n:,}, {k}) posterior matrix")
        out = np.empty((n, k), dtype=np.float64)
        for start in range(0, n, _PREDICT_CHUNK):
            stop = min(start + _PREDICT_CHUNK, n)
            lm = self._validate_predict(X[start:stop])
            out[start:stop] = self._predict_proba(lm)
        return out

    @_pandas_output("labels")
    def predict(self, L: Any) -> np.ndarray:
        """Most probable class per item (a value of ``classes_``); ties per ``tie_break``."""
        proba = self.predict_proba(L)
        return self.classes_[self._argmax(proba)]

    @_pandas_output("proba")
    def fit_predict_proba(self, L: Any, y: Any = None) -> np.ndarray:
        """``fit(L, y)`` then ``predict_proba(L)``, converting ``L`` once."""
        if _is_partitioned(L):
            return self.fit(L, y).predict_proba(L)
        self._reset_fitted()
        lm, y_idx = self._validate_fit(L, y)
        try:
            self._fit(lm, y_idx)
        finally:
            self._finish_source_checks()
        return self._predict_proba(lm)

    @_pandas_output("labels")
    def fit_predict(self, L: Any, y: Any = None) -> np.ndarray:
        """``fit(L, y)`` then ``predict(L)``."""
        proba = self.fit_predict_proba(L, y)
        return self.classes_[self._argmax(proba)]

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Save the fitted aggregator to one file (JSON metadata + ``.npz`` arrays, never
        pickle); ``wsagg.load(path)`` gives it back. See :func:`wsagg.persistence.save`."""
        from wsagg.persistence import save

        return save(self, path, overwrite=overwrite)

    # -- helpers for subclasses ------------------------------------------------------
    def _argmax(self, proba: np.ndarray) -> np.ndarray:
        return break_ties(
            proba, getattr(self, "tie_break", "first"), getattr(self, "random_state", None)
        )

    def _reset_fitted(self) -> None:
        """Forget every fitted attribute (public ``name_`` and private ``_name``
        state), so that nothing of a previous fit survives a refit, whichever path (in
        memory or partitioned) either fit took."""
        for name in [n for n in vars(self) if n.endswith("_") and not n.startswith("__")]:
            delattr(self, name)

    def _fit_partitioned(self, L: Any, y: Any = None) -> None:
        """Fit on partitioned votes (map-reduce); aggregators that support it override this
        on the public API of :mod:`wsagg.distributed`."""
        from wsagg._registry import partitioned_names

        raise TypeError(
            f"{type(self).__name__} cannot be fitted on partitioned (Dask / file) votes; the "
            f"aggregators that can are: {', '.join(partitioned_names())}. Collect the votes "
            "into one label matrix (e.g. with wsagg.lf.DaskLFApplier.apply) to fit others."
        )

    def _predict_partitioned(self, L: Any) -> Any:
        """Posteriors of partitioned votes; aggregators that support partitions override this
        (``wsagg.distributed.predict_proba(self, L)`` works for any fitted aggregator)."""
        raise TypeError(
            f"{type(self).__name__}.predict_proba takes an in-memory label matrix; for "
            "partitioned votes call wsagg.distributed.predict_proba(estimator, L) or "
            "wsagg.distributed.write_posteriors(estimator, L, path)."
        )

    def _fit(self, lm: LabelMatrix, y: np.ndarray | None) -> None:  # pragma: no cover
        raise NotImplementedError

    def _predict_proba(self, lm: LabelMatrix) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError


def _sources_mismatch(est: Any, m: int) -> str:
    """The message for a label matrix of ``m`` sources given to an estimator fitted on
    another number (with scikit-learn's wording, which its checks look for)."""
    return (
        f"The label matrix has {m} sources (columns) but the estimator was fitted with "
        f"{est.n_sources_}. Pass the same sources, in the same order, as at fit (X has {m} "
        f"features, but {type(est).__name__} is expecting {est.n_sources_} features as input)."
    )


def _row_blocks(L: Any, chunk: int) -> tuple[Any, int] | None:
    """``(rows, n)`` when ``L`` is a dense 2-D array or a sparse matrix of more than
    ``chunk`` rows (predicted a block of rows at a time), else ``None``."""
    import scipy.sparse as sp

    if sp.issparse(L):
        if L.ndim == 2 and L.shape[0] > chunk:
            return sp.csr_matrix(L), int(L.shape[0])
        return None
    if isinstance(L, np.ndarray) and L.ndim == 2 and L.shape[0] > chunk and L.dtype != object:
        return L, int(L.shape[0])
    return None


def _is_default_ids(ids: Any) -> bool:
    """``0..len-1``: the names a dense or sparse matrix gets (matched by position)."""
    arr = np.asarray(ids)
    return arr.dtype.kind in "iu" and np.array_equal(arr, np.arange(arr.shape[0]))


def _is_long(L: Any) -> bool:
    import pandas as pd
    import scipy.sparse as sp

    return isinstance(L, pd.DataFrame) or (
        isinstance(L, tuple) and len(L) == 3 and not sp.issparse(L)
    )


def _is_partitioned(L: Any) -> bool:
    """Votes that live in partitions (``wsagg.distributed``): a Dask collection (checked only
    when dask is already imported, so ``import wsagg`` stays light), a
    ``VotePartitions``, or a list of ``.npz`` / ``.parquet`` partition files."""
    if getattr(type(L), "__wsagg_partitions__", False):
        return True
    dask = sys.modules.get("dask")
    if dask is not None and dask.is_dask_collection(L):
        return True
    return (
        isinstance(L, list | tuple)
        and len(L) > 0
        and all(
            isinstance(p, str | os.PathLike) and str(p).endswith((".npz", ".parquet", ".pq"))
            for p in L
        )
    )


def _numeric_or_none(y: Any) -> Any:
    if y is None:
        return None
    arr = np.asarray(y)
    return arr if arr.dtype.kind in "iu" else None
