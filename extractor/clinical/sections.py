"""Stage: find the sections of a page text (titles alone on their line, or inline "Allergies : pénicilline").

Titles come from `rules/sections.toml`. Matching is done on the folded text (same offsets as the page text),
so a `Section` points straight into `Page.text`. A section's body runs from the end of its title to the next
title (or the end of the text).
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from extractor.clinical.lexicon import fold, is_upper, read_toml


@dataclass(frozen=True)
class Section:
    """A section of a page text: canonical name, the block it feeds (or None), kind hint, body and title spans."""

    name: str
    block: str | None  # history | allergy | treatment | None
    kind: str | None  # medical | surgical | family for history sections
    start: int  # body start (after the title and its colon)
    end: int  # body end (next title or end of text)
    title_start: int
    title_end: int
    inline: bool = False  # the body starts on the title's line


def _title_regex(title: str) -> str:
    words = re.findall(r"[a-z0-9]+|[/']", fold(title))
    parts = []
    for w in words:
        if w in "/'":
            parts.append(r"\s*" + re.escape(w) + r"\s*")
            continue
        body = re.escape(w)
        if not w.endswith("s") and len(w) > 3:
            body += "s?"
        parts.append(body)
    rx = ""
    for i, p in enumerate(parts):
        if i and not parts[i - 1].endswith(r"\s*") and not p.startswith(r"\s*"):
            rx += r"[\s\-]+"
        rx += p
    return rx + r"\.?"


@functools.cache
def _compiled() -> tuple[re.Pattern, dict[str, tuple[str, str | None, str | None]]]:
    data = read_toml("sections.toml")["section"]
    alts: list[tuple[str, str]] = []
    index: dict[str, tuple[str, str | None, str | None]] = {}
    for i, sec in enumerate(data):
        block = sec.get("block")
        block = None if block in (None, "none") else block
        index[f"s{i}"] = (sec["name"], block, sec.get("kind"))
        for t in sec["titles"]:
            alts.append((f"s{i}", _title_regex(t)))
    # Longest titles first so "antécédents familiaux" beats "antécédents".
    alts.sort(key=lambda a: len(a[1]), reverse=True)
    body = "|".join(f"(?:{rx})(?P<{gid}_{n}>)" for n, (gid, rx) in enumerate(alts))
    pattern = (
        r"(?:^|(?<=[.;!?])[ \t]+)[ \t>*•·\-–#]*(?:\d{1,2}[.)][ \t]*|[a-z][.)][ \t]+)?"
        rf"(?P<title>{body})"
        r"(?:[ \t]*(?P<colon>[:：]|[ \t][\-–][ \t]|=>|->)[ \t]*|[ \t]*(?P<eol>\n|$))"
    )
    return re.compile(pattern, re.MULTILINE), index


def find_sections(text: str) -> list[Section]:
    """Sections of `text`, in order. Inline titles need a colon ("ATCD : HTA"); alone, a title fills its line."""
    rx, index = _compiled()
    folded = fold(text)
    hits = []
    for m in rx.finditer(folded):
        gid = next((k for k, v in m.groupdict().items() if v is not None and k.startswith("s") and "_" in k), None)
        if gid is None:
            continue
        if m.group("colon") is None and m.group("eol") is None:
            continue
        name, block, kind = index[gid.split("_")[0]]
        ts, te = m.start("title"), m.end("title")
        # A title alone on its line must start the line (not after a sentence).
        line_start = folded.rfind("\n", 0, ts) + 1
        if m.group("colon") is None and folded[line_start:ts].strip(" \t>*•·-–#0123456789.)"):
            continue
        body_start = m.end()
        hits.append((ts, te, body_start, name, block, kind, m.group("colon") is not None))
    out: list[Section] = []
    for i, (ts, te, bs, name, block, kind, inline) in enumerate(hits):
        end = hits[i + 1][0] if i + 1 < len(hits) else len(text)
        if inline:
            end = min(end, _inline_end(text, bs))
        out.append(Section(name, block, kind, bs, max(bs, end), ts, te, inline))
    return out


_CONTINUES = re.compile(r"[ \t]*(?:[a-zà-ÿœ0-9(]|[\-–•·*][ \t])")


def _inline_end(text: str, body_start: int) -> int:
    """Where an inline section ("Allergies : néant") ends when its title line carries content.

    In prose ("Allergies : néant\nSon traitement comporte ...") the next sentence is not part of
    the section: it ends with its line, unless the next line continues it (wrapped text starting in
    lower case, or a list item). A title line with nothing after the colon runs to the next title.
    """
    eol = text.find("\n", body_start)
    if eol < 0:
        return len(text)
    if not text[body_start:eol].strip():
        return len(text)
    while eol >= 0:
        line_start = text.rfind("\n", 0, eol) + 1
        ends_sentence = text[line_start:eol].rstrip()[-1:] in (".", "!", "?")
        nxt = text.find("\n", eol + 1)
        nxt = len(text) if nxt < 0 else nxt
        line, next_line = text[line_start:eol], text[eol + 1:nxt]
        shouting = is_upper(line, 3) and is_upper(next_line, 3)  # "ALLERGIE AUX PRODUITS\nDE CONTRASTE IODES"
        if ends_sentence or not (shouting or _CONTINUES.match(text, eol + 1, nxt)):
            return eol
        eol = text.find("\n", eol + 1)
    return len(text)


def section_at(sections: list[Section], offset: int) -> Section | None:
    """The section whose body holds `offset`, if any."""
    for s in reversed(sections):
        if s.start <= offset < s.end or (s.start == s.end == offset):
            return s
        if s.title_start <= offset < s.start:
            return s
    return None
