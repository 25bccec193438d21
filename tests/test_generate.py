"""The benchmarks' data generator: a realistic hospital, on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select

from flapwatch.models import Check, CheckFlag, Escalation, Reconstruction, Unit
from flapwatch.services import SYSTEM
from flapwatch.services.ward import ward_board

GENERATE = Path(__file__).resolve().parents[1] / "benchmarks" / "generate.py"


def test_the_generator_fills_units_with_schedule_driven_flagged_and_corrected_checks(
    app, database_url, session, now, make
):
    result = subprocess.run(  # noqa: S603 - our own script
        [sys.executable, str(GENERATE), "--checks", "6000", "--units", "2",
         "--monitored", "12", "--database-url", database_url],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr

    checks = session.scalar(select(func.count(Check.id)))
    flagged = session.scalar(select(func.count(Check.id)).where(Check.severity.is_not(None)))
    corrected = session.scalar(select(func.count(Check.id)).where(Check.version > 1))
    assert 6000 <= checks <= 7500
    assert 0.03 < flagged / checks < 0.08  # about 5 % flagged
    assert corrected > 0
    assert session.scalar(select(func.count(CheckFlag.id))) == flagged
    assert session.scalar(select(func.count(Escalation.id))) > 0
    board = ward_board(session, SYSTEM, "GEN-01", now)
    assert len(board.flaps) == 12  # the flaps still monitored, for the board benchmarks
    statuses = set(session.scalars(select(Reconstruction.status).distinct()))
    assert {"monitoring", "discharged"} <= statuses

    # The app goes on adding rows after a load: a new patient, flap and check get new ids.
    make.units["GEN-01"] = session.scalars(select(Unit).where(Unit.code == "GEN-01")).one()
    flap = make.reconstruction(make.patient("GEN-01", name="After Load"), hours_ago=2)
    make.check(flap, colour="pink")
    session.commit()
    assert session.get(Reconstruction, flap.id).patient.name == "After Load"
