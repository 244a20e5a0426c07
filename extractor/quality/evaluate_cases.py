"""Scoring of `synthese eval CASES_DIR`: a folder of plain-text cases (`<case>.txt` + `<case>.gold.json`, the
format of the real-text development set ../shared/data/e3c-dev, models.gold.CaseGold).

Pure functions, no pipeline call (`extractor.quality.evaluation_run.evaluate_cases` renders and runs):
`load_cases` reads and checks the folder, `score_case` scores one case's synthese.json, `aggregate_cases`
sums the cases into a `CaseReport`.

The matching is the generated corpus's (`extractor.quality.evaluate.match_entries`: codes first, fuzzy
names second, one-to-one), with the additions its module docstring lists for text cases: gold variants
and spans as names, a gold code as evidence (class prefixes for ATC), optional entries neutral.

What is counted, micro-averaged over the cases
- per block (history_own, history_family, allergies, treatments): TP, FP, FN, P/R/F1, `neutral` (predictions
  matched to an optional gold entry: neither TP nor FP) and `duplicates` (FPs whose gold entry went to
  another prediction: two entries that should have been one);
- allergy_status: the gold's is "known" when it lists an allergy, "none_known" when it says there is none
  (`no_known_allergy`), else "unknown";
- treatment status (active / stopped, the gold's `current`) over every matched treatment, optional ones
  included (an in-stay drug reported as active is a status error), and dose over those with a gold dose,
  doses compared as quantities (`normalise_dose`);
- every false positive and false negative, with its case, label, code and snippet (the prediction's first
  source, the gold's span), so a developer sees what is wrong;
- with a scan rendering, the OCR character error rate of the whole case text (whitespace collapsed).
A case without a synthese.json counts every required gold entry as FN and its allergy_status as wrong.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError
from rich.console import Group
from rich.table import Table

from extractor.errors import BadArguments
from extractor.quality.evaluate import (
    BLOCKS,
    GOLD_SUFFIX,
    BlockName,
    Counts,
    Entry,
    OcrScore,
    Ratio,
    _kept,
    _pct,
    _ratio,
    judge_treatment,
    match_entries,
)
from models.gold import CaseAllergy, CaseGold, CaseHistory, CaseTreatment
from models.synthesis import AllergyEntry, HistoryEntry, Synthesis, TreatmentEntry

log = logging.getLogger(__name__)

TEXT_SUFFIX = ".txt"
SNIPPET_CHARS = 90  # in the table; the JSON keeps the whole snippet


class TextCase(BaseModel):
    """One case of a case folder: its id (the file name's stem), its text and its gold."""

    case_id: str
    text: str
    gold: CaseGold


class CaseError(BaseModel):
    """A false positive (a prediction no gold entry took) or a false negative (a required gold entry missed)."""

    case: str
    block: BlockName
    error: Literal["fp", "fn"]
    label: str
    code: str | None = None
    snippet: str | None = None  # fp: where the pipeline read it; fn: the gold's span of the case text
    duplicate: bool = False  # fp whose gold entry was taken by another prediction


class CaseBlockScore(BaseModel):
    counts: Counts = Field(default_factory=Counts)
    neutral: int = 0
    duplicates: int = 0

    def add(self, other: CaseBlockScore) -> None:
        self.counts.add(other.counts)
        self.neutral += other.neutral
        self.duplicates += other.duplicates


class CaseScore(BaseModel):
    case_id: str
    predicted: bool  # False when synthese.json was missing
    blocks: dict[BlockName, CaseBlockScore] = Field(default_factory=lambda: {b: CaseBlockScore() for b in BLOCKS})
    allergy_status_correct: bool = False
    treatment_status: Ratio = Field(default_factory=Ratio)
    dose: Ratio = Field(default_factory=Ratio)
    errors: list[CaseError] = Field(default_factory=list)
    ocr: OcrScore | None = None


class CaseReport(BaseModel):
    """Micro-averaged scores over the cases of a folder. `blocks[block]`, block in BLOCKS or "overall"."""

    cases: int = 0
    render: str = "text"
    cases_missing: list[str] = Field(default_factory=list)  # cases without a synthese.json
    blocks: dict[str, CaseBlockScore] = Field(default_factory=dict)
    allergy_status_accuracy: Ratio = Field(default_factory=Ratio)
    treatment_status_accuracy: Ratio = Field(default_factory=Ratio)
    dose_accuracy: Ratio = Field(default_factory=Ratio)
    ocr: OcrScore | None = None  # scan rendering only
    per_case: dict[str, dict[BlockName, Counts]] = Field(default_factory=dict)
    errors: list[CaseError] = Field(default_factory=list)

    def to_table(self) -> Group:
        """P/R/F1 per block and the other measures, as rich tables (`errors_text` lists the errors)."""
        prf = Table(title=f"Synthèse eval: {self.cases} text cases, rendered as {self.render}")
        for column in ("block", "TP", "FP", "FN", "neutral", "P", "R", "F1"):
            prf.add_column(column, justify="left" if column == "block" else "right")
        for block, s in self.blocks.items():
            c = s.counts
            prf.add_row(block, str(c.tp), str(c.fp), str(c.fn), str(s.neutral),
                        _pct(c.precision), _pct(c.recall), _pct(c.f1), end_section=block == BLOCKS[-1])
        other = Table(title="Other measures")
        other.add_column("measure")
        other.add_column("value", justify="right")
        other.add_row("allergy_status accuracy", _ratio(self.allergy_status_accuracy))
        other.add_row("treatment status accuracy (matched)", _ratio(self.treatment_status_accuracy))
        other.add_row("dose accuracy (matched, gold dose)", _ratio(self.dose_accuracy))
        other.add_row("duplicates (should have merged)",
                      str(sum(s.duplicates for b, s in self.blocks.items() if b != "overall")))
        other.add_row("cases without prediction", ", ".join(self.cases_missing) or "0")
        if self.ocr is not None:
            other.add_row("OCR character error rate", f"{_pct(self.ocr.cer)} over {self.ocr.pages} pages")
        return Group(prf, other)

    def errors_text(self) -> str:
        """Every false positive and false negative, one per line, by block, then kind, then case:
        `dev04  FN  syndrome d'Alport [Q87]  « le syndrome d'alport a été confirmé »`."""
        order = {b: i for i, b in enumerate(BLOCKS)}
        lines = []
        current = None
        for e in sorted(self.errors, key=lambda e: (order[e.block], e.error, e.case)):
            if (e.block, e.error) != current:
                current = (e.block, e.error)
                n = sum(1 for x in self.errors if (x.block, x.error) == current)
                kind = "false positives" if e.error == "fp" else "false negatives"
                lines.append(f"{'' if not lines else chr(10)}{e.block} {kind} ({n}):")
            snippet = " ".join((e.snippet or "").split())
            if len(snippet) > SNIPPET_CHARS:
                snippet = snippet[: SNIPPET_CHARS - 1] + "…"
            code = f" [{e.code}]" if e.code else ""
            duplicate = " (duplicate)" if e.duplicate else ""
            lines.append(f"  {e.case}  {e.label}{code}{duplicate}" + (f"  « {snippet} »" if snippet else ""))
        return "\n".join(lines) if lines else "no false positive, no false negative"


# --------------------------------------------------------------------------- loading


def find_case_ids(folder: Path) -> list[str]:
    """The stems that have both `<stem>.txt` and `<stem>.gold.json` in `folder` (empty: not a case folder)."""
    folder = Path(folder)
    return sorted(
        p.name[: -len(GOLD_SUFFIX)] for p in folder.glob(f"*{GOLD_SUFFIX}")
        if (folder / (p.name[: -len(GOLD_SUFFIX)] + TEXT_SUFFIX)).is_file()
    )


def is_case_folder(folder: Path) -> bool:
    """True when `folder` holds text cases (`X.txt` beside `X.gold.json`) rather than a generated corpus."""
    return bool(find_case_ids(folder))


def load_cases(folder: Path) -> list[TextCase]:
    """Every case of `folder`, its gold checked: each `text` span must be an exact substring of the case text.

    Raises BadArguments for a folder without a case, an unreadable text or gold, or a span not in its text.
    A text without gold, or a gold without text, is left out with a warning.
    """
    folder = Path(folder)
    ids = find_case_ids(folder)
    if not ids:
        raise BadArguments(f"no case in {folder}: a case is NAME{TEXT_SUFFIX} with NAME{GOLD_SUFFIX} beside it")
    unpaired = sorted(
        {p.name for p in folder.glob(f"*{TEXT_SUFFIX}")} - {i + TEXT_SUFFIX for i in ids}
        | {p.name for p in folder.glob(f"*{GOLD_SUFFIX}")} - {i + GOLD_SUFFIX for i in ids}
    )
    if unpaired:
        log.warning("left out, no text or no gold beside it: %s", ", ".join(unpaired))
    cases = []
    for case_id in ids:
        gold_path = folder / f"{case_id}{GOLD_SUFFIX}"
        try:
            text = (folder / f"{case_id}{TEXT_SUFFIX}").read_text(encoding="utf-8")
            gold = CaseGold.model_validate_json(gold_path.read_bytes())
        except (OSError, UnicodeDecodeError, ValidationError) as e:
            raise BadArguments(f"{case_id}: unreadable text or gold ({type(e).__name__}): "
                               f"check {gold_path.name} against the format in the set's README") from e
        missing = [s for s in gold.spans() if s not in text]
        if missing:
            raise BadArguments(f"{gold_path.name}: {len(missing)} text span(s) not found in {case_id}{TEXT_SUFFIX}, "
                               f"first {json.dumps(missing[0], ensure_ascii=False)}: spans must be exact substrings")
        gold.case_id = case_id
        cases.append(TextCase(case_id=case_id, text=text, gold=gold))
    return cases


# --------------------------------------------------------------------------- scoring


def _pred_label(entry: Entry) -> str:
    if isinstance(entry, HistoryEntry):
        return entry.label
    if isinstance(entry, AllergyEntry):
        return entry.substance
    return entry.drug + (f" ({entry.brand})" if entry.brand else "")


def _pred_code(entry: Entry) -> str | None:
    return entry.atc if isinstance(entry, TreatmentEntry) else entry.code


def _gold_label(entry) -> str:
    if isinstance(entry, CaseHistory):
        return entry.label
    if isinstance(entry, CaseAllergy):
        return entry.substance
    return entry.drug


def _gold_code(entry) -> str | None:
    code = entry.atc if isinstance(entry, CaseTreatment) else entry.code
    return "/".join(code) if isinstance(code, list) else code


def score_case(gold: CaseGold, pred: Synthesis | None) -> CaseScore:
    """Score one case's prediction against its gold. `pred` None: no synthese.json (required entries all FN)."""
    result = CaseScore(case_id=gold.case_id, predicted=pred is not None)
    history = _kept(pred.history) if pred else []
    allergies = _kept(pred.allergies) if pred else []
    treatments = _kept(pred.treatments) if pred else []

    def own(kind: str) -> bool:
        return kind != "family"

    groups: list[tuple[BlockName, str, list, list, list]] = [
        ("history_own", "history", [e for e in history if own(e.kind)],
         [g for g in gold.antecedents if own(g.kind)], [g for g in gold.optional_history if own(g.kind)]),
        ("history_family", "history", [e for e in history if not own(e.kind)],
         [g for g in gold.antecedents if not own(g.kind)], [g for g in gold.optional_history if not own(g.kind)]),
        ("allergies", "allergy", allergies, gold.allergies, []),
        ("treatments", "treatment", treatments,
         [t for t in gold.treatments if not t.optional], [t for t in gold.treatments if t.optional]),
    ]
    for name, block, predicted, required, optional in groups:
        expected = [*required, *optional]
        is_optional = [False] * len(required) + [True] * len(optional)
        matching = match_entries(block, predicted, expected, is_optional)  # type: ignore[arg-type]
        score = result.blocks[name]
        for pair in matching.pairs:
            if is_optional[pair.gold]:
                score.neutral += 1
            else:
                score.counts.tp += 1
        duplicates = set(matching.duplicates)
        score.duplicates = len(duplicates)
        for i in matching.unmatched_pred:
            score.counts.fp += 1
            p = predicted[i]
            result.errors.append(CaseError(
                case=gold.case_id, block=name, error="fp", label=_pred_label(p), code=_pred_code(p),
                snippet=p.sources[0].snippet if p.sources else None, duplicate=i in duplicates,
            ))
        for j in matching.unmatched_gold:
            if is_optional[j]:
                continue
            score.counts.fn += 1
            g = expected[j]
            result.errors.append(CaseError(case=gold.case_id, block=name, error="fn", label=_gold_label(g),
                                           code=_gold_code(g), snippet=g.text))
        if name == "treatments":  # optional pairs too: an in-stay drug reported as active is a status error
            for pair in matching.pairs:
                judge_treatment(predicted[pair.pred], expected[pair.gold], result.treatment_status, result.dose)
    result.allergy_status_correct = pred is not None and pred.allergy_status == gold.allergy_status
    return result


def aggregate_cases(scores: Sequence[CaseScore], render: str = "text") -> CaseReport:
    """Sum case scores into a report: counts added, then P/R/F1 (micro average)."""
    report = CaseReport(cases=len(scores), render=render,
                        cases_missing=[s.case_id for s in scores if not s.predicted])
    report.blocks = {b: CaseBlockScore() for b in (*BLOCKS, "overall")}
    for s in scores:
        for name, block in s.blocks.items():
            report.blocks[name].add(block)
            report.blocks["overall"].add(block)
        report.per_case[s.case_id] = {name: block.counts for name, block in s.blocks.items()}
        report.allergy_status_accuracy.add(Ratio(correct=int(s.allergy_status_correct), total=1))
        report.treatment_status_accuracy.add(s.treatment_status)
        report.dose_accuracy.add(s.dose)
        report.errors += s.errors
        if s.ocr is not None:
            report.ocr = report.ocr or OcrScore()
            report.ocr.errors += s.ocr.errors
            report.ocr.chars += s.ocr.chars
            report.ocr.pages += s.ocr.pages
    return report
