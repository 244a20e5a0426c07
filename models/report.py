"""The run report (`--report run.json`): counts, timings, failures by reason. No document text, no identity."""
from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class RunReport(BaseModel):
    run_id: str
    started_at: datetime
    finished_at: datetime | None = None
    extractor_version: str
    root: str
    workers: int = 1
    scheduler: str | None = None
    dossiers_total: int = 0
    dossiers_processed: int = 0
    dossiers_skipped: int = 0
    dossiers_failed: int = 0
    documents_total: int = 0
    documents_ok: int = 0
    documents_failed: int = 0
    documents_cached: int = 0
    pages: int = 0
    ocr_pages: int = 0
    seconds: float = 0.0
    stage_seconds: dict[str, float] = Field(default_factory=dict)
    failures_by_reason: dict[str, int] = Field(default_factory=dict)
    exit_code: int = 0
