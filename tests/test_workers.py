"""Worker isolation (issue 5 §1): real worker processes, real signals, real RLIMIT_AS, a real FIFO.

The functions at the top are what the workers run in these tests ("test_workers:NAME"): they
stand in for the reader when the failure must be certain (a hang, abort(), a MemoryError), so
the pool's handling is tested apart from any particular bad file. `read_only` runs the real reader.
"""
import os
import time
from pathlib import Path

import pytest

from extractor.config import Settings
from extractor.pipeline import DocumentResult
from extractor.batch.workers import Task, WorkerPool, count_pages, timeout_for
from helpers_docs import PARAGRAPH, text_pdf
from models.document import DocumentRecord

LOADS = 0  # how many times this module was imported in this process


def _loaded():
    global LOADS
    LOADS += 1


_loaded()


def fake_process(path, dossier, settings):
    """Behaves according to the file name: hang, abort, oom, bug, slowN (N s per page), else ok."""
    name = Path(path).name
    if name.startswith("hang"):
        time.sleep(3600)
    if name.startswith("abort"):
        os.abort()  # SIGABRT from C, as pdfium does when an allocation fails
    if name.startswith("oom"):
        bytearray(8 << 30)  # beyond RLIMIT_AS: MemoryError
    if name.startswith("bug"):
        raise ValueError("a bug, not the document")
    if name.startswith("slow"):
        time.sleep(float(name[4:7]) * count_pages(Path(path)))
    record = DocumentRecord(path=name, sha256="", size=0,
                            error_detail=f"{os.getpid()}:{LOADS}:{os.environ.get('OMP_THREAD_LIMIT')}")
    return DocumentResult(record=record)


def read_only(path, dossier, settings):
    """The real reader without the NLP stages."""
    from extractor.documents.reader import read_document

    record = read_document(Path(path), Path(dossier), settings)
    return DocumentResult(record=record, stage_seconds={"read": record.seconds})


def read_tight(path, dossier, settings):
    """The real reader; a file named "tight*" gets a per-page OCR limit of 0.05 s (the pool's own
    limit stays that of `settings`, so the page limit is what trips)."""
    if Path(path).name.startswith("tight"):
        settings = settings.model_copy(update={"doc_timeout_base": 0.02, "doc_timeout_per_page": 0.03})
    return read_only(path, dossier, settings)


def _run(pool, names, folder):
    tasks = {n: Task(key=n, path=folder / n, dossier=folder, rel=n) for n in names}
    for t in tasks.values():
        pool.submit(t)
    got = {}
    deadline = time.monotonic() + 60
    while len(got) < len(tasks) and time.monotonic() < deadline:
        for o in pool.poll(0.2):
            got[o.task.key] = o
    return got


def test_a_hang_a_crash_and_a_memory_error_fail_their_document_only(tmp_path):
    for n in ("a.pdf", "hang.pdf", "abort.pdf", "oom.pdf", "bug.pdf", "b.pdf", "c.pdf"):
        (tmp_path / n).write_bytes(b"not really a pdf")
    settings = Settings(doc_timeout_base=1.0, doc_timeout_per_page=0.5, doc_memory_mb=600)
    with WorkerPool(2, settings, process="test_workers:fake_process") as pool:
        got = _run(pool, ["a.pdf", "hang.pdf", "abort.pdf", "oom.pdf", "bug.pdf", "b.pdf", "c.pdf"], tmp_path)
        assert pool.stats.replaced_workers == 3  # hang (killed), abort (died), oom (exits after reporting)
    failures = {k: o.failure for k, o in got.items()}
    assert failures == {"a.pdf": None, "hang.pdf": "timeout", "abort.pdf": "crashed", "oom.pdf": "out_of_memory",
                        "bug.pdf": "crashed", "b.pdf": None, "c.pdf": None}
    assert got["hang.pdf"].seconds < 10
    assert all(o.result.record.path == k for k, o in got.items() if o.failure is None)


def test_workers_are_long_lived_load_once_and_run_one_omp_thread(tmp_path):
    names = [f"d{i}.pdf" for i in range(8)]
    for n in names:
        (tmp_path / n).write_bytes(b"x")
    with WorkerPool(2, Settings(), process="test_workers:fake_process") as pool:
        got = _run(pool, names, tmp_path)
    stamps = [o.result.record.error_detail.split(":") for o in got.values()]
    assert len({pid for pid, _, _ in stamps}) <= 2  # 8 documents, 2 processes
    assert {loads for _, loads, _ in stamps} == {"1"}  # the module was imported once per worker
    assert {omp for _, _, omp in stamps} == {"1"}
    assert str(os.getpid()) not in {pid for pid, _, _ in stamps}


def test_the_time_limit_grows_with_the_page_count(tmp_path):
    # 6 pages at 0.25 s each: 1.5 s, past the 0.6 s base alone but within 0.6 + 6 * 0.4.
    text_pdf(tmp_path / "slow0.25.pdf", [PARAGRAPH] * 6)
    settings = Settings(doc_timeout_base=0.6, doc_timeout_per_page=0.4)
    assert timeout_for(settings, 6) == pytest.approx(3.0)
    with WorkerPool(1, settings, process="test_workers:fake_process") as pool:
        got = _run(pool, ["slow0.25.pdf"], tmp_path)
    assert got["slow0.25.pdf"].failure is None
    assert got["slow0.25.pdf"].pages == 6


def test_a_fifo_times_out_with_the_real_reader(tmp_path):
    os.mkfifo(tmp_path / "pipe.pdf")  # opening it for reading blocks until a writer comes: never
    text_pdf(tmp_path / "ok.pdf", [PARAGRAPH])
    settings = Settings(doc_timeout_base=1.0)
    with WorkerPool(1, settings, process="test_workers:read_only") as pool:
        got = _run(pool, ["pipe.pdf", "ok.pdf"], tmp_path)
    assert got["pipe.pdf"].failure == "timeout"
    assert got["ok.pdf"].failure is None
    assert got["ok.pdf"].result.record.error is None
    assert "Antécédents" in got["ok.pdf"].result.record.pages[0].text


def test_a_page_over_its_ocr_limit_fails_alone_and_the_worker_stays(tmp_path):
    """Issue 15: tesseract's own deadline cancels the reading; the document comes back failed as
    "timeout" from a worker that is not killed, and the same worker (with its loaded model) reads on."""
    from helpers_docs import page_image

    page_image().save(tmp_path / "tight.png")
    page_image(PARAGRAPH[:3]).save(tmp_path / "next.png")
    with WorkerPool(1, Settings(doc_timeout_base=120.0), process="test_workers:read_tight") as pool:
        got = _run(pool, ["tight.png", "next.png"], tmp_path)
        assert pool.stats.started_workers == 1 and pool.stats.replaced_workers == 0
    assert got["tight.png"].failure is None and got["tight.png"].result.record.error == "timeout"
    assert got["next.png"].failure is None and got["next.png"].result.record.error is None
    assert "hypertension" in got["next.png"].result.record.pages[0].text


def bomb_pdf(path: Path, gib: int = 1) -> Path:
    """A ~13 KB PDF whose page content, deflated twice, inflates to `gib` GiB of spaces."""
    import zlib

    c = zlib.compressobj(1)
    chunk = b" " * (64 << 20)
    inner = b"".join([c.compress(chunk) for _ in range(16 * gib)] + [c.flush()])
    outer = zlib.compress(inner, 9)
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R >>",
            b"<< /Length %d /Filter [/FlateDecode /FlateDecode] >>\nstream\n" % len(outer) + outer + b"\nendstream"]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for i, o in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + o + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1) + b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    path.write_bytes(bytes(out))
    return path


def test_a_decompression_bomb_aborting_pdfium_kills_only_its_worker(tmp_path):
    # pdfium calls abort() when an allocation fails: under RLIMIT_AS the whole process dies (SIGABRT).
    bomb = bomb_pdf(tmp_path / "bomb.pdf")
    assert bomb.stat().st_size < 16_000
    text_pdf(tmp_path / "ok.pdf", [PARAGRAPH])
    with WorkerPool(1, Settings(doc_memory_mb=512), process="test_workers:read_only") as pool:
        got = _run(pool, ["bomb.pdf", "ok.pdf"], tmp_path)
        assert pool.stats.replaced_workers == 1
    assert got["bomb.pdf"].failure in ("crashed", "out_of_memory")
    assert got["ok.pdf"].failure is None and got["ok.pdf"].result.record.error is None


def test_a_worker_that_cannot_import_its_pipeline_stops_the_run(tmp_path):
    from extractor.errors import CouldNotRun

    (tmp_path / "a.pdf").write_bytes(b"x")
    with pytest.raises(CouldNotRun, match="could not start"):
        with WorkerPool(1, Settings(), process="no_such_module:process") as pool:
            _run(pool, ["a.pdf"], tmp_path)
