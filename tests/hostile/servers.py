"""Misbehaving servers on 127.0.0.1 for the hostile-site tests.

`serve_raw` runs an asyncio server in a background thread: each request path is handed to a
coroutine that writes whatever bytes it likes (or none, forever). `serve_fn` is a plain HTTP
server whose routes are computed from the path, for URL spaces that never end.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ..sitekit import Route

Handler = Callable[[asyncio.StreamWriter, str], Awaitable[None]]

FOREVER = 3600.0  # longer than any test: a handler that sleeps this long never answers


def response_head(status: int = 200, headers: Mapping[str, str] | None = None, *, length: int | None = None,
                  content_type: str = "text/html; charset=utf-8") -> bytes:
    lines = [f"HTTP/1.1 {status} X", f"Content-Type: {content_type}", "Connection: close"]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def html(body: str | bytes, status: int = 200, headers: Mapping[str, str] | None = None,
         content_type: str = "text/html; charset=utf-8") -> Handler:
    """A handler answering one complete response."""
    data = body.encode() if isinstance(body, str) else body

    async def handler(writer: asyncio.StreamWriter, path: str) -> None:
        writer.write(response_head(status, headers, length=len(data), content_type=content_type) + data)
        await writer.drain()

    return handler


def raw(data: bytes) -> Handler:
    """A handler writing exactly these bytes (status line and headers included)."""

    async def handler(writer: asyncio.StreamWriter, path: str) -> None:
        writer.write(data)
        await writer.drain()

    return handler


class RawServer:
    def __init__(self, handlers: Mapping[str, Handler]) -> None:
        self.handlers = dict(handlers)
        self.requests: list[str] = []
        self.request_heads: list[bytes] = []
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.origin = ""

    def url(self, path: str) -> str:
        return self.origin + path

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.request_heads.append(head)
            parts = head.split(b"\r\n", 1)[0].split(b" ")
            path = parts[1].decode("latin-1") if len(parts) > 1 else "/"
            self.requests.append(path)
            handler = self.handlers.get(path) or self.handlers.get(path.split("?", 1)[0])
            if handler is None:
                handler = html("<html><title>Not found</title></html>", status=404)
            await handler(writer, path)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.origin = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        self._server = server
        self._ready.set()
        self.loop.run_forever()

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)

    def stop(self) -> None:
        async def shutdown() -> None:
            self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@contextmanager
def serve_raw(handlers: Mapping[str, Handler]) -> Iterator[RawServer]:
    server = RawServer(handlers)
    server.start()
    try:
        yield server
    finally:
        server.stop()


class FnServer:
    """Every request path (with its query) goes to `route(path)`, which returns a Route or None (404)."""

    def __init__(self, route: Callable[[str], Route | None]) -> None:
        self.requests: list[str] = []
        self.user_agents: list[str] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802
                site.requests.append(self.path)
                site.user_agents.append(self.headers.get("User-Agent", ""))
                found = route(self.path) or Route(status=404, body="<title>Not found</title>")
                if found.delay:
                    time.sleep(found.delay)
                body = found.body.encode() if isinstance(found.body, str) else found.body
                self.send_response(found.status)
                self.send_header("Content-Type", found.content_type)
                for k, v in found.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"

    def url(self, path: str) -> str:
        return self.origin + path


@contextmanager
def serve_fn(route: Callable[[str], Route | None]) -> Iterator[FnServer]:
    site = FnServer(route)
    thread = threading.Thread(target=site.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield site
    finally:
        site.server.shutdown()
        site.server.server_close()


def bounded(fn: Callable[[], Any], seconds: float) -> Any:
    """Run `fn` in a daemon thread and return its result; fail the test if it takes longer than
    `seconds` (a hang must fail, never stall the suite)."""
    import pytest

    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"still running after {seconds:.0f} s")
    if "error" in box:
        raise box["error"]
    return box.get("value")
