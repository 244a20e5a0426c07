"""Clinical rules as French sentences a clinician can review.

Markup: `<ent attr=value ...>text</ent>` marks where a mention must be found and what it must say
(any Mention field: category, label, kind, negated, hypothetical, family, status, dose, frequency, ...).
"""
from __future__ import annotations

import re

import pytest

from extractor.clinical.mentions import extract_mentions
from models.document import DocumentRecord, Page

from helpers_clinical import check, mentions_of, parse  # noqa: F401,E402


# Explicit absences -------------------------------------------------------------------------------------

@pytest.mark.parametrize("marked", [
    "Allergies : <ent category=absence block=allergy>pas d'allergie connue</ent>.",
    "<ent category=absence block=allergy>Allergies : 0</ent>",
    "Patient sans particularité, <ent category=absence block=allergy>aucune allergie médicamenteuse</ent>.",
    "<ent category=absence block=history>ATCD : néant</ent>",
    "<ent category=absence block=history>Pas d'ATCD notable</ent>.",
    "<ent category=absence block=treatment>Pas de traitement au long cours</ent>.",
    "<ent category=absence block=treatment>Aucun traitement</ent>.",
])
def test_absence_phrasings(marked):
    check(marked)


def test_bare_section_body_is_an_absence():
    found = mentions_of("Antécédents :\nNéant\n\nAllergies :\nRAS\n")
    blocks = {m.block for m in found if m.category == "absence"}
    assert blocks == {"history", "allergy"}


def test_negated_allergy_is_not_an_absence():
    found = check("Pas d'allergie à l'<ent category=allergy negated=true>iode</ent>.")
    assert not [m for m in found if m.category == "absence"]


# Allergies ---------------------------------------------------------------------------------------------

def test_allergy_with_reaction():
    check("Allergie à la <ent category=allergy label=pénicilline reaction=urticaire kind=allergy>pénicilline</ent> (urticaire).")


def test_intolerance():
    check("Intolérance aux <ent category=allergy label=\"anti-inflammatoires non stéroïdiens\" kind=intolerance>AINS</ent>.")


def test_allergy_section_inline_and_drug_as_allergen():
    check("Allergies : <ent category=allergy label=pénicilline>Péni</ent>, "
          "<ent category=allergy label=\"acide acétylsalicylique\">Kardégic</ent> (œdème de Quincke)")


# History -----------------------------------------------------------------------------------------------

def test_family_history():
    check("Antécédents familiaux :\nPère : <ent category=history label=\"infarctus du myocarde\" kind=family family=true>IDM</ent> à 55 ans")
    check("Père : <ent category=history label=\"infarctus du myocarde\" family=true>IDM</ent> à 55 ans.")


def test_hypothesis_cues():
    check("Suspicion de <ent category=history hypothetical=true>BPCO</ent>.")
    check("<ent category=history label=\"embolie pulmonaire\" hypothetical=true>Embolie pulmonaire</ent> à éliminer.")
    check("On évoque une <ent category=history label=sarcoïdose hypothetical=true>sarcoïdose</ent>.")


def test_negated_history_kept_with_flag():
    check("ATCD : <ent label=\"hypertension artérielle\" negated=false>HTA</ent>, "
          "<ent label=\"diabète de type 2\">DT2</ent>, pas de <ent negated=true>tuberculose</ent>.")


def test_surgical_history_and_dates():
    check("Atcd chir. : <ent kind=surgical label=appendicectomie date=1990>appendicectomie</ent> (1990), "
          "<ent kind=surgical label=\"prothèse totale de hanche\" date=2019>PTH</ent> droite en 2019")
    check("2015 : <ent label=\"infarctus du myocarde\" date=2015>infarctus</ent> traité par angioplastie")


ABBREVIATIONS = {
    "HTA": "hypertension artérielle", "DT2": "diabète de type 2", "DNID": "diabète de type 2",
    "DID": "diabète de type 1", "BPCO": "bronchopneumopathie chronique obstructive", "IDM": "infarctus du myocarde",
    "SCA": "syndrome coronarien aigu", "AVC": "accident vasculaire cérébral", "AIT": "accident ischémique transitoire",
    "FA": "fibrillation atriale", "ACFA": "fibrillation atriale", "IC": "insuffisance cardiaque",
    "ICC": "insuffisance cardiaque", "IRC": "insuffisance rénale chronique", "SAOS": "syndrome d'apnées du sommeil",
    "TVP": "thrombose veineuse profonde", "EP": "embolie pulmonaire", "RGO": "reflux gastro-œsophagien",
    "HBP": "hypertrophie bénigne de la prostate", "AOMI": "artériopathie oblitérante des membres inférieurs",
    "DMLA": "dégénérescence maculaire liée à l'âge", "SEP": "sclérose en plaques", "PR": "polyarthrite rhumatoïde",
    "K du sein": "cancer du sein", "K prostate": "cancer de la prostate",
}


@pytest.mark.parametrize("abbr,label", ABBREVIATIONS.items())
def test_abbreviations(abbr, label):
    check(f"Antécédents :\n- <ent category=history label=\"{label}\">{abbr}</ent>\n")


def test_abbreviation_needs_capitals():
    found = mentions_of("Antécédents : revu par le Pr Martin, fa dièse.")
    assert not [m for m in found if m.label in ("polyarthrite rhumatoïde", "fibrillation atriale")]


def test_missing_accents_uppercase_and_ocr_noise():
    check("ANTECEDENTS : <ent label=\"hypertension artérielle\">HYPERTENSION ARTERIELLE</ent>, "
          "<ent label=\"insuffisance cardiaque\">insuffisance cardiaque</ent>")
    found = check("Antécédents : <ent label=cholécystectomie>cholecystectonie</ent>")
    assert found[0].confidence < 0.9


# Treatments --------------------------------------------------------------------------------------------

def test_stop_and_replacement():
    check("Traitement : arrêt du <ent category=treatment status=stopped label=\"acide acétylsalicylique\">Kardégic</ent>, "
          "remplacé par <ent category=treatment status=active label=clopidogrel brand=Plavix>Plavix</ent> 75 mg/j.")


def test_posology():
    check("Traitement habituel :\n"
          "<ent label=\"acide acétylsalicylique\" brand=Kardégic dose=\"75 mg/j\" code=B01AC06>KARDEGIC</ent> 75 mg/j\n"
          "<ent label=furosémide dose=\"40 mg\" frequency=\"1 cp matin et soir\">Lasilix</ent> 40 mg : 1 cp matin et soir\n"
          "<ent label=metformine dose=\"1000 mg\" frequency=\"1-0-1\">Metformine</ent> 1000 mg 1-0-1\n"
          "<ent label=lévothyroxine dose=\"75 µg\" frequency=\"le matin\">Levothyrox</ent> 75 µg le matin QSP 3 mois\n")


def test_qsp_is_a_duration_not_a_frequency():
    found = mentions_of("Ordonnance :\nDoliprane 1 g QSP 3 mois\n")
    (m,) = [m for m in found if m.category == "treatment"]
    assert m.label == "paracétamol" and m.dose == "1 g" and m.frequency is None


def test_drug_taken_in_prose_is_a_treatment_a_past_chemotherapy_is_not():
    # issue 11: "sous Kardégic depuis 2010" is how a French letter states a current treatment
    found = mentions_of("Histoire de la maladie :\nPatient sous Kardégic depuis 2010, chimiothérapie par cisplatine en 2012.")
    (m,) = [m for m in found if m.category == "treatment"]
    assert m.label == "acide acétylsalicylique" and m.status == "active" and m.start_date == "2010"


def test_posology_line_outside_section_is_a_treatment():
    found = mentions_of("Au total, on poursuit Tahor 20 mg le soir.")
    (m,) = [m for m in found if m.category == "treatment"]
    assert m.label == "atorvastatine" and m.confidence < 0.9


# Provenance --------------------------------------------------------------------------------------------

def test_boilerplate_ignored_and_offsets_exact():
    text = "Service de cardiologie - HTA\nAntécédents : HTA\n"
    found = mentions_of(text, boilerplate=[(0, 28)])
    (m,) = [m for m in found if m.category == "history"]
    assert text[m.start:m.end] == "HTA" and m.start > 28 and m.snippet == "Antécédents : HTA"
    assert m.section == "antecedents"


def test_ocr_pages_lower_confidence():
    from models.document import Box, Word
    text = "Antécédents : diabète de type 2"
    words = [Word(text=w.group(), start=w.start(), end=w.end(), box=Box(left=0, top=0, width=1, height=1), conf=60)
             for w in re.finditer(r"\S+", text)]
    (m,) = mentions_of(text, source="ocr", words=words)
    assert m.ocr and m.confidence < 0.9


def test_snippet_of_wrapped_prose_is_the_sentence_not_its_last_line():
    text = ("Histoire de la maladie :\n"
            "Patient de 67 ans, ancien fumeur, suivi en pneumologie depuis 2015 pour une\n"
            "BPCO stade 2, adressé ce jour pour dyspnée d'effort.\n"
            "Examen clinique sans particularité.\n")
    (m,) = [m for m in mentions_of(text) if text[m.start:m.end] == "BPCO"]
    assert m.snippet == ("Patient de 67 ans, ancien fumeur, suivi en pneumologie depuis 2015 pour une "
                         "BPCO stade 2, adressé ce jour pour dyspnée d'effort.")
