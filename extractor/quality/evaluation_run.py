"""`synthese eval`: run the pipeline on a generated corpus (or read its outputs) and score it.

Kept apart from `extractor.quality.evaluate` (pure scoring) so the scorer never runs the pipeline.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from extractor.batch.runner import RunOptions, run
from extractor.config import STATE_DIR, Settings
from extractor.errors import BadArguments
from extractor.quality.evaluate import EvalReport, aggregate, load_gold, load_predictions, score_dossier
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
