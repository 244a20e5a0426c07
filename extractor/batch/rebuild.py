"""`synthese ledger rebuild`: a lost or damaged ledger is rebuilt from the synthese.json files.

The synthese.json files are the source of truth for what was concluded; the ledger is an index
of it plus timings. A rebuilt ledger has one run ("rebuild-...") with every dossier and document,
without per-document timings, and an empty dossier_state so the next run re-checks every dossier.
The `reviews` audit trail gets one row per decision the files still hold (who, when, the entry as
it stands, the corrected fields' proposed values); decisions later undone or overwritten are gone.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timezone
from pathlib import Path

from extractor import __version__
from extractor.errors import BadArguments
from extractor.documents.ingest import discover_dossiers
from extractor.batch.ledger import Ledger, review_rows
from extractor.write import DamagedOutput, read_synthesis
from models.report import RunReport


def rebuild_ledger(root: Path, ledger_path: Path) -> int:
    """Write a new ledger at `ledger_path` (a damaged one is moved aside); return the dossiers indexed."""
    if not root.is_dir():
        raise BadArguments(f"{root} is not a folder")
    if ledger_path.exists():
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
        ledger_path.rename(ledger_path.with_name(f"{ledger_path.name}.damaged-{stamp}"))
        wal = ledger_path.with_name(ledger_path.name + ".wal")
        if wal.exists():
            wal.rename(wal.with_name(f"{wal.name}.damaged-{stamp}"))
    report = RunReport(
        run_id=f"rebuild-{uuid.uuid4().hex[:8]}",
        started_at=datetime.now(timezone.utc),
        extractor_version=__version__,
        root=str(root),
    )
    n = 0
    with Ledger(ledger_path) as ledger:
        ledger.start_run(report, "rebuild")
        for dossier in discover_dossiers(root):
            try:
                synthesis = read_synthesis(dossier)
            except DamagedOutput:
                continue
            if synthesis is None:
                continue
            ledger.record_dossier(report.run_id, synthesis, [])
            ledger.record_reviews(review_rows(synthesis))  # the audit trail, as far as the files keep it
            n += 1
            report.dossiers_processed += 1
            report.documents_total += len(synthesis.documents)
            report.documents_failed += sum(d.outcome == "failed" for d in synthesis.documents)
        report.dossiers_total = n
        report.finished_at = datetime.now(timezone.utc)
        ledger.finish_run(report)
    return n
