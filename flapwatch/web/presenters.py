"""How times, durations and checks read on screen, in the unit's own time zone."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from flask import Flask, url_for
from sqlalchemy.orm import Session

from flapwatch.domain.outcomes import minutes_between
from flapwatch.domain.vocabulary import (
    CapillaryRefill,
    Colour,
    DopplerArterial,
    DopplerVenous,
    DueState,
    Pinprick,
    Turgor,
)
from flapwatch.models import (
    Check,
    Escalation,
    MonitoringPause,
    ScheduleOverride,
    TheatreReturn,
    Unit,
)
from flapwatch.services.live import latest_id
from flapwatch.services.monitoring import describe


def zone(unit: Unit) -> ZoneInfo:
    return ZoneInfo(unit.timezone)


def local_time(moment: datetime | None, unit: Unit, pattern: str = "%a %d %b %H:%M") -> str:
    if moment is None:
        return "—"
    return moment.astimezone(zone(unit)).strftime(pattern)


def clock(moment: datetime | None, unit: Unit) -> str:
    return local_time(moment, unit, "%H:%M")


def hours(value: float) -> str:
    """Hours since surgery as the ward says it: '7 h', '2 d 3 h' after two days."""
    whole = max(int(value), 0)
    if whole < 48:
        return f"{whole} h"
    return f"{whole // 24} d {whole % 24} h"


def relative(moment: datetime, now: datetime) -> str:
    """'in 25 min', '40 min ago', 'in 2 h 5 min'."""
    delta = moment - now
    minutes = int(abs(delta) / timedelta(minutes=1))
    if minutes == 0:
        return "now"
    amount = f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"
    return f"in {amount}" if delta > timedelta(0) else f"{amount} ago"


def due_phrase(state: DueState, next_due: datetime | None, now: datetime, grace: timedelta) -> str:
    if next_due is None:
        return "Nothing falls due while paused"
    if state == DueState.OVERDUE:
        return f"Overdue by {relative(now, next_due).removeprefix('in ')}"
    if state == DueState.DUE:
        return f"Due now (overdue {relative(next_due + grace, now)})"
    return f"Due {relative(next_due, now)}"


def pause_phrase(pause: MonitoringPause, unit: Unit, now: datetime) -> str:
    """ "Paused — imaging since 14:02 (expected back 15:00)"; once that has passed, gently
    "longer than expected"."""
    text = f"Paused — {pause.reason.label.lower()} since {clock(pause.started_at, unit)}"
    if pause.expected_until is None:
        return text
    if pause.longer_than_expected(now):
        return f"{text}: longer than expected (back by {clock(pause.expected_until, unit)})"
    return f"{text} (expected back {clock(pause.expected_until, unit)})"


def _on_the_day(moment: datetime, unit: Unit, now: datetime) -> str:
    """14:00 today; "Tue 01:00" on another day of the ward's clock."""
    if moment.astimezone(zone(unit)).date() == now.astimezone(zone(unit)).date():
        return clock(moment, unit)
    return local_time(moment, unit, "%a %H:%M")


def override_phrase(override: ScheduleOverride, unit: Unit, now: datetime) -> str:
    """ "Per-flap schedule: checks every 15 min until 16:00", or, still to come, "Per-flap
    schedule from Tue 01:00: no checks until 05:00"."""
    if override.holds(now):
        until = _on_the_day(override.in_force_until, unit, now)
        return f"Per-flap schedule: {describe(override)} until {until}"
    until = _on_the_day(override.in_force_until, unit, override.starts_at)
    return (
        f"Per-flap schedule from {_on_the_day(override.starts_at, unit, now)}: "
        f"{describe(override)} until {until}"
    )


def check_summary(check: Check | None) -> str:
    """One line a nurse can scan: colour, temperatures, refill, Doppler, oximetry."""
    if check is None:
        return "No checks yet"
    parts: list[str] = []
    if check.colour:
        parts.append(Colour(check.colour).label)
    if check.flap_temperature_c is not None or check.control_temperature_c is not None:
        flap = _temp(check.flap_temperature_c)
        control = _temp(check.control_temperature_c)
        text = f"{flap}/{control} °C"
        if check.temperature_difference_c is not None:
            text += f" (ΔT {check.temperature_difference_c:.1f})"
        parts.append(text)
    if check.capillary_refill:
        parts.append(f"CRT {CapillaryRefill(check.capillary_refill).label.lower()}")
    doppler = []
    if check.doppler_arterial:
        doppler.append(f"A {DopplerArterial(check.doppler_arterial).label.lower()}")
    if check.doppler_venous:
        doppler.append(f"V {DopplerVenous(check.doppler_venous).label.lower()}")
    if doppler:
        parts.append("Doppler " + ", ".join(doppler))
    if check.turgor:
        parts.append(Turgor(check.turgor).label.lower())
    if check.pinprick:
        parts.append(f"pinprick {Pinprick(check.pinprick).label.lower()}")
    if check.sto2_percent is not None:
        parts.append(f"StO₂ {check.sto2_percent:g} %")
    return " · ".join(parts)


def chain_state(escalation: Escalation, now: datetime) -> str:
    """How long the escalation has gone unanswered and how far its chain has climbed:
    "unanswered 6 min · level 2"; empty once it is answered (acknowledged, or someone is
    coming) or closed."""
    started = escalation.chain_started_at
    if escalation.answered or escalation.closed_at is not None or not started:
        return ""
    minutes = max(0, int((now - started) / timedelta(minutes=1)))
    waited = f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"
    level = f" · level {escalation.chain_level}" if escalation.chain_level else ""
    return f"unanswered {waited}{level}"


def coming(escalation: Escalation, now: datetime) -> str:
    """Who is on their way and when they expect to be there: "Coming: Ms Rao, expected
    02:40"; "expected 02:40, 5 min ago" once that has passed; empty when nobody is."""
    if escalation.attending_at is None or escalation.closed_at is not None:
        return ""
    expected = escalation.attending_expected_at
    assert expected is not None
    unit = escalation.reconstruction.patient.unit
    who = escalation.attending_by.display_name if escalation.attending_by else "a surgeon"
    words = f"Coming: {who}, expected {clock(expected, unit)}"
    late = int((now - expected) / timedelta(minutes=1))
    return f"{words}, {late} min ago" if late >= 1 else words


def live_urls(units: Iterable[Unit], session: Session) -> list[str]:
    """The event streams a page follows, starting after the newest event it already shows:
    static/flapwatch.js reloads the page when one comes."""
    after = latest_id(session)
    return [url_for("api.unit_events", code=unit.code, after=after) for unit in units]


def _temp(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def theatre_timing(theatre_return: TheatreReturn) -> str:
    """Minutes from the first flag of the escalation that sent the flap back to theatre, to
    the decision and to knife to skin: "first flag → decision 22 min, → knife to skin 95 min"."""
    escalation = theatre_return.escalation
    if escalation is None:
        return ""
    parts = []
    for label, moment in (
        ("decision", theatre_return.decided_at),
        ("knife to skin", theatre_return.knife_to_skin_at),
    ):
        minutes = minutes_between(escalation.opened_at, moment)
        if minutes is not None:
            parts.append(f"{label} {minutes:g} min")
    return "first flag → " + ", → ".join(parts) if parts else ""


def register(app: Flask) -> None:
    app.jinja_env.filters.update(
        local_time=local_time, clock=clock, hours=hours, check_summary=check_summary
    )
    app.jinja_env.globals.update(
        pause_phrase=pause_phrase,
        theatre_timing=theatre_timing,
        override_phrase=override_phrase,
        describe_override=describe,
        relative=relative,
        due_phrase=due_phrase,
        chain_state=chain_state,
        coming=coming,
        DueState=DueState,
    )
