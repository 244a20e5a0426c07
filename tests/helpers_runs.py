"""Helpers shared by the tests that compare whole runs (crash, distributed)."""
from __future__ import annotations

import json
from pathlib import Path

import duckdb

from samples.generate import make_corpus


def outputs(root: Path) -> dict:
    """Every dossier's synthese.json under `root`, without its timestamp."""
    out = {}
    for f in sorted(root.glob("*/synthese.json")):
        data = json.loads(f.read_text())
        data.pop("generated_at")
        out[f.parent.name] = data
    return out


def ledger_facts(root: Path) -> list:
    """The latest ledger row of every dossier, without the run id."""
    con = duckdb.connect(str(root / ".synthese" / "ledger.duckdb"), read_only=True)
    try:
        return con.execute("SELECT * EXCLUDE (run_id) FROM dossier_latest ORDER BY dossier_id").fetchall()
    finally:
        con.close()


def text_corpus(root: Path, dossiers: int, seed: int) -> Path:
    """A generated corpus of text PDFs only: tests of the machinery stay fast; OCR is tested elsewhere."""
    make_corpus(root, dossiers, seed, scan_ratio=0.0)
    for scan in root.rglob("scan_*"):
        scan.unlink()
    return root
