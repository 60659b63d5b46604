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
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .anchors import is_generic_anchor
from .config import DEFAULT_POSITION_WEIGHTS, ModelConfig
from .relevance import token_analyzer

__all__ = ["ANCHOR_EMPTY", "ANCHOR_GENERIC", "ANCHOR_DESCRIPTIVE", "LinkFactors", "anchor_factors",
           "relevance_factor", "position_factor"]

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


def anchor_factors(anchors: Sequence[str | None], target_topics: Sequence[str], target_ids: np.ndarray,
                   config: ModelConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Classify each anchor and measure how well it names its target. Work is done once per
    distinct (anchor, target) pair: template links repeat the same pair on every page."""
    n = len(target_ids)
    cls = np.full(n, ANCHOR_DESCRIPTIVE, np.int8)
    match = np.zeros(n)
    if n == 0:
        return cls, match, np.ones(0)
    frame = pd.DataFrame({"anchor": pd.Series(anchors, dtype="object").fillna(""), "target": target_ids})
    codes, uniques = pd.MultiIndex.from_frame(frame).factorize()
    analyze = token_analyzer()
    topic_words: dict[int, set[str]] = {}
    u_cls = np.full(len(uniques), ANCHOR_DESCRIPTIVE, np.int8)
    u_match = np.zeros(len(uniques))
    for k, (anchor, target) in enumerate(uniques):
        text = anchor.strip()
        if not text:
            u_cls[k] = ANCHOR_EMPTY
            continue
        if is_generic_anchor(text):
            u_cls[k] = ANCHOR_GENERIC
            continue
        words = set(analyze(text))
        if not words or target < 0:
            continue
        topic = topic_words.get(target)
        if topic is None:
            topic = topic_words[target] = set(analyze(target_topics[target] or ""))
        u_match[k] = len(words & topic) / len(words)
    cls, match = u_cls[codes], u_match[codes]
    factor = np.where(cls == ANCHOR_EMPTY, config.anchor_empty,
                      np.where(cls == ANCHOR_GENERIC, config.anchor_generic,
                               config.anchor_descriptive + (1.0 - config.anchor_descriptive) * match))
    if not config.use_anchor:
        factor = np.ones(n)
    return cls, match, factor


def topic_text(title: str | None, h1: str | None, url: str) -> str:
    """What a page is about, for anchor matching: its title, h1 and the words of its URL path."""
    path = url.split("://", 1)[-1].partition("/")[2]
    return " ".join([title or "", h1 or "", " ".join(_URL_WORDS.findall(path.lower()))])
