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

Where each part is:
- `spec`: sizes (full, small, print), formats and the drawing's version; no matplotlib;
- `cache`: rendered charts on disk under the flap's data version; no matplotlib;
- `figure`: the figure put together, and `trend_figure` / `chart_bytes`;
- `frame`: what every panel draws against (checks in hours, the x range, the unit's clock);
- `timeline`: the hours and clock axes, schedule bands and overdue stretches;
- `lanes`, `measures`: the panels; `events`: the labelled vertical lines;
- `drawing`: palette, severity shapes, primitives and rendering;
- `compliance`: the compliance report's chart.

Nothing is imported here: `spec` and `cache` are read by pages that must not load matplotlib.
"""
