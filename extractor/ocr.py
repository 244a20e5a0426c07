"""OCR: the only module that talks to tesseract (through pytesseract).

A page image goes: EXIF orientation (images) -> grayscale -> skew (projection profiles on a small
binarised copy, +-5 degrees) -> tesseract. Only when that reading is poor (mean confidence below
0.7, or no words) is orientation asked of tesseract OSD (~150 dpi copy); a proposed turn is
checked by reading the turned page and keeping the better reading. The result is a `Page` whose
text is built from tesseract's words, each word with its offsets in that text and its box in the
upright image.

Speed (issue 4): pytesseract's default path encodes a PNG in a shared temp folder (~2 s of a
~4 s page). We write an uncompressed PGM ourselves into a private folder (0700) and run
tesseract with its output in the same folder, removed in a `finally`: nothing of the page,
image or text, is left readable by others in /tmp, even when tesseract is killed by the timeout.
A folder left by a SIGKILLed worker (no `finally` runs) is named with its pid and removed by the
next process that OCRs (`sweep_stale_temp_dirs`).

Errors: tesseract failing -> DocumentError("ocr_failed"); tesseract too slow -> "timeout";
an image beyond `settings.max_image_pixels` -> "too_large"; tesseract missing -> CouldNotRun
(a run-level problem, not a document's). Messages never carry tesseract's output.
"""
from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytesseract
from PIL import Image, ImageOps, ImageSequence

from extractor.config import Settings
from extractor.errors import CouldNotRun, DocumentError
from models.document import Box, Page, Word

log = logging.getLogger(__name__)

# OSD below this orientation confidence is not trusted. A turn it proposes is also checked: the page
# is read again turned and kept only if that reading scores better (confidence x words).
# Measured on rendered pages at ~150 dpi: right answers score 6-18.
OSD_MIN_CONFIDENCE = 2.0
OSD_LONG_SIDE = 1800  # OSD on a copy of ~150 dpi for A4: enough letter shapes, less to classify
# Below this mean word confidence (0-1) an upright reading is doubted and OSD is asked.
DOUBTFUL_CONFIDENCE = 0.7
DESKEW_MAX_ANGLE = 5.0
DESKEW_MIN_ANGLE = 0.2  # below this, turning the image costs more than it gains
DESKEW_WIDTH = 1000  # width of the copy the skew is measured on, in pixels
DIRECTION_WIDTH = 800  # width of the copy the direction of the text lines is measured on
DESKEW_MAX_POINTS = 150_000


# ---------------------------------------------------------------- images in

def rasterise_pdf_page(pdf, index: int, dpi: int, max_pixels: int | None = None) -> Image.Image:
    """Page `index` (0-based) of an open pypdfium2 document as a grayscale image at `dpi`.

    When the page at `dpi` would exceed `max_pixels`, the dpi is lowered to fit (down to 100);
    below that the page raises DocumentError("too_large"). The image's info["dpi"] holds the dpi used.
    """
    import pypdfium2 as pdfium

    page = pdf[index]
    try:
        width, height = page.get_size()
        if max_pixels and width * height * (dpi / 72) ** 2 > max_pixels:
            dpi = int(72 * math.sqrt(max_pixels / (width * height)))
            if dpi < 100:
                raise DocumentError("too_large", f"page {index + 1} is too large to rasterise")
        try:
            image = page.render(scale=dpi / 72, grayscale=True).to_pil()
        except pdfium.PdfiumError:
            raise DocumentError("truncated", f"page {index + 1} could not be rendered") from None
    finally:
        page.close()
    image = image.convert("L")
    image.info["dpi"] = (dpi, dpi)
    return image


def open_image_frames(path: Path, settings: Settings) -> Iterator[Image.Image]:
    """The frames of an image file (one for PNG/JPEG, one per page of a TIFF), upright per EXIF.

    Raises DocumentError: "too_large" (more pixels than settings.max_image_pixels, checked before
    decoding), "truncated" (cut short or undecodable), "unreadable" (I/O).
    """
    Image.MAX_IMAGE_PIXELS = settings.max_image_pixels
    try:
        # Pillow warns (above MAX_IMAGE_PIXELS) or raises (above twice that) when the header is read.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DocumentError("too_large", "the image has more pixels than the limit") from None
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise DocumentError("unreadable", "the file could not be read") from None
    except (OSError, SyntaxError, ValueError, EOFError):
        raise DocumentError("truncated", "the image header is cut short or corrupt") from None
    with im:
        try:
            for n, frame in enumerate(ImageSequence.Iterator(im)):
                if n >= settings.max_pages:
                    raise DocumentError("too_large", f"more than {settings.max_pages} frames")
                if frame.width * frame.height > settings.max_image_pixels:
                    raise DocumentError("too_large", f"frame {n + 1} has more pixels than the limit")
                frame.load()
                upright = ImageOps.exif_transpose(frame.copy())
                upright.info["dpi"] = im.info.get("dpi")
                yield upright
        except DocumentError:
            raise
        except (OSError, SyntaxError, ValueError, EOFError):
            # Pillow reports truncated and corrupt data as OSError/SyntaxError/ValueError.
            raise DocumentError("truncated", "the image data is cut short or corrupt") from None


def to_grayscale(image: Image.Image) -> Image.Image:
    """8-bit grayscale; transparency flattened onto white (a transparent scan is white paper)."""
    if image.mode.startswith("I") or image.mode == "F":
        arr = np.asarray(image, dtype=np.float64)
        top = arr.max() or 1.0
        return Image.fromarray((arr * (255.0 / top)).clip(0, 255).astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    return image.convert("L")


# ---------------------------------------------------------------- tesseract

TEMP_PREFIX = "synthese-ocr-"
_swept = False


def sweep_stale_temp_dirs(folder: str | None = None) -> int:
    """Remove the private OCR folders that processes no longer alive left behind; return how many.

    A worker killed with SIGKILL (the driver killed, a timeout) cannot run its `finally`: its folder
    (0700, so never readable by others) stays. Its name carries the pid that made it; a folder of
    ours whose pid is gone is removed. A live pid, someone else's folder or a foreign name is left alone.
    """
    folder = folder or tempfile.gettempdir()
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        pid = entry.name[len(TEMP_PREFIX):].split("-", 1)[0]
        if not entry.name.startswith(TEMP_PREFIX) or not pid.isdigit():
            continue
        try:
            if entry.stat(follow_symlinks=False).st_uid != os.geteuid() or not entry.is_dir(follow_symlinks=False):
                continue
            os.kill(int(pid), 0)
            continue  # alive
        except ProcessLookupError:
            pass
        except OSError:
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        removed += 1
    return removed


class _Tesseract:
    """Runs tesseract on images written uncompressed into a private folder, removed afterwards."""

    def __init__(self, settings: Settings):
        global _swept
        self.settings = settings
        self.timeout = settings.doc_timeout_base + settings.doc_timeout_per_page
        os.environ["OMP_THREAD_LIMIT"] = str(settings.tesseract_threads)
        if not _swept:  # once per process: what earlier killed workers left
            _swept = True
            sweep_stale_temp_dirs()
        self.dir = tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-")  # mode 0700

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def _run(self, image: Image.Image, name: str, extension: str, lang: str, config: str) -> str:
        src = os.path.join(self.dir, name + ".pgm")
        base = os.path.join(self.dir, name)
        image.save(src, format="PPM")  # binary PGM for mode L: no compression to pay for
        try:
            pytesseract.pytesseract.run_tesseract(src, base, extension, lang, config, timeout=self.timeout)
            with open(f"{base}.{extension}", "rb") as f:
                return f.read().decode("utf-8", errors="replace")
        except pytesseract.TesseractNotFoundError:
            raise CouldNotRun("tesseract is not installed or not on PATH") from None
        except pytesseract.TesseractError as e:
            raise DocumentError("ocr_failed", f"tesseract exited with status {e.status}") from None
        except RuntimeError as e:  # pytesseract's timeout
            if "timeout" in str(e).lower():
                raise DocumentError("timeout", f"tesseract took more than {self.timeout:g} s on a page") from None
            raise DocumentError("ocr_failed", "tesseract could not be run") from None
        except FileNotFoundError:
            raise DocumentError("ocr_failed", "tesseract wrote no output") from None
        finally:
            for leftover in (src, f"{base}.{extension}"):
                try:
                    os.unlink(leftover)
                except FileNotFoundError:
                    pass

    def osd(self, image: Image.Image) -> tuple[int, float]:
        """(degrees to turn clockwise, confidence); (0, 0.0) when OSD finds too little to decide."""
        try:
            out = self._run(image, "osd", "osd", "osd", "--psm 0")
        except DocumentError as e:
            if e.reason == "timeout":
                raise
            return 0, 0.0  # near-empty pages: "Too few characters"
        info = pytesseract.pytesseract.osd_to_dict(out)
        return int(info.get("rotate", 0)) % 360, float(info.get("orientation_conf", 0.0))

    def data(self, image: Image.Image, dpi: int | None) -> dict[str, list]:
        config = "-c tessedit_create_tsv=1 --psm 3"
        if dpi:
            config += f" --dpi {dpi}"
        out = self._run(image, "page", "tsv", self.settings.ocr_lang, config)
        return pytesseract.pytesseract.file_to_dict(out, "\t", -1)


# ---------------------------------------------------------------- orientation and skew

def measure_skew(image: Image.Image) -> float:
    """Skew of the text lines in degrees, counter-clockwise positive (PIL's convention), within +-5.

    Projection profiles on a small binarised copy: the angle that makes the rows' ink histogram
    sharpest. Returns 0.0 on a page with too little ink to tell.
    """
    ink = _ink(_small_copy(image, DESKEW_WIDTH))
    if not _enough_ink(ink):
        return 0.0
    sharpness = _profile_sharpness(ink)

    coarse = np.arange(-DESKEW_MAX_ANGLE, DESKEW_MAX_ANGLE + 1e-9, 0.5)
    best = max(coarse, key=sharpness)
    fine = np.arange(best - 0.5, best + 0.5 + 1e-9, 0.1)
    best = max(fine, key=sharpness)
    # Without text lines (a photo, a sideways page) the profile barely changes with the angle:
    # turning then would only blur the page.
    if sharpness(best) < 1.1 * sharpness(0.0):
        return 0.0
    return round(float(best), 2)


def text_direction(image: Image.Image) -> str:
    """"horizontal", "vertical" (a page turned by 90 or 270 degrees) or "unknown" (too little ink).

    Text lines make the ink profile across them sharp: we compare the sharpest row profile with the
    sharpest column profile (each over a +-5 degree search). Measured on 120 generated scans: ratio
    rows/columns >= 4.1 for upright and upside-down pages, <= 0.11 for sideways ones; ~17 ms a page.
    """
    ink = _ink(_small_copy(image, DIRECTION_WIDTH))
    if not _enough_ink(ink):
        return "unknown"
    rows, cols = _best_profile_sharpness(ink), _best_profile_sharpness(ink.T)
    if cols <= 0:
        return "horizontal"
    return "horizontal" if rows / cols >= 1.0 else "vertical"


def _small_copy(image: Image.Image, width: int) -> Image.Image:
    if image.width <= width:
        return image
    return image.resize((width, max(1, round(image.height * width / image.width))), Image.Resampling.BILINEAR)


def _ink(small: Image.Image) -> np.ndarray:
    """Boolean ink mask of a small grey copy (Otsu threshold)."""
    _, ink = cv2.threshold(np.asarray(small, dtype=np.uint8), 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    return ink > 0


def _enough_ink(ink: np.ndarray) -> bool:
    n = int(np.count_nonzero(ink))
    return 200 <= n <= 0.5 * ink.size


def _profile_sharpness(ink: np.ndarray, normalised: bool = False):
    """angle -> how sharp the ink profile across rows is once the page is turned back by `angle`
    (counter-clockwise degrees): text lines and the gaps between them make it peak. `normalised`
    makes scores comparable between two point sets (rows against columns)."""
    ys, xs = np.nonzero(ink)
    if len(xs) > DESKEW_MAX_POINTS:
        pick = np.random.default_rng(0).choice(len(xs), DESKEW_MAX_POINTS, replace=False)
        xs, ys = xs[pick], ys[pick]
    xs = xs.astype(np.float64) - ink.shape[1] / 2
    ys = ys.astype(np.float64)

    def sharpness(angle: float) -> float:
        t = math.radians(angle)
        rows = np.round(ys + xs * math.tan(t)).astype(np.int64)
        rows -= rows.min()
        hist = np.bincount(rows).astype(np.float64)
        score = float(np.sum(np.diff(hist) ** 2))
        return score * len(hist) / len(xs) ** 2 if normalised else score

    return sharpness


def _best_profile_sharpness(ink: np.ndarray) -> float:
    sharpness = _profile_sharpness(ink, normalised=True)
    return max(sharpness(a) for a in np.arange(-DESKEW_MAX_ANGLE, DESKEW_MAX_ANGLE + 1e-9, 1.0))


def rotate_upright(image: Image.Image, rotate: int) -> Image.Image:
    """Turn by `rotate` degrees clockwise (tesseract OSD's "Rotate" value)."""
    if rotate == 90:
        return image.transpose(Image.Transpose.ROTATE_270)
    if rotate == 180:
        return image.transpose(Image.Transpose.ROTATE_180)
    if rotate == 270:
        return image.transpose(Image.Transpose.ROTATE_90)
    return image


def deskew(image: Image.Image, skew: float) -> Image.Image:
    """Turn the page back by `skew` degrees (white fill, same size)."""
    arr = np.asarray(image, dtype=np.uint8)
    h, w = arr.shape
    m = cv2.getRotationMatrix2D((w / 2, h / 2), -skew, 1.0)
    out = cv2.warpAffine(arr, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=255)
    return Image.fromarray(out, "L")


# ---------------------------------------------------------------- page

def ocr_image(image: Image.Image, settings: Settings, number: int = 1, dpi: int | None = None) -> Page:
    """OCR one page image into a `Page` (source "ocr").

    `dpi` is the image's resolution when known (a rasterised PDF page); otherwise the image's own
    dpi tag is used if plausible, else tesseract estimates it from the text size.
    The text is built from tesseract's words: " " within a line, "\\n" between lines, a blank line
    between paragraphs and blocks. Word boxes are in pixels of the upright (turned, deskewed) image.
    Raises DocumentError "ocr_failed" / "timeout"; CouldNotRun when tesseract is missing.
    """
    dpi = dpi or _plausible_dpi(image.info.get("dpi"))
    gray = to_grayscale(image)
    tess = _Tesseract(settings)
    try:
        direction = text_direction(gray) if settings.ocr_detect_orientation else "horizontal"
        if direction == "vertical":
            # Sideways page: OSD only has to tell 90 from 270, then one reading.
            page = _read_sideways(tess, gray, settings, dpi, number)
        else:
            page = _straighten_and_read(tess, gray, settings, dpi, number)
            if settings.ocr_detect_orientation and _doubtful(page):
                # Lines are horizontal, the reading poor: the page may be upside down. Reading it turned
                # costs one reading, less than OSD plus one; the better reading wins.
                rotate = 180
                if direction == "unknown":
                    rotate, conf = _osd(tess, gray)
                    rotate = rotate if conf >= OSD_MIN_CONFIDENCE else 0
                if rotate:
                    turned = _straighten_and_read(tess, rotate_upright(gray, rotate), settings, dpi, number)
                    turned.rotation = rotate
                    if _score(turned) > _score(page):
                        page = turned
    finally:
        tess.close()
    return page


def _osd(tess: "_Tesseract", gray: Image.Image) -> tuple[int, float]:
    """OSD on a ~150 dpi copy, again at full resolution when the copy is too coarse to decide
    (seen: confidence 1.0 on a degraded sideways page that full resolution reads at 7.0)."""
    small = _osd_copy(gray)
    rotate, conf = tess.osd(small)
    if conf < OSD_MIN_CONFIDENCE and small is not gray:
        rotate, conf = tess.osd(gray)
    return rotate, conf


def _read_sideways(tess: "_Tesseract", gray: Image.Image, settings: Settings, dpi, number: int) -> Page:
    rotate, conf = _osd(tess, gray)
    if rotate in (90, 270) and conf >= OSD_MIN_CONFIDENCE:
        page = _straighten_and_read(tess, rotate_upright(gray, rotate), settings, dpi, number)
        page.rotation = rotate
        return page
    # OSD cannot say: read both ways, keep the better.
    best = None
    for rotate in (90, 270):
        page = _straighten_and_read(tess, rotate_upright(gray, rotate), settings, dpi, number)
        page.rotation = rotate
        if best is None or _score(page) > _score(best):
            best = page
    return best


def _straighten_and_read(tess: "_Tesseract", gray: Image.Image, settings: Settings, dpi, number: int) -> Page:
    skew = 0.0
    if settings.ocr_deskew:
        measured = measure_skew(gray)
        if abs(measured) >= DESKEW_MIN_ANGLE:
            skew = measured
            gray = deskew(gray, skew)
    page = words_to_page(tess.data(gray, dpi), number)
    page.skew = skew
    return page


def _doubtful(page: Page) -> bool:
    """A reading poor enough that the page may be turned: low mean confidence, or no words at all."""
    return page.ocr_confidence is None or page.ocr_confidence < DOUBTFUL_CONFIDENCE


def _score(page: Page) -> float:
    return (page.ocr_confidence or 0.0) * len(page.words)


def _osd_copy(gray: Image.Image) -> Image.Image:
    scale = min(1.0, OSD_LONG_SIDE / max(gray.size))
    if scale >= 1.0:
        return gray
    return gray.resize((max(1, int(gray.width * scale)), max(1, int(gray.height * scale))), Image.Resampling.BILINEAR)


def _plausible_dpi(value) -> int | None:
    try:
        dpi = round(float(value[0]))
    except (TypeError, ValueError, IndexError):
        return None
    return dpi if 70 <= dpi <= 1200 else None


def words_to_page(data: dict[str, list], number: int) -> Page:
    """Build a Page from tesseract's TSV columns (pytesseract's DICT output)."""
    parts: list[str] = []
    words: list[Word] = []
    offset = 0
    prev_line = prev_par = None
    for i, raw in enumerate(data.get("text", [])):
        token = str(raw).strip()
        try:
            conf = float(data["conf"][i])
        except (KeyError, ValueError):
            continue
        if not token or conf < 0:
            continue
        par = (data["block_num"][i], data["par_num"][i])
        line = par + (data["line_num"][i],)
        if prev_line is not None:
            sep = " " if line == prev_line else ("\n" if par == prev_par else "\n\n")
            parts.append(sep)
            offset += len(sep)
        box = Box(left=int(data["left"][i]), top=int(data["top"][i]),
                  width=int(data["width"][i]), height=int(data["height"][i]))
        words.append(Word(text=token, start=offset, end=offset + len(token), box=box, conf=conf))
        parts.append(token)
        offset += len(token)
        prev_line, prev_par = line, par
    confidence = round(sum(w.conf for w in words) / len(words) / 100.0, 4) if words else None
    return Page(number=number, text="".join(parts), source="ocr", words=words, ocr_confidence=confidence)
