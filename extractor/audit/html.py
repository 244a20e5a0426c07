"""The audit as one self-contained HTML file: inline CSS, charts as inline SVG drawn here, no script, no
font, no image, no link to anything outside the file (it opens offline and prints on A4).

Every chart has the table of its figures beside it. Each figure cell carries `data-key` (its path in the
JSON report, e.g. `checks.no_document.failed`) and `data-value` (the JSON value), so a test, or an
auditor's script, can check the page against `synthese audit --format json`.
"""
from __future__ import annotations

import json
from html import escape

STATUS_COLOURS = {"passed": "#2e7d32", "failed": "#c62828", "not_applicable": "#757575", "error": "#6a1b9a"}
BLOCK_COLOURS = {"known": "#2e7d32", "none_known": "#1565c0", "unknown": "#bdbdbd"}

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:2rem auto;max-width:1100px;
 color:#1a1a1a;padding:0 1rem;line-height:1.4}
h1{font-size:1.6rem;margin-bottom:.2rem} h2{font-size:1.2rem;border-bottom:2px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
.meta{color:#555;font-size:.9rem} table{border-collapse:collapse;margin:.6rem 0;font-size:.85rem;width:100%}
th,td{border:1px solid #ccc;padding:.25rem .45rem;text-align:left;vertical-align:top} td.n{text-align:right;white-space:nowrap}
th{background:#f3f3f3} .status{font-weight:600;white-space:nowrap} .passed{color:#2e7d32} .failed{color:#c62828}
.not_applicable{color:#757575} .error{color:#6a1b9a} .cards{display:flex;gap:1rem;flex-wrap:wrap}
.card{border:1px solid #ccc;border-radius:6px;padding:.6rem 1rem;min-width:14rem} .big{font-size:1.8rem;font-weight:700}
svg{max-width:100%;height:auto} code{font-size:.8rem;background:#f6f6f6;padding:0 .2rem} .small{font-size:.8rem;color:#555}
@media print{body{margin:0;max-width:none;font-size:10pt} section{break-inside:avoid-page} h2{break-after:avoid}
 a{color:inherit;text-decoration:none}}
"""


def _num(v, digits: int = 0) -> str:
    if v is None:
        return "–"
    if isinstance(v, float) and digits:
        return f"{v:.{digits}f}"
    return str(round(v)) if isinstance(v, float) else str(v)


def _pct(v) -> str:
    return "–" if v is None else f"{100 * v:.1f} %"


def _cell(key: str, value, text: str | None = None, cls: str = "n") -> str:
    shown = text if text is not None else _num(value)
    return (f'<td class="{cls}" data-key="{escape(key)}" data-value="{escape(json.dumps(value))}">'
            f"{escape(shown)}</td>")


def _bars(rows: list[tuple[str, float | None, float | None, float | None, float | None, str]], width=760) -> str:
    """Horizontal bars: (label, rate, ci_low, ci_high, threshold, colour) in [0, 1]; whiskers for the CI."""
    left, right, h = 230, 60, 22
    plot = width - left - right
    height = h * len(rows) + 30
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
           f'viewBox="0 0 {width} {height}" font-size="11">']
    for tick in (0, 0.25, 0.5, 0.75, 1):
        x = left + tick * plot
        out.append(f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{height - 20}" stroke="#e0e0e0"/>'
                   f'<text x="{x:.1f}" y="{height - 6}" text-anchor="middle" fill="#555">{int(tick * 100)} %</text>')
    for i, (label, rate, lo, hi, threshold, colour) in enumerate(rows):
        y = i * h + 4
        out.append(f'<text x="{left - 6}" y="{y + 13}" text-anchor="end">{escape(label)}</text>')
        if rate is not None:
            out.append(f'<rect class="bar" x="{left}" y="{y + 2}" width="{max(rate * plot, 0.5):.1f}" height="{h - 8}" '
                       f'fill="{colour}"><title>{escape(label)}: {_pct(rate)}</title></rect>')
            out.append(f'<text x="{left + rate * plot + 4:.1f}" y="{y + 13}" fill="#333">{_pct(rate)}</text>')
        if lo is not None and hi is not None:
            yc = y + h / 2 - 2
            out.append(f'<line x1="{left + lo * plot:.1f}" y1="{yc}" x2="{left + hi * plot:.1f}" y2="{yc}" '
                       f'stroke="#000" stroke-width="1"/><line x1="{left + lo * plot:.1f}" y1="{yc - 4}" '
                       f'x2="{left + lo * plot:.1f}" y2="{yc + 4}" stroke="#000"/><line x1="{left + hi * plot:.1f}" '
                       f'y1="{yc - 4}" x2="{left + hi * plot:.1f}" y2="{yc + 4}" stroke="#000"/>')
        if threshold is not None:
            x = left + threshold * plot
            out.append(f'<line x1="{x:.1f}" y1="{y}" x2="{x:.1f}" y2="{y + h - 4}" stroke="#ff8f00" '
                       f'stroke-width="2.5"><title>threshold {_pct(threshold)}</title></line>')
    out.append("</svg>")
    return "".join(out)


def _columns(values: list[tuple[str, int]], width=760, height=180, colour="#1565c0") -> str:
    """Vertical bars of counts (a histogram)."""
    top = max([v for _, v in values] + [1])
    bottom, w = 30, (width - 40) / max(1, len(values))
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
           f'viewBox="0 0 {width} {height}" font-size="11">']
    for i, (label, v) in enumerate(values):
        bh = (height - bottom - 20) * v / top
        x = 20 + i * w
        out.append(f'<rect class="bar" x="{x + 3:.1f}" y="{height - bottom - bh:.1f}" width="{w - 6:.1f}" '
                   f'height="{bh:.1f}" fill="{colour}"><title>{escape(label)}: {v}</title></rect>'
                   f'<text x="{x + w / 2:.1f}" y="{height - bottom - bh - 4:.1f}" text-anchor="middle">{v}</text>'
                   f'<text x="{x + w / 2:.1f}" y="{height - 12}" text-anchor="middle" fill="#555">{escape(label)}</text>')
    out.append("</svg>")
    return "".join(out)


def _stacked(rows: list[tuple[str, list[tuple[str, float]]]], width=760) -> str:
    """One 100 % bar per row, split by state."""
    left, h = 110, 26
    plot = width - left - 20
    height = h * len(rows) + 30
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
           f'viewBox="0 0 {width} {height}" font-size="11">']
    for i, (label, parts) in enumerate(rows):
        y, x = i * h + 4, left
        out.append(f'<text x="{left - 6}" y="{y + 15}" text-anchor="end">{escape(label)}</text>')
        for state, share in parts:
            out.append(f'<rect class="bar" x="{x:.1f}" y="{y}" width="{share * plot:.1f}" height="{h - 6}" '
                       f'fill="{BLOCK_COLOURS[state]}"><title>{escape(label)} {state}: {_pct(share)}</title></rect>')
            x += share * plot
    lx = left
    for state, colour in BLOCK_COLOURS.items():
        out.append(f'<rect x="{lx}" y="{height - 16}" width="10" height="10" fill="{colour}"/>'
                   f'<text x="{lx + 14}" y="{height - 7}">{state}</text>')
        lx += 110
    out.append("</svg>")
    return "".join(out)


def render_html(report: dict) -> str:
    """The HTML page of an audit report (the dict of `build_audit`)."""
    run, prev = report["run"], report["previous_run"]
    parts = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>Synthèse quality audit</title>", f"<style>{CSS}</style></head><body>",
        "<h1>Synthèse — quality audit of the DMP dossiers</h1>",
        f'<p class="meta">Ledger <code>{escape(report["ledger"])}</code> · latest run <code>{escape(run["run_id"])}</code> '
        f'started {escape(str(run["started_at"]))}'
        + (f' · compared with run <code>{escape(prev["run_id"])}</code> started {escape(str(prev["started_at"]))}'
           if prev else " · no previous run to compare with")
        + f' · generated {escape(report["generated_at"])}</p>',
        f'<p>Figures are as of each dossier\'s latest state: <strong data-key="dossiers" data-value="{report["dossiers"]}">'
        f'{report["dossiers"]}</strong> dossiers. Rates come with their count and a 95 % Wilson confidence interval.</p>',
    ]
    parts += _flags_section(report)
    parts += _checks_section(report)
    parts += _score_section(report)
    parts += _blocks_section(report)
    parts += _breakdowns_section(report)
    parts += _runs_section(report)
    parts += _definitions_section(report)
    parts.append("</body></html>")
    return "\n".join(parts)


def _trend_cells(prefix: str, t: dict | None) -> str:
    if t is None:
        return "".join(_cell(f"{prefix}.{k}", None) for k in ("new", "resolved", "persisting"))
    return "".join(_cell(f"{prefix}.{k}", t[k]) for k in ("new", "resolved", "persisting"))


def _flags_section(report: dict) -> list[str]:
    cards, rows = [], []
    names = {"empty": "Empty dossiers (dossiers vides)", "disorganised": "Disorganised dossiers (dossiers désorganisés)"}
    for name, f in report["flags"].items():
        cards.append(f'<div class="card"><div>{names[name]}</div><div class="big">{f["count"]} / {f["of"]}</div>'
                     f'<div>{_pct(f["rate"])} (95 % CI {_pct(f["ci_low"])} – {_pct(f["ci_high"])})</div></div>')
        t = f.get("trend")
        rows.append(f"<tr><th>{name}</th>{_cell(f'flags.{name}.count', f['count'])}{_cell(f'flags.{name}.of', f['of'])}"
                    f"{_cell(f'flags.{name}.rate', f['rate'], _pct(f['rate']))}"
                    f"{_cell(f'flags.{name}.ci_low', f['ci_low'], _pct(f['ci_low']))}"
                    f"{_cell(f'flags.{name}.ci_high', f['ci_high'], _pct(f['ci_high']))}"
                    f"{_trend_cells(f'flags.{name}.trend', t)}</tr>")
    chart = _bars([(n, f["rate"], f["ci_low"], f["ci_high"], None, "#c62828") for n, f in report["flags"].items()])
    return ['<section id="flags"><h2>Empty and disorganised dossiers</h2>', '<div class="cards">', *cards, "</div>",
            chart, "<table><tr><th>flag</th><th>dossiers</th><th>of</th><th>rate</th><th>CI low</th><th>CI high</th>"
            "<th>new</th><th>resolved</th><th>persisting</th></tr>", *rows, "</table>",
            '<p class="small">new / resolved / persisting: dossiers that have the flag now and did not at the previous '
            "run, had it and no longer do, had it then and still do.</p></section>"]


def _checks_section(report: dict) -> list[str]:
    chart = _bars([(c["check_id"], c["rate"], c["ci_low"], c["ci_high"], c["threshold"], STATUS_COLOURS[c["status"]])
                   for c in report["checks"]])
    rows = []
    for c in report["checks"]:
        k = f"checks.{c['check_id']}"
        rows.append(
            f'<tr id="check-{escape(c["check_id"])}"><td><code>{escape(c["check_id"])}</code><br>'
            f'{escape(c["label_fr"])}<br><span class="small">{escape(c["label_en"])}</span></td>'
            f"<td>{escape(c['category'])}</td><td>{escape(c['severity'])}</td>"
            f"{_cell(k + '.threshold', c['threshold'], _pct(c['threshold']))}{_cell(k + '.applicable', c['applicable'])}"
            f"{_cell(k + '.failed', c['failed'])}{_cell(k + '.rate', c['rate'], _pct(c['rate']))}"
            f"{_cell(k + '.ci_low', c['ci_low'], _pct(c['ci_low']))}{_cell(k + '.ci_high', c['ci_high'], _pct(c['ci_high']))}"
            f"{_cell(k + '.status', c['status'], c['status'], 'status ' + c['status'])}"
            f"{_trend_cells(k, c if c['new'] is not None else None)}</tr>")
    return ['<section id="checks"><h2>Checks</h2>',
            '<p class="small">Bar: share of the dossiers the check applies to that fail it; whiskers: 95 % Wilson '
            "interval; orange tick: the threshold (share tolerated). A check is <em>failed</em> when its rate is over its "
            "threshold, <em>not applicable</em> when it applies to no dossier, <em>error</em> when its SQL does not run.</p>",
            chart, "<table><tr><th>check</th><th>category</th><th>severity</th><th>threshold</th><th>applies to</th>"
            "<th>failing</th><th>rate</th><th>CI low</th><th>CI high</th><th>status</th><th>new</th><th>resolved</th>"
            "<th>persisting</th></tr>", *rows, "</table></section>"]


def _score_section(report: dict) -> list[str]:
    s = report["score"]
    hist = [(h["bucket"], h["dossiers"]) for h in s["histogram"]]
    rows = "".join(f"<tr><th>{escape(h['bucket'])}</th>{_cell(f'score.histogram.{i}.dossiers', h['dossiers'])}</tr>"
                   for i, h in enumerate(s["histogram"]))
    stats = "".join(f"<tr><th>{k}</th>{_cell('score.' + k, s[k], _num(s[k], 1))}</tr>" for k in ("mean", "median", "min", "max"))
    return ['<section id="score"><h2>Quality score distribution</h2>',
            '<p class="small">Per dossier, in [0, 100]: 100 × (weight of the checks it passes) / (weight of the checks '
            "that apply to it); weights high 3, medium 2, low 1. A dossier that passes every check that applies scores 100.</p>",
            _columns(hist), f"<table><tr><th>statistic</th><th>score</th></tr>{stats}</table>",
            f"<table><tr><th>score</th><th>dossiers</th></tr>{rows}</table></section>"]


def _blocks_section(report: dict) -> list[str]:
    chart = _stacked([(b["block"], [(s, b[s]["rate"] or 0.0) for s in ("known", "none_known", "unknown")])
                      for b in report["blocks"]])
    rows = []
    for b in report["blocks"]:
        cells = "".join(_cell(f"blocks.{b['block']}.{s}.count", b[s]["count"])
                        + _cell(f"blocks.{b['block']}.{s}.rate", b[s]["rate"], _pct(b[s]["rate"]))
                        for s in ("known", "none_known", "unknown"))
        rows.append(f"<tr><th>{b['block']}</th>{cells}</tr>")
    return ['<section id="blocks"><h2>Blocks by state</h2>',
            '<p class="small">known: at least one entry; none_known: the documents say explicitly there is none; '
            "unknown: nothing was said (never read as “none”).</p>", chart,
            "<table><tr><th>block</th><th>known</th><th>%</th><th>none_known</th><th>%</th><th>unknown</th><th>%</th></tr>",
            *rows, "</table></section>"]


def _breakdowns_section(report: dict) -> list[str]:
    ocr_rows = "".join(
        f"<tr><th>{escape(b['ocr_share'])}</th>{_cell(f'by_ocr_share.{i}.dossiers', b['dossiers'])}"
        f"{_cell(f'by_ocr_share.{i}.empty', b['empty'])}{_cell(f'by_ocr_share.{i}.disorganised', b['disorganised'])}"
        f"{_cell(f'by_ocr_share.{i}.mean_score', b['mean_score'], _num(b['mean_score'], 1))}</tr>"
        for i, b in enumerate(report["by_ocr_share"]))
    type_rows = "".join(
        f"<tr><th>{escape(t['doc_type'])}</th>{_cell(f'by_doc_type.{i}.documents', t['documents'])}"
        f"{_cell(f'by_doc_type.{i}.dossiers', t['dossiers'])}{_cell(f'by_doc_type.{i}.undated', t['undated'])}"
        f"{_cell(f'by_doc_type.{i}.ocr', t['ocr'])}</tr>"
        for i, t in enumerate(report["by_doc_type"]))
    reason_rows = "".join(
        f"<tr><td>{escape(r['outcome'])}</td><td><code>{escape(r['reason'])}</code></td>"
        f"{_cell(f'failure_reasons.{i}.documents', r['documents'])}{_cell(f'failure_reasons.{i}.dossiers', r['dossiers'])}</tr>"
        for i, r in enumerate(report["failure_reasons"])) or '<tr><td colspan="4">no failed or skipped document</td></tr>'
    return ['<section id="breakdowns"><h2>Breakdowns</h2><h3>Dossiers by share of documents read by OCR</h3>',
            _columns([(b["ocr_share"], b["dossiers"]) for b in report["by_ocr_share"]], height=150),
            "<table><tr><th>OCR share</th><th>dossiers</th><th>empty</th><th>disorganised</th><th>mean score</th></tr>",
            ocr_rows, "</table><h3>Documents by type</h3>",
            _columns([(t["doc_type"], t["documents"]) for t in report["by_doc_type"]], height=150, colour="#00897b"),
            '<p class="small">(failed), (duplicate): documents not read or read once under another name.</p>',
            "<table><tr><th>type</th><th>documents</th><th>dossiers</th><th>undated</th><th>read by OCR</th></tr>",
            type_rows, "</table><h3>Failure reasons</h3>",
            "<table><tr><th>outcome</th><th>reason</th><th>documents</th><th>dossiers</th></tr>", reason_rows,
            "</table></section>"]


def _runs_section(report: dict) -> list[str]:
    rows = "".join(
        f"<tr><td><code>{escape(r['run_id'])}</code></td><td>{escape(str(r['started_at']))}</td>"
        f"{_cell(f'runs.{i}.dossiers_processed', r['dossiers_processed'])}{_cell(f'runs.{i}.dossiers_skipped', r['dossiers_skipped'])}"
        f"{_cell(f'runs.{i}.dossiers', r['dossiers'])}{_cell(f'runs.{i}.empty', r['empty'])}"
        f"{_cell(f'runs.{i}.disorganised', r['disorganised'])}{_cell(f'runs.{i}.mean_score', r['mean_score'], _num(r['mean_score'], 1))}</tr>"
        for i, r in enumerate(report["runs"]))
    chart = _bars([(f"{r['run_id']} empty", (r["empty"] / r["dossiers"]) if r["dossiers"] else None, None, None, None,
                    "#c62828") for r in report["runs"]]
                  + [(f"{r['run_id']} disorganised", (r["disorganised"] / r["dossiers"]) if r["dossiers"] else None,
                      None, None, None, "#ef6c00") for r in report["runs"]])
    return ['<section id="runs"><h2>Runs</h2><p class="small">Each run\'s figures as of that run (dossiers it skipped '
            "keep their earlier state).</p>", chart,
            "<table><tr><th>run</th><th>started</th><th>processed</th><th>skipped</th><th>dossiers</th><th>empty</th>"
            "<th>disorganised</th><th>mean score</th></tr>", rows, "</table></section>"]


def _definitions_section(report: dict) -> list[str]:
    rows = "".join(
        f"<tr><td><code>{escape(c['check_id'])}</code></td><td>{escape(c['definition_fr'])}<br>"
        f'<span class="small">{escape(c["definition_en"])}</span></td><td>{escape(c["flag"] or "")}</td>'
        f"<td><code>{escape(c['sql']['applies'])}</code></td><td><code>{escape(c['sql']['fails'])}</code></td>"
        f"<td>{escape(c['notes'] or '')}{'<br><strong>error:</strong> ' + escape(c['error']) if c['error'] else ''}</td></tr>"
        for c in report["checks"])
    return ['<section id="definitions"><h2>Definitions</h2>',
            "<p><strong>empty</strong>: fails a check flagged <code>empty</code>. <strong>disorganised</strong>: fails a "
            "check flagged <code>disorganised</code>. The catalogue is <code>rules/checks.toml</code>; the conditions are "
            "SQL on the ledger view <code>audit_facts</code>; the results are in the view <code>check_results</code>.</p>",
            "<table><tr><th>check</th><th>definition</th><th>flag</th><th>applies when</th><th>fails when</th>"
            "<th>notes</th></tr>", rows, "</table></section>"]
