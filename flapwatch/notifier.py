"""The background sender: a daemon thread per serving process that posts escalation notices.

It is started lazily, in the process that serves requests, never in create_app itself:
- gunicorn (`flapwatch serve`) builds the app in its master and forks the workers; a thread
  does not survive a fork, and one left in the master would post from a process that serves
  nothing. Each worker starts its own from gunicorn's post_fork hook (cli.serve), after the
  worker has let go of the master's database connections;
- any other server (gunicorn without our `serve`, `flask run`): the first request a process
  serves starts it (a before_request hook that compares the process id, so a forked child
  starts its own, and restarts one that died);
- command line runs (`flapwatch sweep` from cron, say) start none: they send in the foreground.
Several processes sending at once is safe: deliveries are claimed (services/notifications.py).
"""

from __future__ import annotations

import logging
import os
import threading
import weakref

from flask import Flask

from flapwatch.db import EXTENSION_KEY
from flapwatch.services.chains import advance_chains
from flapwatch.services.channels import MailSettings, PushSettings
from flapwatch.services.notifications import DeliveryPolicy, deliver_due, doorbell, logger

NOTIFIER_KEY = "flapwatch.notifier"
BATCH = 50


class Notifier:
    """One app's sender thread, for the process it runs in."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._forget_thread()
        _notifiers.add(self)

    def _forget_thread(self) -> None:
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._pid = os.getpid()

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive() and self._pid == os.getpid()

    def ensure_running(self) -> None:
        if self.running:
            return
        with self._lock:
            if self.running:
                return
            self._pid = os.getpid()
            self._stopping = threading.Event()
            self._thread = threading.Thread(
                target=self._run, args=(self._stopping,), name="flapwatch-notifier", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Let an attempt in flight finish (it is then recorded), and end the thread."""
        thread = self._thread
        self._stopping.set()
        doorbell.ring()
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self, stopping: threading.Event) -> None:
        config = self.app.config
        session_factory = self.app.extensions[EXTENSION_KEY]
        policy = DeliveryPolicy.from_config(config)
        mail = MailSettings.from_config(config)
        push = PushSettings.from_config(config)
        interval = max(0.1, float(config.get("NOTIFIER_INTERVAL_SECONDS", 5.0)))
        logger.info("Notification sender started in process %s.", os.getpid())
        seen = doorbell.rings
        while not stopping.is_set():
            tried = 0
            try:
                # A step falls due without anyone saving anything: looked for at each poll,
                # so it is sent within seconds of its time, whatever traffic or cron does.
                with session_factory() as session:
                    advance_chains(session)
            except Exception:
                logger.exception("Notification sender: could not advance escalation chains.")
            try:
                tried = deliver_due(
                    session_factory, limit=BATCH, policy=policy, mail=mail, push=push
                )
            except Exception:  # the database may be away for a while: try again later
                logger.exception("Notification sender: could not claim due notices.")
            if tried < BATCH:
                seen = doorbell.wait(seen, interval)


_notifiers: weakref.WeakSet[Notifier] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for notifier in list(_notifiers):
        notifier._forget_thread()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def log_every_attempt(app: Flask) -> None:
    """Successful attempts are logged at INFO: shown unless a site's logging says otherwise."""
    app.logger  # noqa: B018 - puts Flask's handler on the "flapwatch" logger
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)


def init_app(app: Flask) -> None:
    """Have the sender start in each process that serves this app (see the module's doc)."""
    notifier = Notifier(app)
    app.extensions[NOTIFIER_KEY] = notifier
    app.before_request(notifier.ensure_running)


def start(app: Flask) -> None:
    """Start the sender now, in this process (gunicorn's post_fork); none if not configured."""
    notifier = app.extensions.get(NOTIFIER_KEY)
    if notifier is not None:
        notifier.ensure_running()


def stop(app: Flask, timeout: float | None = None) -> None:
    notifier = app.extensions.get(NOTIFIER_KEY)
    if notifier is not None:
        notifier.stop(timeout)
