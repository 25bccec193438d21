"""Where a check's values came from: a nurse at the bedside, or a named device (a tissue
oximeter's gateway) through the API. A device's readings are judged by the rules but never
stand in for a nurse's look: a flap whose last bedside check is past due is overdue however
many readings arrive."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta

from sqlalchemy import func, select

from flapwatch.charts.figure import trend_figure
from flapwatch.charts.spec import FULL
from flapwatch.domain.checks import CheckValues
from flapwatch.domain.vocabulary import CheckSource, DueState, Role
from flapwatch.models import Check, Escalation, MissedCheck, utcnow
from flapwatch.services import SYSTEM
from flapwatch.services.checks import amend_check, record_check
from flapwatch.services.escalations import sweep_overdue
from flapwatch.services.review import chart_subject, flap_trend
from flapwatch.services.ward import ward_board
from tests.test_fhir import validated

GATEWAY = "T.Ox gateway 2"


def _reading(api, flap_id: int, taken_at: datetime, **values):
    body = {"source": "device", "device": GATEWAY, "taken_at": taken_at.isoformat(), **values}
    return api.post(f"/reconstructions/{flap_id}/checks", body)


def test_a_device_reading_is_stored_as_the_devices_and_does_not_move_the_schedule(api, make):
    flap = make.reconstruction(hours_ago=6)
    make.check(flap, minutes_ago=30)  # bedside: next due in 30 min
    gateway = api(Role.NURSE)
    before = gateway.get(f"/reconstructions/{flap.id}").json

    answer = _reading(gateway, flap.id, utcnow(), sto2_percent=71)

    assert answer.status_code == 201, answer.json
    assert (answer.json["source"], answer.json["device"]) == ("device", GATEWAY)
    assert answer.json["sto2_percent"] == 71
    assert answer.json["next_due_at"] == before["next_due_at"]
    after = gateway.get(f"/reconstructions/{flap.id}").json
    assert after["next_due_at"] == before["next_due_at"]
    assert after["last_check_at"] == before["last_check_at"]  # the last bedside check
    listed = gateway.get(f"/reconstructions/{flap.id}/checks").json["items"]
    assert [(c["source"], c["device"]) for c in listed] == [
        ("device", GATEWAY),
        ("bedside", None),
    ]


def test_a_device_reading_names_its_device_and_holds_only_what_a_device_measures(api, make):
    flap = make.reconstruction(hours_ago=6)
    gateway = api(Role.NURSE)
    path = f"/reconstructions/{flap.id}/checks"
    now = utcnow().isoformat()

    unnamed = gateway.post(path, {"source": "device", "taken_at": now, "sto2_percent": 70})
    looked = _reading(gateway, flap.id, utcnow(), sto2_percent=70, colour="pink")
    named_bedside = gateway.post(path, {"taken_at": now, "colour": "pink", "device": GATEWAY})

    assert unnamed.status_code == 422 and "device" in unnamed.json["error"]["fields"]
    assert looked.status_code == 422
    assert "bedside observation" in looked.json["error"]["fields"]["colour"]
    assert named_bedside.status_code == 422 and "device" in named_bedside.json["error"]["fields"]
    assert make.session.scalar(select(func.count(Check.id))) == 0


def test_device_readings_every_ten_minutes_do_not_stop_a_flap_going_overdue(make, session):
    now = utcnow()
    flap = make.reconstruction(hours_ago=6)  # hourly band
    last_bedside = now - timedelta(minutes=100)
    make.check(flap, taken_at=last_bedside)
    gateway = make.actor(make.user(Role.NURSE, username="tox-gateway"))
    for minutes in range(90, -1, -10):
        record_check(
            session,
            gateway,
            flap.id,
            CheckValues(taken_at=now - timedelta(minutes=minutes), sto2_percent=72),
            source=CheckSource.DEVICE,
            device=GATEWAY,
            now=now,
        )

    board = ward_board(session, SYSTEM, "PLAST-W3", now)
    (card,) = board.flaps
    assert card.due_state == DueState.OVERDUE
    assert card.next_due_at == last_bedside + timedelta(minutes=60)
    assert card.last_check is not None and card.last_check.taken_at == last_bedside
    swept = sweep_overdue(session, now=now)
    assert (swept.missed, swept.escalated) == (1, 1)
    missed = session.scalars(select(MissedCheck)).one()
    assert missed.due_at == last_bedside + timedelta(minutes=60)


def test_a_falling_sto2_from_a_device_still_flags_and_escalates(api, make):
    flap = make.reconstruction(hours_ago=6)
    gateway = api(Role.NURSE)
    assert (
        _reading(gateway, flap.id, utcnow() - timedelta(minutes=40), sto2_percent=74).status_code
        == 201
    )

    answer = _reading(gateway, flap.id, utcnow(), sto2_percent=50)

    assert [flag["rule_id"] for flag in answer.json["flags"]] == ["sto2"]
    escalation = make.session.scalars(select(Escalation)).one()
    assert answer.json["escalation_id"] == escalation.id


def test_a_batch_of_readings_sent_again_stores_nothing_twice(api, make):
    flap = make.reconstruction(hours_ago=6)
    gateway = api(Role.NURSE)
    start = utcnow() - timedelta(minutes=50)
    batch = {
        "device": GATEWAY,
        "readings": [
            {"taken_at": (start + timedelta(minutes=10 * n)).isoformat(), "sto2_percent": 70 + n}
            for n in range(6)
        ],
    }
    path = f"/reconstructions/{flap.id}/readings"

    first = gateway.post(path, batch)
    again = gateway.post(path, batch)

    assert first.status_code == 201, first.json
    assert [c["sto2_percent"] for c in first.json["stored"]] == [70, 71, 72, 73, 74, 75]
    assert {c["source"] for c in first.json["stored"]} == {"device"}
    assert again.status_code == 200
    assert again.json["stored"] == []
    assert again.json["already_stored"] == [c["id"] for c in first.json["stored"]]
    assert make.session.scalar(select(func.count(Check.id))) == 6


def test_a_different_reading_at_a_time_already_stored_is_refused_and_nothing_is_stored(api, make):
    flap = make.reconstruction(hours_ago=6)
    gateway = api(Role.NURSE)
    taken = utcnow() - timedelta(minutes=20)
    path = f"/reconstructions/{flap.id}/readings"
    gateway.post(
        path, {"device": GATEWAY, "readings": [{"taken_at": taken.isoformat(), "sto2_percent": 70}]}
    )

    answer = gateway.post(
        path,
        {
            "device": GATEWAY,
            "readings": [
                {"taken_at": utcnow().isoformat(), "sto2_percent": 69},
                {"taken_at": taken.isoformat(), "sto2_percent": 40},
            ],
        },
    )

    assert answer.status_code == 422
    assert "is not replaced" in answer.json["error"]["fields"]["readings[1].taken_at"]
    stored = make.session.scalars(select(Check)).all()
    assert [c.sto2_percent for c in stored] == [70]


def test_readings_from_another_device_at_the_same_time_are_their_own(api, make):
    flap = make.reconstruction(hours_ago=6)
    gateway = api(Role.NURSE)
    reading = {"taken_at": utcnow().isoformat(), "sto2_percent": 70}
    path = f"/reconstructions/{flap.id}/readings"
    assert gateway.post(path, {"device": GATEWAY, "readings": [reading]}).status_code == 201
    other = gateway.post(path, {"device": "T.Ox gateway 3", "readings": [reading]})
    assert other.status_code == 201 and len(other.json["stored"]) == 1


def test_a_correction_keeps_where_the_reading_came_from(make, session):
    flap = make.reconstruction(hours_ago=6)
    nurse = make.actor(make.user(Role.NURSE))
    reading = record_check(
        session,
        nurse,
        flap.id,
        CheckValues(taken_at=utcnow(), sto2_percent=30),
        source=CheckSource.DEVICE,
        device=GATEWAY,
    ).check

    corrected = amend_check(
        session,
        nurse,
        reading.id,
        reason="probe was off the skin",
        values=CheckValues(taken_at=reading.taken_at, sto2_percent=68),
    ).check

    assert (corrected.source, corrected.device) == (CheckSource.DEVICE, GATEWAY)


def test_exports_and_the_chart_tell_a_devices_readings_apart(logged_in, make, session):
    flap = make.reconstruction(hours_ago=6)
    make.check(flap, minutes_ago=30, colour="pink", sto2_percent=70)
    nurse = make.actor(make.user(Role.NURSE))
    record_check(
        session,
        nurse,
        flap.id,
        CheckValues(taken_at=utcnow(), sto2_percent=69),
        source=CheckSource.DEVICE,
        device=GATEWAY,
    )
    auditor, _ = logged_in("auditor")

    rows = list(csv.DictReader(io.StringIO(auditor.get("/exports/checks.csv").data.decode())))
    assert [(row["source"], row["device"]) for row in rows] == [
        ("bedside", ""),
        ("device", GATEWAY),
    ]
    bundle = validated(auditor.get("/exports/fhir.json").data)
    observations = [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"
    ]
    assert [o.get("device") for o in observations] == [None, {"display": GATEWAY}]

    figure = trend_figure(
        flap_trend(session, chart_subject(session, SYSTEM, flap.id, utcnow())), FULL
    )
    (marked,) = figure.findobj(lambda artist: artist.get_gid() == "device:sto2_percent")
    assert list(marked.get_ydata()) == [69]
    (ticks,) = figure.findobj(lambda artist: artist.get_gid() == "checks")
    (dots,) = figure.findobj(lambda artist: artist.get_gid() == "checks:device")
    assert (len(ticks.get_xdata()), len(dots.get_xdata())) == (1, 1)


def test_two_readings_of_one_batch_at_the_same_time_must_agree(api, make):
    flap = make.reconstruction(hours_ago=6)
    gateway = api(Role.NURSE)
    taken = utcnow().isoformat()
    path = f"/reconstructions/{flap.id}/readings"
    twice = [{"taken_at": taken, "sto2_percent": 70}, {"taken_at": taken, "sto2_percent": 70}]
    clash = [{"taken_at": taken, "sto2_percent": 70}, {"taken_at": taken, "sto2_percent": 41}]

    refused = gateway.post(path, {"device": GATEWAY, "readings": clash})
    assert refused.status_code == 422 and "readings[1].taken_at" in refused.json["error"]["fields"]
    kept = gateway.post(path, {"device": GATEWAY, "readings": twice})
    assert kept.status_code == 201 and len(kept.json["stored"]) == 1
