"""Open a Basler camera with pypylon and apply a recipe's :class:`CameraSettings`.

The camera is chosen by serial number or user-defined name (``Settings.camera``; empty = the
first device found). Every GenICam node is set only when it exists and is writable: node
names differ between SFNC versions (``ExposureTime`` / ``ExposureTimeAbs`` /
``ExposureTimeRaw``, ``Gain`` / ``GainAbs`` / ``GainRaw``, ``AcquisitionFrameRate`` /
``AcquisitionFrameRateAbs``, ``RGB8`` / ``RGB8Packed``) and the pylon camera emulator lacks
some of them. What was applied (value read back from the camera) and what was skipped is
logged and returned in the camera info, which the acquisition worker publishes with its
heartbeat.

Geometry is read from the camera, never assumed. ``width``/``height`` = 0 in the recipe
means the full sensor: ``WidthMax``/``HeightMax`` of a real camera (minus the offset). The
emulator's "sensor" is 4096 x 4096; when it replays image files (``ImageFilename`` =
``Settings.emulator_frames_dir``) its geometry is set to the size of the first file, so a
replayed frame arrives pixel for pixel; without files it keeps its current geometry.

Trigger modes (``trigger_mode``): ``hardware`` sets ``TriggerSelector=FrameStart``,
``TriggerMode=On`` with the recipe's source and activation; ``software`` the same with
``TriggerSource=Software`` (``TriggerSoftware`` is the edge). Both switch
``AcquisitionFrameRateEnable`` off (the trigger paces the camera); every other trigger
selector is off. Free-run: every trigger selector that exists is switched off and the frame
rate is enabled. Chunk data: the emulator has ``ChunkModeActive`` but no ``ChunkSelector``,
and ``StartGrabbing`` with it on fails ("No chunk node map description available"), so the
part id is the grab result's BlockID, not a chunk counter (docs/DECISIONS.md).

The emulator (pylon 26.9, ``PYLON_CAMEMU``) exposes ``Width``/``Height``/``OffsetX/Y``,
``WidthMax``/``HeightMax``, ``PixelFormat``, ``ExposureTime`` (+ ``Abs``/``Raw``), ``Gain``
(+ ``GainRaw``), ``AcquisitionFrameRate`` (+ ``Abs``, ``Enable``), ``TriggerSelector``/
``Mode``/``Source``/``Activation``, ``GevSCPSPacketSize``, ``GevSCPD``, ``GevSCFTD``,
``ImageFilename``, ``ImageFileMode``, ``TestImageSelector``, ``ForceFailedBuffer`` and
``FirePnPCallback`` (simulated device removal). It lacks ``GainAbs``, ``DeviceSerialNumber``,
``ResultingFrameRate`` (only ``ResultingFrameRateAbs``) and the stream grabber's
``SocketBufferSize``; its frames carry a camera timestamp of 0.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from pypylon import genicam, pylon

from core.recipe import CameraSettings, Recipe
from core.settings import Settings

log = logging.getLogger(__name__)

EMULATOR_DEVICE_CLASS = "BaslerCamEmu"
IMAGE_EXTENSIONS = (".png", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg")

#: Frame pixel format names the :class:`~core.frame.Frame` message supports, by the
#: GenICam names a camera may use for them (SFNC 2 name first).
PIXEL_FORMAT_ALIASES: dict[str, tuple[str, ...]] = {
    "Mono8": ("Mono8",),
    "RGB8": ("RGB8", "RGB8Packed"),
    "RGB8Packed": ("RGB8", "RGB8Packed"),
    "BGR8": ("BGR8", "BGR8Packed"),
    "BGR8Packed": ("BGR8", "BGR8Packed"),
}


class CameraError(RuntimeError):
    """The camera cannot be found, opened or configured."""


class CameraNotFoundError(CameraError):
    """No camera matches the configured serial number or user-defined name."""


# ---------------------------------------------------------------------------- discovery


def _device_summary(di: pylon.DeviceInfo) -> dict[str, str]:
    return {
        "serial": di.GetSerialNumber(),
        "user_name": di.GetUserDefinedName(),
        "model": di.GetModelName(),
        "device_class": di.GetDeviceClass(),
    }


def list_cameras() -> list[dict[str, str]]:
    """Serial number, user-defined name, model and device class of every camera found."""
    devices = pylon.TlFactory.GetInstance().EnumerateDevices()
    return [_device_summary(d) for d in devices]


def find_device(selector: str = "") -> pylon.DeviceInfo:
    """The device whose serial number or user-defined name is ``selector`` (empty = first).

    Raises :class:`CameraNotFoundError` naming the cameras that were found.
    """
    devices = list(pylon.TlFactory.GetInstance().EnumerateDevices())
    if not devices:
        raise CameraNotFoundError(
            "no camera found (for the emulator set PYLON_CAMEMU=1 before starting)"
        )
    if not selector:
        return devices[0]
    for d in devices:
        if selector in (d.GetSerialNumber(), d.GetUserDefinedName()):
            return d
    found = ", ".join(
        f"{d.GetModelName()} serial={d.GetSerialNumber()!r} name={d.GetUserDefinedName()!r}"
        for d in devices
    )
    raise CameraNotFoundError(
        f"no camera with serial number or user-defined name {selector!r}; found: {found}"
    )


def is_emulator(cam_or_info: pylon.InstantCamera | pylon.DeviceInfo) -> bool:
    """Whether the device is a pylon camera emulator device."""
    di = cam_or_info
    if isinstance(cam_or_info, pylon.InstantCamera):
        di = cam_or_info.GetDeviceInfo()
    return di.GetDeviceClass() == EMULATOR_DEVICE_CLASS


def emulator_source(path: Path | str | None) -> Path | None:
    """The directory or file the emulator should replay, or None (test pattern)."""
    if path is None or str(path) in ("", "."):
        return None
    p = Path(path)
    return p if p.exists() else None


def replay_files(source: Path) -> list[Path]:
    """The image files the emulator replays from ``source`` (a file or a directory), sorted."""
    if source.is_file():
        return [source]
    return sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)


def image_geometry(path: Path) -> tuple[int, int] | None:
    """``(width, height)`` of an image file, or None when it cannot be decoded."""
    import cv2  # lazily: only needed for the emulator

    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        return None
    return int(img.shape[1]), int(img.shape[0])


# ---------------------------------------------------------------------------- node access


class NodeWriter:
    """Sets GenICam nodes only when they exist and are writable, recording the outcome."""

    def __init__(self, nodemap: Any, prefix: str = "") -> None:
        self.nodemap = nodemap
        self.prefix = prefix
        self.applied: dict[str, Any] = {}
        self.skipped: dict[str, str] = {}

    def node(self, name: str) -> Any | None:
        """The node ``name`` if the camera has it (and it is available now), else None."""
        try:
            n = self.nodemap.GetNode(name)
        except genicam.GenericException:
            return None
        if n is None or not n.IsValid():
            return None
        try:
            if not genicam.IsAvailable(n.GetNode()):
                return None
        except (genicam.GenericException, AttributeError):
            pass
        return n

    def has(self, name: str) -> bool:
        """Whether the node exists."""
        return self.node(name) is not None

    def writable(self, name: str) -> bool:
        """Whether the node exists and is writable now."""
        n = self.node(name)
        return n is not None and bool(n.IsWritable())

    def get(self, name: str, default: Any = None) -> Any:
        """The node's current value (``default`` when missing or unreadable)."""
        n = self.node(name)
        if n is None or not n.IsReadable():
            return default
        try:
            return n.GetValue()
        except genicam.GenericException:
            return default

    def symbolics(self, name: str) -> tuple[str, ...]:
        """The entries of an enumeration node (empty when missing)."""
        n = self.node(name)
        try:
            return tuple(n.GetSymbolics()) if n is not None else ()
        except (genicam.GenericException, AttributeError):
            return ()

    def set(self, name: str, value: Any, *, record: bool = True) -> bool:
        """Set ``name`` to ``value`` (numbers clipped to the node's range and increment).

        Returns True when the value was written; a missing, read-only or rejecting node is
        recorded in :attr:`skipped` and False returned.
        """
        key = self.prefix + name
        n = self.node(name)
        if n is None:
            self.skipped[key] = "missing"
            return False
        if not n.IsWritable():
            self.skipped[key] = "not writable"
            return False
        try:
            if isinstance(n, pylon.IntegerParameter):
                n.SetValue(int(round(float(value))), pylon.IntegerValueCorrection_Nearest)
            elif isinstance(n, pylon.FloatParameter):
                n.SetValue(float(value), pylon.FloatValueCorrection_ClipToRange)
            elif isinstance(n, pylon.EnumParameter):
                if str(value) not in n.GetSymbolics():
                    self.skipped[key] = f"no entry {value!r} (has {', '.join(n.GetSymbolics())})"
                    return False
                n.SetValue(str(value))
            elif isinstance(n, pylon.BooleanParameter):
                n.SetValue(bool(value))
            else:
                n.SetValue(value)
        except genicam.GenericException as exc:
            self.skipped[key] = f"rejected {value!r}: {_short(exc)}"
            return False
        if record:
            self.applied[key] = self.get(name, value)
        self.skipped.pop(key, None)
        return True

    def first(self, names: tuple[str, ...], value: Any) -> str | None:
        """Set the first of ``names`` that is writable; return its name (None: none was)."""
        for name in names:
            if self.writable(name):
                return name if self.set(name, value) else None
        self.skipped["|".join(self.prefix + n for n in names)] = "missing or not writable"
        return None


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


# ---------------------------------------------------------------------------- configuration


def _apply_geometry(
    w: NodeWriter, cs: CameraSettings, sensor: tuple[int, int] | None
) -> None:
    """Width/height/offsets; 0 = the full sensor (``sensor`` overrides the camera's max)."""
    for axis, size, offset, max_name in (
        ("X", cs.width, cs.offset_x, "WidthMax"),
        ("Y", cs.height, cs.offset_y, "HeightMax"),
    ):
        size_node = "Width" if axis == "X" else "Height"
        if not w.writable(size_node):
            w.skipped[size_node] = "missing or not writable"
            continue
        # Offsets first to 0 so that any width up to the maximum is allowed.
        if w.writable(f"Offset{axis}"):
            w.set(f"Offset{axis}", 0, record=False)
        if size > 0:
            target = size
        elif sensor is not None:
            target = sensor[0] if axis == "X" else sensor[1]
        else:
            full = w.get(max_name) or w.node(size_node).GetMax()
            target = int(full) - offset
        n = w.node(size_node)
        target = max(int(n.GetMin()), min(int(target), int(n.GetMax())))
        inc = max(1, int(n.GetInc()))
        target -= (target - int(n.GetMin())) % inc
        w.set(size_node, target)
        if w.has(f"Offset{axis}"):
            w.set(f"Offset{axis}", offset)


def _apply_exposure_gain(w: NodeWriter, cs: CameraSettings) -> None:
    if w.has("ExposureAuto"):
        w.set("ExposureAuto", "Off")
    if w.writable("ExposureTime"):
        w.set("ExposureTime", cs.exposure_us)
    elif w.writable("ExposureTimeAbs"):
        w.set("ExposureTimeAbs", cs.exposure_us)
    elif w.writable("ExposureTimeRaw"):
        base = w.get("ExposureTimeBaseAbs", 1.0) or 1.0
        w.set("ExposureTimeRaw", max(1, round(cs.exposure_us / float(base))))
    else:
        w.skipped["ExposureTime"] = "missing or not writable (ExposureTimeAbs/Raw too)"

    if w.has("GainAuto"):
        w.set("GainAuto", "Off")
    if w.writable("Gain"):
        w.set("Gain", cs.gain_db)
    elif w.writable("GainAbs"):
        w.set("GainAbs", cs.gain_db)
    elif w.writable("GainRaw"):
        # Raw gain units are model specific (no general dB conversion): 0 dB = minimum.
        if cs.gain_db == 0:
            w.set("GainRaw", w.node("GainRaw").GetMin())
        else:
            w.skipped["GainRaw"] = f"only raw gain: {cs.gain_db} dB not converted, left as is"
    else:
        w.skipped["Gain"] = "missing or not writable (GainAbs/GainRaw too)"


def _trigger_source(cs: CameraSettings) -> str:
    """The ``TriggerSource`` of a triggered recipe (``Software`` in software-trigger mode)."""
    return "Software" if cs.trigger_mode == "software" else cs.trigger_source


def _arm_trigger(w: NodeWriter, cs: CameraSettings) -> bool:
    """``TriggerMode=On`` with the recipe's source (and activation, for a line input)."""
    armed = w.set("TriggerMode", "On") and w.set("TriggerSource", _trigger_source(cs))
    if cs.trigger_mode == "hardware":
        armed = w.set("TriggerActivation", cs.trigger_activation) and armed
    return armed


def _apply_trigger_and_rate(w: NodeWriter, cs: CameraSettings, frame_rate: float) -> None:
    if w.has("AcquisitionMode"):
        w.set("AcquisitionMode", "Continuous")
    selectors = w.symbolics("TriggerSelector")
    triggered = cs.triggered
    armed = False
    for sel in ("AcquisitionStart", "FrameBurstStart", "FrameStart"):
        if sel not in selectors or not w.set("TriggerSelector", sel, record=False):
            continue
        w.prefix = f"{sel}."
        if triggered and sel == "FrameStart":
            armed = _arm_trigger(w, cs)
        else:
            w.set("TriggerMode", "Off")
        w.prefix = ""
    if not selectors and w.has("TriggerMode"):  # a camera with a single trigger
        if triggered:
            armed = _arm_trigger(w, cs)
        else:
            w.set("TriggerMode", "Off")
    if triggered and not armed:
        raise CameraError(
            f"{cs.trigger_mode} trigger {_trigger_source(cs)}/{cs.trigger_activation} cannot "
            f"be set: {w.skipped}"
        )

    if w.has("AcquisitionFrameRateEnable"):
        w.set("AcquisitionFrameRateEnable", not triggered and frame_rate > 0)
    if not triggered and frame_rate > 0:
        w.first(("AcquisitionFrameRate", "AcquisitionFrameRateAbs"), frame_rate)


def _apply_transport(cam: pylon.InstantCamera, w: NodeWriter, cs: CameraSettings) -> None:
    t = cs.transport
    w.set("GevSCPSPacketSize", t.packet_size)
    w.set("GevSCPD", t.inter_packet_delay)
    w.set("GevSCFTD", t.frame_transmission_delay)
    sg = NodeWriter(cam.GetStreamGrabberNodeMap(), prefix="StreamGrabber.")
    sg.set("SocketBufferSize", t.socket_buffer_kb)  # KiB, GigE socket driver only
    try:
        cam.MaxNumBuffer.SetValue(int(t.grab_buffers))
        w.applied["MaxNumBuffer"] = int(cam.MaxNumBuffer.GetValue())
    except genicam.GenericException as exc:
        w.skipped["MaxNumBuffer"] = f"rejected {t.grab_buffers}: {_short(exc)}"
    w.applied.update(sg.applied)
    w.skipped.update(sg.skipped)


def _apply_pixel_format(w: NodeWriter, cs: CameraSettings) -> None:
    wanted = PIXEL_FORMAT_ALIASES.get(cs.pixel_format, (cs.pixel_format,))
    available = w.symbolics("PixelFormat")
    for name in wanted:
        if name in available:
            w.set("PixelFormat", name)
            return
    if w.has("PixelFormat"):
        w.skipped["PixelFormat"] = f"no entry {cs.pixel_format!r}; keeps {w.get('PixelFormat')}"


def configure_camera(
    cam: pylon.InstantCamera,
    cs: CameraSettings,
    *,
    frame_rate: float = 0.0,
    emulator_frames: Path | str | None = None,
) -> dict[str, Any]:
    """Apply ``cs`` to an open camera; return ``{"applied": {...}, "skipped": {...}}``.

    ``frame_rate`` > 0 overrides ``cs.frame_rate``. ``emulator_frames`` (a directory or an
    image file) is replayed when the camera is an emulator device.
    """
    w = NodeWriter(cam.GetNodeMap())
    sensor: tuple[int, int] | None = None
    if is_emulator(cam):
        source = emulator_source(emulator_frames)
        if source is not None and w.set("ImageFilename", str(source.resolve())):
            w.set("ImageFileMode", "On")
            w.set("TestImageSelector", "Off")
            files = replay_files(source)
            sensor = image_geometry(files[0]) if files else None
        if sensor is None:  # test pattern: keep the emulator's current geometry
            sensor = (int(w.get("Width", 0)), int(w.get("Height", 0)))
    _apply_pixel_format(w, cs)
    _apply_geometry(w, cs, sensor)
    _apply_exposure_gain(w, cs)
    _apply_trigger_and_rate(w, cs, frame_rate if frame_rate > 0 else cs.frame_rate)
    _apply_transport(cam, w, cs)
    return {"applied": w.applied, "skipped": w.skipped}


def camera_info(cam: pylon.InstantCamera, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Model, serial, geometry and pixel format read from the open camera (JSON-able)."""
    di = cam.GetDeviceInfo()
    w = NodeWriter(cam.GetNodeMap())
    rate = w.get("ResultingFrameRate", None)
    if rate is None:
        rate = w.get("ResultingFrameRateAbs", None)
    info: dict[str, Any] = {
        **_device_summary(di),
        "width": int(w.get("Width", 0)),
        "height": int(w.get("Height", 0)),
        "pixel_format": str(w.get("PixelFormat", "")),
        "resulting_frame_rate": None if rate is None or not math.isfinite(rate) else float(rate),
        "emulator": is_emulator(di),
    }
    if config is not None:
        info["applied"] = {k: _jsonable(v) for k, v in config.get("applied", {}).items()}
        info["skipped"] = dict(config.get("skipped", {}))
    return info


def _jsonable(v: Any) -> Any:
    return v if isinstance(v, (bool, int, float, str)) or v is None else str(v)


def open_camera(settings: Settings, recipe: Recipe) -> tuple[pylon.InstantCamera, dict[str, Any]]:
    """Find, open and configure the camera of ``settings``; return it and its info dict.

    The info dict holds ``serial``, ``user_name``, ``model``, ``device_class``, ``width``,
    ``height``, ``pixel_format``, ``resulting_frame_rate``, ``emulator``, ``applied`` (node
    -> value read back) and ``skipped`` (node -> reason). Raises :class:`CameraError`
    (:class:`CameraNotFoundError` for an unknown serial/name); the camera is closed again
    when configuration fails.
    """
    di = find_device(settings.camera)
    tlf = pylon.TlFactory.GetInstance()
    cam: pylon.InstantCamera | None = None
    try:
        cam = pylon.InstantCamera(tlf.CreateDevice(di))
        cam.Open()
    except genicam.GenericException as exc:
        close_camera(cam)
        raise CameraError(f"cannot open camera {di.GetSerialNumber()}: {_short(exc)}") from exc
    try:
        config = configure_camera(
            cam,
            recipe.camera,
            frame_rate=settings.frame_rate,
            emulator_frames=settings.emulator_frames_dir,
        )
        info = camera_info(cam, config)
    except Exception:
        close_camera(cam)
        raise
    log.info(
        "camera %s (serial %s%s): %dx%d %s, applied %s",
        info["model"], info["serial"],
        f", name {info['user_name']}" if info["user_name"] else "",
        info["width"], info["height"], info["pixel_format"], info["applied"],
    )
    if info["skipped"]:
        log.info("camera %s: not applied: %s", info["serial"], info["skipped"])
    return cam, info


def close_camera(cam: pylon.InstantCamera | None) -> None:
    """Stop grabbing, close and release the device; never raises."""
    if cam is None:
        return
    for step in (cam.StopGrabbing, cam.Close, cam.DestroyDevice):
        try:
            step()
        except Exception as exc:  # noqa: BLE001 - the device may already be gone
            log.debug("closing camera: %s: %s", step.__name__, exc)
