"""The scorer of `synthese eval`: hand-made dossiers whose scores were worked out by hand."""
from __future__ import annotations

import json
from datetime import datetime

import pytest
from rapidfuzz import fuzz

from extractor.quality.evaluate import (
    THRESHOLD,
    aggregate,
    load_gold,
    load_predictions,
    match_entries,
    normalise,
    normalise_dose,
    score_dossier,
)
from models.document import DocumentRecord, Page
from models.gold import (
    GoldAllergy,
    GoldDistractor,
    GoldDocument,
    GoldDossier,
    GoldHistory,
    GoldPage,
    GoldTreatment,
)
from models.synthesis import AllergyEntry, HistoryEntry, Review, Source, Synthesis, TreatmentEntry

TEXT = "cr_2019.pdf"
SCAN = "scan_2021.pdf"


def gold_dossier(**fields) -> GoldDossier:
    fields.setdefault("dossier_id", "D001")
    fields.setdefault("split", "dev")
    fields.setdefault("seed", 1)
    fields.setdefault(
        "documents",
        [
            GoldDocument(path=TEXT, kind="text_pdf", doc_type="compte_rendu",
                         pages=[GoldPage(number=1, text="Compte rendu")]),
            GoldDocument(path=SCAN, kind="scanned_pdf", doc_type="ordonnance",
                         pages=[GoldPage(number=1, text="Ordonnance", scanned=True)]),
        ],
    )
    return GoldDossier(**fields)


def synthesis(**fields) -> Synthesis:
    fields.setdefault("dossier_id", "D001")
    return Synthesis(generated_at=datetime(2024, 1, 1), extractor_version="test", **fields)


def src(document: str = TEXT, ocr: bool = False) -> list[Source]:
    return [Source(document=document, page=1, start=0, end=1, snippet="x", ocr=ocr)]


def H(label, kind="medical", code=None, date=None, abbreviations=(), documents=(TEXT,)):
    return GoldHistory(label=label, kind=kind, code=code, date=date, abbreviations=list(abbreviations),
                       documents=list(documents))


def h(label, kind="medical", code=None, date=None, ocr=False):
    return HistoryEntry(label=label, kind=kind, code=code, date=date, sources=src(SCAN if ocr else TEXT, ocr))


def T(drug, **kw):
    kw.setdefault("documents", [TEXT])
    return GoldTreatment(drug=drug, **kw)


# --------------------------------------------------------------------------- normalisation


def test_normalise_folds_accents_case_punctuation_and_link_words():
    assert normalise("  Syndrome d'APNÉES   du sommeil (SAOS) ") == "syndrome apnees sommeil saos"
    assert normalise("Diabète de type 2") == normalise("diabete type 2") == "diabete type 2"


@pytest.mark.parametrize(
    "a, b",
    [("75mg", "75 mg"), ("1 g", "1000 mg"), ("2,5 mg", "2.5 mg/j"), ("500 µg", "0,5 mg"), ("1 000 mg", "1 g")],
)
def test_equal_doses_normalise_equal(a, b):
    assert normalise_dose(a) == normalise_dose(b)


def test_different_doses_stay_different():
    assert normalise_dose("75 mg") != normalise_dose("160 mg")
    assert normalise_dose("1 g") != normalise_dose("1 mg")


# --------------------------------------------------------------------------- matching rule


def test_history_code_first_matches_different_wording_same_category():
    gold = [H("Infarctus du myocarde", code="I21.9")]
    matching = match_entries("history", [h("Nécrose myocardique antérieure", code="I219")], gold)
    assert [(p.pred, p.gold, p.by) for p in matching.pairs] == [(0, 0, "code")]


def test_history_codes_decide_alone_when_both_coded():
    # Same words, different CIM-10 categories (E10 type 1 / E11 type 2): not the same disease.
    gold = [H("Diabète", code="E11")]
    matching = match_entries("history", [h("Diabète", code="E10.9")], gold)
    assert matching.pairs == [] and matching.unmatched_pred == [0] and matching.unmatched_gold == [0]


def test_history_label_used_when_one_side_uncoded_and_abbreviation_counts():
    gold = [H("Hypertension artérielle", code="I10", abbreviations=["HTA"])]
    matching = match_entries("history", [h("HTA")], gold)
    assert [(p.pred, p.gold, p.by, p.score) for p in matching.pairs] == [(0, 0, "label", 100.0)]


def test_treatment_atc_first_then_brand_then_salt_words():
    gold = [
        T("acide acétylsalicylique", brand="Kardégic", atc="B01AC06"),
        T("bisoprolol", brand="Cardensiel"),
        T("metformine", atc="A10BA02"),
    ]
    predicted = [
        TreatmentEntry(drug="aspirine", atc="B01AC06"),  # same ATC, other name
        TreatmentEntry(drug="inconnu", brand="CARDENSIEL"),  # brand only
        TreatmentEntry(drug="chlorhydrate de metformine"),  # salt word dropped, no ATC
    ]
    matching = match_entries("treatment", predicted, gold)
    assert [(p.pred, p.gold, p.by) for p in matching.pairs] == [(0, 0, "code"), (1, 1, "label"), (2, 2, "label")]


def test_threshold_edges_with_real_drug_and_disease_names():
    # Just below: different drugs / diseases one or two letters apart score 88-91 and must not match.
    assert round(fuzz.token_set_ratio("prednisone", "prednisolone"), 1) == 90.9
    assert 90.9 < THRESHOLD
    assert match_entries("treatment", [TreatmentEntry(drug="prednisone")], [T("prednisolone")]).pairs == []
    assert match_entries("history", [h("Hypothyroïdie")], [H("Hyperthyroïdie")]).pairs == []
    # Just above: a misspelling of the same thing (95.2) matches.
    assert fuzz.token_set_ratio("infractus myocarde", "infarctus myocarde") >= THRESHOLD
    assert len(match_entries("history", [h("Infractus du myocarde")], [H("Infarctus du myocarde")]).pairs) == 1


def test_numbers_must_agree():
    # token_set_ratio alone gives 94.1 here: above threshold, yet a different disease.
    assert match_entries("history", [h("Diabète de type 1")], [H("Diabète de type 2")]).pairs == []
    assert len(match_entries("history", [h("Diabète")], [H("Diabète de type 2")]).pairs) == 1


def test_one_to_one_exact_wording_beats_subset_and_second_is_a_duplicate():
    gold = [T("paracétamol"), T("paracétamol codéine")]
    # Both predictions score 100 (token set) against "paracétamol"; the exact one wins it.
    predicted = [TreatmentEntry(drug="paracétamol codéine"), TreatmentEntry(drug="paracétamol")]
    matching = match_entries("treatment", predicted, gold)
    assert [(p.pred, p.gold) for p in matching.pairs] == [(0, 1), (1, 0)]
    assert matching.duplicates == []

    twice = [TreatmentEntry(drug="amlodipine"), TreatmentEntry(drug="Amlodipine (bésilate)")]
    matching = match_entries("treatment", twice, [T("amlodipine")])
    assert [(p.pred, p.gold) for p in matching.pairs] == [(0, 0)]
    assert matching.unmatched_pred == [1] and matching.duplicates == [1]


def test_family_and_own_history_never_match():
    matching = match_entries("history", [h("Infarctus du myocarde", kind="family")], [H("Infarctus du myocarde")])
    assert matching.pairs == []
    # surgical and medical are one group: the patient's own history
    assert len(match_entries("history", [h("Appendicectomie")], [H("Appendicectomie", kind="surgical")]).pairs) == 1


# --------------------------------------------------------------------------- dossier scores


def test_prf_by_hand_three_gold_two_right_one_wrong():
    gold = gold_dossier(history=[H("Hypertension artérielle"), H("Asthme"), H("Fibrillation auriculaire")])
    pred = synthesis(history=[h("Hypertension artérielle"), h("Asthme"), h("Goutte")])
    c = score_dossier(gold, pred).blocks["history_own"].counts
    assert (c.tp, c.fp, c.fn) == (2, 1, 1)
    assert (c.precision, c.recall, c.f1) == (pytest.approx(2 / 3), pytest.approx(2 / 3), pytest.approx(2 / 3))


def test_family_scored_apart_from_own():
    gold = gold_dossier(history=[H("Diabète de type 2"), H("Infarctus du myocarde", kind="family")])
    # The extractor took the father's infarction for the patient's.
    pred = synthesis(history=[h("Diabète de type 2"), h("Infarctus du myocarde")])
    score = score_dossier(gold, pred)
    own, family = score.blocks["history_own"].counts, score.blocks["history_family"].counts
    assert (own.tp, own.fp, own.fn) == (1, 1, 0)
    assert (family.tp, family.fp, family.fn) == (0, 0, 1)


def test_statuses_compared_to_gold():
    gold = gold_dossier(allergy_status="none_known", history_status="known", treatment_status="unknown")
    pred = synthesis(allergy_status="unknown", history_status="known", treatment_status="unknown")
    assert score_dossier(gold, pred).status_correct == {"history": True, "allergy": False, "treatment": True}


def test_treatment_status_and_dose_accuracy_over_matched():
    gold = gold_dossier(treatments=[
        T("clopidogrel", dose="75 mg", status="active"),
        T("paracétamol", dose="1 g", status="active"),
        T("amlodipine", dose="5 mg", status="stopped"),
        T("ramipril", status="active"),  # no gold dose: not in the dose denominator
        T("atorvastatine", dose="40 mg"),  # not predicted: in neither denominator
    ])
    pred = synthesis(treatments=[
        TreatmentEntry(drug="clopidogrel", dose="75mg", status="active"),
        TreatmentEntry(drug="paracétamol", dose="1000 mg", status="active"),
        TreatmentEntry(drug="amlodipine", dose="10 mg", status="active"),
        TreatmentEntry(drug="ramipril", dose="5 mg", status="active"),
    ])
    score = score_dossier(gold, pred)
    assert (score.treatment_status.correct, score.treatment_status.total) == (3, 4)
    assert (score.dose.correct, score.dose.total) == (2, 3)


def test_duplicates_counted_and_also_false_positives():
    gold = gold_dossier(
        allergies=[GoldAllergy(substance="pénicilline", documents=[TEXT])],
        # "pas d'allergie à la pénicilline" elsewhere: the duplicate is counted once, as a duplicate, not a leak
        distractors=[GoldDistractor(block="allergy", label="pénicilline", reason="negated")],
    )
    pred = synthesis(allergies=[AllergyEntry(substance="Pénicilline"), AllergyEntry(substance="pénicillines")])
    score = score_dossier(gold, pred)
    block = score.blocks["allergies"]
    assert (block.counts.tp, block.counts.fp, block.duplicates, score.duplicates) == (1, 1, 1, 1)
    assert block.leaks == 0


def test_order_inversions_counted():
    pred = synthesis(
        history=[
            h("Asthme", date="2015"),
            h("Goutte"),  # undated, then a dated one follows: 1 inversion
            h("HTA", date="2010-03"),  # after 2015: 1 inversion
            h("Appendicectomie", kind="surgical", date="1990"),  # other kind: ordered apart
            h("Cancer du sein", kind="family"),
        ],
        treatments=[
            TreatmentEntry(drug="a", status="stopped"),
            TreatmentEntry(drug="b", status="active"),
            TreatmentEntry(drug="c", status="stopped"),
            TreatmentEntry(drug="d", status="active"),
        ],
    )
    # history: (2015, 2010-03), (undated, 2010-03) = 2, (2015, undated) is right; treatments: (a,b), (a,d), (c,d) = 3
    assert score_dossier(gold_dossier(), pred).order_errors == {"history": 2, "treatments": 3}
    # same precision not inverted: 2010 and 2010-03 are not ordered against each other
    in_order = synthesis(history=[h("A", date="2010-03"), h("B", date="2010"), h("C", date="2011-01-05"), h("D")])
    assert score_dossier(gold_dossier(), in_order).order_errors == {"history": 0, "treatments": 0}


def test_distractor_leaks():
    gold = gold_dossier(
        history=[H("Infarctus du myocarde", kind="family")],
        distractors=[
            GoldDistractor(block="history", label="diabète", reason="negated"),  # "pas de diabète"
            GoldDistractor(block="history", label="infarctus du myocarde", reason="family"),
            GoldDistractor(block="allergy", label="iode", reason="hypothetical"),
        ],
    )
    pred = synthesis(
        history=[h("Diabète"), h("Infarctus du myocarde"), h("Infarctus du myocarde", kind="family")],
        allergies=[AllergyEntry(substance="Iode")],
    )
    score = score_dossier(gold, pred)
    assert score.blocks["history_own"].leaks == 2
    assert score.blocks["history_family"].leaks == 0  # matched to gold: where it belongs
    assert score.blocks["allergies"].leaks == 1
    assert score.leaks_by_reason == {"negated": 1, "family": 1, "hypothetical": 1}


def test_rejected_entries_are_not_predictions():
    pred = synthesis(allergies=[AllergyEntry(substance="latex", review=Review(status="rejected"))])
    assert score_dossier(gold_dossier(), pred).blocks["allergies"].counts.fp == 0


def test_cer_on_a_known_pair():
    gold = gold_dossier(documents=[
        GoldDocument(path=SCAN, kind="scanned_pdf", doc_type="ordonnance", pages=[
            GoldPage(number=1, text="Kardégic  75 mg\n1 sachet par jour", scanned=True),  # 32 chars once collapsed
            GoldPage(number=2, text="Suite", scanned=True),  # not returned: 5 errors
            GoldPage(number=3, text="Texte natif"),  # not scanned: ignored
        ]),
        GoldDocument(path="illisible.png", kind="image", doc_type="autre", readable=False,
                     pages=[GoldPage(number=1, text="xxxx", scanned=True)]),  # unreadable on purpose: ignored
    ])
    records = [DocumentRecord(path=SCAN, sha256="0", size=1, pages=[
        Page(number=1, text="Kardegic 75 rng 1 sachet par jour", source="ocr"),  # é->e (1), mg->rng (m->r, +n: 2) = 3
        Page(number=3, text="zzz"),
    ])]
    score = score_dossier(gold, None, records)
    assert (score.ocr.errors, score.ocr.chars, score.ocr.pages) == (3 + 5, 32 + 5, 2)
    assert score.ocr.cer == pytest.approx(8 / 37)
    assert score_dossier(gold, None).ocr is None


def test_missing_prediction_is_all_false_negatives():
    gold = gold_dossier(
        history=[H("Asthme")], allergies=[GoldAllergy(substance="latex")], treatments=[T("ramipril")],
        history_status="known", allergy_status="known", treatment_status="known",
    )
    score = score_dossier(gold, None)
    assert not score.predicted
    assert [(b.counts.tp, b.counts.fp, b.counts.fn) for b in score.blocks.values()] == [
        (0, 0, 1), (0, 0, 0), (0, 0, 1), (0, 0, 1)
    ]
    assert score.status_correct == {"history": False, "allergy": False, "treatment": False}
    report = aggregate([score])
    assert report.dossiers_missing == 1
    assert report.scores["all"]["overall"].recall == 0.0 and report.scores["all"]["overall"].precision is None


# --------------------------------------------------------------------------- aggregation


def test_modality_split_and_micro_average():
    # dev dossier: one text entry found, one scanned entry missed, one OCR false positive.
    dev = gold_dossier(
        dossier_id="D1", split="dev",
        history=[H("Asthme", documents=[TEXT]), H("Goutte", documents=[SCAN])],
        allergy_status="known",
    )
    dev_pred = synthesis(dossier_id="D1", history=[h("Asthme"), h("Psoriasis", ocr=True)], allergy_status="known")
    # heldout dossier: an entry stated in both documents counts as text; found. One text false positive.
    held = gold_dossier(
        dossier_id="D2", split="heldout", history=[H("Glaucome", documents=[TEXT, SCAN])],
        allergy_status="none_known",
    )
    held_pred = synthesis(dossier_id="D2", history=[h("Glaucome", ocr=True), h("Migraine")])
    report = aggregate([score_dossier(dev, dev_pred), score_dossier(held, held_pred)])

    def tpn(scope, block="history_own"):
        c = report.scores[scope][block]
        return c.tp, c.fp, c.fn

    assert tpn("all") == (2, 2, 1)
    assert tpn("dev") == (1, 1, 1)
    assert tpn("heldout") == (1, 1, 0)
    assert tpn("text") == (2, 1, 0)
    assert tpn("scanned") == (0, 1, 1)
    # split crossed with modality: dev text found, dev scan missed + OCR false positive, heldout text only
    assert tpn("dev/text") == (1, 0, 0)
    assert tpn("dev/scanned") == (0, 1, 1)
    assert tpn("heldout/text") == (1, 1, 0)
    assert tpn("heldout/scanned") == (0, 0, 0)
    assert tpn("all", "overall") == (2, 2, 1)
    all_ = report.scores["all"]["history_own"]
    assert (all_.precision, all_.recall, all_.f1) == (0.5, pytest.approx(2 / 3), pytest.approx(4 / 7))
    assert report.status_accuracy["allergy"].value == 0.5
    assert (report.dossiers, report.documents, report.pages) == (2, 4, 4)
    assert json.loads(report.model_dump_json())["scores"]["dev"]["history_own"]["precision"] == 0.5


def test_report_table_renders():
    from rich.console import Console

    report = aggregate([score_dossier(gold_dossier(history=[H("Asthme")]), synthesis(history=[h("Asthme")]))])
    console = Console(record=True, width=120)
    console.print(report.to_table())
    text = console.export_text()
    assert "history_own" in text and "100.0" in text


def test_load_gold_and_predictions(tmp_path):
    gold = gold_dossier(dossier_id="D7")
    (tmp_path / "D7.gold.json").write_text(gold.model_dump_json())
    (tmp_path / "D7").mkdir()
    (tmp_path / "D7" / "synthese.json").write_text(synthesis(dossier_id="D7").model_dump_json())
    (tmp_path / "D8").mkdir()
    (tmp_path / "D8" / "synthese.json").write_text("{broken")
    assert list(load_gold(tmp_path)) == ["D7"]
    assert list(load_predictions(tmp_path)) == ["D7"]
