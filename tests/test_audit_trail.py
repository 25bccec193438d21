"""The audit trail and the checks it records: append-only in the service layer and in the
database, and `flapwatch audit-verify` catching whoever edits the database behind them."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from flapwatch.db import engine_of
from flapwatch.models import AuditEvent, Check
from flapwatch.services.audit import AppendOnlyError, verify_audit_trail

SQLITE_TRIGGERS = ("audit_events_no_update", "audit_events_no_delete", "checks_no_delete")


@contextmanager
def behind_flapwatchs_back(app: Any, backend: str) -> Any:
    """A connection as someone with the database's own keys: past the append-only triggers
    (PostgreSQL: a superuser's replica role; SQLite: the triggers dropped)."""
    with engine_of(app).begin() as connection:
        if backend == "postgresql":
            connection.execute(text("SET LOCAL session_replication_role = replica"))
        else:
            for trigger in (*SQLITE_TRIGGERS, "checks_values_unchanged"):
                connection.execute(text(f"DROP TRIGGER IF EXISTS {trigger}"))
        yield connection


@pytest.fixture
def ward(make):
    """A little history: a flap, three checks (one flagged), all through the services."""
    flap = make.reconstruction(hours_ago=5)
    checks = [
        make.check(flap, minutes_ago=240, colour="pink", flap_temperature_c=34.1),
        make.check(flap, minutes_ago=120, colour="pink", sto2_percent=71),
        make.check(flap, minutes_ago=30, colour="dusky", notes="Dusky at the lower pole"),
    ]
    return flap, checks


def _verify(runner) -> Any:
    return runner.invoke(args=["audit-verify"])


def test_an_untouched_trail_verifies(runner, ward, session):
    result = _verify(runner)
    assert result.exit_code == 0, result.output
    events = session.scalar(select(AuditEvent.id).order_by(AuditEvent.id.desc()))
    assert f"{events} events in an unbroken chain, 3 checks as recorded" in result.output


def test_an_edited_audit_event_is_named(app, backend, runner, ward, session):
    victim = session.scalars(select(AuditEvent).where(AuditEvent.action == "check.record")).first()
    with behind_flapwatchs_back(app, backend) as db:
        db.execute(
            text("UPDATE audit_events SET actor_username = 'someone-else' WHERE id = :id"),
            {"id": victim.id},
        )
    result = _verify(runner)
    assert result.exit_code == 1
    assert f"audit event {victim.id}: its contents no longer match its hash" in result.output


def test_a_removed_audit_event_is_caught_at_the_one_after_it(app, backend, runner, ward, session):
    ids = list(session.scalars(select(AuditEvent.id).order_by(AuditEvent.id)))
    with behind_flapwatchs_back(app, backend) as db:
        db.execute(text("DELETE FROM audit_events WHERE id = :id"), {"id": ids[3]})
    result = _verify(runner)
    assert result.exit_code == 1
    assert f"audit event {ids[4]}: does not follow the event before it" in result.output


def test_the_last_events_cut_off_are_caught(app, backend, runner, ward, session):
    last = session.scalar(select(AuditEvent.id).order_by(AuditEvent.id.desc()))
    with behind_flapwatchs_back(app, backend) as db:
        db.execute(text("DELETE FROM audit_events WHERE id = :id"), {"id": last})
    result = _verify(runner)
    assert result.exit_code == 1
    assert "the end of the trail" in result.output and "removed" in result.output


def test_an_edited_check_is_named_with_the_field(app, backend, runner, ward):
    _, checks = ward
    with behind_flapwatchs_back(app, backend) as db:
        db.execute(
            text("UPDATE checks SET colour = 'pink', sto2_percent = 80 WHERE id = :id"),
            {"id": checks[2].id},
        )
    result = _verify(runner)
    assert result.exit_code == 1
    assert f"check {checks[2].id}: differs from what was recorded (colour, sto2_percent)" in (
        result.output
    )


def test_a_check_slipped_in_without_its_record_is_caught(app, backend, runner, ward):
    flap, checks = ward
    with behind_flapwatchs_back(app, backend) as db:
        db.execute(
            text(
                "INSERT INTO checks (reconstruction_id, taken_at, recorded_at, recorded_by_id,"
                " first_recorded_at, colour) SELECT reconstruction_id, taken_at, recorded_at,"
                " recorded_by_id, first_recorded_at, 'pink' FROM checks WHERE id = :id"
            ),
            {"id": checks[0].id},
        )
    result = _verify(runner)
    assert result.exit_code == 1
    assert "has no record in the audit trail" in result.output


def test_a_deleted_check_is_caught(app, backend, runner, ward):
    _, checks = ward
    with behind_flapwatchs_back(app, backend) as db:
        db.execute(text("DELETE FROM check_flags WHERE check_id = :id"), {"id": checks[1].id})
        db.execute(text("DELETE FROM checks WHERE id = :id"), {"id": checks[1].id})
    result = _verify(runner)
    assert result.exit_code == 1
    assert f"check {checks[1].id}: was recorded but is no longer stored" in result.output


# --- the database refuses, whatever code asks --------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET action = 'nothing' WHERE id = 1",
        "DELETE FROM audit_events WHERE id = 1",
        "UPDATE checks SET colour = 'pink' WHERE colour = 'dusky'",
        "UPDATE checks SET taken_at = recorded_at",
        "DELETE FROM checks",
    ],
)
def test_the_database_refuses_to_rewrite_the_record(app, ward, statement):
    with pytest.raises(DBAPIError, match="append-only|never changed"):  # noqa: SIM117
        with engine_of(app).begin() as db:
            db.execute(text(statement))


def test_the_database_lets_the_severity_of_a_check_be_stored(app, ward):
    """Evaluating a check sets its severity after the row is written: that stays possible."""
    _, checks = ward
    with engine_of(app).begin() as db:
        db.execute(text("UPDATE checks SET severity = 'red' WHERE id = :id"), {"id": checks[0].id})


def test_the_service_layer_refuses_to_change_a_checks_values(session, ward):
    _, checks = ward
    check = session.get(Check, checks[0].id)
    check.colour = "blue"
    with pytest.raises(AppendOnlyError, match="a correction is an amendment"):
        session.commit()
    session.rollback()


def test_the_service_layer_refuses_to_delete_or_edit_an_audit_event(session, ward):
    event = session.scalars(select(AuditEvent)).first()
    event.after = {"rewritten": True}
    with pytest.raises(AppendOnlyError, match="cannot be changed"):
        session.commit()
    session.rollback()
    session.delete(session.scalars(select(AuditEvent)).first())
    with pytest.raises(AppendOnlyError, match="cannot be deleted"):
        session.commit()
    session.rollback()


def test_verification_streams_a_long_trail(make, session):
    flap = make.reconstruction(hours_ago=30)
    for index in range(60):
        make.check(flap, minutes_ago=1700 - index * 25, colour="pink")
    result = verify_audit_trail(session)
    assert result.intact and result.checks == 60
