"""Exceptions raised by linkjuice.

Per-URL problems (timeouts, 404s, robots blocks) are *data* stored on the page and never raise.
Only a failure of a whole operation raises, always from one base class so that the CLI can turn
it into a single clean line::

    LinkJuiceError
     +-- UsageError          bad arguments or options (exit code 2)
     +-- StoreError          the DuckDB file is missing, corrupt, locked or unwritable
     +-- CrawlError          the crawl as a whole cannot proceed (unreachable start URL, nothing crawled)
     +-- InputFileError      an imported file is missing, of the wrong type, or malformed
     +-- ScoringError        the scoring engine failed (for example did not converge)
     +-- MissingExtraError   an optional feature's extra is not installed
"""

from __future__ import annotations

__all__ = [
    "LinkJuiceError",
    "UsageError",
    "StoreError",
    "CrawlError",
    "InputFileError",
    "ScoringError",
    "MissingExtraError",
]


class LinkJuiceError(Exception):
    """Base class of every error linkjuice raises on purpose."""

    exit_code: int = 1


class UsageError(LinkJuiceError):
    """The user asked for something that cannot work (bad URL, bad option value)."""

    exit_code = 2


class StoreError(LinkJuiceError):
    """The store cannot be opened, read or written."""


class CrawlError(LinkJuiceError):
    """The crawl as a whole failed."""


class InputFileError(LinkJuiceError):
    """An input file is missing or malformed; `line` names the offending line when known."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None) -> None:
        where = ""
        if path is not None:
            where = f"{path}"
            if line is not None:
                where += f", line {line}"
            where += ": "
        super().__init__(where + message)
        self.path = path
        self.line = line


class ScoringError(LinkJuiceError):
    """The scoring engine failed."""


class MissingExtraError(LinkJuiceError):
    """An optional feature needs an extra that is not installed."""

    def __init__(self, feature: str, extra: str) -> None:
        super().__init__(f"{feature} needs the '{extra}' extra: pip install 'linkjuice[{extra}]'")
        self.extra = extra
