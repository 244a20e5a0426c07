"""Terminology presets of the FHIR export: every code system, profile and identifier URI lives here.

The resource builders (`fhir.py`) never spell a URI: they ask a `Preset` (CIM-10, ATC, substances) or take
the shared constants below (LOINC, SNOMED CT, HL7 code systems, IPS profiles, this project's own systems).

Two presets:
- `ips` (international, HL7 IPS 2.0.0): CIM-10 as WHO ICD-10 `http://hl7.org/fhir/sid/icd-10`,
  ATC as `http://www.whocc.no/atc`, no substance code system.
- `fr` (ANS FR-IPS "Synthèse médicale" draft, FR Core): the ANS terminology server (SMT) URIs,
  `https://smt.esante.gouv.fr/terminologie-cim-10` (the CIM-10 FR PMSI code system page of the SMT, as the
  FR-IPS/FR Core value sets include it) and `https://smt.esante.gouv.fr/terminologie-atc` (as ANS's
  IG-document-core value set `fr-vs-medication-translation-document` names ATC), and the BDPM (ANSM)
  substance code as `http://data.esante.gouv.fr/ansm/medicament/substance` (Interop'Santé FR medication IG
  0.1.0, value set `fr-substance-code`). Assumption, recorded here: these drafts move; FR Core has also used
  other spellings (a trailing slash on the CIM-10 URI, `http://www.whocc.no/atc` for ATC). Change them here
  and nowhere else.

The IPS 2.0.0 "no known ..." codes are SNOMED CT (716186003 allergies, 787481004 medications, 160245001
problems); an `unknown` block becomes the section's `emptyReason` `unavailable`
(http://terminology.hl7.org/CodeSystem/list-empty-reason).
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

RULES = Path(__file__).resolve().parents[2] / "rules"

# --- shared code systems -------------------------------------------------------------------------
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
LIST_EMPTY_REASON = "http://terminology.hl7.org/CodeSystem/list-empty-reason"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
ALLERGY_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
ALLERGY_VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
MEDICATION_STATEMENT_CATEGORY = "http://terminology.hl7.org/CodeSystem/medication-statement-category"
ROLE_CODE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
PROVENANCE_AGENT_TYPE = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
PROVENANCE_ENTITY_ROLE = "http://hl7.org/fhir/provenance-entity-role"
DATA_ABSENT_REASON = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
DATA_ABSENT_REASON_CS = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
URI_SYSTEM = "urn:ietf:rfc:3986"  # identifiers that are URIs (the Bundle's urn:uuid)
XHTML_NS = "http://www.w3.org/1999/xhtml"

# --- IPS 2.0.0 profiles (canonical URLs, as in the package's StructureDefinitions) ---------------
IPS_BASE = "http://hl7.org/fhir/uv/ips/StructureDefinition/"
IPS_PROFILES = {
    "Bundle": IPS_BASE + "Bundle-uv-ips",
    "Composition": IPS_BASE + "Composition-uv-ips",
    "Patient": IPS_BASE + "Patient-uv-ips",
    "Condition": IPS_BASE + "Condition-uv-ips",
    "AllergyIntolerance": IPS_BASE + "AllergyIntolerance-uv-ips",
    "MedicationStatement": IPS_BASE + "MedicationStatement-uv-ips",
}
IPS_PACKAGE = "hl7.fhir.uv.ips"
IPS_VERSION = "2.0.0"

# --- this project's own systems (not resolvable URLs: URNs that name what they identify) ---------
DOSSIER_SYSTEM = "urn:synthese:dossier"  # Patient.identifier: the dossier id, never a person's identity
ENTRY_SYSTEM = "urn:synthese:entry"  # identifier of each exported entry: synthese.json's stable entry id
DOCUMENT_SHA256_SYSTEM = "urn:synthese:sha256"  # DocumentReference.identifier: the file's SHA-256
SOURCE_SPAN_EXTENSION = "urn:synthese:fhir:source-span"  # on Provenance.entity: page, start, end, snippet
REVIEW_EXTENSION = "urn:synthese:fhir:review"  # on Provenance: the reviewer's status (validated/edited)

# --- document and section codes (LOINC) -----------------------------------------------------------
PATIENT_SUMMARY = ("60591-5", "Patient summary Document")
SECTION_CODES = {
    "problems": ("11450-4", "Problem list - Reported"),
    "allergies": ("48765-2", "Allergies and adverse reactions Document"),
    "medications": ("10160-0", "History of Medication use Narrative"),
    "past_illness": ("11348-0", "History of Past illness Note"),
    "family": ("10157-6", "History of family member diseases Note"),
}
# The IPS 2.0.0 "no known ..." concepts (SNOMED CT) that stand for a `none_known` block.
NO_KNOWN = {
    "problems": ("160245001", "No current problems or disability"),
    "allergies": ("716186003", "No known allergy"),
    "medications": ("787481004", "No known medication"),
}
EMPTY_REASON_UNAVAILABLE = ("unavailable", "Unavailable")
FAMILY_MEMBER = ("FAMMEMB", "family member")  # the documents rarely say which relative: the generic role


@dataclass(frozen=True)
class Preset:
    """A terminology preset: which URIs code CIM-10, ATC and substances, and the document's language."""

    name: str
    cim10: str
    atc: str
    substance: str | None = None  # BDPM (ANSM) substance codes, French preset only
    language: str = "fr-FR"
    substance_codes: dict[str, str] = field(default_factory=dict, repr=False)

    def substance_code(self, name: str | None) -> str | None:
        """The substance code of a treatment's `drug` (lower-case DCI), None when this preset has none."""
        if not self.substance or not name:
            return None
        return self.substance_codes.get(name.strip().lower())


@lru_cache(maxsize=1)
def _bdpm_substances() -> dict[str, str]:
    """rules/bdpm_substances.tsv: substance name -> ANSM substance code (built by rules.build_bdpm_substances)."""
    out: dict[str, str] = {}
    with (RULES / "bdpm_substances.tsv").open(encoding="utf-8") as fh:
        rows = (line for line in fh if not line.startswith("#"))
        for row in csv.DictReader(rows, delimiter="\t"):
            out[row["substance"]] = row["code"]
    return out


PRESET_NAMES = ("ips", "fr")


def preset(name: str) -> Preset:
    """The preset called `name` (`ips` or `fr`); ValueError for any other name."""
    if name == "ips":
        return Preset(name="ips", cim10="http://hl7.org/fhir/sid/icd-10", atc="http://www.whocc.no/atc")
    if name == "fr":
        return Preset(
            name="fr",
            cim10="https://smt.esante.gouv.fr/terminologie-cim-10",
            atc="https://smt.esante.gouv.fr/terminologie-atc",
            substance="http://data.esante.gouv.fr/ansm/medicament/substance",
            substance_codes=_bdpm_substances(),
        )
    raise ValueError(f"unknown preset {name!r} (expected one of {', '.join(PRESET_NAMES)})")
