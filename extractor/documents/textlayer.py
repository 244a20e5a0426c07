"""Text layer: the text a PDF carries, page by page, with word offsets and boxes.

Two engines, chosen for cost (issue 4):
- pypdfium2 reads plain pages (~2 ms/page). Its text follows the content stream, which is the
  reading order for nearly every generator.
- pdfplumber (pdfminer, ~50x slower) is used only where it pays: on a page whose pdfium text
  boxes show two columns drawn row by row (left line, right line, left line...), where the
  stream order interleaves the columns; pdfplumber's char geometry gives each column in turn.
  It is also the fallback when pdfium cannot open a broken file (the engines fail on different
  files, so the fallback recovers some of them).

The page text returned here is what every later offset points into. Lines end with "\\n".
Word boxes are in pixels at `settings.ocr_dpi` with the origin at the top-left, the same scale
as an OCR rendering of the page. A page with fewer than `settings.min_text_chars` printable
characters comes back with `source="empty"`: the reader OCRs it.

Library errors never leave this module: they become `DocumentError` with a fixed detail,
because pdfium/pdfminer messages can quote document metadata (where patient names sit).
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from extractor.config import Settings
from extractor.errors import DocumentError
from models.document import Box, Page, Word

log = logging.getLogger(__name__)

# pdfium's text output uses "\r\n" for line ends and a few control characters of its own
# ("\x02" marks a hyphen it found at a line end, "\ufffe" one it generated).
_PDFIUM_CHARS = {"\r": None, "\x02": "-", "\ufffe": "-", "\ufeff": None, "\t": " ", "\xa0": " "}
_WORD_RE = re.compile(r"\S+")

# Two-column detection: at least this many text boxes on each side of a gutter, and at least this
# many left/right switches in stream order before we pay for pdfplumber.
MIN_COLUMN_BOXES = 3
MIN_COLUMN_SWITCHES = 3


def count_printable(text: str) -> int:
    """Printable, non-space characters: what decides whether a page needs OCR."""
    return sum(1 for ch in text if ch.isprintable() and not ch.isspace())


def open_pdf(path: Path, settings: Settings) -> pdfium.PdfDocument:
    """Open a PDF with pdfium and check its limits. Raises DocumentError encrypted/truncated/too_large.

    A PDF encrypted with an empty user password opens (pdfium tries the empty password itself).
    """
    try:
        pdf = pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as e:
        if getattr(e, "err_code", None) in (pdfium_c.FPDF_ERR_PASSWORD, pdfium_c.FPDF_ERR_SECURITY):
            raise DocumentError("encrypted", "the PDF needs a password") from None
        raise DocumentError("truncated", "pdfium could not parse the file structure") from None
    except OSError:
        raise DocumentError("unreadable", "the file could not be read") from None
    try:
        check_limits(len(pdf), (pdf.get_page_size(i) for i in range(len(pdf))), settings)
    except BaseException:
        pdf.close()
        raise
    return pdf


def check_limits(n_pages: int, sizes, settings: Settings) -> None:
    """Raise DocumentError("too_large") for too many pages or a page of absurd size (PDF points)."""
    if n_pages > settings.max_pages:
        raise DocumentError("too_large", f"{n_pages} pages, limit {settings.max_pages}")
    for i, (w, h) in enumerate(sizes):
        if w > settings.max_page_points or h > settings.max_page_points or w <= 0 or h <= 0:
            raise DocumentError("too_large", f"page {i + 1} declares a size beyond {settings.max_page_points:g} points")


def read_text_layer(path: Path, settings: Settings) -> list[Page]:
    """Every page of the PDF at `path`, 1-based, read from its text layer.

    Pages with too little text have `source="empty"` (to OCR). Raises DocumentError:
    "encrypted" (a real user password), "truncated" (neither engine can parse it),
    "too_large" (pages or page size beyond the settings), "unreadable".
    """
    try:
        pdf = open_pdf(path, settings)
    except DocumentError as e:
        if e.reason != "truncated":
            raise
        log.debug("pdfium could not open a PDF; trying pdfplumber")
        return _read_with_pdfplumber(path, settings)
    try:
        return read_pdf_pages(pdf, path, settings)
    finally:
        pdf.close()


def read_pdf_pages(pdf: pdfium.PdfDocument, path: Path, settings: Settings) -> list[Page]:
    """Text-layer pages of an already opened (and limit-checked) pdfium document."""
    scale = settings.ocr_dpi / 72.0
    pages: list[Page] = []
    plumber = _LazyPlumber(path)
    try:
        for index in range(len(pdf)):
            page = None
            try:
                page = _pdfium_page(pdf, index, scale, plumber)
            except pdfium.PdfiumError:
                log.debug("pdfium failed on page %d; trying pdfplumber", index + 1)
            if page is None or page.source == "empty":
                # The engines fail on different pages: try the other one before sending the page to OCR.
                other = _plumber_page(plumber, index, scale)
                if other is not None and (page is None or count_printable(other.text) > count_printable(page.text)):
                    page = other
            if page is None:
                page = Page(number=index + 1)
            _mark_empty(page, settings)
            pages.append(page)
    finally:
        plumber.close()
    return pages


def _mark_empty(page: Page, settings: Settings) -> None:
    if count_printable(page.text) < settings.min_text_chars:
        page.source = "empty"
    else:
        page.source = "text_layer"


# ---------------------------------------------------------------- pdfium

def _pdfium_page(pdf: pdfium.PdfDocument, index: int, scale: float, plumber: "_LazyPlumber") -> Page:
    page = pdf[index]
    textpage = page.get_textpage()
    try:
        raw = textpage.get_text_range()
        width, height = page.get_size()
        if page.get_rotation() == 0 and _columns_interleaved(textpage, width):
            reordered = _plumber_page(plumber, index, scale, columns=True)
            if reordered is not None and count_printable(reordered.text) >= 0.9 * count_printable(raw):
                return reordered
        text, raw_index = _normalise(raw)
        words = _pdfium_words(textpage, text, raw_index, height, scale)
        return Page(number=index + 1, text=text, source="text_layer", words=words)
    finally:
        textpage.close()
        page.close()


def _normalise(raw: str) -> tuple[str, list[int]]:
    """pdfium text -> our page text, and for each output character its index in `raw`."""
    out: list[str] = []
    where: list[int] = []
    for i, ch in enumerate(raw):
        if ch in _PDFIUM_CHARS:
            ch = _PDFIUM_CHARS[ch]
            if ch is None:
                continue
        elif ch != "\n" and not ch.isprintable():
            continue
        out.append(ch)
        where.append(i)
    # pdfium ends the last line without a newline; strip trailing blanks line by line.
    text = "".join(out)
    if "\n" in text and (" \n" in text):
        keep = [not (text[k] == " " and _only_spaces_until_newline(text, k)) for k in range(len(text))]
        text = "".join(ch for ch, k in zip(text, keep) if k)
        where = [w for w, k in zip(where, keep) if k]
    return text, where


def _only_spaces_until_newline(text: str, k: int) -> bool:
    j = k
    while j < len(text) and text[j] == " ":
        j += 1
    return j < len(text) and text[j] == "\n"


def _pdfium_words(textpage, text: str, raw_index: list[int], page_height: float, scale: float) -> list[Word]:
    words = []
    for m in _WORD_RE.finditer(text):
        first = _char_box(textpage, raw_index[m.start()])
        last = _char_box(textpage, raw_index[m.end() - 1])
        if first is None or last is None:
            continue
        left, right = min(first[0], last[0]), max(first[2], last[2])
        bottom, top = min(first[1], last[1]), max(first[3], last[3])
        words.append(Word(text=m.group(), start=m.start(), end=m.end(), conf=100.0,
                          box=_box(left, page_height - top, right, page_height - bottom, scale)))
    return words


def _char_box(textpage, text_index: int):
    char_index = pdfium_c.FPDFText_GetCharIndexFromTextIndex(textpage, text_index)
    if char_index < 0:
        return None
    try:
        return textpage.get_charbox(char_index)
    except pdfium.PdfiumError:
        return None


def _box(x0: float, top: float, x1: float, bottom: float, scale: float) -> Box:
    return Box(left=max(0, round(x0 * scale)), top=max(0, round(top * scale)),
               width=max(0, round((x1 - x0) * scale)), height=max(0, round((bottom - top) * scale)))


def _columns_interleaved(textpage, page_width: float) -> bool:
    """Cheap test on pdfium's text boxes: two columns whose lines alternate in stream order."""
    n = textpage.count_rects()
    if n < 2 * MIN_COLUMN_BOXES:
        return False
    rects = [textpage.get_rect(i) for i in range(n)]  # (left, bottom, right, top), stream order
    gutter = find_gutter([(r[0], r[2]) for r in rects], page_width)
    if gutter is None:
        return False
    sides = [("L" if r[2] <= gutter else "R") for r in rects if r[2] <= gutter or r[0] >= gutter]
    switches = sum(1 for a, b in zip(sides, sides[1:]) if a != b)
    return switches >= MIN_COLUMN_SWITCHES


def find_gutter(spans: list[tuple[float, float]], page_width: float) -> float | None:
    """An x in the middle of the page crossed by few text boxes, with enough boxes on each side.

    Boxes crossing it (a title, a footer) are allowed if they are few compared with the column lines.
    """
    best, best_score = None, 0
    x = page_width * 0.3
    while x <= page_width * 0.7:
        left = sum(1 for a, b in spans if b <= x)
        right = sum(1 for a, b in spans if a >= x)
        cross = len(spans) - left - right
        score = min(left, right)
        if score >= MIN_COLUMN_BOXES and cross * 4 <= score and score > best_score:
            best, best_score = x, score
        x += 2.0
    return best


# ---------------------------------------------------------------- pdfplumber

class _LazyPlumber:
    """Opens the PDF with pdfplumber only if a page needs it (pdfminer's parse is the costly part)."""

    def __init__(self, path: Path):
        self.path = path
        self._pdf = None
        self._failed = False

    def get(self):
        if self._pdf is None and not self._failed:
            self._pdf = _plumber_open(self.path)
            self._failed = self._pdf is None
        return self._pdf

    def close(self) -> None:
        if self._pdf is not None:
            try:
                self._pdf.close()
            except Exception:  # noqa: BLE001 - closing a broken file must not hide the result
                pass


def _plumber_open(path: Path, raise_password: bool = False):
    import pdfplumber
    from pdfminer.pdfdocument import PDFPasswordIncorrect

    try:
        pdf = pdfplumber.open(str(path), password="")
        _ = pdf.pages  # forces the page tree: a broken one fails here, not later
        return pdf
    except PDFPasswordIncorrect:
        if raise_password:
            raise DocumentError("encrypted", "the PDF needs a password") from None
        return None
    except Exception as e:  # noqa: BLE001 - pdfminer raises many unrelated types on broken files
        if raise_password and "password" in type(e).__name__.lower():
            raise DocumentError("encrypted", "the PDF needs a password") from None
        return None


def _plumber_page(plumber: _LazyPlumber, index: int, scale: float, columns: bool = False) -> Page | None:
    pdf = plumber.get()
    if pdf is None or index >= len(pdf.pages):
        return None
    try:
        return plumber_page(pdf.pages[index], index + 1, scale, columns)
    except Exception:  # noqa: BLE001 - a failure of the fallback engine leaves the page to OCR
        log.debug("pdfplumber failed on page %d", index + 1)
        return None


def plumber_page(ppage, number: int, scale: float, columns: bool = False) -> Page:
    """One page through pdfplumber. With `columns`, the page is cut into the full-width part above
    the two-column block, the left column, the right column and the part below, read in that order."""
    words = ppage.extract_words(keep_blank_chars=False, use_text_flow=False)
    regions = [words]
    if columns and words:
        regions = _column_regions(words, float(ppage.width))
    text_parts: list[str] = []
    out_words: list[Word] = []
    offset = 0
    for region in regions:
        for line in _lines(region):
            if text_parts:
                text_parts.append("\n")
                offset += 1
            for k, w in enumerate(line):
                if k:
                    text_parts.append(" ")
                    offset += 1
                token = w["text"]
                out_words.append(Word(text=token, start=offset, end=offset + len(token), conf=100.0,
                                      box=_box(w["x0"], w["top"], w["x1"], w["bottom"], scale)))
                text_parts.append(token)
                offset += len(token)
    return Page(number=number, text="".join(text_parts), source="text_layer", words=out_words)


def _lines(words: list[dict]) -> list[list[dict]]:
    """Group words into lines by their top (3 pt tolerance), each line left to right, lines top to bottom."""
    lines: list[list[dict]] = []
    for w in sorted(words, key=lambda w: (round(w["top"]), w["x0"])):
        if lines and abs(lines[-1][0]["top"] - w["top"]) <= 3:
            lines[-1].append(w)
        else:
            lines.append([w])
    return [sorted(line, key=lambda w: w["x0"]) for line in lines]


def _column_regions(words: list[dict], page_width: float) -> list[list[dict]]:
    gutter = find_gutter([(w["x0"], w["x1"]) for w in _line_spans(words)], page_width)
    if gutter is None:
        return [words]
    left = [w for w in words if w["x1"] <= gutter]
    right = [w for w in words if w["x0"] >= gutter]
    if not left or not right:
        return [words]
    band_top = min(min(w["top"] for w in left), min(w["top"] for w in right))
    band_bottom = max(max(w["bottom"] for w in left), max(w["bottom"] for w in right))
    crossing = [w for w in words if w["x1"] > gutter and w["x0"] < gutter]
    above = [w for w in crossing if w["bottom"] <= band_top + 1]
    below = [w for w in crossing if w["top"] >= band_bottom - 1 and w not in above]
    # A word straddling the gutter inside the block is rare (find_gutter allows few): keep it with the left column.
    left += [w for w in crossing if w not in above and w not in below]
    return [above, left, right, below]


def _line_spans(words: list[dict]) -> list[dict]:
    """Horizontal runs of words (a gap wider than 15 pt starts a new run): the text boxes a column test needs."""
    spans = []
    for line in _lines(words):
        run = dict(line[0])
        for w in line[1:]:
            if w["x0"] - run["x1"] > 15:
                spans.append(run)
                run = dict(w)
            else:
                run["x1"] = w["x1"]
        spans.append(run)
    return spans


def _read_with_pdfplumber(path: Path, settings: Settings) -> list[Page]:
    pdf = _plumber_open(path, raise_password=True)
    if pdf is None:
        raise DocumentError("truncated", "neither PDF engine could parse the file structure")
    try:
        check_limits(len(pdf.pages), ((float(p.width), float(p.height)) for p in pdf.pages), settings)
        scale = settings.ocr_dpi / 72.0
        pages = []
        for i, ppage in enumerate(pdf.pages):
            try:
                page = plumber_page(ppage, i + 1, scale)
            except Exception:  # noqa: BLE001 - a broken page stays empty
                page = Page(number=i + 1)
            _mark_empty(page, settings)
            pages.append(page)
        return pages
    finally:
        pdf.close()

