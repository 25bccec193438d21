"""The measurement panels: flap and control temperature, ΔT (control − flap) and StO₂, each
with the thresholds of the unit's rule set in force, the points beyond them in their
severity's shape, and the rules on their changes named."""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.axes import Axes

from flapwatch.charts.drawing import (
    AMBER_EDGE,
    BLUE,
    GREEN,
    MUTED,
    SEVERITY_ICON,
    SEVERITY_STYLE,
    hline,
    plot,
    severity_points,
)
from flapwatch.charts.frame import Frame
from flapwatch.domain.rules import COMPARISONS
from flapwatch.domain.trend import Threshold, trend_conditions
from flapwatch.domain.vocabulary import CheckSource, Severity

TEMPERATURES = ("flap_temperature_c", "control_temperature_c")
_SERIES_KEYED = ("series:flap_temperature_c", "series:control_temperature_c")


def draw_temperature(ax: Axes, frame: Frame) -> None:
    flap = _numeric(
        ax,
        frame,
        "flap_temperature_c",
        [c.flap_temperature_c for c in frame.checks],
        color=BLUE,
        style="-",
        marker="o",
        label="Flap °C",
    )
    control = _numeric(
        ax,
        frame,
        "control_temperature_c",
        [c.control_temperature_c for c in frame.checks],
        color=MUTED,
        style="--",
        marker="s",
        label="Control °C",
    )
    levels = _threshold_lines(ax, frame, TEMPERATURES)
    _limits(ax, flap + control, levels, 20.0, 43.0)
    font_size = frame.variant.font_size
    ax.set_ylabel("Temp. °C", fontsize=font_size)
    _trend_notes(ax, frame, TEMPERATURES)
    if frame.variant.detailed:
        ax.legend(
            handles=[line for line in ax.get_children() if line.get_gid() in _SERIES_KEYED],
            loc="lower left",
            fontsize=font_size - 1,
            frameon=False,
            ncol=2,
        )


def draw_difference(ax: Axes, frame: Frame) -> None:
    _draw_measure(ax, frame, "temperature_difference_c", BLUE, "ΔT", (-23.0, 23.0))
    ax.set_ylabel("ΔT °C\n(control − flap)", fontsize=frame.variant.font_size)


def draw_sto2(ax: Axes, frame: Frame) -> None:
    _draw_measure(ax, frame, "sto2_percent", GREEN, "StO₂", (0.0, 100.0))
    ax.set_ylabel("StO₂ %", fontsize=frame.variant.font_size)


def _draw_measure(
    ax: Axes, frame: Frame, field: str, color: str, label: str, bounds: tuple[float, float]
) -> None:
    """One measurement's line, its rule thresholds and the rules on its changes."""
    values = _numeric(
        ax,
        frame,
        field,
        [getattr(check, field) for check in frame.checks],
        color=color,
        style="-",
        marker="o",
        label=label,
    )
    levels = _threshold_lines(ax, frame, (field,))
    _limits(ax, values, levels, *bounds)
    _trend_notes(ax, frame, (field,))


def _numeric(
    ax: Axes,
    frame: Frame,
    field: str,
    values: Sequence[float | None],
    *,
    color: str,
    style: str,
    marker: str,
    label: str,
) -> list[float]:
    points = [(h, v) for h, v in zip(frame.hours, values, strict=True) if v is not None]
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    plot(
        ax,
        xs,
        ys,
        linestyle=style,
        color=color,
        linewidth=1.0 if frame.many else 1.5,
        marker=marker,
        markersize=2 if frame.many else 4,
        label=label,
        gid=f"series:{field}",
        zorder=3,
    )
    # A device's readings (a tissue oximeter's gateway) on the same line, marked apart: hollow
    # diamonds, so a nurse's looks and a machine's stream are told apart at a glance.
    from_device = [
        (h, v)
        for h, v, check in zip(frame.hours, values, frame.checks, strict=True)
        if v is not None and check.source == CheckSource.DEVICE
    ]
    if from_device:
        plot(
            ax,
            [x for x, _ in from_device],
            [y for _, y in from_device],
            linestyle="none",
            marker="D",
            markerfacecolor="white",
            markeredgecolor=color,
            markersize=3 if frame.many else 5,
            label=f"{label} (device)",
            gid=f"device:{field}",
            zorder=4,
        )
    for threshold in _thresholds_for(frame, field):
        holds = COMPARISONS[threshold.op][1]
        beyond = [(x, y) for x, y in points if holds(y, threshold.value)]
        severity_points(
            ax,
            [x for x, _ in beyond],
            [y for _, y in beyond],
            threshold.severity,
            size=frame.severity_size,
            gid=f"beyond:{field}:{threshold.rule_id}",
        )
    return ys


def _thresholds_for(frame: Frame, field: str) -> list[Threshold]:
    return [t for t in frame.thresholds if t.field == field]


def _threshold_lines(ax: Axes, frame: Frame, fields: Sequence[str]) -> list[float]:
    levels: list[float] = []
    for field in fields:
        for threshold in _thresholds_for(frame, field):
            style = SEVERITY_STYLE[threshold.severity]
            color = style["color"] if threshold.severity == Severity.RED else AMBER_EDGE
            hline(
                ax,
                threshold.value,
                color=color,
                linestyle=style["line"],
                linewidth=1.2,
                gid=f"threshold:{field}:{threshold.rule_id}",
                zorder=2,
            )
            if frame.variant.detailed:
                ax.annotate(
                    f"{SEVERITY_ICON[threshold.severity]} {threshold.label}",
                    xy=(0, threshold.value),
                    xycoords=("axes fraction", "data"),
                    xytext=(4, 2),
                    textcoords="offset points",
                    ha="left",
                    va="bottom",
                    fontsize=frame.variant.font_size - 1.5,
                    color=color,
                    gid=f"threshold-label:{field}:{threshold.rule_id}",
                )
            levels.append(threshold.value)
    return levels


def _trend_notes(ax: Axes, frame: Frame, fields: Sequence[str]) -> None:
    if not frame.variant.detailed or frame.variant.compact:
        return
    notes = [c for c in trend_conditions(frame.trend.rule_set) if c.field in fields]
    for row, condition in enumerate(notes[:2]):
        ax.text(
            0.005,
            0.97 - row * 0.13,
            f"{SEVERITY_ICON[condition.severity]} also flags: {condition.words}",
            transform=ax.transAxes,
            fontsize=frame.variant.font_size - 1.5,
            va="top",
            color=MUTED,
            gid=f"trend-rule:{condition.rule_id}",
        )


def _limits(
    ax: Axes, values: Sequence[float], levels: Sequence[float], low: float, high: float
) -> None:
    shown = [*values, *levels]
    if not shown:
        ax.set_ylim(low, high)
        return
    bottom, top = min(shown), max(shown)
    pad = max((top - bottom) * 0.12, 0.5)
    ax.set_ylim(max(low, bottom - pad), min(high, top + pad))
