"""Records that flow through the extraction stages.

document (DocumentRecord) -> pages (Page, with text and, for OCR pages, words with offsets)
-> mentions (Mention: a span of a page's text with its meaning and qualifiers).

The text of a page is never rewritten after extraction: every offset in a Mention or a
Word points into `Page.text`, so provenance can always be shown to a reviewer.
"""
from __future__ import annotations


from typing import Literal

from pydantic import BaseModel, Field

DocumentKind = Literal["text_pdf", "scanned_pdf", "mixed_pdf", "image"]
DocType = Literal[
    "compte_rendu", "ordonnance", "courrier", "consultation", "operatoire", "biologie", "administratif", "autre"
]
PageSource = Literal["text_layer", "ocr", "empty"]
Category = Literal["history", "allergy", "treatment", "absence"]
HistoryKind = Literal["medical", "surgical", "family"]
AllergyKind = Literal["allergy", "intolerance"]
TreatmentStatus = Literal["active", "stopped"]
Block = Literal["history", "allergy", "treatment"]


class Box(BaseModel):
    """A rectangle on the page image, in pixels of the OCR'd (upright) image."""

    left: int
    top: int
    width: int
    height: int


class Word(BaseModel):
    """One OCR word: its place in `Page.text` and on the image, and tesseract's confidence (0-100)."""

    text: str
    start: int
    end: int
    box: Box
    conf: float


class Page(BaseModel):
    """One page of a document, 1-based, with its text and how it was obtained."""

    number: int
    text: str = ""
    source: PageSource = "empty"
    words: list[Word] = Field(default_factory=list)
    # Character spans of `text` recognised as repeated letterhead / footer lines: tagged, not deleted.
    boilerplate: list[tuple[int, int]] = Field(default_factory=list)
    rotation: int = 0  # degrees the page image was turned before OCR (0, 90, 180, 270)
    skew: float = 0.0  # degrees of skew corrected before OCR
    ocr_confidence: float | None = None  # mean word confidence in [0, 1] for OCR pages


class DocumentRecord(BaseModel):
    """A document of a dossier as the stages see it. `path` is relative to the dossier folder."""

    path: str
    sha256: str
    size: int
    kind: DocumentKind | None = None
    pages: list[Page] = Field(default_factory=list)
    doc_type: DocType = "autre"
    date: str | None = None  # ISO date of the document, when found
    error: str | None = None  # a named reason ("encrypted", "truncated", ...) when the document failed
    error_detail: str | None = None  # a short, text-free explanation for humans
    seconds: float = 0.0
    # The patient's date of birth when the document gives one ("né le 12/03/1960"), ISO. Kept for the
    # quality audit (a document dated before birth); never written to synthese.json or the ledger.
    birth_date: str | None = None

    @property
    def ocr_pages(self) -> int:
        return sum(1 for p in self.pages if p.source == "ocr")


class Mention(BaseModel):
    """One finding in one page of one document, before consolidation.

    `category` says which block it feeds; `absence` mentions state an explicit absence
    ("pas d'allergie connue", "ATCD : néant") for the block named in `block`.
    Qualified mentions (negated, hypothetical, family for history of the patient) are kept
    so the evaluation and reviewers can see why they were not turned into entries.
    """

    category: Category
    block: Block | None = None  # for absence mentions
    label: str  # the normalised label (condition in French, allergen substance, drug substance)
    text: str  # the matched text as written
    page: int
    start: int  # offsets in Page.text
    end: int
    snippet: str
    section: str | None = None  # canonical section name
    code: str | None = None  # CIM-10 for history, ATC for treatments
    kind: str | None = None  # HistoryKind or AllergyKind
    date: str | None = None  # ISO date or year, when stated
    reaction: str | None = None
    brand: str | None = None
    dose: str | None = None
    frequency: str | None = None
    route: str | None = None
    status: TreatmentStatus | None = None
    in_stay: bool = False  # a drug given only during the stay (anaesthesia, IV course, in-stay antibiotic)
    stop_reason: str | None = None  # as written ("devant l'apparition d'une toxicité", "décès")
    start_date: str | None = None  # year a treatment was started, when stated ("depuis 2015")
    is_class: bool = False  # a drug class written without a named drug ("sous bêtabloquant")
    negated: bool = False
    hypothetical: bool = False
    family: bool = False
    ocr: bool = False
    confidence: float = 1.0
    verification: str | None = None  # allergies: "refuted" when tests or a challenge ruled the allergy out
    members: list[str] = Field(default_factory=list)  # allergies: a class's members named in brackets
    clinical_status: str | None = None  # history: "resolved" / "active" when the text says so
    relative: str | None = None  # family history: the relative named ("mère", "grand-père paternel")
