"""A reviewer's decisions, written to synthese.json at once and to the ledger's `reviews` table.

A decision names the version of synthese.json the page was built from (its sha256): under the
dossier's lock the file is read again, and if it changed meanwhile (a nightly run, another reviewer)
the decision is refused (`StaleVersion`), nothing written. Otherwise the decision is applied to the
file's entries and written atomically (extractor.write): a crash mid-write leaves the previous file.

The audit row is written after the file, in its own short ledger connection (duckdb allows one writer
process, and a nightly run holds the ledger for its whole length): when the ledger is busy the row
waits in memory and is written with the next decision or when the server stops; the decision itself
is already safe in synthese.json, with who, when and what it replaced (`review.original`).

Undo restores what the last decisions replaced, one at a time, when what they wrote is still there.
"""
from __future__ import annotations

import json
import logging
import os
import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from pydantic import ValidationError

from extractor.config import OUTPUT_NAME
from extractor.review import labels as L
from extractor.review.dossiers import Loaded, etag_of, load
from extractor.write import dossier_lock, write_synthesis
from models.synthesis import AllergyEntry, BlockReview, HistoryEntry, Review, Synthesis, TreatmentEntry

log = logging.getLogger(__name__)

ENTRY_MODELS = {"history": HistoryEntry, "allergies": AllergyEntry, "treatments": TreatmentEntry}
ACTIONS = ("validate", "correct", "reject", "add", "block_status", "validate_dossier")


class StaleVersion(Exception):
    """synthese.json changed since the page was built: the decision was not applied."""


class BadDecision(ValueError):
    """A decision that cannot be applied as asked (message for the reviewer, in French)."""


@dataclass
class Decision:
    """What the reviewer asked. `attr` is the block's key in synthese.json (history, allergies, treatments)."""

    action: str
    attr: str | None = None
    entry_id: str | None = None
    fields: dict[str, str] = field(default_factory=dict)
    block_status: str | None = None


@dataclass
class Applied:
    """A decision written: the new version of the file and what to show next."""

    etag: str
    targets: list[tuple]
    before: dict
    after: dict
    entry_id: str | None


# ---------------------------------------------------------------- states of what a decision touches

def _target_key(t: tuple) -> str:
    return ":".join(str(x) for x in t)


def _get(s: Synthesis, t: tuple):
    if t[0] == "entry":
        e = next((e for e in getattr(s, t[1]) if e.id == t[2]), None)
        return e.model_dump(mode="json") if e is not None else None
    if t[0] == "block":
        r = s.block_reviews.get(t[1])
        return {"status": getattr(s, L.STATUS_ATTR[t[1]]), "block_review": r.model_dump(mode="json") if r else None}
    return {"status": s.status, "review": s.review.model_dump(mode="json") if s.review else None,
            "added_after_validation": [e.id for a in L.BLOCKS for e in getattr(s, a) if e.added_after_validation]}


def _set(s: Synthesis, t: tuple, state) -> None:
    if t[0] == "entry":
        entries = getattr(s, t[1])
        i = next((i for i, e in enumerate(entries) if e.id == t[2]), None)
        if state is None:
            if i is not None:
                entries.pop(i)
            return
        entry = ENTRY_MODELS[t[1]].model_validate(state)
        if i is None:
            entries.append(entry)
        else:
            entries[i] = entry
    elif t[0] == "block":
        setattr(s, L.STATUS_ATTR[t[1]], state["status"])
        if state["block_review"] is None:
            s.block_reviews.pop(t[1], None)
        else:
            s.block_reviews[t[1]] = BlockReview.model_validate(state["block_review"])
    else:
        s.status = state["status"]
        s.review = Review.model_validate(state["review"]) if state["review"] else None
        flagged = set(state["added_after_validation"])
        for a in L.BLOCKS:
            for e in getattr(s, a):
                e.added_after_validation = e.id in flagged


# ---------------------------------------------------------------- applying a decision

def _clean(value: str | None) -> str | None:
    value = " ".join((value or "").split())
    return value or None


def _review(status: str, reviewer: str, run_id: str | None, now: datetime, original: dict | None = None) -> Review:
    fields = {"status": status, "by": reviewer, "at": now}
    if original:
        fields["original"] = original
    if run_id:
        fields["run_id"] = run_id
    return Review(**fields)


def _block_after_entries(s: Synthesis, attr: str) -> None:
    """An entry block with nothing but rejected entries is no longer `known`."""
    block = L.BLOCKS[attr][0]
    live = [e for e in getattr(s, attr) if not (e.review and e.review.status == "rejected")]
    status_attr = L.STATUS_ATTR[block]
    if live:
        setattr(s, status_attr, "known")
        reviewed = s.block_reviews.get(block)
        if reviewed is not None and reviewed.status != "known":
            del s.block_reviews[block]  # the block has an entry the reviewer keeps: their "none" no longer holds
    elif getattr(s, status_attr) == "known":
        reviewed = s.block_reviews.get(block)
        setattr(s, status_attr, reviewed.status if reviewed else "unknown")


def apply_decision(s: Synthesis, d: Decision, reviewer: str, run_id: str | None,
                   now: datetime | None = None) -> tuple[list[tuple], str | None]:
    """Apply `d` to `s` in place; return the targets it touched (for the audit and undo) and the entry id.

    Raises BadDecision with a message for the reviewer.
    """
    now = now or datetime.now(timezone.utc)
    if d.action not in ACTIONS:
        raise BadDecision(f"action inconnue : {d.action}")
    if d.action == "validate_dossier":
        s.status = "validated"
        s.review = _review("validated", reviewer, run_id, now)
        for a in L.BLOCKS:
            for e in getattr(s, a):
                e.added_after_validation = False
        return [("file",)], None
    if d.attr not in L.BLOCKS:
        raise BadDecision("bloc inconnu")
    block = L.BLOCKS[d.attr][0]
    if d.action == "block_status":
        if d.block_status not in ("none_known", "unknown"):
            raise BadDecision("statut de bloc inconnu")
        live = [e for e in getattr(s, d.attr) if not (e.review and e.review.status == "rejected")]
        if live:
            raise BadDecision(f"Le bloc « {L.BLOCKS[d.attr][1]} » a encore {len(live)} entrée(s) non rejetée(s) : "
                              f"rejetez-les d'abord pour le déclarer « {L.BLOCK_STATUS[block][d.block_status]} ».")
        fields = {"status": d.block_status, "by": reviewer, "at": now}
        if run_id:
            fields["run_id"] = run_id
        s.block_reviews[block] = BlockReview(**fields)
        setattr(s, L.STATUS_ATTR[block], d.block_status)
        return [("block", block)], None

    model = ENTRY_MODELS[d.attr]
    allowed = [name for name, _ in L.FIELDS[d.attr]]
    label_field = L.LABEL_FIELD[d.attr]
    if d.action == "add":
        values = {k: _clean(d.fields.get(k)) for k in allowed if _clean(d.fields.get(k)) is not None}
        if not values.get(label_field):
            raise BadDecision(f"Indiquez au moins : {dict(L.FIELDS[d.attr])[label_field]}.")
        entry_id = f"{d.attr[0]}-added-{secrets.token_hex(5)}"
        try:
            entry = model(id=entry_id, confidence=1.0, review=_review("added", reviewer, run_id, now), **values)
        except ValidationError as e:
            raise BadDecision(_validation_message(e)) from None
        if d.attr == "allergies":
            entry.verification = "confirmed"
        getattr(s, d.attr).append(entry)
        _block_after_entries(s, d.attr)
        return [("entry", d.attr, entry_id), ("block", block)], entry_id

    entries = getattr(s, d.attr)
    i = next((i for i, e in enumerate(entries) if e.id == d.entry_id), None)
    if i is None:
        raise BadDecision("Cette entrée n'existe plus dans le dossier.")
    entry = entries[i]
    previous_original = dict(entry.review.original or {}) if entry.review and entry.review.original else {}
    if d.action == "correct":
        data = entry.model_dump()
        changed = {}
        for k in allowed:
            if k not in d.fields:
                continue
            value = _clean(d.fields[k])
            if value != data.get(k):
                changed[k] = data.get(k)
                data[k] = value
        if not data.get(label_field):
            raise BadDecision(f"{dict(L.FIELDS[d.attr])[label_field]} ne peut pas être vide.")
        original = {**changed, **previous_original}  # the run's value stays, across several corrections
        data["review"] = _review("edited" if original else "validated", reviewer, run_id, now, original)
        try:
            entries[i] = model.model_validate(data)
        except ValidationError as e:
            raise BadDecision(_validation_message(e)) from None
    else:
        status = "validated" if d.action == "validate" else "rejected"
        if d.action == "validate" and entry.review and entry.review.status in ("edited", "added"):
            status = entry.review.status  # validating a correction keeps it a correction
        entry.review = _review(status, reviewer, run_id, now, previous_original or None)
        if d.attr == "allergies" and d.action == "validate" and entry.verification == "unconfirmed":
            entry.verification = "confirmed"
    _block_after_entries(s, d.attr)
    return [("entry", d.attr, d.entry_id), ("block", block)], d.entry_id


def _validation_message(e: ValidationError) -> str:
    parts = []
    for err in e.errors():
        where = ".".join(str(x) for x in err.get("loc", ()))
        parts.append(f"{where} : valeur refusée")
    return "Correction refusée (" + ", ".join(parts) + ")."


# ---------------------------------------------------------------- the reviewer's session


def _require_reviewer(reviewer: str) -> None:
    if not reviewer:
        raise BadDecision("Indiquez votre nom de relecteur avant de décider.")


def _load_version(key: str, folder: Path, etag: str) -> Synthesis:
    """The dossier's synthesis, if its synthese.json is still the version `etag` the page was built from."""
    current = load(key, folder)
    if current.etag != etag:
        raise StaleVersion()
    return current.synthesis

class Reviews:
    """Applies decisions for one review server: file writes, the audit trail, the undo stack."""

    def __init__(self, ledger_path: Path):
        self.ledger_path = ledger_path
        self.pending: list[dict] = []  # audit rows not yet in the ledger (it was busy)
        self.undo_stack: list[dict] = []
        self.run_ids: dict[str, str] = {}
        self.ledger_message: str | None = None
        self._lock = threading.Lock()  # one decision at a time in this process
        self.flush()

    def _write(self, loaded_folder: Path, s: Synthesis) -> str:
        target = loaded_folder / OUTPUT_NAME
        mode = os.stat(target).st_mode & 0o777
        write_synthesis(loaded_folder, s, mode)
        return etag_of(target.read_bytes())

    def decide(self, key: str, folder: Path, etag: str, d: Decision, reviewer: str) -> Applied:
        """Apply `d` to the dossier if its synthese.json is still version `etag`; raises StaleVersion, BadDecision."""
        _require_reviewer(reviewer)
        with self._lock, dossier_lock(folder):
            s = _load_version(key, folder, etag)
            run_id = self.run_ids.get(s.dossier_id)
            probe = s.model_copy(deep=True)
            targets, entry_id = apply_decision(probe, d, reviewer, run_id)
            before = {_target_key(t): _get(s, t) for t in targets}
            after = {_target_key(t): _get(probe, t) for t in targets}
            new_etag = self._write(folder, probe)
        self.undo_stack.append({"key": key, "targets": targets, "before": before, "after": after,
                                "action": d.action, "entry_id": entry_id})
        self._audit(reviewer, s.dossier_id, targets, d.action, entry_id, before, after, run_id, etag, new_etag)
        return Applied(new_etag, targets, before, after, entry_id)

    def undo(self, key: str, folder: Path, etag: str, reviewer: str) -> Applied:
        """Undo the last decision taken on this dossier in this session, if what it wrote is still there."""
        _require_reviewer(reviewer)
        item = next((u for u in reversed(self.undo_stack) if u["key"] == key), None)
        if item is None:
            raise BadDecision("Rien à annuler sur ce dossier.")
        with self._lock, dossier_lock(folder):
            s = _load_version(key, folder, etag)
            for t in item["targets"]:
                if _get(s, t) != item["after"][_target_key(t)]:
                    raise BadDecision("Cette décision a été modifiée depuis (un run ou un autre relecteur) : "
                                      "elle ne peut plus être annulée telle quelle.")
            for t in item["targets"]:
                _set(s, t, item["before"][_target_key(t)])
            new_etag = self._write(folder, Synthesis.model_validate(s.model_dump()))
        self.undo_stack.remove(item)
        self._audit(reviewer, s.dossier_id, item["targets"], "undo", item["entry_id"], item["after"], item["before"],
                    self.run_ids.get(s.dossier_id), etag, new_etag)
        return Applied(new_etag, item["targets"], item["after"], item["before"], item["entry_id"])

    def can_undo(self, key: str) -> bool:
        return any(u["key"] == key for u in self.undo_stack)

    def _audit(self, reviewer, dossier_id, targets, action, entry_id, before, after, run_id, sha_before, sha_after):
        block = next((t[1] for t in targets if t[0] == "block"), None)
        self.pending.append({
            "reviewed_at": datetime.now(timezone.utc), "reviewer": reviewer, "dossier_id": dossier_id,
            "block": block, "entry_id": entry_id, "action": action,
            "before": json.dumps(before, ensure_ascii=False, default=str),
            "after": json.dumps(after, ensure_ascii=False, default=str),
            "run_id": run_id, "sha256_before": sha_before, "sha256_after": sha_after,
        })
        self.flush()

    def flush(self) -> bool:
        """Write the pending audit rows to the ledger; False (and `ledger_message` set) when it is busy."""
        from extractor.batch.ledger import Ledger, LedgerBusy
        from extractor.errors import CouldNotRun

        try:
            with Ledger(self.ledger_path) as ledger:
                ledger.record_reviews(self.pending)
                self.run_ids = ledger.latest_run_ids()
        except LedgerBusy:
            self.ledger_message = (f"Le journal d'audit ({self.ledger_path.name}) est occupé par un run en cours : "
                                   f"{len(self.pending)} décision(s) y seront inscrites dès qu'il sera libre. "
                                   f"Elles sont déjà enregistrées dans synthese.json.")
            log.warning("ledger busy: %d review row(s) waiting", len(self.pending))
            return False
        except CouldNotRun as e:
            self.ledger_message = f"Le journal d'audit ne peut pas être écrit : {e}"
            log.error("ledger: %s", e)
            return False
        self.pending.clear()
        self.ledger_message = None
        return True
