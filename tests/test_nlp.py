"""The EDS-NLP pipeline loads the same with or without spaCy's French tokenizer exceptions
(nlp.skip_unused_french_exceptions, which our workers use to start ~3 s sooner)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# In a fresh interpreter: tokens of the qualifier pipeline and every mention (span, label, qualifiers)
# of every page of the shipped samples' gold texts, as JSON.
PROBE = r"""
import json, sys
from pathlib import Path
if sys.argv[1] == "skip":
    from extractor.clinical.nlp import skip_unused_french_exceptions
    assert skip_unused_french_exceptions()
from extractor.clinical.mentions import extract_mentions
from extractor.clinical.nlp import get_nlp
from models.document import DocumentRecord, Page
nlp = get_nlp()
exc = sys.modules["spacy.lang.fr.tokenizer_exceptions"]
out = {"exceptions": len(exc.TOKENIZER_EXCEPTIONS), "tokens": [], "mentions": []}
for gold in sorted(Path("samples/dossiers").glob("*.gold.json")):
    for doc in json.loads(gold.read_text())["documents"]:
        pages = [Page(number=p["number"], text=p["text"], source="text_layer") for p in doc["pages"] if p.get("text")]
        for p in pages:
            out["tokens"].append([(t.idx, t.text) for t in nlp.make_doc(p.text)])
        record = DocumentRecord(path=doc["path"], sha256="", size=0, pages=pages)
        out["mentions"] += [[m.page, m.start, m.end, m.label, m.kind, m.negated, m.hypothetical, m.family, m.status]
                            for m in extract_mentions(record)]
print(json.dumps(out))
"""


def probe(mode: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", PROBE, mode], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.splitlines()[-1])


def test_same_tokens_and_mentions_without_the_french_exceptions():
    full, skipped = probe("full"), probe("skip")
    assert full["exceptions"] > 0 and skipped["exceptions"] == 0  # the two runs did differ
    assert len(full["mentions"]) > 50 and sum(len(t) for t in full["tokens"]) > 1000
    assert skipped["tokens"] == full["tokens"]
    assert skipped["mentions"] == full["mentions"]
