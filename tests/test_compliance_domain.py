"""Scheduled checks and what became of them (pure domain functions, a table of cases)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from flapwatch.domain.compliance import (
    Buckets,
    SlotState,
    Tally,
    band_of,
    monitored_spans,
    schedule_slots,
    waits,
)
from flapwatch.domain.schedule import SchedulePolicy

SURGERY = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
HOURLY = SchedulePolicy(bands=((24, 60), (48, 120)), grace_minutes=15)


def at(hours: float) -> datetime:
    return SURGERY + timedelta(hours=hours)


def walk(taken_hours, *, now_hours=100.0, spans=None, policy=HOURLY, until_hours=None):
    spans = spans if spans is not None else [(SURGERY, None)]
    return schedule_slots(
        lambda _moment: policy,
        SURGERY,
        [at(h) for h in taken_hours],
        spans,
        at(now_hours),
        until=at(until_hours) if until_hours is not None else None,
    )


def states(result) -> list[tuple[float, str]]:
    return [((s.due_at - SURGERY).total_seconds() / 3600, s.state.value) for s in result.slots]


def test_hourly_checks_on_the_hour_are_all_on_time():
    result = walk([1, 2, 3, 4], now_hours=4.5)
    assert states(result) == [(1, "on_time"), (2, "on_time"), (3, "on_time"), (4, "on_time")]


def test_a_check_within_the_grace_period_is_on_time_and_one_after_it_is_late():
    # 1:14 is within 15 min of grace; the next is due at 2:14, answered at 2:40: late.
    result = walk([1 + 14 / 60, 2 + 40 / 60], now_hours=3)
    assert states(result) == [(1, "on_time"), (2 + 14 / 60, "late")]
    assert result.slots[1].answered_at == at(2 + 40 / 60)


def test_a_long_gap_is_one_late_check_and_a_missed_check_for_every_hour_that_passed():
    # Due at 2:00, nothing until 5:10: 2:00 answered late; 3:00 and 4:00 passed with no check;
    # 5:00 was still within its grace when the check came, so it is not counted missed.
    result = walk([1, 5 + 10 / 60], now_hours=5.5)
    assert states(result) == [(1, "on_time"), (2, "late"), (3, "missed"), (4, "missed")]


def test_a_check_a_little_early_answers_the_check_due():
    result = walk([0.75, 1.6], now_hours=2)
    assert states(result) == [(1, "on_time"), (0.75 + 1, "on_time")]


def test_an_extra_look_well_before_the_due_time_answers_nothing_but_moves_the_schedule():
    # Checked at 1:00 (due), again at 1:10 after a worry, then at 2:10: on time for 2:10.
    result = walk([1, 1 + 10 / 60, 2 + 10 / 60], now_hours=2.5)
    assert states(result) == [(1, "on_time"), (2 + 10 / 60, "on_time")]
    assert result.extra_checks == (at(1 + 10 / 60),)


def test_no_check_since_counts_each_passed_due_time_missed_but_not_the_one_still_in_grace():
    result = walk([1], now_hours=4 + 10 / 60)
    assert states(result) == [(1, "on_time"), (2, "missed"), (3, "missed")]


def test_nothing_falls_due_after_monitoring_stopped():
    spans = monitored_spans(SURGERY, [(at(2.5), False)])
    result = walk([1, 2], now_hours=10, spans=spans)
    assert states(result) == [(1, "on_time"), (2, "on_time")]


def test_time_in_theatre_is_not_counted_and_a_check_is_due_on_return():
    # Back to theatre at 2:30, back on the ward at 6:00: due times from 3:00 to 5:00 fall
    # outside monitoring; 6:00 is due (the schedule kept running) and answered at 6:05.
    spans = monitored_spans(SURGERY, [(at(2.5), False), (at(6), True)])
    result = walk([1, 2, 6 + 5 / 60], now_hours=6.5, spans=spans)
    assert states(result) == [(1, "on_time"), (2, "on_time"), (6, "on_time")]


def test_due_times_from_the_end_of_the_period_on_are_not_worked_out():
    result = walk([1, 2, 3, 4, 5], now_hours=6, until_hours=3)
    assert [hours for hours, _ in states(result)] == [1, 2]


def test_each_due_time_carries_the_band_whose_interval_produced_it():
    # The check at 23:30 is in the hourly band: its next check is due an hour later (24:30),
    # under the hourly band. From 24:30 on the interval is two hours.
    result = walk([23.5, 24.5, 26.5], now_hours=27)
    bands = [(round((s.due_at - SURGERY).total_seconds() / 3600, 2), s.band) for s in result.slots]
    assert bands[-2:] == [(24.5, "0–24 h, every hour"), (26.5, "24–48 h, every 2 h")]


def test_band_words_name_the_hours_and_the_interval():
    assert band_of(HOURLY, 3) == (0, "0–24 h, every hour")
    assert band_of(SchedulePolicy(bands=((12, 30),)), 1) == (0, "0–12 h, every 30 min")
    assert band_of(HOURLY, 60) == (48, "from 48 h, every 8 h")


def test_a_schedule_change_applies_from_the_moment_it_was_published():
    half_hourly = SchedulePolicy(bands=((24, 30),), grace_minutes=5)

    def policy_at(moment: datetime) -> SchedulePolicy:
        return HOURLY if moment < at(2) else half_hourly

    result = schedule_slots(policy_at, SURGERY, [at(1), at(2), at(2.5)], [(SURGERY, None)], at(2.6))
    assert [(s.due_at, s.band) for s in result.slots] == [
        (at(1), "0–24 h, every hour"),
        (at(2), "0–24 h, every hour"),
        (at(2.5), "0–24 h, every 30 min"),
    ]


def test_monitored_spans_follow_status_changes_in_time_order():
    spans = monitored_spans(SURGERY, [(at(9), True), (at(3), False), (at(12), False)])
    assert spans == [(SURGERY, at(3)), (at(9), at(12))]


def test_a_tally_counts_on_time_as_a_share_of_checks_due():
    tally = Tally()
    for state in [SlotState.ON_TIME] * 3 + [SlotState.LATE, SlotState.MISSED]:
        tally.add(state)
    assert (tally.due, tally.on_time_percent) == (5, 60.0)
    assert Tally().on_time_percent is None


@pytest.mark.parametrize(
    ("minutes", "median", "p90"),
    [
        ([], None, None),
        ([7.0], 7.0, 7.0),
        ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 5.5, 9.1),
        ([30, 10, 20], 20.0, 28.0),
    ],
)
def test_time_to_acknowledge_median_and_90th_percentile(minutes, median, p90):
    wait = waits(minutes)
    assert (wait.count, wait.median, wait.p90) == (len(minutes), median, p90)


def test_buckets_are_days_for_a_month_and_weeks_from_monday_for_a_long_period():
    month = Buckets(date(2026, 3, 1), date(2026, 3, 31))
    assert not month.weekly and len(month.tallies) == 31
    year = Buckets(date(2026, 1, 1), date(2026, 12, 31))
    assert year.weekly and next(iter(year.tallies)) == date(2025, 12, 29)
    year.add(date(2026, 1, 7), SlotState.LATE)
    assert year.tallies[date(2026, 1, 5)].late == 1
