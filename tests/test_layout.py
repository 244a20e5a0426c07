"""Boilerplate: repeated headers/footers are tagged as spans, the text is never changed."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from helpers_docs import PARAGRAPH, text_pdf  # noqa: E402

from extractor.config import Settings  # noqa: E402
from extractor.documents.layout import mark_boilerplate  # noqa: E402
from extractor.documents.reader import read_document  # noqa: E402
from models.document import Page  # noqa: E402

HEADER = "CHU de Villeneuve — Service de cardiologie — tél 01 23 45 67 89"


def tagged(page: Page) -> list[str]:
    return [page.text[a:b] for a, b in page.boilerplate]


def test_header_and_footer_of_a_three_page_document(tmp_path):
    bodies = [PARAGRAPH[:2], PARAGRAPH[2:4], PARAGRAPH[4:]]
    path = text_pdf(tmp_path / "cr.pdf", bodies, header=HEADER, footer="Page {n}/{total}")
    record = read_document(path, tmp_path, Settings())
    assert record.error is None and len(record.pages) == 3
    for n, (page, body) in enumerate(zip(record.pages, bodies), 1):
        # Offsets untouched: the text is the whole page, header and footer included.
        assert page.text.split("\n") == [HEADER, *body, f"Page {n}/3"]
        assert tagged(page) == [HEADER, f"Page {n}/3"]


def test_ocr_noise_and_changing_digits_still_match():
    texts = [
        "CHU de Villeneuve - tél 01 23 45 67 89\nPatient hospitalisé pour douleur thoracique.\nPage 1/3",
        "CHU de Vilieneuve - tel 01 23 45 67 89\nÉchographie cardiaque normale.\nPage 2/3",
        "CHU de Villeneuve - tél 01 23 45 67 89\nSortie le 14 mars.\nPage 3/3",
    ]
    pages = [Page(number=i, text=t, source="ocr") for i, t in enumerate(texts, 1)]
    mark_boilerplate(pages)
    assert [len(p.boilerplate) for p in pages] == [2, 2, 2]
    assert [p.text for p in pages] == texts
    assert tagged(pages[1]) == ["CHU de Vilieneuve - tel 01 23 45 67 89", "Page 2/3"]


def test_single_page_and_unrepeated_lines_are_left_alone():
    one = [Page(number=1, text=f"{HEADER}\nAntécédents : asthme.", source="text_layer")]
    mark_boilerplate(one)
    assert one[0].boilerplate == []
    two = [Page(number=1, text="Antécédents : asthme.\nTraitement : ventoline."),
           Page(number=2, text="Allergies : aucune.\nConclusion : RAS.")]
    mark_boilerplate(two)
    assert all(p.boilerplate == [] for p in two)
