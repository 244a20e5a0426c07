"""read_document: one file to one record; errors are values."""
from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import pytest
from reportlab.lib import pdfencrypt
from reportlab.lib.pagesizes import A4
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen import canvas

sys.path.insert(0, str(Path(__file__).parent))

from helpers_docs import PARAGRAPH, page_image, text_pdf  # noqa: E402

from extractor.config import Settings  # noqa: E402
from extractor.errors import REASONS  # noqa: E402
from extractor.documents.ingest import sha256_file  # noqa: E402
from extractor.documents.reader import read_document  # noqa: E402

SETTINGS = Settings()


def scanned_pdf(path: Path, pages: list[str | None]) -> Path:
    """Pages of text ("text") or of a scanned image of the paragraph ("scan")."""
    c = canvas.Canvas(str(path), pagesize=A4)
    w, h = A4
    for kind in pages:
        if kind == "text":
            y = h - 80
            for line in PARAGRAPH:
                c.drawString(60, y, line)
                y -= 16
        elif kind == "scan":
            buf = io.BytesIO()
            page_image().save(buf, "PNG")
            buf.seek(0)
            c.drawImage(ImageReader(buf), 0, 0, w, h)
        c.showPage()
    c.save()
    return path


def test_text_pdf_record(tmp_path):
    (tmp_path / "2024 cardio").mkdir()
    path = text_pdf(tmp_path / "2024 cardio" / "cr é.pdf", [PARAGRAPH, PARAGRAPH[:3]])
    r = read_document(path, tmp_path, SETTINGS)
    assert r.error is None and r.kind == "text_pdf"
    assert r.path == "2024 cardio/cr é.pdf"
    assert r.sha256 == sha256_file(path) and r.size == path.stat().st_size
    assert [p.number for p in r.pages] == [1, 2] and r.ocr_pages == 0
    assert r.seconds > 0 and r.doc_type == "autre" and r.date is None


@pytest.mark.slow
def test_mixed_pdf_ocrs_only_the_scanned_page(tmp_path):
    r = read_document(scanned_pdf(tmp_path / "mixte.pdf", ["text", "scan"]), tmp_path, SETTINGS)
    assert r.error is None and r.kind == "mixed_pdf"
    assert [p.source for p in r.pages] == ["text_layer", "ocr"]
    assert "pénicilline" in r.pages[1].text and r.pages[1].number == 2


@pytest.mark.slow
def test_blank_scan_is_no_text_with_pages_kept(tmp_path):
    r = read_document(scanned_pdf(tmp_path / "blanc.pdf", [None]), tmp_path, SETTINGS)
    assert r.error == "no_text" and r.kind == "scanned_pdf" and len(r.pages) == 1


@pytest.mark.slow
def test_png_named_pdf_is_read_as_an_image(tmp_path):
    page_image(PARAGRAPH[:3], size=(1240, 500), top=40).save(tmp_path / "scan.pdf", "PNG")
    r = read_document(tmp_path / "scan.pdf", tmp_path, SETTINGS)
    assert r.error is None and r.kind == "image" and r.pages[0].source == "ocr"
    assert "hypertension" in r.pages[0].text


@pytest.mark.slow
def test_multipage_tiff_gives_one_page_per_frame(tmp_path):
    frames = [page_image(PARAGRAPH[i:i + 2], size=(1240, 300), top=40) for i in (0, 2, 4)]
    frames[0].save(tmp_path / "scan.tiff", save_all=True, append_images=frames[1:])
    r = read_document(tmp_path / "scan.tiff", tmp_path, SETTINGS)
    assert r.error is None and r.kind == "image"
    assert [p.number for p in r.pages] == [1, 2, 3]
    assert "pénicilline" in r.pages[1].text


def test_errors_are_values(tmp_path):
    (tmp_path / "vide.pdf").write_bytes(b"")
    (tmp_path / "faux.pdf").write_bytes(b"<html>Ceci n'est pas un PDF</html>" * 10)
    data = text_pdf(tmp_path / "ok.pdf", [PARAGRAPH * 4] * 3).read_bytes()
    (tmp_path / "coupe.pdf").write_bytes(data[: len(data) // 2])
    text_pdf(tmp_path / "secret.pdf", [PARAGRAPH], encrypt=pdfencrypt.StandardEncryption("mdp", ownerPassword="o"))
    text_pdf(tmp_path / "ouvert.pdf", [PARAGRAPH], encrypt=pdfencrypt.StandardEncryption("", ownerPassword="o"))
    os.mkfifo(tmp_path / "tube.pdf")
    expected = {"vide.pdf": "empty_file", "faux.pdf": "not_a_document", "coupe.pdf": "truncated",
                "secret.pdf": "encrypted", "ouvert.pdf": None, "tube.pdf": "unreadable"}
    for name, reason in expected.items():
        r = read_document(tmp_path / name, tmp_path, SETTINGS)
        assert r.error == reason, name
        if reason:
            assert reason in REASONS and r.error_detail
            assert "Antécédents" not in r.error_detail
    assert read_document(tmp_path / "vide.pdf", tmp_path, SETTINGS).size == 0


def test_too_many_pages(tmp_path):
    path = text_pdf(tmp_path / "long.pdf", [PARAGRAPH] * 4)
    r = read_document(path, tmp_path, Settings(max_pages=3))
    assert r.error == "too_large" and r.pages == []
