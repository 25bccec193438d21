"""A clinical photograph as flapwatch keeps it: bytes in, bytes out (Pillow).

What a camera sends is never stored. It is read by its content (JPEG, PNG, or HEIC, the
iPhone's own format), refused when it is not a photo, too large a file or too many pixels to
decode safely, turned upright by its orientation tag, converted to sRGB (so that a flap's
colour is seen as the camera saw it on every screen), and written afresh as two JPEGs: a
display size and a thumbnail. Nothing of its metadata goes with it: no EXIF (the place it was
taken, the device's serial number, the time on the phone's clock), no XMP, no comments, no
colour profile but the sRGB it now is. The original's SHA-256 is kept, as proof of what came.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

try:  # HEIC, as an iPhone's camera saves it, when the well-kept pillow-heif is installed
    from pillow_heif import register_heif_opener

    register_heif_opener()
    HEIC = True
except ImportError:  # pragma: no cover - the package is a dependency; a build without it
    HEIC = False

# The formats a photo may come in (Pillow's names), and what the refusal names them.
ACCEPTED = {"JPEG": "JPEG", "PNG": "PNG", "MPO": "JPEG", **({"HEIF": "HEIC"} if HEIC else {})}
MAX_BYTES = 20 * 1024 * 1024  # a 48-megapixel phone photo is under 15 MB
MAX_PIXELS = 50_000_000  # decoded once at most at a quarter of this (JPEG), or whole (PNG, HEIC)
MAX_SIDE = 12_000
DISPLAY_SIDE = 1600  # long side: a phone's screen twice over, a tablet's full width
THUMBNAIL_SIDE = 320
DISPLAY_QUALITY = 88
THUMBNAIL_QUALITY = 80
_SRGB = ImageCms.createProfile("sRGB")

# Pillow's own guard against decompression bombs (it refuses twice this): above ours, so
# that ours, which names the size, speaks first for any photo a camera could make.
Image.MAX_IMAGE_PIXELS = 10 * MAX_PIXELS


class PhotoRefused(ValueError):
    """Why the bytes are not stored, in words for the person who sent them."""


@dataclass(frozen=True)
class Rendition:
    """One of the JPEGs kept of a photo."""

    data: bytes
    width: int
    height: int

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class Photo:
    """A photo as kept: what came (its format, size and SHA-256) and its two renditions."""

    original_format: str
    original_bytes: int
    original_sha256: str
    original_width: int
    original_height: int
    display: Rendition
    thumbnail: Rendition


def _megabytes(count: int) -> str:
    return f"{count / (1024 * 1024):.1f} MB"


def prepare(data: bytes, name: str = "the photo") -> Photo:
    """Read `data` as a photo and make what is kept of it; PhotoRefused says why not."""
    if not data:
        raise PhotoRefused(f"{name.capitalize()} is empty: take it again.")
    if len(data) > MAX_BYTES:
        raise PhotoRefused(
            f"{name.capitalize()} is {_megabytes(len(data))}: at most "
            f"{_megabytes(MAX_BYTES)}. Take it again at the camera's usual size."
        )
    try:
        image = Image.open(io.BytesIO(data))  # reads the header only
    except Image.DecompressionBombError:
        raise PhotoRefused(
            f"{name.capitalize()} has far too many pixels: at most "
            f"{MAX_PIXELS // 1_000_000} megapixels and {MAX_SIDE:,} pixels a side."
        ) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise PhotoRefused(
            f"{name.capitalize()} is not a photo flapwatch can read: send a JPEG, PNG"
            + (" or HEIC" if HEIC else "")
            + " straight from the camera."
        ) from None
    with image:
        shown = ACCEPTED.get(image.format or "")
        if shown is None:
            raise PhotoRefused(
                f"{name.capitalize()} is a {image.format or 'file of no known kind'}, not a "
                "JPEG, PNG" + (" or HEIC" if HEIC else "") + " photo."
            )
        width, height = image.size
        if width * height > MAX_PIXELS or max(width, height) > MAX_SIDE:
            raise PhotoRefused(
                f"{name.capitalize()} is {width:,} × {height:,} pixels: at most "
                f"{MAX_PIXELS // 1_000_000} megapixels and {MAX_SIDE:,} pixels a side."
            )
        try:
            renditions = _renditions(image)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            raise PhotoRefused(
                f"{name.capitalize()} is damaged (it could not be read to the end): take it again."
            ) from None
    display, thumbnail = renditions
    return Photo(
        original_format=shown,
        original_bytes=len(data),
        original_sha256=hashlib.sha256(data).hexdigest(),
        original_width=width,
        original_height=height,
        display=display,
        thumbnail=thumbnail,
    )


def _renditions(image: Image.Image) -> tuple[Rendition, Rendition]:
    if image.format in ("JPEG", "MPO"):
        # Decode at the smallest scale (1/2, 1/4, 1/8) still larger than the display size:
        # a 48-megapixel photo never needs its full size in memory.
        width, height = image.size
        scale = DISPLAY_SIDE / max(width, height)
        if scale < 1:  # the size asked for keeps its shape: the long side at least DISPLAY_SIDE
            image.draft("RGB", (max(1, round(width * scale)), max(1, round(height * scale))))
    profile = image.info.get("icc_profile")
    image.load()
    ImageOps.exif_transpose(image, in_place=True)  # the camera's orientation tag, applied
    rgb = _as_srgb(image, profile)
    rgb.thumbnail((DISPLAY_SIDE, DISPLAY_SIDE), Image.Resampling.LANCZOS)
    display = _jpeg(rgb, DISPLAY_QUALITY)
    scale = THUMBNAIL_SIDE / max(rgb.size)
    small = rgb.resize(
        (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale))),
        Image.Resampling.LANCZOS,
        reducing_gap=2.0,
    )
    return display, _jpeg(small, THUMBNAIL_QUALITY)


def _as_srgb(image: Image.Image, profile: bytes | None) -> Image.Image:
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        flat = Image.new("RGB", image.size, "white")  # a transparent PNG on white, not black
        flat.paste(image.convert("RGBA"), mask=image.convert("RGBA").getchannel("A"))
        image = flat
    if profile:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
            if image.mode not in ("RGB", "CMYK"):
                image = image.convert("RGB")
            return ImageCms.profileToProfile(image, source, _SRGB, outputMode="RGB")
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # a broken profile: its pixels as they are
    return image if image.mode == "RGB" else image.convert("RGB")


def _jpeg(image: Image.Image, quality: int) -> Rendition:
    """A fresh JPEG of the pixels alone: Pillow writes no EXIF, XMP, comment or profile it is
    not given, and it is given none (what the camera's file said is dropped with its info)."""
    image.info = {}
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality, optimize=True, progressive=True)
    return Rendition(out.getvalue(), image.width, image.height)
