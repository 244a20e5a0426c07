"""`synthese export --format fhir`: IPS document Bundles, both presets, checked offline against IPS 2.0.0.

Inputs: shipped sample dossiers run through the real pipeline (a copy), and hand-built synthese.json files
that cover every block status (known / none_known / unknown) and every review state (validated, edited,
proposed, refuted, rejected). Every bundle is parsed with the fhir.resources R4B models, passes the profile
check, and is read back by `read_back` below (written from the FHIR side, not from the builder) to compare
entries, statuses, empty reasons and sources with its synthese.json. Negative tests break one IPS rule at a
time and expect the check, and the export, to refuse the bundle.

Needs the IPS package in .deps/fhir (install.sh fetches it).
"""
from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

import cli
from extractor.errors import ExitCode
from extractor.export import terminology as T
from extractor.export.fhir import build_bundle, parse_bundle
from extractor.export.profile import PACKAGE_ENV, Profiles
from extractor.export.run import FHIR_NAME, export_tree
from extractor.write import write_synthesis
from models.synthesis import (AllergyEntry, DocumentInfo as Doc, HistoryEntry, Review, Source, Synthesis,
                              TreatmentEntry)

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples" / "dossiers"
# Samples that together hold every block status, kept to few OCR pages so the run stays short: all known
# with family history (P0001), surgeries and a scanned page (P0004), nothing said (P0005), all none_known (P0008).
SAMPLE_IDS = ["P0001", "P0004", "P0005", "P0008"]
XHTML = "{http://www.w3.org/1999/xhtml}"


@pytest.fixture(scope="module")
def profiles():
    return Profiles()


# --- reading a bundle back (the FHIR side only) ------------------------------------------------------

def _codes(concept: dict | None) -> set[tuple[str, str]]:
    return {(c.get("system"), c.get("code")) for c in (concept or {}).get("coding", [])}


def read_back(bundle: dict) -> dict:
    """What a FHIR consumer sees: per section, its entries (our id, resource) or its empty reason and the
    no-known codes; per entry, its sources from the Provenance that targets it."""
    parse_bundle(bundle)  # fhir.resources R4B must accept it
    by_url = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
    composition = bundle["entry"][0]["resource"]
    assert composition["resourceType"] == "Composition"
    sources: dict[str, list[tuple]] = {}
    reviewers: dict[str, str] = {}
    for res in by_url.values():
        if res["resourceType"] != "Provenance":
            continue
        target = res["target"][0]["reference"]
        spans = []
        for ent in res.get("entity", []):
            ext = {x["url"]: next(v for k, v in x.items() if k.startswith("value"))
                   for x in ent["extension"][0]["extension"]}
            doc = by_url[ent["what"]["reference"]]
            spans.append((doc["content"][0]["attachment"]["title"], ext["page"], ext["start"], ext["end"],
                          ext.get("snippet", "")))
        sources[target] = spans
        for x in res.get("extension", []):
            if x["url"] == T.REVIEW_EXTENSION:
                reviewers[target] = x["valueCode"]
    sections = {}
    for sec in composition["section"]:
        code = sec["code"]["coding"][0]["code"]
        ET.fromstring(sec["text"]["div"])  # well-formed XHTML
        assert sec["text"]["div"].startswith('<div xmlns="http://www.w3.org/1999/xhtml">')
        item = {"empty": None, "no_known": set(), "entries": {}, "text": sec["text"]["div"]}
        if "emptyReason" in sec:
            item["empty"] = sec["emptyReason"]["coding"][0]["code"]
        for ref in sec.get("entry", []):
            res = by_url[ref["reference"]]
            ids = [i["value"] for i in res.get("identifier", []) if i["system"] == T.ENTRY_SYSTEM]
            if not ids:  # the IPS "no known ..." statement
                concept = res.get("code") or res.get("medicationCodeableConcept")
                item["no_known"] |= {c for s, c in _codes(concept) if s == T.SNOMED}
                continue
            item["entries"][ids[0]] = {"resource": res, "sources": sources.get(ref["reference"]),
                                       "review": reviewers.get(ref["reference"])}
        sections[code] = item
    return sections


# --- what synthese.json says the bundle must hold (the contract's side only) ----------------------------

def _validated(entry, s: Synthesis) -> bool:
    if entry.review is not None:
        return entry.review.status in ("validated", "edited")
    return s.status == "validated" and not entry.added_after_validation


def expected(s: Synthesis, only_validated: bool) -> dict:
    """Section code -> ids of the entries it must hold, or its empty reason / no-known code."""
    def keep(entries):
        return [e for e in entries if not (e.review and e.review.status == "rejected")
                and (_validated(e, s) or not only_validated)]

    hist, allergies, treatments = keep(s.history), keep(s.allergies), keep(s.treatments)
    problems = [h.id for h in hist if h.kind == "medical" and h.clinical_status != "resolved"]
    past = [h.id for h in hist if h.kind == "surgical" or h.clinical_status == "resolved" and h.kind == "medical"]
    family = [h.id for h in hist if h.kind == "family"]
    out = {}
    for code, status, ids, no_known in (("11450-4", s.history_status, problems, "160245001"),
                                        ("48765-2", s.allergy_status, [a.id for a in allergies], "716186003"),
                                        ("10160-0", s.treatment_status, [t.id for t in treatments], "787481004")):
        if status == "none_known" and not ids:
            out[code] = {"no_known": no_known}
        elif ids:
            out[code] = {"ids": set(ids)}
        else:
            out[code] = {"empty": "unavailable"}
    if past:
        out["11348-0"] = {"ids": set(past)}
    if family:
        out["10157-6"] = {"ids": set(family)}
    return out


def assert_round_trip(s: Synthesis, bundle: dict, preset: T.Preset, only_validated: bool = False) -> None:
    got = read_back(bundle)
    want = expected(s, only_validated)
    assert set(got) == set(want), (set(got), set(want))
    for code, w in want.items():
        g = got[code]
        if "ids" in w:
            assert set(g["entries"]) == w["ids"] and g["empty"] is None and not g["no_known"], code
        elif "no_known" in w:
            assert g["no_known"] == {w["no_known"]} and g["empty"] is None and not g["entries"], code
        else:
            assert g["empty"] == w["empty"] and not g["entries"] and not g["no_known"], code
            assert "Information non disponible" in g["text"] or "Aucun" in g["text"]
    entries = {e.id: e for e in s.history + s.allergies + s.treatments}
    for code, g in got.items():
        for eid, item in g["entries"].items():
            e, res = entries[eid], item["resource"]
            # every source survives: document, page, span, snippet
            assert item["sources"] == [(x.document, x.page, x.start, x.end, x.snippet) for x in e.sources], eid
            assert item["review"] == (e.review.status if e.review and e.review.status in ("validated", "edited") else None)
            ver = ("refuted" if getattr(e, "verification", None) == "refuted"
                   else "confirmed" if _validated(e, s) or getattr(e, "verification", None) == "confirmed"
                   else "unconfirmed")
            if isinstance(e, HistoryEntry) and e.kind != "family":
                assert res["resourceType"] == "Condition"
                assert res["code"]["text"] == e.label
                assert _codes(res["code"]) == ({(preset.cim10, e.code)} if e.code else set())
                assert res["verificationStatus"]["coding"][0]["code"] == ver
                assert res.get("clinicalStatus", {}).get("coding", [{}])[0].get("code") == e.clinical_status
                assert ("category" in res) == (e.kind == "surgical")
                assert res.get("onsetDateTime") == e.date
            elif isinstance(e, HistoryEntry):
                assert res["resourceType"] == "FamilyMemberHistory"
                assert res["condition"][0]["code"]["text"] == e.label
            elif isinstance(e, AllergyEntry):
                assert res["resourceType"] == "AllergyIntolerance"
                assert res["code"]["text"] == e.substance and res["type"] == e.kind
                assert _codes(res["code"]) == ({(preset.atc, e.code)} if e.code else set())
                assert res["verificationStatus"]["coding"][0]["code"] == ver
                assert res["clinicalStatus"]["coding"][0]["code"] == ("inactive" if ver == "refuted" else "active")
                manifest = [m["text"] for r in res.get("reaction", []) for m in r["manifestation"]]
                assert manifest == ([e.reaction] if e.reaction else [])
            else:
                assert res["resourceType"] == "MedicationStatement"
                assert res["medicationCodeableConcept"]["text"] == e.drug
                assert res["status"] == ("completed" if e.in_stay else e.status)
                assert ("category" in res) == e.in_stay
                codes = _codes(res["medicationCodeableConcept"])
                assert ((preset.atc, e.atc) in codes) == bool(e.atc)
                if preset.substance and not e.is_class and preset.substance_code(e.drug):
                    assert (preset.substance, preset.substance_code(e.drug)) in codes
                assert not any(sys_ == T.SNOMED for sys_, _ in codes)
                effective = [k for k in res if k.startswith(("effective", "_effective"))]
                assert len(effective) == 1, res  # IPS: effective[x] always, exactly once
                if e.start or e.end:
                    assert res["effectivePeriod"] == {k: v for k, v in (("start", e.start), ("end", e.end)) if v}
                dosage = (res.get("dosage") or [{}])[0]
                assert dosage.get("route", {}).get("text") == e.route
                assert dosage.get("timing", {}).get("code", {}).get("text") == e.frequency
                if e.dose:
                    assert e.dose in dosage["text"]


# --- hand-built dossiers ------------------------------------------------------------------------------

def _src(doc: str, page: int, start: int, snippet: str, date: str | None = "2024-03-02") -> Source:
    return Source(document=doc, page=page, start=start, end=start + len(snippet), snippet=snippet, document_date=date)


def _documents() -> list[Doc]:
    return [Doc(path="cr_hospit.pdf", sha256="a" * 64, kind="text_pdf", pages=2, doc_type="compte_rendu", date="2024-03-02"),
            Doc(path="ordonnance.jpg", sha256="b" * 64, kind="image", pages=1, doc_type="ordonnance", date=None)]


def rich_synthesis() -> Synthesis:
    """Every block known; entries validated, edited, proposed, refuted and rejected; in-stay and stopped drugs."""
    ok = Review(status="validated", by="dr.martin")
    return Synthesis(
        dossier_id="H0001", generated_at=datetime(2026, 1, 5, 10, 0, tzinfo=timezone.utc), extractor_version="0.1.0",
        documents=_documents(),
        history=[
            HistoryEntry(id="h-hta", label="hypertension artérielle", code="I10", sources=[_src("cr_hospit.pdf", 1, 10, "HTA")], review=ok),
            HistoryEntry(id="h-diab", label="diabète de type 2", code="E11.9", clinical_status="active",
                         sources=[_src("cr_hospit.pdf", 1, 40, "diabète de type 2"), _src("ordonnance.jpg", 1, 0, "DT2", None)]),
            HistoryEntry(id="h-tub", label="tuberculose pulmonaire", code="A15.0", clinical_status="resolved", date="1998",
                         sources=[_src("cr_hospit.pdf", 1, 80, "tuberculose en 1998, guérie")]),
            HistoryEntry(id="h-app", label="appendicectomie", kind="surgical", date="2003-06",
                         sources=[_src("cr_hospit.pdf", 1, 120, "appendicectomie (2003)")], review=Review(status="edited", by="dr.b")),
            HistoryEntry(id="h-fam", label="cancer du sein", code="C50.9", kind="family",
                         sources=[_src("cr_hospit.pdf", 2, 5, "mère : cancer du sein")]),
            HistoryEntry(id="h-rej", label="asthme", code="J45.9", sources=[_src("cr_hospit.pdf", 2, 60, "asthme ?")],
                         review=Review(status="rejected", by="dr.martin")),
        ],
        allergies=[
            AllergyEntry(id="a-pen", substance="pénicillines", code="J01C", reaction="urticaire", members=["amoxicilline"],
                         sources=[_src("cr_hospit.pdf", 1, 200, "Allergie : pénicillines (amoxicilline) -> urticaire")], review=ok),
            AllergyEntry(id="a-lac", substance="lactose", kind="intolerance", sources=[_src("cr_hospit.pdf", 1, 260, "intolérance au lactose")]),
            AllergyEntry(id="a-asp", substance="acide acétylsalicylique", code="B01AC06", verification="refuted",
                         sources=[_src("cr_hospit.pdf", 2, 90, "allergie à l'aspirine infirmée (test de provocation)")]),
            AllergyEntry(id="a-rej", substance="iode", sources=[_src("cr_hospit.pdf", 2, 130, "iode ?")], review=Review(status="rejected")),
        ],
        treatments=[
            TreatmentEntry(id="t-bis", drug="bisoprolol", brand="Cardensiel", atc="C07AB07", dose="2,5 mg", frequency="1 cp le matin",
                           route="orale", sources=[_src("ordonnance.jpg", 1, 30, "Cardensiel 2,5 mg 1 cp le matin", None)], review=ok),
            TreatmentEntry(id="t-met", drug="metformine", atc="A10BA02", dose="850 mg", frequency="matin et soir",
                           start="2019-04", sources=[_src("cr_hospit.pdf", 1, 300, "metformine 850 mg matin et soir")]),
            TreatmentEntry(id="t-ator", drug="atorvastatine", atc="C10AA05", status="stopped", end="2023-11-20",
                           stop_reason="myalgies", sources=[_src("cr_hospit.pdf", 2, 150, "arrêt de l'atorvastatine (myalgies)")]),
            TreatmentEntry(id="t-cef", drug="céfazoline", atc="J01DB04", in_stay=True, status="stopped", route="intraveineuse",
                           sources=[_src("cr_hospit.pdf", 2, 200, "céfazoline IV en per-opératoire")]),
            TreatmentEntry(id="t-bb", drug="bêtabloquant", atc="C07A", is_class=True,
                           sources=[_src("ordonnance.jpg", 1, 90, "sous bêtabloquant", None)]),
            TreatmentEntry(id="t-undated", drug="paracétamol", atc="N02BE01", frequency="si douleur",
                           sources=[_src("ordonnance.jpg", 1, 120, "paracétamol si douleur", None)]),
        ],
        history_status="known", allergy_status="known", treatment_status="known",
    )


def empty_synthesis(status: str, dossier_id: str) -> Synthesis:
    """No entries; the three blocks `none_known` or `unknown`."""
    return Synthesis(dossier_id=dossier_id, generated_at=datetime(2026, 1, 5, tzinfo=timezone.utc), extractor_version="0.1.0",
                     documents=_documents()[:1], history_status=status, allergy_status=status, treatment_status=status)


def mixed_synthesis() -> Synthesis:
    """Validated as a whole (entries without their own review count as validated, later additions do not);
    history known with no current problem, allergies none_known, treatments unknown."""
    return Synthesis(
        dossier_id="H0004", generated_at=datetime(2026, 1, 5, tzinfo=timezone.utc), extractor_version="0.1.0",
        status="validated", documents=_documents()[:1],
        history=[HistoryEntry(id="h-chole", label="cholécystectomie", code="Z90.4", kind="surgical",
                              sources=[_src("cr_hospit.pdf", 1, 5, "cholécystectomie")]),
                 HistoryEntry(id="h-new", label="goutte", code="M10.9", kind="medical", added_after_validation=True,
                              sources=[_src("cr_hospit.pdf", 1, 50, "goutte")])],
        history_status="known", allergy_status="none_known", treatment_status="unknown",
    )


HAND_BUILT = [rich_synthesis, lambda: empty_synthesis("none_known", "H0002"),
              lambda: empty_synthesis("unknown", "H0003"), mixed_synthesis]


@pytest.mark.parametrize("preset_name", T.PRESET_NAMES)
@pytest.mark.parametrize("only_validated", [False, True])
@pytest.mark.parametrize("make", HAND_BUILT, ids=["rich", "none_known", "unknown", "validated_file"])
def test_hand_built_bundles_pass_the_check_and_round_trip(make, only_validated, preset_name, profiles):
    s = make()
    preset = T.preset(preset_name)
    bundle = build_bundle(s, preset, only_validated)
    result = profiles.check_bundle(bundle)
    assert result.ok, [str(v) for v in result.errors]
    assert not result.unchecked, result.unchecked  # every invariant was evaluated
    assert result.invariants_evaluated > 50
    assert_round_trip(s, bundle, preset, only_validated)
    # what the models would write is what the builder wrote (so export writes the checked dict as is)
    assert json.loads(parse_bundle(bundle).model_dump_json()) == bundle


def test_rich_dossier_details(profiles):
    s = rich_synthesis()
    fr = build_bundle(s, T.preset("fr"))
    ips = build_bundle(s, T.preset("ips"))
    res = {i["value"]: e["resource"] for e in fr["entry"] if isinstance(e["resource"].get("identifier"), list)
           for i in e["resource"]["identifier"] if i["system"] == T.ENTRY_SYSTEM}
    # rejected entries are never exported, under any option
    assert "h-rej" not in res and "a-rej" not in res
    assert "asthme" not in json.dumps(fr, ensure_ascii=False) and '"iode"' not in json.dumps(fr, ensure_ascii=False)
    # in-stay: completed, inpatient category; the stated period or the document date is effective[x]
    assert res["t-cef"]["status"] == "completed" and res["t-cef"]["category"]["coding"][0]["code"] == "inpatient"
    assert res["t-ator"]["effectivePeriod"] == {"end": "2023-11-20"} and res["t-ator"]["statusReason"][0]["text"] == "myalgies"
    assert res["t-cef"]["effectiveDateTime"] == "2024-03-02"  # its source document's date
    assert res["t-undated"]["_effectiveDateTime"]["extension"][0]["valueCode"] == "unknown"
    # the French preset adds the BDPM substance code from rules/bdpm_substances.tsv; a class gets none
    subs = {c["code"] for c in res["t-bis"]["medicationCodeableConcept"]["coding"] if c["system"] == T.preset("fr").substance}
    assert subs == {T.preset("fr").substance_codes["bisoprolol"]}
    assert len(res["t-bb"]["medicationCodeableConcept"]["coding"]) == 1
    # each preset's URIs, and only its own
    text_fr, text_ips = json.dumps(fr), json.dumps(ips)
    assert "smt.esante.gouv.fr/terminologie-cim-10" in text_fr and "hl7.org/fhir/sid/icd-10" not in text_fr
    assert "hl7.org/fhir/sid/icd-10" in text_ips and "www.whocc.no/atc" in text_ips and "esante" not in text_ips
    # the document: IPS 60591-5, preliminary while it is a proposal, one DocumentReference per document
    comp = fr["entry"][0]["resource"]
    assert comp["type"]["coding"][0]["code"] == "60591-5" and comp["status"] == "preliminary"
    docs = [e["resource"] for e in fr["entry"] if e["resource"]["resourceType"] == "DocumentReference"]
    assert sorted(d["content"][0]["attachment"]["title"] for d in docs) == ["cr_hospit.pdf", "ordonnance.jpg"]
    # narratives in French, escaped (a source's "->" and brackets stay text)
    allergies = next(sec for sec in comp["section"] if sec["code"]["coding"][0]["code"] == "48765-2")
    div = ET.fromstring(allergies["text"]["div"])
    assert div.tag == XHTML + "div" and "réfuté" in "".join(div.itertext())


def test_free_text_is_escaped_and_control_characters_scrubbed(profiles):
    s = empty_synthesis("unknown", "H0005")
    s.allergy_status = "known"
    s.allergies = [AllergyEntry(id="a-x", substance="<b>produit & co</b>", reaction="œdème",
                                sources=[_src("cr_hospit.pdf", 1, 3, "allergie\x0cproduit <b>&")])]
    bundle = build_bundle(s, T.preset("ips"))
    assert profiles.check_bundle(bundle).ok
    sec = read_back(bundle)["48765-2"]
    assert sec["entries"]["a-x"]["sources"][0][4] == "allergie produit <b>&"
    assert "&lt;b&gt;produit &amp; co&lt;/b&gt;" in sec["text"]


# --- negative: the check catches what fhir.resources lets through ----------------------------------------

def _section(bundle: dict, code: str) -> dict:
    return next(s for s in bundle["entry"][0]["resource"]["section"] if s["code"]["coding"][0]["code"] == code)


def test_section_without_entry_or_empty_reason_is_caught(profiles):
    bundle = build_bundle(empty_synthesis("unknown", "N0001"), T.preset("ips"))
    del _section(bundle, "48765-2")["emptyReason"]
    parse_bundle(bundle)  # fhir.resources accepts it...
    result = profiles.check_bundle(bundle)  # ...IPS does not
    assert [(v.rule, v.element) for v in result.errors] == [("ips-comp-1", "Composition.section:sectionAllergies")]


def test_medication_statement_without_effective_is_caught(profiles):
    bundle = build_bundle(rich_synthesis(), T.preset("fr"))
    ms = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "MedicationStatement"]
    for key in [k for k in ms[0] if k.startswith(("effective", "_effective"))]:
        del ms[0][key]
    parse_bundle(bundle)
    result = profiles.check_bundle(bundle)
    assert [(v.rule, v.element) for v in result.errors] == [("min", "MedicationStatement.effective[x]")]


def test_the_ips_package_examples_pass_the_check(profiles):
    """No false alarm: the five document Bundles HL7 ships with IPS 2.0.0 pass (Observations that claim
    none of the several IPS Observation profiles are reported as unchecked, never as errors)."""
    examples = sorted((profiles.directory / "example").glob("Bundle-*.json"))
    documents = [json.loads(p.read_text()) for p in examples]
    documents = [b for b in documents if b.get("type") == "document"]
    assert len(documents) == 5
    for b in documents:
        result = profiles.check_bundle(b)
        assert result.ok, [str(v) for v in result.errors]
        assert all("Observation" in u for u in result.unchecked), result.unchecked


def test_other_broken_rules_are_caught(profiles):
    bundle = build_bundle(rich_synthesis(), T.preset("ips"))
    broken = copy.deepcopy(bundle)
    broken["entry"][0]["resource"]["type"]["coding"][0]["code"] = "34133-9"  # not a patient summary
    _section(broken, "10160-0")["emptyReason"] = {"coding": [{"system": T.LIST_EMPTY_REASON, "code": "unavailable"}]}  # cmp-2
    allergy = next(e["resource"] for e in broken["entry"] if e["resource"]["resourceType"] == "AllergyIntolerance")
    del allergy["clinicalStatus"]  # ait-1
    broken["entry"].append(copy.deepcopy(broken["entry"][0]))  # bdl-ips-1: a second Composition
    rules = {v.rule for v in profiles.check_bundle(broken).errors}
    assert {"pattern", "cmp-2", "ait-1", "bdl-ips-1"} <= rules


def test_a_failing_bundle_is_not_written_and_the_exit_code_says_so(tmp_path, monkeypatch, profiles):
    for make in (rich_synthesis, lambda: empty_synthesis("unknown", "H0003")):
        s = make()
        (tmp_path / s.dossier_id).mkdir()
        write_synthesis(tmp_path / s.dossier_id, s)
    import extractor.export.run as run_mod

    real = run_mod.build_bundle

    def broken(s, preset, only_validated=False):
        b = real(s, preset, only_validated)
        if s.dossier_id == "H0003":
            del _section(b, "11450-4")["emptyReason"]
        return b

    monkeypatch.setattr(run_mod, "build_bundle", broken)
    rep = export_tree(tmp_path, "ips", profiles=profiles)
    by_id = {d.dossier_id: d for d in rep.dossiers}
    assert by_id["H0003"].warning == "fhir_check_failed" and by_id["H0003"].written is None
    assert not (tmp_path / "H0003" / FHIR_NAME).exists()
    assert by_id["H0001"].written == tmp_path / "H0001" / FHIR_NAME and by_id["H0001"].warning is None
    assert rep.exit_code == ExitCode.DOCUMENTS_FAILED


# --- the command ----------------------------------------------------------------------------------------

def test_cli_exports_beside_synthese_json_and_under_out(tmp_path):
    root = tmp_path / "root"
    for make in HAND_BUILT:
        s = make()
        (root / "site" / s.dossier_id).mkdir(parents=True)
        write_synthesis(root / "site" / s.dossier_id, s)
    (root / "site" / "BAD").mkdir()
    (root / "site" / "BAD" / "synthese.json").write_text("{not json")
    runner = CliRunner()
    r = runner.invoke(cli.app, ["export", str(root), "--format", "fhir", "--preset", "fr"])
    assert r.exit_code == 1, r.output  # the damaged synthese.json is a warning, the others are written
    assert "unreadable_synthesis" in r.output
    for make in HAND_BUILT:
        s = make()
        written = root / "site" / s.dossier_id / FHIR_NAME
        bundle = json.loads(written.read_text())
        assert_round_trip(s, bundle, T.preset("fr"))
        assert written.stat().st_mode & 0o777 == 0o640
    assert not list(root.rglob(".synthese-*.tmp"))  # atomic writes leave no temporary file
    shutil.rmtree(root / "site" / "BAD")
    out = tmp_path / "out"
    r = runner.invoke(cli.app, ["export", str(root), "--out", str(out), "--only-validated"])
    assert r.exit_code == 0, r.output
    s = rich_synthesis()
    assert_round_trip(s, json.loads((out / "site" / "H0001" / FHIR_NAME).read_text()), T.preset("ips"), only_validated=True)
    # --check writes nothing and says ok
    target = root / "site" / "H0001" / FHIR_NAME
    target.unlink()
    r = runner.invoke(cli.app, ["export", str(root), "--check"])
    assert r.exit_code == 0 and not target.exists() and "checked: ok" in r.output
    r = runner.invoke(cli.app, ["export", str(root), "--preset", "xx"])
    assert r.exit_code == 2
    r = runner.invoke(cli.app, ["export", str(root), "--format", "cda"])
    assert r.exit_code == 2
    r = runner.invoke(cli.app, ["export", str(tmp_path / "no-such-root")])
    assert r.exit_code == 2 and "not a folder" in r.output


def test_missing_ips_package_exits_3(tmp_path, monkeypatch):
    s = rich_synthesis()
    (tmp_path / s.dossier_id).mkdir()
    write_synthesis(tmp_path / s.dossier_id, s)
    monkeypatch.setenv(PACKAGE_ENV, str(tmp_path / "nowhere"))
    r = CliRunner().invoke(cli.app, ["export", str(tmp_path)])
    assert r.exit_code == 3 and "install.sh" in r.output
    assert not (tmp_path / s.dossier_id / FHIR_NAME).exists()


def test_run_does_not_import_the_export_dependencies():
    code = ("import sys, cli, extractor.pipeline, extractor.batch.runner; "
            "print(sorted(m for m in sys.modules if m.startswith(('fhir', 'fhirpathpy'))))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"


# --- the shipped samples through the real pipeline ----------------------------------------------------

@pytest.mark.slow
def test_shipped_samples_export_with_both_presets(tmp_path, profiles):
    root = tmp_path / "dossiers"
    root.mkdir()
    for did in SAMPLE_IDS:
        shutil.copytree(SAMPLES / did, root / did)
    args = [sys.executable, "cli.py", "run", str(root), "--no-progress"]
    for did in SAMPLE_IDS:
        args += ["--only", did]
    proc = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    syntheses = {did: Synthesis.model_validate_json((root / did / "synthese.json").read_text()) for did in SAMPLE_IDS}
    statuses = {(s.history_status, s.allergy_status, s.treatment_status) for s in syntheses.values()}
    assert {"known", "none_known", "unknown"} <= {x for t in statuses for x in t}
    for preset_name in T.PRESET_NAMES:
        out = tmp_path / preset_name
        rep = export_tree(root, preset_name, out, profiles=profiles)
        assert rep.exit_code == ExitCode.OK, [(d.dossier, d.warning, d.message) for d in rep.dossiers]
        for did, s in syntheses.items():
            bundle = json.loads((out / did / FHIR_NAME).read_text())
            result = profiles.check_bundle(bundle)
            assert result.ok and not result.unchecked, (did, [str(v) for v in result.errors], result.unchecked)
            assert_round_trip(s, bundle, T.preset(preset_name))


def test_family_history_names_its_relative(profiles):
    s = Synthesis(dossier_id="PF", generated_at=datetime(2024, 3, 2, tzinfo=timezone.utc), extractor_version="0.2.0",
                  history=[HistoryEntry(id="h1", label="diabète de type 2", code="E11", kind="family", relative="mère"),
                           HistoryEntry(id="h2", label="asthme", code="J45", kind="family")],
                  history_status="known")
    bundle = build_bundle(s, T.preset("ips"))
    fam = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "FamilyMemberHistory"]
    assert sorted(f["relationship"].get("text", "") for f in fam) == ["family member", "mère"]
    assert profiles.check_bundle(bundle).ok
