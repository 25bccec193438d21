"""How one notice is sent on each kind of channel: a webhook (an HTTP POST of JSON), an
e-mail (through the hospital's SMTP relay) or a Web Push notification to a phone. Each send
comes back as an `AttemptResult`, never as an exception: a channel failing is recorded and
retried, and never stops the chain.

An e-mail or a push notification is short and carries no patient identifier, neither in its
subject nor its body: mail reaches inboxes, and a notification the locked screens of phones,
outside the ward. It says the severity, the unit and bed, the
flap, the reasons and the level, and links to the escalation page, which shows the patient
after log-in.
"""

from __future__ import annotations

import json
import smtplib
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from flapwatch.domain.chains import webhook_url_problem

USER_AGENT = "flapwatch"
# Enough of an error answer to tell "bad token" from "gateway down"; the rest is not read.
_ERROR_BODY_CHARS = 200
MAIL_SECURITY = ("none", "starttls", "tls")


@dataclass(frozen=True)
class AttemptResult:
    # The HTTP status of a webhook or a push service, the SMTP reply code of a mail (250).
    status_code: int | None
    error: str | None
    duration_ms: int
    # No use trying again: the push service says the phone's subscription is gone.
    permanent: bool = False

    @property
    def delivered(self) -> bool:
        return self.error is None and self.status_code is not None


def _one_line(text: str) -> str:
    return " ".join(text.split())[:_ERROR_BODY_CHARS]


def _elapsed_ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


# --- webhook ---------------------------------------------------------------------------------


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """A redirected POST would arrive as a GET without its body, and its 2xx would count as a
    page delivered: a redirect is a failed attempt instead (the address needs mending)."""

    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        return None


def post_json(
    url: str, payload: Mapping[str, Any], headers: Mapping[str, str], timeout_s: float
) -> AttemptResult:
    """POST `payload` as JSON."""
    started = time.monotonic()
    status_code: int | None = None
    error: str | None = None
    try:
        if webhook_url_problem(url) is not None:
            raise ValueError("not an http(s) address")  # a row written around the form
        request = urllib.request.Request(  # noqa: S310 - http(s) only, checked above
            url,
            data=json.dumps(payload, separators=(",", ":")).encode(),
            method="POST",
            headers={
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                **headers,
            },
        )
        opener = urllib.request.build_opener(_RefuseRedirects)
        with opener.open(request, timeout=timeout_s) as response:
            response.read(_ERROR_BODY_CHARS)
            status_code = int(response.status)
        if not 200 <= status_code < 300:
            error = f"HTTP {status_code}"
    except urllib.error.HTTPError as refused:
        status_code = refused.code
        try:
            body = refused.read(_ERROR_BODY_CHARS).decode("utf-8", "replace")
        except Exception:  # noqa: BLE001 - the status code is what matters
            body = ""
        finally:
            refused.close()
        error = _one_line(f"HTTP {refused.code} {refused.reason}: {body}".rstrip(": "))
    except TimeoutError:
        error = f"No answer within {timeout_s:g} s."
    except urllib.error.URLError as unreachable:
        if isinstance(unreachable.reason, TimeoutError):
            error = f"No answer within {timeout_s:g} s."
        else:
            error = _one_line(f"Cannot connect: {unreachable.reason}")
    except Exception as failure:  # noqa: BLE001 - a webhook's failure must never escape
        error = _one_line(f"{type(failure).__name__}: {failure}")
    return AttemptResult(status_code=status_code, error=error, duration_ms=_elapsed_ms(started))


# --- e-mail ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class MailSettings:
    """The SMTP relay and what a page's mail says of where it comes from (FLAPWATCH_SMTP_*,
    FLAPWATCH_MAIL_FROM, FLAPWATCH_BASE_URL)."""

    host: str | None = None
    port: int = 25
    # "none" (a relay inside the hospital's network), "starttls" or "tls" (SMTPS, port 465).
    security: str = "none"
    username: str | None = None
    password: str | None = None
    sender: str = "flapwatch@localhost"
    # Where staff open flapwatch (https://flapwatch.hospital.example): the mail's link.
    base_url: str | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> MailSettings:
        def text(name: str) -> str | None:
            value = config.get(name)
            return str(value).strip() or None if value is not None else None

        defaults = cls()
        security = (text("SMTP_SECURITY") or defaults.security).lower()
        return cls(
            host=text("SMTP_HOST"),
            port=int(config.get("SMTP_PORT") or defaults.port),
            security=security if security in MAIL_SECURITY else "invalid",
            username=text("SMTP_USERNAME"),
            password=text("SMTP_PASSWORD"),
            sender=text("MAIL_FROM") or defaults.sender,
            base_url=(text("BASE_URL") or "").rstrip("/") or None,
        )


def _local_time(iso: Any, zone_name: Any) -> str:
    if not isinstance(iso, str):
        return "?"
    moment = datetime.fromisoformat(iso)
    try:
        zone: Any = ZoneInfo(zone_name) if isinstance(zone_name, str) else UTC
    except (KeyError, ValueError):
        zone = UTC
    local = moment.astimezone(zone)
    return local.strftime("%H:%M") + ("" if zone is not UTC else " UTC")


def page_mail(
    settings: MailSettings, to: str, payload: Mapping[str, Any], delivery_id: int
) -> EmailMessage:
    """The mail of one page: "flapwatch: RED escalation, W3 bed 4 (level 2)"."""
    severity = str(payload.get("severity", "")).upper()
    unit, bed, level = payload.get("unit"), payload.get("bed"), payload.get("level")
    flap = payload.get("reconstruction") or {}
    where = f"{unit} bed {bed}" if bed else f"{unit}"
    message = EmailMessage()
    message["Subject"] = f"flapwatch: {severity} escalation, {where} (level {level})"
    message["From"] = settings.sender
    message["To"] = to
    message["Date"] = formatdate(localtime=False)
    domain = settings.sender.rpartition("@")[2] or "flapwatch"
    # The same on every try of one delivery: a mail system can drop a duplicate by it.
    message["Message-ID"] = f"<flapwatch-delivery-{delivery_id}@{domain}>"
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no out-of-office replies
    message["X-Flapwatch-Delivery"] = str(delivery_id)
    opened = _local_time(payload.get("opened_at"), payload.get("unit_timezone"))
    reasons = "\n".join(f"- {reason}" for reason in payload.get("reasons") or [])
    escalation_id = payload.get("escalation_id")
    if settings.base_url:
        link = f"Open the escalation: {settings.base_url}/escalations/{escalation_id}"
    else:
        link = f"Open flapwatch, Escalations, escalation {escalation_id}."
    photo = payload.get("photo") or {}
    photo_line = (
        f"The flap's newest photo (opens for {photo.get('link_expires_minutes')} minutes, "
        f"after log-in): {settings.base_url}{photo['link']}\n"
        if photo.get("link") and settings.base_url
        else ""
    )
    message.set_content(
        f"{severity} escalation on {where}: {flap.get('procedure', 'flap')}, "
        f"{flap.get('side', '')} {flap.get('site', '')}.\n"
        f"Opened {opened}, not acknowledged. {payload.get('target')} paged (level {level}).\n\n"
        f"{reasons}\n\n"
        f"{link}\n"
        f"{photo_line}"
        "Log in to see the patient; acknowledge there to stop further pages.\n"
    )
    return message


def send_mail(settings: MailSettings, message: EmailMessage, timeout_s: float) -> AttemptResult:
    """Hand `message` to the relay; accepted means the relay answered 250 for its recipient."""
    started = time.monotonic()
    status_code: int | None = None
    error: str | None = None
    try:
        if not settings.host:
            raise _NotConfigured("No mail server: set FLAPWATCH_SMTP_HOST.")
        if settings.security not in MAIL_SECURITY:
            raise _NotConfigured("FLAPWATCH_SMTP_SECURITY must be none, starttls or tls.")
        context = ssl.create_default_context()
        client: smtplib.SMTP
        if settings.security == "tls":
            client = smtplib.SMTP_SSL(
                settings.host, settings.port, timeout=timeout_s, context=context
            )
        else:
            client = smtplib.SMTP(settings.host, settings.port, timeout=timeout_s)
        with client:
            if settings.security == "starttls":
                client.starttls(context=context)
            if settings.username:
                client.login(settings.username, settings.password or "")
            refused = client.send_message(message)
            if refused:
                code, words = next(iter(refused.values()))
                status_code, error = (
                    code,
                    _one_line(f"SMTP {code}: {words.decode(errors='replace')}"),
                )
            else:
                status_code = 250
    except _NotConfigured as missing:
        error = str(missing)
    except smtplib.SMTPRecipientsRefused as refused:
        code, words = next(iter(refused.recipients.values()))
        status_code, error = code, _one_line(f"SMTP {code}: {words.decode(errors='replace')}")
    except smtplib.SMTPResponseException as answered:
        words = answered.smtp_error
        text = words.decode(errors="replace") if isinstance(words, bytes) else str(words)
        status_code, error = answered.smtp_code, _one_line(f"SMTP {answered.smtp_code}: {text}")
    except TimeoutError:
        error = f"No answer from the mail server within {timeout_s:g} s."
    except OSError as unreachable:
        error = _one_line(f"Cannot connect to the mail server: {unreachable}")
    except Exception as failure:  # noqa: BLE001 - a mail's failure must never escape
        error = _one_line(f"{type(failure).__name__}: {failure}")
    return AttemptResult(status_code=status_code, error=error, duration_ms=_elapsed_ms(started))


class _NotConfigured(Exception):
    pass


# --- Web Push --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PushSettings:
    """The VAPID keys and subject (FLAPWATCH_VAPID_*), and how long a notification may wait
    at the push service for the phone to come online."""

    public_key: str | None = None
    private_key: str | None = None
    subject: str = "mailto:flapwatch@localhost"
    ttl_s: int = 900

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> PushSettings:
        defaults = cls()
        return cls(
            public_key=(config.get("VAPID_PUBLIC_KEY") or "").strip() or None,
            private_key=(config.get("VAPID_PRIVATE_KEY") or "").strip() or None,
            subject=(config.get("VAPID_SUBJECT") or defaults.subject).strip(),
            ttl_s=int(config.get("PUSH_TTL_SECONDS") or defaults.ttl_s),
        )

    @property
    def configured(self) -> bool:
        return bool(self.public_key and self.private_key)


@dataclass(frozen=True)
class PushTarget:
    endpoint: str
    p256dh: str
    auth: str


def make_vapid_keys() -> tuple[str, str]:
    """A new VAPID key pair (P-256): the public key as the browser's applicationServerKey
    (base64url of the uncompressed point) and the private key (base64url of its 32 bytes)."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    private = key.private_numbers().private_value.to_bytes(32, "big")
    return _b64url(public), _b64url(private)


def _b64url(raw: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def push_notification(payload: Mapping[str, Any]) -> dict[str, Any]:
    """What the phone shows, as the service worker reads it: shown on a locked screen, so
    like a mail it names no patient; opening it opens the escalation page (log-in first)."""
    severity = str(payload.get("severity", "")).upper()
    unit, bed, level = payload.get("unit"), payload.get("bed"), payload.get("level")
    where = f"{unit} bed {bed}" if bed else f"{unit}"
    reasons = "; ".join(str(reason) for reason in payload.get("reasons") or [])
    escalation_id = payload.get("escalation_id")
    return {
        "title": f"{severity} escalation · {where}",
        "body": f"Level {level}: {payload.get('target')} paged. {reasons}"[:240],
        "url": f"/escalations/{escalation_id}",
        "tag": f"escalation-{escalation_id}",
        "escalation_id": escalation_id,
        "level": level,
        # The link to the flap's newest photo, never the image (a locked screen shows this).
        "photo_url": (payload.get("photo") or {}).get("link"),
    }


def send_push(
    settings: PushSettings, target: PushTarget, payload: Mapping[str, Any], timeout_s: float
) -> AttemptResult:
    """Encrypt `payload` to the subscription's keys (RFC 8291, aes128gcm) and hand it to its
    push service with a VAPID signature (RFC 8292); 201 means the service took it."""
    started = time.monotonic()
    status_code: int | None = None
    error: str | None = None
    permanent = False
    try:
        from py_vapid import Vapid
        from pywebpush import WebPushException, webpush

        if not settings.configured:
            raise _NotConfigured(
                "No VAPID keys: run flapwatch push-keys and set FLAPWATCH_VAPID_PUBLIC_KEY "
                "and FLAPWATCH_VAPID_PRIVATE_KEY."
            )
        try:
            response = webpush(
                subscription_info={
                    "endpoint": target.endpoint,
                    "keys": {"p256dh": target.p256dh, "auth": target.auth},
                },
                data=json.dumps(payload, separators=(",", ":")),
                vapid_private_key=Vapid.from_string(settings.private_key or ""),
                vapid_claims={"sub": settings.subject},
                ttl=settings.ttl_s,
                timeout=timeout_s,
                # A phone asleep is woken for it (RFC 8030 §5.3); a newer page of the same
                # escalation replaces one still waiting at the push service (§5.4).
                headers={"Urgency": "high", "Topic": str(payload.get("tag", ""))[:32]},
            )
            status_code = int(response.status_code)  # type: ignore[union-attr]
        except WebPushException as refused:
            answer = refused.response
            status_code = getattr(answer, "status_code", None)
            body = getattr(answer, "text", "") or ""
            # 404 and 410: the subscription has expired or the user turned it off.
            permanent = status_code in (404, 410)
            error = _one_line(f"HTTP {status_code}: {body}" if status_code else refused.message)
    except _NotConfigured as missing:
        error = str(missing)
    except TimeoutError:
        error = f"No answer from the push service within {timeout_s:g} s."
    except Exception as failure:  # noqa: BLE001 - a push's failure must never escape
        # Not the error's text: it carries the endpoint, whose path is the phone's.
        service = urlsplit(target.endpoint).netloc
        if "timed out" in str(failure).lower() or "timeout" in type(failure).__name__.lower():
            error = f"No answer from the push service {service} within {timeout_s:g} s."
        else:
            error = f"Cannot reach the push service {service}: {type(failure).__name__}."
    return AttemptResult(
        status_code=status_code,
        error=error,
        duration_ms=_elapsed_ms(started),
        permanent=permanent,
    )
