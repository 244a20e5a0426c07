"""OCR: the only module that talks to tesseract (through pytesseract).

A page image goes: EXIF orientation (images) -> grayscale -> orientation from the ink alone
(`find_orientation`, ~20 ms: direction of the text lines, skew, which way up) -> turned and
deskewed -> tesseract, read once. Only when the reading is poor (mean confidence below 0.7, or no
words) and the ink could not tell which way up (capitals only, too little text), or when it is very
poor (below 0.5) whatever the ink said, is the page read the other way round too, or tesseract OSD
asked, and the better reading kept. The result is a `Page` whose text is built from tesseract's
words, each word with its offsets in that text and its box in the upright image.

A scanned PDF page is usually one image covering the page: that image is decoded at its own
resolution instead of rendering the page (`pdf_page_image`).

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
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytesseract
from PIL import Image, ImageOps, ImageSequence

from extractor.config import Settings
from extractor.errors import CouldNotRun, DocumentError
from models.document import Box, Page, Word

log = logging.getLogger(__name__)

# OSD (asked only when the ink cannot tell, see ocr_image) below this orientation confidence is not
# trusted. A turn it proposes is also checked: the page is read again turned and kept only if that
# reading scores better (confidence x words). Measured on rendered pages at ~150 dpi: right answers
# score 6-18.
OSD_MIN_CONFIDENCE = 2.0
OSD_LONG_SIDE = 1800  # OSD on a copy of ~150 dpi for A4: enough letter shapes, less to classify
# Below this mean word confidence (0-1) a reading the ink could not vouch for is doubted; below the
# second, even one it vouched for (a wrong verdict must not cost a page). On the 265 readable scans of
# the evaluation corpus, readings of pages the ink was sure of were all >= 0.5 (2 between 0.5 and 0.7).
DOUBTFUL_CONFIDENCE = 0.7
POOR_CONFIDENCE = 0.5
DESKEW_MAX_ANGLE = 5.0
DESKEW_MIN_ANGLE = 0.2  # below this, turning the image costs more than it gains
DESKEW_MAX_POINTS = 150_000


# ---------------------------------------------------------------- images in

def pdf_page_image(pdf, index: int, dpi: int, max_pixels: int | None = None) -> Image.Image:
    """Page `index` (0-based) of an open pypdfium2 document as a grayscale image at `dpi`, to OCR.

    A scanned page is usually one image covering the page and nothing else: that image is decoded
    at its own resolution (~30 ms for an A4 JPEG at 300 dpi with the check below, against ~85 ms to
    render the page) and resized to `dpi` when it was scanned at another. Any other page is rendered
    by pdfium. Either way the result has the page's size at `dpi`, so word boxes mean the same thing.

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
        image = _embedded_scan(page, dpi, max_pixels)
        if image is None:
            try:
                image = page.render(scale=dpi / 72, grayscale=True).to_pil().convert("L")
            except pdfium.PdfiumError:
                raise DocumentError("truncated", f"page {index + 1} could not be rendered") from None
    finally:
        page.close()
    image.info["dpi"] = (dpi, dpi)
    return image


# Colour spaces pdfium decodes to grey or BGR itself (FPDF_COLORSPACE_*): gray, RGB, CMYK, CalGray,
# CalRGB, ICC-based, indexed. An image mask (a stencil, "unknown") paints with the fill colour.
_DECODABLE_COLORSPACES = {1, 2, 3, 4, 5, 7, 10}
# The decoded image must look like the page pdfium renders, compared on a ~50 px wide thumbnail:
# the grey-level difference over the ink of both. Catches what the checks above cannot see (a soft
# mask or a colour-key mask hiding much of the image) but not a mask hiding a few lines. Measured on
# 248 generated scans (noise, JPEG): <= 0.18; a soft mask hiding half a letter: 0.42.
_THUMBNAIL_SCALE = 0.08
_THUMBNAIL_MAX_DIFF = 0.3


def _embedded_scan(page, dpi: int, max_pixels: int | None) -> Image.Image | None:
    """The page's one image, when the page is nothing else and the image covers it upright;
    None otherwise (the caller renders the page)."""
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    if page.get_rotation() % 360:
        return None
    objects = list(page.get_objects(max_depth=1))
    if len(objects) != 1 or objects[0].type != pdfium_c.FPDF_PAGEOBJ_IMAGE:
        return None
    picture = objects[0]
    try:
        a, b, c, d, e, f = picture.get_matrix().get()
        left, bottom, right, top = page.get_bbox()
        tolerance = 0.01 * max(right - left, top - bottom)
        if abs(b) > 1e-6 or abs(c) > 1e-6 or a <= 0 or d <= 0:
            return None  # turned, flipped or sheared: let pdfium place it
        if max(abs(e - left), abs(f - bottom), abs(e + a - right), abs(f + d - top)) > tolerance:
            return None  # does not cover the page, or overflows it
        px_width, px_height = picture.get_px_size()
        if max_pixels and px_width * px_height > max_pixels:
            return None
        if picture.get_metadata().colorspace not in _DECODABLE_COLORSPACES:
            return None
        image = picture.get_bitmap(render=False).to_pil().convert("L")
        thumbnail = page.render(scale=_THUMBNAIL_SCALE, grayscale=True).to_pil().convert("L")
    except (pdfium.PdfiumError, ValueError):
        return None
    target = (max(1, round((right - left) * dpi / 72)), max(1, round((top - bottom) * dpi / 72)))
    if any(abs(got - want) > 0.005 * want for got, want in zip(image.size, target)):
        image = image.resize(target, Image.Resampling.BILINEAR)  # a scan at another dpi
    ours = np.asarray(image.resize(thumbnail.size, Image.Resampling.BOX), dtype=np.float32)
    theirs = np.asarray(thumbnail, dtype=np.float32)
    ink = float((255.0 - ours).sum() + (255.0 - theirs).sum())
    if float(np.abs(ours - theirs).sum()) > _THUMBNAIL_MAX_DIFF * max(ink, 1.0):
        return None
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

ANALYSIS_SHORT_SIDE = 1000  # the page is analysed on a copy whose short side has about this many pixels
# Up/down score beyond which the verdict is trusted (see _up_down_score). Measured on the 453 readable
# scans of two generated corpora (seeds 2026 and 7), sideways pages once turned to horizontal: pages
# the right way up score >= +0.20 (3 under +0.27), pages upside down <= -0.38. A page under the margin
# is read as the score says and checked the other way round if the reading is poor.
UP_DOWN_MARGIN = 0.2


@dataclass
class Orientation:
    """How to put a page image upright: turn it by `rotate` degrees clockwise (OSD's convention),
    then by `skew` degrees back. `direction` is that of the text lines as found ("horizontal",
    "vertical" or "unknown"); `sure` says whether the up/down verdict is clear enough to read the
    page once, without a second opinion."""

    rotate: int = 0
    skew: float = 0.0
    direction: str = "horizontal"
    sure: bool = True


def find_orientation(image: Image.Image, detect: bool = True, deskew: bool = True) -> Orientation:
    """The orientation of a page from its ink alone, in ~20 ms, with no call to tesseract.

    1. Direction: text lines make the ink profile across them sharp, so the sharpest row profile
       is compared with the sharpest column profile.
    2. Skew: the angle (+-5 degrees) that makes the profile across the lines sharpest.
    3. Up or down: in Latin script, and even more so in French with its accents, more ink stands
       above the x-height band of a line (ascenders, capitals, accents) than hangs below it
       (descenders): see `_up_down_score`, the test Leptonica's pixUpDownDetect makes with
       morphology, done here on the line profiles we already have.

    Measured on the 453 scans of two generated corpora (seeds 2026 and 7; a fifth of them turned):
    the turn was right on every page, and sure on all but one.
    """
    ink = _ink(_small_copy(image, ANALYSIS_SHORT_SIDE))
    if not _enough_ink(ink):
        return Orientation(direction="unknown", sure=False)
    if not detect:
        return Orientation(skew=_skew_of_ink(ink) if deskew else 0.0)
    direction = "horizontal"
    if _best_profile_sharpness(ink.T) > _best_profile_sharpness(ink):
        direction = "vertical"
        ink = np.rot90(ink)  # counter-clockwise, as rotate_upright(.., 270) turns the page
    skew = _skew_of_ink(ink)
    score = _up_down_score(ink, skew)
    rotate = 270 if direction == "vertical" else 0
    if score < 0:
        rotate = (rotate + 180) % 360
    return Orientation(rotate=rotate, skew=skew if deskew else 0.0, direction=direction,
                       sure=abs(score) >= UP_DOWN_MARGIN)


def _skew_of_ink(ink: np.ndarray) -> float:
    """Projection profiles: the angle that makes the rows' ink histogram sharpest."""
    sharpness = _profile_sharpness(ink)
    coarse = np.arange(-DESKEW_MAX_ANGLE, DESKEW_MAX_ANGLE + 1e-9, 0.5)
    best = max(coarse, key=sharpness)
    fine = np.arange(best - 0.5, best + 0.5 + 1e-9, 0.1)
    best = max(fine, key=sharpness)
    # Without text lines (a photo) the profile barely changes with the angle: turning then would
    # only blur the page.
    if sharpness(best) < 1.1 * sharpness(0.0):
        return 0.0
    return round(float(best), 2)


def _up_down_score(ink: np.ndarray, skew: float) -> float:
    """(ink above the x-height bands - ink below them) / both, over the page's text lines, once the
    skew is taken out: > 0 for a page the right way up, < 0 upside down, near 0 when it cannot tell
    (capitals only, no text lines).

    Lines are the runs of rows of the skew-corrected profile holding more than 8 % of a full
    line's ink; the x-height band of a line is its rows holding at least half its peak. Rows with
    only a few descenders often fall under the 8 %: that sharpens the contrast, it does not flip it."""
    hist = _rows(*_ink_points(ink, most=None), skew)  # every point: the bands are a few rows high
    full_line = float(np.percentile(hist[hist > 0], 95))
    on = np.concatenate(([False], hist > 0.08 * full_line, [False]))
    edges = np.flatnonzero(np.diff(on.astype(np.int8)))
    above = below = 0.0
    for start, end in zip(edges[::2], edges[1::2]):
        line = hist[start:end]
        if len(line) < 4:
            continue
        band = np.flatnonzero(line >= 0.5 * line.max())
        above += float(line[:band[0]].sum())
        below += float(line[band[-1] + 1:].sum())
    return (above - below) / (above + below) if above + below else 0.0


def _small_copy(image: Image.Image, short_side: int) -> Image.Image:
    """A copy about `short_side` pixels on its short side, shrunk by a whole factor (a box filter:
    ~3 ms for an A4 page at 300 dpi, where a free-factor resize with antialiasing costs ~20 ms)."""
    factor = round(min(image.size) / short_side)
    return image.reduce(factor) if factor > 1 else image


def _ink(small: Image.Image) -> np.ndarray:
    """Boolean ink mask of a small grey copy (Otsu threshold)."""
    _, ink = cv2.threshold(np.asarray(small, dtype=np.uint8), 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    return ink > 0


def _enough_ink(ink: np.ndarray) -> bool:
    n = int(np.count_nonzero(ink))
    return 200 <= n <= 0.5 * ink.size


def _ink_points(ink: np.ndarray, most: int | None = DESKEW_MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates of the ink pixels (at most `most` of them, a fixed sample), x centred."""
    ys, xs = np.nonzero(ink)
    if most is not None and len(xs) > most:
        pick = np.random.default_rng(0).choice(len(xs), most, replace=False)
        xs, ys = xs[pick], ys[pick]
    return xs.astype(np.float64) - ink.shape[1] / 2, ys.astype(np.float64)


def _rows(xs: np.ndarray, ys: np.ndarray, angle: float) -> np.ndarray:
    """Histogram of the points over rows once the page is turned back by `angle` (ccw degrees)."""
    rows = np.round(ys + xs * math.tan(math.radians(angle))).astype(np.int64)
    return np.bincount(rows - rows.min()).astype(np.float64)


def _profile_sharpness(ink: np.ndarray, normalised: bool = False):
    """angle -> how sharp the ink profile across rows is once the page is turned back by `angle`
    (counter-clockwise degrees): text lines and the gaps between them make it peak. `normalised`
    makes scores comparable between two point sets (rows against columns)."""
    xs, ys = _ink_points(ink)

    def sharpness(angle: float) -> float:
        hist = _rows(xs, ys, angle)
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
    detect = settings.ocr_detect_orientation
    found = find_orientation(gray, detect, settings.ocr_deskew)
    tess = _Tesseract(settings)
    try:
        if detect and found.direction == "vertical" and not found.sure:
            page = _read_sideways(tess, gray, found.skew, dpi, number)
        else:
            page = _read(tess, gray, found.rotate, found.skew, dpi, number)
            if detect and _doubtful(page, DOUBTFUL_CONFIDENCE if not found.sure else POOR_CONFIDENCE):
                # The reading is poor, and the ink could not tell which way up (or told it wrong): read
                # the page the other way round (with no text lines to go by, the way OSD proposes); the
                # better reading wins.
                rotate = (found.rotate + 180) % 360
                if found.direction == "unknown":
                    rotate, conf = _osd(tess, gray)
                    rotate = rotate if conf >= OSD_MIN_CONFIDENCE else 0
                if rotate != found.rotate:
                    turned = _read(tess, gray, rotate, found.skew, dpi, number)
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


def _read_sideways(tess: "_Tesseract", gray: Image.Image, skew: float, dpi, number: int) -> Page:
    """A sideways page the ink could not tell 90 from 270 on: OSD decides, or both readings do."""
    rotate, conf = _osd(tess, gray)
    if rotate in (90, 270) and conf >= OSD_MIN_CONFIDENCE:
        return _read(tess, gray, rotate, skew, dpi, number)
    readings = [_read(tess, gray, rotate, skew, dpi, number) for rotate in (90, 270)]
    return max(readings, key=_score)


def _read(tess: "_Tesseract", gray: Image.Image, rotate: int, skew: float, dpi, number: int) -> Page:
    """Turn the page by `rotate` (clockwise), take out `skew`, read it. Skew is the same whichever
    quarter turn the page gets: it is the angle of the lines to the nearest axis."""
    gray = rotate_upright(gray, rotate)
    if abs(skew) >= DESKEW_MIN_ANGLE:
        gray = deskew(gray, skew)
    else:
        skew = 0.0
    page = words_to_page(tess.data(gray, dpi), number)
    page.rotation = rotate
    page.skew = skew
    return page


def _doubtful(page: Page, below: float) -> bool:
    """A reading poor enough that the page may be turned: mean confidence under `below`, or no words."""
    return page.ocr_confidence is None or page.ocr_confidence < below


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
