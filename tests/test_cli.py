"""The `flapwatch` command: the demo ward, staff accounts, the schema, and errors a person at a
terminal can act on (DESIGN.md §5)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select

from flapwatch.db import engine_of
from flapwatch.demo import DEMO_PASSWORD, load_demo
from flapwatch.domain.checks import is_late_entry
from flapwatch.domain.schedule import next_due_at
from flapwatch.domain.vocabulary import DueState
from flapwatch.migrate import current_revision, head_revision
from flapwatch.models import Check, Patient, Reconstruction, Unit, User, utcnow
from flapwatch.services import SYSTEM
from flapwatch.services.ward import ward_board
from tests.conftest import PASSWORD, Browser

DEMO_ACCOUNTS = (
    "nurse (nurse)",
    "surgeon (surgeon)",
    "coordinator (unit_admin)",
    "auditor (auditor)",
    "admin (admin)",
)
DETERIORATING = "Joanne Whitaker"


def row_counts(session) -> dict[str, int]:
    session.commit()  # a fresh snapshot: the command wrote through a session of its own
    return {
        model.__tablename__: session.scalar(select(func.count()).select_from(model))
        for model in (Unit, User, Patient, Reconstruction, Check)
    }


def demo_page(browser: Browser, url: str) -> str:
    response = browser.get(url)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def logged_in_demo_nurse(app) -> Browser:
    browser = Browser(app.test_client())
    assert browser.login("nurse", DEMO_PASSWORD).status_code == 302
    return browser


def flap_of(session, patient_name: str) -> Reconstruction:
    return session.scalars(
        select(Reconstruction).join(Patient).where(Patient.name == patient_name)
    ).one()


# --- flapwatch demo ----------------------------------------------------------------------------


def test_demo_loaded_twice_creates_nothing_twice(runner, session):
    first = runner.invoke(args=["demo"])
    assert first.exit_code == 0, first.output
    loaded = row_counts(session)

    second = runner.invoke(args=["demo"])

    assert second.exit_code == 0, second.output
    assert row_counts(session) == loaded
    # 8 patients (9 flaps) on the board, 10 discharged in the last weeks with their outcomes.
    assert loaded["units"] == 1 and loaded["patients"] == 18 and loaded["reconstructions"] == 19
    assert 500 <= loaded["checks"] <= 900
    assert "(created now)" in first.output and "(already loaded)" in second.output
    for result in (first, second):
        assert f"password '{DEMO_PASSWORD}'" in result.output
        for account in DEMO_ACCOUNTS:
            assert account in result.output


def test_demo_run_again_adds_back_a_missing_account_and_no_checks(runner, session):
    assert runner.invoke(args=["demo"]).exit_code == 0
    session.execute(delete(User).where(User.username == "auditor"))
    session.commit()
    checks = row_counts(session)["checks"]

    result = runner.invoke(args=["demo"])

    assert result.exit_code == 0, result.output
    assert "(added 1 missing account)" in result.output
    assert row_counts(session)["checks"] == checks
    assert session.scalars(select(User).where(User.username == "auditor")).one().role == "auditor"


def test_demo_board_shows_overdue_due_and_not_yet_due_flaps_and_the_deteriorating_one(app, runner):
    assert runner.invoke(args=["demo"]).exit_code == 0
    browser = logged_in_demo_nurse(app)

    page = demo_page(browser, "/units/DEMO/board")

    # The red flap waits for its registrar: its 15-minute recheck (the rule's) is due.
    assert "1 overdue" in page and "3 due" in page and "9 flaps monitored" in page
    assert page.count("flap-card state-overdue") == 1
    assert page.count("flap-card state-due") == 3
    assert page.count("flap-card state-not_due") == 5
    escalated = page.index("flap-card state-due escalated escalated-red")
    assert escalated < page.index("state-overdue") < page.index('state-due"')
    assert page.index("state-due") < page.index('state-not_due"')
    card = page[page.index(DETERIORATING) :].split("</li>")[0]
    assert "Purple" in card and "ΔT 2.6" in card and "V absent" in card and "StO₂ 35 %" in card


def test_demo_flap_page_tells_the_congestion_story_recorded_by_ward_staff(app, runner, session):
    assert runner.invoke(args=["demo"]).exit_code == 0
    flap = flap_of(session, DETERIORATING)
    browser = logged_in_demo_nurse(app)

    page = demo_page(browser, f"/reconstructions/{flap.id}")

    assert "Dusky patch at lower pole, registrar informed." in page
    assert "theatre booked for re-exploration" in page
    assert "Dr Sam Okonkwo" in page  # the registrar wrote up the bedside review
    recorders = {check.recorded_by.username for check in flap.checks}
    assert "surgeon" in recorders and recorders <= {"nurse", "t.nguyen", "f.osei", "surgeon"}


def test_demo_history_keeps_to_the_schedule_with_one_late_entry(app, session):
    now = utcnow() - timedelta(days=3)  # the demo is built around whatever moment it is given

    with app.app_context():  # password hashing reads the app's argon2 settings
        load_demo(session, now=now)

    board = ward_board(session, SYSTEM, "DEMO", now)
    states = {flap.patient.name: flap.due_state for flap in board.flaps}
    assert states.pop("Daniel Kowalski") == DueState.OVERDUE
    assert states.pop("Thomas Brennan") == states.pop("Robert Fraser") == DueState.DUE
    # Its red escalation unacknowledged, the deteriorating flap's 15-minute recheck is due.
    assert states.pop(DETERIORATING) == DueState.DUE
    assert set(states.values()) == {DueState.NOT_DUE}
    late_entries = 0
    for flap in board.flaps:
        checks = sorted(flap.reconstruction.checks, key=lambda check: check.taken_at)
        for earlier, later in zip(checks, checks[1:], strict=False):
            due = next_due_at(board.schedule, flap.reconstruction.surgery_end_at, earlier.taken_at)
            assert later.taken_at <= due + board.schedule.grace, flap.patient.name
        assert all(check.recorded_at <= now for check in checks)
        late_entries += sum(is_late_entry(check.taken_at, check.recorded_at) for check in checks)
        if flap.patient.name != DETERIORATING:
            assert {check.colour for check in checks} <= {"pink", None}
            assert all((check.temperature_difference_c or 0) < 1.8 for check in checks)
    assert late_entries == 1


def test_the_demo_s_last_weeks_have_their_returns_to_theatre_and_outcomes(app, session):
    from flapwatch.services.compliance import compliance_report

    with app.app_context():
        load_demo(session)

    report = compliance_report(session, SYSTEM, "DEMO", None, None, utcnow())
    assert report.flaps_operated == 19
    assert report.flap_outcomes == {
        "returned_to_theatre": 3, "salvaged": 2, "partial_loss": 1, "failed": 1, "monitoring": 9,
    }  # fmt: skip
    audit = report.audit
    assert (audit.to_decision.median, audit.to_knife.median) == (22.0, 68.0)
    assert (audit.re_explored.count, audit.salvaged.count, audit.salvaged.of) == (3, 2, 3)
    # Their monitoring kept to the schedule, the recheck after each flag included.
    assert (report.total.missed, report.total.late) == (1, 0)  # the overdue flap on the board


def test_demo_deteriorating_flap_goes_venous_congested_over_its_last_checks(app, session):
    with app.app_context():
        load_demo(session)

    checks = sorted(flap_of(session, DETERIORATING).checks, key=lambda check: check.taken_at)

    last_four = checks[-4:]
    assert [check.colour for check in last_four] == ["pink", "dusky", "dusky", "purple"]
    assert [check.doppler_venous for check in last_four] == [
        "present",
        "present",
        "absent",
        "absent",
    ]
    assert last_four[-1].temperature_difference_c >= 1.8 > last_four[0].temperature_difference_c
    assert last_four[0].sto2_percent > 60 > 40 > last_four[-1].sto2_percent
    assert {check.colour for check in checks[:-4]} == {"pink"}


def test_demo_red_flap_climbed_to_level_2_after_the_registrar_came_and_reviewed(app, session):
    from flapwatch.domain.vocabulary import EscalationEventKind
    from flapwatch.models import Escalation

    with app.app_context():
        load_demo(session)
    flap = flap_of(session, DETERIORATING)
    escalation = session.scalars(
        select(Escalation).where(Escalation.reconstruction_id == flap.id)
    ).one()
    assert escalation.acknowledged_at is None and escalation.chain_level == 2
    kinds = [event.kind for event in escalation.events]
    assert kinds.count(EscalationEventKind.ATTENDING) == 1
    assert kinds.count(EscalationEventKind.ACKNOWLEDGED) == 2
    coming = kinds.index(EscalationEventKind.ATTENDING)
    assert kinds[coming + 1 :].count(EscalationEventKind.ACKNOWLEDGED) == 1  # decided after
    registrar = session.scalars(select(User).where(User.username == "surgeon")).one()
    assert escalation.events[coming].actor_id == registrar.id
    assert escalation.attending_at is None  # she came, and decided at the bedside
    # The chain pages her phones: none turned on in the demo, and the timeline says so.
    paged = [line for e in escalation.events if e.kind == "paged" for line in e.reasons]
    assert "surgeon has turned on notifications on no phone" in paged


# --- flapwatch create-user -----------------------------------------------------------------------


def test_created_user_can_log_in(app, runner, make):
    make.unit("PLAST-W3")

    result = runner.invoke(
        args=[
            "create-user",
            "Sister.Jones",
            "--role",
            "nurse",
            "--unit",
            "plast-w3",
            "--name",
            "Sister Jones",
            "--password-stdin",
        ],
        input=f"{PASSWORD}\n",
    )

    assert result.exit_code == 0, result.output
    assert result.output == "Created sister.jones (nurse).\n"
    browser = Browser(app.test_client())
    assert browser.login("sister.jones", PASSWORD).status_code == 302
    assert "Ward PLAST-W3" in demo_page(browser, "/units/PLAST-W3/board")


@pytest.mark.parametrize(
    ("arguments", "password", "message"),
    [
        (
            ["jo", "--role", "nurse", "--unit", "NOWHERE", "--password-stdin"],
            PASSWORD,
            "The account could not be created. No such unit: NOWHERE.",
        ),
        (
            ["taken", "--role", "nurse", "--unit", "PLAST-W3", "--password-stdin"],
            PASSWORD,
            "The account could not be created. The username taken is taken.",
        ),
        (
            ["jo", "--role", "nurse", "--unit", "PLAST-W3", "--password-stdin"],
            "short",
            "The account could not be created. Password must be at least 10 characters.",
        ),
        (
            ["jo", "--role", "nurse", "--password-stdin"],
            PASSWORD,
            "A nurse must work in a unit: give --unit CODE.",
        ),
        (
            ["jo", "--role", "nurse", "--unit", "PLAST-W3"],
            PASSWORD,
            "No terminal to ask for a password: use --password-stdin.",
        ),
    ],
    ids=[
        "unknown-unit",
        "duplicate-username",
        "short-password",
        "nurse-without-unit",
        "no-terminal",
    ],
)
def test_create_user_refusal_is_one_line_and_a_failing_exit(
    runner, make, session, arguments, password, message
):
    make.user("nurse", "PLAST-W3", username="taken")
    users = row_counts(session)["users"]

    result = runner.invoke(args=["create-user", *arguments], input=f"{password}\n")

    assert result.exit_code == 1
    assert result.stderr == f"Error: {message}\n"
    assert result.stdout == ""
    assert row_counts(session)["users"] == users


def test_create_user_with_unknown_role_names_the_roles_allowed(runner, session):
    result = runner.invoke(
        args=["create-user", "jo", "--role", "matron", "--password-stdin"], input=f"{PASSWORD}\n"
    )

    assert result.exit_code == 2
    errors = [line for line in result.stderr.splitlines() if "Error" in line]
    assert len(errors) == 1
    assert re.fullmatch(r"Error: Invalid value for '--role': 'matron' is not one of .*", errors[0])
    assert "'unit_admin'" in errors[0]
    assert row_counts(session)["users"] == 0


# --- flapwatch init-db ---------------------------------------------------------------------------


def test_init_db_run_twice_leaves_the_schema_at_head(app, runner):
    for _ in range(2):
        result = runner.invoke(args=["init-db"])
        assert result.exit_code == 0, result.output
        assert result.output.startswith("Database ready at ")
    assert current_revision(engine_of(app)) == head_revision()


# --- the installed console script ----------------------------------------------------------------


def console_script() -> str:
    """The `flapwatch` installed beside this interpreter, not whichever is first on PATH."""
    beside = Path(sys.executable).with_name("flapwatch")
    found = str(beside) if beside.exists() else shutil.which("flapwatch")
    assert found, "the flapwatch console script is not installed"
    return found


@pytest.mark.slow
def test_console_script_creates_the_database_and_loads_the_demo(tmp_path):
    instance = tmp_path / "instance"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FLAPWATCH_")}
    environment["FLAPWATCH_INSTANCE_PATH"] = str(instance)

    def flapwatch(*arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [console_script(), *arguments],
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    initialised = flapwatch("init-db")
    assert initialised.returncode == 0, initialised.stderr
    assert str(instance / "flapwatch.sqlite3") in initialised.stdout

    demo = flapwatch("demo")

    assert demo.returncode == 0, demo.stderr
    assert demo.stdout.startswith("Demo unit DEMO: 18 patients, 19 flaps, ")
    assert f"password '{DEMO_PASSWORD}'" in demo.stdout
    for account in DEMO_ACCOUNTS:
        assert account in demo.stdout


def test_created_token_reads_the_api_until_it_is_revoked(app, runner, make, session):
    make.unit("PLAST-W3")
    make.user("nurse", "PLAST-W3", username="doppler-gw")
    created = runner.invoke(args=["create-token", "doppler-gw", "--name", "Doppler gateway"])
    assert created.exit_code == 0, created.output
    token = created.stdout.strip().splitlines()[0]
    assert token.startswith("fwt_")
    client = app.test_client()
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200 and me.json["username"] == "doppler-gw"

    listed = runner.invoke(args=["list-tokens", "--user", "doppler-gw"])
    assert "Doppler gateway" in listed.output and "active" in listed.output
    assert token not in listed.output  # only a prefix is ever shown again
    token_id = listed.output.split("\t")[0]
    revoked = runner.invoke(args=["revoke-token", token_id])
    assert revoked.exit_code == 0 and "revoked" in revoked.output

    refused = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 401
    assert "revoked" in runner.invoke(args=["list-tokens"]).output


def test_token_for_an_unknown_account_is_refused_in_one_line(runner, session):
    result = runner.invoke(args=["create-token", "nobody"])
    assert result.exit_code != 0
    assert "No account nobody." in result.output
    assert "Traceback" not in result.output


def test_token_with_an_expiry_stops_working_after_it(app, runner, make, session):
    make.unit("PLAST-W3")
    make.user("nurse", "PLAST-W3", username="oximeter")
    created = runner.invoke(args=["create-token", "oximeter", "--expires-in-days", "1"])
    token = created.stdout.strip().splitlines()[0]
    from flapwatch.services.tokens import user_for_token

    assert user_for_token(session, token) is not None
    assert user_for_token(session, token, now=utcnow() + timedelta(days=1, minutes=1)) is None


def test_sweep_forgets_idempotency_keys_older_than_a_week(runner, make, session):
    from flapwatch.models import IdempotencyRecord

    make.unit("PLAST-W3")
    user = make.user("nurse", "PLAST-W3")
    for key, age in (("old", timedelta(days=8)), ("recent", timedelta(days=6))):
        session.add(
            IdempotencyRecord(
                user_id=user.id,
                key=key,
                fingerprint="0" * 64,
                status_code=201,
                body={},
                location=None,
                created_at=utcnow() - age,
            )
        )
    session.commit()
    assert runner.invoke(args=["sweep"]).exit_code == 0
    session.commit()
    assert session.scalars(select(IdempotencyRecord.key)).all() == ["recent"]
