"""Clinical photographs of the flap: stored stripped of every metadata, refused with a clear
message when they are not a photo flapwatch keeps, shown to the flap's unit only, never
deleted, and caught by audit-verify when a stored byte changes."""

from __future__ import annotations

import csv
import hashlib
import io
import subprocess
import sys
from json import dumps as json_dumps
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import func, select, text

from flapwatch.db import engine_of
from flapwatch.domain.vocabulary import Role
from flapwatch.models import AuditEvent, Check, CheckNotDone, Escalation, Photo, PhotoBlob, utcnow
from flapwatch.services import SYSTEM
from flapwatch.services.photos import hide_photo, set_photo_consent
from tests.photos import MAKER, NOT_AN_IMAGE, SERIAL, camera_jpeg, huge_png, plain_png
from tests.test_fhir import by_full_url, resources, validated
from tests.test_record_check import local
from tests.test_review import pdf_text

ROOT = Path(__file__).resolve().parent.parent


def consenting_flap(make, session):
    flap = make.reconstruction(hours_ago=4)
    set_photo_consent(session, SYSTEM, flap.id, True)
    return flap


def upload(api, check_id, *files, headers=None):
    data = {"photos": [(io.BytesIO(body), name) for name, body in files]}
    return api.post(f"/checks/{check_id}/photos", data=data, headers=headers,
                    content_type="multipart/form-data")  # fmt: skip


def stored(session):
    session.rollback()
    return session.scalar(select(func.count(Photo.id)))


def test_a_camera_jpeg_is_stored_upright_without_its_location_serial_or_any_metadata(
    api, make, session
):
    flap = consenting_flap(make, session)
    nurse = api(Role.NURSE)
    check = make.check(flap, minutes_ago=5, colour="pink")
    sent = camera_jpeg()

    answer = upload(nurse, check.id, ("flap.jpg", sent))

    assert answer.status_code == 201, answer.json
    (photo,) = answer.json["photos"]
    assert photo["original_sha256"] == hashlib.sha256(sent).hexdigest()
    assert (photo["width"], photo["height"]) == (300, 400)  # turned upright by its tag
    served = nurse.get(f"/photos/{photo['id']}")
    assert served.status_code == 200 and served.mimetype == "image/jpeg"
    assert served.headers["Cache-Control"] == "no-store"
    assert served.headers["Content-Disposition"].startswith("inline")
    body = served.data
    assert hashlib.sha256(body).hexdigest() == photo["display_sha256"]
    image = Image.open(io.BytesIO(body))
    assert dict(image.getexif()) == {}  # no EXIF at all: no GPS, no orientation, no serial
    assert not {"exif", "icc_profile", "comment", "xmp"} & set(image.info)
    for secret in (MAKER.encode(), SERIAL.encode(), b"Exif", b"bed 4", b"GPS"):
        assert secret not in body
    assert image.getpixel((290, 10))[0] < 60  # the dark corner is top right once upright
    thumbnail = nurse.get(photo["thumbnail_url"].removeprefix("/api/v1")).data
    assert max(Image.open(io.BytesIO(thumbnail)).size) == 320 and b"Exif" not in thumbnail
    # The trail holds the SHA-256 of what came and of what is kept.
    event = session.scalars(select(AuditEvent).where(AuditEvent.action == "photo.add")).one()
    assert event.after["original_sha256"] == hashlib.sha256(sent).hexdigest()
    assert event.after["display_sha256"] == photo["display_sha256"]


@pytest.mark.parametrize(
    ("name", "body", "said"),
    [
        ("flap.jpg", NOT_AN_IMAGE, "is not a photo flapwatch can read"),
        ("big.jpg", b"\xff\xd8\xff" + b"\x00" * (21 * 1024 * 1024), "is 21.0 MB: at most 20.0 MB"),
        ("huge.png", None, "is 20,000 × 20,000 pixels: at most 50 megapixels"),
        ("empty.jpg", b"", "is empty"),
    ],
)
def test_what_is_not_a_photo_to_keep_is_refused_with_a_clear_message_and_nothing_stored(
    api, make, session, name, body, said
):
    flap = consenting_flap(make, session)
    check = make.check(flap, minutes_ago=5)

    answer = upload(api(Role.NURSE), check.id, (name, huge_png() if body is None else body))

    assert answer.status_code == 422, answer.json
    assert said in answer.json["error"]["fields"]["photos"]
    assert name in answer.json["error"]["fields"]["photos"]  # which file, by its name
    assert stored(session) == 0


def test_refusing_a_twenty_thousand_pixel_square_takes_no_memory_to_speak_of():
    """It decodes to 400 megapixels: refused from its header, the process grows by a few MB."""
    script = f"""
import resource, sys
sys.path.insert(0, {str(ROOT)!r})
from tests.test_record_check import local
from tests.test_fhir import by_full_url, resources, validated
from tests.test_review import pdf_text
from tests.test_review import pdf_text
from tests.photos import huge_png
from flapwatch.imaging import PhotoRefused, prepare
data = huge_png()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    prepare(data)
except PhotoRefused as refusal:
    print(str(refusal))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, check=True)  # fmt: skip
    said, grown_kib = done.stdout.strip().splitlines()
    assert "20,000 × 20,000 pixels" in said
    assert int(grown_kib) < 20 * 1024, f"grew by {int(grown_kib) // 1024} MB"


def test_without_consent_the_form_has_no_photo_control_and_the_api_refuses(
    api, make, session, logged_in
):
    flap = make.reconstruction(hours_ago=4)
    check = make.check(flap, minutes_ago=5)
    browser, _ = logged_in(Role.NURSE)
    assert 'name="photos"' not in browser.get(f"/reconstructions/{flap.id}/checks/new").text

    refused = upload(api(Role.NURSE), check.id, ("flap.jpg", camera_jpeg()))
    assert refused.status_code == 422
    assert (
        "Consent to photographs has not been recorded" in refused.json["error"]["fields"]["photos"]
    )

    nurse = api(Role.NURSE)
    assert (
        nurse.patch(f"/reconstructions/{flap.id}", {"photo_consent": True}).json["photo_consent"]
        is True
    )
    assert 'name="photos"' in browser.get(f"/reconstructions/{flap.id}/checks/new").text
    assert upload(nurse, check.id, ("flap.jpg", camera_jpeg())).status_code == 201
    # A nurse records consent, never the flap's other details.
    other = nurse.patch(f"/reconstructions/{flap.id}", {"photo_consent": False, "site": "x"})
    assert other.status_code == 403
    declined = nurse.patch(f"/reconstructions/{flap.id}", {"photo_consent": False})
    assert declined.json["photo_consent"] is False
    again = upload(nurse, check.id, ("other.png", plain_png()))
    assert "Consent to photographs was declined" in again.json["error"]["fields"]["photos"]
    events = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "reconstruction.photo_consent")
    ).all()
    assert [e.after["photo_consent"] for e in events] == [True, False]


def test_another_unit_s_staff_get_404_for_a_photo_and_cannot_add_one(api, make, session, logged_in):
    flap = consenting_flap(make, session)
    check = make.check(flap, minutes_ago=5)
    photo_id = upload(api(Role.NURSE), check.id, ("flap.jpg", camera_jpeg())).json["photos"][0][
        "id"
    ]
    make.unit("ICU")
    outsider = api(Role.SURGEON, "ICU")

    assert outsider.get(f"/photos/{photo_id}").status_code == 404
    assert outsider.get(f"/photos/{photo_id}/thumbnail").status_code == 404
    assert upload(outsider, check.id, ("flap.jpg", plain_png())).status_code == 404
    browser, _ = logged_in(Role.NURSE, "ICU")
    assert browser.get(f"/photos/{photo_id}").status_code == 404
    ward, _ = logged_in(Role.NURSE)
    assert ward.get(f"/photos/{photo_id}/thumbnail").status_code == 200
    assert browser.client.get(f"/photos/{photo_id}", headers={}).status_code == 404
    anonymous = api(Role.NURSE).client.get(f"/photos/{photo_id}")
    assert anonymous.status_code in (302, 401)  # to the log-in


def test_the_check_form_saves_a_check_with_its_photos_once_and_a_bad_photo_keeps_the_check_typed(
    make, session, logged_in
):
    flap = consenting_flap(make, session)
    browser, _ = logged_in(Role.NURSE)
    page = browser.get(f"/reconstructions/{flap.id}/checks/new").text
    assert 'capture="environment"' in page and 'enctype="multipart/form-data"' in page
    key = page.split('name="idempotency_key" type="hidden" value="')[1].split('"')[0]
    url = f"/reconstructions/{flap.id}/checks/new"
    typed = {"taken_at": local(utcnow()), "colour": "pink", "notes": "Warm, soft, brisk refill",
             "idempotency_key": key}  # fmt: skip

    refused = browser.post(url, {**typed, "photos": (io.BytesIO(NOT_AN_IMAGE), "flap.jpg")},
                           content_type="multipart/form-data")  # fmt: skip
    assert refused.status_code == 400
    assert "is not a photo flapwatch can read" in refused.text
    assert "The check was not saved" in refused.text and "Warm, soft, brisk refill" in refused.text
    session.rollback()
    assert session.scalar(select(func.count(Check.id))) == 0

    photos = [(io.BytesIO(camera_jpeg()), "one.jpg"), (io.BytesIO(plain_png()), "two.png")]
    saved = browser.post(url, {**typed, "photos": photos}, content_type="multipart/form-data")
    assert saved.status_code == 302, saved.text
    again = browser.post(url, {**typed, "photos": [(io.BytesIO(camera_jpeg()), "one.jpg")]},
                         content_type="multipart/form-data")  # fmt: skip
    assert again.status_code == 302  # the same Save sent twice: one check, its photos once
    session.rollback()
    assert session.scalar(select(func.count(Check.id))) == 1
    assert stored(session) == 2


def test_the_same_photo_sent_again_with_its_check_is_stored_once(api, make, session):
    flap = consenting_flap(make, session)
    check = make.check(flap, minutes_ago=5)
    nurse = api(Role.NURSE)
    first = upload(nurse, check.id, ("flap.jpg", camera_jpeg()))
    second = upload(nurse, check.id, ("flap.jpg", camera_jpeg()))
    assert first.json["photos"][0]["id"] == second.json["photos"][0]["id"]
    assert stored(session) == 1
    more = upload(nurse, check.id, *[(f"{n}.png", plain_png(60 + n, 40)) for n in range(3)])
    assert more.status_code == 422 and "At most 3 photos" in more.json["error"]["fields"]["photos"]
    assert stored(session) == 1


def _edit_a_blob_byte(app, photo_id):
    """What a person with the database's password could do, past its guards."""
    with engine_of(app).begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SET LOCAL session_replication_role = replica"))
        else:
            connection.execute(text("DROP TRIGGER photo_blobs_no_update"))
        data = connection.execute(
            select(PhotoBlob.data).where(
                PhotoBlob.photo_id == photo_id, PhotoBlob.variant == "display"
            )
        ).scalar_one()
        changed = data[:500] + bytes([data[500] ^ 0x01]) + data[501:]
        connection.execute(
            PhotoBlob.__table__.update()
            .where(PhotoBlob.photo_id == photo_id, PhotoBlob.variant == "display")
            .values(data=changed)
        )


def test_audit_verify_finds_a_changed_byte_of_a_stored_photo(api, make, session, runner, app):
    flap = consenting_flap(make, session)
    check = make.check(flap, minutes_ago=5)
    photo_id = upload(api(Role.NURSE), check.id, ("flap.jpg", camera_jpeg())).json["photos"][0][
        "id"
    ]
    intact = runner.invoke(args=["audit-verify"])
    assert intact.exit_code == 0 and "1 photos byte for byte as stored" in intact.output

    _edit_a_blob_byte(app, photo_id)

    broken = runner.invoke(args=["audit-verify"])
    assert broken.exit_code == 1
    assert f"photo {photo_id}: its display bytes have changed" in broken.output


def test_a_photo_is_never_deleted_and_one_hidden_as_entered_in_error_keeps_its_record(
    api, make, session, logged_in, app
):
    flap = consenting_flap(make, session)
    check = make.check(flap, minutes_ago=5)
    nurse = api(Role.NURSE)
    photo_id = upload(nurse, check.id, ("flap.jpg", camera_jpeg())).json["photos"][0]["id"]
    for statement in ("DELETE FROM photo_blobs", "DELETE FROM photos"):
        with (
            pytest.raises(Exception, match="(?i)refused|never changed|append-only"),
            engine_of(app).begin() as connection,
        ):
            connection.execute(text(statement))

    browser, _ = logged_in(Role.NURSE)
    refused = browser.post(f"/photos/{photo_id}/hide", {"reason": ""})
    assert refused.status_code == 302
    assert nurse.get(f"/photos/{photo_id}").status_code == 200  # not hidden without a reason
    browser.post(f"/photos/{photo_id}/hide", {"reason": "Wrong patient's photo"})

    assert nurse.get(f"/photos/{photo_id}").status_code == 404
    assert nurse.get(f"/reconstructions/{flap.id}/photos").json["photos"] == []
    session.rollback()
    kept = session.get(Photo, photo_id)
    assert kept.hidden_reason == "Wrong patient's photo" and kept.hidden_by_id is not None
    assert session.scalar(select(func.count(PhotoBlob.photo_id))) == 2  # bytes kept


def test_with_a_photo_directory_every_server_reads_the_same_files_and_audit_verify_checks_them(
    make, session, database_url, tmp_path, runner
):
    from flapwatch import create_app
    from flapwatch.services.tokens import create_token
    from tests.conftest import TEST_SETTINGS, Api

    shared = tmp_path / "photos"
    servers = [
        create_app(
            {
                **TEST_SETTINGS,
                "DATABASE_URL": database_url,
                "PHOTO_DIRECTORY": str(shared),
                "INSTANCE_PATH": str(tmp_path / f"server{n}"),
            }
        )  # fmt: skip
        for n in (1, 2)
    ]
    flap = consenting_flap(make, session)
    check = make.check(flap, minutes_ago=5)
    user = make.user(Role.NURSE)
    _, token = create_token(session, SYSTEM, user.username, name="tablet")
    first, second = (Api(server.test_client(), token, user) for server in servers)

    photo = upload(first, check.id, ("flap.jpg", camera_jpeg())).json["photos"][0]

    assert (
        hashlib.sha256(second.get(f"/photos/{photo['id']}").data).hexdigest()
        == photo["display_sha256"]
    )
    session.rollback()
    assert session.scalar(select(func.count(PhotoBlob.photo_id))) == 0  # none in the database
    file = shared / photo["display_sha256"][:2] / f"{photo['display_sha256']}.jpg"
    assert file.exists()
    verify = servers[1].test_cli_runner()
    assert verify.invoke(args=["audit-verify"]).exit_code == 0
    data = bytearray(file.read_bytes())
    data[400] ^= 0x01
    file.write_bytes(bytes(data))
    broken = verify.invoke(args=["audit-verify"])
    assert broken.exit_code == 1 and "display bytes have changed" in broken.output
    for server in servers:
        engine_of(server).dispose()


def test_the_flap_and_escalation_pages_show_the_baseline_beside_the_newest_and_every_photo(
    api, make, session, logged_in
):
    flap = consenting_flap(make, session)
    nurse = api(Role.NURSE)
    ids = []
    for minutes, colour in ((200, "pink"), (120, "pink"), (20, "dusky")):
        check = make.check(flap, minutes_ago=minutes, colour=colour)
        answer = upload(
            nurse, check.id, ("flap.jpg", camera_jpeg(colour=(150 + minutes // 4, 90, 100)))
        )
        ids.append(answer.json["photos"][0]["id"])
    browser, _ = logged_in(Role.SURGEON)

    page = browser.get(f"/reconstructions/{flap.id}").text
    pair = page.split('class="photo-pair"')[1].split("</div>")[0]
    assert f"/photos/{ids[0]}" in pair and "Baseline" in pair  # the first after surgery
    assert f"/photos/{ids[2]}" in pair and "Newest" in pair
    strip = page.split('class="photo-strip"')[1].split("</ol>")[0]
    assert [f"/photos/{i}/thumbnail" in strip for i in ids] == [True, True, True]
    assert "Consent to photographs:\n    <strong>given" in page

    escalation = session.scalars(select(Escalation)).one()  # the dusky check opened it
    shown = browser.get(f"/escalations/{escalation.id}").text
    assert f"/photos/{ids[0]}" in shown and f"/photos/{ids[2]}" in shown


def test_a_check_not_done_takes_photos_too_and_a_bad_one_saves_nothing(make, session, logged_in):
    flap = consenting_flap(make, session)
    browser, _ = logged_in(Role.NURSE)
    url = f"/reconstructions/{flap.id}/not-done"
    assert 'name="photos"' in browser.get(url).text

    refused = browser.post(url, {"reason": "dressing_not_removable",
                                 "photos": (io.BytesIO(NOT_AN_IMAGE), "dressing.jpg")},
                           content_type="multipart/form-data")  # fmt: skip
    assert refused.status_code == 400 and "Nothing was saved" in refused.text
    session.rollback()
    assert session.scalar(select(func.count(CheckNotDone.id))) == 0

    saved = browser.post(url, {"reason": "dressing_not_removable",
                               "photos": (io.BytesIO(camera_jpeg()), "dressing.jpg")},
                         content_type="multipart/form-data")  # fmt: skip
    assert saved.status_code == 302
    session.rollback()
    (entry,) = session.scalars(select(CheckNotDone)).all()
    (photo,) = session.scalars(select(Photo)).all()
    assert photo.not_done_id == entry.id and photo.check_id is None
    assert photo.taken_at == entry.taken_at


def test_the_fhir_export_has_each_photo_as_media_of_its_check_and_the_research_one_none(
    api, make, session, runner, tmp_path, logged_in
):
    flap = consenting_flap(make, session)
    check = make.check(flap, minutes_ago=30)
    nurse = api(Role.NURSE)
    kept, hidden = (
        upload(nurse, check.id, (name, body)).json["photos"][0]
        for name, body in (("flap.jpg", camera_jpeg()), ("wrong.png", plain_png()))
    )
    hide_photo(session, make.actor(make.user(Role.NURSE)), hidden["id"], "Wrong patient")

    auditor, _ = logged_in(Role.AUDITOR)
    bundle = validated(auditor.get("/exports/fhir.json").data)

    (media,) = resources(bundle, "Media")
    assert media["id"] == f"photo-{kept['id']}" and media["content"]["url"].endswith(
        f"/api/v1/photos/{kept['id']}"
    )
    (observation,) = resources(bundle, "Observation")
    (part_of,) = media["partOf"]
    assert by_full_url(bundle)[part_of["reference"]] is observation  # the check it was taken with
    assert {"system": "https://flapwatch.invalid/fhir/photo-sha256",
            "value": kept["display_sha256"]} in media["identifier"]  # fmt: skip
    key = tmp_path / "k.key"
    key.write_bytes(b"k" * 32)
    out = tmp_path / "research.json"
    result = runner.invoke(args=["export", "fhir", "--pseudonymise", "--key-file", str(key),
                                 "--output", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert resources(validated(out.read_bytes()), "Media") == []


def test_the_checks_export_lists_each_photo_by_id_and_sha256_and_the_research_one_does_not(
    api, make, session, logged_in, runner, tmp_path
):
    flap = consenting_flap(make, session)
    check = make.check(flap, minutes_ago=30)
    photo = upload(api(Role.NURSE), check.id, ("flap.jpg", camera_jpeg())).json["photos"][0]
    auditor, _ = logged_in(Role.AUDITOR)

    (row,) = csv.DictReader(io.StringIO(auditor.get("/exports/checks.csv").text))

    assert row["photos"] == f"{photo['id']}:{photo['display_sha256']}"
    key = tmp_path / "k.key"
    key.write_bytes(b"k" * 32)
    out = tmp_path / "research.csv"
    runner.invoke(args=["export", "checks", "--pseudonymise", "--key-file", str(key),
                        "--output", str(out)])  # fmt: skip
    (research,) = csv.DictReader(io.StringIO(out.read_text()))
    assert "photos" not in research and photo["display_sha256"] not in out.read_text()


def test_the_printed_report_has_each_photo_s_thumbnail_with_its_time(api, make, session, logged_in):
    flap = consenting_flap(make, session)
    nurse = api(Role.NURSE)
    for minutes in (150, 30):
        check = make.check(flap, minutes_ago=minutes)
        upload(nurse, check.id, ("flap.jpg", camera_jpeg(colour=(150 + minutes // 3, 90, 100))))
    browser, _ = logged_in(Role.SURGEON)

    text, _pages = pdf_text(browser.get(f"/reconstructions/{flap.id}/report.pdf").data)

    assert "Photos (2, oldest first)" in text
    assert text.count("h post-op\nphoto ") == 2


def test_an_escalation_s_notice_carries_a_link_to_the_photo_that_opens_it_for_30_minutes(
    app, make, session, logged_in, receiver
):
    from datetime import timedelta

    from flapwatch.services.photos import LINK_MINUTES, PhotoLinks
    from tests.test_notifications import deliver, with_webhook

    with_webhook(make, session, receiver.url)
    flap = consenting_flap(make, session)
    browser, _ = logged_in(Role.NURSE)
    url = f"/reconstructions/{flap.id}/checks/new"
    sent = camera_jpeg()
    answer = browser.post(url, {"taken_at": local(utcnow()), "colour": "dusky",
                                "photos": (io.BytesIO(sent), "flap.jpg")},
                          content_type="multipart/form-data")  # fmt: skip
    assert answer.status_code == 302
    deliver(app)

    (notice,) = [r.body for r in receiver.received if r.body["event"] == "escalation.opened"]
    photo = notice["photo"]
    assert set(photo) == {"id", "taken_at", "link", "link_expires_minutes"}  # never the image
    assert len(json_dumps(notice)) < 4000
    opened = browser.get(photo["link"])
    assert opened.status_code == 200 and opened.mimetype == "image/jpeg"
    assert Image.open(io.BytesIO(opened.data)).size == (300, 400)  # the photo, upright
    assert opened.headers["Cache-Control"] == "no-store"
    assert browser.get(photo["link"].replace("signature=", "signature=0")).status_code == 410
    old = PhotoLinks(app.config["SECRET_KEY"]).path(
        photo["id"], utcnow() - timedelta(minutes=LINK_MINUTES + 1)
    )
    expired = browser.get(old)
    assert expired.status_code == 410 and "has expired" in expired.text
    make.unit("ICU")
    outsider, _ = logged_in(Role.SURGEON, "ICU")
    assert outsider.get(photo["link"]).status_code == 404
    assert app.test_client().get(photo["link"]).status_code == 302  # to the log-in first


def test_the_chart_marks_when_each_photo_was_taken_and_is_drawn_afresh_for_a_new_one(
    api, make, session
):
    from flapwatch.charts.figure import trend_figure
    from flapwatch.charts.spec import FULL
    from flapwatch.services.review import chart_subject, flap_trend

    flap = consenting_flap(make, session)
    nurse = api(Role.NURSE)
    check = make.check(flap, minutes_ago=60)
    before = chart_subject(session, SYSTEM, flap.id, utcnow())
    upload(nurse, check.id, ("flap.jpg", camera_jpeg()))
    session.rollback()
    subject = chart_subject(session, SYSTEM, flap.id, utcnow())
    assert subject.version("v") != before.version("v")  # the cached chart is not served again

    figure = trend_figure(flap_trend(session, subject), FULL)
    (marks,) = figure.findobj(lambda a: a.get_gid() == "photos")
    assert list(marks.get_xdata()) == pytest.approx(
        [(check.taken_at - flap.surgery_end_at).total_seconds() / 3600]
    )


def test_an_iphone_s_heic_photo_is_read_and_kept_as_jpeg(api, make, session):
    pytest.importorskip("pillow_heif")
    image, out = Image.new("RGB", (320, 240), (190, 110, 120)), io.BytesIO()
    image.save(out, format="HEIF", quality=80)
    flap = consenting_flap(make, session)
    check = make.check(flap, minutes_ago=10)
    nurse = api(Role.NURSE)

    (photo,) = upload(nurse, check.id, ("IMG_0001.HEIC", out.getvalue())).json["photos"]

    assert photo["original_format"] == "HEIC" and (photo["width"], photo["height"]) == (320, 240)
    assert Image.open(io.BytesIO(nurse.get(f"/photos/{photo['id']}").data)).format == "JPEG"
