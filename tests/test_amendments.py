"""Correcting a check: a new version with a reason, the original kept, rules evaluated again."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, text

from flapwatch.db import engine_of
from flapwatch.domain.checks import CheckValues
from flapwatch.domain.vocabulary import Role
from flapwatch.models import AuditEvent, Check, Escalation, EscalationEvent, utcnow
from flapwatch.services import Forbidden, InvalidInput, NotFound
from flapwatch.services.audit import verify_audit_trail
from flapwatch.services.checks import amend_check, check_history
from flapwatch.services.ward import flap_record, ward_board
from tests.test_audit_trail import behind_flapwatchs_back


@pytest.fixture
def nurse(make):
    return make.actor(make.user(Role.NURSE))


def _values(check: Check, **changes) -> CheckValues:
    return CheckValues(**{**check.values().as_dict(), **changes})


def test_a_correction_is_a_new_version_and_the_original_stays_as_recorded(make, session, nurse):
    flap = make.reconstruction(hours_ago=3)
    original = make.check(flap, minutes_ago=30, colour="pink", flap_temperature_c=43.0)

    amended = amend_check(
        session,
        nurse,
        original.id,
        reason="Typed 43.0 for 34.0",
        values=_values(original, flap_temperature_c=34.0),
    )

    assert amended.check.id != original.id
    assert (amended.check.version, amended.check.amends_id) == (2, original.id)
    assert amended.check.flap_temperature_c == 34.0
    kept = session.execute(
        text("SELECT flap_temperature_c, superseded_by_id FROM checks WHERE id = :id"),
        {"id": original.id},
    ).one()
    assert tuple(kept) == (43.0, amended.check.id)
    shown = flap_record(session, nurse, flap.id, utcnow()).checks
    assert [c.id for c in shown] == [amended.check.id]  # the record shows its current version
    history = check_history(session, nurse, original.id)
    assert [(v.version, v.flap_temperature_c, v.amendment_reason) for v in history] == [
        (1, 43.0, None),
        (2, 34.0, "Typed 43.0 for 34.0"),
    ]
    assert history == check_history(session, nurse, amended.check.id)


def test_a_correction_that_reveals_a_sign_flags_and_escalates(make, session, nurse):
    flap = make.reconstruction(hours_ago=3)
    original = make.check(flap, minutes_ago=30, colour="pink")
    assert session.scalar(select(Escalation.id)) is None

    amended = amend_check(
        session, nurse, original.id, reason="It was dusky", values=_values(original, colour="dusky")
    )

    assert (amended.flags_before, amended.flags_after) == ([], ["venous"])
    escalation = session.scalars(select(Escalation)).one()
    assert escalation.opened_by_check_id == amended.check.id
    event = session.scalars(select(AuditEvent).where(AuditEvent.action == "check.amend")).one()
    assert event.before["flags"] == [] and event.after["flags"] == ["venous"]
    assert event.after["amendment_reason"] == "It was dusky"
    assert event.before["check_id"] == original.id


def test_the_same_sign_kept_by_a_correction_does_not_escalate_again(make, session, nurse):
    flap = make.reconstruction(hours_ago=3)
    original = make.check(flap, minutes_ago=30, colour="dusky")
    events_before = session.scalar(select(EscalationEvent.id).order_by(EscalationEvent.id.desc()))

    amend_check(
        session,
        nurse,
        original.id,
        reason="Add the note I forgot",
        values=_values(original, notes="Dusky at the lower pole"),
    )

    newest = session.scalar(select(EscalationEvent.id).order_by(EscalationEvent.id.desc()))
    assert newest == events_before


def test_a_correction_that_removes_a_flag_records_it_and_leaves_the_escalation_open(
    make, session, nurse
):
    flap = make.reconstruction(hours_ago=3)
    original = make.check(flap, minutes_ago=30, colour="dusky")
    amended = amend_check(
        session, nurse, original.id, reason="Wrong button", values=_values(original, colour="pink")
    )
    assert (amended.flags_before, amended.flags_after) == (["venous"], [])
    assert amended.check.severity is None
    assert session.scalars(select(Escalation)).one().closed_at is None


def test_a_check_entered_in_error_leaves_the_schedule_and_the_board(make, session, nurse):
    flap = make.reconstruction(hours_ago=5)
    earlier = make.check(flap, minutes_ago=90, colour="pink")
    wrong_patient = make.check(flap, minutes_ago=10, colour="pink")
    before = ward_board(session, nurse, "PLAST-W3", utcnow()).flaps[0]
    assert before.last_check.id == wrong_patient.id

    withdrawn = amend_check(
        session,
        nurse,
        wrong_patient.id,
        reason="Recorded on the wrong patient",
        entered_in_error=True,
    )

    assert withdrawn.check.entered_in_error and withdrawn.check.flags == []
    after = ward_board(session, nurse, "PLAST-W3", utcnow()).flaps[0]
    assert after.last_check.id == earlier.id
    assert after.next_due_at == earlier.taken_at + timedelta(hours=1)
    assert withdrawn.next_due_at == after.next_due_at
    shown = flap_record(session, nurse, flap.id, utcnow()).checks
    assert [c.id for c in shown] == [withdrawn.check.id, earlier.id]  # struck through, not gone


def test_a_withdrawn_check_no_longer_counts_as_the_previous_one_for_trend_rules(
    make, session, nurse
):
    flap = make.reconstruction(hours_ago=5)
    make.check(flap, minutes_ago=120, doppler_venous="absent")
    mistaken = make.check(flap, minutes_ago=60, doppler_venous="present")
    amend_check(session, nurse, mistaken.id, reason="Other patient's", entered_in_error=True)
    # Absent, then (withdrawn) present, then absent: no signal was lost in between.
    later = make.check(flap, minutes_ago=5, doppler_venous="absent")
    assert "doppler-change" not in [flag.rule_id for flag in later.flags]


def test_a_corrected_time_moves_the_next_check(make, session, nurse):
    flap = make.reconstruction(hours_ago=5)
    check = make.check(flap, minutes_ago=10, colour="pink")
    amended = amend_check(
        session,
        nurse,
        check.id,
        reason="Taken at the start of the drug round",
        values=_values(check, taken_at=check.taken_at - timedelta(minutes=40)),
    )
    assert amended.next_due_at == check.taken_at - timedelta(minutes=40) + timedelta(hours=1)


def test_a_correction_needs_a_reason_and_valid_values(make, session, nurse):
    flap = make.reconstruction(hours_ago=3)
    check = make.check(flap, minutes_ago=30, colour="pink")
    with pytest.raises(InvalidInput) as refused:
        amend_check(
            session, nurse, check.id, reason="  ", values=_values(check, flap_temperature_c=60.0)
        )
    assert set(refused.value.problems) == {"reason", "flap_temperature_c"}
    assert session.scalar(select(Check.superseded_by_id).where(Check.id == check.id)) is None


def test_only_the_latest_version_can_be_corrected(make, session, nurse):
    flap = make.reconstruction(hours_ago=3)
    check = make.check(flap, minutes_ago=30, colour="pink")
    amend_check(session, nurse, check.id, reason="One", values=_values(check, colour="pale"))
    with pytest.raises(InvalidInput, match="not saved") as refused:
        amend_check(session, nurse, check.id, reason="Two", values=_values(check, colour="blue"))
    assert "already been corrected" in refused.value.problems[""]


def test_corrections_keep_to_the_clinical_roles_and_the_units(make, session):
    flap = make.reconstruction(hours_ago=3)
    check = make.check(flap, minutes_ago=30, colour="pink")
    auditor = make.actor(make.user(Role.AUDITOR))
    with pytest.raises(Forbidden):
        amend_check(session, auditor, check.id, reason="x", entered_in_error=True)
    outsider = make.actor(make.user(Role.NURSE, "ORTHO-W1"))
    with pytest.raises(NotFound):
        amend_check(session, outsider, check.id, reason="x", entered_in_error=True)


def test_the_trail_verifies_after_corrections_and_catches_a_version_unhooked(
    app, backend, make, session, nurse
):
    flap = make.reconstruction(hours_ago=3)
    check = make.check(flap, minutes_ago=30, colour="pink")
    amended = amend_check(
        session, nurse, check.id, reason="x", values=_values(check, turgor="soft")
    )
    withdrawn = amend_check(session, nurse, amended.check.id, reason="y", entered_in_error=True)
    result = verify_audit_trail(session)
    assert result.intact and result.checks == 3, result.broken
    session.close()  # a new session, as a new `flapwatch audit-verify` has

    with behind_flapwatchs_back(app, backend) as db:  # bring the first version back to life
        db.execute(
            text("UPDATE checks SET superseded_by_id = NULL WHERE id = :id"), {"id": check.id}
        )
    broken = verify_audit_trail(session).broken
    assert broken is not None and broken.what == f"check {check.id}"
    assert "no longer marked replaced" in broken.reason
    assert withdrawn.check.version == 3


def test_the_database_refuses_to_unhook_a_corrected_version(app, make, session, nurse):
    flap = make.reconstruction(hours_ago=3)
    check = make.check(flap, minutes_ago=30, colour="pink")
    amend_check(session, nurse, check.id, reason="x", values=_values(check, colour="pale"))
    with pytest.raises(Exception, match="append-only|never changed"):  # noqa: SIM117
        with engine_of(app).begin() as db:
            db.execute(
                text("UPDATE checks SET superseded_by_id = NULL WHERE id = :id"), {"id": check.id}
            )
