"""The doctors' review page (issue 12), through a real server and a real browser.

One `synthese run` on a copy of three shipped sample dossiers (P0001: text PDFs with conflicts;
P0004: a scanned hospital report beside text PDFs; P0006: two convocations, nothing medical), then
`synthese review`'s application served by uvicorn on a free 127.0.0.1 port, driven by Playwright
with Debian's chromium, every non-loopback request blocked and recorded (helpers_browser).
"""
from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import numpy as np
import pytest
import uvicorn
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))

from helpers_browser import browser_page, is_local  # noqa: E402
from helpers_docs import text_pdf  # noqa: E402

from extractor.review.app import create_app  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples" / "dossiers"
TOKEN = "test-token-not-secret"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "cli.py", *args], cwd=REPO, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("review") / "dossiers"
    for did in ("P0001", "P0004", "P0006"):
        shutil.copytree(SAMPLES / did, root / did)
    proc = run_cli("run", str(root), "--workers", "1", "--no-progress")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return root


@pytest.fixture(scope="module")
def server(root):
    app = create_app(root, TOKEN)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    while not srv.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join()


def load(root: Path, did: str) -> dict:
    return json.loads((root / did / "synthese.json").read_text())


def entry(data: dict, block: str, name: str) -> dict:
    key = {"history": "label", "allergies": "substance", "treatments": "drug"}[block]
    found = [e for e in data[block] if e[key] == name]
    assert len(found) == 1, [e[key] for e in data[block]]
    return found[0]


def reviews(root: Path) -> list[dict]:
    con = duckdb.connect(str(root / ".synthese" / "ledger.duckdb"), read_only=True)
    try:
        cur = con.execute("SELECT * FROM reviews ORDER BY reviewed_at")
        cols = [c[0] for c in cur.description]
        return [dict(zip(cols, row)) for row in cur.fetchall()]
    finally:
        con.close()


def highlighted_pixels(jpeg: bytes) -> int:
    """Pixels of the highlight colour (yellow fill) in a page image."""
    rgb = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"), dtype=np.int16)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return int(((r > 200) & (g > 150) & (g < 230) & (b < 150)).sum())


def test_requests_without_the_token_are_refused(server):
    with browser_page() as page:
        for path in ("/", "/d/P0004", "/static/review.js", "/d/P0004/img?b=history&e=x&s=0"):
            assert page.request.get(server + path).status == 403
            assert page.request.get(server + path + ("&" if "?" in path else "?") + "t=wrong").status == 403
        assert page.request.post(server + "/d/P0004/decide", form={"action": "validate_dossier"}).status == 403
        assert page.request.get(server + f"/?t={TOKEN}").status == 200


def test_keystrokes_and_page_loads_to_validate_a_typical_dossier(root, server):
    """The ergonomics figure of the README: from the queue to a validated P0001 (10 entries, 2 conflicts)
    with the keyboard only, each entry looked at and validated: o, then v per entry, then V."""
    entries = sum(len(load(root, "P0001")[b]) for b in ("history", "allergies", "treatments"))
    with browser_page() as page:
        loads = []
        page.on("load", lambda p: loads.append(p.url))
        page.goto(f"{server}/?t={TOKEN}&r=Dr%20Mesure")
        keys = 0
        assert page.locator("tr.row.current td:first-child").inner_text() == "P0001"  # conflicts first
        with page.expect_navigation():
            page.keyboard.press("o")
        keys += 1
        while page.locator("article.entry.pending").count():
            with page.expect_navigation():
                page.keyboard.press("v")
            keys += 1
        with page.expect_navigation():
            page.keyboard.press("V")
        keys += 1
        assert page.outside_requests == []
    data = load(root, "P0001")
    assert data["status"] == "validated" and data["review"]["by"] == "Dr Mesure"
    assert all(e["review"]["status"] == "validated" for b in ("history", "allergies", "treatments") for e in data[b])
    assert keys == entries + 2 and len(loads) == entries + 3
    print(f"\nP0001: {entries} entries, {keys} keystrokes, {len(loads)} page loads (queue included)")


def test_review_a_dossier_end_to_end(root, server):
    ocr_entry = entry(load(root, "P0004"), "treatments", "ézétimibe")
    assert ocr_entry["sources"][0]["ocr"] and ocr_entry["sources"][0]["boxes"]
    with browser_page() as page:
        # The queue, with the token; the reviewer gives a name once.
        page.goto(f"{server}/?t={TOKEN}")
        assert "Relecture des synthèses" in page.content()
        rows = page.locator("tr.row td:first-child").all_inner_texts()
        assert set(rows) == {"P0001", "P0004", "P0006"}
        # Still to review first, a finding from a scan before a dossier with nothing; validated last.
        assert rows == ["P0004", "P0006", "P0001"]
        page.fill("input[name=r]", "Dr Test")
        page.click("text=Enregistrer le nom")
        page.click("a:text-is('P0004')")
        assert page.url.split("?")[0].endswith("/d/P0004")

        # The scanned report's page image, with the finding's box highlighted.
        thumb = page.locator(f"#e-{ocr_entry['id']} img.thumb").first
        thumb.scroll_into_view_if_needed()
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=thumb.element_handle())
        src = thumb.get_attribute("src")
        assert "b=treatments" in src and "s=0" in src
        image = page.request.get(server + src)
        assert image.status == 200 and image.headers["content-type"] == "image/jpeg"
        assert highlighted_pixels(image.body()) > 50
        full = page.request.get(server + thumb.locator("xpath=..").get_attribute("href"))
        assert Image.open(io.BytesIO(full.body())).width > Image.open(io.BytesIO(image.body())).width

        # Validate the focused entry (the first to review) with the keyboard.
        first = page.locator("article.entry.current")
        first_id = first.get_attribute("data-id")
        page.keyboard.press("v")
        page.wait_for_selector(f"#e-{first_id}.state-validated")
        assert "Entrée validée." in page.content()
        assert page.locator("article.entry.current").get_attribute("data-id") != first_id  # on to the next
        if os.environ.get("SYNTHESE_SCREENSHOT"):  # the README's picture: SYNTHESE_SCREENSHOT=docs/review.png
            page.set_viewport_size({"width": 1200, "height": 1300})
            page.evaluate("window.scrollTo(0, 0)")
            page.screenshot(path=os.environ["SYNTHESE_SCREENSHOT"])

        # Correct a dose: c opens the form of the focused entry; j/k move the focus.
        losartan = entry(load(root, "P0004"), "treatments", "losartan")
        while page.locator("article.entry.current").get_attribute("data-id") != losartan["id"]:
            page.keyboard.press("j")
        page.keyboard.press("c")
        drug = page.locator(f"#e-{losartan['id']} input[name=f_drug]")
        assert drug.evaluate("el => el === document.activeElement")  # the form's first field
        page.keyboard.press("r")  # typing in a field: the key is a letter, not a decision
        assert drug.input_value() == "losartanr"
        drug.fill("losartan")
        dose = page.locator(f"#e-{losartan['id']} input[name=f_dose]")
        dose.fill("50 mg")
        dose.press("Enter")
        page.wait_for_selector(f"#e-{losartan['id']}.state-edited")

        # Reject an entry.
        knee = entry(load(root, "P0004"), "history", "prothèse totale de genou")
        page.click(f"#e-{knee['id']} form.reject button")
        page.wait_for_selector(f"#e-{knee['id']}.state-rejected")

        # Add a missed allergy.
        page.click("#block-allergy details.add summary")
        page.fill("#block-allergy details.add input[name=f_substance]", "pénicilline")
        page.fill("#block-allergy details.add input[name=f_reaction]", "urticaire")
        page.click("#block-allergy details.add button")
        page.wait_for_selector("#block-allergy article.state-added:has-text('pénicilline')")

        # Mark a block none_known on the dossier with no finding, then undo and mark it again.
        page.goto(f"{server}/d/P0006?t={TOKEN}&r=Dr%20Test")
        assert "pas d'information" in page.locator("#block-allergy h2").inner_text()
        page.click("#block-allergy button:has-text('aucune allergie connue')")
        assert "aucune allergie connue (déclarée)" in page.locator("#block-allergy h2").inner_text()
        page.keyboard.press("u")
        page.wait_for_selector("text=Dernière décision annulée.")
        assert "pas d'information" in page.locator("#block-allergy h2").inner_text()
        assert load(root, "P0006")["allergy_status"] == "unknown" and not load(root, "P0006")["block_reviews"]
        page.click("#block-allergy button:has-text('aucune allergie connue')")

        # Reload: everything is there, read back from synthese.json.
        page.goto(f"{server}/d/P0004?t={TOKEN}")
        assert page.locator(f"#e-{first_id}").get_attribute("class").count("state-validated") == 1
        assert "50 mg" in page.locator(f"#e-{losartan['id']} .field-dose").inner_text()
        assert "dose = 100 mg" in page.locator(f"#e-{losartan['id']} .reviewed-by").inner_text()
        assert "state-rejected" in page.locator(f"#e-{knee['id']}").get_attribute("class")
        page.goto(f"{server}/d/P0006?t={TOKEN}")
        assert "aucune allergie connue (déclarée)" in page.locator("#block-allergy h2").inner_text()
        assert page.outside_requests == []

    data = load(root, "P0004")
    assert entry(data, "treatments", "losartan")["dose"] == "50 mg"
    assert entry(data, "treatments", "losartan")["review"]["original"] == {"dose": "100 mg"}
    assert entry(data, "treatments", "losartan")["review"]["by"] == "Dr Test"
    assert entry(data, "history", "prothèse totale de genou")["review"]["status"] == "rejected"
    added = entry(data, "allergies", "pénicilline")
    assert added["review"]["status"] == "added" and added["reaction"] == "urticaire" and added["sources"] == []
    assert load(root, "P0006")["block_reviews"]["allergy"]["status"] == "none_known"

    audit = [r for r in reviews(root) if r["dossier_id"] in ("P0004", "P0006")]
    assert [r["action"] for r in audit] == ["validate", "correct", "reject", "add", "block_status", "undo",
                                           "block_status"]
    assert {r["reviewer"] for r in audit} == {"Dr Test"}
    correct = audit[1]
    assert json.loads(correct["before"])[f"entry:treatments:{losartan['id']}"]["dose"] == "100 mg"
    assert json.loads(correct["after"])[f"entry:treatments:{losartan['id']}"]["dose"] == "50 mg"
    assert all(r["run_id"] for r in audit)  # the run whose output was reviewed
    assert audit[-1]["sha256_before"] != audit[-1]["sha256_after"]

    # A following nightly run, after a new letter that names the rejected finding again and a new
    # convocation, keeps every decision.
    before = {did: load(root, did) for did in ("P0004", "P0006")}
    text_pdf(root / "P0004" / "courrier_nouveau.pdf", [[
        "Courrier du 2 février 2021", "Antécédents : prothèse totale de genou droite, embolie pulmonaire.",
        "Traitement : losartan 100 mg le matin."]])
    text_pdf(root / "P0006" / "convocation_nouvelle.pdf", [["Convocation du 3 mars 2021", "Merci de vous présenter à 9 h."]])
    proc = run_cli("run", str(root), "--workers", "1", "--no-progress")
    assert proc.returncode == 0, proc.stderr[-2000:]
    after = {did: load(root, did) for did in ("P0004", "P0006")}
    for block in ("history", "allergies", "treatments"):
        for e in before["P0004"][block]:
            if e["review"]:
                assert e in after["P0004"][block]
    assert "courrier_nouveau.pdf" in {d["path"] for d in after["P0004"]["documents"]}
    knee_ids = [e for e in after["P0004"]["history"] if "genou" in e["label"]]
    assert len(knee_ids) == 1 and knee_ids[0]["review"]["status"] == "rejected"  # not proposed again
    assert not [c for c in after["P0004"]["conflicts"] if c["entry"] == knee["id"]]
    # The corrected dose stands; the new letter's 100 mg is reported against it, for the reviewer.
    assert entry(after["P0004"], "treatments", "losartan")["dose"] == "50 mg"
    assert [c["entry"] for c in after["P0004"]["conflicts"] if c["kind"] == "validated_disagreement"] == [losartan["id"]]
    assert after["P0004"]["history_status"] == "known"
    assert after["P0006"]["allergy_status"] == "none_known"
    assert after["P0006"]["block_reviews"] == before["P0006"]["block_reviews"]


def test_a_decision_on_a_stale_version_is_refused(root, server):
    with browser_page() as first:
        # A second reviewer: another browser context (own cookies, own page), network blocked the same way.
        context = first.context.browser.new_context()
        blocked: list[str] = []
        context.route("**/*", lambda route: route.continue_() if is_local(route.request.url)
                      else (blocked.append(route.request.url), route.abort()))
        second = context.new_page()
        url = f"{server}/d/P0001?t={TOKEN}&r=Dr%20B"
        first.goto(url)
        second.goto(url)
        target = first.locator("article.entry").nth(0).get_attribute("data-id")
        before = load(root, "P0001")
        first.click(f"#e-{target} form.reject button")
        first.wait_for_selector(f"#e-{target}.state-rejected")
        validated = load(root, "P0001")
        # The second reviewer still has the old page: their decision is refused, nothing written.
        other = second.locator("article.entry").nth(1).get_attribute("data-id")
        response = None

        def remember(r):
            nonlocal response
            if "/decide" in r.url:
                response = r

        second.on("response", remember)
        second.click(f"#e-{other} form.reject button")
        second.wait_for_selector("#error")
        assert response is not None and response.status == 409
        assert "n'a PAS été appliquée" in second.locator("#error").inner_text()
        assert load(root, "P0001") == validated != before
        # The page now shows the new version: the first reviewer's validation, and the form's new etag.
        assert "state-rejected" in second.locator(f"#e-{target}").get_attribute("class")
        second.click(f"#e-{other} form.reject button")
        second.wait_for_selector(f"#e-{other}.state-rejected")
        assert first.outside_requests == [] and blocked == []


def test_the_static_page_opens_offline_and_shows_the_same_entries(root, server):
    proc = run_cli("render", str(root))
    assert proc.returncode == 0, proc.stderr[-2000:]
    html_file = root / "P0004" / "synthese.html"
    data = load(root, "P0004")
    with browser_page() as page:
        page.goto(f"{server}/d/P0004?t={TOKEN}")
        served = page.locator("article.entry h3").all_inner_texts()
        served_states = page.locator("article.entry .state-badge").all_inner_texts()
    with browser_page(offline=True) as page:
        # The file's bytes alone, in a browser with no network at all (loopback included): any
        # resource it pointed to would fail or be recorded.
        page.set_content(html_file.read_text(), wait_until="load")
        labels = page.locator("article.entry h3").all_inner_texts()
        assert labels == served
        assert page.locator("article.entry .state-badge").all_inner_texts() == served_states
        assert len(labels) == sum(len(data[b]) for b in ("history", "allergies", "treatments"))
        assert page.locator("form").count() == 0
        # The scanned page band is embedded, with its box drawn.
        thumbs = page.locator("img.thumb")
        assert thumbs.count() > 0
        assert all(src.startswith("data:image/jpeg;base64,") for src in
                   thumbs.evaluate_all("imgs => imgs.map(i => i.getAttribute('src'))"))
        assert thumbs.first.evaluate("img => img.complete && img.naturalWidth > 0")
        assert page.outside_requests == []
    # The next run does not take synthese.html for a document.
    proc = run_cli("run", str(root), "--workers", "1", "--no-progress")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not [w for w in load(root, "P0004")["warnings"] if "synthese.html" in (w["document"] or "")]


def test_the_forms_work_without_javascript(root, server):
    with browser_page(java_script_enabled=False) as page:
        page.goto(f"{server}/d/P0006?t={TOKEN}&r=Dr%20Sans%20JS")
        page.click("#block-treatment button:has-text('pas d')")  # confirm: no information
        assert "Statut du bloc enregistré." in page.content()
        assert page.url.split("?")[0].endswith("/d/P0006")
        assert page.outside_requests == []
    data = load(root, "P0006")
    assert data["block_reviews"]["treatment"]["status"] == "unknown"
    assert data["block_reviews"]["treatment"]["by"] == "Dr Sans JS"


def test_a_busy_ledger_never_loses_the_decision(tmp_path):
    """duckdb allows one writer process: while another holds the ledger (a nightly run), a decision is
    written to synthese.json at once and its audit row waits, then reaches the ledger when it is free."""
    from extractor.review.decisions import Decision, Reviews
    from extractor.review.dossiers import load as load_dossier

    dossier = tmp_path / "D1"
    dossier.mkdir()
    (dossier / "synthese.json").write_text(json.dumps({
        "dossier_id": "D1", "generated_at": "2026-01-01T00:00:00Z", "extractor_version": "t",
        "allergies": [{"id": "a-1", "substance": "pénicilline", "confidence": 0.9}], "allergy_status": "known"}))
    ledger = tmp_path / ".synthese" / "ledger.duckdb"
    reviews_ = Reviews(ledger)  # creates the ledger and its reviews table
    holder = subprocess.Popen([sys.executable, "-c", (
        "import duckdb, sys; con = duckdb.connect(sys.argv[1]); print('held', flush=True); sys.stdin.read()"),
        str(ledger)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        etag = load_dossier("D1", dossier).etag
        reviews_.decide("D1", dossier, etag, Decision("validate", "allergies", "a-1"), "Dr Busy")
        assert load(tmp_path, "D1")["allergies"][0]["review"]["by"] == "Dr Busy"
        assert len(reviews_.pending) == 1 and "occupé" in reviews_.ledger_message
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    assert reviews_.flush() and reviews_.pending == [] and reviews_.ledger_message is None
    assert _review_rows(ledger) == [("Dr Busy", "D1", "a-1", "validate")]
    # A lost ledger rebuilt from the files gets the decision back in its audit trail.
    from extractor.batch.rebuild import rebuild_ledger

    assert rebuild_ledger(tmp_path, ledger) == 1
    assert _review_rows(ledger) == [("Dr Busy", "D1", "a-1", "validate")]


def _review_rows(ledger: Path) -> list[tuple]:
    """(reviewer, dossier, entry, action) of the ledger's audit trail."""
    con = duckdb.connect(str(ledger), read_only=True)
    try:
        return con.execute("SELECT reviewer, dossier_id, entry_id, action FROM reviews").fetchall()
    finally:
        con.close()
