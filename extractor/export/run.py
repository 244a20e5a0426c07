"""`synthese export`: every synthese.json under ROOT -> a checked FHIR IPS document Bundle.

Per dossier: read `synthese.json`, build the Bundle (`fhir.build_bundle`), parse it with the fhir.resources
R4B models, check it against the IPS 2.0.0 profiles (`profile.Profiles`), and only then write it atomically
(`extractor.write.atomic_write_bytes`) as `synthese.fhir.json` beside `synthese.json`, or under `--out DIR`
at the dossier's path relative to ROOT. A bundle that fails is not written: the dossier gets a warning
(`fhir_check_failed`, `unreadable_synthesis`) and the export's exit code is 1.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from extractor.config import OUTPUT_NAME
from extractor.errors import BadArguments, ExitCode
from extractor.export import terminology as T
from extractor.export.fhir import build_bundle, parse_bundle
from extractor.export.profile import CheckResult, Profiles
from extractor.write import DamagedOutput, atomic_write_bytes, read_synthesis

FHIR_NAME = "synthese.fhir.json"


@dataclass
class DossierExport:
    """What happened to one dossier."""

    dossier: str  # path relative to ROOT ("." for ROOT itself)
    dossier_id: str | None = None
    written: Path | None = None
    check: CheckResult | None = None
    warning: str | None = None  # a stable code: fhir_check_failed, not_fhir, unreadable_synthesis
    message: str = ""
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class ExportReport:
    dossiers: list[DossierExport] = field(default_factory=list)

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.DOCUMENTS_FAILED if any(d.warning for d in self.dossiers) else ExitCode.OK


def find_dossiers(root: Path) -> list[Path]:
    """Folders under ROOT (ROOT included) that hold a synthese.json; the pipeline's own folders are skipped."""
    if not root.is_dir():
        raise BadArguments(f"{root} is not a folder")
    found = [p.parent for p in root.rglob(OUTPUT_NAME)
             if not any(part.startswith(".") for part in p.relative_to(root).parts[:-1])]
    return sorted(found)


def export_tree(root: Path, preset_name: str = "ips", out: Path | None = None, only_validated: bool = False,
                check_only: bool = False, profiles: Profiles | None = None) -> ExportReport:
    """Export every dossier under `root`; with `check_only`, build and check but write nothing.

    Raises BadArguments (unknown preset, ROOT not a folder) and CouldNotRun (IPS package missing)."""
    try:
        preset = T.preset(preset_name)
    except ValueError as e:
        raise BadArguments(str(e)) from e
    profiles = profiles or Profiles()
    report = ExportReport()
    for dossier in find_dossiers(root):
        rel = dossier.relative_to(root)
        item = DossierExport(dossier=str(rel))
        report.dossiers.append(item)
        try:
            synthesis = read_synthesis(dossier)
        except DamagedOutput as e:
            item.warning, item.message = "unreadable_synthesis", str(e)
            continue
        if synthesis is None:  # removed between the walk and the read
            continue
        item.dossier_id = synthesis.dossier_id
        bundle = build_bundle(synthesis, preset, only_validated)
        try:
            # The models validate the bundle; what they would serialise is the same JSON (a test holds
            # that on every exported bundle), so the builder's dict is what gets checked and written.
            parse_bundle(bundle)
        except ValueError as e:  # pydantic's ValidationError: not FHIR R4B
            item.warning, item.message = "not_fhir", str(e).splitlines()[0]
            continue
        data = bundle
        item.check = profiles.check_bundle(data)
        item.counts = _counts(data)
        if not item.check.ok:
            item.warning = "fhir_check_failed"
            item.message = f"{len(item.check.errors)} IPS rule(s) broken, bundle not written"
            continue
        if check_only:
            continue
        target = (out / rel if out else dossier) / FHIR_NAME
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(target, json.dumps(data, ensure_ascii=False, indent=2).encode())
        item.written = target
    return report


def _counts(bundle: dict) -> dict[str, int]:
    out: dict[str, int] = {}
    for e in bundle.get("entry") or []:
        t = e["resource"]["resourceType"]
        out[t] = out.get(t, 0) + 1
    return out
