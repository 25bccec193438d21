"""Where the files that are not Python stand: templates/, static/ and migrations/."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    """templates/, static/ or migrations/: inside the package when installed from a wheel,
    at the repository root in a checkout (DESIGN.md §4)."""
    packaged = PACKAGE_DIR / name
    return packaged if packaged.is_dir() else PACKAGE_DIR.parent / name
