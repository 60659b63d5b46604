"""Link suggestions: relevant strong sources for weak targets, with an anchor phrase that is
already in the source's own text.

Candidates come from a sparse top-k similarity search on TF-IDF (or semantic) vectors, never an
all-pairs loop; anchors are phrases of the target's title/h1 found verbatim in the source's main
text, outside existing links and headings, with the sentence around them as context.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

__all__ = ["top_similar", "title_phrases", "find_anchor", "AnchorMatch"]

_WORD = re.compile(r"[^\W_][^\W_'’-]*(?:['’-][^\W_]+)*", re.UNICODE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_STOP = frozenset("""a an and are as at be by for from has have how i in into is it its of on or our
that the this to was we what when where which why with you your vs""".split())
_TITLE_SEPARATORS = re.compile(r"\s+[|–—·:-]\s+")


def top_similar(vectors: sp.csr_matrix | np.ndarray, targets: np.ndarray, k: int, *, chunk: int = 256,
                min_similarity: float = 0.0, max_cells: int = 20_000_000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each target row, the k most similar other rows: (target, candidate, cosine) arrays.

    Rows must be L2-normalised. Sparse products in blocks of targets (at most `chunk`, and at most
    about `max_cells` cells of the product) keep memory bounded instead of an all-pairs matrix; dense rows (semantic) go to _top_similar_dense."""
    if isinstance(vectors, np.ndarray):
        return _top_similar_dense(vectors, np.asarray(targets, dtype=np.int64), k, min_similarity=min_similarity)
    vectors = sp.csr_matrix(vectors)
    transposed = vectors.T.tocsc()
    targets = np.asarray(targets, dtype=np.int64)
    # A block's product has up to sum(document frequency of its targets' terms) cells: where titles
    # share words (a shop's "Widget 123 | Shop"), a target matches every page, and 256 targets of a
    # 10M-page site would be 2.6G cells. Blocks end where that bound passes max_cells.
    frequency = np.bincount(vectors.indices, minlength=vectors.shape[1]).astype(np.int64)
    rows = vectors[targets]
    running = np.concatenate([[0], np.cumsum(frequency[rows.indices])])
    bound = running[rows.indptr[1:]] - running[rows.indptr[:-1]]
    starts, total, count = [0], 0, 0
    for i, cells in enumerate(bound.tolist()):
        if count and (count >= chunk or total + cells > max_cells):
            starts.append(i)
            total, count = 0, 0
        total += cells
        count += 1
    out_t, out_c, out_s = [], [], []
    for start, end in zip(starts, starts[1:] + [len(targets)]):
        block = targets[start:end]
        sims = (vectors[block] @ transposed).tocsr()
        for row, target in enumerate(block):
            lo, hi = sims.indptr[row], sims.indptr[row + 1]
            cols, vals = sims.indices[lo:hi], sims.data[lo:hi]
            keep = (cols != target) & (vals > min_similarity)
            cols, vals = cols[keep], vals[keep]
            if len(cols) > k:
                top = np.argpartition(-vals, k)[:k]
                cols, vals = cols[top], vals[top]
            out_t.append(np.full(len(cols), target))
            out_c.append(cols)
            out_s.append(vals)
    if not out_t:
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros(0)
    return (np.concatenate(out_t).astype(np.int64), np.concatenate(out_c).astype(np.int64),
            np.concatenate(out_s).astype(np.float64))


def _top_similar_dense(vectors: np.ndarray, targets: np.ndarray, k: int, *, min_similarity: float = 0.0,
                       block_floats: int = 1 << 25, group: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact dense k-NN: one BLAS product per block of targets (block x pages near 128 MB: smaller
    blocks re-read every vector more often and run slower).

    A selection over every cell (argpartition) costs several times the product, so each row gets a
    lower bound on its k-th largest cell: the k-th largest of its `group`-column maxima (those are k
    distinct cells). Only the few cells at or above it are sorted."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n = len(vectors)
    kk = min(k, n - 1)
    if kk <= 0 or len(targets) == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros(0)
    group = max(1, min(group, n // kk))  # so that there are at least kk groups
    groups = n // group
    rows = max(1, min(len(targets), block_floats // n))
    out_t, out_c, out_s = [], [], []
    for start in range(0, len(targets), rows):
        block = targets[start:start + rows]
        sims = vectors[block] @ vectors.T
        sims[np.arange(len(block)), block] = -np.inf  # a page is not its own candidate
        maxima = sims[:, :groups * group].reshape(len(block), groups, group).max(axis=2)
        bound = np.maximum(np.partition(maxima, groups - kk, axis=1)[:, groups - kk], np.float32(min_similarity))
        r, c = np.nonzero(sims >= bound[:, None])
        v = sims[r, c]
        order = np.lexsort((-v, r))  # by row, most similar first
        r, c, v = r[order], c[order], v[order]
        keep = (np.arange(len(r)) - np.searchsorted(r, r)) < kk  # the first kk of each row
        keep &= v > min_similarity
        out_t.append(block[r[keep]])
        out_c.append(c[keep])
        out_s.append(v[keep])
    return (np.concatenate(out_t).astype(np.int64), np.concatenate(out_c).astype(np.int64),
            np.concatenate(out_s).astype(np.float64))


def _words(text: str) -> list[str]:
    return _WORD.findall(text)


def title_phrases(title: str | None, h1: str | None, keywords: Iterable[str] = (), *, max_words: int = 6) -> list[str]:
    """Candidate anchor phrases naming a page: n-grams of its title and h1 (site name removed),
    longest first, that neither start nor end with a stop word; then its top keywords."""
    phrases: dict[str, None] = {}
    for text in (h1, title):
        if not text:
            continue
        main = _TITLE_SEPARATORS.split(text)[0]  # "Sourdough starter | Crumb & Co" -> "Sourdough starter"
        words = _words(main)
        for size in range(min(max_words, len(words)), 0, -1):
            for i in range(len(words) - size + 1):
                gram = words[i:i + size]
                if gram[0].lower() in _STOP or gram[-1].lower() in _STOP:
                    continue
                # A single word is too vague an anchor unless the title has nothing longer.
                if size == 1 and (len(gram[0]) < 4 or sum(w.lower() not in _STOP for w in words) > 1):
                    continue
                phrases.setdefault(" ".join(gram).lower(), None)
    for phrase in keywords:
        if len(phrase) >= 4 and phrase.lower() not in _STOP:
            phrases.setdefault(phrase.lower(), None)
    # Multi-word phrases first (more descriptive), longer first; single words last.
    return sorted(phrases, key=lambda p: (-min(len(p.split()), 4), -len(p)))


@dataclass(frozen=True, slots=True)
class AnchorMatch:
    anchor: str  # the phrase as written in the source
    context: str  # the sentence that holds it


def _mask(text: str, phrases: Iterable[str]) -> str:
    """Blank out (same length) every occurrence of the given phrases, case-insensitively."""
    for phrase in sorted({p.strip() for p in phrases if p and len(p.strip()) >= 2}, key=len, reverse=True):
        text = re.sub(re.escape(phrase), lambda m: "\x00" * len(m.group()), text, flags=re.IGNORECASE)
    return text


def find_anchor(main_text: str, phrases: Sequence[str], *, existing_anchors: Iterable[str] = (),
                headings: Iterable[str] = (), avoid: Iterable[str] = ()) -> AnchorMatch | None:
    """The first phrase (in preference order) found in `main_text` outside existing links and
    headings, as a whole-word match; phrases in `avoid` are used only if nothing else fits."""
    if not main_text or not phrases:
        return None
    heading_lines = {h.strip().lower() for h in headings if h and h.strip()}
    lines = main_text.split("\n")
    masked_lines = [("\x00" * len(line)) if line.strip().lower() in heading_lines else line for line in lines]
    masked = _mask("\n".join(masked_lines), existing_anchors)
    avoid_set = {a.lower() for a in avoid}
    ordered = [p for p in phrases if p.lower() not in avoid_set] + [p for p in phrases if p.lower() in avoid_set]
    for phrase in ordered:
        pattern = re.compile(r"(?<![\w\x00])" + re.escape(phrase) + r"(?![\w\x00])", re.IGNORECASE)
        match = pattern.search(masked)
        if match is None:
            continue
        original = main_text[match.start():match.end()]
        return AnchorMatch(anchor=original, context=_sentence_around(main_text, match.start(), match.end()))
    return None


def _sentence_around(text: str, start: int, end: int) -> str:
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    line_end = len(text) if line_end < 0 else line_end
    line = text[line_start:line_end]
    offset = start - line_start
    pos = 0
    for sentence in _SENTENCE_END.split(line):
        found = line.find(sentence, pos)
        if found <= offset < found + len(sentence) + 1:
            return sentence.strip()[:400]
        pos = found + len(sentence)
    return line.strip()[:400]
