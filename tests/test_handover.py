"""The shift handover: the ward on one page (and on A4) for the oncoming nurse, each flap's
last 12 hours in words, what is open, and what the surgeon asked for."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pypdf
from sqlalchemy import select

from flapwatch.domain.handover import Observation, trend_in_words
from flapwatch.domain.vocabulary import Role
from flapwatch.models import AuditEvent, Escalation, utcnow
from flapwatch.services.escalations import acknowledge_escalation
from flapwatch.services.handover import handover
from flapwatch.services.monitoring import record_not_done
from tests.conftest import count_queries

NOW = datetime(2026, 12, 3, 7, 30, tzinfo=UTC)


def seen(hours_ago: float, severity: str | None = None, **signs) -> Observation:
    sto2 = signs.pop("sto2", None)
    delta = signs.pop("delta", None)
    return Observation(
        taken_at=NOW - timedelta(hours=hours_ago),
        signs={"colour": "pink", "capillary_refill": "normal", **signs},
        measures={"temperature_difference_c": delta, "sto2_percent": sto2},
        severity=severity,
    )


def test_a_steady_night_is_said_in_one_breath():
    words = trend_in_words([seen(h, delta=0.8, sto2=72) for h in (11, 9, 7, 5, 3, 1)], NOW)
    assert words == [
        "6 bedside checks in the last 12 h.",
        "Colour pink, refill normal throughout.",
        "ΔT 0.8 °C steady.",
        "StO₂ 72 % steady.",
        "Nothing flagged.",
    ]


def test_a_change_says_from_what_to_what_and_when_and_what_flagged():
    night = [
        seen(13, colour="dusky"),  # before the window: not read
        seen(6, delta=0.7, sto2=71),
        seen(4, delta=0.9, sto2=66),
        seen(2, "red", colour="dusky", capillary_refill="brisk", delta=2.4, sto2=48),
    ]
    words = trend_in_words(night, NOW)
    assert words[0] == "3 bedside checks in the last 12 h."
    assert "Colour pink → dusky (last change 05:30)." in words
    assert "Refill normal → brisk (last change 05:30)." in words
    assert "ΔT rose 0.7 → 2.4 °C (at 05:30)." in words
    assert "StO₂ fell 71 → 48 % (at 05:30)." in words
    assert words[-1] == "Flagged 1× (1 red), last at 05:30."


def test_no_bedside_check_is_said_so_even_with_device_readings():
    device = Observation(NOW - timedelta(hours=1), {}, {"sto2_percent": 70.0}, from_device=True)
    assert trend_in_words([device], NOW) == [
        "No bedside check in the last 12 h.",
        "1 device reading.",
    ]


def test_the_handover_shows_each_flap_by_bed_with_what_is_open_and_what_was_asked(
    logged_in, make, session
):
    surgeon = make.actor(make.user(Role.SURGEON))
    quiet = make.reconstruction(make.patient(bed="9", name="Quentin Quiet"), hours_ago=30)
    make.check(quiet, minutes_ago=50)
    worry = make.reconstruction(make.patient(bed="2", name="Wendy Worry"), hours_ago=18)
    make.check(worry, minutes_ago=240)
    make.check(worry, minutes_ago=90, colour="dusky", capillary_refill="brisk")
    escalation = session.scalars(select(Escalation)).one()
    acknowledge_escalation(session, surgeon, escalation.id, outcome="observe",
                           note="Checks every 30 min; call me if it darkens.")  # fmt: skip
    record_not_done(session, make.actor(make.user(Role.NURSE)), worry.id,
                    taken_at=utcnow() - timedelta(minutes=20), reason="patient_refused",
                    note="Asleep after analgesia")  # fmt: skip
    browser, _ = logged_in(Role.NURSE)

    page = browser.get("/units/PLAST-W3/handover").get_data(as_text=True)

    assert page.index("Wendy Worry") < page.index("Quentin Quiet")  # bed 2 before bed 9
    assert "18 h post-op" in page and "Colour pink → dusky" in page
    assert "acknowledged" in page and "Checks every 30 min; call me if it darkens." in page
    assert "patient refused (Asleep after analgesia)" in page
    assert "/units/PLAST-W3/handover.pdf" in page


def test_the_a4_handover_prints_the_same_and_the_audit_trail_says_who_printed_it(
    logged_in, make, session
):
    flap = make.reconstruction(make.patient(bed="4", name="Paula Print"), hours_ago=10)
    make.check(flap, minutes_ago=30, colour="pale")
    browser, nurse = logged_in(Role.NURSE)

    answer = browser.get("/units/PLAST-W3/handover.pdf")

    assert answer.status_code == 200 and answer.mimetype == "application/pdf"
    text = " ".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(answer.data)).pages)
    assert "Shift handover" in text and "Bed 4" in text and "Paula Print" in text
    assert "escalation open since" in text and "NOT YET ACKNOWLEDGED" in text
    printed = session.scalars(select(AuditEvent).where(AuditEvent.action == "handover.print"))
    (event,) = printed
    assert event.actor_username == nurse.username and event.after["reconstructions"] == [flap.id]


def test_the_handover_is_read_in_a_fixed_number_of_queries(app, make, session):
    nurse = make.actor(make.user(Role.NURSE))

    def statements(flaps: int) -> int:
        for _ in range(flaps):
            flap = make.reconstruction(hours_ago=8)
            make.check(flap, minutes_ago=60)
        with count_queries(app) as sent:
            handover(session, nurse, "PLAST-W3", utcnow())
        return len(sent)

    assert statements(2) == statements(5)
