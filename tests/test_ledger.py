"""The ledger is a real duckdb file that auditors query with SQL."""
from datetime import datetime, timezone

import duckdb
import pytest

from extractor.errors import CouldNotRun
from extractor.batch.ledger import Ledger
from models.report import RunReport
from models.synthesis import DocumentInfo, HistoryEntry, Synthesis, Warning


def test_runs_documents_and_dossiers_are_recorded_and_queryable(tmp_path):
    path = tmp_path / "ledger.duckdb"
    report = RunReport(run_id="r1", started_at=datetime.now(timezone.utc), extractor_version="t", root="/x")
    s = Synthesis(
        dossier_id="P1", generated_at=datetime.now(timezone.utc), extractor_version="t",
        documents=[DocumentInfo(path="a.pdf", sha256="1", pages=2, ocr_pages=2, doc_type="courrier"),
                   DocumentInfo(path="b.pdf", sha256="2", outcome="failed", error="encrypted")],
        history=[HistoryEntry(label="hypertension artérielle", code="I10")], history_status="known",
        warnings=[Warning(document="b.pdf", code="encrypted", message="password"),
                  Warning(document="lien.pdf", code="symlink", message="not read: symlink")],
    )
    empty = Synthesis(dossier_id="P2", generated_at=datetime.now(timezone.utc), extractor_version="t")
    with Ledger(path) as led:
        led.start_run(report)
        led.record_dossier("r1", s, [])
        led.record_dossier("r1", empty, [])
        report.finished_at = datetime.now(timezone.utc)
        report.exit_code = 1
        led.finish_run(report)
    con = duckdb.connect(str(path), read_only=True)
    assert con.execute("SELECT exit_code FROM runs").fetchall() == [(1,)]
    assert con.execute("SELECT path, outcome, error FROM documents ORDER BY path").fetchall() == [
        ("a.pdf", "ok", None), ("b.pdf", "failed", "encrypted"), ("lien.pdf", "skipped", "symlink")]
    rows = con.execute(
        "SELECT dossier_id, history, allergy_status, empty, disorganised FROM dossier_latest ORDER BY dossier_id"
    ).fetchall()
    assert rows == [("P1", 1, "unknown", False, True), ("P2", 0, "unknown", True, False)]
    assert con.execute("SELECT count(*) FROM document_text").fetchone() == (0,)


def test_a_damaged_ledger_says_so_and_how_to_rebuild(tmp_path):
    path = tmp_path / "ledger.duckdb"
    path.write_bytes(b"this is not a duckdb file" * 100)
    with pytest.raises(CouldNotRun, match="ledger rebuild"):
        Ledger(path)
