"""Labeling functions and their pandas / Dask appliers (wsagg.lf)."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest

from wsagg import DawidSkene
from wsagg.lf import (
    LabelingFunction,
    LabelingFunctionError,
    PandasLFApplier,
    Record,
    labeling_function,
    preprocessor,
)

dd = pytest.importorskip("dask.dataframe", reason="the dask extra is not installed")
from wsagg.lf import DaskLFApplier  # noqa: E402

WORDS = np.array(["good", "bad", "great", "awful", "fine", "meh", "love", "hate", "ok", "so"])


def make_texts(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    words = WORDS[rng.integers(0, len(WORDS), size=(n, 6))]
    text = pd.Series([" ".join(w) for w in words])
    text[rng.random(n) < 0.3] = text.str.upper()
    return pd.DataFrame(
        {"text": text.to_numpy(), "stars": rng.integers(1, 6, n)},
        index=pd.Index(np.arange(n) * 3 + 100, name="doc"),
    )


@preprocessor
def lower(x):
    x.low = x.text.lower()
    return x


@preprocessor(vectorized=True)
def vlower(df):
    return df.assign(low=df.text.str.lower())


@labeling_function(pre=[lower])
def lf_good(x):
    return 1 if "good" in x.low or "great" in x.low else -1


@labeling_function(pre=[lower])
def lf_bad(x):
    return 0 if "awful" in x.low else -1


@labeling_function
def lf_stars(x):
    return 1 if x.stars >= 4 else (0 if x.stars <= 2 else -1)


@labeling_function(vectorized=True, pre=[vlower])
def lf_hate(df):
    return np.where(df.low.str.contains("hate"), 0, -1)


@labeling_function(vectorized=True, name="lf_love")
def lf_love_vec(df):
    return np.where(df.text.str.contains("love", case=False), 1, -1)


@labeling_function(pre=[vlower, lower])
def lf_mixed(x):
    return 2 if "meh" in x.low else -1


LFS = [lf_good, lf_bad, lf_stars, lf_hate, lf_love_vec, lf_mixed]


def dense_reference(df: pd.DataFrame, lfs) -> np.ndarray:
    """Straightforward per-record, per-function loop: the meaning of an applier."""
    out = np.full((len(df), len(lfs)), -1)
    for j, lf in enumerate(lfs):
        frame = df
        for p in lf.pre:
            if p.vectorized:
                frame = p(frame)
        if lf.vectorized:
            out[:, j] = lf.f(frame)
        else:
            for i, (_, row) in enumerate(frame.iterrows()):
                x = Record(**row.to_dict())
                for p in lf.pre:
                    if not p.vectorized:
                        x = p(x)
                out[i, j] = lf.f(x)
    return out


def test_decorators_and_names():
    assert isinstance(lf_good, LabelingFunction) and lf_good.name == "lf_good"
    assert lf_love_vec.name == "lf_love" and lf_love_vec.vectorized
    assert [p.name for p in lf_mixed.pre] == ["vlower", "lower"]
    plain = LabelingFunction("k", lambda x, word: 1 if word in x.text else -1,
                             resources={"word": "so"})
    lm = PandasLFApplier([plain], n_classes=2, progress_bar=False).apply(make_texts(20))
    assert lm.n_votes == sum("so" in t for t in make_texts(20).text)


def test_pandas_applier_matches_reference_and_is_sparse():
    df = make_texts(300)
    lm = PandasLFApplier(LFS, progress_bar=False).apply(df)
    ref = dense_reference(df, LFS)
    np.testing.assert_array_equal(lm.to_dense(), ref)
    assert lm.n_votes == int((ref >= 0).sum())  # only votes are stored
    assert lm.n_classes == 3
    assert list(lm.source_names) == [lf.name for lf in LFS]
    np.testing.assert_array_equal(lm.item_ids, df.index.to_numpy())


@pytest.mark.parametrize("npartitions", [1, 3, 7])
def test_dask_applier_equals_pandas(npartitions):
    df = make_texts(250, seed=1)
    lm_pd = PandasLFApplier(LFS, n_classes=3, progress_bar=False).apply(df)
    lm_dd = DaskLFApplier(LFS, n_classes=3).apply(dd.from_pandas(df, npartitions=npartitions))
    assert (lm_pd.to_sparse() != lm_dd.to_sparse()).nnz == 0
    assert lm_pd.to_sparse().shape == lm_dd.to_sparse().shape
    np.testing.assert_array_equal(lm_dd.item_ids, df.index.to_numpy())
    np.testing.assert_array_equal(lm_dd.source_names, lm_pd.source_names)


def test_dask_applier_on_local_cluster_feeds_distributed_fit():
    distributed = pytest.importorskip("distributed")
    df = make_texts(400, seed=2)
    ddf = dd.from_pandas(df, npartitions=4)
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                 dashboard_address=None) as cluster,
        distributed.Client(cluster) as client,
    ):
        applier = DaskLFApplier(LFS, n_classes=3)
        lm = applier.apply(ddf, client=client)
        assert (lm.to_sparse() != PandasLFApplier(LFS, progress_bar=False)
                .apply(df).to_sparse()).nnz == 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            local = DawidSkene(n_classes=3).fit(lm)
            dist = DawidSkene(n_classes=3).fit(applier.to_partitions(ddf, client=client))
    assert dist.n_iter_ == local.n_iter_
    np.testing.assert_allclose(dist.confusion_, local.confusion_, atol=1e-8)
    np.testing.assert_allclose(dist.class_prior_, local.class_prior_, atol=1e-8)


@labeling_function
def lf_fragile(x):
    if x.stars == 3:
        raise KeyError("no opinion")
    return 1


@labeling_function(vectorized=True)
def lf_fragile_vec(df):
    if (df.stars == 5).any():
        raise ZeroDivisionError("five stars")
    return np.zeros(len(df), dtype=int)


@preprocessor
def fragile_pre(x):
    if x.stars == 1:
        raise ValueError("one star")
    return x


@labeling_function(pre=[fragile_pre])
def lf_after_pre(x):
    return 0


def first_with(df, stars):
    return df.index[np.flatnonzero(df.stars.to_numpy() == stars)[0]]


@pytest.mark.parametrize(
    "lf, stars, pattern",
    [
        (lf_fragile, 3, r"labeling function 'lf_fragile' raised KeyError.*index {}"),
        (lf_fragile_vec, 5, r"labeling function 'lf_fragile_vec' raised ZeroDivisionError"
                            r".*index {}"),
        (lf_after_pre, 1, r"preprocessor 'fragile_pre' \(of labeling function "
                          r"'lf_after_pre'\) raised ValueError.*index {}"),
    ],
)
def test_errors_name_function_and_record(lf, stars, pattern):
    df = make_texts(60, seed=4)
    idx = first_with(df, stars)
    with pytest.raises(LabelingFunctionError, match=pattern.format(idx)):
        PandasLFApplier([lf_good, lf], progress_bar=False).apply(df)
    # partitions run in parallel: the error names *a* failing record, with its index
    with pytest.raises(LabelingFunctionError, match=pattern.format(r"(\d+)")) as info:
        DaskLFApplier([lf_good, lf]).apply(dd.from_pandas(df, npartitions=3))
    named = int(re.search(pattern.format(r"(\d+)"), str(info.value)).group(1))
    assert df.loc[named, "stars"] == stars


@pytest.mark.parametrize("lf, stars", [(lf_fragile, 3), (lf_fragile_vec, 5), (lf_after_pre, 1)])
def test_on_error_abstain_counts_failures(lf, stars):
    df = make_texts(80, seed=5)
    bad = df.stars.to_numpy() == stars
    lm = (ap := PandasLFApplier([lf_good, lf], n_classes=2, on_error="abstain",
                                progress_bar=False)).apply(df)
    assert ap.failures_[lf.name] == bad.sum() > 0
    assert ap.failures_["lf_good"] == 0
    dense = lm.to_dense()
    assert (dense[bad, 1] == -1).all() and (dense[~bad, 1] >= 0).all()
    ap_dd = DaskLFApplier([lf_good, lf], n_classes=2, on_error="abstain")
    lm_dd = ap_dd.apply(dd.from_pandas(df, npartitions=4))
    assert (lm_dd.to_sparse() != lm.to_sparse()).nnz == 0
    assert ap_dd.failures_.equals(ap.failures_)


@pytest.mark.parametrize(
    "ret, vectorized, match",
    [
        (None, False, r"returned None .*-1 to abstain"),
        (2.5, False, r"returned 2\.5"),
        (7, False, r"returned 7 .*0\.\.2"),
        (True, False, r"returned True"),
        ("yes", True, r"returned 'yes'"),
        (np.bool_(True), True, r"returned True"),
    ],
)
def test_bad_return_values(ret, vectorized, match):
    df = make_texts(10)
    if vectorized:
        lf = LabelingFunction("odd", lambda d: np.full(len(d), ret), vectorized=True)
    else:
        lf = LabelingFunction("odd", lambda x: ret)
    with pytest.raises(LabelingFunctionError, match=f"'odd' {match}"):
        PandasLFApplier([lf], n_classes=3, progress_bar=False).apply(df)


def test_bad_configuration():
    with pytest.raises(ValueError, match="unique"):
        PandasLFApplier([lf_good, lf_good])
    with pytest.raises(ValueError, match="row-wise preprocessor"):
        LabelingFunction("v", lambda d: d, vectorized=True, pre=[lower])
    with pytest.raises(TypeError, match="LabelingFunction objects"):
        PandasLFApplier([lambda x: 1])
    with pytest.raises(ValueError, match="on_error"):
        PandasLFApplier([lf_good], on_error="ignore")
    with pytest.raises(TypeError, match="DaskLFApplier"):
        PandasLFApplier([lf_good]).apply(dd.from_pandas(make_texts(5), npartitions=1))
    with pytest.raises(TypeError, match="PandasLFApplier"):
        DaskLFApplier([lf_good]).apply(make_texts(5))
    with pytest.raises(ValueError, match="pass n_classes"):
        PandasLFApplier([lf_bad], progress_bar=False).apply(make_texts(30))
    vec_shape = LabelingFunction("short", lambda d: np.zeros(2), vectorized=True)
    with pytest.raises(LabelingFunctionError, match=r"'short' returned shape \(2,\)"):
        PandasLFApplier([vec_shape], n_classes=2, progress_bar=False).apply(make_texts(5))


def test_progress_bar_can_be_turned_on_and_off(capsys):
    df = make_texts(50)
    PandasLFApplier(LFS, progress_bar=True).apply(df)
    assert "records" in capsys.readouterr().err
    PandasLFApplier(LFS, progress_bar=False).apply(df)
    assert capsys.readouterr().err == ""


def test_empty_frame_and_empty_partitions():
    df = make_texts(40)
    lm = PandasLFApplier(LFS, n_classes=3, progress_bar=False).apply(df.iloc[:0])
    assert lm.n_items == 0 and lm.n_votes == 0
    ddf = dd.from_pandas(df, npartitions=2)
    ddf = dd.concat([ddf, dd.from_pandas(df.iloc[:0], npartitions=1)])
    lm_dd = DaskLFApplier(LFS, n_classes=3).apply(ddf)
    assert (lm_dd.to_sparse() != PandasLFApplier(LFS, n_classes=3, progress_bar=False)
            .apply(df).to_sparse()).nnz == 0
