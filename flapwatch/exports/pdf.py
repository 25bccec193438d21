"""The printable report of one flap: its trend chart, every check, its escalations and outcome.

Drawn with matplotlib's PDF backend (Figure objects, no pyplot), so it needs neither a browser
nor a system package. A4 portrait; every page names the patient and says "page n of N", as a
printed clinical record must. Fonts are embedded as TrueType, so the text can be searched and
copied from the PDF.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from matplotlib import rc_context
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from flapwatch.charts.drawing import INK, MUTED, RC, RED, SEVERITY_ICON
from flapwatch.charts.figure import trend_figure
from flapwatch.charts.spec import PRINT
from flapwatch.domain.checks import LATE_ENTRY_AFTER
from flapwatch.domain.outcomes import minutes_between
from flapwatch.domain.rule_words import reasons_by_rule
from flapwatch.domain.vocabulary import Severity
from flapwatch.models import Check, Escalation, Photo, TheatreReturn
from flapwatch.services.monitoring import describe
from flapwatch.services.review import Trend

PAGE = (8.27, 11.69)  # A4 portrait, inches
MARGIN = 0.55
LINE = 0.165  # inches per line of table text
TABLE_SIZE = 6.2
MONO = "DejaVu Sans Mono"
# Characters of monospaced text across the page at TABLE_SIZE (0.6 em each).
TABLE_CHARS = int((PAGE[0] - 2 * MARGIN) * 72 / (TABLE_SIZE * 0.6))

# (heading, width in characters) of the check table; the notes go on a line of their own.
COLUMNS = (
    ("Taken", 13),
    ("Colour", 9),
    ("Flap/Ctl °C", 12),
    ("ΔT", 5),
    ("Refill", 12),
    ("Doppler A/V", 20),
    ("Turgor", 8),
    ("Pinprick", 12),
    ("StO₂", 5),
    ("Flags", 22),
    ("By", 0),  # the rest of the line
)


def _cell(text: str, width: int) -> str:
    if width == 0:
        return text
    text = text if len(text) < width else text[: width - 2] + "…"
    return text.ljust(width)


def _row(cells: Iterable[str]) -> str:
    return "".join(_cell(text, width) for text, (_, width) in zip(cells, COLUMNS, strict=True))


@dataclass
class Line:
    text: str
    color: str = INK
    weight: str = "normal"
    size: float = TABLE_SIZE
    mono: bool = True
    space_before: float = 0.0


@dataclass
class Section:
    title: str
    lines: list[Line] = field(default_factory=list)
    # Repeated at the top of every page the section runs onto (a table's column headings).
    heading: Line | None = None


class Document:
    """Pages of A4 text under a header line, numbered in a footer: what every printed
    flapwatch document is made of."""

    def __init__(self, zone: ZoneInfo, generated_at: datetime, generated_by: str) -> None:
        self.zone = zone
        self.generated_at = generated_at
        self.generated_by = generated_by

    @property
    def header(self) -> str:
        raise NotImplementedError

    @property
    def footer_text(self) -> str:
        return (
            f"{self.header} · printed {self.local(self.generated_at, '%d %b %Y %H:%M')} by "
            f"{self.generated_by}"
        )

    def local(self, at: datetime, pattern: str = "%d %b %H:%M") -> str:
        return at.astimezone(self.zone).strftime(pattern)

    def numbered(self, figures: list[Figure]) -> list[Figure]:
        total = len(figures)
        for number, figure in enumerate(figures, start=1):
            self.footer(figure, number, total)
        return figures

    def page(self, title: str) -> Figure:
        figure = Figure(figsize=PAGE)
        figure.text(
            MARGIN / PAGE[0],
            1 - MARGIN / PAGE[1],
            self.header,
            fontsize=9,
            fontweight="bold",
            va="top",
            color=INK,
        )
        figure.text(
            MARGIN / PAGE[0],
            1 - (MARGIN + 0.3) / PAGE[1],
            title,
            fontsize=11,
            fontweight="bold",
            va="top",
            color=INK,
        )
        return figure

    def footer(self, figure: Figure, number: int, total: int) -> None:
        figure.text(MARGIN / PAGE[0], 0.3 / PAGE[1], self.footer_text, fontsize=6.5, color=MUTED)
        figure.text(
            1 - MARGIN / PAGE[0],
            0.3 / PAGE[1],
            f"Page {number} of {total}",
            fontsize=7,
            ha="right",
            color=INK,
            gid="page-number",
        )

    def paginate(self, section: Section) -> list[Figure]:
        top = MARGIN + 0.7
        bottom = PAGE[1] - MARGIN - 0.3
        figures: list[Figure] = []
        y = bottom + 1  # start a page at once
        for line in section.lines:
            height = LINE * (line.size / TABLE_SIZE) + line.space_before
            if y + height > bottom:
                continued = " (continued)" if figures else ""
                figure = self.page(section.title + continued)
                figures.append(figure)
                y = top
                if section.heading is not None:
                    y = self.write(figure, section.heading, y)
            y = self.write(figures[-1], line, y)
        if not figures:
            figures.append(self.page(section.title))
        return figures

    @staticmethod
    def write(figure: Figure, line: Line, y: float) -> float:
        y += line.space_before
        figure.text(
            MARGIN / PAGE[0],
            1 - y / PAGE[1],
            line.text,
            fontsize=line.size,
            family=MONO if line.mono else "sans-serif",
            fontweight=line.weight,
            color=line.color,
            va="top",
        )
        return y + LINE * (line.size / TABLE_SIZE)


def as_pdf(figures: list[Figure], metadata: dict[str, object]) -> bytes:
    buffer = io.BytesIO()
    with PdfPages(buffer, metadata={"Creator": "flapwatch", **metadata}) as pdf:
        for figure in figures:
            pdf.savefig(figure)
    return buffer.getvalue()


class _Report(Document):
    def __init__(self, trend: Trend, generated_at: datetime, generated_by: str) -> None:
        super().__init__(ZoneInfo(trend.subject.timezone), generated_at, generated_by)
        self.trend = trend
        self.subject = trend.subject

    @property
    def header(self) -> str:
        s = self.subject
        return (
            f"{s.patient_name} · MRN {s.mrn} · born {s.date_of_birth:%d %b %Y} · "
            f"{s.procedure}, {s.site}"
        )

    @property
    def footer_text(self) -> str:
        s = self.subject
        return (
            f"{s.patient_name} · MRN {s.mrn} · printed "
            f"{self.local(self.generated_at, '%d %b %Y %H:%M')} by {self.generated_by}"
        )

    # pages -----------------------------------------------------------------------------------

    def pages(self) -> list[Figure]:
        figures = [trend_figure(self.trend, PRINT)]
        sections = [self.checks_section()]
        if self.trend.pauses or self.trend.not_done or self.trend.overrides or self.trend.transfers:
            sections.append(self.ward_day_section())
        sections.append(self.escalations_section())
        for section in sections:
            figures.extend(self.paginate(section))
        figures.extend(self.photo_pages())
        return self.numbered(figures)

    # photos ------------------------------------------------------------------------------------

    PHOTO_COLUMNS, PHOTO_ROWS = 4, 5

    def photo_pages(self) -> list[Figure]:
        """Each photo's thumbnail with its time and hours post-op, oldest first, 20 a page."""
        per_page = self.PHOTO_COLUMNS * self.PHOTO_ROWS
        thumbnails = self.trend.thumbnails
        photos = [
            (photo, thumbnails[photo.id]) for photo in self.trend.photos if photo.id in thumbnails
        ]
        figures: list[Figure] = []
        for start in range(0, len(photos), per_page):
            continued = " (continued)" if figures else ""
            figure = self.page(f"Photos ({len(photos)}, oldest first){continued}")
            for place, (photo, thumbnail) in enumerate(photos[start : start + per_page]):
                self.photo_cell(figure, place, photo, thumbnail)
            figures.append(figure)
        return figures

    def photo_cell(self, figure: Figure, place: int, photo: Photo, thumbnail: bytes) -> None:
        from PIL import Image  # a thumbnail is a small JPEG: read, drawn, let go

        row, column = divmod(place, self.PHOTO_COLUMNS)
        usable_w = PAGE[0] - 2 * MARGIN
        usable_h = PAGE[1] - 2 * MARGIN - 1.2
        cell_w, cell_h = usable_w / self.PHOTO_COLUMNS, usable_h / self.PHOTO_ROWS
        left = MARGIN + column * cell_w
        top = MARGIN + 0.8 + row * cell_h
        caption_h = 0.35
        axes = figure.add_axes((
            (left + 0.05) / PAGE[0],
            1 - (top + cell_h - caption_h) / PAGE[1],
            (cell_w - 0.1) / PAGE[0],
            (cell_h - caption_h - 0.05) / PAGE[1],
        ))  # fmt: skip
        with Image.open(io.BytesIO(thumbnail)) as image:
            axes.imshow(image.convert("RGB"))
        axes.set_axis_off()
        hours = (photo.taken_at - self.subject.surgery_end_at).total_seconds() / 3600
        figure.text(
            (left + cell_w / 2) / PAGE[0],
            1 - (top + cell_h - caption_h + 0.05) / PAGE[1],
            f"{self.local(photo.taken_at)} · {hours:.0f} h post-op\nphoto {photo.id}",
            fontsize=6.5,
            ha="center",
            va="top",
            color=INK,
            gid="photo-caption",
        )

    # the check table ---------------------------------------------------------------------------

    def checks_section(self) -> Section:
        section = Section(
            title=f"Checks ({len(self.trend.checks)}, oldest first; times {self.subject.timezone})",
            heading=Line(_row(heading for heading, _ in COLUMNS), weight="bold"),
        )
        if not self.trend.checks:
            section.lines.append(Line("No checks recorded.", mono=False, size=8))
        for check in self.trend.checks:
            color = RED if check.severity == Severity.RED else INK
            if check.entered_in_error:
                color = MUTED
            section.lines.append(Line(_row(self.check_cells(check)), color=color))
            for note in self.check_notes(check):
                section.lines.append(Line(note, color=MUTED))
        section.lines.append(
            Line(
                "† late entry: first recorded more than "
                f"{int(LATE_ENTRY_AFTER.total_seconds() // 60)} min after it was taken.  "
                "‡ corrected: the values shown are the latest version; why, by whom and when on "
                "the line below.  ✗ entered in error: withdrawn, not part of the clinical "
                "record.  ▲ red / ◆ amber: the rules that flagged the check.",
                mono=False,
                size=7,
                color=MUTED,
                space_before=0.1,
            )
        )
        return section

    def check_cells(self, check: Check) -> list[str]:
        def word(value: object) -> str:
            return getattr(value, "label", "").split(" (")[0] if value is not None else "—"

        def number(value: float | None, pattern: str = "{:.1f}") -> str:
            return "—" if value is None else pattern.format(value)

        marks = (" †" if check.late_entry else "") + (" ‡" if check.amended else "")
        if check.entered_in_error:
            marks = " ✗"
        refill = word(check.capillary_refill)
        if check.capillary_refill_s is not None:
            refill += f" {check.capillary_refill_s:g}s"
        flags = ""
        if check.severity is not None:
            icon = SEVERITY_ICON[check.severity]
            flags = f"{icon} " + ", ".join(flag.rule_id for flag in check.flags)
        return [
            self.local(check.taken_at) + marks,
            word(check.colour),
            f"{number(check.flap_temperature_c)}/{number(check.control_temperature_c)}",
            number(check.temperature_difference_c),
            refill,
            f"{word(check.doppler_arterial)}/{word(check.doppler_venous)}",
            word(check.turgor),
            word(check.pinprick),
            number(check.sto2_percent, "{:g}%"),
            flags,
            # Who took it: a correction names its corrector in the notes below.
            check.device or ""
            if check.from_device
            else self.trend.person(check.taken_by_id or check.recorded_by_id),
        ]

    def check_notes(self, check: Check) -> list[str]:
        lines: list[str] = []
        if check.late_entry:
            lines.append(f"    † first recorded {self.local(check.first_recorded_at)}")
        who = self.trend.person(check.recorded_by_id)
        if check.from_device:
            lines.append(f"    Device reading: {check.device}, sent by {who}")
        if check.entered_in_error:
            lines += wrapped(
                f"✗ ENTERED IN ERROR (withdrawn by {who}, {self.local(check.recorded_at)}): "
                f"{check.amendment_reason}",
                4,
            )
        elif check.amended:
            lines += wrapped(
                f"‡ Corrected, version {check.version} ({who}, "
                f"{self.local(check.recorded_at)}): {check.amendment_reason}",
                4,
            )
        for flag in check.flags:
            reasons = "; ".join(flag.reasons)
            lines += wrapped(f"{SEVERITY_ICON[flag.severity]} {flag.rule_name}: {reasons}", 4)
        if check.notes:
            lines += wrapped(f"Notes: {check.notes}", 4)
        return lines

    # pauses and checks not done --------------------------------------------------------------

    def ward_day_section(self) -> Section:
        """Each pause of monitoring, each check not done, each of the flap's own schedules and
        each transfer between wards, in time order."""
        title = "Pauses and checks not done"
        title += "; per-flap schedules" if self.trend.overrides else ""
        title += "; transfers" if self.trend.transfers else ""
        section = Section(title=title)
        entries: list[tuple[datetime, list[str]]] = []
        for pause in self.trend.pauses:
            ended = self.local(pause.ended_at, "%H:%M") if pause.ended_at else "still paused"
            who = self.trend.person(pause.started_by_id)
            text = (
                f"Paused {self.local(pause.started_at)} – {ended}: "
                f"{pause.reason.label.lower()} ({who})"
            )
            if pause.expected_until is not None:
                text += f"; expected back {self.local(pause.expected_until, '%H:%M')}"
            if pause.note:
                text += f". {pause.note}"
            if pause.ended_at is not None:
                text += f". Resumed by {self.trend.person(pause.ended_by_id)}"
                text += f": {pause.end_note}" if pause.end_note else ""
            entries.append((pause.started_at, wrapped(text, 0)))
        for row in self.trend.not_done:
            text = (
                f"Check not done {self.local(row.taken_at)}: {row.reason.label.lower()} "
                f"({self.trend.person(row.recorded_by_id)})"
            )
            if row.note:
                text += f". {row.note}"
            entries.append((row.taken_at, wrapped(text, 0)))
        for override in self.trend.overrides:
            text = (
                f"Per-flap schedule v{override.version} {self.local(override.starts_at)} – "
                f"{self.local(override.in_force_until, '%d %b %H:%M')}: {describe(override)} "
                f"({self.trend.person(override.set_by_id)}). {override.reason}"
            )
            if override.withdrawn_at is not None:
                text += f". Withdrawn {self.local(override.withdrawn_at, '%d %b %H:%M')}"
                text += f": {override.withdraw_note}" if override.withdraw_note else ""
            entries.append((override.starts_at, wrapped(text, 0)))
        for moved_at, before, after in self.trend.transfers:
            entries.append((moved_at, [f"Transferred {before} → {after} {self.local(moved_at)}"]))
        for _, lines in sorted(entries, key=lambda entry: entry[0]):
            section.lines += [Line(line) for line in lines]
        return section

    # escalations and outcome -------------------------------------------------------------------

    def theatre_line(self, theatre: TheatreReturn) -> str:
        when = "%d %b %H:%M"
        decided = self.local(theatre.decided_at, when) if theatre.decided_at else "time unknown"
        text = f"Return to theatre {theatre.number}: decided {decided}"
        text += f" ({self.trend.person(theatre.decided_by_id)})" if theatre.decided_at else ""
        if theatre.escalation is not None:
            flagged = theatre.escalation.opened_at
            text += (
                f" on escalation {theatre.escalation.id}, first flag {self.local(flagged, when)}"
            )
            to_decision = minutes_between(flagged, theatre.decided_at)
            text += f" ({to_decision:g} min to decision)" if to_decision is not None else ""
        knife = theatre.knife_to_skin_at
        text += f"; knife to skin {self.local(knife, when)}" if knife else "; knife to skin —"
        if knife is not None and theatre.escalation is not None:
            text += f" ({minutes_between(theatre.escalation.opened_at, knife):g} min from flag)"
        findings = theatre.findings.label.lower() if theatre.findings else "—"
        text += f"; findings: {findings}"
        text += f" ({theatre.findings_note})" if theatre.findings_note else ""
        text += f"; result: {theatre.result.label.lower() if theatre.result else '—'}"
        return text + (f". {theatre.provenance}" if theatre.provenance else "")

    def escalations_section(self) -> Section:
        s = self.subject
        section = Section(title="Escalations and outcome")
        outcome = f"Flap status: {s.status.label}"
        if s.status_changed_at is not None:
            outcome += f" (since {self.local(s.status_changed_at, '%d %b %Y %H:%M')})"
        section.lines.append(Line(outcome, mono=False, size=9, weight="bold"))
        final = self.trend.final_outcome
        if final is not None and final.final_outcome is not None:
            text = f"Final outcome: {final.final_outcome.label}"
            if final.final_outcome_on is not None:
                text += f", {final.final_outcome_on:%d %b %Y}"
            text += f" ({self.trend.person(final.final_outcome_by_id)})"
            text += f". {final.final_outcome_note}" if final.final_outcome_note else ""
            section.lines += [Line(line, mono=False, size=9, weight="bold")
                              for line in wrapped(text, 0)]  # fmt: skip
        for theatre in self.trend.theatre_returns:
            section.lines += [Line(line) for line in wrapped(self.theatre_line(theatre), 0)]
        section.lines.append(
            Line(
                f"Surgeon {s.surgeon} · surgery ended "
                f"{self.local(s.surgery_end_at, '%d %b %Y %H:%M')} · "
                f"{s.flap_kind.label} · {s.side.label}"
                + (" · buried (no skin paddle)" if s.buried else ""),
                mono=False,
                size=8,
                color=MUTED,
            )
        )
        if not self.trend.escalations:
            section.lines.append(Line("No escalations.", mono=False, size=8, space_before=0.15))
        for escalation in self.trend.escalations:
            section.lines += self.escalation_lines(escalation)
        return section

    def escalation_lines(self, escalation: Escalation) -> list[Line]:
        icon = SEVERITY_ICON[escalation.severity]
        color = RED if escalation.severity == Severity.RED else INK
        state = "closed" if escalation.closed_at is not None else "open"
        lines = [
            Line(
                f"{icon} {escalation.severity.label.upper()} escalation #{escalation.id}, "
                f"opened {self.local(escalation.opened_at)} — {state}",
                mono=False,
                size=9,
                weight="bold",
                color=color,
                space_before=0.2,
            )
        ]
        if escalation.acknowledged_at is not None:
            waited = int((escalation.acknowledged_at - escalation.opened_at).total_seconds() // 60)
            outcome = escalation.outcome.label if escalation.outcome else "—"
            lines.append(
                Line(
                    f"Acknowledged {self.local(escalation.acknowledged_at)} by "
                    f"{self.trend.person(escalation.acknowledged_by_id)}, {waited} min after "
                    f"opening: {outcome}",
                    mono=False,
                    size=8,
                )
            )
        elif escalation.closed_at is None:
            lines.append(Line("Not acknowledged.", mono=False, size=8, color=RED))
        lines.append(Line("Timeline:", mono=False, size=8, weight="bold", space_before=0.05))
        for event in escalation.events:
            severity = f" {SEVERITY_ICON[event.severity]}" if event.severity else ""
            who = self.trend.person(event.actor_id)
            text = f"{self.local(event.at)}  {event.kind.label}{severity} — {who}"
            lines += [Line(part) for part in wrapped(text, 2)]
            for rule, findings in reasons_by_rule(event.reasons):
                said = f"{rule}: {'; '.join(findings)}" if rule else "; ".join(findings)
                lines += [Line(part, color=MUTED) for part in wrapped(said, 6)]
        if escalation.note:
            lines += [Line(part) for part in wrapped(f"Surgeon's note: {escalation.note}", 2)]
        return lines


def wrapped(text: str, indent: int) -> list[str]:
    return textwrap.wrap(
        text,
        width=TABLE_CHARS,
        initial_indent=" " * indent,
        subsequent_indent=" " * (indent + 2),
    ) or [" " * indent]


def flap_report(trend: Trend, *, generated_at: datetime, generated_by: str) -> bytes:
    """The report as PDF bytes."""
    report = _Report(trend, generated_at, generated_by)
    s = trend.subject
    # TrueType (42) rather than Type 3 fonts: the PDF's text can be searched and copied.
    with rc_context({**RC, "pdf.fonttype": 42}):
        return as_pdf(
            report.pages(),
            {
                "Title": f"Flap monitoring report: {s.patient_name} ({s.mrn}), {s.procedure}",
                "Author": generated_by,
                "Subject": f"Reconstruction {s.reconstruction_id}",
                "CreationDate": generated_at,
            },
        )
