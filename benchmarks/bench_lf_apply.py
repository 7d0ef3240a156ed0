"""Labeling-function application throughput: pandas vs Dask, row-wise vs vectorised.

``--n`` synthetic text records (six words from a small vocabulary, some upper-cased, plus
a numeric ``stars`` field) and 20 simple labeling functions (keyword, length and field
rules), written twice: row-wise (``f(record)``) and vectorised (``f(frame)``), with the
same semantics — the four label matrices are checked to be identical. Dask runs on a
``distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True)`` with
``--npartitions`` partitions (cluster start-up is excluded from the timing, the transfer
of the records to the workers is included).

Usage::

    python benchmarks/bench_lf_apply.py [--smoke] [--out-dir DIR] [--n 1000000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._common import print_table, save_results
from wsagg.lf import (
    DaskLFApplier,
    LabelingFunction,
    PandasLFApplier,
    preprocessor,
)

VOCAB = np.array(["good", "bad", "great", "awful", "fine", "meh", "love", "hate", "ok",
                  "so", "best", "worst", "nice", "poor", "fun", "dull", "yes", "no",
                  "wow", "ugh"])
POS = ["good", "great", "love", "best", "nice", "fun", "wow"]
NEG = ["bad", "awful", "hate", "worst", "poor", "dull", "ugh"]


def make_records(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    words = VOCAB[rng.integers(0, len(VOCAB), size=(n, 6))]
    text = pd.Series(words[:, 0])
    for j in range(1, 6):
        text = text + " " + words[:, j]
    upper = rng.random(n) < 0.3
    text[upper] = text[upper].str.upper()
    return pd.DataFrame({"text": text.to_numpy(), "stars": rng.integers(1, 6, n)})


@preprocessor
def lower(x):
    x.low = x.text.lower()
    return x


@preprocessor(vectorized=True)
def vlower(df):
    return df.assign(low=df.text.str.lower())


def make_lfs() -> tuple[list, list]:
    """20 row-wise and the 20 equivalent vectorised labeling functions."""
    row, vec = [], []
    for w in POS:
        row.append(LabelingFunction(f"pos_{w}", lambda x, w=w: 1 if w in x.low else -1,
                                    pre=[lower]))
        vec.append(LabelingFunction(
            f"pos_{w}", lambda d, w=w: np.where(d.low.str.contains(w, regex=False), 1, -1),
            pre=[vlower], vectorized=True))
    for w in NEG:
        row.append(LabelingFunction(f"neg_{w}", lambda x, w=w: 0 if w in x.low else -1,
                                    pre=[lower]))
        vec.append(LabelingFunction(
            f"neg_{w}", lambda d, w=w: np.where(d.low.str.contains(w, regex=False), 0, -1),
            pre=[vlower], vectorized=True))
    for s, lab in ((5, 1), (4, 1), (1, 0), (2, 0)):
        row.append(LabelingFunction(f"stars_{s}", lambda x, s=s, lab=lab:
                                    lab if x.stars == s else -1))
        vec.append(LabelingFunction(f"stars_{s}", lambda d, s=s, lab=lab:
                                    np.where(d.stars.to_numpy() == s, lab, -1),
                                    vectorized=True))
    row.append(LabelingFunction("shouting", lambda x: 0 if x.text.isupper() else -1))
    vec.append(LabelingFunction("shouting", lambda d: np.where(d.text.str.isupper(), 0, -1),
                                vectorized=True))
    row.append(LabelingFunction("long", lambda x: 1 if len(x.text) > 30 else -1))
    vec.append(LabelingFunction("long", lambda d: np.where(d.text.str.len() > 30, 1, -1),
                                vectorized=True))
    assert len(row) == len(vec) == 20
    return row, vec


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--out-dir", type=Path, default=None)
    ap.add_argument("--n", type=float, default=1e6)
    ap.add_argument("--npartitions", type=int, default=8)
    args = ap.parse_args(argv)
    n = 2000 if args.smoke else int(args.n)
    import dask.dataframe as dd
    from distributed import Client, LocalCluster

    df = make_records(n)
    row_lfs, vec_lfs = make_lfs()
    rows, results = [], {}

    def record(engine: str, kind: str, seconds: float, lm) -> None:
        results[(engine, kind)] = lm
        rows.append({"engine": engine, "lfs": kind, "n_records": n, "n_lfs": 20,
                     "seconds": round(seconds, 3), "records_per_s": round(n / seconds),
                     "n_votes": lm.n_votes})

    for kind, lfs in (("row-wise", row_lfs), ("vectorized", vec_lfs)):
        t = time.perf_counter()
        lm = PandasLFApplier(lfs, n_classes=2, progress_bar=False).apply(df)
        record("pandas", kind, time.perf_counter() - t, lm)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        client.run(__import__, "wsagg.lf")
        for kind, lfs in (("row-wise", row_lfs), ("vectorized", vec_lfs)):
            t = time.perf_counter()
            ddf = dd.from_pandas(df, npartitions=args.npartitions)
            lm = DaskLFApplier(lfs, n_classes=2).apply(ddf, client=client)
            record("dask (2 workers)", kind, time.perf_counter() - t, lm)
    ref = results[("pandas", "row-wise")].to_sparse()
    for key, lm in results.items():
        if (lm.to_sparse() != ref).nnz:
            raise AssertionError(f"{key} gives a different label matrix than pandas row-wise")
    print_table(rows)
    name = "lf_apply_smoke" if args.smoke else "lf_apply"
    path = save_results(name, rows, out_dir=args.out_dir,
                        packages=("numpy", "pandas", "dask", "distributed"),
                        extra={"identical_label_matrices": True})
    print(f"\nsaved {path}")


if __name__ == "__main__":
    main()
