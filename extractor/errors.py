"""Errors and exit codes.

At the document level errors are values (`DocumentError.reason` becomes a warning and a ledger row);
at the run level they are exit codes, documented in the README and stable for scripts.
"""
from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0  # every document read
    DOCUMENTS_FAILED = 1  # the run finished, some documents could not be read (see warnings / ledger)
    BAD_ARGUMENTS = 2  # wrong options or paths: nothing was done
    COULD_NOT_RUN = 3  # the run could not start or finish (lock held, ledger damaged, missing tesseract...)
    INTERRUPTED = 130  # stopped by the user (Ctrl-C)


class SyntheseError(Exception):
    """Base of the run-level errors; each carries its exit code."""

    exit_code: ExitCode = ExitCode.COULD_NOT_RUN


class BadArguments(SyntheseError):
    exit_code = ExitCode.BAD_ARGUMENTS


class CouldNotRun(SyntheseError):
    exit_code = ExitCode.COULD_NOT_RUN


class DocumentError(Exception):
    """A document that cannot be read. `reason` is a stable short name; the message never holds document text.

    Library exceptions are translated at the boundary (`raise DocumentError("truncated", ...) from e`)
    because their messages can carry raw document metadata (where patient names sit).
    """

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


# Stable reasons, documented in the README. Tests and the ledger rely on these names.
REASONS = {
    "empty_file": "the file is empty (0 bytes)",
    "not_a_document": "the content is neither a PDF nor a supported image (checked by its first bytes)",
    "truncated": "the file is cut short or its structure is broken",
    "encrypted": "the PDF is protected by a password",
    "unreadable": "the file cannot be opened (permissions or I/O error)",
    "no_text": "no text could be read from any page (blank or illegible scan)",
    "too_large": "the document exceeds a configured limit (pages, pixels or page size)",
    "timeout": "reading took longer than the configured limit",
    "out_of_memory": "reading needed more memory than the configured limit",
    "crashed": "the reader process died (a crash in native code)",
    "ocr_failed": "tesseract failed on a page",
}
