"""Exports for auditors and administrators: a page to choose one, and the files themselves
(written by flapwatch.http.downloads, as the API's are)."""

from __future__ import annotations

from datetime import date

from flask import Blueprint, Response, current_app, render_template, request

from flapwatch.db import get_session
from flapwatch.http.access import EXPORTERS, current_actor, roles_required
from flapwatch.http.downloads import (
    export_response,
    fhir_response,
    research_response,
    workbook_response,
)
from flapwatch.services import InvalidInput
from flapwatch.services.exports import COLUMNS, KINDS
from flapwatch.services.research import KINDS as RESEARCH_KINDS
from flapwatch.services.ward import visible_units

bp = Blueprint("exports", __name__)


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
@roles_required(*EXPORTERS)
def index() -> str:
    units = visible_units(get_session(), current_actor())
    return render_template(
        "exports.html",
        kinds=KINDS,
        columns=COLUMNS,
        units=units,
        research_kinds=RESEARCH_KINDS,
        research_on=bool(current_app.config.get("RESEARCH_KEY_FILE")),
    )


@bp.route("/exports/workbook.xlsx")
@roles_required(*EXPORTERS)
def workbook() -> Response:
    unit = request.args.get("unit", "").strip() or None
    return workbook_response(current_actor(), unit, _day("from"), _day("to"))


@bp.route("/exports/fhir.json")
@roles_required(*EXPORTERS)
def fhir() -> Response:
    unit = request.args.get("unit", "").strip() or None
    return fhir_response(current_actor(), unit, _day("from"), _day("to"))


@bp.route("/exports/<any(checks, amendments, escalations, not_done, audit):kind>.csv")
@roles_required(*EXPORTERS)
def download(kind: str) -> Response:
    unit = request.args.get("unit", "").strip() or None
    return export_response(current_actor(), kind, unit, _day("from"), _day("to"))


@bp.route("/exports/research")
@roles_required(*EXPORTERS)
def research() -> Response:
    """A de-identified export for a registry or a research team."""
    unit = request.args.get("unit", "").strip() or None
    kind = request.args.get("kind", "").strip()
    notes = request.args.get("notes") == "1"
    return research_response(current_actor(), kind, unit, _day("from"), _day("to"),
                             with_notes=notes)  # fmt: skip
