"""The ward's words (DESIGN.md §2). Enum values are part of the public contract."""

from __future__ import annotations

from enum import StrEnum


class Labelled(StrEnum):
    """A StrEnum whose members carry the words a nurse reads on screen."""

    label: str

    def __new__(cls, value: str, label: str = "") -> Labelled:
        member = str.__new__(cls, value)
        member._value_ = value
        member.label = label or value.replace("_", " ")
        return member

    @classmethod
    def values(cls) -> list[str]:
        return [member.value for member in cls]

    @classmethod
    def choices(cls) -> list[tuple[str, str]]:
        return [(member.value, member.label) for member in cls]


class Role(Labelled):
    NURSE = "nurse", "Nurse"
    SURGEON = "surgeon", "Surgeon"
    UNIT_ADMIN = "unit_admin", "Unit coordinator"
    AUDITOR = "auditor", "Auditor"
    ADMIN = "admin", "Administrator"


class FlapKind(Labelled):
    FREE = "free", "Free flap"
    PEDICLED = "pedicled", "Pedicled flap"
    REPLANT = "replant", "Replant"
    OTHER = "other", "Other"


class Side(Labelled):
    LEFT = "left", "Left"
    RIGHT = "right", "Right"
    MIDLINE = "midline", "Midline"
    BILATERAL = "bilateral", "Bilateral"
    NA = "na", "Not applicable"


class ReconstructionStatus(Labelled):
    """Where the flap's monitoring stands (a pause is a record of its own, on top of
    monitoring). What became of the flap is apart: each return to theatre's result, and the
    final outcome (`TheatreResult`, `FinalOutcome`)."""

    MONITORING = "monitoring", "Monitoring"
    STOPPED = "stopped", "Monitoring stopped"
    # Stored as before migration 0019; it means "in theatre now", until monitoring resumes.
    RETURNED_TO_THEATRE = "returned_to_theatre", "In theatre"
    DISCHARGED = "discharged", "Discharged"


class TheatreFinding(Labelled):
    """What the surgeon found at re-exploration (Chen 2007's causes of compromise)."""

    ARTERIAL = "arterial", "Arterial thrombosis"
    VENOUS = "venous", "Venous thrombosis"
    BOTH = "both", "Arterial and venous thrombosis"
    HAEMATOMA = "haematoma", "Haematoma"
    OTHER = "other", "Other"


class TheatreResult(Labelled):
    SALVAGED = "salvaged", "Salvaged"
    PARTIAL_LOSS = "partial_loss", "Partial loss"
    FAILED = "failed", "Failed"


class FinalOutcome(Labelled):
    INTACT = "intact", "Intact"
    PARTIAL_LOSS = "partial_loss", "Partial loss"
    TOTAL_LOSS = "total_loss", "Total loss"


class Colour(Labelled):
    PINK = "pink", "Pink"
    PALE = "pale", "Pale"
    WHITE = "white", "White"
    MOTTLED = "mottled", "Mottled"
    DUSKY = "dusky", "Dusky"
    BLUE = "blue", "Blue"
    PURPLE = "purple", "Purple"
    BLACK = "black", "Black"
    NOT_ASSESSABLE = "not_assessable", "Not assessable"


class CapillaryRefill(Labelled):
    BRISK = "brisk", "Brisk (<1 s)"
    NORMAL = "normal", "Normal (1–3 s)"
    SLUGGISH = "sluggish", "Sluggish (>3 s)"
    ABSENT = "absent", "Absent"
    NOT_ASSESSABLE = "not_assessable", "Not assessable"


class DopplerArterial(Labelled):
    PRESENT = "present", "Present"
    WEAK = "weak", "Weak"
    ABSENT = "absent", "Absent"
    NOT_ASSESSED = "not_assessed", "Not assessed"


class DopplerVenous(Labelled):
    PRESENT = "present", "Present"
    ABSENT = "absent", "Absent"
    NOT_ASSESSED = "not_assessed", "Not assessed"


class Turgor(Labelled):
    SOFT = "soft", "Soft"
    FIRM = "firm", "Firm"
    TENSE = "tense", "Tense"
    FLACCID = "flaccid", "Flaccid"
    NOT_ASSESSABLE = "not_assessable", "Not assessable"


class Pinprick(Labelled):
    BRIGHT_RED = "bright_red", "Bright red"
    DARK_RAPID = "dark_rapid", "Dark, rapid"
    SLOW_NONE = "slow_none", "Slow / none"
    NOT_DONE = "not_done", "Not done"


class CheckSource(Labelled):
    """Where a check's values came from. Rules judge both; only a bedside check (a nurse at
    the flap) satisfies the monitoring schedule (DESIGN.md §2b)."""

    BEDSIDE = "bedside", "Bedside"
    DEVICE = "device", "Device"


class DueState(Labelled):
    """Where a monitored flap stands against its schedule, most urgent first."""

    OVERDUE = "overdue", "Overdue"
    DUE = "due", "Due"
    NOT_DUE = "not_due", "Not yet due"
    PAUSED = "paused", "Paused"


class PauseReason(Labelled):
    """Why a flap's monitoring is paused (DESIGN.md §2; Open eObs' monitoring exceptions)."""

    IN_THEATRE = "in_theatre", "In theatre"
    IMAGING = "imaging", "Imaging"
    OFF_WARD = "off_ward", "Off the ward"
    OTHER = "other", "Other"


class OverrideKind(Labelled):
    """How a per-flap schedule changes the unit's for its window: checks at another interval
    (every 15 minutes after a worrying sign), or none at all (let the patient sleep)."""

    INTERVAL = "interval", "Checks every"
    OMIT = "omit", "No checks"


class NotDoneReason(Labelled):
    """Why a check that fell due could not be done (DESIGN.md §2)."""

    PATIENT_REFUSED = "patient_refused", "Patient refused"
    PATIENT_OFF_WARD = "patient_off_ward", "Patient off the ward"
    DRESSING_NOT_REMOVABLE = "dressing_not_removable", "Dressing could not be removed"
    OTHER = "other", "Other"


# The "nothing observed" answer of each categorical assessment: recorded, but not an assessment.
NOT_OBSERVED: frozenset[str] = frozenset({"not_assessable", "not_assessed", "not_done"})


class Severity(Labelled):
    """How urgent a flag is; red outranks amber (DESIGN.md §2 "Rule set")."""

    AMBER = "amber", "Amber"
    RED = "red", "Red"


class EscalationOutcome(Labelled):
    OBSERVE = "observe", "Observe"
    MEDICAL_MANAGEMENT = "medical_management", "Medical management"
    RETURN_TO_THEATRE = "return_to_theatre", "Return to theatre"
    FALSE_ALARM = "false_alarm", "False alarm"


class EscalationEventKind(Labelled):
    OPENED = "opened", "Opened"
    FLAG_ADDED = "flag_added", "Further flag"
    OVERDUE = "overdue", "Check overdue"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    CLOSED = "closed", "Closed"
    PAGED = "paged", "Paged"
    ATTENDING = "attending", "Coming"


class DeliveryStatus(Labelled):
    PENDING = "pending", "Waiting to send"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Gave up"
