"""Recognise PNG and JPEG by content, and reject truncated or corrupt files.

Pure Python (struct + zlib): the Lambda zip carries no Pillow, and walking the container
structure is enough to catch text files, wrong magic and files cut short in transfer.
"""

from __future__ import annotations

import struct
import zlib

from lambdas.errors import InvalidImage

PNG = "image/png"
JPEG = "image/jpeg"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _preview(data: bytes) -> str:
    return repr(data[:16])


def check_png(data: bytes) -> None:
    """Walk every chunk: lengths in bounds, CRCs right, IHDR first, IDAT present, IEND last."""
    offset = len(_PNG_SIGNATURE)
    seen_idat = False
    first = True
    while True:
        if offset + 8 > len(data):
            raise InvalidImage(
                f"truncated PNG: chunk header at byte {offset} is cut off "
                f"(file has {len(data)} bytes, no IEND chunk)"
            )
        length, ctype = struct.unpack(">I4s", data[offset : offset + 8])
        end = offset + 8 + length + 4
        if end > len(data):
            raise InvalidImage(
                f"truncated PNG: chunk {ctype!r} at byte {offset} needs {length + 12} bytes, "
                f"only {len(data) - offset} remain"
            )
        body = data[offset + 4 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : end])
        if zlib.crc32(body) & 0xFFFFFFFF != crc:
            raise InvalidImage(f"corrupt PNG: CRC mismatch in chunk {ctype!r} at byte {offset}")
        if first:
            if ctype != b"IHDR" or length != 13:
                raise InvalidImage("corrupt PNG: first chunk is not a 13-byte IHDR")
            width, height = struct.unpack(">II", body[4:12])
            if width == 0 or height == 0:
                raise InvalidImage(f"corrupt PNG: image size {width}x{height}")
            first = False
        if ctype == b"IDAT":
            seen_idat = True
        if ctype == b"IEND":
            if not seen_idat:
                raise InvalidImage("corrupt PNG: no IDAT (image data) chunk before IEND")
            return
        offset = end


def check_jpeg(data: bytes) -> None:
    """Walk the marker segments up to the scan, then require the end-of-image marker."""
    offset = 2
    while True:
        if offset + 4 > len(data):
            raise InvalidImage(f"truncated JPEG: segment header at byte {offset} is cut off")
        if data[offset] != 0xFF:
            raise InvalidImage(f"corrupt JPEG: expected a marker at byte {offset}")
        marker = data[offset + 1]
        if marker == 0xFF:  # fill byte before a marker
            offset += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # standalone markers
            offset += 2
            continue
        if marker == 0xD9:
            raise InvalidImage("corrupt JPEG: end of image before any scan data")
        (length,) = struct.unpack(">H", data[offset + 2 : offset + 4])
        if length < 2 or offset + 2 + length > len(data):
            raise InvalidImage(
                f"truncated JPEG: segment 0xFF{marker:02X} at byte {offset} runs past the end"
            )
        offset += 2 + length
        if marker == 0xDA:  # start of scan: entropy-coded data follows until EOI
            break
    if not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        raise InvalidImage("truncated JPEG: no end-of-image marker after the scan data")


def detect_image_type(data: bytes) -> str:
    """Return the MIME type of a complete PNG or JPEG; raise InvalidImage otherwise."""
    if not data:
        raise InvalidImage("the object is empty (0 bytes)")
    if data.startswith(_PNG_SIGNATURE):
        check_png(data)
        return PNG
    if data.startswith(b"\xff\xd8\xff"):
        check_jpeg(data)
        return JPEG
    raise InvalidImage(
        f"not a PNG or JPEG image: content starts with {_preview(data)} ({len(data)} bytes)"
    )
