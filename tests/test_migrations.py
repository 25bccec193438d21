"""The schema comes from Alembic migrations, from an empty database to head, on both backends."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

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


def test_empty_database_upgrades_to_head_and_matches_the_models(backend, tmp_path, request):
    url, cleanup = _empty_database_url(backend, tmp_path, request)
    engine = make_engine(url)
    try:
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
    finally:
        engine.dispose()
        if cleanup:
            admin, schema = cleanup
            with admin.begin() as connection:
                connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
            admin.dispose()


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

    url, cleanup = _empty_database_url(backend, tmp_path, request)
    engine = make_engine(url)
    config = alembic_config(url)
    at = "2026-11-20 10:00:00+00:00"
    try:
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
    finally:
        engine.dispose()
        if cleanup:
            admin, schema = cleanup
            with admin.begin() as connection:
                connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
            admin.dispose()
