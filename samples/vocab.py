"""The generator's vocabulary, read from the data files in `samples/vocab/`.

Each item carries a `split` tag (dev / heldout): a dossier of one split draws only items of that split,
so an extractor tuned on dev dossiers can be measured on terms and phrasings it has never seen.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

VOCAB_DIR = Path(__file__).parent / "vocab"


@lru_cache(maxsize=None)
def load(name: str) -> dict:
    """The parsed JSON of `samples/vocab/<name>.json`."""
    return json.loads((VOCAB_DIR / f"{name}.json").read_text(encoding="utf-8"))


def items(name: str, split: str, key: str = "items") -> list[dict]:
    """Items of a vocabulary file (or of a key of phrasings/sections) restricted to one split."""
    data = load(name)
    seq = data[key] if key in data else data["items"]
    if isinstance(seq, dict):
        seq = seq["items"]
    return [it for it in seq if it["split"] == split]


def phrasing(kind: str, split: str) -> list[dict]:
    return items("phrasings", split, kind)


def section_titles(kind: str, split: str) -> list[str]:
    return [it["text"] for it in items("sections", split, kind)]
