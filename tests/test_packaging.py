"""A non-editable install (a built wheel) finds its templates, static files and migrations."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(
    """
    import sys
    import flapwatch
    from flapwatch import create_app
    from flapwatch.db import engine_of
    from flapwatch.migrate import upgrade_to_head

    assert flapwatch.__file__.startswith(sys.argv[1]), flapwatch.__file__
    app = create_app({"INSTANCE_PATH": sys.argv[2], "SECRET_KEY": "x"})
    upgrade_to_head(engine_of(app))
    client = app.test_client()
    login = client.get("/login")
    css = client.get("/static/flapwatch.css")
    print(login.status_code, "Log in" in login.get_data(as_text=True), css.status_code)
    """
)


@pytest.mark.slow
def test_wheel_install_serves_pages_and_migrates(tmp_path):
    wheels, target = tmp_path / "wheels", tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(ROOT)],
        check=True,
    )
    wheel = next(wheels.glob("flapwatch-*.whl"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
    )
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(target), str(tmp_path / "instance")],
        cwd=tmp_path,  # away from the checkout, so only the installed copy can be imported
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["200", "True", "200"]
