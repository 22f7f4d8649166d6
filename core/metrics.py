"""Prometheus metrics (names and labels are part of the contract: docs/CONTRACT.md, Metrics).

All processes import their metrics from here so that names and labels stay in one place.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0)

FRAMES = Counter("lineinspect_frames", "Frames grabbed completely by the camera", ["line"])
VERDICTS = Counter("lineinspect_verdicts", "Inspections logged, by verdict", ["line", "verdict"])
DEFECTS = Counter("lineinspect_defects", "Defects found, by class", ["line", "class"])
FRAMES_DROPPED = Counter(
    "lineinspect_frames_dropped",
    "Frames lost: gaps in the camera frame id, incomplete buffers, stream overflow",
    ["line"],
)
FRAMES_INCOMPLETE = Counter(
    "lineinspect_frames_incomplete", "GigE buffers grabbed incompletely (never inspected)", ["line"]
)
CAMERA_CONNECTED = Gauge("lineinspect_camera_connected", "1 when the camera is open", ["line"])
GRAB_TO_VERDICT = Histogram(
    "lineinspect_grab_to_verdict_seconds",
    "Host grab time to published verdict",
    ["line"],
    buckets=_LATENCY_BUCKETS,
)
MODEL_INFERENCE = Histogram(
    "lineinspect_model_inference_seconds",
    "onnxruntime run time per model per frame (all its tiles)",
    ["model"],
    buckets=_LATENCY_BUCKETS,
)
STREAM_LAG = Gauge(
    "lineinspect_stream_lag_frames", "Frames in the stream not yet read by inference", ["line"]
)
FRAME_BRIGHTNESS = Gauge(
    "lineinspect_frame_brightness", "Mean gray value of the last frame", ["line"]
)
CAMERA_RECONNECTS = Counter("lineinspect_camera_reconnects", "Camera re-open attempts", ["line"])
STREAM_RECLAIMED = Counter(
    "lineinspect_stream_reclaimed", "Pending frames of dead workers reclaimed", ["line"]
)
# Supervision (issue 17): every long-running loop of a process, and what it could not store.
LOOP_UP = Gauge(
    "lineinspect_loop_up", "1 while a supervised loop runs, 0 while it is failed/restarting",
    ["loop"],
)
LOOP_RESTARTS = Counter(
    "lineinspect_loop_restarts", "Restarts of a supervised loop after it failed", ["loop"]
)
IMAGES_NOT_RETAINED = Counter(
    "lineinspect_images_not_retained",
    "Frames logged whose image/mask could not be written (image store full or failing)",
    ["line"],
)
# Model lifecycle (issue 21): drift statistics per line (rolling over the recipe's
# ``drift.window`` frames, see inference/drift.py) and the shadow (candidate) model.
_SCORE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
FRAME_CONTRAST = Gauge(
    "lineinspect_frame_contrast", "Rolling mean of the frames' gray-level standard deviation",
    ["line"],
)
FRAME_SHARPNESS = Gauge(
    "lineinspect_frame_sharpness",
    "Rolling mean of the frames' Laplacian variance (focus: falls when frames blur)", ["line"],
)
FLAGGED_TILE_SHARE = Gauge(
    "lineinspect_flagged_tile_share",
    "Rolling share of (segmenter-sized) tiles holding a defect pixel", ["line"],
)
FRAME_DRIFT = Gauge(
    "lineinspect_frame_drift_distance",
    "Hellinger distance (0..1) of the rolling window's frame signature (gray-level and "
    "gradient histograms) to the line's reference window",
    ["line"],
)
FRAME_SCORE = Histogram(
    "lineinspect_frame_score", "Highest defect score of each inspected frame (0: no defect)",
    ["line"], buckets=(0.0, *_SCORE_BUCKETS),
)
DEFECT_SCORE = Histogram(
    "lineinspect_defect_score", "Score of every defect found, by the model that named it",
    ["line", "model"], buckets=_SCORE_BUCKETS,
)
SHADOW_RUNS = Counter(
    "lineinspect_shadow_runs",
    "Frames offered to the shadow (candidate) recipe, by outcome: agree, disagree, failed, "
    "skipped (over its budget)",
    ["line", "outcome"],
)
SHADOW_DISAGREEMENTS = Counter(
    "lineinspect_shadow_disagreements",
    "Shadow inspections that disagree with the live one: kind verdict (OK/NG differ) or "
    "class (same verdict, other defect classes)",
    ["line", "kind"],
)
REVIEW_SAMPLES = Counter(
    "lineinspect_review_samples",
    "Frames sampled for QA review (issue 21.5) by reason and outcome: queued, merged (already "
    "queued for another reason), capped (the line's daily cap was reached), dropped (the "
    "sampler's queue was full, the frame was never logged, or the review queue failed)",
    ["line", "reason", "outcome"],
)
SHADOW_INSPECTION = Histogram(
    "lineinspect_shadow_inspection_seconds", "Shadow (candidate) inspection time per frame",
    ["line"], buckets=_LATENCY_BUCKETS,
)
# Falling behind (issue 19): frames that waited longer than the recipe's max_backlog_ms are
# not inspected (logged UNKNOWN) and the line is reported overloaded (inference/backlog.py).
FRAMES_SKIPPED = Counter(
    "lineinspect_frames_skipped",
    "Frames not inspected because they waited longer than the recipe's max_backlog_ms "
    "(logged as UNKNOWN)",
    ["line"],
)
BACKLOG_SECONDS = Gauge(
    "lineinspect_backlog_seconds",
    "How long the last frame an inference worker took had waited in the stream",
    ["line"],
)
OVERLOADED = Gauge(
    "lineinspect_overloaded",
    "1 while frames of the line are being skipped (backlog older than max_backlog_ms)",
    ["line"],
)
