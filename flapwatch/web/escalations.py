"""The surgeon's side: open escalations, acknowledging with an outcome, closing."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("escalations", __name__)
