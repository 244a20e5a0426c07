"""OCR on real tesseract with rendered French pages: text, offsets, boxes, orientation, skew, failures."""
from __future__ import annotations

import io
import os
import stat
import sys
import tempfile
from pathlib import Path

import pytest
import pytesseract
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


def _leftovers():
    return {p for p in os.listdir(tempfile.gettempdir()) if p.startswith("synthese-ocr-")}


def test_tesseract_failure_is_ocr_failed_and_leaves_nothing(tmp_path, monkeypatch):
    # A tesseract that records the mode of the folder it was handed, then crashes.
    fake = tmp_path / "tesseract"
    fake.write_text(f'#!/bin/sh\nstat -c %a "$(dirname "$1")" > {tmp_path}/mode\nexit 3\n')
    fake.chmod(0o755)
    monkeypatch.setattr(pytesseract.pytesseract, "tesseract_cmd", str(fake))
    before = _leftovers()
    with pytest.raises(DocumentError) as e:
        ocr_image(page_image(), Settings(ocr_detect_orientation=False))
    assert e.value.reason == "ocr_failed"
    assert (tmp_path / "mode").read_text().strip() == "700"
    assert _leftovers() == before


def test_missing_tesseract_is_a_run_error(monkeypatch):
    monkeypatch.setattr(pytesseract.pytesseract, "tesseract_cmd", "/nonexistent/tesseract")
    with pytest.raises(CouldNotRun):
        ocr_image(page_image(), SETTINGS)


def test_blank_page_gives_empty_text():
    page = ocr_image(Image.new("L", (1240, 1754), 255), SETTINGS)
    assert page.text == "" and page.words == [] and page.ocr_confidence is None


def test_private_dir_mode():
    # mkdtemp's documented mode; asserted so a change of helper would be noticed.
    d = tempfile.mkdtemp(prefix="synthese-ocr-")
    try:
        assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    finally:
        os.rmdir(d)


@pytest.mark.parametrize("turn", [0, 90, 180, 270])
def test_orientation_is_found_from_the_ink_alone(turn):
    """Direction, skew and which way up, without tesseract (ocr.find_orientation): a page turned
    counter-clockwise by `turn` (and skewed by 2 degrees) is put back by turning it clockwise by `turn`."""
    page = _letter_lines().rotate(2, fillcolor=255, resample=Image.Resampling.BICUBIC)
    found = find_orientation(page.rotate(turn, expand=True))
    assert found.rotate == turn and found.sure
    assert found.direction == ("vertical" if turn in (90, 270) else "horizontal")
    assert found.skew == pytest.approx(2.0, abs=0.3)


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

    monkeypatch.setattr(ocr, "_up_down_score", lambda ink, skew: -1.0)
    image = page_image()
    assert ocr.find_orientation(image).rotate == 180 and ocr.find_orientation(image).sure
    page = ocr_image(image, SETTINGS)
    assert page.rotation == 0
    assert_readable(page, image.size)
