"""A flap's trend chart put together: one figure, one x axis in hours since the end of
surgery, the panels stacked top to bottom (lanes, temperatures, ΔT, StO₂ when the flap has
any), the event lines through them all, and on a detailed chart whose flap it is and, in
print, a legend."""

from __future__ import annotations

from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MultipleLocator

from flapwatch.charts.drawing import (
    AMBER_EDGE,
    BAND_SHADE,
    GAP_FACE,
    INK,
    MUTED,
    RC,
    RED,
    SEVERITY_ICON,
    SEVERITY_STYLE,
    render,
)
from flapwatch.charts.events import draw_event_lines, label_events, markers_of
from flapwatch.charts.frame import Frame
from flapwatch.charts.lanes import draw_lanes
from flapwatch.charts.measures import draw_difference, draw_sto2, draw_temperature
from flapwatch.charts.spec import (
    FULL,
    LEFT_IN,
    PANEL_GAP_IN,
    RIGHT_IN,
    Variant,
    figure_height,
    plots_height,
)
from flapwatch.charts.timeline import background, clock_axis, clock_ticks, tick_step
from flapwatch.domain.vocabulary import Severity
from flapwatch.services.review import Trend

PANELS = {
    "lanes": draw_lanes,
    "temperature": draw_temperature,
    "difference": draw_difference,
    "sto2": draw_sto2,
}


def trend_figure(trend: Trend, variant: Variant = FULL) -> Figure:
    """The flap's trend chart as a matplotlib Figure (nothing rendered yet). Draw it inside
    `rc_context(RC)`, as `render` does."""
    with rc_context(RC):
        return _assemble(Frame(trend, variant, markers_of(trend)))


def chart_bytes(trend: Trend, variant: Variant, fmt: str) -> bytes:
    return render(trend_figure(trend, variant), fmt)


def _panels(frame: Frame) -> list[tuple[str, float]]:
    has_sto2 = any(check.sto2_percent is not None for check in frame.checks)
    return [(name, height) for name, height in frame.variant.panels if name != "sto2" or has_sto2]


def _assemble(frame: Frame) -> Figure:
    variant = frame.variant
    panels = _panels(frame)
    plots_in = plots_height(panels)
    height_in = figure_height(variant, panels)
    footer_in = height_in - variant.header_in - plots_in
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
    step = tick_step(frame.end - frame.start, variant.most_ticks)
    ticks = clock_ticks(frame, step)
    axes: dict[str, Axes] = {}
    for row, (name, _height) in enumerate(panels):
        # One x range for all, set on each: sharing axes costs a draw of every x axis.
        ax = figure.add_subplot(grid[row, 0])
        axes[name] = ax
        ax.set_xlim(frame.start, frame.end)
        background(ax, frame)
        ax.tick_params(labelsize=variant.font_size, length=3)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        # Faint lines at the ward clock's hours, read against the labels along the top.
        ax.vlines(
            ticks,
            0,
            1,
            transform=ax.get_xaxis_transform(),
            colors=BAND_SHADE,
            linewidth=0.8,
            zorder=0.2,
        )
        PANELS[name](ax, frame)
        draw_event_lines(ax, frame)
    bottom = axes[panels[-1][0]]
    for ax in axes.values():
        if ax is not bottom and ax is not axes["lanes"]:
            ax.xaxis.set_visible(False)
    bottom.xaxis.set_major_locator(MultipleLocator(step))
    bottom.set_xlabel("Hours since end of surgery", fontsize=variant.font_size)
    clock_axis(axes["lanes"], frame, ticks, step)
    label_events(axes["lanes"], frame)
    if variant.detailed:
        _header(figure, frame)
        if variant.legend:
            _legend(figure, frame, footer_in)
    return figure


def _header(figure: Figure, frame: Frame) -> None:
    """Whose flap, and as of when: a chart saved or sent on its own still says both. The
    page around it (or, printed, the lines below) gives the rest."""
    s = frame.subject
    font_size = frame.variant.font_size
    side = "" if s.side.value == "na" else f", {s.side.label.lower()}"
    when = (
        f"as of {frame.local(s.as_of, '%a %d %b %H:%M')}"
        if s.as_of is not None
        else s.status.label.lower()
    )
    if frame.variant.compact:
        _compact_header(figure, frame, when)
        return
    figure.text(
        0.01,
        1 - 0.12 / figure.get_figheight(),
        f"{s.patient_name} · {s.mrn} — {s.procedure}, {s.site}{side} · {when}",
        fontsize=font_size + 3,
        fontweight="bold",
        va="top",
        color=INK,
        gid="title",
    )
    if not frame.variant.legend:
        return
    ended = frame.local(s.surgery_end_at, "%a %d %b %Y %H:%M")
    state = [s.status.label, _escalation_state(frame.trend)]
    state += [f"rule set v{frame.trend.rule_set_version}", f"{len(frame.checks)} checks"]
    figure.text(
        0.01,
        1 - 0.40 / figure.get_figheight(),
        f"{s.unit_name} ({s.unit_code}) · surgeon {s.surgeon} · surgery ended {ended} · "
        f"times are {s.timezone}\n" + " · ".join(part for part in state if part),
        fontsize=font_size,
        va="top",
        color=MUTED,
        linespacing=1.6,
    )


def _compact_header(figure: Figure, frame: Frame, when: str) -> None:
    """A phone's chart: whose it is, then which hours it shows, each on a line of its own."""
    s = frame.subject
    recent = frame.variant.recent_hours
    hours = f"last {recent:g} h" if recent is not None and frame.start > 0 else "since surgery"
    for row, (text, weight, color) in enumerate(
        ((f"{s.patient_name} · {s.mrn}", "bold", INK), (f"{hours} · {when}", "normal", MUTED))
    ):
        figure.text(
            0.02,
            1 - (0.08 + row * 0.28) / figure.get_figheight(),
            text,
            fontsize=frame.variant.font_size + (1 if row == 0 else -1),
            fontweight=weight,
            va="top",
            color=color,
            gid="title" if row == 0 else "window",
        )


def _escalation_state(trend: Trend) -> str:
    """The open escalation in words: what a surgeon needs to know before the lines."""
    for escalation in trend.escalations:
        if escalation.closed_at is not None:
            continue
        severity = f"{SEVERITY_ICON[escalation.severity]} {escalation.severity.label.lower()}"
        if escalation.acknowledged_at is None:
            return f"escalation open ({severity}), awaiting acknowledgement"
        outcome = escalation.outcome.label.lower() if escalation.outcome else ""
        return f"escalation open ({severity}), acknowledged: {outcome}"
    return "no open escalation"


def _legend(figure: Figure, frame: Frame, footer_in: float) -> None:
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
        Line2D(
            [],
            [],
            linestyle="none",
            marker="s",
            markerfacecolor="none",
            markeredgecolor=INK,
            label="Photo taken (on the page)",
        ),  # fmt: skip
        Patch(facecolor=GAP_FACE, edgecolor=AMBER_EDGE, hatch="///", label="Overdue: no check"),
        Patch(facecolor=BAND_SHADE, label="Schedule band (alternate shading)"),
    ]
    figure.legend(
        handles=handles,
        loc="upper center",
        ncol=frame.variant.legend_columns,
        fontsize=frame.variant.font_size - 1,
        frameon=False,
        # Below the hours axis and its label.
        bbox_to_anchor=(0.5, (footer_in - 0.42) / figure.get_figheight()),
    )
