"""Text layer: offsets, reading order of interleaved columns, encryption, broken files, limits."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
from reportlab.lib import pdfencrypt
from reportlab.pdfgen import canvas

sys.path.insert(0, str(Path(__file__).parent))

from helpers_docs import PARAGRAPH, text_pdf, two_column_pdf  # noqa: E402

from extractor.documents import textlayer  # noqa: E402
from extractor.config import Settings  # noqa: E402
from extractor.errors import DocumentError  # noqa: E402
from extractor.documents.textlayer import read_text_layer  # noqa: E402

SETTINGS = Settings()


def test_pages_lines_and_word_offsets(tmp_path):
    path = text_pdf(tmp_path / "cr.pdf", [PARAGRAPH, PARAGRAPH[::-1]])
    pages = read_text_layer(path, SETTINGS)
    assert [p.number for p in pages] == [1, 2]
    assert all(p.source == "text_layer" for p in pages)
    assert pages[0].text.split("\n") == PARAGRAPH
    assert pages[1].text.split("\n") == PARAGRAPH[::-1]
    a4_px = (round(595.27 * 300 / 72), round(841.89 * 300 / 72))
    for page in pages:
        assert [w.text for w in page.words] == page.text.split()
        for w in page.words:
            assert page.text[w.start:w.end] == w.text
            assert 0 <= w.box.left and w.box.left + w.box.width <= a4_px[0] + 1
            assert 0 <= w.box.top and w.box.top + w.box.height <= a4_px[1] + 1
    # Boxes follow the page: the first line sits above the last one.
    assert pages[0].words[0].box.top < pages[0].words[-1].box.top


def test_interleaved_columns_are_read_column_by_column(tmp_path):
    left = [f"gauche {i} hypertension artérielle" for i in range(15)]
    right = [f"droite {i} pénicilline urticaire" for i in range(15)]
    path = two_column_pdf(tmp_path / "colonnes.pdf", left, right)
    (page,) = read_text_layer(path, SETTINGS)
    lines = page.text.split("\n")
    assert lines[0] == "Compte rendu opératoire"
    assert lines[1:16] == left
    assert lines[16:31] == right
    for w in page.words:
        assert page.text[w.start:w.end] == w.text


def test_plain_pages_never_touch_pdfplumber(tmp_path, monkeypatch):
    path = text_pdf(tmp_path / "cr.pdf", [PARAGRAPH] * 3)

    def forbidden(*_a, **_k):
        raise AssertionError("pdfplumber opened for a plain page")

    monkeypatch.setattr(textlayer, "_plumber_open", forbidden)
    assert len(read_text_layer(path, SETTINGS)) == 3


def test_pages_with_too_little_text_are_left_to_ocr(tmp_path):
    path = text_pdf(tmp_path / "cr.pdf", [PARAGRAPH, ["p. 2"], []])
    pages = read_text_layer(path, SETTINGS)
    assert [p.source for p in pages] == ["text_layer", "empty", "empty"]


def test_empty_user_password_is_read(tmp_path):
    enc = pdfencrypt.StandardEncryption("", ownerPassword="proprietaire")
    path = text_pdf(tmp_path / "protege.pdf", [PARAGRAPH], encrypt=enc)
    assert path.read_bytes().count(b"/Encrypt") >= 1
    (page,) = read_text_layer(path, SETTINGS)
    assert page.text.split("\n") == PARAGRAPH


def test_user_password_is_encrypted(tmp_path):
    enc = pdfencrypt.StandardEncryption("secret", ownerPassword="proprietaire")
    path = text_pdf(tmp_path / "protege.pdf", [PARAGRAPH], encrypt=enc)
    with pytest.raises(DocumentError) as e:
        read_text_layer(path, SETTINGS)
    assert e.value.reason == "encrypted"


def test_truncated_pdf(tmp_path):
    data = text_pdf(tmp_path / "full.pdf", [PARAGRAPH * 4] * 3).read_bytes()
    (tmp_path / "cut.pdf").write_bytes(data[: len(data) // 2])
    with pytest.raises(DocumentError) as e:
        read_text_layer(tmp_path / "cut.pdf", SETTINGS)
    assert e.value.reason == "truncated"
    assert "Antécédents" not in str(e.value)


def test_broken_file_errors_carry_no_document_text(tmp_path):
    secret = "DUPONT Jeanne née le 01/02/1950"
    c = canvas.Canvas(str(tmp_path / "meta.pdf"))
    c.setTitle(secret)
    c.setAuthor(secret)
    c.drawString(50, 800, secret)
    c.save()
    data = (tmp_path / "meta.pdf").read_bytes()
    (tmp_path / "broken.pdf").write_bytes(data[:200] + b"\x00garbage" + data[-150:])
    with pytest.raises(DocumentError) as e:
        read_text_layer(tmp_path / "broken.pdf", SETTINGS)
    assert "DUPONT" not in str(e.value) and e.value.__cause__ is None


def test_too_many_pages_and_absurd_page_size(tmp_path):
    path = text_pdf(tmp_path / "long.pdf", [PARAGRAPH] * 3)
    with pytest.raises(DocumentError) as e:
        read_text_layer(path, Settings(max_pages=2))
    assert e.value.reason == "too_large"

    c = canvas.Canvas(str(tmp_path / "huge.pdf"), pagesize=(20000, 20000))
    c.drawString(100, 100, "page géante")
    c.save()
    with pytest.raises(DocumentError) as e:
        read_text_layer(tmp_path / "huge.pdf", SETTINGS)
    assert e.value.reason == "too_large"
