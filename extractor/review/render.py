"""The dossier view as a static, self-contained page: `synthese.html` beside `synthese.json`
(`synthese render ROOT`), for reading without the server, printing, attaching to a record.

Same template as the server's dossier page, without the forms; the style sheet is inlined and the
page images (a band around each finding, with its box drawn) are embedded as data: URIs, so the file
opens with no network and no other file.
"""
from __future__ import annotations

import base64
import logging
import os
from pathlib import Path

from extractor.config import HTML_NAME, OUTPUT_NAME, Settings

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent
TEMPLATES_DIR = PACKAGE_DIR / "templates"
STATIC_DIR = PACKAGE_DIR / "static"


def environment():
    """The Jinja2 environment of the review pages (autoescaped)."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
                             autoescape=jinja2.select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
    env.filters["pct"] = lambda v: f"{round(100 * (v or 0))} %"
    env.filters["when"] = lambda v: (str(v)[:16].replace("T", " ") if v else "")
    return env


def render_dossier(folder: Path, key: str | None = None, images: bool = True, settings: Settings | None = None) -> str:
    """The static HTML of one dossier's synthese.json."""
    from extractor.review import labels as L
    from extractor.review.dossiers import dossier_view, load
    from extractor.review.pages import THUMB_WIDTH, PageImages, PageUnavailable

    loaded = load(key or folder.name, folder)
    view = dossier_view(loaded)
    s = loaded.synthesis
    documents = {d.path: d for d in s.documents}
    renderer = PageImages(settings) if images else None

    def img(block: str, entry, i: int, full: bool = False) -> str | None:
        if renderer is None:
            return None
        if block == "conflicts":
            sources = s.conflicts[int(entry)].sources
        else:
            sources = next(e for e in getattr(s, block) if e.id == entry).sources
        source = sources[i]
        doc = documents.get(source.document)
        if doc is None:
            return None
        try:
            data = renderer.jpeg(folder, doc, source, THUMB_WIDTH, crop=True)
        except PageUnavailable:
            return None
        return "data:image/jpeg;base64," + base64.b64encode(data).decode()

    css = (STATIC_DIR / "review.css").read_text()
    return environment().get_template("dossier.html").render(
        d=view, static=True, css=css, img=img, L=L, u=lambda path, **p: "#", reviewer="", fixed_reviewer=True,
        error=None, notice=None, focus=None, can_undo=False, next_key=None, ledger_message=None)


def render_tree(root: Path, images: bool = True) -> list[Path]:
    """Write synthese.html beside every synthese.json under `root`; return the files written."""
    from extractor.review.dossiers import find_dossiers
    from extractor.write import atomic_write_bytes

    written = []
    for key, folder in find_dossiers(root).items():
        html = render_dossier(folder, key, images)
        mode = os.stat(folder / OUTPUT_NAME).st_mode & 0o777
        atomic_write_bytes(folder / HTML_NAME, html.encode(), mode)
        written.append(folder / HTML_NAME)
    return written
