"""Stage: page texts -> mentions (history, allergy, treatment, absence), with qualifiers and provenance.

In: a `DocumentRecord` whose pages carry text (text layer or OCR). Out: a list of `Mention`, offsets into
each page's text. Spans are found by our lexicons (`extractor.clinical.lexicon`), placed in sections
(`extractor.clinical.sections`), then qualified (negated / hypothetical / family) by EDS-NLP (`extractor.clinical.nlp`).
Qualified mentions are kept with their flags: consolidation decides what becomes an entry.

Block rules (clinical conventions):
- history: conditions and procedures anywhere but allergy / treatment sections; kind is family in a
  family section or when EDS-NLP says so, surgical for procedures or in a surgical-history section.
- allergy: allergens (and any drug) in an allergy section, or in a clause with an allergy cue
  ("allergie à", "intolérance aux"); the reaction is read in the same clause.
- treatment: drugs in a treatment / ordonnance section (or a whole ordonnance), or on a line with posology,
  or anywhere with a stop cue right beside them ("Arrêt du Kardégic." in a conclusion);
  a drug only discussed elsewhere ("sous Kardégic depuis 2010" in the history of illness) is not a current
  treatment. A stop cue makes it `stopped`; "remplacé par X" makes X active.
- absence: explicit absence phrasings of `rules/cues.toml` [absence], or a section of a block whose whole
  body is a bare "néant" / "0" / "RAS".
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from extractor.clinical.lexicon import join_wrapped, Match, find_terms, fold, load_cues, load_lexicons, tokenize
from extractor.clinical.nlp import qualify
from extractor.clinical.sections import Section, find_sections, section_at
from models.document import DocumentRecord, Mention, Page

SNIPPET_MAX = 160
_ALLERGY_CUE = re.compile(r"\b(?:allergi\w*|intoleran\w*|hypersensibilit\w*|anaphyla\w*|reaction \w+ (?:a|au|aux)\b)")
_INTOL_CUE = re.compile(r"\bintoleran\w*")
_CLAUSE_END = re.compile(r"[\n;]|\.(?:\s|$)")


@dataclass
class _Cand:
    category: str
    match: Match
    label: str
    section: Section | None
    code: str | None = None
    kind: str | None = None
    brand: str | None = None
    confidence: float = 1.0
    extra: dict | None = None


def _phrase_regex(phrases: list[str]) -> re.Pattern:
    alts = []
    for p in sorted({fold(x) for x in phrases}, key=len, reverse=True):
        rx = re.escape(p).replace(r"\ ", r"\s+").replace(":", r"\s*:\s*").replace("'", r"['\s]?")
        rx = rx.replace(r"\s+\s*:", r"\s*:")
        alts.append(rx)
    return re.compile(r"(?<![a-z0-9])(?:" + "|".join(alts) + r")(?![a-z0-9])")


@functools.cache
def _patterns() -> dict:
    cues = load_cues()
    absence = cues["absence"]
    pos = cues["posology"]
    tr = cues["treatment"]
    return {
        "absence": {b: _phrase_regex(absence[b]) for b in ("history", "allergy", "treatment")},
        "bare": {fold(x) for x in absence["bare"]},
        "dose": [re.compile(p) for p in pos["dose"]],
        "frequency": [re.compile(p) for p in pos["frequency"]],
        "duration": [re.compile(p) for p in pos["duration"]],
        "route": [(re.compile(r"(?<![a-z])" + re.escape(fold(w)) + r"(?![a-z])"), v) for w, v in pos["route"]],
        "line_markers": [re.compile(p) for p in pos["line_markers"]],
        "stop_before": _phrase_regex(tr["stop_before"]),
        "stop_after": _phrase_regex(tr["stop_after"]),
        "start_before": _phrase_regex(tr["start_before"]),
        "not_current": _phrase_regex(tr["not_current"]),
        "dates": [re.compile(p, re.MULTILINE) for p in cues["dates"]["patterns"]],
        "surgical_after": re.compile(r"\s*" + _phrase_regex(cues["history"]["surgical_after"]).pattern),
        # A named relative (not the words "famille"/"familial", which titles use).
        "lab_value": re.compile(cues["lab"]["value_after"]),
        "relative": _phrase_regex([w for w in cues["family"]["members"] if not fold(w).startswith("famil")]),
    }


def _line_bounds(text: str, start: int, end: int) -> tuple[int, int]:
    ls = text.rfind("\n", 0, start) + 1
    le = text.find("\n", end)
    return ls, (len(text) if le < 0 else le)


def _clause_bounds(folded: str, start: int, end: int) -> tuple[int, int]:
    ls, le = _line_bounds(folded, start, end)
    cs = ls
    for m in _CLAUSE_END.finditer(folded, ls, start):
        cs = m.end()
    m = _CLAUSE_END.search(folded, end, le)
    ce = m.start() if m else le
    return cs, ce


def snippet_of(text: str, start: int, end: int, joined: str | None = None) -> str:
    """The line around a span, trimmed to about 160 characters centred on the span.

    `joined` is `text` with the wrapping line breaks of prose made spaces (`join_wrapped`, same
    length): given, the snippet is the sentence as written ("Antécédents de tabagisme et de BPCO."),
    not the last physical line of it ("de BPCO.")."""
    ls, le = _line_bounds(joined if joined is not None else text, start, end)
    if le - ls > SNIPPET_MAX:
        half = max(0, (SNIPPET_MAX - (end - start)) // 2)
        ls, le = max(ls, start - half), min(le, end + half)
    return " ".join(text[ls:le].split())


# Below this mean word confidence of its whole line (tesseract's, 0-1) an OCR match is taken for noise.
# Measured on the dev scans: lines of real text read at 0.85-0.95 even when a brand name alone is at
# 0.37 (not in tesseract's dictionary); lines read off a turned or smudged page at 0.3-0.45.
MIN_OCR_LINE_CONFIDENCE = 0.5


def _ocr_conf(page: Page, start: int, end: int) -> float:
    confs = [w.conf for w in page.words if w.start < end and w.end > start and w.conf >= 0]
    if confs:
        return max(0.0, min(1.0, sum(confs) / len(confs) / 100))
    return page.ocr_confidence if page.ocr_confidence is not None else 0.7


def _first(patterns: list[re.Pattern], s: str, exclude: list[tuple[int, int]] = ()) -> re.Match | None:
    best = None
    for p in patterns:
        for m in p.finditer(s):
            if any(a <= m.start() < b for a, b in exclude):
                continue
            if best is None or m.start() < best.start():
                best = m
            break
    return best


def _find_date(folded: str, start: int, end: int) -> str | None:
    """Year of a finding: after it up to the next comma ("IDM en 2015", "(2012)"), or a "2019 :" line head."""
    cs, ce = _clause_bounds(folded, start, end)
    comma = folded.find(",", end, ce)
    fwd = folded[end:(comma if comma >= 0 else ce)]
    best = None
    for p in _patterns()["dates"][:-1]:
        for m in p.finditer(fwd):
            if re.search(r"\b(?:a|age de)\s*$", fwd[: m.start()]):
                continue  # "à 55 ans" is an age; "à 2015" is not a date either
            if best is None or m.start() < best.start():
                best = m
            break
    if best:
        return best.group(1)
    ls = folded.rfind("\n", 0, start) + 1
    head = re.match(r"\s*[-*•]?\s*(?:en\s+)?((?:19|20)\d\d)\s*[:\-]", folded[ls:start])
    if head:
        return head.group(1)
    return None


_ITEM_SEP = re.compile(r"[,;:\n]")


def _names_relative(folded: str, start: int, end: int) -> bool:
    """A relative is named in the same list item ("..., père : IDM, ..." or "IDM chez le père")."""
    seps_before = [m.end() for m in _ITEM_SEP.finditer(folded, 0, start) if folded[m.start()] != ":"]
    item_start = seps_before[-1] if seps_before else 0
    after = re.compile(r"[,;\n]").search(folded, end)
    item_end = after.start() if after else len(folded)
    return _patterns()["relative"].search(folded, item_start, item_end) is not None


def _in_boilerplate(page: Page, start: int, end: int) -> bool:
    return any(a <= start and end <= b for a, b in page.boilerplate)


def _bare_absence(text: str, folded: str, sec: Section) -> tuple[int, int] | None:
    le = folded.find("\n", sec.start) if sec.inline else -1
    body_end = sec.end if le < 0 or le > sec.end else le
    body = folded[sec.start:body_end]
    stripped = body.strip(" \t\n.;,")
    if stripped in _patterns()["bare"]:
        s = sec.start + body.index(stripped) if stripped else sec.start
        return s, s + len(stripped)
    return None


def _allergy_context(folded: str, sec: Section | None, start: int, end: int) -> bool:
    if sec is not None and sec.block == "allergy":
        return True
    cs, _ = _clause_bounds(folded, start, end)
    return bool(_ALLERGY_CUE.search(folded, max(cs, start - 80), start))


def _posology_line(folded: str, start: int, end: int) -> bool:
    ls, le = _line_bounds(folded, start, end)
    seg = folded[end:le]
    return any(p.search(seg) for p in _patterns()["line_markers"][:3])


def _treatment_details(folded: str, text: str, m: Match, next_start: int) -> dict:
    pats = _patterns()
    _, ce = _line_bounds(folded, m.start, m.end)
    hi = min(ce, next_start)
    seg = folded[m.end:hi]
    durations = [(d.start(), d.end()) for p in pats["duration"] for d in p.finditer(seg)]
    out: dict = {}
    dm = _first(pats["dose"], seg, durations)
    if dm:
        out["dose"] = " ".join(text[m.end + dm.start():m.end + dm.end()].split())
    excl = durations + ([(dm.start(), dm.end())] if dm else [])
    fm = _first(pats["frequency"], seg, excl)
    if fm:
        out["frequency"] = " ".join(text[m.end + fm.start():m.end + fm.end()].split())
    for rx, val in pats["route"]:
        if rx.search(seg):
            out["route"] = val
            break
    return out


def _status(folded: str, m: Match, prev_end: int, next_start: int) -> str | None:
    """stopped / active from cues between the previous drug and this one, and right after it; None: no cue."""
    pats = _patterns()
    cs, ce = _clause_bounds(folded, m.start, m.end)
    lo = max(prev_end, _line_bounds(folded, m.start, m.end)[0], m.start - 60)
    before = folded[lo:m.start]
    last_stop = max((x.end() for x in pats["stop_before"].finditer(before)), default=-1)
    last_start = max((x.end() for x in pats["start_before"].finditer(before)), default=-1)
    if last_start >= 0 and last_start >= last_stop:
        return "active"
    if last_stop >= 0:
        return "stopped"
    after = folded[m.end:min(next_start, ce + 1, m.end + 60)]
    sa = pats["stop_after"].search(after)
    if sa and not re.search(r"\d", after[: sa.start()]) or (sa and sa.start() < 25):
        return "stopped"
    return None


@dataclass
class _PageContext:
    """What every block's candidate finder reads of one page: the text, its folded twin with wrapped
    prose joined 1:1 (so clause and cue windows follow sentences), tokens outside boilerplate, sections,
    and the spans already taken by an earlier block (a span feeds one block only)."""

    record: DocumentRecord
    page: Page
    text: str
    folded: str
    tokens: list
    sections: list[Section]
    taken: list[tuple[int, int]]

    def overlaps(self, m: Match) -> bool:
        return any(m.start < b and a < m.end for a, b in self.taken)


def _absence_candidates(ctx: _PageContext) -> list[_Cand]:
    """Explicit absence phrasings, then section bodies that are a bare "néant" / "0" / "RAS"."""
    pats = _patterns()
    folded, page, sections = ctx.folded, ctx.page, ctx.sections
    cands: list[_Cand] = []
    for block, rx in pats["absence"].items():
        for am in rx.finditer(folded):
            if _in_boilerplate(page, am.start(), am.end()):
                continue
            tail = folded[am.end():am.end() + 12]
            if block == "allergy" and re.match(r"\s*(?:a|au|aux|a l|d)\b|\s*'", tail) and "connu" not in folded[am.start():am.end()]:
                continue  # "pas d'allergie à l'iode": a negated allergy, not an absence
            if block == "history" and re.match(r"\s*(?:de|d|d')\b|\s*'", tail) and not re.search(r"nota|partic|conn|:", folded[am.start():am.end()]):
                continue  # "pas d'antécédent de diabète": a negated condition
            if block == "treatment" and re.match(r"\s*(?:par|de|d)\b", tail):
                continue
            mt = Match(am.start(), am.end(), "", ())
            cands.append(_Cand("absence", mt, block, section_at(sections, am.start()), extra={"block": block}))
            ctx.taken.append((am.start(), am.end()))
    for sec in sections:
        if sec.block and not any(sec.title_start <= a < sec.end for a, _ in ctx.taken):
            span = _bare_absence(ctx.text, folded, sec)
            if span:
                mt = Match(span[0], span[1], "", ())
                cands.append(_Cand("absence", mt, sec.block, sec, extra={"block": sec.block}))
                ctx.taken.append((sec.title_start, span[1]))
    return cands


def _treatment_candidates(ctx: _PageContext, drug_matches: list[Match], allergen_matches: list[Match]) -> list[_Cand]:
    """Drugs that are treatments. A drug in an allergy context is handed to the allergies instead
    (appended to `allergen_matches`)."""
    pats = _patterns()
    text, folded, sections = ctx.text, ctx.folded, ctx.sections
    whole_ordonnance = ctx.record.doc_type == "ordonnance"
    allergen_spans = {(m.start, m.end) for m in allergen_matches}
    tr_drugs: list[tuple[Match, Section | None]] = []
    for m in drug_matches:
        sec = section_at(sections, m.start)
        if _allergy_context(folded, sec, m.start, m.end):
            if not any(m.start < b and a < m.end for a, b in allergen_spans):
                allergen_matches.append(m)
            continue
        if pats["lab_value"].match(folded, m.end):
            continue  # "calcium 2,3 mmol/L": a lab result, not a treatment
        in_tr = whole_ordonnance or (sec is not None and sec.block == "treatment")
        posology = _posology_line(folded, m.start, m.end)
        term = m.terms[0]
        if term.strict and not (text[m.start].isupper() and (in_tr or posology)):
            continue
        if not (in_tr or posology):
            # Outside a treatment list a drug is only discussed, unless a stop is stated right beside it:
            # "Arrêt du Kardégic." in a conclusion, "Ventoline arrêtée (mauvaise tolérance)." in a letter.
            ls, le = _line_bounds(folded, m.start, m.end)
            if _status(folded, m, ls, le) != "stopped":
                continue
        cs, _ = _clause_bounds(folded, m.start, m.end)
        if pats["not_current"].search(folded, max(cs, m.start - 40), m.start):
            continue
        tr_drugs.append((m, sec))
    cands: list[_Cand] = []
    for i, (m, sec) in enumerate(tr_drugs):
        term = m.terms[0]
        prev_end = tr_drugs[i - 1][0].end if i else 0
        next_start = tr_drugs[i + 1][0].start if i + 1 < len(tr_drugs) else len(text)
        details = _treatment_details(folded, text, m, next_start)
        status = _status(folded, m, prev_end, next_start) or "active"
        in_tr = whole_ordonnance or (sec is not None and sec.block == "treatment")
        conf = 0.95 if in_tr else 0.75
        if term.kind == "brand" and term.strict:
            conf -= 0.15
        cands.append(_Cand("treatment", m, term.label, sec, code=term.code, brand=term.brand if term.kind == "brand" else None,
                           confidence=conf, extra={**details, "status": status}))
        ctx.taken.append((m.start, m.end))
    return cands


def _allergy_candidates(ctx: _PageContext, allergen_matches: list[Match], reactions: list[Match]) -> list[_Cand]:
    """Allergens in an allergy section or clause, with kind (allergy / intolerance) and reaction."""
    folded, sections = ctx.folded, ctx.sections
    cands: list[_Cand] = []
    for m in sorted(allergen_matches, key=lambda x: x.start):
        if ctx.overlaps(m):
            continue
        sec = section_at(sections, m.start)
        if not _allergy_context(folded, sec, m.start, m.end):
            continue
        term = m.terms[0]
        cs, ce = _clause_bounds(folded, m.start, m.end)
        lo = cs if sec is None or sec.block != "allergy" else max(cs, sec.start)
        kind = "intolerance" if _INTOL_CUE.search(folded, max(lo, m.start - 60), m.start) else "allergy"
        if sec is not None and sec.block == "allergy" and not _ALLERGY_CUE.search(folded, lo, m.start) \
                and _INTOL_CUE.search(folded, sec.title_start, sec.title_end) and "allerg" not in folded[sec.title_start:sec.title_end]:
            kind = "intolerance"
        reaction = None
        line_end = _line_bounds(folded, m.start, m.end)[1]
        for r in reactions:
            if m.end <= r.start <= min(line_end, m.end + 60) and not re.search(r"[;\n]", folded[m.end:r.start]):
                nxt = [a for a in allergen_matches if m.end <= a.start < r.start]
                if not nxt:
                    reaction = r.terms[0].label
                    break
        conf = 0.9 if (sec is not None and sec.block == "allergy") else 0.8
        cands.append(_Cand("allergy", m, term.label, sec, code=term.code, kind=kind, confidence=conf,
                           extra={"reaction": reaction}))
        ctx.taken.append((m.start, m.end))
    return cands


def _history_candidates(ctx: _PageContext, condition_matches: list[Match]) -> list[_Cand]:
    """Conditions and procedures outside allergy and treatment contexts, with kind, code and date."""
    folded, sections = ctx.folded, ctx.sections
    cands: list[_Cand] = []
    for m in condition_matches:
        if ctx.overlaps(m):
            continue
        before = folded[max(0, m.start - 6):m.start]
        if re.search(r"\d[ \t]*$|\d-$", before):
            continue  # "2 gouttes", "3 x", "25-OH" (a lab analyte, not alcohol)
        if re.search(r"(?:post|anti|pre|peri)-$", before):
            continue  # "BPCO post-tabagique": the prefix makes another word
        sec = section_at(sections, m.start)
        if sec is not None and sec.block in ("allergy", "treatment"):
            continue
        if _allergy_context(folded, sec, m.start, m.end):
            continue
        term = m.terms[0]
        if sec is not None and sec.block == "history":
            conf = 0.9
        elif sec is not None and sec.name in ("conclusion", "histoire_maladie"):
            conf = 0.75
        elif sec is None:
            conf = 0.7
        else:
            conf = 0.55
        if term.source == "cim10":
            conf -= 0.1
        if m.fuzzy:
            conf *= m.score * 0.9
        kind = term.kind or "medical"
        code = term.code
        if _patterns()["surgical_after"].match(folded, m.end) and kind != "surgical":
            kind, code = "surgical", None  # "hernie inguinale opérée": the operation, not the disease's code
        elif sec is not None and sec.kind == "surgical":
            kind = "surgical"
        cands.append(_Cand("history", m, term.label, sec, code=code, kind=kind, confidence=conf,
                           extra={"date": _find_date(folded, m.start, m.end)}))
        ctx.taken.append((m.start, m.end))
    return cands


def _page_mentions(record: DocumentRecord, page: Page) -> list[Mention]:
    text = page.text
    if not text or not text.strip():
        return []
    lex = load_lexicons()
    # Logical lines: wrapped prose joined (1:1), so clause and stop-cue windows follow sentences.
    folded = join_wrapped(text, fold(text))
    tokens = [t for t in tokenize(folded) if not _in_boilerplate(page, t[1], t[2])]
    ctx = _PageContext(record, page, text, folded, tokens, find_sections(text), [])
    is_ocr = page.source == "ocr"

    cands = _absence_candidates(ctx)
    # Drugs first (treatments, and allergens when in an allergy context), then allergens, then conditions.
    drug_matches = [m for m in find_terms(text, folded, tokens, lex["drugs"]) if not ctx.overlaps(m)]
    allergen_matches = [m for m in find_terms(text, folded, tokens, lex["allergens"]) if not ctx.overlaps(m)]
    cands += _treatment_candidates(ctx, drug_matches, allergen_matches)
    cands += _allergy_candidates(ctx, allergen_matches, find_terms(text, folded, tokens, lex["reactions"]))
    cands += _history_candidates(ctx, find_terms(text, folded, tokens, lex["conditions"], fuzzy=True))

    qual_idx = [i for i, c in enumerate(cands) if c.category != "absence"]
    quals = qualify(text, [(cands[i].match.start, cands[i].match.end) for i in qual_idx])
    qmap = dict(zip(qual_idx, quals))

    out: list[Mention] = []
    for i, c in enumerate(cands):
        neg, hyp, fam = qmap.get(i, (False, False, False))
        m = c.match
        extra = c.extra or {}
        in_family_section = c.section is not None and c.section.kind == "family"
        if c.section is not None and c.section.kind == "mixed":
            # The title itself says "familiaux": only a named relative makes the item family history.
            fam = _names_relative(folded, m.start, m.end)
        family = (fam or in_family_section) and c.category == "history"
        kind = c.kind
        if c.category == "history" and family:
            kind = "family"
        conf = c.confidence
        if is_ocr:
            ls, le = _line_bounds(text, m.start, m.end)
            if _ocr_conf(page, ls, le) < MIN_OCR_LINE_CONFIDENCE and c.category != "absence":
                continue  # tesseract believes nothing on this line: noise read off a smudge, not a finding
            conf *= 0.5 + 0.5 * _ocr_conf(page, m.start, m.end)
        out.append(Mention(
            category=c.category, block=extra.get("block"), label=c.label, text=text[m.start:m.end], page=page.number,
            start=m.start, end=m.end, snippet=snippet_of(text, m.start, m.end, folded),
            section=c.section.name if c.section else None, code=c.code, kind=kind, date=extra.get("date"),
            reaction=extra.get("reaction"), brand=c.brand, dose=extra.get("dose"), frequency=extra.get("frequency"),
            route=extra.get("route"), status=extra.get("status"), negated=neg and c.category != "absence",
            hypothetical=hyp, family=family, ocr=is_ocr, confidence=round(max(0.0, min(1.0, conf)), 3),
        ))
    out.sort(key=lambda x: x.start)
    return out


def extract_mentions(record: DocumentRecord) -> list[Mention]:
    """All mentions of a document, page by page, in text order. Pages without text give none."""
    out: list[Mention] = []
    for page in record.pages:
        if page.source == "empty" and not page.text:
            continue
        out.extend(_page_mentions(record, page))
    return out
