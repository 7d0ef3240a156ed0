"""Appliers: run labeling functions over pandas / Dask DataFrames into a sparse LabelMatrix.

Only the votes (non-abstains) are kept, as ``(item, source, label)`` arrays, so memory is
linear in the number of votes — never a dense ``n x m`` object. Row-wise labeling functions
are one Python call per record (unavoidable for arbitrary Python rules; shared
preprocessors run once per record); vectorised ones are one call per frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from wsagg._optional import has_module, import_optional
from wsagg.labels import LabelMatrix, check_inferred_k
from wsagg.lf._core import LabelingFunction, LabelingFunctionError, Record

__all__ = ["DaskLFApplier", "PandasLFApplier"]

_ON_ERROR = ("raise", "abstain")


@dataclass
class _Votes:
    item: np.ndarray
    source: np.ndarray
    label: np.ndarray
    n: int
    index: np.ndarray
    failures: np.ndarray  # (m,)


def _check_lfs(lfs: Sequence[LabelingFunction]) -> list[LabelingFunction]:
    lfs = list(lfs)
    if not lfs:
        raise ValueError("An applier needs at least one labeling function.")
    for lf in lfs:
        if not isinstance(lf, LabelingFunction):
            raise TypeError(
                f"Expected LabelingFunction objects (use @labeling_function); got "
                f"{type(lf).__name__}: {lf!r}."
            )
    names = [lf.name for lf in lfs]
    dup = sorted({x for x in names if names.count(x) > 1})
    if dup:
        raise ValueError(f"Labeling function names must be unique; repeated: {dup}.")
    for lf in lfs:
        if not lf.vectorized:
            kinds = [p.vectorized for p in lf.pre]
            if kinds != sorted(kinds, reverse=True):
                raise ValueError(
                    f"LabelingFunction {lf.name!r}: vectorized preprocessors must come before "
                    "row-wise ones in pre."
                )
    return lfs


def _check_on_error(on_error: str) -> str:
    if on_error not in _ON_ERROR:
        raise ValueError(f"on_error must be 'raise' or 'abstain'; got {on_error!r}.")
    return on_error


def _py(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _fail(what: str, index: Any, err: BaseException) -> LabelingFunctionError:
    index = _py(index)
    return LabelingFunctionError(
        f"{what} raised {type(err).__name__}: {err} on the record with index {index!r}. "
        "Fix the function, or pass on_error='abstain' to count such failures as abstains."
    )


def _bad_value(name: str, index: Any, value: Any, k: int | None) -> LabelingFunctionError:
    rng = f"0..{k - 1}" if k is not None else "0..k-1"
    index, value = _py(index), _py(value)
    return LabelingFunctionError(
        f"labeling function {name!r} returned {value!r} on the record with index {index!r}; "
        f"it must return an integer class id in {rng} or -1 to abstain."
    )


def _is_int(v: Any) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_)


def _apply_frame(
    df: pd.DataFrame,
    lfs: list[LabelingFunction],
    n_classes: int | None,
    on_error: str,
    progress_bar: bool | str,
) -> _Votes:
    """Apply every labeling function to ``df``; votes as arrays (items local 0..n-1)."""
    n, m = len(df), len(lfs)
    index = df.index.to_numpy()
    failures = np.zeros(m, dtype=np.int64)
    out_i: list[np.ndarray] = []
    out_s: list[np.ndarray] = []
    out_l: list[np.ndarray] = []

    frames: dict[tuple, pd.DataFrame] = {(): df}

    def frame_for(chain: tuple) -> tuple[pd.DataFrame, np.ndarray]:
        """Frame after vectorised preprocessors; rows where a preprocessor failed."""
        if chain in frames:
            return frames[chain], failed_rows.get(chain, np.zeros(0, np.int64))
        prev, prev_failed = frame_for(chain[:-1])
        p = chain[-1]
        try:
            frame = p.f(prev)
            failed = prev_failed
        except Exception:
            frame, failed = _rowwise_fallback(p.f, prev, f"preprocessor {p.name!r}", on_error)
            failed = np.union1d(prev_failed, failed)
        if not isinstance(frame, pd.DataFrame) or len(frame) != len(prev):
            raise LabelingFunctionError(
                f"vectorized preprocessor {p.name!r} must return a DataFrame with the same "
                f"rows as its input ({len(prev)}); got {type(frame).__name__}."
            )
        frames[chain] = frame
        failed_rows[chain] = failed
        return frame, failed

    failed_rows: dict[tuple, np.ndarray] = {}

    # -- vectorised labeling functions: one call per frame --------------------------------
    vec = [j for j, lf in enumerate(lfs) if lf.vectorized]
    bar = _bar(progress_bar, len(vec), "vectorized LFs") if vec and n else None
    for j in vec:
        lf = lfs[j]
        frame, pre_failed = frame_for(lf.pre)
        if n == 0:
            continue
        try:
            values = lf.f(frame, **lf.resources)
            values = _as_vote_array(values, n, lf.name)
            fail_rows = np.zeros(0, np.int64)
        except LabelingFunctionError:
            raise
        except Exception:
            values, fail_rows = _rowwise_fallback(
                lambda fr, lf=lf: _as_vote_array(lf.f(fr, **lf.resources), len(fr), lf.name),
                frame,
                f"labeling function {lf.name!r}",
                on_error,
            )
        values = _validate_values(values, lf.name, index, n_classes)
        if pre_failed.size or fail_rows.size:
            bad = np.union1d(pre_failed, fail_rows)
            values[bad] = -1
            failures[j] += bad.size
        hit = np.flatnonzero(values >= 0)
        out_i.append(hit)
        out_s.append(np.full(hit.size, j, dtype=np.int64))
        out_l.append(values[hit])
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()

    # -- row-wise labeling functions: one call per record ---------------------------------
    row = [j for j, lf in enumerate(lfs) if not lf.vectorized]
    if row and n:
        plan = []
        records: dict[tuple, list[dict]] = {}
        skips: dict[tuple, np.ndarray] = {}
        for j in row:
            lf = lfs[j]
            vpre = tuple(p for p in lf.pre if p.vectorized)
            rpre = tuple(p for p in lf.pre if not p.vectorized)
            if vpre not in records:
                frame, pre_failed = frame_for(vpre)
                records[vpre] = frame.to_dict("records")
                skip = np.zeros(n, dtype=bool)
                skip[pre_failed] = True
                skips[vpre] = skip
            plan.append((j, lf.f, lf.resources, vpre, rpre))
        items: list[int] = []
        sources: list[int] = []
        labels: list[Any] = []
        bar = _bar(progress_bar, n, "records")
        for i in range(n):
            cache: dict[tuple, Any] = {}
            for j, f, res, vpre, rpre in plan:
                key = (vpre, rpre)
                x = cache.get(key)
                if x is None:
                    if skips[vpre][i]:
                        x = False
                    else:
                        x = Record()
                        x.__dict__.update(records[vpre][i])
                        for p in rpre:
                            try:
                                x = p.f(x)
                            except Exception as err:
                                if on_error == "raise":
                                    raise _fail(
                                        f"preprocessor {p.name!r} (of labeling function "
                                        f"{lfs[j].name!r})", index[i], err
                                    ) from err
                                x = False
                                break
                    cache[key] = x
                if x is False:  # a preprocessor failed on this record
                    failures[j] += 1
                    continue
                try:
                    v = f(x, **res)
                except Exception as err:
                    if on_error == "raise":
                        raise _fail(f"labeling function {lfs[j].name!r}", index[i], err) from err
                    failures[j] += 1
                    continue
                if v != -1:
                    items.append(i)
                    sources.append(j)
                    labels.append(v)
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        for pos, v in enumerate(labels):  # True/False or 1.0 would pass as 1 in an array
            if not _is_int(v):
                raise _bad_value(lfs[sources[pos]].name, index[items[pos]], v, n_classes)
        lab = np.asarray(labels) if labels else np.zeros(0, dtype=np.int64)
        lab = lab.astype(np.int64)
        it = np.asarray(items, dtype=np.int64)
        src = np.asarray(sources, dtype=np.int64)
        bad = (lab < -1) | ((lab >= n_classes) if n_classes is not None else False)
        if np.any(bad):
            pos = int(np.flatnonzero(bad)[0])
            raise _bad_value(lfs[src[pos]].name, index[it[pos]], int(lab[pos]), n_classes)
        out_i.append(it)
        out_s.append(src)
        out_l.append(lab)

    def cat(parts: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)

    return _Votes(cat(out_i), cat(out_s), cat(out_l), n, index, failures)


def _check_progress_bar(progress_bar: Any) -> bool | str:
    if progress_bar == "auto" or isinstance(progress_bar, bool | np.bool_):
        return progress_bar if progress_bar == "auto" else bool(progress_bar)
    raise ValueError(
        f"progress_bar must be True, False or 'auto' (a bar when tqdm is installed); "
        f"got {progress_bar!r}."
    )


def _bar(enabled: bool | str, total: int, unit: str) -> Any:
    """A tqdm bar: ``True`` needs tqdm (one-line error naming the extra when it is missing),
    ``"auto"`` shows one only when tqdm is installed, ``False`` none."""
    if enabled is False:
        return None
    if enabled == "auto" and not has_module("tqdm.auto"):
        return None
    tqdm = import_optional(
        "tqdm.auto", "progress_bar=True", alternative="or pass progress_bar=False"
    ).tqdm
    return tqdm(total=total, unit=unit.split()[-1], desc=f"applying {unit}")


def _as_vote_array(values: Any, n: int, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.shape != (n,):
        raise LabelingFunctionError(
            f"vectorized labeling function {name!r} returned shape {arr.shape} for a frame "
            f"of {n} records; it must return one class id (or -1) per record."
        )
    return arr


def _validate_values(
    arr: np.ndarray, name: str, index: np.ndarray, n_classes: int | None
) -> np.ndarray:
    if arr.dtype.kind == "b" or arr.dtype.kind not in "iuf":
        pos = 0
        if arr.dtype.kind == "O":
            pos = next((p for p, v in enumerate(arr) if not _is_int(v)), 0)
            if all(_is_int(v) for v in arr):
                arr = arr.astype(np.int64)
                return _validate_values(arr, name, index, n_classes)
        raise _bad_value(name, index[pos], arr[pos], n_classes)
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr) | (arr != np.round(arr))
        if bad.any():
            pos = int(np.flatnonzero(bad)[0])
            raise _bad_value(name, index[pos], arr[pos], n_classes)
    arr = arr.astype(np.int64)
    bad = arr < -1
    if n_classes is not None:
        bad |= arr >= n_classes
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        raise _bad_value(name, index[pos], int(arr[pos]), n_classes)
    return arr


def _rowwise_fallback(
    f: Any, frame: pd.DataFrame, what: str, on_error: str
) -> tuple[Any, np.ndarray]:
    """A vectorised call failed: rerun it on one-row frames to name the failing record
    (``on_error="raise"``) or to abstain on exactly the failing records."""
    n = len(frame)
    index = frame.index.to_numpy()
    outputs: list[Any] = []
    failed: list[int] = []
    for r in range(n):  # error path only
        try:
            outputs.append(f(frame.iloc[r : r + 1]))
        except LabelingFunctionError:
            raise
        except Exception as err:
            if on_error == "raise":
                raise _fail(what, index[r], err) from err
            failed.append(r)
            outputs.append(None)
    if not failed and on_error == "raise":
        raise LabelingFunctionError(
            f"{what} failed on the whole frame but on no single record (records index "
            f"{index[0]!r}..{index[-1]!r}); it depends on more than one row at a time."
        )
    fail = np.asarray(failed, dtype=np.int64)
    if outputs and isinstance(next((o for o in outputs if o is not None), None), pd.DataFrame):
        ok = [o for o in outputs if o is not None]
        frame_out = pd.concat(ok) if ok else frame.iloc[:0]
        frame_out = frame_out.reindex(frame.index) if len(ok) < n else frame_out
        return frame_out, fail
    vals = np.full(n, -1, dtype=np.int64)
    for r, o in enumerate(outputs):
        if o is not None:
            vals[r] = np.asarray(o).reshape(-1)[0]
    return vals, fail


def _infer_k(label: np.ndarray, n_classes: int | None) -> int:
    if n_classes is not None:
        if isinstance(n_classes, bool) or not isinstance(n_classes, int | np.integer):
            raise TypeError(f"n_classes must be an integer >= 2; got {n_classes!r}.")
        if n_classes < 2:
            raise ValueError(f"n_classes must be at least 2; got {n_classes}.")
        return int(n_classes)
    k = int(label.max()) + 1 if label.size else 0
    if k < 2:
        raise ValueError(
            f"The labeling functions voted for {k} class(es) only, so the number of classes "
            "cannot be inferred; pass n_classes=k to the applier."
        )
    check_inferred_k(label, k, what="The labeling functions' votes")
    return k


class PandasLFApplier:
    """Apply labeling functions to a pandas DataFrame (one record per row).

    Parameters
    ----------
    lfs : sequence of LabelingFunction
        Their names become the label matrix's ``source_names``, in this order.
    n_classes : int, optional
        ``k``; checked against every vote. Inferred as ``max(vote) + 1`` when ``None``.
    on_error : {"raise", "abstain"}, default="raise"
        ``"raise"``: a function that raises stops the run with a
        :class:`~wsagg.lf.LabelingFunctionError` naming the function and the record index.
        ``"abstain"``: such a failure is an abstain, counted in ``failures_``.
    progress_bar : bool or "auto", default="auto"
        A tqdm progress bar (records for row-wise functions, functions for vectorised
        ones). ``"auto"``: shown when tqdm is installed (``pip install 'wsagg[progress]'``),
        none otherwise, so a core install works; ``True``: always (tqdm required, a
        one-line error naming the extra without it); ``False``: never.

    Attributes
    ----------
    failures_ : pandas.Series
        Failures per labeling function in the last :meth:`apply`.
    """

    def __init__(
        self,
        lfs: Sequence[LabelingFunction],
        *,
        n_classes: int | None = None,
        on_error: str = "raise",
        progress_bar: bool | str = "auto",
    ) -> None:
        self.lfs = _check_lfs(lfs)
        self.n_classes = n_classes
        self.on_error = _check_on_error(on_error)
        self.progress_bar = _check_progress_bar(progress_bar)

    def apply(self, df: pd.DataFrame) -> LabelMatrix:
        """Votes of every function on every record of ``df`` as a sparse LabelMatrix
        (``item_ids`` = ``df.index``)."""
        if not isinstance(df, pd.DataFrame):
            raise TypeError(
                f"PandasLFApplier.apply needs a pandas DataFrame; got {type(df).__name__} "
                "(use DaskLFApplier for a Dask DataFrame)."
            )
        k = None if self.n_classes is None else _infer_k(np.zeros(0), self.n_classes)
        votes = _apply_frame(df, self.lfs, k, self.on_error, self.progress_bar)
        self.failures_ = pd.Series(votes.failures, index=[lf.name for lf in self.lfs])
        return _to_label_matrix([votes], self.lfs, self.n_classes)


def _to_label_matrix(
    parts: list[_Votes], lfs: list[LabelingFunction], n_classes: int | None
) -> LabelMatrix:
    offsets = np.cumsum([0] + [p.n for p in parts])
    item = np.concatenate([p.item + offsets[i] for i, p in enumerate(parts)])
    label = np.concatenate([p.label for p in parts])
    k = _infer_k(label, n_classes)
    ids = np.concatenate([p.index for p in parts]) if parts else np.zeros(0)
    return LabelMatrix(
        item=item.astype(np.int64),
        source=np.concatenate([p.source for p in parts]).astype(np.int64),
        label=label.astype(np.int64),
        n_items=int(offsets[-1]),
        n_sources=len(lfs),
        n_classes=k,
        item_ids=ids,
        source_names=np.asarray([lf.name for lf in lfs], dtype=object),
        classes=np.arange(k),
    )


def _votes_raw(df: pd.DataFrame, lfs: list, k: int | None, on_error: str) -> tuple:
    v = _apply_frame(df, lfs, k, on_error, False)
    return ("triples", v.item, v.source, v.label, v.n, v.index, None)


class DaskLFApplier:
    """Apply labeling functions to a Dask DataFrame, one task per partition.

    Same parameters as :class:`PandasLFApplier` (no progress bar: use the Dask dashboard).
    :meth:`apply` gathers only the votes into one LabelMatrix (memory linear in the votes);
    :meth:`to_partitions` keeps them on the workers as
    :class:`wsagg.distributed.VotePartitions` for a distributed fit.
    """

    def __init__(
        self,
        lfs: Sequence[LabelingFunction],
        *,
        n_classes: int | None = None,
        on_error: str = "raise",
    ) -> None:
        self.lfs = _check_lfs(lfs)
        self.n_classes = n_classes
        self.on_error = _check_on_error(on_error)

    def apply(self, df: Any, *, client: Any = None) -> LabelMatrix:
        """Votes on every record of the Dask DataFrame ``df`` as one sparse LabelMatrix
        (items in partition order; ``item_ids`` = the index values)."""
        dask = import_optional("dask", "DaskLFApplier")

        parts = [
            dask.delayed(_apply_frame)(p, self.lfs, self.n_classes, self.on_error, False)
            for p in _partitions(df)
        ]
        if client is not None:
            votes = client.gather(client.compute(parts))
        else:
            votes = list(dask.compute(*parts))
        self.failures_ = pd.Series(
            np.sum([v.failures for v in votes], axis=0), index=[lf.name for lf in self.lfs]
        )
        return _to_label_matrix(votes, self.lfs, self.n_classes)

    def to_partitions(self, df: Any, **kwargs: Any) -> Any:
        """Lazy :class:`wsagg.distributed.VotePartitions`: each partition's votes are
        computed where it is fitted, never collected. ``kwargs`` go to ``VotePartitions``
        (``engine``, ``client``, ``cache``)."""
        dask = import_optional("dask", "DaskLFApplier")

        from wsagg.distributed import VotePartitions

        loaders = [
            dask.delayed(_votes_raw)(p, self.lfs, self.n_classes, self.on_error)
            for p in _partitions(df)
        ]
        return VotePartitions(
            loaders,
            n_sources=len(self.lfs),
            n_classes=self.n_classes,
            source_names=np.asarray([lf.name for lf in self.lfs], dtype=object),
            **kwargs,
        )


def _partitions(df: Any) -> list:
    dd = import_optional("dask.dataframe", "DaskLFApplier")

    if not isinstance(df, dd.DataFrame):
        raise TypeError(
            f"DaskLFApplier needs a dask.dataframe.DataFrame; got {type(df).__name__} (use "
            "PandasLFApplier for pandas, or dd.from_pandas(df, npartitions=...))."
        )
    return list(df.to_delayed())
