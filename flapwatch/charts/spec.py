"""What a trend chart is, without drawing one: its sizes and formats, and the drawing's
version. Free of matplotlib, so that pages and the command line can name charts without
loading it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# Bump when the drawing changes: cached charts of the old look are then never served.
STYLE = "2"


@dataclass(frozen=True)
class Variant:
    """A size of chart: the full one of a flap page, or a small multiple on the review page."""

    name: str
    width_in: float
    dpi: int
    font_size: float
    # (panel, height in inches), top to bottom; the StO₂ panel only when there is StO₂.
    panels: tuple[tuple[str, float], ...]
    header_in: float
    footer_in: float
    max_change_labels: int
    # Header, legend, threshold labels and every change of answer named: not on a thumbnail.
    detailed: bool
    # A fixed page height (the printable report's A4), else as tall as the panels need.
    page_height_in: float | None = None
    # A legend and the flap's details drawn in (print, where nothing surrounds the chart); on
    # screen the page around the image gives both, and every line of text costs drawing time.
    legend: bool = False
    legend_columns: int = 2
    # At most this many hour ticks along the axes.
    most_ticks: int = 16
    # Only the latest hours of a flap's history (a phone's narrow chart), else all of it.
    recent_hours: float | None = None
    # A phone: the lanes' short names, whose flap in two lines, and the rules on changes
    # left to the page, so that every text is large enough to read at the phone's width.
    compact: bool = False


FULL = Variant(
    name="full",
    width_in=12.0,
    dpi=100,
    font_size=9.0,
    panels=(("lanes", 3.9), ("temperature", 1.8), ("difference", 1.25), ("sto2", 1.3)),
    header_in=0.55,
    footer_in=0.5,
    max_change_labels=24,
    detailed=True,
)
SMALL = Variant(
    name="small",
    width_in=6.4,
    dpi=80,
    font_size=7.5,
    panels=(("lanes", 2.6), ("difference", 0.8)),
    header_in=0.3,
    footer_in=0.42,
    max_change_labels=6,
    detailed=False,
    most_ticks=6,
)
# A phone's width (about 340 CSS px for 4 in: 1 pt is 1.2 CSS px, so the smallest text,
# 1.5 pt under `font_size`, stands about 12 CSS px tall), the last day only, taller lanes.
PHONE = Variant(
    name="phone",
    width_in=4.0,
    dpi=200,
    font_size=11.5,
    panels=(("lanes", 4.2), ("temperature", 2.0), ("difference", 1.5), ("sto2", 1.5)),
    header_in=0.75,
    footer_in=0.6,
    max_change_labels=4,
    detailed=True,
    most_ticks=4,
    recent_hours=24.0,
    compact=True,
)
# A4 portrait, for the printable report.
PRINT = Variant(
    name="print",
    width_in=8.27,
    dpi=100,
    font_size=7.0,
    panels=(("lanes", 4.4), ("temperature", 1.9), ("difference", 1.35), ("sto2", 1.4)),
    header_in=0.95,
    footer_in=1.55,
    max_change_labels=16,
    detailed=True,
    page_height_in=11.69,
    legend=True,
)
LEFT_IN = {"full": 1.25, "small": 0.85, "print": 1.1, "phone": 1.05}  # room for the lanes' names
RIGHT_IN = 0.25
VARIANTS = {variant.name: variant for variant in (FULL, SMALL, PHONE)}  # served as images
FORMATS = {"png": "image/png", "svg": "image/svg+xml"}


PANEL_GAP_IN = 0.12


def plots_height(panels: Sequence[tuple[str, float]]) -> float:
    return sum(height for _, height in panels) + PANEL_GAP_IN * (len(panels) - 1)


def figure_height(variant: Variant, panels: Sequence[tuple[str, float]]) -> float:
    return variant.page_height_in or variant.header_in + plots_height(panels) + variant.footer_in


def image_size(variant: Variant, *, sto2: bool = False) -> tuple[int, int]:
    """The chart's size in pixels (for an <img>'s width and height)."""
    panels = [panel for panel in variant.panels if sto2 or panel[0] != "sto2"]
    return (
        round(variant.width_in * variant.dpi),
        round(figure_height(variant, panels) * variant.dpi),
    )
