"""A real HTTP server on 127.0.0.1 serving a hand-made site, for hermetic end-to-end tests."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Route:
    status: int = 200
    body: bytes | str = b""
    content_type: str = "text/html; charset=utf-8"
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    gzip: bool = False


def page(title: str, body: str, *, head: str = "", nav: str = "") -> Route:
    """An HTML page with an optional <nav> and <head> extras."""
    nav_html = f"<nav>{nav}</nav>" if nav else ""
    return Route(body=f"<!doctype html><html lang='en'><head><title>{title}</title>{head}</head>"
                      f"<body><header><a href='/'>Home</a></header>{nav_html}<main>{body}</main></body></html>")


def redirect(target: str, status: int = 301) -> Route:
    return Route(status=status, headers={"Location": target}, body=b"")


class SiteServer:
    """Routes are looked up by request path (with query). Unknown paths get 404."""

    def __init__(self, routes: Mapping[str, Route | Callable[[str], Route]]) -> None:
        self.routes = dict(routes)
        self.requests: list[str] = []
        self.user_agents: list[str] = []
        self.request_times: list[float] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802
                site.requests.append(self.path)
                site.user_agents.append(self.headers.get("User-Agent", ""))
                site.request_times.append(time.monotonic())
                route = site.routes.get(self.path)
                if callable(route):
                    route = route(self.path)
                if route is None:
                    route = Route(status=404, body=b"<html><title>Not found</title></html>")
                if route.delay:
                    time.sleep(route.delay)
                body = route.body.encode() if isinstance(route.body, str) else route.body
                if route.gzip:
                    body = gzip.compress(body)
                self.send_response(route.status)
                self.send_header("Content-Type", route.content_type)
                if route.gzip:
                    self.send_header("Content-Encoding", "gzip")
                for k, v in route.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"

    def url(self, path: str) -> str:
        return self.origin + path


@contextmanager
def serve(routes: Mapping[str, Route | Callable[[str], Route]]) -> Iterator[SiteServer]:
    site = SiteServer(routes)
    thread = threading.Thread(target=site.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield site
    finally:
        site.server.shutdown()
        site.server.server_close()
