"""The coordinator's page for the unit's contacts and escalation chain: what is in force, a new
version published from the form, a refusal that names the row and keeps what was typed."""

from __future__ import annotations

from flapwatch.domain.vocabulary import Role
from flapwatch.services.chains import contacts_of, current_chains, current_contacts


def page_of(make, logged_in):
    unit = make.unit()
    browser, _ = logged_in(Role.UNIT_ADMIN)
    return unit, browser, f"/admin/units/{unit.id}/chain"


def contacts_form(browser, url, rows, note="New pagers"):
    data = {"part": "contacts", "csrf_token": browser.csrf_token(url), "note": note}
    for index, (name, webhooks) in enumerate(rows):
        data[f"contacts-{index}-name"] = name
        data[f"contacts-{index}-webhooks"] = webhooks
    return browser.post(url, data)


def chain_form(browser, url, red, amber, note="Sooner"):
    data = {"part": "chain", "csrf_token": browser.csrf_token(url), "note": note}
    for severity, steps in (("red", red), ("amber", amber)):
        for index, (after, notify) in enumerate(steps):
            data[f"{severity}-{index}-after_minutes"] = after
            data[f"{severity}-{index}-notify"] = notify
    return browser.post(url, data)


DEFAULT_ROWS = [("Registrar on call", ""), ("Consultant on call", ""), ("Nurse in charge", "")]


def test_the_page_shows_the_chain_and_contacts_in_force(make, logged_in):
    _, browser, url = page_of(make, logged_in)
    page = browser.get(url).get_data(as_text=True)
    assert "Steps: version 1 in force" in page and "Contacts: version 1 in force" in page
    assert 'value="Registrar on call"' in page and 'value="15"' in page
    assert "Default escalation chain" in page


def test_a_coordinator_gives_a_contact_a_pager_from_the_page(make, logged_in, session):
    unit, browser, url = page_of(make, logged_in)
    rows = [("Registrar on call", "https://pager.example.org/reg"), *DEFAULT_ROWS[1:]]
    answer = contacts_form(browser, url, [*rows, ("", "")])
    assert answer.status_code == 302
    session.rollback()
    version = current_contacts(session, unit.id)
    assert version.version == 2 and version.note == "New pagers"
    registrar = contacts_of(version)[0]
    assert [channel.address for channel in registrar.channels] == ["https://pager.example.org/reg"]
    assert "Contacts version 2 is now in force" in browser.get(url).get_data(as_text=True)


def test_a_bad_pager_address_is_refused_on_its_row_keeping_what_was_typed(make, logged_in, session):
    unit, browser, url = page_of(make, logged_in)
    rows = [("", ""), ("Registrar on call", "ftp://pager"), *DEFAULT_ROWS[1:]]
    answer = contacts_form(browser, url, rows)
    assert answer.status_code == 400
    page = answer.get_data(as_text=True)
    assert 'id="contacts-1-webhooks-error"' in page and "http:// or https://" in page
    assert "ftp://pager" in page
    session.rollback()
    assert current_contacts(session, unit.id).version == 1


def test_a_coordinator_shortens_the_chain_from_the_page(make, logged_in, session):
    unit, browser, url = page_of(make, logged_in)
    answer = chain_form(
        browser,
        url,
        red=[("0", "Registrar on call"), ("", ""), ("10", "Consultant on call")],
        amber=[("0", "Registrar on call")],
    )
    assert answer.status_code == 302
    session.rollback()
    version = current_chains(session, unit.id)
    assert version.definition == {
        "red": [
            {"after_minutes": 0, "notify": "Registrar on call"},
            {"after_minutes": 10, "notify": "Consultant on call"},
        ],
        "amber": [{"after_minutes": 0, "notify": "Registrar on call"}],
    }


def test_steps_out_of_order_are_refused_on_their_row(make, logged_in, session):
    unit, browser, url = page_of(make, logged_in)
    answer = chain_form(
        browser,
        url,
        red=[("15", "Registrar on call"), ("", ""), ("5", "Consultant on call")],
        amber=[("0", "Registrar on call")],
    )
    assert answer.status_code == 400
    page = answer.get_data(as_text=True)
    assert 'id="red-2-after_minutes-error"' in page and "time order" in page
    session.rollback()
    assert current_chains(session, unit.id).version == 1


def test_a_note_is_required_to_publish(make, logged_in):
    _, browser, url = page_of(make, logged_in)
    answer = chain_form(
        browser, url, red=[("0", "Nurse in charge")], amber=[("0", "Nurse in charge")], note=""
    )
    assert answer.status_code == 400
    assert "a note is required" in answer.get_data(as_text=True)
