"""`linkjuice serve`: the report's views over a store, live, for crawls too big for one file.

Starlette (routing, streaming responses, an in-process test client) on uvicorn, behind the
`dashboard` extra: a small, well-kept ASGI stack instead of a hand-rolled http.server handler.

The page is the report's own page with its tables left empty; its script fetches them from the
API below a page at a time, so a million-page crawl costs one SQL query per screenful (filters and
sorting run in DuckDB with bound parameters, never formatted into SQL). Safety:

* the store is opened read-only for every request, and no route writes;
* the app serves only the routes listed here: no static-file route, nothing that maps a path to
  a file;
* it binds 127.0.0.1 unless told otherwise, and then only answers requests whose Host header is a
  loopback name (a web page cannot reach it through DNS rebinding);
* the page carries the report's Content-Security-Policy (scripts by hash, fetches to itself only).
"""

from __future__ import annotations

import csv
import io
import ipaddress
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import LinkJuiceError, MissingExtraError, StoreError, UsageError
from .report.data import TABLES, ReportLimits, frame_rows, report_payload
from .report.render import render_page
from .store import Store

__all__ = ["create_app", "serve", "bind", "is_loopback", "MAX_PAGE_ROWS"]

MAX_PAGE_ROWS = 500  # rows per API call


def _starlette() -> Any:
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise MissingExtraError("linkjuice serve", "dashboard") from None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _columns(store: Store, name: str) -> list[str]:
    available = store.browse_columns(name)
    shown = TABLES[name][0] if name in TABLES else available
    return [c for c in shown if c in available]


class _BadRequest(Exception):
    pass


def _int(params: Any, key: str, default: int, low: int, high: int) -> int:
    raw = params.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _BadRequest(f"{key} must be a whole number") from None
    if not low <= value <= high:
        raise _BadRequest(f"{key} must be between {low} and {high}")
    return value


def _browse_args(params: Any) -> dict[str, Any]:
    order = params.get("order", "")
    if order not in ("", "asc", "desc"):
        raise _BadRequest("order must be asc or desc")
    equals = {key[2:]: value for key, value in params.multi_items() if key.startswith("f.")}
    return {"search": params.get("q") or None, "sort": params.get("sort") or None,
            "descending": None if not order else order == "desc", "equals": equals}


def _csv_cell(value: Any) -> Any:
    # Text that a spreadsheet would run as a formula (CSV injection) is prefixed with a quote.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def create_app(db: str | Path, *, limits: ReportLimits | None = None, allow_any_host: bool = False) -> Any:
    """The dashboard as an ASGI app. `allow_any_host` drops the Host-header check (for a bind
    address other than loopback, chosen explicitly)."""
    _starlette()
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    db = Path(db)
    with Store(db, read_only=True) as store:  # fail now, with one clear line, on a bad store
        payload = report_payload(store, limits=limits, embed_rows=False)
        tables = {name for name in Store.BROWSE if store.table_rows(name) is not None}
    html, csp = render_page(payload, connect="'self'")
    headers = {
        "Content-Security-Policy": csp + "; frame-ancestors 'none'",
        "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
    }

    def guarded(handler: Callable[[Request], Response]) -> Callable[[Request], Response]:
        """Errors as JSON with a status, in one line, never a traceback."""
        def run(request: Request) -> Response:
            try:
                return handler(request)
            except _BadRequest as exc:
                return JSONResponse({"error": str(exc)}, status_code=400, headers=headers)
            except StoreError as exc:
                return JSONResponse({"error": str(exc)}, status_code=400, headers=headers)
            except LinkJuiceError as exc:
                return JSONResponse({"error": str(exc)}, status_code=500, headers=headers)
        return run

    def table_name(request: Request) -> str:
        name = str(request.path_params["name"])
        if name not in tables:
            raise _BadRequest(f"unknown table {name!r}: choose one of {', '.join(sorted(tables))}")
        return name

    def index(request: Request) -> Response:
        return HTMLResponse(html, headers=headers)

    def table(request: Request) -> Response:
        name = table_name(request)
        args = _browse_args(request.query_params)
        limit = _int(request.query_params, "limit", 50, 1, MAX_PAGE_ROWS)
        offset = _int(request.query_params, "offset", 0, 0, 10**12)
        with Store(db, read_only=True) as store:
            frame, total = store.browse(name, limit=limit, offset=offset, **args)
            columns = _columns(store, name)
        return JSONResponse({"table": name, "columns": columns, "rows": frame_rows(frame, columns),
                             "total": total, "offset": offset, "limit": limit}, headers=headers)

    def table_csv(request: Request) -> Response:
        name = table_name(request)
        args = _browse_args(request.query_params)
        store = Store(db, read_only=True)
        try:
            columns = _columns(store, name)
            reader = store.browse_batches(name, **args)
        except BaseException:
            store.close()
            raise

        def lines() -> Iterator[str]:
            try:
                buffer = io.StringIO()
                writer = csv.writer(buffer, lineterminator="\r\n")
                writer.writerow(columns)
                for batch in reader:
                    data = batch.select(columns).to_pylist()
                    writer.writerows([_csv_cell(row[c]) for c in columns] for row in data)
                    yield buffer.getvalue()
                    buffer.seek(0)
                    buffer.truncate()
                yield buffer.getvalue()
            finally:
                store.close()

        return StreamingResponse(lines(), media_type="text/csv; charset=utf-8", headers={
            **headers, "Content-Disposition": f'attachment; filename="{name}.csv"'})

    def page(request: Request) -> Response:
        url = request.query_params.get("url")
        if not url:
            raise _BadRequest("give the page as ?url=")
        limit = _int(request.query_params, "limit", 50, 1, MAX_PAGE_ROWS)
        with Store(db, read_only=True) as store:
            found, _ = store.browse("pages", equals={"url": url}, limit=1)
            if found.empty:
                return JSONResponse({"error": "no such page in this crawl"}, status_code=404, headers=headers)
            record = dict(zip(found.columns, frame_rows(found)[0]))
            sources = store.link_flows_frame(resolved=url, limit=limit)
            sends = store.link_flows_frame(source=url, limit=limit)

        def records(frame: Any) -> list[dict[str, Any]]:
            cols = ["source_url", "target_url", "resolved_url", "anchor", "position", "share", "juice", "reason"]
            return [dict(zip(cols, row)) for row in frame_rows(frame, cols)]

        return JSONResponse({"page": record, "sources": records(sources), "sends": records(sends)}, headers=headers)

    def table_list(request: Request) -> Response:
        with Store(db, read_only=True) as store:
            counts = {name: store.browse(name, limit=0)[1] for name in sorted(tables)}
        return JSONResponse({"tables": counts}, headers=headers)

    routes = [
        Route("/", index),
        Route("/api/tables", guarded(table_list)),
        Route("/api/table/{name}.csv", guarded(table_csv)),
        Route("/api/table/{name}", guarded(table)),
        Route("/api/page", guarded(page)),
    ]
    middleware = [] if allow_any_host else [Middleware(_LoopbackHostOnly)]
    return Starlette(routes=routes, middleware=middleware)


class _LoopbackHostOnly:
    """Answer only requests addressed to a loopback name: a web page that points its own domain
    at 127.0.0.1 (DNS rebinding) sends its domain as Host and gets 421. (Starlette's
    TrustedHostMiddleware splits Host at the first colon, which breaks on [::1]:port.)"""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
            try:
                name = urlsplit("//" + host).hostname or ""
            except ValueError:
                name = ""
            if not is_loopback(name):
                from starlette.responses import PlainTextResponse

                refuse = PlainTextResponse("misdirected request: use http://127.0.0.1", status_code=421)
                await refuse(scope, receive, send)
                return
        await self.app(scope, receive, send)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0: any free port); errors are one line."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(128)
    return sock


def serve(db: str | Path, *, host: str = "127.0.0.1", port: int = 8765,
          on_ready: Callable[[str], None] | None = None) -> None:
    """Serve the dashboard until interrupted; `on_ready` gets its URL once it listens."""
    _starlette()
    import uvicorn

    app = create_app(db, allow_any_host=not is_loopback(host))
    sock = bind(host, port)
    bound = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    if on_ready is not None:
        on_ready(f"http://{f'[{host}]' if ':' in host else host}:{bound}/")
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
