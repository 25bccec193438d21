"""A bedside flap check: its values, their allowed ranges, and what makes a check acceptable.

Pure functions: they take values and return values (or field -> message problems), so the
HTML form, the JSON API and the CLI all accept and refuse exactly the same checks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime, timedelta

from flapwatch.domain.vocabulary import (
    NOT_OBSERVED,
    CapillaryRefill,
    CheckSource,
    Colour,
    DopplerArterial,
    DopplerVenous,
    Pinprick,
    Turgor,
)

# Surface temperatures a living flap or the skin beside it can plausibly show; outside this
# the probe is off the skin or the value was mistyped (DESIGN.md §2).
TEMPERATURE_RANGE_C = (20.0, 43.0)
CAPILLARY_REFILL_S_RANGE = (0.0, 10.0)
STO2_RANGE_PERCENT = (0.0, 100.0)
NOTES_MAX_LENGTH = 2000
# Why a check was corrected: a sentence, not an essay.
AMENDMENT_REASON_MAX_LENGTH = 500
# A check may be typed in a little ahead of the ward clock (tablet clocks drift), never hours.
FUTURE_TOLERANCE = timedelta(minutes=5)
# Baseline observations are often taken in recovery just before the operation note is signed.
BEFORE_SURGERY_TOLERANCE = timedelta(hours=1)
# A check typed in more than an hour after it was taken is shown as a late entry.
LATE_ENTRY_AFTER = timedelta(minutes=60)

NUMERIC_RANGES: dict[str, tuple[float, float]] = {
    "flap_temperature_c": TEMPERATURE_RANGE_C,
    "control_temperature_c": TEMPERATURE_RANGE_C,
    "capillary_refill_s": CAPILLARY_REFILL_S_RANGE,
    "sto2_percent": STO2_RANGE_PERCENT,
}

CATEGORICAL_FIELDS: dict[str, type] = {
    "colour": Colour,
    "capillary_refill": CapillaryRefill,
    "doppler_arterial": DopplerArterial,
    "doppler_venous": DopplerVenous,
    "turgor": Turgor,
    "pinprick": Pinprick,
}

FIELD_LABELS: dict[str, str] = {
    "taken_at": "Time taken",
    "colour": "Colour",
    "flap_temperature_c": "Flap temperature",
    "control_temperature_c": "Control temperature",
    "capillary_refill": "Capillary refill",
    "capillary_refill_s": "Capillary refill time",
    "doppler_arterial": "Doppler arterial",
    "doppler_venous": "Doppler venous",
    "turgor": "Turgor",
    "pinprick": "Pinprick",
    "sto2_percent": "StO₂",
    "notes": "Notes",
}

# Without a skin paddle there is nothing to look at or press: only Doppler and oximetry.
SKIN_PADDLE_FIELDS = (
    "colour",
    "capillary_refill",
    "capillary_refill_s",
    "turgor",
    "pinprick",
    "flap_temperature_c",
    "control_temperature_c",
)

# What a device can measure (a tissue oximeter, a probe, an implantable Doppler); colour,
# refill, turgor and pinprick are a nurse's eye and hand at the bedside.
DEVICE_FIELDS = (
    "flap_temperature_c",
    "control_temperature_c",
    "doppler_arterial",
    "doppler_venous",
    "sto2_percent",
)
DEVICE_NAME_MAX_LENGTH = 100
# Readings a device sends in one batch (a day of 10-minute StO₂ readings is 144).
READINGS_MAX = 500

# Capillary refill categories by seconds (DESIGN.md §2): brisk < 1 s, normal 1–3 s, sluggish > 3 s.
BRISK_BELOW_S = 1.0
SLUGGISH_ABOVE_S = 3.0


def temperature_difference(flap: float | None, control: float | None) -> float | None:
    """ΔT, control minus flap, to the tenth of a degree the probes read."""
    if flap is None or control is None:
        return None
    return round(control - flap, 1)


@dataclass(frozen=True)
class CheckValues:
    """What the nurse observed. Every field but taken_at may be missing (None)."""

    taken_at: datetime
    colour: Colour | None = None
    flap_temperature_c: float | None = None
    control_temperature_c: float | None = None
    capillary_refill: CapillaryRefill | None = None
    capillary_refill_s: float | None = None
    doppler_arterial: DopplerArterial | None = None
    doppler_venous: DopplerVenous | None = None
    turgor: Turgor | None = None
    pinprick: Pinprick | None = None
    sto2_percent: float | None = None
    notes: str | None = None

    @property
    def temperature_difference_c(self) -> float | None:
        """Control minus flap: a cooling flap makes this grow (Khouri & Shaw 1992)."""
        return temperature_difference(self.flap_temperature_c, self.control_temperature_c)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


ASSESSMENT_FIELDS = tuple(
    f.name for f in fields(CheckValues) if f.name not in ("taken_at", "notes")
)


def refill_category_for_seconds(seconds: float) -> CapillaryRefill:
    if seconds < BRISK_BELOW_S:
        return CapillaryRefill.BRISK
    if seconds <= SLUGGISH_ABOVE_S:
        return CapillaryRefill.NORMAL
    return CapillaryRefill.SLUGGISH


def has_assessment(values: CheckValues) -> bool:
    """True when at least one thing was actually observed (not 'not assessable')."""
    for name in ASSESSMENT_FIELDS:
        value = getattr(values, name)
        if value is None:
            continue
        if name in CATEGORICAL_FIELDS and value in NOT_OBSERVED:
            continue
        return True
    return False


RANGE_TEXT: dict[str, str] = {
    "flap_temperature_c": "20.0 and 43.0 °C",
    "control_temperature_c": "20.0 and 43.0 °C",
    "capillary_refill_s": "0 and 10 seconds",
    "sto2_percent": "0 and 100 %",
}


def range_message(name: str) -> str:
    return f"{FIELD_LABELS[name]} must be between {RANGE_TEXT[name]}."


def check_problems(
    values: CheckValues,
    *,
    surgery_end_at: datetime,
    now: datetime,
    buried: bool = False,
) -> dict[str, str]:
    """Every reason this check cannot be stored, keyed by field ('' for the check as a whole).

    An empty result means the check is acceptable. Messages name the field and what is allowed.
    """
    problems: dict[str, str] = {}

    if values.taken_at.tzinfo is None:
        raise ValueError("taken_at must carry a time zone")
    if values.taken_at > now + FUTURE_TOLERANCE:
        problems["taken_at"] = "Time taken is in the future: it can be at most 5 minutes after now."
    elif values.taken_at < surgery_end_at - BEFORE_SURGERY_TOLERANCE:
        problems["taken_at"] = (
            "Time taken is before this flap's surgery: it can be at most 1 hour before "
            "the end of surgery."
        )

    for name, (low, high) in NUMERIC_RANGES.items():
        value = getattr(values, name)
        if value is not None and not (low <= value <= high):
            problems[name] = range_message(name)

    for name, enum in CATEGORICAL_FIELDS.items():
        value = getattr(values, name)
        if value is not None and value not in enum.values():
            allowed = ", ".join(enum.values())
            problems[name] = f"{FIELD_LABELS[name]} must be one of: {allowed}."

    if values.notes is not None and len(values.notes) > NOTES_MAX_LENGTH:
        problems["notes"] = f"Notes can be at most {NOTES_MAX_LENGTH} characters."

    seconds, refill = values.capillary_refill_s, values.capillary_refill
    checkable = not {"capillary_refill", "capillary_refill_s"} & problems.keys()
    if checkable and seconds is not None and refill is not None:
        if refill in (CapillaryRefill.ABSENT, CapillaryRefill.NOT_ASSESSABLE):
            problems["capillary_refill_s"] = (
                f"Capillary refill time cannot be given when refill is "
                f"'{CapillaryRefill(refill).label}'."
            )
        elif refill_category_for_seconds(seconds) != refill:
            expected = refill_category_for_seconds(seconds)
            problems["capillary_refill_s"] = (
                f"Capillary refill time {seconds:g} s is '{expected.label}', "
                f"not '{CapillaryRefill(refill).label}'."
            )

    if buried:
        for name in SKIN_PADDLE_FIELDS:
            value = getattr(values, name)
            if value is not None and value not in NOT_OBSERVED:
                problems.setdefault(
                    name,
                    f"{FIELD_LABELS[name]} cannot be assessed on a buried flap "
                    "(no skin paddle): record Doppler or StO₂.",
                )

    if not has_assessment(values):
        problems[""] = (
            "Record at least one assessment: colour, a temperature, capillary refill, "
            "Doppler, turgor, pinprick or StO₂."
        )
    return problems


def source_problems(values: CheckValues, source: CheckSource, device: str | None) -> dict[str, str]:
    """Why these values cannot be stored as coming from `source`, keyed by field: a device
    reading names its device and holds only what a device measures; a bedside check names
    none."""
    problems: dict[str, str] = {}
    if source == CheckSource.DEVICE:
        if not device or not device.strip():
            problems["device"] = "Device: name the device a device reading comes from."
        elif len(device) > DEVICE_NAME_MAX_LENGTH:
            problems["device"] = f"Device can be at most {DEVICE_NAME_MAX_LENGTH} characters."
        for name in ASSESSMENT_FIELDS:
            if name not in DEVICE_FIELDS and getattr(values, name) is not None:
                problems[name] = (
                    f"{FIELD_LABELS[name]} is a bedside observation: a device reading holds "
                    "StO₂, temperatures or Doppler."
                )
    elif device is not None:
        problems["device"] = "Device is given only with source 'device'."
    return problems


def with_derived_refill(values: CheckValues) -> CheckValues:
    """Fill in the refill category from the seconds when only the seconds were measured."""
    if values.capillary_refill is None and values.capillary_refill_s is not None:
        low, high = CAPILLARY_REFILL_S_RANGE
        if low <= values.capillary_refill_s <= high:
            return replace(
                values, capillary_refill=refill_category_for_seconds(values.capillary_refill_s)
            )
    return values


def is_late_entry(taken_at: datetime, recorded_at: datetime) -> bool:
    return recorded_at - taken_at > LATE_ENTRY_AFTER
