"""Consolidation: the mentions of every document of a dossier -> one synthesis.

In: the dossier's DocumentRecords (with doc_type and date) and their Mentions; optionally the
previous synthesis (whose reviewed entries are kept as they are). Out: a `Synthesis`.

Rules, in the order they apply:
1. An exact duplicate document (same sha256) is listed with outcome "duplicate" and not counted.
2. Negated and hypothetical mentions never become entries; family mentions become `family`
   history entries, never the patient's own, and never allergies or treatments.
3. The same item said many ways becomes one entry: codes first (CIM-10, ATC, substance), then
   rapidfuzz on the folded label. Every source is kept.
4. For treatments the most recent document decides status and dose (undated documents count as oldest);
   within it the last mention in text order decides, and a drug given only during the stay (`in_stay`)
   is never active. A class written alone joins the named drug of that class; a fixed combination
   absorbs its substances written apart in the same documents; one substance is one entry.
5. Block statuses: `known` when there is an entry, `none_known` when only explicit absences were
   written, `unknown` otherwise. Never inferred from an empty list.
6. Contradictions between documents go to `conflicts`.
7. Entries carrying a reviewer's `review` in the previous synthesis (or all entries when that file
   is `validated`) are never dropped or changed: new findings are added as proposed and a
   disagreement is reported as a conflict. A rejected entry stays rejected: the same finding does
   not come back as a proposal, raises no conflict and does not count for the block's status.
   A block a reviewer marked `none_known` (or confirmed `unknown`) keeps that status while the
   documents list nothing else for it.
"""
from __future__ import annotations

import hashlib
import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timezone

from rapidfuzz import fuzz

from extractor import __version__
from extractor.clinical.lexicon import semantic_rules
from models.document import DocumentRecord, Mention
from models.synthesis import (
    AllergyEntry,
    Conflict,
    DocumentInfo,
    HistoryEntry,
    Source,
    Synthesis,
    TreatmentEntry,
    Warning,
)

FUZZY_MERGE = 90  # token_set_ratio on folded labels; below this, two labels stay two entries
KIND_ORDER = {"medical": 0, "surgical": 1, "family": 2}


def fold(text: str) -> str:
    """Lower case, accents removed, whitespace collapsed: the key used to compare labels."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(bare.replace("œ", "oe").split())


def _entry_id(block: str, key: str) -> str:
    return f"{block[0]}-{hashlib.sha1(key.encode()).hexdigest()[:10]}"


def _source(m: Mention, record: DocumentRecord) -> Source:
    boxes = []
    if m.ocr:
        page = next((p for p in record.pages if p.number == m.page), None)
        if page is not None:
            boxes = [w.box for w in page.words if w.end > m.start and w.start < m.end]
    return Source(
        document=record.path,
        page=m.page,
        start=m.start,
        end=m.end,
        snippet=m.snippet,
        ocr=m.ocr,
        boxes=boxes,
        document_date=record.date,
    )


def _combined_confidence(mentions: list[Mention], documents: int) -> float:
    # Agreement between independent documents raises confidence; one weak OCR mention stays weak.
    best = max(m.confidence for m in mentions)
    return round(min(1.0, best + 0.05 * (documents - 1)), 3)


def _most_common(values: Iterable[str | None], prefer_longer: bool = False) -> str | None:
    """The value said most often; ties go to the longer (more specific) one when asked, else the first in order."""
    counts: dict[str, int] = defaultdict(int)
    for v in values:
        if v:
            counts[v] += 1
    if not counts:
        return None
    return max(counts, key=lambda v: (counts[v], len(v) if prefer_longer else 0, v))


class _Group:
    """Mentions judged to be the same item, with the key they were grouped on."""

    def __init__(self, key: str, label: str, mention: Mention, record: DocumentRecord):
        self.key = key
        self.label = label
        self.items: list[tuple[Mention, DocumentRecord]] = [(mention, record)]
        self.preferred: tuple[str, str | None] | None = None  # (label, code) chosen when facts merged

    @property
    def mentions(self) -> list[Mention]:
        return [m for m, _ in self.items]

    @property
    def documents(self) -> int:
        return len({r.path for _, r in self.items})

    def sources(self) -> list[Source]:
        seen = set()
        out = []
        for m, r in sorted(self.items, key=lambda it: (it[1].path, it[0].page, it[0].start)):
            k = (r.path, m.page, m.start, m.end)
            if k not in seen:
                seen.add(k)
                out.append(_source(m, r))
        return out

    def chronological(self) -> list[tuple[Mention, DocumentRecord]]:
        # Undated documents count as the oldest: a dated letter is the better witness of "now".
        return sorted(self.items, key=lambda it: (it[1].date or "", it[1].path, it[0].page, it[0].start))


def _same_code(a: str | None, b: str | None) -> bool:
    """Two codes that differ name two things (oméprazole A02BC01 is not ésoméprazole A02BC05),
    however alike the words. A missing code agrees with anything."""
    return not a or not b or a == b


def _same_cim10_category(a: str | None, b: str | None) -> bool:
    return not a or not b or a.replace(".", "")[:3] == b.replace(".", "")[:3]


def _group(
    items: list[tuple[Mention, DocumentRecord]], key_of, scope_of=lambda m: "", codes_agree=_same_code
) -> list[_Group]:
    """Group mentions: exact key first, then fuzzy label match within the same scope."""
    groups: list[_Group] = []
    by_key: dict[tuple[str, str], _Group] = {}
    for m, r in items:
        scope = scope_of(m)
        key = key_of(m)
        g = by_key.get((scope, key))
        if g is None:
            label = fold(m.label)
            g = next(
                (
                    g
                    for g in groups
                    if scope_of(g.mentions[0]) == scope
                    and codes_agree(m.code, g.mentions[0].code)
                    and fuzz.token_set_ratio(label, g.label) >= FUZZY_MERGE
                ),
                None,
            )
            if g is None:
                g = _Group(key, label, m, r)
                groups.append(g)
            else:
                g.items.append((m, r))
            by_key[(scope, key)] = g
        else:
            g.items.append((m, r))
    return groups


def _history_kind(m: Mention) -> str:
    return "family" if (m.family or m.kind == "family") else (m.kind or "medical")


def _history_key(m: Mention) -> str:
    # Same CIM-10 category (3 characters) = same disease for a synthesis (E78.0 and E78.5 are both
    # dyslipidaemias). Procedures carry catch-all Z codes (Z98.8 "other post-procedural states"),
    # so surgical history is keyed on its label. A family history is one per relative when named.
    relative = f"@{fold(m.relative)}" if m.relative and _history_kind(m) == "family" else ""
    if m.code and _history_kind(m) != "surgical":
        return f"code:{m.code.replace('.', '')[:3]}{relative}"
    return f"label:{fold(m.label)}{relative}"


def _history_scope(m: Mention) -> str:
    """Mentions are only compared within one kind, and a family history within one relative."""
    kind = _history_kind(m)
    return f"{kind}@{fold(m.relative)}" if kind == "family" and m.relative else kind


def _allergy_key(m: Mention) -> str:
    return fold(m.label)


def _treatment_key(m: Mention) -> str:
    # One substance is one treatment whatever ATC its use carries (aspirin: B01AC06 and N02BA01).
    if m.is_class:
        return f"class:{m.code or fold(m.label)}"
    return f"drug:{fold(m.label)}"


def _fact_rank(code: str | None) -> tuple[str, int, int] | None:
    """(family, rank, family size) of a CIM-10 code in rules/semantic_types.toml [same_fact]; rank 0 is the
    most specific form."""
    if not code:
        return None
    flat = code.replace(".", "")
    for family, prefixes in semantic_rules()["same_fact"].items():
        for rank, prefix in enumerate(prefixes):
            if flat.startswith(prefix.replace(".", "")):
                return family, rank, len(prefixes)
    return None


def _group_rank(g: _Group) -> tuple[str, int, int] | None:
    ranks = [r for r in (_fact_rank(m.code) for m in g.mentions) if r]
    return min(ranks, key=lambda r: r[1]) if ranks else None


def _same_sentence(a: _Group, b: _Group) -> bool:
    places = {(r.path, m.page, m.snippet) for m, r in a.items}
    return any((r.path, m.page, m.snippet) in places for m, r in b.items)


def merge_same_facts(groups: list[_Group]) -> list[_Group]:
    """One fact, one entry: history groups of one code family ([same_fact]) and one kind merge when named in
    the same sentence or when one is the family's generic form; the most specific label and code win."""
    out: list[_Group] = []
    for g in groups:
        rank = _group_rank(g)
        target = None
        if rank is not None and _history_kind(g.mentions[0]) != "surgical":
            for o in out:
                orank = _group_rank(o)
                if orank is None or orank[0] != rank[0] or _history_scope(o.mentions[0]) != _history_scope(g.mentions[0]):
                    continue
                generic = rank[2] - 1
                if rank[1] == generic or orank[1] == generic or _same_sentence(g, o):
                    target = o
                    break
        if target is None:
            out.append(g)
            continue
        best = min((target, g), key=lambda x: _group_rank(x)[1])
        m = min((m for m in best.mentions if m.code and _fact_rank(m.code)), key=lambda m: _fact_rank(m.code)[1])
        target.items.extend(g.items)
        target.preferred = (m.label, m.code)
    return out


def attach_unnamed_relatives(groups: list[_Group]) -> list[_Group]:
    """A family history written without its relative ("Antécédents familiaux : diabète") joins the one
    family history of the same disease that names a relative; with several relatives it stays apart."""
    out = []
    for g in groups:
        m0 = g.mentions[0]
        if _history_kind(m0) == "family" and not any(m.relative for m in g.mentions):
            cat = g.key.split("@")[0]
            named = [o for o in groups if o is not g and _history_kind(o.mentions[0]) == "family"
                     and o.key.split("@")[0] == cat and any(m.relative for m in o.mentions)]
            if len(named) == 1:
                named[0].items.extend(g.items)
                continue
        out.append(g)
    return out


def _build_history(groups: list[_Group]) -> list[HistoryEntry]:
    entries = []
    for g in groups:
        ms = g.mentions
        kind = _history_kind(ms[0])
        label = g.preferred[0] if g.preferred else _most_common((m.label for m in ms), prefer_longer=True) or ms[0].label
        date = _most_common(m.date for m in ms)
        latest = g.chronological()[-1][0]
        entries.append(
            HistoryEntry(
                clinical_status=latest.clinical_status or _most_common(m.clinical_status for m in ms),
                relative=_most_common(m.relative for m in ms) if kind == "family" else None,
                id=_entry_id("history", f"{kind}:{g.key}"),
                label=label,
                code=(g.preferred[1] if g.preferred else None)
                or _most_common(m.code for m in ms if m.label == label) or _most_common(m.code for m in ms),
                kind=kind,
                date=date,
                sources=g.sources(),
                confidence=_combined_confidence(ms, g.documents),
            )
        )
    entries.sort(key=lambda e: (KIND_ORDER[e.kind], e.date is None, e.date or "", fold(e.label)))
    return entries


def _build_allergies(groups: list[_Group]) -> list[AllergyEntry]:
    entries = []
    for g in groups:
        chrono = g.chronological()
        latest = chrono[-1][0]
        entries.append(
            AllergyEntry(
                id=_entry_id("allergy", g.key),
                substance=latest.label,
                reaction=_most_common(m.reaction for m in g.mentions),
                kind=latest.kind if latest.kind in ("allergy", "intolerance") else "allergy",
                code=latest.code,
                # The latest document decides: an allergy de-labelled by tests stays refuted until a later
                # document states it again.
                verification="refuted" if latest.verification == "refuted" else "unconfirmed",
                members=sorted({x for m in g.mentions for x in m.members}),
                sources=g.sources(),
                confidence=_combined_confidence(g.mentions, g.documents),
            )
        )
    entries.sort(key=lambda e: fold(e.substance))
    return entries


def _link_classes(groups: list[_Group]) -> list[_Group]:
    """A class written without a drug ("sous bêtabloquant") joins the named drug of the dossier whose ATC lies in
    that class (the named drug wins, the class mention stays one of its sources); a class no named drug
    matches stays a class entry. Among several candidates, one named in the same document comes first."""
    named = [g for g in groups if not any(m.is_class for m in g.mentions)]
    out = [g for g in groups if g in named]

    def near(a: Mention, b: Mention) -> bool:
        return a.page == b.page and abs(a.start - b.start) <= 150
    for g in groups:
        if g in named:
            continue
        code = g.mentions[0].code or ""
        class_in_stay = all(m.in_stay for m in g.mentions)
        # a drug of the class, or an anti-infective written beside an anti-infective class ("une antibiothérapie
        # associant rifampicine...": J01 for J04); never a bolus given in the stay for a home treatment's class
        cands = [n for n in named if code and (class_in_stay or not all(m.in_stay for m in n.mentions))
                 and any((m.code or "").startswith(code) or (code[:1] == "J" == (m.code or "")[:1] and near(m, c) and r.path == rc.path)
                         for m, r in n.items for c, rc in g.items)]
        docs = {r.path for _, r in g.items}
        cands.sort(key=lambda n: not ({r.path for _, r in n.items} & docs))
        if cands:
            cands[0].items += g.items
        else:
            out.append(g)
    return out


def _absorb_combination_parts(groups: list[_Group]) -> list[_Group]:
    """A fixed combination and its substances written apart in the same documents ("rifampicine, isoniazide
    (Rifinah)") are one treatment: the combination."""
    combos = [g for g in groups if " + " in g.mentions[0].label and not g.mentions[0].is_class]
    out = []
    for g in groups:
        label = g.mentions[0].label
        docs = {r.path for _, r in g.items}
        home = next((c for c in combos if c is not g and label in c.mentions[0].label.split(" + ")
                     and docs <= {r.path for _, r in c.items}), None)
        if home is None:
            out.append(g)
        else:
            home.items += g.items
    return out


def _build_treatments(groups: list[_Group]) -> tuple[list[TreatmentEntry], list[Conflict]]:
    entries: list[TreatmentEntry] = []
    conflicts: list[Conflict] = []
    for g in _absorb_combination_parts(_link_classes(groups)):
        chrono = g.chronological()
        named = [(m, r) for m, r in chrono if not m.is_class] or chrono
        latest_m, latest_r = named[-1]
        # The most recent document decides; within it, a stop statement wins over a listing, and in-stay drugs
        # (anaesthesia, an IV course) are never active: only a home or discharge mention makes them so.
        last_date = latest_r.date or ""
        latest_doc_mentions = [m for m, r in chrono if (r.date or "") == last_date and r.path == latest_r.path]
        home = [m for m in latest_doc_mentions if not m.in_stay]
        in_stay = not home
        # within the document, the last word on the drug (text order) says where it stands at the end
        home.sort(key=lambda m: (m.page, m.start))
        stopped = [m for m in home if m.status == "stopped"]
        status = "stopped" if in_stay or (home and home[-1].status == "stopped") else "active"
        with_dose = [m for m, _ in named if m.dose]
        with_freq = [m for m, _ in named if m.frequency]
        stop = next((it for it in reversed(chrono) if it[0].status == "stopped" and not it[0].in_stay), None)
        start = next((m.start_date or m.date for m, _ in chrono if m.status != "stopped" and (m.start_date or m.date)), None)
        end = None
        if status == "stopped" and stop is not None:
            end = stop[0].date or stop[1].date
        entry = TreatmentEntry(
            id=_entry_id("treatment", g.key),
            drug=latest_m.label,
            brand=_most_common(m.brand for m in g.mentions),
            atc=_most_common(m.code for m, _ in named),
            dose=with_dose[-1].dose if with_dose else None,
            frequency=with_freq[-1].frequency if with_freq else None,
            route=_most_common(m.route for m in g.mentions),
            status=status,
            start=start,
            end=end,
            stop_reason=next((m.stop_reason for m in reversed(stopped or home or latest_doc_mentions) if m.stop_reason), None)
            if status == "stopped" else None,
            in_stay=in_stay,
            is_class=all(m.is_class for m in g.mentions),
            sources=g.sources(),
            confidence=_combined_confidence(g.mentions, g.documents),
        )
        entries.append(entry)
        statuses = {(r.path, m.status or "active") for m, r in chrono if not m.in_stay}
        stopped_in = sorted({p for p, s in statuses if s == "stopped"})
        active_in = sorted({p for p, s in statuses if s == "active"} - set(stopped_in))
        if stopped_in and active_in:
            if status == "stopped":
                msg = f"{entry.drug} is stopped in {', '.join(stopped_in)} but still listed in {', '.join(active_in)}"
            else:
                msg = f"{entry.drug} is listed in {', '.join(active_in)} after being stopped in {', '.join(stopped_in)}"
            conflicts.append(
                Conflict(kind="stopped_still_listed", block="treatment", message=msg, entry=entry.id, sources=entry.sources)
            )
    entries.sort(key=lambda e: (e.status != "active", fold(e.drug)))
    return entries, conflicts


def _status(entries: list, absences: list[Mention]) -> str:
    if entries:
        return "known"
    return "none_known" if absences else "unknown"


def _absence_conflicts(block: str, entries: list, absences: list[tuple[Mention, DocumentRecord]]) -> list[Conflict]:
    """An entry in one document and an explicit absence in another is a contradiction to review."""
    out = []
    names = {"history": "label", "allergy": "substance", "treatment": "drug"}
    for e in entries:
        if block == "history" and e.kind == "family":
            continue
        docs = {s.document for s in e.sources}
        against = [(m, r) for m, r in absences if r.path not in docs]
        if against:
            out.append(
                Conflict(
                    kind=f"{block}_vs_none_known",
                    block=block,
                    message=(
                        f"{getattr(e, names[block])} is stated in {', '.join(sorted(docs))} "
                        f"but {', '.join(sorted({r.path for _, r in against}))} states none known"
                    ),
                    entry=e.id,
                    sources=e.sources + [_source(m, r) for m, r in against],
                )
            )
    return out


def _document_infos(records: list[DocumentRecord]) -> tuple[list[DocumentInfo], set[str], list[Warning]]:
    infos, warnings, duplicates = [], [], set()
    first_by_sha: dict[str, str] = {}
    for r in sorted(records, key=lambda r: r.path):
        info = DocumentInfo(
            path=r.path,
            sha256=r.sha256,
            kind=r.kind,
            pages=len(r.pages),
            ocr_pages=r.ocr_pages,
            doc_type=r.doc_type,
            date=r.date,
            size=r.size,
            outcome="failed" if r.error else "ok",
            error=r.error,
        )
        if r.sha256 in first_by_sha and not r.error:
            info.outcome = "duplicate"
            info.duplicate_of = first_by_sha[r.sha256]
            duplicates.add(r.path)
        elif not r.error:
            first_by_sha[r.sha256] = r.path
        if r.error:
            warnings.append(
                Warning(document=r.path, code=r.error, message=r.error_detail or r.error.replace("_", " "))
            )
        infos.append(info)
    return infos, duplicates, warnings


def consolidate(
    dossier_id: str,
    records: list[DocumentRecord],
    mentions: dict[str, list[Mention]],
    previous: Synthesis | None = None,
    extra_warnings: list[Warning] | None = None,
) -> Synthesis:
    """Merge the mentions of all documents of a dossier into one proposed synthesis.

    `mentions` maps a document's dossier-relative path to its mentions. Documents that failed
    still appear in `documents` and `warnings`; their mentions (if any pages were read) count.
    """
    infos, duplicates, warnings = _document_infos(records)
    by_path = {r.path: r for r in records}
    history, allergies, treatments = [], [], []
    absences: dict[str, list[tuple[Mention, DocumentRecord]]] = defaultdict(list)
    for path, ms in sorted(mentions.items()):
        record = by_path.get(path)
        if record is None or path in duplicates:
            continue
        for m in ms:
            if m.negated or (m.hypothetical and not (m.category == "allergy" and m.verification == "unconfirmed")):
                continue  # (a suspected drug reaction stays, as an unconfirmed allergy)
            if m.category == "absence":
                if m.block and not m.family:
                    absences[m.block].append((m, record))
            elif m.category == "history":
                history.append((m, record))
            elif m.family:
                continue  # a relative's allergy or treatment is not the patient's
            elif m.category == "allergy":
                allergies.append((m, record))
            elif m.category == "treatment":
                treatments.append((m, record))

    history_groups = _group(history, _history_key, _history_scope, _same_cim10_category)
    history_entries = _build_history(merge_same_facts(attach_unnamed_relatives(history_groups)))
    allergy_entries = _build_allergies(_group(allergies, _allergy_key))
    treatment_entries, conflicts = _build_treatments(_group(treatments, _treatment_key))
    conflicts += _absence_conflicts("allergy", [a for a in allergy_entries if a.verification != "refuted"], absences["allergy"])
    conflicts += _absence_conflicts("history", history_entries, absences["history"])
    conflicts += _absence_conflicts("treatment", treatment_entries, absences["treatment"])

    synthesis = Synthesis(
        dossier_id=dossier_id,
        generated_at=datetime.now(timezone.utc),
        extractor_version=__version__,
        documents=infos,
        history=history_entries,
        allergies=allergy_entries,
        treatments=treatment_entries,
        history_status=_status(history_entries, absences["history"]),
        # A refuted allergy is shown (the doctor sees the de-labelling) but states no allergy.
        allergy_status=_status([a for a in allergy_entries if a.verification != "refuted"], absences["allergy"]),
        treatment_status=_status(treatment_entries, absences["treatment"]),
        conflicts=conflicts,
        warnings=warnings + list(extra_warnings or []),
    )
    if previous is not None:
        explicit = {block: bool(absences[block]) for block in ("history", "allergy", "treatment")}
        synthesis = preserve_reviewed(synthesis, previous, explicit)
    return synthesis


_BLOCKS = (
    ("history", "history", ("label", "code", "kind", "date")),
    ("allergies", "allergy", ("substance", "reaction", "kind")),
    ("treatments", "treatment", ("drug", "dose", "frequency", "status")),
)


def _same_item(block: str, a, b) -> bool:
    if a.id and a.id == b.id:
        return True
    if block == "history":
        if a.kind != b.kind:
            return False
        if a.code and b.code:
            return a.code == b.code
        return fuzz.token_set_ratio(fold(a.label), fold(b.label)) >= FUZZY_MERGE
    if block == "allergy":
        return fuzz.token_set_ratio(fold(a.substance), fold(b.substance)) >= FUZZY_MERGE
    if a.atc and b.atc and a.atc != b.atc:
        return False
    return fuzz.token_set_ratio(fold(a.drug), fold(b.drug)) >= FUZZY_MERGE


def _rejected(entry) -> bool:
    return entry.review is not None and entry.review.status == "rejected"


def preserve_reviewed(new: Synthesis, previous: Synthesis, explicit_absence: dict[str, bool] | None = None) -> Synthesis:
    """Keep every reviewed entry of `previous` exactly as it is; add new findings as proposed.

    A file validated as a whole (`status: "validated"`) keeps the entries it had when the reviewer
    validated it; findings added afterwards are marked `added_after_validation` and stay proposals.

    A new finding that is the same item as a reviewed entry is not added again; if it disagrees on
    a field the reviewer settled (dose, status...), a `validated_disagreement` conflict says so.
    A rejected entry stays rejected: its finding is not proposed again and raises no conflict.

    Block statuses are then decided on the entries a reviewer did not reject: `known` when there is
    one; otherwise the reviewer's own word on the block (`block_reviews`) when there is one; otherwise
    `none_known` when a document wrote an explicit absence (`explicit_absence[block]`, or the status
    the new reading found), else `unknown`.
    """
    whole_file = previous.status == "validated"
    explicit_absence = explicit_absence or {}
    matched: dict[str, object] = {}  # a new finding's id -> the reviewed entry it is the same item as
    for attr, block, fields in _BLOCKS:
        kept = [
            e for e in getattr(previous, attr)
            if e.review is not None or (whole_file and not e.added_after_validation)
        ]
        merged = list(kept)
        for e in getattr(new, attr):
            match = next((k for k in kept if _same_item(block, k, e)), None)
            if match is None:
                e.added_after_validation = whole_file
                merged.append(e)
                continue
            matched[e.id] = match
            if _rejected(match):
                continue
            diffs = [f for f in fields if getattr(e, f) != getattr(match, f) and getattr(e, f) is not None]
            if diffs:
                detail = ", ".join(f"{f}: {getattr(match, f)!r} -> {getattr(e, f)!r}" for f in diffs)
                new.conflicts.append(
                    Conflict(
                        kind="validated_disagreement",
                        block=block,
                        message=f"the documents now disagree with a reviewed entry ({detail})",
                        entry=match.id,
                        sources=e.sources,
                    )
                )
        setattr(new, attr, merged)
    # Conflicts the new reading found on a finding that is a reviewed entry now point at that entry;
    # those on an entry the reviewer rejected are settled.
    conflicts = []
    for c in new.conflicts:
        match = matched.get(c.entry) if c.entry else None
        if match is not None and c.kind != "validated_disagreement":
            if _rejected(match):
                continue
            c.entry = match.id
        conflicts.append(c)
    new.conflicts = conflicts
    if whole_file:
        new.status = "validated"
        new.review = previous.review
    new.block_reviews = dict(previous.block_reviews)
    for attr, block, status in (("history", "history", "history_status"), ("allergies", "allergy", "allergy_status"),
                                ("treatments", "treatment", "treatment_status")):
        live = [e for e in getattr(new, attr) if not _rejected(e)]
        reviewed = new.block_reviews.get(block)
        if live:
            value = "known"
            if reviewed is not None and reviewed.status != "known":
                new.conflicts.append(
                    Conflict(
                        kind="validated_disagreement",
                        block=block,
                        message=f"a reviewer marked this block {reviewed.status}; the documents now list "
                                f"{len(live)} entr{'y' if len(live) == 1 else 'ies'}",
                        sources=[s for e in live if e.review is None for s in e.sources][:5],
                    )
                )
        elif reviewed is not None:
            value = reviewed.status
        elif explicit_absence.get(block) or getattr(new, status) == "none_known":
            value = "none_known"
        else:
            value = "unknown"
        setattr(new, status, value)
    return new
