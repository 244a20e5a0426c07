"""Privacy (issue 5 §3): what a run leaves outside synthese.json holds no document text and no
patient identity; temporary files are private and removed, even after SIGKILL; outputs are 0640
(or --output-mode).

Canaries: the invented identities printed on the generated documents (name, IPP, birth date), and
a made-up surname put into a letter's text, its PDF metadata (Title/Author/Subject: pdfminer's
messages quote metadata) and two broken PDFs. Every VARCHAR column of every table of the ledger
is searched. A --store-text run is the positive control: there the canary must be found.
"""
from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

import hostile_docs as h
from samples.generate import make_corpus

REPO = Path(__file__).resolve().parent.parent
CANARY = "Zorglubovitch"


def canaries(golds) -> list[str]:
    out = [CANARY]
    for g in golds:
        if g.identity is None:
            continue
        first, last = g.identity.name.split(" ", 1)
        y, m, d = g.identity.birth_date.split("-")
        out += [g.identity.name, last, g.identity.ipp, g.identity.birth_date, f"{d}/{m}/{y}", f"{d}.{m}.{y}"]
    return out


def ledger_hits(db: Path, needles: list[str]) -> list[tuple]:
    """(table, column, needle) for every needle found in any VARCHAR column of any table."""
    con = duckdb.connect(str(db), read_only=True)
    hits = []
    try:
        tables = [r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' AND table_type = 'BASE TABLE'"
        ).fetchall()]
        assert {"runs", "documents", "dossiers", "dossier_state", "document_text"} <= set(tables)
        for t in tables:
            cols = [r[0] for r in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ? AND data_type = 'VARCHAR'", [t]
            ).fetchall()]
            for col in cols:
                for n in needles:
                    q = f'SELECT count(*) FROM "{t}" WHERE strpos(lower("{col}"), lower(?)) > 0'
                    if con.execute(q, [n]).fetchone()[0]:
                        hits.append((t, col, n))
    finally:
        con.close()
    return hits


def ours_in(tmp: Path) -> list[Path]:
    return [p for p in tmp.iterdir() if p.name.startswith(("synthese", "tmp", "tess"))]


def world_readable(tmp: Path) -> list[str]:
    """Paths under `tmp` another user could read: readable by others and reachable through folders they may enter."""
    found = []
    for folder, dirs, files in os.walk(tmp):
        if not os.stat(folder).st_mode & stat.S_IXOTH:
            dirs[:] = []
            continue
        for name in dirs + files:
            if os.lstat(Path(folder) / name).st_mode & stat.S_IROTH:
                found.append(os.path.join(folder, name))
    return found


def run_cli(root: Path, tmp: Path, *args, **popen) -> subprocess.Popen:
    env = dict(os.environ, TMPDIR=str(tmp))
    return subprocess.Popen([sys.executable, "cli.py", "run", str(root), "--workers", "2", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    base = tmp_path_factory.mktemp("privacy")
    root = base / "root"
    golds = make_corpus(root, 3, seed=11, scan_ratio=0.3)
    for g in root.glob("*.gold.json"):  # the gold files name the patient: keep them out of the root
        g.rename(base / g.name)
    d = root / "CANARY"
    d.mkdir()
    h.pdf_with_metadata(d / "lettre.pdf", [f"Madame {CANARY} Ermengarde, née le 02/03/1941",
                                           "Allergie à la pénicilline.", "Traitement : ramipril 5 mg le matin."],
                        title=f"Dossier {CANARY}", author=f"Dr {CANARY}")
    h.broken_pdf_with_metadata(d / "broken.pdf", CANARY)
    cut = h.pdf_with_metadata(d / "cut.pdf", [f"Monsieur {CANARY}"] * 20, title=CANARY, author=CANARY)
    cut.write_bytes(cut.read_bytes()[:-400])  # no xref, no trailer: pdfium fails, pdfplumber is tried
    tmp = base / "tmp"
    tmp.mkdir()
    return dict(base=base, root=root, tmp=tmp, needles=canaries(golds))


def test_logs_progress_report_and_ledger_hold_no_text_or_identity(corpus):
    root, tmp, needles = corpus["root"], corpus["tmp"], corpus["needles"]
    report = corpus["base"] / "report.json"
    proc = run_cli(root, tmp, "--progress", "--verbose", "--report", str(report))
    stdout, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 1, stderr[-2000:]  # the two broken PDFs fail
    assert "dossiers" in stderr and "failed" in stderr  # the progress bar and the log lines were there
    for where, text in (("stdout", stdout), ("stderr", stderr), ("report", report.read_text())):
        assert not [n for n in needles if n.lower() in text.lower()], where
    assert ledger_hits(root / ".synthese" / "ledger.duckdb", needles) == []
    # Error messages in the synthesis are ours, without the canary in the broken files.
    canary = (root / "CANARY" / "synthese.json").read_text()
    assert '"code": "truncated"' in canary and canary.count(CANARY) == canary.count(f"{CANARY} Ermengarde")

    # Temp files: none left, nothing of ours world-readable; outputs 0640, state folder 0700, report 0600.
    assert ours_in(tmp) == [] and world_readable(tmp) == []
    for out in root.glob("*/synthese.json"):
        assert stat.S_IMODE(out.stat().st_mode) == 0o640
    assert stat.S_IMODE((root / ".synthese").stat().st_mode) == 0o700
    assert stat.S_IMODE(report.stat().st_mode) == 0o600


def _reading_workers(driver: int) -> list[int]:
    """The driver's worker processes that have loaded tesseract (warm-up done: reading documents)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
            if parent == driver and "libtesseract" in Path(f"/proc/{entry.name}/maps").read_text():
                found.append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def test_a_sigkilled_run_leaves_nothing_readable_and_the_next_run_cleans_up(corpus):
    """Killed while its workers OCR: since issue 15 no page image is ever written, so nothing at all
    is left in the temp folder (before, a 0700 folder per killed worker, swept by the next run)."""
    root, tmp = corpus["root"], corpus["tmp"]
    proc = run_cli(root, tmp, "--full", "--no-progress")
    deadline = time.monotonic() + 120
    while proc.poll() is None and not _reading_workers(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # into the documents
    assert proc.poll() is None, "the run ended before it could be killed mid-reading"
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    time.sleep(1.0)  # the workers die with their driver (PR_SET_PDEATHSIG)
    assert world_readable(tmp) == []
    assert ours_in(tmp) == []

    rerun = run_cli(root, tmp, "--full", "--no-progress")
    _, stderr = rerun.communicate(timeout=240)
    assert rerun.returncode == 1, stderr[-2000:]
    assert ours_in(tmp) == [] and world_readable(tmp) == []


def test_output_mode_and_store_text_positive_control(corpus):
    root, tmp, needles = corpus["root"], corpus["tmp"], corpus["needles"]
    bad = run_cli(root, tmp, "--output-mode", "0777")
    assert bad.wait(timeout=60) == 2

    proc = run_cli(root, tmp, "--full", "--no-progress", "--store-text", "--output-mode", "0600")
    _, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 1, stderr[-2000:]
    for out in root.glob("*/synthese.json"):
        assert stat.S_IMODE(out.stat().st_mode) == 0o600
    hits = ledger_hits(root / ".synthese" / "ledger.duckdb", needles)
    # The canary test can fail: with --store-text the page text, identity included, is in the ledger.
    assert ("document_text", "text", CANARY) in hits
    assert {n for t, c, n in hits} > {CANARY} and {t for t, c, n in hits} == {"document_text"}
    assert ours_in(tmp) == []
