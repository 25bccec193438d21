"""A unit's contacts and escalation chains, versioned and audited like its rule set; and the
chain running by itself (DESIGN.md §2b).

Every step whose time has come for an escalation still unacknowledged is sent exactly once,
whichever app servers and sweepers run: the step's row (`escalation_pages`, unique by
escalation, round and level) is written under the escalation's row lock, in the transaction
that queues its notices and writes its timeline event. A chain starts when the escalation
opens, and again (a new round, from level 1) when a new sign comes after an acknowledgement
or raises its severity: the surgeon has not seen that sign. An answer stops it: the decision
(acknowledging) or "I'm coming" (attending).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from flapwatch.db import write_transaction
from flapwatch.domain.chains import (
    DEFAULT_CHAINS,
    DEFAULT_CONTACTS,
    ChainError,
    Chains,
    Contact,
    chains_to_json,
    contacts_to_json,
    due_levels,
    note_problem,
    page_words,
    parse_chains,
    parse_contacts,
)
from flapwatch.domain.vocabulary import EscalationEventKind, Role
from flapwatch.models import (
    ContactListVersion,
    Escalation,
    EscalationChainVersion,
    EscalationEvent,
    EscalationPage,
    Patient,
    Reconstruction,
    Unit,
    User,
    utcnow,
)
from flapwatch.services import MANAGING_ROLES, SYSTEM, Actor, InvalidInput, NotFound, require_role
from flapwatch.services.audit import record_event
from flapwatch.services.notifications import follow_new_contacts, queue_page

# --- the versions ----------------------------------------------------------------------------

Versioned = type[ContactListVersion] | type[EscalationChainVersion]


def _current(session: Session, model: Versioned, unit_id: int) -> Any:
    version = session.scalars(
        select(model).where(model.unit_id == unit_id).order_by(model.version.desc()).limit(1)
    ).first()
    if version is None:
        raise NotFound(f"Unit {unit_id} has no {model.__tablename__.replace('_', ' ')}.")
    return version


def current_contacts(session: Session, unit_id: int) -> ContactListVersion:
    return _current(session, ContactListVersion, unit_id)


def current_chains(session: Session, unit_id: int) -> EscalationChainVersion:
    return _current(session, EscalationChainVersion, unit_id)


def contacts_of(version: ContactListVersion) -> tuple[Contact, ...]:
    return parse_contacts(version.definition)


def chains_of(version: EscalationChainVersion, contacts: tuple[Contact, ...]) -> Chains:
    return parse_chains(version.definition, {contact.name for contact in contacts})


def install_default_chains(session: Session, actor: Actor, unit: Unit) -> None:
    """Version 1 of a new unit's contacts and chains: DESIGN.md §2b, for the unit to adapt."""
    session.add(
        ContactListVersion(
            unit_id=unit.id,
            version=1,
            definition=contacts_to_json(DEFAULT_CONTACTS),
            note="Default contacts",
            created_by_id=actor.user_id,
        )
    )
    session.add(
        EscalationChainVersion(
            unit_id=unit.id,
            version=1,
            definition=chains_to_json(DEFAULT_CHAINS),
            note="Default escalation chain",
            created_by_id=actor.user_id,
        )
    )


@dataclass(frozen=True)
class Published:
    version: Any
    # False: what was sent is the version in force already; nothing was published.
    changed: bool


def _locked_unit(session: Session, actor: Actor, unit_code: str) -> Unit:
    # The unit's row lock: two coordinators publishing at once get consecutive versions.
    unit = session.scalars(
        select(Unit).where(Unit.code == unit_code.strip().upper()).with_for_update()
    ).first()
    if unit is None or not actor.works_in(unit.code):
        raise NotFound(f"No unit {unit_code}.")
    return unit


def _publish(
    session: Session,
    actor: Actor,
    unit: Unit,
    model: Versioned,
    definition: Any,
    note: str,
    action: str,
) -> Published:
    current = _current(session, model, unit.id)
    if definition == current.definition and note == current.note:
        return Published(current, changed=False)
    version = model(
        unit_id=unit.id,
        version=current.version + 1,
        definition=definition,
        note=note,
        created_by_id=actor.user_id,
    )
    session.add(version)
    session.flush()
    record_event(
        session,
        actor,
        action,
        "unit",
        unit.id,
        before={"version": current.version, "definition": current.definition},
        after={"version": version.version, "definition": definition, "note": note},
    )
    return Published(version, changed=True)


def publish_contacts(
    session: Session, actor: Actor, unit_code: str, contacts: Any, note: Any
) -> Published:
    """A new version of the unit's contacts. A contact that a chain in force names cannot be
    removed (change the chain first): a step must always have someone to page."""
    require_role(actor, *MANAGING_ROLES)
    failed = "The contacts were not saved."
    problems: dict[str, str] = {}
    if (problem := note_problem(note)) is not None:
        problems["note"] = problem
    try:
        parsed = parse_contacts(contacts)
    except ChainError as error:
        raise InvalidInput(failed, {**problems, **error.problems}) from None
    if problems:
        raise InvalidInput(failed, problems)
    with write_transaction(session):
        unit = _locked_unit(session, actor, unit_code)
        if unreachable := _push_users_not_on_unit(session, unit, parsed):
            raise InvalidInput(failed, unreachable)
        names = {contact.name for contact in parsed}
        named = current_chains(session, unit.id).definition
        missing = sorted({s["notify"] for steps in named.values() for s in steps} - names)
        if missing:
            raise InvalidInput(
                failed,
                {
                    "contacts": f"The escalation chain pages {', '.join(missing)}: keep "
                    "them, or change the chain first."
                },
            )
        published = _publish(
            session,
            actor,
            unit,
            ContactListVersion,
            contacts_to_json(parsed),
            note.strip(),
            "contacts.publish",
        )
        if published.changed:
            follow_new_contacts(session, unit.id, {c.name: c.channels for c in parsed})
        return published


def _push_users_not_on_unit(
    session: Session, unit: Unit, contacts: tuple[Contact, ...]
) -> dict[str, str]:
    """A push channel must name an active account on the unit (or an administrator): the
    unit's escalations go to nobody else's phone."""
    named = {
        channel.address
        for contact in contacts
        for channel in contact.channels
        if channel.kind == "push"
    }
    if not named:
        return {}
    users = {
        user.username: user
        for user in session.scalars(select(User).where(User.username.in_(named)))
    }
    problems: dict[str, str] = {}
    for index, contact in enumerate(contacts):
        for number, channel in enumerate(contact.channels):
            if channel.kind != "push":
                continue
            user = users.get(channel.address)
            place = f"contacts.{index}.channels.{number}.user"
            if user is None or not user.active:
                problems[place] = f"No active account {channel.address!r}."
            elif user.role != Role.ADMIN and unit not in user.units:
                problems[place] = f"{channel.address} does not work on {unit.code}."
    return problems


def publish_chains(
    session: Session, actor: Actor, unit_code: str, chains: Any, note: Any
) -> Published:
    """A new version of the unit's escalation chains; steps not yet sent follow it."""
    require_role(actor, *MANAGING_ROLES)
    failed = "The escalation chain was not saved."
    problems: dict[str, str] = {}
    if (problem := note_problem(note)) is not None:
        problems["note"] = problem
    with write_transaction(session):
        unit = _locked_unit(session, actor, unit_code)
        contacts = contacts_of(current_contacts(session, unit.id))
        try:
            parsed = parse_chains(chains, {contact.name for contact in contacts})
        except ChainError as error:
            problems.update(error.problems)
        if problems:
            raise InvalidInput(failed, problems)
        return _publish(
            session,
            actor,
            unit,
            EscalationChainVersion,
            chains_to_json(parsed),
            note.strip(),
            "escalation_chain.publish",
        )


# --- running the chain -------------------------------------------------------------------------


def start_chain(session: Session, escalation: Escalation, at: datetime) -> None:
    """Inside the transaction that opened the escalation or added a sign nobody has seen: a
    new round from level 1, whose steps due at once are sent now."""
    escalation.chain_round += 1
    escalation.chain_started_at = at
    escalation.chain_level = 0
    session.flush()
    _send_due(session, escalation, at)


def advance_chains(session: Session, now: datetime | None = None) -> int:
    """Send every step that has fallen due for an unacknowledged escalation; returns how many
    were sent. Reads first, and takes a write transaction only for an escalation with a step
    due; safe with several sweepers at once."""
    now = now or utcnow()
    waiting = session.execute(
        select(Escalation.id, Escalation.severity, Escalation.chain_started_at, Patient.unit_id)
        .join(Reconstruction, Reconstruction.id == Escalation.reconstruction_id)
        .join(Patient, Patient.id == Reconstruction.patient_id)
        .where(
            Escalation.closed_at.is_(None),
            Escalation.acknowledged_at.is_(None),
            Escalation.chain_started_at.is_not(None),
            # Someone said they are coming since the round started: it waits for them.
            or_(
                Escalation.attending_at.is_(None),
                Escalation.attending_at < Escalation.chain_started_at,
            ),
        )
    ).all()
    if not waiting:
        session.rollback()
        return 0
    chains = _chains_by_unit(session, {row.unit_id for row in waiting})
    sent = _levels_sent(session, [row.id for row in waiting])
    session.rollback()  # end the read so each escalation's write transaction starts fresh
    pages = 0
    for row in waiting:
        steps = chains[row.unit_id].of(row.severity)
        if not due_levels(steps, row.chain_started_at, now, sent.get(row.id, set())):
            continue
        try:
            with write_transaction(session):
                escalation = session.scalars(
                    select(Escalation)
                    .where(Escalation.id == row.id)
                    .with_for_update()
                    .execution_options(populate_existing=True)
                ).one()
                if escalation.is_open and not escalation.answered:
                    pages += _send_due(session, escalation, now)
        except IntegrityError:
            session.rollback()  # another sweeper sent it first
    return pages


def _chains_by_unit(session: Session, unit_ids: set[int]) -> dict[int, Chains]:
    chains: dict[int, Chains] = {}
    for unit_id in unit_ids:
        contacts = contacts_of(current_contacts(session, unit_id))
        chains[unit_id] = chains_of(current_chains(session, unit_id), contacts)
    return chains


def _levels_sent(session: Session, escalation_ids: list[int]) -> dict[int, set[int]]:
    """The levels sent in each escalation's current round."""
    sent: dict[int, set[int]] = {}
    rows = session.execute(
        select(EscalationPage.escalation_id, EscalationPage.level)
        .join(Escalation, Escalation.id == EscalationPage.escalation_id)
        .where(
            EscalationPage.escalation_id.in_(escalation_ids),
            EscalationPage.round == Escalation.chain_round,
        )
    )
    for escalation_id, level in rows:
        sent.setdefault(escalation_id, set()).add(level)
    return sent


def _send_due(session: Session, escalation: Escalation, now: datetime) -> int:
    """Under the escalation's lock: write each step due, queue its notices, and say so on the
    timeline. Returns how many steps were sent."""
    unit_id = escalation.reconstruction.patient.unit_id
    contacts = contacts_of(current_contacts(session, unit_id))
    version = current_chains(session, unit_id)
    steps = chains_of(version, contacts).of(escalation.severity)
    started = escalation.chain_started_at
    assert started is not None
    sent = _levels_sent(session, [escalation.id]).get(escalation.id, set())
    by_name = {contact.name: contact for contact in contacts}
    levels = due_levels(steps, started, now, sent)
    for level in levels:
        step = steps[level - 1]
        session.add(
            EscalationPage(
                escalation_id=escalation.id,
                round=escalation.chain_round,
                level=level,
                severity=escalation.severity,
                contact=step.notify,
                due_at=started + timedelta(minutes=step.after_minutes),
                sent_at=now,
                chain_version_id=version.id,
            )
        )
        session.flush()  # a second sender of the same step stops here, on the unique key
        channels = by_name[step.notify].channels
        words = [page_words(step, level)]
        queued = 0
        for channel in channels:
            sent = queue_page(session, escalation, channel, level=level, target=step.notify)
            queued += sent
            if channel.kind == "push" and not sent:
                words.append(f"{channel.address} has turned on notifications on no phone")
        if not channels:
            words.append(f"{step.notify} has no way to be reached: a coordinator adds one")
        elif not queued:
            words.append(f"{step.notify} could not be reached on any channel")
        session.add(
            EscalationEvent(
                escalation_id=escalation.id,
                at=now,
                kind=EscalationEventKind.PAGED,
                severity=escalation.severity,
                reasons=words,
            )
        )
        escalation.chain_level = max(escalation.chain_level, level)
        record_event(
            session,
            SYSTEM,
            "escalation.page",
            "escalation",
            escalation.id,
            after={"round": escalation.chain_round, "level": level, "contact": step.notify},
        )
    return len(levels)
