"""The zoo comparison benchmarks' smoke modes run (so the scripts cannot rot): in the main
venv the peers are not installed, and the scripts must still run the wsagg side, report the
peers as unavailable, print the table and write the results."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import _peers


def test_peer_registry_names_exist():
    assert set(_peers.WSAGG_PARAMS) <= set(_peers.PEERS)
    for peer, (name, fn) in _peers.PEERS.items():
        assert name in _peers.WSAGG_CLASSES, peer
        assert callable(fn)
    # the wsagg models that exist today resolve, the others explain why not
    cls, where = _peers.wsagg_class("majority")
    assert cls is not None and where.endswith(":MajorityVote")
    cls, why = _peers.wsagg_class("no-such-model")
    assert cls is None and "no-such-model" in why


def test_peer_output_helpers():
    L = np.array([[0, 1, -1], [-1, -1, -1], [1, 1, 0]])
    item, source, label, n, m = _peers._triples(L)
    assert (n, m) == (3, 3) and item.tolist() == [0, 0, 2, 2, 2]
    assert source.tolist() == [0, 1, 0, 1, 2]
    assert label.tolist() == [0, 1, 1, 1, 0]
    P = _peers._one_hot(np.array([1, -1, 0]), 3)
    np.testing.assert_allclose(P, [[0, 1, 0], [1 / 3, 1 / 3, 1 / 3], [1, 0, 0]])
    P = _peers._normalise(np.array([[2.0, 2.0], [0.0, 0.0], [np.nan, 1.0]]))
    np.testing.assert_allclose(P, [[0.5, 0.5], [0.5, 0.5], [0.5, 0.5]])


def _unavailable_peers() -> set[str]:
    return {p for p, why in _peers.available().items() if why is not None}


def test_speed_benchmark_quick(tmp_path, capsys):
    from benchmarks import bench_zoo_speed as bench

    rows = bench.main(["--quick", "--methods", "majority", "dawid-skene",
                       "--out-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert "s_ours" in out and "ratio" in out  # the table was printed
    assert {r["n"] for r in rows} == {2000} and {r["k"] for r in rows} == {2, 10}
    mv = [r for r in rows if r["method"] == "majority"]
    assert mv and all(isinstance(r["s_ours"], float) and r["acc_ours"] > 0.8 for r in mv)
    for r in rows:
        if r["peer"] in _unavailable_peers():
            assert r["s_peer"] == "peer unavailable" and r["ratio"] is None
    saved = json.loads((tmp_path / "zoo_speed_quick.json").read_text())
    assert saved["rows"] and "versions" in saved["environment"]
    assert saved["settings"]["sizes"] == [2000]
    # a rerun of one method keeps the other rows, each with the date it was measured
    again = bench.main(["--quick", "--methods", "majority", "--classes", "2",
                        "--out-dir", str(tmp_path), "--keep-other-rows"])
    keys = [(r["n"], r["k"], r["peer"]) for r in saved["rows"]]
    assert [(r["n"], r["k"], r["peer"]) for r in again] == keys  # same rows, same order
    new = [r for r in again if r["method"] == "majority" and r["k"] == 2]
    old = [r for r in again if not (r["method"] == "majority" and r["k"] == 2)]
    assert new and old and all(r["measured"] for r in again)
    assert all(r["runs_ours"] != s["runs_ours"] for r, s in zip(new, [
        x for x in saved["rows"] if x["method"] == "majority" and x["k"] == 2], strict=True))


@pytest.mark.realdata
def test_agreement_benchmark_quick(tmp_path, data_home, capsys):
    from benchmarks import bench_zoo_agreement as bench

    rows = bench.main(["--quick", "--data-home", str(data_home),
                       "--methods", "majority", "dawid-skene", "kos", "no-such-method",
                       "--out-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert "acc_ours" in out and "max_diff" in out
    assert {r["dataset"] for r in rows} == set(bench.QUICK_DATASETS)
    mv = [r for r in rows if r["method"] == "majority"]
    assert len(mv) == 2 and all(0.7 < r["acc_ours"] <= 1.0 for r in mv)
    kos3 = [r for r in rows if r["peer"] == "crowdkit-KOS" and r["k"] == 3]
    assert kos3 and "binary-only" in kos3[0]["note"]
    unavailable = _unavailable_peers()
    for r in rows:
        if r["peer"] in unavailable and "acc_ours" in r:
            assert r["acc_peer"] is None and "peer unavailable" in r["note"]
    saved = json.loads((tmp_path / "zoo_agreement_quick.json").read_text())
    assert saved["rows"] and "versions" in saved["environment"]
    assert "peer_versions" in saved


def test_merge_saved_rows_replaces_in_place_and_dates_every_row(tmp_path):
    from benchmarks._common import merge_saved_rows

    path = tmp_path / "r.json"
    assert merge_saved_rows(path, [{"a": 1, "v": 0}], ("a",))[0]["measured"]  # no file yet
    saved = {"environment": {"date": "2026-01-01"},
             "rows": [{"a": 1, "b": "x", "v": 1}, {"a": 2, "b": "x", "v": 2},
                      {"a": 3, "b": "x", "v": 3, "measured": "2025-05-05"}]}
    path.write_text(json.dumps(saved))
    out = merge_saved_rows(path, [{"a": 2, "b": "x", "v": 20}, {"a": 4, "b": "x", "v": 4}],
                           ("a", "b"))
    assert [(r["a"], r["v"]) for r in out] == [(1, 1), (2, 20), (3, 3), (4, 4)]
    assert out[0]["measured"] == "2026-01-01" and out[2]["measured"] == "2025-05-05"
    assert out[1]["measured"] != "2026-01-01" and out[3]["measured"]
