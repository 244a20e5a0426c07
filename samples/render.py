"""Rendering of synthetic documents: layout into pages, text PDFs (reportlab), and scans.

A document is described as a `DocSpec` (letterhead, running header, footer, body elements). `layout`
places every string on a page and returns, per page, the strings drawn in reading order; the gold page
text is built from exactly those strings, so the text layer and the gold never drift apart.

Scans are made by rendering the text PDF with pdfium and degrading the image (skew, rotation, noise,
blur, low contrast, JPEG artefacts) with numpy/OpenCV. Everything is seeded: same inputs, same bytes.

Conventions recorded in the gold:
- `rotation`: the clockwise angle (0/90/180/270) by which the upright page was turned when "scanned";
  turning the image back counter-clockwise by this angle makes it upright.
- `skew`: the small angle, in degrees, counter-clockwise positive, the content was turned by.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field

import cv2
import numpy as np
import pypdfium2 as pdfium
from PIL import Image
from reportlab.lib.pagesizes import A4
from reportlab.lib.utils import ImageReader
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen import canvas

PAGE_W, PAGE_H = A4
MARGIN = 56.0
BODY_SIZE = 10.0
LEADING = 13.5
TOP_Y = PAGE_H - 48.0
BOTTOM_Y = 64.0


@dataclass
class Drawn:
    """One string drawn on a page. `same_line` joins it to the previous string with a space in the page text."""

    x: float
    y: float
    font: str
    size: float
    text: str
    same_line: bool = False


@dataclass
class DocSpec:
    """What a document says, before layout. Body elements are tuples:
    ("title", text) ("heading", text) ("line", text) ("para", text) ("space",)
    ("twocol", left_lines, right_lines) ("table", rows)  (first row is the header)."""

    running_header: str
    footer: str  # may hold {page} and {pages}
    letterhead: list[str] = field(default_factory=list)
    body: list[tuple] = field(default_factory=list)


def wrap(text: str, font: str, size: float, width: float) -> list[str]:
    """Greedy word wrap by rendered width."""
    words = text.split(" ")
    lines: list[str] = []
    cur = ""
    for w in words:
        cand = f"{cur} {w}" if cur else w
        if stringWidth(cand, font, size) <= width or not cur:
            cur = cand
        else:
            lines.append(cur)
            cur = w
    if cur:
        lines.append(cur)
    return lines


def layout(spec: DocSpec) -> list[list[Drawn]]:
    """Place the document on A4 pages. Returns, per page, the drawn strings in reading order."""
    width = PAGE_W - 2 * MARGIN
    pages: list[list[Drawn]] = []
    page: list[Drawn] = []
    y = 0.0

    def new_page() -> None:
        nonlocal page, y
        page = []
        pages.append(page)
        page.append(Drawn(MARGIN, PAGE_H - 30, "Helvetica", 7.5, spec.running_header))
        y = TOP_Y - 8

    def need(h: float) -> None:
        if y - h < BOTTOM_Y:
            new_page()

    new_page()
    for i, line in enumerate(spec.letterhead):
        font, size = ("Helvetica-Bold", 13.0) if i == 0 else ("Helvetica", 9.0)
        page.append(Drawn(MARGIN, y, font, size, line))
        y -= size + 4
    y -= 8
    for el in spec.body:
        kind = el[0]
        if kind == "space":
            y -= LEADING * 0.6
        elif kind == "title":
            need(LEADING * 3)
            y -= 6
            tw = stringWidth(el[1], "Helvetica-Bold", 12)
            page.append(Drawn((PAGE_W - tw) / 2, y, "Helvetica-Bold", 12, el[1]))
            y -= LEADING + 8
        elif kind == "heading":
            need(LEADING * 3)
            y -= 4
            page.append(Drawn(MARGIN, y, "Helvetica-Bold", 10.5, el[1]))
            y -= LEADING + 1
        elif kind in ("line", "para"):
            for ln in wrap(el[1], "Helvetica", BODY_SIZE, width):
                need(LEADING)
                page.append(Drawn(MARGIN, y, "Helvetica", BODY_SIZE, ln))
                y -= LEADING
        elif kind == "twocol":
            left, right = el[1], el[2]
            rows = max(len(left), len(right))
            need(LEADING * rows)
            for j, ln in enumerate(left):
                page.append(Drawn(MARGIN, y - j * LEADING, "Helvetica", 9.5, ln))
            for j, ln in enumerate(right):
                page.append(Drawn(MARGIN + width * 0.55, y - j * LEADING, "Helvetica", 9.5, ln))
            y -= rows * LEADING + 4
        elif kind == "table":
            rows = el[1]
            xs = [MARGIN, MARGIN + width * 0.42, MARGIN + width * 0.60, MARGIN + width * 0.76]
            for r, row in enumerate(rows):
                need(LEADING)
                font = "Helvetica-Bold" if r == 0 else "Helvetica"
                for c, cell in enumerate(row):
                    page.append(Drawn(xs[c], y, font, 9.5, cell, same_line=c > 0))
                y -= LEADING
            y -= 4
        else:  # pragma: no cover - a programming error in the generator
            raise ValueError(kind)
    n = len(pages)
    for i, p in enumerate(pages, 1):
        p.append(Drawn(MARGIN, 30, "Helvetica", 7.5, spec.footer.format(page=i, pages=n)))
    return pages


def page_text(drawn: list[Drawn]) -> str:
    """The gold text of a page: drawn strings, one per line, table cells of a row joined by a space."""
    out = ""
    for d in drawn:
        if d.same_line:
            out += " " + d.text
        else:
            out += ("\n" if out else "") + d.text
    return out


def _canvas(buf: io.BytesIO) -> canvas.Canvas:
    c = canvas.Canvas(buf, pagesize=A4, invariant=1, pageCompression=1)
    c.setCreator("Synthese sample generator")
    c.setProducer("Synthese sample generator")
    return c


def _draw_text_page(c: canvas.Canvas, drawn: list[Drawn]) -> None:
    for d in drawn:
        c.setFont(d.font, d.size)
        c.drawString(d.x, d.y, d.text)


def text_pdf(pages: list[list[Drawn]]) -> bytes:
    """A PDF with a text layer, one page per laid-out page."""
    buf = io.BytesIO()
    c = _canvas(buf)
    for drawn in pages:
        _draw_text_page(c, drawn)
        c.showPage()
    c.save()
    return buf.getvalue()


def rasterise(pdf: bytes, dpi: int) -> list[Image.Image]:
    """Render every page of a PDF to a grayscale image."""
    doc = pdfium.PdfDocument(pdf)
    try:
        return [doc[i].render(scale=dpi / 72.0, grayscale=True).to_pil().convert("L") for i in range(len(doc))]
    finally:
        doc.close()


@dataclass
class ScanParams:
    rotation: int = 0
    skew: float = 0.0
    noise: float = 6.0
    blur: float = 0.0
    low: int = 0  # contrast: black maps to `low`, white to `high`
    high: int = 255
    specks: float = 0.0005


def degrade(img: Image.Image, p: ScanParams, rng: np.random.Generator) -> Image.Image:
    """Make a clean page image look scanned: contrast, skew, blur, noise, specks, then rotation."""
    a = np.asarray(img, dtype=np.float32)
    a = p.low + a * (p.high - p.low) / 255.0
    if p.skew:
        h, w = a.shape
        m = cv2.getRotationMatrix2D((w / 2, h / 2), p.skew, 1.0)
        a = cv2.warpAffine(a, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=float(p.high))
    if p.blur:
        a = cv2.GaussianBlur(a, (0, 0), p.blur)
    if p.noise:
        a = a + rng.normal(0.0, p.noise, a.shape).astype(np.float32)
    if p.specks:
        mask = rng.random(a.shape) < p.specks
        a[mask] = p.low
    a = np.clip(a, 0, 255).astype(np.uint8)
    if p.rotation:
        a = np.ascontiguousarray(np.rot90(a, k=(4 - p.rotation // 90) % 4))
    return Image.fromarray(a, mode="L")


def unreadable_page(dpi: int, rng: np.random.Generator) -> Image.Image:
    """An almost blank, noisy fax page: nothing a reader could recover."""
    w, h = int(PAGE_W / 72 * dpi), int(PAGE_H / 72 * dpi)
    a = rng.normal(232.0, 22.0, (h // 4, w // 4)).astype(np.float32)
    a = cv2.resize(a, (w, h), interpolation=cv2.INTER_CUBIC)
    a = cv2.GaussianBlur(a, (0, 0), 3.0)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), mode="L")


def encode(img: Image.Image, fmt: str, quality: int = 70) -> bytes:
    """Encode an image deterministically (no timestamps in any of these writers)."""
    buf = io.BytesIO()
    if fmt == "jpeg":
        img.save(buf, format="JPEG", quality=quality, optimize=False)
    elif fmt == "png":
        img.save(buf, format="PNG", optimize=False, compress_level=6)
    else:  # pragma: no cover
        raise ValueError(fmt)
    return buf.getvalue()


def tiff(images: list[Image.Image], dpi: int) -> bytes:
    """A multi-page TIFF (deflate), as a scanner's batch output."""
    buf = io.BytesIO()
    images[0].save(buf, format="TIFF", save_all=True, append_images=images[1:], compression="tiff_deflate", dpi=(dpi, dpi))
    return buf.getvalue()


def image_pdf(pages: list[tuple[Image.Image | None, list[Drawn] | None]], dpi: int, quality: int = 60) -> bytes:
    """A PDF whose pages are scanned images (JPEG-compressed) or, for a mixed PDF, text pages.

    Each item is (image, None) for a scanned page or (None, drawn) for a text page.
    """
    buf = io.BytesIO()
    c = _canvas(buf)
    for img, drawn in pages:
        if img is not None:
            w, h = img.size[0] * 72.0 / dpi, img.size[1] * 72.0 / dpi
            c.setPageSize((w, h))
            c.drawImage(ImageReader(io.BytesIO(encode(img, "jpeg", quality))), 0, 0, width=w, height=h)
        else:
            c.setPageSize(A4)
            _draw_text_page(c, drawn or [])
        c.showPage()
    c.save()
    return buf.getvalue()
