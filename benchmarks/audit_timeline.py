"""Where a store's audit spends its time: wall, CPU, fresh huge pages and resident memory per stage.

    .venv/bin/python benchmarks/audit_timeline.py STORE            # audits STORE (a copy: it is written)
    .venv/bin/python benchmarks/audit_timeline.py STORE --flows    # only the page read and the flows' sums

The stages are the audit's own functions, timed where they start and end (the page read, the flows'
sums, the links' read, the context, the juice accounting, the detectors up to the page findings
(those of the main thread marked: broken links, redirects, the targets' states, mostly-generic
anchors), the page findings, the order, the write); the rows between two marks are what ran between
them; the inserts of the write's thread are summed per table (wall and that thread's CPU: the rest
of the write is the main thread making the next table). "thp" counts the transparent huge pages the
kernel faulted in meanwhile (/proc/vmstat, the whole machine): on a VM that backs fresh memory
lazily each GB costs about a CPU second (benchmarks/fresh_memory.py). Run it as `linkjuice audit`
runs (MIMALLOC_PURGE_DELAY=-1 is set here as the command sets it) and compare two versions of the
code by running each in turn from the same page cache (`sync; echo 3 > /proc/sys/vm/drop_caches;
cat STORE > /dev/null`), the other version on PYTHONPATH.
"""

from __future__ import annotations

import argparse
import functools
import os
import time
from typing import Any

os.environ.setdefault("MIMALLOC_PURGE_DELAY", "-1")  # (as linkjuice.cli.keep_arrow_memory, before pyarrow)

from linkjuice import audit, pipeline  # noqa: E402
from linkjuice import store as store_module  # noqa: E402

START = time.perf_counter()
MARKS: list[tuple[str, float, float, int, float]] = []


def _huge_pages() -> int:
    with open("/proc/vmstat") as vmstat:
        for line in vmstat:
            key, value = line.split()
            if key == "thp_fault_alloc":
                return int(value)
    return 0


def _resident_gb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e9


def mark(name: str) -> None:
    times = os.times()
    MARKS.append((name, time.perf_counter() - START, times.user + times.system, _huge_pages(), _resident_gb()))


def timed(owner: Any, attribute: str, name: str) -> None:
    """Mark where owner.attribute starts (name>) and ends (name<)."""
    function = getattr(owner, attribute)

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        mark(name + ">")
        try:
            return function(*args, **kwargs)
        finally:
            mark(name + "<")

    setattr(owner, attribute, wrapper)


INSERTS: dict[str, list[float]] = {}  # table -> [seconds, CPU seconds of the inserting thread, inserts]


def timed_inserts() -> None:
    """Sum the time each table's inserts take on the write's own thread (Store._insert_arrow)."""
    insert = store_module.Store._insert_arrow

    def wrapper(con: Any, table: str, arrow: Any) -> None:
        start, cpu = time.perf_counter(), time.thread_time()
        try:
            insert(con, table, arrow)
        finally:
            spent = INSERTS.setdefault(table, [0.0, 0.0, 0])
            spent[0] += time.perf_counter() - start
            spent[1] += time.thread_time() - cpu
            spent[2] += 1

    store_module.Store._insert_arrow = staticmethod(wrapper)  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store")
    parser.add_argument("--flows", action="store_true", help="only the page read and the flows' sums (read-only)")
    args = parser.parse_args()
    timed(store_module.Store, "audit_pages", "pages")
    timed(pipeline, "collect_flows", "flows")
    timed(store_module.Store, "audit_links", "links")
    timed(audit, "_context", "context")
    timed(audit, "account_juice", "account")
    # The detectors of the main thread (the anchor checks run beside them on a thread of their own).
    timed(audit, "_broken_links", "broken")
    timed(audit, "_redirects", "redirects")
    timed(audit, "_target_states", "states")
    timed(audit, "_mostly_generic", "mostly_generic")
    timed(audit, "_page_findings", "page_findings")
    timed(audit, "_order", "order")
    timed(store_module.Store, "write_audit_tables", "write")
    timed_inserts()
    mark("start")
    if args.flows:
        with store_module.Store(args.store, read_only=True) as store, audit.kept_heap():
            pages = store.audit_pages()
            store.release_memory()
            model = store.meta().get("model") or {}
            formed = {"weights": pipeline._pair_weight_settings(pipeline.stored_model_config(store)),
                      "damping": float(model["damping"])}
            pairs, keep_all = store.pair_count(), store.link_code_pairs()  # (before the reader holds the connection)
            pipeline.collect_flows(pages, *store.audit_link_flows(pipeline.REASONS, **formed),
                                   reasons=pipeline.REASONS, pairs=pairs, keep_all=keep_all)
    else:
        with store_module.Store(args.store) as store:
            pipeline.audit_store(store)
    mark("end")
    for table, (seconds, cpu, count) in INSERTS.items():
        print(f"inserts into {table}: {count}, {seconds:.1f} s, CPU {cpu:.1f} s (the write's thread)")
    report()


def report() -> None:
    """Print the rows between the marks and the total."""
    for (before, at, cpu, pages, _), (name, at2, cpu2, pages2, resident) in zip(MARKS, MARKS[1:]):
        print(f"{before:>14} -> {name:<14} {at2 - at:6.1f} s  CPU {cpu2 - cpu:6.1f} s  "
              f"thp {(pages2 - pages) * 2 / 1024:5.1f} GB  resident {resident:5.1f} GB")
    first, last = MARKS[0], MARKS[-1]
    print(f"total {last[1] - first[1]:.1f} s, CPU {last[2] - first[2]:.1f} s, "
          f"thp {(last[3] - first[3]) * 2 / 1024:.1f} GB")


if __name__ == "__main__":
    main()
