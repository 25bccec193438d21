"""Backing up and restoring an SQLite database (PostgreSQL: pg_dump and pg_restore, README).

A backup is taken with SQLite's online backup API, so the app may go on saving checks while it
runs: the copy is one consistent moment. Both directions check what they copy: the file's
integrity, its schema version, and its audit trail's hash chain. A restore never destroys the
database it replaces: that is kept beside it first.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from flapwatch.db import make_engine


class BackupError(Exception):
    """A backup or restore that was refused or failed; nothing was changed."""


@dataclass(frozen=True)
class Snapshot:
    """What a database file holds, once checked."""

    path: Path
    schema_version: str
    checks: int
    audit_events: int
    size_bytes: int

    def describe(self) -> str:
        return (
            f"{self.path}: schema {self.schema_version}, {self.checks} check rows, "
            f"{self.audit_events} audit events in an unbroken chain, "
            f"{self.size_bytes / 1e6:.1f} MB"
        )


def sqlite_path(engine: Engine) -> Path:
    """The database file behind an SQLite engine; a PostgreSQL engine is refused."""
    if engine.dialect.name != "sqlite":
        raise BackupError(
            "flapwatch backup and restore copy SQLite databases. For PostgreSQL use pg_dump "
            "and pg_restore (README, Security: backup and restore)."
        )
    database = engine.url.database
    if not database or database == ":memory:":
        raise BackupError("The database is in memory: there is no file to back up.")
    return Path(database).resolve()


def backup(engine: Engine, target: Path) -> Snapshot:
    """Copies the live database to `target` (which must not exist) and checks the copy."""
    source = sqlite_path(engine)
    target = target.resolve()
    if target.exists():
        raise BackupError(f"{target} already exists: a backup never overwrites a file.")
    if not target.parent.is_dir():
        raise BackupError(f"{target.parent} is not a directory.")
    partial = target.with_name(target.name + ".partial")
    try:
        _copy(source, partial)
        # One self-contained file, readable even from read-only media (no -wal or -shm).
        with sqlite3.connect(partial) as copy:
            copy.execute("PRAGMA journal_mode=DELETE")
        snapshot = check_file(partial)
        partial.rename(target)
    finally:
        partial.unlink(missing_ok=True)
    return replace(snapshot, path=target)


def restore(engine: Engine, checked: Snapshot, now: datetime) -> Path:
    """Replaces the database with the backup `checked`, which check_file has passed.

    The database being replaced is first copied to `<database>.before-restore-<time>`, whose
    path is returned. Stop the app servers first: they would otherwise go on with connections
    to the old file's pages.
    """
    live = sqlite_path(engine)
    kept = live.with_name(f"{live.name}.before-restore-{now:%Y%m%dT%H%M%S}")
    if live.exists():
        if kept.exists():
            raise BackupError(f"{kept} already exists; try again in a second.")
        engine.dispose()
        _copy(live, kept)
    _copy(checked.path, live)
    engine.dispose()
    return kept


def check_file(path: Path) -> Snapshot:
    """Integrity, schema version and audit chain of a database file, else BackupError."""
    from flapwatch.services.audit import verify_audit_trail

    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
            (integrity,) = connection.execute("PRAGMA integrity_check").fetchone()
    except sqlite3.DatabaseError as error:
        raise BackupError(f"{path} is not an SQLite database ({error}).") from error
    if integrity != "ok":
        raise BackupError(f"{path} is damaged: {integrity}")
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as connection:
            version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
            checks = connection.execute(text("SELECT count(*) FROM checks")).scalar_one()
        with Session(engine) as session:
            verification = verify_audit_trail(session)
    except Exception as error:  # not a flapwatch database: no tables, no version
        if isinstance(error, BackupError):
            raise
        raise BackupError(f"{path} is not a flapwatch database ({error}).") from error
    finally:
        engine.dispose()
    if verification.broken is not None:
        raise BackupError(f"{path}: audit trail broken at {verification.broken}.")
    return Snapshot(path, str(version), int(checks), verification.events, path.stat().st_size)


def _copy(source: Path, target: Path) -> None:
    """SQLite's online backup: a consistent copy even while others write to `source`."""
    with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as reader:
        writer = sqlite3.connect(target)
        try:
            reader.backup(writer)
        finally:
            writer.close()
    if not target.exists():  # pragma: no cover - sqlite3 always makes it
        raise BackupError(f"{target} was not written.")
