"""Validated work preserved (issue 5 §4), through real `synthese run`s: a reviewer edits synthese.json,
a new document arrives, the next run keeps every reviewed entry exactly as the reviewer left it,
adds the new findings as proposed and reports where the documents now disagree.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from helpers_docs import text_pdf

REPO = Path(__file__).resolve().parent.parent

CONSULTATION = [
    "Compte rendu de consultation du 12 mars 2024",
    "Antécédents : hypertension artérielle, diabète de type 2.",
    "Allergie à la pénicilline avec urticaire généralisée.",
    "Traitement actuel : metformine 1000 mg matin et soir,",
    "ramipril 5 mg le matin, atorvastatine 20 mg le soir.",
]
LETTER = [
    "Courrier du 3 juin 2024",
    "Cher confrère, je revois votre patient ce jour.",
    "Allergie à l'amoxicilline découverte en mai (œdème de Quincke).",
    "Traitement : ramipril 7,5 mg le matin.",
]
REVIEW = {"status": "validated", "by": "dr-x"}


def run(root: Path) -> None:
    proc = subprocess.run([sys.executable, "cli.py", "run", str(root), "--workers", "1", "--no-progress"],
                          cwd=REPO, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]


def load(dossier: Path) -> dict:
    return json.loads((dossier / "synthese.json").read_text())


def save(dossier: Path, data: dict) -> None:
    (dossier / "synthese.json").write_text(json.dumps(data, ensure_ascii=False, indent=2))


def by_drug(data: dict, drug: str) -> dict:
    found = [t for t in data["treatments"] if t["drug"] == drug]
    assert len(found) == 1, [t["drug"] for t in data["treatments"]]
    return found[0]


def test_reviewed_entries_survive_new_documents_and_disagreement_is_reported(tmp_path):
    root = tmp_path / "root"
    entry, whole = root / "D-entry", root / "D-file"
    for d in (entry, whole):
        d.mkdir(parents=True)
        text_pdf(d / "consultation.pdf", [CONSULTATION])
    run(root)

    # Dossier 1: the reviewer validates ramipril with another dose, and atorvastatine as it is.
    data = load(entry)
    assert by_drug(data, "ramipril")["dose"] == "5 mg"
    by_drug(data, "ramipril").update(review=REVIEW, dose="10 mg")
    by_drug(data, "atorvastatine")["review"] = REVIEW
    save(entry, data)
    reviewed = {t["drug"]: t for t in data["treatments"] if t.get("review")}
    # Dossier 2: the whole file is validated.
    file_data = load(whole)
    file_data["status"] = "validated"
    save(whole, file_data)

    for d in (entry, whole):
        text_pdf(d / "courrier.pdf", [LETTER])
    run(root)

    after = load(entry)
    for drug, before in reviewed.items():
        assert by_drug(after, drug) == before  # the whole entry dict, review and sources included
    amox = [a for a in after["allergies"] if a["substance"] == "amoxicilline"]
    assert amox and amox[0].get("review") is None  # the new finding is proposed
    disagree = [c for c in after["conflicts"] if c["kind"] == "validated_disagreement"]
    assert [c["entry"] for c in disagree] == [reviewed["ramipril"]["id"]]
    assert "'10 mg' -> '7,5 mg'" in disagree[0]["message"]
    assert "courrier.pdf" in {s["document"] for s in disagree[0]["sources"]}
    assert by_drug(after, "metformine").get("review") is None  # unreviewed entries go on being proposed

    file_after = load(whole)
    assert file_after["status"] == "validated"
    for block in ("history", "allergies", "treatments"):
        for e in file_data[block]:
            assert e in file_after[block]
    assert [a for a in file_after["allergies"] if a["substance"] == "amoxicilline"]
    assert [c["entry"] for c in file_after["conflicts"] if c["kind"] == "validated_disagreement"] == \
        [by_drug(file_data, "ramipril")["id"]]

    # A reviewed drug no longer written anywhere is still kept, unchanged.
    text_pdf(entry / "consultation.pdf", [CONSULTATION[:4] + ["ramipril 5 mg le matin."]])
    run(root)
    last = load(entry)
    assert by_drug(last, "atorvastatine") == reviewed["atorvastatine"]
    assert by_drug(last, "ramipril") == reviewed["ramipril"]
