"""Synthesis -> HL7 FHIR R4 document Bundle (International Patient Summary 2.0.0).

`build_bundle(synthesis, preset)` returns the Bundle as plain FHIR JSON (a dict); `parse_bundle` reads it
through the `fhir.resources` R4B models, which is how `export.run` checks that what it writes is FHIR.
Every URI comes from `terminology` (a preset or its shared constants).

Mapping (the README's table says the same):
- history `medical` not `resolved` -> Condition in Problems (11450-4); `medical` `resolved` and every
  `surgical` entry -> Condition in History of past illness (11348-0); `family` -> FamilyMemberHistory in
  a family history section (10157-6, only when there is one).
- allergies -> AllergyIntolerance in Allergies (48765-2).
- treatments -> MedicationStatement in Medications (10160-0): `active` -> status active, `stopped` ->
  stopped, `in_stay` (given only during a stay) -> status completed with category `inpatient`: they are
  kept, visibly not current medications.
- `none_known` -> the IPS "no known" SNOMED CT entry; `unknown` (or a block left empty by the entry filter)
  -> `emptyReason` unavailable with a French narrative.
- every document -> DocumentReference; every exported entry -> Provenance (target the entry, one entity
  per source with the page and span in an extension; the reviewer, when there is one, as `verifier`).
Rejected entries are never exported.
"""
from __future__ import annotations

import html
import re
import uuid
from datetime import datetime, timezone
from typing import Iterable

from extractor.errors import CouldNotRun
from extractor.export import terminology as T
from models.synthesis import AllergyEntry, HistoryEntry, Source, Synthesis, TreatmentEntry

_NS = uuid.UUID("6f1c52d4-3f2e-4b8e-9f55-5a9e7c0c1e11")  # fixed: the same entry gets the same fullUrl
# FHIR's string type is `[ \r\n\t\S]+`: other control characters (a form feed OCR leaves in a snippet) are
# invalid FHIR even though fhir.resources lets them through; stricter readers refuse the whole document.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_DATE = re.compile(r"^\d{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01]))?)?$")

SECTION_TITLES = {
    "problems": "Problèmes et antécédents médicaux",
    "allergies": "Allergies et intolérances",
    "medications": "Traitements",
    "past_illness": "Antécédents (résolus, chirurgicaux)",
    "family": "Antécédents familiaux",
}
BLOCK_WORDS = {"problems": "antécédents", "allergies": "allergies", "medications": "traitements"}
TREATMENT_STATUS = {"active": "en cours", "stopped": "arrêté", "completed": "pendant un séjour"}
VERIFICATION_FR = {"confirmed": "confirmé", "unconfirmed": "non confirmé (proposition)", "refuted": "réfuté"}


def is_validated(entry, synthesis: Synthesis) -> bool:
    """Validated by a reviewer: the entry's own review, or a file validated as a whole (not a later addition)."""
    if entry.review is not None:
        return entry.review.status in ("validated", "edited")
    return synthesis.status == "validated" and not entry.added_after_validation


def exported(entry, synthesis: Synthesis, only_validated: bool) -> bool:
    """Whether `entry` goes into the bundle: never when rejected; with `only_validated`, only validated ones."""
    if entry.review is not None and entry.review.status == "rejected":
        return False
    return is_validated(entry, synthesis) if only_validated else True


def verification(entry, synthesis: Synthesis) -> str:
    """confirmed / unconfirmed / refuted, as IPS reads `verificationStatus`."""
    if getattr(entry, "verification", None) == "refuted":
        return "refuted"
    if is_validated(entry, synthesis) or getattr(entry, "verification", None) == "confirmed":
        return "confirmed"
    return "unconfirmed"


def _uid(*parts: str) -> str:
    return "urn:uuid:" + str(uuid.uuid5(_NS, "/".join(parts)))


def _coding(system: str, code: str, display: str | None = None) -> dict:
    c = {"system": system, "code": code}
    if display:
        c["display"] = display
    return c


def _text_concept(text: str, system: str, code: str | None) -> dict:
    """A CodeableConcept that is the text as written, with its code when the entry has one."""
    concept = {"text": text}
    if code:
        concept["coding"] = [_coding(system, code, text)]
    return concept


def _concept(system: str, code: str, display: str) -> dict:
    return {"coding": [_coding(system, code, display)], "text": display}


def _absent(reason: str = "unknown") -> dict:
    return {"extension": [{"url": T.DATA_ABSENT_REASON, "valueCode": reason}]}


def _date(value: str | None) -> str | None:
    return value if value and _DATE.match(value) else None


def _instant(dt: datetime) -> str:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)  # the pipeline stamps UTC
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _identifier(entry) -> list[dict]:
    """The entry's stable id from synthese.json, so a reader can match the two files."""
    return [{"system": T.ENTRY_SYSTEM, "value": entry.id}] if entry.id else []


def _div(body: str) -> str:
    return f'<div xmlns="{T.XHTML_NS}">{body}</div>'


def _text(body: str) -> dict:
    return {"status": "generated", "div": _div(body)}


def _e(s: object) -> str:
    return html.escape(str(s), quote=False)


def _ul(items: Iterable[str]) -> str:
    return "<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>"


class _Builder:
    def __init__(self, s: Synthesis, preset: T.Preset, only_validated: bool):
        self.s, self.p, self.only_validated = s, preset, only_validated
        self.entries: list[dict] = []  # Bundle entries after the Composition
        self.patient = _uid(s.dossier_id, "patient")
        self.device = _uid(s.dossier_id, "device")
        self.recorded = _instant(s.generated_at)
        self.docs: dict[str, str] = {}  # document path -> DocumentReference fullUrl
        self.doc_dates = {d.path: d.date for d in s.documents}

    def add(self, full_url: str, resource: dict) -> str:
        head = {"resourceType": resource.pop("resourceType"), "id": full_url.rsplit(":", 1)[1]}
        for key in ("meta", "text"):  # FHIR's usual order, for a reader of the JSON
            if key in resource:
                head[key] = resource.pop(key)
        resource = {k: v for k, v in resource.items() if v != []}  # an entry without id has no identifier
        self.entries.append({"fullUrl": full_url, "resource": {**head, **resource}})
        return full_url

    # --- context resources -------------------------------------------------------------------
    def add_patient(self) -> None:
        # synthese.json carries no identity (health data stays pseudonymous): the dossier id is the only
        # identifier; IPS wants a name and a birth date, so both carry the data-absent-reason `masked`.
        self.add(self.patient, {
            "resourceType": "Patient",
            "meta": {"profile": [T.IPS_PROFILES["Patient"]]},
            "text": _text(f"<p>Patient du dossier {_e(self.s.dossier_id)} (identité non transmise)</p>"),
            "identifier": [{"system": T.DOSSIER_SYSTEM, "value": self.s.dossier_id}],
            "name": [{"_family": _absent("masked")}],
            "_birthDate": _absent("masked"),
        })

    def add_device(self) -> None:
        self.add(self.device, {
            "resourceType": "Device",
            "text": _text(f"<p>Synthèse {_e(self.s.extractor_version)} (proposition automatique)</p>"),
            "deviceName": [{"name": "Synthèse", "type": "manufacturer-name"}],
            "version": [{"value": self.s.extractor_version}],
        })

    def add_documents(self) -> None:
        for d in self.s.documents:
            self._document(d.path, d.sha256, d.doc_type, d.date, d.kind)

    def _document(self, path: str, sha256: str | None = None, doc_type: str | None = None,
                  date: str | None = None, kind: str | None = None) -> str:
        if path in self.docs:
            return self.docs[path]
        url = _uid(self.s.dossier_id, "document", path)
        content_type = {"text_pdf": "application/pdf", "scanned_pdf": "application/pdf",
                        "mixed_pdf": "application/pdf"}.get(kind or "")
        attachment = {"title": path}
        if content_type:
            attachment["contentType"] = content_type
        res = {
            "resourceType": "DocumentReference",
            "text": _text(f"<p>{_e(path)} ({_e(doc_type or 'document')}{', ' + _e(date) if date else ''})</p>"),
            "status": "current",
            "subject": {"reference": self.patient},
            "content": [{"attachment": attachment}],
        }
        if sha256:
            res["identifier"] = [{"system": T.DOCUMENT_SHA256_SYSTEM, "value": sha256}]
        if doc_type:
            res["type"] = {"text": doc_type}
        if _date(date):
            res["context"] = {"period": {"start": date}}
        self.docs[path] = self.add(url, res)
        return url

    def add_entry(self, entry, name: str, res: dict) -> str:
        """Add an entry's resource (identified by the entry's id, else its name) and its Provenance."""
        url = self.add(_uid(self.s.dossier_id, "entry", entry.id or name), res)
        self.add_provenance(url, entry)
        return url

    def add_provenance(self, target: str, entry) -> None:
        entities = []
        for src in entry.sources:
            entities.append({
                "role": "source",
                "what": {"reference": self._document(src.document), "display": src.document},
                "extension": [{"url": T.SOURCE_SPAN_EXTENSION, "extension": _span(src)}],
            })
        agents = [{"type": _concept(T.PROVENANCE_AGENT_TYPE, "author", "Author"), "who": {"reference": self.device}}]
        prov = {"resourceType": "Provenance", "target": [{"reference": target}], "recorded": self.recorded}
        if entry.review is not None and entry.review.status in ("validated", "edited"):
            agents.append({"type": _concept(T.PROVENANCE_AGENT_TYPE, "verifier", "Verifier"),
                           "who": {"display": entry.review.by or "relecteur"}})
            prov["extension"] = [{"url": T.REVIEW_EXTENSION, "valueCode": entry.review.status}]
        prov["agent"] = agents
        if entities:
            prov["entity"] = entities
        n = len(entry.sources)
        prov["text"] = _text(f"<p>Lu dans {n} passage{'s' if n > 1 else ''} des documents du dossier</p>")
        self.add(_uid(self.s.dossier_id, "provenance", entry.id or target), prov)

    # --- sections --------------------------------------------------------------------------------
    def section(self, key: str, refs: list[str], lines: list[str], empty_note: str | None = None) -> dict:
        code, display = T.SECTION_CODES[key]
        sec = {"title": SECTION_TITLES[key], "code": _concept(T.LOINC, code, display)}
        if refs:
            sec["text"] = _text(_ul(lines))
            sec["entry"] = [{"reference": r} for r in refs]
        else:
            sec["text"] = _text(f"<p>{_e(empty_note)}</p>")
            sec["emptyReason"] = _concept(T.LIST_EMPTY_REASON, *T.EMPTY_REASON_UNAVAILABLE)
        return sec

    def empty_note(self, block: str, status: str, had_entries: bool) -> str:
        word = BLOCK_WORDS[block]
        if status == "unknown":
            return f"Information non disponible : les documents du dossier ne disent rien des {word}."
        if had_entries and self.only_validated:
            return f"Aucune entrée validée par un relecteur pour les {word}."
        return f"Aucune entrée pour les {word} dans cette synthèse."

    def no_known(self, block: str, resource_type: str) -> tuple[str, str]:
        code, display = T.NO_KNOWN[block]
        concept = _concept(T.SNOMED, code, display)
        url = _uid(self.s.dossier_id, "no-known", block)
        fr = {"problems": "Pas d'antécédent ni de problème connu", "allergies": "Pas d'allergie connue",
              "medications": "Pas de traitement connu"}[block]
        res = {"resourceType": resource_type, "text": _text(f"<p>{fr}</p>")}
        subject = {"reference": self.patient}
        if resource_type == "Condition":
            res.update({"meta": {"profile": [T.IPS_PROFILES["Condition"]]},
                        "clinicalStatus": _concept(T.CONDITION_CLINICAL, "active", "Active"),
                        "verificationStatus": _concept(T.CONDITION_VERIFICATION, "confirmed", "Confirmed"),
                        "code": concept, "subject": subject})
        elif resource_type == "AllergyIntolerance":
            res.update({"meta": {"profile": [T.IPS_PROFILES["AllergyIntolerance"]]},
                        "clinicalStatus": _concept(T.ALLERGY_CLINICAL, "active", "Active"),
                        "verificationStatus": _concept(T.ALLERGY_VERIFICATION, "confirmed", "Confirmed"),
                        "code": concept, "patient": subject})
        else:
            res.update({"meta": {"profile": [T.IPS_PROFILES["MedicationStatement"]]}, "status": "active",
                        "medicationCodeableConcept": concept, "subject": subject,
                        "_effectiveDateTime": _absent("not-applicable")})
        return self.add(url, res), fr

    # --- clinical resources ------------------------------------------------------------------------
    def condition(self, h: HistoryEntry) -> str:
        code = _text_concept(h.label, self.p.cim10, h.code)
        ver = verification(h, self.s)
        res = {
            "resourceType": "Condition",
            "meta": {"profile": [T.IPS_PROFILES["Condition"]]},
            "text": _text(f"<p>{_e(h.label)}</p>"),
            "identifier": _identifier(h),
            "verificationStatus": _concept(T.CONDITION_VERIFICATION, ver, ver.capitalize()),
            "code": code,
            "subject": {"reference": self.patient},
        }
        if h.kind == "surgical":
            # Text only: IPS has no surgical-history category, and the section does not tell it from a
            # resolved condition.
            res["category"] = [{"text": "antécédent chirurgical"}]
        if h.clinical_status:
            res["clinicalStatus"] = _concept(T.CONDITION_CLINICAL, h.clinical_status, h.clinical_status.capitalize())
        if _date(h.date):
            res["onsetDateTime"] = h.date
        return self.add_entry(h, h.label, res)

    def family(self, h: HistoryEntry) -> str:
        cond = {"code": _text_concept(h.label, self.p.cim10, h.code)}
        relationship = _concept(T.ROLE_CODE, *T.FAMILY_MEMBER)
        if h.relative:
            # The relative as written ("grand-père"): kept as the relationship's text, the code staying generic.
            relationship["text"] = h.relative
        who = f" ({_e(h.relative)})" if h.relative else ""
        res = {
            "resourceType": "FamilyMemberHistory",
            "text": _text(f"<p>Antécédent familial : {_e(h.label)}{who}</p>"),
            "identifier": _identifier(h),
            "status": "completed",
            "patient": {"reference": self.patient},
            "relationship": relationship,
            "condition": [cond],
        }
        if _date(h.date):
            res["date"] = h.date
        return self.add_entry(h, h.label, res)

    def allergy(self, a: AllergyEntry) -> str:
        code = _text_concept(a.substance, self.p.atc, a.code)
        ver = verification(a, self.s)
        # A refuted (de-labelled) allergy keeps a clinical status, as ait-1 asks: inactive.
        clinical = "inactive" if ver == "refuted" else "active"
        res = {
            "resourceType": "AllergyIntolerance",
            "meta": {"profile": [T.IPS_PROFILES["AllergyIntolerance"]]},
            "text": _text(f"<p>{_e(a.substance)}{' : ' + _e(a.reaction) if a.reaction else ''}</p>"),
            "identifier": _identifier(a),
            "clinicalStatus": _concept(T.ALLERGY_CLINICAL, clinical, clinical.capitalize()),
            "verificationStatus": _concept(T.ALLERGY_VERIFICATION, ver, ver.capitalize()),
            "type": a.kind,
            "code": code,
            "patient": {"reference": self.patient},
        }
        if a.code:
            res["category"] = ["medication"]
        if a.reaction:
            res["reaction"] = [{"manifestation": [{"text": a.reaction}]}]
        if a.members:
            res["note"] = [{"text": "Membres cités : " + ", ".join(a.members)}]
        return self.add_entry(a, a.substance, res)

    def medication(self, t: TreatmentEntry) -> str:
        status = "completed" if t.in_stay else t.status
        med = {"text": t.drug}
        codings = []
        if t.atc:
            codings.append(_coding(self.p.atc, t.atc, t.drug))
        sub = None if t.is_class else self.p.substance_code(t.drug)
        if sub:
            codings.append(_coding(self.p.substance, sub, t.drug))
        if codings:
            med["coding"] = codings
        res = {
            "resourceType": "MedicationStatement",
            "meta": {"profile": [T.IPS_PROFILES["MedicationStatement"]]},
            "identifier": _identifier(t),
            "status": status,
            "medicationCodeableConcept": med,
            "subject": {"reference": self.patient},
        }
        if t.in_stay:
            res["category"] = _concept(T.MEDICATION_STATEMENT_CATEGORY, "inpatient", "Inpatient")
        if t.stop_reason:
            res["statusReason"] = [{"text": t.stop_reason}]
        # IPS requires effective[x]: the stated period, else the latest date of a document that says it.
        start, end = _date(t.start), _date(t.end)
        if start or end:
            res["effectivePeriod"] = {k: v for k, v in (("start", start), ("end", end)) if v}
        elif when := self._latest_source_date(t.sources):
            res["effectiveDateTime"] = when
        else:
            res["_effectiveDateTime"] = _absent("unknown")
        dosage = {}
        text = ", ".join(x for x in (t.dose, t.frequency) if x)
        if text:
            dosage["text"] = text
        if t.frequency:
            dosage["timing"] = {"code": {"text": t.frequency}}
        if t.dose:
            dosage["doseAndRate"] = [{"type": {"text": t.dose}}]
        if t.route:
            dosage["route"] = {"text": t.route}
        if dosage:
            res["dosage"] = [dosage]
        if t.brand:
            res["note"] = [{"text": f"Nom commercial : {t.brand}"}]
        label = t.drug + (f" ({t.brand})" if t.brand else "")
        res["text"] = _text(f"<p>{_e(label)}{' ' + _e(text) if text else ''} — {TREATMENT_STATUS[status]}</p>")
        return self.add_entry(t, t.drug, res)

    def _latest_source_date(self, sources: list[Source]) -> str | None:
        dates = [d for s in sources if (d := _date(s.document_date or self.doc_dates.get(s.document)))]
        return max(dates) if dates else None


def _span(src: Source) -> list[dict]:
    ext = [{"url": "page", "valueInteger": src.page}, {"url": "start", "valueInteger": src.start},
           {"url": "end", "valueInteger": src.end}]
    if src.snippet:
        ext.append({"url": "snippet", "valueString": src.snippet})
    if src.document_date and _date(src.document_date):
        ext.append({"url": "documentDate", "valueDate": src.document_date})
    if src.ocr:
        ext.append({"url": "ocr", "valueBoolean": True})
    return ext


def _line(label: str, *details: str | None) -> str:
    return _e(label) + "".join(f" — {_e(d)}" for d in details if d)


def build_bundle(synthesis: Synthesis, preset: T.Preset, only_validated: bool = False,
                 timestamp: datetime | None = None) -> dict:
    """The IPS document Bundle of one synthesis, as FHIR JSON. Rejected entries are never exported;
    with `only_validated`, only entries a reviewer validated (or edited) are."""
    s = synthesis
    b = _Builder(s, preset, only_validated)
    b.add_patient()
    b.add_device()
    b.add_documents()

    def keep(entries):
        return [e for e in entries if exported(e, s, only_validated)]

    history = keep(s.history)
    problems = [h for h in history if h.kind == "medical" and h.clinical_status != "resolved"]
    past = [h for h in history if h.kind == "surgical" or (h.kind == "medical" and h.clinical_status == "resolved")]
    family = [h for h in history if h.kind == "family"]
    allergies, treatments = keep(s.allergies), keep(s.treatments)

    sections = []
    # Problems
    if s.history_status == "none_known" and not history:
        ref, fr = b.no_known("problems", "Condition")
        sections.append(b.section("problems", [ref], [_e(fr)]))
    else:
        refs = [b.condition(h) for h in problems]
        note = b.empty_note("problems", s.history_status, bool(s.history))
        if s.history_status == "known" and history and not problems:
            note = "Aucun problème actif relevé dans les documents (voir les antécédents)."
        sections.append(b.section("problems", refs, [_line(h.label, h.code, VERIFICATION_FR[verification(h, s)])
                                                     for h in problems], note))
    # Allergies
    if s.allergy_status == "none_known" and not allergies:
        ref, fr = b.no_known("allergies", "AllergyIntolerance")
        sections.append(b.section("allergies", [ref], [_e(fr)]))
    else:
        refs = [b.allergy(a) for a in allergies]
        lines = [_line(a.substance, a.reaction, "intolérance" if a.kind == "intolerance" else "allergie",
                       VERIFICATION_FR[verification(a, s)]) for a in allergies]
        sections.append(b.section("allergies", refs, lines, b.empty_note("allergies", s.allergy_status, bool(s.allergies))))
    # Medications
    if s.treatment_status == "none_known" and not treatments:
        ref, fr = b.no_known("medications", "MedicationStatement")
        sections.append(b.section("medications", [ref], [_e(fr)]))
    else:
        refs = [b.medication(t) for t in treatments]
        lines = [_line(t.drug + (f" ({t.brand})" if t.brand else ""), t.dose, t.frequency, t.route,
                       TREATMENT_STATUS["completed" if t.in_stay else t.status]) for t in treatments]
        sections.append(b.section("medications", refs, lines,
                                  b.empty_note("medications", s.treatment_status, bool(s.treatments))))
    if past:
        refs = [b.condition(h) for h in past]
        sections.append(b.section("past_illness", refs, [_line(h.label, h.date, "chirurgical" if h.kind == "surgical"
                                                               else "résolu") for h in past]))
    if family:
        refs = [b.family(h) for h in family]
        sections.append(b.section("family", refs, [_line(h.label, h.code) for h in family]))

    comp_url = _uid(s.dossier_id, "composition")
    composition = {
        "resourceType": "Composition",
        "id": comp_url.rsplit(":", 1)[1],
        "meta": {"profile": [T.IPS_PROFILES["Composition"]]},
        "language": preset.language,
        "text": _text(f"<p>Synthèse médicale du dossier {_e(s.dossier_id)} "
                      f"({'validée' if s.status == 'validated' else 'proposée, à valider'})</p>"),
        "identifier": {"system": T.DOSSIER_SYSTEM, "value": f"{s.dossier_id}/{s.generated_at.isoformat()}"},
        # A proposal is not a signed summary: `preliminary` until the file is validated as a whole.
        "status": "final" if s.status == "validated" else "preliminary",
        "type": _concept(T.LOINC, *T.PATIENT_SUMMARY),
        "subject": {"reference": b.patient},
        "date": b.recorded,
        "author": [{"reference": b.device}],
        "title": "Synthèse médicale",
        "section": sections,
    }
    ts = timestamp or datetime.now(timezone.utc)
    return _scrub({
        "resourceType": "Bundle",
        "id": _uid(s.dossier_id, "bundle", s.generated_at.isoformat()).rsplit(":", 1)[1],
        "meta": {"profile": [T.IPS_PROFILES["Bundle"]]},
        "language": preset.language,
        "identifier": {"system": T.URI_SYSTEM, "value": _uid(s.dossier_id, "bundle", s.generated_at.isoformat(),
                                                            preset.name, str(only_validated))},
        "type": "document",
        "timestamp": _instant(ts),
        "entry": [{"fullUrl": comp_url, "resource": composition}] + b.entries,
    })


def _scrub(value):
    """Control characters (a form feed in an OCR snippet) become spaces: FHIR strings may not hold them."""
    if isinstance(value, str):
        return _CONTROL.sub(" ", value)
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    return value


def parse_bundle(data: dict):
    """The bundle through the fhir.resources R4B models (pydantic): raises ValueError when it is not FHIR R4B,
    CouldNotRun when fhir.resources is not installed."""
    try:  # ~0.7 s to import: only the export pays for it
        from fhir.resources.R4B.bundle import Bundle
    except ImportError as e:
        raise CouldNotRun(f"fhir.resources is not installed ({e}): run ./install.sh") from e

    return Bundle.model_validate(data)
