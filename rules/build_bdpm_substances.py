"""Build `rules/bdpm_substances.tsv` (substance name as treatments carry it -> BDPM substance code).

Source (read at build time only, never at run time): BDPM (ANSM open data, Licence Ouverte 2.0), snapshot
2026, `CIS_COMPO_bdpm.txt`: one row per substance of a product, with the ANSM substance code (3rd column).
Names go through `rules.build_drugs.clean_substance`, the very function that names `drugs.tsv`'s substances,
so a treatment's `drug` ("acide acétylsalicylique", "tramadol") finds its code by plain lookup.
When a cleaned name carries several codes (a salt and its base, "chlorhydrate de tramadol" and "tramadol"),
the therapeutic fraction (FT) wins over the active substance (SA), then the code used by most products.
Used only by the French preset of the FHIR export (extractor/export/terminology.py).

Rebuild: python -m rules.build_bdpm_substances [--bdpm /work/shared/data/bdpm]
"""
from __future__ import annotations

import argparse
import collections
from pathlib import Path

from rules.build_drugs import clean_substance

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bdpm", type=Path, default=Path("/work/shared/data/bdpm"))
    ap.add_argument("--out", type=Path, default=HERE / "bdpm_substances.tsv")
    args = ap.parse_args(argv)
    votes: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    with (args.bdpm / "CIS_COMPO_bdpm.txt").open(encoding="utf-8") as fh:
        for line in fh:
            f = line.rstrip("\n").split("\t")
            if len(f) < 8 or not f[2].strip():
                continue
            name = clean_substance(f[3])
            if not name or "homéopathique" in f[3].lower():
                continue
            # FT first: drugs.tsv names a product by its therapeutic fraction when the BDPM gives one.
            votes[name][(f[6].strip() == "FT", f[2].strip())] += 1
    with args.out.open("w", encoding="utf-8") as fh:
        fh.write("# Derived by rules/build_bdpm_substances.py from the BDPM snapshot 2026 (latest authorisations 2025)\n")
        fh.write("# (ANSM, Licence Ouverte 2.0), CIS_COMPO_bdpm.txt: substance name (cleaned as in drugs.tsv) -> ANSM\n")
        fh.write("# substance code. Used by the French preset of the FHIR export. Do not edit by hand.\n")
        fh.write("substance\tcode\n")
        for name in sorted(votes):
            (_, code), _ = max(votes[name].items(), key=lambda kv: (kv[0][0], kv[1], kv[0][1]))
            fh.write(f"{name}\t{code}\n")


if __name__ == "__main__":
    main()
