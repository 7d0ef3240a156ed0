"""Loaders for the label-matrix formats users have.

Every loader returns a :class:`~wsagg.datasets.Dataset` (``L``, ``y`` with ``-1`` = no gold,
``class_names``, ``source_names``, ``name``, ``split``; ``texts`` / ``metadata`` where the
format has them). Formats:

* :func:`load_wrench` — a WRENCH directory: ``{split}.json`` =
  ``{id: {"data": {...}, "label": int, "weak_labels": [int per LF, -1 = abstain]}}`` plus
  ``label.json`` (class names) and optionally ``readme.txt`` (LF list) and
  ``labeled_ids.json``;
* :func:`load_crowd_triples` — CSV/TSV crowd answers ``(item, worker, label)`` with arbitrary
  ids and label values, plus an optional truth file ``(item, truth)`` or a gold column;
* :func:`load_label_matrix_npz`, :func:`load_label_matrix_npy`, :func:`load_label_matrix_mat`
  — dense matrices in any encoding (``abstain_value`` says which raw value is an abstain,
  e.g. ``0`` for MeTaL and FlyingSquid; ``class_values`` lists the raw class values);
* :func:`load_label_matrix_csv` — a wide CSV with one column per labeling function;
* :func:`load_cubam_yaml` — CUBAM's YAML ``{worker: {item: bool}}`` + ground truth.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from wsagg._optional import import_optional
from wsagg.datasets._base import (
    Dataset,
    check_file,
    dataset_from_dense,
    dataset_from_triples,
)
from wsagg.labels import DuplicatePolicy

__all__ = [
    "load_crowd_triples",
    "load_cubam_yaml",
    "load_label_matrix_csv",
    "load_label_matrix_mat",
    "load_label_matrix_npy",
    "load_label_matrix_npz",
    "load_wrench",
]

_WRENCH_AUX = {"label.json", "labeled_ids.json"}


# ----------------------------------------------------------------------------------------
# WRENCH
# ----------------------------------------------------------------------------------------


def load_wrench(
    directory: str | Path,
    split: str = "train",
    *,
    label_file: str | Path | None = None,
    readme_file: str | Path | None = None,
    name: str | None = None,
    texts: bool = True,
) -> Dataset:
    """Load one split of a WRENCH dataset directory.

    Parameters
    ----------
    directory : path
        Folder holding ``train.json``, ``valid.json``, ``test.json`` (any ``<split>.json``).
    split : str
        Which split file to read (``"train"``, ``"valid"``, ``"test"``).
    label_file, readme_file : path, optional
        ``label.json`` (``{"0": "HAM", "1": "SPAM"}``) and ``readme.txt`` (the LF list) when
        they are not in ``directory``. Without ``label.json`` classes are named ``"0".."k-1"``;
        without a parsable readme sources are named ``lf0..lf{m-1}``.
    name : str, optional
        Dataset name (default: the directory's name).
    texts : bool
        Keep ``data["text"]`` as ``Dataset.texts`` (when every item has one).

    Returns
    -------
    Dataset
        Items in file order, ``L.item_ids`` = the JSON keys. ``metadata["labeled"]`` is a
        boolean mask of WRENCH's ``labeled_ids.json`` items when that file exists;
        ``metadata["lf_descriptions"]`` holds the readme's rule per LF when it has one.
    """
    directory = check_file(directory, "WRENCH directory")
    if not directory.is_dir():
        raise NotADirectoryError(
            f"The WRENCH loader needs a directory of <split>.json files: {directory}"
        )
    if (
        not isinstance(split, str)
        or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", split)
        or ".." in split
    ):
        raise ValueError(
            f"split must be the name of a <split>.json file in {directory} (e.g. 'train'); "
            f"got {split!r}, which is not a plain file name (no '/', '\\' or '..')."
        )
    split_file = directory / f"{split}.json"
    if not split_file.is_file():
        available = sorted(
            p.stem for p in directory.glob("*.json") if p.name not in _WRENCH_AUX
        )
        raise ValueError(
            f"Unknown split {split!r} for WRENCH directory {directory}: no {split}.json. "
            f"Available splits: {available}."
        )
    with open(split_file, encoding="utf-8") as fh:
        try:
            records = json.load(fh)
        except json.JSONDecodeError as err:
            raise ValueError(f"{split_file} is not valid JSON: {err}") from err
    what = f"WRENCH file {split_file}"
    if not isinstance(records, dict) or not records:
        raise ValueError(
            f"{what}: expected a non-empty JSON object {{id: {{'label', 'weak_labels', "
            "'data'}}}}."
        )
    ids = list(records)
    recs = list(records.values())
    try:
        weak = [r["weak_labels"] for r in recs]
    except (KeyError, TypeError) as err:
        raise ValueError(
            f"{what}: every record needs a 'weak_labels' list (one vote per LF, -1 = abstain)."
        ) from err
    lengths = {len(w) for w in weak}
    if len(lengths) != 1:
        raise ValueError(
            f"{what}: records have different numbers of weak labels {sorted(lengths)}; every "
            "record needs one entry per labeling function."
        )
    L_raw = np.asarray(weak)
    gold = np.asarray([-1 if r.get("label") is None else r["label"] for r in recs])

    label_path = Path(label_file) if label_file is not None else directory / "label.json"
    if label_path.is_file():
        with open(label_path, encoding="utf-8") as fh:
            mapping = json.load(fh)
        keys = sorted(int(k) for k in mapping)
        if keys != list(range(len(keys))):
            raise ValueError(f"{label_path}: class ids must be 0..k-1; got {keys}.")
        class_names = [str(mapping[str(k)]) for k in keys]
    elif label_file is not None:
        raise FileNotFoundError(f"label_file not found: {label_path}")
    else:
        top = max(int(L_raw.max()), int(gold.max()))
        class_names = [str(c) for c in range(top + 1)]
    m = L_raw.shape[1]
    readme_path = Path(readme_file) if readme_file is not None else directory / "readme.txt"
    source_names, descriptions = _wrench_lf_names(readme_path, m)
    meta: dict[str, Any] = {"path": str(split_file)}
    if descriptions is not None:
        meta["lf_descriptions"] = descriptions
    labeled_path = directory / "labeled_ids.json"
    if labeled_path.is_file():
        with open(labeled_path, encoding="utf-8") as fh:
            labeled = json.load(fh).get("labeled_ids", [])
        meta["labeled"] = np.isin(np.asarray(ids, dtype=object), np.asarray(labeled, dtype=object))
    item_texts = None
    if texts:
        item_texts = [(r.get("data") or {}).get("text") for r in recs]
        if any(t is None for t in item_texts):
            item_texts = None
    return dataset_from_dense(
        L_raw,
        gold,
        abstain_value=-1,
        class_values=np.arange(len(class_names)),
        class_names=class_names,
        source_names=source_names,
        y_unknown_value=-1,
        name=name or directory.name,
        split=split,
        texts=item_texts,
        item_ids=np.asarray(ids, dtype=object),
        metadata=meta,
        what=what,
    )


def _wrench_lf_names(readme: Path, m: int) -> tuple[list[str], list[str] | None]:
    """LF names from a WRENCH readme: an identifier list (youtube) or tab-separated rules
    ``class<TAB>regex<TAB>example`` (sms, trec); ``lf0..`` when neither has ``m`` entries."""
    default = [f"lf{j}" for j in range(m)]
    if not readme.is_file():
        return default, None
    text = readme.read_text(encoding="utf-8", errors="replace")
    rules = [ln.split("\t") for ln in text.splitlines() if ln.count("\t") >= 1]
    if len(rules) == m:
        names = [f"lf{j}_{r[0].strip().lower()}" for j, r in enumerate(rules)]
        return names, [r[1].strip() if len(r) > 1 else "" for r in rules]
    match = re.search(r"functions list:\s*\n((?:[ \t]*\w+,?[ \t]*\n)+)", text, re.IGNORECASE)
    if match:
        names = [s.strip().rstrip(",") for s in match.group(1).splitlines() if s.strip()]
        if len(names) == m and len(set(names)) == m:
            return names, None
    return default, None


# ----------------------------------------------------------------------------------------
# crowd triples
# ----------------------------------------------------------------------------------------

_ITEM_ALIASES = ("item", "task", "question", "item_id", "object", "orig_id")
_WORKER_ALIASES = ("worker", "source", "annotator", "worker_id", "!amt_worker_ids")
_LABEL_ALIASES = ("label", "answer", "response", "rating")
_TRUTH_ALIASES = ("truth", "gold", "label", "answer", "true_label")


def _infer_sep(path: Path, sep: str | None) -> str | None:
    if sep is not None:
        return sep
    suffix = path.suffix.lower()
    if suffix in (".tsv", ".tab", ".txt"):
        return "\t"
    if suffix == ".csv":
        return ","
    return None  # let pandas sniff


def _read_table(path: Path, sep: str | None, header: bool, what: str) -> pd.DataFrame:
    s = _infer_sep(path, sep)
    try:
        df = pd.read_csv(
            path,
            sep=s,
            header=0 if header else None,
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            engine="python" if s is None else "c",
        )
    except pd.errors.EmptyDataError as err:
        raise ValueError(f"{what} {path} is empty.") from err
    if df.shape[0] == 0:
        raise ValueError(f"{what} {path} has no rows.")
    return df


def _pick(df: pd.DataFrame, col: str | int | None, aliases: Sequence[str], what: str,
          path: Path) -> str | int:
    if col is not None:
        if col not in df.columns:
            raise ValueError(
                f"{path}: no {what} column {col!r}; columns are {list(df.columns)}. Pass "
                f"{what}_col= naming one of them (an int position when header=False)."
            )
        return col
    lower = {str(c).lower(): c for c in df.columns}
    for a in aliases:
        if a in lower:
            return lower[a]
    raise ValueError(
        f"{path}: cannot find the {what} column among {list(df.columns)} (looked for "
        f"{list(aliases)}). Pass {what}_col= explicitly."
    )


def load_crowd_triples(
    answers: str | Path,
    truth: str | Path | None = None,
    *,
    item_col: str | int | None = None,
    worker_col: str | int | None = None,
    label_col: str | int | None = None,
    gold_col: str | int | None = None,
    truth_item_col: str | int | None = None,
    truth_col: str | int | None = None,
    sep: str | None = None,
    header: bool = True,
    truth_header: bool | None = None,
    classes: Sequence[Any] | None = None,
    duplicates: DuplicatePolicy = "count",
    name: str | None = None,
    split: str = "all",
) -> Dataset:
    """Load crowd answers given as (item, worker, label) rows, with gold from a truth file
    or a gold column.

    Parameters
    ----------
    answers : path
        CSV/TSV with one answer per row. Item and worker ids are read as strings (so ``01``
        and ``1`` stay distinct, and ids in the truth file match exactly).
    truth : path, optional
        CSV/TSV with ``(item, truth)`` rows. Items that appear only here are kept (no votes).
    item_col, worker_col, label_col : str or int, optional
        Column names (int positions when ``header=False``). Guessed when ``None``: item from
        ``item, task, question, orig_id``; worker from ``worker, source, annotator,
        !amt_worker_ids``; label from ``label, answer, response, rating``.
    gold_col : str or int, optional
        A gold column in the answers file itself (Snow et al. 2008's TSVs repeat the gold
        label on every row); it must agree across an item's rows.
    truth_item_col, truth_col : str or int, optional
        Columns of the truth file (default: the item column's name, else the first column;
        ``truth``/``gold``/``label``..., else the second column).
    sep : str, optional
        Field separator; by default ``\\t`` for ``.tsv``/``.txt``, ``,`` for ``.csv``, else
        sniffed.
    header, truth_header : bool
        Whether the files have a header row (``truth_header`` defaults to ``header``).
    classes : sequence, optional
        Raw class values in class-index order. Default: the sorted distinct values of the
        labels and gold (numeric order when numeric: ``"10"`` after ``"9"``).
    duplicates : {"count", "last", "first", "error"}
        Repeated answers by one worker on one item: ``"count"`` (default) keeps every answer
        as an observation; ``"last"``/``"first"`` keep one in file order; ``"error"`` raises.
    name, split : str
        Stored in the result (``name`` defaults to the answers file's parent folder).
    """
    answers = check_file(answers, "answers file")
    df = _read_table(answers, sep, header, "answers file")
    ic = _pick(df, item_col, _ITEM_ALIASES, "item", answers)
    wc = _pick(df, worker_col, _WORKER_ALIASES, "worker", answers)
    lc = _pick(df, label_col, _LABEL_ALIASES, "label", answers)
    if len({ic, wc, lc}) != 3:
        raise ValueError(
            f"{answers}: item, worker and label columns must differ; got {ic!r}, {wc!r}, {lc!r}."
        )
    if df[ic].isna().any() or df[wc].isna().any():
        bad = int((df[ic].isna() | df[wc].isna()).to_numpy().nonzero()[0][0])
        raise ValueError(f"{answers}: row {bad} has an empty item or worker id; fix the file.")
    gold_items = gold_labels = None
    meta: dict[str, Any] = {"path": str(answers)}
    if gold_col is not None:
        if gold_col not in df.columns:
            raise ValueError(
                f"{answers}: no gold column {gold_col!r}; columns are {list(df.columns)}."
            )
        g = df[[ic, gold_col]].dropna()
        n_gold = g.groupby(ic, sort=False)[gold_col].nunique()
        if (n_gold > 1).any():
            raise ValueError(
                f"{answers}: item {n_gold.index[n_gold > 1][0]!r} has conflicting gold values "
                f"in column {gold_col!r}."
            )
        first = g.drop_duplicates(ic)
        gold_items, gold_labels = first[ic].to_numpy(), first[gold_col].to_numpy()
    if truth is not None:
        if gold_col is not None:
            raise ValueError("Give either truth= (a file) or gold_col= (a column), not both.")
        truth = check_file(truth, "truth file")
        th = header if truth_header is None else truth_header
        tf = _read_table(truth, sep, th, "truth file")
        if tf.shape[1] < 2:
            raise ValueError(
                f"{truth}: a truth file needs two columns (item, truth); got {list(tf.columns)}. "
                "Check sep=."
            )
        tic = truth_item_col
        if tic is None:  # same column name as in the answers file, else the first column
            tic = ic if th and ic in tf.columns else tf.columns[0]
        ttc = truth_col
        if ttc is None:
            try:
                ttc = _pick(tf, None, _TRUTH_ALIASES, "truth", truth)
            except ValueError:
                ttc = tf.columns[1]
        if ttc == tic:
            raise ValueError(
                f"{truth}: the truth item column and the truth column are both {tic!r}; pass "
                "truth_item_col= and truth_col=."
            )
        for c, w in ((tic, "truth_item"), (ttc, "truth")):
            if c not in tf.columns:
                raise ValueError(
                    f"{truth}: no {w} column {c!r}; columns are {list(tf.columns)}. Pass {w}_col=."
                )
        tf = tf.dropna(subset=[tic])
        gold_items, gold_labels = tf[tic].to_numpy(), tf[ttc].to_numpy()
        meta["truth_path"] = str(truth)
    return dataset_from_triples(
        df[ic].to_numpy(),
        df[wc].to_numpy(),
        df[lc].to_numpy(dtype=object),
        gold_items=gold_items,
        gold_labels=gold_labels,
        classes=classes,
        duplicates=duplicates,
        name=name or answers.parent.name,
        split=split,
        metadata=meta,
        what=str(answers),
    )


# ----------------------------------------------------------------------------------------
# dense matrices: npz / npy / mat / wide csv
# ----------------------------------------------------------------------------------------


def load_label_matrix_npz(
    path: str | Path,
    L_key: str = "L",
    y_key: str | None = "y",
    *,
    abstain_value: Any = -1,
    class_values: Sequence[Any] | None = None,
    class_names: Sequence[str] | None = None,
    y_unknown_value: Any = None,
    source_names: Sequence[str] | None = None,
    name: str | None = None,
    split: str = "all",
) -> Dataset:
    """Load a dense label matrix (and gold) from a ``.npz`` archive.

    Parameters
    ----------
    path : path
    L_key, y_key : str
        Array names in the archive (``y_key=None``: no gold; a missing ``y_key`` is an
        error unless it is the default ``"y"``).
    abstain_value : scalar
        Raw value meaning *abstain*: ``-1`` (Snorkel/WRENCH) or ``0`` (MeTaL, FlyingSquid).
    class_values : sequence, optional
        Raw class values in class-index order, e.g. ``[1, 2]`` (MeTaL) or ``[-1, 1]``
        (FlyingSquid). Default: ``0..max`` when ``abstain_value=-1`` and values are
        non-negative, else the sorted distinct non-abstain values of ``L`` and gold.
        Give it explicitly when loading several splits, so they share one class order.
    class_names : list of str, optional
        Readable names in class-index order (default: the class values as strings).
    y_unknown_value : scalar, optional
        Raw gold value meaning *no gold* (e.g. ``-1``); NaN gold is always unknown.
    """
    path = check_file(path, "npz file")
    with np.load(path, allow_pickle=False) as z:
        keys = list(z.keys())
        if L_key not in keys:
            raise ValueError(f"{path}: no array {L_key!r}; arrays are {keys}. Pass L_key=.")
        L_raw = z[L_key]
        y_raw = None
        if y_key is not None:
            if y_key in keys:
                y_raw = z[y_key]
            elif y_key != "y":
                raise ValueError(f"{path}: no array {y_key!r}; arrays are {keys}. Pass y_key=.")
    return dataset_from_dense(
        L_raw,
        y_raw,
        abstain_value=abstain_value,
        class_values=class_values,
        class_names=class_names,
        y_unknown_value=y_unknown_value,
        source_names=source_names,
        name=name or path.stem,
        split=split,
        metadata={"path": str(path), "abstain_value": abstain_value},
        what=f"{path}[{L_key}]",
    )


def load_label_matrix_npy(
    L_path: str | Path,
    y_path: str | Path | None = None,
    *,
    abstain_value: Any = -1,
    class_values: Sequence[Any] | None = None,
    class_names: Sequence[str] | None = None,
    y_unknown_value: Any = None,
    source_names: Sequence[str] | None = None,
    name: str | None = None,
    split: str = "all",
) -> Dataset:
    """Load a dense label matrix from a ``.npy`` file, gold from another (optional).

    Encoding parameters as in :func:`load_label_matrix_npz`; float files holding whole
    numbers (FlyingSquid's) are accepted, fractions are an error.
    """
    L_path = check_file(L_path, "label-matrix .npy file")
    L_raw = np.load(L_path, allow_pickle=False)
    y_raw = None
    if y_path is not None:
        y_raw = np.load(check_file(y_path, "gold .npy file"), allow_pickle=False)
    return dataset_from_dense(
        L_raw,
        y_raw,
        abstain_value=abstain_value,
        class_values=class_values,
        class_names=class_names,
        y_unknown_value=y_unknown_value,
        source_names=source_names,
        name=name or L_path.stem,
        split=split,
        metadata={"path": str(L_path), "abstain_value": abstain_value},
        what=str(L_path),
    )


def load_label_matrix_mat(
    path: str | Path,
    L_key: str,
    y_key: str | None = None,
    *,
    abstain_value: Any = -1,
    class_values: Sequence[Any] | None = None,
    class_names: Sequence[str] | None = None,
    y_unknown_value: Any = None,
    source_names: Sequence[str] | None = None,
    name: str | None = None,
    split: str = "all",
) -> Dataset:
    """Load a dense label matrix from a MATLAB ``.mat`` file (``scipy.io.loadmat``).

    Gold stored as a ``1 x n`` row is flattened. MATLAB often stores labels as ``uint8``;
    they are cast to int64 before any arithmetic (``uint8(0) - 1`` would wrap to 255).
    """
    from scipy.io import loadmat

    path = check_file(path, ".mat file")
    try:
        mat = loadmat(path)
    except (ValueError, NotImplementedError, IndexError, TypeError, OSError) as err:
        raise ValueError(
            f"{path} could not be read by scipy.io.loadmat ({err}); MATLAB v7.3 (HDF5) files "
            "need h5py."
        ) from err
    keys = [k for k in mat if not k.startswith("__")]
    if L_key not in keys:
        raise ValueError(f"{path}: no array {L_key!r}; arrays are {keys}. Pass L_key=.")
    y_raw = None
    if y_key is not None:
        if y_key not in keys:
            raise ValueError(f"{path}: no array {y_key!r}; arrays are {keys}. Pass y_key=.")
        y_raw = np.asarray(mat[y_key]).reshape(-1)
    return dataset_from_dense(
        mat[L_key],
        y_raw,
        abstain_value=abstain_value,
        class_values=class_values,
        class_names=class_names,
        y_unknown_value=y_unknown_value,
        source_names=source_names,
        name=name or path.stem,
        split=split,
        metadata={"path": str(path), "abstain_value": abstain_value},
        what=f"{path}[{L_key}]",
    )


def load_label_matrix_csv(
    path: str | Path,
    source_cols: Sequence[str] | str = r"LF\d+",
    label_col: str | None = "label",
    *,
    text_col: str | None = None,
    abstain_value: Any = -1,
    class_values: Sequence[Any] | None = None,
    class_names: Sequence[str] | None = None,
    y_unknown_value: Any = None,
    sep: str | None = None,
    name: str | None = None,
    split: str = "all",
) -> Dataset:
    """Load a *wide* CSV: one row per item, one column per labeling function.

    Parameters
    ----------
    source_cols : list of str or str
        The LF columns, or a regular expression that their names match fully (default
        ``LF\\d+``: ``LF1, LF2, ...``).
    label_col : str or None
        Gold column (``None``: no gold).
    text_col : str, optional
        A column kept as ``Dataset.texts``.
    """
    path = check_file(path, "CSV file")
    df = pd.read_csv(path, sep=_infer_sep(path, sep) or ",")
    if isinstance(source_cols, str):
        pattern = re.compile(source_cols)
        cols = [c for c in df.columns if pattern.fullmatch(str(c))]
        if not cols:
            raise ValueError(
                f"{path}: no column matches source_cols={source_cols!r}; columns are "
                f"{list(df.columns)}. Pass source_cols=[...] with the LF columns."
            )
    else:
        cols = list(source_cols)
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise ValueError(
                f"{path}: LF columns {missing} not found; columns are {list(df.columns)}."
            )
    for c, w in ((label_col, "label_col"), (text_col, "text_col")):
        if c is not None and c not in df.columns:
            raise ValueError(f"{path}: no {w} column {c!r}; columns are {list(df.columns)}.")
    y_raw = None if label_col is None else df[label_col].to_numpy()
    texts = None if text_col is None else df[text_col].astype(str).tolist()
    return dataset_from_dense(
        df[cols].to_numpy(),
        y_raw,
        abstain_value=abstain_value,
        class_values=class_values,
        class_names=class_names,
        y_unknown_value=y_unknown_value,
        source_names=[str(c) for c in cols],
        name=name or path.stem,
        split=split,
        texts=texts,
        metadata={"path": str(path), "abstain_value": abstain_value},
        what=str(path),
    )


# ----------------------------------------------------------------------------------------
# CUBAM YAML (Welinder et al. 2010)
# ----------------------------------------------------------------------------------------


def _load_yaml(path: Path) -> Any:
    yaml = import_optional("yaml", "Reading YAML", alternative="or pip install pyyaml")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(path, encoding="utf-8") as fh:
        try:
            return yaml.load(fh, Loader=loader)  # a safe loader (CSafeLoader / SafeLoader)
        except yaml.YAMLError as err:
            raise ValueError(f"{path} is not valid YAML: {err}") from err


def load_cubam_yaml(
    labels_yaml: str | Path,
    gt_yaml: str | Path | None = None,
    *,
    duplicates: DuplicatePolicy = "count",
    name: str | None = None,
    split: str = "all",
) -> Dataset:
    """Load CUBAM's YAML format: ``labels`` = ``{worker: {item: bool}}``, ground truth
    ``{item: bool}``. Classes are ``0`` (false) and ``1`` (true)."""
    labels_yaml = check_file(labels_yaml, "labels YAML")
    raw = _load_yaml(labels_yaml)
    if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
        raise ValueError(f"{labels_yaml}: expected a mapping {{worker: {{item: label}}}}.")
    workers = np.concatenate(
        [np.full(len(v), w, dtype=object) for w, v in raw.items()]
    ) if raw else np.empty(0, dtype=object)
    items = np.asarray([i for v in raw.values() for i in v], dtype=object)
    labels = np.asarray([int(x) for v in raw.values() for x in v.values()], dtype=object)
    gold_items = gold_labels = None
    if gt_yaml is not None:
        gt = _load_yaml(check_file(gt_yaml, "ground-truth YAML"))
        if not isinstance(gt, dict):
            raise ValueError(f"{gt_yaml}: expected a mapping {{item: label}}.")
        gold_items = np.asarray(list(gt), dtype=object)
        gold_labels = np.asarray([int(x) for x in gt.values()], dtype=object)
    return dataset_from_triples(
        items,
        workers,
        labels,
        gold_items=gold_items,
        gold_labels=gold_labels,
        classes=[0, 1],
        duplicates=duplicates,
        name=name or labels_yaml.parent.name,
        split=split,
        metadata={"path": str(labels_yaml)},
        what=str(labels_yaml),
    )
