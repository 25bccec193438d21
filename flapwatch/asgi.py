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
from flapwatch.http.live import AUTHORIZE_ONLY, KEEPALIVE_S, frame, opening
from flapwatch.services.live import CHANNEL, events_after, latest_id

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

logger = logging.getLogger("flapwatch.live")
EVENTS_PATH = re.compile(r"^/api/v1/units/([^/]+)/events$")
SQLITE_LOOK_S = 0.5
# Events a slow client may fall behind by before its stream is ended (it reconnects and
# catches up from the table).
QUEUE_SIZE = 1000
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


class Broker:
    """This worker's watch on the live events table, and the streams waiting on each unit."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.streams: dict[int, set[asyncio.Queue[tuple[int, bytes] | None]]] = {}
        self.last = 0
        self._task: asyncio.Task[None] | None = None
        engine = engine_of(app)
        self.postgres = engine.dialect.name == "postgresql"
        self.dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run())  # the first stream starts it
            self.last = await asyncio.to_thread(self._latest)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def add(self, unit_id: int) -> asyncio.Queue[tuple[int, bytes] | None]:
        queue: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue(QUEUE_SIZE)
        self.streams.setdefault(unit_id, set()).add(queue)
        return queue

    def remove(self, unit_id: int, queue: asyncio.Queue[Any]) -> None:
        waiting = self.streams.get(unit_id, set())
        waiting.discard(queue)
        if not waiting:
            self.streams.pop(unit_id, None)

    def _latest(self) -> int:
        with self.app.extensions[EXTENSION_KEY]() as session:
            return latest_id(session)

    def _read(self, after: int) -> list[tuple[int, int, bytes]]:
        with self.app.extensions[EXTENSION_KEY]() as session:
            return [(e.id, e.unit_id, frame(e)) for e in events_after(session, None, after, _BATCH)]

    async def catch_up(self) -> None:
        """Hand every event since the last one read to the streams of its unit."""
        while True:
            events = await asyncio.to_thread(self._read, self.last)
            for event_id, unit_id, data in events:
                self.last = max(self.last, event_id)
                for queue in list(self.streams.get(unit_id, ())):
                    try:
                        queue.put_nowait((event_id, data))
                    except asyncio.QueueFull:
                        # Too far behind: its stream ends, and the browser reconnects and
                        # catches up from the table.
                        self.remove(unit_id, queue)
                        while not queue.empty():
                            queue.get_nowait()
                        queue.put_nowait(None)
            if len(events) < _BATCH:
                return

    async def _run(self) -> None:
        while True:
            try:
                if self.postgres:
                    await self._listen()
                else:
                    await self.catch_up()
                    await asyncio.sleep(SQLITE_LOOK_S)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("Live events: the database is out of reach; trying again.")
                await asyncio.sleep(2)

    async def _listen(self) -> None:
        import psycopg

        async with await psycopg.AsyncConnection.connect(self.dsn, autocommit=True) as listening:
            await listening.execute(f"LISTEN {CHANNEL}")
            await self.catch_up()  # anything committed before the LISTEN began
            async for _ in listening.notifies():
                await self.catch_up()


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
    queue = broker.add(unit_id)
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
        for event_id, _unit, data in await asyncio.to_thread(_replay, app, unit_id, last):
            last = max(last, event_id)
            await send({"type": "http.response.body", "body": data, "more_body": True})
        await _follow(queue, last, receive, send)
    except OSError:
        pass  # the client went away mid-send
    finally:
        broker.remove(unit_id, queue)


def _replay(app: Flask, unit_id: int, after: int) -> list[tuple[int, int, bytes]]:
    with app.extensions[EXTENSION_KEY]() as session:
        return [(e.id, e.unit_id, frame(e)) for e in events_after(session, [unit_id], after)]


async def _follow(
    queue: asyncio.Queue[tuple[int, bytes] | None], last: int, receive: Receive, send: Send
) -> None:
    async def gone() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    disconnected = asyncio.create_task(gone())
    try:
        while not disconnected.done():
            waiting = asyncio.create_task(queue.get())
            done, _ = await asyncio.wait(
                {waiting, disconnected}, timeout=KEEPALIVE_S, return_when=asyncio.FIRST_COMPLETED
            )
            if waiting not in done:
                waiting.cancel()
                if not disconnected.done():
                    await send(
                        {
                            "type": "http.response.body",
                            "body": b": keepalive\n\n",
                            "more_body": True,
                        }
                    )
                continue
            # What has come meanwhile goes in one write (a check and its escalation together).
            items = [waiting.result()]
            while not queue.empty():
                items.append(queue.get_nowait())
            if None in items:
                break  # fell too far behind: end, and the browser reconnects
            fresh = [(event_id, data) for event_id, data in items if event_id > last]  # type: ignore[misc]
            if fresh:  # not all sent by the replay already
                last = fresh[-1][0]
                body = b"".join(data for _, data in fresh)
                await send({"type": "http.response.body", "body": body, "more_body": True})
        if not disconnected.done():
            await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        disconnected.cancel()
