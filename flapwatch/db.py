"""Database engine, sessions and transactions, for SQLite and PostgreSQL alike."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from flask import Flask, current_app, g
from sqlalchemy import DateTime, Engine, create_engine, event
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

EXTENSION_KEY = "flapwatch.db"
# In session.info while a write_transaction is open on that session.
_WRITING = "flapwatch.writing"

# Set while a write transaction starts, so SQLite begins it with BEGIN IMMEDIATE.
_begin_immediate: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "begin_immediate", default=False
)


class Base(DeclarativeBase):
    pass


class UTCDateTime(TypeDecorator[datetime]):
    """An instant, stored in UTC, always handed back time-zone aware.

    PostgreSQL keeps it as timestamptz; SQLite has no zoned type, so UTC is stored bare and
    the zone put back on reading. A naive datetime is refused: its zone would be a guess.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: the time zone of a clinical time must be known")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def make_engine(
    url: str,
    *,
    sqlite_busy_timeout_ms: int = 15000,
    echo: bool = False,
    pool: dict[str, int] | None = None,
) -> Engine:
    """`pool`: pool_size, max_overflow, pool_timeout, pool_recycle (PostgreSQL; README
    "Production" for how to size them)."""
    if url.startswith("sqlite"):
        engine = create_engine(url, echo=echo)
        _configure_sqlite(engine, sqlite_busy_timeout_ms)
        return engine
    # pre_ping: after a database restart the pool hands out live connections, not dead ones.
    return create_engine(url, echo=echo, pool_pre_ping=True, **(pool or {}))


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, issue BEGIN (SQLAlchemy's pysqlite recipe), so that
        # writers can take the lock up front with BEGIN IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # WAL: readers never block the writer. synchronous=FULL: a save the nurse saw
        # confirmed survives a power cut, at the cost of one fsync per commit.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if _begin_immediate.get() else "BEGIN")


def init_app(app: Flask) -> None:
    engine = make_engine(
        app.config["DATABASE_URL"],
        sqlite_busy_timeout_ms=app.config["SQLITE_BUSY_TIMEOUT_MS"],
        echo=app.config.get("SQL_ECHO", False),
        pool={
            "pool_size": int(app.config["DB_POOL_SIZE"]),
            "max_overflow": int(app.config["DB_MAX_OVERFLOW"]),
            "pool_timeout": int(app.config["DB_POOL_TIMEOUT_SECONDS"]),
            "pool_recycle": int(app.config["DB_POOL_RECYCLE_SECONDS"]),
        },
    )
    app.extensions[EXTENSION_KEY] = sessionmaker(engine, expire_on_commit=False)
    app.teardown_appcontext(_close_session)


def engine_of(app: Flask) -> Engine:
    bind = app.extensions[EXTENSION_KEY].kw["bind"]
    assert isinstance(bind, Engine)
    return bind


def get_session() -> Session:
    """The session of the current request or CLI command (one per application context)."""
    if "db_session" not in g:
        g.db_session = current_app.extensions[EXTENSION_KEY]()
    session: Session = g.db_session
    return session


def _close_session(_error: BaseException | None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()


@contextmanager
def write_transaction(session: Session) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error.

    A read transaction still open (the request loaded the user, say) is ended first: on
    SQLite in WAL mode an old read snapshot could not be upgraded to a write.

    Nested inside another write_transaction on the same session, it joins the outer one:
    the API stores a check and the idempotency record of the request that sent it, or a
    flap's details and its status, in one commit.
    """
    if session.info.get(_WRITING):
        yield session
        return
    if session.in_transaction():
        if session.new or session.dirty or session.deleted:
            raise RuntimeError("write_transaction started with unsaved changes pending")
        session.commit()
    token = _begin_immediate.set(True)
    try:
        session.connection()
    finally:
        _begin_immediate.reset(token)
    session.info[_WRITING] = True
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.info.pop(_WRITING, None)
