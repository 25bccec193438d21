"""The ward's real day, with a frozen clock: a flap paused for imaging falls due on its return
and not before, a check not done moves the next one half an hour on and is counted apart
from missed ones, and neither is ever a false alarm."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from flapwatch.domain.checks import CheckValues
from flapwatch.domain.vocabulary import CheckSource, DueState, Role
from flapwatch.models import AuditEvent, Escalation, MissedCheck
from flapwatch.services import SYSTEM, InvalidInput
from flapwatch.services.checks import record_check
from flapwatch.services.compliance import compliance_report
from flapwatch.services.escalations import sweep_overdue
from flapwatch.services.monitoring import record_not_done, resume, start_pause
from flapwatch.services.ward import ward_board

DAY = datetime(2026, 11, 20, tzinfo=UTC)  # the ward clock (London) is on UTC in November


def at(hour: int, minute: int = 0) -> datetime:
    return DAY + timedelta(hours=hour, minutes=minute)


def _card(session, now):
    (card,) = ward_board(session, SYSTEM, "PLAST-W3", now).flaps
    return card


@pytest.fixture
def flap(make, session):
    """A free flap out of theatre at 04:30 (hourly checks), checked on time up to 09:30."""
    flap = make.reconstruction(surgery_end_at=at(4, 30))
    nurse = make.actor(make.user(Role.NURSE))
    for hour in range(5, 10):
        taken = at(hour, 30)
        record_check(session, nurse, flap.id, CheckValues(taken_at=taken, colour="pink"), now=taken)
    flap.nurse = nurse
    return flap


def test_a_flap_paused_for_imaging_misses_nothing_and_is_due_on_its_return(flap, session):
    start_pause(session, flap.nurse, flap.id, reason="imaging", expected_minutes=60, now=at(10))
    for minute in range(10, 90, 10):  # the sweep runs all through the pause
        assert sweep_overdue(session, now=at(10, minute)).missed == 0
    paused = _card(session, at(11, 10))
    assert (paused.due_state, paused.next_due_at) == (DueState.PAUSED, None)
    assert paused.pause is not None and paused.pause_overrunning(at(11, 10))  # back by 11:00

    resume(session, flap.nurse, flap.id, now=at(11, 30))

    assert _card(session, at(11, 30)).next_due_at == at(11, 30)
    assert _card(session, at(11, 44)).due_state == DueState.DUE
    assert _card(session, at(11, 46)).due_state == DueState.OVERDUE
    assert sweep_overdue(session, now=at(11, 44)).missed == 0
    assert session.scalar(select(func.count(MissedCheck.id))) == 0
    assert session.scalar(select(func.count(Escalation.id))) == 0
    actions = session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()
    assert actions[-2:] == ["monitoring.pause", "monitoring.resume"]


def test_a_pause_left_running_is_only_ever_gently_longer_than_expected(flap, session):
    start_pause(session, flap.nurse, flap.id, reason="in_theatre", expected_minutes=60, now=at(10))
    assert sweep_overdue(session, now=at(20)).missed == 0  # ten hours on: still no alarm
    card = _card(session, at(20))
    assert card.due_state == DueState.PAUSED and card.pause_overrunning(at(20))


def test_a_bedside_check_during_a_pause_resumes_monitoring_and_a_reading_does_not(flap, session):
    start_pause(session, flap.nurse, flap.id, reason="off_ward", now=at(10))
    record_check(
        session,
        flap.nurse,
        flap.id,
        CheckValues(taken_at=at(10, 20), sto2_percent=70),
        source=CheckSource.DEVICE,
        device="T.Ox gateway 2",
        now=at(10, 20),
    )
    assert _card(session, at(10, 25)).due_state == DueState.PAUSED
    record_check(
        session,
        flap.nurse,
        flap.id,
        CheckValues(taken_at=at(10, 40), colour="pink"),
        now=at(10, 41),
    )
    card = _card(session, at(10, 45))
    assert card.pause is None
    assert card.next_due_at == at(11, 40)  # an hour after the check, as ever


def test_pausing_a_flap_with_an_open_escalation_asks_again(flap, session):
    record_check(
        session,
        flap.nurse,
        flap.id,
        CheckValues(taken_at=at(9, 50), colour="dusky", capillary_refill="brisk"),
        now=at(9, 50),
    )
    with pytest.raises(InvalidInput) as refused:
        start_pause(session, flap.nurse, flap.id, reason="imaging", now=at(10))
    assert "open red escalation" in refused.value.problems["despite_open_escalation"]
    start_pause(
        session, flap.nurse, flap.id, reason="imaging", despite_open_escalation=True, now=at(10)
    )
    assert _card(session, at(10, 5)).due_state == DueState.PAUSED


def test_a_pause_says_why_and_there_is_one_at_a_time(flap, session):
    with pytest.raises(InvalidInput) as unexplained:
        start_pause(session, flap.nurse, flap.id, reason="other", now=at(10))
    assert "note" in unexplained.value.problems
    start_pause(session, flap.nurse, flap.id, reason="other", note="hydrotherapy", now=at(10))
    with pytest.raises(InvalidInput) as again:
        start_pause(session, flap.nurse, flap.id, reason="imaging", now=at(10, 5))
    assert "already paused" in again.value.problems[""]
    resume(session, flap.nurse, flap.id, now=at(10, 30))
    with pytest.raises(InvalidInput) as not_paused:
        resume(session, flap.nurse, flap.id, now=at(10, 40))
    assert "not paused" in not_paused.value.problems[""]


def test_a_check_not_done_makes_the_next_due_half_an_hour_later_and_is_no_miss(make, session):
    flap = make.reconstruction(surgery_end_at=at(1))  # night 1: hourly checks
    nurse = make.actor(make.user(Role.NURSE))
    record_check(session, nurse, flap.id, CheckValues(taken_at=at(2), colour="pink"), now=at(2))

    record_not_done(session, nurse, flap.id, taken_at=at(3), reason="patient_refused", now=at(3))

    assert _card(session, at(3, 1)).next_due_at == at(3, 30)
    assert _card(session, at(3, 1)).not_done is not None
    record_check(
        session, nurse, flap.id, CheckValues(taken_at=at(3, 35), colour="pink"), now=at(3, 35)
    )
    assert _card(session, at(3, 36)).next_due_at == at(4, 35)
    auditor = make.actor(make.user(Role.AUDITOR))
    report = compliance_report(session, auditor, "PLAST-W3", DAY.date(), DAY.date(), at(4, 40))
    assert report.total.not_done == 1
    assert report.total.not_done_by_reason == {"patient_refused": 1}
    assert report.total.missed == 0
    assert (report.total.on_time, report.total.late) == (2, 0)  # 02:00, 03:30


def test_a_check_not_done_is_refused_while_paused_and_needs_a_reason(flap, session):
    with pytest.raises(InvalidInput) as no_reason:
        record_not_done(session, flap.nurse, flap.id, taken_at=at(10), reason="", now=at(10))
    assert "reason" in no_reason.value.problems
    start_pause(session, flap.nurse, flap.id, reason="imaging", now=at(10))
    with pytest.raises(InvalidInput) as paused:
        record_not_done(
            session,
            flap.nurse,
            flap.id,
            taken_at=at(10, 5),
            reason="patient_refused",
            now=at(10, 5),
        )
    assert "paused" in paused.value.problems[""]


def test_the_compliance_report_counts_nothing_due_during_a_pause(flap, session, make):
    start_pause(session, flap.nurse, flap.id, reason="imaging", now=at(10))
    resume(session, flap.nurse, flap.id, now=at(13))
    record_check(
        session, flap.nurse, flap.id, CheckValues(taken_at=at(13, 5), colour="pink"), now=at(13, 5)
    )
    auditor = make.actor(make.user(Role.AUDITOR))
    report = compliance_report(session, auditor, "PLAST-W3", DAY.date(), DAY.date(), at(13, 30))
    assert (report.total.missed, report.total.late) == (0, 0)
    assert report.total.on_time == 6  # 05:30 to 09:30, and the check after the return


def test_the_api_shows_a_pause_and_no_due_time_until_the_flap_resumes(api, make):
    flap = make.reconstruction(hours_ago=6)
    nurse = api(Role.NURSE)
    paused = nurse.post(
        f"/reconstructions/{flap.id}/pause",
        {"reason": "imaging", "note": "CT angiogram", "expected_minutes": 45},
    )
    assert paused.status_code == 201, paused.json
    assert paused.json["next_due_at"] is None and paused.json["ended_at"] is None
    shown = nurse.get(f"/reconstructions/{flap.id}").json
    assert shown["next_due_at"] is None and shown["due_state"] == "paused"
    assert shown["pause"]["reason"] == "imaging" and shown["pause"]["note"] == "CT angiogram"
    assert shown["pause"]["expected_until"] is not None

    resumed = nurse.post(f"/reconstructions/{flap.id}/resume", {})

    assert resumed.status_code == 200
    assert resumed.json["next_due_at"] == resumed.json["ended_at"]  # due at once
    assert nurse.get(f"/reconstructions/{flap.id}").json["pause"] is None


def test_the_api_records_a_check_not_done_and_refuses_an_unknown_reason(api, make):
    flap = make.reconstruction(hours_ago=6)
    nurse = api(Role.NURSE)
    path = f"/reconstructions/{flap.id}/checks-not-done"
    taken = datetime.now(UTC).replace(microsecond=0)

    wrong = nurse.post(path, {"taken_at": taken.isoformat(), "reason": "asleep"})
    done = nurse.post(
        path, {"taken_at": taken.isoformat(), "reason": "patient_refused", "note": "asleep"}
    )

    assert wrong.status_code == 400 and "reason" in wrong.json["error"]["fields"]
    assert done.status_code == 201, done.json
    assert datetime.fromisoformat(done.json["next_due_at"]) == taken + timedelta(minutes=30)
    auditor = api(Role.AUDITOR)
    assert auditor.post(path, {"taken_at": taken.isoformat(), "reason": "other"}).status_code == 403


def test_the_pause_page_warns_of_an_open_escalation_and_pauses_when_asked_again(logged_in, make):
    flap = make.reconstruction(hours_ago=6)
    make.check(flap, colour="dusky", capillary_refill="brisk")  # red: an escalation opens
    browser, _ = logged_in(Role.NURSE)
    path = f"/reconstructions/{flap.id}/pause"

    warned = browser.post(path, {"reason": "imaging", "note": "typed before the warning"})

    page = warned.get_data(as_text=True)
    assert warned.status_code == 200
    assert "open red escalation" in page and "Pause anyway" in page
    assert "typed before the warning" in page  # what was typed is kept
    assert 'name="despite_open_escalation" value="yes"' in page
    board = browser.get("/units/PLAST-W3/board").get_data(as_text=True)
    assert "Paused —" not in board
    paused = browser.post(path, {"reason": "imaging", "despite_open_escalation": "yes"})
    assert paused.status_code == 302
    assert "Paused — imaging since" in browser.get("/units/PLAST-W3/board").get_data(as_text=True)


def test_the_pause_page_names_a_missing_reason(logged_in, make):
    flap = make.reconstruction(hours_ago=6)
    browser, _ = logged_in(Role.NURSE)
    refused = browser.post(f"/reconstructions/{flap.id}/pause", {"note": "to CT"})
    page = refused.get_data(as_text=True)
    assert refused.status_code == 400
    assert "Choose why monitoring is paused." in page and "to CT" in page


def test_a_check_not_done_is_exported_as_csv_and_as_a_fhir_observation_with_no_value(
    logged_in, make, session
):
    from tests.test_exports import parsed
    from tests.test_fhir import validated

    flap = make.reconstruction(hours_ago=6)
    nurse = make.actor(make.user(Role.NURSE))
    now = datetime.now(UTC)
    record_not_done(
        session, nurse, flap.id, taken_at=now, reason="patient_refused", note="asleep", now=now
    )
    auditor, _ = logged_in(Role.AUDITOR)

    (row,) = parsed(auditor.get("/exports/not_done.csv").data)
    assert (row["reason"], row["note"], row["reconstruction_id"]) == (
        "patient_refused",
        "asleep",
        str(flap.id),
    )
    assert datetime.fromisoformat(row["taken_at"]) == now
    bundle = validated(auditor.get("/exports/fhir.json").data)
    (observation,) = [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"
    ]
    assert observation["status"] == "cancelled" and "valueQuantity" not in observation
    assert observation["dataAbsentReason"]["coding"][0]["code"] == "asked-declined"
    procedures = [e for e in bundle["entry"] if e["resource"]["resourceType"] == "Procedure"]
    assert len(procedures) == 1  # the flap it belongs to is in the bundle


def test_the_printed_report_lists_pauses_and_checks_not_done(logged_in, make, session):
    import io

    import pypdf

    flap = make.reconstruction(hours_ago=6)
    nurse = make.actor(make.user(Role.NURSE))
    now = datetime.now(UTC)
    start_pause(session, nurse, flap.id, reason="imaging", note="CT angiogram", now=now)
    resume(session, nurse, flap.id, now=now + timedelta(minutes=1))
    record_not_done(
        session, nurse, flap.id, taken_at=now + timedelta(minutes=2), reason="patient_refused"
    )
    surgeon, _ = logged_in(Role.SURGEON)
    pdf = surgeon.get(f"/reconstructions/{flap.id}/report.pdf").data

    text = " ".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf)).pages)
    assert "Pauses and checks not done" in text
    assert "imaging" in text and "CT angiogram" in text
    assert "Check not done" in text and "patient refused" in text


def test_back_from_theatre_the_next_check_is_due_at_once_and_time_zero_is_chosen(
    make, session, flap
):
    from flapwatch.domain.vocabulary import ReconstructionStatus
    from flapwatch.services.patients import set_reconstruction_status

    coordinator = make.actor(make.user(Role.UNIT_ADMIN))
    set_reconstruction_status(
        session, coordinator, flap.id, ReconstructionStatus.RETURNED_TO_THEATRE, now=at(10)
    )
    with pytest.raises(InvalidInput) as unsaid:
        set_reconstruction_status(
            session, coordinator, flap.id, ReconstructionStatus.MONITORING, now=at(14)
        )
    assert "restart" in unsaid.value.problems["time_zero"]

    set_reconstruction_status(
        session,
        coordinator,
        flap.id,
        ReconstructionStatus.MONITORING,
        time_zero="restart",
        now=at(14),
    )

    assert _card(session, at(14)).next_due_at == at(14)  # at once, not overdue since 10:30
    assert sweep_overdue(session, now=at(14, 10)).missed == 0
    record_check(
        session, flap.nurse, flap.id, CheckValues(taken_at=at(14, 5), colour="pink"), now=at(14, 5)
    )
    assert _card(session, at(14, 6)).next_due_at == at(15, 5)  # hourly: the first band again
    audit = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "reconstruction.time_zero")
    ).one()
    assert audit.after["choice"] == "restart"


def test_continuing_after_theatre_keeps_the_bands_of_the_first_surgery(make, session):
    from flapwatch.domain.vocabulary import ReconstructionStatus
    from flapwatch.services.patients import set_reconstruction_status

    flap = make.reconstruction(surgery_end_at=at(-26))  # day 2: two-hourly checks
    nurse = make.actor(make.user(Role.NURSE))
    record_check(session, nurse, flap.id, CheckValues(taken_at=at(0), colour="pink"), now=at(0))
    coordinator = make.actor(make.user(Role.UNIT_ADMIN))
    set_reconstruction_status(
        session, coordinator, flap.id, ReconstructionStatus.RETURNED_TO_THEATRE, now=at(1)
    )
    set_reconstruction_status(
        session,
        coordinator,
        flap.id,
        ReconstructionStatus.MONITORING,
        time_zero="continue",
        now=at(3),
    )
    record_check(session, nurse, flap.id, CheckValues(taken_at=at(3), colour="pink"), now=at(3))
    assert _card(session, at(3, 1)).next_due_at == at(5)  # still two-hourly


def test_the_api_resumes_after_theatre_only_with_a_time_zero_choice(api, make):
    flap = make.reconstruction(hours_ago=30)
    coordinator = api(Role.UNIT_ADMIN)
    path = f"/reconstructions/{flap.id}"
    assert coordinator.patch(path, {"status": "returned_to_theatre"}).status_code == 200

    unsaid = coordinator.patch(path, {"status": "monitoring"})
    resumed = coordinator.patch(path, {"status": "monitoring", "time_zero": "restart"})

    assert unsaid.status_code == 422 and "time_zero" in unsaid.json["error"]["fields"]
    assert resumed.status_code == 200
    assert resumed.json["due_state"] == "due"  # the next check at once, not overdue


def test_a_pause_open_when_the_flap_goes_back_to_theatre_ends_with_it(make, session, flap):
    from flapwatch.domain.vocabulary import ReconstructionStatus
    from flapwatch.services.patients import set_reconstruction_status

    start_pause(session, flap.nurse, flap.id, reason="in_theatre", now=at(10))
    coordinator = make.actor(make.user(Role.UNIT_ADMIN))
    set_reconstruction_status(
        session, coordinator, flap.id, ReconstructionStatus.RETURNED_TO_THEATRE, now=at(10, 30)
    )
    set_reconstruction_status(
        session,
        coordinator,
        flap.id,
        ReconstructionStatus.MONITORING,
        time_zero="continue",
        now=at(13),
    )
    card = _card(session, at(13))
    assert card.pause is None and card.next_due_at == at(13)  # due now, not left paused
    start_pause(session, flap.nurse, flap.id, reason="imaging", now=at(14))  # a new one can
