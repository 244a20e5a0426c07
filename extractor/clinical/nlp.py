"""The EDS-NLP pipeline, built once per process (lazily), with cue lists extended from `rules/cues.toml`.

Only the qualifiers run here (normalizer, sentences, negation, hypothesis, family): the spans themselves are
found by our lexicon matcher (`extractor.clinical.lexicon`) and put in the doc's span group "synth" before the
qualifiers run, so offsets remain those of the page text (the doc is made with `nlp.make_doc(page.text)`).
"""
from __future__ import annotations

import functools
import re
import sys
import threading
import time
import types

from extractor.clinical.lexicon import join_wrapped, load_cues

SPAN_GROUP = "synth"
_LOCK = threading.Lock()
LOAD_SECONDS: float | None = None


FRENCH_EXCEPTIONS_MODULE = "spacy.lang.fr.tokenizer_exceptions"


def skip_unused_french_exceptions() -> bool:
    """Start-up of a process of ours: let spaCy's French language load without its tokenizer
    exceptions. Returns whether it was done (not when something already imported them).

    Importing them takes ~1.3-2.8 s of the 3-4 s the pipeline takes to load (measured with
    `python -X importtime`), and EDS-NLP never uses them: its "eds" language sets
    `tokenizer_exceptions = {}` and tokenizes with its own EDSTokenizer. An empty module stands in.
    Only for processes that load nothing else of spaCy's French (our workers): a `spacy.blank("fr")`
    made later in the same process would lack its exceptions. tests/test_nlp.py checks that the
    pipeline's tokens and our mentions are the same either way.
    """
    if FRENCH_EXCEPTIONS_MODULE in sys.modules or "spacy.lang.fr" in sys.modules:
        return False
    stub = types.ModuleType(FRENCH_EXCEPTIONS_MODULE)
    stub.TOKENIZER_EXCEPTIONS = {}
    stub.TOKEN_MATCH = None
    sys.modules[FRENCH_EXCEPTIONS_MODULE] = stub
    return True


def _merge(default: list[str], extra: list[str]) -> list[str]:
    seen, out = set(), []
    for t in [*default, *extra]:
        if t not in seen:
            seen.add(t)
            out.append(t)
    return out


@functools.cache
def _build():
    global LOAD_SECONDS
    t0 = time.perf_counter()
    import edsnlp
    from edsnlp.pipes.qualifiers.family import patterns as fam_p
    from edsnlp.pipes.qualifiers.hypothesis import patterns as hyp_p
    from edsnlp.pipes.qualifiers.negation import patterns as neg_p

    cues = load_cues()
    getter = {SPAN_GROUP: True}
    nlp = edsnlp.blank("eds")
    nlp.add_pipe("eds.normalizer")
    nlp.add_pipe("eds.sentences")
    neg = cues.get("negation", {})
    nlp.add_pipe("eds.negation", config=dict(
        span_getter=getter,
        preceding=_merge(neg_p.preceding, neg.get("preceding", [])),
        following=_merge(neg_p.following, neg.get("following", [])),
        pseudo=_merge(neg_p.pseudo, neg.get("pseudo", [])),
    ))
    hyp = cues.get("hypothesis", {})
    nlp.add_pipe("eds.hypothesis", config=dict(
        span_getter=getter,
        preceding=_merge(hyp_p.preceding, hyp.get("preceding", [])),
        following=_merge(hyp_p.following, hyp.get("following", [])),
        verbs_hyp=_merge(hyp_p.verbs_hyp, hyp.get("verbs", [])),
    ))
    fam = cues.get("family", {})
    nlp.add_pipe("eds.family", config=dict(
        span_getter=getter, family=_merge(fam_p.family, fam.get("members", [])), use_sections=False,
    ))
    LOAD_SECONDS = time.perf_counter() - t0
    return nlp


def get_nlp():
    """The qualifier pipeline, built on first use (~1.7 s in our workers, ~3 s with the French exceptions)
    and shared by the process."""
    with _LOCK:
        return _build()


def _split_on_newlines(doc) -> None:
    # Letters are lists: a cue on one line ("- Suspicion de BPCO") must not reach the item above it.
    # Wrapped prose was already joined by `join_wrapped`, so every line break left ends a sentence.
    for tok in doc[1:]:
        prev = doc[tok.i - 1]
        if not tok.is_space and ("\n" in prev.text or "\n" in prev.whitespace_):
            tok.is_sent_start = True


_POSOLOGY_TRIPLET = re.compile(r"\b\d+(?:[.,]\d+)?(?:\s*-\s*\d+(?:[.,]\d+)?){2,3}\b")


def _mask_posology(text: str) -> str:
    """The text the qualifiers see: wrapped prose joined ("Dyslipidémie à\néliminer" is one cue), dosing patterns ("1-0-1", ": 0-0-1") masked with letters of the
    same length, so EDS-NLP's ": 0" cue ("Allergies : 0") does not read a dose as a negation.
    Offsets are unchanged: the mask keeps every character position."""
    return _POSOLOGY_TRIPLET.sub(lambda m: "x" * len(m.group()), join_wrapped(text))


def qualify(text: str, spans: list[tuple[int, int]]) -> list[tuple[bool, bool, bool]]:
    """(negated, hypothetical, family) for each character span of `text`, by EDS-NLP's qualifiers.

    Spans that do not align on tokens are expanded to the enclosing tokens.
    """
    if not spans:
        return []
    nlp = get_nlp()
    doc = nlp.make_doc(_mask_posology(text))
    ents = []
    for s, e in spans:
        span = doc.char_span(s, e, alignment_mode="expand")
        ents.append(span)
    # The qualifiers expect spans in text order.
    doc.spans[SPAN_GROUP] = sorted((sp for sp in ents if sp is not None), key=lambda sp: (sp.start, sp.end))
    for name, proc in nlp.pipeline:
        doc = proc(doc)
        if name.endswith("sentences"):
            _split_on_newlines(doc)
    out = []
    for sp in ents:
        if sp is None:
            out.append((False, False, False))
        else:
            out.append((bool(sp._.negation), bool(sp._.hypothesis), bool(sp._.family)))
    return out
