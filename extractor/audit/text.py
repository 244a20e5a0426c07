"""The audit report as rich tables for a terminal (`synthese audit`, the default format)."""
from __future__ import annotations

from rich.table import Table


def _pct(v) -> str:
    return "–" if v is None else f"{100 * v:.1f} %"


def _table(title: str, columns: list[str], rows: list[list]) -> Table:
    t = Table(title=title, title_justify="left")
    for i, c in enumerate(columns):
        t.add_column(c, justify="left" if i == 0 else "right")
    for r in rows:
        t.add_row(*["–" if v is None else str(v) for v in r])
    return t


def report_tables(report: dict) -> list:
    """Every section of the report as a table: flags, checks, score, blocks, breakdowns, reasons, runs."""
    run, prev = report["run"], report["previous_run"]
    head = (f"Audit of {report['dossiers']} dossiers as of run {run['run_id']} ({run['started_at']})"
            + (f", compared with run {prev['run_id']}" if prev else ", no previous run"))

    def trend(t):
        return [None, None, None] if t is None else [t["new"], t["resolved"], t["persisting"]]

    flags = _table("Empty and disorganised dossiers", ["flag", "dossiers", "of", "rate", "95 % CI", "new", "resolved", "persisting"], [
        [name, f["count"], f["of"], _pct(f["rate"]), f"{_pct(f['ci_low'])} – {_pct(f['ci_high'])}", *trend(f["trend"])]
        for name, f in report["flags"].items()])
    checks = _table("Checks (rate: share of the dossiers each check applies to)",
                    ["check", "category", "threshold", "applies", "failing", "rate", "95 % CI", "status",
                     "new", "resolved", "persisting"], [
        [c["check_id"], c["category"], _pct(c["threshold"]), c["applicable"], c["failed"], _pct(c["rate"]),
         f"{_pct(c['ci_low'])} – {_pct(c['ci_high'])}", c["status"], c["new"], c["resolved"], c["persisting"]]
        for c in report["checks"]])
    s = report["score"]
    stats = _table("Quality score (0-100)", ["statistic", "score"], [
        [k, None if s[k] is None else round(s[k], 1)] for k in ("mean", "median", "min", "max")])
    score = _table("Score distribution", ["score", "dossiers"], [[h["bucket"], h["dossiers"]] for h in s["histogram"]])
    blocks = _table("Blocks by state", ["block", "known", "none_known", "unknown"], [
        [b["block"], *[f"{b[k]['count']} ({_pct(b[k]['rate'])})" for k in ("known", "none_known", "unknown")]]
        for b in report["blocks"]])
    ocr = _table("Dossiers by OCR share", ["OCR share", "dossiers", "empty", "disorganised", "mean score"], [
        [b["ocr_share"], b["dossiers"], b["empty"], b["disorganised"],
         None if b["mean_score"] is None else round(b["mean_score"], 1)] for b in report["by_ocr_share"]])
    types = _table("Documents by type", ["type", "documents", "dossiers", "undated", "read by OCR"], [
        [t["doc_type"], t["documents"], t["dossiers"], t["undated"], t["ocr"]] for t in report["by_doc_type"]])
    reasons = _table("Failure reasons", ["outcome", "reason", "documents", "dossiers"], [
        [r["outcome"], r["reason"], r["documents"], r["dossiers"]] for r in report["failure_reasons"]])
    runs = _table("Runs (figures as of each run)", ["run", "started", "processed", "skipped", "dossiers", "empty",
                                                    "disorganised", "mean score"], [
        [r["run_id"], r["started_at"], r["dossiers_processed"], r["dossiers_skipped"], r["dossiers"], r["empty"],
         r["disorganised"], None if r["mean_score"] is None else round(r["mean_score"], 1)] for r in report["runs"]])
    return [head, flags, checks, stats, score, blocks, ocr, types, reasons, runs]
