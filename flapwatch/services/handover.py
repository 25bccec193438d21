"""The shift handover: one page of the ward for the oncoming nurse, each flap with its hours
since surgery, its last 12 hours in words, its open escalation and who is coming, its pauses
and checks not done, its next due time and what the surgeon asked for. Read in a fixed
number of queries however many flaps."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from flapwatch.db import write_transaction
from flapwatch.domain.handover import HANDOVER_HOURS, SIGNS, Observation, trend_in_words
from flapwatch.domain.vocabulary import EscalationEventKind
from flapwatch.models import (
    Check,
    CheckNotDone,
    Escalation,
    EscalationEvent,
    MonitoringPause,
    User,
)
from flapwatch.services import Actor
from flapwatch.services.audit import record_event
from flapwatch.services.monitoring import describe
from flapwatch.services.patients import IN_CHUNKS
from flapwatch.services.ward import FlapStatus, WardBoard, ward_board

# A surgeon's word on an escalation stays in the handover for a day: the night's instruction
# is still what the day shift follows.
INSTRUCTIONS_HOURS = 24
SAID = (EscalationEventKind.ACKNOWLEDGED, EscalationEventKind.ATTENDING)


@dataclass(frozen=True)
class HandoverFlap:
    status: FlapStatus
    trend: list[str]
    not_done: list[CheckNotDone]  # in the window, oldest first
    pauses: list[MonitoringPause]  # in force during the window, oldest first
    asked: list[str]  # what the surgeon asked for, oldest first

    @property
    def bed_order(self) -> tuple[int, str]:
        bed = self.status.patient.bed or ""
        return (0, f"{int(bed):06d}") if bed.isdigit() else (1, bed or "~")


@dataclass(frozen=True)
class Handover:
    board: WardBoard
    flaps: list[HandoverFlap]  # by bed
    since: datetime

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.board.unit.timezone)


def handover(session: Session, actor: Actor, unit_code: str, now: datetime) -> Handover:
    board = ward_board(session, actor, unit_code, now)
    zone = ZoneInfo(board.unit.timezone)
    since = now - timedelta(hours=HANDOVER_HOURS)
    ids = [flap.reconstruction.id for flap in board.flaps]
    observed: dict[int, list[Observation]] = defaultdict(list)
    not_done: dict[int, list[CheckNotDone]] = defaultdict(list)
    pauses: dict[int, list[MonitoringPause]] = defaultdict(list)
    asked: dict[int, list[tuple[datetime, str]]] = defaultdict(list)
    for offset in range(0, len(ids), IN_CHUNKS):
        chunk = ids[offset : offset + IN_CHUNKS]
        for check in session.scalars(
            select(Check)
            .where(
                Check.reconstruction_id.in_(chunk),
                Check.current(),
                Check.entered_in_error.is_(False),
                Check.taken_at >= since,
                Check.taken_at <= now,
            )
            .order_by(Check.taken_at, Check.id)
        ):
            observed[check.reconstruction_id].append(
                Observation(
                    taken_at=check.taken_at,
                    signs={field: getattr(check, field) for field, _ in SIGNS},
                    measures={
                        "temperature_difference_c": check.temperature_difference_c,
                        "sto2_percent": check.sto2_percent,
                    },
                    severity=check.severity.value if check.severity else None,
                    from_device=check.from_device,
                )
            )
        for row in session.scalars(
            select(CheckNotDone)
            .where(CheckNotDone.reconstruction_id.in_(chunk), CheckNotDone.taken_at >= since)
            .order_by(CheckNotDone.taken_at)
        ):
            not_done[row.reconstruction_id].append(row)
        for pause in session.scalars(
            select(MonitoringPause)
            .where(
                MonitoringPause.reconstruction_id.in_(chunk),
                or_(MonitoringPause.ended_at.is_(None), MonitoringPause.ended_at >= since),
            )
            .order_by(MonitoringPause.started_at)
        ):
            pauses[pause.reconstruction_id].append(pause)
        # What the surgeons said: each acknowledgement and "I'm coming" with its words.
        for event, reconstruction_id, who in session.execute(
            select(EscalationEvent, Escalation.reconstruction_id, User.display_name)
            .join(Escalation, Escalation.id == EscalationEvent.escalation_id)
            .outerjoin(User, User.id == EscalationEvent.actor_id)
            .where(
                Escalation.reconstruction_id.in_(chunk),
                EscalationEvent.kind.in_(SAID),
                EscalationEvent.at >= now - timedelta(hours=INSTRUCTIONS_HOURS),
            )
            .order_by(EscalationEvent.at, EscalationEvent.id)
        ):
            words = "; ".join(event.reasons)
            asked[reconstruction_id].append(
                (event.at, f"{event.at.astimezone(zone):%H:%M} {who or 'flapwatch'}: {words}")
            )
    flaps = []
    for flap in board.flaps:
        flap_id = flap.reconstruction.id
        instructions = [text for _, text in sorted(asked[flap_id])]
        for override in flap.overrides:
            instructions.append(
                f"Own schedule {override.starts_at.astimezone(zone):%d %b %H:%M}–"
                f"{override.in_force_until.astimezone(zone):%H:%M}: {describe(override)}. "
                f"{override.reason}"
            )
        flaps.append(
            HandoverFlap(
                status=flap,
                trend=trend_in_words(observed[flap_id], now, zone),
                not_done=not_done[flap_id],
                pauses=pauses[flap_id],
                asked=instructions,
            )
        )
    flaps.sort(key=lambda f: f.bed_order)
    return Handover(board=board, flaps=flaps, since=since)


def record_handover_print(session: Session, actor: Actor, printed: Handover) -> None:
    """The handover left the screen on paper: which ward's, with which flaps, for whom."""
    with write_transaction(session):
        record_event(
            session,
            actor,
            "handover.print",
            "unit",
            printed.board.unit.id,
            after={"reconstructions": [f.status.reconstruction.id for f in printed.flaps]},
        )
