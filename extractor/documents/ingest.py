"""Ingest: from a root folder to dossiers, and from a dossier to candidate document files.

Nothing here reads a document's content except `sniff` (first bytes) and `sha256_file`.
Walking uses `lstat` only: symlinks are reported, never followed, so a link pointing outside
the dossier (or to /dev/zero, or to a FIFO) cannot make us read what the dossier does not hold.
"""
from __future__ import annotations

import fnmatch
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from extractor.config import HTML_NAME, OUTPUT_NAME, STATE_DIR

FileType = Literal["pdf", "png", "jpeg", "tiff"]

# Temp files our writer creates beside its outputs before renaming them into place.
TEMP_PATTERN = ".synthese-*.tmp"
DOCUMENT_SUFFIXES = {".pdf", ".png", ".jpg", ".jpeg", ".tif", ".tiff"}
SNIFF_BYTES = 1024


@dataclass(frozen=True)
class Candidate:
    """A file found in a dossier. `skip` names why it is not read (None: read it)."""

    path: Path
    rel: str  # posix path relative to the dossier
    skip: str | None = None


def _skip_reason_by_name(name: str, is_dir: bool) -> str | None:
    if name == STATE_DIR:
        return "state_dir"
    if fnmatch.fnmatchcase(name, TEMP_PATTERN):
        return "temp_file"
    if name.startswith("."):
        return "hidden"
    if not is_dir and (name in (OUTPUT_NAME, HTML_NAME) or name.lower().endswith(".json")):
        return "output"
    return None


def _skip_reason_by_mode(mode: int) -> str | None:
    if stat.S_ISLNK(mode):
        return "symlink"
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        return "not_regular"
    return None


def _holds_documents(folder: Path) -> bool:
    """True when `folder` directly holds a file we would read as a document."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return False
    for entry in entries:
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode) or _skip_reason_by_name(entry.name, False):
            continue
        if Path(entry.name).suffix.lower() in DOCUMENT_SUFFIXES or sniff(Path(entry.path)) is not None:
            return True
    return False


def discover_dossiers(root: Path) -> list[Path]:
    """The dossiers under `root`, sorted.

    If `root` directly holds document files it is itself the one dossier. Otherwise every
    immediate, non-hidden sub-directory is a dossier, empty ones included (an empty dossier
    is reported, not silently dropped). Symlinked directories are not dossiers (never followed).
    """
    root = Path(root)
    if _holds_documents(root):
        return [root]
    dossiers = []
    for entry in os.scandir(root):
        if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
            continue
        dossiers.append(Path(entry.path))
    return sorted(dossiers)


def list_documents(dossier: Path) -> list[Candidate]:
    """Every file below `dossier` (recursively), sorted by relative path, each with a skip reason or None.

    Skipped (never opened): hidden files and folders, our outputs (`synthese.json`, any `*.json`,
    temp files `.synthese-*.tmp`, the `.synthese` state folder), symlinks (`symlink`) and
    FIFOs / sockets / devices (`not_regular`). Skipped folders are listed once, not walked.
    """
    dossier = Path(dossier)
    found: list[Candidate] = []

    def walk(folder: Path, rel_parts: tuple[str, ...]) -> None:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            found.append(Candidate(folder, "/".join(rel_parts) or ".", "unreadable"))
            return
        for entry in entries:
            parts = rel_parts + (entry.name,)
            rel = "/".join(parts)
            path = Path(entry.path)
            try:
                mode = entry.stat(follow_symlinks=False).st_mode
            except OSError:
                found.append(Candidate(path, rel, "unreadable"))
                continue
            reason = _skip_reason_by_mode(mode) or _skip_reason_by_name(entry.name, stat.S_ISDIR(mode))
            if stat.S_ISDIR(mode) and reason is None:
                walk(path, parts)
            else:
                found.append(Candidate(path, rel, reason))

    walk(dossier, ())
    return sorted(found, key=lambda c: c.rel)


def sniff(path: Path) -> FileType | None:
    """The file's real type from its first bytes, or None. A PDF header may follow a few junk bytes."""
    try:
        with open(path, "rb") as f:
            head = f.read(SNIFF_BYTES)
    except OSError:
        return None
    return sniff_bytes(head)


def sniff_bytes(head: bytes) -> FileType | None:
    """Same as `sniff` on bytes already read."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if b"%PDF-" in head[:SNIFF_BYTES]:
        return "pdf"
    return None


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of the file's content, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
