"""Record, then check, the posteriors of the built-in aggregators on every shared dataset.

Used to show that a refactor changes no number: ``--record FILE`` saves the posteriors of
``MajorityVote``, ``DawidSkene`` (unsupervised; and with the validation gold as known labels
where a set has a validation split) and ``AdversarialLogLoss`` (validation gold as the
labeled set) on every split of every shared dataset; ``--check FILE`` recomputes them and
reports the largest absolute difference per (dataset, split, method), failing above
``--atol`` (default 1e-10).

    python benchmarks/check_equivalence.py --record /tmp/ref.npz
    python benchmarks/check_equivalence.py --check /tmp/ref.npz
"""

from __future__ import annotations

import argparse
import sys
import warnings

import numpy as np

import wsagg
from wsagg.datasets import list_shared, load_shared, shared_info


def _outputs(data_home: str | None) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name in list_shared():
        info = shared_info(name)
        splits = info["splits"]
        for split in splits:
            d = load_shared(name, split, data_home=data_home)
            L = d.L
            key = f"{name}|{split}"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out[key + "|mv"] = wsagg.MajorityVote().fit_predict_proba(L)
                out[key + "|ds"] = wsagg.DawidSkene(random_state=0).fit_predict_proba(L)
                if "valid" in splits and split != "valid":
                    v = load_shared(name, "valid", data_home=data_home)
                    if v.L.n_classes == L.n_classes and v.L.n_sources == L.n_sources:
                        y = np.concatenate([np.full(L.n_items, -1), v.y])
                        import scipy.sparse as sp

                        both = sp.vstack([L.to_sparse(), v.L.to_sparse()]).tocsr()
                        ds = wsagg.DawidSkene(n_classes=L.n_classes, random_state=0)
                        out[key + "|ds_semi"] = ds.fit_predict_proba(both, y)
                        if (v.y >= 0).sum() >= 2:
                            adv = wsagg.AdversarialLogLoss()
                            adv.fit(both, y)
                            out[key + "|adv"] = adv.predict_proba(L.to_sparse())
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--record")
    g.add_argument("--check")
    p.add_argument("--data-home", default=None)
    p.add_argument("--atol", type=float, default=1e-10)
    a = p.parse_args(argv)
    out = _outputs(a.data_home)
    if a.record:
        np.savez_compressed(a.record, **out)
        print(f"recorded {len(out)} posteriors to {a.record}")
        return 0
    ref = dict(np.load(a.check, allow_pickle=False))
    worst = 0.0
    bad = []
    for key in sorted(set(ref) | set(out)):
        if key not in ref or key not in out:
            bad.append(f"{key}: only in {'reference' if key in ref else 'new run'}")
            continue
        if ref[key].shape != out[key].shape:
            bad.append(f"{key}: shape {ref[key].shape} -> {out[key].shape}")
            continue
        diff = float(np.max(np.abs(ref[key] - out[key]), initial=0.0))
        worst = max(worst, diff)
        if diff > a.atol:
            bad.append(f"{key}: max |diff| = {diff:.3g}")
    print(f"{len(ref)} reference posteriors, largest |diff| = {worst:.3g} (atol {a.atol:g})")
    for line in bad:
        print("  MISMATCH", line)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
