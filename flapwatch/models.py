"""SQLAlchemy 2 typed models. Field names and enum values follow DESIGN.md §2 exactly."""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import Enum as PyEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from flapwatch.db import Base as _Base
from flapwatch.db import UTCDateTime
from flapwatch.domain.checks import CheckValues
from flapwatch.domain.schedule import SchedulePolicy as SchedulePolicyValue
from flapwatch.domain.vocabulary import (
    CapillaryRefill,
    Colour,
    DopplerArterial,
    DopplerVenous,
    FlapKind,
    Pinprick,
    ReconstructionStatus,
    Role,
    Side,
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
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    unit: Mapped[Unit] = relationship(back_populates="schedule_policies")

    def as_value(self) -> SchedulePolicyValue:
        return SchedulePolicyValue(
            bands=tuple((int(until), int(interval)) for until, interval in self.bands),
            grace_minutes=self.grace_minutes,
            after_last_band_minutes=self.after_last_band_minutes,
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
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    patient: Mapped[Patient] = relationship(back_populates="reconstructions")
    checks: Mapped[list[Check]] = relationship(
        back_populates="reconstruction", order_by="Check.taken_at.desc()"
    )

    @property
    def monitoring(self) -> bool:
        return self.status == ReconstructionStatus.MONITORING


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

    reconstruction: Mapped[Reconstruction] = relationship(back_populates="checks")
    recorded_by: Mapped[User] = relationship()

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
        return self.values().temperature_difference_c


class AuditEvent(Base):
    """Append-only record of every change; each event carries the hash of the one before."""

    __tablename__ = "audit_events"

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
