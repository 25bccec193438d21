"""Escalations opened, acknowledged and closed, returns to theatre and other changes of the
flap's status: labelled vertical lines through every panel, their labels in three rows above
the check ticks."""

from __future__ import annotations

from collections.abc import Sequence
from zoneinfo import ZoneInfo

from matplotlib.axes import Axes

from flapwatch.charts.drawing import (
    AMBER,
    AMBER_EDGE,
    INK,
    MUTED,
    SEVERITY_ICON,
    SEVERITY_STYLE,
    vline,
)
from flapwatch.charts.frame import Frame, Marker
from flapwatch.charts.lanes import LABEL_ROWS
from flapwatch.domain.vocabulary import (
    EscalationEventKind,
    EscalationOutcome,
    ReconstructionStatus,
    Severity,
)
from flapwatch.models import Escalation
from flapwatch.services.review import Trend


def markers_of(trend: Trend) -> list[Marker]:
    """Every escalation event, each pause and check not done, each transfer between wards, and
    the flap's status when it is no longer monitored, in time order."""
    zone = ZoneInfo(trend.subject.timezone)
    markers: list[Marker] = []
    for escalation in trend.escalations:
        markers.extend(_escalation_markers(escalation, zone))
    status = trend.subject.status
    changed = trend.subject.status_changed_at
    theatre_already = any(m.kind == "return_to_theatre" for m in markers)
    theatre = status == ReconstructionStatus.RETURNED_TO_THEATRE
    if (
        changed is not None
        and status != ReconstructionStatus.MONITORING
        and not (theatre and theatre_already)
    ):
        markers.append(
            Marker(
                changed,
                "return_to_theatre" if theatre else "status",
                None,
                status.label,
                INK,
                "-",
                2.6 if theatre else 1.4,
            )
        )
    for pause in trend.pauses:
        when = pause.started_at.astimezone(zone).strftime("%H:%M")
        label = f"Paused {when}: {pause.reason.label.lower()}"
        markers.append(Marker(pause.started_at, "pause", None, label, MUTED, ":", 1.2))
    for row in trend.not_done:
        when = row.taken_at.astimezone(zone).strftime("%H:%M")
        label = f"Not done {when}: {row.reason.label.lower()}"
        markers.append(Marker(row.taken_at, "not_done", None, label, AMBER_EDGE, ":", 1.2))
    for at, before, after in trend.transfers:
        when = at.astimezone(zone).strftime("%H:%M")
        label = f"Transferred {before} → {after} {when}"
        markers.append(Marker(at, "transfer", None, label, INK, "-", 1.0))
    markers.sort(key=lambda marker: marker.at)
    return markers


def _escalation_markers(escalation: Escalation, zone: ZoneInfo) -> list[Marker]:
    found: list[Marker] = []
    for event in escalation.events:
        when = event.at.astimezone(zone).strftime("%H:%M")
        if event.kind == EscalationEventKind.OPENED:
            severity = Severity(event.severity or escalation.severity)
            found.append(
                Marker(
                    event.at,
                    "opened",
                    escalation.id,
                    f"{SEVERITY_ICON[severity]} Escalated {when}",
                    SEVERITY_STYLE[severity]["color"],
                    "-",
                    1.6,
                )
            )
        elif event.kind == EscalationEventKind.ACKNOWLEDGED:
            outcome = _outcome_of(event.reasons, escalation)
            theatre = outcome == EscalationOutcome.RETURN_TO_THEATRE
            found.append(
                Marker(
                    event.at,
                    "return_to_theatre" if theatre else "acknowledged",
                    escalation.id,
                    f"Return to theatre {when}"
                    if theatre
                    else f"Acknowledged {when}: {outcome.label.lower() if outcome else '—'}",
                    INK,
                    "-" if theatre else "--",
                    2.6 if theatre else 1.3,
                )
            )
        elif event.kind == EscalationEventKind.ATTENDING:
            found.append(
                Marker(event.at, "attending", escalation.id, f"Coming {when}", INK, "-.", 1.2)
            )
        elif event.kind == EscalationEventKind.CLOSED:
            found.append(
                Marker(event.at, "closed", escalation.id, f"Closed {when}", MUTED, ":", 1.3)
            )
    return found


def _outcome_of(reasons: Sequence[str], escalation: Escalation) -> EscalationOutcome | None:
    """The acknowledgement event says its outcome in words ("Outcome: Observe")."""
    for reason in reasons:
        words = reason.removeprefix("Outcome: ")
        for outcome in EscalationOutcome:
            if words == outcome.label:
                return outcome
    return escalation.outcome


def draw_event_lines(ax: Axes, frame: Frame) -> None:
    for marker in frame.markers:
        vline(
            ax,
            frame.x(marker.at),
            color=marker.color,
            linestyle=marker.style,
            linewidth=marker.width,
            gid=f"escalation:{marker.kind}:{marker.escalation_id or ''}",
            zorder=1.5,
        )


# Which labels are placed first when three rows cannot hold them all: the latest of each kind,
# the most telling kind first, then the earlier ones. A label with no room left is not drawn
# (its line is, and the page's timeline lists it), rather than drawn over another.
LABEL_PRIORITY = (
    "return_to_theatre",
    "opened",
    "transfer",
    "status",
    "acknowledged",
    "attending",
    "closed",
    "pause",
    "not_done",
)


def label_events(ax: Axes, frame: Frame) -> None:
    """Event labels in three rows above the check ticks: each beside its line where it fits
    (after it, else before it), else moved along its row to fit the chart; no two overlap."""
    if not frame.markers:
        return
    char_hours = frame.char_hours
    taken: list[list[tuple[float, float]]] = [[] for _ in LABEL_ROWS]

    def overlap(row: int, span: tuple[float, float]) -> float:
        return sum(max(0.0, min(b, span[1]) - max(a, span[0])) for a, b in taken[row])

    latest = {marker.kind: marker for marker in frame.markers}  # time order: the last wins

    def rank(marker: Marker) -> tuple[bool, int, float]:
        """The latest of each kind first, then the others; by kind, then the newest."""
        kind = LABEL_PRIORITY.index(marker.kind) if marker.kind in LABEL_PRIORITY else 99
        return latest[marker.kind] is not marker, kind, -marker.at.timestamp()

    for marker in sorted(frame.markers, key=rank):
        x = frame.x(marker.at)
        if x < frame.start:
            continue  # before the hours a phone's chart shows: its line is not drawn either
        width = (len(marker.label) + 1) * char_hours
        placements: list[tuple[str, tuple[float, float]]] = []
        if x + width <= frame.end:
            placements.append(("after", (x, x + width)))
        if x - width >= frame.start:
            placements.append(("before", (x - width, x)))
        moved = max(frame.start, min(x, frame.end - width))
        placements.append(("moved", (moved, moved + width)))
        choice = next(
            (
                (row, placement)
                for placement in placements
                for row in range(len(LABEL_ROWS))
                if overlap(row, placement[1]) == 0
            ),
            None,
        )
        if choice is None:
            continue  # no room left: its line says when, the timeline what
        row, (how, span) = choice
        taken[row].append(span)
        ax.text(
            x - char_hours * 0.4 if how == "before" else span[0] + char_hours * 0.4,
            LABEL_ROWS[row],
            marker.label,
            fontsize=frame.variant.font_size - 1,
            ha="right" if how == "before" else "left",
            va="center",
            color=marker.color if marker.color != AMBER else AMBER_EDGE,
            gid=f"marker-label:{marker.kind}",
            clip_on=False,
        )
