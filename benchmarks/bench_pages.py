"""The ward's pages and a check's recording, against bare Flask baselines measured in the same
run, and the same pages on a small and a large database (ratios, not absolute times).

    python benchmarks/bench_pages.py [--small 10000] [--large 5000000] [--seconds 5]
                                     [--database-url URL]

Loads two databases with benchmarks/generate.py (SQLite in a temporary directory, or two
schemas of `--database-url`'s PostgreSQL database): `--small` and `--large` checks over ten
units, each unit with 30 flaps being monitored. Then, through Flask's test client in this
process:

- recording a check through the HTML form (log-in session, CSRF, validation, rules, audit) and
  through the API (bearer token, Idempotency-Key), in checks per second, against a bare Flask
  route doing one raw INSERT of the same row into the same database. Target: ≥ 0.5.
- the ward board (30 flaps) and a flap page with 500 checks, median latency, against a bare
  Flask route rendering a trivial template. Target: ≤ 3×. Their SQL query counts are printed
  (and asserted constant in the test suite).
- the same two pages on the large database against the small. Target: ≤ 1.5×.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from bare_app import raw_insert
from flask import Flask, render_template_string
from sqlalchemy import event, func, select, text

from flapwatch import create_app
from flapwatch.db import EXTENSION_KEY, engine_of
from flapwatch.models import Check, Patient, Reconstruction, Unit, utcnow

GENERATE = Path(__file__).with_name("generate.py")
PASSWORD = "benchmark-password"
SETTINGS = {
    "NOTIFIER_THREAD": False,
    "SWEEP_ON_REQUESTS": False,
    "REQUEST_LOG": False,
    "PASSWORD_TIME_COST": 1,
    "PASSWORD_MEMORY_COST_KIB": 8,
    "PASSWORD_PARALLELISM": 1,
}
LONG_FLAP_CHECKS = 500
CSRF = re.compile(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"')


def load_database(checks: int, url: str | None, workdir: Path, name: str) -> dict[str, Any]:
    """A generated database of `checks` checks (SQLite in `workdir`, or a new schema of `url`):
    the app settings that reach it, and the seconds its loading took."""
    settings: dict[str, Any] = dict(SETTINGS)
    schema = None
    command = [sys.executable, str(GENERATE), "--checks", str(checks), "--units", "10"]
    if url:
        schema = f"bench_{name}_{uuid.uuid4().hex[:8]}"
        admin = create_app({**SETTINGS, "DATABASE_URL": url, "INSTANCE_PATH": str(workdir)})
        with engine_of(admin).begin() as connection:
            connection.execute(text(f"CREATE SCHEMA {schema}"))
        separator = "&" if "?" in url else "?"
        settings["DATABASE_URL"] = f"{url}{separator}options=-csearch_path%3D{schema}"
        command += ["--database-url", settings["DATABASE_URL"]]
    else:
        instance = workdir / name
        settings["DATABASE_URL"] = f"sqlite:///{instance / 'flapwatch.sqlite3'}"
        command += ["--instance", str(instance)]
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)  # noqa: S603
    settings["INSTANCE_PATH"] = str(workdir / f"{name}-app")
    _long_flap(settings)
    return {
        "settings": settings,
        "loaded": time.perf_counter() - started,
        "url": url,
        "schema": schema,
        "workdir": workdir,
    }


def drop_database(loaded: dict[str, Any]) -> None:
    """Drops what load_database made on PostgreSQL (the SQLite files go with the workdir)."""
    if loaded["schema"] is None:
        return
    admin = create_app({**SETTINGS, "DATABASE_URL": loaded["url"],
                        "INSTANCE_PATH": str(loaded["workdir"])})  # fmt: skip
    engine = engine_of(admin)
    with engine.begin() as connection:
        connection.execute(text(f"DROP SCHEMA {loaded['schema']} CASCADE"))
    engine.dispose()


def _long_flap(settings: dict[str, Any]) -> None:
    """A buried flap of GEN-01 monitored hourly for three weeks: the flap page of 500 checks."""
    app = create_app(settings)
    engine = engine_of(app)
    with engine.begin() as connection:
        unit_id, nurse_id = connection.execute(
            text(
                "SELECT units.id, users.id FROM units, users "
                "WHERE units.code = 'GEN-01' AND users.username = 'gen-nurse-01'"
            )
        ).one()
        surgery_end = utcnow() - timedelta(hours=LONG_FLAP_CHECKS + 1)
        patient_id = connection.execute(
            Patient.__table__.insert().values(
                mrn="LONG-500",
                name="Long Monitored",
                date_of_birth=date(1960, 1, 1),
                unit_id=unit_id,
                bed="31",
                created_at=surgery_end,
            )
        ).inserted_primary_key[0]
        flap_id = connection.execute(
            Reconstruction.__table__.insert().values(
                patient_id=patient_id,
                procedure="Free jejunal flap",
                flap_kind="free",
                site="pharynx",
                side="midline",
                surgery_end_at=surgery_end,
                surgeon="Bench",
                buried=True,
                status="monitoring",
                created_at=surgery_end,
            )
        ).inserted_primary_key[0]
        rows = []
        for hour in range(1, LONG_FLAP_CHECKS + 1):
            taken = surgery_end + timedelta(hours=hour)
            rows.append(
                {
                    "reconstruction_id": flap_id,
                    "taken_at": taken,
                    "recorded_at": taken,
                    "first_recorded_at": taken,
                    "recorded_by_id": nurse_id,
                    "doppler_arterial": "present",
                    "doppler_venous": "present",
                    "sto2_percent": 60 + hour % 15,
                    "version": 1,
                    "entered_in_error": False,
                }
            )
        connection.execute(Check.__table__.insert(), rows)
    engine.dispose()


def _median_ms(run: Callable[[], object], repeat: int) -> float:
    run()  # warm
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def _per_second(run: Callable[[], object], seconds: float) -> float:
    run()
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        run()
        done += 1
    return done / (time.perf_counter() - started)


class Ward:
    """A logged-in nurse on GEN-01 of a generated database, and the pages to time."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.app = create_app(settings)
        session = self.app.extensions[EXTENSION_KEY]()
        unit = session.scalars(select(Unit).where(Unit.code == "GEN-01")).one()
        counts = (
            select(Check.reconstruction_id, func.count(Check.id).label("n"))
            .join(Reconstruction)
            .join(Patient)
            .where(Patient.unit_id == unit.id, Reconstruction.status == "monitoring")
            .group_by(Check.reconstruction_id)
            .subquery()
        )
        # The monitored flap with the most checks: the long one (_long_flap).
        self.flap_id, self.flap_checks = session.execute(
            select(counts.c.reconstruction_id, counts.c.n).order_by(counts.c.n.desc()).limit(1)
        ).one()
        self.monitored = session.scalar(
            select(func.count(Reconstruction.id))
            .join(Patient)
            .where(Patient.unit_id == unit.id, Reconstruction.status == "monitoring")
        )
        self.checks = session.scalar(select(func.count(Check.id)))
        session.close()
        self.client = self.app.test_client()
        page = self.client.get("/login").get_data(as_text=True)
        token = CSRF.search(page).group(1)
        answer = self.client.post(
            "/login",
            data={"username": "gen-nurse-01", "password": PASSWORD, "csrf_token": token},
        )
        assert answer.status_code == 302, "log-in failed"
        self.statements: list[str] = []
        event.listen(engine_of(self.app), "before_cursor_execute", self._count)

    def _count(self, *args: Any) -> None:
        self.statements.append(args[2])

    def board(self) -> None:
        assert self.client.get("/units/GEN-01/board").status_code == 200

    def flap_page(self) -> None:
        assert self.client.get(f"/reconstructions/{self.flap_id}").status_code == 200

    def queries(self, page: Callable[[], None]) -> int:
        self.statements.clear()
        page()
        return len(self.statements)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=5_000_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--database-url", default=None)
    options = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="flapwatch-bench-pages-"))
    loaded: list[dict[str, Any]] = []
    try:
        small = load_database(options.small, options.database_url, workdir, "small")
        loaded.append(small)
        large = load_database(options.large, options.database_url, workdir, "large")
        loaded.append(large)
        ward = Ward(small["settings"])
        results = _measure(ward, options)
        big = Ward(large["settings"])
        results["large board"] = _median_ms(big.board, options.repeat)
        results["large flap"] = _median_ms(big.flap_page, options.repeat)
        results["large queries"] = (big.queries(big.board), big.queries(big.flap_page))
        for each in (ward, big):
            engine_of(each.app).dispose()
    finally:
        for database in loaded:
            drop_database(database)
        shutil.rmtree(workdir, ignore_errors=True)
    _report(options, small, large, ward, big, results)
    return 0


def _measure(ward: Ward, options: argparse.Namespace) -> dict[str, Any]:
    app, client = ward.app, ward.client
    results: dict[str, Any] = {}
    results["board"] = _median_ms(ward.board, options.repeat)
    results["flap"] = _median_ms(ward.flap_page, options.repeat)
    results["queries"] = (ward.queries(ward.board), ward.queries(ward.flap_page))

    bare = Flask("bare")
    bare.add_url_rule("/", view_func=lambda: render_template_string("<p>{{ word }}</p>", word="ok"))
    bare_client = bare.test_client()
    results["trivial"] = _median_ms(lambda: bare_client.get("/"), options.repeat)

    # Recording: the form, the API, and one raw INSERT of the same row.
    form_page = client.get(f"/reconstructions/{ward.flap_id}/checks/new").get_data(as_text=True)
    token = CSRF.search(form_page).group(1)
    taken = (utcnow() - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M")

    def by_form() -> None:
        answer = client.post(
            f"/reconstructions/{ward.flap_id}/checks/new",
            data={
                "csrf_token": token,
                "taken_at": taken,
                "doppler_venous": "present",
                "doppler_arterial": "present",
                "idempotency_key": uuid.uuid4().hex,
            },
        )
        assert answer.status_code == 302, answer.status_code

    api_token = _api_token(app)

    def by_api() -> None:
        answer = client.post(
            f"/api/v1/reconstructions/{ward.flap_id}/checks",
            json={
                "taken_at": utcnow().isoformat(),
                "doppler_venous": "present",
                "doppler_arterial": "present",
            },
            headers={"Authorization": f"Bearer {api_token}", "Idempotency-Key": uuid.uuid4().hex},
        )
        assert answer.status_code == 201, answer.get_data(as_text=True)

    engine = engine_of(app)
    raw = Flask("raw")
    nurse_id = _nurse_id(app)

    def insert() -> str:
        raw_insert(engine, ward.flap_id, nurse_id)
        return "ok"

    raw.add_url_rule("/", view_func=insert, methods=["POST"])
    raw_client = raw.test_client()
    results["form"] = _per_second(by_form, options.seconds)
    results["api"] = _per_second(by_api, options.seconds)
    results["insert"] = _per_second(lambda: raw_client.post("/"), options.seconds)
    return results


def _api_token(app: Flask) -> str:
    from flapwatch.services import SYSTEM
    from flapwatch.services.tokens import create_token

    with app.app_context():
        session = app.extensions[EXTENSION_KEY]()
        _, token = create_token(session, SYSTEM, "gen-nurse-01", name="bench")
        session.close()
    return token


def _nurse_id(app: Flask) -> int:
    from flapwatch.models import User

    session = app.extensions[EXTENSION_KEY]()
    nurse_id = session.scalar(select(User.id).where(User.username == "gen-nurse-01"))
    session.close()
    return int(nurse_id)


def _met(met: bool) -> str:
    return "met" if met else "NOT MET"


def _report(
    options: argparse.Namespace,
    small: dict[str, Any],
    large: dict[str, Any],
    ward: Ward,
    big: Ward,
    results: dict[str, Any],
) -> None:
    backend = "PostgreSQL" if options.database_url else "SQLite"
    print(f"flapwatch page and recording benchmark ({backend})")
    print(
        f"  small database: {ward.checks:,} checks (loaded in {small['loaded']:.0f} s); "
        f"large: {big.checks:,} (loaded in {large['loaded']:.0f} s)"
    )
    print(
        f"  board: {ward.monitored} flaps monitored; flap page: {ward.flap_checks} checks "
        f"(large: {big.flap_checks})"
    )
    trivial = results["trivial"]
    for name, key in (("ward board", "board"), ("flap page", "flap")):
        ratio = results[key] / trivial
        print(
            f"  {name:12s} {results[key]:7.1f} ms  vs trivial template {trivial:5.2f} ms "
            f"= {ratio:6.1f}×  target ≤ 3×   {_met(ratio <= 3)}"
        )
    print(
        f"  SQL queries: board {results['queries'][0]}, flap page {results['queries'][1]} "
        f"(large database: {results['large queries'][0]}, {results['large queries'][1]})"
    )
    insert = results["insert"]
    for name, key in (("HTML form", "form"), ("API", "api")):
        ratio = results[key] / insert
        print(
            f"  record via {name:9s} {results[key]:7.0f}/s vs raw INSERT {insert:7.0f}/s "
            f"= {ratio:5.2f}  target ≥ 0.5  {_met(ratio >= 0.5)}"
        )
    for name, key in (("ward board", "board"), ("flap page", "flap")):
        ratio = results[f"large {key}"] / results[key]
        print(
            f"  {name:12s} large {results[f'large {key}']:7.1f} ms vs small "
            f"{results[key]:7.1f} ms = {ratio:5.2f}×  target ≤ 1.5×  {_met(ratio <= 1.5)}"
        )


if __name__ == "__main__":
    raise SystemExit(main())
