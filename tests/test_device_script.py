"""The example device script, run as its own process against a live server: it must manage
with the documented API alone."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select
from werkzeug.serving import make_server

from flapwatch.domain.vocabulary import Role
from flapwatch.models import Check, Escalation, Reconstruction
from flapwatch.services import SYSTEM
from flapwatch.services.tokens import create_token

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "device.py"


@pytest.fixture
def live_server(app):
    """The app on a loopback port, recording every request it answers."""
    seen: list[tuple[str, str, int]] = []
    inner = app.wsgi_app

    def recording(environ, start_response):
        def start(status, headers, exc_info=None):
            seen.append((environ["REQUEST_METHOD"], environ["PATH_INFO"], int(status[:3])))
            return start_response(status, headers, exc_info)

        return inner(environ, start)

    app.wsgi_app = recording
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", seen
    server.shutdown()
    app.wsgi_app = inner


def _documented(path: str, document: dict) -> bool:
    for template in document["paths"]:
        pattern = re.sub(r"\{\w+\}", r"[^/]+", "/api/v1" + template)
        if re.fullmatch(pattern, path):
            return True
    return False


def test_device_script_creates_a_flap_posts_100_checks_and_reads_flags_and_escalations(
    live_server, make, session, client
):
    url, seen = live_server
    make.unit("PLAST-W3")
    make.user(Role.UNIT_ADMIN, "PLAST-W3", username="monitor-gateway")
    _, token = create_token(make.session, SYSTEM, "monitor-gateway", name="device test")

    result = subprocess.run(  # noqa: S603 - our own script, with our own arguments
        [sys.executable, str(SCRIPT), "--url", url, "--token", token, "--unit", "PLAST-W3"],
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert result.returncode == 0, result.stderr
    flap_id = session.scalar(select(Reconstruction.id))
    stored = dict(
        session.execute(
            select(Check.source, func.count(Check.id))
            .where(Check.reconstruction_id == flap_id)
            .group_by(Check.source)
        ).all()
    )
    assert stored == {"bedside": 100, "device": 7}
    assert "7 readings from T.Ox gateway 2 stored" in result.stdout
    escalation = session.scalars(select(Escalation)).one()
    assert escalation.severity == "red" and escalation.closed_at is None
    assert "RED Venous congestion suspected" in result.stdout
    assert f"open escalation {escalation.id} (red)" in result.stdout
    document = client.get("/api/v1/openapi.json").json
    assert [request for request in seen if not _documented(request[1], document)] == []
    assert all(status < 400 for _, _, status in seen)
    assert sum(1 for method, path, _ in seen if method == "POST" and "/checks" in path) == 100
