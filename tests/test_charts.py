"""The trend chart's content, read from the figure's own artists (each carries a gid naming what
it shows), never from pixels."""

from __future__ import annotations

import io
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from matplotlib.artist import Artist
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from sqlalchemy import select

from flapwatch.charts.drawing import AMBER, RED
from flapwatch.charts.figure import chart_bytes, trend_figure
from flapwatch.charts.spec import FULL, PHONE, PRINT, SMALL, image_size
from flapwatch.domain.rules import DEFAULT_RULE_SET, rule_set_to_json
from flapwatch.domain.schedule import hours_since
from flapwatch.domain.vocabulary import Role
from flapwatch.models import Escalation, Reconstruction, utcnow
from flapwatch.services import SYSTEM
from flapwatch.services.escalations import acknowledge_escalation, publish_rule_set
from flapwatch.services.review import chart_subject, flap_trend

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _trend(session, reconstruction: Reconstruction, now=None):
    subject = chart_subject(session, SYSTEM, reconstruction.id, now or utcnow())
    return flap_trend(session, subject)


def _figure(session, reconstruction: Reconstruction, variant=FULL, now=None) -> Figure:
    return trend_figure(_trend(session, reconstruction, now), variant)


def _drawn(figure: Figure, gid: str) -> list[Artist]:
    return list(figure.findobj(lambda artist: artist.get_gid() == gid))


def _line(figure: Figure, gid: str) -> Line2D:
    (line,) = _drawn(figure, gid)
    assert isinstance(line, Line2D)
    return line


def _hours(reconstruction: Reconstruction, check) -> float:
    return hours_since(reconstruction.surgery_end_at, check.taken_at)


def _texts(figure: Figure, prefix: str) -> list[str]:
    return [
        artist.get_text()
        for artist in figure.findobj(lambda a: (a.get_gid() or "").startswith(prefix))
    ]


def test_the_temperature_difference_threshold_is_the_units_own(make, session):
    flap = make.reconstruction(hours_ago=4)
    make.check(flap, minutes_ago=60, flap_temperature_c=34.0, control_temperature_c=35.0)
    default = _line(_figure(session, flap), "threshold:temperature_difference_c:temperature")
    assert list(default.get_ydata()) == [1.8, 1.8]

    coordinator = make.actor(make.user(Role.UNIT_ADMIN))
    definition = rule_set_to_json(DEFAULT_RULE_SET)
    for rule in definition["rules"]:
        if rule["id"] == "temperature":
            rule["conditions"][0]["value"] = 2.5
    publish_rule_set(session, coordinator, flap.patient.unit_id, definition, "Fewer alarms")

    figure = _figure(session, flap)
    line = _line(figure, "threshold:temperature_difference_c:temperature")
    assert list(line.get_ydata()) == [2.5, 2.5]
    assert _texts(figure, "threshold-label:temperature_difference_c") == [
        "◆ Flap cooling: ΔT ≥ 2.5 °C"
    ]


def test_a_threshold_the_unit_removes_is_not_drawn(make, session):
    flap = make.reconstruction(hours_ago=4)
    make.check(flap, minutes_ago=60, sto2_percent=70, flap_temperature_c=34.0)
    assert _drawn(_figure(session, flap), "threshold:sto2_percent:sto2")

    coordinator = make.actor(make.user(Role.UNIT_ADMIN))
    definition = rule_set_to_json(DEFAULT_RULE_SET)
    definition["rules"] = [rule for rule in definition["rules"] if rule["id"] != "sto2"]
    publish_rule_set(session, coordinator, flap.patient.unit_id, definition, "No oximetry")
    assert not _drawn(_figure(session, flap), "threshold:sto2_percent:sto2")


def test_flagged_checks_are_marked_by_severity_in_shape_and_colour(make, session):
    flap = make.reconstruction(hours_ago=5)
    normal = make.check(flap, minutes_ago=240, colour="pink")
    cooling = make.check(  # ΔT 2.0: the amber temperature rule only
        flap, minutes_ago=180, flap_temperature_c=33.0, control_temperature_c=35.0
    )
    dusky = make.check(flap, minutes_ago=120, colour="dusky")  # red: venous congestion

    figure = _figure(session, flap)
    red = _line(figure, "flags:red")
    amber = _line(figure, "flags:amber")
    assert list(red.get_xdata()) == pytest.approx([_hours(flap, dusky)])
    assert list(amber.get_xdata()) == pytest.approx([_hours(flap, cooling)])
    assert list(_line(figure, "checks").get_xdata()) == pytest.approx([_hours(flap, normal)])
    # Shape and colour both differ, so greyscale and colour-blind readers still tell them apart.
    assert (red.get_marker(), red.get_markerfacecolor()) == ("^", RED)
    assert (amber.get_marker(), amber.get_markerfacecolor()) == ("D", AMBER)
    # The ΔT point past the amber line is drawn in the amber shape on its own panel too.
    beyond = _line(figure, "beyond:temperature_difference_c:temperature")
    assert list(beyond.get_ydata()) == pytest.approx([2.0])


def test_sign_lanes_draw_the_answers_a_rule_looks_for_large_and_label_changes(make, session):
    flap = make.reconstruction(hours_ago=5)
    make.check(flap, minutes_ago=240, colour="pink", capillary_refill="normal")
    make.check(flap, minutes_ago=180, colour="pink", capillary_refill="normal")
    dusky = make.check(flap, minutes_ago=120, colour="dusky", capillary_refill="brisk")
    unseen = make.check(flap, minutes_ago=60, colour="not_assessable", doppler_venous="present")

    figure = _figure(session, flap)
    assert list(_line(figure, "lane:colour:red").get_xdata()) == pytest.approx(
        [_hours(flap, dusky)]
    )
    assert len(_line(figure, "lane:colour:normal").get_xdata()) == 2
    assert list(_line(figure, "lane:colour:not_observed").get_xdata()) == pytest.approx(
        [_hours(flap, unseen)]
    )
    assert list(_line(figure, "lane:capillary_refill:red").get_xdata()) == pytest.approx(
        [_hours(flap, dusky)]
    )
    # Each run of one answer is named once where it starts: pink, then dusky, then unseen.
    assert _texts(figure, "change:colour:") == ["pink", "dusky", "not assessable"]


def test_a_lost_venous_signal_drops_to_the_absent_lane_in_red(make, session):
    flap = make.reconstruction(hours_ago=5)
    make.check(flap, minutes_ago=180, doppler_venous="present", doppler_arterial="present")
    lost = make.check(flap, minutes_ago=120, doppler_venous="absent", doppler_arterial="present")

    figure = _figure(session, flap)
    venous = _line(figure, "series:doppler_venous")
    assert venous.get_drawstyle() == "steps-post"
    present_row, absent_row = list(venous.get_ydata())
    assert absent_row < present_row
    flagged = _line(figure, "lane:doppler_venous:red")
    assert list(flagged.get_xdata()) == pytest.approx([_hours(flap, lost)])
    assert list(flagged.get_ydata()) == [absent_row]


def test_escalation_acknowledgement_and_return_to_theatre_are_labelled_lines(make, session):
    flap = make.reconstruction(hours_ago=5)
    make.check(flap, minutes_ago=120, colour="blue")
    escalation = session.scalars(select(Escalation)).one()
    surgeon = make.actor(make.user(Role.SURGEON))
    acknowledged_at = utcnow() - timedelta(minutes=90)
    acknowledge_escalation(
        session, surgeon, escalation.id, outcome="return_to_theatre", now=acknowledged_at
    )

    figure = _figure(session, flap)
    opened = _drawn(figure, f"escalation:opened:{escalation.id}")
    theatre = _drawn(figure, f"escalation:return_to_theatre:{escalation.id}")
    assert opened and theatre  # one line in every panel
    assert all(
        line.get_xdata()[0] == pytest.approx(hours_since(flap.surgery_end_at, escalation.opened_at))
        for line in opened
    )
    assert all(
        line.get_xdata()[0] == pytest.approx(hours_since(flap.surgery_end_at, acknowledged_at))
        for line in theatre
    )
    assert all(line.get_linewidth() > opened[0].get_linewidth() for line in theatre)
    (label,) = _texts(figure, "marker-label:return_to_theatre")
    assert label.startswith("Return to theatre")
    # No one's name is drawn: a cached chart cannot go stale when an account is renamed.
    drawn = [text.get_text() for text in figure.findobj(lambda a: hasattr(a, "get_text"))]
    assert not any("Test surgeon" in text for text in drawn)
    (opening,) = _texts(figure, "marker-label:opened")
    assert opening.startswith("▲ Escalated")


def test_overdue_gaps_are_hatched_from_due_plus_grace_to_the_next_check(make, session):
    flap = make.reconstruction(hours_ago=6)
    first = make.check(flap, taken_at=flap.surgery_end_at + timedelta(minutes=10))
    make.check(flap, taken_at=flap.surgery_end_at + timedelta(hours=3))

    figure = _figure(session, flap)
    gaps = _drawn(figure, "overdue-gap")
    assert gaps and all(gap.get_hatch() == "///" for gap in gaps)
    starts = {round(gap.get_x(), 6) for gap in gaps}
    ends = {round(gap.get_x() + gap.get_width(), 6) for gap in gaps}
    due_plus_grace = _hours(flap, first) + 1 + 0.25
    # Two closed gaps in every panel: after the first check, and the one still open up to now
    # (the flap is monitored, its last check 3 h ago).
    assert round(due_plus_grace, 6) in starts
    assert round(3.0, 6) in ends


def test_a_flap_with_no_checks_still_draws_its_axes_and_says_so(make, session):
    flap = make.reconstruction(hours_ago=0.5)
    figure = _figure(session, flap)
    assert _texts(figure, "empty") == ["No checks recorded yet"]
    for fmt in ("png", "svg"):
        assert chart_bytes(_trend(session, flap), FULL, fmt)
    assert chart_bytes(_trend(session, flap), SMALL, "png").startswith(PNG_SIGNATURE)


def test_a_single_check_renders_on_a_two_hour_axis_at_least(make, session):
    flap = make.reconstruction(hours_ago=0.3)
    make.check(flap, minutes_ago=5, colour="pink")
    figure = _figure(session, flap)
    low, high = figure.axes[0].get_xlim()
    assert high - low >= 2
    assert chart_bytes(_trend(session, flap), FULL, "png").startswith(PNG_SIGNATURE)


def test_five_hundred_checks_stay_legible(make, session):
    flap = make.reconstruction(hours_ago=130)
    start = flap.surgery_end_at + timedelta(minutes=5)
    colours = ("pink", "pale", "pink", "mottled")
    for index in range(520):
        make.check(
            flap,
            taken_at=start + timedelta(minutes=15 * index),
            colour=colours[index % 4],
            flap_temperature_c=34.0,
            control_temperature_c=35.0,
        )
    figure = _figure(session, flap)
    # A label on every change would be a smear: the lane keeps to its limit, abnormal first.
    labels = _texts(figure, "change:colour:")
    assert 0 < len(labels) <= FULL.max_change_labels
    assert set(labels) <= {"pale", "mottled"}
    # Points shrink with their number; the flags stay larger than the plain points.
    plain = _line(figure, "lane:colour:normal")
    flagged = _line(figure, "lane:colour:red")
    assert plain.get_markersize() < flagged.get_markersize()
    assert len(flagged.get_xdata()) == 260
    # Clock ticks stay few enough to read.
    assert len(figure.axes[0].get_xticks()) <= 20
    assert chart_bytes(_trend(session, flap), FULL, "png").startswith(PNG_SIGNATURE)


def test_sto2_panel_appears_only_when_the_flap_has_readings(make, session):
    flap = make.reconstruction(hours_ago=3)
    make.check(flap, minutes_ago=60, colour="pink")
    assert not _drawn(_figure(session, flap), "series:sto2_percent")
    make.check(flap, minutes_ago=30, sto2_percent=25)
    figure = _figure(session, flap)
    assert list(_line(figure, "series:sto2_percent").get_ydata()) == [25]
    assert list(_line(figure, "beyond:sto2_percent:sto2").get_ydata()) == [25]


def test_the_ward_clock_along_the_top_is_on_the_hour_in_the_units_zone(make, session):
    make.unit("SYD-W1", timezone="Australia/Sydney")
    flap = make.reconstruction(hours_ago=7, unit="SYD-W1")
    make.check(flap, minutes_ago=300, colour="pink")
    figure = _figure(session, flap)
    figure.canvas.draw()  # tick labels are made when drawn
    clock = figure.axes[0].xaxis
    assert clock.get_ticks_position() == "top"
    labels = [tick.get_text() for tick in clock.get_ticklabels() if tick.get_text()]
    assert labels and all(label.endswith(":00") for label in labels)
    sydney = ZoneInfo("Australia/Sydney")
    for position, label in zip(clock.get_ticklocs(), labels, strict=True):
        local = (flap.surgery_end_at + timedelta(hours=position)).astimezone(sydney)
        assert local.minute == 0
        assert label.endswith(local.strftime("%H:%M"))
    # The day is named where the axis starts.
    assert labels[0][:3] in {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}


def test_buried_flaps_say_why_colour_is_not_seen(make, session):
    flap = make.reconstruction(hours_ago=3, buried=True)
    make.check(flap, minutes_ago=30, doppler_arterial="present")
    assert _texts(_figure(session, flap), "buried") == ["Buried flap: no skin paddle to see"]


def test_text_typed_by_people_is_drawn_as_typed_not_as_maths(make, session):
    patient = make.patient(name="Ann $_$ O'Neil $5")
    flap = make.reconstruction(patient, hours_ago=3)
    make.check(flap, minutes_ago=30, colour="pink")
    figure = _figure(session, flap)
    (title,) = _texts(figure, "title")
    assert title.startswith("Ann $_$ O'Neil $5")
    assert chart_bytes(_trend(session, flap), FULL, "png").startswith(PNG_SIGNATURE)


@pytest.mark.parametrize("variant", [FULL, SMALL, PHONE])
def test_image_size_matches_the_rendered_png(make, session, variant):
    flap = make.reconstruction(hours_ago=3)
    make.check(flap, minutes_ago=30, colour="pink")
    data = chart_bytes(_trend(session, flap), variant, "png")
    width = int.from_bytes(data[16:20], "big")
    height = int.from_bytes(data[20:24], "big")
    assert (width, height) == image_size(variant)


def test_the_print_variant_fills_an_a4_page(make, session):
    flap = make.reconstruction(hours_ago=3)
    make.check(flap, minutes_ago=30, colour="pink", sto2_percent=70)
    figure = _figure(session, flap, PRINT)
    assert tuple(round(x, 2) for x in figure.get_size_inches()) == (8.27, 11.69)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="pdf")
    assert buffer.getvalue().startswith(b"%PDF")


def test_a_check_entered_in_error_is_not_drawn_and_a_correction_is_drawn_as_corrected(
    make, session
):
    from flapwatch.domain.checks import CheckValues
    from flapwatch.services.checks import amend_check

    nurse = make.actor(make.user(Role.NURSE))
    flap = make.reconstruction(hours_ago=5)
    kept = make.check(flap, minutes_ago=180, colour="pink")
    typo = make.check(flap, minutes_ago=120, colour="pink")
    wrong_patient = make.check(flap, minutes_ago=60, colour="black")
    amend_check(
        session,
        nurse,
        typo.id,
        reason="It was dusky",
        values=CheckValues(**{**typo.values().as_dict(), "colour": "dusky"}),
    )
    amend_check(session, nurse, wrong_patient.id, reason="Other patient", entered_in_error=True)

    figure = _figure(session, flap)
    assert list(_line(figure, "lane:colour:normal").get_xdata()) == pytest.approx(
        [_hours(flap, kept)]
    )
    assert list(_line(figure, "lane:colour:red").get_xdata()) == pytest.approx(
        [_hours(flap, typo)]  # the corrected answer, at the same time
    )
    assert not _drawn(figure, "change:colour:black")


def test_the_app_starts_without_matplotlib_and_draws_without_pyplot(tmp_path):
    """The command line and every page that only links a chart stay light (an export's peak
    memory is measured in benchmarks/bench_export.py); drawing never touches pyplot's global
    state, which is not safe between a server's threads."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from flapwatch import create_app\n"
        f"create_app({{'INSTANCE_PATH': {str(tmp_path)!r}, 'NOTIFIER_THREAD': False}})\n"
        "assert 'matplotlib' not in sys.modules, 'matplotlib loaded at start'\n"
        "import flapwatch.charts.figure, flapwatch.exports.pdf\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot loaded'\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_phone_chart_shows_the_last_day_and_names_the_answer_it_starts_with(make, session):
    flap = make.reconstruction(hours_ago=60)
    for hours_ago in (58, 50, 40, 30, 20, 10, 1):
        make.check(flap, minutes_ago=hours_ago * 60, colour="pink", flap_temperature_c=34.0)
    make.check(flap, minutes_ago=20, colour="dusky", flap_temperature_c=33.0)

    figure = _figure(session, flap, PHONE)

    (lanes, *_) = figure.axes
    start, end = lanes.get_xlim()
    assert 23.5 < end - start < 26  # the last 24 h, not the 60 since surgery
    colours = _texts(figure, "change:colour:")
    assert colours == ["pink", "dusky"]  # pink ran from before the window: named at its start
    (window,) = _texts(figure, "window")
    assert window.startswith("last 24 h")
    assert _texts(figure, "trend-rule:") == []  # the page carries the rules on changes


def test_the_phone_charts_smallest_text_reads_at_a_phones_width(make, session):
    """Shown about 340 CSS px wide, a point is 340 / (72 × width) CSS px: the smallest text
    must stand at least 11 CSS px tall there."""
    flap = make.reconstruction(hours_ago=6)
    make.check(flap, minutes_ago=30, colour="dusky", capillary_refill="brisk")
    figure = _figure(session, flap, PHONE)

    sizes = [text.get_fontsize() for text in figure.findobj(lambda a: hasattr(a, "get_fontsize"))]
    points_to_css = 340 / (72 * PHONE.width_in)
    assert min(sizes) * points_to_css >= 11


def _gaps(figure: Figure) -> set[tuple[float, float]]:
    return {
        (round(gap.get_x(), 4), round(gap.get_x() + gap.get_width(), 4))
        for gap in _drawn(figure, "overdue-gap")
    }


def test_no_overdue_stretch_is_hatched_while_the_flap_was_back_in_theatre(make, session):
    from flapwatch.domain.vocabulary import ReconstructionStatus
    from flapwatch.services.patients import set_reconstruction_status

    flap = make.reconstruction(hours_ago=10)
    start = flap.surgery_end_at
    for hour in range(1, 6):
        make.check(flap, taken_at=start + timedelta(hours=hour))
    coordinator = make.actor(make.user(Role.UNIT_ADMIN))
    set_reconstruction_status(
        session, coordinator, flap.id, ReconstructionStatus.RETURNED_TO_THEATRE,
        now=start + timedelta(hours=5, minutes=30),
    )  # fmt: skip
    back = start + timedelta(hours=8)
    set_reconstruction_status(
        session, coordinator, flap.id, ReconstructionStatus.MONITORING, time_zero="restart",
        now=back,
    )  # fmt: skip
    make.check(flap, taken_at=back + timedelta(minutes=5))

    figure = _figure(session, flap, now=back + timedelta(minutes=20))
    assert _gaps(figure) == set()  # three hours away, and nothing was overdue


def test_an_unanswered_red_flag_s_recheck_is_hatched_when_it_is_missed(make, session):
    flap = make.reconstruction(hours_ago=6)
    start = flap.surgery_end_at
    make.check(flap, taken_at=start + timedelta(hours=4))
    flagged = make.check(
        flap, taken_at=start + timedelta(hours=5), colour="dusky", capillary_refill="brisk"
    )
    assert session.scalar(select(Escalation.recheck_minutes)) == 15
    make.check(flap, taken_at=start + timedelta(hours=5, minutes=50))

    figure = _figure(session, flap, now=start + timedelta(hours=5, minutes=55))
    recheck_overdue = _hours(flap, flagged) + 0.25 + 0.25  # 15 min recheck, 15 min grace
    assert (round(recheck_overdue, 4), round(5 + 50 / 60, 4)) in _gaps(figure)


def test_on_a_phone_a_crowd_of_answers_keeps_its_most_telling_labels_and_none_overlap(
    make, session
):
    """Four answers within 40 minutes on a narrow chart: three rows cannot hold every label,
    so the opening and the latest answers keep theirs and no label is drawn over another."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from flapwatch.services.escalations import attend_escalation

    flap = make.reconstruction(hours_ago=6)
    for minutes in (180, 120):
        make.check(flap, minutes_ago=minutes)
    make.check(flap, minutes_ago=60, colour="dusky")
    escalation = session.scalars(select(Escalation)).one()
    surgeon = make.actor(make.user(Role.SURGEON))
    opened = escalation.opened_at
    for minutes in (5, 15):
        acknowledge_escalation(session, surgeon, escalation.id, outcome="observe",
                               now=opened + timedelta(minutes=minutes))  # fmt: skip
    attend_escalation(session, surgeon, escalation.id, expected_minutes=20,
                      now=opened + timedelta(minutes=25))  # fmt: skip

    figure = _figure(session, flap, PHONE)
    labels = figure.findobj(lambda a: (a.get_gid() or "").startswith("marker-label:"))
    renderer = FigureCanvasAgg(figure).get_renderer()
    boxes = [label.get_window_extent(renderer) for label in labels]
    for number, box in enumerate(boxes):
        assert not any(box.overlaps(other) for other in boxes[number + 1 :]), labels[number]
    texts = [label.get_text() for label in labels]
    assert any(text.startswith("▲ Escalated") for text in texts)
    assert any(text.startswith("Coming") for text in texts)
    latest = (opened + timedelta(minutes=15)).astimezone(ZoneInfo("Europe/London"))
    assert f"Acknowledged {latest:%H:%M}: observe" in texts  # the latest answer, not the first
