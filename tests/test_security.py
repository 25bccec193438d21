"""Log-in throttling and lockout, session cookies, the secret key, and security headers."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from flapwatch.models import AuditEvent, LoginSession, utcnow
from flapwatch.services import SYSTEM
from flapwatch.services.accounts import set_password
from flapwatch.services.login import LoginLocked, authenticate
from flapwatch.web.auth import login_limits
from tests.conftest import PASSWORD, Browser

LOCKED = "Too many failed log-ins"


def tablet(app: Flask, address: str = "10.1.2.3") -> Browser:
    """A browser at its own network address."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return Browser(client)


def fail(browser: Browser, username: str, times: int) -> None:
    for _ in range(times):
        answer = browser.login(username, "not-the-password")
        assert answer.status_code == 200
        assert "Username or password is wrong" in answer.get_data(as_text=True)


def events(session, action: str) -> list[AuditEvent]:
    session.rollback()
    return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def test_five_failed_log_ins_lock_the_account_even_against_the_right_password(app, make, session):
    nurse = make.user("nurse", "PLAST-W3")
    browser = tablet(app)
    fail(browser, nurse.username, 5)

    answer = browser.login(nurse.username)  # the right password, too late
    assert answer.status_code == 429
    page = answer.get_data(as_text=True)
    assert LOCKED in page and "15 minutes" in page
    (refused,) = events(session, "login.refused")
    assert refused.actor_username == nurse.username
    assert refused.client_address == "10.1.2.3"
    assert refused.after["locked"] == "account" and refused.after["failures"] == 5
    # Another tablet is refused too: the lock is on the account.
    assert tablet(app, "10.9.9.9").login(nurse.username).status_code == 429


def test_a_locked_account_opens_again_once_its_failures_are_older_than_the_window(
    app, make, session
):
    nurse = make.user("nurse", "PLAST-W3")
    with app.app_context():
        limits = login_limits()
        for _ in range(5):
            assert authenticate(
                session, nurse.username, "wrong", request_id=None, client=None, limits=limits
            ) is None  # fmt: skip
        try:
            authenticate(
                session, nurse.username, PASSWORD, request_id=None, client=None, limits=limits
            )
            raise AssertionError("the account was not locked")
        except LoginLocked as locked:
            assert locked.minutes == 15
        later = utcnow() + timedelta(minutes=15, seconds=5)
        user = authenticate(
            session,
            nurse.username,
            PASSWORD,
            request_id=None,
            client=None,
            limits=limits,
            now=later,
        )
    assert user is not None and user.id == nurse.id


def test_an_unknown_username_is_locked_just_like_a_real_one(app, make):
    make.user("nurse", "PLAST-W3")
    browser = tablet(app)
    fail(browser, "no-such-person", 5)
    answer = browser.login("no-such-person")
    assert answer.status_code == 429
    assert LOCKED in answer.get_data(as_text=True)


def test_a_successful_log_in_starts_the_accounts_count_again(app, make):
    nurse = make.user("nurse", "PLAST-W3")
    browser = tablet(app)
    fail(browser, nurse.username, 4)
    assert browser.login(nurse.username).status_code == 302
    browser.post("/logout")
    fail(browser, nurse.username, 4)
    assert browser.login(nurse.username).status_code == 302


def test_a_password_reset_by_a_coordinator_ends_the_lockout(app, make, session):
    nurse = make.user("nurse", "PLAST-W3")
    browser = tablet(app)
    fail(browser, nurse.username, 5)
    assert browser.login(nurse.username).status_code == 429
    with app.app_context():
        set_password(session, SYSTEM, nurse.id, "a-brand-new-password")
    assert browser.login(nurse.username, "a-brand-new-password").status_code == 302


def test_twenty_failures_from_one_address_lock_that_address_for_every_account(app, make):
    nurse = make.user("nurse", "PLAST-W3")
    attacker = tablet(app, "203.0.113.7")
    for number in range(5):
        fail(attacker, f"guess-{number}", 4)  # 20 failures, no account reaching its limit
    answer = attacker.login(nurse.username)
    assert answer.status_code == 429
    assert "from this device" in answer.get_data(as_text=True)
    # The nurse at her own tablet is not affected.
    assert tablet(app, "10.1.2.3").login(nurse.username).status_code == 302


# --- sessions and cookies ----------------------------------------------------------------------


def _cookie(answer, name: str = "session") -> str:
    return next(h for h in answer.headers.getlist("Set-Cookie") if h.startswith(f"{name}="))


def test_the_session_cookie_is_http_only_same_site_and_secure_in_production(
    database_url, tmp_path, make
):
    from flapwatch import create_app
    from tests.conftest import TEST_SETTINGS

    production = create_app(
        {
            **TEST_SETTINGS,
            "PRODUCTION": True,
            "SECRET_KEY": "k7Qm2vX9pL4sT8wZ1nB6cR3yH5jF0dGa",
            "DATABASE_URL": database_url,
            "INSTANCE_PATH": str(tmp_path / "production"),
        }
    )
    browser = Browser(production.test_client())
    cookie = _cookie(browser.client.get("/login", base_url="https://ward.example"))
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_outside_production_the_session_cookie_is_http_only_and_same_site(client):
    cookie = _cookie(client.get("/login"))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # plain http on a ward's own network, or a laptop


def test_logging_in_gives_a_new_session_and_the_old_one_stays_anonymous(app, make):
    nurse = make.user("nurse", "PLAST-W3")
    browser = tablet(app)
    browser.client.get("/login")
    planted = browser.client.get_cookie("session").value  # e.g. fixed by an attacker
    assert browser.login(nurse.username).status_code == 302
    assert browser.client.get_cookie("session").value != planted
    assert browser.get("/units/PLAST-W3/board").status_code == 200

    other = app.test_client()
    other.set_cookie("session", planted)
    answer = other.get("/units/PLAST-W3/board")
    assert answer.status_code == 302 and "/login" in answer.headers["Location"]


def test_after_log_out_a_copy_of_the_session_cookie_opens_nothing(app, make, session):
    nurse = make.user("nurse", "PLAST-W3")
    browser = tablet(app)
    assert browser.login(nurse.username).status_code == 302
    copied = browser.client.get_cookie("session").value  # kept by someone, or a proxy cache
    assert browser.post("/logout").status_code == 302

    browser.client.set_cookie("session", copied)  # same browser, same address
    answer = browser.get("/units/PLAST-W3/board")
    assert answer.status_code == 302 and "/login" in answer.headers["Location"]
    session.rollback()
    (ended,) = session.scalars(select(LoginSession).where(LoginSession.user_id == nurse.id))
    assert ended.ended_at is not None and ended.end_reason == "user"


def test_a_password_reset_logs_the_person_out_on_every_tablet(app, make, session):
    nurse = make.user("nurse", "PLAST-W3")
    tablets = [tablet(app, f"10.1.2.{n}") for n in (1, 2)]
    for each in tablets:
        assert each.login(nurse.username).status_code == 302
        assert each.get("/units/PLAST-W3/board").status_code == 200
    with app.app_context():
        set_password(session, SYSTEM, nurse.id, "a-brand-new-password")
    for each in tablets:
        answer = each.get("/units/PLAST-W3/board")
        assert answer.status_code == 302 and "/login" in answer.headers["Location"]


# --- the secret key ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        (None, "is not set"),
        ("", "is not set"),
        ("change-me", "placeholder"),
        ("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "placeholder"),
        ("short-but-random-Xq93", "at least 32"),
    ],
)
def test_production_refuses_to_start_without_a_real_secret_key(tmp_path, key, problem):
    from flapwatch import create_app
    from flapwatch.config import ConfigurationError

    with pytest.raises(ConfigurationError, match=problem):
        create_app({"PRODUCTION": True, "SECRET_KEY": key, "INSTANCE_PATH": str(tmp_path)})


def test_flapwatch_serve_in_production_says_why_it_will_not_start(tmp_path):
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("FLAPWATCH_")
    }
    environment.update(
        FLAPWATCH_PRODUCTION="true",
        FLAPWATCH_SECRET_KEY="secret",
        FLAPWATCH_INSTANCE_PATH=str(tmp_path),
    )
    result = subprocess.run(  # noqa: S603 - our own command
        [str(Path(sys.executable).with_name("flapwatch")), "serve", "--port", "1"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "refusing to start" in result.stderr
    assert "FLAPWATCH_SECRET_KEY is a placeholder" in result.stderr
    assert "Traceback" not in result.stderr


# --- headers -----------------------------------------------------------------------------------

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
INLINE_STYLE = re.compile(r"<style\b|\sstyle=|\son[a-z]+=", re.IGNORECASE)


def test_pages_forbid_inline_scripts_framing_and_sniffing(app, logged_in, make):
    flap = make.reconstruction()
    make.check(flap, colour="dusky")
    browser, _ = logged_in("unit_admin", "PLAST-W3")
    anonymous = Browser(app.test_client())
    for reader, url in (
        (anonymous, "/login"),
        *(
            (browser, url)
            for url in (
                "/units/PLAST-W3/board",
                f"/reconstructions/{flap.id}",
                f"/reconstructions/{flap.id}/checks/new",
                f"/admin/units/{flap.patient.unit_id}/rules/edit",
                "/units/PLAST-W3/review",
                "/escalations",
                "/api/v1/units",
            )
        ),
    ):
        answer = reader.get(url)
        assert answer.status_code == 200, url
        policy = answer.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy, url
        assert "frame-ancestors 'none'" in policy, url
        assert answer.headers["X-Content-Type-Options"] == "nosniff", url
        assert answer.headers["Referrer-Policy"] == "same-origin", url
        assert answer.headers["Cache-Control"] == "no-store", url
        if answer.mimetype == "text/html":
            # What the policy would block must not be needed: no inline script or style.
            page = answer.get_data(as_text=True)
            assert not INLINE_SCRIPT.search(page), url
            assert not INLINE_STYLE.search(page), url


def test_hsts_is_sent_over_https_only(app, client):
    assert "Strict-Transport-Security" not in client.get("/login").headers
    over_https = client.get("/login", base_url="https://ward.example")
    assert over_https.headers["Strict-Transport-Security"].startswith("max-age=31536000")


def test_a_forwarded_https_counts_only_from_a_trusted_proxy(database_url, tmp_path, client):
    from flapwatch import create_app
    from tests.conftest import TEST_SETTINGS

    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "10.20.30.40"}
    assert "Strict-Transport-Security" not in client.get("/login", headers=forwarded).headers

    behind_proxy = create_app(
        {
            **TEST_SETTINGS,
            "TRUSTED_PROXIES": 1,
            "DATABASE_URL": database_url,
            "INSTANCE_PATH": str(tmp_path / "proxied"),
        }
    )
    answer = behind_proxy.test_client().get("/login", headers=forwarded)
    assert "Strict-Transport-Security" in answer.headers
