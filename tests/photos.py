"""Photos as cameras and careless senders make them, for the photo tests."""

from __future__ import annotations

import io
import struct
import zlib
from functools import lru_cache

from PIL import ExifTags, Image

GPS_LATITUDE = (51.0, 30.0, 12.5)
SERIAL = "SN-99887766"
MAKER = "FlapCam"


def camera_jpeg(width: int = 400, height: int = 300, colour=(196, 120, 124)) -> bytes:
    """A phone's JPEG: EXIF with the place it was taken (GPS), the device's make, model and
    serial number, an orientation tag (turn 90° to stand upright) and a comment."""
    image = Image.new("RGB", (width, height), colour)
    for x in range(width // 2):  # a dark corner, to tell which way up it is stored
        for y in range(height // 4):
            image.putpixel((x, y), (20, 20, 20))
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = MAKER
    exif[ExifTags.Base.Model] = "Ward Phone 3"
    exif[ExifTags.Base.Orientation] = 6
    exif[ExifTags.Base.BodySerialNumber] = SERIAL
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = GPS_LATITUDE
    gps[ExifTags.GPS.GPSLongitudeRef] = "W"
    gps[ExifTags.GPS.GPSLongitude] = (0.0, 7.0, 39.0)
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif, comment=b"bed 4, Ward 3", quality=90)
    return out.getvalue()


def plain_png(width: int = 64, height: int = 48) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (180, 110, 110)).save(out, "PNG")
    return out.getvalue()


@lru_cache(maxsize=2)
def huge_png(side: int = 20_000) -> bytes:
    """A real, valid PNG of side × side pixels (a black square), a few tens of kilobytes on
    disk and gigabytes once decoded: made row by row, never in memory whole."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1-bit greyscale
    compressor = zlib.compressobj(6)
    row = b"\x00" + b"\x00" * ((side + 7) // 8)
    data = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )


NOT_AN_IMAGE = b"%PDF-1.4 this is not a photo of a flap\n" * 40
