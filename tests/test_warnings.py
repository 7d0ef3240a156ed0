"""Every warning of wsagg points at the user's line, whatever the call path."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

import wsagg
from wsagg.cli import main
from wsagg.datasets import make_dawid_skene


@pytest.fixture(scope="module")
def votes():
    return make_dawid_skene(300, 6, 3, coverage=0.7, random_state=0).L.to_dense()


def _caught(call):
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        call()
    return [w for w in rec if issubclass(w.category, ConvergenceWarning)]


@pytest.mark.parametrize("path", ["fit", "fit_predict_proba", "fit_predict"])
def test_convergence_warning_points_at_the_caller(votes, path):
    est = wsagg.DawidSkene(max_iter=1, random_state=0)
    rec = _caught(lambda: getattr(est, path)(votes))
    assert rec, "expected a ConvergenceWarning"
    assert all(w.filename == __file__ for w in rec), [w.filename for w in rec]


def test_adversarial_non_convergence_is_a_convergence_warning(votes, monkeypatch):
    import wsagg.aggregation.adversarial.solvers.scipy as solver

    # a solver that never reaches the KKT tolerance (the real one polishes to 1e-15)
    monkeypatch.setattr(solver, "kkt_violation", lambda *a, **k: 1.0)
    d = make_dawid_skene(300, 6, 3, coverage=0.7, random_state=0)
    y = np.where(np.arange(300) % 3 == 0, d.y, -1)
    rec = _caught(lambda: wsagg.AdversarialLogLoss(on_infeasible="widen").fit(votes, y))
    assert rec and all(w.filename == __file__ for w in rec)


def test_cli_prints_a_warning_as_one_line(tmp_path, votes, capsys):
    src = tmp_path / "votes.csv"
    np.savetxt(src, votes, fmt="%d", delimiter=",")
    code = main(["aggregate", str(src), "--wide", "--method", "dawid-skene", "--param",
                 "max_iter=1", "-o", str(tmp_path / "out.csv")])
    err = capsys.readouterr().err
    assert code == 0
    lines = [ln for ln in err.splitlines() if "ConvergenceWarning" in ln]
    assert len(lines) == 1 and lines[0].startswith("wsagg: warning: ConvergenceWarning:")
    assert "wsagg/" not in lines[0] and ".py" not in lines[0]
