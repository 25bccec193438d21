"""The compliance report: a unit's schedule kept, entries, escalations and outcomes for a
period, as a page with its chart, and as CSV."""

from __future__ import annotations

from datetime import date, timedelta
from itertools import chain

from flask import Blueprint, Response, g, render_template, request

from flapwatch.db import get_session
from flapwatch.domain.vocabulary import EscalationOutcome, ReconstructionStatus
from flapwatch.services import Actor, InvalidInput
from flapwatch.services.compliance import (
    COMPLIANCE_COLUMNS,
    ComplianceReport,
    compliance_report,
    compliance_reports,
    compliance_rows,
)
from flapwatch.services.exports import EXPORT_ROLES, export_scope, record_export
from flapwatch.services.ward import visible_units
from flapwatch.web.access import current_actor, roles_required
from flapwatch.web.exports import csv_download, day_argument, file_name

bp = Blueprint("compliance", __name__)

DEFAULT_DAYS = 30


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


def _chosen() -> tuple[str | None, date | None, date | None, dict[str, str]]:
    problems: dict[str, str] = {}
    unit = request.args.get("unit", "").strip() or None
    return unit, day_argument("from", problems), day_argument("to", problems), problems


def _title(report: ComplianceReport) -> str:
    return (
        f"Scheduled checks on time: {report.unit.name} ({report.unit.code}), "
        f"{report.first_day:%-d %b %Y} to {report.last_day:%-d %b %Y}"
    )


@bp.route("/compliance")
@roles_required(*EXPORT_ROLES)
def page() -> str | tuple[str, int]:
    session, actor = get_session(), current_actor()
    units = visible_units(session, actor)
    unit, first_day, last_day, problems = _chosen()
    if not request.args:
        # First visit: the last 30 days (by the date in UTC; the report reads them on the
        # unit's clock).
        last_day = g.now.date()
        first_day = last_day - timedelta(days=DEFAULT_DAYS - 1)
    unit = unit or (units[0].code if units else None)
    report = None
    if unit and not problems:
        try:
            report = compliance_report(session, actor, unit, first_day, last_day, g.now)
        except InvalidInput as error:
            problems.update(error.problems)
    chosen = {"unit": unit, "from": first_day, "to": last_day}
    status = 400 if problems else 200
    page_html = render_template(
        "compliance.html",
        units=units,
        chosen=chosen,
        problems=problems,
        report=report,
        title=_title(report) if report else "",
        args=request.args,
        outcome_labels={**dict(EscalationOutcome.choices()), "none": "Not yet decided"},
        status_labels={
            **dict(ReconstructionStatus.choices()),
            "returned_to_theatre": "Returned to theatre",
            "monitoring": "Still being monitored",
        },
    )
    return page_html, status


@bp.route("/compliance/chart.<any(png, svg):fmt>")
@roles_required(*EXPORT_ROLES)
def chart(fmt: str) -> Response:
    from flapwatch.charts import compliance_chart_bytes  # matplotlib, loaded when first drawn

    unit, first_day, last_day, problems = _chosen()
    if problems or not unit:
        raise InvalidInput("No chart.", problems or {"unit": "Choose a unit."})
    report = compliance_report(get_session(), current_actor(), unit, first_day, last_day, g.now)
    assert report.buckets is not None
    data = compliance_chart_bytes(report.buckets, _title(report), fmt)
    response = Response(data, mimetype="image/png" if fmt == "png" else "image/svg+xml")
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.route("/exports/compliance.csv")
@roles_required(*EXPORT_ROLES)
def download() -> Response:
    unit, first_day, last_day, problems = _chosen()
    if problems:
        raise InvalidInput("Nothing was exported.", problems)
    return compliance_csv_response(current_actor(), unit, first_day, last_day)
