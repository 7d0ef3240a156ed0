"""The peers: other libraries' implementations of the models in wsagg, behind one call shape.

Every function here takes a dense label matrix ``L`` (``(n, m)`` ints, ``-1`` = abstain; a
:class:`wsagg.labels.LabelMatrix` is accepted too, and the crowd-kit peers then keep its
repeated votes) and the number of classes ``k``, fits the peer with its defaults and returns
its ``(n, k)`` float64 posterior in item order, rows summing to 1 (rows in = rows out).
:data:`PEERS` maps each peer to the wsagg registry name of the same model;
:data:`WSAGG_PARAMS` gives the wsagg parameters that select that model where the name alone
does not (one-coin Dawid-Skene).

The peers live in the benchmark venv ``.venv-bench`` (see ``benchmarks/README.md``)::

    python3 -m venv .venv-bench
    .venv-bench/bin/pip install torch==2.13.0                  # the CPU build, FIRST
    echo torch==2.13.0 > /tmp/c.txt
    .venv-bench/bin/pip install -e . crowd-kit==1.4.2 snorkel==0.10.0 flyingsquid peerannot \\
        -c /tmp/c.txt
    .venv-bench/bin/pip install pgmpy==0.1.16 "setuptools<80" -c /tmp/c.txt   # for flyingsquid

``flyingsquid`` (unpinned; no pgmpy in its metadata) imports ``pgmpy.models.MarkovModel``,
which pgmpy 1.x no longer has; 0.1.26 has it but requires xgboost and google-generativeai,
0.1.16 has it with light dependencies but imports ``pkg_resources`` (gone from setuptools
>= 80) and calls ``np.product`` (the ``numpy-product`` shim below).

peerannot pulls torchvision 0.28.0 from PyPI, a CUDA build whose C extension does not load
next to the CPU torch (``import torchvision`` fails: ``operator torchvision::nms does not
exist``); IWMV does not need it.

What each peer does with an item that has no vote: crowd-kit leaves it out of its output,
peerannot's IWMV cannot take it (it indexes tasks by position); both get a uniform row here.
Snorkel and flyingsquid take the dense matrix and return their own row (their class balance,
uniform by default). Peers that return hard labels only (KOS, IWMV) give one-hot rows (a tie
in KOS, a sum of exactly 0, is a uniform row); M-MSR returns its weighted vote shares
(``scores_``, the normalised skill-weighted votes), not a posterior.

Compatibility shims (each applied only when the crash it fixes is detected, and recorded in
:data:`SHIMS`):

* ``crowdkit-sklearn-tags``: crowd-kit 1.4.2's ``Wawa`` and ``ZeroBasedSkill`` call
  ``sklearn.utils.validation.check_is_fitted`` on themselves, attrs classes that are not
  ``BaseEstimator``s; since scikit-learn 1.6 that calls ``get_tags``, which raises
  ``AttributeError: The following error was raised: 'Wawa' object has no attribute
  '__sklearn_tags__'. ...``. The shim replaces the name ``check_is_fitted`` in those two
  modules (only there) with a check that the named attributes exist.
* ``numpy-product``: pgmpy 0.1.16 (flyingsquid's graph code) calls ``np.product``, removed in
  NumPy 2.0 (``AttributeError: module 'numpy' has no attribute 'product'``). The shim sets
  ``numpy.product = numpy.prod`` (an alias of the same function; nothing else changes).
* ``crowdkit-mmsr-pandas3``: pandas 3 made ``DataFrame.idxmax`` raise on an all-NA row
  (``ValueError: Encountered all NA values``); crowd-kit's skill-weighted ``MajorityVote``
  (the last step of M-MSR, Wawa, ZeroBasedSkill) produces one for a task whose voters'
  weights sum to 0. The shim restores the pandas-2 result (NaN label) in that module only;
  see :func:`_patch_mmsr`.
* ``crowdkit-kos-tie``: crowd-kit's KOS crashes with ``KeyError: 0.0`` on a tied task (not a
  version issue: a bug in any version); see :class:`_KosNumpy`.

Not shimmed (a result of the peer, recorded as its error): crowd-kit's M-MSR on sparse crowd
data (``zheng_product``) ends with every worker's skill NaN (``invalid value encountered in
divide`` in its iterations), and ``MajorityVote`` then refuses: ``ValueError: Skill value is
missing in 24945 assignments``.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = [
    "PEERS",
    "PEER_PACKAGES",
    "SHIMS",
    "WSAGG_CLASSES",
    "WSAGG_PARAMS",
    "available",
    "make_wsagg",
    "peer_versions",
    "wsagg_class",
]

#: shim name -> the crash text it works around (filled when a shim is applied)
SHIMS: dict[str, str] = {}


# ----------------------------------------------------------------------------------------
# input conversion
# ----------------------------------------------------------------------------------------


def _triples(L: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """(item, source, label, n, m) from a dense matrix or a LabelMatrix (repeats kept)."""
    if hasattr(L, "item") and hasattr(L, "n_items"):
        return (
            np.array(L.item, dtype=np.int64),
            np.array(L.source, dtype=np.int64),
            np.array(L.label, dtype=np.int64),
            int(L.n_items),
            int(L.n_sources),
        )
    D = np.asarray(L)
    if D.ndim != 2:
        raise ValueError(f"L must be a dense (n, m) matrix; got shape {D.shape}.")
    item, source = np.nonzero(D >= 0)
    return item, source, D[item, source].astype(np.int64), D.shape[0], D.shape[1]


def _dense(L: Any) -> np.ndarray:
    if hasattr(L, "to_dense"):
        return L.to_dense()
    return np.asarray(L, dtype=np.int64)


def _long(L: Any):
    """crowd-kit's long format: columns task, worker, label (fresh, writable arrays)."""
    import pandas as pd

    item, source, label, _, _ = _triples(L)
    return pd.DataFrame({"task": item, "worker": source, "label": label})


def _from_frame(frame: Any, n: int, k: int) -> np.ndarray:
    """A (task x label) DataFrame to an (n, k) array; absent tasks get a uniform row."""
    out = frame.reindex(index=np.arange(n), columns=np.arange(k))
    out = out.to_numpy(dtype=np.float64, copy=True)  # pandas 3: to_numpy() may be read-only
    missing = np.isnan(out).all(axis=1)
    out = np.nan_to_num(out, nan=0.0)
    out[missing] = 1.0 / k
    return _normalise(out)


def _normalise(P: np.ndarray) -> np.ndarray:
    P = np.clip(np.asarray(P, dtype=np.float64), 0.0, None)
    s = P.sum(axis=1, keepdims=True)
    bad = ~(s[:, 0] > 0) | ~np.isfinite(s[:, 0])
    P = np.divide(P, s, out=np.zeros_like(P), where=~bad[:, None])
    P[bad] = 1.0 / P.shape[1]
    return P


def _one_hot(labels: np.ndarray, k: int) -> np.ndarray:
    """Hard labels (-1 = none) to rows; -1 gives a uniform row."""
    labels = np.asarray(labels, dtype=np.int64)
    out = np.full((labels.shape[0], k), 1.0 / k)
    ok = labels >= 0
    out[ok] = 0.0
    out[np.flatnonzero(ok), labels[ok]] = 1.0
    return out


# ----------------------------------------------------------------------------------------
# shims
# ----------------------------------------------------------------------------------------


def _check_is_fitted_crashes() -> str | None:
    """The text of the crash sklearn's check_is_fitted gives on a non-BaseEstimator, if any."""
    from sklearn.utils.validation import check_is_fitted

    class _Plain:
        skills_ = 1

        def fit(self):  # check_is_fitted wants an estimator with fit
            return self

    try:
        check_is_fitted(_Plain(), attributes="skills_")
    except AttributeError as err:
        return str(err)
    except Exception:  # other errors are not this crash
        return None
    return None


def _patch_crowdkit() -> None:
    from crowdkit.aggregation.classification import wawa, zero_based_skill

    _patch_mmsr()
    _patch_kos()
    crash = _check_is_fitted_crashes()
    if crash is None or "crowdkit-sklearn-tags" in SHIMS:
        return
    from sklearn.exceptions import NotFittedError

    def check_is_fitted(estimator: Any, attributes: Any = None, **_: Any) -> None:
        names = [attributes] if isinstance(attributes, str) else list(attributes or ())
        if not all(hasattr(estimator, a) for a in names):
            raise NotFittedError(f"{type(estimator).__name__} is not fitted yet.")

    wawa.check_is_fitted = check_is_fitted
    zero_based_skill.check_is_fitted = check_is_fitted
    crash = crash.split(". ")[0].replace("_Plain", "Wawa")
    SHIMS["crowdkit-sklearn-tags"] = f"AttributeError: {crash}"


def _idxmax_all_na_crashes() -> str | None:
    import pandas as pd

    try:
        pd.DataFrame([[np.nan, np.nan]]).idxmax(axis="columns")
    except ValueError as err:
        return str(err)
    return None


def _patch_mmsr() -> None:
    """pandas 3: ``DataFrame.idxmax`` raises on an all-NA row (pandas 2 returned NaN).

    crowd-kit's ``MajorityVote(skills=...)``, which M-MSR (and Wawa, ZeroBasedSkill) run
    at the end, normalises the skill-weighted votes per task; a task whose voters' weights
    sum to 0 gets an all-NaN row, and ``get_most_probable_labels`` (``idxmax``) then raises
    ``ValueError: Encountered all NA values``. The shim replaces that name in crowd-kit's
    ``majority_vote`` module with the pandas-2 behaviour: NaN label for an all-NA row (the
    row's posterior here is then uniform).
    """
    crash = _idxmax_all_na_crashes()
    if crash is None or "crowdkit-mmsr-pandas3" in SHIMS:
        return
    import pandas as pd
    from crowdkit.aggregation.classification import majority_vote

    def get_most_probable_labels(proba: Any) -> Any:
        if not proba.size:
            return pd.Series([], dtype="O")
        ok = proba.notna().any(axis=1)
        return proba[ok].idxmax(axis="columns").reindex(proba.index)

    majority_vote.get_most_probable_labels = get_most_probable_labels
    SHIMS["crowdkit-mmsr-pandas3"] = f"ValueError: {crash}"


class _KosNumpy:
    """numpy, as crowd-kit's ``kos`` module sees it, with a ``sign`` that survives ties.

    crowd-kit 1.4.2's KOS labels a task by ``np.sign`` of its summed messages and maps the
    sign back through ``{+1: label_a, -1: label_b}``; a tied task (sum exactly 0, e.g. one
    vote each way from equally reliable workers) has sign 0 and crashes the fit with
    ``KeyError: 0.0``. This ``sign`` maps 0 to +1 (so the fit completes) and records the
    tied tasks in ``ties``; :func:`crowdkit_kos` gives them a uniform row.
    """

    def __init__(self) -> None:
        self.ties: Any = None

    def __getattr__(self, name: str) -> Any:
        return getattr(np, name)

    def sign(self, x: Any, *args: Any, **kwargs: Any) -> Any:
        out = np.sign(x, *args, **kwargs)
        if hasattr(out, "index"):  # the one call: a Series of per-task sums
            self.ties = out.index[out == 0]
            out = out.where(out != 0, 1.0)
        return out


_KOS_NUMPY = _KosNumpy()


def _patch_kos() -> None:
    from crowdkit.aggregation.classification import kos

    if kos.np is not _KOS_NUMPY:
        kos.np = _KOS_NUMPY
        SHIMS["crowdkit-kos-tie"] = "KeyError: 0.0 (a task whose KOS sum is exactly 0)"


def _patch_numpy_product() -> None:
    if not hasattr(np, "product"):
        setattr(np, "product", np.prod)  # noqa: B010 (ruff NPY would rewrite np.product)
        SHIMS["numpy-product"] = "AttributeError: module 'numpy' has no attribute 'product'"


# ----------------------------------------------------------------------------------------
# crowd-kit
# ----------------------------------------------------------------------------------------


def _ck(name: str) -> Any:
    mod = importlib.import_module("crowdkit.aggregation")
    _patch_crowdkit()
    return getattr(mod, name)


def _ck_probas(name: str, L: Any, k: int, **params: Any) -> np.ndarray:
    n = _triples(L)[3]
    model = _ck(name)(**params)
    model.fit(_long(L))
    return _from_frame(model.probas_, n, k)


def crowdkit_dawid_skene(L: Any, k: int) -> np.ndarray:
    """crowd-kit ``DawidSkene()`` (``n_iter=100, tol=1e-5``): ``probas_``."""
    return _ck_probas("DawidSkene", L, k)


def crowdkit_one_coin_dawid_skene(L: Any, k: int) -> np.ndarray:
    """crowd-kit ``OneCoinDawidSkene()``: ``probas_``."""
    return _ck_probas("OneCoinDawidSkene", L, k)


def crowdkit_glad(L: Any, k: int) -> np.ndarray:
    """crowd-kit ``GLAD()`` (``n_iter=100, tol=1e-5``): ``probas_``."""
    return _ck_probas("GLAD", L, k)


def crowdkit_mace(L: Any, k: int) -> np.ndarray:
    """crowd-kit ``MACE()`` (variational Bayes, 10 restarts x 50 iterations): ``probas_``."""
    return _ck_probas("MACE", L, k)


def crowdkit_majority_vote(L: Any, k: int) -> np.ndarray:
    """crowd-kit ``MajorityVote()``: ``probas_`` (vote shares)."""
    return _ck_probas("MajorityVote", L, k)


def _ck_fit_predict_proba(name: str, L: Any, k: int) -> np.ndarray:
    n = _triples(L)[3]
    frame = _ck(name)().fit_predict_proba(_long(L))
    return _from_frame(frame, n, k)


def crowdkit_wawa(L: Any, k: int) -> np.ndarray:
    """crowd-kit ``Wawa()``: ``fit_predict_proba`` (needs the ``crowdkit-sklearn-tags`` shim)."""
    return _ck_fit_predict_proba("Wawa", L, k)


def crowdkit_zero_based_skill(L: Any, k: int) -> np.ndarray:
    """crowd-kit ``ZeroBasedSkill()``: ``fit_predict_proba`` (needs the same shim)."""
    return _ck_fit_predict_proba("ZeroBasedSkill", L, k)


def crowdkit_kos(L: Any, k: int) -> np.ndarray:
    """crowd-kit ``KOS()`` (binary; 100 iterations, ``random_state=0``): hard labels, one-hot."""
    n = _triples(L)[3]
    model = _ck("KOS")()
    _KOS_NUMPY.ties = None
    model.fit(_long(L))
    labels = model.labels_.reindex(np.arange(n)).fillna(-1).to_numpy(dtype=np.int64)
    if _KOS_NUMPY.ties is not None and len(_KOS_NUMPY.ties):
        labels[np.asarray(_KOS_NUMPY.ties, dtype=np.int64)] = -1  # a tie: uniform row
    return _one_hot(labels, k)


def crowdkit_mmsr(L: Any, k: int) -> np.ndarray:
    """crowd-kit ``MMSR()``: ``fit_predict_score`` (skill-weighted vote shares)."""
    n = _triples(L)[3]
    frame = _ck("MMSR")().fit_predict_score(_long(L))
    return _from_frame(frame, n, k)


# ----------------------------------------------------------------------------------------
# snorkel, flyingsquid, peerannot
# ----------------------------------------------------------------------------------------


def snorkel_label_model(L: Any, k: int, *, seed: int = 0) -> np.ndarray:
    """Snorkel ``LabelModel(cardinality=k)``, ``fit(L, seed=0)`` defaults, one torch thread."""
    import torch
    from snorkel.labeling.model import LabelModel

    torch.set_num_threads(1)
    D = _dense(L)
    model = LabelModel(cardinality=k, verbose=False)
    model.fit(D, seed=seed, progress_bar=False)
    return _normalise(model.predict_proba(D))


def flyingsquid_label_model(L: Any, k: int) -> np.ndarray:
    """flyingsquid ``LabelModel(m)`` (binary only; triplet method, uniform class balance).

    Encoding: class 0 -> -1, class 1 -> +1, abstain -> 0; ``predict_proba`` columns are
    ``[-1, +1]``, i.e. ``[class 0, class 1]``.
    """
    if k != 2:
        raise ValueError(f"flyingsquid's LabelModel is binary; got k={k}.")
    _patch_numpy_product()
    from flyingsquid.label_model import LabelModel

    D = _dense(L)
    F = np.where(D < 0, 0, np.where(D == 1, 1, -1)).astype(np.int64)
    model = LabelModel(F.shape[1])
    model.fit(F)
    return _normalise(model.predict_proba(F))


def peerannot_iwmv(L: Any, k: int, *, nb_iter: int = 10, seed: int = 0) -> np.ndarray:
    """peerannot ``IWMV(answers, n_classes=k, n_workers=m).run(nb_iter=10)``: hard labels.

    Items without a vote are left out of ``answers`` (IWMV indexes tasks by position) and get
    a uniform row; ties are broken by ``np.random.choice`` (seeded here).
    """
    from peerannot.models.aggregation.iwmv import IWMV

    item, source, label, n, m = _triples(L)
    covered = np.unique(item)
    pos = np.full(n, -1, dtype=np.int64)
    pos[covered] = np.arange(covered.shape[0])
    answers: dict[int, dict[int, int]] = {}
    for i, j, lab in zip(pos[item].tolist(), source.tolist(), label.tolist(), strict=True):
        answers.setdefault(i, {})[j] = lab  # a dict holds one vote per (task, worker): last
    # IWMV breaks ties with the global np.random.choice: seed it, and restore the state after
    state = np.random.get_state()  # noqa: NPY002
    np.random.seed(seed)  # noqa: NPY002
    try:
        model = IWMV(answers, n_classes=k, n_workers=m)
        model.run(nb_iter=nb_iter)
        hard = np.asarray(model.get_answers(), dtype=np.int64)
    finally:
        np.random.set_state(state)  # noqa: NPY002
    labels = np.full(n, -1, dtype=np.int64)
    labels[covered] = hard
    return _one_hot(labels, k)


# ----------------------------------------------------------------------------------------
# registry
# ----------------------------------------------------------------------------------------

#: peer name -> (wsagg registry name of the same model, callable(L, k) -> (n, k) posterior)
PEERS: dict[str, tuple[str, Callable[..., np.ndarray]]] = {
    "crowdkit-DawidSkene": ("dawid-skene", crowdkit_dawid_skene),
    "crowdkit-OneCoinDawidSkene": ("dawid-skene", crowdkit_one_coin_dawid_skene),
    "crowdkit-GLAD": ("glad", crowdkit_glad),
    "crowdkit-MACE": ("mace", crowdkit_mace),
    "crowdkit-Wawa": ("wawa", crowdkit_wawa),
    "crowdkit-ZeroBasedSkill": ("zbs", crowdkit_zero_based_skill),
    "crowdkit-KOS": ("kos", crowdkit_kos),
    "crowdkit-MMSR": ("mmsr", crowdkit_mmsr),
    "crowdkit-MajorityVote": ("majority", crowdkit_majority_vote),
    "snorkel-LabelModel": ("matrix-completion", snorkel_label_model),
    "flyingsquid-LabelModel": ("triplet", flyingsquid_label_model),
    "peerannot-IWMV": ("iwmv", peerannot_iwmv),
}

#: wsagg parameters that pick the peer's model where the registry name alone does not
WSAGG_PARAMS: dict[str, dict[str, Any]] = {
    "crowdkit-OneCoinDawidSkene": {"model": "one-coin"},
}

#: peer name -> the importable module it needs
PEER_PACKAGES: dict[str, str] = {
    name: {"crowdkit": "crowdkit", "snorkel": "snorkel", "flyingsquid": "flyingsquid",
           "peerannot": "peerannot"}[name.split("-")[0]]
    for name in PEERS
}

#: peers that model two classes only
BINARY_ONLY = {"crowdkit-KOS", "flyingsquid-LabelModel"}

#: peers that need a dense matrix (cannot take repeated votes)
DENSE_ONLY = {"snorkel-LabelModel", "flyingsquid-LabelModel"}


def available() -> dict[str, str | None]:
    """Peer name -> None when importable, else the reason it is not."""
    reasons: dict[str, str | None] = {}
    cache: dict[str, str | None] = {}
    for name, pkg in PEER_PACKAGES.items():
        if pkg not in cache:
            try:
                if pkg == "flyingsquid":
                    _patch_numpy_product()
                    importlib.import_module("flyingsquid.label_model")
                elif pkg == "peerannot":
                    importlib.import_module("peerannot.models.aggregation.iwmv")
                elif pkg == "snorkel":
                    importlib.import_module("snorkel.labeling.model")
                else:
                    importlib.import_module("crowdkit.aggregation")
                cache[pkg] = None
            except Exception as err:  # ImportError, or a broken dependency
                cache[pkg] = f"{type(err).__name__}: {err}"[:160]
        reasons[name] = cache[pkg]
    return reasons


def peer_versions() -> dict[str, str | None]:
    """Installed versions of the peer packages (None if absent)."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for dist in ("crowd-kit", "snorkel", "flyingsquid", "peerannot", "pgmpy", "torch",
                 "pandas", "scikit-learn", "numpy"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = None
    return out


# ----------------------------------------------------------------------------------------
# the wsagg side
# ----------------------------------------------------------------------------------------

#: wsagg registry name -> "module:Class" candidates, first importable wins (a registry entry
#: of that name, when the registry has one, is tried first). Replaced by the registry later.
WSAGG_CLASSES: dict[str, tuple[str, ...]] = {
    "majority": ("wsagg.aggregation.majority:MajorityVote", "wsagg:MajorityVote"),
    "dawid-skene": ("wsagg.aggregation.dawid_skene:DawidSkene", "wsagg:DawidSkene"),
    "glad": ("wsagg.aggregation.glad:GLAD",),
    "mace": ("wsagg.aggregation.mace:MACE",),
    "wawa": ("wsagg.aggregation.wawa:Wawa",),
    "zbs": ("wsagg.aggregation.zero_based_skill:ZeroBasedSkill",),
    "kos": ("wsagg.aggregation.kos:KOS",),
    "mmsr": ("wsagg.aggregation.mmsr:MMSR",),
    "matrix-completion": ("wsagg.aggregation.matrix_completion:MatrixCompletion",),
    "triplet": ("wsagg.aggregation.triplet:Triplet",),
    "iwmv": ("wsagg.aggregation.iwmv:IWMV",),
}


def wsagg_class(name: str) -> tuple[type | None, str]:
    """The wsagg aggregator class for a registry name, or (None, why it is unavailable)."""
    candidates = list(WSAGG_CLASSES.get(name, ()))
    try:
        from wsagg._registry import AGGREGATORS

        if name in AGGREGATORS:  # an AggregatorSpec (.path) or, earlier, the path itself
            entry = AGGREGATORS[name]
            candidates.insert(0, getattr(entry, "path", entry))
    except ImportError:
        pass
    why = f"no import path known for {name!r}"
    for path in dict.fromkeys(candidates):
        module_name, _, cls_name = path.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            why = f"{path}: module not found ({err.name})"
            continue
        cls = getattr(module, cls_name, None)
        if cls is None:
            why = f"{path}: no class {cls_name}"
            continue
        return cls, path
    return None, why


def make_wsagg(cls: type, k: int, **params: Any) -> Any:
    """Instantiate ``cls`` with ``n_classes=k`` where it takes that parameter."""
    try:
        return cls(n_classes=k, **params)
    except TypeError:
        return cls(**params)


def one_thread() -> None:
    """Pin BLAS/OpenMP to one thread (set before numpy is first used, where possible)."""
    for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(v, "1")
