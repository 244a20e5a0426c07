"""Lexicons built from rules/ (drugs derived from the BDPM snapshot) and the offset-keeping folding."""
from __future__ import annotations

import pytest

from extractor.clinical.lexicon import find_terms, fold, key_of, load_lexicons, tokenize


def test_fold_keeps_offsets():
    text = "ŒDÈME de Quincke, Kardégic’s"
    assert len(fold(text)) == len(text)
    assert fold(text).startswith("odeme de quincke")


@pytest.mark.parametrize("surface,substance,atc", [
    ("Kardégic", "acide acétylsalicylique", "B01AC06"), ("Doliprane", "paracétamol", "N02BE01"),
    ("Lasilix", "furosémide", "C03CA01"), ("Levothyrox", "lévothyroxine", "H03AA01"),
    ("Plavix", "clopidogrel", "B01AC04"), ("tramadol", "tramadol", None),
])
def test_drug_lexicon(surface, substance, atc):
    terms = load_lexicons()["drugs"].terms[key_of(surface)]
    assert terms[0].label == substance
    if atc:
        assert terms[0].code == atc


def test_combination_keeps_all_substances():
    (t, *_) = load_lexicons()["drugs"].terms[key_of("Augmentin")]
    assert t.label == "acide clavulanique + amoxicilline"


def test_homeopathy_excluded_and_sizes():
    lex = load_lexicons()
    assert len(lex["drugs"]) > 3000 and len(lex["conditions"]) > 1000
    assert not any("homéopathique" in t.label for ts in lex["drugs"].terms.values() for t in ts)


def test_find_terms_longest_match_and_upper():
    text = "Insuffisance cardiaque gauche, fa, FA"
    folded = fold(text)
    ms = find_terms(text, folded, tokenize(folded), load_lexicons()["conditions"])
    labels = [(text[m.start:m.end], m.terms[0].label) for m in ms]
    assert ("Insuffisance cardiaque", "insuffisance cardiaque") in labels
    assert ("FA", "fibrillation atriale") in labels and not any(s == "fa" for s, _ in labels)
