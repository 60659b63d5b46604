"""Relevance benchmark: the nearest-neighbour search behind `linkjuice suggest` for 10k and 100k
pages, tfidf (sparse top-k) against semantic (dense top-k), and the semantic engine's throughput.

    .venv/bin/python benchmarks/bench_relevance.py                  # 10k and 100k; appends to docs/benchmarks.md
    .venv/bin/python benchmarks/bench_relevance.py --sizes 10k --no-append

Targets: every page up to --targets (10,000), else a random sample of that many, timed for both
engines, plus semantic with every page a target; k = 40 candidates and a 0.1 cosine floor, as
`suggest` uses by default. tfidf runs on generated pages of
~150 words drawn from 500 topics over a Zipf vocabulary of 30,000 made-up words (the real
linkjuice.relevance vectoriser); semantic runs on random L2-normalised 384-d float32 vectors
(nearest-neighbour time does not depend on what the vectors mean) and, for 1,000 pages, on real
all-MiniLM-L6-v2 embeddings of generated English paragraphs, whose encoding time is the throughput.
Each measurement runs once after a small warm-up; the machine is shared, so read ratios first.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from linkjuice.relevance import tfidf_vectors  # noqa: E402
from linkjuice.suggest import top_similar  # noqa: E402

K, FLOOR, DIM = 40, 0.1, 384
SENTENCES = {  # a few topics of plain English, so that the encoder sees realistic text and lengths
    "bread": ["Feed the sourdough starter with equal weights of flour and water.",
              "A lively levain doubles within a few hours at room temperature.",
              "Rye flour ferments faster than white flour and adds a sour note.",
              "Shape the dough gently so that the gas bubbles stay inside.",
              "Bake the loaf in a hot covered pot for a crisp and dark crust."],
    "knives": ["Hold the blade at a steady angle against the whetstone.",
               "A honing rod realigns the edge between two sharpenings.",
               "Soak a water stone for ten minutes before you use it.",
               "Remove the burr with light alternating strokes.",
               "Carbon steel takes a keen edge but needs drying after use."],
    "garden": ["Tomatoes need full sun and deep watering twice a week.",
               "Mulch keeps the soil moist and the weeds away.",
               "Prune roses in late winter just above an outward facing bud.",
               "Compost turns kitchen scraps into rich dark humus.",
               "Sow lettuce every two weeks for a steady harvest."],
    "travel": ["Book the night train early to get a sleeper cabin.",
               "Pack light so that you can carry your bag up the stairs.",
               "Museums are free on the first Sunday of the month.",
               "Buy a regional pass if you plan several day trips.",
               "The old town is best explored on foot in the morning."],
}


def parse_size(text: str) -> int:
    text = text.strip().lower()
    return int(float(text.rstrip("km")) * {"k": 1_000, "m": 1_000_000}.get(text[-1], 1))


def generated_pages(n: int, seed: int = 0, words: int = 150) -> list[str]:
    """n pages: 60% of each page's words from its topic's 40 words, the rest from a Zipf vocabulary."""
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    vocab = np.array(["".join(rng.choice(letters, rng.integers(4, 10))) for _ in range(30_000)])
    topics = rng.integers(0, len(vocab), size=(500, 40))
    zipf = 1.0 / np.arange(1, len(vocab) + 1)
    zipf /= zipf.sum()
    page_topic = rng.integers(0, 500, n)
    from_topic = rng.random((n, words)) < 0.6
    ids = np.where(from_topic, topics[page_topic[:, None], rng.integers(0, 40, (n, words))],
                   rng.choice(len(vocab), size=(n, words), p=zipf))
    return [" ".join(row) for row in vocab[ids]]


def paragraphs(n: int, seed: int = 0) -> list[str]:
    """n English paragraphs of 8 to 14 sentences, mostly from one topic (~100 to 170 words)."""
    rng = np.random.default_rng(seed)
    names = list(SENTENCES)
    everything = [s for group in SENTENCES.values() for s in group]
    out = []
    for _ in range(n):
        own = SENTENCES[names[rng.integers(len(names))]]
        picks = [own[rng.integers(len(own))] if rng.random() < 0.8 else everything[rng.integers(len(everything))]
                 for _ in range(rng.integers(8, 15))]
        out.append(" ".join(picks))
    return out


def timed(fn):  # type: ignore[no-untyped-def]
    """(result, wall seconds); the CPU seconds of the process (all threads) go to CPU[0]."""
    start, cpu = time.perf_counter(), time.process_time()
    result = fn()
    CPU[0] = time.process_time() - cpu
    return result, time.perf_counter() - start


CPU = [0.0]  # CPU seconds of the last timed() call


def sample_targets(n: int, count: int, seed: int = 1) -> np.ndarray:
    if count >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, count, replace=False))


def bench_tfidf(n: int, targets: np.ndarray) -> dict[str, float]:
    docs = generated_pages(n)
    vectors, vectorise = timed(lambda: tfidf_vectors(docs))
    top_similar(vectors, targets[:64], K, min_similarity=FLOOR)  # warm-up
    _, search = timed(lambda: top_similar(vectors, targets, K, min_similarity=FLOOR))
    return {"vectorise_s": vectorise, "search_s": search, "cpu_s": CPU[0], "nnz_per_row": vectors.nnz / n}


def bench_dense(n: int, targets: np.ndarray, seed: int = 0) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, DIM), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    # Random vectors are near-orthogonal (cosines ~N(0, 1/384)): the 0.1 floor would keep fewer
    # pairs than a real site, so no floor here: every target keeps its k, the same work as real.
    top_similar(vectors, targets[:64], K, min_similarity=-1.0)  # warm-up
    _, search = timed(lambda: top_similar(vectors, targets, K, min_similarity=-1.0))
    return {"search_s": search, "cpu_s": CPU[0]}


def bench_embeddings(n: int) -> dict[str, float]:
    from linkjuice.semantic import embed_texts, load_embedder

    texts = paragraphs(n)
    _, load = timed(lambda: load_embedder())
    embed_texts(texts[:32])  # warm-up
    tokens = float(np.mean([len(e.ids) for e in load_embedder().tokenizer.encode_batch(texts)]))
    vectors, embed = timed(lambda: embed_texts(texts, batch_size=32))
    embed_cpu = CPU[0]
    targets = np.arange(n)
    (t, _, _), search = timed(lambda: top_similar(vectors, targets, K, min_similarity=FLOOR))
    return {"load_s": load, "embed_s": embed, "embed_cpu_s": embed_cpu, "pages_per_s": n / embed, "tokens": tokens,
            "search_s": search, "cpu_s": CPU[0], "pairs": len(t)}


def machine() -> str:
    try:
        from threadpoolctl import threadpool_info

        blas = next((f"{i['internal_api']} {i.get('version', '')} ({i.get('architecture', '')}, "
                     f"{i['num_threads']} threads)" for i in threadpool_info() if i["user_api"] == "blas"), "unknown BLAS")
    except ImportError:
        blas = "BLAS unknown"
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {blas}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10k,100k", help="page counts for the search (default 10k,100k)")
    parser.add_argument("--targets", type=int, default=10_000,
                        help="targets searched per size, a random sample when fewer than the pages (default 10000)")
    parser.add_argument("--all-dense", action="store_true", default=True,
                        help="also time semantic search for every page at every size (default on)")
    parser.add_argument("--no-all-dense", dest="all_dense", action="store_false")
    parser.add_argument("--embed", type=int, default=1000, help="pages to embed for real (default 1000; 0 skips)")
    parser.add_argument("--no-append", action="store_true", help="print only; do not append to docs/benchmarks.md")
    args = parser.parse_args()
    rows = []
    load_before = os.getloadavg()[0]

    def row(engine: str, n: int, count: int, result: dict[str, float], note: str) -> None:
        seconds, cpu = result["search_s"], result["cpu_s"]
        every = seconds * n / count
        measured = f"{every:.1f} s" if count == n else f"~{every:.0f} s (from {count:,} targets)"
        print(f"{engine:<45} {n:>8,} pages {count:>8,} targets {seconds:8.2f} s ({cpu:.2f} s CPU)  {note}", flush=True)
        rows.append(f"| {engine} | {n:,} | {count:,} | {seconds:.2f} s ({cpu:.2f} s) | {1e3 * seconds / count:.2f} ms | "
                    f"{measured} | {note} |")

    for n in (parse_size(s) for s in args.sizes.split(",")):
        targets = sample_targets(n, args.targets)
        tf = bench_tfidf(n, targets)
        row("tfidf (sparse top-k)", n, len(targets), tf,
            f"vectorising {tf['vectorise_s']:.1f} s; {tf['nnz_per_row']:.0f} terms a page")
        de = bench_dense(n, targets)
        row(f"semantic (dense top-k), random {DIM}-d", n, len(targets), de,
            f"{n * DIM * 4 / 2**20:.0f} MiB of vectors")
        if args.all_dense and len(targets) < n:
            de = bench_dense(n, np.arange(n))
            row(f"semantic (dense top-k), random {DIM}-d", n, n, de, "every page a target")
    embed_line = ""
    if args.embed:
        em = bench_embeddings(args.embed)
        row("semantic (dense top-k), real embeddings", args.embed, args.embed, em, "")
        print(f"embedding: load {em['load_s']:.2f}s, {em['embed_s']:.1f}s for {args.embed} "
              f"({em['pages_per_s']:.1f} pages/s, {em['tokens']:.0f} tokens/page)", flush=True)
        embed_line = (f"Embedding throughput (all-MiniLM-L6-v2 int8 on onnxruntime, batch 32, English paragraphs of "
                      f"{em['tokens']:.0f} tokens on average, cut at 256): **{em['pages_per_s']:.1f} pages/s** "
                      f"({em['embed_s']:.1f} s, {em['embed_cpu_s']:.1f} s of CPU, for {args.embed:,}; model load "
                      f"{em['load_s']:.2f} s), so 100,000 pages "
                      f"take ~{100_000 / em['pages_per_s'] / 60:.0f} min the first time. The store caches the vectors: "
                      f"later runs embed only the pages whose text changed.\n")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    section = (
        f"\n## Relevance: nearest neighbours and embeddings (benchmarks/bench_relevance.py, {date.today()})\n\n"
        f"{machine()}; load average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end "
        f"(a shared machine: read ratios first); peak RSS {peak:.0f} MiB. k = {K} candidates per target, "
        f"cosine floor {FLOOR} (the `suggest` defaults). `suggest` searches only its targets (by default the "
        f"weak pages), so a site's search costs targets x the per-target time.\n\n"
        "| engine | pages | targets | time (CPU) | per target | every page a target | notes |\n"
        "|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n" + embed_line
    )
    print(section)
    if not args.no_append:
        with (ROOT / "docs" / "benchmarks.md").open("a", encoding="utf-8") as f:
            f.write(section)


if __name__ == "__main__":
    main()
