"""``POST /api/parse`` over a real socket, on the ZeroMQ server's own engine, with real photos.

The seed service's reply is ``{"code", "message", "data": {"result_image", "masks",
"classes", "inference_time"}}``; these tests check that shape, that the pictures
agree with each other and with ground truth, and one case per error.
"""
from __future__ import annotations

import base64
import collections
import struct
import threading
import time
import zlib

import cv2
import numpy as np
import pytest
import requests
from m2fp_server.engines.base import Engine, EngineOutput, StreamContext
from m2fp_server.postprocess.motion import FlowTracker
from m2fp_server.evaluation.groundtruth import Placement, still
from m2fp_server.samples import PORTRAITS, frame_of_size
from m2fp_server.server import InferenceServer, ServerSettings
from m2fp_server.web.frontend import HttpFrontEnd
from m2fp_server.web.settings import HttpSettings, ParseLimits

TIMEOUT = 20


# --------------------------------------------------------------------------- helpers
def png_bytes(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return buf.tobytes()


def decode_png(b64: str) -> np.ndarray:
    """base64 PNG → gray (H, W), RGB or RGBA array."""
    raw = base64.b64decode(b64, validate=True)
    assert raw.startswith(b"\x89PNG\r\n\x1a\n")
    img = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_UNCHANGED)
    assert img is not None
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA if img.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    return img


def iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    return float((a & b).sum() / max(1, (a | b).sum()))


def inner(mask: np.ndarray, px: int = 15) -> np.ndarray:
    """Pixels at least ``px`` away from the mask's edge (where the answer is unambiguous)."""
    return cv2.erode(mask.astype(np.uint8), np.ones((2 * px + 1, 2 * px + 1), np.uint8)).astype(bool)


def parse(url: str, image: bytes, filename: str = "photo.png", files: dict | None = None,
          **fields: str) -> requests.Response:
    return requests.post(f"{url}/api/parse", files={"image": (filename, image), **(files or {})}, data=fields,
                         timeout=TIMEOUT)


def ok_data(r: requests.Response) -> dict:
    assert r.status_code == 200, r.text[:300]
    body = r.json()
    assert body["code"] == 0 and body["message"] == "success"
    return body["data"]


def assert_error(r: requests.Response, status: int, code: int, *words: str) -> dict:
    assert r.status_code == status, r.text[:300]
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert body["code"] == code and body["data"] is None
    for w in words:
        assert w.lower() in body["message"].lower(), body["message"]
    return body


class RecordingEngine(Engine):
    """The real selfie model; remembers the stream keys it was called with, can fail on black frames."""

    name = "selfie"

    def __init__(self, inner_engine: Engine) -> None:
        self.inner = inner_engine
        self.infer_keys: list = []  # the stream contexts inferred on
        self.forgotten: list = []  # the stream contexts closed

    @property
    def classes(self):  # type: ignore[no-untyped-def]
        return self.inner.classes

    def infer(self, rgb: np.ndarray, stream: StreamContext | None = None,
              motion: FlowTracker | None = None) -> EngineOutput:
        self.infer_keys.append(stream)
        if rgb.max() == 0:
            raise RuntimeError("cannot segment a black frame")
        return self.inner.infer(rgb, stream)

    def new_stream(self) -> StreamContext:
        return _RecordedStream(self.forgotten)


class _RecordedStream(StreamContext):
    def __init__(self, closed: list) -> None:
        self.closed = closed

    def close(self) -> None:
        self.closed.append(self)


# --------------------------------------------------------------------------- fixtures
@pytest.fixture()
def zmq_server(selfie_engine):  # type: ignore[no-untyped-def]
    srv = InferenceServer(RecordingEngine(selfie_engine), ServerSettings(address="tcp://127.0.0.1:*"))
    srv.start()
    yield srv
    srv.stop()
    srv.join()


@pytest.fixture()
def web(zmq_server):  # type: ignore[no-untyped-def]
    """The HTTP front end sharing the ZeroMQ server's engine and lock, on a free loopback port."""
    fe = HttpFrontEnd.sharing(zmq_server, HttpSettings(port=0))
    fe.start()
    yield fe
    fe.stop()


@pytest.fixture()
def small_web(selfie_engine):  # type: ignore[no-untyped-def]
    """Tight limits, to reach the size errors with small files."""
    limits = ParseLimits(max_upload_bytes=300_000, max_pixels=700 * 700, max_side=1000)
    fe = HttpFrontEnd(selfie_engine, threading.Lock(), HttpSettings(port=0, limits=limits))
    fe.start()
    yield fe
    fe.stop()


# --------------------------------------------------------------------------- success
def test_portrait_png_gives_the_seed_reply_with_consistent_pictures(web):
    data = ok_data(parse(web.url, PORTRAITS["astronaut"].read_bytes(), "astronaut.png"))
    classes = {c.name: c for c in web.service.classes}
    assert set(data) >= {"result_image", "masks", "classes", "inference_time"}
    assert data["classes"] == ["Background", "Person"]  # both present on a portrait, in class order
    assert len(data["masks"]) == len(data["classes"])
    assert isinstance(data["inference_time"], float) and 0 < data["inference_time"] < 10
    assert (data["width"], data["height"]) == (512, 512)

    colour = decode_png(data["result_image"])
    assert colour.shape == (512, 512, 3)
    masks = [decode_png(m) for m in data["masks"]]
    cover = np.zeros((512, 512), np.int32)
    for name, m in zip(data["classes"], masks):
        assert m.shape == (512, 512) and set(np.unique(m)) <= {0, 255}
        cover += m // 255
        # the colour picture shows exactly this class's palette colour where its mask is set
        assert (colour[m == 255] == classes[name].color).all()
    assert (cover == 1).all()  # the masks partition the picture
    person = masks[data["classes"].index("Person")] == 255
    assert 0.2 < person.mean() < 0.9
    # the soft alpha of the default "keep" (every body part) agrees with the Person mask
    alpha = decode_png(data["alpha"])
    assert alpha.shape == (512, 512)
    assert iou(alpha >= 128, person) > 0.97


def test_jpeg_portrait(web):
    raw = PORTRAITS["grace_hopper"].read_bytes()
    h, w = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR).shape[:2]
    data = ok_data(parse(web.url, raw, "grace_hopper.jpg"))
    assert (data["width"], data["height"]) == (w, h)
    assert decode_png(data["result_image"]).shape == (h, w, 3)
    assert "Person" in data["classes"]


@pytest.mark.parametrize("name,placement", [
    ("astronaut", Placement(cx=0.5, bottom=1.0, height=0.95)),
    ("grace_hopper", Placement(cx=0.4, bottom=1.0, height=0.85, angle=4.0)),
])
def test_masks_match_ground_truth_and_the_in_process_pipeline(web, selfie_engine, name, placement):
    rgb, truth = still(name, (640, 480), placement, seed=3)
    data = ok_data(parse(web.url, png_bytes(rgb)))
    person = decode_png(data["masks"][data["classes"].index("Person")]) == 255
    alpha = decode_png(data["alpha"])
    assert iou(person, truth) > 0.9
    assert iou(alpha >= 128, truth) > 0.9
    # the same photo through `m2fp parse`'s in-process path gives the same alpha
    from m2fp_protocol import StreamConfig
    from m2fp_server.segmenters import LocalSegmenter
    local_alpha, _ = LocalSegmenter(selfie_engine, StreamConfig(smoothing=0.0))(rgb)
    assert np.abs(local_alpha.astype(int) - alpha.astype(int)).max() <= 1


def test_composite_over_colour_blur_image_and_transparent(web):
    rgb, truth = still("astronaut", (480, 360), Placement(cx=0.5, bottom=1.0, height=0.9), seed=5)
    photo = png_bytes(rgb)
    fg, bg = inner(truth), inner(1 - truth)

    data = ok_data(parse(web.url, photo, background="#00FF00"))
    comp = decode_png(data["composite"]).astype(int)
    assert comp.shape == (360, 480, 3)
    assert np.abs(comp[bg] - [0, 255, 0]).mean() < 8  # background replaced by the colour
    assert np.abs(comp[fg] - rgb[fg]).mean() < 8  # the person kept

    data = ok_data(parse(web.url, photo, background="transparent"))
    rgba = decode_png(data["composite"])
    assert rgba.shape == (360, 480, 4)
    assert (rgba[..., 3] == decode_png(data["alpha"])).all()
    assert (rgba[..., :3] == rgb).all()

    data = ok_data(parse(web.url, photo, background="blur"))
    blurred = decode_png(data["composite"]).astype(int)
    expect = cv2.GaussianBlur(rgb, (0, 0), 12.0).astype(int)
    assert np.abs(blurred[bg] - expect[bg]).mean() < 8

    backdrop = frame_of_size(240, 180, "grace_hopper")  # a different size: stretched to the photo
    data = ok_data(parse(web.url, photo, files={"background_image": ("bg.png", png_bytes(backdrop))},
                         background="image"))
    comp = decode_png(data["composite"]).astype(int)
    expect = cv2.resize(backdrop, (480, 360)).astype(int)
    assert np.abs(comp[bg] - expect[bg]).mean() < 8
    assert np.abs(comp[fg] - rgb[fg]).mean() < 8
    assert "composite" not in ok_data(parse(web.url, photo))  # only when a background is asked for


def test_keep_and_hard_edge_change_the_alpha(web):
    rgb, truth = still("grace_hopper", (400, 300), seed=2)
    photo = png_bytes(rgb)
    person = decode_png(ok_data(parse(web.url, photo))["alpha"]).astype(int)
    data = ok_data(parse(web.url, photo, keep="background"))  # names are case-insensitive
    assert data["keep"] == ["Background"]
    assert np.abs(decode_png(data["alpha"]).astype(int) - (255 - person)).max() <= 2
    nothing = ok_data(parse(web.url, photo, keep="", background="#0000ff"))
    assert nothing["keep"] == [] and decode_png(nothing["alpha"]).max() == 0
    assert (decode_png(nothing["composite"]) == [0, 0, 255]).all()
    hard = decode_png(ok_data(parse(web.url, photo, soft="false", threshold="0.5"))["alpha"])
    assert set(np.unique(hard)) <= {0, 255}
    assert iou(hard == 255, truth) > 0.9


def test_same_photo_reuses_the_engine_output(web, zmq_server):
    eng = zmq_server.engine
    photo = png_bytes(frame_of_size(320, 240))
    first = ok_data(parse(web.url, photo))
    calls = len(eng.infer_keys)
    second = ok_data(parse(web.url, photo, keep="Background", background="blur"))
    assert len(eng.infer_keys) == calls  # no second inference for new settings
    assert (first["cached"], second["cached"]) == (False, True)
    assert first["result_image"] == second["result_image"]


def test_http_requests_leave_zeromq_clients_alone(web, zmq_server):
    """Per-request keys: no live stream's state or engine key is created, used or forgotten."""
    from m2fp_server.client import MaskClient
    frames = [frame_of_size(320, 240, n) for n in ("astronaut", "grace_hopper", "astronaut")]

    def run_client(interleave: bool) -> list[np.ndarray]:
        out = []
        with MaskClient(zmq_server.endpoint, timeout_s=10) as c:
            c.hello("test")
            c.configure(smoothing=0.8)  # temporal state that an intruder would disturb
            for i, f in enumerate(frames):
                out.append(c.mask(f)[0].array.copy())
                if interleave:
                    ok_data(parse(web.url, png_bytes(frame_of_size(200 + i, 150, "grace_hopper"))))
        return out

    alone, mixed = run_client(False), run_client(True)
    for a, b in zip(alone, mixed):
        assert (a == b).all()
    eng = zmq_server.engine
    uses = collections.Counter(id(k) for k in eng.infer_keys)
    assert sorted(uses.values()) == [1, 1, 1, 3, 3]  # two live clients (3 frames each), 3 photos: own streams
    http_keys = [k for k in eng.infer_keys if uses[id(k)] == 1]
    assert all(k in eng.forgotten for k in http_keys)  # each request's state dropped at once
    assert not zmq_server.engine_lock.locked()


# --------------------------------------------------------------------------- errors
def test_missing_image_field(web):
    r = requests.post(f"{web.url}/api/parse", files={"photo": ("a.png", b"x")}, timeout=TIMEOUT)
    assert_error(r, 400, 1001, "image")
    r = requests.post(f"{web.url}/api/parse", files={"image": (None, "not a file")}, timeout=TIMEOUT)
    assert_error(r, 400, 1001, "as a file")


def test_not_an_image(web):
    assert_error(parse(web.url, b"Hello, this is a text file.\n", "notes.txt"), 400, 1002, "not an image")
    assert_error(parse(web.url, b"", "empty.png"), 400, 1002, "empty")
    good = PORTRAITS["astronaut"].read_bytes()
    assert_error(parse(web.url, good[: len(good) // 2], "cut.png"), 400, 1002, "damaged")


@pytest.mark.parametrize("ext,name", [(".bmp", "BMP"), (".webp", "WebP"), (".tiff", "TIFF")])
def test_unsupported_image_formats(web, ext, name):
    ok, buf = cv2.imencode(ext, frame_of_size(64, 48))
    assert ok
    assert_error(parse(web.url, buf.tobytes(), f"photo{ext}"), 415, 1003, name, "JPEG or PNG")


def test_gif_is_refused_by_content_not_name(web):
    gif = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00" \
          b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
    assert_error(parse(web.url, gif, "disguised.png"), 415, 1003, "GIF")


def test_not_multipart(web):
    r = requests.post(f"{web.url}/api/parse", json={"image": "aGVsbG8="}, timeout=TIMEOUT)
    assert_error(r, 415, 1006, "multipart/form-data")


def test_upload_too_large(small_web):
    noise = np.random.default_rng(0).integers(0, 255, (500, 500, 3), np.uint8)  # ~750 kB as PNG
    assert_error(parse(small_web.url, png_bytes(noise)), 413, 1004, "limit")
    # the server is still fine afterwards
    ok_data(parse(small_web.url, png_bytes(frame_of_size(320, 240))))


def test_too_many_pixels_and_decompression_bomb(small_web):
    flat = np.full((800, 800, 3), 90, np.uint8)  # tiny file, too many pixels
    assert_error(parse(small_web.url, png_bytes(flat)), 413, 1004, "800x800", "scale it down")

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0)) \
        + chunk(b"IDAT", zlib.compress(b"\0" * 100_000)) + chunk(b"IEND", b"")
    t0 = time.perf_counter()
    assert_error(parse(small_web.url, bomb), 413, 1004, "60000x60000")
    assert time.perf_counter() - t0 < 2.0  # refused from the header, never decoded


@pytest.mark.parametrize("fields,words", [
    ({"keep": "Hat"}, ("unknown class 'Hat'", "Background, Person")),
    ({"background": "/etc/passwd"}, ("transparent, blur, #RRGGBB or image",)),
    ({"background": "#12345"}, ("#RRGGBB",)),
    ({"background": "image"}, ("background_image",)),
    ({"threshold": "2"}, ("threshold",)),
    ({"soft": "maybe"}, ("soft",)),
])
def test_bad_options(web, zmq_server, fields, words):
    calls = len(zmq_server.engine.infer_keys)
    assert_error(parse(web.url, png_bytes(frame_of_size(160, 120)), **fields), 400, 1005, *words)
    assert len(zmq_server.engine.infer_keys) == calls  # refused before the engine ran


def test_engine_failure(web, zmq_server):
    black = np.zeros((120, 160, 3), np.uint8)
    body = assert_error(parse(web.url, png_bytes(black)), 500, 2000, "selfie engine failed",
                        "cannot segment a black frame")
    assert body["error"] == "engine_failure"
    assert not zmq_server.engine_lock.locked()
    ok_data(parse(web.url, png_bytes(frame_of_size(160, 120))))  # and it goes on serving


def test_wrong_method_and_unknown_path(web):
    r = requests.get(f"{web.url}/api/parse", timeout=TIMEOUT)
    assert_error(r, 405, 1405, "POST")
    assert r.headers["Allow"] == "POST"
    assert_error(requests.get(f"{web.url}/api/nothing", timeout=TIMEOUT), 404, 1404, "/api/nothing")


def test_busy_engine_refuses_more_than_two_waiting_uploads(web, zmq_server):
    """While a live stream holds the shared engine lock, uploads wait; a third one is refused."""
    replies: list[requests.Response] = []
    with zmq_server.engine_lock:  # exactly what the ZeroMQ worker holds around an inference
        threads = [threading.Thread(target=lambda i=i: replies.append(
            parse(web.url, png_bytes(frame_of_size(200 + i, 150))))) for i in range(2)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 10
        while web.service._slots._value > 0:  # both are now waiting for the engine
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert_error(parse(web.url, png_bytes(frame_of_size(300, 150))), 503, 1503, "busy")
        assert replies == []  # the two are still waiting for the lock
    for t in threads:
        t.join(TIMEOUT)
    assert sorted(r.status_code for r in replies) == [200, 200]


# --------------------------------------------------------------------------- asynchronous engines
@pytest.fixture()
def async_web(selfie_engine):  # type: ignore[no-untyped-def]
    """An engine whose model runs in its own worker thread (as M2FP does behind the hybrid engine)."""
    from m2fp_server.engines.async_worker import AsyncEngine
    eng = AsyncEngine(RecordingEngine(selfie_engine), min_latency_s=0.3)
    lock = threading.Lock()
    fe = HttpFrontEnd(eng, lock, HttpSettings(port=0))
    fe.start()
    yield fe, eng, lock
    fe.stop()
    eng.close()


def test_asynchronous_engine_answers_with_this_photos_own_result(async_web, selfie_engine):
    fe, eng, lock = async_web
    rgb, _ = still("grace_hopper", (480, 360), seed=4)
    replies: list[requests.Response] = []
    t = threading.Thread(target=lambda: replies.append(parse(fe.url, png_bytes(rgb))))
    t.start()
    time.sleep(0.1)  # the worker is computing now (0.3 s): live streams must not be held up meanwhile
    assert lock.acquire(timeout=0.05)
    lock.release()
    t.join(TIMEOUT)
    data = ok_data(replies[0])
    assert data["inference_time"] >= 0.3  # the worker's own time for this photo
    from m2fp_protocol import StreamConfig
    from m2fp_server.segmenters import LocalSegmenter
    local_alpha, _ = LocalSegmenter(selfie_engine, StreamConfig(smoothing=0.0))(rgb)
    assert np.abs(decode_png(data["alpha"]).astype(int) - local_alpha.astype(int)).max() <= 1
    assert eng.runner.queued == 0  # the request's stream is gone from the worker


def test_asynchronous_engine_failure_is_reported_at_once(async_web):
    fe, _, _ = async_web
    t0 = time.perf_counter()
    assert_error(parse(fe.url, png_bytes(np.zeros((90, 120, 3), np.uint8))), 500, 2000, "selfie engine failed")
    assert time.perf_counter() - t0 < 5  # not the 30 s wait for a result that never comes


def test_hybrid_engine_answers_with_its_own_result_for_the_photo(selfie_engine):
    """auto's first choice with M2FP weights: the photo goes to the slow model's worker, and the
    reply is the fast silhouette fused with that model's parsing of this very photo (here the
    general selfie model stands in for M2FP): the hybrid's offline answer."""
    from m2fp_server.engines.hybrid import HybridEngine
    from m2fp_server.engines.selfie import SelfieEngine
    slow = SelfieEngine(variant="general")
    eng = HybridEngine(fast_engine=selfie_engine, slow_engine=slow, slow_nice=0)
    fe = HttpFrontEnd(eng, threading.Lock(), HttpSettings(port=0))
    fe.start()
    try:
        rgb, truth = still("astronaut", (480, 360), seed=6)
        data = ok_data(parse(fe.url, png_bytes(rgb)))
        assert data["engine"] == "hybrid"
        own = resize_alpha_like(eng.fuse(selfie_engine.infer(rgb).probs[1], slow.infer(rgb).probs)[1], rgb)
        assert np.abs(decode_png(data["alpha"]).astype(int) - own.astype(int)).max() <= 1
        assert iou(decode_png(data["alpha"]) >= 128, truth) > 0.9
        assert eng.runner.queued == 0
    finally:
        fe.stop()
        eng.runner.close()


def resize_alpha_like(prob: np.ndarray, rgb: np.ndarray) -> np.ndarray:
    from m2fp_server.postprocess.resize import resize_alpha
    return resize_alpha(prob, (rgb.shape[1], rgb.shape[0]))


# --------------------------------------------------------------------------- the page and info
def test_info_lists_the_engine_classes(web):
    r = requests.get(f"{web.url}/api/info", timeout=TIMEOUT)
    data = r.json()["data"]
    assert data["engine"]["name"] == "selfie"
    assert [(c["name"], c["foreground"]) for c in data["classes"]] == [("Background", False), ("Person", True)]
    assert data["limits"]["max_upload_bytes"] == ParseLimits().max_upload_bytes


def test_page_and_static_files_come_from_the_package(web):
    page = requests.get(f"{web.url}/", timeout=TIMEOUT)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    for path, kind in (("/static/app.js", "javascript"), ("/static/style.css", "text/css")):
        r = requests.get(web.url + path, timeout=TIMEOUT)
        assert r.status_code == 200 and kind in r.headers["Content-Type"], path
        assert path.rsplit("/", 1)[1] in page.text


def test_a_foreign_host_name_is_refused(web):
    """DNS rebinding: a page on evil.example whose name now resolves to 127.0.0.1 gets nothing."""
    for path in ("/", "/api/info", "/static/app.js"):
        r = requests.get(web.url + path, headers={"Host": "evil.example:5000"}, timeout=TIMEOUT)
        assert_error(r, 403, 1403, "evil.example")
    for host in ("localhost:5000", "127.0.0.1", "[::1]:80", "app.localhost"):
        assert requests.get(web.url + "/api/info", headers={"Host": host}, timeout=TIMEOUT).status_code == 200
