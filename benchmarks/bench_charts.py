"""Trend chart speed: a 200-check flap's chart cold and cached, against baselines measured in
the same run (machines here are noisy: ratios, not absolute times).

    python benchmarks/bench_charts.py [--checks 200] [--repeat 15] [--seconds 3]

- cold: GET /reconstructions/<id>/chart.png with the chart cache emptied first (session,
  queries, drawing, PNG encoding), against a bare matplotlib Figure of the same size with the
  same number of points (one Axes, plain lines), saved as PNG. Target: ≤ 1.5×. Also shown
  against a bare figure with the chart's own panels (same grid and points, defaults only).
- cached: the chart served from the cache at the signed address the flap page gives the
  browser, in requests per second, against a trivial Flask route (a bare Flask app answering
  "ok"), both through Flask's test client in this process. Target: ≥ 50 % of its throughput.
  Also shown: the unsigned address (log-in, role, unit and data version read from the
  database each time), against a trivial route inside flapwatch behind the same log-in.

Runs on a fresh SQLite database in a temporary directory, or on FLAPWATCH_DATABASE_URL.
"""

from __future__ import annotations

import argparse
import html
import io
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from flask import Flask
from flask_login import login_required
from matplotlib.figure import Figure
from ward import PASSWORD, bench_flap, bench_unit  # benchmarks/ward.py

from flapwatch import create_app
from flapwatch.charts.spec import FULL, image_size
from flapwatch.db import EXTENSION_KEY, engine_of
from flapwatch.domain.checks import CheckValues
from flapwatch.migrate import upgrade_to_head
from flapwatch.models import utcnow
from flapwatch.services import Actor
from flapwatch.services.checks import record_check


def _flap_with_checks(app: Flask, count: int) -> int:
    """A unit, a nurse, and one flap with `count` checks every 30 min, drifting and flagged
    now and then, as a real chart would be."""
    with app.app_context():
        session = app.extensions[EXTENSION_KEY]()
        nurse = bench_unit(session, "surgeon")
        surgery_end = utcnow() - timedelta(minutes=30 * count + 20)
        flap = bench_flap(session, 1, surgery_end)
        actor = Actor(nurse.id, "bench", "surgeon", unit_codes=frozenset({"BENCH"}))
        for index in range(count):
            taken = surgery_end + timedelta(minutes=10 + 30 * index)
            worrying = index % 37 == 36
            record_check(
                session,
                actor,
                flap.id,
                CheckValues(
                    taken_at=taken,
                    colour="dusky" if worrying else "pink",
                    flap_temperature_c=33.5 + (index % 7) * 0.1,
                    control_temperature_c=34.6 + (index % 5) * 0.1,
                    capillary_refill="brisk" if worrying else "normal",
                    doppler_arterial="present",
                    doppler_venous="present",
                    turgor="soft",
                    sto2_percent=60 + index % 15,
                ),
                now=taken + timedelta(minutes=2),
            )
        session.close()
        return flap.id


def _median_seconds(run: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _throughput(run: Callable[[], object], seconds: float) -> float:
    run()  # warm
    done = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        run()
        done += 1
    return done / (time.perf_counter() - started)


def _bare_png(width_px: int, height_px: int, dpi: int, points: int, series: int) -> bytes:
    """The baseline: one Axes, `series` plain lines holding `points` points in all."""
    figure = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    ax = figure.add_subplot()
    per_series = max(points // series, 1)
    xs = list(range(per_series))
    for offset in range(series):
        ax.plot(xs, [offset + (x % 7) * 0.1 for x in xs], marker="o")
    return _png(figure)


def _bare_panels_png(width_px: int, height_px: int, dpi: int, checks: int) -> bytes:
    """The second baseline: the chart's own panels (same grid, same points per panel) with
    matplotlib's defaults and nothing else: what that layout costs before flapwatch adds
    thresholds, flags, labels and lanes."""
    figure = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    heights = [height for _, height in FULL.panels]
    grid = figure.add_gridspec(len(heights), 1, height_ratios=heights)
    xs = list(range(checks))
    lines_per_panel = {"lanes": 7, "temperature": 2, "difference": 1, "sto2": 1}
    for row, (name, _) in enumerate(FULL.panels):
        ax = figure.add_subplot(grid[row, 0])
        for offset in range(lines_per_panel[name]):
            ax.plot(xs, [offset + (x % 7) * 0.1 for x in xs], marker="o")
    return _png(figure)


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--seconds", type=float, default=3.0)
    options = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="flapwatch-bench-charts-"))
    settings = {
        "INSTANCE_PATH": str(workdir),
        "NOTIFIER_THREAD": False,
        "SWEEP_ON_REQUESTS": False,
        "PASSWORD_TIME_COST": 1,
        "PASSWORD_MEMORY_COST_KIB": 8,
        "PASSWORD_PARALLELISM": 1,
    }
    if os.environ.get("FLAPWATCH_DATABASE_URL"):
        settings["DATABASE_URL"] = os.environ["FLAPWATCH_DATABASE_URL"]
    try:
        app = create_app(settings)

        @login_required
        def trivial_logged_in() -> str:
            return "ok"

        app.add_url_rule("/bench/trivial", view_func=trivial_logged_in)
        app.add_url_rule("/bench/plain", view_func=lambda: "ok")
        upgrade_to_head(engine_of(app))
        flap_id = _flap_with_checks(app, options.checks)

        client = app.test_client()
        token = _login(client)
        assert token
        url = f"/reconstructions/{flap_id}/chart.png"
        # The address the flap page gives the browser: signed for this reader and version.
        page = client.get(f"/reconstructions/{flap_id}").get_data(as_text=True)
        found = re.search(r'<img src="(/reconstructions/\d+/chart\.png\?[^"]+)"', page)
        assert found is not None
        link = html.unescape(found.group(1))
        cache_dir = workdir / "chart-cache"

        def cold() -> None:
            shutil.rmtree(cache_dir, ignore_errors=True)
            response = client.get(url)
            assert response.status_code == 200 and response.headers["X-Chart-Cache"] == "miss"

        def cached() -> None:
            response = client.get(link)
            assert response.status_code == 200 and response.headers["X-Chart-Cache"] == "hit"

        def cached_unsigned() -> None:
            response = client.get(url)
            assert response.status_code == 200 and response.headers["X-Chart-Cache"] == "hit"

        width, height = image_size(FULL, sto2=True)
        points = _plotted_points(options.checks)

        def bare() -> None:
            _bare_png(width, height, FULL.dpi, points, series=6)

        def bare_panels() -> None:
            _bare_panels_png(width, height, FULL.dpi, options.checks)

        bare_app = Flask("bare")
        bare_app.add_url_rule("/", view_func=lambda: "ok")
        bare_client = bare_app.test_client()

        def trivial() -> None:
            assert bare_client.get("/").status_code == 200

        def trivial_behind_login() -> None:
            assert client.get("/bench/trivial").status_code == 200

        def trivial_in_app() -> None:
            assert client.get("/bench/plain").status_code == 200

        cold()  # import and font caches warm, as in a running server
        bare()
        bare_panels()
        cold_s = _median_seconds(cold, options.repeat)
        bare_s = _median_seconds(bare, options.repeat)
        panels_s = _median_seconds(bare_panels, options.repeat)
        cached()
        cached_rps = _throughput(cached, options.seconds)
        unsigned_rps = _throughput(cached_unsigned, options.seconds)
        trivial_rps = _throughput(trivial, options.seconds)
        logged_in_rps = _throughput(trivial_behind_login, options.seconds)
        in_app_rps = _throughput(trivial_in_app, options.seconds)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    database = "PostgreSQL" if "DATABASE_URL" in settings else "SQLite"
    print(f"flapwatch chart benchmark: {options.checks} checks, {database}, {width}×{height} px")
    print(f"  cold chart request      {cold_s * 1000:8.1f} ms  (median of {options.repeat})")
    print(f"  bare matplotlib figure  {bare_s * 1000:8.1f} ms  ({points} points, same size)")
    ratio = cold_s / bare_s
    print(f"  cold / bare             {ratio:8.2f}×   target ≤ 1.5×  {_met(ratio <= 1.5)}")
    print(f"  bare, the chart's panels {panels_s * 1000:7.1f} ms  (same grid and points)")
    print(f"  cold / bare panels      {cold_s / panels_s:8.2f}×")
    print(f"  cached chart request    {cached_rps:8.0f} req/s  (the page's signed link)")
    print(f"  cached, unsigned URL    {unsigned_rps:8.0f} req/s  (log-in, role, unit, version)")
    print(f"  trivial Flask route     {trivial_rps:8.0f} req/s")
    share = cached_rps / trivial_rps
    print(f"  cached / trivial        {share:8.0%}    target ≥ 50 %  {_met(share >= 0.5)}")
    print(f"  trivial route in flapwatch (its session, request hooks) {in_app_rps:6.0f} req/s")
    print(f"  cached / that route     {cached_rps / in_app_rps:8.0%}")
    print(f"  trivial route behind flapwatch's log-in {logged_in_rps:6.0f} req/s")
    print(f"  unsigned / that route   {unsigned_rps / logged_in_rps:8.0%}")
    return 0


def _plotted_points(checks: int) -> int:
    """The points the chart plots for `checks` checks: flap, control, ΔT, StO₂, four sign
    lanes, two Doppler lines and the check ticks."""
    return checks * 11


def _login(client) -> str:
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page)
    assert token is not None
    response = client.post(
        "/login", data={"username": "bench", "password": PASSWORD, "csrf_token": token.group(1)}
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    return token.group(1)


def _met(met: bool) -> str:
    return "met" if met else "NOT MET"


if __name__ == "__main__":
    sys.exit(main())
