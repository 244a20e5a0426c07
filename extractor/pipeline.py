"""The pipeline: the order of the stages, for one document and for one dossier.

    read_document (ingest, text layer, OCR, boilerplate)  ->  DocumentRecord
    classify_document (doc_type, date)                     ->  DocumentRecord
    extract_mentions (sections, lexicons, qualifiers)      ->  list[Mention]
    consolidate (all documents of the dossier)             ->  Synthesis
    write_synthesis (atomic)                               ->  dossier/synthese.json

`process_document` is what a worker runs; `summarise_dossier` is what the driver runs once all
documents of a dossier are back. Both are plain functions, testable alone.
"""
from __future__ import annotations

import hashlib
import time
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, Field

from extractor import __version__
from extractor.config import Settings
from extractor.clinical.consolidate import consolidate
from extractor.write import DamagedOutput, dossier_lock, read_synthesis, set_aside_damaged, write_synthesis
from models.document import DocumentRecord, Mention
from models.synthesis import Synthesis, Warning

RULES_DIR = Path(__file__).resolve().parent.parent / "rules"


class DocumentResult(BaseModel):
    """What a worker sends back for one document: the record and its mentions."""

    record: DocumentRecord
    mentions: list[Mention] = Field(default_factory=list)
    stage_seconds: dict[str, float] = Field(default_factory=dict)


@lru_cache(maxsize=1)
def extractor_key() -> str:
    """Changes when the code version or any rules file changes: cached results are then stale."""
    h = hashlib.sha256(__version__.encode())
    for p in sorted(RULES_DIR.rglob("*")):
        # The audit's check catalogue changes no extraction: a new threshold must not re-read every document.
        if p.is_file() and "__pycache__" not in p.parts and p.name != "checks.toml":
            h.update(p.relative_to(RULES_DIR).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


def process_document(path: Path, dossier: Path, settings: Settings) -> DocumentResult:
    """Read one document and extract its mentions. Never raises for a bad document: see `record.error`."""
    from extractor.documents.classify import classify_document, find_birth_date
    from extractor.clinical.mentions import extract_mentions
    from extractor.documents.ocr import take_stage_seconds
    from extractor.documents.reader import read_document

    take_stage_seconds()  # forget what an earlier document left
    t0 = time.perf_counter()
    record = read_document(path, dossier, settings)
    t1 = time.perf_counter()
    mentions: list[Mention] = []
    if any(p.text.strip() for p in record.pages):
        record.doc_type, record.date = classify_document(record)
        record.birth_date = next((b for p in record.pages if (b := find_birth_date(p.text))), None)
        mentions = extract_mentions(record)
    t2 = time.perf_counter()
    # "read" and "nlp" add up to the document's time; the ocr_* stages are parts of "read".
    stages = {"read": t1 - t0, "nlp": t2 - t1, **take_stage_seconds()}
    return DocumentResult(record=record, mentions=mentions, stage_seconds=stages)


def summarise_dossier(
    dossier: Path,
    dossier_id: str,
    results: list[DocumentResult],
    settings: Settings,
    extra_warnings: list[Warning] | None = None,
) -> Synthesis:
    """Consolidate a dossier's document results, keep reviewed work, and write synthese.json."""
    warnings = list(extra_warnings or [])
    with dossier_lock(dossier):  # a reviewer's decision written meanwhile must not be lost
        previous = None
        try:
            previous = read_synthesis(dossier)
        except DamagedOutput:
            aside = set_aside_damaged(dossier)
            warnings.append(
                Warning(
                    code="damaged_output",
                    message=f"the previous synthese.json could not be read; it was kept as {aside.name}",
                )
            )
        synthesis = consolidate(
            dossier_id,
            [r.record for r in results],
            {r.record.path: r.mentions for r in results},
            previous=previous,
            extra_warnings=warnings,
        )
        write_synthesis(dossier, synthesis, settings.output_mode)
    return synthesis
