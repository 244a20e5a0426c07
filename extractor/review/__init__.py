"""The doctors' review: a local web page to validate, correct or reject each proposed entry of a
dossier's synthese.json, with the evidence (snippet, page image with the mention's box) beside it.

- `dossiers.py`: finding the reviewable dossiers under ROOT, loading one with its version (sha256),
  what the queue and the dossier page show (states, order, labels).
- `decisions.py`: applying a decision to synthese.json (atomic, on the version the page was built
  from only), undo, and the audit trail in the ledger's `reviews` table.
- `pages.py`: page images with the mention's boxes drawn, rendered on demand, cached in memory only.
- `app.py`: the Starlette application (`synthese review ROOT`): 127.0.0.1, a token on every request.
- `render.py`: the same dossier view as a static, self-contained `synthese.html` (`synthese render ROOT`).

Nothing here is imported by the pipeline: a run never pays for the web stack.
"""
