"""Consolidation: merging, ordering, statuses, conflicts and reviewed entries, on hand-built mentions."""
from models.document import DocumentRecord, Mention, Page
from models.synthesis import Review

from extractor.clinical.consolidate import consolidate


def rec(path, date=None, sha=None, error=None):
    return DocumentRecord(path=path, sha256=sha or f"sha-{path}", size=10, kind="text_pdf",
                          pages=[Page(number=1, text="x", source="text_layer")], date=date, error=error)


def m(category, label, **kw):
    kw.setdefault("page", 1)
    kw.setdefault("start", 0)
    kw.setdefault("end", len(label))
    return Mention(category=category, label=label, text=label, snippet=label, **kw)


def test_same_drug_written_three_ways_is_one_entry_with_every_source():
    records = [rec("a.pdf", "2023-01-10"), rec("b.pdf", "2023-06-01"), rec("c.pdf", "2024-02-01")]
    mentions = {
        "a.pdf": [m("treatment", "acide acétylsalicylique", brand="Kardégic", code="B01AC06", dose="75 mg")],
        "b.pdf": [m("treatment", "acide acetylsalicylique", brand="KARDEGIC", code="B01AC06", dose="75mg")],
        "c.pdf": [m("treatment", "acide acétylsalicylique", code="B01AC06", dose="160 mg", start=5, end=28)],
    }
    s = consolidate("P1", records, mentions)
    assert len(s.treatments) == 1
    t = s.treatments[0]
    assert [src.document for src in t.sources] == ["a.pdf", "b.pdf", "c.pdf"]
    assert t.dose == "160 mg"  # the most recent document decides the dose
    assert t.atc == "B01AC06" and t.status == "active"
    assert s.treatment_status == "known"


def test_most_recent_document_decides_status_and_the_contradiction_is_listed():
    records = [rec("old.pdf", "2022-01-01"), rec("new.pdf", "2024-01-01")]
    mentions = {
        "old.pdf": [m("treatment", "acide acétylsalicylique", code="B01AC06")],
        "new.pdf": [m("treatment", "acide acétylsalicylique", code="B01AC06", status="stopped"),
                    m("treatment", "clopidogrel", code="B01AC04", start=30, end=41)],
    }
    s = consolidate("P1", records, mentions)
    by_drug = {t.drug: t for t in s.treatments}
    assert by_drug["acide acétylsalicylique"].status == "stopped"
    assert by_drug["acide acétylsalicylique"].end == "2024-01-01"
    assert [t.drug for t in s.treatments] == ["clopidogrel", "acide acétylsalicylique"]  # active first
    assert [c.kind for c in s.conflicts] == ["stopped_still_listed"]


def test_negated_hypothetical_and_family_never_become_the_patients_entries():
    records = [rec("a.pdf")]
    mentions = {"a.pdf": [
        m("allergy", "iode", negated=True),
        m("history", "bronchopneumopathie chronique obstructive", code="J44", hypothetical=True),
        m("history", "infarctus du myocarde", code="I21", family=True, kind="medical"),
        m("treatment", "metformine", family=True),
        m("history", "hypertension artérielle", code="I10", kind="medical"),
    ]}
    s = consolidate("P1", records, mentions)
    assert s.allergies == [] and s.allergy_status == "unknown"
    assert s.treatments == [] and s.treatment_status == "unknown"
    assert [(h.label, h.kind) for h in s.history] == [("hypertension artérielle", "medical"),
                                                      ("infarctus du myocarde", "family")]


def test_three_states_are_never_inferred_from_an_empty_list():
    records = [rec("a.pdf"), rec("b.pdf")]
    s = consolidate("P1", records, {"a.pdf": [m("absence", "allergie", block="allergy")], "b.pdf": []})
    assert s.allergy_status == "none_known"
    assert s.history_status == "unknown" and s.treatment_status == "unknown"
    s2 = consolidate("P1", records, {"a.pdf": [], "b.pdf": []})
    assert s2.allergy_status == "unknown"


def test_allergy_against_none_known_in_another_document_is_a_conflict():
    records = [rec("a.pdf", "2023-01-01"), rec("b.pdf", "2024-01-01")]
    s = consolidate("P1", records, {
        "a.pdf": [m("allergy", "pénicilline", kind="allergy", reaction="urticaire")],
        "b.pdf": [m("absence", "allergie", block="allergy")],
    })
    assert s.allergy_status == "known"
    assert s.allergies[0].reaction == "urticaire"
    assert [c.kind for c in s.conflicts] == ["allergy_vs_none_known"]
    assert {src.document for src in s.conflicts[0].sources} == {"a.pdf", "b.pdf"}


def test_history_ordered_by_kind_then_date_undated_last():
    records = [rec("a.pdf")]
    s = consolidate("P1", records, {"a.pdf": [
        m("history", "appendicectomie", kind="surgical", date="1998"),
        m("history", "diabète de type 2", code="E11", kind="medical"),
        m("history", "hypertension artérielle", code="I10", kind="medical", date="2015"),
        m("history", "infarctus du myocarde", code="I21", kind="medical", date="2010"),
    ]})
    assert [h.label for h in s.history] == ["infarctus du myocarde", "hypertension artérielle",
                                            "diabète de type 2", "appendicectomie"]


def test_exact_duplicate_document_is_noted_not_counted():
    records = [rec("a.pdf", sha="same"), rec("copie de a.pdf", sha="same")]
    s = consolidate("P1", records, {
        "a.pdf": [m("history", "hypertension artérielle", code="I10")],
        "copie de a.pdf": [m("history", "hypertension artérielle", code="I10")],
    })
    dup = [d for d in s.documents if d.outcome == "duplicate"]
    assert [(d.path, d.duplicate_of) for d in dup] == [("copie de a.pdf", "a.pdf")]
    assert [src.document for src in s.history[0].sources] == ["a.pdf"]


def test_failed_document_is_a_warning_and_others_still_count():
    records = [rec("bad.pdf", error="truncated"), rec("a.pdf")]
    s = consolidate("P1", records, {"a.pdf": [m("allergy", "latex")], "bad.pdf": []})
    assert [(w.document, w.code) for w in s.warnings] == [("bad.pdf", "truncated")]
    assert [a.substance for a in s.allergies] == ["latex"]


def test_reviewed_entries_are_kept_and_disagreement_reported():
    records = [rec("a.pdf", "2023-01-01")]
    first = consolidate("P1", records, {"a.pdf": [m("treatment", "lévothyroxine", code="H03AA01", dose="75 µg")]})
    first.treatments[0].review = Review(status="validated", by="dr-x")
    first.treatments[0].dose = "100 µg"  # the doctor corrected it
    records2 = records + [rec("b.pdf", "2024-01-01")]
    second = consolidate("P1", records2, {
        "a.pdf": [m("treatment", "lévothyroxine", code="H03AA01", dose="75 µg")],
        "b.pdf": [m("allergy", "latex")],
    }, previous=first)
    assert len(second.treatments) == 1
    kept = second.treatments[0]
    assert kept.dose == "100 µg" and kept.review is not None and kept.review.by == "dr-x"
    assert [c.kind for c in second.conflicts] == ["validated_disagreement"]
    assert [a.substance for a in second.allergies] == ["latex"]


def test_alike_names_with_different_codes_stay_apart():
    records = [rec("a.pdf", "2023-01-01")]
    s = consolidate("P1", records, {"a.pdf": [
        m("treatment", "oméprazole", code="A02BC01", dose="10 mg"),
        m("treatment", "ésoméprazole", code="A02BC05", dose="40 mg", start=20, end=32),
    ]})
    assert sorted((t.drug, t.dose) for t in s.treatments) == [("oméprazole", "10 mg"), ("ésoméprazole", "40 mg")]


def test_findings_added_to_a_validated_file_stay_proposals():
    records = [rec("a.pdf", "2023-01-01")]
    first = consolidate("P1", records, {"a.pdf": [m("history", "hypertension artérielle", code="I10")]})
    first.status = "validated"  # the reviewer validated the whole file
    letter = [rec("a.pdf", "2023-01-01"), rec("b.pdf", "2024-01-01")]
    second = consolidate("P1", letter, {
        "a.pdf": [m("history", "hypertension artérielle", code="I10")],
        "b.pdf": [m("allergy", "latex")],
    }, previous=first)
    assert second.status == "validated"
    assert [(a.substance, a.added_after_validation) for a in second.allergies] == [("latex", True)]
    assert second.history[0].added_after_validation is False
    # The letter turns out to belong to another patient and is removed: its proposal goes with it,
    # while what the reviewer validated stays.
    third = consolidate("P1", records, {"a.pdf": [m("history", "hypertension artérielle", code="I10")]},
                        previous=second)
    assert third.allergies == [] and third.allergy_status == "unknown"
    assert [h.label for h in third.history] == ["hypertension artérielle"]
