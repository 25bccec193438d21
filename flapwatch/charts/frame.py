"""The ground every panel of a trend chart draws on: the flap's checks placed in hours since
the end of surgery, the x range (wide enough for every check and event), the unit's clock,
and the rules' abnormal answers and thresholds."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from flapwatch.charts.spec import LEFT_IN, RIGHT_IN, Variant
from flapwatch.domain.schedule import hours_since
from flapwatch.domain.trend import abnormal_categories, thresholds
from flapwatch.models import Check
from flapwatch.services.review import Trend

# More checks than this and the marks are drawn smaller, so that a long history stays legible.
MANY_CHECKS = 150


@dataclass(frozen=True)
class Marker:
    """A labelled vertical line: an escalation event or a change of the flap's status."""

    at: datetime
    kind: str
    escalation_id: int | None
    label: str
    color: str
    style: str
    width: float


class Frame:
    def __init__(self, trend: Trend, variant: Variant, markers: list[Marker]) -> None:
        self.trend = trend
        self.variant = variant
        self.subject = trend.subject
        self.zone = ZoneInfo(self.subject.timezone)
        # A check entered in error (wrong patient) is no observation of this flap.
        self.checks: Sequence[Check] = [c for c in trend.checks if not c.entered_in_error]
        self.hours = [self.x(check.taken_at) for check in self.checks]
        self.abnormal = abnormal_categories(trend.rule_set)
        self.thresholds = thresholds(trend.rule_set)
        self.many = len(self.checks) > MANY_CHECKS
        self.markers = markers
        self.start, self.end = self._span()
        self.char_hours = self._char_hours()

    def x(self, at: datetime) -> float:
        return hours_since(self.subject.surgery_end_at, at)

    def local(self, at: datetime, pattern: str) -> str:
        return at.astimezone(self.zone).strftime(pattern)

    @property
    def severity_size(self) -> float:
        """The size of a flagged point: large, a little less in a long history."""
        return self.variant.font_size * (0.85 if self.many else 1.1)

    def _span(self) -> tuple[float, float]:
        """From the end of surgery (or a baseline check before it) to now for a monitored
        flap, else to its last check or event; never shorter than two hours; on a variant
        of the recent hours only, just those."""
        moments = [check.taken_at for check in self.checks] + [m.at for m in self.markers]
        if self.subject.as_of is not None:
            moments.append(self.subject.as_of)
        end = max((self.x(moment) for moment in moments), default=0.0)
        start = min([0.0, *self.hours])
        end = max(end, start + 2.0)
        if self.variant.recent_hours is not None:
            start = max(start, end - self.variant.recent_hours)
        pad = (end - start) * 0.015
        return start - pad, end + pad

    def _char_hours(self) -> float:
        """Roughly how many hours of x axis one character of small text covers."""
        width_in = self.variant.width_in - LEFT_IN[self.variant.name] - RIGHT_IN
        return (self.end - self.start) / width_in * (self.variant.font_size - 1.5) * 0.6 / 72
