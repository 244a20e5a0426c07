"""Layout: tag repeated letterhead / footer lines as boilerplate, without touching the text.

A line is boilerplate when (nearly) the same line sits in the top or bottom lines of several pages
of one document ("Page 2/3", "CHU de ... — tél ..."). A letterhead repeated across single-page letters
of one dossier is not tagged: mentions are extracted per document (and cached), before the dossier
is seen whole. Digits are masked before comparing (page numbers,
dates of printing change) and lines are compared with rapidfuzz to allow for OCR noise.
The spans go to `Page.boilerplate`; `Page.text` is never changed, so every offset stays valid.
"""
from __future__ import annotations

import math
import re
from collections.abc import Iterable

from rapidfuzz import fuzz, process

from models.document import Page

ZONE_LINES = 3  # lines from the top and from the bottom of a page where letterheads and footers sit
MIN_SIMILARITY = 88.0  # rapidfuzz ratio (0-100) between two masked lines to count as the same line

_DIGITS = re.compile(r"\d+")
_SPACES = re.compile(r"\s+")


def line_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each non-blank line of `text`, without its surrounding blanks."""
    spans = []
    pos = 0
    for line in text.split("\n"):
        stripped = line.strip()
        if stripped:
            start = pos + (len(line) - len(line.lstrip()))
            spans.append((start, start + len(stripped)))
        pos += len(line) + 1
    return spans


def line_key(line: str) -> str:
    """What two lines must share to be "the same": case, spacing and digits ignored."""
    return _SPACES.sub(" ", _DIGITS.sub("#", line.lower())).strip()


def _zone(page: Page) -> list[tuple[str, tuple[int, int]]]:
    """The top and bottom lines of a page, each with its side: a header only matches headers."""
    spans = line_spans(page.text)
    top = spans[:ZONE_LINES]
    bottom = spans[max(ZONE_LINES, len(spans) - ZONE_LINES):]
    return [("top", s) for s in top] + [("bottom", s) for s in bottom]


class _Clusters:
    """Groups line keys that are near-identical; remembers which owners (pages, documents) hold each."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.owners: list[set] = []
        self.exact: dict[str, int] = {}

    def add(self, key: str, owner) -> int:
        i = self.exact.get(key)
        if i is None and self.keys:
            match = process.extractOne(key, self.keys, scorer=fuzz.ratio, score_cutoff=MIN_SIMILARITY)
            if match is not None:
                i = match[2]
        if i is None:
            i = len(self.keys)
            self.keys.append(key)
            self.owners.append(set())
        self.exact.setdefault(key, i)
        self.owners[i].add(owner)
        return i


def _useful(key: str) -> bool:
    return any(ch.isalnum() or ch == "#" for ch in key)


def _add_spans(page: Page, spans: Iterable[tuple[int, int]]) -> None:
    merged = set(map(tuple, page.boilerplate)) | set(spans)
    page.boilerplate = sorted(merged)


def mark_boilerplate(pages: list[Page]) -> list[Page]:
    """Tag the lines of the top/bottom zones repeated on at least half the pages (and at least 2).

    Changes `Page.boilerplate` in place and returns the pages. A single page is left alone.
    """
    with_text = [p for p in pages if p.text.strip()]
    if len(with_text) < 2:
        return pages
    need = max(2, math.ceil(len(with_text) / 2))
    clusters = _Clusters()
    found: list[tuple[Page, tuple[int, int], int]] = []
    for page in with_text:
        for side, (start, end) in _zone(page):
            key = line_key(page.text[start:end])
            if _useful(key):
                found.append((page, (start, end), clusters.add(f"{side}|{key}", page.number)))
    for page, span, cluster in found:
        if len(clusters.owners[cluster]) >= need:
            _add_spans(page, [span])
    return pages
