"""OCR on real tesseract with rendered French pages: text, offsets, boxes, orientation, skew, failures;
the API path (tesserocr) against the command line it replaced, time limits, no file written."""
from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))

from helpers_docs import PARAGRAPH, jpeg_with_exif_orientation, page_image  # noqa: E402

from extractor.config import Settings  # noqa: E402
from extractor.errors import CouldNotRun, DocumentError  # noqa: E402
from extractor.documents.ocr import find_orientation, ocr_image, open_image_frames  # noqa: E402

pytestmark = pytest.mark.slow
SETTINGS = Settings()
KEY_WORDS = ["hypertension", "pénicilline", "metformine", "ramipril"]


def assert_readable(page, image_size):
    text = page.text.lower()
    for word in KEY_WORDS:
        assert word in text, (word, page.text)
    assert page.source == "ocr"
    assert page.words and 0.7 < page.ocr_confidence <= 1.0
    width, height = image_size
    for w in page.words:
        assert page.text[w.start:w.end] == w.text
        assert 0 <= w.box.left and w.box.left + w.box.width <= width
        assert 0 <= w.box.top and w.box.top + w.box.height <= height
    assert [w.text for w in page.words] == page.text.split()


def test_french_paragraph():
    image = page_image()
    page = ocr_image(image, SETTINGS, number=3)
    assert page.number == 3 and page.rotation == 0 and page.skew == 0.0
    assert_readable(page, image.size)
    lines = page.text.split("\n")
    assert lines[0].startswith("Compte rendu de consultation")


@pytest.mark.parametrize("turn, expected", [(180, 180), (90, 90)])
def test_turned_pages_are_put_upright(turn, expected):
    image = page_image().rotate(turn, expand=True)
    page = ocr_image(image, SETTINGS)
    assert page.rotation == expected
    upright = image.size if expected == 180 else image.size[::-1]
    assert_readable(page, upright)


def test_skewed_page_is_deskewed():
    image = page_image().rotate(3, fillcolor=255, resample=Image.Resampling.BICUBIC)
    assert find_orientation(image).skew == pytest.approx(3.0, abs=0.3)
    page = ocr_image(image, SETTINGS)
    assert page.skew == pytest.approx(3.0, abs=0.3)
    assert_readable(page, image.size)


def test_exif_rotated_jpeg_is_read(tmp_path):
    (tmp_path / "photo.jpg").write_bytes(jpeg_with_exif_orientation(page_image(), 6))
    (frame,) = list(open_image_frames(tmp_path / "photo.jpg", SETTINGS))
    assert frame.size == page_image().size  # upright before any OCR
    page = ocr_image(frame, SETTINGS)
    assert page.rotation == 0
    assert_readable(page, frame.size)


def test_multipage_tiff_frames(tmp_path):
    frames = [page_image(PARAGRAPH[:2], size=(1240, 400), top=40), page_image(PARAGRAPH[2:4], size=(1240, 400), top=40)]
    frames[0].save(tmp_path / "scan.tif", save_all=True, append_images=frames[1:])
    got = list(open_image_frames(tmp_path / "scan.tif", SETTINGS))
    assert len(got) == 2 and all(f.size == (1240, 400) for f in got)


def test_decompression_bomb_is_too_large(tmp_path):
    Image.new("L", (1200, 1000), 255).save(tmp_path / "grand.png")
    with pytest.raises(DocumentError) as e:
        list(open_image_frames(tmp_path / "grand.png", Settings(max_image_pixels=1_000_000)))
    assert e.value.reason == "too_large"


def test_truncated_image(tmp_path):
    buf = io.BytesIO()
    page_image().save(buf, "PNG")
    (tmp_path / "cut.png").write_bytes(buf.getvalue()[:5000])
    with pytest.raises(DocumentError) as e:
        list(open_image_frames(tmp_path / "cut.png", SETTINGS))
    assert e.value.reason == "truncated"


def test_blank_page_gives_empty_text():
    page = ocr_image(Image.new("L", (1240, 1754), 255), SETTINGS)
    assert page.text == "" and page.words == [] and page.ocr_confidence is None


@pytest.mark.parametrize("turn", [0, 90, 180, 270])
def test_orientation_is_found_from_the_ink_alone(turn):
    """Direction, skew and which way up, without tesseract (ocr.find_orientation): a page turned
    counter-clockwise by `turn` (and skewed by 2 degrees) is put back by turning it clockwise by `turn`."""
    page = _letter_lines().rotate(2, fillcolor=255, resample=Image.Resampling.BICUBIC)
    found = find_orientation(page.rotate(turn, expand=True))
    assert found.rotate == turn and found.sure
    assert found.direction == ("vertical" if turn in (90, 270) else "horizontal")
    assert found.skew == pytest.approx(2.0, abs=0.3)


@pytest.mark.parametrize("lines", [1, 2, 3, 5])
@pytest.mark.parametrize("turn", [0, 90])
def test_the_direction_of_a_short_note_is_found(lines, turn):
    """A note of a few lines on a whole page (a certificate, a two-line prescription): its row
    profile is barely sharper than its column profile; that comparison alone took a one-line note
    here (and the two-line letter of test_page_image) for a page turned sideways."""
    note = page_image(PARAGRAPH[:lines], size=(1240, 1754), font_size=24)
    found = find_orientation(note.rotate(turn, expand=True))
    assert found.direction == ("vertical" if turn else "horizontal")


def test_a_page_of_noise_is_read_once_as_it_is(monkeypatch):
    """An unreadable fax (speckle over half the page, no text lines): no way up to look for, so no
    OSD and no second reading, which cost ~2 s a page for nothing. A letter is still read."""
    import numpy as np

    import extractor.documents.ocr as ocr

    rng = np.random.default_rng(7)
    noise = Image.fromarray(np.where(rng.random((1754, 1240)) < 0.5, 0, 255).astype(np.uint8), "L")
    assert find_orientation(noise).direction == "noise"
    readings = []
    real = ocr._PageReader.data
    monkeypatch.setattr(ocr._PageReader, "data", lambda self, image: readings.append(1) or real(self, image))
    monkeypatch.setattr(ocr._PageReader, "osd", lambda self, image: pytest.fail("OSD asked on noise"))
    page = ocr_image(noise, SETTINGS)
    assert len(readings) == 1 and page.rotation == 0
    assert find_orientation(_letter_lines()).direction == "horizontal"


def test_orientation_of_a_blank_page_is_unknown():
    found = find_orientation(Image.new("L", (800, 1000), 255))
    assert found.direction == "unknown" and not found.sure and found.rotate == 0


def test_capitals_only_leave_up_and_down_undecided():
    """No ascenders or descenders to go by: the verdict is not trusted, so a poor reading will be
    checked the other way round (see ocr_image)."""
    found = find_orientation(_letter_lines(upper=True))
    assert found.direction == "horizontal" and not found.sure


def _letter_lines(upper: bool = False):
    from PIL import ImageDraw, ImageFont

    img = Image.new("L", (1240, 1754), 255)
    draw = ImageDraw.Draw(img)
    try:
        font = ImageFont.truetype("DejaVuSans.ttf", 28)
    except OSError:
        font = ImageFont.load_default(size=28)
    words = ("antécédents hypertension artérielle diabète de type allergie pénicilline urticaire traitement "
             "Kardégic matin soir arrêt remplacé par ordonnance conclusion patient stable").split()
    for i in range(30):
        # Varied lines, as in a letter: identical lines would also line glyphs up in columns.
        line = " ".join(words[(i * 7 + k * 3) % len(words)] for k in range(6 + i % 4))
        draw.text((80 + (i % 3) * 17, 80 + i * 50), line.upper() if upper else line, font=font, fill=0)
    return img


def test_upside_down_capitals_are_read_the_other_way_round():
    """The ink cannot tell (capitals only), the upright reading is poor: the page is also read turned
    and the better reading is kept."""
    page = ocr_image(_letter_lines(upper=True).rotate(180), SETTINGS)
    assert page.rotation == 180
    assert "HYPERTENSION" in page.text and "PÉNICILLINE" in page.text
    assert page.ocr_confidence > 0.8


def test_a_wrong_verdict_from_the_ink_does_not_cost_the_page(monkeypatch):
    """Should the up/down test ever be sure and wrong, the very poor reading that follows sends the page
    to be read the other way round too. Forced here: the ink is made to say "upside down" for an upright page."""
    import extractor.documents.ocr as ocr

    monkeypatch.setattr(ocr, "_up_down_score", lambda points, skew: -1.0)
    image = page_image()
    assert ocr.find_orientation(image).rotate == 180 and ocr.find_orientation(image).sure
    page = ocr_image(image, SETTINGS)
    assert page.rotation == 0
    assert_readable(page, image.size)


# ---------------------------------------------------------------- the API path (issue 15)

REPO = Path(__file__).resolve().parent.parent


def _read_with_the_command_line(self, image):
    """What the pipeline did before issue 15: the tesseract program on the same image, its TSV
    parsed by pytesseract (which writes the image to a temp file: fine in a test). These test pages
    carry no dpi, so neither reading is told one."""
    import pytesseract

    config = "--psm 3"
    return pytesseract.image_to_data(image, lang=SETTINGS.ocr_lang, config=config,
                                     output_type=pytesseract.Output.DICT)


TEST_PAGES = {
    "upright": lambda: page_image(),
    "turned_180": lambda: page_image().rotate(180, expand=True),
    "turned_90": lambda: page_image().rotate(90, expand=True),
    "skewed_3": lambda: page_image().rotate(3, fillcolor=255, resample=Image.Resampling.BICUBIC),
}


@pytest.mark.parametrize("name", list(TEST_PAGES))
def test_the_api_reads_what_the_command_line_read(name, monkeypatch):
    """Same page through the whole OCR stage twice: read by tesseract's API (now), then by the tesseract
    program (before). Same decisions (turn, skew), same words in the same lines, boxes within 2 px.
    The API's libtesseract (5.5, the wheel's) differs from the program's (Debian's 5.3): confidences
    move by a few points, words must not."""
    import extractor.documents.ocr as ocr

    image = TEST_PAGES[name]()
    now = ocr_image(image, SETTINGS)
    monkeypatch.setattr(ocr._PageReader, "data", _read_with_the_command_line)
    before = ocr_image(image, SETTINGS)
    assert (now.rotation, now.skew) == (before.rotation, before.skew)
    assert now.text == before.text and len(now.words) > 20
    for a, b in zip(now.words, before.words):
        assert (a.text, a.start, a.end) == (b.text, b.start, b.end)
        for side in ("left", "top", "width", "height"):
            assert abs(getattr(a.box, side) - getattr(b.box, side)) <= 2, (a, b)
        assert abs(a.conf - b.conf) <= 10, (a, b)
    assert abs(now.ocr_confidence - before.ocr_confidence) <= 0.03


@pytest.mark.parametrize("turn, skew", [(0, 0.0), (0, 3.0), (180, -2.0), (90, 1.5)])
def test_the_window_read_gives_the_boxes_of_the_whole_upright_page(turn, skew):
    """Tesseract reads only the window around the ink (`upright_window`); the words' boxes are given
    in the whole upright, deskewed page (what the review page draws on): the same as reading that
    whole page, within 2 px."""
    import extractor.documents.ocr as ocr

    image = page_image().rotate(skew, fillcolor=255, resample=Image.Resampling.BICUBIC).rotate(turn, expand=True)
    page = ocr_image(image, SETTINGS)
    whole = ocr.deskew(ocr.rotate_upright(image, page.rotation), page.skew) if page.skew else \
        ocr.rotate_upright(image, page.rotation)
    window, _ = ocr.upright_window(image, page.rotation, page.skew)
    assert window.size < 0.8 * whole.width * whole.height  # a window, not the page
    reference = ocr.words_to_page(ocr.tesseract(SETTINGS).data(whole, 60), 1)
    assert [w.text for w in page.words] == [w.text for w in reference.words] and len(page.words) > 20
    for a, b in zip(page.words, reference.words):
        for side in ("left", "top", "width", "height"):
            assert abs(getattr(a.box, side) - getattr(b.box, side)) <= 2, (a, b)


def test_one_api_object_per_process_and_no_state_carried_between_pages():
    """The model is loaded once (the same object reads every page), and what a page reads as does not
    depend on what was read before it (a cached result must not depend on the order of documents)."""
    from extractor.documents.ocr import tesseract

    tess = tesseract(SETTINGS)
    first = ocr_image(page_image(), SETTINGS)
    ocr_image(page_image(PARAGRAPH[3:], top=400).rotate(180), SETTINGS)
    again = ocr_image(page_image(), SETTINGS)
    assert tesseract(SETTINGS) is tess
    assert again.model_dump() == first.model_dump()


def test_a_page_over_its_limit_fails_alone_and_the_api_stays_usable(tmp_path):
    """A page whose readings exceed the per-page limit: the reading is cancelled inside tesseract, the
    document fails as "timeout" (nothing cached: see cache.TRANSIENT_ERRORS) and the next document is
    read by the same API object."""
    from extractor.documents.ocr import tesseract
    from extractor.documents.reader import read_document

    page_image().save(tmp_path / "slow.png")
    page_image(PARAGRAPH[:3]).save(tmp_path / "next.png")
    tess = tesseract(SETTINGS)
    tight = Settings(doc_timeout_base=0.02, doc_timeout_per_page=0.03)  # 0.05 s a page: far too little
    record = read_document(tmp_path / "slow.png", tmp_path, tight)
    assert record.error == "timeout" and "0.05 s" in record.error_detail
    record = read_document(tmp_path / "next.png", tmp_path, SETTINGS)
    assert record.error is None and "hypertension" in record.pages[0].text
    assert tesseract(SETTINGS) is tess


def test_a_failed_reading_is_ocr_failed(monkeypatch):
    """Failure injection: tesseract's Recognize reports a failure at once (not a timeout)."""
    from extractor.documents.ocr import tesseract

    tess = tesseract(SETTINGS)

    class Failing:
        def __init__(self, api):
            self.api = api

        def Recognize(self, timeout=0):  # noqa: N802 - tesseract's name
            return False

        def __getattr__(self, name):
            return getattr(self.api, name)

    monkeypatch.setattr(tess, "api", Failing(tess.api))
    with pytest.raises(DocumentError) as e:
        ocr_image(page_image(), Settings(ocr_detect_orientation=False))
    assert e.value.reason == "ocr_failed"


def test_a_missing_model_is_a_run_error(tmp_path, monkeypatch):
    from extractor.documents.ocr import check_models

    monkeypatch.setenv("TESSDATA_PREFIX", str(tmp_path))  # a folder without any model
    with pytest.raises(CouldNotRun) as e:
        ocr_image(page_image(), SETTINGS)
    assert "fra.traineddata" in str(e.value) and "tesseract-ocr-fra" in str(e.value)
    with pytest.raises(CouldNotRun):
        check_models(SETTINGS)


def test_a_missing_model_stops_the_run_at_start_up_with_exit_3(tmp_path):
    root = tmp_path / "root"
    (root / "P1").mkdir(parents=True)
    page_image().save(root / "P1" / "scan.png")
    env = dict(os.environ, TESSDATA_PREFIX=str(tmp_path / "nothing-here"))
    proc = subprocess.run([sys.executable, "cli.py", "run", str(root), "--workers", "1", "--no-progress"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "fra.traineddata" in proc.stderr and "TESSDATA_PREFIX" in proc.stderr
    assert not (root / "P1" / "synthese.json").exists()


# What a traced OCR run does: a scanned PDF (its embedded image), a page read twice (capitals upside
# down), OSD, in a fresh process that loads everything for the first time. The inputs are made first;
# the failed open of MARKER tells the trace where the OCR starts.
MARKER = "/nonexistent/synthese-trace-marker"
_TRACED_OCR = f"""
import io, sys
from pathlib import Path
sys.path.insert(0, "tests")
from helpers_docs import page_image
from test_ocr import _letter_lines
from extractor.config import Settings
from extractor.documents.ocr import ocr_image, tesseract
from extractor.documents.reader import read_document
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen import canvas
folder = Path(sys.argv[1])
buf = io.BytesIO()
c = canvas.Canvas(buf, pagesize=(595.28, 841.89))
c.drawImage(ImageReader(page_image()), 0, 0, 595.28, 841.89)
c.showPage(); c.save()
(folder / "scan.pdf").write_bytes(buf.getvalue())
capitals, sideways, settings = _letter_lines(upper=True).rotate(180), page_image().rotate(90, expand=True), Settings()
try:
    open("{MARKER}")
except OSError:
    pass
record = read_document(folder / "scan.pdf", folder, settings)
assert record.kind == "scanned_pdf" and "hypertension" in record.pages[0].text, record
assert ocr_image(capitals, settings).rotation == 180
assert tesseract(settings).osd(sideways)[0] == 90
print("DONE", flush=True)
"""

_CREATING = ("creat", "mkdir", "mkdirat", "rename", "renameat", "renameat2", "link", "linkat", "symlink",
             "symlinkat", "mknod", "mknodat")


@pytest.mark.skipif(not any(os.access(os.path.join(d, "strace"), os.X_OK) for d in ("/usr/bin", "/bin")),
                    reason="strace is needed to see every file a process creates")
def test_no_file_is_created_in_any_temp_folder_during_ocr(tmp_path):
    """Every system call that could create a file, made by a process while it OCRs pages (tesseract and
    leptonica included, threads and children followed), is traced: none may touch a temp folder
    (tempfile.gettempdir(), /tmp, /dev/shm, /var/tmp, TMPDIR), nor any other folder; TMPDIR, a fresh
    folder, stays empty. Before the OCR the process writes its input PDF: the positive control that
    the trace does see a created file."""
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    trace = tmp_path / "trace.txt"
    env = dict(os.environ, TMPDIR=str(tmpdir), PYTHONDONTWRITEBYTECODE="1",
               PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "tests")]))
    calls = ",".join(("openat", "open") + _CREATING)
    proc = subprocess.run(["strace", "-f", "-qq", "-e", f"trace={calls}", "-o", str(trace),
                           sys.executable, "-c", _TRACED_OCR, str(work)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "DONE" in proc.stdout, proc.stderr[-2000:]
    lines = trace.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if MARKER in line)

    def created(part):
        for line in part:
            call = line.split(None, 1)[-1].split("(", 1)[0]
            writes = call in ("open", "openat") and any(f in line for f in ("O_CREAT", "O_WRONLY", "O_RDWR"))
            if (writes or call in _CREATING) and "= -1" not in line and "/dev/null" not in line:
                yield line

    assert any(f'"{work / "scan.pdf"}"' in line for line in created(lines[:start])), "the trace would prove nothing"
    during = list(created(lines[start:]))
    temp_folders = {tempfile.gettempdir(), "/tmp", "/dev/shm", "/var/tmp", str(tmpdir)}
    assert [line for line in during if any(f'"{t}/' in line for t in temp_folders)] == []
    assert during == []  # nor anywhere else
    assert list(tmpdir.iterdir()) == []


@pytest.mark.parametrize("turn", [0, 90, 180, 270])
@pytest.mark.parametrize("skew", [0.0, 2.0, -1.3])
def test_the_window_is_the_whole_upright_page_cut_to_its_ink(turn, skew):
    """`upright_window` turns and deskews in one warp of the window (or cuts then turns it): its
    pixels are those of the whole page turned (`rotate_upright`) then deskewed (`deskew`), and it
    holds all the ink, whether the ink's box comes from `find_orientation` or is looked for."""
    import numpy as np

    import extractor.documents.ocr as ocr

    image = page_image().rotate(2.0, fillcolor=255, resample=Image.Resampling.BICUBIC)
    image = image.resize((image.width * 2 - 3, image.height * 2 + 5)).rotate(turn, expand=True)  # odd sizes
    upright = ocr.rotate_upright(image, turn)
    whole = np.asarray(ocr.deskew(upright, skew) if skew else upright, dtype=np.int16)
    ink_rows, ink_cols = np.flatnonzero((whole < 128).any(axis=1)), np.flatnonzero((whole < 128).any(axis=0))
    for box in (ocr.find_orientation(image).ink_box, None):
        window, (left, top) = ocr.upright_window(image, turn, skew, box)
        cut = np.asarray(window, dtype=np.int16)
        assert np.abs(cut - whole[top:top + cut.shape[0], left:left + cut.shape[1]]).max() <= 1
        assert left <= ink_cols[0] and left + cut.shape[1] > ink_cols[-1]
        assert top <= ink_rows[0] and top + cut.shape[0] > ink_rows[-1]
        assert cut.size < 0.5 * whole.size
