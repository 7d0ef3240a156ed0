"""Safe model persistence (``model.save`` / ``wsagg.load``), for every registered aggregator
and SoftLabelClassifier: a fresh process gives identical posteriors, every fitted attribute
comes back, and damaged, tampered or foreign files are refused with ``ModelFileError``."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError

import wsagg
from wsagg import persistence
from wsagg._registry import AGGREGATORS
from wsagg.datasets import make_dawid_skene
from wsagg.exceptions import ModelFileError

NAMES = sorted(AGGREGATORS)
LONG = "dawid-skene[long-str-ids]"  # fitted on a long DataFrame with string ids and classes
CLASSIFIERS = ("classifier[linear]", "classifier[mlp-float32-p2p]")
CASES = [*NAMES, LONG, *CLASSIFIERS]


def _votes(k, seed, n):
    d = make_dawid_skene(n, 6, k, coverage=0.6, random_state=seed)
    L = d.L.to_dense()
    L[5] = -1  # an all-abstain row
    return L, d.y


def _long(L):
    i, j = np.nonzero(L >= 0)
    return pd.DataFrame({
        "item": [f"it{x}" for x in i],
        "source": [f"src{x}" for x in j],
        "label": np.array(["cat", "dog", "eel"])[L[i, j]],
    })


def _fit_case(case):
    """``(fitted estimator, training input, new input)``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if case in CLASSIFIERS:
            from wsagg.downstream import SoftLabelClassifier

            rng = np.random.default_rng(0)
            X, X_new = rng.normal(size=(90, 5)), rng.normal(size=(30, 5))
            Q = rng.dirichlet(np.ones(3), size=90)
            kw = {} if case.endswith("[linear]") else dict(
                model="mlp", hidden_layer_sizes=(6,), dtype="float32",
                loss="logit_adjusted", posthoc="p2p", early_stopping=True)
            clf = SoftLabelClassifier(max_iter=25, random_state=0, progress=False, **kw)
            return clf.fit(X, Q), X, X_new
        if case == LONG:
            L, _ = _votes(3, 0, 150)
            L_new, _ = _votes(3, 1, 50)
            df = _long(L)
            est = AGGREGATORS["dawid-skene"].load()().fit(df)
            return est, df, _long(L_new)
        spec = AGGREGATORS[case]
        k = 2 if spec.binary_only else 3
        L, truth = _votes(k, 0, 200)
        L_new, _ = _votes(k, 1, 60)
        y = None
        if spec.needs_labels or case == "auto":  # auto: the cross-validated path
            y = np.full(L.shape[0], -1)
            y[::4] = truth[::4]
        est = spec.load()()
        if "random_state" in est.get_params():
            est.set_params(random_state=0)
        return est.fit(L, y), L, L_new


@pytest.fixture(scope="module")
def fitted():
    return {case: _fit_case(case) for case in CASES}


@pytest.fixture(scope="module")
def saved(fitted, tmp_path_factory):
    """Every case saved, plus its inputs as plain files for the fresh process."""
    root = tmp_path_factory.mktemp("models")
    manifest = {}
    for i, (case, (est, X, X_new)) in enumerate(fitted.items()):
        path = est.save(root / f"m{i}.wsagg")
        assert isinstance(path, Path) and path.is_file()
        entry = {"model": str(path), "params": repr(sorted(est.get_params().items()))}
        for tag, data in (("train", X), ("new", X_new)):
            if isinstance(data, pd.DataFrame):
                entry[tag] = str(root / f"m{i}_{tag}.csv")
                data.to_csv(entry[tag], index=False)
            else:
                entry[tag] = str(root / f"m{i}_{tag}.npy")
                np.save(entry[tag], data)
        manifest[case] = entry
    return root, manifest


_FRESH = r"""
import json, sys, warnings
import numpy as np, pandas as pd
import wsagg
warnings.simplefilter("ignore")
manifest = json.load(open(sys.argv[1]))
out, params = {}, {}
for i, (case, e) in enumerate(manifest.items()):
    est = wsagg.load(e["model"])
    for tag in ("train", "new"):
        f = e[tag]
        data = pd.read_csv(f, dtype=str) if f.endswith(".csv") else np.load(f)
        out[f"{i}_{tag}"] = np.asarray(est.predict_proba(data))
    params[case] = repr(sorted(est.get_params().items()))
np.savez(sys.argv[2], **out)
json.dump(params, open(sys.argv[3], "w"))
"""


@pytest.fixture(scope="module")
def fresh(saved):
    """One fresh interpreter loads every model and predicts on the training and new rows."""
    root, manifest = saved
    (root / "manifest.json").write_text(json.dumps(manifest))
    proc = subprocess.run(
        [sys.executable, "-c", _FRESH, str(root / "manifest.json"), str(root / "out.npz"),
         str(root / "params.json")],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    with np.load(root / "out.npz", allow_pickle=False) as z:
        probas = {k: z[k] for k in z.files}
    return probas, json.loads((root / "params.json").read_text())


@pytest.mark.parametrize("case", CASES)
def test_a_fresh_process_predicts_identically(case, fitted, fresh):
    est, X, X_new = fitted[case]
    probas, params = fresh
    i = CASES.index(case)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for tag, data in (("train", X), ("new", X_new)):
            expected = np.asarray(est.predict_proba(data))
            got = probas[f"{i}_{tag}"]
            assert got.shape == expected.shape
            assert np.array_equal(got, expected), (case, tag, np.abs(got - expected).max())
    assert params[case] == repr(sorted(est.get_params().items()))


def test_every_registered_aggregator_is_covered():
    assert set(AGGREGATORS) <= set(CASES)


def _same(a, b, where):
    """Deep equality of saved and loaded values (arrays by value and dtype)."""
    if isinstance(a, BaseEstimator):
        assert type(a) is type(b), where
        _same(a.get_params(deep=False), b.get_params(deep=False), f"{where}.params")
        state_a = {n: v for n, v in vars(a).items() if n not in a.get_params(deep=False)}
        state_b = {n: v for n, v in vars(b).items() if n not in b.get_params(deep=False)}
        assert set(state_a) == set(state_b), where
        if "module_" in state_a:  # the torch module: same architecture, same weights
            mod_a, mod_b = state_a.pop("module_"), state_b.pop("module_")
            assert repr(mod_a) == repr(mod_b) and not mod_b.training, where
            sa, sb = mod_a.state_dict(), mod_b.state_dict()
            assert list(sa) == list(sb), where
            for name in sa:
                assert sa[name].dtype == sb[name].dtype, where
                assert np.array_equal(sa[name].numpy(), sb[name].numpy()), f"{where}.{name}"
        for name in state_a:
            _same(state_a[name], state_b[name], f"{where}.{name}")
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape, where
        if a.dtype == object:
            for i, (u, v) in enumerate(zip(a.ravel(), b.ravel(), strict=True)):
                _same(u, v, f"{where}[{i}]")
        else:
            assert np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"), where
    elif sp.issparse(a):
        assert type(a) is type(b) and a.shape == b.shape, where
        assert (a != b).nnz == 0, where
    elif isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b)
    elif dataclasses.is_dataclass(a) and not isinstance(a, type):
        assert type(a) is type(b), where
        for f in dataclasses.fields(a):
            _same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, dict):
        assert type(b) is dict and list(a) == list(b), where
        for key in a:
            _same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, list | tuple):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (u, v) in enumerate(zip(a, b, strict=True)):
            _same(u, v, f"{where}[{i}]")
    elif isinstance(a, float) and np.isnan(a):
        assert type(a) is type(b) and np.isnan(b), where
    else:
        assert type(a) is type(b) and a == b, (where, a, b)


@pytest.mark.parametrize("case", CASES)
def test_every_parameter_and_attribute_comes_back(case, fitted, saved):
    est = fitted[case][0]
    loaded = wsagg.load(saved[1][case]["model"])
    assert loaded is not est
    assert set(vars(loaded)) == set(vars(est))
    _same(est, loaded, case)


def test_nested_estimators_and_state_objects_are_saved_recursively(fitted, saved):
    auto = wsagg.load(saved[1]["auto"]["model"])
    assert isinstance(auto.estimator_, BaseEstimator) and hasattr(auto.estimator_, "classes_")
    assert auto.cv_results_["params"].dtype == object  # dicts of parameters, per candidate
    assert isinstance(auto.cv_results_["params"][0], dict)
    assert auto.cv_results_["candidate"].dtype == object
    adv = wsagg.load(saved[1]["adversarial"]["model"])
    assert isinstance(adv.constraints_, pd.DataFrame)
    assert sp.issparse(adv.dual_problem_.V)
    long = wsagg.load(saved[1][LONG]["model"])
    assert list(long.classes_) == ["cat", "dog", "eel"]
    assert long.source_names_.dtype == object  # object arrays of str keep their dtype
    assert all(type(s) is str for s in long.source_names_)
    meta = _members(saved[1][LONG]["model"])[0]
    assert meta["classes"] == ["cat", "dog", "eel"]
    assert meta["source_names"] == [f"src{j}" for j in range(6)]
    assert meta["estimator"]["name"] == "dawid-skene"
    assert meta["wsagg_version"] == wsagg.__version__


def test_the_public_functions_and_any_suffix(fitted, tmp_path):
    est = fitted["majority"][0]
    path = wsagg.save(est, tmp_path / "model.bin")
    assert path == tmp_path / "model.bin"
    for loader in (wsagg.load, persistence.load):
        again = loader(str(path))
        assert np.array_equal(again.weights_, est.weights_)
    assert persistence.save(est, tmp_path / "m2", overwrite=False).is_file()
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


# ------------------------------------------------------------------------------------------
# saving: clear errors, atomic writes
# ------------------------------------------------------------------------------------------
def test_existing_file_needs_overwrite(fitted, tmp_path):
    est = fitted["wawa"][0]
    path = est.save(tmp_path / "m.wsagg")
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        est.save(path)
    assert path.read_bytes() == before
    fitted["majority"][0].save(path, overwrite=True)
    assert wsagg.load(path).__class__.__name__ == "MajorityVote"


def test_unfitted_estimators_are_refused(tmp_path):
    from wsagg.downstream import SoftLabelClassifier

    for est in (wsagg.MajorityVote(), wsagg.DawidSkene(), SoftLabelClassifier()):
        with pytest.raises(NotFittedError):
            est.save(tmp_path / "m.wsagg")
    assert not list(tmp_path.iterdir())


def test_an_unsupported_attribute_is_named_at_save(fitted, tmp_path):
    est = fitted["iwmv"][0]
    target = tmp_path / "m.wsagg"
    target.write_bytes(b"previous")
    est.extra_ = {"a": object()}
    try:
        with pytest.raises(TypeError, match=r"attribute 'extra_'.*builtins\.object"):
            est.save(target, overwrite=True)
    finally:
        del est.extra_
    assert target.read_bytes() == b"previous"  # untouched, and no temporary file
    assert [p.name for p in tmp_path.iterdir()] == ["m.wsagg"]


def test_unstorable_parameters_are_named_at_save(tmp_path):
    from wsagg.downstream import SoftLabelClassifier

    X = np.random.default_rng(0).normal(size=(30, 3))
    Q = np.eye(3)[np.arange(30) % 3]
    est = SoftLabelClassifier(max_iter=2, progress=False, random_state=np.random.RandomState(0))
    est.fit(X, Q)
    with pytest.raises(TypeError, match=r"parameter 'random_state'.*RandomState.*set_params"):
        est.save(tmp_path / "m.wsagg")
    est.set_params(random_state=0, model=lambda d, k: None)
    with pytest.raises(TypeError, match="model is a callable"):
        est.save(tmp_path / "m.wsagg")
    assert not list(tmp_path.iterdir())


def test_foreign_or_subclassed_estimators_are_refused(fitted, tmp_path):
    from sklearn.linear_model import LogisticRegression

    class MyVote(wsagg.MajorityVote):
        pass

    L = fitted["majority"][1]
    for est in (MyVote().fit(L), LogisticRegression().fit([[0.0], [1.0]], [0, 1])):
        with pytest.raises(TypeError, match="registered wsagg aggregators"):
            persistence.save(est, tmp_path / "m.wsagg")


def test_save_into_a_missing_directory_is_a_clear_error(fitted, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        fitted["kos"][0].save(tmp_path / "nope" / "m.wsagg")


def test_permissions_follow_the_umask(fitted, tmp_path):
    old = os.umask(0o027)
    try:
        path = fitted["mmsr"][0].save(tmp_path / "m.wsagg")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o640


def test_a_failed_write_leaves_no_trace(fitted, tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "link", boom)
    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        fitted["majority"][0].save(tmp_path / "m.wsagg")
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------------------------------
# loading: damaged, tampered and foreign files
# ------------------------------------------------------------------------------------------
def _members(path):
    with zipfile.ZipFile(path) as zf:
        return json.loads(zf.read("metadata.json")), zf.read("arrays.npz")


def _write(path, meta, payload, checksum=True, skip=()):
    if checksum:
        meta["arrays_sha256"] = hashlib.sha256(payload).hexdigest()
    with zipfile.ZipFile(path, "w") as zf:
        if "metadata.json" not in skip:
            zf.writestr("metadata.json", json.dumps(meta) if isinstance(meta, dict) else meta)
        if "arrays.npz" not in skip:
            zf.writestr("arrays.npz", payload)
    return path


def _npz(arrays, allow_pickle=False):
    buf = io.BytesIO()
    np.savez(buf, allow_pickle=allow_pickle, **arrays)
    return buf.getvalue()


@pytest.fixture
def model_file(fitted, tmp_path):
    return fitted["dawid-skene"][0].save(tmp_path / "good.wsagg")


def _refused(path, *patterns):
    with pytest.raises(ModelFileError) as info:
        wsagg.load(path)
    msg = str(info.value)
    assert "\n" not in msg and msg.strip()
    for p in patterns:
        assert p in msg, msg
    return msg


def test_a_good_file_loads(model_file):
    assert wsagg.load(model_file).__class__.__name__ == "DawidSkene"


def test_not_a_zip(tmp_path):
    (tmp_path / "m.wsagg").write_text("item,source,label\n")
    _refused(tmp_path / "m.wsagg", "not a wsagg model file", "zip")
    with pytest.raises(FileNotFoundError):
        wsagg.load(tmp_path / "absent.wsagg")
    _refused(tmp_path, "directory")


@pytest.mark.parametrize("member", ["metadata.json", "arrays.npz"])
def test_a_missing_member(model_file, tmp_path, member):
    meta, payload = _members(model_file)
    _refused(_write(tmp_path / "m.wsagg", meta, payload, skip=(member,)), f"no {member}")


def test_metadata_that_is_not_json(model_file, tmp_path):
    _, payload = _members(model_file)
    _refused(_write(tmp_path / "m.wsagg", "{not json", payload, checksum=False), "JSON")


def test_an_unknown_format_name(model_file, tmp_path):
    meta, payload = _members(model_file)
    meta["format"] = "sklearn-pickle"
    _refused(_write(tmp_path / "m.wsagg", meta, payload), "'sklearn-pickle'", "wsagg-model")


@pytest.mark.parametrize("version", [persistence.FORMAT_VERSION + 1, 99])
def test_a_newer_format_version_names_both_versions(model_file, tmp_path, version):
    meta, payload = _members(model_file)
    meta["format_version"] = version
    _refused(_write(tmp_path / "m.wsagg", meta, payload), f"version {version}",
             f"version {persistence.FORMAT_VERSION}", "upgrade")


@pytest.mark.parametrize("version", ["1", 0, None, 1.5])
def test_an_invalid_format_version(model_file, tmp_path, version):
    meta, payload = _members(model_file)
    meta["format_version"] = version
    _refused(_write(tmp_path / "m.wsagg", meta, payload), "format_version")


def test_tampered_arrays_fail_the_checksum(model_file, tmp_path):
    meta, payload = _members(model_file)
    with np.load(io.BytesIO(payload), allow_pickle=False) as z:
        arrays = {k: z[k].copy() for k in z.files}
    key = meta["estimator"]["attributes"]["class_prior_"]["key"]
    arrays[key][0] += 0.1
    _refused(_write(tmp_path / "m.wsagg", meta, _npz(arrays), checksum=False), "SHA-256")


def test_a_pickle_inside_the_npz_is_never_unpickled(model_file, tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    meta, payload = _members(model_file)
    with np.load(io.BytesIO(payload), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    key = meta["estimator"]["attributes"]["class_prior_"]["key"]
    arrays[key] = np.array([Evil()], dtype=object)
    node = meta["estimator"]["attributes"]["class_prior_"]
    node["dtype"], node["shape"] = "|O", [1]
    # a forger recomputes the checksum: allow_pickle=False is what stops the pickle
    _refused(_write(tmp_path / "m.wsagg", meta, _npz(arrays, allow_pickle=True)), "pickle")
    assert not marker.exists()


@pytest.mark.parametrize("target", [
    "os:system", "builtins:eval", "sklearn.linear_model:LogisticRegression", "wsagg.cli:main",
    "wsagg.aggregation.dawid_skene.estimator:DawidSkene", None,
])
def test_a_class_outside_the_allow_list_is_refused(model_file, tmp_path, target):
    meta, payload = _members(model_file)
    meta["estimator"]["class"] = target
    _refused(_write(tmp_path / "m.wsagg", meta, payload), "refuses to load")


def test_a_nested_class_outside_the_allow_lists_is_refused(fitted, tmp_path):
    path = fitted["auto"][0].save(tmp_path / "auto.wsagg")
    meta, payload = _members(path)
    meta["estimator"]["attributes"]["estimator_"]["class"] = "subprocess:Popen"
    _refused(_write(tmp_path / "m1.wsagg", meta, payload), "'subprocess:Popen'", "refuses")
    path = fitted["dawid-skene"][0].save(tmp_path / "ds.wsagg")
    meta, payload = _members(path)
    meta["estimator"]["attributes"]["_params"]["class"] = "subprocess:Popen"
    _refused(_write(tmp_path / "m2.wsagg", meta, payload), "'subprocess:Popen'",
             "does not load")


def test_a_registry_name_that_disagrees_with_the_class(model_file, tmp_path):
    meta, payload = _members(model_file)
    meta["estimator"]["name"] = "majority"
    _refused(_write(tmp_path / "m.wsagg", meta, payload), "registry name")


def test_descriptions_must_match_the_arrays(model_file, tmp_path):
    meta, payload = _members(model_file)
    meta["estimator"]["attributes"]["class_prior_"]["shape"] = [4]
    _refused(_write(tmp_path / "m1.wsagg", meta, payload), "class_prior_", "described as")
    meta, payload = _members(model_file)
    meta["estimator"]["attributes"]["class_prior_"]["key"] = "a999"
    _refused(_write(tmp_path / "m2.wsagg", meta, payload), "missing array")
    meta, payload = _members(model_file)
    with np.load(io.BytesIO(payload), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["smuggled"] = np.zeros(3)
    _refused(_write(tmp_path / "m3.wsagg", meta, _npz(arrays)), "does not describe")


def test_unknown_value_types_and_names_are_refused(model_file, tmp_path):
    meta, payload = _members(model_file)
    meta["estimator"]["attributes"]["n_iter_"] = {"type": "pickle", "value": "gASV"}
    _refused(_write(tmp_path / "m1.wsagg", meta, payload), "unknown type 'pickle'")
    meta, payload = _members(model_file)
    meta["estimator"]["attributes"]["n_iter_"] = {"type": "int", "value": "7"}
    _refused(_write(tmp_path / "m2.wsagg", meta, payload), "n_iter_")
    meta, payload = _members(model_file)
    meta["estimator"]["attributes"]["__class__"] = {"type": "none"}
    _refused(_write(tmp_path / "m3.wsagg", meta, payload), "invalid attribute name")
    meta, payload = _members(model_file)
    meta["estimator"]["params"]["dtype"] = {"type": "numpy-dtype", "dtype": "|O"}
    _refused(_write(tmp_path / "m4.wsagg", meta, payload), "dtype")


def test_tampered_parameters_are_validated(model_file, tmp_path):
    meta, payload = _members(model_file)
    meta["estimator"]["params"]["max_iter"] = {"type": "int", "value": -3}
    _refused(_write(tmp_path / "m1.wsagg", meta, payload), "parameters of DawidSkene",
             "max_iter")
    meta, payload = _members(model_file)
    meta["estimator"]["params"]["no_such_param"] = {"type": "int", "value": 1}
    _refused(_write(tmp_path / "m2.wsagg", meta, payload), "parameters of DawidSkene")


def test_classifier_weights_must_fit_the_architecture(fitted, tmp_path):
    path = fitted["classifier[linear]"][0].save(tmp_path / "c.wsagg")
    meta, payload = _members(path)
    meta["estimator"]["params"]["model"]["value"] = "mlp"
    _refused(_write(tmp_path / "m.wsagg", meta, payload), "module weights")
