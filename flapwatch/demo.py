"""The demo ward behind `flapwatch demo` (DESIGN.md §5).

A plastic-surgery ward as a nurse finds it at handover: flaps at every stage of monitoring,
check histories that follow the unit's schedule, one flap due, one overdue, one entry written
up late, and one DIEP flap going venous-congested over the last few hours. Everything is
created through the services, as the app itself would, so the audit trail is real too.
Times are relative to `now` and the values come from a fixed seed: the same board every time.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from flapwatch.domain.checks import CheckValues
from flapwatch.domain.schedule import SchedulePolicy, hours_since
from flapwatch.domain.vocabulary import (
    CapillaryRefill,
    Colour,
    DopplerArterial,
    DopplerVenous,
    EscalationOutcome,
    FinalOutcome,
    FlapKind,
    OverrideKind,
    Pinprick,
    ReconstructionStatus,
    Role,
    Side,
    TheatreFinding,
    TheatreResult,
    Turgor,
)
from flapwatch.models import Check, Escalation, Patient, Reconstruction, Unit, User, utcnow
from flapwatch.services import SYSTEM, Actor, InvalidInput
from flapwatch.services.accounts import create_user
from flapwatch.services.chains import advance_chains, current_contacts, publish_contacts
from flapwatch.services.checks import record_check
from flapwatch.services.escalations import (
    acknowledge_escalation,
    attend_escalation,
    close_escalation,
)
from flapwatch.services.monitoring import set_override
from flapwatch.services.outcomes import (
    TheatreDetails,
    record_final_outcome,
    record_theatre_details,
    theatre_returns_of,
)
from flapwatch.services.patients import (
    PatientDetails,
    ReconstructionDetails,
    add_reconstruction,
    admit_patient,
    set_reconstruction_status,
)
from flapwatch.services.units import create_unit, current_schedule_policy

# Published in DESIGN.md §5 and printed by `flapwatch demo`: a demo, not a secret.
DEMO_PASSWORD = "flapwatch-demo"  # noqa: S105
DEMO_UNIT_CODE = "DEMO"
DEMO_UNIT_NAME = "Plastic Surgery Ward 3 (demo)"
DEMO_TIMEZONE = "Europe/London"
SEED = "flapwatch-demo-1"

# UK ward nurses work 12-hour shifts; the night nurse writes the night's checks.
DAY_SHIFT = (time(7, 30), time(19, 30))


@dataclass(frozen=True)
class DemoAccount:
    username: str
    role: Role
    display_name: str
    works_on_ward: bool = True


ACCOUNTS: tuple[DemoAccount, ...] = (
    DemoAccount("nurse", Role.NURSE, "Grace Mensah"),
    DemoAccount("surgeon", Role.SURGEON, "Dr Sam Okonkwo"),
    DemoAccount("coordinator", Role.UNIT_ADMIN, "Claire Donnelly"),
    DemoAccount("auditor", Role.AUDITOR, "Peter Sands", works_on_ward=False),
    DemoAccount("admin", Role.ADMIN, "Demo Administrator", works_on_ward=False),
    DemoAccount("t.nguyen", Role.NURSE, "Thu Nguyen"),
    DemoAccount("f.osei", Role.NURSE, "Femi Osei"),
)
DAY_NURSE_BEDS_1_TO_4 = "nurse"
DAY_NURSE_BEDS_5_TO_8 = "t.nguyen"
NIGHT_NURSE = "f.osei"
REGISTRAR = "surgeon"
# The registrar's bedside reviews of the deteriorating flap, by the check (counted from the
# last) each follows: she decides to watch closely, twice; the purple check that follows
# starts the escalation chain again, and it has paged her twice by the time the demo opens.
# Before the second review she answers "I'm coming" from her phone, expected in 15 minutes.
REGISTRAR_REVIEWS = {
    3: "Early venous congestion possible; both Doppler signals present. Checks every 30 "
    "minutes, call me at once if it darkens or the venous signal goes.",
    2: "At the bedside: venous signal back with the handheld Doppler over the perforator. "
    "Consultant aware; checks every 15 minutes, theatre on standby.",
}

REGISTRAR_COMING_BEFORE = 2
DEMO_CONTACTS = [
    {"name": "Registrar on call", "channels": [{"kind": "push", "user": REGISTRAR}]},
    {"name": "Consultant on call", "channels": []},
    {"name": "Nurse in charge", "channels": []},
]


@dataclass(frozen=True)
class Observations:
    """What the ward records on this kind of flap (a buried flap has only Doppler)."""

    colour: bool = True
    temperatures: bool = False
    refill: bool = True
    doppler_arterial: bool = True
    doppler_venous: bool = True
    turgor: bool = True
    pinprick: bool = False
    sto2: bool = False
    notes: tuple[str, ...] = ()


# Breast flaps: surface probes and tissue oximetry are routine after DIEP reconstruction.
BREAST = Observations(
    temperatures=True,
    pinprick=True,
    sto2=True,
    notes=(
        "Flap warm and soft.",
        "Warming blanket on, patient comfortable.",
        "Drain 40 ml serosanguinous.",
        "Patient reports pain 2/10, PCA in use.",
    ),
)
# Intraoral paddles: looked at with a pen torch; the handheld Doppler goes on the neck mark.
INTRAORAL = Observations(
    doppler_venous=False,
    notes=(
        "Flap viewed with pen torch, pink and moist.",
        "Tracheostomy care done, flap unchanged.",
        "Neck drain 20 ml.",
    ),
)
# A muscle flap under a skin graft: no refill to press, a pinprick bleed is the test.
MUSCLE_UNDER_GRAFT = Observations(
    refill=False,
    pinprick=True,
    notes=(
        "Leg elevated on pillows.",
        "Graft adherent, muscle pink.",
        "Patient mobilising to chair.",
    ),
)
# A buried jejunal flap has no skin paddle: an implantable Doppler on artery and venous coupler.
BURIED = Observations(
    colour=False,
    refill=False,
    turgor=False,
    notes=(
        "Implantable Doppler signal strong.",
        "Venous coupler signal clear.",
        "NG feed at 60 ml/h.",
    ),
)
# Replanted digits are watched by temperature against the neighbouring finger.
REPLANT = Observations(
    temperatures=True,
    doppler_venous=False,
    pinprick=True,
    notes=("Hand elevated in a sling, room kept warm.", "No smoking or caffeine reminder given."),
)
# A pedicled flap keeps its own blood supply: looked at and pressed, no Doppler.
PEDICLED = Observations(
    doppler_arterial=False,
    doppler_venous=False,
    notes=("Pedicle not kinked, hand rested in position.",),
)


@dataclass(frozen=True)
class DemoFlap:
    procedure: str
    flap_kind: FlapKind
    site: str
    side: Side
    surgeon: str
    observations: Observations
    buried: bool = False
    # A settled flap the surgeon lets sleep: no checks from the next 01:00 for four hours.
    quiet_night: bool = False


@dataclass(frozen=True)
class DemoPatient:
    mrn: str
    name: str
    date_of_birth: date
    bed: str
    hours_post_op: float
    # Where the board finds this patient at `now`: > 0 not yet due, within the 15 min grace
    # after 0 due, beyond it overdue.
    next_due_in_minutes: int
    flaps: tuple[DemoFlap, ...]
    deteriorating: bool = False
    late_entry_check: int | None = None


BREAST_SURGEON = "Miss E. Hartley"
HEAD_AND_NECK_SURGEON = "Mr A. Ferreira"
LIMB_SURGEON = "Ms C. Baptiste"

PATIENTS: tuple[DemoPatient, ...] = (
    DemoPatient(
        mrn="DEMO-304817",
        name="Aisha Rahman",
        date_of_birth=date(1979, 6, 12),
        bed="1",
        hours_post_op=3,
        next_due_in_minutes=25,
        flaps=(
            DemoFlap("DIEP free flap", FlapKind.FREE, "breast", Side.LEFT, BREAST_SURGEON, BREAST),
        ),
    ),
    DemoPatient(
        mrn="DEMO-291554",
        name="Thomas Brennan",
        date_of_birth=date(1957, 11, 2),
        bed="2",
        hours_post_op=9,
        next_due_in_minutes=-6,
        flaps=(
            DemoFlap(
                "ALT free flap",
                FlapKind.FREE,
                "tongue and floor of mouth",
                Side.RIGHT,
                HEAD_AND_NECK_SURGEON,
                INTRAORAL,
            ),
        ),
    ),
    # Re-explorations that saved the flap came at a mean of 19 h post-op (Winterton 2010):
    # this is the patient the demo exists to show.
    DemoPatient(
        mrn="DEMO-318062",
        name="Joanne Whitaker",
        date_of_birth=date(1972, 1, 27),
        bed="3",
        hours_post_op=18,
        next_due_in_minutes=40,
        flaps=(
            DemoFlap("DIEP free flap", FlapKind.FREE, "breast", Side.RIGHT, BREAST_SURGEON, BREAST),
        ),
        deteriorating=True,
    ),
    DemoPatient(
        mrn="DEMO-277409",
        name="Daniel Kowalski",
        date_of_birth=date(1990, 8, 19),
        bed="4",
        hours_post_op=20,
        next_due_in_minutes=-40,
        flaps=(
            DemoFlap(
                "Osteocutaneous fibula free flap",
                FlapKind.FREE,
                "mandible, skin paddle intraoral",
                Side.LEFT,
                HEAD_AND_NECK_SURGEON,
                INTRAORAL,
            ),
        ),
    ),
    # Hand crush injury: a replanted index finger and a groin flap covering the dorsum.
    DemoPatient(
        mrn="DEMO-322190",
        name="Liam Hughes",
        date_of_birth=date(2001, 4, 5),
        bed="5",
        hours_post_op=30,
        next_due_in_minutes=70,
        flaps=(
            DemoFlap(
                "Replantation of index finger",
                FlapKind.REPLANT,
                "index finger",
                Side.RIGHT,
                LIMB_SURGEON,
                REPLANT,
            ),
            DemoFlap(
                "Pedicled groin flap",
                FlapKind.PEDICLED,
                "dorsum of hand",
                Side.RIGHT,
                LIMB_SURGEON,
                PEDICLED,
                quiet_night=True,
            ),
        ),
    ),
    DemoPatient(
        mrn="DEMO-309935",
        name="Samuel Adeyemi",
        date_of_birth=date(1995, 9, 30),
        bed="6",
        hours_post_op=52,
        next_due_in_minutes=150,
        flaps=(
            DemoFlap(
                "Gracilis free flap with split-skin graft",
                FlapKind.FREE,
                "distal third of leg (open tibial fracture)",
                Side.LEFT,
                LIMB_SURGEON,
                MUSCLE_UNDER_GRAFT,
            ),
        ),
        late_entry_check=20,
    ),
    DemoPatient(
        mrn="DEMO-286671",
        name="Robert Fraser",
        date_of_birth=date(1951, 2, 14),
        bed="7",
        hours_post_op=70,
        next_due_in_minutes=-10,
        flaps=(
            DemoFlap(
                "Free jejunal flap",
                FlapKind.FREE,
                "pharynx (laryngopharyngectomy)",
                Side.MIDLINE,
                HEAD_AND_NECK_SURGEON,
                BURIED,
                buried=True,
            ),
        ),
    ),
    DemoPatient(
        mrn="DEMO-265318",
        name="Margaret O'Neill",
        date_of_birth=date(1949, 12, 8),
        bed="8",
        hours_post_op=100,
        next_due_in_minutes=95,
        flaps=(
            DemoFlap(
                "Radial forearm free flap",
                FlapKind.FREE,
                "lateral tongue",
                Side.LEFT,
                HEAD_AND_NECK_SURGEON,
                INTRAORAL,
            ),
        ),
    ),
)


@dataclass(frozen=True)
class DemoReturn:
    """A re-exploration in a past patient's record: the first worrying sign at `sign_hours`
    post-op (a flagged check and the nurse's recheck 15 minutes on), the registrar's decision,
    knife to skin and, unless the flap was lost, monitoring again from a restarted time zero."""

    sign_hours: float
    findings: TheatreFinding
    result: TheatreResult
    decision_minutes: int  # first flag → decision
    knife_minutes: int  # first flag → knife to skin
    back_minutes: int = 240  # first flag → back on the ward
    note: str = ""


@dataclass(frozen=True)
class PastPatient:
    """A patient of the last weeks, discharged: monitored for `monitored_hours`, then home
    after `discharged_hours`, with the outcome the clinic recorded."""

    mrn: str
    name: str
    date_of_birth: date
    days_ago: float
    flap: DemoFlap
    final_outcome: FinalOutcome
    monitored_hours: float = 72
    discharged_hours: float = 120
    theatre: DemoReturn | None = None
    outcome_note: str = ""


# The unit's last weeks, for the compliance report's outcome figures: of 10 flaps, 3
# re-explored (venous thrombosis at 19 h and a haematoma at 6 h, both salvaged; arterial
# thrombosis at 31 h, lost) and one partial loss without re-exploration.
PAST_PATIENTS: tuple[PastPatient, ...] = (
    PastPatient(
        "DEMO-251106", "Helen Carver", date(1968, 3, 3), 12,
        DemoFlap("DIEP free flap", FlapKind.FREE, "breast", Side.LEFT, BREAST_SURGEON, BREAST),
        FinalOutcome.INTACT,
        theatre=DemoReturn(19, TheatreFinding.VENOUS, TheatreResult.SALVAGED, 22, 68,
                           note="Venous anastomosis thrombosed: thrombectomy, re-anastomosis "
                           "to the second comitans."),
    ),
    PastPatient(
        "DEMO-248873", "Kenneth Doyle", date(1955, 7, 21), 9,
        DemoFlap("ALT free flap", FlapKind.FREE, "floor of mouth", Side.LEFT,
                 HEAD_AND_NECK_SURGEON, INTRAORAL),
        FinalOutcome.TOTAL_LOSS,
        theatre=DemoReturn(31, TheatreFinding.ARTERIAL, TheatreResult.FAILED, 34, 96,
                           note="Arterial thrombosis, pedicle kinked: no reflow after "
                           "revision, flap removed, pectoralis major flap."),
        outcome_note="Flap removed at re-exploration; pedicled pectoralis major flap.",
    ),
    PastPatient(
        "DEMO-253390", "Priya Nair", date(1983, 10, 9), 7,
        DemoFlap("DIEP free flap", FlapKind.FREE, "breast", Side.RIGHT, BREAST_SURGEON, BREAST),
        FinalOutcome.INTACT,
        theatre=DemoReturn(6, TheatreFinding.HAEMATOMA, TheatreResult.SALVAGED, 15, 52,
                           note="Haematoma under the flap compressing the pedicle: evacuated, "
                           "bleeding perforator stump tied."),
    ),
    PastPatient(
        "DEMO-244512", "Gareth Lloyd", date(1987, 1, 30), 16,
        DemoFlap("Gracilis free flap with split-skin graft", FlapKind.FREE,
                 "ankle (degloving)", Side.RIGHT, LIMB_SURGEON, MUSCLE_UNDER_GRAFT),
        FinalOutcome.PARTIAL_LOSS,
        outcome_note="Distal 2 cm of the muscle necrosed: debrided and grafted at day 12.",
    ),
    PastPatient(
        "DEMO-239901", "Ruth Abrahams", date(1961, 5, 17), 20,
        DemoFlap("Radial forearm free flap", FlapKind.FREE, "lateral tongue", Side.RIGHT,
                 HEAD_AND_NECK_SURGEON, INTRAORAL),
        FinalOutcome.INTACT,
    ),
    PastPatient(
        "DEMO-237745", "Colin Marsh", date(1949, 9, 2), 25,
        DemoFlap("Osteocutaneous fibula free flap", FlapKind.FREE, "mandible", Side.LEFT,
                 HEAD_AND_NECK_SURGEON, INTRAORAL),
        FinalOutcome.INTACT,
        monitored_hours=120, discharged_hours=240,
    ),
    PastPatient(
        "DEMO-242218", "Sophie Turner", date(1976, 12, 24), 14,
        DemoFlap("DIEP free flap", FlapKind.FREE, "breast", Side.LEFT, BREAST_SURGEON, BREAST),
        FinalOutcome.INTACT,
    ),
    PastPatient(
        "DEMO-246634", "Imran Qureshi", date(1992, 6, 6), 10,
        DemoFlap("ALT free flap", FlapKind.FREE, "dorsum of foot", Side.LEFT, LIMB_SURGEON,
                 MUSCLE_UNDER_GRAFT),
        FinalOutcome.INTACT,
    ),
    PastPatient(
        "DEMO-250087", "Bernadette Walsh", date(1958, 8, 15), 18,
        DemoFlap("Free jejunal flap", FlapKind.FREE, "pharynx", Side.MIDLINE,
                 HEAD_AND_NECK_SURGEON, BURIED, buried=True),
        FinalOutcome.INTACT,
    ),
    PastPatient(
        "DEMO-247760", "Oliver Grant", date(1999, 2, 11), 22,
        DemoFlap("Replantation of thumb", FlapKind.REPLANT, "thumb", Side.LEFT, LIMB_SURGEON,
                 REPLANT),
        FinalOutcome.INTACT,
    ),
)  # fmt: skip

LATE_ENTRY_DELAY = timedelta(minutes=95)
LATE_ENTRY_NOTE = "Written up late: emergency admission in the bay."


@dataclass(frozen=True)
class DemoSummary:
    unit_code: str
    patients: int
    flaps: int
    checks: int
    accounts: list[tuple[str, str]]
    outcome: str

    def __str__(self) -> str:
        return (
            f"Demo unit {self.unit_code}: {self.patients} patients, {self.flaps} flaps, "
            f"{self.checks} checks ({self.outcome})"
        )


def load_demo(session: Session, now: datetime | None = None) -> DemoSummary:
    """Create the demo unit, its staff and patients; on a second run add only what is missing.

    Accounts are matched by username and patients by MRN. A patient already there keeps the
    flaps and checks it has: nothing is recorded twice.
    """
    now = now or utcnow()
    unit = session.scalars(select(Unit).where(Unit.code == DEMO_UNIT_CODE)).first()
    unit_created = unit is None
    if unit is None:
        unit = create_unit(
            session, SYSTEM, code=DEMO_UNIT_CODE, name=DEMO_UNIT_NAME, timezone=DEMO_TIMEZONE
        )
    users, accounts_created = _ensure_accounts(session)
    if current_contacts(session, unit.id).version == 1:
        # The registrar on call is the demo surgeon: her phones, once she turns them on.
        publish_contacts(session, SYSTEM, unit.code, DEMO_CONTACTS, "The registrar's phone")
    actors = {username: _actor(user) for username, user in users.items()}
    policy = current_schedule_policy(session, unit.id).as_value()

    patients_created = 0
    for past in PAST_PATIENTS:
        if session.scalar(select(Patient.id).where(Patient.mrn == past.mrn)) is None:
            _admit_past(session, past, policy, actors, now)
            patients_created += 1
    for spec in PATIENTS:
        if session.scalar(select(Patient.id).where(Patient.mrn == spec.mrn)) is None:
            _admit_with_history(session, spec, policy, actors, now)
            patients_created += 1
    _sweep_minutes(session, now)

    if unit_created:
        outcome = "created now"
    elif accounts_created or patients_created:
        added = [
            _quantity(accounts_created, "missing account"),
            _quantity(patients_created, "missing patient"),
        ]
        outcome = "added " + " and ".join(part for part in added if part)
    else:
        outcome = "already loaded"
    return _summary(session, unit, users, outcome)


def _ensure_accounts(session: Session) -> tuple[dict[str, User], int]:
    users: dict[str, User] = {}
    created = 0
    for account in ACCOUNTS:
        user = session.scalars(select(User).where(User.username == account.username)).first()
        if user is None:
            user = create_user(
                session,
                SYSTEM,
                username=account.username,
                display_name=account.display_name,
                role=account.role,
                password=DEMO_PASSWORD,
                unit_codes=[DEMO_UNIT_CODE] if account.works_on_ward else [],
            )
            created += 1
        users[account.username] = user
    return users, created


def _actor(user: User) -> Actor:
    return Actor(
        user_id=user.id,
        username=user.username,
        role=str(user.role),
        unit_codes=frozenset(unit.code for unit in user.units),
        all_units=user.sees_every_unit,
    )


def _summary(session: Session, unit: Unit, users: dict[str, User], outcome: str) -> DemoSummary:
    patient_ids = select(Patient.id).where(Patient.unit_id == unit.id)
    flap_ids = select(Reconstruction.id).where(Reconstruction.patient_id.in_(patient_ids))
    count_patients = select(func.count()).select_from(patient_ids.subquery())
    count_flaps = select(func.count()).select_from(flap_ids.subquery())
    count_checks = select(func.count(Check.id)).where(Check.reconstruction_id.in_(flap_ids))
    return DemoSummary(
        unit_code=unit.code,
        patients=session.scalar(count_patients) or 0,
        flaps=session.scalar(count_flaps) or 0,
        checks=session.scalar(count_checks) or 0,
        accounts=[(username, str(user.role)) for username, user in users.items()],
        outcome=outcome,
    )


def _admit_with_history(
    session: Session,
    spec: DemoPatient,
    policy: SchedulePolicy,
    actors: dict[str, Actor],
    now: datetime,
) -> None:
    details = PatientDetails(
        mrn=spec.mrn, name=spec.name, date_of_birth=spec.date_of_birth, bed=spec.bed
    )
    try:
        patient = admit_patient(session, SYSTEM, unit_code=DEMO_UNIT_CODE, details=details)
    except InvalidInput as error:
        # Someone has since put a real patient in this demo bed: admit without a bed.
        if set(error.problems) != {"bed"}:
            raise
        details = PatientDetails(
            mrn=spec.mrn, name=spec.name, date_of_birth=spec.date_of_birth, bed=None
        )
        patient = admit_patient(session, SYSTEM, unit_code=DEMO_UNIT_CODE, details=details)

    surgery_end_at = now - timedelta(hours=spec.hours_post_op)
    # One seed per patient for the times: both flaps of one patient are checked together.
    times = _check_times(
        policy,
        surgery_end_at,
        now + timedelta(minutes=spec.next_due_in_minutes),
        _seeded(spec.mrn),
    )
    for flap in spec.flaps:
        reconstruction = add_reconstruction(
            session,
            SYSTEM,
            patient.id,
            ReconstructionDetails(
                procedure=flap.procedure,
                flap_kind=flap.flap_kind,
                site=flap.site,
                side=flap.side,
                surgery_end_at=surgery_end_at,
                surgeon=flap.surgeon,
                buried=flap.buried,
            ),
            now=now,
        )
        rng = _seeded(spec.mrn, flap.procedure)
        history = _healthy_history(times, surgery_end_at, flap.observations, rng)
        if spec.deteriorating:
            history[-4:] = _venous_congestion(times)
        for index, values in enumerate(history):
            late = index == spec.late_entry_check
            if late:
                values = replace(values, notes=LATE_ENTRY_NOTE)
            delay = LATE_ENTRY_DELAY if late else timedelta(minutes=rng.randint(1, 8))
            recorded_at = min(values.taken_at + delay, now)
            _sweep_minutes(session, recorded_at)
            saved = record_check(
                session,
                actors[_recorder(spec, values, len(history) - index)],
                reconstruction.id,
                values,
                now=recorded_at,
            )
            review = REGISTRAR_REVIEWS.get(len(history) - index) if spec.deteriorating else None
            if review is not None and saved.escalation:
                if len(history) - index == REGISTRAR_COMING_BEFORE:
                    coming_at = recorded_at + timedelta(minutes=3)
                    _sweep_minutes(session, coming_at)
                    attend_escalation(
                        session,
                        actors[REGISTRAR],
                        saved.escalation.id,
                        expected_minutes=15,
                        note="On my way from theatre 4. Keep the head of the bed up.",
                        now=coming_at,
                    )
                reviewed_at = values.taken_at + timedelta(minutes=25)
                _sweep_minutes(session, reviewed_at)
                acknowledge_escalation(
                    session,
                    actors[REGISTRAR],
                    saved.escalation.id,
                    outcome=EscalationOutcome.OBSERVE,
                    note=review,
                    now=reviewed_at,
                )
        if flap.quiet_night:
            _quiet_night(session, actors[REGISTRAR], reconstruction.id, now)


def _admit_past(
    session: Session,
    spec: PastPatient,
    policy: SchedulePolicy,
    actors: dict[str, Actor],
    now: datetime,
) -> None:
    """A discharged patient's whole stay: the checks of its monitoring, a re-exploration if
    it had one, the end of monitoring, discharge and the final outcome."""
    details = PatientDetails(
        mrn=spec.mrn, name=spec.name, date_of_birth=spec.date_of_birth, bed=None
    )
    patient = admit_patient(session, SYSTEM, unit_code=DEMO_UNIT_CODE, details=details)
    surgery_end_at = now - timedelta(days=spec.days_ago)
    flap = spec.flap
    reconstruction = add_reconstruction(
        session,
        SYSTEM,
        patient.id,
        ReconstructionDetails(
            procedure=flap.procedure, flap_kind=flap.flap_kind, site=flap.site, side=flap.side,
            surgery_end_at=surgery_end_at, surgeon=flap.surgeon, buried=flap.buried,
        ),
        now=surgery_end_at,
    )  # fmt: skip
    rng = _seeded(spec.mrn)
    stopped_at = surgery_end_at + timedelta(hours=spec.monitored_hours)
    theatre = spec.theatre
    first_until = surgery_end_at + timedelta(hours=theatre.sign_hours if theatre else 0)
    segments = [(surgery_end_at, first_until if theatre else stopped_at)]
    for zero, until in segments:
        times = _check_times(policy, zero, until, rng)
        history = _healthy_history(times, zero, flap.observations, rng)
        for values in history:
            recorded_at = values.taken_at + timedelta(minutes=rng.randint(1, 8))
            record_check(session, actors[_shift_nurse(values.taken_at, "1")], reconstruction.id,
                         values, now=recorded_at)  # fmt: skip
        if theatre is not None and zero == surgery_end_at:
            back = _re_explored(session, actors, reconstruction.id, until, theatre)
            if back is not None:
                segments.append((back, stopped_at))
    coordinator = actors["coordinator"]
    if theatre is None or theatre.result != TheatreResult.FAILED:
        set_reconstruction_status(
            session, coordinator, reconstruction.id, ReconstructionStatus.STOPPED,
            note="Monitoring complete: flap healthy.", now=stopped_at,
        )  # fmt: skip
    discharged_at = surgery_end_at + timedelta(hours=spec.discharged_hours)
    set_reconstruction_status(session, coordinator, reconstruction.id,
                              ReconstructionStatus.DISCHARGED, now=discharged_at)  # fmt: skip
    record_final_outcome(
        session, actors[REGISTRAR], reconstruction.id, outcome=spec.final_outcome,
        on=min(discharged_at, now).astimezone(ZoneInfo(DEMO_TIMEZONE)).date(),
        note=spec.outcome_note, now=min(discharged_at, now),
    )  # fmt: skip


def _re_explored(
    session: Session,
    actors: dict[str, Actor],
    reconstruction_id: int,
    sign_at: datetime,
    theatre: DemoReturn,
) -> datetime | None:
    """The sign, the recheck, the registrar's decision, theatre; when monitoring resumes (None:
    the flap was lost and stays off the board)."""
    for minutes in (0, 15):
        taken_at = sign_at + timedelta(minutes=minutes)
        record_check(session, actors[_shift_nurse(taken_at, "1")], reconstruction_id,
                     _compromised(theatre.findings, taken_at, rechecked=minutes > 0),
                     now=taken_at + timedelta(minutes=2))  # fmt: skip
    escalation = session.scalars(
        select(Escalation).where(Escalation.reconstruction_id == reconstruction_id)
    ).one()
    flagged = escalation.opened_at
    decided_at = flagged + timedelta(minutes=theatre.decision_minutes)
    surgeon = actors[REGISTRAR]
    _sweep_minutes(session, decided_at)
    acknowledge_escalation(session, surgeon, escalation.id,
                           outcome=EscalationOutcome.RETURN_TO_THEATRE,
                           note="Theatre now.", now=decided_at)  # fmt: skip
    back = flagged + timedelta(minutes=theatre.back_minutes)
    (theatre_return,) = theatre_returns_of(session, [reconstruction_id])[reconstruction_id]
    record_theatre_details(
        session, surgeon, theatre_return.id,
        TheatreDetails(knife_to_skin_at=flagged + timedelta(minutes=theatre.knife_minutes),
                       findings=theatre.findings, findings_note=theatre.note,
                       result=theatre.result),
        version=theatre_return.version, now=back,
    )  # fmt: skip
    close_escalation(session, surgeon, escalation.id, note=theatre.note, now=back)
    coordinator = actors["coordinator"]
    if theatre.result == TheatreResult.FAILED:
        set_reconstruction_status(
            session, coordinator, reconstruction_id, ReconstructionStatus.STOPPED,
            note=theatre.note, now=back,
        )  # fmt: skip
        return None
    set_reconstruction_status(
        session, coordinator, reconstruction_id, ReconstructionStatus.MONITORING,
        note="Back from theatre.", time_zero="restart", now=back,
    )  # fmt: skip
    return back


def _compromised(finding: TheatreFinding, taken_at: datetime, rechecked: bool) -> CheckValues:
    """A flap in trouble as the nurse sees it: congested (venous, or a haematoma pressing on
    the pedicle) or pale and cold (arterial)."""
    if finding == TheatreFinding.ARTERIAL:
        return CheckValues(
            taken_at=taken_at, colour=Colour.PALE, flap_temperature_c=32.1,
            control_temperature_c=35.0, capillary_refill=CapillaryRefill.ABSENT,
            doppler_arterial=DopplerArterial.ABSENT, turgor=Turgor.FLACCID,
            notes="Still pale, no refill, no arterial signal." if rechecked
            else "Pale and cool, arterial signal lost.",
        )  # fmt: skip
    return CheckValues(
        taken_at=taken_at, colour=Colour.PURPLE if rechecked else Colour.DUSKY,
        flap_temperature_c=33.0, control_temperature_c=35.1,
        capillary_refill=CapillaryRefill.BRISK, capillary_refill_s=0.6,
        doppler_arterial=DopplerArterial.PRESENT, doppler_venous=DopplerVenous.ABSENT,
        turgor=Turgor.TENSE,
        notes="Darker and tenser on the recheck." if rechecked
        else ("Swollen, tense and dusky." if finding == TheatreFinding.HAEMATOMA
              else "Dusky, brisk refill, venous signal lost."),
    )  # fmt: skip


def _shift_nurse(taken_at: datetime, bed: str) -> str:
    local = taken_at.astimezone(ZoneInfo(DEMO_TIMEZONE)).time()
    if not DAY_SHIFT[0] <= local < DAY_SHIFT[1]:
        return NIGHT_NURSE
    return DAY_NURSE_BEDS_1_TO_4 if int(bed) <= 4 else DAY_NURSE_BEDS_5_TO_8


def _quiet_night(session: Session, surgeon: Actor, reconstruction_id: int, now: datetime) -> None:
    """No checks from the ward's next 01:00 at least 90 minutes away (so that the board shows
    it to come) until 05:00."""
    zone = ZoneInfo(DEMO_TIMEZONE)
    soonest = now + timedelta(minutes=90)
    night = datetime.combine(soonest.astimezone(zone).date(), time(1), zone)
    if night < soonest:
        night += timedelta(days=1)
    set_override(
        session,
        surgeon,
        reconstruction_id,
        kind=OverrideKind.OMIT,
        starts_at=night.astimezone(UTC),
        ends_at=(night + timedelta(hours=4)).astimezone(UTC),
        reason="Pedicle settled, Doppler strong: let him sleep. The replant is checked as usual.",
        now=now,
    )


def _sweep_minutes(session: Session, until: datetime) -> None:
    """The escalation chains climb as the notifier would have made them climb, minute by
    minute while the history was recorded, up to `until`."""
    started = session.scalar(
        select(func.min(Escalation.chain_started_at)).where(
            Escalation.acknowledged_at.is_(None), Escalation.closed_at.is_(None)
        )
    )
    if started is None:
        return
    moment = started
    while moment < until:
        advance_chains(session, moment)
        moment += timedelta(minutes=1)
    advance_chains(session, until)


def _check_times(
    policy: SchedulePolicy, surgery_end_at: datetime, last_due: datetime, rng: random.Random
) -> list[datetime]:
    """Check times from the end of surgery on, each close to when the schedule asked for it,
    the last one placed so that the next check falls due at `last_due`."""
    times = [_taken_for_due(policy, surgery_end_at, last_due)]
    while True:
        # Nurses are seldom on the minute: a few minutes early, more often a little late,
        # but inside the grace period (an overdue check in the history would be noise).
        due = times[-1] - timedelta(minutes=rng.randint(-6, 12))
        earlier = _taken_for_due(policy, surgery_end_at, due)
        if earlier < surgery_end_at + timedelta(minutes=20):
            break
        times.append(earlier)
    # The baseline check is taken on arrival from recovery.
    arrival = surgery_end_at + timedelta(minutes=rng.randint(5, 15))
    times.append(min(arrival, times[-1] - timedelta(minutes=25)))
    return times[::-1]


def _taken_for_due(policy: SchedulePolicy, surgery_end_at: datetime, due: datetime) -> datetime:
    """The time of the check after which the next one falls due at `due`."""
    intervals = {minutes for _, minutes in policy.bands} | {policy.after_last_band_minutes}
    exact = [
        taken
        for taken in (due - timedelta(minutes=minutes) for minutes in intervals)
        if taken + policy.interval_at(hours_since(surgery_end_at, taken)) == due
    ]
    if exact:
        return max(exact)
    # Just after a band boundary no check falls due then (one at 23:59 h is due at 24:59 h,
    # one at 24:00 h at 26:00 h): take it at the boundary, and the next one a little early.
    passed = [until for until, _ in policy.bands if surgery_end_at + timedelta(hours=until) < due]
    return surgery_end_at + timedelta(hours=max(passed))


def _healthy_history(
    times: list[datetime], surgery_end_at: datetime, observed: Observations, rng: random.Random
) -> list[CheckValues]:
    """A well-perfused flap: pink, normal refill, signals present, readings drifting a little."""
    warmth, gap, sto2 = rng.uniform(-0.3, 0.3), rng.uniform(0.5, 1.1), rng.uniform(68, 76)
    history: list[CheckValues] = []
    for index, taken_at in enumerate(times):
        hours = hours_since(surgery_end_at, taken_at)
        warmth = _clamp(warmth + rng.uniform(-0.2, 0.2), -0.4, 0.4)
        gap = _clamp(gap + rng.uniform(-0.15, 0.15), 0.3, 1.3)
        sto2 = _clamp(sto2 + rng.uniform(-3, 3), 62, 82)
        # Peripheries are cool after a long anaesthetic and rewarm over the first day.
        flap_temperature = 33.2 + 1.3 * min(hours, 24) / 24 + warmth
        control_temperature = max(flap_temperature + gap, 34.0)
        refill_seconds = round(rng.uniform(1.5, 2.5), 1) if rng.random() < 0.3 else None
        history.append(
            CheckValues(
                taken_at=taken_at,
                colour=Colour.PINK if observed.colour else None,
                flap_temperature_c=round(flap_temperature, 1) if observed.temperatures else None,
                control_temperature_c=(
                    round(control_temperature, 1) if observed.temperatures else None
                ),
                capillary_refill=CapillaryRefill.NORMAL if observed.refill else None,
                capillary_refill_s=refill_seconds if observed.refill else None,
                doppler_arterial=DopplerArterial.PRESENT if observed.doppler_arterial else None,
                doppler_venous=_venous_signal(observed, rng),
                turgor=Turgor.SOFT if observed.turgor else None,
                pinprick=Pinprick.BRIGHT_RED if observed.pinprick and index % 6 == 3 else None,
                sto2_percent=round(sto2) if observed.sto2 else None,
                notes=_occasional_note(observed, rng),
            )
        )
    return history


def _venous_congestion(times: list[datetime]) -> list[CheckValues]:
    """The last four checks of the deteriorating DIEP flap, oldest first: venous congestion
    declaring itself (DESIGN.md §3 rules `venous`, `temperature`, `doppler-change`)."""
    first, second, third, last = times[-4:]
    return [
        CheckValues(
            taken_at=first,
            colour=Colour.PINK,
            flap_temperature_c=34.2,
            control_temperature_c=35.1,
            capillary_refill=CapillaryRefill.NORMAL,
            capillary_refill_s=1.5,
            doppler_arterial=DopplerArterial.PRESENT,
            doppler_venous=DopplerVenous.PRESENT,
            turgor=Turgor.SOFT,
            sto2_percent=64,
            notes="StO₂ drifting down from the low 70s, probe position checked.",
        ),
        CheckValues(
            taken_at=second,
            colour=Colour.DUSKY,
            flap_temperature_c=33.5,
            control_temperature_c=35.0,
            capillary_refill=CapillaryRefill.BRISK,
            capillary_refill_s=0.8,
            doppler_arterial=DopplerArterial.PRESENT,
            doppler_venous=DopplerVenous.PRESENT,
            turgor=Turgor.FIRM,
            sto2_percent=55,
            notes="Dusky patch at lower pole, registrar informed.",
        ),
        CheckValues(
            taken_at=third,
            colour=Colour.DUSKY,
            flap_temperature_c=33.0,
            control_temperature_c=35.1,
            capillary_refill=CapillaryRefill.BRISK,
            capillary_refill_s=0.6,
            doppler_arterial=DopplerArterial.PRESENT,
            doppler_venous=DopplerVenous.ABSENT,
            turgor=Turgor.TENSE,
            pinprick=Pinprick.DARK_RAPID,
            sto2_percent=46,
            notes="Duskiness spreading, venous Doppler signal lost. Registrar on the way.",
        ),
        CheckValues(
            taken_at=last,
            colour=Colour.PURPLE,
            flap_temperature_c=32.4,
            control_temperature_c=35.0,
            capillary_refill=CapillaryRefill.BRISK,
            capillary_refill_s=0.5,
            doppler_arterial=DopplerArterial.PRESENT,
            doppler_venous=DopplerVenous.ABSENT,
            turgor=Turgor.TENSE,
            pinprick=Pinprick.DARK_RAPID,
            sto2_percent=35,
            notes="Reviewed by registrar: purple, tense, dark rapid bleed on pinprick. "
            "Consultant informed, theatre booked for re-exploration.",
        ),
    ]


def _recorder(spec: DemoPatient, values: CheckValues, position_from_end: int) -> str:
    """Who wrote this check: the registrar at the bedside, else the nurse of the bay and shift."""
    if spec.deteriorating and position_from_end == 1:
        return REGISTRAR
    return _shift_nurse(values.taken_at, spec.bed)


def _seeded(*parts: str) -> random.Random:
    # Reproducible demo data, not secrets: a seeded generator is what is wanted here.
    return random.Random("/".join((SEED, *parts)))  # noqa: S311


def _occasional_note(observed: Observations, rng: random.Random) -> str | None:
    return rng.choice(observed.notes) if observed.notes and rng.random() < 0.15 else None


def _venous_signal(observed: Observations, rng: random.Random) -> DopplerVenous | None:
    if not observed.doppler_venous:
        return None
    # The venous signal is the harder one to find with a handheld probe.
    return DopplerVenous.PRESENT if rng.random() < 0.9 else DopplerVenous.NOT_ASSESSED


def _quantity(count: int, noun: str) -> str:
    return "" if count == 0 else f"{count} {noun}{'' if count == 1 else 's'}"


def _clamp(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)
