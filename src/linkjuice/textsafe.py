"""Crawled text is data, never markup or terminal control: helpers to make it safe to show."""

from __future__ import annotations

import re

__all__ = ["clean_text"]

# C0/C1 controls except tab and newline; ESC (0x1b) is among them, so ANSI sequences are defused.
# Also the bidi embedding, override and isolate controls, which can make a line display other
# text than it holds ("Trojan Source").
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def clean_text(text: object) -> str:
    """Remove control characters (terminal escape sequences included) from crawled text.
    None and NaN (a missing value in a DataFrame) become an empty string."""
    if not isinstance(text, str):
        text = "" if text is None or text != text else str(text)
    return _CONTROL.sub("", text)
