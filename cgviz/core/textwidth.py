"""How many terminal columns a text takes: CJK characters take two, combining marks none."""

from __future__ import annotations

import unicodedata


def width(text: str) -> int:
    """Columns `text` takes in a terminal (East Asian wide and full-width characters count two)."""
    if text.isascii():
        return len(text)
    return sum(0 if unicodedata.combining(c) or unicodedata.category(c) in ("Mn", "Me", "Cf")
               else 2 if unicodedata.east_asian_width(c) in ("W", "F") else 1 for c in text)


def ljust(text: str, columns: int) -> str:
    return text + " " * max(0, columns - width(text))


def rjust(text: str, columns: int) -> str:
    return " " * max(0, columns - width(text)) + text
