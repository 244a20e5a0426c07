"""Ground truth written by the sample generator beside each dossier folder (`<dossier>.gold.json`).

Never inside the dossier folder: the pipeline must not be able to read it.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from models.document import AllergyKind, DocType, DocumentKind, HistoryKind, TreatmentStatus
from models.synthesis import BlockStatus

Split = Literal["dev", "heldout"]


class GoldPage(BaseModel):
    number: int
    text: str  # the text as rendered on the page (for OCR character error rate)
    scanned: bool = False
    rotation: int = 0
    skew: float = 0.0


class GoldDocument(BaseModel):
    path: str
    kind: DocumentKind
    doc_type: DocType
    date: str | None = None
    pages: list[GoldPage] = Field(default_factory=list)
    readable: bool = True  # False for a deliberately unreadable scan
    duplicate_of: str | None = None  # same bytes as another document of the dossier
    rescan_of: str | None = None  # a scan of another document of the dossier


class GoldHistory(BaseModel):
    label: str
    code: str | None = None
    kind: HistoryKind
    date: str | None = None
    abbreviations: list[str] = Field(default_factory=list)  # other names it may be written as
    documents: list[str] = Field(default_factory=list)  # dossier-relative paths of the documents that state it


class GoldAllergy(BaseModel):
    substance: str
    reaction: str | None = None
    kind: AllergyKind = "allergy"
    documents: list[str] = Field(default_factory=list)  # dossier-relative paths of the documents that state it


class GoldTreatment(BaseModel):
    drug: str  # substance, lower case
    brand: str | None = None
    atc: str | None = None
    dose: str | None = None
    frequency: str | None = None
    status: TreatmentStatus = "active"
    documents: list[str] = Field(default_factory=list)  # dossier-relative paths of the documents that state it


class GoldDistractor(BaseModel):
    """Something written in the dossier that must NOT become an entry (negated, hypothetical, family for own history...)."""

    block: Literal["history", "allergy", "treatment"]
    label: str
    reason: Literal["negated", "hypothetical", "family", "discussed", "lab", "past", "finding", "eliminated", "refuted"]


class GoldIdentity(BaseModel):
    """The invented identity printed on the documents: must never appear in a log or report."""

    name: str
    birth_date: str
    ipp: str


class GoldDossier(BaseModel):
    dossier_id: str
    identity: GoldIdentity | None = None
    split: Split
    seed: int
    documents: list[GoldDocument] = Field(default_factory=list)
    history: list[GoldHistory] = Field(default_factory=list)
    allergies: list[GoldAllergy] = Field(default_factory=list)
    treatments: list[GoldTreatment] = Field(default_factory=list)
    history_status: BlockStatus = "unknown"
    allergy_status: BlockStatus = "unknown"
    treatment_status: BlockStatus = "unknown"
    distractors: list[GoldDistractor] = Field(default_factory=list)
    phenomena: list[str] = Field(default_factory=list)  # "empty", "duplicate", "rescan", "undated", "unreadable", "contradiction"
