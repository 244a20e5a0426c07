"""A small corpus whose quality flags are known in advance, for the audit tests, and its second state.

Run 1 (`make_corpus_v1`), one dossier per situation:
  A_empty       an empty folder                          no_document, no_medical_content (empty)
  B_admin       one certificate (attestation)            administrative_only, no_medical_content (empty)
  C_dup         a report and its exact copy              duplicate_document (disorganised)
  D_failed      a report and a truncated PDF             failed_document (disorganised)
  E_undated     one report without any date              undated_document, mostly_undated (disorganised)
  F_conflict    an allergy here, "pas d'allergie" there  contradiction
  G_dates       dated 2099; dated 1955, patient born 1960 future_date, date_before_birth
  H_clean       one dated report                         none of the document checks
Run 2 (`change_corpus_v2`): D_failed loses its broken PDF (resolved), H_clean gains one (new), E_undated
gains a dated report (mostly_undated resolved, undated_document persists), I_new appears empty (new).
"""
from __future__ import annotations

import shutil
from pathlib import Path

from helpers_docs import PARAGRAPH, text_pdf
from hostile_docs import truncated_pdf

ADMIN = ["Attestation de présence", "Fait le 12/03/2024", "Je soussigné certifie que la personne s'est présentée ce jour.",
         "Cachet du service des admissions."]
UNDATED = ["Compte rendu de consultation", "Antécédents : asthme dans l'enfance.",
           "Traitement actuel : salbutamol 100 µg à la demande."]
NO_ALLERGY = ["Compte rendu de consultation du 5 avril 2024", "Pas d'allergie connue.",
              "Traitement actuel : metformine 1000 mg matin et soir."]
FUTURE = ["Compte rendu de consultation du 12 mars 2099", "Patient né le 03/04/1960.",
          "Antécédents : hypertension artérielle.", "Pas d'allergie connue."]
BEFORE_BIRTH = ["Compte rendu de consultation du 12 mars 1955", "Patient né le 03/04/1960.",
                "Traitement actuel : ramipril 5 mg le matin."]
DATED_EXTRA = ["Compte rendu de consultation du 2 février 2024", "Antécédents : asthme dans l'enfance.",
               "Pas d'allergie connue."]


def make_corpus_v1(root: Path) -> Path:
    """Write run 1's dossiers under `root`."""
    for name in ("A_empty", "B_admin", "C_dup", "D_failed", "E_undated", "F_conflict", "G_dates", "H_clean"):
        (root / name).mkdir(parents=True)
    text_pdf(root / "B_admin" / "attestation.pdf", [ADMIN])
    text_pdf(root / "C_dup" / "cr.pdf", [PARAGRAPH])
    shutil.copyfile(root / "C_dup" / "cr.pdf", root / "C_dup" / "cr_copie.pdf")
    text_pdf(root / "D_failed" / "cr.pdf", [PARAGRAPH + ["Dossier D."]])
    truncated_pdf(root / "D_failed" / "broken.pdf")
    text_pdf(root / "E_undated" / "note.pdf", [UNDATED])
    text_pdf(root / "F_conflict" / "cr.pdf", [PARAGRAPH])
    text_pdf(root / "F_conflict" / "cr_avril.pdf", [NO_ALLERGY])
    text_pdf(root / "G_dates" / "cr_futur.pdf", [FUTURE])
    text_pdf(root / "G_dates" / "cr_ancien.pdf", [BEFORE_BIRTH])
    text_pdf(root / "H_clean" / "cr.pdf", [PARAGRAPH + ["Dossier H."]])
    return root


def change_corpus_v2(root: Path) -> Path:
    """Turn run 1's corpus into run 2's."""
    (root / "D_failed" / "broken.pdf").unlink()
    truncated_pdf(root / "H_clean" / "broken.pdf")
    text_pdf(root / "E_undated" / "cr_fevrier.pdf", [DATED_EXTRA])
    (root / "I_new").mkdir()
    return root
