"""Huge responses and decompression bombs (gzip, deflate, raw deflate, brotli, zstd): the body is cut at
the size cap *after* decompression, the page is recorded as "body too large", and memory stays flat
(peak RSS measured in a separate process)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from linkjuice.config import CrawlConfig
from linkjuice.pipeline import crawl_site
from linkjuice.store import Store

from .servers import Handler, bounded, html, response_head, serve_raw

MB = 1 << 20
CAP = 4 * MB
BOMB_MB = 4096  # what each bomb would inflate to: 4 GiB, far past what the process could hold twice


def _zeros_stream(compress: Callable[[bytes], bytes], flush: Callable[[], bytes]) -> Iterator[bytes]:
    block = b"\0" * MB
    for _ in range(BOMB_MB):
        chunk = compress(block)
        if chunk:
            yield chunk
    yield flush()


def _gzip() -> Iterator[bytes]:
    obj = zlib.compressobj(9, zlib.DEFLATED, 31)
    return _zeros_stream(obj.compress, obj.flush)


def _deflate() -> Iterator[bytes]:
    obj = zlib.compressobj(9, zlib.DEFLATED, 15)  # zlib-wrapped, as the standard says
    return _zeros_stream(obj.compress, obj.flush)


def _raw_deflate() -> Iterator[bytes]:
    obj = zlib.compressobj(9, zlib.DEFLATED, -15)  # headerless, as some servers send it
    return _zeros_stream(obj.compress, obj.flush)


def _brotli() -> Iterator[bytes]:
    import brotli

    obj = brotli.Compressor(quality=5)
    return _zeros_stream(obj.process, obj.finish)


def _zstd() -> Iterator[bytes]:
    try:
        from compression import zstd  # type: ignore[import-not-found]
    except ImportError:
        from backports import zstd  # type: ignore[import-not-found,no-redef]
    obj = zstd.ZstdCompressor()
    return _zeros_stream(obj.compress, lambda: obj.flush())


def _plain() -> Iterator[bytes]:
    block = b"<p>" + b"x" * (MB - 3)
    for _ in range(BOMB_MB):
        yield block


STREAMS: dict[str, Callable[[], Iterator[bytes]]] = {
    "gzip": _gzip, "deflate": _deflate, "raw-deflate": _raw_deflate, "br": _brotli, "zstd": _zstd,
    "identity": _plain,
}


def _bomb(encoding: str) -> Handler:
    async def handler(writer: asyncio.StreamWriter, path: str) -> None:
        wire = "deflate" if encoding == "raw-deflate" else encoding
        headers = {} if encoding == "identity" else {"Content-Encoding": wire}
        writer.write(response_head(200, headers))  # no length: the body ends when the server stops
        for chunk in STREAMS[encoding]():
            writer.write(chunk)
            await writer.drain()  # raises once the client hangs up at the cap

    return handler


def _available(encoding: str) -> bool:
    try:
        next(STREAMS[encoding]())
    except ImportError:
        return False
    return True


ENCODINGS = [e for e in STREAMS if _available(e)]
HANDLERS = {f"/{e}": _bomb(e) for e in ENCODINGS}

# Run in a fresh interpreter so that its peak RSS is the fetcher's alone.
PROBE = textwrap.dedent("""
    import asyncio, json, sys
    from linkjuice.crawl.fetch import HttpFetcher

    def peak_mb():
        # VmHWM, the peak RSS of this address space; getrusage's ru_maxrss would also count the
        # parent's memory from before exec.
        with open("/proc/self/status") as status:
            line = next(l for l in status if l.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024

    async def main(origin, paths, cap):
        fetcher = HttpFetcher(user_agent="linkjuice-test", timeout=60, max_body_bytes=cap, retries=0,
                              backoff=0.01, concurrency=1)
        out = {"baseline": peak_mb(), "results": {}}
        try:
            for path in paths:
                r = await fetcher.fetch(origin + path)
                out["results"][path] = {"status": r.status, "error": r.error, "bytes": len(r.body),
                                        "zeros": r.body.count(0), "truncated": r.truncated, "peak": peak_mb()}
        finally:
            await fetcher.close()
        # The probe itself can see memory: 200 MB held must show in the peak.
        held = bytearray(200 * 1024 * 1024)
        held[::4096] = b"x" * len(held[::4096])
        out["control"] = peak_mb()
        print(json.dumps(out))

    asyncio.run(main(sys.argv[1], sys.argv[2].split(","), int(sys.argv[3])))
""")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="peak RSS is read from /proc (Linux)")
def test_bombs_are_capped_after_decompression_and_memory_stays_flat() -> None:
    with serve_raw(HANDLERS) as server:
        proc = bounded(lambda: subprocess.run(
            [sys.executable, "-c", PROBE, server.origin, ",".join(HANDLERS), str(CAP)],
            capture_output=True, text=True, timeout=120), 130)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    for path, r in out["results"].items():
        assert r["status"] == 200 and r["error"] == "body too large" and r["truncated"], (path, r)
        assert r["bytes"] == CAP, path  # the cap applies to decoded bytes
        if path != "/identity":
            assert r["zeros"] == CAP, path  # and they are the decoded zeros, not compressed bytes
        # 4 GiB bombs; the cap is 4 MiB; the body is copied once or twice: stay within 64 MiB.
        assert r["peak"] - out["baseline"] < 64, (path, r["peak"] - out["baseline"])
    assert out["control"] - out["baseline"] > 150  # the measurement can fail


def test_crawl_records_body_too_large_and_goes_on(tmp_path: Path) -> None:
    handlers = {**HANDLERS,
                "/": html("<html><title>Home</title><main>" + "".join(f"<a href='{p}'>{p}</a>" for p in HANDLERS)
                          + "<a href='/after'>after</a></main></html>"),
                "/after": html("<html><title>After</title></html>")}
    db = tmp_path / "bombs.duckdb"
    with serve_raw(handlers) as server:
        config = CrawlConfig(start_url=server.url("/"), max_body_bytes=MB, use_sitemaps=False, concurrency=2)
        summary = bounded(lambda: crawl_site(config, db), 120)
        origin = server.origin
    assert summary.stop_reason == "complete"
    with Store(db, read_only=True) as store:
        rows = {u: (s, e, b) for u, s, e, b in store.con.execute("SELECT url, status, error, bytes FROM pages").fetchall()}
    for path in HANDLERS:
        assert rows[origin + path] == (200, "body too large", MB), path
    assert rows[origin + "/after"][0] == 200


NO_BROTLI = textwrap.dedent("""
    import sys
    sys.modules["brotli"] = None  # as if neither package were installed
    sys.modules["brotlicffi"] = None
    import asyncio, json
    from linkjuice.crawl.fetch import HttpFetcher

    async def main(url):
        fetcher = HttpFetcher(user_agent="linkjuice-test", timeout=10, max_body_bytes=1 << 20, retries=0,
                              backoff=0.01, concurrency=1)
        try:
            r = await fetcher.fetch(url)
        finally:
            await fetcher.close()
        print(json.dumps({"status": r.status, "error": r.error}))

    asyncio.run(main(sys.argv[1]))
""")


@pytest.mark.skipif("br" not in ENCODINGS, reason="the brotli package is not installed here")
def test_brotli_is_decoded_when_installed_and_an_error_when_not(tmp_path: Path) -> None:
    import brotli

    page = b"<html><title>Brotli</title><main><a href='/next'>next</a></main></html>"
    handlers = {"/": html(brotli.compress(page), headers={"Content-Encoding": "br"}),
                "/next": html("<html><title>Next</title></html>")}
    db = tmp_path / "br.duckdb"
    with serve_raw(handlers) as server:
        bounded(lambda: crawl_site(CrawlConfig(start_url=server.url("/"), use_sitemaps=False), db), 60)
        accept = [h for h in server.request_heads if h.startswith(b"GET / ")][0]
        assert b"br" in accept.lower().split(b"accept-encoding:")[1].split(b"\r\n")[0]
        # Without brotli, aiohttp stops asking for br; a server that sends it anyway gets an error
        # recorded on the page, not a crash.
        proc = subprocess.run([sys.executable, "-c", NO_BROTLI, server.url("/")], capture_output=True,
                              text=True, timeout=60)
        accept = server.request_heads[-1].lower().split(b"accept-encoding:")[1].split(b"\r\n")[0]
    with Store(db, read_only=True) as store:
        titles = sorted(r[0] for r in store.con.execute("SELECT title FROM pages").fetchall())
    assert titles == ["Brotli", "Next"]  # decoded, and its link followed
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert b"br" not in accept
    assert result["status"] is None and "brotli" in result["error"]
