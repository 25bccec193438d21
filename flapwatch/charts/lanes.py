"""The lanes panel, a row each: every check as a tick (flagged ones ▲ red / ◆ amber); colour,
capillary refill, turgor and pinprick, where an answer a rule of the unit looks for is drawn
large in its severity's shape and each change of answer is named, so a run of 500 normal
checks stays quiet and the first dusky one shows; and Doppler arterial (present / weak /
absent) and venous (present / absent) as step lines, so a lost signal is a drop."""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.axes import Axes
from matplotlib.ticker import FixedLocator

from flapwatch.charts.drawing import (
    AMBER_EDGE,
    BLUE,
    INK,
    MUTED,
    QUIET,
    RED,
    hline,
    plot,
    severity_points,
)
from flapwatch.charts.frame import Frame
from flapwatch.domain.checks import CATEGORICAL_FIELDS
from flapwatch.domain.trend import schedule_bands
from flapwatch.domain.vocabulary import NOT_OBSERVED, Severity

SIGN_NAMES = {
    "colour": "Colour",
    "capillary_refill": "Cap. refill",
    "turgor": "Turgor",
    "pinprick": "Pinprick",
}
# The lanes panel, in y units from the bottom: Doppler rows, the sign lanes, the check ticks,
# and three rows at the top for the escalation lines' labels.
DOPPLER_ROWS: dict[tuple[str, str], float] = {
    ("doppler_arterial", "present"): 4.4,
    ("doppler_arterial", "weak"): 3.7,
    ("doppler_arterial", "absent"): 3.0,
    ("doppler_venous", "present"): 1.9,
    ("doppler_venous", "absent"): 1.2,
}
SIGN_ROWS: dict[str, float] = {
    "colour": 8.7,
    "capillary_refill": 7.8,
    "turgor": 6.9,
    "pinprick": 6.0,
}
CHECKS_ROW = 10.2
LABEL_ROWS = (11.2, 11.95, 12.7)
LANES_LIMITS = (0.6, 13.2)
LANE_DIVIDERS = (5.3, 9.5)


def draw_lanes(ax: Axes, frame: Frame) -> None:
    """Checks, clinical signs and Doppler in one panel, a row each."""
    _draw_checks(ax, frame)
    for field, y in SIGN_ROWS.items():
        _lane(ax, frame, field, y, [getattr(c, field) for c in frame.checks])
    _draw_doppler(ax, frame)
    for divider in LANE_DIVIDERS:
        hline(ax, divider, color=QUIET, linewidth=0.5, zorder=0.3)
    ax.set_ylim(*LANES_LIMITS)
    variant = frame.variant
    if variant.detailed and not variant.compact:
        doppler = {
            ("doppler_arterial", "present"): "Doppler A present",
            ("doppler_venous", "present"): "Doppler V present",
        }
        doppler_names = [doppler.get(row, row[1]) for row in DOPPLER_ROWS]
    else:
        doppler_names = [f"{row[0][8].upper()} {row[1]}" for row in DOPPLER_ROWS]
    rows = [CHECKS_ROW, *SIGN_ROWS.values(), *DOPPLER_ROWS.values()]
    names = ["Checks", *(SIGN_NAMES[f] for f in SIGN_ROWS), *doppler_names]
    ax.yaxis.set_major_locator(FixedLocator(rows))
    ax.set_yticklabels(names, fontsize=variant.font_size)
    ax.tick_params(axis="y", length=0)
    ax.spines["bottom"].set_visible(False)
    if frame.subject.buried:
        ax.text(
            0.995,
            (SIGN_ROWS["pinprick"] - 0.55 - LANES_LIMITS[0]) / (LANES_LIMITS[1] - LANES_LIMITS[0]),
            "Buried flap: no skin paddle to see",
            transform=ax.transAxes,
            ha="right",
            fontsize=variant.font_size - 1.5,
            color=MUTED,
            gid="buried",
        )


def _draw_checks(ax: Axes, frame: Frame) -> None:
    """Every check as a tick, flagged ones by severity; the schedule's bands named."""
    size = frame.variant.font_size
    placed = list(zip(frame.hours, frame.checks, strict=True))
    plain = [h for h, check in placed if not check.severity and not check.from_device]
    if plain:
        plot(
            ax,
            plain,
            [CHECKS_ROW] * len(plain),
            linestyle="none",
            marker="|",
            markersize=size + 1,
            color=QUIET,
            gid="checks",
        )
    # A device's readings: a small mark, not a nurse's tick (they never satisfy the schedule).
    readings = [h for h, check in placed if not check.severity and check.from_device]
    if readings:
        plot(
            ax,
            readings,
            [CHECKS_ROW] * len(readings),
            linestyle="none",
            marker=".",
            markersize=max(2, size - 5),
            color=QUIET,
            gid="checks:device",
        )
    # A photo taken with a check: a small square above its tick (the photos are on the page).
    photos = [frame.x(photo.taken_at) for photo in frame.trend.photos]
    if photos:
        plot(
            ax,
            photos,
            [CHECKS_ROW + 0.5] * len(photos),
            linestyle="none",
            marker="s",
            markersize=max(3, size - 4),
            markerfacecolor="none",
            markeredgecolor=INK,
            gid="photos",
        )
    for severity in (Severity.AMBER, Severity.RED):
        xs = [
            h
            for h, check in zip(frame.hours, frame.checks, strict=True)
            if check.severity == severity
        ]
        severity_points(
            ax,
            xs,
            [CHECKS_ROW] * len(xs),
            severity,
            size=frame.severity_size,
            gid=f"flags:{severity.value}",
        )
    for band in schedule_bands(frame.trend.schedule, frame.end):
        if band.start_hours >= frame.start:
            ax.text(
                band.start_hours + (frame.end - frame.start) * 0.004,
                CHECKS_ROW - 0.65,
                band.label,
                fontsize=size - 1.5,
                color=MUTED,
                va="bottom",
                gid="band-label",
            )
    if not frame.checks:
        ax.text(
            0.5,
            0.5,
            "No checks recorded yet",
            transform=ax.transAxes,
            ha="center",
            fontsize=size + 1,
            color=MUTED,
            gid="empty",
        )


def _lane(ax: Axes, frame: Frame, field: str, y: float, values: Sequence[str | None]) -> None:
    """One categorical lane: quiet dots for answers no rule looks for, large severity
    shapes for answers one does, crosses for "not assessable"; changes labelled."""
    abnormal = frame.abnormal.get(field, {})
    kinds: dict[str, list[float]] = {"normal": [], "not_observed": [], "amber": [], "red": []}
    changes: list[tuple[float, str, Severity | None]] = []
    previous: str | None = None
    for hours, value in zip(frame.hours, values, strict=True):
        if value is None:
            continue
        if value in abnormal:
            kinds[abnormal[value].value].append(hours)
        elif value in NOT_OBSERVED:
            kinds["not_observed"].append(hours)
        else:
            kinds["normal"].append(hours)
        if value != previous:
            changes.append((hours, value, abnormal.get(value)))
            previous = value
    small = frame.variant.font_size * (0.35 if frame.many else 0.5)
    for kind, marker in (("normal", "o"), ("not_observed", "x")):
        if kinds[kind]:
            plot(
                ax,
                kinds[kind],
                [y] * len(kinds[kind]),
                linestyle="none",
                marker=marker,
                markersize=small,
                color=QUIET,
                gid=f"lane:{field}:{kind}",
            )
    for severity in (Severity.AMBER, Severity.RED):
        xs = kinds[severity.value]
        severity_points(
            ax,
            xs,
            [y] * len(xs),
            severity,
            size=frame.severity_size,
            gid=f"lane:{field}:{severity}",
        )
    _change_labels(ax, frame, field, y, changes)


def _short(label: str) -> str:
    """'Brisk (<1 s)' -> 'brisk': lane labels must stay short."""
    return label.split(" (")[0].lower()


def _answer_label(field: str, value: str) -> str:
    return _short(CATEGORICAL_FIELDS[field](value).label)


def _change_labels(
    ax: Axes, frame: Frame, field: str, y: float, changes: list[tuple[float, str, Severity | None]]
) -> None:
    """Label where each run of one answer starts; when there are too many, the runs of
    abnormal answers keep their labels first."""
    variant = frame.variant
    earlier = [change for change in changes if change[0] < frame.start]
    if earlier:
        # A chart of the recent hours only starts within a run: name the answer it starts with.
        hours, value, severity = earlier[-1]
        changes = [(frame.start, value, severity), *changes[len(earlier) :]]
    limit = variant.max_change_labels
    if len(changes) > limit:
        abnormal = [c for c in changes if c[2] is not None]
        changes = (
            abnormal[:limit]
            if len(abnormal) >= limit
            else sorted(abnormal + [c for c in changes if c[2] is None][: limit - len(abnormal)])
        )
    near_end = frame.end - (frame.end - frame.start) * 0.06
    free_from = frame.start
    for hours, value, severity in changes:
        label = _answer_label(field, value)
        if severity is None and not variant.detailed:
            continue  # a small multiple names only the abnormal answers
        width = (len(label) + 1) * frame.char_hours
        # On a phone's narrow chart a label that would run off the end ends at its mark.
        right_aligned = hours > near_end or (variant.compact and hours + width > frame.end)
        if (hours - width if right_aligned else hours) < free_from:
            continue  # it would overprint the label before it
        free_from = hours if right_aligned else hours + width
        color = MUTED if severity is None else (RED if severity == Severity.RED else AMBER_EDGE)
        ax.text(
            hours,
            y + 0.28,
            label,
            fontsize=variant.font_size - 1.5,
            color=color,
            fontweight="bold" if severity is not None else "normal",
            va="bottom",
            ha="right" if right_aligned else "left",
            clip_on=True,
            gid=f"change:{field}:{value}",
        )


def _draw_doppler(ax: Axes, frame: Frame) -> None:
    """Each vessel as a step line between its answer rows: a lost signal is a drop."""
    for field in ("doppler_arterial", "doppler_venous"):
        abnormal = frame.abnormal.get(field, {})
        points = [
            (h, value, DOPPLER_ROWS[(field, value)])
            for h, check in zip(frame.hours, frame.checks, strict=True)
            if (value := getattr(check, field)) is not None and (field, value) in DOPPLER_ROWS
        ]
        if not points:
            continue
        plot(
            ax,
            [p[0] for p in points],
            [p[2] for p in points],
            drawstyle="steps-post",
            color=BLUE if field == "doppler_arterial" else MUTED,
            linewidth=1.0,
            marker="o",
            markersize=frame.variant.font_size * (0.3 if frame.many else 0.45),
            gid=f"series:{field}",
            zorder=3,
        )
        for severity in (Severity.AMBER, Severity.RED):
            flagged = [p for p in points if abnormal.get(p[1]) == severity]
            severity_points(
                ax,
                [p[0] for p in flagged],
                [p[2] for p in flagged],
                severity,
                size=frame.severity_size,
                gid=f"lane:{field}:{severity}",
            )
