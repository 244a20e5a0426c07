"""The batch runner: every dossier under a root, with a lock, the ledger and a run report.

Exit codes (extractor.errors.ExitCode): 0 every document read; 1 some documents failed (the run
finished; see warnings and the ledger); 2 bad arguments; 3 could not run.
"""
from __future__ import annotations

import fcntl
import logging
import os
import time
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel

from extractor import __version__
from extractor.config import STATE_DIR, Settings
from extractor.errors import BadArguments, CouldNotRun, ExitCode
from extractor.ingest import discover_dossiers, list_documents
from extractor.ledger import Ledger
from extractor.pipeline import DocumentResult, extractor_key, process_document, summarise_dossier
from models.report import RunReport
from models.synthesis import Synthesis, Warning

log = logging.getLogger("synthese")


class RunOptions(BaseModel):
    root: Path
    ledger: Path | None = None
    report: Path | None = None
    full: bool = False
    only: list[str] = []


class DossierOutcome(BaseModel):
    dossier_id: str
    synthesis: Synthesis
    results: list[DocumentResult]


@contextmanager
def root_lock(root: Path):
    """One run per root at a time: a second run exits with a clear message instead of corrupting anything."""
    state = root / STATE_DIR
    state.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(state / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CouldNotRun(f"another synthese run is working on {root} (lock {state / 'lock'}); try again when it ends")
        yield
    finally:
        os.close(fd)


def process_dossier(dossier: Path, settings: Settings, write: bool = True) -> DossierOutcome:
    """Read every document of one dossier, consolidate and write its synthesis."""
    dossier_id = dossier.name
    results: list[DocumentResult] = []
    warnings: list[Warning] = []
    for cand in list_documents(dossier):
        if cand.skip:
            warnings.append(Warning(document=cand.rel, code=cand.skip, message=f"not read: {cand.skip.replace('_', ' ')}"))
            continue
        results.append(process_document(cand.path, dossier, settings))
    synthesis = summarise_dossier(dossier, dossier_id, results, settings, warnings, write=write)
    return DossierOutcome(dossier_id=dossier_id, synthesis=synthesis, results=results)


def _account(report: RunReport, outcome: DossierOutcome) -> None:
    report.dossiers_processed += 1
    for r in outcome.results:
        report.documents_total += 1
        rec = r.record
        report.pages += len(rec.pages)
        report.ocr_pages += rec.ocr_pages
        if rec.error:
            report.documents_failed += 1
            report.failures_by_reason[rec.error] = report.failures_by_reason.get(rec.error, 0) + 1
        else:
            report.documents_ok += 1
        for stage, s in r.stage_seconds.items():
            report.stage_seconds[stage] = report.stage_seconds.get(stage, 0.0) + s


def run(options: RunOptions, settings: Settings, on_dossier=None) -> RunReport:
    """Process every dossier under `options.root`; return the run report (its exit_code is set)."""
    root = options.root
    if not root.is_dir():
        raise BadArguments(f"{root} is not a folder")
    t0 = time.perf_counter()
    report = RunReport(
        run_id=uuid.uuid4().hex[:12],
        started_at=datetime.now(timezone.utc),
        extractor_version=__version__,
        root=str(root),
        workers=1,
    )
    dossiers = discover_dossiers(root)
    if options.only:
        wanted = set(options.only)
        dossiers = [d for d in dossiers if d.name in wanted]
    report.dossiers_total = len(dossiers)
    with root_lock(root), Ledger(options.ledger or settings.ledger_path(root)) as ledger:
        ledger.start_run(report, extractor_key())
        for dossier in dossiers:
            outcome = process_dossier(dossier, settings)
            _account(report, outcome)
            ledger.record_dossier(report.run_id, outcome.synthesis, [r.record for r in outcome.results],
                                  store_text=settings.store_text)
            if on_dossier:
                on_dossier(outcome)
        report.finished_at = datetime.now(timezone.utc)
        report.seconds = time.perf_counter() - t0
        report.exit_code = int(ExitCode.DOCUMENTS_FAILED if report.documents_failed else ExitCode.OK)
        ledger.finish_run(report)
    if options.report:
        from extractor.write import atomic_write_bytes

        atomic_write_bytes(options.report, report.model_dump_json(indent=2).encode(), settings.output_mode)
    log.info("run %s: %d dossiers, %d documents (%d failed) in %.1f s", report.run_id, report.dossiers_processed,
             report.documents_total, report.documents_failed, report.seconds)
    return report
