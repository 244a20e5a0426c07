"""The sample generator: deterministic, gold valid and consistent with what was rendered, split respected,
shipped samples up to date. Real files, no mocks."""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pypdfium2 as pdfium
import pytest
from PIL import Image

from models.gold import GoldDossier
from samples import make_shipped
from samples.generate import make_corpus
from samples.vocab import items, phrasing

N, SEED = 8, 7


def tree_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def squash(s: str) -> str:
    return re.sub(r"\s+", " ", s).strip()


def squash_layer(s: str) -> str:
    # pdfium reports a hyphen ending a line as a soft hyphen (\xad or \x02): compare without hyphens
    return squash(re.sub("[-\xad\x02]", "", s))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, list[GoldDossier]]:
    out = tmp_path_factory.mktemp("corpus")
    return out, make_corpus(out, N, SEED, "all", scan_ratio=0.4)


def test_same_seed_same_bytes_other_seed_differs(corpus, tmp_path):
    out, _ = corpus
    again = tmp_path / "again"
    make_corpus(again, N, SEED, "all", scan_ratio=0.4)
    assert tree_hashes(again) == tree_hashes(out)
    other = tmp_path / "other"
    make_corpus(other, N, SEED + 1, "all", scan_ratio=0.4)
    assert tree_hashes(other) != tree_hashes(out)


def test_gold_files_validate_and_sit_beside_the_dossier(corpus):
    out, golds = corpus
    for g in golds:
        path = out / f"{g.dossier_id}.gold.json"
        assert GoldDossier.model_validate_json(path.read_text(encoding="utf-8")) == g
        folder = out / g.dossier_id
        assert folder.is_dir()
        assert not list(folder.rglob("*.json"))
        assert sorted(p.name for p in folder.iterdir()) == sorted(d.path for d in g.documents)
    assert {g.split for g in golds} == {"dev", "heldout"}  # "all" mixes both


def test_statuses_follow_entries(corpus):
    _, golds = corpus
    for g in golds:
        for entries, status in ((g.history, g.history_status), (g.allergies, g.allergy_status), (g.treatments, g.treatment_status)):
            assert (status == "known") == bool(entries)
        if "empty" in g.phenomena or "administrative_only" in g.phenomena:
            assert (g.history_status, g.allergy_status, g.treatment_status) == ("unknown",) * 3
        paths = {d.path for d in g.documents}
        for e in [*g.history, *g.allergies, *g.treatments]:
            assert e.documents and set(e.documents) <= paths


def pdf_texts(path: Path) -> list[str]:
    doc = pdfium.PdfDocument(path)
    try:
        return [doc[i].get_textpage().get_text_range() for i in range(len(doc))]
    finally:
        doc.close()


def check_text_layers(root: Path, golds: list[GoldDossier]) -> int:
    """Every line of the gold text of a text page is in its text layer; scanned pages have none."""
    checked = 0
    for g in golds:
        for d in g.documents:
            if not d.path.endswith(".pdf"):
                continue
            texts = pdf_texts(root / g.dossier_id / d.path)
            assert len(texts) == len(d.pages)
            for page, text in zip(d.pages, texts):
                if page.scanned:
                    assert text.strip() == ""
                    continue
                layer = squash_layer(text)
                for line in page.text.splitlines():
                    assert squash_layer(line) in layer, (d.path, line)
                checked += 1
    return checked


def test_gold_text_is_the_text_layer(corpus):
    out, golds = corpus
    assert check_text_layers(out, golds) > 5


def test_entries_are_written_in_their_documents():
    """An entry's surface form is on a page of each text document listed for it."""
    root = make_shipped.SHIPPED_DIR
    golds = [GoldDossier.model_validate_json(p.read_text(encoding="utf-8")) for p in sorted(root.glob("*.gold.json"))]
    drugs = {d["drug"]: d for split in ("dev", "heldout") for key in ("items", "prose_courses")
             for d in items("drugs", split, key)}
    seen = 0
    for g in golds:
        text = {d.path: squash(" ".join(p.text for p in d.pages)).lower() for d in g.documents}
        for t in g.treatments:
            names = {t.drug, (drugs[t.drug]["brand"] or t.drug).lower()}
            for path in t.documents:
                assert any(n.lower() in text[path] or n.upper().lower() in text[path] for n in names), (t.drug, path)
                seen += 1
        for h in g.history:
            forms = [h.label, *h.abbreviations]
            from samples.generate import strip_accents
            for path in h.documents:
                assert any(f.lower() in text[path] or strip_accents(f).lower() in text[path] for f in forms), (h.label, path)
                seen += 1
    assert seen > 20


def test_scans_and_rotation_recorded():
    root = make_shipped.SHIPPED_DIR
    golds = {p.name.split(".")[0]: GoldDossier.model_validate_json(p.read_text(encoding="utf-8")) for p in root.glob("*.gold.json")}
    sideways = 0
    for g in golds.values():
        for d in g.documents:
            if d.kind != "image" or not d.readable:
                continue
            with Image.open(root / g.dossier_id / d.path) as im:
                for i, page in enumerate(d.pages):
                    im.seek(i)
                    w, h = im.size
                    assert page.scanned
                    assert (w > h) == (page.rotation in (90, 270)), (d.path, page.rotation, im.size)
                    sideways += page.rotation in (90, 270)
    assert sideways >= 1
    kinds = {d.kind for g in golds.values() for d in g.documents}
    assert {"text_pdf", "scanned_pdf", "mixed_pdf", "image"} <= kinds
    exts = {d.path.rsplit(".", 1)[1] for g in golds.values() for d in g.documents}
    assert {"pdf", "jpg", "png", "tif"} <= exts
    assert check_text_layers(root, list(golds.values())) > 5


def vocab_labels(split: str) -> dict[str, set[str]]:
    return {
        "history": {c["label"] for c in items("conditions", split)}
        | {p["label"] for kind in ("history_findings", "history_eliminated") for p in phrasing(kind, split)},
        "allergy": {a["substance"] for a in items("allergens", split)},
        "treatment": {d["drug"] for d in items("drugs", split)} | {p["drug"] for p in items("drugs", split, "past_only")}
        | {c["drug"] for c in items("drugs", split, "prose_courses")}
        | {lab["label"] for lab in phrasing("labs", split)},
    }


def test_heldout_dossiers_use_only_heldout_vocabulary(tmp_path):
    golds = make_corpus(tmp_path, 4, 3, "heldout", scan_ratio=0.0)
    voc = vocab_labels("heldout")
    dev_only = {k: v - voc[k] for k, v in vocab_labels("dev").items()}
    assert all(g.split == "heldout" for g in golds)
    n = 0
    for g in golds:
        for h in g.history:
            assert h.label in voc["history"]
        for a in g.allergies:
            assert a.substance in voc["allergy"]
        for t in g.treatments:
            assert t.drug in voc["treatment"]
        for x in g.distractors:
            assert x.label in voc[x.block], x
        n += len(g.history) + len(g.treatments)
        # no dev-only drug or condition is written anywhere in the documents
        text = " ".join(p.text for d in g.documents for p in d.pages).lower()
        for c in items("conditions", "dev"):
            assert c["label"].lower() not in text or c["label"] in voc["history"]
        for d in items("drugs", "dev"):
            assert d["brand"].lower() not in text, d["brand"]
    assert n > 0
    assert dev_only["history"] and dev_only["treatment"]


def test_shipped_samples_match_their_generator(tmp_path):
    golds = make_shipped.build(tmp_path)
    root = make_shipped.SHIPPED_DIR
    for g in golds:
        shipped = json.loads((root / f"{g.dossier_id}.gold.json").read_text(encoding="utf-8"))
        assert shipped == json.loads(g.model_dump_json()), g.dossier_id
    assert tree_hashes(tmp_path) == {k: v for k, v in tree_hashes(root).items()}
    total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert total < 5_000_000
    phenomena = {x for g in golds for x in g.phenomena}
    assert {"empty", "administrative_only", "duplicate", "rescan", "contradiction", "unreadable", "undated", "scanned"} <= phenomena


def test_a_none_known_history_section_always_carries_its_statement():
    """A gold `none_known` must rest on a written absence: the history section of such a dossier is
    never a bare heading ("ANTECEDENTS" with nothing under it says nothing)."""
    from samples.generate import Doc, Dossier, Profile

    for seed in range(60):
        dz = Dossier("P0001", seed, "dev" if seed % 2 else "heldout", 0.0, Profile(history="none_known"))
        doc = Doc(doc_type="compte_rendu", slug="x", date=None)
        items = dz.history_section(doc, full=True)
        assert ("none", "history") in doc.stated
        assert any(kind == "line" for kind, *_ in items), (seed, items)
