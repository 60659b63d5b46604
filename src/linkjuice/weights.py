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
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .anchors import is_generic_anchor
from .config import DEFAULT_POSITION_WEIGHTS, ModelConfig
from .relevance import token_analyzer

__all__ = ["ANCHOR_EMPTY", "ANCHOR_GENERIC", "ANCHOR_DESCRIPTIVE", "LinkFactors", "anchor_factors",
           "anchor_features", "anchor_factor", "relevance_factor", "position_factor", "position_factor_codes"]

ANCHOR_EMPTY, ANCHOR_GENERIC, ANCHOR_DESCRIPTIVE = 0, 1, 2
_URL_WORDS = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True, slots=True)
class LinkFactors:
    position: np.ndarray
    relevance: np.ndarray  # cosine similarity of source and target, 0..1
    relevance_factor: np.ndarray
    anchor_class: np.ndarray  # ANCHOR_EMPTY | ANCHOR_GENERIC | ANCHOR_DESCRIPTIVE
    anchor_match: np.ndarray  # share of the anchor's words found in the target's topic, 0..1
    anchor_factor: np.ndarray

    @property
    def weight(self) -> np.ndarray:
        return self.position * self.relevance_factor * self.anchor_factor


def position_factor(positions: Sequence[str], config: ModelConfig) -> np.ndarray:
    codes, uniques = pd.factorize(pd.Series(positions, dtype="object").fillna("content"))
    table = np.array([config.position_weights.get(p, DEFAULT_POSITION_WEIGHTS.get(p, 1.0)) for p in uniques])
    return table[codes] if len(uniques) else np.zeros(0)


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


def anchor_features(anchors: pa.Array | pa.ChunkedArray | Sequence[str | None], targets: np.ndarray,
                    topic_of: Callable[[int], str]) -> tuple[np.ndarray, np.ndarray]:
    """Per link: its anchor's class and its match (the share of the anchor's words found in the
    target's topic, `topic_of(target)`). Settings-free, so stores keep them. The work is done
    once per distinct anchor and once per distinct (anchor, target): template links repeat."""
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
    u_cls = np.full(len(encoded.dictionary), ANCHOR_DESCRIPTIVE, np.int8)
    u_words: list[set[str]] = []
    for k, anchor in enumerate(encoded.dictionary.to_pylist()):
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
    has_words = np.array([bool(w) for w in u_words] or [False])
    targets = np.asarray(targets, np.int64)
    todo = np.flatnonzero(has_words[codes] & (targets >= 0))
    if len(todo):
        pair_codes, pairs = pd.factorize(codes[todo] * (int(targets.max()) + 1) + targets[todo])
        width = int(targets.max()) + 1
        topic_words: dict[int, set[str]] = {}
        u_match = np.zeros(len(pairs))
        for k, key in enumerate(pairs.tolist()):
            words, target = u_words[key // width], key % width
            topic = topic_words.get(target)
            if topic is None:
                topic = topic_words[target] = set(analyze(topic_of(target) or ""))
            u_match[k] = len(words & topic) / len(words)
        match[todo] = u_match[pair_codes]
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
