"""A transfer is a dated event: what happened on the old ward before it stays the old ward's
in its report, what came after is the new ward's, and the flap's time zero does not move."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from sqlalchemy import select

from flapwatch.charts.figure import trend_figure
from flapwatch.charts.spec import FULL, PHONE
from flapwatch.domain.checks import CheckValues
from flapwatch.domain.vocabulary import Role
from flapwatch.exports.fhir import Terminology
from flapwatch.exports.pdf import flap_report
from flapwatch.models import Escalation
from flapwatch.services import SYSTEM, InvalidInput
from flapwatch.services.checks import record_check
from flapwatch.services.compliance import compliance_report
from flapwatch.services.escalations import acknowledge_escalation
from flapwatch.services.exports import export_scope, fhir_resources, rows
from flapwatch.services.patients import transfer_patient
from flapwatch.services.review import chart_subject, flap_trend
from flapwatch.services.ward import ward_board
from tests.test_review import pdf_text

DAY = datetime(2026, 11, 20, tzinfo=UTC)  # London is on UTC in November


def at(hour: int, minute: int = 0) -> datetime:
    return DAY + timedelta(hours=hour, minutes=minute)


@pytest.fixture
def moved(make, session):
    """A flap operated at 08:00 on ICU, checked hourly there at 09:00 and 10:00 (the second
    one flagged, the surgeon's answer "observe" at 10:10), transferred to PLAST-W3 at 10:30,
    checked there at 11:00 and 12:00, then not at 13:00 or 14:00."""
    make.unit("ICU")
    make.unit("PLAST-W3")
    icu_nurse = make.actor(make.user(Role.NURSE, "ICU"))
    ward_nurse = make.actor(make.user(Role.NURSE, "PLAST-W3"))
    flap = make.reconstruction(make.patient("ICU", bed="2"), surgery_end_at=at(8))
    for hour, colour in ((9, "pink"), (10, "dusky")):
        record_check(session, icu_nurse, flap.id, CheckValues(taken_at=at(hour), colour=colour),
                     now=at(hour, 1))  # fmt: skip
    escalation = session.scalars(select(Escalation)).one()
    acknowledge_escalation(session, make.actor(make.user(Role.SURGEON, "ICU")), escalation.id,
                           outcome="observe", now=at(10, 10))  # fmt: skip
    transfer_patient(session, icu_nurse, flap.patient_id, to_unit="PLAST-W3", at=at(10, 30),
                     bed="5", note="Stepped down from ICU", now=at(10, 40))  # fmt: skip
    for hour in (11, 12):
        record_check(session, ward_nurse, flap.id, CheckValues(taken_at=at(hour), colour="pink"),
                     now=at(hour, 1))  # fmt: skip
    return flap


def test_a_transfer_splits_the_compliance_report_between_the_two_wards_by_time(moved, session):
    icu = compliance_report(session, SYSTEM, "ICU", DAY.date(), DAY.date(), at(14, 30))
    ward = compliance_report(session, SYSTEM, "PLAST-W3", DAY.date(), DAY.date(), at(14, 30))

    assert (icu.total.due, icu.total.on_time, icu.total.missed) == (2, 2, 0)
    assert (ward.total.due, ward.total.on_time, ward.total.missed) == (4, 2, 2)
    assert (icu.checks_recorded, ward.checks_recorded) == (2, 2)
    assert (icu.escalations_opened, ward.escalations_opened) == (1, 0)  # flagged on ICU
    # Operated on ICU: its outcome is counted where its monitoring began.
    assert (icu.flaps_operated, ward.flaps_operated) == (1, 0)


def test_the_flap_is_on_the_new_ward_s_board_and_its_page_says_when_it_moved(
    moved, make, session, logged_in
):
    assert [f.reconstruction.id for f in ward_board(session, SYSTEM, "PLAST-W3", at(12)).flaps] == [
        moved.id
    ]
    assert ward_board(session, SYSTEM, "ICU", at(12)).flaps == []
    # Time zero stays the end of the first surgery: the 12:00 check is due again at 13:00.
    (card,) = ward_board(session, SYSTEM, "PLAST-W3", at(12, 30)).flaps
    assert card.next_due_at == at(13)
    browser, _ = logged_in(Role.NURSE, "PLAST-W3")
    page = browser.get(f"/reconstructions/{moved.id}").get_data(as_text=True)
    assert "Transferred ICU → PLAST-W3 at 20 Nov 10:30" in page and "Stepped down" in page


def test_a_transfer_is_refused_to_the_same_ward_before_arrival_or_in_the_future(moved, session):
    nurse = SYSTEM
    for to_unit, moment, field in (
        ("PLAST-W3", at(13), "to_unit"),
        ("ICU", at(10), "at"),  # before the patient came to PLAST-W3
        ("ICU", at(20), "at"),
    ):
        with pytest.raises(InvalidInput) as refused:
            transfer_patient(session, nurse, moved.patient_id, to_unit=to_unit, at=moment,
                             now=at(14))  # fmt: skip
        assert field in refused.value.problems


def test_the_api_transfers_only_a_patient_on_the_nurse_s_ward(api, make):
    make.unit("ICU")
    flap = make.reconstruction(make.patient("PLAST-W3"), hours_ago=5)
    outsider = api(Role.NURSE, "ICU")
    path = f"/patients/{flap.patient_id}/transfer"
    assert outsider.post(path, {"to_unit": "ICU"}).status_code == 404
    nurse = api(Role.NURSE, "PLAST-W3")
    answer = nurse.post(path, {"to_unit": "ICU", "bed": "3", "note": "Needs a ventilator"})
    assert answer.status_code == 200, answer.json
    assert answer.json["unit"] == "ICU" and answer.json["bed"] == "3"
    assert nurse.post(path, {"to_unit": "NOWHERE"}).status_code == 404


def test_each_ward_s_exports_hold_the_rows_of_its_own_stay(moved, session, app):
    def rows_of(kind, unit):
        scope = export_scope(session, SYSTEM, kind, unit, DAY.date(), DAY.date())
        return list(rows(session, kind, scope))

    taken = lambda found: [(r["unit"], r["taken_at"].astimezone(UTC).hour) for r in found]  # noqa: E731
    assert taken(rows_of("checks", "ICU")) == [("ICU", 9), ("ICU", 10)]
    assert taken(rows_of("checks", "PLAST-W3")) == [("PLAST-W3", 11), ("PLAST-W3", 12)]
    # The hospital's export names the ward each check was taken on, not the patient's ward now.
    assert [r["unit"] for r in rows_of("checks", None)] == ["ICU", "ICU", "PLAST-W3", "PLAST-W3"]
    assert [r["unit"] for r in rows_of("escalations", None)] == ["ICU"]
    assert rows_of("escalations", "PLAST-W3") == []

    scope = export_scope(session, SYSTEM, "checks", "ICU", DAY.date(), DAY.date())
    resources = list(fhir_resources(session, scope, Terminology.of(app.config)))
    kinds = [r["resourceType"] for r in resources]
    assert kinds.count("Observation") == 2 and kinds.count("Flag") == 1
    assert kinds.count("Procedure") == 1  # the flap, though its patient is on W3 now
    ward = export_scope(session, SYSTEM, "checks", "PLAST-W3", DAY.date(), DAY.date())
    ward_kinds = [
        r["resourceType"] for r in fhir_resources(session, ward, Terminology.of(app.config))
    ]
    assert ward_kinds.count("Observation") == 2 and "Flag" not in ward_kinds


def test_the_old_ward_s_research_export_keeps_its_checks_of_a_patient_who_moved_on(
    moved, runner, tmp_path
):
    key = tmp_path / "research.key"
    key.write_bytes(b"k" * 32)
    output = tmp_path / "checks.csv"
    result = runner.invoke(args=["export", "checks", "--pseudonymise", "--key-file", str(key),
                                 "--unit", "ICU", "--from", "2026-11-20", "--to", "2026-11-20",
                                 "--output", str(output)])  # fmt: skip
    assert result.exit_code == 0, result.output
    found = list(csv.DictReader(io.StringIO(output.read_text())))
    assert [float(row["taken_at"]) for row in found] == [1.0, 2.0]  # hours after surgery


def test_the_chart_marks_the_transfer_and_is_drawn_afresh_after_one(moved, make, session):
    subject = chart_subject(session, SYSTEM, moved.id, at(14))
    figure = trend_figure(flap_trend(session, subject), FULL)
    labels = [
        artist.get_text()
        for artist in figure.findobj(lambda a: a.get_gid() == "marker-label:transfer")
    ]
    assert labels == ["Transferred ICU → PLAST-W3 10:30"]
    report = flap_report(flap_trend(session, subject, for_report=True), generated_at=at(14),
                         generated_by="Test")  # fmt: skip
    assert "Transferred ICU → PLAST-W3 20 Nov 10:30" in pdf_text(report)[0]

    transfer_patient(session, SYSTEM, moved.patient_id, to_unit="ICU", at=at(13), now=at(13, 5))
    after = chart_subject(session, SYSTEM, moved.id, at(14))
    assert after.version("v1") != subject.version("v1")  # a cached chart is not served again


def test_on_a_phone_the_labels_of_events_close_together_do_not_overlap(moved, session):
    figure = trend_figure(
        flap_trend(session, chart_subject(session, SYSTEM, moved.id, at(14))), PHONE
    )
    renderer = FigureCanvasAgg(figure).get_renderer()
    labels = figure.findobj(lambda a: (a.get_gid() or "").startswith("marker-label:"))
    boxes = [label.get_window_extent(renderer) for label in labels]
    assert len(boxes) == 3  # escalated 10:01, acknowledged 10:10, transferred 10:30
    for number, box in enumerate(boxes):
        assert not any(box.overlaps(other) for other in boxes[number + 1 :]), labels[number]
        assert box.x0 >= figure.axes[0].get_window_extent(renderer).x0 - 1  # not off the chart
