"""A flap's last hours in words, for the nurse taking over the ward: what stayed the same,
what changed and when, and what flagged. Values in, sentences out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

# The window the oncoming nurse reads: the shift going off (12-hour shifts on UK wards).
HANDOVER_HOURS = 12

# (field, how the nurse says it) of the categorical signs followed, in the order said.
SIGNS = (
    ("colour", "colour"),
    ("capillary_refill", "refill"),
    ("turgor", "turgor"),
    ("doppler_arterial", "arterial Doppler"),
    ("doppler_venous", "venous Doppler"),
)
# (field, words, unit, the change worth saying) of the measurements followed.
MEASURES = (
    ("temperature_difference_c", "ΔT", " °C", 0.5),
    ("sto2_percent", "StO₂", " %", 5.0),
)
NOT_SAID = {"not_assessable", "not_assessed", "not_done"}


@dataclass(frozen=True)
class Observation:
    """One check of the window as the summary reads it: when, the signs (enum values or
    None), the measurements, and the severity it flagged (None, 'amber', 'red')."""

    taken_at: datetime
    signs: dict[str, str | None]
    measures: dict[str, float | None]
    severity: str | None = None
    from_device: bool = False


def trend_in_words(
    observations: Sequence[Observation], now: datetime, zone: tzinfo | None = None
) -> list[str]:
    """Sentences on the last HANDOVER_HOURS, oldest first in `observations`: how many checks,
    each sign steady or how it changed (and when it last changed), each measurement's range
    or its rise or fall, and the flags."""
    since = now - timedelta(hours=HANDOVER_HOURS)
    window = [o for o in observations if since <= o.taken_at <= now]
    bedside = [o for o in window if not o.from_device]
    if not bedside:
        said = [f"No bedside check in the last {HANDOVER_HOURS} h."]
        if window:
            said.append(f"{len(window)} device reading{'s' * (len(window) != 1)}.")
        return said

    def at(moment: datetime) -> str:
        return (moment.astimezone(zone) if zone else moment).strftime("%H:%M")

    said = [f"{len(bedside)} bedside check{'s' * (len(bedside) != 1)} in the last "
            f"{HANDOVER_HOURS} h."]  # fmt: skip
    steady: list[str] = []
    for field, words in SIGNS:
        seen = [(o.taken_at, o.signs.get(field)) for o in bedside]
        seen = [(t, v) for t, v in seen if v is not None and v not in NOT_SAID]
        if not seen:
            continue
        values = [v for _, v in seen]
        if len(set(values)) == 1:
            steady.append(f"{words} {_word(values[0])}")
            continue
        changes = [seen[i][0] for i in range(1, len(seen)) if seen[i][1] != seen[i - 1][1]]
        said.append(
            f"{words.capitalize()} {_word(values[0])} → {_word(values[-1])} "
            f"(last change {at(changes[-1])})."
        )
    if steady:
        said.append(_sentence(", ".join(steady) + " throughout"))
    for field, words, unit, worth in MEASURES:
        numbers = [(o.taken_at, o.measures.get(field)) for o in window]
        numbers = [(t, v) for t, v in numbers if v is not None]
        if not numbers:
            continue
        first, last = numbers[0][1], numbers[-1][1]
        if abs(last - first) >= worth:
            way = "rose" if last > first else "fell"
            said.append(f"{words} {way} {first:g} → {last:g}{unit} (at {at(numbers[-1][0])}).")
        else:
            low, high = min(v for _, v in numbers), max(v for _, v in numbers)
            said.append(
                f"{words} {low:g}{unit} steady." if low == high
                else f"{words} {low:g}–{high:g}{unit}."
            )  # fmt: skip
    flagged = [o for o in window if o.severity]
    if flagged:
        red = sum(1 for o in flagged if o.severity == "red")
        kinds = ", ".join(part for part in (f"{red} red" * bool(red),
                                            f"{len(flagged) - red} amber"
                                            * bool(len(flagged) - red)) if part)  # fmt: skip
        said.append(f"Flagged {len(flagged)}× ({kinds}), last at {at(flagged[-1].taken_at)}.")
    else:
        said.append("Nothing flagged.")
    return said


def _word(value: str) -> str:
    return value.replace("_", " ")


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + "."
