"""What the review page reads: the dossiers under ROOT, one dossier's synthese.json with its version,
and the view of it the queue and the dossier page show (states, order, words a doctor reads)."""
from __future__ import annotations

import csv
import hashlib
import html
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from extractor.config import OUTPUT_NAME
from extractor.documents.ingest import discover_dossiers
from extractor.review import labels as L
from models.synthesis import Synthesis

RULES_DIR = Path(__file__).resolve().parent.parent.parent / "rules"
# An entry still proposed below this confidence, or read from a scan, needs a closer look: it sorts
# the dossier before the others in the queue and is flagged on the dossier page.
LOW_CONFIDENCE = 0.8


@dataclass
class Loaded:
    """One dossier's synthese.json as read: its bytes, their sha256 (the version a decision applies to)."""

    key: str
    folder: Path
    raw: bytes
    etag: str
    synthesis: Synthesis


def etag_of(raw: bytes) -> str:
    """The version of a synthese.json: the sha256 of its bytes."""
    return hashlib.sha256(raw).hexdigest()


def find_dossiers(root: Path) -> dict[str, Path]:
    """Reviewable dossiers under `root` (folders holding a synthese.json), keyed by folder name."""
    found = {}
    for folder in discover_dossiers(root):
        if (folder / OUTPUT_NAME).is_file():
            found[folder.name] = folder
    return found


def load(key: str, folder: Path) -> Loaded:
    """Read a dossier's synthese.json. Raises DamagedOutput (write.read_synthesis's) when invalid."""
    from pydantic import ValidationError

    from extractor.write import DamagedOutput

    raw = (folder / OUTPUT_NAME).read_bytes()
    try:
        synthesis = Synthesis.model_validate_json(raw)
    except (ValidationError, ValueError) as e:
        raise DamagedOutput(f"{folder.name}/{OUTPUT_NAME} is not a valid synthesis") from e
    return Loaded(key=key, folder=folder, raw=raw, etag=etag_of(raw), synthesis=synthesis)


# ---------------------------------------------------------------- states

def entry_state(synthesis: Synthesis, entry) -> str:
    """proposed, validated, edited, rejected, added, with_file, new_since_validation."""
    if entry.review is not None:
        return entry.review.status
    if synthesis.status == "validated":
        return "new_since_validation" if entry.added_after_validation else "with_file"
    return "proposed"


def needs_attention(entry) -> bool:
    """A proposal from a scan or with a low confidence: looked at first."""
    return entry.confidence < LOW_CONFIDENCE or any(s.ocr for s in entry.sources)


def _decided_since(review, synthesis: Synthesis) -> bool:
    """A decision taken after the run that wrote this synthesis (so with its conflicts in view).
    A review without a date (written by hand) counts as one."""
    if review is None:
        return False
    if review.at is None:
        return True
    at, generated = review.at, synthesis.generated_at
    if (at.tzinfo is None) != (generated.tzinfo is None):
        at, generated = at.replace(tzinfo=None), generated.replace(tzinfo=None)
    return at >= generated


def open_conflicts(synthesis: Synthesis) -> list[int]:
    """Indexes of the conflicts no decision has settled yet: a conflict on an entry is settled by a
    decision on that entry taken since the run found it; one on a block, by a decision on the block
    (or, for a block the reviewer had declared empty, by their keeping one of its new entries)."""
    entries = {e.id: e for attr in L.BLOCKS for e in getattr(synthesis, attr)}
    out = []
    for i, c in enumerate(synthesis.conflicts):
        if c.entry is not None:
            e = entries.get(c.entry)
            settled = e is None or _decided_since(e.review, synthesis)
        else:
            reviewed = synthesis.block_reviews.get(c.block)
            settled = (_decided_since(reviewed, synthesis) if c.kind != "validated_disagreement"
                       else reviewed is None or _decided_since(reviewed, synthesis))
        if not settled:
            out.append(i)
    return out


def summary(loaded: Loaded) -> dict:
    """One line of the queue: counts, state and how urgent the dossier is (`rank`, lower first)."""
    s = loaded.synthesis
    entries = [e for attr in L.BLOCKS for e in getattr(s, attr)]
    states = [entry_state(s, e) for e in entries]
    pending = [e for e, st in zip(entries, states) if st in ("proposed", "new_since_validation")]
    conflicts = len(open_conflicts(s))
    attention = sum(needs_attention(e) for e in pending)
    if not entries and not s.documents:
        state = "empty"
    elif s.status == "validated" and not pending:
        state = "validated"
    elif len(pending) < len(entries) or s.block_reviews:
        state = "partly"
    else:
        state = "todo"
    rank = 0 if conflicts else 1 if attention else 2
    return {
        "key": loaded.key, "dossier_id": s.dossier_id, "documents": len(s.documents),
        "history": len(s.history), "allergies": len(s.allergies), "treatments": len(s.treatments),
        "statuses": {b: getattr(s, a) for b, a in L.STATUS_ATTR.items()},
        "entries": len(entries), "reviewed": len(entries) - len(pending), "pending": len(pending),
        "conflicts": conflicts, "attention": attention, "state": state, "state_label": L.DOSSIER_STATE[state],
        "rank": rank, "empty": state == "empty" or not entries,
    }


STATE_ORDER = {"todo": 0, "partly": 0, "validated": 1, "empty": 2}
FILTERS = {
    "": ("tous", lambda d: True),
    "todo": ("non relus", lambda d: d["state"] == "todo"),
    "partly": ("en partie relus", lambda d: d["state"] == "partly"),
    "validated": ("validés", lambda d: d["state"] == "validated"),
    "conflicts": ("avec conflits", lambda d: d["conflicts"] > 0),
    "empty": ("vides", lambda d: d["empty"]),
}


def order_queue(summaries: list[dict]) -> list[dict]:
    """Conflicts first, then dossiers with proposals from scans or of low confidence, then the rest;
    dossiers still to review before validated and empty ones."""
    return sorted(summaries, key=lambda d: (STATE_ORDER[d["state"]], d["rank"], d["key"]))


# ---------------------------------------------------------------- the dossier view

def _fold_chars(text: str) -> str:
    """Lower case without accents, one character for one character (so positions map back)."""
    out = []
    for ch in text:
        base = unicodedata.normalize("NFKD", ch)
        base = "".join(c for c in base if not unicodedata.combining(c)) or ch
        out.append(base[0].lower())
    return "".join(out)


def highlight(snippet: str, terms: list[str]) -> str:
    """The snippet as HTML with the first of `terms` found in it, as a whole word, marked (accents and
    case ignored)."""
    folded = _fold_chars(snippet)
    for term in terms:
        if not term or len(term) < 2:
            continue
        t = _fold_chars(term)
        m = re.search(r"(?<!\w)" + re.escape(t) + r"(?!\w)", folded)
        if m:
            i, j = m.span()
            return (html.escape(snippet[:i]) + "<mark>" + html.escape(snippet[i:j]) + "</mark>"
                    + html.escape(snippet[j:]))
    return html.escape(snippet)


@lru_cache(maxsize=1)
def _abbreviations() -> dict[str, list[str]]:
    """Folded label -> its abbreviations (rules/abbreviations.tsv): "EP" is how a letter writes
    "embolie pulmonaire", so that is what the snippet shows."""
    out: dict[str, list[str]] = {}
    path = RULES_DIR / "abbreviations.tsv"
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line and not line.startswith("#")]
    for row in csv.DictReader(lines, delimiter="\t"):
        out.setdefault(_fold_chars(row["expansion"]), []).append(row["abbr"])
    return out


def _terms(attr: str, entry) -> list[str]:
    main = getattr(entry, L.LABEL_FIELD[attr])
    extra = [getattr(entry, "brand", None)] + list(getattr(entry, "members", []) or [])
    words = sorted((w for w in main.split() if len(w) >= 4), key=len, reverse=True)
    return [main, *[e for e in extra if e], *_abbreviations().get(_fold_chars(main), []), *words]


def source_view(s, i: int, documents: dict, terms: list[str]) -> dict:
    doc = documents.get(s.document)
    return {
        "i": i, "document": s.document, "page": s.page, "ocr": s.ocr,
        "date": s.document_date or (doc.date if doc else None),
        "doc_type": L.DOC_TYPE.get(doc.doc_type, doc.doc_type) if doc else None,
        "snippet": highlight(s.snippet, terms),
        "has_image": doc is not None and doc.outcome == "ok" and doc.kind is not None,
    }


def entry_view(s: Synthesis, attr: str, entry, documents: dict) -> dict:
    state = entry_state(s, entry)
    terms = _terms(attr, entry)
    fields = []
    for name, label in L.FIELDS[attr]:
        value = getattr(entry, name, None)
        fields.append({"name": name, "label": label, "value": value,
                       "shown": L.KIND.get(value, value) if isinstance(value, str) else value,
                       "choices": L.CHOICES.get((attr, name))})
    review = entry.review.model_dump(mode="json") if entry.review else None
    return {
        "id": entry.id, "attr": attr, "block": L.BLOCKS[attr][0],
        "label": getattr(entry, L.LABEL_FIELD[attr]), "fields": fields,
        "confidence": entry.confidence, "attention": needs_attention(entry) and state == "proposed",
        "state": state, "state_label": L.ENTRY_STATE[state], "review": review,
        "pending": state in ("proposed", "new_since_validation"),
        "sources": [source_view(src, i, documents, terms) for i, src in enumerate(entry.sources)],
        "in_stay": getattr(entry, "in_stay", False), "verification": getattr(entry, "verification", None),
    }


def dossier_view(loaded: Loaded) -> dict:
    """Everything the dossier page shows, as plain data for the template."""
    s = loaded.synthesis
    documents = {d.path: d for d in s.documents}
    blocks = []
    by_id = {}
    for attr, (block, title) in L.BLOCKS.items():
        status = getattr(s, L.STATUS_ATTR[block])
        entries = [entry_view(s, attr, e, documents) for e in getattr(s, attr)]
        by_id.update({e["id"]: e for e in entries})
        reviewed = s.block_reviews.get(block)
        blocks.append({
            "attr": attr, "block": block, "title": title, "status": status,
            "status_label": L.BLOCK_STATUS[block][status], "entries": entries,
            "live": sum(e["state"] != "rejected" for e in entries),
            "block_review": reviewed.model_dump(mode="json") if reviewed else None,
            "fields": [{"name": n, "label": lab, "choices": L.CHOICES.get((attr, n))} for n, lab in L.FIELDS[attr]],
        })
    open_ids = set(open_conflicts(s))
    conflicts = []
    for i, c in enumerate(s.conflicts):
        entry = by_id.get(c.entry) if c.entry else None
        conflicts.append({
            "i": i, "kind": L.CONFLICT_KIND.get(c.kind, c.kind), "message": c.message, "block": c.block,
            "open": i in open_ids, "entry": entry,
            "sources": [source_view(src, j, documents, entry and _terms(entry["attr"], getattr_entry(s, entry)) or [])
                        for j, src in enumerate(c.sources)],
        })
    conflicts.sort(key=lambda c: not c["open"])
    summ = summary(loaded)
    return {
        "key": loaded.key, "etag": loaded.etag, "dossier_id": s.dossier_id, "status": s.status,
        "file_review": s.review.model_dump(mode="json") if s.review else None,
        "generated_at": s.generated_at, "documents": s.documents, "warnings": s.warnings,
        "blocks": blocks, "conflicts": conflicts, "summary": summ,
        "block_status_labels": L.BLOCK_STATUS,
    }


def getattr_entry(s: Synthesis, view: dict):
    """The model entry behind an entry view."""
    return next(e for e in getattr(s, view["attr"]) if e.id == view["id"])
