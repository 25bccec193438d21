"""Unit coordinators' and administrators' pages: units, staff, patients, reconstructions."""

from __future__ import annotations

from flask import Blueprint, render_template

from flapwatch.web.access import MANAGERS, roles_required

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.route("/")
@roles_required(*MANAGERS)
def index() -> str:
    return render_template("admin/index.html")
