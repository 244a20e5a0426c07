"""The nightly batch (issue 4): incremental runs, the document cache, failures as values, the lock, reports.

Real worker processes and a real duckdb ledger on text PDFs made with reportlab. Most tests run
the real reader without the NLP stages (`test_workers:read_only`) so they check the machinery;
the last ones run the whole pipeline through the CLI.
"""
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from extractor.batch.runner import RunOptions, root_lock, run
from extractor.config import Settings
from extractor.errors import CouldNotRun
from helpers_docs import PARAGRAPH, text_pdf

REPO = Path(__file__).resolve().parent.parent
READ_ONLY = "test_workers:read_only"


def make_root(root: Path, dossiers: int = 3, docs: int = 2) -> Path:
    for d in range(dossiers):
        folder = root / f"D{d}"
        folder.mkdir(parents=True)
        for k in range(docs):
            text_pdf(folder / f"doc{k}.pdf", [PARAGRAPH + [f"Note {d}.{k} du dossier"]])
    return root


def go(root: Path, settings: Settings | None = None, **kw):
    kw.setdefault("workers", 2)
    kw.setdefault("process", READ_ONLY)
    return run(RunOptions(root=root, progress=False, **kw), settings or Settings())


def synthesis(root: Path, dossier: str) -> dict:
    data = json.loads((root / dossier / "synthese.json").read_text())
    data.pop("generated_at")
    return data


def test_only_changed_dossiers_are_processed_and_only_changed_documents_read(tmp_path):
    root = make_root(tmp_path / "root")
    first = go(root)
    assert (first.dossiers_processed, first.dossiers_skipped, first.documents_total) == (3, 0, 6)
    assert first.exit_code == 0

    again = go(root)
    assert (again.dossiers_processed, again.dossiers_skipped, again.documents_total) == (0, 3, 0)
    assert "worker_start_max" not in again.stage_seconds  # nothing to read: no worker started

    os.utime(root / "D0" / "doc0.pdf")  # a new mtime, the same bytes: hashed again, still unchanged
    assert go(root).dossiers_skipped == 3

    text_pdf(root / "D1" / "doc1.pdf", [PARAGRAPH + ["Une note modifiée"]])  # changed content
    changed = go(root)
    assert (changed.dossiers_processed, changed.documents_total, changed.documents_cached) == (1, 2, 1)

    (root / "D2" / "doc0.pdf").unlink()  # a removed document: summarised again, nothing to read
    removed = go(root)
    assert (removed.dossiers_processed, removed.documents_total, removed.documents_cached) == (1, 1, 1)
    assert [d["path"] for d in synthesis(root, "D2")["documents"]] == ["doc1.pdf"]

    text_pdf(root / "D0" / "doc9.pdf", [PARAGRAPH])  # an added document
    added = go(root)
    assert (added.dossiers_processed, added.documents_total, added.documents_cached) == (1, 3, 2)

    rekeyed = go(root, Settings(ocr_dpi=200))  # a reading setting changed: every result is stale
    assert (rekeyed.dossiers_processed, rekeyed.documents_cached) == (3, 0)

    con = duckdb.connect(str(root / ".synthese" / "ledger.duckdb"), read_only=True)
    runs = con.execute("SELECT dossiers_processed, dossiers_skipped FROM runs ORDER BY started_at").fetchall()
    assert runs == [(3, 0), (0, 3), (0, 3), (1, 2), (1, 2), (1, 2), (3, 0)]
    assert con.execute("SELECT count(*) FROM documents WHERE cached").fetchone() == (4,)


def test_an_incremental_result_equals_a_full_one(tmp_path):
    root = make_root(tmp_path / "root", dossiers=2, docs=3)
    go(root)
    text_pdf(root / "D1" / "doc7.pdf", [PARAGRAPH + ["Ajout"]])
    assert go(root).documents_cached == 3
    fresh = tmp_path / "fresh"
    shutil.copytree(root, fresh, ignore=shutil.ignore_patterns(".synthese", "synthese.json"))
    go(fresh)
    for d in ("D0", "D1"):
        assert synthesis(root, d) == synthesis(fresh, d)


def test_full_only_and_since_narrow_or_force_a_run(tmp_path):
    root = make_root(tmp_path / "root")
    go(root)
    full = go(root, full=True)
    assert (full.dossiers_processed, full.documents_cached) == (3, 0)  # --full reads every document again

    only = go(root, full=True, only=["D1"])
    assert (only.dossiers_total, only.dossiers_processed) == (1, 1)
    from extractor.errors import BadArguments

    with pytest.raises(BadArguments, match="NOPE"):
        go(root, only=["NOPE"])

    old = time.time() - 3 * 86400
    for f in root.rglob("*"):
        os.utime(f, (old, old))
    for d in root.iterdir():
        os.utime(d, (old, old))
    os.utime(root / "D2" / "doc1.pdf")
    since = go(root, full=True, since=datetime.now() - timedelta(days=1))
    assert (since.dossiers_total, since.dossiers_processed) == (1, 1)


def test_the_cache_holds_no_page_text_unless_asked_and_is_private(tmp_path):
    root = make_root(tmp_path / "root", dossiers=1, docs=2)
    go(root)
    cache = root / ".synthese" / "cache"
    files = [p for p in cache.rglob("*.json")]
    assert len(files) == 2
    assert oct(cache.stat().st_mode & 0o777) == "0o700"
    for f in files:
        assert oct(f.stat().st_mode & 0o777) == "0o600"
        assert oct(f.parent.stat().st_mode & 0o777) == "0o700"
        assert "pénicilline" not in f.read_text() and "Antécédents" not in f.read_text()
    # A --store-text run does not take the stripped entries: it reads again and keeps the text.
    rep = go(root, Settings(store_text=True), full=False, only=["D0"])
    assert rep.dossiers_skipped == 1
    text_pdf(root / "D0" / "doc2.pdf", [PARAGRAPH + ["Encore une note"]])
    rep = go(root, Settings(store_text=True))
    assert (rep.documents_total, rep.documents_cached) == (3, 0)
    with_text = [f for f in cache.rglob("*-text.json")]
    assert len(with_text) == 3 and all("pénicilline" in f.read_text() for f in with_text)
    con = duckdb.connect(str(root / ".synthese" / "ledger.duckdb"), read_only=True)
    texts = con.execute("SELECT text FROM document_text").fetchall()
    con.close()
    assert len(texts) == 3 and all("pénicilline" in t for (t,) in texts)


def test_a_document_that_hangs_fails_alone_and_shows_in_the_synthesis(tmp_path):
    root = make_root(tmp_path / "root", dossiers=2, docs=1)
    (root / "D0" / "hang.pdf").write_bytes(b"%PDF-1.4 hangs forever")
    settings = Settings(doc_timeout_base=1.0)
    rep = go(root, settings, process="test_workers:fake_process", report=tmp_path / "run.json")
    assert rep.exit_code == 1 and rep.failures_by_reason == {"timeout": 1}
    assert (rep.dossiers_processed, rep.documents_ok, rep.documents_failed, rep.dossiers_failed) == (2, 2, 1, 1)
    s = synthesis(root, "D0")
    hang = next(d for d in s["documents"] if d["path"] == "hang.pdf")
    assert (hang["outcome"], hang["error"], hang["size"]) == ("failed", "timeout", 22)
    assert len(hang["sha256"]) == 64
    assert any(w["document"] == "hang.pdf" and w["code"] == "timeout" for w in s["warnings"])
    report = json.loads((tmp_path / "run.json").read_text())
    assert report["failures_by_reason"] == {"timeout": 1} and report["exit_code"] == 1
    assert {"plan", "summarise", "ledger"} <= set(report["stage_seconds"])
    con = duckdb.connect(str(root / ".synthese" / "ledger.duckdb"), read_only=True)
    assert con.execute("SELECT dossier_id, error FROM documents WHERE outcome = 'failed'").fetchall() == [
        ("D0", "timeout")]
    con.close()
    # A timeout may be the moment's: the next run tries that document once more (the other comes
    # from the cache), then leaves the dossier alone until something changes.
    retry = go(root, settings, process="test_workers:fake_process")
    assert (retry.dossiers_processed, retry.documents_cached, retry.documents_failed) == (1, 1, 1)
    assert go(root, settings, process="test_workers:fake_process").dossiers_skipped == 2


def _cli(*args, **kw):
    return subprocess.run([sys.executable, "cli.py", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120, **kw)


def test_a_second_run_on_the_same_root_exits_3_or_waits(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    with root_lock(root):
        with pytest.raises(CouldNotRun, match="another synthese run"):
            go(root)
        proc = _cli("run", str(root), "--no-progress")
        assert proc.returncode == 3
        assert "another synthese run" in proc.stderr and "--wait" in proc.stderr
        waiting = subprocess.Popen([sys.executable, "cli.py", "run", str(root), "--wait", "--no-progress"],
                                   cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(1.5)
        assert waiting.poll() is None  # still waiting for the lock
    assert waiting.wait(timeout=60) == 0


def test_bad_arguments_exit_2(tmp_path):
    assert _cli("run", str(tmp_path / "missing"), "--no-progress").returncode == 2
    assert _cli("run", str(tmp_path), "--workers", "0").returncode == 2


def test_own_temp_files_left_by_a_killed_run_are_removed(tmp_path):
    root = make_root(tmp_path / "root", dossiers=1, docs=1)
    go(root)
    (root / "D0" / ".synthese-abc123.tmp").write_bytes(b"half a synthesis")
    text_pdf(root / "D0" / "doc5.pdf", [PARAGRAPH])
    go(root)
    assert not list(root.rglob(".synthese-*.tmp"))
    assert not any(w["code"] in ("temp_file", "output") for w in synthesis(root, "D0")["warnings"])


def test_progress_lines_when_not_a_tty_carry_counts_only(tmp_path, caplog):
    import logging

    from extractor.batch import progress

    root = make_root(tmp_path / "root", dossiers=2, docs=1)
    caplog.set_level(logging.INFO, logger="synthese")
    orig = progress.make_progress
    progress.make_progress = lambda mode, total, every=0.0: orig(False, total, every=0.0)
    try:
        go(root)
    finally:
        progress.make_progress = orig
    lines = [r.getMessage() for r in caplog.records if r.name == "synthese.progress"]
    assert lines and "dossiers" in lines[-1] and "pages/s" in lines[-1]
    assert not any(".pdf" in r.getMessage() or "Antécédents" in r.getMessage() for r in caplog.records)
