"""Which checks the ward may store (DESIGN.md §2), as a table of cases on the pure domain."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from flapwatch.domain.checks import (
    CheckValues,
    check_problems,
    has_assessment,
    is_late_entry,
    with_derived_refill,
)
from flapwatch.domain.vocabulary import CapillaryRefill

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SURGERY = NOW - timedelta(hours=10)


def problems(buried: bool = False, **values: object) -> dict[str, str]:
    values.setdefault("taken_at", NOW)
    return check_problems(
        CheckValues(**values),
        surgery_end_at=SURGERY,
        now=NOW,
        buried=buried,  # type: ignore[arg-type]
    )


def test_a_normal_check_is_accepted():
    assert (
        problems(
            colour="pink",
            flap_temperature_c=34.0,
            control_temperature_c=35.1,
            capillary_refill="normal",
            doppler_arterial="present",
            doppler_venous="present",
            turgor="soft",
            pinprick="bright_red",
            sto2_percent=72,
            notes="Looks well",
        )
        == {}
    )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("flap_temperature_c", 19.9, "Flap temperature must be between 20.0 and 43.0 °C."),
        ("flap_temperature_c", 43.1, "Flap temperature must be between 20.0 and 43.0 °C."),
        ("control_temperature_c", 15, "Control temperature must be between 20.0 and 43.0 °C."),
        ("capillary_refill_s", -1, "Capillary refill time must be between 0 and 10 seconds."),
        ("capillary_refill_s", 10.5, "Capillary refill time must be between 0 and 10 seconds."),
        ("sto2_percent", 101, "StO₂ must be between 0 and 100 %."),
        ("sto2_percent", -0.1, "StO₂ must be between 0 and 100 %."),
    ],
)
def test_out_of_range_numbers_are_refused_naming_the_field_and_range(field, value, message):
    assert problems(colour="pink", **{field: value})[field] == message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("flap_temperature_c", 20.0),
        ("flap_temperature_c", 43.0),
        ("sto2_percent", 0),
        ("sto2_percent", 100),
        ("capillary_refill_s", 0),
        ("capillary_refill_s", 10),
    ],
)
def test_range_limits_themselves_are_accepted(field, value):
    assert problems(colour="pink", **{field: value}) == {}


def test_unknown_vocabulary_is_refused_with_the_allowed_values():
    assert problems(colour="green")["colour"].startswith("Colour must be one of: pink, pale")


def test_time_more_than_five_minutes_ahead_is_refused():
    assert "taken_at" in problems(colour="pink", taken_at=NOW + timedelta(minutes=5, seconds=1))
    assert problems(colour="pink", taken_at=NOW + timedelta(minutes=5)) == {}


def test_time_more_than_an_hour_before_surgery_end_is_refused():
    too_early = SURGERY - timedelta(hours=1, seconds=1)
    assert "before this flap's surgery" in problems(colour="pink", taken_at=too_early)["taken_at"]
    assert problems(colour="pink", taken_at=SURGERY - timedelta(hours=1)) == {}


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"notes": "patient asleep"},
        {
            "colour": "not_assessable",
            "capillary_refill": "not_assessable",
            "doppler_arterial": "not_assessed",
            "doppler_venous": "not_assessed",
            "turgor": "not_assessable",
            "pinprick": "not_done",
        },
    ],
)
def test_a_check_with_no_assessment_is_refused(values):
    assert problems(**values)[""].startswith("Record at least one assessment")


@pytest.mark.parametrize(
    ("seconds", "category"),
    [(0.5, "brisk"), (1, "normal"), (3, "normal"), (3.5, "sluggish")],
)
def test_refill_seconds_give_the_category(seconds, category):
    derived = with_derived_refill(CheckValues(taken_at=NOW, capillary_refill_s=seconds))
    assert derived.capillary_refill == CapillaryRefill(category)


def test_refill_seconds_contradicting_the_category_are_refused():
    message = problems(capillary_refill="brisk", capillary_refill_s=4)["capillary_refill_s"]
    assert message == "Capillary refill time 4 s is 'Sluggish (>3 s)', not 'Brisk (<1 s)'."
    assert (
        "cannot be given"
        in problems(capillary_refill="absent", capillary_refill_s=2)["capillary_refill_s"]
    )


def test_buried_flap_takes_doppler_and_oximetry_only():
    refused = problems(buried=True, colour="pink", doppler_arterial="present")
    assert "buried flap" in refused["colour"]
    assert (
        problems(buried=True, colour="not_assessable", doppler_arterial="present", sto2_percent=60)
        == {}
    )


def test_notes_longer_than_2000_characters_are_refused():
    assert problems(colour="pink", notes="x" * 2001)["notes"] == (
        "Notes can be at most 2000 characters."
    )


def test_temperature_difference_is_control_minus_flap():
    values = CheckValues(taken_at=NOW, flap_temperature_c=33.1, control_temperature_c=35.0)
    assert values.temperature_difference_c == 1.9
    assert CheckValues(taken_at=NOW, flap_temperature_c=33.1).temperature_difference_c is None


def test_a_single_numeric_reading_is_an_assessment():
    assert has_assessment(CheckValues(taken_at=NOW, sto2_percent=55))


def test_late_entry_is_more_than_an_hour_between_taken_and_recorded():
    assert not is_late_entry(NOW, NOW + timedelta(minutes=60))
    assert is_late_entry(NOW, NOW + timedelta(minutes=61))
