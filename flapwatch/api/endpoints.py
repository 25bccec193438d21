"""The API's operations. Each parses nothing itself (the framework did), calls a service and
turns what it returns into the documented JSON."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask import Response, current_app, g, url_for
from sqlalchemy import select
from sqlalchemy.orm import Session

from flapwatch.api import schemas
from flapwatch.api.framework import (
    ApiError,
    Reply,
    decode_cursor,
    encode_cursor,
    operation,
    require_uploads,
)
from flapwatch.api.openapi import openapi_document
from flapwatch.domain.checks import ASSESSMENT_FIELDS, CheckValues
from flapwatch.domain.outcomes import minutes_between
from flapwatch.domain.rules import RuleSetError, parse_rule_set, rule_set_to_json
from flapwatch.http.access import (
    ADMINS,
    CLINICAL,
    EXPORTERS,
    MANAGERS,
    OUTCOMES,
    READERS,
    REVIEWERS,
    SCHEDULERS,
)
from flapwatch.http.downloads import (
    XLSX,
    chart_response,
    compliance_csv_response,
    export_response,
    fhir_response,
    report_response,
    research_response,
    workbook_response,
)
from flapwatch.http.errors import json_response
from flapwatch.http.live import start_after, stream_response
from flapwatch.http.photos import photo_response, photo_store
from flapwatch.models import (
    Check,
    ContactListVersion,
    Escalation,
    EscalationChainVersion,
    MonitoringPause,
    Patient,
    Photo,
    Reconstruction,
    ScheduleOverride,
    TheatreReturn,
    Unit,
    User,
    utcnow,
)
from flapwatch.services import Actor, InvalidInput, NotFound, records
from flapwatch.services import admissions as admission_service
from flapwatch.services import chains as chain_service
from flapwatch.services import checks as check_service
from flapwatch.services import escalations as escalation_service
from flapwatch.services import monitoring as monitoring_service
from flapwatch.services import outcomes as outcome_service
from flapwatch.services import patients as patient_service
from flapwatch.services import photos as photo_service
from flapwatch.services import units as unit_service
from flapwatch.services.idempotency import Answer
from flapwatch.services.photos import Upload
from flapwatch.services.ward import get_unit_by_code


def _now() -> datetime:
    return g.get("now") or utcnow()


def _page(fetched: list[Any], limit: int, position: Any) -> tuple[list[Any], str | None]:
    """A page of `limit` from `limit + 1` rows fetched: the extra row says whether another page
    follows, so the last page always says so (next_cursor null)."""
    items = fetched[:limit]
    return items, encode_cursor(position(items[-1])) if len(fetched) > limit else None


# --- the document and the caller -------------------------------------------------------------


@operation(
    "GET",
    "/openapi.json",
    summary="Read this API's OpenAPI document",
    tag="meta",
    roles=None,
    response=None,
)
def openapi(session: Session) -> Response:
    document = current_app.extensions.get("flapwatch.openapi")
    if document is None:
        document = openapi_document()
        current_app.extensions["flapwatch.openapi"] = document
    return json_response(document, 200)


@operation(
    "GET",
    "/me",
    summary="Read who the token acts as",
    tag="meta",
    roles=READERS,
    response=schemas.Me,
)
def me(actor: Actor, session: Session) -> schemas.Me:
    user = session.get(User, actor.user_id)
    assert user is not None
    return schemas.Me(
        username=user.username,
        display_name=user.display_name,
        role=user.role,
        units=[unit.code for unit in user.units],
        all_units=user.sees_every_unit,
    )


# --- units -----------------------------------------------------------------------------------


def _units(session: Session, units: list[Unit]) -> list[schemas.Unit]:
    settings = records.unit_settings(session, [unit.id for unit in units])
    result = []
    for unit in units:
        setting = settings[unit.id]
        schedule = setting.schedule
        result.append(
            schemas.Unit(
                code=unit.code,
                name=unit.name,
                timezone=unit.timezone,
                schedule=schemas.Schedule(
                    version=schedule.version,
                    bands=[
                        schemas.ScheduleBand(until_hour=until, interval_minutes=interval)
                        for until, interval in schedule.bands
                    ],
                    grace_minutes=schedule.grace_minutes,
                    after_last_band_minutes=schedule.after_last_band_minutes,
                    not_done_minutes=schedule.not_done_minutes,
                ),
                rule_set_version=setting.rule_set_version,
            )
        )
    return result


@operation(
    "GET",
    "/units",
    summary="List units",
    tag="units",
    roles=READERS,
    query=schemas.Paged,
    response=schemas.UnitPage,
    description="The units the token's account works in (every unit for administrators "
    "and auditors), by code.",
)
def list_units(actor: Actor, session: Session, query: schemas.Paged) -> schemas.UnitPage:
    after = decode_cursor(query.cursor, (str,))
    units = records.units_page(session, actor, after[0] if after else None, query.limit + 1)
    units, cursor = _page(units, query.limit, lambda u: [u.code])
    return schemas.UnitPage(items=_units(session, units), next_cursor=cursor)


@operation(
    "POST",
    "/units",
    summary="Create a unit",
    tag="units",
    roles=ADMINS,
    body=schemas.UnitCreate,
    response=schemas.Unit,
    status=201,
    errors=(422,),
    description="With the default monitoring schedule and rule set, to adapt.",
)
def create_unit(actor: Actor, session: Session, body: schemas.UnitCreate) -> Reply:
    unit = unit_service.create_unit(
        session, actor, code=body.code, name=body.name, timezone=body.timezone
    )
    return Reply(_units(session, [unit])[0], location=url_for("api.get_unit", code=unit.code))


@operation(
    "GET", "/units/{code}", summary="Read a unit", tag="units", roles=READERS, response=schemas.Unit
)
def get_unit(actor: Actor, session: Session, code: str) -> schemas.Unit:
    return _units(session, [get_unit_by_code(session, actor, code)])[0]


@operation(
    "GET",
    "/units/{code}/events",
    summary="Follow what changes on a unit as it happens (server-sent events)",
    tag="units",
    roles=READERS,
    query=schemas.LiveEventsQuery,
    response=None,
    media_type="text/event-stream",
    description="A `text/event-stream` (HTML's server-sent events): `escalation.opened`, "
    "`escalation.updated` and `check.recorded`, each with its `id` and a JSON `data` of ids "
    "and the severity (never a patient's name: read what changed with its own request). A "
    "client that reconnects sends `Last-Event-ID` and gets what it missed (events are kept an "
    "hour); `after` starts after a known id instead of now. A comment line comes every 20 s "
    "while nothing happens; `retry` says how soon to reconnect.",
)
def unit_events(
    actor: Actor, session: Session, code: str, query: schemas.LiveEventsQuery
) -> Response:
    unit = get_unit_by_code(session, actor, code)
    return stream_response(unit.id, start_after(session))


# --- rule sets -------------------------------------------------------------------------------


def _rule_set(record: records.RuleSetRecord, unit_code: str) -> schemas.RuleSetVersion:
    version = record.version
    return schemas.RuleSetVersion(
        unit=unit_code,
        version=version.version,
        note=version.note,
        created_at=version.created_at,
        created_by=record.author,
        rules=[
            schemas.Rule.model_validate(rule, strict=False) for rule in version.definition["rules"]
        ],
    )


@operation(
    "GET",
    "/units/{code}/rule-set",
    summary="Read the unit's rule set in force",
    tag="rule sets",
    roles=READERS,
    response=schemas.RuleSetVersion,
)
def get_rule_set(actor: Actor, session: Session, code: str) -> schemas.RuleSetVersion:
    record = records.rule_set_version(session, actor, code)
    return _rule_set(record, code.upper())


@operation(
    "PUT",
    "/units/{code}/rule-set",
    summary="Publish a new version of the rule set",
    tag="rule sets",
    roles=MANAGERS,
    body=schemas.RuleSetPublish,
    response=schemas.RuleSetVersion,
    status=201,
    also=(200,),
    errors=(422,),
    description="Checks recorded from now on are evaluated by it; earlier flags keep "
    "the version that made them. Sending the version in force again publishes nothing.",
)
def publish_rule_set(
    actor: Actor, session: Session, code: str, body: schemas.RuleSetPublish
) -> Reply:
    unit = get_unit_by_code(session, actor, code)
    definition = body.model_dump(mode="json", by_alias=True, exclude_none=True)
    current = records.rule_set_version(session, actor, unit.code)
    if (
        _canonical_rules(definition) == current.version.definition["rules"]
        and body.note.strip() == current.version.note
    ):
        return Reply(_rule_set(current, unit.code), status=200)
    version = escalation_service.publish_rule_set(session, actor, unit.id, definition, body.note)
    return Reply(
        _rule_set(records.RuleSetRecord(version, actor.username), unit.code),
        status=201,
        location=url_for("api.get_rule_set", code=unit.code),
    )


def _canonical_rules(definition: dict[str, Any]) -> list[Any] | None:
    """The rules as they would be stored, or None if they would be refused."""
    try:
        return rule_set_to_json(parse_rule_set(definition))["rules"]
    except RuleSetError:
        return None


@operation(
    "GET",
    "/units/{code}/rule-set/versions",
    summary="List the rule set's versions",
    tag="rule sets",
    roles=READERS,
    query=schemas.Paged,
    response=schemas.RuleSetVersionPage,
    description="Newest first.",
)
def list_rule_set_versions(
    actor: Actor, session: Session, code: str, query: schemas.Paged
) -> schemas.RuleSetVersionPage:
    before = decode_cursor(query.cursor, (int,))
    versions = records.rule_set_versions_page(
        session, actor, code, before[0] if before else None, query.limit + 1
    )
    versions, cursor = _page(versions, query.limit, lambda r: [r.version.version])
    return schemas.RuleSetVersionPage(
        items=[
            schemas.RuleSetVersionSummary(
                version=r.version.version,
                note=r.version.note,
                created_at=r.version.created_at,
                created_by=r.author,
            )
            for r in versions
        ],
        next_cursor=cursor,
    )


# --- escalation chains and contacts ------------------------------------------------------------


def _author(version: Any) -> str | None:
    return version.created_by.username if version.created_by else None


def _contacts(version: ContactListVersion, unit_code: str) -> schemas.Contacts:
    return schemas.Contacts(
        unit=unit_code,
        version=version.version,
        note=version.note,
        created_at=version.created_at,
        created_by=_author(version),
        contacts=[schemas.Contact.model_validate(c, strict=False) for c in version.definition],
    )


def _chain(version: EscalationChainVersion, unit_code: str) -> schemas.EscalationChain:
    return schemas.EscalationChain(
        unit=unit_code,
        version=version.version,
        note=version.note,
        created_at=version.created_at,
        created_by=_author(version),
        chains=schemas.Chains.model_validate(version.definition, strict=False),
    )


_CONTACT_WORDS = (
    "A contact is a person or an on-call role (e.g. 'Registrar on call') and the channels that "
    "reach it; the escalation chain's steps name contacts. "
)


@operation(
    "GET",
    "/units/{code}/contacts",
    summary="Read the unit's contacts",
    tag="escalation chains",
    roles=MANAGERS,
    response=schemas.Contacts,
    description=_CONTACT_WORDS + "Coordinators only: a webhook's address may carry its token.",
)
def get_contacts(actor: Actor, session: Session, code: str) -> schemas.Contacts:
    unit = get_unit_by_code(session, actor, code)
    return _contacts(chain_service.current_contacts(session, unit.id), unit.code)


@operation(
    "PUT",
    "/units/{code}/contacts",
    summary="Publish a new version of the unit's contacts",
    tag="escalation chains",
    roles=MANAGERS,
    body=schemas.ContactsPublish,
    response=schemas.Contacts,
    status=201,
    also=(200,),
    errors=(422,),
    description=_CONTACT_WORDS + "The whole list, with a note saying why. A contact the chain "
    "pages cannot be left out (422): change the chain first. Sending the version in force "
    "again publishes nothing (200).",
)
def publish_contacts(
    actor: Actor, session: Session, code: str, body: schemas.ContactsPublish
) -> Reply:
    contacts = [contact.model_dump(mode="json") for contact in body.contacts]
    published = chain_service.publish_contacts(session, actor, code, contacts, body.note)
    unit_code = code.strip().upper()
    return Reply(
        _contacts(published.version, unit_code),
        status=201 if published.changed else 200,
        location=url_for("api.get_contacts", code=unit_code) if published.changed else None,
    )


_CHAIN_WORDS = (
    "Who is paged, and when, while an escalation goes unacknowledged: for each severity, "
    "steps of `after_minutes` (counted from the escalation's opening, or from a new sign after "
    "an acknowledgement) and the contact to `notify`. A step's level is its position. "
    "Acknowledging stops the chain. "
)


@operation(
    "GET",
    "/units/{code}/escalation-chain",
    summary="Read the unit's escalation chain",
    tag="escalation chains",
    roles=READERS,
    response=schemas.EscalationChain,
    description=_CHAIN_WORDS,
)
def get_escalation_chain(actor: Actor, session: Session, code: str) -> schemas.EscalationChain:
    unit = get_unit_by_code(session, actor, code)
    return _chain(chain_service.current_chains(session, unit.id), unit.code)


@operation(
    "PUT",
    "/units/{code}/escalation-chain",
    summary="Publish a new version of the escalation chain",
    tag="escalation chains",
    roles=MANAGERS,
    body=schemas.ChainPublish,
    response=schemas.EscalationChain,
    status=201,
    also=(200,),
    errors=(422,),
    description=_CHAIN_WORDS + "Steps must be in time order and name the unit's contacts "
    "(422 otherwise). Steps not yet sent follow the new version. Sending the version in force "
    "again publishes nothing (200).",
)
def publish_escalation_chain(
    actor: Actor, session: Session, code: str, body: schemas.ChainPublish
) -> Reply:
    chains = body.chains.model_dump(mode="json")
    published = chain_service.publish_chains(session, actor, code, chains, body.note)
    unit_code = code.strip().upper()
    return Reply(
        _chain(published.version, unit_code),
        status=201 if published.changed else 200,
        location=url_for("api.get_escalation_chain", code=unit_code) if published.changed else None,
    )


# --- patients --------------------------------------------------------------------------------


def _patient(patient: Patient) -> schemas.Patient:
    return schemas.Patient(
        id=patient.id,
        mrn=patient.mrn,
        name=patient.name,
        date_of_birth=patient.date_of_birth,
        unit=patient.unit.code,
        bed=patient.bed,
    )


@operation(
    "GET",
    "/patients",
    summary="List patients",
    tag="patients",
    roles=READERS,
    query=schemas.PatientFilter,
    response=schemas.PatientPage,
)
def list_patients(
    actor: Actor, session: Session, query: schemas.PatientFilter
) -> schemas.PatientPage:
    after = decode_cursor(query.cursor, (int,))
    patients = records.patients_page(
        session, actor, query.unit, after[0] if after else None, query.limit + 1, query.mrn
    )
    patients, cursor = _page(patients, query.limit, lambda p: [p.id])
    return schemas.PatientPage(items=[_patient(p) for p in patients], next_cursor=cursor)


@operation(
    "POST",
    "/patients",
    summary="Admit a patient",
    tag="patients",
    roles=MANAGERS,
    body=schemas.PatientCreate,
    response=schemas.Patient,
    status=201,
    errors=(404, 422),
)
def admit_patient(actor: Actor, session: Session, body: schemas.PatientCreate) -> Reply:
    unit = get_unit_by_code(session, actor, body.unit)
    patient = patient_service.admit_patient(
        session,
        actor,
        unit_code=unit.code,
        details=patient_service.PatientDetails(
            mrn=body.mrn, name=body.name, date_of_birth=body.date_of_birth, bed=body.bed
        ),
    )
    return Reply(_patient(patient), location=url_for("api.get_patient", patient_id=patient.id))


@operation(
    "GET",
    "/patients/{patient_id}",
    summary="Read a patient",
    tag="patients",
    roles=READERS,
    response=schemas.Patient,
)
def get_patient(actor: Actor, session: Session, patient_id: int) -> schemas.Patient:
    return _patient(patient_service.get_patient(session, actor, patient_id))


# --- reconstructions -------------------------------------------------------------------------


def _reconstructions(session: Session, flaps: list[Reconstruction]) -> list[schemas.Reconstruction]:
    return [
        schemas.Reconstruction(
            id=p.reconstruction.id,
            patient_id=p.reconstruction.patient_id,
            unit=p.reconstruction.patient.unit.code,
            procedure=p.reconstruction.procedure,
            flap_kind=p.reconstruction.flap_kind,
            site=p.reconstruction.site,
            side=p.reconstruction.side,
            surgery_end_at=p.reconstruction.surgery_end_at,
            surgeon=p.reconstruction.surgeon,
            buried=p.reconstruction.buried,
            status=p.reconstruction.status,
            next_due_at=p.next_due_at,
            due_state=p.due_state,
            last_check_at=p.last_check_at,
            open_escalation_id=p.open_escalation_id,
            pause=(
                schemas.Pause(
                    reason=p.pause.reason,
                    note=p.pause.note,
                    since=p.pause.started_at,
                    expected_until=p.pause.expected_until,
                )
                if p.pause is not None
                else None
            ),
            schedule_overrides=[_override_brief(o) for o in p.overrides],
            theatre_returns=[_theatre_return(t) for t in p.theatre_returns],
            final_outcome=_final_outcome(p.reconstruction),
            photo_consent=p.reconstruction.photo_consent,
        )
        for p in records.progress_of(session, flaps, _now())
    ]


def _theatre_return(theatre_return: TheatreReturn) -> schemas.TheatreReturn:
    flagged = theatre_return.escalation.opened_at if theatre_return.escalation else None
    return schemas.TheatreReturn(
        id=theatre_return.id,
        number=theatre_return.number,
        escalation_id=theatre_return.escalation_id,
        decided_at=theatre_return.decided_at,
        decided_by=theatre_return.decided_by.username if theatre_return.decided_by else None,
        knife_to_skin_at=theatre_return.knife_to_skin_at,
        findings=theatre_return.findings,
        findings_note=theatre_return.findings_note,
        result=theatre_return.result,
        minutes_flag_to_decision=minutes_between(flagged, theatre_return.decided_at),
        minutes_flag_to_knife_to_skin=minutes_between(flagged, theatre_return.knife_to_skin_at),
        provenance=theatre_return.provenance,
        version=theatre_return.version,
    )


def _final_outcome(reconstruction: Reconstruction) -> schemas.FinalOutcomeRecord | None:
    if reconstruction.final_outcome is None:
        return None
    by = reconstruction.final_outcome_by
    return schemas.FinalOutcomeRecord(
        outcome=reconstruction.final_outcome,
        on=reconstruction.final_outcome_on,
        note=reconstruction.final_outcome_note,
        recorded_by=by.username if by else None,
        recorded_at=reconstruction.final_outcome_recorded_at,
    )


def _theatre_returns_of(session: Session, reconstruction_id: int) -> list[TheatreReturn]:
    return outcome_service.theatre_returns_of(session, [reconstruction_id]).get(
        reconstruction_id, []
    )


@operation(
    "GET",
    "/reconstructions/{reconstruction_id}/theatre-returns",
    summary="List a flap's returns to theatre",
    tag="outcomes",
    roles=READERS,
    response=schemas.TheatreReturnList,
    description="First first, each with its decision, knife to skin, findings and result, "
    "and the minutes from its escalation's first flag.",
)
def list_theatre_returns(actor: Actor, session: Session, reconstruction_id: int) -> Reply:
    patient_service.get_reconstruction(session, actor, reconstruction_id)
    returns = _theatre_returns_of(session, reconstruction_id)
    return Reply(schemas.TheatreReturnList(items=[_theatre_return(t) for t in returns]))


@operation(
    "POST",
    "/reconstructions/{reconstruction_id}/theatre-returns",
    summary="Return a flap to theatre",
    tag="outcomes",
    roles=OUTCOMES,
    body=schemas.TheatreReturnCreate,
    response=schemas.TheatreReturn,
    status=201,
    errors=(422,),
    description="A surgeon's decision to re-explore the flap (now, or `decided_at`): its "
    "status becomes `returned_to_theatre` and it leaves the board until monitoring resumes "
    "(`PATCH /reconstructions/{id}` with `status: monitoring` and `time_zero`). Acknowledging "
    "an escalation with `return_to_theatre` does the same, timed from its first flag.",
)
def create_theatre_return(
    actor: Actor, session: Session, reconstruction_id: int, body: schemas.TheatreReturnCreate
) -> Reply:
    created = outcome_service.return_to_theatre(
        session, actor, reconstruction_id, decided_at=body.decided_at, note=body.note, now=_now()
    )
    returns = _theatre_returns_of(session, reconstruction_id)
    return Reply(_theatre_return(next(t for t in returns if t.id == created.id)), status=201)


@operation(
    "PUT",
    "/reconstructions/{reconstruction_id}/theatre-returns/{theatre_return_id}",
    summary="Record what is known of a return to theatre",
    tag="outcomes",
    roles=OUTCOMES,
    body=schemas.TheatreReturnChange,
    response=schemas.TheatreReturn,
    errors=(422,),
    description="Knife to skin, the findings and the result, each as it should now stand "
    "(null: not known). Send the `version` you read: a change made meanwhile is refused "
    "(422 naming `version`), never overwritten. Audited with what it replaced.",
)
def change_theatre_return(
    actor: Actor,
    session: Session,
    reconstruction_id: int,
    theatre_return_id: int,
    body: schemas.TheatreReturnChange,
) -> Reply:
    patient_service.get_reconstruction(session, actor, reconstruction_id)
    if not any(t.id == theatre_return_id for t in _theatre_returns_of(session, reconstruction_id)):
        raise NotFound(f"No return to theatre {theatre_return_id} of this flap.")
    outcome_service.record_theatre_details(
        session,
        actor,
        theatre_return_id,
        outcome_service.TheatreDetails(
            knife_to_skin_at=body.knife_to_skin_at,
            findings=body.findings,
            findings_note=body.findings_note,
            result=body.result,
        ),
        version=body.version,
        now=_now(),
    )
    returns = _theatre_returns_of(session, reconstruction_id)
    return Reply(_theatre_return(next(t for t in returns if t.id == theatre_return_id)))


@operation(
    "POST",
    "/reconstructions/{reconstruction_id}/back-from-theatre",
    summary="Resume a flap's monitoring after theatre",
    tag="outcomes",
    roles=CLINICAL,
    body=schemas.BackFromTheatre,
    response=schemas.Reconstruction,
    errors=(422,),
    description="Back on the ward at any hour: whoever receives the flap resumes its "
    "monitoring (the next check due at once), saying whether the schedule's time zero "
    "restarts from now or continues from the first surgery. Only for a flap in theatre.",
)
def resume_after_theatre(
    actor: Actor, session: Session, reconstruction_id: int, body: schemas.BackFromTheatre
) -> schemas.Reconstruction:
    flap = patient_service.back_from_theatre(
        session, actor, reconstruction_id, time_zero=body.time_zero, note=body.note, now=_now()
    )
    return _reconstructions(session, [flap])[0]


@operation(
    "PUT",
    "/reconstructions/{reconstruction_id}/final-outcome",
    summary="Record a flap's final outcome",
    tag="outcomes",
    roles=OUTCOMES,
    body=schemas.FinalOutcomeSet,
    response=schemas.Reconstruction,
    errors=(422,),
    description="Intact, partial loss or total loss, and the day it was known, once "
    "monitoring has ended (stopped or discharged). Sent again, it replaces the record; the "
    "audit trail keeps what it replaced.",
)
def set_final_outcome(
    actor: Actor, session: Session, reconstruction_id: int, body: schemas.FinalOutcomeSet
) -> schemas.Reconstruction:
    flap = outcome_service.record_final_outcome(
        session, actor, reconstruction_id, outcome=body.outcome, on=body.on, note=body.note,
        now=_now(),
    )  # fmt: skip
    return _reconstructions(session, [flap])[0]


def _override_brief(override: ScheduleOverride) -> schemas.ScheduleOverrideBrief:
    return schemas.ScheduleOverrideBrief(
        id=override.id,
        version=override.version,
        kind=override.kind,
        interval_minutes=override.interval_minutes,
        starts_at=override.starts_at,
        ends_at=override.in_force_until,
        reason=override.reason,
    )


@operation(
    "GET",
    "/reconstructions",
    summary="List reconstructions (flaps)",
    tag="reconstructions",
    roles=READERS,
    query=schemas.ReconstructionFilter,
    response=schemas.ReconstructionPage,
)
def list_reconstructions(
    actor: Actor, session: Session, query: schemas.ReconstructionFilter
) -> schemas.ReconstructionPage:
    after = decode_cursor(query.cursor, (int,))
    flaps = records.reconstructions_page(
        session, actor, query.unit, query.status, after[0] if after else None, query.limit + 1
    )
    flaps, cursor = _page(flaps, query.limit, lambda r: [r.id])
    return schemas.ReconstructionPage(items=_reconstructions(session, flaps), next_cursor=cursor)


@operation(
    "POST",
    "/patients/{patient_id}/transfer",
    summary="Transfer a patient to another ward",
    tag="patients",
    roles=CLINICAL,
    body=schemas.TransferCreate,
    response=schemas.Patient,
    errors=(404, 422),
    description="A dated move (ICU → ward 3) of the patient and their flaps: checks, "
    "misses, pauses and escalations before `at` stay the old ward's in its compliance "
    "report, those after it are the new ward's; the schedule is each ward's in its time and "
    "time zero does not restart. By anyone clinical on the ward the patient is on.",
)
def transfer_patient(
    actor: Actor, session: Session, patient_id: int, body: schemas.TransferCreate
) -> schemas.Patient:
    patient = patient_service.transfer_patient(
        session, actor, patient_id, to_unit=body.to_unit, at=body.at, bed=body.bed,
        note=body.note, now=_now(),
    )  # fmt: skip
    return _patient(patient)


def _flap_details(flap: schemas.FlapDetails) -> patient_service.ReconstructionDetails:
    return patient_service.ReconstructionDetails(
        procedure=flap.procedure,
        flap_kind=flap.flap_kind,
        site=flap.site,
        side=flap.side,
        surgery_end_at=flap.surgery_end_at,
        surgeon=flap.surgeon,
        buried=flap.buried,
    )


@operation(
    "POST",
    "/admissions",
    summary="Start a flap's monitoring",
    tag="patients",
    roles=CLINICAL,
    body=schemas.AdmissionCreate,
    response=schemas.Admission,
    status=201,
    errors=(404, 422),
    description="A nurse or surgeon receiving a flap from theatre or recovery: the patient "
    "found by MRN (`GET /patients?mrn=`, then `patient_id`) or registered now (`patient`; "
    "one the hospital knows is re-admitted when MRN, name and date of birth all match), and "
    "the flap, in one change; on the board at once with its first check due.",
)
def create_admission(actor: Actor, session: Session, body: schemas.AdmissionCreate) -> Reply:
    if (body.patient_id is None) == (body.patient is None):
        raise InvalidInput(
            "Monitoring was not started.",
            {"patient": "Give patient_id (a patient found by MRN) or patient, not both."},
        )
    unit = get_unit_by_code(session, actor, body.unit)  # another unit's: 404, as if none
    started = admission_service.start_monitoring(
        session,
        actor,
        unit_code=unit.code,
        flap=_flap_details(body.reconstruction),
        patient_id=body.patient_id,
        patient=patient_service.PatientDetails(
            mrn=body.patient.mrn, name=body.patient.name,
            date_of_birth=body.patient.date_of_birth, bed=body.bed,
        ) if body.patient is not None else None,
        bed=body.bed,
        now=_now(),
    )  # fmt: skip
    reconstruction = started.reconstruction
    return Reply(
        schemas.Admission(
            patient=_patient(started.patient),
            reconstruction=_reconstructions(session, [reconstruction])[0],
            readmitted=started.readmitted,
        ),
        location=url_for("api.get_reconstruction", reconstruction_id=reconstruction.id),
    )


@operation(
    "POST",
    "/reconstructions",
    summary="Add a reconstruction to monitor",
    tag="reconstructions",
    roles=MANAGERS,
    body=schemas.ReconstructionCreate,
    response=schemas.Reconstruction,
    status=201,
    errors=(404, 422),
)
def add_reconstruction(actor: Actor, session: Session, body: schemas.ReconstructionCreate) -> Reply:
    flap = patient_service.add_reconstruction(
        session,
        actor,
        body.patient_id,
        _flap_details(body),
    )
    return Reply(
        _reconstructions(session, [flap])[0],
        location=url_for("api.get_reconstruction", reconstruction_id=flap.id),
    )


@operation(
    "GET",
    "/reconstructions/{reconstruction_id}",
    summary="Read a reconstruction",
    tag="reconstructions",
    roles=READERS,
    response=schemas.Reconstruction,
)
def get_reconstruction(
    actor: Actor, session: Session, reconstruction_id: int
) -> schemas.Reconstruction:
    flap = patient_service.get_reconstruction(session, actor, reconstruction_id)
    return _reconstructions(session, [flap])[0]


_CHART_WORDS = (
    "The flap's trend chart: hours since surgery (the unit's clock along the top), "
    "temperatures and ΔT with the unit's rule thresholds, clinical signs and Doppler lanes, "
    "StO₂ when recorded; flagged checks ▲ red / ◆ amber, escalations as labelled lines, "
    "overdue gaps hatched. Served from a cache until the flap's data changes."
)


@operation(
    "GET",
    "/reconstructions/{reconstruction_id}/chart.png",
    summary="Draw a flap's trend chart (PNG)",
    tag="reconstructions",
    roles=READERS,
    query=schemas.ChartOptions,
    response=None,
    media_type="image/png",
    description=_CHART_WORDS,
)
def reconstruction_chart_png(
    actor: Actor, session: Session, reconstruction_id: int, query: schemas.ChartOptions
) -> Response:
    return chart_response(actor, reconstruction_id, query.size, "png")


@operation(
    "GET",
    "/reconstructions/{reconstruction_id}/chart.svg",
    summary="Draw a flap's trend chart (SVG)",
    tag="reconstructions",
    roles=READERS,
    query=schemas.ChartOptions,
    response=None,
    media_type="image/svg+xml",
    description=_CHART_WORDS,
)
def reconstruction_chart_svg(
    actor: Actor, session: Session, reconstruction_id: int, query: schemas.ChartOptions
) -> Response:
    return chart_response(actor, reconstruction_id, query.size, "svg")


@operation(
    "GET",
    "/reconstructions/{reconstruction_id}/report.pdf",
    summary="Print a flap's report (PDF)",
    tag="reconstructions",
    roles=READERS,
    response=None,
    media_type="application/pdf",
    description="A4 pages: the trend chart, every check with its flags, notes and late-entry "
    "marks, the escalations with their timelines, and the flap's outcome. Each report is "
    "recorded in the audit trail.",
)
def reconstruction_report(actor: Actor, session: Session, reconstruction_id: int) -> Response:
    return report_response(actor, reconstruction_id)


@operation(
    "PATCH",
    "/reconstructions/{reconstruction_id}",
    summary="Change a reconstruction",
    tag="reconstructions",
    roles=CLINICAL,
    body=schemas.ReconstructionChange,
    response=schemas.Reconstruction,
    errors=(422,),
    description="Corrects the fields sent and, with `status`, ends or resumes "
    "monitoring; all in one change (a coordinator's). `photo_consent` alone: any clinical "
    "role of the unit records the patient's answer to photographs.",
)
def change_reconstruction(
    actor: Actor, session: Session, reconstruction_id: int, body: schemas.ReconstructionChange
) -> schemas.Reconstruction:
    if body.model_fields_set - {"photo_consent"} and actor.role not in MANAGERS:
        raise ApiError(
            403,
            "forbidden",
            f"A {actor.role.replace('_', ' ')} can change only photo_consent of a "
            "reconstruction: the rest is a coordinator's.",
        )
    flap = patient_service.get_reconstruction(session, actor, reconstruction_id)
    if "photo_consent" in body.model_fields_set:
        flap = photo_service.set_photo_consent(
            session, actor, reconstruction_id, body.photo_consent
        )
    sent = body.model_fields_set - {"status", "status_note", "time_zero", "photo_consent"}
    if sent:
        current = {
            name: getattr(flap, name)
            for name in (
                "procedure",
                "flap_kind",
                "site",
                "side",
                "surgery_end_at",
                "surgeon",
                "buried",
            )
        }
        changed = {name: getattr(body, name) for name in sent if getattr(body, name) is not None}
        flap = patient_service.update_reconstruction(
            session,
            actor,
            reconstruction_id,
            patient_service.ReconstructionDetails(**{**current, **changed}),
        )
    if body.status is not None:
        flap = patient_service.set_reconstruction_status(
            session,
            actor,
            reconstruction_id,
            body.status,
            note=body.status_note,
            time_zero=body.time_zero,
            now=_now(),
        )
    return _reconstructions(session, [flap])[0]


# --- photos ----------------------------------------------------------------------------------


def _photo(photo: Photo, people: dict[int, str]) -> schemas.Photo:
    return schemas.Photo(
        id=photo.id,
        reconstruction_id=photo.reconstruction_id,
        check_id=photo.check_id,
        not_done_id=photo.not_done_id,
        taken_at=photo.taken_at,
        uploaded_at=photo.uploaded_at,
        uploaded_by=people.get(photo.uploaded_by_id),
        width=photo.width,
        height=photo.height,
        original_format=photo.original_format,
        original_sha256=photo.original_sha256,
        display_sha256=photo.display_sha256,
        thumbnail_sha256=photo.thumbnail_sha256,
        url=url_for("api.get_photo", photo_id=photo.id),
        thumbnail_url=url_for("api.get_photo_thumbnail", photo_id=photo.id),
    )


def _photo_list(session: Session, photos: list[Photo]) -> schemas.PhotoList:
    ids = {photo.uploaded_by_id for photo in photos}
    people = dict(session.execute(select(User.id, User.username).where(User.id.in_(ids))).all())
    return schemas.PhotoList(photos=[_photo(photo, people) for photo in photos])


@operation(
    "POST",
    "/checks/{check_id}/photos",
    summary="Add photos to a check",
    tag="photos",
    roles=CLINICAL,
    upload="photos",
    response=schemas.PhotoList,
    status=201,
    errors=(413, 415, 422),
    description="1 to 3 photos of the flap (multipart/form-data, each a part named `photos`) "
    "with a check (any of its versions: they stay with it through corrections), when the "
    "patient agreed to photographs (`photo_consent`). Each is read by its content (JPEG, PNG "
    "or HEIC; at most 20 MB and 50 megapixels), turned upright, converted to sRGB and stored "
    "as a display-size JPEG and a thumbnail with no metadata at all (no EXIF, location or "
    "device serial). A photo the check already has (the same file sent again) is not stored "
    "twice. At most 3 a check.",
)
def add_check_photos(
    actor: Actor, session: Session, check_id: int, uploads: list[Upload] | None
) -> Reply:
    photo_service.check_of_unit(session, actor, check_id)  # 404 before anything is said
    prepared = photo_service.prepare_uploads(require_uploads(uploads, "photos"))
    photos = photo_service.attach_photos(
        session, actor, photo_store(), prepared, check_id=check_id, now=_now()
    )
    return Reply(_photo_list(session, photos))


@operation(
    "GET",
    "/reconstructions/{reconstruction_id}/photos",
    summary="List a flap's photos",
    tag="photos",
    roles=READERS,
    response=schemas.PhotoList,
    description="Oldest first; a photo hidden as entered in error is left out.",
)
def list_photos(actor: Actor, session: Session, reconstruction_id: int) -> schemas.PhotoList:
    patient_service.get_reconstruction(session, actor, reconstruction_id)
    photos = photo_service.photos_of(session, [reconstruction_id])[reconstruction_id]
    return _photo_list(session, photos)


_PHOTO_WORDS = (
    "Served to the staff of the flap's unit only (404 to anyone else), never to be cached "
    "(`Cache-Control: no-store`), `Content-Disposition: inline`."
)


@operation(
    "GET",
    "/photos/{photo_id}",
    summary="Read a photo (JPEG, display size)",
    tag="photos",
    roles=READERS,
    response=None,
    media_type="image/jpeg",
    description=_PHOTO_WORDS,
)
def get_photo(actor: Actor, session: Session, photo_id: int) -> Response:
    return photo_response(actor, photo_id, "display")


@operation(
    "GET",
    "/photos/{photo_id}/thumbnail",
    summary="Read a photo's thumbnail (JPEG)",
    tag="photos",
    roles=READERS,
    response=None,
    media_type="image/jpeg",
    description=_PHOTO_WORDS,
)
def get_photo_thumbnail(actor: Actor, session: Session, photo_id: int) -> Response:
    return photo_response(actor, photo_id, "thumbnail")


# --- checks ----------------------------------------------------------------------------------


def _check_fields(
    check: Check, recorded_by: str | None, rule_version: int | None
) -> dict[str, Any]:
    """`recorded_by`: who wrote this version; who took the check is the first version's."""
    taken_by = recorded_by if check.taken_by_id == check.recorded_by_id else None
    if taken_by is None and check.taken_by is not None:
        taken_by = check.taken_by.username
    return {
        "id": check.id,
        "reconstruction_id": check.reconstruction_id,
        "taken_at": check.taken_at,
        "taken_by": taken_by,
        "recorded_at": check.recorded_at,
        "recorded_by": recorded_by,
        "late_entry": check.late_entry,
        **{name: getattr(check, name) for name in (*ASSESSMENT_FIELDS, "notes", "severity")},
        "temperature_difference_c": check.temperature_difference_c,
        "source": check.source,
        "device": check.device,
        "rule_set_version": rule_version,
        "version": check.version,
        "amends_id": check.amends_id,
        "entered_in_error": check.entered_in_error,
        "amendment_reason": check.amendment_reason,
        "flags": [
            schemas.Flag(
                rule_id=flag.rule_id,
                name=flag.rule_name,
                severity=flag.severity,
                action=flag.action,
                reasons=list(flag.reasons),
            )
            for flag in check.flags
        ],
    }


@operation(
    "GET",
    "/reconstructions/{reconstruction_id}/checks",
    summary="List a flap's checks",
    tag="checks",
    roles=READERS,
    query=schemas.Paged,
    response=schemas.CheckPage,
    description="Newest first by the time each was taken, with the flags each raised.",
)
def list_checks(
    actor: Actor, session: Session, reconstruction_id: int, query: schemas.Paged
) -> schemas.CheckPage:
    before = decode_cursor(query.cursor, (str, int))
    position = None
    if before is not None:
        try:
            position = (datetime.fromisoformat(before[0]), before[1])
        except ValueError:
            position = None
        if position is None or position[0].tzinfo is None:
            raise ApiError(
                400,
                "invalid_request",
                "The cursor is not valid.",
                {"cursor": "Not a cursor from this list."},
            )
    checks = records.checks_page(session, actor, reconstruction_id, position, query.limit + 1)
    checks, cursor = _page(checks, query.limit, lambda c: [c.taken_at.isoformat(), c.id])
    versions = records.rule_set_version_numbers(
        session, {c.rule_set_version_id for c in checks if c.rule_set_version_id}
    )
    items = [
        schemas.Check(
            **_check_fields(
                check,
                check.recorded_by.username if check.recorded_by else None,
                versions.get(check.rule_set_version_id or 0),
            )
        )
        for check in checks
    ]
    return schemas.CheckPage(
        items=items,
        next_cursor=cursor,
    )


@operation(
    "POST",
    "/reconstructions/{reconstruction_id}/checks",
    summary="Record a check",
    tag="checks",
    roles=CLINICAL,
    body=schemas.CheckCreate,
    response=schemas.RecordedCheck,
    status=201,
    errors=(422,),
    description="Evaluated at once against the unit's rule set: the answer carries the "
    "flags raised (with what to do), the escalation opened or added to, and when the "
    "next check falls due. Retry with the same Idempotency-Key after a dropped "
    "connection: the check is never stored twice.",
)
def record_check(
    actor: Actor, session: Session, reconstruction_id: int, body: schemas.CheckCreate
) -> Reply:
    values = CheckValues(**body.model_dump(exclude={"source", "device"}))
    recorded = check_service.record_check(
        session, actor, reconstruction_id, values, source=body.source, device=body.device
    )
    return recorded_check_reply(session, actor, reconstruction_id, recorded)


def _next_due_of(session: Session, reconstruction_id: int) -> datetime | None:
    (progress,) = records.progress_of(
        session, [session.get_one(Reconstruction, reconstruction_id)], _now()
    )
    return progress.next_due_at


def _pause_answer(session: Session, pause: MonitoringPause) -> schemas.PauseAnswer:
    return schemas.PauseAnswer(
        id=pause.id,
        reconstruction_id=pause.reconstruction_id,
        reason=pause.reason,
        note=pause.note,
        since=pause.started_at,
        expected_until=pause.expected_until,
        ended_at=pause.ended_at,
        next_due_at=_next_due_of(session, pause.reconstruction_id),
    )


@operation(
    "POST",
    "/reconstructions/{reconstruction_id}/pause",
    summary="Pause a flap's monitoring",
    tag="checks",
    roles=CLINICAL,
    body=schemas.PauseStart,
    response=schemas.PauseAnswer,
    status=201,
    errors=(422,),
    description="In theatre, at imaging, off the ward: while paused nothing falls due, the "
    "sweep records no missed check and opens no escalation, and the reconstruction shows its "
    "`pause` with `next_due_at` null. A flap with an open escalation is refused (422, field "
    "`despite_open_escalation`) unless sent again with `despite_open_escalation: true`.",
)
def pause_monitoring(
    actor: Actor, session: Session, reconstruction_id: int, body: schemas.PauseStart
) -> Reply:
    pause = monitoring_service.start_pause(
        session,
        actor,
        reconstruction_id,
        reason=body.reason,
        note=body.note,
        expected_minutes=body.expected_minutes,
        despite_open_escalation=body.despite_open_escalation,
    )
    return Reply(_pause_answer(session, pause), status=201)


@operation(
    "POST",
    "/reconstructions/{reconstruction_id}/resume",
    summary="Resume a flap's monitoring",
    tag="checks",
    roles=CLINICAL,
    body=schemas.PauseEnd,
    response=schemas.PauseAnswer,
    errors=(422,),
    description="Ends the pause: the next check is due at once and overdue only after the "
    "unit's grace period. A nurse's check recorded during a pause ends it too.",
)
def resume_monitoring(
    actor: Actor, session: Session, reconstruction_id: int, body: schemas.PauseEnd
) -> Reply:
    pause = monitoring_service.resume(session, actor, reconstruction_id, note=body.note)
    return Reply(_pause_answer(session, pause))


def _override(override: ScheduleOverride, next_due_at: datetime | None) -> schemas.ScheduleOverride:
    return schemas.ScheduleOverride(
        **_override_brief(override).model_dump(),
        reconstruction_id=override.reconstruction_id,
        set_at=override.set_at,
        set_by=override.set_by.username if override.set_by else None,
        replaces=override.replaces_id,
        planned_ends_at=override.ends_at,
        withdrawn_at=override.withdrawn_at,
        withdrawn_by=override.withdrawn_by.username if override.withdrawn_by else None,
        withdraw_note=override.withdraw_note,
        next_due_at=next_due_at,
    )


@operation(
    "GET",
    "/reconstructions/{reconstruction_id}/schedule-overrides",
    summary="List a flap's own schedules",
    tag="checks",
    roles=READERS,
    response=schemas.ScheduleOverrideList,
    description="Every version of the schedules a surgeon set for this flap over a window, "
    "withdrawn ones too, oldest first.",
)
def list_schedule_overrides(actor: Actor, session: Session, reconstruction_id: int) -> Reply:
    patient_service.get_reconstruction(session, actor, reconstruction_id)
    due = _next_due_of(session, reconstruction_id)
    overrides = monitoring_service.overrides_of(session, reconstruction_id)
    return Reply(schemas.ScheduleOverrideList(items=[_override(o, due) for o in overrides]))


@operation(
    "POST",
    "/reconstructions/{reconstruction_id}/schedule-overrides",
    summary="Set a flap's own schedule for a window",
    tag="checks",
    roles=SCHEDULERS,
    body=schemas.ScheduleOverrideCreate,
    response=schemas.ScheduleOverride,
    status=201,
    errors=(422,),
    description="A surgeon's order for one flap, in place of the unit's schedule over "
    "[starts_at, ends_at): checks every `interval_minutes` (`kind: interval`, e.g. every 15 "
    "minutes for 2 hours after a worrying sign) or none (`kind: omit`, e.g. 01:00–05:00 on "
    "night 2; at most 12 hours). Due times, the overdue sweep and the compliance report follow "
    "it inside its window only. It starts now or later, never in the past, and overlaps no "
    "other still to run unless it `replaces` it. Audited; answers with the flap's next due "
    "time under it.",
)
def create_schedule_override(
    actor: Actor, session: Session, reconstruction_id: int, body: schemas.ScheduleOverrideCreate
) -> Reply:
    now = _now()
    ends_at = body.ends_at
    if body.duration_minutes is not None:
        if ends_at is not None:
            raise InvalidInput(
                "The flap's schedule was not changed.",
                {"duration_minutes": "Give either ends_at or duration_minutes, not both."},
            )
        ends_at = (body.starts_at or now) + timedelta(minutes=body.duration_minutes)
    override = monitoring_service.set_override(
        session,
        actor,
        reconstruction_id,
        kind=body.kind,
        interval_minutes=body.interval_minutes,
        starts_at=body.starts_at,
        ends_at=ends_at,
        reason=body.reason,
        replaces=body.replaces,
        now=now,
    )
    return Reply(_override(override, _next_due_of(session, reconstruction_id)), status=201)


@operation(
    "POST",
    "/schedule-overrides/{override_id}/withdraw",
    summary="Withdraw a flap's own schedule",
    tag="checks",
    roles=SCHEDULERS,
    body=schemas.ScheduleOverrideWithdraw,
    response=schemas.ScheduleOverride,
    errors=(422,),
    description="Ends it from now (one not yet begun is never in force): the unit's schedule "
    "rules again. What it made due before now stays as it was.",
)
def withdraw_schedule_override(
    actor: Actor, session: Session, override_id: int, body: schemas.ScheduleOverrideWithdraw
) -> Reply:
    override = monitoring_service.withdraw_override(session, actor, override_id, note=body.note)
    return Reply(_override(override, _next_due_of(session, override.reconstruction_id)))


@operation(
    "POST",
    "/reconstructions/{reconstruction_id}/checks-not-done",
    summary="Record a check not done",
    tag="checks",
    roles=CLINICAL,
    body=schemas.CheckNotDoneCreate,
    response=schemas.CheckNotDone,
    status=201,
    errors=(422,),
    description="The patient refused, was off the ward, the dressing could not be removed: "
    "kept in the log and the compliance report (apart from missed checks), never an "
    "assessment. The next check falls due the unit's `not_done_minutes` after it.",
)
def record_check_not_done(
    actor: Actor, session: Session, reconstruction_id: int, body: schemas.CheckNotDoneCreate
) -> Reply:
    not_done = monitoring_service.record_not_done(
        session,
        actor,
        reconstruction_id,
        taken_at=body.taken_at,
        reason=body.reason,
        note=body.note,
    )
    return Reply(
        schemas.CheckNotDone(
            id=not_done.id,
            reconstruction_id=not_done.reconstruction_id,
            taken_at=not_done.taken_at,
            reason=not_done.reason,
            note=not_done.note,
            recorded_at=not_done.recorded_at,
            recorded_by=actor.username,
            next_due_at=_next_due_of(session, reconstruction_id),
        ),
        status=201,
    )


@operation(
    "POST",
    "/reconstructions/{reconstruction_id}/readings",
    summary="Record a device's readings",
    tag="checks",
    roles=CLINICAL,
    body=schemas.ReadingBatch,
    response=schemas.RecordedReadings,
    status=201,
    errors=(422,),
    description="A batch of one device's timed readings (StO₂, temperatures, Doppler), "
    "stored as checks with source 'device', oldest first, each judged by the unit's rules as "
    "it comes (a falling StO₂ flags and escalates). Readings never satisfy the bedside "
    "schedule. All or none; sending a batch again stores nothing twice (a reading of the same "
    "device at the same time with the same values is in `already_stored`); a different "
    "reading at a time already stored is refused (422 naming it), never put over the first.",
)
def record_readings(
    actor: Actor, session: Session, reconstruction_id: int, body: schemas.ReadingBatch
) -> Reply:
    readings = [CheckValues(**reading.model_dump()) for reading in body.readings]
    recorded = check_service.record_readings(
        session, actor, reconstruction_id, body.device, readings
    )
    versions = records.rule_set_version_numbers(
        session, {c.rule_set_version_id for c in recorded.stored if c.rule_set_version_id}
    )
    model = schemas.RecordedReadings(
        stored=[
            schemas.Check(
                **_check_fields(check, actor.username, versions.get(check.rule_set_version_id or 0))
            )
            for check in recorded.stored
        ],
        already_stored=[check.id for check in recorded.already],
        next_due_at=recorded.next_due_at,
        escalation_id=recorded.escalation.id if recorded.escalation else None,
    )
    return Reply(
        model,
        status=201 if recorded.stored else 200,
        location=url_for("api.list_checks", reconstruction_id=reconstruction_id),
    )


def recorded_check_answer(
    session: Session, actor: Actor, reconstruction_id: int, recorded: check_service.RecordedCheck
) -> Answer:
    """The answer to a recorded check as it is kept under an Idempotency-Key: create_app hands
    it to the ward's form, so that a check the form saved with a key and the tablet sends
    again through the API gets this answer, not a second check."""
    return recorded_check_reply(session, actor, reconstruction_id, recorded).answer(201)


def recorded_check_reply(
    session: Session, actor: Actor, reconstruction_id: int, recorded: check_service.RecordedCheck
) -> Reply:
    """The API's answer to a recorded check."""
    check = recorded.check
    version = records.rule_set_version_numbers(session, {check.rule_set_version_id or 0})
    model = schemas.RecordedCheck(
        **_check_fields(check, actor.username, version.get(check.rule_set_version_id or 0)),
        escalation_id=recorded.escalation.id if recorded.escalation else None,
        next_due_at=recorded.next_due_at,
    )
    return Reply(
        model,
        status=201,
        location=url_for("api.list_checks", reconstruction_id=reconstruction_id)
        + f"#check-{check.id}",
    )


@operation(
    "POST",
    "/checks/{check_id}/amendments",
    summary="Correct a check",
    tag="checks",
    roles=CLINICAL,
    body=schemas.CheckAmendment,
    response=schemas.AmendedCheck,
    status=201,
    errors=(422,),
    description="A correction with a reason: the whole corrected check in `values`, or "
    "`entered_in_error: true` to withdraw it (wrong patient). The check as recorded is never "
    "changed: the correction is its next version, judged again by the unit's rules (a new "
    "sign escalates as a new check would; `flags_before` and `flags` show the change). Only "
    "the latest version can be corrected (422 otherwise).",
)
def amend_check(
    actor: Actor, session: Session, check_id: int, body: schemas.CheckAmendment
) -> Reply:
    amended = check_service.amend_check(
        session,
        actor,
        check_id,
        reason=body.reason,
        values=CheckValues(**body.values.model_dump()) if body.values is not None else None,
        entered_in_error=body.entered_in_error,
    )
    check = amended.check
    version = records.rule_set_version_numbers(session, {check.rule_set_version_id or 0})
    escalation = escalation_service.open_escalation_of(session, check.reconstruction_id)
    model = schemas.AmendedCheck(
        **_check_fields(check, actor.username, version.get(check.rule_set_version_id or 0)),
        flags_before=amended.flags_before,
        next_due_at=amended.next_due_at,
        escalation_id=escalation.id if escalation else None,
    )
    return Reply(
        model,
        location=url_for("api.list_checks", reconstruction_id=check.reconstruction_id)
        + f"#check-{check.id}",
    )


# --- escalations -----------------------------------------------------------------------------


def _escalation_fields(escalation: Escalation) -> dict[str, Any]:
    reconstruction = escalation.reconstruction
    return {
        "id": escalation.id,
        "reconstruction_id": escalation.reconstruction_id,
        "patient_id": reconstruction.patient_id,
        "unit": reconstruction.patient.unit.code,
        "status": escalation.status,
        "severity": escalation.severity,
        "reasons": list(escalation.reasons),
        "opened_at": escalation.opened_at,
        "opened_by_check_id": escalation.opened_by_check_id,
        "acknowledged_at": escalation.acknowledged_at,
        "acknowledged_by": escalation.acknowledged_by.username
        if escalation.acknowledged_by
        else None,
        "outcome": escalation.outcome,
        "note": escalation.note,
        "closed_at": escalation.closed_at,
        "attending": {
            "by": escalation.attending_by.username if escalation.attending_by else None,
            "answered_at": escalation.attending_at,
            "expected_at": escalation.attending_expected_at,
        }
        if escalation.attending_at is not None
        else None,
        "chain_level": escalation.chain_level,
    }


def _escalation_detail(session: Session, escalation: Escalation) -> schemas.EscalationWithEvents:
    names = records.usernames(session, {event.actor_id for event in escalation.events})
    return schemas.EscalationWithEvents(
        **_escalation_fields(escalation),
        events=[
            schemas.EscalationEvent(
                id=event.id,
                at=event.at,
                kind=event.kind,
                severity=event.severity,
                check_id=event.check_id,
                by=names.get(event.actor_id) if event.actor_id else None,
                reasons=list(event.reasons),
            )
            for event in escalation.events
        ],
    )


@operation(
    "GET",
    "/escalations",
    summary="List escalations",
    tag="escalations",
    roles=READERS,
    query=schemas.EscalationFilter,
    response=schemas.EscalationPage,
    description="Oldest first. `status=open` lists those no surgeon has acknowledged.",
)
def list_escalations(
    actor: Actor, session: Session, query: schemas.EscalationFilter
) -> schemas.EscalationPage:
    after = decode_cursor(query.cursor, (int,))
    escalations = records.escalations_page(
        session, actor, query.unit, query.status, after[0] if after else None, query.limit + 1
    )
    escalations, cursor = _page(escalations, query.limit, lambda e: [e.id])
    return schemas.EscalationPage(
        items=[schemas.Escalation(**_escalation_fields(e)) for e in escalations],
        next_cursor=cursor,
    )


@operation(
    "GET",
    "/escalations/{escalation_id}",
    summary="Read an escalation and its timeline",
    tag="escalations",
    roles=READERS,
    response=schemas.EscalationWithEvents,
)
def get_escalation(
    actor: Actor, session: Session, escalation_id: int
) -> schemas.EscalationWithEvents:
    return _escalation_detail(session, records.get_escalation(session, actor, escalation_id))


@operation(
    "POST",
    "/escalations/{escalation_id}/acknowledge",
    summary="Acknowledge an escalation with an outcome",
    tag="escalations",
    roles=REVIEWERS,
    body=schemas.Acknowledgement,
    response=schemas.EscalationWithEvents,
    errors=(422,),
    description="`return_to_theatre` also sets the flap's status.",
)
def acknowledge_escalation(
    actor: Actor, session: Session, escalation_id: int, body: schemas.Acknowledgement
) -> schemas.EscalationWithEvents:
    escalation_service.acknowledge_escalation(
        session,
        actor,
        escalation_id,
        outcome=body.outcome,
        note=body.note,
        seen_event_id=body.seen_event_id,
    )
    return _escalation_detail(session, records.get_escalation(session, actor, escalation_id))


@operation(
    "POST",
    "/escalations/{escalation_id}/attending",
    summary="Answer 'I'm coming', with when you expect to be at the bedside",
    tag="escalations",
    roles=REVIEWERS,
    body=schemas.AttendingAnswer,
    response=schemas.EscalationWithEvents,
    errors=(422,),
    description="Before the decision: the ward sees who is coming and when, and the "
    "escalation chain stops paging for the signs so far (a later sign pages again). The "
    "decision follows with `acknowledge`.",
)
def attend_escalation(
    actor: Actor, session: Session, escalation_id: int, body: schemas.AttendingAnswer
) -> schemas.EscalationWithEvents:
    escalation_service.attend_escalation(
        session,
        actor,
        escalation_id,
        expected_minutes=body.expected_minutes,
        note=body.note,
        seen_event_id=body.seen_event_id,
    )
    return _escalation_detail(session, records.get_escalation(session, actor, escalation_id))


@operation(
    "POST",
    "/escalations/{escalation_id}/close",
    summary="Close an escalation",
    tag="escalations",
    roles=REVIEWERS,
    body=schemas.Closing,
    response=schemas.EscalationWithEvents,
    errors=(422,),
    description="Once acknowledged; the flap's next sign opens a new escalation.",
)
def close_escalation(
    actor: Actor, session: Session, escalation_id: int, body: schemas.Closing
) -> schemas.EscalationWithEvents:
    escalation_service.close_escalation(session, actor, escalation_id, note=body.note)
    return _escalation_detail(session, records.get_escalation(session, actor, escalation_id))


# --- exports ---------------------------------------------------------------------------------

_EXPORT_WORDS = (
    "CSV (RFC 4180, UTF-8, a header row; columns as in the README), streamed. Times ISO 8601 "
    "with their offset on the unit's clock; `from` and `to` are whole days on that clock, both "
    "included (UTC without a unit). Text cells that a spreadsheet would run as a formula are "
    "prefixed with an apostrophe. Each export is recorded in the audit trail."
)


def _export_operation(kind: str, summary: str, extra: str = "") -> Any:
    return operation(
        "GET",
        f"/exports/{kind}.csv",
        summary=summary,
        tag="exports",
        roles=EXPORTERS,
        query=schemas.ExportQuery,
        response=None,
        media_type="text/csv",
        errors=(422,),
        description=f"{_EXPORT_WORDS}{extra}",
    )


def _export(actor: Actor, kind: str, query: schemas.ExportQuery) -> Response:
    return export_response(actor, kind, query.unit, query.from_, query.to)


@_export_operation(
    "checks", "Export checks", " One row per check: its current version, flags and late entry."
)
def export_checks(actor: Actor, session: Session, query: schemas.ExportQuery) -> Response:
    return _export(actor, "checks", query)


@_export_operation("amendments", "Export corrections", " One row per correction made.")
def export_amendments(actor: Actor, session: Session, query: schemas.ExportQuery) -> Response:
    return _export(actor, "amendments", query)


@_export_operation("escalations", "Export escalations", " One row per escalation opened.")
def export_escalations(actor: Actor, session: Session, query: schemas.ExportQuery) -> Response:
    return _export(actor, "escalations", query)


@_export_operation(
    "not_done", "Export checks not done", " One row per check not done, with its reason."
)
def export_not_done(actor: Actor, session: Session, query: schemas.ExportQuery) -> Response:
    return _export(actor, "not_done", query)


@_export_operation(
    "audit", "Export the audit trail", " The whole trail for the period (no unit: 422)."
)
def export_audit(actor: Actor, session: Session, query: schemas.ExportQuery) -> Response:
    return _export(actor, "audit", query)


@operation(
    "GET",
    "/exports/workbook.xlsx",
    summary="Export everything as a workbook",
    tag="exports",
    roles=EXPORTERS,
    query=schemas.ExportQuery,
    response=None,
    media_type=XLSX,
    errors=(422,),
    description="One XLSX workbook with a sheet per export (checks, corrections, escalations; "
    "the audit trail too when no unit is given), the same columns and filters as the CSV "
    "files. Text cells are text, never formulas; times are ISO 8601 text with their offset.",
)
def export_workbook(actor: Actor, session: Session, query: schemas.ExportQuery) -> Response:
    return workbook_response(actor, query.unit, query.from_, query.to)


@_export_operation(
    "compliance",
    "Export the compliance report",
    " The compliance report of the unit (of every unit without one) as a long table, one "
    "figure a row: unit, from, to, section, group, measure, value (sections as in the README). "
    "Without `from` it starts at the unit's first surgery; without `to` it ends today.",
)
def export_compliance(actor: Actor, session: Session, query: schemas.ExportQuery) -> Response:
    return compliance_csv_response(actor, query.unit, query.from_, query.to)


@operation(
    "GET",
    "/exports/fhir",
    summary="Export as a FHIR R4 Bundle",
    tag="exports",
    roles=EXPORTERS,
    query=schemas.ExportQuery,
    response=None,
    media_type="application/fhir+json",
    errors=(422,),
    description="A FHIR R4 (4.0.1) Bundle of type `collection`, streamed: flapwatch's local "
    "CodeSystem, then each Patient with a Procedure per flap, an Observation per check taken "
    "in the period (its current version; the assessments as components, LOINC-coded where "
    "LOINC has them), and a Flag and a DetectedIssue per escalation opened in it. Same filters "
    "as the CSV exports; recorded in the audit trail.",
)
def export_fhir(actor: Actor, session: Session, query: schemas.ExportQuery) -> Response:
    return fhir_response(actor, query.unit, query.from_, query.to)


@operation(
    "GET",
    "/exports/research/{kind}",
    summary="Export de-identified, for research",
    tag="exports",
    roles=EXPORTERS,
    query=schemas.ResearchQuery,
    response=None,
    media_type="application/octet-stream",
    errors=(422,),
    description="`kind`: checks, amendments, escalations, not_done, compliance (CSV), "
    "workbook (XLSX) or fhir (JSON), de-identified with the server's research key "
    "(RESEARCH_KEY_FILE; 422 naming `pseudonymise` without one): the MRN as a keyed "
    "pseudonym, no name, age at surgery, times as hours since the end of surgery, no staff, "
    "free text only with `notes=true`. The audit trail cannot be de-identified (422). "
    "Recorded in the audit trail as pseudonymised.",
)
def export_research(
    actor: Actor, session: Session, kind: str, query: schemas.ResearchQuery
) -> Response:
    return research_response(actor, kind, query.unit, query.from_, query.to, with_notes=query.notes)
