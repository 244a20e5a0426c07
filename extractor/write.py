"""Output: `synthese.json` in the dossier folder, written atomically.

A temporary file in the same folder (so the rename stays on one file system), fsync, rename,
fsync of the folder: a reader sees the old file or the new one, never half of one, even if the
machine dies mid-write. Originals are never touched.
"""
from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import ValidationError

from extractor.config import OUTPUT_NAME
from models.synthesis import Synthesis

TMP_PREFIX = ".synthese-"
TMP_SUFFIX = ".tmp"


def atomic_write_bytes(path: Path, data: bytes, mode: int = 0o640) -> None:
    """Write `data` to `path` atomically with permissions `mode`."""
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=TMP_SUFFIX, dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_synthesis(dossier: Path, synthesis: Synthesis, mode: int = 0o640) -> Path:
    """Validate and write the synthesis as `dossier/synthese.json`; return its path."""
    data = synthesis.model_dump_json(indent=2).encode()
    Synthesis.model_validate_json(data)  # what we write must read back under the contract
    target = dossier / OUTPUT_NAME
    atomic_write_bytes(target, data, mode)
    return target


class DamagedOutput(Exception):
    """The existing synthese.json cannot be read: it is kept aside, never silently replaced."""


def read_synthesis(dossier: Path) -> Synthesis | None:
    """The dossier's current synthesis, None when there is none; DamagedOutput when unreadable."""
    target = dossier / OUTPUT_NAME
    try:
        raw = target.read_bytes()
    except FileNotFoundError:
        return None
    try:
        return Synthesis.model_validate_json(raw)
    except (ValidationError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DamagedOutput(f"{target.name} is not a valid synthesis") from e


def set_aside_damaged(dossier: Path) -> Path:
    """Rename a damaged synthese.json so a reviewer's work in it can still be recovered by hand."""
    target = dossier / OUTPUT_NAME
    n = 1
    while (aside := dossier / f"synthese.damaged-{n}.json").exists():
        n += 1
    os.replace(target, aside)
    return aside


@contextmanager
def dossier_lock(dossier: Path) -> Iterator[None]:
    """Hold the dossier's read-modify-write lock: a run summarising the dossier and the review page
    writing a decision never interleave (a decision written between the run's read of the previous
    synthese.json and its write would be lost). The lock is an flock on the dossier folder itself, so
    no lock file is created beside the originals; it is released when the process dies."""
    fd = os.open(dossier, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
