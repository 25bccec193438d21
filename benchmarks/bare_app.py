"""The sustained-load benchmark's baseline: a bare Flask app doing the least the same requests
could do — a trivial template for a page, one raw INSERT for a check — on the same database.

Served by gunicorn exactly as flapwatch is: `gunicorn 'bare_app:create()'`, with the
database in BARE_DATABASE_URL and the account that checks are written as in BARE_NURSE_ID.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from flask import Flask, render_template_string, request
from sqlalchemy import Engine, create_engine

from flapwatch.models import Check


def create() -> Flask:
    app = Flask("bare")
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024 * 1024
    engine = create_engine(os.environ["BARE_DATABASE_URL"])
    nurse_id = int(os.environ["BARE_NURSE_ID"])

    @app.get("/units/<code>/board")
    def board(code: str) -> str:
        return render_template_string("<p>{{ code }}</p>", code=code)

    @app.post("/api/v1/checks/<int:check_id>/photos")
    def discard_photos(check_id: int) -> tuple[str, int]:
        """The photo benchmark's baseline: the same multipart upload, read and thrown away."""
        for upload in request.files.getlist("photos"):
            upload.read()
        return "{}", 201

    @app.post("/api/v1/reconstructions/<int:flap_id>/checks")
    def record(flap_id: int) -> tuple[str, int]:
        raw_insert(engine, flap_id, nurse_id)
        return "{}", 201

    return app


def raw_insert(engine: Engine, flap_id: int, nurse_id: int) -> None:
    """The least that storing a check could be: one INSERT of its row, in its own commit."""
    now = datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(
            Check.__table__.insert().values(
                reconstruction_id=flap_id,
                taken_at=now,
                recorded_at=now,
                first_recorded_at=now,
                recorded_by_id=nurse_id,
                doppler_venous="present",
                doppler_arterial="present",
                version=1,
                entered_in_error=False,
            )
        )
