"""The bundled sample site, served on 127.0.0.1 for `linkjuice demo` and for tests.

The site is a folder of static files (src/linkjuice/demo_site); the server maps URLs to files with
the same rules as local mode (LocalFetcher), including its `_redirects` file, and rewrites the
placeholder host in robots.txt, sitemaps and pages to the address it listens on.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from pathlib import Path

from .crawl.fetch import LocalFetcher

__all__ = ["DEMO_HOST", "demo_site_path", "serve_folder"]

DEMO_HOST = "http://demo.linkjuice.local"


def demo_site_path() -> Path:
    return Path(str(files("linkjuice") / "demo_site"))


class _Handler(BaseHTTPRequestHandler):
    fetcher: LocalFetcher
    origin: str
    server_version = "linkjuice-demo"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        result = self.fetcher.fetch_sync(f"{self.origin}{self.path}")
        body = result.body
        if result.content_type and (result.content_type.startswith("text/") or "xml" in result.content_type):
            body = body.replace(DEMO_HOST.encode(), self.origin.encode())
        if result.status == 404:
            not_found = self.fetcher.root / "404.html"
            body = not_found.read_bytes() if not_found.is_file() else b"Not found"
            result.content_type = "text/html; charset=utf-8"
        self.send_response(result.status or 500)
        if result.location:
            self.send_header("Location", result.location)
        self.send_header("Content-Type", result.content_type or "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - silence access logs
        return


@contextmanager
def serve_folder(root: str | Path | None = None, *, port: int = 0) -> Iterator[str]:
    """Serve a static site folder (default: the demo site) on 127.0.0.1; yields its origin URL."""
    folder = Path(root) if root is not None else demo_site_path()
    server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
    origin = f"http://127.0.0.1:{server.server_address[1]}"
    handler = type("Handler", (_Handler,), {"fetcher": LocalFetcher(folder, origin + "/"), "origin": origin})
    server.RequestHandlerClass = handler
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield origin
    finally:
        server.shutdown()
        server.server_close()
