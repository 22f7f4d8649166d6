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
    #: Trigger mode: the part this frame is (= ``frame_id``, the camera's BlockID sequence);
    #: None in free-run.
    part_id: int | None = None
    #: Set (``grab_failed``, ``part_missed``) when the camera's buffer for this part was
    #: incomplete or never arrived: the entry has no pixels (0 x 0) and is logged
    #: ``UNKNOWN`` with this reason without inspection (:func:`missed_part`).
    missed: str = ""

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
        """Fields for ``XADD`` (``part_id`` and ``missed`` only when set)."""
        fields: dict[str, bytes | str | int | float] = {
            "line_id": self.line_id,
            "frame_id": self.frame_id,
            "camera_ts": self.camera_ts,
            "host_ts": repr(self.host_ts),
            "width": self.width,
            "height": self.height,
            "pixel_format": self.pixel_format,
            "data": self.data,
        }
        if self.part_id is not None:
            fields["part_id"] = self.part_id
        if self.missed:
            fields["missed"] = self.missed
        return fields

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
            part_id=int(s("part_id")) if b"part_id" in fields else None,
            missed=s("missed") if b"missed" in fields else "",
        )


def missed_part(
    line_id: str, part_id: int, reason: str, host_ts: float, camera_ts: int = 0
) -> Frame:
    """The stream entry of a part whose image never arrived complete: no pixels, ``missed``
    = ``reason`` (``grab_failed``: incomplete/failed buffer; ``part_missed``: a gap in the
    camera's frame counter). It travels the normal path and is logged ``UNKNOWN``."""
    return Frame(
        line_id=line_id, frame_id=part_id, camera_ts=camera_ts, host_ts=host_ts, width=0,
        height=0, pixel_format="Mono8", data=b"", part_id=part_id, missed=reason,
    )
