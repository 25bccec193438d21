"""The unit's event stream (`GET /api/v1/units/{code}/events`, server-sent events) as the
WSGI app serves it, and the wire format both servers write.

`flapwatch serve` answers the stream itself, in its event loop (flapwatch/asgi.py), so an open
stream holds no thread; it asks this app only whether the caller may follow the unit
(`AUTHORIZE_ONLY` in the WSGI environ, which no client can set). Under a plain WSGI server
(`flask run`, the tests' server) this app streams itself, for `LIVE_WSGI_STREAM_SECONDS` at a
time; the browser reconnects with `Last-Event-ID`. This stream reads the table by id, so on
PostgreSQL an event committed after a later-drawn one can be passed over (its page reloads on
its 30-second fallback); `flapwatch serve` takes events from their notifications instead.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from flask import Flask, Response, current_app, request, stream_with_context

from flapwatch.db import EXTENSION_KEY
from flapwatch.models import LiveEvent
from flapwatch.services.live import bell, data_of, events_after, latest_id

# An environ key, set only by flapwatch/asgi.py: answer whether the caller may follow the unit.
AUTHORIZE_ONLY = "flapwatch.live.authorize_only"
# How long a browser waits before reconnecting to a stream that ended or broke (ms).
RETRY_MS = 2000
KEEPALIVE_S = 20.0


def frame(event: LiveEvent) -> bytes:
    """One event on the wire: `id`, `event` (its kind) and `data` (its JSON)."""
    return framed(event.id, event.kind, data_of(event.id, event.kind, event.payload))


def framed(event_id: int, kind: str, data: str) -> bytes:
    return f"id: {event_id}\nevent: {kind}\ndata: {data}\n\n".encode()


def opening() -> bytes:
    return f"retry: {RETRY_MS}\n: flapwatch live events\n\n".encode()


def start_after(session: Any) -> int:
    """Where the caller's stream starts: after its `Last-Event-ID` (a reconnection), after
    `?after=` (a page that knows what it shows), or from now."""
    for given in (request.headers.get("Last-Event-ID"), request.args.get("after")):
        if given is not None and given.strip().isdigit() and len(given.strip()) < 19:
            return int(given.strip())
    return latest_id(session)


def stream_response(unit_id: int, after: int) -> Response:
    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    if request.environ.get(AUTHORIZE_ONLY):
        return Response(
            json.dumps({"unit_id": unit_id, "after": after}),
            mimetype="application/json",
            headers=headers,
        )
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    return Response(
        stream_with_context(_wsgi_stream(app, unit_id, after)),
        mimetype="text/event-stream",
        headers=headers,
    )


def _wsgi_stream(app: Flask, unit_id: int, after: int) -> Iterator[bytes]:
    """Events as they commit, for a while: woken in-process when one is published here,
    looking every second otherwise (another process wrote it)."""
    factory = app.extensions[EXTENSION_KEY]
    until = time.monotonic() + float(app.config.get("LIVE_WSGI_STREAM_SECONDS", 300))
    yield opening()
    last, quiet_since, rings = after, time.monotonic(), bell.rings
    while True:  # at least one look: what is there already
        with factory() as session:
            events = events_after(session, [unit_id], last)
        for event in events:
            last = event.id
            yield frame(event)
        if events:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > KEEPALIVE_S:
            quiet_since = time.monotonic()
            yield b": keepalive\n\n"
        if time.monotonic() >= until:
            return
        rings = bell.wait(rings, min(1.0, max(0.0, until - time.monotonic())))
