"""A database that stops answering: 503 with a clear page or JSON error, nothing half-saved,
and service back by itself when the database is (no restart)."""

from __future__ import annotations

import contextlib
import socket
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select

from flapwatch import create_app
from flapwatch.db import engine_of
from flapwatch.models import Check, utcnow
from tests.conftest import TEST_SETTINGS, Browser


class Relay:
    """A TCP relay in front of PostgreSQL that a test can cut, like a network or server
    failure, and restore."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.up = True
        self.sockets: list[socket.socket] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            server = socket.create_connection(self.target)
            with self.lock:
                self.sockets += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.up = False
        with self.lock:
            for end in self.sockets:
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
            self.sockets.clear()

    def restore(self) -> None:
        self.up = True

    def close(self) -> None:
        self.cut()
        self.listener.close()


@pytest.fixture
def relay(backend: str) -> Iterator[Relay]:
    if backend != "postgresql":
        pytest.skip("a network between app and database: PostgreSQL")
    relay = Relay(("127.0.0.1", 5432))
    yield relay
    relay.close()


def _app_through(relay: Relay, database_url: str, tmp_path: Path) -> Flask:
    assert "127.0.0.1:5432" in database_url
    url = database_url.replace("127.0.0.1:5432", f"127.0.0.1:{relay.port}")
    return create_app({**TEST_SETTINGS, "DATABASE_URL": url, "INSTANCE_PATH": str(tmp_path)})


def _checks(session) -> int:
    session.rollback()
    return int(session.scalar(select(func.count(Check.id))))


def _form(flap_id: int, key: str) -> dict[str, str]:
    return {
        "taken_at": utcnow().astimezone().strftime("%Y-%m-%dT%H:%M"),
        "colour": "pink",
        "idempotency_key": key,
    }


def test_with_postgresql_unreachable_pages_and_api_answer_503_then_recover_by_themselves(
    relay, database_url, tmp_path, make, session
):
    flap = make.reconstruction()
    nurse = make.user("nurse", "PLAST-W3")
    app = _app_through(relay, database_url, tmp_path)
    try:
        browser = Browser(app.test_client())
        assert browser.login(nurse.username).status_code == 302
        assert browser.get("/units/PLAST-W3/board").status_code == 200
        token = browser.csrf_token(f"/reconstructions/{flap.id}/checks/new")
        before = _checks(session)

        relay.cut()
        page = browser.get("/units/PLAST-W3/board")
        assert page.status_code == 503
        assert page.headers["Retry-After"] == "30"
        text = page.get_data(as_text=True)
        assert "cannot be reached" in text and "kept on the tablet" in text
        api = browser.get("/api/v1/units")
        assert api.status_code == 503
        assert api.json["error"]["code"] == "unavailable"
        saved = browser.client.post(
            f"/reconstructions/{flap.id}/checks/new",
            data={**_form(flap.id, "outage-1"), "csrf_token": token},
        )
        assert saved.status_code == 503  # the tablet's service worker keeps it (browser test)
        assert _checks(session) == before  # checked on a connection of its own, not the relay

        relay.restore()
        assert browser.get("/units/PLAST-W3/board").status_code == 200
        saved = browser.client.post(
            f"/reconstructions/{flap.id}/checks/new",
            data={**_form(flap.id, "outage-1"), "csrf_token": token},
        )
        assert saved.status_code == 302
        assert _checks(session) == before + 1
        assert app.test_client().get("/readyz").status_code == 200
    finally:
        engine_of(app).dispose()


def test_readyz_says_the_database_is_unreachable_while_healthz_stays_up(
    relay, database_url, tmp_path
):
    app = _app_through(relay, database_url, tmp_path)
    try:
        client = app.test_client()
        assert client.get("/readyz").status_code == 200
        relay.cut()
        assert client.get("/readyz").status_code == 503
        assert client.get("/healthz").status_code == 200
        relay.restore()
        assert client.get("/readyz").status_code == 200
    finally:
        engine_of(app).dispose()


def test_with_sqlite_locked_past_its_busy_timeout_a_save_answers_503_and_nothing_is_stored(
    backend, database_url, tmp_path, make, session
):
    if backend != "sqlite":
        pytest.skip("SQLite's own failure: another process holding the write lock")
    flap = make.reconstruction()
    nurse = make.user("nurse", "PLAST-W3")
    app = create_app(
        {
            **TEST_SETTINGS,
            "DATABASE_URL": database_url,
            "INSTANCE_PATH": str(tmp_path / "app"),
            "SQLITE_BUSY_TIMEOUT_MS": 300,
        }
    )
    browser = Browser(app.test_client())
    assert browser.login(nurse.username).status_code == 302
    token = browser.csrf_token(f"/reconstructions/{flap.id}/checks/new")
    before = _checks(session)
    session.close()

    holder = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process writing, for longer than the timeout
    try:
        saved = browser.client.post(
            f"/reconstructions/{flap.id}/checks/new",
            data={**_form(flap.id, "locked-1"), "csrf_token": token},
        )
        assert saved.status_code == 503
        api = browser.client.post(
            f"/api/v1/reconstructions/{flap.id}/checks",
            json={"taken_at": utcnow().isoformat(), "colour": "pink"},
            headers={"X-CSRFToken": token, "Idempotency-Key": "locked-2"},
        )
        assert api.status_code == 503 and api.json["error"]["code"] == "unavailable"
    finally:
        holder.rollback()
        holder.close()
    assert _checks(session) == before
    saved = browser.client.post(
        f"/reconstructions/{flap.id}/checks/new",
        data={**_form(flap.id, "locked-1"), "csrf_token": token},
    )
    assert saved.status_code == 302
    assert _checks(session) == before + 1
    engine_of(app).dispose()
