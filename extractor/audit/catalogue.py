"""The check catalogue (`rules/checks.toml`): what each quality check means, how it is computed, its threshold.

In: the TOML file. Out: a list of `Check` records, validated (unique ids, known categories, severities
and flags, thresholds in [0, 1]). The SQL conditions are not run here: the ledger turns them into the
views `checks` and `check_results`, and reports a check whose SQL does not compile as an `error`.
"""
from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path

from extractor.errors import BadArguments
from rules import RULES_DIR

CATALOGUE = RULES_DIR / "checks.toml"
CATEGORIES = ("completeness", "conformance", "plausibility", "uniqueness")
# The weight of a failing check in the per-dossier quality score.
SEVERITY_WEIGHTS = {"high": 3, "medium": 2, "low": 1}
FLAGS = ("", "empty", "disorganised")


@dataclass(frozen=True)
class Check:
    """One row of the catalogue."""

    id: str
    category: str
    severity: str
    threshold: float
    flag: str
    label_fr: str
    label_en: str
    definition_fr: str
    definition_en: str
    applies: str
    fails: str
    reason: str
    notes: str = ""

    @property
    def weight(self) -> int:
        return SEVERITY_WEIGHTS[self.severity]

    def as_dict(self) -> dict:
        return asdict(self) | {"weight": self.weight, "threshold": float(self.threshold)}


def load_checks(path: Path = CATALOGUE) -> list[Check]:
    """The checks of the catalogue at `path`, in file order. Raises BadArguments on a malformed catalogue."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise BadArguments(f"the check catalogue {path} cannot be read: {e}") from e
    checks, seen = [], set()
    for n, row in enumerate(data.get("check", []), 1):
        try:
            check = Check(**row)
        except TypeError as e:
            raise BadArguments(f"{path}: check #{n}: {e}") from e
        problems = []
        if not check.id.isidentifier() or check.id in seen:
            problems.append(f"id {check.id!r} is not a unique identifier")
        if check.category not in CATEGORIES:
            problems.append(f"category {check.category!r} not in {CATEGORIES}")
        if check.severity not in SEVERITY_WEIGHTS:
            problems.append(f"severity {check.severity!r} not in {tuple(SEVERITY_WEIGHTS)}")
        if check.flag not in FLAGS:
            problems.append(f"flag {check.flag!r} not in {FLAGS}")
        if not isinstance(check.threshold, (int, float)) or not 0 <= check.threshold <= 1:
            problems.append(f"threshold {check.threshold!r} not in [0, 1]")
        if problems:
            raise BadArguments(f"{path}: check #{n}: " + "; ".join(problems))
        seen.add(check.id)
        checks.append(check)
    if not checks:
        raise BadArguments(f"{path}: no [[check]] in the catalogue")
    return checks
