"""Treatments as clinicians write them (issue 11), as French sentences a clinician can review.

Markup as in test_mentions: `<ent attr=value ...>text</ent>` marks where a treatment mention must be found and
what it must say. Each rule has a positive sentence and a negative one; consolidation rules are checked on
the entries a whole text gives.
"""
from __future__ import annotations

import pytest

from extractor.clinical.consolidate import consolidate
from extractor.clinical.lexicon import fuzzy_drug
from models.document import DocumentRecord, Page
from helpers_clinical import check, mentions_of


def treatments(text: str, **kw):
    return [m for m in mentions_of(text, **kw) if m.category == "treatment"]


def entries(text: str):
    rec = DocumentRecord(path="d.pdf", sha256="0", size=1, date="2024-01-01",
                         pages=[Page(number=1, text=text, source="text_layer")], doc_type="compte_rendu")
    from extractor.clinical.mentions import extract_mentions
    return consolidate("P1", [rec], {"d.pdf": extract_mentions(rec)}).treatments


# 1. Drugs in prose: taken or only discussed -------------------------------------------------------------------

@pytest.mark.parametrize("marked", [
    "Patiente hypertendue sous <ent category=treatment label=amlodipine status=active>amlodipine</ent> depuis 2015.",
    "Il est traité au long cours par <ent label=colchicine>colchicine</ent>, <ent label=\"acide acétylsalicylique\">aspirine</ent> "
    "et <ent label=prednisone dose=\"10 mg/j\">prednisone</ent> à faible dose (10 mg/j).",
    "La patiente a été mise sous <ent label=\"valproate de sodium\" dose=\"1000mg/j\">valproate de sodium</ent> à la dose de 1000mg/jour.",
    "Le traitement d'entretien associe du <ent label=furosémide route=\"per os\">furosémide</ent> per os, du "
    "<ent label=périndopril>périndopril</ent> et de l'<ent label=acénocoumarol>acénocoumarol</ent>.",
    "L'<ent label=\"acide valproïque\">acide valproïque</ent> a été instauré en remplacement.",
    "Devant la récidive, relais par <ent label=\"acide zolédronique\" status=active>acide zolédronique</ent>.",
    "Remise sous le même protocole de chimiothérapie avec relais par <ent label=\"acide zolédronique\">acide zolédronique</ent>.",
    "L'hyperuricémie est traitée par <ent label=allopurinol dose=\"200 mg/j\">allopurinol</ent> 200 mg/jour.",
])
def test_drug_taken_in_prose(marked):
    check(marked)


@pytest.mark.parametrize("text", [
    "Le germe présentait une résistance à l'amoxicilline et à la ticarcilline.",
    "Le traitement par azathioprine était refusé par la patiente.",
    "Discuter l'introduction d'amlodipine avec le cardiologue.",
    "La souche était sensible aux antibiotiques suivants : amoxicilline, céfotaxime, gentamicine.",
    "Le dosage de la digoxine était normal.",
])
def test_drug_only_discussed_is_not_a_treatment(text):
    assert not treatments(text)


# 2. Status at the end of the text, in-stay drugs, start dates ------------------------------------------------

def test_in_stay_drugs_are_never_active():
    text = ("L'induction de l'anesthésie générale était démarrée par du fentanyl (3µg/kg) et de l'étomidate (0,2mg/kg). "
            "Une dose de 2 mg de midazolam et 2 g de céfazoline étaient administrés.")
    found = {m.label: m for m in treatments(text)}
    assert set(found) >= {"fentanyl", "étomidate", "midazolam", "céfazoline"}
    assert all(m.in_stay and m.status == "stopped" for m in found.values())
    assert found["midazolam"].dose == "2 mg" and found["céfazoline"].dose == "2 g"


def test_home_treatment_is_not_in_stay():
    (m,) = treatments("Patient diabétique sous metformine 850 mg depuis 2012.")
    assert not m.in_stay and m.status == "active" and m.start_date == "2012"


def test_completed_course_is_stopped_but_a_course_that_goes_on_is_not():
    (m,) = treatments("La patiente a été traitée par cabergoline 0,5 mg par semaine pendant 12 mois.")
    assert m.status == "stopped" and m.stop_reason == "traitement terminé"
    (m,) = treatments("Elle a été traitée par prednisone 0.7 mg/kg/j pendant six semaines suivie d'une décroissance progressive.")
    assert m.status == "active"


def test_patient_death_stops_everything_but_not_a_relatives_death():
    (m,) = treatments("Patiente hypertendue sous ramipril. L'évolution était marquée par le décès de la patiente.")
    assert m.status == "stopped" and m.stop_reason == "décès"
    (m,) = treatments("Patiente hypertendue sous ramipril. Père décédé d'un infarctus à 60 ans.")
    assert m.status == "active"


def test_stop_cue_in_an_earlier_clause_does_not_reach_the_next_drug():
    found = {m.label: m for m in treatments(
        "Le valproate de sodium a été arrêté après une année, alors que la benzathine benzylpénicilline est maintenue.")}
    assert found["valproate de sodium"].status == "stopped"
    assert found["benzathine benzylpénicilline"].status == "active"


def test_stop_of_every_treatment_and_a_regimen_of_the_past():
    found = {m.label: m for m in treatments(
        "Elle était sous halopéridol 20 mg et chlorpromazine 400 mg. La conduite a été l'arrêt de tous les traitements antérieurs.")}
    assert {m.status for m in found.values()} == {"stopped"}
    found = {m.label: m for m in treatments(
        "Épilepsie initialement traitée par du valproate de sodium, puis la carbamazépine. Depuis deux ans, l'enfant est sous phénobarbital.")}
    assert found["carbamazépine"].status == "stopped" and found["phénobarbital"].status == "active"


def test_drug_left_out_of_the_last_regimen_was_replaced():
    es = {e.drug: e for e in entries(
        "Elle a été mise sous traitement comportant clopidogrel, bisoprolol, ramipril et atorvastatine. "
        "À la sortie, elle reste sous traitement associant atorvastatine, aspirine et amlodipine à 5 mg/j.")}
    assert es["clopidogrel"].status == "stopped" and es["atorvastatine"].status == "active"
    assert es["amlodipine"].dose == "5 mg/j"


def test_in_stay_then_discharge_is_active():
    es = {e.drug: e for e in entries(
        "Aux urgences, furosémide 40 mg IV. Le patient quitte le service sous traitement médical suivant : "
        "furosémide 40 mg/j, ramipril 5 mg/j et bisoprolol 5 mg/j.")}
    assert es["furosémide"].status == "active" and not es["furosémide"].in_stay


def test_in_stay_antibiotic_is_marked_in_stay():
    (e,) = entries("Une antibiothérapie probabiliste par ceftriaxone 2 g/j a été instaurée.")
    assert e.in_stay and e.status == "stopped"


# 3. Classes ----------------------------------------------------------------------------------------------------

def test_class_written_alone_is_a_class_entry():
    (e,) = entries("Diabète de type 2 sous antidiabétiques oraux.")
    assert e.is_class and e.atc == "A10B" and e.status == "active"


def test_class_is_linked_to_the_named_drug_of_that_class():
    es = entries("Il quitte le service sous bêtabloquant (Sectral 200 mg/j) et IEC (Triatec 5 mg/j).")
    assert sorted(e.drug for e in es) == ["acébutolol", "ramipril"]
    assert all(not e.is_class and len(e.sources) == 2 for e in es)


def test_longer_class_name_wins_over_a_brand_inside_it():
    (m,) = treatments("Des collyres mouillants ont été prescrits.")
    assert m.label == "larmes artificielles" and m.is_class


def test_class_only_named_as_a_hypothesis_is_not_a_treatment():
    assert not [e for e in entries("Il n'avait pas reçu de traitement corticoïde ou immunosuppresseur.")]


# 4. Combinations -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("written, atc", [
    ("amoxicilline + acide clavulanique", "J01CR02"),
    ("amoxicilline acide clavulanique", "J01CR02"),
    ("fluticasone/formotérol", "R03AK11"),
    ("Cotrimoxazole", "J01EE01"),
    ("TDF-3TC-EFV", "J05AR11"),
])
def test_fixed_combination_is_one_treatment(written, atc):
    (m,) = treatments(f"Patient mis sous {written} depuis un an.")
    assert m.code == atc and " + " in m.label


def test_a_written_list_is_not_a_combination():
    found = treatments("Le traitement anti-tuberculeux associant isoniazide, rifampicine, éthambutol et pyrazinamide a été démarré.")
    assert sorted(m.label for m in found) == ["isoniazide", "pyrazinamide", "rifampicine", "éthambutol"]


def test_combination_in_an_allergy_is_one_allergen():
    found = mentions_of("Allergie à l'Augmentin (urticaire).")
    assert [(m.label, m.code) for m in found if m.category == "allergy"] == [("acide clavulanique + amoxicilline", "J01CR02")]
    assert not [m for m in found if m.category == "treatment"]


def test_tuberculosis_regimen_code_is_one_treatment_per_drug():
    found = treatments("Spondylodiscite tuberculeuse mise sous 2SRHZ/7RH.")
    assert sorted(m.label for m in found) == ["isoniazide", "pyrazinamide", "rifampicine", "streptomycine"]


# 5. Misspellings ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("written, substance", [
    ("glyclazide", "gliclazide"), ("amlidipine", "amlodipine"), ("gentamycine", "gentamicine"),
    ("Amoxcilline", "amoxicilline"), ("Ethombitol", "éthambutol"),
])
def test_misspelt_drug_is_matched_with_lower_confidence(written, substance):
    (m,) = treatments(f"Le patient était sous {written} depuis deux ans.")
    assert m.label == substance and m.confidence < 0.75


@pytest.mark.parametrize("word", ["prednisolne", "hypertension", "benzathine", "concentration", "flgyl", "phosphatase"])
def test_fuzzy_guards(word):
    # two close substances (prednisone / prednisolone), words of other names, short or common words
    assert fuzzy_drug(word) is None


# 6. Non-drugs and posology in prose -----------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "Biologie : urée 7,2 mmol/L, créatinine 88 µmol/L.",
    "Mode de vie : Alcool : 1 verre/j.",
    "Saturation à 93 % sous oxygène 2 L/min.",
    "Contraception par dispositif intra-utérin au cuivre.",
])
def test_non_drugs_are_not_treatments(text):
    assert not treatments(text)


@pytest.mark.parametrize("marked", [
    "Mise sous <ent label=amoxicilline dose=\"1 g\" frequency=\"3/j\">amoxicilline</ent> 1 g 3/j.",
    "Traitement par <ent label=lévofloxacine dose=\"500 mg\" frequency=\"deux fois par jour\">lévofloxacine</ent> 500 mg deux fois par jour.",
    "Traité par <ent label=ceftriaxone dose=\"2 g/j\">ceftriaxone</ent> à la dose de 2 g par jour.",
    "Sous <ent label=phénobarbital dose=\"5 mg/kg/j\">phénobarbital</ent> à la dose d'entretien de 5 mg/kg/j.",
    "Supplémentation en <ent label=\"vitamine D\" dose=\"5000 UI/j\">vitamine D</ent> (5000 U.I par jour).",
    "Elle prend du <ent label=ramipril dose=\"cinq milligrammes\">ramipril</ent> cinq milligrammes le matin.",
    "Sous <ent label=salbutamol route=inhalé>salbutamol</ent> 2 bouffées matin et soir.",
])
def test_posology_in_prose(marked):
    check(marked)


# Consolidation of a text's treatments -----------------------------------------------------------------------

def test_combination_absorbs_its_substances_written_apart():
    es = {e.drug: e for e in entries("Une triple antibiothérapie a été instaurée, associant rifampicine, isoniazide "
                                     "(Rifinah 300 mg) et pyrazinamide (500 mg).")}
    assert sorted(es) == ["isoniazide + rifampicine", "pyrazinamide"]
    assert es["isoniazide + rifampicine"].atc == "J04AM02"


def test_one_substance_is_one_entry_whatever_its_atc():
    es = entries("Aux urgences, Aspégic 250 mg en IV. Il quitte le service sous aspirine (Kardégic 75 mg/j), "
                 "clopidogrel (Plavix 75 mg/j) et ramipril 5 mg/j.")
    aspirin = [e for e in es if e.drug == "acide acétylsalicylique"]
    assert len(aspirin) == 1 and aspirin[0].status == "active" and aspirin[0].dose == "75 mg/j"


def test_a_cue_covers_a_list_joined_by_avec_and_commas():
    # regression: the allergy list separator once shadowed the treatment one, and the list stopped at "avec"
    found = mentions_of("La patiente a été mise sous traitement associant aspirine avec clopidogrel, "
                        "bétabloquant et une statine.")
    drugs = sorted(m.label for m in found if m.category == "treatment")
    assert drugs == ["acide acétylsalicylique", "bêtabloquants", "clopidogrel", "statines"]
