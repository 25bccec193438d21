"""Settings: built-in defaults < instance/config.py < FLAPWATCH_* environment variables."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from flask import Flask

ENV_PREFIX = "FLAPWATCH_"


class Defaults:
    # A production deployment (FLAPWATCH_PRODUCTION=true): the secret key must be given, long
    # and not a placeholder (several servers must share it), session cookies are sent over
    # HTTPS only, and browsers are told to use HTTPS from then on (HSTS).
    PRODUCTION = False
    # None means "sqlite:///<instance>/flapwatch.sqlite3", resolved once the instance is known.
    DATABASE_URL: str | None = None
    # None: outside production, a random key kept in the instance folder.
    SECRET_KEY: str | None = None
    # Proxies in front of the app (a load balancer, a TLS terminator) whose X-Forwarded-For and
    # X-Forwarded-Proto are believed: the client's address (log-in throttling, the audit
    # trail) and whether the request came over HTTPS. 0: connect straight to the app.
    TRUSTED_PROXIES = 0
    # Send the session cookie over HTTPS only; None: only in production.
    SESSION_COOKIE_SECURE: bool | None = None
    # SQLite waits this long for a competing writer before giving up (milliseconds).
    SQLITE_BUSY_TIMEOUT_MS = 15000
    # argon2id parameters (RFC 9106 "second recommended option", argon2-cffi's defaults).
    PASSWORD_TIME_COST = 3
    PASSWORD_MEMORY_COST_KIB = 65536
    PASSWORD_PARALLELISM = 4
    # Log-in throttling: this many failed log-ins within LOGIN_LOCKOUT_MINUTES lock an account
    # (whether or not it exists) or an address for the rest of that time. A successful log-in
    # or a password reset clears the account's count; an address's count only ages out.
    LOGIN_MAX_FAILURES_PER_ACCOUNT = 5
    LOGIN_MAX_FAILURES_PER_ADDRESS = 20
    LOGIN_LOCKOUT_MINUTES = 15
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    WTF_CSRF_TIME_LIMIT = None  # a form left open on a night shift must still save
    PERMANENT_SESSION_LIFETIME = 12 * 3600
    # The largest request body accepted (a rule set or a check is a few kilobytes).
    MAX_CONTENT_LENGTH = 1024 * 1024
    # A request that carries photos (a check's, up to 3 of at most 20 MB each) may be this big.
    PHOTO_REQUEST_MAX_BYTES = 64 * 1024 * 1024
    # Where photo bytes are kept: None in the database (every server sees them); or a directory
    # every app server mounts (a file a rendition, named by its SHA-256, never overwritten).
    PHOTO_DIRECTORY: str | None = None
    # Escalate overdue checks from ordinary requests, at most once a minute per process.
    SWEEP_ON_REQUESTS = True
    # Rendered trend charts, by flap and data version; None: <instance>/chart-cache. Servers
    # behind one load balancer may share a directory (a file appears whole, by rename).
    CHART_CACHE_DIR: str | None = None
    # PostgreSQL connections of each app process: a worker's threads share its pool, so
    # pool_size ≥ SERVE_THREADS; all servers together stay under the server's max_connections.
    DB_POOL_SIZE = 5
    DB_MAX_OVERFLOW = 5
    DB_POOL_TIMEOUT_SECONDS = 10
    DB_POOL_RECYCLE_SECONDS = 1800
    SERVE_WORKERS = 2
    # The key of the de-identified (research) exports on the exports page and the API: a file
    # of at least 32 random bytes, kept apart from every export; None: those exports are off.
    RESEARCH_KEY_FILE: str | None = None
    # A JSON line per request on the "flapwatch.requests" logger (flapwatch serve: stderr).
    REQUEST_LOG = True
    # Logoff without use for someone who works on no unit (administrators, auditors); a
    # unit sets its own (Admin → Units).
    IDLE_LOGOFF_MINUTES = 10
    # FHIR export: a URL the site controls, under which flapwatch's own code system and
    # identifiers are named (`<base>/CodeSystem/flapwatch`, `<base>/check`, ...); the ".invalid"
    # default (RFC 2606) can never be mistaken for a real organisation's. And the hospital's
    # system for MRNs (None: `<base>/mrn`).
    FHIR_SYSTEM_BASE = "https://flapwatch.invalid/fhir"
    FHIR_MRN_SYSTEM: str | None = None
    SERVE_THREADS = 4
    # Escalation notices to a unit's webhook (services/notifications.py, notifier.py).
    # A sender thread in each serving process; `flapwatch deliver-notifications` from cron
    # (and `flapwatch sweep`) send them too.
    NOTIFIER_THREAD = True
    NOTIFIER_INTERVAL_SECONDS = 5.0  # how often it looks for notices due again after a failure
    WEBHOOK_TIMEOUT_SECONDS = 5.0  # a webhook slower than this has failed that attempt
    WEBHOOK_MAX_ATTEMPTS = 8  # then the notice is given up, and an error logged
    WEBHOOK_RETRY_SECONDS = 10.0  # first retry after this, doubling each time...
    WEBHOOK_RETRY_MAX_SECONDS = 600.0  # ...up to this
    # A sender claims a notice for this long (plus its timeouts) before posting it, so that
    # no other process posts it meanwhile; if the sender dies, another sends it afterwards.
    WEBHOOK_LEASE_SECONDS = 60.0
    # Pages by e-mail (an escalation chain's contacts with an e-mail channel), through the
    # hospital's SMTP relay: none (inside its network), starttls, or tls (SMTPS, port 465).
    SMTP_HOST: str | None = None
    SMTP_PORT = 25
    SMTP_SECURITY = "none"
    SMTP_USERNAME: str | None = None
    SMTP_PASSWORD: str | None = None
    MAIL_FROM = "flapwatch@localhost"
    # Where staff open flapwatch (https://flapwatch.hospital.example): the link in a page.
    BASE_URL: str | None = None
    # Web Push to phones (RFC 8030/8291/8292): the VAPID key pair made by `flapwatch push-keys`
    # (the same on every server) and who runs this server (mailto: or https:), for the push
    # services. Without the keys the queue page offers no notifications.
    VAPID_PUBLIC_KEY: str | None = None
    VAPID_PRIVATE_KEY: str | None = None
    VAPID_SUBJECT = "mailto:flapwatch@localhost"
    # A push notification older than this is dropped by the push service: by then the chain
    # has paged the next step, and a stale alarm helps nobody.
    PUSH_TTL_SECONDS = 900
    # Push services are https; a plain-http endpoint is refused unless allowed (tests only).
    PUSH_ALLOW_HTTP_ENDPOINTS = False
    # A unit's event stream served by a plain WSGI server (flask run; not `flapwatch serve`,
    # whose event loop holds streams without threads) ends after this long and the browser
    # reconnects, so it never holds a thread for long.
    LIVE_WSGI_STREAM_SECONDS = 60.0


# Settings whose default is None but which, when given, are yes or no.
_OPTIONAL_FLAGS = {"SESSION_COOKIE_SECURE"}


def _coerce(value: str, like: Any) -> Any:
    if isinstance(like, bool):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    if isinstance(like, int):
        return int(value)
    if isinstance(like, float):
        return float(value)
    return value


def load_config(app: Flask, overrides: dict[str, Any] | None) -> None:
    app.config.from_object(Defaults)
    app.config.from_pyfile("config.py", silent=True)
    for key, value in os.environ.items():
        if key.startswith(ENV_PREFIX):
            name = key.removeprefix(ENV_PREFIX)
            like = False if name in _OPTIONAL_FLAGS else app.config.get(name)
            app.config[name] = _coerce(value, like)
    if overrides:
        app.config.update(overrides)

    instance = Path(app.instance_path)
    if app.config["PRODUCTION"]:
        _refuse_weak_secret_key(app.config.get("SECRET_KEY"))
    if app.config["SESSION_COOKIE_SECURE"] is None:
        app.config["SESSION_COOKIE_SECURE"] = bool(app.config["PRODUCTION"])
    if not app.config["DATABASE_URL"]:
        instance.mkdir(parents=True, exist_ok=True)
        app.config["DATABASE_URL"] = f"sqlite:///{instance / 'flapwatch.sqlite3'}"
    if not app.config["SECRET_KEY"]:
        app.config["SECRET_KEY"] = _instance_secret_key(instance)


class ConfigurationError(RuntimeError):
    """A setting the app refuses to start with; the message says what to do."""


# Placeholders seen in examples and tutorials: a key anyone can read signs anyone's session.
_PLACEHOLDER_KEYS = {
    "changeme",
    "change-me",
    "change_me",
    "secret",
    "secret-key",
    "secret_key",
    "dev",
    "development",
    "default",
    "flapwatch",
    "replace-me",
    "your-secret-key",
}
MIN_SECRET_KEY_LENGTH = 32


def _refuse_weak_secret_key(key: str | None) -> None:
    hint = (
        "Set FLAPWATCH_SECRET_KEY to a long random value, the same on every server, for "
        "example the output of: python -c 'import secrets; print(secrets.token_urlsafe(48))'"
    )
    if not key:
        raise ConfigurationError(f"FLAPWATCH_SECRET_KEY is not set; production needs it. {hint}")
    if key.strip().lower() in _PLACEHOLDER_KEYS or len(set(key)) < 8:
        raise ConfigurationError(f"FLAPWATCH_SECRET_KEY is a placeholder, not a secret. {hint}")
    if len(key) < MIN_SECRET_KEY_LENGTH:
        raise ConfigurationError(
            f"FLAPWATCH_SECRET_KEY is {len(key)} characters; production needs at least "
            f"{MIN_SECRET_KEY_LENGTH}. {hint}"
        )


def _instance_secret_key(instance: Path) -> str:
    """A random key kept in the instance folder, so sessions survive a restart on one machine.

    Several app servers must share one key: set FLAPWATCH_SECRET_KEY on all of them.
    """
    instance.mkdir(parents=True, exist_ok=True)
    path = instance / "secret_key"
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(descriptor, "w") as key_file:
        key_file.write(secrets.token_urlsafe(48))
    return path.read_text().strip()
