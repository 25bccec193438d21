"""What every part of a chart draws with: the palette, the severity shapes, the text settings,
lines added without matplotlib's bookkeeping, and rendering to bytes."""

from __future__ import annotations

import io
from collections.abc import Sequence

from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from flapwatch.domain.vocabulary import Severity

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
# A pause of monitoring (theatre, imaging): a cool blue-grey, nothing is due under it.
PAUSE_FACE = "#dbe4f0"
SEVERITY_STYLE = {
    Severity.RED: {"marker": "^", "color": RED, "edge": "#5c0f0a", "line": "-"},
    Severity.AMBER: {"marker": "D", "color": AMBER, "edge": AMBER_EDGE, "line": "--"},
}
SEVERITY_ICON = {Severity.RED: "▲", Severity.AMBER: "◆"}

# Every text on a chart is drawn as typed: a "$" in a note or a name is a dollar, never
# matplotlib's maths markup (which would garble it, or fail to parse). Glyphs unhinted: no
# visible difference at these sizes, and a sixth less time to draw.
RC = {"text.parse_math": False, "text.hinting": "no_hinting"}


def render(figure: Figure, fmt: str) -> bytes:
    """PNG or SVG bytes of a figure; the same data gives the same bytes."""
    buffer = io.BytesIO()
    metadata = {"Date": None} if fmt == "svg" else {"Software": None}
    with rc_context(RC):
        figure.savefig(buffer, format=fmt, metadata=metadata)
    return buffer.getvalue()


def plot(ax: Axes, xs: Sequence[float], ys: Sequence[float], **style: object) -> Line2D:
    """A line on `ax`, as ax.plot draws it, without the data-limit bookkeeping: every panel's
    limits are set by hand, and that bookkeeping was a third of the time to build a chart."""
    line = Line2D(xs, ys, **style)  # type: ignore[arg-type]
    ax.add_artist(line)
    return line


def vline(ax: Axes, x: float, **style: object) -> Line2D:
    return plot(ax, [x, x], [0, 1], transform=ax.get_xaxis_transform(), **style)


def hline(ax: Axes, y: float, **style: object) -> Line2D:
    return plot(ax, [0, 1], [y, y], transform=ax.get_yaxis_transform(), **style)


def vspan(ax: Axes, start: float, end: float, **style: object) -> Rectangle:
    span = Rectangle(
        (start, 0),
        end - start,
        1,
        transform=ax.get_xaxis_transform(),
        **style,  # type: ignore[arg-type]
    )
    ax.add_artist(span)
    return span


def severity_points(
    ax: Axes,
    xs: Sequence[float],
    ys: Sequence[float],
    severity: Severity,
    *,
    size: float,
    gid: str,
) -> None:
    """Points in their severity's shape and colour: a red one `size`, an amber one smaller."""
    if not xs:
        return
    style = SEVERITY_STYLE[severity]
    plot(
        ax,
        xs,
        ys,
        linestyle="none",
        marker=style["marker"],
        markersize=size if severity == Severity.RED else size * 0.8,
        markerfacecolor=style["color"],
        markeredgecolor=style["edge"],
        markeredgewidth=0.8,
        zorder=4,
        gid=gid,
    )
