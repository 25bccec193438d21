"""Photos over HTTP, for the pages and the API alike: the larger bodies of the routes that take
them, where their bytes are kept, and each photo served to the staff of its unit only, never
to be kept by a browser or a proxy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, Response, current_app, request, stream_with_context
from werkzeug.datastructures import FileStorage

from flapwatch.db import get_session
from flapwatch.imaging import Photo as Prepared
from flapwatch.services import Actor, NotFound
from flapwatch.services.photos import (
    VARIANTS,
    PhotoStore,
    Upload,
    configure_links,
    get_photo,
    prepare_uploads,
)

STORE_KEY = "flapwatch.photo_store"
View = TypeVar("View", bound=Callable[..., Any])


def accepts_photos(view: View) -> View:
    """Mark a route whose request may carry photos: its body may be PHOTO_REQUEST_MAX_BYTES."""
    view.accepts_photos = True  # type: ignore[attr-defined]
    return view


def init_photos(app: Flask) -> None:
    """Registered before the CSRF check, which reads the form (and so the body's limit)."""
    app.extensions[STORE_KEY] = PhotoStore(app.config.get("PHOTO_DIRECTORY"))
    configure_links(str(app.config["SECRET_KEY"]))
    app.before_request(_allow_photo_bodies)


def _allow_photo_bodies() -> None:
    view = current_app.view_functions.get(request.endpoint or "")
    if getattr(view, "accepts_photos", False):
        request.max_content_length = int(current_app.config["PHOTO_REQUEST_MAX_BYTES"])


def photo_store() -> PhotoStore:
    store: PhotoStore = current_app.extensions[STORE_KEY]
    return store


def uploads_of(files: list[FileStorage]) -> list[Upload]:
    """The files of a form's photo field; a field left empty sends one part with no name. (How
    many a record may have, and what each must be, is `services.photos.prepare_uploads`'.)"""
    return [
        Upload(name=f.filename or "", data=f.read())
        for f in files
        if f.filename or f.content_length
    ]


def form_photos() -> list[Prepared]:
    """The photos sent with a page's form (its `photos` field), read and re-encoded before the
    record's transaction: it takes a moment a photo."""
    return prepare_uploads(uploads_of(request.files.getlist("photos")))


def photo_response(actor: Actor, photo_id: int, variant: str) -> Response:
    """The photo's display size or thumbnail, streamed from where it is kept."""
    if variant not in VARIANTS:
        raise NotFound(f"No {variant} of a photo.")
    session = get_session()
    photo = get_photo(session, actor, photo_id)
    if photo.hidden:
        raise NotFound(f"Photo {photo_id} was entered in error and is hidden.")
    store = photo_store()
    pieces = store.chunks(session, photo, variant)
    first = next(pieces, b"")  # a photo whose bytes are missing fails here, before the answer

    def body() -> Any:
        yield first
        yield from pieces

    response = Response(stream_with_context(body()), mimetype="image/jpeg")
    response.content_length = photo.bytes_of(variant)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Disposition"] = f'inline; filename="flap-photo-{photo.id}.jpg"'
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
    response.headers["ETag"] = f'"{photo.sha256_of(variant)}"'
    return response
