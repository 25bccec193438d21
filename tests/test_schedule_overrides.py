"""A surgeon's schedule for one flap, with a frozen clock: it moves due times inside its
window and nowhere else, the sweep and the compliance report follow it, and every version
stays in the record."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta

import pypdf
import pytest
from sqlalchemy import select

from flapwatch.charts.figure import trend_figure
from flapwatch.charts.spec import FULL
from flapwatch.domain.checks import CheckValues
from flapwatch.domain.schedule import (
    FlapClock,
    SchedulePolicy,
    ScheduleWindow,
    due_from,
    hours_since,
    next_due,
)
from flapwatch.domain.vocabulary import DueState, Role
from flapwatch.models import AuditEvent, MissedCheck
from flapwatch.services import SYSTEM, Forbidden, InvalidInput
from flapwatch.services.checks import record_check
from flapwatch.services.compliance import compliance_report
from flapwatch.services.escalations import sweep_overdue
from flapwatch.services.monitoring import (
    overrides_of,
    record_not_done,
    resume,
    set_override,
    start_pause,
    withdraw_override,
)
from flapwatch.services.review import chart_subject, flap_trend
from flapwatch.services.ward import ward_board

DAY = datetime(2026, 11, 20, tzinfo=UTC)  # the ward clock (London) is on UTC in November
HOURLY = SchedulePolicy()


def at(hour: int, minute: int = 0) -> datetime:
    return DAY + timedelta(hours=hour, minutes=minute)


# --- the arithmetic ---------------------------------------------------------------------------

EVERY_15 = ScheduleWindow(at(12), at(14), 15)
NIGHT = ScheduleWindow(at(25), at(29), None)  # 01:00–05:00 the next night: no checks


@pytest.mark.parametrize(
    ("last_check", "window", "due"),
    [
        (at(10, 30), EVERY_15, at(11, 30)),  # due before the window: the unit's hour
        (at(11, 30), EVERY_15, at(12)),  # the unit's due falls inside: at its start
        (at(11, 50), EVERY_15, at(12, 5)),  # ... or 15 min after the check, if later
        (at(12, 40), EVERY_15, at(12, 55)),  # inside: every 15 min
        (at(13, 50), EVERY_15, at(14, 50)),  # 15 min on is past its end: the unit's hour
        (at(14, 10), EVERY_15, at(15, 10)),  # after it: as if it never was
        (at(24, 30), NIGHT, at(29)),  # due at 01:30 inside a window that omits: at 05:00
        (at(28, 30), NIGHT, at(29, 30)),  # a look at 04:30 all the same: an hour on
        (at(23, 30), NIGHT, at(24, 30)),  # due before the window starts: unchanged
    ],
)
def test_a_window_moves_the_due_time_only_where_it_is_in_force(last_check, window, due):
    assert due_from(last_check, timedelta(hours=1), [window]) == due


def test_a_looser_window_stretches_the_wait_and_gives_back_the_unit_s_hour_at_its_end():
    four_hourly = ScheduleWindow(at(12), at(20), 240)
    assert due_from(at(12, 30), timedelta(hours=1), [four_hourly]) == at(16, 30)
    assert due_from(at(18), timedelta(hours=1), [four_hourly]) == at(20)


def test_a_resume_inside_a_night_without_checks_falls_due_as_it_ends_and_a_recheck_does_not():
    clock = FlapClock(at(0), last_bedside_at=at(24, 30), windows=(NIGHT,))
    assert next_due(HOURLY, clock.after("pause", at(25, 10)).after("resume", at(26))) == at(29)
    flagged = FlapClock(
        at(0), last_bedside_at=at(25, 30), recheck_minutes=15, recheck_from=at(25, 30),
        windows=(NIGHT,),
    )  # fmt: skip
    assert next_due(HOURLY, flagged) == at(25, 45)  # an unanswered flag outranks sleep


def test_a_check_not_done_inside_a_tighter_window_is_followed_at_its_interval():
    clock = FlapClock(at(0), last_bedside_at=at(12, 15), windows=(EVERY_15,))
    assert next_due(HOURLY, clock.after("not_done", at(12, 30))) == at(12, 45)
    assert next_due(HOURLY, FlapClock(at(0), not_done_at=at(10))) == at(10, 30)


# --- the ward ---------------------------------------------------------------------------------


@pytest.fixture
def ward(make, session):
    """Two free flaps out of theatre at 04:30 (hourly checks), checked on the half hour up to
    09:30; a surgeon and a nurse."""
    nurse = make.actor(make.user(Role.NURSE))
    surgeon = make.actor(make.user(Role.SURGEON))
    flaps = [make.reconstruction(surgery_end_at=at(4, 30)) for _ in range(2)]
    for flap in flaps:
        for hour in range(5, 10):
            check(session, nurse, flap, at(hour, 30))
    return flaps, nurse, surgeon


def check(session, nurse, flap, taken):
    record_check(session, nurse, flap.id, CheckValues(taken_at=taken, colour="pink"), now=taken)


def cards(session, now):
    return {
        card.reconstruction.id: card for card in ward_board(session, SYSTEM, "PLAST-W3", now).flaps
    }


def test_a_per_flap_override_changes_due_times_only_in_its_window(ward, session):
    (watched, twin), nurse, surgeon = ward
    set_override(
        session, surgeon, watched.id, kind="interval", interval_minutes=15,
        starts_at=at(12), ends_at=at(14), reason="Venous congestion at 09:30: watch closely",
        now=at(10),
    )  # fmt: skip
    for flap in (watched, twin):
        check(session, nurse, flap, at(10, 30))
    board = cards(session, at(10, 40))
    assert board[watched.id].next_due_at == board[twin.id].next_due_at == at(11, 30)
    for flap in (watched, twin):
        check(session, nurse, flap, at(11, 30))
    board = cards(session, at(11, 40))
    assert (board[watched.id].next_due_at, board[twin.id].next_due_at) == (at(12), at(12, 30))

    for minute in (0, 15, 30, 45):  # the watched flap every 15 minutes, the twin hourly
        check(session, nurse, watched, at(12, minute))
    check(session, nurse, twin, at(12, 30))
    board = cards(session, at(12, 50))
    assert board[watched.id].next_due_at == at(13)
    assert board[twin.id].next_due_at == at(13, 30)

    # The window ends at 14:00: a check at 13:50 is followed an hour on, like the twin's.
    for flap in (watched, twin):
        check(session, nurse, flap, at(13, 50))
    board = cards(session, at(13, 55))
    assert board[watched.id].next_due_at == board[twin.id].next_due_at == at(14, 50)


def test_the_sweep_follows_the_window_and_records_a_miss_only_inside_it(ward, session):
    (watched, twin), nurse, surgeon = ward
    set_override(
        session, surgeon, watched.id, kind="interval", interval_minutes=15,
        starts_at=at(10), ends_at=at(12), reason="Dusky edge", now=at(9, 40),
    )  # fmt: skip
    assert sweep_overdue(session, now=at(10, 10)).missed == 0  # due 10:00, grace to 10:15
    assert sweep_overdue(session, now=at(10, 16)).missed == 1
    (missed,) = session.scalars(select(MissedCheck)).all()
    assert (missed.reconstruction_id, missed.due_at) == (watched.id, at(10))
    board = cards(session, at(10, 16))
    assert board[watched.id].due_state == DueState.OVERDUE
    assert board[twin.id].due_state == DueState.NOT_DUE


def test_a_night_without_checks_raises_no_alarm_and_is_due_at_once_when_it_ends(ward, session):
    (flap, _), nurse, surgeon = ward
    set_override(
        session, surgeon, flap.id, kind="omit", starts_at=at(10), ends_at=at(14),
        reason="Let her sleep after a long day", now=at(9, 45),
    )  # fmt: skip
    for hour in range(10, 14):
        sweep_overdue(session, now=at(hour, 59))
    missed = session.scalars(select(MissedCheck.reconstruction_id)).all()
    assert flap.id not in missed and len(missed) > 0  # its twin, hourly, was missed meanwhile
    card = cards(session, at(13, 59))[flap.id]
    assert (card.due_state, card.next_due_at) == (DueState.NOT_DUE, at(14))
    assert cards(session, at(14, 16))[flap.id].due_state == DueState.OVERDUE


def test_the_compliance_report_judges_each_moment_by_the_schedule_then(ward, session, make):
    (flap, _), nurse, surgeon = ward
    set_override(
        session, surgeon, flap.id, kind="interval", interval_minutes=15,
        starts_at=at(10), ends_at=at(11), reason="Worrying Doppler", now=at(9, 40),
    )  # fmt: skip
    for minute in (0, 15, 30):  # 10:45 is missed, answered late at 11:05
        check(session, nurse, flap, at(10, minute))
    check(session, nurse, flap, at(11, 5))
    check(session, nurse, flap, at(12, 5))
    auditor = make.actor(make.user(Role.AUDITOR))
    report = compliance_report(session, auditor, "PLAST-W3", DAY.date(), DAY.date(), at(12, 30))
    per_flap = dict(report.by_band)["per-flap schedule, every 15 min"]
    assert (per_flap.on_time, per_flap.late, per_flap.missed) == (3, 1, 0)
    (line,) = [line for line in report.flaps if line.reconstruction_id == flap.id]
    # 05:30 to 09:30 and 12:05 on the unit's hour (6); 10:00, 10:15, 10:30 on time, 10:45 late.
    assert (line.tally.on_time, line.tally.late, line.tally.missed) == (9, 1, 0)


def test_a_night_without_checks_counts_no_missed_check(ward, session, make):
    (flap, _), nurse, surgeon = ward
    set_override(
        session, surgeon, flap.id, kind="omit", starts_at=at(10), ends_at=at(14),
        reason="Sleep", now=at(9, 45),
    )  # fmt: skip
    check(session, nurse, flap, at(14, 5))
    auditor = make.actor(make.user(Role.AUDITOR))
    report = compliance_report(session, auditor, "PLAST-W3", DAY.date(), DAY.date(), at(14, 30))
    (line,) = [line for line in report.flaps if line.reconstruction_id == flap.id]
    assert (line.tally.missed, line.tally.late) == (0, 0)
    assert line.tally.on_time == 6  # 05:30 to 09:30, and 14:00 answered at 14:05
    (twin,) = [line for line in report.flaps if line.reconstruction_id != flap.id]
    assert twin.tally.missed > 0  # the same hours, on the unit's schedule


def test_a_withdrawal_ends_the_window_from_then_and_keeps_what_it_made_due(ward, session, make):
    (flap, _), nurse, surgeon = ward
    override = set_override(
        session, surgeon, flap.id, kind="interval", interval_minutes=15,
        starts_at=at(10), ends_at=at(14), reason="Dusky", now=at(9, 45),
    )  # fmt: skip
    check(session, nurse, flap, at(10))
    check(session, nurse, flap, at(10, 15))
    withdraw_override(session, surgeon, override.id, note="Pink again", now=at(10, 20))
    card = cards(session, at(10, 25))[flap.id]
    assert card.next_due_at == at(11, 15) and card.overrides == ()
    auditor = make.actor(make.user(Role.AUDITOR))
    report = compliance_report(session, auditor, "PLAST-W3", DAY.date(), DAY.date(), at(11))
    assert dict(report.by_band)["per-flap schedule, every 15 min"].on_time == 2  # 10:00, 10:15
    with pytest.raises(InvalidInput) as again:
        withdraw_override(session, surgeon, override.id, now=at(10, 30))
    assert "already ended" in again.value.problems[""]


def test_a_change_is_a_new_version_and_the_old_one_is_withdrawn_not_edited(ward, session):
    (flap, _), _, surgeon = ward
    first = set_override(
        session, surgeon, flap.id, kind="interval", interval_minutes=15,
        starts_at=at(10), ends_at=at(12), reason="Dusky", now=at(10),
    )  # fmt: skip
    second = set_override(
        session, surgeon, flap.id, kind="interval", interval_minutes=30,
        starts_at=at(10, 30), ends_at=at(13), reason="Better: half-hourly", replaces=first.id,
        now=at(10, 30),
    )  # fmt: skip
    session.refresh(first)
    assert (first.version, second.version) == (1, 2)
    assert (first.ends_at, first.in_force_until) == (at(12), at(10, 30))
    assert second.replaces_id == first.id
    actions = session.scalars(
        select(AuditEvent.action)
        .where(AuditEvent.action.like("schedule.%"))
        .order_by(AuditEvent.id)
    ).all()
    assert actions == ["schedule.override", "schedule.override_withdrawn", "schedule.override"]
    card = cards(session, at(10, 35))[flap.id]
    assert [o.version for o in card.overrides] == [2]


def test_a_flap_s_own_schedule_is_a_surgeon_s_order_with_a_reason_and_a_bounded_window(
    ward, session
):
    (flap, _), nurse, surgeon = ward
    with pytest.raises(Forbidden):
        set_override(
            session, nurse, flap.id, kind="omit", starts_at=at(10), ends_at=at(12),
            reason="Sleep", now=at(10),
        )  # fmt: skip
    with pytest.raises(InvalidInput) as refused:
        set_override(
            session, surgeon, flap.id, kind="omit", starts_at=at(9), ends_at=at(23),
            reason="", now=at(10),
        )  # fmt: skip
    problems = refused.value.problems
    assert "past" in problems["starts_at"]
    assert "12 hours" in problems["ends_at"]
    assert "Reason" in problems["reason"]
    with pytest.raises(InvalidInput) as no_interval:
        set_override(
            session, surgeon, flap.id, kind="interval", starts_at=at(10), ends_at=at(12),
            reason="Dusky", now=at(10),
        )  # fmt: skip
    assert "interval_minutes" in no_interval.value.problems
    set_override(
        session, surgeon, flap.id, kind="interval", interval_minutes=15, starts_at=at(10),
        ends_at=at(12), reason="Dusky", now=at(10),
    )  # fmt: skip
    with pytest.raises(InvalidInput) as overlap:
        set_override(
            session, surgeon, flap.id, kind="omit", starts_at=at(11), ends_at=at(13),
            reason="Sleep", now=at(10),
        )  # fmt: skip
    assert "overlaps version 1" in overlap.value.problems["starts_at"]


def test_a_pause_inside_a_window_still_pauses_and_a_check_not_done_follows_the_window(
    ward, session
):
    (flap, _), nurse, surgeon = ward
    set_override(
        session, surgeon, flap.id, kind="interval", interval_minutes=15, starts_at=at(10),
        ends_at=at(12), reason="Dusky", now=at(9, 50),
    )  # fmt: skip
    check(session, nurse, flap, at(10))
    record_not_done(
        session, nurse, flap.id, taken_at=at(10, 15), reason="patient_refused", now=at(10, 15)
    )
    assert cards(session, at(10, 16))[flap.id].next_due_at == at(10, 30)
    start_pause(session, nurse, flap.id, reason="imaging", now=at(10, 20))
    assert cards(session, at(10, 50))[flap.id].due_state == DueState.PAUSED
    resume(session, nurse, flap.id, now=at(11))
    assert cards(session, at(11))[flap.id].next_due_at == at(11)


# --- the API and the pages --------------------------------------------------------------------


def test_the_api_sets_shows_lists_and_withdraws_a_flap_s_own_schedule(api, make):
    flap = make.reconstruction(hours_ago=6)
    surgeon, nurse = api(Role.SURGEON), api(Role.NURSE)
    body = {"kind": "interval", "interval_minutes": 15, "duration_minutes": 120,
            "reason": "Venous congestion: every 15 min"}  # fmt: skip
    assert nurse.post(f"/reconstructions/{flap.id}/schedule-overrides", body).status_code == 403
    made = surgeon.post(f"/reconstructions/{flap.id}/schedule-overrides", body)
    assert made.status_code == 201, made.json
    assert made.json["version"] == 1 and made.json["set_by"] == surgeon.user.username
    starts = datetime.fromisoformat(made.json["starts_at"])
    assert datetime.fromisoformat(made.json["ends_at"]) - starts == timedelta(hours=2)
    shown = nurse.get(f"/reconstructions/{flap.id}").json
    assert [o["id"] for o in shown["schedule_overrides"]] == [made.json["id"]]
    assert shown["next_due_at"] == made.json["next_due_at"]
    assert datetime.fromisoformat(shown["next_due_at"]) <= starts + timedelta(minutes=15)

    withdrawn = surgeon.post(f"/schedule-overrides/{made.json['id']}/withdraw", {"note": "Pink"})
    assert withdrawn.status_code == 200, withdrawn.json
    assert withdrawn.json["withdrawn_by"] == surgeon.user.username
    assert nurse.get(f"/reconstructions/{flap.id}").json["schedule_overrides"] == []
    listed = nurse.get(f"/reconstructions/{flap.id}/schedule-overrides").json["items"]
    assert [(o["version"], o["withdraw_note"]) for o in listed] == [(1, "Pink")]


def test_the_api_names_the_field_at_fault(api, make):
    flap = make.reconstruction(hours_ago=6)
    surgeon = api(Role.SURGEON)
    both = surgeon.post(
        f"/reconstructions/{flap.id}/schedule-overrides",
        {"kind": "omit", "duration_minutes": 60, "ends_at": "2030-01-01T00:00:00Z",
         "reason": "Sleep"},
    )  # fmt: skip
    assert both.status_code == 422
    assert "duration_minutes" in str(both.json)
    too_long = surgeon.post(
        f"/reconstructions/{flap.id}/schedule-overrides",
        {"kind": "omit", "duration_minutes": 13 * 60, "reason": "Sleep"},
    )
    assert too_long.status_code == 422 and "ends_at" in str(too_long.json)


def test_another_unit_s_surgeon_cannot_see_or_change_the_flap_s_schedule(api, make):
    make.unit("ORTHO-W1")
    flap = make.reconstruction(hours_ago=6)
    outsider = api(Role.SURGEON, "ORTHO-W1")
    answer = outsider.post(
        f"/reconstructions/{flap.id}/schedule-overrides",
        {"kind": "omit", "duration_minutes": 60, "reason": "Sleep"},
    )
    assert answer.status_code == 404
    assert outsider.get(f"/reconstructions/{flap.id}/schedule-overrides").status_code == 404


def test_a_surgeon_sets_the_schedule_on_the_flap_page_and_the_board_shows_it(
    logged_in, make, session
):
    flap = make.reconstruction(hours_ago=6)
    surgeon_page, _ = logged_in(Role.SURGEON)
    page = surgeon_page.get(f"/reconstructions/{flap.id}")
    assert "Set this flap&#39;s schedule" in page.text or "Set this flap's schedule" in page.text
    form = surgeon_page.get(f"/reconstructions/{flap.id}/schedule")
    assert form.status_code == 200
    empty = surgeon_page.post(
        f"/reconstructions/{flap.id}/schedule",
        {"kind": "interval", "interval_minutes": "15", "hours": "2", "reason": ""},
    )
    assert empty.status_code == 400 and "say why" in empty.text
    assert re.search(r'value="15"\s+checked', empty.text)  # what was chosen is kept
    saved = surgeon_page.post(
        f"/reconstructions/{flap.id}/schedule",
        {"kind": "interval", "interval_minutes": "15", "hours": "2",
         "reason": "Congested: every 15 min"},
        follow_redirects=True,
    )  # fmt: skip
    assert saved.status_code == 200
    assert "Per-flap schedule: checks every 15 min until" in saved.text
    assert "Version 1" in saved.text and "Congested: every 15 min" in saved.text

    nurse_page, _ = logged_in(Role.NURSE)
    board = nurse_page.get("/units/PLAST-W3/board")
    assert "Per-flap schedule: checks every 15 min until" in board.text
    assert nurse_page.get(f"/reconstructions/{flap.id}/schedule").status_code == 403
    flap_page = nurse_page.get(f"/reconstructions/{flap.id}")
    assert "Withdraw" not in flap_page.text


def test_the_chart_outlines_the_window_and_the_report_lists_it(make, session, logged_in):
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    flap = make.reconstruction(surgery_end_at=now - timedelta(hours=3))
    surgeon = make.actor(make.user(Role.SURGEON))
    nurse = make.actor(make.user(Role.NURSE))
    check(session, nurse, flap, now - timedelta(hours=2, minutes=50))
    set_override(
        session, surgeon, flap.id, kind="interval", interval_minutes=15,
        starts_at=now - timedelta(minutes=2), ends_at=now + timedelta(hours=1),
        reason="Congested", now=now - timedelta(minutes=3),
    )  # fmt: skip

    figure = trend_figure(flap_trend(session, chart_subject(session, SYSTEM, flap.id, now)), FULL)
    windows = list(figure.findobj(lambda a: a.get_gid() == "override:interval:15"))
    assert windows  # in every panel
    start = hours_since(flap.surgery_end_at, now - timedelta(minutes=2))
    assert all(round(w.get_x(), 4) == round(start, 4) for w in windows)

    page, _ = logged_in(Role.SURGEON)
    pdf = page.get(f"/reconstructions/{flap.id}/report.pdf").data
    text = " ".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf)).pages)
    assert "per-flap schedules" in text and "checks every 15 min" in text and "Congested" in text


def test_changing_a_schedule_a_colleague_withdrew_meanwhile_says_so_and_keeps_the_form(
    logged_in, make, session
):
    flap = make.reconstruction(hours_ago=6)
    page, user = logged_in(Role.SURGEON)
    now = datetime.now(UTC)
    first = set_override(
        session, make.actor(user), flap.id, kind="interval", interval_minutes=15,
        starts_at=None, ends_at=now + timedelta(hours=2), reason="Congested", now=now,
    )  # fmt: skip
    form = page.get(f"/reconstructions/{flap.id}/schedule?replaces={first.id}")
    assert form.status_code == 200 and "Replaces version 1" in form.text
    colleague = make.actor(make.user(Role.SURGEON))
    withdraw_override(session, colleague, first.id, note="Pink again")

    answer = page.post(
        f"/reconstructions/{flap.id}/schedule?replaces={first.id}",
        {"kind": "interval", "interval_minutes": "30", "hours": "2", "reason": "Half-hourly",
         "replaces": str(first.id)},
    )  # fmt: skip
    assert answer.status_code == 400
    assert "withdrawn meanwhile" in answer.text and "Half-hourly" in answer.text
    assert page.get(f"/reconstructions/{flap.id}/schedule?replaces=999999").status_code == 404
    assert page.get(f"/reconstructions/{flap.id}/schedule?replaces={first.id}").status_code == 404


def test_a_change_naming_no_version_is_refused_not_set_as_a_new_schedule(logged_in, make, session):
    flap = make.reconstruction(hours_ago=6)
    page, _ = logged_in(Role.SURGEON)

    answer = page.post(
        f"/reconstructions/{flap.id}/schedule",
        {"kind": "interval", "interval_minutes": "30", "hours": "2", "reason": "Half-hourly",
         "replaces": "v1"},
    )  # fmt: skip

    assert answer.status_code == 400 and "Half-hourly" in answer.text
    assert overrides_of(session, flap.id) == []
    assert page.get(f"/reconstructions/{flap.id}/schedule?replaces=v1").status_code == 404
