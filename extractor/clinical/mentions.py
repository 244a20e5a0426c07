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
- treatment: drugs and drug classes in a treatment / ordonnance section (or a whole ordonnance), or on a
  list line that starts with the drug and carries posology; in prose, when a cue says the patient takes or
  took it ("sous Kardégic depuis 2010", "traité par X", "X a été instauré", "X à la dose de", a list such a
  cue heads; `rules/treatment_cues.toml`) and it is not only discussed ("résistance à X", "X refusé"), or
  with a stop cue right beside it. A stop cue makes it `stopped`; "remplacé par X" makes X active; prose
  adds in-stay drugs (`in_stay`, never active), completed courses, replaced regimens and the patient's death.
- absence: explicit absence phrasings of `rules/cues.toml` [absence], or a section of a block whose whole
  body is a bare "néant" / "0" / "RAS".
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from extractor.clinical.lexicon import (
    Match, find_drug_terms, find_terms, fold, is_history_type, join_wrapped, key_of, line_width, load_cues,
    load_drug_classes, load_lexicons, read_toml, semantic_rules, tokenize,
)
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


def _sentence_bounds(folded: str, start: int, end: int) -> tuple[int, int]:
    """The sentence around a span: from `_sentence_start` to the next full stop followed by a space."""
    se = folded.find(". ", end)
    return _sentence_start(folded, start), (len(folded) if se < 0 else se)


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
    ss, se = _sentence_bounds(folded, start, end)
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
    ls, le = _line_bounds(folded, start, end)  # lists are written without full stops: one line, one item
    ss, se = _sentence_bounds(folded, start, end)
    return bool(_patterns()["refuted"].search(folded, max(ss, ls), min(se, le)))


def _unticked(text: str, folded: str, start: int) -> bool:
    """An option of a form left unticked ("☐ iode"): it states nothing."""
    ls = folded.rfind("\n", 0, start) + 1
    return bool(_patterns()["unticked_box"].search(text[ls:start]))


def _posology_line(folded: str, start: int, end: int) -> bool:
    ls, le = _line_bounds(folded, start, end)
    seg = folded[end:le]
    return any(p.search(seg) for p in _patterns()["line_markers"][:3])


def _treatment_details(folded: str, text: str, m: Match, next_start: int, prose: bool = False) -> dict:
    """Dose, frequency and route written after a drug, up to the next drug or the end of the line; in prose,
    up to the end of the sentence and at most 80 characters, or a dose written right before the drug
    ("2 mg de midazolam")."""
    pats = _patterns()
    _, ce = _line_bounds(folded, m.start, m.end)
    hi = min(ce, next_start)
    if prose:
        _, se = _sentence_bounds(folded, m.start, m.end)
        hi = min(next_start, se, m.end + 80)
    seg = folded[m.end:hi]
    durations = [(d.start(), d.end()) for p in pats["duration"] for d in p.finditer(seg)]
    out: dict = {}
    dm = _first(pats["dose"], seg, durations)
    if dm and prose and re.match(r"\s+(?:de\b|d\W)", seg[dm.end():]):
        dm = None  # "X et 2 g de Y": the dose of the next drug
    if dm:
        out["dose"] = _light_dose(text[m.end + dm.start():m.end + dm.end()])
    elif prose:
        bm = _tpatterns()["dose_before"].search(folded, max(0, m.start - 30), m.start)
        if bm:
            out["dose"] = _light_dose(re.sub(r"\s*(?:de|d\W?)\s*$", "", text[bm.start():bm.end()], flags=re.I))
    excl = durations + ([(dm.start(), dm.end())] if dm else [])
    fm = _first(pats["frequency"], seg, excl)
    if fm:
        out["frequency"] = " ".join(text[m.end + fm.start():m.end + fm.end()].split())
    for rx, val in pats["route"]:
        if rx.search(seg):
            out["route"] = val
            break
    return out


def _light_dose(written: str) -> str:
    """A dose as written, normalised lightly: spaces collapsed, "U.I" -> "UI", "par jour" -> "/j"."""
    d = " ".join(written.split())
    d = re.sub(r"\b[uU]\.\s?[iI]\.?", "UI", d)
    return re.sub(r"\s?(?:par|/)\s?(jour|semaine)\b", lambda x: "/j" if x.group(1) == "jour" else "/semaine", d)


def _status(folded: str, m: Match, prev_end: int, next_start: int) -> str | None:
    """stopped / active from cues between the previous drug and this one, and right after it; None: no cue.

    A cue before the drug counts only when nothing but a list stands between them ("arrêt du Kardégic",
    not "Le valproate a été arrêté après un an, alors que la pénicilline est maintenue")."""
    pats = _patterns()
    cs, ce = _clause_bounds(folded, m.start, m.end)
    lo = max(prev_end, _line_bounds(folded, m.start, m.end)[0], m.start - 60)
    before = folded[lo:m.start]
    last_stop = max((x.end() for x in pats["stop_before"].finditer(before) if _close_cue(before, x.end())), default=-1)
    last_start = max((x.end() for x in pats["start_before"].finditer(before) if _close_cue(before, x.end())), default=-1)
    if last_start >= 0 and last_start >= last_stop:
        return "active"
    if last_stop >= 0:
        return "stopped"
    after = folded[m.end:min(next_start, ce + 1, m.end + 60)]
    sa = pats["stop_after"].search(after)
    if sa and not re.search(r"\d", after[: sa.start()]) or (sa and sa.start() < 25):
        return "stopped"
    return None


def _close_cue(before: str, cue_end: int) -> bool:
    """A cue ending at `cue_end` of `before` governs the drug right after `before`: at most a few words between."""
    gap = before[cue_end:]
    return not re.search(r",\s*(?:alors|mais|tandis|puis|et\s+(?:le|la|l)\b)|\b(?:alors que|mais|tandis que)\b", gap) \
        and len(gap.split()) <= 6


@functools.cache
def _tpatterns() -> dict:
    """`rules/treatment_cues.toml`, compiled: cues of a drug taken / only discussed, and of its status."""
    c = read_toml("treatment_cues.toml")
    tail = r"(?:\W*\s*(?:de la|de l|du|des|de|d|la|le|les|l|un|une|en|a|au|aux|par)\b)*\W*$"

    def alt(xs: list[str]) -> str:
        return "(?:" + "|".join(f"(?:{x})" for x in xs) + ")"
    st = c["status"]
    return {
        "take_before": re.compile(alt(c["take"]["before"]) + tail),
        "take_after": re.compile(alt(c["take"]["after"])),
        "dose_after": re.compile(c["take"]["dose_after"]),
        "dose_before": re.compile(r"(?P<dose>" + c["take"]["dose_before"][:-1] + r")$"),
        "not_before": re.compile(alt(c["not_taken"]["before"]) + tail),
        "not_after": re.compile(alt(c["not_taken"]["after"])),
        "not_anywhere": re.compile(alt(c["not_taken"]["before_anywhere"])),
        "death": re.compile(alt(st["death"])),
        "past": re.compile(alt(st["past"])),
        "stop_all": re.compile(alt(st["stop_all"])),
        "course_end": re.compile(alt(st["course_end"])),
        "course": re.compile(alt(st["course"])),
        "in_stay": re.compile(alt(st["in_stay"])),
        "in_stay_atc": tuple(st["in_stay_atc"]),
        "course_atc": tuple(st["course_atc"]),
        "long_term": re.compile(alt(st["long_term"])),
        "reason": re.compile(alt(st["reason"])),
        "start": re.compile(alt(c["start"]["year"])),
        "non_drugs": frozenset(c["non_drugs"]["labels"]),
        "regimen": re.compile(c["regimen"]["pattern"]),
        "regimen_letters": c["regimen"]["letters"],
    }


# Between two drugs of one written list: separators, articles, and what the writer adds to each item
# (a dose or a brand in brackets, a route, "à faible dose").
_LIST_ITEM_EXTRA = re.compile(
    r"\([^()]*\)|\b\d+(?:[.,]\d+)?\s?(?:mg|g|gr|µg|ug|ui|ml|%)(?:\s?/\s?(?:j|jour|kg|24\s?h))*\b|\bper os\b|\ben iv\b|\biv\b|"
    r"\bintraveineu\w*|\bpar voie \w+|\boral\w*|\bseule?s?\b|\ba faible dose\b|\blp\b|\bchrono\b|[®*]|\br\b|"
    r"\ba (?:la |une )?doses? (?:\w+ )?de\b|\bpar jour\b")
_LIST_GAP = re.compile(r"^[\s,+/\-()]*(?:(?:et|puis|ou|avec|plus|ainsi que|associee?s? a|\+)\b)?[\s,+/\-()]*"
                       r"(?:(?:de la|de l|du|des|de|d|la|le|les|l|un|une|a|au|aux|a l)\b\W*)*$")


def _continues_prose(text: str, line_start: int) -> bool:
    """The line at `line_start` goes on a sentence of the line above: that line is as wide as the page's
    text and does not end a sentence (prose wrapped on the page, not a list item)."""
    if line_start == 0:
        return False
    prev = text[text.rfind("\n", 0, line_start - 1) + 1:line_start - 1].rstrip()
    return bool(prev) and prev[-1] not in ".:;!?)" and len(prev) >= 0.6 * line_width(text)


def _list_gap(folded: str, a: int, b: int) -> bool:
    """Only a list separator between two drug names ("X, Y et Z", "X (Plavix 75 mg), Y")."""
    if b - a > 80:
        return False
    return bool(_LIST_GAP.match(_LIST_ITEM_EXTRA.sub(" ", folded[a:b])))


_SENTENCE_END = re.compile(r"[.!?](?=\s|$)|\n[ \t]*\n|:[ \t]*\n")


def _sentence_bounds(folded: str, start: int, end: int) -> tuple[int, int]:
    """The sentence around a span. A single line break does not end a sentence (prose wrapped on the page
    that `join_wrapped` could not tell from a list); a full stop, a blank line or a line ending on ':' does."""
    lo = max(0, start - 600)
    ends = [x.end() for x in _SENTENCE_END.finditer(folded, lo, start)]
    ss = ends[-1] if ends else lo
    e = _SENTENCE_END.search(folded, end, min(len(folded), end + 600))
    return ss, (e.start() if e else min(len(folded), end + 600))


_COMMA = re.compile(r"[;]|,(?!\d)")


def _group_region(folded: str, first: Match, last: Match) -> tuple[int, int]:
    """The part of its sentence a written list of drugs owns: from the comma before its first drug to the
    comma after its last ("puis elle était mise sous prednisone (1 mg/kg/j) pendant 6 semaines")."""
    ss, se = _sentence_bounds(folded, first.start, last.end)
    commas = [x.end() for x in _COMMA.finditer(folded, ss, first.start)]
    after = _COMMA.search(folded, last.end, se)
    # a comma inside the brackets of an item ("(Plavix 75 mg/j, 1 cp)") does not end it
    while after and folded.count("(", last.end, after.start()) > folded.count(")", last.end, after.start()):
        after = _COMMA.search(folded, after.end(), se)
    return (commas[-1] if commas else ss), (after.start() if after else se)


def _taken_in_prose(folded: str, m: Match) -> bool | None:
    """True: a cue says the patient takes or took the drug; False: it is only discussed; None: nothing said."""
    tp = _tpatterns()
    ss, se = _sentence_bounds(folded, m.start, m.end)
    before = folded[max(ss, m.start - 120):m.start]
    after = folded[m.end:min(se, m.end + 120)]
    if tp["not_before"].search(before) or tp["not_after"].search(after) or tp["not_anywhere"].search(before):
        return False
    if tp["take_before"].search(before) or tp["take_after"].search(after):
        return True
    if tp["dose_after"].search(after) or tp["dose_before"].search(folded, max(0, m.start - 30), m.start):
        return True
    return None


def _prose_status(folded: str, m: Match, code: str | None, ends: dict, region: tuple[int, int]) -> dict:
    """What prose says of a taken drug at the end of the text: in-stay only, a completed course, a regimen of
    the past, the patient's death (then `stopped` with its reason); and the year it was started.

    In-stay and course cues are read in the part of the sentence its written list owns (`region`), past
    cues in its sentence; `ends` holds the positions of statements that end treatments later on."""
    tp = _tpatterns()
    ss, se = _sentence_bounds(folded, m.start, m.end)
    own = folded[region[0]:region[1]]
    sentence = folded[ss:se]
    out: dict = {}
    code = code or ""
    stay = code.startswith(tp["in_stay_atc"]) or bool(tp["in_stay"].search(own))
    if code.startswith(tp["course_atc"]) and not tp["long_term"].search(sentence):
        stay = True
    if stay:
        out.update(in_stay=True, status="stopped")
    elif not re.search(r"\bdepuis\b", folded[m.end:region[1]]) and any(not re.match(r"\W*(?:\S+\s+){0,3}?(?:suivi\w*|puis|relai\w*|relaye\w*)\b", folded[c.end():region[1]])
             for c in tp["course"].finditer(folded, ss, region[1])):
        # "pendant 6 semaines suivie d'une décroissance" goes on; "pendant 10 jours." is over
        out.update(status="stopped", stop_reason="traitement terminé")
    elif tp["past"].search(folded, ss, m.start):
        out.update(status="stopped", stop_reason="remplacé")
    if code.startswith("J") and any(d > m.end for d in ends["course_end"]):
        out.update(status="stopped", stop_reason=out.get("stop_reason") or "traitement terminé")
    if any(d > m.end for d in ends["stop_all"]):
        out.update(status="stopped", stop_reason="arrêt de tous les traitements", in_stay=False)
    if any(d > m.end for d in ends["death"]):
        out.update(status="stopped", stop_reason="décès")
    ym = tp["start"].search(folded, m.end, min(se, m.end + 60))
    if ym:
        out["start"] = next(g for g in ym.groups() if g)
    return out


def _left_out_of_last_regimen(folded: str, prose: list[Match]) -> set:
    """Drugs written before the text's last full regimen ("sous traitement associant X, Y et Z": 3 drugs or
    more under a "traitement" or discharge cue) and missing from it were replaced (a drug class counts as
    present when a drug of the regimen belongs to it)."""
    lists: list[list[Match]] = []
    for m in prose:
        if lists and _list_gap(folded, lists[-1][-1].end, m.start):
            lists[-1].append(m)
        else:
            lists.append([m])
    regimens = [g for g in lists if len(g) >= 3 and re.search(r"\btraitement\b|\bsortie\b|\bquitte\b",
                                                                 folded[max(0, g[0].start - 80):g[0].start])]
    if not regimens:
        return set()
    last = regimens[-1]
    codes = [t.code or "" for x in last for t in x.terms[:1]]
    labels = {x.terms[0].label for x in last}
    out = set()
    for m in prose:
        if m.start >= last[0].start:
            break
        t = m.terms[0]
        if t.label in labels or (t.code and any(c.startswith(t.code) or t.code.startswith(c) for c in codes if c)):
            continue
        out.add(m)
    return out


def _stop_reason(folded: str, m: Match) -> str | None:
    _, se = _sentence_bounds(folded, m.start, m.end)
    rm = _tpatterns()["reason"].search(folded, m.end, min(se, m.end + 160))
    return rm.group(1).strip() if rm else None


def _deaths(folded: str) -> list[int]:
    """Where the text states the patient's death (a relative's death in the same clause does not count)."""
    out = []
    for d in _tpatterns()["death"].finditer(folded):
        cs, ce = _clause_bounds(folded, d.start(), d.end())
        if not _patterns()["relative"].search(folded, cs, ce) and not re.search(r"\b(?:pas de|sans|aucun)\s+$", folded[max(cs, d.start() - 12):d.start()]):
            out.append(d.start())
    return out


def _regimen_matches(text: str) -> list[Match]:
    """Anti-tuberculous regimens in WHO letter code ("2SRHZ/7RH"): one match per drug, on the code's span."""
    tp = _tpatterns()
    lexicons = (load_lexicons()["drugs"].terms, load_drug_classes().terms)
    out = []
    for r in tp["regimen"].finditer(text):
        start = r.start()
        while start and text[start - 1].isdigit() and r.start() - start < 2:
            start -= 1  # the months of the first phase: "2SRHZ"
        if start and text[start - 1].isalnum():
            continue  # inside a word or a code, not a regimen
        seen = []
        for ch in re.sub(r"[^SRHZE]", "", r.group()):
            if ch not in seen:
                seen.append(ch)
        for ch in seen:
            key = key_of(tp["regimen_letters"][ch])
            terms = next((lx[key] for lx in lexicons if key in lx), None)
            if terms:
                out.append(Match(start, r.end(), key, (terms[0],)))
    return out


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
            if "\n" in folded[am.start():am.end()] and folded[am.end() - 1] in "-*":
                continue  # "Allergies :\n- pénicilline": the dash is a list bullet, not "Allergies : -"
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
    """Drugs and drug classes that are treatments. A drug in an allergy context is handed to the allergies instead
    (appended to `allergen_matches`).

    In a treatment section, an ordonnance or on a short posology line every drug is a treatment. In prose a drug
    is one when a cue says it is taken ("sous X", "traité par X", "X a été instauré", "X à la dose de", or a
    list that such a cue heads) and not only discussed ("pas de X", "résistance à X", "X refusé"); its status
    there is read as of the end of the text: stop cues, in-stay drugs, completed courses, the patient's death."""
    pats = _patterns()
    tp = _tpatterns()
    text, folded, sections = ctx.text, ctx.folded, ctx.sections
    whole_ordonnance = ctx.record.doc_type == "ordonnance"
    allergen_spans = {(m.start, m.end) for m in allergen_matches}
    drug_matches = sorted(drug_matches + [r for r in _regimen_matches(text) if not ctx.overlaps(r)], key=lambda x: x.start)
    # (match, section, in a list or posology line, taken in prose: True / None)
    rows: list[list] = []
    prev_drug: Match | None = None
    for m in drug_matches:
        sec = section_at(sections, m.start)
        term = m.terms[0]
        after_drug, prev_drug = prev_drug, m
        if term.kind == "class" and after_drug is not None and after_drug.terms[0].kind != "class" \
                and re.fullmatch(r"\s*\(\s*", folded[after_drug.end:m.start]):
            continue  # "Cardensiel (bêtabloquant)": the class of the drug just named, not a treatment of its own
        if _allergy_context(folded, sec, m.start, m.end):
            if term.kind != "class" and not any(m.start < b and a < m.end for a, b in allergen_spans):
                allergen_matches.append(m)
            continue
        if term.label in tp["non_drugs"]:
            continue  # "urée 7 mmol/L", "sous oxygène", "Alcool : 1 verre/j"
        if pats["lab_value"].match(folded, m.end):
            continue  # "calcium 2,3 mmol/L": a lab result, not a treatment
        in_tr = whole_ordonnance or (sec is not None and sec.block == "treatment")
        ls, le = _line_bounds(folded, m.start, m.end)
        # a list or prescription line starts with the drug ("- Kardégic 75 mg", "2) TAHOR 20 mg"); a dose
        # further in a line is prose wrapped on the page, read with the prose rules
        posology = len(re.sub(r"[\W\d_]+", "", folded[ls:m.start])) <= 1 and not _continues_prose(text, ls) \
            and _posology_line(folded, m.start, m.end)
        if term.strict and not (text[m.start].isupper() and (in_tr or posology)):
            continue
        cs, _ = _clause_bounds(folded, m.start, m.end)
        if pats["not_current"].search(folded, max(cs, m.start - 40), m.start) \
                and not re.search(pats["start_before"].pattern + r"\W*(?:(?:du|de la|de l|de|d|des|le|la|l)\W+)?$",
                                  folded[max(cs, m.start - 40):m.start]):
            continue  # "chimiothérapie par X" is a past course; "chimiothérapie ... avec relais par X" is X now
        listed = in_tr or posology
        taken = None if listed else _taken_in_prose(folded, m)
        if taken is False:
            continue
        rows.append([m, sec, listed, taken])
    # A cue heading a written list covers the list ("sous colchicine, aspirine et prednisone"); a cue after
    # the list's last drug covers it too ("Le paracétamol et le tramadol ont été utilisés").
    for i in range(1, len(rows)):
        if rows[i][3] is None and rows[i - 1][3] and _list_gap(folded, rows[i - 1][0].end, rows[i][0].start):
            rows[i][3] = True
    for i in range(len(rows) - 2, -1, -1):
        if rows[i][3] is None and rows[i + 1][3] and _list_gap(folded, rows[i][0].end, rows[i + 1][0].start):
            rows[i][3] = True
    kept = []
    for m, sec, listed, taken in rows:
        if listed or taken:
            kept.append((m, sec, listed))
        elif _status(folded, m, *_line_bounds(folded, m.start, m.end)) == "stopped":
            # "Arrêt du Kardégic." in a conclusion, "Ventoline arrêtée (mauvaise tolérance)." in a letter.
            kept.append((m, sec, False))
    ends = {"death": _deaths(folded), "stop_all": [x.start() for x in tp["stop_all"].finditer(folded)],
            "course_end": [x.start() for x in tp["course_end"].finditer(folded)]}
    replaced = _left_out_of_last_regimen(folded, [k[0] for k in kept if not k[2]])
    regions: dict[int, tuple[int, int]] = {}
    group: list[Match] = []
    prose_kept = [k[0] for k in kept if not k[2]]
    for i, m in enumerate(prose_kept):
        group.append(m)
        if i + 1 == len(prose_kept) or not _list_gap(folded, m.end, prose_kept[i + 1].start):
            region = _group_region(folded, group[0], group[-1])
            regions.update({id(x): region for x in group})
            group = []
    cands: list[_Cand] = []
    prev_status = None
    for i, (m, sec, listed) in enumerate(kept):
        term = m.terms[0]
        prev_end = kept[i - 1][0].end if i else 0
        next_start = kept[i + 1][0].start if i + 1 < len(kept) else len(text)
        details = _treatment_details(folded, text, m, next_start, prose=not listed)
        cue = _status(folded, m, prev_end, next_start)
        if cue is None and prev_status == "stopped" and i and _list_gap(folded, prev_end, m.start):
            cue = "stopped"  # "arrêt du Kardégic, du Plavix et du Lasilix"
        prev_status = cue
        extra: dict = {**details, "status": cue or "active"}
        if not listed:
            prose = _prose_status(folded, m, term.code, ends, regions[id(m)])
            if cue == "active" and prose.get("stop_reason") == "remplacé":
                prose.pop("status", None)  # "relais par X": X is the new drug, not the past one
                prose.pop("stop_reason", None)
            if m in replaced and prose.get("status") != "stopped":
                prose.update(status="stopped", stop_reason="remplacé")
            if cue == "stopped":
                prose.pop("in_stay", None)
            extra.update(prose)
            extra["status"] = prose.get("status", cue or "active")
        if extra["status"] == "stopped" and not extra.get("stop_reason") and cue == "stopped":
            extra["stop_reason"] = _stop_reason(folded, m)
        in_tr = ctx.record.doc_type == "ordonnance" or (sec is not None and sec.block == "treatment")
        conf = 0.95 if in_tr else 0.75
        if term.kind == "brand" and term.strict:
            conf -= 0.15
        if term.kind == "class":
            conf -= 0.1
            extra["is_class"] = True
        if m.fuzzy:
            conf *= m.score * 0.9
        cands.append(_Cand("treatment", m, term.label, sec, code=term.code, brand=term.brand if term.kind == "brand" else None,
                           confidence=conf, extra=extra))
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


_ALLERGEN_LIST_GAP = re.compile(r"\s*(?:,|et|ou|/)\s*(?:(?:les?|la|l'|aux?|des?|du)\s*)?")


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
        listed = bool(cands) and cands[-1].match.end <= m.start and _ALLERGEN_LIST_GAP.fullmatch(folded, cands[-1].match.end, m.start)
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
    drug_matches = [m for m in find_drug_terms(text, folded, tokens) if not ctx.overlaps(m)]
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
            route=extra.get("route"), status=extra.get("status"), in_stay=extra.get("in_stay", False),
            stop_reason=extra.get("stop_reason"), start_date=extra.get("start"), is_class=extra.get("is_class", False),
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
