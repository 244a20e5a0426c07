"""Page images for the review page: the page a finding was read on, with the finding's boxes drawn.

- A page read by OCR (a scan, an image file): the same page image the OCR read, made upright the same
  way (`extractor.documents.ocr`: the embedded scan at its own resolution or the rendering at
  `ocr_dpi`, then the turn and deskew the ink gives), so `sources[].boxes` (pixels of that upright
  image at `ocr_dpi`, scaled to the image's own dpi) fall on the words.
- A page read from its text layer: pdfium renders it, and the boxes are those of the words of the
  source's span, from the same text-layer reading as the pipeline's (`read_pdf_pages`: pdfium's
  character boxes, or pdfplumber's where the pipeline used it), so offsets mean the same thing.

Images are made on demand and kept in memory only (an LRU of a few pages and of the JPEGs sent):
nothing of a page is written to disk.
"""
from __future__ import annotations

import io
import os
import threading
from collections import OrderedDict
from pathlib import Path

from PIL import Image, ImageDraw

from extractor.config import Settings
from models.synthesis import DocumentInfo, Source

THUMB_WIDTH = 420
FULL_WIDTH = 1400
TEXT_DPI = 150  # a text PDF page rendered for the eye; word boxes are scaled from ocr_dpi
HIGHLIGHT = (255, 214, 0, 110)
OUTLINE = (220, 30, 30, 255)


class PageUnavailable(Exception):
    """The page cannot be shown (document gone, changed since it was read, unreadable)."""


class _LRU:
    def __init__(self, size: int):
        self.size = size
        self.items: OrderedDict = OrderedDict()

    def get(self, key):
        if key in self.items:
            self.items.move_to_end(key)
            return self.items[key]
        return None

    def put(self, key, value) -> None:
        self.items[key] = value
        self.items.move_to_end(key)
        while len(self.items) > self.size:
            self.items.popitem(last=False)


def _upright(gray: Image.Image, settings: Settings) -> Image.Image:
    """The page turned and deskewed as ocr_image turns it before tesseract reads it (the ink decides;
    the rare page the ink cannot tell 90 from 270 on, left to OSD at run time, is shown as the ink says)."""
    from extractor.documents.ocr import DESKEW_MIN_ANGLE, deskew, find_orientation, rotate_upright

    found = find_orientation(gray, settings.ocr_detect_orientation, settings.ocr_deskew)
    image = rotate_upright(gray, found.rotate)
    if abs(found.skew) >= DESKEW_MIN_ANGLE:
        image = deskew(image, found.skew)
    return image


def document_path(folder: Path, doc: DocumentInfo) -> Path:
    """The document's file inside the dossier folder; PageUnavailable if it left it, is a link or changed."""
    path = folder / doc.path
    try:
        inside = path.resolve().is_relative_to(folder.resolve())
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        raise PageUnavailable("le document n'est plus dans le dossier") from None
    if not inside or path.is_symlink():
        raise PageUnavailable("document hors du dossier")
    if doc.size and st.st_size != doc.size:
        raise PageUnavailable("le document a changé depuis sa lecture : relancez `synthese run`")
    return path


def _band(boxes, width: int, height: int) -> tuple[int, int, int, int]:
    """A window around the boxes, about half the page wide and a sixth high, inside the page: the
    words around a finding stay legible in a thumbnail."""
    left, top = min(b[0] for b in boxes), min(b[1] for b in boxes)
    right, bottom = max(b[2] for b in boxes), max(b[3] for b in boxes)
    w = min(width, max(width * 0.55, right - left + width * 0.1))
    h = min(height, max(height * 0.14, bottom - top + height * 0.06))
    x = min(max(0.0, (left + right) / 2 - w / 2), width - w)
    y = min(max(0.0, (top + bottom) / 2 - h / 2), height - h)
    return int(x), int(y), int(x + w), int(y + h)


class PageImages:
    """Renders page images with boxes; caches in memory only."""

    def __init__(self, settings: Settings | None = None, pages: int = 6, images: int = 128):
        self.settings = settings or Settings()
        self._pages = _LRU(pages)  # (path, sha, page, ocr) -> (image, boxes scale, text-layer words)
        self._jpegs = _LRU(images)
        self._lock = threading.Lock()

    def _base(self, folder: Path, doc: DocumentInfo, page: int, ocr: bool):
        key = (str(folder), doc.path, doc.sha256, page, ocr)
        with self._lock:
            hit = self._pages.get(key)
        if hit is not None:
            return hit
        path = document_path(folder, doc)
        try:
            base = self._read(path, doc, page, ocr)
        except PageUnavailable:
            raise
        except Exception as e:  # noqa: BLE001 - any library failure is "cannot show", never a crash of the page
            from extractor.errors import DocumentError

            detail = e.reason if isinstance(e, DocumentError) else type(e).__name__
            raise PageUnavailable(f"la page ne peut pas être affichée ({detail})") from None
        with self._lock:
            self._pages.put(key, base)
        return base

    def _read(self, path: Path, doc: DocumentInfo, page: int, ocr: bool):
        from extractor.documents.ocr import open_image_frames, pdf_page_image, to_grayscale
        from extractor.documents.pdfimages import plain_image_pages

        s = self.settings
        if doc.kind == "image":
            for n, frame in enumerate(open_image_frames(path, s), 1):
                if n == page:
                    return _upright(to_grayscale(frame), s), 1.0, None
            raise PageUnavailable("page absente du document")
        import pypdfium2 as pdfium

        from extractor.documents.textlayer import open_pdf, read_pdf_pages

        pdf = open_pdf(path, s)
        try:
            if not 1 <= page <= len(pdf):
                raise PageUnavailable("page absente du document")
            if ocr:
                # Read at the scan's own resolution; its boxes were given at ocr_dpi.
                image = pdf_page_image(pdf, page - 1, s.ocr_dpi, s.max_image_pixels, plain_image_pages(path, len(pdf)))
                return _upright(image, s), image.info["dpi"][0] / s.ocr_dpi, None
            words = read_pdf_pages(pdf, path, s)[page - 1].words
            rendered = pdf[page - 1].render(scale=TEXT_DPI / 72).to_pil().convert("RGB")
            return rendered, TEXT_DPI / s.ocr_dpi, words
        finally:
            try:
                pdf.close()
            except pdfium.PdfiumError:
                pass

    def boxes(self, folder: Path, doc: DocumentInfo, source: Source) -> list[tuple[float, float, float, float]]:
        """The source's boxes (left, top, right, bottom) in pixels of the base image."""
        _, scale, words = self._base(folder, doc, source.page, source.ocr)
        if source.ocr or words is None:
            boxes = source.boxes
        else:
            boxes = [w.box for w in words if w.end > source.start and w.start < source.end]
        return [(b.left * scale, b.top * scale, (b.left + b.width) * scale, (b.top + b.height) * scale) for b in boxes]

    def jpeg(self, folder: Path, doc: DocumentInfo, source: Source, width: int = THUMB_WIDTH,
             crop: bool = False) -> bytes:
        """The page as a JPEG `width` pixels wide with the source's boxes drawn.

        With `crop`, only a band of the page around the boxes (a thumbnail that shows the words)."""
        key = (str(folder), doc.path, doc.sha256, source.page, source.ocr, source.start, source.end,
               tuple((b.left, b.top, b.width, b.height) for b in source.boxes), width, crop)
        with self._lock:
            hit = self._jpegs.get(key)
        if hit is not None:
            return hit
        image, _, _ = self._base(folder, doc, source.page, source.ocr)
        boxes = self.boxes(folder, doc, source)
        if crop and boxes:
            x0, y0, x1, y1 = _band(boxes, image.width, image.height)
            image = image.crop((x0, y0, x1, y1))
            boxes = [(a - x0, b - y0, c - x0, d - y0) for a, b, c, d in boxes]
        # Scale first, draw after: compositing a 300 dpi page costs ~1 s, a thumbnail a few ms.
        k = min(1.0, width / image.width)
        out = image if k == 1.0 else image.resize((width, max(1, round(image.height * k))), Image.Resampling.BILINEAR)
        out = out.convert("RGBA")
        boxes = [(a * k, b * k, c * k, d * k) for a, b, c, d in boxes]
        overlay = Image.new("RGBA", out.size, (0, 0, 0, 0))
        draw = ImageDraw.Draw(overlay)
        line = max(2, round(out.width / 400))
        for left, top, right, bottom in boxes:
            pad = line + 1
            draw.rectangle((left - pad, top - pad, right + pad, bottom + pad), fill=HIGHLIGHT, outline=OUTLINE,
                           width=line)
        out = Image.alpha_composite(out, overlay).convert("RGB")
        buf = io.BytesIO()
        out.save(buf, "JPEG", quality=82)
        data = buf.getvalue()
        with self._lock:
            self._jpegs.put(key, data)
        return data
