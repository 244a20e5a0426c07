"""The review web application (`synthese review ROOT`): Starlette + Jinja2, served by uvicorn on 127.0.0.1.

Every request must carry the session's token (`?t=`, printed in the URL at start): 403 otherwise.
Links and forms carry it, so the pages work without cookies and without JavaScript; a small script
(static/review.js) adds the single-letter keys. Every asset is in this package: the pages load
nothing from elsewhere. Responses say `no-store` (health data) and `no-referrer` (the token is in URLs).

Decisions are POSTed forms naming the version of synthese.json the page showed (its sha256): a
decision on another version gets 409 and the page rebuilt from the new content, with a message.
"""
from __future__ import annotations

import contextlib
import secrets
from pathlib import Path
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from extractor.config import Settings
from extractor.review import labels as L
from extractor.review.decisions import BadDecision, Decision, Reviews, StaleVersion
from extractor.review.dossiers import FILTERS, dossier_view, find_dossiers, load, order_queue, summary
from extractor.review.pages import FULL_WIDTH, THUMB_WIDTH, PageImages, PageUnavailable
from extractor.review.render import STATIC_DIR, environment

HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; script-src 'self'; style-src 'self'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
}
STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".png": "image/png"}


class TokenGate:
    """ASGI middleware: 403 for any request without the session token (compared in constant time)."""

    def __init__(self, app, token: str):
        self.app = app
        self.token = token.encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            from urllib.parse import parse_qs

            given = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("t", [""])[0]
            if not secrets.compare_digest(given.encode(), self.token):
                response = PlainTextResponse("403 : jeton de session absent ou invalide. Ouvrez l'adresse affichée "
                                             "par `synthese review` (elle contient ?t=...).", status_code=403,
                                             headers=HEADERS)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(root: Path, token: str, reviewer: str | None = None, ledger: Path | None = None,
               settings: Settings | None = None):
    """The review application for the dossiers under `root`, guarded by `token`."""
    root = Path(root)
    settings = settings or Settings()
    reviews = Reviews(ledger or settings.ledger_path(root))
    images = PageImages(settings)
    env = environment()

    def dossiers() -> dict[str, Path]:
        return find_dossiers(root)

    def who(request: Request) -> str:
        return reviewer or (request.query_params.get("r") or "").strip()[:80]

    def url(request: Request, path: str, **params) -> str:
        query = {"t": token}
        if not reviewer and who(request):
            query["r"] = who(request)
        query.update({k: v for k, v in params.items() if v is not None})
        return path + "?" + urlencode(query)

    def page(request: Request, template: str, status: int = 200, **context) -> HTMLResponse:
        context.update(u=lambda path, **p: url(request, path, **p), reviewer=who(request),
                       fixed_reviewer=reviewer is not None, static=False, L=L, token=token,
                       ledger_message=reviews.ledger_message)
        return HTMLResponse(env.get_template(template).render(**context), status_code=status, headers=HEADERS)

    async def queue(request: Request):
        f = request.query_params.get("f", "")
        if f not in FILTERS:
            f = ""
        found = dossiers()
        rows, damaged = [], []
        for key, folder in found.items():
            try:
                rows.append(summary(load(key, folder)))
            except Exception:  # noqa: BLE001 - a damaged file is listed, never a crash of the queue
                damaged.append(key)
        rows = order_queue(rows)
        progress = {
            "dossiers": len(rows), "validated": sum(r["state"] == "validated" for r in rows),
            "entries": sum(r["entries"] for r in rows), "reviewed": sum(r["reviewed"] for r in rows),
        }
        shown = [r for r in rows if FILTERS[f][1](r)]
        return page(request, "queue.html", rows=shown, filters=FILTERS, f=f, progress=progress, damaged=damaged,
                    root=root)

    def _folder(key: str) -> Path | None:
        return dossiers().get(key)

    def _dossier_page(request: Request, key: str, folder: Path, status: int = 200, error: str | None = None,
                      notice: str | None = None, focus: str | None = None):
        view = dossier_view(load(key, folder))
        keys = list(dossiers())
        i = keys.index(key) if key in keys else -1
        return page(request, "dossier.html", status, d=view, error=error, notice=notice,
                    focus=focus or request.query_params.get("focus"), can_undo=reviews.can_undo(key),
                    next_key=keys[i + 1] if 0 <= i < len(keys) - 1 else None)

    async def dossier(request: Request):
        key = request.path_params["key"]
        folder = _folder(key)
        if folder is None:
            return PlainTextResponse("dossier inconnu", status_code=404, headers=HEADERS)
        return _dossier_page(request, key, folder, notice=request.query_params.get("done"))

    def _next_pending(key: str, folder: Path, after: str | None) -> str | None:
        view = dossier_view(load(key, folder))
        ids = [e["id"] for b in view["blocks"] for e in b["entries"]]
        pending = {e["id"] for b in view["blocks"] for e in b["entries"] if e["pending"]}
        start = ids.index(after) + 1 if after in ids else 0
        for eid in ids[start:] + ids[:start]:
            if eid in pending:
                return eid
        return after

    async def decide(request: Request):
        key = request.path_params["key"]
        folder = _folder(key)
        if folder is None:
            return PlainTextResponse("dossier inconnu", status_code=404, headers=HEADERS)
        form = await request.form()
        action = str(form.get("action", ""))
        decision = Decision(
            action=action, attr=str(form.get("attr") or "") or None, entry_id=str(form.get("entry") or "") or None,
            fields={k[2:]: str(v) for k, v in form.items() if k.startswith("f_")},
            block_status=str(form.get("block_status") or "") or None,
        )
        try:
            if action == "undo":
                applied = reviews.undo(key, folder, str(form.get("etag", "")), who(request))
                notice = "Dernière décision annulée."
            else:
                applied = reviews.decide(key, folder, str(form.get("etag", "")), decision, who(request))
                notice = NOTICES.get(action, "Décision enregistrée.")
        except StaleVersion:
            return _dossier_page(
                request, key, folder, status=409,
                error="Ce dossier a changé depuis l'affichage de la page (un nouveau run ou un autre relecteur). "
                      "Votre décision n'a PAS été appliquée : la page montre maintenant la nouvelle version, "
                      "relisez-la puis décidez à nouveau.")
        except BadDecision as e:
            return _dossier_page(request, key, folder, status=400, error=str(e), focus=decision.entry_id)
        focus = _next_pending(key, folder, applied.entry_id) if action in ("validate", "reject", "correct") \
            else applied.entry_id
        target = url(request, f"/d/{key}", focus=focus, done=notice) + (f"#e-{focus}" if focus else "")
        return RedirectResponse(target, status_code=303, headers=HEADERS)

    async def image(request: Request):
        key = request.path_params["key"]
        folder = _folder(key)
        if folder is None:
            return PlainTextResponse("dossier inconnu", status_code=404, headers=HEADERS)
        q = request.query_params
        s = load(key, folder).synthesis
        block, ref = q.get("b", ""), q.get("e", "")
        try:
            if block == "conflicts":
                sources = s.conflicts[_index(ref, len(s.conflicts))].sources
            elif block in L.BLOCKS:
                sources = next(e for e in getattr(s, block) if e.id == ref).sources
            else:
                raise ValueError(block)
            source = sources[_index(q.get("s", "0"), len(sources))]
            doc = next(d for d in s.documents if d.path == source.document)
        except (StopIteration, IndexError, ValueError):
            return PlainTextResponse("source inconnue", status_code=404, headers=HEADERS)
        full = q.get("full") == "1"
        try:
            data = images.jpeg(folder, doc, source, FULL_WIDTH if full else THUMB_WIDTH, crop=not full)
        except PageUnavailable as e:
            return PlainTextResponse(f"page indisponible : {e}", status_code=404, headers=HEADERS)
        return Response(data, media_type="image/jpeg", headers=HEADERS)

    async def static(request: Request):
        name = request.path_params["name"]
        path = STATIC_DIR / name
        if "/" in name or name.startswith(".") or not path.is_file() or path.suffix not in STATIC_TYPES:
            return PlainTextResponse("introuvable", status_code=404, headers=HEADERS)
        return Response(path.read_bytes(), media_type=STATIC_TYPES[path.suffix], headers=HEADERS)

    routes = [
        Route("/", queue),
        Route("/d/{key}", dossier),
        Route("/d/{key}/decide", decide, methods=["POST"]),
        Route("/d/{key}/img", image),
        Route("/static/{name}", static),
    ]
    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        reviews.flush()  # audit rows a busy ledger held back

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.reviews = reviews
    return TokenGate(app, token)


def _index(text: str, size: int) -> int:
    """A list index from a query parameter, in range (no negative index from the outside)."""
    i = int(text)
    if not 0 <= i < size:
        raise IndexError(i)
    return i


NOTICES = {
    "validate": "Entrée validée.", "correct": "Correction enregistrée.", "reject": "Entrée rejetée.",
    "add": "Entrée ajoutée.", "block_status": "Statut du bloc enregistré.", "validate_dossier": "Dossier validé.",
}


def serve(root: Path, host: str = "127.0.0.1", port: int = 8765, reviewer: str | None = None,
          ledger: Path | None = None, print_url=print) -> None:
    """Start the server (blocking) and print the URL with its token."""
    import uvicorn

    token = secrets.token_urlsafe(24)
    app = create_app(root, token, reviewer=reviewer, ledger=ledger)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    shown = "127.0.0.1" if host in ("127.0.0.1", "localhost") else host
    print_url(f"http://{shown}:{port}/?t={token}")
    server.run()
