"""Builders for the test inputs of the reading stages: small PDFs (reportlab) and page images (Pillow).

Everything is generated on the fly so the tests say what they feed in; nothing here is patient data.
"""
from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas

FONT_PATHS = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
]

PARAGRAPH = [
    "Compte rendu de consultation du 12 mars 2024",
    "Antécédents : hypertension artérielle traitée depuis 2015,",
    "diabète de type 2, appendicectomie dans l'enfance.",
    "Allergie à la pénicilline avec urticaire généralisée.",
    "Traitement actuel : metformine 1000 mg matin et soir,",
    "ramipril 5 mg le matin, atorvastatine 20 mg le soir.",
]


def text_pdf(path: Path, pages: list[list[str]], *, encrypt=None, header: str | None = None,
             footer: str | None = None) -> Path:
    """A text PDF, one list of lines per page, with an optional header/footer ({n}/{total} filled in)."""
    c = canvas.Canvas(str(path), pagesize=A4, encrypt=encrypt)
    width, height = A4
    for n, lines in enumerate(pages, 1):
        c.setFont("Helvetica", 11)
        if header:
            c.drawString(60, height - 40, header.format(n=n, total=len(pages)))
        y = height - 90
        for line in lines:
            c.drawString(60, y, line)
            y -= 16
        if footer:
            c.drawString(60, 30, footer.format(n=n, total=len(pages)))
        c.showPage()
    c.save()
    return path


def two_column_pdf(path: Path, left: list[str], right: list[str], title: str = "Compte rendu opératoire") -> Path:
    """A page whose two columns are drawn row by row (left line 1, right line 1, left line 2...),
    as some report generators do: the content stream order is not the reading order."""
    c = canvas.Canvas(str(path), pagesize=A4)
    width, height = A4
    c.setFont("Helvetica-Bold", 13)
    c.drawString(60, height - 50, title)
    c.setFont("Helvetica", 10)
    y = height - 90
    for i in range(max(len(left), len(right))):
        if i < len(left):
            c.drawString(50, y, left[i])
        if i < len(right):
            c.drawString(width / 2 + 20, y, right[i])
        y -= 14
    c.showPage()
    c.save()
    return path


def font(size: int) -> ImageFont.FreeTypeFont:
    for p in FONT_PATHS:
        if Path(p).exists():
            return ImageFont.truetype(p, size)
    return ImageFont.load_default(size)


def page_image(lines: list[str] = PARAGRAPH, *, size=(1240, 1754), font_size=34, top=150) -> Image.Image:
    """A white 150-dpi A4 page image (grayscale) holding `lines` of black text."""
    img = Image.new("L", size, 255)
    draw = ImageDraw.Draw(img)
    f = font(font_size)
    y = top
    for line in lines:
        draw.text((100, y), line, fill=0, font=f)
        y += int(font_size * 1.6)
    return img


def jpeg_with_exif_orientation(img: Image.Image, orientation: int) -> bytes:
    """JPEG bytes of `img` stored turned, with the EXIF Orientation tag that says how to turn it back."""
    # Orientation 6 means "rotate 90° clockwise to display": store the image turned 90° counter-clockwise.
    stored = {6: img.transpose(Image.Transpose.ROTATE_90), 3: img.transpose(Image.Transpose.ROTATE_180),
              8: img.transpose(Image.Transpose.ROTATE_270)}[orientation]
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    stored.convert("RGB").save(buf, "JPEG", quality=90, exif=exif.tobytes())
    return buf.getvalue()
