"""The compliance report: a unit's schedule kept, entries, escalations and outcomes for a
period, as a page with its chart, and as CSV."""

from __future__ import annotations

from datetime import date, timedelta

from flask import Blueprint, Response, g, render_template, request

from flapwatch.db import get_session
from flapwatch.domain.outcomes import PUBLISHED
from flapwatch.domain.vocabulary import EscalationOutcome, TheatreFinding
from flapwatch.http.access import EXPORTERS, current_actor, roles_required
from flapwatch.http.downloads import compliance_csv_response
from flapwatch.services import InvalidInput
from flapwatch.services.compliance import ComplianceReport, compliance_report
from flapwatch.services.ward import visible_units
from flapwatch.web.exports import day_argument

bp = Blueprint("compliance", __name__)

DEFAULT_DAYS = 30


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
@roles_required(*EXPORTERS)
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
            "returned_to_theatre": "Returned to theatre",
            "salvaged": "Salvaged",
            "partial_loss": "Partial loss",
            "failed": "Total loss",
            "monitoring": "Still being monitored",
        },
        published=PUBLISHED,
        cause_labels={
            **dict(TheatreFinding.choices()),
            "not_recorded": "findings not recorded",
            "not_re_explored": "lost without re-exploration",
        },
    )
    return page_html, status


@bp.route("/compliance/chart.<any(png, svg):fmt>")
@roles_required(*EXPORTERS)
def chart(fmt: str) -> Response:
    from flapwatch.charts.compliance import compliance_chart_bytes  # matplotlib, when first drawn

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
@roles_required(*EXPORTERS)
def download() -> Response:
    unit, first_day, last_day, problems = _chosen()
    if problems:
        raise InvalidInput("Nothing was exported.", problems)
    return compliance_csv_response(current_actor(), unit, first_day, last_day)
