"""Review decisions on real synthese.json files (no browser): what each decision writes, the version
check, undo, and what a later consolidation keeps (a rejected entry stays rejected, a reviewer's
`none_known` stands until a document lists something)."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from extractor.clinical.consolidate import preserve_reviewed
from extractor.review.decisions import BadDecision, Decision, Reviews, StaleVersion, apply_decision
from extractor.review.dossiers import load
from models.synthesis import AllergyEntry, HistoryEntry, Synthesis, TreatmentEntry


def synthesis(**fields) -> Synthesis:
    return Synthesis(dossier_id="D1", generated_at=datetime(2026, 1, 1, tzinfo=timezone.utc), extractor_version="t",
                     **fields)


def ramipril(dose="5 mg") -> TreatmentEntry:
    return TreatmentEntry(id="t-ram", drug="ramipril", dose=dose, frequency="1 le matin", confidence=0.95)


def test_a_correction_keeps_what_the_run_proposed_across_corrections():
    s = synthesis(treatments=[ramipril()], treatment_status="known")
    apply_decision(s, Decision("correct", "treatments", "t-ram", {"drug": "ramipril", "dose": "10 mg"}), "Dr A", "r1")
    apply_decision(s, Decision("correct", "treatments", "t-ram", {"dose": "7,5 mg", "frequency": "matin et soir"}),
                   "Dr B", "r1")
    t = s.treatments[0]
    assert (t.dose, t.frequency) == ("7,5 mg", "matin et soir")
    assert t.review.status == "edited" and t.review.by == "Dr B" and t.review.run_id == "r1"
    assert t.review.original == {"dose": "5 mg", "frequency": "1 le matin"}
    with pytest.raises(BadDecision):
        apply_decision(s, Decision("correct", "treatments", "t-ram", {"drug": " "}), "Dr B", None)


def test_a_block_is_declared_none_known_only_without_live_entries():
    s = synthesis(allergies=[AllergyEntry(id="a-1", substance="pénicilline")], allergy_status="known")
    with pytest.raises(BadDecision, match="rejetez-les d'abord"):
        apply_decision(s, Decision("block_status", "allergies", block_status="none_known"), "Dr A", None)
    apply_decision(s, Decision("reject", "allergies", "a-1"), "Dr A", None)
    assert s.allergy_status == "unknown"  # nothing left the reviewer keeps
    apply_decision(s, Decision("block_status", "allergies", block_status="none_known"), "Dr A", None)
    assert s.allergy_status == "none_known" and s.block_reviews["allergy"].by == "Dr A"
    # Adding an allergy afterwards makes the block known again and drops the reviewer's "none".
    apply_decision(s, Decision("add", "allergies", fields={"substance": "latex", "reaction": "urticaire"}), "Dr A", None)
    assert s.allergy_status == "known" and "allergy" not in s.block_reviews
    assert s.allergies[-1].review.status == "added" and s.allergies[-1].sources == []
    assert s.allergies[-1].verification == "confirmed"


def test_a_later_run_keeps_rejections_and_the_reviewers_block_status():
    previous = synthesis(
        history=[HistoryEntry(id="h-1", label="asthme", code="J45")],
        allergies=[AllergyEntry(id="a-1", substance="pénicilline")],
    )
    apply_decision(previous, Decision("reject", "history", "h-1"), "Dr A", None)
    apply_decision(previous, Decision("reject", "allergies", "a-1"), "Dr A", None)
    apply_decision(previous, Decision("block_status", "allergies", block_status="none_known"), "Dr A", None)
    apply_decision(previous, Decision("block_status", "treatments", block_status="none_known"), "Dr A", None)

    # The documents still say asthme and pénicilline, now with another reaction, and a new treatment.
    new = synthesis(
        history=[HistoryEntry(id="h-1", label="asthme", code="J45", date="2010")],
        allergies=[AllergyEntry(id="a-1", substance="pénicilline", reaction="urticaire")],
        treatments=[ramipril()],
        history_status="known", allergy_status="known", treatment_status="known",
    )
    new.conflicts = []
    kept = preserve_reviewed(new, previous, {"history": False, "allergy": False, "treatment": False})
    assert [e.review.status for e in kept.history] == ["rejected"]  # not proposed again
    assert [e.review.status for e in kept.allergies] == ["rejected"]
    assert kept.history_status == "unknown"
    assert kept.allergy_status == "none_known" and kept.block_reviews["allergy"].status == "none_known"
    # The reviewer said "no treatment"; the documents now list one: known, and a conflict to settle.
    assert kept.treatment_status == "known"
    disagreements = [c for c in kept.conflicts if c.kind == "validated_disagreement"]
    assert [c.block for c in disagreements] == ["treatment"]


def write(tmp_path, s: Synthesis):
    folder = tmp_path / "D1"
    folder.mkdir(exist_ok=True)
    (folder / "synthese.json").write_text(s.model_dump_json(indent=2))
    return folder


def test_stale_versions_are_refused_and_undo_restores(tmp_path):
    folder = write(tmp_path, synthesis(treatments=[ramipril()], treatment_status="known"))
    reviews = Reviews(tmp_path / ".synthese" / "ledger.duckdb")
    page = load("D1", folder)
    applied = reviews.decide("D1", folder, page.etag, Decision("reject", "treatments", "t-ram"), "Dr A")
    after_reject = (folder / "synthese.json").read_bytes()
    # A second decision made on the page as it was before: refused, nothing written.
    with pytest.raises(StaleVersion):
        reviews.decide("D1", folder, page.etag, Decision("validate", "treatments", "t-ram"), "Dr B")
    assert (folder / "synthese.json").read_bytes() == after_reject
    reviews.undo("D1", folder, applied.etag, "Dr A")
    data = json.loads((folder / "synthese.json").read_text())
    assert data["treatments"][0]["review"] is None and data["treatment_status"] == "known"
    with pytest.raises(BadDecision, match="Rien à annuler"):
        reviews.undo("D1", folder, load("D1", folder).etag, "Dr A")
    # Undo of a decision someone else changed since is refused.
    current = load("D1", folder)
    applied = reviews.decide("D1", folder, current.etag, Decision("validate", "treatments", "t-ram"), "Dr A")
    other = Reviews(tmp_path / ".synthese" / "ledger.duckdb")
    other.decide("D1", folder, applied.etag, Decision("reject", "treatments", "t-ram"), "Dr B")
    with pytest.raises(BadDecision, match="ne peut plus être annulée"):
        reviews.undo("D1", folder, load("D1", folder).etag, "Dr A")
    assert reviews.pending == []  # every row reached the ledger
