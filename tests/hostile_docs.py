"""Builders of hostile inputs (issue 5), generated on the fly: no binary blob is checked in.

Each builder writes one file (or link, or FIFO) and returns its path. Raw PDFs are written by hand
(`raw_pdf`) when the point is a structure no PDF library would produce (a wrong xref, an absurd
MediaBox, a stream that inflates to gigabytes).
"""
from __future__ import annotations

import io
import os
import random
import struct
import zlib
from pathlib import Path

from PIL import Image
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas

from helpers_docs import PARAGRAPH, jpeg_with_exif_orientation, page_image, text_pdf


def raw_pdf(objects: list[bytes], *, xref: bool = True, info: bytes | None = None) -> bytes:
    """A PDF from object bodies (object n = objects[n-1]; 1 must be the catalog), with a correct xref."""
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    start = len(out)
    if xref:
        out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
        out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    trailer = b"<< /Size %d /Root 1 0 R" % (len(objects) + 1)
    if info is not None:
        trailer += b" /Info " + info
    out += b"trailer\n" + trailer + b" >>\nstartxref\n%d\n%%%%EOF\n" % start
    return bytes(out)


def _stream(data: bytes, extra: bytes = b"") -> bytes:
    return b"<< /Length %d %s>>\nstream\n" % (len(data), extra) + data + b"\nendstream"


def one_page_pdf(text: str = "Consultation du 3 mars 2024 : patient vu en suivi.", mediabox=(0, 0, 595, 842)) -> list[bytes]:
    content = b"BT /F1 11 Tf 60 760 Td (" + text.encode("latin-1") + b") Tj ET"
    return [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [%d %d %d %d] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>" % tuple(int(v) for v in mediabox),
        _stream(content),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]


# -------------------------------------------------------------------------------- PDFs

def empty_file(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def truncated_pdf(path: Path) -> Path:
    """A real text PDF cut to its first 40%: no xref, no trailer, the page tree cut off."""
    full = text_pdf(path, [PARAGRAPH] * 3).read_bytes()
    path.write_bytes(full[: int(len(full) * 0.4)])
    return path


def garbage_pdf(path: Path, seed: int = 5) -> Path:
    path.write_bytes(random.Random(seed).randbytes(20_000))
    return path


def broken_xref_pdf(path: Path) -> Path:
    """A valid one-page PDF whose xref offsets all point to the wrong place (readers must rebuild it)."""
    data = raw_pdf(one_page_pdf("Courrier du 4 avril 2024 : traitement par ramipril 5 mg le matin."))
    start = data.index(b"\nxref\n") + 1
    end = data.index(b"trailer", start)
    table = data[start:end]
    broken = table.replace(b" 00000 n", b" 00000 n")  # keep the shape, corrupt the numbers
    lines = broken.split(b"\n")
    lines = [(b"%010d 00000 n " % (int(ln[:10]) + 37)) if ln.endswith(b" n ") else ln for ln in lines]
    path.write_bytes(data[:start] + b"\n".join(lines) + data[end:])
    return path


def encrypted_pdf(path: Path, user_password: str) -> Path:
    from reportlab.lib import pdfencrypt

    enc = pdfencrypt.StandardEncryption(user_password, ownerPassword="owner-secret", canPrint=1)
    return text_pdf(path, [PARAGRAPH], encrypt=enc)


def many_pages_pdf(path: Path, pages: int) -> Path:
    """`pages` small pages, each with one line of text (enough to need no OCR)."""
    c = canvas.Canvas(str(path), pagesize=(300, 200))
    for n in range(1, pages + 1):
        c.setFont("Helvetica", 9)
        c.drawString(20, 150, f"Feuille de surveillance infirmière, page {n}")
        c.showPage()
    c.save()
    return path


def absurd_mediabox_pdf(path: Path) -> Path:
    path.write_bytes(raw_pdf(one_page_pdf(mediabox=(0, 0, 1_000_000, 1_000_000))))
    return path


def inflating_pdf(path: Path, gib: float = 3.0, chunk_mib: int = 64) -> tuple[Path, int]:
    """A one-page PDF whose content streams inflate to `gib` GiB of zeros while the file stays small.

    One FlateDecode stream of `chunk_mib` MiB of zeros (~64 KB compressed), referenced again and
    again by the page's /Contents array: readers concatenate them. Built with a streaming
    compressor so the test itself never holds more than 1 MiB of zeros. Returns (path, declared bytes).
    """
    comp = zlib.compressobj(9)
    block = bytes(1 << 20)
    parts = [comp.compress(block) for _ in range(chunk_mib)]
    parts.append(comp.flush())
    stream = b"".join(parts)
    repeats = max(1, int(gib * 1024 / chunk_mib))
    contents = b"[" + b" ".join(b"4 0 R" for _ in range(repeats)) + b"]"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents " + contents + b" >>",
        _stream(stream, b"/Filter /FlateDecode "),
    ]
    path.write_bytes(raw_pdf(objects))
    return path, repeats * chunk_mib << 20


def pdf_with_metadata(path: Path, lines: list[str], title: str, author: str) -> Path:
    c = canvas.Canvas(str(path), pagesize=A4)
    c.setTitle(title)
    c.setAuthor(author)
    c.setSubject(title)
    y = A4[1] - 90
    c.setFont("Helvetica", 11)
    for line in lines:
        c.drawString(60, y, line)
        y -= 16
    c.showPage()
    c.save()
    return path


def broken_pdf_with_metadata(path: Path, canary: str) -> Path:
    """A PDF whose Info dictionary holds `canary` and whose page tree is broken: pdfminer's
    exceptions and warnings on such files quote the objects they choke on."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R /Lang (" + canary.encode() + b") >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R /Annots (" + canary.encode() + b") >>",
        b"<< /Length 999999 >>\nstream\nBT (" + canary.encode() + b") Tj ET\n",  # cut: no endstream
        b"<< /Title (" + canary.encode() + b") /Author (" + canary.encode() + b") >>",
    ]
    data = raw_pdf(objects, info=b"5 0 R")
    path.write_bytes(data[: data.index(b"\nxref\n")])  # and no xref
    return path


# -------------------------------------------------------------------------------- images

def png_bomb(path: Path, side: int = 30_000) -> Path:
    """A 1-bit `side` x `side` PNG (900 Mpixels at 30,000) of a few KB: rows of zeros, zlib-compressed."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = bytes(1 + (side + 7) // 8)  # filter byte + packed bits
    comp = zlib.compressobj(9)
    body = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


def multipage_tiff(path: Path, pages: list[list[str]]) -> Path:
    frames = [page_image(lines, size=(1240, 900)) for lines in pages]
    frames[0].save(path, format="TIFF", save_all=True, append_images=frames[1:], compression="tiff_lzw", dpi=(150, 150))
    return path


def exif_rotated_jpeg(path: Path, lines: list[str], orientation: int = 6) -> Path:
    path.write_bytes(jpeg_with_exif_orientation(page_image(lines, size=(1240, 900)), orientation))
    return path


def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def small_text_pdf(path: Path, text: str) -> Path:
    """A one-page text PDF written by hand: ~600 bytes, ~50 µs to make (reportlab takes ~5 ms)."""
    path.write_bytes(raw_pdf(one_page_pdf(text)))
    return path


def image_bytes(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()
