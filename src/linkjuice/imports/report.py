"""What an import did: rows stored, rows skipped (per reason, with the first line numbers)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["ImportReport", "SkippedRows", "SkipTally"]

_KEEP_LINES = 5


@dataclass(frozen=True, slots=True, kw_only=True)
class SkippedRows:
    """Rows left out for one reason. `lines` holds the first few line numbers (empty for Parquet,
    where rows have no lines); `example` one offending value when lines cannot be given."""

    reason: str
    count: int
    lines: tuple[int, ...] = ()
    example: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportReport:
    """The outcome of one import, for the CLI summary and for tests."""

    kind: str  # urls, gsc, priorities, backlinks, links
    path: str
    format: str  # the layout detected, in words ("Ahrefs backlinks (v3)")
    rows: int  # rows stored
    table: str  # the table written
    skipped: tuple[SkippedRows, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def skipped_rows(self) -> int:
        return sum(s.count for s in self.skipped)

    def skipped_for(self, reason_start: str) -> SkippedRows | None:
        """The skip entry whose reason starts with `reason_start` (for tests and callers)."""
        return next((s for s in self.skipped if s.reason.startswith(reason_start)), None)


@dataclass(slots=True)
class SkipTally:
    """Counts skipped rows per reason and keeps the first line numbers of each."""

    keep: int = _KEEP_LINES
    _counts: dict[str, int] = field(default_factory=dict)
    _lines: dict[str, list[int]] = field(default_factory=dict)

    def add(self, reason: str, line: int) -> None:
        self._counts[reason] = self._counts.get(reason, 0) + 1
        kept = self._lines.setdefault(reason, [])
        if len(kept) < self.keep:
            kept.append(line)

    @property
    def total(self) -> int:
        return sum(self._counts.values())

    def first(self) -> tuple[str, int] | None:
        """The most common reason and its first line (for an error when nothing was usable)."""
        if not self._counts:
            return None
        reason = max(self._counts, key=lambda r: self._counts[r])
        return reason, self._lines[reason][0]

    def result(self) -> tuple[SkippedRows, ...]:
        order = sorted(self._counts, key=lambda r: (-self._counts[r], r))
        return tuple(SkippedRows(reason=r, count=self._counts[r], lines=tuple(self._lines[r])) for r in order)
