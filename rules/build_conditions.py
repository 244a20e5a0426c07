"""Build `rules/cim10_terms.tsv`: a fallback lexicon of short, usage-like CIM-10 labels.

Source (build time only): EDS-NLP's `resources/cim10.csv.gz` (CIM-10 FR labels, code,type,ssr,psy,short,long),
as shipped with edsnlp 0.23 (snapshot used in 2026). The curated `conditions.tsv` always wins; this file only
adds labels a clinician could write as such ("Glaucome", "Maladie de Dupuytren", "Brucellose").

Kept: chapters A-N and Q (diseases), labels of at most 4 words, with no comma, parenthesis, "sans précision",
"autres", "au cours de", " - " (site qualifiers), nor a trailing "SAI". Symptoms (R), injuries and external
causes (S-Y), factors (Z) and pregnancy (O-P) are left out: raw labels there are not how letters speak.

A trailing qualifier in brackets or parentheses is dropped first when what remains is a disease name of its
own ("Zona [herpes zoster]" -> "zona", "Neurofibromatose (non maligne)" -> "neurofibromatose"); "syndrome de X"
named after a person also gets its "maladie de X" twin (letters use both: "maladie de Behçet").

Rebuild: .venv/bin/python -m rules.build_conditions
"""
from __future__ import annotations

import csv
import gzip
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from extractor.clinical.lexicon import key_of  # noqa: E402

BAD = re.compile(r",|\(|\)|\bsans précision\b|^autres?\b|\bau cours de\b| - |\bSAI\b|\bnon classée?s?\b|\bprécisée?s?\b|"
                 r"\bNCA\b|\bsuite\b|\bséquelles?\b|\bexamen\b|\bdépistage\b|\bcertaines?\b|\bpersonnels?\b|\bde l'un\b",
                 re.IGNORECASE)
TRAILING_QUALIFIER = re.compile(r"\s*(?:\[[^\]]*\]|\((?:non maligne|sans complication|sans précision)\))\s*$", re.IGNORECASE)
EPONYM = re.compile(r"^syndrome (de|d')\s*([A-Z]\w+)$")
# Single words that are also everyday words or posology units ("2 gouttes").
AMBIGUOUS = {"goutte", "rage", "tétanos", "peste", "gale", "calcul", "ptose", "cor", "nanisme", "pian", "frambœsia"}


def main() -> None:
    import edsnlp
    src = Path(edsnlp.__file__).parent / "resources" / "cim10.csv.gz"
    rows, seen = [], set()
    with gzip.open(src, "rt", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            code, label = r["code"], TRAILING_QUALIFIER.sub("", r["long"].strip())
            if not code or code[0] not in "ABCDEFGHIJKLMNQ" or len(code) > 4:
                continue
            if BAD.search(label) or len(label.split()) > 4 or len(label) < 5:
                continue
            lab = label[0].lower() + label[1:] if not label[:2].isupper() else label
            c = code[:3] + ("." + code[3:] if len(code) > 3 else "")
            eponym = EPONYM.match(lab)
            for variant in [lab] + ([f"maladie {eponym.group(1)}{' ' if eponym.group(1) == 'de' else ''}{eponym.group(2)}"] if eponym else []):
                k = key_of(variant)
                if k in seen or k in AMBIGUOUS:
                    continue
                seen.add(k)
                rows.append((variant, c))
    out = HERE / "cim10_terms.tsv"
    with out.open("w", encoding="utf-8") as fh:
        fh.write("# Derived by rules/build_conditions.py from EDS-NLP resources/cim10.csv.gz (CIM-10 FR), snapshot 2026.\n")
        fh.write("# Fallback labels only: rules/conditions.tsv (curated) wins. Rebuild: python -m rules.build_conditions\n")
        fh.write("label\tcode\tkind\n")
        for lab, c in rows:
            fh.write(f"{lab}\t{c}\tmedical\n")
    print(f"{len(rows)} labels -> {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
