"""The compliance report's chart: on-time share over a period, and what fell due."""

from __future__ import annotations

from matplotlib import rc_context
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator

from flapwatch.charts.drawing import AMBER, BAND_SHADE, BLUE, GREEN, INK, MUTED, RC, RED, render
from flapwatch.domain.compliance import Buckets


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
