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

from extractor.clinical.lexicon import (join_wrapped, Match, find_terms, fold, is_history_type, key_of, load_cues,
                                       load_lexicons, semantic_rules, tokenize)
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
    allergy = cues["allergy"]
    return {
        "adverse_before": [re.compile(p) for p in allergy["adverse_before"]],
        "stopped_for": re.compile(allergy["stopped_for"]),
        "intolerance": re.compile(allergy["intolerance"]),
        "refuted": re.compile(allergy["refuted"]),
        "unticked_box": re.compile(allergy["unticked_box"]),
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
        # match(text, pos) anchors at pos: a leading "^" would only ever match at the start of the page.
        "lab_value": re.compile(cues["lab"]["value_after"].lstrip("^")),
        "relative": _phrase_regex([w for w in cues["family"]["members"] if not fold(w).startswith("famil")]),
        "family_pseudo": _phrase_regex(cues["family"]["pseudo"]),
        **_history_context_patterns(),
    }


def _history_context_patterns() -> dict:
    ctx = semantic_rules()["context"]
    return {
        "value_after": re.compile(ctx["value_after"]),
        "finding_before": _phrase_regex(ctx["finding_before"]),
        "diagnosis": _phrase_regex(ctx["diagnosis"]),
        "ruled_out_after": re.compile(ctx["ruled_out_after"]),
        "place_before": re.compile(ctx["place_before"]),
        "vaccine_before": re.compile(ctx["vaccine_before"]),
        "measure_before": re.compile(ctx["measure_before"]),
        "antecedent": _phrase_regex(ctx["antecedent"]),
        "own_before": re.compile(ctx["own_before"]),
        "same_disease_after": re.compile(ctx["same_disease_after"]),
        "ruled_out_before": re.compile(ctx["ruled_out_before"]),
        "adjective_forms": {key_of(x) for x in ctx["adjective_forms"]},
        "adjective_after": {fold(x) for x in ctx["adjective_after"]},
        "resolved": _phrase_regex(ctx["resolved"]),
        "family_before": re.compile(ctx["family_before"]),
        "mixed_before": re.compile(ctx["mixed_before"]),
    }


def _sentence_start(folded: str, start: int) -> int:
    m = None
    for m in re.finditer(r"\.(?:\s|$)|\n\s*\n", folded[max(0, start - 400):start]):
        pass
    return max(0, start - 400) + m.end() if m else max(0, start - 400)


def family_in_prose(folded: str, start: int) -> bool:
    """The sentence introduces family history before the mention ("Dans ses antécédents familiaux, on note
    un diabète"); a sentence about personal and family history together does not decide alone."""
    ss = _sentence_start(folded, start)
    pats = _patterns()
    cue = None
    for cue in pats["family_before"].finditer(folded, ss, start):
        pass
    if cue is None or pats["mixed_before"].search(folded, ss, start):
        return False
    # The patient becomes the subject again: "(fille lupique et sœur ...) est connue ayant un pemphigus".
    return not _PATIENT_AGAIN.search(folded, cue.end(), start)


_PATIENT_AGAIN = re.compile(r"\b(?:est|etait|a ete)\s+(?:connue?|suivie?|hospitalisee?|porteu(?:r|se))\b|"
                            r"\b(?:le|la|notre)\s+(?:patiente?|malade)\b|\bpersonnels?\b")


# An abbreviation followed by a number that is not an age or a duration ("PR à 0,20", "TCA 32 s", "PTH 1-84").
_ABBREVIATION_VALUE = re.compile(r"\s*(?:[:=]|a\s|de\s)?\s*\d+(?:[.,]\d+|-\d+)?(?!\d|[.,]\d)(?!\s*(?:ans?|mois|jours?|semaines?)\b)")

# Sections whose body reports what was examined or measured: a condition named there is a finding.
_FINDING_SECTIONS = ("examen_clinique", "biologie")


def history_context(folded: str, sec: Section | None, start: int, end: int, abbreviation: bool = False) -> str | None:
    """Why a condition mention is not the patient's history, or None when nothing says so.

    "finding": followed by a measured value, or named in an examination / investigation clause or section
    without a diagnosis or antecedent word in the sentence; "ruled_out": an investigation came back negative
    or the diagnosis was eliminated; "place": a service or unit ("service de dialyse"); "exposure": a vaccine.
    """
    pats = _patterns()
    lo = max(0, start - 60)
    if pats["vaccine_before"].search(folded[lo:start]):
        return "exposure"
    if pats["place_before"].search(folded[lo:start]):
        return "place"
    if pats["measure_before"].search(folded[lo:start]):
        return "finding"
    if pats["value_after"].match(folded, end):
        return "finding"
    if abbreviation and _ABBREVIATION_VALUE.match(folded, end):
        return "finding"  # "PR à 0,20", "TCA 1,2", "PTH 1-84": an abbreviation with a value is a measure
    if pats["ruled_out_after"].match(folded, end) or pats["ruled_out_before"].search(folded[max(0, start - 100):start]):
        return "ruled_out"
    cs, ce = _clause_bounds(folded, start, end)
    if pats["diagnosis"].search(folded, cs, ce):
        return None
    if pats["finding_before"].search(folded, cs, start):
        return "finding"
    if sec is not None and sec.name in _FINDING_SECTIONS:
        return "finding"
    return None


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


def _written(text: str, span: tuple[int, int] | None) -> str | None:
    """A span of the page as written, lower case ("Mère" -> "mère")."""
    return " ".join(text[span[0]:span[1]].split()).lower() if span else None


def _relative_of(folded: str, start: int, end: int) -> tuple[int, int] | None:
    """The relative a family history belongs to: named in its list item, else the last one named before it
    in the sentence ("Père : IDM", "diabète chez la mère", "sa sœur est suivie pour un lupus")."""
    pats = _patterns()
    a, b = _item_bounds(folded, start, end)
    found = list(pats["relative"].finditer(folded, a, b)) or list(pats["relative"].finditer(folded, _sentence_start(folded, start), start))
    return found[-1].span() if found else None


def _same_disease_relatives(folded: str, end: int, clause_end: int) -> list[tuple[int, int]]:
    """Relatives said to have the same disease later in the sentence, by anaphora."""
    m = _patterns()["same_disease_after"].search(folded, end, clause_end + 1)
    if not m:
        return []
    return [r.span() for r in _patterns()["relative"].finditer(folded, m.start(1), m.end(1))]


def _qualifies_patient(folded: str, start: int) -> bool:
    """An adjective form ("diabétique") stands after punctuation, a line start, or a word that lets it
    qualify the patient ("patient", "connue", "et", another such adjective)."""
    prev = re.search(r"([a-z]+)[\s']*$", folded[max(0, start - 40):start])
    if prev is None or re.search(r"[,;:()\-\n.]\s*$", folded[max(0, start - 3):start]):
        return True
    return prev.group(1) in _patterns()["adjective_after"]


def _witness_family(folded: str, start: int, end: int) -> bool:
    """The family only witnessed it ("un retard mental a été constaté par la famille"): no relative is named
    in the sentence besides that phrase."""
    ss = _sentence_start(folded, start)
    se = folded.find(". ", end)
    se = len(folded) if se < 0 else se
    return bool(_patterns()["family_pseudo"].search(folded, ss, se)) and not _patterns()["relative"].search(folded, ss, se)


def _item_bounds(folded: str, start: int, end: int) -> tuple[int, int]:
    """The list item around a span: from the previous comma, semicolon or line break to the next one."""
    seps_before = [m.end() for m in _ITEM_SEP.finditer(folded, 0, start) if folded[m.start()] != ":"]
    after = re.compile(r"[,;\n]|\.(?:\s|$)").search(folded, end)
    return (seps_before[-1] if seps_before else 0), (after.start() if after else len(folded))


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
    lo = max(cs, start - 80)
    if _ALLERGY_CUE.search(folded, lo, start):
        return True
    return _adverse_cue(folded, start, lo)


def _adverse_cue(folded: str, start: int, lo: int) -> bool:
    """An adverse drug reaction is attributed to the drug right after: "toxidermie au", "induit par"."""
    window = folded[lo:start]
    return any(p.search(window) for p in _patterns()["adverse_before"])


def _stopped_for_reaction(folded: str, start: int, end: int) -> re.Match | None:
    """"Glucantime arrêté à J3 devant des signes d'intolérance": the drug was stopped because of a reaction."""
    _, ce = _clause_bounds(folded, start, end)
    return _patterns()["stopped_for"].search(folded, end, min(ce, end + 160))


def _refuted(folded: str, start: int, end: int) -> bool:
    """The allergy was ruled out: tests negative, challenge tolerated, "non confirmée", "éliminée"."""
    ss = _sentence_start(folded, start)
    se = folded.find(". ", end)
    se = len(folded) if se < 0 else se
    return bool(_patterns()["refuted"].search(folded, ss, se))


def _unticked(text: str, folded: str, start: int) -> bool:
    """An option of a form left unticked ("☐ iode"): it states nothing."""
    ls = folded.rfind("\n", 0, start) + 1
    return bool(_patterns()["unticked_box"].search(text[ls:start]))


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


def _allergy_kind(folded: str, sec: Section | None, m: Match, lo: int) -> str:
    """intolerance when the words say so before the allergen (or the section title is an intolerance one)."""
    pats = _patterns()
    if _INTOL_CUE.search(folded, max(lo, m.start - 60), m.start) or pats["intolerance"].search(folded, max(lo, m.start - 80), m.start):
        return "intolerance"
    if sec is not None and sec.block == "allergy" and not _ALLERGY_CUE.search(folded, lo, m.start) \
            and _INTOL_CUE.search(folded, sec.title_start, sec.title_end) and "allerg" not in folded[sec.title_start:sec.title_end]:
        return "intolerance"
    return "allergy"


def _bracket_members(ctx: _PageContext, m: Match, matches: list[Match]) -> tuple[list[Match], int]:
    """The allergens or drugs named in brackets right after a class ("AINS (ibuprofène, kétoprofène)"),
    and where the brackets close."""
    folded = ctx.folded
    rest = folded[m.end:m.end + 4]
    if not re.match(r"\s*\(", rest):
        return [], m.end
    open_at = folded.index("(", m.end)
    close = folded.find(")", open_at)
    if close < 0 or close - open_at > 160:
        return [], m.end
    inside = [x for x in matches if open_at < x.start and x.end <= close]
    return (inside, close) if inside else ([], m.end)


_LIST_GAP = re.compile(r"\s*(?:,|et|ou|/)\s*(?:(?:les?|la|l'|aux?|des?|du)\s*)?")


def _allergy_candidates(ctx: _PageContext, allergen_matches: list[Match], reactions: list[Match],
                        stopped_for_reaction: list[Match] = ()) -> list[_Cand]:
    """Allergens in an allergy section or clause, with kind (allergy / intolerance), reaction, members of a
    class named in brackets, and `refuted` when tests or a challenge ruled the allergy out. Drugs stopped
    because of a reaction (`stopped_for_reaction`) are allergies too, while staying stopped treatments."""
    text, folded, sections = ctx.text, ctx.folded, ctx.sections
    cands: list[_Cand] = []
    adr = {(x.start, x.end) for x in stopped_for_reaction}
    pool = sorted([*allergen_matches, *[x for x in stopped_for_reaction if (x.start, x.end) not in
                                        {(a.start, a.end) for a in allergen_matches}]], key=lambda x: x.start)
    consumed: set[tuple[int, int]] = set()
    for m in pool:
        if (m.start, m.end) in consumed:
            continue
        is_adr = (m.start, m.end) in adr
        if ctx.overlaps(m) and not is_adr:
            continue
        sec = section_at(sections, m.start)
        # The next item of a list the cue governs: "toxicité aux statines et fibrates".
        listed = bool(cands) and cands[-1].match.end <= m.start and _LIST_GAP.fullmatch(folded, cands[-1].match.end, m.start)
        if not is_adr and not listed and not _allergy_context(folded, sec, m.start, m.end):
            continue
        if _unticked(text, folded, m.start):
            continue  # "☐ iode": a form's option nobody ticked
        term = m.terms[0]
        cs, ce = _clause_bounds(folded, m.start, m.end)
        lo = cs if sec is None or sec.block != "allergy" else max(cs, sec.start)
        kind = _allergy_kind(folded, sec, m, lo)
        if is_adr:
            stop = _stopped_for_reaction(folded, m.start, m.end)
            kind = "intolerance" if stop and _patterns()["intolerance"].search(stop.group(0)) else "allergy"
        members, close = _bracket_members(ctx, m, pool)
        for x in members:
            consumed.add((x.start, x.end))
        reaction = None
        line_end = _line_bounds(folded, m.start, m.end)[1]
        for r in reactions:
            if close <= r.start <= min(line_end, close + 60) and not re.search(r"[;\n]", folded[close:r.start]):
                nxt = [a for a in pool if close <= a.start < r.start]
                if not nxt:
                    reaction = r.terms[0].label
                    break
        conf = 0.9 if (sec is not None and sec.block == "allergy") else 0.8
        # A reaction attributed to a drug is recorded even while only suspected ("syndrome de Lyell induit par le
        # phénobarbital a été évoqué"): `unconfirmed`, so the drug is not given again before a doctor decides.
        attributed = is_adr or _adverse_cue(folded, m.start, max(cs, m.start - 80))
        verification = "refuted" if _refuted(folded, m.start, m.end) else ("unconfirmed" if attributed else None)
        cands.append(_Cand("allergy", m, term.label, sec, code=term.code, kind=kind, confidence=conf,
                           extra={"reaction": reaction, "members": [x.terms[0].label for x in members],
                                  "verification": verification}))
        if not is_adr:
            ctx.taken.append((m.start, max(m.end, close if members else m.end)))
    return cands


def _history_candidates(ctx: _PageContext, condition_matches: list[Match]) -> list[_Cand]:
    """Conditions and procedures outside allergy and treatment contexts, with kind, code and date."""
    folded, sections = ctx.folded, ctx.sections
    cands: list[_Cand] = []
    for m in condition_matches:
        if ctx.overlaps(m):
            continue
        before = folded[max(0, m.start - 8):m.start]
        if re.search(r"\d[ \t]*$|\d-$", before):
            continue  # "2 gouttes", "3 x", "25-OH" (a lab analyte, not alcohol)
        if re.search(r"(?:post|anti|pre|peri|pseudo|para)-$", before):
            continue  # "BPCO post-tabagique", "pseudo-polyarthrite": the prefix makes another word
        sec = section_at(sections, m.start)
        if sec is not None and sec.block in ("allergy", "treatment"):
            continue
        if _allergy_context(folded, sec, m.start, m.end):
            continue
        term = m.terms[0]
        if not is_history_type(term.semantic):
            continue  # a symptom, sign, finding, risk factor or exposure is never a history on its own
        if m.key in _patterns()["adjective_forms"] and not _qualifies_patient(folded, m.start):
            continue  # "pontage coronarien", "pied diabétique": the adjective qualifies another noun
        in_history_section = sec is not None and sec.block == "history"
        if not in_history_section and history_context(folded, sec, m.start, m.end, term.category == "abbreviation"):
            continue
        cs, ce = _clause_bounds(folded, m.start, m.end)
        antecedent_cue = bool(_patterns()["antecedent"].search(folded, _sentence_start(folded, m.start), ce))
        if term.semantic == "procedure" and not in_history_section and not antecedent_cue \
                and not _find_date(folded, m.start, m.end):
            continue  # an act of the reported stay, not a past operation
        if sec is not None and sec.block == "history":
            conf = 0.9
        elif sec is not None and sec.name in ("conclusion", "histoire_maladie"):
            conf = 0.75
        elif sec is None:
            conf = 0.8 if antecedent_cue else 0.7
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
        window = folded[max(0, m.start - 50):m.start]
        own = bool(_patterns()["own_before"].search(window)) and not _patterns()["relative"].search(window)
        if kind != "surgical":
            for relative in _same_disease_relatives(folded, m.end, ce):
                cands.append(_Cand("history", m, term.label, sec, code=code, kind="family", confidence=conf * 0.9,
                                   extra={"family": True, "relative": relative}))
        cands.append(_Cand("history", m, term.label, sec, code=code, kind=kind, confidence=conf,
                           extra={"date": _find_date(folded, m.start, m.end),
                                  "clinical_status": "resolved" if _patterns()["resolved"].search(folded, *_item_bounds(folded, m.start, m.end)) else None,
                                  "own": own}))
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
    stopped_for_reaction = [m for m in drug_matches if _stopped_for_reaction(folded, m.start, m.end)]
    cands += _treatment_candidates(ctx, drug_matches, allergen_matches)
    cands += _allergy_candidates(ctx, allergen_matches, find_terms(text, folded, tokens, lex["reactions"]),
                                 stopped_for_reaction)
    # Fuzzy matching is for OCR noise; on a text layer only a close misspelling is taken (lexicon.FUZZY_CUTOFF).
    cands += _history_candidates(ctx, find_terms(text, folded, tokens, lex["conditions"],
                                                 fuzzy=True if is_ocr else "strict"))

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
        if extra.get("family"):
            fam, neg, hyp = True, False, False  # a relative named by anaphora ("dont la mère ... la même maladie")
        elif extra.get("own") and not in_family_section:
            fam, hyp = False, False  # "suivie pour", "antécédent de": the patient's own, stated as such
        elif c.category == "history" and not in_family_section and family_in_prose(folded, m.start):
            fam = True
        elif fam and not in_family_section and _witness_family(folded, m.start, m.end):
            fam = False
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
            # A refuted allergy is written with negative words ("non confirmée"): the refutation is what it says.
            route=extra.get("route"), status=extra.get("status"),
            negated=neg and c.category != "absence" and extra.get("verification") != "refuted",
            hypothetical=hyp, family=family, ocr=is_ocr, confidence=round(max(0.0, min(1.0, conf)), 3),
            verification=extra.get("verification"), members=extra.get("members") or [],
            clinical_status=extra.get("clinical_status"),
            relative=_written(text, extra.get("relative") or _relative_of(folded, m.start, m.end)) if family else None,
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
