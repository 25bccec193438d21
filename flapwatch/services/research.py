"""De-identified exports for a registry or a research team: every export kind but the audit
trail, with the MRN replaced by a keyed pseudonym (HMAC-SHA-256, the same for one key), no
name, the date of birth as age in years at surgery, every time as hours since the end of
surgery, no staff names, and free text left out unless asked for.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from flapwatch.exports.fhir import Terminology, bundle_chunks
from flapwatch.exports.tables import csv_chunks, write_workbook
from flapwatch.models import Patient, PatientStay, Reconstruction
from flapwatch.services import Actor, InvalidInput
from flapwatch.services.exports import COLUMNS, ExportScope, fhir_resources, record_export
from flapwatch.services.exports import KINDS as EXPORT_KINDS
from flapwatch.services.exports import rows as export_rows

# A key shorter than the hash it keys would be easier to guess than the MRNs it hides.
MIN_KEY_BYTES = 32
# Free text a nurse or surgeon typed: may name anyone, so left out unless asked for.
FREE_TEXT = {"checks": "notes", "amendments": "reason", "escalations": "note", "not_done": "note"}
# Who did what on the ward: not the research team's to know.
STAFF = {"taken_by", "recorded_by", "acknowledged_by", "closed_by", "amended_by"}
# Left out whatever is asked: a correction's before and after holds absolute times and text;
# photos of a person's body are never de-identified.
NEVER = {"changes", "photos"}
TIMES = {
    "taken_at", "first_recorded_at", "recorded_at", "amended_at", "opened_at", "flagged_at",
    "acknowledged_at", "attending_at", "decided_at", "closed_at",
}  # fmt: skip
# FHIR: every instant is hours since the end of the patient's first surgery,
# written from this moment (a dateTime must be a date: this one stands for time zero).
FHIR_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
FHIR_TIMES = {"effectiveDateTime", "issued", "lastUpdated", "start", "end",
              "identifiedDateTime", "date"}  # fmt: skip
PSEUDONYM_SYSTEM = "urn:flapwatch:pseudonym"
AGE_EXTENSION = "urn:flapwatch:age-at-surgery"
KINDS = ("checks", "amendments", "escalations", "not_done", "workbook", "fhir", "compliance")


def read_key(path: str | Path) -> bytes:
    """The pseudonymisation key from its file (kept apart from every export)."""
    try:
        key = Path(path).read_bytes().strip()
    except OSError as error:
        raise InvalidInput("No key.", {"key_file": f"Key file: {error.strerror}."}) from None
    if len(key) < MIN_KEY_BYTES:
        raise InvalidInput(
            "No key.", {"key_file": f"The key must be at least {MIN_KEY_BYTES} bytes."}
        )
    return key


@dataclass(frozen=True)
class Flap:
    surgery_end_at: datetime
    age_years: int
    pseudonym: str


@dataclass(frozen=True)
class Pseudonymiser:
    key: bytes
    with_notes: bool = False

    def pseudonym(self, mrn: str) -> str:
        digest = hmac.new(self.key, mrn.strip().encode("utf-8"), hashlib.sha256).hexdigest()
        return "P-" + digest[:20]

    def columns(self, kind: str) -> tuple[str, ...]:
        kept: list[str] = []
        for column in COLUMNS[kind]:
            if (
                column in STAFF
                or column in NEVER
                or (column == FREE_TEXT.get(kind) and not self.with_notes)
            ):
                continue
            kept += ["patient", "age_years"] if column == "patient_mrn" else [column]
        return tuple(kept)

    def rows(
        self, kind: str, rows: Iterable[dict[str, Any]], flaps: dict[int, Flap]
    ) -> Iterator[dict[str, Any]]:
        columns = self.columns(kind)
        for row in rows:
            flap = flaps[row["reconstruction_id"]]
            out = {
                column: (
                    _hours(row[column], flap.surgery_end_at) if column in TIMES else row.get(column)
                )
                for column in columns
                if column not in ("patient", "age_years")
            }
            out["patient"], out["age_years"] = flap.pseudonym, flap.age_years
            yield {column: out.get(column) for column in columns}

    def compliance(self, rows: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """The compliance report's rows: a flap's MRN as its pseudonym, no episode's clock
        time."""
        for row in rows:
            if row["section"] == "flap" and row["measure"] == "patient_mrn":
                row = {**row, "value": self.pseudonym(str(row["value"]))}
            elif row["section"] == "episode" and row["measure"] == "flagged_at":
                continue
            yield row

    def fhir(
        self,
        resources: Iterable[dict[str, Any]],
        patients: dict[str, Flap],
        full_url: Callable[[str, str], str],
    ) -> Iterator[dict[str, Any]]:
        """The Bundle's resources de-identified; `patients` by the Patient resource's id, each
        with its first surgery (its time zero)."""
        epoch: dict[str, datetime] = {}
        for resource in resources:
            if resource["resourceType"] == "Media":
                continue  # a photo of a person's body is never de-identified: left out
            if resource["resourceType"] == "Patient":
                flap = patients[resource["id"]]
                epoch[full_url("Patient", resource["id"])] = flap.surgery_end_at
                yield {
                    "resourceType": "Patient",
                    "id": resource["id"],
                    "identifier": [{"system": PSEUDONYM_SYSTEM, "value": flap.pseudonym}],
                    "extension": [
                        {
                            "url": AGE_EXTENSION,
                            "valueAge": {
                                "value": flap.age_years,
                                "unit": "a",
                                "system": "http://unitsofmeasure.org",
                                "code": "a",
                            },
                        }
                    ],  # fmt: skip
                }
                continue
            subject = (resource.get("subject") or resource.get("patient") or {}).get("reference")
            yield self._scrubbed(resource, epoch.get(subject) if subject else None)

    def _scrubbed(self, value: Any, zero: datetime | None, key: str = "") -> Any:
        if isinstance(value, dict):
            return {
                k: self._scrubbed(v, zero, k)
                for k, v in value.items()
                if not (k == "note" and not self.with_notes) and k not in ("performer", "author")
            }
        if isinstance(value, list):
            return [self._scrubbed(v, zero, key) for v in value]
        if key in FHIR_TIMES and isinstance(value, str) and zero is not None:
            moment = datetime.fromisoformat(value)
            return (FHIR_EPOCH + (moment - zero)).isoformat(timespec="seconds")
        return value


def _hours(moment: Any, zero: datetime) -> float | None:
    if moment is None:
        return None
    return round((moment - zero) / timedelta(hours=1), 2)


def _age(born: date, on: datetime) -> int:
    day = on.date()
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def flaps_in(
    session: Session, scope: ExportScope, pseudonymiser: Pseudonymiser
) -> tuple[dict[int, Flap], dict[str, Flap]]:
    """Every flap of the scope's unit (every unit) as the research rows need it, and each
    patient (by FHIR resource id) as of their first surgery."""
    query = select(
        Reconstruction.id, Patient.id, Reconstruction.surgery_end_at, Patient.mrn,
        Patient.date_of_birth,
    ).join(Patient).order_by(Reconstruction.surgery_end_at)  # fmt: skip
    if scope.unit is not None:  # every patient who has been on the unit: a transfer splits rows
        stayed = select(PatientStay.patient_id).where(PatientStay.unit_id == scope.unit.id)
        query = query.where(or_(Patient.unit_id == scope.unit.id, Patient.id.in_(stayed)))
    flaps: dict[int, Flap] = {}
    patients: dict[str, Flap] = {}
    for flap_id, patient_id, end, mrn, born in session.execute(query):
        flaps[flap_id] = Flap(end, _age(born, end), pseudonymiser.pseudonym(mrn))
        patients.setdefault(f"patient-{patient_id}", flaps[flap_id])
    return flaps, patients


def workbook_sheets(
    session: Session, scope: ExportScope, pseudonymiser: Pseudonymiser, flaps: dict[int, Flap]
) -> Iterator[tuple[str, tuple[str, ...], Iterator[dict[str, Any]]]]:
    """Every sheet of the workbook but the audit trail, de-identified."""
    for kind in EXPORT_KINDS:
        if kind == "audit":
            continue
        yield (
            kind,
            pseudonymiser.columns(kind),
            pseudonymiser.rows(kind, export_rows(session, kind, scope), flaps),
        )


def write_research(
    target: BinaryIO,
    session: Session,
    actor: Actor,
    kind: str,
    scope: ExportScope,
    pseudonymiser: Pseudonymiser,
    terms: Terminology,
    now: datetime,
) -> None:
    """Write the de-identified export of `kind` (one of KINDS) to `target`; its export is
    audited first, marked pseudonymised."""
    if kind not in KINDS:
        raise InvalidInput(
            "Nothing was exported.",
            {"kind": f"The {kind} export cannot be de-identified (it holds every record as it "
                     "was): choose one of " + ", ".join(KINDS) + "."},
        )  # fmt: skip
    # Deferred: the compliance service reads the exports service, which this one extends.
    from flapwatch.services.compliance import (
        COMPLIANCE_COLUMNS,
        compliance_reports,
        compliance_rows,
    )

    unit = scope.unit.code if scope.unit else None
    reports = (
        list(compliance_reports(session, actor, unit, scope.first_day, scope.last_day, now))
        if kind == "compliance"
        else []
    )
    fmt = {"workbook": "xlsx", "fhir": "json"}.get(kind, "csv")
    record_export(session, actor, kind, fmt, scope, pseudonymised=True,
                  with_notes=pseudonymiser.with_notes)  # fmt: skip
    flaps, patients = flaps_in(session, scope, pseudonymiser)
    if kind == "workbook":
        write_workbook(target, workbook_sheets(session, scope, pseudonymiser, flaps))
        return
    if kind == "fhir":
        resources = pseudonymiser.fhir(
            fhir_resources(session, scope, terms), patients, terms.full_url
        )
        for text in bundle_chunks(terms, now, resources):
            target.write(text.encode())
        return
    if kind == "compliance":
        table = itertools.chain.from_iterable(compliance_rows(r) for r in reports)
        chunks = csv_chunks(COMPLIANCE_COLUMNS, pseudonymiser.compliance(table))
    else:
        table = pseudonymiser.rows(kind, export_rows(session, kind, scope), flaps)
        chunks = csv_chunks(pseudonymiser.columns(kind), table)
    for chunk in chunks:
        target.write(chunk)
