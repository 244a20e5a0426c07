"""What a PDF's own dictionaries say about how its page images are drawn.

A scanned page is read from its embedded image as decoded (`ocr.pdf_page_image`), without rendering
the page: twice as fast, and the scan's own resolution. That is only right when the page draws the
image as it is. pdfium's bitmap call (FPDFImageObj_GetBitmap) decodes the pixels and applies /Decode,
but not what masks or the graphics state do to them, and pdfium's API says nothing about either
(FPDFPageObj_HasTransparency does not see an /SMask). The image XObject's dictionary and the page's
resources do: a soft mask (/SMask), a colour-key or stencil mask (/Mask), a stencil image
(/ImageMask), or an ExtGState with a soft mask, a blend mode or an alpha other than 1 each mean the
page is rendered instead; so does a colour space whose samples pdfium does not turn into grey or
colour values itself (Lab, separations, DeviceN: the check pdfium's metadata call made, ~3 ms).

pdfminer (already installed with pdfplumber) parses the dictionaries, ~2 ms for a one-page scan; no
stream is decoded. Replaces a pixel check against a thumbnail rendering of the page, which made
pdfium decode the scan a second time (~25-40 ms a page) and could not see a mask hiding a few lines.
"""
from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)

_MASK_KEYS = ("SMask", "Mask", "ImageMask")
_PLAIN_BLEND_MODES = {"Normal", "Compatible"}
_DECODABLE_SPACES = {"DeviceGray", "DeviceRGB", "DeviceCMYK", "CalGray", "CalRGB", "ICCBased", "Indexed",
                     "G", "RGB", "CMYK", "I"}  # the last four: abbreviations


def plain_image_pages(source: Path | bytes, page_count: int) -> frozenset[int]:
    """The 0-based pages of the PDF `source` whose images are all drawn as they are: every XObject of
    the page's resources is an image with no mask, in a colour space pdfium decodes to grey or colour
    values, and no graphics state of the page masks, blends or fades. `page_count` is the number of
    pages pdfium found: when pdfminer counts otherwise (a broken page tree each reads its own way),
    no page is vouched for. Anything pdfminer cannot parse (damaged, encrypted with a password)
    vouches for no page either: those pages are rendered, never guessed."""
    import io

    from pdfminer.pdfdocument import PDFDocument
    from pdfminer.pdfpage import PDFPage
    from pdfminer.pdfparser import PDFParser

    try:
        with (io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")) as fh:
            pages = list(PDFPage.create_pages(PDFDocument(PDFParser(fh))))
            if len(pages) != page_count:
                return frozenset()
            return frozenset(i for i, page in enumerate(pages) if _draws_images_plainly(page.resources))
    except Exception as e:  # noqa: BLE001 - pdfminer raises many kinds on damaged files; all mean "render"
        log.debug("PDF dictionaries not readable (%s): scanned pages will be rendered", type(e).__name__)
        return frozenset()


def _draws_images_plainly(resources) -> bool:
    from pdfminer.pdftypes import PDFStream, resolve1

    resources = resolve1(resources) or {}
    xobjects = resolve1(resources.get("XObject")) or {}
    if not isinstance(xobjects, dict) or not xobjects:
        return False  # an inline image, or nothing drawn from the resources
    for ref in xobjects.values():
        obj = resolve1(ref)
        if not isinstance(obj, PDFStream) or _name(obj.attrs.get("Subtype")) != "Image":
            return False  # a form: pdfium would not have found a single image anyway
        if any(resolve1(obj.attrs.get(key)) not in (None, False) for key in _MASK_KEYS):
            return False
        if not _decodable(obj.attrs.get("ColorSpace"), resources):
            return False
    states = resolve1(resources.get("ExtGState")) or {}
    if not isinstance(states, dict):
        return False
    for ref in states.values():
        state = resolve1(ref)
        if not isinstance(state, dict):
            return False
        if _name(resolve1(state.get("SMask"))) not in (None, "None"):
            return False
        blend = resolve1(state.get("BM"))
        blends = blend if isinstance(blend, list) else [blend]
        if any(b is not None and _name(resolve1(b)) not in _PLAIN_BLEND_MODES for b in blends):
            return False
        if resolve1(state.get("ca")) not in (None, 1, 1.0):  # images are painted with the fill alpha
            return False
    return True


def _decodable(space, resources) -> bool:
    """Whether pdfium's bitmap call gives the pixels of an image in colour space `space` as grey or
    colour values (as pdfium's own FPDF_COLORSPACE_* metadata would say, without asking pdfium to
    load the image for it): the device spaces, CIE-based grey and RGB, ICC-based, indexed. Not Lab,
    separations (spot colours), DeviceN or a missing space (JPX images carry theirs inside)."""
    from pdfminer.pdftypes import resolve1

    space = resolve1(space)
    family = _name(resolve1(space[0])) if isinstance(space, list) and space else _name(space)
    if family not in _DECODABLE_SPACES and not isinstance(space, list):
        named = resolve1((resolve1(resources.get("ColorSpace")) or {}).get(family or ""))
        if named is not None and named is not space:
            return _decodable(named, {})
    return family in _DECODABLE_SPACES


def _name(value) -> str | None:
    """A PDF name as a str (pdfminer's PSLiteral has it in .name); None for no value."""
    if value is None:
        return None
    name = getattr(value, "name", value)
    return name.decode("latin-1") if isinstance(name, bytes) else str(name)
