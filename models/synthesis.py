"""The output contract: `synthese.json`, one per dossier.

Keys are English and are a contract: add more, rename none. Labels keep the clinicians' French.
Each block has a status that is never inferred from an empty list: `known` (at least one entry),
`none_known` (only an explicit absence was written), `unknown` (nothing was said).
"""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_serializer

from models.document import AllergyKind, Box, DocType, DocumentKind, HistoryKind, TreatmentStatus

SCHEMA_VERSION = "1.2"  # 1.1: clinical_status, relative, verification, members, in_stay, stop_reason; 1.2: review on the
# file, block_reviews, review.original and review.run_id, review status "added" (keys and values added only)

BlockStatus = Literal["known", "none_known", "unknown"]
ClinicalStatus = Literal["active", "resolved"]
# IPS AllergyIntolerance.verificationStatus: a proposal read from the documents is `unconfirmed`, a
# reviewer's validation makes it `confirmed`; an allergy ruled out by tests or a tolerated challenge is
# `refuted` (de-labelled): kept visible, never counted for `allergy_status`.
Verification = Literal["unconfirmed", "confirmed", "refuted"]
DocumentOutcome = Literal["ok", "failed", "duplicate"]


class Source(BaseModel):
    """Where an entry was read: the document (relative to the dossier), the page, the span in that page's text."""

    document: str
    page: int
    start: int
    end: int
    snippet: str
    ocr: bool = False
    boxes: list[Box] = Field(default_factory=list)  # word boxes on the OCR'd page image
    document_date: str | None = None


class Review(BaseModel):
    """A reviewer's decision on an entry. An entry with a review is never dropped or changed by a later run."""

    # A reviewer's own keys are kept, and what they did not write is not added: a reviewed entry
    # must come back from a run exactly as the reviewer left it.
    model_config = ConfigDict(extra="allow")

    # `added`: an entry the reviewer wrote because the documents' reading missed it (no sources).
    status: Literal["validated", "rejected", "edited", "added"] = "validated"
    by: str | None = None
    at: datetime | None = None
    comment: str | None = None
    original: dict | None = None  # `edited`: the fields the reviewer changed, as the run proposed them
    run_id: str | None = None  # the run whose synthese.json the reviewer saw (ledger `runs.run_id`)

    @model_serializer(mode="wrap")
    def _as_written(self, handler):
        data = handler(self)
        return {k: v for k, v in data.items() if v is not None or k in self.model_fields_set}


class BlockReview(BaseModel):
    """A reviewer's word on a block as a whole: `none_known` (the patient has none, said by the
    reviewer) or `unknown` (confirmed: no information). Kept by later runs while the documents
    list nothing for the block; a finding made afterwards makes the block `known` and a conflict."""

    model_config = ConfigDict(extra="allow")

    status: BlockStatus
    by: str | None = None
    at: datetime | None = None
    run_id: str | None = None

    @model_serializer(mode="wrap")
    def _as_written(self, handler):
        data = handler(self)
        return {k: v for k, v in data.items() if v is not None or k in self.model_fields_set}


class _Entry(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str = ""  # stable within a dossier: derived from the normalised key
    sources: list[Source] = Field(default_factory=list)
    confidence: float = Field(default=0.0, ge=0.0, le=1.0)
    review: Review | None = None
    # Set on a finding a run added to a file a reviewer had validated as a whole: it is a proposal,
    # not part of what the reviewer validated, and the next run re-derives it from the documents.
    added_after_validation: bool = False


class HistoryEntry(_Entry):
    label: str
    code: str | None = None  # CIM-10
    kind: HistoryKind = "medical"
    date: str | None = None  # ISO date, "YYYY-MM" or "YYYY"
    clinical_status: ClinicalStatus | None = None  # when the documents say so ("guéri", "en rémission")
    relative: str | None = None  # family history: the relative, as written ("mère", "grand-père")


class AllergyEntry(_Entry):
    substance: str
    reaction: str | None = None
    kind: AllergyKind = "allergy"
    code: str | None = None  # ATC of the allergen when it is a drug or a drug class
    verification: Verification = "unconfirmed"
    members: list[str] = Field(default_factory=list)  # a class's members named in brackets


class TreatmentEntry(_Entry):
    drug: str  # the substance (DCI), lower case French
    brand: str | None = None
    atc: str | None = None
    dose: str | None = None
    frequency: str | None = None
    route: str | None = None
    status: TreatmentStatus = "active"
    start: str | None = None
    end: str | None = None
    stop_reason: str | None = None
    # Given only during a stay (anaesthesia, per-operative, IV course, in-stay antibiotic, thrombolysis):
    # never `active`, and not part of the current-treatment view.
    in_stay: bool = False
    is_class: bool = False  # a drug class written without a named drug ("sous bêtabloquant"): atc is the class code


class DocumentInfo(BaseModel):
    path: str
    sha256: str
    kind: DocumentKind | None = None
    pages: int = 0
    ocr_pages: int = 0
    doc_type: DocType = "autre"
    date: str | None = None
    size: int = 0
    outcome: DocumentOutcome = "ok"
    error: str | None = None
    duplicate_of: str | None = None


class Conflict(BaseModel):
    """A contradiction between documents, for a reviewer to settle."""

    kind: Literal[
        "allergy_vs_none_known",
        "history_vs_none_known",
        "treatment_vs_none_known",
        "stopped_still_listed",
        "dose_changed",
        "validated_disagreement",
    ]
    block: Literal["history", "allergy", "treatment"]
    message: str
    entry: str | None = None  # the id of the entry concerned
    sources: list[Source] = Field(default_factory=list)


class Warning(BaseModel):
    """A document-level problem: the document was not (fully) read. `code` is a stable name."""

    document: str | None = None
    code: str
    message: str


class Synthesis(BaseModel):
    """The proposed medical synthesis of one dossier."""

    schema_version: str = SCHEMA_VERSION
    dossier_id: str
    generated_at: datetime
    extractor_version: str
    status: Literal["proposed", "validated"] = "proposed"
    documents: list[DocumentInfo] = Field(default_factory=list)
    history: list[HistoryEntry] = Field(default_factory=list)
    allergies: list[AllergyEntry] = Field(default_factory=list)
    treatments: list[TreatmentEntry] = Field(default_factory=list)
    history_status: BlockStatus = "unknown"
    allergy_status: BlockStatus = "unknown"
    treatment_status: BlockStatus = "unknown"
    conflicts: list[Conflict] = Field(default_factory=list)
    warnings: list[Warning] = Field(default_factory=list)
    review: Review | None = None  # who validated the file as a whole (`status: "validated"`), and when
    # Keyed by block ("history", "allergy", "treatment"): a reviewer's none_known / unknown.
    block_reviews: dict[Literal["history", "allergy", "treatment"], BlockReview] = Field(default_factory=dict)
