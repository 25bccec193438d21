"""The API's JSON, as pydantic models: they validate what comes in (once, at the edge) and
are the OpenAPI document's schemas, so the document cannot drift from what is checked.

Field names and enum values are DESIGN.md §2's. Times go out as ISO 8601 with a UTC offset
and must come in with an offset: a clinical time without its zone would be a guess.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    model_serializer,
    model_validator,
)

from flapwatch.domain.checks import (
    AMENDMENT_REASON_MAX_LENGTH,
    CAPILLARY_REFILL_S_RANGE,
    DEVICE_NAME_MAX_LENGTH,
    NOTES_MAX_LENGTH,
    READINGS_MAX,
    STO2_RANGE_PERCENT,
    TEMPERATURE_RANGE_C,
)
from flapwatch.domain.text import has_control_characters
from flapwatch.domain.vocabulary import (
    CapillaryRefill,
    CheckSource,
    Colour,
    DopplerArterial,
    DopplerVenous,
    DueState,
    EscalationEventKind,
    EscalationOutcome,
    FinalOutcome,
    FlapKind,
    NotDoneReason,
    OverrideKind,
    PauseReason,
    Pinprick,
    ReconstructionStatus,
    Role,
    Severity,
    Side,
    TheatreFinding,
    TheatreResult,
    Turgor,
)

# PostgreSQL's integer: an id beyond it names nothing (and must not reach the database).
MAX_ID = 2**31 - 1


def _no_control_characters(text: str) -> str:
    """flapwatch.domain.text: tabs and line breaks only."""
    if has_control_characters(text):
        raise ValueError("must not contain control characters")
    return text


def _one_line(text: str) -> str:
    if any(c in text for c in "\t\n\r"):
        raise ValueError("must be a single line")
    return text


Text = Annotated[str, AfterValidator(_no_control_characters)]
Line = Annotated[str, AfterValidator(_no_control_characters), AfterValidator(_one_line)]
Instant = Annotated[
    datetime,
    PlainSerializer(lambda at: at.isoformat(), return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
Id = Annotated[int, Field(ge=1, le=MAX_ID)]


class Incoming(BaseModel):
    """A request body: exact types, no unknown fields (a misspelt field is an error, not
    silently dropped)."""

    model_config = ConfigDict(strict=True, extra="forbid")


class Outgoing(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _range(bounds: tuple[float, float]) -> Any:
    return Field(default=None, ge=bounds[0], le=bounds[1], allow_inf_nan=False)


# --- who is calling --------------------------------------------------------------------------


class Me(Outgoing):
    username: str
    display_name: str
    role: Role
    units: list[str] = Field(description="Codes of the units this account works in.")
    all_units: bool = Field(description="Administrators and auditors see every unit.")


# --- units -----------------------------------------------------------------------------------


class ScheduleBand(Outgoing):
    until_hour: int = Field(description="Hours since the end of surgery this band lasts to.")
    interval_minutes: int


class Schedule(Outgoing):
    version: int
    bands: list[ScheduleBand]
    grace_minutes: int
    after_last_band_minutes: int
    not_done_minutes: int = Field(
        description="The next check falls due this long after one not done."
    )


class Unit(Outgoing):
    code: str
    name: str
    timezone: str = Field(description="IANA time zone of the ward clock.")
    schedule: Schedule
    rule_set_version: int


class UnitCreate(Incoming):
    code: Annotated[str, Field(pattern=r"^[A-Z0-9][A-Z0-9-]{1,31}$", examples=["PLAST-W3"])]
    name: Annotated[Line, Field(min_length=1, max_length=200)]
    timezone: Annotated[Line, Field(min_length=1, max_length=64, examples=["Europe/London"])]


# --- rule sets -------------------------------------------------------------------------------


class AtLeast(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    at_least: Annotated[int, Field(ge=1, le=100)]


ConditionOp = Literal[
    "in",
    "not_in",
    ">=",
    ">",
    "<=",
    "<",
    "==",
    "drop_since_previous",
    "rise_since_previous",
    "drop_within",
    "changed_from",
]


class Condition(BaseModel):
    """One test on a check's field (DESIGN.md §2): `value` for in/not_in (a list) and the
    numeric operators (a number), `minutes` with drop_within, `from`/`to` with changed_from."""

    model_config = ConfigDict(strict=True, extra="forbid", populate_by_name=True)
    field: Annotated[str, Field(max_length=64)]
    op: ConditionOp
    value: list[Annotated[str, Field(max_length=64)]] | float | None = None
    minutes: Annotated[int, Field(ge=1, le=100_000)] | None = None
    from_: Annotated[
        list[Annotated[str, Field(max_length=64)]] | None, Field(alias="from", max_length=20)
    ] = None
    to: Annotated[list[Annotated[str, Field(max_length=64)]] | None, Field(max_length=20)] = None

    @model_serializer(mode="wrap")
    def _without_unused(self, serialize: Any):  # noqa: ANN202 - keeps the model's schema
        return {name: value for name, value in serialize(self).items() if value is not None}


class Rule(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    id: Annotated[str, Field(max_length=64, examples=["venous"])]
    name: Annotated[Line, Field(max_length=200)]
    severity: Severity
    action: Annotated[Text, Field(max_length=1000)] = ""
    match: Literal["any", "all"] | AtLeast = "any"
    enabled: bool = True
    recheck_minutes: Annotated[int, Field(ge=5, le=240)] | None = Field(
        default=None,
        description="While the escalation this rule opened is unacknowledged, the next check "
        "falls due this many minutes after the latest (the default rules: red 15, amber 30).",
    )
    conditions: Annotated[list[Condition], Field(max_length=50)] = Field(default_factory=list)


class RuleSetPublish(Incoming):
    rules: Annotated[list[Rule], Field(max_length=100)]
    note: Annotated[Text, Field(min_length=1, max_length=2000, description="Why it changes.")]


class RuleSetVersion(Outgoing):
    unit: str
    version: int
    note: str
    created_at: Instant
    created_by: str | None
    rules: list[Rule]


class RuleSetVersionSummary(Outgoing):
    version: int
    note: str
    created_at: Instant
    created_by: str | None


# --- escalation chains and contacts ------------------------------------------------------------


class LiveEventsQuery(BaseModel):
    """Query parameters of a unit's event stream."""

    model_config = ConfigDict(extra="forbid")
    after: int | None = Field(
        default=None,
        ge=0,
        le=MAX_ID,
        description="Start after this event id (a `Last-Event-ID` header wins); default: now.",
    )


class WebhookChannel(Incoming):
    kind: Literal["webhook"]
    url: Annotated[Line, Field(min_length=1, max_length=500)] = Field(
        description="http(s) address the page is POSTed to as JSON, with its level and target."
    )


class EmailChannel(Incoming):
    kind: Literal["email"]
    address: Annotated[Line, Field(min_length=3, max_length=254)] = Field(
        description="One e-mail address; the mail names no patient and links to the escalation."
    )


class PushChannel(Incoming):
    kind: Literal["push"]
    user: Annotated[Line, Field(min_length=2, max_length=64)] = Field(
        description="The username of an account on the unit: every phone where it turned on "
        "notifications (the escalation queue's button) gets a Web Push notification."
    )


Channel = Annotated[WebhookChannel | EmailChannel | PushChannel, Field(discriminator="kind")]


class Contact(Incoming):
    name: Annotated[Line, Field(min_length=1, max_length=100)] = Field(
        description="A person or an on-call role, e.g. 'Registrar on call'."
    )
    channels: list[Channel] = Field(default_factory=list, max_length=5)


class ContactsPublish(Incoming):
    note: Annotated[Text, Field(min_length=1, max_length=2000)]
    contacts: list[Contact] = Field(max_length=50)


class Contacts(Outgoing):
    unit: str
    version: int
    note: str
    created_at: Instant
    created_by: str | None
    contacts: list[Contact]


class ChainStep(Incoming):
    after_minutes: int = Field(
        ge=0, le=1440, description="Minutes without acknowledgement after the chain started."
    )
    notify: Annotated[Line, Field(min_length=1, max_length=100)] = Field(
        description="The name of one of the unit's contacts."
    )


class Chains(Incoming):
    red: list[ChainStep] = Field(min_length=1, max_length=10)
    amber: list[ChainStep] = Field(min_length=1, max_length=10)


class ChainPublish(Incoming):
    note: Annotated[Text, Field(min_length=1, max_length=2000)]
    chains: Chains


class EscalationChain(Outgoing):
    unit: str
    version: int
    note: str
    created_at: Instant
    created_by: str | None
    chains: Chains


# --- patients and reconstructions ----------------------------------------------------------


class Patient(Outgoing):
    id: int
    mrn: str
    name: str
    date_of_birth: date
    unit: str
    bed: str | None


class PatientCreate(Incoming):
    mrn: Annotated[Line, Field(min_length=1, max_length=32)]
    name: Annotated[Line, Field(min_length=1, max_length=200)]
    date_of_birth: date
    unit: Annotated[Line, Field(min_length=1, max_length=32)]
    bed: Annotated[Line, Field(max_length=32)] | None = None


class Reconstruction(Outgoing):
    id: int
    patient_id: int
    unit: str
    procedure: str
    flap_kind: FlapKind
    site: str
    side: Side
    surgery_end_at: Instant
    surgeon: str
    buried: bool
    status: ReconstructionStatus
    next_due_at: Instant | None = Field(
        description="Null once monitoring has ended, and while it is paused."
    )
    due_state: DueState | None
    last_check_at: Instant | None = Field(description="The last bedside check.")
    open_escalation_id: int | None
    pause: Pause | None = Field(description="The pause in force, or null.")
    schedule_overrides: list[ScheduleOverrideBrief] = Field(
        description="The flap's own schedules in force now or still to come, soonest first."
    )
    theatre_returns: list[TheatreReturn] = Field(
        description="Each return to theatre, first first (`status` says whether it is in "
        "theatre now)."
    )
    final_outcome: FinalOutcomeRecord | None = Field(
        description="What became of the flap in the end, once recorded (at discharge or later)."
    )
    photo_consent: bool | None = Field(
        description="Whether the patient agreed to photographs of this flap: true, false "
        "(declined), or null (not asked). Photos are taken only with true."
    )


class Photo(Outgoing):
    id: int
    reconstruction_id: int
    check_id: int | None = Field(description="The check it was taken with (its first version).")
    not_done_id: int | None = Field(description="Or the check not done it was taken with.")
    taken_at: Instant = Field(description="Its check's time.")
    uploaded_at: Instant
    uploaded_by: str | None
    width: int
    height: int
    original_format: str = Field(description="JPEG, PNG or HEIC: what the camera sent.")
    original_sha256: str = Field(description="SHA-256 of the file as sent (not kept).")
    display_sha256: str = Field(description="SHA-256 of the display-size JPEG served.")
    thumbnail_sha256: str
    url: str = Field(description="The display-size JPEG (no metadata; never cached).")
    thumbnail_url: str


class PhotoList(Outgoing):
    photos: list[Photo]


class TheatreReturn(Outgoing):
    id: int
    number: int
    escalation_id: int | None = Field(description="The escalation whose decision sent it.")
    decided_at: Instant | None = Field(description="Null only where the history did not say.")
    decided_by: str | None
    knife_to_skin_at: Instant | None
    findings: TheatreFinding | None
    findings_note: str
    result: TheatreResult | None
    minutes_flag_to_decision: float | None = Field(
        description="From the first flag of its escalation to the decision."
    )
    minutes_flag_to_knife_to_skin: float | None = Field(
        description="From the first flag of its escalation to knife to skin."
    )
    provenance: str = Field(description="Set where the record was carried over, not recorded.")
    version: int = Field(description="Send it back with a change: a change meanwhile is refused.")


class TheatreReturnList(Outgoing):
    items: list[TheatreReturn]


class TheatreReturnCreate(Incoming):
    """A surgeon's decision to return the flap to theatre: it leaves the board until
    monitoring resumes."""

    decided_at: AwareDatetime | None = Field(
        default=None, description="When it was decided; now when left out."
    )
    note: Annotated[Text, Field(max_length=2000)] = ""


class TheatreReturnChange(Incoming):
    """What is known of the return: every field as it should now stand (null: not known)."""

    knife_to_skin_at: AwareDatetime | None = None
    findings: TheatreFinding | None = None
    findings_note: Annotated[Text, Field(max_length=2000)] = ""
    result: TheatreResult | None = None
    version: int = Field(description="The version read: a change made meanwhile is refused.")


class BackFromTheatre(Incoming):
    time_zero: Literal["restart", "continue"] = Field(
        description="`restart` counts the schedule's bands from now (the first band's checks "
        "again), `continue` from the end of the first surgery."
    )
    note: Annotated[Text, Field(max_length=2000)] = ""


class FinalOutcomeRecord(Outgoing):
    outcome: FinalOutcome
    on: date | None
    note: str
    recorded_by: str | None
    recorded_at: Instant | None


class FinalOutcomeSet(Incoming):
    """The final outcome, once monitoring has ended (stopped or discharged)."""

    outcome: FinalOutcome
    on: date = Field(description="The day it was known, on the unit's calendar.")
    note: Annotated[Text, Field(max_length=2000)] = ""


class ScheduleOverrideBrief(Outgoing):
    id: int
    version: int
    kind: OverrideKind
    interval_minutes: int | None = Field(description="Null when checks are omitted.")
    starts_at: Instant
    ends_at: Instant = Field(description="Its end, or its withdrawal if that came first.")
    reason: str


class ScheduleOverride(ScheduleOverrideBrief):
    reconstruction_id: int
    set_at: Instant
    set_by: str | None
    replaces: int | None = Field(description="The version this one replaced, if any.")
    planned_ends_at: Instant = Field(description="The end it was set with.")
    withdrawn_at: Instant | None
    withdrawn_by: str | None
    withdraw_note: str
    next_due_at: Instant | None = Field(
        description="The flap's next due time now (null while paused or no longer monitored)."
    )


class ScheduleOverrideCreate(Incoming):
    """A surgeon's schedule for one flap over a window, in place of the unit's."""

    kind: OverrideKind = Field(
        description="`interval`: checks every `interval_minutes`; `omit`: no checks at all "
        "(at most 12 hours)."
    )
    interval_minutes: Annotated[int, Field(ge=5, le=24 * 60)] | None = Field(
        default=None, description="Required for `interval`."
    )
    starts_at: AwareDatetime | None = Field(
        default=None, description="Now when left out; never in the past."
    )
    ends_at: AwareDatetime | None = Field(default=None, description="Or `duration_minutes`.")
    duration_minutes: Annotated[int, Field(ge=1, le=7 * 24 * 60)] | None = Field(
        default=None, description="How long from the start, instead of `ends_at`."
    )
    reason: Annotated[Text, Field(min_length=1, max_length=500)]
    replaces: Id | None = Field(
        default=None,
        description="A version still to run that this one replaces (withdrawn from now).",
    )


class ScheduleOverrideWithdraw(Incoming):
    note: Annotated[Text, Field(max_length=NOTES_MAX_LENGTH)] = ""


class ScheduleOverrideList(Outgoing):
    items: list[ScheduleOverride] = Field(description="Every version, oldest first.")


class Pause(Outgoing):
    reason: PauseReason
    note: str
    since: Instant
    expected_until: Instant | None


class PauseStart(Incoming):
    """Pause a flap's monitoring: nothing falls due and no missed check is recorded until it
    is resumed, when the next check is due at once."""

    reason: PauseReason
    note: Annotated[Text, Field(max_length=NOTES_MAX_LENGTH)] = Field(
        default="", description="Required when the reason is 'other'."
    )
    expected_minutes: Annotated[int, Field(ge=1, le=24 * 60)] | None = Field(
        default=None, description="When the flap is expected back, in minutes from now."
    )
    despite_open_escalation: bool = Field(
        default=False,
        description="Pause a flap with an open escalation anyway (refused with 422 otherwise; "
        "the escalation goes on climbing).",
    )


class PauseEnd(Incoming):
    note: Annotated[Text, Field(max_length=NOTES_MAX_LENGTH)] = ""


class PauseAnswer(Outgoing):
    id: int
    reconstruction_id: int
    reason: PauseReason
    note: str
    since: Instant
    expected_until: Instant | None
    ended_at: Instant | None
    next_due_at: Instant | None = Field(description="Null while paused.")


class CheckNotDoneCreate(Incoming):
    """A check that fell due and could not be done. Not an assessment: it satisfies no rule
    and does not reset the schedule's band; the next check falls due the unit's
    `not_done_minutes` (30 by default) after it."""

    taken_at: AwareDatetime = Field(description="When the check was attempted.")
    reason: NotDoneReason
    note: Annotated[Text, Field(max_length=NOTES_MAX_LENGTH)] = Field(
        default="", description="Required when the reason is 'other'."
    )


class CheckNotDone(Outgoing):
    id: int
    reconstruction_id: int
    taken_at: Instant
    reason: NotDoneReason
    note: str
    recorded_at: Instant
    recorded_by: str | None
    next_due_at: Instant | None


class FlapDetails(Incoming):
    procedure: Annotated[Line, Field(min_length=1, max_length=200, examples=["DIEP free flap"])]
    flap_kind: FlapKind
    site: Annotated[Line, Field(min_length=1, max_length=200)]
    side: Side
    surgery_end_at: AwareDatetime
    surgeon: Annotated[Line, Field(min_length=1, max_length=200)]
    buried: bool = False


class ReconstructionCreate(FlapDetails):
    patient_id: Id


class TransferCreate(Incoming):
    """Move the patient, with their flaps, to another ward at a moment."""

    to_unit: Annotated[Line, Field(min_length=1, max_length=32)]
    at: AwareDatetime | None = Field(default=None, description="When they left; now if left out.")
    bed: Annotated[Line, Field(max_length=32)] | None = None
    note: Annotated[Text, Field(max_length=2000)] = ""


class PatientToRegister(Incoming):
    mrn: Annotated[Line, Field(min_length=1, max_length=32)]
    name: Annotated[Line, Field(min_length=1, max_length=200)]
    date_of_birth: date


class AdmissionCreate(Incoming):
    """Start a flap's monitoring from theatre or recovery: of a patient found by MRN
    (`patient_id`) or registered now (`patient`), never both."""

    unit: Annotated[Line, Field(min_length=1, max_length=32)]
    patient_id: Id | None = None
    patient: PatientToRegister | None = None
    bed: Annotated[Line, Field(max_length=32)] | None = None
    reconstruction: FlapDetails


class Admission(Outgoing):
    patient: Patient
    reconstruction: Reconstruction
    readmitted: bool = Field(description="A patient the hospital knew, admitted here again.")


class ReconstructionChange(Incoming):
    """Only the fields sent change. `status` ends or resumes monitoring (`status_note` says
    why); the other fields correct the record."""

    procedure: Annotated[Line, Field(min_length=1, max_length=200)] | None = None
    flap_kind: FlapKind | None = None
    site: Annotated[Line, Field(min_length=1, max_length=200)] | None = None
    side: Side | None = None
    surgery_end_at: AwareDatetime | None = None
    surgeon: Annotated[Line, Field(min_length=1, max_length=200)] | None = None
    buried: bool | None = None
    photo_consent: bool | None = Field(
        default=None,
        description="The patient's answer to photographs (true, false; null: not asked). "
        "Any clinical role of the unit may send this field alone; the others are a "
        "coordinator's.",
    )
    status: ReconstructionStatus | None = None
    status_note: Annotated[Text, Field(max_length=2000)] = ""
    time_zero: Literal["restart", "continue"] | None = Field(
        default=None,
        description="Resuming monitoring after a return to theatre (required then): "
        "`restart` counts the schedule's bands from now (the first band's checks again), "
        "`continue` from the end of the first surgery.",
    )


# --- checks ----------------------------------------------------------------------------------


class CheckValues(Incoming):
    """A check's values. Everything but `taken_at` is optional, but at least one thing must
    have been assessed."""

    taken_at: AwareDatetime = Field(
        description="Clinical time, with its offset; not more than 5 minutes ahead of the "
        "server clock, not earlier than 1 hour before the end of surgery."
    )
    colour: Colour | None = None
    flap_temperature_c: float | None = _range(TEMPERATURE_RANGE_C)
    control_temperature_c: float | None = _range(TEMPERATURE_RANGE_C)
    capillary_refill: CapillaryRefill | None = None
    capillary_refill_s: float | None = _range(CAPILLARY_REFILL_S_RANGE)
    doppler_arterial: DopplerArterial | None = None
    doppler_venous: DopplerVenous | None = None
    turgor: Turgor | None = None
    pinprick: Pinprick | None = None
    sto2_percent: float | None = _range(STO2_RANGE_PERCENT)
    notes: Annotated[Text, Field(max_length=NOTES_MAX_LENGTH)] | None = None


class CheckCreate(CheckValues):
    """One check: a nurse's bedside observation, or a named device's reading
    (`"source": "device", "device": "T.Ox gateway 2"`), which holds only what a device
    measures (StO₂, temperatures, Doppler), is judged by the rules and never satisfies the
    bedside schedule."""

    source: CheckSource = CheckSource.BEDSIDE
    device: Annotated[Line, Field(min_length=1, max_length=DEVICE_NAME_MAX_LENGTH)] | None = Field(
        default=None, description="Required with source 'device': the device's name."
    )


class Reading(Incoming):
    """One timed value of a device."""

    taken_at: AwareDatetime = Field(description="When the device measured it, with its offset.")
    flap_temperature_c: float | None = _range(TEMPERATURE_RANGE_C)
    control_temperature_c: float | None = _range(TEMPERATURE_RANGE_C)
    doppler_arterial: DopplerArterial | None = None
    doppler_venous: DopplerVenous | None = None
    sto2_percent: float | None = _range(STO2_RANGE_PERCENT)
    notes: Annotated[Text, Field(max_length=NOTES_MAX_LENGTH)] | None = None


class ReadingBatch(Incoming):
    """A device's readings of one flap: sent again, nothing is stored twice."""

    device: Annotated[Line, Field(min_length=1, max_length=DEVICE_NAME_MAX_LENGTH)]
    readings: Annotated[list[Reading], Field(min_length=1, max_length=READINGS_MAX)]


class CheckAmendment(Incoming):
    """A correction: the whole corrected check in `values`, or `entered_in_error`; always
    with a reason."""

    reason: Annotated[Text, Field(min_length=1, max_length=AMENDMENT_REASON_MAX_LENGTH)]
    values: CheckValues | None = Field(
        default=None, description="The check as it should have been recorded, every field."
    )
    entered_in_error: bool = False

    @model_validator(mode="after")
    def values_or_withdrawal(self) -> CheckAmendment:
        if (self.values is None) == (not self.entered_in_error):
            raise ValueError("Send either the corrected values or entered_in_error: true.")
        return self


class Flag(Outgoing):
    rule_id: str
    name: str
    severity: Severity
    action: str = Field(description="What the nurse is told to do.")
    reasons: list[str]


class Check(Outgoing):
    id: int
    reconstruction_id: int
    taken_at: Instant
    taken_by: str | None = Field(
        description="Who took the check: its first version's recorder, however often it was "
        "corrected since."
    )
    recorded_at: Instant
    recorded_by: str | None = Field(
        description="Who wrote this version: for a correction, the corrector."
    )
    late_entry: bool = Field(description="Recorded more than 60 minutes after it was taken.")
    colour: Colour | None
    flap_temperature_c: float | None
    control_temperature_c: float | None
    temperature_difference_c: float | None = Field(description="Control minus flap.")
    capillary_refill: CapillaryRefill | None
    capillary_refill_s: float | None
    doppler_arterial: DopplerArterial | None
    doppler_venous: DopplerVenous | None
    turgor: Turgor | None
    pinprick: Pinprick | None
    sto2_percent: float | None
    notes: str | None
    source: CheckSource = Field(
        description="bedside (a nurse's check) or device (a device's reading: judged by the "
        "rules, never satisfies the schedule)."
    )
    device: str | None = Field(description="The device a reading came from.")
    severity: Severity | None = Field(description="The highest severity it was flagged with.")
    rule_set_version: int | None
    flags: list[Flag]
    version: int = Field(description="1 as first recorded; each correction is the next.")
    amends_id: int | None = Field(description="The version this one corrects.")
    entered_in_error: bool = Field(
        description="Withdrawn (wrong patient, never taken): kept on the record, left out of "
        "the schedule and the rules."
    )
    amendment_reason: str | None


class AmendedCheck(Check):
    flags_before: list[str] = Field(description="Rule ids that flagged the corrected version.")
    next_due_at: Instant | None = Field(
        description="When the flap's next check falls due (null while paused)."
    )
    escalation_id: int | None = Field(description="The flap's open escalation, if any.")


class RecordedCheck(Check):
    escalation_id: int | None = Field(
        description="The flap's open escalation this check opened or added to, if flagged."
    )
    next_due_at: Instant | None = Field(
        description="When the flap's next check falls due (null while paused)."
    )


class RecordedReadings(Outgoing):
    stored: list[Check] = Field(description="The readings stored now, oldest first.")
    already_stored: list[int] = Field(
        description="Ids of the checks of readings sent before (same device, time and values)."
    )
    next_due_at: Instant | None = Field(
        description="When the flap's next bedside check falls due (readings do not move it); "
        "null while paused."
    )
    escalation_id: int | None = Field(description="The flap's open escalation, if any.")


# --- escalations -----------------------------------------------------------------------------

EscalationStatus = Literal["open", "acknowledged", "closed"]


class EscalationEvent(Outgoing):
    id: int
    at: Instant
    kind: EscalationEventKind
    severity: Severity | None
    check_id: int | None
    by: str | None
    reasons: list[str]


class Escalation(Outgoing):
    id: int
    reconstruction_id: int
    patient_id: int
    unit: str
    status: EscalationStatus = Field(
        description="open: no surgeon has acknowledged it; acknowledged: reviewed, not yet "
        "closed; closed."
    )
    severity: Severity
    reasons: list[str]
    opened_at: Instant
    opened_by_check_id: int | None
    acknowledged_at: Instant | None
    acknowledged_by: str | None
    outcome: EscalationOutcome | None
    note: str | None
    closed_at: Instant | None
    attending: Attending | None = Field(
        description="Who said they are coming to the bedside, and when they expect to be there."
    )
    chain_level: int = Field(
        description="The highest level of the escalation chain paged in its current round "
        "(0: none yet)."
    )


class Attending(Outgoing):
    by: str | None
    answered_at: Instant
    expected_at: Instant


class EscalationWithEvents(Escalation):
    events: list[EscalationEvent]


class Acknowledgement(Incoming):
    outcome: EscalationOutcome
    note: Annotated[Text, Field(max_length=2000)] = ""
    seen_event_id: Id | None = Field(
        default=None,
        description="The last timeline event the reviewer saw: a sign added since is refused "
        "(422) rather than acknowledged unseen.",
    )


class AttendingAnswer(Incoming):
    expected_minutes: int = Field(
        ge=0, le=240, description="Minutes until the one answering expects to be at the bedside."
    )
    note: Annotated[Text, Field(max_length=2000)] = ""
    seen_event_id: Id | None = Field(
        default=None,
        description="The last timeline event the surgeon saw: a sign added since is refused "
        "(422) rather than answered unseen.",
    )


class Closing(Incoming):
    note: Annotated[Text, Field(max_length=2000)] = ""


# --- lists -----------------------------------------------------------------------------------


class Paged(BaseModel):
    """Query parameters every list takes. An unknown one is refused: a misspelt filter
    (`?stauts=open`) must not quietly list everything."""

    model_config = ConfigDict(extra="forbid")
    limit: Annotated[int, Field(ge=1, le=200)] = 50
    cursor: Annotated[str, Field(max_length=200, pattern=r"^[A-Za-z0-9_-]+$")] | None = Field(
        default=None, description="next_cursor from the previous page."
    )


class ExportQuery(BaseModel):
    """Which records to export: a unit (or every unit) and whole days on its clock."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    unit: Annotated[str, Field(min_length=1, max_length=32)] | None = None
    from_: date | None = Field(
        default=None, alias="from", description="First day (YYYY-MM-DD), included."
    )
    to: date | None = Field(default=None, description="Last day (YYYY-MM-DD), included.")


class ResearchQuery(ExportQuery):
    notes: bool = Field(default=False, description="Keep the free text (it may name people).")


class ChartOptions(BaseModel):
    """Query parameters of a chart: its size."""

    model_config = ConfigDict(extra="forbid")
    size: Literal["full", "small", "phone"] = Field(
        default="full",
        description="`full` (1200 px wide, every panel, legend), `small` (512 px, the "
        "review page's small multiple) or `phone` (800 px for a phone's 4 in: the last 24 h, "
        "large text).",
    )


class UnitFilter(Paged):
    unit: Annotated[str, Field(min_length=1, max_length=32)] | None = None


class PatientFilter(UnitFilter):
    mrn: Annotated[str, Field(min_length=1, max_length=32)] | None = Field(
        default=None,
        description="The patient with this MRN, if on one of your units: an empty list "
        "otherwise, whether or not the hospital knows the MRN.",
    )


class ReconstructionFilter(UnitFilter):
    status: ReconstructionStatus | None = None


class EscalationFilter(UnitFilter):
    status: EscalationStatus | None = None


class UnitPage(Outgoing):
    items: list[Unit]
    next_cursor: str | None


class PatientPage(Outgoing):
    items: list[Patient]
    next_cursor: str | None


class ReconstructionPage(Outgoing):
    items: list[Reconstruction]
    next_cursor: str | None


class CheckPage(Outgoing):
    items: list[Check]
    next_cursor: str | None


class EscalationPage(Outgoing):
    items: list[Escalation]
    next_cursor: str | None


class RuleSetVersionPage(Outgoing):
    items: list[RuleSetVersionSummary]
    next_cursor: str | None
