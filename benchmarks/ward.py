"""The benchmarks' ward: a unit, one account, and flaps, made through the real services."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy.orm import Session

from flapwatch.domain.vocabulary import FlapKind, Side
from flapwatch.models import Reconstruction, User
from flapwatch.services import SYSTEM
from flapwatch.services.accounts import create_user
from flapwatch.services.patients import (
    PatientDetails,
    ReconstructionDetails,
    add_reconstruction,
    admit_patient,
)
from flapwatch.services.units import create_unit

UNIT = "BENCH"
USERNAME = "bench"
PASSWORD = "benchmark-password"


def bench_unit(session: Session, role: str) -> User:
    """Unit BENCH and its one account, `bench`, with the given role."""
    create_unit(session, SYSTEM, code=UNIT, name="Benchmark ward", timezone="Europe/London")
    return create_user(
        session,
        SYSTEM,
        username=USERNAME,
        display_name="Bench User",
        role=role,
        password=PASSWORD,
        unit_codes=[UNIT],
    )


def bench_flap(session: Session, number: int, surgery_end_at: datetime) -> Reconstruction:
    """Patient number `number` with a DIEP flap whose surgery ended at `surgery_end_at`."""
    patient = admit_patient(
        session,
        SYSTEM,
        unit_code=UNIT,
        details=PatientDetails(
            mrn=f"B-{number:06d}",
            name=f"Bench Patient {number}",
            date_of_birth=date(1970, 1, 1),
            bed=None,
        ),
    )
    return add_reconstruction(
        session,
        SYSTEM,
        patient.id,
        ReconstructionDetails(
            procedure="DIEP free flap",
            flap_kind=FlapKind.FREE,
            site="breast",
            side=Side.LEFT,
            surgery_end_at=surgery_end_at,
            surgeon="Bench Surgeon",
            buried=False,
        ),
        now=surgery_end_at,
    )
