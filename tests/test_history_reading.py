"""What the patient HAS, not every condition a document mentions: history and allergy rules as French
sentences, each with a positive and a negative case (issue 10). The phrasings are general clinical French,
not copies of the real-text development set.
"""
from __future__ import annotations

import pytest

from extractor.clinical.lexicon import load_lexicons, semantic_type
from helpers_clinical import check, history_labels, mentions_of, synthesis_of


def history(text: str) -> list[str]:
    return [label for label, _ in history_labels(text)]


# What a mention is: semantic types ---------------------------------------------------------------------

@pytest.mark.parametrize("label,code,surface,expected", [
    ("anémie", "D64.9", "anémie", "finding"),
    ("hypokaliémie", "E87.6", "hypokaliémie", "finding"),
    ("prurit", "L29", "prurit", "symptom"),
    ("anorexie mentale", "F50.0", "anorexie", "symptom"),
    ("anorexie mentale", "F50.0", "anorexie mentale", "disease"),
    ("tabagisme", "F17.2", "tabagisme", "risk_factor"),
    ("cardiomégalie", "I51.7", "cardiomégalie", "finding"),
    ("douleur thoracique", "R07.4", "douleur thoracique", "symptom"),
    ("diabète de type 2", "E11", "diabète de type 2", "disease"),
    ("fracture du col du fémur", "S72.0", "fracture du col du fémur", "event"),
    ("cholécystectomie", None, "cholécystectomie", "procedure"),
])
def test_semantic_type_from_cim10_chapter_and_curated_exceptions(label, code, surface, expected):
    kind = "surgical" if expected == "procedure" else "medical"
    assert semantic_type(label, code, kind, surface) == expected


def test_every_condition_term_has_a_semantic_type():
    types = {t.semantic for ts in load_lexicons()["conditions"].terms.values() for t in ts}
    assert types <= {"disease", "event", "procedure", "symptom", "finding", "risk_factor", "exposure"}
    assert {"disease", "symptom", "finding"} <= types


def test_symptoms_and_signs_never_become_history():
    assert history("Antécédents : prurit ancien.\nHistoire : anorexie et amaigrissement.") == []
    assert history("Elle se plaint d'un prurit diffus et d'une anorexie.") == []
    # the disease itself stays
    assert history("Antécédents : anorexie mentale à 17 ans.") == ["anorexie mentale"]


# Where it is said, and how ------------------------------------------------------------------------------

def test_lab_value_makes_a_finding():
    assert history("Le bilan trouvait une anémie à 8,2 g/dl et une hypokaliémie à 2,9 mmol/l.") == []
    assert history("Antécédents : anémie de Biermer.") == ["anémie de biermer"]


def test_examination_and_investigation_clauses_are_findings():
    assert history("L'échographie a montré une stéatose hépatique.") == []
    assert history("A l'examen clinique, hypertension artérielle à 16/9.") == []
    assert history("Patient connu pour une stéatose hépatique.") == ["stéatose hépatique"]


def test_diagnosis_stated_in_an_investigation_sentence_is_kept():
    assert "glomérulonéphrite" in history("La biopsie rénale a montré une glomérulonéphrite, diagnostic retenu.")


def test_negative_serology_rules_the_disease_out():
    assert history("Les sérologies VIH et VHC étaient négatives.") == []
    assert history("Infection par le VIH connue depuis 2010.") == ["infection par le vih"]


def test_eliminated_and_evoked_diagnoses_are_not_history():
    assert history("Une embolie pulmonaire a été éliminée par angioscanner.") == []
    assert history("Le tableau faisait évoquer une tuberculose.") == []
    assert history("Antécédents : tuberculose pulmonaire en 1998.") == ["tuberculose"]


def test_vaccination_is_an_exposure_not_the_disease():
    assert history("Vaccin antigrippal fait en octobre.") == []
    assert history("Antécédents : grippe compliquée en 2019.") == ["grippe"]


def test_a_service_name_is_not_a_disease():
    assert history("Service de dialyse - Hôpital Nord\nMadame X est suivie pour une hypertension artérielle.") \
        == ["hypertension artérielle"]


def test_abbreviation_with_a_value_is_a_measure():
    assert history("ECG : PR à 0,18 s, QRS fins. TCA 1,1.") == []
    assert history("Antécédents : PR sous méthotrexate.") == ["polyarthrite rhumatoïde"]


def test_adjective_forms_are_history():
    assert sorted(history("Patient diabétique, hypertendu et asthmatique, hospitalisé pour une chute.")) == \
        ["asthme", "diabète", "hypertension artérielle"]
    assert sorted(history("Patiente obèse et coronarienne.")) == ["cardiopathie ischémique", "obésité"]
    assert history("Patient non diabétique et non hypertendu.") == []


def test_procedure_of_the_stay_is_not_a_past_operation():
    assert history("Une cholécystectomie a été réalisée le lendemain.") == []
    assert history("Elle a été opérée d'une cholécystectomie en 2012.") == ["cholécystectomie"]


def test_family_history_in_prose():
    labels = history_labels("Dans ses antécédents familiaux, on note un diabète de type 2. "
                            "Elle est suivie pour un asthme.")
    assert ("diabète de type 2", "family") in labels and ("asthme", "medical") in labels
    # once the patient is the subject again, it is her own history
    labels = history_labels("Antécédents familiaux de lupus (mère), elle est connue pour une épilepsie.")
    assert ("épilepsie", "medical") in labels


# One fact, one entry ------------------------------------------------------------------------------------

def test_same_sentence_ischaemic_heart_disease_is_one_entry():
    s = synthesis_of("Il a présenté un infarctus du myocarde en 2015 (SCA ST+), cardiopathie ischémique.")
    assert [e.label for e in s.history] == ["infarctus du myocarde"]
    assert len(s.history[0].sources) == 3


def test_generic_and_specific_diabetes_merge_across_documents():
    s = synthesis_of("Antécédents : diabète de type 2.", "Son diabète est équilibré.")
    assert [(e.label, e.code) for e in s.history] == [("diabète de type 2", "E11")]
    assert len(s.history[0].sources) == 2


def test_two_distinct_facts_of_different_families_stay_two():
    s = synthesis_of("Antécédents : diabète de type 2, infarctus du myocarde.")
    assert len(s.history) == 2


# Senses --------------------------------------------------------------------------------------------------

def test_words_inside_other_words_do_not_match_on_a_text_layer():
    assert history("L'échographie cervicale est normale. Péricarde sec.") == []
    assert history("Pseudo-polyarthrite rhizomélique connue.") == ["pseudopolyarthrite rhizomélique"]


def test_close_misspelling_on_a_text_layer_still_matches():
    assert history("Antécédents : cholecystectonie.") == ["cholécystectomie"]


# Clinical status ------------------------------------------------------------------------------------------

def test_resolved_history():
    s = synthesis_of("Antécédents : tuberculose pulmonaire guérie en 1990, hypertension artérielle.")
    status = {e.label: e.clinical_status for e in s.history}
    assert status == {"tuberculose": "resolved", "hypertension artérielle": None}


# Allergies as allergists write them -------------------------------------------------------------------------

def test_refuted_allergy_is_kept_visible_and_does_not_count():
    s = synthesis_of("Allergie à la pénicilline non confirmée : tests cutanés négatifs, test de provocation bien toléré.")
    assert [(a.substance, a.verification) for a in s.allergies] == [("pénicilline", "refuted")]
    assert s.allergy_status == "unknown"
    s = synthesis_of("Allergie à la pénicilline (urticaire).")
    assert [(a.substance, a.verification) for a in s.allergies] == [("pénicilline", "unconfirmed")]
    assert s.allergy_status == "known"


def test_class_with_members_in_brackets_is_one_entry():
    s = synthesis_of("Allergies : AINS (ibuprofène, kétoprofène) : œdème de Quincke.")
    assert [(a.substance, a.members, a.reaction) for a in s.allergies] == \
        [("anti-inflammatoires non stéroïdiens", ["ibuprofène", "kétoprofène"], "œdème de quincke")]
    s = synthesis_of("Allergies : ibuprofène, kétoprofène.")
    assert sorted(a.substance for a in s.allergies) == ["ibuprofène", "kétoprofène"]


def test_fixed_combination_is_one_allergen():
    s = synthesis_of("Allergie au Bactrim (éruption cutanée).")
    assert [(a.substance, a.code) for a in s.allergies] == [("sulfaméthoxazole + triméthoprime", "J01EE01")]


def test_intolerance_follows_the_words():
    s = synthesis_of("Intolérance digestive à la metformine.")
    assert [(a.substance, a.kind) for a in s.allergies] == [("metformine", "intolerance")]
    s = synthesis_of("Allergie à la metformine.")
    assert [(a.substance, a.kind) for a in s.allergies] == [("metformine", "allergy")]


def test_adverse_drug_reaction_in_prose_is_an_allergy():
    s = synthesis_of("Toxidermie au cotrimoxazole en 2015.")
    assert [(a.substance, a.kind) for a in s.allergies] == [("sulfaméthoxazole + triméthoprime", "allergy")]
    s = synthesis_of("Cytolyse hépatique mise sur le compte d'une toxicité médicamenteuse aux statines et fibrates.")
    assert sorted((a.substance, a.kind) for a in s.allergies) == \
        [("fibrates", "intolerance"), ("statines", "intolerance")]
    assert synthesis_of("Le cotrimoxazole a été poursuivi dix jours.").allergies == []


def test_drug_stopped_for_intolerance_is_an_intolerance_and_a_stopped_treatment():
    s = synthesis_of("Traitement par carbamazépine 200 mg/j arrêté devant une intolérance digestive.")
    assert [(a.substance, a.kind) for a in s.allergies] == [("carbamazépine", "intolerance")]
    assert synthesis_of("Traitement par carbamazépine 200 mg/j arrêté en 2019.").allergies == []


def test_unticked_form_options_state_nothing():
    s = synthesis_of("Allergies : ☐ iode ☐ latex ☒ pénicilline")
    assert [a.substance for a in s.allergies] == ["pénicilline"]
    assert synthesis_of("Allergies : ☐ iode ☐ latex").allergies == []


def test_reactions_of_an_allergy_are_not_history():
    assert history("Allergie à l'amoxicilline : urticaire géante et œdème de Quincke.") == []


def test_found_mentions_keep_their_offsets():
    text = "Patient hypertendu."
    found = [m for m in mentions_of(text) if m.category == "history"]
    assert [(text[m.start:m.end], m.label) for m in found] == [("hypertendu", "hypertension artérielle")]


def test_markup_check_still_reads_refuted_flag():
    check("Allergie à l'<ent category=allergy label=iode verification=refuted>iode</ent> éliminée "
          "par le bilan allergologique.")


@pytest.mark.parametrize("sentence,wrong", [
    ("Emphysème sous-cutané cervical après la pose du drain.", "emphysème"),
    ("Goutte épaisse et frottis négatifs.", "goutte"),
    ("Reflux hépato-jugulaire et œdèmes des membres inférieurs.", "reflux gastro-œsophagien"),
    ("Le taux de PTH était à 1 363 pg/ml.", "prothèse totale de hanche"),
    ("Hypertension intracrânienne idiopathique suivie en neurologie.", "hypertension artérielle"),
])
def test_ambiguous_words_take_their_sense_from_context(sentence, wrong):
    assert wrong not in history(sentence)


@pytest.mark.parametrize("sentence,right", [
    ("Antécédents : goutte traitée par allopurinol.", "goutte"),
    ("Antécédents : emphysème pulmonaire post-tabagique.", "emphysème"),
    ("Antécédents : reflux gastro-œsophagien.", "reflux gastro-œsophagien"),
    ("Antécédents : PTH droite en 2015.", "prothèse totale de hanche"),
    ("Antécédents : HTA.", "hypertension artérielle"),
])
def test_the_same_words_in_their_usual_sense(sentence, right):
    assert right in history(sentence)


def test_family_history_keeps_its_relative_one_entry_per_relative():
    s = synthesis_of("Antécédents familiaux :\nPère : infarctus du myocarde à 55 ans\nMère : diabète de type 2, "
                     "sœur : diabète de type 2", "Antécédents familiaux : infarctus du myocarde.")
    fam = sorted((h.label, h.relative, len(h.sources)) for h in s.history if h.kind == "family")
    assert fam == [("diabète de type 2", "mère", 1), ("diabète de type 2", "sœur", 1),
                   ("infarctus du myocarde", "père", 2)]


def test_same_disease_in_relatives_by_anaphora():
    s = synthesis_of("Patiente suivie pour une neurofibromatose dont la mère et le grand-père sont porteurs "
                     "de la même maladie.")
    assert sorted((h.label, h.kind, h.relative) for h in s.history) == [
        ("neurofibromatose", "family", "grand-père"), ("neurofibromatose", "family", "mère"),
        ("neurofibromatose", "medical", None)]
    s = synthesis_of("Patiente suivie pour une neurofibromatose, sa mère est diabétique.")
    assert ("neurofibromatose", "medical") in [(h.label, h.kind) for h in s.history]
    assert not any(h.label == "neurofibromatose" and h.kind == "family" for h in s.history)


def test_a_relative_who_was_treated_is_not_the_patient():
    s = synthesis_of("Enfant ayant comme antécédents un père traité pour tuberculose pulmonaire.")
    assert [(h.label, h.kind, h.relative) for h in s.history] == [("tuberculose", "family", "père")]


def test_a_suspected_drug_reaction_is_an_unconfirmed_allergy_a_suspected_allergy_is_not():
    s = synthesis_of("Le diagnostic de syndrome de Lyell induit par la carbamazépine a été évoqué.")
    assert [(a.substance, a.verification) for a in s.allergies] == [("carbamazépine", "unconfirmed")]
    assert synthesis_of("Allergie à la pénicilline ? (à confirmer)").allergies == []


def test_a_refuted_allergy_line_does_not_refute_the_list_above_it():
    s = synthesis_of("Allergies :\n- chlorhexidine\n- crustacés\nAllergie à la morphine non confirmée : tests cutanés négatifs.")
    assert sorted((a.substance, a.verification) for a in s.allergies) == [
        ("chlorhexidine", "unconfirmed"), ("crustacés", "unconfirmed"), ("morphine", "refuted")]
    assert s.allergy_status == "known" and not s.conflicts  # the list's first bullet is not "Allergies : -"
