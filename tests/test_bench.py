"""`synthese bench` on a tiny corpus: every figure is there with its unit and target (values are not judged here)."""
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

FIGURES = {
    "text_pages_per_s_per_core", "scanned_pages_per_s_per_core", "bare_pdfium_pages_per_s",
    "bare_pdfplumber_pages_per_s", "bare_tesseract_pages_per_s", "text_pipeline_over_pdfium",
    "text_pipeline_over_pdfplumber", "scanned_pipeline_over_tesseract", "ocr_cer_pipeline",
    "ocr_cer_bare_tesseract", "throughput_1_worker", "throughput_2_workers", "speedup_n_over_1",
    "full_run_seconds", "rerun_unchanged_over_full", "rerun_1pct_changed_over_full",
    "rerun_1pct_changed_over_full_without_startup", "startup_seconds", "peak_worker_rss_mib",
    "bare_tesserocr_pages_per_s", "scanned_pipeline_over_tesserocr", "ocr_cer_bare_tesserocr",
    "ocr_cer_pipeline_over_bare_tesseract",
    *(f"scanned_seconds_per_page_{s}" for s in ("image", "orientation", "deskew", "recognition", "nlp", "other")),
}
TARGETS = {"text_pages_per_s_per_core", "scanned_pipeline_over_tesseract", "scanned_pipeline_over_tesserocr",
           "ocr_cer_pipeline_over_bare_tesseract", "speedup_n_over_1",
           "rerun_unchanged_over_full", "rerun_1pct_changed_over_full", "startup_seconds", "peak_worker_rss_mib"}


def test_bench_reports_every_figure_as_json(tmp_path):
    from samples.generate import make_corpus

    corpus = tmp_path / "corpus"
    make_corpus(corpus, 3, 1, scan_ratio=0.3)
    kept = 0
    for gold in sorted(corpus.glob("*.gold.json")):  # one legible scanned page is enough here
        for doc in json.loads(gold.read_text())["documents"]:
            if doc["kind"] != "text_pdf":
                if kept or not doc.get("readable", True) or len(doc["pages"]) != 1:
                    (corpus / gold.name.removesuffix(".gold.json") / doc["path"]).unlink()
                else:
                    kept += 1
    assert kept == 1, "the corpus should hold a scanned page"
    proc = subprocess.run([sys.executable, "cli.py", "bench", "--corpus", str(corpus), "--workers", "2", "--json"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert set(report["figures"]) == FIGURES
    for name, fig in report["figures"].items():
        assert fig["value"] is not None, name
        assert fig["unit"], name
        assert (fig["target"] is not None) == (name in TARGETS), name
        assert (fig["passed"] is None) == (name not in TARGETS), name
    assert report["corpus"]["scanned_pages"] >= 1 and report["corpus"]["text_pdf_pages"] >= 1
    assert not list(corpus.rglob("synthese.json"))  # the corpus itself is left as it was
