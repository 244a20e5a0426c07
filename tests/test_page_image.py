"""Scanned PDF pages: the embedded image is taken when the page is that image and nothing else,
and the page is rendered otherwise (ocr.pdf_page_image). Real PDFs, built byte by byte."""
from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pypdfium2 as pdfium
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))

from helpers_docs import page_image, text_pdf  # noqa: E402

from extractor.documents.ocr import _embedded_scan, pdf_page_image  # noqa: E402
from extractor.documents.pdfimages import plain_image_pages  # noqa: E402

A4 = (595.28, 841.89)


def image_pdf(image: Image.Image, *, place=(0.0, 0.0) + A4, rotate: int = 0, smask: Image.Image | None = None,
              image_keys: bytes = b"", state: bytes | None = None, extra: tuple[bytes, ...] = (),
              space: bytes = b"/DeviceGray", resources: bytes = b"") -> bytes:
    """A one-page PDF whose content is `image` (JPEG, as scanners write it) drawn at
    place = (x, y, width, height) on an A4 page; optionally a /Rotate, a soft mask, more keys in the
    image's dictionary (`image_keys`), a graphics state dictionary (`state`) set before drawing, and
    more objects (`extra`, numbered from 6, or 7 after a soft mask), the image's colour space and
    more page resources."""
    jpeg = io.BytesIO()
    image.convert("L").save(jpeg, "JPEG", quality=85)
    x, y, w, h = place
    content = f"q {'/G0 gs ' if state else ''}{w} 0 0 {h} {x} {y} cm /Im0 Do Q".encode()
    states = (b" /ExtGState << /G0 %s >>" % state if state else b"") + resources
    keys = image_keys + (b" /SMask 6 0 R" if smask else b"")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %.2f %.2f] /Rotate %d "
        b"/Resources << /XObject << /Im0 5 0 R >>%s >> /Contents 4 0 R >>" % (A4[0], A4[1], rotate, states),
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace %s /BitsPerComponent 8 "
        b"/Filter /DCTDecode %s /Length %d >>\nstream\n" % (image.width, image.height, space, keys, len(jpeg.getvalue()))
        + jpeg.getvalue() + b"\nendstream",
    ]
    if smask is not None:
        raw = smask.convert("L").tobytes()
        objects.append(b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray "
                       b"/BitsPerComponent 8 /Length %d >>\nstream\n" % (smask.width, smask.height, len(raw))
                       + raw + b"\nendstream")
    objects += extra
    out = b"%PDF-1.7\n"
    offsets = []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return out


def rendered(pdf, dpi: int) -> np.ndarray:
    return np.asarray(pdf[0].render(scale=dpi / 72, grayscale=True).to_pil().convert("L"), dtype=np.float32)


def mean_diff(image: Image.Image, reference: np.ndarray) -> float:
    got = np.asarray(image, dtype=np.float32)
    h, w = min(got.shape[0], reference.shape[0]), min(got.shape[1], reference.shape[1])
    return float(np.abs(got[:h, :w] - reference[:h, :w]).mean())


@pytest.mark.parametrize("scan_dpi, read_dpi", [(150, 150), (200, 200), (300, 300), (100, 300), (600, 300)])
def test_a_scanned_page_is_its_embedded_image_at_its_own_resolution(scan_dpi, read_dpi):
    """Kept as scanned between MIN_SCAN_DPI (150) and the asked dpi (300); a coarser or finer scan is
    brought to the asked dpi. Either way it is the page pdfium draws at that dpi."""
    scan = page_image()  # 1240 x 1754: A4 at 150 dpi
    if scan_dpi != 150:
        scan = scan.resize((round(1240 * scan_dpi / 150), round(1754 * scan_dpi / 150)))
    data = image_pdf(scan)
    assert plain_image_pages(data, 1) == {0}
    pdf = pdfium.PdfDocument(data)
    page = pdf[0]
    assert _embedded_scan(page, 300, None) is not None
    page.close()
    image = pdf_page_image(pdf, 0, 300, plain={0})
    assert image.mode == "L" and abs(image.info["dpi"][0] - read_dpi) < 0.5
    reference = rendered(pdf, image.info["dpi"][0])
    assert abs(image.width - reference.shape[1]) <= 1 and abs(image.height - reference.shape[0]) <= 1
    # Same page as pdfium draws it (interpolation aside), so word boxes mean the same thing.
    assert mean_diff(image, reference) < 4.0


def _not_taken(data: bytes):
    """(whether the embedded image would be taken, the page image, pdfium's rendering at 300 dpi)."""
    pdf = pdfium.PdfDocument(data)
    plain = plain_image_pages(data, len(pdf))
    page = pdf[0]
    taken = _embedded_scan(page, 300, None) if 0 in plain else None
    page.close()
    image = pdf_page_image(pdf, 0, 300, plain=plain)
    return taken, image, rendered(pdf, 300)


def _hiding_mask(size, box) -> Image.Image:
    mask = Image.new("L", size, 255)
    mask.paste(0, box)
    return mask


@pytest.mark.parametrize("case", ["rotated_page", "half_page_image", "soft_mask", "soft_mask_two_lines",
                                  "colour_key_mask", "stencil_mask", "state_soft_mask", "state_alpha",
                                  "state_blend", "spot_colour"])
def test_anything_else_is_rendered(case):
    """A page that does not draw its one image as it is: rendered, never the image as decoded."""
    scan = page_image()
    if case == "rotated_page":
        data = image_pdf(scan, rotate=90)
    elif case == "half_page_image":
        data = image_pdf(scan, place=(0.0, 0.0, A4[0] / 2, A4[1] / 2))
    elif case == "soft_mask":  # hides the left half
        data = image_pdf(scan, smask=_hiding_mask(scan.size, (0, 0, scan.width // 2, scan.height)))
    elif case == "soft_mask_two_lines":  # hides two lines of text only (what the dictionary says, not the pixels)
        data = image_pdf(scan, smask=_hiding_mask(scan.size, (0, 200, scan.width, 305)))
    elif case == "colour_key_mask":  # the darkest greys (the ink) are not painted
        data = image_pdf(scan, image_keys=b"/Mask [0 128]")
    elif case == "stencil_mask":  # a 1-bit mask whose set bits (rows 90-170) are not painted
        row = (scan.width + 7) // 8
        bits = bytes(row * 90) + b"\xff" * (row * 80) + bytes(row * (scan.height - 170))
        data = image_pdf(scan, image_keys=b"/Mask 6 0 R", extra=(
            b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ImageMask true /BitsPerComponent 1 "
            b"/Length %d >>\nstream\n" % (scan.width, scan.height, len(bits)) + bits + b"\nendstream",))
    elif case == "state_soft_mask":
        data = image_pdf(scan, state=b"<< /SMask << /Type /Mask /S /Luminosity /G 5 0 R >> >>")
    elif case == "state_alpha":
        data = image_pdf(scan, state=b"<< /ca 0.3 >>")
    elif case == "state_blend":
        data = image_pdf(scan, state=b"<< /BM /Multiply >>")
    else:  # a separation (spot colour): not among the spaces vouched for
        data = image_pdf(scan, space=b"[/Separation /Noir /DeviceGray << /FunctionType 2 /Domain [0 1] "
                                     b"/C0 [1] /C1 [0] /N 1 >>]")
    taken, image, reference = _not_taken(data)
    assert taken is None
    assert image.size == (reference.shape[1], reference.shape[0]) and mean_diff(image, reference) == 0.0
    if case == "soft_mask":
        assert float(np.asarray(image)[:, : image.width // 2 - 5].min()) == 255.0  # the hidden half is white
    if case == "soft_mask_two_lines":  # lines 2 and 3 are white on the page image, lines 1 and 4 are not
        pixels = np.asarray(image)
        assert float(pixels[410:600].min()) == 255.0
        assert float(pixels[300:390].min()) < 128 and float(pixels[620:710].min()) < 128


def test_plain_states_spaces_and_unreadable_dictionaries():
    """An opaque, normal graphics state and a calibrated grey space (named in the resources or not)
    keep the image, a Lab space does not; dictionaries pdfminer cannot read, or a page count that
    differs from pdfium's, vouch for no page."""
    scan = page_image()
    assert plain_image_pages(image_pdf(scan, state=b"<< /ca 1 /BM /Normal /SMask /None >>"), 1) == {0}
    calibrated = b"[/CalGray << /WhitePoint [0.9505 1 1.089] >>]"
    assert plain_image_pages(image_pdf(scan, space=calibrated), 1) == {0}
    named = image_pdf(scan, space=b"/CS0", resources=b" /ColorSpace << /CS0 %s >>" % calibrated)
    assert plain_image_pages(named, 1) == {0}
    lab = image_pdf(scan, space=b"/CS0", resources=b" /ColorSpace << /CS0 [/Lab << /WhitePoint [0.9505 1 1.089] >>] >>")
    assert plain_image_pages(lab, 1) == frozenset()
    assert plain_image_pages(image_pdf(scan), 2) == frozenset()
    assert plain_image_pages(b"%PDF-1.7\n garbage", 1) == frozenset()
    data = image_pdf(scan)
    pdf = pdfium.PdfDocument(data)
    image = pdf_page_image(pdf, 0, 300)  # nobody vouched for the page: rendered
    assert image.info["dpi"] == (300, 300) and mean_diff(image, rendered(pdf, 300)) == 0.0


def test_a_text_page_is_rendered(tmp_path):
    path = text_pdf(tmp_path / "lettre.pdf", [["Antécédents : HTA", "Traitement : Kardégic 75 mg"]])
    taken, image, reference = _not_taken(path.read_bytes())
    assert taken is None and mean_diff(image, reference) == 0.0


@pytest.mark.slow
@pytest.mark.parametrize("scan_dpi", [200, 300])
def test_a_scan_read_at_its_own_resolution_gives_its_boxes_at_ocr_dpi(tmp_path, scan_dpi):
    """A letter and its scan: the scan's words are read at the scan's dpi, and their boxes come out
    where the letter's text layer puts the same words (both at ocr_dpi), within a few pixels."""
    from extractor.config import Settings
    from extractor.documents.reader import read_document

    settings = Settings()
    letter = text_pdf(tmp_path / "lettre.pdf", [["Antécédents : hypertension artérielle depuis 2015.",
                                                 "Traitement : amlodipine 5 mg le matin."]])
    source = pdfium.PdfDocument(str(letter))
    picture = source[0].render(scale=scan_dpi / 72, grayscale=True).to_pil().convert("L")
    source.close()
    (tmp_path / "scan.pdf").write_bytes(image_pdf(picture))
    layer = read_document(letter, tmp_path, settings).pages[0]
    scan = read_document(tmp_path / "scan.pdf", tmp_path, settings).pages[0]
    assert scan.source == "ocr" and layer.source == "text_layer"
    for word in ("hypertension", "amlodipine"):
        a = next(w.box for w in layer.words if w.text == word)
        b = next(w.box for w in scan.words if w.text == word)
        # Heights differ by nature (tesseract's box is the ink's, the text layer's the glyphs'):
        # compare left edges, widths and vertical middles. A wrong scale moves them by a third.
        assert abs(a.left - b.left) <= 6 and abs(a.width - b.width) <= 8, (word, a, b)
        assert abs((a.top + a.height / 2) - (b.top + b.height / 2)) <= 10, (word, a, b)
