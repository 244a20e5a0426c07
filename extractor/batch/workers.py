"""Worker processes: each document is read in a long-lived, killable child process.

Why our own pool rather than multiprocessing.Pool or concurrent.futures: a document can hang a
native library (a FIFO, a pathological PDF) or kill the whole process (pypdfium2 calls abort()
when an allocation fails under RLIMIT_AS: a 5.5 KB PDF inflating to 3 GiB). A pool must then
kill exactly the worker that holds that document, record why, and start a fresh one, while the
other documents go on. The stdlib pools either hang on a lost worker (Pool) or break the whole
executor (ProcessPoolExecutor raises BrokenProcessPool for every pending future).

Each worker is a plain `python -m extractor.batch.workers` subprocess (not a multiprocessing child:
dask workers are daemonic and may not have multiprocessing children, and one implementation
serves both the local pool and dask tasks). It imports the pipeline (reader, NLP, lexicons)
once, sets OMP_THREAD_LIMIT=1 and RLIMIT_AS (what it maps once loaded + `doc_memory_mb`), then
serves documents one after another over two pipes. Its own session (process group), so a timeout also kills anything it started; it
asks the kernel to kill it when the driver dies (PR_SET_PDEATHSIG), so a SIGKILLed run leaves
no worker behind.

Per document the wall-clock limit is `doc_timeout_base + doc_timeout_per_page * pages`. The
worker first counts pages cheaply (pdfium's page count, the image's frame count) and reports it;
until that report arrives only `doc_timeout_base` applies. A honest 20,000-page PDF thus gets
its time, and a FIFO or a parser stuck before the count is killed after `doc_timeout_base`.

Outcomes, as `DocumentRecord.error`: "timeout" (worker killed and replaced), "crashed" (the
worker died: a signal, abort(), the kernel's OOM killer), "out_of_memory" (MemoryError under
RLIMIT_AS; the worker exits after reporting it, as its heap may be damaged).
"""
from __future__ import annotations

import importlib
import logging
import os
import pickle
import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from extractor.config import Settings
from extractor.errors import CouldNotRun

log = logging.getLogger("synthese.workers")

DEFAULT_PROCESS = "extractor.pipeline:process_document"
# A worker not ready after this long (imports + NLP warm-up take ~5 s) is stuck: the run stops.
STARTUP_TIMEOUT = 300.0
# Modules a worker imports at start, so their load (spaCy/EDS-NLP pipelines, lexicons) is paid once.
PRELOAD = ("extractor.pipeline", "extractor.documents.reader", "extractor.documents.classify", "extractor.clinical.mentions")


@dataclass
class Task:
    """One document to read. `key` is the caller's handle (e.g. (dossier_id, rel))."""

    key: Any
    path: Path
    dossier: Path
    rel: str
    sha256: str = ""
    size: int = 0


@dataclass
class Outcome:
    """What came back for a task: a DocumentResult, or a failure reason when the worker could not return one."""

    task: Task
    result: Any = None  # DocumentResult
    failure: str | None = None  # "timeout" | "crashed" | "out_of_memory"
    seconds: float = 0.0
    pages: int | None = None


@dataclass
class _Worker:
    proc: subprocess.Popen
    send: Connection
    recv: Connection
    task: Task | None = None
    started: float = 0.0
    deadline: float = 0.0
    pages: int | None = None
    ready: bool = False
    documents: int = 0


@dataclass
class PoolStats:
    started_workers: int = 0
    replaced_workers: int = 0
    startup_seconds: list[float] = field(default_factory=list)  # spawn until ready (imports + NLP load)


def count_pages(path: Path) -> int:
    """A cheap page count: pdfium's for PDFs, frames for images, 1 otherwise. Runs in the worker."""
    from extractor.documents.ingest import sniff

    kind = sniff(path)
    if kind == "pdf":
        import pypdfium2 as pdfium

        pdf = pdfium.PdfDocument(str(path))
        try:
            return len(pdf)
        finally:
            pdf.close()
    if kind in ("tiff", "png", "jpeg"):
        from PIL import Image

        with Image.open(path) as im:
            return int(getattr(im, "n_frames", 1) or 1)
    return 1


def timeout_for(settings: Settings, pages: int | None) -> float:
    """The wall-clock limit of one document; `pages=None` before the worker reported its page count."""
    return settings.doc_timeout_base + settings.doc_timeout_per_page * (pages or 0)


class WorkerPool:
    """N long-lived worker processes reading documents under time and memory limits.

    `submit(task)` queues a task; `poll(timeout)` returns the outcomes that finished, killing and
    replacing workers past their deadline or dead. `process` names the function a worker runs,
    "module:function" with the signature of `extractor.pipeline.process_document`; tests pass
    their own. The driver alone sees results; workers never write outputs.
    """

    def __init__(self, workers: int, settings: Settings, process: str = DEFAULT_PROCESS,
                 preload: tuple[str, ...] = PRELOAD):
        self.n = max(1, workers)
        self.settings = settings
        self.process = process
        self.preload = preload
        self.queue: deque[Task] = deque()
        self.workers: list[_Worker] = []
        self.stats = PoolStats()
        self._outcomes: list[Outcome] = []

    def _grow(self) -> None:
        # Workers start as work arrives (at most n): a run with one changed document pays one
        # start-up, not n competing for the cores.
        waiting = len(self.queue) - sum(w.task is None for w in self.workers)
        while waiting > 0 and len(self.workers) < self.n:
            self.workers.append(self._spawn())
            self.stats.started_workers += 1
            waiting -= 1

    # -- lifecycle -------------------------------------------------------------------------
    def _spawn(self) -> _Worker:
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        env = dict(os.environ)
        env["OMP_THREAD_LIMIT"] = "1"  # tesseract: one thread per worker, the pool gives the parallelism
        env["OMP_NUM_THREADS"] = "1"
        env["OPENBLAS_NUM_THREADS"] = "1"
        env["MKL_NUM_THREADS"] = "1"
        # The child must import what we import (tests' fake processes included).
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        cmd = [sys.executable, "-m", "extractor.batch.workers", str(to_child_r), str(from_child_w), str(os.getpid())]
        proc = subprocess.Popen(
            cmd, pass_fds=(to_child_r, from_child_w), env=env, stdin=subprocess.DEVNULL,
            start_new_session=True, close_fds=True,
        )
        os.close(to_child_r)
        os.close(from_child_w)
        w = _Worker(proc=proc, send=Connection(to_child_w, readable=False), recv=Connection(from_child_r, writable=False))
        w.started = time.monotonic()
        w.send.send_bytes(pickle.dumps(("init", self.settings, self.process, self.preload)))
        return w

    def _kill(self, w: _Worker) -> None:
        try:
            os.killpg(w.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        w.proc.wait()
        w.send.close()
        w.recv.close()

    def _replace(self, w: _Worker) -> None:
        self._kill(w)
        i = self.workers.index(w)
        self.workers[i] = self._spawn()
        self.stats.started_workers += 1
        self.stats.replaced_workers += 1

    def close(self) -> None:
        """Stop every worker: a polite 'stop' to idle ones (they answer 'bye'), then SIGKILL."""
        polite = [w for w in self.workers if w.task is None]
        for w in polite:
            try:
                w.send.send_bytes(pickle.dumps(("stop",)))
            except OSError:
                pass
        deadline = time.monotonic() + 5.0
        for w in polite:
            try:
                while w.recv.poll(max(0.0, deadline - time.monotonic())):
                    msg = pickle.loads(w.recv.recv_bytes())
                    if msg[0] == "bye":
                        break
            except (EOFError, OSError):
                pass
        for w in self.workers:
            self._kill(w)
        self.workers = []

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- work ------------------------------------------------------------------------------
    def submit(self, task: Task) -> None:
        self.queue.append(task)
        self._dispatch()

    @property
    def busy(self) -> int:
        return sum(w.task is not None for w in self.workers) + len(self.queue)

    def _dispatch(self) -> None:
        self._grow()
        for w in self.workers:
            if not self.queue:
                return
            if w.task is None and w.ready and w.proc.poll() is not None:
                self._replace(w)  # died while idle (e.g. its parent thread ended): never give it work
                continue
            if w.task is None and w.ready:
                task = self.queue.popleft()
                w.task, w.pages = task, None
                now = time.monotonic()
                w.started, w.deadline = now, now + timeout_for(self.settings, None)
                try:
                    w.send.send_bytes(pickle.dumps(("doc", task.path, task.dossier)))
                except OSError:
                    pass  # the worker is dead: poll() sees EOF and reports "crashed"

    def poll(self, timeout: float = 0.5) -> list[Outcome]:
        """Wait up to `timeout` s for messages; return finished outcomes (results and failures)."""
        self._dispatch()
        now = time.monotonic()
        soonest = min((w.deadline for w in self.workers if w.task is not None), default=now + timeout)
        ready = wait([w.recv for w in self.workers], timeout=max(0.0, min(timeout, soonest - now)))
        for conn in ready:
            w = next((x for x in self.workers if x.recv is conn), None)
            if w is None:
                continue
            try:
                msg = pickle.loads(w.recv.recv_bytes())
            except (EOFError, OSError):
                self._dead(w)
                continue
            self._handle(w, msg)
        now = time.monotonic()
        for w in self.workers:
            if not w.ready and now - w.started > STARTUP_TIMEOUT:
                raise CouldNotRun(f"a worker was not ready after {STARTUP_TIMEOUT:.0f} s; is the machine overloaded?")
        for w in list(self.workers):
            if w.task is not None and now > w.deadline:
                log.warning("a document took longer than %.0f s (pages: %s): worker killed",
                            timeout_for(self.settings, w.pages), w.pages if w.pages is not None else "?")
                self._outcomes.append(Outcome(w.task, failure="timeout", seconds=now - w.started, pages=w.pages))
                w.task = None
                self._replace(w)
        self._dispatch()
        out, self._outcomes = self._outcomes, []
        return out

    def _handle(self, w: _Worker, msg: tuple) -> None:
        kind = msg[0]
        if kind == "ready":
            w.ready = True
            self.stats.startup_seconds.append(time.monotonic() - w.started)
        elif kind == "pages" and w.task is not None:
            w.pages = msg[1]
            w.deadline = w.started + timeout_for(self.settings, w.pages)
        elif kind == "done" and w.task is not None:
            self._outcomes.append(Outcome(w.task, result=msg[1], seconds=time.monotonic() - w.started, pages=w.pages))
            w.task = None
            w.documents += 1
        elif kind == "error" and w.task is not None:
            self._outcomes.append(Outcome(w.task, failure=msg[1], seconds=time.monotonic() - w.started, pages=w.pages))
            w.task = None
        elif kind == "oom" and w.task is not None:
            self._outcomes.append(Outcome(w.task, failure="out_of_memory", seconds=time.monotonic() - w.started,
                                          pages=w.pages))
            w.task = None
            self._replace(w)
        elif kind == "fatal":
            # The worker could not start (e.g. the pipeline does not import): nothing can run.
            raise CouldNotRun(f"a worker could not start ({msg[1]}); is the installation complete?")

    def _dead(self, w: _Worker) -> None:
        w.proc.wait()
        code = w.proc.returncode
        if w.task is not None:
            log.warning("a worker died (exit %s) while reading a document", code)
            self._outcomes.append(Outcome(w.task, failure="crashed", seconds=time.monotonic() - w.started,
                                          pages=w.pages))
            w.task = None
        elif not w.ready:
            raise CouldNotRun(f"a worker died while starting (exit {code}); see the messages above")
        self._replace(w)

    def run_one(self, task: Task) -> Outcome:
        """Submit one task and wait for its outcome (used inside dask tasks)."""
        self.submit(task)
        while True:
            for o in self.poll(1.0):
                if o.task is task:
                    return o


# -- the worker side ---------------------------------------------------------------------------
def _die_with_parent(parent: int) -> None:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the driver died before prctl took effect
        os._exit(0)


def _vm_size_mb() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


def warm_up(settings: Settings | None = None) -> None:
    """Load what the NLP stages load lazily (EDS-NLP pipeline, lexicons, compiled patterns) by
    running them once on a made-up sentence, and this process's tesseract with its model (issue 15:
    one API object per worker, kept for every page), so the first real document does not pay for it.
    Raises CouldNotRun when tesserocr or an OCR model is missing: the worker reports it as fatal and
    the run stops with exit 3 before any document is read."""
    from extractor.documents.classify import classify_document
    from extractor.documents.ocr import check_models, tesseract
    from extractor.clinical.mentions import extract_mentions
    from models.document import DocumentRecord, Page

    import cv2

    settings = settings or Settings()
    # One thread per worker, as for tesseract (OMP_THREAD_LIMIT): the pool gives the parallelism, and
    # OpenCV's own threads (deskew, resize) would only take time from the other workers' cores.
    cv2.setNumThreads(1)
    check_models(settings)
    tesseract(settings)

    text = ("Compte rendu de consultation du 12 mars 2024\nAntécédents : hypertension artérielle.\n"
            "Allergie : pénicilline.\nTraitement : metformine 1000 mg matin et soir.\n")
    record = DocumentRecord(path="warm-up", sha256="", size=0, pages=[Page(number=1, text=text, source="text_layer")])
    classify_document(record)
    extract_mentions(record)


def _limit_memory(mb: int) -> None:
    """RLIMIT_AS = what the warmed-up worker already maps + `mb` for the document.

    RLIMIT_AS counts virtual memory, and a worker with the reader and EDS-NLP loaded already maps
    ~1.8 GiB of it (shared libraries, thread stacks, malloc arenas) while its RSS is ~300 MiB; a
    bare `doc_memory_mb` limit would make every page fail. So the limit is per document, on top."""
    import resource

    limit_mb = _vm_size_mb() + mb
    try:
        resource.setrlimit(resource.RLIMIT_AS, (limit_mb << 20, limit_mb << 20))
    except (ValueError, OSError):
        pass


def serve(in_fd: int, out_fd: int, parent: int) -> None:
    """The worker loop: init (imports, limits), then one document per message until 'stop' or EOF."""
    import resource

    _die_with_parent(parent)
    # Anything a library prints must not reach the driver's terminal as if it were ours.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver decides when we stop
    recv = Connection(in_fd, writable=False)
    send = Connection(out_fd, readable=False)
    try:
        msg = pickle.loads(recv.recv_bytes())
    except EOFError:
        return
    _, settings, process_name, preload = msg
    if process_name == DEFAULT_PROCESS:
        from extractor.clinical.nlp import skip_unused_french_exceptions

        skip_unused_french_exceptions()  # 1-3 s of start-up (see there)
    try:
        for name in preload:
            try:
                importlib.import_module(name)
            except ImportError as e:
                if name == process_name.split(":")[0]:
                    raise
                logging.getLogger("synthese.workers").debug("preload %s skipped: %s", name, e)
        module, _, func = process_name.partition(":")
        process = getattr(importlib.import_module(module), func)
        if process_name == DEFAULT_PROCESS:
            warm_up(settings)
    except Exception as e:  # noqa: BLE001 - reported to the driver, which stops the run
        send.send_bytes(pickle.dumps(("fatal", f"{type(e).__name__}: {e}")))
        return
    _limit_memory(settings.doc_memory_mb)
    send.send_bytes(pickle.dumps(("ready",)))
    while True:
        try:
            msg = pickle.loads(recv.recv_bytes())
        except (EOFError, OSError):
            return
        if msg[0] == "stop":
            send.send_bytes(pickle.dumps(("bye", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)))
            return
        _, path, dossier = msg
        try:
            try:
                pages = count_pages(Path(path))
            except MemoryError:
                raise
            except Exception:  # noqa: BLE001 - the reader will name the problem
                pages = None
            if pages is not None:
                send.send_bytes(pickle.dumps(("pages", pages)))
            result = process(Path(path), Path(dossier), settings)
            send.send_bytes(pickle.dumps(("done", result)))
        except ImportError as e:
            # The installation, not the document: every document would fail the same way.
            send.send_bytes(pickle.dumps(("fatal", f"{type(e).__name__}: {e}")))
            return
        except MemoryError:
            try:
                send.send_bytes(pickle.dumps(("oom",)))
            finally:
                os._exit(3)
        except Exception as e:  # noqa: BLE001 - a bug, not the document: keep serving, report "crashed"
            sys.stderr.write(f"synthese worker: {type(e).__name__} while reading a document\n")
            send.send_bytes(pickle.dumps(("error", "crashed")))


if __name__ == "__main__":
    serve(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
