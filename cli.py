"""Synthèse command line. Thin: parses options, calls the library, maps errors to exit codes.

Results go to stdout, logs to stderr. Exit codes: see extractor.errors.ExitCode and the README.
"""
from __future__ import annotations

import json
import logging
import shutil
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from extractor.errors import ExitCode, SyntheseError

app = typer.Typer(add_completion=False, no_args_is_help=False, help="Proposes a medical synthesis from the documents of DMP dossiers.")
samples_app = typer.Typer(help="Synthetic sample dossiers with ground truth.")
ledger_app = typer.Typer(help="The duckdb ledger of runs, documents and dossiers.")
app.add_typer(samples_app, name="samples")
app.add_typer(ledger_app, name="ledger")

out = Console()
err = Console(stderr=True)
SAMPLES_DIR = Path(__file__).resolve().parent / "samples" / "dossiers"


def _fail(e: SyntheseError) -> typer.Exit:
    err.print(f"[red]error:[/red] {e}")
    return typer.Exit(int(e.exit_code))


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


DOSSIER_COLUMNS = ("dossier", "docs", "OCR pages", "failed", "history", "allergies", "treatments", "conflicts")


def _dossier_cells(s) -> list[str]:
    docs = [d for d in s.documents if d.outcome != "duplicate"]
    active = sum(x.status == "active" for x in s.treatments)
    return [
        s.dossier_id,
        str(len(docs)),
        str(sum(d.ocr_pages for d in docs)),
        str(sum(d.outcome == "failed" for d in docs)),
        f"{len(s.history)} ({s.history_status})",
        f"{len(s.allergies)} ({s.allergy_status})",
        f"{active} active / {len(s.treatments)} ({s.treatment_status})",
        str(len(s.conflicts)),
    ]


def _dossier_table(rows) -> Table:
    t = Table(title="Synthèse")
    for col in DOSSIER_COLUMNS:
        t.add_column(col, justify="left" if col == "dossier" else "right")
    for s in rows:
        t.add_row(*_dossier_cells(s))
    return t


def _summary_rows(rep) -> list[tuple[str, str]]:
    rows = [
        ("dossiers processed / skipped / total", f"{rep.dossiers_processed} / {rep.dossiers_skipped} / {rep.dossiers_total}"),
        ("documents read / from cache / failed", f"{rep.documents_total - rep.documents_cached} / {rep.documents_cached} / {rep.documents_failed}"),
        ("pages (OCR)", f"{rep.pages} ({rep.ocr_pages})"),
        ("workers", str(rep.workers) + (f" on {rep.scheduler}" if rep.scheduler else "")),
        ("seconds", f"{rep.seconds:.1f}"),
    ]
    rows += [(f"failed: {reason}", str(n)) for reason, n in sorted(rep.failures_by_reason.items())]
    rows += [(f"stage {stage} (s)", f"{s:.2f}") for stage, s in sorted(rep.stage_seconds.items())]
    return rows


def _summary_table(rep) -> Table:
    t = Table(title="Run")
    t.add_column("what")
    t.add_column("value", justify="right")
    for what, value in _summary_rows(rep):
        t.add_row(what, value)
    return t


def _print_run(rows, rep) -> None:
    """The run's tables on a terminal; elsewhere (cron, CI, a log file) whole plain lines, never cut to 80 columns."""
    if out.is_terminal:
        if rows:
            out.print(_dossier_table(rows))
        out.print(_summary_table(rep))
        return
    for s in rows:
        cells = _dossier_cells(s)
        print(f"dossier {cells[0]}: " + ", ".join(f"{c} {v}" for c, v in zip(DOSSIER_COLUMNS[1:], cells[1:])))
    for what, value in _summary_rows(rep):
        print(f"run: {what}: {value}")


@app.command()
def run(
    root: Optional[Path] = typer.Argument(None, help="Folder of dossier folders (or one dossier). Default: a copy of the shipped samples."),
    ledger: Optional[Path] = typer.Option(None, help="Ledger file (default ROOT/.synthese/ledger.duckdb)."),
    report: Optional[Path] = typer.Option(None, help="Write the run report (JSON) here."),
    full: bool = typer.Option(False, "--full", help="Process every dossier and read every document again, even unchanged ones."),
    only: list[str] = typer.Option([], "--only", help="Process only these dossier ids (repeatable)."),
    since: Optional[datetime] = typer.Option(None, "--since", formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"],
                                             help="Only dossiers with a file modified at or after this date (local time)."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Worker processes (default: one per core)."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Run on a dask.distributed cluster, e.g. tcp://host:8786."),
    wait: bool = typer.Option(False, "--wait", help="Wait for another run on the same ROOT to end instead of exiting with code 3."),
    store_text: bool = typer.Option(False, "--store-text", help="Also store page text in the ledger and cache (health data!)."),
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress", help="Progress bar (default: on a TTY)."),
    doc_timeout_base: Optional[float] = typer.Option(
        None, "--doc-timeout-base", envvar="SYNTHESE_DOC_TIMEOUT_BASE",
        help="Seconds allowed per document before its page count is known (default 60)."),
    doc_timeout_per_page: Optional[float] = typer.Option(
        None, "--doc-timeout-per-page", envvar="SYNTHESE_DOC_TIMEOUT_PER_PAGE",
        help="Seconds added per page to a document's time limit (default 15)."),
    doc_memory_mb: Optional[int] = typer.Option(
        None, "--doc-memory-mb", envvar="SYNTHESE_DOC_MEMORY_MB",
        help="Memory a worker may take for one document, in MiB (default 2048)."),
    output_mode: str = typer.Option(
        "0640", "--output-mode", envvar="SYNTHESE_OUTPUT_MODE",
        help="Permissions of each synthese.json, octal (e.g. 0600); the run report is always 0600."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Process the dossiers under ROOT that changed since the last run and write synthese.json in each."""
    import signal

    from extractor.batch.runner import RunOptions
    from extractor.batch.runner import run as run_batch
    from extractor.config import Settings

    _setup_logging(verbose)
    if workers is not None and workers < 1:
        err.print("[red]error:[/red] --workers must be at least 1")
        raise typer.Exit(int(ExitCode.BAD_ARGUMENTS))
    if root is None:
        root = Path(tempfile.mkdtemp(prefix="synthese-samples-")) / "dossiers"
        shutil.copytree(SAMPLES_DIR, root, ignore=shutil.ignore_patterns("*.gold.json"))
        err.print(f"no ROOT given: running on a copy of the shipped samples in {root}")

    def _stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    limits = {k: v for k, v in (("doc_timeout_base", doc_timeout_base), ("doc_timeout_per_page", doc_timeout_per_page),
                                  ("doc_memory_mb", doc_memory_mb)) if v is not None}
    try:
        mode = int(output_mode, 8)
    except ValueError:
        mode = -1
    if mode < 0 or mode & ~0o666 or mode & 0o600 != 0o600:
        err.print("[red]error:[/red] --output-mode must be octal, owner read-write, no execute bit (e.g. 0600, 0640)")
        raise typer.Exit(int(ExitCode.BAD_ARGUMENTS))
    try:
        settings = Settings(store_text=store_text, output_mode=mode, **limits)
    except ValueError as e:  # pydantic's ValidationError: a limit out of its range
        err.print(f"[red]error:[/red] bad limit: {e.errors()[0]['loc'][0]} {e.errors()[0]['msg']}")
        raise typer.Exit(int(ExitCode.BAD_ARGUMENTS))
    rows = []
    try:
        rep = run_batch(
            RunOptions(root=root, ledger=ledger, report=report, full=full, only=only, since=since,
                       workers=workers, scheduler=scheduler, wait=wait, progress=progress),
            settings,
            on_dossier=lambda o: rows.append(o.synthesis) if len(rows) < 30 else None,
        )
    except SyntheseError as e:
        raise _fail(e)
    except KeyboardInterrupt:
        err.print("interrupted")
        raise typer.Exit(int(ExitCode.INTERRUPTED))
    _print_run(rows if rows and rep.dossiers_processed <= 30 else [], rep)
    raise typer.Exit(rep.exit_code)


@app.command()
def bench(
    corpus: Optional[Path] = typer.Option(None, "--corpus", help="A generated corpus (default: make one in a temp folder)."),
    dossiers: int = typer.Option(20, "--dossiers", min=1, help="Size of the generated corpus."),
    seed: int = typer.Option(0, "--seed"),
    scan_ratio: float = typer.Option(0.3, "--scan-ratio", min=0.0, max=1.0),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="N of the N-workers run (default: one per core)."),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
) -> None:
    """Measure throughput, overheads against the bare engines, scaling, re-runs, start-up and memory."""
    from extractor.quality.bench import run_bench

    _setup_logging(False)
    logging.getLogger("synthese").setLevel(logging.WARNING)
    if corpus is not None and not corpus.is_dir():
        err.print(f"[red]error:[/red] {corpus} is not a folder")
        raise typer.Exit(int(ExitCode.BAD_ARGUMENTS))
    try:
        rep = run_bench(corpus, dossiers, seed, scan_ratio, workers, log=lambda m: err.print(f"bench: {m}"))
    except SyntheseError as e:
        raise _fail(e)
    _show(rep, as_json)


def _show(report, as_json: bool) -> None:
    """A report (bench, eval) as JSON on stdout, or as rich tables."""
    if as_json:
        print(report.model_dump_json(indent=2))
    else:
        out.print(report.to_table())


@app.command()
def schema() -> None:
    """Print the JSON Schema of synthese.json."""
    from models.synthesis import Synthesis

    out.print_json(json.dumps(Synthesis.model_json_schema()))


@samples_app.command("make")
def samples_make(
    out_dir: Path = typer.Argument(..., help="Folder to create the corpus in."),
    dossiers: int = typer.Option(20, "--dossiers", min=1),
    seed: int = typer.Option(0, "--seed"),
    split: str = typer.Option("all", "--split", help="dev, heldout or all"),
    scan_ratio: float = typer.Option(0.3, "--scan-ratio", min=0.0, max=1.0),
) -> None:
    """Generate synthetic dossiers with a gold file beside each."""
    from samples.generate import make_corpus

    if split not in ("dev", "heldout", "all"):
        err.print("[red]error:[/red] --split must be dev, heldout or all")
        raise typer.Exit(int(ExitCode.BAD_ARGUMENTS))
    golds = make_corpus(out_dir, dossiers, seed, split=split, scan_ratio=scan_ratio)
    out.print(f"{len(golds)} dossiers written to {out_dir}")


@app.command("eval")
def evaluate(
    root: Path = typer.Argument(..., help="A generated corpus (dossier folders and their .gold.json), or a folder "
                                          "of text cases (NAME.txt with NAME.gold.json beside it)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    no_run: bool = typer.Option(False, "--no-run", help="Score the existing synthese.json files without running."),
    render: str = typer.Option("text", "--render", help="Text cases: each text as a PDF with a text layer "
                                                        "(text) or as a scanned image PDF read by OCR (scan)."),
    errors: bool = typer.Option(False, "--errors", help="Text cases: list every false positive and false negative "
                                                        "(always in the JSON)."),
    work: Optional[Path] = typer.Option(None, "--work", help="Text cases: render and run in this folder and keep "
                                                             "it (default: a temporary folder, removed)."),
) -> None:
    """Run the pipeline on a generated corpus or on text cases and score it against the gold files."""
    from extractor.quality.evaluate_cases import is_case_folder
    from extractor.quality.evaluation_run import evaluate_cases, evaluate_corpus

    _setup_logging(False)
    try:
        if is_case_folder(root):
            report = evaluate_cases(root, render=render, work=work, run_pipeline=not no_run)
            _show(report, as_json)
            if errors and not as_json:  # plain lines, one error each, never wrapped: made to be grepped
                print("\n" + report.errors_text())
            return
        if render != "text" or errors or work is not None:
            err.print("[red]error:[/red] --render, --errors and --work apply to a folder of text cases only")
            raise typer.Exit(int(ExitCode.BAD_ARGUMENTS))
        report = evaluate_corpus(root, run_pipeline=not no_run)
    except SyntheseError as e:
        raise _fail(e)
    _show(report, as_json)


@ledger_app.command("rebuild")
def ledger_rebuild(
    root: Path = typer.Argument(...),
    ledger: Optional[Path] = typer.Option(None, help="Ledger file (default ROOT/.synthese/ledger.duckdb)."),
) -> None:
    """Rebuild a damaged or lost ledger from the synthese.json files under ROOT."""
    from extractor.config import Settings
    from extractor.batch.rebuild import rebuild_ledger

    try:
        n = rebuild_ledger(root, ledger or Settings().ledger_path(root))
    except SyntheseError as e:
        raise _fail(e)
    out.print(f"ledger rebuilt from {n} synthese.json files")


@app.command("export")
def export(
    root: Path = typer.Argument(..., help="Folder of dossier folders (or one dossier) holding synthese.json files."),
    fmt: str = typer.Option("fhir", "--format", help="Output format: fhir (HL7 FHIR R4 IPS document Bundle)."),
    preset: str = typer.Option("ips", "--preset", help="Terminology preset: ips (international) or fr (ANS FR-IPS / FR Core URIs)."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Write under this folder (at each dossier's path relative to ROOT) instead of beside synthese.json."),
    only_validated: bool = typer.Option(False, "--only-validated", help="Export only the entries a reviewer validated or edited."),
    check: bool = typer.Option(False, "--check", help="Build and check against the IPS profiles, list every violation, write nothing."),
) -> None:
    """Export each synthese.json as an HL7 FHIR IPS document (synthese.fhir.json), checked offline against IPS 2.0.0."""
    from extractor.export.run import export_tree

    if fmt != "fhir":
        err.print("[red]error:[/red] --format must be fhir")
        raise typer.Exit(int(ExitCode.BAD_ARGUMENTS))
    try:
        rep = export_tree(root, preset, out_dir, only_validated, check_only=check)
    except SyntheseError as e:
        raise _fail(e)
    t = Table(title=f"Export FHIR IPS ({preset})")
    for col in ("dossier", "resources", "invariants", "result"):
        t.add_column(col)
    for d in rep.dossiers:
        n = sum(d.counts.values())
        result = (f"[red]{d.warning}[/red] {d.message}" if d.warning
                  else str(d.written) if d.written else "checked: ok")
        t.add_row(d.dossier, str(n) if n else "", str(d.check.invariants_evaluated) if d.check else "", result)
        if d.check and (check or d.warning):
            for v in d.check.violations:
                err.print(f"{d.dossier}: {v}")
            for u in d.check.unchecked:
                err.print(f"{d.dossier}: unchecked {u}")
    out.print(t)
    if not rep.dossiers:
        err.print(f"no synthese.json under {root}: run `synthese run {root}` first")
    raise typer.Exit(int(rep.exit_code))


def _ledger_path(root: Optional[Path], ledger: Optional[Path]) -> Path:
    from extractor.config import Settings

    if ledger is not None:
        return ledger
    if root is None:
        err.print("[red]error:[/red] give ROOT (the ledger is ROOT/.synthese/ledger.duckdb) or --ledger PATH")
        raise typer.Exit(int(ExitCode.BAD_ARGUMENTS))
    return Settings().ledger_path(root)


def _wide_console() -> Console:
    # Piped to a file or a log, rich would squeeze tables to 80 columns and cut words.
    return out if out.is_terminal else Console(width=200)


@app.command()
def audit(
    root: Optional[Path] = typer.Argument(None, help="The ROOT of the runs (its ledger is ROOT/.synthese/ledger.duckdb)."),
    ledger: Optional[Path] = typer.Option(None, help="The ledger file, instead of ROOT."),
    fmt: str = typer.Option("table", "--format", help="table, json, csv or parquet (csv, parquet: one row per check)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the json/csv/parquet output here (parquet needs it)."),
    html: Optional[Path] = typer.Option(None, "--html", help="Also write the report as one self-contained HTML file."),
    check: Optional[str] = typer.Option(None, "--check", help="Drill down: list dossiers failing this check."),
    sample: int = typer.Option(20, "--sample", min=0, help="With --check: how many dossiers to draw at random."),
    seed: int = typer.Option(0, "--seed", help="With --check: the seed of the sample (same seed, same sample)."),
    checks: Optional[Path] = typer.Option(None, "--checks", help="Another check catalogue (default rules/checks.toml)."),
) -> None:
    """Quality audit of the dossiers: checks with counts, rates, intervals, statuses, trends and a report."""
    from extractor.audit.catalogue import load_checks
    from extractor.audit.report import build_audit, check_rows, drill_sql, sample_failures
    from extractor.batch.ledger import Ledger

    if fmt not in ("table", "json", "csv", "parquet"):
        err.print("[red]error:[/red] --format must be table, json, csv or parquet")
        raise typer.Exit(int(ExitCode.BAD_ARGUMENTS))
    if fmt == "parquet" and output is None:
        err.print("[red]error:[/red] --format parquet needs --output FILE")
        raise typer.Exit(int(ExitCode.BAD_ARGUMENTS))
    path = _ledger_path(root, ledger)
    try:
        catalogue = [c.as_dict() for c in load_checks(checks)] if checks else None
        with Ledger(path, read_only=True, checks=catalogue) as led:
            if check is not None:
                picked, total = sample_failures(led, check, sample, seed)
                for dossier_id, reason in picked:
                    print(f"{dossier_id}\t{reason}")
                print(f"-- {len(picked)} of {total} dossiers failing {check} (seed {seed}); all of them:")
                print(drill_sql(check))
                return
            report = build_audit(led)
            if html is not None:
                from extractor.audit.html import render_html
                from extractor.write import atomic_write_bytes

                atomic_write_bytes(html, render_html(report).encode("utf-8"), 0o640)
                err.print(f"HTML report written to {html}")
            if fmt == "json":
                text = json.dumps(report, indent=2, ensure_ascii=False)
                if output is None:
                    print(text)
                else:
                    output.write_text(text + "\n", encoding="utf-8")
            elif fmt in ("csv", "parquet"):
                columns, rows = check_rows(report)
                if output is None:
                    with tempfile.TemporaryDirectory() as tmp:
                        led.copy_rows(columns, rows, Path(tmp) / "checks.csv", "csv")
                        sys.stdout.write((Path(tmp) / "checks.csv").read_text(encoding="utf-8"))
                else:
                    led.copy_rows(columns, rows, output, fmt)
            else:
                from extractor.audit.text import report_tables

                console = _wide_console()
                for table in report_tables(report):
                    console.print(table)
    except SyntheseError as e:
        raise _fail(e)


@app.command("sql")
def sql(
    query: str = typer.Argument(..., help='SQL on the ledger, e.g. "SELECT * FROM check_results WHERE status = \'failed\'".'),
    root: Optional[Path] = typer.Argument(None, help="The ROOT of the runs (its ledger is ROOT/.synthese/ledger.duckdb)."),
    ledger: Optional[Path] = typer.Option(None, help="The ledger file, instead of ROOT."),
    fmt: str = typer.Option("table", "--format", help="table, csv or json."),
) -> None:
    """Query the ledger, read-only: tables runs, documents, dossiers; views checks, check_results, dossier_flags."""
    import csv

    from extractor.batch.ledger import Ledger

    if fmt not in ("table", "csv", "json"):
        err.print("[red]error:[/red] --format must be table, csv or json")
        raise typer.Exit(int(ExitCode.BAD_ARGUMENTS))
    try:
        with Ledger(_ledger_path(root, ledger), read_only=True, sandbox=True) as led:
            columns, rows = led.run_sql(query)
    except SyntheseError as e:
        raise _fail(e)
    if fmt == "json":
        print(json.dumps([dict(zip(columns, r)) for r in rows], indent=2, ensure_ascii=False, default=str))
    elif fmt == "csv":
        w = csv.writer(sys.stdout)
        w.writerow(columns)
        w.writerows(rows)
    else:
        t = Table()
        for c in columns:
            t.add_column(c)
        for r in rows:
            t.add_row(*["NULL" if v is None else str(v) for v in r])
        _wide_console().print(t)



LOOPBACK = ("127.0.0.1", "localhost", "::1")


@app.command()
def review(
    root: Path = typer.Argument(..., help="The dossier tree whose synthese.json files to review."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on. Anything but 127.0.0.1 exposes health data."),
    port: int = typer.Option(8765, min=1, max=65535),
    reviewer: Optional[str] = typer.Option(None, help="Reviewer name recorded with each decision (else asked by the page)."),
    ledger: Optional[Path] = typer.Option(None, help="Ledger file for the audit trail (default ROOT/.synthese/ledger.duckdb)."),
) -> None:
    """Serve the doctors' review page for ROOT on 127.0.0.1; prints the URL (with its session token)."""
    from extractor.review.app import serve

    if not root.is_dir():
        err.print(f"{root} is not a folder")
        raise typer.Exit(int(ExitCode.BAD_ARGUMENTS))
    if host not in LOOPBACK:
        err.print(f"[bold red]warning[/]: listening on {host}: the pages (health data) are reachable from other "
                  f"machines by anyone who gets the URL; the connection is not encrypted")
    serve(root, host=host, port=port, reviewer=reviewer, ledger=ledger,
          print_url=lambda url: out.print(f"Synthèse review: open {url}  (Ctrl-C to stop)", soft_wrap=True))


@app.command()
def render(
    root: Path = typer.Argument(..., help="The dossier tree whose synthese.json files to render."),
    images: bool = typer.Option(True, "--images/--no-images", help="Embed the page bands with the findings' boxes."),
) -> None:
    """Write synthese.html (static, self-contained) beside each synthese.json under ROOT."""
    from extractor.review.render import render_tree

    if not root.is_dir():
        err.print(f"{root} is not a folder")
        raise typer.Exit(int(ExitCode.BAD_ARGUMENTS))
    written = render_tree(root, images=images)
    out.print(f"{len(written)} synthese.html written")


if __name__ == "__main__":
    app()
