"""Fixtures every test file shares: an app on a fresh database, clients, factories.

Database-backed tests run once per backend: SQLite always, and PostgreSQL when
FLAPWATCH_TEST_DATABASE_URL is set (CI sets it). Under CI=true an unreachable PostgreSQL is
a failure, never a skip.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, text
from sqlalchemy.orm import Session

from flapwatch import create_app
from flapwatch.db import EXTENSION_KEY, engine_of, make_engine
from flapwatch.domain.checks import CheckValues
from flapwatch.domain.vocabulary import FlapKind, Role, Side
from flapwatch.migrate import upgrade_to_head
from flapwatch.models import Check, Patient, Reconstruction, Unit, User, metadata, utcnow
from flapwatch.services import SYSTEM, Actor
from flapwatch.services.accounts import create_user
from flapwatch.services.checks import record_check
from flapwatch.services.patients import (
    PatientDetails,
    ReconstructionDetails,
    add_reconstruction,
    admit_patient,
)
from flapwatch.services.tokens import create_token
from flapwatch.services.units import create_unit
from tests.servers import Receiver

PG_URL = os.environ.get("FLAPWATCH_TEST_DATABASE_URL", "").strip()
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])
PASSWORD = "correct-horse-battery"

# Cheap argon2 parameters: the hashing code path is the same, the tests just run faster.
TEST_SETTINGS: dict[str, Any] = {
    "TESTING": True,
    "SECRET_KEY": "test-secret-key",
    "PASSWORD_TIME_COST": 1,
    "PASSWORD_MEMORY_COST_KIB": 8,
    "PASSWORD_PARALLELISM": 1,
    # Tests run the overdue sweep themselves, at the moments they choose.
    "SWEEP_ON_REQUESTS": False,
    "NOTIFIER_THREAD": False,
    # A unit's event stream under the test client ends at once with what is there (a browser
    # test's server streams for a few seconds and the page reconnects).
    "LIVE_WSGI_STREAM_SECONDS": 0.0,
}


def _postgres_schema_url(base_url: str, schema: str) -> str:
    """The same database, with `schema` first on the search path (via libpq's options)."""
    separator = "&" if "?" in base_url else "?"
    return f"{base_url}{separator}options=-csearch_path%3D{schema}"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once; each test gets a copy of it."""
    path = tmp_path_factory.mktemp("template") / "flapwatch.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    upgrade_to_head(engine)
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def postgres_migrated() -> Iterator[str]:
    """A schema of its own in the test database, migrated to head once per test run.

    Its own schema, so that several test runs can share one PostgreSQL server.
    """
    schema = f"flapwatch_test_{os.getpid()}"
    admin = make_engine(PG_URL)
    try:
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
            connection.execute(text(f"CREATE SCHEMA {schema}"))
    except Exception as error:  # noqa: BLE001 - any failure to reach the server
        admin.dispose()
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"PostgreSQL at FLAPWATCH_TEST_DATABASE_URL unreachable: {error}")
    url = _postgres_schema_url(PG_URL, schema)
    engine = make_engine(url)
    upgrade_to_head(engine)
    engine.dispose()
    yield url
    with admin.begin() as connection:
        connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    admin.dispose()


def _empty_postgres(app: Flask) -> None:
    tables = ", ".join(table.name for table in metadata.sorted_tables)
    with engine_of(app).begin() as connection:
        # The tests' superuser empties the append-only tables past their triggers.
        connection.execute(text("SET LOCAL session_replication_role = replica"))
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        connection.execute(
            text("INSERT INTO audit_chain_head (id, last_hash, event_count) VALUES (1, :h, 0)"),
            {"h": "0" * 64},
        )


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if backend == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        target = tmp_path / "flapwatch.sqlite3"
        shutil.copyfile(template, target)
        return f"sqlite:///{target}"
    return str(request.getfixturevalue("postgres_migrated"))


@pytest.fixture
def app(database_url: str, backend: str, tmp_path: Path) -> Iterator[Flask]:
    app = create_app(
        {**TEST_SETTINGS, "DATABASE_URL": database_url, "INSTANCE_PATH": str(tmp_path)}
    )
    if backend == "postgresql":
        _empty_postgres(app)
    yield app
    engine_of(app).dispose()


@pytest.fixture
def session(app: Flask) -> Iterator[Session]:
    """The database session a test arranges and inspects data with (services commit).

    A session of its own, outside any application context: a context left pushed would be
    shared by every request the test client makes (and with it `g` and its session).
    """
    own = app.extensions[EXTENSION_KEY]()
    yield own
    own.close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> Any:
    return app.test_cli_runner()


# --- factories ---------------------------------------------------------------------------


@dataclass
class Factory:
    """Builds ward data through the real services, as the app itself would."""

    app: Flask
    session: Session
    counter: int = 0
    units: dict[str, Unit] = field(default_factory=dict)
    nurses: dict[str, Actor] = field(default_factory=dict)

    def _next(self) -> int:
        self.counter += 1
        return self.counter

    def unit(self, code: str = "PLAST-W3", timezone: str = "Europe/London") -> Unit:
        if code not in self.units:
            self.units[code] = create_unit(
                self.session, SYSTEM, code=code, name=f"Ward {code}", timezone=timezone
            )
        return self.units[code]

    def user(self, role: str = Role.NURSE, *units: str, username: str | None = None) -> User:
        codes = list(units) or ([] if role in (Role.ADMIN, Role.AUDITOR) else [self.unit().code])
        for code in codes:
            self.unit(code)
        with self.app.app_context():  # password hashing reads the app's argon2 settings
            return create_user(
                self.session,
                SYSTEM,
                username=username or f"{role.replace('_', '')}{self._next()}",
                display_name=f"Test {role}",
                role=role,
                password=PASSWORD,
                unit_codes=codes,
            )

    def patient(self, unit: str = "PLAST-W3", bed: str | None = None, name: str = "") -> Patient:
        number = self._next()
        self.unit(unit)
        return admit_patient(
            self.session,
            SYSTEM,
            unit_code=unit,
            details=PatientDetails(
                mrn=f"MRN{number:05d}",
                name=name or f"Patient {number}",
                date_of_birth=date(1960, 1, 1),
                bed=bed if bed is not None else str(number),
            ),
        )

    def reconstruction(
        self,
        patient: Patient | None = None,
        *,
        hours_ago: float = 3,
        surgery_end_at: datetime | None = None,
        buried: bool = False,
        unit: str = "PLAST-W3",
    ) -> Reconstruction:
        patient = patient or self.patient(unit)
        return add_reconstruction(
            self.session,
            SYSTEM,
            patient.id,
            ReconstructionDetails(
                procedure="DIEP free flap",
                flap_kind=FlapKind.FREE,
                site="breast",
                side=Side.LEFT,
                surgery_end_at=surgery_end_at or utcnow() - timedelta(hours=hours_ago),
                surgeon="Ms Surgeon",
                buried=buried,
            ),
        )

    def check(
        self,
        reconstruction: Reconstruction,
        *,
        minutes_ago: float = 0,
        taken_at: datetime | None = None,
        actor: Actor | None = None,
        **values: Any,
    ) -> Check:
        values = values or {"colour": "pink"}
        taken = taken_at or utcnow() - timedelta(minutes=minutes_ago)
        unit_code = reconstruction.patient.unit.code
        if actor is None and unit_code not in self.nurses:
            self.nurses[unit_code] = self.actor(self.user(Role.NURSE, unit_code))
        recorder = actor or self.nurses[unit_code]
        return record_check(
            self.session, recorder, reconstruction.id, CheckValues(taken_at=taken, **values)
        ).check

    @staticmethod
    def actor(user: User) -> Actor:
        return Actor(
            user_id=user.id,
            username=user.username,
            role=str(user.role),
            unit_codes=frozenset(unit.code for unit in user.units),
            all_units=user.sees_every_unit,
        )


@pytest.fixture
def make(app: Flask, session: Session) -> Factory:
    return Factory(app, session)


# --- logged-in clients ----------------------------------------------------------------------

_CSRF = re.compile(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"')


class Browser:
    """A test client that logs in and posts forms with their CSRF token, like a browser."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def csrf_token(self, page: str = "/login") -> str:
        html = self.client.get(page).get_data(as_text=True)
        found = _CSRF.search(html)
        if found is None:
            found = _CSRF.search(self.client.get("/", follow_redirects=True).get_data(as_text=True))
        assert found is not None, "no CSRF token on the page"
        return found.group(1)

    def login(self, username: str, password: str = PASSWORD) -> Any:
        token = self.csrf_token("/login")
        return self.client.post(
            "/login", data={"username": username, "password": password, "csrf_token": token}
        )

    def get(self, url: str, **kwargs: Any) -> Any:
        return self.client.get(url, **kwargs)

    def post(self, url: str, data: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        form = dict(data or {})
        form.setdefault("csrf_token", self.csrf_token(url))
        return self.client.post(url, data=form, **kwargs)


@pytest.fixture
def browser(client: FlaskClient) -> Browser:
    return Browser(client)


@pytest.fixture
def logged_in(app: Flask, make: Factory) -> Any:
    """logged_in(role, *units) -> (Browser, User): a fresh client logged in as a new user."""

    def log_in(role: str = Role.NURSE, *units: str) -> tuple[Browser, User]:
        user = make.user(role, *units)
        browser = Browser(app.test_client())
        response = browser.login(user.username)
        assert response.status_code == 302, response.get_data(as_text=True)
        return browser, user

    return log_in


@contextmanager
def count_queries(app: Flask) -> Iterator[list[str]]:
    """Collect the SQL statements the app sends while the block runs."""
    statements: list[str] = []

    def remember(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK", "PRAGMA")):
            statements.append(statement)

    engine = engine_of(app)
    event.listen(engine, "before_cursor_execute", remember)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", remember)


@pytest.fixture
def now() -> datetime:
    return utcnow()


# --- the API, as a device or another system calls it ------------------------------------------

API = "/api/v1"


class Api:
    """A test client that sends its bearer token, as a device or another system would."""

    def __init__(self, client: FlaskClient, token: str, user: User) -> None:
        self.client = client
        self.token = token
        self.user = user

    def open(self, method: str, path: str, headers: dict[str, str] | None = None, **kwargs: Any):
        sent = {"Authorization": f"Bearer {self.token}", **(headers or {})}
        return self.client.open(API + path, method=method, headers=sent, **kwargs)

    def get(self, path: str, **kwargs: Any):
        return self.open("GET", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any):
        if body is not None:
            kwargs["json"] = body
        return self.open("POST", path, **kwargs)

    def put(self, path: str, body: Any, **kwargs: Any):
        return self.open("PUT", path, json=body, **kwargs)

    def patch(self, path: str, body: Any, **kwargs: Any):
        return self.open("PATCH", path, json=body, **kwargs)


def bearer(api: Api) -> dict[str, str]:
    return {"Authorization": f"Bearer {api.token}"}


@pytest.fixture
def api(app: Flask, make, session: Session):
    """api(role, *units) -> Api: a new account of that role and a token acting as it."""

    def connect(role: str = Role.NURSE, *units: str) -> Api:
        user = make.user(role, *units)
        _, plain = create_token(session, SYSTEM, user.username, name=f"tests {user.username}")
        return Api(app.test_client(), plain, user)

    return connect


# --- a webhook receiver ------------------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.close()


def seen(session: Session) -> Session:
    """The test's session with fresh rows: senders wrote through sessions of their own."""
    session.rollback()
    session.expire_all()
    return session


# --- running on several workers -----------------------------------------------------------------

# The files that take longest, heaviest first. README's test command runs the suite on a worker
# per core, a file to a worker (`--dist loadfile`: a file's browser or servers start once);
# starting these first keeps one worker from being left with a long file at the end.
HEAVIEST_FIRST = (
    "test_browser.py",
    "test_api_schemathesis.py",
    "test_live_serve.py",
    "test_cli.py",
    "test_access.py",
    "test_exports.py",
    "test_research.py",
    "test_charts.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: number for number, name in enumerate(HEAVIEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest in order
