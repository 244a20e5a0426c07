"""The batch runner: every dossier under a root, incremental, in parallel, resumable, with a run report.

How a run goes (the driver is this process; it alone writes synthese.json, the cache and the ledger):
1. Plan, dossier by dossier, lazily: list the files, reuse each file's sha256 when its size and
   mtime_ns are those the ledger saw (else hash it), fingerprint the dossier. A dossier whose
   fingerprint and processing key (`extractor_key()` + reading settings) equal those of its last
   finished run is skipped and counted (`dossiers_skipped`), unless `--full`.
2. Documents (not dossiers) go to the executor: a pool of long-lived worker processes
   (`extractor.batch.workers`, one per core by default) or a dask.distributed cluster
   (`extractor.batch.distributed`). Each document is read under a wall-clock and a memory limit; a
   hang, a crash or a MemoryError becomes a failed document ("timeout", "crashed",
   "out_of_memory"), never a failed run. A document whose content was already read with the same
   processing key comes from the cache (`extractor.batch.cache`) instead.
3. When every document of a dossier is back: consolidate, write synthese.json (atomic), then in
   ONE ledger transaction record the dossier, its documents and its new incremental state. A run
   killed at any moment (SIGKILL included) leaves each dossier either done and recorded, or to be
   redone by the next run; temp files it left are removed when the next run meets them.

Exit codes (extractor.errors.ExitCode): 0 every document read; 1 some documents failed (the run
finished; see warnings and the ledger); 2 bad arguments; 3 could not run (lock held, ledger
damaged, workers cannot start); 130 interrupted (SIGINT/SIGTERM: finished dossiers are kept).
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel

from extractor import __version__
from extractor.batch.cache import TRANSIENT_ERRORS, ResultCache, processing_key
from extractor.config import HTML_NAME, OUTPUT_NAME, STATE_DIR, Settings
from extractor.errors import REASONS, BadArguments, CouldNotRun, ExitCode
from extractor.documents.ingest import Candidate, discover_dossiers, list_documents, sha256_file
from extractor.batch.ledger import Ledger
from extractor.pipeline import DocumentResult, summarise_dossier
from extractor.batch.workers import DEFAULT_PROCESS, Outcome, Task, WorkerPool
from models.document import DocumentRecord
from models.report import RunReport
from models.synthesis import Synthesis, Warning

log = logging.getLogger("synthese")

# Skipped without a warning: the run's own files, and hidden files (".gitkeep", ".DS_Store"), which
# by convention are not documents.
OWN_FILES = ("temp_file", "state_dir", "hidden")
# A dossier with a document that failed for a reason of the moment ("timeout", "crashed",
# "out_of_memory") is recorded with its key marked RETRY: the next run reads those documents
# once more (the others come from the cache); if they fail again it is marked GAVE_UP and left
# alone until a document changes or the extractor key does.
RETRY, GAVE_UP = "!retry", "!gave-up"


class RunOptions(BaseModel):
    root: Path
    ledger: Path | None = None
    report: Path | None = None
    full: bool = False  # process every dossier and read every document again (no cache reads)
    only: list[str] = []
    since: datetime | None = None  # only dossiers with a file (or the folder) modified at or after this
    workers: int | None = None  # default: settings.workers (os.cpu_count())
    scheduler: str | None = None  # "tcp://host:8786": run on a dask.distributed cluster
    wait: bool = False  # wait for another run on the same root instead of exiting with code 3
    process: str = DEFAULT_PROCESS  # "module:function" a worker runs per document (tests pass fakes)
    progress: bool | None = None  # None: a bar on a TTY, log lines otherwise


class DossierOutcome(BaseModel):
    dossier_id: str
    synthesis: Synthesis
    results: list[DocumentResult]


@contextmanager
def root_lock(root: Path, wait: bool = False):
    """One run per root at a time: a second run exits with a clear message (or waits) instead of corrupting anything."""
    state = root / STATE_DIR
    state.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(state / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                raise CouldNotRun(
                    f"another synthese run is working on {root} (lock {state / 'lock'}); "
                    f"try again when it ends, or pass --wait to wait for it"
                )
            log.info("another run holds %s: waiting for it to end", state / "lock")
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# -- planning ----------------------------------------------------------------------------------
@dataclass
class DossierJob:
    """One dossier being processed: its files, what is still out, what came back."""

    dossier: Path
    dossier_id: str
    warnings: list[Warning]
    files: list[tuple[str, int, int, str]]  # (rel, size, mtime_ns, sha256) of the documents read
    fingerprint: str
    tasks: list[Task] = field(default_factory=list)
    results: dict[str, DocumentResult] = field(default_factory=dict)
    cached: set[str] = field(default_factory=set)
    pending: int = 0
    previous_key: str | None = None


def _file_entry(cand: Candidate, known: dict[str, tuple[int, int, str]]) -> tuple[str, int, int, str]:
    """(rel, size, mtime_ns, sha256); the sha256 is reused when size and mtime_ns did not change."""
    try:
        st = os.stat(cand.path, follow_symlinks=False)
    except OSError:
        return cand.rel, -1, -1, "unreadable"
    prev = known.get(cand.rel)
    if prev and prev[0] == st.st_size and prev[1] == st.st_mtime_ns:
        return cand.rel, st.st_size, st.st_mtime_ns, prev[2]
    try:
        sha = sha256_file(cand.path)
    except OSError:
        sha = "unreadable"
    return cand.rel, st.st_size, st.st_mtime_ns, sha


def fingerprint(files: list[tuple[str, int, int, str]], skipped: list[tuple[str, str]]) -> str:
    """What a dossier holds: each document's path and content hash, and the files not read (with why)."""
    h = hashlib.sha256()
    h.update(json.dumps([[f[0], f[3]] for f in files] + [list(s) for s in skipped]).encode())
    return h.hexdigest()


def _remove_own_temp(cand: Candidate) -> None:
    # A `.synthese-*.tmp` in a dossier is ours, left by a run killed mid-write: with the lock held,
    # no writer is alive, so it is garbage.
    if cand.skip == "temp_file":
        try:
            cand.path.unlink()
        except OSError:
            pass


def _touched_since(dossier: Path, cands: list[Candidate], since_ns: int) -> bool:
    """True when the folder or a file in it has an mtime at or after `since_ns`.

    mtime, as `--since` promises: a file copied in with its old mtime kept (rsync -a, cp -p) is
    not seen by `--since`; a plain incremental run (without it) compares contents and sees it."""
    try:
        if os.stat(dossier).st_mtime_ns >= since_ns:  # a file removed or renamed
            return True
    except OSError:
        return True
    for c in cands:
        try:
            st = os.stat(c.path, follow_symlinks=False)
        except OSError:
            continue
        if st.st_mtime_ns >= since_ns:
            return True
    return False


def failed_result(task: Task, reason: str, seconds: float = 0.0) -> DocumentResult:
    """The DocumentResult of a document the worker could not return (timeout, crash, out of memory)."""
    return DocumentResult(
        record=DocumentRecord(path=task.rel, sha256=task.sha256, size=task.size, error=reason,
                              error_detail=REASONS.get(reason, reason), seconds=seconds),
    )


# -- the run -----------------------------------------------------------------------------------
class _Runner:
    def __init__(self, options: RunOptions, settings: Settings, report: RunReport, ledger: Ledger,
                 on_dossier, progress):
        self.o, self.settings, self.report, self.ledger = options, settings, report, ledger
        self.on_dossier, self.progress = on_dossier, progress
        self.key = processing_key(settings)
        self.cache = ResultCache(options.root, self.key, settings.store_text)
        self.cache.clean_temp()
        self.jobs: dict[str, DossierJob] = {}

    def _stage(self, name: str, seconds: float) -> None:
        st = self.report.stage_seconds
        st[name] = st.get(name, 0.0) + seconds

    def plan(self, dossier: Path) -> DossierJob | None:
        """The job of one dossier, or None when it is skipped (unchanged, or outside --since)."""
        t0 = time.perf_counter()
        dossier_id = dossier.name
        cands = list_documents(dossier)
        for c in cands:
            _remove_own_temp(c)
        if self.o.since is not None and not _touched_since(dossier, cands, int(self.o.since.timestamp() * 1e9)):
            self.report.dossiers_total -= 1
            return None
        state = self.ledger.dossier_files(dossier_id)
        known = state[2] if state else {}
        files, skipped, warnings, to_read = [], [], [], []
        for c in cands:
            if c.skip in OWN_FILES or (c.skip == "output" and c.path.name in (OUTPUT_NAME, HTML_NAME)):
                continue
            if c.skip:
                skipped.append((c.rel, c.skip))
                warnings.append(Warning(document=c.rel, code=c.skip, message=f"not read: {c.skip.replace('_', ' ')}"))
                continue
            entry = _file_entry(c, known)
            files.append(entry)
            to_read.append((c, entry))
        fp = fingerprint(files, skipped)
        self._stage("plan", time.perf_counter() - t0)
        if (not self.o.full and state and state[0] == fp and state[1] in (self.key, self.key + GAVE_UP)
                and (dossier / OUTPUT_NAME).exists()):
            self.report.dossiers_skipped += 1
            return None
        job = DossierJob(dossier, dossier_id, warnings, files, fp, previous_key=state[1] if state else None)
        for c, (rel, size, _, sha) in to_read:
            hit = None if (self.o.full or sha == "unreadable") else self.cache.get(sha)
            if hit is not None:
                hit.record.path, hit.record.size = rel, size  # the same content may sit elsewhere
                job.results[rel] = hit
                job.cached.add(rel)
                continue
            job.tasks.append(Task(key=(dossier_id, rel), path=c.path, dossier=dossier, rel=rel, sha256=sha, size=size))
        job.pending = len(job.tasks)
        return job

    def finish(self, job: DossierJob) -> None:
        """Summarise, write synthese.json, then record the dossier and its new state in one transaction."""
        t0 = time.perf_counter()
        results = [job.results[f[0]] for f in job.files if f[0] in job.results]
        synthesis = summarise_dossier(job.dossier, job.dossier_id, results, self.settings, job.warnings)
        t1 = time.perf_counter()
        key = self.key
        if any(r.record.error in TRANSIENT_ERRORS for r in results):
            key += GAVE_UP if job.previous_key in (self.key + RETRY, self.key + GAVE_UP) else RETRY
        self.ledger.record_dossier(
            self.report.run_id, synthesis, [r.record for r in results], cached=job.cached,
            store_text=self.settings.store_text, state=(job.fingerprint, key),
            files=[list(f) for f in job.files],
        )
        t2 = time.perf_counter()
        self._stage("summarise", t1 - t0)
        self._stage("ledger", t2 - t1)
        self._account(job, results)
        outcome = DossierOutcome(dossier_id=job.dossier_id, synthesis=synthesis, results=results)
        if self.on_dossier:
            self.on_dossier(outcome)
        self.progress.dossier(self.report)

    def _account(self, job: DossierJob, results: list[DocumentResult]) -> None:
        rep = self.report
        rep.dossiers_processed += 1
        if any(r.record.error for r in results):
            rep.dossiers_failed += 1
        for r in results:
            rep.documents_total += 1
            rec = r.record
            rep.pages += len(rec.pages)
            rep.ocr_pages += rec.ocr_pages
            if rec.path in job.cached:
                rep.documents_cached += 1
            if rec.error:
                rep.documents_failed += 1
                rep.failures_by_reason[rec.error] = rep.failures_by_reason.get(rec.error, 0) + 1
            else:
                rep.documents_ok += 1
            if rec.path not in job.cached:
                for stage, s in r.stage_seconds.items():
                    self._stage(stage, s)
        log.debug("dossier %s: %d documents (%d cached, %d failed)", job.dossier_id, len(results),
                  len(job.cached), sum(bool(r.record.error) for r in results))

    def collect(self, outcome: Outcome) -> None:
        dossier_id, rel = outcome.task.key
        job = self.jobs[dossier_id]
        if outcome.failure:
            result = failed_result(outcome.task, outcome.failure, outcome.seconds)
            log.warning("dossier %s: a document failed (%s)", dossier_id, outcome.failure)
        else:
            result = outcome.result
            if isinstance(result, dict):
                result = DocumentResult.model_validate(result)
            if outcome.task.sha256 != "unreadable":
                self.cache.put(outcome.task.sha256, result)
        job.results[rel] = result
        job.pending -= 1
        self.progress.document(result)
        if job.pending == 0:
            del self.jobs[dossier_id]
            self.finish(job)

    def drive(self, dossiers: list[Path], executor) -> None:
        """Feed documents to the executor as it frees up; finish each dossier as its last document returns."""
        window = 2 * max(1, executor.capacity)
        it = iter(dossiers)
        exhausted = False
        while True:
            while not exhausted and executor.busy < window:
                dossier = next(it, None)
                if dossier is None:
                    exhausted = True
                    break
                job = self.plan(dossier)
                if job is None:
                    self.progress.dossier(self.report)
                    continue
                if job.pending == 0:  # every document came from the cache
                    self.finish(job)
                    continue
                self.jobs[job.dossier_id] = job
                for task in job.tasks:
                    executor.submit(task)
            if exhausted and not self.jobs:
                return
            for outcome in executor.poll(0.5):
                self.collect(outcome)
            self.progress.tick(self.report)


def _select(root: Path, options: RunOptions) -> list[Path]:
    dossiers = discover_dossiers(root)
    if options.only:
        wanted = set(options.only)
        unknown = wanted - {d.name for d in dossiers}
        if unknown:
            raise BadArguments(f"--only: no dossier named {', '.join(sorted(unknown))} under {root}")
        dossiers = [d for d in dossiers if d.name in wanted]
    return dossiers


def run(options: RunOptions, settings: Settings, on_dossier=None) -> RunReport:
    """Process the dossiers under `options.root`; return the run report (its exit_code is set).

    Raises BadArguments (bad root or options) and CouldNotRun (lock held, ledger damaged, workers
    or scheduler unavailable). SIGINT stops the run cleanly: the report comes back with exit code 130.
    """
    from extractor.batch.progress import make_progress

    root = options.root
    if not root.is_dir():
        raise BadArguments(f"{root} is not a folder")
    if options.workers is not None and options.workers < 1:
        raise BadArguments("--workers must be at least 1")
    workers = options.workers or settings.workers
    t0 = time.perf_counter()
    report = RunReport(
        run_id=uuid.uuid4().hex[:12],
        started_at=datetime.now(timezone.utc),
        extractor_version=__version__,
        root=str(root),
        workers=workers,
        scheduler=options.scheduler,
    )
    dossiers = _select(root, options)
    report.dossiers_total = len(dossiers)
    progress = make_progress(options.progress, len(dossiers))
    with root_lock(root, options.wait), Ledger(options.ledger or settings.ledger_path(root)) as ledger:
        ledger.start_run(report, processing_key(settings))
        runner = _Runner(options, settings, report, ledger, on_dossier, progress)
        executor = None
        try:
            if options.scheduler:
                from extractor.batch.distributed import DaskExecutor

                executor = DaskExecutor(options.scheduler, settings, options.process)
                report.workers = executor.capacity
            else:
                executor = LocalExecutor(workers, settings, options.process)
            progress.start(report)
            runner.drive(dossiers, executor)
            report.exit_code = int(ExitCode.DOCUMENTS_FAILED if report.documents_failed else ExitCode.OK)
        except KeyboardInterrupt:
            log.warning("interrupted: %d dossiers finished are kept; run again to finish the others",
                        report.dossiers_processed)
            report.exit_code = int(ExitCode.INTERRUPTED)
        finally:
            if executor is not None:
                executor.close()
                if executor.startup_seconds():
                    report.stage_seconds["worker_start_max"] = max(executor.startup_seconds())
            progress.stop()
        report.finished_at = datetime.now(timezone.utc)
        report.seconds = time.perf_counter() - t0
        ledger.finish_run(report)
    if options.report:
        from extractor.write import atomic_write_bytes

        atomic_write_bytes(options.report, report.model_dump_json(indent=2).encode(), 0o600)
    log.info("run %s: %d dossiers processed, %d skipped, %d documents (%d cached, %d failed) in %.1f s",
             report.run_id, report.dossiers_processed, report.dossiers_skipped, report.documents_total,
             report.documents_cached, report.documents_failed, report.seconds)
    return report


class LocalExecutor:
    """The local pool of worker processes behind the executor interface the driver uses.

    Workers start with the first document, so a run with nothing to do starts none."""

    def __init__(self, workers: int, settings: Settings, process: str = DEFAULT_PROCESS):
        self.workers, self.settings, self.process = workers, settings, process
        self.pool: WorkerPool | None = None
        self.capacity = workers

    @property
    def busy(self) -> int:
        return self.pool.busy if self.pool else 0

    def submit(self, task: Task) -> None:
        if self.pool is None:
            self.pool = WorkerPool(self.workers, self.settings, self.process)
        self.pool.submit(task)

    def poll(self, timeout: float) -> list[Outcome]:
        return self.pool.poll(timeout) if self.pool else []

    def startup_seconds(self) -> list[float]:
        return self.pool.stats.startup_seconds if self.pool else []


    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
