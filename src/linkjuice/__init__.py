"""linkjuice: see how link authority flows through a website, what blocks it, and how to fix it."""

from __future__ import annotations

__version__ = "0.1.0"
