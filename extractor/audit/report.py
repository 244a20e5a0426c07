"""The audit figures, built from the ledger's audit views (see `Ledger.install_audit_views`).

In: an open `Ledger`. Out: a plain dict, the JSON document of `synthese audit --format json`, that the
tables, CSV/Parquet and HTML outputs all show. Every rate comes with its count, its denominator and a
95 % Wilson score interval. "As of" a run means each dossier's latest row from that run or an earlier
one: an incremental run that skipped an unchanged dossier leaves its earlier state in force.
"""
from __future__ import annotations

import math
import random
from datetime import datetime, timezone

from extractor.batch.ledger import Ledger, dossier_flags_sql
from extractor.errors import BadArguments, CouldNotRun

Z95 = 1.959963984540054
BLOCKS = ("history", "allergy", "treatment")
OCR_BUCKETS = ("no document", "0%", "1-49%", "50-99%", "100%")
CHECK_COLUMNS = ("check_id", "category", "severity", "weight", "threshold", "flag", "applicable", "failed", "rate",
                 "ci_low", "ci_high", "status", "new", "resolved", "persisting", "label_en", "label_fr", "error")


def wilson(k: int, n: int, z: float = Z95) -> tuple[float | None, float | None]:
    """The Wilson score interval of k successes in n trials (None, None when n is 0).

    Unlike p ± z·sqrt(p(1-p)/n), it stays within [0, 1] and is not empty at k = 0 or k = n, which is
    where audit rates often sit (Wilson 1927; Brown, Cai & DasGupta 2001 recommend it for small n).
    """
    if n == 0:
        return None, None
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # At k = 0 or k = n the bound is exactly 0 or 1; floating point would leave 5e-17.
    return (0.0 if k == 0 else max(0.0, centre - half)), (1.0 if k == n else min(1.0, centre + half))


def _rate(k: int, n: int) -> dict:
    lo, hi = wilson(k, n)
    return {"count": k, "of": n, "rate": (k / n) if n else None, "ci_low": lo, "ci_high": hi}


def check_status(error: str | None, applicable: int, failed: int, threshold: float) -> str:
    """`error` (its SQL does not run), `not_applicable` (no dossier it applies to), `failed` (rate over threshold), `passed`."""
    if error:
        return "error"
    if applicable == 0:
        return "not_applicable"
    return "failed" if failed / applicable > threshold else "passed"


def _runs(ledger: Ledger) -> list[dict]:
    cols, rows = ledger.query_columns(
        "SELECT run_id, started_at, finished_at, dossiers_total, dossiers_processed, dossiers_skipped, "
        "documents_total, documents_failed, exit_code FROM runs ORDER BY started_at")
    return [dict(zip(cols, r)) for r in rows]


def _trend(ledger: Ledger, prev: str, cur: str, key: str, failing: str) -> dict[str, dict]:
    """Per `key` (check_id, or a flag name): dossiers failing newly, resolved and persisting between two
    states (tables of one row per dossier, or per dossier and check)."""
    join = "dossier_id, check_id" if key == "check_id" else "dossier_id"
    rows = ledger.query(
        f"SELECT {'coalesce(cur.check_id, prev.check_id)' if key == 'check_id' else repr(key)} AS k, "
        f"count(*) FILTER (WHERE coalesce(cur.{failing}, false) AND NOT coalesce(prev.{failing}, false)), "
        f"count(*) FILTER (WHERE coalesce(prev.{failing}, false) AND NOT coalesce(cur.{failing}, false)), "
        f"count(*) FILTER (WHERE coalesce(prev.{failing}, false) AND coalesce(cur.{failing}, false)) "
        f"FROM {cur} cur FULL JOIN {prev} prev USING ({join}) GROUP BY k")
    return {r[0]: {"new": r[1], "resolved": r[2], "persisting": r[3]} for r in rows}


def _materialise(ledger: Ledger, name: str, sql: str, params: list) -> str:
    # The views are recomputed by every query that reads them: each state is computed once.
    ledger.query(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}", params)
    return name


def build_audit(ledger: Ledger) -> dict:
    """Every figure of the audit, as of each dossier's latest state after the latest run, and the trend
    since the run before it. Raises CouldNotRun when the ledger holds no run."""
    runs = _runs(ledger)
    if not runs:
        raise CouldNotRun(f"the ledger {ledger.path} holds no run yet: run `synthese run ROOT` first")
    latest, previous = runs[-1], (runs[-2] if len(runs) > 1 else None)
    cur_start = latest["started_at"]
    # Each view is recomputed by every query that reads it: compute check_results once, derive the rest.
    all_results = _materialise(ledger, "_audit_all_results", "SELECT *, status = 'failed' AS bad FROM check_results", [])
    all_flags = _materialise(ledger, "_audit_all_flags", dossier_flags_sql(all_results), [])
    # The latest run is the latest of all: its state is each dossier's latest row (is_latest).
    results = _materialise(ledger, "_audit_results", f"SELECT * FROM {all_results} WHERE is_latest", [])
    flags_t = _materialise(ledger, "_audit_flags", f"SELECT * FROM {all_flags} WHERE is_latest", [])
    facts = _materialise(ledger, "_audit_facts", "SELECT * FROM audit_facts WHERE is_latest", [])
    if previous:
        prev_results = _materialise(
            ledger, "_audit_prev_results", f"SELECT dossier_id, check_id, arg_max(bad, run_started_at) AS bad "
            f"FROM {all_results} WHERE run_started_at <= ? GROUP BY dossier_id, check_id", [previous["started_at"]])
        prev_flags = _materialise(
            ledger, "_audit_prev_flags", f"SELECT dossier_id, arg_max(empty, run_started_at) AS empty, "
            f"arg_max(disorganised, run_started_at) AS disorganised FROM {all_flags} WHERE run_started_at <= ? "
            f"GROUP BY dossier_id", [previous["started_at"]])
    checks_cols, check_rows = ledger.query_columns("SELECT * FROM checks ORDER BY position")
    catalogue = [dict(zip(checks_cols, r)) for r in check_rows]
    counts = {r[0]: (r[1], r[2]) for r in ledger.query(
        f"SELECT check_id, count(*) FILTER (WHERE status <> 'not_applicable'), count(*) FILTER (WHERE status = 'failed') "
        f"FROM {results} GROUP BY check_id")}
    trend = _trend(ledger, prev_results, results, "check_id", "bad") if previous else {}
    checks = []
    for c in catalogue:
        applicable, failed = counts.get(c["check_id"], (0, 0))
        rate = _rate(failed, applicable)
        t = trend.get(c["check_id"], {"new": 0, "resolved": 0, "persisting": 0}) if previous else {
            "new": None, "resolved": None, "persisting": None}
        checks.append({
            "check_id": c["check_id"], "category": c["category"], "severity": c["severity"], "weight": c["weight"],
            "threshold": c["threshold"], "flag": c["flag"], "applicable": applicable, "failed": failed,
            "rate": rate["rate"], "ci_low": rate["ci_low"], "ci_high": rate["ci_high"],
            "status": check_status(c["sql_error"], applicable, failed, c["threshold"]), **t,
            "label_en": c["label_en"], "label_fr": c["label_fr"], "error": c["sql_error"],
            "definition_en": c["definition_en"], "definition_fr": c["definition_fr"], "notes": c["notes"],
            "sql": {"applies": c["applies_sql"], "fails": c["fails_sql"], "reason": c["reason_sql"]},
        })

    n, empty, disorganised = ledger.query(
        f"SELECT count(*), count(*) FILTER (WHERE empty), count(*) FILTER (WHERE disorganised) FROM {flags_t}")[0]
    flags = {"empty": _rate(empty, n), "disorganised": _rate(disorganised, n)}
    for name in flags:
        flags[name]["trend"] = (_trend(ledger, prev_flags, flags_t, name, name)
                                .get(name, {"new": 0, "resolved": 0, "persisting": 0}) if previous else None)

    scores = [r[0] for r in ledger.query(f"SELECT score FROM {flags_t} ORDER BY score")]
    histogram = [{"bucket": f"{lo}-{lo + 9}" if lo < 100 else "100",
                  "dossiers": sum(1 for s in scores if (lo <= s < lo + 10 if lo < 100 else s == 100))}
                 for lo in range(0, 101, 10)]
    score = {"mean": (sum(scores) / len(scores)) if scores else None,
             "median": _median(scores), "min": min(scores, default=None), "max": max(scores, default=None),
             "histogram": histogram}

    blocks = []
    for block in BLOCKS:
        row = ledger.query(
            f"SELECT count(*) FILTER (WHERE {block}_status = 'known'), count(*) FILTER (WHERE {block}_status = 'none_known'), "
            f"count(*) FILTER (WHERE {block}_status = 'unknown') FROM {facts}")[0]
        blocks.append({"block": block, **{s: _rate(k, n) for s, k in zip(("known", "none_known", "unknown"), row)}})

    by_ocr = ledger.query(
        f"""SELECT CASE WHEN f.documents = 0 THEN 'no document' WHEN f.documents_ocr = 0 THEN '0%'
                    WHEN 2 * f.documents_ocr < f.documents THEN '1-49%'
                    WHEN f.documents_ocr < f.documents THEN '50-99%' ELSE '100%' END AS bucket,
            count(*), count(*) FILTER (WHERE g.empty), count(*) FILTER (WHERE g.disorganised), avg(g.score)
        FROM {facts} f JOIN {flags_t} g USING (dossier_id) GROUP BY bucket""")
    got = {r[0]: r for r in by_ocr}
    by_ocr_share = [{"ocr_share": b, "dossiers": got[b][1] if b in got else 0,
                     "empty": got[b][2] if b in got else 0, "disorganised": got[b][3] if b in got else 0,
                     "mean_score": got[b][4] if b in got else None} for b in OCR_BUCKETS]

    docs = (f"SELECT x.* FROM documents x JOIN {facts} l ON x.run_id = l.run_id AND x.dossier_id = l.dossier_id")
    by_doc_type = [
        {"doc_type": r[0], "documents": r[1], "dossiers": r[2], "undated": r[3], "ocr": r[4]}
        for r in ledger.query(
            f"SELECT CASE WHEN outcome = 'ok' THEN doc_type ELSE '(' || outcome || ')' END AS t, count(*), "
            f"count(DISTINCT dossier_id), count(*) FILTER (WHERE outcome = 'ok' AND doc_date IS NULL), "
            f"count(*) FILTER (WHERE outcome = 'ok' AND ocr_pages > 0) FROM ({docs}) GROUP BY t ORDER BY 2 DESC, 1")]
    failure_reasons = [
        {"outcome": r[0], "reason": r[1], "documents": r[2], "dossiers": r[3]}
        for r in ledger.query(
            f"SELECT outcome, coalesce(error, '?'), count(*), count(DISTINCT dossier_id) FROM ({docs}) "
            f"WHERE outcome IN ('failed', 'skipped') GROUP BY ALL ORDER BY 3 DESC, 1, 2")]

    per_run = _per_run(ledger, all_flags)  # each run's headline figures as of that run
    history = []
    for run in runs:
        m, e, d, s = per_run.get(run["run_id"], (0, 0, 0, None))
        history.append({"run_id": run["run_id"], "started_at": _iso(run["started_at"]), "dossiers": m,
                        "empty": e, "disorganised": d, "mean_score": s,
                        "dossiers_processed": run["dossiers_processed"], "dossiers_skipped": run["dossiers_skipped"]})

    return {
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "ledger": str(ledger.path),
        "run": {k: _iso(v) for k, v in latest.items()},
        "previous_run": {k: _iso(v) for k, v in previous.items()} if previous else None,
        "dossiers": n,
        "flags": flags,
        "checks": checks,
        "score": score,
        "blocks": blocks,
        "by_ocr_share": by_ocr_share,
        "by_doc_type": by_doc_type,
        "failure_reasons": failure_reasons,
        "runs": history,
    }


def _per_run(ledger: Ledger, flags: str) -> dict[str, tuple]:
    """{run_id: (dossiers, empty, disorganised, mean score)} as of each run.

    Cumulative sums of each dossier's changes from one of its rows to the next: one pass over the
    flags, however many runs (a run x dossier join would be runs times dossiers rows)."""
    rows = ledger.query(
        f"""WITH f AS (
            SELECT run_started_at, empty::INT AS e, disorganised::INT AS d, score,
                lag(empty::INT, 1, 0) OVER w AS pe, lag(disorganised::INT, 1, 0) OVER w AS pd,
                lag(score, 1, 0) OVER w AS ps, (row_number() OVER w = 1)::INT AS first
            FROM {flags} WINDOW w AS (PARTITION BY dossier_id ORDER BY run_started_at)),
        d AS (SELECT run_started_at, sum(first) AS n, sum(e - pe) AS de, sum(d - pd) AS dd, sum(score - ps) AS ds
              FROM f GROUP BY run_started_at)
        SELECT r.run_id, coalesce(sum(d.n) OVER o, 0), coalesce(sum(d.de) OVER o, 0), coalesce(sum(d.dd) OVER o, 0),
            sum(d.ds) OVER o / nullif(sum(d.n) OVER o, 0)
        FROM runs r LEFT JOIN d ON d.run_started_at = r.started_at WINDOW o AS (ORDER BY r.started_at)""")
    return {r[0]: (int(r[1]), int(r[2]), int(r[3]), r[4]) for r in rows}


def _median(xs: list[int]) -> float | None:
    if not xs:
        return None
    m = len(xs) // 2
    return float(xs[m]) if len(xs) % 2 else (xs[m - 1] + xs[m]) / 2


def _iso(v):
    return v.isoformat() if isinstance(v, datetime) else v


def drill_sql(check_id: str) -> str:
    """The SQL that lists every dossier failing `check_id`, as of each dossier's latest state."""
    return ("SELECT dossier_id, reason FROM check_results\n"
            f"WHERE is_latest AND check_id = '{check_id}' AND status = 'failed'\nORDER BY dossier_id;")


def sample_failures(ledger: Ledger, check_id: str, n: int, seed: int = 0) -> tuple[list[tuple[str, str]], int]:
    """A reproducible random sample of `n` dossiers failing `check_id` (same ledger and seed: same sample),
    with their reasons, and how many fail in all. Raises BadArguments for an unknown check."""
    known = [r[0] for r in ledger.query("SELECT check_id FROM checks ORDER BY position")]
    if check_id not in known:
        raise BadArguments(f"no check named {check_id!r}; the checks are: {', '.join(known)}")
    rows = ledger.query(
        "SELECT dossier_id, reason FROM check_results WHERE is_latest AND check_id = ? AND status = 'failed' "
        "ORDER BY dossier_id", [check_id])
    picked = sorted(random.Random(seed).sample(range(len(rows)), min(n, len(rows))))
    return [rows[i] for i in picked], len(rows)


def check_rows(report: dict) -> tuple[list[str], list[tuple]]:
    """The per-check table (one row per check) of a report: what CSV and Parquet outputs hold."""
    return list(CHECK_COLUMNS), [tuple(c[k] for k in CHECK_COLUMNS) for c in report["checks"]]
