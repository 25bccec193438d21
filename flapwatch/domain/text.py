"""What free text may hold: tabs and line breaks belong in notes; NUL and the other control
characters belong nowhere (PostgreSQL cannot even store NUL, and they hide text on screen)."""

from __future__ import annotations

CONTROL_CHARACTER_MESSAGE = "Contains a control character: type it again without it."


def has_control_characters(text: str) -> bool:
    return any((ord(c) < 32 and c not in "\t\n\r") or ord(c) == 127 for c in text)
