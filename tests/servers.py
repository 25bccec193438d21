"""Servers the tests run: `flapwatch serve` as a process of its own, a webhook receiver and a
mail server."""

from __future__ import annotations

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
