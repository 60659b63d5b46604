"""Settings for the crawl and the link-juice model, as frozen keyword-only dataclasses.

Every setting has a CLI option; `linkjuice.toml` (see docs/configuration.md) can set the same names.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .errors import UsageError
from .models import LinkPosition

__all__ = [
    "DEFAULT_USER_AGENT",
    "DEFAULT_POSITION_WEIGHTS",
    "CrawlConfig",
    "ModelConfig",
    "RELEVANCE_ENGINES",
    "load_toml",
]

from . import __version__ as _version

DEFAULT_USER_AGENT = f"linkjuice/{_version} (+https://github.com/linkjuice/linkjuice)"

# Reasonable-surfer defaults: how likely a reader is to follow a link in each place.
DEFAULT_POSITION_WEIGHTS: Mapping[str, float] = {
    LinkPosition.CONTENT: 1.0,
    LinkPosition.ASIDE: 0.5,
    LinkPosition.HEADER: 0.3,
    LinkPosition.NAV: 0.3,
    LinkPosition.TEMPLATE: 0.3,
    LinkPosition.FOOTER: 0.15,
}

RELEVANCE_ENGINES: tuple[str, ...] = ("tfidf", "semantic")


@dataclass(frozen=True, slots=True, kw_only=True)
class CrawlConfig:
    """How to crawl. Defaults are polite for a public site."""

    start_url: str
    user_agent: str = DEFAULT_USER_AGENT
    concurrency: int = 8
    rate: float | None = None  # requests per second per host; None = unlimited
    obey_robots: bool = True
    use_sitemaps: bool = True
    subdomains: bool = False
    include: Sequence[str] = ()
    exclude: Sequence[str] = ()
    max_pages: int | None = None
    max_depth: int | None = None
    timeout: float = 20.0  # seconds per request
    max_body_bytes: int = 10 * 1024 * 1024  # after decompression
    max_redirects: int = 10  # hops in one chain before it is cut
    retries: int = 2
    backoff: float = 0.5  # seconds, doubled per retry unless Retry-After says otherwise
    strip_tracking: bool = False
    local_root: str | None = None  # local mode: serve this folder as start_url's site
    template_share: float = 0.5  # a content link on more than this share of pages is a template link
    template_min_pages: int = 10
    batch_size: int = 500  # pages per store write (at most _FLUSH_SECONDS apart: crawler.py)
    # Processes that parse HTML beside the event loop (linkjuice.crawl.workers): None = 2 on 2+
    # cores (none on one), started once the crawl turns out not to be tiny; 0 = parse in-process.
    extract_workers: int | None = None
    # Crawler traps (linkjuice.crawl.traps): URLs of one shape, repeats of a path segment or query
    # parameter, and query length; URLs past a limit are recorded, not crawled.
    max_urls_per_pattern: int = 1000
    max_path_repeats: int = 3
    max_query_length: int = 1024
    # Rendering (crawl --render, linkjuice.crawl.render): 200 HTML pages are also loaded in headless
    # Chromium; render_wait_ms None waits for network idle, else this many ms after the load event.
    render: bool = False
    render_wait_ms: int | None = None
    render_pages: int = 4  # browser pages rendering at once
    browser_path: str | None = None  # Chromium; default $LINKJUICE_CHROMIUM, then /usr/bin/chromium

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise UsageError("--concurrency must be at least 1")
        if self.rate is not None and self.rate <= 0:
            raise UsageError("--rate must be positive")
        if self.max_pages is not None and self.max_pages < 1:
            raise UsageError("--max-pages must be at least 1")
        if self.max_depth is not None and self.max_depth < 0:
            raise UsageError("--max-depth must be 0 or more")
        if self.timeout <= 0:
            raise UsageError("--timeout must be positive")
        if self.max_urls_per_pattern < 1:
            raise UsageError("--max-per-pattern must be at least 1")
        if self.max_body_bytes < 1:
            raise UsageError("--max-body must be at least 1")
        if self.extract_workers is not None and self.extract_workers < 0:
            raise UsageError("--workers must be 0 or more")
        if self.render_pages < 1:
            raise UsageError("--render-pages must be at least 1")
        if self.render_wait_ms is not None and self.render_wait_ms < 0:
            raise UsageError("--render-wait must be 0 or more milliseconds")


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelConfig:
    """The link-juice model's parameters (docs/model.md explains each)."""

    damping: float = 0.85
    tol: float = 1e-10  # L1 change between iterations
    max_iter: int = 1000
    position_weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_POSITION_WEIGHTS))
    # Relevance factor (1 - a) + a * cosine; 0 turns relevance off.
    relevance_weight: float = 0.5
    # How the cosine is computed: tfidf (words) or semantic (sentence embeddings, the `semantic`
    # extra; docs/relevance.md); relevance_model_path is another ONNX model folder for semantic.
    relevance_engine: str = "tfidf"
    relevance_model_path: str | None = None
    # Anchor factors: empty and generic anchors; a descriptive anchor gets base + (1 - base) * match.
    use_anchor: bool = True
    anchor_empty: float = 0.5
    anchor_generic: float = 0.5
    anchor_descriptive: float = 0.75
    # Outside authority: share of the teleport vector driven by backlinks (when any are imported),
    # and how a 0-100 authority metric becomes a weight: base ** (metric / 10).
    backlink_mix: float = 0.5
    authority_base: float = 2.0
    # Share of juice that survives each redirect hop. Google says 3xx redirects pass full
    # PageRank, hence 1.0; set lower to model a loss per hop.
    redirect_factor: float = 1.0
    # Site sections for the flow matrix: the first N path segments.
    section_depth: int = 1

    def __post_init__(self) -> None:
        if not 0 < self.damping < 1:
            raise UsageError("damping must be between 0 and 1")
        for name in ("relevance_weight", "anchor_empty", "anchor_generic", "anchor_descriptive", "backlink_mix",
                     "redirect_factor"):
            if not 0 <= getattr(self, name) <= 1:
                raise UsageError(f"{name.replace('_', '-')} must be between 0 and 1")
        if self.authority_base < 1:
            raise UsageError("authority-base must be at least 1")
        if self.relevance_engine not in RELEVANCE_ENGINES:
            raise UsageError(f"unknown relevance engine {self.relevance_engine!r}: choose {' or '.join(RELEVANCE_ENGINES)}")
        if self.relevance_model_path and self.relevance_engine != "semantic":
            raise UsageError("a relevance model path (--model-path) needs the semantic engine")
        for name, weight in self.position_weights.items():
            if name not in LinkPosition.__members__.values():
                raise UsageError(f"unknown link position {name!r} in position weights")
            if weight < 0:
                raise UsageError(f"position weight for {name!r} must not be negative")

    def weight_of(self, position: str) -> float:
        return float(self.position_weights.get(position, DEFAULT_POSITION_WEIGHTS[position]))


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read linkjuice.toml; a missing file is an empty configuration."""
    p = Path(path)
    if not p.exists():
        return {}
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{p}: not valid TOML ({exc})") from None


def with_overrides(config: Any, values: Mapping[str, Any]) -> Any:
    """Return `config` with the known keys of `values` replaced (unknown keys raise UsageError)."""
    known = {f.name for f in fields(config)}
    unknown = set(values) - known
    if unknown:
        raise UsageError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    return replace(config, **values)
