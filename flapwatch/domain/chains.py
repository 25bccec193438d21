"""Escalation chains and a unit's contacts (DESIGN.md §2b): who is told of an unanswered
escalation, by what means, and after how many minutes without an answer.

A chain is the ordered steps of one severity, `{after_minutes, notify}`; a step's *level* is
its position (1 = first). `notify` names a contact of the unit: a person or an on-call role
("Registrar on call") with the channels that reach it. Values in, values out: parsing with
every problem named by its place in the JSON, and which steps have fallen due.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from flapwatch.domain.text import has_control_characters
from flapwatch.domain.vocabulary import Severity

CHANNEL_KINDS = ("webhook", "email", "push")
# Each kind's field holding its address: {"kind": "email", "address": "…"}; a push channel
# names the account whose phones are notified (those where it turned notifications on).
ADDRESS_FIELD = {"webhook": "url", "email": "address", "push": "user"}
CONTACT_NAME_MAX_LENGTH = 100
MAX_CONTACTS = 50
MAX_CHANNELS = 5
MAX_STEPS = 10
# A day: a step later than that is no escalation of a flap at risk.
MAX_AFTER_MINUTES = 24 * 60
NOTE_MAX_LENGTH = 2000
WEBHOOK_URL_MAX_LENGTH = 500
EMAIL_MAX_LENGTH = 254  # RFC 5321's longest path, less its angle brackets
# One address, local@domain.tld, with nothing a mail header could be split or listed on.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
EMAIL = re.compile(rf"^[^@\s<>,;:\"()\[\]\\]+@{_LABEL}(?:\.{_LABEL})+$")
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")


class ChainError(ValueError):
    """Refused contacts or chains; `problems` maps each place ("chains.red.1.notify") to why."""

    def __init__(self, problems: dict[str, str]) -> None:
        super().__init__("; ".join(f"{place}: {why}" for place, why in problems.items()))
        self.problems = problems


@dataclass(frozen=True)
class Channel:
    """How a contact is reached: `kind` and its address (a webhook's URL, an e-mail
    address, the username whose phones get a push notification)."""

    kind: str
    address: str


@dataclass(frozen=True)
class Contact:
    name: str
    channels: tuple[Channel, ...] = ()


@dataclass(frozen=True)
class ChainStep:
    after_minutes: int
    notify: str


@dataclass(frozen=True)
class Chains:
    """The unit's chain for each severity."""

    red: tuple[ChainStep, ...]
    amber: tuple[ChainStep, ...]

    def of(self, severity: Severity) -> tuple[ChainStep, ...]:
        return self.red if severity == Severity.RED else self.amber


REGISTRAR = "Registrar on call"
CONSULTANT = "Consultant on call"
NURSE_IN_CHARGE = "Nurse in charge"

# A new unit's contacts, for its coordinator to give their channels.
DEFAULT_CONTACTS = (Contact(REGISTRAR), Contact(CONSULTANT), Contact(NURSE_IN_CHARGE))
# DESIGN.md §2b: the registrar at once and again at 5 minutes, then the consultant, then the
# nurse in charge for a red escalation; the registrar at once and at 30 minutes for amber.
DEFAULT_CHAINS = Chains(
    red=(
        ChainStep(0, REGISTRAR),
        ChainStep(5, REGISTRAR),
        ChainStep(15, CONSULTANT),
        ChainStep(20, NURSE_IN_CHARGE),
    ),
    amber=(ChainStep(0, REGISTRAR), ChainStep(30, REGISTRAR)),
)


# --- addresses -------------------------------------------------------------------------------


def webhook_url_problem(url: str) -> str | None:
    """Why `url` cannot be a webhook, or None when it can."""
    example = "e.g. https://pager.example.org/flapwatch"
    if len(url) > WEBHOOK_URL_MAX_LENGTH:
        return f"Webhook URL can be at most {WEBHOOK_URL_MAX_LENGTH} characters."
    if not url.isascii() or any(char.isspace() or not char.isprintable() for char in url):
        return f"Webhook URL must be one web address without spaces, {example}."
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - a port that is not a number raises here
    except ValueError:
        return f"Webhook URL is not a valid web address: {example}."
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return f"Webhook URL must start with http:// or https://, {example}."
    if parts.username is not None or parts.password is not None:
        return "Webhook URL cannot hold a user name or password: use a token in its path."
    return None


def email_problem(address: str) -> str | None:
    """Why `address` cannot be an e-mail address to page, or None when it can."""
    if len(address) > EMAIL_MAX_LENGTH:
        return f"An e-mail address can be at most {EMAIL_MAX_LENGTH} characters."
    if not address.isascii() or has_control_characters(address) or not EMAIL.fullmatch(address):
        return "Must be one e-mail address, e.g. plastics.registrar@hospital.example.org."
    return None


def username_problem(username: str) -> str | None:
    if not USERNAME.fullmatch(username):
        return "Must be the username of an account on the unit, e.g. s.rao."
    return None


ADDRESS_PROBLEM = {
    "webhook": webhook_url_problem,
    "email": email_problem,
    "push": username_problem,
}
MISSING_ADDRESS = {
    "webhook": "Webhook URL is required.",
    "email": "E-mail address is required.",
    "push": "The username whose phones are notified is required.",
}


# --- contacts --------------------------------------------------------------------------------


def _text(value: Any, place: str, problems: dict[str, str], *, most: int) -> str | None:
    if not isinstance(value, str) or not value.strip():
        problems[place] = "Required: some text."
        return None
    if len(value) > most or has_control_characters(value) or "\n" in value:
        problems[place] = f"One line of at most {most} characters."
        return None
    return value.strip()


def _channel(item: Any, place: str, problems: dict[str, str]) -> Channel | None:
    if not isinstance(item, Mapping):
        problems[place] = 'A channel is an object, e.g. {"kind": "webhook", "url": "https://…"}.'
        return None
    kind = item.get("kind")
    if kind not in CHANNEL_KINDS:
        problems[f"{place}.kind"] = f"Channel kind must be one of: {', '.join(CHANNEL_KINDS)}."
        return None
    field = ADDRESS_FIELD[kind]
    extra = set(item) - {"kind", field}
    if extra:
        problems[place] = (
            f"Unknown field {sorted(extra)[0]!r}: a channel of kind {kind} has its {field} only."
        )
        return None
    address = item.get(field)
    if isinstance(address, str):
        address = address.strip().lower() if kind == "push" else address.strip()
        problem = ADDRESS_PROBLEM[kind](address)
    else:
        problem = MISSING_ADDRESS[kind]
    if problem:
        problems[f"{place}.{field}"] = problem
        return None
    return Channel(kind, address)


def parse_contacts(items: Any) -> tuple[Contact, ...]:
    """The `contacts` list of `{"name", "channels": [...]}`, or ChainError."""
    problems: dict[str, str] = {}
    if not isinstance(items, list):
        raise ChainError({"contacts": "A list of contacts is required."})
    if len(items) > MAX_CONTACTS:
        raise ChainError({"contacts": f"At most {MAX_CONTACTS} contacts."})
    contacts: list[Contact] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        place = f"contacts.{index}"
        if not isinstance(item, Mapping) or set(item) - {"name", "channels"}:
            problems[place] = 'A contact is {"name": "…", "channels": [...]}.'
            continue
        name = _text(item.get("name"), f"{place}.name", problems, most=CONTACT_NAME_MAX_LENGTH)
        if name is not None and name.casefold() in seen:
            problems[f"{place}.name"] = f"Another contact is already called {name!r}."
        channels_in = item.get("channels", [])
        if not isinstance(channels_in, list) or len(channels_in) > MAX_CHANNELS:
            problems[f"{place}.channels"] = f"A list of at most {MAX_CHANNELS} channels."
            continue
        channels = [
            _channel(channel, f"{place}.channels.{number}", problems)
            for number, channel in enumerate(channels_in)
        ]
        if name is not None:
            seen.add(name.casefold())
            contacts.append(Contact(name, tuple(c for c in channels if c is not None)))
    if problems:
        raise ChainError(problems)
    return tuple(contacts)


def contacts_to_json(contacts: Sequence[Contact]) -> list[dict[str, Any]]:
    return [
        {
            "name": contact.name,
            "channels": [
                {"kind": c.kind, ADDRESS_FIELD[c.kind]: c.address} for c in contact.channels
            ],
        }
        for contact in contacts
    ]


# --- chains ----------------------------------------------------------------------------------


def _steps(items: Any, place: str, names: set[str], problems: dict[str, str]) -> list[ChainStep]:
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_STEPS:
        problems[place] = f'A list of 1 to {MAX_STEPS} steps, e.g. [{{"after_minutes": 0, …}}].'
        return []
    steps: list[ChainStep] = []
    previous = 0
    for index, item in enumerate(items):
        step_place = f"{place}.{index}"
        if not isinstance(item, Mapping) or set(item) - {"after_minutes", "notify"}:
            problems[step_place] = 'A step is {"after_minutes": 5, "notify": "<contact>"}.'
            continue
        after = item.get("after_minutes")
        if type(after) is not int or not 0 <= after <= MAX_AFTER_MINUTES:
            problems[f"{step_place}.after_minutes"] = (
                f"Minutes after the escalation opened: a whole number from 0 to "
                f"{MAX_AFTER_MINUTES}."
            )
            continue
        if after < previous:
            problems[f"{step_place}.after_minutes"] = (
                f"Steps go in time order: this one comes before the one above it ({previous} min)."
            )
        previous = max(previous, after)
        notify = item.get("notify")
        if not isinstance(notify, str) or notify not in names:
            known = ", ".join(sorted(names)) or "none yet"
            problems[f"{step_place}.notify"] = f"Must name one of the unit's contacts ({known})."
            continue
        steps.append(ChainStep(after, notify))
    return steps


def parse_chains(definition: Any, contact_names: set[str]) -> Chains:
    """`{"red": [...], "amber": [...]}`, each step naming one of `contact_names`."""
    if not isinstance(definition, Mapping) or set(definition) != {"red", "amber"}:
        raise ChainError({"chains": 'Give both chains: {"red": [...], "amber": [...]}.'})
    problems: dict[str, str] = {}
    red = _steps(definition["red"], "chains.red", contact_names, problems)
    amber = _steps(definition["amber"], "chains.amber", contact_names, problems)
    if problems:
        raise ChainError(problems)
    return Chains(red=tuple(red), amber=tuple(amber))


def chains_to_json(chains: Chains) -> dict[str, list[dict[str, Any]]]:
    return {
        severity: [
            {"after_minutes": step.after_minutes, "notify": step.notify}
            for step in getattr(chains, severity)
        ]
        for severity in ("red", "amber")
    }


def note_problem(note: Any) -> str | None:
    if not isinstance(note, str) or not note.strip():
        return "Say why this version: a note is required."
    if len(note) > NOTE_MAX_LENGTH or has_control_characters(note):
        return f"The note can be at most {NOTE_MAX_LENGTH} characters of text."
    return None


# --- which steps are due -----------------------------------------------------------------------


def due_levels(
    steps: Sequence[ChainStep], started_at: datetime, now: datetime, sent: set[int]
) -> list[int]:
    """The levels (1 = first step) whose time has come since the chain started and that have
    not been sent."""
    return [
        level
        for level, step in enumerate(steps, start=1)
        if level not in sent and started_at + timedelta(minutes=step.after_minutes) <= now
    ]


def page_words(step: ChainStep, level: int) -> str:
    """The timeline's words for a step sent: "Not acknowledged in 5 min: Consultant on call
    paged (level 3)"."""
    if step.after_minutes == 0:
        return f"{step.notify} paged (level {level})"
    return f"Not acknowledged in {step.after_minutes} min: {step.notify} paged (level {level})"
