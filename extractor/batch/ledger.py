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
Columns added at the end for the quality audit: documents.before_birth (the document is dated
before the patient's date of birth read in the dossier; NULL when either is unknown; the date of
birth itself is never stored), dossiers.birth_date_known, dossiers.conflict_kinds (the kinds of
the dossier's conflicts, comma-separated).
- reviews(reviewed_at, reviewer, dossier_id, block, entry_id, action, before, after, run_id,
  sha256_before, sha256_after): the audit trail of the review page (`synthese review`), one row per
  decision. action: validate, correct, reject, add, block_status, validate_dossier, undo; before and
  after are the entry (or block status, or file status) as JSON; run_id the run whose synthese.json
  the reviewer saw; sha256_* those of synthese.json around the decision.

Views
- dossier_latest: the most recent row of `dossiers` for each dossier.
- audit_facts, checks, check_results, dossier_flags: the quality audit (`synthese audit`), built
  from the check catalogue rules/checks.toml each time the ledger is opened; see `install_audit_views`.
"""
from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from extractor.errors import BadArguments, CouldNotRun
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
    "ALTER TABLE documents ADD COLUMN IF NOT EXISTS before_birth BOOLEAN",
    "ALTER TABLE dossiers ADD COLUMN IF NOT EXISTS birth_date_known BOOLEAN",
    "ALTER TABLE dossiers ADD COLUMN IF NOT EXISTS conflict_kinds VARCHAR",
    """CREATE TABLE IF NOT EXISTS reviews (
        reviewed_at TIMESTAMPTZ, reviewer VARCHAR, dossier_id VARCHAR, block VARCHAR, entry_id VARCHAR,
        action VARCHAR, before VARCHAR, after VARCHAR, run_id VARCHAR, sha256_before VARCHAR,
        sha256_after VARCHAR)""",
]
DOCUMENT_COLUMNS = ("run_id, dossier_id, path, sha256, size, kind, doc_type, doc_date, pages, ocr_pages, seconds, "
                    "outcome, error, cached, before_birth")
REVIEW_COLUMNS = ("reviewed_at", "reviewer", "dossier_id", "block", "entry_id", "action", "before", "after",
                  "run_id", "sha256_before", "sha256_after")

# Documents that carry medical content; an administrative paper alone leaves a dossier "empty".
MEDICAL_DOC_TYPES = {"compte_rendu", "ordonnance", "courrier", "consultation", "operatoire", "biologie"}


def birth_date(records: list[DocumentRecord]) -> str | None:
    """The patient's date of birth as the documents give it (the earliest read, ISO), or None."""
    dates = [r.birth_date for r in records if r.birth_date]
    return min(dates) if dates else None


def dossier_facts(synthesis: Synthesis, born: str | None = None, records_known: bool = True) -> dict:
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
        # Without the document records (a rebuilt ledger) whether a date of birth was read is unknown.
        "birth_date_known": (born is not None) if records_known else None,
        "conflict_kinds": ",".join(sorted({c.kind for c in synthesis.conflicts})) or None,
    }


# One row per run and dossier: the `dossiers` row, the run's day, whether it is the dossier's latest
# row, and document counts the checks of rules/checks.toml are written against.
AUDIT_FACTS = """
CREATE OR REPLACE {temp} VIEW audit_facts AS
WITH docs AS (
    SELECT x.run_id, x.dossier_id,
        count(*) FILTER (WHERE outcome = 'ok') AS documents_ok,
        count(*) FILTER (WHERE outcome = 'ok' AND doc_type = 'administratif') AS documents_administrative,
        count(*) FILTER (WHERE outcome = 'ok' AND doc_type = 'autre') AS documents_untyped,
        count(*) FILTER (WHERE outcome = 'ok' AND doc_date IS NOT NULL) AS documents_dated,
        count(*) FILTER (WHERE outcome = 'ok' AND doc_date > CAST(timezone('UTC', r.started_at) AS DATE)::VARCHAR)
            AS documents_future,
        count(*) FILTER (WHERE outcome = 'ok' AND before_birth) AS documents_before_birth,
        count(*) FILTER (WHERE outcome = 'skipped') AS documents_skipped,
        string_agg(DISTINCT error, ', ' ORDER BY error) FILTER (WHERE outcome = 'failed') AS failed_reasons,
        string_agg(DISTINCT error, ', ' ORDER BY error) FILTER (WHERE outcome = 'skipped') AS skipped_reasons
    FROM documents x JOIN runs r USING (run_id)
    GROUP BY x.run_id, x.dossier_id)
SELECT d.*, r.started_at AS run_started_at, CAST(timezone('UTC', r.started_at) AS DATE)::VARCHAR AS run_day,
    row_number() OVER (PARTITION BY d.dossier_id ORDER BY r.started_at DESC) = 1 AS is_latest,
    coalesce(x.documents_ok, 0) AS documents_ok,
    coalesce(x.documents_administrative, 0) AS documents_administrative,
    coalesce(x.documents_untyped, 0) AS documents_untyped,
    coalesce(x.documents_dated, 0) AS documents_dated,
    coalesce(x.documents_future, 0) AS documents_future,
    coalesce(x.documents_before_birth, 0) AS documents_before_birth,
    coalesce(x.documents_skipped, 0) AS documents_skipped,
    x.failed_reasons, x.skipped_reasons
FROM dossiers d JOIN runs r USING (run_id) LEFT JOIN docs x ON x.run_id = d.run_id AND x.dossier_id = d.dossier_id
"""
CHECK_COLUMNS = ("position", "check_id", "category", "severity", "weight", "threshold", "flag", "label_fr", "label_en",
                 "definition_fr", "definition_en", "applies_sql", "fails_sql", "reason_sql", "notes", "sql_error")


def _literal(v) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return repr(v)
    if isinstance(v, float):
        return f"CAST({v!r} AS DOUBLE)"  # a bare 0.05 would be a DECIMAL
    return "'" + str(v).replace("'", "''") + "'"


def _check_result_struct(c: dict) -> str:
    applies = f"coalesce(({c['applies']}), false)"
    fails = f"coalesce(({c['fails']}), false)"
    return (f"{{'check_id': {_literal(c['id'])}, "
            f"'status': CASE WHEN NOT {applies} THEN 'not_applicable' WHEN {fails} THEN 'failed' ELSE 'passed' END, "
            f"'reason': CASE WHEN {applies} AND {fails} THEN CAST(({c['reason']}) AS VARCHAR) END}}")


def _check_results_sql(checks: list[dict]) -> str:
    # One scan of audit_facts with a list of one struct per check, unnested: a UNION ALL of one
    # SELECT per check would make duckdb plan audit_facts once per check (seconds per query).
    structs = ", ".join(_check_result_struct(c) for c in checks)
    return (f"SELECT run_id, run_started_at, dossier_id, is_latest, r.check_id, r.status, r.reason "
            f"FROM (SELECT run_id, run_started_at, dossier_id, is_latest, unnest([{structs}]) AS r FROM audit_facts)")


def dossier_flags_sql(results: str) -> str:
    """The flags and score of each (run, dossier) of `results` (check_results or a table of its rows).

    empty / disorganised: fails a check flagged so; score = 100 x weight of the checks passed / weight
    of the checks that apply (the view `dossier_flags`; the audit runs it on a materialised copy)."""
    return f"""SELECT r.run_id, r.run_started_at, r.dossier_id, r.is_latest,
        coalesce(bool_or(r.status = 'failed' AND c.flag = 'empty'), false) AS empty,
        coalesce(bool_or(r.status = 'failed' AND c.flag = 'disorganised'), false) AS disorganised,
        CAST(round(100.0 * coalesce(sum(c.weight) FILTER (WHERE r.status = 'passed'), 0)
             / sum(c.weight) FILTER (WHERE r.status <> 'not_applicable')) AS INTEGER) AS score,
        string_agg(r.check_id, ',' ORDER BY c.position) FILTER (WHERE r.status = 'failed') AS failed_checks
    FROM {results} r JOIN checks c USING (check_id)
    GROUP BY r.run_id, r.run_started_at, r.dossier_id, r.is_latest"""


def _catalogue(strict: bool) -> list[dict]:
    """The rows of rules/checks.toml. A run (not `strict`) never stops for a bad catalogue: the audit does."""
    from extractor.audit.catalogue import load_checks  # plain data, no heavy import

    try:
        return [c.as_dict() for c in load_checks()]
    except BadArguments as e:
        if strict:
            raise
        logging.getLogger("synthese").warning("audit views not updated: %s", e)
        return []
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

    def __init__(self, path: Path, read_only: bool = False, checks: list[dict] | None = None, sandbox: bool = False):
        """Open (or create) the ledger; `checks`: the audit catalogue rows (default rules/checks.toml).

        `sandbox` (read-only only): the connection cannot touch files or the network at all (no COPY TO,
        no read_csv of other files, no extension download) and cannot change that: for `synthese sql`.
        """
        self.path = path
        self.read_only = read_only
        if read_only and not path.is_file():
            raise CouldNotRun(f"no ledger at {path}: run `synthese run ROOT` first, or pass --ledger PATH")
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.con = duckdb.connect(str(path), read_only=read_only)
            # duckdb draws a progress bar on stdout for long queries: not in our outputs.
            self.con.execute("SET enable_progress_bar = false")
            if sandbox and read_only:
                self.con.execute("SET enable_external_access = false")
                self.con.execute("SET lock_configuration = true")
            if not read_only:
                for stmt in SCHEMA:
                    self.con.execute(stmt)
            self.audit_errors = self.install_audit_views(checks if checks is not None else _catalogue(read_only))
        except duckdb.Error as e:
            if read_only:
                raise CouldNotRun(
                    f"the ledger {path} cannot be opened read-only ({type(e).__name__}): a run may be writing "
                    f"to it (try again when it ends); if it is damaged, run `synthese ledger rebuild ROOT`"
                ) from e
            if "lock" in str(e).lower():
                raise LedgerBusy(
                    f"the ledger {path} is in use by another process (a `synthese run`, or another writer); "
                    f"try again when it has finished"
                ) from e
            raise CouldNotRun(
                f"the ledger {path} cannot be opened ({type(e).__name__}); if it is damaged, "
                f"move it away and run `synthese ledger rebuild ROOT` to rebuild it from the synthese.json files"
            ) from e

    def install_audit_views(self, checks: list[dict]) -> dict[str, str]:
        """(Re)create the audit views from the check catalogue; returns {check id: SQL error} for broken checks.

        `checks` are catalogue rows (extractor.audit.catalogue.Check.as_dict()). Views:
        - audit_facts: one row per run and dossier (see AUDIT_FACTS);
        - checks: the catalogue, with `sql_error` set for a check whose SQL does not run;
        - check_results(run_id, run_started_at, dossier_id, is_latest, check_id, status, reason):
          status `failed`, `passed` or `not_applicable`; one row per run, dossier and working check;
        - dossier_flags(run_id, run_started_at, dossier_id, is_latest, empty, disorganised, score,
          failed_checks): score = 100 x weight of the checks passed / weight of the checks that apply.
        On a read-only ledger they are temporary views (for this connection only), so an older ledger
        is audited with the current catalogue.
        """
        if not checks:  # no usable catalogue: the views stay as they were
            return {}
        temp = "TEMP" if self.read_only else ""
        if self.read_only and not self.con.execute(
                "SELECT 1 FROM information_schema.columns WHERE table_name = 'documents' AND column_name = 'before_birth'"
        ).fetchall():
            raise CouldNotRun(f"the ledger {self.path} predates the quality audit: run `synthese run ROOT` once "
                              f"(or `synthese ledger rebuild ROOT`) to add its columns, then audit again")
        self.con.execute(AUDIT_FACTS.format(temp=temp))
        errors = {}

        def compiles(batch: list[dict]) -> str | None:
            try:
                self.con.execute("PREPARE _check AS " + _check_results_sql(batch))  # compiles, runs nothing
                self.con.execute("DEALLOCATE _check")
            except duckdb.Error as e:
                return str(e).splitlines()[0]
            return None

        if compiles(checks) is not None:  # then find which ones
            errors = {c["id"]: e for c in checks if (e := compiles([c])) is not None}
        rows = [[n, c["id"], c["category"], c["severity"], c["weight"], c["threshold"], c["flag"], c["label_fr"],
                 c["label_en"], c["definition_fr"], c["definition_en"], c["applies"], c["fails"], c["reason"],
                 c.get("notes", ""), errors.get(c["id"])] for n, c in enumerate(checks, 1)]
        values = ", ".join("(" + ", ".join(_literal(v) for v in row) + ")" for row in rows)
        self.con.execute(f"CREATE OR REPLACE {temp} VIEW checks AS SELECT * FROM (VALUES {values}) "
                         f"AS t({', '.join(CHECK_COLUMNS)})")
        working = [c for c in checks if c["id"] not in errors]
        results = (_check_results_sql(working) if working else
            "SELECT NULL::VARCHAR AS run_id, NULL::TIMESTAMPTZ AS run_started_at, NULL::VARCHAR AS dossier_id, "
            "NULL::BOOLEAN AS is_latest, NULL::VARCHAR AS check_id, NULL::VARCHAR AS status, "
            "NULL::VARCHAR AS reason WHERE false")
        self.con.execute(f"CREATE OR REPLACE {temp} VIEW check_results AS {results}")
        self.con.execute(f"CREATE OR REPLACE {temp} VIEW dossier_flags AS {dossier_flags_sql('check_results')}")
        return errors

    def query_columns(self, sql: str, params: list | None = None) -> tuple[list[str], list[tuple]]:
        """(column names, rows) of a query."""
        cur = self.con.execute(sql, params or [])
        return [d[0] for d in cur.description], cur.fetchall()

    def run_sql(self, sql: str) -> tuple[list[str], list[tuple]]:
        """An auditor's query: (columns, rows). Raises BadArguments with duckdb's message when it fails."""
        try:
            return self.query_columns(sql)
        except duckdb.Error as e:
            raise BadArguments(f"the query failed: {str(e).splitlines()[0]}") from e

    def copy_rows(self, columns: list[str], rows: list[tuple], path: Path, fmt: str) -> None:
        """Write rows to `path` as `csv` (with a header) or `parquet`, through duckdb's COPY."""
        def sql_type(values) -> str:
            kinds = {type(v) for v in values if v is not None}
            if kinds <= {bool}:
                return "BOOLEAN" if kinds else "VARCHAR"
            if kinds <= {int}:
                return "BIGINT"
            if kinds <= {int, float}:
                return "DOUBLE"
            return "VARCHAR"

        types = [sql_type([r[i] for r in rows]) for i in range(len(columns))]
        self.con.execute("CREATE OR REPLACE TEMP TABLE _export ("
                         + ", ".join(f'"{c}" {t}' for c, t in zip(columns, types)) + ")")
        if rows:
            self.con.executemany(f"INSERT INTO _export VALUES ({', '.join('?' for _ in columns)})", rows)
        options = "FORMAT parquet" if fmt == "parquet" else "FORMAT csv, HEADER true"
        self.con.execute(f"COPY _export TO {_literal(str(path))} ({options})")
        self.con.execute("DROP TABLE _export")

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
        born = birth_date(records)
        facts = dossier_facts(synthesis, born, records_known=bool(records) or not synthesis.documents)
        by_path = {r.path: r for r in records}
        self.con.execute("BEGIN TRANSACTION")
        try:
            for d in synthesis.documents:
                r = by_path.get(d.path)
                self.con.execute(
                    f"INSERT INTO documents ({DOCUMENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [run_id, synthesis.dossier_id, d.path, d.sha256, d.size, d.kind, d.doc_type, d.date, d.pages,
                     d.ocr_pages, r.seconds if r else None, d.outcome, d.error, d.path in cached,
                     (d.date < born) if (born and d.date and d.outcome == "ok") else None],
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
