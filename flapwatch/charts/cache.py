"""Rendered charts on disk, keyed by the flap's data version: a chart is drawn once for each
change of its data, whichever app server asks. Free of matplotlib."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


class ChartCache:
    """Rendered charts on disk, one file per flap, size, format and data version.

    Several app processes (or servers sharing the directory) use it safely: a file appears
    whole (written aside, then renamed) and its name holds the version, so a process never
    serves a chart older than the data it just read. Older versions of a flap's chart are
    removed when a newer one is written.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, reconstruction_id: int, variant: str, fmt: str, version: str) -> Path:
        return self.directory / f"{reconstruction_id}-{variant}-{version}.{fmt}"

    def get(self, reconstruction_id: int, variant: str, fmt: str, version: str) -> bytes | None:
        try:
            return self._path(reconstruction_id, variant, fmt, version).read_bytes()
        except FileNotFoundError:
            return None

    def put(
        self, reconstruction_id: int, variant: str, fmt: str, version: str, data: bytes
    ) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self._path(reconstruction_id, variant, fmt, version)
        descriptor, temporary = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(data)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        for older in self.directory.glob(f"{reconstruction_id}-{variant}-*.{fmt}"):
            if older != path:
                older.unlink(missing_ok=True)

    def fetch(
        self,
        reconstruction_id: int,
        variant: str,
        fmt: str,
        version: str,
        draw: Callable[[], bytes],
    ) -> tuple[bytes, bool]:
        """The cached chart, or `draw()` stored for next time; and whether it was cached."""
        cached = self.get(reconstruction_id, variant, fmt, version)
        if cached is not None:
            return cached, True
        data = draw()
        self.put(reconstruction_id, variant, fmt, version, data)
        return data, False
