"""Ingest rules: what counts as a dossier, which files are candidates, sniffing by content."""
from __future__ import annotations

import hashlib
import os
import signal
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from extractor.documents.ingest import discover_dossiers, list_documents, sha256_file, sniff  # noqa: E402

PDF = b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


@pytest.fixture
def alarm():
    """Fail instead of hanging if something opens a FIFO."""
    def boom(*_):
        raise TimeoutError("blocked: a FIFO was opened")
    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(5)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def test_root_holding_documents_is_the_one_dossier(tmp_path):
    (tmp_path / "lettre.pdf").write_bytes(PDF)
    (tmp_path / "sub").mkdir()
    assert discover_dossiers(tmp_path) == [tmp_path]


def test_subdirectories_are_dossiers_hidden_ones_are_not(tmp_path):
    for name in ("patient_b", "patient_a", ".synthese", ".cache", "vide"):
        (tmp_path / name).mkdir()
    (tmp_path / "patient_a" / "cr.pdf").write_bytes(PDF)
    (tmp_path / "synthese.json").write_text("{}")  # our own output at the root is not a document
    assert discover_dossiers(tmp_path) == [tmp_path / "patient_a", tmp_path / "patient_b", tmp_path / "vide"]


def test_list_documents_skips_with_reasons(tmp_path, alarm):
    d = tmp_path / "dossier"
    (d / "sous dossier").mkdir(parents=True)
    (d / ".cache").mkdir()
    (d / ".synthese").mkdir()
    (d / ".synthese" / "ledger.duckdb").write_bytes(b"x")
    (d / ".cache" / "x.pdf").write_bytes(PDF)
    (d / "compte rendu é.pdf").write_bytes(PDF)
    (d / "ligne\ncoupée.pdf").write_bytes(PDF)
    (d / "sans_extension").write_bytes(PDF)
    (d / "sous dossier" / "scan.png").write_bytes(PNG)
    (d / ".cache.pdf").write_bytes(PDF)
    (d / "synthese.json").write_text("{}")
    (d / "notes.JSON").write_text("{}")
    (d / ".synthese-1234.tmp").write_bytes(b"partial")
    outside = tmp_path / "ailleurs.pdf"
    outside.write_bytes(PDF)
    (d / "lien.pdf").symlink_to(outside)
    (d / "lien_dossier").symlink_to(tmp_path, target_is_directory=True)
    os.mkfifo(d / "tube.pdf")

    found = {c.rel: c.skip for c in list_documents(d)}
    assert found == {
        ".cache": "hidden",
        ".cache.pdf": "hidden",
        ".synthese": "state_dir",
        ".synthese-1234.tmp": "temp_file",
        "compte rendu é.pdf": None,
        "ligne\ncoupée.pdf": None,
        "lien.pdf": "symlink",
        "lien_dossier": "symlink",
        "notes.JSON": "output",
        "sans_extension": None,
        "sous dossier/scan.png": None,
        "synthese.json": "output",
        "tube.pdf": "not_regular",
    }
    by_rel = {c.rel: c for c in list_documents(d)}
    assert by_rel["sous dossier/scan.png"].path == d / "sous dossier" / "scan.png"


def test_sniff_reads_content_not_names(tmp_path):
    (tmp_path / "image.pdf").write_bytes(PNG)
    (tmp_path / "junk_then_pdf").write_bytes(b"\r\n\x00junk" + PDF)
    (tmp_path / "photo.png").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 16)
    (tmp_path / "scan.tif").write_bytes(b"II*\x00" + b"\x00" * 16)
    (tmp_path / "texte.pdf").write_bytes(b"Bonjour, ceci n'est pas un PDF")
    (tmp_path / "late.pdf").write_bytes(b" " * 2000 + PDF)
    assert sniff(tmp_path / "image.pdf") == "png"
    assert sniff(tmp_path / "junk_then_pdf") == "pdf"
    assert sniff(tmp_path / "photo.png") == "jpeg"
    assert sniff(tmp_path / "scan.tif") == "tiff"
    assert sniff(tmp_path / "texte.pdf") is None
    assert sniff(tmp_path / "late.pdf") is None  # header beyond the first 1024 bytes


def test_sha256_is_streamed_and_exact(tmp_path):
    data = os.urandom(3 * (1 << 20) + 17)
    (tmp_path / "f").write_bytes(data)
    assert sha256_file(tmp_path / "f") == hashlib.sha256(data).hexdigest()
