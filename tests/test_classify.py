"""Document type from title cues, document date from the first page."""
from __future__ import annotations

import pytest

from extractor.documents.classify import classify_document
from models.document import DocumentRecord, Page


def doc(text: str) -> DocumentRecord:
    return DocumentRecord(path="d.pdf", sha256="0", size=1, pages=[Page(number=1, text=text, source="text_layer")])


@pytest.mark.parametrize("text,doc_type,date", [
    ("CHU de Nantes\nCOMPTE RENDU OPERATOIRE\nLe 12/03/2024\nIntervention : PTH", "operatoire", "2024-03-12"),
    ("Dr Martin\nORDONNANCE\nParis, le 3 janv. 2023\nKardégic 75 mg", "ordonnance", "2023-01-03"),
    ("Mme X, née le 01/03/1950\nCher confrère,\nje vous adresse...\nFait le 12 mars 2024", "courrier", "2024-03-12"),
    ("Laboratoire de biologie médicale\nPrélevé le 2024-03-12\nHémoglobine 13 g/dl", "biologie", "2024-03-12"),
    ("COMPTE RENDU DE CONSULTATION\n05/06/2021", "consultation", "2021-06-05"),
    ("Compte rendu d'hospitalisation du 02/02/2022 au 10/02/2022", "compte_rendu", "2022-02-02"),
    ("CERTIFICAT MÉDICAL\nJe soussigné...", "administratif", None),
    ("Notes diverses", "autre", None),
])
def test_classify(text, doc_type, date):
    assert classify_document(doc(text)) == (doc_type, date)


def test_birth_date_ignored():
    assert classify_document(doc("Patient né le 12/12/1945\nConsultation\nLe 01/02/2020"))[1] == "2020-02-01"
