"""flapwatch: a postoperative free-flap monitoring log."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask

from flapwatch.resources import resource_dir


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the application. `config` overrides every other setting (tests use it).

    Its parts are imported here, not at the top: `import flapwatch.domain` or
    `flapwatch.models` (migrations, the rule engine's tests) must not load the pages."""
    from flapwatch import cli, db, notifier
    from flapwatch.api import register_api
    from flapwatch.api.endpoints import recorded_check_answer
    from flapwatch.config import load_config
    from flapwatch.http import register_http
    from flapwatch.web import register_web

    overrides = dict(config or {})
    instance_path = overrides.pop("INSTANCE_PATH", None) or os.environ.get(
        "FLAPWATCH_INSTANCE_PATH"
    )
    app = Flask(
        __name__,
        instance_path=str(Path(instance_path).resolve()) if instance_path else None,
        instance_relative_config=True,
        template_folder=str(resource_dir("templates")),
        static_folder=str(resource_dir("static")),
    )
    load_config(app, overrides)
    if app.config["TRUSTED_PROXIES"]:
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = int(app.config["TRUSTED_PROXIES"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]
    db.init_app(app)
    # The two faces stand on flapwatch.http and never import each other; what one needs of
    # the other is handed over here.
    register_http(app)
    register_web(app, check_answer=recorded_check_answer)
    register_api(app)
    cli.register(app)
    notifier.log_every_attempt(app)
    if app.config["NOTIFIER_THREAD"]:
        # Started after gunicorn forks, or on a process's first request: never here.
        notifier.init_app(app)
    return app
