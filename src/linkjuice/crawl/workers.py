"""HTML extraction in worker processes, so that parsing runs on other cores while the event loop
fetches and writes (one Python process spends about as long parsing a page as on everything else).

Each worker is a child interpreter (`python -m linkjuice.crawl.extract_worker`) that reads
requests from its stdin and writes `extract_columns` results to its stdout, length-prefixed pickles
in order. The event loop talks to it through asyncio pipes: no threads, no locks. The protocol is
private to one crawl (the child is our own code, the pickles never leave the two processes).

Lifecycle: the workers ignore SIGINT (a Ctrl-C reaches the whole process group; the crawler stops
gracefully and closes them), and exit at the end of their stdin, so they also go when the crawler
is killed. A worker that dies is not replaced: what it still owed is extracted in-process, and so
is every later page, so the results never depend on the workers.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import sys
from collections import deque
from pathlib import Path

from .extract import PageColumns, extract_columns
from .extract_worker import HEADER, GC_THRESHOLDS

__all__ = ["ExtractPool", "auto_workers", "GC_THRESHOLDS"]

# A page is parsed in-process only when every worker has this many waiting. Parsing in the event
# loop's process stalls fetching and writing for ~0.5 ms a page, and the loop is the busier process:
# on two cores, with the old limit (4), parsing in-process took 30% of the loop's time while the
# worker sat mostly idle. A crawl's concurrency bounds the queue anyway.
_MAX_QUEUED = 64


def auto_workers() -> int:
    """Worker processes for a crawl when not configured: 2 on a machine with 2 cores or more, none
    on one core. On 2 cores the event loop needs about two thirds of a core and one worker a whole
    one, so with a single worker the loop waited on it and a core sat partly idle; with two the
    kernel gives parsing whatever the loop leaves (20k-page bench site: 19-26 s instead of 32 s,
    load 2-3). More than 2 gain nothing: the loop feeds about two."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return 2 if cores >= 2 else 0


class _Worker:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.waiting: deque[tuple[asyncio.Future[PageColumns], bytes, str, str | None]] = deque()
        self.outbox: list[bytes] = []  # requests not yet written: one write per turn of the event loop
        self.alive = True
        self.reader: asyncio.Task[None] | None = None


class ExtractPool:
    """`extract_columns` on worker processes; in-process while they start, and when none is left."""

    def __init__(self, processes: int, *, strip_tracking: bool) -> None:
        self.processes = processes
        self.strip_tracking = strip_tracking
        self._workers: list[_Worker] = []
        self._starting: asyncio.Task[None] | None = None
        self.parsed_by_workers = 0  # pages whose extraction a worker did (the rest ran in-process)

    def start(self) -> None:
        """Start the workers in the background (interpreter start-up takes a few tenths of a second;
        pages are parsed in-process meanwhile)."""
        if self._starting is None and self.processes > 0:
            self._starting = asyncio.ensure_future(self._start())

    async def _start(self) -> None:
        # The child must import this very package, wherever it was imported from.
        package_root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        for _ in range(self.processes):
            try:
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "linkjuice.crawl.extract_worker", "1" if self.strip_tracking else "0",
                    stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env)
            except Exception:  # noqa: BLE001 - no interpreter to start (embedded, no fork): stay in-process
                return
            worker = _Worker(proc)
            worker.reader = asyncio.ensure_future(self._read(worker))
            self._workers.append(worker)

    async def extract(self, body: bytes, url: str, encoding: str | None) -> PageColumns:
        """The page's `extract_columns`, from the least busy worker, or in-process when none runs
        (or, with a crawl's concurrency above _MAX_QUEUED a worker, when all are far behind)."""
        if self._starting is not None and not self._starting.done():
            await asyncio.shield(self._starting)  # process creation only: milliseconds
        worker = min((w for w in self._workers if w.alive), key=lambda w: len(w.waiting), default=None)
        if worker is None or len(worker.waiting) >= _MAX_QUEUED or worker.proc.stdin is None:
            return self._here(body, url, encoding)
        future: asyncio.Future[PageColumns] = asyncio.get_running_loop().create_future()
        data = pickle.dumps((body, url, encoding), protocol=pickle.HIGHEST_PROTOCOL)
        worker.waiting.append((future, body, url, encoding))
        if not worker.outbox:
            asyncio.get_running_loop().call_soon(self._send, worker)
        worker.outbox.append(HEADER.pack(len(data)) + data)
        return await future

    @staticmethod
    def _send(worker: _Worker) -> None:
        data, worker.outbox = b"".join(worker.outbox), []
        if worker.proc.stdin is None:
            return
        try:
            worker.proc.stdin.write(data)
        except (ConnectionError, RuntimeError):
            pass  # the worker is gone: its reader extracts what it owed in-process

    def _here(self, body: bytes, url: str, encoding: str | None) -> PageColumns:
        return extract_columns(body, url, encoding=encoding, strip_tracking=self.strip_tracking)

    async def _read(self, worker: _Worker) -> None:
        stdout = worker.proc.stdout
        assert stdout is not None
        try:
            while True:
                size = HEADER.unpack(await stdout.readexactly(HEADER.size))[0]
                result = PageColumns._make(pickle.loads(await stdout.readexactly(size)))
                future = worker.waiting.popleft()[0]
                self.parsed_by_workers += 1
                if not future.done():  # a cancelled page (crawl stopping) still takes its answer
                    future.set_result(result)
        except (asyncio.IncompleteReadError, ConnectionError, pickle.UnpicklingError, EOFError, IndexError):
            pass
        finally:
            worker.alive = False
            while worker.waiting:
                future, body, url, encoding = worker.waiting.popleft()
                if not future.done():
                    future.set_result(self._here(body, url, encoding))

    async def close(self) -> None:
        """Stop the workers: end their input, wait briefly, then kill what is left."""
        if self._starting is not None:
            self._starting.cancel()
            await asyncio.gather(self._starting, return_exceptions=True)
        for worker in self._workers:
            if worker.proc.stdin is not None:
                worker.proc.stdin.close()
        for worker in self._workers:
            try:
                await asyncio.wait_for(worker.proc.wait(), timeout=2.0)
            except asyncio.TimeoutError:
                worker.proc.kill()
                await worker.proc.wait()
            if worker.reader is not None:
                await asyncio.gather(worker.reader, return_exceptions=True)
        self._workers = []
