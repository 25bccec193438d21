"""The unit's event stream: what changes on a unit, as server-sent events written in the
transaction of the change, replayed after Last-Event-ID, for the unit's staff only."""

from __future__ import annotations

import json

import pytest
from psycopg import sql
from sqlalchemy import select

from flapwatch.db import engine_of
from flapwatch.domain.vocabulary import Role
from flapwatch.models import Escalation, LiveEvent
from flapwatch.services.escalations import acknowledge_escalation, attend_escalation
from flapwatch.services.live import CHANNEL_SQL, latest_id
from tests.conftest import API


def events_of(body: str) -> list[dict]:
    found = []
    for block in body.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if line and not line.startswith(":")
        )
        if "event" in fields:
            found.append(
                {"id": int(fields["id"]), "event": fields["event"], **json.loads(fields["data"])}
            )
    return found


def test_a_red_check_and_the_answers_to_it_are_events_of_the_unit(api, make, session):
    nurse = api(Role.NURSE)
    start = latest_id(session)
    flap = make.reconstruction()
    make.check(flap, minutes_ago=3, colour="dusky", capillary_refill="brisk")
    escalation = session.scalars(select(Escalation)).one()
    surgeon = make.actor(make.user(Role.SURGEON))
    attend_escalation(session, surgeon, escalation.id, expected_minutes=10)
    acknowledge_escalation(session, surgeon, escalation.id, outcome="observe")

    answer = nurse.get(f"/units/PLAST-W3/events?after={start}")
    assert answer.status_code == 200 and answer.mimetype == "text/event-stream"
    assert answer.headers["Cache-Control"] == "no-store"
    body = answer.get_data(as_text=True)
    assert body.startswith("retry: ")
    events = events_of(body)
    assert [e["event"] for e in events] == [
        "escalation.opened",
        "check.recorded",
        "escalation.updated",
        "escalation.updated",
    ]
    assert events[0]["escalation_id"] == escalation.id and events[0]["severity"] == "red"
    assert events[1]["reconstruction_id"] == flap.id and events[1]["flagged"] is True
    assert "Patient" not in body and flap.patient.mrn not in body  # ids only, never a name

    # A page that reconnects says what it saw last, and gets only what came after.
    again = nurse.get("/units/PLAST-W3/events", headers={"Last-Event-ID": str(events[1]["id"])})
    assert [e["id"] for e in events_of(again.get_data(as_text=True))] == [
        events[2]["id"],
        events[3]["id"],
    ]


def test_a_stream_starts_from_now_and_only_the_units_staff_follow_it(api, app, make, session):
    make.reconstruction()
    make.check(make.reconstruction(), minutes_ago=3, colour="dusky", capillary_refill="brisk")
    assert events_of(api(Role.NURSE).get("/units/PLAST-W3/events").get_data(as_text=True)) == []

    make.unit("ORTHO-W1")
    elsewhere = api(Role.NURSE, "ORTHO-W1")
    assert elsewhere.get("/units/PLAST-W3/events").status_code == 404
    assert app.test_client().get(f"{API}/units/PLAST-W3/events").status_code == 401


def test_the_event_server_asks_the_app_only_whether_the_caller_may_follow(api, session):
    from flapwatch.http.live import AUTHORIZE_ONLY

    nurse = api(Role.NURSE)
    answer = nurse.get("/units/PLAST-W3/events?after=7", environ_overrides={AUTHORIZE_ONLY: True})
    assert answer.status_code == 200 and answer.mimetype == "application/json"
    unit_id = session.scalars(select(LiveEvent.unit_id)).first()
    assert answer.get_json()["after"] == 7
    assert unit_id is None or answer.get_json()["unit_id"] == unit_id


def test_events_older_than_an_hour_are_forgotten_by_the_sweep(make, session):
    from datetime import timedelta

    from flapwatch.models import utcnow
    from flapwatch.services.live import forget_old

    make.check(make.reconstruction(), minutes_ago=3)
    (event,) = session.scalars(select(LiveEvent))
    assert forget_old(session, now=utcnow() + timedelta(minutes=59)) == 0
    assert forget_old(session, now=event.at + timedelta(hours=1, seconds=1)) == 1
    assert session.scalars(select(LiveEvent)).all() == []


def test_a_pause_a_resume_and_a_check_not_done_update_the_board_at_once(api, make, session):
    from flapwatch.models import utcnow
    from flapwatch.services.monitoring import record_not_done, resume, start_pause

    nurse_api = api(Role.NURSE)
    flap = make.reconstruction()
    nurse = make.actor(make.user(Role.NURSE))
    start = latest_id(session)
    start_pause(session, nurse, flap.id, reason="imaging")
    resume(session, nurse, flap.id)
    record_not_done(session, nurse, flap.id, taken_at=utcnow(), reason="patient_refused")

    events = events_of(
        nurse_api.get(f"/units/PLAST-W3/events?after={start}").get_data(as_text=True)
    )
    assert [e["event"] for e in events] == ["flap.updated"] * 3
    assert {e["reconstruction_id"] for e in events} == {flap.id}


def test_a_deployment_in_another_schema_of_the_database_never_hears_this_one_s_events(
    app, make, backend
):
    """PostgreSQL's channels belong to the database: a second deployment (or test run) in a
    schema of its own would otherwise take this one's events for its own units'."""
    if backend != "postgresql":
        pytest.skip("notifications are PostgreSQL's")
    import psycopg

    def listening(dsn: str) -> psycopg.Connection:
        connection = psycopg.connect(dsn, autocommit=True)
        (channel,) = connection.execute(f"SELECT {CHANNEL_SQL}").fetchone()
        connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        return connection

    url = engine_of(app).url.set(drivername="postgresql")
    ours = listening(url.render_as_string(hide_password=False))
    theirs = listening(url.set(query={}).render_as_string(hide_password=False))  # `public`
    try:
        make.check(make.reconstruction(hours_ago=2), colour="pink")
        heard = [note.payload for note in ours.notifies(timeout=5, stop_after=1)]
        overheard = [note.payload for note in theirs.notifies(timeout=1)]
    finally:
        ours.close()
        theirs.close()
    assert len(heard) == 1 and " check.recorded " in heard[0]
    assert overheard == []
