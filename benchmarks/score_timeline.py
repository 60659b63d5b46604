"""Where a store's score spends its time: wall, CPU, fresh huge pages and resident memory per stage.

    .venv/bin/python benchmarks/score_timeline.py STORE            # scores STORE (a copy: it is written)
    .venv/bin/python benchmarks/score_timeline.py STORE --first    # forgets its scores first (not timed)

The stages are the score's own functions, timed where they start and end (the pages' sections,
each read of the links, the link counts, each power iteration, the out weights, the section
flows, the write; within an iteration, its layout and its steps); the rows between two marks
are what ran between them ("start -> kernels": numba's kernels loaded, as the score would
load them later). The pages' TF-IDF vectors of a first score are made on threads of their own
beside the first read and classic PageRank: their CPU shows in those rows, and the second read
waits for them ("text>" marks that wait). Compare two versions of the code as benchmarks/audit_timeline.py does.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("MIMALLOC_PURGE_DELAY", "-1")  # (as linkjuice.cli.keep_arrow_memory, before pyarrow)

from audit_timeline import mark, report, timed  # noqa: E402  (beside this script)
from bench_store_scale import forget_scores  # noqa: E402

from linkjuice import pipeline, score  # noqa: E402
from linkjuice import store as store_module  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store")
    parser.add_argument("--first", action="store_true", help="forget the stored scores and relevance first")
    args = parser.parse_args()
    if args.first:
        forget_scores(Path(args.store))
    timed(store_module.Store, "page_sections", "sections")
    timed(pipeline, "link_flows", "read")
    timed(pipeline, "_link_counts", "counts")
    timed(pipeline, "_classic_rank", "classic")
    timed(pipeline, "_out_weight", "out_weight")
    timed(pipeline, "_juice_rank", "juice")
    timed(pipeline, "section_flow_matrix", "sections_flow")
    timed(store_module.Store, "write_scores", "write")
    # Within each power iteration: the layout of its links, then the steps.
    mark("start")
    kernels = score._compiled_kernels(score._COMPILED_MIN_LINKS)
    mark("kernels")
    if kernels is not None:
        timed(kernels, "in_link_pattern", "pattern")
        timed(kernels, "pattern_layout", "layout")
        timed(kernels, "sell_from_links", "layout")
        timed(score, "_iterate_compiled", "steps")
    text_ahead = pipeline._text_ahead

    def text_marked(*args: object, **kwargs: object) -> object:
        text = text_ahead(*args, **kwargs)
        if text is None or text._pending is None:
            return text
        ready = text._pending.result

        def result() -> object:  # the wait for the vectors, when the second read needs them
            mark("text>")
            try:
                return ready()
            finally:
                mark("text<")

        text._pending.result = result  # type: ignore[method-assign]
        return text

    pipeline._text_ahead = text_marked
    with store_module.Store(args.store) as store:
        pipeline.score_store(store)
    mark("end")
    report()


if __name__ == "__main__":
    main()
