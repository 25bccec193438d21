"""The event stream as `flapwatch serve` answers it: from its event loop (an open stream holds
none of the pages' threads), fed across app servers by PostgreSQL's LISTEN/NOTIFY, on SQLite
by looking for new rows; against real server processes."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.request
from datetime import UTC, datetime

import pytest

from flapwatch.db import EXTENSION_KEY
from flapwatch.domain.vocabulary import Role
from flapwatch.services import SYSTEM
from flapwatch.services.live import publish
from flapwatch.services.tokens import create_token
from tests.servers import EventStream, free_port, serve_process, wait_until_ready
from tests.test_browser import chromium  # noqa: F401 - the browser fixture

pytestmark = pytest.mark.slow


def post_check(url: str, token: str, flap_id: int, **values: str) -> int:
    body = {"taken_at": datetime.now(UTC).isoformat(timespec="seconds"), **values}
    request = urllib.request.Request(  # noqa: S310 - loopback
        f"{url}/api/v1/reconstructions/{flap_id}/checks",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
        return int(answer.status)


@pytest.fixture
def servers(database_url, tmp_path, backend):
    """Two app servers on the same database (PostgreSQL), or one (SQLite: one machine)."""
    running = []

    def start(count: int = 2 if backend == "postgresql" else 1, **options) -> list[str]:
        urls = []
        for number in range(count):
            port = free_port()
            running.append(serve_process(database_url, tmp_path / f"s{number}", port, **options))
            urls.append(f"http://127.0.0.1:{port}")
        for url in urls:
            wait_until_ready(url)
        return urls

    yield start
    for process in running:
        os.killpg(process.pid, signal.SIGTERM)
    for process in running:
        process.wait(timeout=30)


def test_a_red_check_saved_on_one_server_reaches_a_stream_on_the_other(servers, make, session):
    flap = make.reconstruction(hours_ago=6)
    nurse = make.user(Role.NURSE, "PLAST-W3")
    surgeon = make.user(Role.SURGEON, "PLAST-W3")
    _, nurse_token = create_token(session, SYSTEM, nurse.username, name="tablet")
    _, surgeon_token = create_token(session, SYSTEM, surgeon.username, name="phone")
    session.commit()
    urls = servers()
    stream = EventStream(f"{urls[-1]}/api/v1/units/PLAST-W3/events", surgeon_token)
    try:
        assert stream.status == 200  # and listening: nothing committed from now is missed
        assert (
            post_check(urls[0], nurse_token, flap.id, colour="dusky", capillary_refill="brisk")
            == 201
        )
        events = stream.wait_for(2)
        kinds = [kind for _, kind, _, _ in events]
        assert kinds[:2] == ["escalation.opened", "check.recorded"]
        assert events[0][2]["severity"] == "red" and events[1][2]["reconstruction_id"] == flap.id
    finally:
        stream.close()


def test_an_event_committed_after_a_later_drawn_one_still_reaches_the_stream(
    servers, backend, app, make, session
):
    """Two saves at once: the first to draw its event's id commits last. A server that read
    "events after the last one seen" would pass over it."""
    if backend != "postgresql":
        pytest.skip("two write transactions at once: PostgreSQL (SQLite has one writer)")
    first_flap, second_flap = make.reconstruction(hours_ago=6), make.reconstruction(hours_ago=5)
    surgeon = make.user(Role.SURGEON, "PLAST-W3")
    _, token = create_token(session, SYSTEM, surgeon.username, name="phone")
    session.commit()
    unit_id = first_flap.patient.unit_id
    (url, *_) = servers(1)
    stream = EventStream(f"{url}/api/v1/units/PLAST-W3/events", token)
    slow, quick = app.extensions[EXTENSION_KEY](), app.extensions[EXTENSION_KEY]()
    try:
        assert stream.status == 200
        drawn_first = publish(slow, unit_id, "check.recorded", reconstruction_id=first_flap.id)
        drawn_later = publish(quick, unit_id, "check.recorded", reconstruction_id=second_flap.id)
        assert drawn_first.id < drawn_later.id
        quick.commit()
        assert [event[0] for event in stream.wait_for(1)] == [drawn_later.id]
        slow.commit()
        received = [event[0] for event in stream.wait_for(2)]
        assert received == [drawn_later.id, drawn_first.id]
    finally:
        slow.close()
        quick.close()
        stream.close()


def test_open_streams_hold_none_of_the_threads_that_serve_the_pages(servers, make, session):
    nurse = make.user(Role.NURSE, "PLAST-W3")
    _, token = create_token(session, SYSTEM, nurse.username, name="tablet")
    session.commit()
    (url,) = servers(1, workers=1, threads=2)
    streams = [EventStream(f"{url}/api/v1/units/PLAST-W3/events", token) for _ in range(12)]
    try:
        assert {stream.status for stream in streams} == {200}
        answered: list[int] = []

        def read_unit() -> None:
            request = urllib.request.Request(  # noqa: S310 - loopback
                f"{url}/api/v1/units/PLAST-W3", headers={"Authorization": f"Bearer {token}"}
            )
            with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
                answered.append(answer.status)

        readers = [threading.Thread(target=read_unit) for _ in range(4)]
        for reader in readers:
            reader.start()
        for reader in readers:
            reader.join(timeout=15)
        assert answered == [200, 200, 200, 200]  # twelve streams, two threads: still served
    finally:
        for stream in streams:
            stream.close()


def test_a_stream_is_refused_as_the_app_refuses_it(servers, make, session):
    make.unit("ORTHO-W1")
    elsewhere = make.user(Role.NURSE, "ORTHO-W1")
    _, token = create_token(session, SYSTEM, elsewhere.username, name="tablet")
    session.commit()
    (url, *_) = servers(1)
    assert EventStream(f"{url}/api/v1/units/PLAST-W3/events", token).status == 404
    assert EventStream(f"{url}/api/v1/units/PLAST-W3/events", "fwt_not-a-token").status == 401


@pytest.mark.browser
def test_a_flagged_save_on_one_server_shows_on_the_surgeons_queue_on_the_other_at_once(
    servers,
    make,
    session,
    chromium,  # noqa: F811 - the fixture imported above
):
    from tests.conftest import PASSWORD

    flap = make.reconstruction(make.patient(bed="5", name="Nia Live"), hours_ago=6)
    nurse = make.user(Role.NURSE, "PLAST-W3")
    surgeon = make.user(Role.SURGEON, "PLAST-W3")
    _, nurse_token = create_token(session, SYSTEM, nurse.username, name="tablet")
    session.commit()
    urls = servers()
    context = chromium.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.goto(f"{urls[-1]}/login")
    page.fill("#username", surgeon.username)
    page.fill("#password", PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.goto(f"{urls[-1]}/escalations")
    page.wait_for_selector("[data-live-state=open]", timeout=10_000)
    assert "Nia Live" not in page.content()
    tablet = chromium.new_context(viewport={"width": 768, "height": 1024})
    board = tablet.new_page()
    board.goto(f"{urls[-1]}/login")
    board.fill("#username", nurse.username)
    board.fill("#password", PASSWORD)
    board.get_by_role("button", name="Log in").click()
    board.wait_for_url("**/units/PLAST-W3/board")
    board.wait_for_selector("[data-live-state=open]", timeout=10_000)

    saved = time.monotonic()
    assert (
        post_check(urls[0], nurse_token, flap.id, colour="dusky", capillary_refill="brisk") == 201
    )
    # Well before the 30-second reload: the stream told the page.
    page.get_by_role("link", name="Nia Live", exact=True).wait_for(timeout=5_000)
    shown = time.monotonic() - saved
    print(f"save on one server -> the surgeon's queue on the other: {shown:.2f} s")
    assert shown < 5
    card = board.locator(".flap-card", has_text="Nia Live")
    card.get_by_text("Escalation open").wait_for(timeout=5_000)
    context.close()
    tablet.close()
