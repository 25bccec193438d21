"""The schema comes from Alembic migrations, from an empty database to head, on both backends."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from flapwatch.db import make_engine
from flapwatch.migrate import current_revision, head_revision, upgrade_to_head
from flapwatch.models import metadata


def _empty_database_url(backend, tmp_path, request):
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.sqlite3'}", None
    from tests.conftest import PG_URL, _postgres_schema_url

    request.getfixturevalue("postgres_migrated")  # skips cleanly when PostgreSQL is absent
    schema = "flapwatch_migration_test"
    admin = make_engine(PG_URL)
    with admin.begin() as connection:
        connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    return _postgres_schema_url(PG_URL, schema), (admin, schema)


@contextmanager
def _empty_database(backend, tmp_path, request) -> Iterator[tuple[str, Engine]]:
    """An empty database of the backend (its own schema on PostgreSQL), dropped afterwards."""
    url, cleanup = _empty_database_url(backend, tmp_path, request)
    engine = make_engine(url)
    try:
        yield url, engine
    finally:
        engine.dispose()
        if cleanup:
            admin, schema = cleanup
            with admin.begin() as connection:
                connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
            admin.dispose()


def test_empty_database_upgrades_to_head_and_matches_the_models(backend, tmp_path, request):
    with _empty_database(backend, tmp_path, request) as (url, engine):
        assert current_revision(engine) is None
        upgrade_to_head(engine)
        assert current_revision(engine) == head_revision()
        tables = set(inspect(engine).get_table_names())
        assert {"units", "users", "patients", "reconstructions", "checks", "audit_events"} <= tables
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
            head = connection.execute(text("SELECT last_hash FROM audit_chain_head")).scalar()
            assert head == "0" * 64
        upgrade_to_head(engine)  # running it again changes nothing
        assert current_revision(engine) == head_revision()


def test_units_existing_before_escalation_rules_get_the_default_rule_set(tmp_path):
    from alembic import command

    from flapwatch.domain.rules import DEFAULT_RULE_SET, parse_rule_set
    from flapwatch.migrate import alembic_config

    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    engine = make_engine(url)
    config = alembic_config(url)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
        connection.execute(
            text(
                "INSERT INTO units (code, name, timezone, created_at) "
                "VALUES ('OLD-W1', 'Old ward', 'Europe/London', '2026-01-01 00:00:00')"
            )
        )
    upgrade_to_head(engine)
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT version, definition FROM rule_set_versions")).all()
    engine.dispose()
    assert len(rows) == 1 and rows[0][0] == 1
    import json

    # The default as it was when migration 0002 ran: rechecks came later, for new units (a
    # migration never rewrites a unit's published rules).
    from dataclasses import replace

    as_then = tuple(replace(rule, recheck_minutes=None) for rule in DEFAULT_RULE_SET.rules)
    assert parse_rule_set(json.loads(rows[0][1])).rules == as_then


def test_checks_recorded_before_0018_keep_who_took_them_through_their_corrections(
    backend, tmp_path, request
):
    from alembic import command

    from flapwatch.migrate import alembic_config

    with _empty_database(backend, tmp_path, request) as (url, engine):
        config = alembic_config(url)
        at = "2026-11-20 10:00:00+00:00"
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "0017")
            connection.execute(
                text(
                    "INSERT INTO units (id, code, name, timezone, created_at) "
                    "VALUES (1, 'OLD-W1', 'Old ward', 'Europe/London', :at)"
                ),
                {"at": at},
            )
            for user_id, name in ((1, "nurse.ada"), (2, "nurse.bea"), (3, "surgeon.cy")):
                connection.execute(
                    text(
                        "INSERT INTO users (id, username, display_name, password_hash, role, "
                        "active, created_at) VALUES (:id, :name, :name, 'x', 'nurse', true, :at)"
                    ),
                    {"id": user_id, "name": name, "at": at},
                )
            connection.execute(
                text(
                    "INSERT INTO patients (id, mrn, name, date_of_birth, unit_id, created_at) "
                    "VALUES (1, 'M1', 'Old patient', '1960-01-01', 1, :at)"
                ),
                {"at": at},
            )
            connection.execute(
                text(
                    "INSERT INTO reconstructions (id, patient_id, procedure, flap_kind, site, "
                    "side, surgery_end_at, surgeon, buried, status, created_at) VALUES (1, 1, "
                    "'DIEP', 'free', 'breast', 'left', :at, 'Ms S', false, 'monitoring', :at)"
                ),
                {"at": at},
            )
            # Ada's check, corrected by Bea, then by Cy; and Bea's own check.
            for check_id, recorder, version, amends in ((1, 1, 1, None), (2, 2, 2, 1),
                                                        (3, 3, 3, 2), (4, 2, 1, None)):  # fmt: skip
                connection.execute(
                    text(
                        "INSERT INTO checks (id, reconstruction_id, taken_at, recorded_at, "
                        "recorded_by_id, version, amends_id, first_recorded_at, colour) "
                        "VALUES (:id, 1, :at, :at, :by, :version, :amends, :at, 'pink')"
                    ),
                    {"id": check_id, "at": at, "by": recorder, "version": version,
                     "amends": amends},
                )  # fmt: skip
        upgrade_to_head(engine)
        with engine.connect() as connection:
            taken = dict(connection.execute(text("SELECT id, taken_by_id FROM checks")).all())
        assert taken == {1: 1, 2: 1, 3: 1, 4: 2}


def test_outcomes_are_carried_over_from_the_status_history_faithfully(backend, tmp_path, request):
    """Before 0019 an outcome was a status: salvaged then discharged lost the salvage. Each
    return to theatre in the history becomes a record (decided then, by whoever set it, on the
    escalation acknowledged at that moment), salvaged and failed its result, failed a total
    loss; nothing the history does not say is invented."""
    import json

    from alembic import command

    from flapwatch.migrate import alembic_config

    with _empty_database(backend, tmp_path, request) as (url, engine):
        config = alembic_config(url)
        at = "2026-11-20 10:00:00+00:00"
        sent, later, home = ("2026-11-20T14:05:00+00:00", "2026-11-20T18:00:00+00:00",
                             "2026-11-25T11:00:00+00:00")  # fmt: skip
        as_json = "CAST(:after AS JSON)" if backend == "postgresql" else ":after"
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "0018")
            run = lambda sql, **values: connection.execute(text(sql), values)  # noqa: E731
            run("INSERT INTO units (id, code, name, timezone, created_at) "
                "VALUES (1, 'OLD-W1', 'Old ward', 'Europe/London', :at)", at=at)  # fmt: skip
            run("INSERT INTO users (id, username, display_name, password_hash, role, active, "
                "created_at) VALUES (3, 'surgeon.cy', 'Cy', 'x', 'surgeon', true, :at)",
                at=at)  # fmt: skip
            run("INSERT INTO patients (id, mrn, name, date_of_birth, unit_id, created_at) "
                "VALUES (1, 'M1', 'Old patient', '1960-01-01', 1, :at)", at=at)  # fmt: skip
            for flap, status in ((1, "discharged"), (2, "failed"), (3, "salvaged"),
                                 (4, "monitoring")):  # fmt: skip
                run("INSERT INTO reconstructions (id, patient_id, procedure, flap_kind, site, "
                    "side, surgery_end_at, surgeon, buried, status, status_changed_at, "
                    "created_at) VALUES (:id, 1, 'DIEP', 'free', 'breast', 'left', :at, 'Ms S', "
                    "false, :status, :at, :at)", id=flap, status=status, at=at)  # fmt: skip
            run("INSERT INTO escalations (id, reconstruction_id, severity, reasons, opened_at, "
                "acknowledged_at, acknowledged_by_id, outcome) VALUES (1, 1, 'red', '[]', :at, "
                ":sent, 3, 'return_to_theatre')", at=at, sent=sent)  # fmt: skip
            history = [(1, "returned_to_theatre", sent), (1, "salvaged", later),
                       (1, "discharged", home), (2, "returned_to_theatre", sent),
                       (2, "failed", later)]  # fmt: skip
            for number, (flap, status, changed) in enumerate(history, start=1):
                run("INSERT INTO audit_events (id, at, actor_id, actor_username, actor_role, "
                    "action, object_type, object_id, after, previous_hash, hash) VALUES (:id, "
                    ":changed, 3, 'surgeon.cy', 'surgeon', 'reconstruction.status', "
                    f"'reconstruction', :flap, {as_json}, 'x', :hash)",
                    id=number, changed=changed, flap=str(flap), hash=f"h{number}",
                    after=json.dumps({"status": status, "note": "",
                                      "changed_at": changed}))  # fmt: skip
        upgrade_to_head(engine)
        with engine.connect() as connection:
            returns = connection.execute(text(
                "SELECT reconstruction_id, number, escalation_id, decided_by_id, result, "
                "decided_at IS NULL FROM theatre_returns ORDER BY reconstruction_id"
            )).all()  # fmt: skip
            flaps = connection.execute(text(
                "SELECT id, status, final_outcome, final_outcome_on FROM reconstructions "
                "ORDER BY id"
            )).all()  # fmt: skip
        assert [tuple(r) for r in returns] == [
            (1, 1, 1, 3, "salvaged", False),
            (2, 1, None, 3, "failed", False),
            (3, 1, None, None, "salvaged", True),  # salvaged: a return, its time not known
        ]
        assert [(f.id, f.status, f.final_outcome) for f in flaps] == [
            (1, "discharged", None),  # the salvage is the return's; the end not yet recorded
            (2, "stopped", "total_loss"),
            (3, "stopped", None),
            (4, "monitoring", None),
        ]
        assert str(flaps[1].final_outcome_on)[:10] == "2026-11-20"


def test_a_patient_moved_between_wards_before_0020_keeps_both_stays(backend, tmp_path, request):
    import json

    from alembic import command

    from flapwatch.migrate import alembic_config

    with _empty_database(backend, tmp_path, request) as (url, engine):
        config = alembic_config(url)
        at, moved = "2026-11-20 10:00:00+00:00", "2026-11-21T09:10:00+00:00"
        as_json = "CAST(:after AS JSON)" if backend == "postgresql" else ":after"
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "0019")
            run = lambda sql, **values: connection.execute(text(sql), values)  # noqa: E731
            for unit_id, code in ((1, "ICU"), (2, "W3")):
                run("INSERT INTO units (id, code, name, timezone, created_at) VALUES (:id, :code, "
                    ":code, 'Europe/London', :at)", id=unit_id, code=code, at=at)  # fmt: skip
            for patient_id, unit_id in ((1, 2), (2, 1)):
                run("INSERT INTO patients (id, mrn, name, date_of_birth, unit_id, created_at) "
                    "VALUES (:id, :mrn, 'P', '1960-01-01', :unit, :at)", id=patient_id,
                    mrn=f"M{patient_id}", unit=unit_id, at=at)  # fmt: skip
            run("INSERT INTO audit_events (id, at, actor_username, actor_role, action, "
                "object_type, object_id, before, after, previous_hash, hash) VALUES (1, :at, "
                "'coordinator', 'unit_admin', 'patient.update', 'patient', '1', "
                f"{as_json.replace(':after', ':before')}, {as_json}, 'x', 'h1')",
                at=moved, before=json.dumps({"unit": "ICU"}),
                after=json.dumps({"unit": "W3"}))  # fmt: skip
        upgrade_to_head(engine)
        with engine.connect() as connection:
            stays = connection.execute(text(
                "SELECT patient_id, unit_id, started_at IS NULL, ended_at IS NULL "
                "FROM patient_stays ORDER BY patient_id, id"
            )).all()  # fmt: skip
        assert [tuple(s) for s in stays] == [
            (1, 1, True, False),  # on ICU until the move
            (1, 2, False, True),  # on W3 since
            (2, 1, True, True),  # never moved
        ]
