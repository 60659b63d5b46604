"""Link weights of the juice model: a product of documented factors (docs/model.md).

    weight = position factor x relevance factor x anchor factor

* position: how likely a reader is to use a link in that place (content 1.0 ... footer 0.15).
* relevance: (1 - a) + a * cos(source, target), with cos the TF-IDF cosine of the two pages and
  a = ModelConfig.relevance_weight (0 turns the factor off).
* anchor: empty anchors and generic anchors ("click here") get fixed low factors; a descriptive
  anchor gets base + (1 - base) * match, where match is the share of its words found in the
  target's title, h1 or URL.

nofollow is not a factor: a nofollow link keeps its share of the page's juice and passes nothing.
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp

from .anchors import is_generic_anchor
from .config import DEFAULT_POSITION_WEIGHTS, ModelConfig
from .relevance import token_analyzer

__all__ = ["ANCHOR_EMPTY", "ANCHOR_GENERIC", "ANCHOR_DESCRIPTIVE", "anchor_factors", "anchor_features",
           "anchor_factor", "TopicIndex", "relevance_factor", "position_factor_codes"]

ANCHOR_EMPTY, ANCHOR_GENERIC, ANCHOR_DESCRIPTIVE = 0, 1, 2
_URL_WORDS = re.compile(r"[a-z0-9]+")


def relevance_factor(cosine: np.ndarray, config: ModelConfig) -> np.ndarray:
    a = config.relevance_weight
    return (1.0 - a) + a * cosine


def position_factor_codes(positions: pa.Array | pa.ChunkedArray, config: ModelConfig) -> np.ndarray:
    """position_factor for an Arrow string column, looked up once per distinct position."""
    if isinstance(positions, pa.ChunkedArray):
        positions = positions.combine_chunks() if positions.num_chunks else pa.array([], pa.string())
    encoded = pc.fill_null(positions, "content").dictionary_encode()
    table = np.array([config.position_weights.get(p, DEFAULT_POSITION_WEIGHTS.get(p, 1.0))
                      for p in encoded.dictionary.to_pylist()] or [1.0])
    return table[encoded.indices.to_numpy(zero_copy_only=False)]


@dataclass(frozen=True, slots=True)
class TopicIndex:
    """The words of page topics (title, h1, URL words) as a binary sparse matrix, one row per
    page (or per listed target), so anchors are matched against them in bulk."""

    matrix: sp.csr_matrix
    vocabulary: dict[str, int]
    rows: np.ndarray | None = None  # page id -> row, when built for some pages only (-1: absent)

    @classmethod
    def build(cls, texts: Iterable[str], *, ids: np.ndarray | None = None, n: int = 0) -> TopicIndex:
        analyze = token_analyzer()
        vocabulary: dict[str, int] = {}
        indptr, indices = array("q", [0]), array("i")
        for text in texts:
            indices.extend(vocabulary.setdefault(w, len(vocabulary)) for w in set(analyze(text or "")))
            indptr.append(len(indices))
        matrix = sp.csr_matrix(
            (np.ones(len(indices), np.int8), np.frombuffer(indices, np.int32) if len(indices) else np.zeros(0, np.int32),
             np.frombuffer(indptr, np.int64)), shape=(len(indptr) - 1, max(len(vocabulary), 1)))
        rows = None
        if ids is not None:
            rows = np.full(max(n, int(ids.max()) + 1 if len(ids) else 0), -1, np.int64)
            rows[ids] = np.arange(len(ids))
        return cls(matrix, vocabulary, rows)


def anchor_features(anchors: pa.Array | pa.ChunkedArray | Sequence[str | None], targets: np.ndarray,
                    topics: TopicIndex | Callable[[int], str], *, chunk: int = 200_000) -> tuple[np.ndarray, np.ndarray]:
    """Per link: its anchor's class and its match (the share of the anchor's words found in the
    target's topic). Settings-free, so stores keep them. Anchors are analysed once per distinct
    anchor; matches are counted once per distinct (anchor, target) with sparse products, in
    chunks. `topics`: a TopicIndex of all pages, or a function giving a target's topic text."""
    n = len(targets)
    cls = np.full(n, ANCHOR_DESCRIPTIVE, np.int8)
    match = np.zeros(n)
    if n == 0:
        return cls, match
    arr = anchors if isinstance(anchors, (pa.Array, pa.ChunkedArray)) else pa.array(list(anchors), pa.string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    encoded = pc.fill_null(arr, "").dictionary_encode()
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    analyze = token_analyzer()
    distinct = encoded.dictionary.to_pylist()
    u_cls = np.full(len(distinct), ANCHOR_DESCRIPTIVE, np.int8)
    u_words: list[set[str]] = []
    for k, anchor in enumerate(distinct):
        text = anchor.strip()
        words: set[str] = set()
        if not text:
            u_cls[k] = ANCHOR_EMPTY
        elif is_generic_anchor(text):
            u_cls[k] = ANCHOR_GENERIC
        else:
            words = set(analyze(text))
        u_words.append(words)
    cls = u_cls[codes]
    n_words = np.array([len(w) for w in u_words] or [0], np.float64)
    targets = np.asarray(targets, np.int64)
    todo = np.flatnonzero((n_words[codes] > 0) & (targets >= 0))
    if not len(todo):
        return cls, match
    width = int(targets.max()) + 1
    pair_codes, pairs = pd.factorize(codes[todo] * width + targets[todo])
    pair_anchor, pair_target = pairs // width, pairs % width
    if not isinstance(topics, TopicIndex):
        wanted = np.unique(pair_target)
        topics = TopicIndex.build((topics(int(t)) for t in wanted), ids=wanted, n=width)
    rows = pair_target if topics.rows is None else topics.rows[pair_target]
    vocabulary = topics.vocabulary
    ids = [[vocabulary[w] for w in words if w in vocabulary] for words in u_words]
    lengths = np.array([len(i) for i in ids], np.int64)
    anchor_matrix = sp.csr_matrix(
        (np.ones(int(lengths.sum()), np.int8), np.fromiter((j for i in ids for j in i), np.int32, int(lengths.sum())),
         np.concatenate([[0], np.cumsum(lengths)])), shape=(len(ids), topics.matrix.shape[1]))
    hits = np.zeros(len(pairs))
    for start in range(0, len(pairs), chunk):
        part = slice(start, start + chunk)
        both = anchor_matrix[pair_anchor[part]].multiply(topics.matrix[rows[part]])
        hits[part] = np.asarray(both.sum(axis=1), np.float64).ravel()
    match[todo] = (hits / n_words[pair_anchor])[pair_codes]
    return cls, match


def anchor_factor(cls: np.ndarray, match: np.ndarray, config: ModelConfig) -> np.ndarray:
    """The anchor factor of each link from its class and match (docs/model.md)."""
    if not config.use_anchor:
        return np.ones(len(cls))
    return np.where(cls == ANCHOR_EMPTY, config.anchor_empty,
                    np.where(cls == ANCHOR_GENERIC, config.anchor_generic,
                             config.anchor_descriptive + (1.0 - config.anchor_descriptive) * match))


def anchor_factors(anchors: Sequence[str | None], target_topics: Sequence[str], target_ids: np.ndarray,
                   config: ModelConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Classify each anchor and measure how well it names its target (class, match, factor)."""
    cls, match = anchor_features(anchors, np.asarray(target_ids), lambda t: target_topics[t])
    return cls, match, anchor_factor(cls, match, config)


def topic_text(title: str | None, h1: str | None, url: str) -> str:
    """What a page is about, for anchor matching: its title, h1 and the words of its URL path."""
    path = url.split("://", 1)[-1].partition("/")[2]
    return " ".join([title or "", h1 or "", " ".join(_URL_WORDS.findall(path.lower()))])
