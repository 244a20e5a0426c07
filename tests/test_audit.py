"""The quality audit (issue 13) on a corpus whose flags are known in advance (tests/audit_corpus.py).

One real pipeline run per corpus state, shared by the module: run 1, then the corpus changes and run 2.
Every count, rate, status and new / resolved / persisting figure below was worked out by hand from the
corpus description, not read back from the code.
"""
from __future__ import annotations

import csv
import functools
import http.server
import io
import json
import math
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import duckdb
import pytest
from typer.testing import CliRunner

from audit_corpus import change_corpus_v2, make_corpus_v1
from cli import app
from extractor.audit.catalogue import load_checks
from extractor.audit.report import wilson
from extractor.documents.classify import find_birth_date

REPO = Path(__file__).resolve().parent.parent
CHECK_IDS = [c.id for c in load_checks()]


def _run_pipeline(root: Path) -> subprocess.CompletedProcess:
    # stdout is a pipe, as under cron or CI: the summary must come as plain lines.
    return subprocess.run([sys.executable, "cli.py", "run", str(root), "--no-progress", "--workers", "1"],
                          cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300)


def _cli(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def _audit_json(root: Path) -> dict:
    res = _cli("audit", str(root), "--format", "json")
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = make_corpus_v1(tmp_path_factory.mktemp("audit") / "root")
    first = _run_pipeline(root)
    assert first.returncode == 1, first.stderr  # D_failed's truncated PDF
    report1 = _audit_json(root)
    change_corpus_v2(root)
    second = _run_pipeline(root)
    assert second.returncode == 1, second.stderr  # H_clean's truncated PDF
    report2 = _audit_json(root)
    return SimpleNamespace(root=root, first=first, second=second, report1=report1, report2=report2,
                           ledger=root / ".synthese" / "ledger.duckdb")


def _checks(report: dict) -> dict:
    return {c["check_id"]: c for c in report["checks"]}


def _query(ledger: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(ledger), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


# check: (applies to, failing, status) after run 1 (8 dossiers A..H)
RUN1 = {
    "no_document": (8, 1, "failed"),  # A
    "administrative_only": (7, 1, "failed"),  # B
    "no_medical_content": (8, 2, "failed"),  # A, B
    "history_unknown": (8, 2, "passed"),  # A, B: 25 % <= 50 %
    "allergy_unknown": (8, 3, "passed"),  # A, B, E
    "treatment_unknown": (8, 2, "passed"),  # A, B (E has salbutamol)
    "failed_document": (7, 1, "failed"),  # D
    "unknown_doc_type": (7, 0, "passed"),
    "undated_document": (7, 1, "passed"),  # E: 14.3 % <= 20 %
    "mostly_undated": (7, 1, "failed"),  # E: 14.3 % > 10 %
    "mostly_scanned": (7, 0, "passed"),
    "future_date": (6, 1, "failed"),  # G; A has no document, E none dated
    "date_before_birth": (1, 1, "failed"),  # only G gives a date of birth
    "contradiction": (7, 1, "failed"),  # F
    "duplicate_document": (7, 1, "failed"),  # C
}
# check: (applies to, failing, status, new, resolved, persisting) after run 2 (9 dossiers, I_new added)
RUN2 = {
    "no_document": (9, 2, "failed", 1, 0, 1),  # I new, A persists
    "administrative_only": (7, 1, "failed", 0, 0, 1),
    "no_medical_content": (9, 3, "failed", 1, 0, 2),
    "history_unknown": (9, 3, "passed", 1, 0, 2),
    "allergy_unknown": (9, 3, "passed", 1, 1, 2),  # E now says "pas d'allergie connue"
    "treatment_unknown": (9, 3, "passed", 1, 0, 2),
    "failed_document": (7, 1, "failed", 1, 1, 0),  # H new, D resolved
    "unknown_doc_type": (7, 0, "passed", 0, 0, 0),
    "undated_document": (7, 1, "passed", 0, 0, 1),
    "mostly_undated": (7, 0, "passed", 0, 1, 0),  # E: 1 undated of 2
    "mostly_scanned": (7, 0, "passed", 0, 0, 0),
    "future_date": (7, 1, "failed", 0, 0, 1),
    "date_before_birth": (1, 1, "failed", 0, 0, 1),
    "contradiction": (7, 1, "failed", 0, 0, 1),
    "duplicate_document": (7, 1, "failed", 0, 0, 1),
}


def test_the_catalogue_covers_the_categories_and_defines_the_flags():
    checks = load_checks()
    assert [c.id for c in checks] == list(RUN1)
    assert {c.category for c in checks} == {"completeness", "conformance", "plausibility", "uniqueness"}
    assert {c.id for c in checks if c.flag == "empty"} == {"no_document", "no_medical_content"}
    assert {c.id for c in checks if c.flag == "disorganised"} == {
        "failed_document", "mostly_undated", "mostly_scanned", "duplicate_document"}
    assert all(c.definition_fr and c.definition_en and 0 <= c.threshold <= 1 for c in checks)


def test_wilson_interval_matches_published_values():
    lo, hi = wilson(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    lo, hi = wilson(5, 10)
    assert (lo, hi) == (pytest.approx(0.2366, abs=1e-4), pytest.approx(0.7634, abs=1e-4))
    assert wilson(10, 10)[1] == 1.0 and wilson(0, 0) == (None, None)


def test_birth_dates_are_read_and_told_apart_from_document_dates():
    assert find_birth_date("Compte rendu du 12 mars 1955\nPatient né le 03/04/1960.") == "1960-04-03"
    assert find_birth_date("Mme X, née le 7 juin 1948") == "1948-06-07"
    assert find_birth_date("Date de naissance : 1971-02-28") == "1971-02-28"
    assert find_birth_date("Consultation du 12/03/2024, vu pour HTA.") is None


def test_run_1_counts_rates_and_statuses(runs):
    rep = runs.report1
    assert rep["dossiers"] == 8 and rep["previous_run"] is None
    got = {c: (v["applicable"], v["failed"], v["status"]) for c, v in _checks(rep).items()}
    assert got == RUN1
    for c in rep["checks"]:
        assert c["rate"] == pytest.approx(c["failed"] / c["applicable"])
        assert (c["ci_low"], c["ci_high"]) == pytest.approx(wilson(c["failed"], c["applicable"]))
        assert c["new"] is None  # no previous run to compare with
    assert (rep["flags"]["empty"]["count"], rep["flags"]["empty"]["of"]) == (2, 8)  # A, B
    assert (rep["flags"]["disorganised"]["count"], rep["flags"]["disorganised"]["of"]) == (3, 8)  # C, D, E
    assert rep["flags"]["empty"]["rate"] == 0.25
    assert rep["flags"]["empty"]["trend"] is None


def test_run_2_counts_statuses_and_trend(runs):
    rep = runs.report2
    assert rep["dossiers"] == 9
    assert rep["previous_run"]["run_id"] == runs.report1["run"]["run_id"]
    got = {c: (v["applicable"], v["failed"], v["status"], v["new"], v["resolved"], v["persisting"])
           for c, v in _checks(rep).items()}
    assert got == RUN2
    assert rep["flags"]["empty"]["count"] == 3  # A, B, I
    assert rep["flags"]["empty"]["trend"] == {"new": 1, "resolved": 0, "persisting": 2}
    assert rep["flags"]["disorganised"]["count"] == 2  # C, H
    assert rep["flags"]["disorganised"]["trend"] == {"new": 1, "resolved": 2, "persisting": 1}
    # The figures of each run, as of that run: unchanged dossiers skipped by run 2 keep their state.
    assert [(r["dossiers"], r["empty"], r["disorganised"], r["dossiers_processed"], r["dossiers_skipped"])
            for r in rep["runs"]] == [(8, 2, 3, 8, 0), (9, 3, 2, 4, 5)]


def test_reasons_name_counts_and_reasons_never_files(runs):
    rows = dict(((d, c), r) for d, c, r in _query(
        runs.ledger, "SELECT dossier_id, check_id, reason FROM check_results WHERE is_latest AND status = 'failed'"))
    assert rows[("H_clean", "failed_document")] == "1 of 2 document(s) failed: truncated"
    assert rows[("C_dup", "duplicate_document")] == "1 exact duplicate(s)"
    assert rows[("F_conflict", "contradiction")] == "1 conflict(s): allergy_vs_none_known"
    assert rows[("G_dates", "date_before_birth")] == "1 document(s) dated before the date of birth"
    assert rows[("E_undated", "undated_document")] == "1 of 2 document(s) undated"
    assert rows[("I_new", "no_document")] == "no document"
    assert not any(".pdf" in r for r in rows.values())


def test_score_follows_its_formula_and_the_flags_agree_with_the_ledger(runs):
    weights = {c.id: c.weight for c in load_checks()}
    results = _query(runs.ledger, "SELECT run_id, dossier_id, check_id, status FROM check_results")
    expected: dict = {}
    for run_id, dossier_id, check_id, status in results:
        passed, applies = expected.get((run_id, dossier_id), (0, 0))
        if status != "not_applicable":
            expected[(run_id, dossier_id)] = (passed + weights[check_id] * (status == "passed"),
                                              applies + weights[check_id])
    flags = _query(runs.ledger, "SELECT f.run_id, f.dossier_id, f.score, f.empty, f.disorganised, d.empty, "
                                "d.disorganised FROM dossier_flags f JOIN dossiers d USING (run_id, dossier_id)")
    assert len(flags) == 8 + 4  # run 2 processed D, E, H, I
    for run_id, dossier_id, score, empty, disorganised, led_empty, led_disorganised in flags:
        passed, applies = expected[(run_id, dossier_id)]
        assert score == math.floor(100 * passed / applies + 0.5)  # duckdb rounds half away from zero
        assert (empty, disorganised) == (led_empty, led_disorganised), dossier_id
    latest = dict(_query(runs.ledger, "SELECT dossier_id, score FROM dossier_flags WHERE is_latest"))
    # A: fails every check that applies to it; B: passes 17 of 26 weight points; D: clean since run 2.
    assert (latest["A_empty"], latest["B_admin"], latest["D_failed"]) == (0, 65, 100)
    hist = {h["bucket"]: h["dossiers"] for h in runs.report2["score"]["histogram"]}
    assert sum(hist.values()) == 9 and hist["0-9"] == 2 and hist["100"] == 1


def test_breakdowns_blocks_and_failure_reasons(runs):
    rep = runs.report2
    blocks = {b["block"]: {s: b[s]["count"] for s in ("known", "none_known", "unknown")} for b in rep["blocks"]}
    assert blocks["allergy"] == {"known": 4, "none_known": 2, "unknown": 3}  # C D F H / E G / A B I
    assert {r["reason"]: (r["documents"], r["dossiers"]) for r in rep["failure_reasons"]} == {"truncated": (1, 1)}
    by_type = {t["doc_type"]: t["documents"] for t in rep["by_doc_type"]}
    assert by_type == {"consultation": 9, "administratif": 1, "(failed)": 1, "(duplicate)": 1}
    ocr = {b["ocr_share"]: b["dossiers"] for b in rep["by_ocr_share"]}
    assert ocr == {"no document": 2, "0%": 7, "1-49%": 0, "50-99%": 0, "100%": 0}


def test_drill_down_sample_is_reproducible_and_its_sql_lists_them_all(runs):
    first = _cli("audit", str(runs.root), "--check", "no_medical_content", "--sample", "2", "--seed", "7")
    again = _cli("audit", str(runs.root), "--check", "no_medical_content", "--sample", "2", "--seed", "7")
    assert first.exit_code == 0 and first.stdout == again.stdout
    lines = first.stdout.splitlines()
    picked = [ln.split("\t") for ln in lines[:2]]
    assert {d for d, _ in picked} < {"A_empty", "B_admin", "I_new"}
    assert lines[2] == "-- 2 of 3 dossiers failing no_medical_content (seed 7); all of them:"
    listed = _cli("sql", "\n".join(lines[3:]), str(runs.root), "--format", "csv")
    assert [r[0] for r in csv.reader(io.StringIO(listed.stdout))][1:] == ["A_empty", "B_admin", "I_new"]
    bad = _cli("audit", str(runs.root), "--check", "no_such_check")
    assert bad.exit_code == 2 and "no_document" in bad.stderr


def test_csv_and_parquet_hold_the_json_figures(runs, tmp_path):
    res = _cli("audit", str(runs.root), "--format", "csv")
    rows = {r["check_id"]: r for r in csv.DictReader(io.StringIO(res.stdout))}
    assert list(rows) == CHECK_IDS
    for c in runs.report2["checks"]:
        assert (int(rows[c["check_id"]]["failed"]), rows[c["check_id"]]["status"]) == (c["failed"], c["status"])
    out = tmp_path / "checks.parquet"
    assert _cli("audit", str(runs.root), "--format", "parquet", "--output", str(out)).exit_code == 0
    con = duckdb.connect()
    got = con.execute(f"SELECT check_id, applicable, failed, rate, new, resolved, persisting FROM '{out}'").fetchall()
    con.close()
    assert got == [(c["check_id"], c["applicable"], c["failed"], c["rate"], c["new"], c["resolved"], c["persisting"])
                   for c in runs.report2["checks"]]
    assert _cli("audit", str(runs.root), "--format", "parquet").exit_code == 2  # needs --output


def test_a_broken_check_is_an_error_and_an_unused_one_not_applicable(runs, tmp_path):
    cat = tmp_path / "checks.toml"
    base = 'category = "conformance"\nseverity = "low"\nthreshold = 0.1\nflag = ""\nlabel_fr = "x"\nlabel_en = "x"\n' \
           'definition_fr = "x"\ndefinition_en = "x"\nreason = "\'x\'"\n'
    cat.write_text(f'[[check]]\nid = "broken"\n{base}applies = "true"\nfails = "no_such_column > 0"\n'
                   f'[[check]]\nid = "never"\n{base}applies = "documents > 1000"\nfails = "true"\n'
                   f'[[check]]\nid = "has_doc"\n{base}applies = "true"\nfails = "documents = 0"\n')
    res = _cli("audit", "--ledger", str(runs.ledger), "--checks", str(cat), "--format", "json")
    got = {c["check_id"]: (c["status"], c["applicable"], c["failed"]) for c in json.loads(res.stdout)["checks"]}
    assert got == {"broken": ("error", 0, 0), "never": ("not_applicable", 0, 0), "has_doc": ("failed", 9, 2)}
    assert "no_such_column" in json.loads(res.stdout)["checks"][0]["error"]
    cat.write_text('[[check]]\nid = "x"\ncategory = "vibes"\n')
    assert _cli("audit", "--ledger", str(runs.ledger), "--checks", str(cat)).exit_code == 2


def test_sql_is_read_only_and_touches_no_file(runs, tmp_path):
    res = _cli("sql", "SELECT count(*) AS n FROM check_results WHERE is_latest AND status = 'failed'",
               str(runs.root), "--format", "json")
    assert json.loads(res.stdout) == [{"n": sum(v[1] for v in RUN2.values())}]
    before = _query(runs.ledger, "SELECT count(*) FROM runs")
    assert _cli("sql", "DELETE FROM runs", str(runs.root)).exit_code == 2
    assert _query(runs.ledger, "SELECT count(*) FROM runs") == before
    target = tmp_path / "out.csv"
    assert _cli("sql", f"COPY dossiers TO '{target}'", str(runs.root)).exit_code == 2
    assert not target.exists()
    assert _cli("sql", "SELECT 1", "--ledger", str(tmp_path / "none.duckdb")).exit_code == 3


def test_run_summary_is_plain_lines_when_stdout_is_not_a_terminal(runs):
    out = runs.first.stdout
    assert not set("│┃┏━") & set(out)
    lines = out.splitlines()
    assert "run: dossiers processed / skipped / total: 8 / 0 / 8" in lines
    assert "run: failed: truncated: 1" in lines
    assert ("dossier F_conflict: docs 2, OCR pages 0, failed 0, history 3 (known), allergies 1 (known), "
            "treatments 3 active / 3 (known), conflicts 1") in lines
    assert "run: dossiers processed / skipped / total: 9 / 0 / 9" not in runs.second.stdout.splitlines()
    assert "run: dossiers processed / skipped / total: 4 / 5 / 9" in runs.second.stdout.splitlines()


def _lookup(report: dict, key: str):
    node = report
    for seg in key.split("."):
        if isinstance(node, list):
            node = node[int(seg)] if seg.isdigit() else next(x for x in node if seg in (x.get("check_id"), x.get("block")))
        else:
            node = node[seg]
    return node


def test_html_report_renders_offline_and_shows_the_json_figures(runs, tmp_path):
    from helpers_browser import browser_page

    html = tmp_path / "report.html"
    assert _cli("audit", str(runs.root), "--html", str(html), "--format", "json").exit_code == 0
    text = html.read_text(encoding="utf-8")
    assert "<script" not in text and "<link" not in text and "url(" not in text and "src=" not in text
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with browser_page() as page:
            page.goto(f"http://127.0.0.1:{server.server_port}/report.html")
            cells = page.eval_on_selector_all(
                "[data-key]", "els => els.map(e => [e.dataset.key, e.dataset.value, e.textContent])")
            bars = page.locator("#checks svg rect.bar").count()
            assert page.outside_requests == []
            page.emulate_media(media="print")
            assert page.pdf()[:4] == b"%PDF"  # prints
    finally:
        server.shutdown()
    report = runs.report2
    assert len(cells) >= 250
    keys = {k for k, _, _ in cells}
    for c in CHECK_IDS:
        assert {f"checks.{c}.{f}" for f in ("applicable", "failed", "rate", "status", "new", "resolved", "persisting")} <= keys
    assert bars == len(CHECK_IDS)
    for key, value, shown in cells:
        want = _lookup(report, key)
        assert json.loads(value) == want, key
        if isinstance(want, int) and not isinstance(want, bool):
            assert shown == str(want), key
        elif key.rsplit(".", 1)[-1] in ("rate", "ci_low", "ci_high", "threshold") and want is not None:
            assert shown == f"{100 * want:.1f} %", key


def test_a_ledger_from_before_the_audit_gets_a_clear_message(tmp_path):
    from extractor.batch.ledger import SCHEMA

    old = tmp_path / "old.duckdb"
    con = duckdb.connect(str(old))
    for stmt in SCHEMA[:7]:  # the tables as they were before the audit's columns
        con.execute(stmt)
    con.close()
    res = _cli("audit", "--ledger", str(old))
    assert res.exit_code == 3 and "predates the quality audit" in res.stderr
    assert _cli("audit", "--ledger", str(tmp_path / "missing.duckdb")).exit_code == 3
    assert _cli("audit").exit_code == 2  # neither ROOT nor --ledger


def test_readme_states_the_catalogue_thresholds_and_flags():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Quality audit"):]
    for c in load_checks():
        row = next(ln for ln in section.splitlines() if ln.startswith("|") and f"`{c.id}`" in ln)
        cells = [x.strip() for x in row.split("|")]
        assert f"{c.threshold * 100:g} %" in cells and c.flag in cells and c.category in cells, c.id
