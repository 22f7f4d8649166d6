"""POST /api/v1/inspect: strict upload validation (bad input changes nothing), ad-hoc logging,
served images/masks/overlays; and the real Inspector with tiny formula ONNX models."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest
import redis
from fastapi.testclient import TestClient

from api.app import ADHOC_COUNTER_KEY, create_app
from core.result import InspectionResult
from core.settings import Settings
from tests.api.api_helpers import API_KEY
from tests.onnx_factory import make_segmenter

URL = "/api/v1/inspect"
KEY = {"X-API-Key": API_KEY}  # the bootstrap admin key: uploads need operator or more


def frame(h: int = 120, w: int = 160, square: tuple[int, int, int, int] | None = (40, 30, 20, 10)
          ) -> np.ndarray:
    img = np.full((h, w), 200, np.uint8)
    if square:
        x, y, sw, sh = square
        img[y : y + sh, x : x + sw] = 20
    return img


def encode(ext: str, img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(ext, img)
    assert ok
    return buf.tobytes()


def _files(data: bytes, name: str = "frame.png", ctype: str = "image/png") -> dict:
    return {"file": (name, data, ctype)}


def _assert_error(resp, status: int) -> dict:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) >= {"error", "detail"} and body["error"] and body["detail"]
    return body


def test_valid_upload_is_logged_as_adhoc(client: TestClient, services) -> None:
    img = frame()
    resp = client.post(URL, headers=KEY, files=_files(encode(".png", img)))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["line_id"] == "adhoc" and isinstance(body["frame_id"], int)
    assert body["verdict"] == "NG" and body["code"] == 1
    assert body["defects"] == [
        {"class": "dark", "score": 0.97, "bbox": [40, 30, 20, 10], "area_px": 200, "model": "fake",
         "evidence": []}
    ]
    assert body["models"] == {"fake": "0.0.1"} and body["recipe"] == "test-recipe"
    assert (body["width"], body["height"]) == (160, 120)
    assert body["latency_ms"] > 0 and body["age_ms"] >= 0 and body["has_image"] is True
    assert body["captured_at"].endswith("Z")
    iid = body["inspection_id"]
    assert body["links"] == {
        "self": f"/api/v1/inspections/{iid}",
        "image": f"/api/v1/inspections/{iid}/image.png",
        "mask": f"/api/v1/inspections/{iid}/mask.png",
        "overlay": f"/api/v1/inspections/{iid}/overlay.png",
    }
    assert services.repository.count() == 1 and services.repository.count(line_id="adhoc") == 1

    got = client.get(f"/api/v1/inspections/{iid}").json()
    assert got["inspection_id"] == iid and got["verdict"] == "NG" and got["reviews"] == []
    listed = client.get("/api/v1/inspections", params={"line_id": "adhoc"}).json()["items"]
    assert [i["inspection_id"] for i in listed] == [iid]

    png = client.get(f"/api/v1/inspections/{iid}/image.png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert np.array_equal(cv2.imdecode(np.frombuffer(png.content, np.uint8), -1), img)
    mask_resp = client.get(f"/api/v1/inspections/{iid}/mask.png")
    assert mask_resp.status_code == 200 and mask_resp.headers["x-mask-classes"] == (
        '["background", "dark"]')
    mask = cv2.imdecode(np.frombuffer(mask_resp.content, np.uint8), cv2.IMREAD_UNCHANGED)
    assert mask.dtype == np.uint8 and mask.shape == (120, 160)
    assert set(np.unique(mask)) == {0, 1} and mask[30:40, 40:60].all() and mask.sum() == 200
    overlay = client.get(f"/api/v1/inspections/{iid}/overlay.png")
    assert overlay.status_code == 200
    ov = cv2.imdecode(np.frombuffer(overlay.content, np.uint8), cv2.IMREAD_UNCHANGED)
    assert ov.shape == (120, 160, 3)
    assert not np.array_equal(ov[35, 50], ov[100, 150])  # the defect is tinted


@pytest.mark.parametrize(
    ("ext", "make"),
    [
        (".jpg", lambda: frame(square=None)),
        (".bmp", lambda: np.dstack([frame(), frame(), frame()])),
        (".tiff", lambda: np.dstack([frame(), frame(), frame()])),
        (".png", lambda: np.dstack([frame()] * 3 + [np.full((120, 160), 255, np.uint8)])),
    ],
    ids=["jpeg-gray", "bmp-rgb", "tiff-rgb", "png-rgba"],
)
def test_other_formats_accepted(client: TestClient, services, ext: str, make) -> None:
    data = encode(ext, make())
    resp = client.post(URL, headers=KEY, files=_files(data, f"x{ext}", "application/octet-stream"))
    assert resp.status_code == 200, resp.text
    assert resp.json()["width"] == 160 and services.repository.count() == 1


def _png16() -> bytes:
    return encode(".png", (frame().astype(np.uint16) * 257))


def _corrupt_png() -> bytes:
    good = encode(".png", frame())
    return good[:60] + bytes(range(256)) * 4


CASES = {
    "not-an-image": (lambda: b"hello, this is text, not pixels", 415),
    "empty": (lambda: b"", 400),
    "gif": (lambda: b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", 415),
    "16-bit-png": (_png16, 415),
    "16-bit-tiff": (lambda: encode(".tiff", frame().astype(np.uint16) * 257), 415),
    "float-tiff": (lambda: encode(".tiff", frame().astype(np.float32)), 415),
    "corrupt-png": (_corrupt_png, 422),
    "truncated-jpeg": (lambda: encode(".jpg", frame())[:200], 422),
    "50MB": (lambda: b"\x89PNG\r\n\x1a\n" + bytes(50 * 1024 * 1024), 413),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_uploads_change_nothing(client: TestClient, services, settings: Settings,
                                    case: str) -> None:
    make, status = CASES[case]
    resp = client.post(URL, headers=KEY, files=_files(make()))
    _assert_error(resp, status)
    assert services.repository.count() == 0
    assert not list(Path(settings.image_store_path).rglob("*.png"))


def test_oversized_chunked_upload_is_cut_off(client: TestClient, services) -> None:
    """No Content-Length: the stream is read only up to the cap."""
    boundary = "lineinspectboundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"big.png\"\r\nContent-Type: image/png\r\n\r\n").encode()
    sent = {"bytes": 0}

    def body() -> Iterator[bytes]:
        yield head + b"\x89PNG\r\n\x1a\n"
        for _ in range(50):  # 50 MiB in 1 MiB chunks
            sent["bytes"] += 1 << 20
            yield bytes(1 << 20)
        yield f"\r\n--{boundary}--\r\n".encode()

    resp = client.post(
        URL, content=body(),
        headers={**KEY, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    _assert_error(resp, 413)
    assert services.repository.count() == 0


def test_form_errors(client: TestClient, services) -> None:
    png = encode(".png", frame())
    _assert_error(client.post(URL, headers=KEY, files={"image": ("a.png", png, "image/png")}), 422)
    _assert_error(client.post(URL, headers=KEY, json={"file": "nope"}), 415)
    _assert_error(client.post(URL, content=b"--x\r\nbroken",
                              headers={**KEY, "Content-Type": "multipart/form-data"}), 400)
    body = _assert_error(client.post(URL, headers=KEY, files=_files(png),
                                     data={"recipe": "no-such"}), 404)
    assert "no-such" in body["detail"]
    _assert_error(client.post(URL, headers=KEY, files=_files(png),
                              data={"recipe": "../../etc/x"}), 422)
    _assert_error(client.post(URL, headers=KEY, files=_files(png), data={"recipe": "a.yaml"}), 422)
    assert services.repository.count() == 0
    ok = client.post(URL, headers=KEY, files=_files(png), data={"recipe": "test-recipe"})
    assert ok.status_code == 200 and services.repository.count() == 1


def test_decompression_bomb_header_refused(client: TestClient, services) -> None:
    png = bytearray(encode(".png", frame()))
    png[16:24] = (100_000).to_bytes(4, "big") * 2  # IHDR claims 100000 x 100000 pixels
    _assert_error(client.post(URL, headers=KEY, files=_files(bytes(png))), 413)
    assert services.repository.count() == 0


def test_adhoc_frame_id_skips_ids_already_logged(client: TestClient, services,
                                                 redis_client: redis.Redis) -> None:
    """If the Redis counter is behind the log (Redis flushed), the upload still gets a new
    frame id instead of returning an old inspection."""
    current = int(redis_client.get(ADHOC_COUNTER_KEY) or 0)
    for n in range(1, 4):
        services.repository.save(InspectionResult(
            line_id="adhoc", frame_id=current + n, captured_at=datetime.now(UTC), verdict="OK"))
    resp = client.post(URL, headers=KEY, files=_files(encode(".png", frame())))
    assert resp.status_code == 200, resp.text
    assert resp.json()["frame_id"] > current + 3
    assert services.repository.count(line_id="adhoc") == 4


def test_models_unavailable_is_503(make_settings, redis_client: redis.Redis) -> None:
    def broken(_recipe, _settings):
        raise FileNotFoundError("models/zoo/x.onnx")

    app = create_app(make_settings(), inspector_factory=broken, retention_interval_s=None,
                     preload_models=False)
    with TestClient(app) as c:
        body = _assert_error(c.post(URL, headers=KEY, files=_files(encode(".png", frame()))), 503)
        assert body["error"] == "models_unavailable"
        assert app.state.services.repository.count() == 0


def test_real_inspector_with_formula_models(make_settings, tmp_path: Path,
                                            redis_client: redis.Redis) -> None:
    seg = make_segmenter(tmp_path / "seg128.onnx", input_size=(128, 128))
    settings = make_settings()
    (settings.recipes_dir / "formula.yaml").write_text(
        "name: formula\nmodels:\n"
        f"  - name: seg\n    path: {seg}\n    tile: 128\n    stride: 96\n    min_area: 50\n"
    )
    app = create_app(settings, retention_interval_s=None, preload_models=False)
    with TestClient(app) as c:
        img = frame(256, 320, (100, 60, 40, 30))
        resp = c.post(URL, headers=KEY, files=_files(encode(".png", img)),
                      data={"recipe": "formula"})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["line_id"] == "adhoc" and body["verdict"] == "NG"
        assert [(d["class"], d["bbox"], d["area_px"]) for d in body["defects"]] == [
            ("dark_spot", [100, 60, 40, 30], 1200)]
        assert body["models"] == {"seg": "0.1.0"} and body["recipe"] == "formula"
        mask = c.get(f"/api/v1/inspections/{body['inspection_id']}/mask.png")
        m = cv2.imdecode(np.frombuffer(mask.content, np.uint8), cv2.IMREAD_UNCHANGED)
        assert m[60:90, 100:140].all() and int(m.sum()) == 1200
        clean = c.post(URL, headers=KEY, files=_files(encode(".png", frame(256, 320, None))),
                       data={"recipe": "formula"}).json()
        assert clean["verdict"] == "OK" and clean["defects"] == []
        assert app.state.services.repository.count(line_id="adhoc") == 2
