"""Files either face sends: exports as CSV, XLSX and FHIR, the compliance report as CSV, a
flap's chart (PNG or SVG, from the chart cache) and its printable PDF report.

Each export is recorded in the audit trail before its first byte leaves; a streamed download
ends its own read, so no transaction outlives it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date
from itertools import chain
from pathlib import Path
from typing import Any

from flask import Flask, Response, current_app, g, send_file, stream_with_context
from sqlalchemy.orm import Session

from flapwatch.charts.cache import ChartCache
from flapwatch.charts.spec import FORMATS, STYLE, VARIANTS
from flapwatch.db import get_session
from flapwatch.exports.fhir import Terminology, bundle_chunks
from flapwatch.exports.tables import csv_chunks, write_workbook
from flapwatch.http.photos import photo_store
from flapwatch.services import Actor, InvalidInput
from flapwatch.services.compliance import COMPLIANCE_COLUMNS, compliance_reports, compliance_rows
from flapwatch.services.exports import (
    COLUMNS,
    ExportScope,
    export_scope,
    fhir_resources,
    record_export,
    rows,
    workbook_sheets,
)
from flapwatch.services.research import Pseudonymiser, read_key, write_research
from flapwatch.services.review import chart_subject, flap_trend, record_report_export

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

# --- exports -----------------------------------------------------------------------------------


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
        mimetype=XLSX,
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


RESEARCH_TYPES = {"workbook": (XLSX, "xlsx"), "fhir": ("application/fhir+json", "json")}


def research_response(
    actor: Actor,
    kind: str,
    unit: str | None,
    first_day: date | None,
    last_day: date | None,
    *,
    with_notes: bool = False,
) -> Response:
    """A de-identified export with the server's research key (RESEARCH_KEY_FILE); audited."""
    key_file = current_app.config.get("RESEARCH_KEY_FILE")
    if not key_file:
        raise InvalidInput(
            "Nothing was exported.",
            {"pseudonymise": "This server has no research key: set "
                             "FLAPWATCH_RESEARCH_KEY_FILE to a file of at least 32 random bytes."},
        )  # fmt: skip
    pseudonymiser = Pseudonymiser(read_key(key_file), with_notes)
    session = get_session()
    scope = export_scope(session, actor, "checks", unit, first_day, last_day)
    target = tempfile.TemporaryFile()  # noqa: SIM115 (send_file closes it once sent)
    try:
        write_research(target, session, actor, kind, scope, pseudonymiser,
                       Terminology.of(current_app.config), g.now)  # fmt: skip
    except BaseException:
        target.close()
        raise
    finally:
        session.rollback()
    target.seek(0)
    mimetype, suffix = RESEARCH_TYPES.get(kind, ("text/csv", "csv"))
    return send_file(
        target,
        mimetype=mimetype,
        as_attachment=True,
        download_name=f"{file_name(kind + '-research', scope, first_day, last_day)}.{suffix}",
    )


def compliance_csv_response(
    actor: Actor, unit: str | None, first_day: date | None, last_day: date | None
) -> Response:
    """The report of one unit (or every unit) as CSV; the export is audited before it starts."""
    session = get_session()
    reports = list(compliance_reports(session, actor, unit, first_day, last_day, g.now))
    scope = export_scope(session, actor, "checks", unit, first_day, last_day)
    record_export(session, actor, "compliance", "csv", scope)
    table = chain.from_iterable(compliance_rows(report) for report in reports)
    name = file_name("compliance", scope, first_day, last_day)
    return csv_download(session, COMPLIANCE_COLUMNS, table, name)


def file_name(kind: str, scope: ExportScope, first_day: date | None, last_day: date | None) -> str:
    parts = (
        "flapwatch",
        kind,
        scope.unit.code if scope.unit else "all-units",
        first_day.isoformat() if first_day else "",
        last_day.isoformat() if last_day else "",
    )
    return "-".join(part for part in parts if part)


# --- a flap's chart and report -------------------------------------------------------------------

CHART_CACHE_KEY = "flapwatch.chart_cache"


def init_chart_cache(app: Flask) -> None:
    directory = app.config.get("CHART_CACHE_DIR") or Path(app.instance_path) / "chart-cache"
    app.extensions[CHART_CACHE_KEY] = ChartCache(Path(directory))


def chart_cache() -> ChartCache:
    return current_app.extensions[CHART_CACHE_KEY]


def chart_response(actor: Actor, reconstruction_id: int, size: str, fmt: str) -> Response:
    """A flap's chart, from the cache when its data has not changed since it was drawn."""
    from flapwatch.charts.figure import chart_bytes  # matplotlib, loaded by the first chart

    db = get_session()
    subject = chart_subject(db, actor, reconstruction_id, g.now)
    variant = VARIANTS[size]
    data, cached = chart_cache().fetch(
        subject.reconstruction_id,
        variant.name,
        fmt,
        subject.version(STYLE),
        lambda: chart_bytes(flap_trend(db, subject), variant, fmt),
    )
    return chart_image(data, reconstruction_id, fmt, cached=cached)


def chart_image(data: bytes, reconstruction_id: int, fmt: str, *, cached: bool) -> Response:
    response = Response(data, mimetype=FORMATS[fmt])
    response.headers["X-Chart-Cache"] = "hit" if cached else "miss"
    response.headers["Content-Disposition"] = (
        f'inline; filename="flap-{reconstruction_id}-chart.{fmt}"'
    )
    if fmt == "svg":
        # An SVG opened on its own is a document: it may show, never run anything.
        response.headers["Content-Security-Policy"] = (
            "default-src 'none'; style-src 'unsafe-inline'"
        )
    return response


def report_response(actor: Actor, reconstruction_id: int) -> Response:
    """The printable PDF report; who printed which flap's record goes in the audit trail."""
    from flapwatch.exports.pdf import flap_report  # matplotlib, loaded by the first report

    db = get_session()
    subject = chart_subject(db, actor, reconstruction_id, g.now)
    trend = flap_trend(db, subject, for_report=True, photo_store=photo_store())
    data = flap_report(trend, generated_at=g.now, generated_by=actor.username)
    # Recorded once the report exists: the trail must not show a report that never left.
    record_report_export(db, actor, subject)
    response = Response(data, mimetype="application/pdf")
    response.headers["Content-Disposition"] = (
        f'inline; filename="flap-{reconstruction_id}-report.pdf"'
    )
    return response
