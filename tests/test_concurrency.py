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


def test_fifty_tablets_saving_at_once_store_each_acknowledged_check_exactly_once(
    app, make, session
):
    """50 threads through the API, each with its own client: half on one flap, half spread
    over five; every save sent twice with the same Idempotency-Key (a retry after a lost
    answer), most of them worrying enough to escalate."""
    from flapwatch.services import SYSTEM
    from flapwatch.services.audit import verify_audit_trail
    from flapwatch.services.tokens import create_token

    crowded = make.reconstruction(hours_ago=8)
    spread = [make.reconstruction(hours_ago=8) for _ in range(5)]
    nurse = make.user("nurse", "PLAST-W3")
    _, token = create_token(session, SYSTEM, nurse.username, name="fifty tablets")
    session.commit()
    start = threading.Barrier(50)
    answers: list[tuple[str, int, int]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def tablet(number: int) -> None:
        flap = crowded if number % 2 else spread[number % 5]
        client = app.test_client()
        taken = (utcnow() - timedelta(seconds=number)).isoformat()
        key = f"tablet-{number}"
        body = {"taken_at": taken, "colour": "dusky" if number % 3 else "pink"}
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": key}
        try:
            start.wait()
            for _ in range(2):  # the same save, sent again
                answer = client.post(
                    f"/api/v1/reconstructions/{flap.id}/checks", json=body, headers=headers
                )
                with lock:
                    answers.append((key, answer.status_code, answer.json.get("id", -1)))
        except BaseException as error:  # noqa: BLE001 - collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=tablet, args=(number,)) for number in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    assert {status for _, status, _ in answers} <= {200, 201}, answers
    ids_by_key: dict[str, set[int]] = {}
    for key, _, check_id in answers:
        ids_by_key.setdefault(key, set()).add(check_id)
    assert all(len(ids) == 1 for ids in ids_by_key.values()), "a retry stored a second check"
    acknowledged = {next(iter(ids)) for ids in ids_by_key.values()}
    session.rollback()
    stored = set(session.scalars(select(Check.id).where(Check.recorded_by_id == nurse.id)))
    assert stored == acknowledged and len(stored) == 50
    for flap in (crowded, *spread):
        open_escalations = session.scalar(
            select(func.count(Escalation.id)).where(
                Escalation.reconstruction_id == flap.id, Escalation.closed_at.is_(None)
            )
        )
        assert open_escalations == 1, f"flap {flap.id}: {open_escalations} open escalations"
    assert verify_audit_trail(session).broken is None
