"""Ground truth: the sample generator's, beside each dossier folder (`<dossier>.gold.json`), and the gold of
plain-text cases (`<case>.gold.json` beside `<case>.txt`, at the end of this module).

Never inside the dossier folder: the pipeline must not be able to read it.
"""
from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, BaseModel, Field

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


# --------------------------------------------------------------------------- text cases
# The gold of a plain-text case (`<case>.txt` + `<case>.gold.json`), in the format of the real-text
# development set (../shared/data/e3c-dev, its README gives the annotation conventions). Unlike a
# generated dossier's gold, names come with variants and the exact span of the case text, codes may
# be classes ("C07", "A10B") and some items are optional: a synthesis may list them, but need not.


class CaseHistory(BaseModel):
    """A history item of a text case; `kind` "family" for a relative's ("diabète (mère)")."""

    label: str
    kind: HistoryKind = "medical"
    code: str | list[str] | None = None  # CIM-10 3-character category, or several
    variants: list[str] = Field(default_factory=list)  # other names it may be written as ("HTA", "hypertendu")
    text: str | None = None  # the exact span of the case text that states it


class CaseAllergy(BaseModel):
    substance: str
    kind: AllergyKind = "allergy"
    reaction: str | None = None
    code: str | list[str] | None = None  # ATC (substance or class) when the gold gives one
    variants: list[str] = Field(default_factory=list)
    text: str | None = None


class CaseTreatment(BaseModel):
    drug: str  # DCI in lower case, or a class ("bêtabloquants") when no drug is named
    brand: str | None = None
    atc: str | list[str] | None = None  # a full code, a class prefix ("C07"), or several
    dose: str | None = None
    frequency: str | None = None
    current: bool = True  # still taken at the end of the narrative
    optional: bool = False  # given only during the episode: neither required nor penalised
    variants: list[str] = Field(default_factory=list)  # brands, abbreviations ("Gardenal", "LT4")
    text: str | None = None

    @property
    def status(self) -> TreatmentStatus:
        return "active" if self.current else "stopped"


class CaseGold(BaseModel):
    """The gold of one text case. `case_id` is the file name's stem, set by the loader."""

    case_id: str = ""
    source: str | None = None
    licence: str | None = None
    article: str | None = None
    antecedents: list[CaseHistory] = Field(
        default_factory=list, validation_alias=AliasChoices("antecedents", "history")
    )
    optional_history: list[CaseHistory] = Field(default_factory=list)
    allergies: list[CaseAllergy] = Field(default_factory=list)
    no_known_allergy: bool = False  # true only when the text says there is none
    treatments: list[CaseTreatment] = Field(default_factory=list)
    notes: str | None = None

    @property
    def allergy_status(self) -> BlockStatus:
        if self.allergies:
            return "known"
        return "none_known" if self.no_known_allergy else "unknown"

    def spans(self) -> list[str]:
        """Every `text` span of the gold, in order (each must be an exact substring of the case text)."""
        items = [*self.antecedents, *self.optional_history, *self.allergies, *self.treatments]
        return [i.text for i in items if i.text]
