"""The extraction worker's own side (crawl.workers has the crawler's): a child interpreter that
reads length-prefixed pickled requests on stdin and writes `extract_columns` results on stdout, in
order. A module of its own so that the child imports what parsing needs and no more: a worker's
start-up is CPU the crawl's first second competes for.
"""

from __future__ import annotations

import gc
import os
import pickle
import signal
import struct
import sys
from typing import BinaryIO

from .extract import extract_columns

__all__ = ["HEADER", "GC_THRESHOLDS"]

HEADER = struct.Struct("<I")
_REPLY_BATCH = 4
# The cycle collector's thresholds during a crawl, in the crawl's process and in the workers
# (crawler.rare_collections says why).
GC_THRESHOLDS = (50_000, 50, 100)


def _serve(strip_tracking: bool) -> None:
    """The worker loop: requests from stdin, their results on stdout in order, until stdin ends.
    What one read brings is answered in writes of up to _REPLY_BATCH results: fewer system calls
    and wake-ups on both sides, for a little latency."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the crawler decides when we stop
    gc.set_threshold(*GC_THRESHOLDS)
    source = sys.stdin.fileno()
    # Our own copy of stdout for the protocol; fd 1 goes to stderr so no stray print corrupts it.
    sink = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    pending = bytearray()
    while True:
        chunk = os.read(source, 1 << 20)
        if not chunk:
            return
        pending += chunk
        start, replies = 0, []
        while len(pending) - start >= HEADER.size:
            end = start + HEADER.size + HEADER.unpack_from(pending, start)[0]
            if end > len(pending):
                break
            body, url, encoding = pickle.loads(pending[start + HEADER.size:end])
            start = end
            result = tuple(extract_columns(body, url, encoding=encoding, strip_tracking=strip_tracking))
            data = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
            replies.append(HEADER.pack(len(data)) + data)
            if len(replies) >= _REPLY_BATCH:
                if not _reply(sink, replies):
                    return
                replies = []
        if replies and not _reply(sink, replies):
            return
        del pending[:start]


def _reply(sink: BinaryIO, replies: list[bytes]) -> bool:
    """Write results to the crawler; False when it has gone."""
    try:
        sink.write(b"".join(replies))
        sink.flush()
    except BrokenPipeError:
        return False
    return True


if __name__ == "__main__":
    try:
        _serve(sys.argv[1:2] == ["1"])
    except KeyboardInterrupt:
        pass
