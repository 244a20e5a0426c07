"""The per-document result cache, beside the ledger: one new document in a dossier does not re-OCR the others.

Layout: `ROOT/.synthese/cache/<sha256[:2]>/<sha256>-<processing_key>.json` (`...-text.json` for
entries of `--store-text` runs, which keep the page text), folders 0700, files
0600, each written atomically (temp file in the same folder, fsync, rename). A result is keyed
by the document's content (sha256) and by `processing_key(settings)`: the extractor key (code
version + rules files) and the settings that change what is read (OCR language, dpi, limits...).
Either change makes every entry stale; stale files are simply never read again (delete the
cache folder to reclaim the space; it is safe at any time when no run is going).

Privacy: the cache holds the document's metadata (type, date, page sources, OCR word boxes and
confidences) and its mentions with their snippets, exactly what synthese.json already shows.
Page TEXT and OCR word text are kept only when the run stores text (`--store-text`);
otherwise they are blanked before writing (`Page.text = ""`, `Word.text = ""`; offsets and
boxes are kept so provenance boxes come out the same).

Only deterministic outcomes are cached: a document that failed with "timeout", "crashed" or
"out_of_memory" is read again the next time its dossier is processed.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from pydantic import ValidationError

from extractor.config import STATE_DIR, Settings
from extractor.write import atomic_write_bytes

# Failures that depend on the machine or the moment, not on the document: never cached.
TRANSIENT_ERRORS = {"timeout", "crashed", "out_of_memory"}
# Settings that change what a document reads as; any change makes cached results stale.
READING_SETTINGS = ("ocr_lang", "ocr_dpi", "min_text_chars", "ocr_detect_orientation", "ocr_deskew",
                    "max_pages", "max_image_pixels", "max_page_points")


def processing_key(settings: Settings) -> str:
    """extractor_key() plus a digest of the reading settings: what a cached result depends on."""
    from extractor.pipeline import extractor_key

    blob = json.dumps({k: getattr(settings, k) for k in READING_SETTINGS}, sort_keys=True)
    return f"{extractor_key()}-{hashlib.sha256(blob.encode()).hexdigest()[:8]}"


def strip_text(result):
    """A copy of a DocumentResult without page text and OCR word text (mentions keep their snippets)."""
    r = result.model_copy(deep=True)
    for page in r.record.pages:
        page.text = ""
        for w in page.words:
            w.text = ""
    return r


class ResultCache:
    """Document results by content and processing key. Written by the driver only."""

    def __init__(self, root: Path, key: str, store_text: bool = False, folder: Path | None = None):
        self.dir = folder or root / STATE_DIR / "cache"
        self.key = key
        self.store_text = store_text
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)

    def _path(self, sha256: str) -> Path:
        # Entries with page text are kept apart: a --store-text run must not take a stripped entry.
        suffix = "-text" if self.store_text else ""
        return self.dir / sha256[:2] / f"{sha256}-{self.key}{suffix}.json"

    def get(self, sha256: str):
        """The cached DocumentResult for this content, or None."""
        from extractor.pipeline import DocumentResult

        try:
            raw = self._path(sha256).read_bytes()
        except OSError:
            return None
        try:
            return DocumentResult.model_validate_json(raw)
        except (ValidationError, ValueError):
            return None  # a damaged entry is a miss; the fresh result will replace it

    def put(self, sha256: str, result) -> bool:
        """Store a result (text stripped unless store_text); False when not cacheable."""
        if result.record.error in TRANSIENT_ERRORS:
            return False
        if not self.store_text:
            result = strip_text(result)
        target = self._path(sha256)
        target.parent.mkdir(mode=0o700, exist_ok=True)
        atomic_write_bytes(target, result.model_dump_json().encode(), 0o600)
        return True

    def clean_temp(self) -> int:
        """Remove temp files left by a killed run (call with the root lock held)."""
        n = 0
        for tmp in self.dir.glob("*/.synthese-*.tmp"):
            try:
                tmp.unlink()
                n += 1
            except OSError:
                pass
        return n
