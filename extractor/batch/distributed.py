"""Running the same batch on a dask.distributed cluster: `synthese run ROOT --scheduler tcp://HOST:8786`.

The driver (the `synthese run` process) plans, writes every synthese.json, the cache and the
ledger exactly as in a local run; only the reading of documents moves to the cluster. One dask
task per document: `read_on_worker(path, dossier, settings, process)` returns a plain dict (the
DocumentResult as `model_dump()`, or a failure reason) so nothing but the project's pydantic
models crosses the wire.

Isolation holds inside dask workers: a task does not read the document in the dask worker's own
process but in a killable subprocess of it (`extractor.batch.workers.WorkerPool` of size 1, one per
dask worker thread, kept between tasks so the NLP is loaded once). A hang, a native crash or a
MemoryError thus becomes a failed document, never a lost dask worker. If a dask worker itself
is lost (machine down, nanny restart), the scheduler reruns its tasks elsewhere (up to
`distributed.scheduler.allowed-failures` times) and `retries=` covers exceptions; a document
still failing after that is recorded as "crashed".

Paths: the driver sends absolute paths; every dask worker must see ROOT at the same path (local
disk for a LocalCluster, shared storage (NFS, CephFS, Lustre) mounted at the same place on a
real cluster). See docs/distributed.md.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

from extractor.config import Settings
from extractor.errors import CouldNotRun
from extractor.batch.workers import DEFAULT_PROCESS, Outcome, Task, WorkerPool

RETRIES = 2
_local = threading.local()


def _pool(settings: Settings, process: str) -> WorkerPool:
    """This dask worker thread's one-process pool (created once, reused while settings are the same)."""
    key = (settings.model_dump_json(), process)
    pool = getattr(_local, "pool", None)
    if pool is None or _local.key != key:
        if pool is not None:
            pool.close()
        _local.pool, _local.key = WorkerPool(1, settings, process), key
    return _local.pool


def read_on_worker(path: str, dossier: str, rel: str, settings: Settings, process: str = DEFAULT_PROCESS) -> dict:
    """The dask task: read one document in an isolated subprocess; return a plain dict."""
    task = Task(key=rel, path=Path(path), dossier=Path(dossier), rel=rel)
    outcome = _pool(settings, process).run_one(task)
    return {
        "result": outcome.result.model_dump(mode="json") if outcome.result is not None else None,
        "failure": outcome.failure,
        "seconds": outcome.seconds,
        "pages": outcome.pages,
    }


class DaskExecutor:
    """The executor interface of `extractor.batch.runner` on a dask.distributed scheduler."""

    def __init__(self, address: str, settings: Settings, process: str = DEFAULT_PROCESS, client=None):
        try:
            from distributed import Client
        except ImportError as e:  # pragma: no cover - dask is a dependency
            raise CouldNotRun("dask.distributed is not installed") from e
        self.settings, self.process = settings, process
        self.own_client = client is None
        try:
            self.client = client or Client(address, timeout=10, set_as_default=False)
        except (OSError, TimeoutError) as e:
            raise CouldNotRun(f"cannot reach the dask scheduler at {address} ({type(e).__name__}); is it running?") from e
        info = self.client.scheduler_info()
        self.capacity = max(1, sum(w.get("nthreads", 1) for w in info.get("workers", {}).values()))
        self.pending: dict = {}  # future -> Task
        self.t_start: dict = {}

    @property
    def busy(self) -> int:
        return len(self.pending)

    def submit(self, task: Task) -> None:
        future = self.client.submit(
            read_on_worker, str(task.path.resolve()), str(task.dossier.resolve()), task.rel, self.settings,
            self.process, retries=RETRIES, pure=False,
        )
        self.pending[future] = task
        self.t_start[future] = time.monotonic()

    def poll(self, timeout: float) -> list[Outcome]:
        # Polling `done()` rather than distributed.wait: wait() needs a default client, and the
        # driver's client is deliberately not made the process default.
        deadline = time.monotonic() + timeout
        while True:
            done = [f for f in self.pending if f.done()]
            if done or time.monotonic() >= deadline:
                break
            time.sleep(0.02)
        out = []
        for future in done:
            task = self.pending.pop(future)
            started = self.t_start.pop(future)
            if future.status == "finished":
                d = future.result()
                from extractor.pipeline import DocumentResult

                result = DocumentResult.model_validate(d["result"]) if d["result"] is not None else None
                out.append(Outcome(task, result=result, failure=d["failure"], seconds=d["seconds"], pages=d["pages"]))
            else:  # the task kept failing (a lost worker each time): the document is marked, the run goes on
                out.append(Outcome(task, failure="crashed", seconds=time.monotonic() - started))
            future.release()
        return out

    def startup_seconds(self) -> list[float]:
        return []


    def close(self) -> None:
        for future in self.pending:
            future.cancel()
        self.pending.clear()
        if self.own_client:
            self.client.close()
