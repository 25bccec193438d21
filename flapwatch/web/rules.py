"""A unit's escalation rule set: view, edit, dry run against history, publish, import/export."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("rules", __name__, url_prefix="/admin/units/<int:unit_id>/rules")
