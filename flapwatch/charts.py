"""A flap's trend chart: matplotlib's object API (Figure, Agg/SVG/PDF canvases), never pyplot.

One figure, one x axis in hours since the end of surgery (the unit's clock, on the hour, along
the top), four panels from top to bottom:

- lanes: every check as a tick, flagged checks as ▲ red / ◆ amber (shape *and* colour, so a
  greyscale print or a colour-blind reader still tells them apart); colour, capillary refill,
  turgor and pinprick, where an answer a rule of the unit looks for is drawn large in its
  severity's shape and each change of answer is named, so a run of 500 normal checks stays
  quiet and the first dusky one shows; Doppler arterial (present / weak / absent) and venous
  (present / absent) as step lines, so a lost signal is a drop;
- temperatures (flap, control), ΔT (control − flap) and StO₂ (when the flap has any), with the
  thresholds of the unit's rule set in force.

Escalations opened, acknowledged, return to theatre and closed are labelled vertical lines
through every panel; the schedule's bands are shaded lightly and overdue stretches hatched.
Each artist carries a `gid` naming what it shows, so tests read the chart's content from the
figure itself.

Drawing time goes on Axes and text (FreeType lays out and rasterises every label), so the
panels are few, the on-screen image leaves the legend and the flap's details to the page
around it, and lines are added without matplotlib's data-limit bookkeeping.

Rendered charts are cached on disk under the flap's data version (`ChartCache`).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import FixedLocator, FuncFormatter, MultipleLocator

from flapwatch.chart_spec import (
    FULL,
    LEFT_IN,
    PANEL_GAP_IN,
    RIGHT_IN,
    Variant,
    figure_height,
    plots_height,
)
from flapwatch.domain.checks import CATEGORICAL_FIELDS
from flapwatch.domain.compliance import Buckets
from flapwatch.domain.rules import COMPARISONS
from flapwatch.domain.schedule import hours_since
from flapwatch.domain.trend import (
    Threshold,
    abnormal_categories,
    overdue_gaps,
    schedule_bands,
    thresholds,
    trend_conditions,
)
from flapwatch.domain.vocabulary import (
    NOT_OBSERVED,
    EscalationEventKind,
    EscalationOutcome,
    ReconstructionStatus,
    Severity,
)
from flapwatch.models import Check, Escalation
from flapwatch.services.review import Trend

# Okabe & Ito's colour-blind-safe palette, the app's severity red, and shapes for severity.
INK = "#1b1f24"
MUTED = "#57606a"
QUIET = "#8c959f"
RED = "#b3261e"
AMBER = "#e69f00"
AMBER_EDGE = "#8a5300"
BLUE = "#0072b2"
GREEN = "#009e73"
BAND_SHADE = "#eef1f4"
GAP_FACE = "#fbe3c4"
SEVERITY_STYLE = {
    Severity.RED: {"marker": "^", "color": RED, "edge": "#5c0f0a", "line": "-"},
    Severity.AMBER: {"marker": "D", "color": AMBER, "edge": AMBER_EDGE, "line": "--"},
}
SEVERITY_ICON = {Severity.RED: "▲", Severity.AMBER: "◆"}

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
TEMPERATURES = ("flap_temperature_c", "control_temperature_c")


# Every text on a chart is drawn as typed: a "$" in a note or a name is a dollar, never
# matplotlib's maths markup (which would garble it, or fail to parse). Glyphs unhinted: no
# visible difference at these sizes, and a sixth less time to draw.
RC = {"text.parse_math": False, "text.hinting": "no_hinting"}


def trend_figure(trend: Trend, variant: Variant = FULL) -> Figure:
    """The flap's trend chart as a matplotlib Figure (nothing rendered yet). Draw it inside
    `rc_context(RC)`, as `render` does."""
    with rc_context(RC):
        return _Drawing(trend, variant).figure


def render(figure: Figure, fmt: str) -> bytes:
    """PNG or SVG bytes of a figure; the same data gives the same bytes."""
    buffer = io.BytesIO()
    metadata = {"Date": None} if fmt == "svg" else {"Software": None}
    with rc_context(RC):
        figure.savefig(buffer, format=fmt, metadata=metadata)
    return buffer.getvalue()


def chart_bytes(trend: Trend, variant: Variant, fmt: str) -> bytes:
    return render(trend_figure(trend, variant), fmt)


# --- drawing ---------------------------------------------------------------------------------


def _short(label: str) -> str:
    """'Brisk (<1 s)' -> 'brisk': lane labels must stay short."""
    return label.split(" (")[0].lower()


def _answer_label(field: str, value: str) -> str:
    return _short(CATEGORICAL_FIELDS[field](value).label)


_SERIES_KEYED = ("series:flap_temperature_c", "series:control_temperature_c")


def _plot(ax: Axes, xs: Sequence[float], ys: Sequence[float], **style: object) -> Line2D:
    """A line on `ax`, as ax.plot draws it, without the data-limit bookkeeping: every panel's
    limits are set by hand, and that bookkeeping was a third of the time to build a chart."""
    line = Line2D(xs, ys, **style)  # type: ignore[arg-type]
    ax.add_artist(line)
    return line


def _vline(ax: Axes, x: float, **style: object) -> Line2D:
    return _plot(ax, [x, x], [0, 1], transform=ax.get_xaxis_transform(), **style)


def _hline(ax: Axes, y: float, **style: object) -> Line2D:
    return _plot(ax, [0, 1], [y, y], transform=ax.get_yaxis_transform(), **style)


def _vspan(ax: Axes, start: float, end: float, **style: object) -> Rectangle:
    span = Rectangle(
        (start, 0),
        end - start,
        1,
        transform=ax.get_xaxis_transform(),
        **style,  # type: ignore[arg-type]
    )
    ax.add_artist(span)
    return span


def _tick_step(span_hours: float, most_ticks: int) -> float:
    for step in (1, 2, 3, 4, 6, 12, 24, 48, 96, 168):
        if span_hours / step <= most_ticks:
            return step
    return 336


@dataclass(frozen=True)
class _Marker:
    """A labelled vertical line: an escalation event or a change of the flap's status."""

    at: datetime
    kind: str
    escalation_id: int | None
    label: str
    color: str
    style: str
    width: float


class _Drawing:
    def __init__(self, trend: Trend, variant: Variant) -> None:
        self.trend = trend
        self.variant = variant
        self.subject = trend.subject
        self.zone = ZoneInfo(self.subject.timezone)
        # A check entered in error (wrong patient) is no observation of this flap.
        self.checks: Sequence[Check] = [c for c in trend.checks if not c.entered_in_error]
        self.hours = [self.x(check.taken_at) for check in self.checks]
        self.abnormal = abnormal_categories(trend.rule_set)
        self.thresholds = thresholds(trend.rule_set)
        self.many = len(self.checks) > 150
        self.markers = self._markers()
        self.start, self.end = self._span()
        self.char_hours = self._char_hours()
        self.figure = self._draw()

    # time ------------------------------------------------------------------------------------

    def x(self, at: datetime) -> float:
        return hours_since(self.subject.surgery_end_at, at)

    def local(self, at: datetime, pattern: str) -> str:
        return at.astimezone(self.zone).strftime(pattern)

    def _span(self) -> tuple[float, float]:
        """From the end of surgery (or a baseline check before it) to now for a monitored
        flap, else to its last check or event; never shorter than two hours."""
        moments = [check.taken_at for check in self.checks] + [m.at for m in self.markers]
        if self.subject.as_of is not None:
            moments.append(self.subject.as_of)
        end = max((self.x(moment) for moment in moments), default=0.0)
        start = min([0.0, *self.hours])
        end = max(end, start + 2.0)
        pad = (end - start) * 0.015
        return start - pad, end + pad

    def _char_hours(self) -> float:
        """Roughly how many hours of x axis one character of small text covers."""
        width_in = self.variant.width_in - LEFT_IN[self.variant.name] - RIGHT_IN
        return (self.end - self.start) / width_in * (self.variant.font_size - 1.5) * 0.6 / 72

    def _markers(self) -> list[_Marker]:
        markers: list[_Marker] = []
        for escalation in self.trend.escalations:
            markers.extend(self._escalation_markers(escalation))
        status = self.subject.status
        changed = self.subject.status_changed_at
        theatre_already = any(m.kind == "return_to_theatre" for m in markers)
        theatre = status == ReconstructionStatus.RETURNED_TO_THEATRE
        if (
            changed is not None
            and status != ReconstructionStatus.MONITORING
            and not (theatre and theatre_already)
        ):
            markers.append(
                _Marker(
                    changed,
                    "return_to_theatre" if theatre else "status",
                    None,
                    status.label,
                    INK,
                    "-",
                    2.6 if theatre else 1.4,
                )
            )
        markers.sort(key=lambda marker: marker.at)
        return markers

    def _escalation_markers(self, escalation: Escalation) -> list[_Marker]:
        found: list[_Marker] = []
        for event in escalation.events:
            when = self.local(event.at, "%H:%M")
            if event.kind == EscalationEventKind.OPENED:
                severity = Severity(event.severity or escalation.severity)
                found.append(
                    _Marker(
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
                outcome = self._outcome_of(event.reasons, escalation)
                theatre = outcome == EscalationOutcome.RETURN_TO_THEATRE
                found.append(
                    _Marker(
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
            elif event.kind == EscalationEventKind.CLOSED:
                found.append(
                    _Marker(event.at, "closed", escalation.id, f"Closed {when}", MUTED, ":", 1.3)
                )
        return found

    @staticmethod
    def _outcome_of(reasons: Sequence[str], escalation: Escalation) -> EscalationOutcome | None:
        """The acknowledgement event says its outcome in words ("Outcome: Observe")."""
        for reason in reasons:
            words = reason.removeprefix("Outcome: ")
            for outcome in EscalationOutcome:
                if words == outcome.label:
                    return outcome
        return escalation.outcome

    # layout ----------------------------------------------------------------------------------

    def _panels(self) -> list[tuple[str, float]]:
        has_sto2 = any(check.sto2_percent is not None for check in self.checks)
        return [
            (name, height) for name, height in self.variant.panels if name != "sto2" or has_sto2
        ]

    def _draw(self) -> Figure:
        variant = self.variant
        panels = self._panels()
        plots_in = plots_height(panels)
        height_in = figure_height(variant, panels)
        footer_in = height_in - variant.header_in - plots_in
        self.footer_in = footer_in
        figure = Figure(figsize=(variant.width_in, height_in), dpi=variant.dpi)
        left_in = LEFT_IN[variant.name]
        grid = figure.add_gridspec(
            len(panels),
            1,
            height_ratios=[height for _, height in panels],
            left=left_in / variant.width_in,
            right=1 - RIGHT_IN / variant.width_in,
            top=1 - variant.header_in / height_in,
            bottom=footer_in / height_in,
            hspace=PANEL_GAP_IN / (plots_in / len(panels)),
        )
        step = _tick_step(self.end - self.start, 16 if variant.detailed else 6)
        clock_ticks = self._clock_ticks(step)
        axes: dict[str, Axes] = {}
        for row, (name, _height) in enumerate(panels):
            # One x range for all, set on each: sharing axes costs a draw of every x axis.
            ax = figure.add_subplot(grid[row, 0])
            axes[name] = ax
            ax.set_xlim(self.start, self.end)
            self._background(ax)
            ax.tick_params(labelsize=variant.font_size, length=3)
            for side in ("top", "right"):
                ax.spines[side].set_visible(False)
            # Faint lines at the ward clock's hours, read against the labels along the top.
            ax.vlines(
                clock_ticks,
                0,
                1,
                transform=ax.get_xaxis_transform(),
                colors=BAND_SHADE,
                linewidth=0.8,
                zorder=0.2,
            )
            getattr(self, f"_draw_{name}")(ax)
            for marker in self.markers:
                _vline(
                    ax,
                    self.x(marker.at),
                    color=marker.color,
                    linestyle=marker.style,
                    linewidth=marker.width,
                    gid=f"escalation:{marker.kind}:{marker.escalation_id or ''}",
                    zorder=1.5,
                )
        bottom = axes[panels[-1][0]]
        for ax in axes.values():
            if ax is not bottom and ax is not axes["lanes"]:
                ax.xaxis.set_visible(False)
        bottom.xaxis.set_major_locator(MultipleLocator(step))
        bottom.set_xlabel("Hours since end of surgery", fontsize=variant.font_size)
        self._clock_axis(axes["lanes"], clock_ticks, step)
        self._marker_labels(axes["lanes"])
        if variant.detailed:
            self._header(figure)
            if variant.legend:
                self._legend(figure)
        return figure

    def _clock_axis(self, ax: Axes, ticks: list[float], step: float) -> None:
        """The unit's clock along the top of the first panel, ticked at round local hours."""
        ax.xaxis.tick_top()
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        daily = step >= 24

        def label(hours: float, position: int | None) -> str:
            """'14:00', with the day at the first tick and at midnight: 'Tue 00:00'."""
            moment = (self.subject.surgery_end_at + timedelta(hours=hours)).astimezone(self.zone)
            if daily:
                return moment.strftime("%a %d %b")
            if position == 0 or moment.hour == 0:
                return moment.strftime("%a %H:%M")
            return moment.strftime("%H:%M")

        ax.xaxis.set_major_formatter(FuncFormatter(label))
        ax.tick_params(axis="x", labelsize=self.variant.font_size - 1, length=2, colors=MUTED)

    def _clock_ticks(self, step: float) -> list[float]:
        """Where local times on the hour fall (in hours since surgery), `step` hours apart by
        the ward clock (daily steps at midnight), so labels read 14:00, 16:00, not 14:13."""
        last = self.subject.surgery_end_at + timedelta(hours=self.end)
        first = self.subject.surgery_end_at + timedelta(hours=self.start)
        local = first.astimezone(self.zone).replace(minute=0, second=0, microsecond=0)
        ticks: list[float] = []
        midnights = 0
        for _hour in range(24 * 90):
            if local > last:
                break
            if step <= 24 and local.hour % int(step) == 0:
                ticks.append(self.x(local))
            elif step > 24 and local.hour == 0:
                if midnights % int(step // 24) == 0:
                    ticks.append(self.x(local))
                midnights += 1
            # By UTC, so a clock change neither skips nor repeats an hour.
            local = (local.astimezone(UTC) + timedelta(hours=1)).astimezone(self.zone)
        return [tick for tick in ticks if tick >= self.start]

    def _background(self, ax: Axes) -> None:
        """Schedule bands lightly shaded, overdue stretches hatched."""
        for index, band in enumerate(schedule_bands(self.trend.schedule, self.end)):
            if index % 2 == 1:
                _vspan(
                    ax,
                    band.start_hours,
                    band.end_hours,
                    color=BAND_SHADE,
                    linewidth=0,
                    zorder=0,
                    gid=f"schedule-band:{band.interval_minutes}",
                )
        until = self.subject.as_of if self.subject.monitoring else None
        gaps = overdue_gaps(
            self.trend.schedule,
            self.subject.surgery_end_at,
            [check.taken_at for check in self.checks],
            until,
        )
        for gap in gaps:
            _vspan(
                ax,
                self.x(gap.overdue_from),
                self.x(gap.until),
                facecolor=GAP_FACE,
                edgecolor=AMBER_EDGE,
                hatch="///",
                linewidth=0,
                alpha=0.6,
                zorder=0.5,
                gid="overdue-gap",
            )

    # panels ----------------------------------------------------------------------------------

    def _draw_lanes(self, ax: Axes) -> None:
        """Checks, clinical signs and Doppler in one panel, a row each."""
        self._draw_checks(ax)
        for field, y in SIGN_ROWS.items():
            self._lane(ax, field, y, [getattr(c, field) for c in self.checks])
        self._draw_doppler(ax)
        for divider in LANE_DIVIDERS:
            _hline(ax, divider, color=QUIET, linewidth=0.5, zorder=0.3)
        ax.set_ylim(*LANES_LIMITS)
        if self.variant.detailed:
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
        ax.set_yticklabels(names, fontsize=self.variant.font_size)
        ax.tick_params(axis="y", length=0)
        ax.spines["bottom"].set_visible(False)
        if self.subject.buried:
            ax.text(
                0.995,
                (SIGN_ROWS["pinprick"] - 0.55 - LANES_LIMITS[0])
                / (LANES_LIMITS[1] - LANES_LIMITS[0]),
                "Buried flap: no skin paddle to see",
                transform=ax.transAxes,
                ha="right",
                fontsize=self.variant.font_size - 1.5,
                color=MUTED,
                gid="buried",
            )

    def _draw_checks(self, ax: Axes) -> None:
        """Every check as a tick, flagged ones by severity; the schedule's bands named."""
        size = self.variant.font_size
        plain = [h for h, check in zip(self.hours, self.checks, strict=True) if not check.severity]
        if plain:
            _plot(
                ax,
                plain,
                [CHECKS_ROW] * len(plain),
                linestyle="none",
                marker="|",
                markersize=size + 1,
                color=QUIET,
                gid="checks",
            )
        for severity in (Severity.AMBER, Severity.RED):
            xs = [
                h
                for h, check in zip(self.hours, self.checks, strict=True)
                if check.severity == severity
            ]
            self._severity_points(
                ax, xs, [CHECKS_ROW] * len(xs), severity, gid=f"flags:{severity.value}"
            )
        for band in schedule_bands(self.trend.schedule, self.end):
            if band.start_hours >= self.start:
                ax.text(
                    band.start_hours + (self.end - self.start) * 0.004,
                    CHECKS_ROW - 0.65,
                    band.label,
                    fontsize=size - 1.5,
                    color=MUTED,
                    va="bottom",
                    gid="band-label",
                )
        if not self.checks:
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

    def _severity_points(
        self, ax: Axes, xs: Sequence[float], ys: Sequence[float], severity: Severity, gid: str
    ) -> None:
        if not xs:
            return
        style = SEVERITY_STYLE[severity]
        big = self.variant.font_size * (0.85 if self.many else 1.1)
        _plot(
            ax,
            xs,
            ys,
            linestyle="none",
            marker=style["marker"],
            markersize=big if severity == Severity.RED else big * 0.8,
            markerfacecolor=style["color"],
            markeredgecolor=style["edge"],
            markeredgewidth=0.8,
            zorder=4,
            gid=gid,
        )

    def _marker_labels(self, ax: Axes) -> None:
        """Escalation labels in three rows above the check ticks, placed to avoid overlap."""
        if not self.markers:
            return
        char_hours = self.char_hours
        row_free = [self.start, self.start, self.start]
        for marker in self.markers:
            x = self.x(marker.at)
            text = marker.label
            width = (len(text) + 1) * char_hours
            row = next((r for r in range(3) if row_free[r] <= x), None)
            ha = "left"
            if x + width > self.end:
                ha = "right"
                row = next((r for r in range(3) if row_free[r] <= x - width), row)
            if row is None:
                row = min(range(3), key=lambda r: row_free[r])
            row_free[row] = x + width if ha == "left" else x + char_hours
            ax.text(
                x + (char_hours * 0.4 if ha == "left" else -char_hours * 0.4),
                LABEL_ROWS[row],
                text,
                fontsize=self.variant.font_size - 1,
                ha=ha,
                va="center",
                color=marker.color if marker.color != AMBER else AMBER_EDGE,
                gid=f"marker-label:{marker.kind}",
                clip_on=False,
            )

    def _numeric(
        self,
        ax: Axes,
        field: str,
        values: Sequence[float | None],
        *,
        color: str,
        style: str,
        marker: str,
        label: str,
    ) -> list[float]:
        points = [(h, v) for h, v in zip(self.hours, values, strict=True) if v is not None]
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        _plot(
            ax,
            xs,
            ys,
            linestyle=style,
            color=color,
            linewidth=1.0 if self.many else 1.5,
            marker=marker,
            markersize=2 if self.many else 4,
            label=label,
            gid=f"series:{field}",
            zorder=3,
        )
        for threshold in self._thresholds_for(field):
            holds = COMPARISONS[threshold.op][1]
            beyond = [(x, y) for x, y in points if holds(y, threshold.value)]
            self._severity_points(
                ax,
                [x for x, _ in beyond],
                [y for _, y in beyond],
                threshold.severity,
                gid=f"beyond:{field}:{threshold.rule_id}",
            )
        return ys

    def _thresholds_for(self, field: str) -> list[Threshold]:
        return [t for t in self.thresholds if t.field == field]

    def _threshold_lines(self, ax: Axes, fields: Sequence[str]) -> list[float]:
        levels: list[float] = []
        for field in fields:
            for threshold in self._thresholds_for(field):
                style = SEVERITY_STYLE[threshold.severity]
                _hline(
                    ax,
                    threshold.value,
                    color=style["color"] if threshold.severity == Severity.RED else AMBER_EDGE,
                    linestyle=style["line"],
                    linewidth=1.2,
                    gid=f"threshold:{field}:{threshold.rule_id}",
                    zorder=2,
                )
                if self.variant.detailed:
                    ax.annotate(
                        f"{SEVERITY_ICON[threshold.severity]} {threshold.label}",
                        xy=(0, threshold.value),
                        xycoords=("axes fraction", "data"),
                        xytext=(4, 2),
                        textcoords="offset points",
                        ha="left",
                        va="bottom",
                        fontsize=self.variant.font_size - 1.5,
                        color=style["color"] if threshold.severity == Severity.RED else AMBER_EDGE,
                        gid=f"threshold-label:{field}:{threshold.rule_id}",
                    )
                levels.append(threshold.value)
        return levels

    def _trend_notes(self, ax: Axes, fields: Sequence[str]) -> None:
        if not self.variant.detailed:
            return
        notes = [c for c in trend_conditions(self.trend.rule_set) if c.field in fields]
        for row, condition in enumerate(notes[:2]):
            ax.text(
                0.005,
                0.97 - row * 0.13,
                f"{SEVERITY_ICON[condition.severity]} also flags: {condition.words}",
                transform=ax.transAxes,
                fontsize=self.variant.font_size - 1.5,
                va="top",
                color=MUTED,
                gid=f"trend-rule:{condition.rule_id}",
            )

    def _limits(
        self, ax: Axes, values: Sequence[float], levels: Sequence[float], low: float, high: float
    ) -> None:
        shown = [*values, *levels]
        if not shown:
            ax.set_ylim(low, high)
            return
        bottom, top = min(shown), max(shown)
        pad = max((top - bottom) * 0.12, 0.5)
        ax.set_ylim(max(low, bottom - pad), min(high, top + pad))

    def _draw_temperature(self, ax: Axes) -> None:
        flap = self._numeric(
            ax,
            "flap_temperature_c",
            [c.flap_temperature_c for c in self.checks],
            color=BLUE,
            style="-",
            marker="o",
            label="Flap °C",
        )
        control = self._numeric(
            ax,
            "control_temperature_c",
            [c.control_temperature_c for c in self.checks],
            color=MUTED,
            style="--",
            marker="s",
            label="Control °C",
        )
        levels = self._threshold_lines(ax, TEMPERATURES)
        self._limits(ax, flap + control, levels, 20.0, 43.0)
        ax.set_ylabel("Temp. °C", fontsize=self.variant.font_size)
        self._trend_notes(ax, TEMPERATURES)
        if self.variant.detailed:
            ax.legend(
                handles=[line for line in ax.get_children() if line.get_gid() in _SERIES_KEYED],
                loc="lower left",
                fontsize=self.variant.font_size - 1,
                frameon=False,
                ncol=2,
            )

    def _draw_difference(self, ax: Axes) -> None:
        self._draw_measure(ax, "temperature_difference_c", BLUE, "ΔT", (-23.0, 23.0))
        ax.set_ylabel("ΔT °C\n(control − flap)", fontsize=self.variant.font_size)

    def _draw_sto2(self, ax: Axes) -> None:
        self._draw_measure(ax, "sto2_percent", GREEN, "StO₂", (0.0, 100.0))
        ax.set_ylabel("StO₂ %", fontsize=self.variant.font_size)

    def _draw_measure(
        self, ax: Axes, field: str, color: str, label: str, bounds: tuple[float, float]
    ) -> None:
        """One measurement's line, its rule thresholds and the rules on its changes."""
        values = self._numeric(
            ax,
            field,
            [getattr(check, field) for check in self.checks],
            color=color,
            style="-",
            marker="o",
            label=label,
        )
        levels = self._threshold_lines(ax, (field,))
        self._limits(ax, values, levels, *bounds)
        self._trend_notes(ax, (field,))

    def _lane(self, ax: Axes, field: str, y: float, values: Sequence[str | None]) -> None:
        """One categorical lane: quiet dots for answers no rule looks for, large severity
        shapes for answers one does, crosses for "not assessable"; changes labelled."""
        abnormal = self.abnormal.get(field, {})
        kinds: dict[str, list[float]] = {"normal": [], "not_observed": [], "amber": [], "red": []}
        changes: list[tuple[float, str, Severity | None]] = []
        previous: str | None = None
        for hours, value in zip(self.hours, values, strict=True):
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
        small = self.variant.font_size * (0.35 if self.many else 0.5)
        for kind, marker in (("normal", "o"), ("not_observed", "x")):
            if kinds[kind]:
                _plot(
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
            self._severity_points(ax, xs, [y] * len(xs), severity, gid=f"lane:{field}:{severity}")
        self._change_labels(ax, field, y, changes)

    def _change_labels(
        self, ax: Axes, field: str, y: float, changes: list[tuple[float, str, Severity | None]]
    ) -> None:
        """Label where each run of one answer starts; when there are too many, the runs of
        abnormal answers keep their labels first."""
        limit = self.variant.max_change_labels
        if len(changes) > limit:
            abnormal = [c for c in changes if c[2] is not None]
            changes = (
                abnormal[:limit]
                if len(abnormal) >= limit
                else sorted(
                    abnormal + [c for c in changes if c[2] is None][: limit - len(abnormal)]
                )
            )
        near_end = self.end - (self.end - self.start) * 0.06
        free_from = self.start
        for hours, value, severity in changes:
            label = _answer_label(field, value)
            if severity is None and not self.variant.detailed:
                continue  # a small multiple names only the abnormal answers
            width = (len(label) + 1) * self.char_hours
            right_aligned = hours > near_end
            if (hours - width if right_aligned else hours) < free_from:
                continue  # it would overprint the label before it
            free_from = hours if right_aligned else hours + width
            color = MUTED if severity is None else (RED if severity == Severity.RED else AMBER_EDGE)
            ax.text(
                hours,
                y + 0.28,
                label,
                fontsize=self.variant.font_size - 1.5,
                color=color,
                fontweight="bold" if severity is not None else "normal",
                va="bottom",
                ha="right" if right_aligned else "left",
                clip_on=True,
                gid=f"change:{field}:{value}",
            )

    def _draw_doppler(self, ax: Axes) -> None:
        """Each vessel as a step line between its answer rows: a lost signal is a drop."""
        for field in ("doppler_arterial", "doppler_venous"):
            abnormal = self.abnormal.get(field, {})
            points = [
                (h, value, DOPPLER_ROWS[(field, value)])
                for h, check in zip(self.hours, self.checks, strict=True)
                if (value := getattr(check, field)) is not None and (field, value) in DOPPLER_ROWS
            ]
            if not points:
                continue
            _plot(
                ax,
                [p[0] for p in points],
                [p[2] for p in points],
                drawstyle="steps-post",
                color=BLUE if field == "doppler_arterial" else MUTED,
                linewidth=1.0,
                marker="o",
                markersize=self.variant.font_size * (0.3 if self.many else 0.45),
                gid=f"series:{field}",
                zorder=3,
            )
            for severity in (Severity.AMBER, Severity.RED):
                flagged = [p for p in points if abnormal.get(p[1]) == severity]
                self._severity_points(
                    ax,
                    [p[0] for p in flagged],
                    [p[2] for p in flagged],
                    severity,
                    gid=f"lane:{field}:{severity}",
                )

    # words around the plot ---------------------------------------------------------------------

    def _header(self, figure: Figure) -> None:
        """Whose flap, and as of when: a chart saved or sent on its own still says both. The
        page around it (or, printed, the lines below) gives the rest."""
        s = self.subject
        side = "" if s.side.value == "na" else f", {s.side.label.lower()}"
        when = (
            f"as of {self.local(s.as_of, '%a %d %b %H:%M')}"
            if s.as_of is not None
            else s.status.label.lower()
        )
        figure.text(
            0.01,
            1 - 0.12 / figure.get_figheight(),
            f"{s.patient_name} · {s.mrn} — {s.procedure}, {s.site}{side} · {when}",
            fontsize=self.variant.font_size + 3,
            fontweight="bold",
            va="top",
            color=INK,
            gid="title",
        )
        if not self.variant.legend:
            return
        ended = self.local(s.surgery_end_at, "%a %d %b %Y %H:%M")
        state = [s.status.label, self._escalation_state()]
        state += [f"rule set v{self.trend.rule_set_version}", f"{len(self.checks)} checks"]
        figure.text(
            0.01,
            1 - 0.40 / figure.get_figheight(),
            f"{s.unit_name} ({s.unit_code}) · surgeon {s.surgeon} · surgery ended {ended} · "
            f"times are {s.timezone}\n" + " · ".join(part for part in state if part),
            fontsize=self.variant.font_size,
            va="top",
            color=MUTED,
            linespacing=1.6,
        )

    def _escalation_state(self) -> str:
        """The open escalation in words: what a surgeon needs to know before the lines."""
        for escalation in self.trend.escalations:
            if escalation.closed_at is not None:
                continue
            severity = f"{SEVERITY_ICON[escalation.severity]} {escalation.severity.label.lower()}"
            if escalation.acknowledged_at is None:
                return f"escalation open ({severity}), awaiting acknowledgement"
            outcome = escalation.outcome.label.lower() if escalation.outcome else ""
            return f"escalation open ({severity}), acknowledged: {outcome}"
        return "no open escalation"

    def _legend(self, figure: Figure) -> None:
        red, amber = SEVERITY_STYLE[Severity.RED], SEVERITY_STYLE[Severity.AMBER]

        def shape(style: dict[str, str], label: str) -> Line2D:
            return Line2D(
                [],
                [],
                linestyle="none",
                marker=style["marker"],
                markerfacecolor=style["color"],
                markeredgecolor=style["edge"],
                markersize=8,
                label=label,
            )

        handles = [
            shape(red, "Red: flagged check / sign a red rule looks for"),
            shape(amber, "Amber: flagged check / sign an amber rule looks for"),
            Line2D([], [], color=RED, linestyle="-", label="Red rule threshold"),
            Line2D([], [], color=AMBER_EDGE, linestyle="--", label="Amber rule threshold"),
            Line2D([], [], color=RED, linewidth=1.6, label="Escalation opened (colour = severity)"),
            Line2D([], [], color=INK, linestyle="--", label="Acknowledged (outcome)"),
            Line2D([], [], color=INK, linewidth=2.6, label="Return to theatre / status"),
            Line2D([], [], color=MUTED, linestyle=":", label="Escalation closed"),
            Patch(facecolor=GAP_FACE, edgecolor=AMBER_EDGE, hatch="///", label="Overdue: no check"),
            Patch(facecolor=BAND_SHADE, label="Schedule band (alternate shading)"),
        ]
        figure.legend(
            handles=handles,
            loc="upper center",
            ncol=self.variant.legend_columns,
            fontsize=self.variant.font_size - 1,
            frameon=False,
            # Below the hours axis and its label.
            bbox_to_anchor=(0.5, (self.footer_in - 0.42) / figure.get_figheight()),
        )


# --- compliance ------------------------------------------------------------------------------


def compliance_figure(buckets: Buckets, title: str) -> Figure:
    """On-time compliance over a period: the share on time above, what fell due below (on
    time, late and missed stacked, hatched as well as coloured so print in grey still tells
    them apart)."""
    with rc_context(RC):
        figure = Figure(figsize=(10.0, 4.6), dpi=100, layout="constrained")
        share, counts = figure.subplots(2, 1, sharex=True, height_ratios=(1.1, 1.0))
        days = list(buckets.tallies)
        tallies = list(buckets.tallies.values())
        xs = list(range(len(days)))
        percent = [t.on_time_percent for t in tallies]
        share.plot(
            [x for x, p in zip(xs, percent, strict=True) if p is not None],
            [p for p in percent if p is not None],
            color=BLUE,
            marker="o",
            markersize=3.5,
            linewidth=1.4,
            gid="on-time-percent",
        )
        share.set_ylim(0, 105)
        share.yaxis.set_major_locator(FixedLocator([0, 25, 50, 75, 100]))
        share.set_ylabel("on time (%)")
        share.grid(axis="y", color=BAND_SHADE)
        share.set_title(title, loc="left", fontsize=10, color=INK)
        bottom = [0] * len(xs)
        for state, colour, hatch, words in (
            ("on_time", GREEN, "", "on time"),
            ("late", AMBER, "//", "late"),
            ("missed", RED, "xx", "missed"),
        ):
            heights = [getattr(t, state) for t in tallies]
            counts.bar(
                xs,
                heights,
                bottom=bottom,
                width=0.8,
                color=colour,
                hatch=hatch,
                edgecolor="white",
                linewidth=0.4,
                label=words,
                gid=f"checks-{state}",
            )
            bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
        counts.set_ylabel("checks due")
        counts.legend(loc="upper left", ncols=3, frameon=False, fontsize=8)
        counts.set_ylim(0, max([*bottom, 1]) * 1.3)
        step = max(1, len(xs) // 12)
        counts.set_xticks(xs[::step])
        counts.set_xticklabels(
            [("w/c " if buckets.weekly else "") + day.strftime("%-d %b") for day in days[::step]],
            fontsize=8,
        )
        counts.set_xlim(-0.6, len(xs) - 0.4)
        for ax in (share, counts):
            ax.spines[["top", "right"]].set_visible(False)
            ax.tick_params(colors=MUTED, labelsize=8)
        return figure


def compliance_chart_bytes(buckets: Buckets, title: str, fmt: str = "png") -> bytes:
    return render(compliance_figure(buckets, title), fmt)
