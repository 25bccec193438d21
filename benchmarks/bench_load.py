"""Sustained load: `flapwatch serve` (gunicorn, 2 workers) under wrk on loopback, 50 clients
mixing ward-board views and check posts for 60 s, against a bare Flask app served the same way
doing the least those requests could (a trivial template, one raw INSERT) in the same run.

    python benchmarks/bench_load.py [--database-url URL] [--checks 100000] [--clients 50]
                                    [--seconds 60] [--post-share 0.2] [--workers 2]

Needs Debian's `wrk`. Loads a database with benchmarks/generate.py (ten units, 30 flaps
monitored on each; SQLite in a temporary directory, or a new schema of `--database-url`'s
PostgreSQL database). Each unit's nurse logs in once: a board view is that nurse's board with
the nurse's session cookie; a check post is `POST /api/v1/reconstructions/{id}/checks` to one
of that unit's monitored flaps, with the nurse's API token and a new Idempotency-Key. Prints
requests a second, latency p50/p95/p99, errors, and the answers by status. Target (on
PostgreSQL): zero errors, p95 < 100 ms. Afterwards, every check answered 201 must be stored.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from bench_pages import PASSWORD, drop_database, load_database
from sqlalchemy import func, select

from flapwatch import create_app
from flapwatch.db import EXTENSION_KEY, engine_of
from flapwatch.models import Check, Patient, Reconstruction, Unit, User

HERE = Path(__file__).parent
# Log-in sessions are bound to the browser (Flask-Login's strong session protection): wrk
# sends the same User-Agent as the log-in did.
AGENT = "flapwatch-bench-load"
CSRF = re.compile(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"')

# wrk's script: each request is a board view or, with probability POST_SHARE, a check post.
# The answers are counted by status in each thread and summed in done(), printed as JSON.
LUA = r"""
local boards = BOARDS
local posts = POSTS
local post_share = POST_SHARE
local threads = {}
counter = 0
statuses = {}  -- global: done() reads every thread's

function setup(thread)
  thread:set("number", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(os.time() + number * 7919)
end

function request()
  counter = counter + 1
  if math.random() < post_share then
    local post = posts[math.random(#posts)]
    local body = '{"taken_at": "' .. os.date("!%Y-%m-%dT%H:%M:%SZ") ..
      '", "doppler_arterial": "present", "doppler_venous": "present"' .. post.skin .. '}'
    return wrk.format("POST", post.path, {
      ["Authorization"] = "Bearer " .. post.token,
      ["Idempotency-Key"] = string.format("load-%d-%d-%d", number, counter, math.random(1e9)),
      ["Content-Type"] = "application/json",
    }, body)
  end
  local board = boards[math.random(#boards)]
  return wrk.format("GET", board.path, {["Cookie"] = board.cookie, ["User-Agent"] = AGENT})
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status >= 400 and first_error == nil then
    first_error = status .. " " .. string.sub(string.gsub(body, "%s+", " "), 1, 300)
  end
end

function done(summary, latency, requests)
  local answers = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      answers[tostring(status)] = (answers[tostring(status)] or 0) + count
    end
  end
  for _, thread in ipairs(threads) do
    local error = thread:get("first_error")
    if error ~= nil then io.write("ERROR " .. error .. "\n") end
  end
  local parts = {}
  for status, count in pairs(answers) do
    table.insert(parts, string.format('"%s": %d', status, count))
  end
  io.write(string.format(
    'RESULT {"requests": %d, "microseconds": %d, "p50": %d, "p95": %d, "p99": %d, ' ..
    '"max": %d, "connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d, ' ..
    '"answers": {%s}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), latency.max, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout,
    table.concat(parts, ", ")))
end
"""


def _lua_table(rows: list[dict[str, str]]) -> str:
    return (
        "{"
        + ", ".join(
            "{" + ", ".join(f"{key} = {json.dumps(value)}" for key, value in row.items()) + "}"
            for row in rows
        )
        + "}"
    )


def _post(flap: int, buried: bool, token: str) -> dict[str, str]:
    """A check post to `flap`: a buried flap (no skin paddle) is checked by Doppler alone."""
    return {
        "path": f"/api/v1/reconstructions/{flap}/checks",
        "token": token,
        "skin": "" if buried else ', "colour": "pink", "capillary_refill_s": 2',
    }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_ready(url: str, process: subprocess.Popen[bytes], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server stopped (exit {process.returncode})")
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 (loopback)
                return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"{url} did not answer within {seconds:.0f} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _session_cookie(base: str, username: str) -> str:
    """Log `username` in through the log-in form; the session cookie as a Cookie header."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.addheaders = [("User-Agent", AGENT)]
    page = opener.open(f"{base}/login").read().decode()
    token = CSRF.search(page).group(1)  # type: ignore[union-attr]
    form = urllib.parse.urlencode(
        {"username": username, "password": PASSWORD, "csrf_token": token}
    ).encode()
    opener.open(f"{base}/login", data=form).read()
    return "; ".join(f"{cookie.name}={cookie.value}" for cookie in jar)


class Ward:
    """The generated database's units, their nurses, monitored flaps, and API tokens."""

    def __init__(self, settings: dict[str, Any]) -> None:
        from flapwatch.services import SYSTEM
        from flapwatch.services.tokens import create_token

        app = create_app(settings)
        session = app.extensions[EXTENSION_KEY]()
        self.units: list[dict[str, Any]] = []
        with app.app_context():
            for unit in session.scalars(select(Unit).order_by(Unit.code)):
                nurse = f"gen-nurse-{unit.code.removeprefix('GEN-')}"
                flaps = session.execute(
                    select(Reconstruction.id, Reconstruction.buried)
                    .join(Patient)
                    .where(Patient.unit_id == unit.id, Reconstruction.status == "monitoring")
                ).all()
                _, token = create_token(session, SYSTEM, nurse, name="load")
                self.units.append(
                    {
                        "code": unit.code,
                        "nurse": nurse,
                        "flaps": [tuple(f) for f in flaps],
                        "token": token,
                    }  # fmt: skip
                )
            self.nurse_id = session.scalar(select(User.id).where(User.username == "gen-nurse-01"))
        session.close()
        self.app = app

    def checks(self) -> int:
        session = self.app.extensions[EXTENSION_KEY]()
        try:
            return int(session.scalar(select(func.count(Check.id))) or 0)
        finally:
            session.close()


def _script(
    workdir: Path,
    name: str,
    boards: list[dict[str, str]],
    posts: list[dict[str, str]],
    post_share: float,
) -> Path:
    script = workdir / f"{name}.lua"
    script.write_text(
        LUA.replace("BOARDS", _lua_table(boards))
        .replace("POSTS", _lua_table(posts))
        .replace("POST_SHARE", repr(post_share))
        .replace("AGENT", json.dumps(AGENT))
    )
    return script


def _wrk(base: str, script: Path, options: argparse.Namespace) -> dict[str, Any]:
    command = [
        "wrk", f"--threads={options.threads}", f"--connections={options.clients}",
        f"--duration={options.seconds}s", "--timeout=10s", f"--script={script}", base,
    ]  # fmt: skip
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout  # noqa: S603
    line = next(line for line in output.splitlines() if line.startswith("RESULT "))
    result: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
    result["first_errors"] = [line[6:] for line in output.splitlines() if line.startswith("ERROR ")]
    result["per_second"] = result["requests"] / (result["microseconds"] / 1e6)
    result["errors"] = sum(result[kind] for kind in ("connect", "read", "write", "timeout"))
    result["errors"] += result["status"]
    return result


def _serve(
    command: list[str], environment: dict[str, str], port: int, log: Path, ready: str
) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(  # noqa: S603
        command, env={**os.environ, **environment}, stdout=log.open("wb"),
        stderr=subprocess.STDOUT, cwd=HERE,
    )  # fmt: skip
    _wait_ready(f"http://127.0.0.1:{port}{ready}", process)
    return process


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--checks", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2, help="wrk's threads")
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--post-share", type=float, default=0.2)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--worker-threads", type=int, default=4, help="threads per worker")
    options = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install wrk")
    workdir = Path(tempfile.mkdtemp(prefix="flapwatch-bench-load-"))
    loaded = None
    try:
        loaded = load_database(options.checks, options.database_url, workdir, "load")
        settings = loaded["settings"]
        ward = Ward(settings)
        before = ward.checks()
        bare = _run_bare(ward, settings, options, workdir)
        after_bare = ward.checks()
        app = _run_flapwatch(ward, settings, options, workdir)
        stored = ward.checks() - after_bare
        engine_of(ward.app).dispose()
    finally:
        if loaded is not None:
            drop_database(loaded)
        shutil.rmtree(workdir, ignore_errors=True)
    _report(options, before, bare, app, stored)
    posted = app["answers"].get("201", 0)
    return 0 if app["errors"] == 0 and posted <= stored <= posted + options.clients else 1


def _run_bare(
    ward: Ward, settings: dict[str, Any], options: argparse.Namespace, workdir: Path
) -> dict[str, Any]:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    command = [
        sys.executable, "-m", "gunicorn", f"--bind=127.0.0.1:{port}",
        f"--workers={options.workers}", f"--threads={options.worker_threads}", "bare_app:create()",
    ]  # fmt: skip
    environment = {
        "BARE_DATABASE_URL": settings["DATABASE_URL"],
        "BARE_NURSE_ID": str(ward.nurse_id),
    }
    process = _serve(command, environment, port, workdir / "bare.log", "/units/GEN-01/board")
    try:
        boards = [{"path": f"/units/{unit['code']}/board", "cookie": "x=1"} for unit in ward.units]
        posts = [
            _post(flap, buried, "none") for unit in ward.units for flap, buried in unit["flaps"]
        ]
        return _wrk(base, _script(workdir, "bare", boards, posts, options.post_share), options)
    finally:
        _stop(process)


def _run_flapwatch(
    ward: Ward, settings: dict[str, Any], options: argparse.Namespace, workdir: Path
) -> dict[str, Any]:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    environment = {
        f"FLAPWATCH_{key}": str(value)
        for key, value in settings.items()
        if key not in {"REQUEST_LOG", "SWEEP_ON_REQUESTS", "NOTIFIER_THREAD"}
    }
    environment["FLAPWATCH_SECRET_KEY"] = "bench-load-secret-key-" + "x" * 32
    command = [
        str(Path(sys.executable).with_name("flapwatch")), "serve", f"--port={port}",
        f"--workers={options.workers}", f"--threads={options.worker_threads}",
    ]  # fmt: skip
    process = _serve(command, environment, port, workdir / "flapwatch.log", "/readyz")
    try:
        boards = [
            {"path": f"/units/{unit['code']}/board", "cookie": _session_cookie(base, unit["nurse"])}
            for unit in ward.units
        ]
        posts = [
            _post(flap, buried, unit["token"])
            for unit in ward.units
            for flap, buried in unit["flaps"]
        ]
        return _wrk(base, _script(workdir, "flapwatch", boards, posts, options.post_share), options)
    finally:
        _stop(process)


def _report(
    options: argparse.Namespace, checks: int, bare: dict[str, Any], app: dict[str, Any], stored: int
) -> None:
    backend = "PostgreSQL" if options.database_url else "SQLite"
    print(f"flapwatch sustained load ({backend}, {checks:,} checks in the database)")
    print(
        f"  wrk: {options.clients} connections, {options.threads} threads, {options.seconds} s; "
        f"{options.post_share:.0%} check posts, the rest ward boards; gunicorn "
        f"{options.workers} workers × {options.worker_threads} threads"
    )
    for name, result in (("bare Flask", bare), ("flapwatch", app)):
        answers = ", ".join(
            f"{status}: {count:,}" for status, count in sorted(result["answers"].items())
        )
        print(
            f"  {name:10s} {result['per_second']:7.1f} req/s  p50 {result['p50'] / 1000:6.1f} ms  "
            f"p95 {result['p95'] / 1000:6.1f} ms  p99 {result['p99'] / 1000:6.1f} ms  "
            f"errors {result['errors']}  ({answers})"
        )
        for error in result["first_errors"]:
            print(f"    first error of a wrk thread: {error}")
    ratio = app["per_second"] / bare["per_second"]
    p95 = app["p95"] / 1000
    print(f"  throughput flapwatch / bare: {ratio:.2f}")
    met = app["errors"] == 0 and p95 < 100
    print(
        f"  target: zero errors and p95 < 100 ms: errors {app['errors']}, p95 {p95:.1f} ms  "
        f"{'met' if met else 'NOT MET'}"
    )
    posted = app["answers"].get("201", 0)
    print(
        f"  checks stored by flapwatch: {stored:,} for {posted:,} answered 201 "
        f"({_stored_verdict(stored, posted, options.clients)})"
    )


def _stored_verdict(stored: int, posted: int, clients: int) -> str:
    """Every 201 must be stored; wrk stops with up to one request a connection still in flight,
    which the server finishes and stores without wrk counting its answer."""
    if posted <= stored <= posted + clients:
        return f"every 201 stored; {stored - posted} more were in flight when wrk stopped"
    return "WRONG: stored checks and 201 answers disagree"


if __name__ == "__main__":
    raise SystemExit(main())
