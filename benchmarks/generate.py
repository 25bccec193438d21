"""A hospital's worth of flap monitoring, bulk-loaded for the benchmarks.

    python benchmarks/generate.py --checks 5000000 --units 10 [--database-url URL]

Without `--database-url` it writes SQLite in `--instance` (default `instance-bench/`); with one
(PostgreSQL: `postgresql+psycopg://postgres@127.0.0.1:5432/test`) it loads that database, which
must be empty or new (it is migrated to head first).

What it makes, per unit: a nurse `gen-nurse-NN`, a surgeon `gen-surgeon-NN` (password
`benchmark-password`), and flaps one after another over the past months, each monitored for
five days on the default schedule (hourly to 24 h, 2-hourly to 48 h, 4-hourly to 120 h):

- check times driven by the schedule: most a few minutes either side of the due time, about 8 %
  late by 20–90 minutes, and now and then an extra look;
- about 5 % of checks flagged (venous congestion, arterial insufficiency or a cooling flap),
  with their flags, and an escalation for each flap's first flag: acknowledged after a
  log-normal wait (median 12 min), with an outcome, and closed;
- about 0.5 % of checks corrected (a new version with a reason);
- outcomes: most flaps discharged intact; some in theatre now, some re-explored and salvaged
  or lost (a return to theatre each);
- the newest `--monitored` flaps of each unit (default 30) still being monitored, their checks
  up to now: the ward board the benchmarks open.

Rows are inserted in batches with SQLAlchemy Core (executemany), not through the services: the
generated records have no audit events, so `flapwatch audit-verify` reports them as not
recorded (this is benchmark data, never a ward's).
"""

from __future__ import annotations

import argparse
import math
import random
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, text, update

from flapwatch import create_app
from flapwatch.db import EXTENSION_KEY, engine_of
from flapwatch.domain.schedule import SchedulePolicy
from flapwatch.migrate import upgrade_to_head
from flapwatch.models import (
    Check,
    CheckFlag,
    Escalation,
    EscalationEvent,
    Patient,
    Reconstruction,
    RuleSetVersion,
    TheatreReturn,
    utcnow,
)
from flapwatch.services import SYSTEM
from flapwatch.services.accounts import create_user
from flapwatch.services.units import create_unit

PASSWORD = "benchmark-password"
BATCH = 20_000
MONITORED_HOURS = 120
SCHEDULE = SchedulePolicy()
FLAGS = {
    "venous": (
        "Venous congestion suspected",
        "red",
        ["colour dusky", "capillary refill brisk (<1 s)"],
    ),
    "arterial": (
        "Arterial insufficiency suspected",
        "red",
        ["colour pale", "capillary refill sluggish (>3 s)"],
    ),
    "temperature": ("Flap cooling", "amber", ["ΔT 2.1 °C ≥ 1.8 °C"]),
}
OUTCOMES = (
    ("observe", 0.6),
    ("medical_management", 0.15),
    ("return_to_theatre", 0.15),
    ("false_alarm", 0.1),
)


@dataclass
class Loader:
    """Rows waiting to be inserted, table by table, and the ids handed out."""

    connection: Any
    rows: dict[Any, list[dict[str, Any]]] = field(default_factory=dict)
    next_id: dict[Any, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def start_ids(self, *tables: Any) -> None:
        for table in tables:
            highest = self.connection.execute(select(table.id).order_by(table.id.desc())).first()
            self.next_id[table] = (highest[0] if highest else 0) + 1

    def add(self, table: Any, **values: Any) -> int:
        row_id = self.next_id[table]
        self.next_id[table] = row_id + 1
        self.rows.setdefault(table, []).append({"id": row_id, **values})
        if len(self.rows[table]) >= BATCH:
            self.flush()
        return row_id

    def _copy(self, table: Any, rows: list[dict[str, Any]]) -> None:
        columns = sorted(set().union(*rows))
        driver = self.connection.connection.driver_connection
        statement = f"COPY {table.__tablename__} ({', '.join(columns)}) FROM STDIN"
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row([row.get(column) for column in columns])

    def flush(self) -> None:
        # Parents before children: the foreign keys are checked as rows arrive.
        for table in (
            Patient, Reconstruction, TheatreReturn, Check, CheckFlag, Escalation, EscalationEvent
        ):  # fmt: skip
            waiting = self.rows.pop(table, [])
            if not waiting:
                continue
            if table is Check and self.connection.dialect.name == "postgresql":
                self._copy(table, waiting)  # the big one: COPY is several times faster
            else:
                self.connection.execute(insert(table), waiting)
            name = table.__tablename__
            self.counts[name] = self.counts.get(name, 0) + len(waiting)
        self.connection.commit()

    def finish(self) -> None:
        """Hands the ids back to the database: PostgreSQL's sequences do not see ids given
        explicitly, so each is moved past the highest id loaded, for the app's inserts after.
        Then the planner's statistics, which a bulk load leaves empty until autovacuum runs."""
        self.flush()
        if self.connection.dialect.name != "postgresql":
            return
        for table in self.next_id:
            name = table.__tablename__
            self.connection.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "  # noqa: S608
                    f"(SELECT max(id) FROM {name}))"
                )
            )
        self.connection.commit()
        self.connection.execute(text("ANALYZE"))
        self.connection.commit()


def check_times(
    rng: random.Random, surgery_end: datetime, until: datetime, *, cap: bool
) -> list[datetime]:
    """Schedule-driven: each check near its due time, some late, some extra looks; for five
    days (`cap`, a flap since discharged) or until now (still monitored)."""
    times: list[datetime] = []
    last = surgery_end + timedelta(minutes=rng.randint(5, 15))  # on arrival from recovery
    limit = MONITORED_HOURS * 3600 if cap else math.inf
    while last < until and (last - surgery_end).total_seconds() < limit:
        times.append(last)
        interval = SCHEDULE.interval_at((last - surgery_end).total_seconds() / 3600)
        roll = rng.random()
        if roll < 0.08:
            drift = timedelta(minutes=rng.randint(20, 90))  # late
        elif roll < 0.11:
            drift = -interval * 0.8  # an extra look soon after
        else:
            drift = timedelta(minutes=rng.randint(-10, 8))
        last = last + interval + drift
    return times


def normal(rng: random.Random) -> dict[str, Any]:
    control = round(rng.uniform(34.8, 35.8), 1)
    return {
        "colour": "pink",
        "flap_temperature_c": round(control - rng.uniform(0.3, 1.2), 1),
        "control_temperature_c": control,
        "capillary_refill": "normal",
        "doppler_arterial": "present",
        "doppler_venous": "present",
        "turgor": "soft",
        "pinprick": "bright_red" if rng.random() < 0.3 else None,
        "sto2_percent": round(rng.uniform(60, 80)) if rng.random() < 0.4 else None,
    }


def flagged(rng: random.Random, rule: str) -> dict[str, Any]:
    values = normal(rng)
    if rule == "venous":
        values.update(colour="dusky", capillary_refill="brisk")
    elif rule == "arterial":
        values.update(colour="pale", capillary_refill="sluggish")
    else:
        values["flap_temperature_c"] = round(values["control_temperature_c"] - 2.1, 1)
    return values


def generate(args: argparse.Namespace) -> dict[str, int]:
    settings: dict[str, Any] = {
        "NOTIFIER_THREAD": False,
        "PASSWORD_TIME_COST": 1,
        "PASSWORD_MEMORY_COST_KIB": 8,
        "PASSWORD_PARALLELISM": 1,
    }
    if args.database_url:
        settings["DATABASE_URL"] = args.database_url
    else:
        settings["INSTANCE_PATH"] = str(Path(args.instance).resolve())
    app = create_app(settings)
    upgrade_to_head(engine_of(app))
    rng = random.Random(args.seed)
    now = utcnow()
    per_unit = math.ceil(args.checks / args.units)
    with app.app_context():
        session = app.extensions[EXTENSION_KEY]()
        units = []
        for number in range(1, args.units + 1):
            code = f"GEN-{number:02d}"
            unit = create_unit(
                session,
                SYSTEM,
                code=code,
                name=f"Generated ward {number}",
                timezone="Europe/London",
            )
            nurse = create_user(
                session,
                SYSTEM,
                username=f"gen-nurse-{number:02d}",
                display_name=f"Nurse {number}",
                role="nurse",
                password=PASSWORD,
                unit_codes=[code],
            )
            surgeon = create_user(
                session,
                SYSTEM,
                username=f"gen-surgeon-{number:02d}",
                display_name=f"Surgeon {number}",
                role="surgeon",
                password=PASSWORD,
                unit_codes=[code],
            )
            rule_set = session.scalar(
                select(RuleSetVersion.id).where(RuleSetVersion.unit_id == unit.id)
            )
            units.append((unit.id, nurse.id, surgeon.id, rule_set))
        session.close()

    with engine_of(app).connect() as connection:
        loader = Loader(connection)
        loader.start_ids(
            Patient, Reconstruction, TheatreReturn, Check, CheckFlag, Escalation, EscalationEvent
        )  # fmt: skip
        corrections: list[int] = []
        for unit_number, (unit_id, nurse_id, surgeon_id, rule_set) in enumerate(units, start=1):
            made = 0
            flaps: list[tuple[datetime, list[datetime]]] = []
            # Flaps back from now, one every few hours (so that the newest `monitored` span
            # the five days of monitoring), until the unit has its checks.
            surgery_end = now - timedelta(hours=rng.uniform(1, 4))
            while made < per_unit:
                still = len(flaps) < args.monitored
                times = check_times(rng, surgery_end, now, cap=not still)
                flaps.append((surgery_end, times))
                made += len(times)
                surgery_end -= timedelta(hours=rng.uniform(2, 6) * 30 / args.monitored)
            for index, (surgery_end, times) in enumerate(reversed(flaps)):
                monitored = index >= len(flaps) - args.monitored
                patient_id = loader.add(
                    Patient,
                    mrn=f"G{unit_number:02d}-{index:07d}",
                    name=f"Generated Patient {unit_number}-{index}",
                    date_of_birth=date(1940, 1, 1) + timedelta(days=rng.randint(0, 25000)),
                    unit_id=unit_id,
                    bed=str(index % 30 + 1) if monitored else None,
                    created_at=surgery_end,
                )
                roll = rng.random()
                # 3 % in theatre now, 6 % salvaged, 2 % lost after re-exploration.
                re_explored = not monitored and roll < 0.11
                result = None if roll < 0.03 else "salvaged" if roll < 0.09 else "failed"
                status = (
                    "monitoring"
                    if monitored
                    else "returned_to_theatre"
                    if re_explored and result is None
                    else "discharged"
                )
                ended = surgery_end + timedelta(hours=MONITORED_HOURS)
                flap_id = loader.add(
                    Reconstruction,
                    patient_id=patient_id,
                    procedure="DIEP free flap",
                    flap_kind="free",
                    site="breast",
                    side="left",
                    surgery_end_at=surgery_end,
                    surgeon=f"Surgeon {unit_number}",
                    buried=False,
                    status=status,
                    status_changed_at=None if monitored else ended,
                    created_at=surgery_end,
                    final_outcome=None
                    if monitored or (re_explored and result is None)
                    else "total_loss"
                    if re_explored and result == "failed"
                    else "intact",
                    final_outcome_on=None if monitored else ended.date(),
                    final_outcome_note="",
                )
                if re_explored:
                    decided = surgery_end + timedelta(hours=rng.uniform(4, 48))
                    loader.add(
                        TheatreReturn,
                        reconstruction_id=flap_id,
                        number=1,
                        decided_at=decided,
                        knife_to_skin_at=decided + timedelta(minutes=rng.randint(40, 150)),
                        findings=rng.choice(("venous", "venous", "arterial", "haematoma")),
                        findings_note="",
                        result=result,
                        provenance="",
                        recorded_at=decided,
                        version=1,
                    )
                escalation_id = None
                for taken in times:
                    rule = None
                    if rng.random() < 0.05:
                        rule = rng.choice(("venous", "arterial", "temperature", "temperature"))
                    recorded = taken + timedelta(minutes=rng.randint(0, 4))
                    if rng.random() < 0.01:
                        recorded += timedelta(minutes=rng.randint(61, 180))  # a late entry
                    values = flagged(rng, rule) if rule else normal(rng)
                    check_id = loader.add(
                        Check,
                        reconstruction_id=flap_id,
                        taken_at=taken,
                        recorded_at=recorded,
                        first_recorded_at=recorded,
                        recorded_by_id=nurse_id,
                        rule_set_version_id=rule_set,
                        severity=FLAGS[rule][1] if rule else None,
                        version=1,
                        entered_in_error=False,
                        capillary_refill_s=None,
                        notes=None,
                        **values,
                    )
                    if rule:
                        name, severity, reasons = FLAGS[rule]
                        loader.add(
                            CheckFlag,
                            check_id=check_id,
                            rule_id=rule,
                            rule_name=name,
                            severity=severity,
                            action="Call the registrar.",
                            reasons=reasons,
                        )
                        if escalation_id is None:
                            escalation_id = _escalation(
                                loader,
                                rng,
                                flap_id,
                                check_id,
                                taken,
                                severity,
                                reasons,
                                surgeon_id,
                                now,
                            )
                    if rng.random() < 0.005 and taken < now - timedelta(hours=1):
                        corrections.append(check_id)
        loader.flush()
        _correct(loader, corrections, now)
        loader.finish()
    return loader.counts


def _escalation(
    loader: Loader,
    rng: random.Random,
    flap_id: int,
    check_id: int,
    opened: datetime,
    severity: str,
    reasons: list[str],
    surgeon_id: int,
    now: datetime,
) -> int:
    waited = timedelta(minutes=min(240.0, rng.lognormvariate(math.log(12), 0.7)))
    acknowledged = opened + waited if opened + waited < now else None
    outcome = rng.choices([o for o, _ in OUTCOMES], [w for _, w in OUTCOMES])[0]
    closed = acknowledged + timedelta(hours=rng.uniform(1, 6)) if acknowledged else None
    closed = closed if closed and closed < now else None
    escalation_id = loader.add(
        Escalation,
        reconstruction_id=flap_id,
        severity=severity,
        reasons=reasons,
        opened_at=opened,
        opened_by_check_id=check_id,
        acknowledged_at=acknowledged,
        acknowledged_by_id=surgeon_id if acknowledged else None,
        outcome=outcome if acknowledged else None,
        note=None,
        closed_at=closed,
        closed_by_id=surgeon_id if closed else None,
    )
    events = [
        (opened, "opened", None),
        (acknowledged, "acknowledged", surgeon_id),
        (closed, "closed", surgeon_id),
    ]
    for at, kind, actor_id in events:
        if at is None:
            continue
        opening = kind == "opened"
        loader.add(
            EscalationEvent,
            escalation_id=escalation_id,
            at=at,
            kind=kind,
            severity=severity if opening else None,
            check_id=check_id if opening else None,
            actor_id=actor_id,
            reasons=reasons if opening else [],
        )
    return escalation_id


def _correct(loader: Loader, corrections: list[int], now: datetime) -> None:
    """A corrected check: a second version with a reason; the first points to it."""
    connection = loader.connection
    for start in range(0, len(corrections), BATCH):
        chunk = corrections[start : start + BATCH]
        originals = {
            row.id: row for row in connection.execute(select(Check).where(Check.id.in_(chunk)))
        }
        flags: dict[int, list[Any]] = {}
        for flag in connection.execute(select(CheckFlag).where(CheckFlag.check_id.in_(chunk))):
            flags.setdefault(flag.check_id, []).append(flag)
        links = []
        for check_id in chunk:
            original = originals[check_id]
            values = {
                column.name: getattr(original, column.name)
                for column in Check.__table__.columns
                if column.name not in ("id", "superseded_by_id")
            }
            new_id = loader.add(
                Check,
                **{
                    **values,
                    "version": 2,
                    "amends_id": check_id,
                    "recorded_at": min(now, original.recorded_at + timedelta(minutes=30)),
                    "amendment_reason": "The note was left off the first entry",
                    "notes": "Flap warm and soft; dressing dry.",
                },
            )
            for flag in flags.get(check_id, []):  # the same values, so the same flags
                loader.add(
                    CheckFlag,
                    check_id=new_id,
                    rule_id=flag.rule_id,
                    rule_name=flag.rule_name,
                    severity=flag.severity,
                    action=flag.action,
                    reasons=flag.reasons,
                )
            links.append({"original": check_id, "new": new_id})
        loader.flush()
        for link in links:
            connection.execute(
                update(Check)
                .where(Check.id == link["original"])
                .values(superseded_by_id=link["new"])
            )
        connection.commit()
    loader.counts["corrections"] = len(corrections)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=100_000)
    parser.add_argument("--units", type=int, default=4)
    parser.add_argument("--monitored", type=int, default=30, help="flaps monitored per unit")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--instance", default="instance-bench")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    started = time.perf_counter()
    counts = generate(args)
    elapsed = time.perf_counter() - started
    checks = counts.get("checks", 0)
    print(f"Generated in {elapsed:.0f} s ({checks / elapsed:,.0f} checks/s):")
    for name, count in sorted(counts.items()):
        print(f"  {name:20s} {count:>12,}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
