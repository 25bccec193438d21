"""A 4 MB camera photo uploaded with a check: `flapwatch serve` (gunicorn, one worker) against a
bare Flask app served the same way whose route reads the same multipart body and throws it away,
in the same run. And a 20,000 × 20,000 pixel PNG, which flapwatch must refuse without growing.

    python benchmarks/bench_photos.py [--database-url URL] [--uploads 20]

Each upload is `POST /api/v1/checks/{id}/photos` with one 4 MB JPEG (12 megapixels, as a
phone's camera makes them, with EXIF) over loopback, one at a time; a new check for each. Prints
the median and slowest time an upload, and the worker's resident memory: before the first
upload, its peak (VmHWM) after them, and after the huge PNG. SQLite in a temporary directory
by default, or a new schema of `--database-url`'s PostgreSQL database.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from datetime import timedelta
from pathlib import Path

from bench_load import _free_port, _serve, _stop
from PIL import ExifTags, Image

from flapwatch import create_app
from flapwatch.db import EXTENSION_KEY, engine_of, make_engine
from flapwatch.domain.checks import CheckValues
from flapwatch.domain.vocabulary import FlapKind, Role, Side
from flapwatch.migrate import upgrade_to_head
from flapwatch.models import utcnow
from flapwatch.services import SYSTEM, Actor
from flapwatch.services.accounts import create_user
from flapwatch.services.checks import record_check
from flapwatch.services.patients import (
    PatientDetails,
    ReconstructionDetails,
    add_reconstruction,
    admit_patient,
)
from flapwatch.services.photos import set_photo_consent
from flapwatch.services.tokens import create_token
from flapwatch.services.units import create_unit

HERE = Path(__file__).parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
from tests.photos import huge_png  # noqa: E402


def camera_photo(target_bytes: int = 4 * 1024 * 1024) -> bytes:
    """A 4000 × 3000 JPEG of about `target_bytes`, with a camera's EXIF (noise compresses like
    a real scene's detail does: poorly)."""
    noise = Image.effect_noise((4000, 3000), 64).convert("RGB")
    tint = Image.new("RGB", noise.size, (190, 120, 125))
    image = Image.blend(noise, tint, 0.5)
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Bench"
    exif[ExifTags.Base.Orientation] = 6
    best = b""
    for quality in (95, 90, 85, 80, 75, 70, 60, 50):
        out = io.BytesIO()
        image.save(out, "JPEG", quality=quality, exif=exif)
        best = out.getvalue()
        if len(best) <= target_bytes:
            break
    return best


def multipart(field: str, name: str, data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    return (
        head + data + f"\r\n--{boundary}--\r\n".encode(),
        f"multipart/form-data; boundary={boundary}",
    )


def post(url: str, token: str, body: bytes, content_type: str) -> tuple[int, float]:
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Authorization": f"Bearer {token}", "Content-Type": content_type,
    })  # fmt: skip
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:  # noqa: S310 (loopback)
            answer.read()
            status = answer.status
    except urllib.error.HTTPError as error:
        error.read()
        status = error.code
    return status, time.perf_counter() - started


def worker_memory(master_pid: int) -> dict[str, int]:
    """The gunicorn worker's resident memory now and at its peak, in KiB."""
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    worker = int(children[0])
    fields = {}
    for line in Path(f"/proc/{worker}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


def prepare(database_url: str | None, workdir: Path, uploads: int):
    url = database_url or f"sqlite:///{workdir / 'photos.sqlite3'}"
    if database_url:
        schema = f"bench_photos_{os.getpid()}"
        admin = make_engine(database_url)
        with admin.begin() as connection:
            connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
        admin.dispose()
        url = f"{database_url}?options=-csearch_path%3D{schema}"
    engine = make_engine(url)
    upgrade_to_head(engine)
    engine.dispose()
    settings = {"DATABASE_URL": url, "PASSWORD_TIME_COST": 1, "PASSWORD_MEMORY_COST_KIB": 8,
                "PASSWORD_PARALLELISM": 1}  # fmt: skip
    app = create_app({**settings, "SECRET_KEY": "bench", "INSTANCE_PATH": str(workdir)})
    session = app.extensions[EXTENSION_KEY]()
    create_unit(session, SYSTEM, code="BENCH", name="Bench ward", timezone="Europe/London")
    with app.app_context():
        nurse = create_user(
            session, SYSTEM, username="nurse", display_name="Nurse", role=Role.NURSE,
            password="bench-password-1", unit_codes=["BENCH"],
        )  # fmt: skip
    _, token = create_token(session, SYSTEM, "nurse", name="bench")
    actor = Actor(nurse.id, "nurse", "nurse", unit_codes=frozenset({"BENCH"}))
    patient = admit_patient(
        session,
        SYSTEM,
        unit_code="BENCH",
        details=PatientDetails(
            mrn="B1",
            name="Bench Patient",
            date_of_birth=utcnow().date().replace(year=1970),
            bed="1",
        ),
    )
    flap = add_reconstruction(session, SYSTEM, patient.id, ReconstructionDetails(
        procedure="DIEP", flap_kind=FlapKind.FREE, site="breast", side=Side.LEFT,
        surgery_end_at=utcnow().replace(microsecond=0) - timedelta(hours=3),
        surgeon="Bench", buried=False))  # fmt: skip
    set_photo_consent(session, SYSTEM, flap.id, True)
    checks = [
        record_check(
            session, actor, flap.id, CheckValues(taken_at=utcnow(), colour="pink")
        ).check.id
        for _ in range(2 * uploads + 4)
    ]
    session.close()
    engine_of(app).dispose()
    return url, token, nurse.id, checks, schema if database_url else None


def run(command, environment, workdir, name, url_of, token, photo, huge, uploads):
    port = _free_port()
    process = _serve(command(port), environment, port, workdir / f"{name}.log",
                     "/readyz" if name == "flapwatch" else "/units/BENCH/board")  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        body, content_type = multipart("photos", "IMG_0001.JPG", photo)
        statuses, seconds = [], []
        post(url_of(base, 0), token, body, content_type)  # warm: imports, first connection
        before = worker_memory(process.pid)
        for number in range(1, uploads + 1):
            status, took = post(url_of(base, number), token, body, content_type)
            statuses.append(status)
            seconds.append(took)
        after = worker_memory(process.pid)
        big_body, big_type = multipart("photos", "huge.png", huge)
        huge_status, huge_seconds = post(url_of(base, uploads + 1), token, big_body, big_type)
        after_huge = worker_memory(process.pid)
    finally:
        _stop(process)
    return {
        "statuses": statuses, "seconds": seconds, "before": before, "after": after,
        "huge_status": huge_status, "huge_seconds": huge_seconds, "after_huge": after_huge,
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--uploads", type=int, default=20)
    options = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="flapwatch-bench-photos-"))
    try:
        url, token, nurse_id, checks, schema = prepare(
            options.database_url, workdir, options.uploads
        )
        photo, huge = camera_photo(), huge_png()
        bare = run(
            lambda port: [sys.executable, "-m", "gunicorn", f"--bind=127.0.0.1:{port}",
                          "--workers=1", "--threads=4", "bare_app:create()"],
            {"BARE_DATABASE_URL": url, "BARE_NURSE_ID": str(nurse_id)}, workdir, "bare",
            lambda base, n: f"{base}/api/v1/checks/{checks[n]}/photos", token, photo, huge,
            options.uploads,
        )  # fmt: skip
        environment = {"FLAPWATCH_DATABASE_URL": url, "FLAPWATCH_SECRET_KEY": "bench-" + "x" * 40,
                       "FLAPWATCH_INSTANCE_PATH": str(workdir)}  # fmt: skip
        served = run(
            lambda port: [str(Path(sys.executable).with_name("flapwatch")), "serve",
                          f"--port={port}", "--workers=1", "--threads=4"],
            environment, workdir, "flapwatch",
            lambda base, n: f"{base}/api/v1/checks/{checks[options.uploads + 2 + n]}/photos",
            token, photo, huge, options.uploads,
        )  # fmt: skip
    finally:
        if options.database_url and "schema" in locals() and schema:
            admin = make_engine(options.database_url)
            with admin.begin() as connection:
                connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
            admin.dispose()
        shutil.rmtree(workdir, ignore_errors=True)
    report(options, len(photo), bare, served)
    ok = all(s == 201 for s in served["statuses"]) and served["huge_status"] == 422
    return 0 if ok else 1


def report(options, photo_bytes, bare, served) -> None:
    def mib(kib: int) -> str:
        return f"{kib / 1024:.0f} MB"

    print(f"{options.uploads} uploads of one {photo_bytes / 1048576:.1f} MB JPEG (4000 × 3000), "
          f"{'PostgreSQL' if options.database_url else 'SQLite'}")  # fmt: skip
    print("| measure | flapwatch | discarding route | ratio |")
    print("| --- | --- | --- | --- |")
    for label, pick in (("median", statistics.median), ("slowest", max)):
        ours, theirs = pick(served["seconds"]), pick(bare["seconds"])
        print(f"| upload, {label} | {ours * 1000:.0f} ms | {theirs * 1000:.0f} ms | "
              f"{ours / theirs:.1f} |")  # fmt: skip
    rows = (
        ("worker RSS before", "VmRSS", "before"),
        ("worker peak RSS after the uploads", "VmHWM", "after"),
        ("worker peak RSS after the 20,000² PNG", "VmHWM", "after_huge"),
    )
    for label, key, when in rows:
        ours, theirs = served[when][key], bare[when][key]
        print(f"| {label} | {mib(ours)} | {mib(theirs)} | {ours / theirs:.2f} |")
    print(f"| peak growth over the uploads | "
          f"{mib(served['after']['VmHWM'] - served['before']['VmRSS'])} | "
          f"{mib(bare['after']['VmHWM'] - bare['before']['VmRSS'])} | |")  # fmt: skip
    print(f"| the 20,000 × 20,000 PNG | {served['huge_status']} in "
          f"{served['huge_seconds'] * 1000:.0f} ms | {bare['huge_status']} in "
          f"{bare['huge_seconds'] * 1000:.0f} ms | |")  # fmt: skip
    print(
        f"answers: flapwatch {sorted(set(served['statuses']))}, "
        f"bare {sorted(set(bare['statuses']))}"
    )


if __name__ == "__main__":
    sys.exit(main())
