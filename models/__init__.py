"""Pydantic records of Synthèse: the one place the schema users rely on is defined.

- `models.document`: what flows through the extraction stages (document, page, word, mention).
- `models.synthesis`: the output contract written as `synthese.json`.
- `models.gold`: the ground truth written by the sample generator, read by the evaluation.
- `models.report`: the run report.
"""
from models.document import Box, DocumentRecord, Mention, Page, Word
from models.synthesis import (
    SCHEMA_VERSION,
    AllergyEntry,
    Conflict,
    DocumentInfo,
    HistoryEntry,
    Review,
    Source,
    Synthesis,
    TreatmentEntry,
    Warning,
)

__all__ = [
    "SCHEMA_VERSION",
    "AllergyEntry",
    "Box",
    "Conflict",
    "DocumentInfo",
    "DocumentRecord",
    "HistoryEntry",
    "Mention",
    "Page",
    "Review",
    "Source",
    "Synthesis",
    "TreatmentEntry",
    "Warning",
    "Word",
]
