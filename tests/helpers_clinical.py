"""Clinical rules as French sentences: the inline markup of the rule tests and the helpers that read it.

Markup: `<ent attr=value ...>text</ent>` marks where a mention must be found and what it must say
(any Mention field: category, label, kind, negated, hypothetical, family, status, dose, frequency, ...).
"""
from __future__ import annotations

import re

from extractor.clinical.consolidate import consolidate
from extractor.clinical.mentions import extract_mentions
from models.document import DocumentRecord, Page
from models.synthesis import Synthesis

_ENT = re.compile(r"<ent((?:\s+\w+=(?:\"[^\"]*\"|\S+?))*)\s*>(.*?)</ent>", re.S)
_ATTR = re.compile(r"(\w+)=(?:\"([^\"]*)\"|(\S+))")


def parse(marked: str) -> tuple[str, list[tuple[int, int, dict]]]:
    """Strip the markup; return the plain text and the expected (start, end, attributes)."""
    text, ents, pos = "", [], 0
    for m in _ENT.finditer(marked):
        text += marked[pos:m.start()]
        start = len(text)
        text += m.group(2)
        attrs = {}
        for a in _ATTR.finditer(m.group(1)):
            v = a.group(2) if a.group(2) is not None else a.group(3)
            attrs[a.group(1)] = {"true": True, "false": False, "none": None}.get(v, v)
        ents.append((start, len(text), attrs))
        pos = m.end()
    text += marked[pos:]
    return text, ents


def mentions_of(text: str, doc_type: str = "autre", source: str = "text_layer", **page_kw):
    page = Page(number=1, text=text, source=source, **page_kw)
    return extract_mentions(DocumentRecord(path="d.pdf", sha256="0", size=1, pages=[page], doc_type=doc_type))


def check(marked: str, **kw):
    text, ents = parse(marked)
    found = mentions_of(text, **kw)
    for start, end, attrs in ents:
        hits = [m for m in found if m.start == start and m.end == end]
        # an absence may cover its section title too ("Allergies : pas d'allergie connue")
        hits = hits or [m for m in found if m.category == "absence" and m.start <= start and end <= m.end]
        assert hits, f"nothing found at {text[start:end]!r} in {text!r}; got {[(m.text, m.category) for m in found]}"
        m = hits[0]
        for k, v in attrs.items():
            assert getattr(m, k) == v, f"{text[start:end]!r}: {k}={getattr(m, k)!r}, expected {v!r}"
    return found


def synthesis_of(*texts: str, doc_type: str = "courrier") -> Synthesis:
    """The consolidated synthesis of a dossier whose documents are these texts (one text PDF page each)."""
    records, mentions = [], {}
    for i, text in enumerate(texts):
        rec = DocumentRecord(path=f"d{i}.pdf", sha256=str(i), size=1, doc_type=doc_type,
                             date=f"2024-01-{i + 1:02d}", pages=[Page(number=1, text=text, source="text_layer")])
        records.append(rec)
        mentions[rec.path] = extract_mentions(rec)
    return consolidate("P1", records, mentions)


def history_labels(*texts: str) -> list[tuple[str, str]]:
    """(label, kind) of every history entry the texts yield."""
    return [(e.label, e.kind) for e in synthesis_of(*texts).history]
