"""Plain text as the pipeline's input: a PDF with a text layer, or a scanned image PDF (for `synthese eval`
on a folder of text cases).

The text PDF draws every line of the text as it is, wrapped at spaces to the page width: no word is cut
or hyphenated and no character is rewritten, so the text layer read back, whitespace collapsed, is the
text itself and every gold span stays findable. The scan is that PDF rasterised by pdfium, lightly
degraded (noise, specks) and stored as JPEG pages, with the generator's own functions
(`samples.render`) so the evaluation's scans and the generated corpus's scans are made the same way.
Everything is deterministic: same text and seed, same bytes.
"""
from __future__ import annotations

import io
import zlib
from pathlib import Path
from typing import Literal

from reportlab.lib.pagesizes import A4
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen import canvas

Render = Literal["text", "scan"]
RENDERS: tuple[Render, ...] = ("text", "scan")

FONT_NAME = "SyntheseText"
# A Unicode TrueType font, so French typography (’ « » œ µ) and the odd Greek letter survive in the text
# layer; the last one ships with reportlab itself, so a font is always found.
FONT_FILES = (
    Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
    Path("/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf"),
    Path(__import__("reportlab").__file__).parent / "fonts" / "Vera.ttf",
)
FONT_SIZE = 10.5
LEADING = FONT_SIZE * 1.35
MARGIN = 56.0
SCAN_DPI = 300
SCAN_NOISE = 6.0
SCAN_SPECKS = 0.0003
SCAN_JPEG_QUALITY = 75


def _font() -> str:
    if FONT_NAME not in pdfmetrics.getRegisteredFontNames():
        path = next(p for p in FONT_FILES if p.exists())
        pdfmetrics.registerFont(TTFont(FONT_NAME, str(path)))
    return FONT_NAME


def layout_lines(text: str, font: str | None = None, size: float = FONT_SIZE) -> list[list[str]]:
    """The text's lines wrapped to the width of an A4 page, cut into pages. Blank lines are kept."""
    from samples.render import wrap

    font = font or _font()
    width = A4[0] - 2 * MARGIN
    per_page = int((A4[1] - 2 * MARGIN) // LEADING) + 1
    lines: list[str] = []
    for raw in text.replace("\t", " ").splitlines() or [""]:
        raw = raw.rstrip()
        lines += wrap(raw, font, size, width) if raw.strip() else [""]
    return [lines[i : i + per_page] for i in range(0, len(lines), per_page)] or [[""]]


def text_pdf(text: str) -> bytes:
    """`text` as a PDF with a text layer (A4, one Unicode font), wrapped at spaces, as many pages as needed."""
    font = _font()
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=A4, invariant=1, pageCompression=1)
    c.setCreator("synthese eval")
    for page in layout_lines(text, font):
        c.setFont(font, FONT_SIZE)
        y = A4[1] - MARGIN
        for line in page:
            c.drawString(MARGIN, y, line)
            y -= LEADING
        c.showPage()
    c.save()
    return buf.getvalue()


def scan_pdf(pdf: bytes, seed: int | str, dpi: int = SCAN_DPI) -> bytes:
    """A scanned copy of `pdf`: each page rasterised at `dpi`, light noise and specks, JPEG, no text layer.

    `seed` (a number, or a case name hashed to one) fixes the noise, so a case always scans the same.
    """
    import numpy as np

    from samples.render import ScanParams, degrade, image_pdf, rasterise

    if isinstance(seed, str):
        seed = zlib.crc32(seed.encode("utf-8"))
    rng = np.random.default_rng(seed)
    params = ScanParams(noise=SCAN_NOISE, specks=SCAN_SPECKS)
    pages = [(degrade(img, params, rng), None) for img in rasterise(pdf, dpi)]
    return image_pdf(pages, dpi, SCAN_JPEG_QUALITY)


def render(text: str, how: Render, seed: int | str = 0) -> bytes:
    """`text` as the PDF a dossier would hold: "text" (text layer) or "scan" (image only, for OCR)."""
    if how not in RENDERS:
        raise ValueError(f"unknown rendering {how!r}: one of {', '.join(RENDERS)}")
    pdf = text_pdf(text)
    return pdf if how == "text" else scan_pdf(pdf, seed)
