"""Tests of wsagg.downstream: losses, optimisers, SoftLabelClassifier, pipeline, benchmarks."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.metrics import balanced_accuracy_score

torch = pytest.importorskip("torch")

from wsagg.aggregation.majority import MajorityVote  # noqa: E402
from wsagg.datasets import make_dawid_skene  # noqa: E402
from wsagg.downstream import (  # noqa: E402
    NormalizedGD,
    SignDescent,
    SoftLabelClassifier,
    WeakSupervisionPipeline,
    balanced_softmax_loss,
    confidence_weights,
    logit_adjusted_loss,
    soft_cross_entropy,
    weighted_cross_entropy,
)
from wsagg.prior import DoubleCorrectionWarning  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _np_log_softmax(z):
    z = z - z.max(1, keepdims=True)
    return z - np.log(np.exp(z).sum(1, keepdims=True))


def _toy(seed=0, n=5, k=3):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, k))
    q = rng.dirichlet(np.ones(k), size=n)
    s = rng.random(n) + 0.1
    pi = rng.dirichlet(np.ones(k))
    w = rng.random(k) + 0.5
    return z, q, s, pi, w


def _t(a):
    return torch.tensor(a, dtype=torch.float64)


# ------------------------------------------------------------------------------- losses


def test_losses_equal_their_formulas():
    z, q, s, pi, w = _toy()
    ce = -(s * (q * _np_log_softmax(z)).sum(1)).sum() / s.sum()
    np.testing.assert_allclose(float(soft_cross_entropy(_t(z), _t(q), _t(s))), ce, rtol=1e-12)
    tau = 0.7
    la = -(s * (q * _np_log_softmax(z + tau * np.log(pi))).sum(1)).sum() / s.sum()
    np.testing.assert_allclose(
        float(logit_adjusted_loss(_t(z), _t(q), _t(np.log(pi)), tau, _t(s))), la, rtol=1e-12)
    bs = -(q * _np_log_softmax(z + np.log(pi))).sum(1).mean()
    np.testing.assert_allclose(float(balanced_softmax_loss(_t(z), _t(q), _t(np.log(pi)))), bs,
                               rtol=1e-12)
    wce = -(w * q * _np_log_softmax(z)).sum(1).mean()
    np.testing.assert_allclose(float(weighted_cross_entropy(_t(z), _t(q), _t(w))), wce,
                               rtol=1e-12)
    # agrees with torch's own probability-target cross-entropy (which divides by N)
    ref = torch.nn.functional.cross_entropy(_t(z), _t(q), weight=_t(w))
    np.testing.assert_allclose(float(ref), wce, rtol=1e-12)
    # balanced softmax is the logit-adjusted loss at tau = 1; log counts = log prior + const
    np.testing.assert_allclose(
        float(logit_adjusted_loss(_t(z), _t(q), _t(np.log(pi * 1234.0)), 1.0)), bs, rtol=1e-12)


@pytest.mark.parametrize("which", ["ce", "la", "bs", "wce"])
def test_loss_gradients_match_finite_differences(which):
    z, q, s, pi, w = _toy(seed=3, n=4, k=3)
    zt = _t(z).requires_grad_(True)
    fns = {
        "ce": lambda x: soft_cross_entropy(x, _t(q), _t(s)),
        "la": lambda x: logit_adjusted_loss(x, _t(q), _t(np.log(pi)), 1.3, _t(s)),
        "bs": lambda x: balanced_softmax_loss(x, _t(q), _t(np.log(pi)), _t(s)),
        "wce": lambda x: weighted_cross_entropy(x, _t(q), _t(w), _t(s)),
    }
    assert torch.autograd.gradcheck(fns[which], (zt,), eps=1e-6, atol=1e-7)


# ------------------------------------------------------------------------------- optimisers


def test_sign_and_normalized_gd_steps():
    p = torch.nn.Parameter(_t([1.0, -2.0, 3.0]))
    p.grad = _t([0.5, -4.0, 0.0])
    SignDescent([p], lr=0.1).step()
    np.testing.assert_allclose(p.detach().numpy(), [0.9, -1.9, 3.0])
    a = torch.nn.Parameter(_t([0.0, 0.0]))
    b = torch.nn.Parameter(_t([0.0]))
    a.grad, b.grad = _t([3.0, 0.0]), _t([4.0])
    NormalizedGD([a, b], lr=2.0).step()  # global norm 5
    np.testing.assert_allclose(a.detach().numpy(), [-1.2, 0.0])
    np.testing.assert_allclose(b.detach().numpy(), [-1.6])
    # heavy-ball momentum on the sign
    c = torch.nn.Parameter(_t([0.0]))
    opt = SignDescent([c], lr=1.0, momentum=0.5)
    for _ in range(2):
        c.grad = _t([2.0])
        opt.step()
    np.testing.assert_allclose(c.detach().numpy(), [-1.0 - 1.5])
    with pytest.raises(ValueError, match="momentum"):
        SignDescent([c], momentum=1.5)


# ------------------------------------------------------------------------------- classifier


def _blobs(n=300, k=3, d=5, seed=0, prior=None):
    rng = np.random.default_rng(seed)
    y = rng.choice(k, size=n, p=prior)
    mu = rng.normal(size=(k, d)) * 2.0
    X = mu[y] + rng.normal(size=(n, d))
    Q = 0.7 * np.eye(k)[y] + 0.3 / k
    return X, Q, y


@pytest.mark.parametrize("optimizer", ["gd", "sgd", "adam", "sign", "normalized_gd"])
def test_every_optimizer_learns(optimizer):
    X, Q, y = _blobs()
    clf = SoftLabelClassifier(optimizer=optimizer, max_iter=60, random_state=0,
                              progress=False).fit(X, Q)
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]
    assert (clf.predict(X) == y).mean() > 0.9
    np.testing.assert_allclose(clf.predict_proba(X).sum(1), 1.0)


def test_deterministic_under_seed_and_seed_matters():
    X, Q, _ = _blobs()
    kw = {"model": "mlp", "hidden_layer_sizes": (8,), "batch_size": 32, "max_iter": 5,
          "progress": False}
    a = SoftLabelClassifier(random_state=7, **kw).fit(X, Q).predict_proba(X)
    b = SoftLabelClassifier(random_state=7, **kw).fit(X, Q).predict_proba(X)
    c = SoftLabelClassifier(random_state=8, **kw).fit(X, Q).predict_proba(X)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-6


def test_sparse_equals_dense_and_float32():
    X, Q, _ = _blobs(n=120)
    X[np.abs(X) < 1.0] = 0.0
    d = SoftLabelClassifier(max_iter=20, random_state=0, progress=False).fit(X, Q)
    s = SoftLabelClassifier(max_iter=20, random_state=0, progress=False).fit(sp.csr_matrix(X),
                                                                           Q)
    np.testing.assert_allclose(d.predict_proba(X), s.predict_proba(sp.csr_matrix(X)),
                               atol=1e-10)
    f = SoftLabelClassifier(max_iter=20, random_state=0, dtype="float32",
                            progress=False).fit(X, Q)
    np.testing.assert_allclose(d.predict_proba(X), f.predict_proba(X), atol=1e-4)


def test_zero_sample_weight_equals_dropping_items():
    X, Q, _ = _blobs(n=100)
    w = np.ones(100)
    w[50:] = 0.0
    a = SoftLabelClassifier(optimizer="gd", max_iter=15, random_state=0,
                            progress=False).fit(X, Q, sample_weight=w)
    b = SoftLabelClassifier(optimizer="gd", max_iter=15, random_state=0,
                            progress=False).fit(X[:50], Q[:50])
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), atol=1e-12)


def test_hard_labels_sklearn_contract_and_clone():
    X, _, y = _blobs(n=150)
    names = np.array(["ant", "bee", "cat"])[y]
    clf = SoftLabelClassifier(max_iter=40, random_state=0, progress=False)
    clf.fit(X, names)
    assert set(clf.predict(X)) <= {"ant", "bee", "cat"}
    assert clf.score(X, names) > 0.9
    assert clone(clf).get_params()["max_iter"] == 40
    assert clf.n_features_in_ == 5


def test_early_stopping_restores_best_and_stops():
    X, Q, _ = _blobs(n=200, seed=1)
    Xv, _, yv = _blobs(n=100, seed=2)
    clf = SoftLabelClassifier(model="mlp", hidden_layer_sizes=(64,), lr=0.05, max_iter=300,
                              n_iter_no_change=5, random_state=0, progress=False)
    clf.fit(X, Q, eval_set=(Xv, yv))  # different blob means: validation loss rises soon
    assert clf.n_iter_ < 300
    assert clf.best_epoch_ == int(np.argmin(clf.validation_loss_curve_))
    auto = SoftLabelClassifier(early_stopping=True, validation_fraction=0.2, max_iter=50,
                               random_state=0, progress=False).fit(X, Q)
    assert len(auto.validation_loss_curve_) == auto.n_iter_


def test_callback_can_stop_and_progress_bar_runs(capsys):
    X, Q, _ = _blobs(n=60)
    seen = []

    def cb(epoch, est):
        seen.append(est.decision_function(X[:2]).shape)
        return epoch >= 2

    clf = SoftLabelClassifier(max_iter=50, callback=cb, progress=True, random_state=0)
    clf.fit(X, Q)
    assert clf.n_iter_ == 3 and seen == [(2, 3)] * 3


def _long_tailed(seed=0, k=5, ratio=100.0, n_max=400, d=4):
    rng = np.random.default_rng(seed)
    n_c = np.floor(n_max * ratio ** (-np.arange(k) / (k - 1))).astype(int)
    y = np.repeat(np.arange(k), n_c)
    mu = rng.normal(size=(k, d)) * 1.2
    X = mu[y] + rng.normal(size=(y.shape[0], d))
    yt = np.repeat(np.arange(k), 200)
    Xt = mu[yt] + rng.normal(size=(yt.shape[0], d))
    return X, np.eye(k)[y], Xt, yt


def test_rebalancing_improves_balanced_accuracy_on_imbalance_100():
    X, Q, Xt, yt = _long_tailed()
    common = {"max_iter": 80, "lr": 0.1, "random_state": 0, "progress": False}
    base = SoftLabelClassifier(**common).fit(X, Q)
    ba0 = balanced_accuracy_score(yt, base.predict(Xt))
    for kw in ({"loss": "logit_adjusted"}, {"loss": "balanced_softmax"},
               {"posthoc": "logit_adjust"}, {"posthoc": "p2p"},
               {"loss": "weighted_cross_entropy", "class_weight": "balanced"}):
        ba = balanced_accuracy_score(yt, SoftLabelClassifier(**common, **kw).fit(X, Q)
                                     .predict(Xt))
        assert ba > ba0 + 0.03, (kw, ba, ba0)
    # the target-prior swap of one-hot targets changes nothing (the documented trap)
    from wsagg.prior import correct

    swapped = correct(Q, Q.mean(0), "uniform")
    np.testing.assert_allclose(swapped, Q)


def test_logit_adjusted_predict_proba_targets_balanced_posterior():
    X, Q, _, _ = _long_tailed(seed=1)
    clf = SoftLabelClassifier(loss="logit_adjusted", max_iter=80, lr=0.1, random_state=0,
                              progress=False).fit(X, Q)
    # raw model marginal on training items is much flatter than the label marginal
    assert clf.effective_prior_.max() / clf.effective_prior_.min() < 0.2 * (
        Q.mean(0).max() / Q.mean(0).min())
    t = SoftLabelClassifier(loss="logit_adjusted", target_prior=Q.mean(0), max_iter=80,
                            lr=0.1, random_state=0, progress=False).fit(X, Q)
    np.testing.assert_allclose(t.predict_proba(X).mean(0), Q.mean(0), atol=0.03)


def test_double_correction_warnings():
    X, Q, _, _ = _long_tailed()
    with pytest.warns(DoubleCorrectionWarning, match="twice"):
        SoftLabelClassifier(loss="logit_adjusted", posthoc="logit_adjust", max_iter=2,
                            progress=False).fit(X, Q)
    with pytest.warns(DoubleCorrectionWarning, match="double prior correction"):
        SoftLabelClassifier(loss="balanced_softmax", class_prior=np.full(5, 0.2), max_iter=2,
                            progress=False).fit(X, Q)
    # argmax counts of soft (not one-hot) labels disagree with the labels' own marginal
    soft = np.array([[0.6, 0.4]] * 50 + [[0.1, 0.9]] * 2)
    with pytest.warns(DoubleCorrectionWarning, match="'counts'"):
        SoftLabelClassifier(loss="balanced_softmax", class_prior="counts", max_iter=2,
                            progress=False).fit(np.ones((52, 2)), soft)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SoftLabelClassifier(loss="balanced_softmax", class_prior=Q.mean(0), max_iter=2,
                            progress=False).fit(X, Q)


@pytest.mark.parametrize(
    ("labels", "kwargs", "err", "match"),
    [
        (np.full((10, 2), 0.6), {}, ValueError, "sum to 1"),
        (np.tile([1.5, -0.5], (10, 1)), {}, ValueError, "negative"),
        (np.tile([np.nan, 1.0], (10, 1)), {}, ValueError, "NaN"),
        (np.tile([0.5, 0.5], (9, 1)), {}, ValueError, "aligned"),
        (np.ones((10, 2, 1)), {}, ValueError, "2-D"),
        (np.tile([0.5, 0.5], (10, 1)), {"loss": "logit_adjusted",
                                        "class_prior": [0.0, 1.0]}, ValueError, "probability 0"),
        (np.tile([1.0, 0.0], (10, 1)), {"loss": "balanced_softmax"}, ValueError,
         "zero probability"),
        (np.tile([0.5, 0.5], (10, 1)), {"loss": "focal"}, ValueError, "loss must be"),
        (np.tile([0.5, 0.5], (10, 1)), {"optimizer": "lbfgs"}, ValueError, "optimizer must"),
        (np.tile([0.5, 0.5], (10, 1)), {"loss": "weighted_cross_entropy"}, ValueError,
         "needs class_weight"),
    ],
)
def test_bad_input_errors(labels, kwargs, err, match):
    X = np.random.default_rng(0).normal(size=(10, 3))
    with pytest.raises(err, match=match):
        SoftLabelClassifier(max_iter=2, progress=False, **kwargs).fit(X, labels)


def test_bad_X_and_device_errors():
    Q = np.tile([0.5, 0.5], (4, 1))
    X = np.ones((4, 2))
    X[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        SoftLabelClassifier(max_iter=1).fit(X, Q)
    clf = SoftLabelClassifier(max_iter=1, progress=False).fit(np.ones((4, 2)), Q)
    with pytest.raises(ValueError, match="fitted with 2"):
        clf.predict(np.ones((4, 3)))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            SoftLabelClassifier(max_iter=1, device="cuda").fit(np.ones((4, 2)), Q)
    with pytest.raises(FloatingPointError, match="diverged"):
        SoftLabelClassifier(optimizer="gd", lr=1e200, max_iter=5, progress=False).fit(
            np.random.default_rng(0).normal(size=(4, 2)) * 1e200, Q)


# ------------------------------------------------------------------------------- pipeline


def test_pipeline_end_to_end_with_majority_vote():
    ds = make_dawid_skene(600, 6, 3, class_prior="zipf", coverage=0.6, random_state=0)
    rng = np.random.default_rng(0)
    mu = rng.normal(size=(3, 4)) * 2.0
    X = mu[ds.y] + rng.normal(size=(600, 4))
    pipe = WeakSupervisionPipeline(
        aggregator=MajorityVote(), prior_correction="pool", confidence="entropy",
        classifier=SoftLabelClassifier(loss="logit_adjusted", max_iter=40, progress=False,
                                       random_state=0),
    ).fit(ds.L, X)
    assert pipe.train_mask_.sum() == ds.L.covered().sum()
    report = pipe.evaluate(X, ds.y)
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "buckets", "per_class_recall"):
        assert key in report
    assert set(report["buckets"]) == {"head", "medium", "tail"}
    assert report["balanced_accuracy"] > 0.8
    assert pipe.predict(X).shape == (600,)
    # a pool swap of majority-vote labels keeps them distributions
    np.testing.assert_allclose(pipe.soft_labels_.sum(1), 1.0)
    with pytest.raises(ValueError, match="items but X has"):
        WeakSupervisionPipeline().fit(ds.L, X[:10])
    with pytest.raises(ValueError, match="prior_correction must be"):
        WeakSupervisionPipeline(prior_correction="bogus").fit(ds.L, X)


def test_confidence_weights():
    q = np.array([[1.0, 0.0], [0.5, 0.5], [0.75, 0.25]])
    np.testing.assert_allclose(confidence_weights(q, "max"), [1.0, 0.5, 0.75])
    np.testing.assert_allclose(confidence_weights(q, "entropy")[:2], [1.0, 0.0], atol=1e-12)
    assert confidence_weights(q, None) is None
    with pytest.raises(ValueError, match="confidence must be"):
        confidence_weights(q, "bogus")


def test_import_wsagg_does_not_import_torch():
    code = "import wsagg, sys; wsagg.prior; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------------------------- benchmarks


def _bench(name: str):
    """Import a benchmark script as a module (run in-process: no second torch import)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"_bench_{name}", REPO / "benchmarks" /
                                                  f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run_bench(name: str, argv: list[str]) -> None:
    threads = torch.get_num_threads()
    try:
        assert _bench(name).main(argv) == 0
    finally:
        torch.set_num_threads(threads)


def test_heavy_tail_stability_rule_and_sweep():
    bench = _bench("bench_heavy_tail_optim")
    mon = bench.StabilityMonitor()
    assert [mon.update(v) for v in (3.0, 2.0, 2.02, 2.03)] == [True, True, True, False]
    assert mon.first_violation == 3 and not mon.stable
    mon = bench.StabilityMonitor()
    assert not mon.update(float("nan")) and mon.first_violation == 0

    def fake(lr):  # lr >= 1e-1 unstable; below, final loss decreasing in lr
        e = np.log10(lr)
        overall = np.array([5.0, 4.0, 6.0]) if e >= -1 else np.array([5.0, 4.0, -e])
        return {"curves": np.ones((3, 2)), "curve_steps": np.arange(3), "overall": overall,
                "stable": e < -1, "first_violation": 2 if e >= -1 else None, "steps_run": 3}

    rows, best = bench.sweep(fake, np.arange(-4.0, 0.5, 0.5), {"optimizer": "x"})
    status = {r["log10_lr"]: r["status"] for r in rows}
    assert best["log10_lr"] == -1.5 and not best["edge"]
    assert status[0.0] == status[-1.0] == "unstable@2"
    assert status[-1.5] == status[-2.0] == "stable"  # -2.0 is worse: the walk stops there
    assert all(status[e] == "skipped" for e in (-2.5, -3.0, -3.5, -4.0))


def test_heavy_tail_benchmark_smoke(tmp_path, capsys):
    import json

    _run_bench("bench_heavy_tail_optim", ["--smoke", "--out-dir", str(tmp_path)])
    assert "GD/Adam ratio" in capsys.readouterr().out
    for ext in ("json", "csv", "png"):
        assert (tmp_path / f"heavy_tail_optim_smoke.{ext}").is_file()
    res = json.loads((tmp_path / "heavy_tail_optim_smoke.json").read_text())
    assert {r["part"] for r in res["rows"]} == {"kunstner", "pipeline"}
    best = [r for r in res["summary"] if r["optimizer"] in ("gd", "adam")]
    assert best and all(np.isfinite(r["tail_group"]) for r in best)


def test_longtail_benchmark_smoke_synthetic(tmp_path):
    _run_bench("bench_longtail_pipeline", [
        "--smoke", "--datasets", "synthetic", "--methods", "none", "la_loss", "p2p",
        "--aggregators", "mv", "ds", "--out-dir", str(tmp_path)])
    assert (tmp_path / "longtail_pipeline_smoke.png").is_file()


@pytest.mark.realdata
def test_longtail_benchmark_smoke_real(tmp_path, data_home, capsys):
    _run_bench("bench_longtail_pipeline", [
        "--smoke", "--datasets", "trec", "--methods", "none", "la_loss", "--aggregators", "mv",
        "--data-home", str(data_home), "--out-dir", str(tmp_path)])
    assert "trec" in capsys.readouterr().out
