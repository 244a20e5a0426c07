"""One settings model, validated before any work starts."""
from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, Field

# Files the pipeline writes: never taken as input.
OUTPUT_NAME = "synthese.json"
HTML_NAME = "synthese.html"  # the static review page (`synthese render`), beside it
STATE_DIR = ".synthese"


class Settings(BaseModel):
    """Run settings. Defaults are what a nightly batch wants; every limit is documented in the README."""

    ocr_lang: str = "fra"
    ocr_dpi: int = Field(300, ge=72, le=600)
    # A page whose text layer has fewer printable characters than this is read by OCR.
    min_text_chars: int = Field(20, ge=0)
    ocr_detect_orientation: bool = True
    ocr_deskew: bool = True
    # Per-document limits (issue 5): wall clock scales with pages.
    doc_timeout_base: float = Field(60.0, gt=0)
    doc_timeout_per_page: float = Field(15.0, gt=0)
    doc_memory_mb: int = Field(2048, ge=256)
    max_pages: int = Field(5000, ge=1)
    max_image_pixels: int = Field(200_000_000, ge=1_000_000)
    max_page_points: float = Field(14400.0, gt=0)  # PDF user units; 200 inches, the PDF spec's own limit
    output_mode: int = 0o640
    store_text: bool = False
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)

    def ledger_path(self, root: Path) -> Path:
        return root / STATE_DIR / "ledger.duckdb"
