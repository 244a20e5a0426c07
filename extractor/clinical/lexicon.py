"""Lexicons loaded once per process from `rules/`, and the text folding they are matched on.

Folding (`fold`) lower-cases and strips accents **one character for one character**, so an offset in
the folded text is the same offset in the page text: spans found on the folded text point straight
back into `Page.text`. Keys of every lexicon are made with `key_of` (folded tokens, light plural
stripping, joined by one space), and the text is tokenised the same way (`tokenize`).
"""
from __future__ import annotations

import csv
import functools
import re
import tomllib
import unicodedata
from dataclasses import dataclass, field

from rules import RULES_DIR

_LIGATURES = {"œ": "o", "Œ": "o", "æ": "a", "Æ": "a", "ß": "s", "’": "'", "‘": "'", "ʼ": "'", "`": "'"}


@functools.lru_cache(maxsize=4096)
def _fold_char(c: str) -> str:
    if c in _LIGATURES:
        return _LIGATURES[c]
    d = unicodedata.normalize("NFD", c)
    base = d[0] if d else c
    low = base.lower()
    return low if len(low) == 1 else c


def fold(text: str) -> str:
    """Lower-case, accent-free copy of `text` with exactly the same length (1:1 character mapping)."""
    return "".join(_fold_char(c) for c in text)


_TOKEN = re.compile(r"[a-z0-9]+")


def _norm_token(tok: str) -> str:
    # Light plural folding, applied the same way to lexicon keys and to the text.
    if len(tok) > 3 and tok[-1] == "s" and not tok.endswith("ss") and not tok[:-1].isdigit():
        return tok[:-1]
    return tok


def tokenize(folded: str) -> list[tuple[str, int, int]]:
    """Tokens of a folded text as (normalised token, start, end)."""
    return [(_norm_token(m.group()), m.start(), m.end()) for m in _TOKEN.finditer(folded)]


def key_of(text: str) -> str:
    """Lexicon key of a term: folded, tokenised, plural-folded tokens joined by one space."""
    return " ".join(t for t, _, _ in tokenize(fold(text)))


@dataclass(frozen=True)
class Term:
    """One lexicon entry reached by a surface form."""

    category: str  # condition | abbreviation | drug | allergen | reaction
    label: str  # canonical label (condition, substance, allergen, reaction)
    code: str | None = None  # CIM-10 or ATC
    kind: str | None = None  # medical | surgical (conditions), brand | substance (drugs)
    brand: str | None = None
    forms: str | None = None
    routes: str | None = None
    upper: bool = False  # the surface must be written in capitals in the text (short abbreviations)
    strict: bool = False  # a drug name that is also a common word: only with posology or in a treatment section
    source: str = "curated"
    semantic: str = "disease"  # conditions: disease | event | procedure | symptom | finding | risk_factor | exposure


@dataclass
class Lexicon:
    """Surface key -> terms, per category, plus the longest key length in tokens."""

    terms: dict[str, list[Term]] = field(default_factory=dict)
    prefixes: set[str] = field(default_factory=set)  # every proper token prefix of a key, for early stopping
    max_len: int = 1

    def add(self, surface: str, term: Term) -> None:
        k = key_of(surface)
        if not k:
            return
        bucket = self.terms.setdefault(k, [])
        if term not in bucket:
            bucket.append(term)
        toks = k.split(" ")
        for i in range(1, len(toks)):
            self.prefixes.add(" ".join(toks[:i]))
        self.max_len = max(self.max_len, len(toks))

    def __len__(self) -> int:
        return len(self.terms)


def _read_tsv(name: str) -> list[dict[str, str]]:
    path = RULES_DIR / name
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as fh:
        lines = [ln for ln in fh if ln.strip() and not ln.startswith("#")]
    return [{k: (v or "").strip() for k, v in row.items()} for row in csv.DictReader(lines, delimiter="\t")]


def read_toml(name: str) -> dict:
    """A TOML file of `rules/`, parsed."""
    with (RULES_DIR / name).open("rb") as fh:
        return tomllib.load(fh)


def _synonyms(cell: str) -> list[str]:
    return [s.strip() for s in cell.split("|") if s.strip()]


@functools.cache
def semantic_rules() -> dict:
    """`rules/semantic_types.toml`, parsed once."""
    return read_toml("semantic_types.toml")


def semantic_type(label: str, code: str | None, kind: str | None, surface: str | None = None) -> str:
    """What a condition term names (rules/semantic_types.toml): by surface, label, longest CIM-10 prefix."""
    rules = semantic_rules()
    if surface is not None:
        by_surface = rules["surfaces"].get(key_of(surface))
        if by_surface:
            return by_surface
    by_label = rules["labels"].get(label)
    if by_label:
        return by_label
    if code:
        for n in range(len(code), 0, -1):
            t = rules["codes"].get(code[:n])
            if t:
                return t
    return "procedure" if kind == "surgical" else "disease"


def is_history_type(semantic: str) -> bool:
    """Only diseases, events and procedures become history entries on their own."""
    return semantic in semantic_rules()["history_types"]


def _condition_term(label: str, code: str | None, kind: str, surface: str, abbreviation: bool = False, **kw) -> Term:
    return Term("abbreviation" if abbreviation else "condition", label, code, kind,
                semantic=semantic_type(label, code, kind, surface), **kw)


@functools.cache
def load_lexicons() -> dict[str, Lexicon]:
    """All lexicons, loaded once per process: conditions (incl. abbreviations), drugs, allergens, reactions."""
    conditions = Lexicon()
    for row in _read_tsv("conditions.tsv"):
        label, code, kind = row["label"], row.get("code") or None, row.get("kind") or "medical"
        conditions.add(label, _condition_term(label, code, kind, label))  # a full name ("zona") in any case
        for s in _synonyms(row.get("synonyms", "")):
            # short synonyms ("irc", "lam", "toc") are initials: only in capitals
            conditions.add(s, _condition_term(label, code, kind, s, upper=len(s) <= 4 and " " not in s))
    for row in _read_tsv("cim10_terms.tsv"):
        if key_of(row["label"]) not in conditions.terms:
            conditions.add(row["label"], _condition_term(row["label"], row["code"], row.get("kind") or "medical",
                                                         row["label"], source="cim10"))
    for row in _read_tsv("abbreviations.tsv"):
        if not row.get("code") and not row.get("expansion"):
            continue
        if row.get("block", "history") != "history":
            continue
        conditions.add(row["abbr"], _condition_term(row["expansion"], row.get("code") or None,
                                                    row.get("kind") or "medical", row["abbr"], abbreviation=True,
                                                    upper=row.get("case", "upper") == "upper"))

    drugs = Lexicon()
    for row in _read_tsv("drugs.tsv"):
        t = Term(
            "drug", row["substance"], row.get("atc") or None, row["type"], brand=row.get("brand") or None,
            forms=row.get("forms") or None, routes=row.get("routes") or None, strict=row.get("strict") == "1",
            upper=row.get("strict") == "1", source="bdpm",
        )
        drugs.add(row["surface"], t)

    allergens = Lexicon()
    for row in _read_tsv("allergens.tsv"):
        t = Term("allergen", row["label"], row.get("code") or None, row.get("class") or None,
                 upper=row.get("case") == "upper")
        for s in [row["label"], *_synonyms(row.get("synonyms", ""))]:
            allergens.add(s, t)

    reactions = Lexicon()
    for row in _read_tsv("reactions.tsv"):
        t = Term("reaction", row["label"])
        for s in [row["label"], *_synonyms(row.get("synonyms", ""))]:
            reactions.add(s, t)
    return {"conditions": conditions, "drugs": drugs, "allergens": allergens, "reactions": reactions}


@functools.cache
def load_cues() -> dict:
    """`rules/cues.toml`, parsed once."""
    return read_toml("cues.toml")


@dataclass(frozen=True)
class Match:
    """A lexicon hit on a page text: [start, end) offsets in the original text."""

    start: int
    end: int
    key: str
    terms: tuple[Term, ...]
    fuzzy: bool = False
    score: float = 1.0


def is_upper(text: str, min_letters: int = 1) -> bool:
    """Written in capitals: at least `min_letters` letters, all upper case."""
    letters = [c for c in text if c.isalpha()]
    return len(letters) >= min_letters and all(c.isupper() for c in letters)


def find_terms(text: str, folded: str, tokens: list[tuple[str, int, int]], lex: Lexicon,
               fuzzy: bool | str = False) -> list[Match]:
    """Longest-first, non-overlapping lexicon matches over token n-grams.

    n-grams grow while they are a prefix of some key and never cross a line break or sentence punctuation.
    `upper` terms only match where the original text starts with a capitalised abbreviation. With `fuzzy`,
    single tokens of 7+ characters not found exactly are compared to the lexicon's single-token keys (OCR noise);
    `fuzzy="strict"` (text layers) asks for a closer word with the same head and ending.
    """
    out: list[Match] = []
    n = len(tokens)
    # barrier[i]: a separator lies between token i and token i+1
    width = line_width(text)
    barrier = [_is_barrier(text, folded, tokens[i][2], tokens[i + 1][1], width) for i in range(n - 1)] + [True]
    terms_of, prefixes = lex.terms, lex.prefixes
    i = 0
    while i < n:
        hit = None
        key = ""
        j = i
        while j < n:
            key = tokens[j][0] if j == i else key + " " + tokens[j][0]
            terms = terms_of.get(key)
            if terms:
                start, end = tokens[i][1], tokens[j][2]
                ok = tuple(t for t in terms if not t.upper or is_upper(text[start:tokens[i][2]]))
                if ok:
                    hit = Match(start, end, key, ok)
            if barrier[j] or key not in prefixes:
                break
            j += 1
        if hit is None and fuzzy and len(tokens[i][0]) >= 7 and not tokens[i][0].isdigit():
            _LEX_BY_ID.setdefault(id(lex), lex)
            hit = _fuzzy_one(text, tokens[i], lex, strict=fuzzy == "strict")
        if hit:
            out.append(hit)
            while i < n and tokens[i][1] < hit.end:
                i += 1
        else:
            i += 1
    return out


_BARRIER = re.compile(r"[\n.;:!?()]")


def line_width(text: str) -> int:
    """Length of the longest line: the page's text width, to tell wrapped prose from lists."""
    return max((len(line) for line in text.split("\n")), default=0)


def wraps(text: str, newline: int, width: int) -> bool:
    """Whether the line break at `newline` only wraps prose ("... cure de\nhernie inguinale ...").

    The line before is long (at least 3/4 of the page's longest line and 40 characters), does not end
    a sentence or a clause, and either ends on a word that never ends a sentence ("Suspicion de\nSCA.")
    or is followed by a line starting in lower case or with a digit ("type\n2"). Short lines are list
    items or titles: "1-0-1\nlevothyroxine 75 µg" are two prescriptions, not one sentence.
    """
    line = text[text.rfind("\n", 0, newline) + 1:newline].rstrip()
    if len(line) < max(40, 0.75 * width) or line[-1:] in ".!?:;":
        return False
    nxt = text[newline + 1:newline + 2]
    if nxt.islower() or nxt.isdigit():
        return True
    last_word = fold(line.rsplit(None, 1)[-1]) if line.split() else ""
    return last_word in _continuation_words()


@functools.cache
def _continuation_words() -> frozenset[str]:
    return frozenset(fold(w) for w in load_cues()["text"]["continuation_words"])


def join_wrapped(text: str, other: str | None = None) -> str:
    """`other` (default `text`), same length, with the line breaks that only wrap prose made spaces.

    Offsets are unchanged, so stages that reason on lines (clauses, stop cues, qualifiers) see the
    sentence the writer wrote rather than the page's line breaks. The page text itself is untouched.
    """
    other = text if other is None else other
    if "\n" not in text:
        return other
    width = line_width(text)
    chars = list(other)
    pos = text.find("\n")
    while pos >= 0:
        if wraps(text, pos, width):
            chars[pos] = " "
        pos = text.find("\n", pos + 1)
    return "".join(chars)


def _is_barrier(text: str, folded: str, gap_start: int, gap_end: int, width: int) -> bool:
    """A separator between two tokens stops a term, except a line break that only wraps prose."""
    gap = folded[gap_start:gap_end]
    if not _BARRIER.search(gap):
        return False
    if gap.count("\n") != 1 or gap.strip():
        return True
    return not wraps(text, gap_start + gap.index("\n"), width)
_SINGLE_KEYS: dict[int, tuple[str, ...]] = {}


def _single_keys(lex: Lexicon) -> tuple[str, ...]:
    keys = _SINGLE_KEYS.get(id(lex))
    if keys is None:
        keys = tuple(k for k, ts in lex.terms.items() if " " not in k and len(k) >= 7 and not any(t.upper for t in ts))
        _SINGLE_KEYS[id(lex)] = keys
    return keys


def _fuzzy_one(text: str, tok: tuple[str, int, int], lex: Lexicon, strict: bool = False) -> Match | None:
    found = _fuzzy_key(tok[0], id(lex), strict)
    if found is None:
        return None
    k, score = found
    return Match(tok[1], tok[2], k, tuple(lex.terms[k]), fuzzy=True, score=score)


_LEX_BY_ID: dict[int, Lexicon] = {}


# On a text layer a word near a lexicon key is most often another word ("cervicale" is not "cervicalgie",
# "péricarde" not "péricardite", "pénicillinase" not "pénicilliose": E3C development set, 2026-11), rarely a
# typing error ("cholécystectonie"). There a fuzzy match must be closer and keep the word's head and ending.
FUZZY_CUTOFF = {False: 88, True: 93}


@functools.lru_cache(maxsize=65536)
def _fuzzy_key(token: str, lex_id: int, strict: bool = False) -> tuple[str, float] | None:
    # Cached per word: the same words recur across the pages of a batch.
    from rapidfuzz import fuzz, process

    best = process.extractOne(token, _single_keys(_LEX_BY_ID[lex_id]), scorer=fuzz.ratio,
                              score_cutoff=FUZZY_CUTOFF[strict])
    if not best or best[0][:1] != token[:1]:
        return None
    if strict and (best[0][:4] != token[:4] or best[0][-2:] != token[-2:]):
        return None
    return best[0], best[1] / 100


# ---- Drugs as clinicians write them: classes, common aliases, combinations, misspellings (issue 11) ----------

@functools.cache
def load_drug_classes() -> Lexicon:
    """`rules/drug_classes.tsv`: drug classes ("bêtabloquant", "IEC", "ADO") with their ATC class code
    (Term.kind "class") and common names of single drugs or combinations missing from the BDPM names
    ("cotrimoxazole", "LT4": Term.kind "substance", full ATC code)."""
    lex = Lexicon()
    for row in _read_tsv("drug_classes.tsv"):
        kind = "class" if row["kind"] == "class" else "substance"
        upper = row.get("case") == "upper"
        t = Term("drug", row["label"], row["atc"] or None, kind, upper=upper, source="curated")
        t_plain = Term("drug", row["label"], row["atc"] or None, kind, source="curated")
        for s in _synonyms(row["surface"]):
            # only the short abbreviations need capitals; the long names of an upper-case row do not
            lex.add(s, t if upper and len(s.replace(" ", "")) <= 5 else t_plain)
    return lex


_LIST_GAP = re.compile(r",|\bet\b|\bou\b")


def _split_listed_combinations(text: str, folded: str, tokens: list, matches: list[Match], lex: Lexicon) -> list[Match]:
    """A combination matched over a written list ("isoniazide, rifampicine et éthambutol") is the list's drugs,
    not the fixed combination: fixed combinations are written with "+", "/", "-" or juxtaposed."""
    out = []
    for m in matches:
        toks = [t for t in tokens if m.start <= t[1] and t[2] <= m.end]
        if " + " not in m.terms[0].label or len(toks) < 2 or not any(
                _LIST_GAP.search(folded, toks[i][2], toks[i + 1][1]) for i in range(len(toks) - 1)):
            out.append(m)
            continue
        piece: list = []
        for i, tok in enumerate(toks):
            piece.append(tok)
            if i == len(toks) - 1 or _LIST_GAP.search(folded, tok[2], toks[i + 1][1]):
                out += find_terms(text, folded, piece, lex)
                piece = []
    return out


@functools.cache
def _class_heads() -> tuple[frozenset[str], int]:
    lex = load_drug_classes()
    return frozenset(k.split(" ")[0] for k in lex.terms), lex.max_len


def _find_classes(text: str, folded: str, tokens: list[tuple[str, int, int]]) -> list[Match]:
    """Class and alias matches, looked up only in the runs of tokens that can start one (a page holds few)."""
    heads, width = _class_heads()
    runs: list[list[int]] = []
    for i, tok in enumerate(tokens):
        if tok[0] in heads:
            if runs and i <= runs[-1][1]:
                runs[-1][1] = max(runs[-1][1], i + width)
            else:
                runs.append([i, i + width])
    lex = load_drug_classes()
    return [m for a, b in runs for m in find_terms(text, folded, tokens[a:b], lex)]


def find_drug_terms(text: str, folded: str, tokens: list[tuple[str, int, int]]) -> list[Match]:
    """Drug mentions of a page: BDPM names (fixed combinations whole), then classes and aliases of
    `rules/drug_classes.tsv` where no drug name was found, then guarded fuzzy matches (`fuzzy_drug`) of
    the words left. Non-overlapping, in text order."""
    drugs = load_lexicons()["drugs"]
    found = _split_listed_combinations(text, folded, tokens, find_terms(text, folded, tokens, drugs), drugs)
    classes = _find_classes(text, folded, tokens)
    # A curated alias on the same words wins over a BDPM name without ATC ("vitamine D3", "acide salicylique").
    alias_spans = {(c.start, c.end): c for c in classes if c.terms[0].kind == "substance"}
    found = [alias_spans.pop((m.start, m.end)) if (m.start, m.end) in alias_spans else m for m in found]
    for c in classes:
        over = [m for m in found if c.start < m.end and m.start < c.end]
        # a longer class name wins over a drug name inside it ("collyres mouillants" is not the brand "Collyre")
        if all(c.start <= m.start and m.end <= c.end and (m.end - m.start) < (c.end - c.start) for m in over):
            found = [m for m in found if m not in over] + [c]
    covered = [(m.start, m.end) for m in found]
    for tok in tokens:
        if len(tok[0]) >= FUZZY_DRUG_MIN and tok[0].isalpha() and not any(a <= tok[1] < b for a, b in covered):
            hit = fuzzy_drug(tok[0])
            if hit:
                key, score = hit
                found.append(Match(tok[1], tok[2], key, tuple(drugs.terms[key]), fuzzy=True, score=score))
    return sorted(found, key=lambda m: m.start)


FUZZY_DRUG_MIN = 7  # shorter names are never matched fuzzily: too many drugs differ by one letter
FUZZY_DRUG_CUTOFF = 85


@functools.cache
def _fuzzy_drug_index() -> tuple[dict[str, tuple[str, ...]], frozenset[str]]:
    """Single-word drug names (substances and non-strict brands) by their first two letters, and the words of
    the other lexicons (a word of a condition name is never taken for a misspelt drug)."""
    by_head: dict[str, list[str]] = {}
    for k, ts in load_lexicons()["drugs"].terms.items():
        # substances only: a brand is written as on the box, a substance is spelt from memory
        if " " in k or len(k) < FUZZY_DRUG_MIN or not k.isalpha() or any(t.strict or t.upper or t.kind != "substance" for t in ts):
            continue
        by_head.setdefault(k[:2], []).append(k)
    words = {w for k in load_lexicons()["conditions"].terms for w in k.split(" ")}
    # a word of a longer drug name ("benzathine" of benzathine benzylpénicilline) is a known word, not a slip
    words |= {w for k in load_lexicons()["drugs"].terms if " " in k for w in k.split(" ")}
    words |= {w for k in load_drug_classes().terms for w in k.split(" ")}
    return {h: tuple(v) for h, v in by_head.items()}, frozenset(words)


@functools.lru_cache(maxsize=65536)
def fuzzy_drug(token: str) -> tuple[str, float] | None:
    """The drug name a misspelt word stands for ("glyclazide" -> gliclazide, "amoxilline" -> amoxicilline), with
    its similarity in [0, 1], or None.

    Guards: words of 7+ letters only, same first two letters, at most 2 letters fewer or 1 more, not a word of the condition
    or class lexicons, and never when two names of different substances are about as close (prednisone /
    prednisolone): a misspelling between two real drugs cannot be resolved."""
    from rapidfuzz import fuzz, process

    index, words = _fuzzy_drug_index()
    if token in words:
        return None
    # a slip drops letters more often than it adds them; a longer word is another word ("phosphatase")
    pool = [k for k in index.get(token[:2], ()) if -2 <= len(token) - len(k) <= 1]
    if not pool:
        return None
    # long names bear two slips ("ethombitol" for éthambutol); shorter ones one
    cutoff = FUZZY_DRUG_CUTOFF - 5 if len(token) >= 10 else FUZZY_DRUG_CUTOFF
    best = process.extract(token, pool, scorer=fuzz.ratio, score_cutoff=cutoff, limit=5)
    if not best:
        return None
    drugs = load_lexicons()["drugs"].terms
    key, score = best[0][0], best[0][1]
    label = drugs[key][0].label
    if any(drugs[k][0].label != label and s >= score - 6 for k, s, _ in best[1:]):
        return None
    if _has_close_neighbour(key):
        return None
    return key, score / 100


@functools.lru_cache(maxsize=4096)
def _has_close_neighbour(key: str) -> bool:
    """Another substance's name within one or two letters of this one (prednisone / prednisolone)."""
    from rapidfuzz import fuzz, process

    index, _ = _fuzzy_drug_index()
    drugs = load_lexicons()["drugs"].terms
    label = drugs[key][0].label
    pool = [k for k in index.get(key[:2], ()) if k != key and drugs[k][0].label != label]
    return bool(process.extractOne(key, pool, scorer=fuzz.ratio, score_cutoff=88)) if pool else False
