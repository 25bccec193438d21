"""Time across a trend chart: hours since surgery below, the unit's clock along the top on
round local hours, and behind every panel the schedule's bands shaded and overdue stretches
hatched."""

from __future__ import annotations

from datetime import UTC, timedelta

from matplotlib.axes import Axes
from matplotlib.ticker import FixedLocator, FuncFormatter

from flapwatch.charts.drawing import (
    AMBER_EDGE,
    BAND_SHADE,
    BLUE,
    GAP_FACE,
    MUTED,
    PAUSE_FACE,
    vspan,
)
from flapwatch.charts.frame import Frame
from flapwatch.domain.trend import overdue_gaps, schedule_bands
from flapwatch.domain.vocabulary import CheckSource


def tick_step(span_hours: float, most_ticks: int) -> float:
    for step in (1, 2, 3, 4, 6, 12, 24, 48, 96, 168):
        if span_hours / step <= most_ticks:
            return step
    return 336


def clock_ticks(frame: Frame, step: float) -> list[float]:
    """Where local times on the hour fall (in hours since surgery), `step` hours apart by
    the ward clock (daily steps at midnight), so labels read 14:00, 16:00, not 14:13."""
    surgery_end_at = frame.subject.surgery_end_at
    last = surgery_end_at + timedelta(hours=frame.end)
    first = surgery_end_at + timedelta(hours=frame.start)
    local = first.astimezone(frame.zone).replace(minute=0, second=0, microsecond=0)
    ticks: list[float] = []
    midnights = 0
    for _hour in range(24 * 90):
        if local > last:
            break
        if step <= 24 and local.hour % int(step) == 0:
            ticks.append(frame.x(local))
        elif step > 24 and local.hour == 0:
            if midnights % int(step // 24) == 0:
                ticks.append(frame.x(local))
            midnights += 1
        # By UTC, so a clock change neither skips nor repeats an hour.
        local = (local.astimezone(UTC) + timedelta(hours=1)).astimezone(frame.zone)
    return [tick for tick in ticks if tick >= frame.start]


def clock_axis(ax: Axes, frame: Frame, ticks: list[float], step: float) -> None:
    """The unit's clock along the top of the first panel, ticked at round local hours."""
    ax.xaxis.tick_top()
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    daily = step >= 24

    def label(hours: float, position: int | None) -> str:
        """'14:00', with the day at the first tick and at midnight: 'Tue 00:00'."""
        moment = (frame.subject.surgery_end_at + timedelta(hours=hours)).astimezone(frame.zone)
        if daily:
            return moment.strftime("%a %d %b")
        if position == 0 or moment.hour == 0:
            return moment.strftime("%a %H:%M")
        return moment.strftime("%H:%M")

    ax.xaxis.set_major_formatter(FuncFormatter(label))
    ax.tick_params(axis="x", labelsize=frame.variant.font_size - 1, length=2, colors=MUTED)


def background(ax: Axes, frame: Frame) -> None:
    """Schedule bands lightly shaded, overdue stretches hatched."""
    for index, band in enumerate(schedule_bands(frame.trend.schedule, frame.end)):
        if index % 2 == 1:
            vspan(
                ax,
                band.start_hours,
                band.end_hours,
                color=BAND_SHADE,
                linewidth=0,
                zorder=0,
                gid=f"schedule-band:{band.interval_minutes}",
            )
    until = frame.subject.as_of if frame.subject.monitoring else None
    trend = frame.trend
    # Only a nurse's look satisfies the schedule: a device's readings leave a gap open.
    events = [(c.taken_at, "check") for c in frame.checks if c.source == CheckSource.BEDSIDE]
    events += [(row.taken_at, "not_done") for row in trend.not_done]
    for pause in trend.pauses:
        events.append((pause.started_at, "pause"))
        if pause.ended_at is not None:
            events.append((pause.ended_at, "resume"))
    # Away from monitoring (back to theatre, stopped) nothing is overdue; on return the next
    # check is due at once, from a restarted time zero if the schedule restarted.
    events += [(at, "resume" if monitored else "pause") for at, monitored in trend.status_changes]
    if frame.subject.time_zero_at is not None:
        events.append((frame.subject.time_zero_at, "restart"))
    # An unanswered escalation's recheck brings the next check forward until acknowledged.
    for escalation in trend.escalations:
        if escalation.recheck_minutes is None:
            continue
        # From its first flagged check (a check entered late opens it after it was taken).
        flagged = min(t for t in (escalation.opened_at, escalation.recheck_from) if t)
        events.append((flagged, f"recheck:{escalation.recheck_minutes}"))
        answered = escalation.acknowledged_at or escalation.closed_at
        if answered is not None:
            events.append((answered, "answered"))
    for pause in trend.pauses:
        ended = pause.ended_at or frame.subject.as_of or pause.started_at
        vspan(
            ax,
            frame.x(pause.started_at),
            frame.x(ended),
            facecolor=PAUSE_FACE,
            linewidth=0,
            zorder=0.4,
            gid=f"pause:{pause.reason.value}",
        )
    # A surgeon's schedule for this flap: its window outlined in dots, nothing filled, so the
    # bands and gaps under it still read.
    for override in trend.overrides:
        kind = f"interval:{override.interval_minutes}" if override.interval_minutes else "omit"
        vspan(
            ax,
            frame.x(override.starts_at),
            frame.x(override.in_force_until),
            facecolor="none",
            edgecolor=BLUE,
            linestyle=":",
            linewidth=1.0,
            zorder=0.45,
            gid=f"override:{kind}",
        )
    windows = [override.as_window() for override in trend.overrides]
    gaps = overdue_gaps(trend.schedule, frame.subject.surgery_end_at, events, until, windows)
    for gap in gaps:
        vspan(
            ax,
            frame.x(gap.overdue_from),
            frame.x(gap.until),
            facecolor=GAP_FACE,
            edgecolor=AMBER_EDGE,
            hatch="///",
            linewidth=0,
            alpha=0.6,
            zorder=0.5,
            gid="overdue-gap",
        )
