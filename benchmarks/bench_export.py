"""Checks export speed and memory: `flapwatch export checks` against the sqlite3 tool's own
CSV export of the same table, in the same run (ratios, not absolute times).

    python benchmarks/bench_export.py [--checks 1000000]

Builds a fresh SQLite database in a temporary directory with one unit and flaps holding
`--checks` checks (bulk-inserted: this measures the export, not recording), then times

- `flapwatch export checks --output FILE` in a child process, and its peak resident memory;
- `sqlite3 -csv -header DB "SELECT ... FROM checks"` writing the same rows;
- `flapwatch export fhir` (the same checks as a FHIR Bundle), its time and peak memory.

Targets: ≤ 3× the sqlite3 tool's time; peak RSS < 150 MB.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import insert
from ward import bench_flap, bench_unit  # benchmarks/ward.py

from flapwatch import create_app
from flapwatch.db import EXTENSION_KEY, engine_of
from flapwatch.migrate import upgrade_to_head
from flapwatch.models import Check, utcnow

CHECKS_PER_FLAP = 2000
BATCH = 20_000


def _load(instance: Path, count: int) -> Path:
    app = create_app(
        {
            "INSTANCE_PATH": str(instance),
            "NOTIFIER_THREAD": False,
            "PASSWORD_TIME_COST": 1,
            "PASSWORD_MEMORY_COST_KIB": 8,
            "PASSWORD_PARALLELISM": 1,
        }
    )
    upgrade_to_head(engine_of(app))
    with app.app_context():
        session = app.extensions[EXTENSION_KEY]()
        nurse = bench_unit(session, "nurse")
        ended = utcnow() - timedelta(days=400)
        flaps = [
            bench_flap(session, number, ended) for number in range(-(-count // CHECKS_PER_FLAP))
        ]
        start = utcnow() - timedelta(days=399)
        rows = []
        engine = engine_of(app)
        for index in range(count):
            flap = flaps[index // CHECKS_PER_FLAP]
            taken = start + timedelta(minutes=10 * (index % CHECKS_PER_FLAP))
            rows.append(
                {
                    "reconstruction_id": flap.id,
                    "taken_at": taken,
                    "recorded_at": taken + timedelta(minutes=3),
                    "first_recorded_at": taken + timedelta(minutes=3),
                    "recorded_by_id": nurse.id,
                    "colour": "pink",
                    "flap_temperature_c": 33.0 + (index % 20) / 10,
                    "control_temperature_c": 35.0,
                    "capillary_refill": "normal",
                    "doppler_arterial": "present",
                    "doppler_venous": "present",
                    "turgor": "soft",
                    "sto2_percent": 60 + index % 20,
                    "notes": "Flap warm and soft." if index % 7 == 0 else None,
                    "version": 1,
                    "entered_in_error": False,
                }
            )
            if len(rows) == BATCH:
                with engine.begin() as connection:
                    connection.execute(insert(Check), rows)
                rows = []
        if rows:
            with engine.begin() as connection:
                connection.execute(insert(Check), rows)
        session.close()
        engine.dispose()
    return instance / "flapwatch.sqlite3"


def _timed(command: list[str], env: dict[str, str], output: Path) -> tuple[float, int]:
    """Wall time and the child's peak resident set size in KiB."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    with output.open("wb") as target:
        subprocess.run(command, env=env, check=True, stdout=target, stderr=subprocess.DEVNULL)
    elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return elapsed, max(peak, before)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=1_000_000)
    options = parser.parse_args()
    if shutil.which("sqlite3") is None:
        print("The sqlite3 command-line tool is needed (Debian: apt-get install sqlite3).")
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="flapwatch-bench-export-"))
    try:
        started = time.perf_counter()
        database = _load(workdir, options.checks)
        loaded = time.perf_counter() - started
        env = {**os.environ, "FLAPWATCH_INSTANCE_PATH": str(workdir)}
        env.pop("FLAPWATCH_DATABASE_URL", None)
        flapwatch = [sys.executable, "-m", "flapwatch"]
        ours, ours_peak = _timed(
            [*flapwatch, "export", "checks", "--output", "-"], env, workdir / "ours.csv"
        )
        fhir, fhir_peak = _timed(
            [*flapwatch, "export", "fhir", "--output", "-"], env, workdir / "bundle.json"
        )
        bundle_mb = (workdir / "bundle.json").stat().st_size / 1e6
        columns = ", ".join(
            column.name for column in Check.__table__.columns if column.name != "superseded_by_id"
        )
        tool, _ = _timed(
            ["sqlite3", "-csv", "-header", str(database),
             f"SELECT {columns} FROM checks ORDER BY taken_at, id"],
            env,
            workdir / "sqlite3.csv",
        )  # fmt: skip
        with (workdir / "ours.csv").open("rb") as exported:
            rows = sum(1 for _ in exported) - 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    print(
        f"flapwatch export benchmark: {options.checks:,} checks, SQLite (loaded in {loaded:.0f} s)"
    )
    print(f"  flapwatch export checks   {ours:8.2f} s   {rows:,} rows")
    print(f"  sqlite3 -csv              {tool:8.2f} s")
    ratio = ours / tool
    print(f"  time ratio                {ratio:8.2f}×   target ≤ 3×     {_met(ratio <= 3)}")
    peak_mb = ours_peak / 1024
    print(f"  peak RSS of the export    {peak_mb:8.0f} MB  target < 150 MB {_met(peak_mb < 150)}")
    print(
        f"  flapwatch export fhir     {fhir:8.2f} s   {bundle_mb:,.0f} MB bundle, "
        f"{fhir / tool:.2f}× the tool's CSV, peak RSS {fhir_peak / 1024:.0f} MB"
    )
    return 0


def _met(met: bool) -> str:
    return "met" if met else "NOT MET"


if __name__ == "__main__":
    sys.exit(main())
