"""Open event streams against the pages: the ward board's latency and the check post's rate
with no stream open, then with 300 tablets and phones following the unit (each receiving every
event the posts make), on the same `flapwatch serve` in the same run; prints the ratios.

    python benchmarks/bench_streams.py [--database-url postgresql+psycopg://...] [--streams 300]

Loads the demo ward into a fresh database (a temporary SQLite file by default; a PostgreSQL
database is emptied first), serves it with `flapwatch serve` (2 workers × 4 threads), logs in
as the demo nurse for the board and posts checks with her API token from 4 threads.
"""

from __future__ import annotations

import argparse
import asyncio
import http.cookiejar
import json
import multiprocessing
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

FLAPWATCH = str(Path(sys.executable).with_name("flapwatch"))
UNIT = "DEMO"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _environment(database_url: str, instance: Path) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("FLAPWATCH_")},
        "FLAPWATCH_DATABASE_URL": database_url,
        "FLAPWATCH_INSTANCE_PATH": str(instance),
        "FLAPWATCH_SECRET_KEY": "bench-streams-secret-key-0123456789abcdefgh",
        "FLAPWATCH_NOTIFIER_THREAD": "false",
        "FLAPWATCH_SWEEP_ON_REQUESTS": "false",
        "FLAPWATCH_REQUEST_LOG": "false",
    }


def _run(args: list[str], environment: dict[str, str]) -> str:
    done = subprocess.run(  # noqa: S603 - our own command line
        [FLAPWATCH, *args], env=environment, capture_output=True, text=True, check=True
    )
    return done.stdout


def _board_opener(base: str) -> urllib.request.OpenerDirector:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(f"{base}/login").read().decode()
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    form = urllib.parse.urlencode(
        {"username": "nurse", "password": "flapwatch-demo", "csrf_token": token}
    ).encode()
    opener.open(f"{base}/login", data=form).read()
    return opener


def _add_quiet_unit(base: str, admin_token: str) -> None:
    """A second unit, with nothing happening on it, for streams that only wait."""
    request = urllib.request.Request(  # noqa: S310 - loopback
        f"{base}/api/v1/units",
        data=json.dumps({"code": "QUIET", "name": "Quiet", "timezone": "Europe/London"}).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {admin_token}", "Content-Type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=30).read()  # noqa: S310


def board_latency(opener: urllib.request.OpenerDirector, base: str, count: int) -> float:
    """Median milliseconds of `count` board views one after another."""
    times = []
    for _ in range(count):
        started = time.perf_counter()
        with opener.open(f"{base}/units/{UNIT}/board?refreshed=1") as answer:
            answer.read()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def post_rate(base: str, token: str, flaps: list[int], seconds: float, threads: int = 4) -> float:
    """Checks answered 201 a second, from `threads` posting without pause."""
    stored: list[int] = []
    until = time.monotonic() + seconds

    def post(number: int) -> None:
        sent = 0
        while time.monotonic() < until:
            sent += 1
            body = json.dumps(
                {
                    "taken_at": datetime.now(UTC).isoformat(timespec="seconds"),
                    "colour": "pink",
                    "capillary_refill": "normal",
                }
            ).encode()
            request = urllib.request.Request(  # noqa: S310 - loopback
                f"{base}/api/v1/reconstructions/{flaps[(number + sent) % len(flaps)]}/checks",
                data=body,
                method="POST",
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
                    if answer.status == 201:
                        stored.append(1)
            except urllib.error.HTTPError as refused:
                raise SystemExit(f"a check post was refused: {refused.read()[:300]!r}") from None

    workers = [threading.Thread(target=post, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return len(stored) / seconds


async def _hold_streams(
    port: int, token: str, count: int, opened: Any, events: Any, unit: str
) -> None:
    async def one() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            (
                f"GET /api/v1/units/{unit}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        if b" 200 " not in await reader.readline():
            return
        with opened.get_lock():
            opened.value += 1
        # Read in chunks, not lines: the phones' work of reading is not the server's, and
        # on this one machine it would take the cores the server needs.
        tail = b""
        while chunk := await reader.read(1 << 16):
            seen = (tail + chunk).count(b"\nevent: ")
            tail = chunk[-7:]  # a marker split across two reads is counted once
            if seen:
                with events.get_lock():
                    events.value += seen

    await asyncio.gather(*(one() for _ in range(count)), return_exceptions=True)


def _streams_process(
    port: int, token: str, count: int, opened: Any, events: Any, unit: str
) -> None:
    asyncio.run(_hold_streams(port, token, count, opened, events, unit))


class Streams:
    """`count` event streams held open by a process of their own (so that reading them takes
    nothing from the measuring client), counting the events read."""

    def __init__(self, port: int, token: str, count: int, unit: str) -> None:
        self.opened = multiprocessing.Value("i", 0)
        self.events = multiprocessing.Value("i", 0)
        self.process = multiprocessing.Process(
            target=_streams_process,
            args=(port, token, count, self.opened, self.events, unit),
            daemon=True,
        )
        self.process.start()

    def wait_open(self, count: int, seconds: float) -> bool:
        until = time.monotonic() + seconds
        while self.opened.value < count and time.monotonic() < until:
            time.sleep(0.1)
        return self.opened.value >= count

    def close(self) -> None:
        self.process.terminate()
        self.process.join(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--streams", type=int, default=300)
    parser.add_argument("--views", type=int, default=60, help="board views per measure")
    parser.add_argument("--seconds", type=float, default=10.0, help="posting per measure")
    options = parser.parse_args()

    with tempfile.TemporaryDirectory() as workdir:
        instance = Path(workdir)
        database_url = options.database_url or f"sqlite:///{instance / 'bench.sqlite3'}"
        environment = _environment(database_url, instance)
        if database_url.startswith("postgresql"):
            from sqlalchemy import create_engine, text

            with create_engine(database_url).begin() as connection:
                connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        _run(["init-db"], environment)
        _run(["demo"], environment)
        token = _run(["create-token", "nurse", "--name", "bench"], environment).split()[-1]
        admin = _run(["create-token", "admin", "--name", "bench"], environment).split()[-1]
        from sqlalchemy import create_engine, text

        with create_engine(database_url).connect() as connection:
            flaps = list(
                connection.execute(
                    text(
                        "SELECT id FROM reconstructions WHERE status = 'monitoring' AND NOT buried"
                    )
                ).scalars()
            )
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(  # noqa: S603 - our own command line
            [FLAPWATCH, "serve", f"--port={port}", "--workers=2", "--threads=4"],
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=(instance / "server.log").open("ab"),
            start_new_session=True,
        )
        try:
            for _ in range(200):
                try:
                    urllib.request.urlopen(f"{base}/readyz", timeout=2).read()  # noqa: S310
                    break
                except OSError:
                    time.sleep(0.2)
            _add_quiet_unit(base, admin)
            opener = _board_opener(base)
            board_latency(opener, base, 5)  # warm up
            figures: dict[str, tuple[float, float, int]] = {}
            # "no streams" again last: how far the figures drift over the run by themselves
            # (the tables grow with every check posted).
            cases = (
                ("no streams", None),
                ("idle", "QUIET"),
                ("following", UNIT),
                ("none again", None),
            )
            for case, unit in cases:
                streams = None
                if unit is not None:
                    streams = Streams(port, admin, options.streams, unit)
                    if not streams.wait_open(options.streams, 60):
                        raise SystemExit(f"only {streams.opened.value} streams opened")
                    time.sleep(3)  # each stream's log-in check and catching up are done
                board = board_latency(opener, base, options.views)
                posts = post_rate(base, token, flaps, options.seconds)
                time.sleep(1)
                figures[case] = (board, posts, streams.events.value if streams else 0)
                if streams is not None:
                    streams.close()
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)

    name = "PostgreSQL" if database_url.startswith("postgresql") else "SQLite"
    print(f"database: {name}; {options.streams} streams idle (another unit) or following the ward")
    base_board, base_posts, _ = figures["no streams"]
    print(f"{'case':<12}{'board ms':>10}{'ratio':>8}{'posts/s':>10}{'ratio':>8}{'events':>10}")
    for case, (board, posts, events) in figures.items():
        print(
            f"{case:<12}{board:>10.1f}{board / base_board:>8.2f}{posts:>10.1f}"
            f"{posts / base_posts:>8.2f}{events:>10}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
