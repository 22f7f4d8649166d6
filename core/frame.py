"""The frame message the acquisition worker writes to the Redis stream ``frames:{line}``
(:func:`core.bus.stream_key`) and the inference worker reads."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Frame:
    """One grabbed frame: the camera's ids and times plus the raw Mono8/RGB8 bytes."""

    line_id: str
    #: Camera frame id (GigE BlockID / frame counter): consecutive unless frames were lost.
    frame_id: int
    #: Camera timestamp in ticks (ns on most Basler GigE cameras).
    camera_ts: int
    #: Host time of grab completion, Unix seconds.
    host_ts: float
    width: int
    height: int
    pixel_format: str
    data: bytes

    @property
    def channels(self) -> int:
        """1 for Mono8, 3 for RGB8/BGR8."""
        return 3 if self.pixel_format in ("RGB8", "BGR8", "RGB8Packed", "BGR8Packed") else 1

    def array(self) -> np.ndarray:
        """The pixels as a read-only ``uint8`` array ``(H, W)`` or ``(H, W, 3)`` (no copy)."""
        shape = (self.height, self.width) if self.channels == 1 else (self.height, self.width, 3)
        expected = int(np.prod(shape))
        if len(self.data) != expected:
            raise ValueError(
                f"frame {self.frame_id}: {len(self.data)} bytes, expected {expected} for {shape}"
            )
        return np.frombuffer(self.data, dtype=np.uint8).reshape(shape)

    def to_fields(self) -> dict[str, bytes | str | int | float]:
        """Fields for ``XADD``."""
        return {
            "line_id": self.line_id,
            "frame_id": self.frame_id,
            "camera_ts": self.camera_ts,
            "host_ts": repr(self.host_ts),
            "width": self.width,
            "height": self.height,
            "pixel_format": self.pixel_format,
            "data": self.data,
        }

    @classmethod
    def from_fields(cls, fields: dict[bytes, bytes]) -> Frame:
        """Decode the fields of a stream entry (as returned by redis-py with bytes keys)."""

        def s(k: str) -> str:
            return fields[k.encode()].decode()

        return cls(
            line_id=s("line_id"),
            frame_id=int(s("frame_id")),
            camera_ts=int(s("camera_ts")),
            host_ts=float(s("host_ts")),
            width=int(s("width")),
            height=int(s("height")),
            pixel_format=s("pixel_format"),
            data=fields[b"data"],
        )
