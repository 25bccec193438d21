"""What became of flaps, counted, and the unit's audit measures of re-exploration: plain
values in, figures out (services/compliance reads the records; README "Outcomes" and "Audit
measures" give each definition and its source).

The measures are those two large series report, so that a unit can hold its own figures
against theirs: Winterton et al. 2010 (J Plast Reconstr Aesthet Surg 63:1080–1086; 2,569
flaps, Leeds) and Chen et al. 2007 (Plast Reconstr Surg 120:187–195; 1,142 flaps, Chang Gung).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from flapwatch.domain.compliance import Wait, waits

# The report's outcome counts, in the order it shows them.
OUTCOME_KEYS = ("returned_to_theatre", "salvaged", "partial_loss", "failed", "monitoring")
# Total losses by what their last re-exploration found (not re-explored: lost without one).
CAUSES = ("arterial", "venous", "both", "haematoma", "other", "not_recorded", "not_re_explored")


# What the two series reported, as they reported it (their own rounding), beside the unit's
# figures: measure → (Winterton 2010, Chen 2007). Neither timed flag → decision in minutes.
PUBLISHED: dict[str, tuple[str, str]] = {
    "re_explored": ("13 % (327 of 2,569 flaps)", "9.9 % (113 of 1,142)"),
    "salvaged": ("83 % successful (291 of 327)", "84.1 % (95 of 113)"),
    "completely_salvaged": ("—", "63.7 % (72)"),
    "partially_salvaged": ("—", "20.4 % (23)"),
    "failed_after_re_exploration": ("—", "15.9 % (18)"),
    "sign_within_24h": ("—", "82.3 % (93 of 113)"),
    "sign_within_72h": ("—", "95.6 % (108 of 113)"),
    "mean_hours_salvaged": ("19 h", "—"),
    "mean_hours_failed": ("56 h", "—"),
}


@dataclass(frozen=True)
class ReturnRecord:
    """One return to theatre as the audit counts it: the hours after surgery of its first
    sign (its escalation's first flag) and of the re-exploration (knife to skin, else the
    decision); the minutes from the first flag to the first answer, the decision and knife
    to skin; what was found and what came of it. None where not known."""

    sign_hours: float | None = None
    re_explored_hours: float | None = None
    to_acknowledge: float | None = None
    to_decision: float | None = None
    to_knife: float | None = None
    findings: str | None = None
    result: str | None = None


@dataclass(frozen=True)
class FlapOutcome:
    """One flap as the outcome counts see it: its returns to theatre, first first, its final
    outcome if recorded, and whether it is still being monitored (on the ward or in
    theatre)."""

    returns: tuple[ReturnRecord, ...]
    final_outcome: str | None
    still_monitored: bool

    @property
    def last_result(self) -> str | None:
        return next((r.result for r in reversed(self.returns) if r.result is not None), None)

    @property
    def lost(self) -> str | None:
        """'failed' (total loss), 'partial_loss' or None: the final outcome when recorded,
        else what the last return to theatre came to."""
        if self.final_outcome is not None:
            return {"total_loss": "failed", "partial_loss": "partial_loss"}.get(self.final_outcome)
        return self.last_result if self.last_result in ("failed", "partial_loss") else None

    @property
    def fate(self) -> str | None:
        """For a re-explored flap: 'salvaged' (completely), 'partial' (salvaged with a partial
        loss), 'failed', or None while no result is recorded."""
        lost = self.lost
        if lost == "failed":
            return "failed"
        if lost == "partial_loss":
            return "partial"
        return "salvaged" if self.last_result == "salvaged" else None


def outcome_counts(flaps: Iterable[FlapOutcome]) -> dict[str, int]:
    """Re-explored (any return to theatre, whatever came of it), salvaged (re-explored and
    the last recorded result salvaged, not lost in the end), partial loss, total loss (failed),
    still monitored. A salvage stays a salvage after discharge: it is the return's result."""
    counts = dict.fromkeys(OUTCOME_KEYS, 0)
    for flap in flaps:
        lost = flap.lost
        counts["returned_to_theatre"] += bool(flap.returns)
        counts["salvaged"] += flap.last_result == "salvaged" and lost != "failed"
        if lost is not None:
            counts[lost] += 1
        counts["monitoring"] += flap.still_monitored
    return counts


@dataclass(frozen=True)
class Rate:
    count: int
    of: int

    @property
    def percent(self) -> float | None:
        return round(100 * self.count / self.of, 1) if self.of else None


@dataclass(frozen=True)
class AuditMeasures:
    """The unit's re-exploration figures for a cohort of flaps (those operated on in the
    period), each as README "Audit measures" defines it."""

    flaps: int
    re_explored: Rate  # flaps re-explored at least once, of all flaps
    re_explorations: int  # returns to theatre in all (a flap may go back twice)
    # Of the re-explored flaps whose result is known (Chen's three groups):
    salvaged: Rate  # completely or partially
    completely_salvaged: Rate
    partially_salvaged: Rate
    failed_after_re_exploration: Rate
    result_unknown: int  # re-explored flaps with no result recorded yet
    total_loss: Rate  # of all flaps
    partial_loss: Rate  # of all flaps
    # Each return with an escalation: minutes from its first flag.
    to_acknowledge: Wait
    to_decision: Wait
    to_knife: Wait
    # When the first sign came, hours after surgery, of the returns with an escalation.
    sign_within_24h: Rate
    sign_within_72h: Rate
    # When the re-exploration came (knife to skin, else the decision), hours after surgery.
    re_explored_hours: Wait
    # Winterton: successful re-explorations (salvaged, completely or partly) at a mean 19 h.
    mean_hours_salvaged: float | None
    mean_hours_failed: float | None  # ... unsuccessful, mean 56 h
    losses_by_cause: dict[str, int] = field(default_factory=dict)


def audit_measures(flaps: Sequence[FlapOutcome]) -> AuditMeasures:
    re_explored = [flap for flap in flaps if flap.returns]
    fates = [flap.fate for flap in re_explored]
    known = sum(1 for fate in fates if fate is not None)
    returns = [r for flap in re_explored for r in flap.returns]
    signs = [r.sign_hours for r in returns if r.sign_hours is not None]

    def hours_when(*ended: str) -> float | None:
        # A flap's last re-exploration decided its fate.
        hours = [
            flap.returns[-1].re_explored_hours
            for flap in re_explored
            if flap.fate in ended and flap.returns[-1].re_explored_hours is not None
        ]
        return round(statistics.fmean(hours), 1) if hours else None

    causes = dict.fromkeys(CAUSES, 0)
    for flap in flaps:
        if flap.lost != "failed":
            continue
        if not flap.returns:
            causes["not_re_explored"] += 1
        else:
            causes[flap.returns[-1].findings or "not_recorded"] += 1
    return AuditMeasures(
        flaps=len(flaps),
        re_explored=Rate(len(re_explored), len(flaps)),
        re_explorations=len(returns),
        salvaged=Rate(sum(1 for f in fates if f in ("salvaged", "partial")), known),
        completely_salvaged=Rate(fates.count("salvaged"), known),
        partially_salvaged=Rate(fates.count("partial"), known),
        failed_after_re_exploration=Rate(fates.count("failed"), known),
        result_unknown=len(re_explored) - known,
        total_loss=Rate(sum(1 for flap in flaps if flap.lost == "failed"), len(flaps)),
        partial_loss=Rate(sum(1 for flap in flaps if flap.lost == "partial_loss"), len(flaps)),
        to_acknowledge=waits([r.to_acknowledge for r in returns if r.to_acknowledge is not None]),
        to_decision=waits([r.to_decision for r in returns if r.to_decision is not None]),
        to_knife=waits([r.to_knife for r in returns if r.to_knife is not None]),
        sign_within_24h=Rate(sum(1 for h in signs if h <= 24), len(signs)),
        sign_within_72h=Rate(sum(1 for h in signs if h <= 72), len(signs)),
        re_explored_hours=waits(
            [r.re_explored_hours for r in returns if r.re_explored_hours is not None]
        ),
        mean_hours_salvaged=hours_when("salvaged", "partial"),
        mean_hours_failed=hours_when("failed"),
        losses_by_cause=causes,
    )


def minutes_between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds() / 60, 1)


def hours_between(start: datetime | None, end: datetime | None) -> float | None:
    minutes = minutes_between(start, end)
    return None if minutes is None else round(minutes / 60, 1)
