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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp

from .anchors import generic_mask
from .config import DEFAULT_POSITION_WEIGHTS, ModelConfig
from .relevance import tokenize_many

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
    words: pa.Array  # the vocabulary: column j of the matrix is words[j]
    rows: np.ndarray | None = None  # page id -> row, when built for some pages only (-1: absent)

    @classmethod
    def build(cls, texts: Iterable[str] | pa.Array, *, ids: np.ndarray | None = None, n: int = 0) -> TopicIndex:
        texts = texts if isinstance(texts, (pa.Array, pa.ChunkedArray)) else pa.array(list(texts), pa.string())
        owner, tokens = tokenize_many(texts)
        encoded = tokens.dictionary_encode()
        rows, cols = _distinct_pairs(owner, encoded.indices.to_numpy(zero_copy_only=False), len(encoded.dictionary))
        n_rows = len(texts)
        matrix = sp.csr_matrix((np.ones(len(rows), np.int8), (rows, cols)),
                               shape=(n_rows, max(len(encoded.dictionary), 1)))
        index = None
        if ids is not None:
            index = np.full(max(n, int(ids.max()) + 1 if len(ids) else 0), -1, np.int64)
            index[ids] = np.arange(len(ids))
        return cls(matrix, encoded.dictionary, index)


def _distinct_pairs(owner: np.ndarray, code: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The distinct (owner, code) pairs, sorted (a sort: numpy's unique hashes integers, slowly)."""
    key = np.sort(owner.astype(np.int64) * max(width, 1) + code)
    if len(key):
        key = key[np.concatenate(([True], key[1:] != key[:-1]))]
    return key // max(width, 1), (key % max(width, 1)).astype(np.int32)


# Python's str.strip() whitespace within ASCII (str.isspace), for Arrow.
_ASCII_SPACE = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"


def _stripped(texts: pa.Array) -> pa.Array:
    """str.strip() of each text: Arrow for ASCII ones, Python for the others."""
    out = pc.ascii_trim(texts, characters=_ASCII_SPACE)
    other = np.flatnonzero(~pc.string_is_ascii(texts).to_numpy(zero_copy_only=False))
    if not len(other):
        return out
    values = out.to_pylist()
    for i, text in zip(other.tolist(), texts.take(pa.array(other)).to_pylist()):
        values[i] = text.strip()
    return pa.array(values, pa.string())


def anchor_features(anchors: pa.Array | pa.ChunkedArray | Sequence[str | None], targets: np.ndarray,
                    topics: TopicIndex | Callable[[int], str], *, chunk: int = 200_000) -> tuple[np.ndarray, np.ndarray]:
    """Per link: its anchor's class and its match (the share of the anchor's words found in the
    target's topic). Settings-free, so stores keep them. Anchors are classified and split into
    words once per distinct anchor, by Arrow's string kernels; matches are counted once per
    distinct (anchor, target) with sparse products, in chunks. `topics`: a TopicIndex of all
    pages, or a function giving a target's topic text."""
    n = len(targets)
    cls = np.full(n, ANCHOR_DESCRIPTIVE, np.int8)
    match = np.zeros(n)
    if n == 0:
        return cls, match
    arr = anchors if isinstance(anchors, (pa.Array, pa.ChunkedArray)) else pa.array(list(anchors), pa.string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    encoded = pc.fill_null(arr.cast(pa.string()), "").dictionary_encode()
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    distinct = _stripped(encoded.dictionary)
    u_cls = np.full(len(distinct), ANCHOR_DESCRIPTIVE, np.int8)
    u_cls[generic_mask(distinct)] = ANCHOR_GENERIC
    u_cls[pc.equal(pc.binary_length(distinct), 0).to_numpy(zero_copy_only=False)] = ANCHOR_EMPTY
    owner, tokens = tokenize_many(distinct)
    descriptive = u_cls[owner] == ANCHOR_DESCRIPTIVE
    owner, tokens = owner[descriptive], tokens.filter(pa.array(descriptive))
    words = tokens.dictionary_encode()
    pair_owner, pair_word = _distinct_pairs(owner, words.indices.to_numpy(zero_copy_only=False), len(words.dictionary))
    cls = u_cls[codes]
    n_words = np.bincount(pair_owner, minlength=len(distinct)).astype(np.float64)
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
    # Each anchor's words that occur in some topic, as columns of the topic matrix.
    column = pc.fill_null(pc.index_in(words.dictionary, value_set=topics.words), -1).to_numpy().astype(np.int64)
    known = column[pair_word] >= 0
    anchor_matrix = sp.csr_matrix(
        (np.ones(int(known.sum()), np.int8), (pair_owner[known], column[pair_word][known])),
        shape=(len(distinct), topics.matrix.shape[1]))
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
