"""What was recorded as a FHIR R4 (4.0.1) Bundle of type `collection`, written as a stream.

One Patient per patient, one Procedure per reconstruction (the flap), one Observation per check
(its current version, the assessments as components), and for each escalation a Flag (the
alert while it was open) and a DetectedIssue (what was found, the checks implicated, and the
surgeon's acknowledgement as its mitigation). LOINC codes where one exists for the assessment;
everything else in flapwatch's own code system, which leads the Bundle as a CodeSystem resource
so that the Bundle documents itself (README "FHIR").

The entries are JSON written one at a time, so a Bundle of a million checks holds a batch of
rows in memory, never the Bundle. Resource ids and fullUrls are derived from flapwatch's ids
(`urn:uuid:` name-based UUIDs), so exporting twice gives the same ids, and an Observation keeps
its id (and identifier) through corrections: a corrected check is the same Observation,
status `amended`, with a higher `meta.versionId`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flapwatch.domain.vocabulary import (
    CapillaryRefill,
    Colour,
    DopplerArterial,
    DopplerVenous,
    EscalationOutcome,
    FinalOutcome,
    FlapKind,
    Labelled,
    NotDoneReason,
    Pinprick,
    ReconstructionStatus,
    Severity,
    Side,
    Turgor,
)

FHIR_VERSION = "4.0.1"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
FLAG_CATEGORY = "http://terminology.hl7.org/CodeSystem/flag-category"

# The assessments of a check (DESIGN.md §2), as Observation components: flapwatch's field name
# is the local code; a LOINC code beside it where LOINC has the assessment. A LOINC code is
# shared by both temperatures (body surface temperature), so the local code tells them apart.
NUMERIC: dict[str, tuple[str, str, str, tuple[str, str] | None]] = {
    # field: (display, UCUM code, unit shown, LOINC (code, display))
    "flap_temperature_c": (
        "Flap skin temperature",
        "Cel",
        "°C",
        ("61008-9", "Body surface temperature"),
    ),
    "control_temperature_c": (
        "Control skin temperature",
        "Cel",
        "°C",
        ("61008-9", "Body surface temperature"),
    ),
    "temperature_difference_c": (
        "Temperature difference, control minus flap",
        "Cel",
        "°C",
        None,
    ),
    "capillary_refill_s": (
        "Capillary refill time",
        "s",
        "s",
        ("44971-0", "Capillary refill [Time]"),
    ),
    "sto2_percent": ("Tissue oxygen saturation (StO2)", "%", "%", None),
}
CATEGORICAL: dict[str, tuple[str, type[Labelled], tuple[str, str] | None]] = {
    # field: (display, answers, LOINC (code, display))
    "colour": ("Flap colour", Colour, ("39107-8", "Color of Skin")),
    "capillary_refill": ("Capillary refill", CapillaryRefill, None),
    "doppler_arterial": ("Doppler, arterial signal", DopplerArterial, None),
    "doppler_venous": ("Doppler, venous signal", DopplerVenous, None),
    "turgor": ("Flap turgor", Turgor, ("39109-4", "Turgor [Interpretation] of Skin")),
    "pinprick": ("Pinprick bleeding", Pinprick, None),
}
# The order of the components: as the check form asks them.
COMPONENT_ORDER = (
    "colour",
    "flap_temperature_c",
    "control_temperature_c",
    "temperature_difference_c",
    "capillary_refill",
    "capillary_refill_s",
    "doppler_arterial",
    "doppler_venous",
    "turgor",
    "pinprick",
    "sto2_percent",
)
CHECK_CODE = ("flap-check", "Free flap monitoring check")
ESCALATION_CODE = ("escalation", "Flap escalation")
INTERPRETATIONS = {
    Severity.RED: ("AA", "Critical abnormal"),
    Severity.AMBER: ("A", "Abnormal"),
}
ISSUE_SEVERITY = {Severity.RED: "high", Severity.AMBER: "moderate"}
ANSWER_SETS: dict[str, type[Labelled]] = {
    **{field: answers for field, (_, answers, _) in CATEGORICAL.items()},
    "flap_kind": FlapKind,
    "flap_status": ReconstructionStatus,
    "final_outcome": FinalOutcome,
    "side": Side,
    "severity": Severity,
    "outcome": EscalationOutcome,
}


@dataclass(frozen=True)
class Terminology:
    """Where flapwatch's own codes and identifiers live: `base` is a URL the site controls
    (FHIR_SYSTEM_BASE), the MRN system the hospital's own (FHIR_MRN_SYSTEM)."""

    base: str
    mrn_system: str | None = None
    # Where the API answers (BASE_URL's, else this server's own path): a photo's Media says
    # where its image is read.
    api_base: str = "/api/v1"

    @classmethod
    def of(cls, config: Mapping[str, Any]) -> Terminology:
        """The site's terminology, from the app's settings."""
        base_url = str(config.get("BASE_URL") or "").rstrip("/")
        return cls(
            base=str(config["FHIR_SYSTEM_BASE"]).rstrip("/"),
            mrn_system=config.get("FHIR_MRN_SYSTEM") or None,
            api_base=f"{base_url}/api/v1",
        )

    @property
    def code_system(self) -> str:
        return f"{self.base}/CodeSystem/flapwatch"

    @property
    def patient_identifiers(self) -> str:
        return self.mrn_system or f"{self.base}/mrn"

    def identifier_system(self, kind: str) -> str:
        return f"{self.base}/{kind}"

    def rule_system(self, unit_code: str) -> str:
        """A unit's escalation rules: their ids are the unit's own, so the system is too."""
        return f"{self.base}/CodeSystem/escalation-rule/{unit_code}"

    def full_url(self, resource_type: str, resource_id: str) -> str:
        namespace = uuid.uuid5(uuid.NAMESPACE_URL, self.base)
        return f"urn:uuid:{uuid.uuid5(namespace, f'{resource_type}/{resource_id}')}"

    def coding(self, code: str, display: str) -> dict[str, str]:
        return {"system": self.code_system, "code": code, "display": display}

    def answer(self, field: str, value: str) -> dict[str, Any]:
        label = ANSWER_SETS[field](value).label
        return {"coding": [self.coding(f"{field}.{value}", label)], "text": label}


def _instant(moment: datetime) -> str:
    """A FHIR instant/dateTime: seconds, UTC offset always given."""
    return moment.isoformat(timespec="seconds")


# --- the local code system ------------------------------------------------------------------


def code_system(terms: Terminology) -> dict[str, Any]:
    """flapwatch's code system: every local code the Bundle uses, with its meaning."""
    concepts = [
        {"code": CHECK_CODE[0], "display": CHECK_CODE[1],
         "definition": "A bedside check of a free flap or replant: the assessments recorded "
         "together at one time (components)."},
        {"code": ESCALATION_CODE[0], "display": ESCALATION_CODE[1],
         "definition": "A flagged check or a missed check has called a surgeon to the flap."},
    ]  # fmt: skip
    for field in COMPONENT_ORDER:
        display = NUMERIC[field][0] if field in NUMERIC else CATEGORICAL[field][0]
        concepts.append({"code": field, "display": display})
    for field, answers in ANSWER_SETS.items():
        for member in answers:
            concepts.append({"code": f"{field}.{member.value}", "display": member.label})
    return {
        "resourceType": "CodeSystem",
        "id": "flapwatch",
        "url": terms.code_system,
        "name": "Flapwatch",
        "title": "flapwatch free-flap monitoring codes",
        "status": "active",
        "content": "complete",
        "caseSensitive": True,
        "description": "Assessments and answers of a free-flap check, flap kinds and "
        "statuses, escalation severities and outcomes, where LOINC or SNOMED CT has no code. "
        "An answer's code is `<assessment>.<answer>`.",
        "count": len(concepts),
        "concept": concepts,
    }


# --- resources -------------------------------------------------------------------------------


def patient(terms: Terminology, row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": f"patient-{row['patient_id']}",
        "identifier": [{"use": "usual", "system": terms.patient_identifiers, "value": row["mrn"]}],
        "name": [{"text": row["name"]}],
        "birthDate": row["date_of_birth"].isoformat(),
    }


def procedure(terms: Terminology, row: Mapping[str, Any]) -> dict[str, Any]:
    status = row["status"]
    notes = [{"text": "Buried flap (monitored by implanted or external device)."}]
    body_site = row["site"] if row["side"] == Side.NA else f"{row['site']} ({row['side']})"
    return {
        "resourceType": "Procedure",
        "id": f"flap-{row['reconstruction_id']}",
        "identifier": [
            {
                "system": terms.identifier_system("reconstruction"),
                "value": str(row["reconstruction_id"]),
            }
        ],  # fmt: skip
        "status": "completed",
        "code": {
            "coding": [
                terms.coding(f"flap_kind.{row['flap_kind']}", FlapKind(row["flap_kind"]).label)
            ],
            "text": row["procedure"],
        },
        "subject": {"reference": terms.full_url("Patient", f"patient-{row['patient_id']}")},
        "performedPeriod": {"end": _instant(row["surgery_end_at"])},
        "performer": [{"actor": {"display": row["surgeon"]}}],
        "bodySite": [{"text": body_site}],
        # What became of the flap once recorded; until then where its monitoring stands.
        "outcome": (
            terms.answer("final_outcome", row["final_outcome"])
            if row.get("final_outcome")
            else terms.answer("flap_status", status)
        ),
        **({"note": notes} if row["buried"] else {}),
    }


def _component(terms: Terminology, field: str, value: Any) -> dict[str, Any]:
    if field in NUMERIC:
        display, ucum, shown, loinc = NUMERIC[field]
        entry: dict[str, Any] = {
            "valueQuantity": {"value": value, "unit": shown, "system": UCUM, "code": ucum}
        }
    else:
        display, _, loinc = CATEGORICAL[field]
        entry = {"valueCodeableConcept": terms.answer(field, value)}
    coding = [terms.coding(field, display)]
    if loinc is not None:
        coding.insert(0, {"system": LOINC, "code": loinc[0], "display": loinc[1]})
    return {"code": {"coding": coding, "text": display}, **entry}


def _check_of_flap(terms: Terminology, row: Mapping[str, Any]) -> dict[str, Any]:
    """What every Observation of a check says, done or not: a flap check of this patient's
    flap, when it was taken and by whom."""
    return {
        "category": [
            {"coding": [{"system": OBSERVATION_CATEGORY, "code": "exam", "display": "Exam"}]}
        ],
        "code": {"coding": [terms.coding(*CHECK_CODE)], "text": CHECK_CODE[1]},
        "subject": {"reference": terms.full_url("Patient", f"patient-{row['patient_id']}")},
        "focus": [{"reference": terms.full_url("Procedure", f"flap-{row['reconstruction_id']}")}],
        "effectiveDateTime": _instant(row["taken_at"]),
        # Who took it: a correction changes what was written, not who looked at the flap.
        "performer": [{"display": row.get("taken_by") or row["recorded_by"]}],
    }


def observation(terms: Terminology, row: Mapping[str, Any]) -> dict[str, Any]:
    """A check's current version. `root_id` is the check's first version: the Observation's
    id through every correction."""
    check_id = f"check-{row['root_id']}"
    status = "entered-in-error" if row["entered_in_error"] else (
        "amended" if row["version"] > 1 else "final"
    )  # fmt: skip
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": check_id,
        "meta": {"versionId": str(row["version"]), "lastUpdated": _instant(row["recorded_at"])},
        "identifier": [{"system": terms.identifier_system("check"), "value": str(row["root_id"])}],
        "status": status,
        **_check_of_flap(terms, row),
        "issued": _instant(row["first_recorded_at"]),
    }
    if row.get("source") == "device":
        # A device's reading: the device that measured it, the account that sent it.
        resource["device"] = {"display": row["device"]}
    severity = row["severity"]
    if severity and not row["entered_in_error"]:
        code, display = INTERPRETATIONS[Severity(severity)]
        resource["interpretation"] = [
            {
                "coding": [{"system": INTERPRETATION, "code": code, "display": display}],
                "text": f"Flagged {severity}: {row['flags']}",
            }
        ]
    notes = []
    if row["notes"]:
        notes.append({"text": row["notes"]})
    if row["amendment_reason"]:
        notes.append({"text": f"Corrected: {row['amendment_reason']}"})
    if notes:
        resource["note"] = notes
    components = [
        _component(terms, field, row[field])
        for field in COMPONENT_ORDER
        if row.get(field) is not None
    ]
    if components:
        resource["component"] = components
    return resource


DATA_ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
# Why a check could not be done, as FHIR's data-absent reasons say it.
NOT_DONE_ABSENT = {
    "patient_refused": ("asked-declined", "Asked But Declined"),
    "patient_off_ward": ("not-performed", "Not Performed"),
    "dressing_not_removable": ("not-performed", "Not Performed"),
    "other": ("not-performed", "Not Performed"),
}


def observation_not_done(terms: Terminology, row: Mapping[str, Any]) -> dict[str, Any]:
    """A check that fell due and could not be done: the check's Observation, cancelled, with
    no value and why (`dataAbsentReason`)."""
    reason = str(row["reason"])
    code, display = NOT_DONE_ABSENT[reason]
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": f"not-done-{row['id']}",
        "identifier": [
            {"system": terms.identifier_system("check-not-done"), "value": str(row["id"])}
        ],
        "status": "cancelled",
        **_check_of_flap(terms, row),
        "issued": _instant(row["recorded_at"]),
        "dataAbsentReason": {
            "coding": [{"system": DATA_ABSENT, "code": code, "display": display}],
            "text": NotDoneReason(reason).label,
        },
    }
    if row["note"]:
        resource["note"] = [{"text": row["note"]}]
    return resource


MEDIA_TYPE = "http://terminology.hl7.org/CodeSystem/media-type"


def media(terms: Terminology, row: Mapping[str, Any]) -> dict[str, Any]:
    """A photo of the flap taken with a check (or a check not done): R4's Media, part of that
    check's Observation. The image is not in the Bundle: `content.url` is where the flap's
    unit reads it (`url`), with its size and SHA-256 (an identifier: R4's `hash` is SHA-1)."""
    owner = (
        f"check-{row['check_id']}"
        if row["check_id"] is not None
        else f"not-done-{row['not_done_id']}"
    )
    return {
        "resourceType": "Media",
        "id": f"photo-{row['id']}",
        "identifier": [
            {"system": terms.identifier_system("photo"), "value": str(row["id"])},
            {"system": terms.identifier_system("photo-sha256"), "value": row["display_sha256"]},
        ],
        "status": "completed",
        "type": {"coding": [{"system": MEDIA_TYPE, "code": "image", "display": "Image"}]},
        "partOf": [{"reference": terms.full_url("Observation", owner)}],
        "subject": {"reference": terms.full_url("Patient", f"patient-{row['patient_id']}")},
        "createdDateTime": _instant(row["taken_at"]),
        "issued": _instant(row["uploaded_at"]),
        "operator": {"display": row["uploaded_by"]},
        "width": row["width"],
        "height": row["height"],
        "content": {
            "contentType": "image/jpeg",
            "url": row["url"],
            "size": row["display_bytes"],
            "title": f"flap-photo-{row['id']}.jpg",
            "creation": _instant(row["taken_at"]),
        },
    }


def flag(terms: Terminology, row: Mapping[str, Any]) -> dict[str, Any]:
    """The escalation as an alert on the patient's record while it was open."""
    severity = Severity(row["severity"])
    period = {"start": _instant(row["opened_at"])}
    if row["closed_at"] is not None:
        period["end"] = _instant(row["closed_at"])
    return {
        "resourceType": "Flag",
        "id": f"escalation-{row['escalation_id']}",
        "identifier": [
            {"system": terms.identifier_system("escalation"), "value": str(row["escalation_id"])}
        ],
        "status": "inactive" if row["closed_at"] is not None else "active",
        "category": [
            {"coding": [{"system": FLAG_CATEGORY, "code": "clinical", "display": "Clinical"}]}
        ],
        "code": {
            "coding": [
                terms.coding(*ESCALATION_CODE),
                terms.coding(f"severity.{severity.value}", severity.label),
            ],
            "text": f"{severity.label} flap escalation: {'; '.join(row['reasons'])}",
        },
        "subject": {"reference": terms.full_url("Patient", f"patient-{row['patient_id']}")},
        "period": period,
    }


def detected_issue(terms: Terminology, row: Mapping[str, Any]) -> dict[str, Any]:
    """What the rules found, the checks that showed it, and the surgeon's decision."""
    severity = Severity(row["severity"])
    rules = [
        {"system": terms.rule_system(row["unit"]), "code": rule_id, "display": name}
        for rule_id, name in row["rules"]
    ]
    resource: dict[str, Any] = {
        "resourceType": "DetectedIssue",
        "id": f"issue-{row['escalation_id']}",
        "identifier": [
            {"system": terms.identifier_system("escalation"), "value": str(row["escalation_id"])}
        ],
        "status": "final",
        "code": {"coding": [terms.coding(*ESCALATION_CODE), *rules], "text": ESCALATION_CODE[1]},
        "severity": ISSUE_SEVERITY[severity],
        "patient": {"reference": terms.full_url("Patient", f"patient-{row['patient_id']}")},
        "identifiedDateTime": _instant(row["opened_at"]),
        "detail": "; ".join(row["reasons"]),
    }
    if row["check_ids"]:
        resource["implicated"] = [
            {
                "type": "Observation",
                "identifier": {"system": terms.identifier_system("check"), "value": str(check)},
            }
            for check in row["check_ids"]
        ]
    if row["acknowledged_at"] is not None and row["outcome"]:
        mitigation: dict[str, Any] = {
            "action": terms.answer("outcome", row["outcome"]),
            "date": _instant(row["acknowledged_at"]),
        }
        if row["acknowledged_by"]:
            mitigation["author"] = {"display": row["acknowledged_by"]}
        resource["mitigation"] = [mitigation]
    return resource


# --- the Bundle ---------------------------------------------------------------------------------


def bundle_chunks(
    terms: Terminology, timestamp: datetime, resources: Iterator[dict[str, Any]]
) -> Iterator[str]:
    """The Bundle as JSON text, an entry at a time."""
    head = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"lastUpdated": _instant(timestamp)},
        "type": "collection",
        "timestamp": _instant(timestamp),
    }
    yield json.dumps(head, ensure_ascii=False)[:-1] + ', "entry": ['
    separator = ""
    batch: list[str] = []
    for resource in resources:
        entry = {"fullUrl": terms.full_url(resource["resourceType"], resource["id"]),
                 "resource": resource}  # fmt: skip
        batch.append(separator + json.dumps(entry, ensure_ascii=False, separators=(",", ":")))
        separator = ","
        if len(batch) >= 200:
            yield "".join(batch)
            batch.clear()
    batch.append("]}")
    yield "".join(batch)
