"""Domain knowledge as data: section titles, cue words, abbreviations, condition, drug and allergen lexicons.

Every file carries a header saying where it came from. Derived files (`drugs.tsv`) are rebuilt by the
script beside them (`python -m rules.build_drugs`) and committed: nothing here is fetched at run time and
the project never reads `../shared` at run time.
"""
from __future__ import annotations

from pathlib import Path

RULES_DIR = Path(__file__).resolve().parent
