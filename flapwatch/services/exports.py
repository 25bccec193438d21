"""What an auditor exports: checks, corrections, escalations and the audit trail, row by row.

Rows are read from the database in batches (a server-side cursor on PostgreSQL) and handed
on one at a time, so an export of a million checks holds a batch in memory, never the whole
table. Every export is itself an audit event, written before the first row leaves.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session, aliased

from flapwatch.db import write_transaction
from flapwatch.domain.checks import CheckValues, is_late_entry, temperature_difference
from flapwatch.domain.episodes import Episode, episodes_of
from flapwatch.domain.vocabulary import EscalationEventKind
from flapwatch.exports import fhir
from flapwatch.exports.fhir import Terminology
from flapwatch.models import (
    AuditEvent,
    Check,
    CheckFlag,
    CheckNotDone,
    Escalation,
    EscalationEvent,
    EscalationPage,
    Patient,
    PatientStay,
    Photo,
    Reconstruction,
    RuleSetVersion,
    Unit,
    User,
)
from flapwatch.services import Actor, InvalidInput, require_role
from flapwatch.services.audit import record_event
from flapwatch.services.patients import IN_CHUNKS
from flapwatch.services.ward import get_unit_by_code

EXPORT_ROLES = ("auditor", "admin")
KINDS = ("checks", "amendments", "escalations", "not_done", "audit")
BATCH = 1000

VALUE_FIELDS = tuple(name for name in CheckValues.__dataclass_fields__ if name != "taken_at")

# The documented columns of each export, in order (README "Exports").
COLUMNS: dict[str, tuple[str, ...]] = {
    "checks": (
        "check_id",
        "version",
        "amended",
        "amends_id",
        "entered_in_error",
        "unit",
        "patient_mrn",
        "reconstruction_id",
        "taken_at",
        "taken_by",
        "first_recorded_at",
        "recorded_at",
        "recorded_by",
        "late_entry",
        "source",
        "device",
        *VALUE_FIELDS[:3],  # colour, flap and control temperatures
        "temperature_difference_c",
        *VALUE_FIELDS[3:],
        "severity",
        "flags",
        "rule_set_version",
        "photos",
    ),
    "amendments": (
        "check_id",
        "amends_id",
        "version",
        "amended_at",
        "amended_by",
        "reason",
        "entered_in_error",
        "unit",
        "patient_mrn",
        "reconstruction_id",
        "taken_at",
        "changes",
        "flags_before",
        "flags_after",
    ),
    # A row per episode (each wait for a surgeon: domain/episodes.py), as the compliance
    # report counts them; the escalation's own columns repeat on each of its rows.
    "escalations": (
        "escalation_id",
        "episode",
        "unit",
        "patient_mrn",
        "reconstruction_id",
        "severity",
        "status",
        "opened_at",
        "opened_by_check_id",
        "flagged_at",
        "acknowledged_at",
        "minutes_to_acknowledge",
        "attending_at",
        "minutes_to_attending",
        "decided_at",
        "minutes_to_decision",
        "highest_level",
        "acknowledged_by",
        "outcome",
        "note",
        "closed_at",
        "closed_by",
        "reasons",
    ),
    "not_done": (
        "not_done_id",
        "unit",
        "patient_mrn",
        "reconstruction_id",
        "taken_at",
        "recorded_at",
        "recorded_by",
        "reason",
        "note",
        "photos",
    ),
    "audit": (
        "event_id",
        "at",
        "actor_username",
        "actor_role",
        "action",
        "object_type",
        "object_id",
        "before",
        "after",
        "request_id",
        "client_address",
        "previous_hash",
        "hash",
    ),
}


@dataclass(frozen=True)
class ExportScope:
    """A unit (or every unit) and a period: [start, end) in UTC, either end open."""

    unit: Unit | None
    start: datetime | None
    end: datetime | None
    first_day: date | None
    last_day: date | None

    def describe(self) -> dict[str, Any]:
        return {
            "unit": self.unit.code if self.unit else None,
            "from": self.first_day.isoformat() if self.first_day else None,
            "to": self.last_day.isoformat() if self.last_day else None,
        }


def export_scope(
    session: Session,
    actor: Actor,
    kind: str,
    unit_code: str | None,
    first_day: date | None,
    last_day: date | None,
) -> ExportScope:
    """Days are whole days on the unit's clock (UTC without a unit), both ends included."""
    require_role(actor, *EXPORT_ROLES)
    problems: dict[str, str] = {}
    if kind not in KINDS:
        problems["kind"] = f"Export one of: {', '.join(KINDS)}."
    if kind == "audit" and unit_code:
        problems["unit"] = (
            "The audit trail is exported whole for a period: its events are of accounts, rule "
            "sets and units as well as patients. Leave out the unit."
        )
    if first_day and last_day and first_day > last_day:
        problems["to"] = "The last day must not be before the first."
    if problems:
        raise InvalidInput("Nothing was exported.", problems)
    unit = get_unit_by_code(session, actor, unit_code) if unit_code else None
    zone = ZoneInfo(unit.timezone) if unit else UTC
    return ExportScope(
        unit=unit,
        start=datetime.combine(first_day, time(0), zone).astimezone(UTC) if first_day else None,
        end=(
            datetime.combine(last_day + timedelta(days=1), time(0), zone).astimezone(UTC)
            if last_day
            else None
        ),
        first_day=first_day,
        last_day=last_day,
    )


def record_export(
    session: Session,
    actor: Actor,
    kind: str,
    fmt: str,
    scope: ExportScope,
    *,
    pseudonymised: bool = False,
    with_notes: bool = False,
) -> None:
    """An export is records leaving the system: who took what, before the first row leaves."""
    research = {"pseudonymised": True, "with_notes": with_notes} if pseudonymised else {}
    with write_transaction(session):
        record_event(
            session,
            actor,
            f"export.{kind}",
            "export",
            None,
            after={"kind": kind, "format": fmt, **scope.describe(), **research},
        )


def workbook_sheets(
    session: Session, scope: ExportScope
) -> Iterator[tuple[str, tuple[str, ...], Iterator[dict[str, Any]]]]:
    """The workbook's sheets: every export, the audit trail only when no unit is chosen (the
    trail is not divided by unit)."""
    for kind in KINDS:
        if kind == "audit" and scope.unit is not None:
            continue
        yield kind, COLUMNS[kind], rows(session, kind, scope)


def rows(session: Session, kind: str, scope: ExportScope) -> Iterator[dict[str, Any]]:
    """The export's rows as dicts of its COLUMNS, streamed."""
    return {
        "checks": _check_rows,
        "amendments": _amendment_rows,
        "escalations": _escalation_rows,
        "not_done": _not_done_rows,
        "audit": _audit_rows,
    }[kind](session, scope)


def _not_done_rows(session: Session, scope: ExportScope) -> Iterator[dict[str, Any]]:
    """Each check not done in the period, oldest first."""
    query = (
        _with_flap(
            select(
                CheckNotDone.id,
                Unit.code,
                Unit.timezone,
                Patient.mrn,
                CheckNotDone.reconstruction_id,
                CheckNotDone.taken_at,
                CheckNotDone.recorded_at,
                User.username,
                CheckNotDone.reason,
                CheckNotDone.note,
            ),
            CheckNotDone,
        )
        .join(User, User.id == CheckNotDone.recorded_by_id)
        .order_by(CheckNotDone.taken_at, CheckNotDone.id)
    )
    photos = _photos_by_record(session, scope, "not_done_id")
    for row in _streamed(session, _in_period(query, CheckNotDone.taken_at, scope)):
        (row_id, unit, timezone, mrn, flap_id, taken_at, recorded_at, who, reason, note) = row
        zone = _zone(timezone)
        yield {
            "not_done_id": row_id,
            "unit": unit,
            "patient_mrn": mrn,
            "reconstruction_id": flap_id,
            "taken_at": _local(taken_at, zone),
            "recorded_at": _local(recorded_at, zone),
            "recorded_by": who,
            "reason": reason,
            "note": note,
            "photos": photos.get(row_id, ""),
        }


def _photos_by_record(session: Session, scope: ExportScope, owner: str) -> dict[int, str]:
    """Each check's (or check not done's) photos in the period, not hidden: "id:SHA-256" of
    each display JPEG, space-separated, by the record's id (a check's first version)."""
    column = getattr(Photo, owner)
    query = (
        _with_flap(select(column, Photo.id, Photo.display_sha256), Photo)
        .where(column.is_not(None), Photo.hidden_at.is_(None))
        .order_by(Photo.id)
    )
    found: dict[int, list[str]] = defaultdict(list)
    for record_id, photo_id, sha256 in session.execute(_in_period(query, Photo.taken_at, scope)):
        found[record_id].append(f"{photo_id}:{sha256}")
    return {record_id: " ".join(entries) for record_id, entries in found.items()}


def _streamed(session: Session, query: Select[Any]) -> Iterator[Any]:
    result = session.execute(query.execution_options(yield_per=BATCH, stream_results=True))
    with result:
        yield from result


def _in_period(query: Select[Any], column: Any, scope: ExportScope) -> Select[Any]:
    if scope.start is not None:
        query = query.where(column >= scope.start)
    if scope.end is not None:
        query = query.where(column < scope.end)
    if scope.unit is not None:
        query = query.where(Unit.id == scope.unit.id)
    return query


def _flags_of(check: Any) -> Any:
    return (
        select(func.aggregate_strings(CheckFlag.rule_id, " "))
        .where(CheckFlag.check_id == check.id)
        .scalar_subquery()
    )


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _local(moment: datetime | None, zone: ZoneInfo) -> datetime | None:
    return moment.astimezone(zone) if moment is not None else None


def _flags(text: str | None) -> str:
    return " ".join(sorted((text or "").split()))


_CHECK_COLUMNS = (
    Check.id,
    Check.version,
    Check.amends_id,
    Check.entered_in_error,
    Unit.code,
    Unit.timezone,
    Patient.mrn,
    Check.reconstruction_id,
    Check.taken_at,
    Check.first_recorded_at,
    Check.recorded_at,
    User.username,
    *(getattr(Check, name) for name in VALUE_FIELDS),
    Check.severity,
    RuleSetVersion.version,
    Check.source,
    Check.device,
)
# Who took each check (its first version's recorder), beside who wrote its current version.
_TAKER = aliased(User)


def _with_flap(query: Select[Any], record: Any = Check, at: Any = None) -> Select[Any]:
    """The record's flap, patient and the ward the patient was on at `at` (the record's own
    time: `taken_at`, or an escalation's `opened_at`): what a ward did before a transfer stays
    that ward's in its exports. A patient from before stays were kept is on their ward."""
    moment = at if at is not None else record.taken_at
    stay = aliased(PatientStay)
    return (
        query.join(Reconstruction, Reconstruction.id == record.reconstruction_id)
        .join(Patient, Patient.id == Reconstruction.patient_id)
        .outerjoin(
            stay,
            and_(
                stay.patient_id == Patient.id,
                or_(stay.started_at.is_(None), stay.started_at <= moment),
                or_(stay.ended_at.is_(None), stay.ended_at > moment),
            ),
        )
        .join(Unit, Unit.id == func.coalesce(stay.unit_id, Patient.unit_id))
    )


def _check_rows(session: Session, scope: ExportScope) -> Iterator[dict[str, Any]]:
    """Each check's current version taken in the period, oldest first."""
    query = (
        _with_flap(select(*_CHECK_COLUMNS, _flags_of(Check), _TAKER.username))
        .join(User, User.id == Check.recorded_by_id)
        .outerjoin(_TAKER, _TAKER.id == Check.taken_by_id)
        .outerjoin(RuleSetVersion, RuleSetVersion.id == Check.rule_set_version_id)
        .where(Check.current())
        .order_by(Check.taken_at, Check.id)
    )
    roots = _first_versions(session)
    photos = _photos_by_record(session, scope, "check_id")
    for row in _streamed(session, _in_period(query, Check.taken_at, scope)):
        (check_id, version, amends_id, in_error, unit, timezone, mrn, flap_id, taken_at,
         first_recorded_at, recorded_at, recorded_by, *rest) = row  # fmt: skip
        values = dict(zip(VALUE_FIELDS, rest[: len(VALUE_FIELDS)], strict=True))
        severity, rule_version, source, device, flags, taken_by = rest[len(VALUE_FIELDS) :]
        zone = _zone(timezone)
        difference = temperature_difference(
            values["flap_temperature_c"], values["control_temperature_c"]
        )
        yield {
            "check_id": check_id,
            "version": version,
            "amended": version > 1,
            "amends_id": amends_id,
            "entered_in_error": in_error,
            "unit": unit,
            "patient_mrn": mrn,
            "reconstruction_id": flap_id,
            "taken_at": _local(taken_at, zone),
            "taken_by": taken_by,
            "first_recorded_at": _local(first_recorded_at, zone),
            "recorded_at": _local(recorded_at, zone),
            "recorded_by": recorded_by,
            "late_entry": is_late_entry(taken_at, first_recorded_at),
            "source": source,
            "device": device,
            **values,
            "temperature_difference_c": difference,
            "severity": severity,
            "flags": _flags(flags),
            "rule_set_version": rule_version,
            "photos": photos.get(_root(roots, check_id), ""),
        }


def _amendment_rows(session: Session, scope: ExportScope) -> Iterator[dict[str, Any]]:
    """Every correction made in the period: what changed, who, why, and the flags before and
    after."""
    before = aliased(Check)
    compared = ("taken_at", *VALUE_FIELDS)
    query = (
        _with_flap(
            select(
                Check.id,
                Check.amends_id,
                Check.version,
                Check.recorded_at,
                User.username,
                Check.amendment_reason,
                Check.entered_in_error,
                Unit.code,
                Unit.timezone,
                Patient.mrn,
                Check.reconstruction_id,
                *(getattr(Check, name) for name in compared),
                *(getattr(before, name) for name in compared),
                _flags_of(before),
                _flags_of(Check),
            )
        )
        .join(before, before.id == Check.amends_id)
        .join(User, User.id == Check.recorded_by_id)
        .order_by(Check.recorded_at, Check.id)
    )
    width = len(compared)
    for row in _streamed(session, _in_period(query, Check.recorded_at, scope)):
        (check_id, amends_id, version, amended_at, amended_by, reason, in_error, unit,
         timezone, mrn, flap_id, *rest) = row  # fmt: skip
        after, earlier = rest[:width], rest[width : 2 * width]
        flags_before, flags_after = rest[2 * width :]
        zone = ZoneInfo(timezone)
        changes = [
            f"{name}: {_shown(old, zone)} → {_shown(new, zone)}"
            for name, old, new in zip(compared, earlier, after, strict=True)
            if old != new
        ]
        yield {
            "check_id": check_id,
            "amends_id": amends_id,
            "version": version,
            "amended_at": _local(amended_at, zone),
            "amended_by": amended_by,
            "reason": reason,
            "entered_in_error": in_error,
            "unit": unit,
            "patient_mrn": mrn,
            "reconstruction_id": flap_id,
            "taken_at": _local(after[0], zone),
            "changes": "; ".join(changes),
            "flags_before": _flags(flags_before),
            "flags_after": "" if in_error else _flags(flags_after),
        }


def _shown(value: Any, zone: ZoneInfo) -> str:
    if value is None:
        return "—"
    if isinstance(value, datetime):
        return value.astimezone(zone).isoformat()
    return str(getattr(value, "value", value))


def _escalation_rows(session: Session, scope: ExportScope) -> Iterator[dict[str, Any]]:
    """Escalations opened in the period, a row for each of their episodes: its waits for
    the first answer, "I'm coming" and the decision, and the escalation's outcome."""
    acknowledger, closer = aliased(User), aliased(User)
    query = (
        _with_flap(
            select(
                Escalation,
                Unit.code,
                Unit.timezone,
                Patient.mrn,
                acknowledger.username,
                closer.username,
            ),
            Escalation,
            Escalation.opened_at,
        )
        .outerjoin(acknowledger, acknowledger.id == Escalation.acknowledged_by_id)
        .outerjoin(closer, closer.id == Escalation.closed_by_id)
        .order_by(Escalation.opened_at, Escalation.id)
    )
    batch: list[Any] = []
    for row in _streamed(session, _in_period(query, Escalation.opened_at, scope)):
        batch.append(row)
        session.expunge(row[0])  # a streamed export keeps no rows behind it
        if len(batch) == IN_CHUNKS:
            yield from _episode_rows(session, batch)
            batch = []
    yield from _episode_rows(session, batch)


def _episode_rows(session: Session, batch: list[Any]) -> Iterator[dict[str, Any]]:
    """A batch of escalations' rows, their episodes read in two queries."""
    if not batch:
        return
    episodes: dict[int, list[Episode]] = defaultdict(list)
    for episode in episodes_of_escalations(session, [row[0].id for row in batch]):
        episodes[episode.escalation_id].append(episode)
    for escalation, unit, timezone, mrn, acknowledged_by, closed_by in batch:
        zone = ZoneInfo(timezone)
        common = {
            "escalation_id": escalation.id,
            "unit": unit,
            "patient_mrn": mrn,
            "reconstruction_id": escalation.reconstruction_id,
            "severity": escalation.severity,
            "status": escalation.status,
            "opened_at": _local(escalation.opened_at, zone),
            "opened_by_check_id": escalation.opened_by_check_id,
            "acknowledged_by": acknowledged_by,
            "outcome": escalation.outcome,
            "note": escalation.note,
            "closed_at": _local(escalation.closed_at, zone),
            "closed_by": closed_by,
            "reasons": "; ".join(escalation.reasons),
        }
        for episode in episodes.get(escalation.id) or [None]:
            if episode is None:  # no timeline (never the case since escalations have one)
                yield {**common, "episode": None}
                continue
            yield {
                **common,
                "episode": episode.number,
                "flagged_at": _local(episode.flagged_at, zone),
                "acknowledged_at": _local(episode.acknowledged_at, zone),
                "minutes_to_acknowledge": episode.minutes_to(episode.acknowledged_at),
                "attending_at": _local(episode.attending_at, zone),
                "minutes_to_attending": episode.minutes_to(episode.attending_at),
                "decided_at": _local(episode.decided_at, zone),
                "minutes_to_decision": episode.minutes_to(episode.decided_at),
                "highest_level": episode.highest_level,
            }


def _audit_rows(session: Session, scope: ExportScope) -> Iterator[dict[str, Any]]:
    """The trail's events in the period, in chain order."""
    query = select(*(getattr(AuditEvent, name) for name in _AUDIT_FIELDS)).order_by(AuditEvent.id)
    if scope.start is not None:
        query = query.where(AuditEvent.at >= scope.start)
    if scope.end is not None:
        query = query.where(AuditEvent.at < scope.end)
    for row in _streamed(session, query):
        yield dict(zip(COLUMNS["audit"], row, strict=True))


# The audit export's columns are the event's own fields (its id as event_id).
_AUDIT_FIELDS: Sequence[str] = ("id", *COLUMNS["audit"][1:])


# --- FHIR ----------------------------------------------------------------------------------------


def fhir_resources(session: Session, scope: ExportScope, terms: Terminology) -> Iterator[dict]:
    """The resources of the FHIR Bundle, streamed: the local code system; each patient with
    their flaps; an Observation per check taken in the period; a Flag and a DetectedIssue per
    escalation opened in it."""
    yield fhir.code_system(terms)
    roots = _first_versions(session)
    checks_in_scope = _in_period(
        _with_flap(select(Check.reconstruction_id)), Check.taken_at, scope
    ).where(Check.current())
    escalations_in_scope = _in_period(
        _with_flap(select(Escalation.reconstruction_id), Escalation, Escalation.opened_at),
        Escalation.opened_at,
        scope,
    )
    not_done_in_scope = _in_period(
        _with_flap(select(CheckNotDone.reconstruction_id), CheckNotDone),
        CheckNotDone.taken_at,
        scope,
    )
    flaps = (
        select(
            Patient.id.label("patient_id"),
            Patient.mrn,
            Patient.name,
            Patient.date_of_birth,
            Reconstruction.id.label("reconstruction_id"),
            Reconstruction.procedure,
            Reconstruction.flap_kind,
            Reconstruction.site,
            Reconstruction.side,
            Reconstruction.surgery_end_at,
            Reconstruction.surgeon,
            Reconstruction.buried,
            Reconstruction.status,
            Reconstruction.final_outcome,
        )
        .join(Patient, Patient.id == Reconstruction.patient_id)
        .where(
            Reconstruction.id.in_(
                checks_in_scope.union(escalations_in_scope, not_done_in_scope).scalar_subquery()
            )
        )
        .order_by(Patient.id, Reconstruction.id)
    )
    previous_patient = None
    for row in _streamed(session, flaps):
        values = row._asdict()
        if values["patient_id"] != previous_patient:
            previous_patient = values["patient_id"]
            yield fhir.patient(terms, values)
        yield fhir.procedure(terms, values)

    recorder = aliased(User)
    observations = (
        _with_flap(
            select(
                Check.id,
                Check.version,
                Check.entered_in_error,
                Check.amendment_reason,
                Patient.id.label("patient_id"),
                Check.reconstruction_id,
                Check.taken_at,
                Check.first_recorded_at,
                Check.recorded_at,
                recorder.display_name.label("recorded_by"),
                _TAKER.display_name.label("taken_by"),
                *(getattr(Check, name) for name in VALUE_FIELDS),
                Check.severity,
                Check.source,
                Check.device,
                _flags_of(Check).label("flags"),
            )
        )
        .join(recorder, recorder.id == Check.recorded_by_id)
        .outerjoin(_TAKER, _TAKER.id == Check.taken_by_id)
        .where(Check.current())
        .order_by(Check.taken_at, Check.id)
    )
    for row in _streamed(session, _in_period(observations, Check.taken_at, scope)):
        values = row._asdict()
        values["root_id"] = _root(roots, values["id"])
        values["temperature_difference_c"] = temperature_difference(
            values["flap_temperature_c"], values["control_temperature_c"]
        )
        values["flags"] = _flags(values["flags"])
        yield fhir.observation(terms, values)

    not_done = (
        _with_flap(
            select(
                CheckNotDone.id,
                Patient.id.label("patient_id"),
                CheckNotDone.reconstruction_id,
                CheckNotDone.taken_at,
                CheckNotDone.recorded_at,
                recorder.display_name.label("recorded_by"),
                CheckNotDone.reason,
                CheckNotDone.note,
            ),
            CheckNotDone,
        )
        .join(recorder, recorder.id == CheckNotDone.recorded_by_id)
        .order_by(CheckNotDone.taken_at, CheckNotDone.id)
    )
    for row in _streamed(session, _in_period(not_done, CheckNotDone.taken_at, scope)):
        yield fhir.observation_not_done(terms, row._asdict())

    yield from _fhir_photos(session, scope, terms, roots)
    yield from _fhir_escalations(session, scope, terms, roots)


def _fhir_photos(
    session: Session, scope: ExportScope, terms: Terminology, roots: dict[int, int]
) -> Iterator[dict]:
    """Each photo (not hidden) taken with a check or a check not done in the scope."""
    uploader = aliased(User)
    query = (
        _with_flap(
            select(
                Photo.id,
                Photo.check_id,
                Photo.not_done_id,
                Patient.id.label("patient_id"),
                Photo.taken_at,
                Photo.uploaded_at,
                uploader.display_name.label("uploaded_by"),
                Photo.width,
                Photo.height,
                Photo.display_bytes,
                Photo.display_sha256,
            ),
            Photo,
        )
        .join(uploader, uploader.id == Photo.uploaded_by_id)
        .where(Photo.hidden_at.is_(None))
        .order_by(Photo.taken_at, Photo.id)
    )
    for row in _streamed(session, _in_period(query, Photo.taken_at, scope)):
        values = row._asdict()
        if values["check_id"] is not None:
            values["check_id"] = _root(roots, values["check_id"])
        values["url"] = f"{terms.api_base}/photos/{values['id']}"
        yield fhir.media(terms, values)


# The events by which an escalation is raised or joined: a flagged check, or a missed one.
RAISING_EVENTS = (
    EscalationEventKind.OPENED,
    EscalationEventKind.FLAG_ADDED,
    EscalationEventKind.OVERDUE,
)
OVERDUE_RULE = ("overdue", "Check overdue")


def escalation_sources(
    session: Session, escalation_ids: Any
) -> tuple[dict[int, list[int]], dict[int, dict[str, str]]]:
    """What raised each escalation: the checks that opened or joined it, in order, and the
    rules they matched (rule id → name; `overdue` for a missed check)."""
    checks: dict[int, list[int]] = {}
    rules: dict[int, dict[str, str]] = {}
    for escalation_id, check_id, rule_id, rule_name in session.execute(
        select(
            EscalationEvent.escalation_id,
            EscalationEvent.check_id,
            CheckFlag.rule_id,
            CheckFlag.rule_name,
        )
        .outerjoin(CheckFlag, CheckFlag.check_id == EscalationEvent.check_id)
        .where(
            EscalationEvent.escalation_id.in_(escalation_ids),
            EscalationEvent.kind.in_(RAISING_EVENTS),
        )
        .order_by(EscalationEvent.id, CheckFlag.id)
    ):
        named = rules.setdefault(escalation_id, {})
        if check_id is None:  # raised by a missed check
            named.setdefault(*OVERDUE_RULE)
            continue
        implicated = checks.setdefault(escalation_id, [])
        if check_id not in implicated:
            implicated.append(check_id)
        if rule_id is not None:
            named[rule_id] = rule_name
    return checks, rules


def episodes_of_escalations(session: Session, opened: Any) -> list[Episode]:
    """Every wait for a surgeon in the escalations `opened` (ids, or a query of them), with
    the chain's pages: what the compliance report and escalations.csv both count."""
    timeline = session.execute(
        select(EscalationEvent.escalation_id, EscalationEvent.kind, EscalationEvent.at)
        .where(EscalationEvent.escalation_id.in_(opened))
        .order_by(EscalationEvent.escalation_id, EscalationEvent.at, EscalationEvent.id)
    )
    events: dict[int, list[tuple[Any, datetime]]] = defaultdict(list)
    for escalation_id, kind, at in timeline:
        events[escalation_id].append((kind, at))
    pages: dict[int, list[tuple[datetime, int]]] = defaultdict(list)
    for escalation_id, sent_at, level in session.execute(
        select(EscalationPage.escalation_id, EscalationPage.sent_at, EscalationPage.level).where(
            EscalationPage.escalation_id.in_(opened)
        )
    ):
        pages[escalation_id].append((sent_at, level))
    return [
        episode
        for escalation_id, timeline_of in events.items()
        for episode in episodes_of(escalation_id, timeline_of, pages[escalation_id])
    ]


def _first_versions(session: Session) -> dict[int, int]:
    """Each correction's id → the version it corrected (corrections are few: a dict of them)."""
    corrections = select(Check.id, Check.amends_id).where(Check.amends_id.is_not(None))
    return {check_id: amends_id for check_id, amends_id in session.execute(corrections)}


def _root(amends: dict[int, int], check_id: int) -> int:
    while check_id in amends:
        check_id = amends[check_id]
    return check_id


def _fhir_escalations(
    session: Session, scope: ExportScope, terms: Terminology, roots: dict[int, int]
) -> Iterator[dict]:
    opened = _in_period(
        _with_flap(select(Escalation.id), Escalation, Escalation.opened_at),
        Escalation.opened_at,
        scope,
    ).scalar_subquery()
    checks, rules = escalation_sources(session, opened)
    checks = {
        escalation_id: list(dict.fromkeys(_root(roots, check_id) for check_id in check_ids))
        for escalation_id, check_ids in checks.items()
    }
    acknowledger = aliased(User)
    query = (
        _with_flap(
            select(
                Escalation.id.label("escalation_id"),
                Unit.code.label("unit"),
                Patient.id.label("patient_id"),
                Escalation.severity,
                Escalation.reasons,
                Escalation.opened_at,
                Escalation.acknowledged_at,
                acknowledger.display_name.label("acknowledged_by"),
                Escalation.outcome,
                Escalation.closed_at,
            ),
            Escalation,
            Escalation.opened_at,
        )
        .outerjoin(acknowledger, acknowledger.id == Escalation.acknowledged_by_id)
        .order_by(Escalation.opened_at, Escalation.id)
    )
    for row in _streamed(session, _in_period(query, Escalation.opened_at, scope)):
        values = row._asdict()
        values["check_ids"] = checks.get(values["escalation_id"], [])
        values["rules"] = list(rules.get(values["escalation_id"], {}).items())
        yield fhir.flag(terms, values)
        yield fhir.detected_issue(terms, values)
