"""Several tablets and the sweep at once: every save stored once, one open escalation per flap."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import func, select

from flapwatch.db import EXTENSION_KEY
from flapwatch.domain.checks import CheckValues
from flapwatch.models import Check, Escalation, utcnow
from flapwatch.services.checks import record_check
from flapwatch.services.escalations import sweep_overdue


def test_simultaneous_flagged_checks_and_sweeps_open_one_escalation(app, make, session):
    flap = make.reconstruction(hours_ago=8)
    make.check(flap, minutes_ago=120, colour="pink")  # overdue, so the sweep escalates too
    nurse = make.actor(make.user("nurse", "PLAST-W3"))
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def save(minutes_ago: int) -> None:
        own = app.extensions[EXTENSION_KEY]()
        try:
            start.wait()
            taken = utcnow() - timedelta(minutes=minutes_ago)
            record_check(own, nurse, flap.id, CheckValues(taken_at=taken, colour="dusky"))
        except BaseException as error:  # noqa: BLE001 - collected and asserted below
            errors.append(error)
        finally:
            own.close()

    def sweep() -> None:
        own = app.extensions[EXTENSION_KEY]()
        try:
            start.wait()
            sweep_overdue(own)
        except BaseException as error:  # noqa: BLE001
            errors.append(error)
        finally:
            own.close()

    threads = [threading.Thread(target=save, args=(minute,)) for minute in range(1, 7)]
    threads += [threading.Thread(target=sweep) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    session.expire_all()
    assert session.scalar(select(func.count(Check.id))) == 7
    open_count = session.scalar(
        select(func.count(Escalation.id)).where(Escalation.closed_at.is_(None))
    )
    assert open_count == 1
