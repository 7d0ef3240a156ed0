"""Issue 13, the command line under faults: overwrite-the-input, truncated and bomb files,
SIGTERM / SIGINT mid-write (real subprocesses and signals), unwritable and missing
directories. Each case asserts the exit status, a one-line message, the input's sha256
unchanged and no debris left behind."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from wsagg import cli
from wsagg.cli import main

VOTES = pd.DataFrame({"item": [0, 0, 1, 1, 2], "source": ["a", "b", "a", "b", "a"],
                      "label": [1, 1, 0, 1, 0]})
MAJ = ["--method", "majority"]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _one_line_error(capsys, args, code=2):
    try:
        rc = main(args)
    except BaseException as err:  # KeyboardInterrupt / SystemExit must not escape main
        pytest.fail(f"main raised {type(err).__name__}: {err}")
    assert rc == code
    err = capsys.readouterr().err.strip()
    assert err.startswith("wsagg:") and "\n" not in err and "Traceback" not in err, err
    return err


def _listing(d: Path) -> list[str]:
    return sorted(str(p.relative_to(d)) for p in d.rglob("*"))


# ------------------------------------------------------------- defect 1: the input is safe


@pytest.mark.parametrize("command", ["aggregate", "analyze"])
@pytest.mark.parametrize("how", ["plain", "dotdot", "symlink", "hardlink"])
@pytest.mark.parametrize("force", [False, True])
def test_defect1_no_command_overwrites_its_input(tmp_path, capsys, command, how, force):
    src = tmp_path / "v.csv"
    VOTES.to_csv(src, index=False)
    (tmp_path / "sub").mkdir()
    out = {
        "plain": src,
        "dotdot": tmp_path / "sub" / ".." / "v.csv",
        "symlink": tmp_path / "link.csv",
        "hardlink": tmp_path / "hard.csv",
    }[how]
    if how == "symlink":
        out.symlink_to(src)
    elif how == "hardlink":
        os.link(src, out)
    before = _sha(src)
    listing = _listing(tmp_path)
    args = [command, str(src), "-o", str(out)] + (MAJ if command == "aggregate" else [])
    err = _one_line_error(capsys, args + (["--force"] if force else []))
    assert "refusing to overwrite the input" in err
    assert _sha(src) == before and _listing(tmp_path) == listing


def test_defect2_cli_minus_one_label_is_an_abstain(tmp_path):
    src = tmp_path / "v.csv"
    pd.DataFrame({"item": [0, 0, 0, 1], "source": [0, 1, 2, 0],
                  "label": [1, -1, -1, 0]}).to_csv(src, index=False)
    out = tmp_path / "o.csv"
    assert main(["aggregate", str(src), "-o", str(out), *MAJ]) == 0
    assert list(pd.read_csv(out).columns) == ["item", "p_0", "p_1", "label"]  # no p_-1


# --------------------------------------------------- defect 8: reading input never crashes


def _write_npy_header(path: Path, shape, dtype="<i8", extra: bytes = b"") -> None:
    from numpy.lib import format as npf

    with open(path, "wb") as fh:
        npf.write_array_header_1_0(fh, {"descr": dtype, "fortran_order": False,
                                        "shape": shape})
        fh.write(extra)


def test_defect8_bad_files_are_one_line_errors(tmp_path, capsys, monkeypatch):
    L = np.array([[0, 1, -1], [1, 1, 0]] * 50)
    good = tmp_path / "good.npz"
    np.savez(good, L=L)
    cases = {}
    trunc = tmp_path / "trunc.npz"
    trunc.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    cases[trunc] = "not a valid .npz"
    huge = tmp_path / "huge.npy"  # header declares 1e6 x 1e6 int64 (7 TiB)
    _write_npy_header(huge, (10**6, 10**6), extra=b"\0" * 64)
    cases[huge] = "truncated or corrupt"
    member = tmp_path / "member.npz"  # an npz whose member declares more than it holds
    _write_npy_header(tmp_path / "L.npy", (10**6, 10**6), extra=b"\0" * 64)
    with zipfile.ZipFile(member, "w") as zf:
        zf.write(tmp_path / "L.npy", "L.npy")
    cases[member] = "truncated or corrupt"
    garbage = tmp_path / "garbage.npy"
    garbage.write_bytes(b"not an array at all")
    cases[garbage] = "not a valid .npy"
    pq = tmp_path / "bad.parquet"
    pq.write_bytes(b"PAR1" + b"\0" * 50)
    cases[pq] = "not a valid Parquet"
    flipped = tmp_path / "crc.npz"  # a flipped byte in the compressed stream
    np.savez_compressed(flipped, L=np.arange(20000).reshape(-1, 4) % 3)
    raw = bytearray(flipped.read_bytes())
    raw[200] ^= 0xFF
    flipped.write_bytes(bytes(raw))
    cases[flipped] = "corrupt"
    for path, match in cases.items():
        before = _sha(path)
        for command in (["aggregate", str(path), "-o", str(tmp_path / "o.csv"), *MAJ],
                        ["analyze", str(path)]):
            err = _one_line_error(capsys, command)
            assert match in err, (path.name, err)
        assert _sha(path) == before
    assert not (tmp_path / "o.csv").exists()


def test_defect8_bombs_are_refused_before_allocating(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WSAGG_MEMORY_BUDGET", "64M")
    bomb = tmp_path / "bomb.npz"  # 200 MB of zeros in ~200 KB
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open("L.npy", "w", force_zip64=True) as fh:
            np.lib.format.write_array_header_1_0(
                fh, {"descr": "|i1", "fortran_order": False, "shape": (2 * 10**7, 10)})
            block = b"\0" * 2**20
            for _ in range(200):
                fh.write(block)
            fh.write(b"\0" * (2 * 10**8 - 200 * 2**20))
    assert bomb.stat().st_size < 2**20
    err = _one_line_error(capsys, ["aggregate", str(bomb), "-o", str(tmp_path / "o.csv"),
                                   *MAJ])
    assert "memory budget" in err
    monkeypatch.setattr(cli, "_BOMB_MIN_BYTES", 2**20)  # the ratio guard, on a small bomb
    monkeypatch.setenv("WSAGG_MEMORY_BUDGET", "64G")
    err = _one_line_error(capsys, ["analyze", str(bomb)])
    assert "decompression bomb" in err
    # a 1 KB sparse npz declaring 1e8 items x 4 sources
    S = sp.coo_matrix((np.array([1, 2]), (np.array([0, 5]), np.array([0, 1]))),
                      shape=(10**8, 4))
    sparse = tmp_path / "tall.npz"
    sp.save_npz(sparse, S)
    assert sparse.stat().st_size < 2048
    monkeypatch.setenv("WSAGG_MEMORY_BUDGET", "1G")
    err = _one_line_error(capsys, ["aggregate", str(sparse), "-o", str(tmp_path / "o.csv"),
                                   *MAJ])
    assert "100,000,000 items" in err and "memory budget" in err
    assert _listing(tmp_path) == ["bomb.npz", "tall.npz"]


def test_defect8_interrupt_and_unexpected_errors_are_one_line(tmp_path, capsys, monkeypatch):
    src = tmp_path / "v.csv"
    VOTES.to_csv(src, index=False)
    out = tmp_path / "o.csv"
    import wsagg.aggregation.majority as majority

    def interrupted(self, *a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(majority.MajorityVote, "_fit", interrupted)
    err = _one_line_error(capsys, ["aggregate", str(src), "-o", str(out), *MAJ], code=130)
    assert "interrupted" in err

    def broken(self, *a, **k):
        raise RuntimeError("solver exploded")

    monkeypatch.setattr(majority.MajorityVote, "_fit", broken)
    err = _one_line_error(capsys, ["aggregate", str(src), "-o", str(out), *MAJ])
    assert "RuntimeError: solver exploded" in err
    assert _listing(tmp_path) == ["v.csv"]


# ---------------------------------------- defect 9: signals mid-write, permissions, dirs


def _big_input(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    src = tmp_path / "big.npy"
    np.save(src, rng.integers(-1, 2, (600_000, 3)).astype(np.int8))
    return src


@pytest.mark.parametrize(("sig", "code", "force"),
                         [(signal.SIGTERM, 143, False), (signal.SIGINT, 130, True)])
def test_defect9_signal_mid_write_leaves_no_debris(tmp_path, sig, code, force):
    src = _big_input(tmp_path)
    out_dir = tmp_path / "new" / "dir"  # missing: created for the output, removed again
    out = out_dir / "out.csv"
    if force:
        out_dir.mkdir(parents=True)
        out.write_text("previous result\n")
    listing, before = _listing(tmp_path), _sha(src)
    cmd = [sys.executable, "-m", "wsagg", "aggregate", str(src), "-o", str(out), *MAJ]
    proc = subprocess.Popen(cmd + (["--force"] if force else []), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONWARNINGS": "ignore"})
    deadline = time.monotonic() + 60
    seen = False
    while time.monotonic() < deadline and proc.poll() is None:
        if out_dir.is_dir() and any(p.name.endswith(".tmp") for p in out_dir.iterdir()):
            seen = True
            time.sleep(0.05)  # well inside the write
            proc.send_signal(sig)
            break
        time.sleep(0.002)
    _, stderr = proc.communicate(timeout=60)
    assert seen, "the write finished before the signal could be sent"
    assert proc.returncode == code, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "nothing was written" in lines[0], stderr
    assert _sha(src) == before
    assert _listing(tmp_path) == listing  # no temporary file, no directory made for it
    if force:
        assert out.read_text() == "previous result\n"


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_defect9_outputs_have_the_umask_permissions(tmp_path, umask):
    src = tmp_path / "v.csv"
    VOTES.to_csv(src, index=False)
    old = os.umask(umask)
    try:
        for name in ("o.csv", "o.parquet", "o.npz"):
            assert main(["aggregate", str(src), "-o", str(tmp_path / name), *MAJ]) == 0
            assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask
        assert main(["analyze", str(src), "-o", str(tmp_path / "d.csv")]) == 0
        assert (tmp_path / "d.csv").stat().st_mode & 0o777 == 0o666 & ~umask
    finally:
        os.umask(old)


def test_defect9_unwritable_and_missing_directories(tmp_path, capsys, monkeypatch):
    src = tmp_path / "v.csv"
    VOTES.to_csv(src, index=False)
    before = _sha(src)
    if os.geteuid() == 0:  # root writes through permission bits: use a read-only filesystem
        target = Path("/proc/wsagg-test/o.csv")
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        target = ro / "o.csv"
    err = _one_line_error(capsys, ["aggregate", str(src), "-o", str(target), *MAJ])
    assert "cannot" in err or "Permission" in err or "Read-only" in err
    err = _one_line_error(capsys, ["aggregate", str(tmp_path / "no" / "v.csv"), "-o",
                                   str(tmp_path / "o.csv"), *MAJ])
    assert "does not exist" in err
    # a failed write removes the directories it made
    monkeypatch.setattr(pd.DataFrame, "to_csv", lambda *a, **k: (_ for _ in ()).throw(
        OSError("No space left on device")))
    err = _one_line_error(capsys, ["aggregate", str(src), "-o",
                                   str(tmp_path / "x" / "y" / "o.csv"), *MAJ])
    assert "No space left" in err
    assert _sha(src) == before
    assert not (tmp_path / "x").exists()
    if os.geteuid() != 0:
        (tmp_path / "ro").chmod(0o755)
