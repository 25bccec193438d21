"""Escalation chains and contacts as values: what is refused (named by its place), and which
steps fall due."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from flapwatch.domain.chains import (
    DEFAULT_CHAINS,
    DEFAULT_CONTACTS,
    ChainError,
    ChainStep,
    chains_to_json,
    contacts_to_json,
    due_levels,
    page_words,
    parse_chains,
    parse_contacts,
)
from flapwatch.domain.vocabulary import Severity

NAMES = {contact.name for contact in DEFAULT_CONTACTS}
WEBHOOK = {"kind": "webhook", "url": "https://pager.example.org/hook"}


def test_the_default_chain_pages_the_registrar_twice_then_the_consultant_then_the_nurse():
    red = DEFAULT_CHAINS.of(Severity.RED)
    assert [(s.after_minutes, s.notify) for s in red] == [
        (0, "Registrar on call"),
        (5, "Registrar on call"),
        (15, "Consultant on call"),
        (20, "Nurse in charge"),
    ]
    amber = DEFAULT_CHAINS.of(Severity.AMBER)
    assert [(s.after_minutes, s.notify) for s in amber] == [
        (0, "Registrar on call"),
        (30, "Registrar on call"),
    ]
    assert {step.notify for step in (*red, *amber)} <= NAMES


def test_chains_and_contacts_read_back_what_they_wrote():
    assert parse_chains(chains_to_json(DEFAULT_CHAINS), NAMES) == DEFAULT_CHAINS
    contacts = parse_contacts([{"name": "Registrar on call", "channels": [WEBHOOK]}])
    assert parse_contacts(contacts_to_json(contacts)) == contacts


STEP = {"after_minutes": 0, "notify": "Registrar on call"}


@pytest.mark.parametrize(
    ("definition", "place", "words"),
    [
        ({"red": [STEP]}, "chains", "both chains"),
        ({"red": [], "amber": [STEP]}, "chains.red", "1 to 10 steps"),
        ({"red": [STEP] * 11, "amber": [STEP]}, "chains.red", "1 to 10 steps"),
        (
            {"red": [{"after_minutes": -1, "notify": "Registrar on call"}], "amber": [STEP]},
            "chains.red.0.after_minutes",
            "0 to 1440",
        ),
        (
            {"red": [{"after_minutes": True, "notify": "Registrar on call"}], "amber": [STEP]},
            "chains.red.0.after_minutes",
            "whole number",
        ),
        (
            {"red": [{"after_minutes": 2.5, "notify": "Registrar on call"}], "amber": [STEP]},
            "chains.red.0.after_minutes",
            "whole number",
        ),
        (
            {
                "red": [{"after_minutes": 10, "notify": "Registrar on call"}, STEP],
                "amber": [STEP],
            },
            "chains.red.1.after_minutes",
            "time order",
        ),
        (
            {"red": [STEP], "amber": [{"after_minutes": 0, "notify": "The moon"}]},
            "chains.amber.0.notify",
            "Consultant on call, Nurse in charge, Registrar on call",
        ),
        (
            {"red": [{**STEP, "level": 1}], "amber": [STEP]},
            "chains.red.0",
            "A step is",
        ),
    ],
)
def test_a_chain_that_cannot_run_is_refused_naming_the_place(definition, place, words):
    with pytest.raises(ChainError) as refused:
        parse_chains(definition, NAMES)
    assert words in refused.value.problems[place]


def test_a_contact_reached_by_webhook_and_email_reads_back_as_it_was_given():
    given = [
        {
            "name": "Registrar on call",
            "channels": [WEBHOOK, {"kind": "email", "address": "plastics.reg+night@nhs.net"}],
        }
    ]
    (contact,) = parse_contacts(given)
    assert [channel.kind for channel in contact.channels] == ["webhook", "email"]
    assert contacts_to_json([contact]) == given


@pytest.mark.parametrize(
    ("contacts", "place", "words"),
    [
        ("Registrar", "contacts", "list of contacts"),
        ([{"name": ""}], "contacts.0.name", "Required"),
        ([{"name": "a" * 101}], "contacts.0.name", "at most 100"),
        ([{"name": "Reg"}, {"name": "reg"}], "contacts.1.name", "already called 'reg'"),
        ([{"name": "Reg", "channels": [{"kind": "fax"}]}], "contacts.0.channels.0.kind", "webhook"),
        (
            [{"name": "Reg", "channels": [{"kind": "webhook", "url": "ftp://x"}]}],
            "contacts.0.channels.0.url",
            "http:// or https://",
        ),
        (
            [{"name": "Reg", "channels": [{"kind": "webhook", "url": "https://u:p@x.org/"}]}],
            "contacts.0.channels.0.url",
            "user name or password",
        ),
        (
            [{"name": "Reg", "channels": [{"kind": "webhook"}]}],
            "contacts.0.channels.0.url",
            "required",
        ),
        (
            [{"name": "Reg", "channels": [{"kind": "email", "address": "reg@hospital"}]}],
            "contacts.0.channels.0.address",
            "one e-mail address",
        ),
        (
            # A second header smuggled into the address must never reach a mail's To:
            [{"name": "Reg", "channels": [{"kind": "email", "address": "a@b.org\nBcc: c@d.org"}]}],
            "contacts.0.channels.0.address",
            "one e-mail address",
        ),
        (
            [{"name": "Reg", "channels": [{"kind": "email", "address": "a@b.org, c@d.org"}]}],
            "contacts.0.channels.0.address",
            "one e-mail address",
        ),
        (
            [{"name": "Reg", "channels": [{"kind": "email", "url": "https://x.org/"}]}],
            "contacts.0.channels.0",
            "kind email has its address only",
        ),
        (
            [{"name": "Reg", "channels": [{"kind": "email"}]}],
            "contacts.0.channels.0.address",
            "E-mail address is required",
        ),
        ([{"name": "Reg", "channels": [WEBHOOK] * 6}], "contacts.0.channels", "at most 5"),
        ([{"name": "Reg", "pager": "1234"}], "contacts.0", "A contact is"),
    ],
)
def test_a_contact_that_cannot_be_reached_is_refused_naming_the_place(contacts, place, words):
    with pytest.raises(ChainError) as refused:
        parse_contacts(contacts)
    assert words in refused.value.problems[place]


START = datetime(2026, 12, 3, 2, 0, tzinfo=UTC)
STEPS = (ChainStep(0, "Registrar"), ChainStep(1, "Registrar"), ChainStep(2, "Consultant"))


@pytest.mark.parametrize(
    ("minutes", "sent", "due"),
    [
        (0, set(), [1]),
        (0.99, {1}, []),
        (1, {1}, [2]),
        (5, {1}, [2, 3]),  # a sweep that ran late sends every step that fell due
        (5, {1, 2, 3}, []),
    ],
)
def test_the_steps_due_are_those_whose_minutes_have_passed_and_not_yet_sent(minutes, sent, due):
    assert due_levels(STEPS, START, START + timedelta(minutes=minutes), sent) == due


def test_a_step_on_the_timeline_says_how_long_it_went_unanswered_and_who_was_paged():
    assert page_words(ChainStep(0, "Registrar on call"), 1) == "Registrar on call paged (level 1)"
    assert (
        page_words(ChainStep(15, "Consultant on call"), 3)
        == "Not acknowledged in 15 min: Consultant on call paged (level 3)"
    )
