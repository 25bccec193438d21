"""What became of a flap, apart from where its monitoring stands: each return to theatre is a
record of its own (decision, knife to skin, findings, result), timed from the first flag, and
the final outcome is recorded at discharge or later; a salvage stays a salvage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from flapwatch.domain.outcomes import FlapOutcome, ReturnRecord, audit_measures, outcome_counts
from flapwatch.domain.vocabulary import ReconstructionStatus, Role
from flapwatch.models import AuditEvent, Escalation, Reconstruction
from flapwatch.services import SYSTEM, InvalidInput
from flapwatch.services.compliance import compliance_report
from flapwatch.services.escalations import acknowledge_escalation
from flapwatch.services.outcomes import (
    TheatreDetails,
    record_final_outcome,
    record_theatre_details,
    return_to_theatre,
    theatre_returns_of,
)
from flapwatch.services.patients import set_reconstruction_status

# --- the counts -------------------------------------------------------------------------------


def flap(results, final_outcome, still_monitored=False, **timing):
    returns = tuple(ReturnRecord(result=result, **timing) for result in results)
    return FlapOutcome(returns, final_outcome, still_monitored)


@pytest.mark.parametrize(
    ("flap", "counted"),
    [
        (flap((), None, True), {"monitoring"}),
        (flap(("salvaged",), None), {"returned_to_theatre", "salvaged"}),
        # salvaged, then partly lost in the end: a salvage, and a partial loss
        (flap(("salvaged",), "partial_loss"), {"returned_to_theatre", "salvaged", "partial_loss"}),
        # salvaged at the first return, lost at the second: no salvage
        (flap(("salvaged", "failed"), None), {"returned_to_theatre", "failed"}),
        (flap(("salvaged",), "total_loss"), {"returned_to_theatre", "failed"}),
        (flap((), "total_loss"), {"failed"}),  # lost without re-exploration
        (flap((None,), None, True), {"returned_to_theatre", "monitoring"}),
        (flap((), "intact"), set()),
    ],
)  # fmt: skip
def test_each_flap_counts_under_what_became_of_it(flap, counted):
    counts = outcome_counts([flap])
    assert {key for key, count in counts.items() if count} == counted


def test_the_audit_measures_count_as_the_two_series_do():
    cohort = [
        flap(("salvaged",), "intact", findings="venous", sign_hours=18, re_explored_hours=19,
             to_decision=20, to_knife=70),
        flap(("salvaged",), "partial_loss", findings="haematoma", sign_hours=5,
             re_explored_hours=6, to_decision=10, to_knife=50),
        flap(("failed",), None, findings="arterial", sign_hours=50, re_explored_hours=56,
             to_decision=40, to_knife=130),
        flap((None,), None, True),  # in theatre now: no result yet
        flap((), "total_loss"),  # lost without re-exploration
        *[flap((), "intact") for _ in range(5)],
    ]  # fmt: skip

    audit = audit_measures(cohort)

    assert (audit.flaps, audit.re_explored.count, audit.re_explored.percent) == (10, 4, 40.0)
    # of the three re-explored flaps with a result
    assert (audit.salvaged.count, audit.salvaged.of, audit.result_unknown) == (2, 3, 1)
    assert (audit.completely_salvaged.count, audit.partially_salvaged.count) == (1, 1)
    assert audit.failed_after_re_exploration.count == 1
    assert (audit.total_loss.count, audit.partial_loss.count) == (2, 1)
    assert (audit.to_decision.median, audit.to_knife.median) == (20.0, 70.0)
    assert (audit.sign_within_24h.count, audit.sign_within_24h.of) == (2, 3)
    assert audit.sign_within_72h.count == 3
    assert (audit.mean_hours_salvaged, audit.mean_hours_failed) == (12.5, 56.0)
    assert audit.losses_by_cause["arterial"] == audit.losses_by_cause["not_re_explored"] == 1


# --- through the services ---------------------------------------------------------------------


def _sent_back(make, session, now):
    """A flap flagged venous 30 min ago and sent back to theatre 12 min after the flag."""
    surgeon = make.actor(make.user(Role.SURGEON))
    flap = make.reconstruction(surgery_end_at=now - timedelta(hours=10))
    make.check(flap, minutes_ago=30, colour="dusky", capillary_refill="brisk")
    escalation = session.scalars(select(Escalation)).one()
    acknowledge_escalation(session, surgeon, escalation.id, outcome="return_to_theatre",
                           now=escalation.opened_at + timedelta(minutes=12))  # fmt: skip
    return flap, surgeon, escalation


def test_an_escalation_decided_return_to_theatre_is_a_record_timed_from_its_flag(
    make, session, now
):
    flap, surgeon, escalation = _sent_back(make, session, now)

    (theatre,) = theatre_returns_of(session, [flap.id])[flap.id]
    assert session.get(Reconstruction, flap.id).status == ReconstructionStatus.RETURNED_TO_THEATRE
    assert (theatre.number, theatre.escalation_id) == (1, escalation.id)
    assert theatre.decided_at == escalation.opened_at + timedelta(minutes=12)
    assert theatre.decided_by_id == surgeon.user_id

    record_theatre_details(
        session, surgeon, theatre.id,
        TheatreDetails(knife_to_skin_at=escalation.opened_at + timedelta(minutes=58),
                       findings="venous", result="salvaged"),
        version=theatre.version, now=escalation.opened_at + timedelta(hours=2),
    )  # fmt: skip
    report = compliance_report(session, SYSTEM, "PLAST-W3", None, None, now)
    audit = report.audit
    assert (audit.re_explored.count, audit.re_explored.of, audit.re_explorations) == (1, 1, 1)
    assert (audit.to_acknowledge.median, audit.to_decision.median) == (12.0, 12.0)
    assert audit.to_knife.median == 58.0
    assert audit.sign_within_24h.count == 1 and audit.completely_salvaged.percent == 100.0


def test_salvaged_then_discharged_keeps_the_salvage(make, session, now):
    flap, surgeon, escalation = _sent_back(make, session, now)
    (theatre,) = theatre_returns_of(session, [flap.id])[flap.id]
    record_theatre_details(session, surgeon, theatre.id, TheatreDetails(result="salvaged"),
                           version=theatre.version, now=now)  # fmt: skip
    set_reconstruction_status(session, SYSTEM, flap.id, ReconstructionStatus.MONITORING,
                              time_zero="restart", now=now)  # fmt: skip
    set_reconstruction_status(session, SYSTEM, flap.id, ReconstructionStatus.DISCHARGED, now=now)
    record_final_outcome(session, surgeon, flap.id, outcome="intact", on=now.date(), now=now)

    outcomes = compliance_report(session, SYSTEM, "PLAST-W3", None, None, now).flap_outcomes
    assert (outcomes["returned_to_theatre"], outcomes["salvaged"], outcomes["failed"]) == (1, 1, 0)
    assert outcomes["monitoring"] == 0


def test_knife_to_skin_before_the_decision_and_a_change_over_a_colleague_s_are_refused(
    make, session, now
):
    flap, surgeon, escalation = _sent_back(make, session, now)
    (theatre,) = theatre_returns_of(session, [flap.id])[flap.id]
    with pytest.raises(InvalidInput) as early:
        record_theatre_details(
            session, surgeon, theatre.id,
            TheatreDetails(knife_to_skin_at=escalation.opened_at), version=1, now=now,
        )  # fmt: skip
    assert "knife_to_skin_at" in early.value.problems
    record_theatre_details(session, surgeon, theatre.id, TheatreDetails(findings="haematoma"),
                           version=1, now=now)  # fmt: skip
    colleague = make.actor(make.user(Role.SURGEON))
    with pytest.raises(InvalidInput) as stale:
        record_theatre_details(session, colleague, theatre.id, TheatreDetails(result="failed"),
                               version=1, now=now)  # fmt: skip
    assert "version" in stale.value.problems
    (kept,) = theatre_returns_of(session, [flap.id])[flap.id]
    assert (kept.findings.value, kept.result) == ("haematoma", None)
    change = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "theatre_return.details")
    ).one()
    assert change.before == {"id": theatre.id, "findings": None, "version": 1}
    assert change.after["findings"] == "haematoma"


def test_the_final_outcome_waits_for_the_end_of_monitoring(make, session, now):
    surgeon = make.actor(make.user(Role.SURGEON))
    flap = make.reconstruction(surgery_end_at=now - timedelta(days=5))
    with pytest.raises(InvalidInput) as early:
        record_final_outcome(session, surgeon, flap.id, outcome="intact", on=now.date(), now=now)
    assert "" in early.value.problems
    set_reconstruction_status(session, SYSTEM, flap.id, ReconstructionStatus.DISCHARGED, now=now)
    with pytest.raises(InvalidInput) as future:
        record_final_outcome(session, surgeon, flap.id, outcome="partial_loss",
                             on=now.date() + timedelta(days=2), now=now)  # fmt: skip
    assert "on" in future.value.problems
    recorded = record_final_outcome(session, surgeon, flap.id, outcome="partial_loss",
                                    on=now.date(), note="Distal third lost", now=now)  # fmt: skip
    assert recorded.final_outcome.value == "partial_loss"
    assert (
        compliance_report(session, SYSTEM, "PLAST-W3", None, None, now).flap_outcomes[
            "partial_loss"
        ]
        == 1
    )


def test_a_second_return_is_numbered_and_one_in_theatre_is_not_sent_again(make, session, now):
    surgeon = make.actor(make.user(Role.SURGEON))
    flap = make.reconstruction(surgery_end_at=now - timedelta(hours=20))
    return_to_theatre(session, surgeon, flap.id, decided_at=now - timedelta(hours=8), now=now)
    with pytest.raises(InvalidInput):
        return_to_theatre(session, surgeon, flap.id, now=now)
    set_reconstruction_status(session, SYSTEM, flap.id, ReconstructionStatus.MONITORING,
                              time_zero="continue", now=now - timedelta(hours=6))  # fmt: skip
    second = return_to_theatre(session, surgeon, flap.id, now=now)
    assert second.number == 2
    assert [t.number for t in theatre_returns_of(session, [flap.id])[flap.id]] == [1, 2]


# --- the API and the pages --------------------------------------------------------------------


def test_the_api_returns_a_flap_to_theatre_records_what_was_found_and_its_outcome(api, make):
    flap = make.reconstruction(hours_ago=12)
    surgeon, nurse = api(Role.SURGEON), api(Role.NURSE)
    path = f"/reconstructions/{flap.id}/theatre-returns"
    assert nurse.post(path, {}).status_code == 403
    made = surgeon.post(path, {"note": "Venous congestion"})
    assert made.status_code == 201, made.json
    assert made.json["number"] == 1 and made.json["decided_by"] == surgeon.user.username
    shown = nurse.get(f"/reconstructions/{flap.id}").json
    assert shown["status"] == "returned_to_theatre" and shown["next_due_at"] is None
    assert [t["id"] for t in shown["theatre_returns"]] == [made.json["id"]]

    knife = datetime.fromisoformat(made.json["decided_at"]) + timedelta(minutes=1)
    body = {"knife_to_skin_at": knife.isoformat(), "findings": "venous", "result": "salvaged",
            "version": made.json["version"]}  # fmt: skip
    changed = surgeon.put(f"{path}/{made.json['id']}", body)
    assert changed.status_code == 200, changed.json
    assert (changed.json["findings"], changed.json["result"]) == ("venous", "salvaged")
    stale = surgeon.put(f"{path}/{made.json['id']}", {**body, "result": "failed"})
    assert stale.status_code == 422 and "version" in str(stale.json)
    unknown = surgeon.put(f"{path}/{made.json['id']}", {**body, "result": "lost"})
    assert unknown.status_code == 400 and "result" in str(unknown.json)  # not in the vocabulary

    early = surgeon.put(f"/reconstructions/{flap.id}/final-outcome",
                        {"outcome": "intact", "on": "2026-12-01"})  # fmt: skip
    assert early.status_code == 422
    # An outcome is no longer a monitoring status.
    coordinator = api(Role.UNIT_ADMIN)
    assert (
        coordinator.patch(f"/reconstructions/{flap.id}", {"status": "salvaged"}).status_code == 400
    )
    home = coordinator.patch(f"/reconstructions/{flap.id}", {"status": "discharged"})
    assert home.status_code == 200, home.json
    today = datetime.now(UTC).date().isoformat()
    final = surgeon.put(f"/reconstructions/{flap.id}/final-outcome",
                        {"outcome": "intact", "on": today})  # fmt: skip
    assert final.status_code == 200, final.json
    assert final.json["final_outcome"]["outcome"] == "intact"
    assert final.json["theatre_returns"][0]["result"] == "salvaged"


def test_another_unit_s_surgeon_cannot_see_or_record_a_return(api, make):
    make.unit("ORTHO-W1")
    flap = make.reconstruction(hours_ago=6)
    outsider = api(Role.SURGEON, "ORTHO-W1")
    assert outsider.post(f"/reconstructions/{flap.id}/theatre-returns", {}).status_code == 404
    assert outsider.get(f"/reconstructions/{flap.id}/theatre-returns").status_code == 404


def test_a_surgeon_sends_a_flap_back_and_records_the_findings_on_the_flap_page(
    logged_in, make, session
):
    flap = make.reconstruction(hours_ago=9)
    page, _ = logged_in(Role.SURGEON)
    assert "Back to theatre" in page.get(f"/reconstructions/{flap.id}").text
    sent = page.post(f"/reconstructions/{flap.id}/theatre-returns/new", {"note": "Dusky"})
    assert sent.status_code == 302
    (theatre,) = theatre_returns_of(session, [flap.id])[flap.id]
    details = f"/reconstructions/{flap.id}/theatre-returns/{theatre.id}"
    refused = page.post(details, {"findings": "other", "result": "salvaged",
                                  "version": str(theatre.version)})  # fmt: skip
    assert refused.status_code == 400 and "say what" in refused.text and "salvaged" in refused.text
    saved = page.post(details, {"findings": "haematoma", "result": "salvaged",
                                "findings_note": "Clot evacuated",
                                "version": str(theatre.version)})  # fmt: skip
    assert saved.status_code == 302
    shown = page.get(f"/reconstructions/{flap.id}").text
    assert "Return to theatre 1: salvaged" in shown and "Haematoma · Clot evacuated" in shown
    assert "<strong>Salvaged</strong>" in shown


def test_a_night_nurse_puts_a_flap_back_from_theatre_on_the_board(logged_in, make, session):
    flap = make.reconstruction(make.patient(name="Theo Back"), hours_ago=14)
    return_to_theatre(session, make.actor(make.user(Role.SURGEON)), flap.id)
    browser, nurse = logged_in(Role.NURSE)
    page = browser.get(f"/reconstructions/{flap.id}").get_data(as_text=True)
    assert "Back on the ward" in page and 'value="restart"' in page

    undecided = browser.post(f"/reconstructions/{flap.id}/back-from-theatre", {"note": "Back"})
    assert undecided.status_code == 302
    assert session.get(Reconstruction, flap.id).status == ReconstructionStatus.RETURNED_TO_THEATRE

    back = browser.post(f"/reconstructions/{flap.id}/back-from-theatre",
                        {"time_zero": "restart", "note": "Anastomosis redone"})  # fmt: skip
    assert back.status_code == 302 and "/units/PLAST-W3/board" in back.headers["Location"]
    session.expire_all()
    resumed = session.get(Reconstruction, flap.id)
    assert resumed.status == ReconstructionStatus.MONITORING and resumed.time_zero_at is not None
    board = browser.get("/units/PLAST-W3/board").get_data(as_text=True)
    assert "Theo Back" in board and "back on the board" in board
    choice = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "reconstruction.time_zero")
    ).one()
    assert choice.actor_username == nurse.username and choice.after["choice"] == "restart"


def test_the_api_resumes_only_a_flap_in_theatre(api, make, session):
    flap = make.reconstruction(hours_ago=14)
    nurse = api(Role.NURSE)
    path = f"/reconstructions/{flap.id}/back-from-theatre"
    assert nurse.post(path, {"time_zero": "continue"}).status_code == 422  # not in theatre
    return_to_theatre(session, make.actor(make.user(Role.SURGEON)), flap.id)
    answer = nurse.post(path, {"time_zero": "continue"})
    assert answer.status_code == 200, answer.json
    assert answer.json["status"] == "monitoring" and answer.json["next_due_at"] is not None
    assert api(Role.AUDITOR).post(path, {"time_zero": "continue"}).status_code == 403
