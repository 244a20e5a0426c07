"""Crash safety (issue 5 §4): a real `synthese run` killed with SIGKILL at random moments, then run again,
ends exactly where an uninterrupted run ends: same synthese.json files, same ledger facts, no temp
file left, no dossier recorded twice, no worker left behind.
"""
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb

from helpers_runs import ledger_facts, outputs, text_corpus

REPO = Path(__file__).resolve().parent.parent
KILLS = 4
SEED = int(os.environ.get("SYNTHESE_CRASH_SEED", "20261123"))


def start(root: Path, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "cli.py", "run", str(root), "--workers", "2", "--no-progress", *args],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def workers_of(pid: int) -> list[int]:
    """Worker processes started by driver `pid` that are still alive."""
    found = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            argv = (p / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"extractor.batch.workers" in argv and str(pid).encode() in argv[-3:]:
            found.append(int(p.name))
    return found


def test_sigkill_at_random_moments_then_rerun_equals_an_uninterrupted_run(tmp_path):
    rng = random.Random(SEED)
    reference = text_corpus(tmp_path / "reference", 16, seed=3)
    killed = tmp_path / "killed"
    shutil.copytree(reference, killed)

    # The reference run also tells how long start-up takes on this machine.
    t0 = time.monotonic()
    ref = start(reference)
    first = None
    while ref.poll() is None:
        if first is None and any(reference.glob("*/synthese.json")):
            first = time.monotonic() - t0
        time.sleep(0.05)
    assert ref.returncode == 0, ref.stderr.read()
    duration = time.monotonic() - t0
    first = first or duration

    # Kill 1 lands during start-up (imports, NLP load); the others once the run has written 1 to 3
    # more dossiers, plus up to 0.3 s: anywhere between a synthese.json and its ledger commit.
    kills = []
    for i in range(KILLS):
        before = len(list(killed.glob("*/synthese.json")))
        want = before + rng.randint(1, 3)
        proc = start(killed)
        t = time.monotonic()
        if i == 0:
            time.sleep(first * rng.uniform(0.2, 0.9))
        else:
            while proc.poll() is None and len(list(killed.glob("*/synthese.json"))) < want:
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 0.3))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills.append(round(time.monotonic() - t, 2))
            deadline = time.monotonic() + 10
            while workers_of(proc.pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not workers_of(proc.pid), "workers outlived their killed driver"
    assert len(kills) >= KILLS - 1, "runs ended before their kill: the corpus is too small for this machine"
    done_before_final = len(outputs(killed))

    final = start(killed)
    assert final.wait(timeout=300) == 0, final.stderr.read()
    print(f"seed {SEED}: reference run {duration:.1f} s (first dossier at {first:.1f} s), "
          f"SIGKILL after {kills} s, {done_before_final}/16 dossiers written before the last run")

    assert outputs(killed) == outputs(reference) and len(outputs(reference)) == 16
    assert ledger_facts(killed) == ledger_facts(reference)
    assert not [p for p in killed.rglob(".synthese-*.tmp")]
    con = duckdb.connect(str(killed / ".synthese" / "ledger.duckdb"), read_only=True)
    twice = con.execute("SELECT dossier_id FROM dossiers GROUP BY dossier_id HAVING count(*) > 1").fetchall()
    runs = con.execute("SELECT count(*), count(finished_at) FROM runs").fetchone()
    con.close()
    assert twice == []  # a dossier recorded (hence finished) is never redone
    # every killed run left an unfinished row (unless killed before it opened the ledger)
    assert runs[1] == 1 + (KILLS - len(kills)) and runs[0] <= KILLS + 1

    again = start(killed, "--report", str(tmp_path / "again.json"))
    assert again.wait(timeout=120) == 0
    assert json.loads((tmp_path / "again.json").read_text())["dossiers_skipped"] == 16


def test_sigint_stops_cleanly_with_exit_130(tmp_path):
    root = text_corpus(tmp_path / "root", 6, seed=5)
    proc = start(root, "--report", str(tmp_path / "run.json"))
    time.sleep(3.0)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    report = json.loads((tmp_path / "run.json").read_text())
    assert report["exit_code"] == 130
    assert not workers_of(proc.pid)


def test_a_damaged_ledger_stops_the_run_with_exit_3_and_says_how_to_rebuild(tmp_path):
    root = tmp_path / "root"
    (root / "D0").mkdir(parents=True)
    (root / ".synthese").mkdir()
    (root / ".synthese" / "ledger.duckdb").write_bytes(b"not a duckdb file" * 512)
    proc = subprocess.run([sys.executable, "cli.py", "run", str(root), "--no-progress"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3
    assert "synthese ledger rebuild" in proc.stderr
