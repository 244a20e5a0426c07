"""Section titles alone on their line and inline ("Allergies : pénicilline")."""
from __future__ import annotations

import pytest

from extractor.clinical.sections import find_sections, section_at

LETTER = """COMPTE RENDU D'HOSPITALISATION
Motif : douleur thoracique.
ANTECEDENTS
- HTA, DT2
Atcd chir. : appendicectomie (1990)
ATCD familiaux : père IDM
Allergies : pénicilline. TTT : Kardégic 75 mg/j
Tt habituel :
Kardégic 75 mg 1/j
Histoire de la maladie
Le patient...
Conclusion
RAS"""


def test_sections_alone_and_inline():
    secs = find_sections(LETTER)
    got = [(s.name, s.block, s.kind, LETTER[s.title_start:s.title_end]) for s in secs]
    assert got == [
        ("histoire_maladie", None, None, "Motif"),
        ("antecedents", "history", None, "ANTECEDENTS"),
        ("antecedents_chirurgicaux", "history", "surgical", "Atcd chir."),
        ("antecedents_familiaux", "history", "family", "ATCD familiaux"),
        ("allergies", "allergy", None, "Allergies"),
        ("traitement", "treatment", None, "TTT"),
        ("traitement", "treatment", None, "Tt habituel"),
        ("histoire_maladie", None, None, "Histoire de la maladie"),
        ("conclusion", None, None, "Conclusion"),
    ]
    allergies = secs[4]
    assert LETTER[allergies.start:allergies.end].startswith("pénicilline.")
    assert section_at(secs, LETTER.index("IDM")).kind == "family"
    assert section_at(secs, LETTER.index("- HTA")).name == "antecedents"


@pytest.mark.parametrize("title,name", [
    ("Traitement actuel :", "traitement"), ("TRAITEMENT EN COURS", "traitement"), ("Traitement à l'entrée :", "traitement"),
    ("Traitement de sortie", "traitement"), ("Ordonnance", "ordonnance"), ("ANTÉCÉDENTS MÉDICAUX :", "antecedents_medicaux"),
    ("Antecedents chirurgicaux", "antecedents_chirurgicaux"), ("Allergies / Intolérances :", "allergies"),
    ("Mode de vie :", "mode_de_vie"), ("Examen clinique", "examen_clinique"), ("Biologie :", "biologie"),
    ("ATCD", "antecedents"), ("TTT :", "traitement"), ("Intolérances médicamenteuses :", "allergies"),
])
def test_title_variants(title, name):
    secs = find_sections(f"{title}\nxxx\n")
    assert secs and secs[0].name == name


def test_word_in_a_sentence_is_not_a_title():
    assert find_sections("Le traitement a été bien toléré.\nIl a des allergies saisonnières.") == []
