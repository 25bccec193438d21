"""A server killed outright in the middle of sustained posting: after a restart, every check
that was answered 201 is there, and the audit chain verifies."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import select

from flapwatch.domain.vocabulary import Role
from flapwatch.models import Check
from flapwatch.services import SYSTEM
from flapwatch.services.audit import verify_audit_trail
from flapwatch.services.tokens import create_token
from tests.servers import free_port, wait_until_ready

pytestmark = pytest.mark.slow


def _serve(database_url: str, instance: Path, port: int) -> subprocess.Popen[bytes]:
    environment = {
        **{key: value for key, value in os.environ.items() if not key.startswith("FLAPWATCH_")},
        "FLAPWATCH_DATABASE_URL": database_url,
        "FLAPWATCH_SECRET_KEY": "durability-test-secret-key-0123456789abcdef",
        "FLAPWATCH_INSTANCE_PATH": str(instance),
        "FLAPWATCH_NOTIFIER_THREAD": "false",
        "FLAPWATCH_REQUEST_LOG": "false",
    }
    command = [
        str(Path(sys.executable).with_name("flapwatch")), "serve", "--port", str(port),
        "--workers", "2", "--threads", "4",
    ]  # fmt: skip
    # A session of its own: the kill takes the master and its workers at once, as a power
    # cut or an OOM kill of the machine's server would.
    return subprocess.Popen(  # noqa: S603 - our own command line
        command,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=(instance / "server.log").open("ab"),
        start_new_session=True,
    )


def test_every_check_answered_201_survives_the_server_being_killed_mid_posting(
    backend, database_url, tmp_path, make, session
):
    flaps = [make.reconstruction(hours_ago=6) for _ in range(3)]
    nurse = make.user(Role.NURSE, "PLAST-W3")
    _, token = create_token(session, SYSTEM, nurse.username, name="durability")
    session.commit()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = _serve(database_url, tmp_path, port)
    acknowledged: list[int] = []
    stop = threading.Event()

    def keep_posting(flap_id: int, number: int) -> None:
        sent = 0
        while not stop.is_set():
            sent += 1
            body = json.dumps(
                {
                    "taken_at": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
                    "colour": "pink",
                    "doppler_arterial": "present",
                }
            ).encode()
            request = urllib.request.Request(  # noqa: S310 - loopback
                f"{url}/api/v1/reconstructions/{flap_id}/checks",
                data=body,
                method="POST",
                headers={
                    "Authorization": f"Bearer {token}",
                    "Content-Type": "application/json",
                    "Idempotency-Key": f"kill-{number}-{sent}",
                },
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
                    if answer.status == 201:
                        acknowledged.append(json.load(answer)["id"])
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.05)  # killed, or not up: no 201, so nothing promised

    try:
        wait_until_ready(url)
        posters = [
            threading.Thread(target=keep_posting, args=(flaps[n % 3].id, n)) for n in range(6)
        ]
        for poster in posters:
            poster.start()
        deadline = time.monotonic() + 60
        while len(acknowledged) < 30 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.killpg(server.pid, signal.SIGKILL)  # mid-posting: requests are in flight
        server.wait(timeout=30)
        time.sleep(0.5)
        stop.set()
        for poster in posters:
            poster.join(timeout=30)
        assert len(acknowledged) >= 30

        server = _serve(database_url, tmp_path, port)
        wait_until_ready(url)
        session.rollback()
        stored = set(session.scalars(select(Check.id)))
        missing = sorted(set(acknowledged) - stored)
        assert missing == [], f"{len(missing)} checks answered 201 were lost"
        assert len(set(acknowledged)) == len(acknowledged)
        assert verify_audit_trail(session).broken is None
        # And the restarted server serves them.
        listed = urllib.request.Request(  # noqa: S310 - loopback
            f"{url}/api/v1/reconstructions/{flaps[0].id}/checks?limit=200",
            headers={"Authorization": f"Bearer {token}"},
        )
        with urllib.request.urlopen(listed, timeout=10) as answer:  # noqa: S310
            assert answer.status == 200
    finally:
        stop.set()
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
