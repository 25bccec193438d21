"""An escalation's episodes, each wait for a surgeon, from its timeline: a table of cases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from flapwatch.domain.episodes import episodes_of, levels_reached

T0 = datetime(2026, 12, 3, 2, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def summary(events, pages=()):
    return [
        (
            e.number,
            e.minutes_to(e.acknowledged_at),
            e.minutes_to(e.attending_at),
            e.minutes_to(e.decided_at),
            e.highest_level,
        )
        for e in episodes_of(
            7, [(kind, at(m)) for kind, m in events], [(at(m), level) for m, level in pages]
        )
    ]


@pytest.mark.parametrize(
    ("events", "pages", "expected"),
    [
        # Flag, coming at 4, decision at 12, the chain reached level 2 before the answer.
        (
            [("opened", 0), ("paged", 0), ("paged", 1), ("attending", 4), ("acknowledged", 12)],
            [(0, 1), (1, 2)],
            [(1, 4.0, 4.0, 12.0, 2)],
        ),
        # The decision at once: acknowledged and decided together, nobody said they were coming.
        ([("opened", 0), ("acknowledged", 3)], [(0, 1)], [(1, 3.0, None, 3.0, 1)]),
        # A sign before any answer joins the wait; one after the answer starts the next.
        (
            [
                ("opened", 0),
                ("flag_added", 2),
                ("acknowledged", 6),
                ("flag_added", 30),
                ("attending", 35),
                ("overdue", 40),
                ("acknowledged", 50),
            ],
            [(0, 1), (30, 1), (31, 2), (40, 1)],
            [(1, 6.0, None, 6.0, 1), (2, 5.0, 5.0, None, 2), (3, 10.0, None, 10.0, 1)],
        ),
        # Never answered, then closed: the wait ends unanswered; nothing after the closing.
        (
            [("opened", 0), ("closed", 45), ("acknowledged", 50)],
            [(0, 1), (5, 2), (15, 3)],
            [(1, None, None, None, 3)],
        ),
        # Still waiting: no answer yet.
        ([("opened", 0)], [], [(1, None, None, None, 0)]),
    ],
)
def test_each_wait_for_a_surgeon_runs_from_its_flag_to_its_answers(events, pages, expected):
    assert summary(events, pages) == expected


def test_the_levels_reached_count_every_level_up_to_the_highest():
    found = episodes_of(
        1,
        [("opened", at(0)), ("acknowledged", at(1)), ("flag_added", at(2))],
        [(at(0), 1), (at(2), 1), (at(3), 2), (at(4), 3)],
    )
    assert levels_reached(found) == {0: 0, 1: 1, 2: 0, 3: 1}
    assert levels_reached([]) == {0: 0}
