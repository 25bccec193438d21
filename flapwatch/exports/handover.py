"""The shift handover on A4: the ward's flaps by bed, each as the handover page shows it."""

from __future__ import annotations

import textwrap
from datetime import datetime

from matplotlib import rc_context
from matplotlib.figure import Figure

from flapwatch.charts.drawing import INK, RC, RED
from flapwatch.domain.vocabulary import DueState
from flapwatch.exports.pdf import TABLE_CHARS, TABLE_SIZE, Document, Line, Section, as_pdf
from flapwatch.services.handover import Handover, HandoverFlap

# Larger than the flap report's table: a handover is read standing at the nurses' station.
BODY_SIZE = 7.4
BODY_CHARS = int(TABLE_CHARS * TABLE_SIZE / BODY_SIZE)
HEADING_CHARS = 88  # of 8.5 pt sans-serif across the page


class _Handover(Document):
    def __init__(self, handover: Handover, generated_at: datetime, generated_by: str) -> None:
        super().__init__(handover.zone, generated_at, generated_by)
        self.handover = handover

    @property
    def header(self) -> str:
        unit = self.handover.board.unit
        when = self.local(self.handover.board.now, "%a %d %b %Y %H:%M")
        return f"Shift handover · {unit.name} ({unit.code}) · {when}"

    def pages(self) -> list[Figure]:
        section = Section(title=f"{len(self.handover.flaps)} flaps monitored, by bed")
        for flap in self.handover.flaps:
            section.lines += self.flap_lines(flap)
        if not self.handover.flaps:
            section.lines.append(Line("No flaps are being monitored on this unit.", mono=False))
        return self.numbered(self.paginate(section))

    def flap_lines(self, flap: HandoverFlap) -> list[Line]:
        status = flap.status
        r, patient = status.reconstruction, status.patient
        title = (
            f"Bed {patient.bed or '—'} · {patient.name} ({patient.mrn}) · {r.procedure}, "
            f"{r.site} · {status.hours_since_surgery:.0f} h post-op"
        )
        lines = [
            Line(part, mono=False, size=8.5, weight="bold", space_before=0.12 * (n == 0))
            for n, part in enumerate(textwrap.wrap(title, HEADING_CHARS, break_on_hyphens=False))
        ]

        def say(text: str, color: str | None = None) -> None:
            for part in textwrap.wrap(text, BODY_CHARS, initial_indent="  ",
                                      subsequent_indent="    "):  # fmt: skip
                lines.append(Line(part, color=color or INK, size=BODY_SIZE))

        if status.pause is not None:
            pause = status.pause
            expected = (
                f", expected back {self.local(pause.expected_until, '%H:%M')}"
                if pause.expected_until
                else ""
            )
            say(f"PAUSED — {pause.reason.label.lower()} since "
                f"{self.local(pause.started_at, '%H:%M')}{expected}")  # fmt: skip
        elif status.next_due_at is not None:
            due = self.local(status.next_due_at, "%H:%M")
            say(
                {
                    DueState.OVERDUE: f"Next check OVERDUE since {due}",
                    DueState.DUE: f"Next check due now (since {due})",
                }.get(status.due_state, f"Next check due at {due}"),
                RED if status.due_state == DueState.OVERDUE else None,
            )
        e = status.escalation
        if e is not None:
            state = (
                f"acknowledged {self.local(e.acknowledged_at, '%H:%M')}"
                f" — {e.outcome.label.lower() if e.outcome else ''}"
                if e.acknowledged_at
                else "NOT YET ACKNOWLEDGED"
            )
            coming = (
                f"; {e.attending_by.display_name} coming"
                + (f", expected {self.local(e.attending_expected_at, '%H:%M')}"
                   if e.attending_expected_at else "")
                if e.attending_by is not None else ""
            )  # fmt: skip
            say(f"{e.severity.label} escalation open since {self.local(e.opened_at, '%H:%M')}, "
                f"{state}{coming}", RED)  # fmt: skip
        say("Last 12 h: " + " ".join(flap.trend))
        for row in flap.not_done:
            say(f"Check not done {self.local(row.taken_at, '%H:%M')}: {row.reason.label.lower()}"
                + (f" · {row.note}" if row.note else ""))  # fmt: skip
        for pause in flap.pauses:
            if pause is status.pause:
                continue
            ended = self.local(pause.ended_at, "%H:%M") if pause.ended_at else "now"
            say(f"Paused {self.local(pause.started_at, '%H:%M')}–{ended}: "
                f"{pause.reason.label.lower()}")  # fmt: skip
        for instruction in flap.asked:
            say(f"Surgeon: {instruction}")
        return lines


def handover_pdf(handover: Handover, *, generated_at: datetime, generated_by: str) -> bytes:
    document = _Handover(handover, generated_at, generated_by)
    unit = handover.board.unit
    with rc_context({**RC, "pdf.fonttype": 42}):
        return as_pdf(
            document.pages(),
            {
                "Title": f"Shift handover: {unit.name}",
                "Author": generated_by,
                "Subject": f"Unit {unit.code}",
                "CreationDate": generated_at,
            },
        )
