"""Reader: one file on disk -> one DocumentRecord with its pages of text (the reading stage).

Errors are values here: a bad document comes back as a record with `error` (a key of
`extractor.errors.REASONS`) and a text-free `error_detail`; pages read before the failure are kept.
Only run-level problems (tesseract missing: `CouldNotRun`) leave as exceptions.
Per-document time and memory limits are enforced by the runner around this function.
"""
from __future__ import annotations

import logging
import os
import stat
import time
from pathlib import Path

from extractor.documents import textlayer
from extractor.config import Settings
from extractor.errors import CouldNotRun, DocumentError
from extractor.documents.ingest import sha256_file, sniff
from extractor.documents.layout import mark_boilerplate
from extractor.documents.ocr import ocr_image, open_image_frames, pdf_page_image, scale_boxes
from extractor.documents.pdfimages import plain_image_pages
from extractor.documents.textlayer import count_printable
from models.document import DocumentRecord, Page

log = logging.getLogger(__name__)

# Loggers of the libraries that parse documents. pdfminer's debug and warning lines quote raw PDF
# objects (the Info dictionary, where patient names sit); they must reach no log, whatever the level.
LIBRARY_LOGGERS = ("pdfminer", "pdfplumber", "PIL", "pypdfium2", "pytesseract")

EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def read_document(path: Path, dossier: Path, settings: Settings) -> DocumentRecord:
    """Read the document at `path` (a file inside `dossier`) into a DocumentRecord.

    The file's type comes from its first bytes, not its name (a PNG named .pdf is read as a PNG).
    PDFs: text layer first, then OCR of the pages with too little text; `kind` is text_pdf (no page
    OCR'd), scanned_pdf (every page OCR'd) or mixed_pdf. Images (PNG, JPEG, TIFF with one page per
    frame) are OCR'd: kind "image". A document without any text gets error "no_text" (pages kept).
    Repeated header/footer lines are tagged (`Page.boilerplate`). Never raises for a bad document.
    """
    silence_library_logs()
    started = time.perf_counter()
    record = DocumentRecord(path=_relative(path, dossier), sha256=EMPTY_SHA256, size=0)
    try:
        _read_into(record, Path(path), settings)
    except DocumentError as e:
        record.error, record.error_detail = e.reason, e.detail or None
    except CouldNotRun:
        raise
    except MemoryError:
        record.error, record.error_detail = "out_of_memory", "reading needed more memory than available"
    except Exception as e:  # noqa: BLE001 - a reader bug must not stop the batch; the type name is text-free
        # No traceback: a library exception's message can quote the document. Where it was raised
        # (our file and line, or the library's) is enough to find the bug.
        log.error("unexpected %s in the reader at %s", type(e).__name__, _where(e))
        record.error, record.error_detail = "crashed", f"unexpected {type(e).__name__} in the reader"
    if record.pages:
        mark_boilerplate(record.pages)
    record.seconds = round(time.perf_counter() - started, 3)
    return record


def silence_library_logs() -> None:
    """Detach the document libraries' loggers from every handler (idempotent, cheap)."""
    for name in LIBRARY_LOGGERS:
        lib = logging.getLogger(name)
        if lib.propagate:
            lib.propagate = False
            lib.addHandler(logging.NullHandler())  # else logging's last-resort handler prints warnings


def _where(e: BaseException) -> str:
    tb = e.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return "?"
    return f"{Path(tb.tb_frame.f_code.co_filename).name}:{tb.tb_lineno}"


def _relative(path: Path, dossier: Path) -> str:
    try:
        return Path(path).relative_to(dossier).as_posix()
    except ValueError:
        return Path(path).name


def _read_into(record: DocumentRecord, path: Path, settings: Settings) -> None:
    try:
        st = os.lstat(path)
    except OSError:
        raise DocumentError("unreadable", "the file could not be examined") from None
    if not stat.S_ISREG(st.st_mode):
        # Never opened: a FIFO would block, a device would never end, a symlink may lead outside.
        raise DocumentError("unreadable", "not a regular file")
    record.size = st.st_size
    if st.st_size == 0:
        raise DocumentError("empty_file", "0 bytes")
    try:
        record.sha256 = sha256_file(path)
    except OSError:
        raise DocumentError("unreadable", "the file could not be read") from None
    kind = sniff(path)
    if kind is None:
        raise DocumentError("not_a_document", "neither a PDF nor a PNG, JPEG or TIFF image")
    if kind == "pdf":
        _read_pdf(record, path, settings)
    else:
        _read_image(record, path, settings)
    if sum(count_printable(p.text) for p in record.pages) < max(1, settings.min_text_chars):
        raise DocumentError("no_text", f"no text found on any of {len(record.pages)} pages")


def _read_pdf(record: DocumentRecord, path: Path, settings: Settings) -> None:
    try:
        pdf = textlayer.open_pdf(path, settings)
    except DocumentError as e:
        if e.reason != "truncated":
            raise
        # pdfium cannot parse it: pdfplumber may (text layer only, nothing to rasterise with).
        record.pages = textlayer.read_text_layer(path, settings)
        record.kind = "text_pdf"
        return
    try:
        pages = textlayer.read_pdf_pages(pdf, path, settings)
        record.pages = pages
        to_ocr = [i for i, p in enumerate(pages) if p.source == "empty"]
        plain = plain_image_pages(path, len(pdf)) if to_ocr else frozenset()
        for i in to_ocr:
            image = pdf_page_image(pdf, i, settings.ocr_dpi, settings.max_image_pixels, plain)
            # Read at the image's own resolution, boxes given at ocr_dpi like those of text layers.
            page = scale_boxes(ocr_image(image, settings, number=i + 1), settings.ocr_dpi / image.info["dpi"][0])
            pages[i] = _better(pages[i], page)
    finally:
        pdf.close()
    if not to_ocr:
        record.kind = "text_pdf"
    elif len(to_ocr) == len(pages):
        record.kind = "scanned_pdf"
    else:
        record.kind = "mixed_pdf"


def _better(layer: Page, ocr: Page) -> Page:
    """The OCR page, unless the few characters of the text layer are more than OCR found."""
    if count_printable(ocr.text) >= count_printable(layer.text) and ocr.text.strip():
        return ocr
    if layer.text.strip():
        layer.source = "text_layer"
        return layer
    ocr.source = "empty"
    return ocr


def _read_image(record: DocumentRecord, path: Path, settings: Settings) -> None:
    record.kind = "image"
    for n, frame in enumerate(open_image_frames(path, settings), 1):
        page = ocr_image(frame, settings, number=n)
        if not page.text.strip():
            page.source = "empty"
        record.pages.append(page)
