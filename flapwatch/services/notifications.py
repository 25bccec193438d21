"""Escalation notices to a unit's webhook (a paging gateway, say).

Queued inside the transaction that opens or acknowledges the escalation, so a notice is never
lost; sent afterwards, outside any transaction, so a slow or failing webhook never holds up or
loses a nurse's check.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import Session

from flapwatch.domain.vocabulary import DeliveryStatus
from flapwatch.models import Escalation, NotificationDelivery, utcnow


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment is not None else None


def escalation_payload(escalation: Escalation, event: str) -> dict[str, object]:
    reconstruction = escalation.reconstruction
    patient = reconstruction.patient
    return {
        "event": f"escalation.{event}",
        "escalation_id": escalation.id,
        "severity": escalation.severity.value,
        "reasons": list(escalation.reasons),
        "opened_at": _iso(escalation.opened_at),
        "acknowledged_at": _iso(escalation.acknowledged_at),
        "outcome": escalation.outcome.value if escalation.outcome else None,
        "unit": patient.unit.code,
        "bed": patient.bed,
        "patient": {"mrn": patient.mrn, "name": patient.name},
        "reconstruction": {
            "id": reconstruction.id,
            "procedure": reconstruction.procedure,
            "site": reconstruction.site,
            "side": reconstruction.side.value,
        },
    }


def queue_notification(session: Session, escalation: Escalation, event: str) -> None:
    url = escalation.reconstruction.patient.unit.webhook_url
    if not url:
        return
    session.add(
        NotificationDelivery(
            escalation_id=escalation.id,
            event=event,
            url=url,
            payload=escalation_payload(escalation, event),
            status=DeliveryStatus.PENDING,
            attempts=0,
            next_attempt_at=utcnow(),
        )
    )
