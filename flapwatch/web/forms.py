"""WTForms for the nurse's screens: the edge where typed text becomes domain values."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    Field,
    HiddenField,
    MultipleFileField,
    PasswordField,
    RadioField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from flapwatch.domain.checks import (
    AMENDMENT_REASON_MAX_LENGTH,
    CATEGORICAL_FIELDS,
    FIELD_LABELS,
    NOTES_MAX_LENGTH,
    NUMERIC_RANGES,
    CheckValues,
    range_message,
)
from flapwatch.domain.text import CONTROL_CHARACTER_MESSAGE, has_control_characters
from flapwatch.domain.vocabulary import (
    CapillaryRefill,
    Colour,
    DopplerArterial,
    DopplerVenous,
    Labelled,
    Pinprick,
    Turgor,
)

LOCAL_INPUT_FORMAT = "%Y-%m-%dT%H:%M"


class DecimalNumberField(StringField):
    """A number typed on a tablet keypad: '34.5' or '34,5'; blank means not measured."""

    number: float | None = None

    def __init__(self, label: str, example: str, **kwargs: Any) -> None:
        super().__init__(label, **kwargs)
        self.example = example

    def process_formdata(self, valuelist: list[Any]) -> None:
        super().process_formdata(valuelist)
        text = (self.data or "").strip().replace(",", ".")
        self.data = text
        self.number = None
        if not text:
            return
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"{self.label.text} must be a number, e.g. {self.example}.") from None
        if number != number or number in (float("inf"), float("-inf")):
            raise ValueError(f"{self.label.text} must be a number, e.g. {self.example}.")
        self.number = number


class LocalDateTimeField(StringField):
    """A wall-clock time on the unit's clock, from <input type="datetime-local">.

    The unit's zone is set after the form is built, so the text is parsed on input and
    placed on the ward clock when the form validates.
    """

    moment: datetime | None = None

    def __init__(self, label: str, **kwargs: Any) -> None:
        super().__init__(label, **kwargs)
        self.zone: ZoneInfo | None = None
        self.naive: datetime | None = None

    def process_formdata(self, valuelist: list[Any]) -> None:
        super().process_formdata(valuelist)
        self.naive = self.moment = None
        text = (self.data or "").strip()
        if not text:
            return
        try:
            self.naive = datetime.strptime(text[:16], LOCAL_INPUT_FORMAT)
        except ValueError:
            raise ValueError(
                f"{self.label.text} must be a date and time, e.g. 2026-11-25T14:30."
            ) from None

    def pre_validate(self, form: Any) -> None:
        if self.naive is None or self.zone is None:
            return
        moment = self.naive.replace(tzinfo=self.zone)
        # A time inside the spring-forward gap never happened on the ward clock.
        if moment.astimezone(UTC).astimezone(self.zone).replace(tzinfo=None) != self.naive:
            raise ValidationError(
                f"{self.label.text} {self.naive:%Y-%m-%d %H:%M} does not exist on the ward "
                "clock (the clocks went forward): check the time."
            )
        self.moment = moment


def note_field(label: str) -> TextAreaField:
    """A free-text note of at most NOTES_MAX_LENGTH characters, stripped."""
    return TextAreaField(
        label,
        filters=[lambda value: value.strip() if isinstance(value, str) else value],
        validators=[
            Length(max=NOTES_MAX_LENGTH, message=f"{label}: at most {NOTES_MAX_LENGTH} characters.")
        ],
    )


def choices_of(enum: type[Labelled]) -> list[SelectChoice]:
    return [SelectChoice(value, label) for value, label in enum.choices()]


def segmented(enum: type[Labelled], label: str) -> RadioField:
    return RadioField(label, choices=choices_of(enum), validators=[Optional()])


def _numeric(name: str, example: str) -> DecimalNumberField:
    return DecimalNumberField(FIELD_LABELS[name], example)


class SafeForm(FlaskForm):
    """Every form of the app: a value with a control character (NUL, escape, ...) is refused
    on its own field, whatever else the form checks, before anything reaches the database."""

    def validate(self, extra_validators: Any = None) -> bool:
        valid = super().validate(extra_validators)
        for field in _leaf_fields(self):
            raw = [value for value in field.raw_data or () if isinstance(value, str)]
            if any(has_control_characters(value) for value in raw):
                field.errors = [*field.errors, CONTROL_CHARACTER_MESSAGE]
                valid = False
        return valid


def _leaf_fields(form: Any) -> list[Field]:
    """The fields of a form, with those of its nested forms and lists of forms."""
    leaves: list[Field] = []
    for field in form:
        entries = getattr(field, "entries", None)
        if entries is not None:  # FieldList
            for entry in entries:
                nested = getattr(entry, "form", None)
                leaves += _leaf_fields(nested) if nested is not None else [entry]
        elif getattr(field, "form", None) is not None and hasattr(field.form, "_fields"):
            leaves += _leaf_fields(field.form)  # FormField
        else:
            leaves.append(field)
    return leaves


class CheckForm(SafeForm):
    # Made when the form is opened: Save sent twice stores one check (web/checks.py).
    idempotency_key = HiddenField()
    taken_at = LocalDateTimeField(
        FIELD_LABELS["taken_at"], validators=[DataRequired(message="Time taken is required.")]
    )
    colour = segmented(Colour, FIELD_LABELS["colour"])
    flap_temperature_c = _numeric("flap_temperature_c", "34.5")
    control_temperature_c = _numeric("control_temperature_c", "35.2")
    capillary_refill = segmented(CapillaryRefill, FIELD_LABELS["capillary_refill"])
    capillary_refill_s = _numeric("capillary_refill_s", "2")
    doppler_arterial = segmented(DopplerArterial, FIELD_LABELS["doppler_arterial"])
    doppler_venous = segmented(DopplerVenous, FIELD_LABELS["doppler_venous"])
    turgor = segmented(Turgor, FIELD_LABELS["turgor"])
    pinprick = segmented(Pinprick, FIELD_LABELS["pinprick"])
    sto2_percent = _numeric("sto2_percent", "65")
    notes = TextAreaField(
        FIELD_LABELS["notes"],
        validators=[
            Length(
                max=NOTES_MAX_LENGTH,
                message=f"Notes can be at most {NOTES_MAX_LENGTH} characters.",
            )
        ],
    )

    # Up to 3 from the tablet's camera, when the patient agreed (web/checks.py reads them).
    photos = MultipleFileField("Photos")

    def __init__(self, *args: Any, zone: ZoneInfo, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.taken_at.zone = zone

    def validate(self, extra_validators: Any = None) -> bool:
        valid = super().validate(extra_validators)
        for name, (low, high) in NUMERIC_RANGES.items():
            field: DecimalNumberField = getattr(self, name)
            if field.number is not None and not low <= field.number <= high and not field.errors:
                field.errors = [*field.errors, range_message(name)]
                valid = False
        return valid

    def values(self) -> CheckValues:
        """The domain values of a form that validated."""
        assert self.taken_at.moment is not None

        def choice(field: RadioField, enum: type[Labelled]) -> Any:
            return enum(field.data) if field.data else None

        return CheckValues(
            taken_at=self.taken_at.moment,
            colour=choice(self.colour, Colour),
            flap_temperature_c=self.flap_temperature_c.number,
            control_temperature_c=self.control_temperature_c.number,
            capillary_refill=choice(self.capillary_refill, CapillaryRefill),
            capillary_refill_s=self.capillary_refill_s.number,
            doppler_arterial=choice(self.doppler_arterial, DopplerArterial),
            doppler_venous=choice(self.doppler_venous, DopplerVenous),
            turgor=choice(self.turgor, Turgor),
            pinprick=choice(self.pinprick, Pinprick),
            sto2_percent=self.sto2_percent.number,
            notes=(self.notes.data or "").strip() or None,
        )


class AmendForm(CheckForm):
    """A correction of a recorded check: the corrected values and why, or a withdrawal."""

    reason = TextAreaField(
        "Reason for the correction",
        validators=[
            Length(
                max=AMENDMENT_REASON_MAX_LENGTH,
                message=f"Reason can be at most {AMENDMENT_REASON_MAX_LENGTH} characters.",
            )
        ],
    )
    entered_in_error = BooleanField(
        "Entered in error: this check belongs to another patient, or was never taken"
    )

    def fill_from(self, values: CheckValues) -> None:
        """The recorded values in the fields, to be corrected where they are wrong."""
        zone = self.taken_at.zone
        self.taken_at.data = values.taken_at.astimezone(zone).strftime(LOCAL_INPUT_FORMAT)
        for name in CATEGORICAL_FIELDS:
            value = getattr(values, name)
            getattr(self, name).data = value.value if value is not None else None
        for name in NUMERIC_RANGES:
            value = getattr(values, name)
            getattr(self, name).data = "" if value is None else f"{value:g}"
        self.notes.data = values.notes or ""


def attach_problems(form: FlaskForm, problems: dict[str, str]) -> list[str]:
    """Put a service's problems on the fields they name; return those about the whole form."""
    general: list[str] = []
    for name, message in problems.items():
        field: Field | None = form[name] if name and name in form else None
        if field is None:
            general.append(message)
        else:
            field.errors = [*field.errors, message]
    return general


class LoginForm(SafeForm):
    username = StringField(
        "Username", validators=[DataRequired(message="Username is required."), Length(max=64)]
    )
    password = PasswordField(
        "Password", validators=[DataRequired(message="Password is required."), Length(max=256)]
    )
