"""HTML side of flapwatch: blueprints by feature, and the filters their templates use."""

from __future__ import annotations

from flask import Flask

from flapwatch.web import (
    admin,
    admissions,
    auth,
    chains,
    checks,
    compliance,
    escalations,
    exports,
    monitoring,
    outcomes,
    photos,
    presenters,
    push,
    review,
    rules,
    ward,
)


def register_web(app: Flask, *, check_answer: checks.CheckAnswer) -> None:
    """The pages. `check_answer` is the API's answer to a recorded check: a check saved through
    the ward's form with a key keeps it, for the tablet that sends it again through the API."""
    for blueprint in (
        auth.bp,
        ward.bp,
        checks.bp,
        monitoring.bp,
        outcomes.bp,
        admissions.bp,
        escalations.bp,
        review.bp,
        exports.bp,
        compliance.bp,
        rules.bp,
        admin.bp,
        chains.bp,
        push.bp,
        photos.bp,
    ):
        app.register_blueprint(blueprint)
    app.extensions[checks.CHECK_ANSWER_KEY] = check_answer
    presenters.register(app)
