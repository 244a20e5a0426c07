"""`synthese bench`: throughput, overheads against the bare engines, OCR quality, scaling, incremental
re-runs, start-up and memory, measured in one go on a generated corpus (issue 4).

What is measured, on a copy of the corpus in a temporary folder:
(a) full pipeline, 1 worker: text-PDF pages/s and scanned pages/s per core, from the per-document
    stage times the workers report (read + NLP), so driver and start-up are not in it;
(b) the bare engines on the same pages: pypdfium2 text extraction and pdfplumber `extract_text`
    on the text PDFs. Scans (issue 15), measured document by document in this process, the three
    one after the other so that they share the machine's load of the moment (a busy machine drifts
    by tens of percent within minutes), in an order that turns with each document (which runs first
    on a document, or after which, changes its speed: the same readings measured apart ran at the
    same speed, where in a fixed order the pipeline's came out 6-18 % slower): the pipeline
    (`process_document`, warmed up as a worker is, one tesseract API object), `tesseract IMG stdout
    -l fra` (the command line as users call it, one thread, OMP_THREAD_LIMIT=1) on an uncompressed
    8-bit grey image of each page, the one the pipeline starts from (a PDF page's embedded scan at
    its own resolution or its rendering at `ocr_dpi`, an image file's frame), and a bare tesserocr
    loop on the same images held in memory (one API object, SetImageBytes + GetUTF8Text: the floor
    of reading through the API). Ratios pipeline/bare; the
    OCR character error rate of each against the gold page text (whitespace collapsed on both
    sides); the pipeline's time per scanned page split into image extraction, orientation (ink
    analysis, OSD), deskew, recognition, NLP and the rest (opening the PDF, text layer, layout);
(c) wall-clock throughput with 1 worker and with N workers (start-up of the workers excluded);
(d) a second run with nothing changed and a run with 1% of the dossiers changed (at least one;
    a document gets a PDF comment appended), against the full N-worker run;
(e) start-up: a fresh interpreter until the first document can be processed (imports + NLP
    warm-up), and the peak RSS of a worker (ru_maxrss of reaped children, RUSAGE_CHILDREN).

Each figure comes with its target and pass/fail. Timings are reported, never asserted in tests.
"""
from __future__ import annotations

import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pydantic import BaseModel, Field

from extractor.config import STATE_DIR, Settings

SCANNED_KINDS = ("scanned_pdf", "image")


class Figure(BaseModel):
    value: float | None = None
    unit: str = ""
    target: str | None = None
    passed: bool | None = None
    note: str = ""


class BenchReport(BaseModel):
    corpus: dict = Field(default_factory=dict)
    workers: int = 1
    figures: dict[str, Figure] = Field(default_factory=dict)

    def to_table(self):
        from rich.table import Table

        t = Table(title="synthese bench")
        for col in ("figure", "value", "unit", "target", "pass"):
            t.add_column(col, justify="right" if col in ("value",) else "left")
        for name, f in self.figures.items():
            value = "n/a" if f.value is None else (f"{f.value:.3g}" if abs(f.value) < 1000 else f"{f.value:.0f}")
            ok = "" if f.passed is None else ("[green]pass[/green]" if f.passed else "[red]FAIL[/red]")
            t.add_row(name, value, f.unit, f.target or "", ok)
        return t


def _fig(value, unit, target: str | None = None, note: str = "") -> Figure:
    passed = None
    if value is not None and target:
        op, bound = target.split()
        passed = value >= float(bound) if op == ">=" else value <= float(bound)
    return Figure(value=None if value is None else round(value, 4), unit=unit, target=target, passed=passed, note=note)


def _ratio(a, b):
    return a / b if a is not None and b else None


def _collapse(text: str) -> str:
    return " ".join(text.split())


def _run(root: Path, workers: int, settings: Settings, full: bool = False, collect: list | None = None):
    from extractor.batch.runner import RunOptions, run

    on = (lambda o: collect.extend((o.dossier_id, r) for r in o.results)) if collect is not None else None
    return run(RunOptions(root=root, workers=workers, full=full, progress=False), settings, on_dossier=on)


def _wall_throughput(report) -> float | None:
    work = report.seconds - report.stage_seconds.get("worker_start_max", 0.0)
    return report.pages / work if work > 0 and report.pages else None


def _per_kind(results) -> dict[str, tuple[int, float]]:
    out = {"text": [0, 0.0], "scanned": [0, 0.0]}
    for r in results:
        rec = r.record
        if rec.error:
            continue
        kind = "text" if rec.kind == "text_pdf" else "scanned" if rec.kind in SCANNED_KINDS else None
        if kind:
            out[kind][0] += len(rec.pages)
            out[kind][1] += r.stage_seconds.get("read", 0.0) + r.stage_seconds.get("nlp", 0.0)
    return {k: (v[0], v[1]) for k, v in out.items()}


def _bare_text_engines(paths: list[Path]) -> dict[str, tuple[int, float]]:
    import pdfplumber
    import pypdfium2 as pdfium

    pages = 0
    t0 = time.perf_counter()
    for p in paths:
        pdf = pdfium.PdfDocument(str(p))
        for i in range(len(pdf)):
            tp = pdf[i].get_textpage()
            tp.get_text_range()
            pages += 1
        pdf.close()
    t_pdfium = time.perf_counter() - t0
    t0 = time.perf_counter()
    for p in paths:
        with pdfplumber.open(p) as pdf:
            for page in pdf.pages:
                page.extract_text()
    t_plumber = time.perf_counter() - t0
    return {"pdfium": (pages, t_pdfium), "pdfplumber": (pages, t_plumber)}


def _scan_images(path: Path, dpi: int, folder: Path) -> list[Path]:
    """Each page of a scanned document as an uncompressed 8-bit grey PGM: the image the pipeline starts
    from (`ocr.pdf_page_image` at `dpi` for a PDF page, the frame itself for an image file)."""
    from PIL import Image

    from extractor.documents.ingest import sniff
    from extractor.documents.ocr import pdf_page_image
    from extractor.documents.pdfimages import plain_image_pages

    out = []
    if sniff(path) == "pdf":
        import pypdfium2 as pdfium

        pdf = pdfium.PdfDocument(str(path))
        plain = plain_image_pages(path, len(pdf))
        for i in range(len(pdf)):
            img = pdf_page_image(pdf, i, dpi, plain=plain)
            target = folder / f"{path.stem}-{i + 1}.pgm"
            img.save(target)
            out.append(target)
        pdf.close()
    else:
        with Image.open(path) as im:
            for i in range(getattr(im, "n_frames", 1)):
                im.seek(i)
                target = folder / f"{path.stem}-{i + 1}.pgm"
                im.convert("L").save(target)
                out.append(target)
    return out


def _bare_tesseract(images: list[Path], lang: str) -> tuple[list[str], float]:
    env = dict(os.environ, OMP_THREAD_LIMIT="1")
    texts, seconds = [], 0.0
    for img in images:
        t0 = time.perf_counter()
        proc = subprocess.run(["tesseract", str(img), "stdout", "-l", lang], capture_output=True, env=env, timeout=600)
        seconds += time.perf_counter() - t0
        texts.append(proc.stdout.decode("utf-8", "replace"))
    return texts, seconds


def _bare_tesserocr(images: list[Path], settings: Settings) -> tuple[list[str], float]:
    """A bare loop over tesseract's API: one object with the model loaded (as a worker holds it),
    each image already decoded in memory, read with tesseract's defaults (psm 3, no dpi hint, as the
    command line above)."""
    import tesserocr
    from PIL import Image

    from extractor.documents.ocr import find_tessdata

    texts, seconds = [], 0.0
    with tesserocr.PyTessBaseAPI(path=f"{find_tessdata(settings.ocr_lang)}/", lang=settings.ocr_lang) as api:
        for img in images:
            with Image.open(img) as im:
                gray = im.convert("L")
            data = gray.tobytes()
            t0 = time.perf_counter()
            api.SetImageBytes(data, gray.width, gray.height, 1, gray.width)
            texts.append(api.GetUTF8Text())
            seconds += time.perf_counter() - t0
    return texts, seconds


OCR_STAGES = ("ocr_image", "ocr_orientation", "ocr_deskew", "ocr_recognition")


def _cer(pairs: list[tuple[str, str]]) -> float | None:
    from rapidfuzz.distance import Levenshtein

    dist = total = 0
    for hyp, ref in pairs:
        ref_c = _collapse(ref)
        dist += Levenshtein.distance(_collapse(hyp), ref_c)
        total += len(ref_c)
    return dist / total if total else None


def _startup_seconds() -> float:
    code = ("from extractor.clinical.nlp import skip_unused_french_exceptions\nskip_unused_french_exceptions()\n"
            "import extractor.pipeline, extractor.documents.reader\n"
            "from extractor.batch.workers import warm_up\nwarm_up()\n")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2],
                   env=dict(os.environ, OMP_THREAD_LIMIT="1"), timeout=300)
    return time.perf_counter() - t0


def _gold_pages(corpus: Path) -> dict[tuple[str, str, int], str]:
    out = {}
    for g in corpus.glob("*.gold.json"):
        data = json.loads(g.read_text())
        for doc in data.get("documents", []):
            for page in doc.get("pages", []):
                out[(data["dossier_id"], doc["path"], page["number"])] = page.get("text", "")
    return out


def _measure_scans(scan_docs, gold, settings: Settings, root: Path, tmp: Path, say) -> dict:
    """The scanned documents read by the pipeline, the tesseract program and a bare tesserocr loop,
    document by document (see (b) above); times, text pairs for the CER, the pipeline's time split."""
    from extractor.batch.workers import warm_up
    from extractor.pipeline import process_document

    say("scanned pages: pipeline, tesseract command line, tesserocr loop, interleaved")
    warm_up(settings)
    img_dir = tmp / "images"
    img_dir.mkdir()
    out = {"pages": 0, "pipeline_s": 0.0, "tesseract_s": 0.0, "tesserocr_s": 0.0,
           "pairs_pipe": [], "pairs_tess": [], "pairs_api": [], "split": {}}
    split = out["split"]
    for n, (dossier_id, path, _) in enumerate(scan_docs):  # documents the full run read
        images = _scan_images(path, settings.ocr_dpi, img_dir)
        # The three readings of a document run one after the other, in an order that turns with each
        # document: whichever runs first (after the previous document's) or after another runs at
        # another speed, so no side keeps the same place.
        runs = {}
        for side in ("pipeline", "tesseract", "tesserocr")[n % 3:] + ("pipeline", "tesseract", "tesserocr")[:n % 3]:
            if side == "pipeline":
                runs[side] = process_document(path, root / dossier_id, settings)
            elif side == "tesseract":
                runs[side] = _bare_tesseract(images, settings.ocr_lang)
            else:
                runs[side] = _bare_tesserocr(images, settings)
        result = runs["pipeline"]
        if result.record.error:
            for img in images:
                img.unlink()
            continue
        st = result.stage_seconds
        out["pipeline_s"] += st["read"] + st["nlp"]
        ocr = {stage.removeprefix("ocr_"): st.get(stage, 0.0) for stage in OCR_STAGES}
        ocr["nlp"] = st["nlp"]
        ocr["other"] = st["read"] - sum(st.get(stage, 0.0) for stage in OCR_STAGES)
        for k, v in ocr.items():
            split[k] = split.get(k, 0.0) + v
        tess_texts, tess_s = runs["tesseract"]
        api_texts, api_s = runs["tesserocr"]
        out["tesseract_s"] += tess_s
        out["tesserocr_s"] += api_s
        out["pages"] += len(images)
        for i, (tess_text, api_text) in enumerate(zip(tess_texts, api_texts), 1):
            ref = gold.get((dossier_id, result.record.path, i))
            page = next((p for p in result.record.pages if p.number == i), None)
            if ref is not None and page is not None:
                out["pairs_pipe"].append((page.text, ref))
                out["pairs_tess"].append((tess_text, ref))
                out["pairs_api"].append((api_text, ref))
        for img in images:
            img.unlink()
    return out


def run_bench(corpus: Path | None = None, dossiers: int = 20, seed: int = 0, scan_ratio: float = 0.3,
              workers: int | None = None, settings: Settings | None = None, log=None) -> BenchReport:
    """Measure everything on a copy of `corpus` (or a corpus generated with make_corpus)."""
    settings = settings or Settings()
    workers = workers or os.cpu_count() or 1
    say = log or (lambda msg: None)
    rep = BenchReport(workers=workers)
    with tempfile.TemporaryDirectory(prefix="synthese-bench-") as tmp:
        root = Path(tmp) / "corpus"
        if corpus is not None:
            shutil.copytree(corpus, root, ignore=shutil.ignore_patterns(STATE_DIR, "synthese.json"))
        else:
            from samples.generate import make_corpus

            make_corpus(root, dossiers, seed, scan_ratio=scan_ratio)
        gold = _gold_pages(root)

        say("full run, 1 worker")
        results: list = []
        one = _run(root, 1, settings, full=True, collect=results)
        kinds = _per_kind([r for _, r in results])
        text_pages, text_s = kinds["text"]
        scan_pages, scan_s = kinds["scanned"]
        rep.corpus = {"dossiers": one.dossiers_total, "documents": one.documents_total, "pages": one.pages,
                      "text_pdf_pages": text_pages, "scanned_pages": scan_pages, "failed_documents": one.documents_failed}

        say(f"full run, {workers} workers")
        shutil.rmtree(root / STATE_DIR)
        many = _run(root, workers, settings, full=True)
        say("re-run, nothing changed")
        unchanged = _run(root, workers, settings)
        changed_n = max(1, math.ceil(0.01 * many.dossiers_total))
        touched = 0
        for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            pdfs = sorted(d.glob("*.pdf"))
            if pdfs and touched < changed_n:
                with open(pdfs[0], "ab") as f:
                    f.write(b"\n% synthese bench: changed\n")
                touched += 1
        say(f"re-run, {touched} dossier(s) changed")
        changed = _run(root, workers, settings)
        peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss

        say("start-up of a fresh process")
        startup = _startup_seconds()

        say("bare engines")
        text_paths, scan_docs = [], []
        for dossier_id, r in results:
            if r.record.error:
                continue
            path = root / dossier_id / r.record.path
            if r.record.kind == "text_pdf":
                text_paths.append(path)
            elif r.record.kind in SCANNED_KINDS:
                scan_docs.append((dossier_id, path, r))
        engines = _bare_text_engines(text_paths) if text_paths else {}
        scans = _measure_scans(scan_docs, gold, settings, root, Path(tmp), say) if scan_docs else {}

    f = rep.figures
    text_rate = text_pages / text_s if text_s else None
    scan_rate = scan_pages / scan_s if scan_s else None
    f["text_pages_per_s_per_core"] = _fig(text_rate, "pages/s", ">= 25")
    f["scanned_pages_per_s_per_core"] = _fig(scan_rate, "pages/s")
    pdfium_rate = _ratio(*engines["pdfium"]) if engines else None
    plumber_rate = _ratio(*engines["pdfplumber"]) if engines else None
    pages = scans.get("pages", 0)
    pipe_s, tess_s, api_s = (scans.get(k) for k in ("pipeline_s", "tesseract_s", "tesserocr_s"))
    f["bare_pdfium_pages_per_s"] = _fig(pdfium_rate, "pages/s")
    f["bare_pdfplumber_pages_per_s"] = _fig(plumber_rate, "pages/s")
    f["bare_tesseract_pages_per_s"] = _fig(_ratio(pages, tess_s), "pages/s")
    f["bare_tesserocr_pages_per_s"] = _fig(_ratio(pages, api_s), "pages/s")
    f["text_pipeline_over_pdfium"] = _fig(_ratio(pdfium_rate, text_rate), "x time")
    f["text_pipeline_over_pdfplumber"] = _fig(_ratio(plumber_rate, text_rate), "x time")
    f["scanned_pipeline_over_tesseract"] = _fig(_ratio(pipe_s, tess_s), "x time", "<= 0.8",
                                                note="same pages, measured interleaved in one process")
    f["scanned_pipeline_over_tesserocr"] = _fig(_ratio(pipe_s, api_s), "x time", "<= 1.1",
                                                note="the floor: a bare loop over tesseract's API")
    cer_pipe, cer_tess = _cer(scans.get("pairs_pipe", [])), _cer(scans.get("pairs_tess", []))
    f["ocr_cer_pipeline"] = _fig(cer_pipe, "ratio")
    f["ocr_cer_bare_tesseract"] = _fig(cer_tess, "ratio")
    f["ocr_cer_bare_tesserocr"] = _fig(_cer(scans.get("pairs_api", [])), "ratio")
    f["ocr_cer_pipeline_over_bare_tesseract"] = _fig(_ratio(cer_pipe, cer_tess), "x", "<= 1.0")
    split = scans.get("split", {})
    for stage in ("image", "orientation", "deskew", "recognition", "nlp", "other"):
        f[f"scanned_seconds_per_page_{stage}"] = _fig(_ratio(split.get(stage), pages), "s/page")
    t1, tn = _wall_throughput(one), _wall_throughput(many)
    f["throughput_1_worker"] = _fig(t1, "pages/s")
    f[f"throughput_{workers}_workers"] = _fig(tn, "pages/s")
    f["speedup_n_over_1"] = _fig(_ratio(tn, t1), "x", ">= 1.7" if workers >= 2 else None)
    f["full_run_seconds"] = _fig(many.seconds, "s")
    f["rerun_unchanged_over_full"] = _fig(_ratio(unchanged.seconds, many.seconds), "ratio", "<= 0.02")
    f["rerun_1pct_changed_over_full"] = _fig(_ratio(changed.seconds, many.seconds), "ratio", "<= 0.05",
                                             note=f"{touched} dossier(s) changed; includes worker start-up")
    f["rerun_1pct_changed_over_full_without_startup"] = _fig(
        _ratio(changed.seconds - changed.stage_seconds.get("worker_start_max", 0.0), many.seconds), "ratio")
    f["startup_seconds"] = _fig(startup, "s", "<= 10")
    f["peak_worker_rss_mib"] = _fig(peak_kb / 1024, "MiB", "<= 1536")
    return rep
