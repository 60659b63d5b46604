"""CLI commands that live outside cli.py, one module per pipeline stage.

Each module imports `app` (and helpers) from linkjuice.cli and registers its commands; cli.py
imports this package at its end, after `app` exists.
"""

from __future__ import annotations

from . import model  # noqa: E402,F401
from . import engines  # noqa: E402,F401
from . import imports  # noqa: E402,F401
from . import audit  # noqa: E402,F401
from . import opportunities  # noqa: E402,F401
from . import report  # noqa: E402,F401
