"""The `flapwatch` command (DESIGN.md §5)."""

from __future__ import annotations

import contextvars
import getpass
import itertools
import logging
import sys
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy.orm import Session

from flapwatch import notifier
from flapwatch.backup import BackupError, backup, check_file, restore
from flapwatch.db import EXTENSION_KEY, engine_of, get_session
from flapwatch.demo import DEMO_PASSWORD, load_demo
from flapwatch.domain.vocabulary import Role
from flapwatch.exports.fhir import Terminology, bundle_chunks
from flapwatch.exports.tables import csv_chunks, write_workbook
from flapwatch.migrate import upgrade_to_head
from flapwatch.models import utcnow
from flapwatch.services import SYSTEM, ServiceError, accounts, research, tokens
from flapwatch.services.audit import verify_audit_trail
from flapwatch.services.chains import advance_chains
from flapwatch.services.channels import make_vapid_keys
from flapwatch.services.compliance import COMPLIANCE_COLUMNS, compliance_reports, compliance_rows
from flapwatch.services.escalations import sweep_overdue
from flapwatch.services.exports import (
    COLUMNS,
    export_scope,
    fhir_resources,
    record_export,
    rows,
    workbook_sheets,
)
from flapwatch.services.idempotency import forget_expired
from flapwatch.services.live import forget_old
from flapwatch.services.notifications import deliver_due
from flapwatch.services.photos import PhotoStore, verify_photos


def register(app: Flask) -> None:
    for command in (
        init_db,
        demo,
        create_user,
        create_token,
        list_tokens,
        revoke_token,
        serve,
        sweep,
        deliver_notifications,
        push_keys,
        audit_verify,
        backup_command,
        restore_command,
        export,
    ):
        app.cli.add_command(command)


def _fail(message: str) -> None:
    """One line on stderr and a non-zero exit: what a person at a terminal can act on."""
    raise click.ClickException(message)


@click.command("init-db")
@with_appcontext
def init_db() -> None:
    """Create the database schema, or upgrade it to the latest version."""
    engine = engine_of(current_app)
    upgrade_to_head(engine)
    click.echo(f"Database ready at {engine.url.render_as_string(hide_password=True)}")


@click.command("demo")
@with_appcontext
def demo() -> None:
    """Load the demo unit, staff and patients (safe to run again: nothing is duplicated)."""
    upgrade_to_head(engine_of(current_app))
    summary = load_demo(get_session())
    click.echo(summary)
    click.echo(
        f"Demo accounts (password '{DEMO_PASSWORD}'): "
        + ", ".join(f"{username} ({role})" for username, role in summary.accounts)
    )


@click.command("create-user")
@with_appcontext
@click.argument("username")
@click.option("--role", required=True, type=click.Choice(Role.values()), help="The user's role.")
@click.option("--unit", "units", multiple=True, help="Unit code the user works in (repeatable).")
@click.option("--name", "display_name", default="", help="Full name shown on screen.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def create_user(
    username: str, role: str, units: tuple[str, ...], display_name: str, password_stdin: bool
) -> None:
    """Create a staff account; prompts for the password unless --password-stdin."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        if not sys.stdin.isatty():
            _fail("No terminal to ask for a password: use --password-stdin.")
        password = getpass.getpass("Password: ")
        if password != getpass.getpass("Repeat password: "):
            _fail("The passwords do not match.")
    if role not in (Role.ADMIN, Role.AUDITOR) and not units:
        _fail(f"A {role} must work in a unit: give --unit CODE.")
    try:
        user = accounts.create_user(
            get_session(),
            SYSTEM,
            username=username,
            display_name=display_name,
            role=role,
            password=password,
            unit_codes=list(units),
        )
    except ServiceError as error:
        _fail(" ".join([error.message, *error.problems.values()]))
    click.echo(f"Created {user.username} ({user.role}).")


@click.command("create-token")
@with_appcontext
@click.argument("username")
@click.option("--name", default="", help="What the token is for (default: 'API token').")
@click.option(
    "--expires-in-days",
    type=click.IntRange(1, 3650),
    default=None,
    help="Make it stop working after this many days (default: never).",
)
def create_token(username: str, name: str, expires_in_days: int | None) -> None:
    """Print a new API token acting as USERNAME, with its role and units. Shown only once."""

    expires_at = utcnow() + timedelta(days=expires_in_days) if expires_in_days else None
    try:
        token, plain = tokens.create_token(
            get_session(), SYSTEM, username, name=name or "API token", expires_at=expires_at
        )
    except ServiceError as error:
        _fail(" ".join([error.message, *error.problems.values()]))
    click.echo(plain)
    click.echo(
        f"Token {token.id} ({token.name}) acts as {username}; it is shown only this once. "
        f"Revoke it with: flapwatch revoke-token {token.id}",
        err=True,
    )


@click.command("list-tokens")
@with_appcontext
@click.option("--user", "username", default=None, help="Only this account's tokens.")
def list_tokens(username: str | None) -> None:
    """List API tokens: id, account, name, state, last used (never the tokens themselves)."""
    for token in tokens.list_tokens(get_session(), SYSTEM, username):
        state = (
            f"revoked {token.revoked_at:%Y-%m-%d %H:%M}Z by {token.revoked_by}"
            if token.revoked_at
            else f"expires {token.expires_at:%Y-%m-%d}"
            if token.expires_at
            else "active"
        )
        used = f"{token.last_used_at:%Y-%m-%d %H:%M}Z" if token.last_used_at else "never"
        click.echo(
            f"{token.id}\t{token.user.username}\t{token.prefix}…\t{token.name}\t{state}\t"
            f"last used {used}"
        )


@click.command("revoke-token")
@with_appcontext
@click.argument("token_id", type=int)
def revoke_token(token_id: int) -> None:
    """Revoke an API token at once (its id from list-tokens or create-token)."""
    try:
        token = tokens.revoke_token(get_session(), SYSTEM, token_id)
    except ServiceError as error:
        _fail(error.message)
    click.echo(f"Token {token.id} ({token.name}) is revoked.")


@click.command("sweep")
@with_appcontext
def sweep() -> None:
    """Escalate overdue checks and send the escalation chains' steps that have fallen due (run
    from cron every minute; safe to run anywhere, any time)."""
    result = sweep_overdue(get_session())
    pages = advance_chains(get_session())
    click.echo(
        f"{result.missed} missed checks recorded, {result.escalated} escalated, "
        f"{pages} escalation chain steps sent."
    )
    forget_expired(get_session())
    forget_old(get_session())
    _deliver_notifications()


@click.command("push-keys")
def push_keys() -> None:
    """Make a VAPID key pair for Web Push to phones: set both, the same on every server. A new
    pair turns off every phone's notifications until each turns them on again."""
    public, private = make_vapid_keys()
    click.echo(f"FLAPWATCH_VAPID_PUBLIC_KEY={public}")
    click.echo(f"FLAPWATCH_VAPID_PRIVATE_KEY={private}")
    click.echo(
        "# Keep the private key secret. Also set FLAPWATCH_VAPID_SUBJECT=mailto:<the team "
        "running flapwatch>.",
        err=True,
    )


@click.command("audit-verify")
@with_appcontext
def audit_verify() -> None:
    """Recompute the audit trail's hash chain, hold every check against what it recorded and
    every photo's bytes against their SHA-256; exit 1 naming the first place they disagree."""
    session = get_session()
    result = verify_audit_trail(session)
    if result.broken is not None:
        _fail(f"Audit trail broken at {result.broken}.")
    photos, broken = verify_photos(session, PhotoStore(current_app.config.get("PHOTO_DIRECTORY")))
    if broken is not None:
        _fail(f"Audit trail broken at {broken}.")
    click.echo(
        f"Audit trail intact: {result.events} events in an unbroken chain, "
        f"{result.checks} checks as recorded, {photos} photos byte for byte as stored."
    )


@click.command("backup")
@with_appcontext
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def backup_command(path: Path) -> None:
    """Copy the SQLite database to PATH while the app runs, and check the copy (integrity,
    audit chain). PostgreSQL: use pg_dump (README)."""
    try:
        snapshot = backup(engine_of(current_app), path)
    except BackupError as error:
        _fail(str(error))
    click.echo(f"Backed up to {snapshot.describe()}.")


@click.command("restore")
@with_appcontext
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def restore_command(path: Path, yes: bool) -> None:
    """Replace the SQLite database with the backup at PATH, once the backup is checked. The
    database replaced is kept beside it. Stop the app servers first."""
    engine = engine_of(current_app)
    try:
        snapshot = check_file(path.resolve())
        if not yes:
            click.confirm(
                f"Replace the database with {snapshot.describe()}? (Stop every app server first.)",
                abort=True,
            )
        kept = restore(engine, snapshot, utcnow())
    except BackupError as error:
        _fail(str(error))
    upgrade_to_head(engine)
    result = verify_audit_trail(get_session())
    if result.broken is not None:
        _fail(f"Restored, but the audit trail is broken at {result.broken}.")
    click.echo(f"Restored {snapshot.describe()}.")
    if kept.exists():
        click.echo(f"The database it replaced is kept at {kept}.")
    click.echo(
        f"Audit trail intact: {result.events} events in an unbroken chain, "
        f"{result.checks} checks as recorded."
    )


@click.command("export")
@with_appcontext
@click.argument(
    "kind",
    type=click.Choice(
        [
            "checks",
            "amendments",
            "escalations",
            "not_done",
            "audit",
            "workbook",
            "compliance",
            "fhir",
        ]
    ),
)
@click.option("--unit", default=None, help="Unit code (default: every unit).")
@click.option(
    "--from",
    "first_day",
    type=click.DateTime(["%Y-%m-%d"]),
    default=None,
    help="First day, YYYY-MM-DD, on the unit's clock (included).",
)
@click.option(
    "--to",
    "last_day",
    type=click.DateTime(["%Y-%m-%d"]),
    default=None,
    help="Last day, YYYY-MM-DD (included).",
)
@click.option(
    "--output",
    required=True,
    type=click.Path(dir_okay=False, writable=True),
    help="The file to write ('-' for standard output).",
)
@click.option(
    "--pseudonymise",
    is_flag=True,
    help="De-identified for research: MRN as a keyed pseudonym, no name, age not date of "
    "birth, times as hours since the end of surgery, no staff, no free text.",
)
@click.option(
    "--key-file",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="With --pseudonymise: the key (at least 32 bytes), the same for stable pseudonyms.",
)
@click.option("--with-notes", is_flag=True, help="With --pseudonymise: keep the free text.")
def export(
    kind: str,
    unit: str | None,
    first_day: datetime | None,
    last_day: datetime | None,
    output: str,
    pseudonymise: bool,
    key_file: str | None,
    with_notes: bool,
) -> None:
    """Export checks, corrections, escalations, the audit trail or the compliance report as
    CSV, all of them as an XLSX workbook, or a FHIR R4 Bundle as JSON (audited); with
    --pseudonymise, de-identified for a registry or a research team."""
    session = get_session()
    first, last = (first_day.date() if first_day else None, last_day.date() if last_day else None)
    if pseudonymise or key_file or with_notes:
        _export_research(session, kind, unit, first, last, output, key_file, with_notes)
        return
    if kind == "compliance":
        _export_compliance(session, unit, first, last, output)
        return
    try:
        scope = export_scope(
            session,
            SYSTEM,
            "checks" if kind in ("workbook", "fhir") else kind,
            unit,
            first,
            last,
        )
    except ServiceError as refused:
        _fail(" ".join([refused.message, *refused.problems.values()]))
    if kind == "fhir":
        _export_fhir(session, scope, output)
        return
    if kind == "workbook":
        record_export(session, SYSTEM, kind, "xlsx", scope)
        with click.open_file(output, "wb") as target:
            write_workbook(target, workbook_sheets(session, scope))
        click.echo(f"Exported the workbook to {output}.", err=True)
        return
    record_export(session, SYSTEM, kind, "csv", scope)
    written = [0]

    def counted() -> Iterator[dict[str, Any]]:
        for row in rows(session, kind, scope):
            written[0] += 1
            yield row

    with click.open_file(output, "wb") as target:
        for chunk in csv_chunks(COLUMNS[kind], counted()):
            target.write(chunk)
    rows_written = "1 row" if written[0] == 1 else f"{written[0]} rows"
    click.echo(f"Exported {rows_written} of {kind} to {output}.", err=True)


def _export_research(
    session: Session,
    kind: str,
    unit: str | None,
    first: date | None,
    last: date | None,
    output: str,
    key_file: str | None,
    with_notes: bool,
) -> None:
    if kind not in research.KINDS:
        _fail(f"The {kind} export cannot be de-identified (it holds every record as it was).")
    if key_file is None:
        _fail("--pseudonymise needs --key-file: the key that keeps pseudonyms stable.")
    try:
        pseudonymiser = research.Pseudonymiser(research.read_key(key_file), with_notes)
        scope = export_scope(session, SYSTEM, "checks", unit, first, last)
        with click.open_file(output, "wb") as target:
            research.write_research(
                target, session, SYSTEM, kind, scope, pseudonymiser,
                Terminology.of(current_app.config), utcnow(),
            )  # fmt: skip
    except ServiceError as refused:
        _fail(" ".join([refused.message, *refused.problems.values()]))
    click.echo(f"Exported {kind}, de-identified, to {output}.", err=True)


def _export_fhir(session: Session, scope: Any, output: str) -> None:
    record_export(session, SYSTEM, "fhir", "json", scope)
    terms = Terminology.of(current_app.config)
    with click.open_file(output, "wb") as target:
        for text in bundle_chunks(terms, utcnow(), fhir_resources(session, scope, terms)):
            target.write(text.encode())
    click.echo(f"Exported a FHIR R4 Bundle to {output}.", err=True)


def _export_compliance(
    session: Session, unit: str | None, first: date | None, last: date | None, output: str
) -> None:
    try:
        reports = list(compliance_reports(session, SYSTEM, unit, first, last, utcnow()))
        scope = export_scope(session, SYSTEM, "checks", unit, first, last)
    except ServiceError as refused:
        _fail(" ".join([refused.message, *refused.problems.values()]))
    record_export(session, SYSTEM, "compliance", "csv", scope)
    with click.open_file(output, "wb") as target:
        table = itertools.chain.from_iterable(compliance_rows(report) for report in reports)
        for chunk in csv_chunks(COMPLIANCE_COLUMNS, table):
            target.write(chunk)
    units = ", ".join(report.unit.code for report in reports) or "no unit"
    click.echo(f"Exported the compliance report of {units} to {output}.", err=True)


@click.command("deliver-notifications")
@with_appcontext
def deliver_notifications() -> None:
    """Send due escalation notices to units' webhooks, and retry failed ones (cron: every
    minute; the serving processes send them too)."""
    _deliver_notifications()


def _deliver_notifications() -> None:
    session_factory = current_app.extensions[EXTENSION_KEY]
    tried = 0
    try:
        # Each claimed notice moves into the future (delivered, retry later, or leased), so
        # this ends once nothing is due now.
        while (batch := deliver_due(session_factory, limit=notifier.BATCH)) > 0:
            tried += batch
            if batch < notifier.BATCH:
                break
    except Exception as error:  # noqa: BLE001 - the database, not a webhook: say so, exit 1
        _fail(f"Notifications could not be sent: {error}")
    click.echo(f"Notification attempts made: {tried} (each is logged and stored).")


@click.command("serve")
@with_appcontext
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", type=int, default=None, help="Worker processes (default: config).")
@click.option("--threads", type=int, default=None, help="Threads per worker (default: config).")
def serve(host: str, port: int, workers: int | None, threads: int | None) -> None:
    """Serve flapwatch with gunicorn: each worker an event loop (uvicorn) that holds the units'
    event streams and runs the pages and the API on its threads (flapwatch/asgi.py)."""
    from gunicorn.app.base import BaseApplication

    from flapwatch.asgi import create_asgi

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    threads = threads or app.config["SERVE_THREADS"]

    def after_fork(_server: Any, _worker: Any) -> None:
        # Each worker opens its own database connections, never the master's; then starts its
        # own notification sender (a thread does not survive the fork; see notifier.py).
        engine_of(app).dispose(close=False)
        notifier.start(app)

    def on_worker_exit(_server: Any, _worker: Any) -> None:
        # A notice being posted is let finish and recorded, rather than cut off and resent.
        notifier.stop(app, timeout=float(app.config["WEBHOOK_TIMEOUT_SECONDS"]) + 1)

    options: dict[str, Any] = {
        "bind": f"{host}:{port}",
        "workers": workers or app.config["SERVE_WORKERS"],
        "worker_class": "flapwatch.asgi.Worker",
        # The app writes its own request log (a JSON line each, with request id and duration).
        "accesslog": None,
        "timeout": 60,
        "post_fork": after_fork,
        "worker_exit": on_worker_exit,
    }

    class Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            return create_asgi(app, threads)

    requests_log = logging.getLogger("flapwatch.requests")
    if not requests_log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        requests_log.addHandler(handler)
        requests_log.setLevel(logging.INFO)
        requests_log.propagate = False
    click.echo(f"flapwatch: log in at http://{host}:{port}/login (Ctrl-C stops it)")
    # Not inside this command's application context: every request runs in a context copied
    # from the worker's event loop, and would share that context's `g` (its database
    # session) instead of having its own.
    contextvars.Context().run(Server().run)
