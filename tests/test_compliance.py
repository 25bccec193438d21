"""The compliance report: the schedule kept, entries, escalations and outcomes of a unit for a
period, on its page, as CSV (web, API, command line) and as a chart."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from flapwatch.domain.checks import CheckValues
from flapwatch.domain.vocabulary import ReconstructionStatus
from flapwatch.models import AuditEvent, Escalation, EscalationEvent
from flapwatch.services import SYSTEM, Forbidden
from flapwatch.services.checks import amend_check
from flapwatch.services.compliance import COMPLIANCE_COLUMNS, compliance_report, compliance_rows
from flapwatch.services.escalations import acknowledge_escalation
from flapwatch.services.outcomes import TheatreDetails, record_theatre_details, theatre_returns_of
from flapwatch.services.patients import set_reconstruction_status
from flapwatch.services.tokens import create_token
from tests.conftest import count_queries


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


@pytest.fixture
def auditor(logged_in):
    browser, _ = logged_in("auditor")
    return browser


def late_and_missed(make, now, **values):
    """A flap 6 h after surgery on the hourly schedule: on time at 1 h and 2 h, then nothing
    until 3 h 40 (late), then nothing since (4 h 40 and 5 h 40 missed)."""
    flap = make.reconstruction(surgery_end_at=now - hours(6))
    surgery = flap.surgery_end_at
    for taken in (hours(1), hours(2), hours(3) + timedelta(minutes=40)):
        make.check(flap, taken_at=surgery + taken, **values)
    return flap


def measures(data: bytes) -> dict[tuple[str, str, str, str], str]:
    text = data.decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert rows and list(rows[0]) == list(COMPLIANCE_COLUMNS)
    return {(r["unit"], r["section"], r["group"], r["measure"]): r["value"] for r in rows}


def test_on_time_late_and_missed_checks_are_counted_against_the_schedule(make, session, now):
    late_and_missed(make, now)

    report = compliance_report(session, SYSTEM, "PLAST-W3", None, None, now)

    total = report.total
    assert (total.due, total.on_time, total.late, total.missed) == (5, 2, 1, 2)
    assert total.on_time_percent == 40.0
    assert [band for band, _ in report.by_band] == ["0–24 h, every hour"]
    (line,) = report.flaps_behind
    assert (line.tally.late, line.tally.missed) == (1, 2)
    assert sum(t.due for t in report.buckets.tallies.values()) == 5


def test_a_check_entered_in_error_answers_nothing(make, session, now):
    flap = make.reconstruction(surgery_end_at=now - hours(2.5))
    make.check(flap, taken_at=flap.surgery_end_at + hours(1))
    wrong = make.check(flap, taken_at=flap.surgery_end_at + hours(2))
    before = compliance_report(session, SYSTEM, "PLAST-W3", None, None, now).total

    amend_check(session, make.nurses["PLAST-W3"], wrong.id, reason="Wrong patient",
                entered_in_error=True)  # fmt: skip
    after = compliance_report(session, SYSTEM, "PLAST-W3", None, None, now)

    assert (before.on_time, before.missed) == (2, 0)
    assert (after.total.on_time, after.total.missed) == (1, 1)
    assert (after.checks_recorded, after.entered_in_error) == (2, 1)


def test_late_entries_and_corrections_are_counted(make, session, now):
    flap = make.reconstruction(surgery_end_at=now - hours(4))
    make.check(flap, taken_at=now - hours(3))  # recorded 3 h after: a late entry
    prompt = make.check(flap, minutes_ago=5)
    amend_check(
        session,
        make.nurses["PLAST-W3"],
        prompt.id,
        reason="Typed the wrong temperature",
        values=CheckValues(taken_at=prompt.taken_at, colour="pink", flap_temperature_c=34.0),
    )

    report = compliance_report(session, SYSTEM, "PLAST-W3", None, None, now)

    assert (report.checks_recorded, report.late_entries, report.corrected) == (2, 1, 1)


def test_escalations_by_rule_time_to_acknowledge_and_outcomes(make, session, now):
    surgeon = make.actor(make.user("surgeon"))
    first = make.reconstruction(surgery_end_at=now - hours(5))
    second = make.reconstruction(surgery_end_at=now - hours(5))
    make.check(first, minutes_ago=60, colour="dusky", capillary_refill="brisk")  # venous
    make.check(second, minutes_ago=50, colour="pale")  # arterial
    make.check(second, minutes_ago=40, colour="pale", doppler_arterial="absent")  # joins it
    escalations = list(session.scalars(select(Escalation).order_by(Escalation.id)))
    acknowledge_escalation(
        session, surgeon, escalations[0].id, outcome="observe",
        now=escalations[0].opened_at + timedelta(minutes=6),
    )  # fmt: skip
    acknowledge_escalation(
        session, surgeon, escalations[1].id, outcome="return_to_theatre",
        now=escalations[1].opened_at + timedelta(minutes=16),
    )  # fmt: skip
    sent = escalations[1].opened_at
    (theatre,) = theatre_returns_of(session, [second.id])[second.id]
    record_theatre_details(
        session, surgeon, theatre.id,
        TheatreDetails(knife_to_skin_at=sent + timedelta(minutes=61), findings="venous",
                       result="salvaged"),
        version=theatre.version, now=sent + hours(3),
    )  # fmt: skip
    # Back on the ward, then home: the salvage is the return's result and stays one.
    set_reconstruction_status(session, SYSTEM, second.id, ReconstructionStatus.MONITORING,
                              time_zero="continue", now=sent + hours(3))  # fmt: skip
    set_reconstruction_status(session, SYSTEM, second.id, ReconstructionStatus.DISCHARGED)

    report = compliance_report(session, SYSTEM, "PLAST-W3", None, None, now)

    assert report.escalations_opened == 2
    assert report.escalations_by_severity == {"red": 2, "amber": 0}
    assert {(r.rule_id, r.escalations) for r in report.escalations_by_rule} == {
        ("venous", 1),
        ("arterial", 1),
    }
    assert (report.wait.count, report.wait.median, report.wait.p90) == (2, 11.0, 15.0)
    assert report.escalation_outcomes["observe"] == 1
    assert report.escalation_outcomes["return_to_theatre"] == 1
    assert report.flaps_operated == 2
    assert report.flap_outcomes["returned_to_theatre"] == 1
    assert report.flap_outcomes["salvaged"] == 1
    assert report.flap_outcomes["failed"] == 0
    assert report.audit.re_explorations == 1
    assert report.audit.to_decision.median == 16.0
    assert report.audit.to_knife.median == 61.0
    measures = {(r["section"], r["measure"]): r["value"] for r in compliance_rows(report)}
    assert measures[("audit", "re_explored_percent")] == 50.0
    assert measures[("audit", "median_minutes_flag_to_knife_to_skin")] == 61.0


def test_a_missed_check_escalation_counts_under_overdue(make, session, app, now):
    from flapwatch.services.escalations import sweep_overdue

    flap = make.reconstruction(surgery_end_at=now - hours(3))
    make.check(flap, taken_at=flap.surgery_end_at + hours(1))
    sweep_overdue(session, now)

    report = compliance_report(session, SYSTEM, "PLAST-W3", None, None, now)

    assert [(r.rule_id, r.escalations) for r in report.escalations_by_rule] == [("overdue", 1)]


def test_the_period_is_whole_days_on_the_units_clock(make, session, now):
    # Yesterday afternoon, so that the whole six hours fall on one day of the unit's clock
    # whatever the hour the suite runs at (at 02:00 they would straddle midnight).
    now = datetime.combine(now.date() - timedelta(days=1), time(14), UTC)
    flap = late_and_missed(make, now)
    day = flap.surgery_end_at.astimezone(ZoneInfo("Europe/London")).date()
    tomorrow = day + timedelta(days=1)

    later = compliance_report(session, SYSTEM, "PLAST-W3", tomorrow, tomorrow, now)

    assert later.total.due == 0
    assert later.checks_recorded == 0


def test_only_auditors_and_administrators_get_the_report(make, session, now):
    nurse = make.actor(make.user("nurse"))
    with pytest.raises(Forbidden):
        compliance_report(session, nurse, "PLAST-W3", None, None, now)


def test_the_page_shows_the_figures_and_the_flaps_behind(auditor, make, now):
    flap = late_and_missed(make, now)

    response = auditor.get("/compliance?unit=PLAST-W3")

    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<strong>40.0 %</strong> of 5 scheduled checks done on time" in html
    assert flap.patient.name in html and flap.patient.mrn in html
    assert "0–24 h, every hour" in html
    assert 'src="/compliance/chart.png?unit=PLAST-W3' in html


def test_a_bad_day_is_named_and_the_typed_value_kept(auditor, make):
    make.unit()

    response = auditor.get("/compliance?unit=PLAST-W3&from=30/11/2026")

    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Give the day as YYYY-MM-DD" in html and 'value="30/11/2026"' in html


def test_the_page_reads_the_database_a_fixed_number_of_times(app, auditor, make, now):
    late_and_missed(make, now)
    with count_queries(app) as few:
        assert auditor.get("/compliance?unit=PLAST-W3").status_code == 200
    for _ in range(4):
        late_and_missed(make, now, colour="dusky")
    with count_queries(app) as many:
        assert auditor.get("/compliance?unit=PLAST-W3").status_code == 200
    assert len(many) == len(few)


def test_the_chart_draws_each_days_share_and_counts(make, session, now):
    from flapwatch.charts.compliance import compliance_chart_bytes, compliance_figure

    late_and_missed(make, now)
    report = compliance_report(session, SYSTEM, "PLAST-W3", None, None, now)

    figure = compliance_figure(report.buckets, "title")
    share, counts = figure.axes
    (line,) = [ln for ln in share.get_lines() if ln.get_gid() == "on-time-percent"]
    drawn = {c.get_label(): [p.get_height() for p in c] for c in counts.containers}
    expected = [t for t in report.buckets.tallies.values()]
    assert list(line.get_ydata()) == [t.on_time_percent for t in expected if t.due]
    assert drawn["missed"] == [t.missed for t in expected]
    assert compliance_chart_bytes(report.buckets, "title").startswith(b"\x89PNG")


def test_the_csv_holds_the_reports_figures_and_is_audited(auditor, make, session, now):
    late_and_missed(make, now)

    response = auditor.get("/exports/compliance.csv?unit=PLAST-W3")

    assert response.status_code == 200 and response.mimetype == "text/csv"
    figures = measures(response.data)
    assert figures[("PLAST-W3", "schedule", "all bands", "checks_due")] == "5"
    assert figures[("PLAST-W3", "schedule", "all bands", "missed")] == "2"
    assert figures[("PLAST-W3", "schedule", "all bands", "on_time_percent")] == "40.0"
    assert figures[("PLAST-W3", "entries", "all", "checks_recorded")] == "3"
    event = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "export.compliance")
    ).one()
    assert event.after["unit"] == "PLAST-W3"


def test_the_csv_of_every_unit_has_a_block_per_unit(auditor, make, now):
    late_and_missed(make, now)
    make.reconstruction(unit="ORTHO-W1", surgery_end_at=now - hours(2))

    figures = measures(auditor.get("/exports/compliance.csv").data)

    assert figures[("PLAST-W3", "schedule", "all bands", "checks_due")] == "5"
    assert figures[("ORTHO-W1", "schedule", "all bands", "checks_due")] == "1"


def test_the_api_serves_the_same_csv(app, client, make, session, now):
    late_and_missed(make, now)
    auditor = make.user("auditor")
    admin = make.actor(make.user("admin"))
    _, token = create_token(session, admin, auditor.username, name="audit desk")

    response = client.get(
        "/api/v1/exports/compliance.csv?unit=PLAST-W3",
        headers={"Authorization": f"Bearer {token}"},
    )

    assert response.status_code == 200
    assert measures(response.data)[("PLAST-W3", "schedule", "all bands", "late")] == "1"


def test_the_command_line_writes_the_csv(runner, make, now, tmp_path):
    late_and_missed(make, now)
    target = tmp_path / "compliance.csv"

    result = runner.invoke(
        args=["export", "compliance", "--unit", "PLAST-W3", "--output", str(target)]
    )

    assert result.exit_code == 0, result.output
    assert measures(target.read_bytes())[("PLAST-W3", "schedule", "all bands", "on_time")] == "2"


def test_a_further_sign_after_acknowledgement_starts_a_new_wait(make, session, now):
    surgeon = make.actor(make.user("surgeon"))
    flap = make.reconstruction(surgery_end_at=now - hours(5))
    make.check(flap, minutes_ago=90, colour="dusky")
    escalation = session.scalars(select(Escalation)).one()
    acknowledge_escalation(session, surgeon, escalation.id, outcome="observe")
    make.check(flap, minutes_ago=30, colour="dusky", turgor="tense")

    waiting = compliance_report(session, SYSTEM, "PLAST-W3", None, None, now)
    asked_again = session.scalar(
        select(EscalationEvent.at).where(EscalationEvent.kind == "flag_added")
    )
    acknowledge_escalation(
        session, surgeon, escalation.id, outcome="return_to_theatre",
        now=asked_again + timedelta(minutes=20),
    )  # fmt: skip
    answered = compliance_report(session, SYSTEM, "PLAST-W3", None, None, now)

    first = waiting.wait.median
    assert (waiting.wait.count, waiting.unacknowledged) == (1, 1)
    assert (answered.wait.count, answered.unacknowledged) == (2, 0)
    assert answered.wait.median == pytest.approx((first + 20) / 2, abs=0.06)


def test_each_episode_times_the_answer_coming_and_decision_and_the_level_reached(
    auditor, make, session, now
):
    from flapwatch.services.chains import advance_chains, publish_chains
    from flapwatch.services.escalations import attend_escalation

    unit = make.unit()
    steps = [{"after_minutes": m, "notify": "Registrar on call"} for m in (0, 1, 2)]
    publish_chains(session, SYSTEM, unit.code, {"red": steps, "amber": steps}, "Minutes")
    surgeon = make.actor(make.user("surgeon"))
    flap = make.reconstruction(surgery_end_at=now - hours(5))
    make.check(flap, minutes_ago=60, colour="dusky", capillary_refill="brisk")
    escalation = session.scalars(select(Escalation)).one()
    opened = escalation.opened_at
    advance_chains(session, opened + timedelta(minutes=1))
    attend_escalation(
        session, surgeon, escalation.id, expected_minutes=10,
        now=opened + timedelta(minutes=1, seconds=30),
    )  # fmt: skip
    acknowledge_escalation(
        session, surgeon, escalation.id, outcome="observe", now=opened + timedelta(minutes=12)
    )

    report = compliance_report(session, SYSTEM, "PLAST-W3", None, None, now)
    (episode,) = report.episodes
    assert (report.wait.median, report.to_attending.median, report.to_decision.median) == (
        1.5,
        1.5,
        12.0,
    )
    assert report.levels_reached == {0: 0, 1: 0, 2: 1}

    figures = measures(auditor.get("/exports/compliance.csv?unit=PLAST-W3").data)
    group = f"{escalation.id}.1"
    assert figures[("PLAST-W3", "episode", group, "minutes_to_attending")] == "1.5"
    assert figures[("PLAST-W3", "episode", group, "minutes_to_decision")] == "12.0"
    assert figures[("PLAST-W3", "episode", group, "highest_level")] == "2"
    assert figures[("PLAST-W3", "escalations", "all", "median_minutes_to_decision")] == "12.0"
    assert figures[("PLAST-W3", "escalations", "all", "episodes_highest_level_2")] == "1"
    page = auditor.get("/compliance?unit=PLAST-W3").get_data(as_text=True)
    assert "Time to decision, median" in page and "Highest level of the escalation chain" in page
