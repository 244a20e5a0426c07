"""The ledger: a duckdb file recording every run, document and dossier. The only module that talks to duckdb.

Tables are append-only and their columns never move (new columns go at the end), so auditors'
SQL keeps working across versions. Only the driver process writes. No document text is stored
here unless the run asked for it (`--store-text`, table `document_text`).

Tables
- runs(run_id, started_at, finished_at, root, extractor_version, rules_version, workers, scheduler,
  dossiers_total, dossiers_processed, dossiers_skipped, documents_total, documents_failed,
  pages, ocr_pages, seconds, exit_code)
- documents(run_id, dossier_id, path, sha256, size, kind, doc_type, doc_date, pages, ocr_pages,
  seconds, outcome, error, cached). outcome: ok, failed, duplicate, or skipped (a file never
  opened: a symlink, a FIFO or device, another program's .json; error says which)
- dossiers(run_id, dossier_id, documents, documents_failed, documents_duplicate, documents_ocr,
  documents_undated, documents_medical, history, history_family, allergies, treatments,
  treatments_active, history_status, allergy_status, treatment_status, conflicts, warnings,
  empty, disorganised)
- dossier_state(dossier_id, fingerprint, extractor_key, run_id, updated_at): what the last
  finished run saw, for incremental runs (one row per dossier, replaced).
- document_text(run_id, dossier_id, path, page, text): only with --store-text.
  Column added at the end: files (JSON [[path, size, mtime_ns, sha256], ...]), the files that run
  saw: size + mtime_ns unchanged means the sha256 is reused without reading the file again.
- reviews(reviewed_at, reviewer, dossier_id, block, entry_id, action, before, after, run_id,
  sha256_before, sha256_after): the audit trail of the review page (`synthese review`), one row per
  decision. action: validate, correct, reject, add, block_status, validate_dossier, undo; before and
  after are the entry (or block status, or file status) as JSON; run_id the run whose synthese.json
  the reviewer saw; sha256_* those of synthese.json around the decision.

Views
- dossier_latest: the most recent row of `dossiers` for each dossier.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from extractor.errors import CouldNotRun
from models.document import DocumentRecord
from models.report import RunReport
from models.synthesis import Synthesis

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS runs (
        run_id VARCHAR PRIMARY KEY, started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ, root VARCHAR,
        extractor_version VARCHAR, rules_version VARCHAR, workers INTEGER, scheduler VARCHAR,
        dossiers_total INTEGER, dossiers_processed INTEGER, dossiers_skipped INTEGER,
        documents_total INTEGER, documents_failed INTEGER, pages INTEGER, ocr_pages INTEGER,
        seconds DOUBLE, exit_code INTEGER)""",
    """CREATE TABLE IF NOT EXISTS documents (
        run_id VARCHAR, dossier_id VARCHAR, path VARCHAR, sha256 VARCHAR, size BIGINT, kind VARCHAR,
        doc_type VARCHAR, doc_date VARCHAR, pages INTEGER, ocr_pages INTEGER, seconds DOUBLE,
        outcome VARCHAR, error VARCHAR, cached BOOLEAN)""",
    """CREATE TABLE IF NOT EXISTS dossiers (
        run_id VARCHAR, dossier_id VARCHAR, documents INTEGER, documents_failed INTEGER,
        documents_duplicate INTEGER, documents_ocr INTEGER, documents_undated INTEGER,
        documents_medical INTEGER, history INTEGER, history_family INTEGER, allergies INTEGER,
        treatments INTEGER, treatments_active INTEGER, history_status VARCHAR, allergy_status VARCHAR,
        treatment_status VARCHAR, conflicts INTEGER, warnings INTEGER, empty BOOLEAN, disorganised BOOLEAN)""",
    """CREATE TABLE IF NOT EXISTS dossier_state (
        dossier_id VARCHAR PRIMARY KEY, fingerprint VARCHAR, extractor_key VARCHAR, run_id VARCHAR,
        updated_at TIMESTAMPTZ)""",
    """CREATE TABLE IF NOT EXISTS document_text (
        run_id VARCHAR, dossier_id VARCHAR, path VARCHAR, page INTEGER, text VARCHAR)""",
    """CREATE OR REPLACE VIEW dossier_latest AS
        SELECT d.* FROM dossiers d JOIN runs r USING (run_id)
        QUALIFY row_number() OVER (PARTITION BY d.dossier_id ORDER BY r.started_at DESC) = 1""",
    "ALTER TABLE dossier_state ADD COLUMN IF NOT EXISTS files VARCHAR",
    """CREATE TABLE IF NOT EXISTS reviews (
        reviewed_at TIMESTAMPTZ, reviewer VARCHAR, dossier_id VARCHAR, block VARCHAR, entry_id VARCHAR,
        action VARCHAR, before VARCHAR, after VARCHAR, run_id VARCHAR, sha256_before VARCHAR,
        sha256_after VARCHAR)""",
]
REVIEW_COLUMNS = ("reviewed_at", "reviewer", "dossier_id", "block", "entry_id", "action", "before", "after",
                  "run_id", "sha256_before", "sha256_after")

# Documents that carry medical content; an administrative paper alone leaves a dossier "empty".
MEDICAL_DOC_TYPES = {"compte_rendu", "ordonnance", "courrier", "consultation", "operatoire", "biologie"}


def dossier_facts(synthesis: Synthesis) -> dict:
    """The per-dossier counts auditors query. Definitions are documented in the README.

    empty: no readable document with medical content (no document, only administrative papers,
    or nothing could be read).
    disorganised: has documents, but a machine cannot use them as they are: any failed document,
    or most documents scanned (no text layer), or most documents undated, or an exact duplicate.
    """
    docs = [d for d in synthesis.documents if d.outcome != "duplicate"]
    ok = [d for d in docs if d.outcome == "ok"]
    failed = sum(d.outcome == "failed" for d in docs)
    duplicate = sum(d.outcome == "duplicate" for d in synthesis.documents)
    ocr = sum(d.ocr_pages > 0 for d in ok)
    undated = sum(d.date is None for d in ok)
    medical = sum(d.doc_type in MEDICAL_DOC_TYPES for d in ok)
    empty = medical == 0 and not (synthesis.history or synthesis.allergies or synthesis.treatments)
    disorganised = bool(docs) and (failed > 0 or duplicate > 0 or 2 * ocr > len(docs) or 2 * undated > len(docs))
    return {
        "documents": len(docs),
        "documents_failed": failed,
        "documents_duplicate": duplicate,
        "documents_ocr": ocr,
        "documents_undated": undated,
        "documents_medical": medical,
        "history": sum(e.kind != "family" for e in synthesis.history),
        "history_family": sum(e.kind == "family" for e in synthesis.history),
        "allergies": len(synthesis.allergies),
        "treatments": len(synthesis.treatments),
        "treatments_active": sum(t.status == "active" for t in synthesis.treatments),
        "history_status": synthesis.history_status,
        "allergy_status": synthesis.allergy_status,
        "treatment_status": synthesis.treatment_status,
        "conflicts": len(synthesis.conflicts),
        "warnings": len(synthesis.warnings),
        "empty": empty,
        "disorganised": disorganised,
    }


_ACTION_OF_STATUS = {"validated": "validate", "edited": "correct", "rejected": "reject", "added": "add"}


def review_rows(synthesis: Synthesis) -> list[dict]:
    """Audit rows rebuilt from the decisions a synthese.json holds (for `ledger rebuild`): who, when and
    what each reviewed entry, block or file became. `before` is only what `review.original` kept of it;
    the sha256 columns stay empty (unknown)."""
    rows = []

    def row(review, block, entry_id, action, after):
        rows.append({"reviewed_at": review.at, "reviewer": review.by, "dossier_id": synthesis.dossier_id,
                     "block": block, "entry_id": entry_id, "action": action,
                     "before": json.dumps({"original": getattr(review, "original", None)}, ensure_ascii=False),
                     "after": json.dumps(after, ensure_ascii=False, default=str), "run_id": review.run_id})

    for attr, block in (("history", "history"), ("allergies", "allergy"), ("treatments", "treatment")):
        for e in getattr(synthesis, attr):
            if e.review is not None:
                row(e.review, block, e.id, _ACTION_OF_STATUS.get(e.review.status, e.review.status),
                    e.model_dump(mode="json"))
    for block, r in synthesis.block_reviews.items():
        row(r, block, None, "block_status", {"status": r.status})
    if synthesis.review is not None:
        row(synthesis.review, None, None, "validate_dossier", {"status": synthesis.status})
    return rows


class LedgerBusy(CouldNotRun):
    """Another process holds the ledger (duckdb allows one writer process): wait and try again."""


class Ledger:
    """An open ledger. Use as a context manager; one writer process at a time (the batch lock ensures it)."""

    def __init__(self, path: Path, read_only: bool = False):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.con = duckdb.connect(str(path), read_only=read_only)
            if not read_only:
                for stmt in SCHEMA:
                    self.con.execute(stmt)
        except duckdb.Error as e:
            if "lock" in str(e).lower():
                raise LedgerBusy(
                    f"the ledger {path} is in use by another process (a `synthese run`, or another writer); "
                    f"try again when it has finished"
                ) from e
            raise CouldNotRun(
                f"the ledger {path} cannot be opened ({type(e).__name__}); if it is damaged, "
                f"move it away and run `synthese ledger rebuild ROOT` to rebuild it from the synthese.json files"
            ) from e

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.con.close()

    def start_run(self, report: RunReport, rules_version: str = "") -> None:
        self.con.execute(
            "INSERT INTO runs (run_id, started_at, root, extractor_version, rules_version, workers, scheduler) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [report.run_id, report.started_at, report.root, report.extractor_version, rules_version,
             report.workers, report.scheduler],
        )

    def finish_run(self, report: RunReport) -> None:
        self.con.execute(
            "UPDATE runs SET finished_at=?, dossiers_total=?, dossiers_processed=?, dossiers_skipped=?, "
            "documents_total=?, documents_failed=?, pages=?, ocr_pages=?, seconds=?, exit_code=? WHERE run_id=?",
            [report.finished_at or datetime.now(timezone.utc), report.dossiers_total, report.dossiers_processed,
             report.dossiers_skipped, report.documents_total, report.documents_failed, report.pages,
             report.ocr_pages, report.seconds, report.exit_code, report.run_id],
        )

    def record_dossier(
        self,
        run_id: str,
        synthesis: Synthesis,
        records: list[DocumentRecord],
        cached: set[str] = frozenset(),
        store_text: bool = False,
        state: tuple[str, str] | None = None,
        files: list[tuple[str, int, int, str]] | None = None,
    ) -> None:
        """Record one summarised dossier and its documents, in one transaction.

        With `state` (fingerprint, extractor_key) and `files` [(path, size, mtime_ns, sha256)], the
        dossier's incremental state is replaced in the same transaction: call it only once the
        dossier's synthese.json is written, so a run killed in between redoes the dossier.
        """
        facts = dossier_facts(synthesis)
        by_path = {r.path: r for r in records}
        self.con.execute("BEGIN TRANSACTION")
        try:
            for d in synthesis.documents:
                r = by_path.get(d.path)
                self.con.execute(
                    "INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [run_id, synthesis.dossier_id, d.path, d.sha256, d.size, d.kind, d.doc_type, d.date, d.pages,
                     d.ocr_pages, r.seconds if r else None, d.outcome, d.error, d.path in cached],
                )
                if store_text and r is not None and r.pages:  # duckdb's executemany refuses an empty list
                    self.con.executemany(
                        "INSERT INTO document_text VALUES (?, ?, ?, ?, ?)",
                        [[run_id, synthesis.dossier_id, d.path, p.number, p.text] for p in r.pages],
                    )
            # Files the run saw but never opened (a symlink, a FIFO, another program's .json): a row
            # each, so auditors count them with SQL too. Only their name and why are known.
            read = {d.path for d in synthesis.documents}
            for w in synthesis.warnings:
                if w.document is not None and w.document not in read:
                    self.con.execute(
                        "INSERT INTO documents (run_id, dossier_id, path, outcome, error, cached) "
                        "VALUES (?, ?, ?, 'skipped', ?, false)",
                        [run_id, synthesis.dossier_id, w.document, w.code],
                    )
            cols = ", ".join(facts)
            marks = ", ".join("?" for _ in facts)
            self.con.execute(
                f"INSERT INTO dossiers (run_id, dossier_id, {cols}) VALUES (?, ?, {marks})",
                [run_id, synthesis.dossier_id, *facts.values()],
            )
            if state is not None:
                self._replace_state(synthesis.dossier_id, state[0], state[1], run_id, files or [])
            self.con.execute("COMMIT")
        except BaseException as e:
            try:
                self.con.execute("ROLLBACK")
            except duckdb.Error:
                pass
            if isinstance(e, duckdb.Error):
                raise CouldNotRun(
                    f"the ledger {self.path} could not record a dossier ({type(e).__name__}: disk full or damaged?); "
                    f"the dossier will be done again by the next run"
                ) from e
            raise

    def dossier_state(self, dossier_id: str) -> tuple[str, str] | None:
        row = self.con.execute(
            "SELECT fingerprint, extractor_key FROM dossier_state WHERE dossier_id = ?", [dossier_id]
        ).fetchone()
        return (row[0], row[1]) if row else None

    def all_dossier_states(self) -> dict[str, tuple[str, str]]:
        rows = self.con.execute("SELECT dossier_id, fingerprint, extractor_key FROM dossier_state").fetchall()
        return {r[0]: (r[1], r[2]) for r in rows}

    def set_dossier_state(self, dossier_id: str, fingerprint: str, extractor_key: str, run_id: str) -> None:
        self.con.execute(
            "INSERT OR REPLACE INTO dossier_state VALUES (?, ?, ?, ?, ?)",
            [dossier_id, fingerprint, extractor_key, run_id, datetime.now(timezone.utc)],
        )

    def _replace_state(self, dossier_id: str, fingerprint: str, key: str, run_id: str,
                       files: list[tuple[str, int, int, str]]) -> None:
        self.con.execute(
            "INSERT OR REPLACE INTO dossier_state (dossier_id, fingerprint, extractor_key, run_id, updated_at, files) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [dossier_id, fingerprint, key, run_id, datetime.now(timezone.utc), json.dumps(files)],
        )

    def dossier_files(self, dossier_id: str) -> tuple[str, str, dict[str, tuple[int, int, str]]] | None:
        """(fingerprint, extractor_key, {path: (size, mtime_ns, sha256)}) as the last finished run saw them."""
        row = self.con.execute(
            "SELECT fingerprint, extractor_key, files FROM dossier_state WHERE dossier_id = ?", [dossier_id]
        ).fetchone()
        if row is None:
            return None
        files = {f[0]: (f[1], f[2], f[3]) for f in json.loads(row[2] or "[]")}
        return row[0], row[1], files

    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        return self.con.execute(sql, params or []).fetchall()

    def record_reviews(self, rows: list[dict]) -> None:
        """Append review decisions (dicts keyed by REVIEW_COLUMNS) to `reviews`, in one transaction."""
        if not rows:
            return
        cols = ", ".join(REVIEW_COLUMNS)
        marks = ", ".join("?" for _ in REVIEW_COLUMNS)
        self.con.execute("BEGIN TRANSACTION")
        try:
            self.con.executemany(f"INSERT INTO reviews ({cols}) VALUES ({marks})",
                                 [[row.get(c) for c in REVIEW_COLUMNS] for row in rows])
            self.con.execute("COMMIT")
        except BaseException:
            try:
                self.con.execute("ROLLBACK")
            except duckdb.Error:
                pass
            raise

    def latest_run_ids(self) -> dict[str, str]:
        """dossier_id -> the run that last wrote its synthese.json (from `dossier_state`)."""
        return {r[0]: r[1] for r in self.con.execute("SELECT dossier_id, run_id FROM dossier_state").fetchall()}
