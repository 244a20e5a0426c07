"""`synthese eval` on a folder of text cases: rendering, the scoring rules of text-case gold, the command.

The cases in tests/resources/text_cases were written for these tests (README there). Scoring rules are
checked on hand-made predictions, so they hold whatever the clinical reading finds; one run of the command
on the folder checks the whole path (render, run, score) and its output.
"""
from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pypdfium2 as pdfium
import pytest

from extractor.config import Settings
from extractor.documents.reader import read_document
from extractor.errors import BadArguments
from extractor.quality.evaluate_cases import aggregate_cases, is_case_folder, load_cases, score_case
from extractor.quality.render_text import layout_lines, render, scan_pdf, text_pdf
from models.gold import CaseAllergy, CaseGold, CaseHistory, CaseTreatment
from models.synthesis import AllergyEntry, HistoryEntry, Source, Synthesis, TreatmentEntry

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "tests" / "resources" / "text_cases"
# The real-text development set lives outside the repository: ../shared from the project's root (CI, main
# checkout), ../../shared from a worktree under wt/.
E3C = next((p for p in (ROOT.parent / "shared/data/e3c-dev/cases", ROOT.parent.parent / "shared/data/e3c-dev/cases")
            if p.is_dir()), None)

LONG_TEXT = (
    "Patiente de 71 ans aux antécédents d’hypertension artérielle, de cœlioscopie pour endométriose et "
    "d’ulcère gastroduodénal ; elle reçoit 5 µg/kg de fentanyl « en bolus ».\n\n"
    + "Compte rendu : l’évolution a été favorable sous traitement, sans récidive à trois mois. " * 60
    + "\nConclusion : cholécystite aiguë lithiasique."
)


def one_line(text: str) -> str:
    return " ".join(text.split())


def read_back(tmp_path: Path, pdf: bytes, name: str = "case.pdf"):
    path = tmp_path / name
    path.write_bytes(pdf)
    return read_document(path, tmp_path, Settings())


# --------------------------------------------------------------------------- rendering


def test_text_pdf_gives_back_the_text_and_every_span(tmp_path):
    pages = layout_lines(LONG_TEXT)
    assert len(pages) >= 2  # long enough to need a second page
    record = read_back(tmp_path, text_pdf(LONG_TEXT))
    assert record.kind == "text_pdf" and record.error is None
    assert len(record.pages) == len(pages)
    got = one_line(" ".join(p.text for p in record.pages))
    assert got == one_line(LONG_TEXT)  # nothing lost, cut or rewritten: ’ « » œ µ included
    for case in load_cases(CASES):
        text = one_line(" ".join(p.text for p in read_back(tmp_path, render(case.text, "text"), f"{case.case_id}.pdf").pages))
        for span in case.gold.spans():
            assert one_line(span) in text, (case.case_id, span)


def test_text_pdf_is_deterministic():
    assert text_pdf(LONG_TEXT) == text_pdf(LONG_TEXT)


@pytest.mark.slow
def test_scan_has_no_text_layer_is_seeded_and_reads_back_by_ocr(tmp_path):
    text = load_cases(CASES)[1].text  # cas02, one short paragraph: one page to OCR
    scan = scan_pdf(text_pdf(text), seed="cas02", dpi=200)
    assert scan == scan_pdf(text_pdf(text), seed="cas02", dpi=200)
    assert scan != scan_pdf(text_pdf(text), seed="cas03", dpi=200)  # the noise follows the seed
    doc = pdfium.PdfDocument(scan)
    try:
        assert len(doc) == 1
        assert doc[0].get_textpage().get_text_range().strip() == ""
    finally:
        doc.close()
    record = read_back(tmp_path, scan)
    assert record.kind == "scanned_pdf"
    ocr = one_line(record.pages[0].text)
    for word in ("asthmatique", "salbutamol", "allergie", "radiographie"):
        assert word in ocr.lower()


def test_unknown_rendering_is_refused():
    with pytest.raises(ValueError):
        render("texte", "photo")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- loading


def test_load_cases_reads_the_folder_and_checks_spans(tmp_path):
    cases = load_cases(CASES)
    assert [c.case_id for c in cases] == ["cas01", "cas02", "cas03"]
    assert cases[0].gold.case_id == "cas01" and cases[1].gold.allergy_status == "none_known"
    assert is_case_folder(CASES) and not is_case_folder(tmp_path)

    for name in ("cas01.txt", "cas01.gold.json", "cas02.txt"):
        (tmp_path / name).write_bytes((CASES / name).read_bytes())
    assert [c.case_id for c in load_cases(tmp_path)] == ["cas01"]  # cas02 has no gold: left out
    gold = json.loads((CASES / "cas01.gold.json").read_text())
    gold["antecedents"][0]["text"] = "hypertendue"  # not in the text
    (tmp_path / "cas01.gold.json").write_text(json.dumps(gold))
    with pytest.raises(BadArguments, match="not found in cas01.txt"):
        load_cases(tmp_path)
    (tmp_path / "cas01.gold.json").write_text("{not json")
    with pytest.raises(BadArguments, match="cas01"):
        load_cases(tmp_path)
    with pytest.raises(BadArguments, match="no case"):
        load_cases(tmp_path / "nowhere")


@pytest.mark.skipif(E3C is None, reason="the real-text development set (../shared/data/e3c-dev) is not here")
def test_e3c_development_set_loads_and_renders_whole(tmp_path):
    cases = load_cases(E3C)
    assert len(cases) >= 40
    for case in cases:
        record = read_back(tmp_path, render(case.text, "text"), f"{case.case_id}.pdf")
        assert one_line(" ".join(p.text for p in record.pages)) == one_line(case.text), case.case_id


# --------------------------------------------------------------------------- scoring rules


def src(snippet: str) -> list[Source]:
    return [Source(document="case.pdf", page=1, start=0, end=len(snippet), snippet=snippet)]


def syn(history=(), allergies=(), treatments=(), allergy_status="unknown") -> Synthesis:
    return Synthesis(dossier_id="c", generated_at=datetime(2026, 1, 1), extractor_version="test",
                     history=list(history), allergies=list(allergies), treatments=list(treatments),
                     allergy_status=allergy_status)


def h(label, code=None, kind="medical", snippet="…"):
    return HistoryEntry(label=label, code=code, kind=kind, sources=src(snippet))


def t(drug, atc=None, dose=None, status="active"):
    return TreatmentEntry(drug=drug, atc=atc, dose=dose, status=status, sources=src(drug))


def counts(score, block):
    c = score.blocks[block].counts
    return c.tp, c.fp, c.fn


def test_gold_code_matches_whatever_the_wording_and_a_different_code_falls_back_to_names():
    gold = CaseGold(case_id="c", antecedents=[
        CaseHistory(label="insuffisance rénale chronique", code="N18", text="IRC"),
        CaseHistory(label="hypertension artérielle", code="I10", variants=["HTA"]),
    ])
    # N18.5 is in N18 although no name is close; "HTA" coded I15 (the lexicon's choice) still matches by name:
    # a human annotator's category is evidence, not a veto.
    s = score_case(gold, syn(history=[h("néphropathie chronique stade 5", "N18.5"), h("HTA", "I15")]))
    assert counts(s, "history_own") == (2, 0, 0)
    s = score_case(gold, syn(history=[h("néphropathie diabétique", "E11.2")]))
    assert counts(s, "history_own") == (0, 1, 2)


def test_atc_class_prefix_and_several_gold_codes():
    gold = CaseGold(case_id="c", treatments=[
        CaseTreatment(drug="bêtabloquants", atc="C07", text="un bêtabloquant"),
        CaseTreatment(drug="acide acétylsalicylique", atc=["B01AC06", "N02BA01"], variants=["aspirine"]),
    ])
    pred = [t("bisoprolol", "C07AB07"), t("Kardégic", "B01AC06"), t("amlodipine", "C08CA01")]
    s = score_case(gold, syn(treatments=pred))
    assert counts(s, "treatments") == (2, 1, 0)
    assert [e.label for e in s.errors] == ["amlodipine"]
    # A class code in the prediction does not match a gold substance of the class: too vague.
    gold = CaseGold(case_id="c", treatments=[CaseTreatment(drug="bisoprolol", atc="C07AB07")])
    assert counts(score_case(gold, syn(treatments=[t("bêtabloquant", "C07")])), "treatments") == (0, 1, 1)


def test_optional_entries_are_neutral_and_required_ones_are_matched_first():
    gold = CaseGold(
        case_id="c",
        antecedents=[CaseHistory(label="bicytopénie", code="D61", variants=["anémie"])],
        optional_history=[CaseHistory(label="anémie ferriprive", code="D50"),
                          CaseHistory(label="pneumopathie", code="J18")],
        treatments=[CaseTreatment(drug="ceftriaxone", atc="J01DD04", dose="1 g", current=False, optional=True),
                    CaseTreatment(drug="vancomycine", atc="J01XA01", current=False, optional=True)],
    )
    # "anémie" is close to the required bicytopénie (variant) and to the optional anémie ferriprive: required first.
    s = score_case(gold, syn(history=[h("anémie"), h("pneumopathie", "J18.9")],
                             treatments=[t("ceftriaxone", "J01DD04", "1000 mg")]))
    assert counts(s, "history_own") == (1, 0, 0) and s.blocks["history_own"].neutral == 1
    assert counts(s, "treatments") == (0, 0, 0) and s.blocks["treatments"].neutral == 1
    # Status and dose are judged on optional pairs too: the in-stay drug reported active is a status error.
    assert (s.treatment_status.correct, s.treatment_status.total) == (0, 1)
    assert (s.dose.correct, s.dose.total) == (1, 1)
    assert s.errors == []  # unmatched optional entries are not false negatives


def test_family_and_own_history_are_scored_apart():
    gold = CaseGold(case_id="c", antecedents=[
        CaseHistory(label="infarctus du myocarde (père)", kind="family", code="I21"),
    ])
    s = score_case(gold, syn(history=[h("infarctus du myocarde", "I21.9")]))
    assert counts(s, "history_own") == (0, 1, 0) and counts(s, "history_family") == (0, 0, 1)
    s = score_case(gold, syn(history=[h("infarctus du myocarde", "I21.9", kind="family")]))
    assert counts(s, "history_own") == (0, 0, 0) and counts(s, "history_family") == (1, 0, 0)


def test_allergy_status_from_the_gold():
    none_known = CaseGold(case_id="c", no_known_allergy=True)
    assert none_known.allergy_status == "none_known"
    assert score_case(none_known, syn(allergy_status="none_known")).allergy_status_correct
    assert not score_case(none_known, syn(allergy_status="unknown")).allergy_status_correct
    assert CaseGold(case_id="c").allergy_status == "unknown"
    known = CaseGold(case_id="c", no_known_allergy=True,
                     allergies=[CaseAllergy(substance="pénicilline", text="allergie à la pénicilline")])
    assert known.allergy_status == "known"
    pred = syn(allergies=[AllergyEntry(substance="pénicillines", sources=src("allergie à la pénicilline"))],
               allergy_status="known")
    s = score_case(known, pred)
    assert counts(s, "allergies") == (1, 0, 0) and s.allergy_status_correct


def test_errors_carry_case_label_code_snippet_and_duplicates():
    gold = CaseGold(case_id="dev99", antecedents=[
        CaseHistory(label="diabète", code="E14", text="diabétique depuis 3 ans"),
        CaseHistory(label="asthme", code="J45", text="asthmatique"),
    ])
    pred = [h("diabète de type 2", "E11", snippet="patient diabétique"), h("diabète", "E14", snippet="diabète"),
            h("hypokaliémie", "E87.6", snippet="une hypokaliémie à 3,1")]
    s = score_case(gold, syn(history=pred))
    assert counts(s, "history_own") == (1, 2, 1)
    by_label = {e.label: e for e in s.errors}
    assert by_label["hypokaliémie"].error == "fp" and by_label["hypokaliémie"].snippet == "une hypokaliémie à 3,1"
    assert by_label["hypokaliémie"].code == "E87.6" and not by_label["hypokaliémie"].duplicate
    assert by_label["diabète de type 2"].duplicate  # the diabète went to the other prediction
    assert by_label["asthme"].error == "fn" and by_label["asthme"].snippet == "asthmatique"
    assert {e.case for e in s.errors} == {"dev99"}
    report = aggregate_cases([s])
    assert report.blocks["history_own"].duplicates == 1
    assert "dev99  hypokaliémie [E87.6]  « une hypokaliémie à 3,1 »" in report.errors_text()


def test_missing_prediction_misses_required_entries_only():
    gold = load_cases(CASES)[0].gold
    s = score_case(gold, None)
    assert counts(s, "history_own") == (0, 0, 3) and counts(s, "history_family") == (0, 0, 1)
    assert counts(s, "allergies") == (0, 0, 1) and counts(s, "treatments") == (0, 0, 3)
    assert not s.allergy_status_correct
    report = aggregate_cases([s, score_case(load_cases(CASES)[1].gold, syn(allergy_status="none_known"))])
    assert report.cases_missing == ["cas01"]
    assert (report.allergy_status_accuracy.correct, report.allergy_status_accuracy.total) == (1, 2)
    overall = report.blocks["overall"].counts
    assert (overall.tp, overall.fp, overall.fn) == (0, 0, 11)


# --------------------------------------------------------------------------- the command


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "cli.py", "eval", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    work = tmp_path_factory.mktemp("eval") / "work"
    return work, cli(CASES, "--json", "--work", work)


@pytest.mark.slow
def test_cli_renders_runs_and_scores_a_case_folder(evaluated):
    work, proc = evaluated
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert set(report) >= {"cases", "render", "blocks", "allergy_status_accuracy", "treatment_status_accuracy",
                           "dose_accuracy", "errors", "per_case", "cases_missing"}
    assert report["cases"] == 3 and report["render"] == "text" and report["cases_missing"] == []
    assert set(report["blocks"]) == {"history_own", "history_family", "allergies", "treatments", "overall"}
    for block in report["blocks"].values():
        assert set(block["counts"]) >= {"tp", "fp", "fn", "precision", "recall", "f1"} and "neutral" in block
    # Every required gold entry is either found or listed as missed, whatever the reading finds.
    required = {"history_own": 6, "history_family": 2, "allergies": 1, "treatments": 6}
    for block, n in required.items():
        c = report["blocks"][block]["counts"]
        assert c["tp"] + c["fn"] == n, block
        assert c["fp"] == sum(1 for e in report["errors"] if e["block"] == block and e["error"] == "fp")
    assert report["allergy_status_accuracy"]["total"] == 3
    # One dossier folder per case, the rendered PDF and the output in it, the gold nowhere in the work folder.
    assert sorted(p.name for p in work.iterdir() if p.is_dir() and not p.name.startswith(".")) == ["cas01", "cas02", "cas03"]
    assert (work / "cas01" / "cas01.pdf").is_file() and (work / "cas01" / "synthese.json").is_file()
    assert not list(work.rglob("*.gold.json")) and not list(work.rglob("*.txt"))


@pytest.mark.slow
def test_cli_scores_again_without_running_and_lists_errors(evaluated):
    work, first = evaluated
    proc = cli(CASES, "--no-run", "--work", work, "--errors")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Synthèse eval: 3 text cases" in proc.stdout
    report = json.loads(first.stdout)
    for e in report["errors"]:
        assert f"  {e['case']}  {e['label']}" in proc.stdout


def test_cli_refuses_bad_arguments(tmp_path):
    from typer.testing import CliRunner

    from cli import app

    def run(*args):  # in-process: these stop before any work, a new interpreter each would only cost time
        result = CliRunner().invoke(app, ["eval", *map(str, args)])
        return result.exit_code, " ".join(result.stderr.split())  # rich wraps the message

    (tmp_path / "notes.txt").write_text("à garder")
    code, message = run(CASES, "--work", tmp_path)  # a folder with content of someone else's: never emptied
    assert code == 2 and "not empty" in message
    assert (tmp_path / "notes.txt").read_text() == "à garder"
    code, message = run(CASES, "--no-run")
    assert code == 2 and "needs --work" in message
    code, message = run(CASES, "--render", "photo")
    assert code == 2 and "--render must be one of text, scan" in message
    code, message = run(tmp_path, "--errors")  # not a case folder: a generated corpus takes no --errors
    assert code == 2 and "text cases only" in message
