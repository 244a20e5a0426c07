"""Stage: document type and date from the first page.

In: a `DocumentRecord` with page texts. Out: (doc_type, ISO date or None). The type comes from title cues
of `rules/cues.toml` [doctype] looked for in the first lines of the first page (then the whole first page
for letter salutations); the date is the first dated line near the top, preferring "fait le" / "le <date>"
lines, ignoring birth dates ("né(e) le") and dates of admission ranges only when a better one exists.
"""
from __future__ import annotations

import functools
import re
from datetime import date

from extractor.clinical.lexicon import fold, load_cues
from models.document import DocumentRecord

_ORDER = ["operatoire", "biologie", "ordonnance", "consultation", "compte_rendu", "administratif", "courrier"]
_MONTHS = {
    "janvier": 1, "janv": 1, "jan": 1, "fevrier": 2, "fevr": 2, "fev": 2, "mars": 3, "mar": 3, "avril": 4, "avr": 4,
    "mai": 5, "juin": 6, "juillet": 7, "juil": 7, "aout": 8, "septembre": 9, "sept": 9, "sep": 9, "octobre": 10,
    "oct": 10, "novembre": 11, "nov": 11, "decembre": 12, "dec": 12,
}
_MONTH_RX = "|".join(sorted(_MONTHS, key=len, reverse=True))
_DATE_RX = re.compile(
    r"(?P<d1>\d{1,2})\s?[/.\-]\s?(?P<m1>\d{1,2})\s?[/.\-]\s?(?P<y1>\d{4}|\d{2})(?!\d)"
    r"|(?P<y2>(?:19|20)\d\d)-(?P<m2>\d{2})-(?P<d2>\d{2})"
    rf"|(?P<d3>\d{{1,2}})(?:er)?\s+(?P<m3>{_MONTH_RX})\.?\s+(?P<y3>(?:19|20)\d\d)"
)
_BIRTH = re.compile(r"\b(?:nee?|naissance|ddn|date de naissance|ne\(e\))\s*(?:le|:)?\s*$")
_PREFERRED = re.compile(r"(?:fait\s+(?:a\s+[\w\- ]+,?\s*)?le|redige le|edite le|^\s*le|,\s*le|date\s*:|date du document\s*:|date de la consultation\s*:|date d'examen\s*:|en date du)\s*$")


@functools.cache
def _doctype_rx() -> list[tuple[str, re.Pattern]]:
    cues = load_cues()["doctype"]
    out = []
    for name in _ORDER:
        alts = sorted({re.escape(fold(c)).replace(r"\ ", r"[\s\-]+") for c in cues.get(name, [])}, key=len, reverse=True)
        out.append((name, re.compile(r"(?<![a-z])(?:" + "|".join(alts) + r")(?![a-z])")))
    return out


def _to_iso(m: re.Match) -> str | None:
    g = m.groupdict()
    try:
        if g["d1"]:
            y = int(g["y1"])
            y = y + (2000 if y < 50 else 1900) if y < 100 else y
            return date(y, int(g["m1"]), int(g["d1"])).isoformat()
        if g["y2"]:
            return date(int(g["y2"]), int(g["m2"]), int(g["d2"])).isoformat()
        if g["d3"]:
            return date(int(g["y3"]), _MONTHS[g["m3"]], int(g["d3"])).isoformat()
    except ValueError:
        return None
    return None


def find_document_date(text: str, top_chars: int = 1500) -> str | None:
    """The document's date in `text` (ISO), from its top: a "fait le"/"le <date>" line first, else the first date."""
    folded = fold(text)
    first: str | None = None
    for m in _DATE_RX.finditer(folded):
        before = folded[max(0, m.start() - 40):m.start()]
        line_before = before.split("\n")[-1]
        if _BIRTH.search(line_before):
            continue
        iso = _to_iso(m)
        if iso is None or not ("1950" <= iso[:4] <= "2100"):
            continue
        if _PREFERRED.search(line_before):
            return iso
        if first is None and m.start() < top_chars:
            first = iso
    return first


def find_birth_date(text: str) -> str | None:
    """The date of birth written in `text` ("né le 12/03/1960", "DDN : 1960-03-12"), ISO, or None."""
    folded = fold(text)
    for m in _DATE_RX.finditer(folded):
        if _BIRTH.search(folded[max(0, m.start() - 40):m.start()].split("\n")[-1]):
            iso = _to_iso(m)
            if iso is not None and "1880" <= iso[:4] <= "2100":
                return iso
    return None


def classify_document(record: DocumentRecord) -> tuple[str, str | None]:
    """(doc_type, date_iso | None) of a document, from title cues and dates on its first page with text."""
    page = next((p for p in record.pages if p.text and p.text.strip()), None)
    if page is None:
        return "autre", None
    folded = fold(page.text)
    head_lines = [ln for ln in folded.split("\n") if ln.strip()][:12]
    head = "\n".join(head_lines)
    doc_type = "autre"
    for name, rx in _doctype_rx():
        if name == "courrier":
            continue
        if rx.search(head):
            doc_type = name
            break
    if doc_type == "autre":
        courrier = dict(_doctype_rx())["courrier"]
        if courrier.search(folded[:3000]):
            doc_type = "courrier"
    return doc_type, find_document_date(page.text)
