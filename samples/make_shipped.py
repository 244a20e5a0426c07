"""Regenerate the shipped sample dossiers in `samples/dossiers/` (fixed seed, fixed profiles).

    python -m samples.make_shipped            # rewrite samples/dossiers/
    python -m samples.make_shipped OUT        # write elsewhere (the tests compare the two)

Each dossier forces the phenomena listed in SHIPPED so the set stays small but covers them all.
Scans are 200 dpi grayscale to keep the set under a few MB.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

from models.gold import GoldDossier
from samples.generate import Profile, make_dossier

SEED = 20240312
DPI = 200
SHIPPED_DIR = Path(__file__).parent / "dossiers"

# dossier id -> (split, profile, what it is for)
SHIPPED: dict[str, tuple[str, Profile, str]] = {
    "P0001": ("dev", Profile(n_clinical=4, first_type="compte_rendu", event="stop", contradiction=True),
              "text PDFs only; allergy then 'pas d'allergie connue'; a treatment stopped by a later letter"),
    "P0002": ("dev", Profile(n_clinical=3, first_type="compte_rendu", event="dose", renders={0: "mixed_pdf"}),
              "mixed PDF (text + scanned pages); dose change across documents"),
    "P0003": ("dev", Profile(n_clinical=3, first_type="compte_rendu", renders={0: "tiff", 1: "jpeg"}, rotations={1: 90}, allergy="none_known"),
              "multi-page TIFF; JPEG photo turned sideways; 'no known allergy'"),
    "P0004": ("heldout", Profile(n_clinical=3, renders={1: "scanned_pdf"}, rotations={1: 180}, duplicate=True, undated=True),
              "held-out vocabulary; upside-down scanned PDF; exact duplicate; undated letter"),
    "P0005": ("dev", Profile(empty=True), "empty dossier (no document): every block unknown"),
    "P0006": ("dev", Profile(admin_only=True), "administrative papers only: every block unknown"),
    "P0007": ("heldout", Profile(n_clinical=3, first_type="courrier", rescan=True, unreadable=True, event="replace"),
              "held-out; a re-scan of a text PDF; an unreadable scan; a treatment replaced by another"),
    "P0008": ("dev", Profile(n_clinical=2, history="none_known", allergy="none_known", treatment="none_known"),
              "explicit absences only: ATCD néant, pas d'allergie, pas de traitement"),
    "P0009": ("heldout", Profile(n_clinical=4, first_type="consultation", renders={0: "png", 2: "scanned_pdf"}, rotations={2: 270}, event="stop"),
              "held-out; fax-like PNG; scanned PDF turned sideways; a stopped treatment"),
    "P0010": ("dev", Profile(n_clinical=3, allergy="unknown", duplicate=True, renders={1: "jpeg"}),
              "allergies never mentioned (unknown); a duplicated document"),
}


def build(out: Path) -> list[GoldDossier]:
    """Write the shipped dossiers and their gold files into `out`; return the gold records."""
    out.mkdir(parents=True, exist_ok=True)
    golds = [make_dossier(out, did, SEED, split, scan_ratio=0.0, profile=profile, dpi=DPI)
             for did, (split, profile, _) in SHIPPED.items()]
    for g in golds:
        folder = out / g.dossier_id
        if not any(folder.iterdir()):
            # git keeps no empty folder: without this the empty dossier would vanish from a clone.
            # The pipeline skips hidden files, so the dossier stays empty to it.
            (folder / ".gitkeep").touch()
    return golds


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else SHIPPED_DIR
    if out == SHIPPED_DIR and out.exists():
        shutil.rmtree(out)
    golds = build(out)
    for g in golds:
        print(g.dossier_id, g.split, len(g.documents), ",".join(g.phenomena))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
