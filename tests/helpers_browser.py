"""A real headless browser for the tests of web pages: Playwright for Python driving Debian's chromium
(`/usr/bin/chromium`, installed by install.sh; Playwright never downloads a browser here).

Every page opened through `browser_page` runs with the network blocked: a request to anything but
127.0.0.1 / localhost is aborted and recorded in `page.outside_requests`, so a test asserts the page
loaded nothing from elsewhere (no CDN, no font, no script).
"""
from __future__ import annotations

import shutil
from contextlib import contextmanager
from urllib.parse import urlsplit

from playwright import sync_api

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Without the background-networking flags chromium keeps trying Google's hosts on a closed network.
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-default-apps"]
LOCAL_HOSTS = {"127.0.0.1", "localhost"}


def is_local(url: str) -> bool:
    """True for the URLs a page of ours may load: loopback, inline data and blobs."""
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about"):
        return True
    return parts.hostname in LOCAL_HOSTS


@contextmanager
def browser_page(**context_options):
    """Yields a Playwright page (with `.outside_requests`, a list of the URLs that were blocked)."""
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            context = browser.new_context(**context_options)
            blocked: list[str] = []

            def guard(route):
                if is_local(route.request.url):
                    route.continue_()
                else:
                    blocked.append(route.request.url)
                    route.abort()

            context.route("**/*", guard)
            page = context.new_page()
            page.outside_requests = blocked
            yield page
        finally:
            browser.close()
