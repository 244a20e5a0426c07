"""Words the review page shows a doctor (French, as clinicians write them). Keys stay English."""
from __future__ import annotations

BLOCKS = {  # attribute in synthese.json -> (block name in conflicts/statuses, title)
    "history": ("history", "Antécédents"),
    "allergies": ("allergy", "Allergies et intolérances"),
    "treatments": ("treatment", "Traitements en cours"),
}
STATUS_ATTR = {"history": "history_status", "allergy": "allergy_status", "treatment": "treatment_status"}
ATTR_OF_BLOCK = {block: attr for attr, (block, _) in BLOCKS.items()}

BLOCK_STATUS = {
    "history": {"known": "antécédents renseignés", "none_known": "aucun antécédent connu (déclaré)",
                "unknown": "pas d'information"},
    "allergy": {"known": "allergies renseignées", "none_known": "aucune allergie connue (déclarée)",
                "unknown": "pas d'information"},
    "treatment": {"known": "traitements renseignés", "none_known": "aucun traitement au long cours (déclaré)",
                  "unknown": "pas d'information"},
}

ENTRY_STATE = {
    "proposed": "proposé",
    "validated": "validé",
    "edited": "corrigé",
    "rejected": "rejeté",
    "added": "ajouté par le relecteur",
    "with_file": "validé avec le dossier",
    "new_since_validation": "nouveau depuis la validation",
}

KIND = {"medical": "médical", "surgical": "chirurgical", "family": "familial",
        "allergy": "allergie", "intolerance": "intolérance",
        "active": "en cours", "stopped": "arrêté"}

DOSSIER_STATE = {"todo": "à relire", "partly": "en partie relu", "validated": "validé", "empty": "vide"}

CONFLICT_KIND = {
    "allergy_vs_none_known": "allergie contre « pas d'allergie connue »",
    "history_vs_none_known": "antécédent contre « pas d'antécédent »",
    "treatment_vs_none_known": "traitement contre « pas de traitement »",
    "stopped_still_listed": "arrêté mais encore listé",
    "dose_changed": "dose changée",
    "validated_disagreement": "désaccord avec une décision du relecteur",
}

DOC_TYPE = {"compte_rendu": "compte rendu", "ordonnance": "ordonnance", "courrier": "courrier",
            "consultation": "consultation", "operatoire": "compte rendu opératoire", "biologie": "biologie",
            "administratif": "administratif", "autre": "autre"}

# Fields a reviewer may correct or fill when adding, per block, with their labels.
FIELDS = {
    "history": [("label", "Libellé"), ("code", "Code CIM-10"), ("kind", "Type"), ("date", "Date")],
    "allergies": [("substance", "Substance"), ("reaction", "Réaction"), ("kind", "Type"), ("code", "Code ATC")],
    "treatments": [("drug", "Molécule (DCI)"), ("brand", "Spécialité"), ("dose", "Dose"),
                   ("frequency", "Fréquence"), ("route", "Voie"), ("status", "Statut"), ("atc", "Code ATC")],
}
CHOICES = {
    ("history", "kind"): ["medical", "surgical", "family"],
    ("allergies", "kind"): ["allergy", "intolerance"],
    ("treatments", "status"): ["active", "stopped"],
}
LABEL_FIELD = {"history": "label", "allergies": "substance", "treatments": "drug"}
