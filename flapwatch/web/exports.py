"""Exports for auditors and administrators: a page to choose one, and the files themselves."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from datetime import date

from flask import Blueprint, Response, render_template, request, send_file, stream_with_context

from flapwatch.db import get_session
from flapwatch.exports.tables import csv_chunks, write_workbook
from flapwatch.services import Actor, InvalidInput
from flapwatch.services.exports import (
    COLUMNS,
    KINDS,
    ExportScope,
    export_scope,
    record_export,
    rows,
    workbook_sheets,
)
from flapwatch.services.ward import visible_units
from flapwatch.web.access import current_actor, roles_required

bp = Blueprint("exports", __name__)

EXPORTERS = ("auditor", "admin")


def export_response(
    actor: Actor, kind: str, unit: str | None, first_day: date | None, last_day: date | None
) -> Response:
    """The export as a CSV download, streamed; the export is audited before it starts."""
    session = get_session()
    scope = export_scope(session, actor, kind, unit, first_day, last_day)
    record_export(session, actor, kind, "csv", scope)
    name = _file_name(kind, scope, first_day, last_day)

    def download() -> Iterator[bytes]:
        try:
            yield from csv_chunks(COLUMNS[kind], rows(session, kind, scope))
        finally:
            # The read ends with the last row, whether or not the server closes the response
            # at once: a transaction left open would hold PostgreSQL's locks meanwhile.
            session.rollback()

    response = Response(stream_with_context(download()), mimetype="text/csv")
    response.headers["Content-Type"] = "text/csv; charset=utf-8; header=present"
    response.headers["Content-Disposition"] = f'attachment; filename="{name}.csv"'
    return response


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
        download_name=f"{_file_name('workbook', scope, first_day, last_day)}.xlsx",
    )


def _file_name(kind: str, scope: ExportScope, first_day: date | None, last_day: date | None) -> str:
    parts = (
        "flapwatch",
        kind,
        scope.unit.code if scope.unit else "all-units",
        first_day.isoformat() if first_day else "",
        last_day.isoformat() if last_day else "",
    )
    return "-".join(part for part in parts if part)


def _day(name: str) -> date | None:
    text = request.args.get(name, "").strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            "Nothing was exported.", {name: "Give the day as YYYY-MM-DD, e.g. 2026-11-30."}
        ) from None


@bp.route("/exports")
@roles_required(*EXPORTERS)
def index() -> str:
    units = visible_units(get_session(), current_actor())
    return render_template("exports.html", kinds=KINDS, columns=COLUMNS, units=units)


@bp.route("/exports/workbook.xlsx")
@roles_required(*EXPORTERS)
def workbook() -> Response:
    unit = request.args.get("unit", "").strip() or None
    return workbook_response(current_actor(), unit, _day("from"), _day("to"))


@bp.route("/exports/<any(checks, amendments, escalations, audit):kind>.csv")
@roles_required(*EXPORTERS)
def download(kind: str) -> Response:
    unit = request.args.get("unit", "").strip() or None
    return export_response(current_actor(), kind, unit, _day("from"), _day("to"))
