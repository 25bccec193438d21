"""WTForms for the coordinators' pages: units, schedules, staff, patients and their flaps.

Who may grant which role and work in which unit is decided by the services: role and unit
choices here are offered, not enforced, so a forged choice meets the service's refusal.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from zoneinfo import ZoneInfo

from wtforms import (
    BooleanField,
    DateField,
    HiddenField,
    IntegerField,
    PasswordField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import (
    DataRequired,
    EqualTo,
    InputRequired,
    Length,
    Optional,
    ValidationError,
)
from wtforms.widgets import HiddenInput

from flapwatch.domain.chains import WEBHOOK_URL_MAX_LENGTH, webhook_url_problem
from flapwatch.domain.schedule import SchedulePolicyError, parse_bands
from flapwatch.domain.vocabulary import FlapKind, Labelled, ReconstructionStatus, Role, Side
from flapwatch.models import Unit
from flapwatch.security import MIN_PASSWORD_LENGTH
from flapwatch.services.patients import PatientDetails, ReconstructionDetails
from flapwatch.web.forms import LocalDateTimeField, SafeForm, choices_of

NOTE_MAX_LENGTH = 2000


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _required(label: str, why: str = "") -> DataRequired:
    return DataRequired(message=f"{label} is required{why}.")


def _at_most(label: str, length: int) -> Length:
    return Length(max=length, message=f"{label} can be at most {length} characters.")


def _text(label: str, max_length: int, *, required: bool = True) -> StringField:
    validators: list[Any] = [_at_most(label, max_length)]
    if required:
        validators.insert(0, _required(label))
    return StringField(label, filters=[_strip], validators=validators)


def _vocabulary(enum: type[Labelled], label: str) -> RadioField:
    allowed = ", ".join(member.label for member in enum)
    return RadioField(
        label,
        choices=choices_of(enum),
        invalid_choice_message=f"{label} must be one of: {allowed}.",
    )


def _minutes(label: str, example: int) -> IntegerField:
    """A whole number of minutes; its allowed range is the domain's to judge."""
    return IntegerField(
        label,
        invalid_value_message=f"{label} must be a whole number of minutes, e.g. {example}.",
        validators=[InputRequired(message=f"{label} is required.")],
    )


def unit_choices(units: Iterable[Unit]) -> list[SelectChoice]:
    return [SelectChoice(unit.code, f"{unit.name} ({unit.code})") for unit in units]


# --- units and schedules ----------------------------------------------------------------------


class UnitForm(SafeForm):
    name = _text("Name", 200)
    timezone = _text("Time zone", 64)


class NewUnitForm(UnitForm):
    code = _text("Code", 32)


class EditUnitForm(UnitForm):
    webhook_url = _text("Webhook URL", WEBHOOK_URL_MAX_LENGTH, required=False)
    # Left out (an older form): the unit keeps its setting.
    idle_logoff_minutes = IntegerField(
        "Log off after",
        invalid_value_message="Log off after must be a whole number of minutes, e.g. 10.",
        validators=[Optional()],
    )

    def validate_webhook_url(self, field: StringField) -> None:
        problem = webhook_url_problem(field.data) if field.data else None
        if problem:
            raise ValidationError(problem)


class BandsField(StringField):
    """Schedule bands typed as 'until_hour:interval_minutes' pairs, e.g. '24:60, 48:120'."""

    bands: tuple[tuple[int, int], ...] = ()

    def process_formdata(self, valuelist: list[Any]) -> None:
        super().process_formdata(valuelist)
        self.bands = ()
        try:
            self.bands = parse_bands(self.data or "")
        except SchedulePolicyError as error:
            raise ValueError(f"Bands: {error}") from None


class ScheduleForm(SafeForm):
    bands = BandsField(
        "Bands (until hour : interval minutes)",
        filters=[_strip],
        validators=[_required("Bands"), _at_most("Bands", 500)],
    )
    grace_minutes = _minutes("Grace period", 15)
    after_last_band_minutes = _minutes("Interval after the last band", 480)
    # Left out (an older page): the current version's value is kept.
    not_done_minutes = IntegerField(
        "Next check after a check not done",
        invalid_value_message="Next check after a check not done must be a whole number of "
        "minutes, e.g. 30.",
        validators=[Optional()],
    )
    note = TextAreaField(
        "Change note",
        filters=[_strip],
        validators=[
            _required("Change note", ": say why the schedule changes"),
            _at_most("Change note", NOTE_MAX_LENGTH),
        ],
    )


# --- staff -----------------------------------------------------------------------------------


class StaffForm(SafeForm):
    display_name = _text("Full name", 200)
    role = RadioField("Role", validate_choice=False, validators=[_required("Role")])
    units = SelectMultipleField("Units", validate_choice=False)

    def __init__(
        self, *args: Any, roles: Iterable[Role], units: Iterable[Unit], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.role.choices = [SelectChoice(role.value, role.label) for role in roles]
        self.units.choices = unit_choices(units)


def _password(label: str) -> PasswordField:
    return PasswordField(
        label,
        validators=[
            _required(label),
            Length(
                min=MIN_PASSWORD_LENGTH,
                message=f"{label} must be at least {MIN_PASSWORD_LENGTH} characters.",
            ),
            _at_most(label, 256),
        ],
    )


def _password_again() -> PasswordField:
    return PasswordField(
        "Repeat the password",
        validators=[
            _required("Repeat the password"),
            EqualTo("password", message="Repeat the password: the two passwords differ."),
        ],
    )


class NewStaffForm(StaffForm):
    username = StringField(
        "Username",
        filters=[_strip],
        validators=[_required("Username"), _at_most("Username", 64)],
    )
    password = _password("Password")
    confirm = _password_again()


class EditStaffForm(StaffForm):
    active = BooleanField("Account active (can log in)")


class PasswordForm(SafeForm):
    password = _password("New password")
    confirm = _password_again()


# --- patients and their flaps ----------------------------------------------------------------


class PatientForm(SafeForm):
    mrn = _text("MRN", 32)
    name = _text("Name", 200)
    date_of_birth = DateField(
        "Date of birth",
        invalid_value_message="Date of birth must be a date, e.g. 1960-01-31.",
        # InputRequired, not DataRequired: a typed but impossible date keeps its own message.
        validators=[InputRequired(message="Date of birth is required.")],
    )
    unit = SelectField("Unit", validate_choice=False, validators=[_required("Unit")])
    bed = _text("Bed", 32, required=False)

    def __init__(self, *args: Any, units: Iterable[Unit], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.unit.choices = [SelectChoice("", "Choose a unit"), *unit_choices(units)]

    def details(self) -> PatientDetails:
        """The values of a form that validated."""
        return PatientDetails(
            mrn=self.mrn.data or "",
            name=self.name.data or "",
            date_of_birth=self.date_of_birth.data,
            bed=self.bed.data or None,
        )


class ReconstructionForm(SafeForm):
    procedure = _text("Procedure", 200)
    flap_kind = _vocabulary(FlapKind, "Flap kind")
    site = _text("Site", 200)
    side = _vocabulary(Side, "Side")
    surgery_end_at = LocalDateTimeField("End of surgery", validators=[_required("End of surgery")])
    surgeon = _text("Surgeon", 200)
    buried = BooleanField("Buried flap (no skin paddle: Doppler and StO₂ only)")

    def __init__(self, *args: Any, zone: ZoneInfo, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.surgery_end_at.zone = zone

    def details(self) -> ReconstructionDetails:
        """The values of a form that validated."""
        assert self.surgery_end_at.moment is not None
        return ReconstructionDetails(
            procedure=self.procedure.data or "",
            flap_kind=FlapKind(self.flap_kind.data),
            site=self.site.data or "",
            side=Side(self.side.data),
            surgery_end_at=self.surgery_end_at.moment,
            surgeon=self.surgeon.data or "",
            buried=bool(self.buried.data),
        )


class StartMonitoringForm(ReconstructionForm):
    """The second screen of starting a flap's monitoring: the patient found by MRN
    (`patient_id`, the bed only) or registered now (MRN, name, date of birth, bed), and the
    flap."""

    patient_id = IntegerField(widget=HiddenInput(), validators=[Optional()])
    mrn = StringField("MRN", filters=[_strip], validators=[_at_most("MRN", 32)])
    name = StringField("Name", filters=[_strip], validators=[_at_most("Name", 200)])
    date_of_birth = DateField(
        "Date of birth",
        invalid_value_message="Date of birth must be a date, e.g. 1960-01-31.",
        validators=[Optional()],
    )
    bed = _text("Bed", 32, required=False)

    def validate(self, extra_validators: Any = None) -> bool:
        valid = super().validate(extra_validators)
        if self.patient_id.data is None:  # a patient registered now: all three identifiers
            for field, label in ((self.mrn, "MRN"), (self.name, "Name")):
                if not field.data:
                    field.errors = [*field.errors, f"{label} is required."]
                    valid = False
            if self.date_of_birth.data is None and not self.date_of_birth.errors:
                self.date_of_birth.errors = ["Date of birth is required."]
                valid = False
        return valid

    def patient(self) -> PatientDetails | None:
        """The patient to register, or None for one found by MRN."""
        if self.patient_id.data is not None:
            return None
        return PatientDetails(
            mrn=self.mrn.data or "",
            name=self.name.data or "",
            date_of_birth=self.date_of_birth.data,
            bed=self.bed.data or None,
        )


class StatusForm(SafeForm):
    status = _vocabulary(ReconstructionStatus, "Status")
    note = TextAreaField(
        "Note (why)", filters=[_strip], validators=[_at_most("Note", NOTE_MAX_LENGTH)]
    )
    # Back from theatre: the schedule restarts from now, or continues (the button pressed).
    time_zero = HiddenField()
