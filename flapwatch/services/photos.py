"""Clinical photographs of the flap: taken with a check (or a check not done), kept stripped of
their metadata, shown only to the staff of the flap's unit, never deleted.

A photo's bytes are kept where every app server reads them: in the database (`photo_blobs`,
PostgreSQL `bytea` or a SQLite blob, in a table of their own and read in pieces), or, when a
deployment sets `PHOTO_DIRECTORY` (a directory every server mounts), in files named by their
SHA-256. Either way the photo's record holds the SHA-256 of each rendition and of the camera's
original, and so does its audit event: `audit-verify` finds a changed byte.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from flapwatch.db import write_transaction
from flapwatch.imaging import Photo as Prepared
from flapwatch.imaging import PhotoRefused, prepare
from flapwatch.models import (
    AuditEvent,
    Check,
    CheckNotDone,
    Photo,
    PhotoBlob,
    Reconstruction,
    utcnow,
)
from flapwatch.services import (
    CLINICAL_ROLES,
    Actor,
    InvalidInput,
    NotFound,
    require_role,
)
from flapwatch.services.audit import record_event
from flapwatch.services.patients import get_reconstruction

MAX_PER_RECORD = 3  # photos with one check (or one check not done)
# How long the photo link in an escalation's notices opens its photo (after log-in, to the
# staff of the flap's unit): a forwarded notice stops pointing at a photo of a patient.
LINK_MINUTES = 30
VARIANTS = ("display", "thumbnail")
CHUNK = 256 * 1024  # bytes read from the database at a time when a photo is served
CONSENT_ROLES = CLINICAL_ROLES


class PhotoStore:
    """Where a deployment keeps photo bytes: the database, or `directory` when one is set."""

    def __init__(self, directory: str | None = None) -> None:
        self.directory = Path(directory) if directory else None

    @property
    def kind(self) -> str:
        return "directory" if self.directory else "database"

    def path(self, sha256: str) -> Path:
        assert self.directory is not None
        return self.directory / sha256[:2] / f"{sha256}.jpg"

    def write(self, session: Session, photo: Photo, variant: str, data: bytes) -> None:
        """Inside the caller's transaction: the rendition's bytes, where they are kept.

        A file is written whole and synced before its name appears, and is named by its
        content: a transaction rolled back leaves at most a file no record names."""
        if self.directory is None:
            session.add(PhotoBlob(photo_id=photo.id, variant=variant, data=data))
            return
        target = self.path(photo.sha256_of(variant))
        if target.exists():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def chunks(self, session: Session, photo: Photo, variant: str) -> Iterator[bytes]:
        """The rendition's bytes, a piece at a time (never the whole photo in memory)."""
        if photo.storage == "directory":
            if self.directory is None:
                raise NotFound(f"Photo {photo.id} is kept in a photo directory not set here.")
            with self.path(photo.sha256_of(variant)).open("rb") as source:
                while piece := source.read(CHUNK):
                    yield piece
            return
        size = session.scalar(
            select(func.length(PhotoBlob.data)).where(
                PhotoBlob.photo_id == photo.id, PhotoBlob.variant == variant
            )
        )
        if size is None:
            raise NotFound(f"Photo {photo.id} has no {variant} stored.")
        for start in range(0, size, CHUNK):
            piece = session.scalar(
                select(func.substr(PhotoBlob.data, start + 1, CHUNK)).where(
                    PhotoBlob.photo_id == photo.id, PhotoBlob.variant == variant
                )
            )
            yield bytes(piece or b"")


@dataclass(frozen=True)
class Upload:
    """A file as it came: its name (for the refusal's words) and its bytes."""

    name: str
    data: bytes


def prepare_uploads(uploads: Sequence[Upload], field: str = "photos") -> list[Prepared]:
    """Each file read and re-encoded (outside any transaction: it takes a moment per photo);
    InvalidInput naming the field and the file when one is not a photo flapwatch keeps."""
    if len(uploads) > MAX_PER_RECORD:
        raise InvalidInput(
            "Nothing was saved.",
            {field: f"At most {MAX_PER_RECORD} photos with one check; {len(uploads)} were sent."},
        )
    prepared: list[Prepared] = []
    for number, upload in enumerate(uploads, start=1):
        label = f"photo {number}" + (f" ({upload.name})" if upload.name else "")
        try:
            prepared.append(prepare(upload.data, label))
        except PhotoRefused as refusal:
            raise InvalidInput("Nothing was saved.", {field: str(refusal)}) from None
    return prepared


def check_of_unit(session: Session, actor: Actor, check_id: int) -> Check:
    """A check of a flap in the actor's units (NotFound otherwise)."""
    check = session.get(Check, check_id)
    if check is None:
        raise NotFound(f"No check {check_id}.")
    get_reconstruction(session, actor, check.reconstruction_id)
    return check


def _root_check(session: Session, check: Check) -> Check:
    """A check's first version: its photos stay with it through every correction."""
    while check.amends_id is not None:
        earlier = session.get(Check, check.amends_id)
        if earlier is None:
            break
        check = earlier
    return check


def attach_photos(
    session: Session,
    actor: Actor,
    store: PhotoStore,
    prepared: Sequence[Prepared],
    *,
    check_id: int | None = None,
    not_done_id: int | None = None,
    now: datetime | None = None,
) -> list[Photo]:
    """Store photos made by `prepare_uploads` with a check (any of its versions) or a check not
    done; audited one event a photo. A photo already stored with it (the same original sent
    again) is not stored twice: the stored one is returned."""
    require_role(actor, *CLINICAL_ROLES)
    assert (check_id is None) != (not_done_id is None)
    now = now or utcnow()
    with write_transaction(session):
        if check_id is not None:
            check = session.get(Check, check_id)
            if check is None:
                raise NotFound(f"No check {check_id}.")
            flap = get_reconstruction(session, actor, check.reconstruction_id, for_update=True)
            record = _root_check(session, check)
            taken_at, owner = record.taken_at, {"check_id": record.id}
        else:
            row = session.get(CheckNotDone, not_done_id)
            if row is None:
                raise NotFound(f"No check not done {not_done_id}.")
            flap = get_reconstruction(session, actor, row.reconstruction_id, for_update=True)
            taken_at, owner = row.taken_at, {"not_done_id": row.id}
        _require_consent(flap)
        existing = {
            photo.original_sha256: photo
            for photo in session.scalars(select(Photo).filter_by(**owner).order_by(Photo.id))
        }
        fresh = [p for p in prepared if p.original_sha256 not in existing]
        fresh = list({p.original_sha256: p for p in fresh}.values())  # one of each
        if len(existing) + len(fresh) > MAX_PER_RECORD:
            raise InvalidInput(
                "Nothing was saved.",
                {"photos": f"At most {MAX_PER_RECORD} photos with one check; it has "
                           f"{len(existing)} already."},
            )  # fmt: skip
        stored = [existing[p.original_sha256] for p in prepared if p.original_sha256 in existing]
        for item in fresh:
            photo = Photo(
                reconstruction_id=flap.id,
                **owner,
                taken_at=taken_at,
                uploaded_at=now,
                uploaded_by_id=actor.user_id,
                original_format=item.original_format,
                original_bytes=item.original_bytes,
                original_sha256=item.original_sha256,
                original_width=item.original_width,
                original_height=item.original_height,
                width=item.display.width,
                height=item.display.height,
                display_bytes=len(item.display.data),
                display_sha256=item.display.sha256,
                thumbnail_bytes=len(item.thumbnail.data),
                thumbnail_sha256=item.thumbnail.sha256,
                storage=store.kind,
                hidden_reason="",
            )
            session.add(photo)
            session.flush()
            store.write(session, photo, "display", item.display.data)
            store.write(session, photo, "thumbnail", item.thumbnail.data)
            record_event(session, actor, "photo.add", "photo", photo.id, after=photo_record(photo))
            stored.append(photo)
    return stored


def photo_record(photo: Photo) -> dict[str, Any]:
    """What the audit trail holds of a photo: enough to prove its bytes unchanged."""
    return {
        "reconstruction_id": photo.reconstruction_id,
        "check_id": photo.check_id,
        "not_done_id": photo.not_done_id,
        "original_format": photo.original_format,
        "original_bytes": photo.original_bytes,
        "original_sha256": photo.original_sha256,
        "display_sha256": photo.display_sha256,
        "thumbnail_sha256": photo.thumbnail_sha256,
        "width": photo.width,
        "height": photo.height,
        "storage": photo.storage,
    }


def _require_consent(flap: Reconstruction) -> None:
    if flap.photo_consent is not True:
        said = "was declined" if flap.photo_consent is False else "has not been recorded"
        raise InvalidInput(
            "No photo was saved.",
            {"photos": f"Consent to photographs {said} for this flap: record the "
                       "patient's consent on the flap's page first."},
        )  # fmt: skip


def get_photo(session: Session, actor: Actor, photo_id: int) -> Photo:
    """A photo of a flap in the actor's units (hidden ones too: their record stays readable
    to the unit, with why they were hidden)."""
    photo = session.get(Photo, photo_id)
    if photo is None:
        raise NotFound(f"No photo {photo_id}.")
    get_reconstruction(session, actor, photo.reconstruction_id)  # NotFound outside the units
    return photo


def photos_of(session: Session, reconstruction_ids: Sequence[int]) -> dict[int, list[Photo]]:
    """Each flap's photos that are not hidden, oldest first."""
    found: dict[int, list[Photo]] = {flap_id: [] for flap_id in reconstruction_ids}
    if not reconstruction_ids:
        return found
    for photo in session.scalars(
        select(Photo)
        .where(Photo.reconstruction_id.in_(list(reconstruction_ids)), Photo.hidden_at.is_(None))
        .order_by(Photo.taken_at, Photo.id)
    ):
        found[photo.reconstruction_id].append(photo)
    return found


def hide_photo(
    session: Session, actor: Actor, photo_id: int, reason: str, now: datetime | None = None
) -> Photo:
    """Entered in error (the wrong patient, a photo of something else): hidden from every
    page and export, never erased; who and why are kept and audited."""
    require_role(actor, *CLINICAL_ROLES)
    reason = reason.strip()
    if not reason:
        raise InvalidInput("The photo was not hidden.", {"reason": "Say why it is hidden."})
    with write_transaction(session):
        photo = get_photo(session, actor, photo_id)
        get_reconstruction(session, actor, photo.reconstruction_id, for_update=True)
        if photo.hidden:
            raise InvalidInput("The photo was not hidden.", {"": "It is hidden already."})
        photo.hidden_at = now or utcnow()
        photo.hidden_by_id = actor.user_id
        photo.hidden_reason = reason
        record_event(session, actor, "photo.hide", "photo", photo.id, after={"reason": reason})
    return photo


def set_photo_consent(
    session: Session, actor: Actor, reconstruction_id: int, consent: bool | None
) -> Reconstruction:
    """Record whether the patient agreed to photographs of this flap (None: not asked)."""
    require_role(actor, *CONSENT_ROLES)
    with write_transaction(session):
        flap = get_reconstruction(session, actor, reconstruction_id, for_update=True)
        if flap.photo_consent == consent:
            return flap
        before = {"photo_consent": flap.photo_consent}
        flap.photo_consent = consent
        flap.photo_consent_by_id = actor.user_id
        flap.photo_consent_at = utcnow()
        record_event(
            session, actor, "reconstruction.photo_consent", "reconstruction", flap.id,
            before=before, after={"photo_consent": consent},
        )  # fmt: skip
    return flap


# --- the short-lived link in an escalation's notices --------------------------------------------


class PhotoLinks:
    """Signed links to a photo that stop opening it after LINK_MINUTES (the app's secret key
    signs them: any of its servers checks them)."""

    def __init__(self, secret: str | bytes) -> None:
        self._key = hashlib.sha256(
            b"flapwatch photo link\x00" + (secret.encode() if isinstance(secret, str) else secret)
        ).digest()

    def _signature(self, photo_id: int, expires: int) -> str:
        message = f"{photo_id}:{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:32]

    def path(self, photo_id: int, now: datetime) -> str:
        expires = int(now.timestamp()) + LINK_MINUTES * 60
        signature = self._signature(photo_id, expires)
        return f"/photos/{photo_id}/link?expires={expires}&signature={signature}"

    def still_open(self, photo_id: int, expires: str, signature: str, now: datetime) -> bool:
        if not expires.isdigit():
            return False
        expected = self._signature(photo_id, int(expires))
        return hmac.compare_digest(expected, signature) and now.timestamp() <= int(expires)


_links: PhotoLinks | None = None


def configure_links(secret: str | bytes) -> PhotoLinks:
    """Set at the app's start from its secret key (flapwatch.http.photos.init_photos)."""
    global _links
    _links = PhotoLinks(secret)
    return _links


def notice_photo(session: Session, reconstruction_id: int, now: datetime) -> dict[str, Any] | None:
    """What an escalation's notice says of the flap's newest photo: its id, time and a link that
    opens it for 30 minutes after log-in; never the image. None without a photo (or links)."""
    if _links is None:
        return None
    photo = session.scalars(
        select(Photo)
        .where(Photo.reconstruction_id == reconstruction_id, Photo.hidden_at.is_(None))
        .order_by(Photo.taken_at.desc(), Photo.id.desc())
        .limit(1)
    ).first()
    if photo is None:
        return None
    return {
        "id": photo.id,
        "taken_at": photo.taken_at.astimezone(UTC).isoformat(),
        "link": _links.path(photo.id, now),
        "link_expires_minutes": LINK_MINUTES,
    }


def photo_link_open(photo_id: int, expires: str, signature: str, now: datetime) -> bool:
    return _links is not None and _links.still_open(photo_id, expires, signature, now)


# --- verifying ---------------------------------------------------------------------------------


def verify_photos(session: Session, store: PhotoStore) -> tuple[int, str | None]:
    """Every photo's bytes against the SHA-256 its record and its audit event hold: (photos
    checked, the first disagreement in words or None)."""
    recorded = {
        int(object_id): after
        for object_id, after in session.execute(
            select(AuditEvent.object_id, AuditEvent.after).where(
                AuditEvent.object_type == "photo", AuditEvent.action == "photo.add"
            )
        )
    }
    count = 0
    for photo in session.scalars(select(Photo).order_by(Photo.id).execution_options(yield_per=200)):
        count += 1
        after = recorded.get(photo.id)
        if after is None:
            return count, f"photo {photo.id}: has no record in the audit trail"
        for variant in VARIANTS:
            expected = after.get(f"{variant}_sha256")
            if photo.sha256_of(variant) != expected:
                return count, f"photo {photo.id}: its record differs from the audit trail"
            digest = hashlib.sha256()
            try:
                for piece in store.chunks(session, photo, variant):
                    digest.update(piece)
            except (OSError, NotFound):
                return count, f"photo {photo.id}: its {variant} bytes are missing"
            if digest.hexdigest() != expected:
                return count, f"photo {photo.id}: its {variant} bytes have changed"
    return count, None
