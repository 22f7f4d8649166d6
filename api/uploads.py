"""Image uploads: a size-capped multipart reader and strict image validation/decoding.

The multipart body is parsed from the request stream with a byte cap: a ``Content-Length``
above the cap is refused before anything is read, a chunked body is cut off as soon as it
passes the cap, and file data beyond 1 MiB is spooled to a temporary file by Starlette's
parser, so an upload never sits in memory whole before it is known to be small enough.

Images are recognised by their magic bytes (PNG, JPEG, BMP, TIFF - not by the client's
content type or file name), checked from their header where that is cheap (bit depth,
pixel count: a tiny PNG claiming 100000 x 100000 pixels is refused before decoding), then
decoded with OpenCV ``IMREAD_UNCHANGED``. Accepted: 8-bit gray or colour (alpha is
dropped); returned as uint8 ``(H, W)`` gray or ``(H, W, 3)`` RGB.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass

import cv2
import numpy as np
from starlette.datastructures import Headers, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

#: Largest decoded image, pixels (a decompression-bomb guard; cameras here are ~1.3 MP).
MAX_PIXELS = 64 * 1024 * 1024
#: Multipart framing (boundaries, part headers, small form fields) allowed on top of the file.
MULTIPART_OVERHEAD = 64 * 1024


class UploadError(Exception):
    """An upload that is refused: HTTP ``status``, short ``error`` code and ``detail``."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail


class _TooLarge(MultiPartException):
    """Raised inside the parser's stream so that it closes its spooled files."""


def too_large(limit: int) -> UploadError:
    """The 413 error for an upload above ``limit`` bytes."""
    return UploadError(413, "payload_too_large", f"upload larger than {limit} bytes")


async def _capped(stream: AsyncIterator[bytes], cap: int) -> AsyncIterator[bytes]:
    total = 0
    async for chunk in stream:
        total += len(chunk)
        if total > cap:
            raise _TooLarge(f"body larger than {cap} bytes")
        yield chunk


@dataclass
class UploadForm:
    """The parsed form: the ``file`` part's bytes and the text fields."""

    filename: str
    data: bytes
    fields: dict[str, str]


async def read_upload_form(
    headers: Headers, stream: AsyncIterator[bytes], max_file_bytes: int
) -> UploadForm:
    """Parse a ``multipart/form-data`` body with one ``file`` part of at most
    ``max_file_bytes``; raise :class:`UploadError` (400/413/415/422) otherwise."""
    content_type = headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise UploadError(
            415, "unsupported_media_type", "expected a multipart/form-data body with a 'file'"
        )
    cap = max_file_bytes + MULTIPART_OVERHEAD
    length = headers.get("content-length")
    if length is not None:
        try:
            declared = int(length)
        except ValueError:
            raise UploadError(400, "bad_request", "invalid Content-Length") from None
        if declared > cap:
            raise too_large(max_file_bytes)
    parser = MultiPartParser(
        headers, _capped(stream, cap), max_files=1, max_fields=16, max_part_size=16 * 1024
    )
    try:
        form = await parser.parse()
    except _TooLarge:
        raise too_large(max_file_bytes) from None
    except MultiPartException as exc:
        raise UploadError(400, "bad_request", f"malformed multipart body: {exc}") from None
    try:
        fields: dict[str, str] = {}
        upload: UploadFile | None = None
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                if key == "file":
                    upload = value
            else:
                fields[key] = value
        if upload is None:
            raise UploadError(422, "validation_error", "multipart field 'file' is required")
        size = upload.size
        if size is not None and size > max_file_bytes:
            raise too_large(max_file_bytes)
        await upload.seek(0)
        data = await upload.read(max_file_bytes + 1)
        if len(data) > max_file_bytes:
            raise too_large(max_file_bytes)
        return UploadForm(filename=upload.filename or "", data=data, fields=fields)
    finally:
        await form.close()


# -- image validation -------------------------------------------------------------------------
def sniff(data: bytes) -> str | None:
    """Image format from the magic bytes: ``png``, ``jpeg``, ``bmp``, ``tiff`` or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"BM") and len(data) >= 26:
        return "bmp"
    if data.startswith((b"II*\x00", b"MM\x00*")):
        return "tiff"
    return None


@dataclass(frozen=True)
class HeaderInfo:
    """What the file header says (None = unknown)."""

    width: int | None = None
    height: int | None = None
    bits: int | None = None


def _png_header(data: bytes) -> HeaderInfo:
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise UploadError(422, "undecodable_image", "corrupt PNG: no IHDR chunk")
    width, height, bits = struct.unpack(">IIB", data[16:25])
    return HeaderInfo(width, height, bits)


def _jpeg_header(data: bytes) -> HeaderInfo:
    i = 2
    n = len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        (seg_len,) = struct.unpack(">H", data[i + 2 : i + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if i + 9 > n:
                break
            bits, height, width = struct.unpack(">BHH", data[i + 4 : i + 9])
            return HeaderInfo(width, height, bits)
        if marker == 0xDA:  # start of scan before any frame header
            break
        i += 2 + seg_len
    return HeaderInfo()


def _bmp_header(data: bytes) -> HeaderInfo:
    width, height = struct.unpack("<ii", data[18:26])
    bits = struct.unpack("<H", data[28:30])[0] if len(data) >= 30 else None
    # 1/4/8/24/32-bit BMPs decode to 8-bit channels; 16-bit BMPs are 5-6-5 colour, also 8-bit
    return HeaderInfo(abs(width), abs(height), 8 if bits else None)


def _tiff_header(data: bytes) -> HeaderInfo:
    endian = "<" if data[:2] == b"II" else ">"
    try:
        (offset,) = struct.unpack(endian + "I", data[4:8])
        (count,) = struct.unpack(endian + "H", data[offset : offset + 2])
        tags: dict[int, int] = {}
        for k in range(min(count, 512)):
            entry = data[offset + 2 + 12 * k : offset + 14 + 12 * k]
            tag, typ, cnt = struct.unpack(endian + "HHI", entry[:8])
            if tag not in (256, 257, 258):
                continue
            if typ == 3:  # SHORT
                if tag == 258 and cnt > 2:  # per-sample list stored elsewhere
                    (ptr,) = struct.unpack(endian + "I", entry[8:12])
                    (value,) = struct.unpack(endian + "H", data[ptr : ptr + 2])
                else:
                    (value,) = struct.unpack(endian + "H", entry[8:10])
            elif typ == 4:  # LONG
                (value,) = struct.unpack(endian + "I", entry[8:12])
            else:
                continue
            tags[tag] = value
        return HeaderInfo(tags.get(256), tags.get(257), tags.get(258, 1))
    except (struct.error, IndexError):
        return HeaderInfo()


def header_info(kind: str, data: bytes) -> HeaderInfo:
    """Width, height and bits per sample from the header of a ``kind`` image."""
    parse = {"png": _png_header, "jpeg": _jpeg_header, "bmp": _bmp_header, "tiff": _tiff_header}
    return parse[kind](data)


def _too_many_pixels(width: int, height: int, limit: int) -> UploadError:
    return UploadError(
        413, "payload_too_large", f"image of {width}x{height} pixels exceeds {limit} pixels"
    )


def decode_image(data: bytes, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Validate and decode an uploaded image to uint8 ``(H, W)`` gray or ``(H, W, 3)`` RGB.

    Raises :class:`UploadError`: 400 empty, 415 not PNG/JPEG/BMP/TIFF or not 8-bit,
    413 more than ``max_pixels`` pixels (checked from the header before decoding where the
    format says, and after decoding in any case), 422 corrupt/undecodable.
    """
    if not data:
        raise UploadError(400, "empty_file", "the uploaded file is empty")
    kind = sniff(data)
    if kind is None:
        raise UploadError(
            415, "unsupported_media_type", "not a PNG, JPEG, BMP or TIFF image (magic bytes)"
        )
    info = header_info(kind, data)
    if info.bits is not None and info.bits > 8:
        raise UploadError(
            415,
            "unsupported_pixel_format",
            f"{info.bits}-bit {kind.upper()} images are not supported: 8-bit gray or RGB only",
        )
    if info.width is not None and info.height is not None:
        if info.width <= 0 or info.height <= 0:
            raise UploadError(422, "undecodable_image", f"corrupt {kind.upper()}: empty image")
        if info.width * info.height > max_pixels:
            raise _too_many_pixels(info.width, info.height, max_pixels)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise UploadError(422, "undecodable_image", f"corrupt or undecodable {kind.upper()} image")
    if image.shape[0] * image.shape[1] > max_pixels:
        raise _too_many_pixels(image.shape[1], image.shape[0], max_pixels)
    if image.dtype != np.uint8:
        raise UploadError(
            415,
            "unsupported_pixel_format",
            f"{image.dtype} pixels are not supported: 8-bit gray or RGB only",
        )
    if image.ndim == 3:
        channels = image.shape[2]
        if channels == 1:
            image = image[:, :, 0]
        elif channels == 3:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        elif channels == 4:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
        else:
            raise UploadError(
                415, "unsupported_pixel_format", f"{channels}-channel images are not supported"
            )
    elif image.ndim != 2:
        raise UploadError(415, "unsupported_pixel_format", f"unsupported shape {image.shape}")
    return np.ascontiguousarray(image)
