"""Issue 13, the library side: hostile inputs end in a clear error or the clean answer.

One regression test per defect (2-7, 11), then a hypothesis suite over every registered
aggregator that draws *unchecked* inputs (k not given, stray labels, long format with
negative / fractional labels, y as a Series with any index, odd dtypes) and asserts "a
clear ValueError/TypeError with a message, or the result of the clean equivalent input" —
never a silent change of k or of the alignment.
"""

from __future__ import annotations

import json
import tracemalloc
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wsagg.base as base
from wsagg import AdversarialLogLoss, DawidSkene, MajorityVote
from wsagg._registry import AGGREGATORS
from wsagg._source_checks import dependent_sources
from wsagg.base import break_ties
from wsagg.datasets import make_dawid_skene
from wsagg.exceptions import (
    AlignmentWarning,
    DependentSourcesWarning,
    SparseSourcesWarning,
    UninformativeFitWarning,
)
from wsagg.labels import as_label_matrix

NAMES = sorted(AGGREGATORS)


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def _est(name, **params):
    spec = AGGREGATORS[name]
    est = spec.load()(**params)
    if "random_state" in est.get_params():
        est.set_params(random_state=0)
    return est


def _warnings_of(fn):
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        out = fn()
    return out, rec


# ------------------------------------------------------------------ defect 2: -1 in long


def test_defect2_minus_one_in_long_format_is_an_abstain():
    df = pd.DataFrame({"item": [0, 0, 0], "source": [0, 1, 2], "label": [1, -1, -1]})
    mv = _quiet(MajorityVote().fit, df)
    assert list(mv.classes_) == [0, 1]  # was [-1, 1]: -1 became a class
    assert _quiet(mv.predict, df).tolist() == [1]
    lm = as_label_matrix(df)
    assert lm.n_votes == 1 and lm.n_sources == 3 and lm.n_items == 1
    # float columns (a CSV with empty cells) and object columns follow the same rule
    for labels in ([1.0, -1.0, np.nan], [1, "", None], ["pos", "-1", "neg"]):
        lm = as_label_matrix(pd.DataFrame({"item": [0, 0, 1], "source": [0, 1, 2],
                                           "label": labels}))
        assert -1 not in list(lm.classes) and "-1" not in list(lm.classes)
        assert lm.n_items == 2


@pytest.mark.parametrize("bad", [-5, 0.5, -0.5, 2.5, np.inf])
def test_defect2_other_negative_or_fractional_labels_are_refused(bad):
    df = pd.DataFrame({"item": [0, 0, 1], "source": [0, 1, 0], "label": [1, bad, 0]})
    with pytest.raises(ValueError, match="label column holds") as info:
        MajorityVote().fit(df)
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------ defect 3: stray label


@pytest.mark.parametrize("stray", [3000, 10**5, 2**40])
def test_defect3_stray_label_is_refused_without_allocating(stray):
    rng = np.random.default_rng(0)
    L = rng.integers(-1, 3, (200, 5))
    L[7, 2] = stray
    with pytest.raises(ValueError, match=r"only 4 distinct.*Pass n_classes"):
        DawidSkene().fit(L)
    with pytest.raises(ValueError, match="outside"):
        DawidSkene(n_classes=3).fit(L)


def test_defect3_uint8_cast_of_minus_one_is_named():
    L = np.array([[0, 1, -1], [2, -1, 1], [1, 1, 0]]).astype(np.uint8)  # -1 -> 255
    with pytest.raises(ValueError, match="255 is -1 cast to uint8"):
        MajorityVote().fit(L)


def test_defect3_known_label_never_adds_a_class():
    L = np.array([[0, 1], [1, 1], [0, 0], [1, 0]])
    with pytest.raises(ValueError, match="pass n_classes=3"):
        DawidSkene().fit(L, np.array([2, -1, -1, -1]))
    assert _quiet(DawidSkene(n_classes=3).fit, L, np.array([2, -1, -1, -1])).n_classes_ == 3


def test_defect3_long_format_and_labeling_functions():
    df = pd.DataFrame({"item": [0, 0, 1, 1], "source": ["a", "b", "a", "b"],
                       "label": [0, 1, 1, 3000]})
    with pytest.raises(ValueError, match="Pass n_classes"):
        as_label_matrix(df)
    from wsagg.lf import LabelingFunctionError, PandasLFApplier, labeling_function

    frame = pd.DataFrame({"x": np.arange(40)})

    @labeling_function()
    def even(r):
        return int(r.x % 2 == 0)

    @labeling_function()
    def seven(r):
        return 7 if r.x == 3 else -1

    @labeling_function()
    def true_(r):
        return True if r.x == 5 else 0

    with pytest.raises(ValueError, match=r"labeling functions' votes.*Pass n_classes"):
        PandasLFApplier([even, seven], progress_bar=False).apply(frame)
    with pytest.raises(LabelingFunctionError, match="returned True"):
        PandasLFApplier([even, true_], progress_bar=False).apply(frame)


# ------------------------------------------------------------ defect 4: Series alignment


def test_defect4_one_based_series_is_an_error_naming_both_readings():
    L = np.array([[0, 0], [0, 1], [1, 1], [1, 0], [0, 0], [1, 1]])
    gold = np.array([0, 0, 1, 1, 0, 1])
    y = pd.Series(gold, index=np.arange(1, 7))  # 1-based
    with pytest.raises(ValueError, match=r"shifted by 1.*by item id.*by position") as info:
        MajorityVote(weights="accuracy").fit(L, y)
    assert "\n" not in str(info.value)
    by_position = MajorityVote(weights="accuracy").fit(L, y.to_numpy())
    assert by_position.weights_[0] > by_position.weights_[1]


def test_defect4_partial_overlap_warns_with_counts():
    df = pd.DataFrame({"item": ["a", "a", "b", "b", "c"], "source": [0, 1, 0, 1, 0],
                       "label": [0, 0, 1, 1, 0]})
    y = pd.Series({"a": 0, "b": 1, "zz": 1, "yy": 0})
    _, rec = _warnings_of(lambda: MajorityVote(weights="accuracy").fit(df, y))
    hits = [w for w in rec if issubclass(w.category, AlignmentWarning)]
    assert len(hits) == 1 and "2 of its 4 known labels" in str(hits[0].message)
    assert "'zz'" in str(hits[0].message)
    assert hits[0].filename == __file__  # attributed to the user's line
    # full overlap (any order): no warning, same fit as the aligned array
    y_ok = pd.Series({"c": 0, "a": 0, "b": 1})
    est2, rec2 = _warnings_of(lambda: MajorityVote(weights="accuracy").fit(df, y_ok))
    assert not [w for w in rec2 if issubclass(w.category, AlignmentWarning)]
    np.testing.assert_allclose(
        est2.weights_, MajorityVote(weights="accuracy").fit(df, [0, 1, 0]).weights_)


# --------------------------------------------------------------- defect 5: tie tolerance


def test_defect5_first_tie_break_uses_its_tolerance():
    rng = np.random.default_rng(0)
    base_p = np.full((500, 2), 0.5)
    a = base_p + rng.normal(0, 1e-16, (500, 1)) * [1, -1]
    b = base_p + rng.normal(0, 1e-16, (500, 1)) * [1, -1]
    assert (break_ties(a) == break_ties(b)).all()  # was different on ~94 of 500
    assert (break_ties(a) == 0).all()
    p = np.array([[0.3, 0.3 + 1e-13, 0.4 - 1e-13], [0.2, 0.5, 0.3]])
    assert break_ties(p).tolist() == [2, 1]
    assert break_ties(np.array([[0.4, 0.4 + 2e-12, 0.2]])).tolist() == [1]


# ------------------------------------------------------- defect 6: dependent sources


def _copied(n_copies=20, seed=0):
    d = make_dawid_skene(600, 5, 2, coverage=0.8, accuracy=(0.6, 0.7), random_state=seed)
    L = d.L.to_dense()
    return np.hstack([L, np.repeat(L[:, :1], n_copies, axis=1)]), d.y


@pytest.mark.parametrize("name", NAMES)
def test_defect6_copied_source_warns_for_every_aggregator(name):
    L, y = _copied(8)
    spec = AGGREGATORS[name]
    yy = np.where(np.arange(L.shape[0]) % 5 == 0, y, -1) if spec.needs_labels else None
    _, rec = _warnings_of(lambda: _est(name).fit(L, yy))
    msgs = [str(w.message) for w in rec if issubclass(w.category, DependentSourcesWarning)]
    assert msgs and "9 sources look like copies" in msgs[0] and "0, 5, 6" in msgs[0]
    assert "Keep one source per set" in msgs[0]


def test_defect6_correlated_pair_is_named_and_independent_data_is_quiet():
    d = make_dawid_skene(1000, 5, 2, coverage=0.8, accuracy=(0.6, 0.7), random_state=0)
    L = d.L.to_dense()
    rng = np.random.default_rng(0)
    c = L[:, 0].copy()
    flip = (rng.random(1000) < 0.2) & (c >= 0)
    c[flip] = 1 - c[flip]
    found = dependent_sources(np.hstack([L, c[:, None]]))
    assert found["copies"] == []
    pairs = found["correlated"]
    assert [(r.source_a, r.source_b) for r in pairs.itertuples()] == [(0, 5)]
    for seed in range(4):  # no false alarm on data that follows the independence model
        for n, m, k in ((300, 5, 2), (400, 8, 3)):
            dd = make_dawid_skene(n, m, k, coverage=0.7, random_state=seed)
            found = dependent_sources(dd.L)
            assert found["copies"] == [] and found["correlated"].empty


# ---------------------------------------------------------- defect 7: sparse sources


def test_defect7_sources_voting_once_warn_with_the_knob():
    rng = np.random.default_rng(0)
    n = 1000
    truth = rng.integers(0, 2, n)
    item = np.repeat(np.arange(n), 5)
    lab = np.where(rng.random(5 * n) < 0.75, truth[item], 1 - truth[item])
    df = pd.DataFrame({"item": item, "source": np.arange(5 * n), "label": lab})
    _, rec = _warnings_of(lambda: DawidSkene().fit(df))
    msgs = [str(w.message) for w in rec if issubclass(w.category, SparseSourcesWarning)]
    assert msgs and "5,000 of 5,000 sources" in msgs[0]
    assert "model='one-coin'" in msgs[0] and "smoothing" in msgs[0]
    _, rec = _warnings_of(lambda: MajorityVote().fit(df))
    assert not [w for w in rec if issubclass(w.category, SparseSourcesWarning)]


# ------------------------------------------------------------------- defect 11: smaller


def test_defect11_adversarial_one_labeled_item_warns():
    d = make_dawid_skene(300, 5, 2, coverage=0.8, random_state=0)
    L = d.L.to_dense()
    y = np.full(300, -1)
    y[0] = d.y[0]
    est, rec = _warnings_of(lambda: AdversarialLogLoss().fit(L, y))
    msgs = [str(w.message) for w in rec if issubclass(w.category, UninformativeFitWarning)]
    assert msgs and "1 labeled item" in msgs[0]
    np.testing.assert_allclose(est.predict_proba(L), 0.5)


def test_defect11_user_bounds_infeasible_blames_the_bounds():
    d = make_dawid_skene(300, 5, 2, coverage=0.8, random_state=0)
    with pytest.raises(ValueError, match="accuracy_bounds / class_freq_bounds given") as info:
        AdversarialLogLoss(accuracy_bounds=[1, 1]).fit(d.L)
    assert "labeled items" not in str(info.value)


def test_defect11_wrench_split_cannot_leave_the_directory(tmp_path):
    from wsagg.datasets import load_wrench

    secret = tmp_path / "x.json"
    secret.write_text(json.dumps({"0": {"label": 0, "weak_labels": [0, 1], "data": {}}}))
    d = tmp_path / "a" / "b"
    d.mkdir(parents=True)
    (d / "train.json").write_text(secret.read_text())
    for split in ("../../x", "/etc/passwd", "..", "a/b", "x\\y"):
        with pytest.raises(ValueError, match="plain file name"):
            load_wrench(d, split=split)
    assert load_wrench(d, split="train").L.n_items == 1


@pytest.mark.parametrize("name", NAMES)
def test_defect11_predict_in_chunks_equals_one_block(name, monkeypatch):
    spec = AGGREGATORS[name]
    k = 2 if spec.binary_only else 3
    d = make_dawid_skene(150, 5, k, coverage=0.7, random_state=1)
    L = d.L.to_dense()
    y = np.where(np.arange(150) % 4 == 0, d.y, -1) if spec.needs_labels else None
    est = _quiet(_est(name).fit, L, y)
    whole = est.predict_proba(L)
    monkeypatch.setattr(base, "_PREDICT_CHUNK", 16)
    import scipy.sparse as sp

    np.testing.assert_allclose(est.predict_proba(L), whole, atol=1e-12)
    np.testing.assert_allclose(est.predict_proba(sp.csr_matrix(np.where(L >= 0, L + 1, 0))),
                               whole, atol=1e-12)


def test_defect11_predict_proba_memory_is_the_result_not_the_votes():
    rng = np.random.default_rng(0)
    L = rng.integers(-1, 2, (600_000, 4)).astype(np.int8)
    mv = MajorityVote().fit(L[:1000])
    result_bytes = L.shape[0] * 2 * 8
    tracemalloc.start()
    try:
        proba = mv.predict_proba(L)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert proba.shape == (600_000, 2)
    np.testing.assert_allclose(proba[:1000], mv.predict_proba(L[:1000]))
    assert peak < 2.5 * result_bytes, f"peak {peak / 2**20:.0f} MiB"


# ------------------------------------------------------------------ memory budget


def test_explicit_huge_n_classes_is_refused_before_allocating(monkeypatch):
    monkeypatch.setenv("WSAGG_MEMORY_BUDGET", "1G")
    L = np.array([[0, 1], [1, 0]] * 50)
    with pytest.raises(ValueError, match="memory budget"):
        MajorityVote(n_classes=2**40).fit(L)


# ========================================================== the hypothesis suite


def _outcome(name, L, y=None, **params):
    """("ok", proba) or ("error", type, message) of fit + predict_proba."""
    spec = AGGREGATORS[name]
    if spec.needs_labels and y is None:
        params.setdefault("accuracy_bounds", [0.55, 0.95])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = _est(name, **params).fit(L, y)
            return ("ok", np.asarray(est.predict_proba(L)))
    except (ValueError, TypeError) as err:
        return ("error", type(err), str(err))


def _assert_clear_or_same(got, clean):
    if got[0] == "error":
        msg = got[2]
        assert msg and "\n" not in msg.strip(), f"unclear error: {msg!r}"
        return
    assert clean[0] == "ok", f"the variant fitted where the clean input failed: {clean}"
    assert got[1].shape == clean[1].shape  # never a silent change of k
    np.testing.assert_allclose(got[1], clean[1], atol=1e-7)


@st.composite
def _votes(draw, binary):
    n = draw(st.integers(6, 20))
    m = draw(st.integers(2, 4))
    k = 2 if binary else draw(st.sampled_from([2, 3]))
    L = np.asarray(draw(st.lists(st.lists(st.integers(-1, k - 1), min_size=m, max_size=m),
                                 min_size=n, max_size=n)))
    L[0, 0], L[1, 0] = 0, k - 1  # both extreme classes occur
    return L, k


_KINDS = ["dtype", "stray", "k_given", "long", "long_bad", "series"]
_EXAMPLES = {"auto": 10, "mmsr": 12}


def _check_one(name, data):
    spec = AGGREGATORS[name]
    L, k = data.draw(_votes(spec.binary_only), label="votes")
    n = L.shape[0]
    y = None
    if spec.needs_labels:
        y = np.full(n, -1)
        y[::3] = data.draw(st.lists(st.integers(0, k - 1), min_size=len(y[::3]),
                                    max_size=len(y[::3])), label="known")
    clean = _outcome(name, L, y)
    kind = data.draw(st.sampled_from(_KINDS), label="kind")
    if kind == "dtype":
        dtype = data.draw(st.sampled_from(["uint8", "int16", "float16", "bool", "object"]))
        X = L.astype(dtype)
        got = _outcome(name, X, y)
        if dtype in ("bool", "object"):
            assert got[0] == "error" and got[1] is TypeError, got
        elif dtype == "uint8" and (L < 0).any():
            assert got[0] == "error" and "uint8" in got[2], got  # -1 became 255
        _assert_clear_or_same(got, clean)
    elif kind == "stray":
        X = L.copy()
        i, j = data.draw(st.integers(0, n - 1)), data.draw(st.integers(0, L.shape[1] - 1))
        X[i, j] = data.draw(st.sampled_from([k + 3, 3000, 10**5, 2**40]))
        got = _outcome(name, X, y)
        assert got[0] == "error" and "n_classes" in got[2], got
        got = _outcome(name, X, y, n_classes=k)
        assert got[0] == "error" and "outside" in got[2], got
    elif kind == "k_given":
        got = _outcome(name, L, y, n_classes=int(L.max()) + 1)
        _assert_clear_or_same(clean, got)
        _assert_clear_or_same(got, clean)
    elif kind == "long":  # abstains as -1 rows: the same answer as the dense matrix
        rows, cols = np.nonzero(np.ones_like(L, dtype=bool))
        frame = pd.DataFrame({"item": rows, "source": cols, "label": L[rows, cols]})
        if data.draw(st.booleans(), label="as float"):
            frame["label"] = frame["label"].astype(float)
        got = _outcome(name, frame, y, n_classes=k)
        _assert_clear_or_same(got, _outcome(name, L, y, n_classes=k))
    elif kind == "long_bad":
        rows, cols = np.nonzero(L >= 0)
        frame = pd.DataFrame({"item": rows, "source": cols, "label": L[rows, cols]})
        frame["label"] = frame["label"].astype(float)
        frame.loc[data.draw(st.integers(0, len(frame) - 1)), "label"] = data.draw(
            st.sampled_from([-5.0, -2.0, 0.5, 1.25]))
        got = _outcome(name, frame, y)
        assert got[0] == "error" and "label column holds" in got[2], got
    else:  # y as a Series with an arbitrary index
        gold = np.asarray(data.draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)))
        if not spec.needs_labels and not spec.semi_supervised:
            gold = np.full(n, -1)
        how = data.draw(st.sampled_from(["default", "shifted", "permuted", "partial"]))
        ids = np.arange(n)
        if how == "default":
            ser, aligned = pd.Series(gold), gold
        elif how == "shifted":
            ser, aligned = pd.Series(gold, index=ids + 1), None
        elif how == "permuted":
            perm = np.asarray(data.draw(st.permutations(list(range(n)))))
            ser, aligned = pd.Series(gold[perm], index=perm), gold
        else:
            keep = ids[: max(1, n // 2)]
            ser = pd.Series(np.r_[gold[keep], gold[:2]], index=np.r_[keep, [10**6, 10**6 + 1]])
            aligned = np.where(np.isin(ids, keep), gold, -1)
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            try:
                est = _est(name).fit(L, ser)
                got = ("ok", np.asarray(est.predict_proba(L)))
            except (ValueError, TypeError) as err:
                got = ("error", type(err), str(err))
        if how == "shifted":
            assert got[0] == "error" and "by position" in got[2], got  # never shifted
            return
        if how == "partial" and got[0] == "ok":
            assert any(issubclass(w.category, AlignmentWarning) for w in rec)
        _assert_clear_or_same(got, _outcome(name, L, aligned))


@pytest.mark.parametrize("name", NAMES)
def test_every_aggregator_on_unchecked_inputs(name):
    @settings(max_examples=_EXAMPLES.get(name, 30), deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(data=st.data())
    def run(data):
        _check_one(name, data)

    run()
