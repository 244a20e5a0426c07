"""Progress on stderr: a rich bar on a TTY, plain periodic log lines otherwise (cron, CI, log files).

Shows counts only: dossiers done / total, pages, pages/s, ETA, failures so far. Never a document
name, a page of text or a snippet: logs of a nightly run end up in places health data must not.
"""
from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger("synthese.progress")

LOG_EVERY_SECONDS = 30.0


class _Base:
    def __init__(self, total: int):
        self.total = total
        self.t0 = time.monotonic()
        self.pages = 0
        self.failed = 0
        self.done = 0

    def start(self, report) -> None:
        self.t0 = time.monotonic()

    def document(self, result) -> None:
        self.pages += len(result.record.pages)
        self.failed += bool(result.record.error)

    def dossier(self, report) -> None:
        self.done = report.dossiers_processed + report.dossiers_skipped
        self.total = report.dossiers_total
        self.tick(report)

    def rate(self) -> float:
        return self.pages / max(1e-6, time.monotonic() - self.t0)

    def eta(self) -> float | None:
        elapsed = time.monotonic() - self.t0
        if not self.done:
            return None
        return elapsed / self.done * max(0, self.total - self.done)

    def tick(self, report) -> None:
        pass

    def stop(self) -> None:
        pass


class LogProgress(_Base):
    """One log line every `every` seconds."""

    def __init__(self, total: int, every: float = LOG_EVERY_SECONDS):
        super().__init__(total)
        self.every = every
        self.last = time.monotonic()

    def tick(self, report) -> None:
        now = time.monotonic()
        if now - self.last < self.every:
            return
        self.last = now
        eta = self.eta()
        log.info("progress: %d/%d dossiers (%d skipped), %d pages, %.1f pages/s, %d documents failed, ETA %s",
                 self.done, self.total, report.dossiers_skipped, self.pages, self.rate(), self.failed,
                 f"{eta:.0f} s" if eta is not None else "?")


class BarProgress(_Base):
    """A rich progress bar on stderr."""

    def __init__(self, total: int):
        super().__init__(total)
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.bar = Progress(
            TextColumn("dossiers"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[pages]} pages"),
            TextColumn("{task.fields[rate]} pages/s"), TextColumn("[red]{task.fields[failed]} failed"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=Console(stderr=True), transient=False,
        )
        self.task = self.bar.add_task("run", total=total, pages=0, rate="0.0", failed=0)

    def start(self, report) -> None:
        super().start(report)
        self.bar.start()

    def tick(self, report) -> None:
        self.bar.update(self.task, completed=self.done, total=self.total, pages=self.pages,
                        rate=f"{self.rate():.1f}", failed=self.failed)

    def stop(self) -> None:
        self.bar.stop()


def make_progress(mode: bool | None, total: int, every: float = LOG_EVERY_SECONDS) -> _Base:
    """`mode` True: bar; False: log lines; None: bar when stderr is a TTY."""
    if mode is None:
        mode = sys.stderr.isatty()
    return BarProgress(total) if mode else LogProgress(total, every)
