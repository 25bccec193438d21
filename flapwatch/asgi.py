"""What `flapwatch serve` runs in each gunicorn worker: one asyncio event loop that answers the
units' event streams itself, and hands every other request to the Flask app on a pool of
threads (a2wsgi), on the same address.

A ward has dozens of tablets and phones following their unit all day. An open stream here is
a coroutine waiting on a queue, not a thread: `SERVE_THREADS` stay free for the pages and the
API however many streams are open. Each worker has one `Broker`, which learns of new events
from PostgreSQL's LISTEN (one connection per worker, woken by the `pg_notify` each change
sends as it commits) or, on SQLite, by looking for new rows twice a second, reads them once
and hands each to the streams of its unit.

Whether a caller may follow a unit is the Flask app's to say, as for any request (session or
bearer token, role, unit): the stream asks it, in a thread, with `AUTHORIZE_ONLY` set in the
WSGI environ, and sends back its refusal (401, 403, 404) as it is.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from a2wsgi import WSGIMiddleware
from flask import Flask
from uvicorn_worker import UvicornWorker
from werkzeug.test import EnvironBuilder, run_wsgi_app

from flapwatch.db import EXTENSION_KEY, engine_of
from flapwatch.http.live import AUTHORIZE_ONLY, KEEPALIVE_S, frame, framed, opening
from flapwatch.services.live import (
    CHANNEL_SQL,
    data_of,
    events_after,
    latest_id,
    parse_notification,
)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

logger = logging.getLogger("flapwatch.live")
EVENTS_PATH = re.compile(r"^/api/v1/units/([^/]+)/events$")
SQLITE_LOOK_S = 0.5
# Events are handed to the streams at most this often: the events of a burst go to each
# stream in one write (a check and its escalation, a busy minute on a large unit), not one
# wake-up and one write per event per stream. Pages reload a quarter of a second after an
# event anyway.
HAND_ON_S = 0.1
# How far a slow client may fall behind before its stream is ended (it reconnects and catches
# up from the table).
BEHIND_MAX_BYTES = 256 * 1024
# How long a new stream waits for its server to be listening before replaying and following.
LISTENING_WAIT_S = 5.0
_BATCH = 500
KEEPALIVE = b": keepalive\n\n"


class Worker(UvicornWorker):
    """gunicorn's worker for flapwatch: uvicorn's, with forwarded headers left to the app
    (FLAPWATCH_TRUSTED_PROXIES, ProxyFix): uvicorn would otherwise believe any local proxy."""

    CONFIG_KWARGS = {
        "loop": "asyncio",
        # httptools (C): a stream's sends cost a fraction of h11's, and there are many.
        "http": "httptools",
        "proxy_headers": False,
        "server_header": False,
        "lifespan": "on",
        # Open streams would hold a graceful stop forever: they are ended after this long
        # (each browser reconnects to another worker and catches up).
        "timeout_graceful_shutdown": 5,
    }


class Follower:
    """One open stream's side of the broker: the events handed to it and not yet sent."""

    def __init__(self) -> None:
        self.waiting: list[tuple[int, bytes]] = []
        self.size = 0
        self.behind = False  # fell too far behind: its stream ends
        self.wake = asyncio.Event()

    def hand(self, events: list[tuple[int, bytes]], size: int) -> None:
        if self.behind:
            return
        self.waiting.extend(events)
        self.size += size
        if self.size > BEHIND_MAX_BYTES:
            self.behind = True
            self.waiting.clear()
        self.wake.set()

    def take(self) -> list[tuple[int, bytes]]:
        events, self.waiting, self.size = self.waiting, [], 0
        self.wake.clear()
        return events


class Broker:
    """This worker's watch on the unit's live events, and the streams following each unit.

    On PostgreSQL it LISTENs on one connection of its own (outside the pages' pool) and takes
    each event from its notification as it commits, reading nothing; when it has to listen
    again (the database restarted) it first reads what committed meanwhile. On SQLite it reads
    the new rows twice a second. Events are handed on to the streams every `HAND_ON_S`.
    """

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.streams: dict[int, set[Follower]] = {}
        self.last = 0  # the highest event id taken: where reading again starts
        self.listening = asyncio.Event()
        self._pending: dict[int, list[tuple[int, bytes]]] = {}
        self._hand_on: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._starting: asyncio.Future[None] | None = None
        engine = engine_of(app)
        self.postgres = engine.dialect.name == "postgresql"
        self.dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)

    async def start(self) -> None:
        """Started by the first stream; every stream waits until it is listening (so that an
        event committed after the stream's replay reaches it), or for `LISTENING_WAIT_S`."""
        if self._task is None:
            if self._starting is None:
                self._starting = asyncio.ensure_future(self._begin())
            starting = self._starting
            try:
                await asyncio.shield(starting)  # a stream that goes cancels only its wait
            finally:
                if self._task is None and starting.done():
                    self._starting = None  # it failed: the next stream tries again
        try:
            async with asyncio.timeout(LISTENING_WAIT_S):
                await self.listening.wait()
        except TimeoutError:
            logger.warning("Live events: not listening yet; the stream starts anyway.")

    async def _begin(self) -> None:
        self.last = await asyncio.to_thread(self._latest)
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self._starting = None
        self.listening.clear()

    def add(self, unit_id: int) -> Follower:
        follower = Follower()
        self.streams.setdefault(unit_id, set()).add(follower)
        return follower

    def remove(self, unit_id: int, follower: Follower) -> None:
        following = self.streams.get(unit_id, set())
        following.discard(follower)
        if not following:
            self.streams.pop(unit_id, None)

    def take(self, unit_id: int, event_id: int, kind: str, data: str) -> None:
        """One committed event: kept for the unit's streams until the next hand-on."""
        self.last = max(self.last, event_id)
        if unit_id not in self.streams:
            return  # nobody here follows that unit
        self._pending.setdefault(unit_id, []).append((event_id, framed(event_id, kind, data)))
        if self._hand_on is None:
            self._hand_on = asyncio.get_running_loop().call_later(HAND_ON_S, self._hand_on_all)

    def _hand_on_all(self) -> None:
        self._hand_on = None
        pending, self._pending = self._pending, {}
        for unit_id, events in pending.items():
            size = sum(len(data) for _, data in events)
            for follower in list(self.streams.get(unit_id, ())):
                follower.hand(events, size)
                if follower.behind:
                    self.remove(unit_id, follower)

    def _latest(self) -> int:
        with self.app.extensions[EXTENSION_KEY]() as session:
            return latest_id(session)

    def _read(self, after: int) -> list[tuple[int, int, str, str]]:
        with self.app.extensions[EXTENSION_KEY]() as session:
            return [
                (e.unit_id, e.id, e.kind, data_of(e.id, e.kind, e.payload))
                for e in events_after(session, None, after, _BATCH)
            ]

    async def catch_up(self) -> None:
        """Take every event committed after the last one taken."""
        while True:
            events = await asyncio.to_thread(self._read, self.last)
            for event in events:
                self.take(*event)
            if len(events) < _BATCH:
                return

    async def _run(self) -> None:
        while True:
            try:
                if self.postgres:
                    await self._listen()
                else:
                    await self.catch_up()
                    self.listening.set()
                    await asyncio.sleep(SQLITE_LOOK_S)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.listening.clear()
                logger.exception("Live events: the database is out of reach; trying again.")
                await asyncio.sleep(2)

    async def _listen(self) -> None:
        import psycopg

        async with await psycopg.AsyncConnection.connect(self.dsn, autocommit=True) as listening:
            channel = await (await listening.execute(f"SELECT {CHANNEL_SQL}")).fetchone()
            await listening.execute(
                psycopg.sql.SQL("LISTEN {}").format(psycopg.sql.Identifier(channel[0]))
            )
            # What committed before the LISTEN began and after the last event taken. (Read
            # by id: an event drawn earlier and committed later than one read here is missed,
            # and its page reloads on its fallback: only ever across a reconnection.)
            await self.catch_up()
            self.listening.set()
            async for note in listening.notifies():
                try:
                    self.take(*parse_notification(note.payload))
                except ValueError:
                    logger.warning("Live events: a notification not ours: %r", note.payload[:80])


def create_asgi(app: Flask, threads: int) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """The worker's ASGI app: streams here, everything else to Flask on `threads` threads."""
    pages = WSGIMiddleware(app, workers=threads)  # type: ignore[arg-type]
    broker = Broker(app)

    async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send, broker)
        elif (
            scope["type"] == "http"
            and scope["method"] == "GET"
            and EVENTS_PATH.fullmatch(scope["path"])
        ):
            await _stream(app, broker, scope, receive, send)
        else:
            await pages(scope, receive, send)  # type: ignore[arg-type]

    asgi.broker = broker  # type: ignore[attr-defined]
    return asgi


async def _lifespan(receive: Receive, send: Send, broker: Broker) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await broker.stop()
            await send({"type": "lifespan.shutdown.complete"})
            return


def _authorize(app: Flask, scope: Scope) -> tuple[int, list[tuple[str, str]], bytes]:
    """The Flask app's answer to this stream request, without streaming: 200 with the unit
    and where to start, or its refusal."""
    headers = [
        (name.decode("latin-1"), value.decode("latin-1")) for name, value in scope["headers"]
    ]
    client = scope.get("client") or ("", 0)
    builder = EnvironBuilder(
        path=scope["path"],
        query_string=scope.get("query_string", b"").decode("latin-1"),
        method="GET",
        headers=headers,
        environ_base={
            "REMOTE_ADDR": client[0],
            "wsgi.url_scheme": scope.get("scheme", "http"),
            AUTHORIZE_ONLY: True,
        },
    )
    try:
        environ = builder.get_environ()
    finally:
        builder.close()
    body, status, answer_headers = run_wsgi_app(app, environ, buffered=True)
    try:
        content = b"".join(body)
    finally:
        getattr(body, "close", lambda: None)()
    return int(status.split(" ", 1)[0]), list(answer_headers.items()), content


async def _stream(app: Flask, broker: Broker, scope: Scope, receive: Receive, send: Send) -> None:
    status, headers, content = await asyncio.to_thread(_authorize, app, scope)
    if status != 200:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(n.lower().encode(), v.encode("latin-1")) for n, v in headers],
            }
        )
        await send({"type": "http.response.body", "body": content})
        return
    where = json.loads(content)
    unit_id, last = int(where["unit_id"]), int(where["after"])
    # The app's own headers (security headers, a refreshed session cookie) with the stream's.
    kept = [
        (name.lower().encode(), value.encode("latin-1"))
        for name, value in headers
        if name.lower() not in ("content-type", "content-length")
    ]
    follower = broker.add(unit_id)
    try:
        await broker.start()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream; charset=utf-8"), *kept],
            }
        )
        await send({"type": "http.response.body", "body": opening(), "more_body": True})
        replayed = set()
        for event_id, _unit, data in await asyncio.to_thread(_replay, app, unit_id, last):
            replayed.add(event_id)
            await send({"type": "http.response.body", "body": data, "more_body": True})
        await _follow(follower, replayed, receive, send)
    except OSError:
        pass  # the client went away mid-send
    finally:
        broker.remove(unit_id, follower)


def _replay(app: Flask, unit_id: int, after: int) -> list[tuple[int, int, bytes]]:
    with app.extensions[EXTENSION_KEY]() as session:
        return [(e.id, e.unit_id, frame(e)) for e in events_after(session, [unit_id], after)]


async def _follow(follower: Follower, replayed: set[int], receive: Receive, send: Send) -> None:
    """Send what the broker hands on, in one write each time, until the client goes; a comment
    after `KEEPALIVE_S` of quiet. An event handed on that the replay sent already is skipped
    (it committed while the replay read)."""
    gone = False

    async def watch() -> None:
        nonlocal gone
        while (await receive())["type"] != "http.disconnect":
            pass
        gone = True
        follower.wake.set()

    watching = asyncio.create_task(watch())
    loop = asyncio.get_running_loop()
    try:
        while not gone:
            quiet = loop.call_later(KEEPALIVE_S, follower.wake.set)
            await follower.wake.wait()
            quiet.cancel()
            if gone:
                break
            if follower.behind:
                break  # too far behind: end, and the browser reconnects and catches up
            events = follower.take()
            if replayed:
                events = [(event_id, data) for event_id, data in events if event_id not in replayed]
            body = b"".join(data for _, data in events) if events else KEEPALIVE
            await send({"type": "http.response.body", "body": body, "more_body": True})
        if not gone:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        watching.cancel()
