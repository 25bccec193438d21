"""Exports for auditors and administrators: a page to choose one, and the files themselves."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date
from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    g,
    render_template,
    request,
    send_file,
    stream_with_context,
)
from sqlalchemy.orm import Session

from flapwatch.db import get_session
from flapwatch.exports.fhir import Terminology, bundle_chunks
from flapwatch.exports.tables import csv_chunks, write_workbook
from flapwatch.services import Actor, InvalidInput
from flapwatch.services.exports import (
    COLUMNS,
    EXPORT_ROLES,
    KINDS,
    ExportScope,
    export_scope,
    fhir_resources,
    record_export,
    rows,
    workbook_sheets,
)
from flapwatch.services.ward import visible_units
from flapwatch.web.access import current_actor, roles_required

bp = Blueprint("exports", __name__)


def csv_download(
    session: Session, columns: Sequence[str], table: Iterable[Mapping[str, Any]], name: str
) -> Response:
    """Rows as a CSV download named `name`.csv, streamed as they are read."""

    def download() -> Iterator[bytes]:
        try:
            yield from csv_chunks(columns, table)
        finally:
            # The read ends with the last row, whether or not the server closes the response
            # at once: a transaction left open would hold PostgreSQL's locks meanwhile.
            session.rollback()

    response = Response(stream_with_context(download()), mimetype="text/csv")
    response.headers["Content-Type"] = "text/csv; charset=utf-8; header=present"
    response.headers["Content-Disposition"] = f'attachment; filename="{name}.csv"'
    return response


def export_response(
    actor: Actor, kind: str, unit: str | None, first_day: date | None, last_day: date | None
) -> Response:
    """The export as a CSV download, streamed; the export is audited before it starts."""
    session = get_session()
    scope = export_scope(session, actor, kind, unit, first_day, last_day)
    record_export(session, actor, kind, "csv", scope)
    name = file_name(kind, scope, first_day, last_day)
    return csv_download(session, COLUMNS[kind], rows(session, kind, scope), name)


def workbook_response(
    actor: Actor, unit: str | None, first_day: date | None, last_day: date | None
) -> Response:
    """Every export as one XLSX workbook, a sheet each; audited before it is written."""
    session = get_session()
    scope = export_scope(session, actor, "checks", unit, first_day, last_day)
    record_export(session, actor, "workbook", "xlsx", scope)
    # Written to disk row by row (openpyxl's write-only mode), then sent from there.
    target = tempfile.TemporaryFile()  # noqa: SIM115 (send_file closes it once sent)
    try:
        write_workbook(target, workbook_sheets(session, scope))
    finally:
        session.rollback()
    target.seek(0)
    return send_file(
        target,
        mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        as_attachment=True,
        download_name=f"{file_name('workbook', scope, first_day, last_day)}.xlsx",
    )


def fhir_response(
    actor: Actor, unit: str | None, first_day: date | None, last_day: date | None
) -> Response:
    """A FHIR R4 Bundle (collection) of the period, streamed; audited before it starts."""
    session = get_session()
    scope = export_scope(session, actor, "checks", unit, first_day, last_day)
    record_export(session, actor, "fhir", "json", scope)
    terms = Terminology.of(current_app.config)

    def download() -> Iterator[bytes]:
        try:
            for text in bundle_chunks(terms, g.now, fhir_resources(session, scope, terms)):
                yield text.encode()
        finally:
            session.rollback()

    response = Response(stream_with_context(download()), mimetype="application/fhir+json")
    response.headers["Content-Type"] = "application/fhir+json; fhirVersion=4.0; charset=utf-8"
    name = file_name("fhir", scope, first_day, last_day)
    response.headers["Content-Disposition"] = f'attachment; filename="{name}.json"'
    return response


def file_name(kind: str, scope: ExportScope, first_day: date | None, last_day: date | None) -> str:
    parts = (
        "flapwatch",
        kind,
        scope.unit.code if scope.unit else "all-units",
        first_day.isoformat() if first_day else "",
        last_day.isoformat() if last_day else "",
    )
    return "-".join(part for part in parts if part)


DAY_FORMAT = "Give the day as YYYY-MM-DD, e.g. 2026-11-30."


def day_argument(name: str, problems: dict[str, str]) -> date | None:
    """A day from the query string; a badly written one is named in `problems`."""
    text = request.args.get(name, "").strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        problems[name] = DAY_FORMAT
        return None


def _day(name: str) -> date | None:
    problems: dict[str, str] = {}
    day = day_argument(name, problems)
    if problems:
        raise InvalidInput("Nothing was exported.", problems)
    return day


@bp.route("/exports")
@roles_required(*EXPORT_ROLES)
def index() -> str:
    units = visible_units(get_session(), current_actor())
    return render_template("exports.html", kinds=KINDS, columns=COLUMNS, units=units)


@bp.route("/exports/workbook.xlsx")
@roles_required(*EXPORT_ROLES)
def workbook() -> Response:
    unit = request.args.get("unit", "").strip() or None
    return workbook_response(current_actor(), unit, _day("from"), _day("to"))


@bp.route("/exports/fhir.json")
@roles_required(*EXPORT_ROLES)
def fhir() -> Response:
    unit = request.args.get("unit", "").strip() or None
    return fhir_response(current_actor(), unit, _day("from"), _day("to"))


@bp.route("/exports/<any(checks, amendments, escalations, audit):kind>.csv")
@roles_required(*EXPORT_ROLES)
def download(kind: str) -> Response:
    unit = request.args.get("unit", "").strip() or None
    return export_response(current_actor(), kind, unit, _day("from"), _day("to"))
