"""When a flap's next check is due: band boundaries, grace, and the ward clock's time zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from flapwatch.domain.schedule import (
    SchedulePolicy,
    SchedulePolicyError,
    due_state,
    format_bands,
    next_due_at,
    parse_bands,
)
from flapwatch.domain.vocabulary import DueState

SURGERY = datetime(2026, 3, 10, 14, 0, tzinfo=UTC)
DEFAULT = SchedulePolicy()


def at(hours: float) -> datetime:
    return SURGERY + timedelta(hours=hours)


@pytest.mark.parametrize(
    ("last_check_hours", "expected_due_hours"),
    [
        (None, 1),  # first check an hour after surgery
        (0.5, 1.5),
        (23, 24),  # last hourly check
        (23.99, 24.99),  # still in the hourly band
        (24, 26),  # 24 h exactly starts the 2-hourly band
        (47.5, 49.5),
        (48, 52),  # 4-hourly from 48 h
        (119, 123),
        (120, 128),  # after the last band: every 8 hours until stopped
        (300, 308),
    ],
)
def test_next_due_follows_the_band_of_the_last_check(last_check_hours, expected_due_hours):
    last = None if last_check_hours is None else at(last_check_hours)
    assert next_due_at(DEFAULT, SURGERY, last) == at(expected_due_hours)


def test_a_baseline_check_before_surgery_end_counts_from_surgery_end():
    assert next_due_at(DEFAULT, SURGERY, at(-0.5)) == at(1)


@pytest.mark.parametrize(
    ("now_minutes_after_due", "state"),
    [
        (-30, DueState.NOT_DUE),
        (-1, DueState.NOT_DUE),
        (0, DueState.DUE),
        (15, DueState.DUE),
        (15.02, DueState.OVERDUE),
        (120, DueState.OVERDUE),
    ],
)
def test_due_until_the_grace_period_runs_out_then_overdue(now_minutes_after_due, state):
    due = at(5)
    assert due_state(DEFAULT, due, due + timedelta(minutes=now_minutes_after_due)) == state


def test_unit_policy_with_half_hourly_first_day_and_no_grace():
    # Canniesburn practice: every 30 min for the first 24 h (DESIGN.md §3).
    canniesburn = SchedulePolicy(
        bands=((24, 30), (48, 60), (72, 120)), grace_minutes=0, after_last_band_minutes=480
    )
    assert next_due_at(canniesburn, SURGERY, at(2)) == at(2.5)
    assert due_state(canniesburn, at(2.5), at(2.5) + timedelta(seconds=1)) == DueState.OVERDUE


def test_intervals_are_elapsed_time_across_a_clock_change():
    # UK clocks went back at 02:00 BST on 25 Oct 2026 (01:00 UTC): 01:30 happens twice.
    london = ZoneInfo("Europe/London")
    surgery = datetime(2026, 10, 24, 20, 0, tzinfo=london)
    first = next_due_at(DEFAULT, surgery, datetime(2026, 10, 25, 0, 30, tzinfo=london))
    assert first.astimezone(london).strftime("%H:%M %Z") == "01:30 BST"
    second = next_due_at(DEFAULT, surgery, first)
    assert second.astimezone(london).strftime("%H:%M %Z") == "01:30 GMT"
    assert second - first == timedelta(hours=1)


def test_spring_forward_does_not_shorten_an_interval():
    london = ZoneInfo("Europe/London")
    surgery = datetime(2026, 3, 28, 22, 0, tzinfo=london)
    last = datetime(2026, 3, 29, 0, 30, tzinfo=london)  # GMT; clocks jump 01:00 -> 02:00
    due = next_due_at(DEFAULT, surgery, last)
    assert due.astimezone(london).strftime("%H:%M %Z") == "02:30 BST"
    assert due - last == timedelta(hours=1)


def test_same_instant_is_due_at_the_same_moment_whatever_the_unit_zone():
    for zone in ("Europe/London", "Australia/Sydney", "America/Los_Angeles"):
        surgery = SURGERY.astimezone(ZoneInfo(zone))
        assert next_due_at(DEFAULT, surgery, None) == at(1)


@pytest.mark.parametrize(
    ("bands", "grace", "after", "message"),
    [
        ((), 15, 480, "at least one band"),
        (((24, 60), (12, 120)), 15, 480, "Band 2: 'until hour' must be greater than 24"),
        (((24, 2),), 15, 480, "Band 1: interval must be between 5 and 1440 minutes"),
        (((24, 60),), 500, 480, "Grace period must be between 0 and 120 minutes"),
        (((24, 60),), 15, 0, "Interval after the last band"),
    ],
)
def test_unusable_policies_are_refused_with_a_reason(bands, grace, after, message):
    with pytest.raises(SchedulePolicyError, match=message):
        SchedulePolicy(bands=bands, grace_minutes=grace, after_last_band_minutes=after)


def test_bands_are_written_and_read_as_text():
    assert parse_bands("24:60, 48:120; 120:240") == ((24, 60), (48, 120), (120, 240))
    assert format_bands(((24, 60), (48, 120))) == "24:60, 48:120"
    with pytest.raises(SchedulePolicyError, match="Band 2 '48-120'"):
        parse_bands("24:60, 48-120")
