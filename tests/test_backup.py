"""flapwatch backup and restore: a checked copy taken while the app runs, and a restore that
keeps what it replaces and ends with the audit chain verified."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select

from flapwatch.db import engine_of
from flapwatch.models import Check


def check_count(session) -> int:
    session.rollback()
    return int(session.scalar(select(func.count(Check.id))))


def only_sqlite(backend: str) -> None:
    if backend != "sqlite":
        pytest.skip("flapwatch backup copies SQLite; PostgreSQL uses pg_dump (tested below)")


def test_a_restore_brings_back_the_backup_and_keeps_the_database_it_replaced(
    app, backend, runner, make, session, tmp_path
):
    only_sqlite(backend)
    flap = make.reconstruction(hours_ago=5)
    make.check(flap, minutes_ago=90, colour="pink")
    make.check(flap, minutes_ago=30, colour="dusky")  # flagged: an escalation too
    target = tmp_path / "backup.sqlite3"

    answer = runner.invoke(args=["backup", str(target)])
    assert answer.exit_code == 0, answer.output
    assert "2 check rows" in answer.output and "unbroken chain" in answer.output
    make.check(flap, colour="pink")  # after the backup
    assert check_count(session) == 3
    session.close()

    answer = runner.invoke(args=["restore", str(target), "--yes"])
    assert answer.exit_code == 0, answer.output
    assert "Audit trail intact" in answer.output
    assert check_count(session) == 2
    assert runner.invoke(args=["audit-verify"]).exit_code == 0
    # The database replaced, with the check recorded after the backup, is kept.
    (kept,) = Path(engine_of(app).url.database).parent.glob("*.before-restore-*")
    with sqlite3.connect(kept) as replaced:
        assert replaced.execute("SELECT count(*) FROM checks").fetchone() == (3,)


def test_a_backup_never_overwrites_a_file(backend, runner, tmp_path):
    only_sqlite(backend)
    target = tmp_path / "existing.sqlite3"
    target.write_text("yesterday's backup")
    answer = runner.invoke(args=["backup", str(target)])
    assert answer.exit_code == 1
    assert "already exists" in answer.output
    assert target.read_text() == "yesterday's backup"


def test_a_backup_whose_records_were_altered_is_refused_and_nothing_is_replaced(
    backend, runner, make, session, tmp_path
):
    only_sqlite(backend)
    flap = make.reconstruction(hours_ago=5)
    make.check(flap, minutes_ago=30, colour="pink")
    target = tmp_path / "backup.sqlite3"
    assert runner.invoke(args=["backup", str(target)]).exit_code == 0
    with sqlite3.connect(target) as altered:  # someone edits the copy behind the app's back
        for (name,) in altered.execute("SELECT name FROM sqlite_master WHERE type='trigger'"):
            altered.execute(f'DROP TRIGGER "{name}"')
        altered.execute("UPDATE checks SET colour = 'dusky'")

    answer = runner.invoke(args=["restore", str(target), "--yes"])
    assert answer.exit_code == 1
    assert "audit trail broken" in answer.output
    session.rollback()
    assert session.scalar(select(Check.colour)) == "pink"


def test_a_file_that_is_not_a_database_is_refused(backend, runner, tmp_path):
    only_sqlite(backend)
    junk = tmp_path / "notes.txt"
    junk.write_text("not a database at all, but long enough to look like one " * 20)
    answer = runner.invoke(args=["restore", str(junk), "--yes"])
    assert answer.exit_code == 1
    assert "not an SQLite database" in answer.output or "not a flapwatch database" in (
        answer.output
    )


def test_a_backup_taken_while_checks_are_saved_is_consistent(app, backend, runner, make, tmp_path):
    only_sqlite(backend)
    from flapwatch.db import EXTENSION_KEY
    from flapwatch.domain.checks import CheckValues
    from flapwatch.models import utcnow
    from flapwatch.services.checks import record_check

    flap = make.reconstruction(hours_ago=5)
    nurse = make.actor(make.user("nurse", "PLAST-W3"))
    stop = threading.Event()

    def keep_saving() -> None:
        own = app.extensions[EXTENSION_KEY]()
        try:
            while not stop.is_set():
                record_check(own, nurse, flap.id, CheckValues(taken_at=utcnow(), colour="pink"))
        finally:
            own.close()

    writer = threading.Thread(target=keep_saving)
    writer.start()
    try:
        answers = [
            runner.invoke(args=["backup", str(tmp_path / f"b{n}.sqlite3")]) for n in range(3)
        ]
    finally:
        stop.set()
        writer.join()
    for answer in answers:
        assert answer.exit_code == 0, answer.output  # each copy checked: chain and checks agree


def test_on_postgresql_backup_points_to_pg_dump(backend, runner, tmp_path):
    if backend != "postgresql":
        pytest.skip("the PostgreSQL answer")
    answer = runner.invoke(args=["backup", str(tmp_path / "b.dump")])
    assert answer.exit_code == 1
    assert "pg_dump" in answer.output
    assert not (tmp_path / "b.dump").exists()
