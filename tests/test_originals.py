"""Originals untouched (issue 5 §2): every input file has the same bytes, mode and mtime after a
normal run, a run with failing (hostile) documents and a run SIGKILLed mid-way then run again; the
only new paths are each dossier's synthese.json and ROOT/.synthese/; no temp file is left.
"""
from __future__ import annotations

import hashlib
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import hostile_docs as h
from samples.generate import make_corpus

REPO = Path(__file__).resolve().parent.parent


def snapshot(root: Path) -> dict[str, tuple]:
    """rel path -> (type, mode, size, mtime_ns, sha256 | link target), without following links."""
    out = {}
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in dirs + files:
            p = Path(folder) / name
            st = os.lstat(p)
            rel = p.relative_to(root).as_posix()
            if stat.S_ISREG(st.st_mode):
                what = hashlib.sha256(p.read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                what = os.readlink(p)
            else:
                what = None
            mtime = st.st_mtime_ns if not stat.S_ISDIR(st.st_mode) else None  # a folder's mtime moves with our outputs
            out[rel] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_size if not stat.S_ISDIR(st.st_mode) else None,
                        mtime, what)
    return out


def ours(rel: str) -> bool:
    parts = rel.split("/")
    return parts[0] == ".synthese" or (len(parts) == 2 and parts[1] == "synthese.json")


def check(root: Path, before: dict) -> None:
    after = snapshot(root)
    originals = {k: v for k, v in after.items() if not ours(k)}
    assert originals == before, sorted(set(originals.items()) ^ set(before.items()))[:5]
    assert not list(root.rglob(".synthese-*.tmp"))
    assert not [k for k in after if "synthese" in k and not ours(k)]


def start(root: Path, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "cli.py", "run", str(root), "--workers", "2", "--no-progress",
                             "--doc-timeout-base", "15", *args],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_originals_are_untouched_by_normal_failing_and_killed_runs(tmp_path):
    root = tmp_path / "root"
    make_corpus(root, 5, seed=21, scan_ratio=0.1)
    d = root / "hostile"
    d.mkdir()
    h.empty_file(d / "empty.pdf")
    h.truncated_pdf(d / "truncated.pdf")
    h.garbage_pdf(d / "garbage.pdf")
    h.encrypted_pdf(d / "encrypted.pdf", "secret")
    h.absurd_mediabox_pdf(d / "absurd.pdf")
    h.png_bomb(d / "bomb.png", 20_000)
    h.inflating_pdf(d / "inflate.pdf", gib=1.0)
    h.fifo(d / "fifo.pdf")
    os.symlink(root / "P0001", d / "link_to_dossier")
    h.small_text_pdf(d / "ok.pdf", "Consultation du 5 mai 2024 : traitement par amlodipine 5 mg.")
    os.utime(d / "ok.pdf", ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))  # an old mtime must stay old
    before = snapshot(root)
    dossiers = sorted(p.name for p in root.iterdir() if p.is_dir())

    # Killed: SIGKILL once two dossiers are written, then a run to the end.
    proc = start(root, "--doc-memory-mb", "512")
    deadline = time.monotonic() + 120
    while proc.poll() is None and len(list(root.glob("*/synthese.json"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    written = len(list(root.glob("*/synthese.json")))
    assert written < len(dossiers)
    assert {k: v for k, v in snapshot(root).items() if not ours(k) and ".synthese-" not in k} == before

    rerun = start(root, "--doc-memory-mb", "512")
    assert rerun.wait(timeout=240) == 1, rerun.stderr.read()[-2000:]  # the hostile dossier fails some documents
    check(root, before)
    assert sorted(p.parent.name for p in root.glob("*/synthese.json")) == dossiers

    # Normal and failing again, everything read anew.
    full = start(root, "--full", "--doc-memory-mb", "512")
    assert full.wait(timeout=240) == 1
    check(root, before)
