"""Imports: outside data (URL lists, Search Console, priorities, backlinks) and link graphs from
other tools, read from the files those tools export.

Modules, in data-flow order: `reader` (encodings, delimiters, header rows), `formats` (which tool
wrote a file and which column means what), `lists` (urls, gsc, priorities), `backlinks`, `links`
(Screaming Frog / edge lists, streamed through DuckDB), `report` (what each import did).
docs/imports.md lists the formats detected.
"""

from __future__ import annotations

from .backlinks import backlink_authority, detect_backlink_format, import_backlinks, resolve_backlink_targets
from .links import SF_LINK_POSITIONS, import_links
from .lists import import_gsc, import_priorities, import_urls
from .report import ImportReport, SkippedRows

__all__ = [
    "ImportReport",
    "SkippedRows",
    "import_urls",
    "import_gsc",
    "import_priorities",
    "import_backlinks",
    "import_links",
    "resolve_backlink_targets",
    "backlink_authority",
    "detect_backlink_format",
    "SF_LINK_POSITIONS",
]
