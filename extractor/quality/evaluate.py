"""Scoring of `synthese eval`: a predicted `synthese.json` against the generator's `<dossier>.gold.json`.

Pure functions, no pipeline call: `load_gold` and `load_predictions` read the files,
`score_dossier` scores one dossier, `aggregate` sums the dossiers into an `EvalReport`
(`.to_table()` for humans, `.model_dump_json()` for `--json`).

How a predicted entry is matched to a gold entry
-------------------------------------------------
1. Names are normalised before any comparison: lower case, accents folded, every run of
   punctuation or whitespace made one space, small French link words dropped (de, du, des,
   d, la, le, les, l, a, au, aux, en, et); for treatments, salt and hydrate words are dropped
   too (chlorhydrate, sodique, fumarate, ...), so "Chlorhydrate de metformine" is "metformine".
2. Codes first. History: when both entries carry a CIM-10 code, the code decides alone:
   same 3-character category (I21 = I21.9 = I219) is a match, a different category is not,
   whatever the wording. Treatments: the same full ATC code is a match; a different or missing
   ATC code falls back to the names, because one substance can carry several ATC codes
   (aspirin is B01AC06 as an antiplatelet, N02BA01 as an analgesic).
3. Otherwise the names are compared with rapidfuzz `token_set_ratio` (0-100). Gold names are the
   label plus its abbreviations (history), the substance (allergies), the drug plus its brand
   (treatments); predicted names are the label, the substance, the drug plus its brand. The best
   pair counts. A pair scores at least `THRESHOLD` (92) to match. Why 92: the closest pairs of
   *different* things seen are prednisone / prednisolone (90.9), hypothyroïdie / hyperthyroïdie
   (88.9), hypokaliémie / hyperkaliémie (88.0), while spelling variants of the same thing
   score 95 or more (infractus / infarctus du myocarde 95.2, amoxicillin / amoxicilline 95.7,
   pénicilline / pénicillines 95.7). When both names hold numbers they must hold the same ones:
   "diabète de type 1" is not "diabète de type 2" (94.1 otherwise).
4. History kind must agree: the patient's own history (medical or surgical, one group) and the
   family history are matched and scored separately: a father's infarction is not the patient's.
5. One-to-one, greedy: all candidate pairs are sorted (code matches first, then by score, then
   by plain `fuzz.ratio` so an exact wording beats a mere subset, then by position) and taken in
   that order when neither side is taken yet.

What is counted
---------------
- TP / FP / FN per block: `history_own`, `history_family`, `allergies`, `treatments`.
- A *duplicate* is an unmatched prediction that had a candidate gold entry taken by another
  prediction: two entries the consolidation should have merged. It is also an FP.
- A *distractor leak* is an unmatched prediction, not a duplicate, whose name matches a gold
  distractor of its block (negated, hypothetical, family... text that must not become an entry).
  A family-history prediction matching a "family" distractor is not a leak: that is where it belongs.
- Modality: a gold entry is "scanned" when every document stating it is not a `text_pdf`
  (scanned_pdf, mixed_pdf, image), else "text". TP and FN follow the gold entry; an FP is
  "scanned" when all its sources were read by OCR, else "text".
- Statuses (`history_status`, `allergy_status`, `treatment_status`): equal to gold or not.
- Over matched treatments: status (active / stopped) accuracy; dose accuracy over those with a
  gold dose, doses compared as quantities ("75mg" = "75 mg", "1 g" = "1000 mg", "2,5 mg" = "2.5 mg").
- Order errors, counted as inversions in the predicted lists: history, within each kind, dated
  entries in ascending date order and undated ones last; treatments, active before stopped.
- OCR character error rate, over the gold pages marked `scanned` of readable, non-duplicate
  documents: Levenshtein distance / gold length, after collapsing whitespace; a page the pipeline
  did not return counts as fully wrong. Averaged over pages weighted by their gold length.
- A missing prediction counts every gold entry as FN and every status as wrong.
- Entries a reviewer rejected (`review.status == "rejected"`) are not predictions and are ignored.

Text cases (the real-text development set, scored by `extractor.quality.evaluate_cases`)
---------------------------------------------------------------------------------------
The same matching, with three additions that the format of their gold asks for:
- Gold names are the label (substance, drug) plus its `variants` and the exact `text` span of the case.
- A gold `code` is evidence, not a veto: a predicted CIM-10 code in the gold's 3-character category
  (or one of them) matches; a different code falls back to the names, because a human annotator's
  category and the lexicon's may differ for one condition (insuffisance rénale N18 / N19).
  Treatments and allergies: a gold class code (shorter than 7 characters: "C07", "A10B") matches
  every predicted ATC code inside the class, after an equal full code.
- Optional gold entries (`optional_history`, treatments with `optional: true`) take part in the
  matching after the required ones; a prediction matched to one is neutral (neither TP nor FP), an
  unmatched one is not a FN.
"""
from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal, Union

from pydantic import BaseModel, Field, ValidationError, computed_field
from rapidfuzz import fuzz
from rapidfuzz.distance import Levenshtein
from rich.console import Group
from rich.table import Table

from extractor.config import OUTPUT_NAME
from extractor.errors import BadArguments
from models.document import Block, DocumentRecord
from models.gold import (
    CaseAllergy,
    CaseHistory,
    CaseTreatment,
    GoldAllergy,
    GoldDossier,
    GoldHistory,
    GoldTreatment,
)
from models.synthesis import AllergyEntry, HistoryEntry, Synthesis, TreatmentEntry

log = logging.getLogger(__name__)

THRESHOLD = 92.0
GOLD_SUFFIX = ".gold.json"

BlockName = Literal["history_own", "history_family", "allergies", "treatments"]
BLOCKS: tuple[BlockName, ...] = ("history_own", "history_family", "allergies", "treatments")
Modality = Literal["text", "scanned"]
MODALITIES: tuple[Modality, ...] = ("text", "scanned")
STATUS_BLOCKS: tuple[Block, ...] = ("history", "allergy", "treatment")

Entry = Union[HistoryEntry, AllergyEntry, TreatmentEntry]
GoldEntry = Union[GoldHistory, GoldAllergy, GoldTreatment, CaseHistory, CaseAllergy, CaseTreatment]

# Link words carry no meaning for matching ("diabète type 2" = "diabète de type 2").
STOP_WORDS = frozenset("de du des d la le les l a au aux en et".split())
# Salt, ester and hydrate words of drug substances: "chlorhydrate de metformine" is metformine.
SALT_WORDS = frozenset(
    """chlorhydrate hydrochlorure bromhydrate sodique disodique potassique calcique magnesique
    fumarate hemifumarate maleate besilate besylate mesilate mesylate tartrate succinate citrate
    sulfate phosphate acetate lactate gluconate monohydrate dihydrate trihydrate anhydre
    base sel""".split()
)
_NON_ALNUM = re.compile(r"[^0-9a-z]+")
_CIM10 = re.compile(r"^[A-Z][0-9]{2}")


# --------------------------------------------------------------------------- normalisation


def normalise(text: str | None, drop: frozenset[str] = STOP_WORDS) -> str:
    """Lower case, accents folded, punctuation and whitespace collapsed to one space, `drop` words removed."""
    if not text:
        return ""
    folded = unicodedata.normalize("NFKD", text.replace("œ", "oe").replace("Œ", "oe"))
    folded = "".join(c for c in folded if not unicodedata.combining(c)).lower()
    return " ".join(t for t in _NON_ALNUM.sub(" ", folded).split() if t not in drop)


def _normalise_drug(text: str | None) -> str:
    return normalise(text, STOP_WORDS | SALT_WORDS)


def cim10_category(code: str | None) -> str | None:
    """The 3-character CIM-10 category ("I21.9", "i219", "I21" -> "I21"), None when it is not a CIM-10 code."""
    if not code:
        return None
    compact = re.sub(r"[\s.]", "", code).upper()
    return compact[:3] if _CIM10.match(compact) else None


def _atc(code: str | None) -> str | None:
    compact = re.sub(r"\s", "", code or "").upper()
    return compact or None


def _codes(value: str | list[str] | None) -> list[str]:
    """A gold code field (one code, several, or none) as a list of compact upper-case codes."""
    values = value if isinstance(value, list) else [value]
    return [c for c in (_atc(v) for v in values) if c]


def atc_match(pred: str | None, gold: Sequence[str]) -> float | None:
    """100 when the predicted ATC code equals a full gold code, 99 when it lies inside a gold class
    (a gold code shorter than the 7 characters of a substance: "C07" holds "C07AB07"), else None."""
    p = _atc(pred)
    if not p:
        return None
    if p in gold:
        return 100.0
    if any(len(g) < 7 and p.startswith(g) for g in gold):
        return 99.0
    return None


_QUANTITY = re.compile(
    r"(\d+(?:[ \u00a0\u202f]\d{3})*(?:[.,]\d+)?)\s*"
    r"(mg|milligrammes?|g|grammes?|µg|μg|ug|mcg|microgrammes?|ui|u|ml|%)(?![a-z])"
)
_UNIT_TO_MG = {"mg": 1.0, "milligramme": 1.0, "g": 1000.0, "gramme": 1000.0,
               "µg": 0.001, "μg": 0.001, "ug": 0.001, "mcg": 0.001, "microgramme": 0.001}


def normalise_dose(dose: str | None) -> str:
    """A comparable form of a dose: its quantities in canonical units, else its normalised text.

    "75mg" and "75 mg" -> "75 mg"; "1 g" -> "1000 mg"; "2,5 mg/j" -> "2.5 mg"; "500 µg" -> "0.5 mg".
    """
    if not dose:
        return ""
    text = dose.lower()
    parts = []
    for number, unit in _QUANTITY.findall(text):
        value = float(re.sub(r"[ \u00a0\u202f]", "", number).replace(",", "."))
        unit = unit[:-1] if unit.endswith("s") and len(unit) > 3 else unit
        if unit in _UNIT_TO_MG:
            value, unit = value * _UNIT_TO_MG[unit], "mg"
        elif unit == "u":
            unit = "ui"
        parts.append(f"{round(value, 6):g} {unit}")
    return " + ".join(parts) if parts else normalise(dose)


def normalise_page_text(text: str) -> str:
    """Whitespace collapsed to single spaces, ends stripped: layout is not an OCR error."""
    return " ".join(text.split())


# --------------------------------------------------------------------------- matching


class Pair(BaseModel):
    """A predicted entry (index in the predicted list) matched to a gold entry (index in the gold list)."""

    pred: int
    gold: int
    score: float
    by: Literal["code", "label"]


class Matching(BaseModel):
    """The one-to-one matching of a block. Indices point into the lists given to `match_entries`."""

    pairs: list[Pair] = Field(default_factory=list)
    unmatched_pred: list[int] = Field(default_factory=list)  # false positives
    unmatched_gold: list[int] = Field(default_factory=list)  # false negatives
    duplicates: list[int] = Field(default_factory=list)  # FPs whose best gold entry went to another prediction


def _history_group(kind: str) -> str:
    return "family" if kind == "family" else "own"


def _numbers(name: str) -> set[str]:
    return {t for t in name.split() if t.isdigit()}


def name_score(a: str, b: str) -> float:
    """Similarity of two normalised names (0-100); 0 when both hold numbers and the numbers differ."""
    if not a or not b:
        return 0.0
    na, nb = _numbers(a), _numbers(b)
    if na and nb and na != nb:
        return 0.0
    return fuzz.token_set_ratio(a, b)


def _pred_names(block: Block, entry: Entry) -> list[str]:
    if isinstance(entry, HistoryEntry):
        return [normalise(entry.label)]
    if isinstance(entry, AllergyEntry):
        return [normalise(entry.substance)]
    return [n for n in (_normalise_drug(entry.drug), _normalise_drug(entry.brand)) if n]


def _gold_names(block: Block, entry: GoldEntry) -> list[str]:
    if isinstance(entry, CaseHistory):
        names = [normalise(x) for x in [entry.label, *entry.variants, entry.text]]
        return [n for n in names if n]
    if isinstance(entry, CaseAllergy):
        return [n for n in (normalise(x) for x in [entry.substance, *entry.variants, entry.text]) if n]
    if isinstance(entry, CaseTreatment):
        names = [_normalise_drug(x) for x in [entry.drug, entry.brand, *entry.variants, entry.text]]
        return [n for n in names if n]
    if isinstance(entry, GoldHistory):
        return [n for n in (normalise(x) for x in [entry.label, *entry.abbreviations]) if n]
    if isinstance(entry, GoldAllergy):
        return [normalise(entry.substance)]
    return [n for n in (_normalise_drug(entry.drug), _normalise_drug(entry.brand)) if n]


def _best_names(pred_names: Sequence[str], gold_names: Sequence[str]) -> tuple[float, float]:
    """Best (token_set score, plain ratio) over all name pairs; the ratio breaks ties."""
    best = (0.0, 0.0)
    for p in pred_names:
        for g in gold_names:
            best = max(best, (name_score(p, g), fuzz.ratio(p, g)))
    return best


def score_pair(block: Block, pred: Entry, gold: GoldEntry) -> tuple[float, float, Literal["code", "label"]] | None:
    """How well one prediction matches one gold entry: (score, tie-break, by what), or None when it cannot match."""
    if isinstance(pred, HistoryEntry) and isinstance(gold, (GoldHistory, CaseHistory)):
        if _history_group(pred.kind) != _history_group(gold.kind):
            return None
        pc = cim10_category(pred.code)
        if isinstance(gold, GoldHistory):
            gc = cim10_category(gold.code)
            if pc and gc:  # both coded, by the same lexicon: the code decides alone
                return (100.0, 100.0, "code") if pc == gc else None
        elif pc and pc in {cim10_category(c) for c in _codes(gold.code)}:
            return (100.0, 100.0, "code")
    if isinstance(pred, TreatmentEntry) and isinstance(gold, (GoldTreatment, CaseTreatment)):
        by_code = atc_match(pred.atc, _codes(gold.atc))
        if by_code:
            return (by_code, by_code, "code")
    if isinstance(pred, AllergyEntry) and isinstance(gold, CaseAllergy):
        by_code = atc_match(pred.code, _codes(gold.code))
        if by_code:
            return (by_code, by_code, "code")
    score, ratio = _best_names(_pred_names(block, pred), _gold_names(block, gold))
    return (score, ratio, "label") if score >= THRESHOLD else None


def match_entries(
    block: Block, predicted: Sequence[Entry], gold: Sequence[GoldEntry], optional: Sequence[bool] | None = None
) -> Matching:
    """Match the predicted entries of one block to its gold entries, one-to-one (rule in the module docstring).

    `block` is "history", "allergy" or "treatment"; history entries of different kind groups
    (own vs family) never match. `optional[j]` True marks gold entry j optional: pairs with required
    entries are taken first. Returns the pairs, the unmatched indices on both sides and the
    duplicates (unmatched predictions that had a candidate taken by another prediction).
    """
    required = [not (optional and optional[j]) for j in range(len(gold))]
    candidates: list[tuple[tuple, Pair]] = []
    has_candidate: dict[int, set[int]] = {}
    for i, p in enumerate(predicted):
        for j, g in enumerate(gold):
            scored = score_pair(block, p, g)
            if scored is None:
                continue
            score, ratio, by = scored
            has_candidate.setdefault(i, set()).add(j)
            key = (required[j], by == "code", score, ratio, -i, -j)
            candidates.append((key, Pair(pred=i, gold=j, score=score, by=by)))
    candidates.sort(key=lambda c: c[0], reverse=True)
    pairs: list[Pair] = []
    taken_pred: set[int] = set()
    taken_gold: set[int] = set()
    for _, pair in candidates:
        if pair.pred in taken_pred or pair.gold in taken_gold:
            continue
        pairs.append(pair)
        taken_pred.add(pair.pred)
        taken_gold.add(pair.gold)
    unmatched_pred = [i for i in range(len(predicted)) if i not in taken_pred]
    return Matching(
        pairs=sorted(pairs, key=lambda p: p.pred),
        unmatched_pred=unmatched_pred,
        unmatched_gold=[j for j in range(len(gold)) if j not in taken_gold],
        duplicates=[i for i in unmatched_pred if has_candidate.get(i, set()) & taken_gold],
    )


# --------------------------------------------------------------------------- per-dossier score


class Counts(BaseModel):
    """True positives, false positives, false negatives; P/R/F1 derived (None when undefined)."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def f1(self) -> float | None:
        # 2TP / (2TP + FP + FN): the harmonic mean of P and R, and 0 rather than undefined when TP = 0.
        denominator = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / denominator if denominator else None

    def add(self, other: Counts) -> None:
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn


class Ratio(BaseModel):
    """`correct` out of `total`; `value` is None when there was nothing to judge."""

    correct: int = 0
    total: int = 0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def value(self) -> float | None:
        return self.correct / self.total if self.total else None

    def add(self, other: Ratio) -> None:
        self.correct += other.correct
        self.total += other.total


class BlockScore(BaseModel):
    counts: Counts = Field(default_factory=Counts)
    by_modality: dict[Modality, Counts] = Field(default_factory=lambda: {m: Counts() for m in MODALITIES})
    duplicates: int = 0
    leaks: int = 0


class OcrScore(BaseModel):
    """Character errors summed over the scanned gold pages, and their gold length."""

    errors: int = 0
    chars: int = 0
    pages: int = 0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def cer(self) -> float | None:
        return self.errors / self.chars if self.chars else None


class DossierScore(BaseModel):
    dossier_id: str
    split: str
    predicted: bool  # False when synthese.json was missing
    blocks: dict[BlockName, BlockScore] = Field(default_factory=lambda: {b: BlockScore() for b in BLOCKS})
    status_correct: dict[Block, bool] = Field(default_factory=dict)
    treatment_status: Ratio = Field(default_factory=Ratio)
    dose: Ratio = Field(default_factory=Ratio)
    order_errors: dict[Literal["history", "treatments"], int] = Field(
        default_factory=lambda: {"history": 0, "treatments": 0}
    )
    leaks_by_reason: dict[str, int] = Field(default_factory=dict)
    ocr: OcrScore | None = None  # None when no DocumentRecord was given
    documents: int = 0
    pages: int = 0

    @property
    def duplicates(self) -> int:
        return sum(b.duplicates for b in self.blocks.values())

    @property
    def distractor_leaks(self) -> int:
        return sum(b.leaks for b in self.blocks.values())


def _gold_modality(documents: Iterable[str], scanned_docs: set[str]) -> Modality:
    documents = list(documents)
    return "scanned" if documents and all(d in scanned_docs for d in documents) else "text"


def _pred_modality(entry: Entry) -> Modality:
    return "scanned" if entry.sources and all(s.ocr for s in entry.sources) else "text"


def _kept(entries: Iterable[Entry]) -> list:
    """What the synthesis asserts: rejected entries and refuted (de-labelled) allergies assert nothing."""
    return [e for e in entries if not (e.review and e.review.status == "rejected")
            and getattr(e, "verification", None) != "refuted"]


def _inversions(keys: Sequence) -> int:
    return sum(1 for i in range(len(keys)) for j in range(i + 1, len(keys)) if keys[i] > keys[j])


def _dates_inverted(a: str | None, b: str | None) -> bool:
    """True when `a` must come after `b`: undated after dated, later after earlier (on the common precision)."""
    if a is None:
        return b is not None
    if b is None:
        return False
    n = min(len(a), len(b))
    return a[:n] > b[:n]


def count_order_errors(pred: Synthesis) -> dict[Literal["history", "treatments"], int]:
    """Inversions in the predicted lists: history by date within each kind (undated last); treatments active first."""
    history = 0
    for kind in ("medical", "surgical", "family"):
        dates = [e.date for e in _kept(pred.history) if e.kind == kind]
        history += sum(
            1 for i in range(len(dates)) for j in range(i + 1, len(dates)) if _dates_inverted(dates[i], dates[j])
        )
    treatments = _inversions([0 if t.status == "active" else 1 for t in _kept(pred.treatments)])
    return {"history": history, "treatments": treatments}


def _leak_reason(block: Block, entry: Entry, distractors) -> str | None:
    names = _pred_names(block, entry)
    best: tuple[float, str] | None = None
    for d in distractors:
        if d.block != block:
            continue
        if isinstance(entry, HistoryEntry) and entry.kind == "family" and d.reason == "family":
            continue
        dname = _normalise_drug(d.label) if block == "treatment" else normalise(d.label)
        score = max((name_score(n, dname) for n in names), default=0.0)
        if score >= THRESHOLD and (best is None or score > best[0]):
            best = (score, d.reason)
    return best[1] if best else None


def cer_pages(gold: GoldDossier, records: Sequence[DocumentRecord]) -> OcrScore:
    """OCR errors over the scanned pages of readable, non-duplicate gold documents.

    A document or page missing from `records` counts as read as empty (every character wrong).
    """
    by_path = {r.path: r for r in records}
    score = OcrScore()
    for doc in gold.documents:
        if not doc.readable or doc.duplicate_of:
            continue
        record = by_path.get(doc.path)
        pages = {p.number: p.text for p in record.pages} if record else {}
        for page in doc.pages:
            if not page.scanned:
                continue
            reference = normalise_page_text(page.text)
            if not reference:
                continue
            hypothesis = normalise_page_text(pages.get(page.number, ""))
            score.errors += Levenshtein.distance(reference, hypothesis)
            score.chars += len(reference)
            score.pages += 1
    return score


def judge_treatment(pred: TreatmentEntry, gold: GoldTreatment | CaseTreatment, status: Ratio, dose: Ratio) -> None:
    """Add a matched treatment's status (active / stopped) to `status` and, when the gold gives a dose, its dose
    (compared as quantities, `normalise_dose`) to `dose`."""
    status.total += 1
    status.correct += pred.status == gold.status
    if gold.dose:
        dose.total += 1
        dose.correct += normalise_dose(pred.dose) == normalise_dose(gold.dose)


def score_dossier(
    gold: GoldDossier, pred: Synthesis | None, records: Sequence[DocumentRecord] | None = None
) -> DossierScore:
    """Score one dossier's prediction against its gold. `pred` None: missing synthese.json (all FN, statuses wrong).

    `records` (the pipeline's DocumentRecords of this dossier) give the OCR error rate; None leaves it uncomputed.
    """
    result = DossierScore(
        dossier_id=gold.dossier_id,
        split=gold.split,
        predicted=pred is not None,
        documents=len(gold.documents),
        pages=sum(len(d.pages) for d in gold.documents),
    )
    scanned_docs = {d.path for d in gold.documents if d.kind != "text_pdf"}
    history = _kept(pred.history) if pred else []
    allergies = _kept(pred.allergies) if pred else []
    treatments = _kept(pred.treatments) if pred else []

    groups: list[tuple[BlockName, Block, list, list]] = [
        ("history_own", "history", [e for e in history if e.kind != "family"],
         [g for g in gold.history if g.kind != "family"]),
        ("history_family", "history", [e for e in history if e.kind == "family"],
         [g for g in gold.history if g.kind == "family"]),
        ("allergies", "allergy", allergies, gold.allergies),
        ("treatments", "treatment", treatments, gold.treatments),
    ]
    for name, block, predicted, expected in groups:
        matching = match_entries(block, predicted, expected)
        score = result.blocks[name]
        for pair in matching.pairs:
            score.counts.tp += 1
            score.by_modality[_gold_modality(expected[pair.gold].documents, scanned_docs)].tp += 1
        for j in matching.unmatched_gold:
            score.counts.fn += 1
            score.by_modality[_gold_modality(expected[j].documents, scanned_docs)].fn += 1
        duplicates = set(matching.duplicates)
        for i in matching.unmatched_pred:
            score.counts.fp += 1
            score.by_modality[_pred_modality(predicted[i])].fp += 1
            if i in duplicates:
                continue
            reason = _leak_reason(block, predicted[i], gold.distractors)
            if reason:
                score.leaks += 1
                result.leaks_by_reason[reason] = result.leaks_by_reason.get(reason, 0) + 1
        score.duplicates = len(duplicates)
        if block == "treatment":
            for pair in matching.pairs:
                judge_treatment(predicted[pair.pred], expected[pair.gold], result.treatment_status, result.dose)

    for block in STATUS_BLOCKS:
        field = f"{block}_status"
        result.status_correct[block] = pred is not None and getattr(pred, field) == getattr(gold, field)
    if pred is not None:
        result.order_errors = count_order_errors(pred)
    if records is not None:
        result.ocr = cer_pages(gold, records)
    return result


# --------------------------------------------------------------------------- aggregation


Scope = Literal[
    "all", "dev", "heldout", "text", "scanned", "dev/text", "dev/scanned", "heldout/text", "heldout/scanned"
]
# The held-out part is reported on its own, and crossed with the modality: the targets are per
# modality (text PDFs, scans) and must hold on vocabulary the rules were not written against.
SCOPES: tuple[Scope, ...] = (
    "all", "dev", "heldout", "text", "scanned", "dev/text", "dev/scanned", "heldout/text", "heldout/scanned"
)


class EvalReport(BaseModel):
    """Micro-averaged scores over dossiers. `scores[scope][block]`, scope in all/dev/heldout/text/scanned,
    block in history_own/history_family/allergies/treatments/overall."""

    dossiers: int = 0
    dossiers_missing: int = 0  # gold dossiers without a synthese.json
    documents: int = 0
    pages: int = 0
    scores: dict[Scope, dict[str, Counts]] = Field(default_factory=dict)
    status_accuracy: dict[Block, Ratio] = Field(default_factory=lambda: {b: Ratio() for b in STATUS_BLOCKS})
    treatment_status_accuracy: Ratio = Field(default_factory=Ratio)
    dose_accuracy: Ratio = Field(default_factory=Ratio)
    duplicates: dict[str, int] = Field(default_factory=lambda: {b: 0 for b in BLOCKS})
    order_errors: dict[str, int] = Field(default_factory=lambda: {"history": 0, "treatments": 0})
    distractor_leaks: dict[str, int] = Field(default_factory=lambda: {b: 0 for b in BLOCKS})
    distractor_leaks_by_reason: dict[str, int] = Field(default_factory=dict)
    ocr: OcrScore | None = None  # None when no dossier had records

    def to_table(self) -> Group:
        """Two rich tables: P/R/F1 per scope and block, then the other measures. Print with `Console().print`."""
        prf = Table(title=f"Synthèse eval: {self.dossiers} dossiers, {self.documents} documents, {self.pages} pages")
        for column in ("scope", "block", "TP", "FP", "FN", "P", "R", "F1"):
            prf.add_column(column, justify="left" if column in ("scope", "block") else "right")
        for scope, blocks in self.scores.items():
            for block, c in blocks.items():
                prf.add_row(scope, block, str(c.tp), str(c.fp), str(c.fn),
                            _pct(c.precision), _pct(c.recall), _pct(c.f1),
                            end_section=block == "overall")
        other = Table(title="Other measures")
        other.add_column("measure")
        other.add_column("value", justify="right")
        other.add_row("dossiers without prediction", str(self.dossiers_missing))
        for block, r in self.status_accuracy.items():
            other.add_row(f"{block}_status accuracy", _ratio(r))
        other.add_row("treatment status accuracy (matched)", _ratio(self.treatment_status_accuracy))
        other.add_row("dose accuracy (matched, gold dose)", _ratio(self.dose_accuracy))
        other.add_row("duplicates (should have merged)", _per_block(self.duplicates))
        other.add_row("order errors (inversions)", _per_block(self.order_errors))
        other.add_row("distractor leaks", _per_block(self.distractor_leaks))
        if self.distractor_leaks_by_reason:
            other.add_row("distractor leaks by reason", _per_block(self.distractor_leaks_by_reason))
        if self.ocr is not None:
            other.add_row("OCR character error rate", f"{_pct(self.ocr.cer)} over {self.ocr.pages} pages")
        return Group(prf, other)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}"


def _ratio(r: Ratio) -> str:
    return f"{_pct(r.value)} ({r.correct}/{r.total})"


def _per_block(counts: dict[str, int]) -> str:
    return f"{sum(counts.values())} (" + ", ".join(f"{k} {v}" for k, v in counts.items()) + ")"


def aggregate(scores: Sequence[DossierScore]) -> EvalReport:
    """Sum dossier scores into a report: counts are added then P/R/F1 computed (micro average)."""
    report = EvalReport(
        dossiers=len(scores),
        dossiers_missing=sum(not s.predicted for s in scores),
        documents=sum(s.documents for s in scores),
        pages=sum(s.pages for s in scores),
    )
    table: dict[Scope, dict[str, Counts]] = {
        scope: {b: Counts() for b in (*BLOCKS, "overall")} for scope in SCOPES
    }
    for s in scores:
        for name, block in s.blocks.items():
            parts: list[tuple[Scope, Counts]] = [("all", block.counts)]
            parts += [(m, block.by_modality[m]) for m in MODALITIES]
            if s.split in ("dev", "heldout"):
                parts.append((s.split, block.counts))  # type: ignore[arg-type]
                parts += [(f"{s.split}/{m}", block.by_modality[m]) for m in MODALITIES]  # type: ignore[misc]
            for scope, counts in parts:
                table[scope][name].add(counts)
                table[scope]["overall"].add(counts)
            report.duplicates[name] += block.duplicates
            report.distractor_leaks[name] += block.leaks
        for block_name, correct in s.status_correct.items():
            report.status_accuracy[block_name].add(Ratio(correct=int(correct), total=1))
        report.treatment_status_accuracy.add(s.treatment_status)
        report.dose_accuracy.add(s.dose)
        for kind, n in s.order_errors.items():
            report.order_errors[kind] += n
        for reason, n in s.leaks_by_reason.items():
            report.distractor_leaks_by_reason[reason] = report.distractor_leaks_by_reason.get(reason, 0) + n
        if s.ocr is not None:
            report.ocr = report.ocr or OcrScore()
            report.ocr.errors += s.ocr.errors
            report.ocr.chars += s.ocr.chars
            report.ocr.pages += s.ocr.pages
    report.scores = table
    return report


# --------------------------------------------------------------------------- loading


def load_gold(root: Path) -> dict[str, GoldDossier]:
    """Every `<root>/*.gold.json`, by dossier id. Raises BadArguments on a file that is not a gold record."""
    golds: dict[str, GoldDossier] = {}
    for path in sorted(Path(root).glob(f"*{GOLD_SUFFIX}")):
        try:
            gold = GoldDossier.model_validate_json(path.read_bytes())
        except (OSError, ValidationError) as e:
            raise BadArguments(f"{path.name} is not a readable gold file: regenerate the samples") from e
        golds[gold.dossier_id] = gold
    return golds


def load_predictions(root: Path) -> dict[str, Synthesis]:
    """Every `<root>/<id>/synthese.json`, by folder name. An unreadable one is logged and left out (scored as missing)."""
    predictions: dict[str, Synthesis] = {}
    for path in sorted(Path(root).glob(f"*/{OUTPUT_NAME}")):
        try:
            predictions[path.parent.name] = Synthesis.model_validate_json(path.read_bytes())
        except (OSError, ValidationError) as e:
            log.warning("%s/%s could not be read (%s): scored as missing", path.parent.name, OUTPUT_NAME,
                        type(e).__name__)
    return predictions
