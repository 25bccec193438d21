"""SQLAlchemy 2 typed models. Field names and enum values follow DESIGN.md §2 exactly."""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import Enum as PyEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    text,
)
from sqlalchemy.orm import Mapped, declared_attr, mapped_column, relationship
from sqlalchemy.sql.elements import ColumnElement

from flapwatch.db import Base as _Base
from flapwatch.db import UTCDateTime
from flapwatch.domain.checks import CheckValues, is_late_entry, temperature_difference
from flapwatch.domain.schedule import SchedulePolicy as SchedulePolicyValue
from flapwatch.domain.schedule import ScheduleWindow
from flapwatch.domain.vocabulary import (
    CapillaryRefill,
    CheckSource,
    Colour,
    DeliveryStatus,
    DopplerArterial,
    DopplerVenous,
    EscalationEventKind,
    EscalationOutcome,
    FinalOutcome,
    FlapKind,
    NotDoneReason,
    OverrideKind,
    PauseReason,
    Pinprick,
    ReconstructionStatus,
    Role,
    Severity,
    Side,
    TheatreFinding,
    TheatreResult,
    Turgor,
)

# Stable constraint names, so Alembic migrations can alter them on SQLite and PostgreSQL.
_Base.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
Base = _Base
metadata: MetaData = Base.metadata


def utcnow() -> datetime:
    return datetime.now(UTC)


def vocabulary(enum: type[PyEnum]) -> Enum:
    """A vocabulary column: plain text with a CHECK constraint (no native enum to migrate)."""
    return Enum(
        enum,
        name=enum.__name__.lower(),
        native_enum=False,
        create_constraint=True,
        length=32,
        validate_strings=True,
        values_callable=lambda members: [m.value for m in members],
    )


user_units = Table(
    "user_units",
    metadata,
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("unit_id", ForeignKey("units.id", ondelete="CASCADE"), primary_key=True),
)


class Unit(Base):
    __tablename__ = "units"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64))
    # Where escalations are POSTed (a paging gateway, say); None: no notifications.
    webhook_url: Mapped[str | None] = mapped_column(String(500))
    # A shared bedside tablet logs its user off after this many minutes without use.
    idle_logoff_minutes: Mapped[int] = mapped_column(Integer, default=10, server_default=text("10"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    patients: Mapped[list[Patient]] = relationship(back_populates="unit")
    schedule_policies: Mapped[list[SchedulePolicy]] = relationship(
        back_populates="unit", order_by="SchedulePolicy.version"
    )

    def __repr__(self) -> str:
        return f"<Unit {self.code}>"


class SchedulePolicy(Base):
    """One version of a unit's monitoring schedule; the highest version is in force."""

    __tablename__ = "schedule_policies"
    __table_args__ = (UniqueConstraint("unit_id", "version", name="uq_schedule_policies_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    bands: Mapped[list[list[int]]] = mapped_column(JSON)
    grace_minutes: Mapped[int] = mapped_column(Integer)
    after_last_band_minutes: Mapped[int] = mapped_column(Integer)
    # How soon the next check falls due after one that could not be done.
    not_done_minutes: Mapped[int] = mapped_column(Integer, default=30, server_default="30")
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    unit: Mapped[Unit] = relationship(back_populates="schedule_policies")

    def as_value(self) -> SchedulePolicyValue:
        return SchedulePolicyValue(
            bands=tuple((int(until), int(interval)) for until, interval in self.bands),
            grace_minutes=self.grace_minutes,
            after_last_band_minutes=self.after_last_band_minutes,
            not_done_minutes=self.not_done_minutes,
        )


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(vocabulary(Role))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    units: Mapped[list[Unit]] = relationship(secondary=user_units, order_by=Unit.code)

    # Flask-Login's user protocol.
    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        return str(self.id)

    @property
    def sees_every_unit(self) -> bool:
        return self.role in (Role.ADMIN, Role.AUDITOR)

    def __repr__(self) -> str:
        return f"<User {self.username} {self.role}>"


class Patient(Base):
    __tablename__ = "patients"

    id: Mapped[int] = mapped_column(primary_key=True)
    mrn: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    date_of_birth: Mapped[date] = mapped_column(Date)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    bed: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    unit: Mapped[Unit] = relationship(back_populates="patients")
    reconstructions: Mapped[list[Reconstruction]] = relationship(
        back_populates="patient", order_by="Reconstruction.surgery_end_at"
    )


class PatientStay(Base):
    """A patient's time on one ward: from `started_at` (None: since they were registered)
    until `ended_at` (None: still there). A transfer ends one stay and starts the next at the
    same moment, so the reports of each ward count what happened in its own stays."""

    __tablename__ = "patient_stays"
    __table_args__ = (Index("ix_patient_stays_patient", "patient_id", "started_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    moved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    note: Mapped[str] = mapped_column(Text, default="")

    unit: Mapped[Unit] = relationship()

    def holds(self, at: datetime) -> bool:
        return (self.started_at is None or self.started_at <= at) and (
            self.ended_at is None or at < self.ended_at
        )


class Reconstruction(Base):
    __tablename__ = "reconstructions"
    __table_args__ = (Index("ix_reconstructions_status_patient", "status", "patient_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    procedure: Mapped[str] = mapped_column(String(200))
    flap_kind: Mapped[FlapKind] = mapped_column(vocabulary(FlapKind))
    site: Mapped[str] = mapped_column(String(200))
    side: Mapped[Side] = mapped_column(vocabulary(Side))
    surgery_end_at: Mapped[datetime] = mapped_column(UTCDateTime)
    surgeon: Mapped[str] = mapped_column(String(200))
    buried: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[ReconstructionStatus] = mapped_column(
        vocabulary(ReconstructionStatus), default=ReconstructionStatus.MONITORING
    )
    status_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Time zero of the schedule when it restarted on the flap's return from theatre (the first
    # band's frequency again); None: the end of surgery.
    time_zero_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # What became of the flap in the end, recorded at discharge or later (apart from the
    # monitoring status and from each return to theatre's result); None: not yet recorded.
    final_outcome: Mapped[FinalOutcome | None] = mapped_column(vocabulary(FinalOutcome))
    final_outcome_on: Mapped[date | None] = mapped_column(Date)
    final_outcome_note: Mapped[str] = mapped_column(Text, default="")
    final_outcome_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    final_outcome_recorded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Whether the patient agreed to photographs of the flap: None not asked (no photos), True
    # agreed, False refused. Who recorded it and when; every change is audited.
    photo_consent: Mapped[bool | None] = mapped_column(Boolean)
    photo_consent_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    photo_consent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    patient: Mapped[Patient] = relationship(back_populates="reconstructions")
    final_outcome_by: Mapped[User | None] = relationship(foreign_keys=[final_outcome_by_id])
    # Its current checks (each check's latest version), newest first; read-only.
    checks: Mapped[list[Check]] = relationship(
        order_by="Check.taken_at.desc()",
        primaryjoin="and_(Reconstruction.id == Check.reconstruction_id, "
        "Check.superseded_by_id.is_(None))",
        viewonly=True,
    )

    @property
    def monitoring(self) -> bool:
        return self.status == ReconstructionStatus.MONITORING

    @property
    def time_zero(self) -> datetime:
        """Where the schedule's bands count from: the end of surgery, or the restart."""
        return self.time_zero_at or self.surgery_end_at

    @property
    def resumed_at(self) -> datetime | None:
        """When monitoring last came back (from theatre, stopped): the next check was due
        then."""
        return self.status_changed_at if self.monitoring else None


class Check(Base):
    __tablename__ = "checks"
    __table_args__ = (Index("ix_checks_reconstruction_taken", "reconstruction_id", "taken_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    reconstruction_id: Mapped[int] = mapped_column(ForeignKey("reconstructions.id"))
    taken_at: Mapped[datetime] = mapped_column(UTCDateTime)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    recorded_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    colour: Mapped[Colour | None] = mapped_column(vocabulary(Colour))
    flap_temperature_c: Mapped[float | None] = mapped_column(Float)
    control_temperature_c: Mapped[float | None] = mapped_column(Float)
    capillary_refill: Mapped[CapillaryRefill | None] = mapped_column(vocabulary(CapillaryRefill))
    capillary_refill_s: Mapped[float | None] = mapped_column(Float)
    doppler_arterial: Mapped[DopplerArterial | None] = mapped_column(vocabulary(DopplerArterial))
    doppler_venous: Mapped[DopplerVenous | None] = mapped_column(vocabulary(DopplerVenous))
    turgor: Mapped[Turgor | None] = mapped_column(vocabulary(Turgor))
    pinprick: Mapped[Pinprick | None] = mapped_column(vocabulary(Pinprick))
    sto2_percent: Mapped[float | None] = mapped_column(Float)
    notes: Mapped[str | None] = mapped_column(Text)
    # A nurse at the bedside, or a named device (a tissue oximeter's gateway) through the API.
    source: Mapped[CheckSource] = mapped_column(
        vocabulary(CheckSource), default=CheckSource.BEDSIDE, server_default="bedside"
    )
    device: Mapped[str | None] = mapped_column(String(100))
    # The rule set version that evaluated this check, and the highest severity it flagged.
    rule_set_version_id: Mapped[int | None] = mapped_column(ForeignKey("rule_set_versions.id"))
    severity: Mapped[Severity | None] = mapped_column(vocabulary(Severity))
    # Amendments. A row is never changed: a correction is a new row (the next version) that
    # names the one it amends, and that one is marked superseded. The flap's record is its
    # current rows; "entered in error" is a version that withdraws the check (wrong patient),
    # shown struck through and left out of every clinical calculation.
    version: Mapped[int] = mapped_column(Integer, default=1, server_default=text("1"))
    amends_id: Mapped[int | None] = mapped_column(ForeignKey("checks.id"))
    superseded_by_id: Mapped[int | None] = mapped_column(ForeignKey("checks.id"))
    entered_in_error: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=text("false")
    )
    amendment_reason: Mapped[str | None] = mapped_column(Text)
    # When the check was first written down: a correction is recorded later, but whether the
    # observation was a late entry is a fact about the first record.
    first_recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Who took the check: its first version's recorder, kept by every correction (each
    # version's `recorded_by` is whoever wrote that version: the corrector of a correction).
    # Set on every row written since migration 0018, which filled it in for the rows before.
    taken_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    reconstruction: Mapped[Reconstruction] = relationship()
    recorded_by: Mapped[User] = relationship(foreign_keys=[recorded_by_id])
    taken_by: Mapped[User | None] = relationship(foreign_keys=[taken_by_id])
    flags: Mapped[list[CheckFlag]] = relationship(
        back_populates="check", order_by="CheckFlag.id", cascade="all, delete-orphan"
    )

    def values(self) -> CheckValues:
        return CheckValues(
            taken_at=self.taken_at,
            colour=self.colour,
            flap_temperature_c=self.flap_temperature_c,
            control_temperature_c=self.control_temperature_c,
            capillary_refill=self.capillary_refill,
            capillary_refill_s=self.capillary_refill_s,
            doppler_arterial=self.doppler_arterial,
            doppler_venous=self.doppler_venous,
            turgor=self.turgor,
            pinprick=self.pinprick,
            sto2_percent=self.sto2_percent,
            notes=self.notes,
        )

    @property
    def temperature_difference_c(self) -> float | None:
        return temperature_difference(self.flap_temperature_c, self.control_temperature_c)

    @property
    def amended(self) -> bool:
        return self.version > 1

    @property
    def late_entry(self) -> bool:
        """Written down long after it was taken: a fact of its first record, not of a later
        correction."""
        return is_late_entry(self.taken_at, self.first_recorded_at)

    @classmethod
    def current(cls) -> ColumnElement[bool]:
        """The latest version of each check (what the flap's record shows)."""
        return cls.superseded_by_id.is_(None)

    @classmethod
    def in_force(cls) -> ColumnElement[bool]:
        """Current and not entered in error: the checks clinical calculations use."""
        return and_(cls.superseded_by_id.is_(None), cls.entered_in_error.is_(False))

    @classmethod
    def on_schedule(cls) -> ColumnElement[bool]:
        """In force and taken at the bedside: the checks that satisfy the monitoring schedule
        (a device's readings are judged by the rules but never stand in for a nurse's look)."""
        return and_(cls.in_force(), cls.source == CheckSource.BEDSIDE)

    @property
    def from_device(self) -> bool:
        return self.source == CheckSource.DEVICE


class RuleSetVersion(Base):
    """One published version of a unit's escalation rule set; the highest is in force."""

    __tablename__ = "rule_set_versions"
    __table_args__ = (UniqueConstraint("unit_id", "version", name="uq_rule_set_versions_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    unit: Mapped[Unit] = relationship()
    created_by: Mapped[User | None] = relationship()


class CheckFlag(Base):
    """One rule that matched a check, with the reasons a nurse reads."""

    __tablename__ = "check_flags"

    id: Mapped[int] = mapped_column(primary_key=True)
    check_id: Mapped[int] = mapped_column(ForeignKey("checks.id"), index=True)
    rule_id: Mapped[str] = mapped_column(String(64))
    rule_name: Mapped[str] = mapped_column(String(200))
    severity: Mapped[Severity] = mapped_column(vocabulary(Severity))
    action: Mapped[str] = mapped_column(Text)
    reasons: Mapped[list[str]] = mapped_column(JSON)

    check: Mapped[Check] = relationship(back_populates="flags")


class Escalation(Base):
    """A worry about one flap that a surgeon must acknowledge; at most one open per flap."""

    __tablename__ = "escalations"
    __table_args__ = (
        Index(
            "uq_escalations_one_open_per_reconstruction",
            "reconstruction_id",
            unique=True,
            sqlite_where=text("closed_at IS NULL"),
            postgresql_where=text("closed_at IS NULL"),
        ),
        Index("ix_escalations_closed_opened", "closed_at", "opened_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    reconstruction_id: Mapped[int] = mapped_column(ForeignKey("reconstructions.id"), index=True)
    severity: Mapped[Severity] = mapped_column(vocabulary(Severity))
    reasons: Mapped[list[str]] = mapped_column(JSON)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    opened_by_check_id: Mapped[int | None] = mapped_column(ForeignKey("checks.id"))
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    outcome: Mapped[EscalationOutcome | None] = mapped_column(vocabulary(EscalationOutcome))
    note: Mapped[str | None] = mapped_column(Text)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # The escalation chain (services/chains.py): its round (one more each time it starts
    # again), when the round started, and the highest level the round has reached.
    chain_round: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    chain_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    chain_level: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    # "I'm coming": who answered that they are on their way, when, and when they expect to
    # be at the bedside. Kept through a later sign (they are still on their way); the
    # decision ends it (the timeline keeps it).
    attending_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    attending_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attending_expected_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # While unacknowledged: the next check falls due `recheck_minutes` after the later of the
    # latest bedside check and `recheck_from` (the flagged check's time): the soonest recheck
    # of the rules that raised it since it was last acknowledged.
    recheck_minutes: Mapped[int | None] = mapped_column(Integer)
    recheck_from: Mapped[datetime | None] = mapped_column(UTCDateTime)

    reconstruction: Mapped[Reconstruction] = relationship()
    acknowledged_by: Mapped[User | None] = relationship(foreign_keys=[acknowledged_by_id])
    attending_by: Mapped[User | None] = relationship(foreign_keys=[attending_by_id])
    events: Mapped[list[EscalationEvent]] = relationship(
        back_populates="escalation", order_by="EscalationEvent.id"
    )

    @property
    def is_open(self) -> bool:
        return self.closed_at is None

    @property
    def attending_now(self) -> bool:
        """Someone said they are coming since the chain last started: the chain waits."""
        return self.attending_at is not None and (
            self.chain_started_at is None or self.attending_at >= self.chain_started_at
        )

    @property
    def answered(self) -> bool:
        """Acknowledged with a decision, or someone is coming for the signs so far."""
        return self.acknowledged_at is not None or self.attending_now

    @property
    def status(self) -> str:
        """open, acknowledged or closed: the API's and the exports' word for its state."""
        if self.closed_at is not None:
            return "closed"
        return "acknowledged" if self.acknowledged_at is not None else "open"


class EscalationEvent(Base):
    """The escalation's timeline: opened, further flags, overdue checks, acknowledged, closed."""

    __tablename__ = "escalation_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    escalation_id: Mapped[int] = mapped_column(ForeignKey("escalations.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    kind: Mapped[EscalationEventKind] = mapped_column(vocabulary(EscalationEventKind))
    severity: Mapped[Severity | None] = mapped_column(vocabulary(Severity))
    check_id: Mapped[int | None] = mapped_column(ForeignKey("checks.id"))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reasons: Mapped[list[str]] = mapped_column(JSON, default=list)

    escalation: Mapped[Escalation] = relationship(back_populates="events")


class _UnitVersion:
    """A numbered version of something a unit keeps, with who published it and why."""

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))
    version: Mapped[int] = mapped_column(Integer)
    note: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    @declared_attr
    def created_by(cls) -> Mapped[User | None]:
        return relationship()


class ContactListVersion(_UnitVersion, Base):
    """A version of a unit's contacts: who an escalation chain can page, and how."""

    __tablename__ = "contact_list_versions"
    __table_args__ = (
        UniqueConstraint("unit_id", "version", name="uq_contact_list_versions_version"),
    )

    definition: Mapped[list[dict[str, Any]]] = mapped_column(JSON)


class EscalationChainVersion(_UnitVersion, Base):
    """A version of a unit's escalation chains: `{"red": [steps], "amber": [steps]}`."""

    __tablename__ = "escalation_chain_versions"
    __table_args__ = (
        UniqueConstraint("unit_id", "version", name="uq_escalation_chain_versions_version"),
    )

    definition: Mapped[dict[str, Any]] = mapped_column(JSON)


class EscalationPage(Base):
    """A step of the chain sent for an escalation: at most once per (round, level)."""

    __tablename__ = "escalation_pages"
    __table_args__ = (
        UniqueConstraint("escalation_id", "round", "level", name="uq_escalation_pages_step"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    escalation_id: Mapped[int] = mapped_column(ForeignKey("escalations.id"))
    # 1 from the opening; one more each time a sign nobody has seen starts the chain again.
    round: Mapped[int] = mapped_column(Integer)
    level: Mapped[int] = mapped_column(Integer)
    severity: Mapped[Severity] = mapped_column(vocabulary(Severity))
    contact: Mapped[str] = mapped_column(String(100))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime)
    chain_version_id: Mapped[int] = mapped_column(ForeignKey("escalation_chain_versions.id"))


class MonitoringPause(Base):
    """A stretch when a flap's monitoring is suspended (in theatre, imaging, off the ward):
    nothing falls due meanwhile, and on resuming the next check is due at once. At most one
    open pause per flap, which the database holds to (a partial unique index)."""

    __tablename__ = "monitoring_pauses"
    __table_args__ = (
        Index(
            "uq_monitoring_pauses_open",
            "reconstruction_id",
            unique=True,
            sqlite_where=text("ended_at IS NULL"),
            postgresql_where=text("ended_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    reconstruction_id: Mapped[int] = mapped_column(ForeignKey("reconstructions.id"))
    reason: Mapped[PauseReason] = mapped_column(vocabulary(PauseReason))
    note: Mapped[str] = mapped_column(Text, default="")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    expected_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    end_note: Mapped[str] = mapped_column(Text, default="")

    started_by: Mapped[User | None] = relationship(foreign_keys=[started_by_id])
    ended_by: Mapped[User | None] = relationship(foreign_keys=[ended_by_id])

    def longer_than_expected(self, now: datetime) -> bool:
        expected = self.expected_until
        return self.ended_at is None and expected is not None and now > expected


class CheckNotDone(Base):
    """A check that fell due and could not be done, with why (patient refused, off the ward):
    kept in the log and the compliance report, never an assessment; the next check falls due
    the unit's `not_done_minutes` after it."""

    __tablename__ = "checks_not_done"
    __table_args__ = (
        Index("ix_checks_not_done_reconstruction_taken", "reconstruction_id", "taken_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    reconstruction_id: Mapped[int] = mapped_column(ForeignKey("reconstructions.id"))
    taken_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reason: Mapped[NotDoneReason] = mapped_column(vocabulary(NotDoneReason))
    note: Mapped[str] = mapped_column(Text, default="")
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    recorded_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))

    recorded_by: Mapped[User] = relationship()


class ScheduleOverride(Base):
    """A surgeon's schedule for one flap over a window, in place of the unit's: checks every
    `interval_minutes` (every 15 minutes for two hours after a worrying sign) or none
    (`omit`: let the patient sleep from 01:00 to 05:00), with the reason.

    Each is a version of the flap's schedule, numbered from 1. Nothing in it is edited: a
    change withdraws it (from that moment, never before) and sets the next version, so the
    schedule in force at any past moment stays what it was then.
    """

    __tablename__ = "schedule_overrides"
    __table_args__ = (
        UniqueConstraint("reconstruction_id", "version", name="uq_schedule_overrides_version"),
        CheckConstraint(
            "(kind = 'interval') = (interval_minutes IS NOT NULL)",
            name="interval",
        ),
        CheckConstraint("ends_at > starts_at", name="window"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    reconstruction_id: Mapped[int] = mapped_column(ForeignKey("reconstructions.id"))
    version: Mapped[int]
    kind: Mapped[OverrideKind] = mapped_column(vocabulary(OverrideKind))
    interval_minutes: Mapped[int | None]
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str] = mapped_column(Text)
    set_at: Mapped[datetime] = mapped_column(UTCDateTime)
    set_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    replaces_id: Mapped[int | None] = mapped_column(ForeignKey("schedule_overrides.id"))
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    withdrawn_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    withdraw_note: Mapped[str] = mapped_column(Text, default="")

    set_by: Mapped[User] = relationship(foreign_keys=[set_by_id])
    withdrawn_by: Mapped[User | None] = relationship(foreign_keys=[withdrawn_by_id])

    @property
    def in_force_until(self) -> datetime:
        """Its end, or its withdrawal if that came first (at its start: never in force)."""
        if self.withdrawn_at is None:
            return self.ends_at
        return max(self.starts_at, min(self.ends_at, self.withdrawn_at))

    @property
    def ever_in_force(self) -> bool:
        return self.in_force_until > self.starts_at

    def holds(self, at: datetime) -> bool:
        return self.starts_at <= at < self.in_force_until

    def as_window(self) -> ScheduleWindow:
        return ScheduleWindow(self.starts_at, self.in_force_until, self.interval_minutes)


class TheatreReturn(Base):
    """One return of the flap to theatre: when it was decided (and by whom, and on which
    escalation), when the knife went to skin, what was found and what came of it.

    Its details come as they are known (the decision on the ward, knife-to-skin from theatre,
    the result after); each change is audited with what it replaced, and `version` refuses a
    change made over one the person had not seen.
    """

    __tablename__ = "theatre_returns"
    __table_args__ = (
        UniqueConstraint("reconstruction_id", "number", name="uq_theatre_returns_number"),
        Index("ix_theatre_returns_reconstruction", "reconstruction_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    reconstruction_id: Mapped[int] = mapped_column(ForeignKey("reconstructions.id"))
    number: Mapped[int]  # the flap's first, second… return
    escalation_id: Mapped[int | None] = mapped_column(ForeignKey("escalations.id"))
    # None only for a return carried over from a status history that did not say when.
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    knife_to_skin_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    findings: Mapped[TheatreFinding | None] = mapped_column(vocabulary(TheatreFinding))
    findings_note: Mapped[str] = mapped_column(Text, default="")
    result: Mapped[TheatreResult | None] = mapped_column(vocabulary(TheatreResult))
    # Where the record came from when it was not recorded as such (migration 0019).
    provenance: Mapped[str] = mapped_column(Text, default="")
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    version: Mapped[int] = mapped_column(default=1)

    escalation: Mapped[Escalation | None] = relationship()
    decided_by: Mapped[User | None] = relationship(foreign_keys=[decided_by_id])


class Photo(Base):
    """A clinical photograph of the flap, taken with a check (or with a check not done).

    What is kept is what `imaging.prepare` made of the camera's file: a display-sized JPEG and
    a thumbnail, stripped of every metadata, with the SHA-256 of each and of the original.
    Their bytes stand in `photo_blobs` (or the deployment's photo directory), never loaded
    with the photo's row. A photo is never deleted: entered in error, it is hidden, with who
    and why. Each is attached to its check's first version, so that a correction keeps it.
    """

    __tablename__ = "photos"
    __table_args__ = (
        Index("ix_photos_reconstruction_taken", "reconstruction_id", "taken_at"),
        # The same photo sent twice with its check (a tablet's retry) is stored once.
        UniqueConstraint("check_id", "original_sha256", name="uq_photos_check_original"),
        UniqueConstraint("not_done_id", "original_sha256", name="uq_photos_not_done_original"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    reconstruction_id: Mapped[int] = mapped_column(ForeignKey("reconstructions.id"))
    check_id: Mapped[int | None] = mapped_column(ForeignKey("checks.id"))
    not_done_id: Mapped[int | None] = mapped_column(ForeignKey("checks_not_done.id"))
    taken_at: Mapped[datetime] = mapped_column(UTCDateTime)  # its check's time
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    uploaded_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    original_format: Mapped[str] = mapped_column(String(10))
    original_bytes: Mapped[int]
    original_sha256: Mapped[str] = mapped_column(String(64))
    original_width: Mapped[int]
    original_height: Mapped[int]
    width: Mapped[int]
    height: Mapped[int]
    display_bytes: Mapped[int]
    display_sha256: Mapped[str] = mapped_column(String(64))
    thumbnail_bytes: Mapped[int]
    thumbnail_sha256: Mapped[str] = mapped_column(String(64))
    # "database" (photo_blobs) or "directory" (the deployment's PHOTO_DIRECTORY).
    storage: Mapped[str] = mapped_column(String(10))
    hidden_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    hidden_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    hidden_reason: Mapped[str] = mapped_column(Text, default="")

    uploaded_by: Mapped[User] = relationship(foreign_keys=[uploaded_by_id])

    @property
    def hidden(self) -> bool:
        return self.hidden_at is not None

    def sha256_of(self, variant: str) -> str:
        return self.display_sha256 if variant == "display" else self.thumbnail_sha256

    def bytes_of(self, variant: str) -> int:
        return self.display_bytes if variant == "display" else self.thumbnail_bytes


class PhotoBlob(Base):
    """A photo's bytes, one row a rendition ("display", "thumbnail"): a table of its own, read
    in pieces when a photo is served. Never changed, never deleted (the database refuses)."""

    __tablename__ = "photo_blobs"

    photo_id: Mapped[int] = mapped_column(ForeignKey("photos.id"), primary_key=True)
    variant: Mapped[str] = mapped_column(String(10), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class MissedCheck(Base):
    """A scheduled check that was not done by its due time plus grace.

    Unique per (flap, due time), so the overdue sweep can run in every app process at once
    and still record each missed check exactly once.
    """

    __tablename__ = "missed_checks"
    __table_args__ = (UniqueConstraint("reconstruction_id", "due_at", name="uq_missed_checks_due"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    reconstruction_id: Mapped[int] = mapped_column(ForeignKey("reconstructions.id"))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    detected_at: Mapped[datetime] = mapped_column(UTCDateTime)
    escalation_id: Mapped[int | None] = mapped_column(ForeignKey("escalations.id"))


class NotificationDelivery(Base):
    """One escalation notice to a unit's webhook, retried with backoff until delivered."""

    __tablename__ = "notification_deliveries"
    __table_args__ = (Index("ix_notification_deliveries_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    escalation_id: Mapped[int] = mapped_column(ForeignKey("escalations.id"), index=True)
    event: Mapped[str] = mapped_column(String(32))
    url: Mapped[str] = mapped_column(String(500))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[DeliveryStatus] = mapped_column(vocabulary(DeliveryStatus))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    channel: Mapped[str] = mapped_column(String(16), default="webhook", server_default="webhook")
    # A step of the escalation chain: its level and the contact paged; None for the notices
    # to the unit's own webhook.
    level: Mapped[int | None] = mapped_column(Integer)
    target: Mapped[str | None] = mapped_column(String(100))


class LiveEvent(Base):
    """What changed on a unit, for the pages that show it live (services/live.py): written in
    the transaction that made the change, so a page is told of nothing that did not commit and
    misses nothing that did. Its id is the event stream's id; kept an hour for reconnecting
    pages to catch up."""

    __tablename__ = "live_events"
    __table_args__ = (Index("ix_live_events_unit_id_id", "unit_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class PushSubscription(Base):
    """A phone or browser where a user turned on notifications (the Push API's subscription):
    its push service's endpoint and the keys its notifications are encrypted to. Ended when
    the user turns them off or the push service says the subscription is gone."""

    __tablename__ = "push_subscriptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    endpoint: Mapped[str] = mapped_column(String(1000), unique=True)
    p256dh: Mapped[str] = mapped_column(String(200))
    auth: Mapped[str] = mapped_column(String(100))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_reason: Mapped[str | None] = mapped_column(Text)

    user: Mapped[User] = relationship()


class NotificationAttempt(Base):
    """Every try at a delivery, kept for the audit of who was told and when."""

    __tablename__ = "notification_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("notification_deliveries.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int] = mapped_column(Integer)


class AuditEvent(Base):
    """Append-only record of every change; each event carries the hash of the one before."""

    __tablename__ = "audit_events"
    # audit-verify finds each check's record by its object id; log-in throttling counts the
    # recent failures of an account and of an address.
    __table_args__ = (
        Index("ix_audit_events_object", "object_type", "object_id", "action"),
        Index("ix_audit_events_login_account", "action", "actor_username", "at"),
        Index("ix_audit_events_login_address", "action", "client_address", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    actor_username: Mapped[str] = mapped_column(String(64))
    actor_role: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(64), index=True)
    object_type: Mapped[str] = mapped_column(String(64))
    object_id: Mapped[str | None] = mapped_column(String(64))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    request_id: Mapped[str | None] = mapped_column(String(64))
    client_address: Mapped[str | None] = mapped_column(String(64))
    previous_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditChainHead(Base):
    """The single row that writers lock to append to the audit chain one at a time."""

    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    last_hash: Mapped[str] = mapped_column(String(64))
    event_count: Mapped[int] = mapped_column(Integer, default=0)


class LoginSession(Base):
    """One log-in on one browser, from log-in to log-out. The session cookie carries a random
    token whose SHA-256 is kept here: ending the row ends the log-in wherever the cookie is."""

    __tablename__ = "login_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # user, switch, idle (README "The bedside tablet"), password, deactivated
    end_reason: Mapped[str | None] = mapped_column(String(16))


class ApiToken(Base):
    """A bearer token for the JSON API, acting as its user. Only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    # The token's first characters, so a list of tokens can say which is which.
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_by: Mapped[str | None] = mapped_column(String(64))

    user: Mapped[User] = relationship()


class IdempotencyRecord(Base):
    """The first successful answer to a POST sent with an Idempotency-Key, for its retries.

    Written in the same transaction as what the request stored, so a retry either finds this
    record or finds nothing stored at all.
    """

    __tablename__ = "idempotency_records"
    __table_args__ = (
        UniqueConstraint("user_id", "key", name="uq_idempotency_records_key"),
        Index("ix_idempotency_records_created", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    key: Mapped[str] = mapped_column(String(255))
    # SHA-256 of the method, path and canonical JSON body: the same key with another request
    # is a client bug, answered 409.
    fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    location: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
