"""`synthese eval`: run the pipeline on a generated corpus or a folder of text cases (or read its outputs)
and score it.

Kept apart from `extractor.quality.evaluate` and `evaluate_cases` (pure scoring) so the scorers never run
the pipeline.
"""
from __future__ import annotations

import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from extractor.batch.runner import RunOptions, run
from extractor.config import STATE_DIR, Settings
from extractor.errors import BadArguments
from extractor.quality.evaluate import (
    EvalReport,
    OcrScore,
    aggregate,
    load_gold,
    load_predictions,
    normalise_page_text,
    score_dossier,
)
from extractor.quality.evaluate_cases import CaseReport, TextCase, aggregate_cases, load_cases, score_case
from models.document import DocumentRecord


def evaluate_corpus(root: Path, run_pipeline: bool = True, settings: Settings | None = None) -> EvalReport:
    """Score every dossier of `root` that has a gold file. With `run_pipeline`, run the pipeline first
    (a full run in a fresh ledger beside the corpus) so OCR page texts are at hand for the error rate."""
    golds = load_gold(root)
    if not golds:
        raise BadArguments(f"no *.gold.json file in {root}: is it a corpus made by `synthese samples make`?")
    records: dict[str, list[DocumentRecord]] = {}
    if run_pipeline:
        shutil.rmtree(root / STATE_DIR, ignore_errors=True)
        run(
            RunOptions(root=root, full=True),
            settings or Settings(),
            on_dossier=lambda o: records.__setitem__(o.dossier_id, [r.record for r in o.results]),
        )
    preds = load_predictions(root)
    scores = [score_dossier(g, preds.get(did), records.get(did)) for did, g in sorted(golds.items())]
    return aggregate(scores)


# A work folder `evaluate_cases` made holds this file: only such a folder is ever emptied for a new run.
# A hidden name, so the pipeline's discovery of dossiers and documents skips it.
WORK_MARK = ".synthese-eval-work"


@contextmanager
def _work_folder(work: Path | None):
    """The given work folder, or a temporary one removed afterwards."""
    if work is not None:
        yield Path(work)
        return
    tmp = Path(tempfile.mkdtemp(prefix="synthese-eval-"))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def prepare_work(cases: list[TextCase], work: Path, render: str) -> None:
    """One dossier folder per case in `work` (`<case>/<case>.pdf`, the text rendered as `render`). The gold
    is never written there: the pipeline cannot read it. Raises BadArguments when `work` is a folder
    with content that an earlier evaluation did not make (nothing of it is touched)."""
    from extractor.quality.render_text import render as render_pdf

    work.mkdir(parents=True, exist_ok=True)
    if any(work.iterdir()) and not (work / WORK_MARK).exists():
        raise BadArguments(f"{work} is not empty and not a work folder of `synthese eval`: give a new or empty folder")
    for child in work.iterdir():  # a work folder of ours: start afresh (other cases, other rendering)
        if child.name != WORK_MARK:
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    (work / WORK_MARK).write_text("made by `synthese eval`; emptied by the next evaluation in this folder\n")
    for case in cases:
        folder = work / case.case_id
        folder.mkdir()
        (folder / f"{case.case_id}.pdf").write_bytes(render_pdf(case.text, render, seed=case.case_id))  # type: ignore[arg-type]


def _ocr_score(text: str, records: list[DocumentRecord]) -> OcrScore:
    """Character errors of the pages read back against the case text, whitespace collapsed on both sides."""
    from rapidfuzz.distance import Levenshtein

    reference = normalise_page_text(text)
    hypothesis = normalise_page_text(" ".join(p.text for r in records for p in r.pages))
    pages = sum(len(r.pages) for r in records)
    return OcrScore(errors=Levenshtein.distance(reference, hypothesis), chars=len(reference), pages=pages)


def evaluate_cases(
    folder: Path,
    render: str = "text",
    work: Path | None = None,
    run_pipeline: bool = True,
    settings: Settings | None = None,
) -> CaseReport:
    """Score the text cases of `folder` (`<case>.txt` + `<case>.gold.json`).

    With `run_pipeline`, each text is rendered as a PDF ("text": with a text layer; "scan": a scanned image,
    read by OCR) in its own dossier folder under `work` (default: a temporary folder, removed at the end),
    and the pipeline runs on them as for a generated corpus. Without it, the synthese.json files already in
    `work` are scored. Raises BadArguments for a bad folder, rendering or work folder.
    """
    from extractor.quality.render_text import RENDERS

    if render not in RENDERS:
        raise BadArguments(f"--render must be one of {', '.join(RENDERS)}, not {render!r}")
    cases = load_cases(folder)
    if not run_pipeline and (work is None or not Path(work).is_dir()):
        raise BadArguments("--no-run on text cases needs --work, the folder of an earlier evaluation to score again")
    records: dict[str, list[DocumentRecord]] = {}
    with _work_folder(work) as root:
        if run_pipeline:
            prepare_work(cases, root, render)
            run(
                RunOptions(root=root, full=True),
                settings or Settings(),
                on_dossier=lambda o: records.__setitem__(o.dossier_id, [r.record for r in o.results]),
            )
        preds = load_predictions(root)
    scores = []
    for case in cases:
        score = score_case(case.gold, preds.get(case.case_id))
        if render == "scan" and case.case_id in records:
            score.ocr = _ocr_score(case.text, records[case.case_id])
        scores.append(score)
    return aggregate_cases(scores, render=render)
