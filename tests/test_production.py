"""Running in production: health and readiness for a load balancer, a request log a machine can
read, and several stateless app servers on one PostgreSQL."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.cookiejar import CookieJar

import pytest
from sqlalchemy import text

from flapwatch import create_app
from flapwatch.db import engine_of
from flapwatch.domain.vocabulary import Role
from flapwatch.migrate import head_revision
from flapwatch.services import SYSTEM
from flapwatch.services.tokens import create_token
from tests.conftest import PASSWORD, TEST_SETTINGS, count_queries
from tests.servers import free_port, wait_until_ready


def test_healthz_answers_from_the_process_alone(app, client):
    with count_queries(app) as statements:
        response = client.get("/healthz")
    assert (response.status_code, response.json) == (200, {"status": "ok"})
    assert statements == []


def test_readyz_checks_the_database_and_its_migrations(app, client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json == {"status": "ready", "database": "ok", "migration": head_revision()}


def test_readyz_refuses_a_database_behind_the_migrations(app, client):
    engine = engine_of(app)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0005'"))
    try:
        response = client.get("/readyz")
    finally:
        with engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = :head"),
                               {"head": head_revision()})  # fmt: skip
    assert response.status_code == 503
    assert "run flapwatch init-db" in response.json["problem"]


def test_readyz_says_so_when_the_database_cannot_be_reached(tmp_path):
    unreachable = create_app(
        {
            **TEST_SETTINGS,
            "DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:1/nowhere?connect_timeout=2",
            "INSTANCE_PATH": str(tmp_path),
        }
    )
    client = unreachable.test_client()
    assert client.get("/healthz").status_code == 200  # the process itself is fine
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json["problem"] == "The database cannot be reached."


def test_each_request_is_logged_as_one_json_line_with_its_id_and_duration(logged_in, caplog, make):
    browser, nurse = logged_in("nurse", "PLAST-W3")
    caplog.set_level(logging.INFO, logger="flapwatch.requests")

    response = browser.get("/units/PLAST-W3/board", headers={"X-Request-ID": "ward-tablet-7.42"})

    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "flapwatch.requests"]
    (line,) = [entry for entry in lines if entry["path"] == "/units/PLAST-W3/board"]
    assert line["request_id"] == response.headers["X-Request-ID"] == "ward-tablet-7.42"
    assert (line["method"], line["status"], line["endpoint"]) == ("GET", 200, "ward.board")
    assert line["user_id"] == str(nurse.id)
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0


# --- two app servers, one PostgreSQL ---------------------------------------------------------


@pytest.fixture
def two_servers(backend, database_url, tmp_path) -> Iterator[list[str]]:
    """Two `flapwatch serve` processes (gunicorn) on one database, each with its own instance
    folder (so nothing is shared but the database and the secret key)."""
    if backend != "postgresql":
        pytest.skip("several app servers share one PostgreSQL")
    processes, urls = [], []
    for name in ("a", "b"):
        port = free_port()
        instance = tmp_path / name
        instance.mkdir()
        env = {
            **os.environ,
            "FLAPWATCH_DATABASE_URL": database_url,
            "FLAPWATCH_SECRET_KEY": "one-secret-for-every-server",
            "FLAPWATCH_INSTANCE_PATH": str(instance),
            "FLAPWATCH_NOTIFIER_THREAD": "false",
            "FLAPWATCH_SWEEP_ON_REQUESTS": "false",
        }
        processes.append(
            subprocess.Popen(  # noqa: S603 - our own command line
                [
                    sys.executable,
                    "-m",
                    "flapwatch",
                    "serve",
                    "--port",
                    str(port),
                    "--workers",
                    "1",
                    "--threads",
                    "2",
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=(instance / "server.log").open("wb"),
            )  # fmt: skip
        )
        urls.append(f"http://127.0.0.1:{port}")
    try:
        for url in urls:
            wait_until_ready(url)
        yield urls
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


@pytest.mark.slow
def test_a_check_written_through_one_server_is_seen_through_the_other(two_servers, make, session):
    first, second = two_servers
    flap = make.reconstruction(hours_ago=3)
    nurse = make.user(Role.NURSE, "PLAST-W3", username="ward.nurse")
    _, token = create_token(session, SYSTEM, nurse.username, name="two servers")
    bearer = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    taken = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() - 60))
    body = json.dumps({"taken_at": taken, "colour": "pink", "doppler_arterial": "present"})
    written = urllib.request.Request(  # noqa: S310
        f"{first}/api/v1/reconstructions/{flap.id}/checks",
        data=body.encode(),
        headers=bearer,
        method="POST",
    )
    with urllib.request.urlopen(written, timeout=10) as response:  # noqa: S310
        check = json.load(response)
    read = urllib.request.Request(  # noqa: S310
        f"{second}/api/v1/reconstructions/{flap.id}/checks", headers=bearer
    )
    with urllib.request.urlopen(read, timeout=10) as response:  # noqa: S310
        listed = json.load(response)

    assert check["id"] in [item["id"] for item in listed["items"]]

    # A session made on one server is good on the other: signed cookies, nothing in memory.
    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(f"{first}/login", timeout=10).read().decode()
    csrf = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode(
        {"username": nurse.username, "password": PASSWORD, "csrf_token": csrf}
    ).encode()
    opener.open(f"{first}/login", data=form, timeout=10)
    board = opener.open(f"{second}/units/PLAST-W3/board", timeout=10)
    assert board.status == 200 and board.url.endswith("/units/PLAST-W3/board")
    assert flap.patient.name in board.read().decode()
