"""Servers the tests run: `flapwatch serve` as a process of its own, a webhook receiver and a
mail server."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until_ready(url: str, seconds: float = 60) -> None:
    """Until the server at `url` answers /readyz with 200 (its database reachable)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as answer:  # noqa: S310
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.2)
    raise AssertionError(f"{url} never became ready")


# --- a webhook receiver: a real HTTP server in a thread --------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class Receiver:
    """Records every POST; answers `status` after `delay` seconds."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.status = 200
        self.delay = 0.0
        self.answered = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {name.lower(): value for name, value in self.headers.items()}
                receiver.received.append(Received(self.path, headers, json.loads(body)))
                time.sleep(receiver.delay)
                try:
                    self.send_response(receiver.status)
                    if 300 <= receiver.status < 400:
                        self.send_header("Location", "/elsewhere")
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass  # the sender gave up waiting and hung up
                receiver.answered.set()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- a mail server: aiosmtpd's real SMTP server in a thread -----------------------------------


@dataclass
class Mail:
    sender: str
    recipients: list[str]
    message: EmailMessage


class MailServer:
    """Takes every mail over SMTP on 127.0.0.1; `refuse` (an SMTP reply such as "550 No such
    user") turns each away at RCPT TO, `require_login` asks for AUTH first."""

    def __init__(self, *, credentials: tuple[str, str] | None = None) -> None:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult, LoginPassword

        self.mails: list[Mail] = []
        self.refuse: str | None = None
        self.arrived = threading.Event()
        server = self

        class Handler:
            async def handle_RCPT(self, _server, _session, envelope, address, _options):  # noqa: N802
                if server.refuse:
                    return server.refuse
                envelope.rcpt_tos.append(address)
                return "250 OK"

            async def handle_DATA(self, _server, _session, envelope):  # noqa: N802
                message = BytesParser(policy=default).parsebytes(envelope.original_content)
                server.mails.append(
                    Mail(envelope.mail_from, list(envelope.rcpt_tos), message)  # type: ignore[arg-type]
                )
                server.arrived.set()
                return "250 Message accepted for delivery"

        def authenticate(_server, _session, _envelope, mechanism, data):  # noqa: ANN001
            if isinstance(data, LoginPassword) and credentials is not None:
                given = (data.login.decode(), data.password.decode())
                return AuthResult(success=given == credentials)
            return AuthResult(success=False)

        options: dict[str, Any] = {}
        if credentials is not None:
            # Plain-text AUTH without TLS, on the loopback only: the test's relay.
            options = {
                "authenticator": authenticate,
                "auth_required": True,
                "auth_require_tls": False,
            }
        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, **options)
        self.controller.start()

    def close(self) -> None:
        self.controller.stop()


# --- a push service: what a browser's push service checks and what the phone decrypts --------


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Phone:
    """A browser's push subscription: the endpoint at the push service and the keys a
    notification is encrypted to (RFC 8291), whose private half only the phone holds."""

    endpoint: str
    private_key: Any
    auth_secret: bytes

    @property
    def keys(self) -> dict[str, str]:
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        public = self.private_key.public_key().public_bytes(
            Encoding.X962, PublicFormat.UncompressedPoint
        )
        return {"p256dh": b64url(public), "auth": b64url(self.auth_secret)}

    def subscription(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "keys": self.keys}


@dataclass
class Pushed:
    path: str
    headers: dict[str, str]
    claims: dict[str, Any]
    notification: dict[str, Any]


class PushService:
    """Stands in for a browser vendor's push service (RFC 8030) on 127.0.0.1. Each POST must
    carry a VAPID token (RFC 8292) signed by `server_public_key` for this origin, unexpired;
    its body is decrypted with the phone's keys (aes128gcm) as the phone would. Anything
    else is answered 401 or 400 and recorded in `refused`. `status` answers the rest (201, or
    410 for a subscription gone)."""

    def __init__(self, server_public_key: str) -> None:
        import http_ece
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

        self.pushed: list[Pushed] = []
        self.refused: list[str] = []
        self.status = 201
        self.phones: dict[str, Phone] = {}
        self.arrived = threading.Event()
        service = self

        def verify(authorization: str, origin: str) -> dict[str, Any]:
            scheme, _, rest = authorization.partition(" ")
            fields = dict(part.strip().split("=", 1) for part in rest.split(","))
            if scheme != "vapid" or fields.get("k") != server_public_key:
                raise ValueError(f"not signed by the server's VAPID key: {authorization[:40]}")
            head, body, signature = fields["t"].split(".")
            raw = unb64url(signature)
            key = ec.EllipticCurvePublicKey.from_encoded_point(
                ec.SECP256R1(), unb64url(fields["k"])
            )
            try:
                key.verify(
                    encode_dss_signature(
                        int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
                    ),
                    f"{head}.{body}".encode(),
                    ec.ECDSA(hashes.SHA256()),
                )
            except InvalidSignature:
                raise ValueError("the VAPID signature does not verify") from None
            claims = json.loads(unb64url(body))
            if json.loads(unb64url(head)).get("alg") != "ES256":
                raise ValueError("VAPID must be ES256")
            if claims.get("aud") != origin or claims.get("exp", 0) <= time.time():
                raise ValueError(f"VAPID claims for another origin or expired: {claims}")
            if not str(claims.get("sub", "")).startswith(("mailto:", "https:")):
                raise ValueError("VAPID sub must be a mailto: or https: contact")
            return claims

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {name.lower(): value for name, value in self.headers.items()}
                origin = f"http://127.0.0.1:{service.server.server_address[1]}"
                status = service.status
                try:
                    claims = verify(headers.get("authorization", ""), origin)
                    phone = service.phones[self.path]
                    if headers.get("content-encoding") != "aes128gcm":
                        raise ValueError("not aes128gcm")
                    clear = http_ece.decrypt(
                        body,
                        private_key=phone.private_key,
                        auth_secret=phone.auth_secret,
                        version="aes128gcm",
                    )
                    if status < 300:
                        service.pushed.append(Pushed(self.path, headers, claims, json.loads(clear)))
                except (ValueError, KeyError) as wrong:
                    service.refused.append(str(wrong))
                    status = 401 if "VAPID" in str(wrong) else 400
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                service.arrived.set()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def new_phone(self) -> Phone:
        import os

        from cryptography.hazmat.primitives.asymmetric import ec

        path = f"/push/{len(self.phones) + 1}-{b64url(os.urandom(8))}"
        phone = Phone(
            f"http://127.0.0.1:{self.server.server_address[1]}{path}",
            ec.generate_private_key(ec.SECP256R1()),
            os.urandom(16),
        )
        self.phones[path] = phone
        return phone

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- flapwatch serve, as its own process ---------------------------------------------------------


def serve_process(
    database_url: str, instance: Any, port: int, *, workers: int = 2, threads: int = 4
) -> Any:
    """`flapwatch serve` on 127.0.0.1:`port` against `database_url`, in a session of its own
    (stop it with os.killpg); its log in `instance`/server.log."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    environment = {
        **{key: value for key, value in os.environ.items() if not key.startswith("FLAPWATCH_")},
        "FLAPWATCH_DATABASE_URL": database_url,
        "FLAPWATCH_SECRET_KEY": "serve-test-secret-key-0123456789abcdefghij",
        "FLAPWATCH_INSTANCE_PATH": str(instance),
        "FLAPWATCH_NOTIFIER_THREAD": "false",
        "FLAPWATCH_SWEEP_ON_REQUESTS": "false",
        "FLAPWATCH_REQUEST_LOG": "false",
    }
    command = [
        str(Path(sys.executable).with_name("flapwatch")), "serve", "--port", str(port),
        "--workers", str(workers), "--threads", str(threads),
    ]  # fmt: skip
    Path(instance).mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(  # noqa: S603 - our own command line
        command,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=(Path(instance) / "server.log").open("ab"),
        start_new_session=True,
    )


class EventStream:
    """A unit's event stream read on a thread of its own, as a browser's EventSource would:
    each event's (id, kind, data) and when it arrived."""

    def __init__(self, url: str, token: str) -> None:
        import http.client
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        self.events: list[tuple[int, str, dict[str, Any], float]] = []
        self.arrived = threading.Condition()
        self.connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        self.connection.request(
            "GET", f"{parts.path}?{parts.query}", headers={"Authorization": f"Bearer {token}"}
        )
        self.response = self.connection.getresponse()
        self.status = self.response.status
        self.thread = threading.Thread(target=self._read, daemon=True)
        if self.status == 200:
            self.thread.start()

    def _read(self) -> None:
        fields: dict[str, str] = {}
        try:
            for raw in self.response:
                line = raw.decode().rstrip("\n")
                if line:
                    if not line.startswith(":") and ": " in line:
                        name, value = line.split(": ", 1)
                        fields[name] = value
                    continue
                if "event" in fields:
                    with self.arrived:
                        self.events.append(
                            (
                                int(fields["id"]),
                                fields["event"],
                                json.loads(fields["data"]),
                                time.monotonic(),
                            )
                        )
                        self.arrived.notify_all()
                fields = {}
        except (OSError, ValueError, AttributeError):
            pass  # closed: http.client drops its socket under the reading thread

    def wait_for(self, count: int, seconds: float = 15) -> list[Any]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.events) >= count, seconds)
            return list(self.events)

    def close(self) -> None:
        self.connection.close()
