"""The export wing: a dossier's synthese.json as an HL7 FHIR IPS document (international and French presets).

- `terminology.py`: the presets; every URI of the export lives there.
- `fhir.py`: the builder, Synthesis -> document Bundle (FHIR JSON), and the fhir.resources R4B parse.
- `profile.py`: the offline check against the IPS 2.0.0 StructureDefinition snapshots (fhirpathpy).
- `run.py`: `synthese export` over a tree of dossiers.

Nothing here is imported by `synthese run`: fhir.resources and fhirpathpy load only for an export.
"""
